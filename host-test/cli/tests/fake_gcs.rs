//! Interoperability with fake-gcs-server, the widely used third-party GCS emulator: files of
//! the boundary sizes go through the component (multipart and resumable), are read back with
//! Google's own Python client, and must be byte-identical. Tokens come from the embedded
//! STS/IAM emulator; fake-gcs-server does not check them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};
use wif_push_emulator::{AwsIdentity, Emulator, EmulatorConfig};
use wif_push_host::outbound::{Outbound, Policy, Route};
use wif_push_host::runtime::{GuestEnv, Runtime, Session, Settings, delivery};

const BUCKET: &str = "partner-inbox";
const KEY_ID: &str = "AKIAFAKEGCSTEST00001";
const SECRET: &str = "fake-gcs-test-secret";

/// A file of `size` deterministic, non-repeating bytes; returns its path and SHA-256.
fn make_file(dir: &Path, size: u64) -> (PathBuf, String) {
    let path = dir.join(format!("file-{size}.bin"));
    let mut hash = Sha256::new();
    let mut data = Vec::with_capacity(size as usize);
    let mut x: u64 = size ^ 0x9E37_79B9_7F4A_7C15;
    while (data.len() as u64) < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let take = (size as usize - data.len()).min(8);
        data.extend_from_slice(&x.to_le_bytes()[..take]);
    }
    hash.update(&data);
    std::fs::write(&path, &data).unwrap();
    (path, hex::encode(hash.finalize()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_boundary_size_reads_back_identically_with_googles_client() {
    let gcs = common::FakeGcs::start(BUCKET);
    let mut config = EmulatorConfig::demo();
    config.provider_id = "aws-sender".into();
    config.identities = vec![AwsIdentity {
        access_key_id: KEY_ID.into(),
        secret_access_key: SECRET.into(),
        session_token: None,
        role_arn: config.identities[0].role_arn.clone(),
    }];
    let google = Emulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let routes: Vec<Route> = [
        format!("sts.googleapis.com={}", google.addr()),
        format!("iamcredentials.googleapis.com={}", google.addr()),
        format!("storage.googleapis.com={}", gcs.addr),
    ]
    .iter()
    .map(|r| r.parse().unwrap())
    .collect();
    let env = GuestEnv::aws(|name| match name {
        "AWS_ACCESS_KEY_ID" => Some(KEY_ID.into()),
        "AWS_SECRET_ACCESS_KEY" => Some(SECRET.into()),
        _ => None,
    });
    let runtime = Runtime::load(None).unwrap();
    let mut session = Session::new(
        &runtime,
        &env,
        Outbound::new(Policy::new(&[], routes)).unwrap(),
    )
    .await
    .unwrap();
    let c = google.config();
    let destination = Settings {
        project_number: Some(c.project_number.clone()),
        pool_id: Some(c.pool_id.clone()),
        provider_id: Some(c.provider_id.clone()),
        service_account: Some(c.service_account.clone()),
        bucket: Some(BUCKET.into()),
        prefix: Some("interop/".into()),
        aws_region: Some("us-east-1".into()),
        chunk_size: Some(32 * 1024 * 1024),
        ..Default::default()
    };

    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    let sizes = [
        0,
        1,
        256 * KIB - 1,
        256 * KIB,
        256 * KIB + 1,
        8 * MIB - 1,
        8 * MIB,
        8 * MIB + 1,
        100 * MIB + 7,
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut expected = Vec::new();
    for size in sizes {
        let (path, sha256) = make_file(dir.path(), size);
        let object = delivery::Object {
            name: path.file_name().unwrap().to_str().unwrap().to_owned(),
            size: Some(size),
            content_type: None,
            metadata: vec![("origin".into(), "interop-test".into())],
            session: None,
        };
        let file = tokio::fs::File::open(&path).await.unwrap();
        let receipt = session.deliver(&destination, &object, file).await.unwrap();
        assert_eq!(receipt.size, size);
        assert_eq!(receipt.status, delivery::Status::Delivered);
        assert_eq!(
            receipt.upload,
            if size <= 8 * MIB {
                "multipart"
            } else {
                "resumable"
            },
            "size {size}"
        );
        expected.push((receipt.name, sha256, size));
    }

    let mut read_back = Command::new(common::python());
    read_back
        .arg(common::repo_root().join("tests/peers/gcs_read_back.py"))
        .arg(format!("http://{}", gcs.addr))
        .arg(BUCKET)
        .args(expected.iter().map(|(name, _, _)| name));
    let out = tokio::task::spawn_blocking(move || read_back.output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "read back: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (name, sha256, size) in &expected {
        assert_eq!(stored[name]["size"], *size, "{name}");
        assert_eq!(
            stored[name]["sha256"],
            sha256.as_str(),
            "{name} differs after the round trip"
        );
    }
    // One token exchange served every delivery.
    assert_eq!(google.count(wif_push_emulator::Endpoint::Sts), 1);
}
