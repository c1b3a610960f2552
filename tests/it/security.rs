//! The security center over real HTTP on SQLite: devices (listed, ended one
//! by one or all but the current, a revoked JWT, the idle lifetime, the
//! `auth.new_device` event) and the audit log (entries of logins and
//! changes, the management route's filters and pages, the chain check
//! finding an edited row, `auth-server audit export`, retention).

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{EMAILPASS, Reply, TestServer, claims, sqlite_config};

const KEY: &str = "management-key-0123456789";
const PASSWORD: &str = "a long enough password";

fn config(dir: &std::path::Path, extra: &str) -> String {
    sqlite_config(
        dir,
        &format!("{EMAILPASS}\n[management]\napi_key = \"{KEY}\"\n{extra}"),
    )
}

/// [`config`] with `[http] device_idle_ttl = ttl`.
fn config_with_idle_ttl(dir: &std::path::Path, ttl: &str) -> String {
    config(dir, "").replacen(
        "[http]\n",
        &format!("[http]\ndevice_idle_ttl = \"{ttl}\"\n"),
        1,
    )
}

async fn call(
    s: &TestServer,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    ua: &str,
    body: Option<Value>,
) -> Reply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = s
        .client
        .request(method, s.url(path))
        .header("user-agent", ua);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    Reply::of(req.send().await.unwrap()).await
}

async fn login_as(s: &TestServer, email: &str, ua: &str) -> String {
    let r = call(
        s,
        "POST",
        "/auth/customer/emailpass",
        None,
        ua,
        Some(json!({"email": email, "password": PASSWORD})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.token()
}

async fn refresh(s: &TestServer, token: &str) -> Reply {
    s.post_bearer("/auth/token/refresh", token).await
}

async fn admin(s: &TestServer, path: &str) -> Reply {
    Reply::of(
        s.client
            .get(s.url(path))
            .header("x-api-key", KEY)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Registers `email` and links it to a customer, so its logins are full.
async fn customer(s: &TestServer, email: &str) -> String {
    let token = s.register(email, PASSWORD).await;
    let id = claims(&token)["auth_identity_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = Reply::of(
        s.client
            .post(s.url(&format!("/admin/auth-identities/{id}/actors/customer")))
            .header("x-api-key", KEY)
            .json(&json!({"actor_id": format!("cus_{id}")}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    id
}

#[tokio::test(flavor = "multi_thread")]
async fn devices_are_listed_and_ended_one_by_one_or_all_but_this_one() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_toml(&config(dir.path(), "")).await;
    customer(&s, "dev@example.com").await;
    let laptop = login_as(&s, "dev@example.com", "Laptop/1.0").await;
    let phone = login_as(&s, "dev@example.com", "Phone/2.0").await;
    let tablet = login_as(&s, "dev@example.com", "Tablet/3.0").await;
    let phone_device = claims(&phone)["device_id"].as_str().unwrap().to_owned();
    assert!(phone_device.starts_with("authdev_"), "{phone_device}");
    // A refresh keeps the device.
    let refreshed = refresh(&s, &phone).await.token();
    assert_eq!(claims(&refreshed)["device_id"], phone_device.as_str());
    let phone_session = s.open_session(&phone).await;

    let r = call(
        &s,
        "GET",
        "/auth/devices",
        Some(&laptop),
        "Laptop/1.0",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let devices = r.body["devices"].as_array().unwrap();
    // The registration's device and the three logins.
    assert_eq!(devices.len(), 4, "{}", r.text);
    let current: Vec<&Value> = devices.iter().filter(|d| d["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], claims(&laptop)["device_id"]);
    assert_eq!(current[0]["user_agent"], "Laptop/1.0");
    assert_eq!(current[0]["network"], "127.0.0.0/24");
    assert_eq!(current[0]["auth_provider"], "emailpass");
    for key in ["created_at", "last_seen_at"] {
        assert!(current[0][key].as_str().unwrap().ends_with('Z'), "{key}");
    }

    // One device ended: its token, the token refreshed from it and its
    // session are refused at once; the others are not.
    let path = format!("/auth/devices/{phone_device}");
    let r = call(&s, "DELETE", &path, Some(&laptop), "Laptop/1.0", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"id": phone_device, "object": "device", "deleted": true})
    );
    assert_eq!(refresh(&s, &phone).await.status, 401);
    assert_eq!(refresh(&s, &refreshed).await.status, 401);
    assert_eq!(
        s.post_cookie("/auth/token/refresh", &phone_session)
            .await
            .status,
        401
    );
    assert_eq!(refresh(&s, &tablet).await.status, 200);
    // Again: gone.
    let r = call(&s, "DELETE", &path, Some(&laptop), "Laptop/1.0", None).await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(r.body["type"], "not_found");
    // Without other=true nothing ends.
    let r = call(&s, "DELETE", "/auth/devices", Some(&laptop), "L", None).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(refresh(&s, &tablet).await.status, 200);

    // All but this one.
    let r = call(
        &s,
        "DELETE",
        "/auth/devices?other=true",
        Some(&laptop),
        "Laptop/1.0",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["deleted"].as_array().unwrap().len(), 2, "{}", r.text);
    assert_eq!(refresh(&s, &tablet).await.status, 401);
    assert_eq!(refresh(&s, &laptop).await.status, 200);
    let r = call(
        &s,
        "GET",
        "/auth/devices",
        Some(&laptop),
        "Laptop/1.0",
        None,
    )
    .await;
    assert_eq!(r.body["devices"].as_array().unwrap().len(), 1, "{}", r.text);

    // Another identity's device is as absent.
    customer(&s, "other@example.com").await;
    let other = login_as(&s, "other@example.com", "X").await;
    let laptop_device = claims(&laptop)["device_id"].as_str().unwrap().to_owned();
    let r = call(
        &s,
        "DELETE",
        &format!("/auth/devices/{laptop_device}"),
        Some(&other),
        "X",
        None,
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(refresh(&s, &laptop).await.status, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_jwt_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_toml(&config(dir.path(), "")).await;
    customer(&s, "rev@example.com").await;
    let token = login_as(&s, "rev@example.com", "App/1").await;
    let other = login_as(&s, "rev@example.com", "App/2").await;
    let refreshed = refresh(&s, &token).await.token();
    let session = s.open_session(&token).await;

    let r = s.post_bearer("/auth/token/revoke", &token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, json!({"success": true}));
    assert_eq!(refresh(&s, &token).await.status, 401);
    assert_eq!(refresh(&s, &refreshed).await.status, 401);
    assert_eq!(
        s.post_cookie("/auth/token/refresh", &session).await.status,
        401
    );
    // Revoking it again: it proves nothing any more.
    assert_eq!(
        s.post_bearer("/auth/token/revoke", &token).await.status,
        401
    );
    // The identity's other device is untouched.
    assert_eq!(refresh(&s, &other).await.status, 200);
    // A session cookie alone does not revoke (bearer only).
    let cookie = s.open_session(&other).await;
    assert_eq!(
        s.post_cookie("/auth/token/revoke", &cookie).await.status,
        401
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_device_unused_for_its_idle_lifetime_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_toml(&config_with_idle_ttl(dir.path(), "2s")).await;
    customer(&s, "idle@example.com").await;
    let token = login_as(&s, "idle@example.com", "App/1").await;
    assert_eq!(refresh(&s, &token).await.status, 200);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(refresh(&s, &token).await.status, 401);
    // The sweep removes what is left.
    let fresh = login_as(&s, "idle@example.com", "App/1").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(s.service.gate().devices().sweep().await.unwrap() >= 1);
    assert_eq!(refresh(&s, &fresh).await.status, 401);
    s.stop().await;
}

/// An identity keeps 100 devices, and a burst of sign-ins ends its own
/// devices before one in use: a token refreshed once (its device used) still
/// refreshes after 101 more sign-ins, as a login load followed by a refresh
/// load with the first token does.
#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_sign_ins_ends_its_own_devices_before_one_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let limits_off = "[limits]\nlogin_per_identifier = { count = 0 }\n\
                      login_per_address = { count = 0 }\n";
    let s = TestServer::start_toml(&config(dir.path(), limits_off)).await;
    customer(&s, "burst@example.com").await;
    let first = login_as(&s, "burst@example.com", "App/1").await;
    let r = refresh(&s, &first).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut last = String::new();
    for _ in 0..101 {
        last = login_as(&s, "burst@example.com", "Script/1").await;
    }
    let r = refresh(&s, &first).await;
    assert_eq!(r.status, 200, "the device in use is kept: {}", r.text);
    let r = call(&s, "GET", "/auth/devices", Some(&last), "Script/1", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let devices = r.body["devices"].as_array().unwrap().clone();
    assert_eq!(devices.len(), 100, "an identity keeps 100 devices");
    let first_device = claims(&first)["device_id"].as_str().unwrap().to_owned();
    assert!(
        devices.iter().any(|d| d["id"] == first_device.as_str()),
        "the first device is among them"
    );
    s.stop().await;
}

#[test]
fn the_idle_lifetime_must_be_positive() {
    let dir = tempfile::tempdir().unwrap();
    let toml = config_with_idle_ttl(dir.path(), "0s");
    let e = auth_server::AppConfig::from_toml_str(&toml)
        .expect_err("refused")
        .to_string();
    assert!(e.contains("http.device_idle_ttl"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_user_agent_and_network_is_announced() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_toml(&config(dir.path(), "")).await;
    let mut events = s.service.events().subscribe();
    let id = customer(&s, "new@example.com").await;
    login_as(&s, "new@example.com", "Browser/9").await;
    login_as(&s, "new@example.com", "Browser/9").await;
    s.service.events().flush().await;
    let mut announced = Vec::new();
    while let Ok(e) = events.try_recv() {
        if e.name == auth_module::flows::NEW_DEVICE_EVENT {
            announced.push(e.data);
        }
    }
    // Not the registration (nothing was used before it), once for the new
    // agent, not again when it comes back.
    assert_eq!(announced.len(), 1, "{announced:?}");
    assert_eq!(announced[0]["auth_identity_id"], id.as_str());
    assert_eq!(announced[0]["user_agent"], "Browser/9");
    assert_eq!(announced[0]["network"], "127.0.0.0/24");
    s.stop().await;
}

/// The audit entries of `query` through the management route.
async fn entries(s: &TestServer, query: &str) -> Vec<Value> {
    let r = admin(s, &format!("/admin/audit?{query}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["entries"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn logins_and_changes_are_audited_and_queryable() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_toml(&config(dir.path(), "")).await;
    let id = customer(&s, "aud@example.com").await;
    let token = login_as(&s, "aud@example.com", "Browser/1").await;
    // A wrong password, an unknown e-mail.
    for email in ["aud@example.com", "nobody-here@example.com"] {
        let r = s
            .post_json(
                "/auth/customer/emailpass",
                json!({"email": email, "password": "wrong password!"}),
            )
            .await;
        assert_eq!(r.status, 401);
    }
    assert_eq!(
        s.post_bearer("/auth/token/revoke", &token).await.status,
        200
    );

    let all = entries(&s, "").await;
    let actions: Vec<(&str, &str)> = all
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    // Newest first.
    assert_eq!(
        actions,
        [
            ("token.revoked", "succeeded"),
            ("login", "failed"),
            ("login", "failed"),
            ("login", "succeeded"),
            ("link", "succeeded"),
            ("register", "succeeded"),
        ],
        "{all:?}"
    );
    let login = &all[3];
    assert_eq!(login["auth_identity_id"], id.as_str());
    assert_eq!(login["provider"], "emailpass");
    assert_eq!(login["actor_type"], "customer");
    assert_eq!(login["user_agent"], "Browser/1");
    assert_eq!(login["network"], "127.0.0.0/24");
    assert!(login["id"].as_str().unwrap().starts_with("authaud_"));
    assert_eq!(login["hash"].as_str().unwrap().len(), 64);
    // Nothing secret, no e-mail of an unknown identity, anywhere.
    let text = serde_json::to_string(&all).unwrap();
    for secret in ["wrong password!", PASSWORD, "nobody-here", &token] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }

    // Filters.
    let mine = entries(&s, &format!("auth_identity_id={id}")).await;
    assert_eq!(mine.len(), 4, "{mine:?}");
    let failed = entries(&s, "action=login").await;
    assert_eq!(failed.len(), 3);
    let future = entries(&s, "since=2999-01-01T00:00:00Z").await;
    assert!(future.is_empty());
    let past = entries(&s, "until=2000-01-01T00:00:00Z").await;
    assert!(past.is_empty());
    // Pages: two at a time, the cursor carrying on where the last stopped.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let r = admin(&s, &format!("/admin/audit?limit=2&cursor={cursor}")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        seen.extend(r.body["entries"].as_array().unwrap().clone());
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, all);
    // Bad parameters.
    for q in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "since=yesterday",
        "cursor=abc",
    ] {
        let r = admin(&s, &format!("/admin/audit?{q}")).await;
        assert_eq!(r.status, 400, "{q}: {}", r.text);
        assert_eq!(r.body["type"], "invalid_data", "{q}");
    }
    // The key is required.
    let r = Reply::of(s.client.get(s.url("/admin/audit")).send().await.unwrap()).await;
    assert_eq!(r.status, 401);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn throttled_logins_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_toml(&config(
        dir.path(),
        "[limits]\nlogin_per_identifier = { count = 1 }\n",
    ))
    .await;
    customer(&s, "thr@example.com").await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let r = s
            .post_json(
                "/auth/customer/emailpass",
                json!({"email": "thr@example.com", "password": "wrong password!"}),
            )
            .await;
        statuses.push(r.status);
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    let throttled = entries(&s, "action=login")
        .await
        .into_iter()
        .filter(|e| e["outcome"] == "throttled")
        .count();
    assert!(throttled >= 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edited_row_breaks_the_chain_at_that_row() {
    let dir = tempfile::tempdir().unwrap();
    let toml = config(dir.path(), "");
    let s = TestServer::start_toml(&toml).await;
    customer(&s, "chain@example.com").await;
    for ua in ["A", "B", "C"] {
        login_as(&s, "chain@example.com", ua).await;
    }
    let app = auth_server::AppConfig::from_toml_str(&toml).unwrap();
    let report = auth_server::audit_verify(&app).await.unwrap();
    assert_eq!(report.broken, None);
    assert_eq!(report.checked, 5);
    assert_eq!(report.start_seq, 1);

    // Export: JSON lines, oldest first.
    let mut out = Vec::new();
    assert_eq!(
        auth_server::audit_export(&app, None, &mut out)
            .await
            .unwrap(),
        5
    );
    let lines: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0]["action"], "register");
    assert_eq!(lines[4]["user_agent"], "C");
    let mut none = Vec::new();
    let later = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    assert_eq!(
        auth_server::audit_export(&app, Some(later), &mut none)
            .await
            .unwrap(),
        0
    );

    // Someone with the database edits the fourth entry.
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}/auth.db", dir.path().display()))
        .await
        .unwrap();
    sqlx::query("UPDATE auth_audit SET user_agent = 'forged' WHERE seq = 4")
        .execute(&db)
        .await
        .unwrap();
    let report = auth_server::audit_verify(&app).await.unwrap();
    let broken = report.broken.expect("the edit is found");
    assert_eq!((broken.seq, broken.reason), (4, "edited"));
    assert_eq!(broken.id, lines[3]["id"].as_str().unwrap());
    // A removed row is found too (after the edit is undone).
    sqlx::query("UPDATE auth_audit SET user_agent = 'B' WHERE seq = 4")
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(auth_server::audit_verify(&app).await.unwrap().broken, None);
    sqlx::query("DELETE FROM auth_audit WHERE seq = 3")
        .execute(&db)
        .await
        .unwrap();
    let broken = auth_server::audit_verify(&app)
        .await
        .unwrap()
        .broken
        .unwrap();
    assert_eq!((broken.seq, broken.reason), (4, "missing"));
    db.close().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_removes_old_entries_and_keeps_the_chain_verifiable() {
    let dir = tempfile::tempdir().unwrap();
    let toml = config(dir.path(), "");
    let s = TestServer::start_toml(&toml).await;
    customer(&s, "ret@example.com").await;
    login_as(&s, "ret@example.com", "A").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    login_as(&s, "ret@example.com", "B").await;
    let audit = s.service.module().audit();
    // Entries older than a second go; the newest stays.
    assert_eq!(audit.sweep(Duration::from_secs(1)).await.unwrap(), 3);
    let left = entries(&s, "").await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["user_agent"], "B");
    let app = auth_server::AppConfig::from_toml_str(&toml).unwrap();
    let report = auth_server::audit_verify(&app).await.unwrap();
    assert_eq!(report.broken, None);
    assert_eq!((report.start_seq, report.checked), (4, 1));
    // Appending carries on from the kept head.
    login_as(&s, "ret@example.com", "C").await;
    let report = auth_server::audit_verify(&app).await.unwrap();
    assert_eq!((report.broken, report.checked), (None, 2));
    // The default retention is 400 days, and it must be positive.
    assert_eq!(
        s.service.module().audit_retention(),
        Duration::from_secs(400 * 24 * 3600)
    );
    let e =
        auth_server::AppConfig::from_toml_str(&config(dir.path(), "[audit]\nretention = \"0s\"\n"))
            .expect_err("a zero retention is refused")
            .to_string();
    assert!(e.contains("audit.retention: must be positive"), "{e}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_log_off_nothing_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_toml(&config(dir.path(), "[audit]\nenabled = false\n")).await;
    customer(&s, "off@example.com").await;
    login_as(&s, "off@example.com", "A").await;
    let r = admin(&s, "/admin/audit").await;
    assert_eq!(r.status, 404, "{}", r.text);
    let app = auth_server::AppConfig::from_toml_str(&config(dir.path(), "")).unwrap();
    let report = auth_server::audit_verify(&app).await.unwrap();
    assert_eq!(report.checked, 0);
    s.stop().await;
}
