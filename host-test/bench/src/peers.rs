//! The peers wif-push is measured against, found where they are installed: `curl`, the Python
//! `google-cloud-storage` client (in `$WIF_PUSH_PYTHON`, the project's `.venv`, or `python3`)
//! and `gcloud`.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context as _, Result, bail};
use tokio::process::Command;

/// The peer script, run by the Python interpreter that has the client.
pub const PEER_PY: &str = include_str!("peer.py");

pub struct Peers {
    pub curl: Option<PathBuf>,
    pub curl_version: Option<String>,
    pub python: Option<PathBuf>,
    pub python_version: Option<String>,
    pub gcloud: Option<PathBuf>,
    pub gcloud_version: Option<String>,
}

impl Peers {
    pub async fn find() -> Self {
        let curl = on_path("curl");
        let curl_version = match &curl {
            Some(curl) => first_line(curl, &["--version"]).await,
            None => None,
        };
        let mut python = None;
        let mut python_version = None;
        for candidate in python_candidates() {
            let probe =
                "import google.cloud.storage as s; print('google-cloud-storage', s.__version__)";
            if let Some(version) = first_line(&candidate, &["-c", probe]).await {
                python = Some(candidate);
                python_version = Some(version);
                break;
            }
        }
        let gcloud = on_path("gcloud");
        let gcloud_version = match &gcloud {
            Some(gcloud) => first_line(gcloud, &["--version"]).await,
            None => None,
        };
        Peers {
            curl,
            curl_version,
            python,
            python_version,
            gcloud,
            gcloud_version,
        }
    }

    /// One line for each peer that is absent.
    pub fn missing(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.curl.is_none() {
            notes.push("curl is not installed: no ceiling is measured".to_owned());
        }
        if self.python.is_none() {
            notes.push(
                "no Python with google-cloud-storage (set WIF_PUSH_PYTHON, or run scripts/test \
                 to create .venv): the Python client is skipped"
                    .to_owned(),
            );
        }
        if self.gcloud.is_none() {
            notes.push("gcloud is not installed: skipped".to_owned());
        }
        notes
    }

    /// Runs the peer script with `args`; its one JSON line.
    pub async fn python(&self, dir: &Path, args: &[&str]) -> Result<serde_json::Value> {
        self.python_with(dir, args, &[]).await
    }

    /// [`Peers::python`] with `env` added to its environment.
    pub async fn python_with(
        &self,
        dir: &Path,
        args: &[&str],
        env: &[(&str, &Path)],
    ) -> Result<serde_json::Value> {
        let Some(python) = &self.python else {
            bail!("no Python with google-cloud-storage");
        };
        let script = dir.join("peer.py");
        if !script.exists() {
            std::fs::write(&script, PEER_PY)?;
        }
        let output = Command::new(python)
            .arg(&script)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .await
            .context("run the Python peer")?;
        if !output.status.success() {
            bail!(
                "the Python client failed: {}",
                last_line(&String::from_utf8_lossy(&output.stderr))
            );
        }
        serde_json::from_slice(&output.stdout).context("read the Python peer's answer")
    }
}

/// The last non-empty line of a tool's error output, for the table.
pub fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_owned()
}

fn python_candidates() -> Vec<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(python) = std::env::var_os("WIF_PUSH_PYTHON") {
        candidates.push(PathBuf::from(python));
    }
    // The project's .venv (scripts/test creates it), from the repository root or below it.
    if let Ok(mut dir) = std::env::current_dir() {
        loop {
            let venv = dir.join(".venv/bin/python");
            if venv.exists() {
                candidates.push(venv);
                break;
            }
            if !dir.pop() {
                break;
            }
        }
    }
    // The repository root is two levels above this crate (host-test/bench).
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    if root.exists() {
        candidates.push(root);
    }
    if let Some(python) = on_path("python3") {
        candidates.push(python);
    }
    candidates
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

async fn first_line(program: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .await
        .ok()?;
    if !output.status.success() {
        return None;
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .next()
        .map(|l| l.trim().to_owned())
}
