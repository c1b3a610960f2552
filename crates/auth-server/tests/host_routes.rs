//! A host's routes added with `Server::with_routes`, served in this process
//! (a test binary of its own: `serve` sets the process's logger once).

use std::process::ExitCode;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;

/// A free loopback port (free when asked: the server binds it just after).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Waits until `GET {base}/health` answers; panics if `server` ended first.
async fn wait_ready(base: &str, server: &JoinHandle<ExitCode>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if reqwest::get(format!("{base}/health")).await.is_ok() {
            return;
        }
        assert!(!server.is_finished(), "the server stopped (see its log)");
        assert!(Instant::now() < deadline, "the server never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn host_routes_are_counted_in_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let (port, metrics_port) = (free_port(), free_port());
    let config = dir.path().join("auth.toml");
    std::fs::write(
        &config,
        format!(
            "[http]\njwt_secret = '0123456789abcdef0123456789abcdef'\n\
             [store]\nurl = 'sqlite://{}/auth.db'\n\
             [server]\nlisten = '127.0.0.1:{port}'\nmetrics_listen = '127.0.0.1:{metrics_port}'\n\
             [[providers]]\nresolve = 'emailpass'\nid = 'emailpass'\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let server = auth_server::Server::new("host").with_routes(|_service| async {
        Ok(Router::new().route("/store/items/{id}", get(|| async { "an item" })))
    });
    let args = ["host", "serve", "--config", config.to_str().unwrap()].map(String::from);
    // Runs until the process ends: `serve` stops on a signal only.
    let running = std::thread::spawn(move || server.run_from(args));
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&base, &running).await;

    for id in ["1", "2", "3"] {
        let r = reqwest::get(format!("{base}/store/items/{id}"))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "an item");
    }
    let text = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for expected in [
        // The host's route, under its template as the auth routes are.
        "auth_http_requests_total{method=\"GET\",route=\"/store/items/{id}\",status=\"200\"} 3",
        "auth_http_request_duration_seconds_count{route=\"/store/items/{id}\"} 3",
        // The auth routes still are, once each (no layer counts twice).
        "auth_http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} ",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
    assert!(!text.contains("/store/items/1"), "{text}");
}
