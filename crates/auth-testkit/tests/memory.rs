//! The suites against `auth-module`'s in-memory stores.

use std::sync::Arc;
use std::time::Duration;

use auth_module::{
    CachedIdentityStore, MemoryIdentityStore, MemoryStateStore, SharedIdentityCache,
};

auth_testkit::identity_store_suite!(memory_identity, || async { MemoryIdentityStore::new() });
// The caches keep the contract of the store they wrap (what they cache, an
// identity's `mfa_enabled` included, follows every write through them).
auth_testkit::identity_store_suite!(cached_memory_identity, || async {
    CachedIdentityStore::new(MemoryIdentityStore::new(), 1024)
});
auth_testkit::identity_store_suite!(shared_cache_memory_identity, || async {
    SharedIdentityCache::new(
        MemoryIdentityStore::new(),
        Arc::new(MemoryStateStore::new()),
        1024,
        Duration::from_secs(60),
    )
});
auth_testkit::state_store_suite!(
    memory_state,
    || async { MemoryStateStore::new() },
    count = |s| async move { s.entry_count() as u64 }
);
