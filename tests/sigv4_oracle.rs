//! Differential test: random requests signed by our core and by the `aws-sigv4` crate (the
//! AWS SDK for Rust's signer) must give the same signature, in headers and in query strings.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials as OracleCredentials;
use aws_sigv4::http_request::{
    self as oracle, PayloadChecksumKind, SessionTokenMode as OracleTokenMode,
    SignatureLocation as OracleLocation,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use proptest::prelude::*;
use time::OffsetDateTime;
use wif_push::secret::Secret;
use wif_push::sigv4::{
    Credentials, PayloadChecksumHeader, SignableBody, SignableRequest, SignatureLocation,
    SigningParams, SigningSettings, sign,
};

#[derive(Debug, Clone)]
struct Case {
    method: &'static str,
    segments: Vec<String>,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    token: Option<String>,
    secret: String,
    region: &'static str,
    service: &'static str,
    unix_time: u64,
    query_placement: bool,
    content_sha256: bool,
}

fn case() -> impl Strategy<Value = Case> {
    let segment = "[a-zA-Z0-9._~-]{1,12}";
    let word = "[a-zA-Z0-9._~-]{0,10}";
    let header_name = "x-[a-z0-9-]{1,12}";
    let header_value = "[ -~]{0,20}".prop_map(|s: String| s.trim().to_owned());
    (
        prop::sample::select(vec!["GET", "POST", "PUT", "DELETE"]),
        prop::collection::vec(segment, 0..4),
        prop::collection::vec(("[a-zA-Z][a-zA-Z0-9_-]{0,8}", word), 0..4),
        prop::collection::vec((header_name, header_value), 0..4),
        prop::collection::vec(any::<u8>(), 0..64),
        prop::option::of("[A-Za-z0-9/+=]{16,64}"),
        "[A-Za-z0-9/+]{40}",
        prop::sample::select(vec!["us-east-1", "eu-west-3", "ap-southeast-2"]),
        prop::sample::select(vec!["sts", "service", "execute-api"]),
        1_000_000_000u64..2_000_000_000,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(
                method,
                segments,
                query,
                headers,
                body,
                token,
                secret,
                region,
                service,
                unix_time,
                query_placement,
                content_sha256,
            )| Case {
                method,
                segments,
                query,
                headers,
                body,
                token,
                secret,
                region,
                service,
                unix_time,
                query_placement,
                content_sha256,
            },
        )
}

fn path_and_query(case: &Case) -> String {
    let mut out = format!("/{}", case.segments.join("/"));
    for (i, (k, v)) in case.query.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(&format!("{k}={v}"));
    }
    out
}

fn ours(case: &Case) -> (String, Vec<(String, String)>) {
    let credentials = Credentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: Secret::new(case.secret.clone()),
        session_token: case.token.clone().map(Secret::new),
    };
    let pq = path_and_query(case);
    let mut headers = vec![("host", "example.amazonaws.com")];
    headers.extend(case.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let request = SignableRequest {
        method: case.method,
        path_and_query: &pq,
        headers,
        body: SignableBody::Bytes(&case.body),
    };
    let params = SigningParams {
        credentials: &credentials,
        region: case.region,
        service: case.service,
        time: OffsetDateTime::from_unix_timestamp(case.unix_time as i64).unwrap(),
        settings: SigningSettings {
            signature_location: if case.query_placement {
                SignatureLocation::QueryParams { expires_in: 900 }
            } else {
                SignatureLocation::Headers
            },
            payload_checksum_header: if case.content_sha256 {
                PayloadChecksumHeader::Add
            } else {
                PayloadChecksumHeader::Omit
            },
            ..SigningSettings::default()
        },
    };
    let out = sign(&request, &params).unwrap();
    (out.signature, out.headers)
}

fn oracle_signature(case: &Case) -> String {
    let identity: Identity =
        OracleCredentials::from_keys("AKIDEXAMPLE", case.secret.clone(), case.token.clone()).into();
    let mut settings = oracle::SigningSettings::default();
    settings.signature_location = if case.query_placement {
        OracleLocation::QueryParams
    } else {
        OracleLocation::Headers
    };
    settings.expires_in = Some(Duration::from_secs(900));
    settings.session_token_mode = OracleTokenMode::Include;
    // aws-sigv4 adds x-amz-content-sha256 only to header-signed requests, as we do.
    settings.payload_checksum_kind = if case.content_sha256 && !case.query_placement {
        PayloadChecksumKind::XAmzSha256
    } else {
        PayloadChecksumKind::NoHeader
    };
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(case.region)
        .name(case.service)
        .time(SystemTime::UNIX_EPOCH + Duration::from_secs(case.unix_time))
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let uri = format!("https://example.amazonaws.com{}", path_and_query(case));
    let headers = case.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()));
    let request = oracle::SignableRequest::new(
        case.method,
        uri,
        headers,
        oracle::SignableBody::Bytes(&case.body),
    )
    .unwrap();
    oracle::sign(request, &params)
        .unwrap()
        .signature()
        .to_owned()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn agrees_with_aws_sigv4(case in case()) {
        let (signature, _) = ours(&case);
        prop_assert_eq!(signature, oracle_signature(&case), "case: {:?}", case);
    }
}

#[test]
fn a_changed_secret_changes_the_signature() {
    // Guards the property test against agreeing vacuously.
    let base = Case {
        method: "GET",
        segments: vec!["a".into()],
        query: vec![],
        headers: vec![],
        body: vec![],
        token: None,
        secret: "A".repeat(40),
        region: "us-east-1",
        service: "sts",
        unix_time: 1_500_000_000,
        query_placement: false,
        content_sha256: false,
    };
    let other = Case {
        secret: "B".repeat(40),
        ..base.clone()
    };
    assert_eq!(ours(&base).0, oracle_signature(&base));
    assert_ne!(ours(&base).0, oracle_signature(&other));
}
