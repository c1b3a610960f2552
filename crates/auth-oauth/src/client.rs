//! [`OAuthClient`]: one provider instance's side of the authorization code
//! flow.

use std::time::{Duration, Instant};

use auth_module::{AuthOutcome, AuthRequest, Metadata, ProviderIdentities, Secret};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Mutex;
use url::Url;

use crate::error::{ErrorStyle, OAuthError};
use crate::http::Http;
use crate::identity::complete_login;
use crate::jwks::JwksCache;
use crate::urls::{self, CallbackPolicy};

/// How long a login may take between `location` and the callback (10 minutes).
pub const DEFAULT_STATE_TTL: Duration = Duration::from_secs(600);
/// The default timeout of every call to the identity provider.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a discovery document is reused.
pub const DEFAULT_DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// The default clock tolerance on id_token times.
pub const DEFAULT_CLOCK_TOLERANCE: Duration = Duration::from_secs(5);

/// How the client authenticates at the token endpoint (when it has a secret;
/// without one it is a public client and PKCE alone protects the exchange).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuth {
    /// `client_id` and `client_secret` in the form body.
    Post,
    /// HTTP Basic with the form-encoded id and secret.
    Basic,
}

/// What an OpenID Connect provider's id_token must satisfy.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IdTokenRules {
    /// Accepted `iss` values (the first is the discovery issuer's).
    pub issuers: Vec<String>,
    /// Tolerated clock skew on `exp`, `iat` and `nbf`.
    pub clock_tolerance: Duration,
}

impl IdTokenRules {
    /// Tokens issued by one of `issuers`, with the default tolerance.
    pub fn new(issuers: Vec<String>) -> Self {
        IdTokenRules {
            issuers,
            clock_tolerance: DEFAULT_CLOCK_TOLERANCE,
        }
    }
}

/// One provider instance's OAuth settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OAuthSettings {
    /// The provider instance id (state is bound to it).
    pub provider_id: String,
    /// The client id registered at the identity provider.
    pub client_id: String,
    /// The client secret; `None` for a public client (PKCE only).
    pub client_secret: Option<Secret>,
    /// How the secret is sent.
    pub client_auth: ClientAuth,
    /// The issuer whose discovery document supplies endpoints not set here.
    pub issuer: Option<Url>,
    /// The authorization endpoint.
    pub authorization_url: Option<Url>,
    /// The token endpoint.
    pub token_url: Option<Url>,
    /// The JWKS endpoint (OpenID Connect).
    pub jwks_url: Option<Url>,
    /// The end-session (logout) endpoint, when configured: never called
    /// here (logout at the identity provider is the client's business), but
    /// it replaces the discovered one, which is otherwise checked like the
    /// other discovered endpoints.
    pub end_session_url: Option<Url>,
    /// Requested scopes.
    pub scopes: Vec<String>,
    /// Which callback URLs logins may ask for.
    pub callback: CallbackPolicy,
    /// Set for OpenID Connect: a nonce is sent and the id_token checked.
    pub id_token: Option<IdTokenRules>,
    /// Timeout of every call to the identity provider.
    pub http_timeout: Duration,
    /// How long a started login stays valid.
    pub state_ttl: Duration,
    /// How long a discovery document is reused.
    pub discovery_ttl: Duration,
    /// The shortest time between two fetches of the key set caused by a
    /// token whose key is unknown (default one minute).
    pub jwks_refetch_interval: Duration,
}

impl OAuthSettings {
    /// Settings for instance `provider_id` with client `client_id` and the
    /// callback policy; the rest default (no secret, `client_secret_post`, no
    /// endpoints, plain OAuth, 10 s timeout, 10 minutes state).
    pub fn new(
        provider_id: impl Into<String>,
        client_id: impl Into<String>,
        callback: CallbackPolicy,
    ) -> Self {
        OAuthSettings {
            provider_id: provider_id.into(),
            client_id: client_id.into(),
            client_secret: None,
            client_auth: ClientAuth::Post,
            issuer: None,
            authorization_url: None,
            token_url: None,
            jwks_url: None,
            end_session_url: None,
            scopes: Vec::new(),
            callback,
            id_token: None,
            http_timeout: DEFAULT_HTTP_TIMEOUT,
            state_ttl: DEFAULT_STATE_TTL,
            discovery_ttl: DEFAULT_DISCOVERY_TTL,
            jwks_refetch_interval: crate::jwks::REFETCH_INTERVAL,
        }
    }
}

/// The state of a started login, kept in the state store until its callback.
#[derive(Serialize, Deserialize)]
struct PendingLogin {
    provider: String,
    actor_type: Option<String>,
    callback_url: String,
    pkce_verifier: String,
    nonce: Option<String>,
    link_to: Option<String>,
}

/// The id_token in the token answer, if any.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

impl ExtraTokenFields for IdTokenField {}

type TokenAnswer = StandardTokenResponse<IdTokenField, BasicTokenType>;
type CodeClient = oauth2::Client<
    BasicErrorResponse,
    TokenAnswer,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

#[derive(Clone)]
struct Endpoints {
    authorization: Url,
    token: Url,
    jwks: Option<Url>,
}

/// A completed code exchange.
#[non_exhaustive]
pub struct Completed {
    /// The access token, to call the identity provider's API now; never
    /// keep, return or log it.
    pub access_token: Secret,
    /// The verified id_token's claims (OpenID Connect).
    pub claims: Option<Metadata>,
    /// The auth identity to link to: the one the login was started with
    /// proof of, which the callback proved again ([`AuthRequest::link_to`]
    /// at both ends); `None` for a plain login, whatever the callback carried.
    pub link_to: Option<String>,
}

impl Completed {
    /// A completed login (for providers' tests of their user mapping).
    pub fn new(access_token: Secret, claims: Option<Metadata>, link_to: Option<String>) -> Self {
        Completed {
            access_token,
            claims,
            link_to,
        }
    }
}

impl std::fmt::Debug for Completed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Completed")
            .field(
                "claims",
                &self.claims.as_ref().map(|c| c.keys().collect::<Vec<_>>()),
            )
            .field("link_to", &self.link_to)
            .finish_non_exhaustive()
    }
}

/// One provider instance's OAuth client: builds authorization URLs, keeps
/// the login's state, exchanges codes and checks id_tokens. Build it once per
/// instance (it holds the HTTP client, the discovery and the key caches).
pub struct OAuthClient {
    settings: OAuthSettings,
    /// The endpoints, when the settings name them all (no discovery).
    fixed: Option<Endpoints>,
    http: Http,
    discovered: Mutex<Option<(Endpoints, Instant)>>,
    jwks: JwksCache,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The key a started login's state is kept under: a hash of the state, so
/// the store never holds the value a callback presents.
fn state_key(state: &str) -> String {
    format!("oauth:{}", hex::encode(Sha256::digest(state.as_bytes())))
}

/// A parameter as a non-empty string.
fn param<'a>(map: &'a Metadata, name: &str) -> Option<&'a str> {
    map.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Bounds a client-supplied text before it is shown or logged.
fn bounded(s: &str) -> String {
    const MAX: usize = 512;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

impl OAuthClient {
    /// A client for `settings`. Fails if neither the endpoints nor an issuer
    /// to discover them are set, or if the HTTP client cannot be built.
    pub fn new(settings: OAuthSettings) -> Result<Self, auth_module::OptionsError> {
        let fixed = match (&settings.authorization_url, &settings.token_url) {
            (Some(a), Some(t)) if settings.id_token.is_none() || settings.jwks_url.is_some() => {
                Some(Endpoints {
                    authorization: a.clone(),
                    token: t.clone(),
                    jwks: settings.jwks_url.clone(),
                })
            }
            _ => None,
        };
        if fixed.is_none() && settings.issuer.is_none() {
            return Err(auth_module::OptionsError::new(
                "issuer",
                "is required unless every endpoint is set",
            ));
        }
        let http = Http::new(settings.http_timeout)
            .map_err(|e| auth_module::OptionsError::new("httpTimeoutMs", e))?;
        Ok(OAuthClient {
            settings,
            fixed,
            http,
            discovered: Mutex::new(None),
            jwks: JwksCache::default(),
        })
    }

    /// The settings.
    pub fn settings(&self) -> &OAuthSettings {
        &self.settings
    }

    /// The endpoints: the configured ones, the rest from the issuer's
    /// discovery document (fetched on first use and reused for the
    /// discovery TTL).
    async fn endpoints(&self) -> Result<Endpoints, OAuthError> {
        if let Some(fixed) = &self.fixed {
            return Ok(fixed.clone());
        }
        let mut cached = self.discovered.lock().await;
        if let Some((e, at)) = cached.as_ref()
            && at.elapsed() < self.settings.discovery_ttl
        {
            return Ok(e.clone());
        }
        let endpoints = self.discover().await?;
        *cached = Some((endpoints.clone(), Instant::now()));
        Ok(endpoints)
    }

    async fn discover(&self) -> Result<Endpoints, OAuthError> {
        let s = &self.settings;
        let Some(issuer) = &s.issuer else {
            return Err(OAuthError::failed("no issuer to discover endpoints from"));
        };
        let base = issuer.as_str().trim_end_matches('/');
        let url = Url::parse(&format!("{base}/.well-known/openid-configuration"))
            .map_err(|e| OAuthError::failed(format!("discovery URL: {e}")))?;
        let doc = self
            .http
            .get_json(&url, None, "application/json")
            .await
            .map_err(|e| OAuthError::failed(format!("discovery: {e}")))?;
        endpoints_from(s, issuer, &doc)
    }

    fn code_client(&self, endpoints: &Endpoints, callback: &str) -> Result<CodeClient, OAuthError> {
        let s = &self.settings;
        let redirect = RedirectUrl::new(callback.to_owned())
            .map_err(|e| OAuthError::failed(format!("callback URL: {e}")))?;
        let mut client = oauth2::Client::new(ClientId::new(s.client_id.clone()))
            .set_auth_uri(AuthUrl::from_url(endpoints.authorization.clone()))
            .set_token_uri(TokenUrl::from_url(endpoints.token.clone()))
            .set_redirect_uri(redirect)
            .set_auth_type(match s.client_auth {
                ClientAuth::Post => AuthType::RequestBody,
                ClientAuth::Basic => AuthType::BasicAuth,
            });
        if let Some(secret) = &s.client_secret {
            client = client.set_client_secret(ClientSecret::new(secret.expose().to_owned()));
        }
        Ok(client)
    }

    /// Starts a login: checks the request for an identity-provider `error`
    /// and for its `callback_url` (body) against the policy, keeps a fresh
    /// state (bound to this instance, the route's actor type, the callback
    /// URL, the PKCE verifier, the nonce and [`AuthRequest::link_to`], the
    /// identity to link to, which the callback must prove again) for the
    /// state TTL, and answers the authorization URL to send the user to.
    pub async fn begin(
        &self,
        req: &AuthRequest,
        ids: &ProviderIdentities,
    ) -> Result<String, OAuthError> {
        idp_error(&req.query)?;
        let callback = self
            .settings
            .callback
            .resolve(req.body_str("callback_url"))
            .ok_or(OAuthError::CallbackNotAllowed)?
            .to_owned();
        let endpoints = self.endpoints().await?;
        let client = self.code_client(&endpoints, &callback)?;
        let state = Secret::generate();
        let nonce = self
            .settings
            .id_token
            .is_some()
            .then(|| Secret::generate().expose().to_owned());
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state_value = state.expose().to_owned();
        let mut auth = client
            .authorize_url(move || CsrfToken::new(state_value))
            .add_scopes(self.settings.scopes.iter().cloned().map(Scope::new))
            .set_pkce_challenge(challenge);
        if let Some(n) = &nonce {
            auth = auth.add_extra_param("nonce", n.clone());
        }
        let (location, _) = auth.url();
        let pending = PendingLogin {
            provider: self.settings.provider_id.clone(),
            actor_type: req.actor_type.clone(),
            callback_url: callback,
            pkce_verifier: verifier.secret().clone(),
            nonce,
            link_to: req.link_to.clone(),
        };
        let value = serde_json::to_value(&pending)
            .map_err(|e| OAuthError::failed(format!("state: {e}")))?;
        ids.set_state(&state_key(state.expose()), value, self.settings.state_ttl)
            .await?;
        Ok(location.into())
    }

    /// Completes a login at its callback: an identity-provider `error`, then
    /// the `code` (query, else body), then the `state` (query only), spent
    /// atomically and checked against this instance and the route's actor
    /// type before any call to the identity provider; then the code exchange
    /// and, for OpenID Connect, the id_token checks.
    ///
    /// Linking needs proof at both ends: when the login was started with
    /// [`AuthRequest::link_to`] set, the callback's own `req.link_to` (the
    /// identity its credential proves) must name the same auth identity,
    /// else [`OAuthError::LinkNotProven`] before any call to the identity
    /// provider (the state stays spent, nothing is linked). When the login
    /// was started without, the callback's `req.link_to` is ignored: a plain
    /// login never becomes a link at its callback.
    pub async fn finish(
        &self,
        req: &AuthRequest,
        ids: &ProviderIdentities,
    ) -> Result<Completed, OAuthError> {
        idp_error(&req.query)?;
        let code = param(&req.query, "code")
            .or_else(|| param(&req.body, "code"))
            .ok_or(OAuthError::NoCode)?
            .to_owned();
        let state = param(&req.query, "state").ok_or(OAuthError::NoState)?;
        let stored = ids
            .take_state(&state_key(state))
            .await?
            .ok_or(OAuthError::NoState)?;
        let pending: PendingLogin =
            serde_json::from_value(stored).map_err(|_| OAuthError::NoState)?;
        if pending.provider != self.settings.provider_id || pending.actor_type != req.actor_type {
            return Err(OAuthError::NoState);
        }
        if let Some(target) = &pending.link_to
            && req.link_to.as_deref() != Some(target.as_str())
        {
            return Err(OAuthError::LinkNotProven);
        }
        let endpoints = self.endpoints().await?;
        // The client carries the login's own callback URL as redirect_uri.
        let client = self.code_client(&endpoints, &pending.callback_url)?;
        let answer = client
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| OAuthError::failed(format!("code exchange: {}", exchange_error(&e))))?;
        let access_token = Secret::new(answer.access_token().secret().clone());
        let claims = match &self.settings.id_token {
            None => None,
            Some(rules) => {
                let id_token = answer
                    .extra_fields()
                    .id_token
                    .as_deref()
                    .ok_or_else(|| OAuthError::failed("the token answer has no id_token"))?;
                let jwks = endpoints
                    .jwks
                    .as_ref()
                    .ok_or_else(|| OAuthError::failed("no JWKS endpoint"))?;
                Some(
                    self.verify_id_token(
                        id_token,
                        jwks,
                        rules,
                        pending.nonce.as_deref(),
                        access_token.expose(),
                    )
                    .await
                    .map_err(|e| OAuthError::failed(format!("id_token: {e}")))?,
                )
            }
        };
        Ok(Completed {
            access_token,
            claims,
            link_to: pending.link_to,
        })
    }

    async fn verify_id_token(
        &self,
        token: &str,
        jwks: &Url,
        rules: &IdTokenRules,
        nonce: Option<&str>,
        access_token: &str,
    ) -> Result<Metadata, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("header: {e}"))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(format!("algorithm {:?} is not accepted", header.alg));
        }
        let (key, alg) = self
            .jwks
            .key(
                &self.http,
                jwks,
                header.kid.as_deref(),
                header.alg,
                self.settings.jwks_refetch_interval,
            )
            .await?;
        let tolerance = rules.clock_tolerance.as_secs();
        let mut validation = Validation::new(alg);
        validation.algorithms = vec![alg];
        validation.leeway = tolerance;
        validation.validate_nbf = true;
        validation.set_issuer(&rules.issuers);
        validation.set_audience(&[&self.settings.client_id]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Metadata>(token, &key, &validation)
            .map_err(|e| format!("{e}"))?;
        let claims = data.claims;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let iat = claims.get("iat").and_then(Value::as_u64).ok_or("no iat")?;
        if iat > now + tolerance {
            return Err("iat is in the future".to_owned());
        }
        let multiple_audiences = claims
            .get("aud")
            .and_then(Value::as_array)
            .is_some_and(|a| a.len() > 1);
        match claims.get("azp").and_then(Value::as_str) {
            Some(azp) if azp != self.settings.client_id => {
                return Err("azp is another client".to_owned());
            }
            None if multiple_audiences => return Err("several audiences and no azp".to_owned()),
            _ => {}
        }
        if let Some(expected) = nonce {
            let got = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
            if !bool::from(got.as_bytes().ct_eq(expected.as_bytes())) {
                return Err("nonce mismatch".to_owned());
            }
        }
        if let Some(at_hash) = claims.get("at_hash") {
            let digest = Sha256::digest(access_token.as_bytes());
            let expected = URL_SAFE_NO_PAD.encode(&digest[..16]);
            if at_hash.as_str() != Some(expected.as_str()) {
                return Err("at_hash does not match the access token".to_owned());
            }
        }
        Ok(claims)
    }

    /// GETs `url` (an identity-provider API) with the access token, as JSON.
    /// A non-2xx answer, a timeout or a non-JSON body is a failure.
    pub async fn get_json(
        &self,
        url: &Url,
        access_token: &Secret,
        accept: &str,
    ) -> Result<Value, OAuthError> {
        self.http
            .get_json(url, Some(access_token.expose()), accept)
            .await
            .map_err(|e| OAuthError::failed(e.to_string()))
    }
}

impl OAuthClient {
    /// A redirect provider's `authenticate`: [`OAuthClient::begin`], answered
    /// as a redirect or in `style`.
    pub async fn login(
        &self,
        req: &AuthRequest,
        ids: &ProviderIdentities,
        style: ErrorStyle,
    ) -> auth_module::Result<AuthOutcome> {
        match self.begin(req, ids).await {
            Ok(location) => Ok(AuthOutcome::redirect(location)),
            Err(e) => e.into_outcome(&self.settings.provider_id, style),
        }
    }

    /// A redirect provider's `validate_callback`: [`OAuthClient::finish`],
    /// then `user` maps the completed login to the external user's
    /// `(entity_id, user_metadata)` (calling the identity provider's API if
    /// it needs to), then [`complete_login`] with [`Completed::link_to`] (set
    /// only when both the start and the callback proved the same auth
    /// identity; an unproven link is 401 `Unauthorized`). Failures are
    /// answered in `style`; `display` names the provider in a linking refusal.
    pub async fn callback<F, Fut>(
        &self,
        req: &AuthRequest,
        ids: &ProviderIdentities,
        style: ErrorStyle,
        display: &str,
        user: F,
    ) -> auth_module::Result<AuthOutcome>
    where
        F: FnOnce(Completed) -> Fut + Send,
        Fut: std::future::Future<Output = Result<(String, Metadata), OAuthError>> + Send,
    {
        let provider = &self.settings.provider_id;
        let done = match self.finish(req, ids).await {
            Ok(done) => done,
            Err(e) => return e.into_outcome(provider, style),
        };
        let link_to = done.link_to.clone();
        let (entity_id, user_metadata) = match user(done).await {
            Ok(found) => found,
            Err(e) => return e.into_outcome(provider, style),
        };
        complete_login(ids, &entity_id, user_metadata, link_to.as_deref(), display).await
    }
}

/// The endpoints of discovery document `doc`, fetched from `issuer`, under
/// the configured overrides of `s`. The document must announce `issuer`; each
/// discovered endpoint (authorization, token, JWKS, end-session) must be
/// `https`, or plain `http` on a loopback host only when the issuer itself is
/// a loopback `http` URL: a document reached over `https` never points the
/// client at a plain-`http` endpoint.
fn endpoints_from(s: &OAuthSettings, issuer: &Url, doc: &Value) -> Result<Endpoints, OAuthError> {
    let base = issuer.as_str().trim_end_matches('/');
    let announced = doc.get("issuer").and_then(Value::as_str).unwrap_or("");
    if announced.trim_end_matches('/') != base {
        return Err(OAuthError::failed(format!(
            "discovery: the document's issuer {announced:?} is not the configured one"
        )));
    }
    let field = |configured: &Option<Url>, name: &str| -> Result<Option<Url>, OAuthError> {
        if let Some(u) = configured {
            return Ok(Some(u.clone()));
        }
        let Some(v) = doc.get(name).and_then(Value::as_str) else {
            return Ok(None);
        };
        let u = Url::parse(v).map_err(|e| OAuthError::failed(format!("discovery: {name}: {e}")))?;
        if !urls::discovered_endpoint_allowed(issuer, &u) {
            return Err(OAuthError::failed(format!(
                "discovery: {name} is not https (plain http only on a loopback host, for a loopback http issuer)"
            )));
        }
        Ok(Some(u))
    };
    let authorization = field(&s.authorization_url, "authorization_endpoint")?
        .ok_or_else(|| OAuthError::failed("discovery: no authorization_endpoint"))?;
    let token = field(&s.token_url, "token_endpoint")?
        .ok_or_else(|| OAuthError::failed("discovery: no token_endpoint"))?;
    let jwks = field(&s.jwks_url, "jwks_uri")?;
    if s.id_token.is_some() && jwks.is_none() {
        return Err(OAuthError::failed("discovery: no jwks_uri"));
    }
    // Not used here, but a document that announces a plain-http logout
    // endpoint for an https issuer is not trusted for the others either.
    field(&s.end_session_url, "end_session_endpoint")?;
    Ok(Endpoints {
        authorization,
        token,
        jwks,
    })
}

/// The identity provider's `error` redirect, if the query is one.
fn idp_error(query: &Metadata) -> Result<(), OAuthError> {
    let Some(error) = param(query, "error") else {
        return Ok(());
    };
    let description = param(query, "error_description").unwrap_or(error);
    Err(OAuthError::Idp {
        description: bounded(description),
        uri: param(query, "error_uri").map(bounded),
    })
}

/// A code-exchange failure, described without the answer's body.
fn exchange_error<E: std::error::Error>(
    e: &oauth2::RequestTokenError<E, BasicErrorResponse>,
) -> String {
    match e {
        oauth2::RequestTokenError::ServerResponse(r) => format!("error {}", r.error()),
        oauth2::RequestTokenError::Request(e) => e.to_string(),
        oauth2::RequestTokenError::Parse(e, _) => format!("unreadable answer ({e})"),
        oauth2::RequestTokenError::Other(e) => e.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_keys_hash_the_state() {
        let k = state_key("abc");
        assert!(k.starts_with("oauth:"));
        assert!(!k.contains("abc"));
        assert_eq!(k.len(), "oauth:".len() + 64);
    }

    fn oidc_settings(issuer: &str) -> OAuthSettings {
        let mut s = OAuthSettings::new("sso", "c", CallbackPolicy::new("https://s/cb", vec![]));
        s.issuer = Some(Url::parse(issuer).unwrap());
        s.id_token = Some(IdTokenRules::new(vec![issuer.to_owned()]));
        s
    }

    fn document(issuer: &str, base: &str) -> Value {
        serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{base}/auth"),
            "token_endpoint": format!("{base}/token"),
            "jwks_uri": format!("{base}/jwks"),
        })
    }

    #[test]
    fn an_https_issuers_document_never_points_at_plain_http() {
        let issuer = "https://idp.example";
        let s = oidc_settings(issuer);
        let at = |d: &Value| endpoints_from(&s, s.issuer.as_ref().unwrap(), d);
        let good = at(&document(issuer, "https://idp.example")).unwrap();
        assert_eq!(good.token.as_str(), "https://idp.example/token");
        for base in [
            "http://127.0.0.1:9",
            "http://localhost",
            "http://idp.example",
        ] {
            assert!(at(&document(issuer, base)).is_err(), "{base}");
        }
        // One plain endpoint is enough to refuse the document, the
        // end-session one included.
        for (name, plain) in [
            ("authorization_endpoint", "http://127.0.0.1:9/auth"),
            ("token_endpoint", "http://127.0.0.1:9/token"),
            ("jwks_uri", "http://[::1]/jwks"),
            ("end_session_endpoint", "http://localhost/logout"),
        ] {
            let mut d = document(issuer, "https://idp.example");
            d[name] = plain.into();
            assert!(at(&d).is_err(), "{name}");
        }
        let mut d = document(issuer, "https://idp.example");
        d["end_session_endpoint"] = "https://idp.example/logout".into();
        assert!(at(&d).is_ok());
        // A configured endpoint replaces the discovered one unchecked here
        // (the provider checked it as an option).
        let mut s = oidc_settings(issuer);
        s.token_url = Some(Url::parse("https://other.example/token").unwrap());
        let mut d = document(issuer, "https://idp.example");
        d["token_endpoint"] = "http://127.0.0.1:9/token".into();
        let e = endpoints_from(&s, s.issuer.as_ref().unwrap(), &d).unwrap();
        assert_eq!(e.token.as_str(), "https://other.example/token");
    }

    #[test]
    fn a_loopback_http_issuers_document_may_use_loopback_http() {
        let issuer = "http://127.0.0.1:9";
        let s = oidc_settings(issuer);
        let at = |d: &Value| endpoints_from(&s, s.issuer.as_ref().unwrap(), d);
        assert!(at(&document(issuer, "http://127.0.0.1:9")).is_ok());
        assert!(at(&document(issuer, "https://idp.example")).is_ok());
        assert!(at(&document(issuer, "http://idp.example")).is_err());
        // The document must still announce the configured issuer.
        assert!(at(&document("http://127.0.0.1:10", "http://127.0.0.1:9")).is_err());
    }

    #[test]
    fn idp_errors_take_the_description_and_uri() {
        let mut q = Metadata::new();
        assert!(idp_error(&q).is_ok());
        q.insert("error".into(), "access_denied".into());
        q.insert("error_description".into(), "User said no".into());
        q.insert("error_uri".into(), "https://idp.example/e".into());
        match idp_error(&q) {
            Err(OAuthError::Idp { description, uri }) => {
                assert_eq!(description, "User said no");
                assert_eq!(uri.as_deref(), Some("https://idp.example/e"));
            }
            other => panic!("{other:?}"),
        }
        q.insert("error_description".into(), "x".repeat(5000).into());
        match idp_error(&q) {
            Err(OAuthError::Idp { description, .. }) => assert_eq!(description.len(), 512),
            other => panic!("{other:?}"),
        }
    }
}
