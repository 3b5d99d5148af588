//! S3 as a sender reading its exports meets it: GetObject (with `Range`, `If-Match`, and the
//! object's checksum under `x-amz-checksum-mode: ENABLED`), HeadObject and ListObjectsV2 (with
//! continuation tokens), virtual-hosted (`BUCKET.s3.REGION.amazonaws.com`) or path-style
//! (`s3.REGION.amazonaws.com/BUCKET`), each request's SigV4 signature checked with the
//! `aws-sigv4` crate as S3 signs (no double encoding, no normalisation, the payload hash in
//! `x-amz-content-sha256`). A bucket in another region answers 301 with its region; a read can
//! be made to break mid-object ([`S3Object::break_after`]).

use base64::Engine as _;
use http::{HeaderMap, Method, StatusCode};

use crate::aws_sts::{error_xml, verify_sigv4};
use crate::reply::Reply;
use crate::state::{State, lock};

/// An object the emulated S3 holds.
#[derive(Clone, Debug)]
pub struct S3Object {
    pub bucket: String,
    pub key: String,
    pub data: bytes::Bytes,
    pub checksum: S3Checksum,
    /// The bucket's region.
    pub region: String,
    /// The next GetObject of this object sends this many bytes of its body, then drops the
    /// connection (once).
    pub break_after: Option<u64>,
    /// GetObjects of this object answered whole before the one that breaks.
    pub break_skip: u32,
}

/// The checksum S3 keeps for an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum S3Checksum {
    None,
    /// The object's own CRC32C (a single PUT, a full-object multipart upload).
    FullObjectCrc32c,
    /// A FULL_OBJECT CRC32C that does not match the bytes (a source that disagrees).
    WrongFullObjectCrc32c,
    /// A CRC32C of the parts' CRC32Cs (`…-PARTS`).
    Composite {
        parts: u32,
    },
}

impl S3Object {
    pub fn new(bucket: &str, key: &str, data: impl Into<bytes::Bytes>) -> Self {
        S3Object {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            data: data.into(),
            checksum: S3Checksum::FullObjectCrc32c,
            region: "us-east-1".to_owned(),
            break_after: None,
            break_skip: 0,
        }
    }

    fn etag(&self) -> String {
        use md5::Digest as _;
        format!("\"{}\"", hex::encode(md5::Md5::digest(&self.data)))
    }

    fn crc32c(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(crc32c::crc32c(&self.data).to_be_bytes())
    }
}

/// Whether a request is for S3, by the host it names.
pub(crate) fn is_s3(headers: &HeaderMap) -> bool {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let host = host.split(':').next().unwrap_or_default();
    host.starts_with("s3.") || host.contains(".s3.")
}

/// The bucket and the key of a request: from the host (virtual-hosted) or the path.
fn address(headers: &HeaderMap, path: &str) -> (String, String) {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .into_owned();
    let rest = decoded.strip_prefix('/').unwrap_or(&decoded);
    match host.split_once(".s3.") {
        Some((bucket, _)) => (bucket.to_owned(), rest.to_owned()),
        None => {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            (bucket.to_owned(), key.to_owned())
        }
    }
}

fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// An object's answer: the head, the bytes, and (for a read made to break) how many of them
/// to send before dropping the connection.
pub(crate) struct ObjectAnswer {
    pub(crate) status: StatusCode,
    pub(crate) headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub(crate) body: bytes::Bytes,
    pub(crate) outcome: String,
    pub(crate) break_after: Option<u64>,
}

impl ObjectAnswer {
    pub(crate) fn into_response(self) -> http::Response<crate::server::Body> {
        let length = self.body.len();
        let body = match self.break_after {
            // Content-Length says the whole object; the body stops short with an error, and
            // hyper drops the connection there, as a connection that breaks mid-object.
            Some(n) => {
                crate::server::Body::Broken(Some(self.body.slice(..(n as usize).min(length))))
            }
            None => crate::server::Body::Whole(http_body_util::Full::new(self.body)),
        };
        let mut response = http::Response::new(body);
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(http::header::CONTENT_LENGTH, length.into());
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}

/// What S3 answers: an error or a listing (XML), or an object.
pub(crate) enum Answer {
    Reply(Reply),
    Object(Box<ObjectAnswer>),
}

/// Answers an S3 request.
pub(crate) fn handle(
    state: &State,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
) -> Answer {
    answer(state, method, path, query, headers).unwrap_or_else(Answer::Reply)
}

fn answer(
    state: &State,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
) -> Result<Answer, Reply> {
    {
        let (_, region) = verify_sigv4(state, method.as_str(), path, query, headers, &[], "s3")?;
        let (bucket, key) = address(headers, path);
        let objects = lock(&state.s3);
        let in_bucket: Vec<&S3Object> = objects.iter().filter(|o| o.bucket == bucket).collect();
        let Some(first) = in_bucket.first() else {
            return Err(error_xml(
                StatusCode::NOT_FOUND,
                "NoSuchBucket",
                "The specified bucket does not exist",
            ));
        };
        if first.region != region {
            let mut moved = error_xml(
                StatusCode::MOVED_PERMANENTLY,
                "PermanentRedirect",
                "The bucket you are attempting to access must be addressed using the specified \
                 endpoint. Please send all future requests to this endpoint.",
            );
            moved = moved.with_header_value(
                http::HeaderName::from_static("x-amz-bucket-region"),
                http::HeaderValue::from_str(&first.region).expect("a region is a header value"),
            );
            return Err(moved);
        }
        if key.is_empty() {
            if method != Method::GET || query_param(query, "list-type").as_deref() != Some("2") {
                return Err(error_xml(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequest",
                    "only ListObjectsV2",
                ));
            }
            return Ok(Answer::Reply(list(&in_bucket, query)));
        }
        let Some(object) = in_bucket.iter().find(|o| o.key == key) else {
            return Err(error_xml(
                StatusCode::NOT_FOUND,
                "NoSuchKey",
                "The specified key does not exist.",
            ));
        };
        let object = (*object).clone();
        drop(objects);
        if method != Method::GET && method != Method::HEAD {
            return Err(error_xml(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "read only",
            ));
        }
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if header("if-match").is_some_and(|etag| etag != object.etag()) {
            return Err(error_xml(
                StatusCode::PRECONDITION_FAILED,
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
            ));
        }
        let size = object.data.len() as u64;
        let from = match header("range") {
            None => 0,
            Some(range) => match range
                .strip_prefix("bytes=")
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|n| n.parse::<u64>().ok())
            {
                Some(from) if from < size => from,
                _ => {
                    return Err(error_xml(
                        StatusCode::RANGE_NOT_SATISFIABLE,
                        "InvalidRange",
                        "The requested range is not satisfiable",
                    ));
                }
            },
        };
        let body = object.data.slice(from as usize..);
        let status = if from > 0 {
            StatusCode::PARTIAL_CONTENT
        } else {
            StatusCode::OK
        };
        let mut answer = ObjectAnswer {
            status,
            headers: Vec::new(),
            body,
            outcome: format!("{method} s3://{bucket}/{key} from byte {from}"),
            break_after: None,
        };
        let mut set = |name: &'static str, value: String| {
            if let Ok(value) = http::HeaderValue::from_str(&value) {
                answer
                    .headers
                    .push((http::HeaderName::from_static(name), value));
            }
        };
        set("etag", object.etag());
        if from > 0 {
            set("content-range", format!("bytes {from}-{}/{size}", size - 1));
        }
        if from == 0 && header("x-amz-checksum-mode") == Some("ENABLED") {
            match object.checksum {
                S3Checksum::None => {}
                S3Checksum::FullObjectCrc32c => {
                    set("x-amz-checksum-crc32c", object.crc32c());
                    set("x-amz-checksum-type", "FULL_OBJECT".into());
                }
                S3Checksum::WrongFullObjectCrc32c => {
                    set("x-amz-checksum-crc32c", "AAAAAA==".into());
                    set("x-amz-checksum-type", "FULL_OBJECT".into());
                }
                S3Checksum::Composite { parts } => {
                    set(
                        "x-amz-checksum-crc32c",
                        format!("{}-{parts}", object.crc32c()),
                    );
                    set("x-amz-checksum-type", "COMPOSITE".into());
                }
            }
        }
        // hyper sends no body for HEAD, and keeps the Content-Length of the object.
        if method == Method::HEAD {
            return Ok(Answer::Object(Box::new(answer)));
        }
        let mut broken = object.break_after.filter(|_| from == 0);
        if broken.is_some() {
            for stored in lock(&state.s3).iter_mut() {
                if stored.bucket == bucket && stored.key == key {
                    if stored.break_skip > 0 {
                        stored.break_skip -= 1;
                        broken = None;
                    } else {
                        // Once: the next read of this object goes through.
                        stored.break_after = None;
                    }
                }
            }
        }
        answer.break_after = broken;
        Ok(Answer::Object(Box::new(answer)))
    }
}

/// One ListObjectsV2 page, in key order, `max-keys` (default 1000) at a time.
fn list(objects: &[&S3Object], query: &str) -> Reply {
    let prefix = query_param(query, "prefix").unwrap_or_default();
    let after = query_param(query, "continuation-token").unwrap_or_default();
    let max: usize = query_param(query, "max-keys")
        .and_then(|m| m.parse().ok())
        .unwrap_or(1000);
    let mut keys: Vec<&S3Object> = objects
        .iter()
        .copied()
        .filter(|o| o.key.starts_with(&prefix) && o.key > after)
        .collect();
    keys.sort_by(|a, b| a.key.cmp(&b.key));
    let truncated = keys.len() > max;
    keys.truncate(max);
    let escape = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult \
         xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
    );
    for o in &keys {
        xml.push_str(&format!(
            "<Contents><Key>{}</Key><Size>{}</Size><ETag>{}</ETag></Contents>",
            escape(&o.key),
            o.data.len(),
            escape(&o.etag())
        ));
    }
    xml.push_str(&format!("<KeyCount>{}</KeyCount>", keys.len()));
    if truncated && let Some(last) = keys.last() {
        xml.push_str(&format!(
            "<IsTruncated>true</IsTruncated><NextContinuationToken>{}</NextContinuationToken>",
            escape(&last.key)
        ));
    } else {
        xml.push_str("<IsTruncated>false</IsTruncated>");
    }
    xml.push_str("</ListBucketResult>");
    Reply::xml(
        StatusCode::OK,
        xml,
        format!("ListObjectsV2: {} keys", keys.len()),
    )
}
