//! The same sidecar component under a second WASI host: Bytecode Alliance's jco (`jco serve`,
//! Node.js with `@bytecodealliance/preview2-shim`), installed project-locally by `scripts/test`
//! from `tests/peers/jco/package-lock.json`. Configured through its environment alone and
//! delivering to the embedded emulator, as the README's "Node.js (jco)" shows.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{
    Server, free_port, http_exchange, put_object, put_object_chunked, repo_root,
    sidecar_env_against,
};
use wif_push_bench::demo::Demo;
use wif_push_emulator::{EmulatorConfig, Endpoint};
use wif_push_host::runtime::BUILT_COMPONENT;

fn jco() -> PathBuf {
    let path = std::env::var_os("WIF_PUSH_JCO")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("tests/peers/jco/node_modules/.bin/jco"));
    assert!(
        path.exists(),
        "{} not found: run scripts/test, which installs jco from tests/peers/jco with npm",
        path.display()
    );
    path
}

/// `jco serve` on a free loopback port, with the component's settings in its environment.
fn jco_serve(demo: &Demo, extra: &[&str]) -> Server {
    let port = free_port();
    let mut cmd = Command::new(jco());
    cmd.arg("serve")
        .arg(BUILT_COMPONENT)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(extra)
        .env_clear()
        .envs(std::env::var_os("PATH").map(|path| ("PATH", path)))
        .envs(demo.env.vars.iter().cloned())
        .envs(sidecar_env_against(demo));
    Server::start(cmd, port, "Server listening")
}

fn stored(demo: &Demo, name: &str) -> Vec<u8> {
    let object = demo
        .emulator
        .object(name)
        .unwrap_or_else(|| panic!("{name} is not in the bucket"));
    std::fs::read(object.path.expect("stored on disk")).unwrap()
}

fn content(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jco_serve_delivers_byte_exact_on_one_instance_with_one_exchange() {
    let demo = Demo::start(EmulatorConfig::demo()).await.unwrap();
    let server = jco_serve(&demo, &[]);
    let addr = server.addr;

    let health = http_exchange(addr, "GET /healthz HTTP/1.1", b"").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains(r#""state":"ok""#), "{health}");

    let small = content(300 * 1024);
    let answer = put_object(addr, "jco/small.bin", &small).await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(answer.contains(r#""upload":"multipart""#), "{answer}");
    assert_eq!(stored(&demo, "demo/jco/small.bin"), small);

    // A stream of unknown length, larger than a chunk: a resumable upload.
    let large = content(20 << 20);
    let answer = put_object_chunked(addr, "jco/large.bin", &large).await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(answer.contains(r#""upload":"resumable""#), "{answer}");
    assert_eq!(stored(&demo, "demo/jco/large.bin"), large);

    let again = put_object(addr, "jco/small.bin", b"other bytes").await;
    assert!(again.starts_with("HTTP/1.1 412"), "{again}");
    assert_eq!(
        stored(&demo, "demo/jco/small.bin"),
        small,
        "never overwritten"
    );

    let unsafe_name = put_object(addr, "%2e%2e/etc", b"x").await;
    assert!(unsafe_name.starts_with("HTTP/1.1 400"), "{unsafe_name}");

    let verify = http_exchange(addr, "POST /v1/verify HTTP/1.1\r\ncontent-length: 0", b"").await;
    assert!(verify.starts_with("HTTP/1.1 201"), "{verify}");

    // Two at once: jco runs them one after the other, on its one instance.
    let (a, b) = tokio::join!(
        put_object(addr, "jco/a.txt", b"a"),
        put_object(addr, "jco/b.txt", b"b"),
    );
    assert!(
        a.starts_with("HTTP/1.1 201") && b.starts_with("HTTP/1.1 201"),
        "{a}\n{b}"
    );

    // One instance for the server's life, and its token with it: one exchange in all.
    assert_eq!(demo.emulator.count(Endpoint::Sts), 1);
    assert_eq!(demo.emulator.count(Endpoint::Iam), 1);
    let log = server.log.lock().unwrap().join("\n");
    assert!(
        log.contains("PUT /v1/objects/jco/small.bin -> 201"),
        "{log}"
    );
    for (_, secret) in &demo.env.vars {
        if secret.len() >= 16 {
            assert!(!log.contains(secret.as_str()), "a secret in jco's output");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jco_serve_with_an_instance_per_request_exchanges_for_each() {
    let demo = Demo::start(EmulatorConfig::demo()).await.unwrap();
    let server = jco_serve(&demo, &["--isolate-requests", "instance"]);
    for i in 0..3 {
        let answer = put_object(server.addr, &format!("isolated-{i}.txt"), b"hello").await;
        assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    }
    assert_eq!(demo.emulator.count(Endpoint::Sts), 3);
    assert_eq!(demo.emulator.count(Endpoint::Iam), 3);
}
