//! The provider conformance suite every provider kind runs.

use provider_emailpass as _;

auth_testkit::provider_suite!(
    emailpass,
    provider_emailpass::EmailPassProvider,
    serde_json::json!({ "hash": { "memory_kib": 19456, "iterations": 2, "parallelism": 1 } })
);
