//! Password reset, update and credential versions over real HTTP.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{EMAILPASS, Reply, SECRET, TestServer, claims, now, sign, sqlite_config};

async fn server() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_toml(&sqlite_config(dir.path(), EMAILPASS)).await;
    (s, dir)
}

fn invalid_token() -> Value {
    json!({"type": "unauthorized", "message": "Invalid token"})
}

async fn ask_reset(s: &TestServer, actor: &str, identifier: Value) -> Reply {
    s.post_json(
        &format!("/auth/{actor}/emailpass/reset-password"),
        json!({"identifier": identifier}),
    )
    .await
}

/// Asks for a reset and returns the token from an in-process subscriber.
pub(crate) async fn reset_token(s: &TestServer, actor: &str, email: &str) -> String {
    let mut rx = s.service.events().subscribe();
    let r = ask_reset(s, actor, json!(email)).await;
    assert_eq!((r.status, r.text.as_str()), (201, "Created"));
    let event = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("event in time")
        .expect("event");
    assert_eq!(event.name, "auth.password_reset");
    event.data["token"].as_str().unwrap().to_owned()
}

pub(crate) async fn update(s: &TestServer, actor: &str, token: &str, body: Value) -> Reply {
    Reply::of(
        s.client
            .post(s.url(&format!("/auth/{actor}/emailpass/update")))
            .header("authorization", format!("Bearer {token}"))
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn full_reset_flow_with_an_in_process_subscriber() {
    let (s, _dir) = server().await;
    s.register("reset@example.com", "old-password").await;
    let mut rx = s.service.events().subscribe();
    let r = s
        .post_json(
            "/auth/customer/emailpass/reset-password",
            json!({"identifier": " Reset@Example.com ", "metadata": {"locale": "fr"}}),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.text, "Created");
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let event = rx.recv().await.unwrap();
    assert_eq!(event.data["entity_id"], "reset@example.com");
    assert_eq!(event.data["actor_type"], "customer");
    assert_eq!(event.data["metadata"], json!({"locale": "fr"}));
    let token = event.data["token"].as_str().unwrap().to_owned();
    let c = claims(&token);
    assert_eq!(c["purpose"], "reset");
    assert_eq!(c["entity_id"], "reset@example.com");
    assert_eq!(c["provider"], "emailpass");
    assert_eq!(c["actor_type"], "customer");
    assert!(c["jti"].as_str().is_some_and(|j| j.len() >= 16));
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 900);

    let r = update(
        &s,
        "customer",
        &token,
        json!({"email": "someone-else@example.com", "password": "new-password"}),
    )
    .await;
    assert_eq!((r.status, &r.body), (200, &json!({"success": true})));
    assert_eq!(
        s.login("reset@example.com", "old-password").await.status,
        401
    );
    assert_eq!(
        s.login("reset@example.com", "new-password").await.status,
        200
    );

    // Single use.
    let r = update(&s, "customer", &token, json!({"password": "third"})).await;
    assert_eq!((r.status, r.body), (401, invalid_token()));
    assert_eq!(
        s.login("reset@example.com", "new-password").await.status,
        200
    );
}

#[tokio::test]
async fn unknown_identifiers_and_providers_look_the_same() {
    let (s, _dir) = server().await;
    let mut rx = s.service.events().subscribe();
    let unknown = ask_reset(&s, "customer", json!("ghost@example.com")).await;
    let other = s
        .post_json(
            "/auth/customer/ldap/reset-password",
            json!({"identifier": "ghost@example.com"}),
        )
        .await;
    for r in [unknown, other] {
        assert_eq!((r.status, r.text.as_str()), (201, "Created"));
    }
    s.service.events().flush().await;
    assert!(rx.try_recv().is_err(), "no event for unknown identities");
}

#[tokio::test]
async fn reset_password_validates_its_body_strictly() {
    let (s, _dir) = server().await;
    for (body, msg) in [
        (json!({}), "Invalid request: Field 'identifier' is required"),
        (
            json!({"identifier": 42}),
            "Invalid request: Expected type: 'string' for field 'identifier', got: 'number'",
        ),
        (
            json!({"identifier": "a@b.c", "a": 1, "b": 2}),
            "Invalid request: Unrecognized fields: 'a, b'",
        ),
    ] {
        let r = s
            .post_json("/auth/customer/emailpass/reset-password", body)
            .await;
        assert_eq!(
            (r.status, r.body),
            (400, json!({"type": "invalid_data", "message": msg}))
        );
    }
}

#[tokio::test]
async fn a_newer_request_cancels_older_tokens() {
    let (s, _dir) = server().await;
    s.register("twice@example.com", "pw").await;
    let first = reset_token(&s, "customer", "twice@example.com").await;
    let second = reset_token(&s, "customer", "twice@example.com").await;
    let r = update(&s, "customer", &first, json!({"password": "from-first"})).await;
    assert_eq!((r.status, r.body), (401, invalid_token()));
    let r = update(&s, "customer", &second, json!({"password": "from-second"})).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        s.login("twice@example.com", "from-second").await.status,
        200
    );
}

#[tokio::test]
async fn a_token_on_the_wrong_route_is_refused_and_stays_usable() {
    let (s, _dir) = server().await;
    s.register("route@example.com", "pw").await;
    let token = reset_token(&s, "customer", "route@example.com").await;
    let r = update(&s, "user", &token, json!({"password": "x"})).await;
    assert_eq!((r.status, r.body), (401, invalid_token()));
    // The same token on another provider's route.
    let r = Reply::of(
        s.client
            .post(s.url("/auth/customer/other/update"))
            .header("authorization", format!("Bearer {token}"))
            .json(&json!({"password": "x"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((r.status, r.body), (401, invalid_token()));
    let r = update(&s, "customer", &token, json!({"password": "right-route"})).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn tokens_in_the_query_and_other_bad_tokens_are_refused() {
    let (s, _dir) = server().await;
    let login = s.register("bad@example.com", "pw").await;
    let token = reset_token(&s, "customer", "bad@example.com").await;
    let mut expired = claims(&token);
    expired["iat"] = json!(now() - 3600);
    expired["exp"] = json!(now() - 1800);
    let mut forged = claims(&token);
    forged["entity_id"] = json!("victim@example.com");
    let url = s.url("/auth/customer/emailpass/update");
    let cases = [
        s.client
            .post(format!("{url}?token={token}"))
            .json(&json!({"password": "x"})),
        s.client
            .post(format!("{url}?token={token}"))
            .header("authorization", format!("Bearer {token}"))
            .json(&json!({"password": "x"})),
        s.client.post(&url).json(&json!({"password": "x"})),
        s.client
            .post(&url)
            .header("authorization", "Bearer garbage")
            .json(&json!({"password": "x"})),
        s.client
            .post(&url)
            .header("authorization", format!("Bearer {login}"))
            .json(&json!({"password": "x"})),
        s.client
            .post(&url)
            .header(
                "authorization",
                format!("Bearer {}", sign(&expired, SECRET)),
            )
            .json(&json!({"password": "x"})),
        s.client
            .post(&url)
            .header(
                "authorization",
                format!(
                    "Bearer {}",
                    sign(&forged, "not-the-secret-not-the-secret-00")
                ),
            )
            .json(&json!({"password": "x"})),
    ];
    for (i, req) in cases.into_iter().enumerate() {
        let r = Reply::of(req.send().await.unwrap()).await;
        assert_eq!((r.status, &r.body), (401, &invalid_token()), "case {i}");
    }
    // A reset token is never an auth token.
    let r = s.post_bearer("/auth/token/refresh", &token).await;
    assert_eq!(
        (r.status, r.body),
        (401, json!({"message": "Unauthorized"}))
    );
    // After all that, the token still works where it belongs.
    assert_eq!(
        update(&s, "customer", &token, json!({"password": "fine"}))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn a_failed_update_does_not_spend_the_token() {
    let (s, _dir) = server().await;
    s.register("nopw@example.com", "pw").await;
    let token = reset_token(&s, "customer", "nopw@example.com").await;
    let r = update(&s, "customer", &token, json!({})).await;
    assert_eq!(
        (r.status, r.body),
        (
            401,
            json!({"type": "unauthorized", "message": "Password should be a string"})
        )
    );
    assert_eq!(s.login("nopw@example.com", "pw").await.status, 200);
    assert_eq!(
        update(&s, "customer", &token, json!({"password": "later"}))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn a_password_change_ends_older_tokens_and_sessions() {
    let (s, _dir) = server().await;
    let old_token = s.register("cv@example.com", "pw").await;
    let cookie = s.open_session(&old_token).await;
    let refresh_with_cookie = || {
        s.client
            .post(s.url("/auth/token/refresh"))
            .header("cookie", cookie.clone())
            .send()
    };
    assert_eq!(refresh_with_cookie().await.unwrap().status(), 200);

    let reset = reset_token(&s, "customer", "cv@example.com").await;
    assert_eq!(
        update(&s, "customer", &reset, json!({"password": "pw-2"}))
            .await
            .status,
        200
    );

    assert_eq!(
        s.post_bearer("/auth/token/refresh", &old_token)
            .await
            .status,
        401
    );
    assert_eq!(refresh_with_cookie().await.unwrap().status(), 401);
    let fresh = s.login("cv@example.com", "pw-2").await.token();
    assert_eq!(claims(&fresh)["cv"], 1);
    assert_eq!(
        s.post_bearer("/auth/token/refresh", &fresh).await.status,
        200
    );
}

#[tokio::test]
async fn reset_through_the_file_sink() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let toml = sqlite_config(dir.path(), EMAILPASS).replace(
        "\n[store]",
        &format!("\n[events]\nfile = \"{}\"\n\n[store]", events.display()),
    );
    let s = TestServer::start_toml(&toml).await;
    s.register("file@example.com", "pw").await;
    assert_eq!(
        ask_reset(&s, "customer", json!("file@example.com"))
            .await
            .status,
        201
    );
    s.service.events().flush().await;
    let text = std::fs::read_to_string(&events).unwrap();
    let line: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(line["name"], "auth.password_reset");
    let token = line["data"]["token"].as_str().unwrap();
    assert_eq!(
        update(&s, "customer", token, json!({"password": "via-file"}))
            .await
            .status,
        200
    );
    assert_eq!(s.login("file@example.com", "via-file").await.status, 200);
}

#[tokio::test]
async fn reset_through_a_signed_webhook() {
    use axum::body::Bytes;
    use axum::http::HeaderMap;
    use std::sync::{Arc, Mutex};

    let received: Arc<Mutex<Vec<(bool, Value)>>> = Arc::default();
    let sink = received.clone();
    let hook = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let sink = sink.clone();
            async move {
                let ts = headers["x-auth-timestamp"].to_str().unwrap().to_owned();
                let sig = headers["x-auth-signature"].to_str().unwrap().to_owned();
                let ok = auth_events::verify_signature(b"hook-secret-123", &ts, &body, &sig);
                let forged = auth_events::verify_signature(b"other-secret", &ts, &body, &sig);
                sink.lock()
                    .unwrap()
                    .push((ok && !forged, serde_json::from_slice(&body).unwrap()));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_addr = listener.local_addr().unwrap();
    let hook_server = tokio::spawn(async move { axum::serve(listener, hook).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let toml = sqlite_config(dir.path(), EMAILPASS).replace(
        "\n[store]",
        &format!("\n[events.webhook]\nurl = \"http://{hook_addr}/hook\"\nsecret = \"hook-secret-123\"\ntimeout = \"2s\"\n\n[store]"),
    );
    let s = TestServer::start_toml(&toml).await;
    s.register("hook@example.com", "pw").await;
    assert_eq!(
        ask_reset(&s, "customer", json!("hook@example.com"))
            .await
            .status,
        201
    );
    s.service.events().flush().await;
    let (verified, event) = received.lock().unwrap().pop().expect("webhook received");
    assert!(
        verified,
        "signature verifies with the secret, not with another"
    );
    assert_eq!(event["name"], "auth.password_reset");
    let token = event["data"]["token"].as_str().unwrap();
    assert_eq!(
        update(&s, "customer", token, json!({"password": "via-hook"}))
            .await
            .status,
        200
    );
    assert_eq!(s.login("hook@example.com", "via-hook").await.status, 200);
    hook_server.abort();
}

#[tokio::test]
async fn a_failing_webhook_changes_nothing_for_the_client() {
    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let toml = sqlite_config(dir.path(), EMAILPASS).replace(
        "\n[store]",
        &format!("\n[events.webhook]\nurl = \"http://127.0.0.1:{port}/hook\"\nsecret = \"s\"\nretries = 1\n\n[store]"),
    );
    let s = TestServer::start_toml(&toml).await;
    s.register("down@example.com", "pw").await;
    let r = ask_reset(&s, "customer", json!("down@example.com")).await;
    assert_eq!((r.status, r.text.as_str()), (201, "Created"));
}
