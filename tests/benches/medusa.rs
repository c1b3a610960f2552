//! Moving over from Medusa, measured:
//!
//! - `import-medusa` of `BENCH_IMPORT_ROWS` (default 100,000) generated
//!   Medusa identities (one emailpass provider identity each, all sharing one
//!   precomputed scrypt-kdf hash: real scrypt per row would take hours), into
//!   SQLite and into PostgreSQL: identities per second;
//! - logins of imported users over loopback against the scrypt bound (scrypt
//!   verifies per second at Medusa's cost, one thread per core): first logins
//!   (scrypt, then the argon2id re-hash and its write) and wrong passwords
//!   (scrypt alone; the timing floor is a timer).
//!
//! Needs PostgreSQL (`AUTH_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`).
//! `cargo bench -p auth-tests --bench medusa` (or `cargo xtask bench`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::json;

#[path = "common/mod.rs"]
mod common;
use common::{client_runtime, drive, drive_expecting, env_u64, serve_app, verify_bound};

/// `bench-password` at Medusa's scrypt-kdf cost (logN 15, r 8, p 1), made by
/// the `scrypt-kdf` npm package.
const MEDUSA_HASH: &str = "c2NyeXB0AA8AAAAIAAAAAafrr+mBiSlDnFligVz3eSUZBwGGe7pdYg7VDOcST7rTE6sNxS06ruX9yjIhGNJnDXp97PT0GM/KzQlsAoQTm2q41iqgmiqtIjLj4k9PUTzr";

fn pg_url() -> String {
    std::env::var("AUTH_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

async fn medusa_source(pool: &sqlx::PgPool, schema: &str, rows: u64) {
    for sql in [
        format!("CREATE SCHEMA \"{schema}\""),
        format!(
            "CREATE TABLE \"{schema}\".auth_identity (id text PRIMARY KEY, app_metadata jsonb, \
             created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL, deleted_at timestamptz)"
        ),
        format!(
            "CREATE TABLE \"{schema}\".provider_identity (id text PRIMARY KEY, entity_id text NOT NULL, \
             provider text NOT NULL, auth_identity_id text NOT NULL, user_metadata jsonb, \
             provider_metadata jsonb, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL, \
             deleted_at timestamptz)"
        ),
        format!(
            "INSERT INTO \"{schema}\".auth_identity \
             SELECT 'authid_' || g, jsonb_build_object('customer_id', 'cus_' || g), now(), now(), NULL \
             FROM generate_series(1, {rows}) g"
        ),
        format!(
            "INSERT INTO \"{schema}\".provider_identity \
             SELECT 'provid_' || g, 'user' || g || '@example.test', 'emailpass', 'authid_' || g, \
             jsonb_build_object('email', 'user' || g || '@example.test'), \
             jsonb_build_object('password', '{MEDUSA_HASH}'), now(), now(), NULL \
             FROM generate_series(1, {rows}) g"
        ),
    ] {
        sqlx::query(&sql).execute(pool).await.expect("source rows");
    }
}

async fn import(toml: &str, schema: &str) -> (f64, auth_server::ImportSummary) {
    let config = auth_server::AppConfig::from_toml_str(toml).expect("config");
    let mut options = auth_server::ImportOptions::new(pg_url());
    options.schema = schema.to_owned();
    let started = Instant::now();
    let summary = auth_server::import_medusa(&config, &options, &|_, _| {})
        .await
        .expect("import");
    (
        summary.imported as f64 / started.elapsed().as_secs_f64(),
        summary,
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let secs = env_u64("BENCH_SECS", 5);
    let rows = env_u64("BENCH_IMPORT_ROWS", 100_000);
    let connections = env_u64("BENCH_CONNECTIONS", 32) as usize;
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let pool = match rt.block_on(sqlx::PgPool::connect(&pg_url())) {
        Ok(p) => p,
        Err(e) => {
            println!("(PostgreSQL unreachable: {e}; skipping the Medusa bench)");
            return;
        }
    };
    let tag = auth_module::generate_id("b").to_ascii_lowercase();
    let (source, target) = (format!("medusa_src_{tag}"), format!("import_dst_{tag}"));
    rt.block_on(medusa_source(&pool, &source, rows));
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite_toml = format!(
        "[http]\njwt_secret = \"bench-secret-0123456789abcdef0123456789\"\n\
         [store]\nurl = \"sqlite://{}/auth.db\"\n[state]\nurl = \"memory://\"\n\
         [limits]\nlogin_per_identifier_and_address = {{ count = 0 }}\n\
         login_per_identifier = {{ count = 0 }}\nlogin_per_address = {{ count = 0 }}\n\
         [[providers]]\nresolve = \"emailpass\"\nid = \"emailpass\"\n",
        dir.path().display()
    );
    let pg_toml = format!(
        "[http]\njwt_secret = \"bench-secret-0123456789abcdef0123456789\"\n\
         [store]\nurl = \"{}\"\nschema = \"{target}\"\n\
         [[providers]]\nresolve = \"emailpass\"\nid = \"emailpass\"\n",
        pg_url()
    );
    println!(
        "# medusa bench: {rows} generated Medusa identities; logins {secs}s, {connections} connections"
    );
    let (sqlite_rate, s) = rt.block_on(import(&sqlite_toml, &source));
    println!(
        "import into SQLite:     {sqlite_rate:>8.0} identities/s ({} imported)",
        s.imported
    );
    let (pg_rate, s) = rt.block_on(import(&pg_toml, &source));
    println!(
        "import into PostgreSQL: {pg_rate:>8.0} identities/s ({} imported)",
        s.imported
    );
    for sql in [
        format!("DROP SCHEMA \"{source}\" CASCADE"),
        format!("DROP SCHEMA \"{target}\" CASCADE"),
    ] {
        rt.block_on(sqlx::query(&sql).execute(&pool)).expect("drop");
    }
    drop(rt);

    let bound = verify_bound(secs, Some(MEDUSA_HASH));
    println!("scrypt bound (logN 15, r 8, p 1, one thread per core): {bound:.1} verifies/s");
    let addr = serve_app(&sqlite_toml);
    client_runtime().block_on(async move {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(connections)
            .build()
            .expect("client");
        let url = format!("http://{addr}/auth/customer/emailpass");
        let next = Arc::new(AtomicU64::new(1));
        let login = |password: &'static str| {
            let (url, next) = (url.clone(), next.clone());
            Arc::new(move |c: &reqwest::Client| {
                let n = next.fetch_add(1, Ordering::Relaxed);
                c.post(&url).json(&json!({
                    "email": format!("user{n}@example.test"),
                    "password": password,
                }))
            })
        };
        let first = drive(&client, secs, connections, login("bench-password")).await;
        let wrong = drive_expecting(
            &client,
            secs,
            connections,
            login("a wrong password"),
            Some(401),
        )
        .await;
        println!(
            "first logins of imported users: {:.1}/s = {:.2} of the scrypt bound \
             (each also re-hashes to argon2id and writes it; p50 {:.0} ms)",
            first.rps,
            first.rps / bound,
            first.p50_ms
        );
        println!(
            "wrong passwords of imported users: {:.1}/s = {:.2} of the scrypt bound (p50 {:.0} ms)",
            wrong.rps,
            wrong.rps / bound,
            wrong.p50_ms
        );
    });
}
