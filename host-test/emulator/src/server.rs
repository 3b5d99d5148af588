//! The HTTP server: one loopback port for all three endpoints. It accepts connections, tells
//! the endpoints apart by path, reads bodies within Google's limit, routes each request and logs
//! what it answered.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::reply::Reply;
use crate::state::{State, lock};
use crate::wan::Paced;
use crate::{Endpoint, LogEntry, aws_sts, gcs, iam, s3, sts};
use time::OffsetDateTime;

/// Google's front end refuses larger requests; none of these endpoints needs more.
const MAX_BODY_BYTES: usize = 1 << 20;

pub(crate) async fn serve(listener: TcpListener, state: Arc<State>) {
    // Connections live in this set, so aborting the server task drops them too.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let state = state.clone();
                    connections.spawn(async move {
                        let wan = state.config.wan;
                        // The connection's handshake costs a round trip.
                        wan.round_trip().await;
                        let tls = state.config.tls.clone();
                        let service = service_fn(move |req| handle(state.clone(), req));
                        // A client that hangs up mid-request is its own problem, not the server's.
                        let http = http1::Builder::new();
                        let _ = match (wan.bandwidth, tls) {
                            (Some(rate), _) => {
                                http.serve_connection(TokioIo::new(Paced::new(stream, rate)), service)
                                    .await
                            }
                            (None, Some(tls)) => match tls.acceptor.accept(stream).await {
                                Ok(stream) => http.serve_connection(TokioIo::new(stream), service).await,
                                Err(_) => return,
                            },
                            (None, None) => http.serve_connection(TokioIo::new(stream), service).await,
                        };
                    });
                }
                // E.g. out of file descriptors: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Returned to hyper instead of a response: it closes the connection without answering.
#[derive(Debug)]
struct ConnectionDropped;

impl fmt::Display for ConnectionDropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the emulator dropped the connection without answering")
    }
}

impl std::error::Error for ConnectionDropped {}

/// An answer's body: whole, or (a read made to break) some bytes and then a broken connection.
pub(crate) enum Body {
    Whole(Full<Bytes>),
    Broken(Option<Bytes>),
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        match &mut *self {
            Body::Whole(full) => std::pin::Pin::new(full)
                .poll_frame(cx)
                .map(|frame| frame.map(|f| f.map_err(|never| match never {}))),
            Body::Broken(data) => std::task::Poll::Ready(Some(match data.take() {
                Some(d) => Ok(hyper::body::Frame::data(d)),
                None => Err(std::io::Error::other("the emulated connection broke")),
            })),
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            Body::Whole(full) => full.size_hint(),
            Body::Broken(_) => hyper::body::SizeHint::default(),
        }
    }
}

fn whole(response: Response<Full<Bytes>>) -> Response<Body> {
    response.map(Body::Whole)
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Body>, ConnectionDropped> {
    if !s3::is_s3(req.headers()) {
        let clock = Arc::clone(&state);
        return handle_google(state, req)
            .await
            .map(|response| whole(dated(response, clock.now())));
    }
    let (parts, _body) = req.into_parts();
    let endpoint = Endpoint::S3;
    lock(&state.arrivals).push((endpoint, Instant::now()));
    let answer = s3::handle(
        &state,
        &parts.method,
        parts.uri.path(),
        parts.uri.query().unwrap_or_default(),
        &parts.headers,
    );
    let (status, outcome, response) = match answer {
        s3::Answer::Reply(reply) => (
            reply.status,
            reply.outcome.clone(),
            whole(reply.into_response()),
        ),
        s3::Answer::Object(object) => (
            object.status,
            object.outcome.clone(),
            object.into_response(),
        ),
    };
    lock(&state.log).push(LogEntry {
        endpoint,
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        status: status.as_u16(),
        outcome,
        gcs: None,
    });
    Ok(response)
}

/// Stamps an answer with the emulator's clock (`EmulatorConfig::now`), as Google's carry the
/// time in `Date`: a sender can tell how far its own clock is off.
fn dated(mut response: Response<Full<Bytes>>, now: OffsetDateTime) -> Response<Full<Bytes>> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    if let Ok(date) = now.to_offset(time::UtcOffset::UTC).format(&format)
        && let Ok(value) = http::HeaderValue::from_str(&date)
    {
        response.headers_mut().insert(http::header::DATE, value);
    }
    response
}

async fn handle_google(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ConnectionDropped> {
    let (parts, body) = req.into_parts();
    let endpoint = Endpoint::of(parts.uri.path());
    lock(&state.arrivals).push((endpoint, Instant::now()));
    // The request's way there and the answer's way back (Google only: S3 is the sender's region).
    state.config.wan.round_trip().await;
    if endpoint == Endpoint::Gcs {
        let handled = gcs::handle(&state, &parts, body).await;
        lock(&state.log).push(LogEntry {
            endpoint,
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            status: handled.reply.as_ref().map_or(0, |r| r.status.as_u16()),
            outcome: handled.outcome,
            gcs: Some(handled.log),
        });
        if let Some(delay) = handled.delay {
            tokio::time::sleep(delay).await;
        }
        return handled
            .reply
            .map(Reply::into_response)
            .ok_or(ConnectionDropped);
    }
    let reply = match read_body(&parts.headers, body).await {
        Ok(body) => route(
            &state,
            &parts.method,
            parts.uri.path(),
            parts.uri.query().unwrap_or_default(),
            &parts.headers,
            &body,
        ),
        Err(reply) => reply,
    };
    lock(&state.log).push(LogEntry {
        endpoint,
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        status: reply.status.as_u16(),
        outcome: reply.outcome.clone(),
        gcs: None,
    });
    Ok(reply.into_response())
}

async fn read_body(headers: &HeaderMap, body: Incoming) -> Result<Bytes, Reply> {
    let too_large = || {
        Reply::google_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "INVALID_ARGUMENT",
            format!("Request payload size exceeds the limit: {MAX_BODY_BYTES} bytes."),
        )
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(e) => Err(Reply::google_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            format!("The request body could not be read: {e}"),
        )),
    }
}

fn route(
    state: &State,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Reply {
    if method != Method::POST {
        return Reply::not_found();
    }
    if path == "/"
        && let Some(reply) = aws_sts::handle(state, query, headers, body)
    {
        return reply;
    }
    if path == "/v1/token" {
        return sts::exchange(state, headers, body);
    }
    match iam::parse_path(path) {
        Some(email) => iam::generate_access_token(state, &email, headers, body),
        None => Reply::not_found(),
    }
}
