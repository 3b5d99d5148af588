use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand};
use host_test::emulator::{AwsIdentity, Emulator, EmulatorConfig, Misconfig};
use host_test::outbound::{Outbound, Policy, Route};
use host_test::runtime::{GuestEnv, Runtime, Session, StepError, delivery, receipt_json};
use host_test::serve::{ServeOptions, Server, terminated};
use host_test::sign::{SignInput, SignOutput, parse_time};
use serde_json::json;

/// Runs the wif-push component: keyless delivery from AWS into Google Cloud Storage.
#[derive(Parser)]
#[command(name = "host-test", version)]
struct Cli {
    /// Print errors as one JSON object on stderr, for machines.
    #[arg(long, global = true)]
    json: bool,
    /// Use this component instead of the one built with host-test.
    #[arg(long, global = true, value_name = "WASM")]
    component: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sign an AWS request with SigV4 inside the component: JSON request on stdin, JSON on stdout.
    Sign,
    /// The whole keyless flow against the embedded emulator: handshake and a handful of files,
    /// tiny to 100 MiB. No set-up.
    Demo,
    /// Print the URL-encoded AWS subject token for the destination (a short-lived credential).
    SubjectToken {
        #[command(flatten)]
        dest: DestArgs,
        /// Sign at this time (RFC 3339) instead of now.
        #[arg(long, value_name = "RFC3339")]
        at: Option<String>,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Run the token flow (AWS → Google STS → service account) and print what was obtained,
    /// never the token itself.
    Token {
        #[command(flatten)]
        dest: DestArgs,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Deliver files into the destination's bucket: one JSON receipt per line on stdout.
    Deliver {
        #[command(flatten)]
        dest: DestArgs,
        /// Object-name prefix, instead of the destination's.
        #[arg(long)]
        prefix: Option<String>,
        /// Content-Type of the objects (default application/octet-stream).
        #[arg(long, value_name = "TYPE")]
        content_type: Option<String>,
        /// Custom object metadata (x-goog-meta-KEY), repeatable.
        #[arg(long = "metadata", value_name = "KEY=VALUE", value_parser = key_value)]
        metadata: Vec<(String, String)>,
        #[command(flatten)]
        net: NetArgs,
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Upload a small, uniquely named handshake object and print its receipt.
    Verify {
        #[command(flatten)]
        dest: DestArgs,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Serve the sidecar on a loopback port: an application PUTs a file to
    /// /v1/objects/NAME and gets its receipt (see README: Sidecar).
    Serve {
        /// The destination; for several, ID=DEST.toml each (repeatable).
        #[arg(long = "config", value_name = "[ID=]DEST.toml", required = true)]
        config: Vec<String>,
        #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8787")]
        listen: std::net::SocketAddr,
        /// Requests handled at once, each on its own instance of the component; more wait.
        #[arg(long, value_name = "N", default_value_t = 8)]
        max_concurrent: usize,
        /// Seconds the requests in flight may take to finish after SIGTERM or Ctrl-C.
        #[arg(long, value_name = "SECONDS", default_value_t = 120)]
        grace: u64,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Measure throughput, memory, small-object rate, cold start and signing against the
    /// peers (curl, the Python client, gcloud) and print a table; see README, Performance.
    Bench(host_test::bench::BenchArgs),
    /// Serve the embedded emulator of Google STS, IAM Credentials and Cloud Storage until
    /// interrupted. It accepts the AWS credentials in this process's environment (or AWS's
    /// documentation example keys).
    Emulate {
        #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Reproduce a partner-side misconfiguration (repeatable).
        #[arg(long, value_enum)]
        misconfig: Vec<Misconfig>,
    },
}

#[derive(Args)]
struct DestArgs {
    /// The partner destination (see README: DEST.toml).
    #[arg(long, value_name = "DEST.toml")]
    config: PathBuf,
}

#[derive(Args)]
struct NetArgs {
    /// Send requests for HOST[:PORT] to ADDR:PORT (a loopback address), over plain HTTP.
    #[arg(long = "connect-to", value_name = "HOST[:PORT]=ADDR:PORT")]
    connect_to: Vec<Route>,
    /// Also allow requests to HOST (`*` stands for one DNS label).
    #[arg(long = "allow-host", value_name = "HOST")]
    allow_host: Vec<String>,
}

impl NetArgs {
    fn outbound(&self) -> Result<Outbound> {
        Outbound::new(Policy::new(&self.allow_host, self.connect_to.clone()))
    }
}

impl Command {
    fn name(&self) -> &'static str {
        match self {
            Command::Sign => "sign",
            Command::Demo => "demo",
            Command::SubjectToken { .. } => "subject-token",
            Command::Token { .. } => "token",
            Command::Deliver { .. } => "deliver",
            Command::Verify { .. } => "verify",
            Command::Serve { .. } => "serve",
            Command::Bench(_) => "bench",
            Command::Emulate { .. } => "emulate",
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("start the tokio runtime");
    match runtime.block_on(run(&cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let message = format!("{err:#}");
            let step = err.downcast_ref::<StepError>().map(|e| &e.0);
            if cli.json {
                let json = json!({"error": {
                    "command": cli.command.name(),
                    "step": step.map(|s| &s.step),
                    "message": message,
                    "fix": step.and_then(|s| s.fix.as_ref()),
                    "status": step.and_then(|s| s.status),
                    "transient": step.map(|s| s.transient),
                }});
                eprintln!("{json}");
            } else {
                eprintln!("host-test {}: {message}", cli.command.name());
            }
            ExitCode::FAILURE
        }
    }
}

async fn session(cli: &Cli, outbound: Outbound) -> Result<Session> {
    let runtime = Runtime::load(cli.component.as_deref())?;
    let env = GuestEnv::aws(|name| std::env::var(name).ok());
    Session::new(&runtime, &env, outbound).await
}

async fn run(cli: &Cli) -> Result<()> {
    match &cli.command {
        Command::Sign => {
            let mut json = String::new();
            std::io::stdin()
                .read_to_string(&mut json)
                .context("read the request from stdin")?;
            let request = SignInput::parse(&json)?.into_wit()?;
            let mut session = session(cli, Outbound::new(Policy::default())?).await?;
            let signed = session.sign(&request).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&SignOutput::from(signed))?
            );
            Ok(())
        }
        Command::Demo => host_test::demo::run(cli.component.as_deref()).await,
        Command::Deliver {
            dest,
            prefix,
            content_type,
            metadata,
            net,
            files,
        } => {
            let mut destination = host_test::dest::load(&dest.config)?;
            if let Some(prefix) = prefix {
                destination.prefix = Some(prefix.clone());
            }
            let mut session = session(cli, net.outbound()?).await?;
            let mut failed = 0;
            for file in files {
                let object = (content_type.clone(), metadata.clone());
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
        Command::Verify { dest, net } => {
            let destination = host_test::dest::load(&dest.config)?;
            let mut session = session(cli, net.outbound()?).await?;
            let receipt = session.verify(&destination).await?;
            println!("{}", receipt_json(&receipt, None));
            Ok(())
        }
        Command::Bench(args) => host_test::bench::run(cli.component.as_deref(), args.clone()).await,
        Command::Emulate { listen, misconfig } => emulate(*listen, misconfig).await,
        Command::Serve {
            config,
            listen,
            max_concurrent,
            grace,
            net,
        } => {
            anyhow::ensure!(
                listen.ip().is_loopback(),
                "--listen {listen}: the sidecar takes files from anyone who can reach it and \
                 has no authentication of its own; listen on a loopback address (127.0.0.1 or \
                 [::1]) and let only the application beside it connect"
            );
            let mut destinations = Vec::new();
            for spec in config {
                let (id, path) = match spec.split_once('=') {
                    Some((id, path)) if !id.contains('/') => (id.to_owned(), path),
                    _ => ("default".to_owned(), spec.as_str()),
                };
                let dest = host_test::dest::load(std::path::Path::new(path))?;
                destinations.push((id, dest));
            }
            let mut env = GuestEnv::aws(|name| std::env::var(name).ok());
            env.vars.extend(host_test::dest::sidecar_env(&destinations));
            let runtime = Runtime::load(cli.component.as_deref())?;
            let options = ServeOptions {
                listen: *listen,
                max_concurrent: *max_concurrent,
                grace: std::time::Duration::from_secs(*grace),
            };
            let server = Server::start(runtime, env, net.outbound()?, options).await?;
            println!("wif-push sidecar on http://{}", server.addr());
            terminated().await?;
            eprintln!("host-test serve: stopping; requests in flight may finish");
            server.shutdown().await;
            Ok(())
        }
        Command::SubjectToken { dest, at, net } => {
            let destination = host_test::dest::load(&dest.config)?;
            let at = at.as_deref().map(parse_time).transpose()?;
            let mut session = session(cli, net.outbound()?).await?;
            println!("{}", session.subject_token(&destination, at).await?);
            Ok(())
        }
        Command::Token { dest, net } => {
            let destination = host_test::dest::load(&dest.config)?;
            let mut session = session(cli, net.outbound()?).await?;
            let info = session.access_token(&destination).await?;
            let expires = time::OffsetDateTime::from_unix_timestamp(info.expires_at.seconds as i64)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                });
            let out = json!({
                "service_account": info.service_account,
                "expires_at": expires,
                "requests": session.requests_sent(),
            });
            println!("{out}");
            Ok(())
        }
    }
}

fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

async fn deliver_file(
    session: &mut Session,
    destination: &host_test::runtime::Settings,
    file: &std::path::Path,
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

async fn emulate(listen: std::net::SocketAddr, misconfig: &[Misconfig]) -> Result<()> {
    let mut config = EmulatorConfig::demo();
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
    let c = emulator.config();
    let addr = emulator.addr();
    println!("Google STS, IAM Credentials and Cloud Storage emulator on http://{addr}");
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
         --connect-to storage.googleapis.com={addr}"
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
