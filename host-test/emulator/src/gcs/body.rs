//! A request body read frame by frame, never collected whole, that can be cut short on purpose
//! ([`Fault::ResetMidBody`](super::Fault::ResetMidBody)).

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;

/// Why a body ended before its end.
#[derive(Debug)]
pub(super) enum Cut {
    /// A `ResetMidBody` fault: the emulator reads no further and drops the connection.
    Reset,
    /// The client hung up or sent a malformed body (e.g. fewer bytes than its Content-Length).
    Client(String),
}

pub(super) struct Body {
    inner: Incoming,
    received: u64,
    reset_after: Option<u64>,
}

impl Body {
    pub(super) fn new(inner: Incoming, reset_after: Option<u64>) -> Self {
        Body {
            inner,
            received: 0,
            reset_after,
        }
    }

    /// Body bytes read so far.
    pub(super) fn received(&self) -> u64 {
        self.received
    }

    /// The next piece of the body, `None` at its end. With a reset pending, the body ends in
    /// [`Cut::Reset`] after exactly that many bytes (or at its real end, if it is shorter).
    pub(super) async fn next(&mut self) -> Result<Option<Bytes>, Cut> {
        loop {
            if self.reset_after.is_some_and(|limit| self.received >= limit) {
                return Err(Cut::Reset);
            }
            let frame = match self.inner.frame().await {
                None if self.reset_after.is_some() => return Err(Cut::Reset),
                None => return Ok(None),
                Some(Err(e)) => return Err(Cut::Client(e.to_string())),
                Some(Ok(frame)) => frame,
            };
            // Trailers carry nothing an upload needs.
            let Ok(mut data) = frame.into_data() else {
                continue;
            };
            if let Some(limit) = self.reset_after {
                let room = limit - self.received;
                if data.len() as u64 > room {
                    data.truncate(room as usize);
                }
            }
            if data.is_empty() {
                continue;
            }
            self.received += data.len() as u64;
            return Ok(Some(data));
        }
    }

    /// Reads (and forgets) the rest of the body, so the connection stays usable for the answer.
    pub(super) async fn drain(&mut self) -> Result<(), Cut> {
        while self.next().await?.is_some() {}
        Ok(())
    }

    /// The whole body, when it is small (JSON metadata); `None` if it exceeds `limit`.
    pub(super) async fn read_small(&mut self, limit: usize) -> Result<Option<Vec<u8>>, Cut> {
        let mut all = Vec::new();
        while let Some(data) = self.next().await? {
            if all.len() + data.len() > limit {
                self.drain().await?;
                return Ok(None);
            }
            all.extend_from_slice(&data);
        }
        Ok(Some(all))
    }
}
