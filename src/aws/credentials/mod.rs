//! The credential chain: each provider in the AWS SDKs' order, the environment, then the ECS/EKS
//! container endpoint, then EC2 instance metadata. The first one configured answers, and the
//! credentials say which one it was.

mod container;
mod environment;
mod imds;

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::config::AwsEndpoints;
use crate::error::{Error, Step, excerpt};
use crate::io::Io;
use crate::secret::Secret;
use crate::sigv4::Credentials;

/// The provider the credentials came from; says which knob to turn when they are wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    Environment,
    Container,
    InstanceMetadata,
}

#[derive(Clone, Debug)]
pub struct AwsCredentials {
    pub credentials: Credentials,
    /// When temporary credentials stop working; `None` for long-lived keys.
    pub expires_at: Option<OffsetDateTime>,
    /// Which provider answered.
    pub source: Provider,
}

/// Finds AWS credentials. `imds_v1_fallback` allows IMDSv1 when the IMDSv2 token is refused.
pub fn credentials(
    io: &mut dyn Io,
    source: &AwsEndpoints,
    imds_v1_fallback: bool,
) -> Result<AwsCredentials, Error> {
    if let Some(creds) = environment::credentials(io)? {
        return Ok(creds);
    }
    if let Some(request) = container::request(io)? {
        return container::credentials(io, request);
    }
    let Some(url) = &source.credentials_url else {
        return Err(cred_error("no credentials were found").with_fix(
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), run in ECS/EKS, \
             or give a credential configuration whose credential_source has a metadata url",
        ));
    };
    imds::credentials(io, source, imds_v1_fallback, url)
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
