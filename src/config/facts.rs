//! The five facts a partner hands over instead of a credential configuration: project number,
//! pool id, provider id, service account (and the bucket), validated into a [`Federation`]
//! with Google's default endpoints.

use super::validate::{
    https_url, required, validate_id, validate_lifetime, validate_service_account,
};
use super::{
    AwsEndpoints, ConfigError, DEFAULT_CRED_VERIFICATION_URL, DEFAULT_IAM_CREDENTIALS_URL,
    DEFAULT_IMDS_CREDENTIALS_URL, DEFAULT_IMDS_REGION_URL, DEFAULT_IMDSV2_SESSION_TOKEN_URL,
    DEFAULT_LIFETIME_SECONDS, DEFAULT_TOKEN_URL, Federation, Settings, error,
};

pub(crate) fn federation(settings: &Settings) -> Result<Federation, ConfigError> {
    let missing = "give credential_config (the gcloud file) or all of project_number, pool_id, provider_id and service_account";
    let project = required(&settings.project_number, "project_number", missing)?;
    if project.is_empty() || !project.bytes().all(|b| b.is_ascii_digit()) {
        return Err(error(
            "project_number",
            format!(
                "is {project_q}",
                project_q = crate::error::quote(&project, 100)
            ),
            "expected the partner project's number (digits, e.g. \"123456789012\"), not its id",
        ));
    }
    let pool = required(&settings.pool_id, "pool_id", missing)?;
    validate_id("pool_id", &pool)?;
    let provider = required(&settings.provider_id, "provider_id", missing)?;
    validate_id("provider_id", &provider)?;
    let service_account = required(&settings.service_account, "service_account", missing)?;
    validate_service_account(&service_account)?;
    let lifetime = settings
        .token_lifetime_seconds
        .unwrap_or(DEFAULT_LIFETIME_SECONDS);
    validate_lifetime(lifetime)?;
    let iam = https_url(
        "endpoints.iam_credentials",
        settings
            .endpoints
            .iam_credentials
            .as_deref()
            .unwrap_or(DEFAULT_IAM_CREDENTIALS_URL),
    )?;
    Ok(Federation {
        audience: format!(
            "//iam.googleapis.com/projects/{project}/locations/global/workloadIdentityPools/{pool}/providers/{provider}"
        ),
        token_url: https_url(
            "endpoints.sts",
            settings
                .endpoints
                .sts
                .as_deref()
                .unwrap_or(DEFAULT_TOKEN_URL),
        )?,
        impersonation_url: Some(format!(
            "{}/v1/projects/-/serviceAccounts/{service_account}:generateAccessToken",
            iam.trim_end_matches('/')
        )),
        service_account: Some(service_account),
        token_lifetime_seconds: lifetime,
        aws: AwsEndpoints {
            region_url: Some(DEFAULT_IMDS_REGION_URL.into()),
            credentials_url: Some(DEFAULT_IMDS_CREDENTIALS_URL.into()),
            cred_verification_url: DEFAULT_CRED_VERIFICATION_URL.into(),
            imdsv2_session_token_url: Some(DEFAULT_IMDSV2_SESSION_TOKEN_URL.into()),
        },
    })
}
