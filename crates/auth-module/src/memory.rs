//! In-memory stores: for tests, quick trials and single-process embedding.
//! Nothing survives the process.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;
use time::OffsetDateTime;

use crate::error::Result;
use crate::model::{
    AUTH_IDENTITY_PREFIX, AuthIdentity, Metadata, NewProviderIdentity, ProviderIdentity,
    ProviderIdentityUpdate, generate_id,
};
use crate::stores::{IdentityStore, NewAuthIdentity, StateStore};

#[derive(Debug, Default)]
struct Identities {
    auth: HashMap<String, AuthRow>,
    providers: HashMap<String, ProviderIdentity>,
    /// (provider, entity_id) -> provider identity id
    by_entity: HashMap<(String, String), String>,
}

#[derive(Debug, Clone)]
struct AuthRow {
    id: String,
    app_metadata: Option<Metadata>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    credential_version: u64,
}

impl Identities {
    fn assemble(&self, row: &AuthRow) -> AuthIdentity {
        let mut provider_identities: Vec<ProviderIdentity> = self
            .providers
            .values()
            .filter(|p| p.auth_identity_id == row.id)
            .cloned()
            .collect();
        provider_identities.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        let mut identity = AuthIdentity::new(row.id.clone(), row.created_at);
        identity.app_metadata = row.app_metadata.clone();
        identity.provider_identities = provider_identities;
        identity.updated_at = row.updated_at;
        identity.credential_version = row.credential_version;
        identity
    }

    /// A duplicate error if `new` collides with a stored provider identity or
    /// one of `earlier` (created in the same call).
    fn check_new_provider(
        &self,
        new: &NewProviderIdentity,
        earlier: &mut std::collections::HashSet<(String, String)>,
        earlier_ids: &mut std::collections::HashSet<String>,
    ) -> Result<()> {
        let key = (new.provider.clone(), new.entity_id.clone());
        if self.by_entity.contains_key(&key) || !earlier.insert(key) {
            return Err(duplicate(new));
        }
        if let Some(id) = &new.id
            && (self.providers.contains_key(id) || !earlier_ids.insert(id.clone()))
        {
            return Err(crate::Error::duplicate(format!(
                "ProviderIdentity with id: {id} already exists"
            )));
        }
        Ok(())
    }

    fn insert_provider(&mut self, p: ProviderIdentity) {
        self.by_entity
            .insert((p.provider.clone(), p.entity_id.clone()), p.id.clone());
        self.providers.insert(p.id.clone(), p);
    }
}

use crate::stores::{
    auth_identity_not_found as auth_not_found, duplicate_provider_identity as duplicate,
    invalid_app_metadata_key, provider_identity_not_found as provider_not_found,
    provider_metadata_changed, valid_app_metadata_key,
};

/// An [`IdentityStore`] in process memory.
#[derive(Debug, Default)]
pub struct MemoryIdentityStore {
    inner: Mutex<Identities>,
}

impl MemoryIdentityStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Identities> {
        // A panic while holding the lock cannot leave the maps half-updated:
        // every mutation below checks first and then inserts.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl IdentityStore for MemoryIdentityStore {
    async fn create_auth_identity(&self, new: NewAuthIdentity) -> Result<AuthIdentity> {
        let mut g = self.lock();
        let (mut seen, mut seen_ids) = Default::default();
        for p in &new.provider_identities {
            g.check_new_provider(p, &mut seen, &mut seen_ids)?;
        }
        if let Some(id) = &new.id
            && g.auth.contains_key(id)
        {
            return Err(crate::Error::duplicate(format!(
                "AuthIdentity with id: {id} already exists"
            )));
        }
        let now = OffsetDateTime::now_utc();
        let created_at = new.created_at.unwrap_or(now);
        let row = AuthRow {
            id: new.id.unwrap_or_else(|| generate_id(AUTH_IDENTITY_PREFIX)),
            app_metadata: new.app_metadata,
            created_at,
            updated_at: new.updated_at.unwrap_or(created_at),
            credential_version: 0,
        };
        for p in new.provider_identities {
            let built = p.into_provider_identity(&row.id, now);
            g.insert_provider(built);
        }
        g.auth.insert(row.id.clone(), row.clone());
        Ok(g.assemble(&row))
    }

    async fn retrieve_auth_identity(&self, id: &str) -> Result<AuthIdentity> {
        let g = self.lock();
        let row = g.auth.get(id).ok_or_else(|| auth_not_found(id))?;
        Ok(g.assemble(row))
    }

    async fn update_app_metadata(
        &self,
        id: &str,
        app_metadata: Option<Metadata>,
    ) -> Result<AuthIdentity> {
        let mut g = self.lock();
        let row = g.auth.get_mut(id).ok_or_else(|| auth_not_found(id))?;
        row.app_metadata = app_metadata;
        row.updated_at = OffsetDateTime::now_utc();
        let row = row.clone();
        Ok(g.assemble(&row))
    }

    async fn patch_app_metadata(
        &self,
        id: &str,
        key: &str,
        value: Option<Value>,
    ) -> Result<AuthIdentity> {
        if !valid_app_metadata_key(key) {
            return Err(invalid_app_metadata_key(key));
        }
        let mut g = self.lock();
        let row = g.auth.get_mut(id).ok_or_else(|| auth_not_found(id))?;
        match value {
            Some(v) => {
                row.app_metadata
                    .get_or_insert_with(Metadata::new)
                    .insert(key.to_owned(), v);
            }
            None => {
                if let Some(m) = row.app_metadata.as_mut() {
                    m.remove(key);
                }
            }
        }
        row.updated_at = OffsetDateTime::now_utc();
        let row = row.clone();
        Ok(g.assemble(&row))
    }

    async fn bump_credential_version(&self, id: &str) -> Result<AuthIdentity> {
        let mut g = self.lock();
        let row = g.auth.get_mut(id).ok_or_else(|| auth_not_found(id))?;
        row.credential_version += 1;
        row.updated_at = OffsetDateTime::now_utc();
        let row = row.clone();
        Ok(g.assemble(&row))
    }

    async fn delete_auth_identity(&self, id: &str) -> Result<()> {
        let mut g = self.lock();
        if g.auth.remove(id).is_none() {
            return Err(auth_not_found(id));
        }
        let doomed: Vec<ProviderIdentity> = g
            .providers
            .values()
            .filter(|p| p.auth_identity_id == id)
            .cloned()
            .collect();
        for p in doomed {
            g.providers.remove(&p.id);
            g.by_entity.remove(&(p.provider, p.entity_id));
        }
        Ok(())
    }

    async fn find_provider_identity(
        &self,
        provider: &str,
        entity_id: &str,
    ) -> Result<Option<ProviderIdentity>> {
        let g = self.lock();
        Ok(g.by_entity
            .get(&(provider.to_owned(), entity_id.to_owned()))
            .and_then(|id| g.providers.get(id))
            .cloned())
    }

    async fn add_provider_identity(
        &self,
        auth_identity_id: &str,
        new: NewProviderIdentity,
    ) -> Result<ProviderIdentity> {
        let mut g = self.lock();
        if !g.auth.contains_key(auth_identity_id) {
            return Err(auth_not_found(auth_identity_id));
        }
        g.check_new_provider(&new, &mut Default::default(), &mut Default::default())?;
        let built = new.into_provider_identity(auth_identity_id, OffsetDateTime::now_utc());
        g.insert_provider(built.clone());
        Ok(built)
    }

    async fn update_provider_identity(
        &self,
        id: &str,
        update: ProviderIdentityUpdate,
    ) -> Result<ProviderIdentity> {
        let mut g = self.lock();
        let p = g
            .providers
            .get_mut(id)
            .ok_or_else(|| provider_not_found(id))?;
        if let Some(expected) = &update.expected_provider_metadata
            && p.provider_metadata != *expected
        {
            return Err(provider_metadata_changed(id));
        }
        if let Some(m) = update.user_metadata {
            p.user_metadata = Some(m);
        }
        if let Some(m) = update.provider_metadata {
            p.provider_metadata = Some(m);
        }
        let now = OffsetDateTime::now_utc();
        p.updated_at = now;
        let p = p.clone();
        if update.bump_credential_version
            && let Some(row) = g.auth.get_mut(&p.auth_identity_id)
        {
            row.credential_version += 1;
            row.updated_at = now;
        }
        Ok(p)
    }

    async fn delete_provider_identity(&self, id: &str) -> Result<()> {
        let mut g = self.lock();
        let p = g
            .providers
            .remove(id)
            .ok_or_else(|| provider_not_found(id))?;
        g.by_entity.remove(&(p.provider, p.entity_id));
        Ok(())
    }

    async fn provider_identity_owner(&self, id: &str) -> Result<Option<String>> {
        Ok(self
            .lock()
            .providers
            .get(id)
            .map(|p| p.auth_identity_id.clone()))
    }
}

/// A [`StateStore`] in process memory. Expired entries are dropped when read
/// and swept periodically as the map grows.
#[derive(Debug, Default)]
pub struct MemoryStateStore {
    inner: Mutex<StateMap>,
}

#[derive(Debug, Default)]
struct StateMap {
    entries: HashMap<String, (Value, Instant)>,
    next_sweep_at: usize,
}

impl StateMap {
    /// The value under `key` and its expiry, if it has not expired.
    fn live(&self, key: &str, now: Instant) -> Option<&(Value, Instant)> {
        self.entries.get(key).filter(|(_, exp)| *exp > now)
    }
}

impl MemoryStateStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StateMap> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl StateStore for MemoryStateStore {
    async fn set(&self, key: &str, value: Value, ttl: Duration) -> Result<()> {
        let now = Instant::now();
        let mut g = self.lock();
        if g.entries.len() >= g.next_sweep_at {
            g.entries.retain(|_, (_, exp)| *exp > now);
            g.next_sweep_at = (g.entries.len() * 2).max(1024);
        }
        g.entries.insert(key.to_owned(), (value, expiry(now, ttl)));
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Value>> {
        let g = self.lock();
        Ok(g.live(key, Instant::now()).map(|(v, _)| v.clone()))
    }

    async fn take(&self, key: &str) -> Result<Option<Value>> {
        let now = Instant::now();
        let mut g = self.lock();
        Ok(g.entries
            .remove(key)
            .filter(|(_, exp)| *exp > now)
            .map(|(v, _)| v))
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let now = Instant::now();
        let mut g = self.lock();
        Ok(g.entries.remove(key).is_some_and(|(_, exp)| exp > now))
    }

    async fn increment(&self, key: &str, by: u64, ttl: Duration) -> Result<u64> {
        let now = Instant::now();
        let mut g = self.lock();
        let live = g
            .live(key, now)
            .map(|(v, exp)| (v.as_u64().unwrap_or(0), *exp));
        let (value, expires) = match live {
            Some((current, exp)) => (current.saturating_add(by), exp),
            None => (by, expiry(now, ttl)),
        };
        g.entries
            .insert(key.to_owned(), (Value::from(value), expires));
        Ok(value)
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&Value>,
        new: Option<Value>,
        ttl: Duration,
    ) -> Result<bool> {
        let now = Instant::now();
        let mut g = self.lock();
        if g.live(key, now).map(|(v, _)| v) != expected {
            return Ok(false);
        }
        match new {
            Some(v) => {
                g.entries.insert(key.to_owned(), (v, expiry(now, ttl)));
            }
            None => {
                g.entries.remove(key);
            }
        }
        Ok(true)
    }
}

/// `now + ttl`, or a year from now when that overflows.
fn expiry(now: Instant, ttl: Duration) -> Instant {
    now.checked_add(ttl)
        .unwrap_or(now + Duration::from_secs(86400 * 365))
}
