//! The operator console: a few static pages served at `/admin/` when
//! `[management] console = true`. The browser does everything else through
//! the management API with the key the operator types, held in the tab's
//! memory and sent as `X-Api-Key` (no cookie, so nothing to forge across
//! sites).
//!
//! The assets are compiled into the binary. Every answer carries a
//! `Content-Security-Policy` that allows only this origin's scripts, styles
//! and requests (no inline script or style, no third-party origin, no
//! framing), `X-Content-Type-Options: nosniff` and `Referrer-Policy:
//! no-referrer`.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// The policy of every console answer.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'none'; \
     base-uri 'none'; frame-ancestors 'none'";

/// The console's files: `(name under /admin/assets/, content type, body)`.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("../console/console.css"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/console.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/api.js"),
    ),
    (
        "dom.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/dom.js"),
    ),
    (
        "chart.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/chart.js"),
    ),
];

const INDEX: &str = include_str!("../console/index.html");

fn answer(content_type: &'static str, body: &'static str, cache: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    secure(headers);
    response
}

fn secure(headers: &mut axum::http::HeaderMap) {
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
}

async fn index() -> Response {
    answer("text/html; charset=utf-8", INDEX, "no-store")
}

async fn asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        // The assets change only with the binary; a short cache keeps an
        // upgrade visible within minutes.
        Some((_, content_type, body)) => answer(content_type, body, "public, max-age=300"),
        None => {
            let mut response = (
                StatusCode::NOT_FOUND,
                axum::Json(serde_json::json!({
                    "type": "not_found",
                    "message": "Not found",
                })),
            )
                .into_response();
            secure(response.headers_mut());
            response
        }
    }
}

/// The console's routes: `/admin/` (the page), `/admin` (a redirect to it)
/// and `/admin/assets/{name}`.
pub fn router() -> Router {
    Router::new()
        .route("/admin", get(|| async { Redirect::permanent("/admin/") }))
        .route("/admin/", get(index))
        .route("/admin/assets/{name}", get(asset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_inline_script_or_style() {
        assert!(!INDEX.contains("style="), "inline style in index.html");
        for line in INDEX.lines().filter(|l| l.contains("<script")) {
            assert!(
                line.contains("src=\"/admin/assets/"),
                "inline script: {line}"
            );
        }
        for (name, _, body) in ASSETS {
            assert!(!body.contains("innerHTML"), "{name} writes innerHTML");
            assert!(
                !body.contains("http://") || *name == "chart.js",
                "{name} names an origin"
            );
            assert!(!body.contains("https://"), "{name} names an origin");
        }
    }
}
