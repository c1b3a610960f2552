#![doc = include_str!("../README.md")]
// Without an engine feature the crate still builds (every URL is refused with
// the feature to enable), and the engine-side helpers are simply unused.
#![cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use auth_module::{
    AuditChainStart, AuditEntry, AuditQuery, AuditStore, AuthIdentity, Device, DeviceStore,
    DeviceTally, Error, IdentityStore, Metadata, MfaFactor, MfaFactorUpdate, MfaStore,
    NewAuditEntry, NewAuthIdentity, NewDevice, NewMfaFactor, NewPasskeyCredential,
    NewProviderIdentity, NewVerification, PasskeyCredential, PasskeyStore, PasskeyUse,
    ProviderIdentity, ProviderIdentityUpdate, Result, StateStore, Verification, VerificationStore,
};
use serde_json::Value;
use time::OffsetDateTime;

/// An [`IdentityStore`] on a SQL database: SQLite (feature `sqlite`, default)
/// or PostgreSQL (feature `postgres`), with every capability ([`MfaStore`],
/// [`VerificationStore`], [`PasskeyStore`], [`DeviceStore`] and
/// [`AuditStore`], on either engine).
///
/// Open it with [`SqlStore::sqlite`] or [`SqlStore::postgres`] (which URL
/// scheme means which store is decided by the caller's store factory, e.g.
/// `auth-server`'s); the schema's migrations are applied then. It holds its
/// connections (2 on an SQLite file, 1 in memory; a pool of at most 4 on
/// PostgreSQL) and is cheap to share behind an `Arc`. Its `Debug` output
/// names the engine and the URL with any password replaced by `***`.
pub struct SqlStore {
    backend: Backend,
    /// The URL with its password redacted, for `Debug` only.
    redacted_url: String,
    /// The PostgreSQL schema every connection uses, if one was chosen.
    schema: Option<String>,
    /// State writes so far; every [`SWEEP_EVERY`]th also deletes expired rows.
    state_writes: AtomicU64,
}

/// How often (in writing state calls of one store) expired state rows are
/// deleted.
const SWEEP_EVERY: u64 = 64;

/// The most expired state rows one sweep deletes.
const SWEEP_BATCH: i64 = 512;

/// The connections of the engine the URL named. Empty (and `SqlStore`
/// impossible to build) when no engine feature is enabled.
enum Backend {
    /// Connections held by the store (see [`sqlite::Links`]).
    #[cfg(feature = "sqlite")]
    Sqlite(Box<sqlite::Links>),
    /// A pool: each store call checks out one connection for its statements.
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
}

impl SqlStore {
    /// Opens the SQLite database at `url` and applies the migrations.
    ///
    /// - `sqlite://PATH` (or `sqlite:PATH`): a file, created if missing with
    ///   mode 0600 (its WAL and SHM files inherit it), in WAL mode with
    ///   `synchronous=NORMAL`, foreign keys on, a 5 s busy timeout.
    /// - `sqlite::memory:`: a private in-memory database, gone when the store is.
    ///
    /// One process should own a file: the write-invalidated identity cache
    /// of `auth-server` relies on it, and `auth-server` locks the file.
    ///
    /// # Errors
    /// [`auth_module::ErrorKind::InvalidData`] for a URL that is not a SQLite
    /// one; [`auth_module::ErrorKind::DatabaseError`] when the database cannot
    /// be opened or migrated.
    #[cfg(feature = "sqlite")]
    pub async fn sqlite(url: &str) -> Result<SqlStore> {
        if !url.starts_with("sqlite:") {
            return Err(Error::invalid_data("a SQLite URL starts with sqlite:"));
        }
        Ok(SqlStore {
            backend: Backend::Sqlite(Box::new(sqlite::connect(url).await?)),
            redacted_url: auth_module::store::redact_url(url),
            schema: None,
            state_writes: AtomicU64::new(0),
        })
    }

    /// A fresh, private in-memory SQLite database: for tests.
    ///
    /// # Errors
    /// [`auth_module::ErrorKind::DatabaseError`] if SQLite cannot be opened.
    #[cfg(feature = "sqlite")]
    pub async fn sqlite_memory() -> Result<SqlStore> {
        Self::sqlite("sqlite::memory:").await
    }

    /// Opens the PostgreSQL database at `url` (`postgres://…` or
    /// `postgresql://…`, TLS through rustls) and applies the migrations.
    ///
    /// With `schema`, every connection's `search_path` is that schema alone,
    /// created if missing, and the migrations run inside it: several stores
    /// can share one database without seeing each other's data (a tenant per
    /// schema, or a test per schema).
    ///
    /// # Errors
    /// [`auth_module::ErrorKind::InvalidData`] if `url` is not a PostgreSQL
    /// URL or `schema` is not a lowercase identifier (`[a-z_][a-z0-9_]*`, at
    /// most 63 bytes); [`auth_module::ErrorKind::DatabaseError`] when the
    /// database cannot be reached, or the schema created or migrated.
    #[cfg(feature = "postgres")]
    pub async fn postgres(url: &str, schema: Option<&str>) -> Result<SqlStore> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(Error::invalid_data(
                "a PostgreSQL URL starts with postgres:// or postgresql://",
            ));
        }
        if let Some(schema) = schema {
            postgres::validate_schema(schema)?;
        }
        Ok(SqlStore {
            backend: Backend::Postgres(postgres::connect(url, schema).await?),
            redacted_url: auth_module::store::redact_url(url),
            schema: schema.map(str::to_owned),
            state_writes: AtomicU64::new(0),
        })
    }

    /// The PostgreSQL schema chosen with [`SqlStore::postgres`].
    #[cfg(feature = "postgres")]
    pub fn postgres_schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Closes every connection of the pool, waiting for checked-out ones to
    /// come back. Later calls on the store fail with a database error.
    pub async fn close(&self) {
        match self.backend {
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(ref links) => links.close().await,
            #[cfg(feature = "postgres")]
            Backend::Postgres(ref pool) => pool.close().await,
        }
    }

    fn engine_name(&self) -> &'static str {
        match self.backend {
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(_) => "sqlite",
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => "postgres",
        }
    }
}

impl fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the pool: its connect options carry the password.
        f.debug_struct("SqlStore")
            .field("engine", &self.engine_name())
            .field("url", &self.redacted_url)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// Calls `$f` of the engine module of `$self`'s backend with a connection
/// first: on SQLite one the store holds (the reader, or the writer when it is
/// free), on PostgreSQL one checked out of the pool for the call.
macro_rules! dispatch {
    ($self:ident, $f:ident($($arg:expr),* $(,)?)) => {
        match $self.backend {
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(ref links) => {
                match links.read().await {
                    Ok(mut conn) => sqlite::queries::$f(&mut *conn, $($arg),*).await,
                    Err(e) => Err(e),
                }
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(ref pool) => {
                match pool.acquire().await {
                    Ok(mut conn) => postgres::queries::$f(&mut *conn, $($arg),*).await,
                    Err(e) => Err(database("connecting to PostgreSQL")(e)),
                }
            }
        }
    };
}

/// [`dispatch!`] for a call that writes: on SQLite it waits its turn for the
/// store's one writer.
macro_rules! dispatch_write {
    ($self:ident, $f:ident($($arg:expr),* $(,)?)) => {
        match $self.backend {
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(ref links) => {
                match links.write().await {
                    Ok(mut conn) => sqlite::queries::$f(&mut *conn, $($arg),*).await,
                    Err(e) => Err(e),
                }
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => dispatch!($self, $f($($arg),*)),
        }
    };
}

#[async_trait]
impl IdentityStore for SqlStore {
    async fn create_auth_identity(&self, new: NewAuthIdentity) -> Result<AuthIdentity> {
        refuse_nul_metadata(new.app_metadata.as_ref())?;
        for p in &new.provider_identities {
            refuse_nul_provider(p)?;
        }
        dispatch_write!(self, create_auth_identity(new))
    }

    async fn retrieve_auth_identity(&self, id: &str) -> Result<AuthIdentity> {
        if has_nul(id) {
            return Err(auth_not_found(id));
        }
        dispatch!(self, retrieve_auth_identity(id))
    }

    async fn update_app_metadata(
        &self,
        id: &str,
        app_metadata: Option<Metadata>,
    ) -> Result<AuthIdentity> {
        if has_nul(id) {
            return Err(auth_not_found(id));
        }
        refuse_nul_metadata(app_metadata.as_ref())?;
        dispatch_write!(self, update_app_metadata(id, app_metadata))
    }

    async fn patch_app_metadata(
        &self,
        id: &str,
        key: &str,
        value: Option<Value>,
    ) -> Result<AuthIdentity> {
        if has_nul(id) {
            return Err(auth_not_found(id));
        }
        if value.as_ref().is_some_and(value_has_nul) {
            return Err(Error::invalid_data(
                "metadata must not contain NUL (U+0000) characters",
            ));
        }
        dispatch_write!(self, patch_app_metadata(id, key, value))
    }

    async fn merge_app_metadata(&self, id: &str, patch: &Metadata) -> Result<AuthIdentity> {
        if has_nul(id) {
            return Err(auth_not_found(id));
        }
        if patch.values().any(value_has_nul) {
            return Err(Error::invalid_data(
                "metadata must not contain NUL (U+0000) characters",
            ));
        }
        dispatch_write!(self, merge_app_metadata(id, patch))
    }

    async fn bump_credential_version(&self, id: &str) -> Result<AuthIdentity> {
        if has_nul(id) {
            return Err(auth_not_found(id));
        }
        dispatch_write!(self, bump_credential_version(id))
    }

    async fn delete_auth_identity(&self, id: &str) -> Result<()> {
        if has_nul(id) {
            return Err(auth_not_found(id));
        }
        dispatch_write!(self, delete_auth_identity(id))
    }

    async fn find_provider_identity(
        &self,
        provider: &str,
        entity_id: &str,
    ) -> Result<Option<ProviderIdentity>> {
        if has_nul(provider) || has_nul(entity_id) {
            return Ok(None);
        }
        dispatch!(self, find_provider_identity(provider, entity_id))
    }

    async fn add_provider_identity(
        &self,
        auth_identity_id: &str,
        new: NewProviderIdentity,
    ) -> Result<ProviderIdentity> {
        if has_nul(auth_identity_id) {
            return Err(auth_not_found(auth_identity_id));
        }
        refuse_nul_provider(&new)?;
        dispatch_write!(self, add_provider_identity(auth_identity_id, new))
    }

    async fn update_provider_identity(
        &self,
        id: &str,
        update: ProviderIdentityUpdate,
    ) -> Result<ProviderIdentity> {
        if has_nul(id) {
            return Err(provider_not_found(id));
        }
        refuse_nul_metadata(update.user_metadata.as_ref())?;
        refuse_nul_metadata(update.provider_metadata.as_ref())?;
        if let Some(Some(expected)) = &update.expected_provider_metadata
            && metadata_has_nul(expected)
        {
            // Nothing stored holds NUL, so the precondition cannot hold.
            return Err(auth_module::store::provider_metadata_changed(id));
        }
        dispatch_write!(self, update_provider_identity(id, update))
    }

    async fn delete_provider_identity(&self, id: &str) -> Result<()> {
        if has_nul(id) {
            return Err(provider_not_found(id));
        }
        dispatch_write!(self, delete_provider_identity(id))
    }

    async fn provider_identity_owner(&self, id: &str) -> Result<Option<String>> {
        if has_nul(id) {
            return Ok(None);
        }
        dispatch!(self, provider_identity_owner(id))
    }

    fn mfa_store(self: Arc<Self>) -> Option<Arc<dyn MfaStore>> {
        Some(self)
    }

    fn verification_store(self: Arc<Self>) -> Option<Arc<dyn VerificationStore>> {
        Some(self)
    }

    fn passkey_store(self: Arc<Self>) -> Option<Arc<dyn PasskeyStore>> {
        Some(self)
    }

    fn device_store(self: Arc<Self>) -> Option<Arc<dyn DeviceStore>> {
        Some(self)
    }

    fn audit_store(self: Arc<Self>) -> Option<Arc<dyn AuditStore>> {
        Some(self)
    }
}

#[async_trait]
impl MfaStore for SqlStore {
    async fn create_auth_identity_with_mfa(
        &self,
        new: NewAuthIdentity,
        factors: Vec<NewMfaFactor>,
    ) -> Result<AuthIdentity> {
        refuse_nul_metadata(new.app_metadata.as_ref())?;
        for p in &new.provider_identities {
            refuse_nul_provider(p)?;
        }
        for f in &factors {
            refuse_nul_factor(f)?;
        }
        dispatch_write!(self, create_auth_identity_with_mfa(new, factors))
    }

    async fn create_mfa_factor(&self, new: NewMfaFactor) -> Result<MfaFactor> {
        if has_nul(&new.auth_identity_id) {
            return Err(auth_not_found(&new.auth_identity_id));
        }
        refuse_nul_factor(&new)?;
        dispatch_write!(self, create_mfa_factor(new))
    }

    async fn list_mfa_factors(&self, auth_identity_id: &str) -> Result<Vec<MfaFactor>> {
        if has_nul(auth_identity_id) {
            return Ok(Vec::new());
        }
        dispatch!(self, list_mfa_factors(auth_identity_id))
    }

    async fn update_mfa_factor(
        &self,
        id: &str,
        update: MfaFactorUpdate,
    ) -> Result<Option<MfaFactor>> {
        if has_nul(id) {
            return Ok(None);
        }
        dispatch_write!(self, update_mfa_factor(id, update))
    }

    async fn replace_recovery_codes(
        &self,
        auth_identity_id: &str,
        hashes: Vec<String>,
    ) -> Result<()> {
        if has_nul(auth_identity_id) {
            return Err(auth_not_found(auth_identity_id));
        }
        if hashes.iter().any(|h| has_nul(h)) {
            return Err(Error::invalid_data(
                "recovery-code hashes must not contain NUL (U+0000) characters",
            ));
        }
        dispatch_write!(self, replace_recovery_codes(auth_identity_id, hashes))
    }

    async fn consume_recovery_code(
        &self,
        auth_identity_id: &str,
        candidates: &[String],
    ) -> Result<bool> {
        if has_nul(auth_identity_id) {
            return Ok(false);
        }
        // No stored hash holds NUL: such a candidate matches nothing.
        let candidates: Vec<String> = candidates.iter().filter(|c| !has_nul(c)).cloned().collect();
        dispatch_write!(self, consume_recovery_code(auth_identity_id, &candidates))
    }

    async fn count_recovery_codes(&self, auth_identity_id: &str) -> Result<u64> {
        if has_nul(auth_identity_id) {
            return Ok(0);
        }
        dispatch!(self, count_recovery_codes(auth_identity_id))
    }
}

#[async_trait]
impl VerificationStore for SqlStore {
    async fn request_verification(&self, new: NewVerification) -> Result<Verification> {
        if has_nul(&new.auth_identity_id) {
            return Err(auth_not_found(&new.auth_identity_id));
        }
        if [
            &new.entity_id,
            &new.entity_type,
            &new.code_provider,
            &new.code_hash,
        ]
        .into_iter()
        .any(|s| has_nul(s))
        {
            return Err(Error::invalid_data(
                "verification entities, providers and codes must not contain NUL (U+0000) characters",
            ));
        }
        refuse_nul_metadata(new.metadata.as_ref())?;
        dispatch_write!(self, request_verification(new))
    }

    async fn find_verification(
        &self,
        auth_identity_id: &str,
        entity_id: &str,
        entity_type: &str,
    ) -> Result<Option<Verification>> {
        if has_nul(auth_identity_id) || has_nul(entity_id) || has_nul(entity_type) {
            return Ok(None);
        }
        dispatch!(
            self,
            find_verification(auth_identity_id, entity_id, entity_type)
        )
    }

    async fn confirm_verification(
        &self,
        code_hash: &str,
        code_provider: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Verification>> {
        if has_nul(code_hash) || has_nul(code_provider) {
            return Ok(None);
        }
        dispatch_write!(self, confirm_verification(code_hash, code_provider, now))
    }

    async fn verification_by_code(&self, code_hash: &str) -> Result<Option<Verification>> {
        if has_nul(code_hash) {
            return Ok(None);
        }
        dispatch!(self, verification_by_code(code_hash))
    }
}

/// Passkeys: `auth_passkey`, one row per credential, unique per (provider,
/// credential id); deleting an auth identity deletes its rows (`ON DELETE
/// CASCADE`, foreign keys being on in SQLite too). A use is one conditional
/// `UPDATE … WHERE sign_count = expected`, so of concurrent uses from one
/// counter exactly one applies.
#[async_trait]
impl PasskeyStore for SqlStore {
    async fn create_passkey(&self, new: NewPasskeyCredential) -> Result<PasskeyCredential> {
        if has_nul(&new.auth_identity_id) {
            return Err(auth_not_found(&new.auth_identity_id));
        }
        refuse_nul_passkey(&new)?;
        dispatch_write!(self, create_passkey(new))
    }

    async fn find_passkey(
        &self,
        provider: &str,
        credential_id: &str,
    ) -> Result<Option<PasskeyCredential>> {
        if has_nul(provider) || has_nul(credential_id) {
            return Ok(None);
        }
        dispatch!(self, find_passkey(provider, credential_id))
    }

    async fn list_passkeys(&self, auth_identity_id: &str) -> Result<Vec<PasskeyCredential>> {
        if has_nul(auth_identity_id) {
            return Ok(Vec::new());
        }
        dispatch!(self, list_passkeys(auth_identity_id))
    }

    async fn passkeys_for_email(
        &self,
        provider: &str,
        email: &str,
    ) -> Result<Vec<PasskeyCredential>> {
        if has_nul(provider) || has_nul(email) {
            return Ok(Vec::new());
        }
        dispatch!(self, passkeys_for_email(provider, email))
    }

    async fn record_passkey_use(
        &self,
        id: &str,
        expected_sign_count: u32,
        used: PasskeyUse,
    ) -> Result<Option<PasskeyCredential>> {
        if has_nul(id) {
            return Ok(None);
        }
        if value_has_nul(&used.credential) {
            return Err(Error::invalid_data(
                "passkey records must not contain NUL (U+0000) characters",
            ));
        }
        dispatch_write!(self, record_passkey_use(id, expected_sign_count, used))
    }

    async fn rename_passkey(
        &self,
        auth_identity_id: &str,
        id: &str,
        name: &str,
    ) -> Result<Option<PasskeyCredential>> {
        if has_nul(auth_identity_id) || has_nul(id) {
            return Ok(None);
        }
        if has_nul(name) {
            return Err(Error::invalid_data(
                "passkey names must not contain NUL (U+0000) characters",
            ));
        }
        dispatch_write!(self, rename_passkey(auth_identity_id, id, name))
    }

    async fn delete_passkey(&self, auth_identity_id: &str, id: &str) -> Result<bool> {
        if has_nul(auth_identity_id) || has_nul(id) {
            return Ok(false);
        }
        dispatch_write!(self, delete_passkey(auth_identity_id, id))
    }
}

/// Devices: `auth_device`, one row per device; deleting an auth identity
/// deletes its rows (`ON DELETE CASCADE`, foreign keys being on in SQLite
/// too). Every read and delete names the owning identity. Times are whole
/// milliseconds, as in memory. A user agent or network holding NUL (U+0000),
/// which PostgreSQL text cannot hold, is kept with U+FFFD in its place: it
/// is what a client sent, and its device must still be recorded.
#[async_trait]
impl DeviceStore for SqlStore {
    async fn create_device(&self, new: NewDevice) -> Result<Device> {
        // The tally comes with the device, in the same statement.
        Ok(self.add_device(new).await?.1)
    }

    async fn add_device(&self, new: NewDevice) -> Result<(DeviceTally, Device)> {
        let new = storable_device(new)?;
        dispatch_write!(self, add_device(new))
    }

    async fn device(&self, auth_identity_id: &str, id: &str) -> Result<Option<Device>> {
        if has_nul(auth_identity_id) || has_nul(id) {
            return Ok(None);
        }
        dispatch!(self, device(auth_identity_id, id))
    }

    async fn list_devices(&self, auth_identity_id: &str) -> Result<Vec<Device>> {
        if has_nul(auth_identity_id) {
            return Ok(Vec::new());
        }
        dispatch!(self, list_devices(auth_identity_id))
    }

    async fn touch_device(
        &self,
        auth_identity_id: &str,
        id: &str,
        at: OffsetDateTime,
    ) -> Result<bool> {
        if has_nul(auth_identity_id) || has_nul(id) {
            return Ok(false);
        }
        dispatch_write!(self, touch_device(auth_identity_id, id, at))
    }

    async fn delete_devices(&self, auth_identity_id: &str, ids: &[String]) -> Result<Vec<String>> {
        if has_nul(auth_identity_id) {
            return Ok(Vec::new());
        }
        // No stored id holds NUL: such an id matches nothing.
        let ids: Vec<String> = ids.iter().filter(|id| !has_nul(id)).cloned().collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        dispatch_write!(self, delete_devices(auth_identity_id, &ids))
    }

    async fn delete_idle_devices(
        &self,
        seen_before: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<(String, String)>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        dispatch_write!(self, delete_idle_devices(seen_before, limit))
    }

    async fn device_tally(
        &self,
        auth_identity_id: &str,
        user_agent: Option<&str>,
        network: Option<&str>,
    ) -> Result<DeviceTally> {
        if has_nul(auth_identity_id) {
            return Ok(DeviceTally::new(0, false));
        }
        // Compared as stored: a NUL is kept as U+FFFD.
        let (mut user_agent, mut network) =
            (user_agent.map(str::to_owned), network.map(str::to_owned));
        replace_nul(&mut user_agent);
        replace_nul(&mut network);
        let (devices, same) = dispatch!(
            self,
            device_tally(auth_identity_id, user_agent.as_deref(), network.as_deref())
        )?;
        Ok(DeviceTally::new(
            usize::try_from(devices).unwrap_or(usize::MAX),
            same != 0,
        ))
    }

    async fn trim_devices(&self, auth_identity_id: &str, keep: usize) -> Result<Vec<String>> {
        if has_nul(auth_identity_id) {
            return Ok(Vec::new());
        }
        dispatch_write!(self, trim_devices(auth_identity_id, keep))
    }
}

/// The audit log: `auth_audit`, one row per entry keyed by its `seq`, and
/// `auth_audit_chain`, the one row holding the chain's head and start. An
/// append is one transaction that first locks the chain row (PostgreSQL:
/// `SELECT … FOR UPDATE`; SQLite: a no-op `UPDATE`, which takes the write
/// lock), so appends from every process sharing the database form one
/// gapless chain. On SQLite, where a trigger checks that each entry follows
/// the head and moves it, an append on the head the store's last append left
/// is one `INSERT`; the store's first append, or one on a head another
/// connection has moved since, takes the lock.
/// Entries outlive the identities they name (no foreign key).
///
/// NUL (U+0000), which PostgreSQL cannot hold: in a user agent or network
/// (what a client sent) it is kept as U+FFFD, before the entry is hashed; in
/// `detail` it is refused as in any metadata, and in the other fields as in
/// any other record (`InvalidData`, the whole append refused).
#[async_trait]
impl AuditStore for SqlStore {
    async fn append_audit(&self, mut entries: Vec<NewAuditEntry>) -> Result<Vec<AuditEntry>> {
        for e in &mut entries {
            if has_nul(&e.action)
                || has_nul(&e.outcome)
                || [&e.auth_identity_id, &e.actor_type, &e.provider]
                    .into_iter()
                    .any(|s| s.as_deref().is_some_and(has_nul))
            {
                return Err(Error::invalid_data(
                    "audit entries must not contain NUL (U+0000) characters",
                ));
            }
            refuse_nul_metadata(Some(&e.detail))?;
            replace_nul(&mut e.user_agent);
            replace_nul(&mut e.network);
        }
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        match self.backend {
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(ref links) => links.append_audit(entries).await,
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => dispatch_write!(self, append_audit(entries)),
        }
    }

    async fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        if query.auth_identity_id.as_deref().is_some_and(has_nul)
            || query.action.as_deref().is_some_and(has_nul)
        {
            // No stored entry holds NUL there.
            return Ok(Vec::new());
        }
        dispatch!(self, query_audit(query))
    }

    async fn audit_chain(&self, after_seq: u64, limit: usize) -> Result<Vec<AuditEntry>> {
        dispatch!(self, audit_chain(after_seq, limit))
    }

    async fn audit_chain_start(&self) -> Result<Option<AuditChainStart>> {
        dispatch!(self, audit_chain_start())
    }

    async fn prune_audit(&self, before: OffsetDateTime) -> Result<u64> {
        dispatch_write!(self, prune_audit(before))
    }
}

// NUL characters: PostgreSQL `text` and `jsonb` cannot hold U+0000 and answer
// an encoding error. Rather than a database error on one engine and success on
// the other, both refuse it up front: no stored key contains NUL, so a lookup
// with one finds nothing, and a write with one is `InvalidData`.

/// Milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

impl SqlStore {
    /// How many rows the state table holds, expired ones not yet deleted
    /// included: for tests and monitoring.
    ///
    /// # Errors
    /// [`auth_module::ErrorKind::DatabaseError`] when the query fails.
    pub async fn state_row_count(&self) -> Result<u64> {
        dispatch!(self, state_count())
    }

    /// Counts a writing state call; every [`SWEEP_EVERY`]th also deletes up to
    /// [`SWEEP_BATCH`] expired rows. The caller's write is done by then, so a
    /// failed sweep is only counted (in [`error_count`]), never reported.
    async fn after_state_write(&self) {
        if self.state_writes.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            let _ = dispatch_write!(self, state_sweep(now_ms(), SWEEP_BATCH));
        }
    }
}

/// The state store on the same database: sessions, reset marks and provider
/// state survive a restart and are shared by every process using the database.
/// `take` is one `DELETE … RETURNING`, so it is atomic on both engines.
///
/// Expired rows are skipped when read, and deleted as the store writes: every
/// 64th writing call of a store (`set`, `take`, `delete`, `increment`,
/// `compare_and_swap`, in any mix) then deletes up to 512 expired rows, soonest
/// expiry first, through the `expires_at` index. So the sweep costs one extra
/// statement per 64 writes, of bounded work (the calling request never waits on
/// a table-wide `DELETE`), and it clears dead rows eight times as fast as writes
/// can add them, whichever calls add them (a flood of counters, or of
/// redirect-login starts whose state is never read again). There is no
/// background task: a store embedded in another program starts nothing and needs
/// nothing stopped, and where nothing is written nothing grows. Each process
/// sweeps on its own writes; concurrent sweeps only delete dead rows.
#[async_trait]
impl StateStore for SqlStore {
    async fn set(&self, key: &str, value: Value, ttl: Duration) -> Result<()> {
        if has_nul(key) || value_has_nul(&value) {
            return Err(Error::invalid_data(
                "state keys and values must not contain NUL (U+0000) characters",
            ));
        }
        let now = now_ms();
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
        let expires_at = now.saturating_add(ttl_ms);
        dispatch_write!(self, state_set(key, &value, expires_at))?;
        self.after_state_write().await;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Value>> {
        if has_nul(key) {
            return Ok(None);
        }
        dispatch!(self, state_get(key, now_ms()))
    }

    async fn take(&self, key: &str) -> Result<Option<Value>> {
        if has_nul(key) {
            return Ok(None);
        }
        let taken = dispatch_write!(self, state_take(key, now_ms()))?;
        self.after_state_write().await;
        Ok(taken)
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        if has_nul(key) {
            return Ok(false);
        }
        let deleted = dispatch_write!(self, state_delete(key, now_ms()))?;
        self.after_state_write().await;
        Ok(deleted)
    }

    async fn increment(&self, key: &str, by: u64, ttl: Duration) -> Result<u64> {
        if has_nul(key) {
            return Err(Error::invalid_data(
                "state keys must not contain NUL (U+0000) characters",
            ));
        }
        let by = i64::try_from(by)
            .map_err(|_| Error::invalid_data("a counter increment must fit in 63 bits"))?;
        let now = now_ms();
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
        let value = dispatch_write!(
            self,
            state_increment(key, by, now.saturating_add(ttl_ms), now)
        )?;
        self.after_state_write().await;
        Ok(value)
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&Value>,
        new: Option<Value>,
        ttl: Duration,
    ) -> Result<bool> {
        if has_nul(key) || new.as_ref().is_some_and(value_has_nul) {
            return Err(Error::invalid_data(
                "state keys and values must not contain NUL (U+0000) characters",
            ));
        }
        if expected.is_some_and(value_has_nul) {
            // Nothing stored holds NUL.
            return Ok(false);
        }
        let now = now_ms();
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
        let swapped = dispatch_write!(
            self,
            state_compare_and_swap(key, expected, new.as_ref(), now.saturating_add(ttl_ms), now)
        )?;
        self.after_state_write().await;
        Ok(swapped)
    }

    async fn increment_each(&self, counters: &[(&str, Duration)]) -> Result<Vec<u64>> {
        if counters.iter().any(|(key, _)| has_nul(key)) {
            return Err(Error::invalid_data(
                "state keys must not contain NUL (U+0000) characters",
            ));
        }
        if counters.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let counters: Vec<(&str, i64)> = counters
            .iter()
            .map(|(key, ttl)| {
                let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
                (*key, now.saturating_add(ttl_ms))
            })
            .collect();
        let values = dispatch_write!(self, state_increment_each(&counters, now))?;
        self.after_state_write().await;
        Ok(values)
    }

    async fn give_back_each(
        &self,
        counters: &[(&str, Duration)],
        clear: Option<&str>,
    ) -> Result<()> {
        let keys: Vec<&str> = counters
            .iter()
            .map(|(key, _)| *key)
            .filter(|key| !has_nul(key))
            .collect();
        let clear = clear.filter(|key| !has_nul(key));
        if keys.is_empty() && clear.is_none() {
            return Ok(());
        }
        dispatch_write!(self, state_give_back_each(&keys, clear, now_ms()))?;
        self.after_state_write().await;
        Ok(())
    }
}

fn has_nul(s: &str) -> bool {
    s.contains('\0')
}

/// `s` with every NUL (U+0000) replaced by U+FFFD: for text a client sent
/// (a user agent), which is kept rather than refused.
fn replace_nul(s: &mut Option<String>) {
    if let Some(text) = s
        && has_nul(text)
    {
        *text = text.replace('\0', "\u{FFFD}");
    }
}

fn value_has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => has_nul(s),
        Value::Array(items) => items.iter().any(value_has_nul),
        Value::Object(m) => metadata_has_nul(m),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

fn metadata_has_nul(m: &Metadata) -> bool {
    m.iter().any(|(k, v)| has_nul(k) || value_has_nul(v))
}

fn refuse_nul_metadata(m: Option<&Metadata>) -> Result<()> {
    if m.is_some_and(metadata_has_nul) {
        return Err(Error::invalid_data(
            "metadata must not contain NUL (U+0000) characters",
        ));
    }
    Ok(())
}

/// A new factor's id, provider, secret and metadata (not its auth identity
/// id, whose NUL means "not found").
fn refuse_nul_factor(f: &NewMfaFactor) -> Result<()> {
    if has_nul(&f.provider) || has_nul(&f.secret) || f.id.as_deref().is_some_and(has_nul) {
        return Err(Error::invalid_data(
            "MFA factor ids, providers and secrets must not contain NUL (U+0000) characters",
        ));
    }
    refuse_nul_metadata(f.metadata.as_ref())
}

/// `new` as a device can be stored: an owner id with NUL names no identity,
/// an actor type or provider with NUL is refused, and NUL in what the client
/// sent is kept as U+FFFD.
fn storable_device(mut new: NewDevice) -> Result<NewDevice> {
    if has_nul(&new.auth_identity_id) {
        return Err(auth_not_found(&new.auth_identity_id));
    }
    if has_nul(&new.actor_type) || has_nul(&new.auth_provider) {
        return Err(Error::invalid_data(
            "device actor types and providers must not contain NUL (U+0000) characters",
        ));
    }
    replace_nul(&mut new.user_agent);
    replace_nul(&mut new.network);
    Ok(new)
}

/// A new passkey's provider, ids, e-mail, name, record and transports (not
/// its auth identity id, whose NUL means "not found").
fn refuse_nul_passkey(p: &NewPasskeyCredential) -> Result<()> {
    if [&p.provider, &p.credential_id, &p.user_handle, &p.name]
        .into_iter()
        .any(|s| has_nul(s))
        || p.email.as_deref().is_some_and(has_nul)
        || p.transports.iter().any(|t| has_nul(t))
        || value_has_nul(&p.credential)
    {
        return Err(Error::invalid_data(
            "passkey providers, ids, e-mails, names and records must not contain NUL (U+0000) \
             characters",
        ));
    }
    Ok(())
}

fn refuse_nul_provider(p: &NewProviderIdentity) -> Result<()> {
    if has_nul(&p.entity_id) || has_nul(&p.provider) {
        return Err(Error::invalid_data(
            "entity_id and provider must not contain NUL (U+0000) characters",
        ));
    }
    refuse_nul_metadata(p.user_metadata.as_ref())?;
    refuse_nul_metadata(p.provider_metadata.as_ref())
}

// Errors: the messages are those of `auth_module::memory`, so a client sees the
// same text whichever store is configured.

use auth_module::store::{
    auth_identity_not_found as auth_not_found, duplicate_passkey,
    duplicate_provider_identity as duplicate, provider_identity_not_found as provider_not_found,
};

/// Backend errors since start, all SQL stores of this process (for metrics).
static ERRORS: AtomicU64 = AtomicU64::new(0);

/// How many backend errors (failed statements, lost connections) the SQL
/// stores of this process have met since start, for metrics.
pub fn error_count() -> u64 {
    ERRORS.load(Ordering::Relaxed)
}

/// Wraps a backend error: `action` says what the store was doing. A lost or
/// unreachable database is [`auth_module::ErrorKind::Unavailable`] (HTTP 503,
/// `Service unavailable`): the request may succeed once it is back.
fn database(action: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| {
        ERRORS.fetch_add(1, Ordering::Relaxed);
        if is_unavailable(&e) {
            Error::unavailable("Service unavailable")
                .with_source(e)
                .with_context("action", action)
        } else {
            Error::database(format!("auth-store-sql: {action} failed"), e)
        }
    }
}

/// Wraps an error met while opening a store (at start-up): always a
/// database error with its cause, never "unavailable", so the start-up
/// message says what went wrong.
fn opening(action: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| Error::database(format!("auth-store-sql: {action} failed"), e)
}

/// Whether `e` means the database cannot be reached now (rather than that
/// the statement is wrong): no connection, a dropped one, or a server that
/// is shutting down or starting (SQLSTATE classes 08 and 57P).
fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

/// Whether `e` is a unique-key violation, on any engine.
fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

/// Whether `e` is a foreign-key violation, on any engine.
fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.kind() == sqlx::error::ErrorKind::ForeignKeyViolation)
}

/// The current time at the precision both engines keep (microseconds), so a
/// value returned by a write equals the one read back later.
fn now() -> OffsetDateTime {
    truncate(OffsetDateTime::now_utc())
}

/// `t` at the precision both engines keep: whole microseconds.
fn truncate(t: OffsetDateTime) -> OffsetDateTime {
    t - time::Duration::nanoseconds(i64::from(t.nanosecond() % 1_000))
}

/// `t` rounded up to whole microseconds: for a stored time `x` (whole
/// microseconds on both engines, which would cut a bound's nanoseconds),
/// `x >= t` is `x >= ceil_micros(t)` and `x < t` is `x < ceil_micros(t)`.
fn ceil_micros(t: OffsetDateTime) -> OffsetDateTime {
    match t.nanosecond() % 1_000 {
        0 => t,
        below => t + time::Duration::nanoseconds(i64::from(1_000 - below)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_whole_microseconds() {
        assert_eq!(now().nanosecond() % 1_000, 0);
    }

    #[test]
    fn bounds_round_up_to_whole_microseconds() {
        let t = OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(1_700_000_000);
        assert_eq!(ceil_micros(t), t);
        assert_eq!(
            ceil_micros(t + time::Duration::nanoseconds(1)),
            t + time::Duration::microseconds(1)
        );
        assert_eq!(
            ceil_micros(t + time::Duration::nanoseconds(999_999_999)),
            t + time::Duration::seconds(1)
        );
    }

    #[test]
    fn nul_is_replaced_in_client_text() {
        let mut ua = Some("Agent\0/1".to_owned());
        replace_nul(&mut ua);
        assert_eq!(ua.as_deref(), Some("Agent\u{FFFD}/1"));
        let mut none = None;
        replace_nul(&mut none);
        assert_eq!(none, None);
    }
}
