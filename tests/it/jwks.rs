//! Tokens other services can verify: ES256, EdDSA and RS256 signing from a
//! PKCS#8 key file, `GET /.well-known/jwks.json`, verification with
//! `jsonwebtoken` and the JWKS alone, key and secret rotation, and the
//! algorithm pinned to each key.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::support::{EMAILPASS, SECRET, TestServer, claims, sign};

fn key(name: &str) -> String {
    format!("{}/fixtures/jwt/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn config(dir: &std::path::Path, http: &str) -> String {
    format!(
        "[http]\n{http}\n\n[store]\nurl = \"sqlite://{}/auth.db\"\n\n{EMAILPASS}",
        dir.display()
    )
}

fn header(token: &str) -> Value {
    let h = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap()
}

async fn jwks(s: &TestServer) -> Value {
    let r = s
        .client
        .get(s.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "public, max-age=300");
    r.json().await.unwrap()
}

/// What another service does: it knows only the JWKS.
fn verify_with_jwks(token: &str, set: &Value) -> Result<Value, String> {
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(set.clone()).unwrap();
    let kid = jsonwebtoken::decode_header(token)
        .map_err(|e| e.to_string())?
        .kid
        .ok_or("no kid")?;
    let jwk = set.find(&kid).ok_or("unknown kid")?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let alg = match &jwk.common.key_algorithm {
        Some(jsonwebtoken::jwk::KeyAlgorithm::ES256) => jsonwebtoken::Algorithm::ES256,
        Some(jsonwebtoken::jwk::KeyAlgorithm::RS256) => jsonwebtoken::Algorithm::RS256,
        Some(jsonwebtoken::jwk::KeyAlgorithm::EdDSA) => jsonwebtoken::Algorithm::EdDSA,
        other => return Err(format!("unexpected alg {other:?}")),
    };
    jsonwebtoken::decode::<Value>(token, &key, &jsonwebtoken::Validation::new(alg))
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn hs256_publishes_no_keys() {
    let dir = tempfile::tempdir().unwrap();
    let s =
        TestServer::start_toml(&config(dir.path(), &format!("jwt_secret = \"{SECRET}\""))).await;
    assert_eq!(jwks(&s).await, json!({ "keys": [] }));
    let token = s.register("hs@example.com", "a password").await;
    assert_eq!(header(&token)["alg"], "HS256");
}

#[tokio::test]
async fn every_asymmetric_algorithm_signs_tokens_others_verify_with_the_jwks() {
    for (alg, file, kty) in [
        ("ES256", "es256.pem", "EC"),
        ("EdDSA", "eddsa.pem", "OKP"),
        ("RS256", "rs256.pem", "RSA"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let http = format!(
            "jwt_algorithm = \"{alg}\"\njwt_private_key_file = \"{}\"",
            key(file)
        );
        let s = TestServer::start_toml(&config(dir.path(), &http)).await;
        let set = jwks(&s).await;
        let keys = set["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1, "{alg}: {set}");
        assert_eq!(
            (keys[0]["alg"].as_str(), keys[0]["kty"].as_str()),
            (Some(alg), Some(kty))
        );
        assert_eq!(keys[0]["use"], "sig");
        assert!(
            keys[0].get("d").is_none(),
            "{alg}: no private part is published"
        );

        let token = s
            .register(&format!("{kty}@example.com"), "a password")
            .await;
        assert_eq!(header(&token)["alg"], alg);
        assert_eq!(header(&token)["kid"], keys[0]["kid"]);
        let verified = verify_with_jwks(&token, &set).unwrap();
        assert_eq!(verified["actor_type"], "customer", "{alg}");
        // The server accepts its own token, and refresh signs the same way.
        let refreshed = s.post_bearer("/auth/token/refresh", &token).await;
        assert_eq!(refreshed.status, 200, "{alg}: {}", refreshed.body);
        assert!(verify_with_jwks(&refreshed.token(), &set).is_ok(), "{alg}");
        // A tampered payload does not verify, here or there.
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut c = claims(&token);
        c["actor_type"] = json!("user");
        parts[1] = URL_SAFE_NO_PAD.encode(c.to_string());
        let forged = parts.join(".");
        assert!(verify_with_jwks(&forged, &set).is_err(), "{alg}");
        assert_eq!(
            s.post_bearer("/auth/token/refresh", &forged).await.status,
            401,
            "{alg}"
        );
    }
}

#[tokio::test]
async fn keys_are_pinned_and_earlier_keys_and_secrets_keep_verifying() {
    let dir = tempfile::tempdir().unwrap();
    // First: HS256, then an ES256 key.
    let hs =
        TestServer::start_toml(&config(dir.path(), &format!("jwt_secret = \"{SECRET}\""))).await;
    let hs_token = hs.register("rotate@example.com", "a password").await;
    hs.stop().await;
    let es_only = format!(
        "jwt_secret = \"{SECRET}\"\njwt_algorithm = \"ES256\"\njwt_private_key_file = \"{}\"",
        key("es256-old.pem")
    );
    // Under ES256, `jwt_secret` verifies nothing: the HS256 token is refused...
    let s = TestServer::start_toml(&config(dir.path(), &es_only)).await;
    assert_eq!(
        s.post_bearer("/auth/token/refresh", &hs_token).await.status,
        401,
        "jwt_secret alone verifies nothing under ES256"
    );
    s.stop().await;
    // ...unless the secret is listed among the previous ones.
    let es = format!("{es_only}\njwt_previous_secrets = [\"{SECRET}\"]");
    let s = TestServer::start_toml(&config(dir.path(), &es)).await;
    // The HS256 token from before the switch still verifies; its refresh is ES256.
    let r = s.post_bearer("/auth/token/refresh", &hs_token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let es_token = r.token();
    assert_eq!(header(&es_token)["alg"], "ES256");
    // ...but the secret signs nothing new, and the JWKS shows only the key.
    assert_eq!(jwks(&s).await["keys"].as_array().unwrap().len(), 1);
    // Algorithm confusion: HS256 keyed with the published key is refused,
    // and so is an ES256 token without its kid.
    let set = jwks(&s).await;
    let c = claims(&es_token);
    let confused = sign(&c, set["keys"][0]["x"].as_str().unwrap());
    assert_eq!(
        s.post_bearer("/auth/token/refresh", &confused).await.status,
        401
    );
    let parts: Vec<&str> = es_token.split('.').collect();
    let no_kid = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","typ":"JWT"}"#),
        parts[1],
        parts[2]
    );
    assert_eq!(
        s.post_bearer("/auth/token/refresh", &no_kid).await.status,
        401
    );
    s.stop().await;

    // Then RS256, keeping the ES256 public key: ES256 tokens verify until
    // they expire, and both keys are published.
    let rs = format!(
        "jwt_algorithm = \"RS256\"\njwt_private_key_file = \"{}\"\n\
         jwt_previous_public_key_files = [\"{}\"]",
        key("rs256.pem"),
        key("es256-old.pub.pem")
    );
    let s = TestServer::start_toml(&config(dir.path(), &rs)).await;
    let set = jwks(&s).await;
    let algs: Vec<&str> = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["alg"].as_str().unwrap())
        .collect();
    assert_eq!(algs, ["RS256", "ES256"]);
    assert!(verify_with_jwks(&es_token, &set).is_ok());
    let r = s.post_bearer("/auth/token/refresh", &es_token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(header(&r.token())["alg"], "RS256");
    // Without the previous secret, the old HS256 token is refused now.
    assert_eq!(
        s.post_bearer("/auth/token/refresh", &hs_token).await.status,
        401
    );
}

#[tokio::test]
async fn hs256_secrets_rotate_with_previous_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let old =
        TestServer::start_toml(&config(dir.path(), &format!("jwt_secret = \"{SECRET}\""))).await;
    let token = old
        .register("secret-rotation@example.com", "a password")
        .await;
    old.stop().await;
    let new_secret = "a brand new secret of more than thirty-two bytes";
    let http = format!("jwt_secret = \"{new_secret}\"\njwt_previous_secrets = [\"{SECRET}\"]");
    let s = TestServer::start_toml(&config(dir.path(), &http)).await;
    let r = s.post_bearer("/auth/token/refresh", &token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The new token is signed with the new secret only.
    let fresh = r.token();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_exp = true;
    assert!(
        jsonwebtoken::decode::<Value>(
            &fresh,
            &jsonwebtoken::DecodingKey::from_secret(new_secret.as_bytes()),
            &validation
        )
        .is_ok()
    );
}

/// RFC 3339, `offset` from now.
fn rfc3339_from_now(offset: time::Duration) -> String {
    (time::OffsetDateTime::now_utc() + offset)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// A token a Medusa server with its template's `jwtSecret = "supersecret"`
/// issued keeps verifying during a migration with
/// `weak_previous_secrets_until`, and only until then; without the option
/// the short secret is refused, and `jwt_secret` itself is never short.
#[tokio::test]
async fn medusa_supersecret_tokens_verify_until_weak_previous_secrets_until() {
    let dir = tempfile::tempdir().unwrap();
    // The identity, and a token for it as Medusa would have signed it.
    let s =
        TestServer::start_toml(&config(dir.path(), &format!("jwt_secret = \"{SECRET}\""))).await;
    let ours = s.register("medusa-user@example.com", "a password").await;
    s.stop().await;
    let medusa = sign(&claims(&ours), "supersecret");

    // Not without the option: the short secret is refused as before...
    let path = dir.path().join("auth.toml");
    let weak = format!("jwt_secret = \"{SECRET}\"\njwt_previous_secrets = [\"supersecret\"]");
    std::fs::write(&path, config(dir.path(), &weak)).unwrap();
    let err = auth_server::check_config(&path).unwrap_err().to_string();
    assert!(
        err.contains("http.jwt_previous_secrets[0]: must be at least 32 bytes"),
        "{err}"
    );
    // ...and a server without it refuses the token.
    let s =
        TestServer::start_toml(&config(dir.path(), &format!("jwt_secret = \"{SECRET}\""))).await;
    assert_eq!(
        s.post_bearer("/auth/token/refresh", &medusa).await.status,
        401
    );
    s.stop().await;

    // With it: check-config accepts, and the token refreshes into one
    // signed with jwt_secret.
    let until = rfc3339_from_now(time::Duration::days(7));
    let http = format!("{weak}\nweak_previous_secrets_until = \"{until}\"");
    std::fs::write(&path, config(dir.path(), &http)).unwrap();
    auth_server::check_config(&path).unwrap();
    let s = TestServer::start_toml(&config(dir.path(), &http)).await;
    let r = s.post_bearer("/auth/token/refresh", &medusa).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let fresh = r.token();
    let validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    assert!(
        jsonwebtoken::decode::<Value>(
            &fresh,
            &jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()),
            &validation
        )
        .is_ok(),
        "new tokens are signed with jwt_secret"
    );
    assert_eq!(
        s.post_bearer("/auth/token/refresh", &sign(&claims(&ours), "supersecret!"))
            .await
            .status,
        401,
        "another short secret"
    );
    s.stop().await;

    // After the time (already past at start-up: accepted, with a warning),
    // the weak secret verifies nothing; tokens under jwt_secret still do.
    let past = rfc3339_from_now(-time::Duration::minutes(1));
    let http = format!("{weak}\nweak_previous_secrets_until = \"{past}\"");
    let s = TestServer::start_toml(&config(dir.path(), &http)).await;
    assert_eq!(
        s.post_bearer("/auth/token/refresh", &medusa).await.status,
        401
    );
    assert_eq!(
        s.post_bearer("/auth/token/refresh", &fresh).await.status,
        200
    );
    s.stop().await;

    // More than 30 days ahead, or a short jwt_secret: refused at start.
    for (http, named) in [
        (
            format!(
                "{weak}\nweak_previous_secrets_until = \"{}\"",
                rfc3339_from_now(time::Duration::days(31))
            ),
            "http.weak_previous_secrets_until: must be at most 30 days ahead",
        ),
        (
            format!("jwt_secret = \"supersecret\"\nweak_previous_secrets_until = \"{until}\""),
            "http.jwt_secret: must be at least 32 bytes",
        ),
    ] {
        std::fs::write(&path, config(dir.path(), &http)).unwrap();
        let err = auth_server::check_config(&path).unwrap_err().to_string();
        assert!(err.contains(named), "{http}: {err}");
    }
}

#[test]
fn bad_key_settings_fail_at_start_naming_the_option() {
    let dir = tempfile::tempdir().unwrap();
    for (http, named) in [
        ("jwt_algorithm = \"HS512\"".to_owned(), "http.jwt_algorithm"),
        (
            "jwt_algorithm = \"ES256\"".to_owned(),
            "http.jwt_private_key_file",
        ),
        (
            format!(
                "jwt_algorithm = \"ES256\"\njwt_private_key_file = \"{}\"",
                key("eddsa.pem")
            ),
            "http.jwt_private_key_file: not a PKCS#8 ES256 private key",
        ),
        (
            format!(
                "jwt_algorithm = \"ES256\"\njwt_private_key_file = \"{}\"",
                key("missing.pem")
            ),
            "http.jwt_private_key_file: cannot read",
        ),
        (
            format!(
                "jwt_secret = \"{SECRET}\"\njwt_previous_public_key_files = [\"{}\"]",
                key("es256.pem")
            ),
            "http.jwt_previous_public_key_files[0]",
        ),
    ] {
        let toml = config(dir.path(), &http);
        let path = dir.path().join("auth.toml");
        std::fs::write(&path, toml).unwrap();
        let err = auth_server::check_config(&path).unwrap_err().to_string();
        assert!(err.contains(named), "{http}: {err}");
    }
}
