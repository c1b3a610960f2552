//! An identity's passkeys over HTTP (full token or session):
//! `GET /auth/passkeys`, `PATCH /auth/passkeys/{id}` `{"name"}`,
//! `DELETE /auth/passkeys/{id}`.

use auth_module::accounts::{list_passkeys, passkey_json, remove_passkey, rename_passkey};
use auth_module::gate::Action;
use axum::Json;
use axum::extract::{Request, State};
use serde_json::{Value, json};

use crate::AuthService;
use crate::body::{Expect, text_field};
use crate::context::caller_and_body;
use crate::error::ApiError;
use crate::extract::Path;

/// `GET /auth/passkeys`: `{"passkeys": [...]}`, oldest first.
pub(crate) async fn list(
    State(svc): State<AuthService>,
    headers: axum::http::HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let grant = svc.authorize(&headers, Action::ManagePasskeys).await?;
    let passkeys = list_passkeys(svc.module(), &grant.identity).await?;
    let passkeys: Vec<Value> = passkeys.iter().map(passkey_json).collect();
    Ok(Json(json!({ "passkeys": passkeys })))
}

/// `PATCH /auth/passkeys/{id}` `{"name"}`: `{"passkey"}`.
pub(crate) async fn rename(
    State(svc): State<AuthService>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let (grant, body) = caller_and_body(
        &svc,
        req,
        Action::ManagePasskeys,
        &[("name", Expect::String, true)],
    )
    .await?;
    let name = text_field(&body, "name").unwrap_or_default();
    let passkey = rename_passkey(svc.module(), &grant.identity, &id, name).await?;
    Ok(Json(json!({ "passkey": passkey_json(&passkey) })))
}

/// `DELETE /auth/passkeys/{id}`: `{"id", "object": "passkey", "deleted": true}`.
pub(crate) async fn remove(
    State(svc): State<AuthService>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let grant = svc.authorize(&headers, Action::ManagePasskeys).await?;
    remove_passkey(svc.module(), &grant.identity, &id).await?;
    Ok(Json(
        json!({ "id": id, "object": "passkey", "deleted": true }),
    ))
}
