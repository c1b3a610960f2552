//! The scheme and host providers see: the configured public origin, else the
//! request's own; forwarded headers never count. A redirect provider that
//! sends clients to `{origin}/callback` shows what it was given.

use std::sync::Arc;

use auth_http::{AuthService, HttpConfig, PublicOrigin};
use auth_module::{
    AuthModule, AuthOutcome, AuthProvider, AuthRequest, MemoryIdentityStore, MemoryStateStore,
    OptionsError, ProviderFlow, ProviderIdentities, ProviderInit, ProviderKind,
    ProviderRegistration, Registry, Result, Secret, ValidateOptions, async_trait,
};
use serde_json::json;

use crate::support::Reply;

#[derive(Debug)]
struct OriginEcho;

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NoOptions {}

impl ValidateOptions for NoOptions {}

impl ProviderKind for OriginEcho {
    const IDENTIFIER: &'static str = "origin-echo";
    const DISPLAY_NAME: &'static str = "Origin echo";
    const FLOW: ProviderFlow = ProviderFlow::Redirect;
    type Options = NoOptions;
    fn new(_: ProviderInit<NoOptions>) -> std::result::Result<Self, OptionsError> {
        Ok(OriginEcho)
    }
}

#[async_trait]
impl AuthProvider for OriginEcho {
    async fn authenticate(&self, req: AuthRequest, _: &ProviderIdentities) -> Result<AuthOutcome> {
        Ok(AuthOutcome::redirect(format!(
            "{}/callback",
            req.origin().unwrap_or_default()
        )))
    }
}

/// Registered by hand, not at link time: the other tests list the linked kinds.
static ORIGIN_ECHO: ProviderRegistration = ProviderRegistration::of::<OriginEcho>();

async fn serve(public: Option<&str>) -> (String, tokio::task::JoinHandle<()>) {
    let module = AuthModule::builder()
        .registry(Registry::empty().with(&ORIGIN_ECHO))
        .identity_store(Arc::new(MemoryIdentityStore::new()))
        .state_store(Arc::new(MemoryStateStore::new()))
        .provider("origin-echo", "echo", json!({}))
        .build()
        .unwrap();
    let mut http = HttpConfig::default();
    http.jwt_secret = Some(Secret::new("origin-test-secret-0123456789abcdef"));
    let mut service = AuthService::new(module, &http).unwrap();
    if let Some(url) = public {
        service = service.with_public_origin(PublicOrigin::parse(url).unwrap());
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = tokio::spawn(async move {
        axum::serve(listener, auth_http::router(service))
            .await
            .unwrap();
    });
    (format!("http://{addr}/auth/customer/echo"), handle)
}

async fn location(url: &str, headers: &[(&str, &str)]) -> String {
    let mut req = reqwest::Client::new().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = Reply::of(req.send().await.unwrap()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["location"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn providers_see_the_request_host_and_never_forwarded_headers() {
    let (url, server) = serve(None).await;
    let host = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(location(&url, &[]).await, format!("http://{host}/callback"));
    assert_eq!(
        location(&url, &[("host", "shop.example:8080")]).await,
        "http://shop.example:8080/callback"
    );
    assert_eq!(
        location(
            &url,
            &[
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "evil.example"),
                ("forwarded", "proto=https;host=evil.example"),
            ]
        )
        .await,
        format!("http://{host}/callback"),
        "forwarded headers are ignored"
    );
    assert_eq!(
        location(&url, &[("host", "evil.example/<script>")]).await,
        "/callback",
        "a garbage Host gives no origin at all"
    );
    server.abort();
}

#[tokio::test]
async fn behind_a_proxy_the_public_origin_wins() {
    let (url, server) = serve(Some("https://Auth.Example.com/")).await;
    assert_eq!(
        location(
            &url,
            &[
                ("host", "internal:9000"),
                ("x-forwarded-host", "evil.example")
            ]
        )
        .await,
        "https://auth.example.com/callback"
    );
    server.abort();
    for bad in [
        "auth.example.com",
        "ftp://x",
        "https://a.example/path",
        "https://u:p@a.example",
        "https://",
    ] {
        assert!(PublicOrigin::parse(bad).is_err(), "{bad}");
    }
}
