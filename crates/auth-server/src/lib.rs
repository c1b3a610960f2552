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
//! | `redis` | yes | `[state] url = "redis://…"` or `rediss://…` |
//! | `provider-google`, `provider-github`, `provider-oidc` | yes | social login |
//! | `provider-passkey` | yes | passkeys (WebAuthn) |
//!
//! An SQLite file belongs to one process: `serve` locks `{database}.lock`,
//! and a second process on the same file refuses to start.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use auth_http::AuthService;
use auth_module::{
    AuthModule, Config, ConfigError, MemoryIdentityStore, MemoryStateStore, ProviderConfig, Secret,
};
use axum::Router;

mod cli;
mod config;
pub mod console;
#[cfg(feature = "postgres")]
mod import;
mod metrics;
mod providers;
mod serve;
mod stores;

pub use cli::{Server, main};
pub use config::{AppConfig, LogFormat, ManagementConfig, ServerConfig};
#[cfg(feature = "postgres")]
pub use import::{ImportOptions, ImportSummary};
pub use metrics::Metrics;
pub use stores::{StoreLock, Stores, open_stores};

/// A server ready to listen.
#[derive(Debug)]
pub struct App {
    /// The configuration it was built from.
    pub config: AppConfig,
    /// The auth service (module, tokens, flows, settings).
    pub service: AuthService,
    /// The router to serve: the auth routes, beside which a host may merge
    /// its own. [`serve`] counts every request it answers in the metrics,
    /// merged routes included.
    pub router: Router,
    /// The locks of the SQLite files it writes, held until it is dropped.
    pub locks: Vec<StoreLock>,
    /// The metrics, when `[server] metrics_listen` is set.
    pub metrics: Option<Arc<Metrics>>,
    /// Where the metrics listener is bound (`[server] metrics_listen`).
    pub metrics_addr: Option<std::net::SocketAddr>,
    metrics_listener: Option<tokio::net::TcpListener>,
}

/// The embedded default configuration: SQLite at `./auth.db`, emailpass, 127.0.0.1:9000.
pub fn default_config() -> AppConfig {
    let mut module = Config::new(vec![ProviderConfig::new(
        "emailpass",
        "emailpass",
        serde_json::Value::Null,
    )]);
    module.store.url = Secret::new("sqlite://./auth.db");
    // Sessions and reset marks in the same file, so they survive restarts.
    module.state.url = Secret::new("sqlite://./auth.db");
    AppConfig::new(module)
}

/// Reads the secret kept beside the database, or makes and keeps a new one.
fn default_secret(store_url: &str) -> Result<Secret, ConfigError> {
    let dir = stores::sqlite_path(store_url)
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
pub fn load_config(path: Option<&Path>) -> Result<AppConfig, ConfigError> {
    match path {
        Some(p) => {
            let c = AppConfig::from_file(p)?;
            // A file names its signing key: no secret is made up for it.
            c.http.require_signing_key().map_err(|e| {
                ConfigError::new(format!("config file {}: {}", p.display(), e.message()))
            })?;
            Ok(c)
        }
        None => {
            let mut c = default_config();
            c.http.jwt_secret = Some(default_secret(c.module.store.url.expose())?);
            Ok(c)
        }
    }
}

/// The module of `config` over its stores (opened and locked as `serve`
/// does), and the stores' locks and identity cache.
async fn open_module(config: &AppConfig) -> Result<(AuthModule, Stores), ConfigError> {
    providers::link();
    let stores = open_stores(&config.module.store, &config.module.state).await?;
    let events = auth_events::bus_from_config(&config.events)?;
    let module = AuthModule::builder()
        .config(config.module.clone())
        .identity_store(stores.identities.clone())
        .state_store(stores.state.clone())
        .events(events)
        .build()?;
    Ok((module, stores))
}

/// Imports a Medusa database into the store `config` names (see
/// [`ImportOptions`]), taking the same lock as `serve`.
#[cfg(feature = "postgres")]
pub async fn import_medusa(
    config: &AppConfig,
    options: &ImportOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<ImportSummary, ConfigError> {
    let (module, stores) = open_module(config).await?;
    let summary = import::import_medusa(&module, options, progress).await;
    drop(stores);
    summary
}

/// Builds the stores, the module, the service and the router for `config`.
pub async fn build_app(config: AppConfig) -> Result<App, ConfigError> {
    config.warn_at_start();
    let (module, stores) = open_module(&config).await?;
    let mut service = AuthService::new(module, &config.http)?;
    if let Some(url) = &config.server.public_url {
        let origin = auth_http::PublicOrigin::parse(url)
            .map_err(|e| ConfigError::new(format!("server.public_url: {e}")))?;
        service = service.with_public_origin(origin);
    }
    let mut router = auth_http::router(service.clone());
    if let Some(key) = &config.management.api_key {
        router = router.merge(auth_http::management_router(service.clone(), key));
        if config.management.console {
            router = router.merge(console::router());
        }
    }
    let (mut metrics, mut metrics_addr, mut metrics_listener) = (None, None, None);
    if let Some(addr) = &config.server.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            ConfigError::new(format!(
                "server.metrics_listen: cannot listen on {addr}: {e}"
            ))
        })?;
        metrics_addr = listener.local_addr().ok();
        metrics_listener = Some(listener);
        metrics = Some(metrics::Metrics::new(stores.cache.clone()));
    }
    Ok(App {
        config,
        service,
        router,
        locks: stores.locks,
        metrics,
        metrics_addr,
        metrics_listener,
    })
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains; the
/// app's store locks are released when it returns. With metrics, every
/// request to `app.router` is counted, routes merged after [`build_app`]
/// included. `[server]`'s
/// `header_timeout`, `request_timeout`, `idle_timeout` and `max_connections`
/// bound what clients can hold.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: App,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let App {
        router,
        locks,
        config,
        metrics,
        metrics_listener,
        service: app_service,
        ..
    } = app;
    // Layered here, on the final router: a layer added in `build_app` would
    // miss the routes a host merges afterwards (`Server::with_routes`).
    let router = match &metrics {
        Some(m) => router.layer(metrics::TrackLayer(m.clone())),
        None => router,
    };
    let metrics_task = match (metrics, metrics_listener) {
        (Some(m), Some(l)) => Some(tokio::spawn(async move {
            if let Err(e) = axum::serve(l, metrics::router(m)).await {
                tracing::error!(error = %e, "the metrics listener failed");
            }
        })),
        _ => None,
    };
    let sweeps = spawn_sweeps(app_service);
    let served = serve::run(listener, router, &config.server, shutdown).await;
    sweeps.abort();
    if let Some(task) = metrics_task {
        task.abort();
    }
    drop(locks);
    served
}

/// How often a serving process removes idle devices and audit entries past
/// their retention.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Removes idle devices and expired audit entries now and every hour, until
/// the task is aborted. Failures are logged (the next sweep retries).
fn spawn_sweeps(service: AuthService) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(SWEEP_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match service.gate().devices().sweep().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(devices = n, "idle devices removed"),
                Err(e) => tracing::warn!(error = %e, "the idle-device sweep failed"),
            }
            let module = service.module();
            match module.audit().sweep(module.audit_retention()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(entries = n, "audit entries past retention removed"),
                Err(e) => tracing::warn!(error = %e, "the audit retention sweep failed"),
            }
        }
    })
}

/// `auth-server audit verify`: walks the audit chain of `config`'s store.
/// `Ok(report)` whether or not it is intact; the caller says which.
pub async fn audit_verify(
    config: &AppConfig,
) -> Result<auth_module::audit::ChainReport, ConfigError> {
    let store = stores::open_audit_store(&config.module.store).await?;
    auth_module::audit::verify(store.as_ref())
        .await
        .map_err(|e| ConfigError::new(format!("reading the audit log failed: {}", e.message())))
}

/// `auth-server audit export`: writes the entries at or after `since`
/// (all without it), oldest first, one JSON object per line, to `out`.
/// Answers how many.
pub async fn audit_export(
    config: &AppConfig,
    since: Option<time::OffsetDateTime>,
    out: &mut dyn std::io::Write,
) -> Result<u64, ConfigError> {
    let store = stores::open_audit_store(&config.module.store).await?;
    let failed = |e: auth_module::Error| {
        ConfigError::new(format!("reading the audit log failed: {}", e.message()))
    };
    let written = |e: std::io::Error| ConfigError::new(format!("writing the export failed: {e}"));
    let mut after = 0;
    let mut count = 0;
    loop {
        let page = store.audit_chain(after, 1000).await.map_err(failed)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for entry in page.iter().filter(|e| since.is_none_or(|t| e.at >= t)) {
            serde_json::to_writer(&mut *out, &auth_module::audit::entry_json(entry))
                .map_err(|e| written(e.into()))?;
            out.write_all(b"\n").map_err(written)?;
            count += 1;
        }
    }
    out.flush().map_err(written)?;
    Ok(count)
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
        .config(config.module.clone())
        .identity_store(Arc::new(MemoryIdentityStore::new()))
        .state_store(Arc::new(MemoryStateStore::new()))
        .build()?;
    AuthService::new(module.clone(), &config.http)?;
    auth_events::bus_from_config(&config.events)?;
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
