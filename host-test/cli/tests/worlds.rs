//! The built components against the worlds their hosts offer, checked with wasm-tools' own
//! library (`wit_component::targets`, what `wasm-tools component targets` runs): the sidecar
//! build needs nothing beyond `wasi:http/proxy` and `wasi:cli`; the token-store build adds only
//! Wasmtime's `wasi:keyvalue/store`; the Spin build, built with the command in `spin.toml`, adds
//! only `wasi:config/store` and Spin's `wasi:keyvalue/store` — and runs, configured through it;
//! the wasmCloud build adds only wasmCloud's versions of the two. Fresh instances of each store
//! build share one token through the store host-test offers.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use wif_push_bench::demo::Demo;
use wif_push_emulator::{EmulatorConfig, Endpoint};
use wif_push_host::outbound::{Outbound, Policy};
use wif_push_host::runtime::{
    BUILT_COMPONENT, BUILT_KEYVALUE_COMPONENT, GuestEnv, Runtime, Session,
};
use wif_push_host::serve::{ServeOptions, Server};
use wit_parser::Resolve;

/// Test-only worlds: what each host offers the component, and what it expects it to export.
const HOSTS: &str = r#"
package wif-push-test:hosts;

/// `wasmtime serve -S cli`: it serves wasi:http/proxy and offers wasi:cli's imports.
world wasmtime-serve {
  include wasi:http/proxy@0.2.12;
  include wasi:cli/imports@0.2.12;
  include wif:push/library@0.1.0;
}

/// `wasmtime serve -S cli -S keyvalue`: the same, and Wasmtime's wasi-keyvalue.
world wasmtime-serve-keyvalue {
  include wasmtime-serve;
  import wasi:keyvalue/store@0.2.0-draft;
}

/// Spin 3's platform, the part a WASI 0.2 component may use besides its Spin-specific APIs
/// (its `platform` world includes `wasi:keyvalue/imports@0.2.0-draft2`).
world spin {
  include wasmtime-serve;
  import wasi:config/store@0.2.0-draft-2024-09-27;
  import wasi:keyvalue/store@0.2.0-draft2;
}

/// wasmCloud 1.9's host: WASI 0.2, its `wasi:config/store` (a component's config) and
/// `wasi:keyvalue/store` (served by a linked provider), both at 0.2.0-draft.
world wasmcloud {
  include wasmtime-serve;
  import wasi:config/store@0.2.0-draft;
  import wasi:keyvalue/store@0.2.0-draft;
}
"#;

fn check(wasm: &[u8], world: &str) -> anyhow::Result<()> {
    let mut resolve = Resolve::default();
    resolve.push_dir(common::repo_root().join("wit"))?;
    let package = resolve.push_str("hosts.wit", HOSTS)?;
    let world = resolve.select_world(&[package], Some(world))?;
    wit_component::targets(&resolve, world, wasm)
}

/// Runs a build command (a shell line) in the repository, as a person would.
fn build(command: &str) {
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", command]).current_dir(common::repo_root());
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().unwrap();
    assert!(status.success(), "{command} failed");
}

/// The Spin build, made with the build command `spin.toml` gives (once per test run).
fn spin_build() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = common::repo_root();
        let manifest: toml::Value =
            toml::from_str(&std::fs::read_to_string(root.join("spin.toml")).unwrap()).unwrap();
        let component = &manifest["component"]["wif-push"];
        build(component["build"]["command"].as_str().unwrap());
        root.join(component["source"].as_str().unwrap())
    })
}

/// The wasmCloud build, made with the command `deploy/wasmcloud/wadm.yaml` names (once per
/// test run).
fn wasmcloud_build() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = common::repo_root();
        let manifest = std::fs::read_to_string(root.join("deploy/wasmcloud/wadm.yaml")).unwrap();
        let command = "cargo build --profile component --lib -p wif-push --target \
                       wasm32-wasip2 --features wasmcloud";
        let said: String = manifest
            .lines()
            .filter_map(|l| l.strip_prefix('#'))
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ");
        let wanted = command.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(said.contains(&wanted), "wadm.yaml names another build");
        build(&format!("{command} --target-dir target/wasmcloud"));
        root.join("target/wasmcloud/wasm32-wasip2/component/wif_push.wasm")
    })
}

#[test]
fn the_sidecar_needs_only_what_wasmtime_serve_offers() {
    let wasm = std::fs::read(BUILT_COMPONENT).unwrap();
    check(&wasm, "wasmtime-serve").unwrap();
    check(&wasm, "spin").unwrap();
}

#[test]
fn the_spin_build_needs_wasi_config_spin_s_keyvalue_and_nothing_else() {
    let wasm = std::fs::read(spin_build()).unwrap();
    check(&wasm, "spin").unwrap();
    for host in ["wasmtime-serve", "wasmtime-serve-keyvalue"] {
        let err = format!("{:?}", check(&wasm, host).unwrap_err());
        assert!(err.contains("wasi:"), "{err}");
    }
}

#[test]
fn the_wasmcloud_build_needs_wasmcloud_s_config_and_keyvalue_and_nothing_else() {
    let wasm = std::fs::read(wasmcloud_build()).unwrap();
    check(&wasm, "wasmcloud").unwrap();
    for host in ["wasmtime-serve", "wasmtime-serve-keyvalue", "spin"] {
        let err = format!("{:?}", check(&wasm, host).unwrap_err());
        assert!(err.contains("wasi:"), "{err}");
    }
}

#[test]
fn the_token_store_build_needs_wasmtime_s_keyvalue_and_nothing_else() {
    let wasm = std::fs::read(BUILT_KEYVALUE_COMPONENT).unwrap();
    check(&wasm, "wasmtime-serve-keyvalue").unwrap();
    let err = format!("{:?}", check(&wasm, "wasmtime-serve").unwrap_err());
    assert!(err.contains("wasi:keyvalue/store"), "{err}");
    // Spin offers another version of the interface.
    assert!(check(&wasm, "spin").is_err());
}

/// Fresh instances of one runtime, as a host that makes one per request has them: with the
/// token store named, the first exchanges and the others find its token in the store; without
/// it, each exchanges. `name` names the store (or not) as the build reads its settings.
async fn fleet(component: &Path, name: impl Fn(&mut GuestEnv, bool)) {
    let demo = Demo::start(EmulatorConfig::demo()).await.unwrap();
    let runtime = Runtime::load(Some(component)).unwrap();
    let exchanges = || {
        demo.emulator
            .log()
            .iter()
            .filter(|e| e.endpoint == Endpoint::Sts)
            .count()
    };
    for named in [true, false] {
        let before = exchanges();
        for i in 0..4 {
            let outbound = Outbound::new(Policy::new(&[], demo.routes.clone())).unwrap();
            let mut env = demo.env.clone();
            name(&mut env, named);
            let mut session = Session::new(&runtime, &env, outbound).await.unwrap();
            let token = session.access_token(&demo.destination).await.unwrap();
            assert_eq!(
                token.from_cache,
                named && i > 0,
                "store named: {named}, {i}"
            );
        }
        assert_eq!(
            exchanges() - before,
            if named { 1 } else { 4 },
            "named: {named}"
        );
    }
}

/// A build served by host-test as a host that configures it only through `wasi:config`
/// (`config`, a deployment file's settings) would: no environment; the emulator plays the
/// partner those settings name, and its AWS keys stand in for the instance role the
/// deployment relies on.
async fn serve_configured(component: &Path, config: Vec<(String, String)>) -> (Demo, Server) {
    let given: std::collections::HashMap<String, String> = config.iter().cloned().collect();
    let demo = Demo::start(common::partner_config(|name| given[name].clone()))
        .await
        .unwrap();
    let identity = &demo.emulator.config().identities[0];
    let mut config = config;
    config.push(("aws_access_key_id".into(), identity.access_key_id.clone()));
    config.push((
        "aws_secret_access_key".into(),
        identity.secret_access_key.clone(),
    ));
    let env = GuestEnv {
        config,
        ..GuestEnv::default()
    };
    let outbound = Outbound::new(Policy::new(&[], demo.routes.clone())).unwrap();
    let runtime = Runtime::load(Some(component)).unwrap();
    let options = ServeOptions::new("127.0.0.1:0".parse().unwrap());
    let server = Server::start(runtime, env, outbound, options)
        .await
        .unwrap();
    (demo, server)
}

/// Fresh instances of a build configured through `wasi:config` share one token through the
/// store `token_store` names (and exchange each without it).
async fn fleet_named_by_config(component: &Path) {
    fleet(component, |env, named| {
        env.config.push((
            "token_store".into(),
            if named { "default" } else { "" }.into(),
        ));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_instances_of_the_token_store_build_exchange_once() {
    fleet(Path::new(BUILT_KEYVALUE_COMPONENT), |env, named| {
        if named {
            env.vars
                .push(("WIF_PUSH_TOKEN_STORE".into(), "tokens".into()));
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_instances_of_the_spin_build_exchange_once_through_spin_s_store() {
    // The manifest grants the store the token_store variable names, and passes the variable.
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(common::repo_root().join("spin.toml")).unwrap())
            .unwrap();
    let store = manifest["variables"]["token_store"]["default"]
        .as_str()
        .unwrap();
    let component = &manifest["component"]["wif-push"];
    let granted = component["key_value_stores"].as_array().unwrap();
    assert!(
        granted.iter().any(|s| s.as_str() == Some(store)),
        "{granted:?}"
    );
    assert_eq!(
        component["variables"]["token_store"].as_str(),
        Some("{{ token_store }}")
    );
    // As spin.toml passes it: a Spin variable, through wasi:config (empty: absent).
    let path = tokio::task::spawn_blocking(spin_build).await.unwrap();
    fleet_named_by_config(path).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spin_build_takes_its_settings_from_wasi_config() {
    let path = tokio::task::spawn_blocking(spin_build).await.unwrap();
    let demo = Demo::start(EmulatorConfig::demo()).await.unwrap();
    let c = demo.emulator.config();
    let identity = &c.identities[0];
    // As Spin's variables arrive: lowercase keys, no WIF_PUSH_ prefix, empty for unset.
    let config = [
        ("project_number", c.project_number.as_str()),
        ("pool_id", &c.pool_id),
        ("provider_id", &c.provider_id),
        ("service_account", &c.service_account),
        ("bucket", &c.bucket),
        ("prefix", "spin/"),
        ("aws_region", "us-east-1"),
        ("aws_access_key_id", &identity.access_key_id),
        ("aws_secret_access_key", &identity.secret_access_key),
        (
            "aws_session_token",
            identity.session_token.as_deref().unwrap_or(""),
        ),
    ];
    let env = GuestEnv {
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..GuestEnv::default()
    };
    let outbound = Outbound::new(Policy::new(&[], demo.routes.clone())).unwrap();
    let mut options = ServeOptions::new("127.0.0.1:0".parse().unwrap());
    options.max_concurrent = 1;
    options.grace = Duration::from_secs(10);
    let runtime = Runtime::load(Some(path.as_path())).unwrap();
    let server = Server::start(runtime, env, outbound, options)
        .await
        .unwrap();
    let addr = server.addr();
    let request = "PUT /v1/objects/from-spin.txt HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 5\r\n\
                   connection: close\r\n\r\nhello";
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut answer)
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(demo.emulator.object("spin/from-spin.txt").is_some());
    assert_eq!(demo.emulator.count(Endpoint::Sts), 1);
    server.shutdown().await;
}

/// `deploy/spinkube/spinapp.yaml` as SpinKube would hand it to the Spin build: its variables
/// (resolved from its ConfigMap) through `wasi:config`; requests addressed to its Service's
/// name, and its probes' `Host: localhost`, are answered, a bare pod address is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spinapp_s_variables_configure_the_spin_build_behind_its_service() {
    let docs = common::yaml_documents("deploy/spinkube/spinapp.yaml");
    let of_kind = |kind: &str| docs.iter().find(|d| d["kind"] == kind).unwrap().clone();
    let (config_map, app) = (of_kind("ConfigMap"), of_kind("SpinApp"));
    let variables: Vec<(String, String)> = app["spec"]["variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let value = match v["valueFrom"]["configMapKeyRef"]["key"].as_str() {
                Some(key) => &config_map["data"][key],
                None => &v["value"],
            };
            (
                v["name"].as_str().unwrap().into(),
                value.as_str().unwrap().into(),
            )
        })
        .collect();
    let prefix = variables
        .iter()
        .find(|(n, _)| n == "prefix")
        .unwrap()
        .1
        .clone();
    let path = tokio::task::spawn_blocking(spin_build).await.unwrap();
    let (demo, server) = serve_configured(path, variables).await;
    let ask = |host: &'static str, head: &'static str, body: &'static [u8]| {
        let addr = server.addr();
        async move {
            let head = format!("{head}\r\nhost: {host}\r\ncontent-length: {}", body.len());
            common::http_exchange(addr, &head, body).await
        }
    };
    let service = "wif-push.exports.svc.cluster.local";
    let put = ask(
        service,
        "PUT /v1/objects/orders.csv HTTP/1.1",
        b"id,total\n",
    )
    .await;
    assert!(put.starts_with("HTTP/1.1 201"), "{put}");
    assert!(
        demo.emulator
            .object(&format!("{prefix}orders.csv"))
            .is_some()
    );
    let probe = ask("localhost", "GET /healthz HTTP/1.1", b"").await;
    assert!(probe.starts_with("HTTP/1.1 200"), "{probe}");
    let bare = ask("10.1.2.3", "GET /healthz HTTP/1.1", b"").await;
    assert!(bare.starts_with("HTTP/1.1 403"), "{bare}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_instances_of_the_wasmcloud_build_exchange_once_through_its_store() {
    // As wasmCloud passes it: the component's config, through wasi:config.
    let path = tokio::task::spawn_blocking(wasmcloud_build).await.unwrap();
    fleet_named_by_config(path).await;
}

/// `deploy/wasmcloud/wadm.yaml` as wasmCloud hands it to the wasmCloud build: the component's
/// config through `wasi:config`, and no environment at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wadm_application_s_config_configures_the_wasmcloud_build() {
    let docs = common::yaml_documents("deploy/wasmcloud/wadm.yaml");
    let component = docs[0]["spec"]["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "component")
        .unwrap();
    let config: Vec<(String, String)> = component["properties"]["config"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["properties"].as_object().unwrap().clone())
        .map(|(k, v)| (k, v.as_str().unwrap().to_owned()))
        .collect();
    let prefix = config
        .iter()
        .find(|(n, _)| n == "prefix")
        .unwrap()
        .1
        .clone();
    let path = tokio::task::spawn_blocking(wasmcloud_build).await.unwrap();
    let (demo, server) = serve_configured(path, config).await;
    let head = "PUT /v1/objects/orders.csv HTTP/1.1\r\ncontent-length: 9";
    let put = common::http_exchange(server.addr(), head, b"id,total\n").await;
    assert!(put.starts_with("HTTP/1.1 201"), "{put}");
    assert!(
        demo.emulator
            .object(&format!("{prefix}orders.csv"))
            .is_some()
    );
    server.shutdown().await;
}
