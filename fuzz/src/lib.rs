//! The checks behind the fuzz targets, one per surface where outside input enters wif-push. The
//! fuzz targets (`fuzz_targets/`) run them under libFuzzer; `tests/fuzz_corpus.rs` includes this
//! file and replays every committed corpus input through them on stable Rust.
//!
//! Each check panics when a property fails:
//! - nothing panics on any input (what libFuzzer catches by itself);
//! - an error reads as one line that names the field or step at fault: no line break, and no
//!   Rust debug notation (`Some(`, `None`, `Ok(`, `Err(`) unless the input itself holds it (a
//!   value quoted back); a `ConfigError` names a field;
//! - what is accepted works where it goes next: a validated destination builds every request
//!   of the flow and signs its subject token, settings read back from their variables, a
//!   region is a region, an accepted object name is one Cloud Storage takes, a signed request
//!   has a valid URL and headers.
//!
//! Inputs are text, so seeds are written by hand (README.md, Fuzzing):
//! - `NAME=VALUE` lines, a line starting with a space or a tab continuing the value above;
//! - HTTP answers, each `=== STATUS`, header lines, an empty line, the body.

use std::collections::VecDeque;
use std::time::Duration;

use time::OffsetDateTime;
use time::macros::datetime;
use wif_push::aws;
use wif_push::config::environment;
use wif_push::config::{AwsEndpoints, ConfigError, Destination, Settings};
use wif_push::delivery::{self, json_api};
use wif_push::error::Error;
use wif_push::io::{Io, Response, TransportError, TransportErrorKind};
use wif_push::s3;
use wif_push::secret::Secret;
use wif_push::sidecar::{self, Answer, Route};
use wif_push::sigv4::{
    self, Credentials, PayloadChecksumHeader, PercentEncodingMode, SignableBody, SignatureLocation,
    SigningKeyCache, SigningParams, SigningSettings, UriPathNormalization,
};
use wif_push::wif::subject_token::{TargetResource, subject_token};
use wif_push::wif::token::TokenSource;
use wif_push::wif::{iam, sts};

/// A check: one input, panicking when a property fails.
pub type Check = fn(&[u8]);

/// Every target: its name (of the fuzz binary and of its corpus folder) and its check.
pub const TARGETS: &[(&str, Check)] = &[
    ("dest_settings", dest_settings),
    ("credential_config", credential_config),
    ("environment", environment),
    ("aws_answers", aws_answers),
    ("google_answers", google_answers),
    ("sidecar_requests", sidecar_requests),
    ("sigv4_inputs", sigv4_inputs),
    ("aws_xml", aws_xml),
    ("aws_profiles", aws_profiles),
];

const SERVICE_ACCOUNT: &str = "uploader@partner.iam.gserviceaccount.com";
const NOW: OffsetDateTime = datetime!(2026-11-26 12:00:00 UTC);
/// A credential configuration without impersonation: the STS token itself uploads.
const DIRECT_ACCESS: &str = r#"{"type": "external_account",
  "audience": "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider",
  "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
  "credential_source": {"environment_id": "aws1"}}"#;

/// DEST.toml as host-test reads it: TOML, a table, [`Settings::from_value`], the credential
/// configuration read (no file can be here), then [`Destination::from_settings`]. The settings
/// also travel as the sidecar's variables (`host-test serve`) and must read back the same.
pub fn dest_settings(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(table) = toml::from_str::<toml::Table>(text) else {
        return;
    };
    let Ok(value) = serde_json::to_value(table) else {
        return;
    };
    let mut settings = match Settings::from_value(value, "DEST.toml") {
        Ok(settings) => settings,
        Err(e) => return config_error(&e, data),
    };
    if let Err(e) = settings.read_credential_config(&no_file) {
        return config_error(&e, data);
    }
    let vars = environment::variables(None, &settings);
    match environment::settings(None, &lookup(&vars)) {
        Ok((back, _)) => assert_eq!(back, settings, "the settings changed through {vars:?}"),
        Err(e) => panic!("the settings do not read back from {vars:?}: {e}"),
    }
    validated(&settings, data);
}

/// The gcloud `external_account` JSON as `credential_config`, with a bucket, alone and with a
/// service account and lifetime beside it.
pub fn credential_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let alone = Settings {
        credential_config: Some(text.to_owned()),
        bucket: Some("partner-inbox".into()),
        ..Default::default()
    };
    validated(&alone, data);
    let beside = Settings {
        service_account: Some(SERVICE_ACCOUNT.into()),
        token_lifetime_seconds: Some(900),
        ..alone
    };
    validated(&beside, data);
}

/// The sidecar's environment (`NAME=VALUE` lines): the settings of the default destination
/// and of one named `partner-a`, the destination list, and the sidecar's destinations with
/// their health answer.
pub fn environment(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let vars = entries(&text);
    let lookup = lookup(&vars);
    for id in [None, Some("partner-a")] {
        match environment::settings(id, &lookup) {
            Ok((settings, set_by)) => {
                let again = environment::variables(id, &settings);
                let back = environment::settings(id, &self::lookup(&again));
                assert_eq!(
                    back.map(|(s, _)| s).as_ref(),
                    Ok(&settings),
                    "the settings changed through {again:?}"
                );
                for key in wif_push::config::settings::keys() {
                    assert!(!set_by.variable(&key).is_empty(), "{key} has no variable");
                }
            }
            Err(e) => config_error(&e, data),
        }
    }
    if let Err(e) = environment::destination_ids(&lookup) {
        config_error(&e, data);
    }
    match sidecar::destinations(&lookup, &no_file) {
        Ok(destinations) => {
            for (id, destination) in &destinations {
                assert!(!id.is_empty());
                match destination {
                    Ok(destination) => works(destination, data),
                    Err(e) => error(e, data),
                }
            }
            answer_is_json(&Answer::health(Ok(&destinations)));
        }
        Err(e) => {
            error(&e, data);
            answer_is_json(&Answer::health(Err(&e)));
            answer(&Answer::failed(&e), data);
        }
    }
}

/// The AWS endpoints' answers: `NAME=VALUE` lines (the environment), then the answers, given
/// in order to whatever is asked (the container endpoint, the IMDSv2 token, the role, the
/// credentials, the availability zone). The credential chain and the region run over them,
/// with and without the IMDSv1 fallback.
pub fn aws_answers(data: &[u8]) {
    let (preamble, answers) = answers(data);
    let text = String::from_utf8_lossy(preamble);
    let env = entries(&text);
    let endpoints = AwsEndpoints {
        region_url: Some(wif_push::config::DEFAULT_IMDS_REGION_URL.into()),
        credentials_url: Some(wif_push::config::DEFAULT_IMDS_CREDENTIALS_URL.into()),
        cred_verification_url: wif_push::config::DEFAULT_CRED_VERIFICATION_URL.into(),
        imdsv2_session_token_url: Some(wif_push::config::DEFAULT_IMDSV2_SESSION_TOKEN_URL.into()),
    };
    for v1_fallback in [false, true] {
        let mut io = ScriptedIo::new(&env, answers.clone());
        let found = aws::credentials(&mut io, &endpoints, v1_fallback);
        // The credentials endpoint's answer is never quoted: neither its Debug nor an error
        // shows its keys.
        let shown = match &found {
            Ok(credentials) => format!("{credentials:?}"),
            Err(e) => {
                error(e, data);
                e.to_string()
            }
        };
        for secret in secrets_in(io.credentials_answer.as_deref().unwrap_or_default()) {
            assert!(!shown.contains(&secret), "a secret is shown: {shown}");
        }
        io.check_log(data);
        let mut io = ScriptedIo::new(&env, answers.clone());
        match aws::region(&mut io, None, &endpoints, v1_fallback) {
            Ok(region) => {
                if let Err(e) = wif_push::config::validate_region("region", &region) {
                    panic!("the region found is not a region: {e}");
                }
            }
            Err(e) => error(&e, data),
        }
        io.check_log(data);
    }
}

/// Google's answers: each through the STS, IAM Credentials and Cloud Storage parsers, then all
/// of them in order as the answers to a whole delivery (token exchange, impersonation, upload),
/// of a small object in one request and of a stream through a resumable session, and to the
/// doctor's checklist.
pub fn google_answers(data: &[u8]) {
    let (_, answers) = answers(data);
    let name = "incoming/reports/2026-11-26.csv";
    for reply in &answers {
        let response = &reply.response();
        match sts::parse(response) {
            Ok(token) => assert!(token.access_token.is_header_safe()),
            Err(e) => error(&e, data),
        }
        match iam::parse(response, SERVICE_ACCOUNT) {
            Ok((token, _)) => assert!(token.is_header_safe()),
            Err(e) => error(&e, data),
        }
        if let Err(e) = json_api::session_state(response, name) {
            error(&e, data);
        }
        if let Err(e) = json_api::object(response, name) {
            error(&e, data);
        }
        error(&json_api::upload_error(response, name), data);
    }
    let upload = Settings {
        single_request_limit: Some(64),
        chunk_size: Some(json_api::QUANTUM),
        initial_retry_delay_ms: Some(1),
        ..facts()
    };
    // Through a service account, and with the STS token itself (no impersonation URL).
    let direct = Settings {
        credential_config: Some(DIRECT_ACCESS.into()),
        bucket: upload.bucket.clone(),
        single_request_limit: upload.single_request_limit,
        chunk_size: upload.chunk_size,
        initial_retry_delay_ms: upload.initial_retry_delay_ms,
        ..Settings::default()
    };
    let env = [
        (
            "AWS_ACCESS_KEY_ID".to_owned(),
            "AKIAIOSFODNN7EXAMPLE".to_owned(),
        ),
        (
            "AWS_SECRET_ACCESS_KEY".to_owned(),
            "wJalrXUtnFEMI/K7MDENG".to_owned(),
        ),
        ("AWS_REGION".to_owned(), "eu-west-1".to_owned()),
    ];
    let body = b"id,total\n1,2\n";
    for (settings, size) in [
        (&upload, Some(body.len() as u64)),
        (&upload, None),
        (&direct, Some(body.len() as u64)),
    ] {
        let destination = Destination::from_settings(settings).expect("a valid destination");
        let spec = delivery::object_spec(&destination, "reports/2026-11-26.csv", size, None, []);
        let mut io = ScriptedIo::new(&env, answers.clone());
        let mut tokens = TokenSource::default();
        match delivery::deliver(&mut io, &mut tokens, &destination, &spec, &mut &body[..]) {
            Ok(receipt) => assert_eq!(receipt.size, body.len() as u64),
            Err(e) => error(&e, data),
        }
        io.check_log(data);
        // The same answers to the doctor (clock, GetCallerIdentity, exchange, impersonation,
        // handshake): every line of its checklist is one line, and no key shows.
        let mut io = ScriptedIo::new(&env, answers.clone());
        let report = wif_push::doctor::run(&mut io, &mut TokenSource::default(), Ok(&destination));
        for check in &report.checks {
            one_line("a checklist line", &check.saw, data);
            one_line("a fix", check.fix.as_deref().unwrap_or_default(), data);
        }
        let json = serde_json::to_string(&report).expect("reports serialize");
        assert!(!json.contains("wJalrXUtnFEMI/K7MDENG"), "{json}");
        assert_eq!(report.passed, report.receipt.is_some());
        io.check_log(data);
    }
}

/// A request to the sidecar: `METHOD PATH`, then header lines. The route, the object name and
/// the object's settings from the headers (as wasi:http hands them over: a valid method, valid
/// header names and values).
pub fn sidecar_requests(data: &[u8]) {
    let mut lines = data.split(|b| *b == b'\n');
    let Ok(first) = std::str::from_utf8(lines.next().unwrap_or_default()) else {
        return;
    };
    let (method, path) = first.split_once(' ').unwrap_or((first, ""));
    if http::Method::from_bytes(method.as_bytes()).is_err() {
        return;
    }
    match sidecar::route(method, path) {
        Ok(Route::Deliver { destination, name }) => {
            assert!(destination.is_none_or(|id| !id.is_empty()));
            accepted_name(&name);
        }
        Ok(_) => {}
        Err(refusal) => answer(&refusal, data),
    }
    match sidecar::object_name(path.trim_start_matches('/')) {
        Ok(name) => accepted_name(&name),
        Err(problem) => one_line("the refusal", &problem, data),
    }
    let headers: Vec<(&str, &[u8])> = lines
        .filter_map(|line| {
            let colon = line.iter().position(|b| *b == b':')?;
            let name = std::str::from_utf8(&line[..colon]).ok()?;
            let value = line[colon + 1..].trim_ascii_start();
            http::HeaderName::from_bytes(name.as_bytes()).ok()?;
            http::HeaderValue::from_bytes(value).ok()?;
            Some((name, value))
        })
        .collect();
    match sidecar::object_from_headers(headers) {
        Ok(object) => {
            let bytes: usize = object.metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
            assert!(bytes <= 8 * 1024, "{bytes} bytes of metadata accepted");
            let destination = Destination::from_settings(&facts()).expect("the facts are valid");
            let spec = delivery::object_spec(
                &destination,
                "a.csv",
                object.size,
                object.content_type,
                object.metadata,
            );
            // Both upload kinds carry the content type and the metadata.
            let token = Secret::new("ya29.token");
            json_api::start_resumable(&destination.storage_url, "b", &spec, &token);
            json_api::multipart(&destination.storage_url, "b", &spec, b"", "", "", &token);
        }
        Err(refusal) => answer(&refusal, data),
    }
}

/// A request to sign: `METHOD URL`, `REGION SERVICE`, header lines, an empty line, the body.
/// Signed in headers (every service but S3) and presigned as S3 signs, with a session token.
pub fn sigv4_inputs(data: &[u8]) {
    let (head, body) = split_head(data);
    let Ok(head) = std::str::from_utf8(head) else {
        return;
    };
    let mut lines = head.split('\n');
    let first = lines.next().unwrap_or("");
    let (method, url) = first.split_once(' ').unwrap_or((first, ""));
    let second = lines.next().unwrap_or("");
    let (region, service) = second.split_once(' ').unwrap_or((second, ""));
    let headers: Vec<(&str, &str)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name, value.trim_start()))
        .collect();
    match sigv4::split_url(url) {
        Ok((host, path_and_query)) => {
            assert!(!host.is_empty());
            assert!(path_and_query.starts_with('/'), "{path_and_query:?}");
        }
        Err(e) => one_line("the signing error", &e.to_string(), data),
    }
    let credentials = Credentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        session_token: Some(Secret::new("IQoJb3JpZ2luX2VjEXAMPLE")),
    };
    let s3 = SigningSettings {
        signature_location: SignatureLocation::QueryParams { expires_in: 900 },
        percent_encoding_mode: PercentEncodingMode::Single,
        uri_path_normalization: UriPathNormalization::Disabled,
        payload_checksum_header: PayloadChecksumHeader::Add,
        ..SigningSettings::default()
    };
    let keys = SigningKeyCache::new();
    for (settings, body) in [
        (SigningSettings::default(), SignableBody::Bytes(body)),
        (s3, SignableBody::UnsignedPayload),
    ] {
        let params = SigningParams {
            credentials: &credentials,
            region,
            service,
            time: NOW,
            settings,
        };
        match sigv4::sign_url(method, url, &headers, body, &params, Some(&keys)) {
            Ok((signed_url, out)) => {
                let uri = signed_url.parse::<http::Uri>();
                assert!(uri.is_ok(), "the signed URL {signed_url:?} is not a URL");
                for (name, value) in &out.headers {
                    assert!(
                        http::HeaderName::from_bytes(name.as_bytes()).is_ok(),
                        "{name:?}"
                    );
                    assert!(http::HeaderValue::from_str(value).is_ok(), "{value:?}");
                }
                if settings.signature_location == SignatureLocation::Headers {
                    assert!(out.authorization().is_some());
                }
            }
            Err(e) => one_line("the signing error", &e.to_string(), data),
        }
    }
}

/// The five facts of the README's example destination.
fn facts() -> Settings {
    Settings {
        project_number: Some("123456789012".into()),
        pool_id: Some("aws-pool".into()),
        provider_id: Some("aws-provider".into()),
        service_account: Some(SERVICE_ACCOUNT.into()),
        bucket: Some("partner-inbox".into()),
        prefix: Some("incoming/".into()),
        ..Default::default()
    }
}

/// [`Destination::from_settings`]: its error, or what the destination must do.
fn validated(settings: &Settings, input: &[u8]) {
    match Destination::from_settings(settings) {
        Ok(destination) => works(&destination, input),
        Err(e) => config_error(&e, input),
    }
}

/// A validated destination builds every request of the flow (each builder insists its URL was
/// validated) and signs its subject token; its AWS endpoints are asked without a panic.
fn works(destination: &Destination, input: &[u8]) {
    let federation = &destination.federation;
    sts::request(
        &federation.token_url,
        &federation.audience,
        &Secret::new("t"),
    );
    if let Some(url) = &federation.impersonation_url {
        iam::request(url, &Secret::new("f"), federation.token_lifetime_seconds);
    }
    let spec = delivery::object_spec(destination, "a.csv", Some(1), None, []);
    if json_api::validate_name(&spec.name).is_ok() {
        let token = Secret::new("ya29.token");
        json_api::start_resumable(&destination.storage_url, &destination.bucket, &spec, &token);
        json_api::multipart(
            &destination.storage_url,
            &destination.bucket,
            &spec,
            b"x",
            "",
            "",
            &token,
        );
    }
    let credentials = Credentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: Secret::new("secret"),
        session_token: Some(Secret::new("session")),
    };
    let keys = SigningKeyCache::new();
    for target in [TargetResource::Signed, TargetResource::Unsigned] {
        let signed = subject_token(&credentials, "eu-west-1", destination, NOW, target, &keys);
        if let Err(e) = signed {
            panic!("a validated destination does not sign its subject token: {e}");
        }
    }
    let metadata = |request: &http::Request<()>| {
        let path = request.uri().path();
        let body: &[u8] = if request.method() == http::Method::PUT {
            b"imds-session-token"
        } else if path.ends_with("/fuzz-role") {
            br#"{"Code":"Success","AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"s","Token":"t","Expiration":"2026-11-26T18:00:00Z"}"#
        } else if path.contains("placement") {
            b"eu-west-1a"
        } else {
            b"fuzz-role"
        };
        Ok(http::Response::new(body.to_vec()))
    };
    let aws = &federation.aws;
    let mut io = ScriptedIo::answering(&[], Box::new(metadata));
    if let Err(e) = aws::credentials(&mut io, aws, destination.imds_v1_fallback) {
        error(&e, input);
    }
    if let Err(e) = aws::region(&mut io, None, aws, destination.imds_v1_fallback) {
        error(&e, input);
    }
}

/// An object name the sidecar accepted is one Cloud Storage takes.
fn accepted_name(name: &str) {
    if let Err(e) = json_api::validate_name(name) {
        panic!("the sidecar accepted {name:?}, which Cloud Storage refuses: {e}");
    }
}

fn config_error(e: &ConfigError, input: &[u8]) {
    assert!(
        !e.field.trim().is_empty(),
        "a configuration error names no field: {e}"
    );
    assert!(!e.problem.is_empty() && !e.fix.is_empty(), "{e:?}");
    one_line("the configuration error", &e.to_string(), input);
}

fn error(e: &Error, input: &[u8]) {
    assert!(!e.message.is_empty(), "{e:?}");
    one_line("the error", &e.to_string(), input);
}

/// A refusal: a client error whose JSON body's message reads as one line.
fn answer(refusal: &Answer, input: &[u8]) {
    assert!((400..600).contains(&refusal.status), "{refusal:?}");
    let body = answer_is_json(refusal);
    let message = body["error"]["message"]
        .as_str()
        .expect("a refusal has a message");
    one_line("the refusal", message, input);
}

fn answer_is_json(answer: &Answer) -> serde_json::Value {
    serde_json::from_str(&answer.body).expect("answers are JSON")
}

/// `text` reads as one line without Rust's debug notation, unless `input` holds it.
fn one_line(what: &str, text: &str, input: &[u8]) {
    assert!(!text.contains(['\n', '\r']), "{what} spans lines: {text:?}");
    for noise in ["Some(", "None", "Ok(", "Err("] {
        if text.contains(noise) {
            let quoted = input.windows(noise.len()).any(|w| w == noise.as_bytes());
            assert!(quoted, "{what} shows {noise}: {text:?}");
        }
    }
}

/// The values of `SecretAccessKey` and `Token` in a credentials answer, when they occur once
/// (a value repeated elsewhere, as a code or message, may be quoted as that).
fn secrets_in(body: &[u8]) -> Vec<String> {
    let Ok(serde_json::Value::Object(doc)) = serde_json::from_slice(body) else {
        return Vec::new();
    };
    ["SecretAccessKey", "Token"]
        .into_iter()
        .filter_map(|key| doc.get(key)?.as_str())
        .filter(|secret| secret.len() >= 8)
        .filter(|secret| {
            let times = body
                .windows(secret.len())
                .filter(|w| *w == secret.as_bytes());
            times.count() == 1
        })
        .map(str::to_owned)
        .collect()
}

/// No file can be read here (the error says so as the standard library's does).
fn no_file(_path: &str) -> std::io::Result<String> {
    Err(std::io::ErrorKind::NotFound.into())
}

/// A lookup over `vars`, the last of a name winning.
fn lookup(vars: &[(String, String)]) -> impl Fn(&str) -> Option<String> + '_ {
    |name| {
        vars.iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }
}

/// `NAME=VALUE` lines; a line starting with a space or a tab continues the value above.
fn entries(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.split('\n') {
        if let Some(rest) = line.strip_prefix([' ', '\t']) {
            if let Some((_, value)) = out.last_mut() {
                value.push('\n');
                value.push_str(rest);
            }
        } else if let Some((name, value)) = line.split_once('=') {
            out.push((name.to_owned(), value.to_owned()));
        }
    }
    out
}

/// The text before the first `=== STATUS` line, and the answers: each the status, header
/// lines, an empty line and the body. An answer without a valid status is left out.
fn answers(data: &[u8]) -> (&[u8], Vec<Reply>) {
    let line_starts = std::iter::once(0).chain(
        data.iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i + 1),
    );
    let starts: Vec<usize> = line_starts
        .filter(|&i| data[i..].starts_with(b"=== "))
        .collect();
    let preamble = match starts.first() {
        Some(&first) => &data[..first.saturating_sub(1)],
        None => data,
    };
    let mut answers = Vec::new();
    for (n, &start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).map_or(data.len(), |next| next - 1);
        let section = &data[start + 4..end];
        let (status, rest) = match section.iter().position(|b| *b == b'\n') {
            Some(at) => (&section[..at], &section[at + 1..]),
            None => (section, &section[section.len()..]),
        };
        let Some(status) = std::str::from_utf8(status)
            .ok()
            .and_then(|s| s.trim().parse::<u16>().ok())
            .and_then(|s| http::StatusCode::from_u16(s).ok())
        else {
            continue;
        };
        let (head, body) = split_head(rest);
        let mut headers = http::HeaderMap::new();
        for line in head.split(|b| *b == b'\n') {
            let Some(colon) = line.iter().position(|b| *b == b':') else {
                continue;
            };
            let name = http::HeaderName::from_bytes(&line[..colon]);
            let value = http::HeaderValue::from_bytes(line[colon + 1..].trim_ascii());
            if let (Ok(name), Ok(value)) = (name, value) {
                headers.append(name, value);
            }
        }
        answers.push(Reply {
            status,
            headers,
            body: body.to_vec(),
        });
    }
    (preamble, answers)
}

/// One scripted HTTP answer.
#[derive(Clone)]
struct Reply {
    status: http::StatusCode,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn response(&self) -> Response {
        let mut response = http::Response::new(self.body.clone());
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers.clone();
        response
    }
}

/// Header lines and the body after the first empty line (all header lines when there is none).
fn split_head(data: &[u8]) -> (&[u8], &[u8]) {
    if let Some(rest) = data.strip_prefix(b"\n") {
        return (&data[..0], rest);
    }
    let blank = (1..data.len()).find(|&i| data[i - 1] == b'\n' && data[i] == b'\n');
    match blank {
        Some(at) => (&data[..at - 1], &data[at + 1..]),
        None => (data, &data[data.len()..]),
    }
}

type Answering = Box<dyn FnMut(&http::Request<()>) -> Result<Response, TransportError>>;

/// An [`Io`] with a fixed environment and clock, whose requests get scripted answers.
struct ScriptedIo {
    env: Vec<(String, String)>,
    answering: Answering,
    /// The body of the last answer, when it answered a request for AWS credentials (the
    /// container endpoint, or an IMDS role's credentials).
    credentials_answer: Option<Vec<u8>>,
    /// The progress notes for the operator (retries).
    logged: Vec<String>,
}

impl ScriptedIo {
    /// Answers requests with `answers`, in order, then with no answer.
    fn new(env: &[(String, String)], answers: Vec<Reply>) -> Self {
        let mut answers = VecDeque::from(answers);
        ScriptedIo::answering(
            env,
            Box::new(move |_| match answers.pop_front() {
                Some(reply) => Ok(reply.response()),
                None => Err(TransportError::new(
                    TransportErrorKind::Connect,
                    "connection refused",
                )),
            }),
        )
    }

    fn answering(env: &[(String, String)], answering: Answering) -> Self {
        ScriptedIo {
            env: env.to_vec(),
            answering,
            credentials_answer: None,
            logged: Vec::new(),
        }
    }

    /// The progress notes read as one line each, as the errors do.
    fn check_log(&self, input: &[u8]) {
        for line in &self.logged {
            one_line("the log line", line, input);
        }
    }
}

/// Whether `request` asks for AWS credentials: anything but IMDS's token and role list.
fn asks_for_credentials(request: &http::Request<()>) -> bool {
    let uri = request.uri();
    let role = uri
        .path()
        .strip_prefix("/latest/meta-data/iam/security-credentials/")
        .is_some_and(|role| !role.is_empty());
    request.method() == http::Method::GET
        && (!aws::IMDS_HOSTS.contains(&uri.host().unwrap_or("").trim_matches(['[', ']'])) || role)
}

impl Io for ScriptedIo {
    fn send_borrowed(
        &mut self,
        request: &http::Request<()>,
        _body: &[u8],
        _timeout: Duration,
    ) -> Result<Response, TransportError> {
        let answer = (self.answering)(request);
        self.credentials_answer = match &answer {
            Ok(response) if asks_for_credentials(request) => Some(response.body().clone()),
            _ => None,
        };
        answer
    }

    fn now(&self) -> OffsetDateTime {
        NOW
    }

    fn sleep(&mut self, _duration: Duration) {}

    fn env(&self, name: &str) -> Option<String> {
        lookup(&self.env)(name)
    }

    fn read_file(&self, path: &str) -> std::io::Result<String> {
        no_file(path)
    }

    fn random_u64(&mut self) -> u64 {
        4
    }

    fn log(&mut self, message: &str) {
        self.logged.push(message.to_owned());
    }
}

/// AWS's XML answers: AWS STS (AssumeRole, AssumeRoleWithWebIdentity, GetCallerIdentity) and S3 (a GetObject's
/// head, a ListObjectsV2 page, a refusal). The input is the body; its first byte picks the
/// status. Accepted credentials are header-safe; every error is one line.
pub fn aws_xml(data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let status = [200u16, 301, 400, 403, 404, 412, 500, 503][usize::from(pick % 8)];
    let response = http::Response::builder()
        .status(status)
        .header("x-amz-bucket-region", "eu-west-1")
        .body(body.to_vec())
        .expect("a response");
    let role = aws::sts::RoleRequest::new("arn:aws:iam::111122223333:role/r", Some("s"), NOW);
    for call in [aws::sts::Call::AssumeRole, aws::sts::Call::WebIdentity] {
        match aws::sts::parse(&response, call, &role) {
            Ok(creds) => {
                assert!(creds.credentials.secret_access_key.is_header_safe());
                assert!(
                    !format!("{creds:?}").contains(creds.credentials.secret_access_key.expose())
                );
            }
            Err(e) => error(&e, data),
        }
    }
    match aws::sts::parse_caller_identity(&response) {
        Ok(who) => {
            one_line("the ARN", &who.arn, data);
            one_line("the account", &who.account, data);
        }
        Err(e) => error(&e, data),
    }
    if let Err(e) = s3::answer::list_page(body, "s3://b/p/") {
        error(&e, data);
    }
    for call in [s3::answer::Call::GetObject, s3::answer::Call::ListObjectsV2] {
        match s3::answer::refusal(
            status,
            response.headers(),
            body,
            call,
            "s3://b/k",
            "us-east-1",
        ) {
            s3::answer::Refusal::WrongRegion(region) => assert_eq!(region, "eu-west-1"),
            s3::answer::Refusal::Error(e) => error(&e, data),
        }
    }
    let text = String::from_utf8_lossy(body);
    let mut head = http::Response::builder().status(200);
    for (name, value) in entries(&text) {
        head = head.header(name.as_str(), value.as_str());
    }
    if let Ok(head) = head.body(()) {
        match s3::answer::object_info(&head, "s3://b/k") {
            Ok(info) => {
                if let Some(checksum) = info.checksum
                    && checksum.full_object_crc32c().is_some()
                {
                    assert_eq!(checksum.algorithm, "CRC32C");
                }
            }
            Err(e) => error(&e, data),
        }
    }
}

/// The shared config and credentials files: the input is the config file, then (after a line
/// `===`) the credentials file. Every profile resolves into a chain or an error that reads as
/// one line with its fix, and no secret key is ever shown.
pub fn aws_profiles(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (config, credentials) = text.split_once("\n===\n").unwrap_or((&text, ""));
    let profiles = match aws::profile::parse(config, credentials) {
        Ok(profiles) => profiles,
        Err(e) => return one_line("the profile error", &e.message, data),
    };
    let secrets: Vec<&str> = profiles
        .profiles()
        .values()
        .filter_map(|p| p.get("aws_secret_access_key"))
        .map(String::as_str)
        // Keys look like keys (letters and digits); a short or odd value, or a word, may occur
        // inside any other text.
        .filter(|s| {
            s.len() >= 8
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
                && s.bytes().any(|b| b.is_ascii_digit())
                && s.bytes().any(|b| b.is_ascii_alphabetic())
        })
        .collect();
    for name in profiles.profiles().keys() {
        let shown = match aws::profile::chain::resolve(&profiles, name) {
            Ok(chain) => format!("{chain:?}"),
            Err(e) => {
                one_line("the chain error", &e.to_string(), data);
                assert!(!e.fix.is_empty(), "{e}");
                e.to_string()
            }
        };
        for secret in &secrets {
            // Shown as part of another value (a name, a role ARN) is not shown as a key.
            let named = profiles.profiles().iter().any(|(name, profile)| {
                name.contains(secret)
                    || profile
                        .iter()
                        .any(|(k, v)| k != "aws_secret_access_key" && v.contains(secret))
            });
            assert!(
                named || !shown.contains(secret),
                "a secret key is shown: {shown}"
            );
        }
    }
}
