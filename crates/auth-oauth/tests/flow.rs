//! The client's flow from the library, against the fake identity provider:
//! no HTTP server of ours, only the provider's scoped handle over memory stores.

use std::sync::Arc;
use std::time::Duration;

use auth_module::{
    AuthOutcome, AuthRequest, MemoryIdentityStore, MemoryStateStore, Metadata, NewProviderIdentity,
    ProviderIdentities,
};
use auth_oauth::{
    CallbackPolicy, ErrorStyle, IdTokenRules, OAuthClient, OAuthError, OAuthSettings, urls,
};
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

/// A login started with proof of `start` (or none), as the fake sends the
/// user back, with the callback carrying proof of `at_callback`.
async fn link_flow(
    c: &OAuthClient,
    ids: &ProviderIdentities,
    start: Option<&str>,
    at_callback: Option<&str>,
) -> AuthRequest {
    let begun = AuthRequest::default().link_to(start.map(str::to_owned));
    let location = c.begin(&begun, ids).await.unwrap();
    back_from(&location)
        .await
        .link_to(at_callback.map(str::to_owned))
}

#[tokio::test]
async fn a_link_completes_only_when_the_callback_proves_the_same_identity() {
    let idp = FakeIdp::start().await;
    idp.add_client("c", None);
    let c = client(&idp, Duration::from_secs(60));
    let ids = ids();
    // The attacker starts a link with their own token; the victim's
    // callback carries no proof, or proof of someone else.
    for at_callback in [None, Some("victim")] {
        let back = link_flow(&c, &ids, Some("attacker"), at_callback).await;
        assert!(
            matches!(c.finish(&back, &ids).await, Err(OAuthError::LinkNotProven)),
            "{at_callback:?}"
        );
        // Refused before the identity provider is called, and spent.
        assert_eq!(idp.requests("/token"), 0);
        let proven = back.clone().link_to(Some("attacker".to_owned()));
        assert!(matches!(
            c.finish(&proven, &ids).await,
            Err(OAuthError::NoState)
        ));
    }
    // The same identity proven at both ends: the link goes ahead.
    let back = link_flow(&c, &ids, Some("owner"), Some("owner")).await;
    let done = c.finish(&back, &ids).await.unwrap();
    assert_eq!(done.link_to.as_deref(), Some("owner"));
}

#[tokio::test]
async fn a_plain_login_ignores_the_callbacks_proof() {
    let idp = FakeIdp::start().await;
    idp.add_client("c", None);
    let c = client(&idp, Duration::from_secs(60));
    let ids = ids();
    let back = link_flow(&c, &ids, None, Some("someone")).await;
    let done = c.finish(&back, &ids).await.unwrap();
    assert_eq!(done.link_to, None);
}

#[tokio::test]
async fn an_unproven_link_is_answered_unauthorized_and_links_nothing() {
    let idp = FakeIdp::start().await;
    idp.add_client("c", None);
    idp.set_user(FakeUser::new("victim-sub", "victim@example.com"));
    let c = client(&idp, Duration::from_secs(60));
    let ids = ids();
    // The attacker's own auth identity.
    let attacker = ids
        .create(NewProviderIdentity::new("sso", "attacker-sub"))
        .await
        .unwrap();
    let callback = |req: AuthRequest| {
        let (c, ids) = (&c, &ids);
        async move {
            c.callback(&req, ids, ErrorStyle::Social, "SSO", |done| async move {
                let sub = done.claims.as_ref().unwrap()["sub"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                Ok((sub, Metadata::new()))
            })
            .await
            .unwrap()
        }
    };
    let back = link_flow(&c, &ids, Some(&attacker.id), None).await;
    match callback(back).await {
        AuthOutcome::Failed(m) => assert_eq!(m, "Unauthorized"),
        other => panic!("{other:?}"),
    }
    assert!(ids.find("victim-sub").await.unwrap().is_none());
    // With the same proof at both ends, the provider identity is attached.
    let back = link_flow(&c, &ids, Some(&attacker.id), Some(&attacker.id)).await;
    match callback(back).await {
        AuthOutcome::Linked(identity) => assert_eq!(identity.id, attacker.id),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        ids.find("victim-sub").await.unwrap().map(|i| i.id),
        Some(attacker.id)
    );
}
