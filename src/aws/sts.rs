//! AWS STS: `AssumeRole` (signed with the credentials at hand) and `AssumeRoleWithWebIdentity`
//! (authenticated by the web identity token alone), the two ways a workload becomes the role a
//! partner trusts. Requests are built and answers parsed here, sans IO; the XML answers and
//! errors are read with `roxmltree`, and AWS's error codes become diagnoses with fixes.

use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{AwsCredentials, Provider, env};
use crate::config::validate::is_loopback;
use crate::error::{Error, Step, excerpt, quote};
use crate::io::{Io, Request, Response, head_of};
use crate::retry::{Backoff, retry};
use crate::secret::Secret;
use crate::sigv4::{self, Credentials, SignableBody, SignableRequest, SigningParams};

const VERSION: &str = "2011-06-15";
const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// The region the global endpoint signs for.
pub const GLOBAL_REGION: &str = "us-east-1";
const STS_TIMEOUT: Duration = Duration::from_secs(30);

/// The STS endpoint, as the AWS SDKs find it: `AWS_ENDPOINT_URL_STS`, then `AWS_ENDPOINT_URL`,
/// then the regional endpoint `https://sts.REGION.amazonaws.com` (the global one when no
/// region is known).
pub fn endpoint(io: &dyn Io, region: Option<&str>) -> Result<String, Error> {
    for name in ["AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"] {
        if let Some(url) = env(io, name) {
            return endpoint_override(name, url.trim());
        }
    }
    Ok(match region {
        Some(region) => format!("https://sts.{region}.{}", super::dns_suffix(region)),
        None => "https://sts.amazonaws.com".to_owned(),
    })
}

/// Sends an STS request, retrying what is worth retrying, and reads its answer.
pub fn send(
    io: &mut dyn Io,
    request: Request,
    call: Call,
    role: &RoleRequest,
    backoff: &Backoff,
) -> Result<AwsCredentials, Error> {
    let (result, _) = retry(io, backoff, |io| {
        let response = io
            .send_borrowed(&head_of(&request), request.body(), STS_TIMEOUT)
            .map_err(|e| {
                Error::no_answer(
                    Step::AwsCredentials,
                    format!("AWS STS ({}) could not be reached: {e}", request.uri()),
                    &e,
                )
            })?;
        parse(&response, call, role)
    });
    result
}

/// An endpoint override: https, or plain http to a loopback emulator only (as the Google
/// endpoint overrides).
pub(crate) fn endpoint_override(name: &str, url: &str) -> Result<String, Error> {
    let uri = url.parse::<http::Uri>().ok();
    let ok = uri.as_ref().is_some_and(|u| {
        let host = u.host().unwrap_or("");
        let path_ok = matches!(u.path(), "" | "/") && u.query().is_none();
        path_ok
            && match u.scheme_str() {
                Some("https") => !host.is_empty(),
                Some("http") => is_loopback(host),
                _ => false,
            }
    });
    if !ok {
        return Err(Error::new(
            Step::AwsCredentials,
            format!("{name} is {}", quote(url, 100)),
        )
        .with_fix(
            "set it to an https:// URL with no path (http:// only to a loopback emulator, e.g. \
             http://127.0.0.1:5000)",
        ));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// What to ask of a role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleRequest {
    pub role_arn: String,
    /// Names the session in the role's CloudTrail entries and in its assumed-role ARN.
    pub session_name: String,
    pub external_id: Option<String>,
    pub duration_seconds: Option<u32>,
}

impl RoleRequest {
    /// A request for `role_arn` with the SDKs' kind of default session name when none is given.
    pub fn new(role_arn: &str, session_name: Option<&str>, now: OffsetDateTime) -> Self {
        RoleRequest {
            role_arn: role_arn.to_owned(),
            session_name: session_name
                .map(str::to_owned)
                .unwrap_or_else(|| format!("wif-push-{}", now.unix_timestamp())),
            external_id: None,
            duration_seconds: None,
        }
    }
}

/// The signed `AssumeRole` request.
pub fn assume_role_request(
    endpoint: &str,
    region: &str,
    credentials: &Credentials,
    role: &RoleRequest,
    now: OffsetDateTime,
) -> Result<Request, Error> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("Action", "AssumeRole")
        .append_pair("Version", VERSION)
        .append_pair("RoleArn", &role.role_arn)
        .append_pair("RoleSessionName", &role.session_name);
    if let Some(id) = &role.external_id {
        form.append_pair("ExternalId", id);
    }
    if let Some(seconds) = role.duration_seconds {
        form.append_pair("DurationSeconds", &seconds.to_string());
    }
    signed_form(endpoint, region, credentials, form.finish(), now)
        .map_err(|e| Error::new(Step::AwsCredentials, format!("AssumeRole: {e}")))
}

/// The signed `GetCallerIdentity` request, as the AWS CLI sends it (a form body).
pub fn caller_identity_request(
    endpoint: &str,
    region: &str,
    credentials: &Credentials,
    now: OffsetDateTime,
) -> Result<Request, Error> {
    let form = format!("Action=GetCallerIdentity&Version={VERSION}");
    signed_form(endpoint, region, credentials, form, now)
        .map_err(|e| Error::new(Step::AwsIdentity, format!("GetCallerIdentity: {e}")))
}

/// A POST of `form` to the STS endpoint, signed with `credentials`.
fn signed_form(
    endpoint: &str,
    region: &str,
    credentials: &Credentials,
    form: String,
    now: OffsetDateTime,
) -> Result<Request, String> {
    let body = form.into_bytes();
    let uri = format!("{endpoint}/")
        .parse::<http::Uri>()
        .map_err(|_| format!("the STS endpoint {} is not a URL", quote(endpoint, 100)))?;
    let host = uri.authority().map(|a| a.as_str()).unwrap_or_default();
    let headers = vec![("host", host), ("content-type", FORM)];
    let signed = sigv4::sign(
        &SignableRequest {
            method: "POST",
            path_and_query: "/",
            headers: headers.clone(),
            body: SignableBody::Bytes(&body),
        },
        &SigningParams {
            credentials,
            region,
            service: "sts",
            time: now,
            settings: Default::default(),
        },
    )
    .map_err(|e| format!("signing: {e}"))?;
    let mut request = http::Request::post(uri.clone()).header("content-type", FORM);
    for (name, value) in &signed.headers {
        request = request.header(name, value);
    }
    let mut request = request
        .body(body)
        .map_err(|_| "the signed request is invalid".to_owned())?;
    crate::secret::hide_session_token(request.headers_mut());
    Ok(request)
}

/// The `AssumeRoleWithWebIdentity` request: the token is its only credential.
pub fn web_identity_request(
    endpoint: &str,
    role: &RoleRequest,
    token: &Secret,
) -> Result<Request, Error> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("Action", "AssumeRoleWithWebIdentity")
        .append_pair("Version", VERSION)
        .append_pair("RoleArn", &role.role_arn)
        .append_pair("RoleSessionName", &role.session_name)
        .append_pair("WebIdentityToken", token.expose());
    if let Some(seconds) = role.duration_seconds {
        form.append_pair("DurationSeconds", &seconds.to_string());
    }
    http::Request::post(format!("{endpoint}/"))
        .header("content-type", FORM)
        .body(form.finish().into_bytes())
        .map_err(|_| {
            Error::new(
                Step::AwsCredentials,
                format!("the STS endpoint {} is not a URL", quote(endpoint, 100)),
            )
        })
}

/// Which call an answer is to: the diagnosis depends on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    AssumeRole,
    WebIdentity,
}

impl Call {
    fn name(self) -> &'static str {
        match self {
            Call::AssumeRole => "AssumeRole",
            Call::WebIdentity => "AssumeRoleWithWebIdentity",
        }
    }
}

/// Temporary credentials for the role, or the diagnosis of AWS's refusal.
pub fn parse(response: &Response, call: Call, role: &RoleRequest) -> Result<AwsCredentials, Error> {
    let status = response.status().as_u16();
    let text = std::str::from_utf8(response.body()).unwrap_or("");
    let doc = roxmltree::Document::parse(text).ok();
    let field = |name: &str| doc.as_ref().and_then(|d| element_text(d, name));
    if status != 200 {
        let (code, _, said) = refusal(response, &field);
        let error = Error::answered(
            Step::AwsCredentials,
            status,
            format!(
                "AWS STS {} for {} answered {status}: {said}",
                call.name(),
                quote(&role.role_arn, 200)
            ),
        );
        return Err(diagnose(error, call, code, role));
    }
    let (Some(key), Some(secret), Some(token)) = (
        field("AccessKeyId"),
        field("SecretAccessKey"),
        field("SessionToken"),
    ) else {
        // A 200 answer may hold keys even when it is malformed: it is never quoted.
        return Err(Error::new(
            Step::AwsCredentials,
            format!(
                "AWS STS {} answered 200 without AccessKeyId, SecretAccessKey and SessionToken",
                call.name()
            ),
        ));
    };
    let expires_at = match field("Expiration") {
        Some(text) => Some(OffsetDateTime::parse(text.trim(), &Rfc3339).map_err(|_| {
            Error::new(
                Step::AwsCredentials,
                format!(
                    "AWS STS {} answered an Expiration that is not a time: {}",
                    call.name(),
                    quote(text, 60)
                ),
            )
        })?),
        None => None,
    };
    let secret = Secret::new(secret.trim());
    let token = Secret::new(token.trim());
    if !secret.is_header_safe() || !token.is_header_safe() || key.trim().is_empty() {
        return Err(Error::new(
            Step::AwsCredentials,
            format!(
                "AWS STS {} answered credentials that are empty or not plain ASCII",
                call.name()
            ),
        ));
    }
    Ok(AwsCredentials {
        credentials: Credentials {
            access_key_id: key.trim().to_owned(),
            secret_access_key: secret,
            session_token: Some(token),
        },
        expires_at,
        source: match call {
            Call::AssumeRole => Provider::AssumedRole,
            Call::WebIdentity => Provider::WebIdentity,
        },
    })
}

/// Who AWS says signed a request: `GetCallerIdentity`'s answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerIdentity {
    pub account: String,
    pub arn: String,
}

/// `GetCallerIdentity`'s answer, or the diagnosis of AWS's refusal of the signature.
pub fn parse_caller_identity(response: &Response) -> Result<CallerIdentity, Error> {
    let status = response.status().as_u16();
    let text = std::str::from_utf8(response.body()).unwrap_or("");
    let doc = roxmltree::Document::parse(text).ok();
    let field = |name: &str| {
        doc.as_ref()
            .and_then(|d| element_text(d, name))
            .map(str::trim)
    };
    if status == 200 {
        let (Some(account), Some(arn)) = (field("Account"), field("Arn")) else {
            return Err(Error::new(
                Step::AwsIdentity,
                format!(
                    "AWS STS GetCallerIdentity answered 200 without Account and Arn: {}",
                    excerpt(response.body(), 200)
                ),
            ));
        };
        return Ok(CallerIdentity {
            account: excerpt(account.as_bytes(), 20),
            arn: excerpt(arn.as_bytes(), 2048),
        });
    }
    let (code, message, said) = refusal(response, &field);
    let error = Error::answered(
        Step::AwsIdentity,
        status,
        format!("AWS STS GetCallerIdentity answered {status}: {said}"),
    );
    let fix = match code {
        "InvalidClientTokenId" | "UnrecognizedClientException" => {
            "AWS does not know this access key (or its session token): the keys are wrong, \
             deleted or deactivated, or AWS_SESSION_TOKEN belongs to other keys; get current \
             credentials"
        }
        "ExpiredToken" | "ExpiredTokenException" => {
            "the AWS session token has expired: refresh the credentials (e.g. aws sso login, or \
             a new AWS_SESSION_TOKEN)"
        }
        "SignatureDoesNotMatch" if message.contains("expired") => {
            "this machine's clock is off by more than AWS's 15 minutes: synchronise it (NTP)"
        }
        "SignatureDoesNotMatch" => {
            "AWS computed another signature: the secret access key does not belong to the \
             access key id"
        }
        _ => return Err(error),
    };
    Err(error.with_fix(fix))
}

/// An STS refusal's error code and message, and what AWS said, quoted on one line.
fn refusal<'a>(
    response: &Response,
    field: &impl Fn(&str) -> Option<&'a str>,
) -> (&'a str, &'a str, String) {
    let code = field("Code").unwrap_or_default();
    let message = field("Message").unwrap_or_default();
    let said = if code.is_empty() {
        excerpt(response.body(), 200)
    } else {
        format!(
            "{}: {}",
            excerpt(code.as_bytes(), 80),
            excerpt(message.as_bytes(), 300)
        )
    };
    (code, message, said)
}

/// The text of the first element named `name`, wherever it is (STS wraps its answers in a
/// namespaced `...Response`/`...Result` pair).
fn element_text<'a>(doc: &'a roxmltree::Document, name: &str) -> Option<&'a str> {
    doc.descendants()
        .find(|n| n.is_element() && n.tag_name().name() == name)
        .and_then(|n| n.text())
}

/// AWS's error code, turned into what to change.
fn diagnose(error: Error, call: Call, code: &str, role: &RoleRequest) -> Error {
    let arn = &role.role_arn;
    let fix = match (call, code) {
        (Call::AssumeRole, "AccessDenied") => format!(
            "the trust policy of {arn} must allow sts:AssumeRole for the pipeline's identity \
             (the credentials this process runs with){}; and that identity needs an IAM policy \
             allowing sts:AssumeRole on {arn}",
            if role.external_id.is_some() {
                ", with an sts:ExternalId condition equal to aws_external_id"
            } else {
                "; if the trust policy requires an external id, set aws_external_id"
            }
        ),
        (Call::WebIdentity, "AccessDenied") => format!(
            "the trust policy of {arn} must allow sts:AssumeRoleWithWebIdentity for this \
             token's OIDC provider and subject (the Kubernetes service account)"
        ),
        (_, "InvalidIdentityToken") => "the web identity token was refused: check that \
            AWS_WEB_IDENTITY_TOKEN_FILE is the projected service-account token and that the \
            role trusts the cluster's OIDC provider (its audience sts.amazonaws.com)"
            .to_owned(),
        (_, "ExpiredTokenException") if call == Call::WebIdentity => {
            "the web identity token expired: the kubelet rotates the projected token file; \
             check that it is mounted and being refreshed"
                .to_owned()
        }
        (_, "ExpiredToken" | "ExpiredTokenException") => {
            "the credentials used to assume the role have expired: refresh them".to_owned()
        }
        (_, "InvalidClientTokenId") => "AWS does not know the access key or session token \
            that signed AssumeRole: check the source credentials (AWS_ACCESS_KEY_ID, the \
            profile's keys, or AWS_SESSION_TOKEN)"
            .to_owned(),
        (_, "SignatureDoesNotMatch") => {
            "wrong secret access key for the key id that signed AssumeRole".to_owned()
        }
        (_, "RegionDisabledException") => {
            "STS is not activated in this region: activate it in IAM, or set aws_region to \
             another region"
                .to_owned()
        }
        (_, "ValidationError") => "AWS refused a parameter: check the role ARN \
            (arn:aws:iam::ACCOUNT:role/NAME), the session name (2-64 of letters, digits and \
            +=,.@-) and the duration (900 to the role's maximum)"
            .to_owned(),
        (_, "Throttling" | "ThrottlingException" | "RequestLimitExceeded") => {
            return Error {
                transient: true,
                ..error
            };
        }
        _ => return error,
    };
    error.with_fix(fix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeIo;

    const OK: &str = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <AssumedRoleUser><Arn>arn:aws:sts::111122223333:assumed-role/Partner/s</Arn></AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIAEXAMPLE</AccessKeyId>
      <SecretAccessKey>canary-assumed-secret</SecretAccessKey>
      <SessionToken>canary-assumed-token</SessionToken>
      <Expiration>2026-12-07T12:00:00Z</Expiration>
    </Credentials>
  </AssumeRoleResult>
</AssumeRoleResponse>"#;

    fn role() -> RoleRequest {
        RoleRequest {
            external_id: Some("partner-a".into()),
            ..RoleRequest::new(
                "arn:aws:iam::111122223333:role/Partner",
                Some("s"),
                OffsetDateTime::UNIX_EPOCH,
            )
        }
    }

    fn answer(status: u16, body: &str) -> Response {
        http::Response::builder()
            .status(status)
            .body(body.as_bytes().to_vec())
            .unwrap()
    }

    #[test]
    fn credentials_are_read_from_the_namespaced_answer() {
        let creds = parse(&answer(200, OK), Call::AssumeRole, &role()).unwrap();
        assert_eq!(creds.credentials.access_key_id, "ASIAEXAMPLE");
        assert_eq!(creds.source, Provider::AssumedRole);
        assert_eq!(
            creds.expires_at.unwrap().unix_timestamp(),
            time::macros::datetime!(2026-12-07 12:00 UTC).unix_timestamp()
        );
        assert!(!format!("{creds:?}").contains("canary"));
    }

    #[test]
    fn refusals_become_diagnoses_that_quote_aws_on_one_line() {
        let denied = r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error><Type>Sender</Type><Code>AccessDenied</Code>
  <Message>User: arn:aws:sts::1:assumed-role/pipeline/x is not authorized
  to perform: sts:AssumeRole</Message></Error><RequestId>r</RequestId></ErrorResponse>"#;
        let e = parse(&answer(403, denied), Call::AssumeRole, &role()).unwrap_err();
        assert!(!e.transient);
        assert!(e.message.contains("AccessDenied: User:"), "{e}");
        assert!(!e.message.contains('\n'), "{e}");
        assert!(e.fix.as_deref().unwrap().contains("sts:ExternalId"), "{e}");

        let expired = "<ErrorResponse><Error><Code>ExpiredTokenException</Code>\
            <Message>Token expired</Message></Error></ErrorResponse>";
        let e = parse(&answer(400, expired), Call::WebIdentity, &role()).unwrap_err();
        assert!(e.fix.as_deref().unwrap().contains("kubelet"), "{e}");

        let throttled = "<ErrorResponse><Error><Code>Throttling</Code></Error></ErrorResponse>";
        let e = parse(&answer(400, throttled), Call::AssumeRole, &role()).unwrap_err();
        assert!(e.transient);
        assert!(
            parse(&answer(503, "busy"), Call::AssumeRole, &role())
                .unwrap_err()
                .transient
        );
    }

    #[test]
    fn answers_that_are_not_credentials_are_refused() {
        for body in [
            "",
            "<a>",
            "<X><AccessKeyId>A</AccessKeyId></X>",
            "\u{0}",
            "<X><SecretAccessKey>canary-half</SecretAccessKey>",
        ] {
            let e = parse(&answer(200, body), Call::AssumeRole, &role()).unwrap_err();
            assert!(
                e.message.contains("answered 200 without AccessKeyId"),
                "{e}"
            );
            assert!(!e.message.contains("canary"), "{e}");
        }
    }

    #[test]
    fn assume_role_is_signed_and_carries_the_external_id() {
        let creds = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("canary-secret"),
            session_token: Some(Secret::new("canary-session")),
        };
        let request = assume_role_request(
            "https://sts.eu-west-1.amazonaws.com",
            "eu-west-1",
            &creds,
            &role(),
            OffsetDateTime::UNIX_EPOCH,
        )
        .unwrap();
        let body = String::from_utf8(request.body().clone()).unwrap();
        assert!(body.contains("Action=AssumeRole&"), "{body}");
        assert!(body.contains("ExternalId=partner-a"), "{body}");
        let auth = request.headers()["authorization"].to_str().unwrap();
        assert!(
            auth.contains("Credential=AKIDEXAMPLE/19700101/eu-west-1/sts/aws4_request"),
            "{auth}"
        );
        assert!(!format!("{request:?}").contains("canary"));
    }

    #[test]
    fn the_endpoint_is_regional_unless_overridden_and_overrides_are_checked() {
        let mut io = FakeIo::new();
        assert_eq!(
            endpoint(&io, Some("eu-west-1")).unwrap(),
            "https://sts.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            endpoint(&io, Some("cn-north-1")).unwrap(),
            "https://sts.cn-north-1.amazonaws.com.cn"
        );
        io.set_env("AWS_ENDPOINT_URL", "http://127.0.0.1:5000/");
        assert_eq!(endpoint(&io, None).unwrap(), "http://127.0.0.1:5000");
        io.set_env("AWS_ENDPOINT_URL_STS", "http://sts.example.com");
        let e = endpoint(&io, None).unwrap_err();
        assert!(e.message.starts_with("AWS_ENDPOINT_URL_STS is"), "{e}");
    }
}
