//! Storage contracts: [`IdentityStore`] for durable identities, with three
//! capabilities a backend may have ([`MfaStore`] for MFA factors and recovery
//! codes, [`VerificationStore`] for verifications, [`PasskeyStore`] for
//! passkey credentials, reached through [`IdentityStore::mfa_store`],
//! [`IdentityStore::verification_store`] and [`IdentityStore::passkey_store`]),
//! and [`StateStore`] for short-lived keyed values.
//!
//! Implementations live in their own crates (SQL, Redis); this crate ships
//! in-memory ones ([`crate::memory`]). Every implementation must pass the same
//! behaviour: the workspace's conformance tests run each of them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use time::OffsetDateTime;

use crate::error::Result;
use crate::model::{
    AuthIdentity, Metadata, NewProviderIdentity, ProviderIdentity, ProviderIdentityUpdate,
};
use crate::records::{
    MfaFactor, MfaFactorUpdate, NewMfaFactor, NewPasskeyCredential, NewVerification,
    PasskeyCredential, PasskeyUse, Verification,
};
use crate::records_security::{
    AuditChainStart, AuditEntry, AuditQuery, Device, DeviceTally, NewAuditEntry, NewDevice,
};

/// An identity cache ([`crate::CachedIdentityStore`],
/// [`crate::SharedIdentityCache`]): what it does once a factor of an identity
/// was created or changed, since the identity's
/// [`crate::AuthIdentity::mfa_enabled`] may have changed with it.
#[async_trait]
pub(crate) trait ForgetsIdentities: Send + Sync + fmt::Debug + 'static {
    /// Forgets the cached `auth_identity_id` (after the change committed).
    async fn forget(&self, auth_identity_id: &str) -> Result<()>;
}

/// A cache's [`MfaStore`]: every call goes to the wrapped store's
/// [`MfaStore`] (MFA records are never cached), and a factor created or
/// changed is followed by [`ForgetsIdentities::forget`] of its identity.
/// What a cache's [`IdentityStore::mfa_store`] answers when the store it
/// wraps keeps MFA records.
pub(crate) struct ForgettingMfaStore<C> {
    inner: Arc<dyn MfaStore>,
    cache: Arc<C>,
}

impl<C> ForgettingMfaStore<C> {
    /// `inner`'s MFA records, seen through `cache`.
    pub(crate) fn new(inner: Arc<dyn MfaStore>, cache: Arc<C>) -> Self {
        ForgettingMfaStore { inner, cache }
    }
}

impl<C: fmt::Debug> fmt::Debug for ForgettingMfaStore<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The cache names the store it wraps.
        fmt::Debug::fmt(&self.cache, f)
    }
}

#[async_trait]
impl<C: ForgetsIdentities> MfaStore for ForgettingMfaStore<C> {
    async fn create_auth_identity_with_mfa(
        &self,
        new: NewAuthIdentity,
        factors: Vec<NewMfaFactor>,
    ) -> Result<AuthIdentity> {
        // A new identity: nobody can have cached it.
        self.inner.create_auth_identity_with_mfa(new, factors).await
    }

    async fn create_mfa_factor(&self, new: NewMfaFactor) -> Result<MfaFactor> {
        let factor = self.inner.create_mfa_factor(new).await?;
        self.cache.forget(&factor.auth_identity_id).await?;
        Ok(factor)
    }

    async fn list_mfa_factors(&self, auth_identity_id: &str) -> Result<Vec<MfaFactor>> {
        self.inner.list_mfa_factors(auth_identity_id).await
    }

    async fn update_mfa_factor(
        &self,
        id: &str,
        update: MfaFactorUpdate,
    ) -> Result<Option<MfaFactor>> {
        let factor = self.inner.update_mfa_factor(id, update).await?;
        if let Some(f) = &factor {
            self.cache.forget(&f.auth_identity_id).await?;
        }
        Ok(factor)
    }

    async fn replace_recovery_codes(
        &self,
        auth_identity_id: &str,
        hashes: Vec<String>,
    ) -> Result<()> {
        self.inner
            .replace_recovery_codes(auth_identity_id, hashes)
            .await
    }

    async fn consume_recovery_code(
        &self,
        auth_identity_id: &str,
        candidates: &[String],
    ) -> Result<bool> {
        self.inner
            .consume_recovery_code(auth_identity_id, candidates)
            .await
    }

    async fn count_recovery_codes(&self, auth_identity_id: &str) -> Result<u64> {
        self.inner.count_recovery_codes(auth_identity_id).await
    }
}

/// The error every store answers when `(entity_id, provider)` is taken, so a
/// client sees the same text whichever store is configured.
pub fn duplicate_provider_identity(new: &NewProviderIdentity) -> crate::Error {
    crate::Error::duplicate(format!(
        "Provider identity with entity_id {} and provider {} already exists",
        new.entity_id, new.provider
    ))
}

/// The error every store answers when an identity already has an active
/// (pending or enabled) factor of kind `provider`.
pub fn duplicate_mfa_factor(provider: &str) -> crate::Error {
    crate::Error::duplicate(format!(
        "An active {provider} factor already exists for this auth identity"
    ))
}

/// The error every store answers for a credential id its provider already has.
pub fn duplicate_passkey() -> crate::Error {
    crate::Error::duplicate("A passkey with this credential id already exists")
}

/// The error every store answers for a missing auth identity.
pub fn auth_identity_not_found(id: &str) -> crate::Error {
    crate::Error::not_found(format!("AuthIdentity with id: {id} was not found"))
}

/// The error every store answers for a missing provider identity.
pub fn provider_identity_not_found(id: &str) -> crate::Error {
    crate::Error::not_found(format!("ProviderIdentity with id: {id} was not found"))
}

/// The error every store answers when an update's precondition
/// ([`ProviderIdentityUpdate::if_provider_metadata`]) no longer holds.
pub fn provider_metadata_changed(id: &str) -> crate::Error {
    crate::Error::conflict(format!(
        "ProviderIdentity with id: {id} was changed concurrently"
    ))
}

/// The error every store answers for an `app_metadata` key it cannot patch.
pub fn invalid_app_metadata_key(key: &str) -> crate::Error {
    crate::Error::invalid_data(format!(
        "Invalid app_metadata key: {key:?} (use 1 to 128 letters, digits, '_' or '-')"
    ))
}

/// Whether `key` may be patched with [`IdentityStore::patch_app_metadata`]
/// or [`IdentityStore::merge_app_metadata`]: 1 to 128 ASCII letters, digits,
/// `_` or `-`, so every backend can address it in a JSON path without quoting.
pub fn valid_app_metadata_key(key: &str) -> bool {
    (1..=128).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// What a new auth identity is made of.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct NewAuthIdentity {
    /// The host application's links and data.
    pub app_metadata: Option<Metadata>,
    /// Provider identities created with it, in the same transaction.
    pub provider_identities: Vec<NewProviderIdentity>,
    /// The id to keep (importers); `None`: the store generates an `authid_` id.
    pub id: Option<String>,
    /// The creation time to keep (importers); `None`: now.
    pub created_at: Option<time::OffsetDateTime>,
    /// The last change time to keep (importers); `None`: the creation time.
    pub updated_at: Option<time::OffsetDateTime>,
}

impl NewAuthIdentity {
    /// An auth identity with no provider identity yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// An auth identity created together with its first provider identity.
    pub fn with_provider_identity(first: NewProviderIdentity) -> Self {
        NewAuthIdentity {
            provider_identities: vec![first],
            ..Self::default()
        }
    }

    /// Adds one more provider identity, created in the same transaction.
    pub fn provider_identity(mut self, p: NewProviderIdentity) -> Self {
        self.provider_identities.push(p);
        self
    }

    /// Keeps `id` as it is (no shape check) instead of generating one.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Keeps these timestamps instead of now.
    pub fn timestamps(
        mut self,
        created_at: time::OffsetDateTime,
        updated_at: time::OffsetDateTime,
    ) -> Self {
        self.created_at = Some(created_at);
        self.updated_at = Some(updated_at);
        self
    }

    /// Sets `app_metadata`.
    pub fn app_metadata(mut self, m: Metadata) -> Self {
        self.app_metadata = Some(m);
        self
    }
}

/// Durable storage of auth identities and provider identities.
///
/// # Contract
/// - Ids are generated by the store with [`crate::generate_id`] (`authid_`,
///   `provid_`) unless the caller gives one, which is kept exactly as given;
///   so are given timestamps. A taken id is [`crate::ErrorKind::DuplicateError`].
/// - `(entity_id, provider)` is unique: a second insert fails with
///   [`crate::ErrorKind::DuplicateError`], and nothing of that call is stored.
/// - Every change is one atomic write: `patch_app_metadata` changes one key
///   and `merge_app_metadata` the keys it is given, whatever concurrent
///   patches and merges of other keys do, and an update with a
///   precondition ([`ProviderIdentityUpdate::if_provider_metadata`]) applies
///   only if it holds, bumping the credential version in the same write when
///   asked. Nothing reads, modifies and writes back in process memory.
/// - Creating an auth identity with provider identities (and, with
///   [`MfaStore::create_auth_identity_with_mfa`], MFA factors) is atomic.
/// - Deleting an auth identity deletes its provider identities (and the MFA
///   and verification records of its capabilities).
/// - A missing record is [`crate::ErrorKind::NotFound`]; a backend failure is
///   [`crate::ErrorKind::DatabaseError`] with the backend error as source.
/// - Returned auth identities carry all their provider identities, oldest first.
///
/// # Capabilities
/// MFA factors and recovery codes ([`MfaStore`]) and verifications
/// ([`VerificationStore`]) are separate traits. A backend that keeps them
/// implements them and answers `Some(self)` from [`IdentityStore::mfa_store`]
/// and [`IdentityStore::verification_store`]:
///
/// ```ignore
/// fn mfa_store(self: Arc<Self>) -> Option<Arc<dyn MfaStore>> {
///     Some(self)
/// }
/// ```
///
/// A backend without them keeps the defaults (`None`): it serves everything
/// but MFA and verifications, and a module configured with `[mfa]` (or
/// `http.auth_verifications_per_actor`) refuses to start on it, with a
/// [`crate::ConfigError`] naming the store and what it lacks.
#[async_trait]
pub trait IdentityStore: Send + Sync + fmt::Debug + 'static {
    /// Creates an auth identity and its provider identities atomically.
    async fn create_auth_identity(&self, new: NewAuthIdentity) -> Result<AuthIdentity>;

    /// The auth identity `id` with its provider identities.
    async fn retrieve_auth_identity(&self, id: &str) -> Result<AuthIdentity>;

    /// The auth identity `id` without secrets (every provider identity's
    /// `provider_metadata` removed, as [`AuthIdentity::redacted`]), shared:
    /// what checking a credential reads. A store that keeps identities in
    /// memory answers it without a copy (the identity caches do); the
    /// default reads [`IdentityStore::retrieve_auth_identity`].
    async fn retrieve_redacted(&self, id: &str) -> Result<Arc<AuthIdentity>> {
        Ok(Arc::new(self.retrieve_auth_identity(id).await?.redacted()))
    }

    /// Replaces the `app_metadata` of auth identity `id`.
    async fn update_app_metadata(
        &self,
        id: &str,
        app_metadata: Option<Metadata>,
    ) -> Result<AuthIdentity>;

    /// Sets (`Some`) or removes (`None`) the one key `key` of the `app_metadata`
    /// of auth identity `id`, atomically: concurrent patches of other keys all
    /// stay. `key` must pass [`valid_app_metadata_key`]
    /// ([`crate::ErrorKind::InvalidData`] otherwise).
    async fn patch_app_metadata(
        &self,
        id: &str,
        key: &str,
        value: Option<Value>,
    ) -> Result<AuthIdentity>;

    /// Merges `patch` into the `app_metadata` of auth identity `id`, top-level
    /// keys only, atomically (one statement or one transaction in the store,
    /// never a read-modify-write in process memory): a key whose value is
    /// `null` is removed, any other value replaces the key's value whole (an
    /// object is not merged into an object, unlike RFC 7396); keys absent from
    /// `patch` are kept, and concurrent patches and merges of other keys all
    /// stay. Answers the identity as it is after the merge.
    ///
    /// Every key must pass [`valid_app_metadata_key`]
    /// ([`crate::ErrorKind::InvalidData`] otherwise, and nothing changes); an
    /// unknown `id` is [`crate::ErrorKind::NotFound`]. Absent `app_metadata`
    /// stays absent when `patch` sets nothing; removing the last key leaves
    /// `{}`. `updated_at` moves on, even for an empty `patch`.
    ///
    /// Default: [`crate::ErrorKind::NotSupported`], for stores written before
    /// it; every store of this workspace implements it.
    async fn merge_app_metadata(&self, id: &str, patch: &Metadata) -> Result<AuthIdentity> {
        let _ = (id, patch);
        Err(crate::Error::new(
            crate::ErrorKind::NotSupported,
            "this identity store cannot merge app_metadata",
        ))
    }

    /// Adds one to the credential version of auth identity `id`, atomically:
    /// every token and session issued before stops being accepted
    /// ("sign out everywhere").
    async fn bump_credential_version(&self, id: &str) -> Result<AuthIdentity>;

    /// Deletes auth identity `id` and its provider identities.
    async fn delete_auth_identity(&self, id: &str) -> Result<()>;

    /// The provider identity known to `provider` as `entity_id`, if any.
    async fn find_provider_identity(
        &self,
        provider: &str,
        entity_id: &str,
    ) -> Result<Option<ProviderIdentity>>;

    /// Adds a provider identity to the existing auth identity `auth_identity_id`.
    async fn add_provider_identity(
        &self,
        auth_identity_id: &str,
        new: NewProviderIdentity,
    ) -> Result<ProviderIdentity>;

    /// Applies `update` to provider identity `id` (by its `provid_` id), all
    /// or nothing: with a precondition that no longer holds it fails with
    /// [`crate::ErrorKind::Conflict`] ([`provider_metadata_changed`]).
    async fn update_provider_identity(
        &self,
        id: &str,
        update: ProviderIdentityUpdate,
    ) -> Result<ProviderIdentity>;

    /// Deletes provider identity `id`; its auth identity stays.
    async fn delete_provider_identity(&self, id: &str) -> Result<()>;

    /// The auth identity that provider identity `id` belongs to, if it
    /// exists. Caches use it to know whose entry a provider-identity deletion
    /// changes. Default: `Ok(None)` ("cannot tell"); a store shared by
    /// replicas behind a shared cache must implement it.
    async fn provider_identity_owner(&self, id: &str) -> Result<Option<String>> {
        let _ = id;
        Ok(None)
    }

    // ----- Capabilities ------------------------------------------------------
    //
    // MFA factors and recovery codes ([`MfaStore`]) and verifications
    // ([`VerificationStore`]) are traits of their own, which a backend
    // implements or not. These accessors say which it has: the module asks
    // once, when it is built, and refuses to start (a `ConfigError`) when the
    // configuration needs one the store lacks (`[mfa]`,
    // `http.auth_verifications_per_actor`). They take the store as an `Arc`
    // so that the answer can be the store itself (`Some(self)`), or, for a
    // wrapper, an object that also holds the wrapper, while the trait stays
    // object safe (`Arc<dyn IdentityStore>` has them).

    /// The store's MFA records ([`MfaStore`]), if it keeps them. Default:
    /// `None`. A backend that implements [`MfaStore`] answers `Some(self)`;
    /// a wrapper answers `Some` only when the store it wraps does.
    fn mfa_store(self: Arc<Self>) -> Option<Arc<dyn MfaStore>> {
        None
    }

    /// The store's verification records ([`VerificationStore`]), if it keeps
    /// them. Default: `None`. A backend that implements
    /// [`VerificationStore`] answers `Some(self)`; a wrapper answers `Some`
    /// only when the store it wraps does.
    fn verification_store(self: Arc<Self>) -> Option<Arc<dyn VerificationStore>> {
        None
    }

    /// The store's passkey credentials ([`PasskeyStore`]), if it keeps them.
    /// Default: `None`. A backend that implements [`PasskeyStore`] answers
    /// `Some(self)`; a wrapper answers `Some` only when the store it wraps
    /// does.
    fn passkey_store(self: Arc<Self>) -> Option<Arc<dyn PasskeyStore>> {
        None
    }

    /// The store's devices ([`DeviceStore`]), if it keeps them. Default:
    /// `None` (then credentials carry no device and devices cannot be
    /// listed). A backend that implements [`DeviceStore`] answers
    /// `Some(self)`; a wrapper answers `Some` only when the store it wraps
    /// does.
    fn device_store(self: Arc<Self>) -> Option<Arc<dyn DeviceStore>> {
        None
    }

    /// The store's audit log ([`AuditStore`]), if it keeps one. Default:
    /// `None` (then `[audit] enabled = true` refuses to start on it). A
    /// backend that implements [`AuditStore`] answers `Some(self)`; a wrapper
    /// answers the wrapped store's.
    fn audit_store(self: Arc<Self>) -> Option<Arc<dyn AuditStore>> {
        None
    }
}

/// Durable storage of devices: a capability of an identity store, reached
/// through [`IdentityStore::device_store`].
///
/// # Contract
/// - Ids are generated by the store with [`crate::generate_id`]
///   ([`crate::DEVICE_PREFIX`]); `created_at` and `last_seen_at` are the
///   store's clock at creation, in whole milliseconds or finer.
/// - Every read and delete is scoped to the owning identity: another
///   identity's device is as absent.
/// - Deleting an auth identity deletes its devices.
/// - Errors are those of [`IdentityStore`]; creating a device of an unknown
///   identity is [`crate::ErrorKind::NotFound`].
#[async_trait]
pub trait DeviceStore: Send + Sync + fmt::Debug + 'static {
    /// Stores a new device.
    async fn create_device(&self, new: NewDevice) -> Result<Device>;

    /// Device `id` of `auth_identity_id`, if it has it.
    async fn device(&self, auth_identity_id: &str, id: &str) -> Result<Option<Device>>;

    /// The devices of `auth_identity_id`, oldest first.
    async fn list_devices(&self, auth_identity_id: &str) -> Result<Vec<Device>>;

    /// Moves `last_seen_at` of device `id` of `auth_identity_id` to `at`,
    /// if that is later; `false` if it has no such device.
    async fn touch_device(
        &self,
        auth_identity_id: &str,
        id: &str,
        at: OffsetDateTime,
    ) -> Result<bool>;

    /// Deletes the devices `ids` of `auth_identity_id`; answers the ids it
    /// had (and deleted), in one atomic write.
    async fn delete_devices(&self, auth_identity_id: &str, ids: &[String]) -> Result<Vec<String>>;

    /// Deletes up to `limit` devices (of any identity) last seen before
    /// `seen_before`; answers their `(auth_identity_id, id)`.
    async fn delete_idle_devices(
        &self,
        seen_before: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<(String, String)>>;

    /// How many devices `auth_identity_id` has, and whether one has this
    /// `user_agent` and `network` (an absent one equal only to an absent
    /// one): what a sign-in asks before adding a device. The default lists
    /// the devices; a database answers it with one aggregate query.
    async fn device_tally(
        &self,
        auth_identity_id: &str,
        user_agent: Option<&str>,
        network: Option<&str>,
    ) -> Result<DeviceTally> {
        let devices = self.list_devices(auth_identity_id).await?;
        let same = devices
            .iter()
            .any(|d| d.user_agent.as_deref() == user_agent && d.network.as_deref() == network);
        Ok(DeviceTally::new(devices.len(), same))
    }

    /// Stores a new device, as [`DeviceStore::create_device`], and answers
    /// with it the [`DeviceStore::device_tally`] of its identity for its user
    /// agent and network just before: what a sign-in asks. The default calls
    /// the two in turn; a database answers both in one statement.
    async fn add_device(&self, new: NewDevice) -> Result<(DeviceTally, Device)> {
        let tally = self
            .device_tally(
                &new.auth_identity_id,
                new.user_agent.as_deref(),
                new.network.as_deref(),
            )
            .await?;
        Ok((tally, self.create_device(new).await?))
    }

    /// Deletes the devices of `auth_identity_id` beyond the `keep` to keep;
    /// answers their ids. Kept first are those used since their sign-in
    /// (`last_seen_at` past `created_at`), then the most recently seen
    /// (ties: the greater id kept). The
    /// default lists the devices and deletes with
    /// [`DeviceStore::delete_devices`]; a database does it in one statement.
    async fn trim_devices(&self, auth_identity_id: &str, keep: usize) -> Result<Vec<String>> {
        let mut devices = self.list_devices(auth_identity_id).await?;
        if devices.len() <= keep {
            return Ok(Vec::new());
        }
        let rank = |d: &Device| (d.used(), d.last_seen_at);
        devices.sort_by(|a, b| (rank(b), &b.id).cmp(&(rank(a), &a.id)));
        let doomed: Vec<String> = devices[keep..].iter().map(|d| d.id.clone()).collect();
        self.delete_devices(auth_identity_id, &doomed).await
    }
}

/// The audit log: an append-only, hash-chained table of the identity store,
/// reached through [`IdentityStore::audit_store`].
///
/// # Contract
/// - [`AuditStore::append_audit`] extends the chain atomically: of
///   concurrent appends (in this process or another one sharing the
///   database), each entry gets the next `seq` (no gaps, no repeats) and
///   follows the hash of the entry before it, built with
///   [`NewAuditEntry::into_entry`] (ids from [`crate::generate_id`] with
///   [`crate::AUDIT_PREFIX`], `at` the store's clock).
/// - Entries are never changed. [`AuditStore::prune_audit`] removes the
///   oldest and, in the same write, records where the chain now starts.
/// - Errors are those of [`IdentityStore`].
#[async_trait]
pub trait AuditStore: Send + Sync + fmt::Debug + 'static {
    /// Appends `entries`, in order; answers them as stored.
    async fn append_audit(&self, entries: Vec<NewAuditEntry>) -> Result<Vec<AuditEntry>>;

    /// The entries `query` selects, newest (highest `seq`) first.
    async fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>>;

    /// Up to `limit` entries with a `seq` above `after_seq`, oldest first:
    /// the chain, walked in pages.
    async fn audit_chain(&self, after_seq: u64, limit: usize) -> Result<Vec<AuditEntry>>;

    /// Where the chain starts: `None` until a sweep removed entries (it
    /// then starts at `seq` 1 after 64 zeros).
    async fn audit_chain_start(&self) -> Result<Option<AuditChainStart>>;

    /// Removes the entries appended before `before`, except the newest
    /// entry of all (the chain's head stays), and records the start of what
    /// is left; answers how many were removed.
    async fn prune_audit(&self, before: OffsetDateTime) -> Result<u64>;
}

/// Durable storage of passkey (WebAuthn) credentials: a capability of an
/// identity store, reached through [`IdentityStore::passkey_store`]. A store
/// that does not implement it serves everything but passkeys, and a module
/// with a passkey provider refuses to start on it.
///
/// # Contract
/// - A credential id is unique per provider: a second
///   [`PasskeyStore::create_passkey`] of one is
///   [`crate::ErrorKind::DuplicateError`], decided atomically by the store.
/// - Deleting an auth identity deletes its passkeys.
/// - [`PasskeyStore::record_passkey_use`] is a compare-and-set on the
///   signature counter: of concurrent uses moving one counter forward,
///   exactly one applies (an authenticator whose counter stays 0 is not
///   told apart: each of its uses applies).
/// - Renaming and deleting are scoped to the owning identity: another
///   identity's passkey is as absent.
/// - Errors are those of [`IdentityStore`].
#[async_trait]
pub trait PasskeyStore: Send + Sync + fmt::Debug + 'static {
    /// Stores a new credential. An unknown auth identity is
    /// [`crate::ErrorKind::NotFound`]; a credential id the provider already
    /// has is [`crate::ErrorKind::DuplicateError`].
    async fn create_passkey(&self, new: NewPasskeyCredential) -> Result<PasskeyCredential>;

    /// The credential `credential_id` of `provider`, if any.
    async fn find_passkey(
        &self,
        provider: &str,
        credential_id: &str,
    ) -> Result<Option<PasskeyCredential>>;

    /// The credentials of `auth_identity_id`, every provider, oldest first.
    async fn list_passkeys(&self, auth_identity_id: &str) -> Result<Vec<PasskeyCredential>>;

    /// The credentials of `provider` registered with `email`, compared
    /// exactly (callers lower-case it, as it was stored), oldest first.
    async fn passkeys_for_email(
        &self,
        provider: &str,
        email: &str,
    ) -> Result<Vec<PasskeyCredential>>;

    /// Records a login signed by credential `id`, if its stored counter is
    /// still `expected_sign_count`, in one conditional write: the counter,
    /// the credential record, the backup flag and `last_used_at` change
    /// together. `Ok(None)` if the counter moved (another login won) or the
    /// credential is gone.
    async fn record_passkey_use(
        &self,
        id: &str,
        expected_sign_count: u32,
        used: PasskeyUse,
    ) -> Result<Option<PasskeyCredential>>;

    /// Renames credential `id` of `auth_identity_id`; `Ok(None)` if it has none.
    async fn rename_passkey(
        &self,
        auth_identity_id: &str,
        id: &str,
        name: &str,
    ) -> Result<Option<PasskeyCredential>>;

    /// Deletes credential `id` of `auth_identity_id`; `false` if it has none.
    async fn delete_passkey(&self, auth_identity_id: &str, id: &str) -> Result<bool>;
}

/// Durable storage of MFA factors and recovery codes: a capability of an
/// identity store, reached through [`IdentityStore::mfa_store`]. A store that
/// does not implement it serves everything but MFA, and a module configured
/// with `[mfa]` refuses to start on it.
///
/// # Contract
/// - The records hang on auth identities of the same store: deleting an auth
///   identity ([`IdentityStore::delete_auth_identity`]) deletes its factors
///   and recovery codes.
/// - Each spend (a TOTP step, a recovery code) is one atomic write of the
///   backend: of concurrent spends, exactly one succeeds.
/// - Errors are those of [`IdentityStore`]: an unknown auth identity is
///   [`crate::ErrorKind::NotFound`], a backend failure
///   [`crate::ErrorKind::DatabaseError`].
#[async_trait]
pub trait MfaStore: Send + Sync + fmt::Debug + 'static {
    /// Creates an auth identity with its provider identities and the MFA
    /// factors `factors`, all in one atomic write (one transaction): an
    /// importer's identity never exists without the factors that protect it,
    /// and a failure stores nothing. Each factor's `auth_identity_id` is
    /// replaced by the new identity's id. With no factor it is
    /// [`IdentityStore::create_auth_identity`]. The errors are those of
    /// [`IdentityStore::create_auth_identity`] and
    /// [`MfaStore::create_mfa_factor`]: a taken factor id, or two active
    /// factors of one provider among `factors`, is
    /// [`crate::ErrorKind::DuplicateError`].
    async fn create_auth_identity_with_mfa(
        &self,
        new: NewAuthIdentity,
        factors: Vec<NewMfaFactor>,
    ) -> Result<AuthIdentity>;

    /// Creates an MFA factor. An identity has at most one active (pending or
    /// enabled) factor per provider: a second is
    /// [`crate::ErrorKind::DuplicateError`], decided atomically by the store.
    /// An unknown auth identity is [`crate::ErrorKind::NotFound`].
    async fn create_mfa_factor(&self, new: NewMfaFactor) -> Result<MfaFactor>;

    /// The MFA factors of `auth_identity_id`, every status, oldest first.
    async fn list_mfa_factors(&self, auth_identity_id: &str) -> Result<Vec<MfaFactor>>;

    /// Applies `update` to factor `id` in one atomic write if its conditions
    /// hold ([`MfaFactorUpdate::applies_to`]); `Ok(None)` if they do not or
    /// the factor does not exist. Of concurrent updates spending the same
    /// TOTP step, exactly one applies. Making a factor active again while
    /// another of its provider is active is
    /// [`crate::ErrorKind::DuplicateError`], as on creation.
    async fn update_mfa_factor(
        &self,
        id: &str,
        update: MfaFactorUpdate,
    ) -> Result<Option<MfaFactor>>;

    /// Replaces every recovery-code hash of `auth_identity_id` with `hashes`,
    /// atomically (empty: deletes them all).
    async fn replace_recovery_codes(
        &self,
        auth_identity_id: &str,
        hashes: Vec<String>,
    ) -> Result<()>;

    /// Spends the recovery code of `auth_identity_id` whose hash is one of
    /// `candidates` (the code's hash under each key), atomically: `true` for
    /// exactly one of concurrent spends of one code.
    async fn consume_recovery_code(
        &self,
        auth_identity_id: &str,
        candidates: &[String],
    ) -> Result<bool>;

    /// How many unspent recovery codes `auth_identity_id` has.
    async fn count_recovery_codes(&self, auth_identity_id: &str) -> Result<u64>;
}

/// Durable storage of verifications (an identity proving it controls an
/// email address by a code): a capability of an identity store, reached
/// through [`IdentityStore::verification_store`]. A store that does not
/// implement it serves everything but verifications, and a module configured
/// with `http.auth_verifications_per_actor` refuses to start on it.
///
/// # Contract
/// - Deleting an auth identity ([`IdentityStore::delete_auth_identity`])
///   deletes its verifications.
/// - A confirmation is one conditional write: of concurrent confirmations of
///   one code, exactly one succeeds.
/// - Errors are those of [`IdentityStore`].
#[async_trait]
pub trait VerificationStore: Send + Sync + fmt::Debug + 'static {
    /// Records a verification code request. One row per (identity,
    /// `entity_id`, `entity_type`): a pending row takes the new code, times
    /// and metadata; a verified row is answered unchanged (its `code_hash`
    /// then differs from `new.code_hash`, which says no code was stored).
    /// An unknown auth identity is [`crate::ErrorKind::NotFound`].
    async fn request_verification(&self, new: NewVerification) -> Result<Verification>;

    /// The verification row of (`auth_identity_id`, `entity_id`,
    /// `entity_type`), if any.
    async fn find_verification(
        &self,
        auth_identity_id: &str,
        entity_id: &str,
        entity_type: &str,
    ) -> Result<Option<Verification>>;

    /// Confirms the pending row whose code hash is `code_hash`, in one
    /// conditional write: only if its `code_provider` is `code_provider` and
    /// it has not expired at `now`. The row then has `verified_at = now` and
    /// no code. `Ok(None)` if nothing matched (see
    /// [`VerificationStore::verification_by_code`] for why).
    async fn confirm_verification(
        &self,
        code_hash: &str,
        code_provider: &str,
        now: time::OffsetDateTime,
    ) -> Result<Option<Verification>>;

    /// The row whose pending code hash is `code_hash`, if any.
    async fn verification_by_code(&self, code_hash: &str) -> Result<Option<Verification>>;
}

/// What the module answers for MFA or verification records when its
/// identity store keeps none (no [`MfaStore`] or [`VerificationStore`]).
pub(crate) fn lacks_mfa() -> crate::Error {
    crate::Error::new(
        crate::ErrorKind::NotSupported,
        "this identity store does not keep MFA factors or verifications",
    )
}

/// Short-lived keyed JSON values with a time to live: OAuth state, sessions,
/// single-use marks, counters.
///
/// # Contract
/// - A value is gone once its TTL has passed (`get` and `take` answer `None`).
/// - `take` returns and removes a value atomically: of many concurrent `take`s of
///   one key, exactly one gets it.
/// - `set` replaces any previous value and TTL.
/// - `increment` is atomic: `n` concurrent increments by 1 of a fresh key end
///   at exactly `n`. The TTL is set when the counter is created (first
///   increment, or the first after it expired) and later increments do not
///   extend it: a fixed window, the same on every backend.
/// - `compare_and_swap` is atomic: of concurrent swaps from one expected
///   value, exactly one succeeds.
#[async_trait]
pub trait StateStore: Send + Sync + fmt::Debug + 'static {
    /// Stores `value` under `key` for `ttl`.
    async fn set(&self, key: &str, value: Value, ttl: Duration) -> Result<()>;

    /// The live value under `key`.
    async fn get(&self, key: &str) -> Result<Option<Value>>;

    /// Returns and removes the live value under `key`, atomically.
    async fn take(&self, key: &str) -> Result<Option<Value>>;

    /// Removes `key`; `true` if a live value was there.
    async fn delete(&self, key: &str) -> Result<bool>;

    /// Adds `by` to the counter under `key` and answers its new value. A
    /// missing or expired counter starts from 0 and lives `ttl` from now;
    /// a live one keeps its expiry. `get` reads a counter as a JSON number.
    async fn increment(&self, key: &str, by: u64, ttl: Duration) -> Result<u64>;

    /// Replaces the live value under `key` with `new` (`None` removes it)
    /// only if it is `expected` (`None`: no live value), atomically; `true`
    /// if it did. A new value lives `ttl`. Values compare as JSON values.
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&Value>,
        new: Option<Value>,
        ttl: Duration,
    ) -> Result<bool>;

    /// Adds 1 to each counter of `counters` (a key, and the window a new
    /// counter lives), as [`StateStore::increment`] does to each; their new
    /// values, in order. One round trip where the store can (the rate limits
    /// take several counters per try); each counter changes atomically, the
    /// set of them need not. The keys are distinct.
    async fn increment_each(&self, counters: &[(&str, Duration)]) -> Result<Vec<u64>> {
        let mut values = Vec::with_capacity(counters.len());
        for (key, window) in counters {
            values.push(self.increment(key, 1, *window).await?);
        }
        Ok(values)
    }

    /// Takes 1 off each live counter of `counters`, ending one that reaches
    /// 0 (it reads as absent, and its next increment starts a new window),
    /// and ends the live value under `clear`; missing and expired counters
    /// stay so. One round trip where the store can; each counter changes
    /// atomically. The keys are distinct. The default reads each counter and
    /// swaps it ([`StateStore::compare_and_swap`]), again while concurrent
    /// changes win, so a counter given back this way lives `window` anew.
    async fn give_back_each(
        &self,
        counters: &[(&str, Duration)],
        clear: Option<&str>,
    ) -> Result<()> {
        if let Some(clear) = clear {
            self.delete(clear).await?;
        }
        'counters: for (key, window) in counters {
            for _ in 0..GIVE_BACK_ATTEMPTS {
                let Some(current) = self.get(key).await? else {
                    continue 'counters;
                };
                let Some(n) = current.as_u64() else {
                    continue 'counters;
                };
                let next = (n > 1).then(|| Value::from(n - 1));
                if self
                    .compare_and_swap(key, Some(&current), next, *window)
                    .await?
                {
                    continue 'counters;
                }
                tokio::task::yield_now().await;
            }
            tracing::warn!("a counter could not be given back: it kept changing");
        }
        Ok(())
    }
}

/// How often [`StateStore::give_back_each`]'s default retries one counter
/// when concurrent changes win the compare-and-swap first: a failed swap
/// means another change succeeded, so this bound is met only by a counter
/// changed without pause.
const GIVE_BACK_ATTEMPTS: usize = 1000;

// A shared store is a store: lets one instance serve several roles (e.g. a
// SQL database as both identity and state store, or behind a cache), with
// the capabilities of the store it shares.
#[async_trait]
impl<T: IdentityStore + ?Sized> IdentityStore for Arc<T> {
    async fn create_auth_identity(&self, new: NewAuthIdentity) -> Result<AuthIdentity> {
        (**self).create_auth_identity(new).await
    }

    async fn retrieve_auth_identity(&self, id: &str) -> Result<AuthIdentity> {
        (**self).retrieve_auth_identity(id).await
    }

    async fn retrieve_redacted(&self, id: &str) -> Result<Arc<AuthIdentity>> {
        (**self).retrieve_redacted(id).await
    }

    async fn update_app_metadata(
        &self,
        id: &str,
        app_metadata: Option<Metadata>,
    ) -> Result<AuthIdentity> {
        (**self).update_app_metadata(id, app_metadata).await
    }

    async fn patch_app_metadata(
        &self,
        id: &str,
        key: &str,
        value: Option<Value>,
    ) -> Result<AuthIdentity> {
        (**self).patch_app_metadata(id, key, value).await
    }

    async fn merge_app_metadata(&self, id: &str, patch: &Metadata) -> Result<AuthIdentity> {
        (**self).merge_app_metadata(id, patch).await
    }

    async fn bump_credential_version(&self, id: &str) -> Result<AuthIdentity> {
        (**self).bump_credential_version(id).await
    }

    async fn delete_auth_identity(&self, id: &str) -> Result<()> {
        (**self).delete_auth_identity(id).await
    }

    async fn find_provider_identity(
        &self,
        provider: &str,
        entity_id: &str,
    ) -> Result<Option<ProviderIdentity>> {
        (**self).find_provider_identity(provider, entity_id).await
    }

    async fn add_provider_identity(
        &self,
        auth_identity_id: &str,
        new: NewProviderIdentity,
    ) -> Result<ProviderIdentity> {
        (**self).add_provider_identity(auth_identity_id, new).await
    }

    async fn update_provider_identity(
        &self,
        id: &str,
        update: ProviderIdentityUpdate,
    ) -> Result<ProviderIdentity> {
        (**self).update_provider_identity(id, update).await
    }

    async fn delete_provider_identity(&self, id: &str) -> Result<()> {
        (**self).delete_provider_identity(id).await
    }

    async fn provider_identity_owner(&self, id: &str) -> Result<Option<String>> {
        (**self).provider_identity_owner(id).await
    }

    fn mfa_store(self: Arc<Self>) -> Option<Arc<dyn MfaStore>> {
        T::mfa_store(Arc::clone(&*self))
    }

    fn verification_store(self: Arc<Self>) -> Option<Arc<dyn VerificationStore>> {
        T::verification_store(Arc::clone(&*self))
    }

    fn passkey_store(self: Arc<Self>) -> Option<Arc<dyn PasskeyStore>> {
        T::passkey_store(Arc::clone(&*self))
    }

    fn device_store(self: Arc<Self>) -> Option<Arc<dyn DeviceStore>> {
        T::device_store(Arc::clone(&*self))
    }

    fn audit_store(self: Arc<Self>) -> Option<Arc<dyn AuditStore>> {
        T::audit_store(Arc::clone(&*self))
    }
}

/// A shared state store is a state store.
#[async_trait]
impl<T: StateStore + ?Sized> StateStore for Arc<T> {
    async fn set(&self, key: &str, value: Value, ttl: Duration) -> Result<()> {
        (**self).set(key, value, ttl).await
    }

    async fn get(&self, key: &str) -> Result<Option<Value>> {
        (**self).get(key).await
    }

    async fn take(&self, key: &str) -> Result<Option<Value>> {
        (**self).take(key).await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        (**self).delete(key).await
    }

    async fn increment(&self, key: &str, by: u64, ttl: Duration) -> Result<u64> {
        (**self).increment(key, by, ttl).await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&Value>,
        new: Option<Value>,
        ttl: Duration,
    ) -> Result<bool> {
        (**self).compare_and_swap(key, expected, new, ttl).await
    }

    async fn increment_each(&self, counters: &[(&str, Duration)]) -> Result<Vec<u64>> {
        (**self).increment_each(counters).await
    }

    async fn give_back_each(
        &self,
        counters: &[(&str, Duration)],
        clear: Option<&str>,
    ) -> Result<()> {
        (**self).give_back_each(counters, clear).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        AuthModule, CachedIdentityStore, Config, ErrorKind, MemoryIdentityStore, MemoryStateStore,
        SharedIdentityCache, VerificationRule,
    };

    /// An identity store without capabilities: the core methods of a memory
    /// store, and the accessors' defaults.
    #[derive(Debug, Default)]
    struct Plain(MemoryIdentityStore);

    #[async_trait]
    impl IdentityStore for Plain {
        async fn create_auth_identity(&self, new: NewAuthIdentity) -> Result<AuthIdentity> {
            self.0.create_auth_identity(new).await
        }
        async fn retrieve_auth_identity(&self, id: &str) -> Result<AuthIdentity> {
            self.0.retrieve_auth_identity(id).await
        }
        async fn update_app_metadata(
            &self,
            id: &str,
            app_metadata: Option<Metadata>,
        ) -> Result<AuthIdentity> {
            self.0.update_app_metadata(id, app_metadata).await
        }
        async fn patch_app_metadata(
            &self,
            id: &str,
            key: &str,
            value: Option<Value>,
        ) -> Result<AuthIdentity> {
            self.0.patch_app_metadata(id, key, value).await
        }
        async fn bump_credential_version(&self, id: &str) -> Result<AuthIdentity> {
            self.0.bump_credential_version(id).await
        }
        async fn delete_auth_identity(&self, id: &str) -> Result<()> {
            self.0.delete_auth_identity(id).await
        }
        async fn find_provider_identity(
            &self,
            provider: &str,
            entity_id: &str,
        ) -> Result<Option<ProviderIdentity>> {
            self.0.find_provider_identity(provider, entity_id).await
        }
        async fn add_provider_identity(
            &self,
            auth_identity_id: &str,
            new: NewProviderIdentity,
        ) -> Result<ProviderIdentity> {
            self.0.add_provider_identity(auth_identity_id, new).await
        }
        async fn update_provider_identity(
            &self,
            id: &str,
            update: ProviderIdentityUpdate,
        ) -> Result<ProviderIdentity> {
            self.0.update_provider_identity(id, update).await
        }
        async fn delete_provider_identity(&self, id: &str) -> Result<()> {
            self.0.delete_provider_identity(id).await
        }
    }

    /// Whether `store` answers `(mfa_store, verification_store)`.
    fn capabilities<S: IdentityStore>(store: S) -> (bool, bool) {
        let store = Arc::new(store);
        (
            Arc::clone(&store).mfa_store().is_some(),
            store.verification_store().is_some(),
        )
    }

    fn shared<S: IdentityStore>(inner: S) -> SharedIdentityCache<S> {
        SharedIdentityCache::new(
            inner,
            Arc::new(MemoryStateStore::new()),
            16,
            Duration::from_secs(60),
        )
    }

    #[test]
    fn wrappers_have_the_capabilities_of_the_store_they_wrap() {
        assert_eq!(capabilities(MemoryIdentityStore::new()), (true, true));
        assert_eq!(capabilities(Plain::default()), (false, false));
        assert_eq!(
            capabilities(Arc::new(MemoryIdentityStore::new())),
            (true, true)
        );
        let shared_dyn: Arc<dyn IdentityStore> = Arc::new(Plain::default());
        assert_eq!(capabilities(shared_dyn), (false, false));
        assert_eq!(
            capabilities(CachedIdentityStore::new(MemoryIdentityStore::new(), 16)),
            (true, true)
        );
        assert_eq!(
            capabilities(CachedIdentityStore::new(Plain::default(), 16)),
            (false, false)
        );
        assert_eq!(
            capabilities(shared(MemoryIdentityStore::new())),
            (true, true)
        );
        assert_eq!(capabilities(shared(Plain::default())), (false, false));
        assert_eq!(
            capabilities(CachedIdentityStore::new(
                Arc::new(shared(MemoryIdentityStore::new())),
                16
            )),
            (true, true)
        );
    }

    /// A factor created or changed through a cache's `MfaStore` forgets the
    /// cached identity: its `mfa_enabled` follows at once.
    #[tokio::test]
    async fn a_cache_forgets_an_identity_whose_factor_changed() {
        let cache = Arc::new(CachedIdentityStore::new(MemoryIdentityStore::new(), 16));
        let mfa = Arc::clone(&cache).mfa_store().expect("MFA records");
        let id = cache
            .create_auth_identity(NewAuthIdentity::new())
            .await
            .unwrap()
            .id;
        let read = || async { cache.retrieve_auth_identity(&id).await.unwrap() };
        assert_eq!(read().await.mfa_enabled, Some(false));
        let factor = mfa
            .create_mfa_factor(
                NewMfaFactor::new(&id, "totp", "s").status(crate::MfaFactorStatus::Enabled),
            )
            .await
            .unwrap();
        assert_eq!(read().await.mfa_enabled, Some(true));
        mfa.update_mfa_factor(
            &factor.id,
            MfaFactorUpdate::new().status(crate::MfaFactorStatus::Disabled),
        )
        .await
        .unwrap()
        .expect("updated");
        assert_eq!(read().await.mfa_enabled, Some(false));
    }

    /// A provider kind that logs nobody in: rules need a configured provider.
    #[derive(Debug)]
    struct Nobody;

    #[derive(serde::Deserialize)]
    struct NoOptions {}

    impl crate::ValidateOptions for NoOptions {}

    impl crate::ProviderKind for Nobody {
        const IDENTIFIER: &'static str = "nobody";
        const DISPLAY_NAME: &'static str = "Nobody";
        const FLOW: crate::ProviderFlow = crate::ProviderFlow::Credentials;
        type Options = NoOptions;
        fn new(
            _: crate::ProviderInit<NoOptions>,
        ) -> std::result::Result<Self, crate::OptionsError> {
            Ok(Nobody)
        }
    }

    #[async_trait]
    impl crate::AuthProvider for Nobody {
        async fn authenticate(
            &self,
            _: crate::AuthRequest,
            _: &crate::ProviderIdentities,
        ) -> Result<crate::AuthOutcome> {
            Ok(crate::AuthOutcome::failed("nobody"))
        }
    }

    static NOBODY: crate::ProviderRegistration = crate::ProviderRegistration::of::<Nobody>();

    fn config(extra: &str) -> Config {
        Config::from_toml_str(&format!(
            "[store]\nurl = \"memory://\"\n[state]\nurl = \"memory://\"\n\
             [audit]\nenabled = false\n\
             [[providers]]\nresolve = \"nobody\"\nid = \"nobody\"\n{extra}"
        ))
        .unwrap()
    }

    fn builder(config: Config) -> crate::AuthModuleBuilder {
        AuthModule::builder()
            .registry(crate::Registry::empty().with(&NOBODY))
            .config(config)
    }

    const MFA: &str = "[mfa]\nencryption_key = \"an encryption key of at least 32 chars\"\n";

    fn build(
        store: Arc<dyn IdentityStore>,
        config: Config,
    ) -> std::result::Result<AuthModule, String> {
        builder(config)
            .identity_store(store)
            .build()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn mfa_needs_a_store_with_mfa_records_at_start_up() {
        let err = build(Arc::new(Plain::default()), config(MFA)).unwrap_err();
        assert!(
            err.contains(
                "[mfa]: the identity store keeps no MFA factors; use a store that implements MfaStore"
            ),
            "{err}"
        );
        // Behind a cache, the same.
        let cached = CachedIdentityStore::new(Plain::default(), 16);
        let err = build(Arc::new(cached), config(MFA)).unwrap_err();
        assert!(err.contains("keeps no MFA factors"), "{err}");
        assert!(build(Arc::new(MemoryIdentityStore::new()), config(MFA)).is_ok());
        assert!(
            build(
                Arc::new(CachedIdentityStore::new(MemoryIdentityStore::new(), 16)),
                config(MFA)
            )
            .is_ok()
        );
    }

    /// A provider kind that keeps passkeys (and logs nobody in).
    #[derive(Debug)]
    struct Keeper;

    impl crate::ProviderKind for Keeper {
        const IDENTIFIER: &'static str = "keeper";
        const DISPLAY_NAME: &'static str = "Keeper";
        const FLOW: crate::ProviderFlow = crate::ProviderFlow::Challenge;
        const NEEDS_PASSKEY_STORE: bool = true;
        type Options = NoOptions;
        fn new(
            _: crate::ProviderInit<NoOptions>,
        ) -> std::result::Result<Self, crate::OptionsError> {
            Ok(Keeper)
        }
    }

    #[async_trait]
    impl crate::AuthProvider for Keeper {
        async fn authenticate(
            &self,
            _: crate::AuthRequest,
            _: &crate::ProviderIdentities,
        ) -> Result<crate::AuthOutcome> {
            Ok(crate::AuthOutcome::failed("nobody"))
        }
    }

    static KEEPER: crate::ProviderRegistration = crate::ProviderRegistration::of::<Keeper>();

    #[test]
    fn a_passkey_provider_needs_a_store_with_passkeys_at_start_up() {
        let build = |store: Arc<dyn IdentityStore>| {
            AuthModule::builder()
                .registry(crate::Registry::empty().with(&NOBODY).with(&KEEPER))
                .config(config("[[providers]]\nresolve = \"keeper\"\nid = \"pk\"\n"))
                .identity_store(store)
                .build()
                .map_err(|e| e.to_string())
        };
        let err = build(Arc::new(Plain::default())).unwrap_err();
        assert!(
            err.contains(
                "providers[1] \"pk\": the identity store keeps no passkeys; use a store that implements PasskeyStore"
            ),
            "{err}"
        );
        let cached = CachedIdentityStore::new(Plain::default(), 16);
        assert!(build(Arc::new(cached)).is_err());
        assert!(build(Arc::new(MemoryIdentityStore::new())).is_ok());
        assert!(
            build(Arc::new(CachedIdentityStore::new(
                MemoryIdentityStore::new(),
                16
            )))
            .is_ok()
        );
        // Without such a provider, a store without passkeys is fine.
        assert!(
            builder(config(""))
                .identity_store(Arc::new(Plain::default()))
                .build()
                .is_ok()
        );
    }

    #[test]
    fn the_audit_log_needs_a_store_that_keeps_one_at_start_up() {
        let on = || {
            Config::from_toml_str(
                "[store]\nurl = \"memory://\"\n[state]\nurl = \"memory://\"\n\
                 [[providers]]\nresolve = \"nobody\"\nid = \"nobody\"\n",
            )
            .unwrap()
        };
        let err = build(Arc::new(Plain::default()), on()).unwrap_err();
        assert!(
            err.contains("[audit]: the identity store keeps no audit log"),
            "{err}"
        );
        let cached = CachedIdentityStore::new(MemoryIdentityStore::new(), 16);
        let module = build(Arc::new(cached), on()).unwrap();
        assert!(module.audit().enabled());
        assert!(module.device_store().is_some());
        let plain = build(Arc::new(Plain::default()), config("")).unwrap();
        assert!(!plain.audit().enabled());
        assert!(plain.device_store().is_none());
    }

    #[test]
    fn verification_rules_need_a_store_with_verification_records_at_start_up() {
        let with_rule = || {
            builder(config(""))
                .verifications_for_actor("customer", &[VerificationRule::new("email", "nobody")])
        };
        let err = with_rule()
            .identity_store(Arc::new(Plain::default()))
            .build()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "http.auth_verifications_per_actor: the identity store keeps no verifications; \
                 use a store that implements VerificationStore"
            ),
            "{err}"
        );
        assert!(
            with_rule()
                .identity_store(Arc::new(MemoryIdentityStore::new()))
                .build()
                .is_ok()
        );
        // No rule: nothing needs the records.
        assert!(
            builder(config(""))
                .verifications_for_actor("customer", &[])
                .identity_store(Arc::new(Plain::default()))
                .build()
                .is_ok()
        );
    }

    /// Without `[mfa]` or rules, a store without capabilities serves the
    /// rest, and the MFA and verification methods answer as they always did:
    /// no factors, and `NotSupported` for what would write a record.
    #[tokio::test]
    async fn without_capabilities_mfa_and_verification_answer_as_before() {
        let module = build(Arc::new(Plain::default()), config("")).unwrap();
        let id = module
            .identity_store()
            .create_auth_identity(NewAuthIdentity::new())
            .await
            .unwrap()
            .id;
        assert_eq!(module.mfa().list_factors(&id).await.unwrap(), []);
        let identity = module
            .identity_store()
            .retrieve_auth_identity(&id)
            .await
            .unwrap();
        assert_eq!(
            module.mfa().challenge(&identity, "nobody").await.unwrap(),
            None
        );
        let e = module
            .verifications()
            .request(&id, "a@example.test", "email", None, None)
            .await
            .unwrap_err();
        assert_eq!(
            (e.kind(), e.message()),
            (
                ErrorKind::NotSupported,
                "this identity store does not keep MFA factors or verifications"
            )
        );
        let e = module
            .verifications()
            .confirm("code", None)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotSupported);
        assert_eq!(
            module
                .verifications()
                .pending(&identity, "customer", "nobody")
                .await
                .unwrap(),
            None
        );
    }
}
