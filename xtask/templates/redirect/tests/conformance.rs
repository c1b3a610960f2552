//! The conformance kit, and a whole sign-in against the fake identity
//! provider (a GitHub-like OAuth server on loopback).

use auth_module::{AuthModule, AuthRequest, LoginOutcome, Metadata};
use auth_testkit::idp::{FakeIdp, FakeUser};
use provider_{{ident}} as _;
use serde_json::{Value, json};

auth_testkit::provider_suite!(
    conformance,
    provider_{{ident}}::{{Type}}Provider,
    json!({
        "clientId": "client",
        "clientSecret": "secret",
        "callbackUrl": "https://shop.example/auth/{{name}}/callback",
        "authorizationUrl": "https://idp.example/authorize",
        "tokenUrl": "https://idp.example/token",
        "userUrl": "https://idp.example/user"
    })
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_signs_in_through_the_fake_identity_provider() {
    let idp = FakeIdp::start().await;
    idp.add_client("client", Some("secret"));
    idp.set_user(FakeUser::new("4242", "ada@example.com"));
    let module = AuthModule::builder()
        .provider(
            "{{name}}",
            "{{name}}",
            json!({
                "clientId": "client",
                "clientSecret": "secret",
                "callbackUrl": "http://shop.test/auth/{{name}}/callback",
                "authorizationUrl": idp.github_authorization_url(),
                "tokenUrl": idp.github_token_url(),
                "userUrl": format!("{}/user", idp.api_url()),
            }),
        )
        .build()
        .expect("the module builds");

    let begin = module
        .authenticate("{{name}}", AuthRequest::json(json!({})).actor_type("customer"))
        .await
        .expect("no store error");
    let LoginOutcome::Redirect { location, .. } = begin else {
        panic!("a redirect: {begin:?}");
    };
    // The user signs in at the identity provider, which sends them back.
    let back = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(&location)
        .send()
        .await
        .expect("authorize");
    let back = back.headers()["location"].to_str().unwrap().to_owned();
    let query: Metadata = reqwest::Url::parse(&back)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    let done = module
        .validate_callback(
            "{{name}}",
            AuthRequest::json(json!({})).query(query.clone()).actor_type("customer"),
        )
        .await
        .expect("no store error");
    let identity = done.identity().expect("signed in").clone();
    let p = identity.provider_identity("{{name}}").expect("linked");
    assert_eq!(p.entity_id, "4242");
    assert_eq!(
        p.user_metadata.as_ref().and_then(|m| m.get("email")),
        Some(&json!("ada@example.com"))
    );
    // The state is single-use.
    let replay = module
        .validate_callback(
            "{{name}}",
            AuthRequest::json(json!({})).query(query).actor_type("customer"),
        )
        .await
        .expect("no store error");
    assert!(replay.failure().is_some(), "{replay:?}");
}
