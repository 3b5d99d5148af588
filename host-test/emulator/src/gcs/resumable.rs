//! Resumable uploads: a session is started with the object's metadata, then fed chunks by `PUT`
//! with `Content-Range`, and asked for its state with an empty `PUT` (`bytes */TOTAL|*`).
//!
//! The rules, as GCS applies them:
//! - A non-final chunk is a multiple of 256 KiB; a chunk may not start beyond the committed
//!   offset (a gap); bytes below it (sent again after a lost answer) are skipped, not stored twice,
//!   and counted in the log as re-sent.
//! - An answer of 308 carries `Range: bytes=0-(committed-1)`, and no `Range` when nothing is
//!   committed. A status query never finalizes, except that `bytes */TOTAL` with exactly TOTAL
//!   bytes committed completes the upload (how a client ends a stream whose length it learned
//!   only at its end, and how a 0-byte upload is made).
//! - The final chunk completes the object: the session's declared checksums and the request's
//!   `X-Goog-Hash` are checked against the whole object (a mismatch kills the session: no object,
//!   ever), then the precondition (412 if the name now exists). A finished session answers every
//!   later `PUT` with 200 and the object; a failed one repeats its error.
//! - A chunk cut short keeps what arrived up to the last 256 KiB boundary of the object.
//! - The session URL is the credential: its requests need no `Authorization`.

use std::collections::HashMap;
use std::io;

use http::header::{CONTENT_LENGTH, HOST, LOCATION, RANGE};
use http::request::Parts;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use percent_encoding::utf8_percent_encode;
use rand::distr::{Alphanumeric, SampleString};
use serde_json::Value;

use super::body::{Body, Cut};
use super::errors::{bad_request, gcs_error, internal};
use super::object::{Expected, ObjectSpec, UploadMetadata};
use super::params::{goog_hash, header_str, header_u64};
use super::store::{CHUNK_GRANULARITY, Staging};
use super::upload::{complete, created};
use super::{Fail, GcsLog, UNRESERVED};
use crate::reply::Reply;
use crate::state::{State, lock};

/// The metadata that starts a session may not exceed this.
const METADATA_LIMIT: usize = 1 << 20;
const UPLOAD_ID_HEADER: HeaderName = HeaderName::from_static("x-guploader-uploadid");

pub(super) struct Session {
    id: String,
    spec: ObjectSpec,
    if_generation_match: Option<i64>,
    /// From `X-Upload-Content-Length` or the first `Content-Range` that named a total.
    declared_total: Option<u64>,
    /// `None` once the session has finished or failed.
    staging: Option<Staging>,
    phase: Phase,
}

enum Phase {
    Active,
    Finished(Value),
    Failed(Reply),
}

/// `POST ...?uploadType=resumable`: checks what can be checked now (name, precondition) and
/// answers with the session URL, on the host the client called.
pub(super) async fn start(
    state: &State,
    parts: &Parts,
    query: &HashMap<String, String>,
    if_generation_match: Option<i64>,
    body: &mut Body,
) -> Result<(Reply, String), Fail> {
    let metadata = body.read_small(METADATA_LIMIT).await?.ok_or_else(|| {
        bad_request(
            "invalid",
            "The metadata of a resumable upload exceeds the limit.",
        )
    })?;
    let spec = UploadMetadata::parse(&metadata)?.spec(
        query.get("name").map(String::as_str),
        header_str(&parts.headers, "x-upload-content-type"),
    )?;
    let declared_total = match header_str(&parts.headers, "x-upload-content-length") {
        None => None,
        Some(text) => Some(text.trim().parse::<u64>().map_err(|_| {
            bad_request(
                "invalid",
                format!("Invalid X-Upload-Content-Length \"{text}\"."),
            )
        })?),
    };
    state.gcs.check(state, &spec.name, if_generation_match)?;
    let staging = state
        .gcs
        .store
        .stage(spec.expected.md5.is_some())
        .map_err(internal)?;

    let id = Alphanumeric.sample_string(&mut rand::rng(), 64);
    let host = header_str(&parts.headers, HOST.as_str()).unwrap_or("storage.googleapis.com");
    // Google answers on https; an emulator reached directly on a loopback address answers on
    // the scheme it was reached by (a host routing Google's name here expects https).
    let loopback = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    let plain = state.config.tls.is_none();
    let scheme = if plain
        && (loopback == "localhost"
            || loopback
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback()))
    {
        "http"
    } else {
        "https"
    };
    let location = format!(
        "{scheme}://{host}/upload/storage/v1/b/{}/o?uploadType=resumable&name={}&upload_id={id}",
        utf8_percent_encode(&state.config.bucket, UNRESERVED),
        utf8_percent_encode(&spec.name, UNRESERVED),
    );
    let location = HeaderValue::try_from(location)
        .map_err(|_| bad_request("invalid", "Invalid Host header."))?;
    let outcome = format!("resumable session started for {}", spec.name);
    let session = Session {
        id: id.clone(),
        spec,
        if_generation_match,
        declared_total,
        staging: Some(staging),
        phase: Phase::Active,
    };
    lock(&state.gcs.sessions).insert(
        id.clone(),
        std::sync::Arc::new(tokio::sync::Mutex::new(session)),
    );
    let reply = Reply::new(StatusCode::OK, Value::Null, outcome)
        .with_header_value(LOCATION, location)
        .with_header_value(UPLOAD_ID_HEADER, upload_id_value(&id));
    Ok((reply, id))
}

fn upload_id_value(id: &str) -> HeaderValue {
    HeaderValue::try_from(id).expect("alphanumeric ids are valid header values")
}

/// A request to a session URL.
pub(super) async fn request(
    state: &State,
    parts: &Parts,
    id: &str,
    body: &mut Body,
    log: &mut GcsLog,
) -> Result<Reply, Fail> {
    let session = lock(&state.gcs.sessions).get(id).cloned();
    let Some(session) = session else {
        return Ok(gcs_error(
            StatusCode::NOT_FOUND,
            "notFound",
            "No such upload session.",
        ));
    };
    match parts.method {
        Method::PUT => {
            let mut session = session.lock().await;
            let reply = put(state, &mut session, parts, body, log).await?;
            Ok(reply.with_header_value(UPLOAD_ID_HEADER, upload_id_value(id)))
        }
        Method::DELETE => {
            lock(&state.gcs.sessions).remove(id);
            Ok(Reply::new(
                StatusCode::from_u16(499).expect("499 is a valid status code"),
                Value::Null,
                format!(
                    "resumable session cancelled ({})",
                    session.lock().await.spec.name
                ),
            )
            .with_reason("Client Closed Request"))
        }
        _ => Ok(Reply::not_found()),
    }
}

/// `Content-Range: bytes START-END/TOTAL`, `bytes START-END/*`, `bytes */TOTAL` or `bytes */*`.
#[derive(Debug, PartialEq, Eq)]
struct ContentRange {
    /// First and last byte; `None` for a status query.
    span: Option<(u64, u64)>,
    total: Option<u64>,
}

fn parse_content_range(text: &str) -> Option<ContentRange> {
    let digits = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    let (span, total) = text.trim().strip_prefix("bytes ")?.trim().split_once('/')?;
    let total = match total {
        "*" => None,
        n => Some(digits(n)?),
    };
    let span = match span {
        "*" => None,
        range => {
            let (first, last) = range.split_once('-')?;
            let (first, last) = (digits(first)?, digits(last)?);
            if last < first || last == u64::MAX {
                return None;
            }
            Some((first, last))
        }
    };
    Some(ContentRange { span, total })
}

/// `308 Resume Incomplete`, with the committed range if anything is committed.
fn incomplete(committed: u64) -> Reply {
    let reply = Reply::new(
        StatusCode::PERMANENT_REDIRECT,
        Value::Null,
        format!("{committed} bytes committed"),
    )
    .with_reason("Resume Incomplete");
    if committed == 0 {
        return reply;
    }
    let range = HeaderValue::try_from(format!("bytes=0-{}", committed - 1))
        .expect("digits are a valid header value");
    reply.with_header_value(RANGE, range)
}

/// How streaming a chunk ended.
enum Streamed {
    Complete,
    Cut(Cut),
    TooLong,
    Disk(io::Error),
}

async fn put(
    state: &State,
    session: &mut Session,
    parts: &Parts,
    body: &mut Body,
    log: &mut GcsLog,
) -> Result<Reply, Fail> {
    match &session.phase {
        Phase::Finished(resource) => {
            body.drain().await?;
            log.bytes_resent = body.received();
            let mut reply = created(resource.clone());
            reply.outcome = format!("session already finished: {}", reply.outcome);
            return Ok(reply);
        }
        Phase::Failed(reply) => return Ok(reply.clone()),
        Phase::Active => {}
    }
    let headers = &parts.headers;
    let content_length = header_u64(headers, CONTENT_LENGTH.as_str());
    let unparsable = || bad_request("invalid", "Failed to parse Content-Range header.");
    let range = match header_str(headers, "content-range") {
        Some(text) => parse_content_range(text).ok_or_else(unparsable)?,
        // The whole object in one request.
        None => match content_length {
            Some(0) => ContentRange {
                span: None,
                total: Some(0),
            },
            Some(n) => ContentRange {
                span: Some((0, n - 1)),
                total: Some(n),
            },
            None => return Ok(unparsable()),
        },
    };
    // Checked before any byte is taken: a malformed header must not cost the session.
    let hash_header = goog_hash(headers)?;
    let staging = session
        .staging
        .as_mut()
        .expect("an active session has its staging");
    let committed = staging.len();
    if let Some(total) = range.total {
        if let Some(declared) = session.declared_total
            && declared != total
        {
            return Ok(bad_request(
                "invalid",
                format!(
                    "The Content-Range total {total} differs from the upload's declared size \
                     {declared}."
                ),
            ));
        }
        if total < committed {
            return Ok(bad_request(
                "invalid",
                format!(
                    "The Content-Range total {total} is smaller than the {committed} bytes \
                     already committed."
                ),
            ));
        }
    }

    let Some((start, end)) = range.span else {
        // A status query, or the end of an upload whose last chunk did not know the total.
        body.drain().await?;
        if body.received() > 0 {
            return Ok(bad_request(
                "invalid",
                "A request with Content-Range bytes */N must have an empty body.",
            ));
        }
        return match range.total {
            Some(total) if total == committed => Ok(finalize(state, session, hash_header)),
            _ => Ok(incomplete(committed)),
        };
    };

    let len = end - start + 1;
    let end_exclusive = end + 1;
    let last = range.total == Some(end_exclusive);
    if range.total.is_some_and(|total| end_exclusive > total)
        || session
            .declared_total
            .is_some_and(|declared| end_exclusive > declared)
    {
        return Ok(bad_request(
            "invalid",
            "The Content-Range reaches beyond the upload's total size.",
        ));
    }
    if !last && !len.is_multiple_of(CHUNK_GRANULARITY) {
        return Ok(bad_request(
            "invalid",
            format!(
                "Invalid request. The number of bytes uploaded is required to be a multiple of \
                 {CHUNK_GRANULARITY}, except for the final request. The received request \
                 contained {len} bytes, which does not meet this requirement."
            ),
        ));
    }
    if start > committed {
        return Ok(bad_request(
            "invalid",
            format!(
                "Invalid request. The Content-Range starts at byte {start}, but only \
                 {committed} bytes are committed."
            ),
        ));
    }
    if content_length.is_some_and(|n| n != len) {
        return Ok(bad_request(
            "invalid",
            format!(
                "The Content-Range covers {len} bytes, but the Content-Length is {}.",
                content_length.unwrap_or_default()
            ),
        ));
    }
    if range.total.is_some() {
        session.declared_total = range.total;
    }

    // Stream the chunk in, skipping what is committed, and checkpoint the hashes at each
    // 256 KiB boundary of the object: a cut keeps exactly what lies below the last one.
    let chunk_start = staging.digest().clone();
    let mut checkpoint = chunk_start.clone();
    let mut offset = start;
    let mut resent = 0u64;
    let streamed = 'stream: loop {
        let frame = match body.next().await {
            Ok(Some(frame)) => frame,
            Ok(None) => break Streamed::Complete,
            Err(cut) => break Streamed::Cut(cut),
        };
        if offset + frame.len() as u64 > end_exclusive {
            break Streamed::TooLong;
        }
        let mut data = &frame[..];
        if offset < committed {
            let skip = (committed - offset).min(data.len() as u64);
            resent += skip;
            offset += skip;
            data = &data[skip as usize..];
        }
        while !data.is_empty() {
            let to_boundary = CHUNK_GRANULARITY - staging.len() % CHUNK_GRANULARITY;
            let n = to_boundary.min(data.len() as u64) as usize;
            if let Err(e) = staging.write(&data[..n]) {
                break 'stream Streamed::Disk(e);
            }
            offset += n as u64;
            data = &data[n..];
            if staging.len().is_multiple_of(CHUNK_GRANULARITY) {
                checkpoint = staging.digest().clone();
            }
        }
    };
    log.bytes_resent = resent;
    let rejected = |staging: &mut Staging, reply: Reply| -> Result<Reply, Fail> {
        staging.rollback(chunk_start.clone()).map_err(internal)?;
        Ok(reply)
    };
    match streamed {
        Streamed::Complete if offset == end_exclusive => {}
        Streamed::Complete => {
            return rejected(
                staging,
                bad_request(
                    "invalid",
                    format!(
                        "The request ended after {} of the {len} bytes its Content-Range \
                         announced.",
                        offset - start
                    ),
                ),
            );
        }
        Streamed::TooLong => {
            return rejected(
                staging,
                bad_request(
                    "invalid",
                    format!(
                        "The request carries more than the {len} bytes its Content-Range announced."
                    ),
                ),
            );
        }
        Streamed::Disk(e) => return rejected(staging, internal(e)),
        Streamed::Cut(cut) => {
            staging.rollback(checkpoint).map_err(internal)?;
            return Err(Fail::Cut(cut));
        }
    }
    if last {
        return Ok(finalize(state, session, hash_header));
    }
    Ok(incomplete(staging.len()))
}

/// All bytes are in: check them against every declared checksum, then create the object. Either
/// way the session is over.
fn finalize(state: &State, session: &mut Session, hash_header: Option<Expected>) -> Reply {
    let staging = session
        .staging
        .take()
        .expect("an active session has its staging");
    let result = complete(
        state,
        &session.spec,
        session.if_generation_match,
        hash_header,
        staging,
    );
    match result {
        Ok(resource) => {
            session.phase = Phase::Finished(resource.clone());
            let mut reply = created(resource);
            reply.outcome = format!("{} (session {})", reply.outcome, short(&session.id));
            reply
        }
        Err(reply) => {
            session.phase = Phase::Failed(reply.clone());
            reply
        }
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(span: Option<(u64, u64)>, total: Option<u64>) -> Option<ContentRange> {
        Some(ContentRange { span, total })
    }

    #[test]
    fn content_ranges() {
        assert_eq!(
            parse_content_range("bytes 0-9/10"),
            range(Some((0, 9)), Some(10))
        );
        assert_eq!(
            parse_content_range("bytes 5-9/*"),
            range(Some((5, 9)), None)
        );
        assert_eq!(parse_content_range("bytes */10"), range(None, Some(10)));
        assert_eq!(parse_content_range("bytes */*"), range(None, None));
        for bad in [
            "bytes 9-5/10",
            "bytes 0-9",
            "bytes=0-9/10",
            "0-9/10",
            "bytes -1-9/10",
            "bytes 0-/10",
            "bytes 0-9/x",
            "bytes +1-9/10",
            "bytes 0-18446744073709551615/*",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad}");
        }
    }
}
