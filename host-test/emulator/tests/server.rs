//! What the emulator does across its endpoints: Google's 404 for unknown paths, the body limit,
//! the request log, the system clock by default, and stopping when dropped.

mod common;

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use wif_push_emulator::Endpoint;

use common::tokens::*;
use common::*;

#[tokio::test]
async fn system_clock_by_default() {
    let mut config = config();
    config.now = None;
    let emulator = start(config).await;
    let mut spec = Spec::new(emulator.config(), 0);
    spec.time = OffsetDateTime::now_utc();
    let federated = exchange(&emulator, &spec.token()).await.json["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let answer = generate(&emulator, Some(&federated), SA, storage_request()).await;
    let expires =
        OffsetDateTime::parse(answer.json["expireTime"].as_str().unwrap(), &Rfc3339).unwrap();
    let lifetime = expires - OffsetDateTime::now_utc();
    assert!(
        (3590..=3600).contains(&lifetime.whole_seconds()),
        "{lifetime}"
    );
}

#[tokio::test]
async fn unknown_paths_and_methods_are_google_404s() {
    let emulator = start(config()).await;
    for (method, path) in [
        (Method::GET, "/v1/token"),
        (Method::POST, "/v1/tokens"),
        (Method::POST, "/"),
        (
            Method::POST,
            "/v1/projects/-/serviceAccounts/a@b:generateIdToken",
        ),
        (
            Method::GET,
            "/v1/projects/-/serviceAccounts/a@b:generateAccessToken",
        ),
    ] {
        let answer = send(&emulator, method, "sts.googleapis.com", path, &[], "").await;
        assert_google_error(&answer, 404, "NOT_FOUND", "Method not found.");
    }
}

#[tokio::test]
async fn hostile_bodies_are_answered_not_crashed_on() {
    let emulator = start(config()).await;
    let huge = vec![b'a'; (1 << 20) + 1];
    let answer = send(
        &emulator,
        Method::POST,
        "sts.googleapis.com",
        "/v1/token",
        &[],
        huge,
    )
    .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);

    // Chunked, so the size is only known while reading.
    let mut stream = tokio::net::TcpStream::connect(emulator.addr())
        .await
        .unwrap();
    let (mut reader, mut writer) = stream.split();
    let write = async {
        writer
            .write_all(
                b"POST /v1/token HTTP/1.1\r\nhost: sts.googleapis.com\r\ntransfer-encoding: chunked\r\n\r\n",
            )
            .await?;
        let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "a".repeat(64 * 1024));
        for _ in 0..20 {
            writer.write_all(chunk.as_bytes()).await?;
        }
        writer.write_all(b"0\r\n\r\n").await
    };
    let mut response = Vec::new();
    let (_, read) = tokio::join!(write, reader.read_to_end(&mut response));
    // The server may hang up before reading all; what it wrote first is the answer.
    let _ = read;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 413 "), "{response}");
    drop(stream);

    let not_utf8: &[u8] = b"grant_type=\xff\xfe&subject_token=%FF%FE%00";
    let answer = send(
        &emulator,
        Method::POST,
        "sts.googleapis.com",
        "/v1/token",
        &[],
        Bytes::from_static(not_utf8),
    )
    .await;
    assert_eq!(answer.json["error"], "invalid_request");
    let answer = send(
        &emulator,
        Method::POST,
        "iamcredentials.googleapis.com",
        &format!("/v1/projects/-/serviceAccounts/{SA}:generateAccessToken"),
        &[("authorization", "Bearer x")],
        Bytes::from_static(b"\xff\xfe"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);

    // Still serving.
    assert_eq!(
        exchange(&emulator, &Spec::new(emulator.config(), 0).token())
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_log_counts_requests_per_endpoint() {
    let emulator = start(config()).await;
    let federated = federated_token(&emulator).await;
    let mut unknown = Spec::new(emulator.config(), 0);
    unknown.identity.access_key_id = "AKIAUNKNOWNKEY000000".into();
    exchange(&emulator, &unknown.token()).await;
    generate(&emulator, Some(&federated), SA, storage_request()).await;
    generate(&emulator, None, SA, storage_request()).await;
    send(&emulator, Method::GET, "sts.googleapis.com", "/x", &[], "").await;

    assert_eq!(emulator.count(Endpoint::Sts), 2);
    assert_eq!(emulator.count(Endpoint::Iam), 2);
    assert_eq!(emulator.count(Endpoint::Other), 1);
    let log = emulator.log();
    let summary: Vec<(Endpoint, u16)> = log.iter().map(|e| (e.endpoint, e.status)).collect();
    assert_eq!(
        summary,
        [
            (Endpoint::Sts, 200),
            (Endpoint::Sts, 400),
            (Endpoint::Iam, 200),
            (Endpoint::Iam, 401),
            (Endpoint::Other, 404),
        ]
    );
    assert_eq!(
        log[0].outcome,
        "federated token issued to arn:aws:sts::111122223333:assumed-role/wif-push-sender/session"
    );
    assert!(
        log[1].outcome.contains("InvalidClientTokenId"),
        "{}",
        log[1].outcome
    );
    // Tokens never reach the log.
    let printed = format!("{log:?}");
    assert!(!printed.contains(&federated), "{printed}");
}

#[tokio::test]
async fn dropping_the_emulator_stops_it() {
    let emulator = start(config()).await;
    let addr = emulator.addr();
    drop(emulator);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
