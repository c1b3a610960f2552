//! Encryption of MFA secrets at rest and the keyed hash of recovery codes.
//!
//! A key is any string of at least 32 characters; the AES-256 key is its
//! SHA-256, as Medusa derives it. Every ciphertext names the key that made
//! it (`v2:{key id}:{nonce}:{ciphertext and tag}`, base64url), so previous
//! keys still open what they sealed while a new one is rolled out.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The shortest accepted encryption key.
pub const MIN_KEY_CHARS: usize = 32;

#[derive(Clone)]
struct Key {
    id: String,
    cipher: Aes256Gcm,
    /// The key recovery codes are hashed with (derived, never the AES key).
    hash_key: [u8; 32],
}

/// The MFA keys: the current one seals, every one opens.
#[derive(Clone)]
pub struct MfaKeys {
    current: Key,
    previous: Vec<Key>,
}

impl std::fmt::Debug for MfaKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaKeys")
            .field("current", &self.current.id)
            .field(
                "previous",
                &self.previous.iter().map(|k| &k.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The three fields of `{version}:a:b:c`, if `sealed` has that shape.
fn fields<'a>(sealed: &'a str, version: &str) -> Option<[&'a str; 3]> {
    let mut parts = sealed.split(':');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some(v), Some(a), Some(b), Some(c), None) if v == version => Some([a, b, c]),
        _ => None,
    }
}

fn key(text: &str) -> Result<Key> {
    if text.chars().count() < MIN_KEY_CHARS {
        return Err(Error::invalid_data(format!(
            "an MFA encryption key must be at least {MIN_KEY_CHARS} characters"
        )));
    }
    let aes: [u8; 32] = Sha256::digest(text.as_bytes()).into();
    let id = hex::encode(&Sha256::digest(aes)[..4]);
    let mut hash_key = Sha256::new();
    hash_key.update(b"auth-module mfa recovery codes\0");
    hash_key.update(aes);
    Ok(Key {
        id,
        cipher: Aes256Gcm::new(&aes.into()),
        hash_key: hash_key.finalize().into(),
    })
}

impl MfaKeys {
    /// Keys from the current `encryption_key` and the `previous` ones
    /// (still opened during a rotation).
    pub fn new(current: &str, previous: &[String]) -> Result<Self> {
        Ok(MfaKeys {
            current: key(current)?,
            previous: previous.iter().map(|k| key(k)).collect::<Result<_>>()?,
        })
    }

    /// The current key's id (8 hex characters, not secret).
    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    /// `plaintext` sealed with the current key and a fresh random nonce.
    pub fn seal(&self, plaintext: &[u8]) -> Result<String> {
        let mut nonce = [0u8; 12];
        crate::random::fill(&mut nonce);
        let sealed = self
            .current
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext)
            .map_err(|_| Error::unexpected("MFA secret encryption failed"))?;
        Ok(format!(
            "v2:{}:{}:{}",
            self.current.id,
            URL_SAFE_NO_PAD.encode(nonce),
            URL_SAFE_NO_PAD.encode(sealed)
        ))
    }

    /// The plaintext of a secret Medusa sealed (`v1:{iv}:{tag}:{ciphertext}`,
    /// base64url, a 12-byte IV, key = SHA-256 of its `encryption_key`), with
    /// the current or a previous key: for importing Medusa's factors.
    pub fn open_medusa_v1(&self, sealed: &str) -> Result<Vec<u8>> {
        let refused = || {
            Error::invalid_data("a Medusa MFA secret cannot be decrypted with the configured keys")
        };
        let Some([iv, tag, body]) = fields(sealed, "v1") else {
            return Err(refused());
        };
        let decode = |s: &str| URL_SAFE_NO_PAD.decode(s.trim_end_matches('='));
        let (Ok(iv), Ok(tag), Ok(mut body)) = (decode(iv), decode(tag), decode(body)) else {
            return Err(refused());
        };
        if iv.len() != 12 || tag.len() != 16 {
            return Err(refused());
        }
        body.extend_from_slice(&tag);
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find_map(|k| {
                k.cipher
                    .decrypt(Nonce::from_slice(&iv), body.as_slice())
                    .ok()
            })
            .ok_or_else(refused)
    }

    /// The plaintext of `sealed`, with the key it names; an error if that
    /// key is not configured or the text was altered.
    pub fn open(&self, sealed: &str) -> Result<Vec<u8>> {
        let refused =
            || Error::unexpected("an MFA secret cannot be decrypted with the configured keys");
        let Some([id, nonce, body]) = fields(sealed, "v2") else {
            return Err(refused());
        };
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
            .ok_or_else(refused)?;
        let nonce = URL_SAFE_NO_PAD.decode(nonce).map_err(|_| refused())?;
        let body = URL_SAFE_NO_PAD.decode(body).map_err(|_| refused())?;
        if nonce.len() != 12 {
            return Err(refused());
        }
        key.cipher
            .decrypt(Nonce::from_slice(&nonce), body.as_slice())
            .map_err(|_| refused())
    }

    /// The keyed hash a recovery code is kept as (HMAC-SHA-256 of its
    /// normalised form, hex), under the current key and every previous one:
    /// a stored hash matches one of them.
    pub fn recovery_code_hashes(&self, code: &str) -> Vec<String> {
        let normal = normalize_recovery_code(code);
        std::iter::once(&self.current)
            .chain(&self.previous)
            .map(|k| {
                // Invariant: HMAC accepts keys of any length.
                let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&k.hash_key)
                    .expect("HMAC takes any key length");
                m.update(normal.as_bytes());
                hex::encode(m.finalize().into_bytes())
            })
            .collect()
    }
}

/// A recovery code as compared: trimmed and lower-cased.
pub fn normalize_recovery_code(code: &str) -> String {
    code.trim().to_ascii_lowercase()
}

/// A new recovery code: 16 random bytes as lowercase hex in eight
/// `-`-joined groups of four (`1a2b-3c4d-…`).
pub fn generate_recovery_code() -> String {
    let hex = crate::random::token_hex(16);
    // ASCII hex: every 4-byte chunk is a whole string slice.
    (0..hex.len())
        .step_by(4)
        .map(|i| &hex[i..i + 4])
        .collect::<Vec<_>>()
        .join("-")
}

/// A new TOTP secret: 20 random bytes.
pub fn generate_totp_secret() -> Vec<u8> {
    let mut bytes = vec![0u8; 20];
    crate::random::fill(&mut bytes);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "an encryption key of at least 32 chars";
    const K2: &str = "the next encryption key, also 32+ chars";

    #[test]
    fn sealed_secrets_open_with_their_key_only() {
        let keys = MfaKeys::new(K1, &[]).unwrap();
        let sealed = keys.seal(b"JBSWY3DPEHPK3PXP").unwrap();
        assert!(sealed.starts_with(&format!("v2:{}:", keys.current_id())));
        assert!(!sealed.contains("JBSWY3DPEHPK3PXP"));
        assert_eq!(keys.open(&sealed).unwrap(), b"JBSWY3DPEHPK3PXP");
        // Two seals differ (fresh nonce).
        assert_ne!(keys.seal(b"x").unwrap(), keys.seal(b"x").unwrap());
        // Altered, truncated or foreign texts are refused.
        let mut altered = sealed.clone();
        altered.pop();
        altered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(keys.open(&altered).is_err());
        assert!(keys.open("v1:a:b:c").is_err());
        assert!(keys.open("garbage").is_err());
        let other = MfaKeys::new(K2, &[]).unwrap();
        assert!(other.open(&sealed).is_err());
    }

    #[test]
    fn rotation_keeps_old_secrets_readable() {
        let old = MfaKeys::new(K1, &[]).unwrap();
        let sealed_before = old.seal(b"secret").unwrap();
        let rotated = MfaKeys::new(K2, &[K1.to_owned()]).unwrap();
        assert_eq!(rotated.open(&sealed_before).unwrap(), b"secret");
        let sealed_after = rotated.seal(b"secret").unwrap();
        assert!(sealed_after.starts_with(&format!("v2:{}:", rotated.current_id())));
        assert!(old.open(&sealed_after).is_err());
        // Recovery-code hashes made under the old key still match.
        let stored = old.recovery_code_hashes("abcd-ef01")[0].clone();
        assert!(
            rotated
                .recovery_code_hashes(" ABCD-EF01 ")
                .contains(&stored)
        );
    }

    #[test]
    fn keys_must_be_long_enough() {
        assert!(MfaKeys::new("short", &[]).is_err());
        assert!(MfaKeys::new(K1, &["short".to_owned()]).is_err());
    }

    #[test]
    fn recovery_codes_have_the_documented_shape() {
        let code = generate_recovery_code();
        let groups: Vec<&str> = code.split('-').collect();
        assert_eq!(groups.len(), 8);
        assert!(groups.iter().all(|g| {
            g.len() == 4
                && g.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }));
        assert_ne!(generate_recovery_code(), code);
        assert_eq!(generate_totp_secret().len(), 20);
    }

    #[test]
    fn opens_what_medusa_sealed() {
        // Made by @medusajs/auth 2.21.2's encryptSecret with this key.
        let keys = MfaKeys::new("an MFA encryption key of at least 32 characters", &[]).unwrap();
        let sealed = "v1:f0RnJz9pnDfZAFHJ:sQo_ElIJGdkBSfSeotonTQ:uJKkm9BZbcClr3ZW03OUJuNc3lrLKI2YWS5cbdw6acY";
        assert_eq!(
            keys.open_medusa_v1(sealed).unwrap(),
            b"JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
        );
        let other = MfaKeys::new(&"x".repeat(32), &[]).unwrap();
        assert!(other.open_medusa_v1(sealed).is_err());
        assert!(keys.open_medusa_v1("v1:a:b:c").is_err());
        assert!(
            keys.open_medusa_v1(&sealed.replacen("uJ", "uK", 1))
                .is_err()
        );
    }
}
