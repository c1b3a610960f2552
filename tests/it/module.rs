//! The `auth-module` core with the emailpass provider, as a library (no HTTP).

use std::sync::Arc;

use auth_module::{
    AuthModule, AuthRequest, Config, ErrorKind, IdentityStore, MemoryIdentityStore,
    MemoryStateStore, StateStore, linked_providers,
};
use serde_json::{Value, json};

fn creds(email: &str, password: &str) -> AuthRequest {
    AuthRequest::json(json!({ "email": email, "password": password }))
}

fn module_from_toml(toml: &str) -> AuthModule {
    AuthModule::builder()
        .config(Config::from_toml_str(toml).expect("valid config"))
        .build()
        .expect("module builds")
}

/// Its password policy is off: these tests are about other rules.
const EMAILPASS: &str = r#"
[store]
url = "memory://"
[[providers]]
resolve = "emailpass"
id = "emailpass"
[providers.options]
password_policy = { min_length = 1, reject_common = false }
"#;

fn write_config(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

fn build_err(text: &str) -> String {
    match Config::from_toml_str(text) {
        Err(e) => e.to_string(),
        Ok(c) => AuthModule::builder()
            .config(c)
            .build()
            .expect_err("config must be refused")
            .to_string(),
    }
}

#[tokio::test]
async fn register_authenticate_update_authenticate_from_a_toml_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, "auth.toml", EMAILPASS);
    let module = AuthModule::builder()
        .config(Config::from_file(&path).unwrap())
        .build()
        .unwrap();

    let reg = module
        .register("emailpass", creds("ada@example.com", "first-pw"))
        .await
        .unwrap();
    assert!(reg.is_authenticated(), "{reg:?}");
    let id = reg.into_identity().unwrap().id;
    assert!(id.starts_with("authid_"));

    let login = module
        .authenticate("emailpass", creds("ada@example.com", "first-pw"))
        .await
        .unwrap();
    assert!(login.is_authenticated());
    let identity = login.into_identity().unwrap();
    assert_eq!(identity.id, id);
    assert_eq!(identity.provider_identities.len(), 1);
    assert!(identity.provider_identities[0].id.starts_with("provid_"));
    assert!(
        identity.provider_identities[0].provider_metadata.is_none(),
        "hash must not leave the module"
    );

    let upd = module
        .update_provider(
            "emailpass",
            AuthRequest::json(json!({"entity_id": "ada@example.com", "password": "second-pw"})),
        )
        .await
        .unwrap();
    assert!(upd.is_authenticated(), "{upd:?}");

    let old = module
        .authenticate("emailpass", creds("ada@example.com", "first-pw"))
        .await
        .unwrap();
    assert!(!old.is_authenticated());
    assert_eq!(old.failure(), Some("Invalid email or password"));
    let new = module
        .authenticate("emailpass", creds("ada@example.com", "second-pw"))
        .await
        .unwrap();
    assert!(new.is_authenticated());
    assert_eq!(new.into_identity().unwrap().id, id);
}

#[tokio::test]
async fn json_config_file_works_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        "auth.json",
        r#"{"store": {"url": "memory://"}, "providers": [{"resolve": "emailpass", "id": "pw"}]}"#,
    );
    let module = AuthModule::builder()
        .config(Config::from_file(&path).unwrap())
        .build()
        .unwrap();
    let p = module.providers();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].id, "pw");
    assert_eq!(p[0].identifier, "emailpass");
    assert_eq!(p[0].registry_key, "au_emailpass_pw");
    assert_eq!(p[0].display_name, "Email/Password Authentication");
    assert_eq!(p[0].flow.as_str(), "credentials");
}

#[test]
fn emailpass_is_registered_at_link_time() {
    let ids: Vec<_> = linked_providers().iter().map(|r| r.identifier()).collect();
    assert!(ids.contains(&"emailpass"), "{ids:?}");
}

#[test]
fn unknown_resolve_lists_linked_providers_and_the_feature() {
    let e = build_err("[store]\nurl='memory://'\n[[providers]]\nresolve = 'okta'\nid = 'okta'\n");
    assert_eq!(
        e,
        "providers[0] \"okta\": unknown provider \"okta\"; linked providers: emailpass, github, \
         google, oidc, passkey. Add the crate `provider-okta` to your dependencies and name it \
         (`use provider_okta as _;`), or build auth-server with the cargo feature `provider-okta`"
    );
}

#[test]
fn duplicate_provider_id_is_refused() {
    let e = build_err(
        "[[providers]]\nresolve='emailpass'\nid='emailpass'\n[[providers]]\nresolve='emailpass'\nid='emailpass'\n",
    );
    assert_eq!(
        e,
        "providers[1]: duplicate provider id \"emailpass\" (already used by providers[0])"
    );
}

#[test]
fn invalid_options_name_the_provider_and_field() {
    let e = build_err(
        "[store]\nurl='memory://'\n[[providers]]\nresolve='emailpass'\nid='pw'\n[providers.options]\nhash = { memory_kib = 1024 }\n",
    );
    assert_eq!(
        e,
        "providers[0] \"pw\": options.hash.memory_kib: must be at least 7168 (OWASP minimum for argon2id)"
    );
    let e = build_err(
        "[store]\nurl='memory://'\n[[providers]]\nresolve='emailpass'\nid='pw'\n[providers.options]\nhash = { memory_kib = 'lots' }\n",
    );
    assert!(
        e.starts_with(
            "providers[0] \"pw\": options.hash.memory_kib: invalid type: string \"lots\""
        ),
        "{e}"
    );
    let e = build_err(
        "[store]\nurl='memory://'\n[[providers]]\nresolve='emailpass'\nid='pw'\n[providers.options]\npepper = 'x'\n",
    );
    assert!(
        e.starts_with("providers[0] \"pw\": options.pepper: unknown field `pepper`"),
        "{e}"
    );
}

#[test]
fn missing_env_var_is_named() {
    let e = build_err(
        "[http]\njwt_secret = '${AUTH_TESTS_SURELY_UNSET_VARIABLE}'\n[[providers]]\nresolve='emailpass'\nid='a'\n",
    );
    assert_eq!(
        e,
        "environment variable AUTH_TESTS_SURELY_UNSET_VARIABLE is not set (used at http.jwt_secret)"
    );
}

#[test]
fn unreadable_and_malformed_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let e = Config::from_file(&missing).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("cannot read config file {}:", missing.display())),
        "{e}"
    );

    let bad = write_config(&dir, "bad.toml", "[http]\njwt_secret = \"unterminated\n");
    let e = Config::from_file(&bad).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "config file {}: malformed TOML at line 2, column",
            bad.display()
        )),
        "{e}"
    );

    let bad = write_config(&dir, "bad.json", "{\"providers\": [\n  {\"id\": }\n]}");
    let e = Config::from_file(&bad).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "config file {}: malformed JSON at line 2, column 10: expected value",
            bad.display()
        )
    );
}

#[test]
fn non_memory_store_needs_a_store_crate() {
    let e = build_err("[store]\nurl='sqlite://x.db'\n[[providers]]\nresolve='emailpass'\nid='a'\n");
    assert!(
        e.starts_with(
            "store.url: this store is opened by a store factory (auth-server's), not by auth-module"
        ),
        "{e}"
    );
}

#[tokio::test]
async fn validation_messages_password_first() {
    let m = module_from_toml(EMAILPASS);
    for (body, msg) in [
        (json!({}), "Password should be a string"),
        (json!({"email": "a@b.c"}), "Password should be a string"),
        (
            json!({"email": "a@b.c", "password": ""}),
            "Password should be a string",
        ),
        (
            json!({"email": "a@b.c", "password": 12345}),
            "Password should be a string",
        ),
        (json!({"password": "x"}), "Email should be a string"),
        (
            json!({"email": null, "password": "x"}),
            "Email should be a string",
        ),
        (
            json!({"email": {"a": 1}, "password": "x"}),
            "Email should be a string",
        ),
    ] {
        for r in [
            m.register("emailpass", AuthRequest::json(body.clone()))
                .await
                .unwrap(),
            m.authenticate("emailpass", AuthRequest::json(body.clone()))
                .await
                .unwrap(),
        ] {
            assert!(!r.is_authenticated());
            assert_eq!(r.failure(), Some(msg), "{body}");
        }
    }
}

#[tokio::test]
async fn unknown_email_and_wrong_password_look_the_same() {
    let m = module_from_toml(EMAILPASS);
    m.register("emailpass", creds("bob@example.com", "pw-1"))
        .await
        .unwrap();
    let unknown = m
        .authenticate("emailpass", creds("nobody@example.com", "pw-1"))
        .await
        .unwrap();
    let wrong = m
        .authenticate("emailpass", creds("bob@example.com", "pw-2"))
        .await
        .unwrap();
    assert_eq!(unknown.failure(), wrong.failure());
    assert_eq!(unknown.failure(), Some("Invalid email or password"));
}

#[tokio::test]
async fn emails_are_trimmed_and_case_insensitive() {
    let m = module_from_toml(EMAILPASS);
    let r = m
        .register("emailpass", creds("  Carol@Example.COM ", "pw"))
        .await
        .unwrap();
    let id = r.into_identity().unwrap().id;
    let l = m
        .authenticate("emailpass", creds("carol@example.com", "pw"))
        .await
        .unwrap();
    assert_eq!(l.into_identity().unwrap().id, id);
    let p = m
        .find_provider_identity("emailpass", "carol@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.entity_id, "carol@example.com");
}

#[tokio::test]
async fn register_again_follows_medusa_2_21() {
    let m = module_from_toml(EMAILPASS);
    let first = m
        .register("emailpass", creds("dan@example.com", "pw"))
        .await
        .unwrap();
    let id = first.into_identity().unwrap().id;
    // Same password, no actor linked: the same identity, again.
    let again = m
        .register("emailpass", creds("dan@example.com", "pw"))
        .await
        .unwrap();
    assert!(again.is_authenticated());
    assert_eq!(again.into_identity().unwrap().id, id);
    // Another password: refused.
    let other = m
        .register("emailpass", creds("dan@example.com", "other"))
        .await
        .unwrap();
    assert_eq!(other.failure(), Some("Identity with email already exists"));
    // Once an actor is linked, even the same password is refused.
    m.link_actor(&id, "customer", "cus_1").await.unwrap();
    let linked = m
        .register("emailpass", creds("dan@example.com", "pw"))
        .await
        .unwrap();
    assert_eq!(linked.failure(), Some("Identity with email already exists"));
    let login = m
        .authenticate("emailpass", creds("dan@example.com", "pw"))
        .await
        .unwrap();
    assert_eq!(
        login.into_identity().unwrap().actor_id("customer"),
        Some("cus_1")
    );
}

#[tokio::test]
async fn fifty_concurrent_registrations_of_one_email() {
    let store = Arc::new(MemoryIdentityStore::new());
    // No limits: the store alone must keep the race to one identity.
    let m = AuthModule::builder()
        .limits(auth_module::LimitsConfig::off())
        .identity_store(store.clone())
        .provider("emailpass", "emailpass", Value::Null)
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let m = m.clone();
        tasks.push(tokio::spawn(async move {
            m.register(
                "emailpass",
                creds("race@example.com", &format!("race password {i}")),
            )
            .await
            .unwrap()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let r = t.await.unwrap();
        if r.is_authenticated() {
            ok += 1;
        } else {
            assert_eq!(r.failure(), Some("Identity with email already exists"));
        }
    }
    assert_eq!(ok, 1);
    let p = store
        .find_provider_identity("emailpass", "race@example.com")
        .await
        .unwrap()
        .unwrap();
    // Exactly one identity, holding exactly one provider identity.
    let identity = store
        .retrieve_auth_identity(&p.auth_identity_id)
        .await
        .unwrap();
    assert_eq!(identity.provider_identities.len(), 1);
}

#[tokio::test]
async fn unknown_provider_and_unsupported_methods() {
    let m = module_from_toml(EMAILPASS);
    let r = m.authenticate("nope", creds("a@b.c", "x")).await.unwrap();
    assert_eq!(
        r.failure(),
        Some("Unable to retrieve the auth provider with id: nope")
    );
    let r = m
        .validate_callback("emailpass", AuthRequest::default())
        .await
        .unwrap();
    assert_eq!(
        r.failure(),
        Some("Callback authentication not implemented for provider emailpass")
    );
}

#[tokio::test]
async fn one_kind_under_two_ids_keeps_identities_apart() {
    let m = module_from_toml(
        "[store]\nurl='memory://'\n[[providers]]\nresolve='emailpass'\nid='staff'\n[[providers]]\nresolve='emailpass'\nid='shoppers'\n",
    );
    let a = m
        .register("staff", creds("eve@example.com", "staff password"))
        .await
        .unwrap();
    let b = m
        .register("shoppers", creds("eve@example.com", "shop password"))
        .await
        .unwrap();
    assert!(a.is_authenticated() && b.is_authenticated());
    assert_ne!(a.into_identity().unwrap().id, b.into_identity().unwrap().id);
    assert!(
        !m.authenticate("staff", creds("eve@example.com", "shop password"))
            .await
            .unwrap()
            .is_authenticated()
    );
    assert!(
        m.authenticate("shoppers", creds("eve@example.com", "shop password"))
            .await
            .unwrap()
            .is_authenticated()
    );
    let keys: Vec<_> = m.providers().into_iter().map(|p| p.registry_key).collect();
    assert_eq!(keys, ["au_emailpass_staff", "au_emailpass_shoppers"]);
}

#[tokio::test]
async fn weaker_stored_hash_is_upgraded_on_login() {
    let store: Arc<dyn IdentityStore> = Arc::new(MemoryIdentityStore::new());
    let state: Arc<dyn StateStore> = Arc::new(MemoryStateStore::new());
    let weak = AuthModule::builder()
        .identity_store(store.clone())
        .state_store(state.clone())
        .provider(
            "emailpass",
            "emailpass",
            json!({"hash": {"memory_kib": 7168, "iterations": 5}}),
        )
        .build()
        .unwrap();
    weak.register("emailpass", creds("old@example.com", "an old password"))
        .await
        .unwrap();
    let stored = |store: Arc<dyn IdentityStore>| async move {
        let p = store
            .find_provider_identity("emailpass", "old@example.com")
            .await
            .unwrap()
            .unwrap();
        p.provider_metadata.unwrap()["password"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(stored(store.clone()).await.contains("m=7168,t=5,p=1"));

    let strong = AuthModule::builder()
        .identity_store(store.clone())
        .state_store(state)
        .provider("emailpass", "emailpass", Value::Null)
        .build()
        .unwrap();
    assert!(
        strong
            .authenticate("emailpass", creds("old@example.com", "an old password"))
            .await
            .unwrap()
            .is_authenticated()
    );
    let upgraded = stored(store.clone()).await;
    assert!(upgraded.contains("m=19456,t=2,p=1"), "{upgraded}");
    assert!(
        strong
            .authenticate("emailpass", creds("old@example.com", "an old password"))
            .await
            .unwrap()
            .is_authenticated()
    );
}

#[tokio::test]
async fn update_refuses_missing_password_and_unknown_identity() {
    let m = module_from_toml(EMAILPASS);
    m.register("emailpass", creds("fay@example.com", "pw"))
        .await
        .unwrap();
    let r = m
        .update_provider(
            "emailpass",
            AuthRequest::json(json!({"entity_id": "fay@example.com"})),
        )
        .await
        .unwrap();
    assert_eq!(r.failure(), Some("Password should be a string"));
    let r = m
        .update_provider(
            "emailpass",
            AuthRequest::json(json!({"entity_id": "ghost@example.com", "password": "x"})),
        )
        .await
        .unwrap();
    assert!(!r.is_authenticated());
    assert!(
        m.authenticate("emailpass", creds("fay@example.com", "pw"))
            .await
            .unwrap()
            .is_authenticated()
    );
}

#[tokio::test]
async fn identity_crud_and_actor_links() {
    let m = module_from_toml(EMAILPASS);
    let id = m
        .register("emailpass", creds("gus@example.com", "pw"))
        .await
        .unwrap()
        .into_identity()
        .unwrap()
        .id;
    let linked = m.link_actor(&id, "customer", "cus_9").await.unwrap();
    assert_eq!(linked.actor_id("customer"), Some("cus_9"));
    let unlinked = m.unlink_actor(&id, "customer").await.unwrap();
    assert_eq!(unlinked.actor_id("customer"), None);
    assert_eq!(
        m.link_actor(&id, "bad actor", "x")
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidData
    );
    let by_provider = m
        .retrieve_by_provider("emailpass", "gus@example.com")
        .await
        .unwrap();
    assert_eq!(by_provider.id, id);
    m.delete_auth_identity(&id).await.unwrap();
    assert_eq!(
        m.retrieve_auth_identity(&id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(
        m.find_provider_identity("emailpass", "gus@example.com")
            .await
            .unwrap()
            .is_none()
    );
    // The email is free again.
    assert!(
        m.register("emailpass", creds("gus@example.com", "new"))
            .await
            .unwrap()
            .is_authenticated()
    );
}

/// An identity store whose first `update_provider_identity` waits, after
/// announcing itself, until the test lets it go: it opens the window between
/// a login's read of the stored hash and its write of the upgraded one.
#[derive(Debug)]
struct GatedStore {
    inner: Arc<dyn IdentityStore>,
    reached: tokio::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    release: tokio::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
}

#[auth_module::async_trait]
impl IdentityStore for GatedStore {
    async fn create_auth_identity(
        &self,
        new: auth_module::NewAuthIdentity,
    ) -> auth_module::Result<auth_module::AuthIdentity> {
        self.inner.create_auth_identity(new).await
    }
    async fn retrieve_auth_identity(
        &self,
        id: &str,
    ) -> auth_module::Result<auth_module::AuthIdentity> {
        self.inner.retrieve_auth_identity(id).await
    }
    async fn update_app_metadata(
        &self,
        id: &str,
        m: Option<auth_module::Metadata>,
    ) -> auth_module::Result<auth_module::AuthIdentity> {
        self.inner.update_app_metadata(id, m).await
    }
    async fn patch_app_metadata(
        &self,
        id: &str,
        key: &str,
        value: Option<Value>,
    ) -> auth_module::Result<auth_module::AuthIdentity> {
        self.inner.patch_app_metadata(id, key, value).await
    }
    async fn bump_credential_version(
        &self,
        id: &str,
    ) -> auth_module::Result<auth_module::AuthIdentity> {
        self.inner.bump_credential_version(id).await
    }
    async fn delete_auth_identity(&self, id: &str) -> auth_module::Result<()> {
        self.inner.delete_auth_identity(id).await
    }
    async fn find_provider_identity(
        &self,
        provider: &str,
        entity_id: &str,
    ) -> auth_module::Result<Option<auth_module::ProviderIdentity>> {
        self.inner.find_provider_identity(provider, entity_id).await
    }
    async fn add_provider_identity(
        &self,
        auth_identity_id: &str,
        new: auth_module::NewProviderIdentity,
    ) -> auth_module::Result<auth_module::ProviderIdentity> {
        self.inner
            .add_provider_identity(auth_identity_id, new)
            .await
    }
    async fn update_provider_identity(
        &self,
        id: &str,
        update: auth_module::ProviderIdentityUpdate,
    ) -> auth_module::Result<auth_module::ProviderIdentity> {
        if let Some(reached) = self.reached.lock().await.take() {
            let _ = reached.send(());
            if let Some(release) = self.release.lock().await.take() {
                let _ = release.await;
            }
        }
        self.inner.update_provider_identity(id, update).await
    }
    async fn delete_provider_identity(&self, id: &str) -> auth_module::Result<()> {
        self.inner.delete_provider_identity(id).await
    }
    fn audit_store(self: Arc<Self>) -> Option<Arc<dyn auth_module::AuditStore>> {
        Arc::clone(&self.inner).audit_store()
    }
}

/// A login that upgrades a weak stored hash must not undo a password change
/// committed while it was hashing: the old password, and tokens issued before
/// the change, must stay dead.
#[tokio::test(flavor = "multi_thread")]
async fn a_hash_upgrade_never_undoes_a_concurrent_password_change() {
    let store: Arc<dyn IdentityStore> = Arc::new(MemoryIdentityStore::new());
    let state: Arc<dyn StateStore> = Arc::new(MemoryStateStore::new());
    let module = |identities: Arc<dyn IdentityStore>, options: Value| {
        AuthModule::builder()
            .identity_store(identities)
            .state_store(state.clone())
            .provider("emailpass", "emailpass", options)
            .build()
            .unwrap()
    };
    let weak = module(
        store.clone(),
        json!({"hash": {"memory_kib": 7168, "iterations": 5}}),
    );
    let id = weak
        .register("emailpass", creds("race@example.com", "the old password"))
        .await
        .unwrap()
        .into_identity()
        .unwrap()
        .id;

    let (reached_tx, reached_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel();
    let gated: Arc<dyn IdentityStore> = Arc::new(GatedStore {
        inner: store.clone(),
        reached: tokio::sync::Mutex::new(Some(reached_tx)),
        release: tokio::sync::Mutex::new(Some(release_rx)),
    });
    // Logs in with the strong default cost, so the weak hash is upgraded.
    let login_module = module(gated, Value::Null);
    let login = tokio::spawn(async move {
        login_module
            .authenticate("emailpass", creds("race@example.com", "the old password"))
            .await
            .unwrap()
    });
    // The login has verified the old password and is about to write.
    reached_rx.await.unwrap();
    let reset_module = module(store.clone(), Value::Null);
    let changed = reset_module
        .update_provider(
            "emailpass",
            AuthRequest::json(
                json!({"entity_id": "race@example.com", "password": "the new password"}),
            ),
        )
        .await
        .unwrap();
    assert!(changed.is_authenticated(), "{changed:?}");
    release_tx.send(()).unwrap();
    assert!(
        login.await.unwrap().is_authenticated(),
        "the login itself succeeded"
    );

    let after = reset_module.retrieve_auth_identity(&id).await.unwrap();
    assert_eq!(after.credential_version, 1, "the change's version stays");
    assert!(
        !reset_module
            .authenticate("emailpass", creds("race@example.com", "the old password"))
            .await
            .unwrap()
            .is_authenticated(),
        "the old password stays dead"
    );
    assert!(
        reset_module
            .authenticate("emailpass", creds("race@example.com", "the new password"))
            .await
            .unwrap()
            .is_authenticated()
    );
}

/// A complete password reset through the library alone: request, the event,
/// a refused token on another route, a refused weak body that leaves the
/// token usable, the change, and the token spent.
#[tokio::test(flavor = "multi_thread")]
async fn a_complete_reset_through_the_library() {
    use auth_module::accounts::{PasswordReset, ResetOutcome};
    let m = module_from_toml(EMAILPASS);
    m.register("emailpass", creds("lib@example.com", "old-pw"))
        .await
        .unwrap();
    let tokens = library_tokens();
    let reset = PasswordReset::new(m.clone(), tokens);
    let mut events = m.events().subscribe();

    reset
        .request("customer", "emailpass", "ghost@example.com", None, None)
        .await;
    reset
        .request("customer", "emailpass", " LIB@example.com ", None, None)
        .await;
    let event = events.recv().await.unwrap();
    assert_eq!(event.name, auth_module::accounts::PASSWORD_RESET_EVENT);
    assert_eq!(
        event.data["entity_id"],
        json!("lib@example.com"),
        "only the known one"
    );
    let token = event.data["token"].as_str().unwrap().to_owned();
    let complete = |body: Value| {
        let (reset, token) = (&reset, &token);
        async move {
            let body = body.as_object().cloned().unwrap();
            reset
                .complete("customer", "emailpass", token, body, None)
                .await
                .unwrap()
        }
    };

    assert_eq!(
        reset
            .complete("user", "emailpass", &token, Default::default(), None)
            .await
            .unwrap(),
        ResetOutcome::InvalidToken,
        "another actor's route"
    );
    assert_eq!(
        complete(json!({})).await,
        ResetOutcome::Failed {
            message: "Password should be a string".into()
        }
    );
    assert_eq!(
        complete(json!({"password": "new-pw"})).await,
        ResetOutcome::Done
    );
    assert_eq!(
        complete(json!({"password": "again"})).await,
        ResetOutcome::InvalidToken,
        "spent"
    );
    assert!(
        !m.authenticate("emailpass", creds("lib@example.com", "old-pw"))
            .await
            .unwrap()
            .is_authenticated()
    );
    let after = m
        .authenticate("emailpass", creds("lib@example.com", "new-pw"))
        .await
        .unwrap();
    assert_eq!(after.identity().unwrap().credential_version, 1);
}

/// Sessions through the library: create, read, list per identity (20 made at
/// once all listed), end one by handle, end all.
#[tokio::test(flavor = "multi_thread")]
async fn sessions_through_the_library() {
    use auth_module::flows::Sessions;
    let m = module_from_toml(EMAILPASS);
    let identity = m
        .register("emailpass", creds("ses@example.com", "pw"))
        .await
        .unwrap()
        .into_identity()
        .unwrap();
    let tokens = library_tokens();
    let claims = tokens.claims_for(&identity, "customer", "emailpass");
    let sessions = Sessions::new(m.state_store().clone(), std::time::Duration::from_secs(600));
    let made: Vec<_> = (0..20)
        .map(|_| {
            let (sessions, claims) = (sessions.clone(), claims.clone());
            tokio::spawn(async move { sessions.create(&claims).await.unwrap() })
        })
        .collect();
    let mut sids = Vec::new();
    for h in made {
        sids.push(h.await.unwrap());
    }
    assert_eq!(sessions.get(&sids[0]).await.unwrap(), Some(claims.clone()));
    let listed = sessions.list(&identity.id).await.unwrap();
    assert_eq!(listed.len(), 20, "every concurrent create is listed");
    assert!(
        listed.iter().all(|s| !sids.contains(&s.handle)),
        "handles are not session ids"
    );
    assert!(sessions.end(&sids[1]).await.unwrap());
    assert!(!sessions.end(&sids[1]).await.unwrap(), "already ended");
    let listed = sessions.list(&identity.id).await.unwrap();
    assert_eq!(listed.len(), 19);
    assert!(
        sessions
            .end_by_handle(&identity.id, &listed[0].handle)
            .await
            .unwrap()
    );
    assert_eq!(sessions.list(&identity.id).await.unwrap().len(), 18);
    assert_eq!(sessions.end_all(&identity.id).await.unwrap(), 18);
    assert!(sessions.list(&identity.id).await.unwrap().is_empty());
    for sid in &sids {
        assert_eq!(sessions.get(sid).await.unwrap(), None);
    }
    assert_eq!(sessions.get("not-a-session").await.unwrap(), None);

    // A cap per identity: the oldest end first.
    let capped = Sessions::new(m.state_store().clone(), std::time::Duration::from_secs(600))
        .with_max_per_identity(3);
    let mut made = Vec::new();
    for _ in 0..5 {
        made.push(capped.create(&claims).await.unwrap());
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    assert_eq!(capped.list(&identity.id).await.unwrap().len(), 3);
    for (i, sid) in made.iter().enumerate() {
        assert_eq!(
            capped.get(sid).await.unwrap().is_some(),
            i >= 2,
            "session {i}: the two oldest ended"
        );
    }
}

/// The state store never holds a session id: only its SHA-256.
#[tokio::test(flavor = "multi_thread")]
async fn session_ids_are_stored_as_hashes() {
    use sqlx::ConnectOptions;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = auth_store_sql::SqlStore::sqlite(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let sessions =
        auth_module::flows::Sessions::new(Arc::new(store), std::time::Duration::from_secs(600));
    let identity = auth_module::AuthIdentity::new("authid_hash", time::OffsetDateTime::now_utc());
    let claims = library_tokens().claims_for(&identity, "customer", "emailpass");
    let sid = sessions.create(&claims).await.unwrap();
    assert_eq!(sessions.get(&sid).await.unwrap(), Some(claims));
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .connect()
        .await
        .unwrap();
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT key, value FROM auth_state")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert!(!rows.is_empty());
    for (key, value) in rows {
        assert!(
            !key.contains(&sid) && !value.contains(&sid),
            "{key} = {value}"
        );
    }
}

fn library_tokens() -> auth_module::Tokens {
    auth_module::Tokens::hs256(
        &auth_module::Secret::new("library-secret-0123456789abcdef0123"),
        std::time::Duration::from_secs(600),
    )
}

/// MFA and verification from the library alone, on a clock the test moves:
/// no HTTP, and no test waits for a time step.
#[tokio::test]
async fn mfa_and_verification_steps_as_a_library_on_a_fixed_clock() {
    use auth_module::LoginOutcome;
    use auth_module::mfa::{Clock, FixedClock, Totp, TotpAlgorithm, base32_decode};

    let clock = Arc::new(FixedClock::new(1_800_000_000));
    let text = format!(
        "{EMAILPASS}\n[mfa]\nencryption_key = \"{}\"\nchallenge_ttl_seconds = 60\n\
         [http.auth_verifications_per_actor]\n\
         admin = [{{ entity_type = \"email\", auth_provider = \"emailpass\" }}]\n",
        "k".repeat(40)
    );
    let module = AuthModule::builder()
        .config(Config::from_toml_str(&text).unwrap())
        .clock(clock.clone())
        .build()
        .unwrap();
    let mut events = module.events().subscribe();
    let login = |actor: &'static str| {
        let module = module.clone();
        async move {
            module
                .authenticate(
                    "emailpass",
                    creds("ada@example.com", "a password").actor_type(actor),
                )
                .await
                .unwrap()
        }
    };
    let reg = module
        .register("emailpass", creds("ada@example.com", "a password"))
        .await
        .unwrap();
    let id = reg.identity().unwrap().id.clone();

    // Verification comes first, for the actor type that asks for it.
    match login("admin").await {
        LoginOutcome::VerificationRequired { verification, .. } => assert!(verification.is_none()),
        other => panic!("{other:?}"),
    }
    assert!(login("customer").await.is_authenticated());
    module
        .verifications()
        .request(&id, "ada@example.com", "email", None, None)
        .await
        .unwrap();
    let event = events.recv().await.unwrap();
    assert_eq!(event.name, "auth.verification_requested");
    let code = event.data["code"].as_str().unwrap().to_owned();
    clock.advance(901);
    let expired = module
        .verifications()
        .confirm(&code, None)
        .await
        .unwrap_err();
    assert_eq!(expired.message(), "Verification code has expired");
    module
        .verifications()
        .request(&id, "ada@example.com", "email", None, None)
        .await
        .unwrap();
    let code = events.recv().await.unwrap().data["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let row = module.verifications().confirm(&code, None).await.unwrap();
    assert!(row.verified_at.is_some());
    assert!(login("admin").await.is_authenticated());

    // MFA: enrol on the clock's time, then every login is challenged.
    let mfa = module.mfa();
    let created = mfa
        .create_factor(&id, "totp", Some("Ada's phone"), None, None)
        .await
        .unwrap();
    let totp = Totp::new(
        base32_decode(&created.secret).unwrap(),
        6,
        30,
        TotpAlgorithm::Sha1,
    );
    let now = clock.now_unix();
    let step = totp.step(now);
    mfa.verify_factor(&id, &created.factor.id, &totp.code_for_step(step))
        .await
        .unwrap();
    let challenge = match login("admin").await {
        LoginOutcome::MfaRequired { challenge, .. } => challenge,
        other => panic!("{other:?}"),
    };
    assert_eq!(challenge.methods, ["totp"]);
    // The step spent by the enrolment is refused; the next one is accepted.
    let replay = mfa
        .verify_challenge(&id, &challenge.id, "totp", &totp.code_for_step(step))
        .await
        .unwrap_err();
    assert_eq!(replay.message(), "Invalid MFA challenge code");
    clock.advance(30);
    let done = mfa
        .verify_challenge(&id, &challenge.id, "totp", &totp.code_for_step(step + 1))
        .await
        .unwrap();
    assert!(done.completed_at.ends_with('Z'));
    // A challenge outlives nothing: past its TTL it has expired.
    let late = match login("admin").await {
        LoginOutcome::MfaRequired { challenge, .. } => challenge,
        other => panic!("{other:?}"),
    };
    clock.advance(61);
    let err = mfa
        .verify_challenge(&id, &late.id, "totp", &totp.code_at(clock.now_unix()))
        .await
        .unwrap_err();
    assert_eq!(err.message(), "MFA challenge has expired");
}

/// The update limit lives in the core: a library user's
/// `PasswordReset::complete` takes its slot before the token is looked at,
/// and a success gives it back.
#[tokio::test]
async fn the_core_enforces_the_update_limit() {
    use auth_module::accounts::{PasswordReset, ResetOutcome};
    let m = module_from_toml(&format!(
        "{EMAILPASS}\n[limits]\nupdate_failures_per_address = {{ count = 2, window = \"1m\" }}\n"
    ));
    m.register("emailpass", creds("upd@example.com", "old-pw"))
        .await
        .unwrap();
    let reset = PasswordReset::new(m.clone(), library_tokens());
    let addr: std::net::IpAddr = "192.0.2.9".parse().unwrap();
    let body = |pw: &str| json!({ "password": pw }).as_object().cloned().unwrap();
    let mut events = m.events().subscribe();
    reset
        .request("customer", "emailpass", "upd@example.com", None, None)
        .await;
    let token = events.recv().await.unwrap().data["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // One failure, then the success gives its slot back...
    let wrong = reset
        .complete("customer", "emailpass", "forged", body("x"), Some(addr))
        .await
        .unwrap();
    assert_eq!(wrong, ResetOutcome::InvalidToken);
    let done = reset
        .complete(
            "customer",
            "emailpass",
            &token,
            body("a new password"),
            Some(addr),
        )
        .await
        .unwrap();
    assert_eq!(done, ResetOutcome::Done);
    // ...so one more failure fits, and the next try is refused before the
    // token is read (even a real one would be).
    let wrong = reset
        .complete("customer", "emailpass", "forged", body("x"), Some(addr))
        .await
        .unwrap();
    assert_eq!(wrong, ResetOutcome::InvalidToken);
    let refused = reset
        .complete("customer", "emailpass", "forged", body("x"), Some(addr))
        .await
        .unwrap();
    assert!(
        matches!(refused, ResetOutcome::Throttled { .. }),
        "{refused:?}"
    );
    // Another address is not affected.
    let other: std::net::IpAddr = "192.0.2.10".parse().unwrap();
    let wrong = reset
        .complete("customer", "emailpass", "forged", body("x"), Some(other))
        .await
        .unwrap();
    assert_eq!(wrong, ResetOutcome::InvalidToken);
}
