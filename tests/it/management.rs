//! The management API: off without a key, key checked, link -> refresh.

use serde_json::{Value, json};

use crate::support::{EMAILPASS, Reply, TestServer, claims, sqlite_config};

const KEY: &str = "management-key-0123456789";

async fn server(with_key: bool) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut toml = sqlite_config(dir.path(), EMAILPASS);
    if with_key {
        toml = toml.replace(
            "\n[store]",
            &format!("\n[management]\napi_key = \"{KEY}\"\n\n[store]"),
        );
    }
    let s = TestServer::start_toml(&toml).await;
    (s, dir)
}

async fn admin(
    s: &TestServer,
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
    body: Option<serde_json::Value>,
) -> Reply {
    let mut req = s.client.request(method, s.url(path));
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    Reply::of(req.send().await.unwrap()).await
}

#[tokio::test]
async fn off_without_a_key() {
    let (s, _dir) = server(false).await;
    let token = s.register("off@example.com", "pw").await;
    let id = claims(&token)["auth_identity_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = admin(
        &s,
        reqwest::Method::GET,
        &format!("/admin/auth-identities/{id}"),
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn the_key_is_required() {
    let (s, _dir) = server(true).await;
    let token = s.register("key@example.com", "pw").await;
    let path = format!(
        "/admin/auth-identities/{}",
        claims(&token)["auth_identity_id"].as_str().unwrap()
    );
    let unauthorized = json!({"type": "unauthorized", "message": "Invalid API key"});
    for key in [
        None,
        Some("wrong"),
        Some("management-key-012345678"),
        Some(""),
    ] {
        let r = admin(&s, reqwest::Method::GET, &path, key, None).await;
        assert_eq!((r.status, &r.body), (401, &unauthorized), "{key:?}");
    }
    assert_eq!(
        admin(&s, reqwest::Method::GET, &path, Some(KEY), None)
            .await
            .status,
        200
    );
    let r = s
        .client
        .get(s.url(&path))
        .header("authorization", format!("Bearer {KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn link_refresh_unlink_delete() {
    let (s, _dir) = server(true).await;
    let token = s.register("host@example.com", "pw").await;
    let id = claims(&token)["auth_identity_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let r = admin(
        &s,
        reqwest::Method::GET,
        "/admin/auth-identities?provider=emailpass&entity_id=HOST@example.com",
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["auth_identity"]["id"], id);
    assert_eq!(
        r.body["auth_identity"]["provider_identities"][0]["entity_id"],
        "host@example.com"
    );
    assert!(
        !r.text.contains("argon2")
            && !r.text.contains("provider_metadata")
            && !r.text.contains("password"),
        "{}",
        r.text
    );

    let r = admin(
        &s,
        reqwest::Method::POST,
        &format!("/admin/auth-identities/{id}/actors/customer"),
        Some(KEY),
        Some(json!({"actor_id": "cus_42"})),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body["auth_identity"]["app_metadata"],
        json!({"customer_id": "cus_42"})
    );
    let refreshed = s.post_bearer("/auth/token/refresh", &token).await.token();
    assert_eq!(claims(&refreshed)["actor_id"], "cus_42");
    let linked_token = refreshed;
    let linked_session = s.open_session(&linked_token).await;

    let r = admin(
        &s,
        reqwest::Method::POST,
        &format!("/admin/auth-identities/{id}/actors/customer"),
        Some(KEY),
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["type"], "invalid_data");

    let r = admin(
        &s,
        reqwest::Method::DELETE,
        &format!("/admin/auth-identities/{id}/actors/customer"),
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    let refreshed = s.post_bearer("/auth/token/refresh", &token).await.token();
    assert_eq!(claims(&refreshed)["actor_id"], "");
    // A token and a session that still carry the removed link stop working;
    // the registration token (no actor yet) is unaffected.
    assert_eq!(
        s.post_bearer("/auth/token/refresh", &linked_token)
            .await
            .status,
        401
    );
    assert_eq!(
        s.post_cookie("/auth/token/refresh", &linked_session)
            .await
            .status,
        401
    );

    let r = admin(
        &s,
        reqwest::Method::DELETE,
        &format!("/admin/auth-identities/{id}"),
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.body),
        (
            200,
            json!({"id": id, "object": "auth_identity", "deleted": true})
        )
    );
    let r = admin(
        &s,
        reqwest::Method::GET,
        &format!("/admin/auth-identities/{id}"),
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["type"], "not_found");
    assert_eq!(
        s.post_bearer("/auth/token/refresh", &token).await.status,
        401
    );
    let r = admin(
        &s,
        reqwest::Method::GET,
        "/admin/auth-identities?provider=emailpass&entity_id=host@example.com",
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(r.status, 404);
}

/// 20 concurrent links of 20 actor types to one identity all stay: each is a
/// one-key patch in the store, not a read-modify-write.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_links_keep_every_actor() {
    let (s, _dir) = server(true).await;
    let r = twenty_at_once(s, "many@example.com", |id, i| {
        (
            reqwest::Method::POST,
            format!("/admin/auth-identities/{id}/actors/actor{i}"),
            json!({ "actor_id": format!("a_{i}") }),
        )
    })
    .await;
    let app = &r.body["auth_identity"]["app_metadata"];
    for i in 0..20 {
        assert_eq!(
            app[format!("actor{i}_id")],
            json!(format!("a_{i}")),
            "{app}"
        );
    }
}

/// Signing out everywhere: revoke ends every token and session issued
/// before it; a login afterwards works again.
#[tokio::test]
async fn revoke_ends_every_token_and_session() {
    let (s, _dir) = server(true).await;
    let token = s.register("revoke@example.com", "pw").await;
    let id = claims(&token)["auth_identity_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let login = s.login("revoke@example.com", "pw").await.token();
    let session = s.open_session(&login).await;
    let other_session = s.open_session(&login).await;

    let r = admin(
        &s,
        reqwest::Method::POST,
        &format!("/admin/auth-identities/{id}/revoke"),
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["sessions_ended"], 2);
    assert_eq!(r.body["auth_identity"]["id"], id);

    for t in [&token, &login] {
        assert_eq!(s.post_bearer("/auth/token/refresh", t).await.status, 401);
    }
    for cookie in [&session, &other_session] {
        assert_eq!(
            s.post_cookie("/auth/token/refresh", cookie).await.status,
            401
        );
    }
    let fresh = s.login("revoke@example.com", "pw").await.token();
    assert_eq!(
        s.post_bearer("/auth/token/refresh", &fresh).await.status,
        200
    );

    let r = admin(
        &s,
        reqwest::Method::POST,
        "/admin/auth-identities/authid_missing/revoke",
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    let r = admin(
        &s,
        reqwest::Method::POST,
        &format!("/admin/auth-identities/{id}/revoke"),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, 401, "the key is required");
}

/// `PATCH …/app-metadata` merges top-level keys (a value replaces the key's
/// whole value, `null` removes it, other keys and actor links stay), answers
/// the redacted identity, and refuses actor links, bad keys, non-object
/// bodies and unknown identities without changing anything.
#[tokio::test]
async fn app_metadata_is_merged_key_by_key() {
    let (s, _dir) = server(true).await;
    let token = s.register("roles@example.com", "pw").await;
    let id = claims(&token)["auth_identity_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/admin/auth-identities/{id}/app-metadata");
    let patch = |body: serde_json::Value| {
        let (s, path) = (&s, &path);
        async move { admin(s, reqwest::Method::PATCH, path, Some(KEY), Some(body)).await }
    };
    let r = admin(
        &s,
        reqwest::Method::POST,
        &format!("/admin/auth-identities/{id}/actors/user"),
        Some(KEY),
        Some(json!({"actor_id": "user_1"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    let r = patch(json!({"roles": ["role_admin"], "tier": {"level": 1, "note": null}})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["auth_identity"]["app_metadata"],
        json!({"user_id": "user_1", "roles": ["role_admin"], "tier": {"level": 1, "note": null}})
    );
    assert_eq!(r.body["auth_identity"]["id"], id);
    assert!(
        !r.text.contains("argon2") && !r.text.contains("provider_metadata"),
        "{}",
        r.text
    );

    let r = patch(json!({"roles": ["role_a", "role_b"], "tier": null, "absent": null})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let want = json!({"user_id": "user_1", "roles": ["role_a", "role_b"]});
    assert_eq!(r.body["auth_identity"]["app_metadata"], want);
    let read = admin(
        &s,
        reqwest::Method::GET,
        &format!("/admin/auth-identities/{id}"),
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(read.body["auth_identity"]["app_metadata"], want);
    // Tokens issued before stay valid: a merge is not a revocation.
    let refreshed = s.post_bearer("/auth/token/refresh", &token).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);

    // Actor links belong to the link routes: the whole body is refused.
    for body in [
        json!({"customer_id": "cus_1"}),
        json!({"roles": [], "user_id": null}),
    ] {
        let r = patch(body.clone()).await;
        let key = body
            .as_object()
            .unwrap()
            .keys()
            .find(|k| k.ends_with("_id"))
            .unwrap()
            .clone();
        let actor_type = key.strip_suffix("_id").unwrap();
        assert_eq!(
            (r.status, &r.body),
            (
                400,
                &json!({
                    "type": "invalid_data",
                    "message": format!(
                        "Invalid request: Field '{key}' is an actor link; use \
                         /admin/auth-identities/{{id}}/actors/{actor_type}"
                    ),
                })
            ),
            "{body}"
        );
    }
    // A bad key, and bodies that are not a JSON object.
    let r = patch(json!({"roles": [], "a.b": 1})).await;
    assert_eq!((r.status, &r.body["type"]), (400, &json!("invalid_data")));
    for body in [json!(["roles"]), json!("roles"), json!(null), json!(1)] {
        let r = patch(body.clone()).await;
        assert_eq!(
            (r.status, &r.body["type"]),
            (400, &json!("invalid_data")),
            "{body}"
        );
    }
    let r = Reply::of(
        s.client
            .patch(s.url(&path))
            .header("x-api-key", KEY)
            .form(&[("roles", "x")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((r.status, &r.body["type"]), (400, &json!("invalid_data")));
    let read = admin(
        &s,
        reqwest::Method::GET,
        &format!("/admin/auth-identities/{id}"),
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(
        read.body["auth_identity"]["app_metadata"], want,
        "refused requests change nothing"
    );

    let r = admin(
        &s,
        reqwest::Method::PATCH,
        "/admin/auth-identities/authid_missing/app-metadata",
        Some(KEY),
        Some(json!({"roles": []})),
    )
    .await;
    assert_eq!((r.status, &r.body["type"]), (404, &json!("not_found")));
    let r = admin(
        &s,
        reqwest::Method::PATCH,
        &path,
        None,
        Some(json!({"roles": []})),
    )
    .await;
    assert_eq!(r.status, 401, "the key is required");
}

/// 20 concurrent merges of 20 different keys into one identity all stay:
/// each is one atomic write in the store, not a read-modify-write.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_app_metadata_merges_keep_every_key() {
    let (s, _dir) = server(true).await;
    let r = twenty_at_once(s, "merges@example.com", |id, i| {
        (
            reqwest::Method::PATCH,
            format!("/admin/auth-identities/{id}/app-metadata"),
            json!({ format!("key{i}"): [i] }),
        )
    })
    .await;
    let app = r.body["auth_identity"]["app_metadata"].as_object().unwrap();
    for i in 0..20 {
        assert_eq!(app[&format!("key{i}")], json!([i]), "{app:?}");
    }
    assert_eq!(app.len(), 20);
}

/// Registers `email`, sends the 20 admin requests `request(id, i)` for its
/// identity at once (each must answer 200), and answers the identity as
/// read afterwards.
async fn twenty_at_once(
    s: TestServer,
    email: &str,
    request: impl Fn(&str, usize) -> (reqwest::Method, String, Value),
) -> Reply {
    let token = s.register(email, "pw").await;
    let id = claims(&token)["auth_identity_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let s = std::sync::Arc::new(s);
    let calls: Vec<_> = (0..20)
        .map(|i| {
            let s = s.clone();
            let (method, path, body) = request(&id, i);
            tokio::spawn(async move { admin(&s, method, &path, Some(KEY), Some(body)).await })
        })
        .collect();
    for call in calls {
        let r = call.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
    }
    admin(
        &s,
        reqwest::Method::GET,
        &format!("/admin/auth-identities/{id}"),
        Some(KEY),
        None,
    )
    .await
}
