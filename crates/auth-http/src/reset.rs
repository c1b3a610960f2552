//! Password reset: `POST /auth/{actor}/{provider}/reset-password` issues a
//! single-use reset token through the `auth.password_reset` event, and
//! `POST /auth/{actor}/{provider}/update` redeems it.
//!
//! The server keeps only a SHA-256 of each token's `jti`, in the state store
//! (so any replica can redeem it): `reset:{hash}` holds the token's target, and
//! `reset-latest:{provider}:{entity_id}` names the newest token, so a newer
//! request cancels older tokens. Redeeming `take`s the entry atomically.

use std::time::Duration;

use auth_module::{AuthRequest, LoginOutcome, Metadata};
use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::AuthService;
use crate::body::{query_of, read_object};
use crate::context::bearer_token;
use crate::error::ApiError;
use crate::events::Event;
use crate::token::{RESET_TOKEN_TTL, ResetClaims};

/// The name of the event that carries reset tokens.
pub const PASSWORD_RESET_EVENT: &str = "auth.password_reset";

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn token_key(hash: &str) -> String {
    format!("reset:{hash}")
}

fn latest_key(provider: &str, entity_id: &str) -> String {
    format!("reset-latest:{provider}:{entity_id}")
}

/// zod's name for a JSON value's type, as Medusa's validator reports it.
fn received(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Validates `{identifier: string, metadata?: object}` strictly, with Medusa's
/// messages (at most three issues, joined by `; `).
fn validate_reset_body(body: &Metadata) -> Result<(String, Option<Metadata>), ApiError> {
    let mut issues = Vec::new();
    let identifier = match body.get("identifier") {
        None => {
            issues.push("Field 'identifier' is required".to_owned());
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            issues.push(format!(
                "Expected type: 'string' for field 'identifier', got: '{}'",
                received(other)
            ));
            None
        }
    };
    let metadata = match body.get("metadata") {
        None => None,
        Some(Value::Object(m)) => Some(m.clone()),
        Some(other) => {
            issues.push(format!(
                "Expected type: 'object' for field 'metadata', got: '{}'",
                received(other)
            ));
            None
        }
    };
    let unknown: Vec<&str> = body
        .keys()
        .map(String::as_str)
        .filter(|k| *k != "identifier" && *k != "metadata")
        .collect();
    if !unknown.is_empty() {
        issues.push(format!("Unrecognized fields: '{}'", unknown.join(", ")));
    }
    match identifier {
        Some(id) if issues.is_empty() => Ok((id, metadata)),
        _ => {
            issues.truncate(3);
            Err(ApiError::invalid_data(format!(
                "Invalid request: {}",
                issues.join("; ")
            )))
        }
    }
}

/// `POST /auth/{actor}/{provider}/reset-password`: always 201 `Created`.
pub(crate) async fn reset_password(
    State(svc): State<AuthService>,
    Path((actor, provider)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let body = read_object(&parts.headers, body, svc.settings().body_limit).await?;
    let (identifier, metadata) = validate_reset_body(&body)?;
    svc.request_password_reset(&actor, &provider, &identifier, metadata)
        .await;
    Ok((
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Created",
    )
        .into_response())
}

impl AuthService {
    /// Issues a reset token for `identifier` at `provider` if such an identity
    /// exists, and emits `auth.password_reset` with it. Unknown identifiers and
    /// providers do the same signing work and emit nothing, so the caller
    /// cannot tell them apart; store failures are logged, never reported.
    pub async fn request_password_reset(
        &self,
        actor_type: &str,
        provider: &str,
        identifier: &str,
        metadata: Option<Metadata>,
    ) {
        let entity_id = self
            .module()
            .normalize_entity_id(provider, identifier)
            .unwrap_or_else(|| identifier.to_owned());
        let (token, jti) = self.tokens().issue_reset(&entity_id, provider, actor_type);
        let hash = sha256_hex(&jti);
        let exists = if self.module().provider_info(provider).is_some() {
            match self
                .module()
                .find_provider_identity(provider, &entity_id)
                .await
            {
                Ok(found) => found.is_some(),
                Err(e) => {
                    tracing::error!(error = %e, "reset-password lookup failed");
                    false
                }
            }
        } else {
            false
        };
        let event = Event::new(
            PASSWORD_RESET_EVENT,
            json!({
                "entity_id": entity_id,
                "actor_type": actor_type,
                "token": token,
                "metadata": metadata.map_or(Value::Object(Metadata::new()), Value::Object),
            }),
        );
        if !exists {
            // The same store round trips, keeping nothing, so an unknown
            // identifier does not answer measurably faster than a known one.
            let state = self.module().state_store();
            let _ = state.get(&latest_key(provider, "")).await;
            let _ = state
                .set(&token_key(&hash), Value::Null, RESET_TOKEN_TTL)
                .await;
            let _ = state.delete(&token_key(&hash)).await;
            drop(std::hint::black_box(event));
            return;
        }
        if let Err(e) = self
            .store_reset(provider, &entity_id, actor_type, &hash)
            .await
        {
            tracing::error!(error = %e, "could not store a reset token");
            return;
        }
        self.events().emit(event);
    }

    async fn store_reset(
        &self,
        provider: &str,
        entity_id: &str,
        actor_type: &str,
        hash: &str,
    ) -> auth_module::Result<()> {
        let state = self.module().state_store();
        let latest = latest_key(provider, entity_id);
        if let Some(old) = state.get(&latest).await? {
            if let Some(old) = old.as_str() {
                state.delete(&token_key(old)).await?;
            }
        }
        let target =
            json!({ "entity_id": entity_id, "provider": provider, "actor_type": actor_type });
        state.set(&token_key(hash), target, RESET_TOKEN_TTL).await?;
        state
            .set(&latest, Value::String(hash.to_owned()), RESET_TOKEN_TTL)
            .await
    }
}

fn invalid_token() -> ApiError {
    ApiError::unauthorized("Invalid token")
}

/// `POST /auth/{actor}/{provider}/update`: the reset token in the
/// `Authorization` header only; the identity comes from the token.
pub(crate) async fn update(
    State(svc): State<AuthService>,
    Path((actor, provider)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    if query_of(&parts.uri).contains_key("token") {
        return Err(invalid_token());
    }
    let claims: ResetClaims = bearer_token(&parts.headers)
        .and_then(|t| svc.tokens().verify_reset(t))
        .ok_or_else(invalid_token)?;
    // A token shown on another route is refused and stays usable.
    if claims.provider != provider || claims.actor_type != actor {
        return Err(invalid_token());
    }
    let mut body = read_object(&parts.headers, body, svc.settings().body_limit).await?;
    let hash = sha256_hex(&claims.jti);
    let state = svc.module().state_store();
    let latest = latest_key(&claims.provider, &claims.entity_id);
    let target = state
        .take(&token_key(&hash))
        .await?
        .ok_or_else(invalid_token)?;
    if state.get(&latest).await?.as_ref().and_then(Value::as_str) != Some(hash.as_str()) {
        return Err(invalid_token());
    }
    body.insert("entity_id".into(), Value::String(claims.entity_id.clone()));
    body.insert("email".into(), Value::String(claims.entity_id.clone()));
    let result = svc
        .module()
        .update_provider(
            &provider,
            AuthRequest::with_body(body).actor_type(actor.as_str()),
        )
        .await;
    match result {
        Ok(LoginOutcome::Authenticated { .. }) => {
            let _ = state.delete(&latest).await;
            Ok(Json(json!({ "success": true })).into_response())
        }
        other => {
            // Not redeemed: put the token back for the rest of its life.
            let left = claims.exp - time::OffsetDateTime::now_utc().unix_timestamp();
            if left > 0 {
                let _ = state
                    .set(&token_key(&hash), target, Duration::from_secs(left as u64))
                    .await;
            }
            match other {
                Ok(LoginOutcome::Failed { message, .. }) => Err(ApiError::unauthorized(message)),
                Ok(_) => Err(ApiError::unauthorized("Unauthorized")),
                Err(e) => Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Metadata {
        v.as_object().cloned().unwrap()
    }

    fn message(r: Result<(String, Option<Metadata>), ApiError>) -> String {
        match r {
            Err(ApiError::Typed { message, .. }) => message,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reset_body_messages() {
        assert_eq!(
            message(validate_reset_body(&obj(json!({})))),
            "Invalid request: Field 'identifier' is required"
        );
        assert_eq!(
            message(validate_reset_body(&obj(json!({"identifier": 5})))),
            "Invalid request: Expected type: 'string' for field 'identifier', got: 'number'"
        );
        assert_eq!(
            message(validate_reset_body(&obj(
                json!({"identifier": "a", "b": 1, "a": 2})
            ))),
            "Invalid request: Unrecognized fields: 'a, b'"
        );
        assert_eq!(
            message(validate_reset_body(&obj(
                json!({"identifier": null, "metadata": [], "x": 1})
            ))),
            "Invalid request: Expected type: 'string' for field 'identifier', got: 'null'; Expected type: 'object' for field 'metadata', got: 'array'; Unrecognized fields: 'x'"
        );
        let (id, meta) =
            validate_reset_body(&obj(json!({"identifier": "a@b.c", "metadata": {"k": 1}})))
                .unwrap();
        assert_eq!(id, "a@b.c");
        assert_eq!(meta, Some(obj(json!({"k": 1}))));
    }
}
