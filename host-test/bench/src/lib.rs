//! `host-test bench`: the figures behind the README's performance claims, measured side by side
//! on one machine in one run, against the peers a user would otherwise pick (`curl -T`, the
//! Python `google-cloud-storage` client, `gcloud storage cp`). Peers that are not installed are
//! skipped, and the table says so.
//!
//! Everything runs against the embedded emulator on loopback, in its `Benchmark` store (bytes
//! are CRC32C-summed and dropped), so what is measured is the client, not a disk or a network.
//! Prints a Markdown table and writes every figure as JSON.
//!
//! The crate also holds [`demo`], the emulator and destination the benchmarks start from, which
//! the CLI's `demo` command and the tests use as well.

mod batch;
mod cold;
pub mod demo;
mod fleet;
mod large;
mod peers;
mod sigv4;
mod small;
mod tls;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::demo::Demo;
use wif_push_emulator::{EmulatorConfig, Storage};
use wif_push_host::runtime::Runtime;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// How `host-test bench` runs.
#[derive(clap::Args, Clone, Debug)]
pub struct BenchArgs {
    /// Also deliver 4 GiB (throughput, memory), besides the default 1 GiB.
    #[arg(long)]
    pub large: bool,
    /// Write the results as JSON to this file.
    #[arg(long, value_name = "FILE", default_value = "bench.json")]
    pub results: PathBuf,
    /// Runs of each throughput measurement; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Small objects to deliver (4 KiB each).
    #[arg(long, default_value_t = 1000)]
    pub objects: usize,
    /// Component instances delivering small objects at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// New processes started for each cold-start figure; the median is reported.
    #[arg(long, default_value_t = 5)]
    pub cold_runs: usize,
    /// Seconds spent signing in each SigV4 measurement.
    #[arg(long, default_value_t = 2.0)]
    pub sign_seconds: f64,
    /// What the emulator does with the bytes: `benchmark` (CRC32C-summed, dropped) or
    /// `discard` (CRC32C, MD5 and SHA-256 computed, dropped: a far slower server).
    #[arg(long, value_enum, default_value = "benchmark")]
    pub store: Store,
    /// Only these parts (repeatable): throughput, small, fleet, cold-start, sigv4, batch.
    #[arg(long = "only", value_enum)]
    pub only: Vec<Part>,
    /// Batches: the round trip the emulator adds to each request and connection (ms).
    #[arg(long, value_name = "MS", default_value_t = 40)]
    pub wan_rtt_ms: u64,
    /// Batches: what one connection may upload, in Mbit/s.
    #[arg(long, value_name = "MBIT", default_value_t = 200)]
    pub wan_mbit: u64,
    /// Batches: small files (64 KiB each) in the first batch.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub batch_objects: usize,
    /// Batches: the size of each of the 8 large files, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    pub batch_large_mib: u64,
    /// Batches: objects in flight at once (wif-push's instances, the Python client's threads).
    #[arg(long, value_name = "N", default_value_t = wif_push_host::batch::DEFAULT_CONCURRENCY)]
    pub batch_concurrency: usize,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Store {
    Benchmark,
    Discard,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Throughput,
    Small,
    ColdStart,
    Sigv4,
    /// Token exchanges of fresh instances with and without the token store.
    Fleet,
    /// Batches over the emulator's WAN profile (about four minutes).
    Batch,
}

/// One line of the table.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub group: &'static str,
    pub subject: String,
    /// The figure, in `unit`; `None` when the subject was skipped or failed.
    pub value: Option<f64>,
    pub unit: &'static str,
    /// The figure relative to the group's reference (e.g. curl), when that means something.
    pub ratio: Option<f64>,
    /// What the ratio is relative to.
    pub reference: Option<String>,
    /// The target this figure answers, and whether it is met.
    pub target: Option<String>,
    pub met: Option<bool>,
    /// How it was measured, or why there is no figure.
    pub note: String,
}

impl Row {
    fn new(group: &'static str, subject: impl Into<String>, unit: &'static str) -> Self {
        Row {
            group,
            subject: subject.into(),
            value: None,
            unit,
            ratio: None,
            reference: None,
            target: None,
            met: None,
            note: String::new(),
        }
    }

    fn value(mut self, value: f64) -> Self {
        self.value = Some(value);
        self
    }

    fn note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }

    fn ratio(mut self, ratio: Option<f64>, reference: &str) -> Self {
        self.ratio = ratio;
        self.reference = ratio.map(|_| reference.to_owned());
        self
    }

    fn target(mut self, target: impl Into<String>, met: Option<bool>) -> Self {
        self.target = Some(target.into());
        self.met = met;
        self
    }

    fn shown(&self) -> String {
        match self.value {
            None => "—".into(),
            Some(v) => {
                let number = if v >= 100.0 {
                    format!("{v:.0}")
                } else if v >= 10.0 {
                    format!("{v:.1}")
                } else {
                    format!("{v:.2}")
                };
                format!("{} {}", group_digits(&number), self.unit)
            }
        }
    }
}

/// `1234567` as `1 234 567` (the integer part only).
fn group_digits(number: &str) -> String {
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    let mut out = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// What the machine is, for the record.
#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub kernel: String,
    pub wasmtime: &'static str,
    pub curl: Option<String>,
    pub python_client: Option<String>,
    pub gcloud: Option<String>,
}

impl Machine {
    fn describe(&self) -> String {
        format!(
            "{}, {} CPUs, {:.0} GiB memory, Linux {}, Wasmtime {}",
            self.cpu_model, self.cpus, self.memory_gib, self.kernel, self.wasmtime
        )
    }
}

fn machine(peers: &peers::Peers) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    Machine {
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model,
        memory_gib: memory_kib / (1024.0 * 1024.0),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default(),
        wasmtime: "48.0.8",
        curl: peers.curl_version.clone(),
        python_client: peers.python_version.clone(),
        gcloud: peers.gcloud_version.clone(),
    }
}

#[derive(Serialize)]
struct Report<'a> {
    machine: &'a Machine,
    command: String,
    store: Store,
    component_bytes: u64,
    rows: &'a [Row],
}

/// Everything one benchmark part needs.
pub(crate) struct Bench {
    pub args: BenchArgs,
    pub component: Option<PathBuf>,
    pub runtime: Arc<Runtime>,
    pub peers: peers::Peers,
    pub dir: tempfile::TempDir,
}

impl Bench {
    /// A fresh emulator and destination (in the chosen store) for one part.
    pub async fn demo(&self) -> Result<Demo> {
        let mut config = EmulatorConfig::demo();
        config.storage = match self.args.store {
            Store::Benchmark => Storage::Benchmark,
            Store::Discard => Storage::Discard,
        };
        let mut demo = Demo::start(config).await?;
        demo.destination.prefix = Some("bench/".into());
        Ok(demo)
    }

    fn wants(&self, part: Part) -> bool {
        self.args.only.is_empty() || self.args.only.contains(&part)
    }
}

pub async fn run(component: Option<&Path>, args: BenchArgs) -> Result<()> {
    let runtime = Arc::new(Runtime::load(component)?);
    let peers = peers::Peers::find().await;
    let machine = machine(&peers);
    let component_path = component.unwrap_or(Path::new(wif_push_host::runtime::BUILT_COMPONENT));
    let component_bytes = std::fs::metadata(component_path)
        .with_context(|| format!("read {}", component_path.display()))?
        .len();
    eprintln!("wif-push bench on {}", machine.describe());
    for note in peers.missing() {
        eprintln!("  {note}");
    }
    let bench = Bench {
        args,
        component: component.map(Path::to_path_buf),
        runtime,
        peers,
        dir: tempfile::Builder::new()
            .prefix("wif-push-bench-")
            .tempdir()?,
    };
    let mut rows = Vec::new();
    if bench.wants(Part::Throughput) {
        rows.extend(large::run(&bench).await?);
        rows.extend(tls::run(&bench).await?);
    }
    if bench.wants(Part::Small) {
        rows.extend(small::run(&bench).await?);
    }
    if bench.wants(Part::Fleet) {
        rows.extend(fleet::run(&bench).await?);
    }
    if bench.wants(Part::ColdStart) {
        rows.extend(cold::run(&bench, component_bytes).await?);
    }
    if bench.wants(Part::Sigv4) {
        rows.extend(sigv4::run(&bench).await?);
    }
    if bench.wants(Part::Batch) {
        rows.extend(batch::run(&bench).await?);
    }

    println!("{}", table(&rows));
    println!("\nMachine: {}.", machine.describe());
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let report = Report {
        machine: &machine,
        command,
        store: bench.args.store,
        component_bytes,
        rows: &rows,
    };
    let json = serde_json::to_string_pretty(&report)?;
    std::fs::write(&bench.args.results, json)
        .with_context(|| format!("write {}", bench.args.results.display()))?;
    println!("Results as JSON: {}", bench.args.results.display());
    Ok(())
}

/// The rows as a Markdown table.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| benchmark | subject | result | relative | target | note |\n|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let relative = match (row.ratio, &row.reference) {
            (Some(r), Some(reference)) => format!("{r:.2}× {reference}"),
            _ => String::new(),
        };
        let target = match (&row.target, row.met) {
            (Some(t), Some(true)) => format!("{t}: met"),
            (Some(t), Some(false)) => format!("{t}: **missed**"),
            (Some(t), None) => format!("{t}: not measured"),
            (None, _) => String::new(),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            row.group,
            row.subject,
            row.shown(),
            relative,
            target,
            row.note.replace('|', "\\|")
        ));
    }
    out
}

/// The median of `values` (which must not be empty).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn mib_per_s(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / MIB as f64 / seconds
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_readable() {
        assert_eq!(group_digits("1234567.5"), "1 234 567.5");
        assert_eq!(group_digits("999"), "999");
        assert_eq!(
            Row::new("g", "s", "MiB/s").value(1234.4).shown(),
            "1 234 MiB/s"
        );
        assert_eq!(Row::new("g", "s", "ms").value(1.234).shown(), "1.23 ms");
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        let t = table(&[Row::new("g", "s", "x")
            .value(2.0)
            .ratio(Some(0.95), "curl")
            .target("≥ 0.9× curl", Some(true))]);
        assert!(
            t.contains("| g | s | 2.00 x | 0.95× curl | ≥ 0.9× curl: met |"),
            "{t}"
        );
    }
}
