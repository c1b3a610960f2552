//! The PostgreSQL engine: connection set-up, schema isolation, and the shared
//! queries compiled for `sqlx::Postgres`.

use std::str::FromStr;

use auth_module::{Error, Result};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use time::OffsetDateTime;

// The same queries, compiled for this engine: see `queries.rs`.
#[allow(clippy::duplicate_mod)]
#[path = "queries.rs"]
pub(crate) mod queries;

/// The engine the shared queries are compiled for.
type Db = sqlx::Postgres;

/// Sets one `app_metadata` key: `$1` key, `$2` JSON value, `$3` time, `$4` id.
const PATCH_APP_METADATA_SET: &str = "UPDATE auth_identity SET \
     app_metadata = COALESCE(app_metadata, '{}'::jsonb) || jsonb_build_object($1::text, $2::jsonb), \
     updated_at = $3 WHERE id = $4";

/// Removes one `app_metadata` key: `$1` key, `$2` time, `$3` id.
const PATCH_APP_METADATA_REMOVE: &str = "UPDATE auth_identity SET \
     app_metadata = app_metadata - $1::text, updated_at = $2 WHERE id = $3";

/// Merges top-level keys into `app_metadata`: `$1` the keys to set (a JSON
/// object; `||` replaces each key's whole value), `$2` the keys to remove,
/// `$3` time, `$4` id. A NULL `app_metadata` stays NULL when nothing is set.
const MERGE_APP_METADATA: &str = "UPDATE auth_identity SET app_metadata = CASE \
       WHEN app_metadata IS NULL AND $1::jsonb = '{}'::jsonb THEN NULL \
       ELSE (COALESCE(app_metadata, '{}'::jsonb) || $1::jsonb) - $2::text[] END, \
     updated_at = $3 WHERE id = $4";

/// Merges top-level keys into the `app_metadata` of auth identity `id` in one
/// statement ([`MERGE_APP_METADATA`]). Answers the rows changed.
async fn merge_app_metadata_statement(
    conn: &mut sqlx::PgConnection,
    id: &str,
    sets: &auth_module::Metadata,
    removes: &[String],
    ts: &Ts,
) -> sqlx::Result<u64> {
    Ok(sqlx::query(MERGE_APP_METADATA)
        .bind(sqlx::types::Json(sets))
        .bind(removes)
        .bind(ts)
        .bind(id)
        .execute(conn)
        .await?
        .rows_affected())
}

/// Adds `$5` to counter `$1`, or starts it at `$2` until `$3` when no live
/// one exists (`$4` is now). The window is fixed: a live counter keeps its
/// expiry. The upsert locks the row, so concurrent increments serialise.
const STATE_INCREMENT: &str = "INSERT INTO auth_state (key, value, expires_at) VALUES ($1, $2, $3) \
     ON CONFLICT (key) DO UPDATE SET \
       value = CASE WHEN auth_state.expires_at <= $4 THEN excluded.value \
                    ELSE to_jsonb((auth_state.value #>> '{}')::bigint + $5::bigint) END, \
       expires_at = CASE WHEN auth_state.expires_at <= $4 THEN excluded.expires_at \
                         ELSE auth_state.expires_at END \
     RETURNING (value #>> '{}')::bigint";

/// A live counter's value as an integer, that value plus one and minus one,
/// and an ended counter's value (`increment_each`, `give_back_each`).
const COUNTER: &str = "(auth_state.value #>> '{}')::bigint";
const COUNTER_PLUS_ONE: &str = "to_jsonb((auth_state.value #>> '{}')::bigint + 1)";
const COUNTER_MINUS_ONE: &str = "to_jsonb((auth_state.value #>> '{}')::bigint - 1)";
const COUNTER_ENDED: &str = "'0'::jsonb";

/// An append moves the head with its own `UPDATE`, under the row lock.
const AUDIT_INSERT_MOVES_HEAD: bool = false;

/// Takes the audit chain's row for the transaction and answers its head
/// (`head_seq`, `head_hash`): the row lock makes appends (and sweeps) from
/// every pool on the database wait their turn, so each takes the next `seq`
/// after the head the one before it committed.
const AUDIT_LOCK_HEAD: &str =
    "SELECT head_seq, head_hash FROM auth_audit_chain WHERE id = 1 FOR UPDATE";

/// How a timestamp is stored: `timestamptz`.
type Ts = OffsetDateTime;

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// Same signature as the SQLite engine's, which can fail.
fn ts_to_db(t: OffsetDateTime) -> Result<Ts> {
    Ok(t)
}

/// Same signature as the SQLite engine's, which can fail.
fn ts_from_db(t: Ts) -> Result<OffsetDateTime> {
    Ok(t)
}

/// Checks that `schema` is a plain lowercase identifier, which needs no
/// quoting in `search_path` or DDL (and so cannot inject anything).
pub(crate) fn validate_schema(schema: &str) -> Result<()> {
    let mut bytes = schema.bytes();
    let valid = schema.len() <= 63
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(Error::invalid_data(format!(
            "invalid PostgreSQL schema name {schema:?}: expected [a-z_][a-z0-9_]*, at most 63 bytes"
        )))
    }
}

/// Opens the database at `url` and applies the migrations, inside `schema`
/// (created if missing) when given.
pub(crate) async fn connect(url: &str, schema: Option<&str>) -> Result<PgPool> {
    let mut options = PgConnectOptions::from_str(url)
        .map_err(|e| Error::invalid_data("invalid PostgreSQL URL").with_source(e))?;
    if let Some(schema) = schema {
        // A startup parameter, so it holds on every connection of the pool
        // from its first statement, with no extra round trip.
        options = options.options([("search_path", schema)]);
    }
    // A lost database must answer quickly (503), not after sqlx's default
    // 30 s wait for a connection.
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(std::time::Duration::from_secs(3))
        .connect_with(options)
        .await
        .map_err(crate::opening("connecting to PostgreSQL"))?;
    if let Some(schema) = schema {
        // `schema` is validated: a bare identifier needs no quoting.
        // Replicas starting at once may race here: PostgreSQL's IF NOT EXISTS
        // does not lock, so the loser gets a unique violation on the catalog
        // (23505) or duplicate_schema (42P06); the schema exists either way.
        // The migrations that follow take an advisory lock of their own.
        match sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .execute(&pool)
            .await
        {
            Ok(_) => {}
            Err(sqlx::Error::Database(d))
                if matches!(d.code().as_deref(), Some("23505" | "42P06")) => {}
            Err(e) => return Err(crate::opening("creating the PostgreSQL schema")(e)),
        }
    }
    MIGRATOR.run(&pool).await.map_err(|e| {
        Error::database(
            "auth-store-sql: applying the PostgreSQL migrations failed",
            e,
        )
    })?;
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::validate_schema;

    #[test]
    fn schema_names() {
        for ok in ["auth", "_x", "auth_test_0a1b", &"a".repeat(63)] {
            assert!(validate_schema(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Auth", "1x", "a-b", "a;drop", "\"x\"", &"a".repeat(64)] {
            assert!(validate_schema(bad).is_err(), "{bad}");
        }
    }
}
