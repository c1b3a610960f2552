//! Password hashing: argon2id in PHC strings, with the stored format detected
//! per value, so Medusa's scrypt-kdf values verify too (and are upgraded).

use std::fmt;

use std::cell::RefCell;

use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use password_hash::rand_core::OsRng;
use password_hash::{Output, ParamsString, SaltString};
use serde::Deserialize;

use auth_module::OptionsError;

/// argon2id cost parameters. The defaults are OWASP's first recommendation:
/// m = 19456 KiB, t = 2, p = 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct HashOptions {
    /// Memory cost in KiB.
    #[serde(default = "int::<19456>")]
    pub memory_kib: u32,
    /// Number of passes.
    #[serde(default = "int::<2>")]
    pub iterations: u32,
    /// Degree of parallelism (lanes).
    #[serde(default = "int::<1>")]
    pub parallelism: u32,
}

/// `N`: `#[serde(default = "int::<N>")]`.
const fn int<const N: u32>() -> u32 {
    N
}

impl Default for HashOptions {
    fn default() -> Self {
        auth_module::section_defaults()
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
    /// Medusa's `scrypt-kdf` values (imported users): verified, then re-hashed.
    Scrypt,
    Unknown,
}

fn detect(stored: &str) -> StoredFormat {
    if stored.starts_with("$argon2") {
        StoredFormat::Argon2
    } else if stored.starts_with(crate::scrypt_kdf::PREFIX) {
        StoredFormat::Scrypt
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
        let err = |e: password_hash::Error| HashError(e.to_string());
        let salt = SaltString::generate(&mut OsRng);
        let mut salt_buf = [0u8; 64];
        let salt_bytes = salt.as_salt().decode_b64(&mut salt_buf).map_err(err)?;
        let mut out = [0u8; 32];
        raw_hash(&self.argon2, password.as_bytes(), salt_bytes, &mut out)?;
        let phc = PasswordHash {
            algorithm: argon2::ARGON2ID_IDENT,
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(self.argon2.params()).map_err(err)?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&out).map_err(err)?),
        };
        Ok(phc.to_string())
    }

    /// Checks `password` against `stored`, with the cost of `stored`'s own
    /// parameters. An unrecognised or malformed value never matches.
    pub fn verify(&self, stored: &str, password: &str) -> Verification {
        const NO: Verification = Verification {
            matches: false,
            needs_rehash: false,
        };
        match detect(stored) {
            StoredFormat::Argon2 => {
                let Ok(parsed) = PasswordHash::new(stored) else {
                    tracing::warn!("stored password hash is not a valid PHC string");
                    return NO;
                };
                match verify_argon2(&parsed, password) {
                    Ok(matches) => Verification {
                        matches,
                        needs_rehash: matches && self.is_weaker(&parsed),
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "stored argon2 hash cannot be verified");
                        NO
                    }
                }
            }
            StoredFormat::Scrypt => match crate::scrypt_kdf::verify(stored, password) {
                // Always weaker than the configured argon2id: upgraded at once.
                Ok(matches) => Verification {
                    matches,
                    needs_rehash: matches,
                },
                Err(e) => {
                    tracing::warn!(error = e, "stored scrypt hash cannot be verified");
                    NO
                }
            },
            StoredFormat::Unknown => {
                tracing::warn!("stored password hash has an unsupported format");
                NO
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

thread_local! {
    /// Each hashing thread reuses one memory area instead of allocating the
    /// memory cost (19 MiB by default) per hash: glibc keeps freed buffers in
    /// per-thread arenas, so fresh allocations made resident memory grow with
    /// every arena a hashing thread ever touched.
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Blocks (1 KiB each) reserved at least for a memory area: just over 32 MiB.
const MAPPED_AREA_BLOCKS: usize = 32 * 1024 + 4;

/// Bytes of this thread's memory area in use (not the reserve past it).
pub(crate) fn held_here() -> usize {
    BLOCKS.with(|cell| cell.borrow().len() * std::mem::size_of::<Block>())
}

/// Frees this thread's memory area (after an idle period). An area of the
/// default cost is a single mmapped allocation, so freeing it hands the
/// memory back to the operating system, and the next hash maps it again.
pub(crate) fn release_memory() {
    BLOCKS.with(|cell| drop(std::mem::take(&mut *cell.borrow_mut())));
}

/// Raw argon2 of `password` with `salt` into `out`, on this thread's memory area.
fn raw_hash(
    argon2: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), HashError> {
    let blocks = argon2.params().block_count();
    BLOCKS.with(|cell| {
        let mut memory = cell.borrow_mut();
        if memory.len() < blocks {
            // Reserve past glibc's largest dynamic mmap threshold (32 MiB on
            // 64-bit), so the area is always its own mapping and freeing it
            // (`release_memory`) hands it back to the OS; below that, glibc
            // serves it from the thread's arena after the first free and
            // keeps it. Pages past `blocks` are never touched, so they cost
            // address space, not memory.
            let mut area = Vec::with_capacity(blocks.max(MAPPED_AREA_BLOCKS));
            area.resize(blocks, Block::new());
            *memory = area;
        }
        argon2
            .hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
            .map_err(|e| HashError(e.to_string()))
    })
}

/// Recomputes `parsed` (any argon2 variant and cost) for `password`; the
/// comparison is constant-time.
fn verify_argon2(parsed: &PasswordHash<'_>, password: &str) -> Result<bool, HashError> {
    let err = |e: password_hash::Error| HashError(e.to_string());
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(err)?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).map_err(|e| HashError(e.to_string()))?,
        None => Version::V0x13,
    };
    let params = Params::try_from(parsed).map_err(err)?;
    if params.m_cost() > MAX_MEMORY_KIB {
        return Err(HashError(
            "stored memory cost is beyond the accepted maximum".into(),
        ));
    }
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(HashError("stored hash has no salt or no output".into()));
    };
    let mut salt_buf = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_buf).map_err(err)?;
    let mut out = vec![0u8; expected.len()];
    raw_hash(
        &Argon2::new(algorithm, version, params),
        password.as_bytes(),
        salt,
        &mut out,
    )?;
    Ok(Output::new(&out).map_err(err)? == expected)
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
    fn reads_hashes_made_by_the_argon2_crate_itself() {
        use argon2::{PasswordHasher, PasswordVerifier};
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default()
            .hash_password(b"interop", &salt)
            .unwrap()
            .to_string();
        let h = PasswordHashing::new(HashOptions::default()).unwrap();
        assert!(h.verify(&theirs, "interop").matches);
        assert!(!h.verify(&theirs, "other").matches);
        let ours = h.hash("interop").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"interop", &parsed)
                .is_ok()
        );
        // argon2i with another cost also verifies, and is marked for an upgrade.
        let legacy = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x13,
            Params::new(8192, 5, 1, None).unwrap(),
        )
        .hash_password(b"interop", &salt)
        .unwrap()
        .to_string();
        let v = h.verify(&legacy, "interop");
        assert!(v.matches && v.needs_rehash);
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
