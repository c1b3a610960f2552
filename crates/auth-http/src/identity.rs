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

/// `GET /auth/identity`: `{"auth_identity"}`, read from the store.
pub(crate) async fn read(
    State(svc): State<AuthService>,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let grant = svc.authorize(req.headers(), Action::ReadIdentity).await?;
    // Read again, whole: a page asks this right after linking a method.
    let identity = svc
        .module()
        .retrieve_auth_identity(&grant.identity.id)
        .await?;
    Ok(Json(json!({ "auth_identity": identity.redacted() })))
}
