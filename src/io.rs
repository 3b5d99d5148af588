//! The I/O seam. The protocol code asks an [`Io`] for everything outside itself (HTTP, time,
//! the environment, files, randomness), so it runs unchanged in the component (over WASI) and in
//! native tests (over scripted fakes).

use std::fmt;
use std::time::Duration;

use time::OffsetDateTime;

pub type Request = http::Request<Vec<u8>>;
pub type Response = http::Response<Vec<u8>>;

pub trait Io {
    /// Sends a request whose body is borrowed (so an upload chunk can be sent again without a
    /// copy) and reads the whole (small) answer.
    fn send_borrowed(
        &mut self,
        request: &http::Request<()>,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Response, TransportError>;

    /// Sends a request whose body is read while it is sent: `fill` is asked to fill `body`
    /// piece by piece, in order, and each piece goes out as soon as it is filled, so reading
    /// (and hashing) overlaps sending. `body` is filled entirely even when sending fails, so the
    /// caller can send it again. A `fill` error abandons the request.
    fn send_filling(
        &mut self,
        request: &http::Request<()>,
        body: &mut [u8],
        fill: &mut dyn FnMut(&mut [u8]) -> Result<(), String>,
        timeout: Duration,
    ) -> Result<Result<Response, TransportError>, String> {
        fill(body)?;
        Ok(self.send_borrowed(request, body, timeout))
    }

    /// Sends a request with an owned body.
    fn send(&mut self, request: Request, timeout: Duration) -> Result<Response, TransportError> {
        let (parts, body) = request.into_parts();
        self.send_borrowed(&http::Request::from_parts(parts, ()), &body, timeout)
    }
    /// Sends a request without a body and returns the answer once its head has arrived; the
    /// body is read piece by piece with the reader (an S3 object, too large to hold), which
    /// borrows nothing of this `Io`.
    fn open(
        &mut self,
        request: &http::Request<()>,
        timeout: Duration,
    ) -> Result<Opened, TransportError> {
        let (parts, body) = self.send_borrowed(request, &[], timeout)?.into_parts();
        Ok((
            http::Response::from_parts(parts, ()),
            Box::new(std::io::Cursor::new(body)),
        ))
    }

    /// Another handle on the same host, for reading a source (an S3 object) while an upload
    /// goes out through this one; `None` where the host offers no second handle.
    fn fork(&self) -> Option<Box<dyn Io>> {
        None
    }

    /// A value from the store the host shares among instances (`wasi:keyvalue`), where it
    /// offers one and the settings name it.
    fn shared_get(&mut self, _key: &str) -> Option<Vec<u8>> {
        None
    }

    /// Keeps `value` in the shared store (nothing where there is none); a failure is logged.
    fn shared_set(&mut self, _key: &str, _value: &[u8]) {}

    fn now(&self) -> OffsetDateTime;
    fn sleep(&mut self, duration: Duration);
    fn env(&self, name: &str) -> Option<String>;
    fn read_file(&self, path: &str) -> std::io::Result<String>;
    fn random_u64(&mut self) -> u64;
    /// A progress note for the operator (stderr in the component), e.g. a retry.
    fn log(&mut self, message: &str);
}

/// An answer's head, and a reader of its body.
pub type Opened = (http::Response<()>, Box<dyn BodyReader>);

/// An answer's body, read piece by piece.
pub trait BodyReader {
    /// Fills some of `buf`, returning how much; 0 at the end. An error means the connection
    /// broke before the end.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, TransportError>;
}

impl BodyReader for std::io::Cursor<Vec<u8>> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        Ok(std::io::Read::read(self, buf).unwrap_or(0))
    }
}

/// Why a request got no HTTP answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportError {
    pub kind: TransportErrorKind,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportErrorKind {
    /// No connection could be made (refused, DNS, unreachable).
    Connect,
    Timeout,
    /// The host's outbound policy refused the request.
    Denied,
    /// TLS failed (certificate, protocol version, alert): the endpoint and this host do not
    /// agree, and another attempt will not change that.
    Tls,
    /// The connection broke, or the answer was malformed.
    Protocol,
    /// The answer was larger than an answer of its kind may be: asking again gets the same.
    TooLarge,
}

impl TransportError {
    pub fn new(kind: TransportErrorKind, message: impl Into<String>) -> Self {
        TransportError {
            kind,
            message: message.into(),
        }
    }

    /// Whether another attempt may get through.
    pub fn is_transient(&self) -> bool {
        !matches!(
            self.kind,
            TransportErrorKind::Denied | TransportErrorKind::Tls | TransportErrorKind::TooLarge
        )
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The head of `request`, so it can be sent again with [`Io::send_borrowed`] and its body
/// borrowed, without copying the body for each attempt.
pub fn head_of(request: &Request) -> http::Request<()> {
    let mut head = http::Request::new(());
    *head.method_mut() = request.method().clone();
    *head.uri_mut() = request.uri().clone();
    *head.headers_mut() = request.headers().clone();
    head
}

/// Convenience for tests and parsers: a response header as text.
pub fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}
