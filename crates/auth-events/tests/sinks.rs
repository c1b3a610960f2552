//! The event bus and its sinks: subscribers, the JSON-lines file, the signed
//! webhook with its retries, and what never leaks into `Debug` or errors.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auth_events::{EventsConfig, WebhookConfig};
use auth_events::{FileSink, WebhookSink, bus_from_config, verify_signature};
use auth_module::Secret;
use auth_module::events::{Event, EventBus, EventSink, LogSink};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const SECRET: &str = "whsec_test_3c1f0a9e7b";
const TOKEN: &str = "rst_tok_SHOULD_NOT_LEAK_81f2";

fn reset_event() -> Event {
    Event::new(
        "auth.password_reset",
        json!({"entity_id": "jane@example.com", "actor_type": "customer", "token": TOKEN}),
    )
}

fn webhook_config(url: &str, timeout: Duration, retries: u32) -> WebhookConfig {
    let mut config = WebhookConfig::new(url, Secret::new(SECRET));
    config.timeout = timeout;
    config.retries = retries;
    config
}

/// A server on `127.0.0.1:0`, stopped when dropped.
struct Server {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Server {
    async fn start(router: Router) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Server { addr, task }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One request the receiver saw.
#[derive(Clone)]
struct Hit {
    at: Instant,
    headers: HeaderMap,
    body: Bytes,
    signature_valid: bool,
}

/// A webhook receiver: records every request, checks its signature, then
/// (after `delay`) answers the next scripted status, or 200 once the script
/// is used up.
#[derive(Clone)]
struct Receiver {
    answers: Arc<Mutex<VecDeque<StatusCode>>>,
    delay: Duration,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Receiver {
    fn new(answers: &[StatusCode], delay: Duration) -> Receiver {
        Receiver {
            answers: Arc::new(Mutex::new(answers.iter().copied().collect())),
            delay,
            hits: Arc::new(Mutex::new(Vec::new())),
        }
    }

    async fn start(&self) -> Server {
        Server::start(
            Router::new()
                .route("/hook", post(receive))
                .with_state(self.clone()),
        )
        .await
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_str()
        .unwrap()
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let signature_valid = match (
        headers
            .get("x-auth-timestamp")
            .and_then(|v| v.to_str().ok()),
        headers
            .get("x-auth-signature")
            .and_then(|v| v.to_str().ok()),
    ) {
        (Some(ts), Some(sig)) => verify_signature(SECRET.as_bytes(), ts, &body, sig),
        _ => false,
    };
    r.hits.lock().unwrap().push(Hit {
        at: Instant::now(),
        headers,
        body,
        signature_valid,
    });
    if !r.delay.is_zero() {
        tokio::time::sleep(r.delay).await;
    }
    if !signature_valid {
        return StatusCode::UNAUTHORIZED;
    }
    r.answers
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(StatusCode::OK)
}

async fn flush_within(bus: &EventBus, limit: Duration) -> Duration {
    let start = Instant::now();
    tokio::time::timeout(limit, bus.flush())
        .await
        .expect("flush did not complete in time");
    start.elapsed()
}

// (1)
#[tokio::test]
async fn subscriber_receives_emitted_event() {
    let bus = EventBus::new();
    let mut rx = bus.subscribe();
    let event = reset_event();
    let id = event.id.clone();
    bus.emit(event);
    let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.id, id);
    assert!(got.id.starts_with("evt_"), "{}", got.id);
    assert_eq!(got.name, "auth.password_reset");
    assert_eq!(got.data["token"], TOKEN);
    time::OffsetDateTime::parse(
        &got.occurred_at,
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    // Clones share subscribers.
    bus.clone().emit(Event::new("auth.other", json!({})));
    assert_eq!(rx.recv().await.unwrap().name, "auth.other");
    flush_within(&bus, Duration::from_secs(1)).await;
}

#[test]
fn emit_outside_a_runtime_reaches_subscribers_and_skips_sinks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let bus = EventBus::new().with_sink(Arc::new(FileSink::new(&path).unwrap()));
    let mut rx = bus.subscribe();
    bus.emit(reset_event());
    assert_eq!(rx.try_recv().unwrap().name, "auth.password_reset");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
}

// (2)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_sink_writes_one_json_line_per_event() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    assert!(!path.exists());
    let bus = EventBus::new().with_sink(Arc::new(FileSink::new(&path).unwrap()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the file holds reset tokens: {mode:o}");
    }
    assert!(path.exists(), "the file is created when the sink is");

    let emitters: Vec<_> = (0..50)
        .map(|i| {
            let bus = bus.clone();
            tokio::spawn(async move {
                bus.emit(Event::new(
                    "auth.password_reset",
                    json!({"n": i, "token": TOKEN, "pad": "x".repeat(4096)}),
                ));
            })
        })
        .collect();
    for e in emitters {
        e.await.unwrap();
    }
    flush_within(&bus, Duration::from_secs(30)).await;

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.ends_with('\n'));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 50);
    let mut seen: Vec<i64> = lines
        .iter()
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("each line is one JSON value");
            assert_eq!(v["name"], "auth.password_reset");
            assert!(v["id"].as_str().unwrap().starts_with("evt_"));
            assert!(v["occurred_at"].is_string());
            assert_eq!(v["data"]["token"], TOKEN);
            v["data"]["n"].as_i64().unwrap()
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..50).collect::<Vec<_>>());

    // A second sink on the same file appends rather than truncates.
    let again = EventBus::new().with_sink(Arc::new(FileSink::new(&path).unwrap()));
    again.emit(reset_event());
    flush_within(&again, Duration::from_secs(10)).await;
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 51);
}

// (3)
#[tokio::test]
async fn webhook_delivers_signed_event() {
    let receiver = Receiver::new(&[], Duration::ZERO);
    let server = receiver.start().await;
    let config = webhook_config(&server.url(), Duration::from_secs(5), 0);
    let bus = EventBus::new().with_sink(Arc::new(WebhookSink::new(&config).unwrap()));

    let event = reset_event();
    let id = event.id.clone();
    bus.emit(event);
    flush_within(&bus, Duration::from_secs(10)).await;

    let hits = receiver.hits();
    assert_eq!(hits.len(), 1);
    let hit = &hits[0];
    assert!(hit.signature_valid);
    assert_eq!(header(&hit.headers, "content-type"), "application/json");
    assert_eq!(header(&hit.headers, "x-auth-event"), "auth.password_reset");
    assert_eq!(header(&hit.headers, "x-auth-event-id"), id);
    let ts = header(&hit.headers, "x-auth-timestamp");
    let ts_secs: u64 = ts.parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(ts_secs) < 60);
    let sig = header(&hit.headers, "x-auth-signature");
    let hex = sig.strip_prefix("v1=").unwrap();
    assert_eq!(hex.len(), 64);
    assert!(
        hex.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );

    let body: Value = serde_json::from_slice(&hit.body).unwrap();
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["name"], "auth.password_reset");
    assert_eq!(body["data"]["token"], TOKEN);
    assert!(body["occurred_at"].is_string());

    assert!(verify_signature(SECRET.as_bytes(), ts, &hit.body, sig));
    assert!(!verify_signature(b"wrong secret", ts, &hit.body, sig));
    assert!(!verify_signature(
        SECRET.as_bytes(),
        &(ts_secs + 1).to_string(),
        &hit.body,
        sig
    ));
    let mut tampered = hit.body.to_vec();
    tampered.push(b' ');
    assert!(!verify_signature(SECRET.as_bytes(), ts, &tampered, sig));
    drop(server);
}

#[tokio::test]
async fn webhook_with_wrong_secret_is_refused_by_receiver() {
    let receiver = Receiver::new(&[], Duration::ZERO);
    let server = receiver.start().await;
    let mut config = webhook_config(&server.url(), Duration::from_secs(5), 3);
    config.secret = Secret::new("not the receiver's secret");
    let sink = WebhookSink::new(&config).unwrap();
    let err = sink.deliver(&reset_event()).await.unwrap_err();
    assert!(err.contains("401"), "{err}");
    assert!(!err.contains("not the receiver's secret"), "{err}");
    let hits = receiver.hits();
    assert_eq!(hits.len(), 1, "a 401 is not retried");
    assert!(!hits[0].signature_valid);
}

// (4)
#[tokio::test]
async fn webhook_retries_server_errors_with_backoff() {
    let receiver = Receiver::new(
        &[
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::INTERNAL_SERVER_ERROR,
        ],
        Duration::ZERO,
    );
    let server = receiver.start().await;
    let config = webhook_config(&server.url(), Duration::from_secs(5), 3);
    let bus = EventBus::new().with_sink(Arc::new(WebhookSink::new(&config).unwrap()));

    let start = Instant::now();
    let event = reset_event();
    let id = event.id.clone();
    bus.emit(event);
    let took = flush_within(&bus, Duration::from_secs(20)).await;

    let hits = receiver.hits();
    assert_eq!(hits.len(), 3, "two 500s then a 200: exactly 3 attempts");
    assert!(hits.iter().all(|h| h.signature_valid));
    assert!(
        hits.iter()
            .all(|h| header(&h.headers, "x-auth-event-id") == id)
    );
    let first_gap = hits[1].at - hits[0].at;
    let second_gap = hits[2].at - hits[1].at;
    assert!(first_gap >= Duration::from_millis(190), "{first_gap:?}");
    assert!(second_gap >= Duration::from_millis(390), "{second_gap:?}");
    assert!(second_gap > first_gap, "{first_gap:?} then {second_gap:?}");
    assert!(start.elapsed() < Duration::from_secs(5), "{took:?}");
    drop(server);
}

#[tokio::test]
async fn webhook_gives_up_after_retries() {
    let receiver = Receiver::new(&[StatusCode::SERVICE_UNAVAILABLE; 5], Duration::ZERO);
    let server = receiver.start().await;
    let config = webhook_config(&server.url(), Duration::from_secs(5), 2);
    let sink = WebhookSink::new(&config).unwrap();
    let err = sink.deliver(&reset_event()).await.unwrap_err();
    assert_eq!(receiver.hits().len(), 3, "1 attempt + 2 retries");
    assert!(err.contains("503"), "{err}");
    assert!(!err.contains(TOKEN) && !err.contains(SECRET), "{err}");
    drop(server);
}

// (5)
#[tokio::test]
async fn unreachable_and_slow_webhooks_never_delay_emit() {
    // A port nobody listens on: bind, note it, close.
    let dead_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let timeout = Duration::from_millis(500);
    let dead = webhook_config(
        &format!("http://127.0.0.1:{dead_port}/hook?key={SECRET}"),
        timeout,
        1,
    );
    let slow_receiver = Receiver::new(&[], Duration::from_secs(5));
    let slow_server = slow_receiver.start().await;
    let slow = webhook_config(&slow_server.url(), timeout, 1);

    let dead_sink = Arc::new(WebhookSink::new(&dead).unwrap());
    let slow_sink = Arc::new(WebhookSink::new(&slow).unwrap());
    let bus = EventBus::new()
        .with_sink(dead_sink.clone())
        .with_sink(slow_sink.clone());
    let mut rx = bus.subscribe();

    let start = Instant::now();
    bus.emit(reset_event());
    let emit_took = start.elapsed();
    assert!(
        emit_took < timeout / 5,
        "emit must not wait for sinks: {emit_took:?}"
    );
    // Subscribers are served at once, sinks or not.
    assert_eq!(rx.try_recv().unwrap().name, "auth.password_reset");

    // slow: 500 ms timeout + 200 ms pause + 500 ms timeout.
    let flush_took = flush_within(&bus, Duration::from_secs(15)).await;
    assert!(flush_took >= Duration::from_millis(1000), "{flush_took:?}");
    assert_eq!(slow_receiver.hits().len(), 2, "1 attempt + 1 retry");

    // The failures are plain errors without the token or the secret.
    let err = dead_sink.deliver(&reset_event()).await.unwrap_err();
    assert!(!err.contains(TOKEN) && !err.contains(SECRET), "{err}");
    assert!(err.contains("gave up after 2 attempts"), "{err}");
    let err = slow_sink.deliver(&reset_event()).await.unwrap_err();
    assert!(err.contains("timed out"), "{err}");
    assert!(!err.contains(TOKEN) && !err.contains(SECRET), "{err}");
    assert!(!format!("{dead_sink:?}").contains(SECRET));

    // The bus is still usable.
    bus.emit(Event::new("auth.other", json!({})));
    flush_within(&bus, Duration::from_secs(15)).await;
    drop(slow_server);
}

// (6)
#[tokio::test]
async fn client_errors_are_not_retried_but_429_is() {
    let receiver = Receiver::new(&[StatusCode::BAD_REQUEST], Duration::ZERO);
    let server = receiver.start().await;
    let config = webhook_config(&server.url(), Duration::from_secs(5), 3);
    let sink = Arc::new(WebhookSink::new(&config).unwrap());
    let bus = EventBus::new().with_sink(sink.clone());
    bus.emit(reset_event());
    flush_within(&bus, Duration::from_secs(10)).await;
    assert_eq!(receiver.hits().len(), 1, "a 400 is final");

    receiver
        .answers
        .lock()
        .unwrap()
        .push_back(StatusCode::BAD_REQUEST);
    let err = sink.deliver(&reset_event()).await.unwrap_err();
    assert!(err.contains("400"), "{err}");
    assert!(!err.contains(TOKEN) && !err.contains(SECRET), "{err}");
    assert_eq!(receiver.hits().len(), 2);

    receiver
        .answers
        .lock()
        .unwrap()
        .push_back(StatusCode::TOO_MANY_REQUESTS);
    sink.deliver(&reset_event()).await.unwrap();
    assert_eq!(receiver.hits().len(), 4, "a 429 is retried");
    drop(server);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let target = Receiver::new(&[], Duration::ZERO);
    let target_server = target.start().await;
    let location = target_server.url();
    let redirector = Server::start(Router::new().route(
        "/hook",
        post(move || {
            let location = location.clone();
            async move { (StatusCode::TEMPORARY_REDIRECT, [("location", location)]) }
        }),
    ))
    .await;
    let config = webhook_config(&redirector.url(), Duration::from_secs(5), 0);
    let err = WebhookSink::new(&config)
        .unwrap()
        .deliver(&reset_event())
        .await
        .unwrap_err();
    assert!(err.contains("307"), "{err}");
    assert!(target.hits().is_empty());
    drop((target_server, redirector));
}

// (7)
#[test]
fn debug_of_event_shows_field_names_not_values() {
    let event = reset_event();
    let text = format!("{event:?}");
    assert!(!text.contains(TOKEN), "{text}");
    assert!(!text.contains("jane@example.com"), "{text}");
    assert!(text.contains("token"), "{text}");
    assert!(text.contains("entity_id"), "{text}");
    assert!(text.contains(&event.id), "{text}");
    assert!(text.contains("auth.password_reset"), "{text}");
    let pretty = format!("{event:#?}");
    assert!(!pretty.contains(TOKEN), "{pretty}");
    let scalar = Event::new("x", json!(TOKEN));
    assert!(!format!("{scalar:?}").contains(TOKEN));
}

#[tokio::test]
async fn log_sink_accepts_events() {
    LogSink.deliver(&reset_event()).await.unwrap();
    assert_eq!(LogSink.name(), "log");
}

// (8)
#[tokio::test]
async fn from_config_builds_configured_sinks_and_refuses_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let mut config = EventsConfig::default();
    config.log = true;
    config.file = Some(path.to_str().unwrap().to_owned());
    config.webhook = Some(webhook_config(
        "https://hooks.example.com/auth",
        Duration::from_secs(5),
        3,
    ));
    let bus = bus_from_config(&config).unwrap();
    let text = format!("{bus:?}");
    assert!(text.contains("LogSink"), "{text}");
    assert!(text.contains("FileSink"), "{text}");
    assert!(text.contains("WebhookSink"), "{text}");
    assert!(!text.contains(SECRET), "{text}");
    assert!(path.exists());

    let empty = bus_from_config(&EventsConfig::default()).unwrap();
    let mut rx = empty.subscribe();
    empty.emit(reset_event());
    assert!(rx.try_recv().is_ok());

    for bad in [
        "not a url",
        "/relative/path",
        "ftp://hooks.example.com/x",
        "http://",
    ] {
        let mut c = config.clone();
        c.webhook = Some(webhook_config(bad, Duration::from_secs(5), 3));
        let err = bus_from_config(&c).unwrap_err();
        assert!(
            err.message().starts_with("events.webhook.url: "),
            "{bad}: {err}"
        );
    }

    let mut c = config.clone();
    c.file = Some(
        dir.path()
            .join("no-such-dir/events.jsonl")
            .to_str()
            .unwrap()
            .to_owned(),
    );
    let err = bus_from_config(&c).unwrap_err();
    assert!(err.message().starts_with("events.file: "), "{err}");

    let mut c = config.clone();
    c.webhook = Some(WebhookConfig::new(
        "https://hooks.example.com/auth",
        Secret::new(""),
    ));
    let err = bus_from_config(&c).unwrap_err();
    assert!(
        err.message().starts_with("events.webhook.secret: "),
        "{err}"
    );
}
