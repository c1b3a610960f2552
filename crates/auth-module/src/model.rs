//! The data model: auth identities and the provider identities linked to them.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// A JSON object, as stored in the `*_metadata` columns.
pub type Metadata = Map<String, Value>;

/// One user of the module, possibly known to several providers.
///
/// `app_metadata` holds the `{actor_type}_id` links the host application sets
/// once it has created its own record for the user (e.g. `customer_id`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuthIdentity {
    /// `authid_…`
    pub id: String,
    /// The host application's links and data.
    pub app_metadata: Option<Metadata>,
    /// The provider identities linked to it (the ones the reader may see).
    pub provider_identities: Vec<ProviderIdentity>,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Bumped by every credential change of any of its provider identities
    /// (see [`ProviderIdentityUpdate::bump_credential_version`]). Tokens and
    /// sessions carry the version they were issued under and stop being
    /// accepted once it moves on. Not part of serialized answers.
    #[serde(default, skip_serializing)]
    pub credential_version: u64,
    /// Whether it has an enabled MFA factor, when the store that read it
    /// says so (`None`: not known, so MFA checks read the factors). A store
    /// that sets it keeps it current through its caches: a factor's status
    /// change invalidates them. Not part of serialized answers.
    #[serde(default, skip_serializing)]
    pub mfa_enabled: Option<bool>,
}

impl AuthIdentity {
    /// An auth identity `id` created (and last changed) at `created_at`, with
    /// no `app_metadata`, no provider identities and credential version 0.
    /// Store implementations build what they read with it; the public fields
    /// are then set as needed.
    pub fn new(id: impl Into<String>, created_at: OffsetDateTime) -> Self {
        AuthIdentity {
            id: id.into(),
            app_metadata: None,
            provider_identities: Vec::new(),
            created_at,
            updated_at: created_at,
            credential_version: 0,
            mfa_enabled: None,
        }
    }

    /// The actor id linked for `actor_type` (`app_metadata["{actor_type}_id"]`),
    /// if any and non-empty.
    pub fn actor_id(&self, actor_type: &str) -> Option<&str> {
        // Found without building the key: this runs on every token check.
        self.app_metadata
            .as_ref()?
            .iter()
            .find(|(k, _)| k.strip_suffix("_id") == Some(actor_type))?
            .1
            .as_str()
            .filter(|s| !s.is_empty())
    }

    /// Whether any actor is linked (a non-empty `{something}_id` string in `app_metadata`).
    pub fn has_linked_actor(&self) -> bool {
        self.app_metadata.as_ref().is_some_and(|m| {
            m.iter()
                .any(|(k, v)| k.ends_with("_id") && v.as_str().is_some_and(|s| !s.is_empty()))
        })
    }

    /// The provider identity of provider instance `provider`, if linked.
    pub fn provider_identity(&self, provider: &str) -> Option<&ProviderIdentity> {
        self.provider_identities
            .iter()
            .find(|p| p.provider == provider)
    }

    /// A copy without any provider's secrets (`provider_metadata`), for
    /// anything that leaves the module.
    pub fn redacted(mut self) -> Self {
        for p in &mut self.provider_identities {
            p.provider_metadata = None;
        }
        self
    }
}

impl fmt::Debug for AuthIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthIdentity")
            .field("id", &self.id)
            .field("app_metadata", &self.app_metadata)
            .field("provider_identities", &self.provider_identities)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("credential_version", &self.credential_version)
            .finish()
    }
}

/// The record of one provider instance knowing an auth identity by `entity_id`
/// (an email, a subject id, ...). `(entity_id, provider)` is unique.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProviderIdentity {
    /// `provid_…`
    pub id: String,
    /// The provider's own key for the user.
    pub entity_id: String,
    /// The provider instance id (as configured, e.g. `emailpass`).
    pub provider: String,
    /// The auth identity it belongs to.
    pub auth_identity_id: String,
    /// What the provider knows of the user (email, name, ...); may be shown.
    pub user_metadata: Option<Metadata>,
    /// The provider's private data (password hash, tokens). Never leaves the
    /// module; skipped when serialized and hidden from `Debug`.
    #[serde(skip_serializing, default)]
    pub provider_metadata: Option<Metadata>,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl ProviderIdentity {
    /// Provider instance `provider`'s record of `entity_id`, with id `id`,
    /// belonging to auth identity `auth_identity_id`, created (and last
    /// changed) at `created_at`, with no metadata.
    pub fn new(
        id: impl Into<String>,
        provider: impl Into<String>,
        entity_id: impl Into<String>,
        auth_identity_id: impl Into<String>,
        created_at: OffsetDateTime,
    ) -> Self {
        ProviderIdentity {
            id: id.into(),
            entity_id: entity_id.into(),
            provider: provider.into(),
            auth_identity_id: auth_identity_id.into(),
            user_metadata: None,
            provider_metadata: None,
            created_at,
            updated_at: created_at,
        }
    }
}

impl fmt::Debug for ProviderIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderIdentity")
            .field("id", &self.id)
            .field("entity_id", &self.entity_id)
            .field("provider", &self.provider)
            .field("auth_identity_id", &self.auth_identity_id)
            .field("user_metadata", &self.user_metadata)
            .field(
                "provider_metadata",
                &self.provider_metadata.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

/// What a new provider identity is made of.
#[derive(Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct NewProviderIdentity {
    /// The provider's key for the user.
    pub entity_id: String,
    /// The provider instance id.
    pub provider: String,
    /// Shown data.
    pub user_metadata: Option<Metadata>,
    /// Private data.
    pub provider_metadata: Option<Metadata>,
    /// The id to keep (importers); `None`: the store generates a `provid_` id.
    pub id: Option<String>,
    /// The creation time to keep (importers); `None`: now.
    pub created_at: Option<OffsetDateTime>,
    /// The last change time to keep (importers); `None`: the creation time.
    pub updated_at: Option<OffsetDateTime>,
}

impl NewProviderIdentity {
    /// A provider identity for `entity_id` at provider instance `provider`.
    pub fn new(provider: impl Into<String>, entity_id: impl Into<String>) -> Self {
        NewProviderIdentity {
            entity_id: entity_id.into(),
            provider: provider.into(),
            user_metadata: None,
            provider_metadata: None,
            id: None,
            created_at: None,
            updated_at: None,
        }
    }

    /// Keeps `id` as it is (no shape check) instead of generating one.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Keeps these timestamps instead of now.
    pub fn timestamps(mut self, created_at: OffsetDateTime, updated_at: OffsetDateTime) -> Self {
        self.created_at = Some(created_at);
        self.updated_at = Some(updated_at);
        self
    }

    /// What a store stores for this request under auth identity
    /// `auth_identity_id`: the given id and timestamps kept, else a new
    /// `provid_` id and `now` (for store implementors).
    pub fn into_provider_identity(
        self,
        auth_identity_id: &str,
        now: OffsetDateTime,
    ) -> ProviderIdentity {
        let created_at = self.created_at.unwrap_or(now);
        let mut p = ProviderIdentity::new(
            self.id
                .unwrap_or_else(|| generate_id(PROVIDER_IDENTITY_PREFIX)),
            self.provider,
            self.entity_id,
            auth_identity_id,
            created_at,
        );
        p.user_metadata = self.user_metadata;
        p.provider_metadata = self.provider_metadata;
        p.updated_at = self.updated_at.unwrap_or(created_at);
        p
    }

    /// Sets `user_metadata`.
    pub fn user_metadata(mut self, m: Metadata) -> Self {
        self.user_metadata = Some(m);
        self
    }

    /// Sets `provider_metadata`.
    pub fn provider_metadata(mut self, m: Metadata) -> Self {
        self.provider_metadata = Some(m);
        self
    }
}

impl fmt::Debug for NewProviderIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewProviderIdentity")
            .field("id", &self.id)
            .field("entity_id", &self.entity_id)
            .field("provider", &self.provider)
            .field("user_metadata", &self.user_metadata)
            .finish_non_exhaustive()
    }
}

/// A change to a provider identity: each `Some` field replaces the stored
/// value. Optionally conditional on the stored `provider_metadata`
/// (compare-and-set), and optionally bumping the auth identity's credential
/// version in the same atomic write.
#[derive(Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ProviderIdentityUpdate {
    /// New `user_metadata`.
    pub user_metadata: Option<Metadata>,
    /// New `provider_metadata`.
    pub provider_metadata: Option<Metadata>,
    /// `Some(expected)`: apply only if the stored `provider_metadata` equals
    /// `expected` (`None` meaning no metadata), else fail with
    /// [`crate::ErrorKind::Conflict`] and change nothing.
    pub expected_provider_metadata: Option<Option<Metadata>>,
    /// Also add one to the owning auth identity's `credential_version`.
    pub bump_credential_version: bool,
}

impl ProviderIdentityUpdate {
    /// An update that changes nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replace `user_metadata`.
    pub fn user_metadata(mut self, m: Metadata) -> Self {
        self.user_metadata = Some(m);
        self
    }

    /// Replace `provider_metadata`.
    pub fn provider_metadata(mut self, m: Metadata) -> Self {
        self.provider_metadata = Some(m);
        self
    }

    /// Apply only if the stored `provider_metadata` is still `expected`
    /// (what the caller read before deciding on this change): a concurrent
    /// change in between makes the update fail with
    /// [`crate::ErrorKind::Conflict`] instead of overwriting it.
    pub fn if_provider_metadata(mut self, expected: Option<Metadata>) -> Self {
        self.expected_provider_metadata = Some(expected);
        self
    }

    /// Also bump the auth identity's credential version, atomically with this
    /// change: tokens and sessions issued before it stop being accepted.
    pub fn bump_credential_version(mut self) -> Self {
        self.bump_credential_version = true;
        self
    }
}

impl fmt::Debug for ProviderIdentityUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderIdentityUpdate")
            .field("user_metadata", &self.user_metadata)
            .field(
                "provider_metadata",
                &self.provider_metadata.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "expected_provider_metadata",
                &self
                    .expected_provider_metadata
                    .as_ref()
                    .map(|_| "<redacted>"),
            )
            .field("bump_credential_version", &self.bump_credential_version)
            .finish()
    }
}

/// Prefix of auth identity ids.
pub const AUTH_IDENTITY_PREFIX: &str = "authid";
/// Prefix of provider identity ids.
pub const PROVIDER_IDENTITY_PREFIX: &str = "provid";

/// A new id `{prefix}_{ULID}`: 48 bits of milliseconds then 80 random bits, in
/// Crockford base32, so ids sort by creation time as Medusa's do.
pub fn generate_id(prefix: &str) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let millis = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as u128;
    let mut random = [0u8; 10];
    crate::random::fill(&mut random);
    let mut value: u128 = (millis & ((1u128 << 48) - 1)) << 80;
    for (i, b) in random.iter().enumerate() {
        value |= u128::from(*b) << (8 * (9 - i));
    }
    let mut out = String::with_capacity(prefix.len() + 27);
    out.push_str(prefix);
    out.push('_');
    for i in (0..26).rev() {
        let idx = ((value >> (5 * i)) & 0x1f) as usize;
        out.push(ALPHABET[idx] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_have_prefix_and_ulid_shape() {
        let a = generate_id(AUTH_IDENTITY_PREFIX);
        let b = generate_id(AUTH_IDENTITY_PREFIX);
        assert!(a.starts_with("authid_"));
        assert_eq!(a.len(), "authid_".len() + 26);
        assert_ne!(a, b);
    }

    fn identity(app: Value) -> AuthIdentity {
        AuthIdentity {
            id: "authid_1".into(),
            app_metadata: app.as_object().cloned(),
            provider_identities: vec![ProviderIdentity {
                id: "provid_1".into(),
                entity_id: "a@b.c".into(),
                provider: "emailpass".into(),
                auth_identity_id: "authid_1".into(),
                user_metadata: None,
                provider_metadata: json!({"password": "$argon2id$secret"}).as_object().cloned(),
                created_at: OffsetDateTime::UNIX_EPOCH,
                updated_at: OffsetDateTime::UNIX_EPOCH,
            }],
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
            credential_version: 0,
            mfa_enabled: None,
        }
    }

    #[test]
    fn actor_links() {
        let i = identity(json!({"customer_id": "cus_1", "user_id": ""}));
        assert_eq!(i.actor_id("customer"), Some("cus_1"));
        assert_eq!(i.actor_id("user"), None);
        assert!(i.has_linked_actor());
        assert!(!identity(json!({"user_id": ""})).has_linked_actor());
        assert!(!identity(Value::Null).has_linked_actor());
    }

    #[test]
    fn secrets_never_in_debug_or_json() {
        let i = identity(Value::Null);
        assert!(!format!("{i:?}").contains("secret"));
        assert!(!serde_json::to_string(&i).unwrap().contains("secret"));
        assert!(
            i.redacted().provider_identities[0]
                .provider_metadata
                .is_none()
        );
    }
}
