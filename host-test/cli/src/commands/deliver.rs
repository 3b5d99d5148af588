//! `host-test deliver`: a batch of files, directories, `s3://` objects and prefixes, and
//! manifest entries into the destination's bucket, several at once, exactly once across crashes
//! (README: Batches). One JSON receipt per object on stdout; errors and a summary on stderr;
//! a progress bar when stderr is a terminal.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use wif_push_host::batch::{self, Event, IfExists, Instances, Options, Outcome, ledger, plan};
use wif_push_host::runtime::{GuestEnv, Runtime};

use crate::{Cli, DestArgs, GuestLimits, NetArgs};

/// What `deliver` takes besides the destination and the network.
#[derive(Args)]
pub struct DeliverArgs {
    /// Object-name prefix, instead of the destination's.
    #[arg(long)]
    prefix: Option<String>,
    /// Content-Type of the objects (default application/octet-stream).
    #[arg(long, value_name = "TYPE")]
    content_type: Option<String>,
    /// Custom object metadata (x-goog-meta-KEY), repeatable.
    #[arg(long = "metadata", value_name = "KEY=VALUE", value_parser = crate::key_value)]
    metadata: Vec<(String, String)>,
    /// JSON Lines of {"source", "name", "content_type"?, "metadata"?}; `-` reads standard input.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// Objects in flight at once, each on its own instance of the component.
    #[arg(long, value_name = "N", default_value_t = batch::DEFAULT_CONCURRENCY,
          value_parser = clap::builder::TypedValueParser::map(
              clap::value_parser!(u16).range(1..=256), usize::from))]
    concurrency: usize,
    /// The delivery ledger (default: one per bucket and prefix under the user's state
    /// directory), which makes running the same command again deliver what is left.
    #[arg(long, value_name = "FILE", conflicts_with = "no_ledger")]
    ledger: Option<PathBuf>,
    /// Keep no ledger: a rerun after a crash starts over, and meets 412 for what was delivered.
    #[arg(long)]
    no_ledger: bool,
    /// What to do when a name the ledger does not know already exists. Nothing is ever
    /// overwritten.
    #[arg(long, value_enum, default_value_t = IfExistsArg::Fail)]
    if_exists: IfExistsArg,
    /// After every object is delivered, write one JSON object listing them all (name, size,
    /// CRC32C, generation, source) under this name, for the partner's pipeline.
    #[arg(long, value_name = "NAME")]
    manifest_object: Option<String>,
    /// Deliver only the INDEX-th of COUNT stable parts of the batch (by a hash of each object's
    /// name; INDEX from 0), with a ledger of its own: COUNT workers given the same inputs
    /// deliver the batch once between them.
    #[arg(long, value_name = "INDEX/COUNT", value_parser = clap::builder::ValueParser::new(
        |text: &str| text.parse::<plan::Shard>()))]
    shard: Option<plan::Shard>,
    /// Print the plan (names, sizes, sources) as JSON Lines and send nothing.
    #[arg(long)]
    dry_run: bool,
    /// Files, directories (recursive), s3://BUCKET/KEY and s3://BUCKET/PREFIX/.
    #[arg(value_name = "SOURCE", required_unless_present = "manifest")]
    sources: Vec<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum IfExistsArg {
    /// The object fails, and the command exits non-zero.
    Fail,
    /// The object is skipped and counted as skipped.
    Skip,
}

pub async fn run(
    cli: &Cli,
    dest: &DestArgs,
    args: &DeliverArgs,
    net: &NetArgs,
    limits: &GuestLimits,
) -> Result<()> {
    let mut settings = wif_push_host::dest::load(&dest.config)?;
    if let Some(prefix) = &args.prefix {
        settings.prefix = Some(prefix.clone());
    }
    let destination = wif_push::config::Destination::from_settings(&settings)
        .map_err(|e| anyhow::anyhow!("{}: {e}", dest.config.display()))?;
    let defaults = plan::Defaults {
        content_type: args.content_type.clone(),
        metadata: args.metadata.clone(),
    };
    let mut plan = plan::Plan::default();
    if let Some(manifest) = &args.manifest {
        plan.add_manifest(manifest, &defaults)?;
    }
    for source in &args.sources {
        plan.add_input(source, &defaults);
    }
    let instances = Instances {
        runtime: Runtime::load(cli.component.as_deref())?,
        env: GuestEnv::aws(|name| std::env::var(name).ok()),
        outbound: net.outbound()?,
    };
    let mut first = instances.session(limits.bytes()).await?;
    batch::prepare(
        &mut first,
        &settings,
        &mut plan,
        args.manifest_object.as_deref(),
    )
    .await?;
    for problem in &plan.problems {
        crate::report(
            cli,
            Some(Path::new(&problem.source)),
            &anyhow::anyhow!("{}", problem.message),
        );
    }
    if plan.must_stop() {
        bail!("the batch cannot start as given (see above): nothing was sent");
    }
    // After the whole batch is planned and checked, so that every shard sees the same names.
    if let Some(shard) = args.shard {
        plan.keep_shard(shard, &destination.prefix);
    }
    let shard_label = args
        .shard
        .map(|s| format!("shard {s}: "))
        .unwrap_or_default();
    if args.dry_run {
        for item in &plan.items {
            println!(
                "{}",
                serde_json::json!({
                    "name": format!("{}{}", destination.prefix, item.name),
                    "size": item.size,
                    "source": item.source.to_string(),
                    "content_type": item.content_type,
                })
            );
        }
        note(
            cli,
            &format!(
                "dry run: {shard_label}{} objects would be delivered to gs://{}/{}; nothing was sent",
                plan.items.len(),
                destination.bucket,
                destination.prefix
            ),
        );
        return finish(plan.problems.len(), plan.items.len() + plan.problems.len());
    }
    let ledger = if args.no_ledger {
        None
    } else {
        let path = match &args.ledger {
            Some(path) => path.clone(),
            None => ledger::default_path(&destination.bucket, &destination.prefix, args.shard)?,
        };
        let ledger = ledger::Ledger::open(&path, &destination.bucket, &destination.prefix)?;
        if let Some(recovered) = &ledger.recovered {
            note(cli, recovered);
        }
        Some(ledger)
    };
    let total_bytes: u64 = plan.items.iter().filter_map(|i| i.size).sum();
    let bar = progress_bar(plan.items.len() as u64, total_bytes);
    let read = Arc::new(AtomicU64::new(0));
    let ticker = bar.clone().map(|bar| {
        let read = read.clone();
        tokio::spawn(async move {
            loop {
                bar.set_position(read.load(Ordering::Relaxed));
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        })
    });
    let events = {
        let bar = bar.clone();
        let json = cli.json;
        let done = AtomicU64::new(0);
        let objects = plan.items.len();
        Arc::new(move |event: Event<'_>| {
            let (outcome, source, counted) = match event {
                Event::Done { item, outcome } => (outcome, item.source.to_string(), true),
                Event::Manifest { outcome } => (outcome, "the completion manifest".into(), false),
            };
            let print = || match outcome {
                Outcome::Delivered(receipt) | Outcome::Earlier(receipt) => println!("{receipt}"),
                Outcome::Skipped(skipped) => println!("{skipped}"),
                Outcome::Failed(err) => {
                    crate::report_as(json, "deliver", Some(Path::new(&source)), err)
                }
            };
            match &bar {
                Some(bar) => {
                    bar.suspend(print);
                    if counted {
                        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                        bar.set_message(format!("{n}/{objects} objects"));
                    }
                }
                None => print(),
            }
        }) as batch::Events
    };
    let options = Options {
        concurrency: args.concurrency,
        if_exists: match args.if_exists {
            IfExistsArg::Fail => IfExists::Fail,
            IfExistsArg::Skip => IfExists::Skip,
        },
        manifest_object: args.manifest_object.clone(),
        unplanned: plan.problems.len(),
        guest_memory_limit: limits.bytes(),
        shard: args.shard,
    };
    let problems = plan.problems.len();
    let summary = batch::run(
        instances, &settings, first, plan.items, ledger, &options, events, read,
    )
    .await;
    if let Some(ticker) = ticker {
        ticker.abort();
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let summary = summary?;
    if cli.json {
        eprintln!(
            "{}",
            serde_json::json!({"summary": {
                "shard": args.shard.map(|s| s.to_string()),
                "objects": summary.objects,
                "delivered": summary.delivered,
                "earlier": summary.earlier,
                "skipped": summary.skipped,
                "failed": summary.failed,
                "untried": summary.untried,
                "bytes": summary.bytes,
                "seconds": summary.elapsed.as_secs_f64(),
            }})
        );
    } else {
        eprintln!("host-test deliver: {shard_label}{}", summary.line());
    }
    if summary.untried > 0 {
        note(
            cli,
            &format!(
                "the batch stopped at an error every object would meet (above): {} objects were \
                 not tried; fix it and run the same command again",
                summary.untried
            ),
        );
    }
    if options.manifest_object.is_some() && summary.manifest.is_none() {
        note(
            cli,
            "the completion manifest was not written: not every object was delivered",
        );
    }
    finish(
        summary.failed + summary.untried + problems,
        summary.objects + problems,
    )
}

/// A line for whoever reads stderr: text, or with `--json` a JSON object.
fn note(cli: &Cli, text: &str) {
    if cli.json {
        eprintln!("{}", serde_json::json!({ "note": text }));
    } else {
        eprintln!("host-test deliver: {text}");
    }
}

fn finish(failed: usize, total: usize) -> Result<()> {
    if failed > 0 {
        bail!("{failed} of {total} objects were not delivered (see above)");
    }
    Ok(())
}

/// A bar for the batch (objects, bytes, rate, ETA), only where a person watches.
fn progress_bar(objects: u64, bytes: u64) -> Option<indicatif::ProgressBar> {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return None;
    }
    let bar = indicatif::ProgressBar::new(bytes).with_style(
        indicatif::ProgressStyle::with_template(
            "{msg} {wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .expect("a valid template"),
    );
    bar.set_message(format!("0/{objects} objects"));
    Some(bar)
}
