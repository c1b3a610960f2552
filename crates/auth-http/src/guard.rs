//! The layer in front of every route of [`crate::router`]: CORS for the
//! configured origins, declared oversized bodies refused before anything
//! reads them, and the request's `debug` span.
//!
//! Why not tower-http's `CorsLayer`, `RequestBodyLimitLayer` and `TraceLayer`:
//! the first two do not keep the contract by themselves (a preflight is
//! answered `200`, not `204`; an oversized body gets a `text/plain` 413, not
//! the JSON one), so they would need a third layer to reshape their answers;
//! and each layer a `Router` carries costs every request a boxed service
//! clone. One layer with a named future (no box per request) does all three.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use tracing::Instrument;
use tracing::instrument::Instrumented;

use crate::AuthService;
use crate::error::ApiError;

/// Wraps each route in [`Guard`].
#[derive(Clone)]
pub(crate) struct GuardLayer {
    service: AuthService,
}

impl GuardLayer {
    pub(crate) fn new(service: AuthService) -> Self {
        GuardLayer { service }
    }
}

impl<S> tower::Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            service: self.service.clone(),
        }
    }
}

/// See the module's documentation.
#[derive(Clone)]
pub(crate) struct Guard<S> {
    inner: S,
    service: AuthService,
}

impl<S> tower::Service<Request> for Guard<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = GuardFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let settings = self.service.settings();
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .filter(|o| {
                settings
                    .cors_origins
                    .iter()
                    .any(|a| a.as_bytes() == o.as_bytes())
            })
            .cloned();
        let preflight = req.method() == Method::OPTIONS
            && req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if preflight {
            let mut res = StatusCode::NO_CONTENT.into_response();
            if origin.is_some() {
                let h = res.headers_mut();
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static("GET,HEAD,PUT,PATCH,POST,DELETE"),
                );
                if let Some(asked) = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
                    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
                }
                h.insert(
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from_static("600"),
                );
            }
            return GuardFuture::answered(res, origin);
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > settings.body_limit as u64) {
            return GuardFuture::answered(ApiError::TooLarge.into_response(), origin);
        }
        // The path only: queries can carry codes and tokens. At debug: an
        // info span costs every request its fields formatted and stored by
        // the log subscriber (a third of a token refresh at the default
        // `RUST_LOG=info`), and nothing logs per request at info.
        let span =
            tracing::debug_span!("request", method = %req.method(), path = %req.uri().path());
        let started = (!span.is_disabled()).then(Instant::now);
        let client = auth_module::audit::ClientInfo::new(
            req.headers()
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok()),
            crate::client::client_addr_of(
                req.headers(),
                req.extensions(),
                self.service.trusted_proxies(),
            ),
        );
        GuardFuture::Running {
            inner: auth_module::audit::client_scope(client, self.inner.call(req)).instrument(span),
            origin,
            started,
        }
    }
}

pin_project! {
    /// [`Guard`]'s answer: decided at once, or the route's, with the CORS
    /// headers added either way.
    #[project = GuardProj]
    pub(crate) enum GuardFuture<F> {
        Answered {
            res: Option<Response>,
            origin: Option<HeaderValue>,
        },
        Running {
            #[pin]
            inner: Instrumented<auth_module::audit::ClientScoped<F>>,
            origin: Option<HeaderValue>,
            started: Option<Instant>,
        },
    }
}

impl<F> GuardFuture<F> {
    fn answered(res: Response, origin: Option<HeaderValue>) -> Self {
        GuardFuture::Answered {
            res: Some(res),
            origin,
        }
    }
}

impl<F> Future for GuardFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (mut res, origin) = match self.project() {
            GuardProj::Answered { res, origin } => (
                res.take().expect("GuardFuture polled after completion"),
                origin.take(),
            ),
            GuardProj::Running {
                mut inner,
                origin,
                started,
            } => {
                let Ok(res) = std::task::ready!(inner.as_mut().poll(cx));
                let _span = inner.span().enter();
                let status = res.status();
                if status.is_server_error() {
                    tracing::error!(status = status.as_u16(), "answered with a server error");
                } else if let Some(started) = started {
                    tracing::debug!(
                        status = status.as_u16(),
                        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
                        "answered"
                    );
                }
                (res, origin.take())
            }
        };
        let h = res.headers_mut();
        h.append(header::VARY, HeaderValue::from_static("Origin"));
        if let Some(origin) = origin {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        Poll::Ready(Ok(res))
    }
}
