//! Abuse resistance and the differences seen from outside: actor types,
//! JSON rejections, per-actor provider lists on reset, slow bodies.

use serde_json::json;

use crate::support::{EMAILPASS, Reply, TestServer, sqlite_config};

async fn server(extra_http: &str) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let toml =
        sqlite_config(dir.path(), EMAILPASS).replace("[http]\n", &format!("[http]\n{extra_http}"));
    (TestServer::start_toml(&toml).await, dir)
}

fn invalid_data(message: &str) -> serde_json::Value {
    json!({"type": "invalid_data", "message": message})
}

#[tokio::test]
async fn actor_types_follow_one_rule_everywhere() {
    let (s, _dir) = server("").await;
    let creds = json!({"email": "pct@example.com", "password": "pw"});
    for path in [
        "/auth/%25/emailpass/register",
        "/auth/%25/emailpass",
        "/auth/a%20b/emailpass/reset-password",
        "/auth/%25/emailpass/update",
    ] {
        let r = s.post_json(path, creds.clone()).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert_eq!(r.body["type"], "invalid_data", "{path}");
        assert!(
            r.body["message"]
                .as_str()
                .unwrap()
                .starts_with("Invalid actor type: "),
            "{path}: {}",
            r.body
        );
    }
    let r = Reply::of(
        s.client
            .get(s.url("/auth/%25/providers"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (r.status, r.body),
        (400, invalid_data("Invalid actor type: %"))
    );
    // Nothing was registered under the refused actor type.
    assert_eq!(s.login("pct@example.com", "pw").await.status, 401);
}

#[tokio::test]
async fn a_configured_actor_list_closes_the_set() {
    let (s, _dir) = server("actor_types = [\"customer\"]\n").await;
    s.register("closed@example.com", "pw").await;
    let r = s
        .post_json(
            "/auth/user/emailpass",
            json!({"email": "closed@example.com", "password": "pw"}),
        )
        .await;
    assert_eq!(
        (r.status, r.body),
        (400, invalid_data("Invalid actor type: user"))
    );
}

#[tokio::test]
async fn fixed_routes_cannot_be_shadowed_by_configuration() {
    for (extra, expected) in [
        (
            "[http]\nactor_types = ['customer', 'session']\n",
            "http.actor_types: Invalid actor type: session",
        ),
        (
            "[http.auth_methods_per_actor]\ntoken = ['emailpass']\n",
            "http.auth_methods_per_actor: Invalid actor type: token",
        ),
    ] {
        let e = auth_server::AppConfig::from_toml_str(&format!("{extra}{EMAILPASS}")).unwrap_err();
        assert!(e.message().starts_with(expected), "{e}");
    }
    let e = auth_server::AppConfig::from_toml_str(
        "[[providers]]\nresolve='emailpass'\nid='providers'\n",
    )
    .unwrap_err();
    assert!(e.message().contains("taken by a fixed route"), "{e}");
}

#[tokio::test]
async fn undecodable_paths_get_the_json_shape() {
    let (s, _dir) = server("").await;
    for path in ["/auth/%FF%FE/emailpass", "/auth/customer/%C3%28/register"] {
        let r = s.post_json(path, json!({})).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text);
        assert_eq!(r.body["type"], "invalid_data", "{path}: {}", r.text);
        assert!(r.body["message"].is_string(), "{path}: {}", r.text);
    }
}

#[tokio::test]
async fn reset_and_update_follow_the_per_actor_provider_lists() {
    let dir = tempfile::tempdir().unwrap();
    let toml = sqlite_config(
        dir.path(),
        &format!("[http.auth_methods_per_actor]\nuser = []\n\n{EMAILPASS}"),
    );
    let s = TestServer::start_toml(&toml).await;
    let expected = json!({
        "type": "not_allowed",
        "message": "The actor type user is not allowed to use the auth provider emailpass"
    });
    // The same answer whether or not the identity exists.
    s.register("lists@example.com", "pw").await;
    for identifier in ["lists@example.com", "nobody@example.com"] {
        let r = s
            .post_json(
                "/auth/user/emailpass/reset-password",
                json!({"identifier": identifier}),
            )
            .await;
        assert_eq!((r.status, &r.body), (400, &expected), "{identifier}");
    }
    let r = s
        .post_json("/auth/user/emailpass/update", json!({"password": "x"}))
        .await;
    assert_eq!((r.status, r.body), (400, expected));
}

/// A body sent a byte at a time to `update` gets the 401 answer, not a
/// closed connection.
#[tokio::test]
async fn a_slowly_sent_body_gets_its_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (s, _dir) = server("").await;
    let body = br#"{"password":"slow-but-sure"}"#;
    let stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let head = format!(
        "POST /auth/customer/emailpass/update HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer not-a-token\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        s.addr,
        body.len()
    );
    wr.write_all(head.as_bytes()).await.unwrap();
    for b in body {
        wr.write_all(&[*b]).await.unwrap();
        wr.flush().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), rd.read(&mut buf))
            .await
            .expect("an answer in time")
            .unwrap();
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
        if response.ends_with(b"}") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    let body: serde_json::Value =
        serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap_or_default())
            .expect("a JSON body");
    assert_eq!(
        body,
        json!({"type": "unauthorized", "message": "Invalid token"})
    );
}

/// Past the hashing queue's length or wait, logins get a quick 503 with
/// `Retry-After`; some still get through, and nothing else breaks.
#[tokio::test(flavor = "multi_thread")]
async fn an_over_full_hashing_queue_answers_503() {
    let dir = tempfile::tempdir().unwrap();
    let toml = sqlite_config(
        dir.path(),
        "[[providers]]\nresolve = \"emailpass\"\nid = \"emailpass\"\n\
         [providers.options]\nmax_concurrent_hashes = 1\nmax_queue = 2\nmax_queue_wait = \"2s\"\npassword_policy = { min_length = 1, reject_common = false }\n",
    );
    let s = std::sync::Arc::new(TestServer::start_toml(&toml).await);
    // Twelve accounts: tries of one identifier take turns before the queue.
    for i in 0..12 {
        s.register(&format!("queue{i}@example.com"), "pw").await;
    }
    let logins: Vec<_> = (0..12)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.login(&format!("queue{i}@example.com"), "pw").await })
        })
        .collect();
    let (mut ok, mut busy) = (0, 0);
    for l in logins {
        let r = l.await.unwrap();
        match r.status {
            200 => ok += 1,
            503 => {
                busy += 1;
                assert_eq!(
                    r.body,
                    json!({"type": "unexpected_state", "message": "Server busy, try again later"})
                );
                assert_eq!(r.headers["retry-after"], "1");
            }
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    assert!(ok >= 3, "the running and the queued ones get through: {ok}");
    assert!(busy >= 1, "the rest are refused at once: {busy}");
    assert_eq!(
        s.login("queue0@example.com", "pw").await.status,
        200,
        "and it recovers"
    );
}

async fn server_with(server_section: &str) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "{}\n[server]\n{server_section}",
        sqlite_config(dir.path(), EMAILPASS)
    );
    (TestServer::start_toml(&toml).await, dir)
}

/// Reads until the server closes the connection; `None` if it stays open
/// past `limit`.
async fn closed_within(
    stream: &mut tokio::net::TcpStream,
    limit: std::time::Duration,
) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_slowloris_connection_is_closed_by_the_header_timeout() {
    use tokio::io::AsyncWriteExt;
    let (s, _dir) = server_with("header_timeout = \"300ms\"\n").await;
    let mut stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    stream
        .write_all(b"POST /auth/customer/emailpass HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    assert!(
        closed_within(&mut stream, std::time::Duration::from_secs(5))
            .await
            .is_some(),
        "the half-sent request is cut off"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    // Whole requests are unaffected.
    assert_eq!(
        s.client
            .get(s.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn silent_connections_and_connections_past_the_limit_are_closed() {
    let (s, _dir) =
        server_with("header_timeout = \"30s\"\nidle_timeout = \"300ms\"\nmax_connections = 2\n")
            .await;
    let mut a = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let mut b = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let mut c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    assert!(
        closed_within(&mut c, std::time::Duration::from_millis(250))
            .await
            .is_some(),
        "a third connection is closed at once"
    );
    for conn in [&mut a, &mut b] {
        assert!(
            closed_within(conn, std::time::Duration::from_secs(5))
                .await
                .is_some(),
            "a silent connection is closed after idle_timeout"
        );
    }
    // With the slots free again, requests go through.
    assert_eq!(
        s.client
            .get(s.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

/// The idle timer counts from the last byte: a connection busy for longer
/// than `idle_timeout` stays open, and closes once it falls silent.
#[tokio::test]
async fn a_busy_connection_outlives_idle_timeout_and_a_silent_one_does_not() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (s, _dir) = server_with("header_timeout = \"30s\"\nidle_timeout = \"300ms\"\n").await;
    let mut conn = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    for i in 0..9 {
        conn.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), conn.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(
            n > 0 && answer.starts_with("HTTP/1.1 200"),
            "request {i} after {:?} on the same connection: {answer}",
            started.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(started.elapsed() > std::time::Duration::from_millis(900));
    let silent = std::time::Instant::now();
    assert!(
        closed_within(&mut conn, std::time::Duration::from_secs(5))
            .await
            .is_some(),
        "closed once silent"
    );
    let after = silent.elapsed();
    assert!(
        after >= std::time::Duration::from_millis(150) && after < std::time::Duration::from_secs(2),
        "closed about idle_timeout after the last byte: {after:?}"
    );
}

#[tokio::test]
async fn a_request_past_its_time_gets_408() {
    let (s, _dir) = server_with("request_timeout = \"1ms\"\n").await;
    // A registration hashes a password: far longer than a millisecond.
    let r = s
        .post_json(
            "/auth/customer/emailpass/register",
            json!({"email": "slow@example.com", "password": "pw"}),
        )
        .await;
    assert_eq!(
        (r.status, r.body),
        (
            408,
            json!({"type": "unexpected_state", "message": "Request timeout"})
        )
    );
}
