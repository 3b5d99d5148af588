//! Cold start: a new `host-test` process delivering one small file, timed from its start to the
//! moment the emulator sees the first byte of the upload (the request's head), with the compile
//! cache empty and warm; the token exchange (STS, IAM) is inside that time. Also a new
//! `host-test sign`, start to exit, and the component's size.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

use super::{Bench, Row, median, millis};
use crate::demo::Demo;
use wif_push_emulator::Endpoint;
use wif_push_host::runtime::AWS_VARIABLES;

const SIGN_REQUEST: &str = r#"{"method": "POST",
  "url": "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
  "headers": {"x-goog-cloud-target-resource": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/a"},
  "region": "us-east-1", "service": "sts", "time": "2015-08-30T12:36:00Z",
  "access_key_id": "AKIDEXAMPLE", "secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}"#;

/// One new process: until the first upload byte arrived, the token exchange's share of that,
/// and until the process exited.
struct Started {
    first_byte: Duration,
    exchange: Duration,
    exited: Duration,
}

pub(super) async fn run(bench: &Bench, component_bytes: u64) -> Result<Vec<Row>> {
    let demo = bench.demo().await?;
    let dir = bench.dir.path().join("cold");
    std::fs::create_dir_all(&dir)?;
    let dest = dir.join("dest.toml");
    let c = demo.emulator.config();
    std::fs::write(
        &dest,
        format!(
            "project_number = \"{}\"\npool_id = \"{}\"\nprovider_id = \"{}\"\nservice_account = \"{}\"\nbucket = \"{}\"\naws_region = \"us-east-1\"\n",
            c.project_number, c.pool_id, c.provider_id, c.service_account, c.bucket
        ),
    )?;
    let file = dir.join("hello.txt");
    std::fs::write(&file, "Hello, world!")?;
    let group = "cold start";
    let runs = bench.args.cold_runs.max(1);
    let mut rows = vec![
        Row::new(group, "component size (release, stripped)", "KiB")
            .value(component_bytes as f64 / 1024.0)
            .note(format!(
                "{component_bytes} bytes: LTO, one codegen unit, stripped"
            )),
    ];

    let warm_cache = tempfile::Builder::new().prefix("cache-").tempdir_in(&dir)?;
    // Fill the warm cache (not measured).
    deliver_once(
        bench,
        &demo,
        &dest,
        &file,
        warm_cache.path(),
        "cold/warm-up/",
    )
    .await?;
    for (label, warm) in [("compile cache empty", false), ("compile cache warm", true)] {
        let mut first = Vec::new();
        let mut exchange = Vec::new();
        let mut exited = Vec::new();
        for run in 0..runs {
            let empty = tempfile::Builder::new().prefix("cache-").tempdir_in(&dir)?;
            let cache = if warm {
                warm_cache.path()
            } else {
                empty.path()
            };
            let prefix = format!("cold/{warm}-{run}/");
            let s = deliver_once(bench, &demo, &dest, &file, cache, &prefix).await?;
            first.push(millis(s.first_byte));
            exchange.push(millis(s.exchange));
            exited.push(millis(s.exited));
        }
        let (first, exchange, exited) = (
            median(&mut first),
            median(&mut exchange),
            median(&mut exited),
        );
        eprintln!("cold start, {label}: first upload byte after {first:.1} ms");
        rows.push(
            Row::new(group, format!("first upload byte, {label}"), "ms")
                .value(first)
                .note(format!(
                    "new `host-test deliver` process to the upload's first byte at the emulator: \
                     load{} the component, token exchange ({exchange:.1} ms: STS + IAM), upload \
                     start; process exits after {exited:.1} ms; median of {runs}",
                    if warm { "" } else { " and compile" }
                )),
        );
    }

    for (label, warm) in [("compile cache empty", false), ("compile cache warm", true)] {
        let mut times = Vec::new();
        for _ in 0..runs {
            let empty = tempfile::Builder::new().prefix("cache-").tempdir_in(&dir)?;
            let cache = if warm {
                warm_cache.path()
            } else {
                empty.path()
            };
            times.push(millis(sign_once(bench, cache).await?));
        }
        rows.push(
            Row::new(group, format!("`host-test sign`, {label}"), "ms")
                .value(median(&mut times))
                .note(format!(
                    "new process, start to exit: load{} the component, sign one request; median of {runs}",
                    if warm { "" } else { " and compile" }
                )),
        );
    }
    Ok(rows)
}

fn host_test(bench: &Bench, cache: &Path) -> Result<Command> {
    let exe = std::env::current_exe().context("find this host-test executable")?;
    let mut command = Command::new(exe);
    if let Some(component) = &bench.component {
        command.arg("--component").arg(component);
    }
    for name in AWS_VARIABLES {
        command.env_remove(name);
    }
    command
        .env("WIF_PUSH_CACHE_DIR", cache)
        // Each run's delivery ledger in the benchmark's directory, not the user's.
        .env("XDG_STATE_HOME", bench.dir.path().join("state"))
        .stderr(Stdio::piped())
        .stdout(Stdio::piped());
    Ok(command)
}

async fn deliver_once(
    bench: &Bench,
    demo: &Demo,
    dest: &Path,
    file: &Path,
    cache: &Path,
    prefix: &str,
) -> Result<Started> {
    let identity = &demo.emulator.config().identities[0];
    let mut command = host_test(bench, cache)?;
    command
        .arg("deliver")
        .arg("--config")
        .arg(dest)
        .args(["--prefix", prefix])
        .stdin(Stdio::null())
        .env("AWS_ACCESS_KEY_ID", &identity.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &identity.secret_access_key);
    for route in &demo.routes {
        let port = route.port.map(|p| format!(":{p}")).unwrap_or_default();
        command
            .arg("--connect-to")
            .arg(format!("{}{port}={}", route.host, route.target));
    }
    command.arg(file);
    let started = Instant::now();
    let output = command.output().await.context("start host-test deliver")?;
    let exited = started.elapsed();
    if !output.status.success() {
        bail!(
            "host-test deliver failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let arrivals: Vec<_> = demo
        .emulator
        .arrivals()
        .into_iter()
        .filter(|(_, at)| *at >= started)
        .collect();
    let first = |endpoint: Endpoint| {
        arrivals
            .iter()
            .find(|(e, _)| *e == endpoint)
            .map(|(_, at)| *at - started)
    };
    let (Some(sts), Some(gcs)) = (first(Endpoint::Sts), first(Endpoint::Gcs)) else {
        bail!("the emulator saw no token exchange or no upload from host-test deliver");
    };
    Ok(Started {
        first_byte: gcs,
        exchange: gcs.saturating_sub(sts),
        exited,
    })
}

async fn sign_once(bench: &Bench, cache: &Path) -> Result<Duration> {
    let mut command = host_test(bench, cache)?;
    command.arg("sign").stdin(Stdio::piped());
    let started = Instant::now();
    let mut child = command.spawn().context("start host-test sign")?;
    let mut stdin = child.stdin.take().context("host-test sign's stdin")?;
    stdin.write_all(SIGN_REQUEST.as_bytes()).await?;
    drop(stdin);
    let output = child.wait_with_output().await?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        bail!(
            "host-test sign failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(elapsed)
}
