//! Email and password provider for `auth-module`.
//!
//! - Passwords are hashed with argon2id into PHC strings kept in the provider
//!   identity's `provider_metadata.password`; the default cost is OWASP's
//!   m = 19456 KiB, t = 2, p = 1, and weaker settings are refused.
//! - Hashing runs on a fixed set of `max_concurrent_hashes` threads (default:
//!   the number of cores), never on the async executor; the rest wait in line
//!   as futures, so memory stays bounded under load.
//! - Unknown emails and wrong passwords get the same answer after the same work
//!   (a dummy hash is verified for unknown emails).
//! - Emails are trimmed and compared case-insensitively (stored lower-cased).
//! - A stored hash weaker than the configured cost is replaced on the next
//!   successful login.
//! - Medusa's stored passwords (the `scrypt-kdf` format, base64 of a 96-byte
//!   header) verify too, on the same hashing threads (32 MiB each at Medusa's
//!   cost, logN 15, r 8), and are replaced by argon2id on the first
//!   successful login, with a compare-and-set so a concurrent password change
//!   wins.
//! - With `scrypt_timing_floor` (default true) a failed login is answered no
//!   sooner than a scrypt check at Medusa's cost takes (a timer, no CPU), so
//!   an imported user's wrong password, an argon2 user's and an unknown email
//!   take the same time while scrypt hashes remain.
//!
//! ```toml
//! [[providers]]
//! resolve = "emailpass"
//! id = "emailpass"
//! [providers.options]
//! hash = { memory_kib = 19456, iterations = 2, parallelism = 1 }
//! max_concurrent_hashes = 2
//! ```

use std::sync::Arc;

use auth_module::{
    AuthOutcome, AuthProvider, AuthRequest, Error, ErrorKind, Metadata, NewProviderIdentity,
    OptionsError, ProviderFlow, ProviderIdentities, ProviderIdentityUpdate, ProviderInit,
    ProviderKind, Result, ValidateOptions, async_trait,
};
use serde::Deserialize;
use serde_json::Value;

mod hashing;
mod policy;
mod pool;
mod scrypt_kdf;

pub use hashing::{HashError, HashOptions, PasswordHashing, Verification};
pub use policy::{
    PASSWORD_TOO_COMMON, PASSWORD_TOO_WEAK, PasswordPolicy, common_password_count, is_common,
};
pub use pool::{HashingStats, hashing_stats};

/// The provider kind's identifier, named by `resolve` in the config.
pub const IDENTIFIER: &str = "emailpass";

/// The message for a missing, empty or non-string password.
pub const PASSWORD_NOT_STRING: &str = "Password should be a string";
/// The message for a missing, empty or non-string email.
pub const EMAIL_NOT_STRING: &str = "Email should be a string";
/// The message for a registration whose email holds control characters.
pub const EMAIL_INVALID_CHARACTERS: &str = "Email contains invalid characters";
/// The message for a registration whose email is longer than an address can be.
pub const EMAIL_TOO_LONG: &str = "Email is too long";
/// The longest email accepted at registration (RFC 5321's 254 characters).
const MAX_EMAIL_CHARS: usize = 254;
/// The message for a failed login, whatever the reason.
pub const INVALID_CREDENTIALS: &str = "Invalid email or password";
/// The message for a registration that collides with an existing identity.
pub const IDENTITY_EXISTS: &str = "Identity with email already exists";

/// The provider's options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct EmailPassOptions {
    /// argon2id cost.
    #[serde(default)]
    pub hash: HashOptions,
    /// Hashes computed at once; the rest wait. Default: the number of cores.
    #[serde(default)]
    pub max_concurrent_hashes: Option<usize>,
    /// Hashes that may wait for a thread; one more is answered 503 at once.
    /// Default 1024.
    #[serde(default = "default_max_queue")]
    pub max_queue: usize,
    /// The longest a hash waits for a thread before it is answered 503
    /// (`10s`, `500ms`, ... or seconds). Default 10 s.
    #[serde(
        default = "default_max_queue_wait",
        deserialize_with = "auth_module::deserialize_duration"
    )]
    pub max_queue_wait: std::time::Duration,
    /// A hashing thread idle this long frees its memory area (the memory
    /// cost, 19 MiB by default), so resident memory falls back after a load.
    /// Default 10 s.
    #[serde(
        default = "default_release_memory_after",
        deserialize_with = "auth_module::deserialize_duration"
    )]
    pub release_memory_after: std::time::Duration,
    /// Answer failed logins (wrong password, unknown email) no sooner than a
    /// scrypt verification at Medusa's cost takes, so that while imported
    /// scrypt hashes remain, an imported user's wrong password, an argon2
    /// user's and an unknown email take the same time. The floor is measured
    /// once, at the first failed login, and follows the scrypt verifications
    /// seen since. Successful logins are never delayed. Default true; set it
    /// to false when no Medusa user was ever imported.
    #[serde(default = "default_true")]
    pub scrypt_timing_floor: bool,
    /// What a new password (registration, update) must be: at least 8
    /// characters, at most 256 bytes, not on the common-password list, and
    /// optionally a zxcvbn score. [`PasswordPolicy::off`] accepts any
    /// non-empty password, as Medusa does.
    #[serde(default)]
    pub password_policy: PasswordPolicy,
}

fn default_true() -> bool {
    true
}

fn default_release_memory_after() -> std::time::Duration {
    std::time::Duration::from_secs(10)
}

fn default_max_queue() -> usize {
    1024
}

fn default_max_queue_wait() -> std::time::Duration {
    std::time::Duration::from_secs(10)
}

impl Default for EmailPassOptions {
    fn default() -> Self {
        auth_module::section_defaults()
    }
}

impl ValidateOptions for EmailPassOptions {
    fn validate_options(&self) -> std::result::Result<(), OptionsError> {
        self.hash.validate()?;
        self.password_policy.validate()?;
        if self.max_queue_wait.is_zero() {
            return Err(OptionsError::new("max_queue_wait", "must be positive"));
        }
        if self.release_memory_after.is_zero() {
            return Err(OptionsError::new(
                "release_memory_after",
                "must be positive",
            ));
        }
        if let Some(n) = self.max_concurrent_hashes
            && (n == 0 || n > 1024)
        {
            return Err(OptionsError::new(
                "max_concurrent_hashes",
                "must be between 1 and 1024",
            ));
        }
        Ok(())
    }
}

/// The email and password provider.
#[derive(Debug)]
pub struct EmailPassProvider {
    id: String,
    pool: pool::HashPool,
    /// Verified for unknown emails so they cost what a wrong password costs.
    dummy_hash: Arc<str>,
    /// The failure floor, when `scrypt_timing_floor` is on.
    floor: Option<FailureFloor>,
    /// What a new password must be.
    policy: PasswordPolicy,
}

/// The least time a failed login takes: a scrypt verification at Medusa's
/// cost, measured once and then averaged with the ones seen.
#[derive(Debug, Default)]
struct FailureFloor {
    /// Nanoseconds; 0 until measured.
    nanos: std::sync::atomic::AtomicU64,
    measured: tokio::sync::OnceCell<()>,
}

/// A scrypt-kdf value at Medusa's default cost (logN 15, r 8, p 1) that no
/// password matches: what the floor is measured on.
const FLOOR_SCRYPT: &str = "c2NyeXB0AA8AAAAIAAAAAVJ1TAwQaL+Co7u6yFc16rIpo83vr7J6HIF/L87iFBxJHOGx7NzHnOsQu4QbMXB/aZJHRxQwbgK5Qu+F0Mm/ZImr5YXSaAuojo5aNHKoZdpH";

impl FailureFloor {
    fn get(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.nanos.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Folds one scrypt verification's time in (an exponential average).
    fn observe(&self, took: std::time::Duration) {
        let took = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let _ = self.nanos.fetch_update(
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
            |old| {
                Some(if old == 0 {
                    took
                } else {
                    old - old / 8 + took / 8
                })
            },
        );
    }
}

impl ProviderKind for EmailPassProvider {
    const IDENTIFIER: &'static str = IDENTIFIER;
    const DISPLAY_NAME: &'static str = "Email/Password Authentication";
    const FLOW: ProviderFlow = ProviderFlow::Credentials;
    type Options = EmailPassOptions;

    fn new(init: ProviderInit<EmailPassOptions>) -> std::result::Result<Self, OptionsError> {
        let hashing = PasswordHashing::new(init.options.hash)?;
        // Random, so no password matches the dummy hash.
        let dummy_password =
            password_hash::SaltString::generate(&mut password_hash::rand_core::OsRng);
        let dummy_password = dummy_password.as_str();
        // On a short-lived thread, so its hashing memory is freed with it.
        let dummy_hash = std::thread::scope(|scope| {
            scope
                .spawn(|| hashing.hash(dummy_password))
                .join()
                .map_err(|_| OptionsError::new("hash", "the hashing thread panicked"))?
                .map_err(|e| OptionsError::new("hash", e.to_string()))
        })?;
        let threads = init
            .options
            .max_concurrent_hashes
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        let pool = pool::HashPool::new(
            Arc::new(hashing),
            threads,
            init.options.max_queue,
            init.options.max_queue_wait,
            init.options.release_memory_after,
        )
        .map_err(|e| {
            OptionsError::new(
                "max_concurrent_hashes",
                format!("cannot start hashing threads: {e}"),
            )
        })?;
        Ok(EmailPassProvider {
            id: init.id,
            pool,
            dummy_hash: dummy_hash.into(),
            floor: init.options.scrypt_timing_floor.then(FailureFloor::default),
            policy: init.options.password_policy,
        })
    }
}

auth_module::register_provider!(EmailPassProvider);

struct Credentials {
    email: String,
    password: String,
}

/// Password first, then email, as Medusa 2.21 checks them.
fn credentials(body: &Metadata) -> std::result::Result<Credentials, &'static str> {
    let password = match body.get("password") {
        Some(Value::String(p)) if !p.is_empty() => p.clone(),
        _ => return Err(PASSWORD_NOT_STRING),
    };
    let email = match body.get("email") {
        Some(Value::String(e)) if !e.trim().is_empty() => normalize_email(e),
        _ => return Err(EMAIL_NOT_STRING),
    };
    Ok(Credentials { email, password })
}

/// Trimmed and lower-cased: the stored and compared form of an email.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

fn stored_hash<'a>(identity: &'a auth_module::AuthIdentity, provider: &str) -> Option<&'a str> {
    identity
        .provider_identity(provider)?
        .provider_metadata
        .as_ref()?
        .get("password")?
        .as_str()
}

impl EmailPassProvider {
    /// The password policy's refusal of a new password: 400 `invalid_data`
    /// saying what to do, before any hash.
    fn check_policy(&self, password: &str, email: Option<&str>) -> Result<()> {
        match self.policy.check(password, email) {
            Some(message) => Err(Error::invalid_data(message)),
            None => Ok(()),
        }
    }

    async fn run_blocking<T: Send + 'static>(
        &self,
        job: impl FnOnce(&PasswordHashing) -> T + Send + 'static,
    ) -> Result<T> {
        self.pool.run(job).await
    }

    async fn hash(&self, password: String) -> Result<String> {
        self.run_blocking(move |h| h.hash(&password))
            .await?
            .map_err(|e| Error::unexpected("password hashing failed").with_source(e))
    }

    async fn verify(&self, stored: Option<&str>, password: String) -> Result<Verification> {
        let (stored, real) = match stored {
            Some(s) => (Arc::<str>::from(s), true),
            None => (self.dummy_hash.clone(), false),
        };
        let scrypt = stored.starts_with(scrypt_kdf::PREFIX);
        let v = self
            .run_blocking(move |h| {
                let started = std::time::Instant::now();
                let v = h.verify(&stored, &password);
                (v, started.elapsed())
            })
            .await?;
        let (v, took) = v;
        if let Some(floor) = self.floor.as_ref().filter(|_| scrypt) {
            floor.observe(took);
        }
        Ok(if real {
            v
        } else {
            Verification {
                matches: false,
                needs_rehash: false,
            }
        })
    }

    /// Waits until `started` is at least the failure floor ago (measuring
    /// the floor first, once): a wrong password for an imported scrypt user,
    /// for an argon2 user, and an unknown email then take the same time. The
    /// wait is a timer, not hashing: it costs no CPU.
    async fn at_least_the_floor(&self, started: std::time::Instant) -> Result<()> {
        let Some(floor) = &self.floor else {
            return Ok(());
        };
        floor
            .measured
            .get_or_try_init(|| async {
                let v = self
                    .run_blocking(|h| {
                        let started = std::time::Instant::now();
                        let _ = h.verify(FLOOR_SCRYPT, "");
                        started.elapsed()
                    })
                    .await?;
                floor.observe(v);
                Ok::<(), Error>(())
            })
            .await?;
        let wait = floor.get().saturating_sub(started.elapsed());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    fn password_metadata(existing: Option<&Metadata>, hash: String) -> Metadata {
        let mut m = existing.cloned().unwrap_or_default();
        m.insert("password".into(), Value::String(hash));
        m
    }
}

#[async_trait]
impl AuthProvider for EmailPassProvider {
    fn normalize_entity_id(&self, raw: &str) -> String {
        normalize_email(raw)
    }

    fn identifier(&self, req: &AuthRequest) -> Option<String> {
        req.body_str("email")
            .map(normalize_email)
            .filter(|e| !e.is_empty())
    }

    async fn authenticate(
        &self,
        req: AuthRequest,
        ids: &ProviderIdentities,
    ) -> Result<AuthOutcome> {
        let started = std::time::Instant::now();
        let creds = match credentials(&req.body) {
            Ok(c) => c,
            Err(msg) => return Ok(AuthOutcome::failed(msg)),
        };
        let identity = ids.find(&creds.email).await?;
        let stored = identity.as_ref().and_then(|i| stored_hash(i, &self.id));
        let v = self.verify(stored, creds.password.clone()).await?;
        let Some(identity) = identity.filter(|_| v.matches) else {
            self.at_least_the_floor(started).await?;
            return Ok(AuthOutcome::wrong_credentials(INVALID_CREDENTIALS));
        };
        if v.needs_rehash {
            self.upgrade_hash(&identity, &creds.email, creds.password, ids)
                .await;
        }
        Ok(AuthOutcome::authenticated(identity))
    }

    async fn register(&self, req: AuthRequest, ids: &ProviderIdentities) -> Result<AuthOutcome> {
        let creds = match credentials(&req.body) {
            Ok(c) => c,
            Err(msg) => return Ok(AuthOutcome::failed(msg)),
        };
        // No one's email holds control characters (NUL, newlines, ...); storing
        // one would make an identity no client can type. Logins with such an
        // email simply find nobody.
        if creds.email.chars().any(char::is_control) {
            return Ok(AuthOutcome::failed(EMAIL_INVALID_CHARACTERS));
        }
        // RFC 5321 caps an address at 254 characters; longer is never a mailbox.
        if creds.email.chars().count() > MAX_EMAIL_CHARS {
            return Ok(AuthOutcome::failed(EMAIL_TOO_LONG));
        }
        if let Some(existing) = ids.find(&creds.email).await? {
            // An existing identity's password is checked, not chosen: the
            // policy is for new passwords only.
            return self.register_existing(existing, creds.password).await;
        }
        self.check_policy(&creds.password, Some(&creds.email))?;
        let hash = self.hash(creds.password.clone()).await?;
        let new = NewProviderIdentity::new(&self.id, &creds.email)
            .provider_metadata(Self::password_metadata(None, hash));
        match ids.create(new).await {
            Ok(identity) => Ok(AuthOutcome::authenticated(identity)),
            // Lost a race with a concurrent registration of the same email.
            Err(e) if e.kind() == ErrorKind::DuplicateError => {
                match ids.find(&creds.email).await? {
                    Some(existing) => self.register_existing(existing, creds.password).await,
                    None => Ok(AuthOutcome::failed(IDENTITY_EXISTS)),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn update(&self, req: AuthRequest, ids: &ProviderIdentities) -> Result<AuthOutcome> {
        let entity_id = match req.body.get("entity_id").or_else(|| req.body.get("email")) {
            Some(Value::String(e)) if !e.trim().is_empty() => normalize_email(e),
            _ => {
                return Ok(AuthOutcome::failed(format!(
                    "Cannot update {} provider identity without entity_id",
                    self.id
                )));
            }
        };
        let password = match req.body.get("password") {
            Some(Value::String(p)) if !p.is_empty() => p.clone(),
            _ => return Ok(AuthOutcome::failed(PASSWORD_NOT_STRING)),
        };
        let identity = ids.retrieve(&entity_id).await?;
        self.check_policy(&password, Some(&entity_id))?;
        let existing = identity
            .provider_identity(&self.id)
            .and_then(|p| p.provider_metadata.clone());
        let hash = self.hash(password).await?;
        let metadata = Self::password_metadata(existing.as_ref(), hash);
        // Tokens and sessions issued before this change stop being accepted.
        let update = ProviderIdentityUpdate::new()
            .provider_metadata(metadata)
            .bump_credential_version();
        let identity = ids.update(&entity_id, update).await?;
        Ok(AuthOutcome::authenticated(identity))
    }
}

impl EmailPassProvider {
    /// Stores a stronger hash of `password` (just verified against the stored
    /// one), only if the stored metadata is still what was verified: a
    /// password change committed meanwhile wins, and the upgrade is dropped.
    async fn upgrade_hash(
        &self,
        identity: &auth_module::AuthIdentity,
        email: &str,
        password: String,
        ids: &ProviderIdentities,
    ) {
        let read = identity
            .provider_identity(&self.id)
            .and_then(|p| p.provider_metadata.clone());
        let hash = match self.hash(password).await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(provider = %self.id, error = %e, "could not upgrade the password hash");
                return;
            }
        };
        let update = ProviderIdentityUpdate::new()
            .provider_metadata(Self::password_metadata(read.as_ref(), hash))
            .if_provider_metadata(read);
        match ids.update(email, update).await {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Conflict => {
                tracing::debug!(provider = %self.id, "password changed during login; hash upgrade dropped");
            }
            Err(e) => {
                tracing::warn!(provider = %self.id, error = %e, "could not store the upgraded password hash");
            }
        }
    }

    /// Medusa 2.21: registering an existing email succeeds (same identity) only
    /// when the password matches and no actor is linked yet.
    async fn register_existing(
        &self,
        existing: auth_module::AuthIdentity,
        password: String,
    ) -> Result<AuthOutcome> {
        if existing.has_linked_actor() {
            return Ok(AuthOutcome::failed(IDENTITY_EXISTS));
        }
        let v = self
            .verify(stored_hash(&existing, &self.id), password)
            .await?;
        if v.matches {
            Ok(AuthOutcome::authenticated(existing))
        } else {
            // A wrong password for an existing identity: counted as a failed
            // login, so registration is no unthrottled password oracle.
            Ok(AuthOutcome::wrong_credentials(IDENTITY_EXISTS))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Metadata {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn password_is_checked_before_email() {
        assert_eq!(
            credentials(&body(json!({}))).err(),
            Some(PASSWORD_NOT_STRING)
        );
        assert_eq!(
            credentials(&body(json!({"email": 1, "password": ""}))).err(),
            Some(PASSWORD_NOT_STRING)
        );
        assert_eq!(
            credentials(&body(json!({"email": "  ", "password": "x"}))).err(),
            Some(EMAIL_NOT_STRING)
        );
        assert_eq!(
            credentials(&body(json!({"email": ["a"], "password": "x"}))).err(),
            Some(EMAIL_NOT_STRING)
        );
        let c = credentials(&body(
            json!({"email": " Ada@Example.COM ", "password": "x"}),
        ))
        .ok()
        .unwrap();
        assert_eq!(c.email, "ada@example.com");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn control_characters_in_emails_are_refused_at_registration() {
        let provider =
            EmailPassProvider::new(ProviderInit::new("emailpass", EmailPassOptions::default()))
                .unwrap();
        let ids = ProviderIdentities::new(
            "emailpass",
            std::sync::Arc::new(auth_module::MemoryIdentityStore::new()),
            std::sync::Arc::new(auth_module::MemoryStateStore::new()),
        );
        let long = format!("{}@example.com", "a".repeat(250));
        for (email, msg) in [
            ("a\u{0}@b.c", EMAIL_INVALID_CHARACTERS),
            ("a@b.c\nBcc: x@y.z", EMAIL_INVALID_CHARACTERS),
            ("\u{7f}@b.c", EMAIL_INVALID_CHARACTERS),
            (long.as_str(), EMAIL_TOO_LONG),
        ] {
            let req = AuthRequest::json(json!({"email": email, "password": "pw"}));
            match provider.register(req, &ids).await.unwrap() {
                AuthOutcome::Failed(m) => assert_eq!(m, msg),
                other => panic!("{email:?} registered: {other:?}"),
            }
        }
    }

    #[test]
    fn options_reject_zero_concurrency() {
        let o: EmailPassOptions =
            serde_json::from_value(json!({"max_concurrent_hashes": 0})).unwrap();
        assert_eq!(
            o.validate_options().unwrap_err().field(),
            "max_concurrent_hashes"
        );
        assert!(
            serde_json::from_value::<EmailPassOptions>(json!({"hash": {"memory": 1}})).is_err()
        );
    }
}
