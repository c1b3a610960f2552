//! `GET /auth/identity` (full token or session): the caller's own auth
//! identity, `{"auth_identity"}`, as the management API answers it (never
//! `provider_metadata`): its sign-in methods (`provider_identities`), actor
//! links and `app_metadata`, which its tokens carry anyway. An account page
//! lists how its user can sign in from it.

use auth_module::gate::Action;
use axum::Json;
use axum::extract::{Request, State};
use serde_json::{Value, json};

use crate::AuthService;
use crate::error::ApiError;

/// `GET /auth/identity`: `{"auth_identity"}`, the identity the gate read
/// to admit the caller (current, as for every route).
pub(crate) async fn read(
    State(svc): State<AuthService>,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let grant = svc.authorize(req.headers(), Action::ReadIdentity).await?;
    let identity = std::sync::Arc::unwrap_or_clone(grant.identity).redacted();
    Ok(Json(json!({ "auth_identity": identity })))
}
