//! The server on PostgreSQL, end to end: each test in a fresh schema, dropped
//! afterwards. PostgreSQL missing: skipped with a printed reason, except under
//! `CI`, where it fails.

use std::time::Duration;

use serde_json::json;

use crate::support::{EMAILPASS, SECRET, TestServer, claims, pg_url};

/// A pool on the test database, or `None` (after saying why) outside CI.
pub(crate) async fn admin_pool() -> Option<sqlx::PgPool> {
    let url = pg_url();
    let connect = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&url);
    match tokio::time::timeout(Duration::from_secs(10), connect).await {
        Ok(Ok(pool)) => Some(pool),
        other => {
            let reason = match other {
                Ok(Err(e)) => e.to_string(),
                Err(_) => "connection timed out".to_owned(),
                Ok(Ok(_)) => unreachable!(),
            };
            assert!(
                std::env::var_os("CI").is_none(),
                "PostgreSQL is required under CI but is unreachable: {reason}"
            );
            eprintln!("skipping PostgreSQL server test: {reason} (set AUTH_TEST_POSTGRES_URL)");
            None
        }
    }
}

fn config(schema: &str) -> String {
    format!(
        "[http]\njwt_secret = \"{SECRET}\"\n\n[store]\nurl = \"{}\"\nschema = \"{schema}\"\n\n{EMAILPASS}",
        pg_url()
    )
}

#[tokio::test]
async fn the_server_runs_on_postgres_and_keeps_data_across_restarts() {
    let Some(pool) = admin_pool().await else {
        return;
    };
    let schema = format!("auth_it_{}", auth_module::generate_id("s").to_lowercase());
    let toml = config(&schema);

    let s = TestServer::start_toml(&toml).await;
    let token = s.register("pg@example.com", "pw-pg").await;
    let id = claims(&token)["auth_identity_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(s.login("pg@example.com", "pw-nope").await.status, 401);
    let dup = s
        .post_json(
            "/auth/customer/emailpass/register",
            json!({"email": "PG@example.com", "password": "other"}),
        )
        .await;
    assert_eq!(dup.status, 401);
    s.service
        .module()
        .link_actor(&id, "customer", "cus_pg")
        .await
        .unwrap();
    let refreshed = s.post_bearer("/auth/token/refresh", &token).await.token();
    assert_eq!(claims(&refreshed)["actor_id"], "cus_pg");
    s.stop().await;

    let s = TestServer::start_toml(&toml).await;
    let login = s.login("pg@example.com", "pw-pg").await;
    assert_eq!(login.status, 200);
    assert_eq!(claims(&login.token())["actor_id"], "cus_pg");
    s.stop().await;

    // The rows are in the test's own schema, under the data model's names.
    let count: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM \"{schema}\".provider_identity WHERE entity_id = 'pg@example.com' AND provider = 'emailpass'"
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(count, 1);
    sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_schema_needs_a_postgres_store() {
    let config = auth_module::Config::from_toml_str(&format!(
        "[store]\nurl = \"sqlite://x.db\"\nschema = \"s\"\n{EMAILPASS}"
    ))
    .unwrap();
    // Refused before anything is opened or locked.
    let e = auth_server::open_stores(&config.store, &config.state)
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        "store.schema: only a postgres:// store has schemas"
    );
}
