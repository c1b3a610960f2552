//! Replicas: two servers on one PostgreSQL schema with their state in Redis
//! finish each other's work; and a Redis of the test's own that goes away and
//! comes back. PostgreSQL or Redis missing: skipped with a reason, except under
//! `CI`, where it fails.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use auth_testkit::idp::{FakeIdp, FakeUser};
use serde_json::json;

use crate::support::{EMAILPASS, Reply, SECRET, TestServer, claims, free_port, pg_url, redis_url};

/// Whether the shared PostgreSQL and Redis answer; outside CI a missing one
/// skips the test (after saying why), under CI it fails.
async fn services_up() -> bool {
    let pg = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&pg_url())
        .await;
    let redis = auth_store_redis::RedisStateStore::connect(&redis_url(), "probe:").await;
    match (pg, redis) {
        (Ok(pool), Ok(_)) => {
            pool.close().await;
            true
        }
        (pg, redis) => {
            let reason = format!(
                "PostgreSQL: {:?}; Redis: {:?}",
                pg.err().map(|e| e.to_string()),
                redis.err().map(|e| e.to_string())
            );
            assert!(
                std::env::var_os("CI").is_none(),
                "PostgreSQL and Redis are required under CI: {reason}"
            );
            eprintln!("skipping replica test: {reason}");
            false
        }
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", auth_module::generate_id("r").to_lowercase())
}

/// A replica's config: identities in PostgreSQL schema `schema`, state in
/// Redis under `key_prefix`, emailpass and `extra`.
fn replica_config(schema: &str, redis: &str, key_prefix: &str, extra: &str) -> String {
    format!(
        "[http]\njwt_secret = \"{SECRET}\"\n\n[store]\nurl = \"{}\"\nschema = \"{schema}\"\n\n\
         [state]\nurl = \"{redis}\"\nkey_prefix = \"{key_prefix}\"\n\n{EMAILPASS}\n{extra}",
        pg_url()
    )
}

async fn drop_schema(schema: &str) {
    if let Ok(pool) = sqlx::PgPool::connect(&pg_url()).await {
        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .execute(&pool)
            .await;
        pool.close().await;
    }
}

fn google(idp: &FakeIdp) -> String {
    format!(
        "[[providers]]\nresolve = \"google\"\nid = \"google\"\n[providers.options]\n\
         clientId = \"c\"\nclientSecret = \"s\"\ncallbackUrl = \"http://shop.test/cb\"\n\
         issuer = \"{i}\"\nauthorizationUrl = \"{a}\"\ntokenUrl = \"{t}\"\njwksUrl = \"{j}\"\n",
        i = idp.issuer(),
        a = idp.authorization_url(),
        t = idp.token_url(),
        j = idp.jwks_url()
    )
}

#[tokio::test]
async fn any_replica_finishes_what_another_started() {
    if !services_up().await {
        return;
    }
    let idp = FakeIdp::start().await;
    idp.add_client("c", Some("s"));
    idp.set_user(FakeUser::new("9001", "rep@example.com"));
    let schema = unique("auth_rep_");
    let toml = replica_config(&schema, &redis_url(), &unique("auth-test:"), &google(&idp));
    let a = TestServer::start_toml(&toml).await;
    let b = TestServer::start_toml(&toml).await;

    // A social login started on A completes on B, once.
    let r = a.post_json("/auth/customer/google", json!({})).await;
    let location = r.body["location"].as_str().unwrap().to_owned();
    let back = a.client.get(&location).send().await.unwrap();
    let back = reqwest::Url::parse(back.headers()["location"].to_str().unwrap()).unwrap();
    let query = back.query().unwrap().to_owned();
    let get = |s: &TestServer, path: String| {
        let req = s.client.get(s.url(&path));
        async move { Reply::of(req.send().await.unwrap()).await }
    };
    let done = get(&b, format!("/auth/customer/google/callback?{query}")).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let replay = get(&a, format!("/auth/customer/google/callback?{query}")).await;
    assert_eq!(
        replay.body["message"],
        "No state provided, or session expired"
    );

    // A session opened on A authenticates on B; ended on B, it is gone on A.
    let token = a.register("rep@example.com", "replica password").await;
    let cookie = a.open_session(&token).await;
    assert_eq!(
        b.post_cookie("/auth/token/refresh", &cookie).await.status,
        200
    );
    let ended = Reply::of(
        b.client
            .delete(b.url("/auth/session"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(ended.status, 200, "{}", ended.body);
    assert_eq!(
        a.post_cookie("/auth/token/refresh", &cookie).await.status,
        401
    );

    // A link made through A shows in a refresh on B at once; a password
    // change through A ends the old credentials on B at once.
    let id = claims(&token)["auth_identity_id"]
        .as_str()
        .unwrap()
        .to_owned();
    a.service
        .module()
        .link_actor(&id, "customer", "cus_rep")
        .await
        .unwrap();
    let refreshed = b.post_bearer("/auth/token/refresh", &token).await.token();
    assert_eq!(claims(&refreshed)["actor_id"], "cus_rep");
    let reset = crate::reset::reset_token(&a, "customer", "rep@example.com").await;
    let r = crate::reset::update(
        &b,
        "customer",
        &reset,
        json!({"password": "new replica pw"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        b.post_bearer("/auth/token/refresh", &refreshed)
            .await
            .status,
        401
    );
    assert_eq!(
        b.login("rep@example.com", "replica password").await.status,
        401
    );
    assert_eq!(
        a.login("rep@example.com", "new replica pw").await.status,
        200
    );

    a.stop().await;
    b.stop().await;
    drop_schema(&schema).await;
}

/// A throw-away `redis-server` on `port`, without persistence; killed when dropped.
struct OwnRedis(Child);

impl OwnRedis {
    fn start(port: u16) -> OwnRedis {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install redis-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        OwnRedis(child)
    }

    fn stop(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_lost_redis_gives_quick_503s_and_the_server_recovers_by_itself() {
    if !services_up().await {
        return;
    }
    let port = free_port();
    let redis = OwnRedis::start(port);
    let schema = unique("auth_rfault_");
    let toml = replica_config(&schema, &format!("redis://127.0.0.1:{port}"), "auth:", "");
    let s = TestServer::start_toml(&toml).await;
    let token = s.register("fault@example.com", "fault password").await;
    let cookie = s.open_session(&token).await;
    let ready = |s: &TestServer| {
        let req = s.client.get(s.url("/ready"));
        async move { Reply::of(req.send().await.unwrap()).await }
    };
    let r = ready(&s).await;
    assert_eq!(
        (r.status, r.body.clone()),
        (200, json!({"status": "ready"}))
    );

    redis.stop();
    let unavailable = json!({"type": "unexpected_state", "message": "Service unavailable"});
    for _ in 0..3 {
        let t = Instant::now();
        let r = ready(&s).await;
        assert_eq!((r.status, r.body.clone()), (503, unavailable.clone()));
        let r = s.post_cookie("/auth/token/refresh", &cookie).await;
        assert_eq!(
            (r.status, r.body.clone()),
            (503, unavailable.clone()),
            "session refresh"
        );
        assert!(
            t.elapsed() < Duration::from_secs(6),
            "answers took {:?}",
            t.elapsed()
        );
    }
    // Health is liveness: it stays 200.
    let health = Reply::of(s.client.get(s.url("/health")).send().await.unwrap()).await;
    assert_eq!(health.status, 200);
    // Identities are untouched: a bearer refresh needs no state.
    assert_eq!(
        s.post_bearer("/auth/token/refresh", &token).await.status,
        200
    );

    // Redis comes back (empty: persistence is off), and the server with it.
    let redis = OwnRedis::start(port);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if ready(&s).await.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the server did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The session was in the lost Redis; identities were not.
    assert_eq!(
        s.post_cookie("/auth/token/refresh", &cookie).await.status,
        401
    );
    let again = s.login("fault@example.com", "fault password").await.token();
    let fresh = s.open_session(&again).await;
    assert_eq!(
        s.post_cookie("/auth/token/refresh", &fresh).await.status,
        200
    );
    s.stop().await;
    drop(redis);
    drop_schema(&schema).await;
}

#[tokio::test]
async fn replicas_starting_at_once_on_a_new_schema_both_start() {
    if !services_up().await {
        return;
    }
    let schema = unique("auth_race_");
    let toml = replica_config(&schema, &redis_url(), &unique("auth-test:"), "");
    let configs = || auth_server::AppConfig::from_toml_str(&toml).expect("config");
    let (a, b) = tokio::join!(
        auth_server::build_app(configs()),
        auth_server::build_app(configs())
    );
    a.expect("replica A starts");
    b.expect("replica B starts");
    drop_schema(&schema).await;
}

/// Devices across replicas: listed on either, and one ended on A (or a
/// token revoked on A) is refused on B at once, though B had just checked
/// and cached it.
#[tokio::test]
async fn a_device_ended_on_one_replica_is_refused_on_the_other_at_once() {
    if !services_up().await {
        return;
    }
    let schema = unique("auth_dev_");
    let toml = replica_config(&schema, &redis_url(), &unique("auth-test:"), "");
    let a = TestServer::start_toml(&toml).await;
    let b = TestServer::start_toml(&toml).await;
    let first = a.register("devrep@example.com", "replica password").await;
    let id = claims(&first)["auth_identity_id"]
        .as_str()
        .unwrap()
        .to_owned();
    a.service
        .module()
        .link_actor(&id, "customer", "cus_devrep")
        .await
        .unwrap();
    async fn login(s: &TestServer) -> String {
        s.login("devrep@example.com", "replica password")
            .await
            .token()
    }
    let keep = login(&a).await;
    for _ in 0..20 {
        // B checks (and caches) a device, A ends it, B refuses it.
        let doomed = login(&b).await;
        let device = claims(&doomed)["device_id"].as_str().unwrap().to_owned();
        assert_eq!(
            b.post_bearer("/auth/token/refresh", &doomed).await.status,
            200
        );
        let listed = Reply::of(
            b.client
                .get(b.url("/auth/devices"))
                .bearer_auth(&keep)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert!(listed.text.contains(&device), "{}", listed.text);
        let ended = Reply::of(
            a.client
                .delete(a.url(&format!("/auth/devices/{device}")))
                .bearer_auth(&keep)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(ended.status, 200, "{}", ended.body);
        assert_eq!(
            b.post_bearer("/auth/token/refresh", &doomed).await.status,
            401
        );
        assert_eq!(
            a.post_bearer("/auth/token/refresh", &doomed).await.status,
            401
        );
    }
    // A JWT revoked on A is refused on B at once.
    let revoked = login(&b).await;
    assert_eq!(
        b.post_bearer("/auth/token/refresh", &revoked).await.status,
        200
    );
    assert_eq!(
        a.post_bearer("/auth/token/revoke", &revoked).await.status,
        200
    );
    assert_eq!(
        b.post_bearer("/auth/token/refresh", &revoked).await.status,
        401
    );
    assert_eq!(
        b.post_bearer("/auth/token/refresh", &keep).await.status,
        200
    );
    drop((a, b));
    drop_schema(&schema).await;
}
