//! The module's flows, as small services over the stores, usable without
//! HTTP: [`PasswordReset`] and [`Sessions`]. `auth-http` parses requests,
//! calls them and serialises their answers; nothing more.

mod limits;
mod reset;
mod session;

pub use limits::{Limits, LoginCheck};
pub use reset::{PASSWORD_RESET_EVENT, PasswordReset, ResetOutcome};
pub use session::{DEFAULT_MAX_SESSIONS_PER_IDENTITY, SessionInfo, Sessions};
