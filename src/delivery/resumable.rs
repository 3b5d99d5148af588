//! Large objects and streams of unknown length: a resumable session, sent chunk by chunk,
//! resumed from the offset GCS committed after any failure; the final chunk carries the
//! object's CRC32C.

use super::checksum::Checksums;
use super::json_api::{self as upload, ObjectResource, SessionState};
use super::source::{ByteSource, ended_early, ensure_ended};
use super::{Delivery, Failure};
use crate::error::{Error, Step};
use crate::io::{Response, TransportError};

impl Delivery<'_> {
    pub(super) fn start_session(&mut self) -> Result<String, Error> {
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
                    return upload::session_url(&response, &self.destination.storage_url);
                }
                Ok(response) => self.status_failure(&response),
            };
            self.recover(failure, &mut tries)?;
        }
    }

    /// Delivers through a new session; one that fails for good is cancelled, so GCS drops
    /// what it committed instead of keeping it for a week. A session the spec names is
    /// continued instead, and left to whoever started it.
    pub(super) fn resumable(
        &mut self,
        source: &mut dyn ByteSource,
    ) -> Result<(ObjectResource, Checksums), Error> {
        if let Some(session) = &self.spec.session {
            return self.continue_session(session, source);
        }
        let session = self.start_session()?;
        let result = self.send_all(&session, source, 0, Checksums::crc32c_only());
        if result.is_err() {
            self.cancel(&session);
        }
        result
    }

    /// Continues `session` from what GCS committed: the committed bytes are read from `source`
    /// and hashed (the last chunk carries the whole object's CRC32C), not sent again. A session
    /// that already finished answers with its object, which must have the CRC32C of the bytes
    /// read.
    fn continue_session(
        &mut self,
        session: &str,
        source: &mut dyn ByteSource,
    ) -> Result<(ObjectResource, Checksums), Error> {
        let storage_url = &self.destination.storage_url;
        let Some(session) = upload::on_storage_host(session, storage_url) else {
            return Err(Error::new(
                Step::Upload,
                format!(
                    "the session given for {} is not on {storage_url}; the token is not sent there",
                    self.spec.name
                ),
            )
            .with_fix("give a session this destination started (or none, to start one)"));
        };
        let mut checksums = Checksums::crc32c_only();
        let committed = match self.query(&session, self.spec.size)? {
            SessionState::Incomplete(committed) => committed,
            SessionState::Finished(object) => {
                self.skip(source, u64::MAX, &mut checksums)?;
                return Ok((object, checksums));
            }
        };
        if self.spec.size.is_some_and(|size| committed > size) {
            return Err(Error::new(
                Step::Upload,
                format!(
                    "the session of {} has {committed} bytes committed, more than its {} bytes",
                    self.spec.name,
                    self.spec.size.unwrap_or_default()
                ),
            )
            .with_fix(
                "the source changed since the session started: deliver it without the session",
            ));
        }
        self.skip(source, committed, &mut checksums)?;
        self.send_all(&session, source, committed, checksums)
    }

    /// Reads and hashes `count` bytes of `source` (all of it for `u64::MAX`), sending nothing.
    fn skip(
        &mut self,
        source: &mut dyn ByteSource,
        count: u64,
        checksums: &mut Checksums,
    ) -> Result<(), Error> {
        let mut buf = vec![0u8; 1 << 20];
        let mut left = count;
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = source
                .fill(&mut buf[..want])
                .map_err(|e| Error::new(Step::Read, format!("{}: {e}", self.spec.name)))?;
            checksums.update(&buf[..n]);
            left -= n as u64;
            if n < want {
                if count == u64::MAX {
                    return Ok(());
                }
                return Err(ended_early(&self.spec.name, count - left, count));
            }
        }
        Ok(())
    }

    /// Best effort, one attempt: a session left behind expires by itself.
    fn cancel(&mut self, session: &str) {
        if let Ok(token) = self.token() {
            let _ = self.send(&upload::cancel(session, &token), &[]);
        }
    }

    /// Sends `source` from `offset` (the bytes before it committed, and in `checksums`).
    fn send_all(
        &mut self,
        session: &str,
        source: &mut dyn ByteSource,
        mut offset: u64,
        mut checksums: Checksums,
    ) -> Result<(ObjectResource, Checksums), Error> {
        let session = session.to_owned();
        let chunk_size = self.destination.upload.chunk_size.max(upload::QUANTUM) / upload::QUANTUM
            * upload::QUANTUM;
        let mut buf = vec![0u8; usize::try_from(chunk_size).expect("chunk size fits memory")];
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
            if let Some(hash) = &hash {
                self.check_source_crc32c(hash)?;
            }
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
        source: &mut dyn ByteSource,
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
            .send_filling(&head, data, &mut fill, self.destination.upload.timeout)
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

    /// The session's state; transient failures of the query itself are retried, and a token
    /// refused (it expired during a long upload) is renewed once.
    fn query(&mut self, session: &str, total: Option<u64>) -> Result<SessionState, Error> {
        let mut tries = self.tries();
        loop {
            let token = self.token()?;
            let head = upload::status_query(session, &token, total);
            let failure = match self.send(&head, &[]) {
                Ok(response) if response.status() == 308 || response.status().is_success() => {
                    return upload::session_state(&response, &self.spec.name);
                }
                Ok(response) => self.status_failure(&response),
                Err(e) => {
                    let error = Error::no_answer(
                        Step::Upload,
                        format!("the status query for {} got no answer: {e}", self.spec.name),
                        &e,
                    );
                    if error.transient {
                        Failure::Retry {
                            error,
                            maybe_landed: false,
                        }
                    } else {
                        Failure::Fatal(error)
                    }
                }
            };
            self.recover(failure, &mut tries)?;
        }
    }
}
