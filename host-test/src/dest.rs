//! `DEST.toml`: the partner destination as the CLI takes it. AWS credentials never go here;
//! they come from the environment or AWS's endpoints.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::Deserialize;

use crate::runtime::wif;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestFile {
    /// The gcloud `external_account` JSON file, relative to DEST.toml.
    pub credential_config: Option<PathBuf>,
    pub project_number: Option<String>,
    pub pool_id: Option<String>,
    pub provider_id: Option<String>,
    pub service_account: Option<String>,
    pub bucket: Option<String>,
    pub prefix: Option<String>,
    pub token_lifetime_seconds: Option<u32>,
    #[serde(alias = "region")]
    pub aws_region: Option<String>,
    #[serde(default)]
    pub imds_v1_fallback: bool,
    /// `false` leaves the subject token's target-resource header unsigned, as google-auth does.
    pub sign_target_resource: Option<bool>,
    /// Objects up to this many bytes go in one request (default 8 MiB).
    pub single_request_limit: Option<u64>,
    /// Resumable chunk size in bytes, a multiple of 262144 (default 16 MiB).
    pub chunk_size: Option<u64>,
    /// The first retry's pause in milliseconds (default 1000), doubling after that.
    pub initial_retry_delay_ms: Option<u32>,
    #[serde(default)]
    pub endpoints: Endpoints,
}

/// Overrides for private or emulated endpoints (https only; see `--connect-to`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoints {
    pub storage: Option<String>,
    pub sts: Option<String>,
    pub iam_credentials: Option<String>,
}

impl DestFile {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read the destination file {}", path.display()))?;
        let mut dest: DestFile = toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{} is not a valid destination file: {}",
                path.display(),
                e.to_string().trim()
            )
        })?;
        if let Some(config) = &dest.credential_config
            && config.is_relative()
        {
            let base = path.parent().unwrap_or(Path::new("."));
            dest.credential_config = Some(base.join(config));
        }
        Ok(dest)
    }

    /// The component's view: the credential configuration's text instead of its path.
    pub fn to_wit(&self) -> Result<wif::Destination> {
        let credential_config = match &self.credential_config {
            Some(path) => Some(std::fs::read_to_string(path).with_context(|| {
                format!(
                    "read credential_config {} named in the destination file",
                    path.display()
                )
            })?),
            None => None,
        };
        Ok(wif::Destination {
            credential_config,
            project_number: self.project_number.clone(),
            pool_id: self.pool_id.clone(),
            provider_id: self.provider_id.clone(),
            service_account: self.service_account.clone(),
            bucket: self.bucket.clone(),
            prefix: self.prefix.clone(),
            token_lifetime_seconds: self.token_lifetime_seconds,
            aws_region: self.aws_region.clone(),
            imds_v1_fallback: self.imds_v1_fallback,
            sign_target_resource: self.sign_target_resource,
            single_request_limit: self.single_request_limit,
            chunk_size: self.chunk_size,
            initial_retry_delay_ms: self.initial_retry_delay_ms,
            storage_url: self.endpoints.storage.clone(),
            token_url: self.endpoints.sts.clone(),
            iam_credentials_url: self.endpoints.iam_credentials.clone(),
        })
    }
}
