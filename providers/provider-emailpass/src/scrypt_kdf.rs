//! Medusa's stored passwords: the `scrypt-kdf` format, base64 of 96 bytes.
//!
//! | bytes | what |
//! |---|---|
//! | 0..6 | `scrypt` |
//! | 6 | version, 0 |
//! | 7 | logN |
//! | 8..12, 12..16 | r, p (big-endian) |
//! | 16..48 | salt |
//! | 48..64 | the first 16 bytes of SHA-256 of bytes 0..48 (a checksum) |
//! | 64..96 | HMAC-SHA-256 of bytes 0..64, keyed with bytes 32..64 of the 64-byte scrypt output |

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// What every stored value starts with: base64 of `scrypt`.
pub(crate) const PREFIX: &str = "c2NyeXB0";

/// The largest work area accepted (128 × r × 2^logN bytes), so a planted
/// value cannot exhaust memory: 256 MiB, eight times Medusa's default.
const MAX_MEMORY: u64 = 256 * 1024 * 1024;

/// The cost of a stored value: `(logN, r, p)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cost {
    pub(crate) log_n: u8,
    pub(crate) r: u32,
    pub(crate) p: u32,
}

impl Cost {
    /// Bytes of the work area scrypt allocates for this cost.
    pub(crate) fn memory_bytes(self) -> u64 {
        128 * u64::from(self.r) * (1u64 << self.log_n)
    }
}

/// A parsed stored value.
struct Stored {
    raw: [u8; 96],
    cost: Cost,
}

fn parse(stored: &str) -> Result<Stored, &'static str> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(stored.trim())
        .map_err(|_| "not base64")?;
    let raw: [u8; 96] = bytes.try_into().map_err(|_| "not 96 bytes")?;
    if &raw[0..6] != b"scrypt" || raw[6] != 0 {
        return Err("not a version 0 scrypt-kdf value");
    }
    let be = |i: usize| u32::from_be_bytes([raw[i], raw[i + 1], raw[i + 2], raw[i + 3]]);
    let cost = Cost {
        log_n: raw[7],
        r: be(8),
        p: be(12),
    };
    if !(1..=24).contains(&cost.log_n) || cost.r == 0 || cost.p == 0 || cost.p > 16 {
        return Err("scrypt parameters out of range");
    }
    if cost.memory_bytes() > MAX_MEMORY {
        return Err("scrypt memory cost beyond the accepted maximum");
    }
    if Sha256::digest(&raw[0..48])[..16] != raw[48..64] {
        return Err("checksum mismatch");
    }
    Ok(Stored { raw, cost })
}

/// The cost of `stored`, if it is a well-formed scrypt-kdf value.
#[cfg(test)]
pub(crate) fn cost(stored: &str) -> Option<Cost> {
    parse(stored).ok().map(|s| s.cost)
}

/// Whether `password` matches `stored`; the final comparison is
/// constant-time. `Err` for a malformed value.
pub(crate) fn verify(stored: &str, password: &str) -> Result<bool, &'static str> {
    let s = parse(stored)?;
    let params = scrypt::Params::new(s.cost.log_n, s.cost.r, s.cost.p, 64)
        .map_err(|_| "invalid scrypt parameters")?;
    let mut derived = [0u8; 64];
    scrypt::scrypt(password.as_bytes(), &s.raw[16..48], &params, &mut derived)
        .map_err(|_| "scrypt failed")?;
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(&derived[32..64]).map_err(|_| "HMAC key")?;
    mac.update(&s.raw[0..64]);
    Ok(mac.verify_slice(&s.raw[64..96]).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made by the `scrypt-kdf` npm package (2.0.1), the one Medusa uses:
    // `(await kdf(password, params)).toString("base64")`.
    const VECTORS: [(&str, Cost, &str); 3] = [
        (
            "correct horse",
            Cost {
                log_n: 10,
                r: 8,
                p: 1,
            },
            "c2NyeXB0AAoAAAAIAAAAAUu5WVMczkh8zbAs3X8brvLN57a7f/3P8KTtfR0oBQ6z0g13UJphFiAUJuv5oIZ4X92LS4CVjVJ65bB/r9Yb1drO5FNtvXR8u27+1mBoCRsr",
        ),
        (
            "supersecret",
            Cost {
                log_n: 15,
                r: 8,
                p: 1,
            },
            "c2NyeXB0AA8AAAAIAAAAAVJ1TAwQaL+Co7u6yFc16rIpo83vr7J6HIF/L87iFBxJHOGx7NzHnOsQu4QbMXB/aZJHRxQwbgK5Qu+F0Mm/ZImr5YXSaAuojo5aNHKoZdpH",
        ),
        (
            "pässwörd ✓",
            Cost {
                log_n: 11,
                r: 4,
                p: 2,
            },
            "c2NyeXB0AAsAAAAEAAAAAn+UIBovzT9WqLpRtTz0zSyWVZu2QZ/fm47Fdj44NM3AMdiRXrZcW8mv+8XOoUsgNyahgsxZqkcAY83zOkWveiyEsbaK3yjB/HLGAl+fxxMM",
        ),
    ];

    #[test]
    fn verifies_hashes_made_by_scrypt_kdf() {
        for (password, cost, hash) in VECTORS {
            assert!(hash.starts_with(PREFIX));
            assert_eq!(super::cost(hash), Some(cost));
            assert_eq!(verify(hash, password), Ok(true), "{password}");
            assert_eq!(verify(hash, "wrong"), Ok(false), "{password}");
        }
        // Medusa's default cost: a 32 MiB work area.
        assert_eq!(VECTORS[1].1.memory_bytes(), 32 * 1024 * 1024);
    }

    #[test]
    fn malformed_values_are_refused() {
        let (_, _, good) = VECTORS[0];
        let mut raw = base64::engine::general_purpose::STANDARD
            .decode(good)
            .unwrap();
        let encode = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        assert!(verify("not base64!", "x").is_err());
        assert!(verify(&encode(&raw[..95]), "x").is_err(), "short");
        raw[20] ^= 1;
        assert_eq!(verify(&encode(&raw), "x"), Err("checksum mismatch"));
        raw[20] ^= 1;
        raw[7] = 30;
        assert!(verify(&encode(&raw), "x").is_err(), "logN 30");
        raw[7] = 10;
        raw[70] ^= 1;
        assert_eq!(
            verify(&encode(&raw), "correct horse"),
            Ok(false),
            "a bad MAC"
        );
    }
}
