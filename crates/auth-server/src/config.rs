//! The server's configuration file: the core's sections, `auth-http`'s
//! `[http]` and `[events]`, and the server's own `[server]` and
//! `[management]`, each taken by its owner from one document.

use std::path::Path;
use std::time::Duration;

use auth_events::EventsConfig;
use auth_http::HttpConfig;
use auth_module::{Config, ConfigDocument, ConfigError, Secret, deserialize_duration};
use serde::Deserialize;

/// Every section a server file may have.
const SECTIONS: [&str; 9] = [
    "events",
    "http",
    "limits",
    "management",
    "mfa",
    "providers",
    "server",
    "state",
    "store",
];

/// The whole server configuration.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AppConfig {
    /// The core's sections: `[[providers]]`, `[store]`, `[state]`,
    /// `http.auth_methods_per_actor`.
    pub module: Config,
    /// `[http]`.
    pub http: HttpConfig,
    /// `[events]`.
    pub events: EventsConfig,
    /// `[server]`.
    pub server: ServerConfig,
    /// `[management]`.
    pub management: ManagementConfig,
}

impl AppConfig {
    /// The default sections with the given core configuration.
    pub fn new(module: Config) -> Self {
        AppConfig {
            module,
            http: HttpConfig::default(),
            events: EventsConfig::default(),
            server: ServerConfig::default(),
            management: ManagementConfig::default(),
        }
    }

    /// Each owner takes its sections from `doc`; anything left is an error.
    pub fn from_document(mut doc: ConfigDocument) -> Result<Self, ConfigError> {
        // The core first: it takes `http.auth_methods_per_actor` out of `[http]`.
        let module = Config::from_document(&mut doc)?;
        if !cfg!(feature = "mfa") && module.mfa.is_some() {
            return Err(ConfigError::new(
                "[mfa]: this auth-server was built without MFA; enable its `mfa` feature",
            ));
        }
        let config = AppConfig {
            module,
            http: HttpConfig::from_document(&mut doc)?,
            events: EventsConfig::from_document(&mut doc)?,
            server: ServerConfig::from_document(&mut doc)?,
            management: ManagementConfig::from_document(&mut doc)?,
        };
        doc.finish(&SECTIONS)?;
        Ok(config)
    }

    /// Reads a TOML or JSON (`.json`) file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        Self::from_document(ConfigDocument::from_file(path)?).map_err(|e| {
            let prefix = format!("config file {}: ", path.display());
            if e.message().starts_with(&prefix) {
                e
            } else {
                ConfigError::new(format!("{prefix}{}", e.message()))
            }
        })
    }

    /// Logs, as warnings, what a server starting with this configuration
    /// should be told: `[http]`'s short previous secrets and until when they
    /// verify (or that they no longer do), a `jwt_secret` that verifies
    /// nothing under an asymmetric algorithm.
    pub(crate) fn warn_at_start(&self) {
        for warning in self.http.startup_warnings() {
            tracing::warn!("{warning}");
        }
    }

    /// Parses TOML text.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        Self::from_document(ConfigDocument::from_toml_str(text)?)
    }

    /// Parses JSON text.
    pub fn from_json_str(text: &str) -> Result<Self, ConfigError> {
        Self::from_document(ConfigDocument::from_json_str(text)?)
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
    /// The server's public origin (`https://auth.example.com`) when it runs
    /// behind a proxy: the scheme and host providers see come from it rather
    /// than from the request. Forwarded headers are never trusted.
    #[serde(default)]
    pub public_url: Option<String>,
    /// The longest a client may take to send a request's headers, including
    /// the wait for the next request on a kept-alive connection. Default 10 s.
    #[serde(
        default = "default_header_timeout",
        deserialize_with = "deserialize_duration"
    )]
    pub header_timeout: Duration,
    /// The longest a request may take, body and answer included; past it the
    /// answer is 408. Default 30 s.
    #[serde(
        default = "default_request_timeout",
        deserialize_with = "deserialize_duration"
    )]
    pub request_timeout: Duration,
    /// A connection with no bytes in either direction this long is closed.
    /// Default 60 s.
    #[serde(
        default = "default_idle_timeout",
        deserialize_with = "deserialize_duration"
    )]
    pub idle_timeout: Duration,
    /// Connections served at once; more are closed as soon as accepted.
    /// Default 4096.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Where Prometheus metrics are served (`GET /metrics`), on a listener
    /// of their own, e.g. `127.0.0.1:9464`. Default: off.
    #[serde(default)]
    pub metrics_listen: Option<String>,
    /// `text` (default) or `json`: one JSON object per log line.
    #[serde(default)]
    pub log_format: LogFormat,
}

/// The format of log lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

fn default_header_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_idle_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_max_connections() -> usize {
    4096
}

fn default_listen() -> String {
    "127.0.0.1:9000".to_owned()
}

impl Default for ServerConfig {
    fn default() -> Self {
        auth_module::section_defaults()
    }
}

impl ServerConfig {
    /// Takes `[server]` out of `doc`.
    pub fn from_document(doc: &mut ConfigDocument) -> Result<Self, ConfigError> {
        let config: ServerConfig = doc.take_or_default("server")?;
        for (key, d) in [
            ("header_timeout", config.header_timeout),
            ("request_timeout", config.request_timeout),
            ("idle_timeout", config.idle_timeout),
        ] {
            if d.is_zero() {
                return Err(ConfigError::new(format!("server.{key}: must be positive")));
            }
        }
        if config.max_connections == 0 {
            return Err(ConfigError::new(
                "server.max_connections: must be at least 1",
            ));
        }
        if let Some(url) = &config.public_url {
            auth_http::PublicOrigin::parse(url)
                .map_err(|e| ConfigError::new(format!("server.public_url: {e}")))?;
        }
        Ok(config)
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
    /// Whether the operator console is served at `/admin/` (needs `api_key`:
    /// the console signs in with it). Default false.
    #[serde(default)]
    pub console: bool,
}

impl ManagementConfig {
    /// Takes `[management]` out of `doc`.
    pub fn from_document(doc: &mut ConfigDocument) -> Result<Self, ConfigError> {
        let config: ManagementConfig = doc.take_or_default("management")?;
        if let Some(key) = &config.api_key
            && key.expose().len() < 16
        {
            return Err(ConfigError::new(
                "management.api_key: must be at least 16 characters",
            ));
        }
        if config.console && config.api_key.is_none() {
            return Err(ConfigError::new(
                "management.console: needs management.api_key (the console signs in with it)",
            ));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROVIDERS: &str = "[[providers]]\nresolve='emailpass'\nid='a'\n";

    #[test]
    fn unknown_sections_and_keys_are_named() {
        let e = AppConfig::from_toml_str(&format!("[htp]\n{PROVIDERS}")).unwrap_err();
        assert!(e.message().contains("unknown field `htp`"), "{e}");
        let e =
            AppConfig::from_toml_str(&format!("[http]\njwt_expiry = 1\n{PROVIDERS}")).unwrap_err();
        assert!(
            e.message()
                .contains("at http.jwt_expiry: unknown field `jwt_expiry`"),
            "{e}"
        );
        let e = AppConfig::from_toml_str(&format!("[server]\nlisten='x'\nport=1\n{PROVIDERS}"))
            .unwrap_err();
        assert!(
            e.message().contains("at server.port: unknown field `port`"),
            "{e}"
        );
        let e = AppConfig::from_toml_str(&format!(
            "[events.webhook]\nurl='ftp://x'\nsecret='s'\n{PROVIDERS}"
        ))
        .unwrap_err();
        assert_eq!(e.message(), "events.webhook.url: must be an https:// URL");
        let e = AppConfig::from_toml_str(&format!(
            "[events.webhook]\nurl='http://hooks.example.com/x'\nsecret='s'\n{PROVIDERS}"
        ))
        .unwrap_err();
        assert!(
            e.message()
                .starts_with("events.webhook.url: must be https://"),
            "{e}"
        );
        for ok in [
            "https://hooks.example.com/x",
            "http://127.0.0.1:9/x",
            "http://[::1]/x",
            "http://localhost/x",
        ] {
            AppConfig::from_toml_str(&format!(
                "[events.webhook]\nurl='{ok}'\nsecret='s'\n{PROVIDERS}"
            ))
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let e = AppConfig::from_toml_str(&format!("[http]\njwt_secret='short'\n{PROVIDERS}"))
            .unwrap_err();
        assert!(
            e.message()
                .starts_with("http.jwt_secret: must be at least 32 bytes"),
            "{e}"
        );
    }

    #[test]
    fn every_owner_gets_its_keys() {
        let c = AppConfig::from_toml_str(&format!(
            "[http]\njwt_secret='0123456789abcdef0123456789abcdef'\njwt_expires_in='1h'\n[http.auth_methods_per_actor]\ncustomer=['a']\n\
             [server]\nlisten='127.0.0.1:1'\npublic_url='https://auth.example.com'\n\
             [management]\napi_key='0123456789abcdef'\n[events]\nlog=true\n{PROVIDERS}"
        ))
        .unwrap();
        assert_eq!(c.http.jwt_expires_in.as_secs(), 3600);
        assert_eq!(c.module.auth_methods_per_actor.unwrap()["customer"], ["a"]);
        assert_eq!(c.server.listen, "127.0.0.1:1");
        assert!(c.events.log);
        assert!(c.management.api_key.is_some());
        let e = AppConfig::from_toml_str(&format!("[management]\napi_key='short'\n{PROVIDERS}"))
            .unwrap_err();
        assert_eq!(
            e.message(),
            "management.api_key: must be at least 16 characters"
        );
        let e = AppConfig::from_toml_str(&format!(
            "[server]\npublic_url='auth.example.com'\n{PROVIDERS}"
        ))
        .unwrap_err();
        assert!(e.message().starts_with("server.public_url: "), "{e}");
    }
}
