//! The deployment files in `deploy/`: each Kubernetes object validated against Kubernetes' own
//! schemas, the SpinApp against SpinKube's CRD and `spin.toml`, the wasmCloud application
//! against wadm's schema, the Dockerfile against what the manifests expect of the image (`tests/peers/manifests.py`); a wrong field in each is caught
//! and named. Then what they say is run: the Deployment's sidecar command and probe, the
//! Indexed Job's workers (every index at once, `$(VAR)` expanded as Kubernetes does), each
//! against the emulator playing the partner that the manifests' destination names.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, host_test_against, manifests, repo_root};
use serde_json::Value;
use wif_push_bench::demo::Demo;
use wif_push_emulator::{Endpoint, S3Object};
use wif_push_host::runtime::BUILT_COMPONENT;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every deployment file (not the third-party schemas).
fn deployment_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![repo_root().join("deploy")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().unwrap() != "schemas" {
                    dirs.push(path);
                }
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The documents of a YAML file in `deploy/`.
fn documents(relative: &str) -> Vec<Value> {
    common::yaml_documents(&format!("deploy/{relative}"))
}

fn document<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_deployment_file_validates() {
    let files = deployment_files();
    assert!(files.len() >= 6, "{files:?}");
    let args: Vec<&OsStr> = std::iter::once("check".as_ref())
        .chain(files.iter().map(|f| f.as_os_str()))
        .collect();
    let out = manifests(&args);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    for file in &files {
        assert!(said.contains(&format!("ok {}", file.display())), "{said}");
    }
    for object in [
        "Deployment/report-service",
        "Job/partner-a-2026-12-07",
        "ServiceAccount/partner-a-delivery",
        "ConfigMap/partner-a-destination",
        "SpinApp/wif-push",
        "NetworkPolicy/wif-push-clients",
        "Application/wif-push",
    ] {
        assert!(said.contains(object), "{object} not checked: {said}");
    }
}

#[test]
fn a_wrong_field_in_each_file_is_caught_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "kubernetes/sidecar.yaml",
            "restartPolicy: Always",
            "restartPolicy: Sometimes",
            "initContainers.0.restartPolicy: 'Sometimes' is not one of",
        ),
        (
            "kubernetes/sidecar.yaml",
            "readOnlyRootFilesystem: true",
            "readOnlyRootFileSystem: true",
            "'readOnlyRootFileSystem' was unexpected",
        ),
        (
            "kubernetes/batch-job.yaml",
            "completionMode: Indexed",
            "completionMode: Indexd",
            "spec.completionMode: 'Indexd' is not one of",
        ),
        (
            "kubernetes/batch-job.yaml",
            "backoffLimitPerIndex: 3",
            "backoffLimitPerIndex: three",
            "'three' is not of type 'integer'",
        ),
        (
            "kubernetes/destination.yaml",
            "\ndata:",
            "\ndatas:",
            "'datas' was unexpected",
        ),
        (
            "spinkube/spinapp.yaml",
            "replicas: 3",
            "replicas: \"3\"",
            "spec.replicas: '3' is not of type 'integer'",
        ),
        (
            "spinkube/spinapp.yaml",
            "  executor: containerd-shim-spin\n",
            "",
            "'executor' is a required property",
        ),
        (
            "spinkube/spinapp.yaml",
            "- name: sidecar_hosts",
            "- name: sidecar_host",
            "'sidecar_host' is not a variable of spin.toml",
        ),
        (
            "spinkube/spinapp.yaml",
            "- name: bucket\n",
            "- name: buckets\n",
            "spin.toml's required variable 'bucket' is not set",
        ),
        (
            "spinkube/runtime-config.toml",
            "[key_value_store.default]",
            "[key_value_store.tokens]",
            "no store 'default'",
        ),
        (
            "wasmcloud/wadm.yaml",
            "instances: 4",
            "instances: \"4\"",
            "traits.0.properties.instances: '4' is not of type 'integer'",
        ),
        (
            "wasmcloud/wadm.yaml",
            "interfaces: [outgoing-handler]",
            "interfaces: [outgoing-handlers]",
            "no link to wasi:http/outgoing-handler",
        ),
        (
            "wasmcloud/wadm.yaml",
            "  annotations:\n",
            "  labels:\n",
            "'annotations' is a required property",
        ),
        (
            "Dockerfile",
            "USER 65532:65532",
            "USER root",
            "at USER: the image must run as a numeric non-root user",
        ),
        (
            "Dockerfile",
            "/out/wif_push-sidecar.wasm /usr/local/share/wif-push/wif_push-sidecar.wasm",
            "/out/wif_push-sidecar.wasm /usr/local/share/wif-push/sidecar.wasm",
            "is not copied into the image",
        ),
    ];
    for (i, (file, from, to, expected)) in cases.iter().enumerate() {
        let original = std::fs::read_to_string(repo_root().join("deploy").join(file)).unwrap();
        assert!(original.contains(from), "{file} has no {from:?}");
        let case_dir = dir.path().join(i.to_string());
        std::fs::create_dir(&case_dir).unwrap();
        let path = case_dir.join(Path::new(file).file_name().unwrap());
        std::fs::write(&path, original.replacen(from, to, 1)).unwrap();
        let out = manifests(&["check".as_ref(), path.as_os_str()]);
        let said = text(&out.stdout);
        assert!(!out.status.success(), "{file} with {to:?} passed: {said}");
        assert!(said.contains(expected), "{file} with {to:?}: {said}");
    }
}

/// The destination the manifests share (destination.yaml's ConfigMap), and an emulator that
/// plays exactly that partner.
struct Partner {
    dest_toml: String,
    demo: Demo,
    _runtime: tokio::runtime::Runtime,
}

fn partner(s3_objects: Vec<S3Object>) -> Partner {
    let destination = documents("kubernetes/destination.yaml");
    let dest_toml = document(&destination, "ConfigMap")["data"]["DEST.toml"]
        .as_str()
        .unwrap()
        .to_owned();
    let facts: toml::Value = toml::from_str(&dest_toml).unwrap();
    let fact = |name: &str| facts[name].as_str().unwrap().to_owned();
    let mut config = common::partner_config(fact);
    let buckets: std::collections::BTreeSet<String> =
        s3_objects.iter().map(|o| o.bucket.clone()).collect();
    config.s3_objects = s3_objects;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut demo = runtime.block_on(Demo::start(config)).unwrap();
    assert_eq!(demo.emulator.config().provider_id, fact("provider_id"));
    for bucket in buckets {
        let route = format!(
            "{bucket}.s3.us-east-1.amazonaws.com={}",
            demo.emulator.addr()
        );
        demo.routes.push(route.parse().unwrap());
    }
    Partner {
        dest_toml,
        demo,
        _runtime: runtime,
    }
}

fn mount_destination(partner: &Partner, dir: &Path) {
    std::fs::write(dir.join("DEST.toml"), &partner.dest_toml).unwrap();
}

/// The image's entry point (deploy/Dockerfile), with this build's component for the image's.
fn entrypoint() -> Vec<String> {
    let dockerfile = std::fs::read_to_string(repo_root().join("deploy/Dockerfile")).unwrap();
    let line = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .expect("an ENTRYPOINT");
    let mut words: Vec<String> = serde_json::from_str(line).unwrap();
    let component = words.iter().position(|w| w == "--component").unwrap() + 1;
    words[component] = BUILT_COMPONENT.to_owned();
    words.remove(0);
    words
}

/// `$(NAME)` references expanded from `env`, as the kubelet expands a container's args.
fn expand(arg: &str, env: &HashMap<String, String>) -> String {
    let mut out = arg.to_owned();
    for (name, value) in env {
        out = out.replace(&format!("$({name})"), value);
    }
    assert!(!out.contains("$("), "{arg}: an unset reference");
    out
}

/// The container's args with the destination mounted in `dir` (its ConfigMap's DEST.toml,
/// written there by [`mount_destination`]).
fn container_command(
    partner: &Partner,
    args: &[String],
    env: &HashMap<String, String>,
    dir: &Path,
) -> Command {
    let words: Vec<OsString> = entrypoint()
        .into_iter()
        .chain(args.iter().map(|a| expand(a, env)))
        .map(|a| {
            a.replace("/etc/wif-push", &dir.display().to_string())
                .into()
        })
        .collect();
    host_test_against(
        &partner.demo,
        &words.iter().map(|w| w.as_os_str()).collect::<Vec<_>>(),
    )
}

/// A child killed when the test ends, passing or not.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_sidecar_container_serves_the_application_and_drains_within_the_grace_period() {
    let partner = partner(Vec::new());
    let deployment = &documents("kubernetes/sidecar.yaml")[0];
    let pod = &deployment["spec"]["template"]["spec"];
    let sidecar = &pod["initContainers"][0];
    assert_eq!(sidecar["restartPolicy"], "Always", "a native sidecar");
    let args = strings(&sidecar["args"]);
    let listen = &args[args.iter().position(|a| a == "--listen").unwrap() + 1];
    let grace: u64 = args[args.iter().position(|a| a == "--grace").unwrap() + 1]
        .parse()
        .unwrap();
    assert!(grace < pod["terminationGracePeriodSeconds"].as_u64().unwrap());
    let url = pod["containers"][0]["env"][0]["value"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("http://{listen}/v1/objects/")),
        "{url}"
    );

    // The pod's loopback port is this machine's: a free one stands in for it.
    let port = free_port().to_string();
    let listen_port = listen.rsplit(':').next().unwrap();
    let on_port = |s: &str| s.replace(&format!(":{listen_port}"), &format!(":{port}"));
    let args: Vec<String> = args.iter().map(|a| on_port(a)).collect();
    let dir = tempfile::tempdir().unwrap();
    mount_destination(&partner, dir.path());
    let mut serve = container_command(&partner, &args, &HashMap::new(), dir.path());
    let mut child = Killed(
        serve
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    common::served_at(&mut child.0);

    // The probes, as the kubelet runs them in the container.
    for probe in ["startupProbe", "livenessProbe"] {
        let command = strings(&sidecar[probe]["exec"]["command"]);
        let status = Command::new(&command[0])
            .args(command[1..].iter().map(|a| on_port(a)))
            .status()
            .unwrap();
        assert!(status.success(), "{probe}: {command:?}");
    }
    // The application's PUT, with curl.
    let file = dir.path().join("orders.csv");
    std::fs::write(&file, "id,total\n1,9.99\n").unwrap();
    let put = Command::new("curl")
        .args(["-sS", "-T"])
        .arg(&file)
        .arg(format!("{}orders.csv", on_port(url)))
        .output()
        .unwrap();
    assert!(
        text(&put.stdout).contains(r#""status":"delivered""#),
        "{}{}",
        text(&put.stdout),
        text(&put.stderr)
    );
    let stored = partner.demo.emulator.object("reports/orders.csv").unwrap();
    assert_eq!(stored.size, 16);

    // Pod termination: SIGTERM, and the sidecar is gone well within its grace period.
    common::sigterm(&child.0);
    let deadline = Instant::now() + Duration::from_secs(grace);
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "still running after --grace");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_indexed_job_s_workers_deliver_the_day_s_export_exactly_once() {
    const OBJECTS: usize = 60;
    let objects: BTreeMap<String, Vec<u8>> = (0..OBJECTS)
        .map(|i| {
            let bytes: Vec<u8> = (0..1000 + i * 97).map(|j| ((i + j) % 251) as u8).collect();
            (format!("part-{i:05}.csv"), bytes)
        })
        .collect();
    let docs = documents("kubernetes/batch-job.yaml");
    let job = document(&docs, "Job");
    assert_eq!(job["spec"]["completionMode"], "Indexed");
    let workers = job["spec"]["completions"].as_u64().unwrap() as usize;
    assert_eq!(job["spec"]["parallelism"].as_u64(), Some(workers as u64));
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    let mut env: HashMap<String, String> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let name = e["name"].as_str().unwrap().to_owned();
            (name, e["value"].as_str().unwrap().to_owned())
        })
        .collect();
    let args = strings(&container["args"]);
    let source = expand(args.last().unwrap(), &{
        let mut env = env.clone();
        env.insert("JOB_COMPLETION_INDEX".into(), "0".into());
        env
    });
    let (bucket, prefix) = source
        .strip_prefix("s3://")
        .unwrap()
        .split_once('/')
        .unwrap();
    let partner = partner(
        objects
            .iter()
            .map(|(name, bytes)| S3Object::new(bucket, &format!("{prefix}{name}"), bytes.clone()))
            .collect(),
    );

    // Every index at once, sharing the ledger volume (XDG_STATE_HOME, as the image sets it).
    let dir = tempfile::tempdir().unwrap();
    mount_destination(&partner, dir.path());
    let ledgers = dir.path().join("ledgers");
    let run_all = |env: &mut HashMap<String, String>| -> Vec<Output> {
        let children: Vec<_> = (0..workers)
            .map(|index| {
                env.insert("JOB_COMPLETION_INDEX".into(), index.to_string());
                let mut cmd = container_command(&partner, &args, env, dir.path());
                cmd.env("XDG_STATE_HOME", &ledgers)
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect()
    };
    let outputs = run_all(&mut env);
    let day = format!("reports/{}/", env["BATCH"]);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (index, out) in outputs.iter().enumerate() {
        assert!(
            out.status.success(),
            "worker {index}: {}",
            text(&out.stderr)
        );
        for line in text(&out.stdout).lines() {
            let receipt: Value = serde_json::from_str(line).unwrap();
            *seen
                .entry(receipt["name"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        let manifest = format!("{day}_MANIFEST-{index}-of-{workers}.json");
        let stored = partner
            .demo
            .emulator
            .object(&manifest)
            .unwrap_or_else(|| panic!("{manifest} missing"));
        let listed: Value =
            serde_json::from_slice(&std::fs::read(stored.path.unwrap()).unwrap()).unwrap();
        assert_eq!(listed["shard"], format!("{index}/{workers}"));
    }
    for (name, bytes) in &objects {
        let full = format!("{day}{name}");
        assert_eq!(seen.get(&full), Some(&1), "{full}: {seen:?}");
        let stored = partner.demo.emulator.object(&full).unwrap();
        assert_eq!(
            &std::fs::read(stored.path.unwrap()).unwrap(),
            bytes,
            "{full}"
        );
    }
    assert_eq!(
        seen.len(),
        OBJECTS + workers,
        "the objects and one manifest per worker"
    );

    // A worker retried (the Job's backoffLimitPerIndex) finds its ledger and sends nothing.
    let before = partner.demo.emulator.count(Endpoint::Gcs);
    for (index, out) in run_all(&mut env).iter().enumerate() {
        assert!(
            out.status.success(),
            "worker {index}: {}",
            text(&out.stderr)
        );
    }
    assert_eq!(partner.demo.emulator.count(Endpoint::Gcs), before);
}
