//! Google STS token exchange (RFC 8693): the AWS subject token for a federated access token.
//! Google's answers to a misconfigured partner setup are turned into a diagnosis and a fix.

use serde::Deserialize;

use crate::error::{Error, Step, excerpt};
use crate::io::{Request, Response};
use crate::secret::Secret;

pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const REQUESTED_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// The federated token STS issues.
#[derive(Clone, Debug)]
pub struct FederatedToken {
    pub access_token: Secret,
    pub expires_in: u64,
}

#[derive(Deserialize)]
struct Success {
    access_token: Secret,
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct OAuthError {
    error: String,
    error_description: Option<String>,
}

pub fn request(token_url: &str, audience: &str, subject_token: &Secret) -> Request {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", GRANT_TYPE)
        .append_pair("audience", audience)
        .append_pair("scope", CLOUD_PLATFORM_SCOPE)
        .append_pair("requested_token_type", REQUESTED_TOKEN_TYPE)
        .append_pair("subject_token", subject_token.expose())
        .append_pair("subject_token_type", crate::config::SUBJECT_TOKEN_TYPE_AWS)
        .finish();
    http::Request::post(token_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.into_bytes())
        .expect("the token URL was validated with the configuration")
}

pub fn parse(response: &Response) -> Result<FederatedToken, Error> {
    let status = response.status().as_u16();
    if status == 200 {
        let ok: Success = serde_json::from_slice(response.body()).map_err(|e| {
            Error::new(
                Step::StsExchange,
                format!("Google STS answered 200 with an unexpected body ({e})"),
            )
        })?;
        if !ok.access_token.is_header_safe() {
            return Err(Error::new(
                Step::StsExchange,
                "Google STS answered 200 with an access token that is empty or not plain ASCII",
            ));
        }
        return Ok(FederatedToken {
            access_token: ok.access_token,
            // Kept no longer than any token may last, so the expiry time cannot overflow.
            expires_in: ok
                .expires_in
                .unwrap_or(3600)
                .min(crate::config::MAX_LIFETIME_SECONDS.into()),
        });
    }
    let Ok(err) = serde_json::from_slice::<OAuthError>(response.body()) else {
        return Err(Error::answered(
            Step::StsExchange,
            status,
            format!(
                "Google STS answered {status}: {}",
                excerpt(response.body(), 200)
            ),
        ));
    };
    let description = err.error_description.unwrap_or_default();
    let said = format!(
        "Google STS answered {status} {}: {}",
        excerpt(err.error.as_bytes(), 100),
        excerpt(description.as_bytes(), 500)
    );
    let e = Error::answered(Step::StsExchange, status, said);
    if e.transient {
        return Err(e);
    }
    Err(match diagnose(&err.error, &description) {
        Some(fix) => e.with_fix(fix),
        None => e,
    })
}

/// The likely misconfiguration behind an STS error, and its fix.
fn diagnose(error: &str, description: &str) -> Option<&'static str> {
    let has = |s: &str| description.contains(s);
    Some(match error {
        "invalid_target" => {
            "the audience names a workload identity pool or provider that does not exist or is disabled: \
             check project_number (the partner's project *number*), pool_id and provider_id with the partner"
        }
        "unauthorized_client" if has("attribute condition") => {
            "the partner's provider has an attribute condition that does not admit this AWS role: \
             ask the partner to allow it (e.g. assertion.arn.startsWith('arn:aws:sts::ACCOUNT:assumed-role/ROLE/')), \
             or run with the role they expect"
        }
        "invalid_grant" if has("InvalidClientTokenId") => {
            "AWS does not recognise the access key or session token: check AWS_ACCESS_KEY_ID and that \
             AWS_SESSION_TOKEN belongs to it and is current"
        }
        "invalid_grant" if has("ExpiredToken") => {
            "the AWS session token has expired: refresh the AWS credentials"
        }
        "invalid_grant" if has("Signature expired") => {
            "the clock of this machine is off by more than 15 minutes: synchronise it (NTP)"
        }
        "invalid_grant" if has("SignatureDoesNotMatch") => {
            "AWS rejected the signature: check AWS_SECRET_ACCESS_KEY belongs to AWS_ACCESS_KEY_ID"
        }
        "invalid_grant" if has("AWS account") => {
            "the partner's AWS provider trusts another AWS account than this pipeline's: ask the \
             partner to set the provider's account id to it (host-test doctor names it)"
        }
        "invalid_grant" if has("target resource") || has("audience") => {
            "the subject token was signed for another audience: regenerate it for this destination"
        }
        "invalid_request" => {
            "Google STS rejected the request's form: this is a wif-push bug or an incompatible endpoints.sts; \
             check endpoints.sts is https://sts.googleapis.com/v1/token"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::response;

    #[test]
    fn request_is_an_rfc8693_form() {
        let req = request(
            "https://sts.googleapis.com/v1/token",
            "//iam.googleapis.com/x",
            &Secret::new("a b&c"),
        );
        let body = String::from_utf8(req.body().clone()).unwrap();
        let pairs: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        assert!(pairs.contains(&("grant_type".into(), GRANT_TYPE.into())));
        assert!(pairs.contains(&("subject_token".into(), "a b&c".into())));
        assert!(pairs.contains(&(
            "subject_token_type".into(),
            "urn:ietf:params:aws:token-type:aws4_request".into()
        )));
        assert_eq!(
            req.headers()["content-type"],
            "application/x-www-form-urlencoded"
        );
    }

    #[test]
    fn success_gives_the_token() {
        let t = parse(&response(200, r#"{"access_token":"fed","issued_token_type":"x","token_type":"Bearer","expires_in":3599}"#)).unwrap();
        assert_eq!(t.access_token.expose(), "fed");
        assert_eq!(t.expires_in, 3599);
    }

    #[test]
    fn each_google_error_gets_its_fix() {
        let cases = [
            (
                r#"{"error":"invalid_target","error_description":"The target service indicated by the \"audience\" parameters is invalid."}"#,
                "project_number",
            ),
            (
                r#"{"error":"unauthorized_client","error_description":"The given credential is rejected by the attribute condition."}"#,
                "attribute condition",
            ),
            (
                r#"{"error":"invalid_grant","error_description":"Received invalid AWS response of type InvalidClientTokenId with error message: The security token included in the request is invalid."}"#,
                "AWS_ACCESS_KEY_ID",
            ),
            (
                r#"{"error":"invalid_grant","error_description":"Received invalid AWS response of type SignatureDoesNotMatch with error message: Signature expired: 20260101T000000Z is now earlier than 20260101T001500Z"}"#,
                "clock",
            ),
            (
                r#"{"error":"invalid_grant","error_description":"Received invalid AWS response of type SignatureDoesNotMatch with error message: The request signature we calculated does not match"}"#,
                "AWS_SECRET_ACCESS_KEY",
            ),
        ];
        for (body, fix) in cases {
            let err = parse(&response(400, body)).unwrap_err();
            assert!(!err.transient);
            assert!(
                err.fix.as_deref().unwrap_or("").contains(fix),
                "{body}: {err}"
            );
            assert!(err.to_string().contains("Google STS answered 400"), "{err}");
        }
    }

    #[test]
    fn server_trouble_is_transient() {
        assert!(
            parse(&response(503, "Service Unavailable"))
                .unwrap_err()
                .transient
        );
        assert!(
            parse(&response(429, r#"{"error":"rate_limited"}"#))
                .unwrap_err()
                .transient
        );
        assert!(!parse(&response(400, "<html>")).unwrap_err().transient);
    }

    /// Google's words are quoted on one line, whatever line breaks they hold.
    #[test]
    fn a_refusal_is_quoted_on_one_line() {
        let e = parse(&response(
            400,
            r#"{"error":"invalid_target","error_description":"The target service\nis invalid."}"#,
        ))
        .unwrap_err();
        assert!(
            e.message
                .ends_with("invalid_target: The target service is invalid."),
            "{e}"
        );
        assert!(e.fix.is_some(), "{e}");
    }

    /// However long STS says the token lasts, it is kept no longer than the longest lifetime
    /// a token may have: a huge `expires_in` overflowed the expiry time.
    #[test]
    fn expires_in_is_capped() {
        let token = parse(&response(
            200,
            r#"{"access_token":"ya29.x","expires_in":18446744073709551615}"#,
        ))
        .unwrap();
        assert_eq!(
            token.expires_in,
            u64::from(crate::config::MAX_LIFETIME_SECONDS)
        );
    }
}
