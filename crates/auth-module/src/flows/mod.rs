//! The module's flows, as small services over the stores, usable without
//! HTTP: [`PasswordReset`], [`Sessions`], [`Mfa`] and [`Verifications`]. `auth-http` parses requests,
//! calls them and serialises their answers; nothing more.

mod limits;
mod mfa;
mod reset;
mod session;
mod sso;
mod verification;

pub use limits::{IN_FLIGHT_PER_IDENTIFIER, Limits, Slot, Taken};
pub use mfa::{
    ChallengeCompleted, CreatedFactor, MFA_DISABLED_EVENT, MFA_ENABLED_EVENT,
    MFA_RECOVERY_CODES_EVENT, Mfa, MfaChallenge, RECOVERY_CODE, TOTP, factor_json, iso_millis,
    parse_iso,
};
pub use reset::{PASSWORD_RESET_EVENT, PasswordReset, PendingUpdate, ResetOutcome, UpdateAttempt};
pub use session::{DEFAULT_MAX_SESSIONS_PER_IDENTITY, SessionInfo, Sessions};
pub use sso::{
    LinkedIdentityUsers, SsoProfile, SsoUser, UserDirectory, link_sso_user, sso_profile,
};
pub use verification::{
    TOKEN_CODE_PROVIDER, VERIFICATION_CODE_TTL, VERIFICATION_REQUESTED_EVENT, VerificationRequest,
    Verifications, verification_json,
};
