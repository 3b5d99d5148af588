//! IAM Credentials: `POST /v1/projects/-/serviceAccounts/EMAIL:generateAccessToken`, which
//! trades a federated token for a short-lived access token of the service account.

use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, StatusCode};
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value, json};
use time::Duration;
use time::format_description::well_known::Rfc3339;

use crate::Misconfig;
use crate::reply::Reply;
use crate::state::{AccessToken, State, lock, new_token};

const DEFAULT_LIFETIME_SECONDS: u64 = 3600;
/// A federated token may call IAM Credentials only if it carries one of these scopes.
const IAM_SCOPES: &[&str] = &[
    "https://www.googleapis.com/auth/cloud-platform",
    "https://www.googleapis.com/auth/iam",
];
const METHOD: &str = "google.iam.credentials.v1.IAMCredentials.GenerateAccessToken";

/// The service account email in `/v1/projects/PROJECT/serviceAccounts/EMAIL:generateAccessToken`.
pub(crate) fn parse_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/v1/projects/")?;
    let (project, rest) = rest.split_once("/serviceAccounts/")?;
    let email = rest.strip_suffix(":generateAccessToken")?;
    if project.is_empty() || project.contains('/') || email.is_empty() || email.contains('/') {
        return None;
    }
    Some(percent_decode_str(email).decode_utf8_lossy().into_owned())
}

pub(crate) fn generate_access_token(
    state: &State,
    email: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Reply {
    match try_generate(state, email, headers, body) {
        Ok(reply) | Err(reply) => reply,
    }
}

fn try_generate(
    state: &State,
    email: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Reply, Reply> {
    let now = state.now();
    authenticate(state, headers, now)?;
    let request = AccessTokenRequest::parse(body)?;

    let config = &state.config;
    if email != config.service_account || config.has(Misconfig::ServiceAccountMissing) {
        return Err(Reply::google_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("Not found; Gaia id not found for email {email}"),
        ));
    }
    if config.has(Misconfig::MissingWorkloadIdentityUser) {
        return Err(Reply::google_error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).",
        )
        .with_details(json!([{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "IAM_PERMISSION_DENIED",
            "domain": "iam.googleapis.com",
            "metadata": {"permission": "iam.serviceAccounts.getAccessToken"},
        }])));
    }
    if config.has(Misconfig::ServiceAccountDisabled) {
        return Err(Reply::google_error(
            StatusCode::BAD_REQUEST,
            "FAILED_PRECONDITION",
            format!("Service account {email} is disabled."),
        ));
    }
    if request.scope.is_empty() {
        return Err(invalid_argument("Scope required."));
    }
    let lifetime = request.lifetime_seconds()?;
    let max = u64::from(config.max_lifetime_seconds);
    if lifetime > max {
        return Err(invalid_argument(format!(
            "The lifetime {lifetime}s exceeds the maximum allowed lifetime of {max}s. Set the \
             organization policy constraints/iam.allowServiceAccountCredentialLifetimeExtension \
             to extend it."
        )));
    }

    // Google reports whole seconds in UTC ("2025-06-01T13:00:00Z").
    let expires = (now + Duration::seconds(lifetime as i64))
        .replace_nanosecond(0)
        .unwrap_or(now);
    let expire_time = expires
        .format(&Rfc3339)
        .map_err(|_| invalid_argument("The lifetime is out of range."))?;
    let token = new_token("ya29.c.sa-");
    lock(&state.access_tokens).insert(
        token.clone(),
        AccessToken {
            expires,
            scopes: request.scope.clone(),
        },
    );
    Ok(Reply::ok(
        json!({"accessToken": token, "expireTime": expire_time}),
        format!("access token issued for {email}, lifetime {lifetime}s"),
    ))
}

/// Only a live federated token from this emulator's STS, with a scope that reaches IAM, passes.
fn authenticate(
    state: &State,
    headers: &HeaderMap,
    now: time::OffsetDateTime,
) -> Result<(), Reply> {
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Bearer"))
        .map(|(_, token)| token.trim());
    let Some(token) = bearer else {
        return Err(unauthenticated(
            "Request is missing required authentication credential.",
            "CREDENTIALS_MISSING",
        ));
    };
    let tokens = lock(&state.federated_tokens);
    let federated = match tokens.get(token) {
        None => {
            return Err(unauthenticated(
                "Request had invalid authentication credentials.",
                "ACCESS_TOKEN_TYPE_UNSUPPORTED",
            ));
        }
        Some(f) if f.expires <= now => {
            return Err(unauthenticated(
                "Request had invalid authentication credentials.",
                "ACCESS_TOKEN_EXPIRED",
            ));
        }
        Some(f) => f,
    };
    if !federated
        .scopes
        .iter()
        .any(|s| IAM_SCOPES.contains(&s.as_str()))
    {
        return Err(Reply::google_error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "Request had insufficient authentication scopes.",
        )
        .with_details(error_info("ACCESS_TOKEN_SCOPE_INSUFFICIENT")));
    }
    Ok(())
}

fn unauthenticated(first_sentence: &str, reason: &str) -> Reply {
    Reply::google_error(
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
        format!(
            "{first_sentence} Expected OAuth 2 access token, login cookie or other valid \
             authentication credential. See \
             https://developers.google.com/identity/sign-in/web/devconsole-project."
        ),
    )
    .with_details(error_info(reason))
    .with_header(
        WWW_AUTHENTICATE,
        "Bearer realm=\"https://accounts.google.com/\"",
    )
}

fn error_info(reason: &str) -> Value {
    json!([{
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": {"service": "iamcredentials.googleapis.com", "method": METHOD},
    }])
}

fn invalid_argument(message: impl Into<String>) -> Reply {
    Reply::google_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message)
}

/// `{"scope": [...], "lifetime": "3600s", "delegates": [...]}`, checked the way Google's JSON
/// transcoding checks it.
struct AccessTokenRequest {
    scope: Vec<String>,
    lifetime: Option<String>,
}

impl AccessTokenRequest {
    fn parse(body: &[u8]) -> Result<Self, Reply> {
        let invalid_json =
            |why: String| invalid_argument(format!("Invalid JSON payload received. {why}"));
        let object = if body.iter().all(u8::is_ascii_whitespace) {
            Map::new()
        } else {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(object)) => object,
                Ok(_) => return Err(invalid_json("Expected an object.".into())),
                Err(e) => return Err(invalid_json(e.to_string())),
            }
        };
        let mut request = AccessTokenRequest {
            scope: Vec::new(),
            lifetime: None,
        };
        for (name, value) in object {
            let strings = |value: Value| match value {
                Value::Array(items) => items
                    .into_iter()
                    .map(|item| match item {
                        Value::String(s) => Ok(s),
                        other => Err(invalid_value(&name, &other)),
                    })
                    .collect::<Result<Vec<_>, _>>(),
                other => Err(invalid_value(&name, &other)),
            };
            match name.as_str() {
                "scope" => request.scope = strings(value)?,
                "delegates" => {
                    strings(value)?;
                }
                "lifetime" => match value {
                    Value::String(s) => request.lifetime = Some(s),
                    other => return Err(invalid_value(&name, &other)),
                },
                _ => {
                    return Err(invalid_json(format!(
                        "Unknown name \"{name}\": Cannot find field."
                    )));
                }
            }
        }
        Ok(request)
    }

    /// A protobuf `Duration` in JSON: seconds with an `s` suffix and up to nine decimals.
    fn lifetime_seconds(&self) -> Result<u64, Reply> {
        let Some(text) = &self.lifetime else {
            return Ok(DEFAULT_LIFETIME_SECONDS);
        };
        let invalid = || {
            invalid_argument(format!(
                "Invalid value at 'lifetime' (type.googleapis.com/google.protobuf.Duration), \
                 \"{text}\": expected seconds with an \"s\" suffix, e.g. \"3600s\"."
            ))
        };
        let number = text.strip_suffix('s').ok_or_else(invalid)?;
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > 9 {
            return Err(invalid());
        }
        let seconds: u64 = whole.parse().map_err(|_| invalid())?;
        // A fraction of a second past the maximum is still past it.
        let seconds = if fraction.bytes().any(|b| b != b'0') {
            seconds.saturating_add(1)
        } else {
            seconds
        };
        if seconds == 0 {
            return Err(invalid());
        }
        Ok(seconds)
    }
}

fn invalid_value(field: &str, value: &Value) -> Reply {
    invalid_argument(format!("Invalid value at '{field}' (TYPE_STRING), {value}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            parse_path(
                "/v1/projects/-/serviceAccounts/a%40b.iam.gserviceaccount.com:generateAccessToken"
            )
            .as_deref(),
            Some("a@b.iam.gserviceaccount.com")
        );
        for bad in [
            "/v1/projects/-/serviceAccounts/a@b:generateIdToken",
            "/v1/projects/-/serviceAccounts/:generateAccessToken",
            "/v1/projects//serviceAccounts/a@b:generateAccessToken",
            "/v1/projects/-/x/serviceAccounts/a@b:generateAccessToken",
            "/v1/projects/-/serviceAccounts/a/b:generateAccessToken",
            "/v2/projects/-/serviceAccounts/a@b:generateAccessToken",
        ] {
            assert_eq!(parse_path(bad), None, "{bad:?}");
        }
    }

    fn lifetime(json: &str) -> Result<u64, String> {
        AccessTokenRequest::parse(json.as_bytes())
            .and_then(|r| r.lifetime_seconds())
            .map_err(|reply| reply.outcome)
    }

    #[test]
    fn lifetimes() {
        assert_eq!(lifetime(r#"{"scope": ["s"]}"#), Ok(3600));
        assert_eq!(lifetime(""), Ok(3600));
        assert_eq!(lifetime(r#"{"lifetime": "600s"}"#), Ok(600));
        assert_eq!(lifetime(r#"{"lifetime": "3600.000s"}"#), Ok(3600));
        assert_eq!(lifetime(r#"{"lifetime": "3600.5s"}"#), Ok(3601));
        for bad in [
            "0s",
            "600",
            "-1s",
            "1e3s",
            "s",
            ".5s",
            "1.0000000001s",
            "99999999999999999999s",
        ] {
            let err = lifetime(&format!(r#"{{"lifetime": "{bad}"}}"#)).unwrap_err();
            assert!(
                err.starts_with("INVALID_ARGUMENT: Invalid value at 'lifetime'"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn bodies() {
        for (body, words) in [
            ("[]", "Expected an object."),
            ("{", "Invalid JSON payload received."),
            (
                r#"{"scopes": []}"#,
                "Unknown name \"scopes\": Cannot find field.",
            ),
            (r#"{"scope": "x"}"#, "Invalid value at 'scope'"),
            (r#"{"scope": [1]}"#, "Invalid value at 'scope'"),
            (r#"{"lifetime": 3600}"#, "Invalid value at 'lifetime'"),
            (r#"{"delegates": {}}"#, "Invalid value at 'delegates'"),
        ] {
            let err = AccessTokenRequest::parse(body.as_bytes())
                .err()
                .unwrap()
                .outcome;
            assert!(err.contains(words), "{body}: {err}");
        }
        let not_utf8 = AccessTokenRequest::parse(b"{\"scope\": [\"\xff\"]}").err();
        assert!(
            not_utf8
                .unwrap()
                .outcome
                .contains("Invalid JSON payload received.")
        );
    }
}
