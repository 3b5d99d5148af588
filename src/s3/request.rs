//! The signed S3 requests, addressed as the AWS SDKs address them: virtual-hosted
//! (`BUCKET.s3.REGION.amazonaws.com`), or path-style (`s3.REGION.amazonaws.com/BUCKET`) for
//! bucket names with dots and for an endpoint override whose host is an IP address or
//! `localhost`. Signed as S3 wants: the path encoded once and not normalised, and
//! `x-amz-content-sha256` signed.

use time::OffsetDateTime;

use super::uri::S3Uri;
use crate::aws::{env, sts};
use crate::error::{Error, Step};
use crate::io::Io;
use crate::sigv4::{
    self, Credentials, PayloadChecksumHeader, PercentEncodingMode, SignableBody, SignableRequest,
    SigningParams, SigningSettings, UriPathNormalization,
};

/// Where S3 is: AWS's regional endpoints, or an override (`AWS_ENDPOINT_URL_S3`, then
/// `AWS_ENDPOINT_URL`; https, or plain http to a loopback emulator).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Endpoint {
    /// `scheme://host[:port]` of an override.
    pub base: Option<String>,
}

impl S3Endpoint {
    pub fn from_env(io: &dyn Io) -> Result<Self, Error> {
        for name in ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"] {
            if let Some(url) = env(io, name) {
                let base = sts::endpoint_override(name, url.trim()).map_err(|e| {
                    Error::new(Step::Read, e.message).with_fix(e.fix.unwrap_or_default())
                })?;
                return Ok(S3Endpoint { base: Some(base) });
            }
        }
        Ok(S3Endpoint { base: None })
    }

    /// Whether `bucket` is addressed in the path rather than the host name.
    fn path_style(&self, bucket: &str) -> bool {
        bucket.contains('.')
            || self.base.as_deref().is_some_and(|base| {
                let host = base
                    .parse::<http::Uri>()
                    .ok()
                    .and_then(|u| u.host().map(str::to_owned))
                    .unwrap_or_default();
                let host = host.trim_start_matches('[').trim_end_matches(']');
                host == "localhost" || host.parse::<std::net::IpAddr>().is_ok()
            })
    }

    /// The URL of `path` (encoded, starting with `/`) in `bucket`, with `query`.
    fn url(&self, region: &str, bucket: &str, path: &str, query: &str) -> String {
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        let (scheme, authority) = match &self.base {
            Some(base) => {
                let (scheme, authority) = base.split_once("://").unwrap_or(("https", base));
                (scheme.to_owned(), authority.to_owned())
            }
            None => (
                "https".to_owned(),
                format!("s3.{region}.{}", crate::aws::dns_suffix(region)),
            ),
        };
        if self.path_style(bucket) {
            format!("{scheme}://{authority}/{bucket}{path}{query}")
        } else {
            format!("{scheme}://{bucket}.{authority}{path}{query}")
        }
    }
}

/// A byte the S3 canonical form leaves as it is (`/` separates the key's parts).
fn unreserved(b: u8, keep_slash: bool) -> bool {
    b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/')
}

/// AWS's URI encoding: every byte but the unreserved ones as `%XX`.
pub fn encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if unreserved(b, keep_slash) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Which version of an object a read is pinned to: its ETag, sent as `If-Match`. (Not its
/// version id: S3 authorizes `?versionId=` as `s3:GetObjectVersion`, a permission a pipeline
/// allowed `s3:GetObject` may not have, and the ETag already pins the bytes.)
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pin {
    pub etag: Option<String>,
}

/// GetObject for `uri`, from byte `from` on (the whole object when 0), asking for the
/// object's checksum, pinned to one version when `pin` says which.
pub fn get_object(
    endpoint: &S3Endpoint,
    region: &str,
    uri: &S3Uri,
    credentials: &Credentials,
    now: OffsetDateTime,
    from: u64,
    pin: &Pin,
) -> Result<http::Request<()>, Error> {
    let url = endpoint.url(
        region,
        &uri.bucket,
        &format!("/{}", encode(&uri.key, true)),
        "",
    );
    let range = format!("bytes={from}-");
    let mut headers = vec![("x-amz-checksum-mode", "ENABLED")];
    if from > 0 {
        headers.push(("range", &range));
    }
    if let Some(etag) = &pin.etag {
        headers.push(("if-match", etag));
    }
    signed("GET", &url, headers, credentials, region, now)
}

/// Keys asked for per ListObjectsV2 page.
pub const PAGE_KEYS: usize = 500;

/// One page of ListObjectsV2 for the objects under `prefix`.
pub fn list_objects(
    endpoint: &S3Endpoint,
    region: &str,
    bucket: &str,
    prefix: &str,
    continuation: Option<&str>,
    credentials: &Credentials,
    now: OffsetDateTime,
) -> Result<http::Request<()>, Error> {
    // 500 keys of at most 1024 bytes, escaped, stay well under the 1 MiB an answer may have.
    let mut query = vec![
        ("list-type", "2".to_owned()),
        ("max-keys", PAGE_KEYS.to_string()),
    ];
    if !prefix.is_empty() {
        query.push(("prefix", encode(prefix, false)));
    }
    if let Some(token) = continuation {
        query.push(("continuation-token", encode(token, false)));
    }
    query.sort();
    let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let url = endpoint.url(region, bucket, "/", &query.join("&"));
    signed("GET", &url, Vec::new(), credentials, region, now)
}

fn signed(
    method: &str,
    url: &str,
    headers: Vec<(&str, &str)>,
    credentials: &Credentials,
    region: &str,
    now: OffsetDateTime,
) -> Result<http::Request<()>, Error> {
    let invalid = || Error::new(Step::Read, format!("the S3 URL {url} is not valid"));
    let uri: http::Uri = url.parse().map_err(|_| invalid())?;
    let host = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .ok_or_else(invalid)?;
    let path_and_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut all = vec![("host", host.as_str())];
    all.extend(headers.iter().copied());
    let settings = SigningSettings {
        percent_encoding_mode: PercentEncodingMode::Single,
        uri_path_normalization: UriPathNormalization::Disabled,
        payload_checksum_header: PayloadChecksumHeader::Add,
        ..SigningSettings::default()
    };
    let output = sigv4::sign(
        &SignableRequest {
            method,
            path_and_query,
            headers: all,
            body: SignableBody::Bytes(&[]),
        },
        &SigningParams {
            credentials,
            region,
            service: "s3",
            time: now,
            settings,
        },
    )
    .map_err(|e| Error::new(Step::Read, format!("signing the S3 request: {e}")))?;
    let mut request = http::Request::builder().method(method).uri(uri.clone());
    for (name, value) in headers
        .iter()
        .copied()
        .chain(output.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())))
    {
        request = request.header(name, value);
    }
    let mut request = request.body(()).map_err(|_| invalid())?;
    crate::secret::hide_session_token(request.headers_mut());
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn creds() -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("canary-s3-secret"),
            session_token: Some(Secret::new("canary-s3-session")),
        }
    }

    #[test]
    fn addressing_follows_the_sdks() {
        let aws = S3Endpoint { base: None };
        let uri = S3Uri::parse("s3://exports/a b/ü+x.csv").unwrap();
        let now = OffsetDateTime::UNIX_EPOCH;
        let get = get_object(&aws, "eu-west-1", &uri, &creds(), now, 0, &Pin::default()).unwrap();
        assert_eq!(
            get.uri().to_string(),
            "https://exports.s3.eu-west-1.amazonaws.com/a%20b/%C3%BC%2Bx.csv"
        );
        assert_eq!(get.headers()["x-amz-checksum-mode"], "ENABLED");
        assert_eq!(
            get.headers()["x-amz-content-sha256"],
            crate::sigv4::EMPTY_PAYLOAD_SHA256
        );
        let dotted = S3Uri::parse("s3://exports.example/k").unwrap();
        let get = get_object(
            &aws,
            "eu-west-1",
            &dotted,
            &creds(),
            now,
            0,
            &Pin::default(),
        )
        .unwrap();
        assert_eq!(
            get.uri().to_string(),
            "https://s3.eu-west-1.amazonaws.com/exports.example/k"
        );
        let local = S3Endpoint {
            base: Some("http://127.0.0.1:5000".into()),
        };
        let pin = Pin {
            etag: Some("\"e1\"".into()),
        };
        let get = get_object(&local, "us-east-1", &uri, &creds(), now, 7, &pin).unwrap();
        assert_eq!(
            get.uri().to_string(),
            "http://127.0.0.1:5000/exports/a%20b/%C3%BC%2Bx.csv"
        );
        assert_eq!(get.headers()["range"], "bytes=7-");
        assert_eq!(get.headers()["if-match"], "\"e1\"");
        let named = S3Endpoint {
            base: Some("https://s3.internal.example".into()),
        };
        let list = list_objects(
            &named,
            "us-east-1",
            "exports",
            "2026/12/",
            Some("t/1"),
            &creds(),
            now,
        )
        .unwrap();
        assert_eq!(
            list.uri().to_string(),
            "https://exports.s3.internal.example/?continuation-token=t%2F1&list-type=2&max-keys=500&prefix=2026%2F12%2F"
        );
        assert!(!format!("{list:?}").contains("canary"));
    }
}
