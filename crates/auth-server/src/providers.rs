//! The provider crates this build links, one cargo feature each. Naming a crate
//! here keeps its link-time registration from being dropped.

#[cfg(feature = "provider-emailpass")]
use provider_emailpass as _;

/// Forces this module (and with it the `use`s above) into the binary.
pub(crate) fn link() {}
