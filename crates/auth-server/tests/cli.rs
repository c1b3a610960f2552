//! The real `auth-server` binary: default mode, restart, config checks, signals.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_auth-server");

struct Running {
    child: Child,
    addr: String,
    log: mpsc::Receiver<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `auth-server serve` in `dir` and waits for its listening line.
fn start(dir: &Path, args: &[&str]) -> (Running, Vec<String>) {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn auth-server");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Owned by `Running` at once, so any panic below still kills and reaps it.
    let mut running = Running {
        child,
        addr: String::new(),
        log: rx,
    };
    let mut seen = Vec::new();
    loop {
        let line = running
            .log
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no listening line; log so far: {seen:#?}"));
        let plain = strip_ansi(&line);
        seen.push(plain.clone());
        if let Some(i) = plain.find("addr=") {
            running.addr = plain[i + 5..].split_whitespace().next().unwrap().to_owned();
            return (running, seen);
        }
        // JSON log lines (`[server] log_format = "json"`).
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&plain)
            && let Some(addr) = v["fields"]["addr"].as_str()
        {
            running.addr = addr.to_owned();
            return (running, seen);
        }
    }
}

/// Runs `auth-server ARGS… CONFIG` to its end; it must exit with status 1.
/// Its stderr.
fn exits_1(args: &[&str], config: &Path) -> String {
    let out = Command::new(BIN).args(args).arg(config).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    String::from_utf8(out.stderr).unwrap()
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

async fn post(
    url: &str,
    body: serde_json::Value,
    bearer: Option<&str>,
) -> (u16, serde_json::Value) {
    let client = reqwest::Client::new();
    let mut req = client.post(url).json(&body);
    if let Some(t) = bearer {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// Registers `creds` with emailpass at `base`; the new token.
async fn register(base: &str, creds: serde_json::Value) -> String {
    let (status, body) = post(
        &format!("{base}/auth/customer/emailpass/register"),
        creds,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

async fn refresh(base: &str, token: &str) -> (u16, serde_json::Value) {
    post(
        &format!("{base}/auth/token/refresh"),
        serde_json::json!({}),
        Some(token),
    )
    .await
}

/// Opens a session at `base` with `token`: the status, and the session
/// cookie (`name=value`) when one was set.
async fn open_session(base: &str, token: &str) -> (u16, Option<String>) {
    let r = reqwest::Client::new()
        .post(format!("{base}/auth/session"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .expect("request");
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    (r.status().as_u16(), cookie)
}

async fn with_cookie(url: &str, cookie: &str) -> u16 {
    reqwest::Client::new()
        .post(url)
        .header("cookie", cookie)
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn default_mode_keeps_data_and_secret_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (server, log) = start(dir.path(), &["--listen", "127.0.0.1:0"]);
    assert!(
        log.iter()
            .any(|l| l.contains("generated a random JWT secret")),
        "{log:#?}"
    );
    assert!(dir.path().join("auth.db").exists());
    let secret = std::fs::read_to_string(dir.path().join("auth.jwt-secret")).unwrap();
    assert_eq!(secret.len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("auth.jwt-secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the secret file is private");
    }

    let base = format!("http://{}", server.addr);
    let creds = serde_json::json!({"email": "cli@example.com", "password": "pw-cli-long-enough"});
    let token = register(&base, creds.clone()).await;
    let cookie = open_session(&base, &token).await.1.unwrap();
    drop(server);

    let (server, log) = start(dir.path(), &["--listen", "127.0.0.1:0"]);
    assert!(
        !log.iter()
            .any(|l| l.contains("generated a random JWT secret")),
        "{log:#?}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("auth.jwt-secret")).unwrap(),
        secret
    );
    let base = format!("http://{}", server.addr);
    let (status, _) = post(&format!("{base}/auth/customer/emailpass"), creds, None).await;
    assert_eq!(status, 200);
    let (status, _) = refresh(&base, &token).await;
    assert_eq!(
        status, 200,
        "a token from before the restart is still valid"
    );
    assert_eq!(
        with_cookie(&format!("{base}/auth/token/refresh"), &cookie).await,
        200,
        "the default server keeps sessions in its database"
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_shuts_down_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, _) = start(dir.path(), &["--listen", "127.0.0.1:0"]);
    let health = reqwest::get(format!("http://{}/health", server.addr))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut waited = 0;
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(waited < 100, "still running 10 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
        waited += 1;
    };
    assert!(status.success(), "{status}");
    let rest: Vec<String> = server.log.try_iter().map(|l| strip_ansi(&l)).collect();
    assert!(
        rest.iter().any(|l| l.contains("shutting down")),
        "{rest:#?}"
    );
}

#[test]
fn providers_lists_linked_kinds() {
    let out = Command::new(BIN).arg("providers").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    // The default features link all four kinds.
    for line in [
        "emailpass\tEmail/Password Authentication",
        "google\tGoogle Authentication",
        "github\tGithub Authentication",
        "oidc\tOpenID Connect",
    ] {
        assert!(text.lines().any(|l| l == line), "{line}: {text}");
    }
}

#[test]
fn check_config_accepts_good_and_explains_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[http]\njwt_secret = \"${CHECK_SECRET}\"\n[store]\nurl = \"memory://\"\n[[providers]]\nresolve = \"emailpass\"\nid = \"pw\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config"])
        .arg(&good)
        .env("CHECK_SECRET", "0123456789abcdef0123456789abcdef")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("ok; providers: pw (emailpass)"), "{text}");

    // Missing env var, unknown provider, short or no secret, malformed: exit 1,
    // one clear line, no panic.
    let cases = [
        (
            "[http]\njwt_secret = \"${CHECK_SECRET_UNSET}\"\n[[providers]]\nresolve='emailpass'\nid='a'\n",
            "environment variable CHECK_SECRET_UNSET is not set",
        ),
        (
            "[http]\njwt_secret = '0123456789abcdef0123456789abcdef'\n[[providers]]\nresolve='okta'\nid='o'\n",
            "unknown provider \"okta\"; linked providers: emailpass, github, google, oidc",
        ),
        (
            "[http]\njwt_secret = '0123456789abcdef0123456789abcdef'\n[[providers]]\nresolve='github'\nid='gh'\n",
            "providers[0] \"gh\": options.clientId: is required",
        ),
        (
            "[http]\njwt_secret = '0123456789abcdef0123456789abcdef'\n[[providers]]\nresolve='google'\nid='g'\n[providers.options]\nclientId='c'\nclientSecret='s'\ncallbackUrl='https://shop.example/cb'\ntokenUrl='http://idp.example/token'\n",
            "providers[0] \"g\": options.tokenUrl: must be an https URL",
        ),
        (
            "[http]\njwt_secret = 'x'\n[[providers]]\nresolve='emailpass'\nid='a'\n",
            "http.jwt_secret: must be at least 32 bytes",
        ),
        (
            "[[providers]]\nresolve='emailpass'\nid='a'\n",
            "http.jwt_secret is required",
        ),
        ("[http\n", "malformed TOML at line 1"),
    ];
    for (text, expected) in cases {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let err = exits_1(&["check-config"], &path);
        assert!(err.contains(expected), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// `now + offset_secs` as RFC 3339 UTC (`2025-07-01T00:00:00Z`).
fn rfc3339_from_now(offset_secs: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let t = now + offset_secs;
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Short previous secrets kept with `weak_previous_secrets_until`:
/// `check-config` accepts the file, and `serve` warns at start naming the
/// time and how many there are (or that the time is past).
#[test]
fn weak_previous_secrets_are_warned_about_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("auth.toml");
    for (offset, expected) in [
        (
            2 * 86_400,
            "2 previous secret(s) shorter than 32 bytes verify tokens until",
        ),
        (
            -60,
            "is past: the 2 previous secret(s) shorter than 32 bytes verify nothing",
        ),
    ] {
        let until = rfc3339_from_now(offset);
        std::fs::write(
            &config,
            format!(
                "[http]\njwt_secret = '0123456789abcdef0123456789abcdef'\n\
                 jwt_previous_secrets = ['supersecret', 'another', 'an old secret of thirty-two bytes!!']\n\
                 weak_previous_secrets_until = '{until}'\n\
                 [store]\nurl = 'sqlite://{}/auth.db'\n\
                 [server]\nlisten = '127.0.0.1:0'\n\
                 [[providers]]\nresolve = 'emailpass'\nid = 'emailpass'\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let out = Command::new(BIN)
            .arg("check-config")
            .arg(&config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (running, seen) = start(dir.path(), &["--config", config.to_str().unwrap()]);
        assert!(
            seen.iter()
                .any(|l| l.contains("WARN") && l.contains(&until) && l.contains(expected)),
            "no warning naming {until}: {seen:#?}"
        );
        drop(running);
    }
}

#[test]
fn serve_with_a_bad_config_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.toml");
    std::fs::write(&path, "[http]\njwt_secret='0123456789abcdef0123456789abcdef'\n[store]\nurl='mysql://x'\n[[providers]]\nresolve='emailpass'\nid='a'\n").unwrap();
    let err = exits_1(&["serve", "--config"], &path);
    assert!(err.contains("store.url: unsupported scheme"), "{err}");
}

/// A second process on the same SQLite file refuses to start, saying why
/// and what to use instead, while the first keeps serving.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_process_on_one_sqlite_file_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = start(dir.path(), &["--listen", "127.0.0.1:0"]);
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("is in use by another auth-server process") && err.contains("PostgreSQL"),
        "{err}"
    );
    let (status, _) = post(
        &format!("http://{}/auth/customer/emailpass/register", server.addr),
        serde_json::json!({"email": "first@example.com", "password": "pw-long-enough"}),
        None,
    )
    .await;
    assert_eq!(status, 200, "the first process still serves");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for name in ["auth.db", "auth.db-wal", "auth.db-shm"] {
            let mode = std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name} is {mode:o}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_and_metrics_on_their_own_listener() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("auth.toml");
    std::fs::write(
        &config,
        format!(
            "[http]\njwt_secret = '0123456789abcdef0123456789abcdef'\n\
             [store]\nurl = 'sqlite://{}/auth.db'\n\
             [server]\nlisten = '127.0.0.1:0'\nlog_format = 'json'\nmetrics_listen = '127.0.0.1:0'\n\
             [[providers]]\nresolve = 'emailpass'\nid = 'emailpass'\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let (running, seen) = start(dir.path(), &["--config", config.to_str().unwrap()]);
    // Every line is one JSON object; the listening line names both listeners.
    let lines: Vec<serde_json::Value> = seen
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let listening = lines.last().unwrap();
    assert_eq!(listening["level"], "INFO");
    assert_eq!(listening["fields"]["message"], "auth-server listening");
    let metrics_addr = listening["fields"]["metrics"].as_str().unwrap().to_owned();
    assert_ne!(metrics_addr, running.addr);

    let base = format!("http://{}", running.addr);
    let creds = serde_json::json!({"email": "m@example.com", "password": "metrics pw"});
    let token = register(&base, creds).await;
    for _ in 0..3 {
        let (status, _) = refresh(&base, &token).await;
        assert_eq!(status, 200);
    }
    let (status, _) = post(
        &format!("{base}/auth/customer/emailpass"),
        serde_json::json!({"email": "m@example.com", "password": "wrong"}),
        None,
    )
    .await;
    assert_eq!(status, 401);
    // Made-up methods count under `other`, not as a series each.
    let client = reqwest::Client::new();
    for method in ["FOO1", "FOO2"] {
        client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{base}/auth/customer/emailpass"),
            )
            .send()
            .await
            .unwrap();
    }
    // Not on the auth listener.
    let r = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let text = reqwest::get(format!("http://{metrics_addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for expected in [
        "auth_http_requests_total{method=\"POST\",route=\"/auth/{actor}/{provider}/register\",status=\"200\"} 1",
        "auth_http_requests_total{method=\"POST\",route=\"/auth/token/refresh\",status=\"200\"} 3",
        "auth_http_requests_total{method=\"POST\",route=\"/auth/{actor}/{provider}\",status=\"401\"} 1",
        "auth_http_request_duration_seconds_count{route=\"/auth/token/refresh\"} 3",
        "auth_hash_queue_depth 0",
        "auth_hash_refused_total 0",
        "auth_store_errors_total{store=\"sql\"} 0",
        "auth_http_requests_total{method=\"other\",route=\"/auth/{actor}/{provider}\",status=\"405\"} 2",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
    assert!(!text.contains("FOO"), "{text}");
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from:\n{text}"))
    };
    // Register and login hashed (the wrong password too); refresh hit the cache.
    assert!(value("auth_hash_runs_total") >= 2.0);
    assert!(value("auth_identity_cache_hits_total") >= 2.0);
    assert!(value("auth_identity_cache_misses_total") >= 1.0);
    drop(running);
}

#[test]
fn unreachable_stores_at_start_are_named_without_their_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.toml");
    let base = "[http]\njwt_secret='0123456789abcdef0123456789abcdef'\n[[providers]]\nresolve='emailpass'\nid='a'\n";
    let sqlite_and_redis = format!(
        "[store]\nurl='sqlite://{}/a.db'\n[state]\nurl='redis://:s3cret@127.0.0.1:1/0'\n",
        dir.path().display()
    );
    for (section, shown) in [
        (
            "[store]\nurl='postgres://app:s3cret@127.0.0.1:1/auth'\n",
            "store.url: cannot open the PostgreSQL store at postgres://app:***@127.0.0.1:1/auth",
        ),
        (
            "[store]\nurl='postgres://app@127.0.0.1:1/auth?password=s3cret'\n",
            "store.url: cannot open the PostgreSQL store at postgres://app@127.0.0.1:1/auth?password=***",
        ),
        (
            sqlite_and_redis.as_str(),
            "state.url: cannot reach Redis at redis://:***@127.0.0.1:1/0",
        ),
    ] {
        std::fs::write(&path, format!("{base}{section}")).unwrap();
        let err = exits_1(&["serve", "--config"], &path);
        assert!(err.contains(shown), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

// ----- two server processes on one PostgreSQL schema, state in Redis -------

const ADMIN_KEY: &str = "replica-admin-key-0123456789";

/// The two replicas' environment, or `None` (after saying why) outside CI.
fn replica_services() -> Option<(String, String)> {
    let pg = std::env::var("AUTH_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let redis = std::env::var("AUTH_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let up = |port: u16| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
    if up(5432) && up(6379) {
        return Some((pg, redis));
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "PostgreSQL and Redis are required under CI"
    );
    eprintln!("skipping the two-process replica test: PostgreSQL or Redis is not running");
    None
}

/// Starts replica `name` (its own events file) on schema `schema`.
fn replica(dir: &Path, name: &str, pg: &str, redis: &str, schema: &str) -> Running {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "[http]\njwt_secret = '0123456789abcdef0123456789abcdef'\n\
             [store]\nurl = '{pg}'\nschema = '{schema}'\n\
             [state]\nurl = '{redis}'\nkey_prefix = 'auth-test:{schema}:'\n\
             [server]\nlisten = '127.0.0.1:0'\n\
             [events]\nfile = '{}'\n\
             [management]\napi_key = '{ADMIN_KEY}'\n\
             [[providers]]\nresolve = 'emailpass'\nid = 'emailpass'\n",
            dir.join(format!("{name}-events.jsonl")).display()
        ),
    )
    .unwrap();
    start(dir, &["--config", config.to_str().unwrap()]).0
}

async fn admin(method: reqwest::Method, url: &str, body: Option<serde_json::Value>) -> u16 {
    let mut req = reqwest::Client::new()
        .request(method, url)
        .header("x-api-key", ADMIN_KEY);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.expect("admin request").status().as_u16()
}

async fn login(base: &str, password: &str) -> (u16, serde_json::Value) {
    let body = serde_json::json!({"email": "two@example.com", "password": password});
    post(&format!("{base}/auth/customer/emailpass"), body, None).await
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replica_processes_never_answer_stale() {
    let Some((pg, redis)) = replica_services() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let schema = format!(
        "auth_proc_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let a = replica(dir.path(), "a", &pg, &redis, &schema);
    let b = replica(dir.path(), "b", &pg, &redis, &schema);
    let (ua, ub) = (format!("http://{}", a.addr), format!("http://{}", b.addr));
    let creds = serde_json::json!({"email": "two@example.com", "password": "first password"});
    let token = register(&ua, creds).await;
    let claims = |t: &str| -> serde_json::Value {
        use base64::Engine;
        let part = t.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .unwrap(),
        )
        .unwrap()
    };
    let id = claims(&token)["auth_identity_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let link = |i: usize| {
        let url = format!("{ua}/admin/auth-identities/{id}/actors/customer");
        async move {
            admin(
                reqwest::Method::POST,
                &url,
                Some(serde_json::json!({"actor_id": format!("cus_{i}")})),
            )
            .await
        }
    };

    // A link on A shows in a refresh on B at once; 1,000 alternating writes
    // on A and reads on B give no stale answer.
    let mut stale = 0;
    for i in 0..1000 {
        assert_eq!(link(i).await, 200);
        let (status, body) = refresh(&ub, &token).await;
        assert_eq!(status, 200, "{body}");
        if claims(body["token"].as_str().unwrap())["actor_id"] != format!("cus_{i}") {
            stale += 1;
        }
    }
    assert_eq!(stale, 0, "stale answers out of 1000");

    // A password change on A: B refuses the old password, tokens and sessions at once.
    let (_, body) = login(&ub, "first password").await;
    let linked = body["token"].as_str().unwrap().to_owned();
    let (status, cookie) = open_session(&ub, &linked).await;
    assert_eq!(status, 200);
    let cookie = cookie.unwrap();
    assert_eq!(
        with_cookie(&format!("{ub}/auth/token/refresh"), &cookie).await,
        200
    );
    let (status, _) = post(
        &format!("{ua}/auth/customer/emailpass/reset-password"),
        serde_json::json!({"identifier": "two@example.com"}),
        None,
    )
    .await;
    assert_eq!(status, 201);
    let events = dir.path().join("a-events.jsonl");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let reset = loop {
        let text = std::fs::read_to_string(&events).unwrap_or_default();
        if let Some(t) = text.lines().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["name"] == "auth.password_reset")
                .then(|| v["data"]["token"].as_str().map(str::to_owned))?
        }) {
            break t;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no reset event in {}",
            events.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let (status, body) = post(
        &format!("{ua}/auth/customer/emailpass/update"),
        serde_json::json!({"password": "second password"}),
        Some(&reset),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(login(&ub, "first password").await.0, 401);
    assert_eq!(refresh(&ub, &linked).await.0, 401);
    assert_eq!(
        with_cookie(&format!("{ub}/auth/token/refresh"), &cookie).await,
        401
    );
    let (status, body) = login(&ub, "second password").await;
    assert_eq!(status, 200, "{body}");
    let fresh = body["token"].as_str().unwrap().to_owned();

    // A deletion on A: B refuses at once.
    assert_eq!(
        admin(
            reqwest::Method::DELETE,
            &format!("{ua}/admin/auth-identities/{id}"),
            None
        )
        .await,
        200
    );
    assert_eq!(refresh(&ub, &fresh).await.0, 401);
    assert_eq!(login(&ub, "second password").await.0, 401);
    drop((a, b));
}
