//! Account services over the whole [`AuthModule`](crate::AuthModule):
//! [`PasswordReset`] (reset tokens redeemed through a provider's `update`)
//! and the SSO user route's [`UserDirectory`] and [`link_sso_user`].
//!
//! They sit above the module, beside the [`gate`](crate::gate) that owns
//! them; the [`flows`](crate::flows) below the module take only the stores
//! and settings they need.

mod reset;
mod sso;

pub use reset::{PASSWORD_RESET_EVENT, PasswordReset, PendingUpdate, ResetOutcome, UpdateAttempt};
pub use sso::{
    LinkedIdentityUsers, SsoProfile, SsoUser, UserDirectory, link_sso_user, sso_profile,
};
