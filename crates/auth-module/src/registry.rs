//! The link-time provider registry.
//!
//! Each provider crate submits one [`ProviderRegistration`] with
//! [`crate::register_provider!`]; nothing central lists providers. A binary
//! links a provider crate by naming it (`use provider_emailpass as _;`), which
//! is what its cargo features decide.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::error::{ConfigError, OptionsError};
use crate::provider::{AuthProvider, ProviderFlow, ProviderInit, ProviderKind, ValidateOptions};

type BuildFn = fn(&str, Value) -> Result<Arc<dyn AuthProvider>, OptionsError>;

/// One provider kind, as submitted by its crate: identifier, display name and
/// a constructor from JSON options.
pub struct ProviderRegistration {
    identifier: &'static str,
    display_name: &'static str,
    flow: ProviderFlow,
    needs_passkey_store: bool,
    origin: &'static str,
    build: BuildFn,
}

impl fmt::Debug for ProviderRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderRegistration")
            .field("identifier", &self.identifier)
            .field("display_name", &self.display_name)
            .field("flow", &self.flow)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

fn build<P: ProviderKind>(id: &str, options: Value) -> Result<Arc<dyn AuthProvider>, OptionsError> {
    let options = match options {
        Value::Null => Value::Object(Default::default()),
        other => other,
    };
    let options: P::Options = serde_path_to_error::deserialize(options).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        OptionsError::new(path, e.into_inner().to_string())
    })?;
    options.validate_options()?;
    let provider = P::new(ProviderInit::new(id, options))?;
    Ok(Arc::new(provider))
}

impl ProviderRegistration {
    /// The registration of provider kind `P`.
    pub const fn of<P: ProviderKind>() -> Self {
        ProviderRegistration {
            identifier: P::IDENTIFIER,
            display_name: P::DISPLAY_NAME,
            flow: P::FLOW,
            needs_passkey_store: P::NEEDS_PASSKEY_STORE,
            origin: "",
            build: build::<P>,
        }
    }

    /// Records where the registration comes from (the submitting module path),
    /// for error messages about duplicates.
    pub const fn with_origin(mut self, origin: &'static str) -> Self {
        self.origin = origin;
        self
    }

    /// The kind's identifier (`resolve` in the config).
    pub fn identifier(&self) -> &'static str {
        self.identifier
    }

    /// The kind's display name.
    pub fn display_name(&self) -> &'static str {
        self.display_name
    }

    /// The kind's flow.
    pub fn flow(&self) -> ProviderFlow {
        self.flow
    }

    /// Whether the kind keeps credentials in a [`crate::PasskeyStore`]
    /// ([`ProviderKind::NEEDS_PASSKEY_STORE`]).
    pub fn needs_passkey_store(&self) -> bool {
        self.needs_passkey_store
    }

    /// Builds an instance `id` from JSON `options` (`null` means `{}`):
    /// deserialize, validate, construct.
    pub fn build(&self, id: &str, options: Value) -> Result<Arc<dyn AuthProvider>, OptionsError> {
        (self.build)(id, options)
    }
}

inventory::collect!(ProviderRegistration);

/// A set of provider kinds to build instances from: the linked ones
/// ([`Registry::linked`]) or an explicit list for embedders and targets
/// without link-time registration ([`Registry::empty`] + [`Registry::with`]).
#[derive(Debug, Clone, Default)]
pub struct Registry {
    kinds: BTreeMap<&'static str, &'static ProviderRegistration>,
}

impl Registry {
    /// A registry with no provider.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Every provider kind linked into this binary. Two crates registering
    /// one identifier is an error naming both.
    pub fn linked() -> Result<Self, ConfigError> {
        let mut r = Self::empty();
        for reg in inventory::iter::<ProviderRegistration> {
            r = r.try_with(reg)?;
        }
        Ok(r)
    }

    /// Adds `reg`; a second kind with the same identifier is an error.
    pub fn try_with(mut self, reg: &'static ProviderRegistration) -> Result<Self, ConfigError> {
        if let Some(prev) = self.kinds.get(reg.identifier) {
            if std::ptr::eq(*prev, reg) {
                return Ok(self);
            }
            return Err(ConfigError::new(format!(
                "provider identifier \"{}\" is registered twice: by {} and by {}",
                reg.identifier,
                origin_name(prev.origin),
                origin_name(reg.origin)
            )));
        }
        self.kinds.insert(reg.identifier, reg);
        Ok(self)
    }

    /// Adds `reg` (a `'static` registration, e.g. from a `static` item);
    /// replaces an earlier kind of the same identifier.
    pub fn with(mut self, reg: &'static ProviderRegistration) -> Self {
        self.kinds.insert(reg.identifier, reg);
        self
    }

    /// The kind named `identifier`.
    pub fn get(&self, identifier: &str) -> Option<&'static ProviderRegistration> {
        self.kinds.get(identifier).copied()
    }

    /// The kinds, sorted by identifier.
    pub fn iter(&self) -> impl Iterator<Item = &'static ProviderRegistration> + '_ {
        self.kinds.values().copied()
    }

    /// The startup error for a `resolve` that names no kind here: it lists the
    /// linked identifiers and says what would add the missing one.
    pub fn unknown_provider_error(&self, context: &str, resolve: &str) -> ConfigError {
        let linked: Vec<&str> = self.kinds.keys().copied().collect();
        let linked = if linked.is_empty() {
            "none".to_owned()
        } else {
            linked.join(", ")
        };
        ConfigError::new(format!(
            "{context}: unknown provider \"{resolve}\"; linked providers: {linked}. \
             Add the crate `provider-{resolve}` to your dependencies and name it \
             (`use provider_{} as _;`), or build auth-server with the cargo feature \
             `provider-{resolve}`",
            resolve.replace('-', "_")
        ))
    }
}

fn origin_name(origin: &str) -> &str {
    if origin.is_empty() {
        "an unnamed crate"
    } else {
        origin
    }
}

/// The provider kinds linked into this binary, sorted by identifier
/// (duplicates are reported by [`Registry::linked`]).
pub fn linked_providers() -> Vec<&'static ProviderRegistration> {
    let mut v: Vec<_> = inventory::iter::<ProviderRegistration>
        .into_iter()
        .collect();
    v.sort_by_key(|r| r.identifier);
    v
}

/// Registers a provider kind at link time:
/// `auth_module::register_provider!(MyProvider);` in the provider crate.
/// The type must implement [`ProviderKind`].
#[macro_export]
macro_rules! register_provider {
    ($provider:ty) => {
        $crate::__private::inventory::submit! {
            $crate::ProviderRegistration::of::<$provider>().with_origin(::core::module_path!())
        }
    };
}
