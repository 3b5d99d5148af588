//! `host-test emulate`: the embedded emulator of Google's STS, IAM Credentials and Cloud Storage
//! on a port until interrupted, accepting the AWS credentials in this process's environment (or
//! AWS's documentation example keys), with the DEST.toml and flags that reach it.

use std::net::SocketAddr;

use anyhow::Result;
use wif_push_emulator::{AwsIdentity, Emulator, EmulatorConfig, Misconfig, Wan};

/// `discard`: objects are CRC32C-checked and dropped, as the benchmarks' emulator does, so that
/// a sender can be measured or profiled against it.
pub async fn run(
    listen: SocketAddr,
    misconfig: &[Misconfig],
    wan: Wan,
    discard: bool,
) -> Result<()> {
    let mut config = EmulatorConfig::demo();
    if discard {
        config.storage = wif_push_emulator::Storage::Benchmark;
    }
    config.wan = wan;
    config.provider_id = "aws-sender".into();
    config.misconfig = misconfig.to_vec();
    if let (Ok(key), Ok(secret)) = (
        std::env::var("AWS_ACCESS_KEY_ID"),
        std::env::var("AWS_SECRET_ACCESS_KEY"),
    ) {
        config.identities[0] = AwsIdentity {
            access_key_id: key,
            secret_access_key: secret,
            session_token: std::env::var("AWS_SESSION_TOKEN").ok(),
            role_arn: config.identities[0].role_arn.clone(),
        };
    }
    let emulator = Emulator::start(config, listen).await?;
    // SIGTERM as Ctrl-C: either way the emulator is dropped and its temporary store removed.
    let stop = wif_push_host::serve::terminated()?;
    let c = emulator.config();
    let addr = emulator.addr();
    println!("Google STS, IAM Credentials, Cloud Storage and AWS STS emulator on http://{addr}");
    if !wan.is_loopback() {
        println!(
            "a wide-area link: {} ms round trip per connection and request, {}",
            wan.round_trip.as_millis(),
            wan.bandwidth
                .map_or("no bandwidth cap".to_owned(), |b| format!(
                    "{} Mbit/s per connection",
                    b * 8 / 1_000_000
                ))
        );
    }
    if let Some(dir) = emulator.storage_dir() {
        println!("objects are kept in {} until it stops", dir.display());
    }
    println!(
        "\nDEST.toml:\n  project_number = \"{}\"\n  pool_id = \"{}\"\n  provider_id = \"{}\"",
        c.project_number, c.pool_id, c.provider_id
    );
    println!(
        "  service_account = \"{}\"\n  bucket = \"{}\"\n  aws_region = \"us-east-1\"",
        c.service_account, c.bucket
    );
    println!(
        "\nflags: --connect-to sts.googleapis.com={addr} --connect-to iamcredentials.googleapis.com={addr} \
         --connect-to storage.googleapis.com={addr} --connect-to sts.us-east-1.amazonaws.com={addr}"
    );
    stop.await?;
    drop(emulator);
    Ok(())
}
