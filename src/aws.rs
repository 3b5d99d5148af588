//! AWS credentials and region, looked for the way the AWS SDKs look: the environment, then
//! ECS/EKS container credentials, then EC2 instance metadata (IMDSv2).

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::config::AwsSource;
use crate::error::{Error, Step, excerpt};
use crate::io::{Io, Request, Response};
use crate::secret::Secret;
use crate::sigv4::Credentials;

const ECS_HOST: &str = "http://169.254.170.2";
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);
const IMDS_TOKEN_TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
const IMDS_TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";

/// Where credentials came from; says which knob to turn when they are wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Environment,
    Container,
    InstanceMetadata,
}

#[derive(Clone, Debug)]
pub struct AwsCredentials {
    pub credentials: Credentials,
    /// When temporary credentials stop working; `None` for long-lived keys.
    pub expires_at: Option<OffsetDateTime>,
    pub source: Source,
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

fn env(io: &dyn Io, name: &str) -> Option<String> {
    io.env(name).filter(|v| !v.trim().is_empty())
}

fn cred_error(message: impl Into<String>) -> Error {
    Error::new(Step::AwsCredentials, message)
}

/// Finds AWS credentials. `imds_v1_fallback` allows IMDSv1 when the IMDSv2 token is refused.
pub fn credentials(
    io: &mut dyn Io,
    source: &AwsSource,
    imds_v1_fallback: bool,
) -> Result<AwsCredentials, Error> {
    if let Some(creds) = from_environment(io)? {
        return Ok(creds);
    }
    if let Some(request) = container_request(io)? {
        return from_container(io, request);
    }
    let Some(url) = &source.credentials_url else {
        return Err(cred_error("no credentials were found").with_fix(
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), run in ECS/EKS, \
             or give a credential configuration whose credential_source has a metadata url",
        ));
    };
    let mut imds = Imds::new(source, imds_v1_fallback);
    imds.credentials(io, url)
}

fn from_environment(io: &dyn Io) -> Result<Option<AwsCredentials>, Error> {
    let key = env(io, "AWS_ACCESS_KEY_ID");
    let secret = env(io, "AWS_SECRET_ACCESS_KEY");
    match (key, secret) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(cred_error(
            "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not",
        )
        .with_fix("set both, or neither to use container or instance credentials")),
        (None, Some(_)) => Err(cred_error(
            "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not",
        )
        .with_fix("set both, or neither to use container or instance credentials")),
        (Some(key), Some(secret)) => Ok(Some(AwsCredentials {
            credentials: Credentials {
                access_key_id: key.trim().to_owned(),
                secret_access_key: Secret::new(secret.trim()),
                session_token: env(io, "AWS_SESSION_TOKEN").map(|t| Secret::new(t.trim())),
            },
            expires_at: None,
            source: Source::Environment,
        })),
    }
}

/// The ECS/EKS container-credentials request, if the environment asks for one.
fn container_request(io: &dyn Io) -> Result<Option<Request>, Error> {
    let url = if let Some(relative) = env(io, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
        format!("{ECS_HOST}{relative}")
    } else if let Some(full) = env(io, "AWS_CONTAINER_CREDENTIALS_FULL_URI") {
        validate_container_url(&full)?;
        full
    } else {
        return Ok(None);
    };
    let token = match env(io, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
        Some(path) => Some(io.read_file(&path).map_err(|e| {
            cred_error(format!(
                "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {path}: {e}"
            ))
            .with_fix(
                "check the file exists and is readable by this host (EKS Pod Identity mounts it)",
            )
        })?),
        None => env(io, "AWS_CONTAINER_AUTHORIZATION_TOKEN"),
    };
    let mut request = http::Request::get(&url);
    if let Some(token) = token {
        let token = token.trim();
        if token.contains(['\r', '\n']) {
            return Err(
                cred_error("the container authorization token contains a line break")
                    .with_fix("the token must be a single line"),
            );
        }
        request = request.header("authorization", token);
    }
    let request = request.body(Vec::new()).map_err(|_| {
        cred_error(format!(
            "the container credentials URL {url:?} is not a valid URL"
        ))
        .with_fix("check AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / _FULL_URI")
    })?;
    Ok(Some(request))
}

/// The AWS SDKs' rule: HTTPS anywhere, plain HTTP only to loopback or the ECS/EKS addresses.
fn validate_container_url(url: &str) -> Result<(), Error> {
    let uri: http::Uri = url.parse().map_err(|_| {
        cred_error(format!(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI {url:?} is not a URL"
        ))
        .with_fix("expected e.g. http://169.254.170.23/v1/credentials")
    })?;
    let host = uri
        .host()
        .unwrap_or("")
        .trim_start_matches('[')
        .trim_end_matches(']');
    let plain_ok = host == "localhost"
        || ["169.254.170.2", "169.254.170.23", "fd00:ec2::23"].contains(&host)
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if plain_ok => Ok(()),
        _ => Err(cred_error(format!(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI {url:?} is plain HTTP to a host that is not loopback or an ECS/EKS address"
        ))
        .with_fix("use https, or the ECS/EKS link-local endpoint")),
    }
}

fn from_container(io: &mut dyn Io, request: Request) -> Result<AwsCredentials, Error> {
    let url = request.uri().to_string();
    let response = send(
        io,
        request,
        Step::AwsCredentials,
        "the container credentials endpoint",
    )?;
    if response.status() != 200 {
        return Err(status_error(Step::AwsCredentials, "the container credentials endpoint", &url, &response)
            .with_fix("check the task role (ECS) or pod identity association (EKS), and AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]"));
    }
    parse_credentials(response.body(), Source::Container)
}

fn send(io: &mut dyn Io, request: Request, step: Step, what: &str) -> Result<Response, Error> {
    io.send(request, METADATA_TIMEOUT)
        .map_err(|e| Error::no_answer(step, format!("{what} did not answer: {e}"), &e))
}

fn status_error(step: Step, what: &str, url: &str, response: &Response) -> Error {
    let status = response.status().as_u16();
    Error::answered(
        step,
        status,
        format!(
            "{what} ({url}) answered {status}: {}",
            excerpt(response.body(), 200)
        ),
    )
}

fn parse_credentials(body: &[u8], source: Source) -> Result<AwsCredentials, Error> {
    let doc: CredentialsDocument = serde_json::from_slice(body).map_err(|e| {
        cred_error(format!(
            "the credentials endpoint answered something that is not credentials JSON ({e})"
        ))
    })?;
    if let Some(code) = doc.code.as_deref().filter(|c| *c != "Success") {
        return Err(cred_error(format!(
            "the instance metadata service answered Code {code}: {}",
            doc.message.unwrap_or_default()
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
                "the credentials' Expiration {text:?} is not an RFC 3339 time"
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

/// The AWS region: the destination's `aws_region`, then `AWS_REGION`, `AWS_DEFAULT_REGION`,
/// then the instance's availability zone from IMDS.
pub fn region(
    io: &mut dyn Io,
    configured: Option<&str>,
    source: &AwsSource,
    imds_v1_fallback: bool,
) -> Result<String, Error> {
    if let Some(region) = configured {
        return Ok(region.to_owned());
    }
    for var in ["AWS_REGION", "AWS_DEFAULT_REGION"] {
        if let Some(region) = env(io, var) {
            crate::config::validate_region(var, region.trim())?;
            return Ok(region.trim().to_owned());
        }
    }
    let Some(url) = &source.region_url else {
        return Err(Error::new(Step::AwsRegion, "no AWS region is set")
            .with_fix("set AWS_REGION, or aws_region in the destination configuration"));
    };
    let mut imds = Imds::new(source, imds_v1_fallback);
    let zone = imds.get(io, url, Step::AwsRegion)?;
    let zone = zone.trim();
    // An availability zone is its region plus one letter: us-east-1b.
    let region = zone
        .strip_suffix(|c: char| c.is_ascii_lowercase())
        .filter(|r| r.ends_with(|c: char| c.is_ascii_digit()))
        .ok_or_else(|| {
            Error::new(
                Step::AwsRegion,
                format!("IMDS answered availability zone {zone:?}, which names no region"),
            )
            .with_fix("set AWS_REGION")
        })?;
    Ok(region.to_owned())
}

/// IMDS is the last place looked; when it is unreachable, most likely this is not EC2.
fn off_ec2(err: Error) -> Error {
    err.with_fix(
        "off EC2, set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_REGION); on EC2, check the \
         instance metadata service is enabled and reachable (hop limit)",
    )
}

/// EC2 instance metadata, with an IMDSv2 session token when the configuration names its URL.
struct Imds<'a> {
    token_url: Option<&'a str>,
    v1_fallback: bool,
    token: Option<Option<Secret>>,
}

impl<'a> Imds<'a> {
    fn new(source: &'a AwsSource, v1_fallback: bool) -> Self {
        Imds {
            token_url: source.imdsv2_session_token_url.as_deref(),
            v1_fallback,
            token: None,
        }
    }

    /// The session token, fetched once; `None` means IMDSv1.
    fn token(&mut self, io: &mut dyn Io, step: Step) -> Result<Option<Secret>, Error> {
        if let Some(token) = &self.token {
            return Ok(token.clone());
        }
        let Some(url) = self.token_url else {
            self.token = Some(None);
            return Ok(None);
        };
        let request = http::Request::put(url)
            .header(IMDS_TOKEN_TTL_HEADER, "21600")
            .body(Vec::new())
            .expect("the token URL was validated with the configuration");
        let response =
            send(io, request, step, "the EC2 metadata service (IMDSv2 token)").map_err(off_ec2)?;
        let token = match response.status().as_u16() {
            200 => Some(Secret::new(String::from_utf8_lossy(response.body()).trim())),
            403..=405 if self.v1_fallback => None,
            status => {
                return Err(status_error(step, "the EC2 metadata service (IMDSv2 token)", url, &response)
                    .with_fix(if (403..=405).contains(&status) {
                        "off EC2, set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; on EC2, enable IMDSv2 \
                         (or set imds_v1_fallback = true to allow IMDSv1)"
                    } else {
                        "off EC2, set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; on EC2, check the \
                         instance metadata service is enabled (http-endpoint) and reachable (hop limit)"
                    }));
            }
        };
        self.token = Some(token.clone());
        Ok(token)
    }

    fn get(&mut self, io: &mut dyn Io, url: &str, step: Step) -> Result<String, Error> {
        let token = self.token(io, step)?;
        let mut request = http::Request::get(url);
        if let Some(token) = &token {
            request = request.header(IMDS_TOKEN_HEADER, token.expose());
        }
        let request = request
            .body(Vec::new())
            .map_err(|_| Error::new(step, format!("the metadata URL {url:?} is not valid")))?;
        let response = send(io, request, step, "the EC2 metadata service").map_err(off_ec2)?;
        if response.status() != 200 {
            let err = status_error(step, "the EC2 metadata service", url, &response);
            return Err(if response.status() == 404 {
                err.with_fix("attach an IAM role (instance profile) to the instance")
            } else {
                err
            });
        }
        String::from_utf8(response.into_body()).map_err(|_| {
            Error::new(
                step,
                format!("the EC2 metadata service answered {url} with bytes that are not text"),
            )
        })
    }

    fn credentials(&mut self, io: &mut dyn Io, url: &str) -> Result<AwsCredentials, Error> {
        let roles = self.get(io, url, Step::AwsCredentials)?;
        let role = roles.lines().next().unwrap_or("").trim();
        if role.is_empty() || role.contains('/') {
            return Err(cred_error(format!(
                "the EC2 metadata service lists no usable IAM role ({role:?})"
            ))
            .with_fix("attach an IAM role (instance profile) to the instance"));
        }
        let body = self.get(
            io,
            &format!("{}/{role}", url.trim_end_matches('/')),
            Step::AwsCredentials,
        )?;
        parse_credentials(body.as_bytes(), Source::InstanceMetadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{
        DEFAULT_CRED_VERIFICATION_URL, DEFAULT_IMDS_CREDENTIALS_URL, DEFAULT_IMDS_REGION_URL,
        DEFAULT_IMDSV2_SESSION_TOKEN_URL,
    };
    use crate::testing::{FakeIo, respond};

    fn source() -> AwsSource {
        AwsSource {
            region_url: Some(DEFAULT_IMDS_REGION_URL.into()),
            credentials_url: Some(DEFAULT_IMDS_CREDENTIALS_URL.into()),
            cred_verification_url: DEFAULT_CRED_VERIFICATION_URL.into(),
            imdsv2_session_token_url: Some(DEFAULT_IMDSV2_SESSION_TOKEN_URL.into()),
        }
    }

    const CREDS_JSON: &str = r#"{"Code":"Success","AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"canary-secret","Token":"canary-token","Expiration":"2026-11-26T18:00:00Z"}"#;

    #[test]
    fn environment_comes_first() {
        let mut io = FakeIo::new();
        io.set_env("AWS_ACCESS_KEY_ID", "AKIAENV")
            .set_env("AWS_SECRET_ACCESS_KEY", "s");
        io.set_env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/creds");
        let creds = credentials(&mut io, &source(), false).unwrap();
        assert_eq!(creds.source, Source::Environment);
        assert_eq!(creds.credentials.access_key_id, "AKIAENV");
        assert!(io.sent.is_empty());
    }

    #[test]
    fn half_set_environment_names_the_missing_variable() {
        let mut io = FakeIo::new();
        io.set_env("AWS_ACCESS_KEY_ID", "AKIAENV");
        let err = credentials(&mut io, &source(), false).unwrap_err();
        assert!(
            err.message.contains("AWS_SECRET_ACCESS_KEY is not"),
            "{err}"
        );
    }

    #[test]
    fn ecs_full_uri_with_token_file() {
        let mut io = FakeIo::new();
        io.set_env(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "http://169.254.170.23/v1/credentials",
        );
        io.set_env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "/var/run/token");
        io.files
            .insert("/var/run/token".into(), "pod-token\n".into());
        io.on("GET http://169.254.170.23/v1/credentials", |req| {
            assert_eq!(req.headers()["authorization"], "pod-token");
            respond(200, CREDS_JSON)
        });
        let creds = credentials(&mut io, &source(), false).unwrap();
        assert_eq!(creds.source, Source::Container);
        assert_eq!(
            creds.credentials.session_token.unwrap().expose(),
            "canary-token"
        );
        assert!(creds.expires_at.is_some());
    }

    #[test]
    fn ecs_full_uri_must_be_https_or_local() {
        let mut io = FakeIo::new();
        io.set_env(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "http://evil.example/creds",
        );
        let err = credentials(&mut io, &source(), false).unwrap_err();
        assert!(err.message.contains("plain HTTP"), "{err}");
        assert!(io.sent.is_empty());
    }

    #[test]
    fn imdsv2_token_then_role_then_credentials() {
        let mut io = FakeIo::new();
        io.on("PUT http://169.254.169.254/latest/api/token", |req| {
            assert_eq!(req.headers()[IMDS_TOKEN_TTL_HEADER], "21600");
            respond(200, "session")
        });
        io.on(
            "GET http://169.254.169.254/latest/meta-data/iam/security-credentials",
            |req| {
                assert_eq!(req.headers()[IMDS_TOKEN_HEADER], "session");
                if req.uri().path().ends_with("/uploader") {
                    respond(200, CREDS_JSON)
                } else {
                    respond(200, "uploader\n")
                }
            },
        );
        let creds = credentials(&mut io, &source(), false).unwrap();
        assert_eq!(creds.source, Source::InstanceMetadata);
        assert_eq!(creds.credentials.access_key_id, "ASIAEXAMPLE");
        assert_eq!(io.sent.len(), 3);
    }

    #[test]
    fn imdsv1_fallback_only_when_allowed() {
        let setup = |io: &mut FakeIo| {
            io.on("PUT http://169.254.169.254/latest/api/token", |_| {
                respond(403, "Forbidden")
            });
            io.on(
                "GET http://169.254.169.254/latest/meta-data/iam/security-credentials",
                |req| {
                    assert!(req.headers().get(IMDS_TOKEN_HEADER).is_none());
                    if req.uri().path().ends_with("/uploader") {
                        respond(200, CREDS_JSON)
                    } else {
                        respond(200, "uploader")
                    }
                },
            );
        };
        let mut io = FakeIo::new();
        setup(&mut io);
        let err = credentials(&mut io, &source(), false).unwrap_err();
        assert!(err.fix.unwrap().contains("enable IMDSv2"));
        let mut io = FakeIo::new();
        setup(&mut io);
        assert!(credentials(&mut io, &source(), true).is_ok());
    }

    #[test]
    fn region_order_and_availability_zone() {
        let mut io = FakeIo::new();
        io.set_env("AWS_DEFAULT_REGION", "eu-west-1")
            .set_env("AWS_REGION", "eu-west-3");
        assert_eq!(
            region(&mut io, None, &source(), false).unwrap(),
            "eu-west-3"
        );
        assert_eq!(
            region(&mut io, Some("ap-south-1"), &source(), false).unwrap(),
            "ap-south-1"
        );
        let mut io = FakeIo::new();
        io.on("PUT http://169.254.169.254/latest/api/token", |_| {
            respond(200, "t")
        });
        io.on(
            "GET http://169.254.169.254/latest/meta-data/placement",
            |_| respond(200, "us-west-2c"),
        );
        assert_eq!(
            region(&mut io, None, &source(), false).unwrap(),
            "us-west-2"
        );
    }

    #[test]
    fn debug_of_credentials_hides_secrets() {
        let creds = parse_credentials(CREDS_JSON.as_bytes(), Source::Container).unwrap();
        let debug = format!("{creds:?}");
        assert!(!debug.contains("canary"), "{debug}");
    }
}
