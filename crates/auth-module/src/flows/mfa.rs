//! Multi-factor authentication: factors (TOTP, and the kind of a provider
//! that is also a [`SecondFactor`], e.g. passkeys: create, verify,
//! disable), recovery codes, and the login challenge.
//!
//! Every guess is decided by one atomic write of a store, never a
//! read-modify-write in memory:
//! - a TOTP time step is spent once per factor
//!   ([`crate::MfaStore::update_mfa_factor`] with a step);
//! - a recovery code is spent once
//!   ([`crate::MfaStore::consume_recovery_code`]), found by a keyed
//!   HMAC-SHA-256, so a wrong guess costs one hash, not ten scrypt runs;
//! - wrong codes are counted per identity across all its challenges with
//!   [`crate::StateStore::increment`] in a fixed window
//!   (`challenge_max_attempts` per `failure_window_seconds`), counted before
//!   the code is checked, so concurrent guesses cannot overshoot the limit; a
//!   success resets the count;
//! - a challenge is completed once, by compare-and-swap.
//!
//! ```
//! # async fn demo(module: auth_module::AuthModule, identity: auth_module::AuthIdentity)
//! # -> auth_module::Result<()> {
//! let mfa = module.mfa();
//! let created = mfa.create_factor(&identity.id, "totp", None, None, None).await?;
//! // The user's authenticator app shows codes for `created.secret`.
//! # let code = String::new();
//! let factor = mfa.verify_factor(&identity.id, &created.factor.id, &code).await?;
//! assert_eq!(factor.status, auth_module::MfaFactorStatus::Enabled);
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::config::{MfaConfig, MfaDisablePolicy};
use crate::error::{Error, ErrorKind, Result};
use crate::events::{Event, EventBus};
use crate::mfa::{
    Clock, MfaKeys, Totp, TotpAlgorithm, base32_encode, generate_recovery_code,
    generate_totp_secret,
};
use crate::model::{AuthIdentity, Metadata};
use crate::provider::{AuthProvider, ProviderIdentities, SecondFactor};
use crate::records::{MfaFactor, MfaFactorStatus, MfaFactorUpdate, NewMfaFactor};
use crate::state_keys;
use crate::store_traits::{MfaStore, StateStore, lacks_mfa};

/// Emitted when a factor becomes enabled: `{auth_identity_id, mfa_id, provider}`.
pub const MFA_ENABLED_EVENT: &str = "auth.mfa_enabled";
/// Emitted when a factor is disabled: `{auth_identity_id, mfa_id, provider}`.
pub const MFA_DISABLED_EVENT: &str = "auth.mfa_disabled";
/// Emitted when recovery codes are generated: `{auth_identity_id, count}`.
pub const MFA_RECOVERY_CODES_EVENT: &str = "auth.mfa_recovery_codes_generated";

/// The factor kind this module implements.
pub const TOTP: &str = "totp";
/// The challenge method that spends a recovery code.
pub const RECOVERY_CODE: &str = "recovery_code";

/// How long a completed or expired challenge is kept past its expiry, so a
/// late attempt hears why it failed rather than "not found".
const CHALLENGE_GRACE: Duration = Duration::from_secs(600);

/// A login's MFA challenge, as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MfaChallenge {
    /// `authmfachal_…`
    pub id: String,
    /// The identity that must answer it.
    pub auth_identity_id: String,
    /// The provider instance the login went through.
    pub auth_provider: String,
    /// What may answer it: the enabled factor kinds, and `recovery_code`
    /// when the identity has some.
    pub methods: Vec<String>,
    /// When it expires (ISO 8601, UTC, milliseconds).
    pub expires_at: String,
    /// Wrong codes the identity has entered in the current failure window.
    pub attempts: u64,
    /// Wrong codes allowed per failure window.
    pub max_attempts: u64,
    /// When it was completed, if it was.
    pub completed_at: Option<String>,
    /// Free metadata.
    pub metadata: Metadata,
    /// The WebAuthn request options a `passkey` answer signs, when
    /// `methods` lists `passkey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passkey_options: Option<Value>,
}

/// A factor just created: its record and the secret, shown this once.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CreatedFactor {
    /// The pending factor.
    pub factor: MfaFactor,
    /// The secret, RFC 4648 base32 without padding (TOTP; empty otherwise).
    pub secret: String,
    /// An `otpauth://totp/...` URI for authenticator apps (TOTP; empty
    /// otherwise).
    pub otpauth_url: String,
    /// The options the client answers to enrol its credential (a second
    /// factor provider's kind, e.g. WebAuthn creation options for `passkey`).
    pub options: Option<Value>,
}

/// What answers a factor's verification or a challenge: a code (TOTP, a
/// recovery code), or a credential's signed answer (`passkey`).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum MfaAnswer<'a> {
    /// A code.
    Code(&'a str),
    /// A WebAuthn response (registration or authentication JSON).
    Credential(&'a Value),
}

/// The provider instance that serves the second-factor kind (the first
/// configured provider that is a [`SecondFactor`]).
#[derive(Debug, Clone)]
pub(crate) struct SecondFactorProvider {
    /// The kind's identifier: factors of this `provider` (`passkey`).
    pub(crate) kind: &'static str,
    pub(crate) provider: Arc<dyn AuthProvider>,
    pub(crate) ids: ProviderIdentities,
}

impl SecondFactorProvider {
    fn factor(&self) -> Result<&dyn SecondFactor> {
        self.provider
            .second_factor()
            .ok_or_else(|| Error::unexpected("the second factor provider is none"))
    }
}

/// A completed challenge.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ChallengeCompleted {
    /// The challenge, with `completed_at` set.
    pub challenge: MfaChallenge,
    /// When (ISO 8601, UTC, milliseconds), for the token's
    /// `mfa_challenge_completed_at`.
    pub completed_at: String,
}

/// `t` as ISO 8601 UTC with milliseconds (`2026-01-01T12:00:00.000Z`).
///
/// ```
/// let t = time::macros::datetime!(2026-01-01 14:00:05.1239 +02:00);
/// assert_eq!(auth_module::flows::iso_millis(t), "2026-01-01T12:00:05.123Z");
/// ```
pub fn iso_millis(t: OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(format)
        // Invariant: every component is there and years have 4 digits.
        .expect("a UTC time formats")
}

/// Parses what [`iso_millis`] writes (any RFC 3339 time).
pub fn parse_iso(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// The configured part: settings and keys.
#[derive(Debug)]
struct Configured {
    config: MfaConfig,
    keys: MfaKeys,
}

/// TOTP MFA over the identity store's MFA records ([`MfaStore`]: factors,
/// recovery codes) and the state store (challenges, failure counts). Built
/// by the module; cheap to clone.
///
/// Without an [`MfaStore`] (the identity store keeps no MFA records, which
/// the module allows only without `[mfa]`), identities have no factors, and
/// what would write one answers [`ErrorKind::NotSupported`].
#[derive(Debug, Clone)]
pub struct Mfa {
    records: Option<Arc<dyn MfaStore>>,
    state: Arc<dyn StateStore>,
    events: EventBus,
    clock: Arc<dyn Clock>,
    configured: Option<Arc<Configured>>,
    second: Option<SecondFactorProvider>,
    audit: crate::audit::AuditLog,
}

fn key_required() -> Error {
    Error::invalid_data("MFA encryption key is required to use MFA methods")
}

fn factor_not_found(id: &str) -> Error {
    Error::not_found(format!("MFA factor with id \"{id}\" was not found"))
}

fn challenge_not_found(id: &str) -> Error {
    Error::not_found(format!("MFA challenge with id \"{id}\" was not found"))
}

impl Mfa {
    pub(crate) fn new(
        records: Option<Arc<dyn MfaStore>>,
        state: Arc<dyn StateStore>,
        events: EventBus,
        clock: Arc<dyn Clock>,
        config: Option<(MfaConfig, MfaKeys)>,
        second: Option<SecondFactorProvider>,
        audit: crate::audit::AuditLog,
    ) -> Self {
        Mfa {
            records,
            state,
            events,
            clock,
            configured: config.map(|(config, keys)| Arc::new(Configured { config, keys })),
            second,
            audit,
        }
    }

    /// The second-factor provider serving factors of kind `kind`, if any.
    fn second_for(&self, kind: &str) -> Option<&SecondFactorProvider> {
        self.second.as_ref().filter(|s| s.kind == kind)
    }

    /// The identity's enabled factors of kind `kind`, by id.
    fn enabled_ids(factors: &[MfaFactor], kind: &str) -> Vec<String> {
        factors
            .iter()
            .filter(|f| f.provider == kind && f.status == MfaFactorStatus::Enabled)
            .map(|f| f.id.clone())
            .collect()
    }

    /// Whether `[mfa]` is configured (with its key).
    pub fn is_configured(&self) -> bool {
        self.configured.is_some()
    }

    /// The clock codes and expiries are read from.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    fn configured(&self) -> Result<&Configured> {
        self.configured.as_deref().ok_or_else(key_required)
    }

    /// The MFA records, or the error a store without them answers.
    fn records(&self) -> Result<&dyn MfaStore> {
        self.records.as_deref().ok_or_else(lacks_mfa)
    }

    fn max_attempts(&self) -> u64 {
        self.configured
            .as_ref()
            .map_or(crate::config::default_challenge_max_attempts(), |c| {
                c.config.challenge_max_attempts
            })
            .into()
    }

    fn failure_window(&self) -> Duration {
        Duration::from_secs(
            self.configured
                .as_ref()
                .map_or(crate::config::default_failure_window_seconds(), |c| {
                    c.config.failure_window_seconds
                }),
        )
    }

    fn totp(&self, c: &Configured, factor: &MfaFactor) -> Result<Totp> {
        let secret = c.keys.open(&factor.secret)?;
        let t = &c.config.providers.totp;
        Ok(Totp::new(secret, t.digits, t.period, TotpAlgorithm::Sha1))
    }

    /// A TOTP secret Medusa sealed (`v1:…`, its base32 text), sealed again
    /// as this module keeps secrets; needs `[mfa]` with Medusa's
    /// `encryption_key` (current or previous).
    pub fn reseal_medusa_secret(&self, medusa: &str) -> Result<String> {
        let c = self.configured()?;
        let text = c.keys.open_medusa_v1(medusa)?;
        let secret = std::str::from_utf8(&text)
            .ok()
            .and_then(crate::mfa::base32_decode)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::invalid_data("a Medusa MFA secret is not base32 text"))?;
        c.keys.seal(&secret)
    }

    /// The MFA factors of `auth_identity_id`, every status, oldest first (a
    /// store without MFA records has none).
    pub async fn list_factors(&self, auth_identity_id: &str) -> Result<Vec<MfaFactor>> {
        match &self.records {
            Some(records) => records.list_mfa_factors(auth_identity_id).await,
            None => Ok(Vec::new()),
        }
    }

    /// Whether `identity` has an enabled factor: what the store that read it
    /// says ([`AuthIdentity::mfa_enabled`], kept current through the caches),
    /// else read from its factors.
    pub async fn enabled_for(&self, identity: &AuthIdentity) -> Result<bool> {
        match identity.mfa_enabled {
            Some(known) => Ok(known),
            None => self.has_enabled_factor(&identity.id).await,
        }
    }

    /// Whether `auth_identity_id` has an enabled factor.
    pub async fn has_enabled_factor(&self, auth_identity_id: &str) -> Result<bool> {
        Ok(self
            .list_factors(auth_identity_id)
            .await?
            .iter()
            .any(|f| f.status == MfaFactorStatus::Enabled))
    }

    async fn own_factor(&self, auth_identity_id: &str, factor_id: &str) -> Result<MfaFactor> {
        self.list_factors(auth_identity_id)
            .await?
            .into_iter()
            .find(|f| f.id == factor_id)
            .ok_or_else(|| factor_not_found(factor_id))
    }

    /// Creates a pending factor of kind `provider` (`totp`) with a new secret.
    /// `label` goes to the factor's metadata and names the account in the
    /// `otpauth` URL (else the identity id); `issuer` overrides the
    /// configured one.
    pub async fn create_factor(
        &self,
        auth_identity_id: &str,
        provider: &str,
        label: Option<&str>,
        issuer: Option<&str>,
        metadata: Option<Metadata>,
    ) -> Result<CreatedFactor> {
        if let Some(second) = self.second_for(provider) {
            return self
                .create_second_factor(second, auth_identity_id, label, metadata)
                .await;
        }
        if provider != TOTP {
            return Err(Error::invalid_data(format!(
                "MFA provider \"{provider}\" is not supported"
            )));
        }
        let c = self.configured()?;
        let secret = generate_totp_secret();
        let sealed = c.keys.seal(&secret)?;
        let mut metadata = metadata.unwrap_or_default();
        if let Some(label) = label {
            metadata.insert("label".to_owned(), Value::String(label.to_owned()));
        }
        let new = NewMfaFactor::new(auth_identity_id, TOTP, sealed).metadata(metadata);
        let factor = match self.records()?.create_mfa_factor(new).await {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::DuplicateError => {
                return Err(Error::not_allowed(
                    "An active TOTP factor already exists for this auth identity",
                ));
            }
            Err(e) => return Err(e),
        };
        let t = &c.config.providers.totp;
        let totp = Totp::new(secret.clone(), t.digits, t.period, TotpAlgorithm::Sha1);
        let issuer = issuer.filter(|i| !i.is_empty()).unwrap_or(&t.issuer);
        let account = label.filter(|l| !l.is_empty()).unwrap_or(auth_identity_id);
        Ok(CreatedFactor {
            otpauth_url: totp.otpauth_url(issuer, account),
            secret: base32_encode(&secret),
            factor,
            options: None,
        })
    }

    /// A pending factor of the second-factor provider's kind, with the
    /// options its credential answers. A pending factor of that kind is
    /// reused (its earlier options may have expired).
    async fn create_second_factor(
        &self,
        second: &SecondFactorProvider,
        auth_identity_id: &str,
        label: Option<&str>,
        metadata: Option<Metadata>,
    ) -> Result<CreatedFactor> {
        self.configured()?;
        let mut metadata = metadata.unwrap_or_default();
        if let Some(label) = label {
            metadata.insert("label".to_owned(), Value::String(label.to_owned()));
        }
        let new = NewMfaFactor::new(auth_identity_id, second.kind, "").metadata(metadata);
        let factor = match self.records()?.create_mfa_factor(new).await {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::DuplicateError => {
                let pending = self
                    .list_factors(auth_identity_id)
                    .await?
                    .into_iter()
                    .find(|f| f.provider == second.kind && f.status == MfaFactorStatus::Pending);
                match pending {
                    Some(f) => f,
                    None => {
                        return Err(Error::not_allowed(format!(
                            "An active {} factor already exists for this auth identity",
                            second.kind
                        )));
                    }
                }
            }
            Err(e) => return Err(e),
        };
        let options = second
            .factor()?
            .enrolment_options(auth_identity_id, &factor.id, &second.ids)
            .await?;
        Ok(CreatedFactor {
            factor,
            secret: String::new(),
            otpauth_url: String::new(),
            options: Some(options),
        })
    }

    /// Spends `code` against `factor` if it is a current TOTP code whose
    /// time step was never accepted, moving the factor to `to` (if given)
    /// in the same write. `Ok(None)`: wrong or replayed.
    async fn spend_totp(
        &self,
        c: &Configured,
        factor: &MfaFactor,
        code: &str,
        to: Option<MfaFactorStatus>,
    ) -> Result<Option<MfaFactor>> {
        let totp = self.totp(c, factor)?;
        let window = c.config.providers.totp.window;
        let Some(step) = totp.verify(code.trim(), self.clock.now_unix(), window) else {
            return Ok(None);
        };
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        let mut update = MfaFactorUpdate::new()
            .if_status(&[MfaFactorStatus::Pending, MfaFactorStatus::Enabled])
            .use_step(step);
        if let Some(to) = to {
            update = update.status(to);
        }
        self.records()?.update_mfa_factor(&factor.id, update).await
    }

    /// Verifies a factor's code: a pending factor becomes enabled
    /// ([`MFA_ENABLED_EVENT`]). Each time step is accepted once.
    pub async fn verify_factor(
        &self,
        auth_identity_id: &str,
        factor_id: &str,
        code: &str,
    ) -> Result<MfaFactor> {
        self.verify_factor_with(auth_identity_id, factor_id, MfaAnswer::Code(code))
            .await
    }

    /// [`Mfa::verify_factor`] with any answer: a TOTP code, or the
    /// credential that enrols a second-factor provider's factor (a pending
    /// `passkey` factor becomes enabled by its registration response).
    pub async fn verify_factor_with(
        &self,
        auth_identity_id: &str,
        factor_id: &str,
        answer: MfaAnswer<'_>,
    ) -> Result<MfaFactor> {
        let factor = self.own_factor(auth_identity_id, factor_id).await?;
        if factor.status == MfaFactorStatus::Disabled {
            return Err(Error::not_allowed(
                "Disabled MFA factors cannot be verified",
            ));
        }
        let c = self.configured()?;
        let updated = match (self.second_for(&factor.provider), answer) {
            (Some(second), MfaAnswer::Credential(credential)) => {
                if factor.status == MfaFactorStatus::Enabled {
                    return Ok(factor);
                }
                if !second
                    .factor()?
                    .enrol(auth_identity_id, &factor.id, credential, &second.ids)
                    .await?
                {
                    return Err(Error::not_allowed("Invalid passkey"));
                }
                let update = MfaFactorUpdate::new()
                    .if_status(&[MfaFactorStatus::Pending])
                    .status(MfaFactorStatus::Enabled);
                self.records()?
                    .update_mfa_factor(&factor.id, update)
                    .await?
                    .ok_or_else(|| factor_not_found(factor_id))?
            }
            (Some(_), MfaAnswer::Code(_)) => {
                return Err(Error::invalid_data(format!(
                    "A {} factor is verified with a credential",
                    factor.provider
                )));
            }
            (None, MfaAnswer::Code(code)) => self
                .spend_totp(c, &factor, code, Some(MfaFactorStatus::Enabled))
                .await?
                .ok_or_else(|| Error::not_allowed("Invalid TOTP code"))?,
            (None, MfaAnswer::Credential(_)) => {
                return Err(Error::invalid_data("A TOTP factor is verified with a code"));
            }
        };
        if factor.status != MfaFactorStatus::Enabled {
            self.emit_status(MFA_ENABLED_EVENT, &updated).await;
        }
        Ok(updated)
    }

    async fn emit_status(&self, name: &str, factor: &MfaFactor) {
        self.events.emit(Event::new(
            name,
            json!({
                "auth_identity_id": factor.auth_identity_id,
                "mfa_id": factor.id,
                "provider": factor.provider,
            }),
        ));
        let action = if name == MFA_ENABLED_EVENT {
            "mfa.enrolled"
        } else {
            "mfa.disabled"
        };
        self.audit
            .record(
                crate::NewAuditEntry::new(action, "succeeded")
                    .identity(&factor.auth_identity_id)
                    .provider(&factor.provider)
                    .detail("mfa_id", factor.id.as_str()),
            )
            .await;
    }

    /// Disables a factor. Under the `challenge` policy an enabled factor
    /// needs a current code: `method` `totp` (default) or `recovery_code`
    /// (which is spent). Wrong codes count toward the identity's failure
    /// limit. When no active factor is left, the recovery codes go too.
    pub async fn disable_factor(
        &self,
        auth_identity_id: &str,
        factor_id: &str,
        method: Option<&str>,
        code: Option<&str>,
    ) -> Result<MfaFactor> {
        let factor = self.own_factor(auth_identity_id, factor_id).await?;
        let policy = self
            .configured
            .as_ref()
            .map_or(MfaDisablePolicy::Session, |c| c.config.disable_policy);
        if policy == MfaDisablePolicy::Challenge && factor.status == MfaFactorStatus::Enabled {
            let code = code
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .ok_or_else(|| {
                    Error::invalid_data("MFA verification code is required to disable MFA")
                })?;
            let method = method.unwrap_or(TOTP);
            if method != TOTP && method != RECOVERY_CODE {
                return Err(Error::invalid_data(format!(
                    "MFA method \"{method}\" is not supported"
                )));
            }
            let c = self.configured()?;
            let ok = self.count_attempt(auth_identity_id).await?.is_some()
                && self
                    .check_code(
                        c,
                        auth_identity_id,
                        std::slice::from_ref(&factor),
                        method,
                        code,
                    )
                    .await?;
            if !ok {
                return Err(Error::not_allowed("Invalid MFA verification code"));
            }
            self.reset_failures(auth_identity_id).await;
        }
        let update = MfaFactorUpdate::new()
            .if_status(&[MfaFactorStatus::Pending, MfaFactorStatus::Enabled])
            .status(MfaFactorStatus::Disabled);
        let disabled = match self
            .records()?
            .update_mfa_factor(&factor.id, update)
            .await?
        {
            Some(f) => {
                if let Some(second) = self.second_for(&f.provider) {
                    second
                        .factor()?
                        .forget(auth_identity_id, &f.id, &second.ids)
                        .await?;
                }
                self.emit_status(MFA_DISABLED_EVENT, &f).await;
                f
            }
            // Already disabled (perhaps concurrently): nothing changes.
            None => self.own_factor(auth_identity_id, factor_id).await?,
        };
        let any_active = self
            .list_factors(auth_identity_id)
            .await?
            .iter()
            .any(|f| f.status.is_active());
        if !any_active {
            self.records()?
                .replace_recovery_codes(auth_identity_id, Vec::new())
                .await?;
        }
        Ok(disabled)
    }

    /// Generates `count` recovery codes (default `recovery_code_count`, 1 to
    /// 50), replacing older ones. Needs an enabled factor. Only keyed hashes
    /// are stored; the codes are answered this once.
    pub async fn generate_recovery_codes(
        &self,
        auth_identity_id: &str,
        count: Option<u32>,
    ) -> Result<Vec<String>> {
        if !self.has_enabled_factor(auth_identity_id).await? {
            return Err(Error::not_allowed(
                "Recovery codes require an enabled MFA factor",
            ));
        }
        let c = self.configured()?;
        let count = count.unwrap_or(c.config.recovery_code_count).clamp(1, 50);
        let codes: Vec<String> = (0..count).map(|_| generate_recovery_code()).collect();
        let hashes = codes
            .iter()
            .filter_map(|code| c.keys.recovery_code_hashes(code).into_iter().next())
            .collect();
        self.records()?
            .replace_recovery_codes(auth_identity_id, hashes)
            .await?;
        self.events.emit(Event::new(
            MFA_RECOVERY_CODES_EVENT,
            json!({ "auth_identity_id": auth_identity_id, "count": codes.len() }),
        ));
        self.audit
            .record(
                crate::NewAuditEntry::new("recovery_codes.created", "succeeded")
                    .identity(auth_identity_id)
                    .detail("count", codes.len()),
            )
            .await;
        Ok(codes)
    }

    /// A new challenge for `identity`'s login through `auth_provider`, if it
    /// has an enabled factor; `None` otherwise.
    pub async fn challenge(
        &self,
        identity: &AuthIdentity,
        auth_provider: &str,
    ) -> Result<Option<MfaChallenge>> {
        if identity.mfa_enabled == Some(false) {
            // The store (through its caches) says no factor is enabled: no
            // read of the factors.
            return Ok(None);
        }
        let factors = self.list_factors(&identity.id).await?;
        let mut methods: Vec<String> = Vec::new();
        for f in factors
            .iter()
            .filter(|f| f.status == MfaFactorStatus::Enabled)
        {
            if !methods.contains(&f.provider) {
                methods.push(f.provider.clone());
            }
        }
        if methods.is_empty() {
            return Ok(None);
        }
        if self.records()?.count_recovery_codes(&identity.id).await? > 0 {
            methods.push(RECOVERY_CODE.to_owned());
        }
        let ttl = Duration::from_secs(
            self.configured
                .as_ref()
                .map_or(crate::config::default_challenge_ttl_seconds(), |c| {
                    c.config.challenge_ttl_seconds
                }),
        );
        let attempts = self
            .state
            .get(&state_keys::mfa_failures(&identity.id))
            .await?
            .as_ref()
            .and_then(Value::as_u64)
            .unwrap_or(0)
            .min(self.max_attempts());
        let mut challenge = MfaChallenge {
            id: crate::model::generate_id("authmfachal"),
            auth_identity_id: identity.id.clone(),
            auth_provider: auth_provider.to_owned(),
            methods,
            expires_at: iso_millis(self.clock.now() + ttl),
            attempts,
            max_attempts: self.max_attempts(),
            completed_at: None,
            metadata: Metadata::new(),
            passkey_options: None,
        };
        if let Some(second) = &self.second
            && challenge.methods.iter().any(|m| m == second.kind)
        {
            let factor_ids = Self::enabled_ids(&factors, second.kind);
            let options = second
                .factor()?
                .challenge_options(&identity.id, &challenge.id, &factor_ids, &second.ids)
                .await?;
            challenge.passkey_options = Some(options);
        }
        self.state
            .set(
                &state_keys::mfa_challenge(&challenge.id),
                to_value(&challenge)?,
                ttl + CHALLENGE_GRACE,
            )
            .await?;
        Ok(Some(challenge))
    }

    /// Counts one attempt toward the identity's failure limit before its code
    /// is checked: `Some(n)` (the attempt's number) if it may go on, `None` if
    /// the limit was already reached.
    async fn count_attempt(&self, auth_identity_id: &str) -> Result<Option<u64>> {
        let n = self
            .state
            .increment(
                &state_keys::mfa_failures(auth_identity_id),
                1,
                self.failure_window(),
            )
            .await?;
        Ok((n <= self.max_attempts()).then_some(n))
    }

    async fn reset_failures(&self, auth_identity_id: &str) {
        if let Err(e) = self
            .state
            .delete(&state_keys::mfa_failures(auth_identity_id))
            .await
        {
            tracing::warn!(error = %e, "could not reset an MFA failure count");
        }
    }

    /// Whether `code` answers `method` for `auth_identity_id`: a TOTP code of
    /// one of `factors` (enabled ones; its step is spent), or a recovery code
    /// (spent).
    async fn check_code(
        &self,
        c: &Configured,
        auth_identity_id: &str,
        factors: &[MfaFactor],
        method: &str,
        code: &str,
    ) -> Result<bool> {
        if method == RECOVERY_CODE {
            let candidates = c.keys.recovery_code_hashes(code);
            let used = self
                .records()?
                .consume_recovery_code(auth_identity_id, &candidates)
                .await?;
            if used {
                self.audit
                    .record(
                        crate::NewAuditEntry::new("recovery_codes.used", "succeeded")
                            .identity(auth_identity_id),
                    )
                    .await;
            }
            return Ok(used);
        }
        for f in factors
            .iter()
            .filter(|f| f.provider == method && f.status == MfaFactorStatus::Enabled)
        {
            if self.spend_totp(c, f, code, None).await?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Answers challenge `challenge_id` of `auth_identity_id` with `code`
    /// by `method`. On success the challenge is spent and the failure count
    /// reset.
    pub async fn verify_challenge(
        &self,
        auth_identity_id: &str,
        challenge_id: &str,
        method: &str,
        code: &str,
    ) -> Result<ChallengeCompleted> {
        self.verify_challenge_with(
            auth_identity_id,
            challenge_id,
            method,
            MfaAnswer::Code(code),
        )
        .await
    }

    /// [`Mfa::verify_challenge`] with any answer: a code, or (method
    /// `passkey`) the credential's signed answer to the challenge's
    /// `passkey_options`.
    pub async fn verify_challenge_with(
        &self,
        auth_identity_id: &str,
        challenge_id: &str,
        method: &str,
        answer: MfaAnswer<'_>,
    ) -> Result<ChallengeCompleted> {
        let key = state_keys::mfa_challenge(challenge_id);
        let raw = self
            .state
            .get(&key)
            .await?
            .ok_or_else(|| challenge_not_found(challenge_id))?;
        let challenge: MfaChallenge =
            serde_json::from_value(raw.clone()).map_err(|_| challenge_not_found(challenge_id))?;
        if challenge.auth_identity_id != auth_identity_id {
            return Err(challenge_not_found(challenge_id));
        }
        if challenge.completed_at.is_some() {
            return Err(Error::not_allowed(
                "MFA challenge has already been completed",
            ));
        }
        let now = self.clock.now();
        if parse_iso(&challenge.expires_at).is_none_or(|e| e <= now) {
            return Err(Error::not_allowed("MFA challenge has expired"));
        }
        if !challenge.methods.iter().any(|m| m == method) {
            return Err(Error::invalid_data(format!(
                "MFA challenge does not support method \"{method}\""
            )));
        }
        let c = self.configured()?;
        let too_many = || Error::not_allowed("MFA challenge has too many failed attempts");
        let Some(n) = self.count_attempt(auth_identity_id).await? else {
            return Err(too_many());
        };
        let factors = self.list_factors(auth_identity_id).await?;
        let right = match (self.second_for(method), answer) {
            (Some(second), MfaAnswer::Credential(credential)) => {
                let factor_ids = Self::enabled_ids(&factors, second.kind);
                second
                    .factor()?
                    .verify(
                        auth_identity_id,
                        challenge_id,
                        &factor_ids,
                        credential,
                        &second.ids,
                    )
                    .await?
            }
            (None, MfaAnswer::Code(code)) => {
                self.check_code(c, auth_identity_id, &factors, method, code.trim())
                    .await?
            }
            // A second-factor kind answers with a credential, the others with
            // a code.
            (Some(_), MfaAnswer::Code(_)) | (None, MfaAnswer::Credential(_)) => false,
        };
        if !right {
            return Err(if n >= self.max_attempts() {
                too_many()
            } else {
                Error::not_allowed("Invalid MFA challenge code")
            });
        }
        let completed_at = iso_millis(now);
        let mut done = challenge.clone();
        done.completed_at = Some(completed_at.clone());
        let remaining = parse_iso(&challenge.expires_at)
            .map(|e| (e - now).unsigned_abs())
            .unwrap_or_default();
        let swapped = self
            .state
            .compare_and_swap(
                &key,
                Some(&raw),
                Some(to_value(&done)?),
                remaining + CHALLENGE_GRACE,
            )
            .await?;
        if !swapped {
            return Err(Error::not_allowed(
                "MFA challenge has already been completed",
            ));
        }
        self.reset_failures(auth_identity_id).await;
        Ok(ChallengeCompleted {
            challenge: done,
            completed_at,
        })
    }
}

/// A factor as clients see it: never its secret.
pub fn factor_json(f: &MfaFactor) -> Value {
    json!({
        "id": f.id,
        "auth_identity_id": f.auth_identity_id,
        "provider": f.provider,
        "status": f.status.as_str(),
        "metadata": f.metadata.clone().map_or(Value::Null, Value::Object),
        "created_at": iso_millis(f.created_at),
        "updated_at": iso_millis(f.updated_at),
        "deleted_at": Value::Null,
    })
}

fn to_value<T: Serialize>(v: &T) -> Result<Value> {
    serde_json::to_value(v)
        .map_err(|e| Error::unexpected("serialising MFA state failed").with_source(e))
}
