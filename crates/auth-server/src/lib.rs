//! `auth-server`: Medusa's authentication routes as a ready service.
//!
//! ```text
//! auth-server serve [--config FILE] [--listen ADDR]
//! auth-server providers
//! auth-server check-config FILE
//! ```
//!
//! With no config file it runs on an embedded default: SQLite at `./auth.db`,
//! emailpass under id `emailpass`, 127.0.0.1:9000, sessions and reset marks in
//! the same SQLite file, and a random JWT secret generated once and kept in
//! `auth.jwt-secret` beside the database.
//!
//! | cargo feature | default | adds |
//! |---|---|---|
//! | `provider-emailpass` | yes | the email and password provider |
//! | `sqlite` | yes | `[store] url = "sqlite://PATH"` |
//! | `postgres` | yes | `[store] url = "postgres://…"` |

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use auth_http::AuthService;
use auth_module::{
    AuthModule, CachedIdentityStore, Config, ConfigError, IdentityStore, MemoryIdentityStore,
    MemoryStateStore, ProviderConfig, Secret, StateStore,
};
use auth_store_sql::SqlStore;
use axum::Router;

mod providers;

/// How many identities the embedded server keeps cached for token refresh.
const IDENTITY_CACHE_CAPACITY: usize = 100_000;

/// A server ready to listen.
#[derive(Debug)]
pub struct App {
    /// The configuration it was built from.
    pub config: Config,
    /// The auth service (module, tokens, settings).
    pub service: AuthService,
    /// The router to serve.
    pub router: Router,
}

/// The embedded default configuration: SQLite at `./auth.db`, emailpass, 127.0.0.1:9000.
pub fn default_config() -> Config {
    let mut c = Config::new(vec![ProviderConfig::new(
        "emailpass",
        "emailpass",
        serde_json::Value::Null,
    )]);
    c.store.url = Secret::new("sqlite://./auth.db");
    // Sessions and reset marks in the same file, so they survive restarts.
    c.state.url = Secret::new("sqlite://./auth.db");
    c
}

fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let rest = rest.split('?').next().unwrap_or(rest);
    (!rest.is_empty() && !rest.starts_with(":memory:")).then(|| PathBuf::from(rest))
}

/// Reads the secret kept beside the database, or makes and keeps a new one.
fn default_secret(store_url: &str) -> Result<Secret, ConfigError> {
    let dir = sqlite_path(store_url)
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let path = dir.join("auth.jwt-secret");
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() >= 32 => return Ok(Secret::new(s.trim())),
        Ok(_) => {
            return Err(ConfigError::new(format!(
                "{} holds a JWT secret shorter than 32 characters; delete it to make a new one",
                path.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(ConfigError::new(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| ConfigError::new(format!("cannot create {}: {e}", dir.display())))?;
    let secret = Secret::generate();
    write_private(&path, secret.expose())
        .map_err(|e| ConfigError::new(format!("cannot write {}: {e}", path.display())))?;
    tracing::info!(path = %path.display(), "generated a random JWT secret and saved it beside the database");
    Ok(secret)
}

#[cfg(unix)]
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(content.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    std::fs::write(path, content)
}

/// Reads `path`, or takes the embedded default when `None`.
pub fn load_config(path: Option<&Path>) -> Result<Config, ConfigError> {
    match path {
        Some(p) => {
            let c = Config::from_file(p)?;
            if c.http.jwt_secret.is_none() {
                return Err(ConfigError::new(format!(
                    "config file {}: http.jwt_secret is required (e.g. jwt_secret = \"${{AUTH_JWT_SECRET}}\")",
                    p.display()
                )));
            }
            Ok(c)
        }
        None => {
            let mut c = default_config();
            c.http.jwt_secret = Some(default_secret(c.store.url.expose())?);
            Ok(c)
        }
    }
}

/// Opens the stores a config names.
pub async fn open_stores(
    config: &Config,
) -> Result<(Arc<dyn IdentityStore>, Arc<dyn StateStore>), ConfigError> {
    let url = config.store.url.expose();
    let sql = if url == "memory://" {
        None
    } else {
        Some(Arc::new(
            open_sql("store.url", url, config.store.schema.as_deref()).await?,
        ))
    };
    let identities: Arc<dyn IdentityStore> = match &sql {
        None => Arc::new(MemoryIdentityStore::new()),
        // One process owns an embedded SQLite file, so a write-invalidated
        // cache can never answer stale.
        Some(store) if url.starts_with("sqlite:") => Arc::new(CachedIdentityStore::new(
            store.clone(),
            IDENTITY_CACHE_CAPACITY,
        )),
        Some(store) => store.clone(),
    };
    let state_url = config.state.url.expose();
    let state: Arc<dyn StateStore> = if state_url == "memory://" {
        Arc::new(MemoryStateStore::new())
    } else if state_url == url {
        // The same database: one pool serves both.
        match &sql {
            Some(store) => store.clone(),
            None => Arc::new(MemoryStateStore::new()),
        }
    } else {
        Arc::new(open_sql("state.url", state_url, None).await?)
    };
    Ok((identities, state))
}

/// Opens the SQL store at `url` (`what` names the config key in errors).
async fn open_sql(what: &str, url: &str, schema: Option<&str>) -> Result<SqlStore, ConfigError> {
    let engine = if url.starts_with("sqlite:") {
        "SQLite"
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        "PostgreSQL"
    } else {
        return Err(ConfigError::new(format!(
            "{what}: unsupported scheme; use sqlite://PATH, postgres://… or memory://"
        )));
    };
    #[cfg(feature = "postgres")]
    let store = match schema {
        Some(schema) => SqlStore::connect_postgres_schema(url, schema).await,
        None => SqlStore::connect(url).await,
    };
    // Without the feature, connect answers which feature adds PostgreSQL.
    #[cfg(not(feature = "postgres"))]
    let store = {
        let _ = schema;
        SqlStore::connect(url).await
    };
    store.map_err(|e| {
        ConfigError::new(format!(
            "{what}: cannot open the {engine} store: {}",
            e.message()
        ))
    })
}

/// Builds the module, the service and the router for `config`.
pub async fn build_app(config: Config) -> Result<App, ConfigError> {
    providers::link();
    let (identities, state) = open_stores(&config).await?;
    let events = auth_http::events::bus_from_config(&config.events)?;
    let module = AuthModule::builder()
        .config(config.clone())
        .identity_store(identities)
        .state_store(state)
        .events(events)
        .build()?;
    let service = AuthService::new(module, &config.http)?;
    let mut router = auth_http::router(service.clone());
    if let Some(key) = &config.management.api_key {
        router = router.merge(auth_http::management_router(service.clone(), key));
    }
    Ok(App {
        config,
        service,
        router,
    })
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// The linked provider kinds: `(identifier, display name)`.
pub fn linked_providers() -> Vec<(&'static str, &'static str)> {
    providers::link();
    auth_module::linked_providers()
        .into_iter()
        .map(|r| (r.identifier(), r.display_name()))
        .collect()
}

/// Checks a config file as `serve` would, without opening stores.
pub fn check_config(path: &Path) -> Result<String, ConfigError> {
    providers::link();
    let config = load_config(Some(path))?;
    let module = AuthModule::builder()
        .config(config.clone())
        .identity_store(Arc::new(MemoryIdentityStore::new()))
        .state_store(Arc::new(MemoryStateStore::new()))
        .build()?;
    AuthService::new(module.clone(), &config.http)?;
    auth_http::events::bus_from_config(&config.events)?;
    let ids: Vec<String> = module
        .providers()
        .into_iter()
        .map(|p| format!("{} ({})", p.id, p.identifier))
        .collect();
    Ok(format!(
        "{}: ok; providers: {}",
        path.display(),
        if ids.is_empty() {
            "none".to_owned()
        } else {
            ids.join(", ")
        }
    ))
}
