//! Login and token refresh over loopback against the real server, side by side
//! with their bounds, in one run:
//!
//! - login vs the hashing bound: argon2id verifies per second with one thread
//!   per core at the same parameters;
//! - refresh vs a stateless refresh served the same way (verify the bearer
//!   HS256 token, sign its claims again, no store: what the identity and
//!   credential-version checks cost);
//! - refresh vs a bare axum JSON echo route served the same way: of a linked
//!   token (the common case: it re-signs from the store) and of an actorless
//!   one (just registered: it re-runs the login's verification and MFA steps).
//!
//! `cargo bench -p auth-tests --bench http` (or `cargo xtask bench`).
//! `BENCH_SECS` (default 5) and `BENCH_CONNECTIONS` (default 32) tune a run.

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::json;

#[path = "common/mod.rs"]
mod common;
use common::{
    client_runtime, drive, drive_bearer, drive_echo, env_u64, linked_login, login_token,
    print_table, register, serve_app, serve_echo, serve_stateless_refresh,
};

const SECRET: &str = "bench-secret-0123456789abcdef0123456789";

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let secs = env_u64("BENCH_SECS", 5);
    let connections = env_u64("BENCH_CONNECTIONS", 32) as usize;
    let bound = common::header_and_bound("http", secs, connections);

    let dir = tempfile::tempdir().expect("tempdir");
    // The default server's stores: identities and state in one SQLite file.
    let auth_addr = serve_app(&format!(
        "[http]\njwt_secret = \"{SECRET}\"\n[store]\nurl = \"sqlite://{db}/auth.db\"\n[state]\nurl = \"sqlite://{db}/auth.db\"\n[[providers]]\nresolve = \"emailpass\"\nid = \"emailpass\"\n",
        db = dir.path().display()
    ));
    // The same server with the audit log off: what the log costs, in this run.
    let quiet_dir = tempfile::tempdir().expect("tempdir");
    let quiet_addr = serve_app(&format!(
        "[http]\njwt_secret = \"{SECRET}\"\n[store]\nurl = \"sqlite://{db}/auth.db\"\n[state]\nurl = \"sqlite://{db}/auth.db\"\n[audit]\nenabled = false\n[[providers]]\nresolve = \"emailpass\"\nid = \"emailpass\"\n",
        db = quiet_dir.path().display()
    ));
    let echo_addr = serve_echo();
    let stateless_addr = serve_stateless_refresh(SECRET);

    client_runtime().block_on(async move {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(connections)
            .build()
            .expect("client");
        let creds = json!({"email": "bench@example.com", "password": "bench-password"});
        let db = format!("sqlite://{}/auth.db", dir.path().display());
        linked_login(&client, auth_addr, &db, &creds).await;
        // An identity of its own: the login scenario's many devices of the
        // linked one (at most 100 are kept) never end this one's.
        let unlinked = register(
            &client,
            auth_addr,
            &json!({"email": "new@example.com", "password": "bench-password"}),
        )
        .await;

        let login_url = format!("http://{auth_addr}/auth/customer/emailpass");
        let login_creds = creds.clone();
        let login = drive(
            &client,
            secs,
            connections,
            Arc::new(move |c: &reqwest::Client| c.post(&login_url).json(&login_creds)),
        )
        .await;
        // A device of its own, signed in after the login scenario.
        let token = login_token(&client, auth_addr, &creds).await;
        let refresh_url = format!("http://{auth_addr}/auth/token/refresh");
        let refresh = drive_bearer(&client, secs, connections, refresh_url.clone(), &token).await;
        let refresh_unlinked =
            drive_bearer(&client, secs, connections, refresh_url, &unlinked).await;
        let stateless_url = format!("http://{stateless_addr}/refresh");
        let stateless = drive_bearer(&client, secs, connections, stateless_url, &token).await;
        let echo = drive_echo(&client, secs, connections, echo_addr, &token).await;

        print_table(&[
            ("login", &login),
            ("refresh", &refresh),
            ("refresh-unlinked", &refresh_unlinked),
            ("stateless-refresh", &stateless),
            ("echo", &echo),
        ]);
        let login_ratio = login.rps / bound;
        let refresh_ratio = refresh.rps / echo.rps;
        println!("login / hashing bound = {login_ratio:.2} (target >= 0.85)");
        println!("refresh / echo        = {refresh_ratio:.2} (target >= 0.45)");
        println!(
            "refresh / stateless   = {:.2} (target >= 0.90: verify and re-sign, no store)",
            refresh.rps / stateless.rps
        );
        println!(
            "refresh-unlinked / refresh = {:.2} (the cost of re-running the login steps)",
            refresh_unlinked.rps / refresh.rps
        );
        let quiet_db = format!("sqlite://{}/auth.db", quiet_dir.path().display());
        audit_cost(
            &client,
            secs,
            connections,
            (auth_addr, quiet_addr),
            &quiet_db,
            &creds,
        )
        .await;
        drop(quiet_dir);
        wrk_pair(secs, connections, auth_addr, echo_addr, &token);
    });
}

/// Login and refresh with the audit log on (`on`) and off (`off`), two
/// alternating rounds each: the log's cost as ratios of one run (refresh
/// writes no entry; a login writes one).
async fn audit_cost(
    client: &reqwest::Client,
    secs: u64,
    connections: usize,
    (on, off): (SocketAddr, SocketAddr),
    off_db: &str,
    creds: &serde_json::Value,
) {
    linked_login(client, off, off_db, creds).await;
    let (mut login, mut refresh) = ([0.0f64; 2], [0.0f64; 2]);
    for _ in 0..2 {
        for (i, addr) in [on, off].into_iter().enumerate() {
            let url = format!("http://{addr}/auth/customer/emailpass");
            let body = creds.clone();
            let l = drive(
                client,
                secs,
                connections,
                Arc::new(move |c: &reqwest::Client| c.post(&url).json(&body)),
            )
            .await;
            let token = login_token(client, addr, creds).await;
            let r = drive_bearer(
                client,
                secs,
                connections,
                format!("http://{addr}/auth/token/refresh"),
                &token,
            )
            .await;
            login[i] += l.rps;
            refresh[i] += r.rps;
        }
    }
    println!(
        "login   audit on / off = {:.3} (target >= 0.90; {:.0} vs {:.0} req/s)",
        login[0] / login[1],
        login[0] / 2.0,
        login[1] / 2.0
    );
    println!(
        "refresh audit on / off = {:.3} (target >= 0.90; {:.0} vs {:.0} req/s)",
        refresh[0] / refresh[1],
        refresh[0] / 2.0,
        refresh[1] / 2.0
    );
}

/// The same refresh/echo comparison with wrk (a lighter client than the one
/// above), when wrk is installed.
fn wrk_pair(secs: u64, connections: usize, auth: SocketAddr, echo: SocketAddr, token: &str) {
    if std::process::Command::new("wrk")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("(wrk not installed: skipping the wrk comparison)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let refresh_lua = dir.path().join("refresh.lua");
    let echo_lua = dir.path().join("echo.lua");
    std::fs::write(
        &refresh_lua,
        format!("wrk.method = \"POST\"\nwrk.headers[\"Authorization\"] = \"Bearer {token}\"\n"),
    )
    .expect("lua");
    std::fs::write(
        &echo_lua,
        format!(
            "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = '{{\"token\":\"{token}\"}}'\n"
        ),
    )
    .expect("lua");
    let run = |url: String, script: &std::path::Path| -> f64 {
        let out = std::process::Command::new("wrk")
            .args([
                "-t2",
                &format!("-c{connections}"),
                &format!("-d{secs}s"),
                "-s",
            ])
            .arg(script)
            .arg(&url)
            .output()
            .expect("wrk");
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| l.strip_prefix("Requests/sec:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let refresh = run(format!("http://{auth}/auth/token/refresh"), &refresh_lua);
    let echo = run(format!("http://{echo}/echo"), &echo_lua);
    println!(
        "wrk -t2 -c{connections} -d{secs}s: refresh {refresh:.0} req/s, echo {echo:.0} req/s, refresh / echo = {:.2}",
        refresh / echo.max(1.0)
    );
}
