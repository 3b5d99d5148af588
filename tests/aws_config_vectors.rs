//! The AWS SDKs' shared cases for the container credentials endpoint
//! (`tests/vectors/aws-config/ecs-tests.json`, from smithy-rs, see `SOURCE.md`), one test per
//! case, run through [`aws::credentials`]: which URL the container provider asks, or that it
//! refuses (or is not enabled) without asking anything. The expected error texts are the Rust
//! SDK's; only the kind of outcome is compared.
//!
//! `imds-endpoint-tests.json` is not run: it resolves the IMDS endpoint from
//! `AWS_EC2_METADATA_SERVICE_ENDPOINT[_MODE]` and the shared config file, and wif-push takes its
//! IMDS URLs from the credential configuration's `credential_source` instead.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use time::OffsetDateTime;
use wif_push::aws::{self, Provider};
use wif_push::config::{AwsEndpoints, DEFAULT_CRED_VERIFICATION_URL};
use wif_push::io::{Io, Response, TransportError};

#[derive(Deserialize)]
struct Suite {
    tests: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    docs: String,
    env: HashMap<String, String>,
    result: Expected,
}

#[derive(Deserialize)]
enum Expected {
    /// The URL the provider asks.
    Ok(String),
    /// The provider refuses, or is not enabled.
    ErrorContains(String),
}

const CREDENTIALS: &str = r#"{"AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"example","Token":"example","Expiration":"2026-11-26T18:00:00Z"}"#;

/// The case's environment; answers every request with credentials and records its URL.
struct ContainerHost {
    env: HashMap<String, String>,
    asked: Vec<String>,
}

impl Io for ContainerHost {
    fn send_borrowed(
        &mut self,
        request: &http::Request<()>,
        _body: &[u8],
        _timeout: Duration,
    ) -> Result<Response, TransportError> {
        self.asked.push(request.uri().to_string());
        Ok(http::Response::new(CREDENTIALS.as_bytes().to_vec()))
    }

    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH
    }

    fn sleep(&mut self, _duration: Duration) {}

    fn env(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }

    fn read_file(&self, path: &str) -> std::io::Result<String> {
        Err(std::io::Error::new(std::io::ErrorKind::NotFound, path))
    }

    fn random_u64(&mut self) -> u64 {
        0
    }

    fn log(&mut self, _message: &str) {}
}

fn suite() -> Vec<Case> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/aws-config/ecs-tests.json");
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str::<Suite>(&text).unwrap().tests
}

fn run(docs: &str) {
    let case = suite().into_iter().find(|c| c.docs == docs).unwrap();
    let mut host = ContainerHost {
        env: case.env,
        asked: Vec::new(),
    };
    // No IMDS URLs: when the container provider is not enabled, the chain ends without asking.
    let source = AwsEndpoints {
        region_url: None,
        credentials_url: None,
        cred_verification_url: DEFAULT_CRED_VERIFICATION_URL.into(),
        imdsv2_session_token_url: None,
    };
    let outcome = aws::credentials(&mut host, &source, false);
    match (case.result, outcome) {
        (Expected::Ok(url), Ok(creds)) => {
            assert_eq!(creds.source, Provider::Container);
            assert_eq!(host.asked, [url]);
        }
        (Expected::ErrorContains(_), Err(_)) => assert_eq!(host.asked, Vec::<String>::new()),
        (Expected::Ok(url), Err(err)) => panic!("expected a request to {url}, got: {err}"),
        (Expected::ErrorContains(text), Ok(_)) => {
            panic!(
                "expected an error like {text:?}, got credentials from {:?}",
                host.asked
            )
        }
    }
}

macro_rules! vectors {
    ($($name:ident => $docs:literal,)*) => {
        $(#[test] fn $name() { run($docs); })*

        #[test]
        fn every_case_in_the_suite_has_a_test() {
            let listed = [$($docs),*];
            let in_file: Vec<String> = suite().into_iter().map(|c| c.docs).collect();
            assert_eq!(in_file, listed);
        }
    };
}

vectors! {
    all_fields_unset_provider_is_not_enabled => "all fields unset provider is not enabled",
    relative_uri => "relative URI",
    invalid_full_uri => "invalid full uri",
    full_uri_https => "full uri HTTPS",
    full_uri_https_with_port => "full uri HTTPS with port",
    localhost => "localhost",
    ecs_task_role => "ecs task role",
    eks_pod_identity_ipv4 => "eks pod identity ipv4",
    eks_pod_identity_ipv6 => "eks pod identity ipv6",
    relative_takes_precedence_over_full => "relative takes precedence over full",
    support_query_params => "support query params",
}
