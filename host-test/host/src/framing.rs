//! The sidecar's request framing, followed before hyper parses it.
//!
//! A request that carries both `Content-Length` and `Transfer-Encoding` has two lengths; RFC
//! 9112 (6.1, 6.3) lets a server read it by the chunks, and hyper does, dropping the length
//! before the service can see it. A proxy in front may have read the other length, so such a
//! request is refused with 400 here (a request-smuggling guard): [`Watched`] wraps the
//! connection, follows each request's head and body as the bytes go to hyper, and records
//! which requests are ambiguous; the service asks [`Verdicts::next`] for each
//! request it is handed, in order (HTTP/1.1 serves a connection's requests one at a time).
//!
//! Anything this follower does not understand (a malformed head, `CONNECT`, an oversized line)
//! ends the following, and it fails closed: hyper refuses the request it could not follow, or
//! serves it (a `CONNECT` answered 405), and every later request on that connection is refused
//! with 400, as no longer known to be framed as the sender meant.

use std::collections::BTreeSet;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A head is followed up to the size hyper accepts (larger ones get 431).
const MAX_HEAD: usize = crate::serve::MAX_HEAD_BYTES;
/// Chunk-size and trailer lines longer than this end the following (hyper's own limit for
/// chunk extensions and trailers).
const MAX_LINE: usize = 16 * 1024;
/// As many header lines as hyper accepts by default.
const MAX_HEADERS: usize = 100;

/// Which requests of one connection are ambiguous, shared by the connection and its service.
#[derive(Clone, Default)]
pub struct Verdicts(Arc<Mutex<VerdictState>>);

#[derive(Default)]
struct VerdictState {
    ambiguous: BTreeSet<u64>,
    /// The request after which the follower stopped following.
    stopped_at: Option<u64>,
    handed_out: u64,
}

/// What the service should do with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Serve,
    /// Both `Content-Length` and `Transfer-Encoding`.
    Ambiguous,
    /// After a request the follower could not follow.
    Unfollowed,
}

impl Verdict {
    /// The refusal's words, for a request that is not served.
    pub fn refusal(self) -> Option<&'static str> {
        match self {
            Verdict::Serve => None,
            Verdict::Ambiguous => Some(AMBIGUOUS),
            Verdict::Unfollowed => Some(UNFOLLOWED),
        }
    }
}

impl Verdicts {
    /// The verdict on the next request the service is handed on this connection.
    pub fn next(&self) -> Verdict {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let index = state.handed_out;
        state.handed_out += 1;
        if state.ambiguous.remove(&index) {
            Verdict::Ambiguous
        } else if state.stopped_at.is_some_and(|at| index > at) {
            Verdict::Unfollowed
        } else {
            Verdict::Serve
        }
    }

    fn record(&self, index: u64) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        state.ambiguous.insert(index);
    }

    fn stop(&self, index: u64) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        state.stopped_at.get_or_insert(index);
    }
}

/// The words of the refusal of an ambiguous request.
pub const AMBIGUOUS: &str = "the request has both Content-Length and Transfer-Encoding, so its \
    length is ambiguous (RFC 9112, 6.1): send one of them";
/// The words of the refusal of a request after one that could not be followed.
pub const UNFOLLOWED: &str = "an earlier request on this connection could not be read as plain \
    HTTP/1.1 framing, so this one is refused: send it on a new connection";

/// A connection whose incoming requests are followed.
pub struct Watched<S> {
    inner: S,
    follower: Follower,
}

impl<S> Watched<S> {
    pub fn new(inner: S, verdicts: Verdicts) -> Self {
        Watched {
            inner,
            follower: Follower::new(verdicts),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll {
            this.follower.feed(&buf.filled()[before..]);
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Where in the byte stream the follower is.
#[derive(Debug, PartialEq)]
enum State {
    /// Collecting a request head.
    Head(Vec<u8>),
    /// This many body bytes remain.
    Length(u64),
    /// Collecting a chunk-size line.
    ChunkSize(Vec<u8>),
    /// This many bytes of chunk data remain.
    ChunkData(u64),
    /// Collecting the line break after a chunk's data.
    ChunkEnd(Vec<u8>),
    /// Collecting a trailer line; an empty one ends the body.
    Trailer(Vec<u8>),
    /// Not following any more: hyper closes such a connection after this request.
    Done,
}

/// Follows a connection's requests, sans IO: bytes in, verdicts out.
struct Follower {
    state: State,
    /// The index of the request whose head or body is being read.
    request: u64,
    verdicts: Verdicts,
}

impl Follower {
    fn new(verdicts: Verdicts) -> Self {
        Follower {
            state: State::Head(Vec::new()),
            request: 0,
            verdicts,
        }
    }

    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && self.state != State::Done {
            bytes = self.step(bytes);
            if self.state == State::Done {
                self.verdicts.stop(self.request);
            }
        }
    }

    /// Consumes some of `bytes` and returns the rest.
    fn step<'a>(&mut self, bytes: &'a [u8]) -> &'a [u8] {
        match &mut self.state {
            State::Head(head) => {
                let old = head.len();
                head.extend_from_slice(&bytes[..bytes.len().min(MAX_HEAD + 1 - old)]);
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut request = httparse::Request::new(&mut headers);
                match request.parse(head) {
                    Ok(httparse::Status::Complete(len)) => {
                        let next = body_framing(&request);
                        if next == Framing::Ambiguous {
                            self.verdicts.record(self.request);
                        }
                        self.state = match next {
                            Framing::Length(0) => self.next_request(),
                            Framing::Length(n) => State::Length(n),
                            Framing::Chunked => State::ChunkSize(Vec::new()),
                            Framing::Ambiguous | Framing::Unknown => State::Done,
                        };
                        &bytes[len - old..]
                    }
                    Ok(httparse::Status::Partial) if head.len() <= MAX_HEAD => &[],
                    _ => {
                        self.state = State::Done;
                        &[]
                    }
                }
            }
            State::Length(left) | State::ChunkData(left) => {
                let take = (*left).min(bytes.len() as u64);
                *left -= take;
                if *left == 0 {
                    self.state = match self.state {
                        State::Length(_) => self.next_request(),
                        _ => State::ChunkEnd(Vec::new()),
                    };
                }
                &bytes[take as usize..]
            }
            State::ChunkSize(line) | State::ChunkEnd(line) | State::Trailer(line) => {
                let Some(end) = bytes.iter().position(|b| *b == b'\n') else {
                    line.extend_from_slice(bytes);
                    if line.len() > MAX_LINE {
                        self.state = State::Done;
                    }
                    return &[];
                };
                line.extend_from_slice(&bytes[..=end]);
                let line = std::mem::take(line);
                self.state = if line.len() > MAX_LINE {
                    State::Done
                } else {
                    self.after_line(&line)
                };
                &bytes[end + 1..]
            }
            State::Done => &[],
        }
    }

    /// What follows a complete line of the chunked body.
    fn after_line(&mut self, line: &[u8]) -> State {
        let blank = line == b"\r\n" || line == b"\n";
        match self.state {
            State::ChunkSize(_) => match httparse::parse_chunk_size(line) {
                Ok(httparse::Status::Complete((_, 0))) => State::Trailer(Vec::new()),
                Ok(httparse::Status::Complete((_, size))) => State::ChunkData(size),
                _ => State::Done,
            },
            State::ChunkEnd(_) if blank => State::ChunkSize(Vec::new()),
            State::Trailer(_) if blank => self.next_request(),
            State::Trailer(_) => State::Trailer(Vec::new()),
            _ => State::Done,
        }
    }

    fn next_request(&mut self) -> State {
        self.request += 1;
        State::Head(Vec::new())
    }
}

#[derive(Debug, PartialEq)]
enum Framing {
    Length(u64),
    Chunked,
    /// Both a length and a transfer coding.
    Ambiguous,
    /// Something hyper refuses or handles otherwise (an upgrade, a bad length).
    Unknown,
}

/// How a request's body is delimited, as hyper reads it.
fn body_framing(request: &httparse::Request) -> Framing {
    if request.method == Some("CONNECT") {
        return Framing::Unknown;
    }
    let named = |name: &'static str| {
        request
            .headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
    };
    // An `Upgrade` the sidecar never grants (it answers without 101) is framed as any other
    // request, and followed on.
    let lengths: Vec<_> = named("content-length").collect();
    let codings: Vec<_> = named("transfer-encoding").collect();
    match (lengths.is_empty(), codings.last()) {
        (false, Some(_)) => Framing::Ambiguous,
        (true, Some(last)) => {
            let chunked = std::str::from_utf8(last.value).is_ok_and(|v| {
                v.rsplit(',')
                    .next()
                    .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"))
            });
            if chunked {
                Framing::Chunked
            } else {
                Framing::Unknown
            }
        }
        (true, None) => Framing::Length(0),
        (false, None) => {
            let parsed: Vec<Option<u64>> = lengths
                .iter()
                .map(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                .collect();
            match parsed.first() {
                Some(Some(n)) if parsed.iter().all(|p| *p == Some(*n)) => Framing::Length(*n),
                _ => Framing::Unknown,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The indices of the ambiguous requests in `stream`, fed `piece` bytes at a time.
    fn ambiguous(stream: &[u8], piece: usize) -> Vec<u64> {
        let verdicts = Verdicts::default();
        let mut follower = Follower::new(verdicts.clone());
        for part in stream.chunks(piece) {
            follower.feed(part);
        }
        let state = verdicts.0.lock().unwrap();
        state.ambiguous.iter().copied().collect()
    }

    const PLAIN: &[u8] = b"PUT /a HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello";
    const CHUNKED: &[u8] = b"PUT /b HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n\
        5;ext=1\r\nhello\r\n0\r\ntrailer: t\r\n\r\n";
    const BOTH: &[u8] = b"PUT /c HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\
        content-length: 9\r\n\r\n2\r\nhi\r\n0\r\n\r\n";

    #[test]
    fn requests_are_followed_through_lengths_and_chunks_in_any_pieces() {
        // The body of the plain request looks like a head with both headers: it is not one.
        let body = "GET / HTTP/1.1\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n";
        let decoy = format!(
            "PUT /d HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let stream = [PLAIN, CHUNKED, decoy.as_bytes(), PLAIN, BOTH].concat();
        for piece in [1, 2, 3, 7, 64, stream.len()] {
            assert_eq!(ambiguous(&stream, piece), vec![4], "pieces of {piece}");
        }
    }

    #[test]
    fn either_order_of_the_two_headers_is_ambiguous() {
        let length_first = b"PUT /c HTTP/1.1\r\ncontent-length: 9\r\nhost: x\r\n\
            Transfer-Encoding: gzip, chunked\r\n\r\n";
        assert_eq!(ambiguous(BOTH, 5), vec![0]);
        assert_eq!(ambiguous(length_first, 5), vec![0]);
    }

    #[test]
    fn what_hyper_refuses_ends_the_following_without_a_verdict() {
        let bad_length = b"PUT /a HTTP/1.1\r\ncontent-length: x\r\n\r\n";
        let garbage = b"\x00\x01 not http\r\n\r\n";
        for stream in [bad_length.as_slice(), garbage] {
            let stream = [stream, BOTH].concat();
            assert!(ambiguous(&stream, 4).is_empty());
        }
    }

    #[test]
    fn the_service_is_told_per_request_in_order() {
        let verdicts = Verdicts::default();
        let mut follower = Follower::new(verdicts.clone());
        follower.feed(&[PLAIN, CHUNKED, BOTH].concat());
        let told: Vec<Verdict> = (0..3).map(|_| verdicts.next()).collect();
        assert_eq!(
            told,
            vec![Verdict::Serve, Verdict::Serve, Verdict::Ambiguous]
        );
    }

    #[test]
    fn after_a_request_it_cannot_follow_the_connection_is_refused() {
        let upgrade =
            b"GET /healthz HTTP/1.1\r\nhost: x\r\nupgrade: h2c\r\nconnection: upgrade\r\n\r\n";
        let connect = b"CONNECT example.com:443 HTTP/1.1\r\nhost: example.com\r\n\r\n";
        let long_trailer = [
            b"PUT /t HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n0\r\nx: ".as_slice(),
            &vec![b'a'; MAX_LINE + 10],
        ]
        .concat();
        // An upgrade that is not granted is followed on: the next request is judged.
        let verdicts = Verdicts::default();
        Follower::new(verdicts.clone()).feed(&[upgrade.as_slice(), BOTH].concat());
        assert_eq!(
            (verdicts.next(), verdicts.next()),
            (Verdict::Serve, Verdict::Ambiguous)
        );
        for first in [connect.as_slice(), &long_trailer] {
            let verdicts = Verdicts::default();
            Follower::new(verdicts.clone()).feed(&[first, PLAIN, PLAIN].concat());
            let told: Vec<Verdict> = (0..3).map(|_| verdicts.next()).collect();
            assert_eq!(
                told,
                vec![Verdict::Serve, Verdict::Unfollowed, Verdict::Unfollowed]
            );
        }
    }
}
