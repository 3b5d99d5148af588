//! Web identity credentials (EKS IRSA): `AWS_WEB_IDENTITY_TOKEN_FILE` and `AWS_ROLE_ARN` (and
//! `AWS_ROLE_SESSION_NAME`), exchanged at AWS STS with `AssumeRoleWithWebIdentity`. The token
//! file is read at every exchange: the kubelet rotates it, and a refresh must send the new one.

use super::{AwsCredentials, Lookup, cred_error};
use crate::aws::env;
use crate::aws::sts::{self, Call, RoleRequest};
use crate::error::{Error, quote};
use crate::io::Io;
use crate::secret::Secret;

/// `None` when `AWS_WEB_IDENTITY_TOKEN_FILE` is not set.
pub(super) fn from_environment(
    io: &mut dyn Io,
    lookup: &Lookup,
) -> Result<Option<AwsCredentials>, Error> {
    let Some(file) = env(io, "AWS_WEB_IDENTITY_TOKEN_FILE") else {
        return Ok(None);
    };
    let Some(role_arn) = env(io, "AWS_ROLE_ARN") else {
        return Err(
            cred_error("AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not").with_fix(
                "set AWS_ROLE_ARN to the role the token may assume (EKS sets both for a service \
             account annotated with eks.amazonaws.com/role-arn)",
            ),
        );
    };
    let session = env(io, "AWS_ROLE_SESSION_NAME");
    assume(io, lookup, role_arn.trim(), file.trim(), session.as_deref()).map(Some)
}

/// Exchanges the token in `token_file` for the credentials of `role_arn`.
pub(super) fn assume(
    io: &mut dyn Io,
    lookup: &Lookup,
    role_arn: &str,
    token_file: &str,
    session_name: Option<&str>,
) -> Result<AwsCredentials, Error> {
    let token = read_token(io, token_file)?;
    let role = RoleRequest::new(role_arn, session_name, io.now());
    let endpoint = sts::endpoint(io, lookup.region)?;
    let request = sts::web_identity_request(&endpoint, &role, &token)?;
    sts::send(io, request, Call::WebIdentity, &role, &lookup.backoff)
}

fn read_token(io: &dyn Io, path: &str) -> Result<Secret, Error> {
    let text = io.read_file(path).map_err(|e| {
        cred_error(format!(
            "cannot read the web identity token file {}: {e}",
            quote(path, 200)
        ))
        .with_fix(
            "check AWS_WEB_IDENTITY_TOKEN_FILE names the projected service-account token and \
             that this host lets wif-push read it",
        )
    })?;
    let token = Secret::new(text.trim());
    if token.is_empty() {
        return Err(cred_error(format!(
            "the web identity token file {} is empty",
            quote(path, 200)
        ))
        .with_fix("the kubelet writes the projected token there: check the volume is mounted"));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use crate::aws::credentials::{Lookup, Provider, chain};
    use crate::aws::fixtures::source;
    use crate::testing::{FakeIo, respond};

    const ANSWER: &str = "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>\
        <Credentials><AccessKeyId>ASIAWEB</AccessKeyId><SecretAccessKey>canary-web-secret\
        </SecretAccessKey><SessionToken>canary-web-session</SessionToken>\
        <Expiration>2030-01-01T00:00:00Z</Expiration></Credentials>\
        </AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>";

    fn irsa() -> FakeIo {
        let mut io = FakeIo::new();
        io.set_env("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/token")
            .set_env("AWS_ROLE_ARN", "arn:aws:iam::111122223333:role/pipeline")
            .set_env("AWS_ROLE_SESSION_NAME", "nightly");
        io
    }

    #[test]
    fn the_token_is_read_at_each_exchange_and_sent_to_regional_sts() {
        let mut io = irsa();
        io.files
            .insert("/var/run/token".into(), "canary-web-token-1\n".into());
        io.on("POST https://sts.eu-west-1.amazonaws.com/", |_| {
            respond(200, ANSWER)
        });
        let endpoints = source();
        let lookup = Lookup {
            region: Some("eu-west-1"),
            ..Lookup::new(&endpoints, false)
        };
        let creds = chain(&mut io, &lookup).unwrap();
        assert_eq!(creds.source, Provider::WebIdentity);
        assert_eq!(creds.credentials.access_key_id, "ASIAWEB");
        io.files
            .insert("/var/run/token".into(), "canary-web-token-2".into());
        chain(&mut io, &lookup).unwrap();
        let bodies: Vec<String> = io
            .requests
            .iter()
            .map(|r| String::from_utf8_lossy(r.body()).into_owned())
            .collect();
        assert!(
            bodies[0].ends_with("WebIdentityToken=canary-web-token-1"),
            "{bodies:?}"
        );
        assert!(
            bodies[1].ends_with("WebIdentityToken=canary-web-token-2"),
            "{bodies:?}"
        );
        assert!(bodies[0].contains("RoleSessionName=nightly"), "{bodies:?}");
        assert!(io.requests[0].headers().get("authorization").is_none());
    }

    #[test]
    fn a_missing_or_empty_token_file_or_role_is_named() {
        let endpoints = source();
        let lookup = Lookup::new(&endpoints, false);
        let mut io = irsa();
        let e = chain(&mut io, &lookup).unwrap_err();
        assert!(
            e.message
                .contains("cannot read the web identity token file \"/var/run/token\""),
            "{e}"
        );
        io.files.insert("/var/run/token".into(), " \n".into());
        let e = chain(&mut io, &lookup).unwrap_err();
        assert!(e.message.contains("is empty"), "{e}");
        let mut io = FakeIo::new();
        io.set_env("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/token");
        let e = chain(&mut io, &lookup).unwrap_err();
        assert!(e.message.contains("AWS_ROLE_ARN is not"), "{e}");
        assert!(io.sent.is_empty());
    }
}
