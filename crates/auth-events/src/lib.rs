//! The event sinks a server configures in `[events]`: the core's
//! [`LogSink`], a [`FileSink`] (one JSON line per event) and a signed
//! [`WebhookSink`], put on an [`EventBus`] by [`bus_from_config`]. The bus,
//! the [`Event`] type and the [`EventSink`] trait live in
//! [`auth_module::events`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), auth_module::ConfigError> {
//! use auth_events::{EventsConfig, bus_from_config};
//! use auth_module::{ConfigDocument, events::Event};
//! let mut doc = ConfigDocument::from_file("auth.toml")?;
//! let bus = bus_from_config(&EventsConfig::from_document(&mut doc)?)?;
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
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_module::events::{Event, EventBus, EventSink, LogSink};
use auth_module::{ConfigDocument, ConfigError, Secret, deserialize_duration};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// First pause between webhook attempts; doubled after each failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Longest pause between webhook attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

const HEADER_EVENT: &str = "X-Auth-Event";
const HEADER_EVENT_ID: &str = "X-Auth-Event-Id";
const HEADER_TIMESTAMP: &str = "X-Auth-Timestamp";
const HEADER_SIGNATURE: &str = "X-Auth-Signature";
const SIGNATURE_PREFIX: &str = "v1=";

/// `[events]`: the event sinks. In-process subscribers need no config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct EventsConfig {
    /// Log each event (name and field names; tokens are never logged).
    #[serde(default)]
    pub log: bool,
    /// Append each event as one JSON line to this file. The line carries the
    /// event's data in full (reset tokens included): for development and tests.
    #[serde(default)]
    pub file: Option<String>,
    /// POST each event to a URL, signed.
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
}

impl EventsConfig {
    /// Takes `[events]` out of `doc` and validates it.
    pub fn from_document(doc: &mut ConfigDocument) -> Result<Self, ConfigError> {
        let config: EventsConfig = doc.take_or_default("events")?;
        if let Some(w) = &config.webhook {
            webhook_url(&w.url).map_err(|e| ConfigError::new(format!("events.webhook.{e}")))?;
            if w.secret.expose().is_empty() {
                return Err(ConfigError::new("events.webhook.secret: must not be empty"));
            }
        }
        Ok(config)
    }
}

/// `[events.webhook]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct WebhookConfig {
    /// Where to POST.
    pub url: String,
    /// The HMAC-SHA256 key of the signature header.
    pub secret: Secret,
    /// Timeout of one attempt. Default 5 s.
    #[serde(
        default = "default_webhook_timeout",
        deserialize_with = "deserialize_duration"
    )]
    pub timeout: Duration,
    /// Retries after a failed attempt (exponential backoff). Default 3.
    #[serde(default = "default_webhook_retries")]
    pub retries: u32,
}

fn default_webhook_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_webhook_retries() -> u32 {
    3
}

impl WebhookConfig {
    /// A webhook to `url` signed with `secret`, default timeout and retries.
    pub fn new(url: impl Into<String>, secret: Secret) -> Self {
        WebhookConfig {
            url: url.into(),
            secret,
            timeout: default_webhook_timeout(),
            retries: default_webhook_retries(),
        }
    }
}

/// A bus with the sinks of `[events]`: a [`LogSink`] if `log`, a
/// [`FileSink`] if `file`, a [`WebhookSink`] if `[events.webhook]`.
///
/// A file that cannot be opened for appending is an error naming
/// `events.file`; a webhook URL that is not an absolute `http(s)` URL is
/// an error naming `events.webhook.url`.
pub fn bus_from_config(config: &EventsConfig) -> Result<EventBus, ConfigError> {
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
    /// A file it creates has mode 0600: its lines carry reset tokens.
    pub fn new(path: impl AsRef<Path>) -> Result<Self, String> {
        let path = path.as_ref();
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options
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
        let url = webhook_url(&config.url)?;
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

/// Parses a webhook URL: `https://`, or plain `http://` to a loopback host
/// only, since the requests carry reset tokens. Errors name the field
/// (`url: ...`) and never repeat the URL.
fn webhook_url(text: &str) -> Result<reqwest::Url, String> {
    let url =
        reqwest::Url::parse(text).map_err(|e| format!("url: not a valid absolute URL ({e})"))?;
    let Some(host) = url.host_str() else {
        return Err("url: must be an https:// URL with a host".to_owned());
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        "http" => Err(
            "url: must be https:// (plain http:// only to a loopback host: the events carry reset tokens)"
                .to_owned(),
        ),
        _ => Err("url: must be an https:// URL".to_owned()),
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
    format!("{SIGNATURE_PREFIX}{}", hex::encode(tag))
}

/// Whether `header` (an `X-Auth-Signature` value, `v1=<hex>`) is the
/// signature of `body` sent at `timestamp` (the `X-Auth-Timestamp` value)
/// under `secret`. The comparison is constant-time.
///
/// `body` must be the raw request body, byte for byte. This does not check
/// the timestamp's age: a receiver should also refuse old timestamps (say,
/// more than five minutes from its clock) to stop replays.
pub fn verify_signature(secret: &[u8], timestamp: &str, body: &[u8], header: &str) -> bool {
    let Some(encoded) = header.trim().strip_prefix(SIGNATURE_PREFIX) else {
        return false;
    };
    let Ok(tag) = hex::decode(encoded) else {
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
