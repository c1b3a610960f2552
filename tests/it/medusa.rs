//! Users imported from Medusa keep their passwords: emailpass verifies the
//! scrypt-kdf values Medusa stores, upgrades them to argon2id on the first
//! successful login, and answers failed logins no faster than a scrypt
//! verification, so imported users cannot be told apart.

use std::time::{Duration, Instant};

use auth_module::{IdentityStore, Metadata, NewAuthIdentity, NewProviderIdentity};
use serde_json::json;

use crate::support::{EMAILPASS, TestServer, sqlite_config};

/// Made by the `scrypt-kdf` npm package Medusa uses, at Medusa's default
/// cost (logN 15, r 8, p 1), for the password `supersecret`.
const MEDUSA_HASH: &str = "c2NyeXB0AA8AAAAIAAAAAVJ1TAwQaL+Co7u6yFc16rIpo83vr7J6HIF/L87iFBxJHOGx7NzHnOsQu4QbMXB/aZJHRxQwbgK5Qu+F0Mm/ZImr5YXSaAuojo5aNHKoZdpH";

async fn import(s: &TestServer, email: &str, hash: &str) -> String {
    let mut secret = Metadata::new();
    secret.insert("password".into(), json!(hash));
    let mut public = Metadata::new();
    public.insert("email".into(), json!(email));
    let created = s
        .service
        .module()
        .identity_store()
        .create_auth_identity(NewAuthIdentity::with_provider_identity(
            NewProviderIdentity::new("emailpass", email)
                .provider_metadata(secret)
                .user_metadata(public),
        ))
        .await
        .expect("import");
    created.id
}

fn stored_hash(identity: &auth_module::AuthIdentity) -> String {
    identity.provider_identities[0]
        .provider_metadata
        .as_ref()
        .and_then(|m| m.get("password"))
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_medusa_password_logs_in_and_is_upgraded_to_argon2id() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_toml(&sqlite_config(dir.path(), EMAILPASS)).await;
    let id = import(&s, "imported@example.com", MEDUSA_HASH).await;

    let wrong = s.login("imported@example.com", "not it").await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    let ok = s.login("imported@example.com", "supersecret").await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let store = s.service.module().identity_store();
    let upgraded = stored_hash(&store.retrieve_auth_identity(&id).await.unwrap());
    assert!(upgraded.starts_with("$argon2id$"), "{upgraded}");
    // The old password still works, now against argon2id; a wrong one does not.
    assert_eq!(
        s.login("imported@example.com", "supersecret").await.status,
        200
    );
    assert_eq!(
        s.login("imported@example.com", "Supersecret").await.status,
        401
    );
}

/// The median of five failed logins, each from a fresh request.
async fn median_failure(s: &TestServer, email: &str) -> Duration {
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let r = s.login(email, "a wrong password").await;
        times.push(started.elapsed());
        assert_eq!(r.status, 401);
    }
    times.sort();
    times[2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_take_as_long_as_a_scrypt_check() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_toml(&sqlite_config(dir.path(), EMAILPASS)).await;
    import(&s, "medusa@example.com", MEDUSA_HASH).await;
    s.register("argon@example.com", "an argon2 password").await;
    let scrypt_user = median_failure(&s, "medusa@example.com").await;
    let argon2_user = median_failure(&s, "argon@example.com").await;
    let unknown = median_failure(&s, "nobody@example.com").await;
    // A timer pads the faster two up to the scrypt check's time; the margin
    // is for a shared, noisy machine.
    for (what, took) in [("argon2 user", argon2_user), ("unknown email", unknown)] {
        assert!(
            took.as_secs_f64() >= 0.75 * scrypt_user.as_secs_f64(),
            "{what}: {took:?} against an imported user's {scrypt_user:?}"
        );
    }
}
