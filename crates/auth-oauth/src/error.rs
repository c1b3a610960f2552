//! Why a login or callback did not complete, and how each reason is answered.

use auth_module::{AuthOutcome, Error};

/// The message for every identity-provider failure the client learns nothing
/// more about (details are logged).
pub const AUTHENTICATION_FAILED: &str = "Authentication failed";
/// The callback carried no `code`.
pub const NO_CODE: &str = "No code provided";
/// The callback's `state` is missing, unknown, used, expired or another
/// instance's.
pub const NO_STATE: &str = "No state provided, or session expired";
/// A linking login's callback did not prove the auth identity the login was
/// started with (Medusa's middleware message).
pub const UNAUTHORIZED: &str = "Unauthorized";

/// Why a login or callback did not complete.
#[derive(Debug)]
#[non_exhaustive]
pub enum OAuthError {
    /// The identity provider sent the user back with an `error`.
    Idp {
        /// `error_description` (or `error` when there is none).
        description: String,
        /// `error_uri`, if any.
        uri: Option<String>,
    },
    /// The callback carried no `code`.
    NoCode,
    /// The callback's `state` is missing, unknown, used, expired or foreign.
    NoState,
    /// The login asked for a callback URL that is not allowed.
    CallbackNotAllowed,
    /// The login was started to link to an auth identity, and the callback
    /// request did not prove that same identity ([`auth_module::AuthRequest::link_to`]);
    /// nothing is linked and the state is spent.
    LinkNotProven,
    /// Any other failure at the identity provider (network, exchange,
    /// id_token, claims, policy); the detail is for the log only.
    Failed(String),
    /// The state store failed (answered as the store error).
    Store(Error),
}

/// Which answers a provider kind gives, as Medusa's providers of that kind do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorStyle {
    /// Medusa's google and github providers: an identity-provider `error` is
    /// answered `{error_description}, read more at: {error_uri}`, a callback
    /// URL off the list 400 `not_allowed`,
    /// `The provided callback_url is not allowed`.
    Social,
    /// Medusa's `@medusajs/auth-oidc`: an identity-provider `error` is
    /// answered `Authentication failed`, a callback URL off the list 401
    /// `The provided callback URL is not allowed`.
    Oidc,
}

impl OAuthError {
    /// A failure whose `detail` goes only to the log.
    pub fn failed(detail: impl Into<String>) -> Self {
        OAuthError::Failed(detail.into())
    }

    /// The provider's answer: a failed step with Medusa's message, a
    /// `not_allowed` refusal, or the store's error, in `style`. Details are logged under
    /// `provider` (never codes, tokens or secrets: callers put none in them).
    pub fn into_outcome(
        self,
        provider: &str,
        style: ErrorStyle,
    ) -> auth_module::Result<AuthOutcome> {
        Ok(match self {
            OAuthError::Idp { description, uri } => {
                tracing::info!(provider, error = %description, "the identity provider answered an error");
                match (style, uri) {
                    (ErrorStyle::Oidc, _) => AuthOutcome::failed(AUTHENTICATION_FAILED),
                    (ErrorStyle::Social, Some(uri)) => {
                        AuthOutcome::failed(format!("{description}, read more at: {uri}"))
                    }
                    (ErrorStyle::Social, None) => AuthOutcome::failed(description),
                }
            }
            OAuthError::NoCode => AuthOutcome::failed(NO_CODE),
            OAuthError::NoState => AuthOutcome::failed(NO_STATE),
            OAuthError::CallbackNotAllowed => match style {
                ErrorStyle::Social => {
                    return Err(Error::not_allowed(
                        "The provided callback_url is not allowed",
                    ));
                }
                ErrorStyle::Oidc => AuthOutcome::failed("The provided callback URL is not allowed"),
            },
            OAuthError::LinkNotProven => {
                tracing::warn!(
                    provider,
                    "a linking login's callback did not prove the identity it was started for"
                );
                AuthOutcome::failed(UNAUTHORIZED)
            }
            OAuthError::Failed(detail) => {
                tracing::warn!(provider, detail = %detail, "social login failed");
                AuthOutcome::failed(AUTHENTICATION_FAILED)
            }
            OAuthError::Store(e) => return Err(e),
        })
    }
}

impl From<Error> for OAuthError {
    fn from(e: Error) -> Self {
        OAuthError::Store(e)
    }
}
