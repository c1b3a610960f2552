//! What the loopback benches share: settings from the environment, serving a
//! router on its own runtime, and driving and summarising a timed run.

// Each bench uses part of this module.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use provider_emailpass::{HashOptions, PasswordHashing};

/// `name` from the environment as a number, else `default`.
pub(crate) fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A run's throughput and latency.
pub(crate) struct Stats {
    pub(crate) rps: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) errors: u64,
}

impl Stats {
    /// Runs taken in turns as one: the mean of their rates and percentiles
    /// (each turn is as long), and their errors summed.
    pub(crate) fn mean(turns: &[Stats]) -> Stats {
        let n = turns.len().max(1) as f64;
        let mean = |f: fn(&Stats) -> f64| turns.iter().map(f).sum::<f64>() / n;
        Stats {
            rps: mean(|s| s.rps),
            p50_ms: mean(|s| s.p50_ms),
            p99_ms: mean(|s| s.p99_ms),
            errors: turns.iter().map(|s| s.errors).sum(),
        }
    }
}

/// Waits for the run's tasks (each answering its latencies and error count)
/// and summarises them from `start`.
pub(crate) async fn gather(
    tasks: Vec<tokio::task::JoinHandle<(Vec<Duration>, u64)>>,
    start: Instant,
) -> Stats {
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("task");
        all.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Stats {
        rps: all.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        errors,
    }
}

/// `connections` loops sending `make()` requests for `secs`; any answer but
/// a 2xx counts as an error.
pub(crate) async fn drive(
    client: &reqwest::Client,
    secs: u64,
    connections: usize,
    make: Arc<dyn Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync>,
) -> Stats {
    drive_expecting(client, secs, connections, make, None).await
}

/// As [`drive`], counting answers of status `expected` (any 2xx if `None`).
pub(crate) async fn drive_expecting(
    client: &reqwest::Client,
    secs: u64,
    connections: usize,
    make: Arc<dyn Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync>,
    expected: Option<u16>,
) -> Stats {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (client, make) = (client.clone(), make.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                match make(&client).send().await {
                    Ok(r)
                        if expected
                            .map_or(r.status().is_success(), |s| r.status().as_u16() == s) =>
                    {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed());
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    gather(tasks, start).await
}

/// Binds 127.0.0.1:0 and runs `serve` on it inside a multi-threaded runtime
/// of its own thread (so the server's tasks run there). `serve` calls
/// `ready` once it accepts requests; the address is answered then, so
/// servers started one after another are built one after another.
fn on_own_runtime<F, Fut>(serve: F) -> SocketAddr
where
    F: FnOnce(tokio::net::TcpListener, Box<dyn FnOnce() + Send>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("server runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            let ready = Box::new(move || tx.send(addr).expect("send addr"));
            serve(listener, ready).await;
        });
    });
    rx.recv().expect("server address")
}

/// Serves `router` with `axum::serve` on a runtime of its own; the address.
pub(crate) fn serve_in_background(router: axum::Router) -> SocketAddr {
    on_own_runtime(move |listener, ready| async move {
        ready();
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("serve");
    })
}

/// A bare axum JSON echo route (`POST /echo`), served as the auth routes are:
/// the reference the auth routes are compared with.
pub(crate) fn serve_echo() -> SocketAddr {
    use axum::Json;
    use serde_json::Value;
    serve_in_background(axum::Router::new().route(
        "/echo",
        axum::routing::post(|Json(v): Json<Value>| async move { Json(v) }),
    ))
}

/// A stateless refresh, served like the echo: verify the bearer HS256 token
/// (pinned algorithm) with `secret`, sign its claims again with a new
/// lifetime, no store. The bound a refresh could reach without its identity
/// and credential-version checks.
pub(crate) fn serve_stateless_refresh(secret: &str) -> SocketAddr {
    use axum::Json;
    use axum::http::{HeaderMap, StatusCode};
    let tokens = auth_module::Tokens::hs256(
        &auth_module::Secret::new(secret),
        std::time::Duration::from_secs(24 * 3600),
    );
    serve_in_background(axum::Router::new().route(
        "/refresh",
        axum::routing::post(move |headers: HeaderMap| {
            let tokens = tokens.clone();
            async move {
                let token = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .ok_or(StatusCode::UNAUTHORIZED)?;
                let mut claims = tokens.verify(token).ok_or(StatusCode::UNAUTHORIZED)?;
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                claims.iat = now;
                claims.exp = now + 24 * 3600;
                let token = tokens
                    .sign(&claims)
                    .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
                Ok::<_, StatusCode>(Json(serde_json::json!({ "token": token })))
            }
        }),
    ))
}

/// The load generator's runtime: one worker thread.
pub(crate) fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("client runtime")
}

/// Registers `creds` with emailpass at `addr`; the token.
pub(crate) async fn register(
    client: &reqwest::Client,
    addr: SocketAddr,
    creds: &serde_json::Value,
) -> String {
    let r = client
        .post(format!("http://{addr}/auth/customer/emailpass/register"))
        .json(creds)
        .send()
        .await
        .expect("register");
    let answer = r.json::<serde_json::Value>().await.expect("json");
    answer["token"]
        .as_str()
        .unwrap_or_else(|| panic!("registration failed: {answer}"))
        .to_owned()
}

/// Builds the server of config `toml` inside a runtime of its own and serves
/// it there with `auth_server::serve` (the server's own connection loop, as
/// the binary runs); the address. Stores' background tasks (a Redis
/// connection's driver) run on that runtime too.
pub(crate) fn serve_app(toml: &str) -> SocketAddr {
    let toml = toml.to_owned();
    on_own_runtime(move |listener, ready| async move {
        let config = auth_server::AppConfig::from_toml_str(&toml).expect("config");
        let app = auth_server::build_app(config).await.expect("app");
        ready();
        auth_server::serve(listener, app, std::future::pending())
            .await
            .expect("serve");
    })
}

/// argon2id verifies per second with one thread per core at the default
/// parameters: the bound a login rate is compared with.
pub(crate) fn hashing_bound(secs: u64) -> f64 {
    verify_bound(secs, None)
}

/// Verifies per second of `stored` (a hash of `bench-password`; default: an
/// argon2id one at the default parameters) with one thread per core.
pub(crate) fn verify_bound(secs: u64, stored: Option<&str>) -> f64 {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let hashing = Arc::new(PasswordHashing::new(HashOptions::default()).expect("options"));
    let stored = Arc::new(match stored {
        Some(s) => s.to_owned(),
        None => hashing.hash("bench-password").expect("hash"),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (h, s, stop, count) =
                (hashing.clone(), stored.clone(), stop.clone(), count.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    assert!(h.verify(&s, "bench-password").matches);
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("thread");
    }
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// The claims of a JWT (its payload, unverified).
pub(crate) fn claims(token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// Prints one row per scenario: requests per second, p50, p99, errors.
pub(crate) fn print_table(rows: &[(&str, &Stats)]) {
    println!(
        "{:<17} {:>10} {:>9} {:>9} {:>7}",
        "scenario", "req/s", "p50_ms", "p99_ms", "errors"
    );
    for (name, s) in rows {
        println!(
            "{name:<17} {:>10.1} {:>9.2} {:>9.2} {:>7}",
            s.rps, s.p50_ms, s.p99_ms, s.errors
        );
    }
}

/// Registers `creds` with emailpass at `addr`, links the identity to a
/// customer in the SQLite store at `db` (as a host's own route would), and
/// logs in again: the registration's token (no actor) and the linked one.
pub(crate) async fn linked_login(
    client: &reqwest::Client,
    addr: SocketAddr,
    db: &str,
    creds: &serde_json::Value,
) -> (String, String) {
    let unlinked = register(client, addr, creds).await;
    let id = claims(&unlinked)["auth_identity_id"]
        .as_str()
        .expect("an identity")
        .to_owned();
    let store = auth_store_sql::SqlStore::sqlite(db)
        .await
        .expect("open the bench database");
    auth_module::IdentityStore::patch_app_metadata(
        &store,
        &id,
        "customer_id",
        Some(serde_json::json!("cus_bench")),
    )
    .await
    .expect("link the customer");
    store.close().await;
    let token = login_token(client, addr, creds).await;
    assert_ne!(claims(&token)["actor_id"], "", "the token is linked");
    (unlinked, token)
}

/// The token of a login with `creds` at `addr`.
pub(crate) async fn login_token(
    client: &reqwest::Client,
    addr: SocketAddr,
    creds: &serde_json::Value,
) -> String {
    client
        .post(format!("http://{addr}/auth/customer/emailpass"))
        .json(creds)
        .send()
        .await
        .expect("login")
        .json::<serde_json::Value>()
        .await
        .expect("json")["token"]
        .as_str()
        .expect("a token")
        .to_owned()
}

/// `connections` loops posting to `url` with `bearer` for `secs`.
pub(crate) async fn drive_bearer(
    client: &reqwest::Client,
    secs: u64,
    connections: usize,
    url: String,
    token: &str,
) -> Stats {
    let bearer = format!("Bearer {token}");
    drive(
        client,
        secs,
        connections,
        Arc::new(move |c: &reqwest::Client| c.post(&url).header("authorization", &bearer)),
    )
    .await
}

/// `connections` loops posting `{"token": token}` to the echo route at
/// `echo` for `secs`: the reference every HTTP bench compares with.
pub(crate) async fn drive_echo(
    client: &reqwest::Client,
    secs: u64,
    connections: usize,
    echo: SocketAddr,
    token: &str,
) -> Stats {
    let url = format!("http://{echo}/echo");
    let body = serde_json::json!({ "token": token });
    drive(
        client,
        secs,
        connections,
        Arc::new(move |c: &reqwest::Client| c.post(&url).json(&body)),
    )
    .await
}

/// Prints the run's header; the number of cores.
pub(crate) fn header(name: &str, secs: u64, connections: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    println!(
        "# {name} bench: {secs}s per scenario, {connections} connections, {cores} cores shared by client and server"
    );
    cores
}

/// Prints the run's header and measures the hashing bound, printed too:
/// the start every loopback bench beside the bound shares.
pub(crate) fn header_and_bound(name: &str, secs: u64, connections: usize) -> f64 {
    let cores = header(name, secs, connections);
    let bound = hashing_bound(secs);
    println!("hashing bound (argon2id m=19456 t=2 p=1, {cores} threads): {bound:.1} verifies/s");
    bound
}
