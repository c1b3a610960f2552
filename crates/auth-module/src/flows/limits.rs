//! Rate limits: fixed-window counters in the [`StateStore`], so they hold
//! across replicas, keyed by a SHA-256 of the identifier (no email in a key)
//! and by client address.
//!
//! A refused login, registration or update is decided by reads alone, before
//! any hashing; only failures (and registrations and reset requests) write.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::config::{Limit, LimitsConfig};
use crate::error::Result;
use crate::keys;
use crate::random::sha256_hex;
use crate::stores::StateStore;

/// What [`Limits::check_login`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoginCheck {
    /// `Some(retry_after)`: the login is refused.
    pub retry_after: Option<Duration>,
    /// Failures of this identifier from this address are counted (a success
    /// clears them).
    failures_here: bool,
}

/// Rate limits over a state store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Limits {
    state: Arc<dyn StateStore>,
    config: LimitsConfig,
}

/// One counter: which limit, and what it counts for.
struct Counter<'a> {
    limit: &'a Limit,
    key: String,
}

impl Limits {
    /// `config`'s limits, counted in `state`.
    pub fn new(state: Arc<dyn StateStore>, config: LimitsConfig) -> Self {
        Limits { state, config }
    }

    /// The configured limits.
    pub fn config(&self) -> &LimitsConfig {
        &self.config
    }

    fn counter<'a>(limit: &'a Limit, name: &str, parts: &[&str]) -> Option<Counter<'a>> {
        limit.is_on().then(|| Counter {
            limit,
            key: keys::limit(name, parts),
        })
    }

    fn login_counters(&self, identifier: Option<&str>, addr: Option<IpAddr>) -> Vec<Counter<'_>> {
        let c = &self.config;
        let id = identifier.map(sha256_hex);
        let addr = addr.map(|a| a.to_string());
        let mut out = Vec::with_capacity(3);
        if let (Some(id), Some(addr)) = (&id, &addr) {
            out.extend(Self::counter(
                &c.login_per_identifier_and_address,
                "login-ia",
                &[id, addr],
            ));
        }
        if let Some(id) = &id {
            out.extend(Self::counter(&c.login_per_identifier, "login-i", &[id]));
        }
        if let Some(addr) = &addr {
            out.extend(Self::counter(&c.login_per_address, "login-a", &[addr]));
        }
        out
    }

    /// The longest window among the counters at or over their count, if any
    /// (the `Retry-After` of a refusal), and whether the first counter exists.
    async fn over(&self, counters: &[Counter<'_>]) -> Result<(Option<Duration>, bool)> {
        let mut retry = None;
        let mut first = false;
        for (i, c) in counters.iter().enumerate() {
            let n = self
                .state
                .get(&c.key)
                .await?
                .as_ref()
                .and_then(Value::as_u64);
            first |= i == 0 && n.is_some();
            if n.is_some_and(|n| n >= c.limit.count) {
                retry = retry.max(Some(c.limit.window));
            }
        }
        Ok((retry, first))
    }

    async fn count(&self, counters: &[Counter<'_>]) -> Result<Option<Duration>> {
        let mut retry = None;
        for c in counters {
            let n = self.state.increment(&c.key, 1, c.limit.window).await?;
            if n > c.limit.count {
                retry = retry.max(Some(c.limit.window));
            }
        }
        Ok(retry)
    }

    /// Whether a login by `identifier` from `addr` is refused now, on
    /// failures counted so far. Reads only.
    pub async fn check_login(
        &self,
        identifier: Option<&str>,
        addr: Option<IpAddr>,
    ) -> Result<LoginCheck> {
        let counters = self.login_counters(identifier, addr);
        let (retry_after, first) = self.over(&counters).await?;
        // The first counter is the per identifier-and-address one when both
        // are known and it is on: only it is cleared by a success.
        let failures_here = first
            && identifier.is_some()
            && addr.is_some()
            && self.config.login_per_identifier_and_address.is_on();
        Ok(LoginCheck {
            retry_after,
            failures_here,
        })
    }

    /// Counts a wrong-credential login.
    pub async fn login_failed(&self, identifier: Option<&str>, addr: Option<IpAddr>) -> Result<()> {
        self.count(&self.login_counters(identifier, addr))
            .await
            .map(|_| ())
    }

    /// A successful login clears the identifier's failures from that address
    /// (no write when `check` saw none).
    pub async fn login_succeeded(
        &self,
        check: &LoginCheck,
        identifier: Option<&str>,
        addr: Option<IpAddr>,
    ) -> Result<()> {
        if !check.failures_here {
            return Ok(());
        }
        if let (Some(id), Some(addr)) = (identifier, addr) {
            let key = keys::limit("login-ia", &[&sha256_hex(id), &addr.to_string()]);
            self.state.delete(&key).await?;
        }
        Ok(())
    }

    fn per_address<'a>(limit: &'a Limit, name: &str, addr: Option<IpAddr>) -> Vec<Counter<'a>> {
        addr.and_then(|a| Self::counter(limit, name, &[&a.to_string()]))
            .into_iter()
            .collect()
    }

    /// `Some(retry_after)` if registrations from `addr` are refused now.
    pub async fn register_refused(&self, addr: Option<IpAddr>) -> Result<Option<Duration>> {
        let counters = Self::per_address(&self.config.register_per_address, "register-a", addr);
        Ok(self.over(&counters).await?.0)
    }

    /// Counts an identity registered from `addr`.
    pub async fn registered(&self, addr: Option<IpAddr>) -> Result<()> {
        self.count(&Self::per_address(
            &self.config.register_per_address,
            "register-a",
            addr,
        ))
        .await
        .map(|_| ())
    }

    /// Counts a reset request for `identifier` from `addr`; `false` if it is
    /// over a limit (the request is then answered as usual and does nothing).
    pub async fn reset_allowed(&self, identifier: &str, addr: Option<IpAddr>) -> Result<bool> {
        let mut counters = Self::per_address(&self.config.reset_per_address, "reset-a", addr);
        counters.extend(Self::counter(
            &self.config.reset_per_identifier,
            "reset-i",
            &[&sha256_hex(identifier)],
        ));
        Ok(self.count(&counters).await?.is_none())
    }

    /// `Some(retry_after)` if `update` calls from `addr` are refused now.
    pub async fn update_refused(&self, addr: Option<IpAddr>) -> Result<Option<Duration>> {
        let counters =
            Self::per_address(&self.config.update_failures_per_address, "update-a", addr);
        Ok(self.over(&counters).await?.0)
    }

    /// Counts a failed `update` from `addr`.
    pub async fn update_failed(&self, addr: Option<IpAddr>) -> Result<()> {
        self.count(&Self::per_address(
            &self.config.update_failures_per_address,
            "update-a",
            addr,
        ))
        .await
        .map(|_| ())
    }
}
