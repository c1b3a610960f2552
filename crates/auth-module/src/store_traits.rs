//! Storage contracts: [`IdentityStore`] for durable identities and
//! [`StateStore`] for short-lived keyed values.
//!
//! Implementations live in their own crates (SQL, Redis); this crate ships
//! in-memory ones ([`crate::memory`]). Every implementation must pass the same
//! behaviour: the workspace's conformance tests run each of them.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::error::Result;
use crate::model::{
    AuthIdentity, Metadata, NewProviderIdentity, ProviderIdentity, ProviderIdentityUpdate,
};
use crate::records::{MfaFactor, MfaFactorUpdate, NewMfaFactor, NewVerification, Verification};

/// An `#[async_trait]` impl of [`IdentityStore`] with the items given, plus
/// the MFA and verification methods calling the same methods on
/// `self.$via()` (wrappers and caches: these records are never cached).
/// With `then $changed`, a factor created or changed is followed by
/// `self.$changed(auth_identity_id)` (a cache forgets the identity, whose
/// [`crate::AuthIdentity::mfa_enabled`] may have changed).
macro_rules! identity_store_impl {
    ([$($header:tt)*] via $via:ident $(then $changed:ident)?; $($body:tt)*) => {
        #[async_trait::async_trait]
        $($header)* {
        $($body)*
        async fn create_auth_identity_with_mfa(
            &self,
            new: $crate::store_traits::NewAuthIdentity,
            factors: Vec<$crate::records::NewMfaFactor>,
        ) -> $crate::Result<$crate::model::AuthIdentity> {
            // A new identity: nobody can have cached it.
            self.$via().create_auth_identity_with_mfa(new, factors).await
        }

        async fn create_mfa_factor(
            &self,
            new: $crate::records::NewMfaFactor,
        ) -> $crate::Result<$crate::records::MfaFactor> {
            let factor = self.$via().create_mfa_factor(new).await?;
            $(self.$changed(&factor.auth_identity_id).await?;)?
            Ok(factor)
        }

        async fn list_mfa_factors(
            &self,
            auth_identity_id: &str,
        ) -> $crate::Result<Vec<$crate::records::MfaFactor>> {
            self.$via().list_mfa_factors(auth_identity_id).await
        }

        async fn update_mfa_factor(
            &self,
            id: &str,
            update: $crate::records::MfaFactorUpdate,
        ) -> $crate::Result<Option<$crate::records::MfaFactor>> {
            let factor = self.$via().update_mfa_factor(id, update).await?;
            $(if let Some(f) = &factor {
                self.$changed(&f.auth_identity_id).await?;
            })?
            Ok(factor)
        }

        async fn replace_recovery_codes(
            &self,
            auth_identity_id: &str,
            hashes: Vec<String>,
        ) -> $crate::Result<()> {
            self.$via().replace_recovery_codes(auth_identity_id, hashes).await
        }

        async fn consume_recovery_code(
            &self,
            auth_identity_id: &str,
            candidates: &[String],
        ) -> $crate::Result<bool> {
            self.$via().consume_recovery_code(auth_identity_id, candidates).await
        }

        async fn count_recovery_codes(&self, auth_identity_id: &str) -> $crate::Result<u64> {
            self.$via().count_recovery_codes(auth_identity_id).await
        }

        async fn request_verification(
            &self,
            new: $crate::records::NewVerification,
        ) -> $crate::Result<$crate::records::Verification> {
            self.$via().request_verification(new).await
        }

        async fn find_verification(
            &self,
            auth_identity_id: &str,
            entity_id: &str,
            entity_type: &str,
        ) -> $crate::Result<Option<$crate::records::Verification>> {
            self.$via()
                .find_verification(auth_identity_id, entity_id, entity_type)
                .await
        }

        async fn confirm_verification(
            &self,
            code_hash: &str,
            code_provider: &str,
            now: time::OffsetDateTime,
        ) -> $crate::Result<Option<$crate::records::Verification>> {
            self.$via()
                .confirm_verification(code_hash, code_provider, now)
                .await
        }

        async fn verification_by_code(
            &self,
            code_hash: &str,
        ) -> $crate::Result<Option<$crate::records::Verification>> {
            self.$via().verification_by_code(code_hash).await
        }
        }
    };
}
pub(crate) use identity_store_impl;

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
///   `create_auth_identity_with_mfa`, MFA factors) is atomic.
/// - Deleting an auth identity deletes its provider identities.
/// - A missing record is [`crate::ErrorKind::NotFound`]; a backend failure is
///   [`crate::ErrorKind::DatabaseError`] with the backend error as source.
/// - Returned auth identities carry all their provider identities, oldest first.
#[async_trait]
pub trait IdentityStore: Send + Sync + fmt::Debug + 'static {
    /// Creates an auth identity and its provider identities atomically.
    async fn create_auth_identity(&self, new: NewAuthIdentity) -> Result<AuthIdentity>;

    /// The auth identity `id` with its provider identities.
    async fn retrieve_auth_identity(&self, id: &str) -> Result<AuthIdentity>;

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

    // ----- MFA factors, recovery codes, verifications ----------------------
    //
    // Stores that predate MFA keep compiling: these answer
    // `ErrorKind::NotSupported` unless implemented. Deleting an auth identity
    // deletes its factors, recovery codes and verifications.

    /// Creates an auth identity with its provider identities and the MFA
    /// factors `factors`, all in one atomic write (one transaction): an
    /// importer's identity never exists without the factors that protect it,
    /// and a failure stores nothing. Each factor's `auth_identity_id` is
    /// replaced by the new identity's id. The errors are those of
    /// [`IdentityStore::create_auth_identity`] and
    /// [`IdentityStore::create_mfa_factor`]: a taken factor id, or two active
    /// factors of one provider among `factors`, is
    /// [`crate::ErrorKind::DuplicateError`].
    ///
    /// Default: `create_auth_identity` when `factors` is empty, else
    /// [`crate::ErrorKind::NotSupported`].
    async fn create_auth_identity_with_mfa(
        &self,
        new: NewAuthIdentity,
        factors: Vec<NewMfaFactor>,
    ) -> Result<AuthIdentity> {
        if factors.is_empty() {
            return self.create_auth_identity(new).await;
        }
        Err(lacks_mfa())
    }

    /// Creates an MFA factor. An identity has at most one active (pending or
    /// enabled) factor per provider: a second is
    /// [`crate::ErrorKind::DuplicateError`], decided atomically by the store.
    /// An unknown auth identity is [`crate::ErrorKind::NotFound`].
    async fn create_mfa_factor(&self, new: NewMfaFactor) -> Result<MfaFactor> {
        let _ = new;
        Err(lacks_mfa())
    }

    /// The MFA factors of `auth_identity_id`, every status, oldest first.
    async fn list_mfa_factors(&self, auth_identity_id: &str) -> Result<Vec<MfaFactor>> {
        let _ = auth_identity_id;
        Err(lacks_mfa())
    }

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
    ) -> Result<Option<MfaFactor>> {
        let _ = (id, update);
        Err(lacks_mfa())
    }

    /// Replaces every recovery-code hash of `auth_identity_id` with `hashes`,
    /// atomically (empty: deletes them all).
    async fn replace_recovery_codes(
        &self,
        auth_identity_id: &str,
        hashes: Vec<String>,
    ) -> Result<()> {
        let _ = (auth_identity_id, hashes);
        Err(lacks_mfa())
    }

    /// Spends the recovery code of `auth_identity_id` whose hash is one of
    /// `candidates` (the code's hash under each key), atomically: `true` for
    /// exactly one of concurrent spends of one code.
    async fn consume_recovery_code(
        &self,
        auth_identity_id: &str,
        candidates: &[String],
    ) -> Result<bool> {
        let _ = (auth_identity_id, candidates);
        Err(lacks_mfa())
    }

    /// How many unspent recovery codes `auth_identity_id` has.
    async fn count_recovery_codes(&self, auth_identity_id: &str) -> Result<u64> {
        let _ = auth_identity_id;
        Err(lacks_mfa())
    }

    /// Records a verification code request. One row per (identity,
    /// `entity_id`, `entity_type`): a pending row takes the new code, times
    /// and metadata; a verified row is answered unchanged (its `code_hash`
    /// then differs from `new.code_hash`, which says no code was stored).
    /// An unknown auth identity is [`crate::ErrorKind::NotFound`].
    async fn request_verification(&self, new: NewVerification) -> Result<Verification> {
        let _ = new;
        Err(lacks_mfa())
    }

    /// The verification row of (`auth_identity_id`, `entity_id`,
    /// `entity_type`), if any.
    async fn find_verification(
        &self,
        auth_identity_id: &str,
        entity_id: &str,
        entity_type: &str,
    ) -> Result<Option<Verification>> {
        let _ = (auth_identity_id, entity_id, entity_type);
        Err(lacks_mfa())
    }

    /// Confirms the pending row whose code hash is `code_hash`, in one
    /// conditional write: only if its `code_provider` is `code_provider` and
    /// it has not expired at `now`. The row then has `verified_at = now` and
    /// no code. `Ok(None)` if nothing matched (see
    /// [`IdentityStore::verification_by_code`] for why).
    async fn confirm_verification(
        &self,
        code_hash: &str,
        code_provider: &str,
        now: time::OffsetDateTime,
    ) -> Result<Option<Verification>> {
        let _ = (code_hash, code_provider, now);
        Err(lacks_mfa())
    }

    /// The row whose pending code hash is `code_hash`, if any.
    async fn verification_by_code(&self, code_hash: &str) -> Result<Option<Verification>> {
        let _ = code_hash;
        Err(lacks_mfa())
    }
}

/// What a store that does not keep MFA and verification records answers.
fn lacks_mfa() -> crate::Error {
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
}

// A shared store is a store: lets one instance serve several roles (e.g. a
// SQL database as both identity and state store, or behind a cache).
identity_store_impl! {
[impl<T: IdentityStore + ?Sized> IdentityStore for std::sync::Arc<T>] via as_ref;
    async fn create_auth_identity(&self, new: NewAuthIdentity) -> Result<AuthIdentity> {
        (**self).create_auth_identity(new).await
    }

    async fn retrieve_auth_identity(&self, id: &str) -> Result<AuthIdentity> {
        (**self).retrieve_auth_identity(id).await
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

}

/// A shared state store is a state store.
#[async_trait]
impl<T: StateStore + ?Sized> StateStore for std::sync::Arc<T> {
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
}
