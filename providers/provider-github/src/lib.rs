//! GitHub sign-in for `auth-module` (identifier `github`): OAuth 2.0's
//! authorization code flow with state and PKCE S256, then GitHub's user API.
//!
//! ```toml
//! [[providers]]
//! resolve = "github"
//! id = "github"
//! [providers.options]
//! clientId = "${GITHUB_CLIENT_ID}"
//! clientSecret = "${GITHUB_CLIENT_SECRET}"
//! callbackUrl = "https://shop.example/auth/customer/github/callback"
//! ```
//!
//! - The numeric user id is the `entity_id`; `user_metadata` holds
//!   `profile_url`, `avatar`, `email`, `name`, `company` and
//!   `two_factor_authentication`, refreshed at every login.
//! - When the public email is null, the primary verified address from
//!   `{apiUrl}/user/emails` is used; an unverified address never is.
//! - GitHub's tokens are never stored, returned or logged.

use auth_module::{
    Metadata, OptionsError, ProviderFlow, ProviderInit, ProviderKind, Secret, ValidateOptions,
};
use auth_oauth::{
    Completed, ErrorStyle, OAuthClient, OAuthError, OAuthSettings, RedirectProvider, urls,
};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

/// GitHub's authorization endpoint.
pub const GITHUB_AUTHORIZATION_URL: &str = "https://github.com/login/oauth/authorize";
/// GitHub's token endpoint.
pub const GITHUB_TOKEN_URL: &str = "https://github.com/login/oauth/access_token";
/// GitHub's API.
pub const GITHUB_API_URL: &str = "https://api.github.com";

/// The answer to a registration.
pub const NO_REGISTRATION: &str =
    "Github does not support registration. Use method `authenticate` instead.";

const GITHUB_JSON: &str = "application/vnd.github+json";

/// The provider's options (Medusa's names, camelCase). `Debug` shows no
/// secret: [`Secret`] redacts itself.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[non_exhaustive]
pub struct GithubOptions {
    /// The OAuth app's client id.
    #[serde(default)]
    pub client_id: String,
    /// The OAuth app's client secret.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// The callback URL registered at GitHub.
    #[serde(default)]
    pub callback_url: String,
    /// Other callback URLs a login may ask for (body `callback_url`).
    #[serde(default)]
    pub callback_url_allowlist: Vec<String>,
    /// The authorization endpoint.
    #[serde(default)]
    pub authorization_url: Option<String>,
    /// The token endpoint.
    #[serde(default)]
    pub token_url: Option<String>,
    /// The API base (`{apiUrl}/user`, `{apiUrl}/user/emails`).
    #[serde(default)]
    pub api_url: Option<String>,
    /// Timeout of each call to GitHub, in milliseconds (default 10000).
    #[serde(default)]
    pub http_timeout_ms: Option<u64>,
}

impl ValidateOptions for GithubOptions {
    fn validate_options(&self) -> std::result::Result<(), OptionsError> {
        settings("github", self).map(|_| ())
    }
}

struct Settings {
    oauth: OAuthSettings,
    user_url: Url,
    emails_url: Url,
}

fn settings(id: &str, o: &GithubOptions) -> std::result::Result<Settings, OptionsError> {
    urls::required("clientId", &o.client_id)?;
    let secret = urls::required_secret("clientSecret", o.client_secret.as_ref())?;
    let callback = urls::callback_policy(
        "callbackUrl",
        &o.callback_url,
        "callbackUrlAllowlist",
        &o.callback_url_allowlist,
    )?;
    let mut s = OAuthSettings::new(id, o.client_id.clone(), callback);
    s.client_secret = Some(secret);
    s.authorization_url = Some(urls::endpoint(
        "authorizationUrl",
        o.authorization_url
            .as_deref()
            .unwrap_or(GITHUB_AUTHORIZATION_URL),
    )?);
    s.token_url = Some(urls::endpoint(
        "tokenUrl",
        o.token_url.as_deref().unwrap_or(GITHUB_TOKEN_URL),
    )?);
    s.scopes = vec!["read:user".into(), "user:email".into()];
    s.http_timeout = urls::http_timeout("httpTimeoutMs", o.http_timeout_ms)?;
    let api = o.api_url.as_deref().unwrap_or(GITHUB_API_URL);
    urls::endpoint("apiUrl", api)?;
    let api = api.trim_end_matches('/');
    let user_url = urls::endpoint("apiUrl", &format!("{api}/user"))?;
    let emails_url = urls::endpoint("apiUrl", &format!("{api}/user/emails"))?;
    Ok(Settings {
        oauth: s,
        user_url,
        emails_url,
    })
}

/// The GitHub provider.
#[derive(Debug)]
pub struct GithubProvider {
    oauth: OAuthClient,
    user_url: Url,
    emails_url: Url,
}

impl ProviderKind for GithubProvider {
    const IDENTIFIER: &'static str = "github";
    const DISPLAY_NAME: &'static str = "Github Authentication";
    const FLOW: ProviderFlow = ProviderFlow::Redirect;
    type Options = GithubOptions;

    fn new(init: ProviderInit<GithubOptions>) -> std::result::Result<Self, OptionsError> {
        let s = settings(&init.id, &init.options)?;
        Ok(GithubProvider {
            oauth: OAuthClient::new(s.oauth)?,
            user_url: s.user_url,
            emails_url: s.emails_url,
        })
    }
}

auth_module::register_provider!(GithubProvider);

/// The primary verified address of a `/user/emails` answer.
fn primary_verified(emails: &Value) -> Option<String> {
    emails.as_array()?.iter().find_map(|e| {
        let yes = |k: &str| e.get(k).and_then(Value::as_bool) == Some(true);
        (yes("primary") && yes("verified"))
            .then(|| e.get("email").and_then(Value::as_str).map(str::to_owned))
            .flatten()
    })
}

/// `(entity_id, user_metadata)` of a `/user` answer and the address to keep.
fn user_of(
    user: &Value,
    email: Option<String>,
) -> std::result::Result<(String, Metadata), OAuthError> {
    let id = match user.get("id") {
        Some(Value::Number(n)) if n.is_u64() => n.to_string(),
        _ => return Err(OAuthError::failed("the GitHub user has no numeric id")),
    };
    let text = |k: &str| {
        user.get(k)
            .filter(|v| v.is_string())
            .cloned()
            .unwrap_or(Value::Null)
    };
    let mut meta = Metadata::new();
    meta.insert("profile_url".into(), text("html_url"));
    meta.insert("avatar".into(), text("avatar_url"));
    // GitHub shows only a verified address as the public one, and the
    // fallback is the primary verified one: either is vouched for.
    if email.is_some() {
        meta.insert("email_verified".into(), Value::Bool(true));
    }
    meta.insert("email".into(), email.map_or(Value::Null, Value::String));
    meta.insert("name".into(), text("name"));
    meta.insert("company".into(), text("company"));
    meta.insert(
        "two_factor_authentication".into(),
        Value::Bool(
            user.get("two_factor_authentication")
                .and_then(Value::as_bool)
                == Some(true),
        ),
    );
    Ok((id, meta))
}

impl RedirectProvider for GithubProvider {
    const ERROR_STYLE: ErrorStyle = ErrorStyle::Social;
    const REGISTER_REFUSAL: Option<&'static str> = Some(NO_REGISTRATION);

    fn oauth(&self) -> &OAuthClient {
        &self.oauth
    }

    fn name(&self) -> &str {
        "Github"
    }

    async fn external_user(
        &self,
        done: Completed,
    ) -> std::result::Result<(String, Metadata), OAuthError> {
        let user = self
            .oauth
            .get_json(&self.user_url, &done.access_token, GITHUB_JSON)
            .await?;
        let email = match user.get("email").and_then(Value::as_str) {
            Some(public) if !public.is_empty() => Some(public.to_owned()),
            _ => {
                let emails = self
                    .oauth
                    .get_json(&self.emails_url, &done.access_token, GITHUB_JSON)
                    .await?;
                primary_verified(&emails)
            }
        };
        user_of(&user, email)
    }
}

auth_oauth::redirect_provider!(GithubProvider);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_a_primary_verified_address_is_taken() {
        assert_eq!(
            primary_verified(&json!([
                {"email": "old@x.y", "primary": false, "verified": true},
                {"email": "main@x.y", "primary": true, "verified": true}
            ])),
            Some("main@x.y".into())
        );
        assert_eq!(
            primary_verified(&json!([{"email": "main@x.y", "primary": true, "verified": false}])),
            None
        );
        assert_eq!(
            primary_verified(&json!({"message": "Bad credentials"})),
            None
        );
    }

    #[test]
    fn metadata_has_medusas_fields() {
        let (id, meta) = user_of(
            &json!({"id": 42, "login": "octo", "name": "Octo", "html_url": "https://github.com/octo",
                    "avatar_url": "https://a/x.png", "company": null, "two_factor_authentication": true}),
            Some("o@x.y".into()),
        )
        .unwrap();
        assert_eq!(id, "42");
        assert_eq!(
            Value::Object(meta),
            json!({"profile_url": "https://github.com/octo", "avatar": "https://a/x.png",
                   "email": "o@x.y", "email_verified": true, "name": "Octo", "company": null,
                   "two_factor_authentication": true})
        );
        let (_, without) = user_of(&json!({"id": 7}), None).unwrap();
        assert_eq!(without.get("email"), Some(&Value::Null));
        assert!(
            without.get("email_verified").is_none(),
            "no address, nothing vouched for"
        );
        assert!(user_of(&json!({"id": "42"}), None).is_err());
    }

    #[test]
    fn endpoints_default_to_githubs_and_must_be_https() {
        let o: GithubOptions = serde_json::from_value(json!({
            "clientId": "id", "clientSecret": "s", "callbackUrl": "https://shop.example/cb"
        }))
        .unwrap();
        let s = settings("github", &o).unwrap();
        assert_eq!(s.user_url.as_str(), "https://api.github.com/user");
        assert_eq!(s.emails_url.as_str(), "https://api.github.com/user/emails");
        let o: GithubOptions = serde_json::from_value(json!({
            "clientId": "id", "clientSecret": "s", "callbackUrl": "https://shop.example/cb",
            "apiUrl": "http://api.example"
        }))
        .unwrap();
        assert!(
            o.validate_options()
                .unwrap_err()
                .to_string()
                .contains("apiUrl")
        );
    }
}
