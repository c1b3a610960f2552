//! Who is calling: bearer JWTs and server-side sessions, the [`AuthContext`]
//! extractor and the [`RequireAuthLayer`] that protects host routes.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use auth_module::{AuthClaims, AuthIdentity, Metadata};
use axum::extract::{FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use crate::AuthService;
use crate::error::ApiError;

/// The authenticated caller, as Medusa's `req.auth_context`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AuthContext {
    /// The linked actor id, `""` if none yet.
    pub actor_id: String,
    /// The actor type.
    pub actor_type: String,
    /// The auth identity.
    pub auth_identity_id: String,
    /// The provider instance used to log in, if known.
    pub auth_provider: Option<String>,
    /// The token's `app_metadata`.
    pub app_metadata: Metadata,
    /// The token's `user_metadata`.
    pub user_metadata: Metadata,
    /// How the caller authenticated.
    pub method: AuthMethod,
    /// The full claims.
    pub claims: AuthClaims,
}

impl AuthContext {
    fn new(claims: AuthClaims, method: AuthMethod) -> Self {
        AuthContext {
            actor_id: claims.actor_id.clone(),
            actor_type: claims.actor_type.clone(),
            auth_identity_id: claims.auth_identity_id.clone(),
            auth_provider: claims.auth_provider.clone(),
            app_metadata: claims.app_metadata.clone(),
            user_metadata: claims.user_metadata.clone(),
            method,
            claims,
        }
    }
}

/// How a request authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthMethod {
    /// `Authorization: Bearer <jwt>`.
    Bearer,
    /// The session cookie.
    Session,
}

/// What a protected route accepts, as Medusa's
/// `authenticate(actor_types, ["bearer", "session"], { allow_unregistered })`.
///
/// The MFA gate is on by default: a caller whose token still owes an MFA
/// challenge (`mfa_enabled` without `mfa_challenge_completed_at`) gets 401
/// `MFA verification is required to complete this request`.
/// [`AuthPolicy::mfa_max_age`] adds a step-up rule.
#[derive(Debug, Clone)]
pub struct AuthPolicy {
    actor_types: Option<Vec<String>>,
    bearer: bool,
    session: bool,
    allow_unregistered: bool,
    mfa_gate: bool,
    mfa_max_age: Option<std::time::Duration>,
}

impl AuthPolicy {
    /// Any actor type (`"*"`), bearer or session, registered actors only.
    pub fn any_actor() -> Self {
        AuthPolicy {
            actor_types: None,
            bearer: true,
            session: true,
            allow_unregistered: false,
            mfa_gate: true,
            mfa_max_age: None,
        }
    }

    /// Only these actor types.
    pub fn actor_types<I: IntoIterator<Item = S>, S: Into<String>>(types: I) -> Self {
        AuthPolicy {
            actor_types: Some(types.into_iter().map(Into::into).collect()),
            ..Self::any_actor()
        }
    }

    /// Accept bearer tokens (default true).
    pub fn bearer(mut self, yes: bool) -> Self {
        self.bearer = yes;
        self
    }

    /// Accept the session cookie (default true).
    pub fn session(mut self, yes: bool) -> Self {
        self.session = yes;
        self
    }

    /// Accept callers with no linked actor yet (`actor_id == ""`).
    pub fn allow_unregistered(mut self, yes: bool) -> Self {
        self.allow_unregistered = yes;
        self
    }

    /// Applies the MFA gate (default true). Turn it off only for routes that
    /// finish a login (refresh, sessions, challenge verification).
    pub fn mfa_gate(mut self, yes: bool) -> Self {
        self.mfa_gate = yes;
        self
    }

    /// Step-up: a caller whose MFA challenge was completed more than
    /// `max_age` ago gets 401 `MFA was verified too long ago to complete this
    /// request` (callers without MFA are not affected).
    pub fn mfa_max_age(mut self, max_age: std::time::Duration) -> Self {
        self.mfa_max_age = Some(max_age);
        self
    }

    /// The gate's refusal of `claims`, if any.
    fn gate(&self, claims: &AuthClaims) -> Option<ApiError> {
        if !self.mfa_gate {
            return None;
        }
        if claims.mfa_pending() {
            return Some(ApiError::MfaGate(
                "MFA verification is required to complete this request",
            ));
        }
        let max_age = self.mfa_max_age?;
        claims.mfa_older_than(max_age).then_some(ApiError::MfaGate(
            "MFA was verified too long ago to complete this request",
        ))
    }

    fn admits(&self, claims: &AuthClaims) -> bool {
        let actor_ok = match &self.actor_types {
            None => true,
            Some(types) => types.iter().any(|t| t == "*" || *t == claims.actor_type),
        };
        actor_ok && (self.allow_unregistered || !claims.actor_id.is_empty())
    }
}

/// A store that failed where an answer needed it (checking credentials,
/// readiness): 503 `Service unavailable`, never a 401 that would log the
/// caller out.
pub(crate) fn store_down(e: auth_module::Error) -> ApiError {
    tracing::warn!(error = %e, "a store did not answer");
    ApiError::Unavailable("Service unavailable".to_owned())
}

/// The bearer token of `headers`, `Bearer` matched case-insensitively.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl AuthService {
    /// Authenticates a request's headers under `policy`: the session first,
    /// then the bearer token, as Medusa does. `Ok(None)` means 401. Credentials
    /// issued before the identity's last credential change, or for an identity
    /// that no longer exists, are refused. A store that cannot answer is an
    /// `Err` (503 `Service unavailable`), never a 401; so is the MFA gate's
    /// refusal (401 with its message).
    pub async fn authenticate_headers(
        &self,
        headers: &HeaderMap,
        policy: &AuthPolicy,
    ) -> Result<Option<AuthContext>, ApiError> {
        // A token that names no provider cannot be checked against the
        // store, so it is never enough for a protected route.
        Ok(match self.authenticate_current(headers, policy).await? {
            Some((ctx, Some(_))) => Some(ctx),
            _ => None,
        })
    }

    /// As [`AuthService::authenticate_headers`], with the identity as stored now
    /// and its credential version (`None` when the credentials name no provider).
    pub(crate) async fn authenticate_current(
        &self,
        headers: &HeaderMap,
        policy: &AuthPolicy,
    ) -> Result<Option<(AuthContext, Option<(AuthIdentity, u64)>)>, ApiError> {
        if policy.session
            && let Some(claims) = self.session_claims(headers).await.map_err(store_down)?
            && policy.admits(&claims)
            && let Some(current) = self.current(&claims).await?
        {
            if let Some(refusal) = policy.gate(&claims) {
                return Err(refusal);
            }
            return Ok(Some((
                AuthContext::new(claims, AuthMethod::Session),
                current,
            )));
        }
        if policy.bearer
            && let Some(claims) = bearer_token(headers).and_then(|t| self.tokens().verify(t))
            && policy.admits(&claims)
            && let Some(current) = self.current(&claims).await?
        {
            if let Some(refusal) = policy.gate(&claims) {
                return Err(refusal);
            }
            return Ok(Some((
                AuthContext::new(claims, AuthMethod::Bearer),
                current,
            )));
        }
        Ok(None)
    }

    /// `Some` if `claims` are still current: `Some(None)` when they name no
    /// provider (nothing to check: only refresh lets those through, to answer
    /// Medusa's message), `Some(Some(..))` with the stored identity. Claims
    /// from before the identity's last credential change, or whose non-empty
    /// `actor_id` is no longer the identity's link for their actor type, are
    /// refused.
    async fn current(
        &self,
        claims: &AuthClaims,
    ) -> Result<Option<Option<(AuthIdentity, u64)>>, ApiError> {
        let Some(provider) = &claims.auth_provider else {
            return Ok(Some(None));
        };
        match self
            .module()
            .identity_with_credential_version(&claims.auth_identity_id, provider)
            .await
        {
            Ok(Some((identity, version)))
                if version == claims.cv
                    && (claims.actor_id.is_empty()
                        || identity.actor_id(&claims.actor_type)
                            == Some(claims.actor_id.as_str())) =>
            {
                Ok(Some(Some((identity, version))))
            }
            Ok(_) => Ok(None),
            Err(e) => Err(store_down(e)),
        }
    }
}

/// Extracts the [`AuthContext`] set by [`RequireAuthLayer`]; without the layer
/// (or unauthenticated) it answers 401 `{"message":"Unauthorized"}`.
impl<S: Send + Sync> FromRequestParts<S> for AuthContext {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<AuthContext>()
            .cloned()
            .ok_or_else(|| ApiError::Unauthorized.into_response())
    }
}

/// A layer that lets through only requests authenticated under an
/// [`AuthPolicy`], and hands their [`AuthContext`] to the handler.
///
/// ```
/// use auth_http::{AuthContext, AuthPolicy, AuthService, RequireAuthLayer};
/// use axum::{Router, routing::get};
///
/// async fn me(ctx: AuthContext) -> String {
///     format!("{} {}", ctx.actor_type, ctx.actor_id)
/// }
///
/// fn app(service: AuthService) -> Router {
///     Router::new()
///         .route("/store/me", get(me))
///         .layer(RequireAuthLayer::new(service.clone(), AuthPolicy::actor_types(["customer"])))
///         .merge(auth_http::router(service))
/// }
/// ```
#[derive(Debug, Clone)]
pub struct RequireAuthLayer {
    service: AuthService,
    policy: Arc<AuthPolicy>,
}

impl RequireAuthLayer {
    /// Requires `policy`, checked by `service`.
    pub fn new(service: AuthService, policy: AuthPolicy) -> Self {
        RequireAuthLayer {
            service,
            policy: Arc::new(policy),
        }
    }
}

impl<S> Layer<S> for RequireAuthLayer {
    type Service = RequireAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireAuth {
            inner,
            service: self.service.clone(),
            policy: self.policy.clone(),
        }
    }
}

/// The service of [`RequireAuthLayer`].
#[derive(Debug, Clone)]
pub struct RequireAuth<S> {
    inner: S,
    service: AuthService,
    policy: Arc<AuthPolicy>,
}

impl<S> Service<Request> for RequireAuth<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let service = self.service.clone();
        let policy = self.policy.clone();
        Box::pin(async move {
            match service.authenticate_headers(req.headers(), &policy).await {
                Ok(Some(ctx)) => {
                    req.extensions_mut().insert(ctx);
                    inner.call(req).await
                }
                Ok(None) => Ok(ApiError::Unauthorized.into_response()),
                Err(e) => Ok(e.into_response()),
            }
        })
    }
}
