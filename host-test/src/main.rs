use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, Result, anyhow};
use clap::{Parser, Subcommand};
use host_test::outbound::{Outbound, Policy};
use host_test::runtime::{Runtime, sigv4};
use host_test::sign::{SignInput, SignOutput};

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
    /// Show the component at work on built-in example inputs, with no set-up.
    Demo,
}

impl Command {
    fn name(&self) -> &'static str {
        match self {
            Command::Sign => "sign",
            Command::Demo => "demo",
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
            if cli.json {
                let json = serde_json::json!({"error": {"command": cli.command.name(), "message": message}});
                eprintln!("{json}");
            } else {
                eprintln!("host-test {}: {message}", cli.command.name());
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: &Cli) -> Result<()> {
    match &cli.command {
        Command::Sign => {
            let mut json = String::new();
            std::io::stdin()
                .read_to_string(&mut json)
                .context("read the request from stdin")?;
            let request = SignInput::parse(&json)?.into_wit()?;
            let signed = sign(cli, &request).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&SignOutput::from(signed))?
            );
            Ok(())
        }
        Command::Demo => demo(cli).await,
    }
}

async fn sign(cli: &Cli, request: &sigv4::Request) -> Result<sigv4::Signed> {
    let runtime = Runtime::load(cli.component.as_deref())?;
    let mut store = runtime.store(&[], Outbound::new(Policy::default())?);
    let library = runtime.instantiate(&mut store).await?;
    library
        .wif_push_sigv4()
        .call_sign(&mut store, request)
        .await?
        .map_err(|message| anyhow!(message))
}

/// Signs the AWS STS GetCallerIdentity request that becomes a WIF subject token, with the
/// example credentials from AWS's documentation.
async fn demo(cli: &Cli) -> Result<()> {
    let input = SignInput::parse(
        r#"{
            "method": "POST",
            "url": "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
            "headers": {"x-goog-cloud-target-resource":
                "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/aws-partner/providers/aws"},
            "region": "us-east-1",
            "service": "sts",
            "time": "2015-08-30T12:36:00Z",
            "access_key_id": "AKIDEXAMPLE",
            "secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
        }"#,
    )?;
    let started = Instant::now();
    let signed = sign(cli, &input.into_wit()?).await?;
    let elapsed = started.elapsed();
    println!("wif-push demo: SigV4 inside the WebAssembly component\n");
    println!("Request: POST {}\n", signed.url);
    println!("Canonical request:\n{}\n", signed.canonical_request);
    println!("String to sign:\n{}\n", signed.string_to_sign);
    for (name, value) in &signed.headers {
        println!("{name}: {value}");
    }
    println!(
        "\nSigned in {:.1} ms (component load, instantiation and signing).",
        elapsed.as_secs_f64() * 1000.0
    );
    Ok(())
}
