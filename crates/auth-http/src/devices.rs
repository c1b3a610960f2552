//! An identity's devices over HTTP (full token or session):
//! `GET /auth/devices`, `DELETE /auth/devices/{id}`,
//! `DELETE /auth/devices?other=true`; and `POST /auth/token/revoke`
//! (bearer), which ends the token's own device.

use auth_module::Error;
use auth_module::flows::device_json;
use auth_module::gate::Action;
use axum::Json;
use axum::extract::{Request, State};
use serde_json::{Value, json};

use crate::AuthService;
use crate::body::query_of;
use crate::error::ApiError;
use crate::extract::Path;

fn device_not_found(id: &str) -> Error {
    Error::not_found(format!("Device with id: {id} was not found"))
}

/// `GET /auth/devices`: `{"devices": [...]}`, oldest first, the caller's
/// own marked `"current": true`.
pub(crate) async fn list(
    State(svc): State<AuthService>,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let grant = svc.authorize(req.headers(), Action::ManageDevices).await?;
    let current = grant.claims.device_id.as_deref();
    let devices = svc.gate().devices().list(&grant.identity.id).await?;
    let devices: Vec<Value> = devices
        .iter()
        .map(|d| device_json(d, Some(d.id.as_str()) == current))
        .collect();
    Ok(Json(json!({ "devices": devices })))
}

/// `DELETE /auth/devices/{id}`: `{"id", "object": "device", "deleted": true}`;
/// its session and every token issued to it are refused from now on.
pub(crate) async fn end(
    State(svc): State<AuthService>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let grant = svc.authorize(req.headers(), Action::ManageDevices).await?;
    let ended = svc
        .gate()
        .end_devices(&grant.identity.id, std::slice::from_ref(&id))
        .await?;
    if ended.is_empty() {
        return Err(device_not_found(&id).into());
    }
    Ok(Json(
        json!({ "id": id, "object": "device", "deleted": true }),
    ))
}

/// `DELETE /auth/devices?other=true`: ends every device but the caller's;
/// `{"object": "device", "deleted": [ids]}`.
pub(crate) async fn end_others(
    State(svc): State<AuthService>,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let grant = svc.authorize(req.headers(), Action::ManageDevices).await?;
    let query = query_of(req.uri());
    let other = query.get("other").and_then(Value::as_str);
    if other != Some("true") {
        return Err(Error::invalid_data(
            "Ending every device at once is not supported: pass other=true to end every device \
             but this one, or DELETE /auth/devices/{id}",
        )
        .into());
    }
    let current = grant.claims.device_id.as_deref();
    let others: Vec<String> = svc
        .gate()
        .devices()
        .list(&grant.identity.id)
        .await?
        .into_iter()
        .filter(|d| Some(d.id.as_str()) != current)
        .map(|d| d.id)
        .collect();
    let ended = svc.gate().end_devices(&grant.identity.id, &others).await?;
    Ok(Json(json!({ "object": "device", "deleted": ended })))
}

/// `POST /auth/token/revoke` (bearer): ends the device of the token, so it
/// and every token and session of that device are refused at once, on every
/// replica. `{"success": true}`.
pub(crate) async fn revoke(
    State(svc): State<AuthService>,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    svc.gate()
        .revoke_token(&svc.presented(req.headers()))
        .await
        .map_err(crate::context::refused)?;
    Ok(Json(json!({ "success": true })))
}
