//! Prometheus metrics (`[server] metrics_listen`), served on a listener of
//! their own so they are never exposed with the auth routes.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `auth_http_requests_total` | counter | `method` (a standard method, else `other`), `route` (the route template), `status` |
//! | `auth_http_request_duration_seconds` | histogram | `route` |
//! | `auth_hash_queue_depth` | gauge | |
//! | `auth_hash_waits_total`, `auth_hash_wait_seconds_total` | counter | |
//! | `auth_hash_refused_total`, `auth_hash_runs_total` | counter | |
//! | `auth_identity_cache_hits_total`, `auth_identity_cache_misses_total` | counter | |
//! | `auth_store_errors_total` | counter | `store` (`sql`, `redis`) |

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
#[cfg(feature = "provider-emailpass")]
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Reads the identity cache's `(hits, misses)`, whichever cache it is.
#[derive(Clone)]
pub(crate) struct Cache(pub(crate) Arc<dyn Fn() -> (u64, u64) + Send + Sync>);

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cache")
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// One of the standard methods, or `other`: never the raw method, which
    /// clients choose freely (each made-up one would be a new series).
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    store: &'static str,
}

/// The server's metrics: request counters and latencies, and the counts the
/// stores and the hashing queue keep, read at each scrape.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Reads the process's other counts at scrape time.
#[derive(Debug)]
struct Sources {
    cache: Option<Cache>,
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(value);
    c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)
}

impl Collector for Sources {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        #[cfg(feature = "provider-emailpass")]
        {
            let h = provider_emailpass::hashing_stats();
            let depth = ConstGauge::new(i64::try_from(h.queued).unwrap_or(i64::MAX));
            depth.encode(encoder.encode_descriptor(
                "auth_hash_queue_depth",
                "Password hashes waiting for a hashing thread",
                None,
                depth.metric_type(),
            )?)?;
            counter(
                &mut encoder,
                "auth_hash_waits",
                "Password hashes that waited for a thread",
                h.waited,
            )?;
            let wait = ConstCounter::new(h.wait_seconds);
            wait.encode(encoder.encode_descriptor(
                "auth_hash_wait_seconds",
                "Seconds password hashes spent waiting for a thread",
                None,
                wait.metric_type(),
            )?)?;
            counter(
                &mut encoder,
                "auth_hash_refused",
                "Password hashes refused as busy (503)",
                h.refused,
            )?;
            counter(
                &mut encoder,
                "auth_hash_runs",
                "Password hashes computed",
                h.hashed,
            )?;
        }
        let (hits, misses) = self.cache.as_ref().map_or((0, 0), |c| (c.0)());
        counter(
            &mut encoder,
            "auth_identity_cache_hits",
            "Identity reads answered by the cache",
            hits,
        )?;
        counter(
            &mut encoder,
            "auth_identity_cache_misses",
            "Identity reads that went to the store",
            misses,
        )?;
        let errors = Family::<StoreLabels, Counter>::default();
        errors
            .get_or_create(&StoreLabels { store: "sql" })
            .inc_by(auth_store_sql::error_count());
        #[cfg(feature = "redis")]
        errors
            .get_or_create(&StoreLabels { store: "redis" })
            .inc_by(auth_store_redis::error_count());
        errors.encode(encoder.encode_descriptor(
            "auth_store_errors",
            "Store operations that failed (lost connections, failed statements)",
            None,
            errors.metric_type(),
        )?)
    }
}

impl Metrics {
    /// Metrics reporting `cache`'s hits and misses, if there is a cache.
    pub(crate) fn new(cache: Option<Cache>) -> Arc<Metrics> {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "auth_http_requests",
            "HTTP requests answered, by route template and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
        });
        registry.register(
            "auth_http_request_duration_seconds",
            "Time to answer HTTP requests, by route template",
            latency.clone(),
        );
        registry.register_collector(Box::new(Sources { cache }));
        Arc::new(Metrics {
            registry,
            requests,
            latency,
        })
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Counts and times every request `serve` answers: the auth routes and any
/// a host merged beside them. A router layer (the route template is known
/// only inside the router) with a named future, so no request pays a boxed
/// future for it.
#[derive(Clone)]
pub(crate) struct TrackLayer(pub(crate) Arc<Metrics>);

impl<S> tower::Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Track<S> {
        Track {
            inner,
            metrics: self.0.clone(),
        }
    }
}

/// See [`TrackLayer`].
#[derive(Clone)]
pub(crate) struct Track<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S> tower::Service<Request> for Track<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = TrackFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str)
            .to_owned();
        let method = method_label(req.method());
        TrackFuture {
            inner: self.inner.call(req),
            seen: Some((self.metrics.clone(), route, method, Instant::now())),
        }
    }
}

pin_project! {
    /// [`Track`]'s answer: the route's, counted when it is ready.
    pub(crate) struct TrackFuture<F> {
        #[pin]
        inner: F,
        seen: Option<(Arc<Metrics>, String, &'static str, Instant)>,
    }
}

impl<F> Future for TrackFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(res) = std::task::ready!(this.inner.poll(cx));
        if let Some((m, route, method, start)) = this.seen.take() {
            m.latency
                .get_or_create(&RouteLabels {
                    route: route.clone(),
                })
                .observe(start.elapsed().as_secs_f64());
            m.requests
                .get_or_create(&RequestLabels {
                    method,
                    route,
                    status: res.status().as_u16(),
                })
                .inc();
        }
        Poll::Ready(Ok(res))
    }
}

/// The `method` label of `method`: its name when it is one of the methods
/// of RFC 9110 or PATCH, else `other`, so the label has ten values at most.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// `GET /metrics`.
async fn render(State(m): State<Arc<Metrics>>) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.render(),
    )
        .into_response()
}

/// The metrics listener's router.
pub(crate) fn router(m: Arc<Metrics>) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(render))
        .with_state(m)
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    /// Sends `method /path` through `app`; its status.
    async fn send(app: &axum::Router, method: Method, path: &str) -> StatusCode {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        app.clone().oneshot(req).await.unwrap().status()
    }

    #[tokio::test]
    async fn made_up_methods_share_the_other_label() {
        let m = Metrics::new(None);
        let app = axum::Router::new()
            .route("/thing", axum::routing::any(|| async { "ok" }))
            .layer(TrackLayer(m.clone()));
        for name in ["FOO1", "FOO2", "FOO3", "get", "PROPFIND"] {
            let method = Method::from_bytes(name.as_bytes()).unwrap();
            assert_eq!(send(&app, method, "/thing").await, StatusCode::OK, "{name}");
        }
        for method in [Method::GET, Method::PATCH, Method::OPTIONS] {
            send(&app, method, "/thing").await;
        }
        // Scraped as the metrics listener serves it.
        let res = router(m)
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        for expected in [
            "auth_http_requests_total{method=\"other\",route=\"/thing\",status=\"200\"} 5",
            "auth_http_requests_total{method=\"GET\",route=\"/thing\",status=\"200\"} 1",
            "auth_http_requests_total{method=\"PATCH\",route=\"/thing\",status=\"200\"} 1",
            "auth_http_requests_total{method=\"OPTIONS\",route=\"/thing\",status=\"200\"} 1",
        ] {
            assert!(text.contains(expected), "{expected} missing from:\n{text}");
        }
        let series = text
            .lines()
            .filter(|l| l.starts_with("auth_http_requests_total{"))
            .count();
        assert_eq!(series, 4, "one series per label value:\n{text}");
        assert!(
            !text.contains("FOO") && !text.contains("PROPFIND"),
            "{text}"
        );
    }

    #[test]
    fn every_standard_method_is_its_own_label() {
        for name in [
            "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
        ] {
            let method = Method::from_bytes(name.as_bytes()).unwrap();
            assert_eq!(method_label(&method), name);
        }
        assert_eq!(
            method_label(&Method::from_bytes(b"MKCOL").unwrap()),
            "other"
        );
    }
}
