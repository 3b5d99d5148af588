//! Cloud Storage, the JSON API's upload side, as an identity with only
//! `roles/storage.objectCreator` on one bucket meets it:
//!
//! - `POST /upload/storage/v1/b/BUCKET/o?uploadType=multipart|media|resumable&name=...`
//!   creates objects; `ifGenerationMatch=0` on an existing name answers 412, and an upload
//!   without it that would overwrite answers 403 (objectCreator may not delete). Declared
//!   checksums (`crc32c`, `md5Hash` in the metadata, `X-Goog-Hash`) are checked against the data
//!   before anything is created.
//! - `PUT` on a resumable session URL (`...&upload_id=ID`) uploads chunks (`Content-Range: bytes
//!   START-END/TOTAL|*`) or asks for the session's state (`bytes */TOTAL|*`, empty body): 308
//!   with `Range: bytes=0-N` (no `Range` when nothing is committed), or 200 and the object once
//!   finished. As at GCS, the session URL is the credential: chunks need no `Authorization`.
//!   `DELETE` cancels a session (499).
//! - Any read (`GET` of an object, its media, a listing, the bucket) answers 403: objectCreator
//!   cannot read.
//!
//! Bodies stream frame by frame into a staging file while CRC32C, MD5 and SHA-256 are computed;
//! nothing holds a whole chunk or object in memory. A resumable chunk that is cut short (the
//! client hangs up, or a [`Fault::ResetMidBody`]) keeps what arrived up to the last 256 KiB
//! boundary of the object, as GCS does; a cut multipart or media upload creates nothing.

mod body;
mod faults;
mod multipart;
mod object;
mod resumable;
mod store;

pub use faults::{Fault, FaultPlan, RandomFaults};
pub use object::StoredObject;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use http::request::Parts;
use http::{HeaderMap, Method, StatusCode};
use hyper::body::Incoming;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str};
use serde_json::{Value, json};
use time::OffsetDateTime;

use self::body::{Body, Cut};
use self::faults::Faults;
use self::multipart::MultipartError;
use self::object::{Expected, Object, ObjectSpec, UploadMetadata};
use self::store::{Staging, Store};
use super::{Reply, State, lock};

/// How GCS percent-encodes names in URLs: everything but letters, digits and `-._~`.
pub(super) const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Scopes that let a token write objects.
const WRITE_SCOPES: &[&str] = &[
    "https://www.googleapis.com/auth/devstorage.read_write",
    "https://www.googleapis.com/auth/devstorage.full_control",
    "https://www.googleapis.com/auth/cloud-platform",
];
const READ_ONLY_SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_only";

pub(super) fn is_gcs_path(path: &str) -> bool {
    [
        "/upload/storage/v1/",
        "/storage/v1/",
        "/download/storage/v1/",
    ]
    .iter()
    .any(|prefix| path.starts_with(prefix))
}

/// What the log keeps of a Cloud Storage request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcsLog {
    /// `multipart`, `media` or `resumable` (session requests included).
    pub upload_type: Option<String>,
    pub content_range: Option<String>,
    /// Body bytes read.
    pub bytes_received: u64,
    /// Body bytes below the session's committed offset: sent again, and skipped.
    pub bytes_resent: u64,
    /// The fault this request met.
    pub fault: Option<Fault>,
}

/// The bucket and what is going on in it.
pub(super) struct GcsState {
    store: Store,
    objects: Mutex<BTreeMap<String, Object>>,
    sessions: Mutex<HashMap<String, Arc<tokio::sync::Mutex<resumable::Session>>>>,
    faults: Mutex<Faults>,
    last_generation: Mutex<i64>,
}

impl GcsState {
    pub(super) fn new(
        dir: Option<&Path>,
        crc32c_only: bool,
        faults: &FaultPlan,
    ) -> anyhow::Result<Self> {
        let store = Store::open(dir, crc32c_only).map_err(|e| {
            anyhow::anyhow!(
                "the emulator could not prepare its object directory {}: {e}",
                dir.map_or_else(String::new, |d| d.display().to_string())
            )
        })?;
        Ok(GcsState {
            store,
            objects: Mutex::default(),
            sessions: Mutex::default(),
            faults: Mutex::new(Faults::new(faults)),
            last_generation: Mutex::new(0),
        })
    }

    pub(super) fn objects(&self) -> Vec<StoredObject> {
        lock(&self.objects)
            .values()
            .map(|o| o.stored.clone())
            .collect()
    }

    pub(super) fn object(&self, name: &str) -> Option<StoredObject> {
        lock(&self.objects).get(name).map(|o| o.stored.clone())
    }

    pub(super) fn set_faults(&self, plan: &FaultPlan) {
        *lock(&self.faults) = Faults::new(plan);
    }

    /// A microsecond timestamp, unique and increasing even when the clock stands still.
    fn next_generation(&self, now: OffsetDateTime) -> i64 {
        let mut last = lock(&self.last_generation);
        let micros = (now.unix_timestamp_nanos() / 1000) as i64;
        *last = micros.max(*last + 1);
        *last
    }

    /// Whether creating `name` with `ifGenerationMatch` may go ahead.
    fn check(
        &self,
        state: &State,
        name: &str,
        if_generation_match: Option<i64>,
    ) -> Result<(), Reply> {
        let objects = lock(&self.objects);
        precondition(state, objects.get(name), if_generation_match)
    }

    /// Creates the object from `staging`, if the precondition still holds (atomically: two
    /// uploads of one name cannot both succeed). Returns the object resource.
    fn commit(
        &self,
        state: &State,
        spec: &ObjectSpec,
        if_generation_match: Option<i64>,
        staging: Staging,
    ) -> Result<Value, Reply> {
        let mut objects = lock(&self.objects);
        precondition(state, objects.get(&spec.name), if_generation_match)?;
        let path = self.store.object_path(&spec.name);
        let digest = staging.commit(path.as_deref()).map_err(internal)?;
        let now = state.now();
        let generation = self.next_generation(now);
        let object = Object::new(&state.config.bucket, spec, generation, &digest, now, path);
        let resource = object.resource.clone();
        objects.insert(spec.name.clone(), object);
        Ok(resource)
    }
}

/// `ifGenerationMatch=0`: only if there is no such object. Without a precondition (or with the
/// live generation) an existing object would be replaced, which needs `storage.objects.delete`.
fn precondition(
    state: &State,
    existing: Option<&Object>,
    if_generation_match: Option<i64>,
) -> Result<(), Reply> {
    match (existing, if_generation_match) {
        (None, None | Some(0)) => Ok(()),
        (Some(object), Some(g)) if g != 0 && object.stored.generation == g => {
            Err(forbidden(state, "storage.objects.delete", "object"))
        }
        (Some(_), None) => Err(forbidden(state, "storage.objects.delete", "object")),
        (_, Some(_)) => Err(precondition_failed()),
    }
}

/// A handled Cloud Storage request: the answer (`None`: drop the connection), and what to log.
pub(super) struct Handled {
    pub reply: Option<Reply>,
    pub outcome: String,
    pub log: GcsLog,
    /// Wait this long before answering.
    pub delay: Option<Duration>,
}

/// How a request ended early: with an answer, or with no connection left to answer on.
enum Fail {
    Reply(Reply),
    Cut(Cut),
}

impl From<Reply> for Fail {
    fn from(reply: Reply) -> Self {
        Fail::Reply(reply)
    }
}

impl From<Cut> for Fail {
    fn from(cut: Cut) -> Self {
        Fail::Cut(cut)
    }
}

impl From<MultipartError> for Fail {
    fn from(error: MultipartError) -> Self {
        match error {
            MultipartError::Cut(cut) => Fail::Cut(cut),
            MultipartError::Invalid(why) => Fail::Reply(bad_request("invalid", why)),
            MultipartError::Sink(e) => Fail::Reply(internal(e)),
        }
    }
}

pub(super) async fn handle(state: &State, parts: &Parts, body: Incoming) -> Handled {
    let content_length = header_u64(&parts.headers, CONTENT_LENGTH.as_str());
    let fault = lock(&state.gcs.faults).next(content_length);
    let query = query_map(parts.uri.query());
    let mut log = GcsLog {
        upload_type: query.get("uploadType").cloned().or_else(|| {
            query
                .contains_key("upload_id")
                .then(|| "resumable".to_owned())
        }),
        content_range: header_str(&parts.headers, "content-range").map(str::to_owned),
        fault: fault.clone(),
        ..GcsLog::default()
    };
    let reset_after = match fault {
        Some(Fault::ResetMidBody { after_bytes }) => Some(after_bytes),
        _ => None,
    };
    let mut body = Body::new(body, reset_after);
    let result = match fault {
        Some(Fault::Status(code)) => Ok(status_fault(code)),
        _ => route(state, parts, &query, &mut body, &mut log).await,
    };
    // What the handler left unread is read now, so the answer reaches a client that is still
    // sending (and a pending reset happens).
    let result = match result {
        Ok(reply) | Err(Fail::Reply(reply)) => body.drain().await.map(|()| reply),
        Err(Fail::Cut(cut)) => Err(cut),
    };
    log.bytes_received = body.received();
    let (reply, outcome) = match result {
        Ok(reply) if fault == Some(Fault::LoseResponseAfterCommit) => {
            let outcome = format!("{} (answer dropped: fault)", reply.outcome);
            (None, outcome)
        }
        Ok(reply) => {
            let outcome = reply.outcome.clone();
            (Some(reply), outcome)
        }
        Err(Cut::Reset) => (
            None,
            format!(
                "connection dropped after {} body bytes (fault)",
                body.received()
            ),
        ),
        Err(Cut::Client(why)) => (None, format!("the client went away: {why}")),
    };
    let delay = match fault {
        Some(Fault::Slow(delay)) => Some(delay),
        _ => None,
    };
    Handled {
        reply,
        outcome,
        log,
        delay,
    }
}

async fn route(
    state: &State,
    parts: &Parts,
    query: &HashMap<String, String>,
    body: &mut Body,
    log: &mut GcsLog,
) -> Result<Reply, Fail> {
    let path = parts.uri.path();
    let method = &parts.method;
    if let Some(rest) = path.strip_prefix("/upload/storage/v1/b/") {
        let Some((bucket, "o")) = rest.split_once('/') else {
            return Ok(Reply::not_found());
        };
        if let Some(id) = query.get("upload_id") {
            return resumable::request(state, parts, id, body, log).await;
        }
        authorize(state, &parts.headers, "storage.objects.create", true)?;
        check_bucket(state, bucket)?;
        if method != Method::POST {
            return Ok(Reply::not_found());
        }
        let if_generation_match = if_generation_match(query)?;
        return match query.get("uploadType").map(String::as_str) {
            Some("multipart") => {
                upload_multipart(state, parts, query, if_generation_match, body).await
            }
            Some("media") => upload_media(state, parts, query, if_generation_match, body).await,
            Some("resumable") => {
                resumable::start(state, parts, query, if_generation_match, body).await
            }
            None => Ok(wrong_url_for_upload()),
            Some(other) => Ok(bad_request(
                "invalid",
                format!("Invalid upload type \"{other}\"."),
            )),
        };
    }
    let rest = path
        .strip_prefix("/storage/v1/b/")
        .or_else(|| path.strip_prefix("/download/storage/v1/b/"));
    let Some(rest) = rest else {
        return Ok(Reply::not_found());
    };
    let (bucket, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let reading = matches!(*method, Method::GET | Method::HEAD);
    let denied = match (tail, reading) {
        ("", true) => ("storage.buckets.get", "bucket"),
        ("o", true) => ("storage.objects.list", "bucket"),
        ("o", false) if method == Method::POST => {
            authorize(state, &parts.headers, "storage.objects.create", true)?;
            check_bucket(state, bucket)?;
            return Ok(wrong_url_for_upload());
        }
        (object, _) if object.starts_with("o/") && object.len() > 2 => match *method {
            Method::GET | Method::HEAD | Method::POST => ("storage.objects.get", "object"),
            Method::DELETE => ("storage.objects.delete", "object"),
            Method::PATCH | Method::PUT => ("storage.objects.update", "object"),
            _ => return Ok(Reply::not_found()),
        },
        _ => return Ok(Reply::not_found()),
    };
    authorize(state, &parts.headers, denied.0, false)?;
    check_bucket(state, bucket)?;
    Ok(forbidden(state, denied.0, denied.1))
}

/// `uploadType=multipart`: JSON metadata, then the media, in one `multipart/related` body.
async fn upload_multipart(
    state: &State,
    parts: &Parts,
    query: &HashMap<String, String>,
    if_generation_match: Option<i64>,
    body: &mut Body,
) -> Result<Reply, Fail> {
    let boundary = header_str(&parts.headers, CONTENT_TYPE.as_str())
        .and_then(multipart::boundary)
        .ok_or_else(|| {
            bad_request(
                "invalid",
                "Invalid multipart request: the Content-Type must be multipart/related with a \
                 boundary.",
            )
        })?;
    let mut reader = multipart::Reader::new(body, &boundary);
    let (metadata, media) = reader.metadata().await?;
    let spec = UploadMetadata::parse(&metadata)?.spec(
        query.get("name").map(String::as_str),
        media.content_type.as_deref(),
    )?;
    let hash_header = goog_hash(&parts.headers)?;
    // A doomed upload is still read to its end (so the client hears the answer), not kept.
    let doomed = state
        .gcs
        .check(state, &spec.name, if_generation_match)
        .err();
    let md5_declared = declares_md5(&spec, hash_header.as_ref());
    let mut staging = stage(state, doomed.is_some(), md5_declared)?;
    reader.media(|data| staging.write(data)).await?;
    if let Some(reply) = doomed {
        return Ok(reply);
    }
    create(state, spec, hash_header, if_generation_match, staging)
}

/// `uploadType=media`: the body is the object; the name comes from the query.
async fn upload_media(
    state: &State,
    parts: &Parts,
    query: &HashMap<String, String>,
    if_generation_match: Option<i64>,
    body: &mut Body,
) -> Result<Reply, Fail> {
    let spec = UploadMetadata::default().spec(
        query.get("name").map(String::as_str),
        header_str(&parts.headers, CONTENT_TYPE.as_str()),
    )?;
    let hash_header = goog_hash(&parts.headers)?;
    let doomed = state
        .gcs
        .check(state, &spec.name, if_generation_match)
        .err();
    let md5_declared = declares_md5(&spec, hash_header.as_ref());
    let mut staging = stage(state, doomed.is_some(), md5_declared)?;
    while let Some(data) = body.next().await? {
        staging.write(&data).map_err(internal)?;
    }
    if let Some(reply) = doomed {
        return Ok(reply);
    }
    create(state, spec, hash_header, if_generation_match, staging)
}

fn stage(state: &State, discard: bool, md5_declared: bool) -> Result<Staging, Reply> {
    if discard {
        Store::Discard.stage(md5_declared).map_err(internal)
    } else {
        state.gcs.store.stage(md5_declared).map_err(internal)
    }
}

/// Whether the upload declared an MD5 before its data (which a CRC32C-only store then computes).
fn declares_md5(spec: &ObjectSpec, hash_header: Option<&Expected>) -> bool {
    spec.expected.md5.is_some() || hash_header.is_some_and(|h| h.md5.is_some())
}

/// Checks the declared checksums and creates the object.
fn create(
    state: &State,
    spec: ObjectSpec,
    hash_header: Option<Expected>,
    if_generation_match: Option<i64>,
    staging: Staging,
) -> Result<Reply, Fail> {
    if let Some(expected) = hash_header {
        expected.verify(staging.digest())?;
    }
    spec.expected.verify(staging.digest())?;
    let resource = state
        .gcs
        .commit(state, &spec, if_generation_match, staging)?;
    Ok(created(resource))
}

fn created(resource: Value) -> Reply {
    let outcome = format!(
        "created {} generation {} ({} bytes)",
        resource["name"].as_str().unwrap_or_default(),
        resource["generation"].as_str().unwrap_or_default(),
        resource["size"].as_str().unwrap_or_default()
    );
    Reply::ok(resource, outcome)
}

/// `X-Goog-Hash`, if the request has one.
fn goog_hash(headers: &HeaderMap) -> Result<Option<Expected>, Reply> {
    header_str(headers, "x-goog-hash")
        .map(Expected::from_goog_hash)
        .transpose()
}

fn if_generation_match(query: &HashMap<String, String>) -> Result<Option<i64>, Reply> {
    query
        .get("ifGenerationMatch")
        .map(|text| {
            text.parse::<i64>().map_err(|_| {
                bad_request(
                    "invalid",
                    format!("Invalid value for ifGenerationMatch: \"{text}\"."),
                )
            })
        })
        .transpose()
}

/// Only access tokens IAM Credentials issued, unexpired, pass; `permission` names what an
/// anonymous caller lacks.
fn authorize(
    state: &State,
    headers: &HeaderMap,
    permission: &str,
    write: bool,
) -> Result<(), Reply> {
    let bearer = header_str(headers, AUTHORIZATION.as_str())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Bearer"))
        .map(|(_, token)| token.trim());
    let Some(token) = bearer else {
        let kind = if permission.starts_with("storage.buckets.") || permission.ends_with(".list") {
            "bucket"
        } else {
            "object"
        };
        let message = format!(
            "Anonymous caller does not have {permission} access to the Google Cloud Storage \
             {kind}. Permission '{permission}' denied on resource (or it may not exist)."
        );
        return Err(gcs_error(StatusCode::UNAUTHORIZED, "required", &message)
            .located("header", "Authorization"));
    };
    let now = state.now();
    let scopes = lock(&state.access_tokens)
        .get(token)
        .filter(|access| access.expires > now)
        .map(|access| access.scopes.clone());
    let Some(scopes) = scopes else {
        return Err(
            gcs_error(StatusCode::UNAUTHORIZED, "authError", "Invalid Credentials")
                .located("header", "Authorization"),
        );
    };
    let allowed = scopes.iter().any(|scope| {
        WRITE_SCOPES.contains(&scope.as_str()) || (!write && scope == READ_ONLY_SCOPE)
    });
    if !allowed {
        return Err(gcs_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Provided scope(s) are not authorized",
        ));
    }
    Ok(())
}

fn check_bucket(state: &State, bucket: &str) -> Result<(), Reply> {
    if percent_decode_str(bucket).decode_utf8_lossy() == state.config.bucket {
        Ok(())
    } else {
        Err(gcs_error(
            StatusCode::NOT_FOUND,
            "notFound",
            "The specified bucket does not exist.",
        ))
    }
}

/// Cloud Storage's error shape: `{"error": {"code", "message", "errors": [{...}]}}`.
fn gcs_error(status: StatusCode, reason: &str, message: &str) -> Reply {
    Reply::new(
        status,
        json!({"error": {
            "code": status.as_u16(),
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
        }}),
        format!("{} {reason}: {message}", status.as_u16()),
    )
}

impl Reply {
    /// Where in the request the error is (`locationType`, `location`).
    fn located(mut self, location_type: &str, location: &str) -> Self {
        if let Some(first) = self.body["error"]["errors"].get_mut(0) {
            first["locationType"] = json!(location_type);
            first["location"] = json!(location);
        }
        self
    }
}

fn bad_request(reason: &str, message: impl AsRef<str>) -> Reply {
    gcs_error(StatusCode::BAD_REQUEST, reason, message.as_ref())
}

fn forbidden(state: &State, permission: &str, kind: &str) -> Reply {
    gcs_error(
        StatusCode::FORBIDDEN,
        "forbidden",
        &format!(
            "{} does not have {permission} access to the Google Cloud Storage {kind}. \
             Permission '{permission}' denied on resource (or it may not exist).",
            state.config.service_account
        ),
    )
}

fn precondition_failed() -> Reply {
    gcs_error(
        StatusCode::PRECONDITION_FAILED,
        "conditionNotMet",
        "At least one of the pre-conditions you specified did not hold.",
    )
    .located("header", "If-Match")
}

fn wrong_url_for_upload() -> Reply {
    bad_request(
        "wrongUrlForUpload",
        "Upload requests must include an uploadType URL parameter and a URL path beginning \
         with /upload/",
    )
}

fn internal(error: std::io::Error) -> Reply {
    let mut reply = gcs_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "backendError",
        "Backend Error",
    );
    reply.outcome = format!("500 backendError: the emulator's storage failed: {error}");
    reply
}

/// The answer of a [`Fault::Status`].
fn status_fault(code: u16) -> Reply {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let (reason, message) = match status.as_u16() {
        429 => (
            "rateLimitExceeded",
            "The rate of requests exceeds the rate limit. Please reduce your request rate.",
        ),
        500 => ("backendError", "Backend Error"),
        503 => ("backendError", "Service Unavailable"),
        _ => ("backendError", status.canonical_reason().unwrap_or("Error")),
    };
    let mut reply = gcs_error(status, reason, message);
    reply.outcome = format!("{} (fault)", reply.outcome);
    reply
}

/// Query parameters, decoded; the first of a repeated name wins.
fn query_map(query: Option<&str>) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        map.entry(name.into_owned())
            .or_insert_with(|| value.into_owned());
    }
    map
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    header_str(headers, name).and_then(|v| v.trim().parse().ok())
}
