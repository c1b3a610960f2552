//! `SqlStore` against the `auth-testkit` identity suite on SQLite (in memory and
//! on a file) and PostgreSQL, plus what only a SQL store has: persistence,
//! repeatable migrations, PostgreSQL schema isolation.
//!
//! PostgreSQL: `AUTH_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`. Each case runs in its own schema,
//! dropped afterwards. Unreachable: the tests print why and pass, unless `CI`
//! is set, where they fail.

// With no engine feature only the URL tests run; the shared helpers idle.
#![cfg_attr(
    not(any(feature = "sqlite", feature = "postgres")),
    allow(dead_code, unused_imports)
)]

use auth_module::{
    AuditQuery, AuditStore, DeviceStore, ErrorKind, IdentityStore, Metadata, MfaFactorUpdate,
    MfaStore, NewAuditEntry, NewAuthIdentity, NewDevice, NewMfaFactor, NewPasskeyCredential,
    NewProviderIdentity, NewVerification, PasskeyStore, PasskeyUse, ProviderIdentityUpdate,
    VerificationStore,
};
use auth_store_sql::SqlStore;

fn new_identity(entity_id: &str) -> NewAuthIdentity {
    let mut user = Metadata::new();
    user.insert("email".into(), entity_id.into());
    NewAuthIdentity::with_provider_identity(
        NewProviderIdentity::new("emailpass", entity_id).user_metadata(user),
    )
}

/// The rows of the store's state table, expired ones included: the state
/// suite's entry counter.
async fn state_rows(store: std::sync::Arc<SqlStore>) -> u64 {
    store.state_row_count().await.expect("count the state rows")
}

/// PostgreSQL text cannot hold U+0000, so the store refuses it on every engine:
/// writes are `InvalidData`, lookups find nothing.
async fn check_nul_refusal(store: &SqlStore) {
    let nul_email = "nul\u{0}@example.test";
    let err = store
        .create_auth_identity(new_identity(nul_email))
        .await
        .err();
    assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::InvalidData));
    let mut meta = Metadata::new();
    meta.insert(
        "name".into(),
        serde_json::json!(["ok", { "bad": "a\u{0}b" }]),
    );
    let err = store
        .create_auth_identity(NewAuthIdentity::new().app_metadata(meta.clone()))
        .await
        .err();
    assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::InvalidData));

    let created = store
        .create_auth_identity(new_identity("nul-ok@example.test"))
        .await
        .expect("create");
    let pid = created.provider_identities[0].id.clone();
    let err = store
        .update_app_metadata(&created.id, Some(meta.clone()))
        .await
        .err();
    assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::InvalidData));
    let err = store
        .update_provider_identity(&pid, ProviderIdentityUpdate::new().user_metadata(meta))
        .await
        .err();
    assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::InvalidData));
    let err = store
        .add_provider_identity(&created.id, NewProviderIdentity::new("google", nul_email))
        .await
        .err();
    assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::InvalidData));

    let missing = "authid_\u{0}";
    let err = store.retrieve_auth_identity(missing).await.err();
    assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::NotFound));
    let err = store.delete_auth_identity(missing).await.err();
    assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::NotFound));
    let err = store.delete_provider_identity("provid_\u{0}").await.err();
    assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::NotFound));
    let found = store
        .find_provider_identity("emailpass", nul_email)
        .await
        .expect("find");
    assert_eq!(found, None);
    assert_eq!(
        store
            .retrieve_auth_identity(&created.id)
            .await
            .expect("read"),
        created,
        "refused writes changed nothing"
    );

    // MFA factors, recovery codes, verifications: the same rule.
    let kind = |e: Option<auth_module::Error>| e.map(|e| e.kind());
    let factor = |secret: &str| NewMfaFactor::new(&created.id, "totp", secret);
    assert_eq!(
        kind(store.create_mfa_factor(factor("s\u{0}")).await.err()),
        Some(ErrorKind::InvalidData)
    );
    assert_eq!(
        kind(
            store
                .create_mfa_factor(NewMfaFactor::new(missing, "totp", "s"))
                .await
                .err()
        ),
        Some(ErrorKind::NotFound)
    );
    let mut nul_meta = Metadata::new();
    nul_meta.insert("label".into(), "a\u{0}".into());
    assert_eq!(
        kind(
            store
                .create_mfa_factor(factor("s").metadata(nul_meta.clone()))
                .await
                .err()
        ),
        Some(ErrorKind::InvalidData)
    );
    assert_eq!(
        store.list_mfa_factors(&created.id).await.expect("list"),
        Vec::new(),
        "refused factors were not stored"
    );
    assert_eq!(store.list_mfa_factors(missing).await.expect("list"), []);
    assert_eq!(
        store
            .update_mfa_factor("authmfa_\u{0}", MfaFactorUpdate::new().use_step(1))
            .await
            .expect("update"),
        None
    );
    assert_eq!(
        kind(
            store
                .replace_recovery_codes(&created.id, vec!["ok".into(), "h\u{0}".into()])
                .await
                .err()
        ),
        Some(ErrorKind::InvalidData)
    );
    assert_eq!(
        kind(
            store
                .replace_recovery_codes(missing, vec!["ok".into()])
                .await
                .err()
        ),
        Some(ErrorKind::NotFound)
    );
    store
        .replace_recovery_codes(&created.id, vec!["ok".into()])
        .await
        .expect("replace");
    assert!(
        !store
            .consume_recovery_code(&created.id, &["o\u{0}k".into()])
            .await
            .expect("consume")
    );
    assert!(
        store
            .consume_recovery_code(&created.id, &["x\u{0}".into(), "ok".into()])
            .await
            .expect("consume with one NUL candidate")
    );
    assert_eq!(store.count_recovery_codes(missing).await.expect("count"), 0);
    let now = time::OffsetDateTime::now_utc();
    let request = |entity: &str, hash: &str| {
        NewVerification::new(
            &created.id,
            entity,
            "email",
            "token",
            hash,
            now,
            now + time::Duration::hours(1),
        )
    };
    assert_eq!(
        kind(
            store
                .request_verification(request("a\u{0}@example.test", "h1"))
                .await
                .err()
        ),
        Some(ErrorKind::InvalidData)
    );
    assert_eq!(
        kind(
            store
                .request_verification(request("a@example.test", "h\u{0}"))
                .await
                .err()
        ),
        Some(ErrorKind::InvalidData)
    );
    assert_eq!(
        kind(
            store
                .request_verification(
                    request("a@example.test", "h1").metadata(Some(nul_meta.clone()))
                )
                .await
                .err()
        ),
        Some(ErrorKind::InvalidData)
    );
    assert_eq!(
        store
            .find_verification(&created.id, "a\u{0}@example.test", "email")
            .await
            .expect("find"),
        None
    );
    assert_eq!(
        store
            .confirm_verification("h\u{0}", "token", now)
            .await
            .expect("confirm"),
        None
    );
    assert_eq!(
        store.verification_by_code("h\u{0}").await.expect("by code"),
        None
    );

    // Passkeys: the same rule.
    let passkey = |credential_id: &str| {
        NewPasskeyCredential::new(
            &created.id,
            "passkey",
            credential_id,
            "handle",
            serde_json::json!({ "cred": "ok" }),
        )
    };
    assert_eq!(
        kind(
            store
                .create_passkey(NewPasskeyCredential::new(
                    missing,
                    "passkey",
                    "c",
                    "h",
                    serde_json::json!({})
                ))
                .await
                .err()
        ),
        Some(ErrorKind::NotFound)
    );
    let nul_passkeys = [
        passkey("c\u{0}"),
        {
            let mut p = passkey("c1");
            p.provider = "pass\u{0}key".into();
            p
        },
        {
            let mut p = passkey("c1");
            p.user_handle = "h\u{0}".into();
            p
        },
        {
            let mut p = passkey("c1");
            p.email = Some("a\u{0}@example.test".into());
            p
        },
        {
            let mut p = passkey("c1");
            p.name = "n\u{0}".into();
            p
        },
        {
            let mut p = passkey("c1");
            p.credential = serde_json::json!({ "key": ["ok", "a\u{0}"] });
            p
        },
        {
            let mut p = passkey("c1");
            p.transports = vec!["usb".into(), "\u{0}".into()];
            p
        },
    ];
    for new in nul_passkeys {
        assert_eq!(
            kind(store.create_passkey(new.clone()).await.err()),
            Some(ErrorKind::InvalidData),
            "{new:?}"
        );
    }
    assert_eq!(
        store.list_passkeys(&created.id).await.expect("list"),
        Vec::new(),
        "refused passkeys were not stored"
    );
    let stored = store.create_passkey(passkey("c1")).await.expect("create");
    assert_eq!(store.list_passkeys(missing).await.expect("list"), []);
    assert_eq!(
        store
            .find_passkey("passkey", "c1\u{0}")
            .await
            .expect("find"),
        None
    );
    assert_eq!(
        store
            .passkeys_for_email("passkey", "a\u{0}@example.test")
            .await
            .expect("by e-mail"),
        []
    );
    let used = |credential: serde_json::Value| {
        PasskeyUse::new(1, credential, false, time::OffsetDateTime::now_utc())
    };
    assert_eq!(
        store
            .record_passkey_use("authpk_\u{0}", 0, used(serde_json::json!({})))
            .await
            .expect("use"),
        None
    );
    assert_eq!(
        kind(
            store
                .record_passkey_use(&stored.id, 0, used(serde_json::json!("a\u{0}")))
                .await
                .err()
        ),
        Some(ErrorKind::InvalidData)
    );
    assert_eq!(
        kind(
            store
                .rename_passkey(&created.id, &stored.id, "n\u{0}")
                .await
                .err()
        ),
        Some(ErrorKind::InvalidData)
    );
    assert_eq!(
        store
            .rename_passkey(missing, &stored.id, "n")
            .await
            .expect("rename"),
        None
    );
    assert!(
        !store
            .delete_passkey(&created.id, "authpk_\u{0}")
            .await
            .expect("delete")
    );
    assert_eq!(
        store.list_passkeys(&created.id).await.expect("list"),
        vec![stored],
        "refused passkey writes changed nothing"
    );
}

/// Enabling a disabled factor while another of its provider is active is
/// refused by the partial unique index: `DuplicateError`, nothing changes.
async fn check_reactivation_is_refused(store: &SqlStore) {
    use auth_module::MfaFactorStatus;
    let created = store
        .create_auth_identity(NewAuthIdentity::new())
        .await
        .expect("create");
    let old = store
        .create_mfa_factor(
            NewMfaFactor::new(&created.id, "totp", "s1").status(MfaFactorStatus::Disabled),
        )
        .await
        .expect("a disabled factor");
    store
        .create_mfa_factor(NewMfaFactor::new(&created.id, "totp", "s2"))
        .await
        .expect("the active factor");
    let before = store.list_mfa_factors(&created.id).await.expect("list");
    let err = store
        .update_mfa_factor(
            &old.id,
            MfaFactorUpdate::new().status(MfaFactorStatus::Enabled),
        )
        .await
        .expect_err("a second active factor is refused");
    assert_eq!(err.kind(), ErrorKind::DuplicateError, "{err}");
    assert_eq!(
        err.message(),
        auth_module::store::duplicate_mfa_factor("totp").message()
    );
    assert_eq!(
        store.list_mfa_factors(&created.id).await.expect("list"),
        before
    );
}

/// Devices and audit entries with NUL (U+0000), which PostgreSQL text cannot
/// hold: what a client sent (a user agent) is kept with U+FFFD in its place,
/// on both engines; other fields and audit `detail` are refused as any
/// record's are (`InvalidData`); lookups with NUL find nothing.
async fn check_nul_devices_and_audit(store: &SqlStore) {
    let kind = |e: Option<auth_module::Error>| e.map(|e| e.kind());
    let owner = store
        .create_auth_identity(NewAuthIdentity::new())
        .await
        .expect("create");
    let device = store
        .create_device(NewDevice::new(&owner.id, "customer", "emailpass").client(
            Some("Agent\u{0}/1.0\u{0}".into()),
            Some("203.0.113.0/24".into()),
        ))
        .await
        .expect("a user agent with NUL is kept");
    assert_eq!(
        device.user_agent.as_deref(),
        Some("Agent\u{FFFD}/1.0\u{FFFD}")
    );
    assert_eq!(
        store.device(&owner.id, &device.id).await.expect("read"),
        Some(device.clone()),
        "what the create answered is what is stored"
    );
    assert_eq!(
        kind(
            store
                .create_device(NewDevice::new("authid_\u{0}", "customer", "emailpass"))
                .await
                .err()
        ),
        Some(ErrorKind::NotFound)
    );
    assert_eq!(
        kind(
            store
                .create_device(NewDevice::new(&owner.id, "cust\u{0}omer", "emailpass"))
                .await
                .err()
        ),
        Some(ErrorKind::InvalidData)
    );
    assert_eq!(
        kind(
            store
                .create_device(NewDevice::new(&owner.id, "customer", "email\u{0}pass"))
                .await
                .err()
        ),
        Some(ErrorKind::InvalidData)
    );
    assert_eq!(
        store
            .device(&owner.id, "authdev_\u{0}")
            .await
            .expect("read"),
        None
    );
    assert_eq!(store.list_devices("authid_\u{0}").await.expect("list"), []);
    assert!(
        !store
            .touch_device(&owner.id, "authdev_\u{0}", time::OffsetDateTime::now_utc())
            .await
            .expect("touch")
    );
    assert_eq!(
        store
            .delete_devices(&owner.id, &["authdev_\u{0}".into(), device.id.clone()])
            .await
            .expect("delete"),
        vec![device.id.clone()],
        "an id with NUL matches nothing; the others are deleted"
    );

    let mut with_ua = NewAuditEntry::new("login", "failed");
    with_ua.user_agent = Some("Agent\u{0}".into());
    let appended = store
        .append_audit(vec![with_ua])
        .await
        .expect("a user agent with NUL is kept");
    assert_eq!(appended[0].user_agent.as_deref(), Some("Agent\u{FFFD}"));
    assert_eq!(
        appended[0].hash,
        auth_module::audit::chain_hash(&appended[0].prev_hash, &appended[0]),
        "the hash covers the entry as stored"
    );
    let refused = [
        NewAuditEntry::new("login", "failed").detail("email", "a\u{0}@example.test"),
        NewAuditEntry::new("login", "failed").detail("nested", serde_json::json!({ "k\u{0}": 1 })),
        NewAuditEntry::new("log\u{0}in", "failed"),
        NewAuditEntry::new("login", "failed").identity("authid_\u{0}"),
        NewAuditEntry::new("login", "failed").provider("email\u{0}pass"),
    ];
    for entry in refused {
        assert_eq!(
            kind(
                store
                    .append_audit(vec![NewAuditEntry::new("ok", "succeeded"), entry.clone()])
                    .await
                    .err()
            ),
            Some(ErrorKind::InvalidData),
            "{entry:?}"
        );
    }
    let mut q = AuditQuery::newest(10);
    q.auth_identity_id = Some("authid_\u{0}".into());
    assert_eq!(store.query_audit(&q).await.expect("query"), []);
    assert_eq!(
        store.audit_chain(0, 10).await.expect("chain"),
        appended,
        "refused appends stored nothing"
    );
    let report = auth_module::audit::verify(store).await.expect("verify");
    assert_eq!(report.broken, None);
}

/// An entry edited in the database shows as edited: the stored hash is
/// answered, never recomputed. `exec` runs one SQL statement on the store's
/// database.
async fn check_edits_break_the_chain<F, Fut>(store: &SqlStore, exec: F)
where
    F: Fn(&'static str) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let appended = store
        .append_audit(vec![
            NewAuditEntry::new("login", "succeeded").detail("n", 1),
            NewAuditEntry::new("login", "failed").detail("n", 2),
            NewAuditEntry::new("login", "succeeded").detail("n", 3),
        ])
        .await
        .expect("append");
    let report = auth_module::audit::verify(store).await.expect("verify");
    assert_eq!((report.checked, report.broken), (3, None));
    assert_eq!(report.head_hash, appended[2].hash);
    exec("UPDATE auth_audit SET outcome = 'succeeded' WHERE seq = 2").await;
    let report = auth_module::audit::verify(store).await.expect("verify");
    let broken = report.broken.expect("an edit breaks the chain");
    assert_eq!((broken.seq, broken.reason), (2, "edited"));
    exec("UPDATE auth_audit SET outcome = 'failed' WHERE seq = 2").await;
    exec("DELETE FROM auth_audit WHERE seq = 2").await;
    let report = auth_module::audit::verify(store).await.expect("verify");
    let broken = report.broken.expect("a removal breaks the chain");
    assert_eq!((broken.seq, broken.reason), (3, "missing"));
}

/// Appends from two stores on one database, concurrently (`per_store` single
/// appends each), form one chain: seq 1 to 2 × `per_store`, each once, and
/// [`auth_module::audit::verify`] finds it intact.
async fn check_two_stores_append_one_chain(
    a: std::sync::Arc<SqlStore>,
    b: std::sync::Arc<SqlStore>,
    per_store: u64,
) {
    let run = |store: std::sync::Arc<SqlStore>, tag: &'static str| {
        tokio::spawn(async move {
            for i in 0..per_store {
                store
                    .append_audit(vec![
                        NewAuditEntry::new("login", "succeeded")
                            .detail("store", tag)
                            .detail("i", i),
                    ])
                    .await
                    .expect("append");
            }
        })
    };
    let (ra, rb) = tokio::join!(
        run(std::sync::Arc::clone(&a), "a"),
        run(std::sync::Arc::clone(&b), "b")
    );
    ra.expect("store a's appends");
    rb.expect("store b's appends");
    let chain = a.audit_chain(0, 10_000).await.expect("chain");
    let seqs: Vec<u64> = chain.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=2 * per_store).collect::<Vec<_>>(),
        "no gap, no repeat"
    );
    for tag in ["a", "b"] {
        assert_eq!(
            chain.iter().filter(|e| e.detail["store"] == tag).count() as u64,
            per_store
        );
    }
    let report = auth_module::audit::verify(&*b).await.expect("verify");
    assert_eq!(report.broken, None, "{report:?}");
    assert_eq!(report.checked, 2 * per_store);
    assert_eq!(report.head_hash, chain.last().expect("entries").hash);
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn bad_sqlite_urls_are_refused_without_echoing_secrets() {
    for url in [
        "mysql://u:hunter2@localhost/db",
        "hunter2",
        "",
        "sqlite://\u{0}",
        "postgres://u:hunter2@localhost/db",
    ] {
        let err = SqlStore::sqlite(url).await.err();
        let err = err.unwrap_or_else(|| panic!("{url:?} is refused"));
        assert!(
            matches!(
                err.kind(),
                ErrorKind::InvalidData | ErrorKind::DatabaseError
            ),
            "{url:?}: {err}"
        );
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn bad_postgres_urls_are_refused_without_echoing_secrets() {
    for url in [
        "mysql://u:hunter2@localhost/db",
        "sqlite::memory:",
        "hunter2",
    ] {
        let err = SqlStore::postgres(url, None).await.err();
        let err = err.unwrap_or_else(|| panic!("{url:?} is refused"));
        assert_eq!(err.kind(), ErrorKind::InvalidData, "{url:?}: {err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    //! The suite in memory and on a file; persistence and migrations.

    use auth_module::{
        ErrorKind, IdentityStore, MemoryIdentityStore, MfaStore, NewAuthIdentity, NewMfaFactor,
        NewPasskeyCredential, NewProviderIdentity, PasskeyStore, ProviderIdentityUpdate,
    };
    use auth_store_sql::SqlStore;
    use tempfile::TempDir;

    use super::{check_nul_refusal, new_identity};

    auth_testkit::identity_store_suite!(memory, || async {
        SqlStore::sqlite_memory()
            .await
            .expect("an in-memory SQLite store opens")
    });

    auth_testkit::identity_store_suite!(file, guarded = file_store);

    auth_testkit::state_store_suite!(
        state_memory,
        || async {
            SqlStore::sqlite_memory()
                .await
                .expect("an in-memory SQLite store opens")
        },
        count = crate::state_rows
    );

    auth_testkit::state_store_suite!(state_file, guarded = file_store, count = crate::state_rows);

    fn sqlite_url(dir: &TempDir) -> String {
        format!("sqlite://{}", dir.path().join("auth.db").display())
    }

    /// A store on a file in a temporary directory, which the suites keep
    /// (as the guard) until the store is dropped.
    async fn file_store() -> (SqlStore, TempDir) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = SqlStore::sqlite(&sqlite_url(&dir))
            .await
            .expect("a SQLite file store opens");
        (store, dir)
    }

    #[tokio::test]
    async fn file_survives_close_and_reopen() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = sqlite_url(&dir);
        let store = SqlStore::sqlite(&url).await.expect("first open");
        let created = store
            .create_auth_identity(new_identity("persist@example.test"))
            .await
            .expect("create");
        store.close().await;
        drop(store);

        let store = SqlStore::sqlite(&url).await.expect("reopen");
        let read = store
            .retrieve_auth_identity(&created.id)
            .await
            .expect("the identity survived");
        assert_eq!(read, created);
        store.close().await;
    }

    #[tokio::test]
    async fn migrations_are_idempotent() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = sqlite_url(&dir);
        let first = SqlStore::sqlite(&url).await.expect("first connect");
        // A second store on the same file, while the first is open, applies
        // nothing twice and sees the first one's writes.
        let second = SqlStore::sqlite(&url).await.expect("second connect");
        let created = first
            .create_auth_identity(new_identity("twice@example.test"))
            .await
            .expect("create");
        assert_eq!(
            second
                .retrieve_auth_identity(&created.id)
                .await
                .expect("read"),
            created
        );
        first.close().await;
        second.close().await;
        let third = SqlStore::sqlite(&url).await.expect("third connect");
        assert_eq!(
            third
                .retrieve_auth_identity(&created.id)
                .await
                .expect("read"),
            created
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = SqlStore::sqlite(&sqlite_url(&dir)).await.expect("open");
        store
            .create_auth_identity(new_identity("private-file@example.test"))
            .await
            .expect("create");
        for name in ["auth.db", "auth.db-wal", "auth.db-shm"] {
            let mode = std::fs::metadata(dir.path().join(name))
                .expect(name)
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name} is {mode:o}");
        }
        store.close().await;
        // A file made by an older version with a wider mode is narrowed.
        std::fs::set_permissions(
            dir.path().join("auth.db"),
            std::fs::Permissions::from_mode(0o644),
        )
        .expect("chmod");
        let store = SqlStore::sqlite(&sqlite_url(&dir)).await.expect("reopen");
        let mode = std::fs::metadata(dir.path().join("auth.db"))
            .expect("auth.db")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        store.close().await;
    }

    #[tokio::test]
    async fn file_uses_wal() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = SqlStore::sqlite(&sqlite_url(&dir)).await.expect("open");
        store
            .create_auth_identity(new_identity("wal@example.test"))
            .await
            .expect("create");
        assert!(
            dir.path().join("auth.db-wal").exists(),
            "a WAL file sits beside the database"
        );
    }

    #[tokio::test]
    async fn memory_stores_are_private() {
        let a = SqlStore::sqlite_memory().await.expect("a");
        let b = SqlStore::sqlite_memory().await.expect("b");
        let created = a
            .create_auth_identity(new_identity("private@example.test"))
            .await
            .expect("create");
        let err = b.retrieve_auth_identity(&created.id).await.err();
        assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::NotFound));
    }

    /// The messages clients may see are the in-memory store's, word for word.
    #[tokio::test]
    async fn messages_match_the_memory_store() {
        let sql = SqlStore::sqlite_memory().await.expect("open");
        let memory = MemoryIdentityStore::new();
        let stores: [&dyn IdentityStore; 2] = [&sql, &memory];
        let mut messages = Vec::new();
        for store in stores {
            store
                .create_auth_identity(new_identity("same@example.test"))
                .await
                .expect("create");
            let errors = [
                store
                    .create_auth_identity(new_identity("same@example.test"))
                    .await
                    .err(),
                store.retrieve_auth_identity("authid_missing").await.err(),
                store
                    .add_provider_identity(
                        "authid_missing",
                        NewProviderIdentity::new("emailpass", "x@example.test"),
                    )
                    .await
                    .err(),
                store
                    .update_provider_identity("provid_missing", ProviderIdentityUpdate::new())
                    .await
                    .err(),
                store.delete_provider_identity("provid_missing").await.err(),
            ];
            messages.push(
                errors
                    .map(|e| e.map(|e| (e.kind(), e.message().to_owned())))
                    .to_vec(),
            );
        }
        assert!(messages[0].iter().all(Option::is_some));
        assert_eq!(messages[0], messages[1]);
    }

    /// The same for MFA factors and recovery codes: the duplicate active
    /// factor, a taken factor id and a missing auth identity.
    #[tokio::test]
    async fn mfa_messages_match_the_memory_store() {
        let sql = SqlStore::sqlite_memory().await.expect("open");
        let memory = MemoryIdentityStore::new();
        let stores: [(&dyn IdentityStore, &dyn MfaStore); 2] = [(&sql, &sql), (&memory, &memory)];
        let mut messages = Vec::new();
        for (store, mfa) in stores {
            let created = store
                .create_auth_identity(NewAuthIdentity::new())
                .await
                .expect("create");
            mfa.create_mfa_factor(
                NewMfaFactor::new(&created.id, "totp", "s1")
                    .keep("authmfa_kept", time::OffsetDateTime::now_utc()),
            )
            .await
            .expect("create a factor");
            let errors = [
                mfa.create_mfa_factor(NewMfaFactor::new(&created.id, "totp", "s2"))
                    .await
                    .err(),
                mfa.create_mfa_factor(
                    NewMfaFactor::new(&created.id, "other", "s3")
                        .keep("authmfa_kept", time::OffsetDateTime::now_utc()),
                )
                .await
                .err(),
                mfa.create_mfa_factor(NewMfaFactor::new("authid_missing", "totp", "s"))
                    .await
                    .err(),
                mfa.replace_recovery_codes("authid_missing", vec!["h".into()])
                    .await
                    .err(),
            ];
            messages.push(
                errors
                    .map(|e| e.map(|e| (e.kind(), e.message().to_owned())))
                    .to_vec(),
            );
        }
        assert!(messages[0].iter().all(Option::is_some), "{messages:?}");
        assert_eq!(messages[0], messages[1]);
    }

    /// The same for passkeys: a taken credential id and a missing auth
    /// identity.
    #[tokio::test]
    async fn passkey_messages_match_the_memory_store() {
        let sql = SqlStore::sqlite_memory().await.expect("open");
        let memory = MemoryIdentityStore::new();
        let stores: [(&dyn IdentityStore, &dyn PasskeyStore); 2] =
            [(&sql, &sql), (&memory, &memory)];
        let mut messages = Vec::new();
        for (store, passkeys) in stores {
            let created = store
                .create_auth_identity(NewAuthIdentity::new())
                .await
                .expect("create");
            let new = |owner: &str| {
                NewPasskeyCredential::new(owner, "passkey", "cred", "handle", serde_json::json!({}))
            };
            passkeys
                .create_passkey(new(&created.id))
                .await
                .expect("create a passkey");
            let errors = [
                passkeys.create_passkey(new(&created.id)).await.err(),
                passkeys.create_passkey(new("authid_missing")).await.err(),
            ];
            messages.push(
                errors
                    .map(|e| e.map(|e| (e.kind(), e.message().to_owned())))
                    .to_vec(),
            );
        }
        assert!(messages[0].iter().all(Option::is_some), "{messages:?}");
        assert_eq!(messages[0], messages[1]);
    }

    /// The database keeps one active factor per identity and provider even
    /// when an update, not a create, would make a second one.
    #[tokio::test]
    async fn reactivating_a_second_active_factor_is_a_duplicate() {
        let store = SqlStore::sqlite_memory().await.expect("open");
        super::check_reactivation_is_refused(&store).await;
    }

    #[tokio::test]
    async fn refuses_nul_like_postgres() {
        check_nul_refusal(&SqlStore::sqlite_memory().await.expect("open")).await;
    }

    #[tokio::test]
    async fn devices_and_audit_handle_nul_like_postgres() {
        super::check_nul_devices_and_audit(&SqlStore::sqlite_memory().await.expect("open")).await;
    }

    /// The same for devices: a device of a missing auth identity.
    #[tokio::test]
    async fn device_messages_match_the_memory_store() {
        use auth_module::{DeviceStore, NewDevice};
        let sql = SqlStore::sqlite_memory().await.expect("open");
        let memory = MemoryIdentityStore::new();
        let stores: [&dyn DeviceStore; 2] = [&sql, &memory];
        let mut messages = Vec::new();
        for devices in stores {
            let err = devices
                .create_device(NewDevice::new("authid_missing", "customer", "emailpass"))
                .await
                .err();
            messages.push(err.map(|e| (e.kind(), e.message().to_owned())));
        }
        assert!(messages[0].is_some(), "{messages:?}");
        assert_eq!(messages[0], messages[1]);
    }

    #[tokio::test]
    async fn audit_edits_break_the_chain() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = sqlite_url(&dir);
        let store = SqlStore::sqlite(&url).await.expect("open");
        super::check_edits_break_the_chain(&store, |sql| {
            let url = url.clone();
            async move {
                use sqlx::Connection;
                let mut conn = sqlx::SqliteConnection::connect(&url)
                    .await
                    .expect("connect");
                sqlx::query(sql).execute(&mut conn).await.expect(sql);
                conn.close().await.expect("close");
            }
        })
        .await;
    }

    /// A store appends on the head its last append left, in one statement;
    /// when another store on the file has moved the head since, that
    /// statement is refused and the append is made again under the lock: the
    /// chain stays whole, in the order the appends were made.
    #[tokio::test]
    async fn an_append_on_a_moved_head_is_made_again() {
        use auth_module::{AuditStore, NewAuditEntry};
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = sqlite_url(&dir);
        let a = SqlStore::sqlite(&url).await.expect("open a");
        let b = SqlStore::sqlite(&url).await.expect("open b");
        let entry = |n: u64| vec![NewAuditEntry::new("login", "succeeded").detail("n", n)];
        let mut order = Vec::new();
        for n in 0..6u64 {
            // a, a, b, a, b, b: each store's known head is stale at its
            // first append after the other's.
            let store = if [2, 4, 5].contains(&n) { &b } else { &a };
            let appended = store.append_audit(entry(n)).await.expect("append");
            assert_eq!(appended[0].seq, n + 1);
            order.push(appended[0].hash.clone());
        }
        let chain = b.audit_chain(0, 100).await.expect("chain");
        assert_eq!(
            chain
                .iter()
                .map(|e| e.detail["n"].as_u64())
                .collect::<Vec<_>>(),
            (0..6).map(Some).collect::<Vec<_>>()
        );
        assert_eq!(
            chain.iter().map(|e| e.hash.clone()).collect::<Vec<_>>(),
            order
        );
        let report = auth_module::audit::verify(&a).await.expect("verify");
        assert_eq!(report.broken, None, "{report:?}");
        assert_eq!(report.checked, 6);
    }

    /// An entry written past the store, not on the chain's head, is refused
    /// by the database itself, and the head stays.
    #[tokio::test]
    async fn an_entry_off_the_head_is_refused() {
        use auth_module::{AuditStore, NewAuditEntry};
        use sqlx::Connection;
        let (store, dir) = file_store().await;
        let url = sqlite_url(&dir);
        let first = store
            .append_audit(vec![NewAuditEntry::new("login", "succeeded")])
            .await
            .expect("append")
            .remove(0);
        let mut conn = sqlx::SqliteConnection::connect(&url)
            .await
            .expect("connect");
        let insert = |seq: i64, prev_hash: &str| {
            format!(
                "INSERT INTO auth_audit (seq, id, at, action, outcome, detail, prev_hash, hash) \
                 VALUES ({seq}, 'aud_x{seq}', '2026-01-01T00:00:00.000000Z', 'login', 'failed', \
                 '{{}}', '{prev_hash}', '{}')",
                "f".repeat(64)
            )
        };
        for (seq, prev_hash) in [
            (2, "0".repeat(64)),
            (3, first.hash.clone()),
            (1, first.hash.clone()),
        ] {
            let refused = sqlx::query(&insert(seq, &prev_hash))
                .execute(&mut conn)
                .await
                .expect_err("off the head");
            assert!(
                refused.to_string().contains("must follow the chain head"),
                "{refused}"
            );
        }
        conn.close().await.expect("close");
        let next = store
            .append_audit(vec![NewAuditEntry::new("logout", "succeeded")])
            .await
            .expect("append")
            .remove(0);
        assert_eq!((next.seq, next.prev_hash), (2, first.hash));
        let report = auth_module::audit::verify(&store).await.expect("verify");
        assert_eq!(report.broken, None, "{report:?}");
    }

    /// Two stores on one file (as two processes would be) append
    /// concurrently: one gapless chain. The append's first statement takes
    /// SQLite's write lock, so the other store waits in the busy handler
    /// rather than failing to upgrade a read.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_stores_on_one_file_append_one_chain() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = sqlite_url(&dir);
        let a = SqlStore::sqlite(&url).await.expect("open a");
        let b = SqlStore::sqlite(&url).await.expect("open b");
        super::check_two_stores_append_one_chain(
            std::sync::Arc::new(a),
            std::sync::Arc::new(b),
            50,
        )
        .await;
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    //! The suite in a fresh schema per case, schema isolation, URL hygiene.

    use std::io::Write;
    use std::net::{TcpStream, ToSocketAddrs};
    use std::sync::{Arc, Once, OnceLock};
    use std::time::Duration;

    use auth_module::{ErrorKind, IdentityStore, generate_id};
    use auth_store_sql::SqlStore;
    use sqlx::Connection;

    auth_testkit::identity_store_suite!(suite, optional = store, teardown = drop_schema);
    auth_testkit::state_store_suite!(
        state,
        optional = store,
        teardown = drop_schema,
        count = crate::state_rows
    );

    const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

    fn url() -> String {
        std::env::var("AUTH_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
    }

    /// `host:port` of a `postgres://` URL, if it names a TCP host.
    fn host_port(url: &str) -> Option<String> {
        let rest = url.split_once("://")?.1;
        let rest = rest.split(['/', '?']).next()?;
        let authority = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        if authority.is_empty() {
            return None;
        }
        let has_port = authority
            .rsplit_once(':')
            .is_some_and(|(_, port)| port.parse::<u16>().is_ok() && !authority.ends_with(']'));
        Some(if has_port {
            authority.to_owned()
        } else {
            format!("{authority}:5432")
        })
    }

    /// Why PostgreSQL cannot be used, if it cannot; probed once per run.
    fn unreachable_reason() -> Option<String> {
        static REASON: OnceLock<Option<String>> = OnceLock::new();
        REASON
            .get_or_init(|| {
                let Some(target) = host_port(&url()) else {
                    return None; // A socket path: let the connection tell.
                };
                let addrs = match target.to_socket_addrs() {
                    Ok(addrs) => addrs.collect::<Vec<_>>(),
                    Err(e) => return Some(format!("cannot resolve {target}: {e}")),
                };
                let reachable = addrs
                    .iter()
                    .any(|a| TcpStream::connect_timeout(a, Duration::from_secs(2)).is_ok());
                (!reachable).then(|| format!("nothing listens on {target}"))
            })
            .clone()
    }

    /// `None` (after saying why) when PostgreSQL is unreachable outside CI.
    fn skip_or_fail(reason: &str) -> Option<SqlStore> {
        if std::env::var_os("CI").is_some() {
            panic!(
                "PostgreSQL is required when CI is set, but {reason}; \
                 start it or point AUTH_TEST_POSTGRES_URL at one"
            );
        }
        // Once per run, and past the harness's capture of `eprintln!`, so the
        // skip shows even though the tests pass.
        static SAID: Once = Once::new();
        SAID.call_once(|| {
            let _ = writeln!(
                std::io::stderr(),
                "skipping the PostgreSQL tests: {reason} \
                 (set AUTH_TEST_POSTGRES_URL; with CI set they fail instead)"
            );
        });
        None
    }

    /// A store in a fresh schema of its own.
    async fn store() -> Option<SqlStore> {
        if let Some(reason) = unreachable_reason() {
            return skip_or_fail(&reason);
        }
        let schema = format!("auth_test_{}", generate_id("s").to_lowercase());
        match SqlStore::postgres(&url(), Some(&schema)).await {
            Ok(store) => Some(store),
            Err(e) => panic!("PostgreSQL is reachable but the store cannot open: {e:?}"),
        }
    }

    /// Closes the store and drops its schema; a failure is only reported.
    async fn drop_schema(store: Arc<SqlStore>) {
        let Some(schema) = store.postgres_schema().map(str::to_owned) else {
            return;
        };
        store.close().await;
        let dropped = async {
            let mut conn = sqlx::PgConnection::connect(&url()).await?;
            // The schema name was validated by SqlStore::postgres.
            sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .execute(&mut conn)
                .await?;
            conn.close().await
        };
        if let Err(e) = dropped.await {
            eprintln!("could not drop test schema {schema}: {e}");
        }
    }

    #[test]
    fn host_ports() {
        assert_eq!(
            host_port("postgres://postgres@127.0.0.1:5432/test").as_deref(),
            Some("127.0.0.1:5432")
        );
        assert_eq!(
            host_port("postgresql://u:p@db/x?sslmode=require").as_deref(),
            Some("db:5432")
        );
        assert_eq!(host_port("postgres:///x?host=/run").as_deref(), None);
    }

    #[tokio::test]
    async fn schemas_isolate_stores() {
        let (Some(a), Some(b)) = (store().await, store().await) else {
            return;
        };
        let created = a
            .create_auth_identity(super::new_identity("iso@example.test"))
            .await
            .expect("create in a");
        let err = b.retrieve_auth_identity(&created.id).await.err();
        assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::NotFound));
        assert_eq!(
            b.find_provider_identity("emailpass", "iso@example.test")
                .await
                .expect("find in b"),
            None
        );
        // The same entity in b is no duplicate of a's.
        b.create_auth_identity(super::new_identity("iso@example.test"))
            .await
            .expect("create in b");
        // Reconnecting to a's schema finds a's data: migrations re-run cleanly.
        let schema = a.postgres_schema().map(str::to_owned).expect("a schema");
        let again = SqlStore::postgres(&url(), Some(&schema))
            .await
            .expect("reconnect");
        assert_eq!(
            again
                .retrieve_auth_identity(&created.id)
                .await
                .expect("read"),
            created
        );
        again.close().await;
        drop_schema(Arc::new(a)).await;
        drop_schema(Arc::new(b)).await;
    }

    #[tokio::test]
    async fn debug_hides_the_password() {
        if let Some(reason) = unreachable_reason() {
            skip_or_fail(&reason);
            return;
        }
        // The server trusts local connections, so any password is accepted.
        let with_password = url().replacen("://postgres@", "://postgres:hunter2@", 1);
        if with_password == url() {
            eprintln!(
                "skipping: AUTH_TEST_POSTGRES_URL has no plain `postgres@` user to add a password to"
            );
            return;
        }
        let schema = format!("auth_test_{}", generate_id("s").to_lowercase());
        let store = SqlStore::postgres(&with_password, Some(&schema))
            .await
            .expect("connect");
        let debug = format!("{store:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("postgres:***@"), "{debug}");
        drop_schema(Arc::new(store)).await;
    }

    #[tokio::test]
    async fn bad_schema_names_are_invalid_data() {
        let err = SqlStore::postgres(&url(), Some("x; DROP TABLE y"))
            .await
            .err();
        assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::InvalidData));
        let err = SqlStore::postgres("sqlite::memory:", Some("ok"))
            .await
            .err();
        assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::InvalidData));
    }

    #[tokio::test]
    async fn reactivating_a_second_active_factor_is_a_duplicate() {
        let Some(store) = store().await else {
            return;
        };
        let store = Arc::new(store);
        super::check_reactivation_is_refused(&store).await;
        drop_schema(store).await;
    }

    #[tokio::test]
    async fn nul_characters_are_refused() {
        let Some(store) = store().await else {
            return;
        };
        let store = Arc::new(store);
        super::check_nul_refusal(&store).await;
        drop_schema(store).await;
    }

    #[tokio::test]
    async fn devices_and_audit_handle_nul() {
        let Some(store) = store().await else {
            return;
        };
        let store = Arc::new(store);
        super::check_nul_devices_and_audit(&store).await;
        drop_schema(store).await;
    }

    #[tokio::test]
    async fn audit_edits_break_the_chain() {
        let Some(store) = store().await else {
            return;
        };
        let store = Arc::new(store);
        let schema = store
            .postgres_schema()
            .map(str::to_owned)
            .expect("a schema");
        super::check_edits_break_the_chain(&store, |sql| {
            let schema = schema.clone();
            async move {
                let mut conn = sqlx::PgConnection::connect(&url()).await.expect("connect");
                sqlx::query(&format!("SET search_path TO {schema}"))
                    .execute(&mut conn)
                    .await
                    .expect("search_path");
                sqlx::query(sql).execute(&mut conn).await.expect(sql);
                conn.close().await.expect("close");
            }
        })
        .await;
        drop_schema(store).await;
    }

    /// Two stores (two pools, as two replicas would have) on one schema
    /// append concurrently, 50 entries each: the chain row's lock makes one
    /// gapless chain, 1 to 100, intact.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_pools_append_one_chain() {
        let Some(a) = store().await else {
            return;
        };
        let schema = a.postgres_schema().map(str::to_owned).expect("a schema");
        let b = SqlStore::postgres(&url(), Some(&schema))
            .await
            .expect("a second store on the schema");
        let (a, b) = (Arc::new(a), Arc::new(b));
        super::check_two_stores_append_one_chain(Arc::clone(&a), Arc::clone(&b), 50).await;
        b.close().await;
        drop_schema(a).await;
    }
}
