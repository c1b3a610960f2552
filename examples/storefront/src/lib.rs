//! `storefront`: a host application that embeds the auth module as a Rust
//! team would. It keeps its own SQLite `customer` table and adds the two
//! Medusa store routes of the basic flow beside the auth routes:
//!
//! - `POST /store/customers`: with the registration token (bearer or
//!   session, no customer linked yet) and `{email, first_name?, last_name?}`,
//!   creates the customer and links `customer_id` through the library;
//! - `GET /store/customers/me`: the logged-in customer, behind
//!   [`RequireAuthLayer`] for actor `customer`, by bearer or session cookie.
//!
//! Every `/store` request carries `x-publishable-api-key`, checked against
//! `STOREFRONT_PUBLISHABLE_KEY`. The customer table lives at
//! `STOREFRONT_DATABASE_URL` (default `sqlite://storefront.db`).
//!
//! It also serves its own pages ([`pages`]): sign-in at `/`, the account at
//! `/account`, `/reset` and `/callback/{provider}`, over the auth routes.

use auth_http::{ApiError, AuthContext, AuthPolicy, AuthService, RequireAuthLayer};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

pub mod pages;

/// The store's state: the auth service, the customer table and the key.
#[derive(Clone, Debug)]
pub struct Store {
    service: AuthService,
    db: SqlitePool,
    publishable_key: String,
}

/// Opens (creating if needed) the customer table at `database_url`.
pub async fn open_db(database_url: &str) -> Result<SqlitePool, String> {
    let options: SqliteConnectOptions = database_url
        .parse::<SqliteConnectOptions>()
        .map_err(|e| format!("STOREFRONT_DATABASE_URL: {e}"))?
        .create_if_missing(true);
    let db = SqlitePool::connect_with(options)
        .await
        .map_err(|e| format!("cannot open the customer database: {e}"))?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS customer (
            id TEXT PRIMARY KEY,
            email TEXT NOT NULL,
            first_name TEXT,
            last_name TEXT,
            created_at TEXT NOT NULL
        )",
    )
    .execute(&db)
    .await
    .map_err(|e| format!("cannot create the customer table: {e}"))?;
    Ok(db)
}

/// The store routes, from the environment (`STOREFRONT_PUBLISHABLE_KEY`
/// required, `STOREFRONT_DATABASE_URL` optional).
pub async fn routes_from_env(service: AuthService) -> Result<Router, String> {
    let key = std::env::var("STOREFRONT_PUBLISHABLE_KEY")
        .ok()
        .filter(|k| !k.is_empty())
        .ok_or("STOREFRONT_PUBLISHABLE_KEY must be set")?;
    let url = std::env::var("STOREFRONT_DATABASE_URL")
        .unwrap_or_else(|_| "sqlite://storefront.db".to_owned());
    Ok(routes(service, open_db(&url).await?, key))
}

/// The store routes over `db`, requiring `publishable_key`, and the pages.
pub fn routes(service: AuthService, db: SqlitePool, publishable_key: String) -> Router {
    let pages = pages::routes(publishable_key.clone());
    let store = Store {
        service: service.clone(),
        db,
        publishable_key,
    };
    // Registration: a customer token with no customer linked yet.
    let create = Router::new()
        .route("/store/customers", post(create_customer))
        .layer(RequireAuthLayer::new(
            service.clone(),
            AuthPolicy::actor_types(["customer"]).allow_unregistered(true),
        ));
    let me = Router::new()
        .route("/store/customers/me", get(me))
        .layer(RequireAuthLayer::new(
            service,
            AuthPolicy::actor_types(["customer"]),
        ));
    create
        .merge(me)
        .layer(middleware::from_fn_with_state(
            store.clone(),
            publishable_key_check,
        ))
        .with_state(store)
        // The pages need no publishable key: their scripts send it.
        .merge(pages)
}

fn not_allowed(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "type": "not_allowed", "message": message })),
    )
        .into_response()
}

/// Medusa's publishable key check on store routes.
async fn publishable_key_check(State(store): State<Store>, req: Request, next: Next) -> Response {
    match req
        .headers()
        .get("x-publishable-api-key")
        .and_then(|v| v.to_str().ok())
    {
        None | Some("") => not_allowed(
            "Publishable API key required in the request header: x-publishable-api-key. \
             You can manage your publishable keys in settings in the dashboard.",
        ),
        Some(key) if key != store.publishable_key => {
            not_allowed("A valid publishable key is required to proceed with the request")
        }
        Some(_) => next.run(req).await,
    }
}

fn customer_json(row: &sqlx::sqlite::SqliteRow) -> Value {
    json!({
        "id": row.get::<String, _>("id"),
        "email": row.get::<String, _>("email"),
        "first_name": row.get::<Option<String>, _>("first_name"),
        "last_name": row.get::<Option<String>, _>("last_name"),
        "has_account": true,
        "created_at": row.get::<String, _>("created_at"),
    })
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    eprintln!("storefront: {e}");
    ApiError::from(auth_module::Error::unexpected("storefront storage failed"))
}

/// `POST /store/customers`.
async fn create_customer(
    State(store): State<Store>,
    ctx: AuthContext,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: Value = serde_json::from_slice(&body)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| ApiError::invalid_data("Invalid request: expected a JSON object"))?;
    let already = || ApiError::invalid_data("Request already authenticated as a customer.");
    if !ctx.actor_id.is_empty() {
        return Err(already());
    }
    // The store is the truth: the token may predate a link made since.
    let identity = store
        .service
        .module()
        .retrieve_auth_identity(&ctx.auth_identity_id)
        .await?;
    if identity.actor_id("customer").is_some() {
        return Err(already());
    }
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
    let email = text("email")
        .filter(|e| e.contains('@'))
        .ok_or_else(|| ApiError::invalid_data("Invalid request: Field 'email' is required"))?;
    let id = auth_module::generate_id("cus");
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(internal)?;
    let row = sqlx::query(
        "INSERT INTO customer (id, email, first_name, last_name, created_at) \
         VALUES ($1, $2, $3, $4, $5) RETURNING *",
    )
    .bind(&id)
    .bind(&email)
    .bind(text("first_name"))
    .bind(text("last_name"))
    .bind(&now)
    .fetch_one(&store.db)
    .await
    .map_err(internal)?;
    store
        .service
        .module()
        .link_actor(&ctx.auth_identity_id, "customer", &id)
        .await?;
    Ok(Json(json!({ "customer": customer_json(&row) })))
}

/// `GET /store/customers/me`.
async fn me(State(store): State<Store>, ctx: AuthContext) -> Result<Json<Value>, ApiError> {
    let row = sqlx::query("SELECT * FROM customer WHERE id = $1")
        .bind(&ctx.actor_id)
        .fetch_optional(&store.db)
        .await
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found("Customer not found"))?;
    Ok(Json(json!({ "customer": customer_json(&row) })))
}
