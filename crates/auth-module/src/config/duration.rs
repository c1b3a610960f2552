//! Durations as the file writes them (`24h`, `15m`, `90s`, or seconds).

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Deserializes a duration written as a humantime-like string (`24h`, `15m`,
/// `90s`, `1h30m`, `2d`, `500ms`) or a number of seconds: for
/// `#[serde(deserialize_with = "auth_module::deserialize_duration")]` in the
/// sections other crates own.
pub fn deserialize_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Secs(s) => Ok(Duration::from_secs(s)),
        Raw::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
    }
}

/// Parses `24h`, `15m`, `90s`, `1h30m`, `2d`, `500ms` or a bare number of seconds.
///
/// Ours, not `humantime`'s: that also takes weeks, months (`M`, beside `m`
/// for minutes), years and fractions, so `3 weeks` or a mistyped `30M` (30
/// months) would load silently, and it refuses a bare number of seconds.
pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("invalid duration `{text}`: expected a number"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration `{text}`"))?;
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = rest[..unit_len].trim();
        let per = match unit {
            "ms" => Duration::from_millis(1),
            "s" | "sec" | "secs" => Duration::from_secs(1),
            "m" | "min" | "mins" => Duration::from_secs(60),
            "h" | "hr" | "hour" | "hours" => Duration::from_secs(3600),
            "d" | "day" | "days" => Duration::from_secs(86400),
            _ => {
                return Err(format!(
                    "invalid duration `{text}`: unknown unit `{unit}` (use ms, s, m, h or d)"
                ));
            }
        };
        let n = u32::try_from(n).map_err(|_| format!("invalid duration `{text}`: too large"))?;
        total += per * n;
        rest = &rest[unit_len..];
    }
    Ok(total)
}
