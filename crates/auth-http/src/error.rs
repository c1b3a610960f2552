//! Errors as HTTP answers: `{type, message}` with Medusa's status mapping.

use auth_module::{Error, ErrorKind};
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answer of the auth routes.
#[derive(Debug)]
#[non_exhaustive]
pub enum ApiError {
    /// `{"type", "message"}` with a status.
    Typed {
        /// HTTP status.
        status: StatusCode,
        /// The `type` field.
        kind: &'static str,
        /// The `message` field.
        message: String,
    },
    /// The auth middleware's bare `{"message": "Unauthorized"}` (401).
    Unauthorized,
    /// 413 `{"message":"request entity too large","type":"unknown_error"}`.
    TooLarge,
    /// 500 with a generic message; the cause is logged, never sent.
    Internal,
    /// 503 `{"type":"unexpected_state","message": ...}` with `Retry-After: 1`.
    Unavailable(String),
    /// The MFA gate's 401 `{"message": ...}`.
    MfaGate(&'static str),
    /// 429 `{"type":"not_allowed","message":"Too many attempts, try again later"}`
    /// with `Retry-After` (whole seconds).
    TooManyAttempts(std::time::Duration),
}

impl ApiError {
    /// 401 `unauthorized` with `message`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::Typed {
            status: StatusCode::UNAUTHORIZED,
            kind: "unauthorized",
            message: message.into(),
        }
    }

    /// 400 `invalid_data` with `message`.
    pub fn invalid_data(message: impl Into<String>) -> Self {
        ApiError::Typed {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_data",
            message: message.into(),
        }
    }

    /// 404 `not_found` with `message`.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::Typed {
            status: StatusCode::NOT_FOUND,
            kind: "not_found",
            message: message.into(),
        }
    }
}

/// The status Medusa's error handler gives each kind.
pub(crate) fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidData | ErrorKind::NotAllowed => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::DuplicateError => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        if e.kind() == ErrorKind::Unavailable {
            tracing::warn!(error = %e, "busy");
            return ApiError::Unavailable(e.message().to_owned());
        }
        if e.kind().is_internal() {
            tracing::error!(error = %e, source = ?std::error::Error::source(&e).map(ToString::to_string), "internal error");
            return ApiError::Internal;
        }
        let status = status_of(e.kind());
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "unmapped error kind");
            return ApiError::Internal;
        }
        ApiError::Typed {
            status,
            kind: e.kind().as_str(),
            message: e.message().to_owned(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Typed {
                status,
                kind,
                message,
            } => (status, Json(json!({ "type": kind, "message": message }))).into_response(),
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                Json(json!({ "message": "Unauthorized" })),
            )
                .into_response(),
            ApiError::MfaGate(message) => (
                StatusCode::UNAUTHORIZED,
                Json(json!({ "message": message })),
            )
                .into_response(),
            ApiError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                Json(json!({ "message": "request entity too large", "type": "unknown_error" })),
            )
                .into_response(),
            ApiError::Unavailable(message) => (
                StatusCode::SERVICE_UNAVAILABLE,
                [(axum::http::header::RETRY_AFTER, "1".to_owned())],
                Json(json!({ "type": "unexpected_state", "message": message })),
            )
                .into_response(),
            ApiError::TooManyAttempts(retry_after) => (
                StatusCode::TOO_MANY_REQUESTS,
                [(
                    axum::http::header::RETRY_AFTER,
                    retry_after.as_secs().max(1).to_string(),
                )],
                Json(json!({ "type": "not_allowed", "message": "Too many attempts, try again later" })),
            )
                .into_response(),
            ApiError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({ "type": "unknown_error", "message": "An unknown error occurred." })),
            )
                .into_response(),
        }
    }
}
