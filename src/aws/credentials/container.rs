//! ECS/EKS container credentials: `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (on the ECS
//! link-local host) or `AWS_CONTAINER_CREDENTIALS_FULL_URI`, with the authorization token from
//! `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (EKS Pod Identity) or
//! `AWS_CONTAINER_AUTHORIZATION_TOKEN`.

use std::net::IpAddr;

use super::{AwsCredentials, Provider, cred_error, parse_credentials};
use crate::aws::{Quote, env, send, status_error};
use crate::error::{Error, Step, quote};
use crate::io::{Io, Request};

const ECS_HOST: &str = "http://169.254.170.2";

/// The ECS/EKS container-credentials request, if the environment asks for one.
pub(super) fn request(io: &dyn Io) -> Result<Option<Request>, Error> {
    let url = if let Some(relative) = env(io, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
        format!("{ECS_HOST}{relative}")
    } else if let Some(full) = env(io, "AWS_CONTAINER_CREDENTIALS_FULL_URI") {
        validate_url(&full)?;
        full
    } else {
        return Ok(None);
    };
    let token = match env(io, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
        Some(path) => Some(io.read_file(&path).map_err(|e| {
            cred_error(format!(
                "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {}: {e}",
                quote(&path, 200)
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
            "the container credentials URL {url_q} is not a valid URL",
            url_q = crate::error::quote(&url, 100)
        ))
        .with_fix("check AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / _FULL_URI")
    })?;
    Ok(Some(request))
}

/// The AWS SDKs' rule: HTTPS anywhere, plain HTTP only to loopback or the ECS/EKS addresses.
fn validate_url(url: &str) -> Result<(), Error> {
    let uri = url
        .parse::<http::Uri>()
        .ok()
        .filter(|uri| uri.scheme().is_some() && uri.host().is_some());
    let Some(uri) = uri else {
        return Err(cred_error(format!(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI {url_q} is not a URL with a scheme and a host",
            url_q = crate::error::quote(url, 100)
        ))
        .with_fix("expected e.g. http://169.254.170.23/v1/credentials"));
    };
    let host = uri
        .host()
        .unwrap_or("")
        .trim_start_matches('[')
        .trim_end_matches(']');
    let plain_ok = host == "localhost"
        || crate::aws::CONTAINER_HOSTS.contains(&host)
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if plain_ok => Ok(()),
        _ => Err(cred_error(format!(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI {url_q} is plain HTTP to a host that is not loopback or an ECS/EKS address"
        , url_q = crate::error::quote(url, 100)))
        .with_fix("use https, or the ECS/EKS link-local endpoint")),
    }
}

/// Sends the request `request` made and reads the credentials it answers with.
pub(super) fn credentials(io: &mut dyn Io, request: Request) -> Result<AwsCredentials, Error> {
    let url = request.uri().to_string();
    let response = send(
        io,
        request,
        Step::AwsCredentials,
        "the container credentials endpoint",
    )?;
    if response.status() != 200 {
        return Err(status_error(Step::AwsCredentials, "the container credentials endpoint", &url, &response, Quote::CodeAndMessage)
            .with_fix("check the task role (ECS) or pod identity association (EKS), and AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]"));
    }
    parse_credentials(response.body(), Provider::Container)
}

#[cfg(test)]
mod tests {
    use super::super::Provider;
    use crate::aws::credentials;
    use crate::aws::fixtures::{CREDS_JSON, error_without_canary, source};
    use crate::error::Error;
    use crate::io::{TransportError, TransportErrorKind};
    use crate::testing::{FakeIo, respond};

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
        assert_eq!(creds.source, Provider::Container);
        assert_eq!(
            creds.credentials.session_token.unwrap().expose(),
            "canary-token"
        );
        assert!(creds.expires_at.is_some());
    }

    /// The error for `AWS_CONTAINER_CREDENTIALS_FULL_URI=url`, refused before anything is sent.
    fn refused_full_uri(url: &str) -> Error {
        let mut io = FakeIo::new();
        io.set_env("AWS_CONTAINER_CREDENTIALS_FULL_URI", url);
        let err = credentials(&mut io, &source(), false).unwrap_err();
        assert!(io.sent.is_empty());
        err
    }

    #[test]
    fn ecs_full_uri_must_be_https_or_local() {
        let err = refused_full_uri("http://evil.example/creds");
        assert!(err.message.contains("plain HTTP"), "{err}");
    }

    /// ecs-tests.json, "invalid full uri": a path alone is not taken for plain HTTP.
    #[test]
    fn ecs_full_uri_without_a_host_says_so() {
        let err = refused_full_uri("/credentials");
        assert!(err.message.contains("with a scheme and a host"), "{err}");
    }

    /// The endpoint's answer may hold keys: a refusal is told by its status and its JSON `code`
    /// and `message`, never quoted.
    #[test]
    fn refusals_are_described_not_quoted() {
        let mut io = FakeIo::new();
        io.set_env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/creds");
        io.on("GET http://169.254.170.2/v2/creds", |_| {
            respond(
                403,
                r#"{"code":"AccessDenied","message":"the task role cannot be assumed","SecretAccessKey":"canary-secret"}"#,
            )
        });
        let err = error_without_canary(&mut io);
        assert!(
            err.message
                .contains("answered 403: AccessDenied: the task role cannot be assumed"),
            "{err}"
        );
        io.on("GET http://169.254.170.2/v2/creds", |_| {
            respond(500, "AccessKeyId=ASIAEXAMPLE SecretAccessKey=canary-secret")
        });
        let err = error_without_canary(&mut io);
        assert!(err.message.contains("answered 500"), "{err}");
        assert_eq!(err.status, Some(500));
    }

    #[test]
    fn transient_from_the_status_or_the_transport() {
        let error_for = |answer: Result<(u16, &'static str), TransportErrorKind>| {
            let mut io = FakeIo::new();
            io.set_env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/creds");
            io.on("GET http://169.254.170.2/v2/creds", move |_| match answer {
                Ok((status, body)) => respond(status, body),
                Err(kind) => Err(TransportError::new(kind, "no answer")),
            });
            credentials(&mut io, &source(), false).unwrap_err()
        };
        let err = error_for(Ok((503, "busy")));
        assert!(err.transient && err.status == Some(503), "{err:?}");
        let err = error_for(Ok((429, "slow down")));
        assert!(err.transient && err.status == Some(429), "{err:?}");
        let err = error_for(Ok((403, "no")));
        assert!(!err.transient && err.status == Some(403), "{err:?}");
        let err = error_for(Err(TransportErrorKind::Timeout));
        assert!(err.transient && err.status.is_none(), "{err:?}");
        let err = error_for(Err(TransportErrorKind::Denied));
        assert!(!err.transient && err.status.is_none(), "{err:?}");
    }
}
