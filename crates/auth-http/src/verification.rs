//! Verification over HTTP: `/auth/verification/*` parse strictly, call the
//! core's [`auth_module::flows::Verifications`], and answer.

use auth_module::flows::{VerificationRequest, verification_json};
use auth_module::gate::Action;
use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::AuthService;
use crate::body::{Expect, check_fields, read_object, text_field};
use crate::context::caller_and_body;
use crate::error::ApiError;

/// `POST /auth/verification/request`: a verification step token (or a full
/// credential); 201.
pub(crate) async fn request_verification(
    State(svc): State<AuthService>,
    req: Request,
) -> Result<Response, ApiError> {
    let (grant, body) = caller_and_body(
        &svc,
        req,
        Action::RequestVerification,
        &[
            ("entity_id", Expect::String, true),
            ("entity_type", Expect::String, true),
            ("code_provider", Expect::String, false),
            ("metadata", Expect::Object, false),
        ],
    )
    .await?;
    let entity_id = text_field(&body, "entity_id").unwrap_or_default();
    let entity_type = text_field(&body, "entity_type").unwrap_or_default();
    for (name, value) in [("entity_id", entity_id), ("entity_type", entity_type)] {
        if value.trim().is_empty() || value.len() > 320 {
            return Err(ApiError::invalid_data(format!(
                "Invalid request: Field '{name}' must be 1 to 320 characters"
            )));
        }
    }
    let outcome = svc
        .module()
        .verifications()
        .request(
            &grant.identity.id,
            entity_id,
            entity_type,
            text_field(&body, "code_provider"),
            body.get("metadata").and_then(Value::as_object).cloned(),
        )
        .await?;
    match outcome {
        VerificationRequest::Sent(row) | VerificationRequest::AlreadyVerified(row) => Ok((
            StatusCode::CREATED,
            Json(json!({ "verification": verification_json(&row) })),
        )
            .into_response()),
        VerificationRequest::Throttled { retry_after } => {
            Err(ApiError::TooManyAttempts(retry_after))
        }
        _ => Err(ApiError::Internal),
    }
}

/// `POST /auth/verification/confirm`: no authentication (the code is the
/// proof).
pub(crate) async fn confirm_verification(
    State(svc): State<AuthService>,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let (parts, body) = req.into_parts();
    let body = read_object(&parts.headers, body, svc.settings().body_limit).await?;
    check_fields(
        &body,
        &[
            ("code", Expect::String, true),
            ("code_provider", Expect::String, false),
        ],
    )?;
    let row = svc
        .module()
        .verifications()
        .confirm(
            text_field(&body, "code").unwrap_or_default(),
            text_field(&body, "code_provider"),
        )
        .await?;
    Ok(Json(json!({
        "entity_id": row.entity_id,
        "entity_type": row.entity_type,
        "code_provider": row.code_provider,
        "verified_at": row.verified_at.map(auth_module::flows::iso_millis),
    })))
}
