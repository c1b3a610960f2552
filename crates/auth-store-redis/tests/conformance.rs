//! The state store conformance suite against the local Redis
//! (127.0.0.1:6379, or `AUTH_TEST_REDIS_URL`), each test under its own key
//! prefix. Outside CI a missing Redis skips with a message; with `CI` set it
//! fails.

use auth_store_redis::RedisStateStore;

fn redis_url() -> String {
    std::env::var("AUTH_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

async fn store() -> Option<RedisStateStore> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let prefix = format!(
        "auth-test:{}:{}:{}:",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    match RedisStateStore::connect(&redis_url(), &prefix).await {
        Ok(s) => Some(s),
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: no Redis ({e}); CI runs this");
            None
        }
        Err(e) => panic!("Redis is required in CI: {e}"),
    }
}

auth_testkit::state_store_suite!(redis, optional = store);

#[tokio::test]
async fn an_unreachable_redis_is_named_without_its_password() {
    let e = RedisStateStore::connect("redis://user:s3cret@127.0.0.1:1/0", "x:")
        .await
        .unwrap_err();
    let text = e.to_string();
    assert_eq!(e.kind(), auth_module::ErrorKind::Unavailable);
    assert!(text.contains("redis://user:***@127.0.0.1:1/0"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}

#[tokio::test]
async fn rediss_to_a_plain_redis_fails_cleanly() {
    // TLS against a server that speaks none: a handshake error, not a panic
    // (the TLS stack has its crypto provider).
    let url = redis_url().replacen("redis://", "rediss://:pw@", 1);
    let e = RedisStateStore::connect(&url, "x:").await.unwrap_err();
    assert!(!e.to_string().contains("pw@"), "{e}");
}
