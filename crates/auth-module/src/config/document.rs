//! [`ConfigDocument`]: the parsed file, `${NAME}` replaced, from which each
//! crate takes its own sections; and [`Secret`].

use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::ConfigError;

/// A secret string: never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps `s`.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// A new random secret: 32 bytes from the operating system, as 64 hex
    /// characters.
    pub fn generate() -> Self {
        Secret(crate::random::token_hex(32))
    }

    /// The secret value. Call only where it is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The file formats the loader reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// TOML.
    Toml,
    /// JSON.
    Json,
}

/// A parsed configuration file, `${NAME}` already replaced, from which each
/// crate takes its own sections.
#[derive(Debug, Clone)]
pub struct ConfigDocument {
    root: Map<String, Value>,
    /// `config file PATH` when read from a file, for error messages.
    origin: Option<String>,
}

impl ConfigDocument {
    /// Reads `path` (`.json` is JSON, anything else TOML) and interpolates
    /// environment variables.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(format!("cannot read config file {}: {e}", path.display()))
        })?;
        let format = match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("json") => Format::Json,
            _ => Format::Toml,
        };
        let origin = format!("config file {}", path.display());
        let mut doc = Self::parse(&text, format)
            .map_err(|e| ConfigError::new(format!("{origin}: {}", e.message())))?;
        doc.origin = Some(origin);
        Ok(doc)
    }

    /// Parses TOML text.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        Self::parse(text, Format::Toml)
    }

    /// Parses JSON text.
    pub fn from_json_str(text: &str) -> Result<Self, ConfigError> {
        Self::parse(text, Format::Json)
    }

    /// Parses `text` in `format` with the process environment.
    pub fn parse(text: &str, format: Format) -> Result<Self, ConfigError> {
        Self::parse_with_env(text, format, &|name| std::env::var(name).ok())
    }

    /// Parses `text` in `format`, looking variables up with `env`.
    pub fn parse_with_env(
        text: &str,
        format: Format,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut value = match format {
            Format::Toml => {
                let v: toml::Value = toml::from_str(text).map_err(|e| {
                    let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
                    ConfigError::new(format!(
                        "malformed TOML at line {line}, column {col}: {}",
                        e.message().trim()
                    ))
                })?;
                serde_json::to_value(v)
                    .map_err(|e| ConfigError::new(format!("unsupported TOML value: {e}")))?
            }
            Format::Json => serde_json::from_str::<Value>(text).map_err(|e| {
                ConfigError::new(format!(
                    "malformed JSON at line {}, column {}: {}",
                    e.line(),
                    e.column(),
                    strip_position(&e.to_string())
                ))
            })?,
        };
        interpolate(&mut value, &mut String::new(), env)?;
        match value {
            Value::Object(root) => Ok(ConfigDocument { root, origin: None }),
            _ => Err(ConfigError::new(
                "invalid configuration: expected a table of sections",
            )),
        }
    }

    /// A configuration error, prefixed with the file it came from.
    pub(super) fn error(&self, message: String) -> ConfigError {
        match &self.origin {
            Some(origin) => ConfigError::new(format!("{origin}: {message}")),
            None => ConfigError::new(message),
        }
    }

    /// Removes the value at `path` (`section` or `section.key`) and
    /// deserializes it as `T`; `None` if absent. Errors name the field's full
    /// path (`invalid configuration at http.jwt_expiry: unknown field ...`).
    pub fn take<T: DeserializeOwned>(&mut self, path: &str) -> Result<Option<T>, ConfigError> {
        let (parent, key) = match path.rsplit_once('.') {
            Some((parent, key)) => (Some(parent), key),
            None => (None, path),
        };
        let table = match parent {
            None => Some(&mut self.root),
            Some(parent) => match self.root.get_mut(parent) {
                Some(Value::Object(m)) => Some(m),
                Some(_) => {
                    return Err(self.error(format!(
                        "invalid configuration at {parent}: expected a table"
                    )));
                }
                None => None,
            },
        };
        let Some(value) = table.and_then(|t| t.remove(key)) else {
            return Ok(None);
        };
        serde_path_to_error::deserialize(value)
            .map(Some)
            .map_err(|e| {
                let inner = e.path().to_string();
                let message = e.into_inner().to_string();
                let at = if inner == "." {
                    path.to_owned()
                } else if inner.starts_with('[') {
                    format!("{path}{inner}")
                } else {
                    format!("{path}.{inner}")
                };
                self.error(format!("invalid configuration at {at}: {message}"))
            })
    }

    /// As [`ConfigDocument::take`], with `T`'s default when absent.
    pub fn take_or_default<T: DeserializeOwned + Default>(
        &mut self,
        path: &str,
    ) -> Result<T, ConfigError> {
        Ok(self.take(path)?.unwrap_or_default())
    }

    /// Refuses anything no crate took: `known` lists the sections the caller
    /// understands. Their tables emptied by `take` are fine.
    pub fn finish(self, known: &[&str]) -> Result<(), ConfigError> {
        for (section, value) in &self.root {
            let is_known = known.contains(&section.as_str());
            match value {
                Value::Object(m) if is_known && m.is_empty() => {}
                Value::Object(m) if is_known => {
                    // Invariant: the arm above took the empty tables.
                    let (key, _) = m.iter().next().expect("non-empty");
                    return Err(self.error(format!(
                        "invalid configuration at {section}.{key}: unknown field `{key}`"
                    )));
                }
                _ if is_known => {
                    return Err(self.error(format!(
                        "invalid configuration at {section}: unexpected value"
                    )));
                }
                _ => {
                    let expected: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
                    return Err(self.error(format!(
                        "invalid configuration: unknown field `{section}`, expected one of {}",
                        expected.join(", ")
                    )));
                }
            }
        }
        Ok(())
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

/// Replaces `${NAME}` in every string of `value`; a missing variable is an
/// error naming it and where it was used. `$${` writes a literal `${`.
fn interpolate(
    value: &mut Value,
    path: &mut String,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match value {
        Value::String(s) if s.contains('$') => {
            *s = interpolate_str(s, path, env)?;
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                interpolate(item, path, env)?;
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                interpolate(v, path, env)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

pub(super) fn interpolate_str(
    s: &str,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail.find('}').ok_or_else(|| {
                ConfigError::new(format!("{path}: unterminated `${{` in a string"))
            })?;
            let name = &tail[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(ConfigError::new(format!(
                    "{path}: invalid environment variable name `{name}`"
                )));
            }
            let v = env(name).ok_or_else(|| {
                ConfigError::new(format!(
                    "environment variable {name} is not set (used at {path})"
                ))
            })?;
            out.push_str(&v);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}
