//! STS and IAM Credentials over HTTP: subject tokens signed by aws-sigv4 ([`Spec`]), the token
//! exchange, `generateAccessToken`, and their answers.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;
use wif_push_emulator::{AwsIdentity, Emulator, EmulatorConfig};

use super::gcs::{bytes, try_send_to};

pub const NOW: OffsetDateTime = datetime!(2025-06-01 12:00:00 UTC);
pub const STORAGE_SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_write";

pub fn config() -> EmulatorConfig {
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

/// What to sign; each test changes one thing from [`Spec::new`].
#[derive(Clone)]
pub struct Spec {
    pub identity: AwsIdentity,
    pub region: &'static str,
    pub time: OffsetDateTime,
    pub target: String,
    pub sign_target: bool,
}

impl Spec {
    pub fn new(config: &EmulatorConfig, identity: usize) -> Self {
        Spec {
            identity: config.identities[identity].clone(),
            region: "eu-west-1",
            time: NOW,
            target: config.audience(),
            sign_target: true,
        }
    }

    /// The subject token as google-auth writes it, signed by aws-sigv4.
    pub fn token(&self) -> String {
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

pub fn encode(request: &Value) -> String {
    utf8_percent_encode(&request.to_string(), NON_ALPHANUMERIC).to_string()
}

/// Decodes a subject token, lets `change` edit it, and encodes it again.
pub fn edit(token: &str, change: impl FnOnce(&mut Value)) -> String {
    let mut request: Value =
        serde_json::from_str(&percent_decode_str(token).decode_utf8().unwrap()).unwrap();
    change(&mut request);
    encode(&request)
}

pub fn set_header(request: &mut Value, name: &str, value: &str) {
    for header in request["headers"].as_array_mut().unwrap() {
        if header["key"].as_str().unwrap().eq_ignore_ascii_case(name) {
            header["value"] = json!(value);
        }
    }
}

pub fn remove_header(request: &mut Value, name: &str) {
    request["headers"]
        .as_array_mut()
        .unwrap()
        .retain(|h| !h["key"].as_str().unwrap().eq_ignore_ascii_case(name));
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
}

pub async fn send(
    emulator: &Emulator,
    method: Method,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Answer {
    let answer = try_send_to(emulator, method, host, path, headers, bytes(body))
        .await
        .unwrap();
    let body = answer.body;
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)));
    Answer {
        status: answer.status,
        headers: answer.headers,
        json,
    }
}

pub fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

pub async fn sts_form(emulator: &Emulator, body: String) -> Answer {
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

pub async fn exchange_with_audience(emulator: &Emulator, token: &str, audience: &str) -> Answer {
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

pub async fn exchange(emulator: &Emulator, token: &str) -> Answer {
    exchange_with_audience(emulator, token, &emulator.config().audience()).await
}

/// Asserts an STS error answer: 400, `{"error", "error_description"}`.
pub fn assert_sts_error(answer: &Answer, error: &str, description: &str) {
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.json);
    assert_eq!(
        answer.json,
        json!({"error": error, "error_description": description})
    );
}

pub fn assert_sts_error_starts(answer: &Answer, error: &str, start: &str) {
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.json);
    assert_eq!(answer.json["error"], error, "{}", answer.json);
    let description = answer.json["error_description"].as_str().unwrap();
    assert!(description.starts_with(start), "{description}");
}

pub async fn federated_token(emulator: &Emulator) -> String {
    let answer = exchange(emulator, &Spec::new(emulator.config(), 0).token()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    answer.json["access_token"].as_str().unwrap().to_owned()
}

pub async fn generate(
    emulator: &Emulator,
    bearer: Option<&str>,
    email: &str,
    body: Value,
) -> Answer {
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

pub fn storage_request() -> Value {
    json!({"scope": [STORAGE_SCOPE], "lifetime": "3600s"})
}

pub fn assert_google_error(answer: &Answer, code: u16, status: &str, message: &str) {
    assert_eq!(answer.status.as_u16(), code, "{}", answer.json);
    assert_eq!(answer.json["error"]["code"], code);
    assert_eq!(answer.json["error"]["status"], status);
    assert_eq!(answer.json["error"]["message"], message);
}
