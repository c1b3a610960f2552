//! Passkeys over real HTTP: the server on loopback and a software
//! authenticator (`auth_testkit::passkey`) speaking the JSON of
//! `@simplewebauthn/browser`.

use std::time::Duration;

use auth_module::events::Event;
use auth_testkit::passkey::Authenticator;
use serde_json::{Value, json};
use tokio::sync::broadcast::Receiver;

use crate::support::{EMAILPASS, Reply, TestServer, claims, sqlite_config};

const ORIGIN: &str = "https://shop.example";

fn providers() -> String {
    format!(
        r#"{EMAILPASS}
[[providers]]
resolve = "passkey"
id = "passkey"
[providers.options]
rpId = "shop.example"
rpName = "Shop"
origins = ["{ORIGIN}"]

[[providers]]
resolve = "passkey"
id = "passkey-strict"
[providers.options]
rpId = "shop.example"
origins = ["{ORIGIN}"]
userVerification = "required"
"#
    )
}

async fn server() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_toml(&sqlite_config(dir.path(), &providers())).await;
    (s, dir)
}

async fn request(
    s: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut rb = s.client.request(method, s.url(path));
    if let Some(token) = token {
        rb = rb.header("authorization", format!("Bearer {token}"));
    }
    if let Some(body) = body {
        rb = rb.json(&body);
    }
    Reply::of(rb.send().await.expect("request")).await
}

async fn post(s: &TestServer, path: &str, token: Option<&str>, body: Value) -> Reply {
    request(s, reqwest::Method::POST, path, token, Some(body)).await
}

/// The `options` of a 200 answer.
fn options(r: &Reply) -> Value {
    assert_eq!(r.status, 200, "options: {}", r.body);
    r.body["options"].clone()
}

fn assert_refused(r: &Reply, message: &str) {
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"type": "unauthorized", "message": message}),
        "{}",
        r.body
    );
}

/// Registers a new passkey identity for `email` at `provider` as a
/// customer: the registration's token.
async fn register(s: &TestServer, auth: &mut Authenticator, provider: &str, email: &str) -> String {
    let path = format!("/auth/customer/{provider}/register");
    let opts = options(&post(s, &path, None, json!({ "email": email })).await);
    let credential = auth
        .create(&opts, ORIGIN)
        .expect("the authenticator creates");
    let r = post(s, &path, None, json!({ "credential": credential })).await;
    assert_eq!(r.status, 200, "register: {}", r.body);
    r.token()
}

/// A login at `provider` (with `body` at its start): the callback's reply.
async fn login(s: &TestServer, auth: &mut Authenticator, provider: &str, body: Value) -> Reply {
    let opts = options(&post(s, &format!("/auth/customer/{provider}"), None, body).await);
    let credential = auth.get(&opts, ORIGIN).expect("the authenticator signs");
    post(
        s,
        &format!("/auth/customer/{provider}/callback"),
        None,
        json!({ "credential": credential }),
    )
    .await
}

fn identity_of(token: &str) -> String {
    claims(token)["auth_identity_id"]
        .as_str()
        .expect("auth_identity_id")
        .to_owned()
}

async fn next_event(rx: &mut Receiver<Event>, name: &str) -> Value {
    loop {
        let e = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("event in time")
            .expect("event");
        if e.name == name {
            return e.data;
        }
    }
}

/// A full token for `token`'s identity (linked to a customer).
async fn full_token(s: &TestServer, token: &str, customer: &str) -> String {
    s.service
        .module()
        .link_actor(&identity_of(token), "customer", customer)
        .await
        .unwrap();
    let r = s.post_bearer("/auth/token/refresh", token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let full = r.token();
    assert_eq!(claims(&full)["actor_id"], customer);
    full
}

#[tokio::test]
async fn register_then_log_in_username_less_and_with_an_email() {
    let (s, _dir) = server().await;
    let mut events = s.service.events().subscribe();
    let mut auth = Authenticator::new();

    let opts = options(
        &post(
            &s,
            "/auth/customer/passkey/register",
            None,
            json!({"email": " Ada@Shop.Example "}),
        )
        .await,
    );
    assert_eq!(opts["rp"], json!({"id": "shop.example", "name": "Shop"}));
    assert_eq!(opts["user"]["name"], "ada@shop.example");
    assert_eq!(opts["timeout"], 60000);
    assert_eq!(opts["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(
        opts["authenticatorSelection"]["userVerification"],
        "preferred"
    );
    let handle = opts["user"]["id"].as_str().unwrap().to_owned();
    assert!(!handle.contains('=') && !handle.contains("ada"), "{handle}");
    assert!(opts["challenge"].as_str().unwrap().len() >= 22);

    let credential = auth.create(&opts, ORIGIN).unwrap();
    let r = post(
        &s,
        "/auth/customer/passkey/register",
        None,
        json!({ "credential": credential }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.token();
    let c = claims(&token);
    assert_eq!(c["actor_id"], "", "a new identity's token is unregistered");
    assert_eq!(c["auth_provider"], "passkey");
    let id = identity_of(&token);
    let added = next_event(&mut events, "auth.passkey_added").await;
    assert_eq!(added["auth_identity_id"], id.as_str());

    // The entity id is the user handle, never the e-mail, which is kept
    // unverified in user_metadata.
    let identity = s
        .service
        .module()
        .identity_store()
        .retrieve_auth_identity(&id)
        .await
        .unwrap();
    let p = &identity.provider_identities[0];
    assert_eq!(p.provider, "passkey");
    assert_eq!(p.entity_id, handle);
    assert_eq!(
        p.user_metadata.as_ref().unwrap()["email"],
        "ada@shop.example"
    );
    assert!(
        p.user_metadata
            .as_ref()
            .unwrap()
            .get("email_verified")
            .is_none()
    );

    // Username-less: no credential listed, the authenticator picks its own.
    let opts = options(&post(&s, "/auth/customer/passkey", None, json!({})).await);
    assert!(
        opts["allowCredentials"]
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "{opts}"
    );
    let credential = auth.get(&opts, ORIGIN).unwrap();
    assert_eq!(credential["response"]["userHandle"], handle.as_str());
    let r = post(
        &s,
        "/auth/customer/passkey/callback",
        None,
        json!({ "credential": credential }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(identity_of(&r.token()), id);

    // With the e-mail: its credential is listed.
    let opts = options(
        &post(
            &s,
            "/auth/customer/passkey",
            None,
            json!({"email": "ADA@shop.example"}),
        )
        .await,
    );
    let listed = opts["allowCredentials"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], auth.credential_ids()[0].as_str());
    let r = login(
        &s,
        &mut auth,
        "passkey",
        json!({"email": "ada@shop.example"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(identity_of(&r.token()), id);

    // An unknown e-mail answers the same shape: one listed credential.
    let opts = options(
        &post(
            &s,
            "/auth/customer/passkey",
            None,
            json!({"email": "nobody@shop.example"}),
        )
        .await,
    );
    let listed = opts["allowCredentials"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["type"], "public-key");
    assert_ne!(listed[0]["id"], auth.credential_ids()[0].as_str());
    // ... stable per e-mail.
    let again = options(
        &post(
            &s,
            "/auth/customer/passkey",
            None,
            json!({"email": "nobody@shop.example"}),
        )
        .await,
    );
    assert_eq!(again["allowCredentials"], opts["allowCredentials"]);

    // The providers list names the flow.
    let r = request(
        &s,
        reqwest::Method::GET,
        "/auth/customer/providers",
        None,
        None,
    )
    .await;
    assert!(r.text.contains("\"challenge\""), "{}", r.body);
    s.stop().await;
}

#[tokio::test]
async fn replays_and_spent_or_foreign_challenges_are_refused() {
    let (s, _dir) = server().await;
    let mut auth = Authenticator::new();
    register(&s, &mut auth, "passkey", "bo@shop.example").await;

    let opts = options(&post(&s, "/auth/customer/passkey", None, json!({})).await);
    let credential = auth.get(&opts, ORIGIN).unwrap();
    let answer = json!({ "credential": credential });
    let r = post(&s, "/auth/customer/passkey/callback", None, answer.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The same assertion again: its challenge is spent.
    let r = post(&s, "/auth/customer/passkey/callback", None, answer).await;
    assert_refused(&r, "Challenge expired or already used");

    // A customer challenge answered as a user.
    let opts = options(&post(&s, "/auth/customer/passkey", None, json!({})).await);
    let credential = auth.get(&opts, ORIGIN).unwrap();
    let r = post(
        &s,
        "/auth/user/passkey/callback",
        None,
        json!({ "credential": credential }),
    )
    .await;
    assert_refused(&r, "Challenge expired or already used");

    // A challenge of one instance answered at another.
    let opts = options(&post(&s, "/auth/customer/passkey", None, json!({})).await);
    let credential = auth.get(&opts, ORIGIN).unwrap();
    let r = post(
        &s,
        "/auth/customer/passkey-strict/callback",
        None,
        json!({ "credential": credential }),
    )
    .await;
    assert_refused(&r, "Challenge expired or already used");

    // A registration challenge does not log in.
    let opts = options(
        &post(
            &s,
            "/auth/customer/passkey/register",
            None,
            json!({"email": "eve@shop.example"}),
        )
        .await,
    );
    let mut other = Authenticator::new();
    let created = other.create(&opts, ORIGIN).unwrap();
    let r = post(
        &s,
        "/auth/customer/passkey/callback",
        None,
        json!({ "credential": created }),
    )
    .await;
    assert_ne!(r.status, 200, "{}", r.body);
    s.stop().await;
}

#[tokio::test]
async fn wrong_origins_rp_ids_and_missing_verification_are_refused() {
    let (s, _dir) = server().await;
    let mut auth = Authenticator::new();
    register(&s, &mut auth, "passkey", "cy@shop.example").await;

    for (label, mut evil, origin) in [
        ("origin", Authenticator::new(), "https://evil.example"),
        (
            "rp id",
            Authenticator::new().rp_id_override("evil.example"),
            ORIGIN,
        ),
        ("presence", Authenticator::new().user_present(false), ORIGIN),
    ] {
        // Registration.
        let opts = options(
            &post(
                &s,
                "/auth/customer/passkey/register",
                None,
                json!({"email": "mallory@shop.example"}),
            )
            .await,
        );
        let created = evil.create(&opts, origin).unwrap();
        let r = post(
            &s,
            "/auth/customer/passkey/register",
            None,
            json!({ "credential": created }),
        )
        .await;
        assert_refused(&r, "Authentication failed");
        let _ = label;
    }

    // Login with the registered credential, from the wrong origin or rp id.
    let opts = options(&post(&s, "/auth/customer/passkey", None, json!({})).await);
    let credential = auth.get(&opts, "https://evil.example").unwrap();
    let r = post(
        &s,
        "/auth/customer/passkey/callback",
        None,
        json!({ "credential": credential }),
    )
    .await;
    assert_refused(&r, "Authentication failed");

    // userVerification "required" refuses an authenticator that did not
    // verify its user; "preferred" accepts it.
    let mut lax = Authenticator::new().user_verified(false);
    register(&s, &mut lax, "passkey", "dee@shop.example").await;
    let r = login(&s, &mut lax, "passkey", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let opts = options(
        &post(
            &s,
            "/auth/customer/passkey-strict/register",
            None,
            json!({"email": "dee@shop.example"}),
        )
        .await,
    );
    assert_eq!(
        opts["authenticatorSelection"]["userVerification"],
        "required"
    );
    let created = lax.create(&opts, ORIGIN).unwrap();
    let r = post(
        &s,
        "/auth/customer/passkey-strict/register",
        None,
        json!({ "credential": created }),
    )
    .await;
    assert_refused(&r, "Authentication failed");
    s.stop().await;
}

#[tokio::test]
async fn a_counter_going_backwards_is_refused_and_reported() {
    let (s, _dir) = server().await;
    let mut events = s.service.events().subscribe();
    let mut auth = Authenticator::new();
    let token = register(&s, &mut auth, "passkey", "fay@shop.example").await;
    for _ in 0..2 {
        let r = login(&s, &mut auth, "passkey", json!({})).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let id = auth.credential_ids()[0].clone();
    auth.set_counter(&id, 0);
    let r = login(&s, &mut auth, "passkey", json!({})).await;
    assert_refused(&r, "Authentication failed");
    let data = next_event(&mut events, "auth.passkey_clone_suspected").await;
    assert_eq!(data["auth_identity_id"], identity_of(&token).as_str());

    // Packed self-attestation is accepted as well as none.
    let mut packed = Authenticator::new().packed_attestation(true);
    register(&s, &mut packed, "passkey", "gus@shop.example").await;
    let r = login(&s, &mut packed, "passkey", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    s.stop().await;
}

#[tokio::test]
async fn malformed_bodies_are_400_naming_the_field() {
    let (s, _dir) = server().await;
    let cases = [
        ("/auth/customer/passkey/register", json!({}), "email"),
        (
            "/auth/customer/passkey/register",
            json!({"email": "not an email"}),
            "email",
        ),
        (
            "/auth/customer/passkey/register",
            json!({"credential": "x"}),
            "credential",
        ),
        (
            "/auth/customer/passkey/callback",
            json!({"credential": {"id": "abc", "rawId": "abc", "type": "public-key"}}),
            "credential.response",
        ),
        (
            "/auth/customer/passkey/callback",
            json!({"credential": {"id": "abc", "rawId": "abc", "type": "public-key",
                "response": {"clientDataJSON": "e30", "authenticatorData": "", "signature": ""}}}),
            "credential.response.clientDataJSON",
        ),
        ("/auth/customer/passkey", json!({"email": 7}), "email"),
    ];
    for (path, body, field) in cases {
        let r = post(&s, path, None, body.clone()).await;
        assert_eq!(r.status, 400, "{path} {body}: {}", r.body);
        assert_eq!(r.body["type"], "invalid_data", "{}", r.body);
        let message = r.body["message"].as_str().unwrap();
        assert!(message.starts_with(field), "{path} {body}: {message}");
    }
    s.stop().await;
}

#[tokio::test]
async fn passkeys_are_added_to_an_identity_listed_renamed_and_removed() {
    let (s, _dir) = server().await;
    let mut events = s.service.events().subscribe();
    // An emailpass customer adds a passkey with its bearer token.
    let token = s
        .register("hal@shop.example", "correct horse battery")
        .await;
    let full = full_token(&s, &token, "cus_hal").await;
    let opts = options(
        &post(
            &s,
            "/auth/customer/passkey/register",
            Some(&full),
            json!({}),
        )
        .await,
    );
    let created = Authenticator::new().create(&opts, ORIGIN).unwrap();
    // The answer must carry the same proof.
    let r = post(
        &s,
        "/auth/customer/passkey/register",
        None,
        json!({ "credential": created }),
    )
    .await;
    assert_refused(&r, "Authentication failed");
    let mut auth = Authenticator::new();
    let opts = options(
        &post(
            &s,
            "/auth/customer/passkey/register",
            Some(&full),
            json!({}),
        )
        .await,
    );
    let created = auth.create(&opts, ORIGIN).unwrap();
    let r = post(
        &s,
        "/auth/customer/passkey/register",
        Some(&full),
        json!({ "credential": created }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(identity_of(&r.token()), identity_of(&full));
    assert_eq!(claims(&r.token())["actor_id"], "cus_hal");
    // Adding a passkey is no new sign-in: the answer stays on the caller's
    // device, and the identity has no other.
    assert!(claims(&full)["device_id"].is_string());
    assert_eq!(claims(&r.token())["device_id"], claims(&full)["device_id"]);
    let devices = Reply::of(
        s.client
            .get(s.url("/auth/devices"))
            .bearer_auth(&full)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        devices.body["devices"].as_array().unwrap().len(),
        1,
        "{}",
        devices.body
    );
    // The account lists both ways to sign in, with no secret of either.
    let me = Reply::of(
        s.client
            .get(s.url("/auth/identity"))
            .bearer_auth(&full)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["auth_identity"]["id"], identity_of(&full).as_str());
    let mut providers: Vec<&str> = me.body["auth_identity"]["provider_identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["provider"].as_str().unwrap())
        .collect();
    providers.sort_unstable();
    assert_eq!(providers, ["emailpass", "passkey"]);
    assert!(!me.text.contains("provider_metadata"), "{}", me.text);
    assert!(!me.text.contains("$argon2"), "{}", me.text);

    // Its next registration excludes the credential it has.
    let opts = options(
        &post(
            &s,
            "/auth/customer/passkey/register",
            Some(&full),
            json!({}),
        )
        .await,
    );
    assert_eq!(
        opts["excludeCredentials"][0]["id"],
        auth.credential_ids()[0].as_str()
    );
    assert!(auth.create(&opts, ORIGIN).is_err(), "excluded");

    // The passkey logs the customer in.
    let r = login(&s, &mut auth, "passkey", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(claims(&r.token())["actor_id"], "cus_hal");

    // A password reset and a revoke (every token ended) keep the passkey.
    let reset = crate::reset::reset_token(&s, "customer", "hal@shop.example").await;
    let r = crate::reset::update(
        &s,
        "customer",
        &reset,
        json!({"password": "a different phrase"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    s.service
        .module()
        .identity_store()
        .bump_credential_version(&identity_of(&full))
        .await
        .unwrap();
    let r = request(
        &s,
        reqwest::Method::GET,
        "/auth/passkeys",
        Some(&full),
        None,
    )
    .await;
    assert_eq!(r.status, 401, "the revoked token: {}", r.body);
    let r = login(&s, &mut auth, "passkey", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let full = r.token();

    // Listed, renamed, removed (the password stays a way in).
    let r = request(
        &s,
        reqwest::Method::GET,
        "/auth/passkeys",
        Some(&full),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let list = r.body["passkeys"].as_array().unwrap().clone();
    assert_eq!(list.len(), 1);
    let pk = &list[0];
    assert_eq!(pk["name"], "Passkey");
    assert!(pk["last_used_at"].is_string(), "{pk}");
    assert_eq!(pk["backed_up"], false);
    assert!(pk["transports"].is_array());
    assert!(pk.get("credential").is_none());
    let pk_id = pk["id"].as_str().unwrap().to_owned();
    let r = request(
        &s,
        reqwest::Method::PATCH,
        &format!("/auth/passkeys/{pk_id}"),
        Some(&full),
        Some(json!({"name": "Work laptop"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["passkey"]["name"], "Work laptop");
    for bad in [json!({"name": ""}), json!({"name": 3}), json!({})] {
        let r = request(
            &s,
            reqwest::Method::PATCH,
            &format!("/auth/passkeys/{pk_id}"),
            Some(&full),
            Some(bad.clone()),
        )
        .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    // Not with an unregistered token, nor without one.
    let r = request(
        &s,
        reqwest::Method::GET,
        "/auth/passkeys",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = request(&s, reqwest::Method::GET, "/auth/passkeys", None, None).await;
    assert_eq!(r.status, 401, "{}", r.body);

    let r = request(
        &s,
        reqwest::Method::DELETE,
        &format!("/auth/passkeys/{pk_id}"),
        Some(&full),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["deleted"], true);
    let removed = next_event(&mut events, "auth.passkey_removed").await;
    assert_eq!(removed["passkey_id"], pk_id.as_str());
    let r = request(
        &s,
        reqwest::Method::DELETE,
        &format!("/auth/passkeys/{pk_id}"),
        Some(&full),
        None,
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = login(&s, &mut auth, "passkey", json!({})).await;
    assert_refused(&r, "Authentication failed");

    // A passkey-only identity keeps its last passkey.
    let mut only = Authenticator::new();
    let token = register(&s, &mut only, "passkey", "ivy@shop.example").await;
    let full = full_token(&s, &token, "cus_ivy").await;
    let r = request(
        &s,
        reqwest::Method::GET,
        "/auth/passkeys",
        Some(&full),
        None,
    )
    .await;
    let pk_id = r.body["passkeys"][0]["id"].as_str().unwrap().to_owned();
    let r = request(
        &s,
        reqwest::Method::DELETE,
        &format!("/auth/passkeys/{pk_id}"),
        Some(&full),
        None,
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"type": "not_allowed", "message": "Cannot remove the last way to sign in"})
    );
    // Another customer cannot touch it.
    let r = request(
        &s,
        reqwest::Method::PATCH,
        &format!("/auth/passkeys/{pk_id}"),
        Some(
            &full_token(
                &s,
                &s.register("jo@shop.example", "correct horse battery").await,
                "cus_jo",
            )
            .await,
        ),
        Some(json!({"name": "mine"})),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    s.stop().await;
}

#[tokio::test]
async fn a_passkey_is_an_mfa_factor() {
    let dir = tempfile::tempdir().unwrap();
    let mfa = "[mfa]\nencryption_key = \"an encryption key of at least 32 chars\"\n";
    let s =
        TestServer::start_toml(&sqlite_config(dir.path(), &format!("{mfa}{}", providers()))).await;
    let password = "correct horse battery";
    let token = s.register("kim@shop.example", password).await;
    let id = identity_of(&token);

    // Enrol: creation options, then the credential enables the factor.
    let r = post(
        &s,
        "/auth/mfa/factors",
        Some(&token),
        json!({"provider": "passkey"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["mfa_factor"]["provider"], "passkey");
    assert_eq!(r.body["mfa_factor"]["status"], "pending");
    assert!(r.body.get("secret").is_none(), "{}", r.body);
    let factor = r.body["mfa_factor"]["id"].as_str().unwrap().to_owned();
    let mut auth = Authenticator::new();
    let created = auth.create(&r.body["options"], ORIGIN).unwrap();
    // A code does not verify a passkey factor; a malformed credential is 400.
    let r = post(
        &s,
        &format!("/auth/mfa/factors/{factor}/verify"),
        Some(&token),
        json!({"code": "123456"}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = post(
        &s,
        &format!("/auth/mfa/factors/{factor}/verify"),
        Some(&token),
        json!({"credential": {"id": "x"}}),
    )
    .await;
    assert_eq!(
        (r.status, r.body["type"].as_str()),
        (400, Some("invalid_data")),
        "{}",
        r.body
    );
    let r = post(
        &s,
        &format!("/auth/mfa/factors/{factor}/verify"),
        Some(&token),
        json!({ "credential": created }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["mfa_factor"]["status"], "enabled");

    // A login owes the challenge, answerable by the passkey.
    let r = s.login("kim@shop.example", password).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["mfa_required"], true);
    let challenge = r.body["mfa_challenge"].clone();
    let step = r.token();
    assert!(
        challenge["methods"]
            .as_array()
            .unwrap()
            .contains(&json!("passkey")),
        "{challenge}"
    );
    let options = &challenge["passkey_options"];
    assert_eq!(
        options["allowCredentials"][0]["id"],
        auth.credential_ids()[0].as_str()
    );
    let asserted = auth.get(options, ORIGIN).unwrap();
    let path = format!(
        "/auth/mfa/challenges/{}/verify",
        challenge["id"].as_str().unwrap()
    );
    // Another authenticator's answer is refused; the challenge stays open.
    let mut stranger = Authenticator::new();
    register(&s, &mut stranger, "passkey", "stranger@shop.example").await;
    let mut foreign_options = options.clone();
    foreign_options["allowCredentials"] = json!([]);
    let foreign = stranger.get(&foreign_options, ORIGIN).unwrap();
    let r = post(
        &s,
        &path,
        Some(&step),
        json!({"method": "passkey", "credential": foreign}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = post(
        &s,
        &path,
        Some(&step),
        json!({"method": "passkey", "credential": asserted.clone()}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let full = r.token();
    assert!(
        claims(&full)["mfa_challenge_completed_at"].is_string(),
        "{}",
        claims(&full)
    );
    // The same assertion again, on a new challenge: refused.
    let r = s.login("kim@shop.example", password).await;
    let again = r.body["mfa_challenge"]["id"].as_str().unwrap().to_owned();
    let r = post(
        &s,
        &format!("/auth/mfa/challenges/{again}/verify"),
        Some(&r.token()),
        json!({"method": "passkey", "credential": asserted}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);

    // The factor's credential is not a way to sign in on its own.
    let r = login(&s, &mut auth, "passkey", json!({})).await;
    assert_refused(&r, "Authentication failed");

    // Disabling the factor forgets its credential.
    let store = s
        .service
        .module()
        .identity_store()
        .clone()
        .passkey_store()
        .unwrap();
    assert_eq!(store.list_passkeys(&id).await.unwrap().len(), 1);
    let r = request(
        &s,
        reqwest::Method::DELETE,
        &format!("/auth/mfa/factors/{factor}"),
        Some(&full),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["mfa_factor"]["status"], "disabled");
    assert!(store.list_passkeys(&id).await.unwrap().is_empty());
    s.stop().await;
}

#[tokio::test]
async fn options_count_as_starts_and_answers_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let limits = "[limits]\nredirect_starts_per_address = { count = 3, window = \"1m\" }\n";
    let s = TestServer::start_toml(&sqlite_config(
        dir.path(),
        &format!("{limits}{}", providers()),
    ))
    .await;
    // One registration (a start and its answer) and one login start: three
    // options answered, the fourth start is throttled.
    let mut auth = Authenticator::new();
    register(&s, &mut auth, "passkey", "lou@shop.example").await;
    let opts = options(&post(&s, "/auth/customer/passkey", None, json!({})).await);
    options(&post(&s, "/auth/customer/passkey", None, json!({})).await);
    // The answer to a start is not a start.
    let credential = auth.get(&opts, ORIGIN).unwrap();
    let r = post(
        &s,
        "/auth/customer/passkey/callback",
        None,
        json!({ "credential": credential }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for path in ["/auth/customer/passkey", "/auth/customer/passkey/register"] {
        let r = post(&s, path, None, json!({"email": "lou@shop.example"})).await;
        assert_eq!(r.status, 429, "{path}: {}", r.body);
        assert!(r.headers.get("retry-after").is_some());
    }
    s.stop().await;
}
