//! [`AuthModule`]: the service that routes requests to provider instances and
//! manages identities.

mod builder;
mod dispatch;
mod identities;
mod outcome;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};
use crate::events::EventBus;
use crate::flows::Limits;
use crate::provider::{AuthProvider, ProviderFlow, ProviderIdentities};
use crate::store_traits::{IdentityStore, StateStore};

pub use builder::AuthModuleBuilder;
pub use outcome::LoginOutcome;

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
    audit: crate::audit::AuditLog,
    audit_retention: std::time::Duration,
    devices: Option<Arc<dyn crate::store_traits::DeviceStore>>,
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

    /// The audit log (off with `[audit] enabled = false`).
    pub fn audit(&self) -> &crate::audit::AuditLog {
        &self.inner.audit
    }

    /// How long audit entries are kept (`[audit] retention`).
    pub fn audit_retention(&self) -> std::time::Duration {
        self.inner.audit_retention
    }

    /// The identity store's devices, when it keeps them.
    pub fn device_store(&self) -> Option<&Arc<dyn crate::store_traits::DeviceStore>> {
        self.inner.devices.as_ref()
    }

    /// TOTP MFA: factors, recovery codes, challenges.
    pub fn mfa(&self) -> &crate::flows::Mfa {
        &self.inner.mfa
    }

    /// Verification of entity ids (emails) by code.
    pub fn verifications(&self) -> &crate::flows::Verifications {
        &self.inner.verifications
    }

    /// The event bus the module and its providers emit on.
    pub fn events(&self) -> &EventBus {
        &self.inner.events
    }
}

fn validate_actor_type(actor_type: &str) -> Result<()> {
    crate::config::check_actor_type(actor_type).map_err(Error::invalid_data)
}
