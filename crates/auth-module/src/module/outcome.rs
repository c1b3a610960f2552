//! [`LoginOutcome`]: what a login, registration, callback or provider
//! update answers.

use crate::model::AuthIdentity;
use crate::provider::AuthOutcome;

#[cfg(doc)]
use super::AuthModule;

/// What [`AuthModule::authenticate`], [`AuthModule::register`],
/// [`AuthModule::validate_callback`] and [`AuthModule::update_provider`]
/// answer. More variants may come, so match with a wildcard arm; each
/// variant's fields may grow too.
///
/// A login (or callback) that authenticated an identity answers
/// [`LoginOutcome::VerificationRequired`] first, then
/// [`LoginOutcome::MfaRequired`], while those steps remain
/// ([`AuthModule::login_steps`]); the token for those is a *step token*
/// ([`crate::AuthClaims::for_step`], issued by [`crate::gate::Gate`]).
///
/// ```
/// # fn show(outcome: auth_module::LoginOutcome) -> String {
/// use auth_module::LoginOutcome;
/// match outcome {
///     LoginOutcome::Authenticated { identity, .. } => format!("welcome {}", identity.id),
///     LoginOutcome::Redirect { location, .. } => format!("continue at {location}"),
///     LoginOutcome::Failed { message, .. } => format!("refused: {message}"),
///     _ => "a step this caller does not handle yet".to_owned(),
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LoginOutcome {
    /// The step succeeded for this identity (without provider secrets; its
    /// [`AuthIdentity::credential_version`] is the one tokens are issued under).
    #[non_exhaustive]
    Authenticated {
        /// The identity.
        identity: AuthIdentity,
        /// Whether this step attached a new provider identity to an auth
        /// identity the caller proved it holds (linking with proof).
        linked: bool,
    },
    /// The client continues at `location` (redirect providers).
    #[non_exhaustive]
    Redirect {
        /// Where to continue.
        location: String,
    },
    /// The client answers the challenge in `options` first (passkeys:
    /// WebAuthn creation or request options).
    #[non_exhaustive]
    Options {
        /// The options to answer.
        options: serde_json::Value,
    },
    /// The step failed; `message` is safe to show to the client.
    #[non_exhaustive]
    Failed {
        /// The client-facing reason.
        message: String,
    },
    /// Refused by a rate limit before any work: try again after `retry_after`
    /// (HTTP: 429 with `Retry-After`).
    #[non_exhaustive]
    Throttled {
        /// When to try again, at the latest.
        retry_after: std::time::Duration,
    },
    /// The credentials are right, but the identity must first verify what
    /// `http.auth_verifications_per_actor` asks for this provider.
    #[non_exhaustive]
    VerificationRequired {
        /// The identity.
        identity: AuthIdentity,
        /// Its pending verification row; `None` if never requested.
        verification: Option<crate::records::Verification>,
    },
    /// The credentials are right and the identity has MFA: the login
    /// completes by answering `challenge`
    /// ([`crate::flows::Mfa::verify_challenge`]).
    #[non_exhaustive]
    MfaRequired {
        /// The identity.
        identity: AuthIdentity,
        /// The new challenge.
        challenge: crate::flows::MfaChallenge,
    },
}

impl LoginOutcome {
    pub(super) fn failed(message: impl Into<String>) -> Self {
        LoginOutcome::Failed {
            message: message.into(),
        }
    }

    pub(super) fn from_outcome(outcome: AuthOutcome) -> Self {
        match outcome {
            AuthOutcome::Authenticated(identity) => LoginOutcome::Authenticated {
                identity: identity.redacted(),
                linked: false,
            },
            AuthOutcome::Linked(identity) => LoginOutcome::Authenticated {
                identity: identity.redacted(),
                linked: true,
            },
            AuthOutcome::Redirect(location) => LoginOutcome::Redirect { location },
            AuthOutcome::Options(options) => LoginOutcome::Options { options },
            AuthOutcome::Failed(message) | AuthOutcome::WrongCredentials(message) => {
                LoginOutcome::Failed { message }
            }
        }
    }

    /// Whether the step authenticated an identity.
    pub fn is_authenticated(&self) -> bool {
        matches!(self, LoginOutcome::Authenticated { .. })
    }

    /// The identity, if authenticated.
    pub fn identity(&self) -> Option<&AuthIdentity> {
        match self {
            LoginOutcome::Authenticated { identity, .. } => Some(identity),
            _ => None,
        }
    }

    /// The identity, if authenticated.
    pub fn into_identity(self) -> Option<AuthIdentity> {
        match self {
            LoginOutcome::Authenticated { identity, .. } => Some(identity),
            _ => None,
        }
    }

    /// The failure message, if failed.
    pub fn failure(&self) -> Option<&str> {
        match self {
            LoginOutcome::Failed { message } => Some(message),
            _ => None,
        }
    }
}
