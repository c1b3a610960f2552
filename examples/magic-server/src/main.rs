//! `magic-server`: `auth-server`'s command line, configuration, routes and
//! stores, with the `magic-link` provider linked beside emailpass.
//!
//! ```text
//! magic-server serve --config auth.toml --listen 127.0.0.1:9000
//! magic-server providers        # emailpass, magic-link
//! ```

// Naming the crate links it, and with it its provider registration.
use provider_magic_link as _;

fn main() -> std::process::ExitCode {
    auth_server::Server::new("magic-server").run()
}
