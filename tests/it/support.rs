//! A real server on 127.0.0.1:0 over SQLite in a temporary directory, and an
//! HTTP client for it.

use std::net::SocketAddr;
use std::path::Path;

use auth_http::AuthService;
use auth_server::AppConfig;
use base64::Engine;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The JWT secret of test servers.
pub const SECRET: &str = "test-secret-0123456789abcdef0123456789abcdef";

/// A config over SQLite in `dir` with `extra` TOML appended (providers included).
pub fn sqlite_config(dir: &Path, extra: &str) -> String {
    format!(
        "[http]\njwt_secret = \"{SECRET}\"\n\n[store]\nurl = \"sqlite://{}/auth.db\"\n\n{extra}",
        dir.display()
    )
}

/// One emailpass instance under id `emailpass`.
/// Its password policy is off (any non-empty password, as Medusa): these tests
/// are about other rules, and the policy has its own (`tests/it/password_policy.rs`).
pub const EMAILPASS: &str = "[[providers]]\nresolve = \"emailpass\"\nid = \"emailpass\"\n[providers.options]\npassword_policy = { min_length = 1, reject_common = false }\n";

/// A running server; stopped when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub service: AuthService,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server from TOML text.
    pub async fn start_toml(toml: &str) -> TestServer {
        let config = AppConfig::from_toml_str(toml).expect("test config parses");
        Self::start(config).await
    }

    /// Starts a server from `config`.
    pub async fn start(config: AppConfig) -> TestServer {
        let app = auth_server::build_app(config).await.expect("app builds");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let service = app.service.clone();
        let handle = tokio::spawn(async move {
            auth_server::serve(listener, app, async {
                let _ = rx.await;
            })
            .await
            .expect("serve");
        });
        TestServer {
            addr,
            service,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// The absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops the server and waits until it has.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
    }

    /// POSTs a JSON body.
    pub async fn post_json(&self, path: &str, body: Value) -> Reply {
        Reply::of(
            self.client
                .post(self.url(path))
                .json(&body)
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    /// POSTs with a bearer token and no body.
    pub async fn post_bearer(&self, path: &str, token: &str) -> Reply {
        Reply::of(
            self.client
                .post(self.url(path))
                .header("authorization", format!("Bearer {token}"))
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    /// POSTs with a `Cookie` header and no body.
    pub async fn post_cookie(&self, path: &str, cookie: &str) -> Reply {
        Reply::of(
            self.client
                .post(self.url(path))
                .header("cookie", cookie)
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    /// Opens a session with `token`; returns the `name=value` cookie pair.
    pub async fn open_session(&self, token: &str) -> String {
        let r = self.post_bearer("/auth/session", token).await;
        assert_eq!(r.status, 200, "session: {}", r.body);
        r.cookie_pair()
    }

    /// Registers `email`/`password` as a customer; returns the token.
    pub async fn register(&self, email: &str, password: &str) -> String {
        let r = self
            .post_json(
                "/auth/customer/emailpass/register",
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(r.status, 200, "register {email}: {}", r.body);
        r.token()
    }

    /// Logs `email`/`password` in as a customer; returns the reply.
    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.post_json(
            "/auth/customer/emailpass",
            json!({"email": email, "password": password}),
        )
        .await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A reply: status, headers and the body as JSON (or a string).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Reply {
    pub async fn of(r: reqwest::Response) -> Reply {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
        Reply {
            status,
            headers,
            text,
            body,
        }
    }

    /// The `token` field; panics with the body if absent.
    pub fn token(&self) -> String {
        self.body["token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token in {}", self.body))
            .to_owned()
    }

    /// The `name=value` part of the last `Set-Cookie` header.
    pub fn cookie_pair(&self) -> String {
        let cookie = self.set_cookies().pop().expect("a Set-Cookie header");
        cookie.split(';').next().unwrap_or_default().to_owned()
    }

    /// The `Set-Cookie` header values.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }
}

/// The claims of a JWT, unverified.
pub fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("json claims")
}

/// Signs `claims` with HS256 and `secret`.
pub fn sign(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

/// Signs `claims` with another HMAC algorithm and `secret`.
pub fn sign_with(claims: &Value, secret: &str, alg: jsonwebtoken::Algorithm) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(alg),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

/// An unsigned `alg: none` token carrying `claims`.
pub fn unsigned(claims: &Value) -> String {
    let enc = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.",
        enc.encode(br#"{"alg":"none","typ":"JWT"}"#),
        enc.encode(serde_json::to_vec(claims).expect("json"))
    )
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// The shared test PostgreSQL (`AUTH_TEST_POSTGRES_URL`, default the local `test` database).
pub fn pg_url() -> String {
    std::env::var("AUTH_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The shared test Redis (`AUTH_TEST_REDIS_URL`, default 127.0.0.1:6379).
pub fn redis_url() -> String {
    std::env::var("AUTH_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A free TCP port on 127.0.0.1 (for servers a test starts itself).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
