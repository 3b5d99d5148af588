//! The last step: [`sign`] runs the others in order and turns their results into instructions
//! ([`SigningOutput`]): the headers or query parameters to add. It mutates nothing.

use std::fmt;

use super::canonical_request::{CanonicalRequest, encode};
use super::settings::{SessionTokenMode, SignableRequest, SignatureLocation, SigningParams};
use super::signing_key::{SigningKeyCache, calculate_signature, signing_mac};
use super::string_to_sign::{SigningScope, string_to_sign};
use super::validate::validate;
use super::{ALGORITHM, SigningError};

/// Signs `request`. Pure: the same inputs always give the same output.
pub fn sign(
    request: &SignableRequest<'_>,
    params: &SigningParams<'_>,
) -> Result<SigningOutput, SigningError> {
    sign_using(request, params, None)
}

/// [`sign`], taking the signing key from `keys` when it holds it and keeping it there when
/// not. The output is the same as [`sign`]'s; only the time to compute it differs.
pub fn sign_with_keys(
    request: &SignableRequest<'_>,
    params: &SigningParams<'_>,
    keys: &SigningKeyCache,
) -> Result<SigningOutput, SigningError> {
    sign_using(request, params, Some(keys))
}

pub(super) fn sign_using(
    request: &SignableRequest<'_>,
    params: &SigningParams<'_>,
    keys: Option<&SigningKeyCache>,
) -> Result<SigningOutput, SigningError> {
    validate(request, params)?;
    let token = params.credentials.session_token();
    let (signed_token, unsigned_token) = match params.settings.session_token_mode {
        SessionTokenMode::Include => (token, None),
        SessionTokenMode::AddAfterSigning => (None, token),
    };
    let scope = SigningScope::new(params.time, params.region, params.service);
    let canonical = CanonicalRequest::new(request, params, &scope, signed_token);
    let string_to_sign = string_to_sign(&scope, &canonical.text);
    let key = signing_mac(
        keys,
        &params.credentials.secret_access_key,
        scope.date(),
        params.region,
        params.service,
    );
    let signature = calculate_signature(key, &string_to_sign);

    let mut headers = canonical.added_headers;
    let mut query_params = canonical.presign_params;
    match params.settings.signature_location {
        SignatureLocation::Headers => {
            if let Some(token) = unsigned_token {
                headers.push(("x-amz-security-token".into(), token.to_owned()));
            }
            let authorization = format!(
                "{ALGORITHM} Credential={}/{}, SignedHeaders={}, Signature={signature}",
                params.credentials.access_key_id, scope.credential_scope, canonical.signed_headers
            );
            headers.push(("authorization".into(), authorization));
        }
        SignatureLocation::QueryParams { .. } => {
            if let Some(token) = unsigned_token {
                query_params.push(("X-Amz-Security-Token".into(), token.to_owned()));
            }
            query_params.push(("X-Amz-Signature".into(), signature.clone()));
        }
    }
    Ok(SigningOutput {
        headers,
        query_params,
        x_amz_date: scope.x_amz_date,
        credential_scope: scope.credential_scope,
        signed_headers: canonical.signed_headers,
        canonical_request: canonical.text,
        string_to_sign,
        signature,
    })
}

/// What signing produced: the parts to add to the request, and the intermediate strings
/// (useful when a server answers `SignatureDoesNotMatch`).
#[derive(Clone, PartialEq, Eq)]
pub struct SigningOutput {
    /// Headers to add, in this order. Holds the session token when there is one.
    pub headers: Vec<(String, String)>,
    /// Query parameters to append (unencoded), for presigned URLs. See [`SigningOutput::presigned_path_and_query`].
    pub query_params: Vec<(String, String)>,
    pub x_amz_date: String,
    pub credential_scope: String,
    pub signed_headers: String,
    pub canonical_request: String,
    pub string_to_sign: String,
    pub signature: String,
}

impl fmt::Debug for SigningOutput {
    // The headers and query parameters may carry the session token; show the rest.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningOutput")
            .field("x_amz_date", &self.x_amz_date)
            .field("credential_scope", &self.credential_scope)
            .field("signed_headers", &self.signed_headers)
            .field("signature", &self.signature)
            .finish_non_exhaustive()
    }
}

impl SigningOutput {
    /// The `Authorization` header value, when the signature went into headers.
    pub fn authorization(&self) -> Option<&str> {
        self.header("authorization")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `path_and_query` with the presigning parameters appended (unchanged for header signing).
    pub fn presigned_path_and_query(&self, path_and_query: &str) -> String {
        let mut out = path_and_query.to_owned();
        for (name, value) in &self.query_params {
            out.push(if out.contains('?') { '&' } else { '?' });
            out.push_str(&encode(name.as_bytes()));
            out.push('=');
            out.push_str(&encode(value.as_bytes()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigv4::fixtures::{creds, params, request};

    #[test]
    fn token_added_after_signing_is_not_signed_but_sent() {
        let creds = creds(Some("TOKEN"));
        let mut p = params(&creds);
        p.settings.session_token_mode = SessionTokenMode::AddAfterSigning;
        let out = sign(&request("/", vec![("host", "h")]), &p).unwrap();
        assert!(!out.canonical_request.contains("TOKEN"));
        assert_eq!(out.header("x-amz-security-token"), Some("TOKEN"));
        assert!(!out.signed_headers.contains("x-amz-security-token"));
    }

    #[test]
    fn debug_output_hides_the_session_token() {
        let creds = creds(Some("canary-session-token"));
        let out = sign(&request("/", vec![("host", "h")]), &params(&creds)).unwrap();
        assert!(!format!("{out:?}").contains("canary"));
        assert!(!format!("{creds:?}").contains("canary"));
        assert!(!format!("{creds:?}").contains("wJalr"));
    }

    #[test]
    fn presigned_path_appends_encoded_params() {
        let creds = creds(None);
        let mut p = params(&creds);
        p.settings.signature_location = SignatureLocation::QueryParams { expires_in: 60 };
        let out = sign(&request("/x?a=1", vec![("host", "h")]), &p).unwrap();
        let url = out.presigned_path_and_query("/x?a=1");
        assert!(url.starts_with(
            "/x?a=1&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2F"
        ));
        assert!(url.ends_with(&format!("&X-Amz-Signature={}", out.signature)));
        assert!(out.authorization().is_none());
    }

    #[test]
    fn signing_with_keys_gives_the_same_output() {
        let creds = creds(Some("TOKEN"));
        let req = request("/x?a=1", vec![("host", "h")]);
        let uncached = sign(&req, &params(&creds)).unwrap();
        let keys = SigningKeyCache::new();
        for _ in 0..2 {
            assert_eq!(
                sign_with_keys(&req, &params(&creds), &keys).unwrap(),
                uncached
            );
        }
        assert_eq!(keys.len(), 1);
    }
}
