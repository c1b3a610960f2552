//! Verification: an identity proves it controls an `entity_id` (an email
//! address) by redeeming a code sent through the
//! [`VERIFICATION_REQUESTED_EVENT`]. Logins through providers listed in
//! `http.auth_verifications_per_actor` answer `verification_required` until
//! then.
//!
//! Only the code's SHA-256 is stored; confirmation is one conditional update
//! of the store; requests are limited per identity and `entity_id`
//! (`[limits] verification_requests`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::config::VerificationRule;
use crate::digest::sha256_hex;
use crate::error::{Error, Result};
use crate::events::{Event, EventBus};
use crate::flows::Limits;
use crate::flows::mfa::iso_millis;
use crate::mfa::Clock;
use crate::model::{AuthIdentity, Metadata};
use crate::records::{NewVerification, Verification};
use crate::store_traits::{VerificationStore, lacks_mfa};

/// Emitted with each new code: `{entity_id, entity_type, code_provider,
/// auth_identity_id, code, expires_at, metadata}`. The only place the code
/// ever appears.
pub const VERIFICATION_REQUESTED_EVENT: &str = "auth.verification_requested";

/// The code provider this module implements: the code is a token delivered
/// by the host (through the event).
pub const TOKEN_CODE_PROVIDER: &str = "token";

/// How long a code lives (Medusa: 900 s).
pub const VERIFICATION_CODE_TTL: Duration = Duration::from_secs(900);

/// What a verification request came to.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum VerificationRequest {
    /// A new code was sent; the row is pending.
    Sent(Verification),
    /// The row was already verified: it is answered unchanged, no code sent.
    AlreadyVerified(Verification),
    /// Too many requests for this identity and `entity_id`: try after
    /// `retry_after`.
    Throttled {
        /// When to try again, at the latest.
        retry_after: Duration,
    },
}

/// Verification over the identity store's verification records
/// ([`VerificationStore`]). Built by the module; cheap to clone.
///
/// Without a [`VerificationStore`] (the identity store keeps no verification
/// records, which the module allows only without
/// `http.auth_verifications_per_actor`), no login waits for a verification,
/// and requests and confirmations answer [`crate::ErrorKind::NotSupported`].
#[derive(Debug, Clone)]
pub struct Verifications {
    records: Option<Arc<dyn VerificationStore>>,
    events: EventBus,
    clock: Arc<dyn Clock>,
    limits: Limits,
    rules: Arc<BTreeMap<String, Vec<VerificationRule>>>,
}

fn check_code_provider(code_provider: &str) -> Result<()> {
    if code_provider == TOKEN_CODE_PROVIDER {
        Ok(())
    } else {
        Err(Error::invalid_data(format!(
            "Verification code provider \"{code_provider}\" is not supported"
        )))
    }
}

impl Verifications {
    pub(crate) fn new(
        records: Option<Arc<dyn VerificationStore>>,
        events: EventBus,
        clock: Arc<dyn Clock>,
        limits: Limits,
        rules: BTreeMap<String, Vec<VerificationRule>>,
    ) -> Self {
        Verifications {
            records,
            events,
            clock,
            limits,
            rules: Arc::new(rules),
        }
    }

    /// The verification records, or the error a store without them answers.
    fn records(&self) -> Result<&dyn VerificationStore> {
        self.records.as_deref().ok_or_else(lacks_mfa)
    }

    /// Sends a new code for (`auth_identity_id`, `entity_id`, `entity_type`)
    /// through [`VERIFICATION_REQUESTED_EVENT`], replacing a pending one; a
    /// verified row comes back unchanged.
    pub async fn request(
        &self,
        auth_identity_id: &str,
        entity_id: &str,
        entity_type: &str,
        code_provider: Option<&str>,
        metadata: Option<Metadata>,
    ) -> Result<VerificationRequest> {
        let code_provider = code_provider.unwrap_or(TOKEN_CODE_PROVIDER);
        check_code_provider(code_provider)?;
        // The slot is taken before the code is made and stored.
        if let super::limits::Taken::Refused { retry_after } = self
            .limits
            .take_verification(auth_identity_id, entity_id)
            .await?
        {
            return Ok(VerificationRequest::Throttled { retry_after });
        }
        let mut raw = [0u8; 32];
        crate::random::fill(&mut raw);
        let code = URL_SAFE_NO_PAD.encode(raw);
        let hash = sha256_hex(&code);
        let now = self.clock.now();
        let expires_at = now + VERIFICATION_CODE_TTL;
        let new = NewVerification::new(
            auth_identity_id,
            entity_id,
            entity_type,
            code_provider,
            hash.clone(),
            now,
            expires_at,
        )
        .metadata(metadata.clone());
        let row = self.records()?.request_verification(new).await?;
        if row.code_hash.as_deref() != Some(hash.as_str()) {
            return Ok(VerificationRequest::AlreadyVerified(row));
        }
        self.events.emit(Event::new(
            VERIFICATION_REQUESTED_EVENT,
            json!({
                "entity_id": entity_id,
                "entity_type": entity_type,
                "code_provider": code_provider,
                "auth_identity_id": auth_identity_id,
                "code": code,
                "expires_at": iso_millis(expires_at),
                "metadata": metadata.map_or(Value::Null, Value::Object),
            }),
        ));
        Ok(VerificationRequest::Sent(row))
    }

    /// Redeems `code` (any caller: the code is the proof). One conditional
    /// update marks the row verified and forgets the code.
    pub async fn confirm(&self, code: &str, code_provider: Option<&str>) -> Result<Verification> {
        let code_provider = code_provider.unwrap_or(TOKEN_CODE_PROVIDER);
        check_code_provider(code_provider)?;
        let hash = sha256_hex(code.trim());
        let now = self.clock.now();
        let records = self.records()?;
        if let Some(row) = records
            .confirm_verification(&hash, code_provider, now)
            .await?
        {
            return Ok(row);
        }
        // Why it failed, for the message (the code is not spent either way).
        match records.verification_by_code(&hash).await? {
            Some(row) if row.code_provider != code_provider => Err(Error::not_allowed(format!(
                "Verification code does not belong to provider \"{code_provider}\""
            ))),
            Some(row) if row.expires_at.is_none_or(|e| e <= now) => {
                Err(Error::not_allowed("Verification code has expired"))
            }
            _ => Err(Error::not_allowed(
                "Verification code is invalid or already used",
            )),
        }
    }

    /// Whether a login of `identity` as `actor_type` through `provider` must
    /// verify first: `Some(row)` (`None` inside if never requested) for the
    /// first rule not yet verified.
    pub async fn pending(
        &self,
        identity: &AuthIdentity,
        actor_type: &str,
        provider: &str,
    ) -> Result<Option<Option<Verification>>> {
        let Some(rules) = self.rules.get(actor_type) else {
            return Ok(None);
        };
        let Some(entity_id) = identity
            .provider_identity(provider)
            .map(|p| p.entity_id.as_str())
        else {
            return Ok(None);
        };
        for rule in rules.iter().filter(|r| r.auth_provider == provider) {
            // Without records (which the module allows only without rules),
            // nothing was ever verified.
            let row = match &self.records {
                Some(records) => {
                    records
                        .find_verification(&identity.id, entity_id, &rule.entity_type)
                        .await?
                }
                None => None,
            };
            if row.as_ref().is_none_or(|r| r.verified_at.is_none()) {
                return Ok(Some(row));
            }
        }
        Ok(None)
    }
}

/// A verification row as clients see it: no code, no hash.
pub fn verification_json(v: &Verification) -> Value {
    let ts = |t: Option<time::OffsetDateTime>| t.map_or(Value::Null, |t| iso_millis(t).into());
    json!({
        "id": v.id,
        "auth_identity_id": v.auth_identity_id,
        "entity_id": v.entity_id,
        "entity_type": v.entity_type,
        "code_provider": v.code_provider,
        "requested_at": ts(v.requested_at),
        "verified_at": ts(v.verified_at),
        "metadata": v.metadata.clone().map_or(Value::Null, Value::Object),
        "created_at": iso_millis(v.created_at),
        "updated_at": iso_millis(v.updated_at),
        "deleted_at": Value::Null,
    })
}
