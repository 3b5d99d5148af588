//! The second step: the canonical request, the request in the one form that both the signer
//! and the server hash. It is built from what the caller gives plus what signing adds: the
//! `x-amz-*` headers, or for a presigned URL the `X-Amz-*` query parameters.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest, Sha256};

use super::settings::{
    PayloadChecksumHeader, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
    SigningParams, SigningSettings, UriPathNormalization,
};
use super::string_to_sign::SigningScope;
use super::{ALGORITHM, EMPTY_PAYLOAD_SHA256, UNSIGNED_PAYLOAD};

/// Headers that proxies and HTTP stacks add or rewrite in transit; signing them would make the
/// signature fragile, so (like the AWS SDKs) we leave them out.
const UNSIGNED_HEADERS: &[&str] = &[
    "authorization",
    "connection",
    "expect",
    "transfer-encoding",
    "user-agent",
    "x-amzn-trace-id",
];

/// RFC 3986 unreserved characters stay as they are; everything else is percent-encoded.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
const PATH_DOUBLE: &AsciiSet = &UNRESERVED.remove(b'/');
const PATH_SINGLE: &AsciiSet = &PATH_DOUBLE.remove(b'%');

/// The canonical request, and what signing adds to the request to make it.
pub(super) struct CanonicalRequest {
    /// Headers that signing adds and signs, in this order: `x-amz-date`, the session token,
    /// `x-amz-content-sha256`. Empty for a presigned URL.
    pub added_headers: Vec<(String, String)>,
    /// For a presigned URL, the `X-Amz-*` query parameters (unencoded) that are signed.
    pub presign_params: Vec<(String, String)>,
    /// The signed headers' lowercase names, sorted, joined with `;`.
    pub signed_headers: String,
    /// The canonical request itself.
    pub text: String,
}

impl CanonicalRequest {
    /// `signed_token` is the session token when it is part of the signature.
    pub(super) fn new(
        request: &SignableRequest<'_>,
        params: &SigningParams<'_>,
        scope: &SigningScope,
        signed_token: Option<&str>,
    ) -> Self {
        let settings = &params.settings;
        let payload_hash = payload_hash(request.body);
        let added_headers = added_headers(settings, scope, signed_token, &payload_hash);
        let headers = canonical_headers(
            request
                .headers
                .iter()
                .copied()
                .chain(added_headers.iter().map(|(n, v)| (n.as_str(), v.as_str()))),
        );
        let signed_headers = headers
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(";");
        let presign_params = presign_params(
            settings,
            &params.credentials.access_key_id,
            scope,
            &signed_headers,
            signed_token,
        );
        let (path, query) = split_path_and_query(request.path_and_query);

        let mut text = String::new();
        text.push_str(request.method);
        text.push('\n');
        text.push_str(&canonical_uri(path, settings));
        text.push('\n');
        text.push_str(&canonical_query(query, &presign_params));
        text.push('\n');
        for (name, value) in &headers {
            text.push_str(name);
            text.push(':');
            text.push_str(value);
            text.push('\n');
        }
        text.push('\n');
        text.push_str(&signed_headers);
        text.push('\n');
        text.push_str(&payload_hash);
        CanonicalRequest {
            added_headers,
            presign_params,
            signed_headers,
            text,
        }
    }
}

/// The payload's entry: its lowercase hex SHA-256, or what stands in for it.
fn payload_hash(body: SignableBody<'_>) -> String {
    match body {
        SignableBody::Bytes([]) => EMPTY_PAYLOAD_SHA256.to_owned(),
        SignableBody::Bytes(bytes) => hex::encode(Sha256::digest(bytes)),
        SignableBody::Precomputed(hash) => hash.to_owned(),
        SignableBody::UnsignedPayload => UNSIGNED_PAYLOAD.to_owned(),
    }
}

/// The headers signing adds and signs along with the caller's, when the signature goes into
/// headers.
fn added_headers(
    settings: &SigningSettings,
    scope: &SigningScope,
    signed_token: Option<&str>,
    payload_hash: &str,
) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    if settings.signature_location == SignatureLocation::Headers {
        headers.push(("x-amz-date".into(), scope.x_amz_date.clone()));
        if let Some(token) = signed_token {
            headers.push(("x-amz-security-token".into(), token.to_owned()));
        }
        if settings.payload_checksum_header == PayloadChecksumHeader::Add {
            headers.push(("x-amz-content-sha256".into(), payload_hash.to_owned()));
        }
    }
    headers
}

/// The `X-Amz-*` query parameters of a presigned URL that are signed (all but the signature,
/// and the session token when it is added after signing). Empty for header signing.
fn presign_params(
    settings: &SigningSettings,
    access_key_id: &str,
    scope: &SigningScope,
    signed_headers: &str,
    signed_token: Option<&str>,
) -> Vec<(String, String)> {
    let SignatureLocation::QueryParams { expires_in } = settings.signature_location else {
        return Vec::new();
    };
    let mut params = vec![
        ("X-Amz-Algorithm".into(), ALGORITHM.into()),
        (
            "X-Amz-Credential".into(),
            format!("{access_key_id}/{}", scope.credential_scope),
        ),
        ("X-Amz-Date".into(), scope.x_amz_date.clone()),
        ("X-Amz-Expires".into(), expires_in.to_string()),
        ("X-Amz-SignedHeaders".into(), signed_headers.to_owned()),
    ];
    if let Some(token) = signed_token {
        params.push(("X-Amz-Security-Token".into(), token.to_owned()));
    }
    params
}

/// The path and the query of `path_and_query`, without any fragment.
fn split_path_and_query(path_and_query: &str) -> (&str, &str) {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    (path, query.split_once('#').map_or(query, |(q, _)| q))
}

/// The request's query parameters and the presigning ones, encoded, sorted, joined with `&`.
fn canonical_query(query: &str, presign_params: &[(String, String)]) -> String {
    let mut params = parse_query(query);
    params.extend(
        presign_params
            .iter()
            .map(|(n, v)| (encode(n.as_bytes()), encode(v.as_bytes()))),
    );
    params.sort();
    let mut out = String::new();
    for (i, (name, value)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// Percent-encodes everything but RFC 3986's unreserved characters, as SigV4 encodes query
/// names and values.
pub(super) fn encode(bytes: &[u8]) -> String {
    percent_encoding::percent_encode(bytes, UNRESERVED).to_string()
}

/// Lowercased names, sorted; values trimmed with inner whitespace runs collapsed to one space;
/// repeated names joined with commas in the order given.
fn canonical_headers<'a>(
    headers: impl Iterator<Item = (&'a str, &'a str)>,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        if UNSIGNED_HEADERS.contains(&name.as_str()) {
            continue;
        }
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            None => out.push((name, value)),
        }
    }
    // Stable sort keeps same-name order, though names are unique by now.
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Query parameters as encoded `(name, value)` pairs: escapes are decoded, then everything is
/// encoded the one SigV4 way, so `%e1%88%b4`, `%E1%88%B4` and raw UTF-8 sign the same.
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| encode(&percent_decode_str(s).collect::<Vec<u8>>());
            (decode(name), decode(value))
        })
        .collect()
}

fn canonical_uri(path: &str, settings: &SigningSettings) -> String {
    let path = if path.is_empty() { "/" } else { path };
    let normalized;
    let path = match settings.uri_path_normalization {
        UriPathNormalization::Enabled => {
            normalized = normalize_path(path);
            normalized.as_str()
        }
        UriPathNormalization::Disabled => path,
    };
    let set = match settings.percent_encoding_mode {
        PercentEncodingMode::Double => PATH_DOUBLE,
        PercentEncodingMode::Single => PATH_SINGLE,
    };
    utf8_percent_encode(path, set).to_string()
}

/// RFC 3986 §5.2.4 dot-segment removal, plus collapsing empty segments (`//`), keeping a
/// trailing slash. This is what AWS services do before verifying a signature.
fn normalize_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let trailing_slash = path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..");
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_dot_segments_and_slashes() {
        assert_eq!(normalize_path("/example1/example2/../.."), "/");
        assert_eq!(normalize_path("//example//"), "/example/");
        assert_eq!(normalize_path("/./"), "/");
        assert_eq!(normalize_path("/a/./b/../c"), "/a/c");
        assert_eq!(normalize_path("/a/b/.."), "/a/");
        assert_eq!(normalize_path("/.."), "/");
    }

    #[test]
    fn double_encoding_encodes_escapes_again_single_does_not() {
        let double = SigningSettings::default();
        let single = SigningSettings {
            percent_encoding_mode: PercentEncodingMode::Single,
            ..double
        };
        assert_eq!(canonical_uri("/a%20b c", &double), "/a%2520b%20c");
        assert_eq!(canonical_uri("/a%20b c", &single), "/a%20b%20c");
    }

    #[test]
    fn query_escapes_are_canonicalized() {
        assert_eq!(
            parse_query("b=%e1%88%b4&a=x y&c"),
            vec![
                ("b".into(), "%E1%88%B4".into()),
                ("a".into(), "x%20y".into()),
                ("c".into(), "".into())
            ]
        );
    }
}
