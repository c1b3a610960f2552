//! MFA over HTTP: `/auth/mfa/*` parse strictly, call the core's
//! [`auth_module::flows::Mfa`] (or the gate, to finish a challenge), and
//! answer.

use auth_module::flows::{MfaAnswer, factor_json};
use auth_module::gate::Action;
use axum::Json;
use axum::extract::{Request, State};
use serde_json::{Value, json};

use crate::AuthService;
use crate::body::Field;
use crate::body::{Expect, integer_field, text_field};
use crate::context::{caller_and_body, caller_and_body_by};
use crate::error::ApiError;
use crate::extract::Path;

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
            text_field(&body, "provider").unwrap_or_default(),
            text_field(&body, "label"),
            text_field(&body, "issuer"),
            body.get("metadata").and_then(Value::as_object).cloned(),
        )
        .await?;
    if let Some(options) = created.options {
        return Ok(Json(json!({
            "mfa_factor": factor_json(&created.factor),
            "options": options,
        })));
    }
    Ok(Json(json!({
        "mfa_factor": factor_json(&created.factor),
        "secret": created.secret,
        "otpauth_url": created.otpauth_url,
    })))
}

/// A factor's verification answers with a `code` (TOTP) or, for a passkey
/// factor, a `credential`.
const BY_CODE: &[Field] = &[("code", Expect::String, true)];
const BY_CREDENTIAL: &[Field] = &[("credential", Expect::Object, true)];

/// The answer in a strictly validated body: its `credential`, else its `code`.
fn answer_of(body: &auth_module::Metadata) -> MfaAnswer<'_> {
    match body.get("credential") {
        Some(credential) => MfaAnswer::Credential(credential),
        None => MfaAnswer::Code(text_field(body, "code").unwrap_or_default()),
    }
}

/// `POST /auth/mfa/factors/{id}/verify`.
pub(crate) async fn verify_factor(
    State(svc): State<AuthService>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let (grant, body) = caller_and_body_by(&svc, req, Action::VerifyFactor, |body| {
        if body.contains_key("credential") {
            BY_CREDENTIAL
        } else {
            BY_CODE
        }
    })
    .await?;
    let factor = svc
        .module()
        .mfa()
        .verify_factor_with(&grant.identity.id, &id, answer_of(&body))
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
            text_field(&body, "method"),
            text_field(&body, "code"),
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
    const CODE: &[Field] = &[
        ("method", Expect::String, true),
        ("code", Expect::String, true),
    ];
    const CREDENTIAL: &[Field] = &[
        ("method", Expect::String, true),
        ("credential", Expect::Object, true),
    ];
    let (grant, body) = caller_and_body_by(&svc, req, Action::VerifyChallenge, |body| {
        if body.contains_key("credential") {
            CREDENTIAL
        } else {
            CODE
        }
    })
    .await?;
    let token = svc
        .gate()
        .complete_challenge_with(
            &grant,
            &id,
            text_field(&body, "method").unwrap_or_default(),
            answer_of(&body),
        )
        .await?;
    Ok(Json(json!({ "token": token })))
}
