//! `host-test deliver`: files into the destination's bucket, one JSON receipt per line on
//! stdout; a progress bar for large files when stdout is a terminal.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use wif_push_host::runtime::{Session, Settings, delivery, receipt_json};

use crate::{Cli, DestArgs, NetArgs, session};

pub async fn run(
    cli: &Cli,
    dest: &DestArgs,
    prefix: Option<&str>,
    content_type: Option<&str>,
    metadata: &[(String, String)],
    net: &NetArgs,
    files: &[PathBuf],
) -> Result<()> {
    let mut destination = wif_push_host::dest::load(&dest.config)?;
    if let Some(prefix) = prefix {
        destination.prefix = Some(prefix.to_owned());
    }
    let mut session = session(cli, net.outbound()?).await?;
    let mut failed = 0;
    for file in files {
        let object = (content_type.map(str::to_owned), metadata.to_vec());
        match deliver_file(&mut session, &destination, file, object).await {
            Ok(receipt) => println!("{receipt}"),
            Err(err) => {
                failed += 1;
                eprintln!("host-test deliver: {}: {err:#}", file.display());
            }
        }
    }
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} files were not delivered (see above)",
            files.len()
        );
    }
    Ok(())
}

async fn deliver_file(
    session: &mut Session,
    destination: &Settings,
    file: &Path,
    (content_type, custom): (Option<String>, Vec<(String, String)>),
) -> Result<String> {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| {
            format!(
                "{} has no UTF-8 file name to use as object name",
                file.display()
            )
        })?
        .to_owned();
    let opened = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("open {}", file.display()))?;
    let metadata = opened.metadata().await?;
    anyhow::ensure!(
        metadata.is_file(),
        "{} is not a regular file",
        file.display()
    );
    let object = delivery::Object {
        name,
        size: Some(metadata.len()),
        content_type,
        metadata: custom,
    };
    // A progress bar for large files, only where a person watches.
    let receipt =
        if std::io::IsTerminal::is_terminal(&std::io::stdout()) && metadata.len() > 8 << 20 {
            let bar = indicatif::ProgressBar::new(metadata.len()).with_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} {wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}",
                )
                .expect("a valid template"),
            );
            bar.set_message(object.name.clone());
            let result = session
                .deliver(destination, &object, bar.wrap_async_read(opened))
                .await;
            bar.finish_and_clear();
            result?
        } else {
            session.deliver(destination, &object, opened).await?
        };
    Ok(receipt_json(&receipt, Some(file)))
}
