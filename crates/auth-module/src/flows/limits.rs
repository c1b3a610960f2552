//! Rate limits: fixed-window counters in the [`StateStore`], so they hold
//! across replicas, keyed by a SHA-256 of the identifier (no email in a key)
//! and by client address (an IPv4 address, or the /64 of an IPv6 one: one
//! host usually holds a whole /64).
//!
//! Every limit takes its slot with the store's atomic `increment` **before**
//! the work it guards (a hash, a provider call, a write): of many concurrent
//! tries, only as many as the limit allows go on, and the rest are refused at
//! once. A try that turns out not to count (a successful login, a malformed
//! request) gives its slot back ([`Limits::release`]); a successful login
//! also clears its identifier's failures from that address.
//!
//! Tries of one identifier wait for one another inside a process: at most
//! [`IN_FLIGHT_PER_IDENTIFIER`] (or the lowest identifier limit, if lower)
//! hold a slot at once. So many concurrent tries
//! with the right password (one account behind a busy client) never count
//! as many failures at once, while 60 concurrent wrong ones still meet the
//! limit after its count of checks.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Limit, LimitsConfig};
use crate::digest::sha256_hex;
use crate::error::Result;
use crate::state_keys;
use crate::store_traits::StateStore;

/// Tries of one identifier that hold a slot at once, per process (fewer when
/// an identifier's limit is lower): enough to keep a hashing pool of a few
/// threads busy while finished tries give their slots back.
pub const IN_FLIGHT_PER_IDENTIFIER: usize = 4;

/// Rate limits over a state store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Limits {
    state: Arc<dyn StateStore>,
    config: Arc<LimitsConfig>,
    turns: Arc<Turns>,
}

/// The slots one try took: released if the try does not count.
#[derive(Debug, Default)]
#[must_use = "a slot is released, kept or cleared once the work is done"]
pub struct Slot {
    taken: Vec<(String, Duration)>,
    /// The identifier-and-address failure counter, cleared by a success.
    failures_here: Option<String>,
    /// The identifier's turn, held until the try is done.
    _turn: Option<Turn>,
}

/// In-process turns per identifier (by hash): a semaphore each, dropped
/// from the map when no try holds or waits for it.
#[derive(Debug)]
struct Turns {
    /// Tries of one identifier at once.
    permits: usize,
    by_key: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Semaphore>>>,
}

/// One try's turn: its permit, and the map entry it keeps alive.
#[derive(Debug)]
struct Turn {
    turns: Arc<Turns>,
    key: String,
    semaphore: Arc<tokio::sync::Semaphore>,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Turns {
    async fn wait(self: &Arc<Self>, key: &str) -> Turn {
        let semaphore = {
            let mut map = self.by_key.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(key.to_owned())
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.permits)))
                .clone()
        };
        let permit = semaphore.clone().acquire_owned().await.ok();
        Turn {
            turns: self.clone(),
            key: key.to_owned(),
            semaphore,
            permit,
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.permit.take();
        let mut map = self.turns.by_key.lock().unwrap_or_else(|e| e.into_inner());
        // The map's reference and this one: nobody else holds or waits.
        if Arc::strong_count(&self.semaphore) == 2 {
            map.remove(&self.key);
        }
    }
}

/// What taking a slot came to.
#[derive(Debug)]
#[non_exhaustive]
pub enum Taken {
    /// Go on; release or keep the slot when done.
    Go(Slot),
    /// Over a limit: refuse now, try again after `retry_after`.
    Refused {
        /// The longest window among the counters over their limit.
        retry_after: Duration,
    },
}

/// The key part of a client address: an IPv4 address as is (IPv4-mapped
/// IPv6 addresses too), an IPv6 address by its /64.
pub(crate) fn address_key(addr: IpAddr) -> String {
    match addr.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{net}/64")
        }
    }
}

impl Limits {
    /// `config`'s limits, counted in `state`.
    pub fn new(state: Arc<dyn StateStore>, config: LimitsConfig) -> Self {
        // Never more tries at once than the lowest identifier limit allows,
        // so concurrent right passwords are never refused.
        let permits = [
            &config.login_per_identifier_and_address,
            &config.login_per_identifier,
        ]
        .iter()
        .filter(|l| l.is_on())
        .map(|l| usize::try_from(l.count).unwrap_or(usize::MAX))
        .fold(IN_FLIGHT_PER_IDENTIFIER, usize::min)
        .max(1);
        Limits {
            state,
            config: Arc::new(config),
            turns: Arc::new(Turns {
                permits,
                by_key: std::sync::Mutex::default(),
            }),
        }
    }

    fn counter(limit: &Limit, name: &str, parts: &[&str]) -> Option<(String, Limit)> {
        limit
            .is_on()
            .then(|| (state_keys::limit(name, parts), *limit))
    }

    /// Takes one slot of every counter (on limits only). Over any of them:
    /// [`Taken::Refused`], and the slots of this try are kept (a refused try
    /// counts, so hammering does not help).
    async fn take(&self, counters: Vec<(String, Limit)>) -> Result<Taken> {
        let keys: Vec<(&str, Duration)> = counters
            .iter()
            .map(|(key, limit)| (key.as_str(), limit.window))
            .collect();
        let counts = self.state.increment_each(&keys).await?;
        let retry = counters
            .iter()
            .zip(counts)
            .filter(|((_, limit), n)| *n > limit.count)
            .map(|((_, limit), _)| limit.window)
            .max();
        let taken = counters
            .into_iter()
            .map(|(key, limit)| (key, limit.window))
            .collect();
        Ok(match retry {
            Some(retry_after) => Taken::Refused { retry_after },
            None => Taken::Go(Slot {
                taken,
                failures_here: None,
                _turn: None,
            }),
        })
    }

    /// The login counters of `id` (the identifier's hash) from `addr`, and
    /// the identifier-and-address one a success clears.
    fn login_counters(
        &self,
        id: Option<&str>,
        addr: Option<IpAddr>,
    ) -> (Vec<(String, Limit)>, Option<String>) {
        let c = &self.config;
        let addr = addr.map(address_key);
        let mut out = Vec::with_capacity(3);
        let mut here = None;
        if let (Some(id), Some(addr)) = (id, &addr)
            && let Some(counter) =
                Self::counter(&c.login_per_identifier_and_address, "login-ia", &[id, addr])
        {
            here = Some(counter.0.clone());
            out.push(counter);
        }
        if let Some(id) = id {
            out.extend(Self::counter(&c.login_per_identifier, "login-i", &[id]));
        }
        if let Some(addr) = &addr {
            out.extend(Self::counter(&c.login_per_address, "login-a", &[addr]));
        }
        (out, here)
    }

    fn per_address(limit: &Limit, name: &str, addr: Option<IpAddr>) -> Vec<(String, Limit)> {
        addr.and_then(|a| Self::counter(limit, name, &[&address_key(a)]))
            .into_iter()
            .collect()
    }

    /// A login (or a registration of an existing identity, which checks its
    /// password too) by `identifier` from `addr`, counted as a failure until
    /// [`Limits::succeeded`] says otherwise.
    pub async fn take_login(
        &self,
        identifier: Option<&str>,
        addr: Option<IpAddr>,
    ) -> Result<Taken> {
        let id = identifier.map(sha256_hex);
        let (counters, here) = self.login_counters(id.as_deref(), addr);
        let c = &self.config;
        // Wait for the identifier's turn when a limit counts its failures.
        let turn = match &id {
            Some(id)
                if c.login_per_identifier_and_address.is_on() || c.login_per_identifier.is_on() =>
            {
                Some(self.turns.wait(id).await)
            }
            _ => None,
        };
        Ok(match self.take(counters).await? {
            Taken::Go(mut slot) => {
                slot.failures_here = here;
                slot._turn = turn;
                Taken::Go(slot)
            }
            refused => refused,
        })
    }

    /// A registration from `addr`.
    pub async fn take_register(&self, addr: Option<IpAddr>) -> Result<Taken> {
        self.take(Self::per_address(
            &self.config.register_per_address,
            "register-a",
            addr,
        ))
        .await
    }

    /// The start of a redirect login from `addr` (each writes OAuth state).
    /// Never released.
    pub async fn take_redirect_start(&self, addr: Option<IpAddr>) -> Result<Taken> {
        self.take(Self::per_address(
            &self.config.redirect_starts_per_address,
            "redirect-a",
            addr,
        ))
        .await
    }

    /// An `update` (password change with a reset token) from `addr`, counted
    /// as a failure until released.
    pub async fn take_update(&self, addr: Option<IpAddr>) -> Result<Taken> {
        self.take(Self::per_address(
            &self.config.update_failures_per_address,
            "update-a",
            addr,
        ))
        .await
    }

    /// A verification code request of `auth_identity_id` for `entity_id`.
    pub async fn take_verification(
        &self,
        auth_identity_id: &str,
        entity_id: &str,
    ) -> Result<Taken> {
        self.take(
            Self::counter(
                &self.config.verification_requests,
                "verify",
                &[&sha256_hex(auth_identity_id), &sha256_hex(entity_id)],
            )
            .into_iter()
            .collect(),
        )
        .await
    }

    /// Counts a reset request for `identifier` from `addr`; `false` if it is
    /// over a limit (the request is then answered as usual and does nothing).
    pub async fn reset_allowed(&self, identifier: &str, addr: Option<IpAddr>) -> Result<bool> {
        let mut counters = Self::per_address(&self.config.reset_per_address, "reset-a", addr);
        counters.extend(Self::counter(
            &self.config.reset_per_identifier,
            "reset-i",
            &[&sha256_hex(identifier)],
        ));
        Ok(matches!(self.take(counters).await?, Taken::Go(_)))
    }

    /// The try did not count (malformed, or the server failed): gives its
    /// slots back.
    pub async fn release(&self, slot: Slot) -> Result<()> {
        self.give_back(&slot, None).await
    }

    /// The try succeeded: gives its slots back and clears the identifier's
    /// failures from that address.
    pub async fn succeeded(&self, slot: Slot) -> Result<()> {
        self.give_back(&slot, slot.failures_here.as_deref()).await
    }

    /// Gives back every counter of `slot` but `clear`, which ends: one
    /// round trip to the state store.
    async fn give_back(&self, slot: &Slot, clear: Option<&str>) -> Result<()> {
        let counters: Vec<(&str, Duration)> = slot
            .taken
            .iter()
            .filter(|(key, _)| Some(key.as_str()) != clear)
            .map(|(key, window)| (key.as_str(), *window))
            .collect();
        self.state.give_back_each(&counters, clear).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_key_ipv4_as_is_and_ipv6_by_its_64() {
        let key = |s: &str| address_key(s.parse().unwrap());
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:ffff::1"), key("2001:db8:1:2::9"));
        assert_ne!(key("2001:db8:1:3::1"), key("2001:db8:1:2::1"));
    }
}
