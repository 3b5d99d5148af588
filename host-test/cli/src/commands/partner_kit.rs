//! `host-test partner-kit`: the partner's set-up for this sender, written into a directory
//! (README: Onboarding a partner).

use std::path::Path;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use wif_push_host::kit::{self, Kit, KitInput};

/// What the partner and the sender agree on (partner guide §3).
#[derive(Args)]
pub struct KitArgs {
    /// The sender's AWS account id (§3.2).
    #[arg(long, value_name = "ID")]
    aws_account_id: String,
    /// The IAM role the sender delivers as (§3.2).
    #[arg(long, value_name = "ARN")]
    aws_role_arn: String,
    /// The partner's project id.
    #[arg(long, value_name = "ID")]
    project_id: String,
    /// The partner's project number.
    #[arg(long, value_name = "NUMBER")]
    project_number: String,
    #[arg(long, value_name = "ID", default_value = kit::DEFAULT_POOL_ID)]
    pool_id: String,
    #[arg(long, value_name = "ID", default_value = kit::DEFAULT_PROVIDER_ID)]
    provider_id: String,
    /// The service account's id (the part before @).
    #[arg(long, value_name = "ID", default_value = kit::DEFAULT_SERVICE_ACCOUNT)]
    service_account: String,
    #[arg(long, value_name = "BUCKET", default_value = kit::DEFAULT_BUCKET)]
    bucket: String,
    /// Where to write the kit (created; files already there are not overwritten).
    #[arg(long, value_name = "DIR")]
    out: std::path::PathBuf,
}

pub fn run(args: &KitArgs) -> Result<()> {
    let kit = Kit::new(KitInput {
        aws_account_id: args.aws_account_id.clone(),
        aws_role_arn: args.aws_role_arn.clone(),
        project_id: args.project_id.clone(),
        project_number: args.project_number.clone(),
        pool_id: args.pool_id.clone(),
        provider_id: args.provider_id.clone(),
        service_account: args.service_account.clone(),
        bucket: args.bucket.clone(),
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let files = kit.files();
    for (name, _) in &files {
        let path = args.out.join(name);
        if path.exists() {
            bail!(
                "{} exists: give an --out directory without a kit in it",
                path.display()
            );
        }
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    for (name, text) in &files {
        write(&args.out.join(name), text, *name == "setup.sh")?;
        println!("{}", args.out.join(name).display());
    }
    Ok(())
}

fn write(path: &Path, text: &str, executable: bool) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    if executable {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}
