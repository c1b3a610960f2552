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

mod document;
mod duration;
mod sections;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::ConfigError;

pub use document::{ConfigDocument, Format, Secret};
pub use duration::deserialize_duration;
pub use sections::{
    AuditConfig, Limit, LimitsConfig, MfaConfig, MfaDisablePolicy, MfaProviders, ProviderConfig,
    StateConfig, StoreConfig, TotpConfig,
};
pub(crate) use sections::{
    default_challenge_max_attempts, default_challenge_ttl_seconds, default_failure_window_seconds,
};

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
    /// `[audit]`: the audit log.
    pub audit: AuditConfig,
    /// `[mfa]`: multi-factor authentication; absent, MFA methods are refused
    /// as Medusa refuses them without an encryption key.
    pub mfa: Option<MfaConfig>,
    /// `[http] auth_verifications_per_actor`: actor type -> what logins
    /// through which provider must have verified first.
    pub auth_verifications_per_actor: Option<BTreeMap<String, Vec<VerificationRule>>>,
    /// What [`Config::from_document`]'s check produced, handed to the
    /// builder so nothing is checked twice. Changing the config through the
    /// builder's setters drops it, and the builder checks again.
    checked: Option<Checked>,
}

/// The product of a passed [`Config`] check.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    /// `[mfa]`'s keys, built from its `encryption_key`s.
    pub(crate) mfa_keys: Option<crate::mfa::MfaKeys>,
}

/// The defaults of a section, read from its serde attributes (each field's
/// `#[serde(default = ...)]`), so a field's default is written once, beside
/// it: `impl Default for MySection { fn default() -> Self {
/// auth_module::section_defaults() } }`.
///
/// # Panics
/// When a field of `T` has no serde default: a mistake in `T`, which its
/// first use of `Default` shows.
pub fn section_defaults<T: serde::de::DeserializeOwned>() -> T {
    match serde_json::from_value(serde_json::Value::Object(serde_json::Map::new())) {
        Ok(defaults) => defaults,
        Err(e) => panic!(
            "{}: every field needs a serde default: {e}",
            std::any::type_name::<T>()
        ),
    }
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
const CORE_SECTIONS: [&str; 7] = [
    "audit",
    "http",
    "limits",
    "mfa",
    "providers",
    "state",
    "store",
];

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
            audit: AuditConfig::default(),
            mfa: None,
            auth_verifications_per_actor: None,
            checked: None,
        }
    }

    /// Takes the core's keys out of `doc` and checks them, once: the
    /// builder takes the result whole.
    pub fn from_document(doc: &mut ConfigDocument) -> Result<Config, ConfigError> {
        let auth_methods_per_actor = doc.take("http.auth_methods_per_actor")?;
        let actor_types = doc.take("http.actor_types")?;
        let auth_verifications_per_actor = doc.take("http.auth_verifications_per_actor")?;
        let mut config = Config {
            auth_verifications_per_actor,
            actor_types,
            providers: doc.take("providers")?.ok_or_else(|| {
                doc.error("invalid configuration: missing field `providers`".to_owned())
            })?,
            auth_methods_per_actor,
            store: doc.take_or_default("store")?,
            state: doc.take_or_default("state")?,
            limits: doc.take_or_default("limits")?,
            audit: doc.take_or_default("audit")?,
            mfa: doc.take("mfa")?,
            checked: None,
        };
        let checked = config
            .check()
            .map_err(|e| doc.error(e.message().to_owned()))?;
        config.checked = Some(checked);
        Ok(config)
    }

    /// The product of the check `from_document` ran, or of a new one when
    /// there was none (a config built in Rust, or changed by the builder).
    pub(crate) fn into_checked(mut self) -> Result<(Config, Checked), ConfigError> {
        let checked = match self.checked.take() {
            Some(checked) => checked,
            None => self.check()?,
        };
        Ok((self, checked))
    }

    /// Forgets a passed check: the builder calls it on every change.
    pub(crate) fn changed(&mut self) -> &mut Self {
        self.checked = None;
        self
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

    /// Checks what types alone cannot: ids, duplicates, references, and
    /// `[mfa]`'s bounds and keys.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check().map(|_| ())
    }

    /// Every check of the core's configuration, in one place.
    fn check(&self) -> Result<Checked, ConfigError> {
        if self.audit.retention.is_zero() {
            return Err(ConfigError::new("audit.retention: must be positive"));
        }
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
        let mfa_keys = self.mfa.as_ref().map(MfaConfig::validate).transpose()?;
        Ok(Checked { mfa_keys })
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::Value;

    use super::document::interpolate_str;
    use super::duration::parse_duration;
    use super::*;

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

    #[test]
    fn defaults_are_written_once_beside_their_fields() {
        let limits = LimitsConfig::default();
        let quarter = Duration::from_secs(15 * 60);
        assert_eq!(limits.login_per_identifier, Limit::new(20, quarter));
        assert_eq!(limits.register_per_address, Limit::new(200, quarter));
        assert_eq!(
            limits.verification_requests,
            Limit::new(5, Duration::from_secs(3600))
        );
        // A section read from an empty table is its default.
        let read: LimitsConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(
            serde_json::to_value(&read).unwrap(),
            serde_json::to_value(&limits).unwrap()
        );
        let totp = TotpConfig::default();
        assert_eq!(
            (totp.issuer.as_str(), totp.digits, totp.period, totp.window),
            ("Medusa", 6, 30, 1)
        );
        assert_eq!(StoreConfig::default().url.expose(), "sqlite://./auth.db");
        assert_eq!(StateConfig::default().key_prefix, "auth:");
    }

    #[test]
    fn off_turns_every_limit_off() {
        let off = serde_json::to_value(LimitsConfig::off()).unwrap();
        let on = serde_json::to_value(LimitsConfig::default()).unwrap();
        let (off, on) = (off.as_object().unwrap(), on.as_object().unwrap());
        assert_eq!(off.len(), on.len());
        assert!(off.len() >= 9, "{off:?}");
        for (key, limit) in off {
            assert_eq!(limit["count"], 0, "{key}");
            assert_ne!(on[key]["count"], 0, "{key} is on by default");
        }
    }

    #[test]
    #[should_panic(expected = "every field needs a serde default")]
    fn a_field_without_a_default_is_a_mistake_shown_at_once() {
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct Section {
            required: u32,
        }
        let _: Section = section_defaults();
    }

    #[test]
    fn a_read_config_carries_its_check_and_a_change_drops_it() {
        let base = "[store]\nurl = 'memory://'\n[[providers]]\nresolve = 'emailpass'\nid = 'e'\n\
                    [mfa]\nencryption_key = 'an encryption key of at least 32 chars'\n";
        let mut c = Config::from_toml_str(base).unwrap();
        assert!(c.checked.as_ref().is_some_and(|k| k.mfa_keys.is_some()));
        c.changed();
        assert!(c.checked.is_none());
        // Checked again when needed, with the same verdicts.
        c.providers
            .push(ProviderConfig::new("emailpass", "e", Value::Null));
        let e = c.into_checked().unwrap_err();
        assert!(e.message().contains("duplicate provider id"), "{e}");
        assert!(Config::new(Vec::new()).into_checked().is_ok());
    }
}
