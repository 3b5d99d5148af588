//! The AWS SigV4 test suite (`tests/vectors/aws-sigv4/v4`, from aws-c-auth), one test per case
//! and placement: canonical request, then string to sign, then signature, then the signed request.

use std::path::PathBuf;

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use wif_push::secret::Secret;
use wif_push::sigv4::{
    Credentials, PayloadChecksumHeader, SessionTokenMode, SignableBody, SignableRequest,
    SignatureLocation, SigningParams, SigningSettings, UriPathNormalization, sign,
};

#[derive(Deserialize)]
struct Context {
    credentials: ContextCredentials,
    expiration_in_seconds: u64,
    normalize: bool,
    region: String,
    service: String,
    timestamp: String,
    sign_body: bool,
    #[serde(default)]
    omit_session_token: bool,
}

#[derive(Deserialize)]
struct ContextCredentials {
    access_key_id: String,
    secret_access_key: String,
    token: Option<String>,
}

/// `request.txt`: a raw HTTP/1.1 request whose path is not percent-encoded and whose header
/// values may be folded over several lines.
struct RawRequest {
    method: String,
    path_and_query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn parse_request(text: &str) -> RawRequest {
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let request_line = lines.next().expect("request line");
    let (method, rest) = request_line.split_once(' ').expect("method");
    let path_and_query = rest.strip_suffix(" HTTP/1.1").expect("HTTP/1.1");
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            // A folded continuation line belongs to the previous header.
            let last = headers.last_mut().expect("continuation after a header");
            last.1.push(' ');
            last.1.push_str(line.trim());
        } else {
            let (name, value) = line.split_once(':').expect("name:value");
            headers.push((name.to_owned(), value.to_owned()));
        }
    }
    RawRequest {
        method: method.to_owned(),
        path_and_query: path_and_query.to_owned(),
        headers,
        body: body.as_bytes().to_vec(),
    }
}

fn case_dir(case: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/aws-sigv4/v4")
        .join(case)
}

fn read(case: &str, file: &str) -> String {
    let path = case_dir(case).join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn run(case: &str, location: &str) {
    let context: Context = serde_json::from_str(&read(case, "context.json")).unwrap();
    let raw = parse_request(&read(case, "request.txt"));
    let credentials = Credentials {
        access_key_id: context.credentials.access_key_id.clone(),
        secret_access_key: Secret::new(context.credentials.secret_access_key.clone()),
        session_token: context.credentials.token.clone().map(Secret::new),
    };
    let query = location == "query";
    let settings = SigningSettings {
        signature_location: if query {
            SignatureLocation::QueryParams {
                expires_in: context.expiration_in_seconds,
            }
        } else {
            SignatureLocation::Headers
        },
        session_token_mode: if context.omit_session_token {
            SessionTokenMode::AddAfterSigning
        } else {
            SessionTokenMode::Include
        },
        uri_path_normalization: if context.normalize {
            UriPathNormalization::Enabled
        } else {
            UriPathNormalization::Disabled
        },
        payload_checksum_header: if context.sign_body && !query {
            PayloadChecksumHeader::Add
        } else {
            PayloadChecksumHeader::Omit
        },
        ..SigningSettings::default()
    };
    let request = SignableRequest {
        method: &raw.method,
        path_and_query: &raw.path_and_query,
        headers: raw
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect(),
        body: SignableBody::Bytes(&raw.body),
    };
    let params = SigningParams {
        credentials: &credentials,
        region: &context.region,
        service: &context.service,
        time: OffsetDateTime::parse(&context.timestamp, &Rfc3339).unwrap(),
        settings,
    };
    let out = sign(&request, &params).unwrap();

    assert_eq!(
        out.canonical_request,
        read(case, &format!("{location}-canonical-request.txt")),
        "canonical request"
    );
    assert_eq!(
        out.string_to_sign,
        read(case, &format!("{location}-string-to-sign.txt")),
        "string to sign"
    );
    assert_eq!(
        out.signature,
        read(case, &format!("{location}-signature.txt")),
        "signature"
    );

    let signed = read(case, &format!("{location}-signed-request.txt"));
    if query {
        // Parameter order on the wire is free; each parameter we add must be there, encoded alike.
        let wire = out.presigned_path_and_query("/");
        for param in wire.trim_start_matches("/?").split('&') {
            assert!(
                signed.lines().next().unwrap().contains(param),
                "{param} not in {signed}"
            );
        }
    } else {
        for (name, value) in &out.headers {
            let present = signed
                .lines()
                .filter_map(|l| l.split_once(':'))
                .any(|(n, v)| n.eq_ignore_ascii_case(name) && v == value);
            assert!(present, "{name}: {value} not in {signed}");
        }
    }
}

macro_rules! vectors {
    ($($name:ident => $case:literal,)*) => {
        mod header { $(#[test] fn $name() { super::run($case, "header"); })* }
        mod query { $(#[test] fn $name() { super::run($case, "query"); })* }

        #[test]
        fn every_case_in_the_suite_has_a_test() {
            let listed = [$($case),*];
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/aws-sigv4/v4");
            let mut on_disk: Vec<String> = std::fs::read_dir(dir).unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
            on_disk.sort();
            assert_eq!(on_disk, listed);
        }
    };
}

vectors! {
    get_header_key_duplicate => "get-header-key-duplicate",
    get_header_value_multiline => "get-header-value-multiline",
    get_header_value_order => "get-header-value-order",
    get_header_value_trim => "get-header-value-trim",
    get_relative_normalized => "get-relative-normalized",
    get_relative_relative_normalized => "get-relative-relative-normalized",
    get_relative_relative_unnormalized => "get-relative-relative-unnormalized",
    get_relative_unnormalized => "get-relative-unnormalized",
    get_slash_dot_slash_normalized => "get-slash-dot-slash-normalized",
    get_slash_dot_slash_unnormalized => "get-slash-dot-slash-unnormalized",
    get_slash_normalized => "get-slash-normalized",
    get_slash_pointless_dot_normalized => "get-slash-pointless-dot-normalized",
    get_slash_pointless_dot_unnormalized => "get-slash-pointless-dot-unnormalized",
    get_slash_unnormalized => "get-slash-unnormalized",
    get_slashes_normalized => "get-slashes-normalized",
    get_slashes_unnormalized => "get-slashes-unnormalized",
    get_space_normalized => "get-space-normalized",
    get_space_unnormalized => "get-space-unnormalized",
    get_unreserved => "get-unreserved",
    get_utf8 => "get-utf8",
    get_vanilla => "get-vanilla",
    get_vanilla_empty_query_key => "get-vanilla-empty-query-key",
    get_vanilla_query => "get-vanilla-query",
    get_vanilla_query_order_encoded => "get-vanilla-query-order-encoded",
    get_vanilla_query_order_key_case => "get-vanilla-query-order-key-case",
    get_vanilla_query_unreserved => "get-vanilla-query-unreserved",
    get_vanilla_utf8_query => "get-vanilla-utf8-query",
    get_vanilla_with_session_token => "get-vanilla-with-session-token",
    post_header_key_case => "post-header-key-case",
    post_header_key_sort => "post-header-key-sort",
    post_header_value_case => "post-header-value-case",
    post_sts_header_after => "post-sts-header-after",
    post_sts_header_before => "post-sts-header-before",
    post_vanilla => "post-vanilla",
    post_vanilla_empty_query_value => "post-vanilla-empty-query-value",
    post_vanilla_query => "post-vanilla-query",
    post_x_www_form_urlencoded => "post-x-www-form-urlencoded",
    post_x_www_form_urlencoded_parameters => "post-x-www-form-urlencoded-parameters",
}
