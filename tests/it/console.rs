//! The operator console (`[management] console = true`) and the management
//! routes it reads: search, an identity's MFA factors and passkeys, and the
//! sign-ins per hour.

use serde_json::{Value, json};

use crate::support::{EMAILPASS, Reply, TestServer, sqlite_config};

const KEY: &str = "console-key-0123456789abcdef";
const MFA_KEY: &str = "console mfa key of at least thirty-two chars";

async fn server(management: &str) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let toml = sqlite_config(
        dir.path(),
        &format!(
            "{EMAILPASS}\n[mfa]\nencryption_key = \"{MFA_KEY}\"\n\n[management]\n{management}\n"
        ),
    );
    (TestServer::start_toml(&toml).await, dir)
}

async fn get(s: &TestServer, path: &str, key: Option<&str>) -> Reply {
    let mut req = s.client.get(s.url(path));
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    Reply::of(req.send().await.unwrap()).await
}

fn header<'a>(r: &'a Reply, name: &str) -> &'a str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_console_is_off_unless_asked_for_and_needs_the_key() {
    let (s, _dir) = server(&format!("api_key = \"{KEY}\"")).await;
    assert_eq!(get(&s, "/admin/", None).await.status, 404);
    assert_eq!(get(&s, "/admin/assets/console.js", None).await.status, 404);

    let dir = tempfile::tempdir().unwrap();
    let toml = sqlite_config(
        dir.path(),
        &format!("{EMAILPASS}\n[management]\nconsole = true\n"),
    );
    let e = auth_server::AppConfig::from_toml_str(&toml).unwrap_err();
    assert_eq!(
        e.message(),
        "management.console: needs management.api_key (the console signs in with it)"
    );
}

#[tokio::test]
async fn the_console_is_served_with_a_strict_policy() {
    let (s, _dir) = server(&format!("api_key = \"{KEY}\"\nconsole = true")).await;
    let page = get(&s, "/admin/", None).await;
    assert_eq!(page.status, 200);
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&page, "cache-control"), "no-store");
    let csp = header(&page, "content-security-policy");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(header(&page, "x-content-type-options"), "nosniff");
    assert!(page.text.contains("<title>Auth console</title>"));
    // The page holds no key and no data: it asks the API with the typed key.
    assert!(!page.text.contains(KEY));

    let redirect = get(&s, "/admin", None).await;
    assert_eq!(redirect.status, 308);
    assert_eq!(header(&redirect, "location"), "/admin/");

    for (name, kind) in [
        ("console.js", "text/javascript; charset=utf-8"),
        ("api.js", "text/javascript; charset=utf-8"),
        ("chart.js", "text/javascript; charset=utf-8"),
        ("dom.js", "text/javascript; charset=utf-8"),
        ("console.css", "text/css; charset=utf-8"),
    ] {
        let r = get(&s, &format!("/admin/assets/{name}"), None).await;
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(header(&r, "content-type"), kind, "{name}");
        assert!(header(&r, "content-security-policy").contains("script-src 'self'"));
    }
    let missing = get(&s, "/admin/assets/../Cargo.toml", None).await;
    assert_eq!(missing.status, 404);
    let missing = get(&s, "/admin/assets/nope.js", None).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["type"], "not_found");
    // The API behind it still wants the key.
    assert_eq!(get(&s, "/admin/audit", None).await.status, 401);
}

#[tokio::test]
async fn search_finds_by_email_id_or_nothing() {
    let (s, _dir) = server(&format!("api_key = \"{KEY}\"")).await;
    let token = s.register("Finder@Example.com", "pw").await;
    s.register("other@example.com", "pw").await;
    let id = crate::support::claims(&token)["auth_identity_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let r = get(
        &s,
        "/admin/auth-identities/search?q=finder@example.COM",
        None,
    )
    .await;
    assert_eq!(r.status, 401);
    let r = get(
        &s,
        "/admin/auth-identities/search?q=%20FINDER@example.com%20",
        Some(KEY),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let found = r.body["auth_identities"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{}", r.body);
    assert_eq!(found[0]["id"], id.as_str());
    assert!(!r.text.contains("provider_metadata"), "{}", r.text);
    assert!(!r.text.contains("password"), "{}", r.text);

    let r = get(
        &s,
        &format!("/admin/auth-identities/search?q={id}"),
        Some(KEY),
    )
    .await;
    assert_eq!(r.body["auth_identities"][0]["id"], id.as_str());
    assert_eq!(r.body["auth_identities"].as_array().unwrap().len(), 1);

    let r = get(
        &s,
        "/admin/auth-identities/search?q=nobody@example.com",
        Some(KEY),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({ "auth_identities": [] }));

    for q in ["", "?q=", "?q=%20%20", &format!("?q={}", "a".repeat(321))] {
        let r = get(&s, &format!("/admin/auth-identities/search{q}"), Some(KEY)).await;
        assert_eq!(r.status, 400, "{q}: {}", r.text);
        assert_eq!(r.body["type"], "invalid_data");
    }
}

#[tokio::test]
async fn an_identitys_factors_and_passkeys_without_secrets() {
    let (s, _dir) = server(&format!("api_key = \"{KEY}\"")).await;
    let token = s.register("factors@example.com", "pw").await;
    let id = crate::support::claims(&token)["auth_identity_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = get(
        &s,
        &format!("/admin/auth-identities/{id}/mfa-factors"),
        Some(KEY),
    )
    .await;
    assert_eq!(r.body, json!({ "mfa_factors": [] }));

    let enrolled = Reply::of(
        s.client
            .post(s.url("/auth/mfa/factors"))
            .bearer_auth(&token)
            .json(&json!({ "provider": "totp" }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(enrolled.status, 200, "{}", enrolled.text);
    let secret = enrolled.body["secret"].as_str().unwrap().to_owned();

    let r = get(
        &s,
        &format!("/admin/auth-identities/{id}/mfa-factors"),
        Some(KEY),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let factors = r.body["mfa_factors"].as_array().unwrap();
    assert_eq!(factors.len(), 1);
    assert_eq!(factors[0]["provider"], "totp");
    assert_eq!(factors[0]["status"], "pending");
    assert!(!r.text.contains(&secret), "the secret leaked: {}", r.text);

    let r = get(
        &s,
        &format!("/admin/auth-identities/{id}/passkeys"),
        Some(KEY),
    )
    .await;
    assert_eq!(r.body, json!({ "passkeys": [] }));

    for path in ["mfa-factors", "passkeys"] {
        let r = get(
            &s,
            &format!("/admin/auth-identities/authid_missing/{path}"),
            Some(KEY),
        )
        .await;
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.body["type"], "not_found");
    }
}

fn current_hour(r: &Reply) -> &Value {
    r.body["buckets"].as_array().unwrap().last().unwrap()
}

#[tokio::test]
async fn sign_ins_are_counted_per_hour_by_outcome() {
    let (s, _dir) = server(&format!("api_key = \"{KEY}\"")).await;
    s.register("counted@example.com", "pw").await;
    for _ in 0..2 {
        assert_eq!(s.login("counted@example.com", "pw").await.status, 200);
    }
    assert_eq!(s.login("counted@example.com", "wrong").await.status, 401);

    let r = get(&s, "/admin/audit/sign-ins", Some(KEY)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let buckets = r.body["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 168);
    assert_eq!(r.body["partial"], false);
    assert_eq!(r.body["since"], buckets[0]["start"]);
    let now = current_hour(&r);
    assert_eq!(now["succeeded"], 2, "{now}");
    assert_eq!(now["failed"], 1, "{now}");
    assert_eq!(now["throttled"], 0, "{now}");
    let earlier: u64 = buckets[..167]
        .iter()
        .map(|b| b["succeeded"].as_u64().unwrap() + b["failed"].as_u64().unwrap())
        .sum();
    assert_eq!(earlier, 0);
    let start = now["start"].as_str().unwrap();
    assert!(start.ends_with(":00:00Z"), "{start}");

    let r = get(&s, "/admin/audit/sign-ins?hours=3", Some(KEY)).await;
    assert_eq!(r.body["buckets"].as_array().unwrap().len(), 3);
    assert_eq!(current_hour(&r)["succeeded"], 2);

    for bad in ["0", "169", "x", "-1", "1.5"] {
        let r = get(&s, &format!("/admin/audit/sign-ins?hours={bad}"), Some(KEY)).await;
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(
            r.body["message"],
            "Invalid request: 'hours' must be a whole number from 1 to 168"
        );
    }
    assert_eq!(get(&s, "/admin/audit/sign-ins", None).await.status, 401);
}
