//! The fake's HTTP server and endpoints.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::keys::{KID_RSA_A, KID_UNKNOWN, Key, corrupt_signature};
use super::{
    CODE_LIFETIME, Failure, FakeUser, Grant, Inner, Issued, Shared, Slot, TokenRequest, form,
};

/// Accepts connections until the task is aborted. The connections live in a
/// [`JoinSet`] owned by this task, so aborting it also cuts kept-alive
/// connections: a dropped fake answers nothing more.
pub(super) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let app = router(shared);
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // E.g. out of file descriptors: try again shortly.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(app.clone());
        connections.spawn(async move {
            // A broken connection only ends itself.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/o/oauth2/v2/auth", get(authorize_oidc))
        .route("/login/oauth/authorize", get(authorize_github))
        .route("/token", post(token_oidc))
        .route("/login/oauth/access_token", post(token_github))
        .route("/jwks", get(jwks))
        .route("/userinfo", get(userinfo))
        .route("/api/user", get(api_user))
        .route("/api/user/emails", get(api_emails))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(Arc::clone(&shared), count))
        .with_state(shared)
}

/// Counts every request, routed or not, by its exact path.
async fn count(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    *shared
        .lock()
        .counts
        .entry(request.uri().path().to_owned())
        .or_default() += 1;
    next.run(request).await
}

async fn not_found(request: Request) -> Response {
    OAuthError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("the fake IdP has no endpoint {}", request.uri().path()),
    )
    .respond(Format::Json)
}

// ---------------------------------------------------------------------------
// Discovery and keys

/// The keys the JWKS publishes, and the one new id_tokens are signed with.
fn keys(shared: &Shared, inner: &Inner) -> (Vec<Key>, Key) {
    let base = if shared.es256 { Key::EcA } else { Key::RsaA };
    if inner.rotated {
        (vec![base, Key::RsaB], Key::RsaB)
    } else {
        (vec![base], base)
    }
}

async fn discovery(State(shared): State<Arc<Shared>>) -> Response {
    let (published, _) = keys(&shared, &shared.lock());
    let mut algs: Vec<&str> = published.iter().map(|k| k.alg_name()).collect();
    algs.dedup();
    let url = &shared.url;
    Json(json!({
        "issuer": shared.issuer,
        "authorization_endpoint": format!("{url}/o/oauth2/v2/auth"),
        "token_endpoint": format!("{url}/token"),
        "jwks_uri": format!("{url}/jwks"),
        "userinfo_endpoint": format!("{url}/userinfo"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "grant_types_supported": ["authorization_code"],
        "id_token_signing_alg_values_supported": algs,
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "client_secret_basic",
            "none"
        ],
        "scopes_supported": ["openid", "email", "profile"],
        "claims_supported": [
            "iss", "aud", "azp", "sub", "iat", "exp", "nonce", "at_hash", "email",
            "email_verified", "name", "given_name", "family_name", "picture"
        ],
    }))
    .into_response()
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Response {
    let (published, _) = keys(&shared, &shared.lock());
    let keys: Vec<Value> = published.into_iter().map(Key::jwk).collect();
    Json(json!({ "keys": keys })).into_response()
}

// ---------------------------------------------------------------------------
// Authorization

async fn authorize_oidc(State(shared): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    authorize(&shared, query.as_deref(), false).unwrap_or_else(|e| e.respond(Format::Json))
}

async fn authorize_github(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
) -> Response {
    authorize(&shared, query.as_deref(), true).unwrap_or_else(|e| e.respond(Format::Json))
}

/// Answers the redirect, or the `400` to answer.
fn authorize(shared: &Shared, query: Option<&str>, github: bool) -> Result<Response, OAuthError> {
    let bad = |error: &'static str, description: String| {
        OAuthError::new(StatusCode::BAD_REQUEST, error, description)
    };
    let params = form::parse(query.unwrap_or("")).map_err(|e| bad("invalid_request", e))?;
    let required = |name: &str| {
        params
            .get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| bad("invalid_request", format!("{name} is missing")))
    };

    let client_id = required("client_id")?;
    let public_client = match shared.lock().clients.get(client_id) {
        None => {
            return Err(bad(
                "invalid_client",
                format!("unknown client_id {client_id:?}"),
            ));
        }
        Some(secret) => secret.is_none(),
    };
    let redirect_uri = required("redirect_uri")?;
    if !valid_redirect_uri(redirect_uri) {
        return Err(bad(
            "invalid_request",
            format!(
                "redirect_uri {redirect_uri:?} is not an absolute http(s) URL without fragment"
            ),
        ));
    }
    if !github {
        let response_type = required("response_type")?;
        if response_type != "code" {
            return Err(bad(
                "unsupported_response_type",
                format!("response_type {response_type:?} is not supported; only \"code\""),
            ));
        }
    }
    let state = required("state")?;
    let code_challenge = match (
        params.get("code_challenge"),
        params.get("code_challenge_method"),
    ) {
        (None, None) if public_client => {
            return Err(bad(
                "invalid_request",
                "a public client must use PKCE (code_challenge with code_challenge_method=S256)"
                    .into(),
            ));
        }
        (None, None) => None,
        (None, Some(_)) => {
            return Err(bad(
                "invalid_request",
                "code_challenge_method without code_challenge".into(),
            ));
        }
        (Some(_), None) => {
            return Err(bad(
                "invalid_request",
                "code_challenge_method is missing (it would mean \"plain\"); only S256 is supported".into(),
            ));
        }
        (Some(challenge), Some(method)) => {
            if method != "S256" {
                return Err(bad(
                    "invalid_request",
                    format!("code_challenge_method {method:?} is not supported; only S256"),
                ));
            }
            if challenge.len() != 43 || !challenge.bytes().all(is_base64url) {
                return Err(bad(
                    "invalid_request",
                    "code_challenge must be BASE64URL(SHA256(code_verifier)) without padding: 43 characters".into(),
                ));
            }
            Some(challenge.clone())
        }
    };

    let mut inner = shared.lock();
    let failure = inner.take(&[Slot::Authorize]).into_iter().next();
    let pairs: Vec<(&str, String)> = match failure {
        Some(Failure::ErrorRedirect {
            error,
            description,
            uri,
        }) => {
            let mut pairs = vec![("error", error), ("error_description", description)];
            if !uri.is_empty() {
                pairs.push(("error_uri", uri));
            }
            pairs.push(("state", state.clone()));
            pairs
        }
        _ => {
            let code = random_hex(16);
            let grant = Grant {
                client_id: client_id.clone(),
                redirect_uri: redirect_uri.clone(),
                code_challenge,
                nonce: params.get("nonce").cloned(),
                scope: params.get("scope").cloned(),
                user: inner.user.clone(),
                issued_at: Instant::now(),
            };
            inner.codes.insert(code.clone(), grant);
            vec![("code", code), ("state", state.clone())]
        }
    };
    drop(inner);
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    let query = form::encode_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())));
    let location = format!("{redirect_uri}{separator}{query}");
    let location = HeaderValue::from_str(&location).map_err(|_| {
        bad(
            "invalid_request",
            "redirect_uri is not a valid header value".into(),
        )
    })?;
    Ok((StatusCode::FOUND, [(header::LOCATION, location)]).into_response())
}

/// An absolute `http`/`https` URL with a host, no fragment, nothing but
/// visible ASCII.
fn valid_redirect_uri(uri: &str) -> bool {
    let rest = uri
        .strip_prefix("http://")
        .or_else(|| uri.strip_prefix("https://"));
    let Some(rest) = rest else { return false };
    let host = rest.split(['/', '?']).next().unwrap_or("");
    !host.is_empty() && !uri.contains('#') && uri.bytes().all(|b| b.is_ascii_graphic())
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

// ---------------------------------------------------------------------------
// Token

async fn token_oidc(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    token(&shared, &headers, &body, false).await
}

async fn token_github(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    token(&shared, &headers, &body, true).await
}

/// How a token endpoint writes its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Form,
}

/// An OAuth error answer.
#[derive(Debug)]
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl OAuthError {
    fn request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    fn grant(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }

    fn client(description: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
    }

    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status,
            error,
            description: description.into(),
        }
    }

    fn respond(self, format: Format) -> Response {
        let body = json!({ "error": self.error, "error_description": self.description });
        let mut response = reply(format, self.status, &body);
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"fake-idp\""),
            );
        }
        response
    }
}

async fn token(shared: &Shared, headers: &HeaderMap, body: &[u8], github: bool) -> Response {
    let accept = header_str(headers, header::ACCEPT);
    let format =
        if github && !accept.is_some_and(|a| a.to_ascii_lowercase().contains("application/json")) {
            Format::Form
        } else {
            Format::Json
        };
    let form = std::str::from_utf8(body)
        .map_err(|_| "the body is not UTF-8".to_owned())
        .and_then(form::parse);
    let basic = headers.get(header::AUTHORIZATION).map(|value| {
        value.to_str().ok().and_then(parse_basic).ok_or_else(|| {
            OAuthError::client(
                "the Authorization header is not valid HTTP Basic client credentials",
            )
        })
    });

    let failures = {
        let mut inner = shared.lock();
        inner.last_token_request = Some(TokenRequest {
            form: form.clone().unwrap_or_default(),
            basic_auth: basic.as_ref().and_then(|b| b.as_ref().ok()).cloned(),
            accept: accept.map(str::to_owned),
        });
        inner.take(&[Slot::TokenDelay, Slot::TokenAnswer])
    };
    for failure in &failures {
        if let Failure::Slow(delay) = failure {
            tokio::time::sleep(*delay).await;
        }
    }
    for failure in failures {
        match failure {
            Failure::TokenStatus(status) => {
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let body = json!({
                    "error": "invalid_grant",
                    "error_description": format!("injected failure: status {}", status.as_u16()),
                });
                return reply(format, status, &body);
            }
            Failure::TokenOkWithError => {
                let body = json!({
                    "error": "bad_verification_code",
                    "error_description": "The code passed is incorrect or expired.",
                });
                return reply(format, StatusCode::OK, &body);
            }
            _ => {}
        }
    }

    let content_type_ok = header_str(headers, header::CONTENT_TYPE).is_some_and(|ct| {
        ct.to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    });
    let redeemed = if content_type_ok {
        form.map_err(OAuthError::request)
            .and_then(|form| redeem(shared, &form, basic, github))
    } else {
        Err(OAuthError::request(
            "the body must be application/x-www-form-urlencoded",
        ))
    };
    match redeemed {
        Ok(body) => reply(format, StatusCode::OK, &body),
        Err(e) => e.respond(format),
    }
}

/// Checks a token request and, when it is good, spends its code and answers
/// the token response body.
fn redeem(
    shared: &Shared,
    form: &BTreeMap<String, String>,
    basic: Option<Result<(String, String), OAuthError>>,
    github: bool,
) -> Result<Value, OAuthError> {
    match form.get("grant_type").map(String::as_str) {
        None => return Err(OAuthError::request("grant_type is missing")),
        Some("authorization_code") => {}
        Some(other) => {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!("grant_type {other:?} is not supported; only authorization_code"),
            ));
        }
    }

    // Client authentication (RFC 6749 §2.3.1): one method only.
    let (client_id, secret) = match basic {
        Some(Err(e)) => return Err(e),
        Some(Ok((id, secret))) => {
            if form.contains_key("client_secret") {
                return Err(OAuthError::request(
                    "the client used both HTTP Basic and client_secret; use one method",
                ));
            }
            if form.get("client_id").is_some_and(|body_id| *body_id != id) {
                return Err(OAuthError::request(
                    "client_id in the body differs from the HTTP Basic client id",
                ));
            }
            (id, Some(secret))
        }
        None => match form.get("client_id") {
            None => {
                return Err(OAuthError::client(
                    "no client authentication: send client_id (and client_secret) or HTTP Basic credentials",
                ));
            }
            Some(id) => (id.clone(), form.get("client_secret").cloned()),
        },
    };

    let mut inner = shared.lock();
    match (inner.clients.get(&client_id), secret) {
        (None, _) => return Err(OAuthError::client(format!("unknown client {client_id:?}"))),
        (Some(Some(expected)), Some(sent)) if *expected == sent => {}
        (Some(Some(_)), Some(_)) => return Err(OAuthError::client("wrong client secret")),
        (Some(Some(_)), None) => {
            return Err(OAuthError::client(
                "a confidential client must authenticate (client_secret_post or client_secret_basic)",
            ));
        }
        (Some(None), Some(_)) => {
            return Err(OAuthError::client(
                "a public client has no secret; send only client_id and a code_verifier",
            ));
        }
        (Some(None), None) => {}
    }

    let Some(code) = form.get("code") else {
        return Err(OAuthError::request("code is missing"));
    };
    // Spent from here on, whatever the outcome.
    let Some(grant) = inner.codes.remove(code) else {
        return Err(OAuthError::grant(
            "the code is unknown, expired or already used",
        ));
    };
    if grant.client_id != client_id {
        return Err(OAuthError::grant("the code was issued to another client"));
    }
    if grant.issued_at.elapsed() > CODE_LIFETIME {
        return Err(OAuthError::grant(
            "the code is unknown, expired or already used",
        ));
    }
    match form.get("redirect_uri") {
        None => return Err(OAuthError::request("redirect_uri is missing")),
        Some(uri) if *uri != grant.redirect_uri => {
            return Err(OAuthError::grant(
                "redirect_uri differs from the one of the authorization request",
            ));
        }
        Some(_) => {}
    }
    match (&grant.code_challenge, form.get("code_verifier")) {
        (Some(_), None) => return Err(OAuthError::grant("Missing code verifier.")),
        (None, Some(_)) => {
            return Err(OAuthError::grant(
                "code_verifier sent, but the authorization request had no code_challenge",
            ));
        }
        (Some(challenge), Some(verifier)) => {
            let well_formed = (43..=128).contains(&verifier.len())
                && verifier
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
            if !well_formed {
                return Err(OAuthError::grant(
                    "code_verifier must be 43 to 128 characters of [A-Za-z0-9-._~]",
                ));
            }
            if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != *challenge {
                return Err(OAuthError::grant(
                    "code_verifier does not match the code_challenge",
                ));
            }
        }
        (None, None) => {}
    }

    let scope = grant.scope.clone().unwrap_or_default();
    let access_token = if github {
        format!("gho_{}", random_hex(18))
    } else {
        random_hex(20)
    };
    inner.tokens.insert(
        access_token.clone(),
        Issued {
            user: grant.user.clone(),
        },
    );
    if github {
        let scope: Vec<&str> = scope.split([' ', ',']).filter(|s| !s.is_empty()).collect();
        return Ok(json!({
            "access_token": access_token,
            "token_type": "bearer",
            "scope": scope.join(","),
        }));
    }
    let mut body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": 3600,
        "scope": scope,
    });
    if scope.split_whitespace().any(|s| s == "openid") {
        body["id_token"] = Value::String(id_token(shared, &mut inner, &grant, &access_token));
    }
    Ok(body)
}

/// Mints the id_token for `grant`, with the pending id_token failures.
fn id_token(shared: &Shared, inner: &mut Inner, grant: &Grant, access_token: &str) -> String {
    let failures = inner.take(&[
        Slot::Signature,
        Slot::Issuer,
        Slot::Audience,
        Slot::Nonce,
        Slot::Expired,
        Slot::NotYetValid,
        Slot::AtHash,
    ]);
    let has = |f: &Failure| failures.contains(f);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();

    let mut claims = Map::new();
    let issuer = if has(&Failure::WrongIssuer) {
        "https://wrong-issuer.example.com".to_owned()
    } else {
        shared.issuer.clone()
    };
    let audience = if has(&Failure::WrongAudience) {
        "wrong-audience-client".to_owned()
    } else {
        grant.client_id.clone()
    };
    claims.insert("iss".into(), issuer.into());
    claims.insert("aud".into(), audience.into());
    claims.insert("azp".into(), grant.client_id.clone().into());
    claims.extend(oidc_claims(&grant.user));
    let (iat, mut exp) = if has(&Failure::Expired) {
        (now - 3600, now - 3600)
    } else {
        (now, now + 3600)
    };
    if has(&Failure::NotYetValid) {
        claims.insert("nbf".into(), (now + 3600).into());
        exp = exp.max(now + 7200);
    }
    claims.insert("iat".into(), iat.into());
    claims.insert("exp".into(), exp.into());
    let nonce = if has(&Failure::WrongNonce) {
        Some("wrong-nonce".to_owned())
    } else {
        grant.nonce.clone()
    };
    if let Some(nonce) = nonce {
        claims.insert("nonce".into(), nonce.into());
    }
    let hashed = if has(&Failure::BadAtHash) {
        format!("not-{access_token}")
    } else {
        access_token.to_owned()
    };
    claims.insert("at_hash".into(), at_hash(&hashed).into());

    let claims = Value::Object(claims);
    let (_, signing) = keys(shared, inner);
    if has(&Failure::UnknownKid) {
        Key::RsaB.sign(KID_UNKNOWN, &claims)
    } else if has(&Failure::BadSignature) {
        if signing == Key::EcA {
            corrupt_signature(&signing.sign(signing.kid(), &claims))
        } else {
            Key::RsaB.sign(KID_RSA_A, &claims)
        }
    } else {
        signing.sign(signing.kid(), &claims)
    }
}

/// `at_hash`: BASE64URL of the left half of SHA-256 of the access token.
fn at_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(&Sha256::digest(access_token.as_bytes())[..16])
}

/// The user's OIDC claims, `None` fields left out.
fn oidc_claims(user: &FakeUser) -> Map<String, Value> {
    let mut claims = Map::new();
    claims.insert("sub".into(), user.sub.clone().into());
    if let Some(email) = &user.email {
        claims.insert("email".into(), email.clone().into());
        claims.insert("email_verified".into(), user.email_verified.into());
    }
    for (name, value) in [
        ("name", &user.name),
        ("given_name", &user.given_name),
        ("family_name", &user.family_name),
        ("picture", &user.picture),
    ] {
        if let Some(value) = value {
            claims.insert(name.into(), value.clone().into());
        }
    }
    claims
}

/// RFC 6749 §2.3.1 HTTP Basic client credentials: base64 of
/// `urlencode(id):urlencode(secret)`.
fn parse_basic(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form::decode(id).ok()?, form::decode(secret).ok()?))
}

// ---------------------------------------------------------------------------
// User info and the GitHub-like API

/// The token of `Authorization: SCHEME TOKEN` when SCHEME is one of `schemes`.
fn access_token<'h>(headers: &'h HeaderMap, schemes: &[&str]) -> Option<&'h str> {
    let (scheme, token) = header_str(headers, header::AUTHORIZATION)?
        .trim()
        .split_once(' ')?;
    schemes
        .iter()
        .any(|s| scheme.eq_ignore_ascii_case(s))
        .then(|| token.trim())
}

fn user_for(shared: &Shared, token: Option<&str>) -> Option<FakeUser> {
    let inner = shared.lock();
    token
        .and_then(|t| inner.tokens.get(t))
        .map(|issued| issued.user.clone())
}

async fn userinfo(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    match user_for(&shared, access_token(&headers, &["Bearer"])) {
        Some(user) => Json(Value::Object(oidc_claims(&user))).into_response(),
        None => {
            let mut response = OAuthError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "a valid Bearer access token is required",
            )
            .respond(Format::Json);
            // Replaces the Basic challenge of the token endpoints.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
            response
        }
    }
}

async fn api_user(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    api(&shared, &headers, |user| {
        json!({
            "id": user.github_id,
            "login": user.login,
            "type": "User",
            "name": user.name,
            "email": user.github_public_email,
            "avatar_url": format!("https://avatars.githubusercontent.com/u/{}?v=4", user.github_id),
            "html_url": format!("https://github.com/{}", user.login),
            "company": user.company,
            "two_factor_authentication": user.two_factor_authentication,
        })
    })
}

async fn api_emails(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    api(&shared, &headers, |user| {
        let emails: Vec<Value> = user
            .github_emails
            .iter()
            .map(|(email, primary, verified)| {
                let visibility = match (primary, &user.github_public_email) {
                    (true, Some(public)) if public == email => json!("public"),
                    (true, _) => json!("private"),
                    (false, _) => Value::Null,
                };
                json!({
                    "email": email,
                    "primary": primary,
                    "verified": verified,
                    "visibility": visibility,
                })
            })
            .collect();
        Value::Array(emails)
    })
}

fn api(shared: &Shared, headers: &HeaderMap, render: impl FnOnce(&FakeUser) -> Value) -> Response {
    let failure = shared.lock().take(&[Slot::Api]).into_iter().next();
    if let Some(Failure::ApiStatus(status)) = failure {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = match status.as_u16() {
            401 => "Bad credentials",
            403 => "API rate limit exceeded",
            404 => "Not Found",
            _ => status.canonical_reason().unwrap_or("Server Error"),
        };
        return github_message(status, message);
    }
    if header_str(headers, header::USER_AGENT).is_none_or(str::is_empty) {
        return github_message(
            StatusCode::FORBIDDEN,
            "Request forbidden by administrative rules. Please make sure your request has a User-Agent header.",
        );
    }
    match user_for(shared, access_token(headers, &["Bearer", "token"])) {
        Some(user) => Json(render(&user)).into_response(),
        None => github_message(StatusCode::UNAUTHORIZED, "Bad credentials"),
    }
}

fn github_message(status: StatusCode, message: &str) -> Response {
    let body = json!({ "message": message, "documentation_url": "https://docs.github.com/rest" });
    (status, Json(body)).into_response()
}

// ---------------------------------------------------------------------------
// Helpers

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Writes `body` (a flat JSON object) as JSON or, GitHub's default, as a form.
fn reply(format: Format, status: StatusCode, body: &Value) -> Response {
    match format {
        Format::Json => (status, Json(body)).into_response(),
        Format::Form => {
            let pairs: Vec<(String, String)> = body
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), v)
                })
                .collect();
            let encoded = form::encode_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            (
                status,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
                )],
                encoded,
            )
                .into_response()
        }
    }
}

/// `bytes` random bytes from the OS, as hex.
fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // Invariant: the OS random source only fails on a broken system.
    getrandom::getrandom(&mut buf).expect("the OS random source works");
    hex::encode(buf)
}
