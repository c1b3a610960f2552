//! `cargo xtask ci` runs exactly what CI runs; `cargo xtask bench` runs the
//! benchmarks;
//! `cargo xtask new-provider NAME [--flow credentials|redirect]` writes
//! `providers/provider-NAME` and adds it to the workspace;
//! `cargo xtask sync-examples` brings `examples/Cargo.lock` in step with the
//! root lock file; `cargo xtask common-passwords LIST` writes emailpass's
//! common-password list from a text list (one password per line);
//! `cargo xtask hot-functions [--check]` writes (or checks) the list of
//! functions the server's link places together.

mod hot;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::OnceLock;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Cargo's target directory for the workspace, found as cargo finds it
/// (`CARGO_TARGET_DIR`, `build.target-dir`, else `target` under the root):
/// `cargo metadata`'s `target_directory`. Asked once.
fn target_dir() -> Result<PathBuf, String> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| metadata_target_dir(&root(), &[]))
        .clone()
}

/// `target_directory` of `cargo metadata` run in `dir` with `envs`.
fn metadata_target_dir(dir: &Path, envs: &[(&str, &str)]) -> Result<PathBuf, String> {
    let out = Command::new("cargo")
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .envs(envs.iter().copied())
        .current_dir(dir)
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`cargo metadata` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parse_target_dir(&out.stdout)
}

/// The `target_directory` of `cargo metadata`'s JSON.
fn parse_target_dir(json: &[u8]) -> Result<PathBuf, String> {
    let metadata: serde_json::Value = serde_json::from_slice(json)
        .map_err(|e| format!("cannot read cargo metadata's output: {e}"))?;
    metadata["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .ok_or_else(|| "cargo metadata's output has no target_directory".to_owned())
}

fn run(cmd: &str, args: &[&str], envs: &[(&str, &str)]) -> Result<(), String> {
    run_in(&root(), cmd, args, envs)
}

fn run_in(dir: &Path, cmd: &str, args: &[&str], envs: &[(&str, &str)]) -> Result<(), String> {
    eprintln!("+ (in {}) {cmd} {}", dir.display(), args.join(" "));
    let mut command = Command::new(cmd);
    // What `cargo run` sets for xtask itself (its package's name, version,
    // manifest): a build script that reads one of them (ring's does) would
    // see another value than in a plain shell, and cargo would build it and
    // everything above it again.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || [
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
            ]
            .contains(&name.as_ref())
        {
            command.env_remove(name.as_ref());
        }
    }
    let status = command
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(dir)
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
    features()?;
    run(
        "cargo",
        &["test", "--workspace", "--all-features", "--locked"],
        &[],
    )?;
    examples()?;
    generated_providers()?;
    openapi()?;
    run(
        "cargo",
        &[
            "package",
            "--workspace",
            "--no-verify",
            "--allow-dirty",
            "--locked",
            "--exclude",
            "xtask",
            "--exclude",
            "auth-tests",
        ],
        &[],
    )?;
    Ok(())
}

/// The versions of the OpenAPI tools CI installs from PyPI.
const OPENAPI_TOOLS: [&str; 2] = ["openapi-spec-validator==0.9.0", "schemathesis==4.32.5"];

/// The management key of the server the OpenAPI check starts.
const OPENAPI_CHECK_KEY: &str = "openapi-check-management-key";

/// The OpenAPI document, checked by tools we did not write: validated with
/// `openapi-spec-validator`, then `schemathesis` runs every operation with a
/// bounded number of examples against a live `auth-server` (SQLite in a
/// fresh directory, the management API on): no server error, and every
/// answer matches the document (status, content type, body schema).
fn openapi() -> Result<(), String> {
    let target = target_dir()?;
    let venv = target.join("openapi-venv");
    let bin = |tool: &str| venv.join("bin").join(tool);
    if !bin("python").exists() {
        run("python3", &["-m", "venv", &venv.display().to_string()], &[])?;
    }
    let pip = bin("pip").display().to_string();
    let mut install = vec!["install", "--quiet", "--disable-pip-version-check"];
    install.extend(OPENAPI_TOOLS);
    run(&pip, &install, &[])?;
    run(
        "cargo",
        &["build", "-p", "auth-server", "--all-features", "--locked"],
        &[],
    )?;
    let server = target.join("debug").join("auth-server");
    let work = target.join("openapi-check");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let doc = Command::new(&server)
        .arg("openapi")
        .output()
        .map_err(|e| format!("cannot run auth-server openapi: {e}"))?;
    if !doc.status.success() {
        return Err(format!("auth-server openapi failed ({})", doc.status));
    }
    let doc_path = work.join("openapi.json");
    std::fs::write(&doc_path, &doc.stdout)
        .map_err(|e| format!("cannot write {}: {e}", doc_path.display()))?;
    run(
        &bin("openapi-spec-validator").display().to_string(),
        &[&doc_path.display().to_string()],
        &[],
    )?;
    // A free port, given to the server.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("cannot find a free port: {e}"))?
        .port();
    let config = work.join("auth.toml");
    std::fs::write(
        &config,
        format!(
            "[http]\njwt_secret = \"openapi-check-secret-0123456789abcdef0123\"\n\
             [store]\nurl = \"sqlite://{}/auth.db\"\n\
             [management]\napi_key = \"{OPENAPI_CHECK_KEY}\"\n\
             [[providers]]\nresolve = \"emailpass\"\nid = \"emailpass\"\n",
            work.display()
        ),
    )
    .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    let listen = format!("127.0.0.1:{port}");
    eprintln!(
        "+ {} serve --config {} --listen {listen} &",
        server.display(),
        config.display()
    );
    let mut child = Command::new(&server)
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", &listen])
        .spawn()
        .map_err(|e| format!("cannot start auth-server: {e}"))?;
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(&listen).is_err() {
        if started.elapsed() > std::time::Duration::from_secs(30) {
            let _ = child.kill();
            return Err("auth-server did not start listening within 30 s".to_owned());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let url = format!("http://{listen}/openapi.json");
    let key = format!("X-Api-Key: {OPENAPI_CHECK_KEY}");
    // Run in the scratch directory: schemathesis keeps a `.schemathesis`
    // cache where it runs.
    let checked = run_in(
        &work,
        &bin("st").display().to_string(),
        &[
            "run",
            &url,
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance",
            "--max-examples",
            "10",
            "--seed",
            "1",
            // One worker: two threads of hypothesis can trip CPython 3.11's
            // `ast` ("AST constructor recursion depth mismatch").
            "--workers",
            "1",
            "--header",
            &key,
        ],
        &[("SCHEMATHESIS_TELEMETRY", "false")],
    );
    let _ = child.kill();
    let _ = child.wait();
    checked
}

/// `(name, version, checksum)` of every `[[package]]` of a lock file.
fn lock_packages(text: &str) -> Vec<(String, String, Option<String>)> {
    let field = |block: &str, key: &str| {
        block.lines().find_map(|l| {
            l.strip_prefix(key)
                .and_then(|rest| rest.trim().strip_prefix('='))
                .map(|v| v.trim().trim_matches('"').to_owned())
        })
    };
    text.split("[[package]]")
        .skip(1)
        .filter_map(|block| {
            Some((
                field(block, "name ")?,
                field(block, "version ")?,
                field(block, "checksum "),
            ))
        })
        .collect()
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Every registry package the examples' lock file pins is pinned the same in
/// the root one, so the shared target directory serves both; a package only
/// the examples use (the storefront's QR codes) is theirs to pin.
fn examples_lock_in_step() -> Result<(), String> {
    let root_lock = lock_packages(&read(&root().join("Cargo.lock"))?);
    let examples_lock = lock_packages(&read(&root().join("examples/Cargo.lock"))?);
    let apart: Vec<String> = examples_lock
        .iter()
        .filter(|p| p.2.is_some() && !root_lock.contains(p))
        .filter(|p| root_lock.iter().any(|r| r.0 == p.0))
        .map(|(name, version, _)| format!("{name} {version}"))
        .collect();
    if apart.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "examples/Cargo.lock is out of step with Cargo.lock ({}); run `cargo xtask sync-examples`",
            apart.join(", ")
        ))
    }
}

/// Brings `examples/Cargo.lock` in step: the root lock file, pruned to what
/// the examples use.
fn sync_examples() -> Result<(), String> {
    std::fs::copy(
        root().join("Cargo.lock"),
        root().join("examples/Cargo.lock"),
    )
    .map_err(|e| format!("cannot copy the lock file: {e}"))?;
    run_in(
        &root().join("examples"),
        "cargo",
        // Re-resolves the examples' own crates only: every other package
        // keeps the root's version, and unused ones are pruned.
        &["update", "--workspace", "--offline", "--quiet"],
        &[],
    )
    .map(|()| eprintln!("examples/Cargo.lock is in step with Cargo.lock"))
}

/// The out-of-tree workspace under `examples/`: a third party's provider, a
/// custom server and a host application, built and tested in the root's
/// target directory.
fn examples() -> Result<(), String> {
    examples_lock_in_step()?;
    let dir = root().join("examples");
    // A dependency added at the root (reaching the examples through our
    // crates) must be in their lock file too.
    run_in(
        &dir,
        "cargo",
        &["metadata", "--format-version", "1", "--locked", "--quiet"],
        &[],
    )
    .map_err(|_| {
        "examples/Cargo.lock misses what the root's crates now need; run `cargo xtask sync-examples`"
            .to_owned()
    })?;
    let target = target_dir()?;
    let target = target.to_string_lossy();
    let env = [("CARGO_TARGET_DIR", target.as_ref())];
    run_in(&dir, "cargo", &["fmt", "--all", "--check"], &env)?;
    run_in(
        &dir,
        "cargo",
        &[
            "clippy",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
        &env,
    )?;
    browser_prerequisites()?;
    run_in(&dir, "cargo", &["test", "--locked"], &env)
}

/// Where the storefront's browser tests find Chromium unless `CHROME` says.
const CHROMIUM: &str = "/usr/bin/chromium";

/// What the storefront's browser tests need: Debian's `chromium` (installed
/// with apt-get when missing and run as root; otherwise the tests say what
/// to install) and `puppeteer-core` from the npm registry, at the version
/// its lock file pins.
fn browser_prerequisites() -> Result<(), String> {
    let chrome = std::env::var("CHROME").unwrap_or_else(|_| CHROMIUM.to_owned());
    let root_user = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !Path::new(&chrome).exists() && root_user && Path::new("/usr/bin/apt-get").exists() {
        let apt = [("DEBIAN_FRONTEND", "noninteractive")];
        run("apt-get", &["update", "-qq"], &apt)?;
        run(
            "apt-get",
            &[
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "chromium",
            ],
            &apt,
        )?;
    }
    let browser = root().join("examples/storefront/browser");
    run_in(
        &browser,
        "npm",
        &["ci", "--no-audit", "--no-fund", "--ignore-scripts"],
        &[],
    )
}

/// auth-server per feature set (a workspace build unifies features and can
/// hide a missing `cfg`): no provider, then each provider feature alone,
/// builds; a binary with only emailpass lists only emailpass and refuses a
/// config naming google with the feature to enable.
fn features() -> Result<(), String> {
    for set in [
        "",
        "provider-emailpass,",
        "provider-google,",
        "provider-github,",
        "provider-oidc,",
        "provider-passkey,",
    ] {
        run(
            "cargo",
            &[
                "check",
                "-p",
                "auth-server",
                "--no-default-features",
                "--features",
                &format!("{set}sqlite"),
                "--locked",
            ],
            &[],
        )?;
    }
    let features = "provider-emailpass,sqlite";
    run(
        "cargo",
        &[
            "build",
            "-p",
            "auth-server",
            "--no-default-features",
            "--features",
            features,
            "--locked",
        ],
        &[],
    )?;
    // A copy: the workspace build that follows replaces debug/auth-server.
    let target = target_dir()?;
    let built = target.join(format!("debug/auth-server{}", std::env::consts::EXE_SUFFIX));
    let bin = target.join(format!(
        "auth-server-emailpass-only{}",
        std::env::consts::EXE_SUFFIX
    ));
    std::fs::copy(&built, &bin)
        .map_err(|e| format!("cannot copy the binary {}: {e}", built.display()))?;
    let output = |args: &[&str]| {
        Command::new(&bin)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))
    };
    let listed = output(&["providers"])?;
    let listed = String::from_utf8_lossy(&listed.stdout);
    if listed != "emailpass\tEmail/Password Authentication\n" {
        return Err(format!(
            "auth-server built with {features} lists {listed:?}, not emailpass alone"
        ));
    }
    let config = target.join("google-only.toml");
    std::fs::write(
        &config,
        "[http]\njwt_secret = \"a check-config secret of 32 bytes or more\"\n\
         [[providers]]\nresolve = \"google\"\nid = \"google\"\n",
    )
    .map_err(|e| e.to_string())?;
    let checked = output(&["check-config", &config.to_string_lossy()])?;
    let stderr = String::from_utf8_lossy(&checked.stderr);
    if checked.status.success() || !stderr.contains("cargo feature `provider-google`") {
        return Err(format!(
            "check-config of a google config in an emailpass-only build: {stderr}"
        ));
    }
    eprintln!("auth-server with {features}: lists emailpass only, names provider-google");
    Ok(())
}

fn bench() -> Result<(), String> {
    // The process bench runs the release binary beside it.
    run("cargo", &["build", "--release", "-p", "auth-server"], &[])?;
    if let Err(e) = hot::check() {
        eprintln!("xtask: the hot-function list was not checked: {e}");
    }
    run(
        "cargo",
        &["bench", "-p", "auth-tests", "--bench", "process"],
        &[],
    )?;
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
    )?;
    run(
        "cargo",
        &["bench", "-p", "auth-tests", "--bench", "medusa"],
        &[],
    )
}

/// A provider crate's template files: `(path, text)`, with `{{name}}`,
/// `{{Type}}`, `{{ident}}` and `{{UPPER}}` to fill in.
const CREDENTIALS: [(&str, &str); 4] = [
    (
        "Cargo.toml",
        include_str!("../templates/credentials/Cargo.toml"),
    ),
    (
        "README.md",
        include_str!("../templates/credentials/README.md"),
    ),
    (
        "src/lib.rs",
        include_str!("../templates/credentials/src/lib.rs"),
    ),
    (
        "tests/conformance.rs",
        include_str!("../templates/credentials/tests/conformance.rs"),
    ),
];

const REDIRECT: [(&str, &str); 4] = [
    (
        "Cargo.toml",
        include_str!("../templates/redirect/Cargo.toml"),
    ),
    ("README.md", include_str!("../templates/redirect/README.md")),
    (
        "src/lib.rs",
        include_str!("../templates/redirect/src/lib.rs"),
    ),
    (
        "tests/conformance.rs",
        include_str!("../templates/redirect/tests/conformance.rs"),
    ),
];

/// Writes `providers/provider-NAME` under `root` from the `flow`'s template
/// and adds it to the workspace's members.
fn new_provider(root: &Path, name: &str, flow: &str) -> Result<(), String> {
    let valid = name.split('-').all(|w| {
        !w.is_empty()
            && w.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    }) && name.starts_with(|c: char| c.is_ascii_lowercase());
    if !valid {
        return Err("NAME: lower-case words of letters and digits joined by '-'".into());
    }
    let files = match flow {
        "credentials" => CREDENTIALS,
        "redirect" => REDIRECT,
        other => return Err(format!("--flow {other}: credentials or redirect")),
    };
    let krate = format!("provider-{name}");
    let member = format!("providers/{krate}");
    let dir = root.join(&member);
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
    let ident = name.replace('-', "_");
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{Type}}", &ty)
            .replace("{{ident}}", &ident)
            .replace("{{UPPER}}", &ident.to_ascii_uppercase())
    };
    for (path, text) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::fs::write(&path, fill(text)).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    add_member(root, &member)?;
    // Formatted for this name's lengths, so `cargo fmt --check` passes at once.
    let sources: Vec<String> = files
        .iter()
        .filter(|(path, _)| path.ends_with(".rs"))
        .map(|(path, _)| dir.join(path).to_string_lossy().into_owned())
        .collect();
    let mut args = vec!["--edition", "2024"];
    args.extend(sources.iter().map(String::as_str));
    if let Err(e) = run_in(root, "rustfmt", &args, &[]) {
        eprintln!("warning: the new crate is not formatted ({e}); run `cargo fmt`");
    }
    eprintln!(
        "wrote {} ({flow} flow) and added it to the workspace members; \
         `cargo test -p {krate}` runs its tests",
        dir.display()
    );
    Ok(())
}

/// Adds `member` to the root manifest's `members` and `default-members`,
/// after their last provider.
fn add_member(root: &Path, member: &str) -> Result<(), String> {
    let path = root.join("Cargo.toml");
    let text = read(&path)?;
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for list in ["members = [", "default-members = ["] {
        let start = lines
            .iter()
            .position(|l| l.trim() == list)
            .ok_or_else(|| format!("no `{list}` in {}", path.display()))?;
        let end = start
            + lines[start..]
                .iter()
                .position(|l| l.trim() == "]")
                .ok_or_else(|| format!("`{list}` is not closed"))?;
        let after = (start..end)
            .rev()
            .find(|&i| lines[i].contains("\"providers/"))
            .unwrap_or(end - 1);
        lines.insert(after + 1, format!("    \"{member}\","));
    }
    std::fs::write(&path, lines.join("\n") + "\n").map_err(|e| e.to_string())
}

/// Copies the workspace's sources (no `target`, `.git` or `examples`, nor
/// `skip`: the target directory wherever it is) to `to`.
fn copy_sources(from: &Path, to: &Path, skip: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| e.to_string())?;
    for entry in std::fs::read_dir(from).map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        let name = entry.file_name();
        let src = entry.path();
        if [".git", "target", "examples"].iter().any(|n| name == *n) || src == skip {
            continue;
        }
        let dst = to.join(&name);
        if entry.file_type().map_err(|e| e.to_string())?.is_dir() {
            copy_sources(&src, &dst, skip)?;
        } else {
            std::fs::copy(&src, &dst).map_err(|e| format!("{}: {e}", src.display()))?;
        }
    }
    Ok(())
}

/// Generates one provider of each flow in a scratch copy of the workspace,
/// checks that each builds, passes its tests and clippy at once, and throws
/// the copy away.
fn generated_providers() -> Result<(), String> {
    let target = target_dir()?;
    let scratch = target.join("scratch-workspace");
    let _ = std::fs::remove_dir_all(&scratch);
    copy_sources(&root(), &scratch, &target)?;
    new_provider(&scratch, "sample-login", "credentials")?;
    new_provider(&scratch, "sample-sso", "redirect")?;
    // The root's target directory: registry crates are built once for both.
    let target = target.to_string_lossy();
    let env = [("CARGO_TARGET_DIR", target.as_ref())];
    let crates = ["-p", "provider-sample-login", "-p", "provider-sample-sso"];
    let cargo = |args: &[&str]| {
        let args: Vec<&str> = args.iter().chain(&crates).copied().collect();
        run_in(&scratch, "cargo", &args, &env)
    };
    let result = cargo(&["fmt", "--check"])
        .and_then(|()| cargo(&["test"]))
        .and_then(|()| {
            run_in(
                &scratch,
                "cargo",
                &[
                    &["clippy", "--all-targets"][..],
                    &crates,
                    &["--", "-D", "warnings"],
                ]
                .concat(),
                &env,
            )
        });
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// 32-bit FNV-1a, as `provider-emailpass` hashes a password it looks up.
fn fnv1a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The list file's bytes for the passwords in `text` (one per line): the
/// sorted, distinct FNV-1a hashes of the lower-cased, non-empty lines,
/// little-endian.
fn common_password_hashes(text: &str) -> (usize, Vec<u8>) {
    let mut hashes: Vec<u32> = text
        .lines()
        .map(|l| l.trim_end_matches('\r').to_lowercase())
        .filter(|l| !l.is_empty())
        .map(|l| fnv1a(l.as_bytes()))
        .collect();
    let passwords = hashes.len();
    hashes.sort_unstable();
    hashes.dedup();
    (
        passwords,
        hashes.iter().flat_map(|h| h.to_le_bytes()).collect(),
    )
}

/// Writes `providers/provider-emailpass/data/common-passwords.bin` from the
/// text list at `list` (the README names the source and how to fetch it).
fn common_passwords(list: &Path) -> Result<(), String> {
    let text = std::fs::read(list).map_err(|e| format!("cannot read {}: {e}", list.display()))?;
    let text = String::from_utf8_lossy(&text);
    let (passwords, bytes) = common_password_hashes(&text);
    let out = root().join("providers/provider-emailpass/data/common-passwords.bin");
    std::fs::write(&out, &bytes).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    println!(
        "{}: {} distinct hashes of {passwords} passwords, {} bytes",
        out.display(),
        bytes.len() / 4,
        bytes.len()
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
        ["new-provider", name] => new_provider(&root(), name, "credentials"),
        ["new-provider", name, "--flow", flow] => new_provider(&root(), name, flow),
        ["sync-examples"] => sync_examples(),
        ["check-generated-providers"] => generated_providers(),
        ["check-openapi"] => openapi(),
        ["common-passwords", list] => common_passwords(Path::new(list)),
        ["hot-functions"] => hot::write(),
        ["hot-functions", "--check"] => hot::check(),
        _ => Err(
            "usage: cargo xtask ci | bench | sync-examples | check-openapi | new-provider NAME [--flow credentials|redirect] | common-passwords LIST | hot-functions [--check]"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_password_hashes_are_sorted_distinct_and_lower_cased() {
        let (n, bytes) = common_password_hashes("Password\npassword\n\n123456\r\nqwerty\n");
        assert_eq!(n, 4);
        let hashes: Vec<u32> = bytes
            .chunks(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let mut want = vec![fnv1a(b"password"), fnv1a(b"123456"), fnv1a(b"qwerty")];
        want.sort_unstable();
        assert_eq!(hashes, want);
        // FNV-1a's published test vector.
        assert_eq!(fnv1a(b"a"), 0xe40c_292c);
    }

    #[test]
    fn the_target_directory_is_read_from_cargo_metadata() {
        let json = br#"{"packages":[],"target_directory":"/tmp/t2","version":1}"#;
        assert_eq!(parse_target_dir(json).unwrap(), Path::new("/tmp/t2"));
        assert!(parse_target_dir(br#"{"version":1}"#).is_err());
        assert!(parse_target_dir(b"not json").is_err());
    }

    /// Whatever `CARGO_TARGET_DIR` says, as cargo reads it (nothing is built
    /// there: `cargo metadata --no-deps` only reports it).
    #[test]
    fn cargo_target_dir_is_followed() {
        let other = std::env::temp_dir().join("xtask-target-dir-test");
        let found = metadata_target_dir(&root(), &[("CARGO_TARGET_DIR", &other.to_string_lossy())])
            .unwrap();
        assert_eq!(found, other);
        assert!(
            !other.exists(),
            "cargo metadata created {}",
            other.display()
        );
    }
}
