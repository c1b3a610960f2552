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

use auth_module::{
    AUTH_IDENTITY_PREFIX, AuthIdentity, Metadata, NewAuthIdentity, NewProviderIdentity,
    PROVIDER_IDENTITY_PREFIX, ProviderIdentity, ProviderIdentityUpdate, Result, generate_id,
};
use sqlx::types::Json;
use sqlx::{Pool, Row};
use time::OffsetDateTime;

use super::{Db, Ts, ts_from_db, ts_to_db};
use crate::model::{AuthParts, ProviderParts};
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
/// round trip: the hot path of token refresh. Columns 0–3 are the auth
/// identity, 4–10 the provider identity (all NULL when it has none).
const RETRIEVE: &str = "SELECT a.id, a.app_metadata, a.created_at, a.updated_at, \
       p.id, p.entity_id, p.provider, p.user_metadata, p.provider_metadata, \
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
    ProviderParts {
        id: get(row, base, "reading a provider identity")?,
        entity_id: get(row, base + 1, "reading a provider identity")?,
        provider: get(row, base + 2, "reading a provider identity")?,
        auth_identity_id,
        user_metadata: metadata_at(row, base + 3)?,
        provider_metadata: metadata_at(row, base + 4)?,
        created_at: ts_from_db(get(row, base + 5, "reading a provider identity")?)?,
        updated_at: ts_from_db(get(row, base + 6, "reading a provider identity")?)?,
    }
    .build()
}

/// A row selected with `provider_columns!()`.
fn provider_row(row: &DbRow) -> Result<ProviderIdentity> {
    let auth_identity_id = get(row, 7, "reading a provider identity")?;
    provider_at(row, 0, auth_identity_id)
}

fn provider_parts(
    id: String,
    auth_identity_id: String,
    new: NewProviderIdentity,
    now: OffsetDateTime,
) -> ProviderParts {
    ProviderParts {
        id,
        entity_id: new.entity_id,
        provider: new.provider,
        auth_identity_id,
        user_metadata: new.user_metadata,
        provider_metadata: new.provider_metadata,
        created_at: now,
        updated_at: now,
    }
}

pub(crate) async fn create_auth_identity(
    pool: &Pool<Db>,
    new: NewAuthIdentity,
) -> Result<AuthIdentity> {
    let now = crate::now();
    let ts = ts_to_db(now)?;
    let id = generate_id(AUTH_IDENTITY_PREFIX);
    let mut tx = pool
        .begin()
        .await
        .map_err(database("starting a transaction"))?;
    sqlx::query(
        "INSERT INTO auth_identity (id, app_metadata, created_at, updated_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(&id)
    .bind(json(new.app_metadata.as_ref()))
    .bind(&ts)
    .bind(&ts)
    .execute(&mut *tx)
    .await
    .map_err(database("inserting an auth identity"))?;

    let mut provider_identities = Vec::with_capacity(new.provider_identities.len());
    for p in new.provider_identities {
        let pid = generate_id(PROVIDER_IDENTITY_PREFIX);
        let inserted = sqlx::query(
            "INSERT INTO provider_identity (id, entity_id, provider, auth_identity_id, \
             user_metadata, provider_metadata, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&pid)
        .bind(&p.entity_id)
        .bind(&p.provider)
        .bind(&id)
        .bind(json(p.user_metadata.as_ref()))
        .bind(json(p.provider_metadata.as_ref()))
        .bind(&ts)
        .bind(&ts)
        .execute(&mut *tx)
        .await;
        if let Err(e) = inserted {
            // Dropping `tx` rolls the whole call back: nothing is stored.
            return Err(if is_unique_violation(&e) {
                duplicate(&p)
            } else {
                database("inserting a provider identity")(e)
            });
        }
        provider_identities.push(provider_parts(pid, id.clone(), p, now).build()?);
    }
    tx.commit()
        .await
        .map_err(database("committing an auth identity"))?;

    // All share `created_at`: the read order (created_at, id) is id order.
    provider_identities.sort_by(|a, b| a.id.cmp(&b.id));
    AuthParts {
        id,
        app_metadata: new.app_metadata,
        provider_identities,
        created_at: now,
        updated_at: now,
    }
    .build()
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
    let auth_id: String = get(first, 0, "reading an auth identity")?;
    let mut provider_identities = Vec::with_capacity(rows.len());
    for row in &rows {
        let pid: Option<String> = get(row, 4, "reading a provider identity")?;
        if pid.is_some() {
            provider_identities.push(provider_at(row, 4, auth_id.clone())?);
        }
    }
    AuthParts {
        app_metadata: metadata_at(first, 1)?,
        created_at: ts_from_db(get(first, 2, "reading an auth identity")?)?,
        updated_at: ts_from_db(get(first, 3, "reading an auth identity")?)?,
        id: auth_id,
        provider_identities,
    }
    .build()
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
    let now = crate::now();
    let ts = ts_to_db(now)?;
    let pid = generate_id(PROVIDER_IDENTITY_PREFIX);
    // One statement: inserts nothing when the auth identity does not exist,
    // so a missing auth identity is reported before a duplicate, as in memory.
    let inserted = sqlx::query(
        "INSERT INTO provider_identity (id, entity_id, provider, auth_identity_id, \
         user_metadata, provider_metadata, created_at, updated_at) \
         SELECT $1, $2, $3, id, $5, $6, $7, $8 FROM auth_identity WHERE id = $4",
    )
    .bind(&pid)
    .bind(&new.entity_id)
    .bind(&new.provider)
    .bind(auth_identity_id)
    .bind(json(new.user_metadata.as_ref()))
    .bind(json(new.provider_metadata.as_ref()))
    .bind(&ts)
    .bind(&ts)
    .execute(pool)
    .await;
    match inserted {
        Ok(done) if done.rows_affected() == 0 => Err(auth_not_found(auth_identity_id)),
        Ok(_) => provider_parts(pid, auth_identity_id.to_owned(), new, now).build(),
        Err(e) if is_unique_violation(&e) => Err(duplicate(&new)),
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
    // A `None` field binds NULL, and COALESCE keeps the stored value; a `Some`
    // is a JSON object, never NULL, so it always replaces.
    let row = sqlx::query(concat!(
        "UPDATE provider_identity SET \
           user_metadata = COALESCE($1, user_metadata), \
           provider_metadata = COALESCE($2, provider_metadata), \
           updated_at = $3 \
         WHERE id = $4 \
         RETURNING ",
        provider_columns!()
    ))
    .bind(json(update.user_metadata.as_ref()))
    .bind(json(update.provider_metadata.as_ref()))
    .bind(&ts)
    .bind(id)
    .fetch_optional(pool)
    .await
    .map_err(database("updating a provider identity"))?;
    match row {
        Some(row) => provider_row(&row),
        None => Err(provider_not_found(id)),
    }
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

pub(crate) async fn state_sweep(pool: &Pool<Db>, now: i64) -> Result<()> {
    sqlx::query("DELETE FROM auth_state WHERE expires_at <= $1")
        .bind(now)
        .execute(pool)
        .await
        .map_err(database("sweeping expired state"))?;
    Ok(())
}
