//! The keyless token flow through the component, in Wasmtime, against the embedded Google
//! emulator (which checks SigV4 with the aws-sigv4 crate): the exchange succeeds and is cached,
//! every partner-side misconfiguration gets its own diagnosis, and no secret ever shows.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use wif_push_emulator::{AwsIdentity, Emulator, EmulatorConfig, Endpoint, Misconfig};
use wif_push_host::outbound::{Outbound, Policy, Route};
use wif_push_host::runtime::{GuestEnv, Runtime, Session, Settings, StepError, wif};

const KEY_ID: &str = "AKIACANARYKEY0000001";
const SECRET: &str = "canary-SECRET-ACCESS-KEY-0001";
const SESSION_TOKEN: &str = "canary-SESSION-TOKEN-0002";
/// Every token the emulator issues starts with this.
const GOOGLE_TOKEN_PREFIX: &str = "ya29.";

fn config() -> EmulatorConfig {
    let mut config = EmulatorConfig::demo();
    config.provider_id = "aws-sender".into();
    config.identities = vec![AwsIdentity {
        access_key_id: KEY_ID.into(),
        secret_access_key: SECRET.into(),
        session_token: Some(SESSION_TOKEN.into()),
        role_arn: "arn:aws:sts::111122223333:assumed-role/wif-push-sender/session".into(),
    }];
    config
}

fn destination(config: &EmulatorConfig) -> Settings {
    Settings {
        project_number: Some(config.project_number.clone()),
        pool_id: Some(config.pool_id.clone()),
        provider_id: Some(config.provider_id.clone()),
        service_account: Some(config.service_account.clone()),
        bucket: Some("partner-inbox".into()),
        aws_region: Some("us-east-1".into()),
        ..Default::default()
    }
}

fn aws_env(secret: &str) -> GuestEnv {
    GuestEnv::aws(|name| match name {
        "AWS_ACCESS_KEY_ID" => Some(KEY_ID.into()),
        "AWS_SECRET_ACCESS_KEY" => Some(secret.into()),
        "AWS_SESSION_TOKEN" => Some(SESSION_TOKEN.into()),
        _ => None,
    })
}

fn routes(addr: SocketAddr) -> Vec<Route> {
    [
        "sts.googleapis.com",
        "iamcredentials.googleapis.com",
        "storage.googleapis.com",
    ]
    .iter()
    .map(|host| format!("{host}={addr}").parse().unwrap())
    .collect()
}

async fn session(emulator: &Emulator, env: &GuestEnv) -> Session {
    let runtime = Runtime::load(None).unwrap();
    let outbound = Outbound::new(Policy::new(&[], routes(emulator.addr()))).unwrap();
    Session::new(&runtime, env, outbound).await.unwrap()
}

async fn start(config: EmulatorConfig) -> Emulator {
    Emulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn assert_no_secret(text: &str) {
    for canary in [SECRET, SESSION_TOKEN, GOOGLE_TOKEN_PREFIX] {
        assert!(!text.contains(canary), "{canary} leaked into: {text}");
    }
}

#[tokio::test]
async fn a_hundred_token_requests_cost_one_exchange() {
    let emulator = start(config()).await;
    let mut session = session(&emulator, &aws_env(SECRET)).await;
    let destination = destination(emulator.config());
    for i in 0..100 {
        let info = session.access_token(&destination).await.unwrap();
        assert_eq!(info.from_cache, i > 0, "request {i}");
        assert_eq!(
            info.service_account.as_deref(),
            Some(emulator.config().service_account.as_str())
        );
    }
    assert_eq!(emulator.count(Endpoint::Sts), 1);
    assert_eq!(emulator.count(Endpoint::Iam), 1);
    assert_eq!(session.requests_sent(), 2);
}

/// Runs the flow and returns the failed step's error.
async fn failure(
    config: EmulatorConfig,
    env: GuestEnv,
    change: impl FnOnce(&mut Settings),
) -> wif::Error {
    let emulator = start(config).await;
    let mut session = session(&emulator, &env).await;
    let mut destination = destination(emulator.config());
    change(&mut destination);
    let err = session.access_token(&destination).await.unwrap_err();
    let step = err.downcast::<StepError>().expect("a step error").0;
    assert_no_secret(&format!("{step:?}"));
    step
}

fn misconfigured(misconfig: Misconfig) -> EmulatorConfig {
    let mut config = config();
    config.misconfig = vec![misconfig];
    config
}

#[tokio::test]
async fn each_misconfiguration_gets_its_own_diagnosis() {
    let cases: Vec<(&str, EmulatorConfig, GuestEnv, &str, &str)> = vec![
        (
            "unknown audience",
            misconfigured(Misconfig::UnknownAudience),
            aws_env(SECRET),
            "sts-exchange",
            "check project_number",
        ),
        (
            "condition rejects the role",
            misconfigured(Misconfig::ConditionRejects),
            aws_env(SECRET),
            "sts-exchange",
            "attribute condition",
        ),
        (
            "no workloadIdentityUser",
            misconfigured(Misconfig::MissingWorkloadIdentityUser),
            aws_env(SECRET),
            "impersonation",
            "roles/iam.workloadIdentityUser",
        ),
        (
            "service account missing",
            misconfigured(Misconfig::ServiceAccountMissing),
            aws_env(SECRET),
            "impersonation",
            "does not exist",
        ),
        (
            "service account disabled",
            misconfigured(Misconfig::ServiceAccountDisabled),
            aws_env(SECRET),
            "impersonation",
            "is disabled",
        ),
        (
            "wrong secret key",
            config(),
            aws_env("canary-SECRET-ACCESS-KEY-WRONG"),
            "sts-exchange",
            "check AWS_SECRET_ACCESS_KEY",
        ),
        (
            "unknown access key",
            config(),
            GuestEnv::aws(|name| match name {
                "AWS_ACCESS_KEY_ID" => Some("AKIAUNKNOWN000000000".into()),
                "AWS_SECRET_ACCESS_KEY" => Some(SECRET.into()),
                _ => None,
            }),
            "sts-exchange",
            "check AWS_ACCESS_KEY_ID",
        ),
    ];
    for (name, config, env, step, fix) in cases {
        let err = failure(config, env, |_| {}).await;
        assert_eq!(err.step, step, "{name}: {err:?}");
        assert!(
            err.fix.as_deref().unwrap_or("").contains(fix),
            "{name}: {err:?}"
        );
        assert!(!err.transient, "{name}");
        assert!(err.status.is_some(), "{name}: Google's status is reported");
    }
}

/// A bucket that refuses the service account, or does not exist: the handshake upload says
/// which, with the partner's fix, after a token exchange that worked.
#[tokio::test]
async fn a_bucket_that_refuses_or_is_missing_is_named_by_the_handshake() {
    for (misconfig, status, fix) in [
        (
            Misconfig::ObjectCreatorMissing,
            403,
            "roles/storage.objectCreator on the bucket",
        ),
        (Misconfig::BucketMissing, 404, "the bucket does not exist"),
    ] {
        let emulator = start(misconfigured(misconfig)).await;
        let mut session = session(&emulator, &aws_env(SECRET)).await;
        let err = session
            .verify(&destination(emulator.config()))
            .await
            .unwrap_err();
        let step = err.downcast::<StepError>().expect("a step error").0;
        assert_no_secret(&format!("{step:?}"));
        assert_eq!(step.step, "upload", "{misconfig:?}: {step:?}");
        assert_eq!(step.status, Some(status), "{misconfig:?}: {step:?}");
        assert!(
            step.fix.as_deref().unwrap_or("").contains(fix),
            "{misconfig:?}: {step:?}"
        );
        assert_eq!(
            emulator.count(Endpoint::Sts),
            1,
            "the exchange itself worked"
        );
        assert!(emulator.objects().is_empty(), "nothing was created");
    }
}

#[tokio::test]
async fn a_lifetime_above_the_partners_policy_is_explained() {
    let err = failure(config(), aws_env(SECRET), |d| {
        d.token_lifetime_seconds = Some(7200)
    })
    .await;
    assert_eq!(err.step, "impersonation");
    assert!(err.fix.unwrap().contains("token_lifetime_seconds"));
}

#[tokio::test]
async fn a_skewed_clock_is_explained() {
    let mut config = config();
    config.now = Some(time::OffsetDateTime::now_utc() + Duration::from_secs(3600));
    let err = failure(config, aws_env(SECRET), |_| {}).await;
    assert_eq!(err.step, "sts-exchange");
    assert!(err.fix.unwrap().contains("clock"), "clock skew diagnosed");
}

#[tokio::test]
async fn config_errors_are_caught_before_any_request() {
    let emulator = start(config()).await;
    let mut session = session(&emulator, &aws_env(SECRET)).await;
    let mut destination = destination(emulator.config());
    destination.project_number = Some("my-project".into());
    let err = session.access_token(&destination).await.unwrap_err();
    let step = err.downcast::<StepError>().unwrap().0;
    assert_eq!(step.step, "config");
    assert!(step.message.contains("project_number"), "{}", step.message);
    assert_eq!(session.requests_sent(), 0);
}

/// Posts a subject token to the emulator's STS as Google STS would receive it.
async fn exchange(addr: SocketAddr, audience: &str, subject_token: &str) -> (u16, String) {
    use http_body_util::{BodyExt, Full};
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair(
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        )
        .append_pair("audience", audience)
        .append_pair("scope", "https://www.googleapis.com/auth/cloud-platform")
        .append_pair(
            "requested_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        )
        .append_pair("subject_token", subject_token)
        .append_pair(
            "subject_token_type",
            "urn:ietf:params:aws:token-type:aws4_request",
        )
        .finish();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let request = http::Request::post(format!("http://{addr}/v1/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn the_subject_token_is_accepted_by_an_aws_sigv4_verifier_and_bound_to_its_audience() {
    let emulator = start(config()).await;
    let audience = emulator.config().audience();
    let mut session = session(&emulator, &aws_env(SECRET)).await;
    let token = session
        .subject_token(&destination(emulator.config()), None)
        .await
        .unwrap();
    assert_eq!(exchange(emulator.addr(), &audience, &token).await.0, 200);

    // The same AWS identity, signed for another pool, is not accepted for this one.
    let mut other = destination(emulator.config());
    other.pool_id = Some("another-pool".into());
    let replayed = session.subject_token(&other, None).await.unwrap();
    let (status, body) = exchange(emulator.addr(), &audience, &replayed).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid_grant"), "{body}");

    // A forged signature is caught by the verifier.
    let decoded = percent_encoding::percent_decode_str(&token)
        .decode_utf8()
        .unwrap()
        .into_owned();
    let signature = decoded.split("Signature=").nth(1).unwrap()[..64].to_owned();
    let flipped: String = signature.chars().rev().collect();
    let forged = decoded.replace(&signature, &flipped);
    let forged: String =
        percent_encoding::utf8_percent_encode(&forged, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    let (status, body) = exchange(emulator.addr(), &audience, &forged).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("SignatureDoesNotMatch"), "{body}");
}

#[test]
fn subject_token_matches_google_auth_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dest.toml");
    std::fs::write(
        &dest,
        "project_number = \"123456789012\"\npool_id = \"aws-partner\"\nprovider_id = \"aws-sender\"\n\
         service_account = \"uploader@partner-project.iam.gserviceaccount.com\"\nbucket = \"partner-inbox\"\n\
         aws_region = \"us-east-2\"\nsign_target_resource = false\n",
    )
    .unwrap();
    for token in [Some(SESSION_TOKEN), None] {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_host-test"));
        cmd.args([
            "subject-token",
            "--config",
            dest.to_str().unwrap(),
            "--at",
            "2026-11-26T07:00:00Z",
        ])
        .env_clear()
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET);
        if let Some(token) = token {
            cmd.env("AWS_SESSION_TOKEN", token);
        }
        let ours = common::run_with_stdin(cmd, "");
        assert!(
            ours.status.success(),
            "{}",
            String::from_utf8_lossy(&ours.stderr)
        );

        let mut request = serde_json::json!({
            "audience": "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/aws-partner/providers/aws-sender",
            "region": "us-east-2", "time": "2026-11-26T07:00:00Z",
            "access_key_id": KEY_ID, "secret_access_key": SECRET,
        });
        if let Some(token) = token {
            request["session_token"] = token.into();
        }
        let mut python = std::process::Command::new(common::python());
        python.arg(common::repo_root().join("tests/peers/google_auth_subject_token.py"));
        let theirs = common::run_with_stdin(python, &request.to_string());
        assert!(
            theirs.status.success(),
            "{}",
            String::from_utf8_lossy(&theirs.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&ours.stdout).trim(),
            String::from_utf8_lossy(&theirs.stdout).trim(),
            "session token: {token:?}"
        );
    }
}

/// The CLI, run as a user would, on success and on every failure: no canary in its output.
#[tokio::test]
async fn canary_secrets_never_reach_the_cli_output() {
    let dir = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    let mut configs = vec![config()];
    for m in [
        Misconfig::UnknownAudience,
        Misconfig::ConditionRejects,
        Misconfig::MissingWorkloadIdentityUser,
        Misconfig::ServiceAccountMissing,
        Misconfig::ServiceAccountDisabled,
    ] {
        configs.push(misconfigured(m));
    }
    for (i, config) in configs.into_iter().enumerate() {
        let emulator = start(config).await;
        let c = emulator.config();
        let dest = dir.path().join(format!("dest{i}.toml"));
        std::fs::write(&dest, format!(
            "project_number = \"{}\"\npool_id = \"{}\"\nprovider_id = \"{}\"\nservice_account = \"{}\"\n\
             bucket = \"partner-inbox\"\naws_region = \"us-east-1\"\n",
            c.project_number, c.pool_id, c.provider_id, c.service_account)).unwrap();
        for args in [
            vec!["token"],
            vec!["--json", "token"],
            vec!["subject-token"],
        ] {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_host-test"));
            cmd.args(&args)
                .args(["--config", dest.to_str().unwrap()])
                .args(routes(emulator.addr()).iter().flat_map(|r| {
                    [
                        "--connect-to".to_owned(),
                        format!("{}={}", r.host, r.target),
                    ]
                }))
                .env_clear()
                .env("AWS_ACCESS_KEY_ID", KEY_ID)
                .env("AWS_SECRET_ACCESS_KEY", SECRET)
                .env("AWS_SESSION_TOKEN", SESSION_TOKEN);
            let out = tokio::task::spawn_blocking(move || common::run_with_stdin(cmd, ""))
                .await
                .unwrap();
            runs.push((args, out));
        }
    }
    let mut failures = 0;
    for (args, out) in &runs {
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if args.last() == Some(&"subject-token") {
            // The subject token is the output asked for; it carries the session token by design.
            assert!(out.status.success());
            assert_no_secret(&stderr);
            continue;
        }
        assert_no_secret(&stdout);
        assert_no_secret(&stderr);
        if !out.status.success() {
            failures += 1;
            assert!(
                stderr.contains("Fix:") || stderr.contains("\"fix\""),
                "{stderr}"
            );
        }
    }
    assert_eq!(failures, 10, "five misconfigurations, twice each");
}
