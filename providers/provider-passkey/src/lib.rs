//! Passkeys for `auth-module` (identifier `passkey`): passwordless login with
//! WebAuthn credentials, checked by the webauthn-rs project's verifier.
//!
//! ```toml
//! [[providers]]
//! resolve = "passkey"
//! id = "passkey"
//! [providers.options]
//! rpId = "shop.example"
//! origins = ["https://shop.example"]
//! ```
//!
//! The routes are the provider routes every provider has, with JSON bodies
//! in the WebAuthn Level 3 `toJSON()` forms (what `@simplewebauthn/browser`
//! takes and gives):
//! - `POST /auth/{actor}/passkey/register` `{"email"}` answers
//!   `{"options"}` (creation options); with `{"credential"}` it stores the
//!   passkey and answers `{"token"}`. With a bearer token or session of an
//!   existing identity, the passkey is added to that identity.
//! - `POST /auth/{actor}/passkey` `{}` (or `{"email"}`) answers `{"options"}`
//!   (request options); `POST /auth/{actor}/passkey/callback`
//!   `{"credential"}` logs in.
//!
//! Each challenge is single-use, lives `timeoutMs`, and is bound to the
//! provider instance, the actor type and the ceremony. The identity's
//! `entity_id` here is the credential's user handle (random), never the
//! e-mail; the e-mail goes into `user_metadata`, unverified. The
//! credentials are kept by the identity store's
//! [`auth_module::PasskeyStore`].

use std::time::Duration;

mod mfa;

use auth_module::{
    AuthOutcome, AuthProvider, AuthRequest, Error, ErrorKind, Metadata, NewAuditEntry,
    NewPasskeyCredential, NewProviderIdentity, OptionsError, PasskeyCredential, PasskeyStore,
    PasskeyUse, ProviderFlow, ProviderIdentities, ProviderInit, ProviderKind, Result, SecondFactor,
    ValidateOptions, async_trait,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::Sha256;
use std::sync::Arc;
use webauthn_rs_core::WebauthnCore;
use webauthn_rs_core::error::WebauthnError;
use webauthn_rs_core::proto::{
    AuthenticationState, Credential, PublicKeyCredential, RegisterPublicKeyCredential,
    RegistrationState, UserVerificationPolicy,
};

/// The refusal of every failed ceremony.
pub const AUTHENTICATION_FAILED: &str = "Authentication failed";
/// The refusal of an unknown, expired or spent challenge.
pub const CHALLENGE_EXPIRED: &str = "Challenge expired or already used";

/// How strongly the authenticator must verify its user (PIN, biometrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum UserVerification {
    /// Asked for; a login without it is still accepted.
    #[default]
    Preferred,
    /// A login without it is refused.
    Required,
    /// Not asked for.
    Discouraged,
}

/// Whether the authenticator keeps the credential (a discoverable
/// credential, for username-less login).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ResidentKey {
    /// Discoverable credentials only (default).
    #[default]
    Required,
    /// Asked for.
    Preferred,
    /// Not asked for: logins then name an e-mail.
    Discouraged,
}

/// The provider's options (camelCase, as the other providers').
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[non_exhaustive]
pub struct PasskeyOptions {
    /// The relying party id: the site's domain (`shop.example`). Required.
    #[serde(default)]
    pub rp_id: String,
    /// The relying party's name shown by authenticators (default `Medusa`).
    #[serde(default = "default_rp_name")]
    pub rp_name: String,
    /// The web origins allowed to run the ceremonies
    /// (`["https://shop.example"]`). Required.
    #[serde(default)]
    pub origins: Vec<String>,
    /// `preferred` (default), `required` or `discouraged`.
    #[serde(default)]
    pub user_verification: UserVerification,
    /// How long a challenge lives, in milliseconds (default 60000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// `required` (default), `preferred` or `discouraged`.
    #[serde(default)]
    pub resident_key: ResidentKey,
}

fn default_rp_name() -> String {
    "Medusa".to_owned()
}

fn default_timeout_ms() -> u64 {
    60_000
}

impl Default for PasskeyOptions {
    fn default() -> Self {
        PasskeyOptions {
            rp_id: String::new(),
            rp_name: default_rp_name(),
            origins: Vec::new(),
            user_verification: UserVerification::default(),
            timeout_ms: default_timeout_ms(),
            resident_key: ResidentKey::default(),
        }
    }
}

impl ValidateOptions for PasskeyOptions {
    fn validate_options(&self) -> std::result::Result<(), OptionsError> {
        let rp_id = self.rp_id.trim();
        if rp_id.is_empty() {
            return Err(OptionsError::new(
                "rpId",
                "is required: the site's domain, e.g. \"shop.example\"",
            ));
        }
        if rp_id.contains("://") || rp_id.contains('/') || rp_id.contains(':') {
            return Err(OptionsError::new(
                "rpId",
                "must be a domain without scheme, port or path, e.g. \"shop.example\"",
            ));
        }
        if self.rp_name.trim().is_empty() {
            return Err(OptionsError::new("rpName", "must not be empty"));
        }
        if self.origins.is_empty() {
            return Err(OptionsError::new(
                "origins",
                "is required: the web origins allowed, e.g. [\"https://shop.example\"]",
            ));
        }
        for (i, origin) in self.origins.iter().enumerate() {
            let field = format!("origins[{i}]");
            let url = url::Url::parse(origin)
                .map_err(|_| OptionsError::new(field.clone(), "is not a URL"))?;
            let host = url.host_str().unwrap_or_default();
            if !matches!(url.scheme(), "https" | "http")
                || host.is_empty()
                || url.path() != "/"
                || url.query().is_some()
            {
                return Err(OptionsError::new(
                    field,
                    "must be an origin: scheme and host (and port), e.g. \"https://shop.example\"",
                ));
            }
            if !(host == rp_id || host.ends_with(&format!(".{rp_id}"))) {
                return Err(OptionsError::new(
                    field,
                    format!("its host must be rpId ({rp_id}) or a subdomain of it"),
                ));
            }
        }
        if !(1_000..=600_000).contains(&self.timeout_ms) {
            return Err(OptionsError::new(
                "timeoutMs",
                "must be between 1000 and 600000",
            ));
        }
        Ok(())
    }
}

/// The passkey provider: one relying party.
pub struct PasskeyProvider {
    id: String,
    core: WebauthnCore,
    policy: UserVerificationPolicy,
    resident_key: ResidentKey,
    ttl: Duration,
    /// Keys the stand-in credential ids of a login naming an unknown e-mail.
    decoy_key: [u8; 32],
}

impl std::fmt::Debug for PasskeyProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasskeyProvider")
            .field("id", &self.id)
            .field("origins", &self.core.get_allowed_origins())
            .field("resident_key", &self.resident_key)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl ProviderKind for PasskeyProvider {
    const IDENTIFIER: &'static str = "passkey";
    const DISPLAY_NAME: &'static str = "Passkey";
    const FLOW: ProviderFlow = ProviderFlow::Challenge;
    type Options = PasskeyOptions;
    const NEEDS_PASSKEY_STORE: bool = true;

    fn new(init: ProviderInit<PasskeyOptions>) -> std::result::Result<Self, OptionsError> {
        let o = init.options;
        let origins = o
            .origins
            .iter()
            .map(|s| url::Url::parse(s).map_err(|_| OptionsError::new("origins", "is not a URL")))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let ttl = Duration::from_millis(o.timeout_ms);
        let core = WebauthnCore::new_unsafe_experts_only(
            o.rp_name.trim(),
            o.rp_id.trim(),
            origins,
            ttl,
            None,
            None,
        );
        let mut decoy_key = [0u8; 32];
        getrandom::getrandom(&mut decoy_key)
            .map_err(|_| OptionsError::new("", "the system's random source failed"))?;
        Ok(PasskeyProvider {
            id: init.id,
            core,
            policy: match o.user_verification {
                UserVerification::Preferred => UserVerificationPolicy::Preferred,
                UserVerification::Required => UserVerificationPolicy::Required,
                UserVerification::Discouraged => UserVerificationPolicy::Discouraged_DO_NOT_USE,
            },
            resident_key: o.resident_key,
            ttl,
            decoy_key,
        })
    }
}

auth_module::register_provider!(PasskeyProvider);

/// The ceremony a challenge was issued for: part of its state key, so a
/// challenge of one never completes the other.
#[derive(Clone, Copy)]
enum Ceremony {
    Register,
    Login,
}

impl Ceremony {
    fn state_key(self, actor: &str, challenge: &str) -> String {
        let ceremony = match self {
            Ceremony::Register => "register",
            Ceremony::Login => "login",
        };
        format!("{ceremony}:{actor}:{challenge}")
    }
}

/// What a registration challenge keeps until its answer.
#[derive(serde::Serialize, Deserialize)]
struct PendingRegistration {
    state: RegistrationState,
    user_handle: String,
    email: Option<String>,
    /// The identity the passkey is added to (proven at the start).
    link_to: Option<String>,
}

/// What a login challenge keeps until its answer.
#[derive(serde::Serialize, Deserialize)]
struct PendingLogin {
    state: AuthenticationState,
}

fn failed() -> AuthOutcome {
    AuthOutcome::failed(AUTHENTICATION_FAILED)
}

fn expired() -> AuthOutcome {
    AuthOutcome::failed(CHALLENGE_EXPIRED)
}

/// A malformed body: 400 `invalid_data` naming the field.
fn malformed(field: &str, what: impl std::fmt::Display) -> Error {
    Error::invalid_data(format!("{field}: {what}"))
}

/// The body's `credential`, as `T` (a WebAuthn response JSON).
fn credential_of<T: DeserializeOwned>(req: &AuthRequest) -> Result<T> {
    parse_credential(req.body.get("credential"))
}

/// A `credential` field's value as `T` (a WebAuthn response JSON).
fn parse_credential<T: DeserializeOwned>(value: Option<&Value>) -> Result<T> {
    let value = value
        .filter(|v| v.is_object())
        .ok_or_else(|| malformed("credential", "must be an object"))?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut field = "credential".to_owned();
        let path = e.path().to_string();
        if !(path == "." || path.is_empty()) {
            field = format!("{field}.{path}");
        }
        // A missing field is reported at its parent: name it.
        let inner = e.inner().to_string();
        if let Some(missing) = inner
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
        {
            field = format!("{field}.{missing}");
            return malformed(&field, "is required");
        }
        malformed(&field, "is malformed")
    })
}

/// The challenge a response's client data answers (base64url), to find its state.
fn challenge_of(client_data_json: &[u8]) -> Result<String> {
    #[derive(Deserialize)]
    struct ClientData {
        challenge: String,
    }
    let field = "credential.response.clientDataJSON";
    let data: ClientData = serde_json::from_slice(client_data_json)
        .map_err(|_| malformed(field, "is not client data JSON with a challenge"))?;
    if data.challenge.is_empty()
        || data.challenge.len() > 128
        || B64.decode(&data.challenge).is_err()
    {
        return Err(malformed(field, "has no base64url challenge"));
    }
    Ok(data.challenge)
}

/// The body's optional `email`, trimmed and lower-cased.
fn email_of(req: &AuthRequest) -> Result<Option<String>> {
    match req.body.get("email") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let email = s.trim().to_lowercase();
            let shaped = email.len() <= 254
                && email
                    .split_once('@')
                    .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
                && !email.chars().any(char::is_whitespace);
            if shaped {
                Ok(Some(email))
            } else {
                Err(malformed("email", "is not an e-mail address"))
            }
        }
        Some(_) => Err(malformed("email", "must be a string")),
    }
}

fn random_handle() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| Error::unexpected("passkey: the random source failed").with_source(e))?;
    Ok(B64.encode(bytes))
}

/// The `publicKey` member of a WebAuthn options answer.
fn public_key_of(answer: impl serde::Serialize) -> Result<Value> {
    let mut value = serde_json::to_value(answer)
        .map_err(|e| Error::unexpected("passkey: options cannot be written").with_source(e))?;
    Ok(value
        .get_mut("publicKey")
        .map(Value::take)
        .unwrap_or(Value::Null))
}

fn stored_credential(record: &PasskeyCredential) -> Result<Credential> {
    serde_json::from_value(record.credential.clone()).map_err(|e| {
        Error::unexpected("passkey: a stored credential cannot be read").with_source(e)
    })
}

fn credential_json(credential: &Credential) -> Result<Value> {
    serde_json::to_value(credential)
        .map_err(|e| Error::unexpected("passkey: a credential cannot be written").with_source(e))
}

/// How a pending ceremony's state is read back.
#[derive(Clone, Copy)]
enum Read {
    /// Taken: the challenge works once.
    Take,
    /// Read and left: the caller spends it another way (an MFA challenge is
    /// completed once by the MFA flow).
    Keep,
}

impl PasskeyProvider {
    /// Keeps a ceremony's state under `key` for the challenge's lifetime.
    async fn keep_pending<T: serde::Serialize>(
        &self,
        ids: &ProviderIdentities,
        key: &str,
        pending: &T,
    ) -> Result<()> {
        let value = serde_json::to_value(pending)
            .map_err(|e| Error::unexpected("passkey: state cannot be written").with_source(e))?;
        ids.set_state(key, value, self.ttl).await
    }

    /// The ceremony state under `key`, if it is there and readable (an
    /// unreadable one is as good as gone).
    async fn pending<T: DeserializeOwned>(
        ids: &ProviderIdentities,
        key: &str,
        read: Read,
    ) -> Result<Option<T>> {
        let value = match read {
            Read::Take => ids.take_state(key).await?,
            Read::Keep => ids.get_state(key).await?,
        };
        Ok(value.and_then(|v| serde_json::from_value(v).ok()))
    }

    /// The credential a registration answer makes, if the verifier accepts
    /// it under `state` (why not is logged at debug).
    fn verify_registration(
        &self,
        credential: &RegisterPublicKeyCredential,
        state: &RegistrationState,
    ) -> Option<Credential> {
        self.core
            .register_credential(credential, state, None)
            .inspect_err(|e| {
                tracing::debug!(provider = %self.id, error = %e, "passkey registration refused");
            })
            .ok()
    }

    fn store(&self, ids: &ProviderIdentities) -> Result<Arc<dyn PasskeyStore>> {
        // The module refuses to start without one (NEEDS_PASSKEY_STORE).
        ids.passkeys()
            .ok_or_else(|| Error::unexpected("passkey: the identity store keeps no passkeys"))
    }

    /// The stand-in credential id of a login naming an e-mail with no
    /// passkey, so that the answer has the shape of a known one.
    fn decoy_id(&self, email: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.decoy_key).expect("any key length");
        mac.update(self.id.as_bytes());
        mac.update(b"\0");
        mac.update(email.as_bytes());
        B64.encode(&mac.finalize().into_bytes()[..16])
    }

    async fn start_registration(
        &self,
        req: &AuthRequest,
        ids: &ProviderIdentities,
    ) -> Result<AuthOutcome> {
        let store = self.store(ids)?;
        let email = email_of(req)?;
        let actor = req.actor_type.as_deref().unwrap_or_default();
        let (user_handle, exclude, link_to) = match &req.link_to {
            Some(auth_identity_id) => {
                let identity = ids.identity(auth_identity_id).await?;
                let handle = match identity.provider_identities.first() {
                    Some(p) => p.entity_id.clone(),
                    None => random_handle()?,
                };
                let exclude: Vec<Vec<u8>> = store
                    .list_passkeys(auth_identity_id)
                    .await?
                    .iter()
                    .filter(|p| p.provider == ids.provider())
                    .filter_map(|p| B64.decode(&p.credential_id).ok())
                    .collect();
                (handle, exclude, Some(auth_identity_id.clone()))
            }
            None => {
                if email.is_none() {
                    return Err(malformed("email", "is required"));
                }
                (random_handle()?, Vec::new(), None)
            }
        };
        let name = email
            .clone()
            .or_else(|| link_to.clone())
            .unwrap_or_else(|| user_handle.clone());
        let handle_bytes = B64
            .decode(&user_handle)
            .unwrap_or_else(|_| user_handle.as_bytes().to_vec());
        let builder = self
            .core
            .new_challenge_register_builder(&handle_bytes, &name, &name)
            .map_err(webauthn_failure)?
            .user_verification_policy(self.policy)
            .require_resident_key(self.resident_key == ResidentKey::Required)
            .exclude_credentials((!exclude.is_empty()).then_some(exclude));
        let (answer, state) = self
            .core
            .generate_challenge_register(builder)
            .map_err(webauthn_failure)?;
        let mut options = public_key_of(answer)?;
        self.shape_creation_options(&mut options);
        let challenge = options
            .get("challenge")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let pending = PendingRegistration {
            state,
            user_handle,
            email,
            link_to,
        };
        self.keep_pending(
            ids,
            &Ceremony::Register.state_key(actor, &challenge),
            &pending,
        )
        .await?;
        Ok(AuthOutcome::options(options))
    }

    /// What the library leaves to us in the creation options: `residentKey`
    /// `preferred` (it writes only `required` or `discouraged`).
    fn shape_creation_options(&self, options: &mut Value) {
        if self.resident_key == ResidentKey::Preferred
            && let Some(selection) = options
                .get_mut("authenticatorSelection")
                .and_then(Value::as_object_mut)
        {
            selection.insert("residentKey".into(), json!("preferred"));
            selection.insert("requireResidentKey".into(), json!(false));
        }
    }

    async fn finish_registration(
        &self,
        req: &AuthRequest,
        ids: &ProviderIdentities,
    ) -> Result<AuthOutcome> {
        let store = self.store(ids)?;
        let credential: RegisterPublicKeyCredential = credential_of(req)?;
        let challenge = challenge_of(&credential.response.client_data_json)?;
        let actor = req.actor_type.as_deref().unwrap_or_default();
        let key = Ceremony::Register.state_key(actor, &challenge);
        let Some(pending) = Self::pending::<PendingRegistration>(ids, &key, Read::Take).await?
        else {
            return Ok(expired());
        };
        // A passkey added to an identity needs the same proof at both steps.
        if pending.link_to != req.link_to {
            return Ok(failed());
        }
        let Some(verified) = self.verify_registration(&credential, &pending.state) else {
            return Ok(failed());
        };
        let credential_id = B64.encode(&verified.cred_id);
        if store
            .find_passkey(ids.provider(), &credential_id)
            .await?
            .is_some()
        {
            return Ok(failed());
        }
        let transports = credential
            .response
            .transports
            .as_ref()
            .map(|ts| {
                ts.iter()
                    .filter_map(|t| serde_json::to_value(t).ok())
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    // A transport the library does not know reads back as "unknown".
                    .filter(|t| t != "unknown")
                    .collect()
            })
            .unwrap_or_default();
        let identity = match &pending.link_to {
            Some(auth_identity_id) => {
                let identity = ids.identity(auth_identity_id).await?;
                if identity.provider_identities.is_empty() {
                    let mut new = NewProviderIdentity::new(ids.provider(), &pending.user_handle);
                    new.user_metadata = pending.email.as_deref().map(email_metadata);
                    ids.attach(auth_identity_id, new).await?
                } else {
                    identity
                }
            }
            None => {
                let mut new = NewProviderIdentity::new(ids.provider(), &pending.user_handle);
                new.user_metadata = pending.email.as_deref().map(email_metadata);
                ids.create(new).await?
            }
        };
        let mut new = NewPasskeyCredential::new(
            &identity.id,
            ids.provider(),
            credential_id,
            &pending.user_handle,
            credential_json(&verified)?,
        );
        new.email = pending.email.clone();
        new.sign_count = verified.counter;
        new.backed_up = verified.backup_state;
        new.transports = transports;
        let record = match store.create_passkey(new).await {
            Ok(record) => record,
            // Registered by a concurrent answer in the meantime.
            Err(e) if e.kind() == ErrorKind::DuplicateError => return Ok(failed()),
            Err(e) => return Err(e),
        };
        ids.emit(
            "auth.passkey_added",
            json!({
                "auth_identity_id": identity.id,
                "passkey_id": record.id,
                "provider": ids.provider(),
                "actor_type": actor,
            }),
        );
        ids.audit(
            NewAuditEntry::new("passkey.added", "succeeded")
                .identity(&identity.id)
                .actor_type(actor)
                .detail("passkey_id", record.id.as_str()),
        )
        .await;
        Ok(if pending.link_to.is_some() {
            AuthOutcome::linked(identity)
        } else {
            AuthOutcome::authenticated(identity)
        })
    }

    async fn finish_login(
        &self,
        req: &AuthRequest,
        ids: &ProviderIdentities,
    ) -> Result<AuthOutcome> {
        let store = self.store(ids)?;
        let credential: PublicKeyCredential = credential_of(req)?;
        let challenge = challenge_of(&credential.response.client_data_json)?;
        let actor = req.actor_type.as_deref().unwrap_or_default();
        let key = Ceremony::Login.state_key(actor, &challenge);
        let Some(PendingLogin { state }) = Self::pending(ids, &key, Read::Take).await? else {
            return Ok(expired());
        };
        let credential_id = B64.encode(&credential.raw_id);
        let Some(record) = store.find_passkey(ids.provider(), &credential_id).await? else {
            return Ok(failed());
        };
        // The user handle the authenticator gives must be the credential's.
        if let Some(handle) = &credential.response.user_handle
            && B64.encode(handle) != record.user_handle
        {
            return Ok(failed());
        }
        // The credential's identity, through this provider's identity of it.
        let Some(identity) = ids.find(&record.user_handle).await? else {
            return Ok(failed());
        };
        if identity.id != record.auth_identity_id {
            return Ok(failed());
        }
        if !self
            .check_assertion(&*store, ids, &record, &credential, state)
            .await?
        {
            return Ok(failed());
        }
        Ok(AuthOutcome::authenticated(identity))
    }

    /// Checks `credential` (an assertion) against `record` as stored now,
    /// under `state` (its challenge); on success moves the stored counter by
    /// a compare-and-set. A counter that does not move forward is refused
    /// and reported (`auth.passkey_clone_suspected`).
    async fn check_assertion(
        &self,
        store: &dyn PasskeyStore,
        ids: &ProviderIdentities,
        record: &PasskeyCredential,
        credential: &PublicKeyCredential,
        mut state: AuthenticationState,
    ) -> Result<bool> {
        let mut stored = stored_credential(record)?;
        // Checked against the credential as stored now (its counter).
        state.set_allowed_credentials(vec![stored.clone()]);
        let result = match self.core.authenticate_credential(credential, &state) {
            Ok(result) => result,
            Err(WebauthnError::CredentialPossibleCompromise) => {
                tracing::warn!(provider = %self.id, passkey = %record.id, "a passkey's counter went backwards");
                ids.emit(
                    "auth.passkey_clone_suspected",
                    json!({
                        "auth_identity_id": record.auth_identity_id,
                        "passkey_id": record.id,
                        "provider": ids.provider(),
                    }),
                );
                return Ok(false);
            }
            Err(e) => {
                tracing::debug!(provider = %self.id, error = %e, "passkey assertion refused");
                return Ok(false);
            }
        };
        if result.counter() > stored.counter {
            stored.counter = result.counter();
        }
        stored.backup_state = result.backup_state();
        if result.backup_eligible() {
            stored.backup_eligible = true;
        }
        let used = PasskeyUse::new(
            stored.counter,
            credential_json(&stored)?,
            stored.backup_state,
            time::OffsetDateTime::now_utc(),
        );
        // None: another use from this counter won (a replay or a clone).
        Ok(store
            .record_passkey_use(&record.id, record.sign_count, used)
            .await?
            .is_some())
    }

    async fn start_login(
        &self,
        req: &AuthRequest,
        ids: &ProviderIdentities,
    ) -> Result<AuthOutcome> {
        let store = self.store(ids)?;
        let email = email_of(req)?;
        let actor = req.actor_type.as_deref().unwrap_or_default();
        let mut decoy = None;
        let credentials: Vec<Credential> = match &email {
            Some(email) => {
                let found = store.passkeys_for_email(ids.provider(), email).await?;
                if found.is_empty() {
                    decoy = Some(self.decoy_id(email));
                }
                found.iter().map(stored_credential).collect::<Result<_>>()?
            }
            None => Vec::new(),
        };
        let builder = self
            .core
            .new_challenge_authenticate_builder(credentials, Some(self.policy))
            .map_err(webauthn_failure)?;
        let (answer, state) = self
            .core
            .generate_challenge_authenticate(builder)
            .map_err(webauthn_failure)?;
        let mut options = public_key_of(answer)?;
        if let (Some(id), Some(options)) = (decoy, options.as_object_mut()) {
            options.insert(
                "allowCredentials".into(),
                json!([{ "type": "public-key", "id": id, "transports": ["internal", "hybrid"] }]),
            );
        }
        let challenge = options
            .get("challenge")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        self.keep_pending(
            ids,
            &Ceremony::Login.state_key(actor, &challenge),
            &PendingLogin { state },
        )
        .await?;
        Ok(AuthOutcome::options(options))
    }
}

fn email_metadata(email: &str) -> Metadata {
    let mut m = Metadata::new();
    m.insert("email".into(), Value::String(email.to_owned()));
    m
}

fn webauthn_failure(e: WebauthnError) -> Error {
    Error::unexpected(format!("passkey: {e}"))
}

#[async_trait]
impl AuthProvider for PasskeyProvider {
    async fn authenticate(
        &self,
        req: AuthRequest,
        ids: &ProviderIdentities,
    ) -> Result<AuthOutcome> {
        self.start_login(&req, ids).await
    }

    async fn register(&self, req: AuthRequest, ids: &ProviderIdentities) -> Result<AuthOutcome> {
        if req.body.contains_key("credential") {
            self.finish_registration(&req, ids).await
        } else {
            self.start_registration(&req, ids).await
        }
    }

    async fn validate_callback(
        &self,
        req: AuthRequest,
        ids: &ProviderIdentities,
    ) -> Result<AuthOutcome> {
        self.finish_login(&req, ids).await
    }
    fn second_factor(&self) -> Option<&dyn SecondFactor> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(v: Value) -> std::result::Result<PasskeyOptions, String> {
        let o: PasskeyOptions = serde_json::from_value(v).map_err(|e| e.to_string())?;
        o.validate_options().map_err(|e| e.to_string())?;
        Ok(o)
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let o = options(json!({"rpId": "shop.example", "origins": ["https://shop.example"]}))
            .expect("valid");
        assert_eq!(o.rp_name, "Medusa");
        assert_eq!(o.timeout_ms, 60_000);
        assert_eq!(o.user_verification, UserVerification::Preferred);
        assert_eq!(o.resident_key, ResidentKey::Required);
    }

    #[test]
    fn bad_options_name_their_field() {
        for (v, field) in [
            (json!({"origins": ["https://shop.example"]}), "rpId"),
            (
                json!({"rpId": "https://shop.example", "origins": ["https://shop.example"]}),
                "rpId",
            ),
            (json!({"rpId": "shop.example"}), "origins"),
            (
                json!({"rpId": "shop.example", "origins": ["shop.example"]}),
                "origins[0]",
            ),
            (
                json!({"rpId": "shop.example", "origins": ["https://shop.example/login"]}),
                "origins[0]",
            ),
            (
                json!({"rpId": "shop.example", "origins": ["https://shop.example", "https://evil.example"]}),
                "origins[1]",
            ),
            (
                json!({"rpId": "shop.example", "origins": ["https://shop.example"], "timeoutMs": 10}),
                "timeoutMs",
            ),
            (
                json!({"rpId": "shop.example", "origins": ["https://shop.example"], "rpName": " "}),
                "rpName",
            ),
        ] {
            let e = options(v.clone()).expect_err("refused");
            assert!(e.contains(field), "{v}: {e}");
        }
        for v in [
            json!({"rpId": "shop.example", "origins": ["https://shop.example"], "userVerification": "always"}),
            json!({"rpId": "shop.example", "origins": ["https://shop.example"], "residentKey": "yes"}),
            json!({"rpId": "shop.example", "origins": ["https://shop.example"], "rp_id": "x"}),
        ] {
            assert!(options(v.clone()).is_err(), "{v}");
        }
        // A subdomain origin of the rp id is allowed.
        options(json!({"rpId": "shop.example", "origins": ["https://www.shop.example:8443"]}))
            .expect("a subdomain");
    }

    #[test]
    fn client_data_must_carry_a_base64url_challenge() {
        assert_eq!(
            challenge_of(br#"{"type":"webauthn.get","challenge":"AAEC"}"#).expect("read"),
            "AAEC"
        );
        for bad in [
            &b"not json"[..],
            br#"{}"#,
            br#"{"challenge":"***"}"#,
            br#"{"challenge":""}"#,
        ] {
            let e = challenge_of(bad).expect_err("refused");
            assert_eq!(e.kind(), ErrorKind::InvalidData);
            assert!(
                e.message()
                    .starts_with("credential.response.clientDataJSON")
            );
        }
    }

    #[test]
    fn ceremonies_and_actors_key_challenges_apart() {
        let keys = [
            Ceremony::Register.state_key("customer", "c"),
            Ceremony::Login.state_key("customer", "c"),
            Ceremony::Login.state_key("user", "c"),
        ];
        assert_ne!(keys[0], keys[1]);
        assert_ne!(keys[1], keys[2]);
    }
}
