//! `host-test demo`: the whole keyless flow against the embedded emulator, with no set-up. The
//! emulator plays Google (STS, IAM Credentials, Cloud Storage) and accepts the AWS
//! documentation's example keys, which the component receives exactly as it would receive real
//! ones: through its environment.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use sha2::{Digest, Sha256};

use wif_push_emulator::{Emulator, EmulatorConfig, Endpoint, S3Object};
use wif_push_host::outbound::{Outbound, Policy, Route};
use wif_push_host::runtime::{GuestEnv, Runtime, Session, Settings, delivery};

const MIB: u64 = 1024 * 1024;

/// The demo's files: a handful of sizes, from a few bytes to one that needs a resumable session.
const FILES: &[(&str, u64)] = &[
    ("hello.txt", 13),
    ("orders-2026-11-26.csv", 300 * 1024),
    ("events.jsonl", 8 * MIB + 1),
    ("archive-2026-11.tar", 100 * MIB),
];

/// Everything the demo needs the emulator and the component to agree on.
pub struct Demo {
    pub emulator: Emulator,
    pub env: GuestEnv,
    pub routes: Vec<Route>,
    pub destination: Settings,
}

impl Demo {
    pub async fn start(mut config: EmulatorConfig) -> Result<Self> {
        // The demo's provider (examples/emulator.toml), unless the caller chose one.
        if config.provider_id == EmulatorConfig::demo().provider_id {
            config.provider_id = "aws-sender".into();
        }
        let emulator = Emulator::start(config, "127.0.0.1:0".parse()?).await?;
        let identity = emulator.config().identities[0].clone();
        let env = GuestEnv::aws(|name| match name {
            "AWS_ACCESS_KEY_ID" => Some(identity.access_key_id.clone()),
            "AWS_SECRET_ACCESS_KEY" => Some(identity.secret_access_key.clone()),
            "AWS_SESSION_TOKEN" => identity.session_token.clone(),
            _ => None,
        });
        let addr = emulator.addr();
        let routes = [
            "sts.googleapis.com",
            "iamcredentials.googleapis.com",
            "storage.googleapis.com",
            // AWS STS, for destinations that assume a role (the demo's region), and the S3
            // bucket the demo copies from.
            "sts.us-east-1.amazonaws.com",
            "wif-push-demo.s3.us-east-1.amazonaws.com",
        ]
        .iter()
        .map(|host| format!("{host}={addr}").parse().map_err(anyhow::Error::msg))
        .collect::<Result<Vec<Route>>>()?;
        let c = emulator.config();
        let destination = Settings {
            project_number: Some(c.project_number.clone()),
            pool_id: Some(c.pool_id.clone()),
            provider_id: Some(c.provider_id.clone()),
            service_account: Some(c.service_account.clone()),
            bucket: Some(c.bucket.clone()),
            prefix: Some("demo/".into()),
            aws_region: Some("us-east-1".into()),
            ..Default::default()
        };
        Ok(Demo {
            emulator,
            env,
            routes,
            destination,
        })
    }

    pub async fn session(&self, runtime: &Runtime) -> Result<Session> {
        Session::new(runtime, &self.env, self.outbound()?).await
    }

    /// The outbound policy that reaches the emulator.
    pub fn outbound(&self) -> Result<Outbound> {
        Outbound::new(Policy::new(&[], self.routes.clone()))
    }
}

/// Writes a file of `size` deterministic bytes; returns its SHA-256.
pub fn write_file(path: &Path, size: u64) -> Result<String> {
    use std::io::Write as _;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut hash = Sha256::new();
    let mut x: u64 = size ^ 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; 64 * 1024];
    let mut left = size;
    while left > 0 {
        for word in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        file.write_all(&block[..n])?;
        hash.update(&block[..n]);
        left -= n as u64;
    }
    file.flush()?;
    Ok(hex::encode(hash.finalize()))
}

pub async fn run(component: Option<&Path>) -> Result<()> {
    let started = Instant::now();
    let demo = Demo::start(EmulatorConfig::demo()).await?;
    let runtime = Runtime::load(component)?;
    let mut session = demo.session(&runtime).await?;
    let dir = tempfile::tempdir()?;
    println!(
        "wif-push demo: AWS credentials → SigV4 subject token → Google STS → service account → Cloud Storage"
    );
    println!(
        "(Google's endpoints are the embedded emulator on {}; it verifies every signature and checksum)\n",
        demo.emulator.addr()
    );

    let handshake = session.verify(&demo.destination).await?;
    println!(
        "handshake: {}",
        wif_push_host::runtime::receipt_json(&handshake, None)
    );

    let mut files: Vec<(PathBuf, String, u64)> = Vec::new();
    for (name, size) in FILES {
        let path = dir.path().join(name);
        let sha256 = write_file(&path, *size)?;
        files.push((path, sha256, *size));
    }
    let delivering = Instant::now();
    let mut bytes = 0;
    for (path, sha256, size) in &files {
        let object = delivery::Object {
            name: path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned(),
            size: Some(*size),
            content_type: None,
            metadata: vec![("source".into(), "wif-push demo".into())],
            session: None,
        };
        let receipt = session
            .deliver(
                &demo.destination,
                &object,
                tokio::fs::File::open(path).await?,
            )
            .await?;
        println!(
            "{}",
            wif_push_host::runtime::receipt_json(
                &receipt,
                Some(Path::new(path.file_name().unwrap_or_default()))
            )
        );
        let stored = demo.emulator.object(&receipt.name);
        anyhow::ensure!(
            stored.as_ref().is_some_and(|o| &o.sha256_hex == sha256),
            "{} is not stored byte for byte",
            receipt.name
        );
        bytes += size;
    }
    // From S3: the object streams from the emulated bucket into the partner's, its S3
    // CRC32C held against the bytes read.
    let export: Vec<u8> = (0..12 * MIB).map(|i| (i % 253) as u8).collect();
    let export_sha256 = hex::encode(Sha256::digest(&export));
    let export_size = export.len() as u64;
    demo.emulator.put_s3_object(S3Object::new(
        "wif-push-demo",
        "2026-12/orders.parquet",
        export,
    ));
    let object = delivery::Object {
        name: "orders.parquet".into(),
        size: None,
        content_type: None,
        metadata: Vec::new(),
        session: None,
    };
    let receipt = session
        .deliver_s3(
            &demo.destination,
            "s3://wif-push-demo/2026-12/orders.parquet",
            &object,
        )
        .await?;
    println!("{}", wif_push_host::runtime::receipt_json(&receipt, None));
    anyhow::ensure!(
        demo.emulator
            .object(&receipt.name)
            .is_some_and(|o| o.sha256_hex == export_sha256),
        "{} is not stored byte for byte",
        receipt.name
    );
    bytes += export_size;
    let seconds = delivering.elapsed().as_secs_f64();
    println!(
        "\n{} files, an S3 object and the handshake delivered, {:.1} MiB in {seconds:.2} s ({:.0} MiB/s), \
         byte for byte; {} token exchange (STS {} + IAM {} requests), {} Cloud Storage requests; total {:.2} s.",
        files.len(),
        bytes as f64 / MIB as f64,
        bytes as f64 / MIB as f64 / seconds,
        demo.emulator.count(Endpoint::Sts),
        demo.emulator.count(Endpoint::Sts),
        demo.emulator.count(Endpoint::Iam),
        demo.emulator.count(Endpoint::Gcs),
        started.elapsed().as_secs_f64(),
    );
    Ok(())
}
