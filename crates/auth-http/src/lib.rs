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

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use auth_module::events::EventBus;
use auth_module::flows::{PasswordReset, Sessions};
use auth_module::{AuthModule, ConfigError, Tokens};
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::trace::TraceLayer;

mod body;
mod config;
mod context;
mod error;
pub mod events;
mod handlers;
mod management;
mod reset;

pub use config::HttpConfig;
pub use context::{AuthContext, AuthMethod, AuthPolicy, RequireAuth, RequireAuthLayer};
pub use error::ApiError;
pub use management::management_router;

/// The HTTP settings taken from `[http]`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpSettings {
    /// Session cookie name.
    pub session_cookie_name: String,
    /// Whether the cookie carries `Secure`.
    pub session_cookie_secure: bool,
    /// Server-side session lifetime.
    pub session_ttl: Duration,
    /// Allowed CORS origins.
    pub cors_origins: Vec<String>,
    /// Largest accepted body in bytes.
    pub body_limit: usize,
    /// The configured public origin, if any.
    pub public_origin: Option<PublicOrigin>,
}

struct ServiceInner {
    module: AuthModule,
    tokens: Tokens,
    sessions: Sessions,
    resets: PasswordReset,
    settings: HttpSettings,
}

/// The module, its token signer and flows, and the HTTP settings: the state
/// of the router and of [`RequireAuthLayer`]. Cheap to clone.
#[derive(Clone)]
pub struct AuthService {
    inner: Arc<ServiceInner>,
}

impl fmt::Debug for AuthService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthService")
            .field("module", &self.inner.module)
            .field("tokens", &self.inner.tokens)
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl AuthService {
    /// A service over `module` with `[http]` settings. `http.jwt_secret` is
    /// required: there is no built-in default secret.
    pub fn new(module: AuthModule, http: &HttpConfig) -> Result<Self, ConfigError> {
        let secret = http
            .jwt_secret
            .as_ref()
            .filter(|s| !s.expose().is_empty())
            .ok_or_else(|| ConfigError::new("http.jwt_secret is required to serve HTTP"))?;
        if secret.expose().len() < 32 {
            tracing::warn!("http.jwt_secret is shorter than 32 bytes; use a long random secret");
        }
        http.validate()?;
        let tokens = Tokens::hs256(secret, http.jwt_expires_in);
        Ok(AuthService {
            inner: Arc::new(ServiceInner {
                sessions: Sessions::new(module.state_store().clone(), http.session_ttl),
                resets: PasswordReset::new(module.clone(), tokens.clone()),
                module,
                tokens,
                settings: HttpSettings {
                    session_cookie_name: http.session_cookie_name.clone(),
                    session_cookie_secure: http.session_cookie_secure,
                    session_ttl: http.session_ttl,
                    cors_origins: http.cors_origins.clone(),
                    body_limit: http.body_limit,
                    public_origin: None,
                },
            }),
        })
    }

    /// Takes the scheme and host providers see from `origin` instead of the
    /// request (behind a proxy).
    pub fn with_public_origin(mut self, origin: PublicOrigin) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.settings.public_origin = Some(origin),
            None => {
                let inner = &self.inner;
                self.inner = Arc::new(ServiceInner {
                    module: inner.module.clone(),
                    tokens: inner.tokens.clone(),
                    sessions: inner.sessions.clone(),
                    resets: inner.resets.clone(),
                    settings: HttpSettings {
                        public_origin: Some(origin),
                        ..inner.settings.clone()
                    },
                });
            }
        }
        self
    }

    /// The module's event bus: [`EventBus::subscribe`] receives
    /// `auth.password_reset` (set the bus with
    /// [`auth_module::AuthModuleBuilder::events`]).
    pub fn events(&self) -> &EventBus {
        self.inner.module.events()
    }

    /// The sessions flow.
    pub fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }

    /// The password reset flow.
    pub fn resets(&self) -> &PasswordReset {
        &self.inner.resets
    }

    /// The auth module.
    pub fn module(&self) -> &AuthModule {
        &self.inner.module
    }

    /// The token signer.
    pub fn tokens(&self) -> &Tokens {
        &self.inner.tokens
    }

    /// The HTTP settings.
    pub fn settings(&self) -> &HttpSettings {
        &self.inner.settings
    }
}

/// The auth routes (and `/health`), with CORS, body-size and tracing layers,
/// JSON 404 and 405 answers.
pub fn router(service: AuthService) -> Router {
    Router::new()
        .route("/auth/token/refresh", post(handlers::refresh))
        .route(
            "/auth/session",
            post(handlers::create_session).delete(handlers::delete_session),
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
        .layer(middleware::from_fn_with_state(service.clone(), guard))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            // The path only: queries can carry codes and tokens.
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
        }))
        .with_state(service)
}

/// Refuses declared oversized bodies before anything reads them, and answers
/// CORS for the configured origins.
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

/// The scheme and host clients reach the server at, when it runs behind a
/// proxy (`[server] public_url`): providers then build callback URLs from it,
/// never from forwarded headers, which any client can forge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicOrigin {
    scheme: &'static str,
    host: String,
}

impl PublicOrigin {
    /// Parses `http(s)://host[:port]` (a trailing `/` is allowed; a path,
    /// query, fragment or user info is not).
    pub fn parse(url: &str) -> Result<PublicOrigin, String> {
        let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
            ("https", rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            ("http", rest)
        } else {
            return Err("must start with http:// or https://".to_owned());
        };
        let host = rest.strip_suffix('/').unwrap_or(rest);
        if !valid_host(host) {
            return Err("must be an origin: scheme and host[:port], with no path".to_owned());
        }
        Ok(PublicOrigin {
            scheme,
            host: host.to_ascii_lowercase(),
        })
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &str {
        self.scheme
    }

    /// `host[:port]`.
    pub fn host(&self) -> &str {
        &self.host
    }
}

/// Whether `host` is a plausible `host[:port]` (a name, IPv4 or bracketed
/// IPv6 address): what a `Host` header may carry before providers see it.
pub(crate) fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
}
