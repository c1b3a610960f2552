//! The provider crates this build links, one cargo feature each. Naming a crate
//! here keeps its link-time registration from being dropped.

#[cfg(feature = "provider-emailpass")]
use provider_emailpass as _;
#[cfg(feature = "provider-github")]
use provider_github as _;
#[cfg(feature = "provider-google")]
use provider_google as _;
#[cfg(feature = "provider-oidc")]
use provider_oidc as _;
#[cfg(feature = "provider-passkey")]
use provider_passkey as _;

/// Forces this module (and with it the `use`s above) into the binary.
pub(crate) fn link() {}
