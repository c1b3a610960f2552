//! `cargo xtask ci` runs exactly what CI runs; `cargo xtask bench` runs the
//! benchmarks; `cargo xtask new-provider NAME` writes a provider crate.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn run(cmd: &str, args: &[&str], envs: &[(&str, &str)]) -> Result<(), String> {
    eprintln!("+ {cmd} {}", args.join(" "));
    let status = Command::new(cmd)
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot run {cmd}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{cmd} {}` failed ({status})", args.join(" ")))
    }
}

fn ci() -> Result<(), String> {
    run("cargo", &["fmt", "--all", "--check"], &[])?;
    run(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )?;
    run(
        "cargo",
        &[
            "doc",
            "--workspace",
            "--no-deps",
            "--all-features",
            "--locked",
        ],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    // auth-server per feature set: a workspace build unifies features and can
    // hide a missing `cfg`.
    run(
        "cargo",
        &[
            "check",
            "-p",
            "auth-server",
            "--no-default-features",
            "--features",
            "sqlite",
            "--locked",
        ],
        &[],
    )?;
    run(
        "cargo",
        &["test", "--workspace", "--all-features", "--locked"],
        &[],
    )?;
    Ok(())
}

fn bench() -> Result<(), String> {
    run(
        "cargo",
        &["bench", "-p", "provider-emailpass", "--bench", "hash"],
        &[],
    )?;
    run(
        "cargo",
        &["bench", "-p", "auth-tests", "--bench", "http"],
        &[],
    )?;
    run(
        "cargo",
        &["bench", "-p", "auth-tests", "--bench", "flood"],
        &[],
    )?;
    run(
        "cargo",
        &["bench", "-p", "auth-tests", "--bench", "social"],
        &[],
    )?;
    run(
        "cargo",
        &["bench", "-p", "auth-tests", "--bench", "replicas"],
        &[],
    )
}

fn new_provider(name: &str) -> Result<(), String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err("NAME: lower-case letters, digits and '-' only".into());
    }
    let krate = format!("provider-{name}");
    let dir = root().join("providers").join(&krate);
    if dir.exists() {
        return Err(format!("{} exists", dir.display()));
    }
    let ty: String = name
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    std::fs::create_dir_all(dir.join("src")).map_err(|e| e.to_string())?;
    let manifest = format!(
        "[package]\nname = \"{krate}\"\nversion.workspace = true\nedition.workspace = true\n\
         rust-version.workspace = true\nlicense.workspace = true\npublish.workspace = true\n\n\
         [dependencies]\nauth-module.workspace = true\nserde.workspace = true\n\n\
         [dev-dependencies]\nauth-testkit.workspace = true\nserde_json.workspace = true\n\n[lints]\nworkspace = true\n"
    );
    let lib = format!(
        "//! The `{name}` provider.\n\n\
         use auth_module::{{AuthOutcome, AuthProvider, AuthRequest, OptionsError, ProviderFlow, ProviderIdentities, ProviderInit, ProviderKind, Result, ValidateOptions, async_trait}};\n\n\
         /// The provider kind's identifier.\npub const IDENTIFIER: &str = \"{name}\";\n\n\
         /// Options of the `{name}` provider.\n#[derive(Debug, Default, serde::Deserialize)]\n#[serde(deny_unknown_fields)]\npub struct {ty}Options {{}}\n\n\
         impl ValidateOptions for {ty}Options {{}}\n\n\
         /// The `{name}` provider.\n#[derive(Debug)]\npub struct {ty}Provider;\n\n\
         impl ProviderKind for {ty}Provider {{\n    const IDENTIFIER: &'static str = IDENTIFIER;\n    const DISPLAY_NAME: &'static str = \"{ty}\";\n    const FLOW: ProviderFlow = ProviderFlow::Credentials;\n    type Options = {ty}Options;\n    fn new(_init: ProviderInit<{ty}Options>) -> std::result::Result<Self, OptionsError> {{\n        Ok({ty}Provider)\n    }}\n}}\n\n\
         #[async_trait]\nimpl AuthProvider for {ty}Provider {{\n    async fn authenticate(&self, _req: AuthRequest, _ids: &ProviderIdentities) -> Result<AuthOutcome> {{\n        Ok(AuthOutcome::failed(\"Not implemented yet\"))\n    }}\n}}\n\n\
         auth_module::register_provider!({ty}Provider);\n"
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("src/lib.rs"), lib).map_err(|e| e.to_string())?;
    let krate_ident = krate.replace('-', "_");
    let conformance = format!(
        "//! The provider conformance suite every provider kind runs.\n\n\
         use {krate_ident} as _;\n\n\
         auth_testkit::provider_suite!(conformance, {krate_ident}::{ty}Provider, serde_json::json!({{}}));\n"
    );
    std::fs::create_dir_all(dir.join("tests")).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("tests/conformance.rs"), conformance).map_err(|e| e.to_string())?;
    eprintln!(
        "wrote {}; add \"providers/{krate}\" to the workspace members, and a `{krate}` feature to auth-server",
        dir.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["ci"] => ci(),
        ["bench"] => bench(),
        ["new-provider", name] => new_provider(name),
        _ => Err("usage: cargo xtask ci | bench | new-provider NAME".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
