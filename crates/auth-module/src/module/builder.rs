//! [`AuthModuleBuilder`]: builds an [`AuthModule`] from a [`Config`] and/or
//! Rust calls.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::{AuthModule, Inner, Instance, ProviderInfo};
use crate::config::{Config, LimitsConfig, ProviderConfig};
use crate::error::ConfigError;
use crate::events::EventBus;
use crate::flows::Limits;
use crate::memory::{MemoryIdentityStore, MemoryStateStore};
use crate::provider::ProviderIdentities;
use crate::registry::Registry;
use crate::store_traits::{IdentityStore, StateStore};

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
