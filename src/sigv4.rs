//! AWS Signature Version 4.
//!
//! [`sign`] computes a signature and returns what to add to the request ([`SigningOutput`]);
//! it mutates nothing and knows no HTTP library, so the same code signs the subject token, any
//! request a host hands us, and the AWS test-suite vectors. Every service quirk is a typed
//! setting ([`SigningSettings`]) rather than a flag soup.

use std::fmt;

use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::secret::Secret;

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The SHA-256 of an empty payload.
pub const EMPTY_PAYLOAD_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// Presigned URLs may live at most seven days.
pub const MAX_EXPIRES_IN_SECONDS: u64 = 604_800;

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

/// AWS credentials. The secret parts redact themselves in `Debug`.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

/// Where the signature goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureLocation {
    /// `Authorization` and `X-Amz-Date` headers.
    Headers,
    /// A presigned URL: `X-Amz-*` query parameters, valid for `expires_in` seconds.
    QueryParams { expires_in: u64 },
}

/// How a session token takes part in the signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionTokenMode {
    /// `X-Amz-Security-Token` is signed (the default everywhere).
    Include,
    /// `X-Amz-Security-Token` is added after signing and is not part of the canonical request
    /// (some services, e.g. IoT, require this).
    AddAfterSigning,
}

/// How the path is percent-encoded in the canonical request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PercentEncodingMode {
    /// Every service but S3: the path as sent is encoded once more (`%20` becomes `%2520`).
    Double,
    /// S3: the path is taken as already encoded; only characters that are not allowed raw get encoded.
    Single,
}

/// Whether `.`/`..` segments and repeated slashes are removed from the path before signing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UriPathNormalization {
    Enabled,
    Disabled,
}

/// Whether to add and sign an `x-amz-content-sha256` header (S3 requires it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadChecksumHeader {
    Add,
    Omit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigningSettings {
    pub signature_location: SignatureLocation,
    pub session_token_mode: SessionTokenMode,
    pub percent_encoding_mode: PercentEncodingMode,
    pub uri_path_normalization: UriPathNormalization,
    pub payload_checksum_header: PayloadChecksumHeader,
}

impl Default for SigningSettings {
    /// The settings for every AWS service but S3, with the signature in headers.
    fn default() -> Self {
        SigningSettings {
            signature_location: SignatureLocation::Headers,
            session_token_mode: SessionTokenMode::Include,
            percent_encoding_mode: PercentEncodingMode::Double,
            uri_path_normalization: UriPathNormalization::Enabled,
            payload_checksum_header: PayloadChecksumHeader::Omit,
        }
    }
}

/// How the payload enters the signature.
#[derive(Clone, Copy, Debug)]
pub enum SignableBody<'a> {
    /// The whole body; it is hashed here.
    Bytes(&'a [u8]),
    /// The lowercase hex SHA-256 of the body, computed by the caller (e.g. while streaming).
    Precomputed(&'a str),
    /// `UNSIGNED-PAYLOAD`.
    UnsignedPayload,
}

/// A request to sign, borrowed from whatever HTTP type the caller has.
#[derive(Clone, Debug)]
pub struct SignableRequest<'a> {
    pub method: &'a str,
    /// The path and query as they go on the wire, e.g. `/a/b?x=1`. Must start with `/`.
    pub path_and_query: &'a str,
    /// Header names and values, in order; repeated names are allowed. Must include `host`.
    pub headers: Vec<(&'a str, &'a str)>,
    pub body: SignableBody<'a>,
}

#[derive(Clone, Debug)]
pub struct SigningParams<'a> {
    pub credentials: &'a Credentials,
    pub region: &'a str,
    pub service: &'a str,
    pub time: OffsetDateTime,
    pub settings: SigningSettings,
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
            out.push_str(&utf8_percent_encode(name, UNRESERVED).to_string());
            out.push('=');
            out.push_str(&utf8_percent_encode(value, UNRESERVED).to_string());
        }
        out
    }
}

/// Why a request could not be signed. Each names the input at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SigningError {
    MissingAccessKeyId,
    MissingSecretAccessKey,
    InvalidRegion(String),
    InvalidService(String),
    InvalidMethod(String),
    InvalidPath(String),
    InvalidHeaderName(String),
    InvalidHeaderValue {
        name: String,
    },
    MissingHost,
    InvalidPayloadHash(String),
    InvalidExpiry(u64),
    InvalidUrl(String),
    /// Seconds since the Unix epoch that no calendar date matches.
    InvalidTime(u64),
}

impl fmt::Display for SigningError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SigningError::MissingAccessKeyId => {
                f.write_str("access_key_id is empty: set it to the AWS access key id (e.g. AKIA...)")
            }
            SigningError::MissingSecretAccessKey => {
                f.write_str("secret_access_key is empty: set it to the AWS secret access key")
            }
            SigningError::InvalidRegion(r) => write!(
                f,
                "region {r:?} is not an AWS region: expected something like \"us-east-1\""
            ),
            SigningError::InvalidService(s) => write!(
                f,
                "service {s:?} is not an AWS signing name: expected something like \"sts\""
            ),
            SigningError::InvalidMethod(m) => {
                write!(f, "method {m:?} is not an HTTP method: expected e.g. \"GET\" or \"POST\"")
            }
            SigningError::InvalidPath(p) => write!(
                f,
                "path {p:?} is not a request path: it must start with \"/\" and contain no control characters"
            ),
            SigningError::InvalidHeaderName(n) => write!(
                f,
                "header name {n:?} is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only)"
            ),
            SigningError::InvalidHeaderValue { name } => write!(
                f,
                "header {name:?} has a value with a control character (CR, LF or NUL): remove it"
            ),
            SigningError::MissingHost => f.write_str(
                "the request has no host header: SigV4 signs the host, so give the full URL or a host header",
            ),
            SigningError::InvalidPayloadHash(h) => write!(
                f,
                "payload hash {h:?} is not a SHA-256: expected 64 lowercase hex digits"
            ),
            SigningError::InvalidUrl(u) => write!(
                f,
                "url {u:?} is not an absolute http(s) URL: expected e.g. \"https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15\""
            ),
            SigningError::InvalidTime(s) => write!(
                f,
                "time {s} (seconds since 1970) is out of range: expected a date before the year 10000"
            ),
            SigningError::InvalidExpiry(s) => write!(
                f,
                "expires_in {s} is out of range: a presigned URL lives 1 to {MAX_EXPIRES_IN_SECONDS} seconds"
            ),
        }
    }
}

impl std::error::Error for SigningError {}

/// Signs `request`. Pure: the same inputs always give the same output.
pub fn sign(
    request: &SignableRequest<'_>,
    params: &SigningParams<'_>,
) -> Result<SigningOutput, SigningError> {
    validate(request, params)?;
    let settings = &params.settings;
    let creds = params.credentials;
    let x_amz_date = format_amz_date(params.time);
    let date = &x_amz_date[..8];
    let credential_scope = format!("{date}/{}/{}/aws4_request", params.region, params.service);
    let payload_hash = match request.body {
        SignableBody::Bytes([]) => EMPTY_PAYLOAD_SHA256.to_owned(),
        SignableBody::Bytes(bytes) => hex::encode(Sha256::digest(bytes)),
        SignableBody::Precomputed(hash) => hash.to_owned(),
        SignableBody::UnsignedPayload => UNSIGNED_PAYLOAD.to_owned(),
    };
    let token = creds
        .session_token
        .as_ref()
        .filter(|t| !t.is_empty())
        .map(Secret::expose);
    let sign_token = settings.session_token_mode == SessionTokenMode::Include;

    // Headers that signing itself adds, signed along with the caller's.
    let mut added_headers: Vec<(String, String)> = Vec::new();
    if settings.signature_location == SignatureLocation::Headers {
        added_headers.push(("x-amz-date".into(), x_amz_date.clone()));
        if let (Some(token), true) = (token, sign_token) {
            added_headers.push(("x-amz-security-token".into(), token.to_owned()));
        }
        if settings.payload_checksum_header == PayloadChecksumHeader::Add {
            added_headers.push(("x-amz-content-sha256".into(), payload_hash.clone()));
        }
    }

    let canonical_headers = canonical_headers(
        request
            .headers
            .iter()
            .copied()
            .chain(added_headers.iter().map(|(n, v)| (n.as_str(), v.as_str()))),
    );
    let signed_headers = canonical_headers
        .iter()
        .map(|(name, _)| name.as_str())
        .collect::<Vec<_>>()
        .join(";");

    let (path, query) = match request.path_and_query.split_once('?') {
        Some((path, query)) => (path, query),
        None => (request.path_and_query, ""),
    };
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    let mut query_params = parse_query(query);
    let mut presign_params: Vec<(String, String)> = Vec::new();
    if let SignatureLocation::QueryParams { expires_in } = settings.signature_location {
        presign_params.push(("X-Amz-Algorithm".into(), ALGORITHM.into()));
        presign_params.push((
            "X-Amz-Credential".into(),
            format!("{}/{credential_scope}", creds.access_key_id),
        ));
        presign_params.push(("X-Amz-Date".into(), x_amz_date.clone()));
        presign_params.push(("X-Amz-Expires".into(), expires_in.to_string()));
        presign_params.push(("X-Amz-SignedHeaders".into(), signed_headers.clone()));
        if let (Some(token), true) = (token, sign_token) {
            presign_params.push(("X-Amz-Security-Token".into(), token.to_owned()));
        }
        query_params.extend(
            presign_params
                .iter()
                .map(|(n, v)| (encode(n.as_bytes()), encode(v.as_bytes()))),
        );
    }
    query_params.sort();

    let mut canonical_request = String::new();
    canonical_request.push_str(request.method);
    canonical_request.push('\n');
    canonical_request.push_str(&canonical_uri(path, settings));
    canonical_request.push('\n');
    for (i, (name, value)) in query_params.iter().enumerate() {
        if i > 0 {
            canonical_request.push('&');
        }
        canonical_request.push_str(name);
        canonical_request.push('=');
        canonical_request.push_str(value);
    }
    canonical_request.push('\n');
    for (name, value) in &canonical_headers {
        canonical_request.push_str(name);
        canonical_request.push(':');
        canonical_request.push_str(value);
        canonical_request.push('\n');
    }
    canonical_request.push('\n');
    canonical_request.push_str(&signed_headers);
    canonical_request.push('\n');
    canonical_request.push_str(&payload_hash);

    let string_to_sign = format!(
        "{ALGORITHM}\n{x_amz_date}\n{credential_scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let key = cached_signing_key(
        &creds.secret_access_key,
        date,
        params.region,
        params.service,
    );
    let signature = hex::encode(
        key.chain_update(string_to_sign.as_bytes())
            .finalize()
            .into_bytes(),
    );

    let mut headers = added_headers;
    let mut query_out = presign_params;
    match settings.signature_location {
        SignatureLocation::Headers => {
            if let (Some(token), false) = (token, sign_token) {
                headers.push(("x-amz-security-token".into(), token.to_owned()));
            }
            headers.push((
                "authorization".into(),
                format!(
                    "{ALGORITHM} Credential={}/{credential_scope}, SignedHeaders={signed_headers}, Signature={signature}",
                    creds.access_key_id
                ),
            ));
        }
        SignatureLocation::QueryParams { .. } => {
            if let (Some(token), false) = (token, sign_token) {
                query_out.push(("X-Amz-Security-Token".into(), token.to_owned()));
            }
            query_out.push(("X-Amz-Signature".into(), signature.clone()));
        }
    }

    Ok(SigningOutput {
        headers,
        query_params: query_out,
        x_amz_date,
        credential_scope,
        signed_headers,
        canonical_request,
        string_to_sign,
        signature,
    })
}

/// Splits an absolute URL into the `host` header SigV4 signs (no default port, no user info)
/// and the path and query as they go on the wire.
pub fn split_url(url: &str) -> Result<(String, String), SigningError> {
    let invalid = || SigningError::InvalidUrl(url.to_owned());
    let uri: http::Uri = url.parse().map_err(|_| invalid())?;
    let default_port = match uri.scheme_str() {
        Some("https") => 443,
        Some("http") => 80,
        _ => return Err(invalid()),
    };
    let authority = uri.authority().ok_or_else(invalid)?;
    if authority.as_str().contains('@') || authority.host().is_empty() {
        return Err(invalid());
    }
    let host = authority.host().to_ascii_lowercase();
    let host = match authority.port_u16() {
        Some(port) if port != default_port => format!("{host}:{port}"),
        _ => host,
    };
    let path_and_query = match uri.path_and_query().map(|pq| pq.as_str()) {
        None | Some("") => "/".to_owned(),
        Some(pq) if pq.starts_with('?') => format!("/{pq}"),
        Some(pq) => pq.to_owned(),
    };
    Ok((host, path_and_query))
}

/// `YYYYMMDD'T'HHMMSS'Z'` in UTC.
pub fn format_amz_date(time: OffsetDateTime) -> String {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    time.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .expect("a four-digit year always formats")
}

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
fn cached_signing_key(secret: &Secret, date: &str, region: &str, service: &str) -> Hmac<Sha256> {
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

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn encode(bytes: &[u8]) -> String {
    percent_encoding::percent_encode(bytes, UNRESERVED).to_string()
}

fn validate(request: &SignableRequest<'_>, params: &SigningParams<'_>) -> Result<(), SigningError> {
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
    use time::macros::datetime;

    fn creds(token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: token.map(Secret::new),
        }
    }

    fn request<'a>(path: &'a str, headers: Vec<(&'a str, &'a str)>) -> SignableRequest<'a> {
        SignableRequest {
            method: "GET",
            path_and_query: path,
            headers,
            body: SignableBody::Bytes(b""),
        }
    }

    fn params(creds: &Credentials) -> SigningParams<'_> {
        SigningParams {
            credentials: creds,
            region: "us-east-1",
            service: "service",
            time: datetime!(2015-08-30 12:36:00 UTC),
            settings: SigningSettings::default(),
        }
    }

    #[test]
    fn split_url_gives_host_and_wire_path() {
        assert_eq!(
            split_url("https://STS.us-east-1.amazonaws.com:443/?Action=GetCallerIdentity").unwrap(),
            (
                "sts.us-east-1.amazonaws.com".into(),
                "/?Action=GetCallerIdentity".into()
            )
        );
        assert_eq!(
            split_url("http://127.0.0.1:8080").unwrap(),
            ("127.0.0.1:8080".into(), "/".into())
        );
        for bad in [
            "sts.amazonaws.com/",
            "ftp://h/",
            "https://user:pw@h/",
            "https://h/a b",
            "",
        ] {
            assert!(
                matches!(split_url(bad), Err(SigningError::InvalidUrl(_))),
                "{bad}"
            );
        }
    }

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
}
