//! The `{{name}}` provider: OAuth 2.0 sign-in through `auth-oauth` (state,
//! PKCE, code exchange, callback allow-list), then the identity provider's
//! user endpoint. The user's `id` is the `entity_id`; `email` and `name`
//! go to `user_metadata`.

use auth_module::{
    Metadata, OptionsError, ProviderFlow, ProviderInit, ProviderKind, Secret, ValidateOptions,
};
use auth_oauth::{
    ClientAuth, Completed, ErrorStyle, OAuthClient, OAuthError, OAuthSettings, RedirectProvider,
    urls,
};
use serde_json::Value;
use url::Url;

/// The kind's identifier (what `resolve` names in the config).
pub const IDENTIFIER: &str = "{{name}}";

/// Options of the `{{name}}` provider.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct {{Type}}Options {
    /// The OAuth client id.
    #[serde(default)]
    pub client_id: String,
    /// The OAuth client secret.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// The callback URL registered at the identity provider.
    #[serde(default)]
    pub callback_url: String,
    /// Other callback URLs a login may ask for.
    #[serde(default)]
    pub callback_url_allowlist: Vec<String>,
    /// The authorization endpoint.
    #[serde(default)]
    pub authorization_url: String,
    /// The token endpoint.
    #[serde(default)]
    pub token_url: String,
    /// The endpoint answering the user (`{"id", "email"?, "name"?}`).
    #[serde(default)]
    pub user_url: String,
}

impl std::fmt::Debug for {{Type}}Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the client secret.
        f.debug_struct("{{Type}}Options")
            .field("client_id", &self.client_id)
            .field("callback_url", &self.callback_url)
            .finish_non_exhaustive()
    }
}

fn settings(id: &str, o: &{{Type}}Options) -> std::result::Result<(OAuthSettings, Url), OptionsError> {
    urls::required("clientId", &o.client_id)?;
    let secret = o
        .client_secret
        .clone()
        .filter(|s| !s.expose().is_empty())
        .ok_or_else(|| OptionsError::new("clientSecret", "is required"))?;
    let callback = urls::callback_policy(
        "callbackUrl",
        &o.callback_url,
        "callbackUrlAllowlist",
        &o.callback_url_allowlist,
    )?;
    let mut s = OAuthSettings::new(id, o.client_id.clone(), callback);
    s.client_secret = Some(secret);
    s.client_auth = ClientAuth::Post;
    s.authorization_url = Some(urls::endpoint("authorizationUrl", &o.authorization_url)?);
    s.token_url = Some(urls::endpoint("tokenUrl", &o.token_url)?);
    let user_url = urls::endpoint("userUrl", &o.user_url)?;
    Ok((s, user_url))
}

impl ValidateOptions for {{Type}}Options {
    fn validate_options(&self) -> std::result::Result<(), OptionsError> {
        settings(IDENTIFIER, self).map(|_| ())
    }
}

/// The `{{name}}` provider.
#[derive(Debug)]
pub struct {{Type}}Provider {
    oauth: OAuthClient,
    user_url: Url,
}

impl ProviderKind for {{Type}}Provider {
    const IDENTIFIER: &'static str = IDENTIFIER;
    const DISPLAY_NAME: &'static str = "{{Type}}";
    const FLOW: ProviderFlow = ProviderFlow::Redirect;
    type Options = {{Type}}Options;

    fn new(init: ProviderInit<{{Type}}Options>) -> std::result::Result<Self, OptionsError> {
        let (oauth, user_url) = settings(&init.id, &init.options)?;
        Ok({{Type}}Provider {
            oauth: OAuthClient::new(oauth)?,
            user_url,
        })
    }
}

impl RedirectProvider for {{Type}}Provider {
    const ERROR_STYLE: ErrorStyle = ErrorStyle::Social;

    fn oauth(&self) -> &OAuthClient {
        &self.oauth
    }

    fn name(&self) -> &str {
        "{{Type}}"
    }

    /// `(entity_id, user_metadata)` from the user endpoint.
    async fn external_user(
        &self,
        done: Completed,
    ) -> std::result::Result<(String, Metadata), OAuthError> {
        let user = self
            .oauth
            .get_json(&self.user_url, &done.access_token, "application/json")
            .await?;
        let id = match user.get("id") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(OAuthError::failed("the user has no id")),
        };
        let mut meta = Metadata::new();
        for key in ["email", "name"] {
            if let Some(v) = user.get(key).filter(|v| v.is_string()) {
                meta.insert(key.to_owned(), v.clone());
            }
        }
        Ok((id, meta))
    }
}

auth_oauth::redirect_provider!({{Type}}Provider);
auth_module::register_provider!({{Type}}Provider);
