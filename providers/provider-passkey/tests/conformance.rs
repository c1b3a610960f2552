//! The provider conformance suite, stamped for passkeys.

use provider_passkey as _;

auth_testkit::provider_suite!(
    passkey,
    provider_passkey::PasskeyProvider,
    serde_json::json!({
        "rpId": "shop.example",
        "origins": ["https://shop.example", "https://admin.shop.example:8443"]
    })
);
