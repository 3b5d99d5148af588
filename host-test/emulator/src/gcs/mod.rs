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
//!
//! By protocol step: [`media`] and [`multipart`] are the single-request uploads, [`upload`] what
//! they share, [`resumable`] the sessions; [`access`] checks tokens and the bucket, [`bucket`]
//! keeps the objects and applies `ifGenerationMatch`; [`object`] is what an upload declares and
//! the resource GCS answers with, [`store`] where the bytes go, [`body`] how they are read,
//! [`faults`] what requests meet on purpose, [`errors`] GCS's error answers, [`params`] what a
//! request says in its query and headers.

mod access;
mod body;
mod bucket;
mod errors;
mod faults;
mod media;
mod multipart;
mod object;
mod params;
mod resumable;
mod store;
mod upload;

pub(crate) use bucket::GcsState;
pub use faults::{Fault, FaultPlan, RandomFaults};
pub use object::StoredObject;

use std::collections::HashMap;
use std::time::Duration;

use http::Method;
use http::header::CONTENT_LENGTH;
use http::request::Parts;
use hyper::body::Incoming;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

use self::access::{authorize, check_bucket};
use self::body::{Body, Cut};
use self::errors::{bad_request, forbidden, internal, wrong_url_for_upload};
use self::faults::status_fault;
use self::multipart::MultipartError;
use self::params::{header_str, header_u64, if_generation_match, query_map};
use crate::reply::Reply;
use crate::state::{State, lock};

/// How GCS percent-encodes names in URLs: everything but letters, digits and `-._~`.
pub(super) const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

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
    /// The resumable session this request started or went to (its upload id).
    pub session: Option<String>,
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
            log.session = Some(id.clone());
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
                multipart::upload(state, parts, query, if_generation_match, body).await
            }
            Some("media") => media::upload(state, parts, query, if_generation_match, body).await,
            Some("resumable") => {
                let (reply, id) =
                    resumable::start(state, parts, query, if_generation_match, body).await?;
                log.session = Some(id);
                Ok(reply)
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
