//! Password hashing: argon2id in PHC strings, with the stored format detected
//! per value so other formats can be verified (and upgraded) later.

use std::fmt;

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};
use password_hash::SaltString;
use password_hash::rand_core::OsRng;
use serde::Deserialize;

use auth_module::OptionsError;

/// argon2id cost parameters. The defaults are OWASP's first recommendation:
/// m = 19456 KiB, t = 2, p = 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct HashOptions {
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Degree of parallelism (lanes).
    pub parallelism: u32,
}

impl Default for HashOptions {
    fn default() -> Self {
        HashOptions {
            memory_kib: 19456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// The weakest memory cost accepted (OWASP's lowest row, 7 MiB with t = 5).
pub(crate) const MIN_MEMORY_KIB: u32 = 7168;
/// The weakest memory × iterations product accepted (OWASP's rows all reach it).
pub(crate) const MIN_MEMORY_TIMES_ITERATIONS: u64 = 35840;
/// The largest memory cost accepted (1 GiB), so a typo cannot exhaust memory.
pub(crate) const MAX_MEMORY_KIB: u32 = 1024 * 1024;

impl HashOptions {
    /// Refuses parameters below the safe floor or beyond sane bounds.
    pub fn validate(&self) -> Result<(), OptionsError> {
        if self.memory_kib < MIN_MEMORY_KIB {
            return Err(OptionsError::new(
                "hash.memory_kib",
                format!("must be at least {MIN_MEMORY_KIB} (OWASP minimum for argon2id)"),
            ));
        }
        if self.memory_kib > MAX_MEMORY_KIB {
            return Err(OptionsError::new(
                "hash.memory_kib",
                format!("must be at most {MAX_MEMORY_KIB}"),
            ));
        }
        if self.iterations == 0 || self.iterations > 100 {
            return Err(OptionsError::new(
                "hash.iterations",
                "must be between 1 and 100",
            ));
        }
        if u64::from(self.memory_kib) * u64::from(self.iterations) < MIN_MEMORY_TIMES_ITERATIONS {
            return Err(OptionsError::new(
                "hash.iterations",
                format!(
                    "memory_kib × iterations must be at least {MIN_MEMORY_TIMES_ITERATIONS} \
                     (e.g. 19456 KiB × 2, 12288 KiB × 3, 7168 KiB × 5)"
                ),
            ));
        }
        if self.parallelism == 0 || self.parallelism > 64 {
            return Err(OptionsError::new(
                "hash.parallelism",
                "must be between 1 and 64",
            ));
        }
        if self.memory_kib < 8 * self.parallelism {
            return Err(OptionsError::new(
                "hash.memory_kib",
                "must be at least 8 × parallelism",
            ));
        }
        Ok(())
    }

    fn params(&self) -> Result<Params, OptionsError> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| OptionsError::new("hash", e.to_string()))
    }
}

/// The result of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verification {
    /// The password matches.
    pub matches: bool,
    /// The stored hash is weaker than (or of another format than) the
    /// configured one: hash the password again and store it.
    pub needs_rehash: bool,
}

/// The stored formats recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoredFormat {
    Argon2,
    Unknown,
}

fn detect(stored: &str) -> StoredFormat {
    if stored.starts_with("$argon2") {
        StoredFormat::Argon2
    } else {
        StoredFormat::Unknown
    }
}

/// Synchronous argon2id hashing with fixed parameters. Each call costs the
/// configured memory and time: call it off the async executor.
#[derive(Clone)]
pub struct PasswordHashing {
    options: HashOptions,
    argon2: Argon2<'static>,
}

impl fmt::Debug for PasswordHashing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHashing")
            .field("options", &self.options)
            .finish()
    }
}

/// A hashing failure (never contains the password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashError(String);

impl fmt::Display for HashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "password hashing failed: {}", self.0)
    }
}

impl std::error::Error for HashError {}

impl PasswordHashing {
    /// Hashing with `options` (validated).
    pub fn new(options: HashOptions) -> Result<Self, OptionsError> {
        options.validate()?;
        let params = options.params()?;
        Ok(PasswordHashing {
            options,
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
        })
    }

    /// The configured parameters.
    pub fn options(&self) -> HashOptions {
        self.options
    }

    /// A PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) for `password`.
    pub fn hash(&self, password: &str) -> Result<String, HashError> {
        let salt = SaltString::generate(&mut OsRng);
        self.argon2
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| HashError(e.to_string()))
    }

    /// Checks `password` against `stored`, with the cost of `stored`'s own
    /// parameters. An unrecognised or malformed value never matches.
    pub fn verify(&self, stored: &str, password: &str) -> Verification {
        match detect(stored) {
            StoredFormat::Argon2 => {
                let Ok(parsed) = PasswordHash::new(stored) else {
                    tracing::warn!("stored password hash is not a valid PHC string");
                    return Verification {
                        matches: false,
                        needs_rehash: false,
                    };
                };
                let matches = Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok();
                Verification {
                    matches,
                    needs_rehash: matches && self.is_weaker(&parsed),
                }
            }
            StoredFormat::Unknown => {
                tracing::warn!("stored password hash has an unsupported format");
                Verification {
                    matches: false,
                    needs_rehash: false,
                }
            }
        }
    }

    fn is_weaker(&self, parsed: &PasswordHash<'_>) -> bool {
        if parsed.algorithm.as_str() != "argon2id" {
            return true;
        }
        let Ok(stored) = Params::try_from(parsed) else {
            return true;
        };
        stored.m_cost() < self.options.memory_kib
            || stored.t_cost() < self.options.iterations
            || stored.p_cost() < self.options.parallelism
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_is_enforced() {
        let weak = HashOptions {
            memory_kib: 4096,
            iterations: 2,
            parallelism: 1,
        };
        assert_eq!(weak.validate().unwrap_err().field(), "hash.memory_kib");
        let weak = HashOptions {
            memory_kib: 19456,
            iterations: 1,
            parallelism: 1,
        };
        assert_eq!(weak.validate().unwrap_err().field(), "hash.iterations");
        assert!(HashOptions::default().validate().is_ok());
        let owasp3 = HashOptions {
            memory_kib: 12288,
            iterations: 3,
            parallelism: 1,
        };
        assert!(owasp3.validate().is_ok());
    }

    #[test]
    fn hash_and_verify() {
        let h = PasswordHashing::new(HashOptions::default()).unwrap();
        let phc = h.hash("hunter2").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(h.verify(&phc, "hunter2").matches);
        assert!(!h.verify(&phc, "hunter3").matches);
        assert!(!h.verify(&phc, "hunter2").needs_rehash);
        assert!(!h.verify("plaintext", "plaintext").matches);
        assert!(!h.verify("$argon2id$garbage", "x").matches);
    }

    #[test]
    fn weaker_stored_hash_needs_rehash() {
        let old = PasswordHashing::new(HashOptions {
            memory_kib: 7168,
            iterations: 5,
            parallelism: 1,
        })
        .unwrap();
        let phc = old.hash("pw").unwrap();
        let current = PasswordHashing::new(HashOptions::default()).unwrap();
        let v = current.verify(&phc, "pw");
        assert!(v.matches && v.needs_rehash);
        assert!(!current.verify(&phc, "wrong").needs_rehash);
    }
}
