//! [`RedirectProvider`]: the `AuthProvider` of every redirect provider, which
//! writes only what it differs in.

use std::future::Future;

use auth_module::{AuthOutcome, AuthRequest, Error, Metadata, ProviderIdentities};

use crate::{Completed, ErrorStyle, OAuthClient, OAuthError};

/// What a redirect provider (sign-in through an [`OAuthClient`]) differs in.
/// [`redirect_provider!`](crate::redirect_provider) turns it into the
/// provider's [`AuthProvider`](auth_module::AuthProvider):
///
/// - `authenticate` is [`OAuthClient::login`]: the redirect to the identity
///   provider, failures answered in [`ERROR_STYLE`](Self::ERROR_STYLE);
/// - `validate_callback` is [`OAuthClient::callback`], with
///   [`external_user`](Self::external_user) as the mapping and
///   [`name`](Self::name) in a linking refusal;
/// - `register` answers [`REGISTER_REFUSAL`](Self::REGISTER_REFUSAL) as a
///   failure, or without one `AuthProvider`'s default refusal;
/// - `display_name` is [`display_name`](Self::display_name); `update`,
///   `identifier` and `normalize_entity_id` keep their defaults.
///
/// The provider still implements `ProviderKind` (with
/// `FLOW = ProviderFlow::Redirect`) and registers itself.
///
/// ```
/// use auth_module::Metadata;
/// use auth_oauth::{Completed, ErrorStyle, OAuthClient, OAuthError, RedirectProvider};
///
/// /// Signs users in by their id_token's `sub`.
/// #[derive(Debug)]
/// struct AcmeProvider {
///     oauth: OAuthClient,
/// }
///
/// impl RedirectProvider for AcmeProvider {
///     const ERROR_STYLE: ErrorStyle = ErrorStyle::Social;
///     const REGISTER_REFUSAL: Option<&'static str> =
///         Some("Acme does not support registration. Use method `authenticate` instead.");
///
///     fn oauth(&self) -> &OAuthClient {
///         &self.oauth
///     }
///
///     fn name(&self) -> &str {
///         "Acme"
///     }
///
///     async fn external_user(&self, done: Completed) -> Result<(String, Metadata), OAuthError> {
///         let claims = done.claims.unwrap_or_default();
///         let sub = claims
///             .get("sub")
///             .and_then(serde_json::Value::as_str)
///             .ok_or_else(|| OAuthError::failed("the id_token has no sub"))?;
///         Ok((sub.to_owned(), Metadata::new()))
///     }
/// }
///
/// auth_oauth::redirect_provider!(AcmeProvider);
///
/// fn boxed(p: AcmeProvider) -> Box<dyn auth_module::AuthProvider> {
///     Box::new(p)
/// }
/// ```
pub trait RedirectProvider: Send + Sync {
    /// How failures are answered (Medusa's social providers', or its OIDC
    /// provider's).
    const ERROR_STYLE: ErrorStyle;

    /// The failure `register` answers (Medusa's `"… does not support
    /// registration. Use method `authenticate` instead."`); `None`:
    /// `AuthProvider`'s default refusal.
    const REGISTER_REFUSAL: Option<&'static str> = None;

    /// The instance's OAuth client.
    fn oauth(&self) -> &OAuthClient;

    /// The provider's name in a linking refusal (`This Google account is
    /// already linked to another auth identity`).
    fn name(&self) -> &str;

    /// This instance's name for providers lists, when its options set one
    /// (`AuthProvider::display_name`); default: none, the kind's
    /// `DISPLAY_NAME`.
    fn display_name(&self) -> Option<&str> {
        None
    }

    /// The external user of a completed login, as `(entity_id,
    /// user_metadata)`, calling the identity provider's API if it needs to
    /// (with [`Completed::access_token`], never kept). An [`OAuthError`] is
    /// answered in [`ERROR_STYLE`](Self::ERROR_STYLE).
    fn external_user(
        &self,
        done: Completed,
    ) -> impl Future<Output = Result<(String, Metadata), OAuthError>> + Send;
}

/// Implements `auth_module::AuthProvider` for a type implementing
/// [`RedirectProvider`]: `auth_oauth::redirect_provider!(AcmeProvider);`
/// once, in the provider's crate (see [`RedirectProvider`] for what each
/// method answers, and a whole example).
#[macro_export]
macro_rules! redirect_provider {
    ($provider:ty) => {
        #[$crate::__private::async_trait]
        impl $crate::__private::AuthProvider for $provider {
            fn display_name(&self) -> ::core::option::Option<&str> {
                <Self as $crate::RedirectProvider>::display_name(self)
            }

            async fn authenticate(
                &self,
                req: $crate::__private::AuthRequest,
                ids: &$crate::__private::ProviderIdentities,
            ) -> $crate::__private::Result<$crate::__private::AuthOutcome> {
                $crate::__private::authenticate(self, req, ids).await
            }

            async fn register(
                &self,
                _req: $crate::__private::AuthRequest,
                _ids: &$crate::__private::ProviderIdentities,
            ) -> $crate::__private::Result<$crate::__private::AuthOutcome> {
                $crate::__private::register::<Self>()
            }

            async fn validate_callback(
                &self,
                req: $crate::__private::AuthRequest,
                ids: &$crate::__private::ProviderIdentities,
            ) -> $crate::__private::Result<$crate::__private::AuthOutcome> {
                $crate::__private::validate_callback(self, req, ids).await
            }
        }
    };
}

/// `authenticate`.
pub async fn authenticate<P: RedirectProvider>(
    p: &P,
    req: AuthRequest,
    ids: &ProviderIdentities,
) -> auth_module::Result<AuthOutcome> {
    p.oauth().login(&req, ids, P::ERROR_STYLE).await
}

/// `register`.
pub fn register<P: RedirectProvider>() -> auth_module::Result<AuthOutcome> {
    match P::REGISTER_REFUSAL {
        Some(message) => Ok(AuthOutcome::failed(message)),
        None => Err(Error::not_supported("register")),
    }
}

/// `validate_callback`.
pub async fn validate_callback<P: RedirectProvider>(
    p: &P,
    req: AuthRequest,
    ids: &ProviderIdentities,
) -> auth_module::Result<AuthOutcome> {
    p.oauth()
        .callback(&req, ids, P::ERROR_STYLE, p.name(), |done| {
            p.external_user(done)
        })
        .await
}
