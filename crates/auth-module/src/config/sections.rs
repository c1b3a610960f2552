//! The core's sections: `[mfa]`, `[limits]`, `[store]`, `[state]` and
//! `[[providers]]`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Secret, deserialize_duration};
use crate::error::ConfigError;

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
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TotpConfig {
    /// The issuer authenticator apps show (default `Medusa`).
    #[serde(default = "default_issuer")]
    pub issuer: String,
    /// Digits per code: 6, 7 or 8 (default 6).
    #[serde(default = "int::<6, _>")]
    pub digits: u32,
    /// Seconds per time step (default 30).
    #[serde(default = "int::<30, _>")]
    pub period: u64,
    /// Time steps accepted either side of now (default 1).
    #[serde(default = "int::<1, _>")]
    pub window: u64,
}

fn default_issuer() -> String {
    "Medusa".to_owned()
}

impl Default for TotpConfig {
    fn default() -> Self {
        super::section_defaults()
    }
}

/// `N` as the field's integer type: `#[serde(default = "int::<6, _>")]`.
fn int<const N: u32, T: From<u32>>() -> T {
    T::from(N)
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

/// One rate limit: at most `count` in each fixed `window`; a count of 0
/// turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Limit {
    /// How many per window (0: no limit).
    pub count: u64,
    /// The window (`15m`, `1h`, ... or seconds). Default 15 minutes.
    #[serde(
        default = "default_window",
        deserialize_with = "deserialize_duration",
        serialize_with = "seconds"
    )]
    pub window: Duration,
}

fn seconds<S: serde::Serializer>(window: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(window.as_secs())
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

/// `N` per 15 minutes: `#[serde(default = "per_15_minutes::<N>")]`.
const fn per_15_minutes<const N: u64>() -> Limit {
    Limit::new(N, Duration::from_secs(15 * 60))
}

/// `N` per hour.
const fn per_hour<const N: u64>() -> Limit {
    Limit::new(N, Duration::from_secs(3600))
}

/// `[limits]`: counters in the state store, so they hold across replicas.
/// Windows are fixed, so nothing locks an account for good.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct LimitsConfig {
    /// Failed logins per identifier and client address. Default 10 / 15 min.
    #[serde(default = "per_15_minutes::<10>")]
    pub login_per_identifier_and_address: Limit,
    /// Failed logins per identifier. Default 20 / 15 min.
    #[serde(default = "per_15_minutes::<20>")]
    pub login_per_identifier: Limit,
    /// Failed logins per client address. Default 100 / 15 min.
    #[serde(default = "per_15_minutes::<100>")]
    pub login_per_address: Limit,
    /// `reset-password` requests per identifier. Default 5 / 15 min.
    #[serde(default = "per_15_minutes::<5>")]
    pub reset_per_identifier: Limit,
    /// `reset-password` requests per client address. Default 50 / 15 min.
    #[serde(default = "per_15_minutes::<50>")]
    pub reset_per_address: Limit,
    /// New identities registered per client address. Default 200 / 15 min.
    #[serde(default = "per_15_minutes::<200>")]
    pub register_per_address: Limit,
    /// Failed `update` calls per client address. Default 20 / 15 min.
    #[serde(default = "per_15_minutes::<20>")]
    pub update_failures_per_address: Limit,
    /// Verification code requests per identity and `entity_id`. Default 5 / 1 h.
    #[serde(default = "per_hour::<5>")]
    pub verification_requests: Limit,
    /// Redirect-login starts (`POST /auth/{actor}/{redirect provider}`, each of
    /// which writes OAuth state) per client address. Default 60 / 15 min.
    #[serde(default = "per_15_minutes::<60>")]
    pub redirect_starts_per_address: Limit,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        super::section_defaults()
    }
}

impl LimitsConfig {
    /// Every limit off.
    pub fn off() -> Self {
        // Every key the section has, each with a count of 0: no field list
        // to keep in step with the struct.
        let keys = match serde_json::to_value(Self::default()) {
            Ok(Value::Object(keys)) => keys,
            _ => unreachable!("a struct serializes to a map"),
        };
        let off = keys
            .into_iter()
            .map(|(key, _)| (key, serde_json::json!({ "count": 0 })))
            .collect();
        serde_json::from_value(Value::Object(off)).expect("every limit takes a count")
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
        super::section_defaults()
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
        super::section_defaults()
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

/// `[audit]`: the audit log ([`crate::audit`]).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AuditConfig {
    /// Whether entries are recorded. Default true.
    #[serde(default = "audit_enabled")]
    pub enabled: bool,
    /// How long entries are kept (`400d`, ...); a sweep removes older ones.
    /// Default 400 days.
    #[serde(
        default = "audit_retention",
        deserialize_with = "deserialize_duration",
        serialize_with = "serialize_secs"
    )]
    pub retention: Duration,
}

fn audit_enabled() -> bool {
    true
}

fn audit_retention() -> Duration {
    Duration::from_secs(400 * 24 * 3600)
}

fn serialize_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

impl Default for AuditConfig {
    fn default() -> Self {
        super::section_defaults()
    }
}

impl AuditConfig {
    /// The log off.
    pub fn off() -> Self {
        AuditConfig {
            enabled: false,
            ..Self::default()
        }
    }
}
