//! The `external_account` credential configuration that
//! `gcloud iam workload-identity-pools create-cred-config --aws` writes: parsed as google-auth
//! parses it (unknown fields ignored), then validated into a [`Federation`].

use serde::Deserialize;

use super::validate::{
    https_url, required, service_account_from_url, validate_audience, validate_imds_url,
    validate_lifetime, validate_verification_url,
};
use super::{
    AwsEndpoints, ConfigError, DEFAULT_CRED_VERIFICATION_URL, DEFAULT_LIFETIME_SECONDS,
    DEFAULT_TOKEN_URL, Federation, SUBJECT_TOKEN_TYPE_AWS, Settings, error,
};

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

pub(crate) fn federation(text: &str, settings: &Settings) -> Result<Federation, ConfigError> {
    let file = serde_json::from_str::<ExternalAccountFile>(text).map_err(|e| {
        error(
            "credential_config",
            format!("is not valid JSON ({e})"),
            "give the file written by `gcloud iam workload-identity-pools create-cred-config --aws`",
        )
    })?;
    const GCLOUD: &str =
        "regenerate the file with `gcloud iam workload-identity-pools create-cred-config --aws`";
    // What the file holds for a field it must get right.
    match file.kind.as_deref() {
        Some("external_account") => {}
        other => {
            return Err(error(
                "credential_config.type",
                match other {
                    Some(v) => format!("is {}", crate::error::quote(v, 100)),
                    None => "is missing".to_owned(),
                },
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
                match other {
                    Some(v) => format!("is {}", crate::error::quote(v, 100)),
                    None => "is missing".to_owned(),
                },
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
                format!(
                    "is {other_q}, an AWS version this tool does not know",
                    other_q = crate::error::quote(other, 100)
                ),
                "expected \"aws1\"",
            ));
        }
        other => {
            return Err(error(
                "credential_config.credential_source.environment_id",
                match other {
                    Some(v) => format!("is {}", crate::error::quote(v, 100)),
                    None => "is missing".to_owned(),
                },
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
    let aws = AwsEndpoints {
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
    let lifetime = settings
        .token_lifetime_seconds
        .or(file
            .service_account_impersonation
            .and_then(|i| i.token_lifetime_seconds))
        .unwrap_or(DEFAULT_LIFETIME_SECONDS);
    validate_lifetime(lifetime)?;
    Ok(Federation {
        audience,
        token_url,
        impersonation_url,
        service_account,
        token_lifetime_seconds: lifetime,
        aws,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(json: &str) -> String {
        federation(json, &Settings::default()).unwrap_err().problem
    }

    #[test]
    fn a_wrong_or_missing_field_is_named_without_rust_notation() {
        assert_eq!(
            problem(r#"{"type": "service_account"}"#),
            "is \"service_account\""
        );
        assert_eq!(problem("{}"), "is missing");
        let aws = r#"{"type": "external_account",
            "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/pool/providers/aws-provider""#;
        assert_eq!(problem(&format!("{aws}}}")), "is missing");
        let token_type = r#""subject_token_type": "urn:ietf:params:aws:token-type:aws4_request""#;
        assert_eq!(
            problem(&format!(
                "{aws}, {token_type}, \"credential_source\": {{}}}}"
            )),
            "is missing"
        );
    }
}
