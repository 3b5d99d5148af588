//! AWS STS as a sender that assumes roles meets it: `AssumeRole`, whose SigV4 signature is
//! checked with the `aws-sigv4` crate (independent of the project's signer) against the
//! identities the emulator knows, with each role's external id; and
//! `AssumeRoleWithWebIdentity`, whose only credential is the token. Either issues temporary
//! keys for `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`, which the emulated Google STS
//! then accepts in subject tokens. Answers and errors are AWS's XML, in AWS's words.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SessionTokenMode, SignableBody, SignableRequest,
    SigningSettings, UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::{HeaderMap, StatusCode};
use subtle::ConstantTimeEq as _;
use time::format_description::well_known::Rfc3339;

use crate::reply::Reply;
use crate::state::{State, lock, new_token};
use crate::subject_token::{Authorization, parse_amz_date};
use crate::{AwsIdentity, AwsRole};

/// The form fields of a request, decoded.
struct Form(Vec<(String, String)>);

impl Form {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Answers a POST to `/` with an STS `Action` in its form body or its query (as a subject
/// token's `GetCallerIdentity` has it); `None` when neither names one.
pub(crate) fn handle(
    state: &State,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<Reply> {
    let parse = |bytes: &[u8]| {
        Form(
            form_urlencoded::parse(bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    };
    let mut form = parse(body);
    if form.get("Action").is_none() {
        form = parse(query.as_bytes());
    }
    let reply = match form.get("Action")? {
        "AssumeRole" => assume_role(state, headers, body, &form),
        "AssumeRoleWithWebIdentity" => web_identity(state, &form),
        "GetCallerIdentity" => caller_identity(state, query, headers, body),
        other => Err(error_xml(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            &format!("Could not find operation {other} for version 2011-06-15"),
        )),
    };
    Some(reply.unwrap_or_else(|e| e))
}

/// An error as AWS's query APIs and S3 write it.
pub(crate) fn error_xml(status: StatusCode, code: &str, message: &str) -> Reply {
    let xml = format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>\
         <Type>Sender</Type><Code>{code}</Code><Message>{}</Message></Error>\
         <RequestId>emulated</RequestId></ErrorResponse>",
        escape(message)
    );
    Reply::xml(status, xml, format!("{code}: {message}"))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn assume_role(
    state: &State,
    headers: &HeaderMap,
    body: &[u8],
    form: &Form,
) -> Result<Reply, Reply> {
    let (caller, _) = verify_sigv4(state, "POST", "/", "", headers, body, "sts")?;
    let role_arn = form.get("RoleArn").unwrap_or_default();
    let denied = || {
        error_xml(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            &format!(
                "User: {} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
                caller.role_arn
            ),
        )
    };
    let role = find_role(state, role_arn).ok_or_else(denied)?;
    if role.external_id.as_deref() != form.get("ExternalId") {
        return Err(denied());
    }
    issue(state, role, form, "AssumeRole")
}

/// `GetCallerIdentity`: whose signature the request carries.
fn caller_identity(
    state: &State,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Reply, Reply> {
    let (caller, _) = verify_sigv4(state, "POST", "/", query, headers, body, "sts")?;
    let account = caller.role_arn.split(':').nth(4).unwrap_or_default();
    let xml = format!(
        "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
         <GetCallerIdentityResult><Arn>{}</Arn><UserId>AROAEMULATED:{}</UserId>\
         <Account>{account}</Account></GetCallerIdentityResult>\
         <ResponseMetadata><RequestId>emulated</RequestId></ResponseMetadata>\
         </GetCallerIdentityResponse>",
        escape(&caller.role_arn),
        escape(caller.role_arn.rsplit('/').next().unwrap_or_default()),
    );
    Ok(Reply::xml(
        StatusCode::OK,
        xml,
        format!("GetCallerIdentity: {}", caller.role_arn),
    ))
}

fn web_identity(state: &State, form: &Form) -> Result<Reply, Reply> {
    let role_arn = form.get("RoleArn").unwrap_or_default();
    let token = form.get("WebIdentityToken").unwrap_or_default();
    let role = find_role(state, role_arn).ok_or_else(|| {
        error_xml(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "Not authorized to perform sts:AssumeRoleWithWebIdentity",
        )
    })?;
    let accepted = role
        .web_identity_token
        .as_deref()
        .is_some_and(|t| bool::from(t.as_bytes().ct_eq(token.as_bytes())));
    if !accepted {
        return Err(error_xml(
            StatusCode::BAD_REQUEST,
            "InvalidIdentityToken",
            "The web identity token that was passed could not be validated by AWS. Get a new \
             identity token from the identity provider and then retry the request.",
        ));
    }
    issue(state, role, form, "AssumeRoleWithWebIdentity")
}

fn find_role(state: &State, arn: &str) -> Option<AwsRole> {
    state
        .config
        .aws_roles
        .iter()
        .find(|r| r.role_arn == arn)
        .cloned()
}

/// New temporary keys for `role`, known from now on to Google STS and to this STS.
fn issue(state: &State, role: AwsRole, form: &Form, action: &str) -> Result<Reply, Reply> {
    let session = form.get("RoleSessionName").unwrap_or_default();
    let valid_session = (2..=64).contains(&session.len())
        && session
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b));
    if !valid_session {
        return Err(error_xml(
            StatusCode::BAD_REQUEST,
            "ValidationError",
            "1 validation error detected: Value at 'roleSessionName' failed to satisfy \
             constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*",
        ));
    }
    let seconds: i64 = form
        .get("DurationSeconds")
        .and_then(|d| d.parse().ok())
        .unwrap_or(3600);
    let (account, name) = role
        .role_arn
        .strip_prefix("arn:aws:iam::")
        .and_then(|rest| rest.split_once(":role/"))
        .unwrap_or(("000000000000", "role"));
    let name = name.rsplit('/').next().unwrap_or(name);
    let identity = AwsIdentity {
        access_key_id: new_token("ASIA")
            .chars()
            .take(20)
            .collect::<String>()
            .to_uppercase(),
        secret_access_key: new_token(""),
        session_token: Some(new_token("FwoGZXIvYXdzE")),
        role_arn: format!("arn:aws:sts::{account}:assumed-role/{name}/{session}"),
    };
    let expiration = (state.now() + time::Duration::seconds(seconds))
        .format(&Rfc3339)
        .unwrap_or_default();
    let xml = format!(
        "<{action}Response xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><{action}Result>\
         <Credentials><AccessKeyId>{}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey>\
         <SessionToken>{}</SessionToken><Expiration>{expiration}</Expiration></Credentials>\
         <AssumedRoleUser><Arn>{}</Arn></AssumedRoleUser></{action}Result></{action}Response>",
        identity.access_key_id,
        identity.secret_access_key,
        identity.session_token.as_deref().unwrap_or_default(),
        identity.role_arn,
    );
    let outcome = format!("{action}: credentials issued to {}", identity.role_arn);
    lock(&state.assumed).push(identity);
    Ok(Reply::xml(StatusCode::OK, xml, outcome))
}

/// The identity whose SigV4 signature a request carries, checked as AWS checks it, and the
/// region it signed for. `service` is `sts` or `s3` (S3 signs its path as sent, without
/// normalising it, and the payload's hash in `x-amz-content-sha256`).
pub(crate) fn verify_sigv4(
    state: &State,
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
    service: &str,
) -> Result<(AwsIdentity, String), Reply> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let refuse = |code: &str, message: &str| error_xml(StatusCode::FORBIDDEN, code, message);
    let authorization = header("authorization").ok_or_else(|| {
        refuse(
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        )
    })?;
    let claimed = Authorization::parse(authorization).map_err(|_| {
        refuse(
            "IncompleteSignature",
            "The Authorization header is not SigV4.",
        )
    })?;
    let invalid = || {
        let code = if service == "s3" {
            "InvalidAccessKeyId"
        } else {
            "InvalidClientTokenId"
        };
        refuse(
            code,
            "The security token included in the request is invalid.",
        )
    };
    let identity = state
        .identities()
        .into_iter()
        .find(|i| i.access_key_id == claimed.access_key_id)
        .ok_or_else(invalid)?;
    if header("x-amz-security-token") != identity.session_token.as_deref() {
        return Err(invalid());
    }
    if state
        .config
        .expired_access_keys
        .contains(&identity.access_key_id)
    {
        return Err(refuse(
            "ExpiredToken",
            "The security token included in the request is expired",
        ));
    }
    let signed_at = header("x-amz-date")
        .and_then(parse_amz_date)
        .ok_or_else(|| refuse("IncompleteSignature", "x-amz-date is missing or malformed."))?;
    let tolerance = state.config.clock_skew_tolerance;
    let now = state.now();
    if signed_at < now - tolerance || signed_at > now + tolerance {
        return Err(refuse("SignatureDoesNotMatch", "Signature expired."));
    }
    let host = header("host").unwrap_or_default();
    let signed: Vec<&str> = claimed.signed_headers.split(';').collect();
    let excluded = [
        "x-amz-date",
        "x-amz-security-token",
        "authorization",
        "x-amz-content-sha256",
    ];
    let to_sign = headers.iter().filter_map(|(name, value)| {
        let name = name.as_str();
        (signed.contains(&name) && !excluded.contains(&name))
            .then(|| Some((name, value.to_str().ok()?)))
            .flatten()
    });
    let mismatch = || {
        refuse(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        )
    };
    let url = if query.is_empty() {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}{path}?{query}")
    };
    let mut settings = SigningSettings::default();
    settings.excluded_headers = None;
    settings.session_token_mode = if signed.contains(&"x-amz-security-token") {
        SessionTokenMode::Include
    } else {
        SessionTokenMode::Exclude
    };
    let content_sha256 = header("x-amz-content-sha256")
        .unwrap_or_default()
        .to_owned();
    let payload = if service == "s3" {
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        SignableBody::Precomputed(content_sha256)
    } else {
        SignableBody::Bytes(body)
    };
    let signable = SignableRequest::new(method, url, to_sign, payload).map_err(|_| mismatch())?;
    let keys: Identity = Credentials::from_keys(
        &identity.access_key_id,
        &identity.secret_access_key,
        identity.session_token.clone(),
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&keys)
        .region(claimed.region)
        .name(service)
        .time(SystemTime::from(signed_at))
        .settings(settings)
        .build()
        .map_err(|_| mismatch())?
        .into();
    let (instructions, _) = aws_sigv4::http_request::sign(signable, &params)
        .map_err(|_| mismatch())?
        .into_parts();
    let recomputed = instructions
        .headers()
        .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, value)| {
            Authorization::parse(value)
                .ok()
                .map(|a| a.signature.to_owned())
        })
        .ok_or_else(mismatch)?;
    if !bool::from(recomputed.as_bytes().ct_eq(claimed.signature.as_bytes())) {
        return Err(mismatch());
    }
    Ok((identity, claimed.region.to_owned()))
}
