//! The same component under the real `wasmtime serve` (Wasmtime's CLI, installed by
//! `scripts/test` into the user's cache directory), configured only through `--env`, delivering to the embedded
//! emulator through endpoint overrides — as the README shows.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{Server, free_port, put_object, sidecar_env_against};
use wif_push_bench::demo::Demo;
use wif_push_emulator::{EmulatorConfig, Endpoint};
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

fn serve(demo: &Demo, extra: &[&str]) -> Server {
    serve_component(demo, BUILT_COMPONENT, extra)
}

/// `wasmtime serve` on a free loopback port, killed on drop.
fn serve_component(demo: &Demo, component: &str, extra: &[&str]) -> Server {
    let port = free_port();
    let mut cmd = Command::new(wasmtime());
    cmd.args(["serve", "-S", "cli", "--addr", &format!("127.0.0.1:{port}")])
        .args(extra)
        .env_clear();
    // AWS secrets by name only (`--env NAME` passes the variable through), as the README does.
    for (name, value) in &demo.env.vars {
        cmd.arg("--env").arg(name).env(name, value);
    }
    for (name, value) in sidecar_env_against(demo) {
        cmd.arg("--env").arg(format!("{name}={value}"));
    }
    cmd.arg(component);
    Server::start(cmd, port, "Serving HTTP")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasmtime_serve_delivers_and_reuses_instances_only_when_told() {
    let demo = Demo::start(EmulatorConfig::demo()).await.unwrap();

    // Wasmtime's default for WASI 0.2: a fresh instance per request, so a token exchange each.
    let fresh = serve(&demo, &[]);
    for i in 0..2 {
        let body = vec![b'x'; 300 * 1024 * (i + 1)];
        let answer = put_object(fresh.addr, &format!("fresh-{i}.txt"), &body).await;
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
        let answer = put_object(reused.addr, &format!("reused-{i}.txt"), b"hello").await;
        assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
        // The handler runs on after its answer is sent; only an instance back in Wasmtime's
        // pool is reused, so a request arriving before that would get a fresh one.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(demo.emulator.count(Endpoint::Sts), 3);
    assert_eq!(demo.emulator.count(Endpoint::Iam), 3);

    let answer = put_object(reused.addr, "reused-0.txt", b"again").await;
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
        let answer = put_object(server.addr, &format!("kv-{i}.txt"), b"hello").await;
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
        let answer = put_object(server.addr, &format!("preset-{i}.txt"), b"hello").await;
        assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    }
    assert_eq!(demo.emulator.count(Endpoint::Sts), 3, "no exchange");
}
