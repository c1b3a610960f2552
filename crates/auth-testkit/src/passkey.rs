//! A software WebAuthn authenticator for testing passkey routes (feature
//! `passkey`).
//!
//! [`Authenticator`] plays the browser and a platform authenticator at once:
//! [`Authenticator::create`] stands for `navigator.credentials.create()` and
//! [`Authenticator::get`] for `navigator.credentials.get()`. Both take the
//! options JSON a server hands to `@simplewebauthn/browser`
//! (`PublicKeyCredentialCreationOptionsJSON`,
//! `PublicKeyCredentialRequestOptionsJSON`) and answer the JSON it posts back
//! (`RegistrationResponseJSON`, `AuthenticationResponseJSON`: the WebAuthn
//! Level 3 `toJSON()` forms, binary fields in base64url without padding), so a
//! test can drive a server's passkey routes over real HTTP:
//!
//! ```
//! use auth_testkit::passkey::Authenticator;
//! use serde_json::json;
//!
//! let mut authenticator = Authenticator::new();
//! let registration = authenticator
//!     .create(
//!         &json!({
//!             "rp": {"id": "shop.example", "name": "Shop"},
//!             "user": {"id": "dXNlci0x", "name": "a@b.c", "displayName": "A"},
//!             "challenge": "Y2hhbGxlbmdl",
//!             "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
//!         }),
//!         "https://shop.example",
//!     )
//!     .unwrap();
//! assert_eq!(registration["type"], "public-key");
//!
//! let assertion = authenticator
//!     .get(
//!         &json!({"challenge": "b3RoZXI", "rpId": "shop.example", "allowCredentials": []}),
//!         "https://shop.example",
//!     )
//!     .unwrap();
//! assert_eq!(assertion["id"], registration["id"]);
//! assert_eq!(assertion["response"]["userHandle"], "dXNlci0x");
//! ```
//!
//! Every credential is a discoverable ES256 (ECDSA P-256, SHA-256) key with a
//! random 16-byte id and an all-zero AAGUID. Attestation is `none`, or
//! `packed` self attestation with [`Authenticator::packed_attestation`].
//!
//! The authenticator checks only what it must to answer at all (a challenge,
//! a user id, ES256 among the offered algorithms, no excluded credential of
//! its own, a credential to sign with); it leaves every relying-party check to
//! the server, and makes none of a browser's checks of the origin against the
//! rp id, so that tests can present a wrong origin. Its knobs
//! ([`Authenticator::rp_id_override`], [`Authenticator::user_verified`],
//! [`Authenticator::user_present`], [`Authenticator::counting`],
//! [`Authenticator::backed_up`]) produce the responses a server must refuse
//! or handle. The keys are generated in memory and never leave it: they are
//! for tests only.

use std::fmt;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// COSE algorithm identifier of ES256, the only algorithm this authenticator has.
const ES256: i64 = -7;

/// authenticatorData flag: user present.
const FLAG_UP: u8 = 0x01;
/// authenticatorData flag: user verified.
const FLAG_UV: u8 = 0x04;
/// authenticatorData flag: backup eligible.
const FLAG_BE: u8 = 0x08;
/// authenticatorData flag: backed up.
const FLAG_BS: u8 = 0x10;
/// authenticatorData flag: attested credential data included.
const FLAG_AT: u8 = 0x40;

/// The DER prefix of a P-256 `SubjectPublicKeyInfo` (id-ecPublicKey,
/// prime256v1, a 66-byte bit string), followed by the uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Decodes base64url as `@simplewebauthn/browser` does (through `atob`):
/// padding optional, and the standard alphabet's `+` and `/` accepted too.
const LENIENT_BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// A software WebAuthn authenticator (and the browser in front of it) that
/// holds its credentials in memory.
///
/// Configure it with the builder-style knobs, which apply to every later
/// ceremony and may be changed between ceremonies
/// (`authenticator = authenticator.user_verified(false)`). Its `Debug` output
/// shows credential ids and settings, never a private key.
#[derive(Debug)]
pub struct Authenticator {
    /// The credentials, oldest first.
    credentials: Vec<Credential>,
    /// The rp id hashed into authenticatorData instead of the options' one.
    rp_id_override: Option<String>,
    /// Sets the UV flag.
    user_verified: bool,
    /// Sets the UP flag.
    user_present: bool,
    /// Increments the signature counter per assertion (else always 0).
    counting: bool,
    /// Answers `packed` self attestation instead of `none`.
    packed_attestation: bool,
    /// Sets the BE and BS flags.
    backed_up: bool,
}

/// One credential: a discoverable ES256 key scoped to an rp id.
struct Credential {
    /// The credential id (16 random bytes).
    id: Vec<u8>,
    /// The rp id it was created for.
    rp_id: String,
    /// The user handle (`user.id`) it was created for.
    user_handle: Vec<u8>,
    /// The private key.
    key: EcdsaKeyPair,
    /// The signature counter.
    counter: u32,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key pair's own Debug shows only the public key, but say nothing of it.
        f.debug_struct("Credential")
            .field("id", &URL_SAFE_NO_PAD.encode(&self.id))
            .field("rp_id", &self.rp_id)
            .field("user_handle", &URL_SAFE_NO_PAD.encode(&self.user_handle))
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

impl Default for Authenticator {
    fn default() -> Self {
        Self::new()
    }
}

impl Authenticator {
    /// An authenticator without credentials that verifies the user (UV), sees
    /// them present (UP), counts signatures, attests `none` and is not
    /// backed up.
    pub fn new() -> Self {
        Self {
            credentials: Vec::new(),
            rp_id_override: None,
            user_verified: true,
            user_present: true,
            counting: true,
            packed_attestation: false,
            backed_up: false,
        }
    }

    /// `navigator.credentials.create()`: makes a new credential.
    ///
    /// `options` is a `PublicKeyCredentialCreationOptionsJSON` (the object
    /// with `rp`, `user`, `challenge`, `pubKeyCredParams`, `timeout`,
    /// `excludeCredentials`, `authenticatorSelection`, `attestation`, ...;
    /// with or without a `{"publicKey": ...}` wrapper) and `origin` the page's
    /// origin, e.g. `"https://shop.example"`. The credential is scoped to
    /// `rp.id`, or when that is absent to the origin's host.
    ///
    /// Answers a `RegistrationResponseJSON`: `{id, rawId, type:
    /// "public-key", response: {clientDataJSON, attestationObject,
    /// transports: ["internal", "hybrid"], publicKeyAlgorithm: -7, publicKey
    /// (SPKI DER), authenticatorData}, clientExtensionResults: {},
    /// authenticatorAttachment: "platform"}`, binary fields in base64url
    /// without padding. The signature counter starts at 0.
    ///
    /// `authenticatorSelection` and `attestation` are not looked at: the
    /// credential is always discoverable, its flags follow the knobs and its
    /// attestation [`Authenticator::packed_attestation`].
    ///
    /// # Errors
    ///
    /// A message naming the DOM error a browser would throw, when the
    /// options lack the challenge, `user.id` or `pubKeyCredParams` (or they
    /// are not base64url), when `excludeCredentials` lists a credential this
    /// authenticator holds for the rp id, or when ES256 (`-7`) is not among
    /// `pubKeyCredParams` (an empty list means the spec's default, which has
    /// it).
    pub fn create(&mut self, options: &Value, origin: &str) -> Result<Value, String> {
        let options = options.get("publicKey").unwrap_or(options);
        let challenge = challenge(options)?;
        let rp_id = match options.pointer("/rp/id") {
            None | Some(Value::Null) => origin_host(origin)?,
            Some(Value::String(id)) => id.clone(),
            Some(_) => return Err("TypeError: rp.id is not a string".to_owned()),
        };
        let user_handle = match options.pointer("/user/id") {
            Some(Value::String(id)) => decode(id, "user.id")?,
            _ => return Err("TypeError: user.id is missing or not a string".to_owned()),
        };
        if user_handle.is_empty() || user_handle.len() > 64 {
            return Err("TypeError: user.id must be 1 to 64 bytes".to_owned());
        }

        let params = options
            .get("pubKeyCredParams")
            .and_then(Value::as_array)
            .ok_or("TypeError: pubKeyCredParams is missing or not an array")?;
        let offers_es256 = params.is_empty()
            || params.iter().any(|param| {
                param.get("type").and_then(Value::as_str) == Some("public-key")
                    && param.get("alg").and_then(Value::as_i64) == Some(ES256)
            });
        if !offers_es256 {
            return Err(
                "NotSupportedError: pubKeyCredParams does not offer ES256 (-7), \
                 the only algorithm of this authenticator"
                    .to_owned(),
            );
        }

        let excluded = descriptor_ids(options.get("excludeCredentials"), "excludeCredentials")?;
        if let Some(held) = self
            .credentials
            .iter()
            .find(|cred| cred.rp_id == rp_id && excluded.contains(&cred.id))
        {
            return Err(format!(
                "InvalidStateError: excludeCredentials lists {}, a credential this \
                 authenticator holds for {rp_id}",
                URL_SAFE_NO_PAD.encode(&held.id)
            ));
        }

        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(|_| "UnknownError: cannot generate a P-256 key".to_owned())?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| "UnknownError: cannot load the generated P-256 key".to_owned())?;
        let mut id = vec![0; 16];
        getrandom::getrandom(&mut id)
            .map_err(|e| format!("UnknownError: no random credential id: {e}"))?;

        // The uncompressed point 0x04 ‖ x ‖ y.
        let point = key.public_key().as_ref().to_vec();
        let (x, y) = point[1..].split_at(32);
        let cose_key = Cbor::Map(vec![
            (Cbor::Int(1), Cbor::Int(2)),     // kty: EC2
            (Cbor::Int(3), Cbor::Int(ES256)), // alg: ES256
            (Cbor::Int(-1), Cbor::Int(1)),    // crv: P-256
            (Cbor::Int(-2), Cbor::bytes(x)),  // x
            (Cbor::Int(-3), Cbor::bytes(y)),  // y
        ]);

        let mut auth_data = self.authenticator_data(&rp_id, FLAG_AT, 0);
        auth_data.extend_from_slice(&[0; 16]); // aaguid
        let id_len = u16::try_from(id.len()).expect("a 16-byte credential id");
        auth_data.extend_from_slice(&id_len.to_be_bytes());
        auth_data.extend_from_slice(&id);
        cose_key.encode(&mut auth_data);

        let client_data = client_data_json("webauthn.create", &challenge, origin);
        let att_stmt = if self.packed_attestation {
            let sig = sign(&key, &auth_data, &client_data)?;
            Cbor::Map(vec![
                (Cbor::text("alg"), Cbor::Int(ES256)),
                (Cbor::text("sig"), Cbor::Bytes(sig)),
            ])
        } else {
            Cbor::Map(Vec::new())
        };
        let fmt = if self.packed_attestation {
            "packed"
        } else {
            "none"
        };
        let mut attestation_object = Vec::new();
        Cbor::Map(vec![
            (Cbor::text("fmt"), Cbor::text(fmt)),
            (Cbor::text("attStmt"), att_stmt),
            (Cbor::text("authData"), Cbor::bytes(&auth_data)),
        ])
        .encode(&mut attestation_object);

        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(&point);

        let id_b64 = URL_SAFE_NO_PAD.encode(&id);
        self.credentials.push(Credential {
            id,
            rp_id,
            user_handle,
            key,
            counter: 0,
        });
        Ok(json!({
            "id": id_b64,
            "rawId": id_b64,
            "type": "public-key",
            "response": {
                "clientDataJSON": URL_SAFE_NO_PAD.encode(client_data.as_bytes()),
                "attestationObject": URL_SAFE_NO_PAD.encode(&attestation_object),
                "transports": ["internal", "hybrid"],
                "publicKeyAlgorithm": ES256,
                "publicKey": URL_SAFE_NO_PAD.encode(&spki),
                "authenticatorData": URL_SAFE_NO_PAD.encode(&auth_data),
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }))
    }

    /// `navigator.credentials.get()`: signs an assertion.
    ///
    /// `options` is a `PublicKeyCredentialRequestOptionsJSON` (`{challenge,
    /// rpId, allowCredentials, userVerification, timeout}`, with or without a
    /// `{"publicKey": ...}` wrapper) and `origin` the page's origin. The rp id
    /// is `rpId`, or when that is absent the origin's host. Uses the oldest of
    /// its credentials for that rp id that `allowCredentials` lists, or the
    /// oldest for the rp id when the list is empty or absent (a discoverable
    /// login). When [`Authenticator::counting`], the credential's counter is
    /// incremented first and signed; otherwise the assertion carries 0.
    ///
    /// Answers an `AuthenticationResponseJSON`: `{id, rawId, type:
    /// "public-key", response: {clientDataJSON, authenticatorData, signature
    /// (ASN.1 DER ECDSA), userHandle}, clientExtensionResults: {},
    /// authenticatorAttachment: "platform"}`, binary fields in base64url
    /// without padding; `userHandle` is the creation options' `user.id`.
    /// `userVerification` is not looked at: the UV flag follows
    /// [`Authenticator::user_verified`].
    ///
    /// # Errors
    ///
    /// A message naming the DOM error a browser would throw, when the options
    /// lack the challenge (or it or an `allowCredentials` id is not base64url)
    /// or no credential fits.
    pub fn get(&mut self, options: &Value, origin: &str) -> Result<Value, String> {
        let options = options.get("publicKey").unwrap_or(options);
        let challenge = challenge(options)?;
        let rp_id = match options.get("rpId") {
            None | Some(Value::Null) => origin_host(origin)?,
            Some(Value::String(id)) => id.clone(),
            Some(_) => return Err("TypeError: rpId is not a string".to_owned()),
        };
        let allowed = descriptor_ids(options.get("allowCredentials"), "allowCredentials")?;

        let index = self
            .credentials
            .iter()
            .position(|cred| {
                cred.rp_id == rp_id && (allowed.is_empty() || allowed.contains(&cred.id))
            })
            .ok_or_else(|| {
                format!(
                    "NotAllowedError: no credential of this authenticator for {rp_id} {}",
                    if allowed.is_empty() {
                        "(discoverable login)"
                    } else {
                        "is in allowCredentials"
                    }
                )
            })?;

        let counter = if self.counting {
            let cred = &mut self.credentials[index];
            cred.counter = cred.counter.wrapping_add(1);
            cred.counter
        } else {
            0
        };
        let cred = &self.credentials[index];
        let auth_data = self.authenticator_data(&rp_id, 0, counter);
        let client_data = client_data_json("webauthn.get", &challenge, origin);
        let signature = sign(&cred.key, &auth_data, &client_data)?;

        let id_b64 = URL_SAFE_NO_PAD.encode(&cred.id);
        Ok(json!({
            "id": id_b64,
            "rawId": id_b64,
            "type": "public-key",
            "response": {
                "clientDataJSON": URL_SAFE_NO_PAD.encode(client_data.as_bytes()),
                "authenticatorData": URL_SAFE_NO_PAD.encode(&auth_data),
                "signature": URL_SAFE_NO_PAD.encode(&signature),
                "userHandle": URL_SAFE_NO_PAD.encode(&cred.user_handle),
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }))
    }

    /// The ids (base64url without padding) of the credentials it holds,
    /// oldest first.
    pub fn credential_ids(&self) -> Vec<String> {
        self.credentials
            .iter()
            .map(|cred| URL_SAFE_NO_PAD.encode(&cred.id))
            .collect()
    }

    /// Sets the signature counter of credential `id` (base64url), e.g. to
    /// test a counter going backwards: the next assertion, when
    /// [`Authenticator::counting`], carries `counter + 1`.
    ///
    /// # Panics
    ///
    /// If it holds no credential `id`.
    pub fn set_counter(&mut self, id: &str, counter: u32) {
        let bytes = LENIENT_BASE64URL
            .decode(id.replace('+', "-").replace('/', "_"))
            .unwrap_or_default();
        let cred = self
            .credentials
            .iter_mut()
            .find(|cred| cred.id == bytes)
            .unwrap_or_else(|| panic!("set_counter: the authenticator holds no credential {id}"));
        cred.counter = counter;
    }

    /// Hashes `rp_id` into authenticatorData instead of the options' rp id
    /// (or the origin's host), as an authenticator of another site would: a
    /// server must refuse the response. Credentials are still scoped to the
    /// options' rp id.
    pub fn rp_id_override(mut self, rp_id: impl Into<String>) -> Self {
        self.rp_id_override = Some(rp_id.into());
        self
    }

    /// Whether to set the UV (user verified) flag (default `true`), whatever
    /// the options' `userVerification`.
    pub fn user_verified(mut self, yes: bool) -> Self {
        self.user_verified = yes;
        self
    }

    /// Whether to set the UP (user present) flag (default `true`); a server
    /// must refuse a response without it.
    pub fn user_present(mut self, yes: bool) -> Self {
        self.user_present = yes;
        self
    }

    /// Whether the signature counter counts (default `true`): each assertion
    /// increments the credential's counter and carries it; with `false`
    /// every assertion carries 0, as many passkey providers' do.
    pub fn counting(mut self, yes: bool) -> Self {
        self.counting = yes;
        self
    }

    /// Whether to attest registrations with `packed` self attestation
    /// (`{"alg": -7, "sig": ...}`, signed by the new credential's own key)
    /// instead of `none` (default `false`).
    pub fn packed_attestation(mut self, yes: bool) -> Self {
        self.packed_attestation = yes;
        self
    }

    /// Whether to set the BE (backup eligible) and BS (backed up) flags, as
    /// a synced passkey does (default `false`).
    pub fn backed_up(mut self, yes: bool) -> Self {
        self.backed_up = yes;
        self
    }

    /// SHA-256(rp id) ‖ flags (the knobs' and `extra_flags`) ‖ counter
    /// (big-endian).
    fn authenticator_data(&self, rp_id: &str, extra_flags: u8, counter: u32) -> Vec<u8> {
        let hashed = self.rp_id_override.as_deref().unwrap_or(rp_id);
        let mut flags = extra_flags;
        if self.user_present {
            flags |= FLAG_UP;
        }
        if self.user_verified {
            flags |= FLAG_UV;
        }
        if self.backed_up {
            flags |= FLAG_BE | FLAG_BS;
        }
        let mut data = Sha256::digest(hashed.as_bytes()).to_vec();
        data.push(flags);
        data.extend_from_slice(&counter.to_be_bytes());
        data
    }
}

/// The options' challenge, re-encoded as a browser does (base64url without
/// padding).
fn challenge(options: &Value) -> Result<String, String> {
    match options.get("challenge") {
        Some(Value::String(challenge)) => {
            Ok(URL_SAFE_NO_PAD.encode(decode(challenge, "challenge")?))
        }
        _ => Err("TypeError: challenge is missing or not a string".to_owned()),
    }
}

/// Decodes base64url as `@simplewebauthn/browser` does.
fn decode(value: &str, what: &str) -> Result<Vec<u8>, String> {
    LENIENT_BASE64URL
        .decode(value.replace('+', "-").replace('/', "_"))
        .map_err(|e| format!("EncodingError: {what} is not base64url: {e}"))
}

/// The credential ids of a list of `PublicKeyCredentialDescriptorJSON`
/// (empty when absent); descriptors of a type other than `public-key` are
/// skipped, as the spec says.
fn descriptor_ids(list: Option<&Value>, what: &str) -> Result<Vec<Vec<u8>>, String> {
    let descriptors = match list {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(descriptors)) => descriptors,
        Some(_) => return Err(format!("TypeError: {what} is not an array")),
    };
    let mut ids = Vec::with_capacity(descriptors.len());
    for descriptor in descriptors {
        match descriptor.get("type").and_then(Value::as_str) {
            None | Some("public-key") => {}
            Some(_) => continue,
        }
        match descriptor.get("id") {
            Some(Value::String(id)) => ids.push(decode(id, &format!("an id in {what}"))?),
            _ => {
                return Err(format!(
                    "TypeError: a descriptor in {what} has no string id"
                ));
            }
        }
    }
    Ok(ids)
}

/// The host of an origin (`scheme://host[:port]`), lowercase.
fn origin_host(origin: &str) -> Result<String, String> {
    let authority = origin
        .split_once("://")
        .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(""))
        .ok_or_else(|| format!("SecurityError: {origin:?} is not an origin"))?;
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    if host.is_empty() {
        return Err(format!("SecurityError: {origin:?} has no host"));
    }
    Ok(host.to_ascii_lowercase())
}

/// The client data JSON, its members in the order browsers write them.
fn client_data_json(type_: &str, challenge: &str, origin: &str) -> String {
    // Invariant: serialising a string cannot fail.
    let string = |s: &str| serde_json::to_string(s).expect("a JSON string");
    format!(
        r#"{{"type":{},"challenge":{},"origin":{},"crossOrigin":false}}"#,
        string(type_),
        string(challenge),
        string(origin)
    )
}

/// ECDSA P-256 SHA-256 (ASN.1 DER) over `auth_data` ‖ SHA-256(`client_data`).
fn sign(key: &EcdsaKeyPair, auth_data: &[u8], client_data: &str) -> Result<Vec<u8>, String> {
    let mut message = auth_data.to_vec();
    message.extend_from_slice(&Sha256::digest(client_data.as_bytes()));
    key.sign(&SystemRandom::new(), &message)
        .map(|signature| signature.as_ref().to_vec())
        .map_err(|_| "UnknownError: signing failed".to_owned())
}

/// The little CBOR (RFC 8949) this authenticator writes.
enum Cbor {
    /// An unsigned (major type 0) or negative (major type 1) integer.
    Int(i64),
    /// A byte string (major type 2).
    Bytes(Vec<u8>),
    /// A text string (major type 3).
    Text(String),
    /// A map (major type 5), its entries in the given order.
    Map(Vec<(Cbor, Cbor)>),
}

impl Cbor {
    /// A byte string.
    fn bytes(bytes: &[u8]) -> Self {
        Self::Bytes(bytes.to_vec())
    }

    /// A text string.
    fn text(text: &str) -> Self {
        Self::Text(text.to_owned())
    }

    /// Appends the encoding to `out`.
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Int(n) if *n >= 0 => head(out, 0, n.unsigned_abs()),
            // -1 - n, without overflow for i64::MIN.
            Self::Int(n) => head(out, 1, (n + 1).unsigned_abs()),
            Self::Bytes(bytes) => {
                head(out, 2, bytes.len() as u64);
                out.extend_from_slice(bytes);
            }
            Self::Text(text) => {
                head(out, 3, text.len() as u64);
                out.extend_from_slice(text.as_bytes());
            }
            Self::Map(entries) => {
                head(out, 5, entries.len() as u64);
                for (key, value) in entries {
                    key.encode(out);
                    value.encode(out);
                }
            }
        }
    }
}

/// Appends a CBOR head: the major type and its argument, in the shortest form.
fn head(out: &mut Vec<u8>, major: u8, argument: u64) {
    let major = major << 5;
    if argument < 24 {
        out.push(major | argument as u8);
    } else if let Ok(byte) = u8::try_from(argument) {
        out.extend_from_slice(&[major | 24, byte]);
    } else if let Ok(short) = u16::try_from(argument) {
        out.push(major | 25);
        out.extend_from_slice(&short.to_be_bytes());
    } else if let Ok(word) = u32::try_from(argument) {
        out.push(major | 26);
        out.extend_from_slice(&word.to_be_bytes());
    } else {
        out.push(major | 27);
        out.extend_from_slice(&argument.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(value: &Cbor) -> Vec<u8> {
        let mut out = Vec::new();
        value.encode(&mut out);
        out
    }

    #[test]
    fn cbor_encodes_rfc_8949_examples() {
        assert_eq!(encoded(&Cbor::Int(0)), [0x00]);
        assert_eq!(encoded(&Cbor::Int(23)), [0x17]);
        assert_eq!(encoded(&Cbor::Int(24)), [0x18, 0x18]);
        assert_eq!(encoded(&Cbor::Int(1000)), [0x19, 0x03, 0xe8]);
        assert_eq!(
            encoded(&Cbor::Int(1_000_000)),
            [0x1a, 0x00, 0x0f, 0x42, 0x40]
        );
        assert_eq!(
            encoded(&Cbor::Int(1_000_000_000_000)),
            [0x1b, 0x00, 0x00, 0x00, 0xe8, 0xd4, 0xa5, 0x10, 0x00]
        );
        assert_eq!(encoded(&Cbor::Int(-1)), [0x20]);
        assert_eq!(encoded(&Cbor::Int(-7)), [0x26]);
        assert_eq!(encoded(&Cbor::Int(-100)), [0x38, 0x63]);
        assert_eq!(encoded(&Cbor::Int(-1000)), [0x39, 0x03, 0xe7]);
        assert_eq!(
            encoded(&Cbor::Int(i64::MIN)),
            [0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(encoded(&Cbor::bytes(&[1, 2, 3, 4])), [0x44, 1, 2, 3, 4]);
        assert_eq!(encoded(&Cbor::text("IETF")), [0x64, b'I', b'E', b'T', b'F']);
        assert_eq!(encoded(&Cbor::Map(Vec::new())), [0xa0]);
        assert_eq!(
            encoded(&Cbor::Map(vec![
                (Cbor::Int(1), Cbor::Int(2)),
                (Cbor::Int(3), Cbor::Int(4))
            ])),
            [0xa2, 0x01, 0x02, 0x03, 0x04]
        );
        let long = vec![0; 300];
        assert_eq!(encoded(&Cbor::bytes(&long))[..3], [0x59, 0x01, 0x2c]);
    }

    #[test]
    fn origin_host_strips_scheme_port_and_path() {
        assert_eq!(origin_host("https://shop.example").unwrap(), "shop.example");
        assert_eq!(origin_host("http://Localhost:8080/x").unwrap(), "localhost");
        assert_eq!(origin_host("https://[::1]:8443").unwrap(), "::1");
        assert!(origin_host("shop.example").is_err());
        assert!(origin_host("https://").is_err());
    }

    #[test]
    fn debug_shows_no_key() {
        let mut authenticator = Authenticator::new();
        authenticator
            .create(
                &json!({
                    "rp": {"id": "shop.example", "name": "Shop"},
                    "user": {"id": "dQ", "name": "u", "displayName": "u"},
                    "challenge": "AAAA",
                    "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
                }),
                "https://shop.example",
            )
            .unwrap();
        let debug = format!("{authenticator:?}");
        assert!(
            debug.contains(&authenticator.credential_ids()[0]),
            "{debug}"
        );
        assert!(!debug.contains("key"), "{debug}");
    }
}
