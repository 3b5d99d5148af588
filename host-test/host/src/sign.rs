//! `host-test sign`: a JSON request on stdin, signed inside the component, a JSON signature on
//! stdout. The JSON shapes are the CLI contract; the component's WIT types stay internal.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::runtime::wasi::clocks::wall_clock::Datetime;
use crate::runtime::{SignRequest, sigv4 as wit};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInput {
    method: String,
    url: String,
    #[serde(default)]
    headers: Headers,
    /// The body as UTF-8 text; or give `payload_sha256` instead.
    body: Option<String>,
    payload_sha256: Option<String>,
    #[serde(default)]
    unsigned_payload: bool,
    region: String,
    service: String,
    /// RFC 3339; now when absent.
    time: Option<String>,
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    #[serde(default)]
    placement: Placement,
    #[serde(default = "default_expires_in")]
    expires_in: u32,
    #[serde(default = "yes")]
    normalize_path: bool,
    #[serde(default = "yes")]
    double_uri_encode: bool,
    #[serde(default)]
    session_token_after_signing: bool,
    #[serde(default)]
    content_sha256_header: bool,
}

fn default_expires_in() -> u32 {
    3600
}

fn yes() -> bool {
    true
}

/// `{"name": "value"}`, or `[["name", "value"], ...]` when a name repeats.
#[derive(Deserialize, Default)]
#[serde(untagged)]
enum Headers {
    #[default]
    None,
    Map(BTreeMap<String, String>),
    List(Vec<(String, String)>),
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Placement {
    #[default]
    Header,
    Query,
}

#[derive(Serialize)]
pub struct SignOutput {
    url: String,
    authorization: Option<String>,
    x_amz_date: String,
    signed_headers: String,
    credential_scope: String,
    canonical_request: String,
    string_to_sign: String,
    signature: String,
    /// Headers to add to the request, in order.
    headers: Vec<(String, String)>,
}

impl SignInput {
    pub fn parse(json: &str) -> Result<Self> {
        serde_json::from_str(json).context("the request on stdin is not valid sign JSON")
    }

    pub fn into_wit(self) -> Result<SignRequest> {
        let payload = match (self.body, self.payload_sha256, self.unsigned_payload) {
            (Some(body), None, false) => wit::Payload::Bytes(body.into_bytes()),
            (None, Some(hash), false) => wit::Payload::Sha256Hex(hash),
            (None, None, true) => wit::Payload::Unsigned,
            (None, None, false) => wit::Payload::Bytes(Vec::new()),
            _ => bail!("give at most one of body, payload_sha256 and unsigned_payload"),
        };
        let time = self.time.as_deref().map(parse_time).transpose()?;
        let headers = match self.headers {
            Headers::None => Vec::new(),
            Headers::Map(map) => map.into_iter().collect(),
            Headers::List(list) => list,
        };
        Ok(SignRequest(wit::Request {
            method: self.method,
            url: self.url,
            headers,
            payload,
            region: self.region,
            service: self.service,
            time,
            credentials: wit::Credentials {
                access_key_id: self.access_key_id,
                secret_access_key: self.secret_access_key,
                session_token: self.session_token,
            },
            settings: wit::Settings {
                placement: match self.placement {
                    Placement::Header => wit::Placement::Header,
                    Placement::Query => wit::Placement::Query,
                },
                expires_in_seconds: self.expires_in,
                normalize_path: self.normalize_path,
                double_uri_encode: self.double_uri_encode,
                session_token_mode: if self.session_token_after_signing {
                    wit::SessionTokenMode::AddedAfterSigning
                } else {
                    wit::SessionTokenMode::Signed
                },
                content_sha256_header: self.content_sha256_header,
            },
        }))
    }
}

/// An RFC 3339 time as the component takes it.
pub fn parse_time(text: &str) -> Result<Datetime> {
    let t = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
        anyhow::anyhow!(
            "time {text:?} is not an RFC 3339 timestamp: expected e.g. \"2015-08-30T12:36:00Z\""
        )
    })?;
    let seconds = u64::try_from(t.unix_timestamp())
        .map_err(|_| anyhow::anyhow!("time {text:?} is before 1970"))?;
    Ok(Datetime {
        seconds,
        nanoseconds: t.nanosecond(),
    })
}

impl From<wit::Signed> for SignOutput {
    fn from(s: wit::Signed) -> Self {
        SignOutput {
            url: s.url,
            authorization: s.authorization,
            x_amz_date: s.x_amz_date,
            signed_headers: s.signed_headers,
            credential_scope: s.credential_scope,
            canonical_request: s.canonical_request,
            string_to_sign: s.string_to_sign,
            signature: s.signature,
            headers: s.headers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sign_request_never_shows_its_credentials() {
        let json = r#"{"method":"GET","url":"https://sts.amazonaws.com/","region":"us-east-1",
            "service":"sts","access_key_id":"AKIDEXAMPLE","secret_access_key":"canary-secret",
            "session_token":"canary-session"}"#;
        let request = SignInput::parse(json).unwrap().into_wit().unwrap();
        let shown = format!("{request:?}");
        assert!(!shown.contains("canary"), "{shown}");
        assert!(shown.contains("https://sts.amazonaws.com/"), "{shown}");
    }
}
