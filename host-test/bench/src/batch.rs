//! Batches over a wide-area link: the emulator answers every request a round trip late and
//! carries each connection's upload at a capped rate (README: Batches). Many small files, and
//! a few large ones, delivered in sequence and concurrently by `host-test deliver`'s batch
//! runner (with its ledger), against the Python client's `transfer_manager.upload_many` with
//! threads — objects/s and MiB/s side by side, in one run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use super::{Bench, MIB, Row};
use crate::demo::Demo;
use wif_push_emulator::{EmulatorConfig, Storage, Wan};
use wif_push_host::batch::{self, Instances, Options, ledger::Ledger, plan};
use wif_push_host::outbound::{Outbound, Policy};

/// One workload: `count` files of `size` bytes.
struct Workload {
    label: String,
    count: usize,
    size: u64,
}

pub(super) async fn run(bench: &Bench) -> Result<Vec<Row>> {
    let wan = Wan {
        round_trip: Duration::from_millis(bench.args.wan_rtt_ms),
        bandwidth: Some(bench.args.wan_mbit * 1_000_000 / 8),
    };
    let link = format!(
        "{} ms round trip, {} Mbit/s per connection",
        bench.args.wan_rtt_ms, bench.args.wan_mbit
    );
    let workloads = [
        Workload {
            label: format!("{} × 64 KiB", bench.args.batch_objects),
            count: bench.args.batch_objects,
            size: 64 << 10,
        },
        Workload {
            label: format!("8 × {} MiB", bench.args.batch_large_mib),
            count: 8,
            size: bench.args.batch_large_mib * MIB,
        },
    ];
    let n = bench.args.batch_concurrency;
    let mut rows = Vec::new();
    for (w, workload) in workloads.iter().enumerate() {
        let dir = bench.dir.path().join(format!("batch-{w}"));
        let files = write_files(&dir, workload)?;
        let group = "batch";
        let total_mib = (workload.count as u64 * workload.size) as f64 / MIB as f64;
        let mut measured = Vec::new();
        for (subject, concurrency) in [("in sequence", 1), ("concurrent", n)] {
            let demo = start(wan).await?;
            let seconds = wif_push(bench, &demo, &dir, concurrency).await?;
            eprintln!(
                "batch {}: wif-push {subject} {seconds:.2} s",
                workload.label
            );
            measured.push((
                format!("wif-push, {subject} ({concurrency} at once)"),
                Ok(seconds),
                concurrency,
            ));
        }
        let python = if bench.peers.python.is_some() {
            let demo = start(wan).await?;
            let token = demo.emulator.issue_access_token_for_tests();
            let endpoint = format!("http://{}", demo.emulator.addr());
            let mut args = vec![
                "many".to_owned(),
                endpoint,
                token,
                demo.emulator.config().bucket.clone(),
                "python/".to_owned(),
                n.to_string(),
            ];
            args.extend(files.iter().map(|f| f.display().to_string()));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let answer = bench.peers.python(bench.dir.path(), &args).await;
            let seconds =
                answer.and_then(|a| a["seconds"].as_f64().context("the Python peer's seconds"));
            if let Ok(s) = &seconds {
                eprintln!("batch {}: Python upload_many {s:.2} s", workload.label);
            }
            Some(seconds)
        } else {
            None
        };
        let python_seconds = python.as_ref().and_then(|p| p.as_ref().ok()).copied();
        let mut push = |subject: String, seconds: Result<f64>, note: String| {
            let row = Row::new(group, format!("{}: {subject}", workload.label), "objects/s");
            rows.push(match seconds {
                Ok(s) => row
                    .value(workload.count as f64 / s)
                    .ratio(python_seconds.map(|p| p / s), "Python threads")
                    .note(format!("{:.1} MiB/s; {:.2} s; {note}", total_mib / s, s)),
                Err(e) => row.note(format!("failed: {e:#}")),
            });
        };
        for (subject, seconds, concurrency) in measured {
            push(
                subject,
                seconds,
                format!(
                    "host-test deliver's batch runner, ledger on, {concurrency} instance(s); {link}"
                ),
            );
        }
        match python {
            Some(seconds) => push(
                format!("Python transfer_manager.upload_many, {n} threads"),
                seconds,
                format!(
                    "{}, files from disk, if_generation_match=0; {link}",
                    bench.peers.python_version.as_deref().unwrap_or_default()
                ),
            ),
            None => rows.push(
                Row::new(group, format!("{}: Python", workload.label), "objects/s")
                    .note("skipped: no Python with google-cloud-storage"),
            ),
        }
        std::fs::remove_dir_all(&dir).ok();
    }
    Ok(rows)
}

async fn start(wan: Wan) -> Result<Demo> {
    let mut config = EmulatorConfig::demo();
    config.storage = Storage::Benchmark;
    config.wan = wan;
    let mut demo = Demo::start(config).await?;
    demo.destination.prefix = Some("bench/".into());
    Ok(demo)
}

fn write_files(dir: &Path, workload: &Workload) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    (0..workload.count)
        .map(|i| {
            let path = dir.join(format!("f{i:05}.bin"));
            crate::demo::write_file(&path, workload.size)?;
            Ok(path)
        })
        .collect()
}

/// The directory delivered as `host-test deliver --concurrency N` does it; its time in seconds
/// (from the first instance to the last receipt, token exchange included).
async fn wif_push(bench: &Bench, demo: &Demo, dir: &Path, concurrency: usize) -> Result<f64> {
    let outbound = Outbound::new(Policy::new(&[], demo.routes.clone()))?;
    let instances = Instances {
        runtime: (*bench.runtime).clone(),
        env: demo.env.clone(),
        outbound,
    };
    let ledger_dir = tempfile::tempdir()?;
    let settings = &demo.destination;
    let started = Instant::now();
    let mut first = demo.session(&bench.runtime).await?;
    let mut plan = plan::Plan::default();
    plan.add_input(dir, &plan::Defaults::default());
    batch::prepare(&mut first, settings, &mut plan, None).await?;
    if !plan.problems.is_empty() {
        bail!("the batch's files: {:?}", plan.problems);
    }
    let ledger = Ledger::open(
        &ledger_dir.path().join("ledger.jsonl"),
        "partner-inbox",
        "bench/",
    )?;
    let options = Options {
        concurrency,
        if_exists: batch::IfExists::Fail,
        manifest_object: None,
        unplanned: 0,
        guest_memory_limit: None,
        shard: None,
    };
    // Failures show in the summary; nothing is printed while the clock runs.
    let events: batch::Events = Arc::new(|_| {});
    let summary = batch::run(
        instances,
        settings,
        first,
        plan.items,
        Some(ledger),
        &options,
        events,
        Arc::new(AtomicU64::new(0)),
    )
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    if !summary.succeeded() {
        bail!("{} objects failed", summary.failed);
    }
    Ok(seconds)
}
