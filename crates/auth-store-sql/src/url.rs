//! Database URLs made safe to print.

/// `url` with the password of its user info and the values of password-like
/// query parameters replaced by `***`.
///
/// Errs on the side of hiding: everything between `://` and the last `@`
/// before the query is user info, so a password with an unescaped `/` or `@`
/// stays hidden too.
pub(crate) fn redact(url: &str) -> String {
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
    use super::redact;

    #[test]
    fn hides_passwords() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/auth"),
            "postgres://app:***@db:5432/auth"
        );
        assert_eq!(
            redact("postgresql://app:p/a@ss@db/auth?sslmode=require&password=x&sslpassword=y"),
            "postgresql://app:***@db/auth?sslmode=require&password=***&sslpassword=***"
        );
        assert_eq!(
            redact("postgres://app@db/auth?PassWord=x"),
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
            assert_eq!(redact(url), url);
        }
    }
}
