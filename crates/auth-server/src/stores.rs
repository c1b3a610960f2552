//! The store factory: the one place that maps a `[store]` / `[state]` URL
//! scheme to a store, with one cargo feature per arm.
//!
//! | scheme | store | feature |
//! |---|---|---|
//! | `memory://` | in process memory (nothing survives) | always |
//! | `sqlite://PATH`, `sqlite:PATH`, `sqlite::memory:` | [`SqlStore::sqlite`] | `sqlite` |
//! | `postgres://…`, `postgresql://…` | [`SqlStore::postgres`] | `postgres` |
//! | `redis://…`, `rediss://…` (`[state]` only) | [`auth_store_redis::RedisStateStore`] | `redis` |

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use auth_module::{
    CachedIdentityStore, ConfigError, IdentityStore, MemoryIdentityStore, MemoryStateStore,
    SharedIdentityCache, StateConfig, StateStore, StoreConfig,
};
use auth_store_sql::SqlStore;

/// How many identities a server keeps cached for token refresh.
const IDENTITY_CACHE_CAPACITY: usize = 100_000;

/// The longest a replica uses a cached identity, even when its token says it
/// is current: the bound on a lag should the shared state lose a token.
const SHARED_CACHE_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// What a store URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Memory,
    Sqlite,
    Postgres,
    Redis,
}

fn kind_of(key: &str, url: &str) -> Result<Kind, ConfigError> {
    let kind = if url == "memory://" {
        Kind::Memory
    } else if url.starts_with("sqlite:") {
        Kind::Sqlite
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Kind::Postgres
    } else if url.starts_with("redis://") || url.starts_with("rediss://") {
        Kind::Redis
    } else {
        return Err(ConfigError::new(format!(
            "{key}: unsupported scheme; use sqlite://PATH, postgres://…, redis://… ([state] \
             only) or memory://"
        )));
    };
    let linked = match kind {
        Kind::Memory => true,
        Kind::Sqlite => cfg!(feature = "sqlite"),
        Kind::Postgres => cfg!(feature = "postgres"),
        Kind::Redis => cfg!(feature = "redis"),
    };
    if !linked {
        let feature = match kind {
            Kind::Sqlite => "sqlite",
            Kind::Redis => "redis",
            _ => "postgres",
        };
        return Err(ConfigError::new(format!(
            "{key}: this auth-server was built without the `{feature}` cargo feature, which \
             opens this store"
        )));
    }
    Ok(kind)
}

/// The file a `sqlite:` URL names, if it names one (not `sqlite::memory:`).
pub(crate) fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let rest = rest.split('?').next().unwrap_or(rest);
    (!rest.is_empty() && !rest.starts_with(":memory:")).then(|| PathBuf::from(rest))
}

/// An exclusive lock on `{database}.lock`, held while the stores are open:
/// one process owns an SQLite file, so the write-invalidated identity cache
/// can never answer stale. Released when dropped (or when the process dies).
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
    database: PathBuf,
    path: PathBuf,
}

impl StoreLock {
    /// Takes the lock beside `database`, or explains who holds it.
    pub fn acquire(database: &std::path::Path) -> Result<StoreLock, ConfigError> {
        let mut name = database.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| ConfigError::new(format!("cannot create {}: {e}", dir.display())))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| ConfigError::new(format!("cannot open {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => Ok(StoreLock {
                _file: file,
                database: database.to_owned(),
                path,
            }),
            Err(std::fs::TryLockError::WouldBlock) => Err(ConfigError::new(format!(
                "store.url: {} is in use by another auth-server process (it holds {}). One \
                 process owns an SQLite file; stop the other one, or run several replicas on \
                 PostgreSQL (store.url = \"postgres://…\") instead",
                database.display(),
                path.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(ConfigError::new(format!(
                "cannot lock {}: {e}",
                path.display()
            ))),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

/// The stores a configuration names, opened.
#[derive(Debug)]
#[non_exhaustive]
pub struct Stores {
    /// Where identities live.
    pub identities: Arc<dyn IdentityStore>,
    /// Where short-lived state lives.
    pub state: Arc<dyn StateStore>,
    /// The locks of the SQLite files, held as long as this value.
    pub locks: Vec<StoreLock>,
    /// The identity cache, if identities are cached (for metrics).
    pub(crate) cache: Option<crate::metrics::Cache>,
}

/// Opens the stores of `[store]` and `[state]`. An SQLite file is locked
/// first, and its identities are cached (the lock makes this process the only
/// writer); a state URL equal to the store URL shares its pool.
pub async fn open_stores(store: &StoreConfig, state: &StateConfig) -> Result<Stores, ConfigError> {
    let url = store.url.expose();
    let kind = kind_of("store.url", url)?;
    if store.schema.is_some() && kind != Kind::Postgres {
        return Err(ConfigError::new(
            "store.schema: only a postgres:// store has schemas",
        ));
    }
    if kind == Kind::Redis {
        return Err(ConfigError::new(
            "store.url: Redis holds only short-lived state ([state] url); keep identities in \
             sqlite:// or postgres://",
        ));
    }
    let state_url = state.url.expose();
    let state_kind = kind_of("state.url", state_url)?;
    let mut locks = Vec::new();
    for u in [url, state_url] {
        if let Some(path) = sqlite_path(u)
            && !locks.iter().any(|l: &StoreLock| l.database == path)
        {
            locks.push(StoreLock::acquire(&path)?);
        }
    }
    let sql = open_sql("store.url", kind, url, store.schema.as_deref()).await?;
    let state: Arc<dyn StateStore> = match (&sql, state_kind) {
        (_, Kind::Memory) => Arc::new(MemoryStateStore::new()),
        (_, Kind::Redis) => open_redis(state_url, &state.key_prefix).await?,
        (Some(sql), _) if state_url == url => sql.clone(),
        _ => match open_sql("state.url", state_kind, state_url, None).await? {
            Some(sql) => sql,
            None => Arc::new(MemoryStateStore::new()),
        },
    };
    // SQLite: this process is the only writer, so writes invalidate its cache.
    // PostgreSQL with Redis state: replicas share a database, so each hit is
    // proved current against a token in Redis. Otherwise: no cache.
    let (identities, cache): (Arc<dyn IdentityStore>, _) = match (&sql, kind, state_kind) {
        (None, _, _) => (Arc::new(MemoryIdentityStore::new()), None),
        (Some(sql), Kind::Sqlite, _) => counted(
            CachedIdentityStore::new(sql.clone(), IDENTITY_CACHE_CAPACITY),
            CachedIdentityStore::hits_and_misses,
        ),
        (Some(sql), Kind::Postgres, Kind::Redis) => counted(
            SharedIdentityCache::new(
                sql.clone(),
                state.clone(),
                IDENTITY_CACHE_CAPACITY,
                SHARED_CACHE_MAX_AGE,
            ),
            SharedIdentityCache::hits_and_misses,
        ),
        (Some(sql), _, _) => (sql.clone(), None),
    };
    Ok(Stores {
        identities,
        state,
        locks,
        cache,
    })
}

/// The audit log of the identity store `[store]` names, opened without the
/// SQLite file's lock (reading it beside a running server is safe: entries
/// are only ever appended), for `auth-server audit`.
pub(crate) async fn open_audit_store(
    store: &StoreConfig,
) -> Result<Arc<dyn auth_module::AuditStore>, ConfigError> {
    let url = store.url.expose();
    let kind = kind_of("store.url", url)?;
    if kind == Kind::Redis {
        return Err(ConfigError::new(
            "store.url: Redis holds only short-lived state; the audit log lives in the \
             identity store",
        ));
    }
    let Some(sql) = open_sql("store.url", kind, url, store.schema.as_deref()).await? else {
        return Err(ConfigError::new(
            "store.url: memory:// keeps nothing between processes: there is no audit log to read",
        ));
    };
    IdentityStore::audit_store(sql)
        .ok_or_else(|| ConfigError::new("store.url: this store keeps no audit log"))
}

/// `cache` as the identity store, and the reader of its hits and misses
/// (`counts`) for metrics.
fn counted<C: IdentityStore>(
    cache: C,
    counts: fn(&C) -> (u64, u64),
) -> (Arc<dyn IdentityStore>, Option<crate::metrics::Cache>) {
    let cache = Arc::new(cache);
    let read = Arc::clone(&cache);
    let counts = crate::metrics::Cache(Arc::new(move || counts(&read)));
    (cache, Some(counts))
}

/// Opens the Redis state store at `url`.
async fn open_redis(url: &str, prefix: &str) -> Result<Arc<dyn StateStore>, ConfigError> {
    #[cfg(feature = "redis")]
    {
        auth_store_redis::RedisStateStore::connect(url, prefix)
            .await
            .map(|s| Arc::new(s) as Arc<dyn StateStore>)
            .map_err(|e| ConfigError::new(format!("state.url: {}", e.message())))
    }
    #[cfg(not(feature = "redis"))]
    {
        let _ = (url, prefix);
        Err(ConfigError::new("state.url: Redis is not linked"))
    }
}

type Sql = Arc<SqlStore>;

/// Opens the SQL store at `url` (`None` for `memory://`).
async fn open_sql(
    key: &str,
    kind: Kind,
    url: &str,
    schema: Option<&str>,
) -> Result<Option<Sql>, ConfigError> {
    let failed = |engine: &str, e: auth_module::Error| {
        let cause = std::error::Error::source(&e)
            .map(|s| format!(" ({s})"))
            .unwrap_or_default();
        ConfigError::new(format!(
            "{key}: cannot open the {engine} store at {}: {}{cause}",
            auth_module::store::redact_url(url),
            e.message()
        ))
    };
    let _ = (url, schema, &failed);
    match kind {
        Kind::Memory => Ok(None),
        #[cfg(feature = "sqlite")]
        Kind::Sqlite => SqlStore::sqlite(url)
            .await
            .map(|s| Some(Arc::new(s)))
            .map_err(|e| failed("SQLite", e)),
        #[cfg(feature = "postgres")]
        Kind::Postgres => SqlStore::postgres(url, schema)
            .await
            .map(|s| Some(Arc::new(s)))
            .map_err(|e| failed("PostgreSQL", e)),
        // `kind_of` refused the schemes of the features this build lacks.
        #[allow(unreachable_patterns)]
        _ => Err(ConfigError::new(format!("{key}: store not linked"))),
    }
}
