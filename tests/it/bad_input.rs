//! A table of bad inputs: each gets a clear 4xx with the contract's JSON shape,
//! and nothing stored changes.

use serde_json::{Value, json};

use crate::support::{
    EMAILPASS, Reply, SECRET, TestServer, claims, now, sign, sqlite_config, unsigned,
};

enum Expect {
    /// `{"type", "message"}` with this type and exactly this message.
    Exact(&'static str, &'static str),
    /// `{"type", "message"}` with this type and any non-empty message.
    Typed(&'static str),
    /// Exactly this body.
    Body(Value),
}

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    bearer: Option<String>,
    body: Vec<u8>,
    status: u16,
    expect: Expect,
}

fn case(
    name: &'static str,
    path: &str,
    content_type: Option<&'static str>,
    body: impl Into<Vec<u8>>,
    status: u16,
    expect: Expect,
) -> Case {
    Case {
        name,
        method: "POST",
        path: path.to_owned(),
        content_type,
        bearer: None,
        body: body.into(),
        status,
        expect,
    }
}

const JSON: Option<&str> = Some("application/json");
const REGISTER: &str = "/auth/customer/emailpass/register";
const LOGIN: &str = "/auth/customer/emailpass";
const INVALID: Expect = Expect::Exact("unauthorized", "Invalid email or password");
const NO_PASSWORD: Expect = Expect::Exact("unauthorized", "Password should be a string");
const NO_EMAIL: Expect = Expect::Exact("unauthorized", "Email should be a string");

fn bare_unauthorized() -> Expect {
    Expect::Body(json!({"message": "Unauthorized"}))
}

fn too_large() -> Expect {
    Expect::Body(json!({"message": "request entity too large", "type": "unknown_error"}))
}

fn json_body(v: Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

#[tokio::test]
async fn bad_inputs_get_clear_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_toml(&sqlite_config(dir.path(), EMAILPASS)).await;
    let token = s.register("known@example.com", "known-password").await;
    let known_id = claims(&token)["auth_identity_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let store = s.service.module().identity_store().clone();
    let before = store.retrieve_auth_identity(&known_id).await.unwrap();

    let good = claims(&token);
    let mut expired = good.clone();
    expired["iat"] = json!(now() - 7200);
    expired["exp"] = json!(now() - 3600);
    let big_password = "p".repeat(1_000_000);
    let mut nested = "[".repeat(5000);
    nested.push_str(&"]".repeat(5000));

    let mut cases = vec![
        case(
            "malformed JSON on register",
            REGISTER,
            JSON,
            r#"{"email": "a@b.c", "password": "#,
            400,
            Expect::Typed("invalid_data"),
        ),
        case(
            "malformed JSON on login",
            LOGIN,
            JSON,
            "{email: a}",
            400,
            Expect::Typed("invalid_data"),
        ),
        case(
            "JSON array",
            LOGIN,
            JSON,
            r#"[{"email": "a@b.c", "password": "x"}]"#,
            400,
            Expect::Typed("invalid_data"),
        ),
        case(
            "JSON null",
            REGISTER,
            JSON,
            "null",
            400,
            Expect::Typed("invalid_data"),
        ),
        case(
            "JSON number",
            LOGIN,
            JSON,
            "42",
            400,
            Expect::Typed("invalid_data"),
        ),
        case(
            "JSON string",
            LOGIN,
            JSON,
            r#""known@example.com""#,
            400,
            Expect::Typed("invalid_data"),
        ),
        case(
            "JSON boolean",
            REGISTER,
            JSON,
            "true",
            400,
            Expect::Typed("invalid_data"),
        ),
        case(
            "invalid UTF-8",
            LOGIN,
            JSON,
            vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}'],
            400,
            Expect::Typed("invalid_data"),
        ),
        case(
            "deeply nested JSON",
            LOGIN,
            JSON,
            nested,
            400,
            Expect::Typed("invalid_data"),
        ),
        case(
            "number for email",
            REGISTER,
            JSON,
            json_body(json!({"email": 5, "password": "pw"})),
            401,
            NO_EMAIL,
        ),
        case(
            "array for email",
            LOGIN,
            JSON,
            json_body(json!({"email": ["known@example.com"], "password": "pw"})),
            401,
            NO_EMAIL,
        ),
        case(
            "object for password",
            LOGIN,
            JSON,
            json_body(json!({"email": "known@example.com", "password": {"$ne": ""}})),
            401,
            NO_PASSWORD,
        ),
        case(
            "null password",
            REGISTER,
            JSON,
            json_body(json!({"email": "new@example.com", "password": null})),
            401,
            NO_PASSWORD,
        ),
        case(
            "boolean password",
            LOGIN,
            JSON,
            json_body(json!({"email": "known@example.com", "password": true})),
            401,
            NO_PASSWORD,
        ),
        case("empty JSON body", REGISTER, JSON, "", 401, NO_PASSWORD),
        case(
            "1 MiB body",
            REGISTER,
            JSON,
            json_body(
                json!({"email": "big@example.com", "password": "x", "pad": "x".repeat(1 << 20)}),
            ),
            413,
            too_large(),
        ),
        case(
            "1 MB password",
            LOGIN,
            JSON,
            json_body(json!({"email": "known@example.com", "password": big_password})),
            413,
            too_large(),
        ),
        case(
            "unicode email",
            LOGIN,
            JSON,
            json_body(json!({"email": "ünïcødé@例え.jp", "password": "known-password"})),
            401,
            INVALID,
        ),
        case(
            "emoji email",
            LOGIN,
            JSON,
            json_body(json!({"email": "🔐😀@example.com", "password": "known-password"})),
            401,
            INVALID,
        ),
        case(
            "NUL in email",
            LOGIN,
            JSON,
            json_body(json!({"email": "known@example.com\u{0}", "password": "known-password"})),
            401,
            INVALID,
        ),
        case(
            "SQL injection email",
            LOGIN,
            JSON,
            json_body(json!({"email": "' OR '1'='1' --", "password": "x"})),
            401,
            INVALID,
        ),
        case(
            "SQL injection password",
            LOGIN,
            JSON,
            json_body(
                json!({"email": "known@example.com", "password": "' OR 1=1; DROP TABLE auth_identity; --"}),
            ),
            401,
            INVALID,
        ),
        case(
            "SQL injection in provider",
            "/auth/customer/emailpass'%20OR%20'1'='1",
            JSON,
            json_body(json!({"email": "a@b.c", "password": "x"})),
            401,
            Expect::Exact(
                "unauthorized",
                "Unable to retrieve the auth provider with id: emailpass' OR '1'='1",
            ),
        ),
        case(
            "missing Content-Type",
            LOGIN,
            None,
            json_body(json!({"email": "known@example.com", "password": "known-password"})),
            401,
            NO_PASSWORD,
        ),
        case(
            "text/plain body",
            REGISTER,
            Some("text/plain"),
            json_body(json!({"email": "plain@example.com", "password": "pw"})),
            401,
            NO_PASSWORD,
        ),
        case(
            "form without password",
            LOGIN,
            Some("application/x-www-form-urlencoded"),
            "email=known%40example.com",
            401,
            NO_PASSWORD,
        ),
        case(
            "garbled form",
            LOGIN,
            Some("application/x-www-form-urlencoded"),
            "%%%&&&==",
            401,
            NO_PASSWORD,
        ),
        case(
            "unknown provider",
            "/auth/customer/ldap",
            JSON,
            json_body(json!({"email": "a@b.c", "password": "x"})),
            401,
            Expect::Exact(
                "unauthorized",
                "Unable to retrieve the auth provider with id: ldap",
            ),
        ),
        case(
            "unknown actor, wrong password",
            "/auth/robot/emailpass",
            JSON,
            json_body(json!({"email": "known@example.com", "password": "nope"})),
            401,
            INVALID,
        ),
    ];
    for (name, bearer) in [
        ("expired JWT", sign(&expired, SECRET)),
        (
            "forged JWT (other secret)",
            sign(&good, "not-the-secret-not-the-secret-not-the"),
        ),
        ("alg none JWT", unsigned(&good)),
        ("garbage JWT", "a.b.c".to_owned()),
    ] {
        for path in ["/auth/token/refresh", "/auth/session"] {
            cases.push(Case {
                name,
                method: "POST",
                path: path.to_owned(),
                content_type: None,
                bearer: Some(bearer.clone()),
                body: Vec::new(),
                status: 401,
                expect: bare_unauthorized(),
            });
        }
    }
    assert!(cases.len() >= 25);

    for c in cases {
        let mut req = s
            .client
            .request(c.method.parse().unwrap(), s.url(&c.path))
            .body(c.body.clone());
        if let Some(ct) = c.content_type {
            req = req.header("content-type", ct);
        }
        if let Some(b) = &c.bearer {
            req = req.header("authorization", format!("Bearer {b}"));
        }
        let r = Reply::of(
            req.send()
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", c.name)),
        )
        .await;
        assert_eq!(r.status, c.status, "{}: {}", c.name, r.text);
        assert_eq!(
            r.headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "{}",
            c.name
        );
        match &c.expect {
            Expect::Exact(kind, msg) => {
                assert_eq!(r.body, json!({"type": kind, "message": msg}), "{}", c.name)
            }
            Expect::Typed(kind) => {
                let obj = r
                    .body
                    .as_object()
                    .unwrap_or_else(|| panic!("{}: {}", c.name, r.text));
                assert_eq!(obj.len(), 2, "{}: {}", c.name, r.text);
                assert_eq!(obj["type"], *kind, "{}", c.name);
                assert!(!obj["message"].as_str().unwrap().is_empty(), "{}", c.name);
            }
            Expect::Body(v) => assert_eq!(&r.body, v, "{}", c.name),
        }
        let lower = r.text.to_lowercase();
        for leak in ["argon2", "panicked", "sqlx", "stack", SECRET] {
            assert!(
                !lower.contains(&leak.to_lowercase()),
                "{} leaks {leak}: {}",
                c.name,
                r.text
            );
        }
        // Nothing stored changed.
        let after = store.retrieve_auth_identity(&known_id).await.unwrap();
        assert_eq!(after, before, "{} changed the known identity", c.name);
        for email in [
            "new@example.com",
            "big@example.com",
            "plain@example.com",
            "a@b.c",
        ] {
            assert!(
                store
                    .find_provider_identity("emailpass", email)
                    .await
                    .unwrap()
                    .is_none(),
                "{} stored {email}",
                c.name
            );
        }
    }
    // And the known account still works.
    assert_eq!(
        s.login("known@example.com", "known-password").await.status,
        200
    );
}
