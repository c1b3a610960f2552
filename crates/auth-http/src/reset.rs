//! Password reset over HTTP: `POST /auth/{actor}/{provider}/reset-password`
//! and `POST /auth/{actor}/{provider}/update` parse, call the core's
//! [`auth_module::accounts::PasswordReset`] and answer.

use auth_module::Metadata;
use auth_module::accounts::{ResetOutcome, UpdateAttempt};
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::AuthService;
use crate::body::{Expect, check_fields, query_of, read_object};
use crate::context::bearer_token;
use crate::error::ApiError;
use crate::extract::Path;

/// The largest `metadata` a reset request may carry, as JSON (4 KiB).
const MAX_RESET_METADATA_BYTES: usize = 4096;

/// Validates `{identifier: string, metadata?: object}` strictly, with Medusa's
/// messages (at most three issues, joined by `; `).
fn validate_reset_body(body: &Metadata) -> Result<(String, Option<Metadata>), ApiError> {
    check_fields(
        body,
        &[
            ("identifier", Expect::String, true),
            ("metadata", Expect::Object, false),
        ],
    )?;
    let identifier = body
        .get("identifier")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let metadata = body.get("metadata").and_then(Value::as_object).cloned();
    // The metadata travels to every event sink: keep it small.
    let size = metadata
        .as_ref()
        .map_or(0, |m| serde_json::to_vec(m).map_or(usize::MAX, |v| v.len()));
    if size > MAX_RESET_METADATA_BYTES {
        return Err(ApiError::invalid_data(format!(
            "Invalid request: Field 'metadata' must be at most {MAX_RESET_METADATA_BYTES} bytes of JSON"
        )));
    }
    Ok((identifier, metadata))
}

/// `POST /auth/{actor}/{provider}/reset-password`: always 201 `Created`.
pub(crate) async fn reset_password(
    State(svc): State<AuthService>,
    Path((actor, provider)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    // Refusals that depend on configuration only, never on the identity.
    svc.module().check_actor_type(&actor)?;
    svc.module().check_actor_allowed(&actor, &provider)?;
    let (parts, body) = req.into_parts();
    let body = read_object(&parts.headers, body, svc.settings().body_limit).await?;
    let (identifier, metadata) = validate_reset_body(&body)?;
    svc.resets()
        .request(
            &actor,
            &provider,
            &identifier,
            metadata,
            svc.client_addr(&parts),
        )
        .await;
    Ok((
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Created",
    )
        .into_response())
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
    svc.module().check_actor_type(&actor)?;
    svc.module().check_actor_allowed(&actor, &provider)?;
    let (parts, body) = req.into_parts();
    let client = svc.client_addr(&parts);
    // A token shown on another route is refused and stays usable; one in the
    // query is refused outright.
    let token = bearer_token(&parts.headers)
        .filter(|_| !query_of(&parts.uri).contains_key("token"))
        .unwrap_or_default();
    // The core takes the update slot, then checks the token.
    let attempt = svc.resets().begin(&actor, &provider, token, client).await?;
    if let UpdateAttempt::Throttled { retry_after } = attempt {
        return Err(ApiError::TooManyAttempts(retry_after));
    }
    // The body is read before any other answer, so a client still sending
    // it (even byte by byte) gets the answer instead of a closed connection.
    let body = read_object(&parts.headers, body, svc.settings().body_limit).await;
    let outcome = match attempt {
        UpdateAttempt::Ready(pending) => svc.resets().finish(pending, body?).await?,
        _ => ResetOutcome::InvalidToken,
    };
    match outcome {
        ResetOutcome::Done => Ok(Json(json!({ "success": true })).into_response()),
        ResetOutcome::InvalidToken => Err(invalid_token()),
        ResetOutcome::Failed { message } => Err(ApiError::unauthorized(message)),
        ResetOutcome::Throttled { retry_after } => Err(ApiError::TooManyAttempts(retry_after)),
        _ => Err(ApiError::unauthorized("Unauthorized")),
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
        let big = "x".repeat(MAX_RESET_METADATA_BYTES);
        assert_eq!(
            message(validate_reset_body(&obj(
                json!({"identifier": "a@b.c", "metadata": {"k": big}})
            ))),
            "Invalid request: Field 'metadata' must be at most 4096 bytes of JSON"
        );
        let (id, meta) =
            validate_reset_body(&obj(json!({"identifier": "a@b.c", "metadata": {"k": 1}})))
                .unwrap();
        assert_eq!(id, "a@b.c");
        assert_eq!(meta, Some(obj(json!({"k": 1}))));
    }
}
