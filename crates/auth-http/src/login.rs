//! Login over HTTP: `POST /auth/{actor}/{provider}/register`,
//! `GET|POST /auth/{actor}/{provider}` and its `/callback` build the
//! provider's [`AuthRequest`], run the core's login step and answer.

use std::collections::BTreeMap;

use auth_module::AuthRequest;
use auth_module::gate::{Answer, LoginStep};
use axum::Json;
use axum::extract::{Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::AuthService;
use crate::body::{query_of, read_object};
use crate::error::ApiError;
use crate::extract::Path;

/// Builds the provider's view of the request: path, query, body, headers.
async fn auth_request(
    svc: &AuthService,
    actor: &str,
    parts: &Parts,
    body: axum::body::Body,
) -> Result<AuthRequest, ApiError> {
    let body = read_object(&parts.headers, body, svc.settings().body_limit).await?;
    let query = query_of(&parts.uri);
    let headers: BTreeMap<String, String> = parts
        .headers
        .iter()
        .filter(|(k, _)| *k != header::AUTHORIZATION && *k != header::COOKIE)
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let client = svc.client_addr(parts);
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

pub(crate) async fn run_step(
    svc: AuthService,
    step: LoginStep,
    actor: String,
    provider: String,
    req: Request,
) -> Result<Response, ApiError> {
    svc.module().check_actor_type(&actor)?;
    let (parts, body) = req.into_parts();
    let auth_req = auth_request(&svc, &actor, &parts, body).await?;
    svc.module().check_actor_allowed(&actor, &provider)?;
    let presented = svc.presented(&parts.headers);
    let answer = svc
        .gate()
        .login(step, &provider, auth_req, &presented)
        .await?;
    answer_response(answer)
}

/// The JSON answer of a login step, a refresh or an MFA completion:
/// `{token}`, `{location}`, `{options}`, or the next step with its step token
/// (`verification_required`, then `mfa_required`).
pub(crate) fn answer_response(answer: Answer) -> Result<Response, ApiError> {
    /// `{"token"}`, written without building a JSON map (every refresh and
    /// login answers it).
    #[derive(serde::Serialize)]
    struct TokenBody {
        token: String,
    }
    let body = match answer {
        Answer::Token { token } => return Ok(Json(TokenBody { token }).into_response()),
        Answer::Redirect { location } => json!({ "location": location }),
        Answer::Options { options } => json!({ "options": options }),
        Answer::VerificationRequired {
            token,
            verification,
        } => {
            let mut body = json!({ "verification_required": true, "token": token });
            if let Some(v) = verification {
                body["verification"] = auth_module::flows::verification_json(&v);
            }
            body
        }
        Answer::MfaRequired { token, challenge } => json!({
            "mfa_required": true,
            "mfa_challenge": challenge,
            "token": token,
        }),
        Answer::Failed { message } => return Err(ApiError::unauthorized(message)),
        Answer::Throttled { retry_after } => return Err(ApiError::TooManyAttempts(retry_after)),
        _ => return Err(ApiError::unauthorized("Unauthorized")),
    };
    Ok(Json(body).into_response())
}

pub(crate) async fn register(
    State(svc): State<AuthService>,
    Path((actor, provider)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    run_step(svc, LoginStep::Register, actor, provider, req).await
}

pub(crate) async fn login(
    State(svc): State<AuthService>,
    Path((actor, provider)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    run_step(svc, LoginStep::Authenticate, actor, provider, req).await
}

pub(crate) async fn callback(
    State(svc): State<AuthService>,
    Path((actor, provider)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    run_step(svc, LoginStep::Callback, actor, provider, req).await
}
