//! The fourth step: the key derived from the secret for the scope, and the signature, the
//! HMAC of the string to sign with that key.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::Secret;

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

/// A derived key (as a keyed HMAC, its key blocks already hashed) and what it came from.
struct CachedKey {
    secret: Secret,
    date: String,
    region: String,
    service: String,
    mac: Hmac<Sha256>,
}

/// The last few signing keys derived. A key serves a whole day, and deriving it takes four of
/// a signature's five HMAC-SHA256s: most of its cost where SHA-256 has no hardware help
/// (WebAssembly), as the AWS SDKs that cache keys know.
static SIGNING_KEYS: std::sync::Mutex<Vec<CachedKey>> = std::sync::Mutex::new(Vec::new());
const CACHED_KEYS: usize = 8;

/// An HMAC keyed with [`signing_key`], from the cache when the same inputs were seen lately.
pub(super) fn cached_signing_key(
    secret: &Secret,
    date: &str,
    region: &str,
    service: &str,
) -> Hmac<Sha256> {
    let mut keys = SIGNING_KEYS.lock().unwrap_or_else(|e| e.into_inner());
    let found = keys.iter().find(|k| {
        k.date == date
            && k.region == region
            && k.service == service
            && k.secret.expose() == secret.expose()
    });
    if let Some(cached) = found {
        return cached.mac.clone();
    }
    let key = signing_key(secret, date, region, service);
    let mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes keys of any length");
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

/// The signature: the lowercase hex HMAC of the string to sign.
pub(super) fn calculate_signature(key: Hmac<Sha256>, string_to_sign: &str) -> String {
    hex::encode(
        key.chain_update(string_to_sign.as_bytes())
            .finalize()
            .into_bytes(),
    )
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(keyed: Hmac<Sha256>) -> [u8; 32] {
        keyed.chain_update(b"x").finalize().into_bytes().into()
    }

    #[test]
    fn cached_signing_keys_depend_on_every_input() {
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
                    mac(cached_signing_key(s, d, r, v)),
                    hmac(&signing_key(s, d, r, v), b"x")
                );
            }
        }
        // Beyond the cache's size the oldest keys go, and are derived again when needed.
        for day in 10..30 {
            let date = format!("201508{day}");
            assert_eq!(
                mac(cached_signing_key(&secret, &date, "us-east-1", "sts")),
                hmac(&signing_key(&secret, &date, "us-east-1", "sts"), b"x")
            );
        }
        assert!(SIGNING_KEYS.lock().unwrap().len() <= CACHED_KEYS);
    }
}
