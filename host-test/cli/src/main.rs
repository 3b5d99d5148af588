mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use wif_push_bench::demo;
use wif_push_emulator::Misconfig;
use wif_push_host::outbound::{Outbound, Policy, Route};
use wif_push_host::runtime::{GuestEnv, Runtime, Session, StepError, receipt_json};
use wif_push_host::serve::ServeOptions;
use wif_push_host::sign::parse_time;

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
    /// Deliver a batch (files, directories, S3 objects and prefixes, a manifest) into the
    /// destination's bucket, several at once, exactly once across crashes: one JSON receipt per
    /// object on stdout, a summary on stderr.
    Deliver {
        #[command(flatten)]
        dest: DestArgs,
        #[command(flatten)]
        args: commands::deliver::DeliverArgs,
        #[command(flatten)]
        net: NetArgs,
        #[command(flatten)]
        limits: GuestLimits,
    },
    /// Write the partner's Google Cloud set-up for this sender into a directory: a gcloud
    /// script, the same as Terraform, the partner guide's checklist, and the sender's DEST.toml.
    PartnerKit(commands::partner_kit::KitArgs),
    /// Check the chain one step at a time (credentials, identity, clock, mapping, exchange,
    /// impersonation, handshake) and print the checklist; exit 0 only when the handshake object
    /// landed.
    Doctor {
        #[command(flatten)]
        dest: DestArgs,
        #[command(flatten)]
        net: NetArgs,
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
        /// Seconds a request body may go without a byte before the request fails (nothing is
        /// stored) and its slot is freed.
        #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
        body_timeout: u64,
        #[command(flatten)]
        net: NetArgs,
        #[command(flatten)]
        limits: GuestLimits,
    },
    /// Measure throughput, memory, small-object rate, cold start and signing against the
    /// peers (curl, the Python client, gcloud) and print a table; see README, Performance.
    Bench(wif_push_bench::BenchArgs),
    /// Serve the embedded emulator of Google STS, IAM Credentials and Cloud Storage until
    /// interrupted. It accepts the AWS credentials in this process's environment (or AWS's
    /// documentation example keys).
    Emulate {
        #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Reproduce a partner-side misconfiguration (repeatable).
        #[arg(long, value_enum)]
        misconfig: Vec<Misconfig>,
        /// A wide-area link: this round trip (ms) added to every connection and Google request.
        #[arg(long, value_name = "MS", default_value_t = 0)]
        wan_rtt_ms: u64,
        /// A wide-area link: what one connection may upload, in Mbit/s (default: no cap).
        #[arg(long, value_name = "MBIT", value_parser = clap::value_parser!(u64).range(1..))]
        wan_mbit: Option<u64>,
        /// Keep no object: check each one's CRC32C and drop it (for measuring a sender).
        #[arg(long)]
        discard: bool,
    },
}

#[derive(Args)]
struct DestArgs {
    /// The partner destination (see README: DEST.toml).
    #[arg(long, value_name = "DEST.toml")]
    config: PathBuf,
}

#[derive(Args)]
struct GuestLimits {
    /// Refuse the component more than this much linear memory (MiB) per instance: what needs
    /// more fails, and a fresh instance takes over.
    #[arg(long, value_name = "MIB")]
    max_guest_memory: Option<usize>,
}

impl GuestLimits {
    fn bytes(&self) -> Option<usize> {
        self.max_guest_memory.map(|mib| mib.saturating_mul(1 << 20))
    }
}

#[derive(Args)]
struct NetArgs {
    /// Send requests for HOST[:PORT] to ADDR:PORT (a loopback address), over plain HTTP.
    #[arg(long = "connect-to", value_name = "HOST[:PORT]=ADDR:PORT")]
    connect_to: Vec<Route>,
    /// Also allow requests to HOST (`*` stands for one DNS label).
    #[arg(long = "allow-host", value_name = "HOST", value_parser = wif_push_host::outbound::allow_host)]
    allow_host: Vec<String>,
    /// Trust the PEM certificates in FILE instead of the system's (else `SSL_CERT_FILE`), e.g.
    /// a TLS-inspecting proxy's CA. HTTPS goes through `HTTPS_PROXY` unless `NO_PROXY` says.
    #[arg(long = "ca-bundle", value_name = "FILE")]
    ca_bundle: Option<PathBuf>,
    /// Connect to ADDR:PORT for HOST[:PORT] instead of where DNS says, keeping HTTPS and the
    /// certificate check for HOST (as curl's --resolve), e.g. a private endpoint's address.
    #[arg(long = "resolve", value_name = "HOST[:PORT]=ADDR:PORT")]
    resolve: Vec<wif_push_host::outbound::Resolve>,
}

impl NetArgs {
    fn outbound(&self) -> Result<Outbound> {
        let mut policy = Policy::new(&self.allow_host, self.connect_to.clone());
        policy.ca_bundle = self.ca_bundle.clone();
        policy.resolve = self.resolve.clone();
        Outbound::new(policy)
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
            Command::Doctor { .. } => "doctor",
            Command::PartnerKit(_) => "partner-kit",
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
            report(&cli, None, &err);
            ExitCode::FAILURE
        }
    }
}

/// Prints an error on stderr: one line of text, or with `--json` one JSON object naming the
/// command, the file it is about (if any), the step and the fix.
fn report(cli: &Cli, file: Option<&std::path::Path>, err: &anyhow::Error) {
    report_as(cli.json, cli.command.name(), file, err)
}

/// [`report`] for code that holds no [`Cli`] (a batch's workers).
fn report_as(json: bool, command: &str, file: Option<&std::path::Path>, err: &anyhow::Error) {
    let message = format!("{err:#}");
    let step = err.downcast_ref::<StepError>().map(|e| &e.0);
    if json {
        let mut error = json!({
            "command": command,
            "step": step.map(|s| &s.step),
            "message": message,
            "fix": step.and_then(|s| s.fix.as_ref()),
            "status": step.and_then(|s| s.status),
            "transient": step.map(|s| s.transient),
        });
        if let Some(file) = file {
            error["file"] = json!(file.display().to_string());
        }
        eprintln!("{}", json!({ "error": error }));
    } else {
        match file {
            Some(file) => eprintln!("host-test {command}: {}: {message}", file.display()),
            None => eprintln!("host-test {command}: {message}"),
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
        Command::Sign => commands::sign::run(cli).await,
        Command::Demo => demo::run(cli.component.as_deref()).await,
        Command::Deliver {
            dest,
            args,
            net,
            limits,
        } => commands::deliver::run(cli, dest, args, net, limits).await,
        Command::PartnerKit(args) => commands::partner_kit::run(args),
        Command::Verify { dest, net } => {
            let destination = wif_push_host::dest::load(&dest.config)?;
            let mut session = session(cli, net.outbound()?).await?;
            let receipt = session.verify(&destination).await?;
            println!("{}", receipt_json(&receipt, None));
            Ok(())
        }
        Command::Bench(args) => wif_push_bench::run(cli.component.as_deref(), args.clone()).await,
        Command::Emulate {
            listen,
            misconfig,
            wan_rtt_ms,
            wan_mbit,
            discard,
        } => {
            let wan = wif_push_emulator::Wan {
                round_trip: std::time::Duration::from_millis(*wan_rtt_ms),
                bandwidth: wan_mbit.map(|mbit| mbit * 1_000_000 / 8),
            };
            commands::emulate::run(*listen, misconfig, wan, *discard).await
        }
        Command::Serve {
            config,
            listen,
            max_concurrent,
            grace,
            body_timeout,
            net,
            limits,
        } => {
            let options = ServeOptions {
                listen: *listen,
                max_concurrent: *max_concurrent,
                grace: std::time::Duration::from_secs(*grace),
                body_timeout: std::time::Duration::from_secs(*body_timeout),
                guest_memory_limit: limits.bytes(),
            };
            commands::serve::run(cli, config, options, net).await
        }
        Command::SubjectToken { dest, at, net } => {
            let destination = wif_push_host::dest::load(&dest.config)?;
            let at = at.as_deref().map(parse_time).transpose()?;
            let mut session = session(cli, net.outbound()?).await?;
            println!("{}", session.subject_token(&destination, at).await?);
            Ok(())
        }
        Command::Token { dest, net } => commands::token::run(cli, dest, net).await,
        Command::Doctor { dest, net } => commands::doctor::run(cli, dest, net).await,
    }
}

fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}
