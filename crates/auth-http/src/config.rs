//! `[http]`: tokens, sessions, CORS and the body limit, owned by this crate.
//! (`http.auth_methods_per_actor` belongs to the core's
//! [`auth_module::Config`], which takes it first.)

use std::time::{Duration, SystemTime};

use auth_module::{ConfigDocument, ConfigError, Secret, deserialize_duration};
use serde::{Deserialize, Deserializer};

/// The shortest secret `jwt_secret` and `jwt_previous_secrets` take (the
/// latter unless `weak_previous_secrets_until` allows shorter ones).
const MIN_SECRET_BYTES: usize = 32;

/// How far ahead `weak_previous_secrets_until` may be at start-up.
const MAX_WEAK_SECRETS_AHEAD: Duration = Duration::from_secs(30 * 24 * 3600);

/// `[http]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct HttpConfig {
    /// The HS256 secret of auth JWTs. Required to serve HTTP under HS256; no
    /// built-in default. With another `jwt_algorithm` it verifies nothing (list
    /// it in `jwt_previous_secrets` to keep its tokens verifying).
    #[serde(default)]
    pub jwt_secret: Option<Secret>,
    /// Lifetime of auth JWTs (`24h`, `15m`, ... or seconds). Default 24 h.
    #[serde(
        default = "default_lifetime",
        deserialize_with = "deserialize_duration"
    )]
    pub jwt_expires_in: Duration,
    /// Session cookie name. Default `connect.sid`.
    #[serde(default = "default_cookie_name")]
    pub session_cookie_name: String,
    /// Whether the session cookie carries `Secure`. Default false.
    #[serde(default)]
    pub session_cookie_secure: bool,
    /// Lifetime of server-side sessions. Default 24 h.
    #[serde(
        default = "default_lifetime",
        deserialize_with = "deserialize_duration"
    )]
    pub session_ttl: Duration,
    /// Origins allowed by CORS on `/auth/*`. Default none.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// Largest accepted request body in bytes. Default 100 KiB.
    #[serde(default = "default_body_limit")]
    pub body_limit: usize,
    /// Proxies (CIDRs or addresses) whose `X-Forwarded-For` is believed: the
    /// client address is then the rightmost entry that is not one of them.
    /// Default none: the header is ignored and the socket peer is the client.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// How long a device (a session or token family) lives unused; then it
    /// is dropped and its credentials refused. Default 30 days.
    #[serde(
        default = "default_device_idle_ttl",
        deserialize_with = "deserialize_duration"
    )]
    pub device_idle_ttl: Duration,
    /// Whether `GET /openapi.json` serves the OpenAPI document of the
    /// routes. Default true.
    #[serde(default = "default_true")]
    pub openapi: bool,
    /// Sessions one identity may hold; creating one more ends the oldest.
    /// Default 20.
    #[serde(default = "default_max_sessions")]
    pub max_sessions_per_identity: usize,
    /// How tokens are signed: `HS256` (default, with `jwt_secret`), or
    /// `ES256`, `EdDSA`, `RS256` with `jwt_private_key_file`.
    #[serde(default = "default_algorithm")]
    pub jwt_algorithm: String,
    /// The PKCS#8 PEM private key of an asymmetric `jwt_algorithm`.
    #[serde(default)]
    pub jwt_private_key_file: Option<std::path::PathBuf>,
    /// SPKI PEM public keys of earlier key pairs: their tokens keep
    /// verifying (until they expire) and they stay in the JWKS.
    #[serde(default)]
    pub jwt_previous_public_key_files: Vec<std::path::PathBuf>,
    /// Earlier HS256 secrets: their tokens keep verifying until they expire.
    /// Each is at least 32 bytes, unless `weak_previous_secrets_until` is set.
    #[serde(default)]
    pub jwt_previous_secrets: Vec<Secret>,
    /// Until when entries of `jwt_previous_secrets` shorter than 32 bytes (a
    /// Medusa `jwtSecret` such as `supersecret`) are accepted: an RFC 3339
    /// time (`2025-07-01T00:00:00Z`) at most 30 days ahead at start-up. They
    /// only verify, never sign, and a token that verifies under nothing else
    /// is refused from that time on. A time already past is accepted (with a
    /// warning at start-up) and such secrets then verify nothing. Absent:
    /// short previous secrets are refused.
    #[serde(default, deserialize_with = "deserialize_time_text")]
    pub weak_previous_secrets_until: Option<String>,
    /// Whether [`HttpConfig::from_document`] checked it: then
    /// [`crate::AuthService::new`] does not check it again.
    #[serde(skip)]
    checked: bool,
}

/// An RFC 3339 time as written: a string, or a TOML offset date-time (which
/// reaches here as a one-key table).
fn deserialize_time_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    use serde::de::Error as _;
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(s) => Ok(Some(s)),
        serde_json::Value::Object(m) if m.len() == 1 => match m.get("$__toml_private_datetime") {
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            _ => Err(D::Error::custom(TIME_EXPECTED)),
        },
        _ => Err(D::Error::custom(TIME_EXPECTED)),
    }
}

const TIME_EXPECTED: &str = "expected an RFC 3339 time such as \"2025-07-01T00:00:00Z\"";

fn default_algorithm() -> String {
    "HS256".to_owned()
}

fn default_max_sessions() -> usize {
    auth_module::flows::DEFAULT_MAX_SESSIONS_PER_IDENTITY
}

fn default_true() -> bool {
    true
}

fn default_device_idle_ttl() -> Duration {
    auth_module::flows::DEFAULT_DEVICE_IDLE_TTL
}

fn default_lifetime() -> Duration {
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
        auth_module::section_defaults()
    }
}

/// The error for HS256 without `jwt_secret`.
fn secret_required() -> ConfigError {
    ConfigError::new("http.jwt_secret is required (e.g. jwt_secret = \"${AUTH_JWT_SECRET}\")")
}

/// The error for a short previous secret without `weak_previous_secrets_until`.
fn short_previous_secret(i: usize) -> ConfigError {
    ConfigError::new(format!(
        "http.jwt_previous_secrets[{i}]: must be at least 32 bytes"
    ))
}

impl HttpConfig {
    /// The token signer and verifiers `[http]` describes: HS256 with
    /// `jwt_secret`, or the asymmetric key of `jwt_private_key_file` (then
    /// `jwt_secret` verifies nothing); earlier public keys and secrets verify
    /// too, short secrets only until `weak_previous_secrets_until`.
    pub fn tokens(&self) -> Result<auth_module::Tokens, ConfigError> {
        use std::sync::Arc;
        let secret = self.jwt_secret.as_ref().filter(|s| !s.expose().is_empty());
        let hs256 = |s: &Secret| -> Arc<dyn auth_module::Signer> {
            Arc::new(auth_module::Hs256Signer::new(s))
        };
        let read = |path: &std::path::Path, key: &str| {
            std::fs::read_to_string(path).map_err(|e| {
                ConfigError::new(format!("{key}: cannot read {}: {e}", path.display()))
            })
        };
        let weak_until = self.weak_secrets_deadline()?;
        let mut earlier: Vec<Arc<dyn auth_module::Signer>> = Vec::new();
        for (i, s) in self.jwt_previous_secrets.iter().enumerate() {
            if s.expose().len() >= MIN_SECRET_BYTES {
                earlier.push(hs256(s));
            } else if let Some(until) = weak_until.filter(|_| !s.expose().is_empty()) {
                // Verify-only, and only until the deadline, read at each check.
                earlier.push(Arc::new(auth_module::VerifyUntil::new(
                    auth_module::Hs256Signer::new(s),
                    until,
                )));
            } else {
                return Err(short_previous_secret(i));
            }
        }
        let signer: Arc<dyn auth_module::Signer> =
            match auth_module::JwtAlgorithm::parse(&self.jwt_algorithm) {
                None => hs256(secret.ok_or_else(secret_required)?),
                Some(algorithm) => {
                    let path = self.jwt_private_key_file.as_deref().ok_or_else(|| {
                    ConfigError::new(
                        "http.jwt_private_key_file: required with an asymmetric http.jwt_algorithm",
                    )
                })?;
                    let pem = read(path, "http.jwt_private_key_file")?;
                    let signer = auth_module::KeyPairSigner::from_pkcs8_pem(algorithm, &pem)
                        .map_err(|e| {
                            ConfigError::new(format!("http.jwt_private_key_file: {}", e.message()))
                        })?;
                    // `jwt_secret` verifies nothing now: HS256 tokens from
                    // before the switch verify only under `jwt_previous_secrets`.
                    Arc::new(signer)
                }
            };
        for (i, path) in self.jwt_previous_public_key_files.iter().enumerate() {
            let key = format!("http.jwt_previous_public_key_files[{i}]");
            let pem = read(path, &key)?;
            let verifier = auth_module::PublicKeyVerifier::from_spki_pem(&pem)
                .map_err(|e| ConfigError::new(format!("{key}: {}", e.message())))?;
            earlier.push(Arc::new(verifier));
        }
        Ok(auth_module::Tokens::new(signer, self.jwt_expires_in).with_verifiers(earlier))
    }

    /// Whether tokens can be signed: HS256 needs `jwt_secret` (there is no
    /// built-in default); an asymmetric algorithm needs its key file, which
    /// [`HttpConfig::from_document`] checks.
    ///
    /// # Errors
    /// Under HS256 without `jwt_secret`.
    pub fn require_signing_key(&self) -> Result<(), ConfigError> {
        match auth_module::JwtAlgorithm::parse(&self.jwt_algorithm) {
            None if self.jwt_secret.is_none() => Err(secret_required()),
            _ => Ok(()),
        }
    }

    /// `weak_previous_secrets_until` as a time, if set.
    ///
    /// # Errors
    /// When it is not an RFC 3339 time (with its offset).
    pub fn weak_secrets_deadline(&self) -> Result<Option<SystemTime>, ConfigError> {
        self.weak_previous_secrets_until
            .as_deref()
            .map(|text| {
                auth_module::flows::parse_iso(text)
                    .map(SystemTime::from)
                    .ok_or_else(|| {
                        ConfigError::new(format!(
                            "http.weak_previous_secrets_until: \"{text}\" is not an RFC 3339 time \
                             (e.g. \"2025-07-01T00:00:00Z\", with its offset)"
                        ))
                    })
            })
            .transpose()
    }

    /// What a server should warn about when it starts with this `[http]`:
    /// short previous secrets kept until a time (or no longer, that time
    /// being past), and a `jwt_secret` that verifies nothing under another
    /// algorithm. Empty when all is as usual.
    pub fn startup_warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let weak = self
            .jwt_previous_secrets
            .iter()
            .filter(|s| s.expose().len() < MIN_SECRET_BYTES)
            .count();
        if let (Some(text), Ok(Some(until))) = (
            &self.weak_previous_secrets_until,
            self.weak_secrets_deadline(),
        ) {
            warnings.push(if until <= SystemTime::now() {
                format!(
                    "http.weak_previous_secrets_until = {text} is past: the {weak} \
                     previous secret(s) shorter than 32 bytes verify nothing; remove them \
                     and the option"
                )
            } else {
                format!(
                    "http.weak_previous_secrets_until: {weak} previous secret(s) shorter \
                     than 32 bytes verify tokens until {text}; tokens that verify only \
                     under them are refused after it"
                )
            });
        }
        if self.jwt_algorithm != "HS256" && self.jwt_secret.is_some() {
            warnings.push(format!(
                "http.jwt_secret verifies nothing with http.jwt_algorithm = \"{}\"; list it \
                 in http.jwt_previous_secrets to keep its HS256 tokens verifying",
                self.jwt_algorithm
            ));
        }
        warnings
    }

    /// Takes `[http]` out of `doc` (after the core took
    /// `http.auth_methods_per_actor`) and checks it, once.
    pub fn from_document(doc: &mut ConfigDocument) -> Result<Self, ConfigError> {
        let mut config: HttpConfig = doc.take_or_default("http")?;
        config.validate()?;
        config.checked = true;
        Ok(config)
    }

    /// Whether [`HttpConfig::from_document`] checked it.
    pub(crate) fn is_checked(&self) -> bool {
        self.checked
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(secret) = &self.jwt_secret
            && secret.expose().len() < MIN_SECRET_BYTES
        {
            return Err(ConfigError::new(
                "http.jwt_secret: must be at least 32 bytes (use a long random secret, e.g. 64 hex characters)",
            ));
        }
        let weak_until = self.weak_secrets_deadline()?;
        if let Some(until) = weak_until
            && until
                .duration_since(SystemTime::now())
                .is_ok_and(|ahead| ahead > MAX_WEAK_SECRETS_AHEAD)
        {
            return Err(ConfigError::new(
                "http.weak_previous_secrets_until: must be at most 30 days ahead \
                 (short secrets are kept only for a migration)",
            ));
        }
        for (i, secret) in self.jwt_previous_secrets.iter().enumerate() {
            if secret.expose().len() < MIN_SECRET_BYTES && weak_until.is_none() {
                return Err(short_previous_secret(i));
            }
            if secret.expose().is_empty() {
                return Err(ConfigError::new(format!(
                    "http.jwt_previous_secrets[{i}]: must not be empty"
                )));
            }
        }
        match self.jwt_algorithm.as_str() {
            "HS256" => {
                if self.jwt_private_key_file.is_some() {
                    return Err(ConfigError::new(
                        "http.jwt_private_key_file: needs an asymmetric http.jwt_algorithm (ES256, EdDSA or RS256)",
                    ));
                }
            }
            other if auth_module::JwtAlgorithm::parse(other).is_some() => {
                if self.jwt_private_key_file.is_none() {
                    return Err(ConfigError::new(format!(
                        "http.jwt_private_key_file: required with http.jwt_algorithm = \"{other}\""
                    )));
                }
            }
            other => {
                return Err(ConfigError::new(format!(
                    "http.jwt_algorithm: \"{other}\" is not one of HS256, ES256, EdDSA, RS256"
                )));
            }
        }
        if self.jwt_expires_in.is_zero() {
            return Err(ConfigError::new("http.jwt_expires_in: must be positive"));
        }
        for p in &self.trusted_proxies {
            crate::client::Cidr::parse(p)
                .map_err(|e| ConfigError::new(format!("http.trusted_proxies: {e}")))?;
        }
        if self.max_sessions_per_identity == 0 {
            return Err(ConfigError::new(
                "http.max_sessions_per_identity: must be at least 1",
            ));
        }
        if self.device_idle_ttl.is_zero() {
            return Err(ConfigError::new("http.device_idle_ttl: must be positive"));
        }
        if self.session_ttl.is_zero() {
            return Err(ConfigError::new("http.session_ttl: must be positive"));
        }
        if self.session_cookie_name.is_empty()
            || !self
                .session_cookie_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(ConfigError::new(
                "http.session_cookie_name: use letters, digits, '.', '_' and '-' only",
            ));
        }
        for o in &self.cors_origins {
            if axum::http::HeaderValue::from_str(o).is_err() {
                return Err(ConfigError::new(format!(
                    "http.cors_origins: invalid origin \"{o}\""
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use auth_module::{AuthIdentity, ConfigDocument, Secret, Tokens};
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    use super::HttpConfig;

    const SECRET: &str = "a current secret of more than thirty-two bytes";
    const OLD: &str = "an earlier secret of more than thirty-two bytes";

    fn parse(http: &str) -> Result<HttpConfig, String> {
        let mut doc = ConfigDocument::from_toml_str(&format!("[http]\n{http}\n")).unwrap();
        HttpConfig::from_document(&mut doc).map_err(|e| e.message().to_owned())
    }

    /// RFC 3339, `offset` from now.
    fn at(offset: time::Duration) -> String {
        (OffsetDateTime::now_utc() + offset)
            .format(&Rfc3339)
            .unwrap()
    }

    /// An auth token signed with `secret`, as an earlier server issued it.
    fn token_from(secret: &str) -> String {
        let identity = AuthIdentity::new("authid_1", OffsetDateTime::now_utc());
        Tokens::hs256(&Secret::new(secret), Duration::from_secs(60))
            .issue(&identity, "customer", "emailpass")
            .unwrap()
    }

    fn es256_key() -> String {
        format!(
            "{}/../../tests/fixtures/jwt/es256.pem",
            env!("CARGO_MANIFEST_DIR")
        )
    }

    #[test]
    fn short_previous_secrets_need_weak_previous_secrets_until() {
        let e = parse(&format!(
            "jwt_secret = '{SECRET}'\njwt_previous_secrets = ['{OLD}', 'supersecret']"
        ))
        .unwrap_err();
        assert_eq!(e, "http.jwt_previous_secrets[1]: must be at least 32 bytes");

        let c = parse(&format!(
            "jwt_secret = '{SECRET}'\njwt_previous_secrets = ['{OLD}', 'supersecret']\n\
             weak_previous_secrets_until = '{}'",
            at(time::Duration::days(7))
        ))
        .unwrap();
        let tokens = c.tokens().unwrap();
        for secret in ["supersecret", OLD, SECRET] {
            assert!(tokens.verify(&token_from(secret)).is_some(), "{secret}");
        }
        assert!(tokens.verify(&token_from("supersecret2")).is_none());
        // New tokens are signed with jwt_secret alone, never the weak secret.
        let identity = AuthIdentity::new("authid_2", OffsetDateTime::now_utc());
        let fresh = tokens.issue(&identity, "customer", "emailpass").unwrap();
        let only_current = Tokens::hs256(&Secret::new(SECRET), Duration::from_secs(60));
        assert!(only_current.verify(&fresh).is_some());
        let warnings = c.startup_warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("1 previous secret(s) shorter than 32 bytes verify tokens until"),
            "{warnings:?}"
        );
        assert!(
            warnings[0].contains(c.weak_previous_secrets_until.as_deref().unwrap()),
            "names the time: {warnings:?}"
        );
    }

    #[test]
    fn jwt_secret_is_never_weak() {
        let e = parse(&format!(
            "jwt_secret = 'supersecret'\nweak_previous_secrets_until = '{}'",
            at(time::Duration::days(1))
        ))
        .unwrap_err();
        assert!(
            e.starts_with("http.jwt_secret: must be at least 32 bytes"),
            "{e}"
        );
    }

    #[test]
    fn the_deadline_is_at_most_30_days_ahead_and_well_formed() {
        let e = parse(&format!(
            "jwt_secret = '{SECRET}'\njwt_previous_secrets = ['supersecret']\n\
             weak_previous_secrets_until = '{}'",
            at(time::Duration::days(31))
        ))
        .unwrap_err();
        assert!(
            e.starts_with("http.weak_previous_secrets_until: must be at most 30 days ahead"),
            "{e}"
        );
        parse(&format!(
            "jwt_secret = '{SECRET}'\njwt_previous_secrets = ['supersecret']\n\
             weak_previous_secrets_until = '{}'",
            at(time::Duration::days(29))
        ))
        .unwrap();
        for bad in ["'tomorrow'", "'2025-07-01'", "'2025-07-01T00:00:00'", "12"] {
            let e = parse(&format!(
                "jwt_secret = '{SECRET}'\nweak_previous_secrets_until = {bad}"
            ))
            .unwrap_err();
            assert!(e.contains("http.weak_previous_secrets_until"), "{bad}: {e}");
            assert!(e.contains("RFC 3339"), "{bad}: {e}");
        }
        // A TOML date-time needs no quotes.
        let c = parse(&format!(
            "jwt_secret = '{SECRET}'\nweak_previous_secrets_until = 2020-01-01T00:00:00Z"
        ))
        .unwrap();
        assert_eq!(
            c.weak_secrets_deadline().unwrap(),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_577_836_800))
        );
        // Not even then is an empty secret a secret.
        let e = parse(&format!(
            "jwt_secret = '{SECRET}'\njwt_previous_secrets = ['']\n\
             weak_previous_secrets_until = '{}'",
            at(time::Duration::days(1))
        ))
        .unwrap_err();
        assert_eq!(e, "http.jwt_previous_secrets[0]: must not be empty");
    }

    #[test]
    fn a_past_deadline_is_accepted_and_weak_secrets_verify_nothing() {
        let c = parse(&format!(
            "jwt_secret = '{SECRET}'\njwt_previous_secrets = ['supersecret']\n\
             weak_previous_secrets_until = '{}'",
            at(-time::Duration::hours(1))
        ))
        .unwrap();
        let tokens = c.tokens().unwrap();
        assert!(tokens.verify(&token_from("supersecret")).is_none());
        assert!(tokens.verify(&token_from(SECRET)).is_some());
        let warnings = c.startup_warnings();
        assert!(
            warnings.len() == 1 && warnings[0].contains("is past"),
            "{warnings:?}"
        );
    }

    /// The deadline is read at each verification: a token accepted before it
    /// is refused after it, with no new `Tokens`.
    #[test]
    fn weak_secrets_stop_verifying_at_the_deadline() {
        let c = parse(&format!(
            "jwt_secret = '{SECRET}'\njwt_previous_secrets = ['supersecret']\n\
             weak_previous_secrets_until = '{}'",
            at(time::Duration::milliseconds(1500))
        ))
        .unwrap();
        let tokens = c.tokens().unwrap();
        let token = token_from("supersecret");
        assert!(tokens.verify(&token).is_some());
        std::thread::sleep(Duration::from_millis(1600));
        assert!(tokens.verify(&token).is_none());
        assert!(tokens.verify(&token_from(SECRET)).is_some());
    }

    #[test]
    fn jwt_secret_verifies_nothing_under_another_algorithm() {
        let es256 = format!(
            "jwt_algorithm = 'ES256'\njwt_private_key_file = '{}'",
            es256_key()
        );
        let c = parse(&format!("{es256}\njwt_secret = '{SECRET}'")).unwrap();
        let tokens = c.tokens().unwrap();
        assert!(
            tokens.verify(&token_from(SECRET)).is_none(),
            "jwt_secret alone no longer verifies"
        );
        let warnings = c.startup_warnings();
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("http.jwt_secret verifies nothing")),
            "{warnings:?}"
        );
        let c = parse(&format!(
            "{es256}\njwt_secret = '{SECRET}'\njwt_previous_secrets = ['{SECRET}']"
        ))
        .unwrap();
        assert!(c.tokens().unwrap().verify(&token_from(SECRET)).is_some());
        let c = parse(&format!("{es256}\njwt_previous_secrets = ['{OLD}']")).unwrap();
        assert!(c.tokens().unwrap().verify(&token_from(OLD)).is_some());
        assert!(c.startup_warnings().is_empty());
    }
}
