//! The checks of providers' options. URLs: identity-provider endpoints must
//! be `https` (plain `http` only on a loopback host; for discovered ones, only
//! when the issuer is loopback `http` too), callback URLs belong to
//! the client and may be any `http` or `https` URL. And the client's other
//! options: required strings, the client secret, numbers within bounds, the
//! HTTP timeout. Each check names the option as the provider spells it.

use std::net::IpAddr;
use std::time::Duration;

use auth_module::{OptionsError, Secret};
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

/// Whether `url`, announced by the discovery document of `issuer`, may be
/// called: `https`; plain `http` on a loopback host only when the issuer
/// itself is a loopback `http` URL (a local test identity provider). An
/// `https` issuer's document never sends the client to plain `http`, not
/// even on a loopback host.
pub fn discovered_endpoint_allowed(issuer: &Url, url: &Url) -> bool {
    endpoint_allowed(url)
        && (url.scheme() == "https" || (issuer.scheme() == "http" && is_loopback(issuer)))
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

/// Option `option`'s value as an identity-provider endpoint (see
/// [`endpoint`]), when it is set.
pub fn optional_endpoint(option: &str, value: Option<&str>) -> Result<Option<Url>, OptionsError> {
    value.map(|u| endpoint(option, u)).transpose()
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

/// The client secret, unless it is absent or empty (a public client).
pub fn secret(value: Option<&Secret>) -> Option<Secret> {
    value.filter(|s| !s.expose().is_empty()).cloned()
}

/// Option `option`'s client secret, which must be set and not empty.
pub fn required_secret(option: &str, value: Option<&Secret>) -> Result<Secret, OptionsError> {
    secret(value).ok_or_else(|| OptionsError::new(option, "is required"))
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

/// Option `option` as the timeout of each call to the identity provider, in
/// milliseconds: between 1 and 300000, [`crate::DEFAULT_HTTP_TIMEOUT`] when absent.
pub fn http_timeout(option: &str, millis: Option<u64>) -> Result<Duration, OptionsError> {
    const DEFAULT_MS: u64 = crate::DEFAULT_HTTP_TIMEOUT.as_millis() as u64;
    within(option, millis, DEFAULT_MS, 300_000).map(Duration::from_millis)
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
    fn discovered_endpoints_are_plain_http_only_for_a_loopback_http_issuer() {
        let url = |u: &str| Url::parse(u).unwrap();
        let local = url("http://127.0.0.1:8080");
        let remote = url("https://idp.example");
        // An https issuer: https endpoints only, loopback or not.
        assert!(discovered_endpoint_allowed(
            &remote,
            &url("https://idp.example/token")
        ));
        assert!(discovered_endpoint_allowed(
            &remote,
            &url("https://localhost/token")
        ));
        for bad in [
            "http://127.0.0.1:8080/token",
            "http://localhost/token",
            "http://[::1]/jwks",
            "http://idp.example/token",
        ] {
            assert!(!discovered_endpoint_allowed(&remote, &url(bad)), "{bad}");
        }
        // A loopback http issuer (a local test identity provider).
        for ok in [
            "http://127.0.0.1:8080/token",
            "http://localhost:9/jwks",
            "https://idp.example/token",
        ] {
            assert!(discovered_endpoint_allowed(&local, &url(ok)), "{ok}");
        }
        for bad in [
            "http://idp.example/token",
            "http://10.0.0.1/token",
            "https://u:p@idp.example/token",
        ] {
            assert!(!discovered_endpoint_allowed(&local, &url(bad)), "{bad}");
        }
        // An http issuer that is not loopback gets nothing plain.
        assert!(!discovered_endpoint_allowed(
            &url("http://idp.example"),
            &url("http://127.0.0.1/token")
        ));
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

    #[test]
    fn secrets_are_empty_as_absent_and_timeouts_default_to_ten_seconds() {
        assert!(secret(Some(&Secret::new(""))).is_none());
        assert_eq!(
            secret(Some(&Secret::new("s"))).map(|s| s.expose().to_owned()),
            Some("s".to_owned())
        );
        let e = required_secret("clientSecret", None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("clientSecret") && e.contains("is required"),
            "{e}"
        );
        assert_eq!(
            http_timeout("httpTimeoutMs", None).unwrap(),
            crate::DEFAULT_HTTP_TIMEOUT
        );
        assert_eq!(
            http_timeout("httpTimeoutMs", Some(250)).unwrap(),
            Duration::from_millis(250)
        );
        for bad in [0, 300_001] {
            let e = http_timeout("http_timeout_ms", Some(bad)).unwrap_err();
            assert!(e.to_string().contains("http_timeout_ms"), "{bad}: {e}");
        }
        assert_eq!(optional_endpoint("jwks_uri", None).unwrap(), None);
        assert!(optional_endpoint("jwks_uri", Some("http://idp.example/k")).is_err());
    }
}
