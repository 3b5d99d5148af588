//! The partner destination: where to deliver and how to get a token for it.
//!
//! It arrives either as the `external_account` credential configuration that
//! `gcloud iam workload-identity-pools create-cred-config --aws` writes, or as the five facts a
//! partner hands over (project number, pool id, provider id, service account, bucket).
//! Parsing ([`ExternalAccountFile`]) and validation ([`Destination::from_input`]) are separate
//! steps; every validation error names the field and what a valid value looks like.

use std::fmt;

use serde::Deserialize;

pub const SUBJECT_TOKEN_TYPE_AWS: &str = "urn:ietf:params:aws:token-type:aws4_request";
pub const DEFAULT_TOKEN_URL: &str = "https://sts.googleapis.com/v1/token";
pub const DEFAULT_STORAGE_URL: &str = "https://storage.googleapis.com";
pub const DEFAULT_CRED_VERIFICATION_URL: &str =
    "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15";
pub const DEFAULT_IMDS_REGION_URL: &str =
    "http://169.254.169.254/latest/meta-data/placement/availability-zone";
pub const DEFAULT_IMDS_CREDENTIALS_URL: &str =
    "http://169.254.169.254/latest/meta-data/iam/security-credentials";
pub const DEFAULT_IMDSV2_SESSION_TOKEN_URL: &str = "http://169.254.169.254/latest/api/token";
/// Google's bounds for a service-account access token's lifetime (above 3600 s needs an org policy).
pub const MIN_LIFETIME_SECONDS: u32 = 600;
pub const MAX_LIFETIME_SECONDS: u32 = 43_200;
pub const DEFAULT_LIFETIME_SECONDS: u32 = 3600;
pub const DEFAULT_SINGLE_REQUEST_LIMIT: u64 = 8 * 1024 * 1024;
pub const DEFAULT_CHUNK_SIZE: u64 = 16 * 1024 * 1024;
const CHUNK_QUANTUM: u64 = 256 * 1024;

/// The hosts google-auth accepts for AWS metadata URLs.
const IMDS_HOSTS: &[&str] = &["169.254.169.254", "[fd00:ec2::254]"];

/// What a host hands over; any field may be missing until validation says otherwise.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationInput {
    /// The text of a gcloud `external_account` credential configuration file.
    #[serde(skip)]
    pub credential_config: Option<String>,
    pub project_number: Option<String>,
    pub pool_id: Option<String>,
    pub provider_id: Option<String>,
    pub service_account: Option<String>,
    pub bucket: Option<String>,
    pub prefix: Option<String>,
    pub token_lifetime_seconds: Option<u32>,
    pub aws_region: Option<String>,
    /// Where Cloud Storage is (tests and emulators); `https://storage.googleapis.com` by default.
    pub storage_url: Option<String>,
    /// Where Google STS is, when no credential configuration says so.
    pub token_url: Option<String>,
    /// Where IAM Credentials is, when no credential configuration says so.
    pub iam_credentials_url: Option<String>,
    /// Allow IMDSv1 when the instance refuses IMDSv2 session tokens.
    #[serde(default)]
    pub imds_v1_fallback: bool,
    /// Objects up to this size go in one multipart request.
    pub single_request_limit: Option<u64>,
    /// Resumable chunk size, a multiple of 256 KiB.
    pub chunk_size: Option<u64>,
    /// The first retry's pause in milliseconds (doubling after that); 1000 by default.
    pub initial_retry_delay_ms: Option<u32>,
    /// Sign the subject token's target-resource header (the default, as Google recommends);
    /// `false` leaves it unsigned, byte for byte as google-auth (Python) does.
    pub sign_target_resource: Option<bool>,
}

/// The `external_account` file, as written by gcloud. Unknown fields are ignored, as
/// google-auth ignores them.
#[derive(Clone, Debug, Deserialize)]
pub struct ExternalAccountFile {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub audience: Option<String>,
    pub subject_token_type: Option<String>,
    pub token_url: Option<String>,
    pub service_account_impersonation_url: Option<String>,
    pub service_account_impersonation: Option<ImpersonationOptions>,
    pub credential_source: Option<CredentialSource>,
    pub universe_domain: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ImpersonationOptions {
    pub token_lifetime_seconds: Option<u32>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct CredentialSource {
    pub environment_id: Option<String>,
    pub region_url: Option<String>,
    pub url: Option<String>,
    pub regional_cred_verification_url: Option<String>,
    pub imdsv2_session_token_url: Option<String>,
}

/// Where the AWS side's facts come from when the environment does not say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsSource {
    /// IMDS availability-zone URL (the region is the zone minus its letter).
    pub region_url: Option<String>,
    /// IMDS security-credentials URL (role name, then credentials).
    pub credentials_url: Option<String>,
    /// The GetCallerIdentity URL, with `{region}` to fill in.
    pub cred_verification_url: String,
    pub imdsv2_session_token_url: Option<String>,
}

/// A validated destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    /// `//iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/POOL/providers/PROV`
    pub audience: String,
    pub token_url: String,
    /// `None` when the partner grants the federated principal directly (no impersonation).
    pub impersonation_url: Option<String>,
    pub service_account: Option<String>,
    pub token_lifetime_seconds: u32,
    pub bucket: String,
    pub prefix: String,
    pub aws: AwsSource,
    pub aws_region: Option<String>,
    pub imds_v1_fallback: bool,
    pub sign_target_resource: bool,
    pub single_request_limit: u64,
    pub chunk_size: u64,
    pub initial_retry_delay: std::time::Duration,
    pub storage_url: String,
}

/// A configuration mistake: the field, what is wrong, and what a valid value looks like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub problem: String,
    pub fix: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}; {}", self.field, self.problem, self.fix)
    }
}

impl std::error::Error for ConfigError {}

fn error(field: &str, problem: impl Into<String>, fix: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.to_owned(),
        problem: problem.into(),
        fix: fix.into(),
    }
}

impl Destination {
    pub fn from_input(input: &DestinationInput) -> Result<Self, ConfigError> {
        let file = match &input.credential_config {
            Some(text) => Some(serde_json::from_str::<ExternalAccountFile>(text).map_err(|e| {
                error(
                    "credential_config",
                    format!("is not valid JSON ({e})"),
                    "give the file written by `gcloud iam workload-identity-pools create-cred-config --aws`",
                )
            })?),
            None => None,
        };
        let bucket = required(
            &input.bucket,
            "bucket",
            "the partner's bucket name, e.g. \"partner-inbox\"",
        )?;
        validate_bucket(&bucket)?;
        let prefix = input.prefix.clone().unwrap_or_default();
        validate_prefix(&prefix)?;
        let storage_url = https_url(
            "storage_url",
            input.storage_url.as_deref().unwrap_or(DEFAULT_STORAGE_URL),
        )?;
        if let Some(region) = &input.aws_region {
            validate_region("aws_region", region)?;
        }
        let mut destination = match file {
            Some(file) => Self::from_file(file, input)?,
            None => Self::from_facts(input)?,
        };
        destination.bucket = bucket;
        destination.prefix = prefix;
        destination.storage_url = storage_url;
        destination.aws_region = input.aws_region.clone();
        destination.imds_v1_fallback = input.imds_v1_fallback;
        destination.sign_target_resource = input.sign_target_resource.unwrap_or(true);
        destination.single_request_limit = input
            .single_request_limit
            .unwrap_or(DEFAULT_SINGLE_REQUEST_LIMIT);
        destination.chunk_size = input.chunk_size.unwrap_or(DEFAULT_CHUNK_SIZE);
        validate_chunk_size(destination.chunk_size)?;
        destination.initial_retry_delay = std::time::Duration::from_millis(u64::from(
            input.initial_retry_delay_ms.unwrap_or(1000),
        ));
        Ok(destination)
    }

    fn from_file(file: ExternalAccountFile, input: &DestinationInput) -> Result<Self, ConfigError> {
        const GCLOUD: &str = "regenerate the file with `gcloud iam workload-identity-pools create-cred-config --aws`";
        match file.kind.as_deref() {
            Some("external_account") => {}
            other => {
                return Err(error(
                    "credential_config.type",
                    format!("is {other:?}"),
                    "expected \"external_account\" (a service-account key file is not a WIF configuration)",
                ));
            }
        }
        let audience = required(&file.audience, "credential_config.audience", GCLOUD)?;
        validate_audience("credential_config.audience", &audience)?;
        match file.subject_token_type.as_deref() {
            Some(SUBJECT_TOKEN_TYPE_AWS) => {}
            other => {
                return Err(error(
                    "credential_config.subject_token_type",
                    format!("is {other:?}"),
                    format!("expected \"{SUBJECT_TOKEN_TYPE_AWS}\" for an AWS provider"),
                ));
            }
        }
        let token_url = https_url(
            "credential_config.token_url",
            file.token_url.as_deref().unwrap_or(DEFAULT_TOKEN_URL),
        )?;
        let source = file
            .credential_source
            .ok_or_else(|| error("credential_config.credential_source", "is missing", GCLOUD))?;
        match source.environment_id.as_deref() {
            Some("aws1") => {}
            Some(other) if other.starts_with("aws") => {
                return Err(error(
                    "credential_config.credential_source.environment_id",
                    format!("is {other:?}, an AWS version this tool does not know"),
                    "expected \"aws1\"",
                ));
            }
            other => {
                return Err(error(
                    "credential_config.credential_source.environment_id",
                    format!("is {other:?}"),
                    "expected \"aws1\": wif-push delivers from AWS only",
                ));
            }
        }
        let imds = |field: &str, url: &Option<String>| -> Result<Option<String>, ConfigError> {
            match url {
                None => Ok(None),
                Some(url) => validate_imds_url(field, url).map(Some),
            }
        };
        let aws = AwsSource {
            region_url: imds(
                "credential_config.credential_source.region_url",
                &source.region_url,
            )?,
            credentials_url: imds("credential_config.credential_source.url", &source.url)?,
            imdsv2_session_token_url: imds(
                "credential_config.credential_source.imdsv2_session_token_url",
                &source.imdsv2_session_token_url,
            )?,
            cred_verification_url: validate_verification_url(
                source
                    .regional_cred_verification_url
                    .as_deref()
                    .unwrap_or(DEFAULT_CRED_VERIFICATION_URL),
            )?,
        };
        let (impersonation_url, service_account) = match file.service_account_impersonation_url {
            None => (None, None),
            Some(url) => {
                let email = service_account_from_url(&url)?;
                (
                    Some(https_url(
                        "credential_config.service_account_impersonation_url",
                        &url,
                    )?),
                    Some(email),
                )
            }
        };
        if let (Some(given), Some(from_file)) = (&input.service_account, &service_account)
            && given != from_file
        {
            return Err(error(
                "service_account",
                format!("is {given:?} but the credential configuration impersonates {from_file:?}"),
                "remove service_account or make the two agree",
            ));
        }
        let lifetime = input
            .token_lifetime_seconds
            .or(file
                .service_account_impersonation
                .and_then(|i| i.token_lifetime_seconds))
            .unwrap_or(DEFAULT_LIFETIME_SECONDS);
        validate_lifetime(lifetime)?;
        Ok(Destination {
            audience,
            token_url,
            impersonation_url,
            service_account,
            token_lifetime_seconds: lifetime,
            bucket: String::new(),
            prefix: String::new(),
            aws,
            aws_region: None,
            imds_v1_fallback: false,
            sign_target_resource: true,
            single_request_limit: DEFAULT_SINGLE_REQUEST_LIMIT,
            chunk_size: DEFAULT_CHUNK_SIZE,
            initial_retry_delay: std::time::Duration::from_secs(1),
            storage_url: String::new(),
        })
    }

    fn from_facts(input: &DestinationInput) -> Result<Self, ConfigError> {
        let missing = "give credential_config (the gcloud file) or all of project_number, pool_id, provider_id and service_account";
        let project = required(&input.project_number, "project_number", missing)?;
        if project.is_empty() || !project.bytes().all(|b| b.is_ascii_digit()) {
            return Err(error(
                "project_number",
                format!("is {project:?}"),
                "expected the partner project's number (digits, e.g. \"123456789012\"), not its id",
            ));
        }
        let pool = required(&input.pool_id, "pool_id", missing)?;
        validate_id("pool_id", &pool)?;
        let provider = required(&input.provider_id, "provider_id", missing)?;
        validate_id("provider_id", &provider)?;
        let service_account = required(&input.service_account, "service_account", missing)?;
        validate_service_account(&service_account)?;
        let lifetime = input
            .token_lifetime_seconds
            .unwrap_or(DEFAULT_LIFETIME_SECONDS);
        validate_lifetime(lifetime)?;
        let iam = https_url(
            "iam_credentials_url",
            input
                .iam_credentials_url
                .as_deref()
                .unwrap_or("https://iamcredentials.googleapis.com"),
        )?;
        Ok(Destination {
            audience: format!(
                "//iam.googleapis.com/projects/{project}/locations/global/workloadIdentityPools/{pool}/providers/{provider}"
            ),
            token_url: https_url(
                "token_url",
                input.token_url.as_deref().unwrap_or(DEFAULT_TOKEN_URL),
            )?,
            impersonation_url: Some(format!(
                "{}/v1/projects/-/serviceAccounts/{service_account}:generateAccessToken",
                iam.trim_end_matches('/')
            )),
            service_account: Some(service_account),
            token_lifetime_seconds: lifetime,
            bucket: String::new(),
            prefix: String::new(),
            aws: AwsSource {
                region_url: Some(DEFAULT_IMDS_REGION_URL.into()),
                credentials_url: Some(DEFAULT_IMDS_CREDENTIALS_URL.into()),
                cred_verification_url: DEFAULT_CRED_VERIFICATION_URL.into(),
                imdsv2_session_token_url: Some(DEFAULT_IMDSV2_SESSION_TOKEN_URL.into()),
            },
            aws_region: None,
            imds_v1_fallback: false,
            sign_target_resource: true,
            single_request_limit: DEFAULT_SINGLE_REQUEST_LIMIT,
            chunk_size: DEFAULT_CHUNK_SIZE,
            initial_retry_delay: std::time::Duration::from_secs(1),
            storage_url: String::new(),
        })
    }

    /// The GetCallerIdentity URL for `region`.
    pub fn cred_verification_url(&self, region: &str) -> String {
        self.aws.cred_verification_url.replace("{region}", region)
    }
}

fn required(value: &Option<String>, field: &str, fix: &str) -> Result<String, ConfigError> {
    match value.as_deref().map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v.to_owned()),
        _ => Err(error(field, "is missing", fix)),
    }
}

/// An https URL; plain http only to a loopback address, where an emulator runs beside the
/// sender (as `STORAGE_EMULATOR_HOST` allows in Google's clients).
fn https_url(field: &str, url: &str) -> Result<String, ConfigError> {
    let ok = url.parse::<http::Uri>().ok().filter(|u| {
        let host = u.host().unwrap_or("");
        match u.scheme_str() {
            Some("https") => !host.is_empty(),
            Some("http") => is_loopback(host),
            _ => false,
        }
    });
    match ok {
        Some(_) => Ok(url.to_owned()),
        None => Err(error(
            field,
            format!("is {url:?}"),
            "expected an https:// URL (http:// only to a loopback emulator, e.g. \
             http://127.0.0.1:8080; host-test can also route a host there with --connect-to)",
        )),
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `//iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER`
pub fn validate_audience(field: &str, audience: &str) -> Result<(), ConfigError> {
    let expected = "expected //iam.googleapis.com/projects/PROJECT_NUMBER/locations/global/workloadIdentityPools/POOL_ID/providers/PROVIDER_ID";
    let rest = audience
        .strip_prefix("//iam.googleapis.com/projects/")
        .ok_or_else(|| error(field, format!("is {audience:?}"), expected))?;
    let parts: Vec<&str> = rest.split('/').collect();
    let shape_ok = parts.len() == 7
        && parts[1] == "locations"
        && parts[2] == "global"
        && parts[3] == "workloadIdentityPools"
        && parts[5] == "providers";
    if !shape_ok {
        return Err(error(field, format!("is {audience:?}"), expected));
    }
    if parts[0].is_empty() || !parts[0].bytes().all(|b| b.is_ascii_digit()) {
        return Err(error(
            field,
            format!("names project {:?}", parts[0]),
            "the audience takes the project *number* (digits), not the project id",
        ));
    }
    validate_id(&format!("{field} (pool id)"), parts[4])?;
    validate_id(&format!("{field} (provider id)"), parts[6])
}

/// Pool and provider ids: 4 to 32 lowercase letters, digits and hyphens.
fn validate_id(field: &str, id: &str) -> Result<(), ConfigError> {
    let ok = (4..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
        && !id.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(error(
            field,
            format!("is {id:?}"),
            "expected 4 to 32 lowercase letters, digits or hyphens, e.g. \"aws-partner\"",
        ))
    }
}

fn validate_service_account(email: &str) -> Result<(), ConfigError> {
    let ok = email
        .split_once('@')
        .is_some_and(|(name, domain)| !name.is_empty() && domain.ends_with("gserviceaccount.com"));
    if ok {
        Ok(())
    } else {
        Err(error(
            "service_account",
            format!("is {email:?}"),
            "expected a service account email, e.g. \"uploader@partner-project.iam.gserviceaccount.com\"",
        ))
    }
}

fn service_account_from_url(url: &str) -> Result<String, ConfigError> {
    let field = "credential_config.service_account_impersonation_url";
    let email = url
        .rsplit_once("/serviceAccounts/")
        .and_then(|(_, rest)| rest.strip_suffix(":generateAccessToken"))
        .ok_or_else(|| {
            error(
                field,
                format!("is {url:?}"),
                "expected https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/EMAIL:generateAccessToken",
            )
        })?;
    validate_service_account(email).map_err(|e| ConfigError {
        field: field.into(),
        ..e
    })?;
    Ok(email.to_owned())
}

fn validate_lifetime(seconds: u32) -> Result<(), ConfigError> {
    if (MIN_LIFETIME_SECONDS..=MAX_LIFETIME_SECONDS).contains(&seconds) {
        Ok(())
    } else {
        Err(error(
            "token_lifetime_seconds",
            format!("is {seconds}"),
            format!(
                "expected {MIN_LIFETIME_SECONDS} to {MAX_LIFETIME_SECONDS} seconds (above 3600 needs the partner's constraints/iam.allowServiceAccountCredentialLifetimeExtension policy)"
            ),
        ))
    }
}

fn validate_chunk_size(bytes: u64) -> Result<(), ConfigError> {
    if bytes >= CHUNK_QUANTUM && bytes.is_multiple_of(CHUNK_QUANTUM) && bytes <= 1 << 30 {
        Ok(())
    } else {
        Err(error(
            "chunk_size",
            format!("is {bytes}"),
            "expected a multiple of 262144 (256 KiB) up to 1 GiB, e.g. 16777216 (16 MiB)",
        ))
    }
}

/// Google's bucket naming rules, the ones a typo breaks.
fn validate_bucket(bucket: &str) -> Result<(), ConfigError> {
    let ok = (3..=222).contains(&bucket.len())
        && bucket.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
        })
        && bucket.as_bytes()[0].is_ascii_alphanumeric()
        && bucket.as_bytes()[bucket.len() - 1].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(error(
            "bucket",
            format!("is {bucket:?}"),
            "expected a bucket name alone (3-63 lowercase letters, digits, '-', '_' or '.'), without gs:// or a path",
        ))
    }
}

fn validate_prefix(prefix: &str) -> Result<(), ConfigError> {
    let bad = prefix.starts_with('/')
        || prefix.split('/').any(|s| s == "." || s == "..")
        || prefix.chars().any(char::is_control)
        || prefix.len() > 512;
    if bad {
        Err(error(
            "prefix",
            format!("is {prefix:?}"),
            "expected an object-name prefix such as \"incoming/2026/\" (no leading '/', no '.' or '..' segments)",
        ))
    } else {
        Ok(())
    }
}

pub fn validate_region(field: &str, region: &str) -> Result<(), ConfigError> {
    let ok = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(error(
            field,
            format!("is {region:?}"),
            "expected an AWS region such as \"us-east-1\"",
        ))
    }
}

fn validate_imds_url(field: &str, url: &str) -> Result<String, ConfigError> {
    let host_ok = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .is_some_and(|host| IMDS_HOSTS.contains(&host));
    if host_ok {
        Ok(url.to_owned())
    } else {
        Err(error(
            field,
            format!("is {url:?}"),
            "expected an AWS metadata URL on http://169.254.169.254 or http://[fd00:ec2::254]",
        ))
    }
}

fn validate_verification_url(url: &str) -> Result<String, ConfigError> {
    let field = "credential_config.credential_source.regional_cred_verification_url";
    let filled = url.replace("{region}", "us-east-1");
    let uri = filled.parse::<http::Uri>().ok();
    let host_ok = uri.as_ref().is_some_and(|u| {
        u.scheme_str() == Some("https")
            && u.host()
                .is_some_and(|h| h.starts_with("sts.") && h.contains(".amazonaws.com"))
    });
    if host_ok && url.contains("GetCallerIdentity") {
        Ok(url.to_owned())
    } else {
        Err(error(
            field,
            format!("is {url:?}"),
            format!("expected \"{DEFAULT_CRED_VERIFICATION_URL}\""),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"{
      "universe_domain": "googleapis.com",
      "type": "external_account",
      "audience": "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider",
      "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
      "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/uploader@partner.iam.gserviceaccount.com:generateAccessToken",
      "token_url": "https://sts.googleapis.com/v1/token",
      "credential_source": {
        "environment_id": "aws1",
        "region_url": "http://169.254.169.254/latest/meta-data/placement/availability-zone",
        "url": "http://169.254.169.254/latest/meta-data/iam/security-credentials",
        "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
        "imdsv2_session_token_url": "http://169.254.169.254/latest/api/token"
      },
      "service_account_impersonation": {"token_lifetime_seconds": 1800}
    }"#;

    fn from_file(json: &str) -> Result<Destination, ConfigError> {
        Destination::from_input(&DestinationInput {
            credential_config: Some(json.into()),
            bucket: Some("partner-inbox".into()),
            ..Default::default()
        })
    }

    fn facts() -> DestinationInput {
        DestinationInput {
            project_number: Some("123456789012".into()),
            pool_id: Some("aws-pool".into()),
            provider_id: Some("aws-provider".into()),
            service_account: Some("uploader@partner.iam.gserviceaccount.com".into()),
            bucket: Some("partner-inbox".into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_gcloud_file_and_the_five_facts_agree() {
        let a = from_file(FILE).unwrap();
        let b = Destination::from_input(&facts()).unwrap();
        assert_eq!(a.audience, b.audience);
        assert_eq!(a.impersonation_url, b.impersonation_url);
        assert_eq!(
            a.service_account.as_deref(),
            Some("uploader@partner.iam.gserviceaccount.com")
        );
        assert_eq!(a.token_lifetime_seconds, 1800);
        assert_eq!(b.token_lifetime_seconds, 3600);
        assert_eq!(
            a.cred_verification_url("eu-west-1"),
            "https://sts.eu-west-1.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"
        );
    }

    fn file_error(from: &str, to: &str) -> ConfigError {
        assert!(FILE.contains(from), "{from}");
        from_file(&FILE.replace(from, to)).unwrap_err()
    }

    #[test]
    fn file_errors_name_the_field_and_the_fix() {
        let e = file_error(
            "\"type\": \"external_account\"",
            "\"type\": \"service_account\"",
        );
        assert_eq!(e.field, "credential_config.type");
        let e = file_error("\"aws1\"", "\"azure1\"");
        assert!(e.to_string().contains("expected \"aws1\""), "{e}");
        let e = file_error("projects/123456789012/", "projects/my-project/");
        assert!(e.to_string().contains("project *number*"), "{e}");
        let e = file_error("providers/aws-provider", "providers/x");
        assert!(e.field.contains("provider id"), "{e}");
        let e = file_error(
            "\"token_lifetime_seconds\": 1800",
            "\"token_lifetime_seconds\": 60",
        );
        assert_eq!(e.field, "token_lifetime_seconds");
        assert!(e.to_string().contains("600 to 43200"));
        let e = file_error(
            "http://169.254.169.254/latest/api/token",
            "http://evil.example/token",
        );
        assert_eq!(
            e.field,
            "credential_config.credential_source.imdsv2_session_token_url"
        );
        let e = file_error(
            "urn:ietf:params:aws:token-type:aws4_request",
            "urn:ietf:params:oauth:token-type:jwt",
        );
        assert_eq!(e.field, "credential_config.subject_token_type");
        let e = from_file("{").unwrap_err();
        assert_eq!(e.field, "credential_config");
    }

    #[test]
    fn fact_errors_name_the_field() {
        type Change = fn(&mut DestinationInput);
        let cases: Vec<(Change, &str)> = vec![
            (
                |i| i.project_number = Some("my-project".into()),
                "project_number",
            ),
            (|i| i.pool_id = None, "pool_id"),
            (|i| i.provider_id = Some("UPPER".into()), "provider_id"),
            (
                |i| i.service_account = Some("uploader".into()),
                "service_account",
            ),
            (|i| i.bucket = Some("gs://partner-inbox".into()), "bucket"),
            (|i| i.prefix = Some("../escape/".into()), "prefix"),
            (
                |i| i.token_lifetime_seconds = Some(43_201),
                "token_lifetime_seconds",
            ),
            (|i| i.aws_region = Some("US East".into()), "aws_region"),
            (
                |i| i.storage_url = Some("http://storage.example".into()),
                "storage_url",
            ),
            (
                |i| i.token_url = Some("http://10.0.0.1/v1/token".into()),
                "token_url",
            ),
        ];
        for (change, field) in cases {
            let mut input = facts();
            change(&mut input);
            let e = Destination::from_input(&input).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
    }

    #[test]
    fn plain_http_endpoints_only_on_loopback() {
        for url in [
            "http://127.0.0.1:8080",
            "http://localhost:9000",
            "http://[::1]:80",
        ] {
            let mut input = facts();
            input.storage_url = Some(url.into());
            input.token_url = Some(format!("{url}/v1/token"));
            let d = Destination::from_input(&input).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(d.storage_url, url);
        }
    }
}
