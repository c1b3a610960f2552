//! Auth JWTs: HS256, Medusa's claims, the algorithm pinned on verification.

use std::fmt;
use std::time::Duration;

use auth_module::{AuthIdentity, Metadata, Secret};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The claims of an auth JWT (and of a session).
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
    /// The credential version of the login provider identity at issue time;
    /// a token whose version is behind the stored one is refused.
    #[serde(default)]
    pub cv: u64,
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

/// Signs and verifies auth JWTs with one secret.
#[derive(Clone)]
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    expires_in: Duration,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("algorithm", &"HS256")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl TokenIssuer {
    /// HS256 with `secret`; tokens live `expires_in`.
    pub fn new(secret: &Secret, expires_in: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = 5;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp"]);
        TokenIssuer {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation,
            expires_in,
        }
    }

    /// The claims Medusa puts in a token for `identity` acting as `actor_type`
    /// after logging in with `provider`.
    pub fn claims_for(
        &self,
        identity: &AuthIdentity,
        actor_type: &str,
        provider: &str,
        credential_version: u64,
    ) -> AuthClaims {
        let key = format!("{actor_type}_id");
        let actor_id = identity.actor_id(actor_type).unwrap_or_default().to_owned();
        let mut app_metadata = Metadata::new();
        if !actor_id.is_empty() {
            app_metadata.insert(key, Value::String(actor_id.clone()));
        }
        let user_metadata = identity
            .provider_identity(provider)
            .and_then(|p| p.user_metadata.clone())
            .unwrap_or_default();
        let iat = now();
        AuthClaims {
            actor_id,
            actor_type: actor_type.to_owned(),
            auth_identity_id: identity.id.clone(),
            auth_provider: Some(provider.to_owned()),
            app_metadata,
            user_metadata,
            mfa_enabled: false,
            mfa_challenge_completed_at: None,
            iat,
            exp: iat + i64::try_from(self.expires_in.as_secs()).unwrap_or(i64::MAX / 2),
            purpose: None,
            cv: credential_version,
        }
    }

    /// Signs `claims`.
    pub fn sign(&self, claims: &AuthClaims) -> String {
        // Invariant: HS256 signing of a serializable struct cannot fail.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 signing of plain claims")
    }

    /// A signed token for `identity` (see [`TokenIssuer::claims_for`]).
    pub fn issue(
        &self,
        identity: &AuthIdentity,
        actor_type: &str,
        provider: &str,
        credential_version: u64,
    ) -> String {
        self.sign(&self.claims_for(identity, actor_type, provider, credential_version))
    }

    /// A reset token for `entity_id` at `provider`, asked on `actor_type`'s
    /// route: `(token, jti)`.
    pub fn issue_reset(
        &self,
        entity_id: &str,
        provider: &str,
        actor_type: &str,
    ) -> (String, String) {
        let iat = now();
        let jti = auth_module::random_hex(16);
        let claims = ResetClaims {
            entity_id: entity_id.to_owned(),
            provider: provider.to_owned(),
            actor_type: actor_type.to_owned(),
            purpose: "reset".to_owned(),
            jti: jti.clone(),
            iat,
            exp: iat + RESET_TOKEN_TTL.as_secs() as i64,
        };
        // Invariant: HS256 signing of a serializable struct cannot fail.
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of plain claims");
        (token, jti)
    }

    /// Verifies `token` as a reset token: HS256, this secret, not expired,
    /// `purpose == "reset"`.
    pub fn verify_reset(&self, token: &str) -> Option<ResetClaims> {
        let data =
            jsonwebtoken::decode::<ResetClaims>(token, &self.decoding, &self.validation).ok()?;
        (data.claims.purpose == "reset" && !data.claims.jti.is_empty()).then_some(data.claims)
    }

    /// Verifies `token` as an auth JWT: HS256 only, this secret, not expired,
    /// not a special-purpose token.
    pub fn verify(&self, token: &str) -> Option<AuthClaims> {
        let data =
            jsonwebtoken::decode::<AuthClaims>(token, &self.decoding, &self.validation).ok()?;
        if data.claims.purpose.is_some() {
            return None;
        }
        Some(data.claims)
    }

    /// The lifetime of issued tokens.
    pub fn expires_in(&self) -> Duration {
        self.expires_in
    }
}
