//! Google STS: `POST /v1/token`, the RFC 8693 token exchange of an AWS subject token for a
//! federated access token.

use std::collections::HashMap;

use http::header::CONTENT_TYPE;
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use time::Duration;

use crate::Misconfig;
use crate::reply::Reply;
use crate::state::{FederatedToken, State, lock, new_token};
use crate::subject_token::{self, Rejection};

const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const AWS_TOKEN_TYPE: &str = "urn:ietf:params:aws:token-type:aws4_request";
/// Federated tokens live an hour; Google reports one second less, as it rounds down.
const FEDERATED_TOKEN_LIFETIME: Duration = Duration::hours(1);

pub(crate) fn exchange(state: &State, headers: &HeaderMap, body: &[u8]) -> Reply {
    match try_exchange(state, headers, body) {
        Ok(reply) | Err(reply) => reply,
    }
}

fn try_exchange(state: &State, headers: &HeaderMap, body: &[u8]) -> Result<Reply, Reply> {
    let params = Params::parse(headers, body)?;
    params.expect("grant_type", GRANT_TYPE)?;
    params.expect("requested_token_type", ACCESS_TOKEN_TYPE)?;
    params.expect("subject_token_type", AWS_TOKEN_TYPE)?;
    let audience = params.required("audience")?;
    if !is_provider_name(audience) {
        return Err(error(
            "invalid_request",
            "Invalid value for \"audience\". This value should be the full resource name of the \
             Identity Provider. See https://cloud.google.com/iam/docs/reference/sts/rest/v1/TopLevel/token \
             for the list of possible formats.",
        ));
    }
    let scopes: Vec<String> = params
        .required("scope")?
        .split_ascii_whitespace()
        .map(str::to_owned)
        .collect();
    let subject_token = params.required("subject_token")?;

    let config = &state.config;
    let expected_audience = config.audience();
    let disabled = config.has(Misconfig::PoolDisabled) || config.has(Misconfig::ProviderDisabled);
    if audience != expected_audience || config.has(Misconfig::UnknownAudience) || disabled {
        return Err(error(
            "invalid_target",
            "The target service indicated by the \"audience\" parameters is invalid. This might \
             either be because the pool or provider is disabled or deleted or because it doesn't exist.",
        ));
    }

    let now = state.now();
    let identities = state.identities();
    let identity = subject_token::verify(
        subject_token,
        &expected_audience,
        &identities,
        now,
        config.clock_skew_tolerance,
    )
    .map_err(rejected)?;
    if config.expired_access_keys.contains(&identity.access_key_id) {
        return Err(rejected(Rejection::Aws {
            code: "ExpiredToken",
            message: "The security token included in the request is expired".into(),
        }));
    }

    // Google does not publish its words for this refusal; these name the mismatch.
    if config.has(Misconfig::ProviderTrustsOtherAccount) {
        let account = identity.role_arn.split(':').nth(4).unwrap_or_default();
        return Err(error(
            "invalid_grant",
            format!(
                "The AWS account {account} of the caller is not the AWS account the identity \
                 provider trusts."
            ),
        ));
    }

    let condition_holds = config
        .allowed_role_arn_prefixes
        .iter()
        .any(|prefix| identity.role_arn.starts_with(prefix.as_str()));
    if !condition_holds || config.has(Misconfig::ConditionRejects) {
        return Err(error(
            "unauthorized_client",
            "The given credential is rejected by the attribute condition.",
        ));
    }

    let token = new_token("ya29.d.fed-");
    lock(&state.federated_tokens).insert(
        token.clone(),
        FederatedToken {
            expires: now + FEDERATED_TOKEN_LIFETIME,
            scopes,
        },
    );
    Ok(Reply::ok(
        json!({
            "access_token": token,
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": "Bearer",
            "expires_in": FEDERATED_TOKEN_LIFETIME.whole_seconds() - 1,
        }),
        format!("federated token issued to {}", identity.role_arn),
    ))
}

/// The OAuth 2.0 error shape STS answers with (not Google's usual `{"error": {...}}`).
fn error(code: &str, description: impl Into<String>) -> Reply {
    let description = description.into();
    Reply::new(
        StatusCode::BAD_REQUEST,
        json!({"error": code, "error_description": description}),
        format!("{code}: {description}"),
    )
}

fn rejected(rejection: Rejection) -> Reply {
    match rejection {
        Rejection::Malformed(why) => error(
            "invalid_grant",
            format!(
                "AWS request has invalid format: the subject token is not a valid serialized AWS \
                 GetCallerIdentity request ({why})."
            ),
        ),
        Rejection::TargetResource(why) => error("invalid_grant", why),
        Rejection::Aws { code, message } => error(
            "invalid_grant",
            format!("Received invalid AWS response of type {code} with error message: {message}"),
        ),
    }
}

/// `//iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/providers/X`, or
/// the workforce-pool form; whether it names an existing provider is checked separately.
fn is_provider_name(audience: &str) -> bool {
    let Some(path) = audience.strip_prefix("//iam.googleapis.com/") else {
        return false;
    };
    let segments: Vec<&str> = path.split('/').collect();
    let id = |s: &str| !s.is_empty();
    match segments.as_slice() {
        [
            "projects",
            n,
            "locations",
            "global",
            "workloadIdentityPools",
            p,
            "providers",
            x,
        ] => id(n) && id(p) && id(x),
        ["locations", "global", "workforcePools", p, "providers", x] => id(p) && id(x),
        _ => false,
    }
}

/// The request parameters, from the form body clients send or the JSON body the REST
/// reference documents (camelCase names, mapped to the form's).
struct Params(HashMap<String, String>);

impl Params {
    fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Self, Reply> {
        let is_json = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("application/json"));
        if !is_json {
            return Ok(Params(form_urlencoded::parse(body).into_owned().collect()));
        }
        let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(body) else {
            return Err(error(
                "invalid_request",
                "The request body is not a valid JSON object.",
            ));
        };
        let params = object
            .into_iter()
            .filter_map(|(name, value)| Some((snake_case(&name), value.as_str()?.to_owned())))
            .collect();
        Ok(Params(params))
    }

    fn required(&self, name: &str) -> Result<&str, Reply> {
        match self.0.get(name).map(String::as_str) {
            Some(value) if !value.is_empty() => Ok(value),
            _ => Err(error(
                "invalid_request",
                format!("Missing required parameter: \"{name}\"."),
            )),
        }
    }

    fn expect(&self, name: &str, expected: &str) -> Result<(), Reply> {
        if self.required(name)? == expected {
            Ok(())
        } else {
            Err(error(
                "invalid_request",
                format!("Invalid value for \"{name}\". Expected \"{expected}\"."),
            ))
        }
    }
}

fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_names() {
        let good =
            "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/x";
        assert!(is_provider_name(good));
        assert!(is_provider_name(
            "//iam.googleapis.com/locations/global/workforcePools/p/providers/x"
        ));
        for bad in [
            "",
            "projects/1/locations/global/workloadIdentityPools/p/providers/x",
            "https://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/x",
            "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p",
            "//iam.googleapis.com/projects//locations/global/workloadIdentityPools/p/providers/x",
            &format!("{good}/extra"),
        ] {
            assert!(!is_provider_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn json_params_map_to_form_names() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, "application/json".parse().unwrap());
        let params = Params::parse(
            &headers,
            br#"{"grantType": "g", "subjectTokenType": "t", "scope": "s", "n": 1}"#,
        )
        .ok()
        .unwrap();
        assert_eq!(params.required("grant_type").ok(), Some("g"));
        assert_eq!(params.required("subject_token_type").ok(), Some("t"));
        assert!(params.required("n").is_err());
    }
}
