//! What each credential may do: one table, pinned here and in the README,
//! checked over HTTP against every route the router serves
//! ([`auth_http::routes`]), so a new route without a row fails this test.
//!
//! Every credential is made the way clients get it (register, login, the
//! verification and MFA steps, a reset event, a session), except where said.

use std::collections::BTreeSet;

use auth_http::{AuthContext, AuthPolicy, RequireAuthLayer};
use auth_module::events::Event;
use serde_json::{Value, json};

use crate::support::{EMAILPASS, Reply, sqlite_config};

const PASSWORD: &str = "a long enough password";
const MFA_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// The credential kinds of the table (and no credential at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Nothing,
    Full,
    FullSession,
    Unregistered,
    UnregisteredSession,
    VerificationStep,
    MfaStep,
    Reset,
    Stale,
    StaleSession,
}

const KINDS: [Kind; 10] = [
    Kind::Nothing,
    Kind::Full,
    Kind::FullSession,
    Kind::Unregistered,
    Kind::UnregisteredSession,
    Kind::VerificationStep,
    Kind::MfaStep,
    Kind::Reset,
    Kind::Stale,
    Kind::StaleSession,
];

/// Who may call a route.
#[derive(Debug, Clone, Copy)]
enum Access {
    /// Anyone: the credential changes nothing.
    Public,
    /// Exactly these kinds.
    Only(&'static [Kind]),
}

use Kind::*;

const FULL: &[Kind] = &[Full, FullSession];
const FULL_OR_UNREGISTERED: &[Kind] = &[Full, FullSession, Unregistered, UnregisteredSession];

/// The table, by route: `(method, path as the router names it, path to
/// call, body, access)`.
fn rows() -> Vec<(
    &'static str,
    &'static str,
    &'static str,
    Option<Value>,
    Access,
)> {
    let bearer_full_or_unregistered: &'static [Kind] = &[Full, Unregistered];
    vec![
        (
            "POST",
            "/auth/token/refresh",
            "/auth/token/refresh",
            None,
            Access::Only(&[
                Full,
                FullSession,
                Unregistered,
                UnregisteredSession,
                VerificationStep,
                MfaStep,
            ]),
        ),
        (
            "POST",
            "/auth/session",
            "/auth/session",
            None,
            Access::Only(bearer_full_or_unregistered),
        ),
        (
            // Ends the session the cookie names, whatever it holds.
            "DELETE",
            "/auth/session",
            "/auth/session",
            None,
            Access::Only(&[FullSession, UnregisteredSession, StaleSession]),
        ),
        (
            "GET",
            "/auth/{actor}/providers",
            "/auth/user/providers",
            None,
            Access::Public,
        ),
        (
            "POST",
            "/auth/{actor}/user",
            "/auth/emailpass/user",
            None,
            Access::Only(bearer_full_or_unregistered),
        ),
        (
            "GET",
            "/auth/mfa/factors",
            "/auth/mfa/factors",
            None,
            Access::Only(FULL_OR_UNREGISTERED),
        ),
        (
            "POST",
            "/auth/mfa/factors",
            "/auth/mfa/factors",
            Some(json!({"provider": "sms"})),
            Access::Only(FULL_OR_UNREGISTERED),
        ),
        (
            "DELETE",
            "/auth/mfa/factors/{id}",
            "/auth/mfa/factors/authmfa_none",
            None,
            Access::Only(FULL_OR_UNREGISTERED),
        ),
        (
            "POST",
            "/auth/mfa/factors/{id}/verify",
            "/auth/mfa/factors/authmfa_none/verify",
            Some(json!({"code": "000000"})),
            Access::Only(FULL_OR_UNREGISTERED),
        ),
        (
            "POST",
            "/auth/mfa/recovery-codes",
            "/auth/mfa/recovery-codes",
            None,
            Access::Only(FULL_OR_UNREGISTERED),
        ),
        (
            "POST",
            "/auth/mfa/challenges/{id}/verify",
            "/auth/mfa/challenges/authmfachal_none/verify",
            Some(json!({"method": "totp", "code": "000000"})),
            Access::Only(&[Full, FullSession, MfaStep]),
        ),
        (
            "GET",
            "/auth/passkeys",
            "/auth/passkeys",
            None,
            Access::Only(FULL),
        ),
        (
            "PATCH",
            "/auth/passkeys/{id}",
            "/auth/passkeys/authpk_none",
            Some(json!({"name": "laptop"})),
            Access::Only(FULL),
        ),
        (
            "DELETE",
            "/auth/passkeys/{id}",
            "/auth/passkeys/authpk_none",
            None,
            Access::Only(FULL),
        ),
        (
            "GET",
            "/auth/devices",
            "/auth/devices",
            None,
            Access::Only(FULL),
        ),
        (
            "GET",
            "/auth/identity",
            "/auth/identity",
            None,
            Access::Only(FULL),
        ),
        (
            "DELETE",
            "/auth/devices/{id}",
            "/auth/devices/authdev_none",
            None,
            Access::Only(FULL),
        ),
        (
            "DELETE",
            "/auth/devices",
            "/auth/devices?other=true",
            None,
            Access::Only(FULL),
        ),
        (
            "POST",
            "/auth/token/revoke",
            "/auth/token/revoke",
            None,
            Access::Only(&[Full, Unregistered]),
        ),
        (
            "POST",
            "/auth/verification/request",
            "/auth/verification/request",
            Some(json!({"entity_id": "x@example.com", "entity_type": "email"})),
            Access::Only(&[Full, FullSession, VerificationStep]),
        ),
        (
            "POST",
            "/auth/verification/confirm",
            "/auth/verification/confirm",
            Some(json!({"code": "not-a-code"})),
            Access::Public,
        ),
        (
            "GET",
            "/auth/{actor}/{provider}",
            "/auth/user/emailpass",
            None,
            Access::Public,
        ),
        (
            "POST",
            "/auth/{actor}/{provider}",
            "/auth/user/emailpass",
            Some(json!({"email": "nobody@example.com", "password": "wrong password"})),
            Access::Public,
        ),
        (
            "POST",
            "/auth/{actor}/{provider}/register",
            "/auth/user/emailpass/register",
            Some(json!({"email": "full@example.com", "password": "another password"})),
            Access::Public,
        ),
        (
            "POST",
            "/auth/{actor}/{provider}/reset-password",
            "/auth/user/emailpass/reset-password",
            Some(json!({"identifier": "nobody@example.com"})),
            Access::Public,
        ),
        (
            // A body without a password: allowed callers get the provider's
            // refusal and the reset token stays usable.
            "POST",
            "/auth/{actor}/{provider}/update",
            "/auth/user/emailpass/update",
            Some(json!({})),
            Access::Only(&[Reset]),
        ),
        (
            "GET",
            "/auth/{actor}/{provider}/callback",
            "/auth/user/emailpass/callback",
            None,
            Access::Public,
        ),
        (
            "POST",
            "/auth/{actor}/{provider}/callback",
            "/auth/user/emailpass/callback",
            None,
            Access::Public,
        ),
        (
            "GET",
            "/.well-known/jwks.json",
            "/.well-known/jwks.json",
            None,
            Access::Public,
        ),
        (
            "GET",
            "/openapi.json",
            "/openapi.json",
            None,
            Access::Public,
        ),
        ("GET", "/health", "/health", None, Access::Public),
        ("GET", "/ready", "/ready", None, Access::Public),
    ]
}

/// Whether `r` is the gate's refusal (not some other answer of an allowed
/// caller, such as a 404 for an unknown factor).
fn refused(r: &Reply) -> bool {
    let message = r.body["message"].as_str().unwrap_or_default();
    r.status == 401
        && (r.body == json!({"message": "Unauthorized"})
            || message == "MFA verification is required to complete this request"
            || message == "Invalid token")
}

struct Harness {
    addr: std::net::SocketAddr,
    client: reqwest::Client,
    service: auth_http::AuthService,
    server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        // Verification is owed through `emailpass2` only, so `emailpass`
        // logins of identities without MFA end in full or unregistered tokens.
        let extra = format!(
            "{EMAILPASS}[[providers]]\nresolve = \"emailpass\"\nid = \"emailpass2\"\n[providers.options]\npassword_policy = {{ min_length = 1, reject_common = false }}\n\
             [mfa]\nencryption_key = \"{MFA_KEY}\"\n\
             [http.auth_verifications_per_actor]\n\
             user = [{{ entity_type = \"email\", auth_provider = \"emailpass2\" }}]\n\
             [limits]\n\
             login_per_identifier_and_address = {{ count = 0 }}\n\
             login_per_identifier = {{ count = 0 }}\n\
             login_per_address = {{ count = 0 }}\n\
             register_per_address = {{ count = 0 }}\n\
             update_failures_per_address = {{ count = 0 }}\n\
             verification_requests = {{ count = 0 }}\n"
        );
        let config =
            auth_server::AppConfig::from_toml_str(&sqlite_config(dir.path(), &extra)).unwrap();
        let app = auth_server::build_app(config).await.unwrap();
        let service = app.service.clone();
        let me = |ctx: AuthContext| async move { ctx.auth_identity_id };
        let router = axum::Router::new()
            .route("/host/registered", axum::routing::get(me))
            .layer(RequireAuthLayer::new(
                service.clone(),
                AuthPolicy::any_actor(),
            ))
            .merge(
                axum::Router::new()
                    .route("/host/any", axum::routing::get(me))
                    .layer(RequireAuthLayer::new(
                        service.clone(),
                        AuthPolicy::any_actor().allow_unregistered(true),
                    )),
            )
            .merge(app.router);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Harness {
            addr,
            client: reqwest::Client::new(),
            service,
            server,
            _dir: dir,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<&Value>, cred: &Cred) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .client
            .request(method, format!("http://{}{path}", self.addr));
        if let Some(body) = body {
            req = req.json(body);
        }
        req = match cred {
            Cred::None => req,
            Cred::Bearer(t) => req.bearer_auth(t),
            Cred::Cookie(c) => req.header("cookie", c),
        };
        Reply::of(req.send().await.unwrap()).await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.call("POST", path, Some(&body), &Cred::None).await
    }

    async fn register(&self, email: &str) -> String {
        self.register_at("emailpass", email).await
    }

    async fn register_at(&self, provider: &str, email: &str) -> String {
        let r = self
            .post(
                &format!("/auth/user/{provider}/register"),
                json!({"email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.token()
    }

    async fn login(&self, provider: &str, email: &str) -> Reply {
        let r = self
            .post(
                &format!("/auth/user/{provider}"),
                json!({"email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r
    }

    async fn session(&self, token: &str) -> String {
        let r = self
            .call(
                "POST",
                "/auth/session",
                None,
                &Cred::Bearer(token.to_owned()),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.cookie_pair()
    }

    async fn link(&self, token: &str, actor_id: &str) {
        let id = crate::support::claims(token)["auth_identity_id"]
            .as_str()
            .unwrap()
            .to_owned();
        self.service
            .module()
            .link_actor(&id, "user", actor_id)
            .await
            .unwrap();
    }
}

#[derive(Debug, Clone)]
enum Cred {
    None,
    Bearer(String),
    Cookie(String),
}

/// One credential of each kind (sessions made fresh where a call ends them).
struct Creds {
    full: String,
    unregistered: String,
    verification: String,
    mfa: String,
    reset: String,
    stale: String,
    stale_session: String,
}

async fn credentials(h: &Harness) -> Creds {
    // Full: registered, linked, logged in again.
    let first = h.register("full@example.com").await;
    h.link(&first, "user_full").await;
    let full = h.login("emailpass", "full@example.com").await.token();
    assert_eq!(crate::support::claims(&full)["actor_id"], "user_full");

    // Unregistered: a registration's token.
    let unregistered = h.register("new@example.com").await;

    // Verification step: a login through the provider that owes it.
    h.register_at("emailpass2", "verify@example.com").await;
    let r = h.login("emailpass2", "verify@example.com").await;
    assert_eq!(r.body["verification_required"], true, "{}", r.text);
    let verification = r.token();

    // MFA step: an identity that enabled TOTP logs in.
    let mfa_first = h.register("mfa@example.com").await;
    enable_totp(h, &mfa_first).await;
    let r = h.login("emailpass", "mfa@example.com").await;
    assert_eq!(r.body["mfa_required"], true, "{}", r.text);
    let mfa = r.token();

    // Reset: the token the reset event carries.
    let mut events = h.service.events().subscribe();
    let r = h
        .post(
            "/auth/user/emailpass/reset-password",
            json!({"identifier": "full@example.com"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let reset = next_reset(&mut events).await;

    // Stale: a full token and session of an identity signed out everywhere.
    let first = h.register("stale@example.com").await;
    h.link(&first, "user_stale").await;
    let stale = h.login("emailpass", "stale@example.com").await.token();
    let stale_session = h.session(&stale).await;
    let id = crate::support::claims(&stale)["auth_identity_id"]
        .as_str()
        .unwrap()
        .to_owned();
    h.service.module().revoke(&id).await.unwrap();

    Creds {
        full,
        unregistered,
        verification,
        mfa,
        reset,
        stale,
        stale_session,
    }
}

async fn enable_totp(h: &Harness, token: &str) {
    use auth_module::mfa::{Totp, TotpAlgorithm, base32_decode};
    let cred = Cred::Bearer(token.to_owned());
    let r = h
        .call(
            "POST",
            "/auth/mfa/factors",
            Some(&json!({"provider": "totp"})),
            &cred,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let secret = base32_decode(r.body["secret"].as_str().unwrap()).unwrap();
    let totp = Totp::new(secret, 6, 30, TotpAlgorithm::Sha1);
    let code = totp.code_for_step(totp.step(crate::support::now() as u64));
    let id = r.body["mfa_factor"]["id"].as_str().unwrap().to_owned();
    let r = h
        .call(
            "POST",
            &format!("/auth/mfa/factors/{id}/verify"),
            Some(&json!({"code": code})),
            &cred,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

async fn next_reset(events: &mut tokio::sync::broadcast::Receiver<Event>) -> String {
    loop {
        let e = tokio::time::timeout(std::time::Duration::from_secs(5), events.recv())
            .await
            .unwrap()
            .unwrap();
        if e.name == auth_module::accounts::PASSWORD_RESET_EVENT {
            return e.data["token"].as_str().unwrap().to_owned();
        }
    }
}

impl Creds {
    /// The credential of `kind` for a call that may end it: a full or
    /// unregistered token from a new login (its own device), else as
    /// [`Creds::of`].
    async fn fresh(&self, h: &Harness, kind: Kind) -> Cred {
        match kind {
            Full => Cred::Bearer(h.login("emailpass", "full@example.com").await.token()),
            Unregistered => Cred::Bearer(h.login("emailpass", "new@example.com").await.token()),
            _ => self.of(h, kind).await,
        }
    }

    /// The credential of `kind` (sessions made now, from their token).
    async fn of(&self, h: &Harness, kind: Kind) -> Cred {
        match kind {
            Nothing => Cred::None,
            Full => Cred::Bearer(self.full.clone()),
            FullSession => Cred::Cookie(h.session(&self.full).await),
            Unregistered => Cred::Bearer(self.unregistered.clone()),
            UnregisteredSession => Cred::Cookie(h.session(&self.unregistered).await),
            VerificationStep => Cred::Bearer(self.verification.clone()),
            MfaStep => Cred::Bearer(self.mfa.clone()),
            Reset => Cred::Bearer(self.reset.clone()),
            Stale => Cred::Bearer(self.stale.clone()),
            StaleSession => Cred::Cookie(self.stale_session.clone()),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_credential_on_every_route() {
    let h = Harness::start().await;
    let creds = credentials(&h).await;

    // The table covers exactly the router's routes.
    let served: BTreeSet<(String, String)> = auth_http::routes()
        .into_iter()
        .map(|(m, p)| (m.to_string(), p.to_owned()))
        .collect();
    let rows = rows();
    let listed: BTreeSet<(String, String)> = rows
        .iter()
        .map(|(m, p, ..)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(
        served, listed,
        "every route of the router has a row in this table, and no more"
    );

    let mut wrong = Vec::new();
    for (method, route, path, body, access) in &rows {
        let anonymous = h.call(method, path, body.as_ref(), &Cred::None).await;
        for kind in KINDS {
            let cred = if *route == "/auth/token/revoke" {
                creds.fresh(&h, kind).await
            } else {
                creds.of(&h, kind).await
            };
            let r = h.call(method, path, body.as_ref(), &cred).await;
            let ok = match access {
                Access::Public => r.status == anonymous.status && !refused(&r),
                Access::Only(kinds) => kinds.contains(&kind) != refused(&r),
            };
            if !ok {
                wrong.push(format!(
                    "{method} {route} with {kind:?}: {} {}",
                    r.status, r.text
                ));
            }
        }
    }

    // Host routes: registered-only, and one that allows unregistered.
    for (path, allowed) in [
        ("/host/registered", FULL),
        ("/host/any", FULL_OR_UNREGISTERED),
    ] {
        for kind in KINDS {
            let cred = creds.of(&h, kind).await;
            let r = h.call("GET", path, None, &cred).await;
            if allowed.contains(&kind) != (r.status == 200) {
                wrong.push(format!("GET {path} with {kind:?}: {} {}", r.status, r.text));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // The step tokens say which step they are in.
    let step = |t: &str| crate::support::claims(t)["step"].clone();
    assert_eq!(step(&creds.verification), "verification");
    assert_eq!(step(&creds.mfa), "mfa");
    assert_eq!(step(&creds.full), Value::Null);
    h.server.abort();
}

/// The verification step token of an identity that also enabled MFA owes
/// both: it reaches neither MFA management, nor a session, nor a social
/// link, and once the verification is done its refresh answers the MFA
/// challenge, never a token without the second factor.
#[tokio::test(flavor = "multi_thread")]
async fn a_verification_step_token_never_skips_mfa() {
    let h = Harness::start().await;
    let email = "both@example.com";
    let first = h.register_at("emailpass2", email).await;
    enable_totp(&h, &first).await;
    let r = h.login("emailpass2", email).await;
    assert_eq!(r.body["verification_required"], true, "{}", r.text);
    let token = Cred::Bearer(r.token());
    for (method, path) in [
        ("GET", "/auth/mfa/factors"),
        ("POST", "/auth/mfa/recovery-codes"),
        ("DELETE", "/auth/mfa/factors/authmfa_x"),
        ("POST", "/auth/session"),
        ("POST", "/auth/emailpass2/user"),
    ] {
        let r = h.call(method, path, None, &token).await;
        assert!(refused(&r), "{method} {path}: {} {}", r.status, r.text);
    }
    // Refresh still owes the verification.
    let r = h.call("POST", "/auth/token/refresh", None, &token).await;
    assert_eq!(r.body["verification_required"], true, "{}", r.text);
    // Verified: the refresh now answers the MFA step.
    let mut events = h.service.events().subscribe();
    let r = h
        .call(
            "POST",
            "/auth/verification/request",
            Some(&json!({"entity_id": email, "entity_type": "email"})),
            &token,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let code = loop {
        let e = events.recv().await.unwrap();
        if e.name == auth_module::flows::VERIFICATION_REQUESTED_EVENT {
            break e.data["code"].as_str().unwrap().to_owned();
        }
    };
    let r = h
        .post("/auth/verification/confirm", json!({"code": code}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = h.call("POST", "/auth/token/refresh", None, &token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["mfa_required"], true, "{}", r.text);
    assert_eq!(crate::support::claims(&r.token())["step"], "mfa");
    h.server.abort();
}

/// A token issued before its identity enabled MFA is refreshed into the
/// MFA step, never into another token without the second factor.
#[tokio::test(flavor = "multi_thread")]
async fn a_token_from_before_mfa_refreshes_into_the_challenge() {
    let h = Harness::start().await;
    let first = h.register("before@example.com").await;
    h.link(&first, "user_before").await;
    let before = h.login("emailpass", "before@example.com").await.token();
    enable_totp(&h, &first).await;
    let r = h
        .call(
            "POST",
            "/auth/token/refresh",
            None,
            &Cred::Bearer(before.clone()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["mfa_required"], true, "{}", r.text);
    let step = r.token();
    assert_eq!(crate::support::claims(&step)["step"], "mfa");
    assert_eq!(crate::support::claims(&step)["actor_id"], "");
    // And a session opened with it refreshes the same way.
    let cookie = Cred::Cookie(h.session(&before).await);
    let r = h.call("POST", "/auth/token/refresh", None, &cookie).await;
    assert_eq!(r.body["mfa_required"], true, "{}", r.text);
    h.server.abort();
}
