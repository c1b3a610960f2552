//! TOTP MFA (factors, recovery codes, login challenges, the gate) and
//! verification over real HTTP, against MEDUSA-2.21-AUTH.md §1, §4, §5, §7
//! and §8: exact statuses and bodies.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use auth_module::events::Event;
use auth_module::mfa::{Totp, TotpAlgorithm, base32_decode};
use serde_json::{Value, json};
use tokio::sync::broadcast::Receiver;

use crate::support::{EMAILPASS, Reply, TestServer, claims, now, sqlite_config};

const MFA_KEY: &str = "an MFA encryption key of at least 32 characters";
const PASSWORD: &str = "correct horse battery staple";
const GATE: &str = "MFA verification is required to complete this request";

/// The server's config: emailpass and `extra`, over SQLite in `dir` (the
/// default server store, whose MFA tables decide every spend atomically).
fn config(dir: &Path, extra: &str) -> String {
    sqlite_config(dir, &format!("{EMAILPASS}\n{extra}"))
}

/// An `[mfa]` section with the key and `options` (lines of that section).
fn mfa(options: &str) -> String {
    format!("[mfa]\nencryption_key = \"{MFA_KEY}\"\n{options}\n")
}

const VERIFY_EMAILS: &str = "[http.auth_verifications_per_actor]\n\
    customer = [{ entity_type = \"email\", auth_provider = \"emailpass\" }]\n";

async fn server(extra: &str) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_toml(&config(dir.path(), extra)).await;
    (s, dir)
}

fn err(kind: &str, message: &str) -> Value {
    json!({"type": kind, "message": message})
}

#[track_caller]
fn assert_err(r: &Reply, status: u16, kind: &str, message: &str) {
    assert_eq!(
        (r.status, &r.body),
        (status, &err(kind, message)),
        "{}",
        r.text
    );
}

#[track_caller]
fn assert_gate(r: &Reply) {
    assert_eq!((r.status, &r.body), (401, &json!({ "message": GATE })));
}

#[track_caller]
fn assert_keys(v: &Value, keys: &[&str]) {
    let mut got: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    got.sort_unstable();
    let mut want = keys.to_vec();
    want.sort_unstable();
    assert_eq!(got, want, "keys of {v}");
}

/// `2026-01-01T12:00:00.000Z`: ISO 8601, UTC, milliseconds.
#[track_caller]
fn assert_iso_millis(v: &Value) {
    let s = v.as_str().unwrap_or_else(|| panic!("not a string: {v}"));
    assert_eq!(s.len(), 24, "{s}");
    assert_eq!(&s[19..20], ".", "{s}");
    assert!(s.ends_with('Z'), "{s}");
    assert!(
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok(),
        "{s}"
    );
}

/// A request to `path` with an optional bearer token and JSON body.
fn request(
    s: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> impl Future<Output = Reply> + Send + use<> {
    let mut rb = s.client.request(method, s.url(path));
    if let Some(token) = token {
        rb = rb.header("authorization", format!("Bearer {token}"));
    }
    if let Some(body) = body {
        rb = rb.json(body);
    }
    async move { Reply::of(rb.send().await.expect("request")).await }
}

async fn post(s: &TestServer, path: &str, token: &str, body: Value) -> Reply {
    request(s, reqwest::Method::POST, path, Some(token), Some(&body)).await
}

async fn get(s: &TestServer, path: &str, token: Option<&str>) -> Reply {
    request(s, reqwest::Method::GET, path, token, None).await
}

async fn delete(s: &TestServer, path: &str, token: &str, body: Option<Value>) -> Reply {
    request(s, reqwest::Method::DELETE, path, Some(token), body.as_ref()).await
}

/// Registers `email` as a customer: its token and auth identity id.
async fn user(s: &TestServer, email: &str) -> (String, String) {
    let token = s.register(email, PASSWORD).await;
    let id = claims(&token)["auth_identity_id"]
        .as_str()
        .unwrap()
        .to_owned();
    (token, id)
}

/// A TOTP factor as an authenticator app holds it.
pub(crate) struct Factor {
    id: String,
    totp: Totp,
    /// The time step when it was created: the factor is verified with its
    /// code, a challenge with the next one (each step is accepted once).
    step: u64,
}

impl Factor {
    pub(crate) fn code(&self, offset: u64) -> String {
        self.totp.code_for_step(self.step + offset)
    }

    /// Six digits that are no code of this factor around now.
    fn wrong_code(&self) -> String {
        let near: Vec<String> = (self.step.saturating_sub(2)..=self.step + 3)
            .map(|st| self.totp.code_for_step(st))
            .collect();
        (0..)
            .map(|n: u32| format!("{:06}", n * 111_111 % 1_000_000))
            .find(|c| !near.contains(c))
            .unwrap()
    }
}

/// Creates a pending TOTP factor (checking the answer's shape).
async fn create_factor(s: &TestServer, token: &str) -> Factor {
    let r = post(s, "/auth/mfa/factors", token, json!({"provider": "totp"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["mfa_factor"]["status"], "pending");
    let secret = base32_decode(r.body["secret"].as_str().unwrap()).unwrap();
    let totp = Totp::new(secret, 6, 30, TotpAlgorithm::Sha1);
    Factor {
        id: r.body["mfa_factor"]["id"].as_str().unwrap().to_owned(),
        step: totp.step(now() as u64),
        totp,
    }
}

/// Creates and verifies a factor (with its step's code).
pub(crate) async fn enable(s: &TestServer, token: &str) -> Factor {
    let f = create_factor(s, token).await;
    let r = post(
        s,
        &format!("/auth/mfa/factors/{}/verify", f.id),
        token,
        json!({"code": f.code(0)}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["mfa_factor"]["status"], "enabled");
    f
}

async fn recovery_codes(s: &TestServer, token: &str, body: Value) -> Vec<String> {
    let r = post(s, "/auth/mfa/recovery-codes", token, body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_keys(&r.body, &["recovery_codes"]);
    r.body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect()
}

/// Logs `email` in, expecting an MFA challenge: (challenge, token).
async fn challenged(s: &TestServer, email: &str) -> (Value, String) {
    let r = s.login(email, PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_keys(&r.body, &["mfa_required", "mfa_challenge", "token"]);
    assert_eq!(r.body["mfa_required"], true);
    (r.body["mfa_challenge"].clone(), r.token())
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

fn answer(
    s: &TestServer,
    token: &str,
    challenge: &str,
    method: &str,
    code: &str,
) -> impl Future<Output = Reply> + Send + use<> {
    request(
        s,
        reqwest::Method::POST,
        &format!("/auth/mfa/challenges/{challenge}/verify"),
        Some(token),
        Some(&json!({"method": method, "code": code})),
    )
}

/// Logs `email` in, expecting a plain `{token}`.
async fn plain_login(s: &TestServer, email: &str) -> String {
    let r = s.login(email, PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_keys(&r.body, &["token"]);
    r.token()
}

/// The data of the next event named `name`.
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

/// How many events named `name` were emitted (once the bus is flushed).
async fn count_events(s: &TestServer, rx: &mut Receiver<Event>, name: &str) -> usize {
    s.service.events().flush().await;
    let mut n = 0;
    while let Ok(e) = rx.try_recv() {
        n += usize::from(e.name == name);
    }
    n
}

// ---------------------------------------------------------------------------
// 1. Without `[mfa]`; static paths are never logins.

#[tokio::test]
async fn without_a_key_mfa_is_refused_and_its_paths_are_never_logins() {
    let (s, _dir) = server("").await;
    let (token, _) = user(&s, "nokey@example.com").await;
    assert_eq!(claims(&token)["mfa_enabled"], false);
    let r = post(&s, "/auth/mfa/factors", &token, json!({"provider": "totp"})).await;
    assert_err(
        &r,
        400,
        "invalid_data",
        "MFA encryption key is required to use MFA methods",
    );
    let r = get(&s, "/auth/mfa/factors", Some(&token)).await;
    assert_eq!((r.status, r.body), (200, json!({"mfa_factors": []})));

    // §7: static paths beat `/auth/{actor}/{provider}`.
    let unauthorized = json!({"message": "Unauthorized"});
    for (method, path) in [
        (reqwest::Method::GET, "/auth/mfa/factors"),
        (reqwest::Method::POST, "/auth/mfa/factors"),
        (reqwest::Method::POST, "/auth/mfa/recovery-codes"),
        (reqwest::Method::POST, "/auth/verification/request"),
        (reqwest::Method::POST, "/auth/mfa/factors/authmfa_x/verify"),
        (reqwest::Method::DELETE, "/auth/mfa/factors/authmfa_x"),
        (
            reqwest::Method::POST,
            "/auth/mfa/challenges/authmfachal_x/verify",
        ),
    ] {
        let r = request(&s, method.clone(), path, None, Some(&json!({}))).await;
        assert_eq!((r.status, &r.body), (401, &unauthorized), "{method} {path}");
    }
    let r = request(
        &s,
        reqwest::Method::POST,
        "/auth/verification/confirm",
        None,
        Some(&json!({})),
    )
    .await;
    assert_err(
        &r,
        400,
        "invalid_data",
        "Invalid request: Field 'code' is required",
    );
    // Logins are unaffected.
    plain_login(&s, "nokey@example.com").await;
}

// ---------------------------------------------------------------------------
// 2. The whole flow.

#[tokio::test]
async fn full_flow_factor_recovery_codes_challenges_gate_and_disable() {
    let (s, _dir) = server(&mfa("")).await;
    let email = "flow@example.com";
    let (token, identity) = user(&s, email).await;
    let first = plain_login(&s, email).await;
    assert_eq!(claims(&first)["mfa_enabled"], false);
    let mut rx = s.service.events().subscribe();

    // Create: pending, the secret shown once, never in the factor.
    let r = post(
        &s,
        "/auth/mfa/factors",
        &token,
        json!({"provider": "totp", "label": "Phone"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_keys(&r.body, &["mfa_factor", "secret", "otpauth_url"]);
    let factor = &r.body["mfa_factor"];
    assert_keys(
        factor,
        &[
            "id",
            "auth_identity_id",
            "provider",
            "status",
            "metadata",
            "created_at",
            "updated_at",
            "deleted_at",
        ],
    );
    let factor_id = id_of(factor);
    assert!(factor_id.starts_with("authmfa_"), "{factor_id}");
    assert_eq!(factor["auth_identity_id"], identity.as_str());
    assert_eq!(factor["provider"], "totp");
    assert_eq!(factor["status"], "pending");
    assert_eq!(factor["metadata"], json!({"label": "Phone"}));
    assert_iso_millis(&factor["created_at"]);
    let secret = r.body["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 32, "20 bytes, base32 without padding");
    assert!(!secret.contains('='));
    let bytes = base32_decode(secret).unwrap();
    assert_eq!(bytes.len(), 20);
    let url = r.body["otpauth_url"].as_str().unwrap();
    assert!(url.starts_with("otpauth://totp/Medusa:Phone?"), "{url}");
    assert!(url.contains(&format!("secret={secret}")), "{url}");
    assert!(url.contains("issuer=Medusa"), "{url}");
    assert!(url.contains("algorithm=SHA1"), "{url}");
    let totp = Totp::new(bytes, 6, 30, TotpAlgorithm::Sha1);
    let f = Factor {
        id: factor_id.clone(),
        step: totp.step(now() as u64),
        totp,
    };

    let r = get(&s, "/auth/mfa/factors", Some(&token)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["mfa_factors"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["mfa_factors"][0]["status"], "pending");
    assert!(r.body["mfa_factors"][0].get("secret").is_none());

    // Verify: enabled; the same step is not accepted twice (§8).
    let verify = format!("/auth/mfa/factors/{factor_id}/verify");
    let r = post(&s, &verify, &token, json!({"code": f.code(0)})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_keys(&r.body, &["mfa_factor"]);
    assert_eq!(r.body["mfa_factor"]["status"], "enabled");
    assert_eq!(r.body["mfa_factor"]["id"], factor_id.as_str());
    assert_eq!(
        next_event(&mut rx, "auth.mfa_enabled").await,
        json!({"auth_identity_id": identity, "mfa_id": factor_id, "provider": "totp"})
    );
    let r = post(&s, &verify, &token, json!({"code": f.code(0)})).await;
    assert_err(&r, 400, "not_allowed", "Invalid TOTP code");

    // Recovery codes: 10, eight groups of four lowercase hex digits.
    let codes = recovery_codes(&s, &token, json!({})).await;
    assert_eq!(codes.len(), 10);
    for code in &codes {
        let groups: Vec<&str> = code.split('-').collect();
        assert_eq!(groups.len(), 8, "{code}");
        assert!(
            groups.iter().all(|g| g.len() == 4
                && g.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))),
            "{code}"
        );
    }
    let mut unique = codes.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 10);
    assert_eq!(
        next_event(&mut rx, "auth.mfa_recovery_codes_generated").await,
        json!({"auth_identity_id": identity, "count": 10})
    );

    // Login: a challenge and an actorless token that owes it.
    let (challenge, pending) = challenged(&s, email).await;
    assert_keys(
        &challenge,
        &[
            "id",
            "auth_identity_id",
            "auth_provider",
            "methods",
            "expires_at",
            "attempts",
            "max_attempts",
            "completed_at",
            "metadata",
        ],
    );
    let challenge_id = id_of(&challenge);
    assert!(challenge_id.starts_with("authmfachal_"), "{challenge_id}");
    assert_eq!(challenge["auth_identity_id"], identity.as_str());
    assert_eq!(challenge["auth_provider"], "emailpass");
    assert_eq!(challenge["methods"], json!(["totp", "recovery_code"]));
    assert_eq!(challenge["attempts"], 0);
    assert_eq!(challenge["max_attempts"], 5);
    assert_eq!(challenge["completed_at"], Value::Null);
    assert_eq!(challenge["metadata"], json!({}));
    assert_iso_millis(&challenge["expires_at"]);
    let c = claims(&pending);
    assert_eq!(c["actor_id"], "");
    assert_eq!(c["app_metadata"], json!({}));
    assert_eq!(c["auth_identity_id"], identity.as_str());
    assert_eq!(c["mfa_enabled"], true);
    assert_eq!(c["mfa_challenge_completed_at"], Value::Null);

    // The gate refuses the step token everywhere else.
    assert_gate(&get(&s, "/auth/mfa/factors", Some(&pending)).await);
    assert_gate(&post(&s, "/auth/mfa/recovery-codes", &pending, json!({})).await);
    assert_gate(
        &delete(
            &s,
            &format!("/auth/mfa/factors/{factor_id}"),
            &pending,
            None,
        )
        .await,
    );
    // A step token holds no session either (the table: MFA step tokens
    // may only answer their challenge and refresh).
    assert_gate(&s.post_bearer("/auth/session", &pending).await);
    assert_eq!(c["step"], "mfa");

    // Refresh of an actorless token re-runs the login: a new challenge.
    let r = s.post_bearer("/auth/token/refresh", &pending).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["mfa_required"], true);
    assert_ne!(r.body["mfa_challenge"]["id"], challenge_id.as_str());

    // The challenge, by TOTP (the next step: the factor's step is spent).
    let r = answer(&s, &pending, &challenge_id, "totp", &f.code(1)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_keys(&r.body, &["token"]);
    let done = r.token();
    let c = claims(&done);
    assert_eq!(c["mfa_enabled"], true);
    assert_iso_millis(&c["mfa_challenge_completed_at"]);
    assert_eq!(c["actor_id"], "");
    assert_eq!(c["actor_type"], "customer");
    assert_eq!(c["auth_identity_id"], identity.as_str());
    assert_eq!(c["auth_provider"], "emailpass");
    // Spent.
    let r = answer(&s, &pending, &challenge_id, "recovery_code", &codes[0]).await;
    assert_err(
        &r,
        400,
        "not_allowed",
        "MFA challenge has already been completed",
    );
    // The gate lets the completed token through.
    let r = get(&s, "/auth/mfa/factors", Some(&done)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["mfa_factors"][0]["status"], "enabled");

    // A second login, answered with a recovery code (trimmed, any case).
    let (challenge, pending) = challenged(&s, email).await;
    let typed = format!("  {}  ", codes[0].to_uppercase());
    let r = answer(&s, &pending, &id_of(&challenge), "recovery_code", &typed).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_keys(&r.body, &["token"]);
    assert_iso_millis(&claims(&r.token())["mfa_challenge_completed_at"]);
    // The same code again: single use.
    let (challenge, pending) = challenged(&s, email).await;
    assert_eq!(challenge["methods"], json!(["totp", "recovery_code"]));
    let r = answer(&s, &pending, &id_of(&challenge), "recovery_code", &codes[0]).await;
    assert_err(&r, 400, "not_allowed", "Invalid MFA challenge code");
    // Another one still works.
    let r = answer(&s, &pending, &id_of(&challenge), "recovery_code", &codes[1]).await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Disable (policy `session`: no code).
    let r = delete(&s, &format!("/auth/mfa/factors/{factor_id}"), &done, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_keys(&r.body, &["mfa_factor"]);
    assert_eq!(r.body["mfa_factor"]["status"], "disabled");
    assert_eq!(
        next_event(&mut rx, "auth.mfa_disabled").await,
        json!({"auth_identity_id": identity, "mfa_id": factor_id, "provider": "totp"})
    );
    let token = plain_login(&s, email).await;
    assert_eq!(claims(&token)["mfa_enabled"], false);
    let r = get(&s, "/auth/mfa/factors", Some(&token)).await;
    assert_eq!(r.body["mfa_factors"][0]["status"], "disabled");
    // The recovery codes went with the last factor (§8).
    let r = post(&s, "/auth/mfa/recovery-codes", &token, json!({})).await;
    assert_err(
        &r,
        400,
        "not_allowed",
        "Recovery codes require an enabled MFA factor",
    );
    // A disabled factor does not block a new one.
    let again = create_factor(&s, &token).await;
    assert_ne!(again.id, factor_id);
}

// ---------------------------------------------------------------------------
// 3. Error rows.

#[tokio::test]
async fn bodies_are_validated_strictly() {
    let (s, _dir) = server(&format!("{}{VERIFY_EMAILS}", mfa(""))).await;
    let (token, _) = user(&s, "strict@example.com").await;
    // Verification requests take a verification step token, challenges an
    // MFA step token (this one signed here: the identity has no factor).
    let step = s.login("strict@example.com", PASSWORD).await.token();
    let mut owed = claims(&token);
    owed["step"] = json!("mfa");
    owed["mfa_enabled"] = json!(true);
    let mfa_step = crate::support::sign(&owed, crate::support::SECRET);
    let factor = "/auth/mfa/factors/authmfa_x";
    let cases: Vec<(reqwest::Method, &str, Option<Value>, &str)> = vec![
        (
            reqwest::Method::POST,
            "/auth/mfa/factors",
            Some(json!({"provider": "totp", "a": 1, "b": 2})),
            "Unrecognized fields: 'a, b'",
        ),
        (
            reqwest::Method::POST,
            "/auth/mfa/factors",
            None,
            "Field 'provider' is required",
        ),
        (
            reqwest::Method::POST,
            "/auth/mfa/factors",
            Some(json!({"provider": 1})),
            "Expected type: 'string' for field 'provider', got: 'number'",
        ),
        (
            reqwest::Method::POST,
            "/auth/mfa/factors",
            Some(json!({"provider": "totp", "metadata": "x"})),
            "Expected type: 'object' for field 'metadata', got: 'string'",
        ),
        (
            reqwest::Method::POST,
            "/auth/mfa/factors/authmfa_x/verify",
            Some(json!({"code": "123456", "x": 1})),
            "Unrecognized fields: 'x'",
        ),
        (
            reqwest::Method::POST,
            "/auth/mfa/factors/authmfa_x/verify",
            Some(json!({})),
            "Field 'code' is required",
        ),
        (
            reqwest::Method::DELETE,
            factor,
            Some(json!({"z": true})),
            "Unrecognized fields: 'z'",
        ),
        (
            reqwest::Method::POST,
            "/auth/mfa/recovery-codes",
            Some(json!({"count": 0})),
            "Value for field 'count' too small, expected at least: '1'",
        ),
        (
            reqwest::Method::POST,
            "/auth/mfa/recovery-codes",
            Some(json!({"count": 51})),
            "Value for field 'count' too big, expected at most: '50'",
        ),
        (
            reqwest::Method::POST,
            "/auth/mfa/recovery-codes",
            Some(json!({"count": "3"})),
            "Expected type: 'number' for field 'count', got: 'string'",
        ),
        (
            reqwest::Method::POST,
            "/auth/mfa/recovery-codes",
            Some(json!({"count": 2.5})),
            "Expected type: 'integer' for field 'count', got: 'float'",
        ),
        (
            reqwest::Method::POST,
            "/auth/mfa/recovery-codes",
            Some(json!({"count": 0, "a": 1})),
            "Value for field 'count' too small, expected at least: '1'; Unrecognized fields: 'a'",
        ),
        (
            reqwest::Method::POST,
            "/auth/mfa/challenges/authmfachal_x/verify",
            Some(json!({"method": "totp"})),
            "Field 'code' is required",
        ),
        (
            reqwest::Method::POST,
            "/auth/mfa/challenges/authmfachal_x/verify",
            Some(json!({"x": 1})),
            "Field 'method' is required; Field 'code' is required; Unrecognized fields: 'x'",
        ),
        (
            reqwest::Method::POST,
            "/auth/verification/request",
            Some(json!({"entity_id": "a@b.c", "entity_type": "email", "c": 1, "d": 2})),
            "Unrecognized fields: 'c, d'",
        ),
        (
            reqwest::Method::POST,
            "/auth/verification/request",
            None,
            "Field 'entity_id' is required; Field 'entity_type' is required",
        ),
        (
            reqwest::Method::POST,
            "/auth/verification/confirm",
            Some(json!({"code": "x", "e": 1})),
            "Unrecognized fields: 'e'",
        ),
    ];
    for (method, path, body, message) in cases {
        let token = if path == "/auth/verification/request" {
            &step
        } else if path.starts_with("/auth/mfa/challenges/") {
            &mfa_step
        } else {
            &token
        };
        let r = request(&s, method.clone(), path, Some(token), body.as_ref()).await;
        assert_err(
            &r,
            400,
            "invalid_data",
            &format!("Invalid request: {message}"),
        );
    }
    // Unknown factor kind: 400, not 500 (§8).
    let r = post(&s, "/auth/mfa/factors", &token, json!({"provider": "sms"})).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["type"], "invalid_data");
}

#[tokio::test]
async fn factor_errors() {
    let (s, _dir) = server(&mfa("")).await;
    let (a, _) = user(&s, "factor-a@example.com").await;
    let (b, _) = user(&s, "factor-b@example.com").await;
    let f = create_factor(&s, &a).await;
    let active = "An active TOTP factor already exists for this auth identity";

    // A pending factor is active.
    let r = post(&s, "/auth/mfa/factors", &a, json!({"provider": "totp"})).await;
    assert_err(&r, 400, "not_allowed", active);
    // Recovery codes need an enabled factor: pending is not enough, none neither.
    for token in [&a, &b] {
        let r = post(&s, "/auth/mfa/recovery-codes", token, json!({"count": 3})).await;
        assert_err(
            &r,
            400,
            "not_allowed",
            "Recovery codes require an enabled MFA factor",
        );
    }

    // Another identity's factor, or none: 404.
    let not_found = |id: &str| format!("MFA factor with id \"{id}\" was not found");
    let verify = format!("/auth/mfa/factors/{}/verify", f.id);
    let r = post(&s, &verify, &b, json!({"code": f.code(0)})).await;
    assert_err(&r, 404, "not_found", &not_found(&f.id));
    let r = delete(&s, &format!("/auth/mfa/factors/{}", f.id), &b, None).await;
    assert_err(&r, 404, "not_found", &not_found(&f.id));
    let r = post(
        &s,
        "/auth/mfa/factors/authmfa_nope/verify",
        &a,
        json!({"code": "123456"}),
    )
    .await;
    assert_err(&r, 404, "not_found", &not_found("authmfa_nope"));
    let r = delete(&s, "/auth/mfa/factors/authmfa_nope", &a, None).await;
    assert_err(&r, 404, "not_found", &not_found("authmfa_nope"));
    let r = get(&s, "/auth/mfa/factors", Some(&b)).await;
    assert_eq!((r.status, r.body), (200, json!({"mfa_factors": []})));

    // Wrong codes.
    for code in [
        f.wrong_code(),
        "abcdef".to_owned(),
        "1234567".to_owned(),
        String::new(),
    ] {
        let r = post(&s, &verify, &a, json!({ "code": code })).await;
        assert_err(&r, 400, "not_allowed", "Invalid TOTP code");
    }
    // B's step does not matter to A's factor; the right code enables it.
    let r = post(&s, &verify, &a, json!({"code": f.code(0)})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["mfa_factor"]["status"], "enabled");
    let r = post(&s, "/auth/mfa/factors", &a, json!({"provider": "totp"})).await;
    assert_err(&r, 400, "not_allowed", active);
    let codes = recovery_codes(&s, &a, json!({"count": 3})).await;
    assert_eq!(codes.len(), 3);
    assert_eq!(recovery_codes(&s, &a, json!({"count": 50})).await.len(), 50);

    // Disabled: cannot be verified; disabling again changes nothing.
    let r = delete(
        &s,
        &format!("/auth/mfa/factors/{}", f.id),
        &a,
        Some(json!({})),
    )
    .await;
    assert_eq!(r.body["mfa_factor"]["status"], "disabled", "{}", r.text);
    let r = post(&s, &verify, &a, json!({"code": f.code(1)})).await;
    assert_err(
        &r,
        400,
        "not_allowed",
        "Disabled MFA factors cannot be verified",
    );
    let r = delete(&s, &format!("/auth/mfa/factors/{}", f.id), &a, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["mfa_factor"]["status"], "disabled");
}

#[tokio::test]
async fn challenge_errors() {
    let (s, _dir) = server(&mfa("")).await;
    let (a, _) = user(&s, "chal-a@example.com").await;
    let (b, _) = user(&s, "chal-b@example.com").await;
    let fa = enable(&s, &a).await;
    let fb = enable(&s, &b).await;

    let (ca, pa) = challenged(&s, "chal-a@example.com").await;
    let (cb, pb) = challenged(&s, "chal-b@example.com").await;
    // No recovery codes yet: TOTP only.
    assert_eq!(ca["methods"], json!(["totp"]));
    let ca = id_of(&ca);
    let cb = id_of(&cb);
    let not_found = |id: &str| format!("MFA challenge with id \"{id}\" was not found");

    // Another identity's challenge, or none: 404 (and nothing counted).
    let r = answer(&s, &pb, &ca, "totp", &fa.code(1)).await;
    assert_err(&r, 404, "not_found", &not_found(&ca));
    let r = answer(&s, &pa, "authmfachal_nope", "totp", &fa.code(1)).await;
    assert_err(&r, 404, "not_found", &not_found("authmfachal_nope"));
    // Methods not offered.
    for method in ["sms", "recovery_code"] {
        let r = answer(&s, &pa, &ca, method, "123456").await;
        assert_err(
            &r,
            400,
            "invalid_data",
            &format!("MFA challenge does not support method \"{method}\""),
        );
    }

    // B completes its challenge; a second answer is refused.
    let r = answer(&s, &pb, &cb, "totp", &fb.code(1)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = answer(&s, &pb, &cb, "totp", &fb.code(1)).await;
    assert_err(
        &r,
        400,
        "not_allowed",
        "MFA challenge has already been completed",
    );

    // A: four wrong codes, then the limit (5) holds, even for the right code.
    let wrong = fa.wrong_code();
    for _ in 0..4 {
        let r = answer(&s, &pa, &ca, "totp", &wrong).await;
        assert_err(&r, 400, "not_allowed", "Invalid MFA challenge code");
    }
    let too_many = "MFA challenge has too many failed attempts";
    let r = answer(&s, &pa, &ca, "totp", &wrong).await;
    assert_err(&r, 400, "not_allowed", too_many);
    let r = answer(&s, &pa, &ca, "totp", &fa.code(1)).await;
    assert_err(&r, 400, "not_allowed", too_many);
    // Counted per identity, across challenges (§8): a new login does not
    // bring five fresh guesses.
    let (again, pa2) = challenged(&s, "chal-a@example.com").await;
    assert!(again["attempts"].as_u64().unwrap() >= 5, "{again}");
    let r = answer(&s, &pa2, &id_of(&again), "totp", &fa.code(1)).await;
    assert_err(&r, 400, "not_allowed", too_many);
    // B is not affected.
    let (cb2, pb2) = challenged(&s, "chal-b@example.com").await;
    assert_eq!(cb2["attempts"], 0);
    let r = answer(&s, &pb2, &id_of(&cb2), "totp", &fb.wrong_code()).await;
    assert_err(&r, 400, "not_allowed", "Invalid MFA challenge code");
}

#[tokio::test]
async fn an_expired_challenge_is_refused() {
    let (s, _dir) = server(&mfa("challenge_ttl_seconds = 1")).await;
    let (a, _) = user(&s, "expired@example.com").await;
    let f = enable(&s, &a).await;
    let (c, p) = challenged(&s, "expired@example.com").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = answer(&s, &p, &id_of(&c), "totp", &f.code(1)).await;
    assert_err(&r, 400, "not_allowed", "MFA challenge has expired");
}

#[tokio::test]
async fn disable_policy_challenge_needs_a_current_code() {
    let (s, _dir) = server(&mfa("disable_policy = \"challenge\"")).await;
    let email = "policy@example.com";
    let (token, _) = user(&s, email).await;
    let f = enable(&s, &token).await;
    let codes = recovery_codes(&s, &token, json!({"count": 2})).await;
    let path = format!("/auth/mfa/factors/{}", f.id);

    let required = "MFA verification code is required to disable MFA";
    for body in [
        None,
        Some(json!({})),
        Some(json!({"method": "totp", "code": "  "})),
    ] {
        let r = delete(&s, &path, &token, body).await;
        assert_err(&r, 400, "invalid_data", required);
    }
    let r = delete(
        &s,
        &path,
        &token,
        Some(json!({"method": "totp", "code": f.wrong_code()})),
    )
    .await;
    assert_err(&r, 400, "not_allowed", "Invalid MFA verification code");
    let r = delete(
        &s,
        &path,
        &token,
        Some(json!({"method": "recovery_code", "code": "0000-0000-0000-0000-0000-0000-0000-0000"})),
    )
    .await;
    assert_err(&r, 400, "not_allowed", "Invalid MFA verification code");
    let r = delete(
        &s,
        &path,
        &token,
        Some(json!({"method": "sms", "code": "123456"})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["type"], "invalid_data");
    // Still enabled.
    let r = get(&s, "/auth/mfa/factors", Some(&token)).await;
    assert_eq!(r.body["mfa_factors"][0]["status"], "enabled");

    // A recovery code disables it (and is spent).
    let r = delete(
        &s,
        &path,
        &token,
        Some(json!({"method": "recovery_code", "code": codes[0]})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["mfa_factor"]["status"], "disabled");

    // A pending factor needs no code.
    let pending = create_factor(&s, &token).await;
    let r = delete(
        &s,
        &format!("/auth/mfa/factors/{}", pending.id),
        &token,
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["mfa_factor"]["status"], "disabled");

    // A TOTP code (method defaults to totp) disables an enabled one.
    let g = enable(&s, &token).await;
    let r = delete(
        &s,
        &format!("/auth/mfa/factors/{}", g.id),
        &token,
        Some(json!({"code": g.code(1)})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["mfa_factor"]["status"], "disabled");
    plain_login(&s, email).await;
}

// ---------------------------------------------------------------------------
// 4. Concurrency over HTTP.

async fn join_all<F: Future<Output = Reply> + Send + 'static>(futures: Vec<F>) -> Vec<Reply> {
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_code_verifies_a_factor_once_under_concurrency() {
    let (s, _dir) = server(&mfa("")).await;
    let (token, _) = user(&s, "race-factor@example.com").await;
    let f = create_factor(&s, &token).await;
    let mut rx = s.service.events().subscribe();
    let body = json!({"code": f.code(0)});
    let path = format!("/auth/mfa/factors/{}/verify", f.id);
    let replies = join_all(
        (0..20)
            .map(|_| request(&s, reqwest::Method::POST, &path, Some(&token), Some(&body)))
            .collect(),
    )
    .await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(
        ok,
        1,
        "{:?}",
        replies.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    for r in replies.iter().filter(|r| r.status != 200) {
        assert_err(r, 400, "not_allowed", "Invalid TOTP code");
    }
    assert_eq!(count_events(&s, &mut rx, "auth.mfa_enabled").await, 1);
}

/// Each answer on its own challenge (from its own login): the challenges'
/// compare-and-swap cannot hide a code spent twice, so exactly one success
/// proves the recovery code itself was spent once. The failure limit is
/// raised so that every answer really checks the code.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_recovery_code_is_spent_once_under_concurrency() {
    let (s, _dir) = server(&mfa("challenge_max_attempts = 100")).await;
    let email = "race-recovery@example.com";
    let (token, _) = user(&s, email).await;
    enable(&s, &token).await;
    let codes = recovery_codes(&s, &token, json!({"count": 1})).await;
    let mut logins = Vec::new();
    for _ in 0..20 {
        let (c, p) = challenged(&s, email).await;
        assert_eq!(c["methods"], json!(["totp", "recovery_code"]));
        logins.push((id_of(&c), p));
    }
    let replies = join_all(
        logins
            .iter()
            .map(|(c, p)| answer(&s, p, c, "recovery_code", &codes[0]))
            .collect(),
    )
    .await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(
        ok,
        1,
        "{:?}",
        replies.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    for r in replies.iter().filter(|r| r.status != 200) {
        assert_err(r, 400, "not_allowed", "Invalid MFA challenge code");
    }
    // None left: a new challenge no longer offers recovery codes.
    let (c, _) = challenged(&s, email).await;
    assert_eq!(c["methods"], json!(["totp"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_failure_limit_holds_exactly_under_concurrency() {
    let (s, _dir) = server(&mfa("")).await;
    let email = "race-limit@example.com";
    let (token, _) = user(&s, email).await;
    let f = enable(&s, &token).await;
    let (c, p) = challenged(&s, email).await;
    let c = id_of(&c);
    let wrong = f.wrong_code();
    let replies = join_all(
        (0..20)
            .map(|_| answer(&s, &p, &c, "totp", &wrong))
            .collect(),
    )
    .await;
    let message = |r: &Reply| {
        assert_eq!(
            (r.status, &r.body["type"]),
            (400, &json!("not_allowed")),
            "{}",
            r.text
        );
        r.body["message"].as_str().unwrap().to_owned()
    };
    let invalid = replies
        .iter()
        .filter(|r| message(r) == "Invalid MFA challenge code")
        .count();
    let too_many = replies
        .iter()
        .filter(|r| message(r) == "MFA challenge has too many failed attempts")
        .count();
    assert_eq!((invalid, too_many), (4, 16));
    let r = answer(&s, &p, &c, "totp", &f.code(1)).await;
    assert_err(
        &r,
        400,
        "not_allowed",
        "MFA challenge has too many failed attempts",
    );
}

// ---------------------------------------------------------------------------
// 5. Verification.

async fn ask_verification(s: &TestServer, token: &str, email: &str) -> Reply {
    post(
        s,
        "/auth/verification/request",
        token,
        json!({"entity_id": email, "entity_type": "email"}),
    )
    .await
}

async fn confirm(s: &TestServer, body: Value) -> Reply {
    request(
        s,
        reqwest::Method::POST,
        "/auth/verification/confirm",
        None,
        Some(&body),
    )
    .await
}

#[tokio::test]
async fn verification_flow() {
    let (s, _dir) = server(VERIFY_EMAILS).await;
    let email = "verify@example.com";
    let (_, identity) = user(&s, email).await;

    // Before any request: no `verification` key.
    let r = s.login(email, PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_keys(&r.body, &["verification_required", "token"]);
    assert_eq!(r.body["verification_required"], true);
    let token = r.token();
    let c = claims(&token);
    assert_eq!(c["actor_id"], "");
    assert_eq!(c["mfa_enabled"], false);
    assert_eq!(c["mfa_challenge_completed_at"], Value::Null);

    // Request: 201 with the row; the code only in the event.
    let mut rx = s.service.events().subscribe();
    let r = post(
        &s,
        "/auth/verification/request",
        &token,
        json!({"entity_id": email, "entity_type": "email", "metadata": {"locale": "fr"}}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_keys(&r.body, &["verification"]);
    let row = r.body["verification"].clone();
    assert_keys(
        &row,
        &[
            "id",
            "auth_identity_id",
            "entity_id",
            "entity_type",
            "code_provider",
            "requested_at",
            "verified_at",
            "metadata",
            "created_at",
            "updated_at",
            "deleted_at",
        ],
    );
    let row_id = id_of(&row);
    assert!(row_id.starts_with("authver_"), "{row_id}");
    assert_eq!(row["auth_identity_id"], identity.as_str());
    assert_eq!(row["entity_id"], email);
    assert_eq!(row["entity_type"], "email");
    assert_eq!(row["code_provider"], "token");
    assert_eq!(row["verified_at"], Value::Null);
    assert_eq!(row["metadata"], json!({"locale": "fr"}));
    assert_iso_millis(&row["requested_at"]);
    let event = next_event(&mut rx, "auth.verification_requested").await;
    assert_keys(
        &event,
        &[
            "entity_id",
            "entity_type",
            "code_provider",
            "auth_identity_id",
            "code",
            "expires_at",
            "metadata",
        ],
    );
    assert_eq!(event["entity_id"], email);
    assert_eq!(event["auth_identity_id"], identity.as_str());
    assert_eq!(event["code_provider"], "token");
    assert_iso_millis(&event["expires_at"]);
    let first_code = event["code"].as_str().unwrap().to_owned();
    assert!(!r.text.contains(&first_code));

    // Login now carries the row.
    let r = s.login(email, PASSWORD).await;
    assert_keys(&r.body, &["verification_required", "verification", "token"]);
    assert_eq!(r.body["verification"]["id"], row_id.as_str());
    assert_eq!(r.body["verification"]["verified_at"], Value::Null);

    // A new request replaces the code (same row).
    let r = ask_verification(&s, &token, email).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["verification"]["id"], row_id.as_str());
    let code = next_event(&mut rx, "auth.verification_requested").await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(code, first_code);
    let invalid = "Verification code is invalid or already used";
    assert_err(
        &confirm(&s, json!({ "code": first_code })).await,
        400,
        "not_allowed",
        invalid,
    );

    // Wrong code; unknown code provider.
    assert_err(
        &confirm(&s, json!({"code": "not-a-code"})).await,
        400,
        "not_allowed",
        invalid,
    );
    let r = confirm(&s, json!({"code": code, "code_provider": "sms"})).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["type"], "invalid_data");

    // Confirm: no authentication needed.
    let r = confirm(&s, json!({"code": code, "code_provider": "token"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_keys(
        &r.body,
        &["entity_id", "entity_type", "code_provider", "verified_at"],
    );
    assert_eq!(r.body["entity_id"], email);
    assert_eq!(r.body["entity_type"], "email");
    assert_eq!(r.body["code_provider"], "token");
    assert_iso_millis(&r.body["verified_at"]);
    let verified_at = r.body["verified_at"].clone();
    assert_err(
        &confirm(&s, json!({ "code": code })).await,
        400,
        "not_allowed",
        invalid,
    );

    // Login: a plain token now.
    plain_login(&s, email).await;
    // Refresh of the actorless token re-runs the steps: now a plain token.
    let r = s.post_bearer("/auth/token/refresh", &token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_keys(&r.body, &["token"]);

    // A request after verification: the verified row, unchanged, no code.
    count_events(&s, &mut rx, "").await;
    let r = ask_verification(&s, &token, email).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["verification"]["id"], row_id.as_str());
    assert_eq!(r.body["verification"]["verified_at"], verified_at);
    assert_eq!(
        count_events(&s, &mut rx, "auth.verification_requested").await,
        0
    );

    // Three requests so far; the sixth within the hour is refused.
    for _ in 0..2 {
        assert_eq!(ask_verification(&s, &token, email).await.status, 201);
    }
    let r = ask_verification(&s, &token, email).await;
    assert_eq!(
        (r.status, &r.body),
        (
            429,
            &err("not_allowed", "Too many attempts, try again later")
        ),
        "{}",
        r.text
    );
    assert_eq!(r.headers["retry-after"], "3600");
    // Per entity: another entity id is not throttled.
    let r = ask_verification(&s, &token, "other@example.com").await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[tokio::test]
async fn verification_comes_before_mfa() {
    let (s, _dir) = server(&format!("{}{VERIFY_EMAILS}", mfa(""))).await;
    let email = "both@example.com";
    let (token, _) = user(&s, email).await;
    // The registration token is not gated: MFA can be set up with it.
    let f = enable(&s, &token).await;
    let r = s.login(email, PASSWORD).await;
    assert_keys(&r.body, &["verification_required", "token"]);
    assert_eq!(claims(&r.token())["mfa_enabled"], false);

    let mut rx = s.service.events().subscribe();
    assert_eq!(ask_verification(&s, &r.token(), email).await.status, 201);
    let code = next_event(&mut rx, "auth.verification_requested").await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(confirm(&s, json!({ "code": code })).await.status, 200);

    let (c, p) = challenged(&s, email).await;
    let r = answer(&s, &p, &id_of(&c), "totp", &f.code(1)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        get(&s, "/auth/mfa/factors", Some(&r.token())).await.status,
        200
    );
}

/// The host's own routes behind `RequireAuthLayer`: the MFA gate is on by
/// default, and `mfa_max_age` refuses a challenge completed too long ago.
#[tokio::test]
async fn host_routes_apply_the_gate_and_a_step_up_age() {
    use auth_http::{AuthContext, AuthPolicy, RequireAuthLayer};

    let dir = tempfile::tempdir().unwrap();
    let config = auth_server::AppConfig::from_toml_str(&config(dir.path(), &mfa(""))).unwrap();
    let app = auth_server::build_app(config).await.unwrap();
    let service = app.service.clone();
    let me = |ctx: AuthContext| async move { ctx.auth_identity_id };
    let router = axum::Router::new()
        .route("/store/me", axum::routing::get(me))
        .layer(RequireAuthLayer::new(
            service.clone(),
            AuthPolicy::any_actor().allow_unregistered(true),
        ))
        .merge(
            axum::Router::new()
                .route("/store/payout", axum::routing::get(me))
                .layer(RequireAuthLayer::new(
                    service.clone(),
                    AuthPolicy::any_actor()
                        .allow_unregistered(true)
                        .mfa_max_age(Duration::from_secs(300)),
                )),
        )
        .merge(
            axum::Router::new()
                .route("/store/ungated", axum::routing::get(me))
                .layer(RequireAuthLayer::new(
                    service.clone(),
                    #[allow(deprecated)]
                    AuthPolicy::any_actor()
                        .allow_unregistered(true)
                        .mfa_gate(false),
                )),
        )
        .merge(app.router);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let client = reqwest::Client::new();
    let call = |path: &'static str, token: String| {
        let req = client
            .get(format!("http://{addr}{path}"))
            .bearer_auth(token);
        async move { Reply::of(req.send().await.unwrap()).await }
    };
    let r = client
        .post(format!("http://{addr}/auth/customer/emailpass/register"))
        .json(&json!({"email": "host@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let token = Reply::of(r).await.token();
    let base = claims(&token);
    let with = |enabled: bool, completed: Option<String>| {
        let mut c = base.clone();
        c["mfa_enabled"] = json!(enabled);
        c["mfa_challenge_completed_at"] = json!(completed);
        crate::support::sign(&c, crate::support::SECRET)
    };
    let iso = |secs_ago: i64| {
        let t = time::OffsetDateTime::now_utc() - time::Duration::seconds(secs_ago);
        auth_module::flows::iso_millis(t)
    };

    // Without MFA: every route admits the caller; no step-up applies.
    for path in ["/store/me", "/store/payout", "/store/ungated"] {
        assert_eq!(call(path, with(false, None)).await.status, 200, "{path}");
    }
    // A login that still owes its challenge: gated everywhere; the old
    // opt-out no longer lets a step token through.
    for path in ["/store/me", "/store/payout", "/store/ungated"] {
        assert_gate(&call(path, with(true, None)).await);
    }
    // A recent completion passes everywhere; an old one only where no
    // step-up age is asked.
    assert_eq!(
        call("/store/payout", with(true, Some(iso(10))))
            .await
            .status,
        200
    );
    assert_eq!(
        call("/store/me", with(true, Some(iso(3600)))).await.status,
        200
    );
    let r = call("/store/payout", with(true, Some(iso(3600)))).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.body,
        json!({"message": "MFA was verified too long ago to complete this request"})
    );
    server.abort();
}

/// `1.0` is the integer 1, as JavaScript numbers are.
#[tokio::test]
async fn a_whole_float_count_is_an_integer() {
    let (s, _dir) = server(&mfa("")).await;
    let (token, _) = user(&s, "float@example.com").await;
    enable(&s, &token).await;
    let codes = recovery_codes(&s, &token, json!({"count": 3.0})).await;
    assert_eq!(codes.len(), 3);
    let r = post(
        &s,
        "/auth/mfa/recovery-codes",
        &token,
        json!({"count": 50.0}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// `register` always answers `{token}`; a repeated registration of an
/// identity with an enabled factor says so, and that token owes a challenge.
#[tokio::test]
async fn a_repeated_registration_says_mfa_is_on_and_is_gated() {
    let (s, _dir) = server(&mfa("")).await;
    let (token, _) = user(&s, "again@example.com").await;
    assert_eq!(claims(&token)["mfa_enabled"], false);
    enable(&s, &token).await;
    let again = s.register("again@example.com", PASSWORD).await;
    let c = claims(&again);
    assert_eq!(c["mfa_enabled"], true, "{c}");
    assert_eq!(c["mfa_challenge_completed_at"], Value::Null);
    assert_gate(&get(&s, "/auth/mfa/factors", Some(&again)).await);
}
