//! The routes about the service rather than a caller: the providers list,
//! the JWKS, `/health` and `/ready`, and the JSON 404 and 405 fallbacks.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::AuthService;
use crate::error::ApiError;
use crate::extract::Path;

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
