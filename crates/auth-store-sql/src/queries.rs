//! The store's queries, written once and compiled once per engine.
//!
//! `sqlite.rs` and `postgres.rs` each mount this file as their `queries`
//! module, after defining `Db` (the sqlx database), `Ts` (how a timestamp is
//! bound and read) and `ts_to_db`/`ts_from_db`. Everything else is the same:
//! both engines take `$N` placeholders, and every statement here is portable
//! SQL (`INSERT … SELECT`, `UPDATE … RETURNING`, `COALESCE`, `LEFT JOIN`).
//! Concrete types per engine keep sqlx's generic bounds out of the code.

// `Ts` is `Copy` on PostgreSQL (`OffsetDateTime`) but a `String` on SQLite,
// where `.bind(&ts)` is what lets one timestamp be bound twice.
#![allow(clippy::needless_borrows_for_generic_args)]

use std::collections::BTreeSet;

use auth_module::store::{
    duplicate_mfa_factor, invalid_app_metadata_key, provider_metadata_changed,
    valid_app_metadata_key,
};
use auth_module::{
    AUDIT_PREFIX, AUTH_IDENTITY_PREFIX, AuditChainStart, AuditEntry, AuditQuery, AuthIdentity,
    DEVICE_PREFIX, Device, DeviceTally, Error, Metadata, MfaFactor, MfaFactorStatus,
    MfaFactorUpdate, NewAuditEntry, NewAuthIdentity, NewDevice, NewMfaFactor, NewPasskeyCredential,
    NewProviderIdentity, NewVerification, PASSKEY_PREFIX, PasskeyCredential, PasskeyUse,
    ProviderIdentity, ProviderIdentityUpdate, Result, Verification, generate_id,
};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{Connection as _, Row};
use time::OffsetDateTime;

use super::{
    AUDIT_INSERT_MOVES_HEAD, AUDIT_LOCK_HEAD, COUNTER, COUNTER_ENDED, COUNTER_MINUS_ONE,
    COUNTER_PLUS_ONE, Db, PATCH_APP_METADATA_REMOVE, PATCH_APP_METADATA_SET, STATE_INCREMENT, Ts,
    merge_app_metadata_statement, ts_from_db, ts_to_db,
};
use crate::{
    auth_not_found, database, duplicate, duplicate_passkey, is_foreign_key_violation,
    is_unique_violation, provider_not_found,
};

type DbRow = <Db as sqlx::Database>::Row;

/// One connection of the engine: every query runs on the one its caller holds.
type Conn = <Db as sqlx::Database>::Connection;

/// A provider identity's columns, in the order [`provider_at`] and
/// [`provider_row`] read them (a macro, so that `concat!` can splice it).
macro_rules! provider_columns {
    () => {
        "id, entity_id, provider, user_metadata, provider_metadata, \
         created_at, updated_at, auth_identity_id"
    };
}

/// An auth identity and all its provider identities, oldest first, in one
/// round trip: the hot path of token refresh. Columns 0–4 are the auth
/// identity, 5–11 the provider identity (all NULL when it has none), 12 whether
/// the identity has an enabled MFA factor.
const RETRIEVE: &str = "SELECT a.id, a.app_metadata, a.created_at, a.updated_at, \
       a.credential_version, p.id, p.entity_id, p.provider, p.user_metadata, p.provider_metadata, \
       p.created_at, p.updated_at, \
       EXISTS (SELECT 1 FROM auth_mfa_factor f \
               WHERE f.auth_identity_id = a.id AND f.status = 'enabled') \
     FROM auth_identity a \
     LEFT JOIN provider_identity p ON p.auth_identity_id = a.id \
     WHERE a.id = $1 \
     ORDER BY p.created_at, p.id";

fn json(m: Option<&Metadata>) -> Option<Json<&Metadata>> {
    m.map(Json)
}

fn get<'r, T>(row: &'r DbRow, index: usize, what: &'static str) -> Result<T>
where
    T: sqlx::Decode<'r, Db> + sqlx::Type<Db>,
{
    row.try_get(index).map_err(database(what))
}

fn metadata_at(row: &DbRow, index: usize) -> Result<Option<Metadata>> {
    let m: Option<Json<Metadata>> = get(row, index, "reading a metadata column")?;
    Ok(m.map(|Json(m)| m))
}

/// The provider identity whose columns start at `base`, in
/// `provider_columns!()` order (without `auth_identity_id`, given here).
fn provider_at(row: &DbRow, base: usize, auth_identity_id: String) -> Result<ProviderIdentity> {
    const WHAT: &str = "reading a provider identity";
    let id: String = get(row, base, WHAT)?;
    let entity_id: String = get(row, base + 1, WHAT)?;
    let provider: String = get(row, base + 2, WHAT)?;
    let created_at = ts_from_db(get(row, base + 5, WHAT)?)?;
    let mut p = ProviderIdentity::new(id, provider, entity_id, auth_identity_id, created_at);
    p.user_metadata = metadata_at(row, base + 3)?;
    p.provider_metadata = metadata_at(row, base + 4)?;
    p.updated_at = ts_from_db(get(row, base + 6, WHAT)?)?;
    Ok(p)
}

/// A row selected with `provider_columns!()`.
fn provider_row(row: &DbRow) -> Result<ProviderIdentity> {
    let auth_identity_id = get(row, 7, "reading a provider identity")?;
    provider_at(row, 0, auth_identity_id)
}

/// The provider identity `new` will be stored as, at the engines' precision.
fn new_provider(
    auth_identity_id: &str,
    new: NewProviderIdentity,
    now: OffsetDateTime,
) -> ProviderIdentity {
    let mut p = new.into_provider_identity(auth_identity_id, now);
    p.created_at = crate::truncate(p.created_at);
    p.updated_at = crate::truncate(p.updated_at);
    p
}

/// Inserts `p` (in a transaction or not).
async fn insert_provider<'e, E>(executor: E, p: &ProviderIdentity) -> sqlx::Result<u64>
where
    E: sqlx::Executor<'e, Database = Db>,
{
    let created = ts_to_db(p.created_at).map_err(|e| sqlx::Error::Encode(e.into()))?;
    let updated = ts_to_db(p.updated_at).map_err(|e| sqlx::Error::Encode(e.into()))?;
    // `INSERT … SELECT`: inserts nothing when the auth identity does not exist.
    sqlx::query(
        "INSERT INTO provider_identity (id, entity_id, provider, auth_identity_id, \
         user_metadata, provider_metadata, created_at, updated_at) \
         SELECT $1, $2, $3, id, $5, $6, $7, $8 FROM auth_identity WHERE id = $4",
    )
    .bind(&p.id)
    .bind(&p.entity_id)
    .bind(&p.provider)
    .bind(&p.auth_identity_id)
    .bind(json(p.user_metadata.as_ref()))
    .bind(json(p.provider_metadata.as_ref()))
    .bind(&created)
    .bind(&updated)
    .execute(executor)
    .await
    .map(|done| done.rows_affected())
}

pub(crate) async fn create_auth_identity(
    conn: &mut Conn,
    new: NewAuthIdentity,
) -> Result<AuthIdentity> {
    create_auth_identity_with_mfa(conn, new, Vec::new()).await
}

/// The identity, its provider identities and `factors` in one transaction.
pub(crate) async fn create_auth_identity_with_mfa(
    conn: &mut Conn,
    new: NewAuthIdentity,
    factors: Vec<NewMfaFactor>,
) -> Result<AuthIdentity> {
    let now = crate::now();
    let created_at = new.created_at.map_or(now, crate::truncate);
    let mut identity = AuthIdentity::new(
        new.id.unwrap_or_else(|| generate_id(AUTH_IDENTITY_PREFIX)),
        created_at,
    );
    identity.app_metadata = new.app_metadata;
    identity.updated_at = new.updated_at.map_or(created_at, crate::truncate);
    let factors = new_factors(&identity.id, factors, now)?;
    // As a read would say: whether one of its factors is enabled.
    identity.mfa_enabled = Some(factors.iter().any(|f| f.status == MfaFactorStatus::Enabled));
    let mut tx = conn
        .begin()
        .await
        .map_err(database("starting a transaction"))?;
    let inserted = sqlx::query(
        "INSERT INTO auth_identity (id, app_metadata, created_at, updated_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(&identity.id)
    .bind(json(identity.app_metadata.as_ref()))
    .bind(ts_to_db(identity.created_at)?)
    .bind(ts_to_db(identity.updated_at)?)
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {
            return Err(Error::duplicate(format!(
                "AuthIdentity with id: {} already exists",
                identity.id
            )));
        }
        Err(e) => return Err(database("inserting an auth identity")(e)),
    }

    for p in new.provider_identities {
        let built = new_provider(&identity.id, p, now);
        if let Err(e) = insert_provider(&mut *tx, &built).await {
            // Dropping `tx` rolls the whole call back: nothing is stored.
            return Err(if is_unique_violation(&e) {
                duplicate(&NewProviderIdentity::new(&built.provider, &built.entity_id))
            } else {
                database("inserting a provider identity")(e)
            });
        }
        identity.provider_identities.push(built);
    }
    for factor in &factors {
        if let Err(e) = insert_factor(&mut *tx, factor).await {
            // Dropping `tx` rolls the whole call back. The identity is new and
            // `new_factors` checked one active factor per provider, so a
            // unique key broken here is a factor id taken elsewhere.
            return Err(if is_unique_violation(&e) {
                Error::duplicate(format!("MfaFactor with id: {} already exists", factor.id))
            } else {
                database("inserting an MFA factor")(e)
            });
        }
    }
    tx.commit()
        .await
        .map_err(database("committing an auth identity"))?;
    identity
        .provider_identities
        .sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(identity)
}

pub(crate) async fn retrieve_auth_identity(conn: &mut Conn, id: &str) -> Result<AuthIdentity> {
    let rows = sqlx::query(RETRIEVE)
        .bind(id)
        .fetch_all(&mut *conn)
        .await
        .map_err(database("reading an auth identity"))?;
    let Some(first) = rows.first() else {
        return Err(auth_not_found(id));
    };
    const WHAT: &str = "reading an auth identity";
    let auth_id: String = get(first, 0, WHAT)?;
    let mut identity = AuthIdentity::new(auth_id, ts_from_db(get(first, 2, WHAT)?)?);
    identity.app_metadata = metadata_at(first, 1)?;
    identity.updated_at = ts_from_db(get(first, 3, WHAT)?)?;
    let version: i64 = get(first, 4, WHAT)?;
    identity.credential_version = u64::try_from(version).unwrap_or(0);
    identity.mfa_enabled = Some(get(first, 12, WHAT)?);
    for row in &rows {
        let pid: Option<String> = get(row, 5, "reading a provider identity")?;
        if pid.is_some() {
            let p = provider_at(row, 5, identity.id.clone())?;
            identity.provider_identities.push(p);
        }
    }
    Ok(identity)
}

pub(crate) async fn update_app_metadata(
    conn: &mut Conn,
    id: &str,
    app_metadata: Option<Metadata>,
) -> Result<AuthIdentity> {
    let ts: Ts = ts_to_db(crate::now())?;
    let updated =
        sqlx::query("UPDATE auth_identity SET app_metadata = $1, updated_at = $2 WHERE id = $3")
            .bind(json(app_metadata.as_ref()))
            .bind(&ts)
            .bind(id)
            .execute(&mut *conn)
            .await
            .map_err(database("updating app_metadata"))?;
    if updated.rows_affected() == 0 {
        return Err(auth_not_found(id));
    }
    retrieve_auth_identity(conn, id).await
}

pub(crate) async fn patch_app_metadata(
    conn: &mut Conn,
    id: &str,
    key: &str,
    value: Option<Value>,
) -> Result<AuthIdentity> {
    if !valid_app_metadata_key(key) {
        return Err(invalid_app_metadata_key(key));
    }
    let ts: Ts = ts_to_db(crate::now())?;
    // One statement: the database changes the one key, so concurrent patches
    // of other keys are all kept.
    let updated = match &value {
        Some(v) => {
            sqlx::query(PATCH_APP_METADATA_SET)
                .bind(key)
                .bind(Json(v))
                .bind(&ts)
                .bind(id)
                .execute(&mut *conn)
                .await
        }
        None => {
            sqlx::query(PATCH_APP_METADATA_REMOVE)
                .bind(key)
                .bind(&ts)
                .bind(id)
                .execute(&mut *conn)
                .await
        }
    }
    .map_err(database("patching app_metadata"))?;
    if updated.rows_affected() == 0 {
        return Err(auth_not_found(id));
    }
    retrieve_auth_identity(conn, id).await
}

pub(crate) async fn merge_app_metadata(
    conn: &mut Conn,
    id: &str,
    patch: &Metadata,
) -> Result<AuthIdentity> {
    if let Some(bad) = patch.keys().find(|k| !valid_app_metadata_key(k)) {
        return Err(invalid_app_metadata_key(bad));
    }
    let mut sets = Metadata::new();
    let mut removes = Vec::new();
    for (key, value) in patch {
        if value.is_null() {
            removes.push(key.clone());
        } else {
            sets.insert(key.clone(), value.clone());
        }
    }
    let ts: Ts = ts_to_db(crate::now())?;
    // One statement (the engine's): the database changes the given keys, so
    // concurrent patches and merges of other keys are all kept.
    let updated = merge_app_metadata_statement(conn, id, &sets, &removes, &ts)
        .await
        .map_err(database("merging app_metadata"))?;
    if updated == 0 {
        return Err(auth_not_found(id));
    }
    retrieve_auth_identity(conn, id).await
}

pub(crate) async fn bump_credential_version(conn: &mut Conn, id: &str) -> Result<AuthIdentity> {
    let ts: Ts = ts_to_db(crate::now())?;
    let updated = sqlx::query(
        "UPDATE auth_identity SET credential_version = credential_version + 1, \
         updated_at = $1 WHERE id = $2",
    )
    .bind(&ts)
    .bind(id)
    .execute(&mut *conn)
    .await
    .map_err(database("bumping a credential version"))?;
    if updated.rows_affected() == 0 {
        return Err(auth_not_found(id));
    }
    retrieve_auth_identity(conn, id).await
}

pub(crate) async fn delete_auth_identity(conn: &mut Conn, id: &str) -> Result<()> {
    // Its provider identities go with it: ON DELETE CASCADE.
    let deleted = sqlx::query("DELETE FROM auth_identity WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(database("deleting an auth identity"))?;
    if deleted.rows_affected() == 0 {
        return Err(auth_not_found(id));
    }
    Ok(())
}

pub(crate) async fn find_provider_identity(
    conn: &mut Conn,
    provider: &str,
    entity_id: &str,
) -> Result<Option<ProviderIdentity>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        provider_columns!(),
        " FROM provider_identity WHERE entity_id = $1 AND provider = $2"
    ))
    .bind(entity_id)
    .bind(provider)
    .fetch_optional(&mut *conn)
    .await
    .map_err(database("finding a provider identity"))?;
    row.as_ref().map(provider_row).transpose()
}

pub(crate) async fn add_provider_identity(
    conn: &mut Conn,
    auth_identity_id: &str,
    new: NewProviderIdentity,
) -> Result<ProviderIdentity> {
    let duplicate_error = duplicate(&new);
    let built = new_provider(auth_identity_id, new, crate::now());
    // One statement: inserts nothing when the auth identity does not exist,
    // so a missing auth identity is reported before a duplicate, as in memory.
    match insert_provider(&mut *conn, &built).await {
        Ok(0) => Err(auth_not_found(auth_identity_id)),
        Ok(_) => Ok(built),
        Err(e) if is_unique_violation(&e) => Err(duplicate_error),
        // The auth identity was deleted between the SELECT and the INSERT.
        Err(e) if is_foreign_key_violation(&e) => Err(auth_not_found(auth_identity_id)),
        Err(e) => Err(database("adding a provider identity")(e)),
    }
}

pub(crate) async fn update_provider_identity(
    conn: &mut Conn,
    id: &str,
    update: ProviderIdentityUpdate,
) -> Result<ProviderIdentity> {
    let ts = ts_to_db(crate::now())?;
    let (check, expected) = match &update.expected_provider_metadata {
        Some(expected) => (true, expected.as_ref()),
        None => (false, None),
    };
    // The first write takes the write lock (SQLite) or the row lock
    // (PostgreSQL), so the precondition and the bump hold together.
    let mut tx = conn
        .begin()
        .await
        .map_err(database("starting a transaction"))?;
    // A `None` field binds NULL, and COALESCE keeps the stored value; a `Some`
    // is a JSON object, never NULL, so it always replaces. With `$5` the row
    // changes only while its provider_metadata is still `$6`.
    let row = sqlx::query(concat!(
        "UPDATE provider_identity SET \
           user_metadata = COALESCE($1, user_metadata), \
           provider_metadata = COALESCE($2, provider_metadata), \
           updated_at = $3 \
         WHERE id = $4 AND (NOT $5 OR provider_metadata IS NOT DISTINCT FROM $6) \
         RETURNING ",
        provider_columns!()
    ))
    .bind(json(update.user_metadata.as_ref()))
    .bind(json(update.provider_metadata.as_ref()))
    .bind(&ts)
    .bind(id)
    .bind(check)
    .bind(json(expected))
    .fetch_optional(&mut *tx)
    .await
    .map_err(database("updating a provider identity"))?;
    let Some(row) = row else {
        drop(tx);
        let exists = sqlx::query("SELECT 1 FROM provider_identity WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(database("reading a provider identity"))?;
        return Err(match exists {
            Some(_) if check => provider_metadata_changed(id),
            _ => provider_not_found(id),
        });
    };
    let updated = provider_row(&row)?;
    if update.bump_credential_version {
        sqlx::query(
            "UPDATE auth_identity SET credential_version = credential_version + 1, \
             updated_at = $1 WHERE id = $2",
        )
        .bind(&ts)
        .bind(&updated.auth_identity_id)
        .execute(&mut *tx)
        .await
        .map_err(database("bumping a credential version"))?;
    }
    tx.commit()
        .await
        .map_err(database("committing a provider identity update"))?;
    Ok(updated)
}

pub(crate) async fn delete_provider_identity(conn: &mut Conn, id: &str) -> Result<()> {
    let deleted = sqlx::query("DELETE FROM provider_identity WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(database("deleting a provider identity"))?;
    if deleted.rows_affected() == 0 {
        return Err(provider_not_found(id));
    }
    Ok(())
}

pub(crate) async fn provider_identity_owner(conn: &mut Conn, id: &str) -> Result<Option<String>> {
    sqlx::query_scalar("SELECT auth_identity_id FROM provider_identity WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(database("reading a provider identity's owner"))
}

// ----- MFA factors, recovery codes, verifications ---------------------------

/// An MFA factor's columns, in the order [`factor_row`] reads them.
macro_rules! factor_columns {
    () => {
        "id, auth_identity_id, provider, status, secret, metadata, last_used_step, \
         created_at, updated_at"
    };
}

/// A verification row's columns, in the order [`verification_row`] reads them.
macro_rules! verification_columns {
    () => {
        "id, auth_identity_id, entity_id, entity_type, code_provider, code_hash, \
         expires_at, requested_at, verified_at, metadata, created_at, updated_at"
    };
}

/// How many recovery codes one `INSERT` writes at most (both engines' bind
/// limits are far above it).
const RECOVERY_CODES_PER_INSERT: usize = 500;

/// A row selected with `factor_columns!()`.
fn factor_row(row: &DbRow) -> Result<MfaFactor> {
    const WHAT: &str = "reading an MFA factor";
    let id: String = get(row, 0, WHAT)?;
    let auth_identity_id: String = get(row, 1, WHAT)?;
    let provider: String = get(row, 2, WHAT)?;
    let status: String = get(row, 3, WHAT)?;
    let status = MfaFactorStatus::parse(&status).ok_or_else(|| {
        Error::unexpected(format!(
            "auth-store-sql: stored MFA factor {id} has an unknown status {status:?}"
        ))
    })?;
    let secret: String = get(row, 4, WHAT)?;
    let created_at = ts_from_db(get(row, 7, WHAT)?)?;
    let mut new = NewMfaFactor::new(auth_identity_id, provider, secret)
        .status(status)
        .keep(id, created_at);
    new.metadata = metadata_at(row, 5)?;
    let mut factor = new.into_factor(created_at);
    factor.last_used_step = get(row, 6, WHAT)?;
    factor.updated_at = ts_from_db(get(row, 8, WHAT)?)?;
    Ok(factor)
}

/// An optional timestamp column.
fn optional_ts(row: &DbRow, index: usize, what: &'static str) -> Result<Option<OffsetDateTime>> {
    let t: Option<Ts> = get(row, index, what)?;
    t.map(ts_from_db).transpose()
}

/// A row selected with `verification_columns!()`.
fn verification_row(row: &DbRow) -> Result<Verification> {
    const WHAT: &str = "reading a verification";
    let created_at = ts_from_db(get(row, 10, WHAT)?)?;
    let requested_at = ts_from_db(get(row, 7, WHAT)?)?;
    let expires_at = ts_from_db(get(row, 6, WHAT)?)?;
    let new = NewVerification::new(
        get::<String>(row, 1, WHAT)?,
        get::<String>(row, 2, WHAT)?,
        get::<String>(row, 3, WHAT)?,
        get::<String>(row, 4, WHAT)?,
        String::new(),
        requested_at,
        expires_at,
    )
    .metadata(metadata_at(row, 9)?);
    let mut v = new.into_verification(created_at);
    v.id = get(row, 0, WHAT)?;
    v.code_hash = get(row, 5, WHAT)?;
    v.verified_at = optional_ts(row, 8, WHAT)?;
    v.updated_at = ts_from_db(get(row, 11, WHAT)?)?;
    Ok(v)
}

/// `$first, $first+1, …` for `n` values, each written by `item` (e.g.
/// `|p| p` for an `IN` list, `|p| format!("($1, {p})")` for rows of values).
fn placeholders(first: usize, n: usize, item: impl Fn(String) -> String) -> String {
    (first..first + n)
        .map(|i| item(format!("${i}")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The factors of a new identity `auth_identity_id` as they will be stored,
/// at the engines' precision; `DuplicateError` if two are active for one
/// provider or share an id (as the database would say, before it is asked).
fn new_factors(
    auth_identity_id: &str,
    factors: Vec<NewMfaFactor>,
    now: OffsetDateTime,
) -> Result<Vec<MfaFactor>> {
    let mut built: Vec<MfaFactor> = Vec::with_capacity(factors.len());
    for mut new in factors {
        new.auth_identity_id = auth_identity_id.to_owned();
        let factor = stored_factor(new, now);
        if factor.status.is_active()
            && built
                .iter()
                .any(|o| o.provider == factor.provider && o.status.is_active())
        {
            return Err(duplicate_mfa_factor(&factor.provider));
        }
        if built.iter().any(|o| o.id == factor.id) {
            return Err(Error::duplicate(format!(
                "MfaFactor with id: {} already exists",
                factor.id
            )));
        }
        built.push(factor);
    }
    Ok(built)
}

/// `new` as it will be stored, at the engines' precision.
fn stored_factor(new: NewMfaFactor, now: OffsetDateTime) -> MfaFactor {
    let mut factor = new.into_factor(now);
    factor.created_at = crate::truncate(factor.created_at);
    factor.updated_at = factor.created_at;
    factor
}

/// Inserts `factor` (in a transaction or not) in one statement: `INSERT …
/// SELECT` inserts nothing when the auth identity does not exist, and the
/// partial unique index refuses a second active factor of the provider,
/// whatever runs concurrently.
async fn insert_factor<'e, E>(executor: E, factor: &MfaFactor) -> sqlx::Result<u64>
where
    E: sqlx::Executor<'e, Database = Db>,
{
    let created = ts_to_db(factor.created_at).map_err(|e| sqlx::Error::Encode(e.into()))?;
    let updated = ts_to_db(factor.updated_at).map_err(|e| sqlx::Error::Encode(e.into()))?;
    sqlx::query(
        "INSERT INTO auth_mfa_factor (id, auth_identity_id, provider, status, secret, metadata, \
         created_at, updated_at) \
         SELECT $1, id, $3, $4, $5, $6, $7, $8 FROM auth_identity WHERE id = $2",
    )
    .bind(&factor.id)
    .bind(&factor.auth_identity_id)
    .bind(&factor.provider)
    .bind(factor.status.as_str())
    .bind(&factor.secret)
    .bind(json(factor.metadata.as_ref()))
    .bind(&created)
    .bind(&updated)
    .execute(executor)
    .await
    .map(|done| done.rows_affected())
}

pub(crate) async fn create_mfa_factor(conn: &mut Conn, new: NewMfaFactor) -> Result<MfaFactor> {
    let factor = stored_factor(new, crate::now());
    let inserted = insert_factor(&mut *conn, &factor).await;
    match inserted {
        Ok(0) => Err(auth_not_found(&factor.auth_identity_id)),
        Ok(_) => Ok(factor),
        Err(e) if is_unique_violation(&e) => Err(mfa_factor_duplicate(conn, &factor).await?),
        // The auth identity was deleted between the SELECT and the INSERT.
        Err(e) if is_foreign_key_violation(&e) => Err(auth_not_found(&factor.auth_identity_id)),
        Err(e) => Err(database("creating an MFA factor")(e)),
    }
}

/// Which unique key `factor` broke, for the message: the active factor of
/// its provider (checked first, as in memory) or its given id. Both are
/// `DuplicateError`; the database already refused the insert.
async fn mfa_factor_duplicate(conn: &mut Conn, factor: &MfaFactor) -> Result<Error> {
    if factor.status.is_active() {
        let active = sqlx::query(
            "SELECT 1 FROM auth_mfa_factor WHERE auth_identity_id = $1 AND provider = $2 \
             AND status IN ('pending', 'enabled')",
        )
        .bind(&factor.auth_identity_id)
        .bind(&factor.provider)
        .fetch_optional(&mut *conn)
        .await
        .map_err(database("reading MFA factors"))?;
        if active.is_some() {
            return Ok(duplicate_mfa_factor(&factor.provider));
        }
    }
    Ok(Error::duplicate(format!(
        "MfaFactor with id: {} already exists",
        factor.id
    )))
}

pub(crate) async fn list_mfa_factors(
    conn: &mut Conn,
    auth_identity_id: &str,
) -> Result<Vec<MfaFactor>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        factor_columns!(),
        " FROM auth_mfa_factor WHERE auth_identity_id = $1 ORDER BY created_at, id"
    ))
    .bind(auth_identity_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(database("listing MFA factors"))?;
    rows.iter().map(factor_row).collect()
}

pub(crate) async fn update_mfa_factor(
    conn: &mut Conn,
    id: &str,
    update: MfaFactorUpdate,
) -> Result<Option<MfaFactor>> {
    let ts = ts_to_db(crate::now())?;
    // `status IN ($6, $7, $8)`: the accepted statuses, the first repeated to
    // fill the three slots (there are three statuses); `$5` waives the check.
    let any_status = update.if_status.is_empty();
    let mut accepted = update.if_status.iter().map(|s| s.as_str());
    let first = accepted.next().unwrap_or("");
    let second = accepted.next().unwrap_or(first);
    let third = accepted.next().unwrap_or(first);
    // One conditional statement: of concurrent updates spending one TOTP
    // step, the first to write moves last_used_step, and the others, which
    // re-check the WHERE clause on the row it wrote, match nothing.
    let row = sqlx::query(concat!(
        "UPDATE auth_mfa_factor SET \
           status = COALESCE($1, status), \
           last_used_step = COALESCE($2, last_used_step), \
           updated_at = $3 \
         WHERE id = $4 \
           AND ($5 OR status IN ($6, $7, $8)) \
           AND ($2 IS NULL OR last_used_step IS NULL OR last_used_step < $2) \
         RETURNING ",
        factor_columns!()
    ))
    .bind(update.status.map(MfaFactorStatus::as_str))
    .bind(update.use_step)
    .bind(&ts)
    .bind(id)
    .bind(any_status)
    .bind(first)
    .bind(second)
    .bind(third)
    .fetch_optional(&mut *conn)
    .await;
    match row {
        Ok(row) => row.as_ref().map(factor_row).transpose(),
        // Re-activating a factor while another of its provider is active:
        // the partial unique index refuses it, as it refuses such a create.
        Err(e) if is_unique_violation(&e) => {
            let provider: Option<String> =
                sqlx::query_scalar("SELECT provider FROM auth_mfa_factor WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(database("reading an MFA factor"))?;
            Err(duplicate_mfa_factor(provider.as_deref().unwrap_or("MFA")))
        }
        Err(e) => Err(database("updating an MFA factor")(e)),
    }
}

pub(crate) async fn replace_recovery_codes(
    conn: &mut Conn,
    auth_identity_id: &str,
    hashes: Vec<String>,
) -> Result<()> {
    // A hash given twice is one code.
    let hashes: Vec<String> = hashes
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut tx = conn
        .begin()
        .await
        .map_err(database("starting a transaction"))?;
    // The first statement writes, so SQLite takes its write lock before the
    // read below rather than upgrading a read lock later.
    sqlx::query("DELETE FROM auth_recovery_code WHERE auth_identity_id = $1")
        .bind(auth_identity_id)
        .execute(&mut *tx)
        .await
        .map_err(database("deleting recovery codes"))?;
    let exists = sqlx::query("SELECT 1 FROM auth_identity WHERE id = $1")
        .bind(auth_identity_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(database("reading an auth identity"))?;
    if exists.is_none() {
        // Dropping `tx` rolls back (there was nothing to delete anyway).
        return Err(auth_not_found(auth_identity_id));
    }
    for chunk in hashes.chunks(RECOVERY_CODES_PER_INSERT) {
        let sql = format!(
            "INSERT INTO auth_recovery_code (auth_identity_id, code_hash) VALUES {}",
            placeholders(2, chunk.len(), |p| format!("($1, {p})"))
        );
        let mut insert = sqlx::query(&sql).bind(auth_identity_id);
        for hash in chunk {
            insert = insert.bind(hash);
        }
        match insert.execute(&mut *tx).await {
            Ok(_) => {}
            // The auth identity was deleted concurrently (PostgreSQL).
            Err(e) if is_foreign_key_violation(&e) => {
                return Err(auth_not_found(auth_identity_id));
            }
            Err(e) => return Err(database("storing recovery codes")(e)),
        }
    }
    tx.commit()
        .await
        .map_err(database("committing recovery codes"))
}

pub(crate) async fn consume_recovery_code(
    conn: &mut Conn,
    auth_identity_id: &str,
    candidates: &[String],
) -> Result<bool> {
    if candidates.is_empty() {
        return Ok(false);
    }
    // One statement: of concurrent spends of one code, one deletes the row
    // and the others find it gone.
    let sql = format!(
        "DELETE FROM auth_recovery_code WHERE auth_identity_id = $1 AND code_hash IN ({})",
        placeholders(2, candidates.len(), |p| p)
    );
    let mut delete = sqlx::query(&sql).bind(auth_identity_id);
    for candidate in candidates {
        delete = delete.bind(candidate);
    }
    let done = delete
        .execute(&mut *conn)
        .await
        .map_err(database("spending a recovery code"))?;
    Ok(done.rows_affected() > 0)
}

pub(crate) async fn count_recovery_codes(conn: &mut Conn, auth_identity_id: &str) -> Result<u64> {
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM auth_recovery_code WHERE auth_identity_id = $1")
            .bind(auth_identity_id)
            .fetch_one(&mut *conn)
            .await
            .map_err(database("counting recovery codes"))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The verification row of (`auth_identity_id`, `entity_id`, `entity_type`).
async fn select_verification<'e, E>(
    executor: E,
    auth_identity_id: &str,
    entity_id: &str,
    entity_type: &str,
) -> Result<Option<Verification>>
where
    E: sqlx::Executor<'e, Database = Db>,
{
    let row = sqlx::query(concat!(
        "SELECT ",
        verification_columns!(),
        " FROM auth_verification \
         WHERE auth_identity_id = $1 AND entity_id = $2 AND entity_type = $3"
    ))
    .bind(auth_identity_id)
    .bind(entity_id)
    .bind(entity_type)
    .fetch_optional(executor)
    .await
    .map_err(database("reading a verification"))?;
    row.as_ref().map(verification_row).transpose()
}

pub(crate) async fn request_verification(
    conn: &mut Conn,
    new: NewVerification,
) -> Result<Verification> {
    let now = crate::now();
    let mut row = new.into_verification(now);
    row.requested_at = row.requested_at.map(crate::truncate);
    row.expires_at = row.expires_at.map(crate::truncate);
    let (Some(requested_at), Some(expires_at)) = (row.requested_at, row.expires_at) else {
        // Invariant: `into_verification` sets both.
        return Err(Error::unexpected(
            "auth-store-sql: a new verification lacks its times",
        ));
    };
    let ts = ts_to_db(now)?;
    let mut tx = conn
        .begin()
        .await
        .map_err(database("starting a transaction"))?;
    // One upsert: a new row (only if the auth identity exists), or the
    // pending row takes the new code, times and metadata; a verified row is
    // left as it is. The SELECT after it reads whichever it is.
    let upserted = sqlx::query(
        "INSERT INTO auth_verification (id, auth_identity_id, entity_id, entity_type, \
           code_provider, code_hash, expires_at, requested_at, metadata, created_at, updated_at) \
         SELECT $1, id, $3, $4, $5, $6, $7, $8, $9, $10, $10 FROM auth_identity WHERE id = $2 \
         ON CONFLICT (auth_identity_id, entity_id, entity_type) DO UPDATE SET \
           code_provider = excluded.code_provider, \
           code_hash = excluded.code_hash, \
           expires_at = excluded.expires_at, \
           requested_at = excluded.requested_at, \
           metadata = excluded.metadata, \
           updated_at = excluded.updated_at \
         WHERE auth_verification.verified_at IS NULL",
    )
    .bind(&row.id)
    .bind(&row.auth_identity_id)
    .bind(&row.entity_id)
    .bind(&row.entity_type)
    .bind(&row.code_provider)
    .bind(&row.code_hash)
    .bind(ts_to_db(expires_at)?)
    .bind(ts_to_db(requested_at)?)
    .bind(json(row.metadata.as_ref()))
    .bind(&ts)
    .execute(&mut *tx)
    .await;
    match upserted {
        Ok(_) => {}
        // The only other unique key: another row's pending code.
        Err(e) if is_unique_violation(&e) => {
            return Err(Error::duplicate(
                "A pending verification already has this code",
            ));
        }
        Err(e) if is_foreign_key_violation(&e) => {
            return Err(auth_not_found(&row.auth_identity_id));
        }
        Err(e) => return Err(database("requesting a verification")(e)),
    }
    let stored = select_verification(
        &mut *tx,
        &row.auth_identity_id,
        &row.entity_id,
        &row.entity_type,
    )
    .await?;
    let Some(stored) = stored else {
        // Nothing inserted and nothing to update: no such auth identity.
        return Err(auth_not_found(&row.auth_identity_id));
    };
    tx.commit()
        .await
        .map_err(database("committing a verification"))?;
    Ok(stored)
}

pub(crate) async fn find_verification(
    conn: &mut Conn,
    auth_identity_id: &str,
    entity_id: &str,
    entity_type: &str,
) -> Result<Option<Verification>> {
    select_verification(conn, auth_identity_id, entity_id, entity_type).await
}

pub(crate) async fn confirm_verification(
    conn: &mut Conn,
    code_hash: &str,
    code_provider: &str,
    now: OffsetDateTime,
) -> Result<Option<Verification>> {
    let now = ts_to_db(crate::truncate(now))?;
    // One conditional statement: of concurrent confirmations of one code,
    // one clears it and the others match nothing.
    let row = sqlx::query(concat!(
        "UPDATE auth_verification SET verified_at = $3, code_hash = NULL, updated_at = $3 \
         WHERE code_hash = $1 AND verified_at IS NULL AND code_provider = $2 \
           AND expires_at > $3 \
         RETURNING ",
        verification_columns!()
    ))
    .bind(code_hash)
    .bind(code_provider)
    .bind(&now)
    .fetch_optional(&mut *conn)
    .await
    .map_err(database("confirming a verification"))?;
    row.as_ref().map(verification_row).transpose()
}

pub(crate) async fn verification_by_code(
    conn: &mut Conn,
    code_hash: &str,
) -> Result<Option<Verification>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        verification_columns!(),
        " FROM auth_verification WHERE code_hash = $1"
    ))
    .bind(code_hash)
    .fetch_optional(&mut *conn)
    .await
    .map_err(database("reading a verification"))?;
    row.as_ref().map(verification_row).transpose()
}

// ----- passkeys -----------------------------------------------------------------

/// A passkey's columns, in the order [`passkey_row`] reads them.
macro_rules! passkey_columns {
    () => {
        "id, auth_identity_id, provider, credential_id, user_handle, email, name, credential, \
         sign_count, backed_up, transports, created_at, last_used_at"
    };
}

/// A row selected with `passkey_columns!()`.
fn passkey_row(row: &DbRow) -> Result<PasskeyCredential> {
    const WHAT: &str = "reading a passkey";
    let id: String = get(row, 0, WHAT)?;
    let Json(credential): Json<Value> = get(row, 7, WHAT)?;
    let mut new = NewPasskeyCredential::new(
        get::<String>(row, 1, WHAT)?,
        get::<String>(row, 2, WHAT)?,
        get::<String>(row, 3, WHAT)?,
        get::<String>(row, 4, WHAT)?,
        credential,
    );
    new.email = get(row, 5, WHAT)?;
    new.name = get(row, 6, WHAT)?;
    let sign_count: i64 = get(row, 8, WHAT)?;
    new.sign_count = u32::try_from(sign_count).map_err(|_| {
        Error::unexpected(format!(
            "auth-store-sql: stored passkey {id} has an out-of-range signature counter {sign_count}"
        ))
    })?;
    new.backed_up = get(row, 9, WHAT)?;
    let Json(transports): Json<Vec<String>> = get(row, 10, WHAT)?;
    new.transports = transports;
    let created_at = ts_from_db(get(row, 11, WHAT)?)?;
    let last_used_at = optional_ts(row, 12, WHAT)?;
    let mut passkey = new.into_credential(id, created_at);
    passkey.last_used_at = last_used_at;
    Ok(passkey)
}

/// The rows selected with `passkey_columns!()`.
fn passkey_rows(rows: &[DbRow]) -> Result<Vec<PasskeyCredential>> {
    rows.iter().map(passkey_row).collect()
}

/// The row selected with `passkey_columns!()`, if any.
fn passkey_optional(row: Option<DbRow>) -> Result<Option<PasskeyCredential>> {
    row.as_ref().map(passkey_row).transpose()
}

pub(crate) async fn create_passkey(
    conn: &mut Conn,
    new: NewPasskeyCredential,
) -> Result<PasskeyCredential> {
    let created_at = crate::now();
    let passkey = new.into_credential(generate_id(PASSKEY_PREFIX), created_at);
    // One statement: `INSERT … SELECT` inserts nothing when the auth identity
    // does not exist (so a missing identity is reported before a duplicate,
    // as in memory), and the unique key refuses a credential id its provider
    // has, whatever runs concurrently.
    let inserted = sqlx::query(
        "INSERT INTO auth_passkey (id, auth_identity_id, provider, credential_id, user_handle, \
           email, name, credential, sign_count, backed_up, transports, created_at) \
         SELECT $1, id, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 \
         FROM auth_identity WHERE id = $2",
    )
    .bind(&passkey.id)
    .bind(&passkey.auth_identity_id)
    .bind(&passkey.provider)
    .bind(&passkey.credential_id)
    .bind(&passkey.user_handle)
    .bind(passkey.email.as_deref())
    .bind(&passkey.name)
    .bind(Json(&passkey.credential))
    .bind(i64::from(passkey.sign_count))
    .bind(passkey.backed_up)
    .bind(Json(&passkey.transports))
    .bind(ts_to_db(created_at)?)
    .execute(&mut *conn)
    .await
    .map(|done| done.rows_affected());
    match inserted {
        Ok(0) => Err(auth_not_found(&passkey.auth_identity_id)),
        Ok(_) => Ok(passkey),
        Err(e) if is_unique_violation(&e) => Err(duplicate_passkey()),
        // The auth identity was deleted between the SELECT and the INSERT.
        Err(e) if is_foreign_key_violation(&e) => Err(auth_not_found(&passkey.auth_identity_id)),
        Err(e) => Err(database("creating a passkey")(e)),
    }
}

pub(crate) async fn find_passkey(
    conn: &mut Conn,
    provider: &str,
    credential_id: &str,
) -> Result<Option<PasskeyCredential>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        passkey_columns!(),
        " FROM auth_passkey WHERE provider = $1 AND credential_id = $2"
    ))
    .bind(provider)
    .bind(credential_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(database("finding a passkey"))?;
    passkey_optional(row)
}

pub(crate) async fn list_passkeys(
    conn: &mut Conn,
    auth_identity_id: &str,
) -> Result<Vec<PasskeyCredential>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        passkey_columns!(),
        " FROM auth_passkey WHERE auth_identity_id = $1 ORDER BY created_at, id"
    ))
    .bind(auth_identity_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(database("listing passkeys"))?;
    passkey_rows(&rows)
}

pub(crate) async fn passkeys_for_email(
    conn: &mut Conn,
    provider: &str,
    email: &str,
) -> Result<Vec<PasskeyCredential>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        passkey_columns!(),
        " FROM auth_passkey WHERE provider = $1 AND email = $2 ORDER BY created_at, id"
    ))
    .bind(provider)
    .bind(email)
    .fetch_all(&mut *conn)
    .await
    .map_err(database("listing passkeys by e-mail"))?;
    passkey_rows(&rows)
}

pub(crate) async fn record_passkey_use(
    conn: &mut Conn,
    id: &str,
    expected_sign_count: u32,
    used: PasskeyUse,
) -> Result<Option<PasskeyCredential>> {
    let at = ts_to_db(crate::truncate(used.at))?;
    // One conditional statement: of concurrent uses from one counter, the
    // first to write moves sign_count, and the others, which re-check the
    // WHERE clause on the row it wrote, match nothing.
    let row = sqlx::query(concat!(
        "UPDATE auth_passkey SET \
           sign_count = $3, credential = $4, backed_up = $5, last_used_at = $6 \
         WHERE id = $1 AND sign_count = $2 \
         RETURNING ",
        passkey_columns!()
    ))
    .bind(id)
    .bind(i64::from(expected_sign_count))
    .bind(i64::from(used.sign_count))
    .bind(Json(&used.credential))
    .bind(used.backed_up)
    .bind(&at)
    .fetch_optional(&mut *conn)
    .await
    .map_err(database("recording a passkey use"))?;
    passkey_optional(row)
}

pub(crate) async fn rename_passkey(
    conn: &mut Conn,
    auth_identity_id: &str,
    id: &str,
    name: &str,
) -> Result<Option<PasskeyCredential>> {
    let row = sqlx::query(concat!(
        "UPDATE auth_passkey SET name = $3 WHERE id = $1 AND auth_identity_id = $2 RETURNING ",
        passkey_columns!()
    ))
    .bind(id)
    .bind(auth_identity_id)
    .bind(name)
    .fetch_optional(&mut *conn)
    .await
    .map_err(database("renaming a passkey"))?;
    passkey_optional(row)
}

pub(crate) async fn delete_passkey(
    conn: &mut Conn,
    auth_identity_id: &str,
    id: &str,
) -> Result<bool> {
    let deleted = sqlx::query("DELETE FROM auth_passkey WHERE id = $1 AND auth_identity_id = $2")
        .bind(id)
        .bind(auth_identity_id)
        .execute(&mut *conn)
        .await
        .map_err(database("deleting a passkey"))?;
    Ok(deleted.rows_affected() > 0)
}

// ----- devices ------------------------------------------------------------------

/// A device's columns, in the order [`device_row`] reads them.
macro_rules! device_columns {
    () => {
        "id, auth_identity_id, actor_type, auth_provider, user_agent, network, \
         created_at, last_seen_at"
    };
}

/// How many ids one device `DELETE` names at most (both engines' bind limits
/// are far above it); more are deleted in chunks inside one transaction.
const DEVICE_IDS_PER_DELETE: usize = 500;

/// A row selected with `device_columns!()`.
fn device_row(row: &DbRow) -> Result<Device> {
    const WHAT: &str = "reading a device";
    let new = NewDevice::new(
        get::<String>(row, 1, WHAT)?,
        get::<String>(row, 2, WHAT)?,
        get::<String>(row, 3, WHAT)?,
    )
    .client(get(row, 4, WHAT)?, get(row, 5, WHAT)?);
    let mut device = new.into_device(get(row, 0, WHAT)?, ts_from_db(get(row, 6, WHAT)?)?);
    device.last_seen_at = ts_from_db(get(row, 7, WHAT)?)?;
    Ok(device)
}

pub(crate) async fn device(
    conn: &mut Conn,
    auth_identity_id: &str,
    id: &str,
) -> Result<Option<Device>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        device_columns!(),
        " FROM auth_device WHERE id = $1 AND auth_identity_id = $2"
    ))
    .bind(id)
    .bind(auth_identity_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(database("reading a device"))?;
    row.as_ref().map(device_row).transpose()
}

pub(crate) async fn list_devices(conn: &mut Conn, auth_identity_id: &str) -> Result<Vec<Device>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        device_columns!(),
        " FROM auth_device WHERE auth_identity_id = $1 ORDER BY created_at, id"
    ))
    .bind(auth_identity_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(database("listing devices"))?;
    rows.iter().map(device_row).collect()
}

pub(crate) async fn touch_device(
    conn: &mut Conn,
    auth_identity_id: &str,
    id: &str,
    at: OffsetDateTime,
) -> Result<bool> {
    let at = ts_to_db(auth_module::audit::whole_millis(at))?;
    // One conditional statement: `last_seen_at` only moves forward, and a
    // touch that would not move it writes nothing.
    let moved = sqlx::query(
        "UPDATE auth_device SET last_seen_at = $3 \
         WHERE id = $1 AND auth_identity_id = $2 AND last_seen_at < $3",
    )
    .bind(id)
    .bind(auth_identity_id)
    .bind(&at)
    .execute(&mut *conn)
    .await
    .map_err(database("touching a device"))?;
    if moved.rows_affected() > 0 {
        return Ok(true);
    }
    device_exists(conn, auth_identity_id, id).await
}

/// Whether `auth_identity_id` has device `id`.
async fn device_exists(conn: &mut Conn, auth_identity_id: &str, id: &str) -> Result<bool> {
    let found = sqlx::query("SELECT 1 FROM auth_device WHERE id = $1 AND auth_identity_id = $2")
        .bind(id)
        .bind(auth_identity_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(database("reading a device"))?;
    Ok(found.is_some())
}

/// `DELETE … WHERE auth_identity_id = $1 AND id IN (…) RETURNING id` of
/// `ids` (in a transaction or not).
async fn delete_device_ids<'e, E>(
    executor: E,
    auth_identity_id: &str,
    ids: &[&str],
) -> sqlx::Result<Vec<String>>
where
    E: sqlx::Executor<'e, Database = Db>,
{
    let sql = format!(
        "DELETE FROM auth_device WHERE auth_identity_id = $1 AND id IN ({}) RETURNING id",
        placeholders(2, ids.len(), |p| p)
    );
    let mut delete = sqlx::query_scalar(&sql).bind(auth_identity_id);
    for id in ids {
        delete = delete.bind(*id);
    }
    delete.fetch_all(executor).await
}

pub(crate) async fn delete_devices(
    conn: &mut Conn,
    auth_identity_id: &str,
    ids: &[String],
) -> Result<Vec<String>> {
    // Each id once, in the order given: the order of the answer.
    let mut seen = BTreeSet::new();
    let ids: Vec<&str> = ids
        .iter()
        .map(String::as_str)
        .filter(|id| seen.insert(*id))
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let deleted: Vec<String> = if ids.len() <= DEVICE_IDS_PER_DELETE {
        // One statement: atomic by itself.
        delete_device_ids(conn, auth_identity_id, &ids)
            .await
            .map_err(database("deleting devices"))?
    } else {
        let mut tx = conn
            .begin()
            .await
            .map_err(database("starting a transaction"))?;
        let mut deleted = Vec::new();
        for chunk in ids.chunks(DEVICE_IDS_PER_DELETE) {
            deleted.extend(
                delete_device_ids(&mut *tx, auth_identity_id, chunk)
                    .await
                    .map_err(database("deleting devices"))?,
            );
        }
        tx.commit()
            .await
            .map_err(database("committing a device deletion"))?;
        deleted
    };
    let deleted: BTreeSet<String> = deleted.into_iter().collect();
    Ok(ids
        .into_iter()
        .filter(|id| deleted.contains(*id))
        .map(str::to_owned)
        .collect())
}

/// Stores a new device (one statement: `INSERT … SELECT` inserts nothing
/// when the auth identity does not exist) and, in the same statement, the
/// [`device_tally`] of its identity without it: the subqueries of
/// `RETURNING` leave the new row out by its id (PostgreSQL would not see it
/// anyway; SQLite would). Times are whole milliseconds, as in memory.
pub(crate) async fn add_device(conn: &mut Conn, new: NewDevice) -> Result<(DeviceTally, Device)> {
    const WHAT: &str = "creating a device";
    let now = auth_module::audit::whole_millis(OffsetDateTime::now_utc());
    let device = new.into_device(generate_id(DEVICE_PREFIX), now);
    let ts = ts_to_db(now)?;
    let row = sqlx::query(
        "INSERT INTO auth_device (id, auth_identity_id, actor_type, auth_provider, user_agent, \
           network, created_at, last_seen_at) \
         SELECT $1, id, $3, $4, $5, $6, $7, $7 FROM auth_identity WHERE id = $2 \
         RETURNING \
           (SELECT CAST(COUNT(*) AS BIGINT) FROM auth_device d \
            WHERE d.auth_identity_id = $2 AND d.id <> $1), \
           (SELECT CAST(COALESCE(MAX(CASE WHEN d.user_agent IS NOT DISTINCT FROM $5 \
                AND d.network IS NOT DISTINCT FROM $6 THEN 1 ELSE 0 END), 0) AS BIGINT) \
            FROM auth_device d WHERE d.auth_identity_id = $2 AND d.id <> $1)",
    )
    .bind(&device.id)
    .bind(&device.auth_identity_id)
    .bind(&device.actor_type)
    .bind(&device.auth_provider)
    .bind(device.user_agent.as_deref())
    .bind(device.network.as_deref())
    .bind(&ts)
    .fetch_optional(&mut *conn)
    .await;
    match row {
        Ok(None) => Err(auth_not_found(&device.auth_identity_id)),
        Ok(Some(row)) => {
            let devices: i64 = get(&row, 0, WHAT)?;
            let same: i64 = get(&row, 1, WHAT)?;
            let tally = DeviceTally::new(usize::try_from(devices).unwrap_or(0), same != 0);
            Ok((tally, device))
        }
        // The auth identity was deleted between the SELECT and the INSERT.
        Err(e) if is_foreign_key_violation(&e) => Err(auth_not_found(&device.auth_identity_id)),
        Err(e) => Err(database(WHAT)(e)),
    }
}

/// How many devices `auth_identity_id` has, and whether one has this user
/// agent and network (NULL equal to NULL), in one aggregate query.
pub(crate) async fn device_tally(
    conn: &mut Conn,
    auth_identity_id: &str,
    user_agent: Option<&str>,
    network: Option<&str>,
) -> Result<(i64, i64)> {
    let row = sqlx::query(
        "SELECT CAST(COUNT(*) AS BIGINT), CAST(COALESCE(MAX(CASE \
           WHEN user_agent IS NOT DISTINCT FROM $2 AND network IS NOT DISTINCT FROM $3 \
           THEN 1 ELSE 0 END), 0) AS BIGINT) \
         FROM auth_device WHERE auth_identity_id = $1",
    )
    .bind(auth_identity_id)
    .bind(user_agent)
    .bind(network)
    .fetch_one(&mut *conn)
    .await
    .map_err(database("counting devices"))?;
    Ok((
        get(&row, 0, "counting devices")?,
        get(&row, 1, "counting devices")?,
    ))
}

/// Deletes the devices of `auth_identity_id` beyond the `keep` most
/// recently seen, in one statement; answers their ids.
pub(crate) async fn trim_devices(
    conn: &mut Conn,
    auth_identity_id: &str,
    keep: usize,
) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "DELETE FROM auth_device WHERE auth_identity_id = $1 AND id IN \
           (SELECT id FROM auth_device WHERE auth_identity_id = $1 \
            ORDER BY last_seen_at > created_at DESC, last_seen_at DESC, id DESC \
            LIMIT $3 OFFSET $2) \
         RETURNING id",
    )
    .bind(auth_identity_id)
    .bind(i64::try_from(keep).unwrap_or(i64::MAX))
    .bind(i64::MAX)
    .fetch_all(&mut *conn)
    .await
    .map_err(database("trimming devices"))?;
    rows.iter()
        .map(|row| get(row, 0, "trimming devices"))
        .collect()
}

pub(crate) async fn delete_idle_devices(
    conn: &mut Conn,
    seen_before: OffsetDateTime,
    limit: usize,
) -> Result<Vec<(String, String)>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    // Stored times are whole microseconds: `< ceil(t)` is `< t` exactly.
    let seen_before = ts_to_db(crate::ceil_micros(seen_before))?;
    // One statement, its work bounded by `limit` through the last_seen_at
    // index, longest idle first.
    let rows = sqlx::query(
        "DELETE FROM auth_device WHERE id IN \
           (SELECT id FROM auth_device WHERE last_seen_at < $1 ORDER BY last_seen_at LIMIT $2) \
         RETURNING auth_identity_id, id",
    )
    .bind(&seen_before)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(&mut *conn)
    .await
    .map_err(database("deleting idle devices"))?;
    rows.iter()
        .map(|row| {
            Ok((
                get(row, 0, "deleting idle devices")?,
                get(row, 1, "deleting idle devices")?,
            ))
        })
        .collect()
}

// ----- the audit log --------------------------------------------------------------

/// An audit entry's columns, in the order [`audit_row`] reads them.
macro_rules! audit_columns {
    () => {
        "seq, id, at, action, outcome, auth_identity_id, actor_type, provider, network, \
         user_agent, detail, prev_hash, hash"
    };
}

/// The columns [`audit_columns!`] names, for a multi-row `INSERT`.
const AUDIT_COLUMNS: usize = 13;

/// How many entries one `INSERT` writes at most (13 parameters each: both
/// engines' bind limits are far above it).
const AUDIT_ENTRIES_PER_INSERT: usize = 200;

/// The most entries [`query_audit`] answers.
const AUDIT_QUERY_MAX: usize = 1000;

/// A `seq` as the database keeps it (a signed 64-bit integer).
fn seq_to_db(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// A stored `seq` (never negative).
fn seq_from_db(seq: i64, what: &str) -> Result<u64> {
    u64::try_from(seq).map_err(|_| {
        Error::unexpected(format!(
            "auth-store-sql: {what} has a negative audit sequence number {seq}"
        ))
    })
}

/// A row selected with `audit_columns!()`, exactly as stored: the stored
/// `hash` is kept, not recomputed, so an edited row shows as edited.
fn audit_row(row: &DbRow) -> Result<AuditEntry> {
    const WHAT: &str = "reading an audit entry";
    let seq = seq_from_db(get(row, 0, WHAT)?, "a stored audit entry")?;
    let id: String = get(row, 1, WHAT)?;
    let at = ts_from_db(get(row, 2, WHAT)?)?;
    let mut new = NewAuditEntry::new(get::<String>(row, 3, WHAT)?, get::<String>(row, 4, WHAT)?);
    new.auth_identity_id = get(row, 5, WHAT)?;
    new.actor_type = get(row, 6, WHAT)?;
    new.provider = get(row, 7, WHAT)?;
    new.network = get(row, 8, WHAT)?;
    new.user_agent = get(row, 9, WHAT)?;
    let Json(detail): Json<Metadata> = get(row, 10, WHAT)?;
    new.detail = detail;
    let prev_hash: String = get(row, 11, WHAT)?;
    let hash: String = get(row, 12, WHAT)?;
    let mut entry = new.into_entry(id, seq, at, prev_hash);
    entry.hash = hash;
    Ok(entry)
}

/// Locks the chain's row for `tx` ([`AUDIT_LOCK_HEAD`]) and answers its head:
/// the `seq` and hash of the newest entry ever appended.
async fn lock_audit_head(tx: &mut sqlx::Transaction<'_, Db>) -> Result<(u64, String)> {
    const WHAT: &str = "locking the audit chain";
    let row = sqlx::query(AUDIT_LOCK_HEAD)
        .fetch_one(&mut **tx)
        .await
        .map_err(database(WHAT))?;
    let seq = seq_from_db(get(&row, 0, WHAT)?, "the audit chain's head")?;
    Ok((seq, get(&row, 1, WHAT)?))
}

/// Inserts `entries` in one multi-row `INSERT` per
/// [`AUDIT_ENTRIES_PER_INSERT`].
async fn insert_audit_entries(conn: &mut Conn, entries: &[AuditEntry]) -> Result<()> {
    for chunk in entries.chunks(AUDIT_ENTRIES_PER_INSERT) {
        insert_audit_chunk(conn, chunk)
            .await
            .map_err(database("appending audit entries"))?;
    }
    Ok(())
}

/// Inserts `entries` (at most [`AUDIT_ENTRIES_PER_INSERT`]) in one statement.
async fn insert_audit_chunk(conn: &mut Conn, entries: &[AuditEntry]) -> sqlx::Result<()> {
    let sql = format!(
        "INSERT INTO auth_audit ({}) VALUES {}",
        audit_columns!(),
        (0..entries.len())
            .map(|i| format!(
                "({})",
                placeholders(1 + i * AUDIT_COLUMNS, AUDIT_COLUMNS, |p| p)
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let ats = entries
        .iter()
        .map(|e| ts_to_db(e.at))
        .collect::<Result<Vec<Ts>>>()
        .map_err(|e| sqlx::Error::Encode(e.into()))?;
    let mut insert = sqlx::query(&sql);
    for (e, at) in entries.iter().zip(ats) {
        insert = insert
            .bind(seq_to_db(e.seq))
            .bind(&e.id)
            .bind(at)
            .bind(&e.action)
            .bind(&e.outcome)
            .bind(e.auth_identity_id.as_deref())
            .bind(e.actor_type.as_deref())
            .bind(e.provider.as_deref())
            .bind(e.network.as_deref())
            .bind(e.user_agent.as_deref())
            .bind(Json(&e.detail))
            .bind(&e.prev_hash)
            .bind(&e.hash);
    }
    insert.execute(&mut *conn).await?;
    Ok(())
}

/// `entries` chained on from the head `(seq, prev_hash)`, stamped now.
fn chain_audit(
    entries: Vec<NewAuditEntry>,
    mut seq: u64,
    mut prev_hash: String,
) -> Vec<AuditEntry> {
    let now = OffsetDateTime::now_utc();
    let mut appended = Vec::with_capacity(entries.len());
    for new in entries {
        seq += 1;
        let entry = new.into_entry(generate_id(AUDIT_PREFIX), seq, now, prev_hash);
        prev_hash = entry.hash.clone();
        appended.push(entry);
    }
    appended
}

/// One transaction: lock the chain's row, chain the entries on from its
/// head, insert them, move the head. Of concurrent appends (from any pool on
/// the database) each waits for the lock, so `seq` has no gap or repeat.
pub(crate) async fn append_audit(
    conn: &mut Conn,
    entries: Vec<NewAuditEntry>,
) -> Result<Vec<AuditEntry>> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = conn
        .begin()
        .await
        .map_err(database("starting a transaction"))?;
    let (seq, prev_hash) = lock_audit_head(&mut tx).await?;
    // The clock is read under the lock, so `at` follows `seq`.
    let appended = chain_audit(entries, seq, prev_hash);
    insert_audit_entries(&mut tx, &appended).await?;
    if !AUDIT_INSERT_MOVES_HEAD {
        let head = appended.last().expect("entries is not empty");
        sqlx::query("UPDATE auth_audit_chain SET head_seq = $1, head_hash = $2 WHERE id = 1")
            .bind(seq_to_db(head.seq))
            .bind(&head.hash)
            .execute(&mut *tx)
            .await
            .map_err(database("moving the audit chain's head"))?;
    }
    tx.commit()
        .await
        .map_err(database("committing audit entries"))?;
    Ok(appended)
}

/// Appends `entries` on the head `(seq, prev_hash)` the caller last saw, in
/// one statement, with no lock taken: for an engine whose `INSERT` checks
/// that each entry follows the head and moves it
/// ([`AUDIT_INSERT_MOVES_HEAD`]), so an append on a head that has moved
/// since is refused whole. `None` when it was (or when the entries need more
/// than one statement): [`append_audit`] then appends under the lock.
#[allow(dead_code, reason = "only SQLite moves the head in the INSERT")]
pub(crate) async fn append_audit_on_head(
    conn: &mut Conn,
    entries: &[NewAuditEntry],
    seq: u64,
    prev_hash: String,
) -> Option<Vec<AuditEntry>> {
    if !AUDIT_INSERT_MOVES_HEAD || entries.is_empty() || entries.len() > AUDIT_ENTRIES_PER_INSERT {
        return None;
    }
    let appended = chain_audit(entries.to_vec(), seq, prev_hash);
    insert_audit_chunk(conn, &appended).await.ok()?;
    Some(appended)
}

pub(crate) async fn query_audit(conn: &mut Conn, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
    use std::fmt::Write as _;
    let limit = query.limit.min(AUDIT_QUERY_MAX);
    if limit == 0 {
        return Ok(Vec::new());
    }
    // Only the filters given, so each combination is a statement of its own
    // that the planner can serve from its index ((auth_identity_id, seq),
    // (action, seq), (at) or the primary key) walked newest first.
    let since = query
        .since
        .map(|t| ts_to_db(crate::ceil_micros(t)))
        .transpose()?;
    let until = query
        .until
        .map(|t| ts_to_db(crate::ceil_micros(t)))
        .transpose()?;
    let mut sql = String::from(concat!("SELECT ", audit_columns!(), " FROM auth_audit"));
    let mut n = 0;
    let mut clause = |sql: &mut String, condition: &str| {
        n += 1;
        let _ = write!(
            sql,
            " {} {condition} ${n}",
            if n == 1 { "WHERE" } else { "AND" }
        );
    };
    if query.auth_identity_id.is_some() {
        clause(&mut sql, "auth_identity_id =");
    }
    if query.action.is_some() {
        clause(&mut sql, "action =");
    }
    // Stored times are whole microseconds: `>= ceil(t)` is `>= t` exactly,
    // and `< ceil(t)` is `< t`.
    if since.is_some() {
        clause(&mut sql, "at >=");
    }
    if until.is_some() {
        clause(&mut sql, "at <");
    }
    if query.before_seq.is_some() {
        clause(&mut sql, "seq <");
    }
    let _ = write!(sql, " ORDER BY seq DESC LIMIT ${}", n + 1);
    let mut select = sqlx::query(&sql);
    if let Some(id) = &query.auth_identity_id {
        select = select.bind(id);
    }
    if let Some(action) = &query.action {
        select = select.bind(action);
    }
    if let Some(since) = since {
        select = select.bind(since);
    }
    if let Some(until) = until {
        select = select.bind(until);
    }
    if let Some(before_seq) = query.before_seq {
        select = select.bind(seq_to_db(before_seq));
    }
    let rows = select
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *conn)
        .await
        .map_err(database("querying the audit log"))?;
    rows.iter().map(audit_row).collect()
}

pub(crate) async fn audit_chain(
    conn: &mut Conn,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<AuditEntry>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(concat!(
        "SELECT ",
        audit_columns!(),
        " FROM auth_audit WHERE seq > $1 ORDER BY seq LIMIT $2"
    ))
    .bind(seq_to_db(after_seq))
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(&mut *conn)
    .await
    .map_err(database("reading the audit chain"))?;
    rows.iter().map(audit_row).collect()
}

pub(crate) async fn audit_chain_start(conn: &mut Conn) -> Result<Option<AuditChainStart>> {
    const WHAT: &str = "reading the audit chain's start";
    let row = sqlx::query("SELECT start_seq, start_prev_hash FROM auth_audit_chain WHERE id = 1")
        .fetch_optional(&mut *conn)
        .await
        .map_err(database(WHAT))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let seq: Option<i64> = get(&row, 0, WHAT)?;
    let prev_hash: Option<String> = get(&row, 1, WHAT)?;
    match (seq, prev_hash) {
        (Some(seq), Some(prev_hash)) => Ok(Some(AuditChainStart::new(
            seq_from_db(seq, "the audit chain's start")?,
            prev_hash,
        ))),
        _ => Ok(None),
    }
}

/// One transaction, under the chain row's lock (so no append lands in
/// between): the first entry kept is the oldest at or after `before`, or the
/// newest of all when every entry is older; the entries below it go, and the
/// chain's start becomes it.
pub(crate) async fn prune_audit(conn: &mut Conn, before: OffsetDateTime) -> Result<u64> {
    const WHAT: &str = "pruning the audit log";
    // Stored times are whole microseconds: `>= ceil(t)` is `>= t` exactly.
    let before = ts_to_db(crate::ceil_micros(before))?;
    let mut tx = conn
        .begin()
        .await
        .map_err(database("starting a transaction"))?;
    lock_audit_head(&mut tx).await?;
    let first_kept = sqlx::query(
        "SELECT seq, prev_hash FROM auth_audit \
         WHERE at >= $1 OR seq = (SELECT MAX(seq) FROM auth_audit) \
         ORDER BY seq LIMIT 1",
    )
    .bind(&before)
    .fetch_optional(&mut *tx)
    .await
    .map_err(database(WHAT))?;
    let Some(first_kept) = first_kept else {
        // An empty log: dropping `tx` rolls back.
        return Ok(0);
    };
    let seq: i64 = get(&first_kept, 0, WHAT)?;
    let prev_hash: String = get(&first_kept, 1, WHAT)?;
    let removed = sqlx::query("DELETE FROM auth_audit WHERE seq < $1")
        .bind(seq)
        .execute(&mut *tx)
        .await
        .map_err(database(WHAT))?
        .rows_affected();
    if removed == 0 {
        // Nothing older: the start stays as it is.
        return Ok(0);
    }
    sqlx::query("UPDATE auth_audit_chain SET start_seq = $1, start_prev_hash = $2 WHERE id = 1")
        .bind(seq)
        .bind(&prev_hash)
        .execute(&mut *tx)
        .await
        .map_err(database("recording the audit chain's start"))?;
    tx.commit()
        .await
        .map_err(database("committing an audit log prune"))?;
    Ok(removed)
}

// ----- state: keyed values with a time to live (milliseconds since the epoch)

pub(crate) async fn state_set(
    conn: &mut Conn,
    key: &str,
    value: &serde_json::Value,
    expires_at: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO auth_state (key, value, expires_at) VALUES ($1, $2, $3) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
    )
    .bind(key)
    .bind(Json(value))
    .bind(expires_at)
    .execute(&mut *conn)
    .await
    .map_err(database("storing a state value"))?;
    Ok(())
}

pub(crate) async fn state_get(
    conn: &mut Conn,
    key: &str,
    now: i64,
) -> Result<Option<serde_json::Value>> {
    let row = sqlx::query("SELECT value FROM auth_state WHERE key = $1 AND expires_at > $2")
        .bind(key)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await
        .map_err(database("reading a state value"))?;
    row.map(|r| get::<Json<serde_json::Value>>(&r, 0, "reading a state value").map(|j| j.0))
        .transpose()
}

/// One statement, so of concurrent takes exactly one gets the row.
pub(crate) async fn state_take(
    conn: &mut Conn,
    key: &str,
    now: i64,
) -> Result<Option<serde_json::Value>> {
    let row = sqlx::query("DELETE FROM auth_state WHERE key = $1 RETURNING value, expires_at")
        .bind(key)
        .fetch_optional(&mut *conn)
        .await
        .map_err(database("taking a state value"))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let expires_at: i64 = get(&row, 1, "taking a state value")?;
    if expires_at <= now {
        return Ok(None);
    }
    Ok(Some(
        get::<Json<serde_json::Value>>(&row, 0, "taking a state value")?.0,
    ))
}

pub(crate) async fn state_delete(conn: &mut Conn, key: &str, now: i64) -> Result<bool> {
    let row = sqlx::query("DELETE FROM auth_state WHERE key = $1 RETURNING expires_at")
        .bind(key)
        .fetch_optional(&mut *conn)
        .await
        .map_err(database("deleting a state value"))?;
    match row {
        Some(r) => Ok(get::<i64>(&r, 0, "deleting a state value")? > now),
        None => Ok(false),
    }
}

/// One upsert: the database adds to the stored counter, or starts a new one
/// (value `by`, expiry `expires_at`) when none is live.
pub(crate) async fn state_increment(
    conn: &mut Conn,
    key: &str,
    by: i64,
    expires_at: i64,
    now: i64,
) -> Result<u64> {
    let row = sqlx::query(STATE_INCREMENT)
        .bind(key)
        .bind(Json(Value::from(by)))
        .bind(expires_at)
        .bind(now)
        .bind(by)
        .fetch_one(&mut *conn)
        .await
        .map_err(database("incrementing a counter"))?;
    let value: i64 = get(&row, 0, "incrementing a counter")?;
    Ok(u64::try_from(value).unwrap_or(0))
}

/// Adds 1 to each counter of `counters` (key, and when a new one ends) in
/// one statement: a multi-row upsert answering every counter's new value.
/// The keys are distinct (PostgreSQL refuses to change one row twice in one
/// statement).
pub(crate) async fn state_increment_each(
    conn: &mut Conn,
    counters: &[(&str, i64)],
    now: i64,
) -> Result<Vec<u64>> {
    use std::fmt::Write as _;
    let mut sql = String::from("INSERT INTO auth_state (key, value, expires_at) VALUES ");
    for i in 0..counters.len() {
        let p = 2 + 2 * i;
        let _ = write!(
            sql,
            "{}(${p}, '1', ${})",
            if i == 0 { "" } else { ", " },
            p + 1
        );
    }
    let _ = write!(
        sql,
        " ON CONFLICT (key) DO UPDATE SET \
           value = CASE WHEN auth_state.expires_at <= $1 THEN excluded.value \
                        ELSE {COUNTER_PLUS_ONE} END, \
           expires_at = CASE WHEN auth_state.expires_at <= $1 THEN excluded.expires_at \
                             ELSE auth_state.expires_at END \
         RETURNING auth_state.key, {COUNTER}"
    );
    let mut query = sqlx::query(&sql).bind(now);
    for (key, expires_at) in counters {
        query = query.bind(*key).bind(*expires_at);
    }
    let rows = query
        .fetch_all(&mut *conn)
        .await
        .map_err(database("incrementing counters"))?;
    let mut values = vec![None; counters.len()];
    for row in &rows {
        let key: String = get(row, 0, "incrementing counters")?;
        let value: i64 = get(row, 1, "incrementing counters")?;
        if let Some(i) = counters.iter().position(|(k, _)| *k == key) {
            values[i] = Some(u64::try_from(value).unwrap_or(0));
        }
    }
    values
        .into_iter()
        .map(|v| v.ok_or_else(|| Error::unexpected("a counter was not incremented")))
        .collect()
}

/// Takes 1 off each live counter of `counters` and ends `clear` in one
/// statement: a counter at 1 (or `clear`) ends by expiring now, so it reads
/// as absent and the sweep removes it.
pub(crate) async fn state_give_back_each(
    conn: &mut Conn,
    counters: &[&str],
    clear: Option<&str>,
    now: i64,
) -> Result<()> {
    use std::fmt::Write as _;
    let mut sql = format!(
        "UPDATE auth_state SET \
           value = CASE WHEN key = $1 OR {COUNTER} <= 1 THEN {COUNTER_ENDED} \
                        ELSE {COUNTER_MINUS_ONE} END, \
           expires_at = CASE WHEN key = $1 OR {COUNTER} <= 1 THEN $2 \
                             ELSE expires_at END \
         WHERE expires_at > $2 AND key IN ($1"
    );
    for i in 0..counters.len() {
        let _ = write!(sql, ", ${}", i + 3);
    }
    sql.push(')');
    let mut query = sqlx::query(&sql).bind(clear).bind(now);
    for key in counters {
        query = query.bind(*key);
    }
    query
        .execute(&mut *conn)
        .await
        .map_err(database("giving counters back"))?;
    Ok(())
}

/// One conditional statement per case, so of concurrent swaps from one
/// expected value exactly one changes the row.
pub(crate) async fn state_compare_and_swap(
    conn: &mut Conn,
    key: &str,
    expected: Option<&Value>,
    new: Option<&Value>,
    expires_at: i64,
    now: i64,
) -> Result<bool> {
    let done = match (expected, new) {
        // Insert, or replace a dead row.
        (None, Some(new)) => {
            sqlx::query(
                "INSERT INTO auth_state (key, value, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
                   expires_at = excluded.expires_at \
                 WHERE auth_state.expires_at <= $4",
            )
            .bind(key)
            .bind(Json(new))
            .bind(expires_at)
            .bind(now)
            .execute(&mut *conn)
            .await
        }
        (Some(expected), Some(new)) => {
            sqlx::query(
                "UPDATE auth_state SET value = $1, expires_at = $2 \
                 WHERE key = $3 AND expires_at > $4 AND value = $5",
            )
            .bind(Json(new))
            .bind(expires_at)
            .bind(key)
            .bind(now)
            .bind(Json(expected))
            .execute(&mut *conn)
            .await
        }
        (Some(expected), None) => {
            sqlx::query("DELETE FROM auth_state WHERE key = $1 AND expires_at > $2 AND value = $3")
                .bind(key)
                .bind(now)
                .bind(Json(expected))
                .execute(&mut *conn)
                .await
        }
        (None, None) => return Ok(state_get(conn, key, now).await?.is_none()),
    }
    .map_err(database("swapping a state value"))?;
    Ok(done.rows_affected() == 1)
}

/// Deletes up to `batch` rows expired at `now`, soonest expiry first (through
/// the `expires_at` index), so one sweep's work is bounded however many
/// rows are dead.
pub(crate) async fn state_sweep(conn: &mut Conn, now: i64, batch: i64) -> Result<()> {
    sqlx::query(
        "DELETE FROM auth_state WHERE key IN \
         (SELECT key FROM auth_state WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2)",
    )
    .bind(now)
    .bind(batch)
    .execute(&mut *conn)
    .await
    .map_err(database("sweeping expired state"))?;
    Ok(())
}

/// The rows of the state table, expired or not.
pub(crate) async fn state_count(conn: &mut Conn) -> Result<u64> {
    let row = sqlx::query("SELECT COUNT(*) FROM auth_state")
        .fetch_one(&mut *conn)
        .await
        .map_err(database("counting state rows"))?;
    let count: i64 = get(&row, 0, "counting state rows")?;
    Ok(u64::try_from(count).unwrap_or(0))
}
