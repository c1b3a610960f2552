//! The SQLite engine: connection set-up, timestamp encoding, and the shared
//! queries compiled for `sqlx::Sqlite`.

use std::str::FromStr;
use std::time::Duration;

use auth_module::{AuditEntry, Error, NewAuditEntry, Result};
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqliteConnection, SqlitePool};
use time::format_description::BorrowedFormatItem;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

// The same queries, compiled for this engine: see `queries.rs`.
#[allow(clippy::duplicate_mod)]
#[path = "queries.rs"]
pub(crate) mod queries;

/// The engine the shared queries are compiled for.
type Db = sqlx::Sqlite;

/// Sets one `app_metadata` key: `$1` key (validated: letters, digits, `_`,
/// `-`, so quoting it in the path is enough), `$2` JSON value, `$3` time, `$4` id.
const PATCH_APP_METADATA_SET: &str = "UPDATE auth_identity SET \
     app_metadata = json_set(COALESCE(app_metadata, '{}'), '$.\"' || $1 || '\"', json($2)), \
     updated_at = $3 WHERE id = $4";

/// Removes one `app_metadata` key: `$1` key, `$2` time, `$3` id.
const PATCH_APP_METADATA_REMOVE: &str = "UPDATE auth_identity SET \
     app_metadata = json_remove(app_metadata, '$.\"' || $1 || '\"'), \
     updated_at = $2 WHERE id = $3";

/// Merges top-level keys into the `app_metadata` of auth identity `id` in one
/// statement: `sets` with one `json_set` (each value replaces the key's whole
/// value, unlike `json_patch`, which would merge objects and drop their
/// nulls), then `removes` with one `json_remove`. Keys are validated (letters,
/// digits, `_`, `-`), so quoting them in the path is enough. A NULL
/// `app_metadata` stays NULL when nothing is set. Answers the rows changed.
async fn merge_app_metadata_statement(
    conn: &mut sqlx::SqliteConnection,
    id: &str,
    sets: &auth_module::Metadata,
    removes: &[String],
    ts: &Ts,
) -> sqlx::Result<u64> {
    use std::fmt::Write as _;
    // $1 time, $2 id, then a key and a value per set, then a key per removal.
    let mut next = 3;
    let mut value = String::from("app_metadata");
    if !sets.is_empty() {
        value = String::from("json_set(COALESCE(app_metadata, '{}')");
        for _ in sets {
            let _ = write!(value, ", '$.\"' || ${next} || '\"', json(${})", next + 1);
            next += 2;
        }
        value.push(')');
    }
    if !removes.is_empty() {
        value = format!("json_remove({value}");
        for _ in removes {
            let _ = write!(value, ", '$.\"' || ${next} || '\"'");
            next += 1;
        }
        value.push(')');
    }
    let sql =
        format!("UPDATE auth_identity SET app_metadata = {value}, updated_at = $1 WHERE id = $2");
    let mut query = sqlx::query(&sql).bind(ts).bind(id);
    for (key, v) in sets {
        query = query.bind(key).bind(sqlx::types::Json(v));
    }
    for key in removes {
        query = query.bind(key);
    }
    Ok(query.execute(conn).await?.rows_affected())
}

/// Adds `$5` to counter `$1`, or starts it at `$2` until `$3` when no live
/// one exists (`$4` is now). The window is fixed: a live counter keeps its
/// expiry. Counters are JSON numbers in the text `value` column.
const STATE_INCREMENT: &str = "INSERT INTO auth_state (key, value, expires_at) VALUES ($1, $2, $3) \
     ON CONFLICT (key) DO UPDATE SET \
       value = CASE WHEN auth_state.expires_at <= $4 THEN excluded.value \
                    ELSE CAST(CAST(auth_state.value AS INTEGER) + $5 AS TEXT) END, \
       expires_at = CASE WHEN auth_state.expires_at <= $4 THEN excluded.expires_at \
                         ELSE auth_state.expires_at END \
     RETURNING CAST(value AS INTEGER)";

/// A live counter's value as an integer, that value plus one and minus one,
/// and an ended counter's value (`increment_each`, `give_back_each`).
const COUNTER: &str = "CAST(auth_state.value AS INTEGER)";
const COUNTER_PLUS_ONE: &str = "CAST(CAST(auth_state.value AS INTEGER) + 1 AS TEXT)";
const COUNTER_MINUS_ONE: &str = "CAST(CAST(auth_state.value AS INTEGER) - 1 AS TEXT)";
const COUNTER_ENDED: &str = "'0'";

/// Takes the audit chain's row for the transaction and answers its head
/// (`head_seq`, `head_hash`). A no-op write rather than a read, so the
/// transaction holds SQLite's write lock from its first statement: a read
/// first would have to upgrade later, which another connection to the file
/// (another store, another process) could refuse with `SQLITE_BUSY` instead
/// of the busy handler's wait. Within one store the writer queue serialises
/// appends already.
const AUDIT_LOCK_HEAD: &str = "UPDATE auth_audit_chain SET head_seq = head_seq WHERE id = 1 \
     RETURNING head_seq, head_hash";

/// An `INSERT` into `auth_audit` checks that the entry follows the chain's
/// head and moves the head (trigger `auth_audit_follows_head`), so an append
/// on a known head is one statement.
const AUDIT_INSERT_MOVES_HEAD: bool = true;

/// How a timestamp is stored: RFC 3339 text.
type Ts = String;

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// UTC, exactly six fraction digits: fixed width, so text order is time order
/// (`ORDER BY created_at` relies on it).
const TS_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

fn ts_to_db(t: OffsetDateTime) -> Result<Ts> {
    t.to_offset(UtcOffset::UTC).format(TS_FORMAT).map_err(|e| {
        Error::unexpected("auth-store-sql: a timestamp cannot be formatted").with_source(e)
    })
}

fn ts_from_db(s: Ts) -> Result<OffsetDateTime> {
    OffsetDateTime::parse(&s, &Rfc3339).map_err(|e| {
        Error::database(
            format!("auth-store-sql: stored timestamp {s:?} is not RFC 3339"),
            e,
        )
    })
}

/// Each file connection's page cache, in KiB (SQLite's `-N` form; its default
/// is 2,000). The writer is the only connection that writes, so its cache is
/// never emptied by another's write and would stay full after a load; the
/// pages a sign-in touches (the interior pages and right edges of a few
/// indexes) fit in far fewer, and a miss is a read from the OS's file cache.
const PAGE_CACHE_KIB: &str = "-256";

/// The connections of one store, held for its whole life.
///
/// A query on a pool checks a connection out and back in, and sqlx tests it
/// both times (a round trip to the connection's thread each): three round
/// trips for one statement. Held connections cost one.
pub(crate) struct Links {
    pool: SqlitePool,
    /// Every write, in arrival order: SQLite writes one at a time, so writes
    /// queue here instead of meeting a locked database and sleeping in its
    /// busy handler (1, 2, 5, 10 … ms), which is what set a login's tail.
    /// Reads use it too when the reader is busy. `None` once closed.
    writer: Mutex<Option<Writer>>,
    /// Reads beside a write (WAL mode); none for an in-memory database, which
    /// lives in its one connection.
    reader: Option<Mutex<Option<PoolConnection<Sqlite>>>>,
}

/// The writer's connection, and what only a writer may know.
struct Writer {
    conn: PoolConnection<Sqlite>,
    /// The audit chain's head (`seq`, hash) as this store's last append left
    /// it.
    audit_head: Option<(u64, String)>,
}

/// A held connection, for as long as the guard lives.
pub(crate) type Held<'a> = MappedMutexGuard<'a, SqliteConnection>;

impl Links {
    /// The writer, once the writes before have run.
    pub(crate) async fn write(&self) -> Result<Held<'_>> {
        held(self.writer.lock().await, |w| &mut *w.conn)
    }

    /// A connection for a read: the reader, or the writer when only it is
    /// free.
    pub(crate) async fn read(&self) -> Result<Held<'_>> {
        let Some(reader) = &self.reader else {
            return self.write().await;
        };
        if let Ok(guard) = reader.try_lock() {
            return held(guard, |c| &mut **c);
        }
        if let Ok(guard) = self.writer.try_lock() {
            return held(guard, |w| &mut *w.conn);
        }
        held(reader.lock().await, |c| &mut **c)
    }

    /// Appends `entries` to the audit log: in one statement on the head this
    /// store's last append left ([`queries::append_audit_on_head`]), or, when
    /// none is known or another connection has moved it since, under the
    /// chain row's lock ([`queries::append_audit`]).
    pub(crate) async fn append_audit(
        &self,
        entries: Vec<NewAuditEntry>,
    ) -> Result<Vec<AuditEntry>> {
        let mut guard = self.writer.lock().await;
        let writer = guard.as_mut().ok_or_else(closed)?;
        // Taken, not read: an append cut short leaves no head behind.
        let on_head = match writer.audit_head.take() {
            Some((seq, hash)) => {
                queries::append_audit_on_head(&mut writer.conn, &entries, seq, hash).await
            }
            None => None,
        };
        let appended = match on_head {
            Some(appended) => appended,
            None => queries::append_audit(&mut writer.conn, entries).await?,
        };
        writer.audit_head = appended.last().map(|e| (e.seq, e.hash.clone()));
        Ok(appended)
    }

    /// Gives the connections back and closes them; later calls fail.
    pub(crate) async fn close(&self) {
        self.writer.lock().await.take();
        if let Some(reader) = &self.reader {
            reader.lock().await.take();
        }
        self.pool.close().await;
    }
}

/// The connection in `guard`, or the error of a closed store.
fn held<T>(
    guard: MutexGuard<'_, Option<T>>,
    conn: fn(&mut T) -> &mut SqliteConnection,
) -> Result<Held<'_>> {
    MutexGuard::try_map(guard, |c| c.as_mut().map(conn)).map_err(|_| closed())
}

/// What a call on a closed store meets.
fn closed() -> Error {
    crate::database("using the store")(sqlx::Error::PoolClosed)
}

/// Opens the database at `url`, applies the migrations and takes the
/// store's connections.
pub(crate) async fn connect(url: &str) -> Result<Links> {
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| Error::invalid_data("invalid SQLite URL").with_source(e))?
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5));
    let options = if in_memory {
        options
    } else {
        private_file(options.get_filename())?;
        options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .pragma("cache_size", PAGE_CACHE_KIB)
    };
    // An in-memory database lives as long as a connection to it: exactly
    // one, held forever, so every query sees the same data. A file has two:
    // SQLite writes one at a time whatever the pool, and in WAL mode the
    // second serves reads beside a write. Each connection is a thread with
    // its own statement cache and page cache (measured: two more kept
    // 0.6 MiB more after a login load, at the same throughput).
    let connections = if in_memory { 1 } else { 2 };
    let pool = SqlitePoolOptions::new()
        .max_connections(connections)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options)
        .await
        .map_err(crate::opening("opening the SQLite database"))?;
    MIGRATOR
        .run(&pool)
        .await
        .map_err(|e| Error::database("auth-store-sql: applying the SQLite migrations failed", e))?;
    let take = || async {
        pool.acquire()
            .await
            .map_err(crate::opening("opening the SQLite database"))
    };
    let writer = Mutex::new(Some(Writer {
        conn: take().await?,
        audit_head: None,
    }));
    let reader = if in_memory {
        None
    } else {
        Some(Mutex::new(Some(take().await?)))
    };
    Ok(Links {
        pool,
        writer,
        reader,
    })
}

/// Creates the database file with mode 0600 if it is missing, and narrows an
/// existing one (and its WAL and SHM files) to 0600: it holds password hashes
/// and sessions. SQLite creates the WAL and SHM files with the database
/// file's mode, so they follow.
#[cfg(unix)]
fn private_file(path: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let failed =
        |e: std::io::Error| Error::database("auth-store-sql: preparing the SQLite file failed", e);
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        // A missing directory and the like: let SQLite report it.
        Err(_) => return Ok(()),
    }
    let mut names = vec![path.as_os_str().to_owned()];
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        names.push(name);
    }
    for name in names {
        let Ok(meta) = std::fs::metadata(&name) else {
            continue;
        };
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(&name, std::fs::Permissions::from_mode(0o600))
                .map_err(failed)?;
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn private_file(_path: &std::path::Path) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_sort_as_text_and_round_trip() {
        let a = OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(1_700_000_000);
        let b = a + time::Duration::microseconds(1);
        let c = a + time::Duration::milliseconds(500);
        let (ta, tb, tc) = (
            ts_to_db(a).expect("a"),
            ts_to_db(b).expect("b"),
            ts_to_db(c).expect("c"),
        );
        assert_eq!(ta, "2023-11-14T22:13:20.000000Z");
        assert!(ta < tb && tb < tc);
        assert_eq!(ts_from_db(tb).expect("parse"), b);
        assert!(ts_from_db("yesterday".into()).is_err());
    }
}
