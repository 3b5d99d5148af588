//! The Cloud Storage JSON API upload requests, and what their answers mean. Every upload
//! carries `ifGenerationMatch=0`: it creates or fails, never overwrites.

use std::collections::BTreeMap;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Step, excerpt};
use crate::io::Response;
use crate::secret::Secret;

/// Resumable chunks must be multiples of this (except the last).
pub const QUANTUM: u64 = 256 * 1024;
const BOUNDARY: &str = "wif_push_boundary_7c2f9a41e8d3";

/// Query-parameter encoding: everything but unreserved characters.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// What to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectSpec {
    /// The full object name, prefix included.
    pub name: String,
    /// The size when known up front (a file); `None` for a stream of unknown length.
    pub size: Option<u64>,
    pub content_type: String,
    pub metadata: BTreeMap<String, String>,
    /// The CRC32C (base64) the source keeps for these bytes (an S3 object's full-object
    /// checksum): the bytes read must have it, or nothing is created.
    pub expected_crc32c: Option<String>,
    /// A resumable session started earlier for this object ([`super::start_session`]), which
    /// the delivery continues from what GCS committed instead of starting one; the source still
    /// starts at byte 0 (committed bytes are read and hashed, not sent again). Whoever started
    /// it owns it: the delivery never cancels it.
    pub session: Option<String>,
}

/// The metadata part GCS takes on upload.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Metadata<'a> {
    name: &'a str,
    content_type: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    metadata: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    crc32c: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    md5_hash: Option<&'a str>,
}

/// The object resource GCS answers a finished upload with.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectResource {
    pub name: String,
    pub bucket: String,
    pub generation: String,
    pub size: String,
    pub crc32c: Option<String>,
    pub md5_hash: Option<String>,
}

/// Cloud Storage refuses more custom metadata than this (keys and values together).
pub const MAX_METADATA_BYTES: usize = 8 * 1024;

/// The one rule for what an object is created with, whoever asks (CLI flags, the library's
/// WIT call, the sidecar's headers): a valid name, a content type and metadata that can travel
/// in HTTP headers (as `x-upload-content-type` and, with other tools, `x-goog-meta-*`), and at
/// most [`MAX_METADATA_BYTES`] of metadata.
pub fn validate_object(spec: &ObjectSpec) -> Result<(), Error> {
    validate_name(&spec.name)?;
    let refuse = |message: String, fix: &str| Err(Error::new(Step::Upload, message).with_fix(fix));
    if let Err(problem) = check_content_type(&spec.content_type) {
        return refuse(
            format!("the content type of {} {problem}", spec.name),
            "give a MIME type such as text/csv or application/octet-stream",
        );
    }
    if let Err(problem) = check_metadata(spec.metadata.iter()) {
        return refuse(
            format!("the metadata of {} {problem}", spec.name),
            "use keys of letters, digits and - _ . and values without control characters, \
             8 KiB in all",
        );
    }
    Ok(())
}

/// A content type: visible ASCII, spaces and tabs (an HTTP field value), at most 1024 bytes.
pub fn check_content_type(value: &str) -> Result<(), String> {
    if value.len() > 1024 {
        Err(format!("is {} bytes long", value.len()))
    } else if let Some(c) = value.chars().find(|c| !is_field_char(*c)) {
        Err(format!("contains {}", describe(c)))
    } else {
        Ok(())
    }
}

/// Custom metadata: keys that are HTTP header-name characters, values without control
/// characters, [`MAX_METADATA_BYTES`] in all.
pub fn check_metadata<'a>(
    pairs: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Result<(), String> {
    let mut total = 0;
    for (key, value) in pairs {
        let key_ok = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !key_ok {
            return Err(format!(
                "has the key {}, which is not a header-name token",
                crate::error::quote(key, 64)
            ));
        }
        if let Some(c) = value.chars().find(|c| c.is_control()) {
            return Err(format!("value of {key} contains {}", describe(c)));
        }
        total += key.len() + value.len();
    }
    if total > MAX_METADATA_BYTES {
        return Err(format!(
            "is {total} bytes; Cloud Storage allows at most {MAX_METADATA_BYTES}"
        ));
    }
    Ok(())
}

fn is_field_char(c: char) -> bool {
    c == ' ' || c == '\t' || c.is_ascii_graphic()
}

fn describe(c: char) -> String {
    if c.is_control() {
        format!("the control character U+{:04X}", u32::from(c))
    } else {
        format!("the non-ASCII character {c:?}")
    }
}

/// Object names: UTF-8, 1 to 1024 bytes, no CR/LF, not `.` or `..`, not starting
/// `.well-known/acme-challenge/` (GCS's rules).
pub fn validate_name(name: &str) -> Result<(), Error> {
    let problem = if name.is_empty() {
        Some("is empty")
    } else if name.len() > 1024 {
        Some("is longer than 1024 bytes")
    } else if name.contains(['\r', '\n']) {
        Some("contains a line break")
    } else if name == "." || name == ".." {
        Some("is . or ..")
    } else if name.starts_with(".well-known/acme-challenge/") {
        Some("starts with .well-known/acme-challenge/")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(Error::new(
            Step::Upload,
            format!("object name {} {problem}", crate::error::quote(name, 200)),
        )
        .with_fix("choose a name of 1 to 1024 bytes without line breaks")),
        None => Ok(()),
    }
}

fn upload_url(storage_url: &str, bucket: &str, upload_type: &str, name: &str) -> String {
    format!(
        "{}/upload/storage/v1/b/{}/o?uploadType={upload_type}&name={}&ifGenerationMatch=0",
        storage_url.trim_end_matches('/'),
        utf8_percent_encode(bucket, QUERY),
        utf8_percent_encode(name, QUERY)
    )
}

/// One `uploadType=multipart` request: metadata (with both checksums, so GCS refuses corrupted
/// bytes) and media in one round trip. Returns the head and the body.
pub fn multipart(
    storage_url: &str,
    bucket: &str,
    spec: &ObjectSpec,
    data: &[u8],
    crc32c: &str,
    md5: &str,
    token: &Secret,
) -> (http::Request<()>, Vec<u8>) {
    let metadata = serde_json::to_string(&Metadata {
        name: &spec.name,
        content_type: &spec.content_type,
        metadata: &spec.metadata,
        crc32c: Some(crc32c),
        md5_hash: Some(md5),
    })
    .expect("plain structs serialize");
    let mut body = Vec::with_capacity(data.len() + metadata.len() + 256);
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\ncontent-type: application/json; charset=UTF-8\r\n\r\n{metadata}\r\n--{BOUNDARY}\r\ncontent-type: {}\r\n\r\n",
            spec.content_type
        )
        .as_bytes(),
    );
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let head = http::Request::post(upload_url(storage_url, bucket, "multipart", &spec.name))
        .header("authorization", token.bearer())
        .header(
            "content-type",
            format!("multipart/related; boundary={BOUNDARY}"),
        )
        .body(())
        .expect("validated URL and headers");
    (head, body)
}

/// Starts a resumable session; the answer's `Location` is the session URL.
pub fn start_resumable(
    storage_url: &str,
    bucket: &str,
    spec: &ObjectSpec,
    token: &Secret,
) -> (http::Request<()>, Vec<u8>) {
    let metadata = serde_json::to_vec(&Metadata {
        name: &spec.name,
        content_type: &spec.content_type,
        metadata: &spec.metadata,
        crc32c: None,
        md5_hash: None,
    })
    .expect("plain structs serialize");
    let mut head = http::Request::post(upload_url(storage_url, bucket, "resumable", &spec.name))
        .header("authorization", token.bearer())
        .header("content-type", "application/json; charset=UTF-8")
        .header("x-upload-content-type", &spec.content_type);
    if let Some(size) = spec.size {
        head = head.header("x-upload-content-length", size);
    }
    (head.body(()).expect("validated URL and headers"), metadata)
}

/// A chunk at `offset` of `len` bytes; `total` once the size is known. The final chunk carries
/// the whole object's CRC32C, which GCS checks before it creates the object.
pub fn chunk(
    session_url: &str,
    token: &Secret,
    offset: u64,
    len: u64,
    total: Option<u64>,
    final_crc32c: Option<&str>,
) -> http::Request<()> {
    let total_text = total.map_or("*".to_owned(), |t| t.to_string());
    let range = if len == 0 {
        format!("bytes */{total_text}")
    } else {
        format!("bytes {offset}-{}/{total_text}", offset + len - 1)
    };
    let mut head = http::Request::put(session_url)
        .header("authorization", token.bearer())
        .header("content-range", range);
    if let Some(crc32c) = final_crc32c {
        head = head.header("x-goog-hash", format!("crc32c={crc32c}"));
    }
    head.body(()).expect("the session URL came from GCS")
}

/// Asks a session how much it has committed (or for the object, if it finished).
pub fn status_query(session_url: &str, token: &Secret, total: Option<u64>) -> http::Request<()> {
    chunk(session_url, token, 0, 0, total, None)
}

/// Cancels a resumable session (GCS answers 499 and drops what it committed).
pub fn cancel(session_url: &str, token: &Secret) -> http::Request<()> {
    http::Request::delete(session_url)
        .header("authorization", token.bearer())
        .header("content-length", "0")
        .body(())
        .expect("the session URL was checked when the session started")
}

/// The session URL of a started resumable upload: its `Location`, which must name the storage
/// endpoint's host, since every chunk sent there carries the access token. It is followed on
/// the configured endpoint's scheme and port, so an emulator that answers `http://` for a name
/// reached over https (fake-gcs-server behind a proxy does) never downgrades the token.
pub fn session_url(response: &Response, storage_url: &str) -> Result<String, Error> {
    let refuse = |problem: String| Err(Error::new(Step::Upload, problem));
    let Some(location) = crate::io::header(response, "location") else {
        return refuse("GCS started a resumable session without a Location".into());
    };
    on_storage_host(location, storage_url).ok_or_else(|| {
        Error::new(
            Step::Upload,
            format!(
                "GCS answered a resumable session at {}, which is not on {storage_url}; the token \
                 is not sent there",
                crate::error::quote(location, 200)
            ),
        )
    })
}

/// `location` as a URL on the storage endpoint's origin, if it is on that host: the only
/// place a session's requests (and the token) may go.
pub fn on_storage_host(location: &str, storage_url: &str) -> Option<String> {
    let storage = storage_url.parse::<http::Uri>().ok();
    let session = location.parse::<http::Uri>().ok();
    let same_host = |a: &http::Uri, b: &http::Uri| {
        a.host()
            .zip(b.host())
            .is_some_and(|(a, b)| a.eq_ignore_ascii_case(b))
    };
    match (storage, session) {
        (Some(storage), Some(session)) if same_host(&storage, &session) => {
            let origin = storage_url.trim_end_matches('/');
            let origin = match storage.path_and_query().map(|p| p.as_str()) {
                Some(path) if path != "/" => origin.strip_suffix(path).unwrap_or(origin),
                _ => origin,
            };
            let path = session.path_and_query().map_or("/", |p| p.as_str());
            Some(format!("{origin}{path}"))
        }
        _ => None,
    }
}

/// What a resumable-session answer means.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionState {
    /// `308`: this many bytes are committed.
    Incomplete(u64),
    Finished(ObjectResource),
}

pub fn session_state(response: &Response, name: &str) -> Result<SessionState, Error> {
    if response.status() == 308 {
        let committed = match crate::io::header(response, "range") {
            None => 0,
            Some(range) => range
                .strip_prefix("bytes=0-")
                .and_then(|end| end.parse::<u64>().ok())
                .map(|end| end + 1)
                .ok_or_else(|| {
                    Error::new(
                        Step::Upload,
                        format!(
                            "GCS answered 308 with an unreadable Range {range_q}",
                            range_q = crate::error::quote(range, 100)
                        ),
                    )
                })?,
        };
        return Ok(SessionState::Incomplete(committed));
    }
    object(response, name).map(SessionState::Finished)
}

/// The object resource of a successful upload, or the error GCS answered, diagnosed.
pub fn object(response: &Response, name: &str) -> Result<ObjectResource, Error> {
    let status = response.status().as_u16();
    if status == 200 || status == 201 {
        return serde_json::from_slice(response.body()).map_err(|e| {
            Error::new(
                Step::Upload,
                format!("GCS answered {status} for {name} with an unexpected body ({e})"),
            )
        });
    }
    Err(upload_error(response, name))
}

#[derive(Deserialize)]
struct ErrorBody {
    error: GcsError,
}

#[derive(Deserialize)]
struct GcsError {
    message: Option<String>,
}

/// GCS's answer to a failed upload request, with the likely cause.
pub fn upload_error(response: &Response, name: &str) -> Error {
    let status = response.status().as_u16();
    let said = serde_json::from_slice::<ErrorBody>(response.body())
        .ok()
        .and_then(|b| b.error.message)
        .map_or_else(
            || excerpt(response.body(), 200),
            |m| excerpt(m.as_bytes(), 500),
        );
    let e = Error::answered(
        Step::Upload,
        status,
        format!("GCS answered {status} for {name}: {said}"),
    );
    if e.transient {
        return e;
    }
    match status {
        401 => e.with_fix("the access token was refused; it is renewed and the upload tried once more"),
        403 => e.with_fix(
            "the service account may not create objects in this bucket: ask the partner to grant it \
             roles/storage.objectCreator on the bucket",
        ),
        404 => e.with_fix("the bucket does not exist: check bucket with the partner"),
        412 => e.with_fix(format!(
            "an object named {name} already exists and is never overwritten: deliver under another name or prefix"
        )),
        400 if said.contains("match") => e.with_fix(
            "the bytes changed in transit (GCS's checksum did not match): nothing was stored; deliver again",
        ),
        _ => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> ObjectSpec {
        ObjectSpec {
            name: name.into(),
            size: Some(3),
            content_type: "text/plain".into(),
            metadata: BTreeMap::from([("source".into(), "aws".into())]),
            expected_crc32c: None,
            session: None,
        }
    }

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        let mut r = http::Response::builder().status(status);
        for (n, v) in headers {
            r = r.header(*n, *v);
        }
        r.body(body.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn multipart_carries_checksums_and_never_overwrites() {
        let (head, body) = multipart(
            "https://storage.googleapis.com",
            "b",
            &spec("in/a b.txt"),
            b"abc",
            "C==",
            "M==",
            &Secret::new("t"),
        );
        assert_eq!(
            head.uri().to_string(),
            "https://storage.googleapis.com/upload/storage/v1/b/b/o?uploadType=multipart&name=in%2Fa%20b.txt&ifGenerationMatch=0"
        );
        let body = String::from_utf8(body).unwrap();
        assert!(
            body.contains(r#""crc32c":"C==""#) && body.contains(r#""md5Hash":"M==""#),
            "{body}"
        );
        assert!(body.contains("\r\n\r\nabc\r\n--"), "{body}");
        assert!(body.contains(r#""metadata":{"source":"aws"}"#));
    }

    #[test]
    fn chunk_ranges() {
        let t = Secret::new("t");
        let r = chunk("https://s/x", &t, 0, QUANTUM, None, None);
        assert_eq!(r.headers()["content-range"], "bytes 0-262143/*");
        let r = chunk(
            "https://s/x",
            &t,
            QUANTUM,
            10,
            Some(QUANTUM + 10),
            Some("c"),
        );
        assert_eq!(r.headers()["content-range"], "bytes 262144-262153/262154");
        assert_eq!(r.headers()["x-goog-hash"], "crc32c=c");
        assert_eq!(
            status_query("https://s/x", &t, None).headers()["content-range"],
            "bytes */*"
        );
    }

    #[test]
    fn session_states() {
        assert_eq!(
            session_state(&response(308, &[], ""), "n").unwrap(),
            SessionState::Incomplete(0)
        );
        assert_eq!(
            session_state(&response(308, &[("range", "bytes=0-524287")], ""), "n").unwrap(),
            SessionState::Incomplete(524288)
        );
        let done = response(
            200,
            &[],
            r#"{"name":"n","bucket":"b","generation":"7","size":"3","crc32c":"x","md5Hash":"y"}"#,
        );
        assert!(
            matches!(session_state(&done, "n").unwrap(), SessionState::Finished(o) if o.generation == "7")
        );
    }

    #[test]
    fn errors_are_diagnosed() {
        let e = upload_error(
            &response(
                412,
                &[],
                r#"{"error":{"code":412,"message":"At least one of the pre-conditions you specified did not hold."}}"#,
            ),
            "a",
        );
        assert!(e.fix.unwrap().contains("never overwritten"));
        assert!(
            upload_error(&response(403, &[], "{}"), "a")
                .fix
                .unwrap()
                .contains("roles/storage.objectCreator")
        );
        assert!(upload_error(&response(503, &[], "busy"), "a").transient);
    }

    #[test]
    fn content_types_and_metadata_follow_one_rule() {
        let mut object = spec("a.txt");
        assert!(validate_object(&object).is_ok());
        for bad in ["text/plain\r\nX: 1", "text/plain\u{7}", "text/é"] {
            object.content_type = bad.into();
            let e = validate_object(&object).unwrap_err();
            assert!(e.to_string().contains("content type of a.txt"), "{e}");
            assert!(!e.to_string().contains('\n'), "one line: {e}");
        }
        object.content_type = "text/csv; charset=utf-8".into();
        for (key, value) in [("bad key", "v"), ("k", "line\nbreak"), ("", "v")] {
            object.metadata = BTreeMap::from([(key.into(), value.into())]);
            let e = validate_object(&object).unwrap_err();
            assert!(e.to_string().contains("metadata of a.txt"), "{e}");
        }
        object.metadata = BTreeMap::from([("k".into(), "v".repeat(20_000))]);
        assert!(
            validate_object(&object)
                .unwrap_err()
                .to_string()
                .contains("8192")
        );
        object.metadata = BTreeMap::from([("source-system".into(), "Zürich export".into())]);
        assert!(validate_object(&object).is_ok());
    }

    #[test]
    fn session_urls_stay_on_the_storage_endpoint() {
        let storage = "https://storage.googleapis.com";
        let at =
            |location: &str| session_url(&response(200, &[("location", location)], ""), storage);
        let good = "https://storage.googleapis.com/upload/storage/v1/b/b/o?upload_id=x";
        assert_eq!(at(good).unwrap(), good);
        for downgraded in [
            "http://storage.googleapis.com/upload/storage/v1/b/b/o?upload_id=x",
            "https://STORAGE.googleapis.com:8443/upload/storage/v1/b/b/o?upload_id=x",
        ] {
            assert_eq!(
                at(downgraded).unwrap(),
                good,
                "followed on the configured origin"
            );
        }
        for bad in [
            "https://attacker.example/upload?upload_id=x",
            "https://storage.googleapis.com.attacker.example/upload",
            "/relative",
            "not a url",
        ] {
            let e = at(bad).unwrap_err();
            assert!(e.to_string().contains("not sent there"), "{bad}: {e}");
        }
        assert!(session_url(&response(200, &[], ""), storage).is_err());
    }

    #[test]
    fn names_follow_gcs_rules() {
        assert!(validate_name("incoming/2026/file.csv").is_ok());
        for bad in ["", ".", "..", "a\nb", ".well-known/acme-challenge/x"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_name(&"x".repeat(1025)).is_err());
    }

    /// Google's words are quoted on one line, whatever line breaks they hold.
    #[test]
    fn a_refusal_is_quoted_on_one_line() {
        let e = upload_error(
            &response(
                403,
                &[],
                r#"{"error":{"message":"uploader may not\ncreate objects"}}"#,
            ),
            "a",
        );
        assert!(
            e.message.ends_with("a: uploader may not create objects"),
            "{e}"
        );
    }
}
