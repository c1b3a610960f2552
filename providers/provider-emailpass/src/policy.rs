//! The password policy of new passwords (registration and update): length,
//! a list of common passwords checked offline, and optionally zxcvbn's
//! strength score. Checked before any hash, so a refusal costs none.

use serde::Deserialize;

use auth_module::OptionsError;

/// The message for a password shorter than `min_length`.
pub(crate) const PASSWORD_TOO_SHORT: &str = "Password is too short. Use at least {min} characters.";
/// The message for a password longer than `max_length` bytes.
pub(crate) const PASSWORD_TOO_LONG: &str = "Password is too long. Use at most {max} bytes.";
/// The message for a password on the common-password list.
pub const PASSWORD_TOO_COMMON: &str = "Password is too common. Choose a longer phrase.";
/// The message for a password under `min_strength`.
pub const PASSWORD_TOO_WEAK: &str =
    "Password is too easy to guess. Choose a longer phrase, or add uncommon words.";

/// `[providers.options] password_policy` of emailpass: what a new password
/// must be. Existing passwords keep working; only registration and update
/// check it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PasswordPolicy {
    /// The fewest characters (Unicode scalar values). Default 8.
    #[serde(default = "default_min_length")]
    pub min_length: usize,
    /// The most bytes (UTF-8). Default 256.
    #[serde(default = "default_max_length")]
    pub max_length: usize,
    /// The least zxcvbn score (0 to 4), with the user's e-mail as a hint.
    /// Default 0: not checked. 2 is a good choice.
    #[serde(default)]
    pub min_strength: u8,
    /// Refuse passwords on the common-password list shipped with the crate.
    /// Default true.
    #[serde(default = "default_true")]
    pub reject_common: bool,
}

fn default_min_length() -> usize {
    8
}

fn default_max_length() -> usize {
    256
}

fn default_true() -> bool {
    true
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            min_length: default_min_length(),
            max_length: default_max_length(),
            min_strength: 0,
            reject_common: true,
        }
    }
}

impl PasswordPolicy {
    /// No rule at all but a non-empty password (Medusa's behaviour).
    pub fn off() -> Self {
        PasswordPolicy {
            min_length: 1,
            max_length: usize::MAX,
            min_strength: 0,
            reject_common: false,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), OptionsError> {
        if self.min_length == 0 {
            return Err(OptionsError::new(
                "password_policy.min_length",
                "must be at least 1",
            ));
        }
        if self.max_length < self.min_length {
            return Err(OptionsError::new(
                "password_policy.max_length",
                "must be at least min_length",
            ));
        }
        if self.min_strength > 4 {
            return Err(OptionsError::new(
                "password_policy.min_strength",
                "must be between 0 and 4 (zxcvbn's score)",
            ));
        }
        Ok(())
    }

    /// Why `password` may not be chosen (a client-facing message), if it may
    /// not. `email` is a hint for the strength score (a password made of the
    /// e-mail is weak).
    pub fn check(&self, password: &str, email: Option<&str>) -> Option<String> {
        if password.chars().count() < self.min_length {
            return Some(PASSWORD_TOO_SHORT.replace("{min}", &self.min_length.to_string()));
        }
        if password.len() > self.max_length {
            return Some(PASSWORD_TOO_LONG.replace("{max}", &self.max_length.to_string()));
        }
        if self.reject_common && is_common(password) {
            return Some(PASSWORD_TOO_COMMON.to_owned());
        }
        if self.min_strength > 0 {
            let mut hints: Vec<&str> = Vec::new();
            if let Some(email) = email {
                hints.push(email);
                if let Some((local, _)) = email.split_once('@') {
                    hints.push(local);
                }
            }
            // zxcvbn's cost grows with the length: the first 100 characters
            // decide (a longer password is not weaker for what follows).
            let head: String = password.chars().take(100).collect();
            let score = zxcvbn::zxcvbn(&head, &hints).score() as u8;
            if score < self.min_strength {
                return Some(PASSWORD_TOO_WEAK.to_owned());
            }
        }
        None
    }
}

/// The common-password list: the sorted, distinct 32-bit FNV-1a hashes of
/// the lower-cased passwords, little-endian (see the README for its source
/// and size). A password not on the list matches one by chance with
/// probability (entries / 2^32), about 0.003% for 130,000 entries.
static COMMON: &[u8] = include_bytes!("../data/common-passwords.bin");

/// How many passwords the list holds.
pub fn common_password_count() -> usize {
    COMMON.len() / 4
}

/// 32-bit FNV-1a: the list's hash.
pub(crate) fn fnv1a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Whether `password` (lower-cased) is on the common-password list: a binary
/// search over the hashes, touching a few pages of the embedded list.
pub fn is_common(password: &str) -> bool {
    let wanted = fnv1a(password.to_lowercase().as_bytes());
    let at = |i: usize| {
        let b = &COMMON[i * 4..i * 4 + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    };
    let (mut lo, mut hi) = (0usize, common_password_count());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match at(mid).cmp(&wanted) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => return true,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_sorted_distinct_and_large() {
        let n = common_password_count();
        assert!(n >= 100_000, "{n} entries");
        assert_eq!(COMMON.len() % 4, 0);
        let mut last = None;
        for i in 0..n {
            let b = &COMMON[i * 4..i * 4 + 4];
            let h = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            assert!(last.is_none_or(|l| l < h), "sorted and distinct at {i}");
            last = Some(h);
        }
    }

    #[test]
    fn common_passwords_are_found_and_others_are_not() {
        for p in [
            "password",
            "123456",
            "qwerty",
            "iloveyou",
            "Password",
            "PASSWORD1",
            "letmein",
        ] {
            assert!(is_common(p), "{p}");
        }
        for p in [
            "correct horse battery staple",
            "a long enough password",
            "Tr0ub4dor&3-but-longer-still",
            "zq8#VmL2!xR",
        ] {
            assert!(!is_common(p), "{p}");
        }
    }

    #[test]
    fn rules_answer_what_to_do() {
        let policy = PasswordPolicy::default();
        assert_eq!(
            policy.check("short", None).as_deref(),
            Some("Password is too short. Use at least 8 characters.")
        );
        assert_eq!(
            policy.check("password1", None).as_deref(),
            Some(PASSWORD_TOO_COMMON)
        );
        assert_eq!(
            policy.check(&"x".repeat(257), None).as_deref(),
            Some("Password is too long. Use at most 256 bytes.")
        );
        assert_eq!(policy.check("a long enough password", None), None);
        // Characters, not bytes: eight accented letters are enough.
        assert_eq!(policy.check("éééééééé", None), None);
        let strong = PasswordPolicy {
            min_strength: 3,
            ..PasswordPolicy::default()
        };
        assert_eq!(
            strong
                .check("ada.lovelace1815", Some("ada.lovelace1815@shop.example"))
                .as_deref(),
            Some(PASSWORD_TOO_WEAK)
        );
        assert_eq!(
            strong.check("correct horse battery staple", Some("ada@shop.example")),
            None
        );
        assert_eq!(PasswordPolicy::off().check("x", None), None);
    }

    #[test]
    fn bad_policies_name_their_field() {
        for (policy, field) in [
            (
                PasswordPolicy {
                    min_length: 0,
                    ..PasswordPolicy::default()
                },
                "min_length",
            ),
            (
                PasswordPolicy {
                    max_length: 4,
                    ..PasswordPolicy::default()
                },
                "max_length",
            ),
            (
                PasswordPolicy {
                    min_strength: 5,
                    ..PasswordPolicy::default()
                },
                "min_strength",
            ),
        ] {
            let e = policy.validate().expect_err("refused").to_string();
            assert!(e.contains(field), "{e}");
        }
    }
}
