//! Google sign-in for `auth-module` (identifier `google`): OpenID Connect's
//! authorization code flow with PKCE S256, a nonce, and the id_token checked
//! against Google's published keys.
//!
//! ```toml
//! [[providers]]
//! resolve = "google"
//! id = "google"
//! [providers.options]
//! clientId = "${GOOGLE_CLIENT_ID}"
//! clientSecret = "${GOOGLE_CLIENT_SECRET}"
//! callbackUrl = "https://shop.example/auth/customer/google/callback"
//! callbackUrlAllowlist = ["https://admin.example/auth/user/google/callback"]
//! ```
//!
//! - With the default endpoints the login's `location` is built offline; with
//!   another `issuer` and no endpoint options they are discovered on first
//!   use and cached.
//! - The `sub` claim is the `entity_id`; `user_metadata` (`email`, `name`,
//!   `picture`, `given_name`, `family_name`) is refreshed at every login.
//! - An address with `email_verified: false` is refused.
//! - Google's tokens are never stored, returned or logged.

use auth_module::{
    Metadata, OptionsError, ProviderFlow, ProviderInit, ProviderKind, Secret, ValidateOptions,
};
use auth_oauth::{
    Completed, ErrorStyle, IdTokenRules, OAuthClient, OAuthError, OAuthSettings, RedirectProvider,
    urls,
};
use serde::Deserialize;
use serde_json::Value;

/// Google's issuer, the default `issuer`.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";
/// Google's authorization endpoint.
pub const GOOGLE_AUTHORIZATION_URL: &str = "https://accounts.google.com/o/oauth2/v2/auth";
/// Google's token endpoint.
pub const GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// Google's key set.
pub const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";

/// The answer to a registration.
pub const NO_REGISTRATION: &str =
    "Google does not support registration. Use method `authenticate` instead.";

/// The provider's options (Medusa's names, camelCase). `Debug` shows no
/// secret: [`Secret`] redacts itself.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[non_exhaustive]
pub struct GoogleOptions {
    /// The OAuth client id.
    #[serde(default)]
    pub client_id: String,
    /// The OAuth client secret.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// The callback URL registered at Google (where users come back).
    #[serde(default)]
    pub callback_url: String,
    /// Other callback URLs a login may ask for (body `callback_url`).
    #[serde(default)]
    pub callback_url_allowlist: Vec<String>,
    /// The issuer (default Google's; `accounts.google.com` is also accepted as
    /// `iss` then).
    #[serde(default)]
    pub issuer: Option<String>,
    /// The authorization endpoint.
    #[serde(default)]
    pub authorization_url: Option<String>,
    /// The token endpoint.
    #[serde(default)]
    pub token_url: Option<String>,
    /// The key set.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Timeout of each call to Google, in milliseconds (default 10000).
    #[serde(default)]
    pub http_timeout_ms: Option<u64>,
}

impl ValidateOptions for GoogleOptions {
    fn validate_options(&self) -> std::result::Result<(), OptionsError> {
        settings("google", self).map(|_| ())
    }
}

fn settings(id: &str, o: &GoogleOptions) -> std::result::Result<OAuthSettings, OptionsError> {
    urls::required("clientId", &o.client_id)?;
    let secret = urls::required_secret("clientSecret", o.client_secret.as_ref())?;
    let callback = urls::callback_policy(
        "callbackUrl",
        &o.callback_url,
        "callbackUrlAllowlist",
        &o.callback_url_allowlist,
    )?;
    let issuer = o.issuer.as_deref().unwrap_or(GOOGLE_ISSUER);
    let default_issuer = issuer.trim_end_matches('/') == GOOGLE_ISSUER;
    // Unset endpoints are Google's with Google's issuer, else discovered.
    let endpoint = |name: &str, given: &Option<String>, google: &'static str| {
        urls::optional_endpoint(name, given.as_deref().or(default_issuer.then_some(google)))
    };
    let mut s = OAuthSettings::new(id, o.client_id.clone(), callback);
    s.client_secret = Some(secret);
    s.issuer = Some(urls::endpoint("issuer", issuer)?);
    s.authorization_url = endpoint(
        "authorizationUrl",
        &o.authorization_url,
        GOOGLE_AUTHORIZATION_URL,
    )?;
    s.token_url = endpoint("tokenUrl", &o.token_url, GOOGLE_TOKEN_URL)?;
    s.jwks_url = endpoint("jwksUrl", &o.jwks_url, GOOGLE_JWKS_URL)?;
    s.scopes = vec!["openid".into(), "email".into(), "profile".into()];
    let mut issuers = vec![issuer.trim_end_matches('/').to_owned()];
    if default_issuer {
        issuers.push("accounts.google.com".to_owned());
    }
    s.id_token = Some(IdTokenRules::new(issuers));
    s.http_timeout = urls::http_timeout("httpTimeoutMs", o.http_timeout_ms)?;
    Ok(s)
}

/// The Google provider.
#[derive(Debug)]
pub struct GoogleProvider {
    oauth: OAuthClient,
}

impl ProviderKind for GoogleProvider {
    const IDENTIFIER: &'static str = "google";
    const DISPLAY_NAME: &'static str = "Google Authentication";
    const FLOW: ProviderFlow = ProviderFlow::Redirect;
    type Options = GoogleOptions;

    fn new(init: ProviderInit<GoogleOptions>) -> std::result::Result<Self, OptionsError> {
        let oauth = OAuthClient::new(settings(&init.id, &init.options)?)?;
        Ok(GoogleProvider { oauth })
    }
}

auth_module::register_provider!(GoogleProvider);

/// The external user of a verified id_token: `sub`, and Google's profile
/// fields. An address Google has not verified is refused.
fn user(done: Completed) -> std::result::Result<(String, Metadata), OAuthError> {
    let claims = done.claims.unwrap_or_default();
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| OAuthError::failed("the id_token has no sub"))?;
    let verified = matches!(claims.get("email_verified"), Some(Value::Bool(true)))
        || claims.get("email_verified").and_then(Value::as_str) == Some("true");
    if claims.get("email").is_some() && !verified {
        return Err(OAuthError::failed("the email address is not verified"));
    }
    let mut meta = Metadata::new();
    for key in ["email", "name", "picture", "given_name", "family_name"] {
        if let Some(v) = claims.get(key).filter(|v| v.is_string()) {
            meta.insert(key.to_owned(), v.clone());
        }
    }
    if meta.contains_key("email") {
        // Google vouches for it (an unverified one was refused above): the
        // SSO user route may link by it.
        meta.insert("email_verified".to_owned(), Value::Bool(true));
    }
    Ok((sub.to_owned(), meta))
}

impl RedirectProvider for GoogleProvider {
    const ERROR_STYLE: ErrorStyle = ErrorStyle::Social;
    const REGISTER_REFUSAL: Option<&'static str> = Some(NO_REGISTRATION);

    fn oauth(&self) -> &OAuthClient {
        &self.oauth
    }

    fn name(&self) -> &str {
        "Google"
    }

    async fn external_user(
        &self,
        done: Completed,
    ) -> std::result::Result<(String, Metadata), OAuthError> {
        user(done)
    }
}

auth_oauth::redirect_provider!(GoogleProvider);

#[cfg(test)]
mod tests {
    use super::*;

    fn options(v: Value) -> GoogleOptions {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn defaults_are_googles_endpoints() {
        let s = settings(
            "google",
            &options(serde_json::json!({
                "clientId": "id", "clientSecret": "s", "callbackUrl": "https://shop.example/cb"
            })),
        )
        .unwrap();
        assert_eq!(
            s.authorization_url.unwrap().as_str(),
            GOOGLE_AUTHORIZATION_URL
        );
        assert_eq!(s.token_url.unwrap().as_str(), GOOGLE_TOKEN_URL);
        assert_eq!(s.jwks_url.unwrap().as_str(), GOOGLE_JWKS_URL);
        assert_eq!(
            s.id_token.unwrap().issuers,
            vec![GOOGLE_ISSUER.to_owned(), "accounts.google.com".to_owned()]
        );
    }

    #[test]
    fn another_issuer_discovers_what_is_not_set() {
        let s = settings(
            "google",
            &options(serde_json::json!({
                "clientId": "id", "clientSecret": "s", "callbackUrl": "https://shop.example/cb",
                "issuer": "http://127.0.0.1:9999", "tokenUrl": "http://127.0.0.1:9999/t"
            })),
        )
        .unwrap();
        assert!(s.authorization_url.is_none());
        assert!(s.jwks_url.is_none());
        assert_eq!(s.token_url.unwrap().as_str(), "http://127.0.0.1:9999/t");
        assert_eq!(
            s.id_token.unwrap().issuers,
            vec!["http://127.0.0.1:9999".to_owned()]
        );
    }

    #[test]
    fn bad_options_name_the_option() {
        let base = serde_json::json!({
            "clientId": "id", "clientSecret": "s", "callbackUrl": "https://shop.example/cb"
        });
        for (key, value, named) in [
            ("clientId", Value::from(""), "clientId"),
            ("clientSecret", Value::from(""), "clientSecret"),
            ("callbackUrl", Value::from("nope"), "callbackUrl"),
            (
                "tokenUrl",
                Value::from("http://idp.example/token"),
                "tokenUrl",
            ),
            ("issuer", Value::from("http://idp.example"), "issuer"),
            ("httpTimeoutMs", Value::from(0), "httpTimeoutMs"),
            (
                "callbackUrlAllowlist",
                serde_json::json!(["ftp://x"]),
                "callbackUrlAllowlist[0]",
            ),
        ] {
            let mut o = base.clone();
            o[key] = value;
            let e = options(o).validate_options().unwrap_err().to_string();
            assert!(e.contains(named), "{key}: {e}");
        }
    }

    #[test]
    fn unverified_addresses_are_refused_and_metadata_is_googles_fields() {
        let claims = |v: Value| Completed::new(Secret::new("t"), v.as_object().cloned(), None);
        let (sub, meta) = user(claims(serde_json::json!({
            "sub": "1", "email": "a@b.c", "email_verified": true, "name": "A",
            "picture": "p", "given_name": "G", "family_name": "F", "hd": "x"
        })))
        .unwrap();
        assert_eq!(sub, "1");
        // Google's five profile fields, and the mark that it vouched for the address.
        assert_eq!(meta.len(), 6);
        assert_eq!(meta["email_verified"], Value::Bool(true));
        let (_, no_email) = user(claims(serde_json::json!({"sub": "2"}))).unwrap();
        assert!(no_email.is_empty(), "{no_email:?}");
        assert!(
            user(claims(
                serde_json::json!({"sub": "1", "email": "a@b.c", "email_verified": false})
            ))
            .is_err()
        );
        assert!(user(claims(serde_json::json!({"sub": "1", "email": "a@b.c"}))).is_err());
        assert!(
            user(claims(
                serde_json::json!({"email": "a@b.c", "email_verified": true})
            ))
            .is_err()
        );
    }
}
