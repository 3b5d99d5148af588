//! `host-test deliver`: files into the destination's bucket, one JSON receipt per line on
//! stdout; a progress bar for large files when stdout is a terminal.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use wif_push_host::runtime::{
    GuestEnv, Runtime, Session, Settings, Trapped, delivery, receipt_json,
};

use crate::{Cli, DestArgs, GuestLimits, NetArgs};

/// What the command line says about the objects.
pub struct ObjectArgs<'a> {
    pub prefix: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub metadata: &'a [(String, String)],
}

pub async fn run(
    cli: &Cli,
    dest: &DestArgs,
    args: ObjectArgs<'_>,
    net: &NetArgs,
    limits: &GuestLimits,
    files: &[PathBuf],
) -> Result<()> {
    let mut destination = wif_push_host::dest::load(&dest.config)?;
    if let Some(prefix) = args.prefix {
        destination.prefix = Some(prefix.to_owned());
    }
    let outbound = net.outbound()?;
    let runtime = Runtime::load(cli.component.as_deref())?;
    let env = GuestEnv::aws(|name| std::env::var(name).ok());
    let fresh = || async {
        let mut session = Session::new(&runtime, &env, outbound.clone()).await?;
        if let Some(bytes) = limits.bytes() {
            session.limit_guest_memory(bytes);
        }
        anyhow::Ok(session)
    };
    let mut session = fresh().await?;
    let mut failed = 0;
    let mut total = 0;
    for file in files {
        let object = (args.content_type.map(str::to_owned), args.metadata.to_vec());
        if let Some(uri) = file.to_str().filter(|f| f.starts_with("s3://")) {
            let (done, not) = deliver_s3(cli, &mut session, &destination, uri, object).await;
            total += done + not;
            failed += not;
            if session.is_broken() {
                session = fresh().await?;
            }
            continue;
        }
        total += 1;
        match deliver_file(&mut session, &destination, file, object).await {
            Ok(receipt) => println!("{receipt}"),
            Err(err) => {
                failed += 1;
                let err = match err.downcast_ref::<Trapped>() {
                    Some(trap) => anyhow::anyhow!(
                        "the component trapped while delivering {}: {trap}; the rest goes on",
                        file.display()
                    ),
                    None => err,
                };
                crate::report(cli, Some(file), &err);
            }
        }
        // A trapped instance cannot be entered again (and its token cache is gone with it).
        if session.is_broken() {
            session = fresh().await?;
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {total} objects were not delivered (see above)");
    }
    Ok(())
}

/// Delivers the objects `uri` stands for (one, or every one under a prefix); returns how many
/// were delivered and how many not, each failure reported.
async fn deliver_s3(
    cli: &Cli,
    session: &mut Session,
    destination: &Settings,
    uri: &str,
    (content_type, custom): (Option<String>, Vec<(String, String)>),
) -> (usize, usize) {
    let planned = match session.plan_s3(destination, uri).await {
        Ok(planned) => planned,
        Err(err) => {
            crate::report(cli, Some(Path::new(uri)), &err);
            return (0, 1);
        }
    };
    let (mut done, mut not) = (0, 0);
    for object in planned {
        let spec = delivery::Object {
            name: object.name,
            size: object.size,
            content_type: content_type.clone(),
            metadata: custom.clone(),
            session: None,
        };
        match session.deliver_s3(destination, &object.source, &spec).await {
            Ok(receipt) => {
                done += 1;
                println!("{}", receipt_json(&receipt, None));
            }
            Err(err) => {
                not += 1;
                crate::report(cli, Some(Path::new(&object.source)), &err);
                if session.is_broken() {
                    break;
                }
            }
        }
    }
    (done, not)
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
        session: None,
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
