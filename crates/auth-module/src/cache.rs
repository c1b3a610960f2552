//! A read-through cache in front of an [`IdentityStore`] that can never answer
//! stale for writes made through it.
//!
//! Token refresh reads one auth identity per request, and that read dominates
//! its cost on SQL stores. This cache keeps recently read identities in process
//! memory and drops an entry in the write path of every change that touches it
//! (link, unlink, password change, deletion), after the backend has committed.
//! A generation counter stops a read that raced with a write from putting the
//! old value back. Use it only where this process is the only writer (the
//! embedded SQLite server); replicas sharing a database use
//! [`crate::SharedIdentityCache`] instead.
//!
//! Both keep their entries in [`Entries`] (`quick_cache`), which evicts one
//! entry at a time when full rather than forgetting everything.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

use crate::error::Result;
use crate::model::{
    AuthIdentity, Metadata, NewProviderIdentity, ProviderIdentity, ProviderIdentityUpdate,
};
use crate::records_security::{Device, DeviceTally, NewDevice};
use crate::store_traits::{
    AuditStore, DeviceStore, ForgetsIdentities, ForgettingMfaStore, IdentityStore, MfaStore,
    NewAuthIdentity, PasskeyStore, VerificationStore,
};

/// The bounded map both identity caches keep their entries in: at most about
/// `capacity` of them, one evicted at a time (S3-FIFO) when it is full.
pub(crate) type Entries<V> = quick_cache::sync::Cache<String, V>;

/// An empty [`Entries`] for up to `capacity` (at least 1) entries.
pub(crate) fn entries<V: Clone>(capacity: usize) -> Entries<V> {
    Entries::new(capacity.max(1))
}

/// A cached identity: without its secrets, shared (what checking a
/// credential reads, handed out without a copy), and its secrets beside it.
pub(crate) struct Kept {
    redacted: Arc<AuthIdentity>,
    /// Each provider identity's `provider_metadata`, in order.
    secrets: Vec<Option<Metadata>>,
    /// Devices of the identity read since it was loaded, by id (`None`:
    /// it has no such device). Current as long as the entry is: ending a
    /// device forgets the identity.
    devices: Mutex<HashMap<String, Option<Device>>>,
}

impl Kept {
    pub(crate) fn new(mut full: AuthIdentity) -> Self {
        let secrets = full
            .provider_identities
            .iter_mut()
            .map(|p| p.provider_metadata.take())
            .collect();
        Kept {
            redacted: Arc::new(full),
            secrets,
            devices: Mutex::new(HashMap::new()),
        }
    }

    /// The identity without secrets, shared.
    pub(crate) fn redacted(&self) -> Arc<AuthIdentity> {
        self.redacted.clone()
    }

    fn memo(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<Device>>> {
        self.devices.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The identity as stored, secrets included: a copy.
    pub(crate) fn full(&self) -> AuthIdentity {
        let mut full = (*self.redacted).clone();
        for (p, secret) in full.provider_identities.iter_mut().zip(&self.secrets) {
            p.provider_metadata.clone_from(secret);
        }
        full
    }
}

/// An [`IdentityStore`] wrapper caching `retrieve_auth_identity`.
///
/// It has the capabilities of the store it wraps: its
/// [`IdentityStore::mfa_store`] is `Some` when the wrapped store's is (every
/// call goes to that store, and a factor created or changed forgets its
/// identity, whose [`AuthIdentity::mfa_enabled`] may have changed), and its
/// [`IdentityStore::verification_store`] is the wrapped store's (never
/// cached).
#[derive(Debug)]
pub struct CachedIdentityStore<S> {
    /// Shared, so that the capabilities of the wrapped store can be reached
    /// ([`IdentityStore::mfa_store`] takes an `Arc`).
    inner: Arc<S>,
    /// Bumped by every invalidation; entries are removed and inserted only
    /// under this lock, so a read whose load started before an invalidation
    /// cannot put its value back after it.
    generation: Mutex<u64>,
    entries: Entries<Arc<Kept>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl<S: IdentityStore> CachedIdentityStore<S> {
    /// The cached identity `id`, loaded from the wrapped store on a miss.
    async fn kept(&self, id: &str) -> Result<Arc<Kept>> {
        if let Some(hit) = self.entries.get(id) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hit);
        }
        // Taken before the load starts: a write committed after this point is
        // invalidated after it too, and that bumps the generation.
        let generation = *self.lock();
        self.misses.fetch_add(1, Ordering::Relaxed);
        let fresh = Arc::new(Kept::new(self.inner.retrieve_auth_identity(id).await?));
        let current = self.lock();
        if *current == generation {
            self.entries.insert(id.to_owned(), fresh.clone());
        }
        Ok(fresh)
    }

    /// Caches up to `capacity` identities read from `inner`.
    pub fn new(inner: S, capacity: usize) -> Self {
        CachedIdentityStore {
            inner: Arc::new(inner),
            generation: Mutex::new(0),
            entries: entries(capacity),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// `(hits, misses)` of `retrieve_auth_identity` since the cache was built.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        self.generation.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Called after a committed write: forget `id` (or everything) and make
    /// reads that started before it unable to repopulate.
    fn invalidate(&self, id: Option<&str>) {
        let mut generation = self.lock();
        *generation += 1;
        match id {
            Some(id) => {
                self.entries.remove(id);
            }
            None => self.entries.clear(),
        }
    }
}

/// A factor of an identity was created or changed: its `mfa_enabled` may
/// have.
#[async_trait::async_trait]
impl<S: IdentityStore> ForgetsIdentities for CachedIdentityStore<S> {
    async fn forget(&self, auth_identity_id: &str) -> Result<()> {
        self.invalidate(Some(auth_identity_id));
        Ok(())
    }
}

#[async_trait::async_trait]
impl<S: IdentityStore> IdentityStore for CachedIdentityStore<S> {
    async fn create_auth_identity(&self, new: NewAuthIdentity) -> Result<AuthIdentity> {
        // A new id is not cached yet; nothing to invalidate.
        self.inner.create_auth_identity(new).await
    }

    async fn retrieve_auth_identity(&self, id: &str) -> Result<AuthIdentity> {
        Ok(self.kept(id).await?.full())
    }

    async fn retrieve_redacted(&self, id: &str) -> Result<Arc<AuthIdentity>> {
        Ok(self.kept(id).await?.redacted())
    }

    async fn update_app_metadata(
        &self,
        id: &str,
        app_metadata: Option<Metadata>,
    ) -> Result<AuthIdentity> {
        let r = self.inner.update_app_metadata(id, app_metadata).await;
        self.invalidate(Some(id));
        r
    }

    async fn patch_app_metadata(
        &self,
        id: &str,
        key: &str,
        value: Option<serde_json::Value>,
    ) -> Result<AuthIdentity> {
        let r = self.inner.patch_app_metadata(id, key, value).await;
        self.invalidate(Some(id));
        r
    }

    async fn merge_app_metadata(&self, id: &str, patch: &Metadata) -> Result<AuthIdentity> {
        let r = self.inner.merge_app_metadata(id, patch).await;
        self.invalidate(Some(id));
        r
    }

    async fn bump_credential_version(&self, id: &str) -> Result<AuthIdentity> {
        let r = self.inner.bump_credential_version(id).await;
        self.invalidate(Some(id));
        r
    }

    async fn delete_auth_identity(&self, id: &str) -> Result<()> {
        let r = self.inner.delete_auth_identity(id).await;
        self.invalidate(Some(id));
        r
    }

    async fn find_provider_identity(
        &self,
        provider: &str,
        entity_id: &str,
    ) -> Result<Option<ProviderIdentity>> {
        self.inner.find_provider_identity(provider, entity_id).await
    }

    async fn add_provider_identity(
        &self,
        auth_identity_id: &str,
        new: NewProviderIdentity,
    ) -> Result<ProviderIdentity> {
        let r = self
            .inner
            .add_provider_identity(auth_identity_id, new)
            .await;
        self.invalidate(Some(auth_identity_id));
        r
    }

    async fn update_provider_identity(
        &self,
        id: &str,
        update: ProviderIdentityUpdate,
    ) -> Result<ProviderIdentity> {
        let r = self.inner.update_provider_identity(id, update).await;
        match &r {
            Ok(p) => self.invalidate(Some(&p.auth_identity_id)),
            Err(_) => self.invalidate(None),
        }
        r
    }

    async fn delete_provider_identity(&self, id: &str) -> Result<()> {
        let r = self.inner.delete_provider_identity(id).await;
        // The owner is unknown here; deletions are rare, so forget everything.
        self.invalidate(None);
        r
    }

    async fn provider_identity_owner(&self, id: &str) -> Result<Option<String>> {
        self.inner.provider_identity_owner(id).await
    }

    fn mfa_store(self: Arc<Self>) -> Option<Arc<dyn MfaStore>> {
        let inner = S::mfa_store(Arc::clone(&self.inner))?;
        Some(Arc::new(ForgettingMfaStore::new(inner, self)))
    }

    fn verification_store(self: Arc<Self>) -> Option<Arc<dyn VerificationStore>> {
        S::verification_store(Arc::clone(&self.inner))
    }

    fn passkey_store(self: Arc<Self>) -> Option<Arc<dyn PasskeyStore>> {
        S::passkey_store(Arc::clone(&self.inner))
    }

    fn device_store(self: Arc<Self>) -> Option<Arc<dyn DeviceStore>> {
        let inner = S::device_store(Arc::clone(&self.inner))?;
        Some(Arc::new(CachingDeviceStore { inner, cache: self }))
    }

    fn audit_store(self: Arc<Self>) -> Option<Arc<dyn AuditStore>> {
        S::audit_store(Arc::clone(&self.inner))
    }
}

#[async_trait::async_trait]
impl<S: IdentityStore> KeepsDevices for CachedIdentityStore<S> {
    async fn current(&self, auth_identity_id: &str) -> Result<Option<Arc<Kept>>> {
        // Only this process writes: an entry is current until forgotten.
        match self.kept(auth_identity_id).await {
            Ok(kept) => Ok(Some(kept)),
            Err(e) if e.kind() == crate::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn peek(&self, auth_identity_id: &str) -> Option<Arc<Kept>> {
        self.entries.get(auth_identity_id)
    }
}

/// An identity cache that keeps the devices read of each identity beside it
/// ([`Kept`]), so checking a credential's device costs what checking its
/// identity does.
#[async_trait::async_trait]
pub(crate) trait KeepsDevices: ForgetsIdentities {
    /// The cached entry of `auth_identity_id`, proved current now (loaded
    /// if need be); `None` when it cannot be cached.
    async fn current(&self, auth_identity_id: &str) -> Result<Option<Arc<Kept>>>;

    /// The cached entry of `auth_identity_id` if there is one, unproved:
    /// only for keeping a cached device's `last_seen_at` up to date.
    fn peek(&self, auth_identity_id: &str) -> Option<Arc<Kept>>;
}

/// A cache's [`DeviceStore`]: reads of one device are answered from the
/// identity's cache entry once read; ending devices forgets their identities
/// (on every replica, for [`crate::SharedIdentityCache`]); everything else
/// goes to the wrapped store.
pub(crate) struct CachingDeviceStore<C> {
    pub(crate) inner: Arc<dyn DeviceStore>,
    pub(crate) cache: Arc<C>,
}

impl<C: fmt::Debug> fmt::Debug for CachingDeviceStore<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.cache, f)
    }
}

#[async_trait::async_trait]
impl<C: KeepsDevices> DeviceStore for CachingDeviceStore<C> {
    async fn create_device(&self, new: NewDevice) -> Result<Device> {
        // A new id: no entry can have read it.
        self.inner.create_device(new).await
    }

    async fn device(&self, auth_identity_id: &str, id: &str) -> Result<Option<Device>> {
        let Some(kept) = self.cache.current(auth_identity_id).await? else {
            return self.inner.device(auth_identity_id, id).await;
        };
        if let Some(known) = kept.memo().get(id) {
            return Ok(known.clone());
        }
        let read = self.inner.device(auth_identity_id, id).await?;
        // An end committed during this read forgot the entry (a new one is
        // loaded next time), so what is memoised here is never used stale.
        kept.memo().insert(id.to_owned(), read.clone());
        Ok(read)
    }

    async fn list_devices(&self, auth_identity_id: &str) -> Result<Vec<Device>> {
        self.inner.list_devices(auth_identity_id).await
    }

    async fn touch_device(
        &self,
        auth_identity_id: &str,
        id: &str,
        at: OffsetDateTime,
    ) -> Result<bool> {
        let touched = self.inner.touch_device(auth_identity_id, id, at).await?;
        if let Some(kept) = self.cache.peek(auth_identity_id)
            && let Some(Some(d)) = kept.memo().get_mut(id)
            && d.last_seen_at < at
        {
            d.last_seen_at = at;
        }
        Ok(touched)
    }

    async fn delete_devices(&self, auth_identity_id: &str, ids: &[String]) -> Result<Vec<String>> {
        let deleted = self.inner.delete_devices(auth_identity_id, ids).await?;
        if !deleted.is_empty() {
            self.cache.forget(auth_identity_id).await?;
        }
        Ok(deleted)
    }

    async fn delete_idle_devices(
        &self,
        seen_before: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<(String, String)>> {
        let deleted = self.inner.delete_idle_devices(seen_before, limit).await?;
        let mut identities: Vec<&str> = deleted.iter().map(|(i, _)| i.as_str()).collect();
        identities.sort_unstable();
        identities.dedup();
        for identity in identities {
            self.cache.forget(identity).await?;
        }
        Ok(deleted)
    }

    async fn device_tally(
        &self,
        auth_identity_id: &str,
        user_agent: Option<&str>,
        network: Option<&str>,
    ) -> Result<DeviceTally> {
        self.inner
            .device_tally(auth_identity_id, user_agent, network)
            .await
    }

    async fn add_device(&self, new: NewDevice) -> Result<(DeviceTally, Device)> {
        // A new id, as in `create_device`.
        self.inner.add_device(new).await
    }

    async fn trim_devices(&self, auth_identity_id: &str, keep: usize) -> Result<Vec<String>> {
        let deleted = self.inner.trim_devices(auth_identity_id, keep).await?;
        if !deleted.is_empty() {
            self.cache.forget(auth_identity_id).await?;
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryIdentityStore;
    use serde_json::json;

    #[tokio::test]
    async fn writes_through_the_cache_are_seen_at_once() {
        let store = CachedIdentityStore::new(MemoryIdentityStore::new(), 16);
        let created = store
            .create_auth_identity(NewAuthIdentity::with_provider_identity(
                NewProviderIdentity::new("emailpass", "a@b.c"),
            ))
            .await
            .unwrap();
        let id = created.id.clone();
        assert_eq!(
            store
                .retrieve_auth_identity(&id)
                .await
                .unwrap()
                .actor_id("customer"),
            None
        );
        store
            .update_app_metadata(&id, json!({"customer_id": "cus_1"}).as_object().cloned())
            .await
            .unwrap();
        assert_eq!(
            store
                .retrieve_auth_identity(&id)
                .await
                .unwrap()
                .actor_id("customer"),
            Some("cus_1")
        );
        let pid = created.provider_identities[0].id.clone();
        store
            .update_provider_identity(
                &pid,
                ProviderIdentityUpdate::new()
                    .user_metadata(json!({"n": 1}).as_object().cloned().unwrap()),
            )
            .await
            .unwrap();
        let again = store.retrieve_auth_identity(&id).await.unwrap();
        assert_eq!(
            again.provider_identities[0].user_metadata,
            json!({"n": 1}).as_object().cloned()
        );
        store
            .merge_app_metadata(
                &id,
                json!({"roles": ["role_1"], "customer_id": null})
                    .as_object()
                    .unwrap(),
            )
            .await
            .unwrap();
        let merged = store.retrieve_auth_identity(&id).await.unwrap();
        assert_eq!(
            merged.app_metadata,
            json!({"roles": ["role_1"]}).as_object().cloned()
        );
        store.delete_auth_identity(&id).await.unwrap();
        assert!(store.retrieve_auth_identity(&id).await.is_err());
    }

    #[tokio::test]
    async fn a_full_cache_evicts_entries_not_everything() {
        let store = CachedIdentityStore::new(MemoryIdentityStore::new(), 16);
        let mut ids = Vec::new();
        for i in 0..40 {
            let created = store
                .create_auth_identity(NewAuthIdentity::with_provider_identity(
                    NewProviderIdentity::new("emailpass", format!("{i}@b.c")),
                ))
                .await
                .unwrap();
            ids.push(created.id);
        }
        let hot = ids[0].clone();
        for _ in 0..3 {
            store.retrieve_auth_identity(&hot).await.unwrap();
        }
        for id in &ids[1..] {
            store.retrieve_auth_identity(id).await.unwrap();
        }
        assert!(store.entries.len() <= 16, "{}", store.entries.len());
        // The identity read again and again outlives the ones read once.
        let (hits, _) = store.hits_and_misses();
        store.retrieve_auth_identity(&hot).await.unwrap();
        assert_eq!(store.hits_and_misses().0, hits + 1);
    }
}
