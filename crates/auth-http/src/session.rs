//! Server-side sessions over HTTP: the cookie, `POST /auth/session` and
//! `DELETE /auth/session`, over the core's [`auth_module::flows::Sessions`].

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::AuthService;
use crate::error::ApiError;

/// The value of cookie `name` in `headers` (the first, as sent), if not empty.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(::cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .and_then(|c| c.value_raw())
        .filter(|v| !v.is_empty())
}

impl AuthService {
    /// The session id the request's cookie carries, if any.
    pub(crate) fn session_id<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        cookie(headers, &self.settings().session_cookie_name)
    }

    /// A `Set-Cookie` value for the session cookie: `sid` for the session TTL,
    /// or, with `None`, one that clears it.
    pub(crate) fn session_cookie(&self, sid: Option<&str>) -> String {
        let s = self.settings();
        let secure = if s.session_cookie_secure {
            "; Secure"
        } else {
            ""
        };
        match sid {
            Some(sid) => format!(
                "{}={sid}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
                s.session_cookie_name,
                s.session_ttl.as_secs()
            ),
            None => format!(
                "{}=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax{secure}",
                s.session_cookie_name
            ),
        }
    }
}

/// `POST /auth/session`: bearer only; stores the token's claims server-side
/// (the gate: [`auth_module::gate::Gate::create_session`]).
pub(crate) async fn create_session(
    State(svc): State<AuthService>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // Bearer only, current, and a credential that may hold a session.
    let (sid, claims) = svc
        .gate()
        .create_session(&svc.presented(&headers))
        .await
        .map_err(crate::context::refused)?;
    let value = serde_json::to_value(&claims).map_err(|_| ApiError::Internal)?;
    Ok(with_cookie(
        Json(json!({ "user": value })).into_response(),
        &svc.session_cookie(Some(&sid)),
    ))
}

/// `DELETE /auth/session`: ends the session the cookie names. Without a live
/// one (no cookie, garbage, expired, ended, or a bearer token only) it is 401
/// `{"message":"Unauthorized"}`, as on Medusa 2.21.2, whose JS SDK expects it.
pub(crate) async fn delete_session(
    State(svc): State<AuthService>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some(sid) = svc.session_id(&headers) else {
        return Err(ApiError::Unauthorized);
    };
    if !svc.sessions().end(sid).await? {
        return Err(ApiError::Unauthorized);
    }
    Ok(with_cookie(
        Json(json!({ "success": true })).into_response(),
        &svc.session_cookie(None),
    ))
}

fn with_cookie(mut res: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name_across_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(cookie(&h, "sid"), None);
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; junk;  sid=x1 ; b=2"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("sid=x2; q=\"v\""));
        assert_eq!(cookie(&h, "sid"), Some("x1"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "q"), Some("\"v\""));
        assert_eq!(cookie(&h, "junk"), None);
        assert_eq!(cookie(&h, "SID"), None);
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("sid=; other=1"));
        assert_eq!(cookie(&h, "sid"), None);
    }
}
