//! The storefront's pages: plain HTML, one stylesheet and small ES modules,
//! embedded in the binary (no build step, nothing from elsewhere).
//!
//! - `GET /`: sign in, sign up, social login, passkeys, the MFA and
//!   verification steps, and the password reset request;
//! - `GET /account`: the customer, sign-in methods, MFA (with a QR code),
//!   passkeys and devices;
//! - `GET /reset`: completes a password reset (the token in the fragment or
//!   the query: `/reset#token=…`);
//! - `GET /callback/{provider}`: a redirect provider's callback page;
//! - `GET /assets/{file}`: the stylesheet, the scripts and the icon;
//! - `GET /storefront/config`: `{"publishable_key", "actor_type"}` for the
//!   scripts (the publishable key is public by design);
//! - `POST /storefront/qr`: `{"text"}` (at most [`QR_MAX_TEXT`] bytes) as a
//!   QR code in SVG, for the MFA enrolment.
//!
//! Every answer carries a strict Content-Security-Policy (no inline script
//! or style: the pages have none), `X-Content-Type-Options: nosniff` and
//! `Referrer-Policy: no-referrer` (a reset link's token never leaves in a
//! `Referer`); HTML and JSON are `Cache-Control: no-store`.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header::{self, HeaderValue};
use axum::http::{Response, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::{Value, json};

/// The Content-Security-Policy of every page answer.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     base-uri 'none'; frame-ancestors 'none'";

/// The longest text `POST /storefront/qr` encodes, in bytes.
pub const QR_MAX_TEXT: usize = 512;

const HTML: &str = "text/html; charset=utf-8";

const SIGN_IN: &str = include_str!("../assets/index.html");
const ACCOUNT: &str = include_str!("../assets/account.html");
const RESET: &str = include_str!("../assets/reset.html");
const CALLBACK: &str = include_str!("../assets/callback.html");

/// `/assets/{file}`: name, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/style.css"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/api.js"),
    ),
    (
        "webauthn.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/webauthn.js"),
    ),
    (
        "login.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/login.js"),
    ),
    (
        "signin.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/signin.js"),
    ),
    (
        "account.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/account.js"),
    ),
    (
        "reset.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/reset.js"),
    ),
    (
        "callback.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/callback.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../assets/favicon.svg"),
    ),
];

/// The page routes; `publishable_key` is handed to the scripts by
/// `/storefront/config`.
pub fn routes(publishable_key: String) -> Router {
    Router::new()
        .route("/", get(|| async { page(SIGN_IN) }))
        .route("/account", get(|| async { page(ACCOUNT) }))
        .route("/reset", get(|| async { page(RESET) }))
        .route("/callback/{provider}", get(|| async { page(CALLBACK) }))
        .route("/assets/{file}", get(asset))
        .route("/storefront/config", get(config))
        .route("/storefront/qr", post(qr))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(publishable_key)
}

fn page(html: &'static str) -> Response<Body> {
    (
        [
            (header::CONTENT_TYPE, HTML),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

async fn asset(Path(file): Path<String>) -> Response<Body> {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                // Served from the binary: revalidate, so a new build shows.
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CACHE_CONTROL, "no-store")],
            axum::Json(json!({ "type": "not_found", "message": "Asset not found" })),
        )
            .into_response(),
    }
}

async fn config(State(publishable_key): State<String>) -> Response<Body> {
    (
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(json!({ "publishable_key": publishable_key, "actor_type": "customer" })),
    )
        .into_response()
}

fn invalid(message: &str) -> Response<Body> {
    (
        StatusCode::BAD_REQUEST,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(json!({ "type": "invalid_data", "message": message })),
    )
        .into_response()
}

/// `POST /storefront/qr` `{"text"}`: the text as a QR code, in SVG.
async fn qr(body: Bytes) -> Response<Body> {
    let Some(body) = serde_json::from_slice::<Value>(&body)
        .ok()
        .filter(Value::is_object)
    else {
        return invalid("Invalid request: expected a JSON object");
    };
    let Some(text) = body.get("text").and_then(Value::as_str) else {
        return invalid("Invalid request: Field 'text' is required");
    };
    if text.is_empty() {
        return invalid("Invalid request: Field 'text' must not be empty");
    }
    if text.len() > QR_MAX_TEXT {
        return invalid(&format!(
            "Invalid request: Field 'text' must be at most {QR_MAX_TEXT} bytes"
        ));
    }
    let Ok(code) = qrcode::QrCode::new(text.as_bytes()) else {
        return invalid("Invalid request: Field 'text' does not fit in a QR code");
    };
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        svg,
    )
        .into_response()
}

/// The headers every page answer carries.
async fn security_headers(mut response: Response<Body>) -> Response<Body> {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
