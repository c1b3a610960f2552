//! Events (`auth.password_reset`, a provider's one-time code, ...) and where
//! they go.
//!
//! An [`EventBus`] fans each [`Event`] out to in-process subscribers
//! ([`EventBus::subscribe`]) and to [`EventSink`]s (a [`LogSink`] here; file
//! and signed-webhook sinks in `auth-http`). [`EventBus::emit`] never waits
//! for a sink: each delivery runs in its own tokio task, and a failed delivery
//! is logged, never returned to the code that emitted the event. The module's
//! flows emit through it, and so do providers, through
//! [`crate::ProviderIdentities::emit`].
//!
//! ```
//! # async fn demo() {
//! use auth_module::events::{Event, EventBus};
//! let bus = EventBus::new();
//! let mut rx = bus.subscribe();
//! bus.emit(Event::new("auth.password_reset", serde_json::json!({"entity_id": "a@b.c"})));
//! let event = rx.recv().await.unwrap();
//! assert_eq!(event.name, "auth.password_reset");
//! bus.flush().await; // before shutting down
//! # }
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;
use tokio::sync::{Notify, broadcast};

/// How many events a slow [`EventBus::subscribe`] receiver may fall behind
/// before it starts missing the oldest ones (it then sees `Lagged`).
const SUBSCRIBER_CAPACITY: usize = 1024;

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
            id: crate::generate_id("evt"),
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
pub(crate) struct FieldNames<'a>(&'a Value);

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
/// use auth_module::events::{Event, EventSink};
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

/// How many events wait for each sink; past it new ones are dropped (and
/// counted, and logged) rather than ever delaying the caller.
const SINK_QUEUE: usize = 1024;
/// How many deliveries run at once for each sink.
const SINK_WORKERS: usize = 4;

/// One delivery waiting for a worker, counted as pending until dropped.
type Job = (Arc<Event>, InFlight);

/// A sink with its bounded queue, whose workers start with the first event.
struct SinkQueue {
    sink: Arc<dyn EventSink>,
    tx: std::sync::OnceLock<tokio::sync::mpsc::Sender<Job>>,
}

impl SinkQueue {
    fn sender(&self, handle: &tokio::runtime::Handle) -> &tokio::sync::mpsc::Sender<Job> {
        self.tx.get_or_init(|| {
            let (tx, rx) = tokio::sync::mpsc::channel::<Job>(SINK_QUEUE);
            let rx = Arc::new(tokio::sync::Mutex::new(rx));
            for _ in 0..SINK_WORKERS {
                let (rx, sink) = (Arc::clone(&rx), Arc::clone(&self.sink));
                handle.spawn(async move {
                    loop {
                        let job = rx.lock().await.recv().await;
                        let Some((event, _in_flight)) = job else {
                            return;
                        };
                        if let Err(error) = sink.deliver(&event).await {
                            tracing::warn!(
                                sink = sink.name(),
                                event = %event.name,
                                error = %error,
                                "event delivery failed"
                            );
                        }
                    }
                });
            }
            tx
        })
    }
}

struct Shared {
    tx: broadcast::Sender<Event>,
    /// Events dropped because a sink's queue was full.
    dropped: std::sync::atomic::AtomicU64,
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
    sinks: Arc<Vec<Arc<SinkQueue>>>,
    shared: Arc<Shared>,
}

impl fmt::Debug for EventBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventBus")
            .field(
                "sinks",
                &self.sinks.iter().map(|q| &q.sink).collect::<Vec<_>>(),
            )
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
                dropped: std::sync::atomic::AtomicU64::new(0),
                pending: AtomicUsize::new(0),
                idle: Notify::new(),
            }),
        }
    }

    /// This bus with `sink` added.
    pub fn with_sink(mut self, sink: Arc<dyn EventSink>) -> Self {
        Arc::make_mut(&mut self.sinks).push(Arc::new(SinkQueue {
            sink,
            tx: std::sync::OnceLock::new(),
        }));
        self
    }

    /// How many deliveries were dropped so far because a sink's queue (1024
    /// events) was full.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// A receiver of every event emitted from now on. It holds up to 1024
    /// undelivered events; past that it loses the oldest and its next `recv`
    /// answers `Lagged`.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.shared.tx.subscribe()
    }

    /// Sends `event` to the subscribers and queues it for each sink, then
    /// returns at once: it never waits for a sink. Each sink has a bounded
    /// queue (1024 events) and four delivery workers; an event that finds
    /// the queue full is dropped for that sink, logged and counted
    /// ([`EventBus::dropped`]). A failed delivery is logged (`tracing::warn!`)
    /// rather than returned.
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
        for queue in self.sinks.iter() {
            // Counted from now until the delivery ends (or the job is dropped).
            let job = (Arc::clone(&event), InFlight::new(&self.shared));
            if queue.sender(&handle).try_send(job).is_err() {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    sink = queue.sink.name(),
                    event = %event.name,
                    "event queue full: event dropped for this sink"
                );
            }
        }
    }

    /// Waits until every delivery queued so far has finished (also those
    /// queued while waiting): for tests and graceful shutdown.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that never finishes a delivery.
    #[derive(Debug)]
    struct Stuck;

    #[async_trait::async_trait]
    impl EventSink for Stuck {
        fn name(&self) -> &str {
            "stuck"
        }
        async fn deliver(&self, _: &Event) -> Result<(), String> {
            std::future::pending::<()>().await;
            Ok(())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_drops_events_and_never_waits() {
        let bus = EventBus::new().with_sink(Arc::new(Stuck));
        let started = std::time::Instant::now();
        let n = SINK_QUEUE + 500;
        for i in 0..n {
            bus.emit(Event::new("test.event", serde_json::json!({ "i": i })));
        }
        let spent = started.elapsed();
        assert!(
            spent < std::time::Duration::from_secs(2),
            "emit waited: {spent:?}"
        );
        // The workers hold a few, the queue the next 1024; the rest dropped.
        let dropped = bus.dropped();
        assert!(
            (450..=500).contains(&(dropped as usize)),
            "dropped {dropped} of {n}"
        );
    }
}
