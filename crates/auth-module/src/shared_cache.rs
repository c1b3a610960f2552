//! A read-through identity cache that replicas can share a database behind:
//! every hit is proved current against a per-identity token in a shared
//! [`StateStore`] (one small read, e.g. one Redis `GET`, instead of loading
//! the identity and its provider identities).
//!
//! The protocol:
//! - a write through any replica commits to the identity store, then sets
//!   the identity's token to a fresh random value;
//! - a read takes the token first (creating one if there is none), then uses
//!   a cached entry only if it was loaded under that same token; otherwise it
//!   loads the identity and caches it under the token read before the load.
//!
//! A read that starts after a write was acknowledged sees the new token, so it
//! never answers from before that write. A load that raced with a write is
//! cached under the old token, which the write has replaced, so it is never
//! used again. When the state store cannot answer, reads go to the identity
//! store uncached; a write whose token cannot be replaced answers
//! [`crate::ErrorKind::Unavailable`] (its change is committed: retrying it is
//! safe), and entries are never used past `max_age`, which bounds how long a
//! replica could lag if the state store lost a token it had acknowledged.
//! When full, the cache evicts one entry at a time (`quick_cache`, shared
//! with `CachedIdentityStore`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cache::{CachingDeviceStore, Entries, KeepsDevices, Kept, entries};
use crate::error::{Error, Result};
use crate::model::{
    AuthIdentity, Metadata, NewProviderIdentity, ProviderIdentity, ProviderIdentityUpdate,
};
use crate::store_traits::{
    AuditStore, DeviceStore, ForgetsIdentities, ForgettingMfaStore, IdentityStore, MfaStore,
    NewAuthIdentity, PasskeyStore, StateStore, VerificationStore,
};

/// How long a token lives in the state store without writes (a missing token
/// is recreated, which only costs one load).
const TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

struct Entry {
    token: String,
    identity: Arc<Kept>,
    loaded: Instant,
}

/// An [`IdentityStore`] wrapper caching `retrieve_auth_identity` behind
/// per-identity tokens kept in a shared [`StateStore`] (see the module docs).
///
/// It has the capabilities of the store it wraps: its
/// [`IdentityStore::mfa_store`] is `Some` when the wrapped store's is (every
/// call goes to that store, and a factor created or changed replaces its
/// identity's token, since [`AuthIdentity::mfa_enabled`] may have changed),
/// and its [`IdentityStore::verification_store`] is the wrapped store's
/// (never cached).
pub struct SharedIdentityCache<S> {
    /// Shared, so that the capabilities of the wrapped store can be reached
    /// ([`IdentityStore::mfa_store`] takes an `Arc`).
    inner: Arc<S>,
    state: Arc<dyn StateStore>,
    entries: Entries<Arc<Entry>>,
    capacity: usize,
    max_age: Duration,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl<S: std::fmt::Debug> std::fmt::Debug for SharedIdentityCache<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedIdentityCache")
            .field("inner", &self.inner)
            .field("capacity", &self.capacity)
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

impl<S: IdentityStore> SharedIdentityCache<S> {
    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Caches up to `capacity` identities of `inner`, proved current against
    /// tokens in `state` (which every replica must share), none older than
    /// `max_age`.
    pub fn new(inner: S, state: Arc<dyn StateStore>, capacity: usize, max_age: Duration) -> Self {
        SharedIdentityCache {
            inner: Arc::new(inner),
            state,
            entries: entries(capacity),
            capacity: capacity.max(1),
            max_age,
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

    /// The identity's current token, creating one if it has none; `None`
    /// when the state store cannot say (then nothing is cached).
    async fn token(&self, id: &str) -> Option<String> {
        let key = crate::state_keys::identity_version(id);
        match self.state.get(&key).await {
            Ok(Some(Value::String(t))) => return Some(t),
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "identity cache: token unreadable, reading uncached");
                return None;
            }
        }
        let fresh = crate::random::token_hex(16);
        match self
            .state
            .compare_and_swap(&key, None, Some(Value::String(fresh.clone())), TOKEN_TTL)
            .await
        {
            Ok(true) => Some(fresh),
            // Another reader or a writer set one first: use theirs.
            Ok(false) => match self.state.get(&key).await {
                Ok(Some(Value::String(t))) => Some(t),
                _ => None,
            },
            Err(_) => None,
        }
    }

    /// After a committed write to identity `id`: a new token, so no replica
    /// uses what it cached before.
    async fn changed(&self, id: &str) -> Result<()> {
        self.entries.remove(id);
        let token = Value::String(crate::random::token_hex(16));
        self.state
            .set(&crate::state_keys::identity_version(id), token, TOKEN_TTL)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, identity = id, "identity cache: the change is committed but its token could not be replaced");
                Error::unavailable("Service unavailable")
            })
    }

    /// `r`, after marking `id` changed if `r` succeeded.
    async fn after<T>(&self, id: &str, r: Result<T>) -> Result<T> {
        let value = r?;
        self.changed(id).await?;
        Ok(value)
    }
}

/// A factor of an identity was created or changed: its `mfa_enabled` may
/// have, so it gets a new token.
#[async_trait::async_trait]
impl<S: IdentityStore> ForgetsIdentities for SharedIdentityCache<S> {
    async fn forget(&self, auth_identity_id: &str) -> Result<()> {
        self.changed(auth_identity_id).await
    }
}

impl<S: IdentityStore> SharedIdentityCache<S> {
    /// The cached identity `id` (`Ok`), loaded from the wrapped store when
    /// missing or stale; or, when the shared token cannot be read, the
    /// identity as the wrapped store has it, not cached (`Err`).
    async fn kept(&self, id: &str) -> Result<std::result::Result<Arc<Entry>, AuthIdentity>> {
        let Some(token) = self.token(id).await else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return Ok(Err(self.inner.retrieve_auth_identity(id).await?));
        };
        if let Some(e) = self.entries.get(id)
            && e.token == token
            && e.loaded.elapsed() < self.max_age
        {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Ok(e));
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let loaded = Instant::now();
        let fresh = Arc::new(Entry {
            token,
            identity: Arc::new(Kept::new(self.inner.retrieve_auth_identity(id).await?)),
            loaded,
        });
        self.entries.insert(id.to_owned(), fresh.clone());
        Ok(Ok(fresh))
    }
}

#[async_trait::async_trait]
impl<S: IdentityStore> IdentityStore for SharedIdentityCache<S> {
    async fn create_auth_identity(&self, new: NewAuthIdentity) -> Result<AuthIdentity> {
        // A new id: nobody can have cached it.
        self.inner.create_auth_identity(new).await
    }

    async fn retrieve_auth_identity(&self, id: &str) -> Result<AuthIdentity> {
        Ok(match self.kept(id).await? {
            Ok(kept) => kept.identity.full(),
            Err(uncached) => uncached,
        })
    }

    async fn retrieve_redacted(&self, id: &str) -> Result<Arc<AuthIdentity>> {
        Ok(match self.kept(id).await? {
            Ok(kept) => kept.identity.redacted(),
            Err(uncached) => Arc::new(uncached.redacted()),
        })
    }

    async fn update_app_metadata(
        &self,
        id: &str,
        app_metadata: Option<Metadata>,
    ) -> Result<AuthIdentity> {
        let r = self.inner.update_app_metadata(id, app_metadata).await;
        self.after(id, r).await
    }

    async fn patch_app_metadata(
        &self,
        id: &str,
        key: &str,
        value: Option<Value>,
    ) -> Result<AuthIdentity> {
        let r = self.inner.patch_app_metadata(id, key, value).await;
        self.after(id, r).await
    }

    async fn merge_app_metadata(&self, id: &str, patch: &Metadata) -> Result<AuthIdentity> {
        let r = self.inner.merge_app_metadata(id, patch).await;
        self.after(id, r).await
    }

    async fn bump_credential_version(&self, id: &str) -> Result<AuthIdentity> {
        let r = self.inner.bump_credential_version(id).await;
        self.after(id, r).await
    }

    async fn delete_auth_identity(&self, id: &str) -> Result<()> {
        let r = self.inner.delete_auth_identity(id).await;
        self.after(id, r).await
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
        self.after(auth_identity_id, r).await
    }

    async fn update_provider_identity(
        &self,
        id: &str,
        update: ProviderIdentityUpdate,
    ) -> Result<ProviderIdentity> {
        let p = self.inner.update_provider_identity(id, update).await?;
        self.changed(&p.auth_identity_id).await?;
        Ok(p)
    }

    async fn delete_provider_identity(&self, id: &str) -> Result<()> {
        // The owner must be known before the row is gone.
        let owner = match self.inner.provider_identity_owner(id).await? {
            Some(owner) => owner,
            None => {
                // Missing: let the store answer its not-found error.
                self.inner.delete_provider_identity(id).await?;
                return Err(Error::unexpected(
                    "the identity store cannot name a provider identity's owner, which a \
                     shared identity cache needs",
                ));
            }
        };
        let r = self.inner.delete_provider_identity(id).await;
        self.after(&owner, r).await
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
impl<S: IdentityStore> KeepsDevices for SharedIdentityCache<S> {
    async fn current(&self, auth_identity_id: &str) -> Result<Option<Arc<Kept>>> {
        // Proved against the identity's shared token, as identities are.
        match self.kept(auth_identity_id).await {
            Ok(Ok(entry)) => Ok(Some(entry.identity.clone())),
            Ok(Err(_uncached)) => Ok(None),
            Err(e) if e.kind() == crate::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn peek(&self, auth_identity_id: &str) -> Option<Arc<Kept>> {
        self.entries
            .get(auth_identity_id)
            .map(|e| e.identity.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::memory::{MemoryIdentityStore, MemoryStateStore};
    use async_trait::async_trait;

    /// Two replicas: two caches over one identity store and one state store.
    fn replicas() -> (
        SharedIdentityCache<Arc<MemoryIdentityStore>>,
        SharedIdentityCache<Arc<MemoryIdentityStore>>,
    ) {
        let db = Arc::new(MemoryIdentityStore::new());
        let state: Arc<dyn StateStore> = Arc::new(MemoryStateStore::new());
        let a = SharedIdentityCache::new(db.clone(), state.clone(), 100, Duration::from_secs(60));
        let b = SharedIdentityCache::new(db, state, 100, Duration::from_secs(60));
        (a, b)
    }

    async fn identity(store: &impl IdentityStore) -> AuthIdentity {
        let mut new = NewAuthIdentity::default();
        new.provider_identities
            .push(NewProviderIdentity::new("emailpass", "a@b.c"));
        store.create_auth_identity(new).await.unwrap()
    }

    #[tokio::test]
    async fn a_write_on_one_replica_is_seen_by_the_other_at_once() {
        let (a, b) = replicas();
        let id = identity(&a).await.id;
        for i in 0..200 {
            let actor = format!("cus_{i}");
            a.patch_app_metadata(&id, "customer_id", Some(Value::String(actor.clone())))
                .await
                .unwrap();
            // Twice: the second read is a hit, and still current.
            for _ in 0..2 {
                let seen = b.retrieve_auth_identity(&id).await.unwrap();
                assert_eq!(seen.actor_id("customer"), Some(actor.as_str()));
            }
        }
        let (hits, misses) = b.hits_and_misses();
        assert_eq!((hits, misses), (200, 200));
        // Every kind of write is seen.
        a.merge_app_metadata(
            &id,
            &Metadata::from_iter([("roles".to_owned(), Value::from(vec!["role_1"]))]),
        )
        .await
        .unwrap();
        let seen = b.retrieve_auth_identity(&id).await.unwrap();
        assert_eq!(
            seen.app_metadata.as_ref().and_then(|m| m.get("roles")),
            Some(&Value::from(vec!["role_1"]))
        );
        a.bump_credential_version(&id).await.unwrap();
        assert_eq!(
            b.retrieve_auth_identity(&id)
                .await
                .unwrap()
                .credential_version,
            1
        );
        let p = a
            .add_provider_identity(&id, NewProviderIdentity::new("google", "g1"))
            .await
            .unwrap();
        assert_eq!(
            b.retrieve_auth_identity(&id)
                .await
                .unwrap()
                .provider_identities
                .len(),
            2
        );
        a.update_provider_identity(
            &p.id,
            ProviderIdentityUpdate::new()
                .user_metadata(Metadata::from_iter([("name".to_owned(), Value::from("G"))])),
        )
        .await
        .unwrap();
        let seen = b.retrieve_auth_identity(&id).await.unwrap();
        assert!(
            seen.provider_identity("google")
                .unwrap()
                .user_metadata
                .is_some()
        );
        a.delete_provider_identity(&p.id).await.unwrap();
        assert_eq!(
            b.retrieve_auth_identity(&id)
                .await
                .unwrap()
                .provider_identities
                .len(),
            1
        );
        a.delete_auth_identity(&id).await.unwrap();
        assert_eq!(
            b.retrieve_auth_identity(&id).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
    }

    #[tokio::test]
    async fn a_lost_token_only_costs_a_load() {
        let db = Arc::new(MemoryIdentityStore::new());
        let state = Arc::new(MemoryStateStore::new());
        let a = SharedIdentityCache::new(db, state.clone(), 100, Duration::from_secs(60));
        let id = identity(&a).await.id;
        a.retrieve_auth_identity(&id).await.unwrap();
        a.retrieve_auth_identity(&id).await.unwrap();
        state
            .delete(&crate::state_keys::identity_version(&id))
            .await
            .unwrap();
        a.retrieve_auth_identity(&id).await.unwrap();
        assert_eq!(a.hits_and_misses(), (1, 2));
    }

    /// A state store that is down: every call fails.
    #[derive(Debug)]
    struct Down;

    #[async_trait]
    impl StateStore for Down {
        async fn set(&self, _: &str, _: Value, _: Duration) -> Result<()> {
            Err(Error::unavailable("down"))
        }
        async fn get(&self, _: &str) -> Result<Option<Value>> {
            Err(Error::unavailable("down"))
        }
        async fn take(&self, _: &str) -> Result<Option<Value>> {
            Err(Error::unavailable("down"))
        }
        async fn delete(&self, _: &str) -> Result<bool> {
            Err(Error::unavailable("down"))
        }
        async fn increment(&self, _: &str, _: u64, _: Duration) -> Result<u64> {
            Err(Error::unavailable("down"))
        }
        async fn compare_and_swap(
            &self,
            _: &str,
            _: Option<&Value>,
            _: Option<Value>,
            _: Duration,
        ) -> Result<bool> {
            Err(Error::unavailable("down"))
        }
    }

    #[tokio::test]
    async fn with_the_state_store_down_reads_go_uncached_and_writes_say_so() {
        let db = Arc::new(MemoryIdentityStore::new());
        let a = SharedIdentityCache::new(db.clone(), Arc::new(Down), 100, Duration::from_secs(60));
        let id = identity(&*db).await.id;
        for _ in 0..3 {
            a.retrieve_auth_identity(&id).await.unwrap();
        }
        assert_eq!(a.hits_and_misses(), (0, 3));
        // The write is committed, and answered as unavailable (retry is safe).
        let e = a
            .patch_app_metadata(&id, "customer_id", Some(Value::from("cus_1")))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert_eq!(
            db.retrieve_auth_identity(&id)
                .await
                .unwrap()
                .actor_id("customer"),
            Some("cus_1")
        );
        assert_eq!(
            a.retrieve_auth_identity(&id)
                .await
                .unwrap()
                .actor_id("customer"),
            Some("cus_1")
        );
    }

    #[tokio::test]
    async fn entries_are_never_used_past_their_age() {
        let db = Arc::new(MemoryIdentityStore::new());
        let state: Arc<dyn StateStore> = Arc::new(MemoryStateStore::new());
        let a = SharedIdentityCache::new(db, state, 100, Duration::ZERO);
        let id = identity(&a).await.id;
        a.retrieve_auth_identity(&id).await.unwrap();
        a.retrieve_auth_identity(&id).await.unwrap();
        assert_eq!(a.hits_and_misses(), (0, 2));
    }
}
