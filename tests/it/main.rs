//! Workspace integration tests: one binary, one module per area.

// Test helpers are `pub` for the sibling modules; this binary exports nothing.
#![allow(unreachable_pub)]

// Link the providers under test so their registrations are kept.
use provider_emailpass as _;

mod abuse;
mod access;
mod bad_input;
mod console;
mod http;
mod import;
mod jwks;
mod limits;
mod management;
mod medusa;
mod mfa;
mod module;
mod openapi;
mod origin;
mod passkey;
mod password_policy;
mod pg_fault;
mod postgres;
mod replicas;
mod reset;
mod security;
mod social;
mod support;
mod upgrade;
