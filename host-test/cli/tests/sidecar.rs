//! The sidecar world served by `host-test serve` (in process and as the CLI) against the
//! embedded emulator, driven by a real HTTP client (hyper) and, for malformed requests, by raw
//! bytes on a socket.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use wif_push_bench::demo::Demo;
use wif_push_emulator::{EmulatorConfig, Endpoint};
use wif_push_host::dest::sidecar_env;
use wif_push_host::outbound::{Outbound, Policy};
use wif_push_host::runtime::{GuestEnv, Runtime};
use wif_push_host::serve::{ServeOptions, Server};

const MIB: usize = 1024 * 1024;

async fn serve(demo: &Demo, max_concurrent: usize) -> Server {
    let mut env = demo.env.clone();
    env.vars
        .extend(sidecar_env(&[("default".into(), demo.destination.clone())]));
    start(Runtime::load(None).unwrap(), env, demo, max_concurrent).await
}

async fn start(runtime: Runtime, env: GuestEnv, demo: &Demo, max_concurrent: usize) -> Server {
    let mut options = ServeOptions::new("127.0.0.1:0".parse().unwrap());
    options.max_concurrent = max_concurrent;
    options.grace = Duration::from_secs(60);
    start_with(runtime, env, demo, options).await
}

async fn start_with(runtime: Runtime, env: GuestEnv, demo: &Demo, options: ServeOptions) -> Server {
    let outbound = Outbound::new(Policy::new(&[], demo.routes.clone())).unwrap();
    Server::start(runtime, env, outbound, options)
        .await
        .unwrap()
}

/// The sidecar for `destination` (the demo's, changed) with `options`.
async fn serve_with(
    demo: &Demo,
    destination: wif_push_host::runtime::Settings,
    options: ServeOptions,
) -> Server {
    let mut env = demo.env.clone();
    env.vars
        .extend(sidecar_env(&[("default".into(), destination)]));
    start_with(Runtime::load(None).unwrap(), env, demo, options).await
}

/// Sends one request with hyper's client; returns the status and the JSON answer.
async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> (u16, Value) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = client
        .request(request.body(Full::new(body)).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {bytes:?}"));
    (status, json)
}

/// Writes `request` on a fresh connection and returns what came back.
async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

fn bytes_of(size: usize, seed: u64) -> Bytes {
    let mut x = seed | 1;
    let mut data = Vec::with_capacity(size + 8);
    while data.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(size);
    Bytes::from(data)
}

fn crc32c_b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(crc32c::crc32c(data).to_be_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_small_and_large_each_get_their_receipt_and_one_token_exchange() {
    let demo = Demo::start(EmulatorConfig::demo()).await.unwrap();
    let server = serve(&demo, 4).await;
    let addr = server.addr();

    let mut sizes: Vec<usize> = (0..24).map(|i| (i * 37_117) % (600 * 1024)).collect();
    sizes.extend([100 * MIB, 100 * MIB + 1]);
    let mut tasks = Vec::new();
    for (i, size) in sizes.iter().copied().enumerate() {
        let body = bytes_of(size, i as u64 + 1);
        tasks.push(tokio::spawn(async move {
            let name = format!("batch/file-{i}.bin");
            let expected = crc32c_b64(&body);
            let path = format!("/v1/objects/{name}");
            let headers = [("content-type", "text/csv"), ("x-goog-meta-batch", "17")];
            let (status, receipt) = send(addr, "PUT", &path, &headers, body).await;
            (name, size, expected, status, receipt)
        }));
    }
    for task in tasks {
        let (name, size, crc32c, status, receipt) = task.await.unwrap();
        assert_eq!(status, 201, "{name}: {receipt}");
        assert_eq!(receipt["status"], "delivered", "{receipt}");
        assert_eq!(receipt["name"], format!("demo/{name}"));
        assert_eq!(receipt["size"], size as u64);
        assert_eq!(receipt["crc32c"], crc32c, "{name}");
        let stored = demo.emulator.object(&format!("demo/{name}")).unwrap();
        assert_eq!(stored.size, size as u64);
        assert_eq!(stored.crc32c, crc32c);
        assert_eq!(stored.content_type, "text/csv");
        assert_eq!(stored.metadata.get("batch").map(String::as_str), Some("17"));
    }
    assert_eq!(demo.emulator.count(Endpoint::Sts), 1, "one token exchange");
    assert_eq!(demo.emulator.count(Endpoint::Iam), 1, "one impersonation");
    assert!(
        (2..=4).contains(&server.instances()),
        "{} instances",
        server.instances()
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_verify_conflict_and_chunked_bodies() {
    let demo = Demo::start(EmulatorConfig::demo()).await.unwrap();
    let server = serve(&demo, 2).await;
    let addr = server.addr();

    let (status, health) = send(addr, "GET", "/healthz", &[], Bytes::new()).await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["destinations"][0]["bucket"], "partner-inbox");
    let text = health.to_string();
    let secret = &demo.emulator.config().identities[0].secret_access_key;
    assert!(!text.contains(secret.as_str()));

    let (status, receipt) = send(addr, "POST", "/v1/verify", &[], Bytes::new()).await;
    assert_eq!(status, 201, "{receipt}");
    assert!(
        receipt["name"]
            .as_str()
            .unwrap()
            .starts_with("demo/.wif-push/handshake-")
    );

    let body = Bytes::from_static(b"first");
    let (status, _) = send(addr, "PUT", "/v1/objects/once.txt", &[], body).await;
    assert_eq!(status, 201);
    let body = Bytes::from_static(b"second");
    let (status, error) = send(addr, "PUT", "/v1/objects/once.txt", &[], body).await;
    assert_eq!(status, 412, "{error}");
    assert_eq!(error["error"]["step"], "upload");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("never overwritten"),
        "{error}"
    );
    let stored = demo.emulator.object("demo/once.txt").unwrap();
    assert_eq!(stored.size, 5, "the first object stands");

    // A body of unknown length (chunked), larger than one resumable chunk.
    let data = bytes_of(20 * MIB + 3, 99);
    let mut request = format!(
        "PUT /v1/objects/stream.bin HTTP/1.1\r\nhost: {addr}\r\ntransfer-encoding: chunked\r\n\
         connection: close\r\n\r\n"
    )
    .into_bytes();
    for piece in data.chunks(1 << 20) {
        request.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        request.extend_from_slice(piece);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let answer = raw(addr, &request).await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let stored = demo.emulator.object("demo/stream.bin").unwrap();
    assert_eq!(stored.size, data.len() as u64);
    assert_eq!(stored.crc32c, crc32c_b64(&data));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_clear_4xx_and_create_nothing() {
    let demo = Demo::start(EmulatorConfig::demo()).await.unwrap();
    let server = serve(&demo, 2).await;
    let addr = server.addr();
    let put = |path: &str| {
        format!(
            "PUT {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi"
        )
    };
    let cases: &[(&str, &str, &str)] = &[
        ("/v1/objects/", "400", "missing"),
        ("/v1/objects/../etc/passwd", "400", "\\\"..\\\""),
        ("/v1/objects/%2e%2e/secret", "400", "\\\"..\\\""),
        ("/v1/objects/a/%2E%2E/%2e%2e/b", "400", "\\\"..\\\""),
        ("/v1/objects//leading", "400", "empty part"),
        ("/v1/objects/a%00b", "400", "control"),
        ("/v1/objects/a?ifGenerationMatch=1", "400", "query"),
        ("/v1/files/a", "404", "PUT /v1/objects/NAME"),
        ("/v1/destinations/other/objects/a", "404", "no destination"),
    ];
    for (path, status, words) in cases {
        let answer = raw(addr, put(path).as_bytes()).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{path}: {answer}"
        );
        assert!(answer.contains(words), "{path}: {answer}");
    }
    let answer = raw(
        addr,
        b"GET /v1/objects/a.txt HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("allow: put"),
        "{answer}"
    );

    // A request head beyond 64 KiB is refused by the server before the component sees it.
    let huge = "v".repeat(1 << 20);
    let request = format!(
        "PUT /v1/objects/h.txt HTTP/1.1\r\nhost: 127.0.0.1\r\nx-filler: {huge}\r\n\
         content-length: 2\r\nconnection: close\r\n\r\nhi"
    );
    let answer = raw(addr, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.200}");

    let request = format!(
        "PUT /v1/objects/m.txt HTTP/1.1\r\nhost: 127.0.0.1\r\nx-goog-meta-big: {}\r\n\
         content-length: 2\r\nconnection: close\r\n\r\nhi",
        "v".repeat(9000)
    );
    let answer = raw(addr, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:.200}");
    assert!(answer.contains("8192"), "{answer:.400}");

    assert!(
        demo.emulator.objects().is_empty(),
        "refused requests created objects"
    );
    assert_eq!(demo.emulator.count(Endpoint::Gcs), 0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_mid_body_leaves_no_object() {
    let demo = Demo::start(EmulatorConfig::demo()).await.unwrap();
    let server = serve(&demo, 2).await;
    let addr = server.addr();
    let part = bytes_of(3 * MIB, 5);
    for (name, framing) in [
        ("small.bin", "content-length: 4194304"),
        ("large.bin", "content-length: 67108864"),
        ("chunked.bin", "transfer-encoding: chunked"),
    ] {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head =
            format!("PUT /v1/objects/{name} HTTP/1.1\r\nhost: 127.0.0.1\r\n{framing}\r\n\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        if framing.starts_with("transfer") {
            stream
                .write_all(format!("{:x}\r\n", part.len()).as_bytes())
                .await
                .unwrap();
            stream.write_all(&part).await.unwrap();
            stream.write_all(b"\r\n").await.unwrap();
        } else {
            stream.write_all(&part).await.unwrap();
        }
        stream.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(stream);
    }
    // Every aborted request has come back from the component before the next one is served.
    let (status, _) = send(addr, "PUT", "/v1/objects/after.txt", &[], "ok".into()).await;
    assert_eq!(status, 201);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let names: Vec<String> = demo
        .emulator
        .objects()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(names, vec!["demo/after.txt".to_owned()]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_an_upload_in_flight_finish() {
    let demo = Demo::start(EmulatorConfig::demo()).await.unwrap();
    let server = serve(&demo, 2).await;
    let addr = server.addr();
    let body = bytes_of(64 * MIB, 7);
    let upload =
        tokio::spawn(
            async move { send(addr, "PUT", "/v1/objects/in-flight.bin", &[], body).await },
        );
    // Wait until the upload has reached Cloud Storage, then ask the server to stop.
    while demo.emulator.count(Endpoint::Gcs) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.shutdown().await;
    let (status, receipt) = upload.await.unwrap();
    assert_eq!(status, 201, "{receipt}");
    assert_eq!(receipt["size"], 64 * MIB as u64);
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_destinations_each_get_their_own_path() {
    let demo = Demo::start(EmulatorConfig::demo()).await.unwrap();
    let mut other = demo.destination.clone();
    other.prefix = Some("partner-b/".into());
    let mut env = demo.env.clone();
    env.vars.extend(sidecar_env(&[
        ("partner-a".into(), demo.destination.clone()),
        ("partner-b".into(), other),
    ]));
    let server = start(Runtime::load(None).unwrap(), env, &demo, 2).await;
    let addr = server.addr();
    let path = "/v1/destinations/partner-b/objects/x.txt";
    let (status, receipt) = send(addr, "PUT", path, &[], "b".into()).await;
    assert_eq!(status, 201, "{receipt}");
    assert_eq!(receipt["name"], "partner-b/x.txt");
    let path = "/v1/destinations/partner-a/objects/x.txt";
    let (status, receipt) = send(addr, "PUT", path, &[], "a".into()).await;
    assert_eq!(status, 201, "{receipt}");
    assert_eq!(receipt["name"], "demo/x.txt");
    let (status, error) = send(addr, "PUT", "/v1/objects/x.txt", &[], "?".into()).await;
    assert_eq!(status, 400);
    assert!(
        error.to_string().contains("partner-a, partner-b"),
        "{error}"
    );
    let (status, health) = send(addr, "GET", "/healthz", &[], Bytes::new()).await;
    assert_eq!(status, 200);
    assert_eq!(health["destinations"].as_array().unwrap().len(), 2);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misconfigured_sidecar_says_which_variable_to_fix() {
    let demo = Demo::start(EmulatorConfig::demo()).await.unwrap();
    let mut env = demo.env.clone();
    let mut destination = demo.destination.clone();
    destination.bucket = None;
    env.vars
        .extend(sidecar_env(&[("default".into(), destination)]));
    let server = start(Runtime::load(None).unwrap(), env, &demo, 1).await;
    let addr = server.addr();
    let (status, health) = send(addr, "GET", "/healthz", &[], Bytes::new()).await;
    assert_eq!(status, 503);
    assert!(health.to_string().contains("WIF_PUSH_BUCKET"), "{health}");
    let (status, error) = send(addr, "PUT", "/v1/objects/a", &[], "a".into()).await;
    assert_eq!(status, 422);
    assert_eq!(error["error"]["step"], "config");
    server.shutdown().await;

    // Credentials Google refuses: a diagnosis, and no trace of the secrets.
    let canaries = ["canary-secret-key-3f9a", "canary-session-token-77c1"];
    let mut env = GuestEnv::default();
    env.vars.extend([
        ("AWS_ACCESS_KEY_ID".to_owned(), "AKIDCANARY".to_owned()),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), canaries[0].to_owned()),
        ("AWS_SESSION_TOKEN".to_owned(), canaries[1].to_owned()),
    ]);
    env.vars
        .extend(sidecar_env(&[("default".into(), demo.destination.clone())]));
    let server = start(Runtime::load(None).unwrap(), env, &demo, 1).await;
    let (status, error) = send(server.addr(), "PUT", "/v1/objects/a", &[], "a".into()).await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["error"]["step"], "sts-exchange", "{error}");
    let text = error.to_string();
    assert!(canaries.iter().all(|c| !text.contains(c)), "{text}");
    assert!(demo.emulator.objects().is_empty());
    server.shutdown().await;
}

#[test]
fn the_cli_serves_until_sigterm_and_refuses_remote_addresses() {
    let refused = common::host_test(
        &["serve", "--config", "x.toml", "--listen", "0.0.0.0:8787"],
        "",
    );
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("loopback"), "{stderr}");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let demo = runtime
        .block_on(Demo::start(EmulatorConfig::demo()))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let c = demo.emulator.config();
    let dest = dir.path().join("dest.toml");
    std::fs::write(
        &dest,
        format!(
            "project_number = \"{}\"\npool_id = \"{}\"\nprovider_id = \"{}\"\n\
             service_account = \"{}\"\nbucket = \"{}\"\naws_region = \"us-east-1\"\n",
            c.project_number, c.pool_id, c.provider_id, c.service_account, c.bucket
        ),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_host-test"));
    cmd.args(["serve", "--config"])
        .arg(&dest)
        .args(["--listen", "127.0.0.1:0"])
        .env_clear()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for route in &demo.routes {
        cmd.arg("--connect-to")
            .arg(format!("{}={}", route.host, route.target));
    }
    for (name, value) in &demo.env.vars {
        cmd.env(name, value);
    }
    let mut child = cmd.spawn().unwrap();
    let addr = common::served_at(&mut child);
    let (status, receipt) = runtime.block_on(send(
        addr,
        "PUT",
        "/v1/objects/cli.txt",
        &[],
        "from the CLI".into(),
    ));
    assert_eq!(status, 201, "{receipt}");
    common::sigterm(&child);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("stopping"), "{stderr}");
    let secret = &c.identities[0].secret_access_key;
    assert!(!stderr.contains(secret.as_str()));
    assert!(!String::from_utf8_lossy(&output.stdout).contains(secret.as_str()));
    assert!(demo.emulator.object("cli.txt").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_and_rebound_names_cannot_write_into_the_bucket() {
    let demo = Demo::start(EmulatorConfig::demo()).await.unwrap();
    let server = serve(&demo, 2).await;
    let addr = server.addr();
    // DNS rebinding: a page whose name resolves to 127.0.0.1.
    let rebound = raw(
        addr,
        b"PUT /v1/objects/evil.txt HTTP/1.1\r\nhost: attacker.example:8787\r\n\
          content-length: 4\r\nconnection: close\r\n\r\nevil",
    )
    .await;
    assert!(rebound.starts_with("HTTP/1.1 403"), "{rebound}");
    assert!(rebound.contains("loopback"), "{rebound}");
    // A cross-site form post, which a browser sends without a preflight.
    let (status, error) = send(
        addr,
        "POST",
        "/v1/verify",
        &[
            ("origin", "https://attacker.example"),
            ("content-type", "text/plain"),
        ],
        Bytes::from_static(b"x"),
    )
    .await;
    assert_eq!(status, 403, "{error}");
    let (status, error) = send(
        addr,
        "POST",
        "/v1/verify",
        &[("sec-fetch-site", "cross-site")],
        Bytes::new(),
    )
    .await;
    assert_eq!(status, 403, "{error}");
    let (status, error) = send(
        addr,
        "POST",
        "/v1/verify",
        &[("content-type", "application/x-www-form-urlencoded")],
        Bytes::from_static(b"a=b"),
    )
    .await;
    assert_eq!(status, 415, "{error}");
    assert!(
        demo.emulator.objects().is_empty(),
        "nothing was created: {:?}",
        demo.emulator
            .objects()
            .iter()
            .map(|o| o.name.clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(
        demo.emulator.count(Endpoint::Sts),
        0,
        "no token was even asked for"
    );
    // The application beside it still delivers.
    let (status, receipt) = send(
        addr,
        "PUT",
        "/v1/objects/ok.txt",
        &[],
        Bytes::from_static(b"ok"),
    )
    .await;
    assert_eq!(status, 201, "{receipt}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapped_instance_is_dropped_and_the_server_keeps_serving() {
    let demo = Demo::start(EmulatorConfig::demo()).await.unwrap();
    let mut destination = demo.destination.clone();
    // A 64 MiB chunk buffer cannot fit the 32 MiB an instance may have: its allocation traps.
    destination.single_request_limit = Some(256 * 1024);
    destination.chunk_size = Some(64 << 20);
    let mut options = ServeOptions::new("127.0.0.1:0".parse().unwrap());
    options.max_concurrent = 1;
    options.guest_memory_limit = Some(32 << 20);
    let server = serve_with(&demo, destination, options).await;
    let addr = server.addr();
    let (status, answer) = send(addr, "PUT", "/v1/objects/big.bin", &[], bytes_of(MIB, 3)).await;
    assert_eq!(status, 500, "{answer}");
    assert_eq!(answer["error"]["step"], "component", "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("trapped"), "{message}");
    assert!(!message.contains("backtrace"), "{message}");
    for name in ["after-1.txt", "after-2.txt"] {
        let (status, receipt) = send(
            addr,
            "PUT",
            &format!("/v1/objects/{name}"),
            &[],
            "ok".into(),
        )
        .await;
        assert_eq!(status, 201, "{receipt}");
    }
    assert!(demo.emulator.object("demo/big.bin").is_none());
    assert_eq!(
        server.instances(),
        2,
        "the trapped instance was replaced, once"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_times_out_and_frees_its_slot() {
    let demo = Demo::start(EmulatorConfig::demo()).await.unwrap();
    let mut options = ServeOptions::new("127.0.0.1:0".parse().unwrap());
    options.max_concurrent = 1;
    options.body_timeout = Duration::from_secs(1);
    let server = serve_with(&demo, demo.destination.clone(), options).await;
    let addr = server.addr();
    let mut stalled = Vec::new();
    for (name, framing) in [
        ("stalled.bin", "content-length: 1048576"),
        ("stalled-chunked.bin", "transfer-encoding: chunked"),
    ] {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head =
            format!("PUT /v1/objects/{name} HTTP/1.1\r\nhost: localhost\r\n{framing}\r\n\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        if framing.starts_with("transfer") {
            stream.write_all(b"400\r\n").await.unwrap();
        }
        stream.write_all(&[b'x'; 1000]).await.unwrap();
        stream.flush().await.unwrap();
        // Held open, sending nothing more.
        stalled.push(stream);
    }
    let (status, receipt) = tokio::time::timeout(
        Duration::from_secs(10),
        send(addr, "PUT", "/v1/objects/after.txt", &[], "ok".into()),
    )
    .await
    .expect("the stalled bodies still hold the only slot");
    assert_eq!(status, 201, "{receipt}");
    let names: Vec<String> = demo
        .emulator
        .objects()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(names, vec!["demo/after.txt".to_owned()]);
    drop(stalled);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_host_or_with_two_lengths_is_a_400() {
    let demo = Demo::start(EmulatorConfig::demo()).await.unwrap();
    let server = serve(&demo, 1).await;
    let addr = server.addr();
    let answer = raw(
        addr,
        b"PUT /v1/objects/nohost.txt HTTP/1.1\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("Host header"), "{answer}");
    assert!(answer.contains("application/json"), "{answer}");
    let answer = raw(
        addr,
        b"PUT /v1/objects/both.txt HTTP/1.1\r\nhost: localhost\r\ncontent-length: 9\r\n\
          transfer-encoding: chunked\r\nconnection: close\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
    )
    .await;
    // Two lengths: a proxy in front may have read the other one, so it is refused whole.
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains("Content-Length and Transfer-Encoding"),
        "{answer}"
    );
    // The same after an ordinary request on one connection: each request is judged apart.
    let answer = raw(
        addr,
        b"PUT /v1/objects/first.txt HTTP/1.1\r\nhost: localhost\r\ncontent-length: 5\r\n\r\nfirst\
          PUT /v1/objects/both.txt HTTP/1.1\r\nhost: localhost\r\ntransfer-encoding: chunked\r\n\
          content-length: 9\r\nconnection: close\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(answer.contains("HTTP/1.1 400"), "{answer}");
    let (status, receipt) = send(addr, "PUT", "/v1/objects/fine.txt", &[], "ok".into()).await;
    assert_eq!(status, 201, "{receipt}");
    let names: Vec<String> = demo
        .emulator
        .objects()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(
        names,
        vec!["demo/fine.txt".to_owned(), "demo/first.txt".to_owned()]
    );
    server.shutdown().await;
}

#[test]
fn startup_names_a_broken_destination_and_serves_the_others() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let demo = runtime
        .block_on(Demo::start(EmulatorConfig::demo()))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, common::dest_toml(&demo, "")).unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        common::dest_toml(&demo, "").replace("bucket = \"", "bucket = \"gs://"),
    )
    .unwrap();
    let args: Vec<std::ffi::OsString> = vec![
        "serve".into(),
        "--config".into(),
        format!("good={}", good.display()).into(),
        "--config".into(),
        format!("bad={}", bad.display()).into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
    ];
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let mut child = common::host_test_against(&demo, &args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let addr = common::served_at(&mut child);
    let (status, receipt) = runtime.block_on(send(
        addr,
        "PUT",
        "/v1/destinations/good/objects/ok.txt",
        &[],
        "fine".into(),
    ));
    assert_eq!(status, 201, "{receipt}");
    common::sigterm(&child);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("destination bad"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(line.contains("bucket") && line.contains("422"), "{line}");
    assert!(!stderr.contains("destination good"), "{stderr}");
}

#[test]
fn emulate_removes_its_store_on_sigterm() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_host-test"))
        .args(["emulate", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut dir = None;
    for _ in 0..3 {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
        if let Some(rest) = line.trim().strip_prefix("objects are kept in ") {
            dir = rest
                .strip_suffix(" until it stops")
                .map(std::path::PathBuf::from);
            break;
        }
    }
    let dir = dir.expect("the store's directory is printed");
    assert!(dir.is_dir(), "{}", dir.display());
    common::sigterm(&child);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!dir.exists(), "{} is left behind", dir.display());
}

/// `GET /v1/doctor`: the same checklist as `host-test doctor`, 200 when the handshake object
/// landed, 503 with the failed step and its fix otherwise; a destination whose configuration
/// is refused is the checklist's first line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doctor_serves_the_checklist() {
    let demo = Demo::start(EmulatorConfig::demo()).await.unwrap();
    let server = serve(&demo, 2).await;
    let (status, checklist) = send(server.addr(), "GET", "/v1/doctor", &[], Bytes::new()).await;
    assert_eq!(status, 200, "{checklist}");
    assert_eq!(checklist["passed"], true);
    assert_eq!(checklist["checks"].as_array().unwrap().len(), 10);
    let name = checklist["receipt"]["name"].as_str().unwrap();
    assert!(demo.emulator.object(name).is_some(), "{checklist}");
    // A second run exchanges again: a doctor proves the chain, not the cache.
    let (status, _) = send(server.addr(), "GET", "/v1/doctor", &[], Bytes::new()).await;
    assert_eq!(status, 200);
    let exchanges = |demo: &Demo| {
        demo.emulator
            .log()
            .iter()
            .filter(|e| e.endpoint == Endpoint::Sts && e.method == "POST")
            .count()
    };
    assert_eq!(exchanges(&demo), 2);

    let broken = Demo::start(EmulatorConfig {
        misconfig: vec![wif_push_emulator::Misconfig::MissingWorkloadIdentityUser],
        ..EmulatorConfig::demo()
    })
    .await
    .unwrap();
    let server = serve(&broken, 2).await;
    let (status, checklist) = send(server.addr(), "GET", "/v1/doctor", &[], Bytes::new()).await;
    assert_eq!(status, 503, "{checklist}");
    let last = checklist["checks"].as_array().unwrap().last().unwrap();
    assert_eq!(last["step"], "impersonation");
    assert!(last["fix"].as_str().unwrap().contains("principalSet://"));
    assert!(!checklist.to_string().contains("ya29."));

    let mut destination = demo.destination.clone();
    destination.bucket = Some("Not A Bucket".into());
    let server = serve_with(
        &demo,
        destination,
        ServeOptions::new("127.0.0.1:0".parse().unwrap()),
    )
    .await;
    let (status, checklist) = send(server.addr(), "GET", "/v1/doctor", &[], Bytes::new()).await;
    assert_eq!(status, 503, "{checklist}");
    assert_eq!(checklist["checks"][0]["step"], "config");
    assert_eq!(checklist["checks"][0]["passed"], false);
    let saw = checklist["checks"][0]["saw"].as_str().unwrap();
    assert!(saw.contains("BUCKET"), "{saw}");
    let (status, _) = send(server.addr(), "POST", "/v1/doctor", &[], Bytes::new()).await;
    assert_eq!(status, 405);
}
