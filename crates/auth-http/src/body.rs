//! Request bodies as Medusa reads them: JSON objects or form fields; any other
//! content type is ignored (an empty body).

use auth_module::Metadata;
use axum::body::Body;
use axum::http::{HeaderMap, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::Value;

use crate::error::ApiError;

enum Kind {
    Json,
    Form,
    Other,
}

fn kind(headers: &HeaderMap) -> Kind {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return Kind::Other;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        Kind::Json
    } else if essence == "application/x-www-form-urlencoded" {
        Kind::Form
    } else {
        Kind::Other
    }
}

/// Whether `e`, or any error it wraps, is a body length limit being reached
/// (ours, or one a layer underneath put on the body).
fn is_length_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if e.is::<LengthLimitError>() {
            return true;
        }
        next = e.source();
    }
    false
}

/// Reads at most `limit` bytes (413 beyond) and parses them per the content
/// type.
pub(crate) async fn read_object(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Metadata, ApiError> {
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if is_length_limit(e.as_ref()) => return Err(ApiError::TooLarge),
        Err(e) => {
            tracing::debug!(error = %e, "could not read the request body");
            return Err(ApiError::invalid_data("Could not read the request body"));
        }
    };
    match kind(headers) {
        Kind::Other => Ok(Metadata::new()),
        Kind::Json => {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(Metadata::new());
            }
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(m)) => Ok(m),
                Ok(other) => Err(ApiError::invalid_data(format!(
                    "Invalid request body: expected a JSON object, got {}",
                    type_name(&other)
                ))),
                Err(e) => Err(ApiError::invalid_data(format!(
                    "Invalid JSON in request body: {e}"
                ))),
            }
        }
        Kind::Form => Ok(parse_pairs(&bytes)),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `a=1&b=2` into string fields (the last of repeated keys wins); malformed
/// input gives what could be read.
pub(crate) fn parse_pairs(bytes: &[u8]) -> Metadata {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes).unwrap_or_default();
    pairs
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect()
}

/// The query string's parameters.
pub(crate) fn query_of(uri: &axum::http::Uri) -> Metadata {
    uri.query()
        .map(|q| parse_pairs(q.as_bytes()))
        .unwrap_or_default()
}

/// What a field of a strictly validated body must be.
#[derive(Clone, Copy)]
pub(crate) enum Expect {
    String,
    Object,
    /// An integer within bounds.
    Integer {
        min: i64,
        max: i64,
    },
}

/// One field of a strictly validated body: `(name, what, required)`.
pub(crate) type Field = (&'static str, Expect, bool);

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

/// A JSON number that is a whole number, as a float (`None` otherwise).
fn integer(value: &Value) -> Option<f64> {
    value.as_f64().filter(|f| f.fract() == 0.0)
}

/// The integer field `name` of a body [`check_fields`] passed, if present.
pub(crate) fn integer_field(body: &Metadata, name: &str) -> Option<i64> {
    body.get(name).and_then(integer).map(|f| f as i64)
}

/// The string field `name` of a body, if present and a string.
pub(crate) fn text_field<'a>(body: &'a Metadata, name: &str) -> Option<&'a str> {
    body.get(name).and_then(Value::as_str)
}

/// Validates `body` strictly against `fields` with Medusa's messages: a
/// missing required field, a wrong type, an integer out of bounds, and
/// unrecognized fields, at most three issues joined by `; ` after
/// `Invalid request: `.
pub(crate) fn check_fields(body: &Metadata, fields: &[Field]) -> Result<(), ApiError> {
    let mut issues = Vec::new();
    for &(name, expect, required) in fields {
        let Some(value) = body.get(name) else {
            if required {
                issues.push(format!("Field '{name}' is required"));
            }
            continue;
        };
        let wanted = match expect {
            Expect::String => "string",
            Expect::Object => "object",
            Expect::Integer { .. } => "number",
        };
        if received(value) != wanted {
            issues.push(format!(
                "Expected type: '{wanted}' for field '{name}', got: '{}'",
                received(value)
            ));
            continue;
        }
        if let Expect::Integer { min, max } = expect {
            // `1.0` is the integer 1, as JavaScript numbers are.
            match integer(value) {
                None => issues.push(format!(
                    "Expected type: 'integer' for field '{name}', got: 'float'"
                )),
                Some(n) if n < min as f64 => issues.push(format!(
                    "Value for field '{name}' too small, expected at least: '{min}'"
                )),
                Some(n) if n > max as f64 => issues.push(format!(
                    "Value for field '{name}' too big, expected at most: '{max}'"
                )),
                Some(_) => {}
            }
        }
    }
    let unknown: Vec<&str> = body
        .keys()
        .map(String::as_str)
        .filter(|k| !fields.iter().any(|(name, ..)| name == k))
        .collect();
    if !unknown.is_empty() {
        issues.push(format!("Unrecognized fields: '{}'", unknown.join(", ")));
    }
    if issues.is_empty() {
        return Ok(());
    }
    issues.truncate(3);
    Err(ApiError::invalid_data(format!(
        "Invalid request: {}",
        issues.join("; ")
    )))
}
