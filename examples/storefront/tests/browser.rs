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
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use auth_testkit::idp::{FakeIdp, FakeUser};

const PUBLISHABLE_KEY: &str = "pk_test_storefront_browser";
const ADMIN_KEY: &str = "sk_admin_storefront_browser_test";
const TEST_EMAIL: &str = "ada@example.com";
const GOOGLE_EMAIL: &str = "grace.google@example.com";
const GOOGLE_CLIENT: &str = "storefront-web";
const GOOGLE_SECRET: &str = "storefront-web-secret";
/// The longest one script may take.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

/// The storefront binary, the fake identity provider it signs in with, and
/// the temporary directory of its databases, events and logs.
struct Running {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    _idp: FakeIdp,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    fn base_url(&self) -> String {
        // `localhost`, not 127.0.0.1: the passkey origin, and a secure context.
        format!("http://localhost:{}", self.port)
    }

    fn events_file(&self) -> PathBuf {
        self.dir.path().join("events.jsonl")
    }

    fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        tail(&log, 60)
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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

async fn start() -> Running {
    let idp = FakeIdp::start().await;
    idp.add_client(GOOGLE_CLIENT, Some(GOOGLE_SECRET));
    idp.set_user(FakeUser::new("google-1001", GOOGLE_EMAIL));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let port = free_port();
    let origin = format!("http://localhost:{port}");
    let config = dir.path().join("auth.toml");
    std::fs::write(
        &config,
        format!(
            "[http]\njwt_secret = \"the storefront browser test's secret, 32+ bytes\"\n\
             [http.auth_verifications_per_actor]\n\
             customer = [{{ entity_type = \"email\", auth_provider = \"emailpass\" }}]\n\
             [store]\nurl = \"sqlite://{d}/auth.db\"\n\
             [state]\nurl = \"sqlite://{d}/auth.db\"\n\
             [mfa]\nencryption_key = \"the storefront browser test's MFA key, 32+ chars\"\n\
             [events]\nfile = \"{d}/events.jsonl\"\n\
             [management]\napi_key = \"{ADMIN_KEY}\"\nconsole = true\n\
             [[providers]]\nresolve = \"emailpass\"\nid = \"emailpass\"\n\
             [[providers]]\nresolve = \"google\"\nid = \"google\"\n[providers.options]\n\
             clientId = \"{GOOGLE_CLIENT}\"\nclientSecret = \"{GOOGLE_SECRET}\"\n\
             callbackUrl = \"{origin}/callback/google\"\n\
             issuer = \"{issuer}\"\nauthorizationUrl = \"{authorize}\"\n\
             tokenUrl = \"{token}\"\njwksUrl = \"{jwks}\"\n\
             [[providers]]\nresolve = \"passkey\"\nid = \"passkey\"\n[providers.options]\n\
             rpId = \"localhost\"\norigins = [\"{origin}\"]\n",
            issuer = idp.issuer(),
            authorize = idp.authorization_url(),
            token = idp.token_url(),
            jwks = idp.jwks_url(),
        ),
    )
    .unwrap();
    let log = File::create(dir.path().join("server.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_storefront"))
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("STOREFRONT_PUBLISHABLE_KEY", PUBLISHABLE_KEY)
        .env(
            "STOREFRONT_DATABASE_URL",
            format!("sqlite://{d}/storefront.db"),
        )
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the storefront");
    let running = Running {
        child,
        port,
        dir,
        _idp: idp,
    };
    let health = format!("http://127.0.0.1:{port}/health");
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(&health).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the storefront did not start:\n{}",
            running.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running
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
        let out_dir = server.dir.path().to_owned();
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
            server.log()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_storefront_pages_and_the_console_in_chromium() {
    // The console finds the customer the storefront scenario made, and ends
    // the device it left signed in.
    run_scripts(&["storefront.mjs", "console.mjs"]).await;
}
