//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP), and the
//! RFC 4648 base32 their secrets are shown in (`data-encoding`).
//!
//! The TOTP itself is ours, not `totp-rs`: its 6.x brings a second RustCrypto
//! stack (hmac 0.13, sha1/sha2 0.11) beside the one this workspace builds, and
//! its `check` stops at the first matching step where ours computes them all.

use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;

/// The HMAC a TOTP factor uses (authenticator apps expect SHA-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TotpAlgorithm {
    /// HMAC-SHA-1 (the default, and what `otpauth` URLs assume).
    #[default]
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

impl TotpAlgorithm {
    /// The `otpauth` URL's `algorithm` value.
    pub const fn as_str(self) -> &'static str {
        match self {
            TotpAlgorithm::Sha1 => "SHA1",
            TotpAlgorithm::Sha256 => "SHA256",
            TotpAlgorithm::Sha512 => "SHA512",
        }
    }
}

/// A TOTP generator and checker for one secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Totp {
    secret: Vec<u8>,
    digits: u32,
    period: u64,
    algorithm: TotpAlgorithm,
}

impl std::fmt::Debug for Totp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Totp")
            .field("digits", &self.digits)
            .field("period", &self.period)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

fn mac<M: Mac + hmac::digest::KeyInit>(secret: &[u8], msg: &[u8]) -> Vec<u8> {
    // Invariant: HMAC accepts keys of any length.
    let mut m = <M as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

impl Totp {
    /// A generator for `secret` with `digits` (6 to 8) digits per code and
    /// steps of `period` seconds (at least 1).
    pub fn new(secret: Vec<u8>, digits: u32, period: u64, algorithm: TotpAlgorithm) -> Self {
        Totp {
            secret,
            digits: digits.clamp(6, 8),
            period: period.max(1),
            algorithm,
        }
    }

    /// The time step that `unix_secs` falls in.
    pub fn step(&self, unix_secs: u64) -> u64 {
        unix_secs / self.period
    }

    /// The code of time step `step` (RFC 4226 dynamic truncation).
    pub fn code_for_step(&self, step: u64) -> String {
        let msg = step.to_be_bytes();
        let h = match self.algorithm {
            TotpAlgorithm::Sha1 => mac::<Hmac<sha1::Sha1>>(&self.secret, &msg),
            TotpAlgorithm::Sha256 => mac::<Hmac<sha2::Sha256>>(&self.secret, &msg),
            TotpAlgorithm::Sha512 => mac::<Hmac<sha2::Sha512>>(&self.secret, &msg),
        };
        let offset = usize::from(h[h.len() - 1] & 0x0f);
        let binary = (u32::from(h[offset]) & 0x7f) << 24
            | u32::from(h[offset + 1]) << 16
            | u32::from(h[offset + 2]) << 8
            | u32::from(h[offset + 3]);
        let modulo = 10u32.pow(self.digits);
        format!("{:0width$}", binary % modulo, width = self.digits as usize)
    }

    /// The code at `unix_secs`.
    pub fn code_at(&self, unix_secs: u64) -> String {
        self.code_for_step(self.step(unix_secs))
    }

    /// The time step `code` is valid for at `unix_secs`, within `window`
    /// steps either side, compared in constant time; `None` if it is not a
    /// code of this secret then. Callers refuse a step already used (a TOTP
    /// step is accepted once per factor).
    pub fn verify(&self, code: &str, unix_secs: u64, window: u64) -> Option<u64> {
        let code = code.trim();
        if code.len() != self.digits as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let now = self.step(unix_secs);
        let mut found = None;
        // Every candidate is computed, so the time taken does not say which matched.
        for step in now.saturating_sub(window)..=now.saturating_add(window) {
            if bool::from(self.code_for_step(step).as_bytes().ct_eq(code.as_bytes())) {
                found = Some(step);
            }
        }
        found
    }

    /// An `otpauth://totp/` URL for authenticator apps.
    pub fn otpauth_url(&self, issuer: &str, account: &str) -> String {
        let enc = |s: &str| {
            s.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect::<String>()
        };
        format!(
            "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm={}&digits={}&period={}",
            enc(issuer),
            enc(account),
            base32_encode(&self.secret),
            enc(issuer),
            self.algorithm.as_str(),
            self.digits,
            self.period
        )
    }
}

/// RFC 4648 base32 as authenticator apps write it: upper case out, either
/// case in, `=` and spaces ignored anywhere, unused trailing bits not checked.
static BASE32: std::sync::LazyLock<data_encoding::Encoding> = std::sync::LazyLock::new(|| {
    let mut spec = data_encoding::Specification::new();
    spec.symbols.push_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
    spec.translate.from.push_str("abcdefghijklmnopqrstuvwxyz");
    spec.translate.to.push_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ");
    spec.ignore.push_str("= ");
    spec.check_trailing_bits = false;
    // Invariant: a valid specification (tested below).
    spec.encoding().expect("a valid base32 specification")
});

/// RFC 4648 base32, upper case, without padding.
pub fn base32_encode(bytes: &[u8]) -> String {
    BASE32.encode(bytes)
}

/// RFC 4648 base32 (case-insensitive, padding and spaces ignored); `None`
/// if it holds another character or is not a length an encoder writes.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    BASE32.decode(text.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B: the seeds and the 8-digit codes.
    #[test]
    fn rfc_6238_vectors() {
        let sha1 = b"12345678901234567890".to_vec();
        let sha256 = b"12345678901234567890123456789012".to_vec();
        let sha512 = b"1234567890123456789012345678901234567890123456789012345678901234".to_vec();
        let table: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (t, c1, c256, c512) in table {
            assert_eq!(
                Totp::new(sha1.clone(), 8, 30, TotpAlgorithm::Sha1).code_at(t),
                c1,
                "SHA1 {t}"
            );
            assert_eq!(
                Totp::new(sha256.clone(), 8, 30, TotpAlgorithm::Sha256).code_at(t),
                c256,
                "SHA256 {t}"
            );
            assert_eq!(
                Totp::new(sha512.clone(), 8, 30, TotpAlgorithm::Sha512).code_at(t),
                c512,
                "SHA512 {t}"
            );
        }
    }

    #[test]
    fn verify_answers_the_step_within_the_window() {
        let t = Totp::new(b"12345678901234567890".to_vec(), 6, 30, TotpAlgorithm::Sha1);
        let now = 1_700_000_000;
        let code = t.code_at(now);
        assert_eq!(t.verify(&code, now, 1), Some(now / 30));
        assert_eq!(t.verify(&format!(" {code} "), now + 30, 1), Some(now / 30));
        assert_eq!(t.verify(&code, now + 60, 1), None);
        assert_eq!(t.verify(&code, now + 60, 2), Some(now / 30));
        assert_eq!(t.verify("12345", now, 1), None);
        assert_eq!(t.verify("12345a", now, 1), None);
        assert_eq!(t.verify("", now, 1), None);
    }

    #[test]
    fn base32_round_trips_and_matches_rfc_4648() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32_encode(plain.as_bytes()), encoded);
            assert_eq!(base32_decode(encoded).unwrap(), plain.as_bytes());
        }
        assert_eq!(base32_decode("mzxw6ytboi======").unwrap(), b"foobar");
        assert!(base32_decode("MZ1").is_none());
        // As apps show and users type them: grouped, either case; unused
        // trailing bits are not checked.
        assert_eq!(base32_decode("mzxw 6ytb oi").unwrap(), b"foobar");
        assert_eq!(base32_decode("MZXW6YTBOJ").unwrap(), b"foobar");
        // No encoder writes 1, 3 or 6 characters past a multiple of 8.
        assert!(base32_decode("MZXW6YTBO").is_none());
    }

    #[test]
    fn otpauth_urls_name_issuer_account_and_secret() {
        let t = Totp::new(b"foobar".to_vec(), 6, 30, TotpAlgorithm::Sha1);
        assert_eq!(
            t.otpauth_url("My Shop", "a@b.c"),
            "otpauth://totp/My%20Shop:a%40b.c?secret=MZXW6YTBOI&issuer=My%20Shop&algorithm=SHA1&digits=6&period=30"
        );
    }
}
