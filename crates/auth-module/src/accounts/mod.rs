//! Account services over the whole [`AuthModule`](crate::AuthModule):
//! [`PasswordReset`] (reset tokens redeemed through a provider's `update`)
//! the SSO user route's [`UserDirectory`] and [`link_sso_user`], and an
//! identity's passkeys ([`list_passkeys`], [`rename_passkey`],
//! [`remove_passkey`]).
//!
//! They sit above the module, beside the [`gate`](crate::gate) that owns
//! them; the [`flows`](crate::flows) below the module take only the stores
//! and settings they need.

mod passkeys;
mod reset;
mod sso;

pub use passkeys::{
    LAST_WAY_TO_SIGN_IN, MAX_PASSKEY_NAME, PASSKEY_REMOVED_EVENT, list_passkeys, passkey_json,
    remove_passkey, rename_passkey,
};

pub use reset::{PASSWORD_RESET_EVENT, PasswordReset, PendingUpdate, ResetOutcome, UpdateAttempt};
pub use sso::{
    LinkedIdentityUsers, SsoProfile, SsoUser, UserDirectory, link_sso_user, sso_profile,
};
