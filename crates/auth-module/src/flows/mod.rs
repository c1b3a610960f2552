//! The module's flows, as small services over the stores, usable without
//! HTTP: [`Limits`], [`Sessions`], [`Mfa`] and [`Verifications`]. Each takes
//! the stores and settings it needs, never the [`AuthModule`](crate::AuthModule),
//! which is built over them. (Services over the whole module, the password
//! reset and the SSO user route, are in [`accounts`](crate::accounts).)
//! `auth-http` parses requests, calls them and serialises their answers;
//! nothing more.

mod devices;
mod limits;
mod mfa;
mod session;
mod verification;

pub use devices::{
    DEFAULT_DEVICE_IDLE_TTL, DeviceCheck, Devices, MAX_DEVICES_PER_IDENTITY, NEW_DEVICE_EVENT,
    device_json,
};
pub use limits::{IN_FLIGHT_PER_IDENTIFIER, Limits, Slot, Taken};
pub(crate) use mfa::SecondFactorProvider;
pub use mfa::{
    ChallengeCompleted, CreatedFactor, MFA_DISABLED_EVENT, MFA_ENABLED_EVENT,
    MFA_RECOVERY_CODES_EVENT, Mfa, MfaAnswer, MfaChallenge, RECOVERY_CODE, TOTP, factor_json,
    iso_millis, parse_iso,
};
pub use session::{DEFAULT_MAX_SESSIONS_PER_IDENTITY, SessionInfo, Sessions};
pub use verification::{
    TOKEN_CODE_PROVIDER, VERIFICATION_CODE_TTL, VERIFICATION_REQUESTED_EVENT, VerificationRequest,
    Verifications, verification_json,
};
