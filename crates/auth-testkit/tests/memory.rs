//! The suites against `auth-module`'s in-memory stores.

use auth_module::{MemoryIdentityStore, MemoryStateStore};

auth_testkit::identity_store_suite!(memory_identity, || async { MemoryIdentityStore::new() });
auth_testkit::state_store_suite!(memory_state, || async { MemoryStateStore::new() });
