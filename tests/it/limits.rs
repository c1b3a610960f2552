//! Rate limits over real HTTP: reached, answered 429 before any work, reset
//! by time; per address behind trusted proxies only; reset-password's silent
//! limit; registrations and failed updates.

use std::time::Duration;

use serde_json::json;

use crate::support::{EMAILPASS, Reply, TestServer, sqlite_config};

/// Every limit off but those in `limits` (TOML lines of `[limits]`).
const OFF: &str = "login_per_identifier_and_address = { count = 0 }\n\
                   login_per_identifier = { count = 0 }\n\
                   login_per_address = { count = 0 }\n\
                   reset_per_identifier = { count = 0 }\n\
                   reset_per_address = { count = 0 }\n\
                   register_per_address = { count = 0 }\n\
                   update_failures_per_address = { count = 0 }\n";

async fn server(http: &str, limits: &str) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut lines: Vec<&str> = OFF.lines().collect();
    for l in limits.lines() {
        let name = l.split('=').next().unwrap().trim();
        lines.retain(|x| x.split('=').next().unwrap().trim() != name);
        lines.push(l);
    }
    let toml = sqlite_config(
        dir.path(),
        &format!("{EMAILPASS}\n[limits]\n{}\n", lines.join("\n")),
    )
    .replace("[http]\n", &format!("[http]\n{http}"));
    (TestServer::start_toml(&toml).await, dir)
}

fn too_many(r: &Reply) {
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"type": "not_allowed", "message": "Too many attempts, try again later"})
    );
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1, "Retry-After: {retry}");
}

async fn login_from(s: &TestServer, email: &str, password: &str, xff: Option<&str>) -> Reply {
    let mut req = s
        .client
        .post(s.url("/auth/customer/emailpass"))
        .json(&json!({"email": email, "password": password}));
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    Reply::of(req.send().await.unwrap()).await
}

#[tokio::test]
async fn failed_logins_are_limited_then_the_window_ends() {
    let (s, _dir) = server(
        "",
        "login_per_identifier_and_address = { count = 3, window = \"1s\" }",
    )
    .await;
    s.register("limit@example.com", "right-pw").await;
    // Malformed requests never count.
    for _ in 0..10 {
        let r = s
            .post_json(
                "/auth/customer/emailpass",
                json!({"email": "limit@example.com"}),
            )
            .await;
        assert_eq!(r.status, 401);
    }
    for _ in 0..3 {
        assert_eq!(s.login("LIMIT@example.com", "wrong").await.status, 401);
    }
    too_many(&s.login("limit@example.com", "wrong").await);
    // Refused before any work, even with the right password.
    too_many(&s.login("limit@example.com", "right-pw").await);
    // Another identifier is not affected.
    assert_eq!(s.login("other@example.com", "wrong").await.status, 401);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(s.login("limit@example.com", "right-pw").await.status, 200);
    // A success clears the count for that address.
    for _ in 0..3 {
        assert_eq!(s.login("limit@example.com", "wrong").await.status, 401);
    }
    too_many(&s.login("limit@example.com", "wrong").await);
}

#[tokio::test]
async fn addresses_come_from_trusted_proxies_only() {
    let limit = "login_per_address = { count = 2, window = \"1m\" }";
    let (s, _dir) = server("trusted_proxies = [\"127.0.0.1/32\"]\n", limit).await;
    for _ in 0..2 {
        let r = login_from(&s, "a@example.com", "wrong", Some("1.1.1.1")).await;
        assert_eq!(r.status, 401);
    }
    too_many(&login_from(&s, "b@example.com", "wrong", Some("1.1.1.1")).await);
    // A client behind the proxy cannot pick another address by prepending one.
    too_many(&login_from(&s, "b@example.com", "wrong", Some("9.9.9.9, 1.1.1.1")).await);
    let r = login_from(&s, "a@example.com", "wrong", Some("2.2.2.2")).await;
    assert_eq!(r.status, 401, "another client address");

    // Without trusted proxies the header is ignored: everyone is 127.0.0.1.
    let (s, _dir) = server("", limit).await;
    for xff in ["1.1.1.1", "2.2.2.2"] {
        let r = login_from(&s, "a@example.com", "wrong", Some(xff)).await;
        assert_eq!(r.status, 401);
    }
    too_many(&login_from(&s, "a@example.com", "wrong", Some("3.3.3.3")).await);
}

#[tokio::test]
async fn reset_password_over_its_limit_answers_201_and_emits_nothing() {
    let (s, _dir) = server("", "reset_per_identifier = { count = 2, window = \"1m\" }").await;
    s.register("reset-limit@example.com", "pw").await;
    let mut events = s.service.events().subscribe();
    for _ in 0..4 {
        let r = s
            .post_json(
                "/auth/customer/emailpass/reset-password",
                json!({"identifier": "reset-limit@example.com"}),
            )
            .await;
        assert_eq!((r.status, r.text.as_str()), (201, "Created"));
    }
    s.service.events().flush().await;
    let mut emitted = 0;
    while events.try_recv().is_ok() {
        emitted += 1;
    }
    assert_eq!(emitted, 2);
}

#[tokio::test]
async fn registrations_and_failed_updates_are_limited() {
    let (s, _dir) = server(
        "",
        "register_per_address = { count = 2, window = \"1m\" }\n\
         update_failures_per_address = { count = 2, window = \"1m\" }",
    )
    .await;
    s.register("r1@example.com", "pw").await;
    s.register("r2@example.com", "pw").await;
    too_many(
        &s.post_json(
            "/auth/customer/emailpass/register",
            json!({"email": "r3@example.com", "password": "pw"}),
        )
        .await,
    );
    let forged_update = || async {
        Reply::of(
            s.client
                .post(s.url("/auth/customer/emailpass/update"))
                .header("authorization", "Bearer forged")
                .json(&json!({"password": "x"}))
                .send()
                .await
                .unwrap(),
        )
        .await
    };
    for _ in 0..2 {
        assert_eq!(forged_update().await.status, 401);
    }
    too_many(&forged_update().await);
}

/// Sixty wrong passwords for one e-mail sent at once from one address: each
/// takes its slot before the hash, so exactly the limit's count are checked
/// and the rest are refused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_wrong_logins_are_counted_before_the_hash() {
    let (s, _dir) = server(
        "",
        "login_per_identifier_and_address = { count = 10, window = \"1m\" }",
    )
    .await;
    s.register("burst@example.com", "the right password").await;
    let s = std::sync::Arc::new(s);
    let tries: Vec<_> = (0..60)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.login("burst@example.com", "wrong").await })
        })
        .collect();
    let (mut checked, mut refused) = (0, 0);
    for t in tries {
        let r = t.await.unwrap();
        match r.status {
            401 => checked += 1,
            429 => {
                too_many(&r);
                refused += 1;
            }
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    assert_eq!((checked, refused), (10, 50));
    // The right password is refused too, before any work.
    too_many(&s.login("burst@example.com", "the right password").await);
}

/// Many concurrent logins with the right password (one busy client) take
/// turns and give their slots back: none is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_right_logins_are_never_counted_as_failures() {
    let (s, _dir) = server(
        "",
        "login_per_identifier_and_address = { count = 3, window = \"1m\" }\n\
         login_per_identifier = { count = 3, window = \"1m\" }\n\
         login_per_address = { count = 3, window = \"1m\" }",
    )
    .await;
    s.register("busy@example.com", "the right password").await;
    let s = std::sync::Arc::new(s);
    let tries: Vec<_> = (0..16)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.login("busy@example.com", "the right password").await })
        })
        .collect();
    for t in tries {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // Nothing was left counted: three failures still fit.
    for _ in 0..3 {
        assert_eq!(s.login("busy@example.com", "wrong").await.status, 401);
    }
    too_many(&s.login("busy@example.com", "wrong").await);
}

/// A registration of an existing identity checks its password: a wrong one
/// counts as a failed login, so registration is no unthrottled oracle.
#[tokio::test]
async fn failed_registrations_of_an_existing_identity_count_as_failed_logins() {
    let (s, _dir) = server(
        "",
        "login_per_identifier_and_address = { count = 3, window = \"1m\" }",
    )
    .await;
    s.register("oracle@example.com", "the right password").await;
    let register = |password: &'static str| {
        s.post_json(
            "/auth/customer/emailpass/register",
            json!({"email": "oracle@example.com", "password": password}),
        )
    };
    for _ in 0..3 {
        let r = register("a guess").await;
        assert_eq!(r.status, 401, "{}", r.body);
        assert_eq!(r.body["message"], "Identity with email already exists");
    }
    too_many(&register("another guess").await);
    too_many(&register("the right password").await);
    too_many(&s.login("oracle@example.com", "the right password").await);
}

/// IPv6 clients are counted by their /64: a new address in the same /64
/// buys no new tries; another /64 does.
#[tokio::test]
async fn ipv6_clients_are_counted_by_their_64() {
    let limit = "login_per_address = { count = 2, window = \"1m\" }";
    let (s, _dir) = server("trusted_proxies = [\"127.0.0.1/32\"]\n", limit).await;
    for xff in ["2001:db8:1:2::1", "2001:db8:1:2::2"] {
        let r = login_from(&s, "v6@example.com", "wrong", Some(xff)).await;
        assert_eq!(r.status, 401);
    }
    too_many(&login_from(&s, "v6@example.com", "wrong", Some("2001:db8:1:2:ffff::9")).await);
    let r = login_from(&s, "v6@example.com", "wrong", Some("2001:db8:1:3::1")).await;
    assert_eq!(r.status, 401, "another /64");
}

/// Redirect-login starts (each writes OAuth state) are limited per address.
#[tokio::test]
async fn redirect_login_starts_are_limited_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let toml = sqlite_config(
        dir.path(),
        "[[providers]]\nresolve = \"google\"\nid = \"google\"\n[providers.options]\n\
         clientId = \"c\"\nclientSecret = \"s\"\ncallbackUrl = \"https://shop.example/cb\"\n\
         [limits]\nredirect_starts_per_address = { count = 3, window = \"1m\" }\n",
    );
    let s = TestServer::start_toml(&toml).await;
    for _ in 0..3 {
        let r = s.post_json("/auth/customer/google", json!({})).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body["location"].is_string());
    }
    too_many(&s.post_json("/auth/customer/google", json!({})).await);
}
