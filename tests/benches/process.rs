//! The `auth-server` binary as its own process under load, beside its bounds
//! and baselines, in one run:
//!
//! - resident memory at start and 15 s after the load ends (the hashing
//!   threads free their argon2 areas after `release_memory_after`, 10 s);
//! - login and register vs the hashing bound (argon2id verifies per second
//!   with one thread per core), and login's p99 vs the time 32 connections
//!   queue on that bound (32 / bound);
//! - refresh vs a stateless refresh (verify the bearer HS256 token, sign its
//!   claims again, no store) and a bare JSON echo, both served by axum in a
//!   second process of this bench (as `auth-server` is a process of its own);
//!   refresh and the stateless refresh take turns, five slices each, so the
//!   machine's drift over the run weighs on both alike.
//!
//! The release binary is taken beside this bench (`target/release/auth-server`,
//! which `cargo xtask bench` builds first), or from `AUTH_SERVER_BIN`.
//! `BENCH_SECS` (default 10) and `BENCH_CONNECTIONS` (default 32) tune a run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

#[path = "common/mod.rs"]
mod common;
use common::{
    Stats, client_runtime, drive, drive_bearer, drive_echo, env_u64, print_table, serve_echo,
    serve_stateless_refresh,
};

const SECRET: &str = "bench-secret-0123456789abcdef0123456789";
/// How long after the load the idle memory is read.
const IDLE_AFTER: Duration = Duration::from_secs(15);
/// Turns refresh and the stateless refresh each take, `BENCH_SECS / TURNS`
/// seconds at a time.
const TURNS: u64 = 5;

/// The server process, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Server {
    /// Of the resident memory, the part that is anonymous (heap, stacks,
    /// written pages) in MiB: the rest is the binary's and libraries' pages.
    fn anon_mib(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/smaps_rollup", self.0.id()))
            .ok()
            .and_then(|r| {
                r.lines()
                    .find_map(|l| l.strip_prefix("Anonymous:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            })
            .map_or(f64::NAN, |kib| kib / 1024.0)
    }

    /// Resident memory in MiB (`VmRSS`).
    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id()))
            .expect("the server's /proc status");
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS");
        kib / 1024.0
    }
}

/// The release binary: `AUTH_SERVER_BIN`, else `auth-server` beside this
/// bench's own directory (`target/release/deps/..`), built if missing.
fn server_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("AUTH_SERVER_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("the bench's path");
    let release = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/release");
    let bin = release.join("auth-server");
    if !bin.exists() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--release", "-p", "auth-server"])
            .status()
            .expect("cargo build");
        assert!(status.success(), "cargo build --release -p auth-server");
    }
    bin
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if std::env::var_os(SERVE_BASELINES).is_some() {
        serve_baselines();
    }
    // Longer than the other benches' 5 s: a p99 needs enough logins.
    let secs = env_u64("BENCH_SECS", 10);
    let connections = env_u64("BENCH_CONNECTIONS", 32) as usize;
    let cores = common::header("process", secs, connections);

    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}/auth.db", dir.path().display());
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let config = dir.path().join("auth.toml");
    std::fs::write(
        &config,
        format!(
            // Registrations from one address are limited (200 per 15 min):
            // off here, where one client stands for many.
            "[http]\njwt_secret = \"{SECRET}\"\n[server]\nlisten = \"{addr}\"\n\
             [store]\nurl = \"{db}\"\n[state]\nurl = \"{db}\"\n\
             [limits]\nregister_per_address = {{ count = 0 }}\n\
             [[providers]]\nresolve = \"emailpass\"\nid = \"emailpass\"\n"
        ),
    )
    .expect("write the config");
    let server = Server(
        Command::new(server_binary())
            .args(["serve", "--config"])
            .arg(&config)
            // Logging as shipped (`info`), to stderr, which is dropped.
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start auth-server"),
    );
    let (baselines, stateless_addr, echo_addr) = spawn_baselines();

    client_runtime().block_on(async move {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(connections)
            .build()
            .expect("client");
        let started = Instant::now();
        while client
            .get(format!("http://{addr}/health"))
            .send()
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "auth-server did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let rss_start = server.rss_mib();

        let creds = json!({"email": "bench@example.com", "password": "bench-password"});
        common::linked_login(&client, addr, &db, &creds).await;
        // The bound is measured right before the hashing scenarios and right
        // after them, and their mean is used: this machine's speed drifts
        // over a run, and a bound read minutes away would carry that drift.
        let bound_before = common::hashing_bound(secs);
        let login_url = format!("http://{addr}/auth/customer/emailpass");
        let login = drive(
            &client,
            secs,
            connections,
            Arc::new({
                let creds = creds.clone();
                move |c: &reqwest::Client| c.post(&login_url).json(&creds)
            }),
        )
        .await;
        // A device of its own, signed in after the login scenario (an
        // identity keeps its 100 most recently seen devices).
        let token = common::login_token(&client, addr, &creds).await;
        let register_url = format!("http://{addr}/auth/customer/emailpass/register");
        let n = Arc::new(AtomicU64::new(0));
        let register = drive(
            &client,
            secs,
            connections,
            Arc::new(move |c: &reqwest::Client| {
                let i = n.fetch_add(1, Ordering::Relaxed);
                c.post(&register_url).json(&json!({
                    "email": format!("new-{i}@example.com"),
                    "password": "bench-password",
                }))
            }),
        )
        .await;
        // Read before the bound: 10 s after its last hash a hashing thread
        // frees its area, so this is the peak the hashing left.
        let rss_hashed = server.rss_mib();
        let bound_after = common::hashing_bound(secs);
        let bound = (bound_before + bound_after) / 2.0;
        // Refresh and its stateless baseline take turns in short slices, so
        // the machine's drift over the run weighs on both alike.
        let refresh_url = format!("http://{addr}/auth/token/refresh");
        let stateless_url = format!("http://{stateless_addr}/refresh");
        let slice = (secs / TURNS).max(1);
        let (mut refresh, mut stateless) = (Vec::new(), Vec::new());
        let mut load_ended = Instant::now();
        for _ in 0..TURNS {
            let url = refresh_url.clone();
            refresh.push(drive_bearer(&client, slice, connections, url, &token).await);
            load_ended = Instant::now();
            let url = stateless_url.clone();
            stateless.push(drive_bearer(&client, slice, connections, url, &token).await);
        }
        let (refresh, stateless) = (Stats::mean(&refresh), Stats::mean(&stateless));
        let echo = drive_echo(&client, secs, connections, echo_addr, &token).await;
        tokio::time::sleep(IDLE_AFTER.saturating_sub(load_ended.elapsed())).await;
        let rss_idle = server.rss_mib();
        let anon_idle = server.anon_mib();

        print_table(&[
            ("login", &login),
            ("register", &register),
            ("refresh", &refresh),
            ("stateless-refresh", &stateless),
            ("echo", &echo),
        ]);
        println!(
            "hashing bound (argon2id m=19456 t=2 p=1, {cores} threads): {bound:.1} verifies/s \
             ({bound_before:.1} before login, {bound_after:.1} after register)"
        );
        let queue_ms = 1000.0 * connections as f64 / bound;
        println!(
            "RSS: {rss_start:.1} MiB at start, {rss_hashed:.1} MiB after login and register, \
             {rss_idle:.1} MiB {}s after it (target <= 16; {anon_idle:.1} MiB of it anonymous, \
             the rest code and data pages of the binary and libraries)",
            IDLE_AFTER.as_secs()
        );
        println!(
            "login / hashing bound    = {:.2} (target >= 0.90)",
            login.rps / bound
        );
        println!(
            "login p99 / ({connections} / bound)  = {:.2} ({:.0} ms vs {queue_ms:.0} ms; target <= 1.25)",
            login.p99_ms / queue_ms,
            login.p99_ms
        );
        println!(
            "register / hashing bound = {:.2} (target >= 0.85)",
            register.rps / bound
        );
        println!(
            "refresh / stateless      = {:.2} (target >= 0.90)",
            refresh.rps / stateless.rps
        );
        println!(
            "refresh / echo           = {:.2}",
            refresh.rps / echo.rps
        );
        drop(server);
        drop(baselines);
    });
}

/// Set in the environment of this bench's second process, which serves the
/// baselines.
const SERVE_BASELINES: &str = "BENCH_SERVE_BASELINES";

/// The baselines' process: serves them and prints their addresses
/// (`stateless ADDR echo ADDR`), until killed.
fn serve_baselines() -> ! {
    let stateless = serve_stateless_refresh(SECRET);
    let echo = serve_echo();
    println!("stateless {stateless} echo {echo}");
    loop {
        std::thread::park();
    }
}

/// Starts this bench again as the baselines' process: `auth-server` and the
/// baselines are each a process of their own beside the load generator's,
/// so each pays the same switches between processes (in the load
/// generator's own process the baselines would pay only switches between
/// its threads, which cost less).
fn spawn_baselines() -> (Server, SocketAddr, SocketAddr) {
    use std::io::BufRead;
    let mut child = Command::new(std::env::current_exe().expect("the bench's path"))
        .env(SERVE_BASELINES, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the baselines");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut line)
        .expect("the baselines' addresses");
    let addr = |name: &str| -> SocketAddr {
        let mut words = line.split_whitespace();
        words
            .by_ref()
            .find(|w| *w == name)
            .and_then(|_| words.next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no {name} address in {line:?}"))
    };
    let (stateless, echo) = (addr("stateless"), addr("echo"));
    (Server(child), stateless, echo)
}
