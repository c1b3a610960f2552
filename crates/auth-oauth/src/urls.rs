//! The rules for URLs in options: identity-provider endpoints must be
//! `https` (plain `http` only on a loopback host), callback URLs belong to
//! the client and may be any `http` or `https` URL.

use std::net::IpAddr;

use auth_module::OptionsError;
use url::{Host, Url};

/// Whether `url`'s host is a loopback host (`127.0.0.0/8`, `::1`, `localhost`).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Whether `url` may be called as an identity-provider endpoint.
pub fn endpoint_allowed(url: &Url) -> bool {
    url.host().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && (url.scheme() == "https" || (url.scheme() == "http" && is_loopback(url)))
}

/// Option `option`'s value as an identity-provider endpoint: `https`, or
/// plain `http` on a loopback host only; no credentials in the URL.
pub fn endpoint(option: &str, value: &str) -> Result<Url, OptionsError> {
    let url = Url::parse(value)
        .map_err(|e| OptionsError::new(option, format!("is not a valid URL ({e})")))?;
    if !endpoint_allowed(&url) {
        return Err(OptionsError::new(
            option,
            "must be an https URL (plain http only for a loopback host: 127.0.0.0/8, ::1, localhost)",
        ));
    }
    Ok(url)
}

/// Option `option`'s value as a callback URL: any `http` or `https` URL with a host.
pub fn callback(option: &str, value: &str) -> Result<String, OptionsError> {
    let url = Url::parse(value)
        .map_err(|e| OptionsError::new(option, format!("is not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(OptionsError::new(option, "must be an http or https URL"));
    }
    Ok(value.to_owned())
}

/// Option `option` must be a non-blank string.
pub fn required(option: &str, value: &str) -> Result<(), OptionsError> {
    if value.trim().is_empty() {
        return Err(OptionsError::new(option, "is required"));
    }
    Ok(())
}

/// The callback policy of the configured callback (`option`, required) and
/// its allow-list (`list_option`), every URL checked with [`callback`].
pub fn callback_policy(
    option: &str,
    url: &str,
    list_option: &str,
    list: &[String],
) -> Result<CallbackPolicy, OptionsError> {
    required(option, url)?;
    callback(option, url)?;
    for (i, u) in list.iter().enumerate() {
        callback(&format!("{list_option}[{i}]"), u)?;
    }
    Ok(CallbackPolicy::new(url, list.to_vec()))
}

/// A numeric option between 1 and `max`, `default` when absent.
pub fn within(
    option: &str,
    value: Option<u64>,
    default: u64,
    max: u64,
) -> Result<u64, OptionsError> {
    match value {
        None => Ok(default),
        Some(v) if (1..=max).contains(&v) => Ok(v),
        Some(_) => Err(OptionsError::new(
            option,
            format!("must be between 1 and {max}"),
        )),
    }
}

/// Which callback URLs a login may ask for: the configured one, and those
/// listed. Matching is exact (byte for byte).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackPolicy {
    default: String,
    allowed: Vec<String>,
}

impl CallbackPolicy {
    /// The configured callback `default`, and the `allowed` overrides.
    pub fn new(default: impl Into<String>, allowed: Vec<String>) -> Self {
        CallbackPolicy {
            default: default.into(),
            allowed,
        }
    }

    /// The configured callback URL.
    pub fn default_url(&self) -> &str {
        &self.default
    }

    /// The callback a login uses when it asks for `asked`: the configured one
    /// when it asks for none, `asked` when it is the configured one or listed,
    /// else `None` (refused: never an open redirect).
    pub fn resolve<'a>(&'a self, asked: Option<&'a str>) -> Option<&'a str> {
        match asked {
            None => Some(&self.default),
            Some(url) if url == self.default || self.allowed.iter().any(|a| a == url) => Some(url),
            Some(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_https_or_loopback_http() {
        for ok in [
            "https://accounts.google.com/o/oauth2/v2/auth",
            "http://127.0.0.1:8080/token",
            "http://127.9.9.9/token",
            "http://localhost:3000/x",
            "http://[::1]:80/jwks",
        ] {
            assert!(endpoint("tokenUrl", ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://example.com/token",
            "http://10.0.0.1/token",
            "ftp://127.0.0.1/x",
            "https://user:pw@idp.example/token",
            "not a url",
            "http://localhost.evil.com/x",
        ] {
            let e = endpoint("tokenUrl", bad).unwrap_err();
            assert!(e.to_string().contains("tokenUrl"), "{bad}: {e}");
        }
    }

    #[test]
    fn callbacks_are_any_http_url_and_overrides_must_be_listed() {
        assert!(callback("callbackUrl", "http://shop.example/cb").is_ok());
        assert!(callback("callbackUrl", "javascript:alert(1)").is_err());
        let p = CallbackPolicy::new("https://a.example/cb", vec!["https://b.example/cb".into()]);
        assert_eq!(p.resolve(None), Some("https://a.example/cb"));
        assert_eq!(
            p.resolve(Some("https://a.example/cb")),
            Some("https://a.example/cb")
        );
        assert_eq!(
            p.resolve(Some("https://b.example/cb")),
            Some("https://b.example/cb")
        );
        assert_eq!(p.resolve(Some("https://b.example/cb/")), None);
        assert_eq!(p.resolve(Some("https://evil.example/cb")), None);
    }
}
