//! The provider contract: what a provider crate implements.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, OptionsError, Result};
use crate::events::{Event, EventBus};
use crate::model::{AuthIdentity, Metadata, NewProviderIdentity, ProviderIdentityUpdate};
use crate::store_traits::{IdentityStore, NewAuthIdentity, StateStore};

/// How a provider authenticates, as shown to clients in providers lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProviderFlow {
    /// The client sends credentials and gets a token at once (e.g. emailpass).
    Credentials,
    /// The client is sent to a third party and comes back to the callback route.
    Redirect,
    /// The client is given a challenge to sign (WebAuthn options) and
    /// answers it at the callback route (passkeys).
    Challenge,
}

impl ProviderFlow {
    /// `credentials` or `redirect`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ProviderFlow::Credentials => "credentials",
            ProviderFlow::Redirect => "redirect",
            ProviderFlow::Challenge => "challenge",
        }
    }
}

/// One authentication request as a provider sees it: the HTTP request's
/// parts, already parsed, without any transport types.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct AuthRequest {
    /// The request URL (path and query).
    pub url: String,
    /// Header values by lower-case name.
    pub headers: BTreeMap<String, String>,
    /// The query string's parameters.
    pub query: Metadata,
    /// The body's fields (JSON object or form fields; empty for other bodies).
    pub body: Metadata,
    /// `http` or `https`: the scheme clients reach the server with.
    pub protocol: String,
    /// The host (and port) clients reach the server at, when known: from the
    /// server's configured public origin, or the request's `Host` header.
    pub host: Option<String>,
    /// The client's address, when known.
    pub client_addr: Option<IpAddr>,
    /// The actor type of the route (`customer`, `user`, ...), when there is one.
    pub actor_type: Option<String>,
    /// The auth identity this request's own credential proves; never set
    /// from an unverified claim. For a redirect provider:
    /// - at the **start** of a login (`authenticate`, proven by a valid,
    ///   current bearer token), the identity to link to: the provider keeps
    ///   it with the login's state, and the provider identity the login
    ///   authenticates is attached to it instead of creating one;
    /// - at the **callback** (`validate_callback`), the identity the callback
    ///   request itself proves (a valid, current bearer token or session
    ///   cookie). A login started with a `link_to` is linked only when the
    ///   callback proves the very same identity; otherwise nothing is linked
    ///   and the callback fails with `Unauthorized` (the state stays spent).
    ///   For a login started without one, the callback's `link_to` is
    ///   ignored: a plain login never becomes a link at its callback.
    pub link_to: Option<String>,
}

impl AuthRequest {
    /// A request carrying only `body`.
    pub fn with_body(body: Metadata) -> Self {
        AuthRequest {
            body,
            ..Self::default()
        }
    }

    /// A request whose body is the JSON object `body` (anything else gives an empty body).
    pub fn json(body: Value) -> Self {
        Self::with_body(match body {
            Value::Object(m) => m,
            _ => Metadata::new(),
        })
    }

    /// Sets the query parameters.
    pub fn query(mut self, query: Metadata) -> Self {
        self.query = query;
        self
    }

    /// Sets the headers.
    pub fn headers(mut self, headers: BTreeMap<String, String>) -> Self {
        self.headers = headers;
        self
    }

    /// Sets the URL and protocol.
    pub fn url(mut self, url: impl Into<String>, protocol: impl Into<String>) -> Self {
        self.url = url.into();
        self.protocol = protocol.into();
        self
    }

    /// Sets the host clients reach the server at.
    pub fn host(mut self, host: Option<String>) -> Self {
        self.host = host;
        self
    }

    /// `{protocol}://{host}` when the host is known: the base of callback
    /// URLs a provider builds.
    pub fn origin(&self) -> Option<String> {
        let host = self.host.as_deref()?;
        let scheme = if self.protocol.is_empty() {
            "http"
        } else {
            &self.protocol
        };
        Some(format!("{scheme}://{host}"))
    }

    /// Sets the client's address.
    pub fn client_addr(mut self, addr: Option<IpAddr>) -> Self {
        self.client_addr = addr;
        self
    }

    /// Sets the auth identity the caller proved it holds (see [`AuthRequest::link_to`]).
    pub fn link_to(mut self, auth_identity_id: Option<String>) -> Self {
        self.link_to = auth_identity_id;
        self
    }

    /// Sets the actor type.
    pub fn actor_type(mut self, actor: impl Into<String>) -> Self {
        self.actor_type = Some(actor.into());
        self
    }

    /// The body field `name` as a non-empty string.
    pub fn body_str(&self, name: &str) -> Option<&str> {
        self.body
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }
}

impl fmt::Debug for AuthRequest {
    // Bodies carry passwords and headers carry tokens: show only their keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthRequest")
            .field("url", &self.url)
            .field("header_names", &self.headers.keys().collect::<Vec<_>>())
            .field("query_keys", &self.query.keys().collect::<Vec<_>>())
            .field("body_keys", &self.body.keys().collect::<Vec<_>>())
            .field("protocol", &self.protocol)
            .field("host", &self.host)
            .field("client_addr", &self.client_addr)
            .field("actor_type", &self.actor_type)
            .field("link_to", &self.link_to)
            .finish()
    }
}

/// What a provider answers. More variants may come (MFA or verification
/// steps), so match with a wildcard arm.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AuthOutcome {
    /// The user is who they claim: this identity.
    Authenticated(AuthIdentity),
    /// The client must continue at this URL (third-party login).
    Redirect(String),
    /// Authentication failed; the message is shown to the client.
    Failed(String),
    /// The credentials were wrong (unknown user or wrong secret): a failure
    /// that counts toward the login rate limits, unlike a malformed request.
    WrongCredentials(String),
    /// The user is who they claim, and the provider identity was attached to
    /// the auth identity the caller proved it holds ([`AuthRequest::link_to`]).
    Linked(AuthIdentity),
    /// The client must answer a challenge first: these options (WebAuthn's
    /// creation or request options), answered over HTTP as 200
    /// `{"options": …}`.
    Options(Value),
}

impl AuthOutcome {
    /// Success with `identity`.
    pub fn authenticated(identity: AuthIdentity) -> Self {
        AuthOutcome::Authenticated(identity)
    }

    /// Success with `identity`, whose new provider identity was attached to
    /// the auth identity in [`AuthRequest::link_to`].
    pub fn linked(identity: AuthIdentity) -> Self {
        AuthOutcome::Linked(identity)
    }

    /// Continue at `location`.
    pub fn redirect(location: impl Into<String>) -> Self {
        AuthOutcome::Redirect(location.into())
    }

    /// Answer the challenge in `options` first.
    pub fn options(options: Value) -> Self {
        AuthOutcome::Options(options)
    }

    /// Failure with a client-facing `message`.
    pub fn failed(message: impl Into<String>) -> Self {
        AuthOutcome::Failed(message.into())
    }

    /// Wrong credentials, with a client-facing `message`: counted by the
    /// login rate limits (a malformed request, [`AuthOutcome::failed`], is not).
    pub fn wrong_credentials(message: impl Into<String>) -> Self {
        AuthOutcome::WrongCredentials(message.into())
    }
}

/// The dynamic half of a provider: the methods the module calls.
///
/// # Contract
/// - `authenticate` is required. `register`, `update` and `validate_callback`
///   default to [`Error::not_supported`] (kind
///   [`crate::ErrorKind::NotSupported`]), which the module reports as Medusa
///   does (`Method 'register' not implemented for provider {id}`, `Callback
///   authentication not implemented for provider {id}`). A default never
///   pretends to succeed.
/// - Wrong credentials are an [`AuthOutcome::Failed`], not an `Err`; an `Err`
///   of an internal kind ([`crate::ErrorKind::is_internal`]) becomes a 500.
/// - A provider reaches storage only through its [`ProviderIdentities`] handle.
/// - Nothing a provider returns or logs contains a secret.
///
/// # Example
/// ```
/// use auth_module::{
///     async_trait, AuthOutcome, AuthProvider, AuthRequest, NewProviderIdentity, ProviderFlow,
///     ProviderIdentities, ProviderInit, ProviderKind, OptionsError, Result, ValidateOptions,
/// };
///
/// /// Lets anyone in whose body names a `user` listed in the options.
/// #[derive(Debug)]
/// pub struct AllowListProvider { users: Vec<String> }
///
/// #[derive(serde::Deserialize, Default)]
/// #[serde(deny_unknown_fields)]
/// pub struct AllowListOptions { #[serde(default)] users: Vec<String> }
///
/// impl ValidateOptions for AllowListOptions {
///     fn validate_options(&self) -> Result<(), OptionsError> {
///         if self.users.is_empty() {
///             return Err(OptionsError::new("users", "must list at least one user"));
///         }
///         Ok(())
///     }
/// }
///
/// impl ProviderKind for AllowListProvider {
///     const IDENTIFIER: &'static str = "allow-list";
///     const DISPLAY_NAME: &'static str = "Allow list";
///     const FLOW: ProviderFlow = ProviderFlow::Credentials;
///     type Options = AllowListOptions;
///     fn new(init: ProviderInit<AllowListOptions>) -> Result<Self, OptionsError> {
///         Ok(AllowListProvider { users: init.options.users })
///     }
/// }
///
/// #[async_trait]
/// impl AuthProvider for AllowListProvider {
///     async fn authenticate(&self, req: AuthRequest, ids: &ProviderIdentities) -> Result<AuthOutcome> {
///         let Some(user) = req.body_str("user").filter(|u| self.users.iter().any(|x| x == u)) else {
///             return Ok(AuthOutcome::failed("Unknown user"));
///         };
///         let identity = match ids.find(user).await? {
///             Some(identity) => identity,
///             None => ids.create(NewProviderIdentity::new(ids.provider(), user)).await?,
///         };
///         Ok(AuthOutcome::authenticated(identity))
///     }
/// }
///
/// auth_module::register_provider!(AllowListProvider);
/// ```
#[async_trait]
pub trait AuthProvider: Send + Sync + fmt::Debug + 'static {
    /// The identifier a login or registration request names (e.g. its
    /// normalised email), for rate limits per identifier. Default: none, so
    /// only the limits per client address apply.
    fn identifier(&self, req: &AuthRequest) -> Option<String> {
        let _ = req;
        None
    }

    /// This instance's name for frontends (providers lists), when its options
    /// set one; default: the kind's [`ProviderKind::DISPLAY_NAME`].
    fn display_name(&self) -> Option<&str> {
        None
    }

    /// The stored form of an identifier a user typed (e.g. a trimmed,
    /// lower-cased email), used to find an identity by it outside the
    /// provider (password reset requests). Default: unchanged.
    fn normalize_entity_id(&self, raw: &str) -> String {
        raw.to_owned()
    }

    /// Logs a user in, or answers where to continue.
    async fn authenticate(&self, req: AuthRequest, ids: &ProviderIdentities)
    -> Result<AuthOutcome>;

    /// Creates an identity from credentials.
    async fn register(&self, req: AuthRequest, ids: &ProviderIdentities) -> Result<AuthOutcome> {
        let _ = (req, ids);
        Err(Error::not_supported("register"))
    }

    /// Changes an identity's credentials (e.g. a password after a reset).
    async fn update(&self, req: AuthRequest, ids: &ProviderIdentities) -> Result<AuthOutcome> {
        let _ = (req, ids);
        Err(Error::not_supported("update"))
    }

    /// This provider as a second factor (MFA), if it can be one: the MFA
    /// routes then offer factors of its kind. Default: `None`.
    fn second_factor(&self) -> Option<&dyn SecondFactor> {
        None
    }

    /// Completes a redirect flow when the client comes back.
    async fn validate_callback(
        &self,
        req: AuthRequest,
        ids: &ProviderIdentities,
    ) -> Result<AuthOutcome> {
        let _ = (req, ids);
        Err(Error::not_supported("validate_callback"))
    }
}

/// A provider whose credentials also serve as a second factor (passkeys):
/// the MFA flow ([`crate::flows::Mfa`]) calls it for factors of its kind.
/// Its credentials as factors are not login credentials: a factor's
/// credentials belong to the factor (`factor_id`), and are forgotten when it
/// is disabled.
#[async_trait]
pub trait SecondFactor: Send + Sync + fmt::Debug {
    /// The options a client answers to enrol a credential as factor
    /// `factor_id` (pending) of `auth_identity_id`.
    async fn enrolment_options(
        &self,
        auth_identity_id: &str,
        factor_id: &str,
        ids: &ProviderIdentities,
    ) -> Result<Value>;

    /// Checks the answer to factor `factor_id`'s enrolment and keeps its
    /// credential: `Ok(false)` if it is refused (or its options expired).
    /// A malformed `answer` is [`crate::ErrorKind::InvalidData`] naming the field.
    async fn enrol(
        &self,
        auth_identity_id: &str,
        factor_id: &str,
        answer: &Value,
        ids: &ProviderIdentities,
    ) -> Result<bool>;

    /// The options of MFA challenge `challenge_id`, answerable by the
    /// credentials of factors `factor_ids`.
    async fn challenge_options(
        &self,
        auth_identity_id: &str,
        challenge_id: &str,
        factor_ids: &[String],
        ids: &ProviderIdentities,
    ) -> Result<Value>;

    /// Whether `answer` answers MFA challenge `challenge_id` with a
    /// credential of one of factors `factor_ids`.
    async fn verify(
        &self,
        auth_identity_id: &str,
        challenge_id: &str,
        factor_ids: &[String],
        answer: &Value,
        ids: &ProviderIdentities,
    ) -> Result<bool>;

    /// Forgets the credentials of factor `factor_id` (it was disabled).
    async fn forget(
        &self,
        auth_identity_id: &str,
        factor_id: &str,
        ids: &ProviderIdentities,
    ) -> Result<()>;
}

/// Cross-field validation of a provider's typed options, run after they are
/// deserialized and before the provider is built.
pub trait ValidateOptions {
    /// `Err` names the offending field (path inside `options`) and the problem.
    fn validate_options(&self) -> std::result::Result<(), OptionsError> {
        Ok(())
    }
}

/// What a provider is built from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProviderInit<O> {
    /// The instance id (`id` in the config).
    pub id: String,
    /// The validated options.
    pub options: O,
}

impl<O> ProviderInit<O> {
    /// An init value for instance `id`.
    pub fn new(id: impl Into<String>, options: O) -> Self {
        ProviderInit {
            id: id.into(),
            options,
        }
    }
}

/// The static half of a provider: metadata, typed options and construction.
///
/// Registered with [`crate::register_provider!`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a provider kind",
    note = "implement `auth_module::ProviderKind` (IDENTIFIER, DISPLAY_NAME, FLOW, Options, new) and `auth_module::AuthProvider`"
)]
pub trait ProviderKind: AuthProvider + Sized {
    /// The kind's identifier, named by `resolve` in the config (e.g. `emailpass`).
    const IDENTIFIER: &'static str;
    /// A human name for frontends (e.g. `Email/Password Authentication`).
    const DISPLAY_NAME: &'static str;
    /// Whether clients log in with credentials at once or through a redirect
    /// and the callback route (shown in providers lists).
    const FLOW: ProviderFlow;
    /// The typed options; an absent `options` table deserializes from `{}`.
    type Options: DeserializeOwned + ValidateOptions;

    /// Whether instances keep credentials in the identity store's
    /// [`crate::PasskeyStore`] ([`ProviderIdentities::passkeys`]): a module
    /// with such an instance refuses to start on a store without one.
    /// Default `false`.
    const NEEDS_PASSKEY_STORE: bool = false;

    /// Builds an instance from validated options.
    fn new(init: ProviderInit<Self::Options>) -> std::result::Result<Self, OptionsError>;
}

/// The storage handle a provider works through, scoped to its instance id: it
/// reads and writes only that instance's provider identities and state keys.
#[derive(Clone)]
pub struct ProviderIdentities {
    provider: Arc<str>,
    identities: Arc<dyn IdentityStore>,
    state: Arc<dyn StateStore>,
    events: EventBus,
    audit: crate::audit::AuditLog,
}

impl fmt::Debug for ProviderIdentities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderIdentities")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

impl ProviderIdentities {
    /// A handle for provider instance `provider` over the given stores.
    pub fn new(
        provider: impl Into<Arc<str>>,
        identities: Arc<dyn IdentityStore>,
        state: Arc<dyn StateStore>,
    ) -> Self {
        ProviderIdentities {
            provider: provider.into(),
            identities,
            state,
            events: EventBus::new(),
            audit: crate::audit::AuditLog::off(),
        }
    }

    /// This handle, recording into `audit` (the module's audit log).
    pub fn with_audit(mut self, audit: crate::audit::AuditLog) -> Self {
        self.audit = audit;
        self
    }

    /// Appends `entry` to the module's audit log (when it is on), naming this
    /// provider instance unless the entry names one. Never fails the caller.
    pub async fn audit(&self, mut entry: crate::NewAuditEntry) {
        if entry.provider.is_none() {
            entry.provider = Some(self.provider.to_string());
        }
        self.audit.record(entry).await;
    }

    /// This handle, emitting through `events` (the module's bus).
    pub fn with_events(mut self, events: EventBus) -> Self {
        self.events = events;
        self
    }

    /// Emits event `name` with `data` on the module's bus (subscribers and
    /// sinks), e.g. a passwordless provider's one-time code. Returns at once;
    /// delivery never fails the caller. Name events `{provider kind}.{what}`
    /// (`magic-link.code_sent`); `data` may carry secrets: sinks treat it so.
    pub fn emit(&self, name: &str, data: Value) {
        self.events.emit(Event::new(name, data));
    }

    /// The identity store's passkey credentials, if it keeps them
    /// ([`crate::IdentityStore::passkey_store`]).
    pub fn passkeys(&self) -> Option<Arc<dyn crate::PasskeyStore>> {
        Arc::clone(&self.identities).passkey_store()
    }

    /// The auth identity `auth_identity_id` with only this provider's
    /// provider identities; [`crate::ErrorKind::NotFound`] if none.
    pub async fn identity(&self, auth_identity_id: &str) -> Result<AuthIdentity> {
        let identity = self
            .identities
            .retrieve_auth_identity(auth_identity_id)
            .await?;
        Ok(self.scoped(identity))
    }

    /// The provider instance id this handle is scoped to.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// Keeps only this provider's rows in `identity`.
    fn scoped(&self, mut identity: AuthIdentity) -> AuthIdentity {
        identity
            .provider_identities
            .retain(|p| *p.provider == *self.provider);
        identity
    }

    /// The auth identity this provider knows as `entity_id`, if any. Its
    /// provider identity at this provider is the row just read from the store
    /// (never a cached copy), so credentials are checked against what is
    /// stored now.
    pub async fn find(&self, entity_id: &str) -> Result<Option<AuthIdentity>> {
        let Some(p) = self
            .identities
            .find_provider_identity(&self.provider, entity_id)
            .await?
        else {
            return Ok(None);
        };
        match self
            .identities
            .retrieve_auth_identity(&p.auth_identity_id)
            .await
        {
            Ok(mut identity) => {
                identity.provider_identities.retain(|x| x.id != p.id);
                identity.provider_identities.push(p);
                Ok(Some(self.scoped(identity)))
            }
            // Deleted between the two reads.
            Err(e) if e.kind() == crate::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The auth identity this provider knows as `entity_id`;
    /// [`crate::ErrorKind::NotFound`] if none.
    pub async fn retrieve(&self, entity_id: &str) -> Result<AuthIdentity> {
        self.find(entity_id).await?.ok_or_else(|| {
            Error::not_found(format!(
                "AuthIdentity with entity_id: {entity_id} was not found"
            ))
        })
    }

    /// Creates a new auth identity known to this provider as `new.entity_id`
    /// ([`crate::ErrorKind::DuplicateError`] if it exists). `new.provider` is
    /// forced to this handle's provider.
    pub async fn create(&self, mut new: NewProviderIdentity) -> Result<AuthIdentity> {
        new.provider = self.provider.to_string();
        let identity = self
            .identities
            .create_auth_identity(NewAuthIdentity::with_provider_identity(new))
            .await?;
        Ok(self.scoped(identity))
    }

    /// Attaches a new provider identity at this provider (`new.entity_id`) to
    /// the existing auth identity `auth_identity_id` and returns it (linking
    /// with proof: call it only with [`AuthRequest::link_to`]).
    /// [`crate::ErrorKind::DuplicateError`] if this provider already knows
    /// `new.entity_id`; [`crate::ErrorKind::NotFound`] if the auth identity is gone.
    pub async fn attach(
        &self,
        auth_identity_id: &str,
        mut new: NewProviderIdentity,
    ) -> Result<AuthIdentity> {
        new.provider = self.provider.to_string();
        self.identities
            .add_provider_identity(auth_identity_id, new)
            .await?;
        let identity = self
            .identities
            .retrieve_auth_identity(auth_identity_id)
            .await?;
        Ok(self.scoped(identity))
    }

    /// Updates this provider's identity `entity_id` and returns its auth
    /// identity. With [`ProviderIdentityUpdate::if_provider_metadata`] the
    /// update is a compare-and-set: [`crate::ErrorKind::Conflict`] if the
    /// stored metadata changed since it was read.
    pub async fn update(
        &self,
        entity_id: &str,
        update: ProviderIdentityUpdate,
    ) -> Result<AuthIdentity> {
        let p = self
            .identities
            .find_provider_identity(&self.provider, entity_id)
            .await?
            .ok_or_else(|| {
                Error::not_found(format!(
                    "AuthIdentity with entity_id: {entity_id} was not found"
                ))
            })?;
        self.identities
            .update_provider_identity(&p.id, update)
            .await?;
        let identity = self
            .identities
            .retrieve_auth_identity(&p.auth_identity_id)
            .await?;
        Ok(self.scoped(identity))
    }

    fn state_key(&self, key: &str) -> String {
        crate::state_keys::provider_state(&self.provider, key)
    }

    /// Stores provider state under `key` for `ttl`.
    pub async fn set_state(&self, key: &str, value: Value, ttl: Duration) -> Result<()> {
        self.state.set(&self.state_key(key), value, ttl).await
    }

    /// Reads provider state.
    pub async fn get_state(&self, key: &str) -> Result<Option<Value>> {
        self.state.get(&self.state_key(key)).await
    }

    /// Reads and removes provider state atomically (single use).
    pub async fn take_state(&self, key: &str) -> Result<Option<Value>> {
        self.state.take(&self.state_key(key)).await
    }
}
