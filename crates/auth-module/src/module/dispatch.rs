//! Dispatch to provider instances ([`AuthModule::authenticate`],
//! [`AuthModule::register`], ...), with the rate-limit slots taken around
//! each call, and the login steps after an authentication.

use super::{AuthModule, LoginOutcome};
use crate::error::{ErrorKind, Result};
use crate::flows::{Slot, Taken};
use crate::model::AuthIdentity;
use crate::provider::{AuthOutcome, AuthRequest, ProviderFlow};

#[derive(Clone, Copy)]
enum Method {
    Authenticate,
    Register,
    Update,
    Callback,
}

impl AuthModule {
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
        // A redirect or challenge login starts by handing out state (a
        // location, WebAuthn options): counted per address as a start; the
        // proof comes at its callback.
        let redirect = instance.info.flow != ProviderFlow::Credentials;
        let identifier = match method {
            Method::Authenticate | Method::Register if !redirect => p.identifier(&req),
            _ => None,
        };
        let challenge = instance.info.flow == ProviderFlow::Challenge;
        let mut login = None;
        let mut register = None;
        // A challenge provider's registration that answers options writes
        // state, as a redirect start does: counted as one (given back when
        // the step turns out to be an answer instead).
        let mut start = None;
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
                            _ if challenge => Some(limits.take_redirect_start(addr).await?),
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
            Some(Taken::Go(slot)) if challenge && matches!(method, Method::Register) => {
                start = Some(slot);
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
        if let Some(slot) = start
            && !matches!(result, Ok(AuthOutcome::Options(_)))
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
            // Invalid data the provider names (a password the policy refuses,
            // a passkey's malformed JSON) is the caller's 400, not a failed
            // login.
            Err(e) if matches!(e.kind(), ErrorKind::NotAllowed | ErrorKind::InvalidData) => Err(e),
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
}
