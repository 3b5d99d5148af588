//! What a signature is made from: the request, the credentials, and the settings that capture
//! each service's quirks.

use time::OffsetDateTime;

use crate::secret::Secret;

/// AWS credentials. The secret parts redact themselves in `Debug`.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

impl Credentials {
    /// The session token, when there is a non-empty one.
    pub(super) fn session_token(&self) -> Option<&str> {
        self.session_token
            .as_ref()
            .filter(|t| !t.is_empty())
            .map(Secret::expose)
    }
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

/// Who signs, for which region and service, when, and how.
#[derive(Clone, Debug)]
pub struct SigningParams<'a> {
    pub credentials: &'a Credentials,
    pub region: &'a str,
    pub service: &'a str,
    pub time: OffsetDateTime,
    pub settings: SigningSettings,
}
