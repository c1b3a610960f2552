//! PostgreSQL lost at run time: the test's own throw-away cluster (initdb in a
//! temporary directory owned by `postgres`, run with `runuser`, because
//! PostgreSQL refuses root), on a free port, stopped under a stream of
//! registrations and started again. Nothing answered 200 may be lost.
//! Without root, `runuser` or PostgreSQL's binaries the test is skipped with a
//! reason, except under `CI`, where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{EMAILPASS, SECRET, TestServer, free_port};

/// The newest installed PostgreSQL's `bin` directory.
fn pg_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| d.join("initdb").exists())
        .collect();
    dirs.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop()
}

fn id_of(flag: &str) -> Option<u32> {
    let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

/// A cluster of the test's own; stopped (immediately) when dropped.
struct OwnPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl OwnPostgres {
    /// `None` (after saying why) when this machine cannot run one, outside CI.
    fn create() -> Option<OwnPostgres> {
        let missing = |why: &str| {
            assert!(
                std::env::var_os("CI").is_none(),
                "the PostgreSQL fault test must run under CI: {why}"
            );
            eprintln!("skipping the PostgreSQL fault test: {why}");
            None
        };
        let Some(bin) = pg_bin() else {
            return missing("no /usr/lib/postgresql/*/bin/initdb");
        };
        let (Some(uid), Some(gid)) = (id_of("-u"), id_of("-g")) else {
            return missing("no postgres user");
        };
        if Command::new("runuser").arg("--help").output().is_err() {
            return missing("no runuser");
        }
        let dir = tempfile::Builder::new()
            .prefix("auth-pg-fault-")
            .tempdir_in("/tmp")
            .expect("tempdir");
        if std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).is_err() {
            return missing("cannot hand a directory to postgres (not root)");
        }
        let pg = OwnPostgres {
            dir,
            bin,
            port: free_port(),
        };
        pg.run(
            "initdb",
            &[
                "-D",
                &pg.data(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        pg.start();
        Some(pg)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(tool))
            .args(args)
            .output()
            .expect("runuser runs");
        assert!(
            out.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// Stops the cluster as a crash would (`-m immediate`).
    fn kill(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_postgres_gives_quick_503s_recovers_and_loses_no_registration() {
    let Some(pg) = OwnPostgres::create() else {
        return;
    };
    assert!(pg.path().exists());
    let toml = format!(
        "[http]\njwt_secret = \"{SECRET}\"\n\n[store]\nurl = \"{url}\"\n\n[state]\nurl = \"{url}\"\n\n{EMAILPASS}",
        url = pg.url()
    );
    let server = Arc::new(TestServer::start_toml(&toml).await);
    let stop = Arc::new(AtomicBool::new(false));
    // A stream of registrations: (email, status, body, seconds taken).
    let stream = {
        let (server, stop) = (server.clone(), stop.clone());
        tokio::spawn(async move {
            let mut answers = Vec::new();
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let email = format!("stream{i}@example.com");
                let t = Instant::now();
                let r = server
                    .post_json(
                        "/auth/customer/emailpass/register",
                        json!({"email": email, "password": "stream password"}),
                    )
                    .await;
                answers.push((email, r.status, r.body, t.elapsed()));
                i += 1;
            }
            answers
        })
    };
    let ready = |s: Arc<TestServer>| async move {
        let r = s.client.get(s.url("/ready")).send().await.unwrap();
        r.status().as_u16()
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(ready(server.clone()).await, 200);

    pg.kill();
    let down = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(ready(server.clone()).await, 503);
    let t = Instant::now();
    let r = server.login("stream0@example.com", "stream password").await;
    assert_eq!(
        (r.status, r.body.clone()),
        (
            503,
            json!({"type": "unexpected_state", "message": "Service unavailable"})
        )
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "a 503 took {:?}",
        t.elapsed()
    );

    pg.start();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ready(server.clone()).await != 200 {
        assert!(Instant::now() < deadline, "the server did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered = down.elapsed();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let answers = stream.await.expect("the stream ran");

    let ok: Vec<&String> = answers
        .iter()
        .filter(|a| a.1 == 200)
        .map(|a| &a.0)
        .collect();
    let refused = answers.iter().filter(|a| a.1 == 503).count();
    for (email, status, body, took) in &answers {
        match status {
            200 => {}
            503 => {
                assert_eq!(
                    *body,
                    json!({"type": "unexpected_state", "message": "Service unavailable"}),
                    "{email}"
                );
                assert!(
                    *took < Duration::from_secs(5),
                    "{email}: a 503 took {took:?}"
                );
            }
            other => panic!("{email}: {other} {body}"),
        }
    }
    assert!(refused > 0, "no registration met the outage");
    let after = answers.iter().rev().take_while(|a| a.1 == 200).count();
    assert!(after > 0, "no registration succeeded after the recovery");
    eprintln!(
        "{} registrations: {} stored, {refused} refused with 503; recovered {recovered:?} after the stop",
        answers.len(),
        ok.len()
    );

    // Every registration answered 200 is stored.
    let pool = sqlx::PgPool::connect(&pg.url())
        .await
        .expect("the cluster is back");
    let stored: Vec<String> = sqlx::query_scalar("SELECT entity_id FROM provider_identity")
        .fetch_all(&pool)
        .await
        .expect("read back");
    for email in ok {
        assert!(
            stored.contains(email),
            "{email} was answered 200 but is not stored"
        );
    }
    pool.close().await;
    match Arc::try_unwrap(server) {
        Ok(s) => s.stop().await,
        Err(_) => panic!("the server is still shared"),
    }
}
