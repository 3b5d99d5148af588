//! The first step: the inputs are checked before anything is computed from them, so a bad one
//! is named rather than turned into a signature the server refuses.

use super::settings::{SignableBody, SignableRequest, SignatureLocation, SigningParams};
use super::{MAX_EXPIRES_IN_SECONDS, SigningError, UNSIGNED_PAYLOAD};

/// Refuses empty credentials, scope parts that are not names, methods and header names that
/// are not tokens, header values that could smuggle in headers, a missing host, a payload hash
/// that is not one, and a presigned URL's expiry out of range.
pub(super) fn validate(
    request: &SignableRequest<'_>,
    params: &SigningParams<'_>,
) -> Result<(), SigningError> {
    let creds = params.credentials;
    if creds.access_key_id.trim().is_empty() {
        return Err(SigningError::MissingAccessKeyId);
    }
    if creds.secret_access_key.is_empty() {
        return Err(SigningError::MissingSecretAccessKey);
    }
    let scope_part = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    };
    if !scope_part(params.region) {
        return Err(SigningError::InvalidRegion(params.region.to_owned()));
    }
    if !scope_part(params.service) {
        return Err(SigningError::InvalidService(params.service.to_owned()));
    }
    if !is_token(request.method) {
        return Err(SigningError::InvalidMethod(request.method.to_owned()));
    }
    if !request.path_and_query.starts_with('/')
        || request.path_and_query.chars().any(char::is_control)
    {
        return Err(SigningError::InvalidPath(request.path_and_query.to_owned()));
    }
    for (name, value) in &request.headers {
        if !is_token(name) {
            return Err(SigningError::InvalidHeaderName((*name).to_owned()));
        }
        // A CR or LF would let a value smuggle in headers of its own.
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(SigningError::InvalidHeaderValue {
                name: (*name).to_owned(),
            });
        }
    }
    if !request
        .headers
        .iter()
        .any(|(name, value)| name.eq_ignore_ascii_case("host") && !value.trim().is_empty())
    {
        return Err(SigningError::MissingHost);
    }
    if let SignableBody::Precomputed(hash) = request.body {
        let hex_sha256 = hash.len() == 64
            && hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex_sha256 && hash != UNSIGNED_PAYLOAD && !hash.starts_with("STREAMING-") {
            return Err(SigningError::InvalidPayloadHash(hash.to_owned()));
        }
    }
    if let SignatureLocation::QueryParams { expires_in } = params.settings.signature_location
        && !(1..=MAX_EXPIRES_IN_SECONDS).contains(&expires_in)
    {
        return Err(SigningError::InvalidExpiry(expires_in));
    }
    Ok(())
}

/// RFC 9110 `token`: the characters allowed in methods and header names.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigv4::fixtures::{creds, params, request};
    use crate::sigv4::{Credentials, sign};

    #[test]
    fn missing_host_is_refused() {
        let creds = creds(None);
        let err = sign(&request("/", vec![]), &params(&creds)).unwrap_err();
        assert_eq!(err, SigningError::MissingHost);
        assert!(err.to_string().contains("host"));
    }

    #[test]
    fn header_injection_is_refused() {
        let creds = creds(None);
        let req = request("/", vec![("host", "h"), ("x-evil", "a\r\nx-injected: 1")]);
        assert!(matches!(
            sign(&req, &params(&creds)),
            Err(SigningError::InvalidHeaderValue { .. })
        ));
    }

    #[test]
    fn bad_inputs_name_the_field() {
        let creds = creds(None);
        let ok = request("/", vec![("host", "h")]);
        let mut p = params(&creds);
        p.region = "us east";
        assert!(sign(&ok, &p).unwrap_err().to_string().starts_with("region"));
        let mut p = params(&creds);
        p.settings.signature_location = SignatureLocation::QueryParams { expires_in: 0 };
        assert!(
            sign(&ok, &p)
                .unwrap_err()
                .to_string()
                .starts_with("expires_in")
        );
        let bad_path = request("no-slash", vec![("host", "h")]);
        assert!(matches!(
            sign(&bad_path, &params(&creds)),
            Err(SigningError::InvalidPath(_))
        ));
        let bad_hash = SignableRequest {
            body: SignableBody::Precomputed("abc"),
            ..ok.clone()
        };
        assert!(matches!(
            sign(&bad_hash, &params(&creds)),
            Err(SigningError::InvalidPayloadHash(_))
        ));
        let empty = Credentials {
            access_key_id: " ".into(),
            ..creds.clone()
        };
        assert_eq!(
            sign(&ok, &params(&empty)).unwrap_err(),
            SigningError::MissingAccessKeyId
        );
    }
}
