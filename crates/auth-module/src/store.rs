//! For store implementors: the errors every [`crate::IdentityStore`] answers
//! word for word, so a client sees the same text whichever store is
//! configured, and the rule for patchable `app_metadata` keys. The traits
//! themselves are at the crate root; `auth-testkit`'s suites check an
//! implementation against their contracts.

pub use crate::stores::{
    auth_identity_not_found, duplicate_mfa_factor, duplicate_provider_identity,
    invalid_app_metadata_key, provider_identity_not_found, provider_metadata_changed,
    valid_app_metadata_key,
};

/// `url` with its password replaced by `***`, to name a store in errors and
/// logs (`postgres://app:***@db:5432/auth`, `redis://:***@cache:6379`).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let shown = match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None => "***".to_owned(),
            };
            format!("{scheme}://{shown}@{host}{path}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn urls_are_shown_without_passwords() {
        assert_eq!(
            redact_url("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(
            redact_url("postgres://user:s3cret@db.internal:5432/auth"),
            "postgres://user:***@db.internal:5432/auth"
        );
        assert_eq!(redact_url("rediss://:s3cret@cache"), "rediss://:***@cache");
        assert_eq!(redact_url("redis://s3cret@h"), "redis://***@h");
        assert!(!redact_url("redis://a:p@ss@h/0").contains("p@ss"));
        assert_eq!(redact_url("sqlite://./auth.db"), "sqlite://./auth.db");
    }
}
