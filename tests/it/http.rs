//! The auth routes over real HTTP against the real server on SQLite.

use serde_json::{Value, json};

use crate::support::{
    EMAILPASS, SECRET, TestServer, claims, now, sign, sign_with, sqlite_config, unsigned,
};

async fn server() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_toml(&sqlite_config(dir.path(), EMAILPASS)).await;
    (s, dir)
}

fn unauthorized(msg: &str) -> Value {
    json!({"type": "unauthorized", "message": msg})
}

#[tokio::test]
async fn register_then_login_issue_medusa_tokens() {
    let (s, _dir) = server().await;
    let token = s.register("ada@example.com", "pw-ada").await;
    let c = claims(&token);
    assert_eq!(c["actor_id"], "");
    assert_eq!(c["actor_type"], "customer");
    assert!(
        c["auth_identity_id"]
            .as_str()
            .unwrap()
            .starts_with("authid_")
    );
    assert_eq!(c["auth_provider"], "emailpass");
    assert_eq!(c["app_metadata"], json!({}));
    assert_eq!(c["user_metadata"], json!({}));
    assert_eq!(c["mfa_enabled"], false);
    assert_eq!(c["mfa_challenge_completed_at"], Value::Null);
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        86400
    );

    let login = s.login("ada@example.com", "pw-ada").await;
    assert_eq!(login.status, 200);
    assert_eq!(
        login.body.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["token"]
    );
    assert_eq!(
        claims(&login.token())["auth_identity_id"],
        c["auth_identity_id"]
    );
    assert!(login.headers.get("x-powered-by").is_none());
    assert!(!login.text.contains("argon2"));
}

#[tokio::test]
async fn login_accepts_form_bodies_and_get() {
    let (s, _dir) = server().await;
    s.register("form@example.com", "pw-form").await;
    let r = s
        .client
        .post(s.url("/auth/customer/emailpass"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=form%40example.com&password=pw-form")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // GET reads the body too, as Medusa does.
    let r = s
        .client
        .get(s.url("/auth/customer/emailpass"))
        .json(&json!({"email": "form@example.com", "password": "pw-form"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .client
        .get(s.url("/auth/customer/emailpass"))
        .json(&json!({"email": "form@example.com", "password": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn login_failures_are_indistinguishable() {
    let (s, _dir) = server().await;
    s.register("bob@example.com", "pw-bob").await;
    let wrong = s.login("bob@example.com", "pw-nope").await;
    let unknown = s.login("nobody@example.com", "pw-bob").await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.body, unauthorized("Invalid email or password"));
    assert_eq!((unknown.status, unknown.text), (wrong.status, wrong.text));
}

#[tokio::test]
async fn register_conflicts_and_idempotence() {
    let (s, _dir) = server().await;
    let first = s.register("dup@example.com", "pw-1").await;
    let again = s.register("dup@example.com", "pw-1").await;
    assert_eq!(
        claims(&first)["auth_identity_id"],
        claims(&again)["auth_identity_id"]
    );
    let other = s
        .post_json(
            "/auth/customer/emailpass/register",
            json!({"email": "DUP@example.com", "password": "pw-2"}),
        )
        .await;
    assert_eq!(other.status, 401);
    assert_eq!(
        other.body,
        unauthorized("Identity with email already exists")
    );
}

#[tokio::test]
async fn field_validation_messages() {
    let (s, _dir) = server().await;
    for (path, body, msg) in [
        (
            "/auth/customer/emailpass/register",
            json!({"email": "a@b.c"}),
            "Password should be a string",
        ),
        (
            "/auth/customer/emailpass/register",
            json!({"password": "x"}),
            "Email should be a string",
        ),
        (
            "/auth/customer/emailpass",
            json!({"email": 5, "password": 5}),
            "Password should be a string",
        ),
        (
            "/auth/customer/emailpass",
            json!({"email": 5, "password": "x"}),
            "Email should be a string",
        ),
    ] {
        let r = s.post_json(path, body).await;
        assert_eq!((r.status, r.body), (401, unauthorized(msg)));
    }
}

#[tokio::test]
async fn unknown_provider_and_missing_callback() {
    let (s, _dir) = server().await;
    for path in [
        "/auth/customer/nope",
        "/auth/customer/nope/register",
        "/auth/customer/nope/callback",
    ] {
        let r = s
            .post_json(path, json!({"email": "a@b.c", "password": "x"}))
            .await;
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(
            r.body,
            unauthorized("Unable to retrieve the auth provider with id: nope")
        );
    }
    let r = s
        .client
        .get(s.url("/auth/customer/emailpass/callback?code=abc&state=def"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        unauthorized("Callback authentication not implemented for provider emailpass")
    );
}

#[tokio::test]
async fn refresh_rereads_the_store() {
    let (s, _dir) = server().await;
    let token = s.register("link@example.com", "pw").await;
    let id = claims(&token)["auth_identity_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let r = s.post_bearer("/auth/token/refresh", &token).await;
    assert_eq!(r.status, 200);
    assert_eq!(claims(&r.token())["actor_id"], "");

    s.service
        .module()
        .link_actor(&id, "customer", "cus_123")
        .await
        .unwrap();
    let r = s.post_bearer("/auth/token/refresh", &token).await;
    let c = claims(&r.token());
    assert_eq!(c["actor_id"], "cus_123");
    assert_eq!(c["app_metadata"], json!({"customer_id": "cus_123"}));

    // `Bearer` is case-insensitive.
    let r = s
        .client
        .post(s.url("/auth/token/refresh"))
        .header("authorization", format!("bEaReR {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Unlinking shows at once (no stale cache).
    s.service
        .module()
        .unlink_actor(&id, "customer")
        .await
        .unwrap();
    let r = s.post_bearer("/auth/token/refresh", &token).await;
    assert_eq!(claims(&r.token())["actor_id"], "");

    // A deleted identity can no longer refresh.
    s.service.module().delete_auth_identity(&id).await.unwrap();
    let r = s.post_bearer("/auth/token/refresh", &token).await;
    assert_eq!(
        (r.status, r.body),
        (401, json!({"message": "Unauthorized"}))
    );
}

#[tokio::test]
async fn refresh_refuses_bad_tokens_with_the_bare_message() {
    let (s, _dir) = server().await;
    let token = s.register("jwt@example.com", "pw").await;
    let good = claims(&token);
    let mut expired = good.clone();
    expired["iat"] = json!(now() - 7200);
    expired["exp"] = json!(now() - 3600);
    let mut no_exp = good.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    let mut reset = good.clone();
    reset["purpose"] = json!("reset");
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    for bad in [
        "garbage".to_owned(),
        String::new(),
        tampered,
        sign(&expired, SECRET),
        sign(&no_exp, SECRET),
        sign(&reset, SECRET),
        sign(&good, "another-secret-another-secret-another"),
        sign_with(&good, SECRET, jsonwebtoken::Algorithm::HS512),
        unsigned(&good),
    ] {
        let r = s.post_bearer("/auth/token/refresh", &bad).await;
        assert_eq!(r.status, 401, "{bad}");
        assert_eq!(r.text, r#"{"message":"Unauthorized"}"#);
    }
    let r = Reply::of(
        s.client
            .post(s.url("/auth/token/refresh"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (r.status, r.body),
        (401, json!({"message": "Unauthorized"}))
    );

    let mut no_provider = good.clone();
    no_provider.as_object_mut().unwrap().remove("auth_provider");
    let r = s
        .post_bearer("/auth/token/refresh", &sign(&no_provider, SECRET))
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.body,
        unauthorized("The auth provider is not set while refreshing token")
    );
    // Such a token is never enough for anything that checks the store.
    let r = s
        .post_bearer("/auth/session", &sign(&no_provider, SECRET))
        .await;
    assert_eq!(
        (r.status, r.body),
        (401, json!({"message": "Unauthorized"}))
    );
}

use crate::support::Reply;

#[tokio::test]
async fn sessions_live_server_side() {
    let (s, _dir) = server().await;
    let token = s.register("sess@example.com", "pw").await;

    let r = s.post_bearer("/auth/session", &token).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["user"], claims(&token));
    let cookie = r.set_cookies().pop().expect("set-cookie");
    assert!(cookie.starts_with("connect.sid="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/")
    );
    assert!(!cookie.contains("Secure"));
    let pair = r.cookie_pair();

    let with_cookie = |method: reqwest::Method, path: &str| {
        s.client
            .request(method, s.url(path))
            .header("cookie", pair.clone())
    };
    let r = with_cookie(reqwest::Method::POST, "/auth/token/refresh")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the cookie alone authenticates refresh");

    // Creating a session needs a bearer token, not a cookie.
    let r = with_cookie(reqwest::Method::POST, "/auth/session")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let r = Reply::of(
        with_cookie(reqwest::Method::DELETE, "/auth/session")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((r.status, &r.body), (200, &json!({"success": true})));
    let cleared = r.set_cookies().pop().expect("cleared cookie");
    assert!(
        cleared.starts_with("connect.sid=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );

    let r = with_cookie(reqwest::Method::POST, "/auth/token/refresh")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the session is gone server-side");
    // Without a live session, logging out is 401 (Medusa 2.21.2; the JS
    // SDK's session-mode logout expects it).
    let r = Reply::of(
        with_cookie(reqwest::Method::DELETE, "/auth/session")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (r.status, r.body),
        (401, json!({"message": "Unauthorized"}))
    );
    for garbage in ["connect.sid=nonsense", "connect.sid=", "other=1"] {
        let r = s
            .client
            .delete(s.url("/auth/session"))
            .header("cookie", garbage)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{garbage}");
    }
    let r = s
        .client
        .delete(s.url("/auth/session"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no cookie at all");
    // The bearer token outlives the session.
    assert_eq!(
        s.post_bearer("/auth/token/refresh", &token).await.status,
        200
    );
    // DELETE with only a bearer token is 401, ends nothing, and the token
    // stays valid.
    let r = Reply::of(
        s.client
            .delete(s.url("/auth/session"))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (r.status, r.body),
        (401, json!({"message": "Unauthorized"}))
    );
    assert_eq!(
        s.post_bearer("/auth/token/refresh", &token).await.status,
        200
    );
}

#[tokio::test]
async fn session_cookie_name_and_secure_are_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let toml = sqlite_config(dir.path(), EMAILPASS).replace(
        "[http]\n",
        "[http]\nsession_cookie_name = \"sid\"\nsession_cookie_secure = true\n",
    );
    let s = TestServer::start_toml(&toml).await;
    let token = s.register("cookie@example.com", "pw").await;
    let cookie = s
        .post_bearer("/auth/session", &token)
        .await
        .set_cookies()
        .pop()
        .unwrap();
    assert!(
        cookie.starts_with("sid=") && cookie.contains("; Secure"),
        "{cookie}"
    );
}

#[tokio::test]
async fn auth_methods_per_actor_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let toml = sqlite_config(
        dir.path(),
        "[[providers]]\nresolve = \"emailpass\"\nid = \"emailpass\"\n[providers.options]\npassword_policy = { min_length = 1, reject_common = false }\n\n[[providers]]\nresolve = \"emailpass\"\nid = \"staff\"\n[providers.options]\npassword_policy = { min_length = 1, reject_common = false }\n",
    )
    .replace("\n\n[store]", "\n[http.auth_methods_per_actor]\nuser = [\"staff\"]\n\n[store]");
    let s = TestServer::start_toml(&toml).await;
    let body = json!({"email": "u@example.com", "password": "pw"});
    let r = s
        .post_json("/auth/user/emailpass/register", body.clone())
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        json!({"type": "not_allowed", "message": "The actor type user is not allowed to use the auth provider emailpass"})
    );
    assert_eq!(
        s.post_json("/auth/user/staff/register", body.clone())
            .await
            .status,
        200
    );
    // Other actors are unrestricted.
    assert_eq!(
        s.post_json("/auth/customer/emailpass/register", body)
            .await
            .status,
        200
    );
    let r = Reply::of(
        s.client
            .get(s.url("/auth/user/providers"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        r.body,
        json!({"providers": [{"id": "staff", "identifier": "emailpass", "display_name": "Email/Password Authentication", "flow": "credentials"}]})
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let (s, _dir) = server().await;
    let r = Reply::of(s.client.get(s.url("/nope")).send().await.unwrap()).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["type"], "not_found");
    let r = Reply::of(
        s.client
            .get(s.url("/auth/customer/emailpass/register"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.body["type"], "not_allowed");
    // Fixed paths are never logins.
    let r = Reply::of(
        s.client
            .get(s.url("/auth/token/refresh"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 405);
    let r = Reply::of(
        s.client
            .post(s.url("/auth/customer/providers"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 405);
    let r = Reply::of(s.client.get(s.url("/health")).send().await.unwrap()).await;
    assert_eq!((r.status, r.body), (200, json!({"status": "ok"})));
}

#[tokio::test]
async fn cors_answers_only_configured_origins() {
    let dir = tempfile::tempdir().unwrap();
    let toml = sqlite_config(dir.path(), EMAILPASS).replace(
        "[http]\n",
        "[http]\ncors_origins = [\"http://shop.test\"]\n",
    );
    let s = TestServer::start_toml(&toml).await;
    let pre = |origin: &'static str| {
        s.client
            .request(reqwest::Method::OPTIONS, s.url("/auth/customer/emailpass"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,authorization",
            )
            .send()
    };
    let r = pre("http://shop.test").await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://shop.test"
    );
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    assert_eq!(
        r.headers()["access-control-allow-headers"],
        "content-type,authorization"
    );
    let r = pre("http://evil.test").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = s
        .client
        .post(s.url("/auth/customer/emailpass"))
        .header("origin", "http://shop.test")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://shop.test"
    );
}

#[tokio::test]
async fn data_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let toml = sqlite_config(dir.path(), EMAILPASS);
    let s = TestServer::start_toml(&toml).await;
    let token = s.register("persist@example.com", "pw-p").await;
    s.stop().await;
    let s = TestServer::start_toml(&toml).await;
    let r = s.login("persist@example.com", "pw-p").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        claims(&r.token())["auth_identity_id"],
        claims(&token)["auth_identity_id"]
    );
    // A token from before the restart still refreshes (same secret).
    assert_eq!(
        s.post_bearer("/auth/token/refresh", &token).await.status,
        200
    );
}

#[tokio::test]
async fn jwt_lifetime_is_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let toml = sqlite_config(dir.path(), EMAILPASS)
        .replace("[http]\n", "[http]\njwt_expires_in = \"15m\"\n");
    let s = TestServer::start_toml(&toml).await;
    let c = claims(&s.register("short@example.com", "pw").await);
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 900);
}

#[tokio::test]
async fn host_routes_behind_require_auth() {
    use auth_http::{AuthContext, AuthPolicy, RequireAuthLayer};

    let dir = tempfile::tempdir().unwrap();
    let config =
        auth_server::AppConfig::from_toml_str(&sqlite_config(dir.path(), EMAILPASS)).unwrap();
    let app = auth_server::build_app(config).await.unwrap();
    let service = app.service.clone();
    let me = |ctx: AuthContext| async move {
        axum::Json(
            json!({"actor_id": ctx.actor_id, "actor_type": ctx.actor_type, "method": format!("{:?}", ctx.method)}),
        )
    };
    let router = axum::Router::new()
        .route("/store/me", axum::routing::get(me))
        .layer(RequireAuthLayer::new(
            service.clone(),
            AuthPolicy::actor_types(["customer"]),
        ))
        .merge(
            axum::Router::new()
                .route("/store/onboarding", axum::routing::get(me))
                .layer(RequireAuthLayer::new(
                    service.clone(),
                    AuthPolicy::actor_types(["customer"])
                        .allow_unregistered(true)
                        .session(false),
                )),
        )
        .merge(app.router);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let client = reqwest::Client::new();
    let url = |p: &str| format!("http://{addr}{p}");
    let get = |path: &'static str, auth: Option<(&'static str, String)>| {
        let mut req = client.get(url(path));
        if let Some((h, v)) = auth {
            req = req.header(h, v);
        }
        req.send()
    };

    let reg = client
        .post(url("/auth/customer/emailpass/register"))
        .json(&json!({"email": "host-route@example.com", "password": "pw"}))
        .send()
        .await
        .unwrap();
    let token = reg.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bearer = || Some(("authorization", format!("Bearer {token}")));

    // Unregistered (no actor linked yet): only the onboarding route admits it.
    let r = get("/store/me", bearer()).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.text().await.unwrap(), r#"{"message":"Unauthorized"}"#);
    let r = get("/store/onboarding", bearer()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(get("/store/onboarding", None).await.unwrap().status(), 401);

    let id = claims(&token)["auth_identity_id"]
        .as_str()
        .unwrap()
        .to_owned();
    service
        .module()
        .link_actor(&id, "customer", "cus_7")
        .await
        .unwrap();
    let linked = client
        .post(url("/auth/token/refresh"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = get(
        "/store/me",
        Some(("authorization", format!("Bearer {linked}"))),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"actor_id": "cus_7", "actor_type": "customer", "method": "Bearer"})
    );

    // A session cookie works where sessions are accepted, not where they are not.
    let session = client
        .post(url("/auth/session"))
        .header("authorization", format!("Bearer {linked}"))
        .send()
        .await
        .unwrap();
    let cookie = session.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let r = get("/store/me", Some(("cookie", cookie.clone())))
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["method"], "Session");
    assert_eq!(
        get("/store/onboarding", Some(("cookie", cookie)))
            .await
            .unwrap()
            .status(),
        401
    );

    // Another actor type's token is refused.
    let user = client
        .post(url("/auth/user/emailpass"))
        .json(&json!({"email": "host-route@example.com", "password": "pw"}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        get(
            "/store/onboarding",
            Some(("authorization", format!("Bearer {user}")))
        )
        .await
        .unwrap()
        .status(),
        401
    );
    server.abort();
}

#[tokio::test]
async fn sessions_and_reset_tokens_survive_a_restart_with_sql_state() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/auth.db", dir.path().display());
    let toml = sqlite_config(dir.path(), EMAILPASS).replace(
        "\n[store]",
        &format!("\n[state]\nurl = \"{db}\"\n\n[store]"),
    );
    let s = TestServer::start_toml(&toml).await;
    let token = s.register("state@example.com", "pw").await;
    let cookie = s.open_session(&token).await;
    let mut rx = s.service.events().subscribe();
    let r = s
        .post_json(
            "/auth/customer/emailpass/reset-password",
            json!({"identifier": "state@example.com"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let reset = rx.recv().await.unwrap().data["token"]
        .as_str()
        .unwrap()
        .to_owned();
    s.stop().await;

    let s = TestServer::start_toml(&toml).await;
    let r = s
        .client
        .post(s.url("/auth/token/refresh"))
        .header("cookie", cookie.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the session outlived the restart");
    let r = Reply::of(
        s.client
            .post(s.url("/auth/customer/emailpass/update"))
            .header("authorization", format!("Bearer {reset}"))
            .json(&json!({"password": "after-restart"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((r.status, r.body), (200, json!({"success": true})));
    assert_eq!(
        s.login("state@example.com", "after-restart").await.status,
        200
    );
    // The password change ended the old session too.
    let r = s
        .client
        .post(s.url("/auth/token/refresh"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_refused_while_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (s, _dir) = server().await;
    let stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    // Read while writing, so the answer is in hand even if the server resets
    // the connection over the body it did not read.
    let reader = tokio::spawn(async move {
        let mut response = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = rd.read(&mut buf).await {
            if n == 0 {
                break;
            }
            response.extend_from_slice(&buf[..n]);
        }
        response
    });
    wr.write_all(
        b"POST /auth/customer/emailpass/register HTTP/1.1\r\nHost: localhost\r\n\
          Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let chunk = vec![b' '; 16 * 1024];
    // 160 KiB of JSON whitespace, more than the 100 KiB limit, with no length
    // announced up front. The server may answer and close before all is sent.
    for _ in 0..10 {
        let head = format!("{:x}\r\n", chunk.len());
        if wr.write_all(head.as_bytes()).await.is_err()
            || wr.write_all(&chunk).await.is_err()
            || wr.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = wr.write_all(b"0\r\n\r\n").await;
    let response = reader.await.unwrap();
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(
        text.ends_with(r#"{"message":"request entity too large","type":"unknown_error"}"#),
        "{text}"
    );
}

/// One process owns an SQLite file: a second server on it refuses to start,
/// saying why and what to use instead, and the file is free once the first
/// has stopped.
#[tokio::test]
async fn a_second_server_on_one_sqlite_file_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let toml = sqlite_config(dir.path(), EMAILPASS);
    let first = TestServer::start_toml(&toml).await;
    let e = auth_server::build_app(auth_server::AppConfig::from_toml_str(&toml).unwrap())
        .await
        .unwrap_err();
    assert!(
        e.message()
            .contains("is in use by another auth-server process")
            && e.message().contains("postgres://"),
        "{e}"
    );
    first.register("lock@example.com", "pw").await;
    first.stop().await;
    let second = TestServer::start_toml(&toml).await;
    assert_eq!(second.login("lock@example.com", "pw").await.status, 200);
    second.stop().await;
}
