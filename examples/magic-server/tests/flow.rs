//! The magic-link flow over real HTTP, through the server this binary runs:
//! login sends a code through the event, the callback spends it once.

use base64::Engine as _;
use provider_magic_link as _;
use serde_json::{Value, json};

struct Server {
    url: String,
    events: tokio::sync::broadcast::Receiver<auth_module::events::Event>,
    _dir: tempfile::TempDir,
}

async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
[http]
jwt_secret = "a test secret of at least thirty-two bytes"
[store]
url = "sqlite://{}/auth.db"
[[providers]]
resolve = "emailpass"
id = "emailpass"
[[providers]]
resolve = "magic-link"
id = "magic-link"
[providers.options]
callback_url = "http://shop.test/auth/magic"
sent_url = "http://shop.test/check-your-mail"
"#,
        dir.path().display()
    );
    let config = auth_server::AppConfig::from_toml_str(&toml).unwrap();
    let app = auth_server::build_app(config).await.unwrap();
    let events = app.service.events().subscribe();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(auth_server::serve(listener, app, std::future::pending()));
    Server {
        url,
        events,
        _dir: dir,
    }
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_magic_link_logs_in_once() {
    let mut s = start().await;
    let http = reqwest::Client::new();
    // Both providers are linked and listed.
    let list: Value = http
        .get(format!("{}/auth/customer/providers", s.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["emailpass", "magic-link"]);
    assert_eq!(list["providers"][1]["flow"], "redirect");

    let r = http
        .post(format!("{}/auth/customer/magic-link", s.url))
        .json(&json!({ "email": "  Ada@Example.com " }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({ "location": "http://shop.test/check-your-mail" })
    );
    let event = s.events.recv().await.unwrap();
    assert_eq!(event.name, provider_magic_link::REQUESTED_EVENT);
    assert_eq!(event.data["email"], "ada@example.com");
    let code = event.data["code"].as_str().unwrap().to_owned();
    assert_eq!(
        event.data["link"],
        format!("http://shop.test/auth/magic?code={code}")
    );

    let callback = |actor: &str, code: &str| {
        http.get(format!(
            "{}/auth/{actor}/magic-link/callback?code={code}",
            s.url
        ))
        .send()
    };
    let r = callback("customer", &code).await.unwrap();
    assert_eq!(r.status(), 200);
    let token: Value = r.json().await.unwrap();
    let c = claims(token["token"].as_str().unwrap());
    assert_eq!(c["auth_provider"], "magic-link");
    assert_eq!(c["user_metadata"]["email"], "ada@example.com");
    assert_eq!(c["user_metadata"]["email_verified"], true);

    // Spent: a second use is refused, as are a made-up code and none.
    for bad in [code.as_str(), "not-a-code", ""] {
        let r = callback("customer", bad).await.unwrap();
        assert_eq!(r.status(), 401, "{bad:?}");
    }
    // A code asked for one actor type does not log in another.
    http.post(format!("{}/auth/customer/magic-link", s.url))
        .json(&json!({ "email": "ada@example.com" }))
        .send()
        .await
        .unwrap();
    let code = s.events.recv().await.unwrap().data["code"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(callback("user", &code).await.unwrap().status(), 401);
}
