//! Why a request could not be signed.

use std::fmt;

use super::MAX_EXPIRES_IN_SECONDS;

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
                "region {r_q} is not an AWS region: expected something like \"us-east-1\""
            , r_q = crate::error::quote(r, 100)),
            SigningError::InvalidService(s) => write!(
                f,
                "service {s_q} is not an AWS signing name: expected something like \"sts\""
            , s_q = crate::error::quote(s, 100)),
            SigningError::InvalidMethod(m) => {
                write!(f, "method {m_q} is not an HTTP method: expected e.g. \"GET\" or \"POST\"", m_q = crate::error::quote(m, 100))
            }
            SigningError::InvalidPath(p) => write!(
                f,
                "path {p_q} is not a request path: it must start with \"/\" and contain no control characters"
            , p_q = crate::error::quote(p, 100)),
            SigningError::InvalidHeaderName(n) => write!(
                f,
                "header name {n_q} is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only)"
            , n_q = crate::error::quote(n, 100)),
            SigningError::InvalidHeaderValue { name } => write!(
                f,
                "header {name_q} has a value with a control character (CR, LF or NUL): remove it"
            , name_q = crate::error::quote(name, 100)),
            SigningError::MissingHost => f.write_str(
                "the request has no host header: SigV4 signs the host, so give the full URL or a host header",
            ),
            SigningError::InvalidPayloadHash(h) => write!(
                f,
                "payload hash {h_q} is not a SHA-256: expected 64 lowercase hex digits"
            , h_q = crate::error::quote(h, 100)),
            SigningError::InvalidUrl(u) => write!(
                f,
                "url {u_q} is not an absolute http(s) URL: expected e.g. \"https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15\""
            , u_q = crate::error::quote(u, 100)),
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
