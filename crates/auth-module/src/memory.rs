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
    AUTH_IDENTITY_PREFIX, AuthIdentity, Metadata, NewProviderIdentity, PROVIDER_IDENTITY_PREFIX,
    ProviderIdentity, ProviderIdentityUpdate, generate_id,
};
use crate::store::{IdentityStore, NewAuthIdentity, StateStore};

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
        AuthIdentity {
            id: row.id.clone(),
            app_metadata: row.app_metadata.clone(),
            provider_identities,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }

    fn build_provider(
        auth_identity_id: &str,
        new: NewProviderIdentity,
        now: OffsetDateTime,
    ) -> ProviderIdentity {
        ProviderIdentity {
            id: generate_id(PROVIDER_IDENTITY_PREFIX),
            entity_id: new.entity_id,
            provider: new.provider,
            auth_identity_id: auth_identity_id.to_owned(),
            user_metadata: new.user_metadata,
            provider_metadata: new.provider_metadata,
            created_at: now,
            updated_at: now,
        }
    }

    fn insert_provider(&mut self, p: ProviderIdentity) {
        self.by_entity
            .insert((p.provider.clone(), p.entity_id.clone()), p.id.clone());
        self.providers.insert(p.id.clone(), p);
    }
}

use crate::store::{
    auth_identity_not_found as auth_not_found, duplicate_provider_identity as duplicate,
    provider_identity_not_found as provider_not_found,
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
        let mut seen = std::collections::HashSet::new();
        for p in &new.provider_identities {
            let key = (p.provider.clone(), p.entity_id.clone());
            if g.by_entity.contains_key(&key) || !seen.insert(key) {
                return Err(duplicate(p));
            }
        }
        let now = OffsetDateTime::now_utc();
        let row = AuthRow {
            id: generate_id(AUTH_IDENTITY_PREFIX),
            app_metadata: new.app_metadata,
            created_at: now,
            updated_at: now,
        };
        for p in new.provider_identities {
            let built = Identities::build_provider(&row.id, p, now);
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
        if g.by_entity
            .contains_key(&(new.provider.clone(), new.entity_id.clone()))
        {
            return Err(duplicate(&new));
        }
        let built = Identities::build_provider(auth_identity_id, new, OffsetDateTime::now_utc());
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
        if let Some(m) = update.user_metadata {
            p.user_metadata = Some(m);
        }
        if let Some(m) = update.provider_metadata {
            p.provider_metadata = Some(m);
        }
        p.updated_at = OffsetDateTime::now_utc();
        Ok(p.clone())
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
        let expires = now
            .checked_add(ttl)
            .unwrap_or(now + Duration::from_secs(86400 * 365));
        g.entries.insert(key.to_owned(), (value, expires));
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Value>> {
        let now = Instant::now();
        let g = self.lock();
        Ok(g.entries
            .get(key)
            .filter(|(_, exp)| *exp > now)
            .map(|(v, _)| v.clone()))
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
}
