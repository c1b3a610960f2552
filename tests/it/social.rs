//! Social login over real HTTP: the server and the fake identity provider,
//! both on loopback. Every provider kind (google, github, oidc) runs the same
//! flows; what differs is configured in `Kind`.

use auth_testkit::idp::{Failure, FakeIdp, FakeIdpOptions, FakeUser};
use serde_json::{Value, json};

use crate::support::{EMAILPASS, Reply, TestServer, claims as claims_of, sqlite_config};

/// The callback URL every instance is configured with (the storefront's page).
const CALLBACK: &str = "http://shop.test/auth/callback";
const OTHER_CALLBACK: &str = "http://admin.test/auth/callback";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Google,
    Github,
    Oidc,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Google, Kind::Github, Kind::Oidc];

    fn id(self) -> &'static str {
        match self {
            Kind::Google => "google",
            Kind::Github => "github",
            Kind::Oidc => "oidc",
        }
    }

    /// The external id the fake's user `u` has at this kind.
    fn entity_id(self, u: &FakeUser) -> String {
        match self {
            Kind::Github => u.github_id.to_string(),
            _ => u.sub.clone(),
        }
    }
}

struct Social {
    idp: FakeIdp,
    server: TestServer,
    _dir: tempfile::TempDir,
}

fn providers_toml(idp: &FakeIdp) -> String {
    format!(
        r#"
[[providers]]
resolve = "google"
id = "google"
[providers.options]
clientId = "google-client"
clientSecret = "google-secret"
callbackUrl = "{CALLBACK}"
callbackUrlAllowlist = ["{OTHER_CALLBACK}"]
issuer = "{issuer}"
authorizationUrl = "{auth}"
tokenUrl = "{token}"
jwksUrl = "{jwks}"
httpTimeoutMs = 1000

[[providers]]
resolve = "github"
id = "github"
[providers.options]
clientId = "github-client"
clientSecret = "github-secret"
callbackUrl = "{CALLBACK}"
callbackUrlAllowlist = ["{OTHER_CALLBACK}"]
authorizationUrl = "{gh_auth}"
tokenUrl = "{gh_token}"
apiUrl = "{api}"
httpTimeoutMs = 1000

[[providers]]
resolve = "oidc"
id = "oidc"
[providers.options]
issuer = "{issuer}"
client_id = "oidc-client"
callback_url = "{CALLBACK}"
allowed_callback_urls = ["{OTHER_CALLBACK}"]
display_name = "Company SSO"
http_timeout_ms = 1000

[[providers]]
resolve = "oidc"
id = "oidc2"
[providers.options]
issuer = "{issuer}"
client_id = "oidc-client"
callback_url = "{CALLBACK}"
require_verified_email = false
"#,
        issuer = idp.issuer(),
        auth = idp.authorization_url(),
        token = idp.token_url(),
        jwks = idp.jwks_url(),
        gh_auth = idp.github_authorization_url(),
        gh_token = idp.github_token_url(),
        api = idp.api_url(),
    )
}

impl Social {
    async fn start() -> Social {
        Self::start_with(FakeIdpOptions::default()).await
    }

    async fn start_with(options: FakeIdpOptions) -> Social {
        let idp = FakeIdp::start_with(options).await;
        idp.add_client("google-client", Some("google-secret"));
        idp.add_client("github-client", Some("github-secret"));
        // A public client: PKCE alone protects its exchange.
        idp.add_client("oidc-client", None);
        idp.set_user(FakeUser::new("1001", "ada@example.com"));
        let dir = tempfile::tempdir().expect("tempdir");
        let toml = sqlite_config(
            dir.path(),
            &format!("{EMAILPASS}\n{}", providers_toml(&idp)),
        );
        let server = TestServer::start_toml(&toml).await;
        Social {
            idp,
            server,
            _dir: dir,
        }
    }

    /// Starts a login: `(status, body)`.
    async fn begin(&self, kind_id: &str, bearer: Option<&str>, body: Value) -> Reply {
        let mut req = self
            .server
            .client
            .post(self.server.url(&format!("/auth/customer/{kind_id}")))
            .json(&body);
        if let Some(t) = bearer {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        Reply::of(req.send().await.expect("login request")).await
    }

    /// Follows `location` at the fake: the query it sends the user back with.
    async fn authorize(&self, location: &str) -> String {
        let res = self
            .server
            .client
            .get(location)
            .send()
            .await
            .expect("authorize request");
        assert_eq!(res.status().as_u16(), 302, "authorize: {location}");
        let back = res.headers()["location"].to_str().unwrap().to_owned();
        let url = reqwest::Url::parse(&back).unwrap();
        url.query().unwrap_or_default().to_owned()
    }

    async fn callback(&self, kind_id: &str, query: &str) -> Reply {
        self.callback_with(kind_id, query, None).await
    }

    /// The callback, with `header` (`(name, value)`: the caller's bearer
    /// token or session cookie) if given.
    async fn callback_with(
        &self,
        kind_id: &str,
        query: &str,
        header: Option<(&str, String)>,
    ) -> Reply {
        let mut req = self.server.client.get(
            self.server
                .url(&format!("/auth/customer/{kind_id}/callback?{query}")),
        );
        if let Some((name, value)) = header {
            req = req.header(name, value);
        }
        Reply::of(req.send().await.expect("callback request")).await
    }

    /// A login up to the identity provider's redirect back: the callback query.
    async fn until_callback(&self, kind_id: &str, bearer: Option<&str>) -> String {
        let r = self.begin(kind_id, bearer, json!({})).await;
        assert_eq!(r.status, 200, "login {kind_id}: {}", r.body);
        let location = r.body["location"].as_str().expect("location").to_owned();
        self.authorize(&location).await
    }

    /// A whole login: the callback's reply. A `bearer` goes with both the
    /// login and the callback, as a client linking a provider sends it
    /// (linking needs proof at both ends).
    async fn full(&self, kind_id: &str, bearer: Option<&str>) -> Reply {
        let q = self.until_callback(kind_id, bearer).await;
        let header = bearer.map(|t| ("authorization", format!("Bearer {t}")));
        self.callback_with(kind_id, &q, header).await
    }

    /// How many provider identities auth identity `id` (a JSON string) has.
    async fn provider_identities_of(&self, id: &Value) -> usize {
        self.server
            .service
            .module()
            .retrieve_auth_identity(id.as_str().expect("an id"))
            .await
            .expect("the identity")
            .provider_identities
            .len()
    }

    /// Auth identities in the server's database.
    async fn identity_count(&self) -> usize {
        let url = format!("sqlite://{}/auth.db", self._dir.path().display());
        let pool = sqlx::SqlitePool::connect(&url)
            .await
            .expect("open the test database");
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM auth_identity")
            .fetch_one(&pool)
            .await
            .expect("count identities");
        pool.close().await;
        usize::try_from(n).expect("a count")
    }
}

async fn get(server: &TestServer, path: &str) -> Reply {
    Reply::of(
        server
            .client
            .get(server.url(path))
            .send()
            .await
            .expect("GET"),
    )
    .await
}

fn query_param(query: &str, name: &str) -> Option<String> {
    let url = reqwest::Url::parse(&format!("http://x/?{query}")).expect("a query");
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn a_full_flow_gives_a_token_with_the_users_metadata() {
    let s = Social::start().await;
    for kind in Kind::ALL {
        let r = s.full(kind.id(), None).await;
        assert_eq!(r.status, 200, "{kind:?}: {}", r.body);
        let claims = claims_of(&r.token());
        assert_eq!(claims["auth_provider"], kind.id(), "{kind:?}");
        assert_eq!(claims["actor_id"], "", "{kind:?}");
        assert_eq!(claims["actor_type"], "customer");
        let meta = &claims["user_metadata"];
        assert_eq!(meta["email"], "ada@example.com", "{kind:?}: {meta}");
        match kind {
            Kind::Google => {
                for key in ["name", "picture", "given_name", "family_name"] {
                    assert!(meta[key].is_string(), "google {key}: {meta}");
                }
            }
            Kind::Github => {
                for key in [
                    "profile_url",
                    "avatar",
                    "name",
                    "company",
                    "two_factor_authentication",
                ] {
                    assert!(meta.get(key).is_some(), "github {key}: {meta}");
                }
            }
            Kind::Oidc => assert!(meta["name"].is_string(), "oidc: {meta}"),
        }
        let user = FakeUser::new("1001", "ada@example.com");
        let found = s
            .server
            .service
            .module()
            .find_provider_identity(kind.id(), &kind.entity_id(&user))
            .await
            .unwrap()
            .expect("the provider identity is stored");
        // Identity-provider tokens are never kept.
        assert!(found.provider_metadata.is_none());
        let stored = s
            .server
            .service
            .module()
            .identity_store()
            .find_provider_identity(kind.id(), &kind.entity_id(&user))
            .await
            .unwrap()
            .unwrap();
        assert!(stored.provider_metadata.is_none(), "{kind:?}: {stored:?}");
        assert!(!r.body.to_string().contains("access"), "{}", r.body);
    }
    // Three kinds, three identities: nothing is linked by email.
    assert_eq!(s.identity_count().await, 3);
}

#[tokio::test]
async fn a_returning_user_keeps_its_identity_and_two_users_get_two() {
    let s = Social::start().await;
    for kind in Kind::ALL {
        s.idp.set_user(FakeUser::new("2001", "bob@example.com"));
        let first = claims_of(&s.full(kind.id(), None).await.token());
        let mut renamed = FakeUser::new("2001", "bob@example.com");
        renamed.name = Some("Robert".into());
        renamed.github_public_email = Some("bob@example.com".into());
        s.idp.set_user(renamed);
        let again = claims_of(&s.full(kind.id(), None).await.token());
        assert_eq!(
            first["auth_identity_id"], again["auth_identity_id"],
            "{kind:?}"
        );
        // user_metadata is refreshed at every login.
        assert_eq!(again["user_metadata"]["name"], "Robert", "{kind:?}");
        s.idp.set_user(FakeUser::new("2002", "cy@example.com"));
        let other = claims_of(&s.full(kind.id(), None).await.token());
        assert_ne!(
            first["auth_identity_id"], other["auth_identity_id"],
            "{kind:?}"
        );
    }
}

#[tokio::test]
async fn the_providers_list_shows_redirect_flows_and_register_is_refused() {
    let s = Social::start().await;
    let r = get(&s.server, "/auth/customer/providers").await;
    assert_eq!(r.status, 200);
    let list = r.body["providers"].as_array().unwrap();
    let find = |id: &str| list.iter().find(|p| p["id"] == id).cloned().unwrap();
    assert_eq!(
        find("google"),
        json!({"id": "google", "identifier": "google", "display_name": "Google Authentication", "flow": "redirect"})
    );
    assert_eq!(
        find("github"),
        json!({"id": "github", "identifier": "github", "display_name": "Github Authentication", "flow": "redirect"})
    );
    assert_eq!(find("oidc")["display_name"], "Company SSO");
    assert_eq!(find("oidc2")["display_name"], "OpenID Connect");
    for (id, msg) in [
        (
            "google",
            "Google does not support registration. Use method `authenticate` instead.",
        ),
        (
            "github",
            "Github does not support registration. Use method `authenticate` instead.",
        ),
        (
            "oidc",
            "OIDC does not support registration. Use method `authenticate` instead.",
        ),
    ] {
        let r = s
            .server
            .post_json(&format!("/auth/customer/{id}/register"), json!({}))
            .await;
        assert_eq!(r.status, 401, "{id}");
        assert_eq!(r.body, json!({"type": "unauthorized", "message": msg}));
    }
}

#[tokio::test]
async fn logins_carry_state_pkce_and_a_nonce() {
    let s = Social::start().await;
    for kind in Kind::ALL {
        let r = s.begin(kind.id(), None, json!({})).await;
        let location = reqwest::Url::parse(r.body["location"].as_str().unwrap()).unwrap();
        let q = location.query().unwrap();
        let state = query_param(q, "state").unwrap();
        assert_eq!(state.len(), 64, "{kind:?}");
        assert!(
            state
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(
            query_param(q, "code_challenge_method").as_deref(),
            Some("S256")
        );
        assert_eq!(query_param(q, "redirect_uri").as_deref(), Some(CALLBACK));
        assert_eq!(
            query_param(q, "nonce").is_some(),
            kind != Kind::Github,
            "{kind:?}"
        );
        let scope = query_param(q, "scope").unwrap();
        match kind {
            Kind::Github => assert_eq!(scope, "read:user user:email"),
            _ => assert_eq!(scope, "openid email profile"),
        }
    }
    // The public client sent its verifier and no secret; google sent its secret in the form.
    s.full("oidc", None).await.token();
    let t = s.idp.last_token_request().unwrap();
    assert!(t.form.contains_key("code_verifier"));
    assert!(!t.form.contains_key("client_secret") && t.basic_auth.is_none());
    s.full("google", None).await.token();
    let t = s.idp.last_token_request().unwrap();
    assert_eq!(
        t.form.get("client_secret").map(String::as_str),
        Some("google-secret")
    );
}

#[tokio::test]
async fn callback_errors_are_medusas_and_store_nothing() {
    let s = Social::start().await;
    for kind in Kind::ALL {
        let id = kind.id();
        let r = s
            .callback(id, "error=access_denied&error_description=The+user+said+no&error_uri=https%3A%2F%2Fidp.test%2Fe")
            .await;
        assert_eq!(r.status, 401, "{kind:?}");
        let expected = match kind {
            Kind::Oidc => "Authentication failed",
            _ => "The user said no, read more at: https://idp.test/e",
        };
        assert_eq!(r.body, json!({"type": "unauthorized", "message": expected}));
        let r = s.callback(id, "state=abc").await;
        assert_eq!(r.body["message"], "No code provided", "{kind:?}");
        let r = s.callback(id, "code=abc").await;
        assert_eq!(r.body["message"], "No state provided, or session expired");
        let r = s
            .callback(id, &format!("code=abc&state={}", "a".repeat(64)))
            .await;
        assert_eq!(r.status, 401);
        assert_eq!(r.body["message"], "No state provided, or session expired");
        // The state comes from the query only.
        let q = s.until_callback(id, None).await;
        let code = query_param(&q, "code").unwrap();
        let state = query_param(&q, "state").unwrap();
        let r = Reply::of(
            s.server
                .client
                .post(s.server.url(&format!("/auth/customer/{id}/callback")))
                .json(&json!({"code": code, "state": state}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.body["message"], "No state provided, or session expired");
        // The code may come in a POST body.
        let r = Reply::of(
            s.server
                .client
                .post(
                    s.server
                        .url(&format!("/auth/customer/{id}/callback?state={state}")),
                )
                .json(&json!({"code": code}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 200, "{kind:?}: {}", r.body);
    }
    assert_eq!(s.identity_count().await, 3);
    // A login's `error` query is refused before anything happens.
    let r = s
        .server
        .client
        .get(
            s.server
                .url("/auth/customer/google?error=x&error_description=d&error_uri=u"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(Reply::of(r).await.body["message"], "d, read more at: u");
}

/// Every failure the fake can inject, for the kinds it applies to.
fn failures(kind: Kind) -> Vec<Failure> {
    let mut all = vec![
        Failure::ErrorRedirect {
            error: "access_denied".into(),
            description: "denied".into(),
            uri: "https://idp.test/e".into(),
        },
        Failure::TokenStatus(400),
        Failure::TokenStatus(401),
        Failure::TokenStatus(500),
        Failure::TokenStatus(503),
        Failure::TokenOkWithError,
        Failure::Slow(std::time::Duration::from_millis(1500)),
    ];
    match kind {
        Kind::Github => all.extend([Failure::ApiStatus(401), Failure::ApiStatus(500)]),
        _ => all.extend([
            Failure::BadSignature,
            Failure::UnknownKid,
            Failure::WrongIssuer,
            Failure::WrongAudience,
            Failure::WrongNonce,
            Failure::Expired,
            Failure::NotYetValid,
            Failure::BadAtHash,
        ]),
    }
    all
}

#[tokio::test]
async fn every_injected_failure_is_a_401_that_stores_nothing() {
    let s = Social::start().await;
    for kind in Kind::ALL {
        for failure in failures(kind) {
            s.idp.set_user(FakeUser::new("3001", "eve@example.com"));
            s.idp.inject(failure.clone());
            let r = s.full(kind.id(), None).await;
            assert_eq!(r.status, 401, "{kind:?} {failure:?}: {}", r.body);
            let message = r.body["message"].as_str().unwrap().to_owned();
            match (&failure, kind) {
                (Failure::ErrorRedirect { .. }, Kind::Google | Kind::Github) => {
                    assert_eq!(message, "denied, read more at: https://idp.test/e");
                }
                _ => assert_eq!(message, "Authentication failed", "{kind:?} {failure:?}"),
            }
            assert_eq!(
                s.identity_count().await,
                0,
                "{kind:?} {failure:?} stored something"
            );
        }
    }
    // Unverified addresses.
    let mut unverified = FakeUser::new("3002", "mallory@example.com");
    unverified.email_verified = false;
    unverified.github_public_email = None;
    unverified.github_emails = vec![("mallory@example.com".into(), true, false)];
    s.idp.set_user(unverified);
    let r = s.full("google", None).await;
    assert_eq!(
        (r.status, r.body["message"].as_str()),
        (401, Some("Authentication failed"))
    );
    assert_eq!(s.identity_count().await, 0);
    // GitHub logs in without the unverified address.
    let r = s.full("github", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(claims_of(&r.token())["user_metadata"]["email"], Value::Null);
    // A clean login works afterwards, for every kind.
    s.idp.set_user(FakeUser::new("3003", "clean@example.com"));
    for kind in Kind::ALL {
        assert_eq!(s.full(kind.id(), None).await.status, 200, "{kind:?}");
    }
}

#[tokio::test]
async fn a_null_public_github_email_takes_the_primary_verified_one() {
    let s = Social::start().await;
    let mut u = FakeUser::new("4001", "public@example.com");
    u.github_public_email = None;
    u.github_emails = vec![
        ("old@example.com".into(), false, true),
        ("primary@example.com".into(), true, true),
    ];
    s.idp.set_user(u);
    let r = s.full("github", None).await;
    assert_eq!(
        claims_of(&r.token())["user_metadata"]["email"],
        "primary@example.com"
    );
}

#[tokio::test]
async fn states_are_single_use_and_bound_to_their_instance() {
    let s = Social::start().await;
    for kind in Kind::ALL {
        let q = s.until_callback(kind.id(), None).await;
        assert_eq!(s.callback(kind.id(), &q).await.status, 200, "{kind:?}");
        let replay = s.callback(kind.id(), &q).await;
        assert_eq!(replay.status, 401);
        assert_eq!(
            replay.body["message"],
            "No state provided, or session expired"
        );
    }
    let token_calls = s.idp.requests("/token") + s.idp.requests("/login/oauth/access_token");
    // A state minted by one instance is refused by every other one, before any
    // call to the identity provider, and stays usable where it belongs.
    let q = s.until_callback("oidc", None).await;
    for other in ["oidc2", "google", "github"] {
        let r = s.callback(other, &q).await;
        assert_eq!(
            r.body["message"], "No state provided, or session expired",
            "{other}"
        );
    }
    // Another actor type's route refuses it too (and spends it).
    let q2 = s.until_callback("google", None).await;
    let r = Reply::of(
        s.server
            .client
            .get(s.server.url(&format!("/auth/user/google/callback?{q2}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.body["message"], "No state provided, or session expired");
    assert_eq!(
        s.idp.requests("/token") + s.idp.requests("/login/oauth/access_token"),
        token_calls,
        "a foreign state reached the identity provider"
    );
    assert_eq!(s.callback("oidc", &q).await.status, 200);
}

#[tokio::test]
async fn callback_urls_outside_the_list_are_refused() {
    let s = Social::start().await;
    for kind in Kind::ALL {
        let r = s
            .begin(
                kind.id(),
                None,
                json!({"callback_url": "https://evil.test/steal"}),
            )
            .await;
        match kind {
            Kind::Oidc => {
                assert_eq!(r.status, 401);
                assert_eq!(
                    r.body,
                    json!({"type": "unauthorized", "message": "The provided callback URL is not allowed"})
                );
            }
            _ => {
                assert_eq!(r.status, 400, "{kind:?}");
                assert_eq!(
                    r.body,
                    json!({"type": "not_allowed", "message": "The provided callback_url is not allowed"})
                );
            }
        }
        // A listed one is used, through to the exchange.
        let r = s
            .begin(kind.id(), None, json!({"callback_url": OTHER_CALLBACK}))
            .await;
        let location = r.body["location"].as_str().unwrap().to_owned();
        let q = reqwest::Url::parse(&location).unwrap();
        assert_eq!(
            query_param(q.query().unwrap(), "redirect_uri").as_deref(),
            Some(OTHER_CALLBACK)
        );
        let back = s.authorize(&location).await;
        assert_eq!(s.callback(kind.id(), &back).await.status, 200, "{kind:?}");
        assert_eq!(
            s.idp.last_token_request().unwrap().form["redirect_uri"],
            OTHER_CALLBACK
        );
    }
    // The second oidc instance lists none: only its configured callback.
    let r = s
        .begin("oidc2", None, json!({"callback_url": OTHER_CALLBACK}))
        .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn linking_needs_proof_and_never_matches_emails() {
    let s = Social::start().await;
    // An emailpass customer with the same address as the Google user.
    let token = s
        .server
        .register("ada@example.com", "correct horse battery")
        .await;
    let ep_identity = claims_of(&token)["auth_identity_id"].clone();
    // Without proof: a separate identity, whatever the email.
    let r = s.full("google", None).await;
    let google_alone = claims_of(&r.token());
    assert_ne!(google_alone["auth_identity_id"], ep_identity);
    // An invalid bearer proves nothing.
    s.idp.set_user(FakeUser::new("5001", "ada@example.com"));
    let r = s.full("github", Some("not-a-token")).await;
    assert_ne!(claims_of(&r.token())["auth_identity_id"], ep_identity);

    // With proof: the new provider identity joins the caller's identity.
    s.idp.set_user(FakeUser::new("5002", "ada@example.com"));
    let login = s
        .server
        .login("ada@example.com", "correct horse battery")
        .await
        .token();
    let r = s.full("oidc", Some(&login)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let linked = claims_of(&r.token());
    assert_eq!(linked["auth_identity_id"], ep_identity);
    assert_eq!(linked["linked"], true);
    assert_eq!(linked["auth_provider"], "oidc");
    // A link is no new sign-in: the token stays on the caller's device.
    assert!(claims_of(&login)["device_id"].is_string());
    assert_eq!(linked["device_id"], claims_of(&login)["device_id"]);
    assert_eq!(s.provider_identities_of(&ep_identity).await, 2);
    // Logging in with it later reaches the same identity, without the claim.
    let again = claims_of(&s.full("oidc", None).await.token());
    assert_eq!(again["auth_identity_id"], ep_identity);
    assert!(again.get("linked").is_none());

    // An identity already attached elsewhere is refused with a clear 4xx.
    s.idp.set_user(FakeUser::new("1001", "ada@example.com"));
    let r = s.full("google", Some(&login)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["type"], "not_allowed");
    assert_eq!(
        r.body["message"],
        "This Google account is already linked to another auth identity"
    );
    assert_eq!(s.provider_identities_of(&ep_identity).await, 2);
}

#[tokio::test]
async fn a_password_change_ends_the_identitys_google_tokens() {
    let s = Social::start().await;
    s.server
        .register("lin@example.com", "first password 1")
        .await;
    let login = s
        .server
        .login("lin@example.com", "first password 1")
        .await
        .token();
    s.idp.set_user(FakeUser::new("6001", "lin@example.com"));
    let google = s.full("google", Some(&login)).await.token();
    assert_eq!(
        s.server
            .post_bearer("/auth/token/refresh", &google)
            .await
            .status,
        200
    );
    let reset = crate::reset::reset_token(&s.server, "customer", "lin@example.com").await;
    let r = crate::reset::update(
        &s.server,
        "customer",
        &reset,
        json!({"password": "second password 2"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        s.server
            .post_bearer("/auth/token/refresh", &google)
            .await
            .status,
        401
    );
    // A new Google login gives a working token again.
    let fresh = s.full("google", None).await.token();
    assert_eq!(
        s.server
            .post_bearer("/auth/token/refresh", &fresh)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn keys_are_fetched_once_across_many_logins() {
    let s = Social::start().await;
    for i in 0..20 {
        s.idp.set_user(FakeUser::new(
            &format!("70{i:02}"),
            &format!("u{i}@example.com"),
        ));
        assert_eq!(s.full("google", None).await.status, 200);
        assert_eq!(s.full("oidc", None).await.status, 200);
    }
    // google and oidc are two instances: one key-set fetch each; oidc's
    // discovery document once.
    assert_eq!(s.idp.requests("/jwks"), 2);
    assert_eq!(s.idp.requests("/.well-known/openid-configuration"), 1);
    // An unknown kid fetches the set again at most once a minute: the set
    // was fetched less than a minute ago, so not now.
    for _ in 0..3 {
        s.idp.inject(Failure::UnknownKid);
        assert_eq!(s.full("google", None).await.status, 401);
    }
    assert_eq!(s.idp.requests("/jwks"), 2);
}

#[tokio::test]
async fn es256_keys_verify_too() {
    let mut options = FakeIdpOptions::default();
    options.es256 = true;
    let s = Social::start_with(options).await;
    for kind in [Kind::Google, Kind::Oidc] {
        let r = s.full(kind.id(), None).await;
        assert_eq!(r.status, 200, "{kind:?}: {}", r.body);
    }
}

#[tokio::test]
async fn auth_methods_per_actor_applies_to_social_providers() {
    let idp = FakeIdp::start().await;
    idp.add_client("google-client", Some("google-secret"));
    idp.add_client("github-client", Some("github-secret"));
    idp.add_client("oidc-client", None);
    let dir = tempfile::tempdir().unwrap();
    let toml = sqlite_config(dir.path(), &providers_toml(&idp)).replace(
        "[http]\n",
        "[http]\nauth_methods_per_actor = { customer = [\"google\"] }\n",
    );
    let server = TestServer::start_toml(&toml).await;
    let r = server.post_json("/auth/customer/github", json!({})).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["message"],
        "The actor type customer is not allowed to use the auth provider github"
    );
    assert_eq!(
        server
            .post_json("/auth/customer/google", json!({}))
            .await
            .status,
        200
    );
    let r = get(&server, "/auth/customer/providers").await;
    assert_eq!(r.body["providers"].as_array().unwrap().len(), 1);
}

/// A server with one google instance, its options ending with `extra`.
async fn google_only(extra: &str) -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let toml = sqlite_config(
        dir.path(),
        &format!(
            "[[providers]]\nresolve = \"google\"\nid = \"google\"\n[providers.options]\n\
             clientId = \"google-client\"\nclientSecret = \"google-secret\"\n\
             callbackUrl = \"{CALLBACK}\"\n{extra}"
        ),
    );
    let server = TestServer::start_toml(&toml).await;
    (dir, server)
}

#[tokio::test]
async fn google_with_another_issuer_discovers_its_endpoints_once() {
    let idp = FakeIdp::start().await;
    idp.add_client("google-client", Some("google-secret"));
    idp.set_user(FakeUser::new("8001", "dora@example.com"));
    let (dir, server) = google_only(&format!("issuer = \"{}\"\n", idp.issuer())).await;
    // Nothing is fetched at start-up.
    assert_eq!(idp.requests("/.well-known/openid-configuration"), 0);
    let s = Social {
        idp,
        server,
        _dir: dir,
    };
    for _ in 0..3 {
        let r = s.full("google", None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            claims_of(&r.token())["user_metadata"]["email"],
            "dora@example.com"
        );
    }
    assert_eq!(s.idp.requests("/.well-known/openid-configuration"), 1);
    assert_eq!(s.idp.requests("/jwks"), 1);
}

#[tokio::test]
async fn the_default_google_location_is_built_offline() {
    let (_dir, server) = google_only("").await;
    let r = server.post_json("/auth/customer/google", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let location = r.body["location"].as_str().unwrap();
    assert!(
        location.starts_with("https://accounts.google.com/o/oauth2/v2/auth?"),
        "{location}"
    );
    let q = reqwest::Url::parse(location).unwrap();
    assert_eq!(
        query_param(q.query().unwrap(), "client_id").as_deref(),
        Some("google-client")
    );
    assert_eq!(
        query_param(q.query().unwrap(), "response_type").as_deref(),
        Some("code")
    );
}

impl Social {
    /// A whole login through `kind_id` as an admin user: the token.
    async fn user_login(&self, kind_id: &str) -> String {
        let r = Reply::of(
            self.server
                .client
                .post(self.server.url(&format!("/auth/user/{kind_id}")))
                .json(&json!({}))
                .send()
                .await
                .expect("login"),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let q = self
            .authorize(r.body["location"].as_str().expect("location"))
            .await;
        let r = Reply::of(
            self.server
                .client
                .get(
                    self.server
                        .url(&format!("/auth/user/{kind_id}/callback?{q}")),
                )
                .send()
                .await
                .expect("callback"),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.token()
    }
}

#[tokio::test]
async fn the_sso_user_route_creates_or_links_by_a_vouched_email_only() {
    let s = Social::start().await;
    let mut ada = FakeUser::new("3001", "ada@example.com");
    ada.given_name = Some("Ada".into());
    ada.family_name = Some("Lovelace".into());
    s.idp.set_user(ada);
    // A first SSO login creates the user from the profile.
    let token = s.user_login("google").await;
    let r = s.server.post_bearer("/auth/google/user", &token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let user = r.body["user"].clone();
    let user_id = user["id"].as_str().expect("an id").to_owned();
    assert!(user_id.starts_with("user_"), "{user}");
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["first_name"], "Ada");
    assert_eq!(user["last_name"], "Lovelace");
    // The client then refreshes: the token carries the new link.
    let refreshed = s.server.post_bearer("/auth/token/refresh", &token).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let claims = claims_of(&refreshed.token());
    assert_eq!(claims["actor_id"], user_id.as_str());
    assert_eq!(claims["app_metadata"]["user_id"], user_id.as_str());
    // Registered now: a second call is refused.
    let again = s
        .server
        .post_bearer("/auth/google/user", &refreshed.token())
        .await;
    assert_eq!(again.status, 400);
    assert_eq!(
        again.body,
        json!({"type": "invalid_data", "message": "The user is already registered and cannot create a new account."})
    );
    // An admin known to emailpass by an address and linked to a user: a
    // provider that vouches for that address links to the same user...
    let admin = s.server.register("boss@example.com", "a password").await;
    let admin_id = claims_of(&admin)["auth_identity_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let module = s.server.service.module();
    module
        .link_actor(&admin_id, "user", "user_existing")
        .await
        .unwrap();
    s.idp.set_user(FakeUser::new("3002", "boss@example.com"));
    let token = s.user_login("github").await;
    let r = s.server.post_bearer("/auth/github/user", &token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["user"]["id"], "user_existing", "{}", r.body);
    // ...and one that does not vouch for it gets a new user (oidc2 accepts
    // unverified addresses: `require_verified_email = false`).
    let mut unvouched = FakeUser::new("3003", "boss@example.com");
    unvouched.email_verified = false;
    s.idp.set_user(unvouched);
    let token = s.user_login("oidc2").await;
    assert_eq!(
        claims_of(&token)["user_metadata"]["email"],
        "boss@example.com"
    );
    assert!(
        claims_of(&token)["user_metadata"]
            .get("email_verified")
            .is_none()
    );
    let r = s.server.post_bearer("/auth/oidc2/user", &token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let new_id = r.body["user"]["id"].as_str().unwrap();
    assert!(
        new_id.starts_with("user_") && new_id != "user_existing",
        "{}",
        r.body
    );
}

#[tokio::test]
async fn the_sso_user_route_refuses_with_medusas_messages() {
    let s = Social::start_with(FakeIdpOptions::default()).await;
    let server = &s.server;
    // No bearer, a cookie only, a customer token: the bare 401.
    let r = server.post_json("/auth/google/user", json!({})).await;
    assert_eq!(
        (r.status, r.body.clone()),
        (401, json!({"message": "Unauthorized"}))
    );
    let customer = s.full("google", None).await.token();
    let r = server.post_bearer("/auth/google/user", &customer).await;
    assert_eq!(
        (r.status, r.body.clone()),
        (401, json!({"message": "Unauthorized"}))
    );
    let cookie = server.open_session(&s.user_login("google").await).await;
    let r = server.post_cookie("/auth/google/user", &cookie).await;
    assert_eq!(
        (r.status, r.body.clone()),
        (401, json!({"message": "Unauthorized"}))
    );
    // A google token on github's route: not solely from github.
    let google = s.user_login("google").await;
    let r = server.post_bearer("/auth/github/user", &google).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"type": "unauthorized", "message": "Only github identities can create a user account for this authentication context"})
    );
    // emailpass keeps no email in user_metadata.
    let r = server
        .post_json(
            "/auth/user/emailpass/register",
            json!({"email": "admin@example.com", "password": "a password"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = server.post_bearer("/auth/emailpass/user", &r.token()).await;
    assert_eq!(
        (r.status, r.body.clone()),
        (
            400,
            json!({"type": "invalid_data", "message": "Email is required to create a user account."})
        )
    );
}

#[tokio::test]
async fn the_sso_user_route_respects_auth_methods_per_actor() {
    let idp = FakeIdp::start().await;
    idp.add_client("google-client", Some("google-secret"));
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = sqlite_config(
        dir.path(),
        &format!(
            "[http.auth_methods_per_actor]\nuser = [\"emailpass\"]\n\n{EMAILPASS}\n{}",
            providers_toml(&idp)
        ),
    );
    let server = TestServer::start_toml(&toml).await;
    let r = server.post_json("/auth/google/user", json!({})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"type": "not_allowed", "message": "The actor type user is not allowed to use the auth provider google"})
    );
}

/// A social login of an identity with MFA: the callback answers the
/// challenge (with an actorless token), and answering it gives the token.
#[tokio::test]
async fn a_callback_answers_the_mfa_challenge() {
    let idp = FakeIdp::start().await;
    idp.add_client("google-client", Some("google-secret"));
    idp.add_client("github-client", Some("github-secret"));
    idp.add_client("oidc-client", None);
    idp.set_user(FakeUser::new("4001", "mfa@example.com"));
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = sqlite_config(
        dir.path(),
        &format!(
            "[mfa]\nencryption_key = \"an MFA key of at least thirty-two characters\"\n\n{EMAILPASS}\n{}",
            providers_toml(&idp)
        ),
    );
    let s = Social {
        idp,
        server: TestServer::start_toml(&toml).await,
        _dir: dir,
    };
    let token = s.full("google", None).await.token();
    let factor = crate::mfa::enable(&s.server, &token).await;
    let r = s.full("google", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["mfa_required"], true, "{}", r.body);
    let pending = r.token();
    let c = claims_of(&pending);
    assert_eq!(
        (c["actor_id"].clone(), c["mfa_enabled"].clone()),
        (json!(""), json!(true))
    );
    let id = r.body["mfa_challenge"]["id"].as_str().unwrap();
    let done = Reply::of(
        s.server
            .client
            .post(s.server.url(&format!("/auth/mfa/challenges/{id}/verify")))
            .bearer_auth(&pending)
            .json(&json!({"method": "totp", "code": factor.code(1)}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.body);
    let c = claims_of(&done.token());
    assert_eq!(c["auth_provider"], "google");
    assert!(c["mfa_challenge_completed_at"].is_string(), "{c}");
}

#[tokio::test]
async fn oidc_refuses_an_unverified_email_by_default() {
    let s = Social::start().await;
    let mut unverified = FakeUser::new("9001", "unverified@example.com");
    unverified.email_verified = false;
    s.idp.set_user(unverified);
    // `oidc` sets no `require_verified_email`: the default refuses.
    let r = s.full("oidc", None).await;
    assert_eq!(
        (r.status, r.body.clone()),
        (
            401,
            json!({"type": "unauthorized", "message": "Authentication failed"})
        )
    );
    assert_eq!(s.identity_count().await, 0);
    // Opting out accepts the login, without vouching for the address.
    let r = s.full("oidc2", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let meta = claims_of(&r.token())["user_metadata"].clone();
    assert_eq!(meta["email"], "unverified@example.com");
    assert!(meta.get("email_verified").is_none(), "{meta}");
    // A verified address passes the default, and is vouched for.
    s.idp
        .set_user(FakeUser::new("9002", "verified@example.com"));
    let r = s.full("oidc", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        claims_of(&r.token())["user_metadata"]["email_verified"],
        true
    );
}

#[tokio::test]
async fn a_link_started_by_one_identity_is_refused_at_a_callback_without_its_proof() {
    let s = Social::start().await;
    // The attacker starts a Google link with their own token...
    let attacker = s
        .server
        .register("mallory@example.com", "attacker password 1")
        .await;
    let attacker_id = claims_of(&attacker)["auth_identity_id"].clone();
    let victim = s
        .server
        .register("victim@example.com", "victim password 1")
        .await;
    s.idp.set_user(FakeUser::new("9101", "victim@example.com"));
    for kind in Kind::ALL {
        // ...and sends the `location` to the victim, who signs in at the
        // identity provider; the victim's callback carries no proof of the
        // attacker's identity: none, or the victim's own token.
        for header in [None, Some(("authorization", format!("Bearer {victim}")))] {
            let q = s.until_callback(kind.id(), Some(&attacker)).await;
            let r = s.callback_with(kind.id(), &q, header.clone()).await;
            assert_eq!(
                (r.status, r.body.clone()),
                (
                    401,
                    json!({"type": "unauthorized", "message": "Unauthorized"})
                ),
                "{kind:?} {header:?}"
            );
            // The state is spent: not even the attacker's token completes it now.
            let r = s
                .callback_with(
                    kind.id(),
                    &q,
                    Some(("authorization", format!("Bearer {attacker}"))),
                )
                .await;
            assert_eq!(
                r.body["message"], "No state provided, or session expired",
                "{kind:?}"
            );
        }
        let user = FakeUser::new("9101", "victim@example.com");
        assert!(
            s.server
                .service
                .module()
                .find_provider_identity(kind.id(), &kind.entity_id(&user))
                .await
                .unwrap()
                .is_none(),
            "{kind:?}: the victim's account was stored"
        );
    }
    assert_eq!(s.provider_identities_of(&attacker_id).await, 1);
    // Two emailpass identities, nothing else.
    assert_eq!(s.identity_count().await, 2);
}

#[tokio::test]
async fn a_plain_login_whose_callback_carries_a_token_links_nothing() {
    let s = Social::start().await;
    let token = s
        .server
        .register("plain@example.com", "plain password 1")
        .await;
    let ep_identity = claims_of(&token)["auth_identity_id"].clone();
    s.idp.set_user(FakeUser::new("9201", "plain@example.com"));
    for kind in Kind::ALL {
        let q = s.until_callback(kind.id(), None).await;
        let r = s
            .callback_with(
                kind.id(),
                &q,
                Some(("authorization", format!("Bearer {token}"))),
            )
            .await;
        assert_eq!(r.status, 200, "{kind:?}: {}", r.body);
        let claims = claims_of(&r.token());
        assert_ne!(claims["auth_identity_id"], ep_identity, "{kind:?}");
        assert!(claims.get("linked").is_none(), "{kind:?}: {claims}");
    }
    assert_eq!(s.provider_identities_of(&ep_identity).await, 1);
}

/// Needs the HTTP layer to pass the callback's own credential (bearer or
/// session cookie) as `AuthRequest::link_to`.
#[tokio::test]
async fn a_link_completes_with_a_session_cookie_of_the_same_identity_at_the_callback() {
    let s = Social::start().await;
    let token = s
        .server
        .register("linker@example.com", "linker password 1")
        .await;
    let ep_identity = claims_of(&token)["auth_identity_id"].clone();
    let cookie = s.server.open_session(&token).await;
    s.idp.set_user(FakeUser::new("9301", "linker@example.com"));
    let q = s.until_callback("google", Some(&token)).await;
    let r = s
        .callback_with("google", &q, Some(("cookie", cookie.clone())))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let claims = claims_of(&r.token());
    assert_eq!(claims["auth_identity_id"], ep_identity);
    assert_eq!(claims["linked"], true);
    assert_eq!(s.provider_identities_of(&ep_identity).await, 2);
}

/// A step token (verification or MFA still owed) proves nothing: a redirect
/// login started with one is a plain login, never a link to its identity.
#[tokio::test]
async fn a_step_token_never_starts_a_link() {
    let s = Social::start().await;
    let token = s
        .server
        .register("stepper@example.com", "correct horse battery")
        .await;
    let mine = claims_of(&token)["auth_identity_id"].clone();
    for (n, step) in ["verification", "mfa"].into_iter().enumerate() {
        let mut c = claims_of(&token);
        c["step"] = json!(step);
        c["mfa_enabled"] = json!(step == "mfa");
        let step_token = crate::support::sign(&c, crate::support::SECRET);
        s.idp
            .set_user(FakeUser::new(&format!("77{n}"), "stepper@example.com"));
        let r = s.full("google", Some(&step_token)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let got = claims_of(&r.token());
        assert_ne!(got["auth_identity_id"], mine, "{step}: linked");
        assert!(got.get("linked").is_none(), "{step}");
    }
    assert_eq!(s.provider_identities_of(&mine).await, 1);
}
