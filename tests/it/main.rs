//! Workspace integration tests: one binary, one module per area.

// Link the providers under test so their registrations are kept.
use provider_emailpass as _;

mod module;
