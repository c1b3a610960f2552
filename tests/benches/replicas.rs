//! Token refresh through two replicas on PostgreSQL and Redis, summed over
//! both, beside a bare axum JSON echo route served the same way, in one run.
//! Each replica caches identities and proves every hit current with one
//! Redis read (`auth_module::SharedIdentityCache`).
//!
//! `cargo bench -p auth-tests --bench replicas` (or `cargo xtask bench`).
//! Needs PostgreSQL (`AUTH_TEST_POSTGRES_URL`, default the local `test`
//! database) and Redis (`AUTH_TEST_REDIS_URL`, default 127.0.0.1:6379).
//! `BENCH_SECS` (default 5) and `BENCH_CONNECTIONS` (default 32) tune a run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::json;

#[path = "common/mod.rs"]
mod common;
use common::{
    client_runtime, drive, drive_echo, env_u64, hashing_bound, register, serve_app, serve_echo,
};

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let secs = env_u64("BENCH_SECS", 5);
    let connections = env_u64("BENCH_CONNECTIONS", 32) as usize;
    let pg = std::env::var("AUTH_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let redis = std::env::var("AUTH_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let run = format!("{}", std::process::id());
    let schema = format!("auth_bench_{run}");
    let toml = format!(
        "[http]\njwt_secret = \"bench-secret-0123456789abcdef0123456789\"\n\
         [store]\nurl = \"{pg}\"\nschema = \"{schema}\"\n\
         [state]\nurl = \"{redis}\"\nkey_prefix = \"auth-bench:{run}:\"\n\
         [[providers]]\nresolve = \"emailpass\"\nid = \"emailpass\"\n"
    );
    println!(
        "# replicas bench: {secs}s per scenario, {connections} connections, 2 replicas on PostgreSQL + Redis"
    );
    let setup = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let bound = hashing_bound(secs);
    println!(
        "hashing bound (argon2id m=19456 t=2 p=1, one thread per core): {bound:.1} verifies/s"
    );
    let addrs: Vec<_> = (0..2).map(|_| serve_app(&toml)).collect();
    let echo_addr = serve_echo();

    client_runtime().block_on(async move {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(connections)
            .build()
            .expect("client");
        let creds = json!({"email": "bench@example.com", "password": "bench-password"});
        let token = register(&client, addrs[0], &creds).await;
        // Login through one replica (the other idle), against the bound.
        let login_url = format!("http://{}/auth/customer/emailpass", addrs[1]);
        let login_creds = creds.clone();
        let login = drive(
            &client,
            secs,
            connections,
            Arc::new(move |c: &reqwest::Client| c.post(&login_url).json(&login_creds)),
        )
        .await;
        let urls: Vec<String> = addrs
            .iter()
            .map(|a| format!("http://{a}/auth/token/refresh"))
            .collect();
        let next = Arc::new(AtomicU64::new(0));
        let bearer = format!("Bearer {token}");
        let refresh = drive(
            &client,
            secs,
            connections,
            Arc::new(move |c: &reqwest::Client| {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize % urls.len();
                c.post(&urls[i]).header("authorization", &bearer)
            }),
        )
        .await;
        let echo = drive_echo(&client, secs, connections, echo_addr, &token).await;
        println!(
            "{:<22} {:>10} {:>9} {:>9} {:>7}",
            "scenario", "req/s", "p50_ms", "p99_ms", "errors"
        );
        for (name, s) in [
            ("login (1 replica)", &login),
            ("refresh (2 replicas)", &refresh),
            ("echo", &echo),
        ] {
            println!(
                "{name:<22} {:>10.1} {:>9.2} {:>9.2} {:>7}",
                s.rps, s.p50_ms, s.p99_ms, s.errors
            );
        }
        println!(
            "login / hashing bound: {:.2} (target >= 0.85)",
            login.rps / bound
        );
        println!(
            "refresh / echo: {:.2} (target >= 0.25)",
            refresh.rps / echo.rps
        );
    });
    // Drop the bench's schema.
    setup.block_on(async {
        if let Ok(pool) = sqlx::PgPool::connect(&pg).await {
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .execute(&pool)
                .await;
        }
    });
}
