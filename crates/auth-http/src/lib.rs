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
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use tower_http::trace::TraceLayer;

mod body;
mod client;
mod config;
mod context;
mod error;
pub mod events;
mod extract;
mod handlers;
mod management;
mod mfa;
mod reset;
mod service;
mod session;

pub use config::HttpConfig;
pub use context::{AuthContext, AuthMethod, AuthPolicy, RequireAuth, RequireAuthLayer};
pub use error::ApiError;
pub use management::management_router;
pub use service::{AuthService, HttpSettings, PublicOrigin};

pub(crate) use service::valid_host;

/// The auth routes (and `/health`, `/ready`), with CORS, body-size and tracing layers,
/// JSON 404 and 405 answers.
pub fn router(service: AuthService) -> Router {
    Router::new()
        .route("/auth/token/refresh", post(handlers::refresh))
        .route(
            "/auth/session",
            post(session::create_session).delete(session::delete_session),
        )
        .route("/auth/{actor}/providers", get(handlers::list_providers))
        .route("/auth/{actor}/user", post(mfa::sso_user))
        .route(
            "/auth/mfa/factors",
            get(mfa::list_factors).post(mfa::create_factor),
        )
        .route("/auth/mfa/factors/{id}", delete(mfa::disable_factor))
        .route("/auth/mfa/factors/{id}/verify", post(mfa::verify_factor))
        .route("/auth/mfa/recovery-codes", post(mfa::recovery_codes))
        .route(
            "/auth/mfa/challenges/{id}/verify",
            post(mfa::verify_challenge),
        )
        .route(
            "/auth/verification/request",
            post(mfa::request_verification),
        )
        .route(
            "/auth/verification/confirm",
            post(mfa::confirm_verification),
        )
        .route(
            "/auth/{actor}/{provider}",
            get(handlers::login).post(handlers::login),
        )
        .route(
            "/auth/{actor}/{provider}/register",
            post(handlers::register),
        )
        .route(
            "/auth/{actor}/{provider}/reset-password",
            post(reset::reset_password),
        )
        .route("/auth/{actor}/{provider}/update", post(reset::update))
        .route(
            "/auth/{actor}/{provider}/callback",
            get(handlers::callback).post(handlers::callback),
        )
        .route("/.well-known/jwks.json", get(handlers::jwks))
        .route("/health", get(handlers::health))
        .route("/ready", get(handlers::ready))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(middleware::from_fn_with_state(service.clone(), guard))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            // The path only: queries can carry codes and tokens.
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
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
