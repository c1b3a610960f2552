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
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, on};

mod body;
mod client;
mod config;
mod context;
mod devices;
mod error;
mod extract;
mod guard;
mod identity;
mod login;
mod management;
mod meta;
mod mfa;
mod openapi;
mod passkeys;
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
pub use management::{management_router, management_routes};
pub use openapi::openapi_document;
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
        entry(M::POST, "/auth/token/revoke", devices::revoke),
        entry(M::GET, "/auth/devices", devices::list),
        entry(M::DELETE, "/auth/devices", devices::end_others),
        entry(M::DELETE, "/auth/devices/{id}", devices::end),
        entry(M::GET, "/auth/identity", identity::read),
        entry(M::POST, "/auth/session", session::create_session),
        entry(M::DELETE, "/auth/session", session::delete_session),
        entry(M::GET, "/auth/{actor}/providers", meta::list_providers),
        entry(M::POST, "/auth/{actor}/user", sso::sso_user),
        entry(M::GET, "/auth/mfa/factors", mfa::list_factors),
        entry(M::POST, "/auth/mfa/factors", mfa::create_factor),
        entry(M::DELETE, "/auth/mfa/factors/{id}", mfa::disable_factor),
        entry(M::POST, "/auth/mfa/factors/{id}/verify", mfa::verify_factor),
        entry(M::POST, "/auth/mfa/recovery-codes", mfa::recovery_codes),
        entry(M::GET, "/auth/passkeys", passkeys::list),
        entry(M::PATCH, "/auth/passkeys/{id}", passkeys::rename),
        entry(M::DELETE, "/auth/passkeys/{id}", passkeys::remove),
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
        entry(M::GET, "/openapi.json", openapi::serve),
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
        .layer(guard::GuardLayer::new(service.clone()))
        .with_state(service)
}
