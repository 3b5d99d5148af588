//! The AWS subject token: a serialized, SigV4-signed STS `GetCallerIdentity` request. Google
//! forwards it to AWS, which checks the signature and says who signed it; here the emulated AWS
//! recomputes the signature with the `aws-sigv4` crate, an implementation independent of the
//! project's own signer.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SessionTokenMode, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use percent_encoding::percent_decode_str;
use serde::Deserialize;
use subtle::ConstantTimeEq as _;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use crate::AwsIdentity;

const TARGET_RESOURCE: &str = "x-goog-cloud-target-resource";
const X_AMZ_DATE: &str = "x-amz-date";
const X_AMZ_SECURITY_TOKEN: &str = "x-amz-security-token";

/// Why the token was refused, in the three ways Google reports it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// Not a serialized `GetCallerIdentity` request at all.
    Malformed(String),
    /// The target-resource header is missing or names another provider.
    TargetResource(String),
    /// What AWS would have answered: its error code and message.
    Aws { code: &'static str, message: String },
}

fn malformed(why: impl Into<String>) -> Rejection {
    Rejection::Malformed(why.into())
}

fn aws(code: &'static str, message: impl Into<String>) -> Rejection {
    Rejection::Aws {
        code,
        message: message.into(),
    }
}

fn signature_mismatch(message: impl Into<String>) -> Rejection {
    aws("SignatureDoesNotMatch", message)
}

const SIGNATURE_DOES_NOT_MATCH: &str = "The request signature we calculated does not match the \
    signature you provided. Check your AWS Secret Access Key and signing method. Consult the \
    service documentation for details.";

#[derive(Deserialize)]
struct SerializedRequest {
    url: String,
    method: String,
    headers: Vec<Header>,
}

#[derive(Deserialize)]
struct Header {
    key: String,
    value: String,
}

/// The parts of `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Authorization<'a> {
    pub(crate) access_key_id: &'a str,
    date: &'a str,
    pub(crate) region: &'a str,
    service: &'a str,
    pub(crate) signed_headers: &'a str,
    pub(crate) signature: &'a str,
}

impl<'a> Authorization<'a> {
    pub(crate) fn parse(value: &'a str) -> Result<Self, Rejection> {
        let incomplete = |what: &str| aws("IncompleteSignature", what.to_owned());
        let rest = value.strip_prefix("AWS4-HMAC-SHA256 ").ok_or_else(|| {
            incomplete("Unsupported AWS 'algorithm': expected 'AWS4-HMAC-SHA256'.")
        })?;
        let (mut credential, mut signed_headers, mut signature) = (None, None, None);
        for part in rest.split(',') {
            match part.trim().split_once('=') {
                Some(("Credential", v)) => credential = Some(v),
                Some(("SignedHeaders", v)) => signed_headers = Some(v),
                Some(("Signature", v)) => signature = Some(v),
                _ => {}
            }
        }
        let credential = credential
            .ok_or_else(|| incomplete("Authorization header requires 'Credential' parameter."))?;
        let signed_headers = signed_headers.ok_or_else(|| {
            incomplete("Authorization header requires 'SignedHeaders' parameter.")
        })?;
        let signature = signature
            .ok_or_else(|| incomplete("Authorization header requires 'Signature' parameter."))?;
        let [access_key_id, date, region, service, "aws4_request"] =
            credential.split('/').collect::<Vec<_>>()[..]
        else {
            return Err(incomplete(
                "Credential must have exactly 5 slash-delimited elements, e.g. \
                 keyid/date/region/service/aws4_request.",
            ));
        };
        Ok(Authorization {
            access_key_id,
            date,
            region,
            service,
            signed_headers,
            signature,
        })
    }
}

/// Checks the subject token as Google and AWS would, and returns the identity that signed it.
pub(crate) fn verify<'a>(
    subject_token: &str,
    audience: &str,
    identities: &'a [AwsIdentity],
    now: OffsetDateTime,
    clock_skew_tolerance: std::time::Duration,
) -> Result<&'a AwsIdentity, Rejection> {
    let request = decode(subject_token)?;
    if !request.method.eq_ignore_ascii_case("POST") {
        return Err(malformed(format!(
            "the method is {:?}, not \"POST\"",
            request.method
        )));
    }
    let url = StsUrl::parse(&request.url)?;
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|h| h.key.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    };

    // The header binds the token to one provider, so it cannot be replayed against another.
    let target = header(TARGET_RESOURCE).ok_or_else(|| {
        Rejection::TargetResource(format!(
            "The subject token has no {TARGET_RESOURCE} header: it must name the target resource \
             \"{audience}\"."
        ))
    })?;
    if target.strip_prefix("https:").unwrap_or(target) != audience {
        return Err(Rejection::TargetResource(format!(
            "The target resource \"{target}\" in the {TARGET_RESOURCE} header of the subject token \
             does not match the audience \"{audience}\"."
        )));
    }
    if let Some(host) = header("host")
        && !host.eq_ignore_ascii_case(url.host)
    {
        return Err(malformed(format!(
            "the host header {host:?} does not match the URL's host {:?}",
            url.host
        )));
    }

    let authorization = header("authorization").ok_or_else(|| {
        aws(
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        )
    })?;
    let claimed = Authorization::parse(authorization)?;
    let amz_date = header(X_AMZ_DATE).ok_or_else(|| {
        aws(
            "IncompleteSignature",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        )
    })?;
    let signed_at = parse_amz_date(amz_date).ok_or_else(|| {
        aws(
            "IncompleteSignature",
            format!(
                "Date must be in ISO-8601 'basic format'. Got '{amz_date}'. See \
                 http://en.wikipedia.org/wiki/ISO_8601"
            ),
        )
    })?;

    let invalid_token = || {
        aws(
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        )
    };
    let identity = identities
        .iter()
        .find(|i| i.access_key_id == claimed.access_key_id)
        .ok_or_else(invalid_token)?;
    let session_token = header(X_AMZ_SECURITY_TOKEN);
    if session_token != identity.session_token.as_deref() {
        return Err(invalid_token());
    }

    check_clock(amz_date, signed_at, now, clock_skew_tolerance)?;
    if claimed.service != "sts" {
        return Err(signature_mismatch(
            "Credential should be scoped to correct service: 'sts'.",
        ));
    }
    if claimed.region != url.region {
        return Err(signature_mismatch(
            "Credential should be scoped to a valid region.",
        ));
    }
    let day = amz_date.get(..8).unwrap_or_default();
    if claimed.date != day {
        return Err(signature_mismatch(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from \
             HTTP: '{}' != '{day}', from '{amz_date}'.",
            claimed.date
        )));
    }

    let recomputed = recompute(&request, &url, &claimed, identity, signed_at)?;
    let recomputed = Authorization::parse(&recomputed)?;
    let signature_matches: bool = recomputed
        .signature
        .as_bytes()
        .ct_eq(claimed.signature.as_bytes())
        .into();
    if !signature_matches || recomputed.signed_headers != claimed.signed_headers {
        return Err(signature_mismatch(SIGNATURE_DOES_NOT_MATCH));
    }
    Ok(identity)
}

/// google-auth percent-encodes the JSON (`urllib.parse.quote`), golang/oauth2 query-escapes it
/// (`+` for space); a raw JSON token is taken as it is.
fn decode(subject_token: &str) -> Result<SerializedRequest, Rejection> {
    let json = if subject_token.trim_start().starts_with('{') {
        subject_token.to_owned()
    } else {
        let plus_as_space = subject_token.replace('+', " ");
        percent_decode_str(&plus_as_space)
            .decode_utf8()
            .map_err(|_| malformed("it is not URL-encoded UTF-8"))?
            .into_owned()
    };
    serde_json::from_str(&json).map_err(|e| {
        malformed(format!(
            "expected URL-encoded JSON {{\"url\", \"method\", \"headers\": [{{\"key\", \"value\"}}]}}: {e}"
        ))
    })
}

/// `https://sts[.REGION].amazonaws.com[/]?Action=GetCallerIdentity&Version=2011-06-15`.
struct StsUrl<'a> {
    host: &'a str,
    /// The region the endpoint signs for: the global endpoint is `us-east-1`'s.
    region: String,
    path: &'a str,
    query: &'a str,
}

impl<'a> StsUrl<'a> {
    fn parse(url: &'a str) -> Result<Self, Rejection> {
        let not_sts = || {
            malformed(format!(
                "the URL {url:?} is not an AWS STS GetCallerIdentity URL such as \
                 \"https://sts.us-east-1.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15\""
            ))
        };
        let rest = url.strip_prefix("https://").ok_or_else(not_sts)?;
        let (host, path_and_query) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let host_lower = host.to_ascii_lowercase();
        let region = match host_lower.as_str() {
            "sts.amazonaws.com" => "us-east-1",
            lower => lower
                .strip_prefix("sts.")
                .and_then(|r| r.strip_suffix(".amazonaws.com"))
                .filter(|r| {
                    !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
                .ok_or_else(not_sts)?,
        }
        .to_owned();
        if !(path.is_empty() || path == "/") {
            return Err(not_sts());
        }
        let param = |name: &str| {
            form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        if param("Action").as_deref() != Some("GetCallerIdentity")
            || param("Version").as_deref() != Some("2011-06-15")
        {
            return Err(not_sts());
        }
        Ok(StsUrl {
            host,
            region,
            path,
            query,
        })
    }
}

pub(crate) fn parse_amz_date(value: &str) -> Option<OffsetDateTime> {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    PrimitiveDateTime::parse(value, format)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

fn format_amz_date(time: OffsetDateTime) -> String {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    time.format(format)
        .unwrap_or_else(|_| "(out of range)".to_owned())
}

/// AWS refuses requests signed more than the tolerance away from its clock, in these words.
fn check_clock(
    amz_date: &str,
    signed_at: OffsetDateTime,
    now: OffsetDateTime,
    tolerance: std::time::Duration,
) -> Result<(), Rejection> {
    let minutes = tolerance.as_secs() / 60;
    if signed_at < now - tolerance {
        return Err(signature_mismatch(format!(
            "Signature expired: {amz_date} is now earlier than {} ({} - {minutes} min.)",
            format_amz_date(now - tolerance),
            format_amz_date(now)
        )));
    }
    if signed_at > now + tolerance {
        return Err(signature_mismatch(format!(
            "Signature not yet current: {amz_date} is still later than {} ({} + {minutes} min.)",
            format_amz_date(now + tolerance),
            format_amz_date(now)
        )));
    }
    Ok(())
}

/// Signs the request again with the identity's secret and returns the `Authorization` value
/// aws-sigv4 computes. It is given exactly the headers the client says it signed; aws-sigv4
/// adds `x-amz-date` and `x-amz-security-token` itself.
fn recompute(
    request: &SerializedRequest,
    url: &StsUrl<'_>,
    claimed: &Authorization<'_>,
    identity: &AwsIdentity,
    signed_at: OffsetDateTime,
) -> Result<String, Rejection> {
    let signed: Vec<&str> = claimed.signed_headers.split(';').collect();
    let headers = request.headers.iter().filter(|h| {
        let name = h.key.to_ascii_lowercase();
        signed.contains(&name.as_str()) && name != X_AMZ_DATE && name != X_AMZ_SECURITY_TOKEN
    });
    let path = if url.path.is_empty() { "/" } else { url.path };
    let uri = format!("https://{}{path}?{}", url.host, url.query);
    let signable = SignableRequest::new(
        "POST",
        uri,
        headers.map(|h| (h.key.as_str(), h.value.as_str())),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| malformed(format!("the request cannot be signed: {e}")))?;

    let mut settings = SigningSettings::default();
    // Sign whatever the client signed (e.g. user-agent), not the SDK's preferred subset.
    settings.excluded_headers = None;
    settings.session_token_mode = if signed.contains(&X_AMZ_SECURITY_TOKEN) {
        SessionTokenMode::Include
    } else {
        SessionTokenMode::Exclude
    };
    let identity: Identity = Credentials::from_keys(
        &identity.access_key_id,
        &identity.secret_access_key,
        identity.session_token.clone(),
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&url.region)
        .name("sts")
        .time(SystemTime::from(signed_at))
        .settings(settings)
        .build()
        .map_err(|e| malformed(format!("the request cannot be signed: {e}")))?
        .into();
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| malformed(format!("the request cannot be signed: {e}")))?
        .into_parts();
    instructions
        .headers()
        .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        .map(|(_, value)| value.to_owned())
        .ok_or_else(|| malformed("aws-sigv4 produced no Authorization header"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_parts() {
        let a = Authorization::parse(
            "AWS4-HMAC-SHA256 Credential=AKID/20250601/eu-west-1/sts/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=abc",
        )
        .unwrap();
        assert_eq!(
            a,
            Authorization {
                access_key_id: "AKID",
                date: "20250601",
                region: "eu-west-1",
                service: "sts",
                signed_headers: "host;x-amz-date",
                signature: "abc",
            }
        );
        for bad in [
            "",
            "AWS4-HMAC-SHA1 Credential=A/B/C/D/aws4_request, SignedHeaders=h, Signature=s",
            "AWS4-HMAC-SHA256 Credential=A/B/C/aws4_request, SignedHeaders=h, Signature=s",
            "AWS4-HMAC-SHA256 Credential=A/B/C/D/E, SignedHeaders=h, Signature=s",
            "AWS4-HMAC-SHA256 SignedHeaders=h, Signature=s",
            "AWS4-HMAC-SHA256 Credential=A/B/C/D/aws4_request, Signature=s",
            "AWS4-HMAC-SHA256 Credential=A/B/C/D/aws4_request, SignedHeaders=h",
        ] {
            assert!(
                matches!(
                    Authorization::parse(bad),
                    Err(Rejection::Aws {
                        code: "IncompleteSignature",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn sts_urls() {
        let u = StsUrl::parse(
            "https://sts.eu-west-1.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
        )
        .ok()
        .unwrap();
        assert_eq!(
            (u.host, u.region.as_str(), u.path),
            ("sts.eu-west-1.amazonaws.com", "eu-west-1", "")
        );
        let u =
            StsUrl::parse("https://sts.amazonaws.com/?Version=2011-06-15&Action=GetCallerIdentity")
                .ok()
                .unwrap();
        assert_eq!((u.region.as_str(), u.path), ("us-east-1", "/"));
        for bad in [
            "http://sts.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
            "https://sts.amazonaws.com.evil.example?Action=GetCallerIdentity&Version=2011-06-15",
            "https://evil.example/?Action=GetCallerIdentity&Version=2011-06-15",
            "https://sts..amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
            "https://sts.amazonaws.com:8443?Action=GetCallerIdentity&Version=2011-06-15",
            "https://sts.amazonaws.com/x?Action=GetCallerIdentity&Version=2011-06-15",
            "https://sts.amazonaws.com?Action=AssumeRole&Version=2011-06-15",
            "https://sts.amazonaws.com?Action=GetCallerIdentity",
            "https://sts.amazonaws.com",
            "https://",
            "",
        ] {
            assert!(StsUrl::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hostile_tokens_are_refused_not_panicked_on() {
        let now = time::macros::datetime!(2025-06-01 12:00:00 UTC);
        let identities = crate::EmulatorConfig::demo().identities;
        // Well-formed up to the signature, with headers that cannot be canonicalized.
        let signable = |name: &str, value: &str| {
            serde_json::json!({
                "url": "https://sts.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
                "method": "POST",
                "headers": [
                    {"key": "x-goog-cloud-target-resource", "value": "a"},
                    {"key": "x-amz-date", "value": "20250601T120000Z"},
                    {"key": "Authorization", "value": format!(
                        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20250601/us-east-1/sts/aws4_request, \
                         SignedHeaders=host;x-amz-date;{name}, Signature=00")},
                    {"key": name, "value": value},
                ],
            })
            .to_string()
        };
        for token in [
            "".to_owned(),
            "%".to_owned(),
            "%FF%FE".to_owned(),
            "{".to_owned(),
            "null".to_owned(),
            "[]".to_owned(),
            "{\"url\": 1}".to_owned(),
            "%7B%22url%22%3A%22https%3A%2F%2Fsts.amazonaws.com%22%7D".to_owned(),
            signable("x-evil", "line\nbreak\u{0}"),
            signable("bad key", "v"),
            signable("", ""),
            signable("x-long", &"\u{e9}".repeat(100_000)),
        ] {
            let result = verify(
                &token,
                "a",
                &identities,
                now,
                std::time::Duration::from_secs(900),
            );
            assert!(result.is_err(), "{token}");
        }
    }
}
