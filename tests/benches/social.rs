//! Social-login callbacks per second over loopback: the real server (SQLite)
//! against the in-process fake identity provider, each flow a login (the
//! `location`), the fake's authorize redirect, and the callback (state
//! spent, code exchanged, id_token verified against the cached key set,
//! identity found or created, token signed).
//!
//! `cargo bench -p auth-tests --bench social` (or `cargo xtask bench`).
//! `BENCH_SECS` (default 5) and `BENCH_CONNECTIONS` (default 16) tune a run;
//! `BENCH_USERS` (default 200) is how many distinct users log in (returning
//! users after the first round).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use auth_testkit::idp::{FakeIdp, FakeUser};
use serde_json::Value;

#[path = "common/mod.rs"]
mod common;
use common::{env_u64, gather};

const CALLBACK: &str = "http://shop.bench/auth/callback";

/// One whole flow for `kind`; `Some(callback latency)` if it gave a token.
async fn flow(client: &reqwest::Client, base: &str, kind: &str) -> Option<Duration> {
    let r = client
        .post(format!("{base}/auth/customer/{kind}"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .ok()?;
    let location = r.json::<Value>().await.ok()?["location"]
        .as_str()?
        .to_owned();
    let back = client.get(location).send().await.ok()?;
    let back = back.headers().get("location")?.to_str().ok()?.to_owned();
    let query = reqwest::Url::parse(&back).ok()?.query()?.to_owned();
    let t = Instant::now();
    let r = client
        .get(format!("{base}/auth/customer/{kind}/callback?{query}"))
        .send()
        .await
        .ok()?;
    let ok = r.status().is_success() && r.json::<Value>().await.ok()?["token"].is_string();
    ok.then(|| t.elapsed())
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let secs = env_u64("BENCH_SECS", 5);
    let connections = env_u64("BENCH_CONNECTIONS", 16) as usize;
    let users = env_u64("BENCH_USERS", 200);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    println!(
        "# social bench: {secs}s per provider, {connections} concurrent flows, {cores} cores shared by client, server and fake"
    );
    let idp_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("fake runtime");
    let idp = Arc::new(idp_rt.block_on(FakeIdp::start()));
    idp.add_client("google-client", Some("google-secret"));
    idp.add_client("github-client", Some("github-secret"));

    let dir = tempfile::tempdir().expect("tempdir");
    let config = auth_server::AppConfig::from_toml_str(&format!(
        "[http]\njwt_secret = \"bench-secret-0123456789abcdef0123456789\"\n\
         [store]\nurl = \"sqlite://{db}/auth.db\"\n\
         [[providers]]\nresolve = \"google\"\nid = \"google\"\n[providers.options]\n\
         clientId = \"google-client\"\nclientSecret = \"google-secret\"\ncallbackUrl = \"{CALLBACK}\"\n\
         issuer = \"{issuer}\"\nauthorizationUrl = \"{auth}\"\ntokenUrl = \"{token}\"\njwksUrl = \"{jwks}\"\n\
         [[providers]]\nresolve = \"github\"\nid = \"github\"\n[providers.options]\n\
         clientId = \"github-client\"\nclientSecret = \"github-secret\"\ncallbackUrl = \"{CALLBACK}\"\n\
         authorizationUrl = \"{gh_auth}\"\ntokenUrl = \"{gh_token}\"\napiUrl = \"{api}\"\n",
        db = dir.path().display(),
        issuer = idp.issuer(),
        auth = idp.authorization_url(),
        token = idp.token_url(),
        jwks = idp.jwks_url(),
        gh_auth = idp.github_authorization_url(),
        gh_token = idp.github_token_url(),
        api = idp.api_url(),
    ))
    .expect("config");
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("server runtime");
    let app = server_rt
        .block_on(auth_server::build_app(config))
        .expect("app");
    let listener = server_rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    server_rt.spawn(auth_server::serve(listener, app, std::future::pending()));

    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("client runtime");
    client_rt.block_on(async move {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(connections * 2)
            .build()
            .expect("client");
        for kind in ["google", "github"] {
            let next_user = Arc::new(AtomicU64::new(0));
            let deadline = Instant::now() + Duration::from_secs(secs);
            let start = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..connections {
                let (client, base, idp, next_user) =
                    (client.clone(), base.clone(), idp.clone(), next_user.clone());
                tasks.push(tokio::spawn(async move {
                    let (mut lat, mut errors) = (Vec::new(), 0u64);
                    while Instant::now() < deadline {
                        // The fake logs in whoever was set last: close enough
                        // for throughput, and users repeat after `users`.
                        let n = next_user.fetch_add(1, Ordering::Relaxed) % users;
                        idp.set_user(FakeUser::new(&format!("{}", 100_000 + n), &format!("u{n}@bench.test")));
                        match flow(&client, &base, kind).await {
                            Some(d) => lat.push(d),
                            None => errors += 1,
                        }
                    }
                    (lat, errors)
                }));
            }
            let stats = gather(tasks, start).await;
            println!(
                "{kind:>6}: {:8.1} callbacks/s (whole flows)  callback p50 {:6.2} ms  p99 {:6.2} ms  errors {}",
                stats.rps, stats.p50_ms, stats.p99_ms, stats.errors,
            );
        }
        println!(
            "fake identity provider: {} token requests, {} key-set fetches",
            idp.requests("/token") + idp.requests("/login/oauth/access_token"),
            idp.requests("/jwks")
        );
    });
}
