//! The storefront's pages over HTTP, against the `storefront` binary: every
//! page and asset is served with its security headers, no page has an inline
//! script or a `style` attribute (the CSP would refuse them), the scripts'
//! config route answers the publishable key, and `POST /storefront/qr`
//! answers SVG and refuses bad bodies.

mod common;

use serde_json::{Value, json};

use common::{EMAILPASS, Running};

const KEY: &str = "pk_test_storefront_pages";
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

async fn start() -> Running {
    common::start(KEY, |_, _| EMAILPASS.to_owned()).await
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The security headers every page answer carries.
fn assert_secured(path: &str, r: &reqwest::Response) {
    assert_eq!(header(r, "content-security-policy"), CSP, "{path}");
    assert_eq!(header(r, "x-content-type-options"), "nosniff", "{path}");
    assert_eq!(header(r, "referrer-policy"), "no-referrer", "{path}");
}

/// The `src` of each `<script>` of `html`; panics on an inline one.
fn script_sources(path: &str, html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut sources = Vec::new();
    let mut rest = lower.as_str();
    while let Some(at) = rest.find("<script") {
        let tag_end = rest[at..].find('>').expect("a closed tag") + at;
        let tag = &rest[at..tag_end];
        let close = rest[tag_end..].find("</script>").expect("a closed script") + tag_end;
        let body = &rest[tag_end + 1..close];
        let src = tag
            .split("src=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_else(|| panic!("{path}: an inline <script> without src: {tag}>"));
        assert!(body.trim().is_empty(), "{path}: a <script src> with a body");
        sources.push(src.to_owned());
        rest = &rest[close..];
    }
    sources
}

/// The `href`s of the `<link>`s of `html`.
fn link_targets(html: &str) -> Vec<String> {
    html.split("<link ")
        .skip(1)
        .filter_map(|l| l.split("href=\"").nth(1))
        .filter_map(|s| s.split('"').next())
        .map(str::to_owned)
        .collect()
}

fn assert_no_inline_style(path: &str, text: &str) {
    let lower = text.to_ascii_lowercase();
    assert!(!lower.contains("<style"), "{path}: a <style> element");
    for (i, _) in lower.match_indices("style=") {
        let before = lower[..i].chars().last().unwrap_or(' ');
        assert!(
            !before.is_whitespace(),
            "{path}: a style attribute near {}",
            &text[i.saturating_sub(40)..(i + 40).min(text.len())]
        );
    }
    for handler in [
        " onclick=",
        " onload=",
        " onerror=",
        " onsubmit=",
        "javascript:",
    ] {
        assert!(
            !lower.contains(handler),
            "{path}: an inline handler {handler}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_and_assets_carry_their_headers_and_nothing_inline() {
    let s = start().await;
    let http = reqwest::Client::new();
    let mut assets = std::collections::BTreeSet::new();
    for path in [
        "/",
        "/account",
        "/reset",
        "/reset?token=abc",
        "/callback/google?code=c&state=s",
    ] {
        let r = http.get(format!("{}{path}", s.url())).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_secured(path, &r);
        assert_eq!(
            header(&r, "content-type"),
            "text/html; charset=utf-8",
            "{path}"
        );
        assert_eq!(header(&r, "cache-control"), "no-store", "{path}");
        let html = r.text().await.unwrap();
        assert!(html.starts_with("<!doctype html>"), "{path}");
        assert!(html.contains("role=\"alert\""), "{path}: no alert region");
        assert_no_inline_style(path, &html);
        let scripts = script_sources(path, &html);
        assert_eq!(scripts.len(), 1, "{path}: {scripts:?}");
        assets.extend(scripts);
        assets.extend(link_targets(&html));
    }
    assert!(assets.contains("/assets/style.css"), "{assets:?}");
    // Every asset a page names, and every module those import.
    let mut queue: Vec<String> = assets.iter().cloned().collect();
    let mut seen = std::collections::BTreeSet::new();
    while let Some(path) = queue.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        assert!(path.starts_with("/assets/"), "{path}: not from /assets");
        let r = http.get(format!("{}{path}", s.url())).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_secured(&path, &r);
        let content_type = header(&r, "content-type").to_owned();
        let expected = match path.rsplit('.').next() {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            other => panic!("{path}: an unexpected asset kind {other:?}"),
        };
        assert_eq!(content_type, expected, "{path}");
        let body = r.text().await.unwrap();
        assert!(!body.is_empty(), "{path}");
        if path.ends_with(".js") {
            assert!(
                !body.contains("alert("),
                "{path}: alert() instead of the page's alert region"
            );
            assert!(!body.contains("eval("), "{path}: eval");
            assert!(!body.contains("innerHTML"), "{path}: innerHTML");
            assert!(!body.contains(".style."), "{path}: an inline style");
            assert!(
                !body.contains("setAttribute(\"style\""),
                "{path}: an inline style"
            );
            // `… from "./api.js";`, the last line of each import.
            for line in body.lines().map(str::trim) {
                if let Some(from) = line.split(" from \"").nth(1)
                    && line.ends_with("\";")
                {
                    let module = from.trim_end_matches("\";");
                    let name = module.strip_prefix("./").expect("a relative import");
                    queue.push(format!("/assets/{name}"));
                }
            }
        }
    }
    assert!(seen.len() >= 8, "{seen:?}");
    // Unknown assets: 404, with the headers still.
    let r = http
        .get(format!("{}/assets/nope.js", s.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_secured("/assets/nope.js", &r);
    // The pages need no publishable key; the store routes still do.
    let r = http
        .get(format!("{}/store/customers/me", s.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_route_answers_the_publishable_key() {
    let s = start().await;
    let r = reqwest::get(format!("{}/storefront/config", s.url()))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_secured("/storefront/config", &r);
    assert_eq!(header(&r, "cache-control"), "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({ "publishable_key": KEY, "actor_type": "customer" })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_qr_route_answers_svg_and_refuses_bad_bodies() {
    let s = start().await;
    let http = reqwest::Client::new();
    let qr = |body: String| {
        http.post(format!("{}/storefront/qr", s.url()))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let otpauth = "otpauth://totp/Medusa:ada%40example.com?secret=JBSWY3DPEHPK3PXP&issuer=Medusa";
    let r = qr(json!({ "text": otpauth }).to_string()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_secured("/storefront/qr", &r);
    assert_eq!(header(&r, "content-type"), "image/svg+xml");
    assert_eq!(header(&r, "cache-control"), "no-store");
    let svg = r.text().await.unwrap();
    assert!(svg.contains("<svg"), "{svg}");
    assert!(svg.trim_end().ends_with("</svg>"), "{svg}");
    assert!(!svg.contains("<script"), "{svg}");
    assert!(svg.contains("<path"), "{svg}");
    // 512 bytes is the most.
    let r = qr(json!({ "text": "a".repeat(512) }).to_string())
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    for (body, message) in [
        ("{\"text\":", "Invalid request: expected a JSON object"),
        ("[\"text\"]", "Invalid request: expected a JSON object"),
        ("{}", "Invalid request: Field 'text' is required"),
        ("{\"text\": 7}", "Invalid request: Field 'text' is required"),
        (
            "{\"text\": \"\"}",
            "Invalid request: Field 'text' must not be empty",
        ),
    ] {
        let r = qr(body.to_owned()).await.unwrap();
        assert_eq!(r.status(), 400, "{body}");
        assert_secured("/storefront/qr", &r);
        let answer: Value = r.json().await.unwrap();
        assert_eq!(
            answer,
            json!({ "type": "invalid_data", "message": message }),
            "{body}"
        );
    }
    let r = qr(json!({ "text": "a".repeat(513) }).to_string())
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["type"], "invalid_data");
    assert_eq!(
        answer["message"],
        "Invalid request: Field 'text' must be at most 512 bytes"
    );
    // A multi-byte text counts its bytes, not its characters.
    let r = qr(json!({ "text": "é".repeat(257) }).to_string())
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}
