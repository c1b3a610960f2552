//! The client's flow from the library, against the fake identity provider:
//! no HTTP server of ours, only the provider's scoped handle over memory stores.

use std::sync::Arc;
use std::time::Duration;

use auth_module::{AuthRequest, MemoryIdentityStore, MemoryStateStore, ProviderIdentities};
use auth_oauth::{CallbackPolicy, IdTokenRules, OAuthClient, OAuthError, OAuthSettings, urls};
use auth_testkit::idp::{FakeIdp, FakeUser};

const CALLBACK: &str = "http://app.test/cb";

fn client(idp: &FakeIdp, refetch: Duration) -> OAuthClient {
    let mut s = OAuthSettings::new("sso", "c", CallbackPolicy::new(CALLBACK, vec![]));
    s.issuer = Some(urls::endpoint("issuer", &idp.issuer()).unwrap());
    s.scopes = vec!["openid".into(), "email".into()];
    s.id_token = Some(IdTokenRules::new(vec![idp.issuer()]));
    s.jwks_refetch_interval = refetch;
    OAuthClient::new(s).unwrap()
}

fn ids() -> ProviderIdentities {
    ProviderIdentities::new(
        "sso",
        Arc::new(MemoryIdentityStore::new()),
        Arc::new(MemoryStateStore::new()),
    )
}

/// The fake's redirect back for `location`, as the callback's request.
async fn back_from(location: &str) -> AuthRequest {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = http.get(location).send().await.unwrap();
    let back = reqwest::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    let query = back
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned().into()))
        .collect();
    AuthRequest::default().query(query)
}

async fn login(
    c: &OAuthClient,
    ids: &ProviderIdentities,
) -> Result<auth_module::Metadata, OAuthError> {
    let location = c.begin(&AuthRequest::default(), ids).await?;
    let done = c.finish(&back_from(&location).await, ids).await?;
    Ok(done.claims.expect("an OpenID Connect login has claims"))
}

#[tokio::test]
async fn a_rotated_key_is_fetched_on_its_first_token_but_not_twice_within_the_interval() {
    let idp = FakeIdp::start().await;
    idp.add_client("c", None);
    idp.set_user(FakeUser::new("u1", "u1@example.com"));
    let (eager, patient) = (
        client(&idp, Duration::ZERO),
        client(&idp, Duration::from_secs(60)),
    );
    let ids = ids();
    assert_eq!(login(&eager, &ids).await.unwrap()["sub"], "u1");
    assert_eq!(login(&patient, &ids).await.unwrap()["sub"], "u1");
    assert_eq!(idp.requests("/jwks"), 2);
    idp.rotate_key();
    // Past its interval, the client fetches the set again on the new kid.
    assert_eq!(login(&eager, &ids).await.unwrap()["sub"], "u1");
    assert_eq!(idp.requests("/jwks"), 3);
    // Within its interval, it refuses rather than fetch again.
    assert!(matches!(
        login(&patient, &ids).await,
        Err(OAuthError::Failed(_))
    ));
    assert_eq!(idp.requests("/jwks"), 3);
    // Keys it knows keep working without a fetch.
    for _ in 0..5 {
        login(&eager, &ids).await.unwrap();
    }
    assert_eq!(idp.requests("/jwks"), 3);
}

#[tokio::test]
async fn the_state_is_spent_once_and_only_by_its_instance() {
    let idp = FakeIdp::start().await;
    idp.add_client("c", None);
    let c = client(&idp, Duration::from_secs(60));
    let ids = ids();
    let location = c.begin(&AuthRequest::default(), &ids).await.unwrap();
    let back = back_from(&location).await;
    // Another instance over the same stores does not see it.
    let other = ProviderIdentities::new(
        "other",
        Arc::new(MemoryIdentityStore::new()),
        Arc::new(MemoryStateStore::new()),
    );
    assert!(matches!(
        c.finish(&back, &other).await,
        Err(OAuthError::NoState)
    ));
    c.finish(&back, &ids).await.unwrap();
    assert!(matches!(
        c.finish(&back, &ids).await,
        Err(OAuthError::NoState)
    ));
}
