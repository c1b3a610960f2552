//! The `storefront` binary as the tests run it: `serve --config FILE
//! --listen 127.0.0.1:PORT` over SQLite in a temporary directory, stopped
//! when dropped. Each test file uses what it needs.
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running storefront and the temporary directory of its databases and
/// log.
pub struct Running {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A file of its directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The last lines of its log (stderr).
    pub fn log(&self) -> String {
        let log = std::fs::read_to_string(self.path("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the storefront with publishable key `key` and the config
/// `[http] jwt_secret`, `[store]` and `[state]` (SQLite in its directory)
/// followed by what `rest(port, dir)` writes; answers once `/health` does.
pub async fn start(key: &str, rest: impl FnOnce(u16, &Path) -> String) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let d = dir.path().display();
    let config = dir.path().join("auth.toml");
    std::fs::write(
        &config,
        format!(
            "[http]\njwt_secret = \"a storefront secret of thirty-two bytes+\"\n\
             [store]\nurl = \"sqlite://{d}/auth.db\"\n\
             [state]\nurl = \"sqlite://{d}/auth.db\"\n{}",
            rest(port, dir.path())
        ),
    )
    .unwrap();
    let log = File::create(dir.path().join("server.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_storefront"))
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("STOREFRONT_PUBLISHABLE_KEY", key)
        .env(
            "STOREFRONT_DATABASE_URL",
            format!("sqlite://{d}/storefront.db"),
        )
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the storefront");
    let running = Running { child, port, dir };
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("{}/health", running.url()))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the storefront did not start:\n{}",
            running.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running
}

/// One emailpass instance under id `emailpass`.
pub const EMAILPASS: &str = "[[providers]]\nresolve = \"emailpass\"\nid = \"emailpass\"\n";
