//! Every key the module writes to the [`crate::StateStore`], in one place, so
//! namespaces cannot collide: provider ids and actor types are restricted to
//! letters, digits, `-` and `_`, so a `:` always ends a segment.
//!
//! | key | value | written by |
//! |---|---|---|
//! | `provider:{provider}:{key}` | the provider's own state | [`crate::ProviderIdentities`] |
//! | `session-h:{sha256(sid)}` | the session's [`crate::AuthClaims`] | [`crate::flows::Sessions`] |
//! | `session:{sid}` | a session stored in clear by 0.1.0 (read and ended only) | [`crate::flows::Sessions`] |
//! | `session-index:{auth_identity_id}` | the identity's live sessions | [`crate::flows::Sessions`] |
//! | `limit:{name}:{sha256(identifier) and/or address}` | a fixed-window counter | [`crate::flows::Limits`] |
//! | `reset:{sha256(jti)}` | a reset ticket's target | [`crate::accounts::PasswordReset`] |
//! | `reset-latest:{provider}:{entity_id}` | the newest ticket's hash | [`crate::accounts::PasswordReset`] |
//! | `identity-version:{auth_identity_id}` | a random token replaced by every write | [`crate::SharedIdentityCache`] |
//! | `mfa-challenge:{id}` | a login's MFA challenge | [`crate::flows::Mfa`] |
//! | `mfa-failures:{auth_identity_id}` | wrong MFA codes in the failure window | [`crate::flows::Mfa`] |
//! | `ready-probe` | never written; read by readiness checks | [`crate::AuthModule::check_ready`] |

pub(crate) fn provider_state(provider: &str, key: &str) -> String {
    format!("provider:{provider}:{key}")
}

/// A session, by the SHA-256 of its id (its handle).
pub(crate) fn session(handle: &str) -> String {
    format!("session-h:{handle}")
}

/// A session 0.1.0 stored under its id in clear.
pub(crate) fn legacy_session(sid: &str) -> String {
    format!("session:{sid}")
}

pub(crate) fn session_index(auth_identity_id: &str) -> String {
    format!("session-index:{auth_identity_id}")
}

/// A rate-limit counter: `limit:{name}:{part}:{part}` (identifiers hashed).
pub(crate) fn limit(name: &str, parts: &[&str]) -> String {
    let mut key = format!("limit:{name}");
    for p in parts {
        key.push(':');
        key.push_str(p);
    }
    key
}

pub(crate) fn reset_ticket(jti_hash: &str) -> String {
    format!("reset:{jti_hash}")
}

pub(crate) fn reset_latest(provider: &str, entity_id: &str) -> String {
    format!("reset-latest:{provider}:{entity_id}")
}

/// The key readiness checks read (never written).
pub(crate) fn readiness_probe() -> String {
    "ready-probe".to_owned()
}

/// The token a shared identity cache proves its entries current with.
pub(crate) fn identity_version(auth_identity_id: &str) -> String {
    format!("identity-version:{auth_identity_id}")
}

/// A login's MFA challenge.
pub(crate) fn mfa_challenge(id: &str) -> String {
    format!("mfa-challenge:{id}")
}

/// The identity's wrong MFA codes in the current failure window.
pub(crate) fn mfa_failures(auth_identity_id: &str) -> String {
    format!("mfa-failures:{auth_identity_id}")
}
