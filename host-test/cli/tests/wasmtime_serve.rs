//! The same component under the real `wasmtime serve` (Wasmtime's CLI, installed by
//! `scripts/test` into the user's cache directory), configured only through `--env`, delivering to the embedded
//! emulator through endpoint overrides — as the README shows.

mod common;

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use wif_push_bench::demo::Demo;
use wif_push_emulator::{EmulatorConfig, Endpoint};
use wif_push_host::dest::sidecar_env;
use wif_push_host::runtime::{BUILT_COMPONENT, BUILT_KEYVALUE_COMPONENT};

const WASMTIME_VERSION: &str = "48.0.8";

fn wasmtime() -> PathBuf {
    let path = std::env::var_os("WIF_PUSH_WASMTIME").map(PathBuf::from);
    match path {
        Some(path) if path.exists() => path,
        _ => panic!(
            "set WIF_PUSH_WASMTIME to wasmtime-cli {WASMTIME_VERSION}: scripts/test builds it \
             into the user's cache directory and sets it"
        ),
    }
}

/// `wasmtime serve` on a free loopback port, killed on drop.
struct Serve {
    child: Child,
    addr: SocketAddr,
    /// What it printed on stderr (the component's notes among it).
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(demo: &Demo, extra: &[&str]) -> Serve {
    serve_component(demo, BUILT_COMPONENT, extra)
}

fn serve_component(demo: &Demo, component: &str, extra: &[&str]) -> Serve {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let emulator = format!("http://{}", demo.emulator.addr());
    let mut destination = demo.destination.clone();
    destination.endpoints.storage = Some(emulator.clone());
    destination.endpoints.sts = Some(format!("{emulator}/v1/token"));
    destination.endpoints.iam_credentials = Some(emulator);
    let mut cmd = Command::new(wasmtime());
    cmd.args(["serve", "-S", "cli", "--addr", &format!("127.0.0.1:{port}")])
        .args(extra)
        .env_clear()
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // AWS secrets by name only (`--env NAME` passes the variable through), as the README does.
    for (name, value) in &demo.env.vars {
        cmd.arg("--env").arg(name).env(name, value);
    }
    for (name, value) in sidecar_env(&[("default".into(), destination)]) {
        cmd.arg("--env").arg(format!("{name}={value}"));
    }
    cmd.arg(component);
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    loop {
        let line = lines
            .next()
            .expect("wasmtime serve exited before serving")
            .unwrap();
        if line.contains("Serving HTTP") {
            break;
        }
    }
    // Keep draining its log so it never blocks on a full pipe.
    let log: std::sync::Arc<std::sync::Mutex<Vec<String>>> = std::sync::Arc::default();
    let kept = std::sync::Arc::clone(&log);
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            kept.lock().unwrap().push(line);
        }
    });
    Serve {
        child,
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
        log,
    }
}

async fn put(addr: SocketAddr, name: &str, body: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT /v1/objects/{name} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: text/plain\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasmtime_serve_delivers_and_reuses_instances_only_when_told() {
    let demo = Demo::start(EmulatorConfig::demo()).await.unwrap();

    // Wasmtime's default for WASI 0.2: a fresh instance per request, so a token exchange each.
    let fresh = serve(&demo, &[]);
    for i in 0..2 {
        let body = vec![b'x'; 300 * 1024 * (i + 1)];
        let answer = put(fresh.addr, &format!("fresh-{i}.txt"), &body).await;
        assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
        assert!(answer.contains(r#""status":"delivered""#), "{answer}");
        let stored = demo
            .emulator
            .object(&format!("demo/fresh-{i}.txt"))
            .unwrap();
        assert_eq!(stored.size, body.len() as u64);
    }
    assert_eq!(demo.emulator.count(Endpoint::Sts), 2);
    drop(fresh);

    // Reused instances keep their token: one exchange for three requests.
    let reused = serve(&demo, &["--max-instance-reuse-count", "1000"]);
    for i in 0..3 {
        let answer = put(reused.addr, &format!("reused-{i}.txt"), b"hello").await;
        assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
        // The handler runs on after its answer is sent; only an instance back in Wasmtime's
        // pool is reused, so a request arriving before that would get a fresh one.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(demo.emulator.count(Endpoint::Sts), 3);
    assert_eq!(demo.emulator.count(Endpoint::Iam), 3);

    let answer = put(reused.addr, "reused-0.txt", b"again").await;
    assert!(answer.starts_with("HTTP/1.1 412"), "{answer}");
}

/// Wasmtime's own wasi-keyvalue (`-S keyvalue`, the in-memory store named by the empty
/// identifier) is not shared among instances: each bucket opened starts from the command
/// line's data and keeps its writes to itself. Under `wasmtime serve`, fresh instances of the
/// token-store build therefore still exchange once each; measured here, as the README says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasmtime_s_keyvalue_store_is_not_shared_among_instances() {
    let demo = Demo::start(EmulatorConfig::demo()).await.unwrap();
    let server = serve_component(
        &demo,
        BUILT_KEYVALUE_COMPONENT,
        &["-S", "keyvalue", "--env", "WIF_PUSH_TOKEN_STORE="],
    );
    for i in 0..3 {
        let answer = put(server.addr, &format!("kv-{i}.txt"), b"hello").await;
        assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    }
    assert_eq!(demo.emulator.count(Endpoint::Sts), 3);
    // The store opened and took each token: it is the sharing that is missing.
    let log = server.log.lock().unwrap().join("\n");
    assert!(!log.contains("token store"), "{log}");
    drop(server);

    // What every instance does see is the command line's data: a token preset there serves
    // each request without an exchange, so the component reads the store it is given.
    let c = demo.emulator.config();
    let key = format!("{}|{}|3600", c.audience(), c.service_account);
    let key = format!(
        "wif-push/access-token/{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(key.as_bytes()))
    );
    let token = demo.emulator.issue_access_token_for_tests();
    let expires = time::OffsetDateTime::now_utc().unix_timestamp() + 3000;
    let preset = format!("{key}={expires} {token}");
    let server = serve_component(
        &demo,
        BUILT_KEYVALUE_COMPONENT,
        &[
            "-S",
            "keyvalue",
            "-S",
            &format!("keyvalue-in-memory-data={preset}"),
            "--env",
            "WIF_PUSH_TOKEN_STORE=",
        ],
    );
    for i in 0..2 {
        let answer = put(server.addr, &format!("preset-{i}.txt"), b"hello").await;
        assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    }
    assert_eq!(demo.emulator.count(Endpoint::Sts), 3, "no exchange");
}
