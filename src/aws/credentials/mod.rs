//! The credential chain: each provider in the AWS SDKs' order, the environment, web identity
//! (EKS IRSA), the shared config and credentials files, the ECS/EKS container endpoint, then
//! EC2 instance metadata. The first one configured answers, and the credentials say which one it
//! was. [`assume_role`] turns any of them into a role's credentials.

mod container;
mod environment;
mod imds;
mod profile;
mod web_identity;

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::aws::sts::{self, Call, RoleRequest};
use crate::config::AwsEndpoints;
use crate::error::{Error, Step, excerpt};
use crate::io::Io;
use crate::retry::Backoff;
use crate::secret::Secret;
use crate::sigv4::Credentials;

/// The provider the credentials came from; says which knob to turn when they are wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    Environment,
    /// `AssumeRoleWithWebIdentity` with `AWS_WEB_IDENTITY_TOKEN_FILE` (EKS IRSA).
    WebIdentity,
    /// The shared config and credentials files (`AWS_PROFILE`, `~/.aws/`).
    Profile,
    Container,
    InstanceMetadata,
    /// `AssumeRole` with the credentials of another provider.
    AssumedRole,
}

#[derive(Clone, Debug)]
pub struct AwsCredentials {
    pub credentials: Credentials,
    /// When temporary credentials stop working; `None` for long-lived keys.
    pub expires_at: Option<OffsetDateTime>,
    /// Which provider answered.
    pub source: Provider,
}

/// What the chain needs besides the environment: where instance metadata is, and how AWS STS
/// is reached (web identity and profile roles call it).
#[derive(Clone, Debug)]
pub struct Lookup<'a> {
    pub endpoints: &'a AwsEndpoints,
    /// Allow IMDSv1 when the IMDSv2 token is refused.
    pub imds_v1_fallback: bool,
    /// The region whose STS endpoint is called; `None`: the global `sts.amazonaws.com`.
    pub region: Option<&'a str>,
    pub backoff: Backoff,
}

impl<'a> Lookup<'a> {
    pub fn new(endpoints: &'a AwsEndpoints, imds_v1_fallback: bool) -> Self {
        Lookup {
            endpoints,
            imds_v1_fallback,
            region: None,
            backoff: Backoff::default(),
        }
    }
}

/// Finds AWS credentials with no region known (STS calls go to the global endpoint).
/// `imds_v1_fallback` allows IMDSv1 when the IMDSv2 token is refused.
pub fn credentials(
    io: &mut dyn Io,
    source: &AwsEndpoints,
    imds_v1_fallback: bool,
) -> Result<AwsCredentials, Error> {
    chain(io, &Lookup::new(source, imds_v1_fallback))
}

/// Finds AWS credentials, provider by provider in the SDKs' order.
pub fn chain(io: &mut dyn Io, lookup: &Lookup) -> Result<AwsCredentials, Error> {
    if let Some(creds) = environment::credentials(io)? {
        return Ok(creds);
    }
    if let Some(creds) = web_identity::from_environment(io, lookup)? {
        return Ok(creds);
    }
    if let Some(creds) = profile::credentials(io, lookup)? {
        return Ok(creds);
    }
    if let Some(request) = container::request(io)? {
        return container::credentials(io, request);
    }
    let Some(url) = &lookup.endpoints.credentials_url else {
        return Err(cred_error("no credentials were found").with_fix(
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), \
             AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN, or AWS_PROFILE; run in ECS/EKS; or \
             give a credential configuration whose credential_source has a metadata url",
        ));
    };
    imds::credentials(io, lookup.endpoints, lookup.imds_v1_fallback, url)
}

/// The credentials of `role`, assumed with `credentials` (STS `AssumeRole`).
pub fn assume_role(
    io: &mut dyn Io,
    lookup: &Lookup,
    credentials: &AwsCredentials,
    role: &RoleRequest,
) -> Result<AwsCredentials, Error> {
    let endpoint = sts::endpoint(io, lookup.region)?;
    let region = lookup.region.unwrap_or(sts::GLOBAL_REGION);
    let request =
        sts::assume_role_request(&endpoint, region, &credentials.credentials, role, io.now())?;
    sts::send(io, request, Call::AssumeRole, role, &lookup.backoff)
}

fn cred_error(message: impl Into<String>) -> Error {
    Error::new(Step::AwsCredentials, message)
}

/// The JSON both the container endpoint and IMDS answer with.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CredentialsDocument {
    code: Option<String>,
    message: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<Secret>,
    token: Option<Secret>,
    expiration: Option<String>,
}

fn parse_credentials(body: &[u8], source: Provider) -> Result<AwsCredentials, Error> {
    let doc: CredentialsDocument = serde_json::from_slice(body).map_err(|e| {
        cred_error(format!(
            "the credentials endpoint answered something that is not credentials JSON ({e})"
        ))
    })?;
    if let Some(code) = doc.code.as_deref().filter(|c| *c != "Success") {
        return Err(cred_error(format!(
            "the instance metadata service answered Code {}: {}",
            excerpt(code.as_bytes(), 100),
            excerpt(doc.message.unwrap_or_default().as_bytes(), 100)
        )));
    }
    let (Some(key), Some(secret)) = (doc.access_key_id, doc.secret_access_key) else {
        return Err(cred_error(
            "the credentials endpoint's answer has no AccessKeyId or SecretAccessKey",
        ));
    };
    let expires_at = match doc.expiration {
        None => None,
        Some(text) => Some(OffsetDateTime::parse(&text, &Rfc3339).map_err(|_| {
            cred_error(format!(
                "the credentials' Expiration {text_q} is not an RFC 3339 time",
                text_q = crate::error::quote(&text, 100)
            ))
        })?),
    };
    Ok(AwsCredentials {
        credentials: Credentials {
            access_key_id: key,
            secret_access_key: secret,
            session_token: doc.token,
        },
        expires_at,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::fixtures::{CREDS_JSON, source};
    use crate::testing::FakeIo;

    #[test]
    fn environment_comes_first() {
        let mut io = FakeIo::new();
        io.set_env("AWS_ACCESS_KEY_ID", "AKIAENV")
            .set_env("AWS_SECRET_ACCESS_KEY", "s");
        io.set_env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/creds");
        let creds = credentials(&mut io, &source(), false).unwrap();
        assert_eq!(creds.source, Provider::Environment);
        assert_eq!(creds.credentials.access_key_id, "AKIAENV");
        assert!(io.sent.is_empty());
    }

    #[test]
    fn debug_of_credentials_hides_secrets() {
        let creds = parse_credentials(CREDS_JSON.as_bytes(), Provider::Container).unwrap();
        let debug = format!("{creds:?}");
        assert!(!debug.contains("canary"), "{debug}");
    }

    /// The metadata service's words are quoted on one line, whatever line breaks they hold.
    #[test]
    fn a_refusal_is_quoted_on_one_line() {
        let body =
            r#"{"Code":"Assume\nRoleUnauthorizedAccess","Message":"EC2 cannot\nassume the role"}"#;
        let e = parse_credentials(body.as_bytes(), Provider::InstanceMetadata).unwrap_err();
        assert!(
            e.message
                .ends_with("Code Assume RoleUnauthorizedAccess: EC2 cannot assume the role"),
            "{e}"
        );
    }
}
