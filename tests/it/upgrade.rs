//! Upgrades in place: a SQLite database written by auth-server 0.1.0
//! (`tests/fixtures/sqlite-0.1.0.sql`, a `.dump` of a real server's file)
//! opens under this version, migrates, and keeps its users, links, tokens and
//! sessions.

use serde_json::json;

use crate::support::{Reply, TestServer, claims};

/// The fixture server's `[http] jwt_secret`.
const SECRET: &str = "fixture-secret-0123456789abcdef0123456789";
/// Ada's login token after her password change (`cv` 1).
const ADA_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJhY3Rvcl9pZCI6IiIsImFjdG9yX3R5cGUiOiJjdXN0b21lciIsImF1dGhfaWRlbnRpdHlfaWQiOiJhdXRoaWRfMDFNOEZUU01YMkhaQ1pZRERXWUVUU1FLUDUiLCJhdXRoX3Byb3ZpZGVyIjoiZW1haWxwYXNzIiwiYXBwX21ldGFkYXRhIjp7fSwidXNlcl9tZXRhZGF0YSI6e30sIm1mYV9lbmFibGVkIjpmYWxzZSwibWZhX2NoYWxsZW5nZV9jb21wbGV0ZWRfYXQiOm51bGwsImlhdCI6MTc5NTgyNzc1MCwiZXhwIjoyMTExMTg3NzUwLCJjdiI6MX0.E5zJlpW2HXTBhvR4I80RFB-y-2M1n0elH-NwBvtVKKs";
/// Ada's session, opened with that token.
const ADA_COOKIE: &str =
    "connect.sid=07a2213cac5cbaec4db3265a58b57648047867c29ca987ef134ddeac9a778844";
/// Bob's registration token (`cv` 0, before his customer link).
const BOB_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJhY3Rvcl9pZCI6IiIsImFjdG9yX3R5cGUiOiJjdXN0b21lciIsImF1dGhfaWRlbnRpdHlfaWQiOiJhdXRoaWRfMDFNOEZUU1AwRkYzU0pQQVpQNTZGQU1XWDciLCJhdXRoX3Byb3ZpZGVyIjoiZW1haWxwYXNzIiwiYXBwX21ldGFkYXRhIjp7fSwidXNlcl9tZXRhZGF0YSI6e30sIm1mYV9lbmFibGVkIjpmYWxzZSwibWZhX2NoYWxsZW5nZV9jb21wbGV0ZWRfYXQiOm51bGwsImlhdCI6MTc5NTgyNzc1MCwiZXhwIjoyMTExMTg3NzUwLCJjdiI6MH0.fM6yb-jAkF8vOIeXe-WphcAA2BUMFiA0cgt7rxAG2UU";

/// Writes the fixture into a new SQLite file in `dir`; returns its path.
async fn restore_fixture(dir: &std::path::Path) -> std::path::PathBuf {
    use sqlx::ConnectOptions;
    let path = dir.join("auth.db");
    let dump = include_str!("../fixtures/sqlite-0.1.0.sql");
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .connect()
        .await
        .expect("a new SQLite file");
    sqlx::raw_sql(dump)
        .execute(&mut conn)
        .await
        .expect("the fixture loads");
    sqlx::Connection::close(conn).await.expect("close");
    path
}

#[tokio::test]
async fn a_database_from_0_1_0_migrates_and_keeps_tokens_and_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let path = restore_fixture(dir.path()).await;
    let toml = format!(
        "[http]\njwt_secret = \"{SECRET}\"\n[store]\nurl = \"sqlite://{db}\"\n[state]\nurl = \"sqlite://{db}\"\n         [[providers]]\nresolve = \"emailpass\"\nid = \"emailpass\"\n[providers.options]\npassword_policy = {{ min_length = 1, reject_common = false }}\n",
        db = path.display()
    );
    let s = TestServer::start_toml(&toml).await;

    // The migration moved Ada's version to her auth identity and dropped the
    // old key from provider_metadata.
    let store = s.service.module().identity_store().clone();
    let ada = store
        .find_provider_identity("emailpass", "ada@example.com")
        .await
        .unwrap()
        .expect("ada survived");
    let metadata = ada.provider_metadata.clone().unwrap();
    assert!(metadata.contains_key("password"));
    assert!(!metadata.contains_key("credential_version"), "{metadata:?}");
    let identity = store
        .retrieve_auth_identity(&ada.auth_identity_id)
        .await
        .unwrap();
    assert_eq!(identity.credential_version, 1);

    // Tokens and sessions issued before the upgrade are still accepted.
    let r = s.post_bearer("/auth/token/refresh", ADA_TOKEN).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(claims(&r.token())["cv"], json!(1));
    let r = Reply::of(
        s.client
            .post(s.url("/auth/token/refresh"))
            .header("cookie", ADA_COOKIE)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "the old session works: {}", r.body);
    let r = s.post_bearer("/auth/token/refresh", BOB_TOKEN).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        claims(&r.token())["actor_id"],
        json!("cus_bob"),
        "the link survived"
    );

    // Passwords as they were.
    assert_eq!(s.login("ada@example.com", "first-pw").await.status, 401);
    assert_eq!(s.login("ada@example.com", "second-pw").await.status, 200);
    assert_eq!(s.login("bob@example.com", "bob-pw").await.status, 200);

    // A password change now ends the old token and session.
    let r = s
        .service
        .module()
        .update_provider(
            "emailpass",
            auth_module::AuthRequest::json(
                json!({"entity_id": "ada@example.com", "password": "third-pw"}),
            ),
        )
        .await
        .unwrap();
    assert!(r.is_authenticated(), "{r:?}");
    assert_eq!(
        s.post_bearer("/auth/token/refresh", ADA_TOKEN).await.status,
        401
    );
    let r = s
        .client
        .post(s.url("/auth/token/refresh"))
        .header("cookie", ADA_COOKIE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    s.stop().await;
}
