//! Events (`auth.password_reset`, ...) and the sinks that receive them.
//!
//! An [`EventBus`] fans each [`Event`] out to in-process subscribers
//! ([`EventBus::subscribe`]) and to the configured [`EventSink`]s: a
//! [`LogSink`], a [`FileSink`] (one JSON line per event) and a signed
//! [`WebhookSink`]. [`EventBus::emit`] never waits for a sink: each delivery
//! runs in its own tokio task, and a failed delivery is logged, never returned
//! to the code that emitted the event.
//!
//! ```no_run
//! # async fn demo(config: &auth_module::Config) -> Result<(), auth_module::ConfigError> {
//! use auth_http::events::{Event, EventBus};
//! let bus = EventBus::from_config(&config.events)?;
//! let mut rx = bus.subscribe();
//! bus.emit(Event::new("auth.password_reset", serde_json::json!({"entity_id": "a@b.c"})));
//! let event = rx.recv().await;
//! bus.flush().await; // before shutting down
//! # let _ = event; Ok(()) }
//! ```
//!
//! # Webhook requests
//!
//! Each event is one `POST` of the event's JSON (`{"id", "name",
//! "occurred_at", "data"}`) with `Content-Type: application/json` and:
//!
//! | header | value |
//! |---|---|
//! | `X-Auth-Event` | the event name |
//! | `X-Auth-Event-Id` | the event id (the same on every retry: deduplicate on it) |
//! | `X-Auth-Timestamp` | Unix seconds when the attempt was signed |
//! | `X-Auth-Signature` | `v1=` + lowercase hex HMAC-SHA256(secret, `"{timestamp}.{body}"`) |
//!
//! A receiver checks the signature with [`verify_signature`] over the raw
//! body bytes, and should refuse timestamps too far from its own clock.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_module::{ConfigError, EventsConfig, WebhookConfig};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::{Notify, broadcast};

type HmacSha256 = Hmac<Sha256>;

/// How many events a slow [`EventBus::subscribe`] receiver may fall behind
/// before it starts missing the oldest ones (it then sees `Lagged`).
const SUBSCRIBER_CAPACITY: usize = 1024;

/// First pause between webhook attempts; doubled after each failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Longest pause between webhook attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

const HEADER_EVENT: &str = "X-Auth-Event";
const HEADER_EVENT_ID: &str = "X-Auth-Event-Id";
const HEADER_TIMESTAMP: &str = "X-Auth-Timestamp";
const HEADER_SIGNATURE: &str = "X-Auth-Signature";
const SIGNATURE_PREFIX: &str = "v1=";

/// One event: `{"id": "evt_…", "name": "auth.password_reset", "occurred_at": RFC3339, "data": {...}}`.
///
/// `data` may carry secrets (the data of `auth.password_reset` carries the
/// reset token), so `Debug` shows the names of its fields, never their values.
#[derive(Clone, serde::Serialize)]
#[non_exhaustive]
pub struct Event {
    /// A unique id, `evt_` followed by 26 sortable characters.
    pub id: String,
    /// The event name, e.g. `auth.password_reset`.
    pub name: String,
    /// When the event occurred, RFC 3339 in UTC.
    pub occurred_at: String,
    /// The payload, usually an object.
    pub data: Value,
}

impl Event {
    /// A new event `name` with `data`, a fresh id, occurring now.
    pub fn new(name: impl Into<String>, data: Value) -> Self {
        let now = time::OffsetDateTime::now_utc();
        // Formatting fails only for years outside 0..=9999, which the system
        // clock does not produce; fall back to the Unix time rather than panic.
        let occurred_at = now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| now.unix_timestamp().to_string());
        Event {
            id: auth_module::generate_id("evt"),
            name: name.into(),
            occurred_at,
            data,
        }
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("occurred_at", &self.occurred_at)
            .field("data", &FieldNames(&self.data))
            .finish()
    }
}

/// `Debug` of a value that shows its field names (for an object) or its type
/// (otherwise), never a value.
struct FieldNames<'a>(&'a Value);

impl fmt::Debug for FieldNames<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Value::Object(map) => f.debug_list().entries(map.keys()).finish(),
            Value::Null => f.write_str("<null>"),
            Value::Bool(_) => f.write_str("<bool>"),
            Value::Number(_) => f.write_str("<number>"),
            Value::String(_) => f.write_str("<string>"),
            Value::Array(_) => f.write_str("<array>"),
        }
    }
}

/// Somewhere events go: a log, a file, a webhook, a queue.
///
/// # Contract
///
/// - `deliver` may be slow (it runs in its own task) but should bound its own
///   time, e.g. with timeouts, so that [`EventBus::flush`] returns.
/// - The `Err` message is logged: it must never contain the event's data
///   values (tokens) or the sink's secrets.
///
/// ```
/// use auth_http::events::{Event, EventSink};
///
/// #[derive(Debug)]
/// struct Stdout;
///
/// #[async_trait::async_trait]
/// impl EventSink for Stdout {
///     fn name(&self) -> &str {
///         "stdout"
///     }
///     async fn deliver(&self, event: &Event) -> Result<(), String> {
///         println!("{} {}", event.id, event.name);
///         Ok(())
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait EventSink: Send + Sync + fmt::Debug + 'static {
    /// A short name for logs, e.g. `webhook`.
    fn name(&self) -> &str;

    /// Delivers one event. The message of an `Err` must never contain the
    /// event's data values or a secret.
    async fn deliver(&self, event: &Event) -> Result<(), String>;
}

struct Shared {
    tx: broadcast::Sender<Event>,
    /// Deliveries spawned and not yet finished.
    pending: AtomicUsize,
    /// Notified when `pending` drops to zero.
    idle: Notify,
}

/// Fans events out to sinks and to in-process subscribers, without ever delaying the caller.
///
/// Cheap to clone: clones share subscribers and pending deliveries.
/// [`EventBus::with_sink`] gives a bus with one more sink that still shares
/// them.
#[derive(Clone)]
pub struct EventBus {
    sinks: Arc<Vec<Arc<dyn EventSink>>>,
    shared: Arc<Shared>,
}

impl fmt::Debug for EventBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventBus")
            .field("sinks", &self.sinks)
            .field("subscribers", &self.shared.tx.receiver_count())
            .field("pending", &self.shared.pending.load(Ordering::Acquire))
            .finish()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    /// A bus with no sinks; subscribe with [`EventBus::subscribe`].
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(SUBSCRIBER_CAPACITY);
        EventBus {
            sinks: Arc::new(Vec::new()),
            shared: Arc::new(Shared {
                tx,
                pending: AtomicUsize::new(0),
                idle: Notify::new(),
            }),
        }
    }

    /// This bus with `sink` added.
    pub fn with_sink(mut self, sink: Arc<dyn EventSink>) -> Self {
        Arc::make_mut(&mut self.sinks).push(sink);
        self
    }

    /// A bus with the sinks of `[events]`: a [`LogSink`] if `log`, a
    /// [`FileSink`] if `file`, a [`WebhookSink`] if `[events.webhook]`.
    ///
    /// A file that cannot be opened for appending is an error naming
    /// `events.file`; a webhook URL that is not an absolute `http(s)` URL is
    /// an error naming `events.webhook.url`.
    pub fn from_config(config: &EventsConfig) -> Result<Self, ConfigError> {
        let mut bus = EventBus::new();
        if config.log {
            bus = bus.with_sink(Arc::new(LogSink));
        }
        if let Some(path) = &config.file {
            let sink =
                FileSink::new(path).map_err(|e| ConfigError::new(format!("events.file: {e}")))?;
            bus = bus.with_sink(Arc::new(sink));
        }
        if let Some(webhook) = &config.webhook {
            let sink = WebhookSink::new(webhook)
                .map_err(|e| ConfigError::new(format!("events.webhook.{e}")))?;
            bus = bus.with_sink(Arc::new(sink));
        }
        Ok(bus)
    }

    /// A receiver of every event emitted from now on. It holds up to 1024
    /// undelivered events; past that it loses the oldest and its next `recv`
    /// answers `Lagged`.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.shared.tx.subscribe()
    }

    /// Sends `event` to the subscribers and starts one delivery task per sink,
    /// then returns at once: it never waits for a sink, and a failed delivery
    /// is logged (`tracing::warn!`) rather than returned.
    ///
    /// Sinks need a tokio runtime: called outside one, `emit` still reaches
    /// the subscribers but skips the sinks, with a warning.
    pub fn emit(&self, event: Event) {
        if self.sinks.is_empty() {
            let _ = self.shared.tx.send(event);
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                event = %event.name,
                "event emitted outside a tokio runtime: not delivered to sinks"
            );
            let _ = self.shared.tx.send(event);
            return;
        };
        let event = Arc::new(event);
        if self.shared.tx.receiver_count() > 0 {
            // An error means every receiver is gone meanwhile: nothing to do.
            let _ = self.shared.tx.send(Event::clone(&event));
        }
        for sink in self.sinks.iter() {
            let guard = InFlight::new(&self.shared);
            let sink = Arc::clone(sink);
            let event = Arc::clone(&event);
            handle.spawn(async move {
                // Dropped when the delivery ends, panics or is cancelled.
                let _guard = guard;
                if let Err(error) = sink.deliver(&event).await {
                    tracing::warn!(
                        sink = sink.name(),
                        event = %event.name,
                        error = %error,
                        "event delivery failed"
                    );
                }
            });
        }
    }

    /// Waits until every delivery spawned so far has finished (also those
    /// spawned while waiting): for tests and graceful shutdown.
    pub async fn flush(&self) {
        loop {
            let notified = self.shared.idle.notified();
            tokio::pin!(notified);
            // Registered before the check, so a wake-up between the check and
            // the await is not lost.
            notified.as_mut().enable();
            if self.shared.pending.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// One delivery in flight: counted from spawn until dropped.
struct InFlight(Arc<Shared>);

impl InFlight {
    fn new(shared: &Arc<Shared>) -> Self {
        shared.pending.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(shared))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Logs each event at `info`: its name, id and the names of its data fields,
/// never their values.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogSink;

#[async_trait::async_trait]
impl EventSink for LogSink {
    fn name(&self) -> &str {
        "log"
    }

    async fn deliver(&self, event: &Event) -> Result<(), String> {
        tracing::info!(
            event = %event.name,
            id = %event.id,
            fields = ?FieldNames(&event.data),
            "event"
        );
        Ok(())
    }
}

/// Appends each event as one JSON line to a file.
///
/// The line carries the event's data in full, tokens included: for
/// development and tests. The file is opened once, created if missing, in
/// append mode; concurrent deliveries are written one whole line at a time.
pub struct FileSink {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

impl fmt::Debug for FileSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSink")
            .field("path", &self.path)
            .finish()
    }
}

impl FileSink {
    /// Opens (or creates) `path` for appending. Its directory must exist.
    pub fn new(path: impl AsRef<Path>) -> Result<Self, String> {
        let path = path.as_ref();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open {} for appending: {e}", path.display()))?;
        Ok(FileSink {
            path: path.to_owned(),
            file: Arc::new(Mutex::new(file)),
        })
    }
}

#[async_trait::async_trait]
impl EventSink for FileSink {
    fn name(&self) -> &str {
        "file"
    }

    async fn deliver(&self, event: &Event) -> Result<(), String> {
        let mut line =
            serde_json::to_vec(event).map_err(|e| format!("cannot serialise the event: {e}"))?;
        line.push(b'\n');
        let file = Arc::clone(&self.file);
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            // A poisoned lock only means another write panicked; the file
            // handle itself is still usable.
            let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
            file.write_all(&line)
                .map_err(|e| format!("cannot write to {}: {e}", path.display()))
        })
        .await
        .map_err(|e| format!("the file write task failed: {e}"))?
    }
}

/// POSTs each event to a URL, signed with HMAC-SHA256 (see the
/// [module docs](self) for the headers), retrying failures with exponential
/// backoff.
///
/// Each attempt is bounded by the configured timeout. A network error, a
/// timeout or a non-2xx answer is retried up to `retries` times, after
/// 200 ms, 400 ms, 800 ms, ... (at most 10 s); a 4xx answer other than 408
/// and 429 is final. Redirects are not followed.
pub struct WebhookSink {
    client: reqwest::Client,
    url: reqwest::Url,
    secret: Vec<u8>,
    timeout: Duration,
    retries: u32,
}

impl fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The origin only: a URL's credentials, path or query may be secret.
        f.debug_struct("WebhookSink")
            .field("origin", &self.url.origin().ascii_serialization())
            .field("secret", &"***")
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .finish()
    }
}

/// Why one webhook attempt failed.
struct AttemptError {
    message: String,
    retryable: bool,
}

impl WebhookSink {
    /// A sink for `config`. Errors name the field (`url: ...`, `secret: ...`)
    /// and never repeat the URL or the secret.
    pub fn new(config: &WebhookConfig) -> Result<Self, String> {
        let url = reqwest::Url::parse(&config.url)
            .map_err(|e| format!("url: not a valid absolute URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err("url: must be an http:// or https:// URL with a host".to_owned());
        }
        let secret = config.secret.expose().as_bytes().to_vec();
        if secret.is_empty() {
            return Err("secret: must not be empty".to_owned());
        }
        if config.timeout.is_zero() {
            return Err("timeout: must be positive".to_owned());
        }
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.timeout)
            .build()
            .map_err(|e| format!("url: cannot build the HTTP client ({e})"))?;
        Ok(WebhookSink {
            client,
            url,
            secret,
            timeout: config.timeout,
            retries: config.retries,
        })
    }

    async fn attempt(&self, event: &Event, body: &[u8]) -> Result<(), AttemptError> {
        let timestamp = unix_seconds().to_string();
        let signature = sign(&self.secret, &timestamp, body);
        let response = self
            .client
            .post(self.url.clone())
            .timeout(self.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(HEADER_EVENT, event.name.as_str())
            .header(HEADER_EVENT_ID, event.id.as_str())
            .header(HEADER_TIMESTAMP, timestamp)
            .header(HEADER_SIGNATURE, signature)
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| AttemptError {
                message: describe_reqwest_error(&e, self.timeout),
                // A request that cannot even be built will not build next time.
                retryable: !e.is_builder(),
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retryable = !status.is_client_error()
            || status == reqwest::StatusCode::REQUEST_TIMEOUT
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
        Err(AttemptError {
            message: format!("the receiver answered {status}"),
            retryable,
        })
    }
}

#[async_trait::async_trait]
impl EventSink for WebhookSink {
    fn name(&self) -> &str {
        "webhook"
    }

    async fn deliver(&self, event: &Event) -> Result<(), String> {
        let body =
            serde_json::to_vec(event).map_err(|e| format!("cannot serialise the event: {e}"))?;
        let mut failures: u32 = 0;
        loop {
            let error = match self.attempt(event, &body).await {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            if !error.retryable {
                return Err(format!(
                    "{} (not retried; attempt {} of {})",
                    error.message,
                    failures + 1,
                    u64::from(self.retries) + 1
                ));
            }
            if failures >= self.retries {
                return Err(format!(
                    "{} (gave up after {} attempts)",
                    error.message,
                    u64::from(failures) + 1
                ));
            }
            let pause = backoff(failures);
            tracing::debug!(
                event = %event.name,
                error = %error.message,
                retry_in = ?pause,
                "webhook attempt failed; retrying"
            );
            tokio::time::sleep(pause).await;
            failures += 1;
        }
    }
}

/// The pause after the `failures`-th consecutive failure (0-based):
/// 200 ms doubled each time, at most 10 s.
fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF
        .checked_mul(1u32.checked_shl(failures).unwrap_or(u32::MAX))
        .map_or(MAX_BACKOFF, |d| d.min(MAX_BACKOFF))
}

/// A reqwest error as text without the URL (which may carry credentials).
fn describe_reqwest_error(error: &reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        return format!("timed out after {timeout:?}");
    }
    let kind = if error.is_connect() {
        "cannot connect"
    } else if error.is_builder() {
        "invalid request"
    } else {
        "request failed"
    };
    let mut text = kind.to_owned();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail;
    // fall back to an empty key rather than panic all the same.
    let mut mac = HmacSha256::new_from_slice(secret)
        .unwrap_or_else(|_| <HmacSha256 as Mac>::new(&Default::default()));
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `X-Auth-Signature` value: `v1=` + lowercase hex HMAC-SHA256.
fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    let mut out = String::with_capacity(SIGNATURE_PREFIX.len() + tag.len() * 2);
    out.push_str(SIGNATURE_PREFIX);
    for b in tag {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.len() % 2 != 0 {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| Some(hex_value(pair[0])? << 4 | hex_value(pair[1])?))
        .collect()
}

/// Whether `header` (an `X-Auth-Signature` value, `v1=<hex>`) is the
/// signature of `body` sent at `timestamp` (the `X-Auth-Timestamp` value)
/// under `secret`. The comparison is constant-time.
///
/// `body` must be the raw request body, byte for byte. This does not check
/// the timestamp's age: a receiver should also refuse old timestamps (say,
/// more than five minutes from its clock) to stop replays.
pub fn verify_signature(secret: &[u8], timestamp: &str, body: &[u8], header: &str) -> bool {
    let Some(hex) = header.trim().strip_prefix(SIGNATURE_PREFIX) else {
        return false;
    };
    let Some(tag) = decode_hex(hex) else {
        return false;
    };
    mac(secret, timestamp, body).verify_slice(&tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(0), Duration::from_millis(200));
        assert_eq!(backoff(1), Duration::from_millis(400));
        assert_eq!(backoff(2), Duration::from_millis(800));
        assert_eq!(backoff(5), Duration::from_millis(6400));
        assert_eq!(backoff(6), MAX_BACKOFF);
        assert_eq!(backoff(40), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn signature_round_trips() {
        let sig = sign(b"k", "1700000000", b"{}");
        assert!(sig.starts_with("v1="));
        assert_eq!(sig.len(), 3 + 64);
        assert!(verify_signature(b"k", "1700000000", b"{}", &sig));
        assert!(verify_signature(
            b"k",
            "1700000000",
            b"{}",
            &sig.to_ascii_uppercase().replacen("V1=", "v1=", 1)
        ));
        assert!(!verify_signature(b"x", "1700000000", b"{}", &sig));
        assert!(!verify_signature(b"k", "1700000001", b"{}", &sig));
        assert!(!verify_signature(b"k", "1700000000", b"{ }", &sig));
        assert!(!verify_signature(b"k", "1700000000", b"{}", &sig[3..]));
        assert!(!verify_signature(b"k", "1700000000", b"{}", "v1=zz"));
        assert!(!verify_signature(b"k", "1700000000", b"{}", "v1="));
    }

    #[test]
    fn known_hmac_vector() {
        // Python: hmac.new(b"secret", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
        let sig = sign(b"secret", "1700000000", br#"{"a":1}"#);
        assert_eq!(
            sig,
            "v1=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
        );
    }
}
