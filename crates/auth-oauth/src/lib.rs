//! OAuth 2.0 and OpenID Connect machinery for `auth-module` redirect
//! providers, so that each social provider writes only its mapping from the
//! identity provider's user to an identity.
//!
//! - [`OAuthClient::begin`]: the authorization URL with a `state` (32 random
//!   bytes as 64 hex characters), PKCE S256 and, for OpenID Connect, a
//!   `nonce`. The login is kept in the provider's scoped state for 10
//!   minutes, bound to the provider **instance**, the route's actor type, the
//!   effective callback URL and the caller's proven identity (for linking).
//! - [`OAuthClient::finish`]: the state is spent once, atomically, before any
//!   call to the identity provider; a login started to link completes only
//!   when the callback proves the same auth identity again (else 401
//!   `Unauthorized`, nothing linked); then the code exchange
//!   (`client_secret_post`, `client_secret_basic`, or a public client with
//!   PKCE only) and the id_token checks: the algorithm pinned to what the JWKS
//!   key declares (RS256, ES256), `iss`, `aud`/`azp`, `exp`/`iat`/`nbf` with a
//!   tolerance, `nonce`, and `at_hash` when present.
//! - Discovery documents and key sets are cached: keys are fetched once, and
//!   again on an unknown `kid` at most once a minute.
//! - Every call has a timeout (default 10 s) and follows no redirects;
//!   endpoints must be `https` (plain `http` only on a loopback host, and
//!   discovered ones only when the issuer itself is loopback `http`).
//! - [`complete_login`]: the returning user, a new one, or linking with proof.
//! - [`RedirectProvider`] and [`redirect_provider!`]: a provider's
//!   `AuthProvider` from its differences (error style, registration refusal,
//!   names, and the mapping of a completed login to its external user).
//!
//! ```
//! use auth_oauth::{CallbackPolicy, IdTokenRules, OAuthClient, OAuthSettings, urls};
//! # fn demo() -> Result<(), auth_module::OptionsError> {
//! let mut settings = OAuthSettings::new(
//!     "google",
//!     "my-client-id",
//!     CallbackPolicy::new("https://shop.example/auth/google/callback", vec![]),
//! );
//! settings.issuer = Some(urls::endpoint("issuer", "https://accounts.google.com")?);
//! settings.scopes = vec!["openid".into(), "email".into()];
//! settings.id_token = Some(IdTokenRules::new(vec!["https://accounts.google.com".into()]));
//! let client = OAuthClient::new(settings)?; // endpoints are discovered on first use
//! # let _ = client; Ok(()) }
//! ```

mod client;
mod error;
mod http;
mod identity;
mod jwks;
mod redirect;
pub mod urls;

pub use client::{
    ClientAuth, Completed, DEFAULT_CLOCK_TOLERANCE, DEFAULT_DISCOVERY_TTL, DEFAULT_HTTP_TIMEOUT,
    DEFAULT_STATE_TTL, IdTokenRules, OAuthClient, OAuthSettings,
};
pub use error::{AUTHENTICATION_FAILED, ErrorStyle, NO_CODE, NO_STATE, OAuthError, UNAUTHORIZED};
pub use identity::complete_login;
pub use redirect::RedirectProvider;
pub use urls::CallbackPolicy;

/// What [`redirect_provider!`] expands to; not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::redirect::{authenticate, register, validate_callback};
    pub use auth_module::{
        AuthOutcome, AuthProvider, AuthRequest, ProviderIdentities, Result, async_trait,
    };
}
