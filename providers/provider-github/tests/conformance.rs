//! The provider conformance suite every provider kind runs.

use provider_github as _;

auth_testkit::provider_suite!(
    github,
    provider_github::GithubProvider,
    serde_json::json!({
        "clientId": "client",
        "clientSecret": "secret",
        "callbackUrl": "https://shop.example/auth/customer/github/callback"
    })
);
