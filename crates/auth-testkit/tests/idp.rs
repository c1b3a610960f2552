//! The fake identity provider, driven over real HTTP as a client would.
#![cfg(feature = "idp")]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use auth_testkit::idp::{Failure, FakeIdp, FakeIdpOptions, FakeUser};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::{Client, Response, StatusCode, Url, redirect};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// RFC 7636 appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const REDIRECT: &str = "http://localhost:8000/callback";

fn client() -> Client {
    Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .expect("client")
}

/// GETs `endpoint` with `params`; answers the response.
async fn get(endpoint: &str, params: &[(&str, &str)]) -> Response {
    let url = Url::parse_with_params(endpoint, params).expect("url");
    client().get(url).send().await.expect("request")
}

/// The query parameters of a redirect's `Location`.
fn redirect_params(response: &Response) -> (String, HashMap<String, String>) {
    assert_eq!(response.status(), StatusCode::FOUND, "not a redirect");
    let location = response.headers()["location"].to_str().expect("ascii");
    let url = Url::parse(location).expect("absolute location");
    let params = url.query_pairs().into_owned().collect();
    (location.to_owned(), params)
}

/// Runs the OIDC authorization step and answers the code.
async fn oidc_code(idp: &FakeIdp, client_id: &str, scope: &str, pkce: bool) -> String {
    let mut params = vec![
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", scope),
        ("state", "st-1"),
        ("nonce", "nonce-1"),
    ];
    if pkce {
        params.push(("code_challenge", CHALLENGE));
        params.push(("code_challenge_method", "S256"));
    }
    let response = get(&idp.authorization_url(), &params).await;
    let (_, query) = redirect_params(&response);
    assert_eq!(query["state"], "st-1");
    query["code"].clone()
}

async fn post_form(url: &str, form: &[(&str, &str)]) -> Response {
    client().post(url).form(form).send().await.expect("request")
}

async fn json(response: Response) -> Value {
    response.json().await.expect("a JSON body")
}

/// A token request for `code` with client_secret_post and the PKCE verifier.
async fn redeem_post(idp: &FakeIdp, code: &str, verifier: Option<&str>) -> Response {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("client_id", "web"),
        ("client_secret", "web-secret"),
    ];
    if let Some(verifier) = verifier {
        form.push(("code_verifier", verifier));
    }
    post_form(&idp.token_url(), &form).await
}

/// Verifies `token` against the fake's JWKS as a client would; answers its claims.
async fn verify(idp: &FakeIdp, audience: &str, token: &str) -> Result<Value, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("no kid")?;
    let jwks = json(client().get(idp.jwks_url()).send().await.expect("jwks")).await;
    let jwk = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .ok_or(format!("kid {kid} is not in the JWKS"))?;
    let s = |name: &str| jwk[name].as_str().expect("string component");
    let (key, alg) = match s("kty") {
        "RSA" => (
            DecodingKey::from_rsa_components(s("n"), s("e")),
            Algorithm::RS256,
        ),
        "EC" => (
            DecodingKey::from_ec_components(s("x"), s("y")),
            Algorithm::ES256,
        ),
        other => panic!("unexpected kty {other}"),
    };
    assert_eq!(s("alg"), format!("{alg:?}"));
    assert_eq!(header.alg, alg, "header alg matches the key");
    let mut validation = Validation::new(alg);
    validation.validate_nbf = true;
    validation.set_audience(&[audience]);
    validation.set_issuer(&[idp.issuer()]);
    let data = jsonwebtoken::decode::<Value>(token, &key.expect("valid jwk"), &validation)
        .map_err(|e| format!("{:?}", e.kind()))?;
    Ok(data.claims)
}

fn at_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(&Sha256::digest(access_token.as_bytes())[..16])
}

async fn web_idp() -> FakeIdp {
    let idp = FakeIdp::start().await;
    idp.add_client("web", Some("web-secret"));
    idp.set_user(FakeUser::new("42", "ada@example.com"));
    idp
}

/// A full OIDC login answering the token response body.
async fn oidc_login(idp: &FakeIdp) -> Value {
    let code = oidc_code(idp, "web", "openid email profile", true).await;
    let response = redeem_post(idp, &code, Some(VERIFIER)).await;
    assert_eq!(response.status(), StatusCode::OK);
    json(response).await
}

#[tokio::test]
async fn discovery_document() {
    let idp = FakeIdp::start().await;
    let url = idp.url();
    assert!(url.starts_with("http://127.0.0.1:") && !url.ends_with('/'));
    assert_eq!(idp.issuer(), url);
    let doc = json(get(&format!("{url}/.well-known/openid-configuration"), &[]).await).await;
    assert_eq!(doc["issuer"], url);
    assert_eq!(doc["authorization_endpoint"], idp.authorization_url());
    assert_eq!(
        doc["authorization_endpoint"],
        format!("{url}/o/oauth2/v2/auth")
    );
    assert_eq!(doc["token_endpoint"], idp.token_url());
    assert_eq!(doc["jwks_uri"], idp.jwks_url());
    assert_eq!(doc["userinfo_endpoint"], format!("{url}/userinfo"));
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256"])
    );
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_post", "client_secret_basic", "none"])
    );
    assert_eq!(idp.api_url(), format!("{url}/api"));
    assert_eq!(
        idp.github_authorization_url(),
        format!("{url}/login/oauth/authorize")
    );
    assert_eq!(
        idp.github_token_url(),
        format!("{url}/login/oauth/access_token")
    );

    let mut options = FakeIdpOptions::default();
    options.issuer = Some("https://accounts.example.com".into());
    let idp = FakeIdp::start_with(options).await;
    assert_eq!(idp.issuer(), "https://accounts.example.com");
    let doc = json(
        get(
            &format!("{}/.well-known/openid-configuration", idp.url()),
            &[],
        )
        .await,
    )
    .await;
    assert_eq!(doc["issuer"], "https://accounts.example.com");
}

#[tokio::test]
async fn oidc_code_flow_with_pkce_and_client_secret_post() {
    let idp = web_idp().await;
    let body = oidc_login(&idp).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "openid email profile");
    let access_token = body["access_token"].as_str().expect("access_token");
    let id_token = body["id_token"].as_str().expect("id_token");

    let claims = verify(&idp, "web", id_token)
        .await
        .expect("the id_token verifies");
    assert_eq!(claims["iss"], idp.issuer());
    assert_eq!(claims["aud"], "web");
    assert_eq!(claims["azp"], "web");
    assert_eq!(claims["sub"], "42");
    assert_eq!(claims["email"], "ada@example.com");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["name"], "Test User");
    assert_eq!(claims["given_name"], "Test");
    assert_eq!(claims["family_name"], "User");
    assert!(claims["picture"].is_string());
    assert_eq!(claims["nonce"], "nonce-1");
    assert_eq!(claims["at_hash"], at_hash(access_token));
    let (iat, exp) = (
        claims["iat"].as_i64().expect("iat"),
        claims["exp"].as_i64().expect("exp"),
    );
    assert_eq!(exp - iat, 3600);
    let header = jsonwebtoken::decode_header(id_token).expect("header");
    assert_eq!(header.kid.as_deref(), Some("test-rsa-a"));

    let request = idp.last_token_request().expect("recorded");
    assert_eq!(request.form["client_secret"], "web-secret");
    assert_eq!(request.form["code_verifier"], VERIFIER);
    assert_eq!(request.basic_auth, None);

    // The access token opens /userinfo, only as Bearer.
    let info = client()
        .get(format!("{}/userinfo", idp.url()))
        .bearer_auth(access_token)
        .send()
        .await
        .expect("userinfo");
    assert_eq!(info.status(), StatusCode::OK);
    let info = json(info).await;
    assert_eq!(info["sub"], "42");
    assert_eq!(info["email"], "ada@example.com");
    let info = client()
        .get(format!("{}/userinfo", idp.url()))
        .bearer_auth("nope")
        .send()
        .await
        .expect("userinfo");
    assert_eq!(info.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn codes_are_single_use_and_bound_to_their_request() {
    let idp = web_idp().await;
    let code = oidc_code(&idp, "web", "openid", false).await;
    assert_eq!(
        redeem_post(&idp, &code, None).await.status(),
        StatusCode::OK
    );
    let again = redeem_post(&idp, &code, None).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(again).await["error"], "invalid_grant");

    // Another redirect_uri.
    let code = oidc_code(&idp, "web", "openid", false).await;
    let response = post_form(
        &idp.token_url(),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://localhost:8000/other"),
            ("client_id", "web"),
            ("client_secret", "web-secret"),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(response).await["error"], "invalid_grant");

    // A verifier without a challenge: no downgrade.
    let code = oidc_code(&idp, "web", "openid", false).await;
    let response = redeem_post(&idp, &code, Some(VERIFIER)).await;
    assert_eq!(json(response).await["error"], "invalid_grant");

    // Wrong secret, no secret.
    let code = oidc_code(&idp, "web", "openid", false).await;
    let response = post_form(
        &idp.token_url(),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", "web"),
            ("client_secret", "wrong"),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json(response).await["error"], "invalid_client");
    let response = post_form(
        &idp.token_url(),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", "web"),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // The code survived the failed client authentications.
    assert_eq!(
        redeem_post(&idp, &code, None).await.status(),
        StatusCode::OK
    );

    // Not a form.
    let response = client()
        .post(idp.token_url())
        .json(&serde_json::json!({"grant_type": "authorization_code"}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(response).await["error"], "invalid_request");
}

#[tokio::test]
async fn pkce_verifier_is_checked() {
    let idp = web_idp().await;
    let code = oidc_code(&idp, "web", "openid", true).await;
    let response = redeem_post(&idp, &code, None).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(response).await["error"], "invalid_grant");

    let code = oidc_code(&idp, "web", "openid", true).await;
    let wrong = "x".repeat(43);
    let response = redeem_post(&idp, &code, Some(&wrong)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(response).await["error"], "invalid_grant");
    // The failed attempt spent the code.
    let response = redeem_post(&idp, &code, Some(VERIFIER)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn public_clients_must_use_pkce() {
    let idp = FakeIdp::start().await;
    idp.add_client("spa", None);
    let params = [
        ("client_id", "spa"),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("state", "s"),
    ];
    let response = get(&idp.authorization_url(), &params).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(response).await["error"], "invalid_request");

    let code = oidc_code(&idp, "spa", "email", true).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("client_id", "spa"),
        ("code_verifier", VERIFIER),
    ];
    let response = post_form(&idp.token_url(), &form).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = json(response).await;
    assert!(body["access_token"].is_string());
    assert!(
        body.get("id_token").is_none(),
        "no openid scope, no id_token"
    );

    // A public client may not present a secret.
    let code = oidc_code(&idp, "spa", "openid", true).await;
    let mut form = form.to_vec();
    form[1].1 = &code;
    form.push(("client_secret", "anything"));
    let response = post_form(&idp.token_url(), &form).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn client_secret_basic_is_form_urlencoded_first() {
    let idp = FakeIdp::start().await;
    let (id, secret) = ("web app", "s:e/c r+t%");
    idp.add_client(id, Some(secret));
    let code = oidc_code(&idp, id, "openid", false).await;
    // RFC 6749 §2.3.1: urlencode each, then base64 "id:secret".
    let credentials = STANDARD.encode("web+app:s%3Ae%2Fc+r%2Bt%25");
    let send = |code: String, credentials: String| {
        let token_url = idp.token_url();
        async move {
            client()
                .post(token_url)
                .header("Authorization", format!("Basic {credentials}"))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT),
                ])
                .send()
                .await
                .expect("request")
        }
    };
    let response = send(code, credentials.clone()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = json(response).await;
    let claims = verify(&idp, id, body["id_token"].as_str().expect("id_token"))
        .await
        .expect("verifies");
    assert_eq!(claims["aud"], id);
    assert!(claims.get("nonce").is_some());
    let request = idp.last_token_request().expect("recorded");
    assert_eq!(request.basic_auth, Some((id.to_owned(), secret.to_owned())));
    assert!(!request.form.contains_key("client_secret"));

    // Unencoded credentials do not authenticate.
    let code = oidc_code(&idp, id, "openid", false).await;
    let response = send(code, STANDARD.encode(format!("{id}:{secret}"))).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key("www-authenticate"));
    assert_eq!(json(response).await["error"], "invalid_client");
}

#[tokio::test]
async fn authorization_requests_are_checked() {
    let idp = web_idp().await;
    let base = [
        ("client_id", "web"),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("state", "s"),
    ];
    let without = |name: &str| {
        base.iter()
            .copied()
            .filter(|(k, _)| *k != name)
            .collect::<Vec<_>>()
    };
    for name in ["client_id", "redirect_uri", "response_type", "state"] {
        let response = get(&idp.authorization_url(), &without(name)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "without {name}");
        assert_eq!(
            json(response).await["error"],
            "invalid_request",
            "without {name}"
        );
    }
    let mut unknown = base.to_vec();
    unknown[0].1 = "nobody";
    let response = get(&idp.authorization_url(), &unknown).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(response).await["error"], "invalid_client");
    let mut token = base.to_vec();
    token[2].1 = "token";
    assert_eq!(
        get(&idp.authorization_url(), &token).await.status(),
        StatusCode::BAD_REQUEST
    );
    let mut plain = base.to_vec();
    plain.extend([
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "plain"),
    ]);
    assert_eq!(
        get(&idp.authorization_url(), &plain).await.status(),
        StatusCode::BAD_REQUEST
    );
    let mut relative = base.to_vec();
    relative[1].1 = "/callback";
    assert_eq!(
        get(&idp.authorization_url(), &relative).await.status(),
        StatusCode::BAD_REQUEST
    );

    // A redirect_uri with a query keeps it.
    let mut with_query = base.to_vec();
    with_query[1].1 = "https://app.example.com/cb?x=1";
    let (location, query) = redirect_params(&get(&idp.authorization_url(), &with_query).await);
    assert!(
        location.starts_with("https://app.example.com/cb?x=1&code="),
        "{location}"
    );
    assert_eq!(query["x"], "1");
    assert_eq!(query["code"].len(), 32);
}

#[tokio::test]
async fn github_flow_answers_json_or_form() {
    let idp = FakeIdp::start().await;
    idp.add_client("gh", Some("gh-secret"));
    let mut user = FakeUser::new("12345", "ada@example.com");
    user.login = "ada".into();
    user.company = Some("Analytical Engines".into());
    user.github_public_email = None;
    user.github_emails
        .push(("ada@users.noreply.github.com".into(), false, true));
    idp.set_user(user);

    let code = |idp: &FakeIdp| {
        let url = idp.github_authorization_url();
        async move {
            let params = [
                ("client_id", "gh"),
                ("redirect_uri", REDIRECT),
                ("scope", "read:user user:email"),
                ("state", "st"),
            ];
            let (_, query) = redirect_params(&get(&url, &params).await);
            assert_eq!(query["state"], "st");
            query["code"].clone()
        }
    };
    let form = |code: &str| {
        vec![
            ("client_id", "gh".to_owned()),
            ("client_secret", "gh-secret".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", REDIRECT.to_owned()),
            ("grant_type", "authorization_code".to_owned()),
        ]
    };

    let c = code(&idp).await;
    let response = client()
        .post(idp.github_token_url())
        .header("Accept", "application/json")
        .form(&form(&c))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let body = json(response).await;
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["scope"], "read:user,user:email");
    assert!(body.get("id_token").is_none());
    let access_token = body["access_token"].as_str().expect("token").to_owned();
    assert_eq!(
        idp.last_token_request()
            .expect("recorded")
            .accept
            .as_deref(),
        Some("application/json")
    );

    let c = code(&idp).await;
    let response = client()
        .post(idp.github_token_url())
        .form(&form(&c))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        content_type.starts_with("application/x-www-form-urlencoded"),
        "{content_type}"
    );
    let text = response.text().await.expect("body");
    let fields: HashMap<String, String> = Url::parse(&format!("http://x/?{text}"))
        .expect("url")
        .query_pairs()
        .into_owned()
        .collect();
    assert!(fields["access_token"].starts_with("gho_"));
    assert_eq!(fields["token_type"], "bearer");
    assert_eq!(fields["scope"], "read:user,user:email");

    // The API.
    let api = |path: &str, auth: Option<String>| {
        let url = format!("{}{path}", idp.api_url());
        async move {
            let mut request = client().get(url).header("User-Agent", "auth-testkit-tests");
            if let Some(auth) = auth {
                request = request.header("Authorization", auth);
            }
            request.send().await.expect("request")
        }
    };
    let response = api("/user", Some(format!("token {access_token}"))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let me = json(response).await;
    assert_eq!(me["id"], 12345);
    assert_eq!(me["login"], "ada");
    assert_eq!(me["name"], "Test User");
    assert_eq!(me["email"], Value::Null);
    assert_eq!(me["html_url"], "https://github.com/ada");
    assert_eq!(me["company"], "Analytical Engines");
    assert_eq!(me["two_factor_authentication"], false);
    assert!(me["avatar_url"].is_string());

    let response = api("/user/emails", Some(format!("Bearer {access_token}"))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let emails = json(response).await;
    assert_eq!(
        emails,
        serde_json::json!([
            {"email": "ada@example.com", "primary": true, "verified": true, "visibility": "private"},
            {"email": "ada@users.noreply.github.com", "primary": false, "verified": true, "visibility": null},
        ])
    );

    let response = api("/user", Some("token wrong".into())).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json(response).await["message"], "Bad credentials");
    assert_eq!(api("/user", None).await.status(), StatusCode::UNAUTHORIZED);
    let no_agent = client()
        .get(format!("{}/user", idp.api_url()))
        .header("Authorization", format!("token {access_token}"))
        .send()
        .await
        .expect("request");
    assert_eq!(no_agent.status(), StatusCode::FORBIDDEN);

    // Injected failures on the GitHub side.
    idp.inject(Failure::ApiStatus(502));
    assert_eq!(
        api("/user/emails", Some(format!("token {access_token}")))
            .await
            .status(),
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(
        api("/user/emails", Some(format!("token {access_token}")))
            .await
            .status(),
        StatusCode::OK
    );

    let c = code(&idp).await;
    idp.inject(Failure::TokenOkWithError);
    let response = client()
        .post(idp.github_token_url())
        .header("Accept", "application/json")
        .form(&form(&c))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let body = json(response).await;
    assert_eq!(body["error"], "bad_verification_code");
    assert_eq!(
        body["error_description"],
        "The code passed is incorrect or expired."
    );
    assert_eq!(idp.requests("/login/oauth/access_token"), 3);
    assert_eq!(idp.requests("/api/user"), 4);
    assert_eq!(idp.requests("/api/user/emails"), 3);
}

#[tokio::test]
async fn injected_authorize_and_token_failures() {
    let idp = web_idp().await;
    idp.inject(Failure::ErrorRedirect {
        error: "access_denied".into(),
        description: "The user said no".into(),
        uri: "https://example.com/why".into(),
    });
    let params = [
        ("client_id", "web"),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("state", "st-9"),
    ];
    let (location, query) = redirect_params(&get(&idp.authorization_url(), &params).await);
    assert!(location.starts_with(REDIRECT));
    assert_eq!(query["error"], "access_denied");
    assert_eq!(query["error_description"], "The user said no");
    assert_eq!(query["error_uri"], "https://example.com/why");
    assert_eq!(query["state"], "st-9");
    assert!(!query.contains_key("code"));
    // One-shot.
    let (_, query) = redirect_params(&get(&idp.authorization_url(), &params).await);
    assert!(query.contains_key("code"));

    let code = oidc_code(&idp, "web", "openid", true).await;
    idp.inject(Failure::TokenStatus(503));
    let response = redeem_post(&idp, &code, Some(VERIFIER)).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json(response).await["error"], "invalid_grant");

    idp.inject(Failure::Slow(Duration::from_millis(300)));
    let started = Instant::now();
    let response = redeem_post(&idp, &code, Some(VERIFIER)).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the code survived the injected 503"
    );
}

#[tokio::test]
async fn injected_id_token_failures() {
    let idp = web_idp().await;
    let cases: [(Failure, Option<&str>); 5] = [
        (Failure::BadSignature, Some("InvalidSignature")),
        (Failure::WrongIssuer, Some("InvalidIssuer")),
        (Failure::WrongAudience, Some("InvalidAudience")),
        (Failure::Expired, Some("ExpiredSignature")),
        (Failure::NotYetValid, Some("ImmatureSignature")),
    ];
    for (failure, expected) in cases {
        idp.inject(failure.clone());
        let body = oidc_login(&idp).await;
        let result = verify(&idp, "web", body["id_token"].as_str().expect("id_token")).await;
        assert_eq!(result.err().as_deref(), expected, "{failure:?}");
    }

    idp.inject(Failure::UnknownKid);
    let body = oidc_login(&idp).await;
    let err = verify(&idp, "web", body["id_token"].as_str().expect("id_token"))
        .await
        .expect_err("unknown kid");
    assert!(err.contains("unknown-kid"), "{err}");

    // Failures of different kinds combine on one token.
    idp.inject(Failure::WrongNonce);
    idp.inject(Failure::BadAtHash);
    let body = oidc_login(&idp).await;
    let claims = verify(&idp, "web", body["id_token"].as_str().expect("id_token"))
        .await
        .expect("verifies");
    assert_ne!(claims["nonce"], "nonce-1");
    assert_ne!(
        claims["at_hash"],
        at_hash(body["access_token"].as_str().expect("token"))
    );

    // And are one-shot.
    let body = oidc_login(&idp).await;
    let claims = verify(&idp, "web", body["id_token"].as_str().expect("id_token"))
        .await
        .expect("verifies");
    assert_eq!(claims["nonce"], "nonce-1");
}

#[tokio::test]
async fn key_rotation_and_es256() {
    let idp = web_idp().await;
    let jwks = json(get(&idp.jwks_url(), &[]).await).await;
    assert_eq!(jwks["keys"].as_array().expect("keys").len(), 1);
    assert_eq!(jwks["keys"][0]["kid"], "test-rsa-a");
    assert_eq!(jwks["keys"][0]["use"], "sig");
    idp.rotate_key();
    let jwks = json(get(&idp.jwks_url(), &[]).await).await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid"))
        .collect();
    assert_eq!(kids, ["test-rsa-a", "test-rsa-b"]);
    let body = oidc_login(&idp).await;
    let id_token = body["id_token"].as_str().expect("id_token");
    assert_eq!(kid_of(id_token), "test-rsa-b");
    verify(&idp, "web", id_token)
        .await
        .expect("verifies with key B");

    let mut options = FakeIdpOptions::default();
    options.es256 = true;
    let idp = FakeIdp::start_with(options).await;
    idp.add_client("web", Some("web-secret"));
    let jwks = json(get(&idp.jwks_url(), &[]).await).await;
    assert_eq!(
        jwks,
        serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": "test-ec-a", "use": "sig", "alg": "ES256",
            "x": jwks["keys"][0]["x"], "y": jwks["keys"][0]["y"],
        }]})
    );
    let doc = json(
        get(
            &format!("{}/.well-known/openid-configuration", idp.url()),
            &[],
        )
        .await,
    )
    .await;
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );
    let body = oidc_login(&idp).await;
    let id_token = body["id_token"].as_str().expect("id_token");
    assert_eq!(kid_of(id_token), "test-ec-a");
    let claims = verify(&idp, "web", id_token).await.expect("ES256 verifies");
    assert_eq!(
        claims["at_hash"],
        at_hash(body["access_token"].as_str().expect("token"))
    );
    idp.inject(Failure::BadSignature);
    let body = oidc_login(&idp).await;
    let result = verify(&idp, "web", body["id_token"].as_str().expect("id_token")).await;
    assert_eq!(result.err().as_deref(), Some("InvalidSignature"));
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .expect("header")
        .kid
        .expect("kid")
}

#[tokio::test]
async fn requests_are_counted_by_path() {
    let idp = web_idp().await;
    assert_eq!(idp.requests("/token"), 0);
    oidc_login(&idp).await;
    oidc_login(&idp).await;
    assert_eq!(idp.requests("/o/oauth2/v2/auth"), 2);
    assert_eq!(idp.requests("/token"), 2);
    assert_eq!(idp.requests("/jwks"), 0);
    get(&format!("{}/nowhere", idp.url()), &[("a", "b")]).await;
    assert_eq!(idp.requests("/nowhere"), 1);
    assert_eq!(idp.requests("/nowhere?a=b"), 0);
}

#[tokio::test]
async fn dropping_the_fake_stops_it() {
    let idp = web_idp().await;
    let client = client();
    let url = format!("{}/jwks", idp.url());
    assert!(
        client
            .get(&url)
            .send()
            .await
            .expect("up")
            .status()
            .is_success()
    );
    drop(idp);
    tokio::task::yield_now().await;
    // Neither a new connection nor the kept-alive one answers.
    assert!(client.get(&url).send().await.is_err());
}

#[test]
fn fake_user_defaults() {
    let user = FakeUser::new("1234", "a@example.com");
    assert_eq!(user.github_id, 1234);
    assert_eq!(user.login, "1234");
    assert_eq!(user.email.as_deref(), Some("a@example.com"));
    assert!(user.email_verified);
    assert_eq!(user.github_public_email.as_deref(), Some("a@example.com"));
    assert_eq!(
        user.github_emails,
        vec![("a@example.com".to_owned(), true, true)]
    );
    let other = FakeUser::new("google-oauth2|abc", "b@example.com");
    assert!(other.github_id > 0);
    assert_eq!(
        other.github_id,
        FakeUser::new("google-oauth2|abc", "c@example.com").github_id
    );
}
