//! IAM Credentials `generateAccessToken`: the federated token buys a short-lived access token
//! for the partner's service account, scoped to Cloud Storage.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::{Error, Step, excerpt};
use crate::io::{Request, Response};
use crate::secret::Secret;

pub const STORAGE_SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_write";

#[derive(Serialize)]
struct Body<'a> {
    scope: [&'a str; 1],
    lifetime: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Success {
    access_token: Secret,
    expire_time: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: GoogleError,
}

#[derive(Deserialize)]
struct GoogleError {
    code: Option<u16>,
    message: Option<String>,
    status: Option<String>,
}

pub fn request(
    impersonation_url: &str,
    federated_token: &Secret,
    lifetime_seconds: u32,
) -> Request {
    let body = serde_json::to_vec(&Body {
        scope: [STORAGE_SCOPE],
        lifetime: format!("{lifetime_seconds}s"),
    })
    .expect("plain structs serialize");
    http::Request::post(impersonation_url)
        .header("authorization", federated_token.bearer())
        .header("content-type", "application/json")
        .body(body)
        .expect("the impersonation URL was validated with the configuration")
}

/// The access token and when it expires.
pub fn parse(
    response: &Response,
    service_account: &str,
) -> Result<(Secret, OffsetDateTime), Error> {
    let status = response.status().as_u16();
    if status == 200 {
        let ok: Success = serde_json::from_slice(response.body()).map_err(|e| {
            Error::new(
                Step::Impersonation,
                format!("IAM Credentials answered 200 with an unexpected body ({e})"),
            )
        })?;
        let expires = OffsetDateTime::parse(&ok.expire_time, &Rfc3339).map_err(|_| {
            Error::new(
                Step::Impersonation,
                format!(
                    "IAM Credentials answered expireTime {}, not an RFC 3339 time",
                    crate::error::quote(&ok.expire_time, 100)
                ),
            )
        })?;
        if !ok.access_token.is_header_safe() {
            return Err(Error::new(
                Step::Impersonation,
                "IAM Credentials answered 200 with an access token that is empty or not plain ASCII",
            ));
        }
        return Ok((ok.access_token, expires));
    }
    let (said, google_status, message) = match serde_json::from_slice::<ErrorBody>(response.body())
    {
        Ok(ErrorBody { error }) => {
            let message = error.message.unwrap_or_default();
            let google_status = error.status.unwrap_or_default();
            let code = error.code.unwrap_or(status);
            (
                format!(
                    "IAM Credentials answered {code} {}: {}",
                    excerpt(google_status.as_bytes(), 100),
                    excerpt(message.as_bytes(), 500)
                ),
                google_status,
                message,
            )
        }
        Err(_) => (
            format!(
                "IAM Credentials answered {status}: {}",
                excerpt(response.body(), 200)
            ),
            String::new(),
            String::new(),
        ),
    };
    let e = Error::answered(Step::Impersonation, status, said);
    if e.transient {
        return Err(e);
    }
    let fix = match (status, google_status.as_str()) {
        (403, _) => Some(format!(
            "the pool's identity may not impersonate {service_account}: ask the partner to grant \
             roles/iam.workloadIdentityUser on it to the pool's principalSet for this AWS role"
        )),
        (404, _) => Some(format!(
            "the service account {service_account} does not exist: check service_account with the partner"
        )),
        (400, "FAILED_PRECONDITION") if message.contains("disabled") => Some(format!(
            "the service account {service_account} is disabled: ask the partner to enable it"
        )),
        (400, _) if message.contains("lifetime") => Some(
            "token_lifetime_seconds is above what the partner's policy allows: lower it to 3600 or less, \
             or ask the partner to set constraints/iam.allowServiceAccountCredentialLifetimeExtension"
                .to_owned(),
        ),
        (401, _) => Some(
            "IAM Credentials did not accept the federated token from Google STS: check endpoints.sts and that \
             the pool's provider issues tokens for this project"
                .to_owned(),
        ),
        _ => None,
    };
    Err(match fix {
        Some(fix) => e.with_fix(fix),
        None => e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::response;

    const SA: &str = "uploader@partner.iam.gserviceaccount.com";

    #[test]
    fn request_asks_for_storage_scope_and_lifetime() {
        let req = request(
            "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/x:generateAccessToken",
            &Secret::new("fed"),
            1800,
        );
        assert_eq!(req.headers()["authorization"], "Bearer fed");
        let body: serde_json::Value = serde_json::from_slice(req.body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"scope": [STORAGE_SCOPE], "lifetime": "1800s"})
        );
    }

    #[test]
    fn success_gives_token_and_expiry() {
        let (token, expires) = parse(
            &response(
                200,
                r#"{"accessToken":"ya29.x","expireTime":"2026-11-26T13:00:00Z"}"#,
            ),
            SA,
        )
        .unwrap();
        assert_eq!(token.expose(), "ya29.x");
        assert_eq!(expires.hour(), 13);
    }

    #[test]
    fn each_google_error_gets_its_fix() {
        let cases = [
            (
                403,
                r#"{"error":{"code":403,"message":"Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).","status":"PERMISSION_DENIED"}}"#,
                "roles/iam.workloadIdentityUser",
            ),
            (
                404,
                r#"{"error":{"code":404,"message":"Not found; Gaia id not found for email x","status":"NOT_FOUND"}}"#,
                "does not exist",
            ),
            (
                400,
                r#"{"error":{"code":400,"message":"Service account x is disabled.","status":"FAILED_PRECONDITION"}}"#,
                "disabled",
            ),
            (
                400,
                r#"{"error":{"code":400,"message":"The lifetime 7200s exceeds the maximum allowed lifetime of 3600s.","status":"INVALID_ARGUMENT"}}"#,
                "token_lifetime_seconds",
            ),
        ];
        for (status, body, fix) in cases {
            let err = parse(&response(status, body), SA).unwrap_err();
            assert!(
                err.fix.as_deref().unwrap_or("").contains(fix),
                "{body}: {err}"
            );
            assert!(err.message.starts_with("IAM Credentials answered"), "{err}");
        }
        assert!(
            parse(&response(503, "unavailable"), SA)
                .unwrap_err()
                .transient
        );
    }

    /// Google's words are quoted on one line, whatever line breaks they hold.
    #[test]
    fn a_refusal_is_quoted_on_one_line() {
        let e = parse(
            &response(
                403,
                r#"{"error":{"code":403,"message":"Permission denied\r\non it.","status":"PERMISSION_DENIED"}}"#,
            ),
            SA,
        )
        .unwrap_err();
        assert!(
            e.message
                .ends_with("PERMISSION_DENIED: Permission denied on it."),
            "{e}"
        );
    }
}
