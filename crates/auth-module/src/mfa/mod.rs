//! Building blocks of multi-factor authentication: TOTP codes (RFC 6238),
//! secrets sealed at rest with rotating keys, recovery codes and their keyed
//! hash, and an injectable clock so tests never wait for a time step.
//!
//! ```
//! use auth_module::mfa::{Clock, FixedClock, Totp, TotpAlgorithm};
//! let clock = FixedClock::new(1_700_000_000);
//! let totp = Totp::new(b"12345678901234567890".to_vec(), 6, 30, TotpAlgorithm::Sha1);
//! let code = totp.code_at(clock.now_unix());
//! assert_eq!(totp.verify(&code, clock.now_unix(), 1), Some(1_700_000_000 / 30));
//! ```

mod secret;
mod totp;

use std::sync::atomic::{AtomicU64, Ordering};

pub use secret::{
    MIN_KEY_CHARS, MfaKeys, generate_recovery_code, generate_totp_secret, normalize_recovery_code,
};
pub use totp::{Totp, TotpAlgorithm, base32_decode, base32_encode};

/// Where MFA takes the time from.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Seconds since the Unix epoch.
    fn now_unix(&self) -> u64;

    /// Now, as a time (whole seconds unless the clock knows better).
    fn now(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::from_unix_timestamp(i64::try_from(self.now_unix()).unwrap_or(0))
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    fn now(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc()
    }
}

/// A clock that says what it is told (tests).
#[derive(Debug, Default)]
pub struct FixedClock(AtomicU64);

impl FixedClock {
    /// A clock at `unix_secs`.
    pub fn new(unix_secs: u64) -> Self {
        FixedClock(AtomicU64::new(unix_secs))
    }

    /// Moves the clock to `unix_secs`.
    pub fn set(&self, unix_secs: u64) {
        self.0.store(unix_secs, Ordering::SeqCst);
    }

    /// Moves the clock forward by `secs`.
    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now_unix(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}
