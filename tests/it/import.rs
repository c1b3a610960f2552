//! `auth-server import-medusa` from a PostgreSQL database shaped like Medusa
//! 2.21's auth tables into the server's SQLite store: ids, timestamps, links
//! and scrypt passwords kept, soft-deleted rows skipped, email collisions
//! resolved toward the most recently updated identity, bad rows reported,
//! identities with MFA held back without `[mfa]`, a dry run writing nothing,
//! and a second run importing nothing twice but adding missing MFA factors.
//! The imported customer then logs in over HTTP with the old password.

use auth_module::{IdentityStore, NewAuthIdentity, NewMfaFactor, NewProviderIdentity};
use auth_server::{ImportOptions, import_medusa};
use serde_json::json;

use crate::support::{EMAILPASS, TestServer, claims, pg_url, sqlite_config};

/// The TOTP secret `JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP` as @medusajs/auth
/// 2.21.2 seals it with [`MEDUSA_MFA_KEY`].
const MEDUSA_TOTP: &str =
    "v1:f0RnJz9pnDfZAFHJ:sQo_ElIJGdkBSfSeotonTQ:uJKkm9BZbcClr3ZW03OUJuNc3lrLKI2YWS5cbdw6acY";
const MEDUSA_MFA_KEY: &str = "an MFA encryption key of at least 32 characters";

/// `supersecret` at Medusa's scrypt-kdf cost, made by the npm package.
const MEDUSA_HASH: &str = "c2NyeXB0AA8AAAAIAAAAAVJ1TAwQaL+Co7u6yFc16rIpo83vr7J6HIF/L87iFBxJHOGx7NzHnOsQu4QbMXB/aZJHRxQwbgK5Qu+F0Mm/ZImr5YXSaAuojo5aNHKoZdpH";

async fn medusa_schema(pool: &sqlx::PgPool, schema: &str) {
    let statements = [
        format!("CREATE SCHEMA \"{schema}\""),
        format!(
            "CREATE TABLE \"{schema}\".auth_identity (id text PRIMARY KEY, app_metadata jsonb, \
             created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(), \
             deleted_at timestamptz)"
        ),
        format!(
            "CREATE TABLE \"{schema}\".provider_identity (id text PRIMARY KEY, entity_id text NOT NULL, \
             provider text NOT NULL, auth_identity_id text NOT NULL REFERENCES \"{schema}\".auth_identity (id), \
             user_metadata jsonb, provider_metadata jsonb, \
             created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(), \
             deleted_at timestamptz)"
        ),
        // As @medusajs/auth 2.21.2's migration creates them.
        format!(
            "CREATE TABLE \"{schema}\".auth_mfa_factor (id text PRIMARY KEY, auth_identity_id text NOT NULL, \
             provider text NOT NULL, status text NOT NULL, provider_metadata jsonb, metadata jsonb, \
             created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(), \
             deleted_at timestamptz)"
        ),
        format!(
            "CREATE TABLE \"{schema}\".auth_mfa_recovery_code (id text PRIMARY KEY, auth_identity_id text NOT NULL, \
             code_hash text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), \
             updated_at timestamptz NOT NULL DEFAULT now(), deleted_at timestamptz)"
        ),
    ];
    for sql in statements {
        sqlx::query(&sql).execute(pool).await.expect("schema");
    }
    let identity = |id: &str, app: &str, updated: &str, deleted: bool| {
        format!(
            "INSERT INTO \"{schema}\".auth_identity (id, app_metadata, created_at, updated_at, deleted_at) \
             VALUES ('{id}', {app}, '2024-01-02T03:04:05.678Z', '{updated}', {})",
            if deleted { "now()" } else { "NULL" }
        )
    };
    let provider = |id: &str, entity: &str, kind: &str, owner: &str, secret: &str| {
        format!(
            "INSERT INTO \"{schema}\".provider_identity (id, entity_id, provider, auth_identity_id, \
             user_metadata, provider_metadata, created_at, updated_at) VALUES \
             ('{id}', '{entity}', '{kind}', '{owner}', '{{\"email\": \"{entity}\"}}', \
             '{{\"password\": \"{secret}\"}}', '2024-01-02T03:04:05.678Z', '2024-02-01T00:00:00Z')"
        )
    };
    let rows = [
        // The customer: kept, with its link and its scrypt password.
        identity(
            "authid_ada",
            "'{\"customer_id\": \"cus_ada\"}'",
            "2024-06-01T00:00:00Z",
            false,
        ),
        provider(
            "provid_ada",
            "Ada@Example.com",
            "emailpass",
            "authid_ada",
            MEDUSA_HASH,
        ),
        // The same address under our rule, updated earlier: reported.
        identity("authid_ada_old", "NULL", "2024-03-01T00:00:00Z", false),
        provider(
            "provid_ada_old",
            "ada@example.com",
            "emailpass",
            "authid_ada_old",
            MEDUSA_HASH,
        ),
        // Soft-deleted: never read.
        identity("authid_gone", "NULL", "2024-03-01T00:00:00Z", true),
        provider(
            "provid_gone",
            "gone@example.com",
            "emailpass",
            "authid_gone",
            MEDUSA_HASH,
        ),
        // A bad row: app_metadata is not an object.
        identity("authid_bad", "'5'", "2024-03-01T00:00:00Z", false),
        provider(
            "provid_bad",
            "bad@example.com",
            "emailpass",
            "authid_bad",
            MEDUSA_HASH,
        ),
        // Another provider value, mapped with --provider-map.
        identity(
            "authid_bob",
            "'{\"user_id\": \"user_bob\"}'",
            "2024-03-01T00:00:00Z",
            false,
        ),
        provider(
            "provid_bob",
            "bob@example.com",
            "email-legacy",
            "authid_bob",
            MEDUSA_HASH,
        ),
        // With an MFA factor: imported, and listed.
        identity("authid_cy", "NULL", "2024-03-01T00:00:00Z", false),
        provider(
            "provid_cy",
            "cy@example.com",
            "emailpass",
            "authid_cy",
            MEDUSA_HASH,
        ),
        format!(
            "INSERT INTO \"{schema}\".auth_mfa_factor (id, auth_identity_id, provider, status, provider_metadata, metadata) \
             VALUES ('authmfa_1', 'authid_cy', 'totp', 'enabled', '{{\"secret\": \"{MEDUSA_TOTP}\"}}', '{{\"label\": \"phone\"}}')"
        ),
        format!(
            "INSERT INTO \"{schema}\".auth_mfa_recovery_code (id, auth_identity_id, code_hash) \
             VALUES ('authmfarc_1', 'authid_cy', '{MEDUSA_HASH}')"
        ),
    ];
    for sql in rows {
        sqlx::query(&sql).execute(pool).await.expect("row");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_medusa_database_is_imported_and_its_customers_log_in() {
    let Some(pool) = crate::postgres::admin_pool().await else {
        return;
    };
    let schema = format!(
        "medusa_{}",
        auth_module::generate_id("x").to_ascii_lowercase()
    );
    medusa_schema(&pool, &schema).await;
    let dir = tempfile::tempdir().unwrap();
    let toml = sqlite_config(dir.path(), EMAILPASS);
    let config = auth_server::AppConfig::from_toml_str(&toml).unwrap();
    let mut options = ImportOptions::new(pg_url());
    options.schema = schema.clone();
    options.provider_map = ImportOptions::parse_provider_map("email-legacy=emailpass").unwrap();

    // A dry run writes nothing but says what would happen.
    options.dry_run = true;
    let dry = import_medusa(&config, &options, &|_, _| {}).await.unwrap();
    options.dry_run = false;
    let run = import_medusa(&config, &options, &|_, _| {}).await.unwrap();
    for summary in [&dry, &run] {
        assert_eq!(summary.read, 5, "{summary}");
        assert_eq!(summary.imported, 2, "{summary}");
        let skipped: Vec<&str> = summary.skipped.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(skipped, ["authid_ada_old", "authid_bad"], "{summary}");
        // Without [mfa], the identity with a factor is held back, not
        // imported without it.
        assert_eq!(summary.with_mfa, ["authid_cy"], "{summary}");
        assert_eq!(summary.recovery_codes_dropped, ["authid_cy"], "{summary}");
    }
    assert_eq!(dry.already_present, 0);
    let text = run.to_string();
    assert!(
        text.contains("authid_ada_old") && text.contains("updated more recently"),
        "{text}"
    );
    assert!(text.contains("app_metadata is not a JSON object"), "{text}");
    assert!(
        text.contains("held back for MFA 1") && text.contains("[mfa] encryption_key"),
        "{text}"
    );

    // Again: nothing twice, and the identity with MFA is still held back.
    let again = import_medusa(&config, &options, &|_, _| {}).await.unwrap();
    assert_eq!((again.imported, again.already_present), (0, 2), "{again}");
    assert_eq!(again.with_mfa, ["authid_cy"], "{again}");

    // The customer logs in with the Medusa password, keeping its link.
    let s = TestServer::start_toml(&toml).await;
    let r = s.login("ada@example.com", "supersecret").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let c = claims(&r.token());
    assert_eq!(c["auth_identity_id"], "authid_ada");
    assert_eq!(c["actor_id"], "cus_ada");
    assert_eq!(c["app_metadata"], json!({"customer_id": "cus_ada"}));
    let imported = s
        .service
        .module()
        .retrieve_auth_identity("authid_ada")
        .await
        .unwrap();
    assert_eq!(
        imported.created_at,
        time::macros::datetime!(2024-01-02 03:04:05.678 UTC)
    );
    assert_eq!(imported.provider_identities[0].id, "provid_ada");
    assert_eq!(imported.provider_identities[0].entity_id, "ada@example.com");
    // A token Medusa issued with the same secret keeps working until it
    // expires: same claims, no credential version (0, as imported).
    let now = crate::support::now();
    let medusa_token = crate::support::sign(
        &json!({
            "actor_id": "cus_ada", "actor_type": "customer", "auth_identity_id": "authid_ada",
            "auth_provider": "emailpass", "app_metadata": {"customer_id": "cus_ada"},
            "user_metadata": {}, "iat": now, "exp": now + 3600
        }),
        crate::support::SECRET,
    );
    let refreshed = s.post_bearer("/auth/token/refresh", &medusa_token).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    assert_eq!(claims(&refreshed.token())["actor_id"], "cus_ada");
    let bob = s.login("bob@example.com", "supersecret").await;
    assert_eq!(bob.status, 200, "{}", bob.body);
    // Held back: not in the store at all, so nobody logs in without MFA.
    let store = s.service.module().identity_store();
    assert_eq!(
        store
            .retrieve_auth_identity("authid_cy")
            .await
            .unwrap_err()
            .kind(),
        auth_module::ErrorKind::NotFound
    );
    assert_eq!(s.login("cy@example.com", "supersecret").await.status, 401);
    s.stop().await;
    sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
}

/// With `[mfa]` holding Medusa's key, factors come along: the imported user
/// is challenged at login and answers with the authenticator it already has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn medusa_mfa_factors_are_imported_with_the_same_key() {
    let Some(pool) = crate::postgres::admin_pool().await else {
        return;
    };
    let schema = format!(
        "medusa_{}",
        auth_module::generate_id("m").to_ascii_lowercase()
    );
    medusa_schema(&pool, &schema).await;
    let dir = tempfile::tempdir().unwrap();
    let toml = sqlite_config(
        dir.path(),
        &format!("{EMAILPASS}\n[mfa]\nencryption_key = \"{MEDUSA_MFA_KEY}\"\n"),
    );
    let config = auth_server::AppConfig::from_toml_str(&toml).unwrap();
    let mut options = ImportOptions::new(pg_url());
    options.schema = schema.clone();
    options.provider_map = ImportOptions::parse_provider_map("email-legacy=emailpass").unwrap();
    let summary = import_medusa(&config, &options, &|_, _| {}).await.unwrap();
    assert_eq!(
        (summary.imported, summary.mfa_factors_imported),
        (3, 1),
        "{summary}"
    );
    assert!(summary.with_mfa.is_empty(), "{summary}");
    assert_eq!(summary.recovery_codes_dropped, ["authid_cy"], "{summary}");

    let s = TestServer::start_toml(&toml).await;
    let r = s.login("cy@example.com", "supersecret").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["mfa_required"], true, "{}", r.body);
    assert_eq!(r.body["mfa_challenge"]["methods"], json!(["totp"]));
    let totp = auth_module::mfa::Totp::new(
        auth_module::mfa::base32_decode("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP").unwrap(),
        6,
        30,
        auth_module::mfa::TotpAlgorithm::Sha1,
    );
    let code = totp.code_at(crate::support::now() as u64);
    let id = r.body["mfa_challenge"]["id"].as_str().unwrap();
    let done = crate::support::Reply::of(
        s.client
            .post(s.url(&format!("/auth/mfa/challenges/{id}/verify")))
            .bearer_auth(r.token())
            .json(&json!({"method": "totp", "code": code}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.body);
    s.stop().await;

    // A wrong key: the identity with a factor is skipped, never imported bare.
    let dir = tempfile::tempdir().unwrap();
    let toml = sqlite_config(
        dir.path(),
        &format!(
            "{EMAILPASS}\n[mfa]\nencryption_key = \"{}\"\n",
            "k".repeat(40)
        ),
    );
    let config = auth_server::AppConfig::from_toml_str(&toml).unwrap();
    let summary = import_medusa(&config, &options, &|_, _| {}).await.unwrap();
    assert_eq!(summary.imported, 2, "{summary}");
    assert!(
        summary
            .skipped
            .iter()
            .any(|(id, why)| id == "authid_cy" && why.contains("cannot be decrypted")),
        "{summary}"
    );
    sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
}

/// The config of a SQLite store in `dir` with `[mfa]` holding Medusa's key.
fn mfa_config(dir: &std::path::Path) -> String {
    sqlite_config(
        dir,
        &format!("{EMAILPASS}\n[mfa]\nencryption_key = \"{MEDUSA_MFA_KEY}\"\n"),
    )
}

/// A fresh Medusa-shaped schema and import options for it.
async fn fixture(pool: &sqlx::PgPool, tag: &str) -> (String, ImportOptions) {
    let schema = format!(
        "medusa_{}",
        auth_module::generate_id(tag).to_ascii_lowercase()
    );
    medusa_schema(pool, &schema).await;
    let mut options = ImportOptions::new(pg_url());
    options.schema = schema.clone();
    options.provider_map = ImportOptions::parse_provider_map("email-legacy=emailpass").unwrap();
    (schema, options)
}

/// A rerun adds what is missing: an identity imported without its factors
/// (as a crash of an older version, or a run without `[mfa]`, left it) gets
/// them from a run with `[mfa]`, once: a further run adds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_gives_an_identity_its_missing_mfa_factors() {
    let Some(pool) = crate::postgres::admin_pool().await else {
        return;
    };
    let (schema, mut options) = fixture(&pool, "r").await;
    let dir = tempfile::tempdir().unwrap();
    let with_mfa = mfa_config(dir.path());
    let without_mfa = sqlite_config(dir.path(), EMAILPASS);

    // What an older version left after a crash between the identity and its
    // factor: authid_cy, bare.
    let s = TestServer::start_toml(&with_mfa).await;
    let mut secret = auth_module::Metadata::new();
    secret.insert("password".into(), json!(MEDUSA_HASH));
    s.service
        .module()
        .identity_store()
        .create_auth_identity(
            NewAuthIdentity::with_provider_identity(
                NewProviderIdentity::new("emailpass", "cy@example.com")
                    .with_id("provid_cy")
                    .provider_metadata(secret),
            )
            .with_id("authid_cy"),
        )
        .await
        .unwrap();
    s.stop().await;

    // Without [mfa]: it cannot be completed, and says so.
    let config = auth_server::AppConfig::from_toml_str(&without_mfa).unwrap();
    let summary = import_medusa(&config, &options, &|_, _| {}).await.unwrap();
    assert_eq!(
        (summary.imported, summary.already_present),
        (2, 0),
        "{summary}"
    );
    assert_eq!(summary.with_mfa, ["authid_cy"], "{summary}");
    assert!(summary.mfa_completed.is_empty(), "{summary}");

    // With [mfa]: a dry run says what it would add, and adds nothing.
    let config = auth_server::AppConfig::from_toml_str(&with_mfa).unwrap();
    options.dry_run = true;
    let dry = import_medusa(&config, &options, &|_, _| {}).await.unwrap();
    options.dry_run = false;
    let run = import_medusa(&config, &options, &|_, _| {}).await.unwrap();
    for summary in [&dry, &run] {
        assert_eq!(
            (summary.imported, summary.already_present),
            (0, 3),
            "{summary}"
        );
        assert_eq!(summary.mfa_completed, ["authid_cy"], "{summary}");
        assert_eq!(summary.mfa_factors_imported, 1, "{summary}");
        assert!(summary.with_mfa.is_empty(), "{summary}");
    }
    assert!(
        run.to_string().contains("given their missing MFA factors"),
        "{run}"
    );

    // Once: another run adds nothing.
    let again = import_medusa(&config, &options, &|_, _| {}).await.unwrap();
    assert_eq!(
        (
            again.imported,
            again.already_present,
            again.mfa_factors_imported
        ),
        (0, 3, 0),
        "{again}"
    );
    assert!(again.mfa_completed.is_empty(), "{again}");
    // Complete now: a run without [mfa] has nothing to hold back.
    let config = auth_server::AppConfig::from_toml_str(&without_mfa).unwrap();
    let plain = import_medusa(&config, &options, &|_, _| {}).await.unwrap();
    assert_eq!((plain.imported, plain.already_present), (0, 3), "{plain}");
    assert!(plain.with_mfa.is_empty(), "{plain}");

    let s = TestServer::start_toml(&with_mfa).await;
    let factors = s
        .service
        .module()
        .identity_store()
        .clone()
        .mfa_store()
        .expect("the store keeps MFA factors")
        .list_mfa_factors("authid_cy")
        .await
        .unwrap();
    let ids: Vec<&str> = factors.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, ["authmfa_1"]);
    let r = s.login("cy@example.com", "supersecret").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["mfa_required"], true, "{}", r.body);
    s.stop().await;
    sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
}

/// An identity and its factors are one write: when the store refuses a
/// factor (its id is taken here by another identity's factor), nothing of
/// the identity is stored, not even for a moment's login, and it is
/// reported; the other identities are imported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_and_its_factors_are_written_together() {
    let Some(pool) = crate::postgres::admin_pool().await else {
        return;
    };
    let (schema, options) = fixture(&pool, "t").await;
    let dir = tempfile::tempdir().unwrap();
    let toml = mfa_config(dir.path());

    let s = TestServer::start_toml(&toml).await;
    let store = s.service.module().identity_store().clone();
    let other = store
        .create_auth_identity(NewAuthIdentity::new())
        .await
        .unwrap();
    let mfa = store.mfa_store().expect("the store keeps MFA factors");
    mfa.create_mfa_factor(
        NewMfaFactor::new(&other.id, "totp", "sealed")
            .keep("authmfa_1", time::OffsetDateTime::now_utc()),
    )
    .await
    .unwrap();
    s.stop().await;

    let config = auth_server::AppConfig::from_toml_str(&toml).unwrap();
    let summary = import_medusa(&config, &options, &|_, _| {}).await.unwrap();
    assert_eq!(
        (summary.imported, summary.mfa_factors_imported),
        (2, 0),
        "{summary}"
    );
    assert!(
        summary
            .skipped
            .iter()
            .any(|(id, why)| id == "authid_cy" && why.contains("authmfa_1")),
        "{summary}"
    );

    let s = TestServer::start_toml(&toml).await;
    let store = s.service.module().identity_store();
    assert_eq!(
        store
            .retrieve_auth_identity("authid_cy")
            .await
            .unwrap_err()
            .kind(),
        auth_module::ErrorKind::NotFound
    );
    assert!(
        store
            .find_provider_identity("emailpass", "cy@example.com")
            .await
            .unwrap()
            .is_none()
    );
    let mfa = store
        .clone()
        .mfa_store()
        .expect("the store keeps MFA factors");
    assert!(mfa.list_mfa_factors("authid_cy").await.unwrap().is_empty());
    s.stop().await;
    sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
}
