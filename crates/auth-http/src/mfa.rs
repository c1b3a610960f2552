//! MFA and verification over HTTP: `/auth/mfa/*` and `/auth/verification/*`
//! parse strictly, call the core's [`auth_module::flows::Mfa`] and
//! [`auth_module::flows::Verifications`], and answer.

use auth_module::Metadata;
use auth_module::flows::{VerificationRequest, factor_json, verification_json};
use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::AuthService;
use crate::body::{Expect, check_fields, integer_field, read_object};
use crate::error::ApiError;
use crate::extract::Path;
use auth_module::gate::{Action, Grant};

/// The caller, if the gate lets it do `action`, and its strictly validated
/// body.
async fn caller_and_body(
    svc: &AuthService,
    req: Request,
    action: Action<'_>,
    fields: &[crate::body::Field],
) -> Result<(Grant, Metadata), ApiError> {
    let (parts, body) = req.into_parts();
    let grant = svc.authorize(&parts.headers, action).await?;
    let body = read_object(&parts.headers, body, svc.settings().body_limit).await?;
    check_fields(&body, fields)?;
    Ok((grant, body))
}

fn text<'a>(body: &'a Metadata, name: &str) -> Option<&'a str> {
    body.get(name).and_then(Value::as_str)
}

/// `GET /auth/mfa/factors`.
pub(crate) async fn list_factors(
    State(svc): State<AuthService>,
    headers: axum::http::HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let grant = svc.authorize(&headers, Action::ListFactors).await?;
    let factors = svc.module().mfa().list_factors(&grant.identity.id).await?;
    let factors: Vec<Value> = factors.iter().map(factor_json).collect();
    Ok(Json(json!({ "mfa_factors": factors })))
}

/// `POST /auth/mfa/factors`.
pub(crate) async fn create_factor(
    State(svc): State<AuthService>,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let (grant, body) = caller_and_body(
        &svc,
        req,
        Action::EnrolFactor,
        &[
            ("provider", Expect::String, true),
            ("label", Expect::String, false),
            ("issuer", Expect::String, false),
            ("metadata", Expect::Object, false),
        ],
    )
    .await?;
    let created = svc
        .module()
        .mfa()
        .create_factor(
            &grant.identity.id,
            text(&body, "provider").unwrap_or_default(),
            text(&body, "label"),
            text(&body, "issuer"),
            body.get("metadata").and_then(Value::as_object).cloned(),
        )
        .await?;
    Ok(Json(json!({
        "mfa_factor": factor_json(&created.factor),
        "secret": created.secret,
        "otpauth_url": created.otpauth_url,
    })))
}

/// `POST /auth/mfa/factors/{id}/verify`.
pub(crate) async fn verify_factor(
    State(svc): State<AuthService>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let (grant, body) = caller_and_body(
        &svc,
        req,
        Action::VerifyFactor,
        &[("code", Expect::String, true)],
    )
    .await?;
    let factor = svc
        .module()
        .mfa()
        .verify_factor(
            &grant.identity.id,
            &id,
            text(&body, "code").unwrap_or_default(),
        )
        .await?;
    Ok(Json(json!({ "mfa_factor": factor_json(&factor) })))
}

/// `DELETE /auth/mfa/factors/{id}`.
pub(crate) async fn disable_factor(
    State(svc): State<AuthService>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let (grant, body) = caller_and_body(
        &svc,
        req,
        Action::DisableFactor,
        &[
            ("method", Expect::String, false),
            ("code", Expect::String, false),
        ],
    )
    .await?;
    let factor = svc
        .module()
        .mfa()
        .disable_factor(
            &grant.identity.id,
            &id,
            text(&body, "method"),
            text(&body, "code"),
        )
        .await?;
    Ok(Json(json!({ "mfa_factor": factor_json(&factor) })))
}

/// `POST /auth/mfa/recovery-codes`.
pub(crate) async fn recovery_codes(
    State(svc): State<AuthService>,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let (grant, body) = caller_and_body(
        &svc,
        req,
        Action::RecoveryCodes,
        &[("count", Expect::Integer { min: 1, max: 50 }, false)],
    )
    .await?;
    let count = integer_field(&body, "count").and_then(|n| u32::try_from(n).ok());
    let codes = svc
        .module()
        .mfa()
        .generate_recovery_codes(&grant.identity.id, count)
        .await?;
    Ok(Json(json!({ "recovery_codes": codes })))
}

/// `POST /auth/mfa/challenges/{id}/verify`: how an MFA step token finishes
/// its login. Answers a token for the caller's actor type with its current
/// link and the completed challenge (issued by the gate).
pub(crate) async fn verify_challenge(
    State(svc): State<AuthService>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let (grant, body) = caller_and_body(
        &svc,
        req,
        Action::VerifyChallenge,
        &[
            ("method", Expect::String, true),
            ("code", Expect::String, true),
        ],
    )
    .await?;
    let token = svc
        .gate()
        .complete_challenge(
            &grant,
            &id,
            text(&body, "method").unwrap_or_default(),
            text(&body, "code").unwrap_or_default(),
        )
        .await?;
    Ok(Json(json!({ "token": token })))
}

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
    let entity_id = text(&body, "entity_id").unwrap_or_default();
    let entity_type = text(&body, "entity_type").unwrap_or_default();
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
            text(&body, "code_provider"),
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
            text(&body, "code").unwrap_or_default(),
            text(&body, "code_provider"),
        )
        .await?;
    Ok(Json(json!({
        "entity_id": row.entity_id,
        "entity_type": row.entity_type,
        "code_provider": row.code_provider,
        "verified_at": row.verified_at.map(auth_module::flows::iso_millis),
    })))
}

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
        auth_module::flows::sso_profile(&claims.user_metadata, &grant.identity.id, &provider)?;
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
    let user = auth_module::flows::link_sso_user(module, svc.users().as_ref(), &profile).await?;
    Ok(Json(json!({ "user": user.record })))
}
