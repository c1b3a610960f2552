//! Server-side sessions: the claims of an auth token kept in the state store
//! under a random id (the cookie's value), and a per-identity index so an
//! identity's sessions can be listed and ended.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::digest::sha256_hex;
use crate::error::{Error, Result};
use crate::random::token_hex;
use crate::state_keys;
use crate::store_traits::StateStore;
use crate::token::AuthClaims;

/// How often a session-index update is retried when concurrent updates of
/// the same identity's index win the compare-and-swap first.
const INDEX_ATTEMPTS: usize = 32;

/// One live session, as [`Sessions::list`] shows it: never the session id
/// itself, which is a bearer credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SessionInfo {
    /// A stable, non-secret handle (SHA-256 of the session id), for
    /// [`Sessions::end_by_handle`].
    pub handle: String,
    /// The actor type of the session's claims.
    pub actor_type: String,
    /// The provider instance the session's token came from.
    pub auth_provider: Option<String>,
    /// When the session was created (milliseconds since the epoch).
    pub created_at_ms: i64,
    /// When it expires (milliseconds since the epoch).
    pub expires_at_ms: i64,
}

/// One entry of an identity's session index, under the session's handle.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IndexEntry {
    actor_type: String,
    #[serde(default)]
    auth_provider: Option<String>,
    created_at_ms: i64,
    expires_at_ms: i64,
    /// The device of the session's claims, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device_id: Option<String>,
}

type Index = std::collections::BTreeMap<String, IndexEntry>;

/// How many sessions an identity keeps by default; past it the oldest ends.
pub const DEFAULT_MAX_SESSIONS_PER_IDENTITY: usize = 20;

/// Sessions over a [`StateStore`]: create, read, end, and list per identity.
///
/// The store keeps only a SHA-256 of each session id (the cookie's value),
/// so reading the store does not yield usable cookies. Each identity keeps at
/// most [`Sessions::with_max_per_identity`] sessions (default 20): creating
/// one more ends the oldest.
///
/// ```
/// # async fn demo(claims: auth_module::AuthClaims) -> auth_module::Result<()> {
/// use std::{sync::Arc, time::Duration};
/// use auth_module::{MemoryStateStore, flows::Sessions};
/// let sessions = Sessions::new(Arc::new(MemoryStateStore::new()), Duration::from_secs(3600));
/// let sid = sessions.create(&claims).await?;
/// assert_eq!(sessions.get(&sid).await?, Some(claims.clone()));
/// assert_eq!(sessions.list(&claims.auth_identity_id).await?.len(), 1);
/// assert!(sessions.end(&sid).await?);
/// assert_eq!(sessions.get(&sid).await?, None);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Sessions {
    state: Arc<dyn StateStore>,
    ttl: Duration,
    max_per_identity: usize,
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

impl Sessions {
    /// Sessions in `state` that live `ttl`.
    pub fn new(state: Arc<dyn StateStore>, ttl: Duration) -> Self {
        Sessions {
            state,
            ttl,
            max_per_identity: DEFAULT_MAX_SESSIONS_PER_IDENTITY,
        }
    }

    /// Keeps at most `max` sessions per identity (at least 1).
    pub fn with_max_per_identity(mut self, max: usize) -> Self {
        self.max_per_identity = max.max(1);
        self
    }

    /// How long a session lives.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Whether `sid` can be one of our session ids (64 hex characters issued;
    /// anything much longer is refused before it reaches the store).
    fn plausible(sid: &str) -> bool {
        !sid.is_empty() && sid.len() <= 128
    }

    /// Stores `claims` under a new random session id (32 bytes, 64 hex
    /// characters) and answers the id. If the identity then has more than its
    /// maximum of sessions, the oldest end.
    pub async fn create(&self, claims: &AuthClaims) -> Result<String> {
        let sid = token_hex(32);
        let handle = sha256_hex(&sid);
        let value = serde_json::to_value(claims)
            .map_err(|e| Error::unexpected("serialising session claims failed").with_source(e))?;
        self.state
            .set(&state_keys::session(&handle), value, self.ttl)
            .await?;
        let now = now_ms();
        let entry = IndexEntry {
            actor_type: claims.actor_type.clone(),
            auth_provider: claims.auth_provider.clone(),
            created_at_ms: now,
            expires_at_ms: now.saturating_add(millis(self.ttl)),
            device_id: claims.device_id.clone(),
        };
        let max = self.max_per_identity;
        let mut evicted = Vec::new();
        let indexed = self
            .update_index(&claims.auth_identity_id, |index| {
                index.insert(handle.clone(), entry.clone());
                evicted.clear();
                while index.len() > max {
                    let oldest = index
                        .iter()
                        .min_by(|a, b| (a.1.created_at_ms, a.0).cmp(&(b.1.created_at_ms, b.0)))
                        .map(|(h, _)| h.clone());
                    match oldest {
                        Some(h) => {
                            index.remove(&h);
                            evicted.push(h);
                        }
                        None => break,
                    }
                }
            })
            .await;
        if let Err(e) = indexed {
            // A session exists only if it is listed.
            let _ = self.state.delete(&state_keys::session(&handle)).await;
            return Err(e);
        }
        for old in evicted {
            self.state.delete(&state_keys::session(&old)).await?;
        }
        Ok(sid)
    }

    /// The claims of live session `sid`, if any.
    pub async fn get(&self, sid: &str) -> Result<Option<AuthClaims>> {
        if !Self::plausible(sid) {
            return Ok(None);
        }
        let value = match self
            .state
            .get(&state_keys::session(&sha256_hex(sid)))
            .await?
        {
            Some(v) => Some(v),
            // A session stored in clear by 0.1.0, until it expires.
            None => self.state.get(&state_keys::legacy_session(sid)).await?,
        };
        Ok(value.and_then(|v| serde_json::from_value(v).ok()))
    }

    /// Ends session `sid`; `true` if it was live.
    pub async fn end(&self, sid: &str) -> Result<bool> {
        if !Self::plausible(sid) {
            return Ok(false);
        }
        let handle = sha256_hex(sid);
        match self.state.take(&state_keys::session(&handle)).await? {
            Some(value) => {
                self.unlist(&value, &handle).await;
                Ok(true)
            }
            None => Ok(self.state.delete(&state_keys::legacy_session(sid)).await?),
        }
    }

    /// Removes `handle` from the index of the identity `value` (a session's
    /// claims) belongs to. Best effort: a stale entry is skipped by `list`
    /// and pruned later.
    async fn unlist(&self, value: &Value, handle: &str) {
        if let Some(identity) = value.get("auth_identity_id").and_then(Value::as_str) {
            let _ = self
                .update_index(identity, |index| {
                    index.remove(handle);
                })
                .await;
        }
    }

    /// The live sessions of `auth_identity_id`, oldest first.
    pub async fn list(&self, auth_identity_id: &str) -> Result<Vec<SessionInfo>> {
        let now = now_ms();
        let index = self.read_index(auth_identity_id).await?.1;
        let mut out = Vec::with_capacity(index.len());
        for (handle, e) in index {
            if e.expires_at_ms > now
                && self
                    .state
                    .get(&state_keys::session(&handle))
                    .await?
                    .is_some()
            {
                out.push(SessionInfo {
                    handle,
                    actor_type: e.actor_type,
                    auth_provider: e.auth_provider,
                    created_at_ms: e.created_at_ms,
                    expires_at_ms: e.expires_at_ms,
                });
            }
        }
        out.sort_by(|a, b| (a.created_at_ms, &a.handle).cmp(&(b.created_at_ms, &b.handle)));
        Ok(out)
    }

    /// Ends the session of `auth_identity_id` listed under `handle`; `true`
    /// if it was live.
    pub async fn end_by_handle(&self, auth_identity_id: &str, handle: &str) -> Result<bool> {
        let index = self.read_index(auth_identity_id).await?.1;
        if !index.contains_key(handle) {
            return Ok(false);
        }
        match self.state.take(&state_keys::session(handle)).await? {
            Some(value) => {
                self.unlist(&value, handle).await;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Ends the sessions of `auth_identity_id` that belong to a device of
    /// `devices`; answers how many were live.
    pub async fn end_devices(&self, auth_identity_id: &str, devices: &[String]) -> Result<usize> {
        let index = self.read_index(auth_identity_id).await?.1;
        let mut ended = 0;
        for (handle, entry) in &index {
            if entry
                .device_id
                .as_ref()
                .is_some_and(|d| devices.contains(d))
                && let Some(value) = self.state.take(&state_keys::session(handle)).await?
            {
                self.unlist(&value, handle).await;
                ended += 1;
            }
        }
        Ok(ended)
    }

    /// Ends every listed session of `auth_identity_id`; answers how many were
    /// live.
    pub async fn end_all(&self, auth_identity_id: &str) -> Result<usize> {
        let index = self.read_index(auth_identity_id).await?.1;
        let mut ended = 0;
        for handle in index.keys() {
            if self.state.delete(&state_keys::session(handle)).await? {
                ended += 1;
            }
        }
        let _ = self
            .update_index(auth_identity_id, |index| index.clear())
            .await;
        Ok(ended)
    }

    async fn read_index(&self, auth_identity_id: &str) -> Result<(Option<Value>, Index)> {
        let raw = self
            .state
            .get(&state_keys::session_index(auth_identity_id))
            .await?;
        let index = raw
            .as_ref()
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        Ok((raw, index))
    }

    /// Applies `change` to the identity's index with compare-and-swap, retried
    /// while concurrent updates win; expired entries are pruned on the way.
    async fn update_index(
        &self,
        auth_identity_id: &str,
        mut change: impl FnMut(&mut Index),
    ) -> Result<()> {
        let key = state_keys::session_index(auth_identity_id);
        for _ in 0..INDEX_ATTEMPTS {
            let (raw, mut index) = self.read_index(auth_identity_id).await?;
            let now = now_ms();
            index.retain(|_, e| e.expires_at_ms > now);
            change(&mut index);
            let swapped = match index.values().map(|e| e.expires_at_ms).max() {
                None => {
                    self.state
                        .compare_and_swap(&key, raw.as_ref(), None, self.ttl)
                        .await?
                }
                Some(last) => {
                    let value = serde_json::to_value(&index).map_err(|e| {
                        Error::unexpected("serialising a session index failed").with_source(e)
                    })?;
                    let ttl = Duration::from_millis(u64::try_from(last - now).unwrap_or(1).max(1));
                    self.state
                        .compare_and_swap(&key, raw.as_ref(), Some(value), ttl)
                        .await?
                }
            };
            if swapped {
                return Ok(());
            }
            tokio::task::yield_now().await;
        }
        Err(Error::conflict(
            "the session index is changing too fast; try again",
        ))
    }
}
