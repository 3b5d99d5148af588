//! [`Io`] over WASI 0.2: `wasi:http` through the raw bindings (the request is started before
//! its body is written, as the host buffers only one chunk), `wasi:clocks`, `wasi:random`, and
//! std's `wasi:cli/environment` and `wasi:filesystem`.

use std::time::Duration;

use time::OffsetDateTime;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, HeaderError, IncomingBody, IncomingResponse, Method, OutgoingBody,
    OutgoingRequest, RequestOptions, Scheme,
};
use wasip2::io::streams::{InputStream, OutputStream, StreamError};

use crate::delivery::ByteSource;
use crate::io::{BodyReader, Io, Opened, Response, TransportError, TransportErrorKind};

/// Token-flow answers are a few KiB; anything much larger is not what we asked for.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

pub struct WasiIo;

impl Io for WasiIo {
    fn send_borrowed(
        &mut self,
        request: &http::Request<()>,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Response, TransportError> {
        send_with(request, body.len(), timeout, |stream| {
            write_all(stream, body)
        })
    }

    fn send_filling(
        &mut self,
        request: &http::Request<()>,
        body: &mut [u8],
        fill: &mut dyn FnMut(&mut [u8]) -> Result<(), String>,
        timeout: Duration,
    ) -> Result<Result<Response, TransportError>, String> {
        let mut fill_error = None;
        let len = body.len();
        let sent = send_with(request, len, timeout, |stream| {
            let mut broken = None;
            for piece in body.chunks_mut(FILL_PIECE) {
                // Reading and hashing this piece overlaps the host sending the one before.
                if let Err(e) = fill(piece) {
                    fill_error = Some(e);
                    return Err(protocol(
                        "the request was abandoned: its body could not be read",
                    ));
                }
                // After a failure the rest is still read, so the caller has the whole body.
                if broken.is_none()
                    && let Err(e) = write(stream, piece)
                {
                    broken = Some(e);
                }
            }
            match broken {
                Some(e) => Err(e),
                None => flush(stream),
            }
        });
        match fill_error {
            Some(e) => Err(e),
            None => Ok(sent),
        }
    }

    fn open(
        &mut self,
        request: &http::Request<()>,
        timeout: Duration,
    ) -> Result<Opened, TransportError> {
        let (head, response, body) = exchange(request, 0, timeout, flush)?;
        let stream = body
            .stream()
            .map_err(|()| protocol("the response body stream was already taken"))?;
        Ok((
            head,
            Box::new(WasiBody {
                stream: Some(stream),
                body: Some(body),
                _response: response,
            }),
        ))
    }

    fn fork(&self) -> Option<Box<dyn Io>> {
        Some(Box::new(WasiIo))
    }

    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn sleep(&mut self, duration: Duration) {
        std::thread::sleep(duration);
    }

    fn env(&self, name: &str) -> Option<String> {
        setting(name)
    }

    fn read_file(&self, path: &str) -> std::io::Result<String> {
        use std::io::Read as _;
        // Tokens, credential configurations and AWS config files are small: a larger file is
        // a mistake, and is refused rather than read whole into the instance's memory.
        const MAX: u64 = 1 << 20;
        let mut text = String::new();
        std::fs::File::open(path)?
            .take(MAX + 1)
            .read_to_string(&mut text)?;
        if text.len() as u64 > MAX {
            return Err(std::io::Error::other("it is larger than 1 MiB"));
        }
        Ok(text)
    }

    fn random_u64(&mut self) -> u64 {
        wasip2::random::random::get_random_u64()
    }

    fn log(&mut self, message: &str) {
        eprintln!("wif-push: {message}");
    }

    #[cfg(any(feature = "wasi-keyvalue", feature = "spin", feature = "wasmcloud"))]
    fn shared_get(&mut self, key: &str) -> Option<Vec<u8>> {
        token_store::with(|bucket| bucket.get(key).ok().flatten()).flatten()
    }

    #[cfg(any(feature = "wasi-keyvalue", feature = "spin", feature = "wasmcloud"))]
    fn shared_set(&mut self, key: &str, value: &[u8]) {
        if let Some(Err(e)) = token_store::with(|bucket| bucket.set(key, value)) {
            self.log(&format!(
                "the token store refused an access token ({}): the next instance exchanges again",
                token_store::describe(&e)
            ));
        }
    }
}

/// The `wasi:keyvalue` bucket `WIF_PUSH_TOKEN_STORE` names, opened once per instance; none
/// when the setting is absent or the store cannot be opened (said once, on stderr).
#[cfg(any(feature = "wasi-keyvalue", feature = "spin", feature = "wasmcloud"))]
mod token_store {
    use std::cell::OnceCell;

    use super::super::keyvalue_store::{self as store, Bucket, Error};

    thread_local! {
        static BUCKET: OnceCell<Option<Bucket>> = const { OnceCell::new() };
    }

    pub fn with<T>(f: impl FnOnce(&Bucket) -> T) -> Option<T> {
        BUCKET.with(|cell| cell.get_or_init(open).as_ref().map(f))
    }

    fn open() -> Option<Bucket> {
        let name = super::setting(crate::config::environment::TOKEN_STORE)?;
        store::open(&name)
            .inspect_err(|e| {
                eprintln!(
                    "wif-push: the token store {:?} ({}) could not be opened ({}): each instance \
                     exchanges for its own tokens",
                    name,
                    crate::config::environment::TOKEN_STORE,
                    describe(e)
                );
            })
            .ok()
    }

    pub fn describe(e: &Error) -> String {
        match e {
            Error::NoSuchStore => "no such store".into(),
            Error::AccessDenied => "access denied".into(),
            Error::Other(other) => crate::error::excerpt(other.as_bytes(), 200),
        }
    }
}

/// A setting or AWS variable: from `wasi:cli/environment`, else (where the host offers it)
/// from `wasi:config/store` under the lowercase name without `WIF_PUSH_` (`bucket`,
/// `aws_access_key_id`), the form Spin's variables take; an empty value counts as absent.
pub fn setting(name: &str) -> Option<String> {
    if let Ok(value) = std::env::var(name) {
        return Some(value);
    }
    #[cfg(any(feature = "wasi-config", feature = "wasmcloud"))]
    {
        let key = name.to_ascii_lowercase();
        let key = key.strip_prefix("wif_push_").unwrap_or(&key);
        // Spin variables cannot be unset; an empty one counts as absent.
        if let Ok(Some(value)) = super::config_store::get(key)
            && !value.is_empty()
        {
            return Some(value);
        }
    }
    None
}

/// The body to deliver, as a `wasi:io` input stream from the host.
pub struct StreamSource(pub InputStream);

impl ByteSource for StreamSource {
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize, String> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.0.blocking_read((buf.len() - filled) as u64) {
                Ok(bytes) => {
                    buf[filled..filled + bytes.len()].copy_from_slice(&bytes);
                    filled += bytes.len();
                }
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(format!("reading failed: {}", e.to_debug_string()));
                }
            }
        }
        Ok(filled)
    }
}

fn protocol(message: impl Into<String>) -> TransportError {
    TransportError::new(TransportErrorKind::Protocol, message)
}

/// How much of a body `send_filling` reads before sending it: the host's default write budget.
const FILL_PIECE: usize = 1 << 20;

/// A streamed answer body; the stream is a child of the body, which belongs to the response:
/// they go in that order.
struct WasiBody {
    stream: Option<InputStream>,
    body: Option<IncomingBody>,
    _response: IncomingResponse,
}

impl BodyReader for WasiBody {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        let Some(stream) = &self.stream else {
            return Ok(0);
        };
        match stream.blocking_read(buf.len() as u64) {
            Ok(bytes) => {
                buf[..bytes.len()].copy_from_slice(&bytes);
                Ok(bytes.len())
            }
            Err(StreamError::Closed) => Ok(0),
            Err(e) => Err(protocol(format!(
                "the connection broke while receiving ({})",
                stream_error(e)
            ))),
        }
    }
}

impl Drop for WasiBody {
    fn drop(&mut self) {
        drop(self.stream.take());
        if let Some(body) = self.body.take() {
            IncomingBody::finish(body);
        }
    }
}

/// Sends a request with a `len`-byte body that `write_body` writes (and flushes), and reads
/// the answer. If `write_body` fails, the request is abandoned (its body never finished).
fn send_with(
    request: &http::Request<()>,
    len: usize,
    timeout: Duration,
    write_body: impl FnOnce(&OutputStream) -> Result<(), TransportError>,
) -> Result<Response, TransportError> {
    let (head, _response, body) = exchange(request, len, timeout, write_body)?;
    let bytes = read_all(&body)?;
    IncomingBody::finish(body);
    let (parts, ()) = head.into_parts();
    Ok(http::Response::from_parts(parts, bytes))
}

/// Sends a request as [`send_with`] does and returns the answer's head and its body, unread.
fn exchange(
    request: &http::Request<()>,
    len: usize,
    timeout: Duration,
    write_body: impl FnOnce(&OutputStream) -> Result<(), TransportError>,
) -> Result<(http::Response<()>, IncomingResponse, IncomingBody), TransportError> {
    let mut fields: Vec<(String, Vec<u8>)> = request
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    let method = request.method();
    if len > 0 || method == http::Method::POST || method == http::Method::PUT {
        fields.push(("content-length".into(), len.to_string().into_bytes()));
    }
    let headers = Fields::from_list(&fields).map_err(|e| {
        let why = match e {
            HeaderError::InvalidSyntax => "is not a valid header",
            HeaderError::Forbidden => "is one the host does not let components set",
            HeaderError::Immutable => "could not be changed",
        };
        protocol(format!("a request header {why}"))
    })?;
    let outgoing = OutgoingRequest::new(headers);
    let method = match method.as_str() {
        "GET" => Method::Get,
        "PUT" => Method::Put,
        "POST" => Method::Post,
        "DELETE" => Method::Delete,
        "HEAD" => Method::Head,
        other => Method::Other(other.to_owned()),
    };
    let uri = request.uri();
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::Http,
        _ => Scheme::Https,
    };
    let set = outgoing.set_method(&method).is_ok()
        && outgoing.set_scheme(Some(&scheme)).is_ok()
        && outgoing
            .set_authority(uri.authority().map(|a| a.as_str()))
            .is_ok()
        && outgoing
            .set_path_with_query(uri.path_and_query().map(|p| p.as_str()))
            .is_ok();
    if !set {
        return Err(protocol(format!(
            "the host refused the request line for {uri}"
        )));
    }
    let options = RequestOptions::new();
    let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
    // Hosts may not support every timeout; those they refuse stay at their defaults.
    let _ = options.set_connect_timeout(Some(nanos));
    let _ = options.set_first_byte_timeout(Some(nanos));
    let _ = options.set_between_bytes_timeout(Some(nanos));

    let outgoing_body = outgoing
        .body()
        .map_err(|()| protocol("the request body was already taken"))?;
    // Start the request first: the host buffers one chunk, so writing first could deadlock.
    let future = outgoing_handler::handle(outgoing, Some(options)).map_err(error_code)?;
    let written = {
        let stream = outgoing_body
            .write()
            .map_err(|()| protocol("the request body stream was already taken"))?;
        write_body(&stream)
    };
    if let Err(broken) = written {
        // The body is dropped unfinished, which abandons the request. The host may know why
        // the body could not be written (a certificate refused while the body was being
        // written, say): its answer names that, where the broken stream cannot.
        drop(outgoing_body);
        return Err(match wait(&future) {
            Ok(Err(code)) => error_code(code),
            _ => broken,
        });
    }
    OutgoingBody::finish(outgoing_body, None).map_err(error_code)?;

    let incoming = wait(&future);
    let incoming = incoming
        .map_err(|()| protocol("the response was already taken"))?
        .map_err(error_code)?;
    let mut response = http::Response::builder().status(incoming.status());
    for (name, value) in incoming.headers().entries() {
        response = response.header(name, value);
    }
    let body = incoming
        .consume()
        .map_err(|()| protocol("the response body was already taken"))?;
    let head = response
        .body(())
        .map_err(|e| protocol(format!("the response was malformed: {e}")))?;
    Ok((head, incoming, body))
}

/// The host's answer to a request, once it has one.
fn wait(
    future: &wasip2::http::types::FutureIncomingResponse,
) -> Result<Result<IncomingResponse, ErrorCode>, ()> {
    loop {
        match future.get() {
            Some(result) => return result,
            None => future.subscribe().block(),
        }
    }
}

/// Writes `bytes` in pieces the stream accepts, waiting when it is full, then flushes.
fn write_all(stream: &OutputStream, bytes: &[u8]) -> Result<(), TransportError> {
    write(stream, bytes)?;
    flush(stream)
}

fn broken(e: StreamError) -> TransportError {
    protocol(format!(
        "the connection broke while sending ({})",
        stream_error(e)
    ))
}

/// A stream error in words.
fn stream_error(e: StreamError) -> String {
    match e {
        StreamError::Closed => "closed by the other side".into(),
        // Over wasi:http the error is usually an HTTP error code: say it in words.
        StreamError::LastOperationFailed(error) => {
            match wasip2::http::types::http_error_code(&error) {
                Some(code) => describe(code),
                None => error.to_debug_string(),
            }
        }
    }
}

/// Writes `bytes` in pieces the stream accepts, waiting when it is full.
fn write(stream: &OutputStream, mut bytes: &[u8]) -> Result<(), TransportError> {
    while !bytes.is_empty() {
        let ready = stream.check_write().map_err(broken)?;
        if ready == 0 {
            stream.subscribe().block();
            continue;
        }
        let n = bytes
            .len()
            .min(usize::try_from(ready).unwrap_or(usize::MAX));
        stream.write(&bytes[..n]).map_err(broken)?;
        bytes = &bytes[n..];
    }
    Ok(())
}

fn flush(stream: &OutputStream) -> Result<(), TransportError> {
    match stream.blocking_flush() {
        // The host may close the stream once it has read Content-Length bytes.
        Ok(()) | Err(StreamError::Closed) => Ok(()),
        Err(e) => Err(broken(e)),
    }
}

fn read_all(body: &IncomingBody) -> Result<Vec<u8>, TransportError> {
    let stream: InputStream = body
        .stream()
        .map_err(|()| protocol("the response body stream was already taken"))?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > MAX_RESPONSE_BYTES {
                    return Err(TransportError::new(
                        TransportErrorKind::TooLarge,
                        "the response is larger than 1 MiB",
                    ));
                }
            }
            Err(StreamError::Closed) => return Ok(bytes),
            Err(e) => {
                return Err(protocol(format!(
                    "the connection broke while receiving ({})",
                    stream_error(e)
                )));
            }
        }
    }
}

fn error_code(code: ErrorCode) -> TransportError {
    let kind = match &code {
        ErrorCode::DnsTimeout
        | ErrorCode::DnsError(_)
        | ErrorCode::DestinationNotFound
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpUnroutable
        | ErrorCode::ConnectionRefused => TransportErrorKind::Connect,
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout => TransportErrorKind::Timeout,
        ErrorCode::HttpRequestDenied | ErrorCode::DestinationIpProhibited => {
            TransportErrorKind::Denied
        }
        ErrorCode::TlsProtocolError
        | ErrorCode::TlsCertificateError
        | ErrorCode::TlsAlertReceived(_) => TransportErrorKind::Tls,
        // host-test reports its policy refusals with their reason as an internal error.
        ErrorCode::InternalError(Some(_)) => TransportErrorKind::Denied,
        _ => TransportErrorKind::Protocol,
    };
    TransportError::new(kind, describe(code))
}

/// A wasi:http error code in words, for a message meant for people.
fn describe(code: ErrorCode) -> String {
    let words = match code {
        ErrorCode::InternalError(Some(message)) => return message,
        ErrorCode::DnsTimeout => "the name lookup timed out",
        ErrorCode::DnsError(_) => "the name could not be resolved",
        ErrorCode::DestinationNotFound => "the destination was not found",
        ErrorCode::DestinationUnavailable => "the destination is unavailable",
        ErrorCode::DestinationIpProhibited => "the destination address is prohibited",
        ErrorCode::DestinationIpUnroutable => "the destination address is unroutable",
        ErrorCode::ConnectionRefused => "the connection was refused",
        ErrorCode::ConnectionTerminated => "the connection was closed before the answer",
        ErrorCode::ConnectionTimeout => "connecting timed out",
        ErrorCode::ConnectionReadTimeout => "no data arrived in time",
        ErrorCode::ConnectionWriteTimeout => "sending stalled",
        ErrorCode::ConnectionLimitReached => "the host's connection limit was reached",
        ErrorCode::TlsProtocolError => {
            "the TLS handshake failed (is the endpoint plain HTTP, or not TLS at all?)"
        }
        ErrorCode::TlsCertificateError => "the endpoint's TLS certificate was not accepted",
        ErrorCode::TlsAlertReceived(_) => "the endpoint ended the TLS handshake with an alert",
        ErrorCode::HttpRequestDenied => "the host's outbound policy refused the request",
        ErrorCode::HttpResponseTimeout => "no answer arrived in time",
        ErrorCode::HttpResponseIncomplete => "the answer ended early",
        ErrorCode::HttpProtocolError => "the answer was not valid HTTP (is the endpoint TLS?)",
        ErrorCode::HttpResponseHeaderSize(_) | ErrorCode::HttpResponseHeaderSectionSize(_) => {
            "the answer's headers were too large"
        }
        ErrorCode::HttpResponseBodySize(_) => "the answer was too large",
        _ => "the request failed in the host's HTTP client",
    };
    words.to_owned()
}
