//! Where the emulated bucket keeps objects (a temporary directory, a given one, nowhere), and
//! that uploads stream: memory stays flat, and a benchmark of the throughput.

mod common;

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use serde_json::json;
use wif_push_emulator::{EmulatorConfig, Storage};

use common::gcs::*;
use common::*;

#[tokio::test]
async fn discard_mode_hashes_and_counts_but_keeps_no_bytes() {
    let mut config = EmulatorConfig::demo();
    config.storage = Storage::Discard;
    let emulator = start(config).await;
    assert!(emulator.storage_dir().is_none());
    let token = emulator.issue_access_token_for_tests();
    let data = pattern(0..100_000);
    try_multipart(&emulator, &token, "d", &data)
        .await
        .unwrap()
        .expect(200);
    let stored = emulator.object("d").unwrap();
    assert_eq!(stored.path, None);
    assert_eq!(stored.size, 100_000);
    assert_eq!(stored.sha256_hex, hashes(&data).2);
    // Creation still counts: no second one.
    try_multipart(&emulator, &token, "d", &data)
        .await
        .unwrap()
        .expect(412);
    let session = start_session(&emulator, &token, "e", json!({})).await;
    chunk(&emulator, &session, 0..KIB256, "*", &[])
        .await
        .expect(308);
    chunk(
        &emulator,
        &session,
        KIB256..KIB256 + 7,
        &(KIB256 + 7).to_string(),
        &[],
    )
    .await
    .expect(200);
    assert_eq!(
        emulator.object("e").unwrap().sha256_hex,
        hashes(&pattern(0..KIB256 + 7)).2
    );
}

#[tokio::test]
async fn disk_mode_uses_the_given_directory_and_temp_dirs_go_away() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EmulatorConfig::demo();
    config.storage = Storage::Disk(dir.path().join("objects"));
    let emulator = start(config).await;
    let token = emulator.issue_access_token_for_tests();
    try_multipart(&emulator, &token, "a/b c", b"x")
        .await
        .unwrap()
        .expect(200);
    let stored = emulator.object("a/b c").unwrap();
    assert_eq!(
        stored.path.unwrap(),
        dir.path().join("objects").join("a%2Fb%20c")
    );
    drop(emulator);
    assert!(dir.path().join("objects/a%2Fb%20c").exists());

    let emulator = start(EmulatorConfig::demo()).await;
    let temp = emulator.storage_dir().unwrap().to_path_buf();
    assert!(temp.exists());
    drop(emulator);
    assert!(!temp.exists());
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// 64 MiB in 16 MiB chunks, streamed: the emulator must not hold a chunk in memory. Measured in
/// a process of its own (this test binary, run again for this one test), so that the other
/// tests' allocations do not count.
#[test]
fn a_64_mib_resumable_upload_streams() {
    const NAME: &str = "a_64_mib_resumable_upload_streams";
    const CHILD: &str = "GCS_EMULATOR_MEASURE_RSS";
    if std::env::var_os(CHILD).is_none() {
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stdout}\n{stderr}");
        assert!(stdout.contains("1 passed"), "{stdout}");
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(upload_64_mib_measuring_rss());
}

async fn upload_64_mib_measuring_rss() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();
    let total = 64 << 20;
    let chunk_size = 16 << 20;
    let session = start_session(&emulator, &token, "large", json!({})).await;
    let baseline = rss_bytes();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(baseline));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_bytes(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let mut offset = 0;
    while offset < total {
        let end = offset + chunk_size;
        let total_text = if end == total {
            total.to_string()
        } else {
            "*".into()
        };
        let answer = chunk(&emulator, &session, offset..end, &total_text, &[]).await;
        answer.expect(if end == total { 200 } else { 308 });
        offset = end;
    }
    sampler.abort();
    let growth = peak
        .load(std::sync::atomic::Ordering::Relaxed)
        .saturating_sub(baseline);
    println!("RSS growth during the upload: {} KiB", growth >> 10);
    assert!(growth < 12 << 20, "RSS grew by {} MiB", growth >> 20);
    let stored = emulator.object("large").unwrap();
    assert_eq!(stored.size, total);
    assert_eq!(
        std::fs::metadata(stored.path.unwrap()).unwrap().len(),
        total
    );
}

/// The same bytes over and over, without generating them: measures the emulator, not the client.
struct RepeatBody {
    frame: Bytes,
    left: u64,
}

impl Body for RepeatBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(self.frame.len() as u64);
        self.left -= n;
        Poll::Ready(Some(Ok(Frame::data(self.frame.slice(..n as usize)))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

/// Throughput of a 1 GiB resumable upload in 16 MiB chunks, to disk and discarded:
/// `cargo test --release -p wif-push-emulator --test gcs_storage_modes throughput -- --ignored
/// --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run it on purpose"]
async fn throughput_of_a_1_gib_resumable_upload() {
    const TOTAL: u64 = 1 << 30;
    const CHUNK: u64 = 16 << 20;
    for storage in [Storage::Discard, Storage::TempDir] {
        let mut config = EmulatorConfig::demo();
        config.storage = storage.clone();
        let emulator = start(config).await;
        let token = emulator.issue_access_token_for_tests();
        let session = start_session(&emulator, &token, "bench", json!({})).await;
        let frame = Bytes::from(pattern(0..256 * 1024));
        let started = Instant::now();
        for offset in (0..TOTAL).step_by(CHUNK as usize) {
            let end = offset + CHUNK;
            let range = format!(
                "bytes {offset}-{}/{}",
                end - 1,
                if end == TOTAL {
                    TOTAL.to_string()
                } else {
                    "*".into()
                }
            );
            let body = RepeatBody {
                frame: frame.clone(),
                left: CHUNK,
            }
            .boxed();
            let answer = send(
                &emulator,
                Method::PUT,
                &session,
                &[("content-range", &range)],
                body,
            )
            .await;
            answer.expect(if end == TOTAL { 200 } else { 308 });
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{storage:?}: 1 GiB in {seconds:.2} s = {:.0} MiB/s",
            1024.0 / seconds
        );
        assert_eq!(emulator.object("bench").unwrap().size, TOTAL);
    }
}
