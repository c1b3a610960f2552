//! The `auth-server` binary: the library's command line.

fn main() -> std::process::ExitCode {
    auth_server::main()
}
