//! Credentials from EC2 instance metadata: the role name at the configuration's credentials URL,
//! then that role's credentials.

use super::{AwsCredentials, Provider, cred_error, parse_credentials};
use crate::aws::Quote;
use crate::aws::imds::Imds;
use crate::config::AwsEndpoints;
use crate::error::{Error, Step};
use crate::io::Io;

/// The instance profile's credentials; `url` lists its role.
pub(super) fn credentials(
    io: &mut dyn Io,
    source: &AwsEndpoints,
    v1_fallback: bool,
    url: &str,
) -> Result<AwsCredentials, Error> {
    let mut imds = Imds::new(source, v1_fallback);
    let roles = imds.get(io, url, Step::AwsCredentials, Quote::CodeAndMessage)?;
    let role = roles.lines().next().unwrap_or("").trim();
    // IAM role names are 1-64 of `[A-Za-z0-9+=,.@_-]`; anything else is not a role to ask for.
    let is_role_name = (1..=64).contains(&role.len())
        && role
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
    if !is_role_name {
        return Err(cred_error(format!(
            "the EC2 metadata service lists no usable IAM role ({role_q})",
            role_q = crate::error::quote(role, 100)
        ))
        .with_fix("attach an IAM role (instance profile) to the instance"));
    }
    let body = imds.get(
        io,
        &format!("{}/{role}", url.trim_end_matches('/')),
        Step::AwsCredentials,
        Quote::CodeAndMessage,
    )?;
    parse_credentials(body.as_bytes(), Provider::InstanceMetadata)
}

#[cfg(test)]
mod tests {
    use super::super::Provider;
    use crate::aws::credentials;
    use crate::aws::fixtures::{CREDS_JSON, error_without_canary, source};
    use crate::aws::imds::{IMDS_TOKEN_HEADER, IMDS_TOKEN_TTL_HEADER};
    use crate::testing::{FakeIo, respond};

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
        assert_eq!(creds.source, Provider::InstanceMetadata);
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
    fn credential_refusals_are_described_not_quoted() {
        let mut io = FakeIo::new();
        io.on("PUT http://169.254.169.254/latest/api/token", |_| {
            respond(200, "session")
        });
        io.on(
            "GET http://169.254.169.254/latest/meta-data/iam/security-credentials",
            |req| {
                if req.uri().path().ends_with("/uploader") {
                    respond(
                        500,
                        r#"{"Code":"InternalError","Message":"try again","Token":"canary-token"}"#,
                    )
                } else {
                    respond(200, "uploader")
                }
            },
        );
        let err = error_without_canary(&mut io);
        assert!(
            err.message
                .contains("answered 500: InternalError: try again"),
            "{err}"
        );
        assert!(err.transient);
    }

    #[test]
    fn a_listed_role_that_is_not_a_role_name_is_refused_before_it_is_asked_for() {
        for listed in ["#\r\r\u{1f}\0code", "a/../b", "x y", &"r".repeat(65)] {
            let mut io = FakeIo::new();
            io.on("PUT http://169.254.169.254/latest/api/token", |_| {
                respond(200, "session")
            });
            let answer = listed.to_owned();
            io.on(
                "GET http://169.254.169.254/latest/meta-data/iam/security-credentials",
                move |_| respond(200, &answer),
            );
            let err = credentials(&mut io, &source(), false).unwrap_err();
            assert!(err.message.contains("no usable IAM role"), "{err}");
            assert!(!err.to_string().contains(['\r', '\0']), "{err:?}");
            assert_eq!(io.sent.len(), 2, "the listed role was asked for");
        }
    }
}
