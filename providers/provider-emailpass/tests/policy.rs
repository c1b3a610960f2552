//! A password the policy refuses costs no hash. Its own test binary, so no
//! other test hashes meanwhile.

use std::sync::Arc;

use auth_module::{
    AuthModule, AuthRequest, ErrorKind, MemoryIdentityStore, MemoryStateStore, Registry,
};
use provider_emailpass::hashing_stats;
use serde_json::json;

#[tokio::test]
async fn a_refused_password_costs_no_hash() {
    let module = AuthModule::builder()
        .registry(Registry::linked().expect("registry"))
        .identity_store(Arc::new(MemoryIdentityStore::new()))
        .state_store(Arc::new(MemoryStateStore::new()))
        .provider("emailpass", "emailpass", json!({}))
        .build()
        .expect("module");
    let before = hashing_stats().hashed;
    for password in ["short", "password123", "qwertyuiop"] {
        let req = AuthRequest::json(json!({"email": "a@example.com", "password": password}))
            .actor_type("customer");
        let e = module
            .register("emailpass", req)
            .await
            .expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::InvalidData, "{e}");
    }
    assert_eq!(hashing_stats().hashed, before, "no hash ran");
    // A good one is hashed.
    let req =
        AuthRequest::json(json!({"email": "a@example.com", "password": "correct horse battery"}))
            .actor_type("customer");
    let outcome = module.register("emailpass", req).await.expect("registered");
    assert!(outcome.is_authenticated());
    assert_eq!(hashing_stats().hashed, before + 1);
}
