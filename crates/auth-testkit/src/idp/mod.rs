//! An in-process fake identity provider for testing OAuth 2.0 / OpenID
//! Connect clients (feature `idp`).
//!
//! [`FakeIdp::start`] serves, on `127.0.0.1` and a free port, a Google-like
//! OpenID Connect provider and a GitHub-like OAuth provider and API. There is
//! no login page: an authorization request is answered at once with a redirect
//! carrying a code for the current [`FakeUser`]. The fake is strict where real
//! providers are (registered clients, exact `redirect_uri`, single-use codes,
//! client authentication, PKCE `S256`), so client bugs show up as errors, and
//! [`FakeIdp::inject`] makes the next request fail in a chosen way.
//!
//! The signing keys are fixed **test-only keys** shipped in this crate's
//! `keys/` directory: their private halves are public, so tokens they sign
//! prove nothing outside tests.
//!
//! # Endpoints
//!
//! | path | what |
//! |---|---|
//! | `GET /.well-known/openid-configuration` | discovery document |
//! | `GET /o/oauth2/v2/auth` | OIDC authorization endpoint ([`FakeIdp::authorization_url`]) |
//! | `POST /token` | OIDC token endpoint ([`FakeIdp::token_url`]) |
//! | `GET /jwks` | the public signing keys ([`FakeIdp::jwks_url`]) |
//! | `GET /userinfo` | OIDC claims for a `Bearer` access token |
//! | `GET /login/oauth/authorize` | GitHub-like authorization ([`FakeIdp::github_authorization_url`]) |
//! | `POST /login/oauth/access_token` | GitHub-like token endpoint ([`FakeIdp::github_token_url`]) |
//! | `GET /api/user`, `GET /api/user/emails` | GitHub-like API ([`FakeIdp::api_url`]) |
//!
//! # Rules the fake enforces
//!
//! Authorization (both paths): `client_id` registered with
//! [`FakeIdp::add_client`], `redirect_uri` an absolute `http`/`https` URL
//! without fragment, `state` present, and on the OIDC path
//! `response_type=code`; otherwise `400` with a JSON `{"error",
//! "error_description"}`. A `code_challenge` needs `code_challenge_method=S256`
//! (`plain` is refused), and a public client must send one. Codes are single
//! use and live ten minutes.
//!
//! Token (both paths): a `application/x-www-form-urlencoded` body with
//! `grant_type=authorization_code`, `code`, and the very `redirect_uri` of the
//! authorization request. A confidential client authenticates with either
//! `client_id` + `client_secret` in the body or HTTP Basic (RFC 6749 §2.3.1:
//! id and secret form-urlencoded, then base64), never both; a public client
//! sends only `client_id`. When the authorization request had a
//! `code_challenge`, `code_verifier` is required and must match; when it had
//! none, a `code_verifier` is refused (no PKCE downgrade). Errors are `400`
//! (`invalid_request`, `invalid_grant`, `unsupported_grant_type`) or `401`
//! (`invalid_client`). Any error consumes nothing except a presented code,
//! which is spent once the client authenticated.
//!
//! The OIDC token answer is `{access_token, token_type: "Bearer", expires_in:
//! 3600, scope, id_token}`, the `id_token` only when the scope has `openid`.
//! The GitHub path answers as GitHub does: `{access_token, token_type:
//! "bearer", scope}` with the scope comma-separated, as JSON when the request
//! has `Accept: application/json` and form-urlencoded otherwise (errors too),
//! and never an `id_token`.
//!
//! The API (`/api/user`, `/api/user/emails`) takes `Authorization: Bearer
//! TOKEN` or `Authorization: token TOKEN` (else `401 {"message": "Bad
//! credentials"}`) and, like GitHub, refuses a request without `User-Agent`
//! with `403`. `/userinfo` takes only `Bearer`. Any access token the fake
//! issued works on both.
//!
//! # Example
//!
//! ```
//! use auth_testkit::idp::{FakeIdp, FakeUser};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let idp = FakeIdp::start().await;
//! idp.add_client("my-app", Some("s3cret"));
//! idp.set_user(FakeUser::new("42", "ada@example.com"));
//! // Point the client under test at idp.url() (the OIDC issuer) or at
//! // idp.github_authorization_url(), idp.github_token_url() and idp.api_url().
//! assert_eq!(idp.issuer(), idp.url());
//! assert_eq!(idp.requests("/token"), 0);
//! # }
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

mod form;
mod handlers;
mod keys;

/// A running fake identity provider. Dropping it stops the server: the
/// listener closes and open connections are cut.
///
/// Needs a Tokio runtime (any flavour) with I/O and time enabled.
pub struct FakeIdp {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl fmt::Debug for FakeIdp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeIdp")
            .field("url", &self.shared.url)
            .field("issuer", &self.shared.issuer)
            .field("es256", &self.shared.es256)
            .finish_non_exhaustive()
    }
}

impl Drop for FakeIdp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeIdp {
    /// Starts a fake on `127.0.0.1` and a free port, signing id_tokens with
    /// RS256 and RSA key A (kid `test-rsa-a`). No client is registered; the
    /// user who logs in is `FakeUser::new("1000001", "user@example.com")`
    /// until [`set_user`](Self::set_user).
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime, or when no loopback port can be bound.
    pub async fn start() -> FakeIdp {
        Self::start_with(FakeIdpOptions::default()).await
    }

    /// Starts a fake as [`start`](Self::start) does, with `options`.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime, or when no loopback port can be bound.
    pub async fn start_with(options: FakeIdpOptions) -> FakeIdp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the fake IdP cannot bind a port on 127.0.0.1");
        let addr = listener
            .local_addr()
            .expect("a bound listener has a local address");
        let url = format!("http://{addr}");
        let shared = Arc::new(Shared {
            issuer: options.issuer.unwrap_or_else(|| url.clone()),
            url,
            es256: options.es256,
            inner: Mutex::new(Inner {
                clients: HashMap::new(),
                user: FakeUser::new("1000001", "user@example.com"),
                failures: VecDeque::new(),
                counts: HashMap::new(),
                codes: HashMap::new(),
                tokens: HashMap::new(),
                last_token_request: None,
                rotated: false,
            }),
        });
        let task = tokio::spawn(handlers::serve(listener, Arc::clone(&shared)));
        FakeIdp { shared, task }
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash; also the OIDC issuer
    /// unless [`FakeIdpOptions::issuer`] says otherwise.
    pub fn url(&self) -> String {
        self.shared.url.clone()
    }

    /// The `iss` of id_tokens and of the discovery document.
    pub fn issuer(&self) -> String {
        self.shared.issuer.clone()
    }

    /// The GitHub-like API base, `{url}/api` (as `https://api.github.com`).
    pub fn api_url(&self) -> String {
        format!("{}/api", self.shared.url)
    }

    /// The OIDC authorization endpoint, `{url}/o/oauth2/v2/auth`.
    pub fn authorization_url(&self) -> String {
        format!("{}/o/oauth2/v2/auth", self.shared.url)
    }

    /// The OIDC token endpoint, `{url}/token`.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.shared.url)
    }

    /// The JWKS, `{url}/jwks`.
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.shared.url)
    }

    /// The GitHub-like authorization endpoint, `{url}/login/oauth/authorize`.
    pub fn github_authorization_url(&self) -> String {
        format!("{}/login/oauth/authorize", self.shared.url)
    }

    /// The GitHub-like token endpoint, `{url}/login/oauth/access_token`.
    pub fn github_token_url(&self) -> String {
        format!("{}/login/oauth/access_token", self.shared.url)
    }

    /// Registers a client. With a secret it is confidential (it must
    /// authenticate at the token endpoint); with `None` it is public and must
    /// use PKCE. Registering an id again replaces it.
    pub fn add_client(&self, client_id: &str, client_secret: Option<&str>) {
        self.shared
            .lock()
            .clients
            .insert(client_id.to_owned(), client_secret.map(str::to_owned));
    }

    /// The user who "logs in" at the following authorization requests, until
    /// changed. Codes already issued keep the user they were issued for.
    pub fn set_user(&self, user: FakeUser) {
        self.shared.lock().user = user;
    }

    /// Makes the next request that `failure` applies to fail that way (see
    /// [`Failure`] for which requests each applies to). A request takes at most
    /// one pending failure of each kind, the oldest: failures of different
    /// kinds combine on one request, two of the same kind hit two requests.
    pub fn inject(&self, failure: Failure) {
        self.shared.lock().failures.push_back(failure);
    }

    /// How many requests, whatever their method or outcome, reached exactly
    /// `path` (without query) so far, e.g. `requests("/token")`.
    pub fn requests(&self, path: &str) -> usize {
        self.shared.lock().counts.get(path).copied().unwrap_or(0)
    }

    /// The last request to either token endpoint, as received.
    pub fn last_token_request(&self) -> Option<TokenRequest> {
        self.shared.lock().last_token_request.clone()
    }

    /// Rotates the signing key: from now on the JWKS also publishes RSA key B
    /// (kid `test-rsa-b`) and new id_tokens are RS256-signed with it.
    pub fn rotate_key(&self) {
        self.shared.lock().rotated = true;
    }
}

/// How [`FakeIdp::start_with`] sets up the fake. Build it from
/// `FakeIdpOptions::default()` and set fields (it is `#[non_exhaustive]`).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct FakeIdpOptions {
    /// Sign id_tokens with ES256 and the EC P-256 key (kid `test-ec-a`); the
    /// JWKS then holds only that key (until [`FakeIdp::rotate_key`]).
    pub es256: bool,
    /// The issuer to announce and put in `iss`, instead of [`FakeIdp::url`].
    pub issuer: Option<String>,
}

/// The person who logs in at the fake, with their OIDC claims and GitHub
/// profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeUser {
    /// OIDC `sub`.
    pub sub: String,
    /// OIDC `email`.
    pub email: Option<String>,
    /// OIDC `email_verified` (sent only with an `email`).
    pub email_verified: bool,
    /// OIDC `name`; also GitHub's `name`.
    pub name: Option<String>,
    /// OIDC `given_name`.
    pub given_name: Option<String>,
    /// OIDC `family_name`.
    pub family_name: Option<String>,
    /// OIDC `picture`.
    pub picture: Option<String>,
    /// GitHub's numeric user `id`.
    pub github_id: u64,
    /// GitHub's `login`.
    pub login: String,
    /// GitHub's `company`.
    pub company: Option<String>,
    /// GitHub's `two_factor_authentication`.
    pub two_factor_authentication: bool,
    /// The public email of `/api/user` (`null` there when `None`).
    pub github_public_email: Option<String>,
    /// `/api/user/emails`: `(email, primary, verified)`.
    pub github_emails: Vec<(String, bool, bool)>,
}

impl FakeUser {
    /// A user with a verified `email`, name "Test User" (given "Test",
    /// family "User"), a picture URL, `login = sub`, a GitHub id equal to `sub`
    /// when it is a number (else derived from a hash of it), the email public
    /// on GitHub and their only, primary, verified address there.
    pub fn new(sub: &str, email: &str) -> Self {
        let github_id = match sub.parse::<u64>() {
            Ok(id) if id > 0 => id,
            _ => {
                let digest = Sha256::digest(sub.as_bytes());
                let mut first = [0u8; 8];
                first.copy_from_slice(&digest[..8]);
                // Small positive ids, like GitHub's.
                u64::from_be_bytes(first) % 1_000_000_000 + 1
            }
        };
        FakeUser {
            sub: sub.to_owned(),
            email: Some(email.to_owned()),
            email_verified: true,
            name: Some("Test User".to_owned()),
            given_name: Some("Test".to_owned()),
            family_name: Some("User".to_owned()),
            picture: Some(format!(
                "https://example.com/avatars/{}.png",
                form::encode(sub)
            )),
            github_id,
            login: sub.to_owned(),
            company: None,
            two_factor_authentication: false,
            github_public_email: Some(email.to_owned()),
            github_emails: vec![(email.to_owned(), true, true)],
        }
    }
}

/// A failure for [`FakeIdp::inject`]; each is used once, by the next request
/// it applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// The next valid authorization request (either path) redirects to its
    /// `redirect_uri` with `error`, `error_description`, `error_uri` and
    /// `state` instead of a code.
    ErrorRedirect {
        /// The `error` code, e.g. `access_denied`.
        error: String,
        /// The `error_description`.
        description: String,
        /// The `error_uri`.
        uri: String,
    },
    /// The next token request (either path) answers this status with
    /// `{"error": "invalid_grant", "error_description": "..."}`, before
    /// looking at the request (the code stays usable).
    TokenStatus(u16),
    /// The next token request (either path) answers, as GitHub does, `200`
    /// with `{"error": "bad_verification_code", "error_description": "The
    /// code passed is incorrect or expired."}` (the code stays usable).
    TokenOkWithError,
    /// The next token request sleeps this long, then answers normally.
    Slow(Duration),
    /// The next id_token is signed with RSA key B but names kid `test-rsa-a`
    /// (in ES256 mode: its ES256 signature is damaged).
    BadSignature,
    /// The next id_token is signed with RSA key B under kid `unknown-kid`,
    /// which the JWKS does not have.
    UnknownKid,
    /// The next id_token has another `iss`.
    WrongIssuer,
    /// The next id_token has another `aud`.
    WrongAudience,
    /// The next id_token has another `nonce` (even when none was sent).
    WrongNonce,
    /// The next id_token's `exp` and `iat` are an hour ago.
    Expired,
    /// The next id_token has an `nbf` an hour ahead.
    NotYetValid,
    /// The next id_token's `at_hash` does not match its access token.
    BadAtHash,
    /// The next `/api/user` or `/api/user/emails` request answers this status
    /// with a GitHub-like `{"message": ...}`.
    ApiStatus(u16),
}

/// What the failures are grouped by: a request takes at most one of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Authorize,
    TokenDelay,
    TokenAnswer,
    Signature,
    Issuer,
    Audience,
    Nonce,
    Expired,
    NotYetValid,
    AtHash,
    Api,
}

impl Failure {
    fn slot(&self) -> Slot {
        match self {
            Failure::ErrorRedirect { .. } => Slot::Authorize,
            Failure::TokenStatus(_) | Failure::TokenOkWithError => Slot::TokenAnswer,
            Failure::Slow(_) => Slot::TokenDelay,
            Failure::BadSignature | Failure::UnknownKid => Slot::Signature,
            Failure::WrongIssuer => Slot::Issuer,
            Failure::WrongAudience => Slot::Audience,
            Failure::WrongNonce => Slot::Nonce,
            Failure::Expired => Slot::Expired,
            Failure::NotYetValid => Slot::NotYetValid,
            Failure::BadAtHash => Slot::AtHash,
            Failure::ApiStatus(_) => Slot::Api,
        }
    }
}

/// A request to a token endpoint, as the fake received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The decoded form body (empty when it was not a valid form).
    pub form: BTreeMap<String, String>,
    /// The decoded HTTP Basic client id and secret, when sent and well formed.
    pub basic_auth: Option<(String, String)>,
    /// The `Accept` header.
    pub accept: Option<String>,
}

/// How long an authorization code can be redeemed.
const CODE_LIFETIME: Duration = Duration::from_secs(600);

/// State shared between the handle and the server task.
#[derive(Debug)]
struct Shared {
    url: String,
    issuer: String,
    es256: bool,
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking handler leaves the maps consistent (each update is one
        // insert or remove), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug)]
struct Inner {
    /// client_id → secret (`None`: public client).
    clients: HashMap<String, Option<String>>,
    user: FakeUser,
    failures: VecDeque<Failure>,
    counts: HashMap<String, usize>,
    codes: HashMap<String, Grant>,
    tokens: HashMap<String, Issued>,
    last_token_request: Option<TokenRequest>,
    rotated: bool,
}

impl Inner {
    /// Takes, for each of `slots`, the oldest pending failure of that kind.
    fn take(&mut self, slots: &[Slot]) -> Vec<Failure> {
        let mut taken = Vec::new();
        for slot in slots {
            if let Some(i) = self.failures.iter().position(|f| f.slot() == *slot) {
                taken.extend(self.failures.remove(i));
            }
        }
        taken
    }
}

/// What an authorization code stands for.
#[derive(Debug, Clone)]
struct Grant {
    client_id: String,
    redirect_uri: String,
    /// The S256 code challenge, when one was sent.
    code_challenge: Option<String>,
    nonce: Option<String>,
    scope: Option<String>,
    user: FakeUser,
    issued_at: Instant,
}

/// What an access token stands for.
#[derive(Debug, Clone)]
struct Issued {
    user: FakeUser,
}
