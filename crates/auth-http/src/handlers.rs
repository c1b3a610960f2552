//! The route handlers.

use std::collections::BTreeMap;

use auth_module::{AuthRequest, LoginOutcome};
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::AuthService;
use crate::body::{query_of, read_object};
use crate::context::AuthPolicy;
use crate::error::ApiError;
use crate::extract::Path;

#[derive(Clone, Copy)]
pub(crate) enum Step {
    Register,
    Login,
    Callback,
}

/// Builds the provider's view of the request: path, query, body, headers.
async fn auth_request(
    svc: &AuthService,
    actor: &str,
    req: Request,
) -> Result<AuthRequest, ApiError> {
    let (parts, body) = req.into_parts();
    let body = read_object(&parts.headers, body, svc.settings().body_limit).await?;
    let query = query_of(&parts.uri);
    let headers: BTreeMap<String, String> = parts
        .headers
        .iter()
        .filter(|(k, _)| *k != header::AUTHORIZATION && *k != header::COOKIE)
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let client = svc.client_addr(&parts);
    // The configured public origin, else what this request says: the server
    // speaks plain HTTP, and the host is the `Host` header (or the absolute
    // request target) if it looks like one. Forwarded headers are ignored.
    let (protocol, host) = match &svc.settings().public_origin {
        Some(origin) => (origin.scheme().to_owned(), Some(origin.host().to_owned())),
        None => {
            let host = parts
                .uri
                .authority()
                .map(|a| a.as_str().to_owned())
                .or_else(|| {
                    parts
                        .headers
                        .get(header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .map(str::to_owned)
                })
                .filter(|h| crate::valid_host(h));
            let scheme = parts.uri.scheme_str().unwrap_or("http");
            (scheme.to_owned(), host)
        }
    };
    let url = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    Ok(AuthRequest::with_body(body)
        .query(query)
        .headers(headers)
        .url(url, protocol)
        .host(host)
        .client_addr(client)
        .actor_type(actor))
}

/// The auth identity a login to a redirect provider links to: the one whose
/// valid, current bearer token came with the request (linking with proof).
/// A missing or invalid token links nothing, so a stale token kept by a
/// client never blocks a login; only a token that verifies proves anything.
async fn linking_identity(
    svc: &AuthService,
    provider: &str,
    headers: &HeaderMap,
) -> Option<String> {
    let redirect = svc
        .module()
        .provider_info(provider)
        .is_some_and(|p| p.flow == auth_module::ProviderFlow::Redirect);
    if !redirect || !headers.contains_key(header::AUTHORIZATION) {
        return None;
    }
    let policy = AuthPolicy::any_actor()
        .session(false)
        .allow_unregistered(true);
    match svc.authenticate_current(headers, &policy).await {
        Ok(Some((ctx, Some(_)))) => Some(ctx.auth_identity_id),
        _ => None,
    }
}

pub(crate) async fn run_step(
    svc: AuthService,
    step: Step,
    actor: String,
    provider: String,
    req: Request,
) -> Result<Response, ApiError> {
    svc.module().check_actor_type(&actor)?;
    let link_to = match step {
        Step::Login => linking_identity(&svc, &provider, req.headers()).await,
        _ => None,
    };
    let auth_req = auth_request(&svc, &actor, req).await?.link_to(link_to);
    svc.module().check_actor_allowed(&actor, &provider)?;
    let module = svc.module();
    let outcome = match step {
        Step::Register => module.register(&provider, auth_req).await?,
        Step::Login => module.authenticate(&provider, auth_req).await?,
        Step::Callback => module.validate_callback(&provider, auth_req).await?,
    };
    if let (Step::Register, LoginOutcome::Authenticated { identity, .. }) = (step, &outcome) {
        // A registration always answers a token; it says whether MFA is on.
        let mut claims = svc.tokens().claims_for(identity, &actor, &provider);
        claims.mfa_enabled = module.mfa().enabled_for(identity).await?;
        let token = svc.tokens().sign(&claims)?;
        return Ok(Json(json!({ "token": token })).into_response());
    }
    match outcome {
        LoginOutcome::Redirect { location, .. } if matches!(step, Step::Login) => {
            Ok(Json(json!({ "location": location })).into_response())
        }
        LoginOutcome::Failed { message, .. } => Err(ApiError::unauthorized(message)),
        LoginOutcome::Throttled { retry_after, .. } => Err(ApiError::TooManyAttempts(retry_after)),
        outcome => token_answer(&svc, outcome, &actor, &provider),
    }
}

/// The answer of a login step that reached an identity: `{token}`, or the
/// next step with an actorless token (`verification_required`, then
/// `mfa_required`).
fn token_answer(
    svc: &AuthService,
    outcome: LoginOutcome,
    actor: &str,
    provider: &str,
) -> Result<Response, ApiError> {
    let tokens = svc.tokens();
    let body = match outcome {
        LoginOutcome::Authenticated {
            identity, linked, ..
        } => {
            // The identity the provider answered is current: no second read.
            let mut claims = tokens.claims_for(&identity, actor, provider);
            claims.linked = linked;
            json!({ "token": tokens.sign(&claims)? })
        }
        LoginOutcome::VerificationRequired {
            identity,
            verification,
            ..
        } => {
            let claims = tokens
                .claims_for(&identity, actor, provider)
                .actorless(false);
            let mut body = json!({ "verification_required": true, "token": tokens.sign(&claims)? });
            if let Some(v) = verification {
                body["verification"] = auth_module::flows::verification_json(&v);
            }
            body
        }
        LoginOutcome::MfaRequired {
            identity,
            challenge,
            ..
        } => {
            let claims = tokens
                .claims_for(&identity, actor, provider)
                .actorless(true);
            json!({
                "mfa_required": true,
                "mfa_challenge": challenge,
                "token": tokens.sign(&claims)?,
            })
        }
        _ => return Err(ApiError::unauthorized("Unauthorized")),
    };
    Ok(Json(body).into_response())
}

pub(crate) async fn register(
    State(svc): State<AuthService>,
    Path((actor, provider)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    run_step(svc, Step::Register, actor, provider, req).await
}

pub(crate) async fn login(
    State(svc): State<AuthService>,
    Path((actor, provider)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    run_step(svc, Step::Login, actor, provider, req).await
}

pub(crate) async fn callback(
    State(svc): State<AuthService>,
    Path((actor, provider)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    run_step(svc, Step::Callback, actor, provider, req).await
}

/// `POST /auth/token/refresh`: a new token re-read from the store.
pub(crate) async fn refresh(
    State(svc): State<AuthService>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (ctx, current) = svc
        .authenticate_current(
            &headers,
            &AuthPolicy::any_actor()
                .allow_unregistered(true)
                .mfa_gate(false),
        )
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let provider = ctx.auth_provider.ok_or_else(|| {
        ApiError::unauthorized("The auth provider is not set while refreshing token")
    })?;
    let (identity, _) = current.ok_or(ApiError::Unauthorized)?;
    if ctx.actor_id.is_empty() {
        // An actorless token re-runs the login's steps (a new challenge each
        // time); once none remain it becomes a token with the current link.
        let outcome = svc
            .module()
            .login_steps(identity, &ctx.actor_type, &provider, false)
            .await?;
        return token_answer(&svc, outcome, &ctx.actor_type, &provider);
    }
    // A linked token keeps its MFA claims.
    let mut claims = svc
        .tokens()
        .claims_for(&identity, &ctx.actor_type, &provider);
    claims.mfa_enabled = ctx.claims.mfa_enabled;
    claims.mfa_challenge_completed_at = ctx.claims.mfa_challenge_completed_at.clone();
    let token = svc.tokens().sign(&claims)?;
    Ok(Json(json!({ "token": token })).into_response())
}

/// `GET /auth/{actor}/providers`.
pub(crate) async fn list_providers(
    State(svc): State<AuthService>,
    Path(actor): Path<String>,
) -> Result<Json<Value>, ApiError> {
    svc.module().check_actor_type(&actor)?;
    let providers: Vec<Value> = svc
        .module()
        .providers_for_actor(&actor)
        .into_iter()
        .map(|p| {
            json!({
                "id": p.id,
                "identifier": p.identifier,
                "display_name": p.display_name,
                "flow": p.flow.as_str(),
            })
        })
        .collect();
    Ok(Json(json!({ "providers": providers })))
}

/// `GET /ready`: 200 when the identity and state stores answer, else 503
/// `{"type":"unexpected_state","message":"Service unavailable"}`.
pub(crate) async fn ready(State(svc): State<AuthService>) -> Result<Json<Value>, ApiError> {
    svc.module()
        .check_ready()
        .await
        .map_err(crate::context::store_down)?;
    Ok(Json(json!({ "status": "ready" })))
}

/// `GET /.well-known/jwks.json`: the public keys tokens verify under, with
/// their `kid`s (`{"keys": []}` under HS256). Cacheable for five minutes.
pub(crate) async fn jwks(State(svc): State<AuthService>) -> Response {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(svc.tokens().jwks()),
    )
        .into_response()
}

/// `GET /health`.
pub(crate) async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("Route not found")
}

pub(crate) async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({ "type": "not_allowed", "message": "Method not allowed" })),
    )
        .into_response()
}
