//! Asymmetric token keys: a [`KeyPairSigner`] signs with a PKCS#8 private key
//! (ES256 on P-256, EdDSA on Ed25519, RS256 on RSA), a [`PublicKeyVerifier`]
//! checks tokens signed by an earlier key (an SPKI public key), and both
//! publish themselves as JWKs whose `kid` is the RFC 7638 thumbprint. A
//! [`VerifyUntil`] keeps any key verifying only until a deadline.

use std::fmt;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{self, KeyPair as _};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::token::Signer;

/// The asymmetric algorithms tokens may be signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwtAlgorithm {
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// Ed25519.
    EdDsa,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (2048 to 8192 bits).
    Rs256,
}

impl JwtAlgorithm {
    /// The JWS `alg` name.
    pub const fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::Es256 => "ES256",
            JwtAlgorithm::EdDsa => "EdDSA",
            JwtAlgorithm::Rs256 => "RS256",
        }
    }

    /// The algorithm named `name` (`ES256`, `EdDSA`, `RS256`).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "ES256" => Some(JwtAlgorithm::Es256),
            "EdDSA" => Some(JwtAlgorithm::EdDsa),
            "RS256" => Some(JwtAlgorithm::Rs256),
            _ => None,
        }
    }
}

/// A public key as a JWK and as what verifies with it.
#[derive(Clone)]
enum Public {
    Ec(Vec<u8>),
    Ed(Vec<u8>),
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

impl Public {
    fn algorithm(&self) -> JwtAlgorithm {
        match self {
            Public::Ec(_) => JwtAlgorithm::Es256,
            Public::Ed(_) => JwtAlgorithm::EdDsa,
            Public::Rsa { .. } => JwtAlgorithm::Rs256,
        }
    }

    /// The members RFC 7638 hashes, in its order.
    fn thumbprint_members(&self) -> String {
        let b = |v: &[u8]| URL_SAFE_NO_PAD.encode(v);
        match self {
            Public::Ec(point) => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                b(&point[1..33]),
                b(&point[33..65])
            ),
            Public::Ed(x) => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b(x)),
            Public::Rsa { n, e } => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b(e), b(n)),
        }
    }

    fn kid(&self) -> String {
        use sha2::Digest as _;
        URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(self.thumbprint_members().as_bytes()))
    }

    fn jwk(&self, kid: &str) -> Value {
        let mut jwk: Value = serde_json::from_str(&self.thumbprint_members()).unwrap_or_default();
        jwk["kid"] = json!(kid);
        jwk["alg"] = json!(self.algorithm().as_str());
        jwk["use"] = json!("sig");
        jwk
    }

    fn verify(&self, message: &[u8], signature_b64: &str) -> bool {
        let Ok(sig) = URL_SAFE_NO_PAD.decode(signature_b64) else {
            return false;
        };
        match self {
            Public::Ec(point) => {
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, &sig)
                    .is_ok()
            }
            Public::Ed(x) => signature::UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(message, &sig)
                .is_ok(),
            Public::Rsa { n, e } => signature::RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, &sig)
                .is_ok(),
        }
    }
}

enum Private {
    Ec(signature::EcdsaKeyPair),
    Ed(signature::Ed25519KeyPair),
    Rsa(signature::RsaKeyPair),
}

/// Signs tokens with a private key; verifies them with its public half
/// (a [`PublicKeyVerifier`], which answers for everything but signing).
pub struct KeyPairSigner {
    private: Private,
    public: PublicKeyVerifier,
    rng: SystemRandom,
}

impl fmt::Debug for KeyPairSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPairSigner")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// The DER inside the first PEM block labelled `label` of `pem`.
fn pem_der(pem: &str, label: &str) -> Result<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let body = pem
        .split_once(&begin)
        .and_then(|(_, rest)| rest.split_once(&end))
        .map(|(body, _)| body)
        .ok_or_else(|| Error::invalid_data(format!("expected a PEM \"{label}\" block")))?;
    let text: String = body.split_whitespace().collect();
    STANDARD
        .decode(text)
        .map_err(|_| Error::invalid_data(format!("the PEM \"{label}\" block is not base64")))
}

impl KeyPairSigner {
    /// A signer for `algorithm` from a PKCS#8 PEM private key
    /// (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pkcs8_pem(algorithm: JwtAlgorithm, pem: &str) -> Result<Self> {
        let der = pem_der(pem, "PRIVATE KEY")?;
        let rng = SystemRandom::new();
        let refused = |e: ring::error::KeyRejected| {
            Error::invalid_data(format!(
                "not a PKCS#8 {} private key ({e})",
                algorithm.as_str()
            ))
        };
        let (private, public) = match algorithm {
            JwtAlgorithm::Es256 => {
                let k = signature::EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    &der,
                    &rng,
                )
                .map_err(refused)?;
                let public = Public::Ec(k.public_key().as_ref().to_vec());
                (Private::Ec(k), public)
            }
            JwtAlgorithm::EdDsa => {
                let k =
                    signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).map_err(refused)?;
                let public = Public::Ed(k.public_key().as_ref().to_vec());
                (Private::Ed(k), public)
            }
            JwtAlgorithm::Rs256 => {
                let k = signature::RsaKeyPair::from_pkcs8(&der).map_err(refused)?;
                let c = signature::RsaPublicKeyComponents::<Vec<u8>>::from(k.public());
                (Private::Rsa(k), Public::Rsa { n: c.n, e: c.e })
            }
        };
        Ok(KeyPairSigner {
            private,
            public: PublicKeyVerifier::new(public),
            rng,
        })
    }
}

impl Signer for KeyPairSigner {
    fn algorithm(&self) -> &'static str {
        self.public.algorithm()
    }

    fn key_id(&self) -> Option<&str> {
        self.public.key_id()
    }

    fn sign(&self, signing_input: &[u8]) -> Result<String> {
        let failed = |_| Error::unexpected("signing a token failed");
        let sig = match &self.private {
            Private::Ec(k) => k
                .sign(&self.rng, signing_input)
                .map_err(failed)?
                .as_ref()
                .to_vec(),
            Private::Ed(k) => k.sign(signing_input).as_ref().to_vec(),
            Private::Rsa(k) => {
                let mut out = vec![0u8; k.public().modulus_len()];
                k.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &self.rng,
                    signing_input,
                    &mut out,
                )
                .map_err(failed)?;
                out
            }
        };
        Ok(URL_SAFE_NO_PAD.encode(sig))
    }

    fn verify(&self, signing_input: &[u8], signature: &str) -> bool {
        self.public.verify(signing_input, signature)
    }

    fn jwk(&self) -> Option<Value> {
        self.public.jwk()
    }
}

/// Verifies tokens signed by an earlier key (its SPKI public key); signs
/// nothing.
#[derive(Clone)]
pub struct PublicKeyVerifier {
    public: Public,
    kid: String,
}

impl fmt::Debug for PublicKeyVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKeyVerifier")
            .field("algorithm", &self.public.algorithm())
            .field("kid", &self.kid)
            .finish()
    }
}

/// One DER TLV: `(tag, content, rest)`.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, b| (a << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// The public key of an SPKI DER.
fn spki(der: &[u8]) -> Option<Public> {
    let (0x30, body, _) = tlv(der)? else {
        return None;
    };
    let (0x30, algorithm, rest) = tlv(body)? else {
        return None;
    };
    let (0x03, bits, _) = tlv(rest)? else {
        return None;
    };
    let (&0, key) = bits.split_first()? else {
        return None;
    };
    let (0x06, oid, params) = tlv(algorithm)? else {
        return None;
    };
    if oid == OID_EC {
        let (0x06, curve, _) = tlv(params)? else {
            return None;
        };
        (curve == OID_P256 && key.len() == 65 && key[0] == 4).then(|| Public::Ec(key.to_vec()))
    } else if oid == OID_ED25519 {
        (key.len() == 32).then(|| Public::Ed(key.to_vec()))
    } else if oid == OID_RSA {
        let (0x30, seq, _) = tlv(key)? else {
            return None;
        };
        let (0x02, n, rest) = tlv(seq)? else {
            return None;
        };
        let (0x02, e, _) = tlv(rest)? else {
            return None;
        };
        let strip = |v: &[u8]| {
            let start = v.iter().position(|b| *b != 0).unwrap_or(v.len());
            v[start..].to_vec()
        };
        Some(Public::Rsa {
            n: strip(n),
            e: strip(e),
        })
    } else {
        None
    }
}

impl PublicKeyVerifier {
    /// A verifier from an SPKI PEM public key (`-----BEGIN PUBLIC KEY-----`)
    /// of P-256, Ed25519 or RSA; its algorithm follows from the key.
    pub fn from_spki_pem(pem: &str) -> Result<Self> {
        let der = pem_der(pem, "PUBLIC KEY")?;
        let public = spki(&der)
            .ok_or_else(|| Error::invalid_data("not a P-256, Ed25519 or RSA public key (SPKI)"))?;
        Ok(Self::new(public))
    }

    fn new(public: Public) -> Self {
        PublicKeyVerifier {
            kid: public.kid(),
            public,
        }
    }
}

impl Signer for PublicKeyVerifier {
    fn algorithm(&self) -> &'static str {
        self.public.algorithm().as_str()
    }

    fn key_id(&self) -> Option<&str> {
        Some(&self.kid)
    }

    fn sign(&self, _signing_input: &[u8]) -> Result<String> {
        Err(Error::unexpected(
            "a previous public key verifies tokens; it cannot sign",
        ))
    }

    fn verify(&self, signing_input: &[u8], signature: &str) -> bool {
        self.public.verify(signing_input, signature)
    }

    fn jwk(&self) -> Option<Value> {
        Some(self.public.jwk(&self.kid))
    }
}

/// Verifies with the key it wraps until a deadline and with nothing after
/// it; signs nothing. For a key kept only for a while, such as a short
/// secret an earlier server signed with (`[http] weak_previous_secrets_until`
/// of `auth-http`): the clock is read at each verification, so a token that
/// verifies only under this key is refused from the deadline on, without a
/// restart. Its JWK, if the key has one, is published until then too.
#[derive(Debug)]
pub struct VerifyUntil<S> {
    inner: S,
    deadline: SystemTime,
}

impl<S: Signer> VerifyUntil<S> {
    /// `inner`, verify-only, until `deadline`.
    pub fn new(inner: S, deadline: SystemTime) -> Self {
        VerifyUntil { inner, deadline }
    }

    /// When it stops verifying.
    pub fn deadline(&self) -> SystemTime {
        self.deadline
    }

    fn live(&self) -> bool {
        SystemTime::now() < self.deadline
    }
}

impl<S: Signer> Signer for VerifyUntil<S> {
    fn algorithm(&self) -> &'static str {
        self.inner.algorithm()
    }

    fn key_id(&self) -> Option<&str> {
        self.inner.key_id()
    }

    fn sign(&self, _signing_input: &[u8]) -> Result<String> {
        Err(Error::unexpected(
            "a key kept until a deadline verifies tokens; it cannot sign",
        ))
    }

    fn verify(&self, signing_input: &[u8], signature: &str) -> bool {
        self.live() && self.inner.verify(signing_input, signature)
    }

    fn jwk(&self) -> Option<Value> {
        self.inner.jwk().filter(|_| self.live())
    }
}

#[cfg(test)]
mod verify_until_tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Secret;
    use crate::token::Hs256Signer;

    const INPUT: &[u8] = b"header.payload";

    #[test]
    fn verifies_until_the_deadline_and_never_signs() {
        let secret = Hs256Signer::new(&Secret::new("supersecret"));
        let signature = secret.sign(INPUT).unwrap();
        let kept = VerifyUntil::new(
            secret.clone(),
            SystemTime::now() + Duration::from_secs(3600),
        );
        assert_eq!(kept.algorithm(), "HS256");
        assert!(kept.verify(INPUT, &signature));
        assert!(!kept.verify(b"header.other", &signature), "another input");
        let other = Hs256Signer::new(&Secret::new("another"))
            .sign(INPUT)
            .unwrap();
        assert!(!kept.verify(INPUT, &other), "another secret");
        assert!(kept.sign(INPUT).is_err(), "verify-only");
        assert_eq!(kept.jwk(), None);

        let past = VerifyUntil::new(secret, SystemTime::now() - Duration::from_secs(1));
        assert!(!past.verify(INPUT, &signature), "past its deadline");
        assert!(past.sign(INPUT).is_err());
    }

    /// The clock is read at each verification, not when the wrapper is made.
    #[test]
    fn stops_verifying_when_the_deadline_passes() {
        let secret = Hs256Signer::new(&Secret::new("supersecret"));
        let signature = secret.sign(INPUT).unwrap();
        let kept = VerifyUntil::new(secret, SystemTime::now() + Duration::from_millis(300));
        assert!(kept.verify(INPUT, &signature));
        std::thread::sleep(Duration::from_millis(400));
        assert!(!kept.verify(INPUT, &signature));
    }

    #[test]
    fn a_public_key_is_published_until_its_deadline() {
        let pem = "-----BEGIN PUBLIC KEY-----\n\
            MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n\
            -----END PUBLIC KEY-----\n";
        let key = PublicKeyVerifier::from_spki_pem(pem).unwrap();
        let kid = key.key_id().map(str::to_owned);
        let live = VerifyUntil::new(key.clone(), SystemTime::now() + Duration::from_secs(60));
        assert_eq!(live.key_id().map(str::to_owned), kid);
        assert_eq!(live.algorithm(), "EdDSA");
        assert!(live.jwk().is_some());
        let past = VerifyUntil::new(key, SystemTime::now() - Duration::from_secs(1));
        assert_eq!(past.jwk(), None);
    }
}
