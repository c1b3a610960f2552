//! The configuration file: TOML or JSON with the same keys, `${NAME}`
//! environment interpolation, and typed sections.
//!
//! ```toml
//! [http]
//! jwt_secret = "${AUTH_JWT_SECRET}"
//! jwt_expires_in = "24h"
//!
//! [store]
//! url = "memory://"
//!
//! [[providers]]
//! resolve = "emailpass"
//! id = "emailpass"
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

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

/// The whole configuration. Every section has defaults except `providers`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// `[http]`: tokens, sessions, CORS and per-actor provider lists.
    #[serde(default)]
    pub http: HttpConfig,
    /// `[store]`: where identities live.
    #[serde(default)]
    pub store: StoreConfig,
    /// `[state]`: where short-lived state lives.
    #[serde(default)]
    pub state: StateConfig,
    /// `[server]`: the `auth-server` binary's own settings.
    #[serde(default)]
    pub server: ServerConfig,
    /// `[events]`: where events such as `auth.password_reset` go.
    #[serde(default)]
    pub events: EventsConfig,
    /// `[management]`: the management API (off unless an API key is set).
    #[serde(default)]
    pub management: ManagementConfig,
    /// `[[providers]]`: the provider instances.
    pub providers: Vec<ProviderConfig>,
}

impl Config {
    /// A configuration with default sections and the given providers.
    pub fn new(providers: Vec<ProviderConfig>) -> Self {
        Config {
            http: HttpConfig::default(),
            store: StoreConfig::default(),
            state: StateConfig::default(),
            server: ServerConfig::default(),
            events: EventsConfig::default(),
            management: ManagementConfig::default(),
            providers,
        }
    }
}

/// `[http]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct HttpConfig {
    /// The HS256 secret of auth JWTs. Required to serve HTTP; no built-in default.
    #[serde(default)]
    pub jwt_secret: Option<Secret>,
    /// Lifetime of auth JWTs (humantime string like `24h`, or seconds). Default 24 h.
    #[serde(default = "default_jwt_expires_in", deserialize_with = "de_duration")]
    pub jwt_expires_in: Duration,
    /// Actor type -> provider ids it may use. Absent: every actor may use every provider.
    #[serde(default)]
    pub auth_methods_per_actor: Option<BTreeMap<String, Vec<String>>>,
    /// Session cookie name. Default `connect.sid`.
    #[serde(default = "default_cookie_name")]
    pub session_cookie_name: String,
    /// Whether the session cookie carries `Secure`. Default false.
    #[serde(default)]
    pub session_cookie_secure: bool,
    /// Lifetime of server-side sessions. Default 24 h.
    #[serde(default = "default_jwt_expires_in", deserialize_with = "de_duration")]
    pub session_ttl: Duration,
    /// Origins allowed by CORS on `/auth/*`. Default none.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// Largest accepted request body in bytes. Default 100 KiB.
    #[serde(default = "default_body_limit")]
    pub body_limit: usize,
}

fn default_jwt_expires_in() -> Duration {
    Duration::from_secs(24 * 3600)
}

fn default_cookie_name() -> String {
    "connect.sid".to_owned()
}

fn default_body_limit() -> usize {
    100 * 1024
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            jwt_secret: None,
            jwt_expires_in: default_jwt_expires_in(),
            auth_methods_per_actor: None,
            session_cookie_name: default_cookie_name(),
            session_cookie_secure: false,
            session_ttl: default_jwt_expires_in(),
            cors_origins: Vec::new(),
            body_limit: default_body_limit(),
        }
    }
}

/// `[store]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct StoreConfig {
    /// `sqlite://PATH`, `postgres://…` or `memory://`. Default `sqlite://./auth.db`.
    #[serde(default = "default_store_url")]
    pub url: Secret,
    /// PostgreSQL only: the schema holding the tables (created if missing), so
    /// several deployments can share one database. Default: the connection's
    /// `search_path` (normally `public`).
    #[serde(default)]
    pub schema: Option<String>,
}

fn default_store_url() -> Secret {
    Secret::new("sqlite://./auth.db")
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: default_store_url(),
            schema: None,
        }
    }
}

/// `[state]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct StateConfig {
    /// `memory://` (default), or a `sqlite://` / `postgres://` URL (the same as
    /// `[store] url` shares its database) so sessions and reset marks survive
    /// restarts and are shared by replicas.
    #[serde(default = "default_state_url")]
    pub url: Secret,
}

fn default_state_url() -> Secret {
    Secret::new("memory://")
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            url: default_state_url(),
        }
    }
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Listen address. Default `127.0.0.1:9000`.
    #[serde(default = "default_listen")]
    pub listen: String,
}

fn default_listen() -> String {
    "127.0.0.1:9000".to_owned()
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
        }
    }
}

/// `[events]`: the event sinks. In-process subscribers need no config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct EventsConfig {
    /// Log each event (name and field names; tokens are never logged).
    #[serde(default)]
    pub log: bool,
    /// Append each event as one JSON line to this file. The line carries the
    /// event's data in full (reset tokens included): for development and tests.
    #[serde(default)]
    pub file: Option<String>,
    /// POST each event to a URL, signed.
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
}

/// `[events.webhook]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct WebhookConfig {
    /// Where to POST.
    pub url: String,
    /// The HMAC-SHA256 key of the signature header.
    pub secret: Secret,
    /// Timeout of one attempt. Default 5 s.
    #[serde(default = "default_webhook_timeout", deserialize_with = "de_duration")]
    pub timeout: Duration,
    /// Retries after a failed attempt (exponential backoff). Default 3.
    #[serde(default = "default_webhook_retries")]
    pub retries: u32,
}

fn default_webhook_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_webhook_retries() -> u32 {
    3
}

impl WebhookConfig {
    /// A webhook to `url` signed with `secret`, default timeout and retries.
    pub fn new(url: impl Into<String>, secret: Secret) -> Self {
        WebhookConfig {
            url: url.into(),
            secret,
            timeout: default_webhook_timeout(),
            retries: default_webhook_retries(),
        }
    }
}

/// `[management]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ManagementConfig {
    /// The API key of the management routes; absent: the routes answer 404.
    #[serde(default)]
    pub api_key: Option<Secret>,
}

/// One `[[providers]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ProviderConfig {
    /// The provider kind's identifier.
    pub resolve: String,
    /// The instance id used in routes and stored identities.
    pub id: String,
    /// The kind's own options (absent means `{}`).
    #[serde(default)]
    pub options: Value,
}

impl ProviderConfig {
    /// An instance `id` of kind `resolve` with `options`.
    pub fn new(resolve: impl Into<String>, id: impl Into<String>, options: Value) -> Self {
        ProviderConfig {
            resolve: resolve.into(),
            id: id.into(),
            options,
        }
    }
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Secs(s) => Ok(Duration::from_secs(s)),
        Raw::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
    }
}

/// Parses `24h`, `15m`, `90s`, `1h30m`, `2d`, `500ms` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("invalid duration `{text}`: expected a number"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration `{text}`"))?;
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = rest[..unit_len].trim();
        let per = match unit {
            "ms" => Duration::from_millis(1),
            "s" | "sec" | "secs" => Duration::from_secs(1),
            "m" | "min" | "mins" => Duration::from_secs(60),
            "h" | "hr" | "hour" | "hours" => Duration::from_secs(3600),
            "d" | "day" | "days" => Duration::from_secs(86400),
            _ => {
                return Err(format!(
                    "invalid duration `{text}`: unknown unit `{unit}` (use ms, s, m, h or d)"
                ));
            }
        };
        let n = u32::try_from(n).map_err(|_| format!("invalid duration `{text}`: too large"))?;
        total += per * n;
        rest = &rest[unit_len..];
    }
    Ok(total)
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

impl Config {
    /// Reads `path` (`.json` is JSON, anything else TOML), interpolates
    /// environment variables and parses it.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(format!("cannot read config file {}: {e}", path.display()))
        })?;
        let format = match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("json") => Format::Json,
            _ => Format::Toml,
        };
        Self::parse(&text, format).map_err(|e| {
            ConfigError::new(format!("config file {}: {}", path.display(), e.message()))
        })
    }

    /// Parses TOML text.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        Self::parse(text, Format::Toml)
    }

    /// Parses JSON text.
    pub fn from_json_str(text: &str) -> Result<Config, ConfigError> {
        Self::parse(text, Format::Json)
    }

    /// Parses `text` in `format` with the process environment.
    pub fn parse(text: &str, format: Format) -> Result<Config, ConfigError> {
        Self::parse_with_env(text, format, &|name| std::env::var(name).ok())
    }

    /// Parses `text` in `format`, looking variables up with `env`.
    pub fn parse_with_env(
        text: &str,
        format: Format,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
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
        let config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            if path == "." {
                ConfigError::new(format!("invalid configuration: {inner}"))
            } else {
                ConfigError::new(format!("invalid configuration at {path}: {inner}"))
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot: ids, duplicates, references.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, p) in self.providers.iter().enumerate() {
            if p.id.is_empty()
                || !p
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(ConfigError::new(format!(
                    "providers[{i}]: invalid id \"{}\": use letters, digits, '-' and '_' only",
                    p.id
                )));
            }
            if let Some(first) = seen.insert(&p.id, i) {
                return Err(ConfigError::new(format!(
                    "providers[{i}]: duplicate provider id \"{}\" (already used by providers[{first}])",
                    p.id
                )));
            }
        }
        if let Some(map) = &self.http.auth_methods_per_actor {
            for (actor, ids) in map {
                for id in ids {
                    if !seen.contains_key(id.as_str()) {
                        return Err(ConfigError::new(format!(
                            "http.auth_methods_per_actor.{actor}: no provider with id \"{id}\" is configured"
                        )));
                    }
                }
            }
        }
        if self.store.schema.is_some()
            && !(self.store.url.expose().starts_with("postgres://")
                || self.store.url.expose().starts_with("postgresql://"))
        {
            return Err(ConfigError::new(
                "store.schema: only a postgres:// store has schemas",
            ));
        }
        if let Some(key) = &self.management.api_key {
            if key.expose().len() < 16 {
                return Err(ConfigError::new(
                    "management.api_key: must be at least 16 characters",
                ));
            }
        }
        if let Some(w) = &self.events.webhook {
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                return Err(ConfigError::new(
                    "events.webhook.url: must be an http:// or https:// URL",
                ));
            }
            if w.secret.expose().is_empty() {
                return Err(ConfigError::new("events.webhook.secret: must not be empty"));
            }
        }
        if self.http.jwt_expires_in.is_zero() {
            return Err(ConfigError::new("http.jwt_expires_in: must be positive"));
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

fn interpolate_str(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "SECRET").then(|| "s3cr3t".to_owned())
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("3 weeks").is_err());
        assert!(parse_duration("h").is_err());
    }

    #[test]
    fn interpolates_and_keeps_secret_out_of_debug() {
        let c = Config::parse_with_env(
            "[http]\njwt_secret = \"${SECRET}\"\njwt_expires_in = 60\n[[providers]]\nresolve='emailpass'\nid='emailpass'\n",
            Format::Toml,
            &env,
        )
        .unwrap();
        assert_eq!(c.http.jwt_secret.as_ref().unwrap().expose(), "s3cr3t");
        assert_eq!(c.http.jwt_expires_in, Duration::from_secs(60));
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn missing_env_var_is_named() {
        let e = Config::parse_with_env(
            "[http]\njwt_secret = \"${NOPE}\"\n[[providers]]\nresolve='emailpass'\nid='a'\n",
            Format::Toml,
            &env,
        )
        .unwrap_err();
        assert_eq!(
            e.message(),
            "environment variable NOPE is not set (used at http.jwt_secret)"
        );
    }

    #[test]
    fn literal_dollar_brace() {
        assert_eq!(interpolate_str("a$${b}", "x", &env).unwrap(), "a${b}");
        assert_eq!(interpolate_str("$5", "x", &env).unwrap(), "$5");
    }

    #[test]
    fn malformed_toml_has_line_and_column() {
        let e = Config::from_toml_str("[http]\njwt_secret = \n").unwrap_err();
        assert!(
            e.message().starts_with("malformed TOML at line 2, column"),
            "{e}"
        );
    }

    #[test]
    fn malformed_json_has_line_and_column() {
        let e = Config::from_json_str("{\n  \"providers\": [,]\n}").unwrap_err();
        assert!(
            e.message()
                .starts_with("malformed JSON at line 2, column 17"),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_are_errors() {
        let e = Config::from_toml_str("[htp]\n[[providers]]\nresolve='a'\nid='a'\n").unwrap_err();
        assert!(e.message().contains("unknown field `htp`"), "{e}");
        let e =
            Config::from_toml_str("[http]\njwt_expiry = 1\n[[providers]]\nresolve='a'\nid='a'\n")
                .unwrap_err();
        assert!(
            e.message()
                .contains("at http.jwt_expiry: unknown field `jwt_expiry`"),
            "{e}"
        );
    }

    #[test]
    fn duplicate_ids_and_bad_references() {
        let e = Config::from_toml_str(
            "[[providers]]\nresolve='emailpass'\nid='a'\n[[providers]]\nresolve='emailpass'\nid='a'\n",
        )
        .unwrap_err();
        assert_eq!(
            e.message(),
            "providers[1]: duplicate provider id \"a\" (already used by providers[0])"
        );
        let e = Config::from_toml_str(
            "[http.auth_methods_per_actor]\ncustomer=['b']\n[[providers]]\nresolve='emailpass'\nid='a'\n",
        )
        .unwrap_err();
        assert!(e.message().contains("no provider with id \"b\""), "{e}");
    }
}
