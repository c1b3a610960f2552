//! [`AuthModule`]: the service that routes requests to provider instances and
//! manages identities.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::config::{Config, LimitsConfig, ProviderConfig};
use crate::error::{ConfigError, Error, ErrorKind, Result};
use crate::events::EventBus;
use crate::flows::{Limits, Slot, Taken};
use crate::memory::{MemoryIdentityStore, MemoryStateStore};
use crate::model::{
    AuthIdentity, Metadata, NewProviderIdentity, ProviderIdentity, ProviderIdentityUpdate,
};
use crate::provider::{AuthOutcome, AuthProvider, AuthRequest, ProviderFlow, ProviderIdentities};
use crate::registry::Registry;
use crate::store_traits::{IdentityStore, NewAuthIdentity, StateStore};

/// What [`AuthModule::authenticate`], [`AuthModule::register`],
/// [`AuthModule::validate_callback`] and [`AuthModule::update_provider`]
/// answer. More variants may come, so match with a wildcard arm; each
/// variant's fields may grow too.
///
/// A login (or callback) that authenticated an identity answers
/// [`LoginOutcome::VerificationRequired`] first, then
/// [`LoginOutcome::MfaRequired`], while those steps remain
/// ([`AuthModule::login_steps`]); the token for those is a *step token*
/// ([`crate::AuthClaims::for_step`], issued by [`crate::gate::Gate`]).
///
/// ```
/// # fn show(outcome: auth_module::LoginOutcome) -> String {
/// use auth_module::LoginOutcome;
/// match outcome {
///     LoginOutcome::Authenticated { identity, .. } => format!("welcome {}", identity.id),
///     LoginOutcome::Redirect { location, .. } => format!("continue at {location}"),
///     LoginOutcome::Failed { message, .. } => format!("refused: {message}"),
///     _ => "a step this caller does not handle yet".to_owned(),
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LoginOutcome {
    /// The step succeeded for this identity (without provider secrets; its
    /// [`AuthIdentity::credential_version`] is the one tokens are issued under).
    #[non_exhaustive]
    Authenticated {
        /// The identity.
        identity: AuthIdentity,
        /// Whether this step attached a new provider identity to an auth
        /// identity the caller proved it holds (linking with proof).
        linked: bool,
    },
    /// The client continues at `location` (redirect providers).
    #[non_exhaustive]
    Redirect {
        /// Where to continue.
        location: String,
    },
    /// The step failed; `message` is safe to show to the client.
    #[non_exhaustive]
    Failed {
        /// The client-facing reason.
        message: String,
    },
    /// Refused by a rate limit before any work: try again after `retry_after`
    /// (HTTP: 429 with `Retry-After`).
    #[non_exhaustive]
    Throttled {
        /// When to try again, at the latest.
        retry_after: std::time::Duration,
    },
    /// The credentials are right, but the identity must first verify what
    /// `http.auth_verifications_per_actor` asks for this provider.
    #[non_exhaustive]
    VerificationRequired {
        /// The identity.
        identity: AuthIdentity,
        /// Its pending verification row; `None` if never requested.
        verification: Option<crate::records::Verification>,
    },
    /// The credentials are right and the identity has MFA: the login
    /// completes by answering `challenge`
    /// ([`crate::flows::Mfa::verify_challenge`]).
    #[non_exhaustive]
    MfaRequired {
        /// The identity.
        identity: AuthIdentity,
        /// The new challenge.
        challenge: crate::flows::MfaChallenge,
    },
}

impl LoginOutcome {
    fn failed(message: impl Into<String>) -> Self {
        LoginOutcome::Failed {
            message: message.into(),
        }
    }

    fn from_outcome(outcome: AuthOutcome) -> Self {
        match outcome {
            AuthOutcome::Authenticated(identity) => LoginOutcome::Authenticated {
                identity: identity.redacted(),
                linked: false,
            },
            AuthOutcome::Linked(identity) => LoginOutcome::Authenticated {
                identity: identity.redacted(),
                linked: true,
            },
            AuthOutcome::Redirect(location) => LoginOutcome::Redirect { location },
            AuthOutcome::Failed(message) | AuthOutcome::WrongCredentials(message) => {
                LoginOutcome::Failed { message }
            }
        }
    }

    /// Whether the step authenticated an identity.
    pub fn is_authenticated(&self) -> bool {
        matches!(self, LoginOutcome::Authenticated { .. })
    }

    /// The identity, if authenticated.
    pub fn identity(&self) -> Option<&AuthIdentity> {
        match self {
            LoginOutcome::Authenticated { identity, .. } => Some(identity),
            _ => None,
        }
    }

    /// The identity, if authenticated.
    pub fn into_identity(self) -> Option<AuthIdentity> {
        match self {
            LoginOutcome::Authenticated { identity, .. } => Some(identity),
            _ => None,
        }
    }

    /// The failure message, if failed.
    pub fn failure(&self) -> Option<&str> {
        match self {
            LoginOutcome::Failed { message } => Some(message),
            _ => None,
        }
    }
}

/// A configured provider instance, as listed by [`AuthModule::providers`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProviderInfo {
    /// The instance id (routes, stored identities).
    pub id: String,
    /// The kind's identifier.
    pub identifier: &'static str,
    /// The instance's display name ([`AuthProvider::display_name`]), else
    /// the kind's.
    pub display_name: String,
    /// `credentials` or `redirect`.
    pub flow: ProviderFlow,
    /// The registry key `au_{identifier}_{id}`.
    pub registry_key: String,
}

struct Instance {
    info: ProviderInfo,
    provider: Arc<dyn AuthProvider>,
    ids: ProviderIdentities,
}

struct Inner {
    instances: BTreeMap<String, Instance>,
    order: Vec<String>,
    identities: Arc<dyn IdentityStore>,
    state: Arc<dyn StateStore>,
    events: EventBus,
    auth_methods_per_actor: Option<BTreeMap<String, Vec<String>>>,
    actor_types: Option<Vec<String>>,
    limits: Limits,
    mfa: crate::flows::Mfa,
    verifications: crate::flows::Verifications,
}

/// The auth module: provider instances by id over an identity store and a
/// state store. Cheap to clone (shared inside).
///
/// ```
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use auth_module::{AuthModule, Config};
/// let config = Config::from_toml_str(r#"
///     [store]
///     url = "memory://"
///     [[providers]]
///     resolve = "emailpass"
///     id = "emailpass"
/// "#)?;
/// // Needs the `provider-emailpass` crate linked (`use provider_emailpass as _;`).
/// let module = AuthModule::builder().config(config).build();
/// # let _ = module; Ok(()) }
/// ```
#[derive(Clone)]
pub struct AuthModule {
    inner: Arc<Inner>,
}

impl fmt::Debug for AuthModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthModule")
            .field("providers", &self.inner.order)
            .field("identities", &self.inner.identities)
            .field("state", &self.inner.state)
            .finish_non_exhaustive()
    }
}

/// Builds an [`AuthModule`] from a [`Config`] and/or Rust calls.
#[derive(Debug, Default)]
pub struct AuthModuleBuilder {
    providers: Vec<ProviderConfig>,
    auth_methods_per_actor: Option<BTreeMap<String, Vec<String>>>,
    actor_types: Option<Vec<String>>,
    limits: Option<LimitsConfig>,
    store_url: Option<String>,
    state_url: Option<String>,
    identities: Option<Arc<dyn IdentityStore>>,
    state: Option<Arc<dyn StateStore>>,
    registry: Option<Registry>,
    events: Option<EventBus>,
    mfa: Option<crate::config::MfaConfig>,
    clock: Option<Arc<dyn crate::mfa::Clock>>,
    verifications: Option<BTreeMap<String, Vec<crate::config::VerificationRule>>>,
}

impl AuthModuleBuilder {
    /// Takes the providers and `auth_methods_per_actor` of `config`. Its
    /// `[store]` and `[state]` URLs are opened by a store factory (as
    /// `auth-server` does) and passed with [`AuthModuleBuilder::identity_store`]
    /// and [`AuthModuleBuilder::state_store`]; only `memory://` needs none.
    pub fn config(mut self, config: Config) -> Self {
        self.providers.extend(config.providers);
        self.auth_methods_per_actor = config.auth_methods_per_actor;
        self.actor_types = config.actor_types;
        self.limits = Some(config.limits);
        self.mfa = config.mfa;
        self.verifications = config.auth_verifications_per_actor;
        self.store_url = Some(config.store.url.expose().to_owned());
        self.state_url = Some(config.state.url.expose().to_owned());
        self
    }

    /// Adds a provider instance `id` of kind `resolve`.
    pub fn provider(mut self, resolve: &str, id: &str, options: Value) -> Self {
        self.providers
            .push(ProviderConfig::new(resolve, id, options));
        self
    }

    /// Restricts `actor_type` to the given provider ids.
    pub fn auth_methods_for_actor(mut self, actor_type: &str, provider_ids: &[&str]) -> Self {
        self.auth_methods_per_actor
            .get_or_insert_with(BTreeMap::new)
            .insert(
                actor_type.to_owned(),
                provider_ids.iter().map(|s| (*s).to_owned()).collect(),
            );
        self
    }

    /// Turns MFA on with these settings (`[mfa]`).
    pub fn mfa(mut self, config: crate::config::MfaConfig) -> Self {
        self.mfa = Some(config);
        self
    }

    /// Takes the time from `clock` for MFA codes and challenge and
    /// verification expiries (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn crate::mfa::Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Logins of `actor_type` through each rule's provider need its
    /// `entity_type` verified first (`http.auth_verifications_per_actor`).
    pub fn verifications_for_actor(
        mut self,
        actor_type: &str,
        rules: &[crate::config::VerificationRule],
    ) -> Self {
        self.verifications
            .get_or_insert_with(BTreeMap::new)
            .insert(actor_type.to_owned(), rules.to_vec());
        self
    }

    /// Uses these rate limits (default: [`LimitsConfig::default`]).
    pub fn limits(mut self, limits: LimitsConfig) -> Self {
        self.limits = Some(limits);
        self
    }

    /// Accepts only these actor types on routes (default: any valid one).
    pub fn actor_types(mut self, actor_types: &[&str]) -> Self {
        self.actor_types = Some(actor_types.iter().map(|s| (*s).to_owned()).collect());
        self
    }

    /// Uses this identity store (instead of the config's `[store] url`).
    pub fn identity_store(mut self, store: Arc<dyn IdentityStore>) -> Self {
        self.identities = Some(store);
        self
    }

    /// Uses this state store (instead of the config's `[state] url`).
    pub fn state_store(mut self, store: Arc<dyn StateStore>) -> Self {
        self.state = Some(store);
        self
    }

    /// Emits the module's and the providers' events on `events` (default: a
    /// bus with no sinks, whose in-process subscribers still get them).
    pub fn events(mut self, events: EventBus) -> Self {
        self.events = Some(events);
        self
    }

    /// Builds providers from this registry instead of the linked one.
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Builds the module: every provider instance is constructed and its options
    /// validated now. Without a store passed in, the module keeps identities
    /// and state in memory, which a configured URL other than `memory://`
    /// refuses (open it with a store factory, e.g. `auth-server`'s).
    pub fn build(self) -> std::result::Result<AuthModule, ConfigError> {
        let registry = match self.registry {
            Some(r) => r,
            None => Registry::linked()?,
        };
        let memory_only = |url: Option<&str>, key: &str, method: &str| match url {
            None | Some("memory://") => Ok(()),
            Some(_) => Err(ConfigError::new(format!(
                "{key}: this store is opened by a store factory (auth-server's), not by \
                 auth-module; pass it to AuthModuleBuilder::{method}"
            ))),
        };
        let identities: Arc<dyn IdentityStore> = match self.identities {
            Some(s) => s,
            None => {
                memory_only(self.store_url.as_deref(), "store.url", "identity_store")?;
                Arc::new(MemoryIdentityStore::new())
            }
        };
        let state: Arc<dyn StateStore> = match self.state {
            Some(s) => s,
            None => {
                memory_only(self.state_url.as_deref(), "state.url", "state_store")?;
                Arc::new(MemoryStateStore::new())
            }
        };
        let mut config = Config::new(self.providers);
        config.auth_methods_per_actor = self.auth_methods_per_actor;
        config.actor_types = self.actor_types;
        config.auth_verifications_per_actor = self.verifications;
        config.validate()?;
        let mfa_keys = match self.mfa {
            Some(mfa) => {
                let keys = mfa.validate()?;
                Some((mfa, keys))
            }
            None => None,
        };
        let events = self.events.unwrap_or_default();
        let mut instances = BTreeMap::new();
        let mut order = Vec::new();
        for (i, p) in config.providers.into_iter().enumerate() {
            let context = format!("providers[{i}] \"{}\"", p.id);
            let reg = registry
                .get(&p.resolve)
                .ok_or_else(|| registry.unknown_provider_error(&context, &p.resolve))?;
            let provider = reg
                .build(&p.id, p.options)
                .map_err(|e| ConfigError::new(format!("{context}: {e}")))?;
            let info = ProviderInfo {
                registry_key: format!("au_{}_{}", reg.identifier(), p.id),
                id: p.id.clone(),
                identifier: reg.identifier(),
                display_name: provider
                    .display_name()
                    .unwrap_or(reg.display_name())
                    .to_owned(),
                flow: reg.flow(),
            };
            let ids = ProviderIdentities::new(p.id.as_str(), identities.clone(), state.clone())
                .with_events(events.clone());
            order.push(p.id.clone());
            instances.insert(
                p.id,
                Instance {
                    info,
                    provider,
                    ids,
                },
            );
        }
        let limits_config = self.limits.unwrap_or_default();
        let clock = self
            .clock
            .unwrap_or_else(|| Arc::new(crate::mfa::SystemClock));
        let mfa = crate::flows::Mfa::new(
            identities.clone(),
            state.clone(),
            events.clone(),
            clock.clone(),
            mfa_keys,
        );
        let limits = Limits::new(state.clone(), limits_config);
        let verifications = crate::flows::Verifications::new(
            identities.clone(),
            events.clone(),
            clock,
            limits.clone(),
            config
                .auth_verifications_per_actor
                .clone()
                .unwrap_or_default(),
        );
        Ok(AuthModule {
            inner: Arc::new(Inner {
                instances,
                order,
                identities,
                state,
                events,
                auth_methods_per_actor: config.auth_methods_per_actor,
                actor_types: config.actor_types,
                limits,
                mfa,
                verifications,
            }),
        })
    }
}

#[derive(Clone, Copy)]
enum Method {
    Authenticate,
    Register,
    Update,
    Callback,
}

impl AuthModule {
    /// A builder.
    pub fn builder() -> AuthModuleBuilder {
        AuthModuleBuilder::default()
    }

    /// The configured instances, in configuration order.
    pub fn providers(&self) -> Vec<ProviderInfo> {
        self.inner
            .order
            .iter()
            .filter_map(|id| self.inner.instances.get(id))
            .map(|i| i.info.clone())
            .collect()
    }

    /// The instance `id`, if configured.
    pub fn provider_info(&self, id: &str) -> Option<ProviderInfo> {
        self.inner.instances.get(id).map(|i| i.info.clone())
    }

    /// The instances `actor_type` may use (configuration order).
    pub fn providers_for_actor(&self, actor_type: &str) -> Vec<ProviderInfo> {
        self.providers()
            .into_iter()
            .filter(|p| self.actor_may_use(actor_type, &p.id))
            .collect()
    }

    fn actor_may_use(&self, actor_type: &str, provider_id: &str) -> bool {
        match self
            .inner
            .auth_methods_per_actor
            .as_ref()
            .and_then(|m| m.get(actor_type))
        {
            None => true,
            Some(list) => list.iter().any(|p| p == provider_id),
        }
    }

    /// `Ok` if routes accept `actor_type`: the one rule for actor types (1 to
    /// 64 letters, digits, `_` or `-`, none a fixed route shadows), and the
    /// configured `actor_types` if any; else [`ErrorKind::InvalidData`].
    pub fn check_actor_type(&self, actor_type: &str) -> Result<()> {
        validate_actor_type(actor_type)?;
        match &self.inner.actor_types {
            Some(list) if !list.iter().any(|a| a == actor_type) => Err(Error::invalid_data(
                format!("Invalid actor type: {actor_type}"),
            )),
            _ => Ok(()),
        }
    }

    /// `Ok` if `actor_type` may use `provider_id` under `auth_methods_per_actor`,
    /// else a [`ErrorKind::NotAllowed`] error with Medusa's message.
    pub fn check_actor_allowed(&self, actor_type: &str, provider_id: &str) -> Result<()> {
        if self.actor_may_use(actor_type, provider_id) {
            Ok(())
        } else {
            Err(Error::not_allowed(format!(
                "The actor type {actor_type} is not allowed to use the auth provider {provider_id}"
            )))
        }
    }

    /// The identity store.
    pub fn identity_store(&self) -> &Arc<dyn IdentityStore> {
        &self.inner.identities
    }

    /// The state store.
    pub fn state_store(&self) -> &Arc<dyn StateStore> {
        &self.inner.state
    }

    /// The rate limits ([`Limits`]), counted in the state store.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// `Ok` if the identity store and the state store both answer now (a
    /// read of an id that cannot exist, and of a probe key), for readiness
    /// checks; the first store error otherwise.
    pub async fn check_ready(&self) -> Result<()> {
        match self
            .inner
            .identities
            .retrieve_auth_identity("authid_readiness-probe")
            .await
        {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.inner
            .state
            .get(&crate::state_keys::readiness_probe())
            .await
            .map(|_| ())
    }

    /// TOTP MFA: factors, recovery codes, challenges.
    pub fn mfa(&self) -> &crate::flows::Mfa {
        &self.inner.mfa
    }

    /// Verification of entity ids (emails) by code.
    pub fn verifications(&self) -> &crate::flows::Verifications {
        &self.inner.verifications
    }

    /// What stands between an authenticated `identity` and a token for
    /// `actor_type` through `provider`: a pending verification first, then
    /// an MFA challenge (created now), else
    /// [`LoginOutcome::Authenticated`]. Logins and callbacks run it; so does
    /// a refresh of a step or unregistered token.
    pub async fn login_steps(
        &self,
        identity: AuthIdentity,
        actor_type: &str,
        provider: &str,
        linked: bool,
    ) -> Result<LoginOutcome> {
        if let Some(verification) = self
            .inner
            .verifications
            .pending(&identity, actor_type, provider)
            .await?
        {
            return Ok(LoginOutcome::VerificationRequired {
                identity,
                verification,
            });
        }
        if let Some(challenge) = self.inner.mfa.challenge(&identity, provider).await? {
            return Ok(LoginOutcome::MfaRequired {
                identity,
                challenge,
            });
        }
        Ok(LoginOutcome::Authenticated { identity, linked })
    }

    /// The event bus the module and its providers emit on.
    pub fn events(&self) -> &EventBus {
        &self.inner.events
    }

    async fn call(
        &self,
        method: Method,
        provider_id: &str,
        req: AuthRequest,
    ) -> Result<LoginOutcome> {
        let Some(instance) = self.inner.instances.get(provider_id) else {
            return Ok(LoginOutcome::failed(format!(
                "Unable to retrieve the auth provider with id: {provider_id}"
            )));
        };
        let p = &instance.provider;
        let ids = &instance.ids;
        let actor_type = req.actor_type.clone().unwrap_or_default();
        // Rate limits: every slot is taken before any hash or provider call.
        let limits = &self.inner.limits;
        let addr = req.client_addr;
        let redirect = instance.info.flow == ProviderFlow::Redirect;
        let identifier = match method {
            Method::Authenticate | Method::Register if !redirect => p.identifier(&req),
            _ => None,
        };
        let mut login = None;
        let mut register = None;
        let taken = match method {
            Method::Authenticate if redirect => Some(limits.take_redirect_start(addr).await?),
            Method::Authenticate => Some(limits.take_login(identifier.as_deref(), addr).await?),
            Method::Register => {
                // A registration of an existing identity checks its password:
                // it takes a login slot too.
                match limits.take_register(addr).await? {
                    Taken::Go(slot) => {
                        register = Some(slot);
                        match identifier {
                            Some(_) => Some(limits.take_login(identifier.as_deref(), addr).await?),
                            None => None,
                        }
                    }
                    refused => Some(refused),
                }
            }
            Method::Update | Method::Callback => None,
        };
        match taken {
            Some(Taken::Refused { retry_after }) => {
                if let Some(slot) = register {
                    self.settle(limits.release(slot).await, provider_id);
                }
                return Ok(LoginOutcome::Throttled { retry_after });
            }
            Some(Taken::Go(slot)) if !redirect => login = Some(slot),
            _ => {}
        }
        let result = match method {
            Method::Authenticate => p.authenticate(req, ids).await,
            Method::Register => p.register(req, ids).await,
            Method::Update => p.update(req, ids).await,
            Method::Callback => p.validate_callback(req, ids).await,
        };
        // What the try came to: a wrong password keeps its login slot; a
        // success gives it back (and clears the failures from that address);
        // anything else gives every slot back. A new identity keeps its
        // registration slot.
        let wrong = matches!(result, Ok(AuthOutcome::WrongCredentials(_)));
        let success = matches!(
            result,
            Ok(AuthOutcome::Authenticated(_) | AuthOutcome::Linked(_))
        );
        let mut give_back: Vec<Slot> = Vec::new();
        if let Some(slot) = login {
            if success {
                self.settle(limits.succeeded(slot).await, provider_id);
            } else if !wrong {
                give_back.push(slot);
            }
        }
        if let Some(slot) = register
            && !success
        {
            give_back.push(slot);
        }
        if result.is_err() {
            // The server failed (often a store that is down): the answer does
            // not wait for the slots to go back.
            let (limits, provider) = (limits.clone(), provider_id.to_owned());
            tokio::spawn(async move {
                for slot in give_back {
                    if let Err(e) = limits.release(slot).await {
                        tracing::warn!(provider = %provider, error = %e, "could not give a rate-limit slot back");
                    }
                }
            });
        } else {
            for slot in give_back {
                self.settle(limits.release(slot).await, provider_id);
            }
        }
        match result {
            Ok(outcome) => match (method, LoginOutcome::from_outcome(outcome)) {
                (
                    Method::Authenticate | Method::Callback,
                    LoginOutcome::Authenticated { identity, linked },
                ) => {
                    self.login_steps(identity, &actor_type, provider_id, linked)
                        .await
                }
                (_, outcome) => Ok(outcome),
            },
            Err(e) if e.kind() == ErrorKind::NotSupported => {
                // Medusa's messages; the method is the error's message.
                Ok(LoginOutcome::failed(match e.message() {
                    "validate_callback" => format!(
                        "Callback authentication not implemented for provider {provider_id}"
                    ),
                    name => format!("Method '{name}' not implemented for provider {provider_id}"),
                }))
            }
            Err(e) if e.kind().is_internal() || e.kind() == ErrorKind::Unavailable => {
                Err(e.with_context("provider", provider_id))
            }
            // A refusal of the request itself (e.g. a callback URL off the
            // allow-list): the caller answers it as such, not as a failed login.
            Err(e) if e.kind() == ErrorKind::NotAllowed => Err(e),
            Err(e) => Ok(LoginOutcome::failed(e.message())),
        }
    }

    /// Logs a counter the store could not write: the answer stands.
    fn settle(&self, counted: Result<()>, provider_id: &str) {
        if let Err(e) = counted {
            tracing::warn!(provider = %provider_id, error = %e, "could not count toward a rate limit");
        }
    }

    /// Calls provider `provider_id`'s `authenticate`.
    pub async fn authenticate(&self, provider_id: &str, req: AuthRequest) -> Result<LoginOutcome> {
        self.call(Method::Authenticate, provider_id, req).await
    }

    /// Calls provider `provider_id`'s `register`.
    pub async fn register(&self, provider_id: &str, req: AuthRequest) -> Result<LoginOutcome> {
        self.call(Method::Register, provider_id, req).await
    }

    /// Calls provider `provider_id`'s `validate_callback`.
    pub async fn validate_callback(
        &self,
        provider_id: &str,
        req: AuthRequest,
    ) -> Result<LoginOutcome> {
        self.call(Method::Callback, provider_id, req).await
    }

    /// Calls provider `provider_id`'s `update` (e.g. a new password).
    pub async fn update_provider(
        &self,
        provider_id: &str,
        req: AuthRequest,
    ) -> Result<LoginOutcome> {
        self.call(Method::Update, provider_id, req).await
    }

    /// `raw` as provider `provider_id` stores identifiers (`None` if no such provider).
    pub fn normalize_entity_id(&self, provider_id: &str, raw: &str) -> Option<String> {
        self.inner
            .instances
            .get(provider_id)
            .map(|i| i.provider.normalize_entity_id(raw))
    }

    /// The auth identity `id` (without secrets) and its credential version;
    /// `None` if it is gone or no longer has a provider identity at
    /// `provider`. Token and session checks use it to refuse credentials
    /// issued before a change.
    pub async fn identity_with_credential_version(
        &self,
        id: &str,
        provider: &str,
    ) -> Result<Option<(AuthIdentity, u64)>> {
        let identity = match self.inner.identities.retrieve_auth_identity(id).await {
            Ok(i) => i,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if identity.provider_identity(provider).is_none() {
            return Ok(None);
        }
        let version = identity.credential_version;
        Ok(Some((identity.redacted(), version)))
    }

    // ----- identities -------------------------------------------------------

    /// Creates an auth identity (and its provider identities).
    pub async fn create_auth_identity(&self, new: NewAuthIdentity) -> Result<AuthIdentity> {
        Ok(self
            .inner
            .identities
            .create_auth_identity(new)
            .await?
            .redacted())
    }

    /// The auth identity `id`.
    pub async fn retrieve_auth_identity(&self, id: &str) -> Result<AuthIdentity> {
        Ok(self
            .inner
            .identities
            .retrieve_auth_identity(id)
            .await?
            .redacted())
    }

    /// Signs identity `id` out everywhere: its credential version moves on,
    /// so every token and session issued before stops being accepted.
    /// (`flows::Sessions::end_all` also removes the sessions themselves.)
    pub async fn revoke(&self, id: &str) -> Result<AuthIdentity> {
        Ok(self
            .inner
            .identities
            .bump_credential_version(id)
            .await?
            .redacted())
    }

    /// Deletes auth identity `id` and its provider identities.
    pub async fn delete_auth_identity(&self, id: &str) -> Result<()> {
        self.inner.identities.delete_auth_identity(id).await
    }

    /// Replaces the `app_metadata` of auth identity `id`.
    pub async fn update_app_metadata(
        &self,
        id: &str,
        app_metadata: Option<Metadata>,
    ) -> Result<AuthIdentity> {
        Ok(self
            .inner
            .identities
            .update_app_metadata(id, app_metadata)
            .await?
            .redacted())
    }

    /// Merges `patch`'s top-level keys into the `app_metadata` of identity
    /// `id`, atomically in the store: a `null` value removes its key, any
    /// other replaces it. (Actor links have [`AuthModule::link_actor`].)
    pub async fn merge_app_metadata(&self, id: &str, patch: &Metadata) -> Result<AuthIdentity> {
        Ok(self
            .inner
            .identities
            .merge_app_metadata(id, patch)
            .await?
            .redacted())
    }

    /// Sets `app_metadata["{actor_type}_id"] = actor_id` on identity `id`.
    pub async fn link_actor(
        &self,
        id: &str,
        actor_type: &str,
        actor_id: &str,
    ) -> Result<AuthIdentity> {
        validate_actor_type(actor_type)?;
        if actor_id.is_empty() {
            return Err(Error::invalid_data("actor_id must not be empty"));
        }
        Ok(self
            .inner
            .identities
            .patch_app_metadata(
                id,
                &format!("{actor_type}_id"),
                Some(Value::String(actor_id.to_owned())),
            )
            .await?
            .redacted())
    }

    /// Removes `app_metadata["{actor_type}_id"]` from identity `id`.
    pub async fn unlink_actor(&self, id: &str, actor_type: &str) -> Result<AuthIdentity> {
        validate_actor_type(actor_type)?;
        Ok(self
            .inner
            .identities
            .patch_app_metadata(id, &format!("{actor_type}_id"), None)
            .await?
            .redacted())
    }

    /// The provider identity `provider` knows as `entity_id`, if any.
    pub async fn find_provider_identity(
        &self,
        provider: &str,
        entity_id: &str,
    ) -> Result<Option<ProviderIdentity>> {
        Ok(self
            .inner
            .identities
            .find_provider_identity(provider, entity_id)
            .await?
            .map(|mut p| {
                p.provider_metadata = None;
                p
            }))
    }

    /// The auth identity that `provider` knows as `entity_id`.
    pub async fn retrieve_by_provider(
        &self,
        provider: &str,
        entity_id: &str,
    ) -> Result<AuthIdentity> {
        let p = self
            .inner
            .identities
            .find_provider_identity(provider, entity_id)
            .await?
            .ok_or_else(|| {
                Error::not_found(format!(
                    "AuthIdentity with entity_id: {entity_id} and provider: {provider} was not found"
                ))
            })?;
        self.retrieve_auth_identity(&p.auth_identity_id).await
    }

    /// Links a new provider identity to auth identity `auth_identity_id`.
    pub async fn add_provider_identity(
        &self,
        auth_identity_id: &str,
        new: NewProviderIdentity,
    ) -> Result<ProviderIdentity> {
        let mut p = self
            .inner
            .identities
            .add_provider_identity(auth_identity_id, new)
            .await?;
        p.provider_metadata = None;
        Ok(p)
    }

    /// Updates provider identity `id` (`provid_…`).
    pub async fn update_provider_identity(
        &self,
        id: &str,
        update: ProviderIdentityUpdate,
    ) -> Result<ProviderIdentity> {
        let mut p = self
            .inner
            .identities
            .update_provider_identity(id, update)
            .await?;
        p.provider_metadata = None;
        Ok(p)
    }

    /// Deletes provider identity `id`.
    pub async fn delete_provider_identity(&self, id: &str) -> Result<()> {
        self.inner.identities.delete_provider_identity(id).await
    }
}

fn validate_actor_type(actor_type: &str) -> Result<()> {
    crate::config::check_actor_type(actor_type).map_err(Error::invalid_data)
}
