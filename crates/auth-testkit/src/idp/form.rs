//! `application/x-www-form-urlencoded`, as OAuth uses it for queries, token
//! request bodies and the client credentials of HTTP Basic authentication.

use std::collections::BTreeMap;

/// Encodes `value` for a query or form: unreserved characters stay, a space
/// becomes `+`, every other byte `%XX`.
pub(crate) fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Encodes `pairs` as a query string or form body.
pub(crate) fn encode_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    pairs
        .into_iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Decodes one component: `+` is a space, `%XX` a byte; the result must be UTF-8.
pub(crate) fn decode(value: &str) -> Result<String, String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad percent-encoding in {value:?}"))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| format!("{value:?} is not UTF-8 once decoded"))
}

/// Parses a query string or form body. A repeated parameter is an error, as
/// RFC 6749 §3.1 and §3.2 say.
pub(crate) fn parse(input: &str) -> Result<BTreeMap<String, String>, String> {
    let mut map = BTreeMap::new();
    for pair in input.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = decode(k)?;
        let v = decode(v)?;
        if map.contains_key(&k) {
            return Err(format!("parameter {k:?} is repeated"));
        }
        map.insert(k, v);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let s = "a b&c=d/é%+";
        assert_eq!(encode(s), "a+b%26c%3Dd%2F%C3%A9%25%2B");
        assert_eq!(decode(&encode(s)).as_deref(), Ok(s));
    }

    #[test]
    fn parse_rejects_repeats_and_bad_escapes() {
        let m = parse("a=1&b=x+y&c=%7E&&d").expect("valid");
        assert_eq!(m["a"], "1");
        assert_eq!(m["b"], "x y");
        assert_eq!(m["c"], "~");
        assert_eq!(m["d"], "");
        assert!(parse("a=1&a=2").is_err());
        assert!(parse("a=%zz").is_err());
        assert!(parse("a=%C3").is_err());
    }
}
