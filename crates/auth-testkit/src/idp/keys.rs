//! The fake's fixed signing keys.
//!
//! **Test-only keys.** Their private halves are published in this crate
//! (`keys/`), so anything they sign proves nothing: never trust them outside
//! tests. They were generated once with OpenSSL 3 (RSA keys in debug builds
//! are too slow to generate per test):
//!
//! ```text
//! openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa-a.pem
//! openssl rsa -in rsa-a.pem -traditional -outform DER -out rsa-a.der      # PKCS#1
//! openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec-a.pem
//! openssl pkcs8 -topk8 -nocrypt -in ec-a.pem -outform DER -out ec-a.der   # PKCS#8
//! ```
//!
//! and the public JWK components below were read off them with
//! `openssl rsa -modulus` / `openssl ec -text` and base64url-encoded
//! without padding.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// RSA key A, PKCS#1 DER: the default signing key.
const RSA_A_DER: &[u8] = include_bytes!("../../keys/rsa-a.der");
/// RSA key B, PKCS#1 DER: the key [`FakeIdp::rotate_key`](super::FakeIdp::rotate_key) moves to.
const RSA_B_DER: &[u8] = include_bytes!("../../keys/rsa-b.der");
/// EC P-256 key A, PKCS#8 DER (with its public key, as ring requires).
const EC_A_DER: &[u8] = include_bytes!("../../keys/ec-a.der");

/// The `kid` of RSA key A.
pub(crate) const KID_RSA_A: &str = "test-rsa-a";
/// The `kid` of RSA key B.
pub(crate) const KID_RSA_B: &str = "test-rsa-b";
/// The `kid` of EC key A.
pub(crate) const KID_EC_A: &str = "test-ec-a";
/// The `kid` an [`UnknownKid`](super::Failure::UnknownKid) token names.
pub(crate) const KID_UNKNOWN: &str = "unknown-kid";

/// RSA key A's modulus `n`, base64url without padding.
pub(crate) const RSA_A_N: &str = "kziP3egM55FqOzSPV4_2LIk6ZcrECgZKdorB1lXdu-_6BPY1gDANgEsZqDcgTOGE4Ox_ZF_rlCHDwL7unLk2xUV0HSTn2f4OLM0_Y2sgvJ3axASK09SJLtq1SjvH-n7Z-wDU-QDxhN6fLGdSNViAYkYR7kSWbqakvi-AWDJMGNmMrQEfhVlfxhCjeBmqJKSXB-IiUJ_JMQbV8AM7mw0ak70xCG8O7Dpq7VgfRj-WQ4UyGYgnkbWdUe-Ql9-M5ifHavjWHG-POel--Dae7Nlkth0WWL-7OUB04f5jTjRuievBQMMfozmRtwKqT6U8gSIf1jTzcL5OyirkYdCzuwMI5w";
/// RSA key A's public exponent `e` (65537).
pub(crate) const RSA_A_E: &str = "AQAB";
/// RSA key B's modulus `n`, base64url without padding.
pub(crate) const RSA_B_N: &str = "t1CNkM53C5Lw406Kw463tl-7fh32oUjLoryyjzzJ1hf6SEPrrG0t9YkCWddk_zfk_rxFVMpMev1R37HT3vUtP3zuhr2GSUSo-h-fQXt-MLIVHH-mDsf9aD4ndlmNdjwBS2ToY3XMarpGjqnZZ-tKlLg6MQrAjZGSt4CBZpILDKnwNgqEa3mc65fTN77gXSD6hLPOnYwDSJgclvAfUwh9090A6VMgQMnEQvztJB52SMLmZW6cE-GvVusUAGM-f-HGneG6QrlJWl8CXalWmF_CEfb2MeZkr00iMXGBH9TMOANi4nK-I_9e7-eqJ5Ucf9XmNf5KwvV2tXWMPzvaL89jgw";
/// RSA key B's public exponent `e` (65537).
pub(crate) const RSA_B_E: &str = "AQAB";
/// EC key A's public point `x`, base64url without padding.
pub(crate) const EC_A_X: &str = "j-0rx7eBQ8VGMJery8-0-o2vSlUOwpXKKmguHm7vhJc";
/// EC key A's public point `y`, base64url without padding.
pub(crate) const EC_A_Y: &str = "QURl43FWLESoaInagLmNsj-R7jgpHBqycszSAgmLH44";

/// One of the fake's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    RsaA,
    RsaB,
    EcA,
}

impl Key {
    /// The `kid` the JWKS publishes this key under.
    pub(crate) fn kid(self) -> &'static str {
        match self {
            Key::RsaA => KID_RSA_A,
            Key::RsaB => KID_RSA_B,
            Key::EcA => KID_EC_A,
        }
    }

    /// The JWS algorithm this key signs with.
    pub(crate) fn alg(self) -> Algorithm {
        match self {
            Key::RsaA | Key::RsaB => Algorithm::RS256,
            Key::EcA => Algorithm::ES256,
        }
    }

    /// The algorithm's JOSE name.
    pub(crate) fn alg_name(self) -> &'static str {
        match self {
            Key::RsaA | Key::RsaB => "RS256",
            Key::EcA => "ES256",
        }
    }

    fn encoding_key(self) -> EncodingKey {
        match self {
            Key::RsaA => EncodingKey::from_rsa_der(RSA_A_DER),
            Key::RsaB => EncodingKey::from_rsa_der(RSA_B_DER),
            Key::EcA => EncodingKey::from_ec_der(EC_A_DER),
        }
    }

    /// The public key as a JWK.
    pub(crate) fn jwk(self) -> Value {
        match self {
            Key::RsaA => rsa_jwk(KID_RSA_A, RSA_A_N, RSA_A_E),
            Key::RsaB => rsa_jwk(KID_RSA_B, RSA_B_N, RSA_B_E),
            Key::EcA => json!({
                "kty": "EC",
                "crv": "P-256",
                "kid": KID_EC_A,
                "use": "sig",
                "alg": "ES256",
                "x": EC_A_X,
                "y": EC_A_Y,
            }),
        }
    }

    /// Signs `claims` with this key, the header naming `kid`.
    pub(crate) fn sign(self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(self.alg());
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding_key())
            // Invariant: the keys are valid fixed DER files (the tests sign with
            // each) and a JSON object always serialises.
            .expect("the fixed test keys sign")
    }
}

fn rsa_jwk(kid: &str, n: &str, e: &str) -> Value {
    json!({ "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": n, "e": e })
}

/// `token` with its signature damaged, so no key verifies it.
pub(crate) fn corrupt_signature(token: &str) -> String {
    let Some((signed, signature)) = token.rsplit_once('.') else {
        return format!("{token}.AAAA");
    };
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap_or_default();
    match bytes.first_mut() {
        Some(b) => *b ^= 0x01,
        None => bytes.push(0),
    }
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation, decode};

    fn decoding_key(key: Key) -> DecodingKey {
        match key {
            Key::RsaA => DecodingKey::from_rsa_components(RSA_A_N, RSA_A_E),
            Key::RsaB => DecodingKey::from_rsa_components(RSA_B_N, RSA_B_E),
            Key::EcA => DecodingKey::from_ec_components(EC_A_X, EC_A_Y),
        }
        .expect("valid components")
    }

    /// The constants are the public halves of the shipped private keys.
    #[test]
    fn components_match_the_private_keys() {
        let claims = json!({ "sub": "x", "exp": 4_000_000_000u64 });
        for key in [Key::RsaA, Key::RsaB, Key::EcA] {
            let token = key.sign(key.kid(), &claims);
            let mut v = Validation::new(key.alg());
            v.set_required_spec_claims(&["exp"]);
            let data = decode::<Value>(&token, &decoding_key(key), &v).expect("verifies");
            assert_eq!(data.header.kid.as_deref(), Some(key.kid()));
            assert!(decode::<Value>(&corrupt_signature(&token), &decoding_key(key), &v).is_err());
        }
        // And the two RSA keys differ.
        let token = Key::RsaB.sign(KID_RSA_A, &claims);
        let v = Validation::new(Algorithm::RS256);
        assert!(decode::<Value>(&token, &decoding_key(Key::RsaA), &v).is_err());
    }
}
