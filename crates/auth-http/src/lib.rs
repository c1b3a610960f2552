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
//! | `/health` | GET |
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

use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

mod body;
mod config;
mod context;
mod error;
pub mod events;
mod handlers;
mod management;
mod reset;
mod service;
mod session;

pub use config::HttpConfig;
pub use context::{AuthContext, AuthMethod, AuthPolicy, RequireAuth, RequireAuthLayer};
pub use error::ApiError;
pub use management::management_router;
pub use service::{AuthService, HttpSettings, PublicOrigin};

pub(crate) use service::valid_host;

/// The auth routes (and `/health`), with CORS, body-size and tracing layers,
/// JSON 404 and 405 answers.
pub fn router(service: AuthService) -> Router {
    let settings = service.settings();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(
            settings
                .cors_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        ))
        .allow_credentials(true)
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::PATCH,
            Method::POST,
            Method::DELETE,
        ])
        .allow_headers(AllowHeaders::mirror_request())
        .max_age(Duration::from_secs(600));
    let body_limit = RequestBodyLimitLayer::new(settings.body_limit);
    Router::new()
        .route("/auth/token/refresh", post(handlers::refresh))
        .route(
            "/auth/session",
            post(session::create_session).delete(session::delete_session),
        )
        .route("/auth/{actor}/providers", get(handlers::list_providers))
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
        .route("/health", get(handlers::health))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        // Innermost first: the limit, then its answer in the contract's
        // shape, then CORS (on every answer, errors included), then its
        // preflight status.
        .layer(body_limit)
        .layer(middleware::map_response(json_too_large))
        .layer(cors)
        .layer(middleware::from_fn(preflight_no_content))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            // The path only: queries can carry codes and tokens.
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
        }))
        .with_state(service)
}

/// tower-http's body limit refuses a declared oversized body before anything
/// reads it, but with a `text/plain` answer; the contract's 413 is JSON
/// (`{"message":"request entity too large","type":"unknown_error"}`). A body
/// that grows past the limit while read gets the same answer from
/// [`body::read_object`].
async fn json_too_large(res: Response) -> Response {
    let plain = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/plain"));
    if res.status() == StatusCode::PAYLOAD_TOO_LARGE && plain {
        return ApiError::TooLarge.into_response();
    }
    res
}

/// tower-http answers a CORS preflight `200 OK`; Medusa (and the contract)
/// answer `204 No Content`, with the same headers.
async fn preflight_no_content(req: Request, next: Next) -> Response {
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut res = next.run(req).await;
    if preflight && res.status() == StatusCode::OK {
        *res.status_mut() = StatusCode::NO_CONTENT;
    }
    res
}
