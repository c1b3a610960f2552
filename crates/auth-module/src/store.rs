//! For store implementors: the errors every [`crate::IdentityStore`] answers
//! word for word, so a client sees the same text whichever store is
//! configured, and the rule for patchable `app_metadata` keys. The traits
//! themselves are at the crate root; `auth-testkit`'s suites check an
//! implementation against their contracts. [`redact_url`] is the one rule
//! for naming a store's URL without its password.

pub use crate::store_traits::{
    auth_identity_not_found, duplicate_mfa_factor, duplicate_passkey, duplicate_provider_identity,
    invalid_app_metadata_key, provider_identity_not_found, provider_metadata_changed,
    valid_app_metadata_key,
};

/// `url` with its password replaced by `***`, to name a store in errors and
/// logs (`postgres://app:***@db:5432/auth`, `redis://:***@cache:6379`): the
/// user info's password, and the values of password-like query parameters
/// (`?password=`, `sslpassword=`).
///
/// Errs on the side of hiding: everything between `://` and the last `@`
/// before the query is user info, so a password with an unescaped `/` or `@`
/// stays hidden too; a Redis URL's user info without `:` is taken for a
/// password (`redis://s3cret@host`).
pub fn redact_url(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (url, None),
    };
    let mut out = String::with_capacity(url.len());
    match head.split_once("://") {
        Some((scheme, rest)) => {
            out.push_str(scheme);
            out.push_str("://");
            match rest.rsplit_once('@') {
                Some((userinfo, host)) => {
                    match userinfo.split_once(':') {
                        Some((user, _password)) => {
                            out.push_str(user);
                            out.push_str(":***");
                        }
                        None if scheme.starts_with("redis") => out.push_str("***"),
                        None => out.push_str(userinfo),
                    }
                    out.push('@');
                    out.push_str(host);
                }
                None => out.push_str(rest),
            }
        }
        None => out.push_str(head),
    }
    if let Some(query) = query {
        out.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((key, _)) if key.to_ascii_lowercase().contains("pass") => {
                    out.push_str(key);
                    out.push_str("=***");
                }
                _ => out.push_str(pair),
            }
        }
    }
    out
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

    #[test]
    fn hides_passwords() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/auth"),
            "postgres://app:***@db:5432/auth"
        );
        assert_eq!(
            redact_url("postgresql://app:p/a@ss@db/auth?sslmode=require&password=x&sslpassword=y"),
            "postgresql://app:***@db/auth?sslmode=require&password=***&sslpassword=***"
        );
        assert_eq!(
            redact_url("postgres://app@db/auth?PassWord=x"),
            "postgres://app@db/auth?PassWord=***"
        );
    }

    #[test]
    fn keeps_the_rest() {
        for url in [
            "sqlite::memory:",
            "sqlite:///var/lib/auth.db?mode=rwc",
            "postgres://db/auth",
            "postgres://postgres@127.0.0.1:5432/test",
        ] {
            assert_eq!(redact_url(url), url);
        }
    }
}
