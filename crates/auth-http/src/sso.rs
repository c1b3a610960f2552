//! SSO over HTTP: `POST /auth/{provider}/user` creates or links the user of
//! an SSO identity (the core's [`auth_module::accounts::link_sso_user`]).

use auth_module::gate::Action;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::AuthService;
use crate::error::ApiError;
use crate::extract::Path;

/// `POST /auth/{provider}/user`: SSO create-or-link for an admin's first
/// login. Bearer only, actor `user`, unregistered allowed, no step owed.
pub(crate) async fn sso_user(
    State(svc): State<AuthService>,
    Path(provider): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let module = svc.module();
    module.check_actor_allowed("user", &provider)?;
    let grant = svc.authorize(&headers, Action::SsoUser).await?;
    let claims = &grant.claims;
    if !claims.actor_id.is_empty() {
        return Err(ApiError::invalid_data(
            "The user is already registered and cannot create a new account.",
        ));
    }
    let profile =
        auth_module::accounts::sso_profile(&claims.user_metadata, &grant.identity.id, &provider)?;
    // The gate read the identity as stored now.
    let solely = claims.auth_provider.as_deref() == Some(provider.as_str())
        && grant
            .identity
            .provider_identities
            .iter()
            .all(|p| p.provider == provider);
    if !solely {
        return Err(ApiError::unauthorized(format!(
            "Only {provider} identities can create a user account for this authentication context"
        )));
    }
    let user = auth_module::accounts::link_sso_user(module, svc.users().as_ref(), &profile).await?;
    Ok(Json(json!({ "user": user.record })))
}
