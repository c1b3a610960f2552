//! The conformance kit every provider runs before it is published.

use provider_magic_link as _;

auth_testkit::provider_suite!(
    conformance,
    provider_magic_link::MagicLinkProvider,
    serde_json::json!({ "callback_url": "https://shop.example/auth/magic" })
);
