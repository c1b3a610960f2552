//! The audit log: what happened to which identity, from where, kept
//! append-only in the identity store ([`crate::AuditStore`]) and
//! tamper-evident: each entry stores
//! `hash = SHA-256(previous hash ‖ canonical entry)`, so an edited, removed
//! or inserted row breaks the chain at that row ([`verify`] names it).
//!
//! Actions, each with `outcome` `succeeded`, `failed` or `throttled`:
//!
//! | action | when |
//! |---|---|
//! | `login` | a login's first factor answered (a token, a step owed, refused, throttled) |
//! | `register` | a registration |
//! | `mfa.enrolled`, `mfa.disabled` | a factor enabled or disabled |
//! | `mfa.challenge` | an MFA challenge answered (`failed` when refused) |
//! | `recovery_codes.created`, `recovery_codes.used` | recovery codes made, one used |
//! | `reset.requested`, `reset.completed` | a password reset asked for, a reset token used |
//! | `password.changed` | a password set through `update` |
//! | `link`, `unlink` | a provider identity attached to or removed from an identity |
//! | `device.ended` | a device ended (by its owner or the management API) |
//! | `token.revoked`, `identity.revoked` | `POST /auth/token/revoke`; every credential of an identity revoked |
//! | `identity.deleted` | an identity deleted through the management API |
//! | `import` | an identity imported |
//! | `passkey.added`, `passkey.removed` | a passkey registered or removed |
//!
//! The client's network and user agent come from the [`ClientInfo`] the HTTP
//! layer puts around each request ([`with_client`]).
//!
//! ```
//! use auth_module::NewAuditEntry;
//! use auth_module::audit::{GENESIS, chain_hash};
//! let entry = NewAuditEntry::new("login", "succeeded").identity("authid_1").into_entry(
//!     "authaud_1".into(), 1, time::OffsetDateTime::UNIX_EPOCH, GENESIS.into());
//! assert_eq!(entry.hash, chain_hash(GENESIS, &entry));
//! let mut edited = entry.clone();
//! edited.outcome = "failed".into();
//! assert_ne!(chain_hash(GENESIS, &edited), entry.hash);
//! ```

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sha2::Digest;
use time::OffsetDateTime;

use crate::error::Result;
use crate::records_security::{AuditEntry, NewAuditEntry};
use crate::store_traits::AuditStore;

/// The hash the first entry ever follows: 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The most bytes of a `User-Agent` kept.
pub const USER_AGENT_MAX_BYTES: usize = 256;

/// `at` without its sub-millisecond part: what every store keeps.
pub fn whole_millis(at: OffsetDateTime) -> OffsetDateTime {
    let nanos = at.nanosecond();
    at.replace_nanosecond(nanos - nanos % 1_000_000)
        .unwrap_or(at)
}

/// `value` with every object's keys sorted, compact: one text whatever order
/// a database (PostgreSQL's `jsonb`) gives the keys back in.
fn canonical_json(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical_json(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The canonical form of `entry` that its hash covers: every field but
/// `prev_hash` and `hash`, as one JSON object with sorted keys, `at` in Unix
/// milliseconds.
pub fn canonical(entry: &AuditEntry) -> String {
    let at_ms = (entry.at.unix_timestamp_nanos() / 1_000_000) as i64;
    let value = serde_json::json!({
        "id": entry.id,
        "seq": entry.seq,
        "at": at_ms,
        "action": entry.action,
        "outcome": entry.outcome,
        "auth_identity_id": entry.auth_identity_id,
        "actor_type": entry.actor_type,
        "provider": entry.provider,
        "network": entry.network,
        "user_agent": entry.user_agent,
        "detail": Value::Object(entry.detail.clone()),
    });
    let mut out = String::with_capacity(256);
    canonical_json(&value, &mut out);
    out
}

/// `SHA-256(prev_hash ‖ canonical(entry))`, lower-case hex.
pub fn chain_hash(prev_hash: &str, entry: &AuditEntry) -> String {
    let mut h = sha2::Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(canonical(entry).as_bytes());
    hex::encode(h.finalize())
}

/// An entry as the management API and `auth-server audit export` show it.
pub fn entry_json(entry: &AuditEntry) -> Value {
    serde_json::json!({
        "id": entry.id,
        "seq": entry.seq,
        "at": crate::flows::iso_millis(entry.at),
        "action": entry.action,
        "outcome": entry.outcome,
        "auth_identity_id": entry.auth_identity_id,
        "actor_type": entry.actor_type,
        "provider": entry.provider,
        "network": entry.network,
        "user_agent": entry.user_agent,
        "detail": Value::Object(entry.detail.clone()),
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    })
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChainReport {
    /// Entries checked.
    pub checked: u64,
    /// The `seq` the chain starts at (1 unless a sweep removed older ones).
    pub start_seq: u64,
    /// The hash of the last entry (the head), to keep outside the database.
    pub head_hash: String,
    /// The first entry that breaks the chain, and how; `None` when intact.
    pub broken: Option<Broken>,
}

/// The first entry that breaks the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Broken {
    /// Its id.
    pub id: String,
    /// Its `seq`.
    pub seq: u64,
    /// What is wrong: `edited` (its hash does not cover it), `reordered` (it
    /// does not follow the entry before), `missing` (entries before it are
    /// gone).
    pub reason: &'static str,
}

/// How many entries [`verify`] reads per page.
const PAGE: usize = 1000;

/// Walks the whole chain of `store`, oldest first, and answers the first
/// entry that breaks it.
pub async fn verify(store: &dyn AuditStore) -> Result<ChainReport> {
    let start = store.audit_chain_start().await?;
    let (start_seq, mut prev) = match start {
        Some(s) => (s.seq, s.prev_hash),
        None => (1, GENESIS.to_owned()),
    };
    let mut report = ChainReport {
        checked: 0,
        start_seq,
        head_hash: prev.clone(),
        broken: None,
    };
    let mut expected_seq = start_seq;
    let mut after = start_seq.saturating_sub(1);
    loop {
        let page = store.audit_chain(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for entry in &page {
            report.checked += 1;
            let reason = if entry.seq != expected_seq {
                Some("missing")
            } else if entry.prev_hash != prev {
                Some("reordered")
            } else if chain_hash(&entry.prev_hash, entry) != entry.hash {
                Some("edited")
            } else {
                None
            };
            if let Some(reason) = reason {
                report.broken = Some(Broken {
                    id: entry.id.clone(),
                    seq: entry.seq,
                    reason,
                });
                return Ok(report);
            }
            prev.clone_from(&entry.hash);
            expected_seq = entry.seq + 1;
        }
    }
    report.head_hash = prev;
    Ok(report)
}

/// Who is asking: the client's user agent and address, of which the audit
/// log and the devices keep the agent and the address's network. Made for
/// every request, read by few (sign-ins, audited changes): the network is
/// worked out when asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientInfo {
    /// `User-Agent`, at most 256 bytes (cut at a character boundary).
    pub user_agent: Option<String>,
    addr: Option<IpAddr>,
}

impl ClientInfo {
    /// From a request's `User-Agent` and client address: the agent cut to
    /// 256 bytes.
    pub fn new(user_agent: Option<&str>, addr: Option<IpAddr>) -> Self {
        ClientInfo {
            user_agent: user_agent
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(truncate_user_agent),
            addr,
        }
    }

    /// The address's /24 (IPv4) or /48 (IPv6) network, e.g. `203.0.113.0/24`
    /// ([`network_of`]).
    pub fn network(&self) -> Option<String> {
        self.addr.map(network_of)
    }
}

fn truncate_user_agent(ua: &str) -> String {
    if ua.len() <= USER_AGENT_MAX_BYTES {
        return ua.to_owned();
    }
    let mut end = USER_AGENT_MAX_BYTES;
    while !ua.is_char_boundary(end) {
        end -= 1;
    }
    ua[..end].to_owned()
}

/// The /24 (IPv4) or /48 (IPv6) network of `addr`; an IPv4-mapped IPv6
/// address counts as IPv4.
pub fn network_of(addr: IpAddr) -> String {
    let addr = match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    };
    match addr {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0);
            format!("{net}/48")
        }
    }
}

tokio::task_local! {
    static CLIENT: ClientInfo;
}

/// Runs `fut` with `client` as the client every audit entry and device it
/// records names. The HTTP layer wraps each request in it; an embedding
/// host that calls the core directly can too.
pub async fn with_client<F: Future>(client: ClientInfo, fut: F) -> F::Output {
    client_scope(client, fut).await
}

/// A future run under a [`ClientInfo`] ([`client_scope`]).
pub type ClientScoped<F> = tokio::task::futures::TaskLocalFuture<ClientInfo, F>;

/// [`with_client`] as a nameable future, for hand-written tower services.
pub fn client_scope<F: Future>(client: ClientInfo, fut: F) -> ClientScoped<F> {
    CLIENT.scope(client, fut)
}

/// The client of the running request ([`with_client`]); empty outside one.
pub fn current_client() -> ClientInfo {
    CLIENT.try_with(ClientInfo::clone).unwrap_or_default()
}

fn strip_nul(v: &mut Value) {
    match v {
        Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{FFFD}"),
        Value::Array(items) => items.iter_mut().for_each(strip_nul),
        Value::Object(map) => map.values_mut().for_each(strip_nul),
        _ => {}
    }
}

/// Records audit entries into a store, or nowhere when the log is off.
/// Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct AuditLog {
    store: Option<Arc<dyn AuditStore>>,
}

impl AuditLog {
    /// A log appending to `store`.
    pub fn new(store: Arc<dyn AuditStore>) -> Self {
        AuditLog { store: Some(store) }
    }

    /// A log that records nothing (`[audit] enabled = false`).
    pub fn off() -> Self {
        AuditLog { store: None }
    }

    /// Whether entries are recorded.
    pub fn enabled(&self) -> bool {
        self.store.is_some()
    }

    /// The store, when on.
    pub fn store(&self) -> Option<&Arc<dyn AuditStore>> {
        self.store.as_ref()
    }

    /// Appends `entries`, filling in the running request's client where
    /// they name none. A store that cannot append is logged, never
    /// returned: the change it records has happened.
    pub async fn record_all(&self, mut entries: Vec<NewAuditEntry>) {
        let Some(store) = &self.store else { return };
        if entries.is_empty() {
            return;
        }
        let client = current_client();
        let network = client.network();
        for e in &mut entries {
            // No store can keep a NUL in text everywhere (PostgreSQL cannot):
            // replaced, so an entry is never lost to one.
            for v in e.detail.values_mut() {
                strip_nul(v);
            }
            if e.network.is_none() {
                e.network.clone_from(&network);
            }
            if e.user_agent.is_none() {
                e.user_agent.clone_from(&client.user_agent);
            }
        }
        if let Err(e) = store.append_audit(entries).await {
            tracing::warn!(error = %e, "audit log: an entry could not be appended");
        }
    }

    /// Appends one entry ([`AuditLog::record_all`]).
    pub async fn record(&self, entry: NewAuditEntry) {
        self.record_all(vec![entry]).await;
    }

    /// Removes entries older than `retention`; answers how many.
    pub async fn sweep(&self, retention: Duration) -> Result<u64> {
        let Some(store) = &self.store else {
            return Ok(0);
        };
        let cutoff = OffsetDateTime::now_utc()
            - time::Duration::try_from(retention).unwrap_or(time::Duration::MAX);
        store.prune_audit(cutoff).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_keep_only_the_prefix() {
        assert_eq!(
            network_of("203.0.113.77".parse().unwrap()),
            "203.0.113.0/24"
        );
        assert_eq!(
            network_of("2001:db8:1234:5678::1".parse().unwrap()),
            "2001:db8:1234::/48"
        );
        assert_eq!(
            network_of("::ffff:198.51.100.9".parse().unwrap()),
            "198.51.100.0/24"
        );
    }

    #[test]
    fn user_agents_are_cut_at_a_character_boundary() {
        let long = "é".repeat(200);
        let kept = ClientInfo::new(Some(&long), None).user_agent.unwrap();
        assert!(kept.len() <= USER_AGENT_MAX_BYTES && kept.len() >= USER_AGENT_MAX_BYTES - 1);
        assert!(long.starts_with(&kept));
        assert_eq!(ClientInfo::new(Some("  "), None).user_agent, None);
    }

    #[test]
    fn the_canonical_form_ignores_key_order() {
        let mut a = NewAuditEntry::new("login", "failed");
        a.detail.insert("z".into(), Value::from(1));
        a.detail
            .insert("a".into(), serde_json::json!({"y": 1, "b": 2}));
        let mut b = NewAuditEntry::new("login", "failed");
        b.detail
            .insert("a".into(), serde_json::json!({"b": 2, "y": 1}));
        b.detail.insert("z".into(), Value::from(1));
        let at = OffsetDateTime::now_utc();
        let a = a.into_entry("authaud_1".into(), 7, at, GENESIS.into());
        let b = b.into_entry("authaud_1".into(), 7, at, GENESIS.into());
        assert_eq!(a.hash, b.hash);
        assert_eq!(a.at.nanosecond() % 1_000_000, 0);
    }
}
