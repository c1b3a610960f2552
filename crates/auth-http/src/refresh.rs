//! Token refresh over HTTP: `POST /auth/token/refresh`.

use axum::extract::{Request, State};
use axum::response::Response;

use crate::AuthService;
use crate::error::ApiError;
use crate::login::answer_response;

/// `POST /auth/token/refresh`: a new token re-read from the store (the
/// gate decides what it is: [`auth_module::gate::Gate::refresh`]).
pub(crate) async fn refresh(
    State(svc): State<AuthService>,
    // The request, not a `HeaderMap` (which would copy every header).
    req: Request,
) -> Result<Response, ApiError> {
    let answer = svc
        .gate()
        .refresh(&svc.presented(req.headers()))
        .await
        .map_err(crate::context::refused)?;
    answer_response(answer)
}
