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

/// The sidecar's environment for the destinations: `WIF_PUSH_*` variables, as the component
/// reads them (one destination, or several listed in `WIF_PUSH_DESTINATIONS`).
pub fn sidecar_env(destinations: &[(String, wif::Destination)]) -> Vec<(String, String)> {
    use wif_push::sidecar::{DESTINATIONS_VARIABLE, variable};
    let several = destinations.len() > 1;
    let mut vars = Vec::new();
    if several {
        let ids: Vec<&str> = destinations.iter().map(|(id, _)| id.as_str()).collect();
        vars.push((DESTINATIONS_VARIABLE.to_owned(), ids.join(",")));
    }
    for (id, d) in destinations {
        let id = several.then_some(id.as_str());
        let mut set = |setting: &str, value: Option<String>| {
            if let Some(value) = value {
                vars.push((variable(id, setting), value));
            }
        };
        set("credential_config", d.credential_config.clone());
        set("project_number", d.project_number.clone());
        set("pool_id", d.pool_id.clone());
        set("provider_id", d.provider_id.clone());
        set("service_account", d.service_account.clone());
        set("bucket", d.bucket.clone());
        set("prefix", d.prefix.clone());
        set(
            "token_lifetime_seconds",
            d.token_lifetime_seconds.map(|n| n.to_string()),
        );
        set("aws_region", d.aws_region.clone());
        set(
            "imds_v1_fallback",
            d.imds_v1_fallback.then(|| "true".to_owned()),
        );
        set(
            "sign_target_resource",
            d.sign_target_resource.map(|b| b.to_string()),
        );
        set(
            "single_request_limit",
            d.single_request_limit.map(|n| n.to_string()),
        );
        set("chunk_size", d.chunk_size.map(|n| n.to_string()));
        set(
            "initial_retry_delay_ms",
            d.initial_retry_delay_ms.map(|n| n.to_string()),
        );
        set("storage_url", d.storage_url.clone());
        set("token_url", d.token_url.clone());
        set("iam_credentials_url", d.iam_credentials_url.clone());
    }
    vars
}
