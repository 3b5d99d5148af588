//! Asked for backtraces (`RUST_BACKTRACE=full`, `RUST_LIB_BACKTRACE=1`,
//! `WASMTIME_BACKTRACE_DETAILS=1`), host-test still keeps them out of its messages: every error
//! path of the CLI and the sidecar's answer to a trap read as one line for people.

mod common;

use std::ffi::OsStr;
use std::io::{Read as _, Write as _};
use std::process::{Command, Stdio};

use wif_push_emulator::EmulatorConfig;

const ASK_FOR_BACKTRACES: [(&str, &str); 3] = [
    ("RUST_BACKTRACE", "full"),
    ("RUST_LIB_BACKTRACE", "1"),
    ("WASMTIME_BACKTRACE_DETAILS", "1"),
];

/// What a stack trace, Rust's or Wasmtime's, leaves in text.
fn assert_no_backtrace(what: &str, text: &str) {
    let lower = text.to_lowercase();
    // The guest's own note on a failed allocation ("run with `RUST_BACKTRACE=1` ... to display
    // a backtrace") is a line of its stderr, not a trace, and may stay.
    for mark in [
        "stack backtrace",
        "wasm backtrace",
        "error while executing at",
        "wasm function",
        ".rs:",
        "0x",
        "panicked at",
    ] {
        assert!(!lower.contains(mark), "{what}: {mark:?} in\n{text}");
    }
    let numbered_frame = text.lines().any(|line| {
        let line = line.trim_start();
        line.split_once(": ")
            .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    });
    assert!(!numbered_frame, "{what}: a numbered frame in\n{text}");
}

fn with_backtraces(mut cmd: Command) -> Command {
    cmd.envs(ASK_FOR_BACKTRACES);
    cmd
}

fn run(what: &str, cmd: Command) -> String {
    let output = with_backtraces(cmd).output().unwrap();
    assert!(!output.status.success(), "{what} succeeded");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.trim().is_empty(), "{what}: no message");
    assert_no_backtrace(what, &stderr);
    stderr
}

#[test]
fn no_error_path_prints_a_backtrace_when_one_is_asked_for() {
    let common::Started {
        demo,
        dir,
        dest: trapping,
        runtime: _runtime,
    } = common::start_demo(EmulatorConfig::demo(), common::TRAPPING);
    let path = |name: &str| dir.path().join(name);
    let bad_value = path("bad.toml");
    std::fs::write(
        &bad_value,
        common::dest_toml(&demo, "").replace("bucket = \"", "bucket = \"gs://"),
    )
    .unwrap();
    let good = path("good.toml");
    std::fs::write(&good, common::dest_toml(&demo, "")).unwrap();
    let big = path("big.bin");
    std::fs::write(&big, vec![7u8; 1 << 20]).unwrap();
    let os = |parts: &[&OsStr]| parts.iter().map(|p| p.to_os_string()).collect::<Vec<_>>();

    let cases: Vec<(&str, Vec<std::ffi::OsString>)> = vec![
        (
            "a trap",
            os(&[
                "deliver".as_ref(),
                "--max-guest-memory".as_ref(),
                "32".as_ref(),
                "--config".as_ref(),
                trapping.as_os_str(),
                big.as_os_str(),
            ]),
        ),
        (
            "a bad value",
            os(&[
                "deliver".as_ref(),
                "--config".as_ref(),
                bad_value.as_os_str(),
                big.as_os_str(),
            ]),
        ),
        (
            "a missing configuration",
            os(&[
                "token".as_ref(),
                "--config".as_ref(),
                path("absent.toml").as_os_str(),
            ]),
        ),
        (
            "a missing file",
            os(&[
                "deliver".as_ref(),
                "--config".as_ref(),
                good.as_os_str(),
                path("absent.bin").as_os_str(),
            ]),
        ),
        (
            "a bad flag",
            os(&["deliver".as_ref(), "--no-such-flag".as_ref()]),
        ),
    ];
    for (what, args) in &cases {
        let args: Vec<&OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        run(what, common::host_test_against(&demo, &args));
        let mut json_args = vec![OsStr::new("--json")];
        json_args.extend(&args);
        run(what, common::host_test_against(&demo, &json_args));
    }
    // The request is denied by the outbound policy: the endpoint is not allowed.
    std::fs::write(
        &good,
        common::dest_toml(
            &demo,
            "[endpoints]\nsts = \"https://sts.example.com/v1/token\"\n",
        ),
    )
    .unwrap();
    let args = [OsStr::new("token"), "--config".as_ref(), good.as_os_str()];
    run("a denied host", common::host_test_against(&demo, &args));
    let mut sign = Command::new(env!("CARGO_BIN_EXE_host-test"));
    sign.arg("sign").stdin(Stdio::null());
    run("sign without input", sign);
}

#[test]
fn the_sidecar_answers_a_trap_without_a_backtrace() {
    let common::Started {
        demo,
        dest,
        dir: _dir,
        runtime: _runtime,
    } = common::start_demo(EmulatorConfig::demo(), common::TRAPPING);
    let args = [
        OsStr::new("serve"),
        "--max-guest-memory".as_ref(),
        "32".as_ref(),
        "--config".as_ref(),
        dest.as_os_str(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
    ];
    let mut child = with_backtraces(common::host_test_against(&demo, &args))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = common::served_at(&mut child);
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let body = vec![1u8; 1 << 20];
    let head = format!(
        "PUT /v1/objects/big.bin HTTP/1.1\r\nhost: localhost\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    // The instance may trap before it has read the whole body.
    let _ = stream.write_all(&body);
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 500"), "{answer}");
    assert!(answer.contains("\"step\":\"component\""), "{answer}");
    let (_, answer_body) = answer.split_once("\r\n\r\n").unwrap();
    assert_no_backtrace("the sidecar's answer", answer_body);
    common::sigterm(&child);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_no_backtrace("serve's log", &String::from_utf8_lossy(&output.stderr));
}
