//! The embedded emulator's Cloud Storage side, driven over real HTTP with a raw hyper client:
//! what an identity with only `roles/storage.objectCreator` meets at GCS (checksums,
//! `ifGenerationMatch=0`, denied reads, resumable sessions) and the faults delivery tests use.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use host_test::emulator::{
    Emulator, EmulatorConfig, Endpoint, Fault, FaultPlan, LogEntry, Storage,
};
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
use tokio::io::AsyncWriteExt as _;

const HOST: &str = "storage.googleapis.com";
const BUCKET: &str = "partner-inbox";
const SA: &str = "uploader@partner-project.iam.gserviceaccount.com";
const KIB256: u64 = 256 * 1024;
const UPLOAD: &str = "/upload/storage/v1/b/partner-inbox/o";

async fn start(config: EmulatorConfig) -> Emulator {
    Emulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Bodies: bytes in memory, or a deterministic pattern generated frame by frame.

/// Byte `i` of the test pattern (not periodic at any power of two).
fn pattern_byte(i: u64) -> u8 {
    (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8 ^ (i as u8)
}

fn pattern(range: std::ops::Range<u64>) -> Vec<u8> {
    range.map(pattern_byte).collect()
}

/// Streams `pattern(start..end)` in 64 KiB frames without ever holding it whole.
struct PatternBody {
    next: u64,
    end: u64,
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

type TestBody = BoxBody<Bytes, Infallible>;

fn bytes(data: impl Into<Bytes>) -> TestBody {
    Full::new(data.into()).boxed()
}

fn streamed(range: std::ops::Range<u64>) -> TestBody {
    PatternBody {
        next: range.start,
        end: range.end,
    }
    .boxed()
}

fn hashes(data: &[u8]) -> (String, String, String) {
    (
        BASE64.encode(crc32c::crc32c(data).to_be_bytes()),
        BASE64.encode(Md5::digest(data)),
        hex::encode(Sha256::digest(data)),
    )
}

// ---------------------------------------------------------------------------------------------
// Requests.

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    #[track_caller]
    fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        self
    }
}

/// Sends one request on a fresh connection; `Err` if the connection broke without an answer.
async fn try_send(
    emulator: &Emulator,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: TestBody,
) -> Result<Answer, String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<TestBody>();
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", emulator.addr()))
        .header("host", HOST);
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

async fn send(
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
fn q(text: &str) -> String {
    const UNRESERVED: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    utf8_percent_encode(text, UNRESERVED).to_string()
}

fn upload_path(upload_type: &str, name: &str, if_generation_match: Option<&str>) -> String {
    let mut path = format!("{UPLOAD}?uploadType={upload_type}&name={}", q(name));
    if let Some(g) = if_generation_match {
        path.push_str(&format!("&ifGenerationMatch={g}"));
    }
    path
}

const BOUNDARY: &str = "===test-boundary-7f3a===";

fn multipart_body(metadata: &Value, media_type: &str, data: &[u8]) -> Vec<u8> {
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
async fn try_multipart(
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

async fn multipart_with(
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
async fn start_session(emulator: &Emulator, token: &str, name: &str, metadata: Value) -> String {
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
        "http://{HOST}{UPLOAD}?uploadType=resumable&name={}&upload_id=",
        q(name)
    );
    assert!(location.starts_with(&prefix), "{location}");
    location
        .strip_prefix(&format!("http://{HOST}"))
        .unwrap()
        .to_owned()
}

/// PUTs `pattern(range)` as a chunk with `Content-Range: bytes START-END/TOTAL`.
async fn try_chunk(
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

async fn chunk(
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

async fn status_query(emulator: &Emulator, session: &str, total: &str) -> Answer {
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
fn assert_incomplete(answer: &Answer, committed: u64) {
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
fn assert_gcs_error(answer: &Answer, status: u16, reason: &str, message: &str) {
    answer.expect(status);
    let json = answer.json();
    assert_eq!(json["error"]["code"], status, "{json}");
    assert_eq!(json["error"]["message"], message, "{json}");
    assert_eq!(json["error"]["errors"][0]["message"], message, "{json}");
    assert_eq!(json["error"]["errors"][0]["domain"], "global", "{json}");
    assert_eq!(json["error"]["errors"][0]["reason"], reason, "{json}");
}

fn gcs_entries(emulator: &Emulator) -> Vec<LogEntry> {
    emulator
        .log()
        .into_iter()
        .filter(|e| e.endpoint == Endpoint::Gcs)
        .collect()
}

/// Waits until the emulator has logged `n` Cloud Storage requests (a request the client gave up
/// on may still be finishing).
async fn wait_for_gcs_log(emulator: &Emulator, n: usize) -> Vec<LogEntry> {
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
fn staged_files(emulator: &Emulator) -> usize {
    std::fs::read_dir(emulator.storage_dir().unwrap().join(".staging"))
        .unwrap()
        .count()
}

// ---------------------------------------------------------------------------------------------
// Single-request uploads.

#[tokio::test]
async fn multipart_upload_creates_the_object_with_gcs_checksums() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();
    let metadata = json!({
        "name": "in/hello world.txt",
        "contentType": "text/plain",
        "metadata": {"source": "aws", "run": "7"},
        // `gsutil hash` of "hello world".
        "crc32c": "yZRlqg==",
        "md5Hash": "XrY7u+Ae7tCTyyK7j1rNww==",
    });
    // The name comes from the metadata only; the media part's type is overridden by it.
    let path = format!("{UPLOAD}?uploadType=multipart&ifGenerationMatch=0");
    let answer = multipart_with(&emulator, &token, &path, &metadata, b"hello world")
        .await
        .unwrap();
    answer.expect(200);
    let object = answer.json();
    let generation = object["generation"].as_str().unwrap();
    let generation_number: i64 = generation.parse().unwrap();
    assert!(generation_number > 1_700_000_000_000_000, "{generation}");
    assert_eq!(object["kind"], "storage#object");
    assert_eq!(
        object["id"],
        format!("{BUCKET}/in/hello world.txt/{generation}")
    );
    assert_eq!(object["name"], "in/hello world.txt");
    assert_eq!(object["bucket"], BUCKET);
    assert_eq!(object["metageneration"], "1");
    assert_eq!(object["contentType"], "text/plain");
    assert_eq!(object["storageClass"], "STANDARD");
    assert_eq!(object["size"], "11");
    assert_eq!(object["crc32c"], "yZRlqg==");
    assert_eq!(object["md5Hash"], "XrY7u+Ae7tCTyyK7j1rNww==");
    assert_eq!(object["metadata"], json!({"source": "aws", "run": "7"}));
    assert_eq!(
        object["selfLink"],
        format!("https://www.googleapis.com/storage/v1/b/{BUCKET}/o/in%2Fhello%20world.txt")
    );
    assert!(
        object["mediaLink"]
            .as_str()
            .unwrap()
            .ends_with(&format!("?generation={generation}&alt=media"))
    );
    // The protobuf {1: generation, 2: metageneration}, base64.
    let etag = BASE64.decode(object["etag"].as_str().unwrap()).unwrap();
    assert_eq!(
        (etag[0], &etag[etag.len() - 2..]),
        (0x08, &[0x10, 0x01][..])
    );
    let created = object["timeCreated"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339)
            .is_ok()
    );
    assert_eq!(object["updated"], created);

    let stored = emulator.object("in/hello world.txt").unwrap();
    assert_eq!(stored.generation, generation_number);
    assert_eq!(stored.size, 11);
    assert_eq!(stored.crc32c, "yZRlqg==");
    assert_eq!(stored.md5_hash, "XrY7u+Ae7tCTyyK7j1rNww==");
    assert_eq!(
        stored.sha256_hex,
        "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
    );
    assert_eq!(stored.content_type, "text/plain");
    assert_eq!(stored.metadata["source"], "aws");
    let file = stored.path.as_ref().unwrap();
    assert!(file.starts_with(emulator.storage_dir().unwrap()));
    assert_eq!(std::fs::read(file).unwrap(), b"hello world");
    assert_eq!(emulator.objects(), vec![stored]);
    assert_eq!(staged_files(&emulator), 0);

    let entries = gcs_entries(&emulator);
    assert_eq!(entries.len(), 1);
    assert_eq!(emulator.count(Endpoint::Gcs), 1);
    let log = entries[0].gcs.as_ref().unwrap();
    assert_eq!(log.upload_type.as_deref(), Some("multipart"));
    assert_eq!(entries[0].status, 200);
    assert!(log.bytes_received > 11);
}

#[tokio::test]
async fn binary_media_containing_boundary_like_bytes_survives() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();
    // Near-delimiters and CRLFs across what will be frame boundaries.
    let mut data = pattern(0..300_000);
    for at in [0usize, 1000, 65_535, 131_070, 299_000] {
        let fake = format!("\r\n--{}", &BOUNDARY[..BOUNDARY.len() - 1]);
        data.splice(at..at + fake.len(), fake.bytes());
    }
    data.extend_from_slice(b"\r\n--");
    let answer = try_multipart(&emulator, &token, "binary", &data)
        .await
        .unwrap();
    answer.expect(200);
    let stored = emulator.object("binary").unwrap();
    assert_eq!(stored.size, data.len() as u64);
    assert_eq!(std::fs::read(stored.path.unwrap()).unwrap(), data);
}

#[tokio::test]
async fn media_upload_takes_name_and_type_from_the_request() {
    let emulator = start(EmulatorConfig::demo()).await;
    let bearer = format!("Bearer {}", emulator.issue_access_token_for_tests());
    let data = pattern(0..5000);
    let (crc32c, md5, sha256) = hashes(&data);
    let goog_hash = format!("crc32c={crc32c},md5={md5}");
    let answer = send(
        &emulator,
        Method::POST,
        &upload_path("media", "plain.bin", Some("0")),
        &[
            ("authorization", &bearer),
            ("content-type", "application/x-plain"),
            ("x-goog-hash", &goog_hash),
        ],
        bytes(data.clone()),
    )
    .await;
    answer.expect(200);
    assert_eq!(answer.json()["contentType"], "application/x-plain");
    assert_eq!(answer.json()["crc32c"], crc32c);
    assert_eq!(emulator.object("plain.bin").unwrap().sha256_hex, sha256);

    let answer = send(
        &emulator,
        Method::POST,
        &upload_path("media", "bad.bin", Some("0")),
        &[
            ("authorization", &bearer),
            ("x-goog-hash", &format!("crc32c=AAAAAA==,md5={md5}")),
        ],
        bytes(data),
    )
    .await;
    assert_gcs_error(
        &answer,
        400,
        "invalid",
        &format!("Provided CRC32C \"AAAAAA==\" doesn't match calculated CRC32C \"{crc32c}\"."),
    );
    assert!(emulator.object("bad.bin").is_none());
}

#[tokio::test]
async fn wrong_checksums_are_refused_and_create_nothing() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();
    let data = b"hello world";
    let path = upload_path("multipart", "checked", Some("0"));

    let wrong_crc = json!({"crc32c": "AAAAAA==", "md5Hash": "XrY7u+Ae7tCTyyK7j1rNww=="});
    let answer = multipart_with(&emulator, &token, &path, &wrong_crc, data)
        .await
        .unwrap();
    assert_gcs_error(
        &answer,
        400,
        "invalid",
        "Provided CRC32C \"AAAAAA==\" doesn't match calculated CRC32C \"yZRlqg==\".",
    );

    let wrong_md5 = json!({"md5Hash": "AAAAAAAAAAAAAAAAAAAAAA=="});
    let answer = multipart_with(&emulator, &token, &path, &wrong_md5, data)
        .await
        .unwrap();
    assert_gcs_error(
        &answer,
        400,
        "invalid",
        "Provided MD5 hash \"AAAAAAAAAAAAAAAAAAAAAA==\" doesn't match calculated MD5 hash \
         \"XrY7u+Ae7tCTyyK7j1rNww==\".",
    );

    assert!(emulator.object("checked").is_none());
    assert!(emulator.objects().is_empty());
    assert_eq!(staged_files(&emulator), 0);
    // Nothing blocks the correct upload afterwards.
    try_multipart(&emulator, &token, "checked", data)
        .await
        .unwrap()
        .expect(200);
}

#[tokio::test]
async fn malformed_multipart_bodies_are_400s() {
    let emulator = start(EmulatorConfig::demo()).await;
    let bearer = format!("Bearer {}", emulator.issue_access_token_for_tests());
    let path = upload_path("multipart", "m", Some("0"));
    let related = format!("multipart/related; boundary={BOUNDARY}");
    let full = multipart_body(&json!({}), "text/plain", b"data");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("text/plain", full.clone()),
        (&related, full[..full.len() - 10].to_vec()),
        (&related, b"no boundary here".to_vec()),
        (
            &related,
            format!("--{BOUNDARY}\r\nContent-Type: application/json\r\n\r\n{{\r\n--{BOUNDARY}\r\n\r\nx\r\n--{BOUNDARY}--")
                .into_bytes(),
        ),
    ];
    for (content_type, body) in cases {
        let answer = send(
            &emulator,
            Method::POST,
            &path,
            &[("authorization", &bearer), ("content-type", content_type)],
            bytes(body),
        )
        .await;
        answer.expect(400);
        assert!(answer.json()["error"]["errors"][0]["reason"].is_string());
    }
    assert!(emulator.objects().is_empty());
    assert_eq!(staged_files(&emulator), 0);
}

// ---------------------------------------------------------------------------------------------
// objectCreator: no overwrite, no read.

#[tokio::test]
async fn existing_names_answer_412_with_if_generation_match_0_and_403_without() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();
    let first = try_multipart(&emulator, &token, "once", b"first")
        .await
        .unwrap();
    first.expect(200);
    let generation = first.json()["generation"].as_str().unwrap().to_owned();

    let again = try_multipart(&emulator, &token, "once", b"second")
        .await
        .unwrap();
    again.expect(412);
    assert_eq!(
        again.json(),
        json!({"error": {"code": 412,
            "message": "At least one of the pre-conditions you specified did not hold.",
            "errors": [{"message": "At least one of the pre-conditions you specified did not hold.",
                "domain": "global", "reason": "conditionNotMet",
                "locationType": "header", "location": "If-Match"}]}})
    );

    let overwrite = format!(
        "{SA} does not have storage.objects.delete access to the Google Cloud Storage object. \
         Permission 'storage.objects.delete' denied on resource (or it may not exist)."
    );
    for precondition in [None, Some(generation.as_str())] {
        let answer = multipart_with(
            &emulator,
            &token,
            &upload_path("multipart", "once", precondition),
            &json!({}),
            b"third",
        )
        .await
        .unwrap();
        assert_gcs_error(&answer, 403, "forbidden", &overwrite);
    }
    let answer = multipart_with(
        &emulator,
        &token,
        &upload_path("multipart", "once", Some("12345")),
        &json!({}),
        b"third",
    )
    .await
    .unwrap();
    answer.expect(412);
    let answer = multipart_with(
        &emulator,
        &token,
        &upload_path("multipart", "never", Some("12345")),
        &json!({}),
        b"x",
    )
    .await
    .unwrap();
    answer.expect(412);

    // A resumable session for an existing name fails at its start.
    let bearer = format!("Bearer {token}");
    let answer = send(
        &emulator,
        Method::POST,
        &upload_path("resumable", "once", Some("0")),
        &[("authorization", &bearer)],
        bytes("{}"),
    )
    .await;
    answer.expect(412);
    assert!(answer.header("location").is_none());

    // Still the first bytes.
    let stored = emulator.object("once").unwrap();
    assert_eq!(std::fs::read(stored.path.unwrap()).unwrap(), b"first");
    assert_eq!(emulator.objects().len(), 1);
    assert_eq!(staged_files(&emulator), 0);
}

#[tokio::test]
async fn concurrent_uploads_of_one_name_create_it_once() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();
    let data = pattern(0..200_000);
    let answers = tokio::join!(
        try_multipart(&emulator, &token, "race", &data),
        try_multipart(&emulator, &token, "race", &data),
    );
    let mut statuses = [
        answers.0.unwrap().status.as_u16(),
        answers.1.unwrap().status.as_u16(),
    ];
    statuses.sort();
    assert_eq!(statuses, [200, 412]);
}

#[tokio::test]
async fn generations_are_unique_and_increasing_even_with_a_frozen_clock() {
    let mut config = EmulatorConfig::demo();
    config.now = Some(time::macros::datetime!(2025-06-01 12:00:00 UTC));
    let emulator = start(config).await;
    let token = emulator.issue_access_token_for_tests();
    let mut generations = Vec::new();
    for name in ["a", "b", "c"] {
        try_multipart(&emulator, &token, name, b"x")
            .await
            .unwrap()
            .expect(200);
        generations.push(emulator.object(name).unwrap().generation);
    }
    assert_eq!(generations[0], 1_748_779_200_000_000);
    assert_eq!(generations[1], generations[0] + 1);
    assert_eq!(generations[2], generations[0] + 2);
}

#[tokio::test]
async fn reads_are_denied_to_an_object_creator() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();
    try_multipart(&emulator, &token, "secret.txt", b"x")
        .await
        .unwrap()
        .expect(200);
    let bearer = format!("Bearer {token}");
    let denied = |permission: &str, kind: &str| {
        format!(
            "{SA} does not have {permission} access to the Google Cloud Storage {kind}. \
             Permission '{permission}' denied on resource (or it may not exist)."
        )
    };
    for (method, path, permission, kind) in [
        (
            Method::GET,
            "/storage/v1/b/partner-inbox/o/secret.txt",
            "storage.objects.get",
            "object",
        ),
        (
            Method::GET,
            "/storage/v1/b/partner-inbox/o/secret.txt?alt=media",
            "storage.objects.get",
            "object",
        ),
        (
            Method::GET,
            "/download/storage/v1/b/partner-inbox/o/secret.txt?alt=media",
            "storage.objects.get",
            "object",
        ),
        (
            Method::GET,
            "/storage/v1/b/partner-inbox/o/missing",
            "storage.objects.get",
            "object",
        ),
        (
            Method::GET,
            "/storage/v1/b/partner-inbox/o?prefix=s",
            "storage.objects.list",
            "bucket",
        ),
        (
            Method::GET,
            "/storage/v1/b/partner-inbox",
            "storage.buckets.get",
            "bucket",
        ),
        (
            Method::DELETE,
            "/storage/v1/b/partner-inbox/o/secret.txt",
            "storage.objects.delete",
            "object",
        ),
        (
            Method::PATCH,
            "/storage/v1/b/partner-inbox/o/secret.txt",
            "storage.objects.update",
            "object",
        ),
    ] {
        let answer = send(
            &emulator,
            method,
            path,
            &[("authorization", &bearer)],
            bytes(""),
        )
        .await;
        assert_gcs_error(&answer, 403, "forbidden", &denied(permission, kind));
    }
    assert!(emulator.object("secret.txt").is_some());
}

#[tokio::test]
async fn credentials_and_bucket_are_checked() {
    let emulator = start(EmulatorConfig::demo()).await;
    let path = upload_path("multipart", "x", Some("0"));

    let invalid = json!({"error": {"code": 401, "message": "Invalid Credentials",
        "errors": [{"message": "Invalid Credentials", "domain": "global", "reason": "authError",
            "locationType": "header", "location": "Authorization"}]}});
    let answer = multipart_with(&emulator, "ya29.c.forged", &path, &json!({}), b"x")
        .await
        .unwrap();
    answer.expect(401);
    assert_eq!(answer.json(), invalid);
    let answer = send(
        &emulator,
        Method::GET,
        "/storage/v1/b/partner-inbox/o/x",
        &[("authorization", "Bearer nope")],
        bytes(""),
    )
    .await;
    assert_eq!(answer.json(), invalid);

    let answer = send(&emulator, Method::POST, &path, &[], bytes("")).await;
    assert_gcs_error(
        &answer,
        401,
        "required",
        "Anonymous caller does not have storage.objects.create access to the Google Cloud \
         Storage object. Permission 'storage.objects.create' denied on resource (or it may not \
         exist).",
    );

    // Expired: the emulator's clock moves past the token's hour.
    let token = emulator.issue_access_token_for_tests();
    emulator.set_now(Some(
        time::OffsetDateTime::now_utc() + Duration::from_secs(3601),
    ));
    let answer = try_multipart(&emulator, &token, "x", b"x").await.unwrap();
    answer.expect(401);
    assert_eq!(answer.json(), invalid);
    emulator.set_now(None);

    let token = emulator.issue_access_token_for_tests();
    let answer = multipart_with(
        &emulator,
        &token,
        "/upload/storage/v1/b/someone-elses-bucket/o?uploadType=multipart&name=x",
        &json!({}),
        b"x",
    )
    .await
    .unwrap();
    assert_gcs_error(
        &answer,
        404,
        "notFound",
        "The specified bucket does not exist.",
    );

    let bearer = format!("Bearer {token}");
    let answer = send(
        &emulator,
        Method::POST,
        "/storage/v1/b/partner-inbox/o?name=x",
        &[("authorization", &bearer)],
        bytes("{}"),
    )
    .await;
    assert_gcs_error(
        &answer,
        400,
        "wrongUrlForUpload",
        "Upload requests must include an uploadType URL parameter and a URL path beginning \
         with /upload/",
    );
    assert!(emulator.objects().is_empty());
    let statuses: Vec<u16> = gcs_entries(&emulator).iter().map(|e| e.status).collect();
    assert_eq!(statuses, [401, 401, 401, 401, 404, 400]);
}

// ---------------------------------------------------------------------------------------------
// The real token path: STS, then IAM Credentials, then Cloud Storage.

fn subject_token(config: &EmulatorConfig) -> String {
    let identity = &config.identities[0];
    let host = "sts.us-east-1.amazonaws.com";
    let url = format!("https://{host}?Action=GetCallerIdentity&Version=2011-06-15");
    let target = config.audience();
    let signed = [
        ("host", host),
        ("x-goog-cloud-target-resource", target.as_str()),
    ];
    let credentials: Identity = Credentials::from_keys(
        &identity.access_key_id,
        &identity.secret_access_key,
        identity.session_token.clone(),
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&credentials)
        .region("us-east-1")
        .name("sts")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let request = SignableRequest::new(
        "POST",
        url.clone(),
        signed.into_iter(),
        SignableBody::Bytes(&[]),
    )
    .unwrap();
    let (instructions, _) = sign(request, &params).unwrap().into_parts();
    let mut headers: Vec<Value> = instructions
        .headers()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect();
    headers.push(json!({"key": "host", "value": host}));
    headers.push(json!({"key": "x-goog-cloud-target-resource", "value": target}));
    let request = json!({"url": url, "method": "POST", "headers": headers});
    utf8_percent_encode(&request.to_string(), NON_ALPHANUMERIC).to_string()
}

async fn access_token_via_sts_and_iam(emulator: &Emulator, scope: &str) -> String {
    let config = emulator.config();
    let form = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("audience", config.audience().as_str()),
            ("scope", "https://www.googleapis.com/auth/cloud-platform"),
            (
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            (
                "subject_token_type",
                "urn:ietf:params:aws:token-type:aws4_request",
            ),
            ("subject_token", subject_token(config).as_str()),
        ])
        .finish();
    let answer = send(
        emulator,
        Method::POST,
        "/v1/token",
        &[("content-type", "application/x-www-form-urlencoded")],
        bytes(form),
    )
    .await;
    answer.expect(200);
    let federated = format!("Bearer {}", answer.json()["access_token"].as_str().unwrap());
    let answer = send(
        emulator,
        Method::POST,
        &format!("/v1/projects/-/serviceAccounts/{SA}:generateAccessToken"),
        &[
            ("authorization", &federated),
            ("content-type", "application/json"),
        ],
        bytes(json!({"scope": [scope]}).to_string()),
    )
    .await;
    answer.expect(200);
    answer.json()["accessToken"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn tokens_from_sts_and_iam_upload_and_their_scope_matters() {
    let emulator = start(EmulatorConfig::demo()).await;
    let read_write = access_token_via_sts_and_iam(
        &emulator,
        "https://www.googleapis.com/auth/devstorage.read_write",
    )
    .await;
    try_multipart(&emulator, &read_write, "via-iam", b"x")
        .await
        .unwrap()
        .expect(200);

    let read_only = access_token_via_sts_and_iam(
        &emulator,
        "https://www.googleapis.com/auth/devstorage.read_only",
    )
    .await;
    let answer = try_multipart(&emulator, &read_only, "read-only", b"x")
        .await
        .unwrap();
    assert_gcs_error(
        &answer,
        403,
        "forbidden",
        "Provided scope(s) are not authorized",
    );
    assert!(emulator.object("read-only").is_none());
    assert_eq!(emulator.count(Endpoint::Sts), 2);
    assert_eq!(emulator.count(Endpoint::Iam), 2);
    assert_eq!(emulator.count(Endpoint::Gcs), 2);
}

// ---------------------------------------------------------------------------------------------
// Resumable uploads.

#[tokio::test]
async fn resumable_upload_in_three_chunks() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();
    let total = 2 * KIB256 + 1000;
    let data = pattern(0..total);
    let (crc32c, md5, sha256) = hashes(&data);
    let session = start_session(
        &emulator,
        &token,
        "big/one.bin",
        json!({"metadata": {"k": "v"}}),
    )
    .await;

    assert_incomplete(&status_query(&emulator, &session, "*").await, 0);
    assert_incomplete(
        &chunk(&emulator, &session, 0..KIB256, "*", &[]).await,
        KIB256,
    );
    // Not a multiple of 256 KiB and not final.
    chunk(&emulator, &session, KIB256..KIB256 + 1000, "*", &[])
        .await
        .expect(400);
    // Beyond the committed offset: a gap.
    chunk(&emulator, &session, 2 * KIB256..3 * KIB256, "*", &[])
        .await
        .expect(400);
    assert_incomplete(&status_query(&emulator, &session, "*").await, KIB256);
    // The first chunk again, with the second: the overlap is skipped and counted.
    assert_incomplete(
        &chunk(&emulator, &session, 0..2 * KIB256, "*", &[]).await,
        2 * KIB256,
    );
    let resent: Vec<u64> = gcs_entries(&emulator)
        .iter()
        .map(|e| e.gcs.as_ref().unwrap().bytes_resent)
        .collect();
    assert_eq!(resent, [0, 0, 0, 0, 0, 0, KIB256]);

    let goog_hash = format!("crc32c={crc32c},md5={md5}");
    let last = chunk(
        &emulator,
        &session,
        2 * KIB256..total,
        &total.to_string(),
        &[("x-goog-hash", &goog_hash)],
    )
    .await;
    last.expect(200);
    let object = last.json();
    assert_eq!(object["name"], "big/one.bin");
    assert_eq!(object["size"], total.to_string());
    assert_eq!(object["crc32c"], crc32c);
    assert_eq!(object["md5Hash"], md5);
    assert_eq!(object["contentType"], "application/x-test");
    assert_eq!(object["metadata"], json!({"k": "v"}));
    let stored = emulator.object("big/one.bin").unwrap();
    assert_eq!(stored.sha256_hex, sha256);
    assert_eq!(std::fs::read(stored.path.unwrap()).unwrap(), data);

    // A finished session answers with the object, whatever is asked.
    for total_text in ["*", &total.to_string()] {
        let answer = status_query(&emulator, &session, total_text).await;
        answer.expect(200);
        assert_eq!(answer.json(), object);
    }
    let again = chunk(
        &emulator,
        &session,
        2 * KIB256..total,
        &total.to_string(),
        &[],
    )
    .await;
    again.expect(200);
    assert_eq!(again.json(), object);

    let entries = gcs_entries(&emulator);
    let summary: Vec<(u16, Option<&str>)> = entries
        .iter()
        .map(|e| (e.status, e.gcs.as_ref().unwrap().content_range.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [
            (200, None),
            (308, Some("bytes */*")),
            (308, Some("bytes 0-262143/*")),
            (400, Some("bytes 262144-263143/*")),
            (400, Some("bytes 524288-786431/*")),
            (308, Some("bytes */*")),
            (308, Some("bytes 0-524287/*")),
            (200, Some("bytes 524288-525287/525288")),
            (200, Some("bytes */*")),
            (200, Some("bytes */525288")),
            (200, Some("bytes 524288-525287/525288")),
        ]
    );
    assert!(
        entries
            .iter()
            .all(|e| e.gcs.as_ref().unwrap().upload_type.as_deref() == Some("resumable"))
    );
    assert_eq!(entries[6].gcs.as_ref().unwrap().bytes_received, 2 * KIB256);
    assert_eq!(entries[10].gcs.as_ref().unwrap().bytes_resent, 1000);
    assert_eq!(staged_files(&emulator), 0);
}

#[tokio::test]
async fn a_status_query_never_finalizes_but_the_total_does() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();
    let session = start_session(&emulator, &token, "unknown-length", json!({})).await;
    chunk(&emulator, &session, 0..KIB256, "*", &[])
        .await
        .expect(308);
    chunk(&emulator, &session, KIB256..2 * KIB256, "*", &[])
        .await
        .expect(308);
    // All bytes are in, but the session has not been told the total.
    for _ in 0..2 {
        assert_incomplete(&status_query(&emulator, &session, "*").await, 2 * KIB256);
    }
    assert!(emulator.object("unknown-length").is_none());
    // A total larger than what is committed does not finalize either; a smaller one is wrong.
    assert_incomplete(
        &status_query(&emulator, &session, &(3 * KIB256).to_string()).await,
        2 * KIB256,
    );
    status_query(&emulator, &session, "1").await.expect(400);
    assert!(emulator.object("unknown-length").is_none());

    // `bytes */TOTAL` with TOTAL committed ends the upload, checked by X-Goog-Hash.
    let session = start_session(&emulator, &token, "ended-by-total", json!({})).await;
    chunk(&emulator, &session, 0..KIB256, "*", &[])
        .await
        .expect(308);
    let (crc32c, md5, sha256) = hashes(&pattern(0..KIB256));
    let goog_hash = format!("crc32c={crc32c},md5={md5}");
    let answer = send(
        &emulator,
        Method::PUT,
        &session,
        &[
            ("content-range", &format!("bytes */{KIB256}")),
            ("x-goog-hash", &goog_hash),
        ],
        bytes(""),
    )
    .await;
    answer.expect(200);
    assert_eq!(
        emulator.object("ended-by-total").unwrap().sha256_hex,
        sha256
    );

    // A 0-byte object.
    let session = start_session(&emulator, &token, "empty", json!({})).await;
    let answer = status_query(&emulator, &session, "0").await;
    answer.expect(200);
    assert_eq!(answer.json()["size"], "0");
    assert_eq!(answer.json()["crc32c"], "AAAAAA==");
    assert_eq!(answer.json()["md5Hash"], "1B2M2Y8AsgTpgAmY7PhCfg==");
}

#[tokio::test]
async fn wrong_x_goog_hash_kills_the_session() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();
    let total = KIB256 + 10;
    let (crc32c, md5, _) = hashes(&pattern(0..total));
    let session = start_session(&emulator, &token, "damaged", json!({})).await;
    chunk(&emulator, &session, 0..KIB256, "*", &[])
        .await
        .expect(308);
    let wrong = format!("crc32c=AAAAAA==,md5={md5}");
    let answer = chunk(
        &emulator,
        &session,
        KIB256..total,
        &total.to_string(),
        &[("x-goog-hash", &wrong)],
    )
    .await;
    let message =
        format!("Provided CRC32C \"AAAAAA==\" doesn't match calculated CRC32C \"{crc32c}\".");
    assert_gcs_error(&answer, 400, "invalid", &message);
    assert!(emulator.object("damaged").is_none());
    assert_eq!(staged_files(&emulator), 0);
    // Dead: asking again or re-sending the right data does not bring the object back.
    assert_gcs_error(
        &status_query(&emulator, &session, "*").await,
        400,
        "invalid",
        &message,
    );
    let right = format!("crc32c={crc32c},md5={md5}");
    let answer = chunk(
        &emulator,
        &session,
        KIB256..total,
        &total.to_string(),
        &[("x-goog-hash", &right)],
    )
    .await;
    answer.expect(400);
    assert!(emulator.object("damaged").is_none());

    // Checksums declared when the session started are checked too.
    let session = start_session(
        &emulator,
        &token,
        "damaged-2",
        json!({"md5Hash": "AAAAAAAAAAAAAAAAAAAAAA=="}),
    )
    .await;
    let answer = chunk(&emulator, &session, 0..total, &total.to_string(), &[]).await;
    assert_gcs_error(
        &answer,
        400,
        "invalid",
        &format!(
            "Provided MD5 hash \"AAAAAAAAAAAAAAAAAAAAAA==\" doesn't match calculated MD5 hash \"{md5}\"."
        ),
    );
    assert!(emulator.objects().is_empty());

    // A malformed X-Goog-Hash is refused before any byte is taken, and costs nothing.
    let session = start_session(&emulator, &token, "fine", json!({})).await;
    chunk(
        &emulator,
        &session,
        0..total,
        &total.to_string(),
        &[("x-goog-hash", "sha1=xyz")],
    )
    .await
    .expect(400);
    assert_incomplete(&status_query(&emulator, &session, "*").await, 0);
    chunk(
        &emulator,
        &session,
        0..total,
        &total.to_string(),
        &[("x-goog-hash", &right)],
    )
    .await
    .expect(200);
}

#[tokio::test]
async fn the_precondition_is_checked_again_at_the_end() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();
    let session = start_session(&emulator, &token, "contested", json!({})).await;
    chunk(&emulator, &session, 0..KIB256, "*", &[])
        .await
        .expect(308);
    try_multipart(&emulator, &token, "contested", b"winner")
        .await
        .unwrap()
        .expect(200);
    let answer = chunk(
        &emulator,
        &session,
        KIB256..KIB256 + 1,
        &(KIB256 + 1).to_string(),
        &[],
    )
    .await;
    answer.expect(412);
    status_query(&emulator, &session, "*").await.expect(412);
    let stored = emulator.object("contested").unwrap();
    assert_eq!(std::fs::read(stored.path.unwrap()).unwrap(), b"winner");
}

#[tokio::test]
async fn sessions_unknown_cancelled_and_inconsistent() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();
    let unknown = format!("{UPLOAD}?uploadType=resumable&name=x&upload_id=nope");
    status_query(&emulator, &unknown, "*").await.expect(404);

    let session = start_session(&emulator, &token, "cancelled", json!({})).await;
    chunk(&emulator, &session, 0..KIB256, "*", &[])
        .await
        .expect(308);
    let answer = send(&emulator, Method::DELETE, &session, &[], bytes("")).await;
    answer.expect(499);
    status_query(&emulator, &session, "*").await.expect(404);
    assert!(emulator.object("cancelled").is_none());
    assert_eq!(staged_files(&emulator), 0);

    // X-Upload-Content-Length binds the total.
    let bearer = format!("Bearer {token}");
    let answer = send(
        &emulator,
        Method::POST,
        &upload_path("resumable", "sized", Some("0")),
        &[
            ("authorization", &bearer),
            ("x-upload-content-length", "1000"),
        ],
        bytes(""),
    )
    .await;
    answer.expect(200);
    let session = answer
        .header("location")
        .unwrap()
        .strip_prefix(&format!("http://{HOST}"))
        .unwrap()
        .to_owned();
    chunk(&emulator, &session, 0..999, "999", &[])
        .await
        .expect(400);
    status_query(&emulator, &session, "1001").await.expect(400);
    for bad in ["bytes 0-9", "0-9/10", "bytes 9-0/10", "bytes a-b/c"] {
        send(
            &emulator,
            Method::PUT,
            &session,
            &[("content-range", bad)],
            bytes(""),
        )
        .await
        .expect(400);
    }
    // Content-Length disagreeing with Content-Range.
    send(
        &emulator,
        Method::PUT,
        &session,
        &[("content-range", "bytes 0-999/1000")],
        bytes(pattern(0..10)),
    )
    .await
    .expect(400);
    assert_incomplete(&status_query(&emulator, &session, "*").await, 0);
    chunk(&emulator, &session, 0..1000, "1000", &[])
        .await
        .expect(200);
    // Session requests need no Authorization, but starting one does.
    send(
        &emulator,
        Method::POST,
        &upload_path("resumable", "unauthenticated", Some("0")),
        &[],
        bytes(""),
    )
    .await
    .expect(401);
}

#[tokio::test]
async fn a_client_that_hangs_up_mid_chunk_keeps_whole_256_kib_units() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();
    let total = 4 * KIB256;
    let session = start_session(&emulator, &token, "hung-up", json!({})).await;
    chunk(&emulator, &session, 0..KIB256, "*", &[])
        .await
        .expect(308);

    // GCS's words on the status line.
    let mut stream = tokio::net::TcpStream::connect(emulator.addr())
        .await
        .unwrap();
    let query = format!(
        "PUT {session} HTTP/1.1\r\nhost: {HOST}\r\ncontent-range: bytes */*\r\n\
         content-length: 0\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(query.as_bytes()).await.unwrap();
    let mut head = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut head)
        .await
        .unwrap();
    assert!(
        head.starts_with("HTTP/1.1 308 Resume Incomplete\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nrange: bytes=0-262143\r\n"), "{head}");

    // Announce 3 units, send 1.5, hang up.
    let mut stream = tokio::net::TcpStream::connect(emulator.addr())
        .await
        .unwrap();
    let head = format!(
        "PUT {session} HTTP/1.1\r\nhost: {HOST}\r\ncontent-range: bytes {KIB256}-{}/{total}\r\n\
         content-length: {}\r\n\r\n",
        total - 1,
        3 * KIB256
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
        .write_all(&pattern(KIB256..KIB256 + KIB256 * 3 / 2))
        .await
        .unwrap();
    stream.flush().await.unwrap();
    drop(stream);
    let entries = wait_for_gcs_log(&emulator, 4).await;
    assert_eq!(entries[3].status, 0, "no answer: {:?}", entries[3]);
    assert!(
        entries[3].outcome.contains("client went away"),
        "{}",
        entries[3].outcome
    );

    assert_incomplete(&status_query(&emulator, &session, "*").await, 2 * KIB256);
    let (crc32c, md5, sha256) = hashes(&pattern(0..total));
    let goog_hash = format!("crc32c={crc32c},md5={md5}");
    chunk(
        &emulator,
        &session,
        2 * KIB256..total,
        &total.to_string(),
        &[("x-goog-hash", &goog_hash)],
    )
    .await
    .expect(200);
    assert_eq!(emulator.object("hung-up").unwrap().sha256_hex, sha256);
}

// ---------------------------------------------------------------------------------------------
// Faults.

#[tokio::test]
async fn status_faults_answer_without_doing_anything_in_order() {
    let mut config = EmulatorConfig::demo();
    config.faults = FaultPlan::scripted([Fault::Status(503), Fault::Status(429)]);
    let emulator = start(config).await;
    let token = emulator.issue_access_token_for_tests();
    let answer = try_multipart(&emulator, &token, "f", b"x").await.unwrap();
    assert_gcs_error(&answer, 503, "backendError", "Service Unavailable");
    let answer = try_multipart(&emulator, &token, "f", b"x").await.unwrap();
    answer.expect(429);
    assert_eq!(
        answer.json()["error"]["errors"][0]["reason"],
        "rateLimitExceeded"
    );
    assert!(emulator.object("f").is_none());
    try_multipart(&emulator, &token, "f", b"x")
        .await
        .unwrap()
        .expect(200);
    let faults: Vec<Option<Fault>> = gcs_entries(&emulator)
        .into_iter()
        .map(|e| e.gcs.unwrap().fault)
        .collect();
    assert_eq!(
        faults,
        [Some(Fault::Status(503)), Some(Fault::Status(429)), None]
    );

    // Changed at runtime; a status fault on a chunk commits nothing.
    let session = start_session(&emulator, &token, "g", json!({})).await;
    emulator.set_faults(FaultPlan::scripted([Fault::Status(500)]));
    chunk(&emulator, &session, 0..KIB256, "*", &[])
        .await
        .expect(500);
    assert_incomplete(&status_query(&emulator, &session, "*").await, 0);
}

#[tokio::test]
async fn reset_mid_body_of_a_multipart_upload_creates_nothing() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();
    emulator.set_faults(FaultPlan::scripted([Fault::ResetMidBody {
        after_bytes: 100_000,
    }]));
    let data = pattern(0..300_000);
    let result = try_multipart(&emulator, &token, "cut", &data).await;
    assert!(result.is_err(), "{result:?}");
    let entries = wait_for_gcs_log(&emulator, 1).await;
    assert_eq!(entries[0].status, 0);
    assert_eq!(entries[0].gcs.as_ref().unwrap().bytes_received, 100_000);
    assert!(emulator.object("cut").is_none());
    assert_eq!(staged_files(&emulator), 0);
    // Also when the cut falls after the whole body: nothing is created.
    emulator.set_faults(FaultPlan::scripted([Fault::ResetMidBody {
        after_bytes: 10_000_000,
    }]));
    assert!(
        try_multipart(&emulator, &token, "cut", &data)
            .await
            .is_err()
    );
    assert!(emulator.object("cut").is_none());
    try_multipart(&emulator, &token, "cut", &data)
        .await
        .unwrap()
        .expect(200);
}

#[tokio::test]
async fn reset_mid_chunk_commits_whole_256_kib_units_and_the_upload_resumes() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();
    let total = 4 * KIB256 + 123;
    let session = start_session(&emulator, &token, "resumed", json!({})).await;
    emulator.set_faults(FaultPlan::scripted([Fault::ResetMidBody {
        after_bytes: 2 * KIB256 + 5000,
    }]));
    let cut = try_chunk(&emulator, &session, 0..4 * KIB256, "*", &[]).await;
    assert!(cut.is_err(), "{cut:?}");
    assert_incomplete(&status_query(&emulator, &session, "*").await, 2 * KIB256);
    chunk(
        &emulator,
        &session,
        2 * KIB256..total,
        &total.to_string(),
        &[],
    )
    .await
    .expect(200);
    let stored = emulator.object("resumed").unwrap();
    assert_eq!(stored.sha256_hex, hashes(&pattern(0..total)).2);
    let entries = gcs_entries(&emulator);
    let resent: u64 = entries
        .iter()
        .map(|e| e.gcs.as_ref().unwrap().bytes_resent)
        .sum();
    assert_eq!(resent, 0, "committed bytes were not sent again");
    assert_eq!(
        entries[1].gcs.as_ref().unwrap().bytes_received,
        2 * KIB256 + 5000
    );
}

#[tokio::test]
async fn lost_answers_after_commit() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();

    // Multipart: the object exists; the retry with ifGenerationMatch=0 answers 412.
    emulator.set_faults(FaultPlan::scripted([Fault::LoseResponseAfterCommit]));
    let lost = try_multipart(&emulator, &token, "landed", b"payload").await;
    assert!(lost.is_err(), "{lost:?}");
    assert_eq!(emulator.object("landed").unwrap().size, 7);
    try_multipart(&emulator, &token, "landed", b"payload")
        .await
        .unwrap()
        .expect(412);

    // Resumable: the status query reveals the finished object.
    let total = KIB256 + 1;
    let session = start_session(&emulator, &token, "landed-2", json!({})).await;
    chunk(&emulator, &session, 0..KIB256, "*", &[])
        .await
        .expect(308);
    emulator.set_faults(FaultPlan::scripted([Fault::LoseResponseAfterCommit]));
    let lost = try_chunk(&emulator, &session, KIB256..total, &total.to_string(), &[]).await;
    assert!(lost.is_err(), "{lost:?}");
    let answer = status_query(&emulator, &session, &total.to_string()).await;
    answer.expect(200);
    assert_eq!(answer.json()["size"], total.to_string());
    assert_eq!(answer.json()["crc32c"], hashes(&pattern(0..total)).0);

    // A lost 308: the chunk is committed, and the client learns it by asking.
    let session = start_session(&emulator, &token, "landed-3", json!({})).await;
    emulator.set_faults(FaultPlan::scripted([Fault::LoseResponseAfterCommit]));
    assert!(
        try_chunk(&emulator, &session, 0..KIB256, "*", &[])
            .await
            .is_err()
    );
    assert_incomplete(&status_query(&emulator, &session, "*").await, KIB256);
}

#[tokio::test]
async fn slow_answers_come_late() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();
    emulator.set_faults(FaultPlan::scripted([Fault::Slow(Duration::from_millis(
        300,
    ))]));
    let started = Instant::now();
    try_multipart(&emulator, &token, "slow", b"x")
        .await
        .unwrap()
        .expect(200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let started = Instant::now();
    try_multipart(&emulator, &token, "fast", b"x")
        .await
        .unwrap()
        .expect(200);
    assert!(started.elapsed() < Duration::from_millis(300));
}

#[tokio::test]
async fn random_faults_are_reproducible_and_never_corrupt() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();
    // Names of equal length per run, so bodies (and random cut points) are alike.
    let run = |seed: u64, tag: char| {
        let emulator = &emulator;
        let token = &token;
        async move {
            emulator.set_faults(FaultPlan::random(seed, 0.5));
            let mut outcomes = Vec::new();
            for i in 0..40 {
                let name = format!("{tag}-{i:02}");
                let data = pattern(i..i + 2000);
                let outcome = match try_multipart(emulator, token, &name, &data).await {
                    Ok(answer) => answer.status.as_u16(),
                    Err(_) => 0,
                };
                // Whatever happened, an object that exists has exactly the bytes sent.
                if let Some(stored) = emulator.object(&name) {
                    assert_eq!(stored.sha256_hex, hashes(&data).2);
                }
                outcomes.push((outcome, emulator.object(&name).is_some()));
            }
            outcomes
        }
    };
    let first = run(42, 'a').await;
    assert_eq!(first.len(), 40);
    for status in [200, 503, 429, 0] {
        assert!(
            first.iter().any(|(s, _)| *s == status),
            "{status}: {first:?}"
        );
    }
    // A lost answer after commit: no status, but the object is there.
    assert!(first.contains(&(0, true)), "{first:?}");
    assert!(first.contains(&(0, false)), "{first:?}");
    let faults: Vec<Option<Fault>> = gcs_entries(&emulator)
        .into_iter()
        .map(|e| e.gcs.unwrap().fault)
        .collect();
    let second: Vec<(u16, bool)> = run(42, 'b').await;
    assert_eq!(first, second);
    let again: Vec<Option<Fault>> = gcs_entries(&emulator)[40..]
        .iter()
        .map(|e| e.gcs.clone().unwrap().fault)
        .collect();
    assert_eq!(faults, again);
}

// ---------------------------------------------------------------------------------------------
// Storage modes and memory.

#[tokio::test]
async fn discard_mode_hashes_and_counts_but_keeps_no_bytes() {
    let mut config = EmulatorConfig::demo();
    config.storage = Storage::Discard;
    let emulator = start(config).await;
    assert!(emulator.storage_dir().is_none());
    let token = emulator.issue_access_token_for_tests();
    let data = pattern(0..100_000);
    try_multipart(&emulator, &token, "d", &data)
        .await
        .unwrap()
        .expect(200);
    let stored = emulator.object("d").unwrap();
    assert_eq!(stored.path, None);
    assert_eq!(stored.size, 100_000);
    assert_eq!(stored.sha256_hex, hashes(&data).2);
    // Creation still counts: no second one.
    try_multipart(&emulator, &token, "d", &data)
        .await
        .unwrap()
        .expect(412);
    let session = start_session(&emulator, &token, "e", json!({})).await;
    chunk(&emulator, &session, 0..KIB256, "*", &[])
        .await
        .expect(308);
    chunk(
        &emulator,
        &session,
        KIB256..KIB256 + 7,
        &(KIB256 + 7).to_string(),
        &[],
    )
    .await
    .expect(200);
    assert_eq!(
        emulator.object("e").unwrap().sha256_hex,
        hashes(&pattern(0..KIB256 + 7)).2
    );
}

#[tokio::test]
async fn disk_mode_uses_the_given_directory_and_temp_dirs_go_away() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EmulatorConfig::demo();
    config.storage = Storage::Disk(dir.path().join("objects"));
    let emulator = start(config).await;
    let token = emulator.issue_access_token_for_tests();
    try_multipart(&emulator, &token, "a/b c", b"x")
        .await
        .unwrap()
        .expect(200);
    let stored = emulator.object("a/b c").unwrap();
    assert_eq!(
        stored.path.unwrap(),
        dir.path().join("objects").join("a%2Fb%20c")
    );
    drop(emulator);
    assert!(dir.path().join("objects/a%2Fb%20c").exists());

    let emulator = start(EmulatorConfig::demo()).await;
    let temp = emulator.storage_dir().unwrap().to_path_buf();
    assert!(temp.exists());
    drop(emulator);
    assert!(!temp.exists());
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// 64 MiB in 16 MiB chunks, streamed: the emulator must not hold a chunk in memory. Measured in
/// a process of its own (this test binary, run again for this one test), so that the other
/// tests' allocations do not count.
#[test]
fn a_64_mib_resumable_upload_streams() {
    const NAME: &str = "a_64_mib_resumable_upload_streams";
    const CHILD: &str = "GCS_EMULATOR_MEASURE_RSS";
    if std::env::var_os(CHILD).is_none() {
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stdout}\n{stderr}");
        assert!(stdout.contains("1 passed"), "{stdout}");
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(upload_64_mib_measuring_rss());
}

async fn upload_64_mib_measuring_rss() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();
    let total = 64 << 20;
    let chunk_size = 16 << 20;
    let session = start_session(&emulator, &token, "large", json!({})).await;
    let baseline = rss_bytes();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(baseline));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_bytes(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let mut offset = 0;
    while offset < total {
        let end = offset + chunk_size;
        let total_text = if end == total {
            total.to_string()
        } else {
            "*".into()
        };
        let answer = chunk(&emulator, &session, offset..end, &total_text, &[]).await;
        answer.expect(if end == total { 200 } else { 308 });
        offset = end;
    }
    sampler.abort();
    let growth = peak
        .load(std::sync::atomic::Ordering::Relaxed)
        .saturating_sub(baseline);
    println!("RSS growth during the upload: {} KiB", growth >> 10);
    assert!(growth < 12 << 20, "RSS grew by {} MiB", growth >> 20);
    let stored = emulator.object("large").unwrap();
    assert_eq!(stored.size, total);
    assert_eq!(
        std::fs::metadata(stored.path.unwrap()).unwrap().len(),
        total
    );
}

/// The same bytes over and over, without generating them: measures the emulator, not the client.
struct RepeatBody {
    frame: Bytes,
    left: u64,
}

impl Body for RepeatBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(self.frame.len() as u64);
        self.left -= n;
        Poll::Ready(Some(Ok(Frame::data(self.frame.slice(..n as usize)))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

/// Throughput of a 1 GiB resumable upload in 16 MiB chunks, to disk and discarded:
/// `cargo test --release -p host-test --test gcs_emulator throughput -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run it on purpose"]
async fn throughput_of_a_1_gib_resumable_upload() {
    const TOTAL: u64 = 1 << 30;
    const CHUNK: u64 = 16 << 20;
    for storage in [Storage::Discard, Storage::TempDir] {
        let mut config = EmulatorConfig::demo();
        config.storage = storage.clone();
        let emulator = start(config).await;
        let token = emulator.issue_access_token_for_tests();
        let session = start_session(&emulator, &token, "bench", json!({})).await;
        let frame = Bytes::from(pattern(0..256 * 1024));
        let started = Instant::now();
        for offset in (0..TOTAL).step_by(CHUNK as usize) {
            let end = offset + CHUNK;
            let range = format!(
                "bytes {offset}-{}/{}",
                end - 1,
                if end == TOTAL {
                    TOTAL.to_string()
                } else {
                    "*".into()
                }
            );
            let body = RepeatBody {
                frame: frame.clone(),
                left: CHUNK,
            }
            .boxed();
            let answer = send(
                &emulator,
                Method::PUT,
                &session,
                &[("content-range", &range)],
                body,
            )
            .await;
            answer.expect(if end == TOTAL { 200 } else { 308 });
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{storage:?}: 1 GiB in {seconds:.2} s = {:.0} MiB/s",
            1024.0 / seconds
        );
        assert_eq!(emulator.object("bench").unwrap().size, TOTAL);
    }
}
