//! Delivery through the component against the embedded emulator, which behaves like GCS where
//! third-party emulators do not (checksums, preconditions, resumable sessions), with faults.

mod common;

use tokio::io::AsyncReadExt as _;
use wif_push_bench::demo::{Demo, write_file};
use wif_push_emulator::{EmulatorConfig, Endpoint, FaultPlan, Storage};
use wif_push_host::runtime::{Runtime, StepError, delivery};

fn object(name: &str, size: Option<u64>) -> delivery::Object {
    delivery::Object {
        name: name.into(),
        size,
        content_type: Some("application/octet-stream".into()),
        metadata: vec![],
        session: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_deliveries_with_random_faults_lose_corrupt_and_duplicate_nothing() {
    let mut config = EmulatorConfig::demo();
    config.faults = FaultPlan::random(20261126, 0.3);
    let mut demo = Demo::start(config).await.unwrap();
    // Small objects in resumable sessions too, and fast retries, so 200 deliveries stay quick.
    demo.destination.single_request_limit = Some(96 * 1024);
    demo.destination.chunk_size = Some(256 * 1024);
    demo.destination.initial_retry_delay_ms = Some(5);
    let runtime = Runtime::load(None).unwrap();
    let mut session = demo.session(&runtime).await.unwrap();
    let dir = tempfile::tempdir().unwrap();

    let (mut delivered, mut unconfirmed, mut failed) = (0, 0, 0);
    for i in 0..200u64 {
        let size = (i * 7919) % (900 * 1024);
        let path = dir.path().join(format!("f{i}"));
        let sha256 = write_file(&path, size).unwrap();
        let name = format!("faults/f{i}");
        let file = tokio::fs::File::open(&path).await.unwrap();
        let result = session
            .deliver(
                &demo.destination,
                &object(&format!("faults/f{i}"), Some(size)),
                file,
            )
            .await;
        let stored = demo.emulator.object(&format!("demo/{name}"));
        match result {
            Ok(receipt) => {
                let stored = stored.unwrap_or_else(|| panic!("{name}: a receipt but no object"));
                assert_eq!(stored.sha256_hex, sha256, "{name}: stored bytes differ");
                assert_eq!(receipt.size, size);
                match receipt.status {
                    delivery::Status::Delivered => delivered += 1,
                    delivery::Status::DeliveredUnconfirmed => unconfirmed += 1,
                }
            }
            Err(err) => {
                // Reported, never silent; and whatever landed is intact.
                err.downcast::<StepError>()
                    .expect("a step error with its diagnosis");
                if let Some(stored) = stored {
                    assert_eq!(
                        stored.sha256_hex, sha256,
                        "{name}: a failed delivery left other bytes"
                    );
                }
                failed += 1;
            }
        }
    }
    assert_eq!(delivered + unconfirmed + failed, 200);
    assert!(
        delivered > 150,
        "delivered {delivered}, unconfirmed {unconfirmed}, failed {failed}"
    );
    // Each name created at most once (a second creation would have been a 412, not an object).
    let objects = demo.emulator.objects();
    let mut names: Vec<&str> = objects.iter().map(|o| o.name.as_str()).collect();
    names.dedup();
    assert_eq!(names.len(), objects.len());
    // Resumed uploads never re-sent committed bytes, and faults really happened.
    let log = demo.emulator.log();
    let gcs: Vec<_> = log.iter().filter_map(|e| e.gcs.as_ref()).collect();
    assert_eq!(
        gcs.iter().map(|g| g.bytes_resent).sum::<u64>(),
        0,
        "committed bytes sent again"
    );
    assert!(
        gcs.iter().filter(|g| g.fault.is_some()).count() > 50,
        "the faults were injected"
    );
    assert_eq!(
        demo.emulator.count(Endpoint::Sts),
        1,
        "one token served every delivery"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gibibyte_streams_through_a_bounded_guest_memory() {
    const GIB: u64 = 1 << 30;
    const CHUNK: u64 = 8 << 20;
    let mut config = EmulatorConfig::demo();
    config.storage = Storage::Discard;
    let mut demo = Demo::start(config).await.unwrap();
    demo.destination.chunk_size = Some(CHUNK);
    let runtime = Runtime::load(None).unwrap();
    let mut session = demo.session(&runtime).await.unwrap();
    // The memory limiter refuses growth beyond the bound: exceeding it fails the delivery.
    let bound = (CHUNK + 4 * (1 << 20)) as usize;
    session.limit_guest_memory(bound);
    let body = tokio::io::repeat(0x5A).take(GIB);
    let receipt = session
        .deliver(&demo.destination, &object("big.bin", Some(GIB)), body)
        .await
        .unwrap();
    assert_eq!(receipt.size, GIB);
    assert_eq!(receipt.upload, "resumable");
    assert_eq!(
        receipt.requests,
        1 + (GIB / CHUNK) as u32,
        "one session start, one request per chunk"
    );
    let stored = demo.emulator.object("demo/big.bin").unwrap();
    assert_eq!(stored.size, GIB);
    assert_eq!(stored.crc32c, receipt.crc32c);
    let peak = session.peak_guest_memory();
    assert!(peak <= bound, "guest memory peaked at {peak} bytes");
}

#[tokio::test]
async fn a_taken_name_is_a_conflict_and_is_never_overwritten() {
    let demo = Demo::start(EmulatorConfig::demo()).await.unwrap();
    let runtime = Runtime::load(None).unwrap();
    let mut session = demo.session(&runtime).await.unwrap();
    let first = session
        .deliver(
            &demo.destination,
            &object("report.csv", Some(5)),
            &b"first"[..],
        )
        .await
        .unwrap();
    let err = session
        .deliver(
            &demo.destination,
            &object("report.csv", Some(6)),
            &b"second"[..],
        )
        .await
        .unwrap_err()
        .downcast::<StepError>()
        .unwrap()
        .0;
    assert_eq!(err.status, Some(412));
    assert!(err.message.contains("already exists"), "{}", err.message);
    let stored = demo.emulator.object("demo/report.csv").unwrap();
    assert_eq!(stored.size, 5);
    assert_eq!(Some(stored.generation.to_string()), first.generation);
}

#[tokio::test]
async fn verify_uploads_a_uniquely_named_handshake() {
    let demo = Demo::start(EmulatorConfig::demo()).await.unwrap();
    let runtime = Runtime::load(None).unwrap();
    let mut session = demo.session(&runtime).await.unwrap();
    let a = session.verify(&demo.destination).await.unwrap();
    let b = session.verify(&demo.destination).await.unwrap();
    assert_ne!(a.name, b.name);
    assert!(
        a.name.starts_with("demo/.wif-push/handshake-"),
        "{}",
        a.name
    );
    assert_eq!(a.status, delivery::Status::Delivered);
    assert!(demo.emulator.object(&a.name).is_some());
}

#[test]
fn the_demo_runs_with_no_setup() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_host-test"))
        .arg("demo")
        .env_clear()
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The handshake, four files and one object copied from S3.
    assert_eq!(
        stdout.matches("\"status\":\"delivered\"").count(),
        6,
        "{stdout}"
    );
    assert!(
        stdout.contains("\"checksum_type\":\"FULL_OBJECT\""),
        "{stdout}"
    );
    assert!(stdout.contains("byte for byte"), "{stdout}");
}

#[tokio::test]
async fn content_type_and_custom_metadata_reach_the_object() {
    let demo = Demo::start(EmulatorConfig::demo()).await.unwrap();
    let runtime = Runtime::load(None).unwrap();
    let mut session = demo.session(&runtime).await.unwrap();
    let mut spec = object("daily.csv", Some(4));
    spec.content_type = Some("text/csv".into());
    spec.metadata = vec![("team".into(), "data".into()), ("run".into(), "42".into())];
    session
        .deliver(&demo.destination, &spec, &b"a,b\n"[..])
        .await
        .unwrap();
    let stored = demo.emulator.object("demo/daily.csv").unwrap();
    assert_eq!(stored.content_type, "text/csv");
    assert_eq!(
        stored.metadata.get("team").map(String::as_str),
        Some("data")
    );
    assert_eq!(stored.metadata.get("run").map(String::as_str), Some("42"));
}

#[test]
fn a_trap_fails_its_file_and_a_fresh_instance_delivers_the_rest() {
    let extra = format!("prefix = \"batch/\"\n{}", common::TRAPPING);
    let common::Started {
        demo,
        dir,
        dest,
        runtime: _runtime,
    } = common::start_demo(EmulatorConfig::demo(), &extra);
    let files: Vec<_> = [("first.txt", 100), ("big.bin", 1 << 20), ("last.txt", 200)]
        .iter()
        .map(|(name, size)| {
            let path = dir.path().join(name);
            write_file(&path, *size).unwrap();
            path
        })
        .collect();
    let mut args: Vec<&std::ffi::OsStr> = ["deliver", "--max-guest-memory", "32", "--config"]
        .iter()
        .map(std::ffi::OsStr::new)
        .collect();
    args.push(dest.as_os_str());
    args.extend(files.iter().map(|f| f.as_os_str()));
    let output = common::host_test_against(&demo, &args).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stdout}\n{stderr}");
    assert_eq!(stdout.lines().count(), 2, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("the component trapped while delivering")
            && stderr.contains("big.bin")
            && stderr.contains("the rest goes on"),
        "{stderr}"
    );
    assert!(!stderr.contains("cannot enter"), "{stderr}");
    let line = stderr.lines().find(|l| l.contains("trapped")).unwrap();
    assert!(!line.contains("backtrace"), "{line}");
    assert!(demo.emulator.object("batch/first.txt").is_some());
    assert!(demo.emulator.object("batch/last.txt").is_some(), "{stderr}");
    assert!(demo.emulator.object("batch/big.bin").is_none());
}

#[test]
fn with_json_every_error_line_is_json_per_file_too() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let demo = runtime
        .block_on(Demo::start(EmulatorConfig::demo()))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dest.toml");
    std::fs::write(&dest, common::dest_toml(&demo, "prefix = \"json/\"\n")).unwrap();
    let good = dir.path().join("good.txt");
    write_file(&good, 10).unwrap();
    let missing = dir.path().join("missing.txt");
    let mut args: Vec<&std::ffi::OsStr> = ["--json", "deliver", "--config"]
        .iter()
        .map(std::ffi::OsStr::new)
        .collect();
    args.push(dest.as_os_str());
    args.push(good.as_os_str());
    args.push(missing.as_os_str());
    let output = common::host_test_against(&demo, &args).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stdout}\n{stderr}");
    assert_eq!(stdout.lines().count(), 1, "one receipt: {stdout}");
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| !l.starts_with("wif-push:"))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let summary = lines
        .iter()
        .find(|l| l.get("summary").is_some())
        .expect("a summary");
    assert_eq!(summary["summary"]["delivered"], 1, "{stderr}");
    let errors: Vec<_> = lines
        .into_iter()
        .filter(|l| l.get("error").is_some())
        .collect();
    assert_eq!(errors.len(), 2, "{stderr}");
    assert_eq!(errors[0]["error"]["command"], "deliver");
    assert!(
        errors[0]["error"]["file"]
            .as_str()
            .unwrap()
            .ends_with("missing.txt"),
        "{stderr}"
    );
    assert!(
        errors[1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1 of 2"),
        "{stderr}"
    );
}
