//! A scripted [`Io`] for native tests: answers requests from handlers, records what was sent,
//! and keeps a clock that only moves when slept on.

use std::collections::HashMap;
use std::time::Duration;

use time::OffsetDateTime;
use time::macros::datetime;

use crate::config::{Destination, Settings};
use crate::io::{Io, Request, Response, TransportError, TransportErrorKind};

type Handler = Box<dyn FnMut(&Request) -> Result<Response, TransportError>>;

pub struct FakeIo {
    pub now: OffsetDateTime,
    pub env: HashMap<String, String>,
    pub files: HashMap<String, String>,
    pub slept: Vec<Duration>,
    /// Every request sent, as `METHOD URL`.
    pub sent: Vec<String>,
    pub logged: Vec<String>,
    /// Every request sent, whole.
    pub requests: Vec<Request>,
    /// The timeout each request was sent with.
    pub timeouts: Vec<Duration>,
    /// The store instances share (`wasi:keyvalue`), when the host offers one.
    pub shared: Option<HashMap<String, Vec<u8>>>,
    handlers: Vec<(String, Handler)>,
}

impl FakeIo {
    pub fn new() -> Self {
        FakeIo {
            now: datetime!(2026-11-26 12:00:00 UTC),
            env: HashMap::new(),
            files: HashMap::new(),
            slept: Vec::new(),
            logged: Vec::new(),
            sent: Vec::new(),
            requests: Vec::new(),
            timeouts: Vec::new(),
            shared: None,
            handlers: Vec::new(),
        }
    }

    pub fn set_env(&mut self, name: &str, value: &str) -> &mut Self {
        self.env.insert(name.into(), value.into());
        self
    }

    /// Answers requests whose `METHOD URL` starts with `prefix`; later handlers win.
    pub fn on(
        &mut self,
        prefix: &str,
        handler: impl FnMut(&Request) -> Result<Response, TransportError> + 'static,
    ) -> &mut Self {
        self.handlers.push((prefix.into(), Box::new(handler)));
        self
    }

    pub fn count(&self, prefix: &str) -> usize {
        self.sent.iter().filter(|s| s.starts_with(prefix)).count()
    }
}

/// The destination most tests deliver to: the five facts, region set.
pub fn destination() -> Destination {
    Destination::from_settings(&settings()).unwrap()
}

/// An environment of `pairs`, for settings read through a lookup.
pub fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

/// The settings of [`destination`].
pub fn settings() -> Settings {
    Settings {
        project_number: Some("123456789012".into()),
        pool_id: Some("aws-pool".into()),
        provider_id: Some("aws-provider".into()),
        service_account: Some("uploader@partner.iam.gserviceaccount.com".into()),
        bucket: Some("partner-inbox".into()),
        aws_region: Some("us-east-1".into()),
        ..Default::default()
    }
}

/// A response with `status` and `body`.
pub fn response(status: u16, body: &str) -> Response {
    http::Response::builder()
        .status(status)
        .body(body.as_bytes().to_vec())
        .unwrap()
}

pub fn respond(status: u16, body: &str) -> Result<Response, TransportError> {
    Ok(response(status, body))
}

/// A [`FakeIo`] shared by handles, so a source can read through its own ([`Io::fork`]).
#[derive(Clone)]
pub struct SharedIo(pub std::rc::Rc<std::cell::RefCell<FakeIo>>);

impl Io for SharedIo {
    fn send_borrowed(
        &mut self,
        request: &http::Request<()>,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Response, TransportError> {
        self.0.borrow_mut().send_borrowed(request, body, timeout)
    }

    fn open(
        &mut self,
        request: &http::Request<()>,
        timeout: Duration,
    ) -> Result<crate::io::Opened, TransportError> {
        self.0.borrow_mut().open(request, timeout)
    }

    fn fork(&self) -> Option<Box<dyn Io>> {
        Some(Box::new(self.clone()))
    }

    fn now(&self) -> OffsetDateTime {
        self.0.borrow().now()
    }

    fn sleep(&mut self, duration: Duration) {
        self.0.borrow_mut().sleep(duration);
    }

    fn env(&self, name: &str) -> Option<String> {
        self.0.borrow().env(name)
    }

    fn read_file(&self, path: &str) -> std::io::Result<String> {
        self.0.borrow().read_file(path)
    }

    fn random_u64(&mut self) -> u64 {
        self.0.borrow_mut().random_u64()
    }

    fn log(&mut self, message: &str) {
        self.0.borrow_mut().log(message);
    }
}

/// An answer body that breaks after `left` bytes, as a connection that drops mid-object.
struct Breaking {
    body: std::io::Cursor<Vec<u8>>,
    left: usize,
}

impl crate::io::BodyReader for Breaking {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        if self.left == 0 {
            return Err(TransportError::new(
                TransportErrorKind::Protocol,
                "the connection broke",
            ));
        }
        let n = buf.len().min(self.left);
        let n = std::io::Read::read(&mut self.body, &mut buf[..n]).unwrap_or(0);
        self.left -= n;
        Ok(n)
    }
}

impl Io for FakeIo {
    /// As the default, but an answer with `x-fake-break-after: N` breaks after N body bytes.
    fn open(
        &mut self,
        request: &http::Request<()>,
        timeout: Duration,
    ) -> Result<crate::io::Opened, TransportError> {
        let (parts, body) = self.send_borrowed(request, &[], timeout)?.into_parts();
        let left = parts
            .headers
            .get("x-fake-break-after")
            .and_then(|v| v.to_str().ok()?.parse().ok());
        let reader: Box<dyn crate::io::BodyReader> = match left {
            Some(left) => Box::new(Breaking {
                body: std::io::Cursor::new(body),
                left,
            }),
            None => Box::new(std::io::Cursor::new(body)),
        };
        Ok((http::Response::from_parts(parts, ()), reader))
    }

    fn send_borrowed(
        &mut self,
        request: &http::Request<()>,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Response, TransportError> {
        self.timeouts.push(timeout);
        let mut copy = http::Request::new(body.to_vec());
        *copy.method_mut() = request.method().clone();
        *copy.uri_mut() = request.uri().clone();
        *copy.headers_mut() = request.headers().clone();
        let request = copy;
        let line = format!("{} {}", request.method(), request.uri());
        self.sent.push(line.clone());
        let handler = self
            .handlers
            .iter_mut()
            .rev()
            .find(|(prefix, _)| line.starts_with(prefix.as_str()));
        let result = match handler {
            Some((_, handler)) => handler(&request),
            None => Err(TransportError::new(
                TransportErrorKind::Connect,
                format!("no route to {line}"),
            )),
        };
        self.requests.push(request);
        result
    }

    fn shared_get(&mut self, key: &str) -> Option<Vec<u8>> {
        self.shared.as_ref()?.get(key).cloned()
    }

    fn shared_set(&mut self, key: &str, value: &[u8]) {
        if let Some(shared) = &mut self.shared {
            shared.insert(key.to_owned(), value.to_vec());
        }
    }

    fn now(&self) -> OffsetDateTime {
        self.now
    }

    fn sleep(&mut self, duration: Duration) {
        self.slept.push(duration);
        self.now += duration;
    }

    fn env(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }

    fn read_file(&self, path: &str) -> std::io::Result<String> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, path.to_owned()))
    }

    fn random_u64(&mut self) -> u64 {
        0
    }

    fn log(&mut self, message: &str) {
        self.logged.push(message.to_owned());
    }
}
