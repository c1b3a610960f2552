//! Who is calling: the request's bearer JWT and session cookie, handed to the
//! core's gate ([`auth_module::gate::Gate::authorize`]), which decides; the
//! [`AuthContext`] extractor and the [`RequireAuthLayer`] that protects host
//! routes.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use auth_module::gate::{Action, Grant, Presented, Refusal};
use auth_module::{AuthClaims, Metadata};

pub use auth_module::gate::{AuthMethod, AuthPolicy};
use axum::extract::{FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use crate::AuthService;
use crate::body::{Field, check_fields, read_object};
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
    /// The context of a credential the gate let through.
    pub(crate) fn from_grant(grant: Grant) -> Self {
        let (claims, method) = (grant.claims, grant.method);
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

/// A store that failed where an answer needed it (checking credentials,
/// readiness): 503 `Service unavailable`, never a 401 that would log the
/// caller out.
pub(crate) fn store_down(e: auth_module::Error) -> ApiError {
    tracing::warn!(error = %e, "a store did not answer");
    ApiError::Unavailable("Service unavailable".to_owned())
}

/// The HTTP answer of a refusal of the gate.
pub(crate) fn refused(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::MfaRequired | Refusal::MfaTooOld => ApiError::MfaGate(refusal.message()),
        Refusal::NoProvider => ApiError::unauthorized(refusal.message()),
        Refusal::Failed(e)
            if e.kind().is_internal() || e.kind() == auth_module::ErrorKind::Unavailable =>
        {
            store_down(e)
        }
        Refusal::Failed(e) => e.into(),
        _ => ApiError::Unauthorized,
    }
}

/// The caller, if the gate lets it do `action`, and its strictly validated
/// body.
pub(crate) async fn caller_and_body(
    svc: &AuthService,
    req: Request,
    action: Action<'_>,
    fields: &[Field],
) -> Result<(Grant, Metadata), ApiError> {
    caller_and_body_by(svc, req, action, |_| fields).await
}

/// [`caller_and_body`] whose fields depend on the body (a code or a
/// credential answers an MFA step): `fields` picks them.
pub(crate) async fn caller_and_body_by<'f>(
    svc: &AuthService,
    req: Request,
    action: Action<'_>,
    fields: impl FnOnce(&Metadata) -> &'f [Field],
) -> Result<(Grant, Metadata), ApiError> {
    let (parts, body) = req.into_parts();
    let grant = svc.authorize(&parts.headers, action).await?;
    let body = read_object(&parts.headers, body, svc.settings().body_limit).await?;
    check_fields(&body, fields(&body))?;
    Ok((grant, body))
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
    /// The credentials a request's headers present: its bearer token and
    /// session cookie.
    pub(crate) fn presented<'a>(&self, headers: &'a HeaderMap) -> Presented<'a> {
        Presented {
            bearer: bearer_token(headers),
            session: self.session_id(headers),
        }
    }

    /// Asks the gate whether the request's credentials may do `action`.
    pub(crate) async fn authorize(
        &self,
        headers: &HeaderMap,
        action: Action<'_>,
    ) -> Result<Grant, ApiError> {
        self.gate()
            .authorize(&self.presented(headers), action)
            .await
            .map_err(refused)
    }

    /// Authenticates a request's headers under `policy` (a host route): the
    /// session first, then the bearer token, as Medusa does. `Ok(None)`
    /// means 401. Step tokens, credentials issued before the identity's last
    /// credential change, and those of an identity that no longer exists are
    /// refused. A store that cannot answer is an `Err` (503 `Service
    /// unavailable`), never a 401; so is the MFA gate's refusal (401 with its
    /// message).
    pub async fn authenticate_headers(
        &self,
        headers: &HeaderMap,
        policy: &AuthPolicy,
    ) -> Result<Option<AuthContext>, ApiError> {
        match self
            .gate()
            .authorize(&self.presented(headers), Action::Host(policy))
            .await
        {
            Ok(grant) => Ok(Some(AuthContext::from_grant(grant))),
            Err(Refusal::Unauthorized) => Ok(None),
            Err(refusal) => Err(refused(refusal)),
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
