//! The configuration file: one TOML or JSON document with the same keys,
//! `${NAME}` environment interpolation, and sections owned by the crates that
//! use them.
//!
//! A [`ConfigDocument`] is the parsed, interpolated file. Each crate takes its
//! own keys out of it with [`ConfigDocument::take`] (the core takes
//! `[[providers]]`, `[store]`, `[state]` and `http.auth_methods_per_actor`
//! with [`Config::from_document`]; `auth-http` takes the rest of `[http]` and
//! `[events]`; `auth-server` takes `[server]` and `[management]`), each
//! refusing unknown keys with the field's path, and [`ConfigDocument::finish`]
//! refuses whatever no one took. [`Config::from_toml_str`] and friends do
//! this for a file with the core's sections only.
//!
//! ```toml
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

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
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
    fn error(&self, message: String) -> ConfigError {
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

/// The core's part of the configuration: the provider instances, the
/// per-actor provider lists, and where identities and state live.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// `[[providers]]`: the provider instances.
    pub providers: Vec<ProviderConfig>,
    /// `[http] auth_methods_per_actor`: actor type -> provider ids it may
    /// use. Absent: every actor may use every provider.
    pub auth_methods_per_actor: Option<BTreeMap<String, Vec<String>>>,
    /// `[http] actor_types`: the only actor types routes accept. Absent: any
    /// actor type of letters, digits, `_` and `-` (at most 64).
    pub actor_types: Option<Vec<String>>,
    /// `[store]`: where identities live.
    pub store: StoreConfig,
    /// `[state]`: where short-lived state lives.
    pub state: StateConfig,
    /// `[limits]`: rate limits, counted in the state store.
    pub limits: LimitsConfig,
    /// `[mfa]`: multi-factor authentication; absent, MFA methods are refused
    /// as Medusa refuses them without an encryption key.
    pub mfa: Option<MfaConfig>,
    /// `[http] auth_verifications_per_actor`: actor type -> what logins
    /// through which provider must have verified first.
    pub auth_verifications_per_actor: Option<BTreeMap<String, Vec<VerificationRule>>>,
}

/// One entry of `http.auth_verifications_per_actor.{actor}`: logins through
/// `auth_provider` answer `verification_required` until the identity has
/// verified its `entity_id` there as `entity_type`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct VerificationRule {
    /// The kind of thing verified (`email`, ...).
    pub entity_type: String,
    /// The provider instance id whose logins need it.
    pub auth_provider: String,
}

impl VerificationRule {
    /// Logins through `auth_provider` need `entity_type` verified.
    pub fn new(entity_type: impl Into<String>, auth_provider: impl Into<String>) -> Self {
        VerificationRule {
            entity_type: entity_type.into(),
            auth_provider: auth_provider.into(),
        }
    }
}

/// The sections [`Config`] reads.
const CORE_SECTIONS: [&str; 6] = ["http", "limits", "mfa", "providers", "state", "store"];

/// `[mfa]`, with Medusa's option names.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MfaConfig {
    /// The key MFA secrets are sealed with: any string of at least 32
    /// characters (the AES-256 key is its SHA-256). Required.
    pub encryption_key: Secret,
    /// Keys of earlier rotations: still open what they sealed.
    #[serde(default)]
    pub previous_encryption_keys: Vec<Secret>,
    /// Recovery codes generated at once (default 10, at most 50).
    #[serde(default = "default_recovery_code_count")]
    pub recovery_code_count: u32,
    /// How long a login's MFA challenge lives (default 300 s).
    #[serde(default = "default_challenge_ttl_seconds")]
    pub challenge_ttl_seconds: u64,
    /// Wrong codes an identity may enter per failure window, across all its
    /// challenges, before challenges are refused (default 5).
    #[serde(default = "default_challenge_max_attempts")]
    pub challenge_max_attempts: u32,
    /// The failure window of `challenge_max_attempts` (default 900 s): a
    /// fixed window, so no account is locked for good; a success resets it.
    #[serde(default = "default_failure_window_seconds")]
    pub failure_window_seconds: u64,
    /// What disabling a factor needs: `session` (the caller's session or
    /// token, default) or `challenge` (also a current code).
    #[serde(default)]
    pub disable_policy: MfaDisablePolicy,
    /// Factor kinds and their settings.
    #[serde(default)]
    pub providers: MfaProviders,
}

/// `[mfa] disable_policy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum MfaDisablePolicy {
    /// The authenticated caller may disable its factor.
    #[default]
    Session,
    /// A current TOTP or recovery code is needed too.
    Challenge,
}

/// `[mfa.providers]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MfaProviders {
    /// `[mfa.providers.totp]`.
    #[serde(default)]
    pub totp: TotpConfig,
}

/// `[mfa.providers.totp]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct TotpConfig {
    /// The issuer authenticator apps show (default `Medusa`).
    pub issuer: String,
    /// Digits per code: 6, 7 or 8 (default 6).
    pub digits: u32,
    /// Seconds per time step (default 30).
    pub period: u64,
    /// Time steps accepted either side of now (default 1).
    pub window: u64,
}

impl Default for TotpConfig {
    fn default() -> Self {
        TotpConfig {
            issuer: "Medusa".to_owned(),
            digits: 6,
            period: 30,
            window: 1,
        }
    }
}

fn default_recovery_code_count() -> u32 {
    10
}

pub(crate) fn default_challenge_ttl_seconds() -> u64 {
    300
}

pub(crate) fn default_challenge_max_attempts() -> u32 {
    5
}

pub(crate) fn default_failure_window_seconds() -> u64 {
    900
}

impl MfaConfig {
    /// Checks the bounds and builds the keys (so a bad key fails at start).
    pub fn validate(&self) -> Result<crate::mfa::MfaKeys, ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError::new(format!("mfa.{key}: {why}")));
        if !(1..=50).contains(&self.recovery_code_count) {
            return bad("recovery_code_count", "must be between 1 and 50");
        }
        if !(1..=3600).contains(&self.challenge_ttl_seconds) {
            return bad("challenge_ttl_seconds", "must be between 1 and 3600");
        }
        if !(1..=100).contains(&self.challenge_max_attempts) {
            return bad("challenge_max_attempts", "must be between 1 and 100");
        }
        if !(1..=86_400).contains(&self.failure_window_seconds) {
            return bad("failure_window_seconds", "must be between 1 and 86400");
        }
        let totp = &self.providers.totp;
        if !(6..=8).contains(&totp.digits) {
            return bad("providers.totp.digits", "must be 6, 7 or 8");
        }
        if !(1..=300).contains(&totp.period) {
            return bad("providers.totp.period", "must be between 1 and 300");
        }
        if totp.window > 10 {
            return bad("providers.totp.window", "must be at most 10");
        }
        if totp.issuer.trim().is_empty() {
            return bad("providers.totp.issuer", "must not be empty");
        }
        let previous: Vec<String> = self
            .previous_encryption_keys
            .iter()
            .map(|k| k.expose().to_owned())
            .collect();
        crate::mfa::MfaKeys::new(self.encryption_key.expose(), &previous).map_err(|e| {
            ConfigError::new(format!(
                "mfa.encryption_key: {} (previous_encryption_keys too)",
                e.message()
            ))
        })
    }
}

impl Config {
    /// A configuration with default sections and the given providers.
    pub fn new(providers: Vec<ProviderConfig>) -> Self {
        Config {
            providers,
            auth_methods_per_actor: None,
            actor_types: None,
            store: StoreConfig::default(),
            state: StateConfig::default(),
            limits: LimitsConfig::default(),
            mfa: None,
            auth_verifications_per_actor: None,
        }
    }

    /// Takes the core's keys out of `doc` and validates them.
    pub fn from_document(doc: &mut ConfigDocument) -> Result<Config, ConfigError> {
        let auth_methods_per_actor = doc.take("http.auth_methods_per_actor")?;
        let actor_types = doc.take("http.actor_types")?;
        let auth_verifications_per_actor = doc.take("http.auth_verifications_per_actor")?;
        let config = Config {
            auth_verifications_per_actor,
            actor_types,
            providers: doc.take("providers")?.ok_or_else(|| {
                doc.error("invalid configuration: missing field `providers`".to_owned())
            })?,
            auth_methods_per_actor,
            store: doc.take_or_default("store")?,
            state: doc.take_or_default("state")?,
            limits: doc.take_or_default("limits")?,
            mfa: doc.take("mfa")?,
        };
        if let Some(mfa) = &config.mfa {
            mfa.validate()
                .map_err(|e| doc.error(e.message().to_owned()))?;
        }
        config
            .validate()
            .map_err(|e| doc.error(e.message().to_owned()))?;
        Ok(config)
    }

    /// Reads a file with the core's sections only (see
    /// [`ConfigDocument::from_file`]); any other section is an error.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        Self::strict(ConfigDocument::from_file(path)?)
    }

    /// Parses TOML text with the core's sections only.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        Self::strict(ConfigDocument::from_toml_str(text)?)
    }

    /// Parses JSON text with the core's sections only.
    pub fn from_json_str(text: &str) -> Result<Config, ConfigError> {
        Self::strict(ConfigDocument::from_json_str(text)?)
    }

    fn strict(mut doc: ConfigDocument) -> Result<Config, ConfigError> {
        let config = Self::from_document(&mut doc)?;
        doc.finish(&CORE_SECTIONS)?;
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
            if RESERVED_PROVIDER_IDS.contains(&p.id.as_str()) {
                return Err(ConfigError::new(format!(
                    "providers[{i}]: provider id \"{}\" is taken by a fixed route (/auth/{{actor}}/{})",
                    p.id, p.id
                )));
            }
            if let Some(first) = seen.insert(&p.id, i) {
                return Err(ConfigError::new(format!(
                    "providers[{i}]: duplicate provider id \"{}\" (already used by providers[{first}])",
                    p.id
                )));
            }
        }
        for (path, actor) in self
            .actor_types
            .iter()
            .flatten()
            .map(|a| ("http.actor_types", a))
            .chain(
                self.auth_methods_per_actor
                    .iter()
                    .flat_map(|m| m.keys())
                    .map(|a| ("http.auth_methods_per_actor", a)),
            )
        {
            check_actor_type(actor).map_err(|why| ConfigError::new(format!("{path}: {why}")))?;
        }
        if let Some(map) = &self.auth_methods_per_actor {
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
        for (actor, rules) in self.auth_verifications_per_actor.iter().flatten() {
            let path = format!("http.auth_verifications_per_actor.{actor}");
            check_actor_type(actor).map_err(|why| ConfigError::new(format!("{path}: {why}")))?;
            for rule in rules {
                if !seen.contains_key(rule.auth_provider.as_str()) {
                    return Err(ConfigError::new(format!(
                        "{path}: no provider with id \"{}\" is configured",
                        rule.auth_provider
                    )));
                }
                if rule.entity_type.is_empty() || rule.entity_type.len() > 64 {
                    return Err(ConfigError::new(format!(
                        "{path}: entity_type must be 1 to 64 characters"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Provider ids that fixed routes would shadow (`/auth/{actor}/providers`, ...).
const RESERVED_PROVIDER_IDS: [&str; 2] = ["providers", "user"];

/// Actor types that fixed routes would shadow (`/auth/token/refresh`,
/// `/auth/session`, `/auth/mfa/...`, `/auth/verification/...`).
const RESERVED_ACTOR_TYPES: [&str; 4] = ["token", "session", "mfa", "verification"];

/// The one rule for actor types, in routes, links and configuration: 1 to 64
/// letters, digits, `_` or `-`, and none that a fixed route would shadow.
pub(crate) fn check_actor_type(actor_type: &str) -> Result<(), String> {
    if actor_type.is_empty()
        || actor_type.len() > 64
        || !actor_type
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(format!("Invalid actor type: {actor_type}"));
    }
    if RESERVED_ACTOR_TYPES.contains(&actor_type) {
        return Err(format!(
            "Invalid actor type: {actor_type} (taken by a fixed route)"
        ));
    }
    Ok(())
}

/// One rate limit: at most `count` in each fixed `window`; a count of 0
/// turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Limit {
    /// How many per window (0: no limit).
    pub count: u64,
    /// The window (`15m`, `1h`, ... or seconds). Default 15 minutes.
    #[serde(default = "default_window", deserialize_with = "deserialize_duration")]
    pub window: Duration,
}

fn default_window() -> Duration {
    Duration::from_secs(15 * 60)
}

impl Limit {
    /// At most `count` per `window`.
    pub const fn new(count: u64, window: Duration) -> Self {
        Limit { count, window }
    }

    /// No limit.
    pub const fn off() -> Self {
        Limit::new(0, Duration::from_secs(15 * 60))
    }

    /// Whether the limit is on.
    pub fn is_on(&self) -> bool {
        self.count > 0 && !self.window.is_zero()
    }
}

const fn per_15_minutes(count: u64) -> Limit {
    Limit::new(count, Duration::from_secs(15 * 60))
}

/// `[limits]`: counters in the state store, so they hold across replicas.
/// Windows are fixed, so nothing locks an account for good.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct LimitsConfig {
    /// Failed logins per identifier and client address. Default 10 / 15 min.
    pub login_per_identifier_and_address: Limit,
    /// Failed logins per identifier. Default 20 / 15 min.
    pub login_per_identifier: Limit,
    /// Failed logins per client address. Default 100 / 15 min.
    pub login_per_address: Limit,
    /// `reset-password` requests per identifier. Default 5 / 15 min.
    pub reset_per_identifier: Limit,
    /// `reset-password` requests per client address. Default 50 / 15 min.
    pub reset_per_address: Limit,
    /// New identities registered per client address. Default 200 / 15 min.
    pub register_per_address: Limit,
    /// Failed `update` calls per client address. Default 20 / 15 min.
    pub update_failures_per_address: Limit,
    /// Verification code requests per identity and `entity_id`. Default 5 / 1 h.
    pub verification_requests: Limit,
    /// Redirect-login starts (`POST /auth/{actor}/{redirect provider}`, each of
    /// which writes OAuth state) per client address. Default 60 / 15 min.
    pub redirect_starts_per_address: Limit,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            login_per_identifier_and_address: per_15_minutes(10),
            login_per_identifier: per_15_minutes(20),
            login_per_address: per_15_minutes(100),
            reset_per_identifier: per_15_minutes(5),
            reset_per_address: per_15_minutes(50),
            register_per_address: per_15_minutes(200),
            update_failures_per_address: per_15_minutes(20),
            verification_requests: Limit::new(5, Duration::from_secs(3600)),
            redirect_starts_per_address: per_15_minutes(60),
        }
    }
}

impl LimitsConfig {
    /// Every limit off.
    pub fn off() -> Self {
        LimitsConfig {
            login_per_identifier_and_address: Limit::off(),
            login_per_identifier: Limit::off(),
            login_per_address: Limit::off(),
            reset_per_identifier: Limit::off(),
            reset_per_address: Limit::off(),
            register_per_address: Limit::off(),
            update_failures_per_address: Limit::off(),
            verification_requests: Limit::off(),
            redirect_starts_per_address: Limit::off(),
        }
    }
}

/// `[store]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct StoreConfig {
    /// `sqlite://PATH`, `postgres://…` or `memory://`. Default
    /// `sqlite://./auth.db`. The module does not open it: a store factory
    /// (`auth-server`'s) maps the URL to a store.
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
    /// `memory://` (default), a `sqlite://` / `postgres://` URL (the same as
    /// `[store] url` shares its database), or `redis://` / `rediss://`, so
    /// sessions and reset marks survive restarts and are shared by replicas.
    #[serde(default = "default_state_url")]
    pub url: Secret,
    /// The prefix of every key in a Redis state store (default `auth:`), so
    /// one Redis can serve several deployments.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
}

fn default_state_url() -> Secret {
    Secret::new("memory://")
}

fn default_key_prefix() -> String {
    "auth:".to_owned()
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            url: default_state_url(),
            key_prefix: default_key_prefix(),
        }
    }
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

/// Deserializes a duration written as a humantime-like string (`24h`, `15m`,
/// `90s`, `1h30m`, `2d`, `500ms`) or a number of seconds: for
/// `#[serde(deserialize_with = "auth_module::deserialize_duration")]` in the
/// sections other crates own.
pub fn deserialize_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
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
///
/// Ours, not `humantime`'s: that also takes weeks, months (`M`, beside `m`
/// for minutes), years and fractions, so `3 weeks` or a mistyped `30M` (30
/// months) would load silently, and it refuses a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
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

    #[test]
    fn mfa_section_takes_medusas_names_and_needs_a_key() {
        let base = "[store]\nurl = 'memory://'\n[[providers]]\nresolve = 'emailpass'\nid = 'e'\n";
        let c = Config::from_toml_str(base).unwrap();
        assert!(c.mfa.is_none());
        let c = Config::from_toml_str(&format!(
            "{base}[mfa]\nencryption_key = 'an encryption key of at least 32 chars'\n\
             recovery_code_count = 12\ndisable_policy = 'challenge'\n\
             [mfa.providers.totp]\nissuer = 'Shop'\ndigits = 8\n"
        ))
        .unwrap();
        let mfa = c.mfa.unwrap();
        assert_eq!(mfa.recovery_code_count, 12);
        assert_eq!(mfa.challenge_ttl_seconds, 300);
        assert_eq!(mfa.challenge_max_attempts, 5);
        assert_eq!(mfa.disable_policy, MfaDisablePolicy::Challenge);
        assert_eq!(mfa.providers.totp.issuer, "Shop");
        assert_eq!(
            (
                mfa.providers.totp.digits,
                mfa.providers.totp.period,
                mfa.providers.totp.window
            ),
            (8, 30, 1)
        );
        for (extra, named) in [
            ("[mfa]\nrecovery_code_count = 3\n", "encryption_key"),
            ("[mfa]\nencryption_key = 'short'\n", "mfa.encryption_key"),
            (
                "[mfa]\nencryption_key = 'an encryption key of at least 32 chars'\nprevious_encryption_keys = ['short']\n",
                "mfa.encryption_key",
            ),
            (
                "[mfa]\nencryption_key = 'an encryption key of at least 32 chars'\n[mfa.providers.totp]\ndigits = 9\n",
                "mfa.providers.totp.digits",
            ),
            (
                "[mfa]\nencryption_key = 'an encryption key of at least 32 chars'\nrecovery_code_count = 0\n",
                "mfa.recovery_code_count",
            ),
            (
                "[mfa]\nencryption_key = 'an encryption key of at least 32 chars'\ndisable_policy = 'never'\n",
                "disable_policy",
            ),
            (
                "[mfa]\nencryption_key = 'an encryption key of at least 32 chars'\nbogus = 1\n",
                "bogus",
            ),
        ] {
            let e = Config::from_toml_str(&format!("{base}{extra}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(named), "{extra}: {e}");
            assert!(!e.contains("at least 32 chars'"), "{e}");
        }
    }
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
        let mut doc = ConfigDocument::parse_with_env(
            "[store]\nurl = \"postgres://u:${SECRET}@h/db\"\n[[providers]]\nresolve='emailpass'\nid='emailpass'\n",
            Format::Toml,
            &env,
        )
        .unwrap();
        let c = Config::from_document(&mut doc).unwrap();
        doc.finish(&CORE_SECTIONS).unwrap();
        assert_eq!(c.store.url.expose(), "postgres://u:s3cr3t@h/db");
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn sections_are_taken_by_their_owners() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Http {
            #[serde(deserialize_with = "deserialize_duration")]
            jwt_expires_in: Duration,
        }
        let text = "[http]\njwt_expires_in = \"1h\"\n[http.auth_methods_per_actor]\ncustomer = ['emailpass']\n[[providers]]\nresolve='emailpass'\nid='emailpass'\n";
        let mut doc = ConfigDocument::from_toml_str(text).unwrap();
        let core = Config::from_document(&mut doc).unwrap();
        assert_eq!(
            core.auth_methods_per_actor.unwrap()["customer"],
            ["emailpass"]
        );
        let http: Http = doc.take("http").unwrap().unwrap();
        assert_eq!(http.jwt_expires_in, Duration::from_secs(3600));
        doc.finish(&CORE_SECTIONS).unwrap();
        // The core alone refuses what it does not own, naming the path.
        let e = Config::from_toml_str(text).unwrap_err();
        assert_eq!(
            e.message(),
            "invalid configuration at http.jwt_expires_in: unknown field `jwt_expires_in`"
        );
        let mut doc = ConfigDocument::from_toml_str("[http]\njwt_expiry = 1\n").unwrap();
        let e = doc.take::<Http>("http").unwrap_err();
        assert!(
            e.message().starts_with(
                "invalid configuration at http.jwt_expiry: unknown field `jwt_expiry`"
            ),
            "{e}"
        );
    }

    #[test]
    fn missing_env_var_is_named() {
        let e = ConfigDocument::parse_with_env(
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
        let e = Config::from_toml_str(
            "[store]\nurl='memory://'\nuri = 1\n[[providers]]\nresolve='a'\nid='a'\n",
        )
        .unwrap_err();
        assert!(
            e.message().contains("at store.uri: unknown field `uri`"),
            "{e}"
        );
        let e =
            Config::from_toml_str("[[providers]]\nresolve='a'\nid='a'\nopts = 1\n").unwrap_err();
        assert!(
            e.message()
                .contains("at providers[0].opts: unknown field `opts`"),
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
