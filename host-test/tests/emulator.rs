//! The embedded Google emulator (STS + IAM Credentials), driven over real HTTP.
//!
//! Subject tokens come from three independent signers: aws-sigv4 (built here, so each test can
//! vary one thing), and frozen tokens written by google-auth (Python) and botocore.

use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use host_test::emulator::{AwsIdentity, Emulator, EmulatorConfig, Endpoint, Misconfig};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::{Value, json};
use time::macros::datetime;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const NOW: OffsetDateTime = datetime!(2025-06-01 12:00:00 UTC);
const SA: &str = "uploader@partner-project.iam.gserviceaccount.com";
const STORAGE_SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_write";

const SIGNATURE_DOES_NOT_MATCH: &str = "Received invalid AWS response of type SignatureDoesNotMatch \
    with error message: The request signature we calculated does not match the signature you \
    provided. Check your AWS Secret Access Key and signing method. Consult the service \
    documentation for details.";
const INVALID_CLIENT_TOKEN_ID: &str = "Received invalid AWS response of type InvalidClientTokenId \
    with error message: The security token included in the request is invalid.";

fn config() -> EmulatorConfig {
    let mut config = EmulatorConfig::demo();
    config.now = Some(NOW);
    config.identities.push(AwsIdentity {
        access_key_id: "ASIAEMULATORTEMP0001".into(),
        secret_access_key: "temporary/secret+key/EXAMPLE".into(),
        session_token: Some("IQoJb3JpZ2luX2VjEXAMPLE+session/token==".into()),
        role_arn: "arn:aws:sts::111122223333:assumed-role/wif-push-sender/i-0123".into(),
    });
    config
}

async fn start(config: EmulatorConfig) -> Emulator {
    Emulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// What to sign; each test changes one thing from [`Spec::new`].
#[derive(Clone)]
struct Spec {
    identity: AwsIdentity,
    region: &'static str,
    time: OffsetDateTime,
    target: String,
    sign_target: bool,
}

impl Spec {
    fn new(config: &EmulatorConfig, identity: usize) -> Self {
        Spec {
            identity: config.identities[identity].clone(),
            region: "eu-west-1",
            time: NOW,
            target: config.audience(),
            sign_target: true,
        }
    }

    /// The subject token as google-auth writes it, signed by aws-sigv4.
    fn token(&self) -> String {
        let host = format!("sts.{}.amazonaws.com", self.region);
        let url = format!("https://{host}?Action=GetCallerIdentity&Version=2011-06-15");
        let mut signed = vec![("host", host.as_str())];
        if self.sign_target {
            signed.push(("x-goog-cloud-target-resource", self.target.as_str()));
        }
        let identity: Identity = Credentials::from_keys(
            &self.identity.access_key_id,
            &self.identity.secret_access_key,
            self.identity.session_token.clone(),
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(self.region)
            .name("sts")
            .time(self.time.into())
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let request = SignableRequest::new(
            "POST",
            url.clone(),
            signed.iter().copied(),
            SignableBody::Bytes(&[]),
        )
        .unwrap();
        let (instructions, _) = sign(request, &params).unwrap().into_parts();
        let mut headers: Vec<Value> = instructions
            .headers()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect();
        headers.push(json!({"key": "host", "value": host}));
        headers.push(json!({"key": "x-goog-cloud-target-resource", "value": self.target}));
        encode(&json!({"url": url, "method": "POST", "headers": headers}))
    }
}

fn encode(request: &Value) -> String {
    utf8_percent_encode(&request.to_string(), NON_ALPHANUMERIC).to_string()
}

/// Decodes a subject token, lets `change` edit it, and encodes it again.
fn edit(token: &str, change: impl FnOnce(&mut Value)) -> String {
    let mut request: Value =
        serde_json::from_str(&percent_decode_str(token).decode_utf8().unwrap()).unwrap();
    change(&mut request);
    encode(&request)
}

fn set_header(request: &mut Value, name: &str, value: &str) {
    for header in request["headers"].as_array_mut().unwrap() {
        if header["key"].as_str().unwrap().eq_ignore_ascii_case(name) {
            header["value"] = json!(value);
        }
    }
}

fn remove_header(request: &mut Value, name: &str) {
    request["headers"]
        .as_array_mut()
        .unwrap()
        .retain(|h| !h["key"].as_str().unwrap().eq_ignore_ascii_case(name));
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    json: Value,
}

async fn send(
    emulator: &Emulator,
    method: Method,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Answer {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", emulator.addr()))
        .header("host", host);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = client
        .request(request.body(Full::new(body.into())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)));
    Answer {
        status,
        headers,
        json,
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

async fn sts_form(emulator: &Emulator, body: String) -> Answer {
    send(
        emulator,
        Method::POST,
        "sts.googleapis.com",
        "/v1/token",
        &[("content-type", "application/x-www-form-urlencoded")],
        body,
    )
    .await
}

async fn exchange_with_audience(emulator: &Emulator, token: &str, audience: &str) -> Answer {
    let body = form(&[
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("audience", audience),
        ("scope", "https://www.googleapis.com/auth/cloud-platform"),
        (
            "requested_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        ),
        (
            "subject_token_type",
            "urn:ietf:params:aws:token-type:aws4_request",
        ),
        ("subject_token", token),
    ]);
    sts_form(emulator, body).await
}

async fn exchange(emulator: &Emulator, token: &str) -> Answer {
    exchange_with_audience(emulator, token, &emulator.config().audience()).await
}

/// Asserts an STS error answer: 400, `{"error", "error_description"}`.
fn assert_sts_error(answer: &Answer, error: &str, description: &str) {
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.json);
    assert_eq!(
        answer.json,
        json!({"error": error, "error_description": description})
    );
}

fn assert_sts_error_starts(answer: &Answer, error: &str, start: &str) {
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.json);
    assert_eq!(answer.json["error"], error, "{}", answer.json);
    let description = answer.json["error_description"].as_str().unwrap();
    assert!(description.starts_with(start), "{description}");
}

async fn federated_token(emulator: &Emulator) -> String {
    let answer = exchange(emulator, &Spec::new(emulator.config(), 0).token()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    answer.json["access_token"].as_str().unwrap().to_owned()
}

async fn generate(emulator: &Emulator, bearer: Option<&str>, email: &str, body: Value) -> Answer {
    let authorization = bearer.map(|token| format!("Bearer {token}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(value) = &authorization {
        headers.push(("authorization", value));
    }
    send(
        emulator,
        Method::POST,
        "iamcredentials.googleapis.com",
        &format!("/v1/projects/-/serviceAccounts/{email}:generateAccessToken"),
        &headers,
        body.to_string(),
    )
    .await
}

fn storage_request() -> Value {
    json!({"scope": [STORAGE_SCOPE], "lifetime": "3600s"})
}

fn assert_google_error(answer: &Answer, code: u16, status: &str, message: &str) {
    assert_eq!(answer.status.as_u16(), code, "{}", answer.json);
    assert_eq!(answer.json["error"]["code"], code);
    assert_eq!(answer.json["error"]["status"], status);
    assert_eq!(answer.json["error"]["message"], message);
}

#[tokio::test]
async fn whole_flow_with_signed_target_and_session_token() {
    let emulator = start(config()).await;
    let answer = exchange(&emulator, &Spec::new(emulator.config(), 1).token()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(
        answer.headers["content-type"],
        "application/json; charset=UTF-8"
    );
    let federated = answer.json["access_token"].as_str().unwrap();
    assert!(federated.starts_with("ya29.d."), "{federated}");
    assert_eq!(
        answer.json["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(answer.json["token_type"], "Bearer");
    assert_eq!(answer.json["expires_in"], 3599);

    let answer = generate(&emulator, Some(federated), SA, storage_request()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["expireTime"], "2025-06-01T13:00:00Z");
    let access_token = answer.json["accessToken"].as_str().unwrap();
    assert!(access_token.starts_with("ya29.c."), "{access_token}");
    assert!(emulator.access_token_valid(access_token));
    assert!(!emulator.access_token_valid(federated));
    assert!(!emulator.access_token_valid("ya29.c.forged"));

    emulator.set_now(Some(NOW + Duration::from_secs(3600)));
    assert!(!emulator.access_token_valid(access_token));
}

#[tokio::test]
async fn signed_target_without_session_token() {
    let emulator = start(config()).await;
    let answer = exchange(&emulator, &Spec::new(emulator.config(), 0).token()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
}

#[tokio::test]
async fn unsigned_target_and_https_prefix_are_accepted() {
    let emulator = start(config()).await;
    let mut spec = Spec::new(emulator.config(), 1);
    spec.sign_target = false;
    let answer = exchange(&emulator, &spec.token()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);

    spec.target = format!("https:{}", emulator.config().audience());
    let answer = exchange(&emulator, &spec.token()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
}

/// Written by google-auth 2.63 (`aws.Credentials.retrieve_subject_token`, clock frozen at
/// 2025-06-01T12:00:00Z, region eu-west-1): session token signed, target header unsigned.
const GOOGLE_AUTH_TOKEN: &str = "%7B%22headers%22%3A%5B%7B%22key%22%3A%22Authorization%22%2C%22value%22%3A%22AWS4-HMAC-SHA256%20Credential%3DASIAEMULATORSESSION1/20250601/eu-west-1/sts/aws4_request%2C%20SignedHeaders%3Dhost%3Bx-amz-date%3Bx-amz-security-token%2C%20Signature%3D4014d78e786935e3a20fc3defdd9880a1345f80dba6d56f22e3cf850a39413f5%22%7D%2C%7B%22key%22%3A%22host%22%2C%22value%22%3A%22sts.eu-west-1.amazonaws.com%22%7D%2C%7B%22key%22%3A%22x-amz-date%22%2C%22value%22%3A%2220250601T120000Z%22%7D%2C%7B%22key%22%3A%22x-amz-security-token%22%2C%22value%22%3A%22FQoGZXIvYXdzEXAMPLE%2Bsession/token%3D%3D%22%7D%2C%7B%22key%22%3A%22x-goog-cloud-target-resource%22%2C%22value%22%3A%22//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/aws-partner/providers/aws%22%7D%5D%2C%22method%22%3A%22POST%22%2C%22url%22%3A%22https%3A//sts.eu-west-1.amazonaws.com%3FAction%3DGetCallerIdentity%26Version%3D2011-06-15%22%7D";

/// Signed by botocore's `SigV4Auth` (us-east-1, target header signed, keys in mixed case).
const BOTOCORE_TOKEN: &str = "%7B%22url%22%3A%22https%3A//sts.us-east-1.amazonaws.com%3FAction%3DGetCallerIdentity%26Version%3D2011-06-15%22%2C%22method%22%3A%22POST%22%2C%22headers%22%3A%5B%7B%22key%22%3A%22x-goog-cloud-target-resource%22%2C%22value%22%3A%22//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/aws-partner/providers/aws%22%7D%2C%7B%22key%22%3A%22X-Amz-Date%22%2C%22value%22%3A%2220261126T063751Z%22%7D%2C%7B%22key%22%3A%22Authorization%22%2C%22value%22%3A%22AWS4-HMAC-SHA256%20Credential%3DAKIAEMULATORLONGTERM/20261126/us-east-1/sts/aws4_request%2C%20SignedHeaders%3Dhost%3Bx-amz-date%3Bx-goog-cloud-target-resource%2C%20Signature%3De3f207a283fd9c5679c5488c5e3c8c3336b71b3eae73bbfb31d05b4afd3c319f%22%7D%2C%7B%22key%22%3A%22host%22%2C%22value%22%3A%22sts.us-east-1.amazonaws.com%22%7D%5D%7D";

fn third_party_config() -> EmulatorConfig {
    let mut config = config();
    config.identities.push(AwsIdentity {
        access_key_id: "ASIAEMULATORSESSION1".into(),
        secret_access_key: "emulator/secret+key/SESSION".into(),
        session_token: Some("FQoGZXIvYXdzEXAMPLE+session/token==".into()),
        role_arn: "arn:aws:sts::111122223333:assumed-role/wif-push-sender/python".into(),
    });
    config.identities.push(AwsIdentity {
        access_key_id: "AKIAEMULATORLONGTERM".into(),
        secret_access_key: "long/term+secret/KEY".into(),
        session_token: None,
        role_arn: "arn:aws:sts::111122223333:assumed-role/wif-push-sender/boto".into(),
    });
    config
}

#[tokio::test]
async fn google_auth_and_botocore_tokens_verify() {
    let mut config = third_party_config();
    config.now = Some(datetime!(2025-06-01 12:10:00 UTC));
    let emulator = start(config).await;
    let answer = exchange(&emulator, GOOGLE_AUTH_TOKEN).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);

    emulator.set_now(Some(datetime!(2026-11-26 06:30:00 UTC)));
    let answer = exchange(&emulator, BOTOCORE_TOKEN).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);

    // The same tokens, one signed byte changed, must fail: the check is not vacuous.
    let tampered = BOTOCORE_TOKEN.replace("Signature%3De3f2", "Signature%3De3f3");
    assert_sts_error(
        &exchange(&emulator, &tampered).await,
        "invalid_grant",
        SIGNATURE_DOES_NOT_MATCH,
    );
    emulator.set_now(Some(datetime!(2025-06-01 12:10:00 UTC)));
    let tampered = GOOGLE_AUTH_TOKEN.replace("EXAMPLE%2Bsession", "EXAMPLE%2BsessioN");
    assert_sts_error(
        &exchange(&emulator, &tampered).await,
        "invalid_grant",
        INVALID_CLIENT_TOKEN_ID,
    );
}

#[tokio::test]
async fn tampering_breaks_the_signature() {
    let emulator = start(config()).await;
    let token = Spec::new(emulator.config(), 1).token();
    let signature_flipped = edit(&token, |request| {
        for header in request["headers"].as_array_mut().unwrap() {
            if header["key"] == "authorization" {
                let value = header["value"].as_str().unwrap();
                let last = value.chars().last().unwrap();
                let flipped = if last == '0' { '1' } else { '0' };
                header["value"] = json!(format!("{}{flipped}", &value[..value.len() - 1]));
            }
        }
    });
    let one_second_later = edit(&token, |r| set_header(r, "x-amz-date", "20250601T120001Z"));
    let wrong_secret = {
        let mut spec = Spec::new(emulator.config(), 1);
        spec.identity.secret_access_key = "not-the-secret".into();
        spec.token()
    };
    let other_query = edit(&token, |r| {
        r["url"] = json!(
            "https://sts.eu-west-1.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15&x=1"
        )
    });
    for tampered in [
        signature_flipped,
        one_second_later,
        wrong_secret,
        other_query,
    ] {
        assert_sts_error(
            &exchange(&emulator, &tampered).await,
            "invalid_grant",
            SIGNATURE_DOES_NOT_MATCH,
        );
    }
}

#[tokio::test]
async fn a_signed_target_header_is_covered_by_the_signature() {
    let mut config = config();
    config.pool_id = "other-pool".into();
    let emulator = start(config).await;
    // Signed for the demo pool, then relabelled for this one: the signature no longer matches.
    let token = Spec::new(&EmulatorConfig::demo(), 0).token();
    let relabelled = edit(&token, |r| {
        set_header(
            r,
            "x-goog-cloud-target-resource",
            &emulator.config().audience(),
        )
    });
    assert_sts_error(
        &exchange(&emulator, &relabelled).await,
        "invalid_grant",
        SIGNATURE_DOES_NOT_MATCH,
    );
}

#[tokio::test]
async fn unknown_keys_and_wrong_session_tokens_are_invalid_client_token_ids() {
    let emulator = start(config()).await;
    let mut unknown = Spec::new(emulator.config(), 0);
    unknown.identity.access_key_id = "AKIAUNKNOWNKEY000000".into();
    let mut wrong_session = Spec::new(emulator.config(), 1);
    wrong_session.identity.session_token = Some("another-session".into());
    let mut no_session = Spec::new(emulator.config(), 1);
    no_session.identity.session_token = None;
    for spec in [unknown, wrong_session, no_session] {
        assert_sts_error(
            &exchange(&emulator, &spec.token()).await,
            "invalid_grant",
            INVALID_CLIENT_TOKEN_ID,
        );
    }
}

#[tokio::test]
async fn wrong_or_missing_target_resource_is_invalid_grant() {
    let emulator = start(config()).await;
    let audience = emulator.config().audience();
    let mut spec = Spec::new(emulator.config(), 0);
    spec.target = audience.replace("aws-partner", "someone-else");
    let answer = exchange(&emulator, &spec.token()).await;
    assert_sts_error_starts(&answer, "invalid_grant", "The target resource ");
    let description = answer.json["error_description"].as_str().unwrap();
    assert!(
        description.ends_with(&format!("does not match the audience \"{audience}\".")),
        "{description}"
    );

    let missing = edit(&Spec::new(emulator.config(), 0).token(), |r| {
        remove_header(r, "x-goog-cloud-target-resource")
    });
    assert_sts_error_starts(
        &exchange(&emulator, &missing).await,
        "invalid_grant",
        "The subject token has no x-goog-cloud-target-resource header",
    );
}

#[tokio::test]
async fn clock_skew_beyond_fifteen_minutes_is_refused() {
    let emulator = start(config()).await;
    let mut spec = Spec::new(emulator.config(), 0);
    spec.time = NOW - Duration::from_secs(20 * 60);
    assert_sts_error(
        &exchange(&emulator, &spec.token()).await,
        "invalid_grant",
        "Received invalid AWS response of type SignatureDoesNotMatch with error message: \
         Signature expired: 20250601T114000Z is now earlier than 20250601T114500Z \
         (20250601T120000Z - 15 min.)",
    );
    spec.time = NOW + Duration::from_secs(20 * 60);
    assert_sts_error(
        &exchange(&emulator, &spec.token()).await,
        "invalid_grant",
        "Received invalid AWS response of type SignatureDoesNotMatch with error message: \
         Signature not yet current: 20250601T122000Z is still later than 20250601T121500Z \
         (20250601T120000Z + 15 min.)",
    );
    spec.time = NOW - Duration::from_secs(14 * 60);
    assert_eq!(
        exchange(&emulator, &spec.token()).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn credential_scope_must_match_the_url() {
    let emulator = start(config()).await;
    let token = Spec::new(emulator.config(), 0).token();
    let other_region = edit(&token, |r| {
        r["url"] = json!(
            "https://sts.us-west-2.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"
        );
        set_header(r, "host", "sts.us-west-2.amazonaws.com");
    });
    assert_sts_error(
        &exchange(&emulator, &other_region).await,
        "invalid_grant",
        "Received invalid AWS response of type SignatureDoesNotMatch with error message: \
         Credential should be scoped to a valid region.",
    );
    let not_sts = edit(&token, |r| {
        r["url"] = json!("https://s3.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15")
    });
    assert_sts_error_starts(
        &exchange(&emulator, &not_sts).await,
        "invalid_grant",
        "AWS request has invalid format",
    );
}

#[tokio::test]
async fn audience_misconfigurations() {
    let mut config = config();
    config.misconfig = vec![Misconfig::UnknownAudience];
    let emulator = start(config).await;
    let invalid_target = "The target service indicated by the \"audience\" parameters is invalid. \
        This might either be because the pool or provider is disabled or deleted or because it \
        doesn't exist.";
    let token = Spec::new(emulator.config(), 0).token();
    assert_sts_error(
        &exchange(&emulator, &token).await,
        "invalid_target",
        invalid_target,
    );

    let emulator = start(self::config()).await;
    let other_provider = emulator
        .config()
        .audience()
        .replace("/providers/aws", "/providers/gone");
    assert_sts_error(
        &exchange_with_audience(&emulator, &token, &other_provider).await,
        "invalid_target",
        invalid_target,
    );
    assert_sts_error_starts(
        &exchange_with_audience(&emulator, &token, "projects/123/providers/aws").await,
        "invalid_request",
        "Invalid value for \"audience\".",
    );
}

#[tokio::test]
async fn attribute_condition_rejections() {
    let words = "The given credential is rejected by the attribute condition.";
    let mut config = config();
    config.misconfig = vec![Misconfig::ConditionRejects];
    let emulator = start(config).await;
    let token = Spec::new(emulator.config(), 0).token();
    assert_sts_error(
        &exchange(&emulator, &token).await,
        "unauthorized_client",
        words,
    );

    let mut config = self::config();
    config.allowed_role_arn_prefixes = vec!["arn:aws:sts::111122223333:assumed-role/other/".into()];
    let emulator = start(config).await;
    assert_sts_error(
        &exchange(&emulator, &token).await,
        "unauthorized_client",
        words,
    );
}

#[tokio::test]
async fn form_fields_are_checked_and_named() {
    let emulator = start(config()).await;
    let token = Spec::new(emulator.config(), 0).token();
    let audience = emulator.config().audience();
    let full = [
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("audience", audience.as_str()),
        ("scope", "https://www.googleapis.com/auth/cloud-platform"),
        (
            "requested_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        ),
        (
            "subject_token_type",
            "urn:ietf:params:aws:token-type:aws4_request",
        ),
        ("subject_token", token.as_str()),
    ];
    for (i, (name, _)) in full.iter().enumerate() {
        let mut pairs = full.to_vec();
        pairs.remove(i);
        assert_sts_error(
            &sts_form(&emulator, form(&pairs)).await,
            "invalid_request",
            &format!("Missing required parameter: \"{name}\"."),
        );
    }
    let mut pairs = full.to_vec();
    pairs[4].1 = "urn:ietf:params:oauth:token-type:jwt";
    assert_sts_error_starts(
        &sts_form(&emulator, form(&pairs)).await,
        "invalid_request",
        "Invalid value for \"subject_token_type\".",
    );
    assert_eq!(
        sts_form(&emulator, form(&full)).await.status,
        StatusCode::OK
    );

    for garbage in [
        "",
        "not a token",
        "%7B%22url%22%3A1%7D",
        "%FF",
        "{\"url\": []}",
    ] {
        let mut pairs = full.to_vec();
        pairs[5].1 = if garbage.is_empty() { " " } else { garbage };
        assert_sts_error_starts(
            &sts_form(&emulator, form(&pairs)).await,
            "invalid_grant",
            "AWS request has invalid format: the subject token is not a valid serialized AWS \
             GetCallerIdentity request",
        );
    }
}

#[tokio::test]
async fn service_account_misconfigurations() {
    let cases = [
        (
            Misconfig::MissingWorkloadIdentityUser,
            403,
            "PERMISSION_DENIED",
            "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).",
        ),
        (
            Misconfig::ServiceAccountMissing,
            404,
            "NOT_FOUND",
            "Not found; Gaia id not found for email uploader@partner-project.iam.gserviceaccount.com",
        ),
        (
            Misconfig::ServiceAccountDisabled,
            400,
            "FAILED_PRECONDITION",
            "Service account uploader@partner-project.iam.gserviceaccount.com is disabled.",
        ),
    ];
    for (misconfig, code, status, message) in cases {
        let mut config = config();
        config.misconfig = vec![misconfig];
        let emulator = start(config).await;
        let federated = federated_token(&emulator).await;
        let answer = generate(&emulator, Some(&federated), SA, storage_request()).await;
        assert_google_error(&answer, code, status, message);
        if misconfig == Misconfig::MissingWorkloadIdentityUser {
            assert_eq!(
                answer.json["error"]["details"],
                json!([{
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "IAM_PERMISSION_DENIED",
                    "domain": "iam.googleapis.com",
                    "metadata": {"permission": "iam.serviceAccounts.getAccessToken"},
                }])
            );
        }
    }

    let emulator = start(config()).await;
    let federated = federated_token(&emulator).await;
    let other = "someone@partner-project.iam.gserviceaccount.com";
    assert_google_error(
        &generate(&emulator, Some(&federated), other, storage_request()).await,
        404,
        "NOT_FOUND",
        &format!("Not found; Gaia id not found for email {other}"),
    );
}

#[tokio::test]
async fn iam_needs_a_live_federated_token() {
    let emulator = start(config()).await;
    let missing = generate(&emulator, None, SA, storage_request()).await;
    assert_google_error(
        &missing,
        401,
        "UNAUTHENTICATED",
        "Request is missing required authentication credential. Expected OAuth 2 access token, \
         login cookie or other valid authentication credential. See \
         https://developers.google.com/identity/sign-in/web/devconsole-project.",
    );
    assert_eq!(
        missing.headers["www-authenticate"],
        "Bearer realm=\"https://accounts.google.com/\""
    );
    let invalid = "Request had invalid authentication credentials. Expected OAuth 2 access \
        token, login cookie or other valid authentication credential. See \
        https://developers.google.com/identity/sign-in/web/devconsole-project.";
    assert_google_error(
        &generate(&emulator, Some("ya29.bogus"), SA, storage_request()).await,
        401,
        "UNAUTHENTICATED",
        invalid,
    );

    // An access token issued by IAM is not a federated token.
    let federated = federated_token(&emulator).await;
    let answer = generate(&emulator, Some(&federated), SA, storage_request()).await;
    let access_token = answer.json["accessToken"].as_str().unwrap();
    assert_google_error(
        &generate(&emulator, Some(access_token), SA, storage_request()).await,
        401,
        "UNAUTHENTICATED",
        invalid,
    );

    emulator.set_now(Some(NOW + Duration::from_secs(3600)));
    let expired = generate(&emulator, Some(&federated), SA, storage_request()).await;
    assert_google_error(&expired, 401, "UNAUTHENTICATED", invalid);
    assert_eq!(
        expired.json["error"]["details"][0]["reason"],
        "ACCESS_TOKEN_EXPIRED"
    );
}

#[tokio::test]
async fn federated_token_scope_must_reach_iam() {
    let emulator = start(config()).await;
    let token = Spec::new(emulator.config(), 0).token();
    let audience = emulator.config().audience();
    let answer = sts_form(
        &emulator,
        form(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("audience", &audience),
            ("scope", STORAGE_SCOPE),
            (
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            (
                "subject_token_type",
                "urn:ietf:params:aws:token-type:aws4_request",
            ),
            ("subject_token", &token),
        ]),
    )
    .await;
    let federated = answer.json["access_token"].as_str().unwrap();
    assert_google_error(
        &generate(&emulator, Some(federated), SA, storage_request()).await,
        403,
        "PERMISSION_DENIED",
        "Request had insufficient authentication scopes.",
    );
}

#[tokio::test]
async fn lifetimes_and_scopes() {
    let emulator = start(config()).await;
    let federated = federated_token(&emulator).await;
    assert_google_error(
        &generate(
            &emulator,
            Some(&federated),
            SA,
            json!({"scope": [STORAGE_SCOPE], "lifetime": "7200s"}),
        )
        .await,
        400,
        "INVALID_ARGUMENT",
        "The lifetime 7200s exceeds the maximum allowed lifetime of 3600s. Set the organization \
         policy constraints/iam.allowServiceAccountCredentialLifetimeExtension to extend it.",
    );
    assert_google_error(
        &generate(&emulator, Some(&federated), SA, json!({"lifetime": "600s"})).await,
        400,
        "INVALID_ARGUMENT",
        "Scope required.",
    );
    let answer = generate(
        &emulator,
        Some(&federated),
        SA,
        json!({"scope": [STORAGE_SCOPE]}),
    )
    .await;
    assert_eq!(answer.json["expireTime"], "2025-06-01T13:00:00Z");
    let answer = generate(
        &emulator,
        Some(&federated),
        SA,
        json!({"scope": [STORAGE_SCOPE], "lifetime": "600s"}),
    )
    .await;
    assert_eq!(answer.json["expireTime"], "2025-06-01T12:10:00Z");

    let mut config = config();
    config.max_lifetime_seconds = 43_200;
    let emulator = start(config).await;
    let federated = federated_token(&emulator).await;
    let answer = generate(
        &emulator,
        Some(&federated),
        SA,
        json!({"scope": [STORAGE_SCOPE], "lifetime": "43200s"}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["expireTime"], "2025-06-02T00:00:00Z");
}

#[tokio::test]
async fn system_clock_by_default() {
    let mut config = config();
    config.now = None;
    let emulator = start(config).await;
    let mut spec = Spec::new(emulator.config(), 0);
    spec.time = OffsetDateTime::now_utc();
    let federated = exchange(&emulator, &spec.token()).await.json["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let answer = generate(&emulator, Some(&federated), SA, storage_request()).await;
    let expires =
        OffsetDateTime::parse(answer.json["expireTime"].as_str().unwrap(), &Rfc3339).unwrap();
    let lifetime = expires - OffsetDateTime::now_utc();
    assert!(
        (3590..=3600).contains(&lifetime.whole_seconds()),
        "{lifetime}"
    );
}

#[tokio::test]
async fn unknown_paths_and_methods_are_google_404s() {
    let emulator = start(config()).await;
    for (method, path) in [
        (Method::GET, "/v1/token"),
        (Method::POST, "/v1/tokens"),
        (Method::POST, "/"),
        (
            Method::POST,
            "/v1/projects/-/serviceAccounts/a@b:generateIdToken",
        ),
        (
            Method::GET,
            "/v1/projects/-/serviceAccounts/a@b:generateAccessToken",
        ),
    ] {
        let answer = send(&emulator, method, "sts.googleapis.com", path, &[], "").await;
        assert_google_error(&answer, 404, "NOT_FOUND", "Method not found.");
    }
}

#[tokio::test]
async fn hostile_bodies_are_answered_not_crashed_on() {
    let emulator = start(config()).await;
    let huge = vec![b'a'; (1 << 20) + 1];
    let answer = send(
        &emulator,
        Method::POST,
        "sts.googleapis.com",
        "/v1/token",
        &[],
        huge,
    )
    .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);

    // Chunked, so the size is only known while reading.
    let mut stream = tokio::net::TcpStream::connect(emulator.addr())
        .await
        .unwrap();
    let (mut reader, mut writer) = stream.split();
    let write = async {
        writer
            .write_all(
                b"POST /v1/token HTTP/1.1\r\nhost: sts.googleapis.com\r\ntransfer-encoding: chunked\r\n\r\n",
            )
            .await?;
        let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "a".repeat(64 * 1024));
        for _ in 0..20 {
            writer.write_all(chunk.as_bytes()).await?;
        }
        writer.write_all(b"0\r\n\r\n").await
    };
    let mut response = Vec::new();
    let (_, read) = tokio::join!(write, reader.read_to_end(&mut response));
    // The server may hang up before reading all; what it wrote first is the answer.
    let _ = read;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 413 "), "{response}");
    drop(stream);

    let not_utf8: &[u8] = b"grant_type=\xff\xfe&subject_token=%FF%FE%00";
    let answer = send(
        &emulator,
        Method::POST,
        "sts.googleapis.com",
        "/v1/token",
        &[],
        Bytes::from_static(not_utf8),
    )
    .await;
    assert_eq!(answer.json["error"], "invalid_request");
    let answer = send(
        &emulator,
        Method::POST,
        "iamcredentials.googleapis.com",
        &format!("/v1/projects/-/serviceAccounts/{SA}:generateAccessToken"),
        &[("authorization", "Bearer x")],
        Bytes::from_static(b"\xff\xfe"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);

    // Still serving.
    assert_eq!(
        exchange(&emulator, &Spec::new(emulator.config(), 0).token())
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_log_counts_requests_per_endpoint() {
    let emulator = start(config()).await;
    let federated = federated_token(&emulator).await;
    let mut unknown = Spec::new(emulator.config(), 0);
    unknown.identity.access_key_id = "AKIAUNKNOWNKEY000000".into();
    exchange(&emulator, &unknown.token()).await;
    generate(&emulator, Some(&federated), SA, storage_request()).await;
    generate(&emulator, None, SA, storage_request()).await;
    send(&emulator, Method::GET, "sts.googleapis.com", "/x", &[], "").await;

    assert_eq!(emulator.count(Endpoint::Sts), 2);
    assert_eq!(emulator.count(Endpoint::Iam), 2);
    assert_eq!(emulator.count(Endpoint::Other), 1);
    let log = emulator.log();
    let summary: Vec<(Endpoint, u16)> = log.iter().map(|e| (e.endpoint, e.status)).collect();
    assert_eq!(
        summary,
        [
            (Endpoint::Sts, 200),
            (Endpoint::Sts, 400),
            (Endpoint::Iam, 200),
            (Endpoint::Iam, 401),
            (Endpoint::Other, 404),
        ]
    );
    assert_eq!(
        log[0].outcome,
        "federated token issued to arn:aws:sts::111122223333:assumed-role/wif-push-sender/session"
    );
    assert!(
        log[1].outcome.contains("InvalidClientTokenId"),
        "{}",
        log[1].outcome
    );
    // Tokens never reach the log.
    let printed = format!("{log:?}");
    assert!(!printed.contains(&federated), "{printed}");
}

#[tokio::test]
async fn dropping_the_emulator_stops_it() {
    let emulator = start(config()).await;
    let addr = emulator.addr();
    drop(emulator);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn incomplete_signatures_get_aws_words() {
    let emulator = start(config()).await;
    let token = Spec::new(emulator.config(), 0).token();
    let aws = |code: &str, message: &str| {
        format!("Received invalid AWS response of type {code} with error message: {message}")
    };
    let rewrite_authorization = |from: &str, to: &str| {
        edit(&token, |r| {
            for header in r["headers"].as_array_mut().unwrap() {
                if header["key"] == "authorization" {
                    header["value"] = json!(header["value"].as_str().unwrap().replace(from, to));
                }
            }
        })
    };
    let cases = [
        (
            edit(&token, |r| remove_header(r, "authorization")),
            aws(
                "MissingAuthenticationToken",
                "Request is missing Authentication Token",
            ),
        ),
        (
            edit(&token, |r| remove_header(r, "x-amz-date")),
            aws(
                "IncompleteSignature",
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
            ),
        ),
        (
            rewrite_authorization(", Signature=", ", Sig="),
            aws(
                "IncompleteSignature",
                "Authorization header requires 'Signature' parameter.",
            ),
        ),
        (
            rewrite_authorization("/20250601/", "/20250602/"),
            aws(
                "SignatureDoesNotMatch",
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
                 from HTTP: '20250602' != '20250601', from '20250601T120000Z'.",
            ),
        ),
        (
            rewrite_authorization("/sts/aws4_request", "/s3/aws4_request"),
            aws(
                "SignatureDoesNotMatch",
                "Credential should be scoped to correct service: 'sts'.",
            ),
        ),
    ];
    for (token, description) in cases {
        assert_sts_error(
            &exchange(&emulator, &token).await,
            "invalid_grant",
            &description,
        );
    }
}
