//! Devices: every session and refresh-able token family is a [`Device`] row
//! of the identity store. Tokens and sessions carry its id (the `device_id`
//! claim); the gate refuses a credential whose device was ended, or was not
//! used for the idle lifetime, checked through the identity cache like the
//! identity itself.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use time::OffsetDateTime;

use crate::audit::current_client;
use crate::error::Result;
use crate::events::{Event, EventBus};
use crate::records_security::{Device, NewDevice};
use crate::store_traits::DeviceStore;

/// The event emitted when an identity signs in from a user agent and
/// network none of its devices has: `{auth_identity_id, device_id,
/// actor_type, auth_provider, user_agent, network}` (the host sends the
/// "was this you?" mail).
pub const NEW_DEVICE_EVENT: &str = "auth.new_device";

/// `[http] device_idle_ttl`'s default: 30 days.
pub const DEFAULT_DEVICE_IDLE_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// How often a device's `last_seen_at` moves, at most.
const TOUCH_EVERY: time::Duration = time::Duration::seconds(60);

/// How many devices an identity keeps. Signing in once more drops first a
/// device never used since its sign-in (the oldest such), else the one seen
/// least recently: a burst of sign-ins (a script, a load test, someone who
/// knows the password) ends its own devices before those in use.
pub const MAX_DEVICES_PER_IDENTITY: usize = 100;

/// A first sign-in this soon after the identity was created is its sign-up,
/// not a new device to announce.
const SIGN_UP_WINDOW: time::Duration = time::Duration::seconds(60);

/// How many idle devices one sweep step removes.
const SWEEP_BATCH: usize = 500;

/// The devices flow over a [`DeviceStore`]. Cheap to clone. Without a store
/// (one that keeps no devices) credentials carry no device and every call
/// answers nothing.
#[derive(Debug, Clone)]
pub struct Devices {
    store: Option<Arc<dyn DeviceStore>>,
    idle_ttl: Duration,
    events: EventBus,
}

/// How a credential's device stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceCheck {
    /// In use.
    Live,
    /// Ended, dropped after its idle lifetime, or never this identity's.
    Ended,
}

impl Devices {
    /// Devices in `store`, dropped after `idle_ttl` unused, announcing new
    /// ones on `events`.
    pub fn new(store: Option<Arc<dyn DeviceStore>>, idle_ttl: Duration, events: EventBus) -> Self {
        Devices {
            store,
            idle_ttl,
            events,
        }
    }

    /// Whether the store keeps devices.
    pub fn enabled(&self) -> bool {
        self.store.is_some()
    }

    /// How long an unused device lives.
    pub fn idle_ttl(&self) -> Duration {
        self.idle_ttl
    }

    fn idle_cutoff(&self, now: OffsetDateTime) -> OffsetDateTime {
        now - time::Duration::try_from(self.idle_ttl).unwrap_or(time::Duration::MAX)
    }

    /// A new device of `auth_identity_id` for a sign-in as `actor_type`
    /// through `provider`, from the running request's client; its id, or
    /// `None` without a device store.
    ///
    /// With `announce` (the identity's `created_at`), a user agent and
    /// network none of the identity's devices has emits [`NEW_DEVICE_EVENT`],
    /// unless the identity is its own sign-up: created within the last
    /// minute and without devices yet. `None` (a registration, a refresh
    /// giving an old token its device) announces nothing.
    pub async fn start(
        &self,
        auth_identity_id: &str,
        actor_type: &str,
        provider: &str,
        announce: Option<OffsetDateTime>,
    ) -> Result<Option<String>> {
        let Some(store) = &self.store else {
            return Ok(None);
        };
        let client = current_client();
        let network = client.network();
        let (tally, device) = store
            .add_device(
                NewDevice::new(auth_identity_id, actor_type, provider)
                    .client(client.user_agent, network),
            )
            .await?;
        if tally.devices >= MAX_DEVICES_PER_IDENTITY {
            store
                .trim_devices(auth_identity_id, MAX_DEVICES_PER_IDENTITY)
                .await?;
        }
        let sign_up = |created_at: OffsetDateTime| {
            tally.devices == 0 && OffsetDateTime::now_utc() - created_at < SIGN_UP_WINDOW
        };
        if !tally.same_client && announce.is_some_and(|created_at| !sign_up(created_at)) {
            self.events.emit(Event::new(
                NEW_DEVICE_EVENT,
                json!({
                    "auth_identity_id": auth_identity_id,
                    "device_id": device.id,
                    "actor_type": actor_type,
                    "auth_provider": provider,
                    "user_agent": device.user_agent,
                    "network": device.network,
                }),
            ));
        }
        Ok(Some(device.id))
    }

    /// Whether device `device_id` of `auth_identity_id` is live: it exists
    /// and was used within the idle lifetime. A use moves its
    /// `last_seen_at`, at most once a minute, and always the first time
    /// (which marks it used, see [`MAX_DEVICES_PER_IDENTITY`]).
    pub async fn check(&self, auth_identity_id: &str, device_id: &str) -> Result<DeviceCheck> {
        let Some(store) = &self.store else {
            // A store without devices issued no device ids: a claim naming
            // one cannot be checked, so it is refused.
            return Ok(DeviceCheck::Ended);
        };
        let Some(device) = store.device(auth_identity_id, device_id).await? else {
            return Ok(DeviceCheck::Ended);
        };
        let now = OffsetDateTime::now_utc();
        if device.last_seen_at < self.idle_cutoff(now) {
            store.delete_devices(auth_identity_id, &[device.id]).await?;
            return Ok(DeviceCheck::Ended);
        }
        if now - device.last_seen_at >= TOUCH_EVERY || !device.used() {
            store.touch_device(auth_identity_id, device_id, now).await?;
        }
        Ok(DeviceCheck::Live)
    }

    /// The live devices of `auth_identity_id`, oldest first.
    pub async fn list(&self, auth_identity_id: &str) -> Result<Vec<Device>> {
        let Some(store) = &self.store else {
            return Ok(Vec::new());
        };
        let cutoff = self.idle_cutoff(OffsetDateTime::now_utc());
        let mut devices = store.list_devices(auth_identity_id).await?;
        devices.retain(|d| d.last_seen_at >= cutoff);
        Ok(devices)
    }

    /// Ends devices `ids` of `auth_identity_id`; answers those it had.
    pub async fn end(&self, auth_identity_id: &str, ids: &[String]) -> Result<Vec<String>> {
        match &self.store {
            Some(store) if !ids.is_empty() => store.delete_devices(auth_identity_id, ids).await,
            _ => Ok(Vec::new()),
        }
    }

    /// Removes devices idle past their lifetime; answers how many.
    pub async fn sweep(&self) -> Result<usize> {
        let Some(store) = &self.store else {
            return Ok(0);
        };
        let cutoff = self.idle_cutoff(OffsetDateTime::now_utc());
        let mut total = 0;
        loop {
            let gone = store.delete_idle_devices(cutoff, SWEEP_BATCH).await?;
            total += gone.len();
            if gone.len() < SWEEP_BATCH {
                return Ok(total);
            }
        }
    }
}

/// A device as `GET /auth/devices` shows it; `current` marks the caller's.
pub fn device_json(device: &Device, current: bool) -> serde_json::Value {
    json!({
        "id": device.id,
        "actor_type": device.actor_type,
        "auth_provider": device.auth_provider,
        "user_agent": device.user_agent,
        "network": device.network,
        "created_at": crate::flows::iso_millis(device.created_at),
        "last_seen_at": crate::flows::iso_millis(device.last_seen_at),
        "current": current,
    })
}
