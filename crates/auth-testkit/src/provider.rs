//! Cases every provider kind must pass, whoever wrote it. Stamp them with
//! [`crate::provider_suite!`] in the provider crate's own `tests/`:
//!
//! ```ignore
//! use provider_mine as _; // keep the link-time registration
//! auth_testkit::provider_suite!(mine, provider_mine::MyProvider, serde_json::json!({ "key": "value" }));
//! ```
//!
//! The options given are valid options; the cases derive invalid ones from them.

use std::sync::Arc;

use auth_module::{
    AuthModule, AuthRequest, MemoryIdentityStore, MemoryStateStore, ProviderKind, Registry,
    linked_providers,
};
use serde_json::{Value, json};

const INSTANCE: &str = "under_test";

/// `IDENTIFIER` is a lower-case route-safe word and `DISPLAY_NAME` is set.
pub fn metadata_rules<P: ProviderKind>() {
    let id = P::IDENTIFIER;
    assert!(!id.is_empty(), "IDENTIFIER is empty");
    assert!(
        id.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'),
        "IDENTIFIER {id:?}: use lower-case letters, digits, '-' and '_'"
    );
    assert!(!P::DISPLAY_NAME.trim().is_empty(), "DISPLAY_NAME is empty");
}

/// The kind is registered at link time under its `IDENTIFIER`, once.
pub fn registered_at_link_time<P: ProviderKind>() {
    let hits: Vec<_> = linked_providers()
        .into_iter()
        .filter(|r| r.identifier() == P::IDENTIFIER)
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "{} must be registered exactly once (auth_module::register_provider!), and the test \
         must name the crate (`use provider_x as _;`)",
        P::IDENTIFIER
    );
    assert_eq!(hits[0].display_name(), P::DISPLAY_NAME);
    assert_eq!(hits[0].flow(), P::FLOW);
    Registry::linked().expect("no two crates register one identifier");
}

fn build(options: Value) -> Result<AuthModule, auth_module::ConfigError> {
    AuthModule::builder()
        .identity_store(Arc::new(MemoryIdentityStore::new()))
        .state_store(Arc::new(MemoryStateStore::new()))
        .provider(
            options["__resolve"].as_str().unwrap_or_default(),
            INSTANCE,
            options["__options"].clone(),
        )
        .build()
}

fn with_kind<P: ProviderKind>(options: Value) -> Value {
    json!({ "__resolve": P::IDENTIFIER, "__options": options })
}

/// The given options build an instance, listed with the kind's metadata.
pub fn builds_with_valid_options<P: ProviderKind>(options: Value) {
    let module = build(with_kind::<P>(options)).expect("the valid options build");
    let info = module
        .provider_info(INSTANCE)
        .expect("the instance is listed");
    assert_eq!(info.identifier, P::IDENTIFIER);
    assert_eq!(info.display_name, P::DISPLAY_NAME);
    assert_eq!(info.flow, P::FLOW);
    assert_eq!(
        info.registry_key,
        format!("au_{}_{INSTANCE}", P::IDENTIFIER)
    );
}

/// An unknown option key, and options that are not an object, are startup
/// errors naming the instance (never a panic, never silently ignored).
pub fn bad_options_are_refused<P: ProviderKind>(options: Value) {
    let mut unknown = options.as_object().cloned().unwrap_or_default();
    unknown.insert("surely_not_an_option".into(), json!(true));
    for bad in [Value::Object(unknown), json!("a string"), json!([1, 2])] {
        let e = build(with_kind::<P>(bad.clone()))
            .expect_err("bad options must be refused")
            .to_string();
        assert!(
            e.starts_with(&format!("providers[0] \"{INSTANCE}\": options")),
            "the error names the instance and `options`: {e} (for {bad})"
        );
    }
}

/// Garbage requests to every method answer a failure or a client error:
/// no panic, no success, no internal error.
pub async fn garbage_inputs_fail_cleanly<P: ProviderKind>(options: Value) {
    let module = build(with_kind::<P>(options)).expect("the valid options build");
    let bodies = [
        json!({}),
        json!({"email": null, "password": null, "code": null, "state": null}),
        json!({"email": [], "password": {}, "code": 1, "state": true}),
        json!({"email": "\u{0}", "password": "\u{0}", "code": "\u{0}", "state": "\u{0}"}),
        json!({"email": "x".repeat(10_000), "password": "y".repeat(10_000)}),
    ];
    for body in bodies {
        let shown: String = body.to_string().chars().take(80).collect();
        let req = || AuthRequest::json(body.clone()).actor_type("customer");
        let results = [
            ("authenticate", module.authenticate(INSTANCE, req()).await),
            ("register", module.register(INSTANCE, req()).await),
            ("update", module.update_provider(INSTANCE, req()).await),
            (
                "validate_callback",
                module.validate_callback(INSTANCE, req()).await,
            ),
        ];
        for (method, r) in results {
            match r {
                Ok(r) => assert!(
                    r.identity().is_none(),
                    "{method} succeeded on garbage {shown}"
                ),
                Err(e) => assert!(
                    !e.kind().is_internal(),
                    "{method} answered an internal error on garbage {shown}: {e}"
                ),
            }
        }
    }
}
