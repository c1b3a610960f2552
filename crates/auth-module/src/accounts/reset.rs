//! Password reset: a single-use reset token is issued through the
//! `auth.password_reset` event and redeemed once to change the credentials.
//!
//! The state store keeps only a SHA-256 of each token's `jti` (so any replica
//! can redeem it): `reset:{hash}` holds the ticket's target, and
//! `reset-latest:{provider}:{entity_id}` names the newest ticket, so a newer
//! request cancels older ones. Redeeming `take`s the ticket atomically; a
//! failed credential update puts it back for the rest of its life.

use std::time::Duration;

use serde_json::{Value, json};

use crate::digest::sha256_hex;
use crate::error::Result;
use crate::events::Event;
use crate::flows::{Slot, Taken};
use crate::model::Metadata;
use crate::module::{AuthModule, LoginOutcome};
use crate::provider::AuthRequest;
use crate::state_keys;
use crate::token::{RESET_TOKEN_TTL, ResetClaims, Tokens, now_secs};

/// The name of the event that carries reset tokens: `{entity_id, actor_type,
/// token, metadata}`.
pub const PASSWORD_RESET_EVENT: &str = "auth.password_reset";

/// What redeeming a reset token came to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResetOutcome {
    /// The credentials changed; the token is spent.
    Done,
    /// The token is not a live reset token of this provider and actor type
    /// (forged, expired, used, superseded, or for another route).
    InvalidToken,
    /// The provider refused the change (`message` is client-safe); the token
    /// stays usable.
    Failed {
        /// Why.
        message: String,
    },
    /// Over `[limits] update_failures_per_address`: refused before the token
    /// was looked at; try again after `retry_after`.
    Throttled {
        /// When to try again, at the latest.
        retry_after: Duration,
    },
}

/// What [`PasswordReset::begin`] found, before the request's body is read.
#[derive(Debug)]
#[non_exhaustive]
pub enum UpdateAttempt {
    /// Over the update limit: refuse now.
    Throttled {
        /// When to try again, at the latest.
        retry_after: Duration,
    },
    /// Not a live reset token of this provider and actor type (counted as a
    /// failed update).
    InvalidToken,
    /// A reset token of this route: finish with [`PasswordReset::finish`].
    Ready(Box<PendingUpdate>),
}

/// A verified reset token whose update slot is taken.
#[derive(Debug)]
pub struct PendingUpdate {
    claims: ResetClaims,
    slot: Slot,
}

/// Password reset over an [`AuthModule`] and a [`Tokens`] signer.
///
/// ```
/// # async fn demo(module: auth_module::AuthModule, tokens: auth_module::Tokens) -> auth_module::Result<()> {
/// use auth_module::accounts::{PasswordReset, ResetOutcome};
/// let reset = PasswordReset::new(module.clone(), tokens);
/// let mut events = module.events().subscribe();
/// reset.request("customer", "emailpass", "ada@example.com", None, None).await;
/// let event = events.recv().await.expect("the identity exists");
/// let token = event.data["token"].as_str().unwrap_or_default();
/// let body = serde_json::json!({ "password": "a new password" });
/// let done = reset
///     .complete("customer", "emailpass", token, body.as_object().cloned().unwrap_or_default(), None)
///     .await?;
/// assert_eq!(done, ResetOutcome::Done);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PasswordReset {
    module: AuthModule,
    tokens: Tokens,
}

impl PasswordReset {
    /// Resets over `module`, issuing tokens with `tokens`.
    pub fn new(module: AuthModule, tokens: Tokens) -> Self {
        PasswordReset { module, tokens }
    }

    /// Issues a reset token for `identifier` at `provider` if such an identity
    /// exists, and emits [`PASSWORD_RESET_EVENT`] with it. Unknown
    /// identifiers and providers do the same signing and store work and emit
    /// nothing, so a caller cannot tell them apart; store failures are
    /// logged, never reported. Over a rate limit (per identifier, and per
    /// `client_addr` when known) it does nothing, and the caller answers as
    /// usual.
    pub async fn request(
        &self,
        actor_type: &str,
        provider: &str,
        identifier: &str,
        metadata: Option<Metadata>,
        client_addr: Option<std::net::IpAddr>,
    ) {
        let module = &self.module;
        let entity_id = module
            .normalize_entity_id(provider, identifier)
            .unwrap_or_else(|| identifier.to_owned());
        let entry = |outcome: &str| {
            crate::NewAuditEntry::new("reset.requested", outcome)
                .provider(provider)
                .actor_type(actor_type)
        };
        match module.limits().reset_allowed(&entity_id, client_addr).await {
            Ok(true) => {}
            Ok(false) => {
                module.audit().record(entry("throttled")).await;
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "reset-password rate limit check failed");
                return;
            }
        }
        let (token, claims) = match self.tokens.issue_reset(&entity_id, provider, actor_type) {
            Ok(issued) => issued,
            Err(e) => {
                tracing::error!(error = %e, "could not sign a reset token");
                return;
            }
        };
        let hash = sha256_hex(&claims.jti);
        let owner = if module.provider_info(provider).is_some() {
            match module.find_provider_identity(provider, &entity_id).await {
                Ok(found) => found.map(|p| p.auth_identity_id),
                Err(e) => {
                    tracing::error!(error = %e, "reset-password lookup failed");
                    None
                }
            }
        } else {
            None
        };
        // The same write either way: the log does not time who exists.
        module
            .audit()
            .record(match &owner {
                Some(id) => entry("succeeded").identity(id),
                None => entry("failed").detail("reason", "no such identity"),
            })
            .await;
        let exists = owner.is_some();
        let event = Event::new(
            PASSWORD_RESET_EVENT,
            json!({
                "entity_id": entity_id,
                "actor_type": actor_type,
                "token": token,
                "metadata": metadata.map_or(Value::Object(Metadata::new()), Value::Object),
            }),
        );
        if !exists {
            // The same store round trips, keeping nothing, so an unknown
            // identifier does not answer measurably faster than a known one.
            let state = module.state_store();
            let _ = state.get(&state_keys::reset_latest(provider, "")).await;
            let _ = state
                .set(
                    &state_keys::reset_ticket(&hash),
                    Value::Null,
                    RESET_TOKEN_TTL,
                )
                .await;
            let _ = state.delete(&state_keys::reset_ticket(&hash)).await;
            drop(std::hint::black_box(event));
            return;
        }
        if let Err(e) = self
            .store_ticket(provider, &entity_id, actor_type, &hash)
            .await
        {
            tracing::error!(error = %e, "could not store a reset token");
            return;
        }
        module.events().emit(event);
    }

    async fn store_ticket(
        &self,
        provider: &str,
        entity_id: &str,
        actor_type: &str,
        hash: &str,
    ) -> Result<()> {
        let state = self.module.state_store();
        let latest = state_keys::reset_latest(provider, entity_id);
        if let Some(old) = state.get(&latest).await?
            && let Some(old) = old.as_str()
        {
            state.delete(&state_keys::reset_ticket(old)).await?;
        }
        let target =
            json!({ "entity_id": entity_id, "provider": provider, "actor_type": actor_type });
        state
            .set(&state_keys::reset_ticket(hash), target, RESET_TOKEN_TTL)
            .await?;
        state
            .set(&latest, Value::String(hash.to_owned()), RESET_TOKEN_TTL)
            .await
    }

    /// The claims of `token` if it is a reset token (signature, expiry,
    /// purpose) for `provider` and `actor_type`. A token shown on another
    /// route is refused here and stays usable.
    pub(crate) fn verify(
        &self,
        actor_type: &str,
        provider: &str,
        token: &str,
    ) -> Option<ResetClaims> {
        self.tokens
            .verify_reset(token)
            .filter(|c| c.provider == provider && c.actor_type == actor_type)
    }

    /// Spends the ticket of verified `claims` and changes the credentials
    /// with `body` (the provider's fields, e.g. `password`); the identity
    /// comes from the claims, never from the body. If the provider refuses,
    /// the ticket is put back.
    async fn redeem(&self, claims: &ResetClaims, mut body: Metadata) -> Result<ResetOutcome> {
        let hash = sha256_hex(&claims.jti);
        let state = self.module.state_store();
        let latest = state_keys::reset_latest(&claims.provider, &claims.entity_id);
        let Some(target) = state.take(&state_keys::reset_ticket(&hash)).await? else {
            return Ok(ResetOutcome::InvalidToken);
        };
        if state.get(&latest).await?.as_ref().and_then(Value::as_str) != Some(hash.as_str()) {
            return Ok(ResetOutcome::InvalidToken);
        }
        body.insert("entity_id".into(), Value::String(claims.entity_id.clone()));
        body.insert("email".into(), Value::String(claims.entity_id.clone()));
        let result = self
            .module
            .update_provider(
                &claims.provider,
                AuthRequest::with_body(body).actor_type(claims.actor_type.as_str()),
            )
            .await;
        if let Ok(LoginOutcome::Authenticated { identity, .. }) = &result {
            let _ = state.delete(&latest).await;
            let entry = |action: &str| {
                crate::NewAuditEntry::new(action, "succeeded")
                    .identity(&identity.id)
                    .provider(&claims.provider)
                    .actor_type(&claims.actor_type)
            };
            self.module
                .audit()
                .record_all(vec![entry("reset.completed"), entry("password.changed")])
                .await;
            return Ok(ResetOutcome::Done);
        }
        // Not redeemed: put the ticket back for the rest of its life.
        let left = claims.exp - now_secs();
        if left > 0 {
            let _ = state
                .set(
                    &state_keys::reset_ticket(&hash),
                    target,
                    Duration::from_secs(left.unsigned_abs()),
                )
                .await;
        }
        match result? {
            LoginOutcome::Failed { message } => Ok(ResetOutcome::Failed { message }),
            _ => Ok(ResetOutcome::Failed {
                message: "Unauthorized".to_owned(),
            }),
        }
    }

    /// The first half of an update from `client_addr`: takes a slot of
    /// `[limits] update_failures_per_address` before anything else, then
    /// checks `token` (a reset token for `provider` and `actor_type`; a token
    /// shown on another route is refused and stays usable). The caller then
    /// reads the request's body and calls [`PasswordReset::finish`].
    pub async fn begin(
        &self,
        actor_type: &str,
        provider: &str,
        token: &str,
        client_addr: Option<std::net::IpAddr>,
    ) -> Result<UpdateAttempt> {
        let slot = match self.module.limits().take_update(client_addr).await? {
            Taken::Go(slot) => slot,
            Taken::Refused { retry_after } => return Ok(UpdateAttempt::Throttled { retry_after }),
        };
        Ok(match self.verify(actor_type, provider, token) {
            Some(claims) => UpdateAttempt::Ready(Box::new(PendingUpdate { claims, slot })),
            None => UpdateAttempt::InvalidToken,
        })
    }

    /// Spends the ticket of `pending` and changes the credentials with
    /// `body` (the provider's fields, e.g. `password`); the identity comes
    /// from the token, never from the body. If the provider refuses, the
    /// ticket is put back and the try counts as a failed update; a success
    /// gives its slot back.
    pub async fn finish(
        &self,
        pending: Box<PendingUpdate>,
        body: Metadata,
    ) -> Result<ResetOutcome> {
        let outcome = self.redeem(&pending.claims, body).await?;
        if outcome == ResetOutcome::Done
            && let Err(e) = self.module.limits().release(pending.slot).await
        {
            tracing::warn!(error = %e, "could not give an update slot back");
        }
        Ok(outcome)
    }

    /// [`PasswordReset::begin`] then [`PasswordReset::finish`].
    pub async fn complete(
        &self,
        actor_type: &str,
        provider: &str,
        token: &str,
        body: Metadata,
        client_addr: Option<std::net::IpAddr>,
    ) -> Result<ResetOutcome> {
        match self.begin(actor_type, provider, token, client_addr).await? {
            UpdateAttempt::Ready(pending) => self.finish(pending, body).await,
            UpdateAttempt::Throttled { retry_after } => Ok(ResetOutcome::Throttled { retry_after }),
            UpdateAttempt::InvalidToken => Ok(ResetOutcome::InvalidToken),
        }
    }
}
