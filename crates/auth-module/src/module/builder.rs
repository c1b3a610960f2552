//! [`AuthModuleBuilder`]: builds an [`AuthModule`] from a [`Config`] and/or
//! Rust calls.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::{AuthModule, Inner, Instance, ProviderInfo};
use crate::config::{Config, LimitsConfig, MfaConfig, ProviderConfig, Secret, VerificationRule};
use crate::error::ConfigError;
use crate::events::EventBus;
use crate::flows::Limits;
use crate::memory::{MemoryIdentityStore, MemoryStateStore};
use crate::provider::ProviderIdentities;
use crate::registry::Registry;
use crate::store_traits::{IdentityStore, StateStore};

/// Builds an [`AuthModule`] from a [`Config`] and/or Rust calls.
///
/// The builder holds one [`Config`]: [`AuthModuleBuilder::config`] takes a
/// loaded one whole (checked once, when it was read), and the setters change
/// it (it is then checked again in [`AuthModuleBuilder::build`]).
#[derive(Debug)]
pub struct AuthModuleBuilder {
    config: Config,
    identities: Option<Arc<dyn IdentityStore>>,
    state: Option<Arc<dyn StateStore>>,
    registry: Option<Registry>,
    events: Option<EventBus>,
    clock: Option<Arc<dyn crate::mfa::Clock>>,
}

impl Default for AuthModuleBuilder {
    fn default() -> Self {
        let mut config = Config::new(Vec::new());
        // Built in Rust, a module keeps identities and state in memory
        // unless stores are passed in.
        config.store.url = Secret::new("memory://");
        config.state.url = Secret::new("memory://");
        AuthModuleBuilder {
            config,
            identities: None,
            state: None,
            registry: None,
            events: None,
            clock: None,
        }
    }
}

impl AuthModuleBuilder {
    /// Takes `config` whole. Providers added before are kept, ahead of its
    /// own. Its `[store]` and `[state]` URLs are opened by a store factory
    /// (as `auth-server` does) and passed with
    /// [`AuthModuleBuilder::identity_store`] and
    /// [`AuthModuleBuilder::state_store`]; only `memory://` needs none.
    pub fn config(mut self, mut config: Config) -> Self {
        if !self.config.providers.is_empty() {
            let earlier = std::mem::take(&mut self.config.providers);
            config.changed().providers.splice(0..0, earlier);
        }
        self.config = config;
        self
    }

    /// Adds a provider instance `id` of kind `resolve`.
    pub fn provider(mut self, resolve: &str, id: &str, options: Value) -> Self {
        self.config
            .changed()
            .providers
            .push(ProviderConfig::new(resolve, id, options));
        self
    }

    /// Restricts `actor_type` to the given provider ids.
    pub fn auth_methods_for_actor(mut self, actor_type: &str, provider_ids: &[&str]) -> Self {
        self.config
            .changed()
            .auth_methods_per_actor
            .get_or_insert_with(BTreeMap::new)
            .insert(
                actor_type.to_owned(),
                provider_ids.iter().map(|s| (*s).to_owned()).collect(),
            );
        self
    }

    /// Turns MFA on with these settings (`[mfa]`).
    pub fn mfa(mut self, config: MfaConfig) -> Self {
        self.config.changed().mfa = Some(config);
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
    pub fn verifications_for_actor(mut self, actor_type: &str, rules: &[VerificationRule]) -> Self {
        self.config
            .changed()
            .auth_verifications_per_actor
            .get_or_insert_with(BTreeMap::new)
            .insert(actor_type.to_owned(), rules.to_vec());
        self
    }

    /// Uses these rate limits (default: [`LimitsConfig::default`]).
    pub fn limits(mut self, limits: LimitsConfig) -> Self {
        self.config.changed().limits = limits;
        self
    }

    /// Accepts only these actor types on routes (default: any valid one).
    pub fn actor_types(mut self, actor_types: &[&str]) -> Self {
        self.config.changed().actor_types =
            Some(actor_types.iter().map(|s| (*s).to_owned()).collect());
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
    ///
    /// The identity store must have the capabilities the configuration
    /// needs: an [`crate::MfaStore`] ([`IdentityStore::mfa_store`]) with
    /// `[mfa]`, a [`crate::VerificationStore`]
    /// ([`IdentityStore::verification_store`]) when
    /// `http.auth_verifications_per_actor` has a rule, a
    /// [`crate::PasskeyStore`] ([`IdentityStore::passkey_store`]) for a
    /// provider kind that keeps passkeys; else a [`ConfigError`]
    /// says what it lacks (never the store's `Debug`, which may show what it
    /// holds).
    pub fn build(self) -> std::result::Result<AuthModule, ConfigError> {
        let registry = match self.registry {
            Some(r) => r,
            None => Registry::linked()?,
        };
        let (config, checked) = self.config.into_checked()?;
        let memory_only = |url: &Secret, key: &str, method: &str| match url.expose() {
            "memory://" => Ok(()),
            _ => Err(ConfigError::new(format!(
                "{key}: this store is opened by a store factory (auth-server's), not by \
                 auth-module; pass it to AuthModuleBuilder::{method}"
            ))),
        };
        let identities: Arc<dyn IdentityStore> = match self.identities {
            Some(s) => s,
            None => {
                memory_only(&config.store.url, "store.url", "identity_store")?;
                Arc::new(MemoryIdentityStore::new())
            }
        };
        let state: Arc<dyn StateStore> = match self.state {
            Some(s) => s,
            None => {
                memory_only(&config.state.url, "state.url", "state_store")?;
                Arc::new(MemoryStateStore::new())
            }
        };
        // The identity store's capabilities, asked once: a configuration
        // that needs one the store lacks is refused now, not at the first
        // request.
        let mfa_records = Arc::clone(&identities).mfa_store();
        let verification_records = Arc::clone(&identities).verification_store();
        if config.mfa.is_some() && mfa_records.is_none() {
            return Err(ConfigError::new(
                "[mfa]: the identity store keeps no MFA factors; use a store that \
                 implements MfaStore",
            ));
        }
        let verifies = config
            .auth_verifications_per_actor
            .iter()
            .flat_map(BTreeMap::values)
            .any(|rules| !rules.is_empty());
        if verifies && verification_records.is_none() {
            return Err(ConfigError::new(
                "http.auth_verifications_per_actor: the identity store keeps no \
                 verifications; use a store that implements VerificationStore",
            ));
        }
        let audit = if config.audit.enabled {
            crate::audit::AuditLog::new(Arc::clone(&identities).audit_store().ok_or_else(|| {
                ConfigError::new(
                    "[audit]: the identity store keeps no audit log; use a store that \
                         implements AuditStore, or set audit.enabled = false",
                )
            })?)
        } else {
            crate::audit::AuditLog::off()
        };
        let devices = Arc::clone(&identities).device_store();
        let mfa = config.mfa.zip(checked.mfa_keys);
        let events = self.events.unwrap_or_default();
        let mut instances = BTreeMap::new();
        let mut order = Vec::new();
        for (i, p) in config.providers.into_iter().enumerate() {
            let context = format!("providers[{i}] \"{}\"", p.id);
            let reg = registry
                .get(&p.resolve)
                .ok_or_else(|| registry.unknown_provider_error(&context, &p.resolve))?;
            if reg.needs_passkey_store() && Arc::clone(&identities).passkey_store().is_none() {
                return Err(ConfigError::new(format!(
                    "{context}: the identity store keeps no passkeys; use a store that \
                     implements PasskeyStore"
                )));
            }
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
                .with_events(events.clone())
                .with_audit(audit.clone());
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
        let clock = self
            .clock
            .unwrap_or_else(|| Arc::new(crate::mfa::SystemClock));
        // The first configured provider that is also a second factor
        // serves factors of its kind.
        let second = order.iter().find_map(|id| {
            let instance = &instances[id];
            instance.provider.second_factor()?;
            Some(crate::flows::SecondFactorProvider {
                kind: instance.info.identifier,
                provider: Arc::clone(&instance.provider),
                ids: instance.ids.clone(),
            })
        });
        let mfa = crate::flows::Mfa::new(
            mfa_records,
            state.clone(),
            events.clone(),
            clock.clone(),
            mfa,
            second,
            audit.clone(),
        );
        let limits = Limits::new(state.clone(), config.limits);
        let verifications = crate::flows::Verifications::new(
            verification_records,
            events.clone(),
            clock,
            limits.clone(),
            config.auth_verifications_per_actor.unwrap_or_default(),
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
                audit,
                audit_retention: config.audit.retention,
                devices,
            }),
        })
    }
}
