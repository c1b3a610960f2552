//! The software authenticator against a real relying-party library
//! (webauthn-rs-core): what it answers registers and logs in, and each knob
//! makes the library refuse what it should.
#![cfg(feature = "passkey")]

use std::time::Duration;

use auth_testkit::passkey::Authenticator;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use url::Url;
use webauthn_rs_core::WebauthnCore;
use webauthn_rs_core::error::WebauthnError;
use webauthn_rs_core::proto::{
    AttestationFormat, AuthenticationResult, AuthenticationState, COSEAlgorithm, Credential,
    CredentialID, ParsedAttestationData, PublicKeyCredential, RegisterPublicKeyCredential,
    RegistrationState, UserVerificationPolicy,
};

const ORIGIN: &str = "https://shop.example";
const USER_ID: &[u8] = b"user-0001";

fn relying_party() -> WebauthnCore {
    WebauthnCore::new_unsafe_experts_only(
        "Shop",
        "shop.example",
        vec![Url::parse(ORIGIN).unwrap()],
        Duration::from_secs(60),
        None,
        None,
    )
}

/// The `publicKey` member of a serialised challenge: the options JSON a
/// server hands to `@simplewebauthn/browser`.
fn public_key_options(mut challenge: Value) -> Value {
    challenge["publicKey"].take()
}

/// Starts a registration: (options JSON, state).
fn start_registration(
    rp: &WebauthnCore,
    exclude: Option<Vec<CredentialID>>,
    algorithms: Option<Vec<COSEAlgorithm>>,
) -> (Value, RegistrationState) {
    let mut builder = rp
        .new_challenge_register_builder(USER_ID, "a@b.c", "a@b.c")
        .unwrap()
        .user_verification_policy(UserVerificationPolicy::Required)
        .require_resident_key(true)
        .exclude_credentials(exclude);
    if let Some(algorithms) = algorithms {
        builder = builder.credential_algorithms(algorithms);
    }
    let (challenge, state) = rp.generate_challenge_register(builder).unwrap();
    (
        public_key_options(serde_json::to_value(&challenge).unwrap()),
        state,
    )
}

/// Registers with the authenticator's answer as `origin`.
fn try_register(
    rp: &WebauthnCore,
    authenticator: &mut Authenticator,
    origin: &str,
) -> Result<Credential, WebauthnError> {
    let (options, state) = start_registration(rp, None, None);
    let response = authenticator.create(&options, origin).unwrap();
    let response: RegisterPublicKeyCredential = serde_json::from_value(response).unwrap();
    rp.register_credential(&response, &state, None)
}

fn register(rp: &WebauthnCore, authenticator: &mut Authenticator) -> Credential {
    try_register(rp, authenticator, ORIGIN).expect("the library accepts the registration")
}

/// Starts a login for `creds` (none: discoverable): (options JSON, state).
fn start_login(rp: &WebauthnCore, creds: Vec<Credential>) -> (Value, AuthenticationState) {
    let builder = rp
        .new_challenge_authenticate_builder(creds, Some(UserVerificationPolicy::Required))
        .unwrap();
    let (challenge, state) = rp.generate_challenge_authenticate(builder).unwrap();
    (
        public_key_options(serde_json::to_value(&challenge).unwrap()),
        state,
    )
}

/// Logs in with `cred` and the authenticator's answer as `origin`.
fn try_login(
    rp: &WebauthnCore,
    authenticator: &mut Authenticator,
    cred: &Credential,
    origin: &str,
) -> Result<AuthenticationResult, WebauthnError> {
    let (options, state) = start_login(rp, vec![cred.clone()]);
    let response = authenticator.get(&options, origin).unwrap();
    let response: PublicKeyCredential = serde_json::from_value(response).unwrap();
    rp.authenticate_credential(&response, &state)
}

fn login(
    rp: &WebauthnCore,
    authenticator: &mut Authenticator,
    cred: &Credential,
) -> AuthenticationResult {
    try_login(rp, authenticator, cred, ORIGIN).expect("the library accepts the login")
}

fn b64(value: &Value) -> Vec<u8> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is not a string"));
    assert!(!text.contains('='), "{text} is padded");
    URL_SAFE_NO_PAD.decode(text).unwrap()
}

#[test]
fn registers_and_logs_in_with_counting_signatures() {
    let rp = relying_party();
    let mut authenticator = Authenticator::new();
    let cred = register(&rp, &mut authenticator);
    assert_eq!(cred.counter, 0);
    assert!(cred.user_verified);
    assert!(!cred.backup_eligible && !cred.backup_state);
    assert_eq!(cred.registration_policy, UserVerificationPolicy::Required);
    assert_eq!(
        authenticator.credential_ids(),
        [URL_SAFE_NO_PAD.encode(&cred.cred_id)]
    );

    let first = login(&rp, &mut authenticator, &cred);
    assert_eq!(first.counter(), 1);
    assert!(first.user_verified());
    assert_eq!(first.cred_id(), &cred.cred_id);
    assert!(first.needs_update());

    let mut cred = cred;
    cred.counter = first.counter();
    let second = login(&rp, &mut authenticator, &cred);
    assert_eq!(second.counter(), 2);
}

#[test]
fn responses_have_the_simplewebauthn_json_shape() {
    let rp = relying_party();
    let mut authenticator = Authenticator::new();
    let (options, _) = start_registration(&rp, None, None);
    let created = authenticator.create(&options, ORIGIN).unwrap();
    assert_eq!(created["type"], "public-key");
    assert_eq!(created["id"], created["rawId"]);
    assert_eq!(b64(&created["rawId"]).len(), 16);
    assert_eq!(created["authenticatorAttachment"], "platform");
    assert_eq!(created["clientExtensionResults"], serde_json::json!({}));
    let response = &created["response"];
    assert_eq!(
        response["transports"],
        serde_json::json!(["internal", "hybrid"])
    );
    assert_eq!(response["publicKeyAlgorithm"], -7);
    let client_data = String::from_utf8(b64(&response["clientDataJSON"])).unwrap();
    assert_eq!(
        client_data,
        format!(
            r#"{{"type":"webauthn.create","challenge":{},"origin":"https://shop.example","crossOrigin":false}}"#,
            options["challenge"]
        )
    );
    let auth_data = b64(&response["authenticatorData"]);
    assert_eq!(auth_data[32], 0x01 | 0x04 | 0x40, "UP, UV and AT");
    assert_eq!(auth_data[33..37], [0, 0, 0, 0], "counter 0");
    // The attestation object holds the very authenticator data.
    let attestation_object = b64(&response["attestationObject"]);
    assert!(
        attestation_object
            .windows(auth_data.len())
            .any(|w| w == auth_data)
    );
    // publicKey is the SPKI of the key the assertion signature verifies with.
    let spki = b64(&response["publicKey"]);
    assert_eq!(spki.len(), 91);

    let (options, _) = start_login(&rp, Vec::new());
    let got = authenticator.get(&options, ORIGIN).unwrap();
    assert_eq!(got["id"], created["id"]);
    assert_eq!(got["type"], "public-key");
    assert_eq!(got["authenticatorAttachment"], "platform");
    assert_eq!(got["clientExtensionResults"], serde_json::json!({}));
    let response = &got["response"];
    assert_eq!(b64(&response["userHandle"]), USER_ID);
    let client_data = b64(&response["clientDataJSON"]);
    let auth_data = b64(&response["authenticatorData"]);
    assert_eq!(auth_data[32], 0x01 | 0x04, "UP and UV");
    assert_eq!(auth_data[33..37], [0, 0, 0, 1], "counter 1");
    let mut message = auth_data.clone();
    message.extend_from_slice(&<sha2::Sha256 as sha2::Digest>::digest(&client_data));
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, &spki[26..])
        .verify(&message, &b64(&response["signature"]))
        .expect("the signature verifies with the registered publicKey");
}

#[test]
fn wrong_origin_is_refused() {
    let rp = relying_party();
    let mut authenticator = Authenticator::new();
    let refused = try_register(&rp, &mut authenticator, "https://evil.example");
    assert!(
        matches!(refused, Err(WebauthnError::InvalidRPOrigin)),
        "{refused:?}"
    );
    // Another port is another origin too.
    let refused = try_register(&rp, &mut authenticator, "https://shop.example:8443");
    assert!(
        matches!(refused, Err(WebauthnError::InvalidRPOrigin)),
        "{refused:?}"
    );

    let cred = register(&rp, &mut authenticator);
    let refused = try_login(&rp, &mut authenticator, &cred, "https://evil.example");
    assert!(
        matches!(refused, Err(WebauthnError::InvalidRPOrigin)),
        "{refused:?}"
    );
}

#[test]
fn another_rp_id_hash_is_refused() {
    let rp = relying_party();
    let mut evil = Authenticator::new().rp_id_override("evil.example");
    let refused = try_register(&rp, &mut evil, ORIGIN);
    assert!(
        matches!(refused, Err(WebauthnError::InvalidRPIDHash)),
        "{refused:?}"
    );

    let mut authenticator = Authenticator::new();
    let cred = register(&rp, &mut authenticator);
    let mut authenticator = authenticator.rp_id_override("evil.example");
    let refused = try_login(&rp, &mut authenticator, &cred, ORIGIN);
    assert!(
        matches!(refused, Err(WebauthnError::InvalidRPIDHash)),
        "{refused:?}"
    );
}

#[test]
fn no_user_verification_is_refused_when_required() {
    let rp = relying_party();
    let mut unverified = Authenticator::new().user_verified(false);
    let refused = try_register(&rp, &mut unverified, ORIGIN);
    assert!(
        matches!(refused, Err(WebauthnError::UserNotVerified)),
        "{refused:?}"
    );

    let mut authenticator = Authenticator::new();
    let cred = register(&rp, &mut authenticator);
    let mut authenticator = authenticator.user_verified(false);
    let refused = try_login(&rp, &mut authenticator, &cred, ORIGIN);
    assert!(
        matches!(refused, Err(WebauthnError::UserNotVerified)),
        "{refused:?}"
    );
}

#[test]
fn no_user_presence_is_refused() {
    let rp = relying_party();
    let mut absent = Authenticator::new().user_present(false);
    let refused = try_register(&rp, &mut absent, ORIGIN);
    assert!(
        matches!(refused, Err(WebauthnError::UserNotPresent)),
        "{refused:?}"
    );

    let mut authenticator = Authenticator::new();
    let cred = register(&rp, &mut authenticator);
    let mut authenticator = authenticator.user_present(false);
    let refused = try_login(&rp, &mut authenticator, &cred, ORIGIN);
    assert!(
        matches!(refused, Err(WebauthnError::UserNotPresent)),
        "{refused:?}"
    );
}

#[test]
fn a_counter_going_backwards_is_refused() {
    let rp = relying_party();
    let mut authenticator = Authenticator::new();
    let mut cred = register(&rp, &mut authenticator);
    for expected in 1..=2 {
        let result = login(&rp, &mut authenticator, &cred);
        assert_eq!(result.counter(), expected);
        cred.counter = result.counter();
    }
    assert_eq!(cred.counter, 2);

    // The next assertion carries 1 + 1 = 2, not above the stored 2.
    let id = URL_SAFE_NO_PAD.encode(&cred.cred_id);
    authenticator.set_counter(&id, 1);
    let refused = try_login(&rp, &mut authenticator, &cred, ORIGIN);
    assert!(
        matches!(refused, Err(WebauthnError::CredentialPossibleCompromise)),
        "{refused:?}"
    );

    // And one above it is accepted again.
    authenticator.set_counter(&id, 2);
    assert_eq!(login(&rp, &mut authenticator, &cred).counter(), 3);
}

#[test]
fn a_counter_that_stays_zero_is_accepted() {
    let rp = relying_party();
    let mut authenticator = Authenticator::new().counting(false);
    let mut cred = register(&rp, &mut authenticator);
    for _ in 0..3 {
        let result = login(&rp, &mut authenticator, &cred);
        assert_eq!(result.counter(), 0);
        cred.counter = result.counter();
    }
}

#[test]
fn none_attestation_is_accepted() {
    let rp = relying_party();
    let mut authenticator = Authenticator::new();
    let cred = register(&rp, &mut authenticator);
    assert_eq!(cred.attestation_format, AttestationFormat::None);
    assert!(matches!(cred.attestation.data, ParsedAttestationData::None));
}

#[test]
fn packed_self_attestation_is_accepted() {
    let rp = relying_party();
    let mut authenticator = Authenticator::new().packed_attestation(true);
    let cred = register(&rp, &mut authenticator);
    assert_eq!(cred.attestation_format, AttestationFormat::Packed);
    assert!(
        matches!(cred.attestation.data, ParsedAttestationData::Self_),
        "{:?}",
        cred.attestation.data
    );
    assert_eq!(login(&rp, &mut authenticator, &cred).counter(), 1);
}

#[test]
fn create_refuses_an_excluded_credential_it_holds() {
    let rp = relying_party();
    let mut authenticator = Authenticator::new();
    let cred = register(&rp, &mut authenticator);

    let (options, _) = start_registration(&rp, Some(vec![cred.cred_id.clone()]), None);
    assert_eq!(
        options["excludeCredentials"][0]["id"],
        authenticator.credential_ids()[0]
    );
    let refused = authenticator.create(&options, ORIGIN).unwrap_err();
    assert!(refused.starts_with("InvalidStateError"), "{refused}");
    assert_eq!(authenticator.credential_ids().len(), 1);

    // Another authenticator, which does not hold it, registers.
    let (options, state) = start_registration(&rp, Some(vec![cred.cred_id.clone()]), None);
    let response = Authenticator::new().create(&options, ORIGIN).unwrap();
    let response: RegisterPublicKeyCredential = serde_json::from_value(response).unwrap();
    rp.register_credential(&response, &state, None).unwrap();
}

#[test]
fn create_refuses_options_without_es256() {
    let rp = relying_party();
    let (options, _) = start_registration(&rp, None, Some(vec![COSEAlgorithm::RS256]));
    let refused = Authenticator::new().create(&options, ORIGIN).unwrap_err();
    assert!(refused.starts_with("NotSupportedError"), "{refused}");
}

#[test]
fn a_discoverable_login_returns_the_user_handle() {
    let rp = relying_party();
    let mut authenticator = Authenticator::new();
    let cred = register(&rp, &mut authenticator);

    let (options, mut state) = start_login(&rp, Vec::new());
    assert_eq!(options["allowCredentials"], serde_json::json!([]));
    let response = authenticator.get(&options, ORIGIN).unwrap();
    let response: PublicKeyCredential = serde_json::from_value(response).unwrap();
    assert_eq!(response.get_user_unique_id(), Some(USER_ID));
    assert_eq!(response.get_credential_id(), cred.cred_id.as_slice());

    // The server looks the user up by the handle, then allows their credentials.
    state.set_allowed_credentials(vec![cred]);
    let result = rp.authenticate_credential(&response, &state).unwrap();
    assert_eq!(result.counter(), 1);
}

#[test]
fn get_uses_the_allowed_credential() {
    let rp = relying_party();
    let mut authenticator = Authenticator::new();
    let older = register(&rp, &mut authenticator);
    let newer = register(&rp, &mut authenticator);
    assert_eq!(
        authenticator.credential_ids(),
        [
            URL_SAFE_NO_PAD.encode(&older.cred_id),
            URL_SAFE_NO_PAD.encode(&newer.cred_id)
        ]
    );

    let result = login(&rp, &mut authenticator, &newer);
    assert_eq!(result.cred_id(), &newer.cred_id);
    assert_eq!(result.counter(), 1);
    // Counters are per credential.
    assert_eq!(login(&rp, &mut authenticator, &older).counter(), 1);

    // Discoverable: the oldest.
    let (options, _) = start_login(&rp, Vec::new());
    let response = authenticator.get(&options, ORIGIN).unwrap();
    assert_eq!(response["id"], URL_SAFE_NO_PAD.encode(&older.cred_id));
}

#[test]
fn get_fails_without_a_fitting_credential() {
    let rp = relying_party();
    let mut authenticator = Authenticator::new();
    let cred = register(&rp, &mut authenticator);

    let (options, _) = start_login(&rp, vec![cred.clone()]);
    let refused = Authenticator::new().get(&options, ORIGIN).unwrap_err();
    assert!(refused.starts_with("NotAllowedError"), "{refused}");

    // Credentials are scoped to their rp id.
    let mut other_site = options.clone();
    other_site["rpId"] = "other.example".into();
    let refused = authenticator.get(&other_site, ORIGIN).unwrap_err();
    assert!(refused.starts_with("NotAllowedError"), "{refused}");

    // Without rpId the origin's host is the rp id.
    let mut no_rp_id = options;
    no_rp_id.as_object_mut().unwrap().remove("rpId");
    authenticator.get(&no_rp_id, ORIGIN).unwrap();
    let refused = authenticator
        .get(&no_rp_id, "https://other.example")
        .unwrap_err();
    assert!(refused.starts_with("NotAllowedError"), "{refused}");
}

#[test]
fn a_response_to_another_challenge_is_refused() {
    let rp = relying_party();
    let mut authenticator = Authenticator::new();
    let cred = register(&rp, &mut authenticator);
    let (options, _) = start_login(&rp, vec![cred.clone()]);
    let (_, other_state) = start_login(&rp, vec![cred]);
    let response = authenticator.get(&options, ORIGIN).unwrap();
    let response: PublicKeyCredential = serde_json::from_value(response).unwrap();
    let refused = rp.authenticate_credential(&response, &other_state);
    assert!(
        matches!(refused, Err(WebauthnError::MismatchedChallenge)),
        "{refused:?}"
    );
}

#[test]
fn backed_up_credentials_register_unless_refused() {
    let rp = relying_party();
    let mut synced = Authenticator::new().backed_up(true);
    let cred = register(&rp, &mut synced);
    assert!(cred.backup_eligible && cred.backup_state);
    let result = login(&rp, &mut synced, &cred);
    assert!(result.backup_eligible() && result.backup_state());

    // A server that wants hardware-bound keys refuses it.
    let builder = rp
        .new_challenge_register_builder(USER_ID, "a@b.c", "a@b.c")
        .unwrap()
        .user_verification_policy(UserVerificationPolicy::Required)
        .reject_synchronised_authenticators(true);
    let (challenge, state) = rp.generate_challenge_register(builder).unwrap();
    let response = synced
        .create(
            &public_key_options(serde_json::to_value(&challenge).unwrap()),
            ORIGIN,
        )
        .unwrap();
    let response: RegisterPublicKeyCredential = serde_json::from_value(response).unwrap();
    let refused = rp.register_credential(&response, &state, None);
    assert!(
        matches!(refused, Err(WebauthnError::CredentialMayNotBeHardwareBound)),
        "{refused:?}"
    );

    // Backup eligibility that changes after registration is refused.
    let mut unsynced = synced.backed_up(false);
    let refused = try_login(&rp, &mut unsynced, &cred, ORIGIN);
    assert!(
        matches!(
            refused,
            Err(WebauthnError::CredentialBackupEligibilityInconsistent)
        ),
        "{refused:?}"
    );
}

/// Not a property of the authenticator but of the library, pinned so that a
/// server relying on it notices: `authenticate_credential` ignores the
/// assertion's userHandle, so a server doing discoverable login must itself
/// check that the handle names the credential's owner.
#[test]
fn the_library_does_not_check_the_user_handle() {
    let rp = relying_party();
    let mut authenticator = Authenticator::new();
    let cred = register(&rp, &mut authenticator);
    let (options, state) = start_login(&rp, vec![cred]);
    let mut response = authenticator.get(&options, ORIGIN).unwrap();
    response["response"]["userHandle"] = URL_SAFE_NO_PAD.encode(b"someone-else").into();
    let response: PublicKeyCredential = serde_json::from_value(response).unwrap();
    rp.authenticate_credential(&response, &state)
        .expect("accepted despite another user's handle");
}
