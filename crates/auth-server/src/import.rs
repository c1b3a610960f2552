//! `auth-server import-medusa`: copies a Medusa 2.x database's
//! `auth_identity` and `provider_identity` rows into the configured store.
//!
//! - Ids, timestamps, `app_metadata` links and metadata are kept as they are;
//!   soft-deleted rows are skipped; Medusa's `provider` values map to instance
//!   ids (by default the same id).
//! - Entity ids are normalised as the provider does (emailpass: trimmed and
//!   lower-cased). When two Medusa identities become one under that rule, the
//!   most recently updated one is imported and the other is reported.
//! - Each identity is written with its provider identities and its MFA
//!   factors in one atomic create
//!   ([`MfaStore::create_auth_identity_with_mfa`] of the store's
//!   [`IdentityStore::mfa_store`]: one transaction on SQL), in batches read by id: a run can stop anywhere and be run again.
//!   An identity already present is not written again, so a second run
//!   imports nothing twice. A bad row is reported with its id and skipped.
//! - Medusa's MFA factors (`auth_mfa_factor`, live rows of any status) are
//!   imported with the identity when `[mfa]` holds Medusa's
//!   `encryption_key`: each `v1:` secret is decrypted and sealed again as this
//!   module keeps secrets, and a factor that cannot be skips its whole
//!   identity (reported), so MFA is never silently dropped. Without `[mfa]`
//!   an identity with factors is not imported at all: it is held back,
//!   counted, listed in the summary and logged, and a later run with `[mfa]`
//!   imports it.
//! - A rerun adds what is missing: an identity already present whose Medusa
//!   factors are not all in the store (imported by an older version, or
//!   without `[mfa]`) gets the missing ones, matched by factor id, so nothing
//!   already there is duplicated. A factor refused because the identity has
//!   an active factor of that kind already (enrolled since) is left out and
//!   logged.
//! - Medusa's recovery codes are kept only as scrypt hashes of codes nobody
//!   can read back: the identities that had some are listed, to generate new
//!   ones.
//! - The store is opened as `serve` opens it, lock included.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use auth_module::{
    AuthModule, ConfigError, ErrorKind, IdentityStore, Metadata, MfaStore, NewAuthIdentity,
    NewProviderIdentity,
};
use serde_json::Value;
use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions};
use time::OffsetDateTime;

/// Rows read per batch.
const BATCH: i64 = 500;

/// What `import-medusa` was asked.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ImportOptions {
    /// The Medusa database (`postgres://…`).
    pub from: String,
    /// The schema holding Medusa's tables (default `public`).
    pub schema: String,
    /// Report what would be imported, writing nothing.
    pub dry_run: bool,
    /// Medusa `provider` value -> instance id (absent: the same id).
    pub provider_map: BTreeMap<String, String>,
}

impl ImportOptions {
    /// Import from `from`, schema `public`, providers mapped to themselves.
    pub fn new(from: impl Into<String>) -> Self {
        ImportOptions {
            from: from.into(),
            schema: "public".to_owned(),
            dry_run: false,
            provider_map: BTreeMap::new(),
        }
    }

    /// Parses `--provider-map emailpass=ID,google=ID2`.
    pub fn parse_provider_map(text: &str) -> Result<BTreeMap<String, String>, String> {
        text.split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|pair| {
                let (from, to) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("--provider-map: `{pair}` is not MEDUSA=ID"))?;
                let (from, to) = (from.trim(), to.trim());
                if from.is_empty() || to.is_empty() {
                    return Err(format!("--provider-map: `{pair}` is not MEDUSA=ID"));
                }
                Ok((from.to_owned(), to.to_owned()))
            })
            .collect()
    }
}

/// What an import did.
///
/// Every identity read is counted once: `read` = `imported` +
/// `already_present` + `skipped` + `with_mfa`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportSummary {
    /// Live auth identities read.
    pub read: u64,
    /// Imported (or, in a dry run, that would be).
    pub imported: u64,
    /// Already in the store (an earlier run).
    pub already_present: u64,
    /// Skipped, with why: `(auth identity id, reason)`.
    pub skipped: Vec<(String, String)>,
    /// Identities held back because they have Medusa MFA factors and no
    /// `[mfa]` is configured to import them: not imported (or, if an earlier
    /// run imported them, left without their factors); a run with `[mfa]`
    /// completes them.
    pub with_mfa: Vec<String>,
    /// MFA factors imported, with new identities and into present ones.
    pub mfa_factors_imported: u64,
    /// Identities already present that were given their missing Medusa MFA
    /// factors (or, in a dry run, would be).
    pub mfa_completed: Vec<String>,
    /// Identities whose Medusa recovery codes were not imported.
    pub recovery_codes_dropped: Vec<String>,
}

impl std::fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "read {}, imported {}, already present {}, skipped {}, held back for MFA {}",
            self.read,
            self.imported,
            self.already_present,
            self.skipped.len(),
            self.with_mfa.len()
        )?;
        for (id, why) in &self.skipped {
            writeln!(f, "  skipped {id}: {why}")?;
        }
        if self.mfa_factors_imported > 0 {
            writeln!(f, "MFA factors imported: {}", self.mfa_factors_imported)?;
        }
        if !self.mfa_completed.is_empty() {
            writeln!(
                f,
                "{} identities already present were given their missing MFA factors: {}",
                self.mfa_completed.len(),
                self.mfa_completed.join(", ")
            )?;
        }
        if !self.recovery_codes_dropped.is_empty() {
            writeln!(
                f,
                "{} identities had Medusa recovery codes (kept only as hashes), to generate again: {}",
                self.recovery_codes_dropped.len(),
                self.recovery_codes_dropped.join(", ")
            )?;
        }
        if !self.with_mfa.is_empty() {
            writeln!(
                f,
                "{} identities have Medusa MFA factors and were held back (not imported, or left \
                 as an earlier run imported them): set [mfa] encryption_key to Medusa's and run \
                 again: {}",
                self.with_mfa.len(),
                self.with_mfa.join(", ")
            )?;
        }
        Ok(())
    }
}

fn error(action: &str) -> impl FnOnce(sqlx::Error) -> ConfigError + '_ {
    move |e| ConfigError::new(format!("import-medusa: {action}: {e}"))
}

/// A provider identity read from Medusa.
struct SourceProvider {
    id: String,
    entity_id: String,
    provider: String,
    auth_identity_id: String,
    user_metadata: Option<Value>,
    provider_metadata: Option<Value>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

fn object(v: Option<Value>, what: &str) -> Result<Option<Metadata>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(format!("{what} is not a JSON object")),
    }
}

/// Imports Medusa's identities into `module`'s identity store (see the
/// module docs). `progress` is called with `(done, total)` after each batch.
pub(crate) async fn import_medusa(
    module: &AuthModule,
    options: &ImportOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<ImportSummary, ConfigError> {
    let schema = &options.schema;
    if !schema
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        || schema.is_empty()
    {
        return Err(ConfigError::new(format!(
            "import-medusa: --schema {schema:?}: expected [a-z0-9_]+"
        )));
    }
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(&options.from)
        .await
        .map_err(error("connecting to the Medusa database"))?;
    let instance = |medusa: &str| -> Option<String> {
        let id = options
            .provider_map
            .get(medusa)
            .cloned()
            .unwrap_or_else(|| medusa.to_owned());
        module.provider_info(&id).map(|_| id)
    };
    // Factors are read whenever Medusa has them: without `[mfa]` they say
    // which identities to hold back.
    let has_factors = has_table(&pool, schema, "auth_mfa_factor").await;
    let import_mfa = module.mfa().is_configured();
    let mut summary = ImportSummary {
        recovery_codes_dropped: identities_in(&pool, schema, "auth_mfa_recovery_code").await,
        ..ImportSummary::default()
    };
    let total: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM \"{schema}\".auth_identity WHERE deleted_at IS NULL"
    ))
    .fetch_one(&pool)
    .await
    .map_err(error("counting auth identities"))?;
    let total = u64::try_from(total).unwrap_or(0);
    let winners = collision_winners(&pool, schema, module, &instance).await?;
    let store: &Arc<dyn IdentityStore> = module.identity_store();
    // Its MFA records: always there when `[mfa]` is (the module refuses to
    // start otherwise).
    let mfa = Arc::clone(store).mfa_store();
    let target = Target {
        store: store.as_ref(),
        mfa: mfa.as_deref(),
        module,
        instance: &instance,
        winners: &winners,
        dry_run: options.dry_run,
        import_mfa,
    };
    let mut after = String::new();
    loop {
        let rows = sqlx::query(&format!(
            "SELECT id, app_metadata, created_at, updated_at FROM \"{schema}\".auth_identity \
             WHERE deleted_at IS NULL AND id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(&after)
        .bind(BATCH)
        .fetch_all(&pool)
        .await
        .map_err(error("reading auth identities"))?;
        let Some(last) = rows.last() else { break };
        after = last.try_get("id").map_err(error("reading an id"))?;
        let ids: Vec<String> = rows
            .iter()
            .filter_map(|r| r.try_get::<String, _>("id").ok())
            .collect();
        let mut providers: HashMap<String, Vec<SourceProvider>> = HashMap::new();
        for p in read_providers(&pool, schema, &ids).await? {
            providers
                .entry(p.auth_identity_id.clone())
                .or_default()
                .push(p);
        }
        let mut factors: HashMap<String, Vec<SourceFactor>> = HashMap::new();
        if has_factors {
            for f in read_factors(&pool, schema, &ids).await? {
                factors
                    .entry(f.auth_identity_id.clone())
                    .or_default()
                    .push(f);
            }
        }
        for row in rows {
            summary.read += 1;
            let id: String = row.try_get("id").unwrap_or_default();
            let outcome = import_one(
                &target,
                &row,
                providers.remove(&id).unwrap_or_default(),
                factors.remove(&id).unwrap_or_default(),
            )
            .await;
            match outcome {
                Ok(Imported::New(n)) => {
                    summary.imported += 1;
                    summary.mfa_factors_imported += n;
                    if !options.dry_run {
                        module
                            .audit()
                            .record(
                                auth_module::NewAuditEntry::new("import", "succeeded")
                                    .identity(&id)
                                    .detail("from", "medusa")
                                    .detail("mfa_factors", n),
                            )
                            .await;
                    }
                }
                Ok(Imported::AlreadyPresent { factors_added }) => {
                    summary.already_present += 1;
                    if factors_added > 0 {
                        summary.mfa_factors_imported += factors_added;
                        summary.mfa_completed.push(id);
                    }
                }
                Ok(Imported::HeldBack { present, factors }) => {
                    tracing::warn!(
                        auth_identity_id = %id,
                        mfa_factors = factors,
                        already_present = present,
                        "import-medusa: held back: the identity has Medusa MFA factors and \
                         [mfa] encryption_key is not set; run again with it"
                    );
                    summary.with_mfa.push(id);
                }
                Err(why) => summary.skipped.push((id, why)),
            }
        }
        progress(summary.read, total);
    }
    pool.close().await;
    Ok(summary)
}

enum Imported {
    /// With this many MFA factors.
    New(u64),
    /// In the store already; its missing MFA factors added (this many).
    AlreadyPresent { factors_added: u64 },
    /// Not written: it has MFA factors (this many), which cannot be imported
    /// without `[mfa]`. `present`: an earlier run imported it.
    HeldBack { present: bool, factors: usize },
}

/// An MFA factor read from Medusa.
struct SourceFactor {
    id: String,
    auth_identity_id: String,
    provider: String,
    status: String,
    secret: Option<String>,
    metadata: Option<Value>,
    created_at: OffsetDateTime,
}

/// Where and how identities are written.
struct Target<'a> {
    store: &'a dyn IdentityStore,
    /// The store's MFA records, if it keeps them.
    mfa: Option<&'a dyn MfaStore>,
    module: &'a AuthModule,
    instance: &'a dyn Fn(&str) -> Option<String>,
    winners: &'a HashMap<(String, String), String>,
    dry_run: bool,
    /// `[mfa]` is configured: factors can be sealed and imported.
    import_mfa: bool,
}

async fn import_one(
    target: &Target<'_>,
    row: &sqlx::postgres::PgRow,
    providers: Vec<SourceProvider>,
    factors: Vec<SourceFactor>,
) -> Result<Imported, String> {
    let Target {
        store,
        mfa,
        module,
        instance,
        winners,
        dry_run,
        import_mfa,
    } = *target;
    let bad = |e: sqlx::Error| format!("unreadable row: {e}");
    let id: String = row.try_get("id").map_err(bad)?;
    let app_metadata: Option<sqlx::types::Json<Value>> =
        row.try_get("app_metadata").map_err(bad)?;
    let created_at: OffsetDateTime = row.try_get("created_at").map_err(bad)?;
    let updated_at: OffsetDateTime = row.try_get("updated_at").map_err(bad)?;
    // A real run finds out from the create itself (no read per row); a dry
    // run, which creates nothing, has to ask.
    let present_in_dry_run = dry_run && present(store, &id).await?;
    if present_in_dry_run && factors.is_empty() {
        return Ok(Imported::AlreadyPresent { factors_added: 0 });
    }
    let mut new = NewAuthIdentity::new()
        .with_id(&id)
        .timestamps(created_at, updated_at);
    if let Some(m) = object(app_metadata.map(|j| j.0), "app_metadata")? {
        new = new.app_metadata(m);
    }
    for p in providers {
        let Some(target) = instance(&p.provider) else {
            return Err(format!(
                "provider identity {} names provider \"{}\", which is not configured \
                 (map it with --provider-map {}=ID)",
                p.id, p.provider, p.provider
            ));
        };
        let entity_id = module
            .normalize_entity_id(&target, &p.entity_id)
            .unwrap_or_else(|| p.entity_id.clone());
        if let Some(winner) = winners.get(&(target.clone(), entity_id.clone()))
            && *winner != id
        {
            return Err(format!(
                "\"{entity_id}\" at {target} is also identity {winner}, updated more \
                 recently, which is imported instead"
            ));
        }
        let mut np = NewProviderIdentity::new(&target, &entity_id)
            .with_id(&p.id)
            .timestamps(p.created_at, p.updated_at);
        if let Some(m) = object(p.user_metadata, "user_metadata")? {
            np = np.user_metadata(m);
        }
        if let Some(m) = object(p.provider_metadata, "provider_metadata")? {
            np = np.provider_metadata(m);
        }
        new = new.provider_identity(np);
    }
    if !factors.is_empty() && !import_mfa {
        // Never an identity without the MFA that protects it.
        let present = if dry_run {
            present_in_dry_run
        } else {
            present(store, &id).await?
        };
        if present {
            let stored = stored_factor_ids(mfa, &id).await?;
            if factors.iter().all(|f| stored.contains(&f.id)) {
                // Imported with all its factors by an earlier run.
                return Ok(Imported::AlreadyPresent { factors_added: 0 });
            }
        }
        return Ok(Imported::HeldBack {
            present,
            factors: factors.len(),
        });
    }
    // Every factor converts before anything is written: an identity is
    // imported with all its MFA or not at all.
    let mut new_factors = Vec::with_capacity(factors.len());
    for f in factors {
        let status = auth_module::MfaFactorStatus::parse(&f.status)
            .ok_or_else(|| format!("MFA factor {} has status \"{}\"", f.id, f.status))?;
        let secret = f
            .secret
            .as_deref()
            .ok_or_else(|| format!("MFA factor {} has no secret", f.id))
            .and_then(|s| {
                module
                    .mfa()
                    .reseal_medusa_secret(s)
                    .map_err(|e| format!("MFA factor {}: {}", f.id, e.message()))
            })?;
        let mut nf = auth_module::NewMfaFactor::new(&id, &f.provider, secret)
            .status(status)
            .keep(&f.id, f.created_at);
        if let Some(m) = object(f.metadata, "MFA factor metadata")? {
            nf = nf.metadata(m);
        }
        new_factors.push(nf);
    }
    let count = new_factors.len() as u64;
    if present_in_dry_run {
        let factors_added = add_missing_factors(mfa, &id, new_factors, true).await?;
        return Ok(Imported::AlreadyPresent { factors_added });
    }
    if dry_run {
        return Ok(Imported::New(count));
    }
    // One atomic write: the identity, its provider identities and its
    // factors, or nothing.
    let created = match mfa {
        Some(mfa) => {
            mfa.create_auth_identity_with_mfa(new, new_factors.clone())
                .await
        }
        None if new_factors.is_empty() => store.create_auth_identity(new).await,
        None => return Err(lacks_mfa()),
    };
    match created {
        Ok(_) => Ok(Imported::New(count)),
        Err(e) if e.kind() == ErrorKind::DuplicateError => {
            if present(store, &id).await? {
                let factors_added = add_missing_factors(mfa, &id, new_factors, false).await?;
                return Ok(Imported::AlreadyPresent { factors_added });
            }
            Err(format!("already taken in this store: {}", e.message()))
        }
        Err(e) if e.kind().is_internal() || e.kind() == ErrorKind::Unavailable => {
            Err(format!("the store failed: {e}"))
        }
        Err(e) => Err(e.message().to_owned()),
    }
}

/// Gives identity `id`, already in the store, those of `factors` it lacks
/// (by factor id), one `create_mfa_factor` each; in a dry run only counts
/// them. A factor the store refuses as a duplicate (the identity has an
/// active factor of that kind, enrolled since, or a concurrent run added it)
/// is left out and logged. Answers how many were added.
async fn add_missing_factors(
    mfa: Option<&dyn MfaStore>,
    id: &str,
    factors: Vec<auth_module::NewMfaFactor>,
    dry_run: bool,
) -> Result<u64, String> {
    if factors.is_empty() {
        return Ok(0);
    }
    let stored = stored_factor_ids(mfa, id).await?;
    let missing = factors
        .into_iter()
        .filter(|f| f.id.as_ref().is_some_and(|fid| !stored.contains(fid)));
    let mut added = 0;
    for nf in missing {
        if dry_run {
            added += 1;
            continue;
        }
        let factor_id = nf.id.clone().unwrap_or_default();
        let Some(mfa) = mfa else {
            return Err(lacks_mfa());
        };
        match mfa.create_mfa_factor(nf).await {
            Ok(_) => added += 1,
            Err(e) if e.kind() == ErrorKind::DuplicateError => {
                tracing::warn!(
                    auth_identity_id = id,
                    mfa_factor = %factor_id,
                    "import-medusa: Medusa MFA factor not added: {}",
                    e.message()
                );
            }
            Err(e) => {
                return Err(format!(
                    "already present; adding its missing MFA factor {factor_id} failed ({e}): \
                     run again"
                ));
            }
        }
    }
    Ok(added)
}

/// What an identity with MFA factors meets when the store keeps none (which
/// the module allows only without `[mfa]`, when such identities are held
/// back before any write).
fn lacks_mfa() -> String {
    "the identity store keeps no MFA factors".to_owned()
}

/// The ids of the MFA factors identity `id` has in the store (none when it
/// keeps no MFA records).
async fn stored_factor_ids(
    mfa: Option<&dyn MfaStore>,
    id: &str,
) -> Result<HashSet<String>, String> {
    let Some(mfa) = mfa else {
        return Ok(HashSet::new());
    };
    Ok(mfa
        .list_mfa_factors(id)
        .await
        .map_err(|e| format!("the store failed: {e}"))?
        .into_iter()
        .map(|f| f.id)
        .collect())
}

/// Whether auth identity `id` is in the store already (an earlier run).
async fn present(store: &dyn IdentityStore, id: &str) -> Result<bool, String> {
    match store.retrieve_auth_identity(id).await {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(format!("the store failed: {e}")),
    }
}

async fn read_factors(
    pool: &PgPool,
    schema: &str,
    ids: &[String],
) -> Result<Vec<SourceFactor>, ConfigError> {
    let rows = sqlx::query(&format!(
        "SELECT id, auth_identity_id, provider, status, provider_metadata, metadata, created_at \
         FROM \"{schema}\".auth_mfa_factor \
         WHERE deleted_at IS NULL AND auth_identity_id = ANY($1) ORDER BY created_at, id"
    ))
    .bind(ids)
    .fetch_all(pool)
    .await
    .map_err(error("reading MFA factors"))?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let json = |c: &str| -> Option<Value> {
                r.try_get::<Option<sqlx::types::Json<Value>>, _>(c)
                    .ok()
                    .flatten()
                    .map(|j| j.0)
            };
            Some(SourceFactor {
                secret: json("provider_metadata")
                    .and_then(|m| m.get("secret").and_then(Value::as_str).map(str::to_owned)),
                metadata: json("metadata"),
                id: r.try_get("id").ok()?,
                auth_identity_id: r.try_get("auth_identity_id").ok()?,
                provider: r.try_get("provider").ok()?,
                status: r.try_get("status").ok()?,
                created_at: r.try_get("created_at").ok()?,
            })
        })
        .collect())
}

async fn read_providers(
    pool: &PgPool,
    schema: &str,
    ids: &[String],
) -> Result<Vec<SourceProvider>, ConfigError> {
    let rows = sqlx::query(&format!(
        "SELECT id, entity_id, provider, auth_identity_id, user_metadata, provider_metadata, \
         created_at, updated_at FROM \"{schema}\".provider_identity \
         WHERE deleted_at IS NULL AND auth_identity_id = ANY($1) ORDER BY created_at, id"
    ))
    .bind(ids)
    .fetch_all(pool)
    .await
    .map_err(error("reading provider identities"))?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let json = |c: &str| -> Option<Value> {
            r.try_get::<Option<sqlx::types::Json<Value>>, _>(c)
                .ok()
                .flatten()
                .map(|j| j.0)
        };
        let (Ok(id), Ok(entity_id), Ok(provider), Ok(auth_identity_id)) = (
            r.try_get::<String, _>("id"),
            r.try_get::<String, _>("entity_id"),
            r.try_get::<String, _>("provider"),
            r.try_get::<String, _>("auth_identity_id"),
        ) else {
            continue;
        };
        let now = OffsetDateTime::now_utc();
        out.push(SourceProvider {
            user_metadata: json("user_metadata"),
            provider_metadata: json("provider_metadata"),
            created_at: r.try_get("created_at").unwrap_or(now),
            updated_at: r.try_get("updated_at").unwrap_or(now),
            id,
            entity_id,
            provider,
            auth_identity_id,
        });
    }
    Ok(out)
}

/// For every (instance, normalised entity id) that two live Medusa
/// identities share, the one to import: the most recently updated.
async fn collision_winners(
    pool: &PgPool,
    schema: &str,
    module: &AuthModule,
    instance: &dyn Fn(&str) -> Option<String>,
) -> Result<HashMap<(String, String), String>, ConfigError> {
    let rows = sqlx::query(&format!(
        "SELECT p.entity_id, p.provider, a.id, a.updated_at \
         FROM \"{schema}\".provider_identity p \
         JOIN \"{schema}\".auth_identity a ON a.id = p.auth_identity_id \
         WHERE p.deleted_at IS NULL AND a.deleted_at IS NULL"
    ))
    .fetch_all(pool)
    .await
    .map_err(error("reading entity ids"))?;
    let mut best: HashMap<(String, String), (OffsetDateTime, String)> = HashMap::new();
    let mut seen: HashMap<(String, String), u32> = HashMap::new();
    for r in rows {
        let (Ok(entity), Ok(provider), Ok(id), Ok(updated)) = (
            r.try_get::<String, _>(0),
            r.try_get::<String, _>(1),
            r.try_get::<String, _>(2),
            r.try_get::<OffsetDateTime, _>(3),
        ) else {
            continue;
        };
        let Some(target) = instance(&provider) else {
            continue;
        };
        let entity = module
            .normalize_entity_id(&target, &entity)
            .unwrap_or(entity);
        let key = (target, entity);
        *seen.entry(key.clone()).or_default() += 1;
        let candidate = (updated, id);
        match best.get(&key) {
            Some(current) if *current >= candidate => {}
            _ => {
                best.insert(key, candidate);
            }
        }
    }
    Ok(best
        .into_iter()
        .filter(|(k, _)| seen.get(k).is_some_and(|n| *n > 1))
        .map(|(k, (_, id))| (k, id))
        .collect())
}

/// Whether `schema` has table `table`.
async fn has_table(pool: &PgPool, schema: &str, table: &str) -> bool {
    sqlx::query_scalar::<_, bool>(
        "SELECT EXISTS (SELECT 1 FROM information_schema.tables \
         WHERE table_schema = $1 AND table_name = $2)",
    )
    .bind(schema)
    .bind(table)
    .fetch_one(pool)
    .await
    .unwrap_or(false)
}

/// The identities with live rows in Medusa's `table` (if it exists).
async fn identities_in(pool: &PgPool, schema: &str, table: &str) -> Vec<String> {
    if !has_table(pool, schema, table).await {
        return Vec::new();
    }
    let mut sql = String::new();
    let _ = write!(
        sql,
        "SELECT DISTINCT auth_identity_id::text FROM \"{schema}\".\"{table}\" \
         WHERE deleted_at IS NULL ORDER BY 1"
    );
    sqlx::query_scalar::<_, String>(&sql)
        .fetch_all(pool)
        .await
        .unwrap_or_default()
}
