//! Large objects: throughput of wif-push against `curl -T` (the ceiling: one streaming request,
//! no checksums), the Python client and `gcloud storage cp`, all into the same emulator; and the
//! memory a delivery takes (the guest's linear memory, the host's RSS).

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use tokio::process::Command;

use super::peers::last_line;
use super::{Bench, GIB, MIB, Row, median, mib_per_s};
use crate::demo::{Demo, write_file};
use wif_push_host::runtime::{Session, Settings, delivery};

/// What one delivery through the component took.
struct Delivered {
    seconds: f64,
    guest_peak: usize,
    rss_before: u64,
    rss_peak: u64,
    requests: u32,
}

pub(super) async fn run(bench: &Bench) -> Result<Vec<Row>> {
    let demo = bench.demo().await?;
    let chunk = wif_push::config::DEFAULT_CHUNK_SIZE;
    let mut rows = Vec::new();
    let mut guest_peaks = Vec::new();

    // Memory at a size where throughput is not the point.
    let small = 100 * MIB;
    let path = bench.dir.path().join("object-100MiB");
    write_file(&path, small)?;
    let delivered = wif_push(
        bench,
        &demo,
        &path,
        small,
        "mem-100MiB",
        Reading::FileStream,
    )
    .await?;
    guest_peaks.push((small, delivered.guest_peak));
    std::fs::remove_file(&path)?;

    let mut sizes = vec![GIB];
    if bench.args.large {
        sizes.push(4 * GIB);
    }
    for size in sizes {
        let label = format!("{} GiB", size / GIB);
        eprintln!("throughput: writing a {label} file");
        let path = bench.dir.path().join(format!("object-{}GiB", size / GIB));
        write_file(&path, size)?;
        let crc32c = file_crc32c(&path)?;
        let (mut ours, mut curl, mut python) = (Vec::new(), Vec::new(), Vec::new());
        let mut before = Vec::new();
        let mut deliveries = Vec::new();
        let (mut curl_error, mut python_error) = (None, None);
        for run in 0..bench.args.runs {
            if bench.peers.curl.is_some() && curl_error.is_none() {
                let name = format!("curl-{size}-{run}");
                match curl_upload(bench, &demo, &Sink::plain(&demo), &path, &name).await {
                    Ok(seconds) => {
                        check_stored(&demo, &name, size, &crc32c)?;
                        curl.push(mib_per_s(size, seconds));
                    }
                    Err(e) => curl_error = Some(format!("{e:#}")),
                }
            }
            let name = format!("wif-push-{size}-{run}");
            let d = wif_push(bench, &demo, &path, size, &name, Reading::FileStream).await?;
            check_stored(&demo, &format!("bench/{name}"), size, &crc32c)?;
            ours.push(mib_per_s(size, d.seconds));
            deliveries.push(d);
            let name = format!("wif-push-before-{size}-{run}");
            let d = wif_push(bench, &demo, &path, size, &name, Reading::TokioFs).await?;
            check_stored(&demo, &format!("bench/{name}"), size, &crc32c)?;
            before.push(mib_per_s(size, d.seconds));
            if bench.peers.python.is_some() && python_error.is_none() {
                let name = format!("python-{size}-{run}");
                match python_upload(bench, &demo, &Sink::plain(&demo), &path, &name).await {
                    Ok(seconds) => {
                        check_stored(&demo, &name, size, &crc32c)?;
                        python.push(mib_per_s(size, seconds));
                    }
                    Err(e) => python_error = Some(format!("{e:#}")),
                }
            }
            eprintln!(
                "throughput {label} run {}: curl {:?} wif-push {:.0} (the previous reader {:.0}) python {:?} MiB/s",
                run + 1,
                curl.last().map(|v| v.round()),
                ours.last().copied().unwrap_or_default(),
                before.last().copied().unwrap_or_default(),
                python.last().map(|v| v.round()),
            );
        }
        let group = "throughput";
        let runs = bench.args.runs;
        let curl_median = (!curl.is_empty()).then(|| median(&mut curl));
        let ratio = |v: f64| curl_median.map(|c| v / c);
        let mut row = Row::new(group, format!("curl -T, {label} (ceiling)"), "MiB/s");
        row = match (curl_median, &curl_error) {
            (Some(c), _) => row.value(c).ratio(Some(1.0), "curl").note(format!(
                "one streaming request, no checksum; median of {runs}"
            )),
            (None, Some(e)) => row.note(format!("failed: {e}")),
            (None, None) => row.note("skipped: curl is not installed"),
        };
        rows.push(row);

        let ours_median = median(&mut ours);
        let requests = deliveries[0].requests;
        let met = ratio(ours_median).map(|r| r >= 0.7);
        rows.push(
            Row::new(group, format!("wif-push, {label}"), "MiB/s")
                .value(ours_median)
                .ratio(ratio(ours_median), "curl")
                .target("≥ 0.7× curl", met)
                .note(format!(
                    "through the component: resumable, {} MiB chunks, CRC32C, {requests} requests; the file read as `host-test deliver` reads it (wif_push_host::file_stream: 1 MiB blocks, one ahead), on a runtime worker; median of {runs}",
                    chunk / MIB
                )),
        );
        let before_median = median(&mut before);
        rows.push(
            Row::new(group, format!("wif-push, {label}, the previous reader"), "MiB/s")
                .value(before_median)
                .ratio(ratio(before_median), "curl")
                .note(format!(
                    "the same component, the file read through Wasmtime's AsyncReadStream over tokio::fs (64 KiB a call), as host-test deliver read it before; median of {runs}"
                )),
        );

        let mut row = Row::new(
            group,
            format!("Python google-cloud-storage, {label}"),
            "MiB/s",
        );
        row = match (
            python.is_empty(),
            &python_error,
            &bench.peers.python_version,
        ) {
            (false, _, version) => {
                let v = median(&mut python);
                row.value(v).ratio(ratio(v), "curl").note(format!(
                    "{}, upload_from_filename (resumable, 100 MiB chunks, CRC32C); median of {runs}",
                    version.as_deref().unwrap_or_default()
                ))
            }
            (true, Some(e), _) => row.note(format!("failed: {e}")),
            (true, None, _) => row.note("skipped: no Python with google-cloud-storage"),
        };
        rows.push(row);

        if size == GIB {
            rows.push(gcloud(bench, &demo, &path).await);
            let d = &deliveries[0];
            guest_peaks.push((size, d.guest_peak));
            rows.push(
                Row::new("memory", "host RSS, peak during a 1 GiB delivery", "MiB")
                    .value(d.rss_peak as f64 / MIB as f64)
                    .note(format!(
                        "the whole host-test process (emulator included), {:.0} MiB before the delivery",
                        d.rss_before as f64 / MIB as f64
                    )),
            );
        } else {
            guest_peaks.push((size, deliveries[0].guest_peak));
        }
        std::fs::remove_file(&path)?;
    }

    let bound = chunk + 4 * MIB;
    let flat = guest_peaks.windows(2).all(|w| w[1].1 <= w[0].1);
    for (size, peak) in &guest_peaks {
        let label = if *size >= GIB {
            format!("{} GiB", size / GIB)
        } else {
            format!("{} MiB", size / MIB)
        };
        rows.push(
            Row::new(
                "memory",
                format!("guest linear memory, peak, {label}"),
                "MiB",
            )
            .value(*peak as f64 / MIB as f64)
            .target(
                format!("≤ chunk + 4 MiB = {} MiB, flat", bound / MIB),
                Some(*peak as u64 <= bound && flat),
            )
            .note("a fresh instance: token exchange and one delivery"),
        );
    }
    Ok(rows)
}

/// One delivery through a fresh instance, with its token already cached (not timed).
/// How the host reads the file it hands the component.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// `tokio::fs::File` through Wasmtime's `AsyncReadStream`, as `host-test deliver` read
    /// files before [`FileStream`](wif_push_host::file_stream::FileStream).
    TokioFs,
    /// `FileStream`, as `host-test deliver` reads files.
    FileStream,
}

async fn wif_push(
    bench: &Bench,
    demo: &Demo,
    path: &Path,
    size: u64,
    name: &str,
    reading: Reading,
) -> Result<Delivered> {
    let mut session = demo.session(&bench.runtime).await?;
    session.access_token(&demo.destination).await?;
    let object = delivery::Object {
        name: name.to_owned(),
        size: Some(size),
        content_type: None,
        metadata: vec![],
        session: None,
    };
    let rss = RssSampler::start();
    let started = Instant::now();
    let receipt = match reading {
        Reading::TokioFs => {
            let file = tokio::fs::File::open(path).await?;
            session.deliver(&demo.destination, &object, file).await?
        }
        Reading::FileStream => {
            let (receipt, returned) =
                deliver_file_on_worker(session, &demo.destination, object, path).await?;
            session = returned;
            receipt?
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let (rss_before, rss_peak) = rss.stop();
    anyhow::ensure!(receipt.size == size, "delivered {} bytes", receipt.size);
    Ok(Delivered {
        seconds,
        guest_peak: session.peak_guest_memory(),
        rss_before,
        rss_peak,
        requests: receipt.requests,
    })
}

/// Delivers the file at `path` as `host-test deliver` does: read through its `FileStream`, on
/// a worker of the runtime (as the batch runner runs each delivery). Gives the session back.
pub(super) async fn deliver_file_on_worker(
    mut session: Session,
    destination: &Settings,
    object: delivery::Object,
    path: &Path,
) -> Result<(Result<delivery::Receipt>, Session)> {
    let destination = destination.clone();
    let path = path.to_owned();
    Ok(tokio::spawn(async move {
        let receipt = session
            .deliver_file(&destination, &object, &path, None)
            .await;
        (receipt, session)
    })
    .await?)
}

/// Where `curl -T` uploads `name` to, and the options that reach it.
pub(super) struct Sink<'a> {
    /// `http://ADDR` or `https://storage.googleapis.com`.
    pub base: String,
    /// E.g. `--cacert CA --resolve storage.googleapis.com:443:ADDR`.
    pub curl_args: Vec<String>,
    /// The Python client's endpoint, and the CA bundle it must trust.
    pub python_endpoint: String,
    pub python_ca: Option<&'a Path>,
}

impl Sink<'_> {
    /// The emulator over plain HTTP.
    pub(super) fn plain(demo: &Demo) -> Sink<'static> {
        let base = format!("http://{}", demo.emulator.addr());
        Sink {
            python_endpoint: base.clone(),
            base,
            curl_args: Vec::new(),
            python_ca: None,
        }
    }

    fn media_url(&self, demo: &Demo, name: &str) -> String {
        format!(
            "{}/upload/storage/v1/b/{}/o?uploadType=media&name={name}&ifGenerationMatch=0",
            self.base,
            demo.emulator.config().bucket
        )
    }
}

/// `curl -T`: the file streamed in one `uploadType=media` request. Returns curl's own transfer
/// time (its process start-up is not counted).
pub(super) async fn curl_upload(
    bench: &Bench,
    demo: &Demo,
    sink: &Sink<'_>,
    path: &Path,
    name: &str,
) -> Result<f64> {
    let curl = bench.peers.curl.as_ref().expect("curl is installed");
    let token = demo.emulator.issue_access_token_for_tests();
    let output = Command::new(curl)
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total}"])
        .args(&sink.curl_args)
        .args(["-X", "POST", "-T"])
        .arg(path)
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args([
            "-H",
            "Content-Type: application/octet-stream",
            "-H",
            "Expect:",
        ])
        .arg(sink.media_url(demo, name))
        .stdin(Stdio::null())
        .output()
        .await
        .context("run curl")?;
    let out = String::from_utf8_lossy(&output.stdout);
    let mut fields = out.split_whitespace();
    let (status, seconds) = (fields.next(), fields.next());
    if !output.status.success() || status != Some("200") {
        bail!(
            "curl: HTTP {} {}",
            status.unwrap_or("?"),
            last_line(&String::from_utf8_lossy(&output.stderr))
        );
    }
    seconds
        .and_then(|s| s.parse::<f64>().ok())
        .context("curl's time_total")
}

pub(super) async fn python_upload(
    bench: &Bench,
    demo: &Demo,
    sink: &Sink<'_>,
    path: &Path,
    name: &str,
) -> Result<f64> {
    let token = demo.emulator.issue_access_token_for_tests();
    let env: Vec<(&str, &Path)> = sink
        .python_ca
        .map(|ca| ("REQUESTS_CA_BUNDLE", ca))
        .into_iter()
        .collect();
    let answer = bench
        .peers
        .python_with(
            bench.dir.path(),
            &[
                "large",
                &sink.python_endpoint,
                &token,
                &demo.emulator.config().bucket,
                name,
                &path.to_string_lossy(),
            ],
            &env,
        )
        .await?;
    answer["seconds"]
        .as_f64()
        .context("the Python peer's seconds")
}

/// `gcloud storage cp` with an access token file and the storage endpoint pointed at the
/// emulator. It reads the destination before writing, which objectCreator may not do.
async fn gcloud(bench: &Bench, demo: &Demo, path: &Path) -> Row {
    let row = Row::new("throughput", "gcloud storage cp, 1 GiB", "MiB/s");
    let Some(gcloud) = &bench.peers.gcloud else {
        return row.note("skipped: gcloud is not installed");
    };
    let dir = bench.dir.path().join("gcloud");
    let token_file = bench.dir.path().join("gcloud-token");
    let prepared = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&token_file, demo.emulator.issue_access_token_for_tests()));
    if let Err(e) = prepared {
        return row.note(format!("skipped: {e}"));
    }
    let started = Instant::now();
    let output = Command::new(gcloud)
        .args(["storage", "cp"])
        .arg(path)
        .arg(format!(
            "gs://{}/gcloud-object",
            demo.emulator.config().bucket
        ))
        .env("CLOUDSDK_CONFIG", &dir)
        .env("CLOUDSDK_CORE_DISABLE_PROMPTS", "1")
        .env("CLOUDSDK_CORE_PROJECT", "benchmark")
        .env("CLOUDSDK_AUTH_ACCESS_TOKEN_FILE", &token_file)
        .env(
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE",
            format!("http://{}/", demo.emulator.addr()),
        )
        .stdin(Stdio::null())
        .output()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    let version = bench.peers.gcloud_version.as_deref().unwrap_or("gcloud");
    match output {
        Ok(output) if output.status.success() => row.value(mib_per_s(GIB, seconds)).note(format!(
            "{version}; wall time of one run, process start included"
        )),
        Ok(output) => {
            let said = last_line(&String::from_utf8_lossy(&output.stderr));
            let said = said
                .strip_prefix("ERROR: (gcloud.storage.cp) ")
                .unwrap_or(&said);
            let said: String = said.chars().take(140).collect();
            let why = if said.contains("storage.objects.get") {
                "fails by design: it reads (GETs) the destination object before uploading, which \
                 roles/storage.objectCreator does not allow (real GCS answers the same 403)"
            } else {
                "failed"
            };
            row.note(format!("{version}: {why}: \"{said}…\""))
        }
        Err(e) => row.note(format!("could not run gcloud: {e}")),
    }
}

pub(super) fn check_stored(demo: &Demo, name: &str, size: u64, crc32c: &str) -> Result<()> {
    let stored = demo
        .emulator
        .object(name)
        .with_context(|| format!("{name} is not in the bucket"))?;
    anyhow::ensure!(
        stored.size == size && stored.crc32c == crc32c,
        "{name}: {} bytes with CRC32C {} stored, {size} with {crc32c} sent",
        stored.size,
        stored.crc32c
    );
    Ok(())
}

pub(super) fn file_crc32c(path: &Path) -> Result<String> {
    use base64::Engine as _;
    use std::io::Read as _;
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 4 << 20];
    let mut crc = 0;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        crc = crc32c::crc32c_append(crc, &buf[..n]);
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes()))
}

/// Samples this process's resident set every 2 ms, from its start to its stop.
struct RssSampler {
    before: u64,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl RssSampler {
    fn start() -> Self {
        let before = rss_bytes();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = before;
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(rss_bytes());
                std::thread::sleep(Duration::from_millis(2));
            }
            peak.max(rss_bytes())
        });
        RssSampler {
            before,
            stop,
            thread,
        }
    }

    /// The RSS before, and its peak.
    fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let peak = self.thread.join().unwrap_or(0);
        (self.before, peak)
    }
}

/// Resident pages (`/proc/self/statm`'s second field) in bytes; 4 KiB pages.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}
