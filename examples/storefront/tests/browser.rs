//! The storefront's pages in a real browser: headless Chromium (Debian's
//! `chromium`) driven by `puppeteer-core` (`browser/`, `npm ci` there),
//! against the `storefront` binary with e-mail and password, Google (through
//! the in-process fake identity provider), passkeys, MFA and the
//! verification of e-mail addresses configured, and the operator console
//! (`[management] console = true`) on the same server.
//!
//! [`run_scripts`] starts one server and runs each script of `browser/` in
//! turn against it, so a later script sees what an earlier one made (the
//! storefront scenario's account). Without Chromium or `node_modules` the
//! test is skipped, with the reason on stderr; with `CI` set it fails
//! instead, saying what to install.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use auth_testkit::idp::{FakeIdp, FakeUser};
use common::{EMAILPASS, Running};

mod common;

const PUBLISHABLE_KEY: &str = "pk_test_storefront_browser";
const ADMIN_KEY: &str = "sk_admin_storefront_browser_test";
const TEST_EMAIL: &str = "ada@example.com";
const GOOGLE_EMAIL: &str = "grace.google@example.com";
const GOOGLE_CLIENT: &str = "storefront-web";
const GOOGLE_SECRET: &str = "storefront-web-secret";
/// The longest one script may take.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

/// The storefront and the fake identity provider it signs in with.
struct Server {
    running: Running,
    _idp: FakeIdp,
}

impl Server {
    fn base_url(&self) -> String {
        // `localhost`, not 127.0.0.1: the passkey origin, and a secure context.
        format!("http://localhost:{}", self.running.port)
    }

    fn events_file(&self) -> PathBuf {
        self.running.path("events.jsonl")
    }
}

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

fn chrome() -> PathBuf {
    std::env::var_os("CHROME")
        .filter(|c| !c.is_empty())
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// `$CARGO_TARGET_DIR`, else the target directory the test binary was built
/// in (`target/debug/storefront` → `target`).
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_BIN_EXE_storefront"))
        .ancestors()
        .nth(2)
        .expect("the binary lives in target/<profile>/")
        .to_path_buf()
}

/// Why the browser test cannot run here, if it cannot.
fn missing() -> Option<String> {
    let chrome = chrome();
    if !chrome.is_file() {
        return Some(format!(
            "no Chromium at {} (apt-get install -y --no-install-recommends chromium, or set CHROME)",
            chrome.display()
        ));
    }
    let puppeteer = browser_dir().join("node_modules/puppeteer-core");
    if !puppeteer.is_dir() {
        return Some(format!(
            "no {} (run `npm ci` in {})",
            puppeteer.display(),
            browser_dir().display()
        ));
    }
    if Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_or(true, |s| !s.success())
    {
        return Some("no `node` on the PATH (Node.js 20 or later)".to_owned());
    }
    None
}

async fn start() -> Server {
    let idp = FakeIdp::start().await;
    idp.add_client(GOOGLE_CLIENT, Some(GOOGLE_SECRET));
    idp.set_user(FakeUser::new("google-1001", GOOGLE_EMAIL));
    let running = common::start(PUBLISHABLE_KEY, |port, dir| {
        let origin = format!("http://localhost:{port}");
        format!(
            "[http.auth_verifications_per_actor]\n\
             customer = [{{ entity_type = \"email\", auth_provider = \"emailpass\" }}]\n\
             [mfa]\nencryption_key = \"the storefront browser test's MFA key, 32+ chars\"\n\
             [events]\nfile = \"{events}\"\n\
             [management]\napi_key = \"{ADMIN_KEY}\"\nconsole = true\n\
             {EMAILPASS}\
             [[providers]]\nresolve = \"google\"\nid = \"google\"\n[providers.options]\n\
             clientId = \"{GOOGLE_CLIENT}\"\nclientSecret = \"{GOOGLE_SECRET}\"\n\
             callbackUrl = \"{origin}/callback/google\"\n\
             issuer = \"{issuer}\"\nauthorizationUrl = \"{authorize}\"\n\
             tokenUrl = \"{token}\"\njwksUrl = \"{jwks}\"\n\
             [[providers]]\nresolve = \"passkey\"\nid = \"passkey\"\n[providers.options]\n\
             rpId = \"localhost\"\norigins = [\"{origin}\"]\n",
            events = dir.join("events.jsonl").display(),
            issuer = idp.issuer(),
            authorize = idp.authorization_url(),
            token = idp.token_url(),
            jwks = idp.jwks_url(),
        )
    })
    .await;
    Server { running, _idp: idp }
}

/// Runs `node SCRIPT` in `browser/` with the server's environment; the
/// script's output, and its exit status (killed past [`SCRIPT_TIMEOUT`]).
fn run_node(script: &str, env: &[(&str, String)], out_dir: &Path) -> (bool, String) {
    let out_path = out_dir.join(format!("{script}.out"));
    let out = File::create(&out_path).unwrap();
    let err = out.try_clone().unwrap();
    let mut child = Command::new("node")
        .arg(script)
        .current_dir(browser_dir())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("run node");
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut output = std::fs::read_to_string(&out_path).unwrap_or_default();
    if status.is_none() {
        output.push_str(&format!(
            "\n(killed after {} s)\n",
            SCRIPT_TIMEOUT.as_secs()
        ));
    }
    (status.is_some_and(|s| s.success()), output)
}

/// Starts one storefront and runs each of `scripts` (files of `browser/`)
/// against it, in order; panics with a script's output when it fails.
async fn run_scripts(scripts: &[&str]) {
    if let Some(why) = missing() {
        if std::env::var_os("CI").is_some() {
            panic!("the browser test cannot run: {why}");
        }
        // Straight to stderr: libtest captures eprintln!, and a skip should show.
        let _ = writeln!(std::io::stderr(), "skipping the browser test: {why}");
        return;
    }
    let server = start().await;
    let shots = target_dir().join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let env = [
        ("BASE_URL", server.base_url()),
        ("TEST_EMAIL", TEST_EMAIL.to_owned()),
        ("GOOGLE_EMAIL", GOOGLE_EMAIL.to_owned()),
        ("ADMIN_KEY", ADMIN_KEY.to_owned()),
        ("PUBLISHABLE_KEY", PUBLISHABLE_KEY.to_owned()),
        ("EVENTS_FILE", server.events_file().display().to_string()),
        ("SHOTS_DIR", shots.display().to_string()),
        ("CHROME", chrome().display().to_string()),
    ];
    for script in scripts {
        let out_dir = server.running.dir.path().to_owned();
        let script_name = (*script).to_owned();
        let env = env.clone();
        // Off the runtime's threads: the fake identity provider runs on them.
        let (ok, output) =
            tokio::task::spawn_blocking(move || run_node(&script_name, &env, &out_dir))
                .await
                .unwrap();
        println!("--- {script} ---\n{output}");
        assert!(
            ok,
            "{script} failed:\n{output}\n--- the server's log (last lines) ---\n{}",
            server.running.log()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_storefront_pages_and_the_console_in_chromium() {
    // The console finds the customer the storefront scenario made, and ends
    // the device it left signed in.
    run_scripts(&["storefront.mjs", "console.mjs"]).await;
}
