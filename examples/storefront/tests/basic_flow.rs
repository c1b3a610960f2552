//! The reference documents' basic flow, against the `storefront` binary run
//! with `serve --config FILE --listen ADDR`: register, create the customer
//! with the registration token, refresh (the token now has the `actor_id`),
//! log in again, use the session cookie on `/store/customers/me`, log out,
//! and get 401.

mod common;

use base64::Engine as _;
use serde_json::{Value, json};

use common::{EMAILPASS, Running};

const KEY: &str = "pk_test_storefront";

async fn start() -> Running {
    common::start(KEY, |_, _| EMAILPASS.to_owned()).await
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

async fn json_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_basic_flow_of_the_reference_documents() {
    let s = start().await;
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", s.url());
    let creds = json!({ "email": "ada@example.com", "password": "a long password" });

    // 1. Register: a token with no actor yet.
    let (status, body) = json_of(
        http.post(url("/auth/customer/emailpass/register"))
            .json(&creds)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let registration = body["token"].as_str().unwrap().to_owned();
    assert_eq!(claims(&registration)["actor_id"], "");

    // The store routes need the publishable key.
    let (status, body) = json_of(
        http.post(url("/store/customers"))
            .bearer_auth(&registration)
            .json(&json!({ "email": "ada@example.com" }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["type"], "not_allowed");
    let (status, _) = json_of(
        http.get(url("/store/customers/me"))
            .header("x-publishable-api-key", "pk_wrong")
            .bearer_auth(&registration)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);

    // 2. Create the customer with the registration token.
    let (status, body) = json_of(
        http.post(url("/store/customers"))
            .header("x-publishable-api-key", KEY)
            .bearer_auth(&registration)
            .json(&json!({ "email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace" }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let customer_id = body["customer"]["id"].as_str().unwrap().to_owned();
    assert!(customer_id.starts_with("cus_"), "{body}");
    assert_eq!(body["customer"]["first_name"], "Ada");

    // The registration token was unlinked; a second customer is refused all
    // the same (the link is read from the store).
    let (status, body) = json_of(
        http.post(url("/store/customers"))
            .header("x-publishable-api-key", KEY)
            .bearer_auth(&registration)
            .json(&json!({ "email": "ada@example.com" }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"type": "invalid_data", "message": "Request already authenticated as a customer."})
        )
    );

    // 3. Refresh: the token now carries the actor_id.
    let (status, body) = json_of(
        http.post(url("/auth/token/refresh"))
            .bearer_auth(&registration)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let refreshed = body["token"].as_str().unwrap().to_owned();
    assert_eq!(claims(&refreshed)["actor_id"], customer_id.as_str());
    let (status, body) = json_of(
        http.post(url("/store/customers"))
            .header("x-publishable-api-key", KEY)
            .bearer_auth(&refreshed)
            .json(&json!({ "email": "ada@example.com" }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        "Request already authenticated as a customer."
    );

    // 4. Log in again: the actor_id is there at once.
    let (status, body) = json_of(
        http.post(url("/auth/customer/emailpass"))
            .json(&creds)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let login = body["token"].as_str().unwrap().to_owned();
    assert_eq!(claims(&login)["actor_id"], customer_id.as_str());

    // 5. A session from the token; `me` by cookie.
    let r = http
        .post(url("/auth/session"))
        .bearer_auth(&login)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_owned();
    let me = || {
        http.get(url("/store/customers/me"))
            .header("x-publishable-api-key", KEY)
            .header("cookie", &cookie)
            .send()
    };
    let (status, body) = json_of(me().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["customer"]["id"], customer_id.as_str());
    assert_eq!(body["customer"]["email"], "ada@example.com");
    // By bearer too; and the registration token (no customer) is refused.
    let (status, _) = json_of(
        http.get(url("/store/customers/me"))
            .header("x-publishable-api-key", KEY)
            .bearer_auth(&login)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);

    // 6. Log out: the cookie no longer works.
    let r = http
        .delete(url("/auth/session"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, body) = json_of(me().await.unwrap()).await;
    assert_eq!((status, body), (401, json!({ "message": "Unauthorized" })));
    // No authentication at all: 401 too.
    let (status, body) = json_of(
        http.get(url("/store/customers/me"))
            .header("x-publishable-api-key", KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body), (401, json!({ "message": "Unauthorized" })));
}
