//! The OpenAPI 3.1 document of every route `auth-server` serves: the auth
//! routes ([`crate::routes`]), the management API
//! ([`crate::management_routes`]), `/.well-known/jwks.json`, `/health`,
//! `/ready` and `/openapi.json` itself. `GET /openapi.json` serves it when
//! `[http] openapi = true` (the default); `auth-server openapi` prints it.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::AuthService;
use crate::error::ApiError;

/// `GET /openapi.json`.
pub(crate) async fn serve(State(svc): State<AuthService>) -> Response {
    if !svc.settings().openapi {
        return ApiError::not_found("Not found").into_response();
    }
    Json(openapi_document()).into_response()
}

/// The OpenAPI 3.1 document.
///
/// Written by hand beside the route tables: the integration tests check
/// that its operations are exactly [`crate::routes`] and
/// [`crate::management_routes`], and CI runs schemathesis against a live
/// server with it.
pub fn openapi_document() -> Value {
    let mut paths = Map::new();
    for (method, path, mut op) in operations() {
        // Path parameters go on each operation, not on the path item: a path
        // item then holds operations only.
        let mut params = path_parameters(path);
        if let Some(Value::Array(own)) = op.get_mut("parameters") {
            params.append(own);
        }
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        paths
            .entry(path)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("a path item is an object")
            .insert(method.to_owned(), op);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "auth-server",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Authentication routes compatible with Medusa 2.21's `/auth/*` \
                routes (login, registration, password reset, token refresh, sessions, \
                providers list, SSO user, TOTP MFA, verification), passkey and device \
                management, and the management API (`/admin/*`, mounted only when \
                `[management] api_key` is set).\n\nEvery error answers \
                `application/json` `{\"type\", \"message\"}` (the auth middleware's 401 \
                and the MFA gate's carry `message` only). Request bodies are JSON \
                objects or form fields; a body of another content type is ignored (read \
                as empty). Bodies over `[http] body_limit` (100 KiB by default) are \
                refused with 413. CORS preflights (`OPTIONS` with \
                `Access-Control-Request-Method`) answer 204 on every route; a method a \
                path does not serve answers 405.",
        },
        "tags": [
            {"name": "auth", "description": "Login, registration, callbacks, token refresh, password reset, providers list and SSO user"},
            {"name": "sessions", "description": "Server-side sessions (cookie `connect.sid`)"},
            {"name": "identity", "description": "The caller's own auth identity and sign-in methods"},
            {"name": "mfa", "description": "TOTP and passkey MFA factors, recovery codes and login challenges"},
            {"name": "verification", "description": "Entity verification (e.g. an email address) during login"},
            {"name": "passkeys", "description": "The caller's sign-in passkeys"},
            {"name": "devices", "description": "The caller's signed-in devices and token revocation"},
            {"name": "management", "description": "The host application's management API (`X-Api-Key`)"},
            {"name": "meta", "description": "Service metadata: JWKS, health, readiness, this document"},
        ],
        "paths": paths,
        "components": {
            "securitySchemes": security_schemes(),
            "headers": {
                "RetryAfter": {
                    "description": "Whole seconds to wait before trying again.",
                    "required": true,
                    "schema": {"type": "string", "pattern": "^[0-9]+$"},
                },
            },
            "schemas": schemas(),
        },
    })
}

fn security_schemes() -> Value {
    json!({
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An auth JWT answered by a login, registration, refresh or MFA \
                challenge (`Authorization: Bearer <token>`, `Bearer` matched \
                case-insensitively).",
        },
        "session": {
            "type": "apiKey",
            "in": "cookie",
            "name": "connect.sid",
            "description": "The session cookie `POST /auth/session` sets (its name is \
                `[http] session_cookie_name`, `connect.sid` by default).",
        },
        "resetToken": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A password reset token (from the `auth.password_reset` event), \
                accepted only by the `update` route of its own provider and actor type.",
        },
        "apiKey": {
            "type": "apiKey",
            "in": "header",
            "name": "X-Api-Key",
            "description": "The management API key (`[management] api_key`); \
                `Authorization: Bearer <key>` is accepted too.",
        },
    })
}

// ---------------------------------------------------------------------------
// Building blocks.

fn schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// A JSON answer.
fn ok(description: &str, body: Value) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": body}},
    })
}

/// An error answer: always the `Error` schema.
fn error(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": schema("Error")}},
    })
}

fn error_with_retry_after(description: &str) -> Value {
    let mut r = error(description);
    r["headers"] = json!({"Retry-After": {"$ref": "#/components/headers/RetryAfter"}});
    r
}

/// 400 of a strictly validated JSON body.
fn invalid_body(more: &str) -> Value {
    error(&format!(
        "`invalid_data`: malformed JSON, a body that is not a JSON object, a missing or \
         mistyped field, or unknown fields (`Invalid request: Unrecognized fields: 'a, b'`). \
         {more}"
    ))
}

/// 400 of a path that cannot be decoded.
const BAD_PATH: &str = "`invalid_data`: a path parameter that is not valid percent-encoded UTF-8.";

fn unauthorized() -> Value {
    error(
        "No usable credential (none, bad, expired, revoked, or not one this route takes): \
         exactly `{\"message\":\"Unauthorized\"}`; or the MFA gate's \
         `{\"message\":\"MFA verification is required to complete this request\"}`.",
    )
}

fn too_large() -> Value {
    error(
        "The body is over `[http] body_limit` (100 KiB by default): \
         `{\"message\":\"request entity too large\",\"type\":\"unknown_error\"}`.",
    )
}

fn throttled() -> Value {
    error_with_retry_after(
        "A rate limit was reached: \
         `{\"type\":\"not_allowed\",\"message\":\"Too many attempts, try again later\"}`, \
         with `Retry-After`.",
    )
}

fn unavailable() -> Value {
    error_with_retry_after(
        "A store is unreachable, or the password hashing queue is full: \
         `{\"type\":\"unexpected_state\",\"message\":\"Service unavailable\"}` (or \
         `Server busy, try again later`), with `Retry-After`.",
    )
}

fn internal() -> Value {
    error(
        "Anything unexpected: \
         `{\"type\":\"unknown_error\",\"message\":\"An unknown error occurred.\"}` (details \
         only in the server's log).",
    )
}

fn not_found(what: &str) -> Value {
    error(&format!("`not_found`: {what}"))
}

fn management_unauthorized() -> Value {
    error("No or wrong API key: `{\"type\":\"unauthorized\",\"message\":\"Invalid API key\"}`.")
}

fn bearer_or_session() -> Value {
    json!([{"bearer": []}, {"session": []}])
}

fn bearer_only() -> Value {
    json!([{"bearer": []}])
}

fn api_key() -> Value {
    json!([{"apiKey": []}])
}

/// A JSON request body validated strictly against `schema_name`.
fn json_body(schema_name: &str, required: bool) -> Value {
    json!({
        "required": required,
        "content": {"application/json": {"schema": schema(schema_name)}},
    })
}

/// A provider-defined body: JSON object or form fields.
fn provider_body(schema_name: &str) -> Value {
    json!({
        "required": false,
        "description": "Provider-defined fields, as a JSON object or \
            `application/x-www-form-urlencoded` form; unknown fields are ignored, and a \
            body of another content type is read as empty.",
        "content": {
            "application/json": {"schema": schema(schema_name)},
            "application/x-www-form-urlencoded": {"schema": schema(schema_name)},
        },
    })
}

/// The free-form query string a provider reads.
fn provider_query() -> Value {
    json!({
        "name": "query",
        "in": "query",
        "required": false,
        "description": "Provider-defined query parameters (e.g. an identity provider's \
            `error`); any are accepted.",
        "style": "form",
        "explode": true,
        "schema": {"type": "object", "additionalProperties": {"type": "string"}},
    })
}

fn query(name: &str, required: bool, description: &str, schema: Value) -> Value {
    json!({
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    })
}

/// The parameters of a templated `path`, described by name (and path).
fn path_parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            let (description, schema) = path_parameter(path, name);
            json!({
                "name": name,
                "in": "path",
                "required": true,
                "description": description,
                "schema": schema,
            })
        })
        .collect()
}

fn path_parameter(path: &str, name: &str) -> (&'static str, Value) {
    let actor_schema = json!({
        "type": "string",
        "pattern": "^[A-Za-z0-9_-]{1,64}$",
        "examples": ["customer", "user"],
    });
    match name {
        "actor" if path == "/auth/{actor}/user" => (
            "The SSO provider instance id (e.g. `google`); the router's segment name is \
             `actor`, shared with the other `/auth/{actor}/…` routes.",
            json!({"type": "string", "examples": ["google"]}),
        ),
        "actor" => (
            "The actor type (`customer`, `user`, …): 1 to 64 letters, digits, `_` or `-`, \
             not `token`, `session`, `mfa` or `verification`.",
            actor_schema,
        ),
        "actor_type" => (
            "The actor type: 1 to 64 letters, digits, `_` or `-`.",
            actor_schema,
        ),
        "provider" => (
            "A configured provider instance id.",
            json!({"type": "string", "examples": ["emailpass"]}),
        ),
        "device_id" => ("A device id (`authdev_…`).", json!({"type": "string"})),
        _ => {
            let description = if path.starts_with("/auth/mfa/factors") {
                "An MFA factor id (`authmfa_…`)."
            } else if path.starts_with("/auth/mfa/challenges") {
                "An MFA challenge id (`authmfachal_…`)."
            } else if path.starts_with("/auth/passkeys") {
                "A passkey id (`authpk_…`)."
            } else if path.starts_with("/auth/devices") {
                "A device id (`authdev_…`)."
            } else {
                "An auth identity id (`authid_…`)."
            };
            (description, json!({"type": "string"}))
        }
    }
}

// ---------------------------------------------------------------------------
// Operations.

/// `(method, path, operation)` of every route, in the order of the route
/// tables.
fn operations() -> Vec<(&'static str, &'static str, Value)> {
    let mut ops = auth_operations();
    ops.extend(login_operations());
    ops.extend(meta_operations());
    ops.extend(management_operations());
    ops
}

fn auth_operations() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "post",
            "/auth/token/refresh",
            json!({
                "operationId": "refreshToken",
                "tags": ["auth"],
                "summary": "Refresh a token",
                "description": "A new token re-read from the store (fresh `actor_id`, \
                    `app_metadata`). A step or unregistered token re-runs the login's \
                    steps (verification, then a new MFA challenge).",
                "security": bearer_or_session(),
                "responses": {
                    "200": ok("`{token}`, or the step still owed.", schema("LoginAnswer")),
                    "400": error("A login step cannot run (e.g. `invalid_data` `MFA encryption key is required to use MFA methods`)."),
                    "401": error("`{\"message\":\"Unauthorized\"}`, or `unauthorized` `The auth provider is not set while refreshing token`."),
                    "413": too_large(),
                    "503": unavailable(),
                }
            }),
        ),
        (
            "post",
            "/auth/token/revoke",
            json!({
                "operationId": "revokeToken",
                "tags": ["devices"],
                "summary": "Revoke the bearer token's device",
                "description": "Ends the device of the bearer token: it, every token \
                    refreshed from it and the sessions made from them are refused at once.",
                "security": bearer_only(),
                "responses": {
                    "200": ok("Revoked.", schema("Success")),
                    "401": unauthorized(),
                    "413": too_large(),
                    "503": unavailable(),
                }
            }),
        ),
        (
            "get",
            "/auth/identity",
            json!({
                "operationId": "readIdentity",
                "tags": ["identity"],
                "summary": "Read the caller's auth identity",
                "description": "Its sign-in methods (`provider_identities`), actor links \
                    and `app_metadata`, never `provider_metadata`. Full credentials only.",
                "security": bearer_or_session(),
                "responses": {
                    "200": identity_answer("The caller's identity."),
                    "401": unauthorized(),
                    "413": too_large(),
                    "500": internal(),
                    "503": unavailable(),
                }
            }),
        ),
        (
            "get",
            "/auth/devices",
            json!({
                "operationId": "listDevices",
                "tags": ["devices"],
                "summary": "List the caller's devices",
                "description": "Oldest first; the caller's own is marked `current`. Full \
                    credentials only.",
                "security": bearer_or_session(),
                "responses": {
                    "200": ok("The devices.", json!({
                        "type": "object",
                        "required": ["devices"],
                        "properties": {"devices": {"type": "array", "items": schema("Device")}},
                    })),
                    "401": unauthorized(),
                    "413": too_large(),
                    "500": internal(),
                    "503": unavailable(),
                }
            }),
        ),
        (
            "delete",
            "/auth/devices",
            json!({
                "operationId": "endOtherDevices",
                "tags": ["devices"],
                "summary": "End every device but the caller's",
                "security": bearer_or_session(),
                "parameters": [query(
                    "other",
                    true,
                    "Must be `true`: ending every device at once (the caller's included) \
                     is not supported.",
                    json!({"type": "string", "enum": ["true"]}),
                )],
                "responses": {
                    "200": ok("The ids of the devices ended.", json!({
                        "type": "object",
                        "required": ["object", "deleted"],
                        "properties": {
                            "object": {"const": "device"},
                            "deleted": {"type": "array", "items": {"type": "string"}},
                        },
                    })),
                    "400": error("`invalid_data`: `other=true` is missing."),
                    "401": unauthorized(),
                    "413": too_large(),
                    "500": internal(),
                    "503": unavailable(),
                }
            }),
        ),
        (
            "delete",
            "/auth/devices/{id}",
            json!({
                "operationId": "endDevice",
                "tags": ["devices"],
                "summary": "End one of the caller's devices",
                "description": "Its session and every token issued to it are refused from now on.",
                "security": bearer_or_session(),
                "responses": {
                    "200": ok("Ended.", schema("DeletedDevice")),
                    "400": error(BAD_PATH),
                    "401": unauthorized(),
                    "404": not_found("`Device with id: {id} was not found`."),
                    "413": too_large(),
                    "500": internal(),
                    "503": unavailable(),
                }
            }),
        ),
        (
            "post",
            "/auth/session",
            json!({
                "operationId": "createSession",
                "tags": ["sessions"],
                "summary": "Create a session from a bearer token",
                "description": "Stores the token's claims server-side and sets the session \
                    cookie (HttpOnly, SameSite=Lax). Bearer only.",
                "security": bearer_only(),
                "responses": {
                    "200": {
                        "description": "The token's claims.",
                        "headers": {"Set-Cookie": {
                            "description": "`connect.sid=<id>; Path=/; Max-Age=…; HttpOnly; SameSite=Lax`.",
                            "schema": {"type": "string"},
                        }},
                        "content": {"application/json": {"schema": {
                            "type": "object",
                            "required": ["user"],
                            "properties": {"user": schema("Claims")},
                        }}},
                    },
                    "401": unauthorized(),
                    "409": error("`conflict`: the identity's session index changed too fast; try again."),
                    "413": too_large(),
                    "500": internal(),
                    "503": unavailable(),
                }
            }),
        ),
        (
            "delete",
            "/auth/session",
            json!({
                "operationId": "deleteSession",
                "tags": ["sessions"],
                "summary": "End the session",
                "description": "Destroys the session the cookie names and clears the \
                    cookie. Without a live session cookie (none, garbage, expired, or a \
                    bearer token only) 401, as Medusa 2.21.2 answers.",
                "security": [{"session": []}],
                "responses": {
                    "200": {
                        "description": "Ended; the cookie is cleared.",
                        "headers": {"Set-Cookie": {
                            "description": "The session cookie, expired.",
                            "schema": {"type": "string"},
                        }},
                        "content": {"application/json": {"schema": schema("Success")}},
                    },
                    "401": error("`{\"message\":\"Unauthorized\"}`."),
                    "413": too_large(),
                    "500": internal(),
                    "503": unavailable(),
                }
            }),
        ),
        (
            "get",
            "/auth/{actor}/providers",
            json!({
                "operationId": "listProviders",
                "tags": ["auth"],
                "summary": "List the providers an actor type may use",
                "description": "No authentication. Configuration order; \
                    `auth_methods_per_actor` filters it.",
                "responses": {
                    "200": ok("The providers.", json!({
                        "type": "object",
                        "required": ["providers"],
                        "properties": {"providers": {"type": "array", "items": schema("Provider")}},
                    })),
                    "400": error("`invalid_data`: `Invalid actor type: {actor}`, or an undecodable path."),
                    "413": too_large(),
                }
            }),
        ),
        (
            "post",
            "/auth/{actor}/user",
            json!({
                "operationId": "createSsoUser",
                "tags": ["auth"],
                "summary": "Create or link the user of an SSO identity",
                "description": "For an admin's first SSO login (`POST /auth/{provider}/user` \
                    in Medusa): bearer only, token actor type `user`, unregistered allowed, \
                    no body. Links the user with the token's `user_metadata.email`, or \
                    creates one; the client then refreshes its token.",
                "security": bearer_only(),
                "responses": {
                    "200": ok("The user record.", json!({
                        "type": "object",
                        "required": ["user"],
                        "properties": {"user": {"type": "object"}},
                    })),
                    "400": error("`not_allowed` (actor type `user` may not use the provider), or `invalid_data` (`The user is already registered and cannot create a new account.`, `Email is required to create a user account.`, an undecodable path)."),
                    "401": error("`{\"message\":\"Unauthorized\"}`, the MFA gate's message, or `unauthorized` `Only {provider} identities can create a user account for this authentication context`."),
                    "413": too_large(),
                    "500": internal(),
                    "503": unavailable(),
                }
            }),
        ),
        (
            "get",
            "/auth/mfa/factors",
            json!({
                "operationId": "listMfaFactors",
                "tags": ["mfa"],
                "summary": "List the caller's MFA factors",
                "description": "Every status. Unregistered tokens allowed; MFA gate applies.",
                "security": bearer_or_session(),
                "responses": {
                    "200": ok("The factors.", json!({
                        "type": "object",
                        "required": ["mfa_factors"],
                        "properties": {"mfa_factors": {"type": "array", "items": schema("MfaFactor")}},
                    })),
                    "401": unauthorized(),
                    "413": too_large(),
                    "500": internal(),
                    "503": unavailable(),
                }
            }),
        ),
        (
            "post",
            "/auth/mfa/factors",
            json!({
                "operationId": "createMfaFactor",
                "tags": ["mfa"],
                "summary": "Enrol an MFA factor",
                "description": "Creates a `pending` factor: TOTP answers its secret (shown \
                    once) and `otpauth_url`; a passkey factor answers the WebAuthn creation \
                    `options` to answer at `…/verify`.",
                "security": bearer_or_session(),
                "requestBody": json_body("CreateMfaFactorBody", true),
                "responses": {
                    "200": ok("The pending factor.", schema("CreatedMfaFactor")),
                    "400": invalid_body("Also `invalid_data` for an unknown MFA provider or no encryption key, `not_allowed` `An active TOTP factor already exists for this auth identity`."),
                    "401": unauthorized(),
                    "413": too_large(),
                    "500": internal(),
                    "503": unavailable(),
                }
            }),
        ),
        (
            "delete",
            "/auth/mfa/factors/{id}",
            json!({
                "operationId": "disableMfaFactor",
                "tags": ["mfa"],
                "summary": "Disable an MFA factor",
                "description": "Under the `challenge` disable policy an enabled factor needs \
                    `method` and `code`.",
                "security": bearer_or_session(),
                "requestBody": json_body("DisableMfaFactorBody", false),
                "responses": {
                    "200": ok("The disabled factor.", schema("MfaFactorAnswer")),
                    "400": invalid_body("Also `invalid_data` `MFA verification code is required to disable MFA`, `not_allowed` `Invalid MFA verification code`."),
                    "401": unauthorized(),
                    "404": not_found("`MFA factor with id \"{id}\" was not found`."),
                    "413": too_large(),
                    "500": internal(),
                    "503": unavailable(),
                }
            }),
        ),
        (
            "post",
            "/auth/mfa/factors/{id}/verify",
            json!({
                "operationId": "verifyMfaFactor",
                "tags": ["mfa"],
                "summary": "Verify (enable) an MFA factor",
                "description": "A TOTP `code`, or for a passkey factor the WebAuthn \
                    `credential`.",
                "security": bearer_or_session(),
                "requestBody": json_body("VerifyMfaFactorBody", true),
                "responses": {
                    "200": ok("The enabled factor.", schema("MfaFactorAnswer")),
                    "400": invalid_body("Also `not_allowed` `Invalid TOTP code`, `Disabled MFA factors cannot be verified`."),
                    "401": unauthorized(),
                    "404": not_found("`MFA factor with id \"{id}\" was not found`."),
                    "413": too_large(),
                    "500": internal(),
                    "503": unavailable(),
                }
            }),
        ),
        (
            "post",
            "/auth/mfa/recovery-codes",
            json!({
                "operationId": "generateRecoveryCodes",
                "tags": ["mfa"],
                "summary": "Generate recovery codes",
                "description": "Replaces older ones; needs an enabled factor.",
                "security": bearer_or_session(),
                "requestBody": json_body("RecoveryCodesBody", false),
                "responses": {
                    "200": ok("The codes, shown once.", json!({
                        "type": "object",
                        "required": ["recovery_codes"],
                        "properties": {"recovery_codes": {"type": "array", "items": {"type": "string"}}},
                    })),
                    "400": invalid_body("`count` out of 1–50; `not_allowed` `Recovery codes require an enabled MFA factor`."),
                    "401": unauthorized(),
                    "413": too_large(),
                    "500": internal(),
                    "503": unavailable(),
                }
            }),
        ),
        (
            "get",
            "/auth/passkeys",
            json!({
                "operationId": "listPasskeys",
                "tags": ["passkeys"],
                "summary": "List the caller's passkeys",
                "description": "Sign-in passkeys (not MFA factors), oldest first. Full \
                    credentials only.",
                "security": bearer_or_session(),
                "responses": {
                    "200": ok("The passkeys.", json!({
                        "type": "object",
                        "required": ["passkeys"],
                        "properties": {"passkeys": {"type": "array", "items": schema("Passkey")}},
                    })),
                    "401": unauthorized(),
                    "413": too_large(),
                    "500": internal(),
                    "503": unavailable(),
                }
            }),
        ),
        (
            "patch",
            "/auth/passkeys/{id}",
            json!({
                "operationId": "renamePasskey",
                "tags": ["passkeys"],
                "summary": "Rename a passkey",
                "security": bearer_or_session(),
                "requestBody": json_body("RenamePasskeyBody", true),
                "responses": {
                    "200": ok("The renamed passkey.", json!({
                        "type": "object",
                        "required": ["passkey"],
                        "properties": {"passkey": schema("Passkey")},
                    })),
                    "400": invalid_body("Also `invalid_data` for a name that is empty or too long."),
                    "401": unauthorized(),
                    "404": not_found("`Passkey with id: {id} was not found`."),
                    "413": too_large(),
                    "500": internal(),
                    "503": unavailable(),
                }
            }),
        ),
        (
            "delete",
            "/auth/passkeys/{id}",
            json!({
                "operationId": "removePasskey",
                "tags": ["passkeys"],
                "summary": "Remove a passkey",
                "security": bearer_or_session(),
                "responses": {
                    "200": ok("Removed.", json!({
                        "type": "object",
                        "required": ["id", "object", "deleted"],
                        "properties": {
                            "id": {"type": "string"},
                            "object": {"const": "passkey"},
                            "deleted": {"const": true},
                        },
                    })),
                    "400": error("`not_allowed`: the last way to sign in cannot be removed; or an undecodable path."),
                    "401": unauthorized(),
                    "404": not_found("`Passkey with id: {id} was not found`."),
                    "413": too_large(),
                    "500": internal(),
                    "503": unavailable(),
                }
            }),
        ),
        (
            "post",
            "/auth/mfa/challenges/{id}/verify",
            json!({
                "operationId": "verifyMfaChallenge",
                "tags": ["mfa"],
                "summary": "Answer a login's MFA challenge",
                "description": "How an MFA step token finishes its login: `method` (`totp`, \
                    `recovery_code`, `passkey`) with a `code`, or a passkey `credential`. \
                    Answers the full token.",
                "security": bearer_or_session(),
                "requestBody": json_body("VerifyMfaChallengeBody", true),
                "responses": {
                    "200": ok("The token completing the login.", schema("TokenAnswer")),
                    "400": invalid_body("Also `invalid_data` `MFA challenge does not support method \"{method}\"`, `not_allowed` `Invalid MFA challenge code`, `MFA challenge has already been completed`, `MFA challenge has expired`, `MFA challenge has too many failed attempts`."),
                    "401": unauthorized(),
                    "404": not_found("`MFA challenge with id \"{id}\" was not found`."),
                    "413": too_large(),
                    "500": internal(),
                    "503": unavailable(),
                }
            }),
        ),
        (
            "post",
            "/auth/verification/request",
            json!({
                "operationId": "requestVerification",
                "tags": ["verification"],
                "summary": "Request a verification code",
                "description": "For a verification step token (or a full credential). The \
                    code goes only to the `auth.verification_requested` event; a verified \
                    row comes back unchanged.",
                "security": bearer_or_session(),
                "requestBody": json_body("RequestVerificationBody", true),
                "responses": {
                    "201": ok("The verification row.", json!({
                        "type": "object",
                        "required": ["verification"],
                        "properties": {"verification": schema("Verification")},
                    })),
                    "400": invalid_body("Also `invalid_data` for an `entity_id` or `entity_type` not 1 to 320 characters, or an unknown `code_provider`."),
                    "401": unauthorized(),
                    "413": too_large(),
                    "429": throttled(),
                    "500": internal(),
                    "503": unavailable(),
                }
            }),
        ),
        (
            "post",
            "/auth/verification/confirm",
            json!({
                "operationId": "confirmVerification",
                "tags": ["verification"],
                "summary": "Confirm a verification code",
                "description": "No authentication: the code is the proof. The client then \
                    refreshes its step token.",
                "requestBody": json_body("ConfirmVerificationBody", true),
                "responses": {
                    "200": ok("The verified entity.", json!({
                        "type": "object",
                        "required": ["entity_id", "entity_type", "code_provider", "verified_at"],
                        "properties": {
                            "entity_id": {"type": "string"},
                            "entity_type": {"type": "string"},
                            "code_provider": {"type": "string"},
                            "verified_at": {"type": ["string", "null"], "format": "date-time"},
                        },
                    })),
                    "400": invalid_body("Also `not_allowed` `Verification code is invalid or already used`, `Verification code has expired`, `Verification code does not belong to provider \"{code_provider}\"`."),
                    "413": too_large(),
                    "500": internal(),
                    "503": unavailable(),
                }
            }),
        ),
    ]
}

/// The answers every login step shares.
fn login_responses(success: Value) -> Value {
    json!({
        "200": success,
        "400": error("`invalid_data` (malformed JSON, a body that is not an object, `Invalid actor type: {actor}`), or `not_allowed` (`The actor type {actor} is not allowed to use the auth provider {provider}`, a `callback_url` not allowed)."),
        "401": error("`unauthorized`: the provider refused (`Invalid email or password`, `Password should be a string`, `Identity with email already exists`, `Unable to retrieve the auth provider with id: {provider}`, …)."),
        "413": too_large(),
        "429": throttled(),
        "500": internal(),
        "503": unavailable(),
    })
}

fn login_operations() -> Vec<(&'static str, &'static str, Value)> {
    let optional_bearer = json!([{}, {"bearer": []}]);
    let callback_security = json!([{}, {"bearer": []}, {"session": []}]);
    let callback_query: Vec<Value> = [
        ("code", "The identity provider's authorization code."),
        ("state", "The state the login answered in its `location`."),
        ("error", "The identity provider's error."),
        (
            "error_description",
            "The identity provider's error description.",
        ),
        ("error_uri", "The identity provider's error page."),
    ]
    .into_iter()
    .map(|(name, about)| query(name, false, about, json!({"type": "string"})))
    .collect();
    let login_description = "Runs the provider's authentication: `{token}` for credentials \
        providers (or the verification or MFA step still owed, with a step token), \
        `{location}` to continue at for redirect providers, `{options}` for passkeys. A \
        bearer token on a redirect login links the new identity to it.";
    vec![
        (
            "get",
            "/auth/{actor}/{provider}",
            json!({
                "operationId": "authenticateGet",
                "tags": ["auth"],
                "summary": "Log in (GET)",
                "description": format!("{login_description} The provider reads the query (and a body, if one is sent)."),
                "security": optional_bearer,
                "parameters": [provider_query()],
                "responses": login_responses(ok("The login's answer.", schema("LoginAnswer"))),
            }),
        ),
        (
            "post",
            "/auth/{actor}/{provider}",
            json!({
                "operationId": "authenticate",
                "tags": ["auth"],
                "summary": "Log in",
                "description": login_description,
                "security": optional_bearer,
                "parameters": [provider_query()],
                "requestBody": provider_body("CredentialsBody"),
                "responses": login_responses(ok("The login's answer.", schema("LoginAnswer"))),
            }),
        ),
        (
            "post",
            "/auth/{actor}/{provider}/register",
            json!({
                "operationId": "register",
                "tags": ["auth"],
                "summary": "Register",
                "description": "Creates the auth identity (emailpass: `email`, `password`, \
                    which must pass the password policy). Registering again with the same \
                    password while no actor is linked answers a token for the same \
                    identity. A passkey provider answers the WebAuthn creation `options` \
                    first.",
                "security": [{}, {"bearer": []}, {"session": []}],
                "requestBody": provider_body("CredentialsBody"),
                "responses": login_responses(ok("`{token}` (its `mfa_enabled` says if a factor is enabled), or `{options}` for passkeys.", json!({
                    "anyOf": [schema("TokenAnswer"), schema("OptionsAnswer")],
                }))),
            }),
        ),
        (
            "post",
            "/auth/{actor}/{provider}/reset-password",
            json!({
                "operationId": "resetPassword",
                "tags": ["auth"],
                "summary": "Request a password reset",
                "description": "Always 201 `Created` once the body is valid, whether the \
                    identity exists or not (and over the rate limit); when it exists, the \
                    `auth.password_reset` event carries the reset token.",
                "requestBody": {
                    "required": true,
                    "content": {
                        "application/json": {"schema": schema("ResetPasswordBody")},
                        "application/x-www-form-urlencoded": {"schema": {
                            "type": "object",
                            "required": ["identifier"],
                            "additionalProperties": false,
                            "properties": {"identifier": {"type": "string"}},
                        }},
                    },
                },
                "responses": {
                    "201": {
                        "description": "`Created`.",
                        "content": {"text/plain": {"schema": {"const": "Created"}}},
                    },
                    "400": invalid_body("Also `invalid_data` for `Invalid actor type: {actor}` or `metadata` over 4 KiB, `not_allowed` for an actor type not allowed to use the provider."),
                    "413": too_large(),
                }
            }),
        ),
        (
            "post",
            "/auth/{actor}/{provider}/update",
            json!({
                "operationId": "updateProviderIdentity",
                "tags": ["auth"],
                "summary": "Set a new password with a reset token",
                "description": "The reset token in the `Authorization` header only (a token \
                    in `?token=` is refused); the identity comes from the token. emailpass \
                    reads `password` (and ignores `email`).",
                "security": [{"resetToken": []}],
                "requestBody": provider_body("CredentialsBody"),
                "responses": {
                    "200": ok("Updated.", schema("Success")),
                    "400": error("`invalid_data`: malformed JSON, a body that is not an object, `Invalid actor type: {actor}`; `not_allowed` for an actor type not allowed to use the provider."),
                    "401": error("`unauthorized`: `Invalid token` (missing, used, superseded, forged or foreign reset token), `Password should be a string`, or the password policy's refusal."),
                    "413": too_large(),
                    "429": throttled(),
                    "500": internal(),
                    "503": unavailable(),
                }
            }),
        ),
        (
            "get",
            "/auth/{actor}/{provider}/callback",
            json!({
                "operationId": "callbackGet",
                "tags": ["auth"],
                "summary": "Complete a redirect login",
                "description": "The identity provider's redirect back (`code`, `state`). A \
                    pending social link completes only when the callback carries a token or \
                    session of the same identity.",
                "security": callback_security,
                "parameters": callback_query,
                "responses": login_responses(ok("The login's answer.", schema("LoginAnswer"))),
            }),
        ),
        (
            "post",
            "/auth/{actor}/{provider}/callback",
            json!({
                "operationId": "callback",
                "tags": ["auth"],
                "summary": "Complete a redirect login (POST)",
                "description": "As the GET callback; `code` and `state` may come in the body \
                    (the query wins).",
                "security": callback_security,
                "parameters": callback_query,
                "requestBody": provider_body("CallbackBody"),
                "responses": login_responses(ok("The login's answer.", schema("LoginAnswer"))),
            }),
        ),
    ]
}

fn meta_operations() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "get",
            "/.well-known/jwks.json",
            json!({
                "operationId": "jwks",
                "tags": ["meta"],
                "summary": "The public keys tokens verify under",
                "description": "`{\"keys\": []}` under HS256. Cacheable for five minutes.",
                "responses": {
                    "200": {
                        "description": "The JWKS.",
                        "headers": {"Cache-Control": {
                            "description": "`public, max-age=300`.",
                            "schema": {"type": "string"},
                        }},
                        "content": {"application/json": {"schema": schema("Jwks")}},
                    },
                    "413": too_large(),
                }
            }),
        ),
        (
            "get",
            "/openapi.json",
            json!({
                "operationId": "openapi",
                "tags": ["meta"],
                "summary": "This document",
                "responses": {
                    "200": ok("The OpenAPI 3.1 document.", json!({
                        "type": "object",
                        "required": ["openapi", "info", "paths"],
                    })),
                    "404": not_found("`[http] openapi = false`."),
                    "413": too_large(),
                }
            }),
        ),
        (
            "get",
            "/health",
            json!({
                "operationId": "health",
                "tags": ["meta"],
                "summary": "Liveness",
                "responses": {
                    "200": ok("Alive.", json!({
                        "type": "object",
                        "required": ["status"],
                        "properties": {"status": {"const": "ok"}},
                    })),
                    "413": too_large(),
                }
            }),
        ),
        (
            "get",
            "/ready",
            json!({
                "operationId": "ready",
                "tags": ["meta"],
                "summary": "Readiness",
                "description": "200 when the identity and state stores answer.",
                "responses": {
                    "200": ok("Ready.", json!({
                        "type": "object",
                        "required": ["status"],
                        "properties": {"status": {"const": "ready"}},
                    })),
                    "413": too_large(),
                    "503": unavailable(),
                }
            }),
        ),
    ]
}

/// The answers every management operation shares, with its own.
fn management_responses(own: Value) -> Value {
    let mut responses = json!({
        "401": management_unauthorized(),
        "500": internal(),
        "503": unavailable(),
    });
    for (status, response) in own.as_object().expect("an object") {
        responses[status] = response.clone();
    }
    responses
}

fn identity_answer(description: &str) -> Value {
    ok(
        description,
        json!({
            "type": "object",
            "required": ["auth_identity"],
            "properties": {"auth_identity": schema("AuthIdentity")},
        }),
    )
}

fn identity_not_found() -> Value {
    not_found("`AuthIdentity with id: {id} was not found`.")
}

fn management_operations() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "get",
            "/admin/auth-identities",
            json!({
                "operationId": "findAuthIdentity",
                "tags": ["management"],
                "summary": "Find an auth identity by provider and entity id",
                "security": api_key(),
                "parameters": [
                    query("provider", true, "The provider instance id.", json!({"type": "string"})),
                    query("entity_id", true, "The provider's key for the user (emailpass: the email, normalized).", json!({"type": "string"})),
                ],
                "responses": management_responses(json!({
                    "200": identity_answer("The identity."),
                    "400": error("`invalid_data`: `provider` or `entity_id` missing, or a query that does not parse."),
                    "404": not_found("no identity is known to the provider as `entity_id`."),
                })),
            }),
        ),
        (
            "get",
            "/admin/auth-identities/search",
            json!({
                "operationId": "searchAuthIdentities",
                "tags": ["management"],
                "summary": "Search auth identities by id, e-mail or provider id",
                "description": "The identity with that id, and every identity a configured \
                    provider knows by that entity id (normalized as the provider does: an \
                    e-mail at emailpass, a subject at a social provider), once each.",
                "security": api_key(),
                "parameters": [
                    query("q", true, "An auth identity id, an e-mail or a provider's entity id.", json!({"type": "string", "minLength": 1, "maxLength": 320})),
                ],
                "responses": management_responses(json!({
                    "200": ok("The identities found (maybe none).", json!({
                        "type": "object",
                        "required": ["auth_identities"],
                        "properties": {"auth_identities": {"type": "array", "items": schema("AuthIdentity")}},
                    })),
                    "400": error("`invalid_data`: `q` missing, empty or longer than 320 bytes, or a query that does not parse."),
                })),
            }),
        ),
        (
            "get",
            "/admin/auth-identities/{id}",
            json!({
                "operationId": "retrieveAuthIdentity",
                "tags": ["management"],
                "summary": "Retrieve an auth identity",
                "security": api_key(),
                "responses": management_responses(json!({
                    "200": identity_answer("The identity."),
                    "400": error(BAD_PATH),
                    "404": identity_not_found(),
                })),
            }),
        ),
        (
            "delete",
            "/admin/auth-identities/{id}",
            json!({
                "operationId": "deleteAuthIdentity",
                "tags": ["management"],
                "summary": "Delete an auth identity and its provider identities",
                "security": api_key(),
                "responses": management_responses(json!({
                    "200": ok("Deleted.", json!({
                        "type": "object",
                        "required": ["id", "object", "deleted"],
                        "properties": {
                            "id": {"type": "string"},
                            "object": {"const": "auth_identity"},
                            "deleted": {"const": true},
                        },
                    })),
                    "400": error(BAD_PATH),
                    "404": identity_not_found(),
                })),
            }),
        ),
        (
            "post",
            "/admin/auth-identities/{id}/actors/{actor_type}",
            json!({
                "operationId": "linkActor",
                "tags": ["management"],
                "summary": "Link an actor",
                "description": "Sets `app_metadata[\"{actor_type}_id\"] = actor_id`.",
                "security": api_key(),
                "requestBody": {
                    "required": true,
                    "content": {
                        "application/json": {"schema": schema("LinkActorBody")},
                        "application/x-www-form-urlencoded": {"schema": schema("LinkActorBody")},
                    },
                },
                "responses": management_responses(json!({
                    "200": identity_answer("The identity, linked."),
                    "400": error("`invalid_data`: malformed JSON, a body that is not an object, `actor_id` missing, empty or not a string, an invalid `actor_type`, or an undecodable path."),
                    "404": identity_not_found(),
                    "413": too_large(),
                })),
            }),
        ),
        (
            "delete",
            "/admin/auth-identities/{id}/actors/{actor_type}",
            json!({
                "operationId": "unlinkActor",
                "tags": ["management"],
                "summary": "Unlink an actor",
                "description": "Removes `app_metadata[\"{actor_type}_id\"]`.",
                "security": api_key(),
                "responses": management_responses(json!({
                    "200": identity_answer("The identity, unlinked."),
                    "400": error("`invalid_data`: an invalid `actor_type`, or an undecodable path."),
                    "404": identity_not_found(),
                })),
            }),
        ),
        (
            "patch",
            "/admin/auth-identities/{id}/app-metadata",
            json!({
                "operationId": "mergeAppMetadata",
                "tags": ["management"],
                "summary": "Merge keys into an identity's app_metadata",
                "description": "Each top-level key of the body replaces the stored key \
                    whole, `null` removes it, other keys stay; one atomic write. Keys are \
                    1 to 128 letters, digits, `_` or `-`; actor links (keys ending in \
                    `_id`) are refused. A refused key refuses the whole body.",
                "security": api_key(),
                "requestBody": {
                    "required": true,
                    "content": {"application/json": {"schema": {
                        "type": "object",
                        "additionalProperties": true,
                        "propertyNames": {
                            "pattern": "^[A-Za-z0-9_-]{1,128}$",
                            "not": {"pattern": "_id$"},
                        },
                        "examples": [{"roles": ["admin"]}],
                    }}},
                },
                "responses": management_responses(json!({
                    "200": identity_answer("The identity, merged."),
                    "400": error("`invalid_data`: a body that is not a JSON object (or not declared `application/json`), a refused key, or an undecodable path."),
                    "404": identity_not_found(),
                    "413": too_large(),
                })),
            }),
        ),
        (
            "post",
            "/admin/auth-identities/{id}/revoke",
            json!({
                "operationId": "revokeAuthIdentity",
                "tags": ["management"],
                "summary": "Sign an identity out everywhere",
                "description": "Every token and session issued before is refused from now \
                    on; its sessions and devices end.",
                "security": api_key(),
                "responses": management_responses(json!({
                    "200": ok("Revoked.", json!({
                        "type": "object",
                        "required": ["auth_identity", "sessions_ended"],
                        "properties": {
                            "auth_identity": schema("AuthIdentity"),
                            "sessions_ended": {"type": "integer", "minimum": 0},
                        },
                    })),
                    "400": error(BAD_PATH),
                    "404": identity_not_found(),
                    "409": error("`conflict`: the identity's session index changed too fast; try again."),
                })),
            }),
        ),
        (
            "get",
            "/admin/auth-identities/{id}/devices",
            json!({
                "operationId": "listIdentityDevices",
                "tags": ["management"],
                "summary": "List an identity's devices",
                "security": api_key(),
                "responses": management_responses(json!({
                    "200": ok("The devices, oldest first.", json!({
                        "type": "object",
                        "required": ["devices"],
                        "properties": {"devices": {"type": "array", "items": schema("Device")}},
                    })),
                    "400": error(BAD_PATH),
                    "404": identity_not_found(),
                })),
            }),
        ),
        (
            "delete",
            "/admin/auth-identities/{id}/devices/{device_id}",
            json!({
                "operationId": "endIdentityDevice",
                "tags": ["management"],
                "summary": "End an identity's device",
                "description": "Its session and tokens end.",
                "security": api_key(),
                "responses": management_responses(json!({
                    "200": ok("Ended.", schema("DeletedDevice")),
                    "400": error(BAD_PATH),
                    "404": not_found("`Device with id: {device_id} was not found`."),
                })),
            }),
        ),
        (
            "get",
            "/admin/auth-identities/{id}/mfa-factors",
            json!({
                "operationId": "listIdentityMfaFactors",
                "tags": ["management"],
                "summary": "List an identity's MFA factors",
                "description": "Every status, oldest first; never a secret.",
                "security": api_key(),
                "responses": management_responses(json!({
                    "200": ok("The factors.", json!({
                        "type": "object",
                        "required": ["mfa_factors"],
                        "properties": {"mfa_factors": {"type": "array", "items": schema("MfaFactor")}},
                    })),
                    "400": error(BAD_PATH),
                    "404": identity_not_found(),
                })),
            }),
        ),
        (
            "get",
            "/admin/auth-identities/{id}/passkeys",
            json!({
                "operationId": "listIdentityPasskeys",
                "tags": ["management"],
                "summary": "List an identity's passkeys",
                "description": "Its sign-in passkeys, oldest first.",
                "security": api_key(),
                "responses": management_responses(json!({
                    "200": ok("The passkeys.", json!({
                        "type": "object",
                        "required": ["passkeys"],
                        "properties": {"passkeys": {"type": "array", "items": schema("Passkey")}},
                    })),
                    "400": error(BAD_PATH),
                    "404": identity_not_found(),
                })),
            }),
        ),
        (
            "get",
            "/admin/audit/sign-ins",
            json!({
                "operationId": "countSignIns",
                "tags": ["management"],
                "summary": "Count sign-ins per hour",
                "description": "Logins per hour over the last `hours` hours by outcome, \
                    oldest first, counted from the audit log's `login` entries; the newest \
                    bucket is the current hour. `partial` is true when more than 200,000 \
                    entries fell in the span (the oldest buckets are then short).",
                "security": api_key(),
                "parameters": [
                    query("hours", false, "How many hours, 1–168 (default 168).", json!({"type": "integer", "minimum": 1, "maximum": 168})),
                ],
                "responses": management_responses(json!({
                    "200": ok("The counts.", json!({
                        "type": "object",
                        "required": ["since", "buckets", "partial"],
                        "properties": {
                            "since": timestamp(),
                            "partial": {"type": "boolean"},
                            "buckets": {"type": "array", "items": {
                                "type": "object",
                                "required": ["start", "succeeded", "failed", "throttled"],
                                "properties": {
                                    "start": timestamp(),
                                    "succeeded": {"type": "integer", "minimum": 0},
                                    "failed": {"type": "integer", "minimum": 0},
                                    "throttled": {"type": "integer", "minimum": 0},
                                },
                            }},
                        },
                    })),
                    "400": error("`invalid_data`: `hours` not 1–168, or a query that does not parse."),
                    "404": not_found("`The audit log is off`."),
                })),
            }),
        ),
        (
            "get",
            "/admin/audit",
            json!({
                "operationId": "listAuditEntries",
                "tags": ["management"],
                "summary": "Read the audit log",
                "description": "Newest first, a page at a time; `next_cursor` is `null` on \
                    the last page.",
                "security": api_key(),
                "parameters": [
                    query("auth_identity_id", false, "Only this identity's entries.", json!({"type": "string"})),
                    query("action", false, "Only this action (`login`, `register`, `link`, …).", json!({"type": "string"})),
                    query("since", false, "Entries at or after this RFC 3339 time.", json!({"type": "string", "format": "date-time"})),
                    query("until", false, "Entries before this RFC 3339 time.", json!({"type": "string", "format": "date-time"})),
                    query("cursor", false, "A `next_cursor` this route answered.", json!({"type": "string", "pattern": "^[0-9]{1,19}$"})),
                    query("limit", false, "Page size, 1–1000 (default 50).", json!({"type": "integer", "minimum": 1, "maximum": 1000})),
                ],
                "responses": management_responses(json!({
                    "200": ok("A page of entries.", json!({
                        "type": "object",
                        "required": ["entries", "next_cursor"],
                        "properties": {
                            "entries": {"type": "array", "items": schema("AuditEntry")},
                            "next_cursor": {"type": ["string", "null"]},
                        },
                    })),
                    "400": error("`invalid_data`: a `since`/`until` that is not RFC 3339, a `limit` not 1–1000, a `cursor` not answered here, or a query that does not parse."),
                    "404": not_found("`The audit log is off`."),
                })),
            }),
        ),
    ]
}

// ---------------------------------------------------------------------------
// Schemas.

fn timestamp() -> Value {
    json!({"type": "string", "format": "date-time"})
}

fn nullable_timestamp() -> Value {
    json!({"type": ["string", "null"], "format": "date-time"})
}

fn nullable_object() -> Value {
    json!({"type": ["object", "null"]})
}

fn nullable_string() -> Value {
    json!({"type": ["string", "null"]})
}

fn schemas() -> Value {
    let mut s = Map::new();
    let mut add = |name: &str, schema: Value| {
        s.insert(name.to_owned(), schema);
    };

    add(
        "Error",
        json!({
            "type": "object",
            "description": "Every error answer. `type` is Medusa's error kind \
                (`invalid_data`, `not_allowed`, `unauthorized`, `not_found`, `conflict`, \
                `unexpected_state`, `unknown_error`); the auth middleware's 401 and the MFA \
                gate's carry `message` only.",
            "required": ["message"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
            },
        }),
    );
    add(
        "Success",
        json!({
            "type": "object",
            "required": ["success"],
            "properties": {"success": {"const": true}},
        }),
    );
    add(
        "DeletedDevice",
        json!({
            "type": "object",
            "required": ["id", "object", "deleted"],
            "properties": {
                "id": {"type": "string"},
                "object": {"const": "device"},
                "deleted": {"const": true},
            },
        }),
    );

    // Login answers.
    add(
        "TokenAnswer",
        json!({
            "type": "object",
            "required": ["token"],
            "properties": {"token": {"type": "string", "description": "An auth JWT."}},
        }),
    );
    add(
        "RedirectAnswer",
        json!({
            "type": "object",
            "required": ["location"],
            "properties": {"location": {
                "type": "string",
                "description": "The identity provider's authorization URL to continue at.",
            }},
        }),
    );
    add(
        "OptionsAnswer",
        json!({
            "type": "object",
            "required": ["options"],
            "properties": {"options": {
                "type": "object",
                "description": "WebAuthn creation or request options to answer.",
            }},
        }),
    );
    add(
        "VerificationRequiredAnswer",
        json!({
            "type": "object",
            "required": ["verification_required", "token"],
            "properties": {
                "verification_required": {"const": true},
                "token": {"type": "string", "description": "A verification step token (actorless)."},
                "verification": schema("Verification"),
            },
        }),
    );
    add(
        "MfaRequiredAnswer",
        json!({
            "type": "object",
            "required": ["mfa_required", "token", "mfa_challenge"],
            "properties": {
                "mfa_required": {"const": true},
                "token": {"type": "string", "description": "An MFA step token (actorless)."},
                "mfa_challenge": schema("MfaChallenge"),
            },
        }),
    );
    add(
        "LoginAnswer",
        json!({
            "description": "A login step's answer: a token, a redirect, passkey options, \
                or the step still owed (verification first, then MFA) with its step token.",
            "anyOf": [
                schema("TokenAnswer"),
                schema("RedirectAnswer"),
                schema("OptionsAnswer"),
                schema("VerificationRequiredAnswer"),
                schema("MfaRequiredAnswer"),
            ],
        }),
    );
    add(
        "Claims",
        json!({
            "type": "object",
            "description": "An auth token's claims.",
            "required": ["actor_id", "actor_type", "auth_identity_id", "iat", "exp"],
            "properties": {
                "actor_id": {"type": "string", "description": "`\"\"` before the host links one."},
                "actor_type": {"type": "string"},
                "auth_identity_id": {"type": "string"},
                "auth_provider": {"type": "string"},
                "app_metadata": {"type": "object"},
                "user_metadata": {"type": "object"},
                "mfa_enabled": {"type": "boolean"},
                "mfa_challenge_completed_at": nullable_string(),
                "iat": {"type": "integer"},
                "exp": {"type": "integer"},
            },
        }),
    );
    add(
        "Provider",
        json!({
            "type": "object",
            "required": ["id", "identifier", "display_name", "flow"],
            "properties": {
                "id": {"type": "string", "description": "The instance id."},
                "identifier": {"type": "string", "description": "The kind: `emailpass`, `google`, `github`, `oidc`, `passkey`, …"},
                "display_name": {"type": "string"},
                "flow": {"type": "string", "enum": ["credentials", "redirect", "challenge"]},
            },
        }),
    );

    // MFA.
    add(
        "MfaFactor",
        json!({
            "type": "object",
            "description": "An MFA factor; never its secret.",
            "required": ["id", "auth_identity_id", "provider", "status", "created_at", "updated_at"],
            "properties": {
                "id": {"type": "string", "description": "`authmfa_…`"},
                "auth_identity_id": {"type": "string"},
                "provider": {"type": "string", "examples": ["totp", "passkey"]},
                "status": {"type": "string", "enum": ["pending", "enabled", "disabled"]},
                "metadata": nullable_object(),
                "created_at": timestamp(),
                "updated_at": timestamp(),
                "deleted_at": nullable_timestamp(),
            },
        }),
    );
    add(
        "MfaFactorAnswer",
        json!({
            "type": "object",
            "required": ["mfa_factor"],
            "properties": {"mfa_factor": schema("MfaFactor")},
        }),
    );
    add(
        "CreatedMfaFactor",
        json!({
            "type": "object",
            "description": "TOTP: `secret` (RFC 4648 base32, shown once) and \
                `otpauth_url`; passkey: the WebAuthn creation `options`.",
            "required": ["mfa_factor"],
            "properties": {
                "mfa_factor": schema("MfaFactor"),
                "secret": {"type": "string"},
                "otpauth_url": {"type": "string"},
                "options": {"type": "object"},
            },
        }),
    );
    add(
        "MfaChallenge",
        json!({
            "type": "object",
            "required": ["id", "auth_identity_id", "auth_provider", "methods", "expires_at", "attempts", "max_attempts"],
            "properties": {
                "id": {"type": "string", "description": "`authmfachal_…`"},
                "auth_identity_id": {"type": "string"},
                "auth_provider": {"type": "string"},
                "methods": {"type": "array", "items": {"type": "string"}},
                "expires_at": timestamp(),
                "attempts": {"type": "integer", "minimum": 0},
                "max_attempts": {"type": "integer", "minimum": 0},
                "completed_at": nullable_timestamp(),
                "metadata": {"type": "object"},
                "passkey_options": {"type": "object", "description": "When `methods` lists `passkey`."},
            },
        }),
    );
    add(
        "CreateMfaFactorBody",
        json!({
            "type": "object",
            "required": ["provider"],
            "additionalProperties": false,
            "properties": {
                "provider": {"type": "string", "examples": ["totp"]},
                "label": {"type": "string"},
                "issuer": {"type": "string"},
                "metadata": {"type": "object"},
            },
        }),
    );
    add(
        "DisableMfaFactorBody",
        json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "method": {"type": "string", "examples": ["totp", "recovery_code"]},
                "code": {"type": "string"},
            },
        }),
    );
    add(
        "VerifyMfaFactorBody",
        json!({
            "description": "A TOTP `code`, or a passkey factor's WebAuthn registration \
                `credential`.",
            "oneOf": [
                {
                    "type": "object",
                    "required": ["code"],
                    "additionalProperties": false,
                    "properties": {"code": {"type": "string"}},
                },
                {
                    "type": "object",
                    "required": ["credential"],
                    "additionalProperties": false,
                    "properties": {"credential": {"type": "object"}},
                },
            ],
        }),
    );
    add(
        "RecoveryCodesBody",
        json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {"count": {"type": "integer", "minimum": 1, "maximum": 50}},
        }),
    );
    add(
        "VerifyMfaChallengeBody",
        json!({
            "description": "`method` with a `code` (`totp`, `recovery_code`), or with a \
                WebAuthn authentication `credential` (`passkey`).",
            "oneOf": [
                {
                    "type": "object",
                    "required": ["method", "code"],
                    "additionalProperties": false,
                    "properties": {
                        "method": {"type": "string", "examples": ["totp", "recovery_code"]},
                        "code": {"type": "string"},
                    },
                },
                {
                    "type": "object",
                    "required": ["method", "credential"],
                    "additionalProperties": false,
                    "properties": {
                        "method": {"type": "string", "examples": ["passkey"]},
                        "credential": {"type": "object"},
                    },
                },
            ],
        }),
    );

    // Verification.
    add(
        "Verification",
        json!({
            "type": "object",
            "description": "A verification row: never its code.",
            "required": ["id", "auth_identity_id", "entity_id", "entity_type", "code_provider"],
            "properties": {
                "id": {"type": "string", "description": "`authver_…`"},
                "auth_identity_id": {"type": "string"},
                "entity_id": {"type": "string"},
                "entity_type": {"type": "string"},
                "code_provider": {"type": "string"},
                "requested_at": nullable_timestamp(),
                "verified_at": nullable_timestamp(),
                "metadata": nullable_object(),
                "created_at": timestamp(),
                "updated_at": timestamp(),
                "deleted_at": nullable_timestamp(),
            },
        }),
    );
    add(
        "RequestVerificationBody",
        json!({
            "type": "object",
            "required": ["entity_id", "entity_type"],
            "additionalProperties": false,
            "properties": {
                "entity_id": {"type": "string", "minLength": 1, "maxLength": 320, "examples": ["jane@example.com"]},
                "entity_type": {"type": "string", "minLength": 1, "maxLength": 320, "examples": ["email"]},
                "code_provider": {"type": "string", "enum": ["token"], "description": "Default `token`."},
                "metadata": {"type": "object"},
            },
        }),
    );
    add(
        "ConfirmVerificationBody",
        json!({
            "type": "object",
            "required": ["code"],
            "additionalProperties": false,
            "properties": {
                "code": {"type": "string"},
                "code_provider": {"type": "string", "enum": ["token"], "description": "Default `token`."},
            },
        }),
    );

    // Passkeys and devices.
    add(
        "Passkey",
        json!({
            "type": "object",
            "required": ["id", "name", "backed_up", "transports"],
            "properties": {
                "id": {"type": "string", "description": "`authpk_…`"},
                "name": {"type": "string"},
                "created_at": nullable_timestamp(),
                "last_used_at": nullable_timestamp(),
                "backed_up": {"type": "boolean"},
                "transports": {"type": "array", "items": {"type": "string"}},
            },
        }),
    );
    add(
        "RenamePasskeyBody",
        json!({
            "type": "object",
            "required": ["name"],
            "additionalProperties": false,
            "properties": {"name": {
                "type": "string",
                "description": "1 to 100 characters once trimmed, no control characters.",
                "minLength": 1,
                "maxLength": 100,
                "pattern": "^[^\\x00-\\x1F\\x7F-\\x9F]*[^\\x00-\\x1F\\x7F-\\x9F\\s][^\\x00-\\x1F\\x7F-\\x9F]*$",
                "examples": ["My laptop"],
            }},
        }),
    );
    add(
        "Device",
        json!({
            "type": "object",
            "description": "A signed-in device: a login and every token refreshed from it.",
            "required": ["id", "actor_type", "auth_provider", "created_at", "last_seen_at", "current"],
            "properties": {
                "id": {"type": "string", "description": "`authdev_…`"},
                "actor_type": {"type": "string"},
                "auth_provider": {"type": "string"},
                "user_agent": nullable_string(),
                "network": {"type": ["string", "null"], "description": "The client address's /24 or /48."},
                "created_at": timestamp(),
                "last_seen_at": timestamp(),
                "current": {"type": "boolean", "description": "The caller's own (always false in the management API)."},
            },
        }),
    );

    // Provider bodies.
    add(
        "CredentialsBody",
        json!({
            "type": "object",
            "description": "Provider-defined: emailpass reads `email` and `password`; \
                google, github and oidc read an optional `callback_url`. Other fields are \
                ignored.",
            "additionalProperties": true,
            "properties": {
                "email": {"type": "string", "examples": ["jane@example.com"]},
                "password": {"type": "string", "examples": ["correct-horse-battery-staple"]},
                "callback_url": {"type": "string"},
            },
        }),
    );
    add(
        "CallbackBody",
        json!({
            "type": "object",
            "description": "Provider-defined; the query's `code` and `state` win.",
            "additionalProperties": true,
            "properties": {
                "code": {"type": "string"},
                "state": {"type": "string"},
            },
        }),
    );
    add(
        "ResetPasswordBody",
        json!({
            "type": "object",
            "required": ["identifier"],
            "additionalProperties": false,
            "properties": {
                "identifier": {"type": "string", "examples": ["jane@example.com"]},
                "metadata": {"type": "object", "description": "At most 4 KiB of JSON; passed to the event."},
            },
        }),
    );

    // Management.
    add(
        "ProviderIdentity",
        json!({
            "type": "object",
            "description": "Never its `provider_metadata` (password hashes, tokens).",
            "required": ["id", "entity_id", "provider", "auth_identity_id", "created_at", "updated_at"],
            "properties": {
                "id": {"type": "string", "description": "`provid_…`"},
                "entity_id": {"type": "string"},
                "provider": {"type": "string"},
                "auth_identity_id": {"type": "string"},
                "user_metadata": nullable_object(),
                "created_at": timestamp(),
                "updated_at": timestamp(),
            },
        }),
    );
    add(
        "AuthIdentity",
        json!({
            "type": "object",
            "required": ["id", "provider_identities", "created_at", "updated_at"],
            "properties": {
                "id": {"type": "string", "description": "`authid_…`"},
                "app_metadata": {
                    "type": ["object", "null"],
                    "description": "The host's links (`{actor_type}_id`) and data.",
                },
                "provider_identities": {"type": "array", "items": schema("ProviderIdentity")},
                "created_at": timestamp(),
                "updated_at": timestamp(),
            },
        }),
    );
    add(
        "LinkActorBody",
        json!({
            "type": "object",
            "required": ["actor_id"],
            "properties": {"actor_id": {"type": "string", "minLength": 1, "examples": ["cus_01"]}},
        }),
    );
    add(
        "AuditEntry",
        json!({
            "type": "object",
            "description": "One entry of the hash-chained audit log; never a secret.",
            "required": ["id", "seq", "at", "action", "outcome", "detail", "prev_hash", "hash"],
            "properties": {
                "id": {"type": "string", "description": "`authaud_…`"},
                "seq": {"type": "integer", "minimum": 1},
                "at": timestamp(),
                "action": {"type": "string"},
                "outcome": {"type": "string", "examples": ["succeeded", "failed", "throttled"]},
                "auth_identity_id": nullable_string(),
                "actor_type": nullable_string(),
                "provider": nullable_string(),
                "network": nullable_string(),
                "user_agent": nullable_string(),
                "detail": {"type": "object"},
                "prev_hash": {"type": "string"},
                "hash": {"type": "string"},
            },
        }),
    );

    // Meta.
    add(
        "Jwks",
        json!({
            "type": "object",
            "required": ["keys"],
            "properties": {"keys": {"type": "array", "items": {
                "type": "object",
                "required": ["kty"],
                "properties": {"kty": {"type": "string"}, "kid": {"type": "string"}},
            }}},
        }),
    );

    Value::Object(s)
}
