//! [`AuthService`]: the module, its token signer and flows, and the HTTP
//! settings, shared by the router and [`crate::RequireAuthLayer`].

use std::fmt;
use std::sync::Arc;

use auth_module::accounts::{LinkedIdentityUsers, PasswordReset, UserDirectory};
use auth_module::events::EventBus;
use auth_module::flows::Sessions;
use auth_module::gate::{ClaimsHook, Gate};
use auth_module::{AuthModule, ConfigError, Tokens};

use crate::HttpConfig;

/// The HTTP settings: `[http]` itself (read through `Deref`:
/// `settings.body_limit`), the public origin, and the trusted proxies
/// parsed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpSettings {
    http: HttpConfig,
    /// The configured public origin, if any.
    pub public_origin: Option<PublicOrigin>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub(crate) trusted_proxies: Vec<crate::client::Cidr>,
}

impl std::ops::Deref for HttpSettings {
    type Target = HttpConfig;

    fn deref(&self) -> &HttpConfig {
        &self.http
    }
}

#[derive(Clone)]
struct ServiceInner {
    gate: Gate,
    users: Arc<dyn UserDirectory>,
    settings: HttpSettings,
}

/// The core's [`Gate`] (the module, its token signer, sessions and resets),
/// the SSO user directory and the HTTP settings: the state of the router
/// and of [`crate::RequireAuthLayer`]. Cheap to clone.
#[derive(Clone)]
pub struct AuthService {
    inner: Arc<ServiceInner>,
}

impl fmt::Debug for AuthService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthService")
            .field("gate", &self.inner.gate)
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl AuthService {
    /// A service over `module` with `[http]` settings. `http.jwt_secret` is
    /// required under HS256 (there is no built-in default secret), and
    /// `http.jwt_private_key_file` under an asymmetric `jwt_algorithm`.
    /// `http` is checked here unless [`HttpConfig::from_document`] did.
    pub fn new(module: AuthModule, http: &HttpConfig) -> Result<Self, ConfigError> {
        if !http.is_checked() {
            http.validate()?;
        }
        let tokens = http.tokens()?;
        let sessions = Sessions::new(module.state_store().clone(), http.session_ttl)
            .with_max_per_identity(http.max_sessions_per_identity);
        Ok(AuthService {
            inner: Arc::new(ServiceInner {
                users: Arc::new(LinkedIdentityUsers::new(module.clone())),
                gate: Gate::new(module, tokens, sessions)
                    .with_device_idle_ttl(http.device_idle_ttl),
                settings: HttpSettings {
                    http: http.clone(),
                    public_origin: None,
                    trusted_proxies: http
                        .trusted_proxies
                        .iter()
                        .filter_map(|p| crate::client::Cidr::parse(p).ok())
                        .collect(),
                },
            }),
        })
    }

    /// Takes the scheme and host providers see from `origin` instead of the
    /// request (behind a proxy).
    pub fn with_public_origin(mut self, origin: PublicOrigin) -> Self {
        Arc::make_mut(&mut self.inner).settings.public_origin = Some(origin);
        self
    }

    /// Finds and creates users for `POST /auth/{provider}/user` through
    /// `users` (default: [`LinkedIdentityUsers`], which keeps no user table).
    pub fn with_user_directory(mut self, users: Arc<dyn UserDirectory>) -> Self {
        Arc::make_mut(&mut self.inner).users = users;
        self
    }

    /// Adds claims to every token the service issues through `hook`
    /// (default: [`auth_module::gate::StoredRoles`], the identity's
    /// `app_metadata.roles`).
    pub fn with_claims_hook(mut self, hook: Arc<dyn ClaimsHook>) -> Self {
        let inner = Arc::make_mut(&mut self.inner);
        inner.gate = inner.gate.clone().with_claims_hook(hook);
        self
    }

    /// The user directory of the SSO user route.
    pub fn users(&self) -> &Arc<dyn UserDirectory> {
        &self.inner.users
    }

    /// The proxies whose `X-Forwarded-For` is believed.
    pub(crate) fn trusted_proxies(&self) -> &[crate::client::Cidr] {
        &self.inner.settings.trusted_proxies
    }

    /// The client address of a request: the socket peer, or behind trusted
    /// proxies the rightmost untrusted `X-Forwarded-For` entry.
    pub(crate) fn client_addr(
        &self,
        parts: &axum::http::request::Parts,
    ) -> Option<std::net::IpAddr> {
        crate::client::client_addr(parts, &self.inner.settings.trusted_proxies)
    }

    /// The module's event bus: [`EventBus::subscribe`] receives
    /// `auth.password_reset` (set the bus with
    /// [`auth_module::AuthModuleBuilder::events`]).
    pub fn events(&self) -> &EventBus {
        self.module().events()
    }

    /// The gate: issues and checks every credential.
    pub fn gate(&self) -> &Gate {
        &self.inner.gate
    }

    /// The sessions flow.
    pub fn sessions(&self) -> &Sessions {
        self.inner.gate.sessions()
    }

    /// The password reset flow.
    pub fn resets(&self) -> &PasswordReset {
        self.inner.gate.resets()
    }

    /// The auth module.
    pub fn module(&self) -> &AuthModule {
        self.inner.gate.module()
    }

    /// The token signer.
    pub fn tokens(&self) -> &Tokens {
        self.inner.gate.tokens()
    }

    /// The HTTP settings.
    pub fn settings(&self) -> &HttpSettings {
        &self.inner.settings
    }
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
