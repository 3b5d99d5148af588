//! AWS Signature Version 4.
//!
//! [`sign`] computes a signature and returns what to add to the request ([`SigningOutput`]);
//! it mutates nothing and knows no HTTP library, so the same code signs the subject token, any
//! request a host hands us, and the AWS test-suite vectors. Every service quirk is a typed
//! setting ([`SigningSettings`]) rather than a flag soup.
//!
//! Signing runs in the steps of the AWS SDKs' signer (smithy-rs `aws-sigv4`), one module each:
//!
//! 1. `validate`: the inputs are checked, each error naming the input at fault ([`SigningError`]);
//! 2. `canonical_request`: the request in the one form both sides hash (canonical URI, query,
//!    headers, signed headers, payload hash), with the headers or query parameters signing adds;
//! 3. `string_to_sign`: the scope (day, region, service) and the canonical request's hash;
//! 4. `signing_key`: the key derived from the secret for the scope, and the HMAC of the string
//!    to sign with it: the signature;
//! 5. `sign`: the steps in order, ending in the instructions ([`SigningOutput`]).
//!
//! Deriving the key costs most of a signature; a caller that signs often keeps a
//! [`SigningKeyCache`] and signs with [`sign_with_keys`]. The signer itself keeps no state.
//! [`sign_url`] signs a request given by its absolute URL, as the `wif:push/sigv4` export does.

mod canonical_request;
mod error;
mod settings;
mod sign;
mod signing_key;
mod string_to_sign;
mod url;
mod validate;

#[cfg(test)]
mod fixtures;

pub use error::SigningError;
pub use settings::{
    Credentials, PayloadChecksumHeader, PercentEncodingMode, SessionTokenMode, SignableBody,
    SignableRequest, SignatureLocation, SigningParams, SigningSettings, UriPathNormalization,
};
pub use sign::{SigningOutput, sign, sign_with_keys};
pub use signing_key::{SigningKeyCache, signing_key};
pub use string_to_sign::format_amz_date;
pub use url::{sign_url, split_url};

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The SHA-256 of an empty payload.
pub const EMPTY_PAYLOAD_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// Presigned URLs may live at most seven days.
pub const MAX_EXPIRES_IN_SECONDS: u64 = 604_800;
