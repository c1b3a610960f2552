//! The provider conformance suite every provider kind runs.

use provider_google as _;

auth_testkit::provider_suite!(
    google,
    provider_google::GoogleProvider,
    serde_json::json!({
        "clientId": "client",
        "clientSecret": "secret",
        "callbackUrl": "https://shop.example/auth/customer/google/callback"
    })
);
