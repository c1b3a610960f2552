//! `[http]`: tokens, sessions, CORS and the body limit, owned by this crate.
//! (`http.auth_methods_per_actor` belongs to the core's
//! [`auth_module::Config`], which takes it first.)

use std::time::Duration;

use auth_module::{ConfigDocument, ConfigError, Secret, deserialize_duration};
use serde::Deserialize;

/// `[http]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct HttpConfig {
    /// The HS256 secret of auth JWTs. Required to serve HTTP; no built-in default.
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
    #[serde(default)]
    pub jwt_previous_secrets: Vec<Secret>,
}

fn default_algorithm() -> String {
    "HS256".to_owned()
}

fn default_max_sessions() -> usize {
    auth_module::flows::DEFAULT_MAX_SESSIONS_PER_IDENTITY
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
        HttpConfig {
            jwt_secret: None,
            jwt_expires_in: default_lifetime(),
            session_cookie_name: default_cookie_name(),
            session_cookie_secure: false,
            session_ttl: default_lifetime(),
            cors_origins: Vec::new(),
            body_limit: default_body_limit(),
            max_sessions_per_identity: default_max_sessions(),
            trusted_proxies: Vec::new(),
            jwt_algorithm: default_algorithm(),
            jwt_private_key_file: None,
            jwt_previous_public_key_files: Vec::new(),
            jwt_previous_secrets: Vec::new(),
        }
    }
}

impl HttpConfig {
    /// The token signer and verifiers `[http]` describes: HS256 with
    /// `jwt_secret`, or the asymmetric key of `jwt_private_key_file` (with
    /// `jwt_secret`, if set, still verifying HS256 tokens issued before the
    /// switch); earlier public keys and secrets verify too.
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
        let mut earlier: Vec<Arc<dyn auth_module::Signer>> =
            self.jwt_previous_secrets.iter().map(hs256).collect();
        let signer: Arc<dyn auth_module::Signer> =
            match auth_module::JwtAlgorithm::parse(&self.jwt_algorithm) {
                None => hs256(secret.ok_or_else(|| {
                    ConfigError::new("http.jwt_secret is required to serve HTTP")
                })?),
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
                    // A secret then only verifies HS256 tokens from before the switch.
                    earlier.extend(secret.map(hs256));
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

    /// Takes `[http]` out of `doc` (after the core took
    /// `http.auth_methods_per_actor`) and validates it.
    pub fn from_document(doc: &mut ConfigDocument) -> Result<Self, ConfigError> {
        let config: HttpConfig = doc.take_or_default("http")?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(secret) = &self.jwt_secret
            && secret.expose().len() < 32
        {
            return Err(ConfigError::new(
                "http.jwt_secret: must be at least 32 bytes (use a long random secret, e.g. 64 hex characters)",
            ));
        }
        for (i, secret) in self.jwt_previous_secrets.iter().enumerate() {
            if secret.expose().len() < 32 {
                return Err(ConfigError::new(format!(
                    "http.jwt_previous_secrets[{i}]: must be at least 32 bytes"
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
