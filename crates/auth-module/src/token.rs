//! Token issuing behind one component: a [`Signer`] (one key, one pinned
//! algorithm; [`Hs256Signer`] ships) and [`Tokens`], which turns claims into
//! compact JWTs and back. Auth tokens, reset tokens, and later MFA challenges
//! and verification tokens are all issued here.
//!
//! ```
//! use std::time::Duration;
//! use auth_module::{AuthIdentity, Secret, Tokens};
//!
//! let tokens = Tokens::hs256(&Secret::new("a long random secret, 32 bytes or more"), Duration::from_secs(3600));
//! let identity = AuthIdentity::new("authid_1", time::OffsetDateTime::now_utc());
//! let token = tokens.issue(&identity, "customer", "emailpass").unwrap();
//! let claims = tokens.verify(&token).expect("our own token verifies");
//! assert_eq!(claims.auth_identity_id, "authid_1");
//! assert!(tokens.verify_reset(&token).is_none(), "an auth token is never a reset token");
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::Secret;
use crate::error::{Error, Result};
use crate::model::{AuthIdentity, Metadata};

/// Signs and verifies the signing input (`base64url(header).base64url(payload)`)
/// of compact JWS tokens with one key under one algorithm.
///
/// # Contract
/// - [`Signer::algorithm`] is the JWS `alg` name (`HS256`, `RS256`, ...).
///   [`Tokens`] refuses any token whose header names another algorithm before
///   calling [`Signer::verify`]: the algorithm is pinned, never read from the
///   token.
/// - `sign` answers the base64url (unpadded) signature; `verify` checks one
///   in constant time where the algorithm allows.
pub trait Signer: Send + Sync + fmt::Debug + 'static {
    /// The JWS `alg` of every token this signer makes.
    fn algorithm(&self) -> &'static str;

    /// The key id put in token headers (`kid`), if any.
    fn key_id(&self) -> Option<&str> {
        None
    }

    /// The base64url signature of `signing_input`.
    fn sign(&self, signing_input: &[u8]) -> Result<String>;

    /// Whether `signature` (base64url) signs `signing_input` under this key.
    fn verify(&self, signing_input: &[u8], signature: &str) -> bool;

    /// The public key as a JWK (with `kid` and `alg`), for
    /// `/.well-known/jwks.json`; `None` for a shared secret.
    fn jwk(&self) -> Option<Value> {
        None
    }
}

/// HMAC-SHA256 with one shared secret.
#[derive(Clone)]
pub struct Hs256Signer {
    encoding: jsonwebtoken::EncodingKey,
    decoding: jsonwebtoken::DecodingKey,
}

impl fmt::Debug for Hs256Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hs256Signer").finish_non_exhaustive()
    }
}

impl Hs256Signer {
    /// A signer over `secret`.
    pub fn new(secret: &Secret) -> Self {
        let key = secret.expose().as_bytes();
        Hs256Signer {
            encoding: jsonwebtoken::EncodingKey::from_secret(key),
            decoding: jsonwebtoken::DecodingKey::from_secret(key),
        }
    }
}

impl Signer for Hs256Signer {
    fn algorithm(&self) -> &'static str {
        "HS256"
    }

    fn sign(&self, signing_input: &[u8]) -> Result<String> {
        jsonwebtoken::crypto::sign(
            signing_input,
            &self.encoding,
            jsonwebtoken::Algorithm::HS256,
        )
        .map_err(|e| Error::unexpected("signing a token failed").with_source(e))
    }

    fn verify(&self, signing_input: &[u8], signature: &str) -> bool {
        jsonwebtoken::crypto::verify(
            signature,
            signing_input,
            &self.decoding,
            jsonwebtoken::Algorithm::HS256,
        )
        .unwrap_or(false)
    }
}

/// The claims of an auth JWT (and of a session), as Medusa 2.21 issues them,
/// plus `cv`, the credential version it was issued under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuthClaims {
    /// `app_metadata["{actor_type}_id"]`, or `""` before the host links one.
    pub actor_id: String,
    /// The actor type the token was issued for.
    pub actor_type: String,
    /// The auth identity.
    pub auth_identity_id: String,
    /// The provider instance used to log in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_provider: Option<String>,
    /// `{ "{actor_type}_id": actor_id }` when linked, else `{}`.
    #[serde(default)]
    pub app_metadata: Metadata,
    /// The provider identity's `user_metadata`.
    #[serde(default)]
    pub user_metadata: Metadata,
    /// Whether an MFA factor is enabled.
    #[serde(default)]
    pub mfa_enabled: bool,
    /// When an MFA challenge was completed.
    #[serde(default)]
    pub mfa_challenge_completed_at: Option<String>,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
    /// Set on special-purpose tokens (e.g. `reset`), which are never auth tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// The auth identity's credential version at issue time; a token whose
    /// version is behind the stored one is refused.
    #[serde(default)]
    pub cv: u64,
    /// Set on the token answered by a login that attached a new provider
    /// identity to the caller's auth identity (linking with proof).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub linked: bool,
    /// The login step this token is in (`"verification"` or `"mfa"`); absent
    /// once no step is owed. Medusa clients ignore it; the gate
    /// ([`crate::gate`]) reads it to decide what the token may do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<Step>,
    /// The device the token or session belongs to
    /// ([`crate::flows::Devices`]); a refresh keeps it. Absent on step
    /// tokens and on credentials issued before devices existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
}

/// The unfinished login step a token is in: the `step` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Step {
    /// The identity must verify an entity (e.g. its email) first.
    Verification,
    /// The identity must answer an MFA challenge.
    Mfa,
}

impl AuthClaims {
    /// These claims as the token of an unfinished login `step`
    /// (`verification_required`, `mfa_required`): the `step` claim set, no
    /// `actor_id` and no `{actor}_id` link even when linked, `mfa_enabled`
    /// iff the step is an MFA challenge, no completed challenge.
    pub fn for_step(mut self, step: Step) -> Self {
        self.actor_id.clear();
        self.app_metadata.clear();
        self.mfa_enabled = step == Step::Mfa;
        self.mfa_challenge_completed_at = None;
        self.step = Some(step);
        self.device_id = None;
        self
    }

    /// These claims after an MFA challenge completed at `completed_at` (ISO
    /// 8601 UTC with milliseconds).
    pub fn mfa_completed(mut self, completed_at: impl Into<String>) -> Self {
        self.step = None;
        self.mfa_enabled = true;
        self.mfa_challenge_completed_at = Some(completed_at.into());
        self
    }

    /// Whether the MFA challenge of these claims was completed more than
    /// `max_age` ago (or at an unreadable time). `false` without MFA.
    pub fn mfa_older_than(&self, max_age: Duration) -> bool {
        let Some(at) = self
            .mfa_challenge_completed_at
            .as_deref()
            .filter(|_| self.mfa_enabled)
        else {
            return false;
        };
        crate::flows::parse_iso(at).is_none_or(|at| {
            let age = time::OffsetDateTime::now_utc() - at;
            age > time::Duration::try_from(max_age).unwrap_or(time::Duration::MAX)
        })
    }

    /// Whether these claims still owe an MFA challenge (the gate refuses
    /// them on protected routes).
    pub fn mfa_pending(&self) -> bool {
        self.mfa_enabled && self.mfa_challenge_completed_at.is_none()
    }
}

/// The claims of a password reset token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ResetClaims {
    /// The identity's key at the provider (e.g. the email).
    pub entity_id: String,
    /// The provider instance id.
    pub provider: String,
    /// The actor type of the route that asked for it.
    pub actor_type: String,
    /// Always `reset`.
    pub purpose: String,
    /// A random id; the server keeps only its hash.
    pub jti: String,
    /// Issued at.
    pub iat: i64,
    /// Expires at.
    pub exp: i64,
}

/// Lifetime of reset tokens (Medusa 2.21: 15 minutes).
pub const RESET_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);

/// Seconds of clock skew tolerated on `exp`.
const LEEWAY_SECS: i64 = 5;

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// Issues compact JWTs through one [`Signer`], and verifies them with it and
/// any earlier keys ([`Tokens::with_verifiers`]). Cheap to clone.
#[derive(Clone)]
pub struct Tokens {
    signer: Arc<dyn Signer>,
    /// Every key a token may verify under: the signer first.
    verifiers: Arc<[Arc<dyn Signer>]>,
    /// `base64url(header)`, the same for every token.
    header: Arc<str>,
    expires_in: Duration,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("algorithm", &self.signer.algorithm())
            .field("verifiers", &self.verifiers.len())
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

pub(crate) fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Tokens {
    /// Tokens signed by `signer`; auth tokens live `expires_in`.
    pub fn new(signer: Arc<dyn Signer>, expires_in: Duration) -> Self {
        let mut header = serde_json::json!({ "typ": "JWT", "alg": signer.algorithm() });
        if let Some(kid) = signer.key_id() {
            header["kid"] = Value::String(kid.to_owned());
        }
        let header = URL_SAFE_NO_PAD.encode(header.to_string());
        Tokens {
            verifiers: vec![signer.clone()].into(),
            signer,
            header: header.into(),
            expires_in,
        }
    }

    /// HS256 with `secret`.
    pub fn hs256(secret: &Secret, expires_in: Duration) -> Self {
        Self::new(Arc::new(Hs256Signer::new(secret)), expires_in)
    }

    /// Also verifies tokens signed by `earlier` keys (previous secrets or
    /// public keys, during a rotation). Each key is pinned to its algorithm,
    /// and a key with an id only to tokens naming that `kid`.
    pub fn with_verifiers(mut self, earlier: Vec<Arc<dyn Signer>>) -> Self {
        let mut all: Vec<Arc<dyn Signer>> = self.verifiers.to_vec();
        all.extend(earlier);
        self.verifiers = all.into();
        self
    }

    /// The public keys tokens verify under, as a JWK set
    /// (`{"keys": [...]}`, empty with shared secrets only).
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self.verifiers.iter().filter_map(|v| v.jwk()).collect();
        serde_json::json!({ "keys": keys })
    }

    /// The lifetime of auth tokens.
    pub fn expires_in(&self) -> Duration {
        self.expires_in
    }

    /// A signed compact JWT carrying `claims`.
    pub fn sign<C: Serialize>(&self, claims: &C) -> Result<String> {
        let payload = serde_json::to_vec(claims)
            .map_err(|e| Error::unexpected("serialising token claims failed").with_source(e))?;
        let mut token = String::with_capacity(self.header.len() + payload.len() * 4 / 3 + 4 + 64);
        token.push_str(&self.header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = self.signer.sign(token.as_bytes())?;
        token.push('.');
        token.push_str(&signature);
        Ok(token)
    }

    /// The claims of `token` if its header names this signer's algorithm and
    /// its signature verifies; expiry is the caller's to check.
    fn open<C: DeserializeOwned>(&self, token: &str) -> Option<C> {
        let (signing_input, signature) = token.rsplit_once('.')?;
        let (header, payload) = signing_input.split_once('.')?;
        let header: Header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
        // The algorithm is pinned per key: a key verifies only tokens naming
        // its algorithm (and its kid, when it has one).
        let verified = self.verifiers.iter().any(|v| {
            v.algorithm() == header.alg
                && match (v.key_id(), header.kid.as_deref()) {
                    (Some(kid), Some(named)) => kid == named,
                    (Some(_), None) => false,
                    (None, _) => true,
                }
                && v.verify(signing_input.as_bytes(), signature)
        });
        if !verified {
            return None;
        }
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
    }

    /// The claims Medusa puts in a token for `identity` acting as
    /// `actor_type` after logging in with `provider`, under the identity's
    /// credential version.
    pub fn claims_for(
        &self,
        identity: &AuthIdentity,
        actor_type: &str,
        provider: &str,
    ) -> AuthClaims {
        let mut claims = AuthClaims {
            actor_id: String::new(),
            actor_type: String::new(),
            auth_identity_id: String::new(),
            auth_provider: None,
            app_metadata: Metadata::new(),
            user_metadata: Metadata::new(),
            mfa_enabled: false,
            mfa_challenge_completed_at: None,
            iat: 0,
            exp: 0,
            purpose: None,
            cv: 0,
            linked: false,
            step: None,
            device_id: None,
        };
        self.refill(&mut claims, identity, actor_type, provider);
        claims
    }

    /// Makes `claims` what [`Tokens::claims_for`] answers for these
    /// arguments, reusing their strings and maps (a token refresh rewrites
    /// the claims it verified instead of building new ones).
    pub(crate) fn refill(
        &self,
        claims: &mut AuthClaims,
        identity: &AuthIdentity,
        actor_type: &str,
        provider: &str,
    ) {
        /// `to = from`, keeping `to`'s allocation.
        fn set(to: &mut String, from: &str) {
            if to != from {
                to.clear();
                to.push_str(from);
            }
        }
        // Every field is named, so a new claim cannot be left stale here.
        let AuthClaims {
            actor_id,
            actor_type: claims_actor_type,
            auth_identity_id,
            auth_provider,
            app_metadata,
            user_metadata,
            mfa_enabled,
            mfa_challenge_completed_at,
            iat,
            exp,
            purpose,
            cv,
            linked,
            step,
            // A refresh keeps the device.
            device_id: _,
        } = claims;
        set(actor_id, identity.actor_id(actor_type).unwrap_or_default());
        set(claims_actor_type, actor_type);
        set(auth_identity_id, &identity.id);
        match auth_provider {
            Some(p) => set(p, provider),
            None => *auth_provider = Some(provider.to_owned()),
        }
        // `{ "{actor_type}_id": actor_id }` when linked, else `{}`.
        let linked_key = |k: &str| k.strip_suffix("_id") == Some(actor_type);
        app_metadata.retain(|k, _| !actor_id.is_empty() && linked_key(k));
        if !actor_id.is_empty() {
            match app_metadata.iter_mut().next() {
                Some((_, Value::String(v))) => set(v, actor_id),
                Some((_, v)) => *v = Value::String(actor_id.clone()),
                None => {
                    app_metadata
                        .insert(format!("{actor_type}_id"), Value::String(actor_id.clone()));
                }
            }
        }
        match identity
            .provider_identity(provider)
            .and_then(|p| p.user_metadata.as_ref())
        {
            Some(m) if m == user_metadata => {}
            Some(m) => user_metadata.clone_from(m),
            None => user_metadata.clear(),
        }
        *mfa_enabled = false;
        *mfa_challenge_completed_at = None;
        *iat = now_secs();
        *exp = iat.saturating_add(i64::try_from(self.expires_in.as_secs()).unwrap_or(i64::MAX / 2));
        *purpose = None;
        *cv = identity.credential_version;
        *linked = false;
        *step = None;
    }

    /// A signed auth token for `identity` (see [`Tokens::claims_for`]).
    pub fn issue(
        &self,
        identity: &AuthIdentity,
        actor_type: &str,
        provider: &str,
    ) -> Result<String> {
        self.sign(&self.claims_for(identity, actor_type, provider))
    }

    /// The claims of `token` as an auth JWT: the pinned algorithm, a valid
    /// signature, not expired, and not a special-purpose token.
    pub fn verify(&self, token: &str) -> Option<AuthClaims> {
        let claims: AuthClaims = self.open(token)?;
        (claims.purpose.is_none() && claims.exp.saturating_add(LEEWAY_SECS) >= now_secs())
            .then_some(claims)
    }

    /// A reset token for `entity_id` at `provider`, asked on `actor_type`'s
    /// route, with a fresh random `jti`: `(token, claims)`.
    pub fn issue_reset(
        &self,
        entity_id: &str,
        provider: &str,
        actor_type: &str,
    ) -> Result<(String, ResetClaims)> {
        let iat = now_secs();
        let claims = ResetClaims {
            entity_id: entity_id.to_owned(),
            provider: provider.to_owned(),
            actor_type: actor_type.to_owned(),
            purpose: "reset".to_owned(),
            jti: crate::random::token_hex(16),
            iat,
            exp: iat + RESET_TOKEN_TTL.as_secs() as i64,
        };
        Ok((self.sign(&claims)?, claims))
    }

    /// The claims of `token` as a reset token: the pinned algorithm, a valid
    /// signature, not expired, `purpose == "reset"` and a `jti`.
    pub fn verify_reset(&self, token: &str) -> Option<ResetClaims> {
        let claims: ResetClaims = self.open(token)?;
        (claims.purpose == "reset"
            && !claims.jti.is_empty()
            && claims.exp.saturating_add(LEEWAY_SECS) >= now_secs())
        .then_some(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::hs256(&Secret::new("k".repeat(32)), Duration::from_secs(60))
    }

    /// A refresh rewrites the claims it verified: whatever they held, the
    /// result is what `claims_for` builds.
    #[test]
    fn refilled_claims_are_the_claims_built_afresh() {
        let tokens = tokens();
        let now = time::OffsetDateTime::now_utc();
        let mut identity = AuthIdentity::new("authid_now", now);
        identity.credential_version = 7;
        identity
            .provider_identities
            .push(crate::model::ProviderIdentity {
                id: "provid_1".into(),
                entity_id: "a@example.com".into(),
                provider: "emailpass".into(),
                auth_identity_id: "authid_now".into(),
                user_metadata: serde_json::json!({"name": "A"}).as_object().cloned(),
                provider_metadata: None,
                created_at: now,
                updated_at: now,
            });
        let linked = serde_json::json!({"customer_id": "cus_1", "roles": ["admin"]});
        let unlinked = serde_json::json!({"seller_id": "sel_1"});
        for app_metadata in [Some(linked), Some(unlinked), None] {
            identity.app_metadata = app_metadata.and_then(|v| v.as_object().cloned());
            for provider in ["emailpass", "google"] {
                let stale = serde_json::from_value::<AuthClaims>(serde_json::json!({
                    "actor_id": "cus_old", "actor_type": "customer",
                    "auth_identity_id": "authid_old", "auth_provider": "github",
                    "app_metadata": {"customer_id": "cus_old", "roles": ["x"], "seller_id": "s"},
                    "user_metadata": {"name": "Old", "extra": 1},
                    "mfa_enabled": true, "mfa_challenge_completed_at": "2026-01-01T00:00:00Z",
                    "iat": 1, "exp": 2, "purpose": "reset", "cv": 3, "linked": true,
                    "step": "mfa",
                }))
                .unwrap();
                for mut claims in [
                    stale.clone(),
                    AuthClaims {
                        auth_provider: None,
                        ..stale
                    },
                ] {
                    tokens.refill(&mut claims, &identity, "customer", provider);
                    let mut fresh = tokens.claims_for(&identity, "customer", provider);
                    (fresh.iat, fresh.exp) = (claims.iat, claims.exp);
                    assert_eq!(claims, fresh, "{:?} via {provider}", identity.app_metadata);
                }
            }
        }
    }

    fn identity() -> AuthIdentity {
        let mut i = AuthIdentity::new("authid_1", time::OffsetDateTime::now_utc());
        i.credential_version = 3;
        i.app_metadata = serde_json::json!({"customer_id": "cus_1"})
            .as_object()
            .cloned();
        i
    }

    #[test]
    fn round_trip_and_claims() {
        let t = tokens();
        let token = t.issue(&identity(), "customer", "emailpass").unwrap();
        let claims = t.verify(&token).unwrap();
        assert_eq!(claims.actor_id, "cus_1");
        assert_eq!(claims.cv, 3);
        assert_eq!(claims.exp - claims.iat, 60);
        let header = token.split('.').next().unwrap();
        assert_eq!(
            URL_SAFE_NO_PAD.decode(header).unwrap(),
            br#"{"alg":"HS256","typ":"JWT"}"#
        );
    }

    #[test]
    fn refuses_other_keys_algorithms_and_shapes() {
        let t = tokens();
        let token = t.issue(&identity(), "customer", "emailpass").unwrap();
        let other = Tokens::hs256(&Secret::new("x".repeat(32)), Duration::from_secs(60));
        assert!(other.verify(&token).is_none(), "another secret");
        let (input, _) = token.rsplit_once('.').unwrap();
        assert!(t.verify(&format!("{input}.")).is_none(), "no signature");
        let payload = input.split_once('.').unwrap().1;
        let none = format!(
            "{}.{payload}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#)
        );
        assert!(t.verify(&none).is_none(), "alg none");
        let hs384 = format!(
            "{}.{payload}",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"HS384"}"#)
        );
        let sig = t.signer.sign(hs384.as_bytes()).unwrap();
        assert!(
            t.verify(&format!("{hs384}.{sig}")).is_none(),
            "another alg name"
        );
        for garbage in ["", ".", "..", "a.b.c", "a.b.c.d", &format!("{token}.x")] {
            assert!(t.verify(garbage).is_none(), "{garbage}");
        }
    }

    #[test]
    fn expiry_and_purpose() {
        let t = tokens();
        let mut claims = t.claims_for(&identity(), "customer", "emailpass");
        claims.exp = now_secs() - LEEWAY_SECS - 1;
        assert!(t.verify(&t.sign(&claims).unwrap()).is_none(), "expired");
        claims.exp = now_secs() + 60;
        claims.purpose = Some("reset".into());
        assert!(t.verify(&t.sign(&claims).unwrap()).is_none(), "a purpose");
        let (reset, issued) = t.issue_reset("a@b.c", "emailpass", "customer").unwrap();
        assert_eq!(t.verify_reset(&reset), Some(issued.clone()));
        assert_eq!(issued.jti.len(), 32);
        assert!(
            t.verify(&reset).is_none(),
            "a reset token is not an auth token"
        );
    }
}
