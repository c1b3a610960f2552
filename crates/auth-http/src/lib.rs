//! The HTTP face of `auth-module`: an axum [`Router`] speaking Medusa 2.21's
//! authentication routes, JWT issuing and verification, server-side sessions,
//! and the [`AuthContext`] extractor with [`RequireAuthLayer`] for the host
//! application's own routes.
//!
//! | route | method |
//! |---|---|
//! | `/auth/{actor}/{provider}/register` | POST |
//! | `/auth/{actor}/{provider}` | GET, POST |
//! | `/auth/{actor}/{provider}/callback` | GET, POST |
//! | `/auth/{actor}/{provider}/reset-password` | POST |
//! | `/auth/{actor}/{provider}/update` | POST |
//! | `/auth/token/refresh` | POST |
//! | `/auth/session` | POST, DELETE |
//! | `/auth/{actor}/providers` | GET |
//! | `/auth/{provider}/user` | POST |
//! | `/auth/mfa/factors` | GET, POST |
//! | `/auth/mfa/factors/{id}` | DELETE |
//! | `/auth/mfa/factors/{id}/verify` | POST |
//! | `/auth/mfa/recovery-codes` | POST |
//! | `/auth/mfa/challenges/{id}/verify` | POST |
//! | `/auth/verification/request` | POST |
//! | `/auth/verification/confirm` | POST |
//! | `/.well-known/jwks.json` | GET |
//! | `/health` | GET |
//! | `/ready` | GET |
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use auth_module::{AuthModule, Config, ConfigDocument};
//! // One file; the core takes its sections, this crate takes `[http]`.
//! let mut doc = ConfigDocument::from_file("auth.toml")?;
//! let config = Config::from_document(&mut doc)?;
//! let http = auth_http::HttpConfig::from_document(&mut doc)?;
//! doc.finish(&["http", "providers", "state", "store"])?;
//! let module = AuthModule::builder().config(config).build()?;
//! let service = auth_http::AuthService::new(module, &http)?;
//! let app = auth_http::router(service);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```

use axum::Router;
use axum::extract::Request;
use axum::handler::Handler;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use tower_http::trace::TraceLayer;

mod body;
mod client;
mod config;
mod context;
mod error;
mod extract;
mod login;
mod management;
mod meta;
mod mfa;
mod refresh;
mod reset;
mod service;
mod session;
mod sso;
mod verification;

pub use auth_module::gate::ClaimsHook;
pub use config::HttpConfig;
pub use context::{AuthContext, AuthMethod, AuthPolicy, RequireAuth, RequireAuthLayer};
pub use error::ApiError;
pub use management::management_router;
pub use service::{AuthService, HttpSettings, PublicOrigin};

pub(crate) use service::valid_host;

/// One route of [`router`]: a method, a path and its handler.
struct Entry {
    method: Method,
    path: &'static str,
    handler: MethodRouter<AuthService>,
}

fn entry<H, T>(method: Method, path: &'static str, handler: H) -> Entry
where
    H: Handler<T, AuthService>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("a standard method");
    Entry {
        method,
        path,
        handler: on(filter, handler),
    }
}

/// Every route, once: [`router`] is built from it and [`routes`] lists it,
/// so a route cannot be served without being listed (the access table's
/// test checks every listed route against every kind of credential).
fn table() -> Vec<Entry> {
    use Method as M;
    vec![
        entry(M::POST, "/auth/token/refresh", refresh::refresh),
        entry(M::POST, "/auth/session", session::create_session),
        entry(M::DELETE, "/auth/session", session::delete_session),
        entry(M::GET, "/auth/{actor}/providers", meta::list_providers),
        entry(M::POST, "/auth/{actor}/user", sso::sso_user),
        entry(M::GET, "/auth/mfa/factors", mfa::list_factors),
        entry(M::POST, "/auth/mfa/factors", mfa::create_factor),
        entry(M::DELETE, "/auth/mfa/factors/{id}", mfa::disable_factor),
        entry(M::POST, "/auth/mfa/factors/{id}/verify", mfa::verify_factor),
        entry(M::POST, "/auth/mfa/recovery-codes", mfa::recovery_codes),
        entry(
            M::POST,
            "/auth/mfa/challenges/{id}/verify",
            mfa::verify_challenge,
        ),
        entry(
            M::POST,
            "/auth/verification/request",
            verification::request_verification,
        ),
        entry(
            M::POST,
            "/auth/verification/confirm",
            verification::confirm_verification,
        ),
        entry(M::GET, "/auth/{actor}/{provider}", login::login),
        entry(M::POST, "/auth/{actor}/{provider}", login::login),
        entry(
            M::POST,
            "/auth/{actor}/{provider}/register",
            login::register,
        ),
        entry(
            M::POST,
            "/auth/{actor}/{provider}/reset-password",
            reset::reset_password,
        ),
        entry(M::POST, "/auth/{actor}/{provider}/update", reset::update),
        entry(M::GET, "/auth/{actor}/{provider}/callback", login::callback),
        entry(
            M::POST,
            "/auth/{actor}/{provider}/callback",
            login::callback,
        ),
        entry(M::GET, "/.well-known/jwks.json", meta::jwks),
        entry(M::GET, "/health", meta::health),
        entry(M::GET, "/ready", meta::ready),
    ]
}

/// Every route [`router`] serves, as `(method, path)` in its path syntax
/// (`{actor}` for a segment).
pub fn routes() -> Vec<(Method, &'static str)> {
    table().into_iter().map(|e| (e.method, e.path)).collect()
}

/// The auth routes (and `/health`, `/ready`), with CORS, body-size and tracing layers,
/// JSON 404 and 405 answers.
pub fn router(service: AuthService) -> Router {
    let mut router = Router::new();
    for e in table() {
        router = router.route(e.path, e.handler);
    }
    router
        .fallback(meta::not_found)
        .method_not_allowed_fallback(meta::method_not_allowed)
        .layer(middleware::from_fn_with_state(service.clone(), guard))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            // The path only: queries can carry codes and tokens. At debug:
            // an info span costs every request its fields formatted and
            // stored by the log subscriber (a third of a token refresh at
            // the default `RUST_LOG=info`), and nothing logs per request at
            // info.
            tracing::debug_span!("request", method = %req.method(), path = %req.uri().path())
        }))
        .with_state(service)
}

/// Refuses declared oversized bodies before anything reads them (a body that
/// grows past the limit while read is refused by [`body::read_object`]), and
/// answers CORS for the configured origins.
///
/// Why not tower-http's `CorsLayer` and `RequestBodyLimitLayer`: neither keeps
/// the contract by itself (a preflight is answered `200`, not `204`; an
/// oversized body gets a `text/plain` 413, not the JSON one), so they need a
/// third layer to reshape their answers, and the three cost about 8% of
/// token-refresh throughput on a 2-core machine (20.2k against 22.0k req/s with
/// this one middleware, `shared/load/load.sh`, three alternating runs), where
/// refresh must not get slower.
async fn guard(
    axum::extract::State(svc): axum::extract::State<AuthService>,
    req: Request,
    next: Next,
) -> Response {
    let settings = svc.settings();
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
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
    let mut res = if preflight {
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
        res
    } else if declared.is_some_and(|n| n > settings.body_limit as u64) {
        ApiError::TooLarge.into_response()
    } else {
        next.run(req).await
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
    res
}
