//! One gate: the core issues every credential (login answers, step tokens,
//! refreshed tokens, sessions, MFA completions, reset tokens) and answers one
//! question for every protected operation: may this credential do this?
//!
//! The answer comes from one table, [`may`]: a credential's
//! [`CredentialKind`] against an [`Action`]. The HTTP layer parses, calls
//! [`Gate`] and writes JSON; it signs nothing and decides no access.
//!
//! | credential | may |
//! |---|---|
//! | full token or session (actor linked, no step owed) | every protected action; not [`Action::UpdatePassword`] |
//! | unregistered token (no actor yet, no step owed) | refresh, create a session, revoke itself, MFA enrolment (list, enrol, verify and disable factors, recovery codes), the SSO user route, host routes that allow unregistered, social linking, adding a passkey |
//! | verification step | request a verification, refresh (re-runs the steps) |
//! | MFA step | verify an MFA challenge, refresh (a new challenge) |
//! | reset token | [`Action::UpdatePassword`] of its own provider and actor type |
//! | stale (older credential version, revoked, link removed, identity gone, device ended) | nothing |
//!
//! A token says which step it is in with the `step` claim (`"verification"`
//! or `"mfa"`, see [`Step`]); a token that owes an MFA challenge by Medusa's
//! claims (`mfa_enabled` without `mfa_challenge_completed_at`) is an MFA step
//! token too, whoever issued it.
//!
//! ```
//! use auth_module::gate::{Action, AuthPolicy, CredentialKind, may};
//! assert!(may(CredentialKind::VerificationStep, &Action::RequestVerification));
//! assert!(!may(CredentialKind::VerificationStep, &Action::CreateSession));
//! assert!(!may(CredentialKind::MfaStep, &Action::ListFactors));
//! let host = AuthPolicy::any_actor();
//! assert!(may(CredentialKind::Full, &Action::Host(&host)));
//! assert!(!may(CredentialKind::Unregistered, &Action::Host(&host)));
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::accounts::PasswordReset;
use crate::error::{Error, ErrorKind, Result};
use crate::flows::{DeviceCheck, Devices, MfaAnswer, MfaChallenge, Sessions};
use crate::model::{AuthIdentity, Metadata};
use crate::module::{AuthModule, LoginOutcome};
use crate::provider::{AuthRequest, ProviderFlow};
use crate::records::Verification;
use crate::records_security::NewAuditEntry;
use crate::token::{AuthClaims, Step, Tokens};

/// What kind of credential a caller holds, read from its claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CredentialKind {
    /// A linked actor and no step owed.
    Full,
    /// No actor linked yet, no step owed.
    Unregistered,
    /// A login that must verify an entity first (`step: "verification"`).
    VerificationStep,
    /// A login that must answer an MFA challenge (`step: "mfa"`, or
    /// `mfa_enabled` without a completed challenge).
    MfaStep,
    /// A password reset token.
    Reset,
}

impl CredentialKind {
    /// The kind of an auth token's (or session's) `claims`.
    pub fn of(claims: &AuthClaims) -> Self {
        match claims.step {
            Some(Step::Verification) => CredentialKind::VerificationStep,
            Some(Step::Mfa) => CredentialKind::MfaStep,
            None if claims.mfa_pending() => CredentialKind::MfaStep,
            None if claims.actor_id.is_empty() => CredentialKind::Unregistered,
            None => CredentialKind::Full,
        }
    }
}

/// Every protected operation.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Action<'a> {
    /// `POST /auth/token/refresh`.
    Refresh,
    /// `POST /auth/session` (bearer only).
    CreateSession,
    /// `GET /auth/mfa/factors`.
    ListFactors,
    /// `POST /auth/mfa/factors`.
    EnrolFactor,
    /// `POST /auth/mfa/factors/{id}/verify`.
    VerifyFactor,
    /// `DELETE /auth/mfa/factors/{id}`.
    DisableFactor,
    /// `POST /auth/mfa/recovery-codes`.
    RecoveryCodes,
    /// `POST /auth/mfa/challenges/{id}/verify`.
    VerifyChallenge,
    /// `POST /auth/verification/request`.
    RequestVerification,
    /// `POST /auth/{provider}/user` (bearer only, actor `user`).
    SsoUser,
    /// A redirect login started with proof of an auth identity to link to
    /// (bearer only).
    LinkSocial,
    /// The callback of a redirect login started with [`Action::LinkSocial`]:
    /// the proof must come again.
    CompleteLink,
    /// A passkey registration (both its steps) adding the passkey to the
    /// auth identity the caller proves it holds (bearer or session).
    AddPasskey,
    /// `GET /auth/passkeys`, `PATCH|DELETE /auth/passkeys/{id}` (full
    /// credentials only).
    ManagePasskeys,
    /// `GET /auth/devices`, `DELETE /auth/devices/{id}`,
    /// `DELETE /auth/devices?other=true` (full credentials only).
    ManageDevices,
    /// `POST /auth/token/revoke` (bearer only): ends the token's device.
    RevokeToken,
    /// `GET /auth/identity`: the caller's own auth identity, its sign-in
    /// methods (full credentials only).
    ReadIdentity,
    /// `POST /auth/{actor}/{provider}/update` (reset tokens only).
    UpdatePassword,
    /// A host application's route, under its policy.
    Host(&'a AuthPolicy),
}

impl Action<'_> {
    /// Which credentials the action reads: `(session, bearer)`.
    fn methods(&self) -> (bool, bool) {
        match self {
            Action::CreateSession | Action::SsoUser | Action::LinkSocial | Action::RevokeToken => {
                (false, true)
            }
            Action::UpdatePassword => (false, false),
            Action::Host(p) => (p.session, p.bearer),
            _ => (true, true),
        }
    }

    /// Whether claims of this actor type are for this action at all (others
    /// are passed over, as if absent).
    fn admits(&self, claims: &AuthClaims) -> bool {
        match self {
            Action::SsoUser => claims.actor_type == "user",
            Action::Host(p) => p.admits_actor(&claims.actor_type),
            _ => true,
        }
    }
}

/// The table: whether a credential of `kind` may do `action`. Staleness
/// (an older credential version, a removed link, a deleted identity) is
/// checked before, and refuses everything.
pub fn may(kind: CredentialKind, action: &Action<'_>) -> bool {
    use Action as A;
    use CredentialKind as K;
    match (kind, action) {
        (K::Reset, A::UpdatePassword) => true,
        (K::Reset, _) | (_, A::UpdatePassword) => false,
        (K::Full, _) => true,
        (
            K::Unregistered,
            A::Refresh
            | A::CreateSession
            | A::ListFactors
            | A::EnrolFactor
            | A::VerifyFactor
            | A::DisableFactor
            | A::RecoveryCodes
            | A::SsoUser
            | A::LinkSocial
            | A::CompleteLink
            | A::AddPasskey
            | A::RevokeToken,
        ) => true,
        (K::Unregistered, A::Host(p)) => p.allow_unregistered,
        (K::VerificationStep, A::RequestVerification | A::Refresh) => true,
        (K::MfaStep, A::VerifyChallenge | A::Refresh) => true,
        _ => false,
    }
}

/// What a host route accepts, as Medusa's
/// `authenticate(actor_types, ["bearer", "session"], { allow_unregistered })`,
/// checked by [`Gate::authorize`] with [`Action::Host`].
///
/// Step tokens never pass: a caller whose token still owes an MFA challenge
/// gets 401 `MFA verification is required to complete this request`.
/// [`AuthPolicy::mfa_max_age`] adds a step-up rule.
#[derive(Debug, Clone)]
pub struct AuthPolicy {
    actor_types: Option<Vec<String>>,
    bearer: bool,
    session: bool,
    allow_unregistered: bool,
    mfa_max_age: Option<Duration>,
}

impl AuthPolicy {
    /// Any actor type (`"*"`), bearer or session, registered actors only.
    pub fn any_actor() -> Self {
        AuthPolicy {
            actor_types: None,
            bearer: true,
            session: true,
            allow_unregistered: false,
            mfa_max_age: None,
        }
    }

    /// Only these actor types.
    pub fn actor_types<I: IntoIterator<Item = S>, S: Into<String>>(types: I) -> Self {
        AuthPolicy {
            actor_types: Some(types.into_iter().map(Into::into).collect()),
            ..Self::any_actor()
        }
    }

    /// Accept bearer tokens (default true).
    pub fn bearer(mut self, yes: bool) -> Self {
        self.bearer = yes;
        self
    }

    /// Accept the session cookie (default true).
    pub fn session(mut self, yes: bool) -> Self {
        self.session = yes;
        self
    }

    /// Accept callers with no linked actor yet (`actor_id == ""`).
    pub fn allow_unregistered(mut self, yes: bool) -> Self {
        self.allow_unregistered = yes;
        self
    }

    /// No effect: a token that owes a login step (an MFA challenge or a
    /// verification) is refused on every host route ([`may`]).
    #[deprecated(note = "step tokens are refused on every host route; see auth_module::gate")]
    pub fn mfa_gate(self, _yes: bool) -> Self {
        self
    }

    /// Step-up: a caller whose MFA challenge was completed more than
    /// `max_age` ago gets 401 `MFA was verified too long ago to complete this
    /// request` (callers without MFA are not affected).
    pub fn mfa_max_age(mut self, max_age: Duration) -> Self {
        self.mfa_max_age = Some(max_age);
        self
    }

    fn admits_actor(&self, actor_type: &str) -> bool {
        match &self.actor_types {
            None => true,
            Some(types) => types.iter().any(|t| t == "*" || t == actor_type),
        }
    }
}

/// How a request authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthMethod {
    /// `Authorization: Bearer <jwt>`.
    Bearer,
    /// The session cookie.
    Session,
}

/// The credentials a request presents: a bearer token and a session id
/// (the cookie's value), either or both.
#[derive(Debug, Clone, Copy, Default)]
pub struct Presented<'a> {
    /// The bearer token.
    pub bearer: Option<&'a str>,
    /// The session id.
    pub session: Option<&'a str>,
}

impl<'a> Presented<'a> {
    /// A bearer token alone.
    pub fn bearer(token: &'a str) -> Self {
        Presented {
            bearer: Some(token),
            session: None,
        }
    }

    /// A session id alone.
    pub fn session(sid: &'a str) -> Self {
        Presented {
            bearer: None,
            session: Some(sid),
        }
    }
}

/// A credential the gate let through for an action.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Grant {
    /// The credential's claims.
    pub claims: AuthClaims,
    /// How it was presented.
    pub method: AuthMethod,
    /// What kind of credential it is.
    pub kind: CredentialKind,
    /// The identity as stored now (without secrets), shared with the
    /// identity cache.
    pub identity: Arc<AuthIdentity>,
}

/// Why the gate refused.
#[derive(Debug)]
#[non_exhaustive]
pub enum Refusal {
    /// No usable credential (none, bad, expired, stale, or not one the
    /// action takes): HTTP 401 `{"message":"Unauthorized"}`.
    Unauthorized,
    /// The credential owes an MFA challenge: 401 `{"message":"MFA
    /// verification is required to complete this request"}`.
    MfaRequired,
    /// The step-up rule: 401 `{"message":"MFA was verified too long ago to
    /// complete this request"}`.
    MfaTooOld,
    /// A refresh of a token that names no provider: 401
    /// `The auth provider is not set while refreshing token`.
    NoProvider,
    /// A store could not answer (HTTP 503), or another error while issuing.
    Failed(Error),
}

impl Refusal {
    /// The client-facing message of a 401 refusal.
    pub fn message(&self) -> &'static str {
        match self {
            Refusal::MfaRequired => "MFA verification is required to complete this request",
            Refusal::MfaTooOld => "MFA was verified too long ago to complete this request",
            Refusal::NoProvider => "The auth provider is not set while refreshing token",
            _ => "Unauthorized",
        }
    }
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Refusal::Failed(e)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Failed(e) => write!(f, "{e}"),
            other => f.write_str(other.message()),
        }
    }
}

impl std::error::Error for Refusal {}

/// What a login step, a refresh or an MFA completion answers.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Answer {
    /// A token (full, or unregistered before the host links an actor).
    Token {
        /// The signed token.
        token: String,
    },
    /// The identity must verify first; `token` is a verification step token.
    VerificationRequired {
        /// The step token.
        token: String,
        /// The pending verification row, if ever requested.
        verification: Option<Verification>,
    },
    /// The identity must answer `challenge`; `token` is an MFA step token.
    MfaRequired {
        /// The step token.
        token: String,
        /// The challenge.
        challenge: MfaChallenge,
    },
    /// The client continues at `location` (redirect providers).
    Redirect {
        /// Where to continue.
        location: String,
    },
    /// The client answers the challenge in `options` (passkeys), over HTTP
    /// 200 `{"options": …}`.
    Options {
        /// WebAuthn creation or request options.
        options: serde_json::Value,
    },
    /// Refused; `message` is client-safe (HTTP 401).
    Failed {
        /// Why.
        message: String,
    },
    /// Over a rate limit (HTTP 429).
    Throttled {
        /// When to try again, at the latest.
        retry_after: Duration,
    },
}

/// Which login step [`Gate::login`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoginStep {
    /// `POST /auth/{actor}/{provider}/register`.
    Register,
    /// `GET|POST /auth/{actor}/{provider}`.
    Authenticate,
    /// `GET|POST /auth/{actor}/{provider}/callback`.
    Callback,
}

/// Claims an embedding host adds to every token the gate issues (login,
/// registration, refresh, MFA completion; never step tokens), as Medusa 2.21
/// with its `rbac` flag adds `app_metadata.roles`.
#[crate::async_trait]
pub trait ClaimsHook: Send + Sync + fmt::Debug + 'static {
    /// Adds to `app_metadata` (which holds `{actor_type}_id` when linked) of
    /// a token for `identity` acting as `actor_type`. An error fails the
    /// issue (a store error: HTTP 503).
    async fn add_claims(
        &self,
        identity: &AuthIdentity,
        actor_type: &str,
        app_metadata: &mut Metadata,
    ) -> Result<()>;
}

/// The default [`ClaimsHook`]: a linked token carries the identity's
/// `app_metadata.roles` (kept there with the management API's
/// `PATCH /admin/auth-identities/{id}/app-metadata`), when present.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoredRoles;

#[crate::async_trait]
impl ClaimsHook for StoredRoles {
    async fn add_claims(
        &self,
        identity: &AuthIdentity,
        actor_type: &str,
        app_metadata: &mut Metadata,
    ) -> Result<()> {
        if identity.actor_id(actor_type).is_some()
            && let Some(roles) = identity.app_metadata.as_ref().and_then(|m| m.get("roles"))
        {
            app_metadata.insert("roles".to_owned(), roles.clone());
        }
        Ok(())
    }
}

#[derive(Clone)]
struct Inner {
    module: AuthModule,
    tokens: Tokens,
    sessions: Sessions,
    devices: Devices,
    resets: PasswordReset,
    hook: Arc<dyn ClaimsHook>,
}

/// The gate: issues and checks every credential over an [`AuthModule`], a
/// token signer and the sessions. Cheap to clone.
///
/// ```
/// # async fn demo(gate: auth_module::gate::Gate, token: &str) {
/// use auth_module::gate::{Action, Presented};
/// match gate.authorize(&Presented::bearer(token), Action::ListFactors).await {
///     Ok(grant) => println!("identity {}", grant.identity.id),
///     Err(refusal) => println!("refused: {refusal}"),
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct Gate {
    inner: Arc<Inner>,
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate")
            .field("module", &self.inner.module)
            .field("tokens", &self.inner.tokens)
            .field("hook", &self.inner.hook)
            .finish_non_exhaustive()
    }
}

/// The devices of `module`'s identity store, dropped after `idle_ttl`
/// unused, announced on its event bus.
fn devices_of(module: &AuthModule, idle_ttl: Duration) -> Devices {
    Devices::new(
        module.device_store().cloned(),
        idle_ttl,
        module.events().clone(),
    )
}

impl Gate {
    /// A gate over `module`, signing with `tokens`, keeping `sessions`.
    pub fn new(module: AuthModule, tokens: Tokens, sessions: Sessions) -> Self {
        Gate {
            inner: Arc::new(Inner {
                resets: PasswordReset::new(module.clone(), tokens.clone()),
                devices: devices_of(&module, crate::flows::DEFAULT_DEVICE_IDLE_TTL),
                module,
                tokens,
                sessions,
                hook: Arc::new(StoredRoles),
            }),
        }
    }

    /// Adds claims to every token through `hook` (default: [`StoredRoles`]).
    pub fn with_claims_hook(mut self, hook: Arc<dyn ClaimsHook>) -> Self {
        Arc::make_mut(&mut self.inner).hook = hook;
        self
    }

    /// Drops devices unused for `idle_ttl` (default 30 days).
    pub fn with_device_idle_ttl(mut self, idle_ttl: Duration) -> Self {
        let inner = Arc::make_mut(&mut self.inner);
        inner.devices = devices_of(&inner.module, idle_ttl);
        self
    }

    /// The devices.
    pub fn devices(&self) -> &Devices {
        &self.inner.devices
    }

    /// The auth module.
    pub fn module(&self) -> &AuthModule {
        &self.inner.module
    }

    /// The token signer (its verifying side: the JWKS, token checks).
    pub fn tokens(&self) -> &Tokens {
        &self.inner.tokens
    }

    /// The sessions.
    pub fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }

    /// The password reset flow (its reset tokens, and the update limit).
    pub fn resets(&self) -> &PasswordReset {
        &self.inner.resets
    }

    /// May the credentials `presented` do `action`? The session first, then
    /// the bearer token, as Medusa does; each only if the action reads it.
    pub async fn authorize(
        &self,
        presented: &Presented<'_>,
        action: Action<'_>,
    ) -> std::result::Result<Grant, Refusal> {
        let (session_ok, bearer_ok) = action.methods();
        if session_ok
            && let Some(sid) = presented.session
            && let Some(claims) = self.inner.sessions.get(sid).await?
            && let Some(grant) = self.judge(claims, AuthMethod::Session, &action).await?
        {
            return Ok(grant);
        }
        if bearer_ok
            && let Some(token) = presented.bearer
            && let Some(claims) = self.inner.tokens.verify(token)
            && let Some(grant) = self.judge(claims, AuthMethod::Bearer, &action).await?
        {
            return Ok(grant);
        }
        Err(Refusal::Unauthorized)
    }

    /// `Ok(None)`: these claims are not for this action (another actor type,
    /// stale): the next credential is tried. `Err`: refused outright.
    async fn judge(
        &self,
        claims: AuthClaims,
        method: AuthMethod,
        action: &Action<'_>,
    ) -> std::result::Result<Option<Grant>, Refusal> {
        if !action.admits(&claims) {
            return Ok(None);
        }
        let Some(provider) = claims.auth_provider.as_deref() else {
            // Nothing to check it against: never enough, and refresh says why.
            return match action {
                Action::Refresh => Err(Refusal::NoProvider),
                _ => Ok(None),
            };
        };
        let Some(identity) = self.current(&claims, provider).await? else {
            return Ok(None);
        };
        if let Some(device) = claims.device_id.as_deref()
            && self.inner.devices.check(&identity.id, device).await? == DeviceCheck::Ended
        {
            return Ok(None);
        }
        let kind = CredentialKind::of(&claims);
        if !may(kind, action) {
            // A token that owes the MFA challenge is told so (Medusa's gate);
            // any other refusal lets the next credential be tried.
            return match kind {
                CredentialKind::MfaStep => Err(Refusal::MfaRequired),
                _ => Ok(None),
            };
        }
        if let Action::Host(policy) = action
            && let Some(max_age) = policy.mfa_max_age
            && claims.mfa_older_than(max_age)
        {
            return Err(Refusal::MfaTooOld);
        }
        Ok(Some(Grant {
            claims,
            method,
            kind,
            identity,
        }))
    }

    /// The identity `claims` speak for, if they are still current: the
    /// identity exists with a provider identity at `provider`, its credential
    /// version is the token's, and a non-empty `actor_id` is still its link.
    async fn current(
        &self,
        claims: &AuthClaims,
        provider: &str,
    ) -> Result<Option<Arc<AuthIdentity>>> {
        Ok(self
            .inner
            .module
            .identity_with_credential_version(&claims.auth_identity_id, provider)
            .await?
            .filter(|(identity, version)| {
                *version == claims.cv
                    && (claims.actor_id.is_empty()
                        || identity.actor_id(&claims.actor_type) == Some(claims.actor_id.as_str()))
            })
            .map(|(identity, _)| identity))
    }

    /// The claims of a token for `identity` acting as `actor_type` through
    /// `provider`, with the host's claims.
    async fn claims(
        &self,
        identity: &AuthIdentity,
        actor_type: &str,
        provider: &str,
    ) -> Result<AuthClaims> {
        let mut claims = self.inner.tokens.claims_for(identity, actor_type, provider);
        self.inner
            .hook
            .add_claims(identity, actor_type, &mut claims.app_metadata)
            .await?;
        Ok(claims)
    }

    fn step_token(
        &self,
        identity: &AuthIdentity,
        actor: &str,
        provider: &str,
        step: Step,
    ) -> Result<String> {
        let claims = self
            .inner
            .tokens
            .claims_for(identity, actor, provider)
            .for_step(step);
        self.inner.tokens.sign(&claims)
    }

    /// The answer to `outcome` for `actor_type` through `provider`: a token,
    /// or a step token with the step.
    pub async fn answer(
        &self,
        outcome: LoginOutcome,
        actor_type: &str,
        provider: &str,
    ) -> Result<Answer> {
        self.answer_on(outcome, actor_type, provider, None).await
    }

    /// [`Gate::answer`], a token going to `device` when given (a refresh
    /// keeps its device), else to a new device.
    async fn answer_on(
        &self,
        outcome: LoginOutcome,
        actor_type: &str,
        provider: &str,
        device: Option<String>,
    ) -> Result<Answer> {
        Ok(match outcome {
            LoginOutcome::Authenticated {
                identity, linked, ..
            } => {
                let mut claims = self.claims(&identity, actor_type, provider).await?;
                claims.linked = linked;
                claims.device_id = match device {
                    Some(device) => Some(device),
                    None => {
                        self.inner
                            .devices
                            .start(
                                &identity.id,
                                actor_type,
                                provider,
                                Some(identity.created_at),
                            )
                            .await?
                    }
                };
                Answer::Token {
                    token: self.inner.tokens.sign(&claims)?,
                }
            }
            LoginOutcome::VerificationRequired {
                identity,
                verification,
                ..
            } => Answer::VerificationRequired {
                token: self.step_token(&identity, actor_type, provider, Step::Verification)?,
                verification,
            },
            LoginOutcome::MfaRequired {
                identity,
                challenge,
                ..
            } => Answer::MfaRequired {
                token: self.step_token(&identity, actor_type, provider, Step::Mfa)?,
                challenge,
            },
            LoginOutcome::Redirect { location, .. } => Answer::Redirect { location },
            LoginOutcome::Options { options, .. } => Answer::Options { options },
            LoginOutcome::Failed { message, .. } => Answer::Failed { message },
            LoginOutcome::Throttled { retry_after, .. } => Answer::Throttled { retry_after },
        })
    }

    /// Runs a login `step` of `provider` with `req` (its `actor_type` set),
    /// and answers it. A redirect login carrying proof of an auth identity
    /// (a valid, current bearer token) links to it; its callback links only
    /// when it carries proof of the same identity (bearer or session).
    pub async fn login(
        &self,
        step: LoginStep,
        provider: &str,
        req: AuthRequest,
        presented: &Presented<'_>,
    ) -> Result<Answer> {
        let module = &self.inner.module;
        let actor = req.actor_type.clone().unwrap_or_default();
        let flow = module.provider_info(provider).map(|p| p.flow);
        let redirect = flow == Some(ProviderFlow::Redirect);
        let proof = match step {
            LoginStep::Authenticate if redirect && presented.bearer.is_some() => {
                Some(Action::LinkSocial)
            }
            LoginStep::Callback if redirect => Some(Action::CompleteLink),
            LoginStep::Register if flow == Some(ProviderFlow::Challenge) => {
                Some(Action::AddPasskey)
            }
            _ => None,
        };
        let proved = match proof {
            // A credential that proves nothing links nothing, so a stale
            // token kept by a client never blocks a login.
            Some(action) => match self.authorize(presented, action).await {
                Ok(grant) => Some((grant.identity.id.clone(), grant.claims.device_id.clone())),
                Err(Refusal::Failed(e)) if e.kind() == ErrorKind::Unavailable => return Err(e),
                Err(_) => None,
            },
            None => None,
        };
        // A link answers a token on the caller's own device (the browser
        // that proved the identity), not a new one.
        let link_device = |identity: &AuthIdentity| match &proved {
            Some((id, device)) if *id == identity.id => device.clone(),
            _ => None,
        };
        let req = req.link_to(proved.as_ref().map(|(id, _)| id.clone()));
        let outcome = match step {
            LoginStep::Register => module.register(provider, req).await?,
            LoginStep::Authenticate => module.authenticate(provider, req).await?,
            LoginStep::Callback => module.validate_callback(provider, req).await?,
        };
        // Recorded once the answer is made: a store that fails while making
        // it ends the request at once, and the log holds what was answered.
        let entries = self.login_entries(step, provider, &actor, &outcome);
        let answer = match (step, outcome) {
            (LoginStep::Register, LoginOutcome::Authenticated { identity, .. }) => {
                // A registration always answers a token; it says whether MFA
                // is on (and then owes the challenge).
                let token = if module.mfa().enabled_for(&identity).await? {
                    self.step_token(&identity, &actor, provider, Step::Mfa)?
                } else {
                    let mut claims = self.claims(&identity, &actor, provider).await?;
                    claims.device_id = match link_device(&identity) {
                        Some(device) => Some(device),
                        None => {
                            self.inner
                                .devices
                                .start(&identity.id, &actor, provider, None)
                                .await?
                        }
                    };
                    self.inner.tokens.sign(&claims)?
                };
                Answer::Token { token }
            }
            (LoginStep::Register | LoginStep::Callback, LoginOutcome::Redirect { .. }) => {
                Answer::Failed {
                    message: "Unauthorized".to_owned(),
                }
            }
            (_, outcome) => {
                let device = match &outcome {
                    LoginOutcome::Authenticated { identity, .. } => link_device(identity),
                    _ => None,
                };
                self.answer_on(outcome, &actor, provider, device).await?
            }
        };
        module.audit().record_all(entries).await;
        Ok(answer)
    }

    /// The audit entries of a login step's outcome: `login` or `register`
    /// (and `link` when it linked). Redirects and options are not outcomes
    /// yet; with the log off, nothing.
    fn login_entries(
        &self,
        step: LoginStep,
        provider: &str,
        actor: &str,
        outcome: &LoginOutcome,
    ) -> Vec<NewAuditEntry> {
        if !self.inner.module.audit().enabled() {
            return Vec::new();
        }
        let action = match step {
            LoginStep::Register => "register",
            _ => "login",
        };
        let entry = |action: &str, outcome: &str| {
            NewAuditEntry::new(action, outcome)
                .provider(provider)
                .actor_type(actor)
        };
        match outcome {
            LoginOutcome::Authenticated {
                identity, linked, ..
            } => {
                let mut entries = vec![entry(action, "succeeded").identity(&identity.id)];
                if *linked {
                    entries.push(entry("link", "succeeded").identity(&identity.id));
                }
                entries
            }
            LoginOutcome::VerificationRequired { identity, .. } => vec![
                entry(action, "succeeded")
                    .identity(&identity.id)
                    .detail("step", "verification"),
            ],
            LoginOutcome::MfaRequired { identity, .. } => vec![
                entry(action, "succeeded")
                    .identity(&identity.id)
                    .detail("step", "mfa"),
            ],
            LoginOutcome::Failed { message, .. } => {
                vec![entry(action, "failed").detail("reason", message.as_str())]
            }
            LoginOutcome::Throttled { .. } => vec![entry(action, "throttled")],
            _ => Vec::new(),
        }
    }

    /// `POST /auth/token/refresh`: a new token re-read from the store. A
    /// step or unregistered token re-runs the login's steps (a new challenge
    /// each time); a full token whose identity enabled MFA after it was
    /// issued answers the MFA step; any other full token is signed again
    /// with its MFA claims.
    pub async fn refresh(&self, presented: &Presented<'_>) -> std::result::Result<Answer, Refusal> {
        let grant = self.authorize(presented, Action::Refresh).await?;
        let module = &self.inner.module;
        let claims = &grant.claims;
        let provider = claims.auth_provider.clone().ok_or(Refusal::NoProvider)?;
        let actor = claims.actor_type.as_str();
        if grant.kind != CredentialKind::Full {
            let outcome = module
                .login_steps(
                    Arc::unwrap_or_clone(grant.identity),
                    actor,
                    &provider,
                    false,
                )
                .await?;
            let device = claims.device_id.clone();
            return Ok(self.answer_on(outcome, actor, &provider, device).await?);
        }
        if claims.mfa_challenge_completed_at.is_none()
            && module.mfa().enabled_for(&grant.identity).await?
            && let Some(challenge) = module.mfa().challenge(&grant.identity, &provider).await?
        {
            return Ok(Answer::MfaRequired {
                token: self.step_token(&grant.identity, actor, &provider, Step::Mfa)?,
                challenge,
            });
        }
        // The verified claims rewritten from the identity as stored now
        // (what `claims` builds), keeping their MFA claims.
        let Grant {
            claims: mut fresh,
            identity,
            ..
        } = grant;
        let (mfa_enabled, completed) = (fresh.mfa_enabled, fresh.mfa_challenge_completed_at.take());
        let actor = std::mem::take(&mut fresh.actor_type);
        self.inner
            .tokens
            .refill(&mut fresh, &identity, &actor, &provider);
        self.inner
            .hook
            .add_claims(&identity, &actor, &mut fresh.app_metadata)
            .await?;
        fresh.mfa_enabled = mfa_enabled;
        fresh.mfa_challenge_completed_at = completed;
        if fresh.device_id.is_none() {
            // Issued before devices existed: its family gets one now.
            fresh.device_id = self
                .inner
                .devices
                .start(&identity.id, &actor, &provider, None)
                .await?;
        }
        Ok(Answer::Token {
            token: self.inner.tokens.sign(&fresh)?,
        })
    }

    /// Ends devices `ids` of `auth_identity_id` and removes their sessions;
    /// answers the ids it had. Records nothing: the callers say why.
    async fn end_quietly(&self, auth_identity_id: &str, ids: &[String]) -> Result<Vec<String>> {
        let ended = self.inner.devices.end(auth_identity_id, ids).await?;
        if !ended.is_empty() {
            self.inner
                .sessions
                .end_devices(auth_identity_id, &ended)
                .await?;
        }
        Ok(ended)
    }

    /// Ends devices `ids` of `auth_identity_id` (the caller's, or any
    /// identity's for the management API): their sessions and every token
    /// issued to them are refused from now on, on every replica. Answers
    /// the ids it had.
    pub async fn end_devices(&self, auth_identity_id: &str, ids: &[String]) -> Result<Vec<String>> {
        let ended = self.end_quietly(auth_identity_id, ids).await?;
        if !ended.is_empty() {
            let entries = ended
                .iter()
                .map(|id| {
                    NewAuditEntry::new("device.ended", "succeeded")
                        .identity(auth_identity_id)
                        .detail("device_id", id.as_str())
                })
                .collect();
            self.inner.module.audit().record_all(entries).await;
        }
        Ok(ended)
    }

    /// `POST /auth/token/revoke`: ends the device of the bearer token, so
    /// it, every token refreshed from it and the sessions made from them are
    /// refused at once. A token issued before devices existed has none: its
    /// identity's credential version moves on instead (every credential of
    /// the identity ends), the only way to end such a token.
    pub async fn revoke_token(
        &self,
        presented: &Presented<'_>,
    ) -> std::result::Result<(), Refusal> {
        let grant = self.authorize(presented, Action::RevokeToken).await?;
        let identity = &grant.identity.id;
        let entry = NewAuditEntry::new("token.revoked", "succeeded")
            .identity(identity)
            .actor_type(&grant.claims.actor_type);
        match &grant.claims.device_id {
            Some(device) => {
                self.end_quietly(identity, std::slice::from_ref(device))
                    .await?;
                let entry = entry.detail("device_id", device.as_str());
                self.inner.module.audit().record(entry).await;
            }
            None => {
                self.inner.module.revoke(identity).await?;
                let entry = entry.detail("every_device", true);
                self.inner.module.audit().record(entry).await;
            }
        }
        Ok(())
    }

    /// `POST /auth/session`: stores the bearer token's claims server-side;
    /// answers the new session id and the claims.
    pub async fn create_session(
        &self,
        presented: &Presented<'_>,
    ) -> std::result::Result<(String, AuthClaims), Refusal> {
        let grant = self.authorize(presented, Action::CreateSession).await?;
        let sid = self.inner.sessions.create(&grant.claims).await?;
        Ok((sid, grant.claims))
    }

    /// Answers MFA challenge `challenge_id` for the identity of `grant` (from
    /// [`Action::VerifyChallenge`]) and issues the token that completes the
    /// login: the caller's actor type, the current link, the completed
    /// challenge.
    pub async fn complete_challenge(
        &self,
        grant: &Grant,
        challenge_id: &str,
        method: &str,
        code: &str,
    ) -> Result<String> {
        self.complete_challenge_with(grant, challenge_id, method, MfaAnswer::Code(code))
            .await
    }

    /// [`Gate::complete_challenge`] with any answer: a code, or (method
    /// `passkey`) a credential.
    pub async fn complete_challenge_with(
        &self,
        grant: &Grant,
        challenge_id: &str,
        method: &str,
        answer: MfaAnswer<'_>,
    ) -> Result<String> {
        let module = &self.inner.module;
        let entry = NewAuditEntry::new("mfa.challenge", "succeeded")
            .identity(&grant.identity.id)
            .actor_type(&grant.claims.actor_type)
            .detail("method", method);
        let done = match module
            .mfa()
            .verify_challenge_with(&grant.identity.id, challenge_id, method, answer)
            .await
        {
            Ok(done) => done,
            Err(e) => {
                if e.kind() != ErrorKind::Unavailable {
                    let mut failed = entry;
                    failed.outcome = "failed".to_owned();
                    module.audit().record(failed).await;
                }
                return Err(e);
            }
        };
        let provider = done.challenge.auth_provider.clone();
        let identity = module.retrieve_auth_identity(&grant.identity.id).await?;
        let mut claims = self
            .claims(&identity, &grant.claims.actor_type, &provider)
            .await?
            .mfa_completed(done.completed_at);
        claims.device_id = self
            .inner
            .devices
            .start(
                &identity.id,
                &grant.claims.actor_type,
                &provider,
                Some(identity.created_at),
            )
            .await?;
        let token = self.inner.tokens.sign(&claims)?;
        module.audit().record(entry).await;
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_claims() {
        let tokens = Tokens::hs256(
            &crate::config::Secret::new("k".repeat(32)),
            Duration::from_secs(60),
        );
        let mut identity = AuthIdentity::new("authid_1", time::OffsetDateTime::now_utc());
        identity.app_metadata = serde_json::json!({"customer_id": "cus_1"})
            .as_object()
            .cloned();
        let full = tokens.claims_for(&identity, "customer", "emailpass");
        assert_eq!(CredentialKind::of(&full), CredentialKind::Full);
        let unregistered = tokens.claims_for(&identity, "seller", "emailpass");
        assert_eq!(
            CredentialKind::of(&unregistered),
            CredentialKind::Unregistered
        );
        let verification = full.clone().for_step(Step::Verification);
        assert_eq!(
            CredentialKind::of(&verification),
            CredentialKind::VerificationStep
        );
        assert!(!verification.mfa_enabled);
        assert_eq!(
            CredentialKind::of(&full.clone().for_step(Step::Mfa)),
            CredentialKind::MfaStep
        );
        // Medusa's own MFA step token has no `step` claim.
        let mut medusa = full.clone();
        medusa.mfa_enabled = true;
        assert_eq!(CredentialKind::of(&medusa), CredentialKind::MfaStep);
        let done = full
            .for_step(Step::Mfa)
            .mfa_completed("2026-01-01T00:00:00.000Z");
        assert_eq!(CredentialKind::of(&done), CredentialKind::Unregistered);
    }

    #[test]
    fn the_step_claim_round_trips_and_unknown_steps_are_refused() {
        let tokens = Tokens::hs256(
            &crate::config::Secret::new("k".repeat(32)),
            Duration::from_secs(60),
        );
        let identity = AuthIdentity::new("authid_1", time::OffsetDateTime::now_utc());
        let claims = tokens
            .claims_for(&identity, "customer", "emailpass")
            .for_step(Step::Verification);
        let token = tokens.sign(&claims).unwrap();
        assert_eq!(
            tokens.verify(&token).unwrap().step,
            Some(Step::Verification)
        );
        let mut raw = serde_json::to_value(&claims).unwrap();
        assert_eq!(raw["step"], "verification");
        raw["step"] = "something-new".into();
        assert!(tokens.verify(&tokens.sign(&raw).unwrap()).is_none());
    }
}
