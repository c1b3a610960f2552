//! The conformance kit, and a login through the module.

use provider_{{ident}} as _;

auth_testkit::provider_suite!(
    conformance,
    provider_{{ident}}::{{Type}}Provider,
    serde_json::json!({ "users": ["ada@example.com"] })
);

#[tokio::test]
async fn a_listed_user_logs_in_and_others_do_not() {
    let module = auth_module::AuthModule::builder()
        .provider(
            "{{name}}",
            "{{name}}",
            serde_json::json!({ "users": ["ada@example.com"] }),
        )
        .build()
        .expect("the module builds");
    let login = |who: &str| {
        module.authenticate(
            "{{name}}",
            auth_module::AuthRequest::json(serde_json::json!({ "identifier": who })),
        )
    };
    let first = login("ada@example.com").await.expect("no store error");
    let again = login("ada@example.com").await.expect("no store error");
    assert_eq!(
        first.identity().map(|i| &i.id),
        again.identity().map(|i| &i.id),
        "the same identity"
    );
    assert!(
        login("eve@example.com")
            .await
            .expect("no store error")
            .failure()
            .is_some()
    );
}
