//! The records of the security center that the identity store keeps beside
//! identities: devices (one per session or refresh-able token family) and
//! the audit log's entries.

use time::OffsetDateTime;

use crate::model::Metadata;

/// Prefix of device ids.
pub const DEVICE_PREFIX: &str = "authdev";
/// Prefix of audit entry ids.
pub const AUDIT_PREFIX: &str = "authaud";

/// A device of an auth identity: a session or a refresh-able token family.
/// Every token and session issued to it carries its id (the `device_id`
/// claim); ending it refuses them all.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Device {
    /// `authdev_…`
    pub id: String,
    /// The auth identity it belongs to.
    pub auth_identity_id: String,
    /// The actor type it signed in as.
    pub actor_type: String,
    /// The provider instance that signed it in.
    pub auth_provider: String,
    /// The client's `User-Agent`, at most 256 bytes.
    pub user_agent: Option<String>,
    /// The client's network (its address's /24 or /48), e.g. `203.0.113.0/24`.
    pub network: Option<String>,
    /// When it signed in.
    pub created_at: OffsetDateTime,
    /// When a credential of it was last used (updated at most once a minute,
    /// and always at its first use).
    pub last_seen_at: OffsetDateTime,
}

impl Device {
    /// Whether a credential of it was used since its sign-in: such a device
    /// is kept before the unused ones when an identity has too many.
    pub(crate) fn used(&self) -> bool {
        self.last_seen_at > self.created_at
    }
}

/// What [`crate::DeviceStore::device_tally`] counts of an identity's devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeviceTally {
    /// How many devices it has.
    pub devices: usize,
    /// Whether one of them has the user agent and network asked about.
    pub same_client: bool,
}

impl DeviceTally {
    /// `devices` devices, one of them from the same client or not.
    pub fn new(devices: usize, same_client: bool) -> Self {
        DeviceTally {
            devices,
            same_client,
        }
    }
}

/// A device to create ([`crate::DeviceStore::create_device`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewDevice {
    /// The auth identity.
    pub auth_identity_id: String,
    /// The actor type.
    pub actor_type: String,
    /// The provider instance.
    pub auth_provider: String,
    /// The `User-Agent` (truncated to 256 bytes by the caller).
    pub user_agent: Option<String>,
    /// The network.
    pub network: Option<String>,
}

impl NewDevice {
    /// A device of `auth_identity_id` signed in as `actor_type` through
    /// `auth_provider`, with no user agent or network.
    pub fn new(
        auth_identity_id: impl Into<String>,
        actor_type: impl Into<String>,
        auth_provider: impl Into<String>,
    ) -> Self {
        NewDevice {
            auth_identity_id: auth_identity_id.into(),
            actor_type: actor_type.into(),
            auth_provider: auth_provider.into(),
            user_agent: None,
            network: None,
        }
    }

    /// With this user agent and network.
    pub fn client(mut self, user_agent: Option<String>, network: Option<String>) -> Self {
        self.user_agent = user_agent;
        self.network = network;
        self
    }

    /// The device row this creates, with id `id` at `now`.
    pub fn into_device(self, id: String, now: OffsetDateTime) -> Device {
        Device {
            id,
            auth_identity_id: self.auth_identity_id,
            actor_type: self.actor_type,
            auth_provider: self.auth_provider,
            user_agent: self.user_agent,
            network: self.network,
            created_at: now,
            last_seen_at: now,
        }
    }
}

/// An audit entry to append ([`crate::AuditStore::append_audit`]): what
/// happened, to whom, from where. `detail` never holds a secret, a password,
/// a token, or the full e-mail of an identity that does not exist.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NewAuditEntry {
    /// What happened: `login`, `register`, `mfa.enrolled`, ... (see
    /// [`crate::audit`]).
    pub action: String,
    /// `succeeded`, `failed` or `throttled`.
    pub outcome: String,
    /// The auth identity, when known.
    pub auth_identity_id: Option<String>,
    /// The actor type, when known.
    pub actor_type: Option<String>,
    /// The provider instance, when there is one.
    pub provider: Option<String>,
    /// The client's network (/24 or /48).
    pub network: Option<String>,
    /// The client's `User-Agent` (at most 256 bytes).
    pub user_agent: Option<String>,
    /// A small object of facts (never a secret).
    pub detail: Metadata,
}

impl NewAuditEntry {
    /// An entry `action` with `outcome`, nothing else known yet.
    pub fn new(action: impl Into<String>, outcome: impl Into<String>) -> Self {
        NewAuditEntry {
            action: action.into(),
            outcome: outcome.into(),
            auth_identity_id: None,
            actor_type: None,
            provider: None,
            network: None,
            user_agent: None,
            detail: Metadata::new(),
        }
    }

    /// For auth identity `id`.
    pub fn identity(mut self, id: impl Into<String>) -> Self {
        self.auth_identity_id = Some(id.into());
        self
    }

    /// As actor type `actor_type`.
    pub fn actor_type(mut self, actor_type: impl Into<String>) -> Self {
        self.actor_type = Some(actor_type.into());
        self
    }

    /// Through provider instance `provider`.
    pub fn provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = Some(provider.into());
        self
    }

    /// With one fact in `detail`.
    pub fn detail(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.detail.insert(key.to_owned(), value.into());
        self
    }

    /// The entry as appended: at position `seq` of the chain, after an entry
    /// whose hash is `prev_hash`, with id `id` at `at` (whole milliseconds).
    /// Its `hash` is [`crate::audit::chain_hash`] of the result.
    pub fn into_entry(
        self,
        id: String,
        seq: u64,
        at: OffsetDateTime,
        prev_hash: String,
    ) -> AuditEntry {
        let mut entry = AuditEntry {
            id,
            seq,
            at: crate::audit::whole_millis(at),
            action: self.action,
            outcome: self.outcome,
            auth_identity_id: self.auth_identity_id,
            actor_type: self.actor_type,
            provider: self.provider,
            network: self.network,
            user_agent: self.user_agent,
            detail: self.detail,
            prev_hash,
            hash: String::new(),
        };
        entry.hash = crate::audit::chain_hash(&entry.prev_hash, &entry);
        entry
    }
}

/// An entry of the audit log, as stored: append-only, each chained to the
/// one before by `hash = SHA-256(prev_hash ‖ canonical entry)`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AuditEntry {
    /// `authaud_…`, sortable by time.
    pub id: String,
    /// Its position in the chain: 1, 2, 3, ... with no gaps.
    pub seq: u64,
    /// When it was appended (whole milliseconds).
    pub at: OffsetDateTime,
    /// What happened.
    pub action: String,
    /// `succeeded`, `failed` or `throttled`.
    pub outcome: String,
    /// The auth identity, when known.
    pub auth_identity_id: Option<String>,
    /// The actor type, when known.
    pub actor_type: Option<String>,
    /// The provider instance.
    pub provider: Option<String>,
    /// The client's network.
    pub network: Option<String>,
    /// The client's user agent.
    pub user_agent: Option<String>,
    /// Facts, never a secret.
    pub detail: Metadata,
    /// The hash of the entry before (64 zeros before the first ever).
    pub prev_hash: String,
    /// SHA-256 of `prev_hash` and this entry's canonical form, hex.
    pub hash: String,
}

/// Where the chain starts once a retention sweep removed older entries: the
/// first kept entry's `seq` and the hash it follows.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditChainStart {
    /// The `seq` of the first entry kept.
    pub seq: u64,
    /// The hash that entry's `prev_hash` must be.
    pub prev_hash: String,
}

impl AuditChainStart {
    /// The chain starts at entry `seq`, which follows `prev_hash`.
    pub fn new(seq: u64, prev_hash: impl Into<String>) -> Self {
        AuditChainStart {
            seq,
            prev_hash: prev_hash.into(),
        }
    }
}

/// Which entries [`crate::AuditStore::query_audit`] answers, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditQuery {
    /// Only this identity's.
    pub auth_identity_id: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only those at or after.
    pub since: Option<OffsetDateTime>,
    /// Only those before.
    pub until: Option<OffsetDateTime>,
    /// Only those with a `seq` below (the cursor of the page before).
    pub before_seq: Option<u64>,
    /// At most this many (the store may cap it at 1000).
    pub limit: usize,
}

impl AuditQuery {
    /// The newest `limit` entries.
    pub fn newest(limit: usize) -> Self {
        AuditQuery {
            limit,
            ..Self::default()
        }
    }
}
