//! Cloud Storage over HTTP with a raw hyper client: bodies in memory or generated frame by
//! frame, uploads of each type, resumable sessions, and the checks their answers share.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, SizeHint};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use md5::{Digest as _, Md5};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};
use sha2::Sha256;
use wif_push_emulator::{Emulator, Endpoint, LogEntry};

pub const HOST: &str = "storage.googleapis.com";
pub const BUCKET: &str = "partner-inbox";
pub const KIB256: u64 = 256 * 1024;
pub const UPLOAD: &str = "/upload/storage/v1/b/partner-inbox/o";

// ---------------------------------------------------------------------------------------------
// Bodies: bytes in memory, or a deterministic pattern generated frame by frame.

/// Byte `i` of the test pattern (not periodic at any power of two).
pub fn pattern_byte(i: u64) -> u8 {
    (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8 ^ (i as u8)
}

pub fn pattern(range: std::ops::Range<u64>) -> Vec<u8> {
    range.map(pattern_byte).collect()
}

/// Streams `pattern(start..end)` in 64 KiB frames without ever holding it whole.
pub struct PatternBody {
    pub next: u64,
    pub end: u64,
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.next >= self.end {
            return Poll::Ready(None);
        }
        let until = self.end.min(self.next + 64 * 1024);
        let data = pattern(self.next..until);
        self.next = until;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(data)))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.end - self.next)
    }
}

pub type TestBody = BoxBody<Bytes, Infallible>;

pub fn bytes(data: impl Into<Bytes>) -> TestBody {
    Full::new(data.into()).boxed()
}

pub fn streamed(range: std::ops::Range<u64>) -> TestBody {
    PatternBody {
        next: range.start,
        end: range.end,
    }
    .boxed()
}

pub fn hashes(data: &[u8]) -> (String, String, String) {
    (
        BASE64.encode(crc32c::crc32c(data).to_be_bytes()),
        BASE64.encode(Md5::digest(data)),
        hex::encode(Sha256::digest(data)),
    )
}

// ---------------------------------------------------------------------------------------------
// Requests.

#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        self
    }
}

/// Sends one request to Cloud Storage on a fresh connection; `Err` if the connection broke
/// without an answer.
pub async fn try_send(
    emulator: &Emulator,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: TestBody,
) -> Result<Answer, String> {
    try_send_to(emulator, method, HOST, path, headers, body).await
}

/// Sends one request with `Host: host` on a fresh connection; `Err` if the connection broke
/// without an answer.
pub async fn try_send_to(
    emulator: &Emulator,
    method: Method,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: TestBody,
) -> Result<Answer, String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<TestBody>();
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", emulator.addr()))
        .header("host", host);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = client
        .request(request.body(body).unwrap())
        .await
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{e:?}"))?
        .to_bytes();
    Ok(Answer {
        status,
        headers,
        body,
    })
}

pub async fn send(
    emulator: &Emulator,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: TestBody,
) -> Answer {
    try_send(emulator, method, path, headers, body)
        .await
        .unwrap_or_else(|e| panic!("{path}: no answer: {e}"))
}

/// Percent-encoding as GCS writes names into URLs.
pub fn q(text: &str) -> String {
    const UNRESERVED: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    utf8_percent_encode(text, UNRESERVED).to_string()
}

pub fn upload_path(upload_type: &str, name: &str, if_generation_match: Option<&str>) -> String {
    let mut path = format!("{UPLOAD}?uploadType={upload_type}&name={}", q(name));
    if let Some(g) = if_generation_match {
        path.push_str(&format!("&ifGenerationMatch={g}"));
    }
    path
}

pub const BOUNDARY: &str = "===test-boundary-7f3a===";

pub fn multipart_body(metadata: &Value, media_type: &str, data: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{metadata}\r\n\
         --{BOUNDARY}\r\nContent-Type: {media_type}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// A multipart upload with `ifGenerationMatch=0` and both checksums in the metadata.
pub async fn try_multipart(
    emulator: &Emulator,
    token: &str,
    name: &str,
    data: &[u8],
) -> Result<Answer, String> {
    let (crc32c, md5, _) = hashes(data);
    let metadata = json!({"name": name, "crc32c": crc32c, "md5Hash": md5});
    multipart_with(
        emulator,
        token,
        &upload_path("multipart", name, Some("0")),
        &metadata,
        data,
    )
    .await
}

pub async fn multipart_with(
    emulator: &Emulator,
    token: &str,
    path: &str,
    metadata: &Value,
    data: &[u8],
) -> Result<Answer, String> {
    let bearer = format!("Bearer {token}");
    let content_type = format!("multipart/related; boundary={BOUNDARY}");
    try_send(
        emulator,
        Method::POST,
        path,
        &[("authorization", &bearer), ("content-type", &content_type)],
        bytes(multipart_body(metadata, "application/octet-stream", data)),
    )
    .await
}

/// Starts a resumable session; returns the session path (what follows the host in Location).
pub async fn start_session(
    emulator: &Emulator,
    token: &str,
    name: &str,
    metadata: Value,
) -> String {
    let bearer = format!("Bearer {token}");
    let answer = send(
        emulator,
        Method::POST,
        &upload_path("resumable", name, Some("0")),
        &[
            ("authorization", &bearer),
            ("content-type", "application/json; charset=UTF-8"),
            ("x-upload-content-type", "application/x-test"),
        ],
        bytes(metadata.to_string()),
    )
    .await;
    answer.expect(200);
    assert!(answer.body.is_empty());
    let location = answer.header("location").unwrap();
    let prefix = format!(
        "https://{HOST}{UPLOAD}?uploadType=resumable&name={}&upload_id=",
        q(name)
    );
    assert!(location.starts_with(&prefix), "{location}");
    location
        .strip_prefix(&format!("https://{HOST}"))
        .unwrap()
        .to_owned()
}

/// PUTs `pattern(range)` as a chunk with `Content-Range: bytes START-END/TOTAL`.
pub async fn try_chunk(
    emulator: &Emulator,
    session: &str,
    range: std::ops::Range<u64>,
    total: &str,
    extra: &[(&str, &str)],
) -> Result<Answer, String> {
    let content_range = format!("bytes {}-{}/{total}", range.start, range.end - 1);
    let length = (range.end - range.start).to_string();
    let mut headers = vec![
        ("content-range", content_range.as_str()),
        ("content-length", length.as_str()),
    ];
    headers.extend_from_slice(extra);
    try_send(emulator, Method::PUT, session, &headers, streamed(range)).await
}

pub async fn chunk(
    emulator: &Emulator,
    session: &str,
    range: std::ops::Range<u64>,
    total: &str,
    extra: &[(&str, &str)],
) -> Answer {
    try_chunk(emulator, session, range, total, extra)
        .await
        .unwrap()
}

pub async fn status_query(emulator: &Emulator, session: &str, total: &str) -> Answer {
    let content_range = format!("bytes */{total}");
    send(
        emulator,
        Method::PUT,
        session,
        &[("content-range", &content_range)],
        bytes(""),
    )
    .await
}

#[track_caller]
pub fn assert_incomplete(answer: &Answer, committed: u64) {
    answer.expect(308);
    let range = answer.header("range");
    if committed == 0 {
        assert_eq!(range, None, "no Range while nothing is committed");
    } else {
        let expected = format!("bytes=0-{}", committed - 1);
        assert_eq!(range, Some(expected.as_str()));
    }
}

#[track_caller]
pub fn assert_gcs_error(answer: &Answer, status: u16, reason: &str, message: &str) {
    answer.expect(status);
    let json = answer.json();
    assert_eq!(json["error"]["code"], status, "{json}");
    assert_eq!(json["error"]["message"], message, "{json}");
    assert_eq!(json["error"]["errors"][0]["message"], message, "{json}");
    assert_eq!(json["error"]["errors"][0]["domain"], "global", "{json}");
    assert_eq!(json["error"]["errors"][0]["reason"], reason, "{json}");
}

pub fn gcs_entries(emulator: &Emulator) -> Vec<LogEntry> {
    emulator
        .log()
        .into_iter()
        .filter(|e| e.endpoint == Endpoint::Gcs)
        .collect()
}

/// Waits until the emulator has logged `n` Cloud Storage requests (a request the client gave up
/// on may still be finishing).
pub async fn wait_for_gcs_log(emulator: &Emulator, n: usize) -> Vec<LogEntry> {
    for _ in 0..500 {
        let entries = gcs_entries(emulator);
        if entries.len() >= n {
            return entries;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the emulator logged only {:?}", gcs_entries(emulator));
}

/// Files left in the staging directory (uploads not committed and not cleaned up).
pub fn staged_files(emulator: &Emulator) -> usize {
    std::fs::read_dir(emulator.storage_dir().unwrap().join(".staging"))
        .unwrap()
        .count()
}
