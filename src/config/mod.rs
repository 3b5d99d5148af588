//! The partner destination: where to deliver and how to get a token for it.
//!
//! Two steps, as google-cloud-rust's auth does: [`Settings`] is what a host hands over
//! (DEST.toml, the sidecar's environment or `wasi:config`, the WIT record), declared once;
//! [`Destination::from_settings`] validates it. The federation part arrives either as the
//! `external_account` file that `gcloud iam workload-identity-pools create-cred-config --aws`
//! writes ([`external_account`]) or as the five facts a partner hands over ([`facts`]). Every
//! validation error names the field and what a valid value looks like ([`validate`]).

pub mod environment;
pub mod external_account;
pub mod facts;
pub mod settings;
pub mod validate;

use std::fmt;
use std::time::Duration;

pub use settings::{Endpoints, Settings};

use crate::retry::Backoff;
use validate::{
    https_url, required, validate_chunk_size, validate_prefix, validate_upload_timeout,
};
pub use validate::{validate_audience, validate_bucket, validate_region};

pub const SUBJECT_TOKEN_TYPE_AWS: &str = "urn:ietf:params:aws:token-type:aws4_request";
pub const DEFAULT_TOKEN_URL: &str = "https://sts.googleapis.com/v1/token";
pub const DEFAULT_IAM_CREDENTIALS_URL: &str = "https://iamcredentials.googleapis.com";
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
pub const DEFAULT_INITIAL_RETRY_DELAY_MS: u32 = 1000;
pub const DEFAULT_UPLOAD_TIMEOUT_SECONDS: u32 = 120;
const CHUNK_QUANTUM: u64 = 256 * 1024;

/// Where the AWS side of the exchange is: the metadata URLs (when the environment does not
/// give credentials or a region) and the GetCallerIdentity URL the subject token signs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsEndpoints {
    /// IMDS availability-zone URL (the region is the zone minus its letter).
    pub region_url: Option<String>,
    /// IMDS security-credentials URL (role name, then credentials).
    pub credentials_url: Option<String>,
    /// The GetCallerIdentity URL, with `{region}` to fill in.
    pub cred_verification_url: String,
    pub imdsv2_session_token_url: Option<String>,
}

/// The partner's side of the token exchange, from the credential configuration or the facts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Federation {
    /// `//iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/POOL/providers/PROV`
    pub audience: String,
    pub token_url: String,
    /// `None` when the partner grants the federated principal directly (no impersonation).
    pub impersonation_url: Option<String>,
    pub service_account: Option<String>,
    pub token_lifetime_seconds: u32,
    pub aws: AwsEndpoints,
}

impl Federation {
    /// The GetCallerIdentity URL for `region`.
    pub fn cred_verification_url(&self, region: &str) -> String {
        self.aws.cred_verification_url.replace("{region}", region)
    }
}

/// A validated destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    pub federation: Federation,
    pub bucket: String,
    pub prefix: String,
    pub storage_url: String,
    pub aws_region: Option<String>,
    /// The role this partner trusts, assumed before the subject token is signed.
    pub aws_role: Option<AwsRole>,
    pub imds_v1_fallback: bool,
    pub sign_target_resource: bool,
    pub upload: Upload,
    /// Every retry loop's pacing (tokens, metadata, uploads).
    pub backoff: Backoff,
}

/// A role to assume for a destination (`aws_role_arn` and its companions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsRole {
    pub role_arn: String,
    pub external_id: Option<String>,
    pub session_name: Option<String>,
}

/// How objects go up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Upload {
    /// Objects up to this size go in one multipart request.
    pub single_request_limit: u64,
    /// Resumable chunk size, a multiple of 256 KiB.
    pub chunk_size: u64,
    /// How long one Cloud Storage request may take.
    pub timeout: Duration,
}

impl Default for Upload {
    fn default() -> Self {
        Upload {
            single_request_limit: DEFAULT_SINGLE_REQUEST_LIMIT,
            chunk_size: DEFAULT_CHUNK_SIZE,
            timeout: Duration::from_secs(DEFAULT_UPLOAD_TIMEOUT_SECONDS.into()),
        }
    }
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
    /// Validates `settings`. A `credential_config` must hold the file's text by now
    /// ([`Settings::read_credential_config`]).
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        let bucket = required(
            &settings.bucket,
            "bucket",
            "the partner's bucket name, e.g. \"partner-inbox\"",
        )?;
        validate_bucket(&bucket)?;
        let prefix = settings.prefix.clone().unwrap_or_default();
        validate_prefix(&prefix)?;
        let storage_url = https_url(
            "endpoints.storage",
            settings
                .endpoints
                .storage
                .as_deref()
                .unwrap_or(DEFAULT_STORAGE_URL),
        )?;
        if let Some(region) = &settings.aws_region {
            validate_region("aws_region", region)?;
        }
        let aws_role = validate::aws_role(settings)?;
        let chunk_size = settings.chunk_size.unwrap_or(DEFAULT_CHUNK_SIZE);
        validate_chunk_size(chunk_size)?;
        let timeout = settings
            .upload_timeout_seconds
            .unwrap_or(DEFAULT_UPLOAD_TIMEOUT_SECONDS);
        validate_upload_timeout(timeout)?;
        let federation = match &settings.credential_config {
            Some(_) if !settings.has_inline_credential_config() => {
                return Err(error(
                    "credential_config",
                    "names a file this host did not read",
                    "give the file's JSON text, or let the host read it first",
                ));
            }
            Some(text) => {
                let facts = [
                    ("project_number", &settings.project_number),
                    ("pool_id", &settings.pool_id),
                    ("provider_id", &settings.provider_id),
                    ("service_account", &settings.service_account),
                ];
                if let Some((fact, _)) = facts.iter().find(|(_, value)| value.is_some()) {
                    return Err(error(
                        &format!("credential_config and {fact}"),
                        "are both given",
                        format!(
                            "give either the gcloud file or the five facts, not both: remove \
                             {fact} (the file names the pool, provider and service account)"
                        ),
                    ));
                }
                external_account::federation(text, settings)?
            }
            None => facts::federation(settings)?,
        };
        Ok(Destination {
            federation,
            bucket,
            prefix,
            storage_url,
            aws_region: settings.aws_region.clone(),
            aws_role,
            imds_v1_fallback: settings.imds_v1_fallback.unwrap_or(false),
            sign_target_resource: settings.sign_target_resource.unwrap_or(true),
            upload: Upload {
                single_request_limit: settings
                    .single_request_limit
                    .unwrap_or(DEFAULT_SINGLE_REQUEST_LIMIT),
                chunk_size,
                timeout: Duration::from_secs(timeout.into()),
            },
            backoff: Backoff::starting_at(Duration::from_millis(u64::from(
                settings
                    .initial_retry_delay_ms
                    .unwrap_or(DEFAULT_INITIAL_RETRY_DELAY_MS),
            ))),
        })
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
        Destination::from_settings(&Settings {
            credential_config: Some(json.into()),
            bucket: Some("partner-inbox".into()),
            ..Default::default()
        })
    }

    fn facts() -> Settings {
        crate::testing::settings()
    }

    #[test]
    fn the_gcloud_file_and_the_five_facts_agree() {
        let a = from_file(FILE).unwrap();
        let b = Destination::from_settings(&facts()).unwrap();
        assert_eq!(a.federation.audience, b.federation.audience);
        assert_eq!(
            a.federation.impersonation_url,
            b.federation.impersonation_url
        );
        assert_eq!(
            a.federation.service_account.as_deref(),
            Some("uploader@partner.iam.gserviceaccount.com")
        );
        assert_eq!(a.federation.token_lifetime_seconds, 1800);
        assert_eq!(b.federation.token_lifetime_seconds, 3600);
        assert_eq!(
            a.federation.cred_verification_url("eu-west-1"),
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
        type Change = fn(&mut Settings);
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
                |i| i.upload_timeout_seconds = Some(0),
                "upload_timeout_seconds",
            ),
            (|i| i.bucket = Some("a".repeat(64)), "bucket"),
            (
                |i| i.endpoints.storage = Some("http://storage.example".into()),
                "endpoints.storage",
            ),
            (
                |i| i.endpoints.sts = Some("http://10.0.0.1/v1/token".into()),
                "endpoints.sts",
            ),
        ];
        for (change, field) in cases {
            let mut input = facts();
            change(&mut input);
            let e = Destination::from_settings(&input).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
    }

    #[test]
    fn a_huge_bad_value_is_quoted_short_and_escaped() {
        let mut settings = facts();
        settings.bucket = Some(format!("{}\u{1b}[31m", "B".repeat(10_000_000)));
        let e = Destination::from_settings(&settings).unwrap_err();
        let text = e.to_string();
        assert!(text.len() < 1000, "{} bytes", text.len());
        assert!(!text.contains('\u{1b}') && !text.contains('\n'), "{text}");
        settings.bucket = Some("partner-inbox".into());
        settings.credential_config = Some(r#"{"type": "service_account"}"#.into());
        settings.project_number = None;
        settings.pool_id = None;
        settings.provider_id = None;
        settings.service_account = None;
        let e = Destination::from_settings(&settings).unwrap_err();
        assert_eq!(e.problem, "is \"service_account\"", "no Rust debug text");
    }

    #[test]
    fn the_file_and_the_facts_together_are_refused() {
        let mut settings = facts();
        settings.credential_config = Some(FILE.into());
        let e = Destination::from_settings(&settings).unwrap_err();
        assert_eq!(e.field, "credential_config and project_number");
        assert!(e.fix.contains("not both"), "{e}");
        settings.project_number = None;
        settings.pool_id = None;
        settings.provider_id = None;
        let e = Destination::from_settings(&settings).unwrap_err();
        assert_eq!(e.field, "credential_config and service_account");
    }

    #[test]
    fn bucket_names_follow_google_s_lengths() {
        for (bucket, ok) in [
            ("a".repeat(63), true),
            ("a".repeat(64), false),
            (format!("{}.{}", "a".repeat(63), "b".repeat(63)), true),
            (format!("{}.b", "a".repeat(64)), false),
            (vec!["a".repeat(60); 4].join("."), false),
        ] {
            let mut input = facts();
            input.bucket = Some(bucket.clone());
            assert_eq!(Destination::from_settings(&input).is_ok(), ok, "{bucket}");
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
            input.endpoints.storage = Some(url.into());
            input.endpoints.sts = Some(format!("{url}/v1/token"));
            let d = Destination::from_settings(&input).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(d.storage_url, url);
        }
    }
}
