//! A [`StateStore`] on Redis: what replicas must share that is short-lived
//! (OAuth state, sessions, reset marks, rate-limit counters).
//!
//! - `redis://[user:password@]host[:port][/db]`, and `rediss://` for TLS
//!   (rustls, the webpki roots).
//! - Every key is prefixed (`[state] key_prefix`, default `auth:`), so one
//!   Redis can serve other applications or several deployments.
//! - TTLs are Redis's own (`PX`); `take` is `GETDEL`; `increment` and
//!   `compare_and_swap` are Lua scripts, so each is one atomic step on the
//!   server, whichever replica calls it.
//! - The connection is a [`redis::aio::ConnectionManager`]: it reconnects by
//!   itself after Redis restarts. While Redis is away, calls fail quickly
//!   (timeouts of a second or two) with [`auth_module::ErrorKind::Unavailable`]
//!   (HTTP 503), never a hang.
//! - What Redis holds is lost with it unless Redis persistence (RDB or AOF)
//!   is on: sessions end and started logins and resets must be redone;
//!   nothing in the identity store is touched.
//!
//! ```no_run
//! # async fn demo() -> Result<(), auth_module::Error> {
//! let state = auth_store_redis::RedisStateStore::connect("redis://127.0.0.1:6379", "auth:").await?;
//! # let _ = state; Ok(()) }
//! ```

use std::fmt;
use std::time::Duration;

use auth_module::{Error, Result, StateStore, async_trait};
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde_json::Value;

/// The default key prefix.
pub const DEFAULT_KEY_PREFIX: &str = "auth:";

/// How long a command may take before it is answered as unavailable.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a (re)connection may take.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);

/// Adds `ARGV[1]` to the counter `KEYS[1]`, creating it with the TTL
/// `ARGV[2]` ms only if it does not exist: a fixed window.
const INCREMENT: &str = r"
redis.call('SET', KEYS[1], 0, 'PX', ARGV[2], 'NX')
return redis.call('INCRBY', KEYS[1], ARGV[1])
";

/// Adds 1 to each counter `KEYS[i]`, creating it with the TTL `ARGV[i]` ms
/// only if it does not exist; the new values.
const INCREMENT_EACH: &str = r"
local out = {}
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], 0, 'PX', ARGV[i], 'NX')
  out[i] = redis.call('INCRBY', KEYS[i], 1)
end
return out
";

/// Takes 1 off each counter `KEYS[i]`, removing one at 1 (a value that is
/// not a number is left alone); when `ARGV[1]` is `1`, the last key is
/// removed instead. `DECR` keeps a counter's TTL.
const GIVE_BACK_EACH: &str = r"
local n = #KEYS
if ARGV[1] == '1' then
  redis.call('DEL', KEYS[n])
  n = n - 1
end
for i = 1, n do
  local v = tonumber(redis.call('GET', KEYS[i]))
  if v then
    if v <= 1 then redis.call('DEL', KEYS[i]) else redis.call('DECR', KEYS[i]) end
  end
end
return 1
";

/// Replaces `KEYS[1]` with `ARGV[4]` (or removes it when `ARGV[3]` is `0`)
/// if it holds `ARGV[2]` (or nothing when `ARGV[1]` is `0`); TTL `ARGV[5]` ms.
const COMPARE_AND_SWAP: &str = r"
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '0' then
  if current then return 0 end
else
  if (not current) or current ~= ARGV[2] then return 0 end
end
if ARGV[3] == '0' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[5])
end
return 1
";

/// A Redis state store. Cheap to clone (one multiplexed connection).
#[derive(Clone)]
pub struct RedisStateStore {
    conn: ConnectionManager,
    prefix: String,
    shown_url: String,
    increment: redis::Script,
    increment_each: redis::Script,
    give_back_each: redis::Script,
    compare_and_swap: redis::Script,
}

impl fmt::Debug for RedisStateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStateStore")
            .field("url", &self.shown_url)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

pub use auth_module::store::redact_url;

/// Failed commands since start, all Redis stores of this process (for metrics).
static ERRORS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many Redis commands of this process have failed since start, for metrics.
pub fn error_count() -> u64 {
    ERRORS.load(std::sync::atomic::Ordering::Relaxed)
}

fn unavailable(e: &redis::RedisError) -> Error {
    ERRORS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::warn!(error = %e, "the Redis state store failed");
    Error::unavailable("Service unavailable")
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn decode(raw: Option<String>) -> Result<Option<Value>> {
    raw.map(|s| {
        serde_json::from_str(&s)
            .map_err(|e| Error::unexpected(format!("a state value is not JSON: {e}")))
    })
    .transpose()
}

impl RedisStateStore {
    /// Connects to `url` (`redis://` or `rediss://`), prefixing every key
    /// with `prefix`. Fails with a message naming the URL without its
    /// password if Redis does not answer.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        let shown_url = redact_url(url);
        let client = redis::Client::open(url).map_err(|e| {
            Error::invalid_data(format!(
                "{shown_url}: {}",
                e.detail().unwrap_or("not a Redis URL")
            ))
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| Error::unavailable(format!("cannot reach Redis at {shown_url}: {e}")))?;
        Ok(RedisStateStore {
            conn,
            prefix: prefix.to_owned(),
            shown_url,
            increment: redis::Script::new(INCREMENT),
            increment_each: redis::Script::new(INCREMENT_EACH),
            give_back_each: redis::Script::new(GIVE_BACK_EACH),
            compare_and_swap: redis::Script::new(COMPARE_AND_SWAP),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Whether Redis answers now (`PING`), for readiness checks.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| unavailable(&e))
    }
}

#[async_trait]
impl StateStore for RedisStateStore {
    async fn set(&self, key: &str, value: Value, ttl: Duration) -> Result<()> {
        let mut conn = self.conn.clone();
        let text = value.to_string();
        redis::cmd("SET")
            .arg(self.key(key))
            .arg(text)
            .arg("PX")
            .arg(millis(ttl))
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| unavailable(&e))
    }

    async fn get(&self, key: &str) -> Result<Option<Value>> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = conn.get(self.key(key)).await.map_err(|e| unavailable(&e))?;
        decode(raw)
    }

    async fn take(&self, key: &str) -> Result<Option<Value>> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = conn
            .get_del(self.key(key))
            .await
            .map_err(|e| unavailable(&e))?;
        decode(raw)
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let mut conn = self.conn.clone();
        let n: u64 = conn.del(self.key(key)).await.map_err(|e| unavailable(&e))?;
        Ok(n > 0)
    }

    async fn increment(&self, key: &str, by: u64, ttl: Duration) -> Result<u64> {
        let mut conn = self.conn.clone();
        let n: i64 = self
            .increment
            .key(self.key(key))
            .arg(by)
            .arg(millis(ttl))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| {
                if matches!(
                    e.kind(),
                    redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
                ) {
                    Error::unexpected(format!("the state value under {key} is not a counter"))
                } else {
                    unavailable(&e)
                }
            })?;
        u64::try_from(n).map_err(|_| Error::unexpected("a counter went negative"))
    }

    async fn increment_each(&self, counters: &[(&str, Duration)]) -> Result<Vec<u64>> {
        if counters.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let mut invocation = self.increment_each.prepare_invoke();
        for (key, ttl) in counters {
            invocation.key(self.key(key)).arg(millis(*ttl));
        }
        let values: Vec<i64> = invocation.invoke_async(&mut conn).await.map_err(|e| {
            if matches!(
                e.kind(),
                redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
            ) {
                Error::unexpected("a state value under a counter's key is not a counter")
            } else {
                unavailable(&e)
            }
        })?;
        values
            .into_iter()
            .map(|n| u64::try_from(n).map_err(|_| Error::unexpected("a counter went negative")))
            .collect()
    }

    async fn give_back_each(
        &self,
        counters: &[(&str, Duration)],
        clear: Option<&str>,
    ) -> Result<()> {
        if counters.is_empty() && clear.is_none() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let mut invocation = self.give_back_each.prepare_invoke();
        for (key, _) in counters {
            invocation.key(self.key(key));
        }
        if let Some(clear) = clear {
            invocation.key(self.key(clear));
        }
        invocation.arg(if clear.is_some() { "1" } else { "0" });
        let _: i64 = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(())
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&Value>,
        new: Option<Value>,
        ttl: Duration,
    ) -> Result<bool> {
        let mut conn = self.conn.clone();
        // Values compare as their JSON text: serde_json writes object keys
        // in order, so equal values have equal text.
        let swapped: i64 = self
            .compare_and_swap
            .key(self.key(key))
            .arg(if expected.is_some() { "1" } else { "0" })
            .arg(expected.map(Value::to_string).unwrap_or_default())
            .arg(if new.is_some() { "1" } else { "0" })
            .arg(new.as_ref().map(Value::to_string).unwrap_or_default())
            .arg(millis(ttl))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(swapped == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_is_redacted_with_the_cores_rule() {
        assert_eq!(redact_url("redis://u:p@h:1/0"), "redis://u:***@h:1/0");
    }
}
