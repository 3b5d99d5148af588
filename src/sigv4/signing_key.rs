//! The fourth step: the key derived from the secret for the scope, and the signature, the
//! HMAC of the string to sign with that key.
//!
//! A key serves a whole day, and deriving it takes four of a signature's five HMAC-SHA256s:
//! most of its cost where SHA-256 has no hardware help (WebAssembly), as the AWS SDKs that
//! cache keys know. A [`SigningKeyCache`] keeps the last few; it is a value its owner keeps
//! (the token source, a component instance), never state of the signer's.

use std::fmt;
use std::sync::{Mutex, MutexGuard};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::Secret;

/// How many derived keys a [`SigningKeyCache`] keeps; the oldest goes first.
const CACHED_KEYS: usize = 8;

/// The key derived from the secret for one day, region and service.
pub fn signing_key(secret: &Secret, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(
        format!("AWS4{}", secret.expose()).as_bytes(),
        date.as_bytes(),
    );
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// The last few signing keys derived, to sign with [`sign_with_keys`](super::sign_with_keys).
/// It holds secrets (the keys and the secrets they came from): `Debug` shows only how many.
#[derive(Default)]
pub struct SigningKeyCache {
    keys: Mutex<Vec<CachedKey>>,
}

/// A derived key (as a keyed HMAC, its key blocks already hashed) and what it came from.
#[derive(Clone)]
struct CachedKey {
    secret: Secret,
    date: String,
    region: String,
    service: String,
    mac: Hmac<Sha256>,
}

impl CachedKey {
    fn is_for(&self, secret: &Secret, date: &str, region: &str, service: &str) -> bool {
        self.date == date
            && self.region == region
            && self.service == service
            && self.secret.expose() == secret.expose()
    }
}

impl SigningKeyCache {
    pub const fn new() -> Self {
        SigningKeyCache {
            keys: Mutex::new(Vec::new()),
        }
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Vec<CachedKey>> {
        // A panic elsewhere cannot leave the list half-changed: every change is one push or
        // one remove.
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An HMAC keyed with [`signing_key`], from the cache when the same inputs were seen lately.
    fn mac(&self, secret: &Secret, date: &str, region: &str, service: &str) -> Hmac<Sha256> {
        let mut keys = self.lock();
        if let Some(cached) = keys
            .iter()
            .find(|k| k.is_for(secret, date, region, service))
        {
            return cached.mac.clone();
        }
        let mac = keyed_mac(&signing_key(secret, date, region, service));
        if keys.len() == CACHED_KEYS {
            keys.remove(0);
        }
        keys.push(CachedKey {
            secret: secret.clone(),
            date: date.to_owned(),
            region: region.to_owned(),
            service: service.to_owned(),
            mac: mac.clone(),
        });
        mac
    }
}

impl Clone for SigningKeyCache {
    fn clone(&self) -> Self {
        SigningKeyCache {
            keys: Mutex::new(self.lock().clone()),
        }
    }
}

impl fmt::Debug for SigningKeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyCache")
            .field("entries", &self.len())
            .finish()
    }
}

/// An HMAC keyed with the signing key for `secret` and the scope: from `cache` when it has it.
pub(super) fn signing_mac(
    cache: Option<&SigningKeyCache>,
    secret: &Secret,
    date: &str,
    region: &str,
    service: &str,
) -> Hmac<Sha256> {
    match cache {
        Some(cache) => cache.mac(secret, date, region, service),
        None => keyed_mac(&signing_key(secret, date, region, service)),
    }
}

/// The signature: the lowercase hex HMAC of the string to sign.
pub(super) fn calculate_signature(key: Hmac<Sha256>, string_to_sign: &str) -> String {
    hex::encode(
        key.chain_update(string_to_sign.as_bytes())
            .finalize()
            .into_bytes(),
    )
}

fn keyed_mac(key: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length")
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    keyed_mac(key)
        .chain_update(data)
        .finalize()
        .into_bytes()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(keyed: Hmac<Sha256>) -> [u8; 32] {
        keyed.chain_update(b"x").finalize().into_bytes().into()
    }

    impl SigningKeyCache {
        fn holds(&self, secret: &Secret, date: &str, region: &str, service: &str) -> bool {
            self.lock()
                .iter()
                .any(|k| k.is_for(secret, date, region, service))
        }
    }

    #[test]
    fn cached_signing_keys_depend_on_every_input() {
        let cache = SigningKeyCache::new();
        let secret = Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
        let other = Secret::new("another-secret");
        let inputs = [
            (&secret, "20150830", "us-east-1", "iam"),
            (&other, "20150830", "us-east-1", "iam"),
            (&secret, "20150831", "us-east-1", "iam"),
            (&secret, "20150830", "eu-west-1", "iam"),
            (&secret, "20150830", "us-east-1", "sts"),
        ];
        for _ in 0..2 {
            for (s, d, r, v) in inputs {
                assert_eq!(
                    mac(cache.mac(s, d, r, v)),
                    hmac(&signing_key(s, d, r, v), b"x")
                );
            }
        }
        assert_eq!(cache.len(), inputs.len());
        // Beyond the cache's size the oldest keys go, and are derived again when needed.
        for day in 10..30 {
            let date = format!("201508{day}");
            assert_eq!(
                mac(cache.mac(&secret, &date, "us-east-1", "sts")),
                hmac(&signing_key(&secret, &date, "us-east-1", "sts"), b"x")
            );
        }
        assert!(cache.len() <= CACHED_KEYS);
    }

    #[test]
    fn caches_share_no_keys_and_derive_evicted_ones_again() {
        let secret = Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
        let key = (&secret, "20150830", "us-east-1", "sts");
        let expected = hmac(&signing_key(key.0, key.1, key.2, key.3), b"x");
        let (one, two) = (SigningKeyCache::new(), SigningKeyCache::new());
        assert_eq!(mac(one.mac(key.0, key.1, key.2, key.3)), expected);
        assert!(one.holds(key.0, key.1, key.2, key.3));
        assert!(!two.holds(key.0, key.1, key.2, key.3));
        assert!(two.is_empty());

        // Eight newer keys push it out; asked for again, it is derived again (and right).
        for day in 10..10 + CACHED_KEYS {
            one.mac(&secret, &format!("201509{day}"), "us-east-1", "sts");
        }
        assert_eq!(one.len(), CACHED_KEYS);
        assert!(!one.holds(key.0, key.1, key.2, key.3));
        assert_eq!(mac(one.mac(key.0, key.1, key.2, key.3)), expected);
        assert!(one.holds(key.0, key.1, key.2, key.3));
        assert_eq!(one.len(), CACHED_KEYS);
        assert!(two.is_empty());
    }

    #[test]
    fn debug_shows_only_how_many_keys() {
        let cache = SigningKeyCache::new();
        cache.mac(
            &Secret::new("canary-secret"),
            "20150830",
            "us-east-1",
            "sts",
        );
        assert_eq!(format!("{cache:?}"), "SigningKeyCache { entries: 1 }");
        assert_eq!(
            format!("{:?}", cache.clone()),
            "SigningKeyCache { entries: 1 }"
        );
    }
}
