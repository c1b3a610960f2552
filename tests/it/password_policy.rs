//! emailpass's password policy over real HTTP: the defaults, a stricter
//! policy, update after a reset, and passwords chosen before the policy.

use serde_json::json;

use crate::reset::{reset_token, update};
use crate::support::{Reply, TestServer, sqlite_config};

/// emailpass with `options` (TOML inline table body) as its options.
fn emailpass(options: &str) -> String {
    format!(
        "[[providers]]\nresolve = \"emailpass\"\nid = \"emailpass\"\n[providers.options]\n{options}\n"
    )
}

async fn register(s: &TestServer, email: &str, password: &str) -> Reply {
    s.post_json(
        "/auth/customer/emailpass/register",
        json!({"email": email, "password": password}),
    )
    .await
}

#[track_caller]
fn assert_refused(r: &Reply, message: &str) {
    assert_eq!(
        (r.status, &r.body),
        (400, &json!({"type": "invalid_data", "message": message})),
        "{}",
        r.text
    );
}

const TOO_COMMON: &str = "Password is too common. Choose a longer phrase.";

#[tokio::test]
async fn the_default_policy_refuses_short_long_and_common_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_toml(&sqlite_config(dir.path(), &emailpass(""))).await;
    assert_refused(
        &register(&s, "a@example.com", "short").await,
        "Password is too short. Use at least 8 characters.",
    );
    for common in ["password123", "supersecret", "Qwertyuiop", "iloveyou1"] {
        assert_refused(&register(&s, "a@example.com", common).await, TOO_COMMON);
    }
    assert_refused(
        &register(&s, "a@example.com", &"x".repeat(257)).await,
        "Password is too long. Use at most 256 bytes.",
    );
    // Nothing was stored by the refusals.
    let r = s.login("a@example.com", "correct horse battery").await;
    assert_eq!(r.status, 401, "{}", r.text);
    let r = register(&s, "a@example.com", "correct horse battery").await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Registering the existing identity again checks its password, as a
    // login does: the policy is for new passwords.
    let r = register(&s, "a@example.com", "short").await;
    assert_eq!(r.status, 401, "{}", r.text);

    // A reset's update follows the policy too, and a refusal keeps the token.
    let token = reset_token(&s, "customer", "a@example.com").await;
    let r = update(&s, "customer", &token, json!({"password": "letmein1"})).await;
    assert_refused(&r, TOO_COMMON);
    let r = update(
        &s,
        "customer",
        &token,
        json!({"password": "a brand new phrase"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        s.login("a@example.com", "a brand new phrase").await.status,
        200
    );
    s.stop().await;
}

#[tokio::test]
async fn a_stricter_policy_scores_with_the_email_as_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_toml(&sqlite_config(
        dir.path(),
        &emailpass("password_policy = { min_length = 10, min_strength = 3 }"),
    ))
    .await;
    assert_refused(
        &register(&s, "b@example.com", "abcdefghi").await,
        "Password is too short. Use at least 10 characters.",
    );
    let weak = "Password is too easy to guess. Choose a longer phrase, or add uncommon words.";
    assert_refused(
        &register(&s, "grace.hopper1906@example.com", "grace.hopper1906").await,
        weak,
    );
    assert_refused(&register(&s, "b@example.com", "kqkqkqkqkqkq").await, weak);
    let r = register(&s, "b@example.com", "violet kettle marches sideways").await;
    assert_eq!(r.status, 200, "{}", r.text);
    s.stop().await;
}

#[tokio::test]
async fn passwords_chosen_before_the_policy_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let off = "password_policy = { min_length = 1, reject_common = false }";
    let s = TestServer::start_toml(&sqlite_config(dir.path(), &emailpass(off))).await;
    let r = register(&s, "c@example.com", "123456").await;
    assert_eq!(r.status, 200, "{}", r.text);
    s.stop().await;
    // The same database under the default policy.
    let s = TestServer::start_toml(&sqlite_config(dir.path(), &emailpass(""))).await;
    let r = s.login("c@example.com", "123456").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = register(&s, "c@example.com", "123456").await;
    assert_eq!(
        r.status, 200,
        "registering it again still answers: {}",
        r.text
    );
    s.stop().await;
}

#[test]
fn bad_policies_are_startup_errors_naming_the_field() {
    for (options, field) in [
        (
            "password_policy = { min_strength = 5 }",
            "password_policy.min_strength",
        ),
        (
            "password_policy = { min_length = 0 }",
            "password_policy.min_length",
        ),
        (
            "password_policy = { max_length = 4 }",
            "password_policy.max_length",
        ),
        ("password_policy = { reject = true }", "password_policy"),
    ] {
        let toml = format!("[store]\nurl = \"memory://\"\n{}", emailpass(options));
        let e = auth_module::AuthModule::builder()
            .config(auth_module::Config::from_toml_str(&toml).expect("parses"))
            .build()
            .expect_err("refused")
            .to_string();
        assert!(e.contains(field), "{options}: {e}");
    }
}
