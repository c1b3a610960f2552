//! For store implementors: the errors every [`crate::IdentityStore`] answers
//! word for word, so a client sees the same text whichever store is
//! configured, and the rule for patchable `app_metadata` keys. The traits
//! themselves are at the crate root; `auth-testkit`'s suites check an
//! implementation against their contracts.

pub use crate::stores::{
    auth_identity_not_found, duplicate_provider_identity, invalid_app_metadata_key,
    provider_identity_not_found, provider_metadata_changed, valid_app_metadata_key,
};
