//! The records of multi-factor authentication, verification and passkeys
//! that the identity store keeps beside identities: MFA factors,
//! recovery-code hashes (no record type: a list of keyed hashes),
//! verification rows and passkey credentials.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::model::Metadata;

/// Prefix of MFA factor ids.
pub const MFA_FACTOR_PREFIX: &str = "authmfa";
/// Prefix of verification ids.
pub const VERIFICATION_PREFIX: &str = "authver";

/// Where an MFA factor stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MfaFactorStatus {
    /// Created, its first code not yet verified.
    Pending,
    /// In use: logins are challenged.
    Enabled,
    /// Turned off; kept for the record.
    Disabled,
}

impl MfaFactorStatus {
    /// `pending`, `enabled` or `disabled`.
    pub const fn as_str(self) -> &'static str {
        match self {
            MfaFactorStatus::Pending => "pending",
            MfaFactorStatus::Enabled => "enabled",
            MfaFactorStatus::Disabled => "disabled",
        }
    }

    /// The status named `s` (as [`MfaFactorStatus::as_str`] writes it).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(MfaFactorStatus::Pending),
            "enabled" => Some(MfaFactorStatus::Enabled),
            "disabled" => Some(MfaFactorStatus::Disabled),
            _ => None,
        }
    }

    /// Whether a factor in this status counts as the identity's active one
    /// (at most one per identity and provider).
    pub const fn is_active(self) -> bool {
        matches!(self, MfaFactorStatus::Pending | MfaFactorStatus::Enabled)
    }
}

/// One MFA factor of an auth identity.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct MfaFactor {
    /// `authmfa_…`
    pub id: String,
    /// The auth identity it protects.
    pub auth_identity_id: String,
    /// The factor kind (`totp`).
    pub provider: String,
    /// Where it stands.
    pub status: MfaFactorStatus,
    /// The secret, sealed with [`crate::mfa::MfaKeys`]; never shown.
    pub secret: String,
    /// The factor's metadata (its `label`, ...).
    pub metadata: Option<Metadata>,
    /// The last TOTP time step accepted: a code of this step or an earlier
    /// one is refused, so a code works once.
    pub last_used_step: Option<i64>,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

impl fmt::Debug for MfaFactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MfaFactor")
            .field("id", &self.id)
            .field("auth_identity_id", &self.auth_identity_id)
            .field("provider", &self.provider)
            .field("status", &self.status)
            .field("metadata", &self.metadata)
            .field("last_used_step", &self.last_used_step)
            .finish_non_exhaustive()
    }
}

/// What a new MFA factor is made of.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct NewMfaFactor {
    /// The auth identity it protects.
    pub auth_identity_id: String,
    /// The factor kind (`totp`).
    pub provider: String,
    /// The sealed secret.
    pub secret: String,
    /// Its metadata.
    pub metadata: Option<Metadata>,
    /// Its status (default [`MfaFactorStatus::Pending`]; importers keep theirs).
    pub status: MfaFactorStatus,
    /// The id to keep (importers); `None`: the store generates an `authmfa_` id.
    pub id: Option<String>,
    /// The creation time to keep (importers); `None`: now.
    pub created_at: Option<OffsetDateTime>,
}

impl fmt::Debug for NewMfaFactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewMfaFactor")
            .field("auth_identity_id", &self.auth_identity_id)
            .field("provider", &self.provider)
            .field("status", &self.status)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl NewMfaFactor {
    /// A pending factor of kind `provider` for `auth_identity_id` with the
    /// sealed `secret`.
    pub fn new(
        auth_identity_id: impl Into<String>,
        provider: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        NewMfaFactor {
            auth_identity_id: auth_identity_id.into(),
            provider: provider.into(),
            secret: secret.into(),
            metadata: None,
            status: MfaFactorStatus::Pending,
            id: None,
            created_at: None,
        }
    }

    /// Sets the metadata.
    pub fn metadata(mut self, m: Metadata) -> Self {
        self.metadata = Some(m);
        self
    }

    /// Sets the status.
    pub fn status(mut self, status: MfaFactorStatus) -> Self {
        self.status = status;
        self
    }

    /// Keeps `id` (no shape check) and `created_at` instead of new ones.
    pub fn keep(mut self, id: impl Into<String>, created_at: OffsetDateTime) -> Self {
        self.id = Some(id.into());
        self.created_at = Some(created_at);
        self
    }

    /// The factor this will be stored as at `now` (stores call it).
    pub fn into_factor(self, now: OffsetDateTime) -> MfaFactor {
        let created_at = self.created_at.unwrap_or(now);
        MfaFactor {
            id: self
                .id
                .unwrap_or_else(|| crate::model::generate_id(MFA_FACTOR_PREFIX)),
            auth_identity_id: self.auth_identity_id,
            provider: self.provider,
            status: self.status,
            secret: self.secret,
            metadata: self.metadata,
            last_used_step: None,
            created_at,
            updated_at: created_at,
        }
    }
}

/// A conditional change of one MFA factor, applied in one atomic write by
/// [`crate::MfaStore::update_mfa_factor`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MfaFactorUpdate {
    /// Apply only if the factor's status is one of these (empty: any).
    pub if_status: Vec<MfaFactorStatus>,
    /// The new status, if it changes.
    pub status: Option<MfaFactorStatus>,
    /// Accept TOTP time step `n`: apply only if no step `>= n` was accepted
    /// before, and remember `n`.
    pub use_step: Option<i64>,
}

impl MfaFactorUpdate {
    /// An update that changes nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Apply only if the status is one of `statuses`.
    pub fn if_status(mut self, statuses: &[MfaFactorStatus]) -> Self {
        self.if_status = statuses.to_vec();
        self
    }

    /// Sets the status.
    pub fn status(mut self, status: MfaFactorStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Spends TOTP time step `step` (see [`MfaFactorUpdate::use_step`]).
    pub fn use_step(mut self, step: i64) -> Self {
        self.use_step = Some(step);
        self
    }

    /// Whether `factor` meets the update's conditions (stores that check in
    /// memory, under a lock, call it).
    pub fn applies_to(&self, factor: &MfaFactor) -> bool {
        (self.if_status.is_empty() || self.if_status.contains(&factor.status))
            && match (self.use_step, factor.last_used_step) {
                (Some(step), Some(last)) => step > last,
                _ => true,
            }
    }

    /// Applies the update to `factor` at `now` (after [`Self::applies_to`]).
    pub fn apply(&self, factor: &mut MfaFactor, now: OffsetDateTime) {
        if let Some(status) = self.status {
            factor.status = status;
        }
        if let Some(step) = self.use_step {
            factor.last_used_step = Some(step);
        }
        factor.updated_at = now;
    }
}

/// A verification row: whether an auth identity proved it controls
/// `entity_id` (an email address, a phone number) of kind `entity_type`.
/// One per (identity, `entity_id`, `entity_type`).
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct Verification {
    /// `authver_…`
    pub id: String,
    /// The auth identity.
    pub auth_identity_id: String,
    /// What is verified (an address).
    pub entity_id: String,
    /// Its kind (`email`, ...).
    pub entity_type: String,
    /// How the code is delivered (`token`).
    pub code_provider: String,
    /// The SHA-256 (hex) of the pending code; `None` once used.
    pub code_hash: Option<String>,
    /// When the pending code expires.
    pub expires_at: Option<OffsetDateTime>,
    /// When the last code was requested.
    pub requested_at: Option<OffsetDateTime>,
    /// When it was verified; `None` until then.
    pub verified_at: Option<OffsetDateTime>,
    /// The request's metadata.
    pub metadata: Option<Metadata>,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

impl fmt::Debug for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verification")
            .field("id", &self.id)
            .field("auth_identity_id", &self.auth_identity_id)
            .field("entity_id", &self.entity_id)
            .field("entity_type", &self.entity_type)
            .field("code_provider", &self.code_provider)
            .field("verified_at", &self.verified_at)
            .finish_non_exhaustive()
    }
}

/// A request for a verification code: what
/// [`crate::VerificationStore::request_verification`] writes.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct NewVerification {
    /// The auth identity.
    pub auth_identity_id: String,
    /// What is verified.
    pub entity_id: String,
    /// Its kind.
    pub entity_type: String,
    /// How the code is delivered.
    pub code_provider: String,
    /// The SHA-256 (hex) of the new code.
    pub code_hash: String,
    /// When the code was requested.
    pub requested_at: OffsetDateTime,
    /// When it expires.
    pub expires_at: OffsetDateTime,
    /// The request's metadata.
    pub metadata: Option<Metadata>,
}

impl fmt::Debug for NewVerification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewVerification")
            .field("auth_identity_id", &self.auth_identity_id)
            .field("entity_id", &self.entity_id)
            .field("entity_type", &self.entity_type)
            .field("code_provider", &self.code_provider)
            .finish_non_exhaustive()
    }
}

impl NewVerification {
    /// A code request with hash `code_hash`, made at `requested_at` and
    /// valid until `expires_at`.
    pub fn new(
        auth_identity_id: impl Into<String>,
        entity_id: impl Into<String>,
        entity_type: impl Into<String>,
        code_provider: impl Into<String>,
        code_hash: impl Into<String>,
        requested_at: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Self {
        NewVerification {
            auth_identity_id: auth_identity_id.into(),
            entity_id: entity_id.into(),
            entity_type: entity_type.into(),
            code_provider: code_provider.into(),
            code_hash: code_hash.into(),
            requested_at,
            expires_at,
            metadata: None,
        }
    }

    /// Sets the metadata.
    pub fn metadata(mut self, m: Option<Metadata>) -> Self {
        self.metadata = m;
        self
    }

    /// The row this creates at `now` (stores call it).
    pub fn into_verification(self, now: OffsetDateTime) -> Verification {
        Verification {
            id: crate::model::generate_id(VERIFICATION_PREFIX),
            auth_identity_id: self.auth_identity_id,
            entity_id: self.entity_id,
            entity_type: self.entity_type,
            code_provider: self.code_provider,
            code_hash: Some(self.code_hash),
            expires_at: Some(self.expires_at),
            requested_at: Some(self.requested_at),
            verified_at: None,
            metadata: self.metadata,
            created_at: now,
            updated_at: now,
        }
    }
}

/// Prefix of passkey record ids.
pub const PASSKEY_PREFIX: &str = "authpk";

/// A WebAuthn credential (a passkey) of an auth identity, as the identity
/// store keeps it. It holds no secret: the private key never leaves the
/// user's authenticator.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PasskeyCredential {
    /// `authpk_…`
    pub id: String,
    /// The auth identity it signs in.
    pub auth_identity_id: String,
    /// The passkey provider instance it was registered with.
    pub provider: String,
    /// The authenticator's credential id, base64url without padding: unique
    /// per provider.
    pub credential_id: String,
    /// The WebAuthn user handle (base64url), the provider identity's `entity_id`.
    pub user_handle: String,
    /// The e-mail given when it was registered, lower-cased, if any: a login
    /// that names an e-mail lists the credentials registered with it.
    pub email: Option<String>,
    /// Its name, for the user (`Passkey` until renamed).
    pub name: String,
    /// The relying party's record of the credential (public key, algorithm,
    /// flags), as the verifying library writes it.
    pub credential: serde_json::Value,
    /// The last signature counter seen.
    pub sign_count: u32,
    /// Whether the authenticator says the credential is backed up (synced).
    pub backed_up: bool,
    /// The transports the authenticator named (`internal`, `hybrid`, `usb` …).
    pub transports: Vec<String>,
    /// When it was registered.
    pub created_at: OffsetDateTime,
    /// When it last signed a login in.
    pub last_used_at: Option<OffsetDateTime>,
}

/// What a new passkey record is made of.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NewPasskeyCredential {
    /// The auth identity it signs in.
    pub auth_identity_id: String,
    /// The passkey provider instance.
    pub provider: String,
    /// The credential id (base64url).
    pub credential_id: String,
    /// The user handle (base64url).
    pub user_handle: String,
    /// The e-mail it was registered with, lower-cased.
    pub email: Option<String>,
    /// Its name.
    pub name: String,
    /// The relying party's record of the credential.
    pub credential: serde_json::Value,
    /// The signature counter at registration.
    pub sign_count: u32,
    /// Whether it is backed up.
    pub backed_up: bool,
    /// Its transports.
    pub transports: Vec<String>,
}

impl NewPasskeyCredential {
    /// A record of `credential_id` for `auth_identity_id` at `provider`, named
    /// `Passkey`, counter 0, not backed up, no transports.
    pub fn new(
        auth_identity_id: impl Into<String>,
        provider: impl Into<String>,
        credential_id: impl Into<String>,
        user_handle: impl Into<String>,
        credential: serde_json::Value,
    ) -> Self {
        NewPasskeyCredential {
            auth_identity_id: auth_identity_id.into(),
            provider: provider.into(),
            credential_id: credential_id.into(),
            user_handle: user_handle.into(),
            email: None,
            name: "Passkey".to_owned(),
            credential,
            sign_count: 0,
            backed_up: false,
            transports: Vec::new(),
        }
    }

    /// The record a store keeps for this request: id `id`, created at
    /// `created_at`, never used (for store implementors; set
    /// `last_used_at` and the counter from a stored row after).
    pub fn into_credential(self, id: String, created_at: OffsetDateTime) -> PasskeyCredential {
        let NewPasskeyCredential {
            auth_identity_id,
            provider,
            credential_id,
            user_handle,
            email,
            name,
            credential,
            sign_count,
            backed_up,
            transports,
        } = self;
        PasskeyCredential {
            id,
            auth_identity_id,
            provider,
            credential_id,
            user_handle,
            email,
            name,
            credential,
            sign_count,
            backed_up,
            transports,
            created_at,
            last_used_at: None,
        }
    }
}

/// A login a passkey signed: what [`crate::PasskeyStore::record_passkey_use`]
/// writes.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PasskeyUse {
    /// The new signature counter.
    pub sign_count: u32,
    /// The relying party's record after the login (its counter and flags).
    pub credential: serde_json::Value,
    /// Whether it is backed up now.
    pub backed_up: bool,
    /// When.
    pub at: OffsetDateTime,
}

impl PasskeyUse {
    /// A use at `at` leaving the counter at `sign_count`.
    pub fn new(
        sign_count: u32,
        credential: serde_json::Value,
        backed_up: bool,
        at: OffsetDateTime,
    ) -> Self {
        PasskeyUse {
            sign_count,
            credential,
            backed_up,
            at,
        }
    }
}
