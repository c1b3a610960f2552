//! The provider conformance suite every provider kind runs.

use provider_oidc as _;

auth_testkit::provider_suite!(
    oidc,
    provider_oidc::OidcProvider,
    serde_json::json!({
        "issuer": "https://idp.example",
        "client_id": "client",
        "callback_url": "https://shop.example/auth/customer/oidc/callback"
    })
);
