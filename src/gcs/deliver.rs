//! The delivery loop. Small objects go in one `multipart` request; large ones (or streams of
//! unknown length) through a resumable session in chunks. Memory stays bounded by one chunk.
//!
//! What "delivered" means: GCS created the object after checking the CRC32C (and MD5) we
//! computed from the bytes we read. A request whose answer was lost is retried; a retry that
//! meets 412 means the lost attempt most likely landed (its checksum already checked by GCS),
//! so the receipt says `delivered-unconfirmed` instead of failing. A resumable session is asked
//! for its state instead, and a finished session answers with the object itself.

use std::time::Duration;

use serde::Serialize;

use crate::config::Destination;
use crate::error::{Error, Step};
use crate::gcp::token::TokenSource;
use crate::gcs::checksum::Checksums;
use crate::gcs::upload::{self, ObjectResource, ObjectSpec, SessionState};
use crate::io::{Io, Response, TransportError};
use crate::retry::{Attempts, Backoff};
use crate::secret::Secret;

const UPLOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// Where the bytes come from: a file the host opened, a request body.
pub trait Source {
    /// Fills `buf` as far as the source goes; fewer bytes than `buf.len()` only at its end.
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize, String>;
}

impl Source for &[u8] {
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize, String> {
        let n = buf.len().min(self.len());
        buf[..n].copy_from_slice(&self[..n]);
        *self = &self[n..];
        Ok(n)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UploadOptions {
    /// Objects up to this size go in one multipart request.
    pub single_request_limit: u64,
    /// Resumable chunk size, a multiple of 256 KiB.
    pub chunk_size: u64,
    pub backoff: Backoff,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            single_request_limit: crate::config::DEFAULT_SINGLE_REQUEST_LIMIT,
            chunk_size: crate::config::DEFAULT_CHUNK_SIZE,
            backoff: Backoff::default(),
        }
    }
}

impl From<&Destination> for UploadOptions {
    fn from(destination: &Destination) -> Self {
        UploadOptions {
            single_request_limit: destination.single_request_limit,
            chunk_size: destination.chunk_size,
            backoff: Backoff::starting_at(destination.initial_retry_delay),
        }
    }
}

/// The handshake object: small, uniquely named, saying who sent it and when. Delivering it
/// proves the whole keyless chain works, without reading anything back.
pub fn handshake(
    destination: &Destination,
    now: time::OffsetDateTime,
    random: u64,
) -> (ObjectSpec, Vec<u8>) {
    let stamp = crate::sigv4::format_amz_date(now);
    let name = format!(
        "{}.wif-push/handshake-{stamp}-{:08x}.txt",
        destination.prefix, random as u32
    );
    let body = format!(
        "wif-push handshake\naudience: {}\nservice account: {}\nsent: {stamp}\n",
        destination.audience,
        destination
            .service_account
            .as_deref()
            .unwrap_or("(federated principal)")
    );
    let spec = ObjectSpec {
        name,
        size: Some(body.len() as u64),
        content_type: "text/plain; charset=utf-8".into(),
        metadata: [("wif-push".to_owned(), "handshake".to_owned())].into(),
    };
    (spec, body.into_bytes())
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// GCS answered with the object it created.
    Delivered,
    /// An attempt's answer was lost and the retry found the name taken: the lost attempt most
    /// likely created it, after GCS checked its checksum.
    DeliveredUnconfirmed,
}

/// One JSON line per delivered file.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Receipt {
    pub status: Status,
    pub bucket: String,
    pub name: String,
    pub generation: Option<String>,
    pub size: u64,
    pub crc32c: String,
    /// Computed from the bytes read for a single-request upload; for a resumable one, the MD5
    /// GCS computed (empty if it reports none), as its integrity rests on the CRC32C.
    #[serde(rename = "md5Hash")]
    pub md5_hash: String,
    pub upload: &'static str,
    pub requests: u32,
    pub retries: u32,
    pub elapsed_ms: u64,
}

/// Counts what a delivery cost.
#[derive(Default)]
struct Tally {
    requests: u32,
    retries: u32,
}

pub fn deliver(
    io: &mut dyn Io,
    tokens: &mut TokenSource,
    destination: &Destination,
    spec: &ObjectSpec,
    source: &mut dyn Source,
    options: &UploadOptions,
) -> Result<Receipt, Error> {
    upload::validate_name(&spec.name)?;
    let started = io.now();
    let mut tally = Tally::default();
    let mut upload = Upload {
        io,
        tokens,
        destination,
        spec,
        options,
        tally: &mut tally,
    };
    let (object, checksums, kind) = match spec.size {
        Some(size) if size <= options.single_request_limit => {
            let (object, checksums) = upload.multipart(source, size)?;
            (object, checksums, "multipart")
        }
        _ => {
            let (object, checksums) = upload.resumable(source)?;
            (Some(object), checksums, "resumable")
        }
    };
    let elapsed = io.now() - started;
    if let Some(object) = &object
        && object
            .crc32c
            .as_deref()
            .is_some_and(|c| c != checksums.crc32c())
    {
        return Err(Error::new(
            Step::Upload,
            format!(
                "GCS reports CRC32C {:?} for {} but {} was sent",
                object.crc32c,
                spec.name,
                checksums.crc32c()
            ),
        ));
    }
    // Resumable uploads do not compute the MD5 (see `checksum`): the receipt has GCS's.
    let md5_hash = checksums
        .md5()
        .or_else(|| object.as_ref().and_then(|o| o.md5_hash.clone()))
        .unwrap_or_default();
    Ok(Receipt {
        status: if object.is_some() {
            Status::Delivered
        } else {
            Status::DeliveredUnconfirmed
        },
        bucket: destination.bucket.clone(),
        name: spec.name.clone(),
        generation: object.map(|o| o.generation),
        size: checksums.len(),
        crc32c: checksums.crc32c(),
        md5_hash,
        upload: kind,
        requests: tally.requests,
        retries: tally.retries,
        elapsed_ms: u64::try_from(elapsed.whole_milliseconds()).unwrap_or(0),
    })
}

/// Why an attempt failed, and what to do next.
enum Failure {
    /// Try again after a pause; `maybe_landed` when the request may have reached GCS.
    Retry {
        error: Error,
        maybe_landed: bool,
    },
    /// The token was refused: renew it and try again at once (once).
    Renew(Error),
    Fatal(Error),
}

/// Where one request's attempts stand.
struct Tries {
    attempts: Attempts,
    renewed: bool,
}

struct Upload<'a> {
    io: &'a mut dyn Io,
    tokens: &'a mut TokenSource,
    destination: &'a Destination,
    spec: &'a ObjectSpec,
    options: &'a UploadOptions,
    tally: &'a mut Tally,
}

impl Upload<'_> {
    fn token(&mut self) -> Result<Secret, Error> {
        Ok(self.tokens.access_token(self.io, self.destination)?.token)
    }

    fn send(&mut self, head: &http::Request<()>, body: &[u8]) -> Result<Response, TransportError> {
        self.tally.requests += 1;
        self.io.send_borrowed(head, body, UPLOAD_TIMEOUT)
    }

    fn transport_failure(&self, e: TransportError) -> Failure {
        let error = Error::no_answer(
            Step::Upload,
            format!("the upload of {} got no answer: {e}", self.spec.name),
            &e,
        );
        if error.transient {
            Failure::Retry {
                error,
                maybe_landed: true,
            }
        } else {
            Failure::Fatal(error)
        }
    }

    fn status_failure(&self, response: &Response) -> Failure {
        let error = upload::upload_error(response, &self.spec.name);
        match response.status().as_u16() {
            401 => Failure::Renew(error),
            _ if error.transient => Failure::Retry {
                error,
                maybe_landed: false,
            },
            _ => Failure::Fatal(error),
        }
    }

    fn tries(&self) -> Tries {
        Tries {
            attempts: Attempts::start(self.io, &self.options.backoff),
            renewed: false,
        }
    }

    /// Gets ready for another attempt after `failure`: renews the token (once) or pauses
    /// (with backoff); or gives up with the error.
    fn recover(&mut self, failure: Failure, tries: &mut Tries) -> Result<(), Error> {
        match failure {
            Failure::Fatal(error) => Err(error),
            Failure::Renew(error) if tries.renewed => Err(error),
            Failure::Renew(_) => {
                tries.renewed = true;
                self.tokens.invalidate(self.destination);
                Ok(())
            }
            Failure::Retry { error, .. } => {
                tries.attempts.pause(self.io, error)?;
                self.tally.retries += 1;
                Ok(())
            }
        }
    }

    /// Reads exactly `size` bytes and sends them in one request. `None` for the object means
    /// delivered-but-unconfirmed.
    fn multipart(
        &mut self,
        source: &mut dyn Source,
        size: u64,
    ) -> Result<(Option<ObjectResource>, Checksums), Error> {
        let data = read_exactly(source, size, &self.spec.name)?;
        let mut checksums = Checksums::default();
        checksums.update(&data);
        let (crc32c, md5) = (checksums.crc32c(), checksums.md5().unwrap_or_default());
        let mut tries = self.tries();
        let mut maybe_landed = false;
        loop {
            let token = self.token()?;
            let (head, body) = upload::multipart(
                &self.destination.storage_url,
                &self.destination.bucket,
                self.spec,
                &data,
                &crc32c,
                &md5,
                &token,
            );
            let failure = match self.send(&head, &body) {
                Err(e) => self.transport_failure(e),
                Ok(response) if response.status() == 412 && maybe_landed => {
                    return Ok((None, checksums));
                }
                Ok(response) if response.status().is_success() => {
                    return Ok((Some(upload::object(&response, &self.spec.name)?), checksums));
                }
                Ok(response) => self.status_failure(&response),
            };
            if let Failure::Retry {
                maybe_landed: true, ..
            } = failure
            {
                maybe_landed = true;
            }
            self.recover(failure, &mut tries)?;
        }
    }

    fn start_session(&mut self) -> Result<String, Error> {
        let mut tries = self.tries();
        loop {
            let token = self.token()?;
            let (head, body) = upload::start_resumable(
                &self.destination.storage_url,
                &self.destination.bucket,
                self.spec,
                &token,
            );
            let failure = match self.send(&head, &body) {
                // A lost answer leaves at most an unused session behind: just start another.
                Err(e) => self.transport_failure(e),
                Ok(response) if response.status().is_success() => {
                    return crate::io::header(&response, "location")
                        .map(str::to_owned)
                        .ok_or_else(|| {
                            Error::new(
                                Step::Upload,
                                "GCS started a resumable session without a Location",
                            )
                        });
                }
                Ok(response) => self.status_failure(&response),
            };
            self.recover(failure, &mut tries)?;
        }
    }

    fn resumable(&mut self, source: &mut dyn Source) -> Result<(ObjectResource, Checksums), Error> {
        let session = self.start_session()?;
        let chunk_size =
            self.options.chunk_size.max(upload::QUANTUM) / upload::QUANTUM * upload::QUANTUM;
        let mut buf = vec![0u8; usize::try_from(chunk_size).expect("chunk size fits memory")];
        let mut checksums = Checksums::crc32c_only();
        let mut offset = 0u64;
        loop {
            let want = match self.spec.size {
                Some(size) => chunk_size.min(size - offset),
                None => chunk_size,
            };
            // A chunk before the last of a known size is sent while it is read and hashed; the
            // last is read first, as its request carries the whole object's CRC32C.
            if self.spec.size.is_some_and(|size| offset + want < size) {
                let data = &mut buf[..want as usize];
                let first = self.stream_chunk(&session, source, data, offset, &mut checksums)?;
                match self.send_chunk(&session, data, offset, self.spec.size, None, Some(first))? {
                    SessionState::Incomplete(committed) => offset = committed,
                    SessionState::Finished(_) => {
                        return Err(Error::new(
                            Step::Upload,
                            format!("GCS finished {} before its last chunk", self.spec.name),
                        ));
                    }
                }
                continue;
            }
            let n = source
                .fill(&mut buf[..want as usize])
                .map_err(|e| Error::new(Step::Read, format!("{}: {e}", self.spec.name)))?;
            let last = match self.spec.size {
                Some(size) if (n as u64) < want => {
                    return Err(ended_early(&self.spec.name, offset + n as u64, size));
                }
                Some(size) => offset + n as u64 == size,
                None => (n as u64) < chunk_size,
            };
            if last && self.spec.size.is_some() {
                ensure_ended(source, &self.spec.name)?;
            }
            checksums.update(&buf[..n]);
            let total = if last {
                Some(offset + n as u64)
            } else {
                self.spec.size
            };
            let hash = last.then(|| checksums.crc32c());
            match self.send_chunk(&session, &buf[..n], offset, total, hash.as_ref(), None)? {
                SessionState::Finished(object) if last => return Ok((object, checksums)),
                SessionState::Finished(_) => {
                    return Err(Error::new(
                        Step::Upload,
                        format!("GCS finished {} before its last chunk", self.spec.name),
                    ));
                }
                SessionState::Incomplete(committed) => offset = committed,
            }
        }
    }

    /// Sends the non-final chunk at `offset` while filling `data` from `source` (and hashing it),
    /// piece by piece. Returns the answer (or why there is none) once `data` is full; a source
    /// that fails or ends early abandons the request, so nothing is created.
    fn stream_chunk(
        &mut self,
        session: &str,
        source: &mut dyn Source,
        data: &mut [u8],
        offset: u64,
        checksums: &mut Checksums,
    ) -> Result<Result<Response, TransportError>, Error> {
        let token = self.token()?;
        let head = upload::chunk(
            session,
            &token,
            offset,
            data.len() as u64,
            self.spec.size,
            None,
        );
        let name = &self.spec.name;
        let size = self.spec.size.unwrap_or_default();
        let mut read = offset;
        let mut failure = None;
        let mut fill = |piece: &mut [u8]| -> Result<(), String> {
            let n = match source.fill(piece) {
                Ok(n) => n,
                Err(e) => {
                    failure = Some(Error::new(Step::Read, format!("{name}: {e}")));
                    return Err(e);
                }
            };
            checksums.update(&piece[..n]);
            read += n as u64;
            if n < piece.len() {
                failure = Some(ended_early(name, read, size));
                return Err("ended early".into());
            }
            Ok(())
        };
        self.tally.requests += 1;
        self.io
            .send_filling(&head, data, &mut fill, UPLOAD_TIMEOUT)
            .map_err(|e| failure.unwrap_or_else(|| Error::new(Step::Read, e)))
    }

    /// Sends `data` (which starts at `offset`) until GCS has committed all of it, resuming from
    /// what the session says it has after any failure: committed bytes are never sent again.
    /// `first` is the outcome of a first attempt already made (by [`Upload::stream_chunk`]).
    fn send_chunk(
        &mut self,
        session: &str,
        data: &[u8],
        offset: u64,
        total: Option<u64>,
        final_crc32c: Option<&String>,
        mut first: Option<Result<Response, TransportError>>,
    ) -> Result<SessionState, Error> {
        let end = offset + data.len() as u64;
        let mut tries = self.tries();
        let mut committed = offset;
        loop {
            let sent = match first.take() {
                Some(sent) => sent,
                None => {
                    let token = self.token()?;
                    let skip = (committed - offset) as usize;
                    let head = upload::chunk(
                        session,
                        &token,
                        committed,
                        (data.len() - skip) as u64,
                        total,
                        final_crc32c.map(String::as_str),
                    );
                    self.send(&head, &data[skip..])
                }
            };
            let failure = match sent {
                Err(e) => self.transport_failure(e),
                Ok(response) if response.status() == 308 || response.status().is_success() => {
                    match upload::session_state(&response, &self.spec.name)? {
                        SessionState::Incomplete(now) if now == end => {
                            return Ok(SessionState::Incomplete(now));
                        }
                        // GCS kept part of it (on a 256 KiB boundary): send the rest at once.
                        SessionState::Incomplete(now) if now > committed && now < end => {
                            committed = now;
                            continue;
                        }
                        SessionState::Incomplete(now) if now == committed => Failure::Retry {
                            error: Error::new(
                                Step::Upload,
                                format!(
                                    "GCS kept none of the chunk of {} at {now}",
                                    self.spec.name
                                ),
                            )
                            .transient(),
                            maybe_landed: false,
                        },
                        SessionState::Incomplete(now) => {
                            return Err(Error::new(
                                Step::Upload,
                                format!(
                                    "GCS reports {now} bytes committed for {} after {end} were sent",
                                    self.spec.name
                                ),
                            ));
                        }
                        finished => return Ok(finished),
                    }
                }
                Ok(response) if matches!(response.status().as_u16(), 404 | 410) => {
                    return Err(upload::upload_error(&response, &self.spec.name).with_fix(
                        "the resumable session expired or was cancelled; nothing was created: deliver again",
                    ));
                }
                Ok(response) => self.status_failure(&response),
            };
            let renewing = matches!(failure, Failure::Renew(_));
            self.recover(failure, &mut tries)?;
            if renewing {
                continue;
            }
            // Ask the session what it has before sending anything again.
            match self.query(session, total)? {
                SessionState::Finished(object) => return Ok(SessionState::Finished(object)),
                SessionState::Incomplete(now) if (offset..=end).contains(&now) => {
                    committed = now;
                    if now == end && total != Some(end) {
                        return Ok(SessionState::Incomplete(now));
                    }
                }
                SessionState::Incomplete(now) => {
                    return Err(Error::new(
                        Step::Upload,
                        format!(
                            "the session of {} has {now} bytes, outside the chunk {offset}..{end} in flight",
                            self.spec.name
                        ),
                    ));
                }
            }
        }
    }

    /// The session's state; transient failures of the query itself are retried.
    fn query(&mut self, session: &str, total: Option<u64>) -> Result<SessionState, Error> {
        let mut tries = self.tries();
        loop {
            let token = self.token()?;
            let head = upload::status_query(session, &token, total);
            let error = match self.send(&head, &[]) {
                Ok(response) if response.status() == 308 || response.status().is_success() => {
                    return upload::session_state(&response, &self.spec.name);
                }
                Ok(response) => upload::upload_error(&response, &self.spec.name),
                Err(e) => Error::no_answer(
                    Step::Upload,
                    format!("the status query for {} got no answer: {e}", self.spec.name),
                    &e,
                ),
            };
            if !error.transient {
                return Err(error);
            }
            self.recover(
                Failure::Retry {
                    error,
                    maybe_landed: false,
                },
                &mut tries,
            )?;
        }
    }
}

fn read_exactly(source: &mut dyn Source, size: u64, name: &str) -> Result<Vec<u8>, Error> {
    let mut data = vec![0u8; usize::try_from(size).expect("small objects fit memory")];
    let n = source
        .fill(&mut data)
        .map_err(|e| Error::new(Step::Read, format!("{name}: {e}")))?;
    if (n as u64) < size {
        return Err(Error::new(
            Step::Read,
            format!("{name} ended at {n} bytes but had {size} when delivery began"),
        )
        .with_fix(
            "deliver files that are complete and no longer written to; nothing was created",
        ));
    }
    ensure_ended(source, name)?;
    Ok(data)
}

fn ended_early(name: &str, at: u64, size: u64) -> Error {
    Error::new(
        Step::Read,
        format!("{name} ended at {at} bytes but had {size} when delivery began"),
    )
    .with_fix("deliver files that are complete and no longer written to; nothing was created")
}

/// A file that grew while being read would be delivered cut short: refuse instead.
fn ensure_ended(source: &mut dyn Source, name: &str) -> Result<(), Error> {
    let mut probe = [0u8; 1];
    match source.fill(&mut probe) {
        Ok(0) => Ok(()),
        Ok(_) => Err(Error::new(
            Step::Read,
            format!("{name} grew while it was being delivered"),
        )
        .with_fix("deliver files that are complete and no longer written to; nothing was created")),
        Err(e) => Err(Error::new(Step::Read, format!("{name}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;
    use crate::io::{Request, TransportErrorKind};
    use crate::testing::{FakeIo, destination, respond};

    fn spec(name: &str, size: Option<u64>) -> ObjectSpec {
        ObjectSpec {
            name: name.into(),
            size,
            content_type: "application/octet-stream".into(),
            metadata: Default::default(),
        }
    }

    /// A resumable session as GCS keeps it, and the bytes that reached it twice.
    #[derive(Default)]
    struct Session {
        data: Vec<u8>,
        finished: bool,
        resent: u64,
        /// Commit the next chunk, then lose the answer.
        lose_next_answer: bool,
    }

    fn object_json(data: &[u8]) -> String {
        let mut c = Checksums::default();
        c.update(data);
        format!(
            r#"{{"name":"n","bucket":"partner-inbox","generation":"1","size":"{}","crc32c":"{}","md5Hash":"{}"}}"#,
            data.len(),
            c.crc32c(),
            c.md5().unwrap()
        )
    }

    fn io_with_google() -> FakeIo {
        let mut io = FakeIo::new();
        io.set_env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            .set_env("AWS_SECRET_ACCESS_KEY", "s");
        io.on("POST https://sts.googleapis.com/", |_| {
            respond(200, r#"{"access_token":"fed","expires_in":3599}"#)
        });
        io.on("POST https://iamcredentials.googleapis.com/", |_| {
            respond(
                200,
                r#"{"accessToken":"at","expireTime":"2026-11-26T13:00:00Z"}"#,
            )
        });
        io
    }

    fn fake_resumable(io: &mut FakeIo, session: Rc<RefCell<Session>>) {
        io.on("POST https://storage.googleapis.com/upload/storage/v1/b/partner-inbox/o?uploadType=resumable", |_| {
            Ok(http::Response::builder().status(200).header("location", "https://storage.googleapis.com/session/1").body(Vec::new()).unwrap())
        });
        io.on(
            "PUT https://storage.googleapis.com/session/1",
            move |req: &Request| {
                let mut s = session.borrow_mut();
                let range = req.headers()["content-range"]
                    .to_str()
                    .unwrap()
                    .strip_prefix("bytes ")
                    .unwrap()
                    .to_owned();
                let (span, total) = range.split_once('/').unwrap();
                if span != "*" {
                    let start: u64 = span.split_once('-').unwrap().0.parse().unwrap();
                    let committed = s.data.len() as u64;
                    assert!(start <= committed, "a gap");
                    let overlap = (committed - start).min(req.body().len() as u64);
                    s.resent += overlap;
                    let body = req.body()[overlap as usize..].to_vec();
                    s.data.extend_from_slice(&body);
                }
                if total != "*" && s.data.len() as u64 == total.parse::<u64>().unwrap() {
                    s.finished = true;
                }
                if std::mem::take(&mut s.lose_next_answer) {
                    return Err(TransportError::new(
                        TransportErrorKind::Protocol,
                        "connection reset",
                    ));
                }
                if s.finished {
                    return respond(200, &object_json(&s.data));
                }
                let mut r = http::Response::builder().status(308);
                if !s.data.is_empty() {
                    r = r.header("range", format!("bytes=0-{}", s.data.len() - 1));
                }
                Ok(r.body(Vec::new()).unwrap())
            },
        );
    }

    /// Delivers the five bytes "hello" as object "n" with the default options.
    fn deliver_hello(io: &mut FakeIo) -> Result<Receipt, Error> {
        deliver(
            io,
            &mut TokenSource::default(),
            &destination(),
            &spec("n", Some(5)),
            &mut &b"hello"[..],
            &UploadOptions::default(),
        )
    }

    #[test]
    fn small_objects_take_one_request() {
        let mut io = io_with_google();
        io.on("POST https://storage.googleapis.com/upload/storage/v1/b/partner-inbox/o?uploadType=multipart", |req| {
            assert_eq!(req.headers()["authorization"], "Bearer at");
            respond(200, &object_json(b"hello"))
        });
        let receipt = deliver_hello(&mut io).unwrap();
        assert_eq!(receipt.status, Status::Delivered);
        assert_eq!(receipt.requests, 1);
        assert_eq!(receipt.generation.as_deref(), Some("1"));
    }

    #[test]
    fn a_lost_answer_then_412_is_delivered_unconfirmed_but_a_first_412_is_a_conflict() {
        let mut io = io_with_google();
        let mut calls = 0;
        io.on("POST https://storage.googleapis.com/upload/storage/v1/b/partner-inbox/o?uploadType=multipart", move |_| {
            calls += 1;
            if calls == 1 { Err(TransportError::new(TransportErrorKind::Protocol, "reset")) } else { respond(412, r#"{"error":{"code":412,"message":"At least one of the pre-conditions you specified did not hold."}}"#) }
        });
        let receipt = deliver_hello(&mut io).unwrap();
        assert_eq!(receipt.status, Status::DeliveredUnconfirmed);
        assert_eq!(receipt.retries, 1);

        let mut io = io_with_google();
        io.on("POST https://storage.googleapis.com/upload/storage/v1/b/partner-inbox/o?uploadType=multipart", |_| {
            respond(412, r#"{"error":{"code":412,"message":"At least one of the pre-conditions you specified did not hold."}}"#)
        });
        let err = deliver_hello(&mut io).unwrap_err();
        assert_eq!(err.status, Some(412));
        assert!(err.fix.unwrap().contains("never overwritten"));
    }

    #[test]
    fn resumable_resumes_from_the_committed_offset_without_resending() {
        let data: Vec<u8> = (0..(600 * 1024)).map(|i| (i % 251) as u8).collect();
        let session = Rc::new(RefCell::new(Session::default()));
        let mut io = io_with_google();
        fake_resumable(&mut io, session.clone());
        session.borrow_mut().lose_next_answer = true;
        let options = UploadOptions {
            single_request_limit: 1024,
            chunk_size: 256 * 1024,
            ..Default::default()
        };
        let receipt = deliver(
            &mut io,
            &mut TokenSource::default(),
            &destination(),
            &spec("n", Some(data.len() as u64)),
            &mut &data[..],
            &options,
        )
        .unwrap();
        let s = session.borrow();
        assert_eq!(s.data, data);
        assert_eq!(s.resent, 0, "committed bytes are never sent again");
        assert_eq!(receipt.status, Status::Delivered);
        assert_eq!(receipt.upload, "resumable");
        assert_eq!(receipt.retries, 1);
        assert!(
            io.sent.iter().any(|l| l.starts_with("PUT")),
            "{:?}",
            io.sent
        );
    }

    #[test]
    fn streams_of_unknown_length_finish_with_an_empty_final_request() {
        let data = vec![7u8; 512 * 1024];
        let session = Rc::new(RefCell::new(Session::default()));
        let mut io = io_with_google();
        fake_resumable(&mut io, session.clone());
        let options = UploadOptions {
            chunk_size: 256 * 1024,
            ..Default::default()
        };
        let receipt = deliver(
            &mut io,
            &mut TokenSource::default(),
            &destination(),
            &spec("n", None),
            &mut &data[..],
            &options,
        )
        .unwrap();
        assert_eq!(session.borrow().data, data);
        assert_eq!(receipt.size, data.len() as u64);
        let last = io.requests.last().unwrap();
        assert_eq!(last.headers()["content-range"], "bytes */524288");
        assert!(
            last.headers()["x-goog-hash"]
                .to_str()
                .unwrap()
                .starts_with("crc32c=")
        );
    }

    #[test]
    fn a_source_shorter_or_longer_than_declared_creates_nothing() {
        for (declared, actual) in [(10u64, 5usize), (5, 10), (300 * 1024, 100)] {
            let mut io = io_with_google();
            io.on("POST https://storage.googleapis.com/upload/storage/v1/b/partner-inbox/o?uploadType=multipart", |_| panic!("must not upload"));
            fake_resumable(&mut io, Rc::new(RefCell::new(Session::default())));
            let data = vec![1u8; actual];
            let options = UploadOptions {
                single_request_limit: 200 * 1024,
                chunk_size: 256 * 1024,
                ..Default::default()
            };
            let err = deliver(
                &mut io,
                &mut TokenSource::default(),
                &destination(),
                &spec("n", Some(declared)),
                &mut &data[..],
                &options,
            )
            .unwrap_err();
            assert_eq!(err.step, Step::Read, "{err}");
            assert!(
                !io.sent.iter().any(|l| l.starts_with("PUT")),
                "no chunk sent: {:?}",
                io.sent
            );
        }
    }
}
