//! The third step: the string to sign, which binds the canonical request's hash to the time
//! and the scope (day, region, service) the signature is valid for.

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::macros::format_description;

use super::ALGORITHM;

/// When a request is signed, and for what: `20150830T123600Z` and
/// `20150830/us-east-1/iam/aws4_request`.
pub(super) struct SigningScope {
    pub x_amz_date: String,
    pub credential_scope: String,
}

impl SigningScope {
    pub(super) fn new(time: OffsetDateTime, region: &str, service: &str) -> Self {
        let x_amz_date = format_amz_date(time);
        let credential_scope = format!("{}/{region}/{service}/aws4_request", &x_amz_date[..8]);
        SigningScope {
            x_amz_date,
            credential_scope,
        }
    }

    /// The day, `YYYYMMDD`: the signing key's date.
    pub(super) fn date(&self) -> &str {
        &self.x_amz_date[..8]
    }
}

/// `YYYYMMDD'T'HHMMSS'Z'` in UTC.
pub fn format_amz_date(time: OffsetDateTime) -> String {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    time.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .expect("a four-digit year always formats")
}

/// The algorithm, the time, the scope and the canonical request's hex SHA-256, one a line.
pub(super) fn string_to_sign(scope: &SigningScope, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{}\n{}\n{}",
        scope.x_amz_date,
        scope.credential_scope,
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    )
}
