//! The outbound hook, driven as Wasmtime drives it: an allowed host reaches a loopback server
//! through `--connect-to`, keeping its Host header; others are refused with a clear reason.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use wasmtime_wasi_http::{Error as HttpError, WasiBody, WasiHttpHooks};
use wif_push_host::outbound::{Outbound, Policy, Route};

/// A loopback server that answers with the Host header and path it received.
async fn echo_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let service = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    let host = req
                        .headers()
                        .get("host")
                        .map(|h| h.to_str().unwrap().to_owned());
                    let body = format!("{} {}", host.unwrap_or_default(), req.uri());
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(body))))
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn request(uri: &str) -> http::Request<WasiBody> {
    let body = Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync();
    let uri: http::Uri = uri.parse().unwrap();
    http::Request::builder()
        .uri(&uri)
        .header("host", uri.authority().unwrap().as_str())
        .body(body)
        .unwrap()
}

async fn send(outbound: &mut Outbound, uri: &str) -> Result<(u16, String), HttpError> {
    let done = Box::new(async { Ok(()) });
    let (response, _io) = Box::into_pin(outbound.send_request(request(uri), None, done)).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8(body.to_vec()).unwrap()))
}

fn message(err: HttpError) -> String {
    match err {
        HttpError::InternalError(Some(message)) => message,
        other => panic!("expected a refusal with a reason, got {other:?}"),
    }
}

#[tokio::test]
async fn routed_host_reaches_the_loopback_server_with_its_host_header() {
    let addr = echo_server().await;
    let route: Route = format!("sts.googleapis.com={addr}").parse().unwrap();
    let mut outbound = Outbound::new(Policy::new(&[], vec![route])).unwrap();
    let (status, body) = send(&mut outbound, "https://sts.googleapis.com/v1/token?x=1")
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, "sts.googleapis.com /v1/token?x=1");
    // A second request reuses the pool and is counted.
    send(&mut outbound, "https://sts.googleapis.com/again")
        .await
        .unwrap();
    assert_eq!(outbound.requests_sent(), 2);
}

#[tokio::test]
async fn a_host_off_the_allow_list_is_refused_by_name() {
    let addr = echo_server().await;
    let route: Route = format!("evil.example={addr}").parse().unwrap();
    let mut outbound = Outbound::new(Policy::new(&[], vec![route])).unwrap();
    let err = message(
        send(&mut outbound, "https://evil.example/steal")
            .await
            .unwrap_err(),
    );
    assert!(err.contains("evil.example"), "{err}");
    assert!(err.contains("--allow-host evil.example"), "{err}");
    assert_eq!(outbound.requests_sent(), 0);

    // Allowed explicitly, it goes through.
    let route: Route = format!("evil.example={addr}").parse().unwrap();
    let mut outbound = Outbound::new(Policy::new(&["evil.example".into()], vec![route])).unwrap();
    assert_eq!(
        send(&mut outbound, "https://evil.example/ok")
            .await
            .unwrap()
            .0,
        200
    );
}

#[tokio::test]
async fn plain_http_to_an_unrouted_host_is_refused() {
    let mut outbound = Outbound::new(Policy::default()).unwrap();
    let err = message(
        send(&mut outbound, "http://storage.googleapis.com/upload")
            .await
            .unwrap_err(),
    );
    assert!(err.contains("only HTTPS"), "{err}");
    assert!(
        err.contains("--connect-to storage.googleapis.com=127.0.0.1:PORT"),
        "{err}"
    );
}

#[tokio::test]
async fn a_closed_port_is_a_connection_error_not_a_hang() {
    // Bind then drop, so the port is very likely closed.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let route: Route = format!("sts.googleapis.com={addr}").parse().unwrap();
    let mut outbound = Outbound::new(Policy::new(&[], vec![route])).unwrap();
    let err = send(&mut outbound, "https://sts.googleapis.com/")
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::ConnectionRefused), "{err:?}");
}
