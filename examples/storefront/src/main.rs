//! `storefront`: `auth-server`'s command line (`serve --config FILE --listen
//! ADDR`, `providers`, `check-config`) with the store routes added.

fn main() -> std::process::ExitCode {
    auth_server::Server::new("storefront")
        .with_routes(storefront::routes_from_env)
        .run()
}
