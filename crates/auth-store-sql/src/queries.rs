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

use auth_module::store::{
    invalid_app_metadata_key, provider_metadata_changed, valid_app_metadata_key,
};
use auth_module::{
    AUTH_IDENTITY_PREFIX, AuthIdentity, Error, Metadata, NewAuthIdentity, NewProviderIdentity,
    ProviderIdentity, ProviderIdentityUpdate, Result, generate_id,
};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{Pool, Row};
use time::OffsetDateTime;

use super::{
    Db, PATCH_APP_METADATA_REMOVE, PATCH_APP_METADATA_SET, STATE_INCREMENT, Ts, ts_from_db,
    ts_to_db,
};
use crate::{
    auth_not_found, database, duplicate, is_foreign_key_violation, is_unique_violation,
    provider_not_found,
};

type DbRow = <Db as sqlx::Database>::Row;

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
/// identity, 5–11 the provider identity (all NULL when it has none).
const RETRIEVE: &str = "SELECT a.id, a.app_metadata, a.created_at, a.updated_at, \
       a.credential_version, p.id, p.entity_id, p.provider, p.user_metadata, p.provider_metadata, \
       p.created_at, p.updated_at \
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
    pool: &Pool<Db>,
    new: NewAuthIdentity,
) -> Result<AuthIdentity> {
    let now = crate::now();
    let created_at = new.created_at.map_or(now, crate::truncate);
    let mut identity = AuthIdentity::new(
        new.id.unwrap_or_else(|| generate_id(AUTH_IDENTITY_PREFIX)),
        created_at,
    );
    identity.app_metadata = new.app_metadata;
    identity.updated_at = new.updated_at.map_or(created_at, crate::truncate);
    let mut tx = pool
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
    tx.commit()
        .await
        .map_err(database("committing an auth identity"))?;
    identity
        .provider_identities
        .sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(identity)
}

pub(crate) async fn retrieve_auth_identity(pool: &Pool<Db>, id: &str) -> Result<AuthIdentity> {
    let rows = sqlx::query(RETRIEVE)
        .bind(id)
        .fetch_all(pool)
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
    pool: &Pool<Db>,
    id: &str,
    app_metadata: Option<Metadata>,
) -> Result<AuthIdentity> {
    let ts: Ts = ts_to_db(crate::now())?;
    let updated =
        sqlx::query("UPDATE auth_identity SET app_metadata = $1, updated_at = $2 WHERE id = $3")
            .bind(json(app_metadata.as_ref()))
            .bind(&ts)
            .bind(id)
            .execute(pool)
            .await
            .map_err(database("updating app_metadata"))?;
    if updated.rows_affected() == 0 {
        return Err(auth_not_found(id));
    }
    retrieve_auth_identity(pool, id).await
}

pub(crate) async fn patch_app_metadata(
    pool: &Pool<Db>,
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
                .execute(pool)
                .await
        }
        None => {
            sqlx::query(PATCH_APP_METADATA_REMOVE)
                .bind(key)
                .bind(&ts)
                .bind(id)
                .execute(pool)
                .await
        }
    }
    .map_err(database("patching app_metadata"))?;
    if updated.rows_affected() == 0 {
        return Err(auth_not_found(id));
    }
    retrieve_auth_identity(pool, id).await
}

pub(crate) async fn bump_credential_version(pool: &Pool<Db>, id: &str) -> Result<AuthIdentity> {
    let ts: Ts = ts_to_db(crate::now())?;
    let updated = sqlx::query(
        "UPDATE auth_identity SET credential_version = credential_version + 1, \
         updated_at = $1 WHERE id = $2",
    )
    .bind(&ts)
    .bind(id)
    .execute(pool)
    .await
    .map_err(database("bumping a credential version"))?;
    if updated.rows_affected() == 0 {
        return Err(auth_not_found(id));
    }
    retrieve_auth_identity(pool, id).await
}

pub(crate) async fn delete_auth_identity(pool: &Pool<Db>, id: &str) -> Result<()> {
    // Its provider identities go with it: ON DELETE CASCADE.
    let deleted = sqlx::query("DELETE FROM auth_identity WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .map_err(database("deleting an auth identity"))?;
    if deleted.rows_affected() == 0 {
        return Err(auth_not_found(id));
    }
    Ok(())
}

pub(crate) async fn find_provider_identity(
    pool: &Pool<Db>,
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
    .fetch_optional(pool)
    .await
    .map_err(database("finding a provider identity"))?;
    row.as_ref().map(provider_row).transpose()
}

pub(crate) async fn add_provider_identity(
    pool: &Pool<Db>,
    auth_identity_id: &str,
    new: NewProviderIdentity,
) -> Result<ProviderIdentity> {
    let duplicate_error = duplicate(&new);
    let built = new_provider(auth_identity_id, new, crate::now());
    // One statement: inserts nothing when the auth identity does not exist,
    // so a missing auth identity is reported before a duplicate, as in memory.
    match insert_provider(pool, &built).await {
        Ok(0) => Err(auth_not_found(auth_identity_id)),
        Ok(_) => Ok(built),
        Err(e) if is_unique_violation(&e) => Err(duplicate_error),
        // The auth identity was deleted between the SELECT and the INSERT.
        Err(e) if is_foreign_key_violation(&e) => Err(auth_not_found(auth_identity_id)),
        Err(e) => Err(database("adding a provider identity")(e)),
    }
}

pub(crate) async fn update_provider_identity(
    pool: &Pool<Db>,
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
    let mut tx = pool
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
            .fetch_optional(pool)
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

pub(crate) async fn delete_provider_identity(pool: &Pool<Db>, id: &str) -> Result<()> {
    let deleted = sqlx::query("DELETE FROM provider_identity WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .map_err(database("deleting a provider identity"))?;
    if deleted.rows_affected() == 0 {
        return Err(provider_not_found(id));
    }
    Ok(())
}

pub(crate) async fn provider_identity_owner(pool: &Pool<Db>, id: &str) -> Result<Option<String>> {
    sqlx::query_scalar("SELECT auth_identity_id FROM provider_identity WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(database("reading a provider identity's owner"))
}

// ----- state: keyed values with a time to live (milliseconds since the epoch)

pub(crate) async fn state_set(
    pool: &Pool<Db>,
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
    .execute(pool)
    .await
    .map_err(database("storing a state value"))?;
    Ok(())
}

pub(crate) async fn state_get(
    pool: &Pool<Db>,
    key: &str,
    now: i64,
) -> Result<Option<serde_json::Value>> {
    let row = sqlx::query("SELECT value FROM auth_state WHERE key = $1 AND expires_at > $2")
        .bind(key)
        .bind(now)
        .fetch_optional(pool)
        .await
        .map_err(database("reading a state value"))?;
    row.map(|r| get::<Json<serde_json::Value>>(&r, 0, "reading a state value").map(|j| j.0))
        .transpose()
}

/// One statement, so of concurrent takes exactly one gets the row.
pub(crate) async fn state_take(
    pool: &Pool<Db>,
    key: &str,
    now: i64,
) -> Result<Option<serde_json::Value>> {
    let row = sqlx::query("DELETE FROM auth_state WHERE key = $1 RETURNING value, expires_at")
        .bind(key)
        .fetch_optional(pool)
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

pub(crate) async fn state_delete(pool: &Pool<Db>, key: &str, now: i64) -> Result<bool> {
    let row = sqlx::query("DELETE FROM auth_state WHERE key = $1 RETURNING expires_at")
        .bind(key)
        .fetch_optional(pool)
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
    pool: &Pool<Db>,
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
        .fetch_one(pool)
        .await
        .map_err(database("incrementing a counter"))?;
    let value: i64 = get(&row, 0, "incrementing a counter")?;
    Ok(u64::try_from(value).unwrap_or(0))
}

/// One conditional statement per case, so of concurrent swaps from one
/// expected value exactly one changes the row.
pub(crate) async fn state_compare_and_swap(
    pool: &Pool<Db>,
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
            .execute(pool)
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
            .execute(pool)
            .await
        }
        (Some(expected), None) => {
            sqlx::query("DELETE FROM auth_state WHERE key = $1 AND expires_at > $2 AND value = $3")
                .bind(key)
                .bind(now)
                .bind(Json(expected))
                .execute(pool)
                .await
        }
        (None, None) => return Ok(state_get(pool, key, now).await?.is_none()),
    }
    .map_err(database("swapping a state value"))?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn state_sweep(pool: &Pool<Db>, now: i64) -> Result<()> {
    sqlx::query("DELETE FROM auth_state WHERE expires_at <= $1")
        .bind(now)
        .execute(pool)
        .await
        .map_err(database("sweeping expired state"))?;
    Ok(())
}
