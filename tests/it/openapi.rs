//! The OpenAPI document: it describes exactly the routes the server serves
//! (a route without an operation, or an operation without a route, fails
//! here), every operation names its answers and the error shape, and
//! `GET /openapi.json` serves it unless `[http] openapi = false`.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::{EMAILPASS, Reply, TestServer, sqlite_config};

/// `(METHOD, path)` of every operation of the document.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, _) in item.as_object().expect("a path item") {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

#[test]
fn the_document_describes_exactly_the_served_routes() {
    let doc = auth_http::openapi_document();
    assert_eq!(doc["openapi"], "3.1.0");
    let served: BTreeSet<(String, String)> = auth_http::routes()
        .into_iter()
        .chain(auth_http::management_routes())
        .map(|(m, p)| (m.to_string(), p.to_owned()))
        .collect();
    let documented = documented(&doc);
    let missing: Vec<_> = served.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&served).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "served but not documented: {missing:?}; documented but not served: {extra:?}"
    );
}

#[test]
fn every_operation_names_its_answers_and_errors_have_one_shape() {
    let doc = auth_http::openapi_document();
    let error = &doc["components"]["schemas"]["Error"];
    assert_eq!(error["properties"]["message"]["type"], "string", "{error}");
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap_or_else(|| {
                panic!("{method} {path}: no responses");
            });
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {path}: no success answer"
            );
            assert!(
                !responses.contains_key("default"),
                "{method} {path}: every status is named, no default"
            );
            for (status, r) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    let schema = &r["content"]["application/json"]["schema"]["$ref"];
                    assert_eq!(
                        schema, "#/components/schemas/Error",
                        "{method} {path} {status}"
                    );
                }
            }
            assert!(op["operationId"].is_string(), "{method} {path}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_serves_it_unless_told_not_to() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_toml(&sqlite_config(dir.path(), EMAILPASS)).await;
    let r = Reply::of(s.client.get(s.url("/openapi.json")).send().await.unwrap()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, auth_http::openapi_document());
    s.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let toml =
        sqlite_config(dir.path(), EMAILPASS).replacen("[http]\n", "[http]\nopenapi = false\n", 1);
    let s = TestServer::start_toml(&toml).await;
    let r = Reply::of(s.client.get(s.url("/openapi.json")).send().await.unwrap()).await;
    assert_eq!(r.status, 404);
    s.stop().await;
}
