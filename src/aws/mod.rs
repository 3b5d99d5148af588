//! AWS credentials and region, looked for the way the AWS SDKs look.
//!
//! [`credentials`] tries each provider in the SDKs' order and the first one configured answers
//! (`credentials/mod.rs`):
//! 1. the environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`
//!    (`credentials/environment.rs`);
//! 2. ECS/EKS container credentials: `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` or `_FULL_URI`
//!    (HTTPS, or plain HTTP to loopback or the ECS/EKS link-local addresses only), with
//!    `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (EKS Pod Identity) or
//!    `AWS_CONTAINER_AUTHORIZATION_TOKEN` (`credentials/container.rs`);
//! 3. EC2 instance metadata, IMDSv2 (session token, role name, credentials), at the URLs of the
//!    credential configuration (`credentials/imds.rs`, over the client in `imds.rs`).
//!
//! [`region`]: the destination's `aws_region`, then `AWS_REGION`, `AWS_DEFAULT_REGION`, then the
//! instance's availability zone from IMDS (`region.rs`).
//!
//! This file holds what they share: reading the environment and asking a metadata endpoint.

mod credentials;
mod imds;
pub mod profile;
mod region;
pub mod sts;

pub use credentials::{AwsCredentials, Lookup, Provider, assume_role, chain, credentials};

/// The ECS and EKS Pod Identity container-credential hosts, where the SDKs allow plain HTTP.
pub const CONTAINER_HOSTS: &[&str] = &["169.254.170.2", "169.254.170.23", "fd00:ec2::23"];
/// The EC2 instance metadata hosts (IPv4 and IPv6), as google-auth accepts them.
pub const IMDS_HOSTS: &[&str] = &["169.254.169.254", "fd00:ec2::254"];
pub use region::region;

use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Step, excerpt};
use crate::io::{Io, Request, Response};

const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// The domain of AWS's endpoints in `region`: China's regions have their own.
pub fn dns_suffix(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    }
}

/// An environment variable, unless unset or blank.
pub(crate) fn env(io: &dyn Io, name: &str) -> Option<String> {
    io.env(name).filter(|v| !v.trim().is_empty())
}

/// Sends a request to a metadata endpoint; `what` names the endpoint in the error.
fn send(io: &mut dyn Io, request: Request, step: Step, what: &str) -> Result<Response, Error> {
    io.send(request, METADATA_TIMEOUT)
        .map_err(|e| Error::no_answer(step, format!("{what} did not answer: {e}"), &e))
}

/// What an error may say of the body of an answer that is not the one asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Quote {
    /// An excerpt: the endpoint answers nothing secret (the IMDSv2 token's refusal, the zone).
    Excerpt,
    /// Only the JSON `code` and `message`, when they parse: the answer may hold keys.
    CodeAndMessage,
}

/// `what` at `url` answered with a status other than 200.
fn status_error(step: Step, what: &str, url: &str, response: &Response, quote: Quote) -> Error {
    let status = response.status().as_u16();
    let said = match quote {
        Quote::Excerpt => excerpt(response.body(), 200),
        Quote::CodeAndMessage => code_and_message(response.body()),
    };
    Error::answered(
        step,
        status,
        format!("{what} ({url}) answered {status}: {said}"),
    )
}

/// `code: message` of a JSON error answer (ECS spells them in lower case, IMDS capitalised),
/// each cut short; never the body itself.
fn code_and_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Refusal {
        #[serde(alias = "Code")]
        code: Option<String>,
        #[serde(alias = "Message")]
        message: Option<String>,
    }
    let said: Vec<String> = serde_json::from_slice::<Refusal>(body)
        .into_iter()
        .flat_map(|refusal| [refusal.code, refusal.message])
        .flatten()
        .map(|text| excerpt(text.as_bytes(), 100))
        .filter(|text| !text.is_empty())
        .collect();
    if said.is_empty() {
        "(not quoted: the answer may hold credentials)".to_owned()
    } else {
        said.join(": ")
    }
}

/// What the tests of the providers share.
#[cfg(test)]
mod fixtures {
    use crate::config::{
        AwsEndpoints, DEFAULT_CRED_VERIFICATION_URL, DEFAULT_IMDS_CREDENTIALS_URL,
        DEFAULT_IMDS_REGION_URL, DEFAULT_IMDSV2_SESSION_TOKEN_URL,
    };
    use crate::error::Error;
    use crate::testing::FakeIo;

    /// The credential configuration's defaults: IMDSv2 at 169.254.169.254.
    pub(super) fn source() -> AwsEndpoints {
        AwsEndpoints {
            region_url: Some(DEFAULT_IMDS_REGION_URL.into()),
            credentials_url: Some(DEFAULT_IMDS_CREDENTIALS_URL.into()),
            cred_verification_url: DEFAULT_CRED_VERIFICATION_URL.into(),
            imdsv2_session_token_url: Some(DEFAULT_IMDSV2_SESSION_TOKEN_URL.into()),
        }
    }

    /// The chain's error, checked to quote nothing of the canary secret the endpoint answered.
    pub(super) fn error_without_canary(io: &mut FakeIo) -> Error {
        let err = crate::aws::credentials(io, &source(), false).unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(!text.contains("canary"), "{text}");
        err
    }

    pub(super) const CREDS_JSON: &str = r#"{"Code":"Success","AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"canary-secret","Token":"canary-token","Expiration":"2026-11-26T18:00:00Z"}"#;
}
