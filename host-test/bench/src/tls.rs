//! Throughput over HTTPS, as users meet Google (which serves nothing else): wif-push, `curl -T`
//! and the Python client upload the same 1 GiB file to the emulator serving TLS with a
//! generated CA, in the same run. wif-push reaches it under Google's own host names
//! (`--resolve`, as `host-test deliver --resolve ... --ca-bundle CA` would), curl likewise.

use anyhow::Result;
use wif_push_emulator::{EmulatorConfig, Storage, Tls};
use wif_push_host::outbound::{Outbound, Policy, Resolve};
use wif_push_host::runtime::{Session, delivery};

use super::large::{Sink, curl_upload, deliver_file_on_worker, file_crc32c, python_upload};
use super::{Bench, GIB, Row, median, mib_per_s};
use crate::demo::{Demo, write_file};

const HOSTS: [&str; 3] = [
    "sts.googleapis.com",
    "iamcredentials.googleapis.com",
    "storage.googleapis.com",
];

pub(super) async fn run(bench: &Bench) -> Result<Vec<Row>> {
    let tls = Tls::generate()?;
    let ca = bench.dir.path().join("emulator-ca.pem");
    std::fs::write(&ca, &tls.ca_pem)?;
    let mut config = EmulatorConfig::demo();
    config.storage = Storage::Benchmark;
    config.tls = Some(tls);
    let mut demo = Demo::start(config).await?;
    demo.destination.prefix = Some("tls/".into());
    let addr = demo.emulator.addr();
    let sink = Sink {
        base: "https://storage.googleapis.com".into(),
        curl_args: vec![
            "--cacert".into(),
            ca.display().to_string(),
            "--connect-to".into(),
            format!("storage.googleapis.com:443:{}:{}", addr.ip(), addr.port()),
        ],
        python_endpoint: format!("https://127.0.0.1:{}", addr.port()),
        python_ca: Some(&ca),
    };
    let size = GIB;
    let path = bench.dir.path().join("object-tls-1GiB");
    write_file(&path, size)?;
    let crc32c = file_crc32c(&path)?;
    let check = |name: &str| super::large::check_stored(&demo, name, size, &crc32c);
    let (mut ours, mut curl, mut python) = (Vec::new(), Vec::new(), Vec::new());
    let (mut curl_error, mut python_error) = (None, None);
    for run in 0..bench.args.runs {
        if bench.peers.curl.is_some() && curl_error.is_none() {
            let name = format!("tls-curl-{run}");
            match curl_upload(bench, &demo, &sink, &path, &name).await {
                Ok(seconds) => {
                    check(&name)?;
                    curl.push(mib_per_s(size, seconds));
                }
                Err(e) => curl_error = Some(format!("{e:#}")),
            }
        }
        let name = format!("wif-push-{run}");
        let seconds = wif_push(bench, &demo, &ca, &path, &name).await?;
        check(&format!("tls/{name}"))?;
        ours.push(mib_per_s(size, seconds));
        if bench.peers.python.is_some() && python_error.is_none() {
            let name = format!("tls-python-{run}");
            match python_upload(bench, &demo, &sink, &path, &name).await {
                Ok(seconds) => {
                    check(&name)?;
                    python.push(mib_per_s(size, seconds));
                }
                Err(e) => python_error = Some(format!("{e:#}")),
            }
        }
        eprintln!(
            "throughput over TLS run {}: curl {:?} wif-push {:.0} python {:?} MiB/s",
            run + 1,
            curl.last().map(|v: &f64| v.round()),
            ours.last().copied().unwrap_or_default(),
            python.last().map(|v: &f64| v.round()),
        );
    }
    std::fs::remove_file(&path)?;

    let runs = bench.args.runs;
    let group = "throughput";
    let curl_median = (!curl.is_empty()).then(|| median(&mut curl));
    let ratio = |v: f64| curl_median.map(|c| v / c);
    let mut rows = Vec::new();
    let row = Row::new(group, "curl -T over TLS, 1 GiB (ceiling)", "MiB/s");
    rows.push(match (curl_median, &curl_error) {
        (Some(c), _) => row.value(c).ratio(Some(1.0), "curl TLS").note(format!(
            "HTTPS to the emulator (a generated CA, --cacert, --connect-to storage.googleapis.com:443); one streaming request, no checksum; median of {runs}"
        )),
        (None, Some(e)) => row.note(format!("failed: {e}")),
        (None, None) => row.note("skipped: curl is not installed"),
    });
    let v = median(&mut ours);
    rows.push(
        Row::new(group, "wif-push over TLS, 1 GiB", "MiB/s")
            .value(v)
            .ratio(ratio(v), "curl TLS")
            .target("≥ 0.7× curl", ratio(v).map(|r| r >= 0.7))
            .note(format!(
                "the same file, read as host-test deliver reads it, to storage.googleapis.com (--resolve, --ca-bundle): TLS 1.3 with rustls, resumable, CRC32C; median of {runs}"
            )),
    );
    let row = Row::new(
        group,
        "Python google-cloud-storage over TLS, 1 GiB",
        "MiB/s",
    );
    rows.push(match (python.is_empty(), &python_error) {
        (false, _) => {
            let v = median(&mut python);
            row.value(v).ratio(ratio(v), "curl TLS").note(format!(
                "{}, upload_from_filename, REQUESTS_CA_BUNDLE; median of {runs}",
                bench.peers.python_version.as_deref().unwrap_or_default()
            ))
        }
        (true, Some(e)) => row.note(format!("failed: {e}")),
        (true, None) => row.note("skipped: no Python with google-cloud-storage"),
    });
    Ok(rows)
}

/// One delivery over HTTPS through a fresh instance whose token is already cached.
async fn wif_push(
    bench: &Bench,
    demo: &Demo,
    ca: &std::path::Path,
    path: &std::path::Path,
    name: &str,
) -> Result<f64> {
    let mut policy = Policy::new(&[], Vec::new());
    policy.ca_bundle = Some(ca.to_owned());
    policy.resolve = HOSTS
        .iter()
        .map(|host| Resolve {
            host: (*host).to_owned(),
            port: Some(443),
            target: demo.emulator.addr(),
        })
        .collect();
    let mut session = Session::new(&bench.runtime, &demo.env, Outbound::new(policy)?).await?;
    session.access_token(&demo.destination).await?;
    let object = delivery::Object {
        name: name.to_owned(),
        size: Some(std::fs::metadata(path)?.len()),
        content_type: None,
        metadata: vec![],
        session: None,
    };
    let started = std::time::Instant::now();
    deliver_file_on_worker(session, &demo.destination, object, path)
        .await?
        .0?;
    Ok(started.elapsed().as_secs_f64())
}
