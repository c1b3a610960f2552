//! `provider-magic-link`: passwordless e-mail login for `auth-module`, built
//! outside the workspace as any third party would.
//!
//! 1. `POST /auth/{actor}/magic-link` with `{"email"}` answers
//!    `{"location": sent_url}` for every address (no account enumeration) and
//!    emits `magic_link.requested` with `{email, actor_type, code, link,
//!    expires_at}` through the provider's scoped handle: the host mails the
//!    `link`.
//! 2. The link opens the frontend's `callback_url?code=…`, which calls
//!    `GET /auth/{actor}/magic-link/callback?code=…`: the code is spent once,
//!    atomically, and answers a token. A first login creates the identity;
//!    its address is verified by construction (`email_verified: true`).
//!
//! Only the code's SHA-256 is kept, in the provider's scoped state, for
//! `code_ttl_seconds`; a code is bound to the actor type it was asked for.
//!
//! ```toml
//! [[providers]]
//! resolve = "magic-link"
//! id = "magic-link"
//! [providers.options]
//! callback_url = "https://shop.example/auth/magic"   # the page the link opens
//! sent_url = "https://shop.example/check-your-mail"  # where login sends the browser (default: callback_url)
//! code_ttl_seconds = 600                             # 60 to 3600
//! ```

use std::time::Duration;

use auth_module::{
    AuthOutcome, AuthProvider, AuthRequest, NewProviderIdentity, OptionsError, ProviderFlow,
    ProviderIdentities, ProviderInit, ProviderKind, Result, ValidateOptions, async_trait,
};
use base64::Engine as _;
use serde_json::{Value, json};
use sha2::Digest as _;

/// The kind's identifier (what `resolve` names).
pub const IDENTIFIER: &str = "magic-link";

/// The event a login emits, carrying the code and the link.
pub const REQUESTED_EVENT: &str = "magic_link.requested";

/// Options of the `magic-link` provider.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MagicLinkOptions {
    /// The frontend page the e-mailed link opens (`?code=…` is appended).
    pub callback_url: String,
    /// Where a login sends the browser ("check your mail"). Default:
    /// `callback_url`.
    #[serde(default)]
    pub sent_url: Option<String>,
    /// How long a code lives (default 600 s; 60 to 3600).
    #[serde(default = "default_ttl")]
    pub code_ttl_seconds: u64,
}

fn default_ttl() -> u64 {
    600
}

fn is_http_url(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://"))
        && !url.contains(char::is_whitespace)
}

impl ValidateOptions for MagicLinkOptions {
    fn validate_options(&self) -> std::result::Result<(), OptionsError> {
        if !is_http_url(&self.callback_url) {
            return Err(OptionsError::new("callback_url", "must be an http(s) URL"));
        }
        if self.sent_url.as_deref().is_some_and(|u| !is_http_url(u)) {
            return Err(OptionsError::new("sent_url", "must be an http(s) URL"));
        }
        if !(60..=3600).contains(&self.code_ttl_seconds) {
            return Err(OptionsError::new(
                "code_ttl_seconds",
                "must be between 60 and 3600",
            ));
        }
        Ok(())
    }
}

/// The `magic-link` provider.
#[derive(Debug)]
pub struct MagicLinkProvider {
    options: MagicLinkOptions,
}

impl ProviderKind for MagicLinkProvider {
    const IDENTIFIER: &'static str = IDENTIFIER;
    const DISPLAY_NAME: &'static str = "Magic link";
    const FLOW: ProviderFlow = ProviderFlow::Redirect;
    type Options = MagicLinkOptions;

    fn new(init: ProviderInit<MagicLinkOptions>) -> std::result::Result<Self, OptionsError> {
        Ok(MagicLinkProvider {
            options: init.options,
        })
    }
}

/// A trimmed, lower-cased address, if it looks like one.
fn email_of(raw: &str) -> Option<String> {
    let email = raw.trim().to_ascii_lowercase();
    let (local, domain) = email.split_once('@')?;
    (!local.is_empty() && domain.contains('.') && email.len() <= 320 && !email.contains(' '))
        .then_some(email)
}

/// The state key of a code: its SHA-256, never the code.
fn code_key(code: &str) -> String {
    let digest = sha2::Sha256::digest(code.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new code: 32 random bytes from the OS, base64url.
fn new_code() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| auth_module::Error::unexpected("no random source").with_source(e))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

impl MagicLinkProvider {
    fn ttl(&self) -> Duration {
        Duration::from_secs(self.options.code_ttl_seconds)
    }

    fn link(&self, code: &str) -> String {
        let sep = if self.options.callback_url.contains('?') {
            '&'
        } else {
            '?'
        };
        format!("{}{sep}code={code}", self.options.callback_url)
    }
}

#[async_trait]
impl AuthProvider for MagicLinkProvider {
    fn identifier(&self, req: &AuthRequest) -> Option<String> {
        req.body_str("email").and_then(email_of)
    }

    fn normalize_entity_id(&self, raw: &str) -> String {
        raw.trim().to_ascii_lowercase()
    }

    async fn authenticate(
        &self,
        req: AuthRequest,
        ids: &ProviderIdentities,
    ) -> Result<AuthOutcome> {
        let Some(email) = req.body_str("email").and_then(email_of) else {
            return Ok(AuthOutcome::failed("A valid email is required"));
        };
        let actor_type = req.actor_type.clone().unwrap_or_default();
        let code = new_code()?;
        ids.set_state(
            &code_key(&code),
            json!({ "email": email, "actor_type": actor_type }),
            self.ttl(),
        )
        .await?;
        let expires_at = time::OffsetDateTime::now_utc() + self.ttl();
        ids.emit(
            REQUESTED_EVENT,
            json!({
                "email": email,
                "actor_type": actor_type,
                "code": code,
                "link": self.link(&code),
                "expires_at": expires_at.unix_timestamp(),
            }),
        );
        let sent = self
            .options
            .sent_url
            .clone()
            .unwrap_or_else(|| self.options.callback_url.clone());
        Ok(AuthOutcome::redirect(sent))
    }

    async fn validate_callback(
        &self,
        req: AuthRequest,
        ids: &ProviderIdentities,
    ) -> Result<AuthOutcome> {
        let code = req
            .query
            .get("code")
            .or_else(|| req.body.get("code"))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|c| !c.is_empty() && c.len() <= 128);
        let Some(code) = code else {
            return Ok(AuthOutcome::failed("No code provided"));
        };
        // Spent here, once: of concurrent callbacks with one code, one wins.
        let Some(ticket) = ids.take_state(&code_key(code)).await? else {
            return Ok(AuthOutcome::failed("Invalid or expired code"));
        };
        let email = ticket["email"].as_str().unwrap_or_default();
        if ticket["actor_type"].as_str() != req.actor_type.as_deref() || email.is_empty() {
            return Ok(AuthOutcome::failed("Invalid or expired code"));
        }
        let identity = match ids.find(email).await? {
            Some(identity) => identity,
            None => {
                let meta = json!({ "email": email, "email_verified": true });
                ids.create(
                    NewProviderIdentity::new(ids.provider(), email)
                        .user_metadata(meta.as_object().cloned().unwrap_or_default()),
                )
                .await?
            }
        };
        Ok(AuthOutcome::authenticated(identity))
    }
}

auth_module::register_provider!(MagicLinkProvider);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            email_of("  Ada@Example.COM "),
            Some("ada@example.com".into())
        );
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@localhost",
            "a b@example.com",
        ] {
            assert_eq!(email_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn codes_are_long_random_and_kept_only_hashed() {
        let (a, b) = (new_code().unwrap(), new_code().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(code_key(&a).len(), 64);
        assert_ne!(code_key(&a), a);
    }
}
