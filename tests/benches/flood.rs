//! A credential-stuffing flood against the real server, with the default
//! limits, behind a trusted proxy (`X-Forwarded-For` names the client):
//!
//! - ten client addresses send wrong passwords at ten times what the hashing
//!   threads can verify (measured first from the unloaded logins), 160
//!   connections in all;
//! - one other address logs in correctly, one login after another.
//!
//! It prints the legitimate login's success rate and latency before the flood
//! and once the limits have engaged, and the latency of the refused flood
//! requests. Targets: every legitimate login answers 200, its p99 stays
//! within 2x its unloaded figure, refused flood requests answer in under 5 ms
//! at p99.
//!
//! `cargo bench -p auth-tests --bench flood` (or `cargo xtask bench`).
//! `BENCH_SECS` (default 5) sets each phase's length.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

/// Logs in correctly from `addr` until `stop`; answers (status, ms) pairs.
async fn legitimate(
    client: reqwest::Client,
    url: String,
    stop: Arc<AtomicBool>,
) -> Vec<(u16, f64)> {
    let mut out = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let status = client
            .post(&url)
            .header("x-forwarded-for", "10.0.1.1")
            .json(&json!({"email": "real@example.com", "password": "the-right-one"}))
            .send()
            .await
            .map_or(0, |r| r.status().as_u16());
        out.push((status, started.elapsed().as_secs_f64() * 1000.0));
    }
    out
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let secs = env_u64("BENCH_SECS", 5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = auth_server::AppConfig::from_toml_str(&format!(
            "[http]\njwt_secret = \"flood-secret-0123456789abcdef0123456789\"\n\
             trusted_proxies = [\"127.0.0.1/32\"]\n\
             [store]\nurl = \"sqlite://{}/auth.db\"\n\
             [[providers]]\nresolve = \"emailpass\"\nid = \"emailpass\"\n",
            dir.path().display()
        ))
        .expect("config");
        let app = auth_server::build_app(config).await.expect("app");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(auth_server::serve(listener, app, std::future::pending()));
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()
            .expect("client");
        let login = format!("http://{addr}/auth/customer/emailpass");
        let r = client
            .post(format!("{login}/register"))
            .json(&json!({"email": "real@example.com", "password": "the-right-one"}))
            .send()
            .await
            .expect("register");
        assert_eq!(r.status(), 200);

        // Unloaded.
        let stop = Arc::new(AtomicBool::new(false));
        let quiet = tokio::spawn(legitimate(client.clone(), login.clone(), stop.clone()));
        tokio::time::sleep(Duration::from_secs(secs)).await;
        stop.store(true, Ordering::Relaxed);
        let quiet = quiet.await.expect("legitimate");
        let quiet_ms = sorted(quiet.iter().map(|(_, ms)| *ms).collect());

        // The flood: 10 addresses x 16 connections of wrong passwords, paced
        // to ten times the hashing capacity (one thread's rate per core).
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as f64;
        let capacity = cores * 1000.0 / pct(&quiet_ms, 0.5);
        let per_task = Duration::from_secs_f64(160.0 / (10.0 * capacity));
        let stop = Arc::new(AtomicBool::new(false));
        let mut flood = Vec::new();
        for a in 0..10 {
            for c in 0..16 {
                let (client, url, stop) = (client.clone(), login.clone(), stop.clone());
                flood.push(tokio::spawn(async move {
                    let mut out = Vec::new();
                    let mut n = 0u64;
                    let mut pace = tokio::time::interval(per_task);
                    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    while !stop.load(Ordering::Relaxed) {
                        pace.tick().await;
                        n += 1;
                        let started = Instant::now();
                        let status = client
                            .post(&url)
                            .header("x-forwarded-for", format!("10.0.0.{a}"))
                            .json(&json!({
                                "email": format!("victim{c}-{n}@example.com"),
                                "password": "guess",
                            }))
                            .send()
                            .await
                            .map_or(0, |r| r.status().as_u16());
                        out.push((status, started.elapsed().as_secs_f64() * 1000.0));
                    }
                    out
                }));
            }
        }
        // Each address's first failures cost a hash: wait until the limits
        // have engaged for all ten, then measure the legitimate client.
        let engaging = Instant::now();
        'engage: loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            for a in 0..10 {
                let status = client
                    .post(&login)
                    .header("x-forwarded-for", format!("10.0.0.{a}"))
                    .json(&json!({"email": "probe@example.com", "password": "guess"}))
                    .send()
                    .await
                    .map_or(0, |r| r.status().as_u16());
                if status != 429 && engaging.elapsed() < Duration::from_secs(120) {
                    continue 'engage;
                }
            }
            break;
        }
        let engaged_after = engaging.elapsed();
        let legit_stop = Arc::new(AtomicBool::new(false));
        let legit = tokio::spawn(legitimate(client.clone(), login.clone(), legit_stop.clone()));
        tokio::time::sleep(Duration::from_secs(secs)).await;
        legit_stop.store(true, Ordering::Relaxed);
        let legit = legit.await.expect("legitimate");
        stop.store(true, Ordering::Relaxed);
        let mut refused = Vec::new();
        let mut flood_total = 0usize;
        for f in flood {
            for (status, ms) in f.await.expect("flood") {
                flood_total += 1;
                if status == 429 {
                    refused.push(ms);
                }
            }
        }
        let refused = sorted(refused);
        let ok = legit.iter().filter(|(s, _)| *s == 200).count();
        let legit_ms = sorted(legit.iter().map(|(_, ms)| *ms).collect());
        println!(
            "# flood bench: {secs}s phases; 10 addresses x 16 connections of wrong passwords at {:.0} req/s (10x the hashing capacity of {capacity:.0}/s); one legitimate client",
            10.0 * capacity
        );
        println!("limits engaged for all ten addresses after {:.1} s", engaged_after.as_secs_f64());
        println!(
            "legitimate, unloaded: {} logins, p50 {:.1} ms, p99 {:.1} ms",
            quiet_ms.len(),
            pct(&quiet_ms, 0.5),
            pct(&quiet_ms, 0.99)
        );
        println!(
            "legitimate, under the flood: {ok}/{} answered 200, p50 {:.1} ms, p99 {:.1} ms (p99 / unloaded p99 = {:.2}, target <= 2)",
            legit.len(),
            pct(&legit_ms, 0.5),
            pct(&legit_ms, 0.99),
            pct(&legit_ms, 0.99) / pct(&quiet_ms, 0.99)
        );
        println!(
            "flood: {flood_total} requests, {} refused with 429, refused p50 {:.2} ms, p99 {:.2} ms (target < 5)",
            refused.len(),
            pct(&refused, 0.5),
            pct(&refused, 0.99)
        );
    });
}
