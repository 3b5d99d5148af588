//! `host-test deliver` as a batch: directories, manifests, concurrency, the delivery ledger
//! (reruns, damage, a second process), `--if-exists`, `--dry-run`, the completion manifest, and
//! crash safety under `kill -9` with and without faults.

mod common;

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Started, host_test_against, run_with_stdin, start_demo};
use wif_push_emulator::{EmulatorConfig, Endpoint, FaultPlan};

/// Small objects go in one request; larger than 256 KiB through a session, in 256 KiB chunks.
const SMALL_LIMITS: &str = "single_request_limit = 262144\nchunk_size = 262144\n";

fn deliver(started: &Started, args: &[&OsStr]) -> Command {
    let mut all: Vec<&OsStr> = vec![
        OsStr::new("deliver"),
        OsStr::new("--config"),
        started.dest.as_os_str(),
    ];
    all.extend_from_slice(args);
    let mut cmd = host_test_against(&started.demo, &all);
    // The component compiled once for all these runs, so that a run's time is the batch's.
    cmd.env(
        "WIF_PUSH_CACHE_DIR",
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
    );
    cmd
}

fn run(mut cmd: Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Deterministic bytes for object `i` of size `n`.
fn content(i: usize, n: usize) -> Vec<u8> {
    (0..n).map(|j| ((i * 31 + j * 7) % 251) as u8).collect()
}

/// A directory of `count` files (the first `large` of them 700 KiB, resumable; the others
/// 1-3 KiB), some in subdirectories; returns the object names and their bytes.
fn export(dir: &Path, count: usize, large: usize) -> HashMap<String, Vec<u8>> {
    let mut objects = HashMap::new();
    for i in 0..count {
        let name = if i % 3 == 0 {
            format!("part-{}/f{i:04}.bin", i % 5)
        } else {
            format!("f{i:04}.bin")
        };
        let size = if i < large {
            700 * 1024 + i
        } else {
            1024 + (i * 37) % 2048
        };
        let bytes = content(i, size);
        let path = dir.join(&name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        objects.insert(name, bytes);
    }
    objects
}

fn receipts(output: &Output) -> Vec<serde_json::Value> {
    text(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The objects the emulator created, per name (a creation is an answer that created one).
fn creations(started: &Started) -> HashMap<String, usize> {
    let mut created = HashMap::new();
    for entry in started.demo.emulator.log() {
        if entry.endpoint == Endpoint::Gcs && entry.outcome.starts_with("created ") {
            let name = entry.outcome["created ".len()..]
                .split(" generation")
                .next()
                .unwrap()
                .to_owned();
            *created.entry(name).or_insert(0) += 1;
        }
    }
    created
}

/// The bytes the emulator stored for `name`.
fn bytes_of(started: &Started, name: &str) -> Option<Vec<u8>> {
    let object = started.demo.emulator.object(name)?;
    Some(std::fs::read(object.path.expect("stored on disk")).unwrap())
}

fn gcs_requests(started: &Started) -> usize {
    started.demo.emulator.count(Endpoint::Gcs)
}

#[test]
fn a_directory_is_delivered_concurrently_and_a_rerun_sends_nothing_again() {
    let started = start_demo(EmulatorConfig::demo(), SMALL_LIMITS);
    let dir = started.dir.path().join("export");
    let objects = export(&dir, 40, 3);
    let ledger = started.dir.path().join("ledger.jsonl");
    let args = [
        OsStr::new("--concurrency"),
        OsStr::new("6"),
        OsStr::new("--ledger"),
        ledger.as_os_str(),
        dir.as_os_str(),
    ];
    let out = run(deliver(&started, &args));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = receipts(&out);
    assert_eq!(lines.len(), 40);
    assert!(
        lines.iter().all(|r| r["status"] == "delivered"),
        "{lines:?}"
    );
    assert!(
        text(&out.stdout)
            .lines()
            .all(|l| l.starts_with("{\"status\":"))
    );
    assert!(
        text(&out.stderr)
            .contains("40 objects: 40 delivered, 0 delivered earlier, 0 skipped, 0 failed"),
        "{}",
        text(&out.stderr)
    );
    for (name, bytes) in &objects {
        let stored = bytes_of(&started, name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(&stored, bytes, "{name}");
    }
    assert!(creations(&started).values().all(|&n| n == 1));
    // Exchanged once for the batch, though six instances uploaded.
    assert_eq!(started.demo.emulator.count(Endpoint::Sts), 1);
    let before = gcs_requests(&started);
    let again = run(deliver(&started, &args));
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(
        gcs_requests(&started),
        before,
        "the rerun sent nothing to GCS"
    );
    let lines = receipts(&again);
    assert_eq!(lines.len(), 40);
    assert!(lines.iter().all(|r| r["earlier"] == true), "{lines:?}");
    assert!(
        text(&again.stdout)
            .lines()
            .all(|l| l.starts_with("{\"status\":"))
    );
    assert!(
        text(&again.stderr).contains("0 delivered, 40 delivered earlier"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn what_cannot_be_delivered_is_named_and_the_rest_goes() {
    let started = start_demo(EmulatorConfig::demo(), "");
    let dir = started.dir.path().join("export");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("good.csv"), "a,b\n").unwrap();
    std::fs::write(dir.join("sub/also.csv"), "c\n").unwrap();
    assert!(
        Command::new("mkfifo")
            .arg(dir.join("pipe"))
            .status()
            .unwrap()
            .success()
    );
    std::os::unix::fs::symlink(&dir, dir.join("sub/loop")).unwrap();
    std::os::unix::fs::symlink(dir.join("nowhere"), dir.join("dangling")).unwrap();
    std::fs::write(dir.join("bad\rname"), "x").unwrap();
    let out = run(deliver(
        &started,
        &[
            OsStr::new("--no-ledger"),
            dir.as_os_str(),
            OsStr::new("/dev/null"),
        ],
    ));
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    for named in [
        "pipe: is a FIFO",
        "sub/loop: is a symbolic link back",
        "dangling: is a symbolic link to nothing",
        "/dev/null: is a device",
        "bad\rname",
    ] {
        assert!(stderr.contains(named), "{named} in {stderr}");
    }
    assert!(
        stderr.contains("5 of 7 objects were not delivered"),
        "{stderr}"
    );
    assert!(started.demo.emulator.object("good.csv").is_some());
    assert!(started.demo.emulator.object("sub/also.csv").is_some());
}

#[test]
fn a_manifest_names_its_bad_lines_and_two_sources_for_one_name_send_nothing() {
    let started = start_demo(EmulatorConfig::demo(), "");
    let a = started.dir.path().join("a.csv");
    std::fs::write(&a, "a").unwrap();
    let good = format!(
        "{{\"source\":\"{a}\",\"name\":\"in/a.csv\",\"content_type\":\"text/csv\",\"metadata\":{{\"run\":\"7\"}}}}\n\
         {{\"source\":\"{a}\",\"nam\":\"typo\"}}\n",
        a = a.display()
    );
    let mut cmd = deliver(
        &started,
        &[
            OsStr::new("--no-ledger"),
            OsStr::new("--manifest"),
            OsStr::new("-"),
        ],
    );
    let out = run_with_stdin(std::mem::replace(&mut cmd, Command::new("true")), &good);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("the manifest on standard input, line 2"),
        "{}",
        text(&out.stderr)
    );
    let stored = started.demo.emulator.object("in/a.csv").unwrap();
    assert_eq!(stored.content_type, "text/csv");
    assert_eq!(stored.metadata.get("run").map(String::as_str), Some("7"));

    let before = gcs_requests(&started);
    let twice = format!(
        "{{\"source\":\"{a}\",\"name\":\"same\"}}\n{{\"source\":\"{a}\",\"name\":\"other\"}}\n",
        a = a.display()
    );
    let manifest = started.dir.path().join("m.jsonl");
    std::fs::write(&manifest, twice).unwrap();
    let same = started.dir.path().join("same");
    std::fs::write(&same, "b").unwrap();
    let out = run(deliver(
        &started,
        &[
            OsStr::new("--no-ledger"),
            OsStr::new("--manifest"),
            manifest.as_os_str(),
            same.as_os_str(),
        ],
    ));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("would also be same, which"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("nothing was sent"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(gcs_requests(&started), before);
}

#[test]
fn if_exists_decides_for_names_the_ledger_does_not_know_and_nothing_is_overwritten() {
    let started = start_demo(EmulatorConfig::demo(), "");
    let file = started.dir.path().join("taken.csv");
    std::fs::write(&file, "first").unwrap();
    assert!(
        run(deliver(
            &started,
            &[OsStr::new("--no-ledger"), file.as_os_str()]
        ))
        .status
        .success()
    );
    std::fs::write(&file, "second").unwrap();
    let out = run(deliver(&started, &[file.as_os_str()]));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("already exists and this ledger did not deliver it"),
        "{}",
        text(&out.stderr)
    );
    let out = run(deliver(
        &started,
        &[
            OsStr::new("--if-exists"),
            OsStr::new("skip"),
            file.as_os_str(),
        ],
    ));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(receipts(&out)[0]["status"], "skipped");
    assert!(
        text(&out.stderr).contains("1 skipped, 0 failed"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(bytes_of(&started, "taken.csv").unwrap(), b"first");
}

/// A crash can cut the ledger's last record short: the rerun drops it, says so, and asks GCS
/// instead of sending the object again.
#[test]
fn a_torn_last_record_is_recovered_without_sending_anything_twice() {
    let started = start_demo(EmulatorConfig::demo(), SMALL_LIMITS);
    let dir = started.dir.path().join("export");
    export(&dir, 6, 2);
    let ledger = started.dir.path().join("ledger.jsonl");
    let args = [OsStr::new("--ledger"), ledger.as_os_str(), dir.as_os_str()];
    assert!(run(deliver(&started, &args)).status.success());
    // The last record (the last object's receipt) cut in half, as a crash during its write
    // leaves it.
    let whole = std::fs::read_to_string(&ledger).unwrap();
    let last = whole.trim_end().rfind('\n').unwrap() + 1;
    assert!(
        whole[last..].starts_with("{\"record\":\"delivered\""),
        "{}",
        &whole[last..]
    );
    std::fs::write(&ledger, &whole[..last + (whole.len() - last) / 2]).unwrap();
    let before = creations(&started);
    let gcs_before = gcs_requests(&started);
    let out = run(deliver(&started, &args));
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("was cut short by an interrupted write"),
        "{stderr}"
    );
    assert!(
        stderr.contains("0 delivered, 6 delivered earlier"),
        "{stderr}"
    );
    assert_eq!(creations(&started), before, "nothing created again");
    // One request asked GCS about the torn object (its session's status, or its 412).
    assert_eq!(gcs_requests(&started) - gcs_before, 1);
    let again = run(deliver(&started, &args));
    assert!(
        !text(&again.stderr).contains("cut short"),
        "the ledger was repaired"
    );
    assert_eq!(
        gcs_requests(&started),
        gcs_before + 1,
        "the rerun after sends nothing"
    );
}

/// A 412 this ledger's own request met is recorded: a rerun does not take the name for one
/// an interrupted run created. A name delivered from other bytes is not this source's.
#[test]
fn names_the_ledger_saw_taken_or_delivered_from_other_bytes_are_never_reported_as_ours() {
    let started = start_demo(EmulatorConfig::demo(), "");
    let dir = started.dir.path().join("export");
    std::fs::create_dir_all(&dir).unwrap();
    let taken = dir.join("taken.csv");
    std::fs::write(&taken, "another sender's").unwrap();
    assert!(
        run(deliver(
            &started,
            &[OsStr::new("--no-ledger"), taken.as_os_str()]
        ))
        .status
        .success()
    );
    std::fs::write(&taken, "ours").unwrap();
    let ours = dir.join("ours.csv");
    std::fs::write(&ours, "day 1").unwrap();
    let ledger = started.dir.path().join("ledger.jsonl");
    let args = [OsStr::new("--ledger"), ledger.as_os_str(), dir.as_os_str()];
    for attempt in 0..2 {
        let out = run(deliver(&started, &args));
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "attempt {attempt}: {stderr}");
        assert!(
            stderr.contains("taken.csv already exists and this ledger did not deliver it"),
            "{stderr}"
        );
        assert!(!text(&out.stdout).contains("delivered-unconfirmed"));
    }
    // The next day's file of the same name and another size.
    std::fs::remove_file(&taken).unwrap();
    std::fs::write(&ours, "day 2, longer").unwrap();
    let out = run(deliver(&started, &args));
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("ours.csv was delivered earlier from"),
        "{stderr}"
    );
    assert!(stderr.contains("(5 bytes), not from this"), "{stderr}");
    assert_eq!(bytes_of(&started, "ours.csv").unwrap(), b"day 1");
}

/// A batch that was not planned whole gets no completion manifest.
#[test]
fn no_completion_manifest_when_something_could_not_be_planned() {
    let started = start_demo(EmulatorConfig::demo(), "");
    let file = started.dir.path().join("a.csv");
    std::fs::write(&file, "a").unwrap();
    let missing = started.dir.path().join("missing.csv");
    let out = run(deliver(
        &started,
        &[
            OsStr::new("--manifest-object"),
            OsStr::new("_MANIFEST.json"),
            file.as_os_str(),
            missing.as_os_str(),
        ],
    ));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("the completion manifest was not written"));
    assert!(started.demo.emulator.object("a.csv").is_some());
    assert!(started.demo.emulator.object("_MANIFEST.json").is_none());
}

#[test]
fn a_second_process_on_a_ledger_is_refused_naming_the_first() {
    let started = start_demo(EmulatorConfig::demo(), "");
    let file = started.dir.path().join("x.csv");
    std::fs::write(&file, "x").unwrap();
    let path = started.dir.path().join("ledger.jsonl");
    let c = started.demo.emulator.config();
    let held = wif_push_host::batch::ledger::Ledger::open(&path, &c.bucket, "").unwrap();
    let out = run(deliver(
        &started,
        &[OsStr::new("--ledger"), path.as_os_str(), file.as_os_str()],
    ));
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("is in use by process {}", std::process::id())),
        "{stderr}"
    );
    assert_eq!(gcs_requests(&started), 0);
    drop(held);
    // Another destination's ledger.
    let out = run(deliver(
        &started,
        &[
            OsStr::new("--prefix"),
            OsStr::new("elsewhere/"),
            OsStr::new("--ledger"),
            path.as_os_str(),
            file.as_os_str(),
        ],
    ));
    assert!(
        text(&out.stderr).contains("not to gs://partner-inbox/elsewhere/"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_dry_run_prints_the_plan_and_sends_nothing() {
    let started = start_demo(EmulatorConfig::demo(), "");
    let dir = started.dir.path().join("export");
    export(&dir, 5, 0);
    let out = run(deliver(
        &started,
        &[
            OsStr::new("--dry-run"),
            OsStr::new("--prefix"),
            OsStr::new("d/"),
            dir.as_os_str(),
        ],
    ));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan = receipts(&out);
    assert_eq!(plan.len(), 5);
    assert!(
        plan.iter()
            .all(|p| p["name"].as_str().unwrap().starts_with("d/") && p["size"].as_u64().is_some())
    );
    assert_eq!(gcs_requests(&started), 0);
    assert_eq!(started.demo.emulator.count(Endpoint::Sts), 0);
}

#[test]
fn the_completion_manifest_lists_every_object_and_lands_last() {
    let started = start_demo(EmulatorConfig::demo(), SMALL_LIMITS);
    let dir = started.dir.path().join("export");
    let objects = export(&dir, 12, 2);
    let out = run(deliver(
        &started,
        &[
            OsStr::new("--manifest-object"),
            OsStr::new("_MANIFEST.json"),
            dir.as_os_str(),
        ],
    ));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let manifest = bytes_of(&started, "_MANIFEST.json").unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let listed = manifest["objects"].as_array().unwrap();
    assert_eq!(listed.len(), objects.len());
    for entry in listed {
        let name = entry["name"].as_str().unwrap();
        let stored = started.demo.emulator.object(name).unwrap();
        assert_eq!(entry["size"].as_u64(), Some(objects[name].len() as u64));
        assert_eq!(entry["crc32c"].as_str(), Some(stored.crc32c.as_str()));
        assert!(
            entry["source"]
                .as_str()
                .unwrap()
                .ends_with(name.rsplit('/').next().unwrap())
        );
    }
    let created: Vec<_> = started
        .demo
        .emulator
        .log()
        .into_iter()
        .filter(|e| e.outcome.starts_with("created "))
        .collect();
    assert!(
        created.last().unwrap().outcome.contains("_MANIFEST.json"),
        "{created:?}"
    );
}

#[test]
fn a_destination_that_refuses_the_sender_stops_the_batch_before_any_object() {
    let mut config = EmulatorConfig::demo();
    config.misconfig = vec![wif_push_emulator::Misconfig::MissingWorkloadIdentityUser];
    let started = start_demo(config, "");
    let dir = started.dir.path().join("export");
    export(&dir, 30, 0);
    let out = run(deliver(
        &started,
        &[OsStr::new("--no-ledger"), dir.as_os_str()],
    ));
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("impersonat"), "{stderr}");
    assert!(
        stderr.contains("the batch could not start: none of its 30 objects was sent"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one error: {stderr}");
    assert_eq!(gcs_requests(&started), 0);
    assert_eq!(started.demo.emulator.count(Endpoint::Iam), 1, "asked once");
}

#[test]
fn a_bucket_that_refuses_uploads_stops_the_batch_at_the_first_refusal() {
    let mut config = EmulatorConfig::demo();
    config.faults = FaultPlan::scripted([wif_push_emulator::Fault::Status(403)]);
    let started = start_demo(config, "");
    let dir = started.dir.path().join("export");
    export(&dir, 30, 0);
    let out = run(deliver(
        &started,
        &[
            OsStr::new("--no-ledger"),
            OsStr::new("--concurrency"),
            OsStr::new("1"),
            dir.as_os_str(),
        ],
    ));
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("403"), "{stderr}");
    assert!(stderr.contains("29 objects were not tried"), "{stderr}");
    assert!(
        stderr.contains(
            "30 objects: 0 delivered, 0 delivered earlier, 0 skipped, 1 failed, 29 not tried"
        ),
        "{stderr}"
    );
    assert_eq!(gcs_requests(&started), 1);
}

/// A small xorshift: the kill times are reproducible from the seed printed on failure.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Runs the batch, killing it (SIGKILL) at random moments `kills` times, then runs it until it
/// succeeds; then checks every object exists once, byte for byte, each resumable object went
/// through one session, and no committed byte was sent twice.
fn crash_trials(trials: u64, faults: bool) {
    // A short round trip stretches a run well past the process's start, so that most kills
    // land while objects are in flight.
    let mut config = EmulatorConfig::demo();
    config.wan = wif_push_emulator::Wan {
        round_trip: Duration::from_millis(5),
        bandwidth: None,
    };
    let started = start_demo(config, SMALL_LIMITS);
    let dir = started.dir.path().join("export");
    let objects = export(&dir, 200, 8);
    let seed: u64 = std::env::var("WIF_PUSH_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    // How long an uninterrupted run takes: the kills land within it.
    let calibrate = started.dir.path().join("calibrate.jsonl");
    let t0 = std::time::Instant::now();
    let out = run(deliver(
        &started,
        &[
            OsStr::new("--prefix"),
            OsStr::new("calibrate/"),
            OsStr::new("--ledger"),
            calibrate.as_os_str(),
            dir.as_os_str(),
        ],
    ));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let window = t0.elapsed().as_millis() as u64;
    let mut interrupted = 0;
    for trial in 0..trials {
        let mut rng = Rng(seed ^ (trial + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        if faults {
            started
                .demo
                .emulator
                .set_faults(FaultPlan::random(seed + trial, 0.05));
        }
        let prefix = format!("t{trial}/");
        let ledger = started.dir.path().join(format!("ledger-{trial}.jsonl"));
        let args: Vec<PathBuf> = vec![
            "--prefix".into(),
            prefix.clone().into(),
            "--ledger".into(),
            ledger.clone(),
            "--concurrency".into(),
            "4".into(),
            dir.clone(),
        ];
        let args: Vec<&OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let kills = 2 + rng.below(3);
        for _ in 0..kills {
            let mut child = deliver(&started, &args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(rng.below(window)));
            let _ = child.kill();
            child.wait().unwrap();
            let present = objects
                .keys()
                .filter(|name| {
                    started
                        .demo
                        .emulator
                        .object(&format!("{prefix}{name}"))
                        .is_some()
                })
                .count();
            if 0 < present && present < objects.len() {
                interrupted += 1;
            }
        }
        let mut runs = 0;
        loop {
            runs += 1;
            let out = run(deliver(&started, &args));
            if out.status.success() {
                break;
            }
            assert!(
                faults && runs < 10,
                "trial {trial} (seed {seed}): run {runs} failed: {}",
                text(&out.stderr)
            );
        }
        if faults {
            started.demo.emulator.set_faults(FaultPlan::default());
        }
        for (name, bytes) in &objects {
            let full = format!("{prefix}{name}");
            let stored = bytes_of(&started, &full)
                .unwrap_or_else(|| panic!("trial {trial}: {full} missing"));
            assert!(
                stored == *bytes,
                "trial {trial} (seed {seed}): {full} differs"
            );
        }
    }
    let created = creations(&started);
    assert!(
        created.values().all(|&n| n == 1),
        "an object was created twice: {created:?}"
    );
    assert_eq!(created.len(), objects.len() * (trials as usize + 1));
    // Each resumable object: the bytes went through one session, none committed twice.
    let mut session_names: HashMap<String, String> = HashMap::new();
    let mut fed: HashMap<String, HashSet<String>> = HashMap::new();
    let mut resent = 0;
    let mut queried = HashSet::new();
    let mut continued = 0;
    for entry in started.demo.emulator.log() {
        let Some(gcs) = entry.gcs else { continue };
        resent += gcs.bytes_resent;
        let Some(session) = gcs.session else { continue };
        if let Some(name) = entry.outcome.strip_prefix("resumable session started for ") {
            session_names.insert(session.clone(), name.to_owned());
        } else if gcs
            .content_range
            .as_deref()
            .is_some_and(|r| r.starts_with("bytes */"))
        {
            queried.insert(session);
        } else if gcs.bytes_received > 0 {
            if queried.contains(&session) {
                continued += 1;
            }
            let name = session_names[&session].clone();
            fed.entry(name).or_default().insert(session);
        }
    }
    assert_eq!(resent, 0, "committed bytes were sent again");
    // The kills did land midway: batches cut short, sessions continued by a later run (a
    // status query, then more bytes).
    eprintln!(
        "{trials} trials: {interrupted} kills cut a batch short, {continued} chunks went into \
         continued sessions; a run takes {window} ms"
    );
    assert!(
        interrupted >= trials,
        "only {interrupted} kills in {trials} trials cut a batch short (a run takes {window} ms)"
    );
    assert!(continued > 0, "no session was continued after a kill");
    assert_eq!(fed.len(), 8 * (trials as usize + 1));
    for (name, sessions) in fed {
        assert_eq!(sessions.len(), 1, "{name} went through {sessions:?}");
    }
}

#[test]
fn killed_at_random_moments_a_batch_delivers_every_object_exactly_once() {
    crash_trials(20, false);
}

#[test]
fn killed_while_the_service_fails_a_batch_still_delivers_every_object_exactly_once() {
    crash_trials(5, true);
}

/// `deliver --shard I/3` three times at once, as an Indexed Job's workers run: one state
/// directory for all (so each must keep a ledger of its own), a completion manifest per shard.
#[test]
fn shards_running_at_once_deliver_every_object_exactly_once() {
    const SHARDS: usize = 3;
    let started = start_demo(EmulatorConfig::demo(), SMALL_LIMITS);
    let dir = started.dir.path().join("export");
    let objects = export(&dir, 90, 6);
    let state = started.dir.path().join("state");
    let shard = |index: usize| {
        let mut cmd = deliver(
            &started,
            &[
                OsStr::new("--shard"),
                OsStr::new(&format!("{index}/{SHARDS}")),
                OsStr::new("--concurrency"),
                OsStr::new("4"),
                OsStr::new("--manifest-object"),
                OsStr::new(&format!("_MANIFEST-{index}.json")),
                dir.as_os_str(),
            ],
        );
        cmd.env("XDG_STATE_HOME", &state)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    };
    let all_at_once = || {
        let children: Vec<_> = (0..SHARDS).map(|i| shard(i).spawn().unwrap()).collect();
        children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect::<Vec<_>>()
    };
    let outputs = all_at_once();
    let mut delivered: HashMap<String, usize> = HashMap::new();
    for (index, out) in outputs.iter().enumerate() {
        assert!(out.status.success(), "shard {index}: {}", text(&out.stderr));
        let lines = receipts(out);
        assert!(
            lines.len() > 10,
            "shard {index} delivered only {} objects",
            lines.len()
        );
        let manifest = bytes_of(&started, &format!("_MANIFEST-{index}.json"))
            .unwrap_or_else(|| panic!("shard {index} wrote no manifest"));
        let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        assert_eq!(manifest["shard"], format!("{index}/{SHARDS}"));
        let mut listed: Vec<&str> = manifest["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap())
            .collect();
        let mut mine: Vec<&str> = lines
            .iter()
            .filter(|r| !r["name"].as_str().unwrap().starts_with("_MANIFEST"))
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        listed.sort_unstable();
        mine.sort_unstable();
        assert_eq!(
            listed, mine,
            "shard {index}'s manifest lists its own objects"
        );
        for name in mine {
            *delivered.entry(name.to_owned()).or_default() += 1;
        }
        assert!(
            text(&out.stderr).contains(&format!("shard {index}/{SHARDS}: ")),
            "{}",
            text(&out.stderr)
        );
    }
    // Between them, every object once; each created once, byte for byte.
    assert_eq!(delivered.len(), objects.len());
    assert!(delivered.values().all(|&n| n == 1), "{delivered:?}");
    let created = creations(&started);
    for (name, bytes) in &objects {
        assert_eq!(created.get(name), Some(&1), "{name}");
        assert_eq!(bytes_of(&started, name).as_ref(), Some(bytes), "{name}");
    }
    let ledgers = std::fs::read_dir(state.join("wif-push/ledgers"))
        .unwrap()
        .count();
    assert_eq!(ledgers, SHARDS, "a ledger per shard");
    // Run again, all at once: every shard reports its objects and its manifest from its
    // ledger, sending nothing.
    let before = gcs_requests(&started);
    for (index, out) in all_at_once().iter().enumerate() {
        assert!(out.status.success(), "shard {index}: {}", text(&out.stderr));
        let lines = receipts(out);
        assert!(lines.iter().all(|r| r["earlier"] == true), "{lines:?}");
        assert_eq!(lines.len(), receipts(&outputs[index]).len());
    }
    assert_eq!(gcs_requests(&started), before);
}

#[test]
fn a_shard_out_of_range_is_refused_naming_the_flag() {
    let started = start_demo(EmulatorConfig::demo(), "");
    for bad in ["3/3", "1", "0/0"] {
        let out = run(deliver(
            &started,
            &[OsStr::new("--shard"), OsStr::new(bad), OsStr::new(".")],
        ));
        assert!(!out.status.success());
        let err = text(&out.stderr);
        assert!(
            err.contains("--shard") && err.contains("INDEX/COUNT"),
            "{err}"
        );
    }
    assert_eq!(started.demo.emulator.count(Endpoint::Sts), 0);
}
