//! The management API for the host application: find auth identities, link
//! and unlink actors, delete identities. Mounted only when an API key is
//! configured; every request must carry it (`X-Api-Key: KEY` or
//! `Authorization: Bearer KEY`), compared in constant time.
//!
//! | route | method | answer |
//! |---|---|---|
//! | `/admin/auth-identities?provider=P&entity_id=E` | GET | `{"auth_identity"}` |
//! | `/admin/auth-identities/search?q=TERM` | GET | `{"auth_identities"}`: the identity with that id, and every identity a configured provider knows by that entity id (an e-mail at emailpass, a subject at a social provider) |
//! | `/admin/auth-identities/{id}` | GET | `{"auth_identity"}` |
//! | `/admin/auth-identities/{id}` | DELETE | `{"id", "object": "auth_identity", "deleted": true}` |
//! | `/admin/auth-identities/{id}/actors/{actor_type}` | POST `{"actor_id"}` | `{"auth_identity"}` |
//! | `/admin/auth-identities/{id}/actors/{actor_type}` | DELETE | `{"auth_identity"}` |
//! | `/admin/auth-identities/{id}/app-metadata` | PATCH `{"key": value, …}` | `{"auth_identity"}`: merges top-level keys into `app_metadata` (`null` removes a key) |
//! | `/admin/auth-identities/{id}/revoke` | POST | `{"auth_identity", "sessions_ended"}`: every token and session issued before ends |
//! | `/admin/auth-identities/{id}/devices` | GET | `{"devices"}` |
//! | `/admin/auth-identities/{id}/devices/{device_id}` | DELETE | `{"id", "object": "device", "deleted": true}`: its session and tokens end |
//! | `/admin/auth-identities/{id}/mfa-factors` | GET | `{"mfa_factors"}`: never a secret |
//! | `/admin/auth-identities/{id}/passkeys` | GET | `{"passkeys"}` |
//! | `/admin/audit?auth_identity_id=&action=&since=&until=&cursor=&limit=` | GET | `{"entries", "next_cursor"}`: newest first; `since`/`until` RFC 3339, `limit` 1–1000 (default 50), `next_cursor` `null` on the last page |
//! | `/admin/audit/sign-ins?hours=H` | GET | `{"since", "buckets", "partial"}`: logins per hour over the last `H` hours (1–168, default 168), each bucket `{"start", "succeeded", "failed", "throttled"}`, oldest first |
//!
//! Identities never carry `provider_metadata` (password hashes, tokens).
//!
//! The `app-metadata` merge is one atomic write in the store
//! ([`auth_module::IdentityStore::merge_app_metadata`]): each key of the body
//! replaces the stored key whole, `null` removes it, other keys stay, and
//! concurrent merges and links of other keys all stay. It is how a host that
//! does not embed the library keeps its own data there, e.g. `roles` (Medusa's
//! rbac role ids). Keys are 1 to 128 letters, digits, `_` or `-`. Actor links
//! (`{actor_type}_id`: any key ending in `_id`) are refused: they belong to
//! the `actors` routes. A refused key refuses the whole body (400
//! `invalid_data`), and so does a body that is not a JSON object.

use std::sync::Arc;

use auth_module::{AuditQuery, AuthIdentity, NewAuditEntry, Secret};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, patch, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::AuthService;
use crate::body::read_object;
use crate::context::bearer_token;
use crate::error::ApiError;
use crate::extract::{Path, Query};

#[derive(Clone)]
struct Admin {
    service: AuthService,
    key_digest: Arc<[u8; 32]>,
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// Equal-length digests compared in constant time.
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

fn presented_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .or_else(|| bearer_token(headers))
}

async fn require_key(State(admin): State<Admin>, req: Request, next: Next) -> Response {
    let ok =
        presented_key(req.headers()).is_some_and(|k| same_digest(&digest(k), &admin.key_digest));
    if !ok {
        return ApiError::unauthorized("Invalid API key").into_response();
    }
    next.run(req).await
}

/// Every management route, once: [`management_router`] is built from it and
/// [`management_routes`] lists it.
fn table() -> Vec<(Method, &'static str, MethodRouter<Admin>)> {
    use axum::routing::delete as del;
    vec![
        (Method::GET, "/admin/auth-identities", get(find)),
        (Method::GET, "/admin/auth-identities/search", get(search)),
        (Method::GET, "/admin/auth-identities/{id}", get(retrieve)),
        (Method::DELETE, "/admin/auth-identities/{id}", del(delete)),
        (
            Method::POST,
            "/admin/auth-identities/{id}/actors/{actor_type}",
            post(link),
        ),
        (
            Method::DELETE,
            "/admin/auth-identities/{id}/actors/{actor_type}",
            del(unlink),
        ),
        (
            Method::PATCH,
            "/admin/auth-identities/{id}/app-metadata",
            patch(merge_app_metadata),
        ),
        (
            Method::POST,
            "/admin/auth-identities/{id}/revoke",
            post(revoke),
        ),
        (
            Method::GET,
            "/admin/auth-identities/{id}/devices",
            get(devices),
        ),
        (
            Method::DELETE,
            "/admin/auth-identities/{id}/devices/{device_id}",
            del(end_device),
        ),
        (
            Method::GET,
            "/admin/auth-identities/{id}/mfa-factors",
            get(mfa_factors),
        ),
        (
            Method::GET,
            "/admin/auth-identities/{id}/passkeys",
            get(passkeys),
        ),
        (Method::GET, "/admin/audit", get(audit)),
        (Method::GET, "/admin/audit/sign-ins", get(sign_ins)),
    ]
}

/// Every route [`management_router`] serves, as `(method, path)`.
pub fn management_routes() -> Vec<(Method, &'static str)> {
    table().into_iter().map(|(m, p, _)| (m, p)).collect()
}

/// The management routes, guarded by `api_key`. Merge them into the app only
/// when a key is configured.
pub fn management_router(service: AuthService, api_key: &Secret) -> Router {
    let admin = Admin {
        service,
        key_digest: Arc::new(digest(api_key.expose())),
    };
    let mut router = Router::new();
    for (_, path, handler) in table() {
        router = router.route(path, handler);
    }
    router
        .route_layer(middleware::from_fn_with_state(admin.clone(), require_key))
        .with_state(admin)
}

fn identity_body(identity: AuthIdentity) -> Json<Value> {
    Json(json!({ "auth_identity": identity.redacted() }))
}

#[derive(Deserialize)]
struct FindQuery {
    provider: Option<String>,
    entity_id: Option<String>,
}

async fn find(
    State(admin): State<Admin>,
    Query(q): Query<FindQuery>,
) -> Result<Json<Value>, ApiError> {
    let (Some(provider), Some(entity_id)) = (q.provider, q.entity_id) else {
        return Err(ApiError::invalid_data(
            "Invalid request: query parameters 'provider' and 'entity_id' are required",
        ));
    };
    let module = admin.service.module();
    let entity_id = module
        .normalize_entity_id(&provider, &entity_id)
        .unwrap_or(entity_id);
    Ok(identity_body(
        module.retrieve_by_provider(&provider, &entity_id).await?,
    ))
}

async fn retrieve(
    State(admin): State<Admin>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(identity_body(
        admin.service.module().retrieve_auth_identity(&id).await?,
    ))
}

async fn delete(
    State(admin): State<Admin>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    admin.service.module().delete_auth_identity(&id).await?;
    admin
        .service
        .module()
        .audit()
        .record(NewAuditEntry::new("identity.deleted", "succeeded").identity(&id))
        .await;
    Ok(Json(
        json!({ "id": id, "object": "auth_identity", "deleted": true }),
    ))
}

async fn link(
    State(admin): State<Admin>,
    Path((id, actor_type)): Path<(String, String)>,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let (parts, body) = req.into_parts();
    let body = read_object(&parts.headers, body, admin.service.settings().body_limit).await?;
    let actor_id = match body.get("actor_id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        None => {
            return Err(ApiError::invalid_data(
                "Invalid request: Field 'actor_id' is required",
            ));
        }
        Some(other) => {
            return Err(ApiError::invalid_data(format!(
                "Invalid request: Expected type: 'string' for field 'actor_id', got: '{}'",
                if other.is_string() {
                    "empty string"
                } else {
                    "non-string"
                }
            )));
        }
    };
    let module = admin.service.module();
    let identity = module.link_actor(&id, &actor_type, &actor_id).await?;
    module
        .audit()
        .record(
            NewAuditEntry::new("link", "succeeded")
                .identity(&id)
                .actor_type(&actor_type),
        )
        .await;
    Ok(identity_body(identity))
}

async fn unlink(
    State(admin): State<Admin>,
    Path((id, actor_type)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let module = admin.service.module();
    let identity = module.unlink_actor(&id, &actor_type).await?;
    module
        .audit()
        .record(
            NewAuditEntry::new("unlink", "succeeded")
                .identity(&id)
                .actor_type(&actor_type),
        )
        .await;
    Ok(identity_body(identity))
}

/// Whether the body is declared JSON (`application/json` or `…+json`).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split(';').next())
        .map(|essence| essence.trim().to_ascii_lowercase())
        .is_some_and(|e| {
            e == "application/json" || (e.starts_with("application/") && e.ends_with("+json"))
        })
}

/// Merges the body's top-level keys into the identity's `app_metadata` (see
/// the module docs).
async fn merge_app_metadata(
    State(admin): State<Admin>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let (parts, body) = req.into_parts();
    if !is_json(&parts.headers) {
        return Err(ApiError::invalid_data(
            "Invalid request body: expected a JSON object",
        ));
    }
    let patch = read_object(&parts.headers, body, admin.service.settings().body_limit).await?;
    if let Some(key) = patch.keys().find(|k| k.ends_with("_id")) {
        let actor_type = key.strip_suffix("_id").unwrap_or_default();
        return Err(ApiError::invalid_data(format!(
            "Invalid request: Field '{key}' is an actor link; use \
             /admin/auth-identities/{{id}}/actors/{actor_type}"
        )));
    }
    let identity = admin
        .service
        .module()
        .merge_app_metadata(&id, &patch)
        .await?;
    Ok(identity_body(identity))
}

/// Signs the identity out everywhere: its credential version moves on (every
/// token and session issued before is refused from now on) and its sessions
/// are removed.
async fn revoke(
    State(admin): State<Admin>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let gate = admin.service.gate();
    let identity = admin.service.module().revoke(&id).await?;
    let ended = admin.service.sessions().end_all(&id).await?;
    let devices: Vec<String> = gate
        .devices()
        .list(&id)
        .await?
        .into_iter()
        .map(|d| d.id)
        .collect();
    gate.devices().end(&id, &devices).await?;
    admin
        .service
        .module()
        .audit()
        .record(NewAuditEntry::new("identity.revoked", "succeeded").identity(&id))
        .await;
    Ok(Json(json!({
        "auth_identity": identity,
        "sessions_ended": ended,
    })))
}

/// The devices of identity `id`, oldest first.
async fn devices(
    State(admin): State<Admin>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let module = admin.service.module();
    // An unknown identity is 404, not an empty list.
    module.retrieve_auth_identity(&id).await?;
    let devices = admin.service.gate().devices().list(&id).await?;
    let devices: Vec<Value> = devices
        .iter()
        .map(|d| auth_module::flows::device_json(d, false))
        .collect();
    Ok(Json(json!({ "devices": devices })))
}

/// Ends device `device_id` of identity `id`.
async fn end_device(
    State(admin): State<Admin>,
    Path((id, device_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let ended = admin
        .service
        .gate()
        .end_devices(&id, std::slice::from_ref(&device_id))
        .await?;
    if ended.is_empty() {
        return Err(ApiError::not_found(format!(
            "Device with id: {device_id} was not found"
        )));
    }
    Ok(Json(
        json!({ "id": device_id, "object": "device", "deleted": true }),
    ))
}

#[derive(Deserialize)]
struct AuditParams {
    auth_identity_id: Option<String>,
    action: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

/// The default and largest page of `GET /admin/audit`.
const AUDIT_PAGE: usize = 50;
const AUDIT_PAGE_MAX: usize = 1000;

fn parse_time(name: &str, value: Option<String>) -> Result<Option<time::OffsetDateTime>, ApiError> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| {
            time::OffsetDateTime::parse(&v, &time::format_description::well_known::Rfc3339).map_err(
                |_| {
                    ApiError::invalid_data(format!(
                        "Invalid request: '{name}' must be an RFC 3339 time such as \
                         2026-01-31T00:00:00Z"
                    ))
                },
            )
        })
        .transpose()
}

/// The audit log's store, or 404 when the log is off.
fn audit_store(admin: &Admin) -> Result<Arc<dyn auth_module::AuditStore>, ApiError> {
    admin
        .service
        .module()
        .audit()
        .store()
        .cloned()
        .ok_or_else(|| ApiError::not_found("The audit log is off"))
}

/// Query parameter `name`: `default` when absent or empty, else a whole
/// number from 1 to `max` (400 otherwise).
fn whole_number(
    name: &str,
    value: Option<&str>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::invalid_data(format!(
                    "Invalid request: '{name}' must be a whole number from 1 to {max}"
                ))
            }),
    }
}

/// The audit log, newest first, a page at a time.
async fn audit(
    State(admin): State<Admin>,
    Query(q): Query<AuditParams>,
) -> Result<Json<Value>, ApiError> {
    let store = audit_store(&admin)?;
    let limit = whole_number("limit", q.limit.as_deref(), AUDIT_PAGE, AUDIT_PAGE_MAX)?;
    let before_seq = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => match c.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                return Err(ApiError::invalid_data(
                    "Invalid request: 'cursor' must be a next_cursor this route answered",
                ));
            }
        },
    };
    let mut query = AuditQuery::newest(limit + 1);
    query.auth_identity_id = q.auth_identity_id.filter(|v| !v.is_empty());
    query.action = q.action.filter(|v| !v.is_empty());
    query.since = parse_time("since", q.since)?;
    query.until = parse_time("until", q.until)?;
    query.before_seq = before_seq;
    let mut entries = store.query_audit(&query).await?;
    let next_cursor = if entries.len() > limit {
        entries.truncate(limit);
        entries.last().map(|e| e.seq.to_string())
    } else {
        None
    };
    let entries: Vec<Value> = entries.iter().map(auth_module::audit::entry_json).collect();
    Ok(Json(
        json!({ "entries": entries, "next_cursor": next_cursor }),
    ))
}

#[derive(Deserialize)]
struct SearchQuery {
    q: Option<String>,
}

/// The longest search term: an e-mail address is at most 254 bytes.
const SEARCH_MAX: usize = 320;

/// The identities a term names: the identity with that id, and each one a
/// configured provider knows by that entity id (normalized as the provider
/// does), once each.
async fn search(
    State(admin): State<Admin>,
    Query(q): Query<SearchQuery>,
) -> Result<Json<Value>, ApiError> {
    let term = q.q.as_deref().map(str::trim).unwrap_or_default();
    if term.is_empty() || term.len() > SEARCH_MAX {
        return Err(ApiError::invalid_data(format!(
            "Invalid request: query parameter 'q' is required, at most {SEARCH_MAX} bytes"
        )));
    }
    let module = admin.service.module();
    // The term as an identity id, then as each provider's entity id.
    let mut ids = vec![term.to_owned()];
    for p in module.find_everywhere(term).await? {
        if !ids.contains(&p.auth_identity_id) {
            ids.push(p.auth_identity_id);
        }
    }
    let mut identities: Vec<Value> = Vec::new();
    for id in &ids {
        match module.retrieve_auth_identity(id).await {
            Ok(identity) => identities.push(json!(identity.redacted())),
            // Not an id, or deleted since it was found.
            Err(e) if e.kind() == auth_module::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Json(json!({ "auth_identities": identities })))
}

/// The MFA factors of identity `id` (never a secret), oldest first.
async fn mfa_factors(
    State(admin): State<Admin>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let module = admin.service.module();
    module.retrieve_auth_identity(&id).await?;
    let factors = module.mfa().list_factors(&id).await?;
    let factors: Vec<Value> = factors
        .iter()
        .map(auth_module::flows::factor_json)
        .collect();
    Ok(Json(json!({ "mfa_factors": factors })))
}

/// The sign-in passkeys of identity `id`, oldest first.
async fn passkeys(
    State(admin): State<Admin>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let module = admin.service.module();
    let identity = module.retrieve_auth_identity(&id).await?;
    let passkeys = auth_module::accounts::list_passkeys(module, &identity).await?;
    let passkeys: Vec<Value> = passkeys
        .iter()
        .map(auth_module::accounts::passkey_json)
        .collect();
    Ok(Json(json!({ "passkeys": passkeys })))
}

#[derive(Deserialize)]
struct SignInsQuery {
    hours: Option<String>,
}

/// The longest span of `GET /admin/audit/sign-ins`, in hours (7 days).
const SIGN_IN_HOURS_MAX: usize = 168;
/// At most this many login entries are counted per answer; past it the
/// answer says `"partial": true` (its oldest hours are short).
const SIGN_IN_SCAN_MAX: usize = 200_000;

/// Logins per hour over the last `hours` hours, by outcome: the console's
/// chart. Counted from the audit log's `login` entries, newest first, in
/// pages.
async fn sign_ins(
    State(admin): State<Admin>,
    Query(q): Query<SignInsQuery>,
) -> Result<Json<Value>, ApiError> {
    let store = audit_store(&admin)?;
    let hours = whole_number(
        "hours",
        q.hours.as_deref(),
        SIGN_IN_HOURS_MAX,
        SIGN_IN_HOURS_MAX,
    )?;
    let now = time::OffsetDateTime::now_utc();
    // Whole hours: the newest bucket is the current hour.
    let this_hour = now
        .replace_minute(0)
        .and_then(|t| t.replace_second(0))
        .and_then(|t| t.replace_nanosecond(0))
        .unwrap_or(now);
    let since = this_hour - time::Duration::hours(hours as i64 - 1);
    let mut counts = vec![[0u64; 3]; hours];
    let mut query = AuditQuery::newest(AUDIT_PAGE_MAX);
    query.action = Some("login".to_owned());
    query.since = Some(since);
    let mut scanned = 0usize;
    let mut partial = false;
    loop {
        let page = store.query_audit(&query).await?;
        for entry in &page {
            let hour = (entry.at - since).whole_hours();
            let Ok(hour) = usize::try_from(hour) else {
                continue;
            };
            let column = match entry.outcome.as_str() {
                "succeeded" => 0,
                "failed" => 1,
                "throttled" => 2,
                _ => continue,
            };
            if let Some(bucket) = counts.get_mut(hour) {
                bucket[column] += 1;
            }
        }
        scanned += page.len();
        if page.len() < AUDIT_PAGE_MAX {
            break;
        }
        if scanned >= SIGN_IN_SCAN_MAX {
            partial = true;
            break;
        }
        query.before_seq = page.last().map(|e| e.seq);
    }
    let format = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let buckets: Vec<Value> = counts
        .iter()
        .enumerate()
        .map(|(i, [succeeded, failed, throttled])| {
            json!({
                "start": format(since + time::Duration::hours(i as i64)),
                "succeeded": succeeded,
                "failed": failed,
                "throttled": throttled,
            })
        })
        .collect();
    Ok(Json(json!({
        "since": format(since),
        "buckets": buckets,
        "partial": partial,
    })))
}
