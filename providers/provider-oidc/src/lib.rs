//! Generic OpenID Connect sign-in for `auth-module` (identifier `oidc`),
//! with the options and answers of Medusa's `@medusajs/auth-oidc`.
//!
//! ```toml
//! [[providers]]
//! resolve = "oidc"
//! id = "okta"
//! [providers.options]
//! issuer = "https://example.okta.com"
//! client_id = "${OKTA_CLIENT_ID}"
//! client_secret = "${OKTA_CLIENT_SECRET}"   # none: a public client (PKCE only)
//! callback_url = "https://shop.example/auth/customer/okta/callback"
//! display_name = "Okta"
//! allowed_email_domains = ["example.com"]
//! require_verified_email = true
//! ```
//!
//! - Endpoints come from `{issuer}/.well-known/openid-configuration` on first
//!   use (cached `discovery_cache_ttl_ms`), unless `authorization_endpoint`,
//!   `token_endpoint` and `jwks_uri` are all set.
//! - `entity_id` is the claim `claim_mappings.entity_id` names (default
//!   `sub`); `user_metadata` holds `email`, `name` and every other mapped key,
//!   replaced at each login.
//! - The configured `callback_url` is always allowed; a body `callback_url`
//!   must be listed in `allowed_callback_urls`.
//! - `require_verified_email` defaults to true: a login whose
//!   `email_verified` claim is not boolean `true` is refused (401
//!   `Authentication failed`). `user_metadata.email_verified = true` only
//!   when `claim_mappings.email` is the standard `email` claim and the issuer
//!   says it is verified.
//! - Discovered endpoints must be `https` (plain `http` on a loopback host
//!   only when the `issuer` itself is a loopback `http` URL).
//! - The kind may be configured several times under different ids.

use std::collections::BTreeMap;
use std::time::Duration;

use auth_module::{
    Metadata, OptionsError, ProviderFlow, ProviderInit, ProviderKind, Secret, ValidateOptions,
};
use auth_oauth::{
    Completed, ErrorStyle, IdTokenRules, OAuthClient, OAuthError, OAuthSettings, RedirectProvider,
    urls,
};
use serde::Deserialize;
use serde_json::Value;

/// The answer to a registration.
pub const NO_REGISTRATION: &str =
    "OIDC does not support registration. Use method `authenticate` instead.";

/// `scopes`: a list, or one space-separated string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum Scopes {
    /// `["openid", "email"]`.
    List(Vec<String>),
    /// `"openid email"`.
    Text(String),
}

/// The provider's options (`@medusajs/auth-oidc`'s names, snake_case).
/// `Debug` shows no secret: [`Secret`] redacts itself.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct OidcOptions {
    /// The issuer: discovery base and the expected `iss`.
    #[serde(default)]
    pub issuer: String,
    /// The client id.
    #[serde(default)]
    pub client_id: String,
    /// The client secret (`client_secret_post`); none for a public client.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// The callback URL registered at the identity provider.
    #[serde(default)]
    pub callback_url: String,
    /// Other callback URLs a login may ask for (body `callback_url`).
    #[serde(default)]
    pub allowed_callback_urls: Vec<String>,
    /// Requested scopes (default `openid email profile`).
    #[serde(default)]
    pub scopes: Option<Scopes>,
    /// Overrides the discovered authorization endpoint.
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    /// Overrides the discovered token endpoint.
    #[serde(default)]
    pub token_endpoint: Option<String>,
    /// Overrides the discovered key set.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Accepted for compatibility (logout at the identity provider is the
    /// client's business); must be a valid endpoint if set.
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
    /// Claims by key, merged over `{entity_id: "sub", email: "email", name: "name"}`.
    /// The key `email_verified` is reserved: `user_metadata.email_verified`
    /// is set (to `true`) only when `email` maps to the standard `email`
    /// claim and the issuer's `email_verified` claim is boolean `true`.
    #[serde(default)]
    pub claim_mappings: BTreeMap<String, String>,
    /// Refuse a login whose `email_verified` claim is not boolean `true`
    /// (default **true**, as `@medusajs/auth-oidc`: `require_verified_email ?? true`);
    /// refused logins answer 401 `Authentication failed`, details only logged.
    #[serde(default = "yes")]
    pub require_verified_email: bool,
    /// Accept only addresses of these domains (exact, case-insensitive).
    #[serde(default)]
    pub allowed_email_domains: Vec<String>,
    /// Tolerated clock skew on id_token times, in seconds (default 5).
    #[serde(default)]
    pub clock_tolerance_seconds: Option<u64>,
    /// How long a started login stays valid, in seconds (default 600).
    #[serde(default)]
    pub state_ttl_seconds: Option<u64>,
    /// The name in providers lists (default `OpenID Connect`).
    #[serde(default)]
    pub display_name: Option<String>,
    /// How long a discovery document is reused, in milliseconds (default 1 h).
    #[serde(default)]
    pub discovery_cache_ttl_ms: Option<u64>,
    /// Timeout of each call to the identity provider, in milliseconds (default 10000).
    #[serde(default)]
    pub http_timeout_ms: Option<u64>,
}

fn yes() -> bool {
    true
}

impl ValidateOptions for OidcOptions {
    fn validate_options(&self) -> std::result::Result<(), OptionsError> {
        Built::new("oidc", self).map(|_| ())
    }
}

struct Built {
    oauth: OAuthSettings,
    mappings: BTreeMap<String, String>,
    require_verified_email: bool,
    allowed_email_domains: Vec<String>,
    display_name: String,
}

impl Built {
    fn new(id: &str, o: &OidcOptions) -> std::result::Result<Self, OptionsError> {
        if o.issuer.is_empty() {
            return Err(OptionsError::new("issuer", "is required"));
        }
        let issuer = urls::endpoint("issuer", &o.issuer)?;
        urls::required("client_id", &o.client_id)?;
        let callback = urls::callback_policy(
            "callback_url",
            &o.callback_url,
            "allowed_callback_urls",
            &o.allowed_callback_urls,
        )?;
        let mut s = OAuthSettings::new(id, o.client_id.clone(), callback);
        s.client_secret = urls::secret(o.client_secret.as_ref());
        s.issuer = Some(issuer);
        s.authorization_url = urls::optional_endpoint(
            "authorization_endpoint",
            o.authorization_endpoint.as_deref(),
        )?;
        s.token_url = urls::optional_endpoint("token_endpoint", o.token_endpoint.as_deref())?;
        s.jwks_url = urls::optional_endpoint("jwks_uri", o.jwks_uri.as_deref())?;
        s.end_session_url =
            urls::optional_endpoint("end_session_endpoint", o.end_session_endpoint.as_deref())?;
        s.scopes = match &o.scopes {
            None => vec!["openid".into(), "email".into(), "profile".into()],
            Some(Scopes::List(l)) => l.clone(),
            Some(Scopes::Text(t)) => t.split_whitespace().map(str::to_owned).collect(),
        };
        if !s.scopes.iter().any(|x| x == "openid") {
            return Err(OptionsError::new("scopes", "must include `openid`"));
        }
        let mut issuers = vec![o.issuer.clone()];
        let trimmed = o.issuer.trim_end_matches('/').to_owned();
        if trimmed != o.issuer {
            issuers.push(trimmed);
        }
        let mut rules = IdTokenRules::new(issuers);
        rules.clock_tolerance = Duration::from_secs(match o.clock_tolerance_seconds {
            None => 5,
            Some(v) if v <= 600 => v,
            Some(_) => {
                return Err(OptionsError::new(
                    "clock_tolerance_seconds",
                    "must be at most 600",
                ));
            }
        });
        s.id_token = Some(rules);
        s.state_ttl = Duration::from_secs(urls::within(
            "state_ttl_seconds",
            o.state_ttl_seconds,
            600,
            86_400,
        )?);
        s.discovery_ttl = Duration::from_millis(urls::within(
            "discovery_cache_ttl_ms",
            o.discovery_cache_ttl_ms,
            3_600_000,
            86_400_000 * 7,
        )?);
        s.http_timeout = urls::http_timeout("http_timeout_ms", o.http_timeout_ms)?;
        let mut mappings: BTreeMap<String, String> =
            [("entity_id", "sub"), ("email", "email"), ("name", "name")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        for (k, v) in &o.claim_mappings {
            if k.is_empty() || v.is_empty() {
                return Err(OptionsError::new(
                    format!("claim_mappings.{k}"),
                    "keys and claim names must not be empty",
                ));
            }
            mappings.insert(k.clone(), v.clone());
        }
        let display_name = match &o.display_name {
            Some(d) if d.trim().is_empty() => {
                return Err(OptionsError::new("display_name", "must not be empty"));
            }
            Some(d) => d.clone(),
            None => OidcProvider::DISPLAY_NAME.to_owned(),
        };
        Ok(Built {
            oauth: s,
            mappings,
            require_verified_email: o.require_verified_email,
            allowed_email_domains: o
                .allowed_email_domains
                .iter()
                .map(|d| d.trim().to_ascii_lowercase())
                .collect(),
            display_name,
        })
    }
}

/// The OpenID Connect provider.
#[derive(Debug)]
pub struct OidcProvider {
    oauth: OAuthClient,
    mappings: BTreeMap<String, String>,
    require_verified_email: bool,
    allowed_email_domains: Vec<String>,
    display_name: String,
}

impl ProviderKind for OidcProvider {
    const IDENTIFIER: &'static str = "oidc";
    const DISPLAY_NAME: &'static str = "OpenID Connect";
    const FLOW: ProviderFlow = ProviderFlow::Redirect;
    type Options = OidcOptions;

    fn new(init: ProviderInit<OidcOptions>) -> std::result::Result<Self, OptionsError> {
        let b = Built::new(&init.id, &init.options)?;
        Ok(OidcProvider {
            oauth: OAuthClient::new(b.oauth)?,
            mappings: b.mappings,
            require_verified_email: b.require_verified_email,
            allowed_email_domains: b.allowed_email_domains,
            display_name: b.display_name,
        })
    }
}

auth_module::register_provider!(OidcProvider);

impl OidcProvider {
    /// The mapped user of verified claims, after the email policies.
    fn user(&self, done: Completed) -> std::result::Result<(String, Metadata), OAuthError> {
        let claims = done.claims.unwrap_or_default();
        let claim = |key: &str| self.mappings.get(key).and_then(|c| claims.get(c));
        let entity_id = match claim("entity_id") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(OAuthError::failed("the mapped entity_id claim is missing")),
        };
        let email = claim("email").and_then(Value::as_str);
        if self.require_verified_email && claims.get("email_verified") != Some(&Value::Bool(true)) {
            return Err(OAuthError::failed("the email address is not verified"));
        }
        if !self.allowed_email_domains.is_empty() {
            let domain = email
                .and_then(|e| e.rsplit_once('@'))
                .map(|(_, d)| d.to_ascii_lowercase());
            if !domain.is_some_and(|d| self.allowed_email_domains.contains(&d)) {
                return Err(OAuthError::failed("the email domain is not allowed"));
            }
        }
        let mut meta = Metadata::new();
        // `email_verified` is the issuer's word only, never a mapped claim.
        for (key, _) in self
            .mappings
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "entity_id" | "email_verified"))
        {
            if let Some(v) = claim(key) {
                meta.insert(key.clone(), v.clone());
            }
        }
        // The issuer's `email_verified` speaks about its `email` claim only:
        // an address mapped from another claim is never marked verified.
        let standard_email = self.mappings.get("email").map(String::as_str) == Some("email");
        if standard_email
            && email.is_some()
            && claims.get("email_verified") == Some(&Value::Bool(true))
        {
            // The issuer vouches for the address: the SSO user route may
            // link by it.
            meta.insert("email_verified".to_owned(), Value::Bool(true));
        }
        Ok((entity_id, meta))
    }
}

impl RedirectProvider for OidcProvider {
    const ERROR_STYLE: ErrorStyle = ErrorStyle::Oidc;
    const REGISTER_REFUSAL: Option<&'static str> = Some(NO_REGISTRATION);

    fn oauth(&self) -> &OAuthClient {
        &self.oauth
    }

    fn name(&self) -> &str {
        &self.display_name
    }

    fn display_name(&self) -> Option<&str> {
        Some(&self.display_name)
    }

    async fn external_user(
        &self,
        done: Completed,
    ) -> std::result::Result<(String, Metadata), OAuthError> {
        self.user(done)
    }
}

auth_oauth::redirect_provider!(OidcProvider);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn provider(extra: Value) -> OidcProvider {
        let mut o = json!({
            "issuer": "http://127.0.0.1:1", "client_id": "c", "callback_url": "https://shop.example/cb"
        });
        for (k, v) in extra.as_object().unwrap() {
            o[k] = v.clone();
        }
        OidcProvider::new(ProviderInit::new(
            "sso",
            serde_json::from_value::<OidcOptions>(o).unwrap(),
        ))
        .unwrap()
    }

    fn done(claims: Value) -> Completed {
        Completed::new(Secret::new("t"), claims.as_object().cloned(), None)
    }

    #[test]
    fn mappings_merge_over_the_defaults() {
        let p = provider(json!({
            "claim_mappings": {"entity_id": "oid", "team": "groups"},
            "require_verified_email": false
        }));
        let (id, meta) = p
            .user(done(
                json!({"sub": "s", "oid": 7, "email": "a@b.c", "name": "A", "groups": ["x"]}),
            ))
            .unwrap();
        assert_eq!(id, "7");
        assert_eq!(
            Value::Object(meta),
            json!({"email": "a@b.c", "name": "A", "team": ["x"]})
        );
        assert!(p.user(done(json!({"sub": "s"}))).is_err());
    }

    #[test]
    fn email_policies() {
        let p = provider(
            json!({"require_verified_email": true, "allowed_email_domains": ["Example.com"]}),
        );
        assert!(
            p.user(done(
                json!({"sub": "1", "email": "a@EXAMPLE.com", "email_verified": true})
            ))
            .is_ok()
        );
        assert!(
            p.user(done(
                json!({"sub": "1", "email": "a@example.com", "email_verified": "true"})
            ))
            .is_err()
        );
        assert!(
            p.user(done(
                json!({"sub": "1", "email": "a@other.com", "email_verified": true})
            ))
            .is_err()
        );
        assert!(
            p.user(done(json!({"sub": "1", "email_verified": true})))
                .is_err()
        );
        let lax = provider(json!({"require_verified_email": false}));
        let (_, unvouched) = lax
            .user(done(
                json!({"sub": "1", "email": "a@b.c", "email_verified": false}),
            ))
            .unwrap();
        // Accepted, but never marked as vouched for (the SSO user route
        // links by email only when it is).
        assert!(unvouched.get("email_verified").is_none(), "{unvouched:?}");
        let (_, vouched) = lax
            .user(done(
                json!({"sub": "1", "email": "a@b.c", "email_verified": true}),
            ))
            .unwrap();
        assert_eq!(vouched["email_verified"], Value::Bool(true));
    }

    #[test]
    fn verified_emails_are_required_by_default() {
        let o: OidcOptions = serde_json::from_value(json!({
            "issuer": "http://127.0.0.1:1", "client_id": "c", "callback_url": "https://s/cb"
        }))
        .unwrap();
        assert!(o.require_verified_email);
        let p = provider(json!({}));
        let (_, meta) = p
            .user(done(
                json!({"sub": "1", "email": "a@b.c", "email_verified": true}),
            ))
            .unwrap();
        assert_eq!(meta["email_verified"], Value::Bool(true));
        for refused in [
            json!({"sub": "1", "email": "a@b.c", "email_verified": false}),
            json!({"sub": "1", "email": "a@b.c", "email_verified": "true"}),
            json!({"sub": "1", "email": "a@b.c"}),
        ] {
            match p.user(done(refused.clone())) {
                Err(OAuthError::Failed(_)) => {}
                other => panic!("{refused}: {other:?}"),
            }
        }
    }

    #[test]
    fn only_the_issuers_word_on_its_own_email_claim_marks_it_verified() {
        // `email` mapped from another claim: `email_verified` speaks about
        // the `email` claim, not this one.
        let p = provider(json!({"claim_mappings": {"email": "upn"}}));
        let (_, meta) = p
            .user(done(json!({
                "sub": "1", "email": "real@b.c", "upn": "boss@b.c", "email_verified": true
            })))
            .unwrap();
        assert_eq!(meta["email"], "boss@b.c");
        assert!(meta.get("email_verified").is_none(), "{meta:?}");
        // A mapping cannot set the mark either.
        for mapped in ["custom", "email_verified"] {
            let p = provider(json!({
                "claim_mappings": {"email": "upn", "email_verified": mapped}
            }));
            let (_, meta) = p
                .user(done(json!({
                    "sub": "1", "upn": "boss@b.c", "email_verified": true, "custom": true
                })))
                .unwrap();
            assert!(meta.get("email_verified").is_none(), "{mapped}: {meta:?}");
        }
        let p = provider(json!({
            "claim_mappings": {"email_verified": "custom"}, "require_verified_email": false
        }));
        let (_, meta) = p
            .user(done(json!({
                "sub": "1", "email": "a@b.c", "email_verified": false, "custom": true
            })))
            .unwrap();
        assert!(meta.get("email_verified").is_none(), "{meta:?}");
        // The standard claim, explicitly mapped, is vouched for.
        let p = provider(json!({"claim_mappings": {"email": "email"}}));
        let (_, meta) = p
            .user(done(
                json!({"sub": "1", "email": "a@b.c", "email_verified": true}),
            ))
            .unwrap();
        assert_eq!(meta["email_verified"], Value::Bool(true));
    }

    #[test]
    fn display_name_and_scopes() {
        assert_eq!(provider(json!({})).display_name(), Some("OpenID Connect"));
        assert_eq!(
            provider(json!({"display_name": "Okta"})).display_name(),
            Some("Okta")
        );
        let o: OidcOptions = serde_json::from_value(json!({
            "issuer": "http://127.0.0.1:1", "client_id": "c", "callback_url": "https://s/cb", "scopes": "email"
        }))
        .unwrap();
        assert!(
            o.validate_options()
                .unwrap_err()
                .to_string()
                .contains("scopes")
        );
        let o: OidcOptions = serde_json::from_value(json!({
            "issuer": "http://idp.example", "client_id": "c", "callback_url": "https://s/cb"
        }))
        .unwrap();
        assert!(
            o.validate_options()
                .unwrap_err()
                .to_string()
                .contains("issuer")
        );
    }
}
