//! The identity provider's signing keys: fetched once and reused, fetched
//! again on an unknown `kid` at most once a minute.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use tokio::sync::{Mutex, RwLock};
use url::Url;

use crate::http::Http;

/// The default shortest time between two fetches of the key set caused by unknown keys.
pub(crate) const REFETCH_INTERVAL: Duration = Duration::from_secs(60);
/// After a failed fetch, the key set is not asked for again before this.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

struct Keys {
    url: Url,
    keys: Vec<Key>,
}

#[derive(Default)]
struct FetchLog {
    last: Option<Instant>,
    failed: Option<Instant>,
}

/// A cached JWKS.
#[derive(Default)]
pub(crate) struct JwksCache {
    keys: RwLock<Option<Arc<Keys>>>,
    fetches: Mutex<FetchLog>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache").finish_non_exhaustive()
    }
}

/// The algorithm a JWK allows: what it declares, which must fit its key type;
/// only RS256 (RSA) and ES256 (P-256) are accepted.
fn key_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return None;
    }
    let fits = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        _ => return None,
    };
    match jwk.common.key_algorithm {
        None => Some(fits),
        Some(KeyAlgorithm::RS256) if fits == Algorithm::RS256 => Some(fits),
        Some(KeyAlgorithm::ES256) if fits == Algorithm::ES256 => Some(fits),
        Some(_) => None,
    }
}

/// The usable keys of a JWKS document; keys of other types are skipped.
fn parse(doc: &Value) -> Vec<Key> {
    let Some(list) = doc.get("keys").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|v| serde_json::from_value::<Jwk>(v.clone()).ok())
        .filter_map(|jwk| {
            let alg = key_algorithm(&jwk)?;
            let key = DecodingKey::from_jwk(&jwk).ok()?;
            Some(Key {
                kid: jwk.common.key_id.clone(),
                alg,
                key,
            })
        })
        .collect()
}

impl Keys {
    /// The key for a token signed with `alg` under `kid`: the key with that
    /// id, or with no `kid` in the token the only key of that algorithm.
    fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<&Key> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid) && k.alg == alg),
            None => {
                let mut of_alg = self.keys.iter().filter(|k| k.alg == alg);
                let first = of_alg.next()?;
                of_alg.next().is_none().then_some(first)
            }
        }
    }
}

impl JwksCache {
    /// The decoding key for a token with header `kid` and `alg`, from the key
    /// set at `url`. A miss fetches the set again only if it was not fetched
    /// in the last `refetch_interval`.
    pub(crate) async fn key(
        &self,
        http: &Http,
        url: &Url,
        kid: Option<&str>,
        alg: Algorithm,
        refetch_interval: Duration,
    ) -> Result<(DecodingKey, Algorithm), String> {
        if let Some(found) = self.cached(url, kid, alg).await {
            return Ok(found);
        }
        let mut log = self.fetches.lock().await;
        // Another login may have fetched while this one waited.
        if let Some(found) = self.cached(url, kid, alg).await {
            return Ok(found);
        }
        let have_keys = self
            .keys
            .read()
            .await
            .as_ref()
            .is_some_and(|k| k.url == *url);
        let now = Instant::now();
        if have_keys && log.last.is_some_and(|t| now - t < refetch_interval) {
            return Err(format!(
                "no key {kid:?} for {alg:?} in the key set (fetched {:?} ago)",
                log.last.map(|t| now - t).unwrap_or_default()
            ));
        }
        if log.failed.is_some_and(|t| now - t < RETRY_AFTER_FAILURE) {
            return Err("the key set could not be fetched a moment ago".to_owned());
        }
        let doc = match http.get_json(url, None, "application/json").await {
            Ok(doc) => doc,
            Err(e) => {
                log.failed = Some(now);
                return Err(format!("key set: {e}"));
            }
        };
        log.last = Some(now);
        log.failed = None;
        let keys = Arc::new(Keys {
            url: url.clone(),
            keys: parse(&doc),
        });
        *self.keys.write().await = Some(keys.clone());
        keys.find(kid, alg)
            .map(|k| (k.key.clone(), k.alg))
            .ok_or_else(|| format!("no key {kid:?} for {alg:?} in the key set"))
    }

    async fn cached(
        &self,
        url: &Url,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Option<(DecodingKey, Algorithm)> {
        let guard = self.keys.read().await;
        let keys = guard.as_ref().filter(|k| k.url == *url)?;
        keys.find(kid, alg).map(|k| (k.key.clone(), k.alg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_pinned_to_what_they_declare() {
        let doc = json!({"keys": [
            {"kty": "RSA", "kid": "a", "alg": "RS256", "use": "sig", "n": "sXch", "e": "AQAB"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "sXch", "e": "AQAB"},
            {"kty": "RSA", "kid": "hs", "alg": "HS256", "n": "sXch", "e": "AQAB"},
            {"kty": "oct", "kid": "sym", "k": "c2VjcmV0"},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
        ]});
        let keys = Keys {
            url: Url::parse("https://idp.example/jwks").unwrap(),
            keys: parse(&doc),
        };
        assert_eq!(keys.keys.len(), 1);
        assert!(keys.find(Some("a"), Algorithm::RS256).is_some());
        assert!(keys.find(Some("a"), Algorithm::ES256).is_none());
        assert!(keys.find(Some("enc"), Algorithm::RS256).is_none());
        assert!(keys.find(Some("hs"), Algorithm::RS256).is_none());
        assert!(keys.find(None, Algorithm::RS256).is_some());
        assert!(keys.find(Some("zzz"), Algorithm::RS256).is_none());
    }
}
