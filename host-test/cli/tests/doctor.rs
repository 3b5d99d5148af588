//! `host-test doctor` through the component against the emulator: a healthy chain exits 0 with
//! the handshake receipt; each misconfiguration of the partner's or the sender's side stops the
//! checklist at its step, with its own diagnosis, and exits 1. No secret shows in any of it.

mod common;

use std::time::Duration;

use serde_json::Value;
use wif_push_emulator::{AwsIdentity, AwsRole, EmulatorConfig, Misconfig};

const TRUSTED_ROLE: &str = "arn:aws:iam::111122223333:role/wif-push-sender";
const OTHER_ROLE: &str = "arn:aws:iam::111122223333:role/other-pipeline";
const PRINCIPAL_SET: &str = "principalSet://iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/aws-partner/attribute.aws_role/wif-push-sender";

/// What a run printed, exited with and left in the bucket.
struct Doctor {
    code: Option<i32>,
    checklist: Value,
    stdout: String,
    stderr: String,
    objects: usize,
}

impl Doctor {
    /// The last line: the one that passed last, or the failure.
    fn last(&self) -> &Value {
        self.checklist["checks"].as_array().unwrap().last().unwrap()
    }

    fn stopped_at(&self, step: &str) -> (&str, &str) {
        let last = self.last();
        assert_eq!(self.code, Some(1), "{}", self.stdout);
        assert_eq!(last["step"], step, "{}", self.stdout);
        assert_eq!(last["passed"], false, "{}", self.stdout);
        assert_eq!(self.checklist["passed"], false);
        assert_eq!(self.objects, 0, "no handshake object when the chain fails");
        (
            last["saw"].as_str().unwrap(),
            last["fix"].as_str().unwrap_or(""),
        )
    }
}

/// The demo's emulator with `config`, DEST.toml with `extra`, the demo's AWS keys but for
/// `env`: `host-test --json doctor`.
fn doctor(config: EmulatorConfig, extra: &str, env: &[(&str, &str)]) -> Doctor {
    let started = common::start_demo(config, extra);
    let mut cmd = common::host_test_against(
        &started.demo,
        &[
            "--json".as_ref(),
            "doctor".as_ref(),
            "--config".as_ref(),
            started.dest.as_os_str(),
        ],
    );
    for (name, value) in env {
        cmd.env(name, value);
    }
    let output = cmd.output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    for canary in [
        started.demo.emulator.config().identities[0]
            .secret_access_key
            .as_str(),
        "ya29.",
        "canary",
    ] {
        assert!(!stdout.contains(canary), "{canary} in {stdout}");
        assert!(!stderr.contains(canary), "{canary} in {stderr}");
    }
    Doctor {
        code: output.status.code(),
        checklist: serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}")),
        objects: started.demo.emulator.objects().len(),
        stdout,
        stderr,
    }
}

fn with(misconfig: Misconfig) -> EmulatorConfig {
    EmulatorConfig {
        misconfig: vec![misconfig],
        ..EmulatorConfig::demo()
    }
}

/// The emulator knows `arn` as the caller of the demo's keys.
fn caller(arn: &str) -> EmulatorConfig {
    let mut config = EmulatorConfig::demo();
    config.identities[0].role_arn = arn.to_owned();
    config
}

#[test]
fn a_healthy_chain_passes_every_step_and_lands_the_handshake() {
    let run = doctor(EmulatorConfig::demo(), "", &[]);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.checklist["passed"], true);
    let steps: Vec<&str> = run.checklist["checks"]
        .as_array()
        .unwrap()
        .iter()
        .inspect(|c| assert_eq!(c["passed"], true, "{c}"))
        .map(|c| c["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "config",
            "aws-region",
            "aws-credentials",
            "clock",
            "aws-identity",
            "mapping",
            "subject-token",
            "sts-exchange",
            "impersonation",
            "handshake"
        ]
    );
    let receipt = &run.checklist["receipt"];
    assert_eq!(receipt["status"], "delivered");
    assert!(
        receipt["name"]
            .as_str()
            .unwrap()
            .starts_with(".wif-push/handshake-"),
        "{receipt}"
    );
    assert_eq!(run.objects, 1, "the handshake object is in the bucket");
    let mapping = run.checklist["checks"][5]["saw"].as_str().unwrap();
    assert!(mapping.contains(PRINCIPAL_SET), "{mapping}");
    assert!(mapping.contains("attribute.aws_role = wif-push-sender"));
}

/// The text form: a line a step, and the fix under a failed one.
#[test]
fn the_text_checklist_marks_each_step_and_puts_the_fix_under_the_failure() {
    let started = common::start_demo(with(Misconfig::MissingWorkloadIdentityUser), "");
    let output = common::host_test_against(
        &started.demo,
        &[
            "doctor".as_ref(),
            "--config".as_ref(),
            started.dest.as_os_str(),
        ],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(output.status.code(), Some(1));
    assert!(lines[0].starts_with("✓ config "), "{stdout}");
    assert!(lines[8].starts_with("✗ impersonation "), "{stdout}");
    assert!(lines[9].trim_start().starts_with("fix: "), "{stdout}");
    assert!(lines[9].contains(PRINCIPAL_SET), "{stdout}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("the chain stopped at impersonation"),
        "{stderr}"
    );
}

#[test]
fn a_wrong_project_number_pool_or_provider_is_invalid_target_named_with_each_value() {
    for (extra, named) in [
        (
            "project_number = \"999999999999\"\n",
            "project_number (999999999999",
        ),
        ("pool_id = \"another-pool\"\n", "pool_id (another-pool)"),
        ("provider_id = \"another\"\n", "provider_id (another)"),
    ] {
        // A later key would be a duplicate: the demo's DEST.toml is rewritten instead.
        let started = common::start_demo(EmulatorConfig::demo(), "");
        let key = extra.split(' ').next().unwrap();
        let text: String = std::fs::read_to_string(&started.dest)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with(key))
            .map(|l| format!("{l}\n"))
            .chain([extra.to_owned()])
            .collect();
        std::fs::write(&started.dest, text).unwrap();
        let output = common::host_test_against(
            &started.demo,
            &[
                "--json".as_ref(),
                "doctor".as_ref(),
                "--config".as_ref(),
                started.dest.as_os_str(),
            ],
        )
        .output()
        .unwrap();
        let checklist: Value = serde_json::from_slice(&output.stdout).unwrap();
        let last = checklist["checks"].as_array().unwrap().last().unwrap();
        assert_eq!(last["step"], "sts-exchange", "{checklist}");
        assert!(last["saw"].as_str().unwrap().contains("invalid_target"));
        let fix = last["fix"].as_str().unwrap();
        assert!(fix.contains(named), "{named}: {fix}");
        assert_eq!(output.status.code(), Some(1));
    }
}

/// Google answers a disabled pool or provider as it answers a missing one; the diagnosis says
/// so and gives the partner the command that tells them apart.
#[test]
fn a_disabled_pool_or_provider_is_named_with_the_partner_s_check() {
    for misconfig in [Misconfig::PoolDisabled, Misconfig::ProviderDisabled] {
        let run = doctor(with(misconfig), "", &[]);
        let (saw, fix) = run.stopped_at("sts-exchange");
        assert!(saw.contains("invalid_target"), "{saw}");
        assert!(fix.contains("disabled or deleted"), "{fix}");
        assert!(
            fix.contains("gcloud iam workload-identity-pools describe aws-partner"),
            "{fix}"
        );
        assert!(fix.contains("--no-disabled"), "{fix}");
    }
}

#[test]
fn a_provider_that_trusts_another_account_is_told_the_caller_s() {
    let run = doctor(with(Misconfig::ProviderTrustsOtherAccount), "", &[]);
    let (_, fix) = run.stopped_at("sts-exchange");
    assert!(fix.contains("trusts another AWS account"), "{fix}");
    assert!(fix.contains("--account-id=111122223333"), "{fix}");
}

/// The partner's condition rejects the very role it was given: the condition it needs.
#[test]
fn a_condition_that_rejects_the_trusted_role_is_given_the_condition_it_needs() {
    let extra = format!("aws_role_arn = \"{TRUSTED_ROLE}\"\n");
    let run = doctor(with(Misconfig::ConditionRejects), &extra, &[]);
    let (saw, fix) = run.stopped_at("sts-exchange");
    assert!(saw.contains("attribute condition"), "{saw}");
    assert!(
        fix.contains(&format!(
            "rejects sessions of {TRUSTED_ROLE} (aws_role_arn)"
        )),
        "{fix}"
    );
    assert!(
        fix.contains(
            "assertion.arn.startsWith('arn:aws:sts::111122223333:assumed-role/wif-push-sender/')"
        ),
        "{fix}"
    );
}

/// The caller is not the role the partner trusts: an IAM user without aws_role_arn (stopped
/// before Google is asked), another role's session without aws_role_arn, and aws_role_arn
/// naming another role.
#[test]
fn a_caller_that_is_not_the_trusted_role_is_named() {
    let user = doctor(caller("arn:aws:iam::111122223333:user/ci"), "", &[]);
    let (saw, fix) = user.stopped_at("aws-identity");
    assert!(saw.contains("arn:aws:iam::111122223333:user/ci"), "{saw}");
    assert!(fix.contains("set aws_role_arn"), "{fix}");

    let other = doctor(
        caller("arn:aws:sts::111122223333:assumed-role/other-pipeline/s"),
        "",
        &[],
    );
    let (_, fix) = other.stopped_at("sts-exchange");
    assert!(fix.contains("not the role the partner trusts"), "{fix}");
    assert!(fix.contains("aws_role_arn is not set"), "{fix}");

    let mut config = EmulatorConfig::demo();
    config.aws_roles.push(AwsRole {
        role_arn: OTHER_ROLE.into(),
        external_id: None,
        web_identity_token: None,
    });
    let wrong = doctor(config, &format!("aws_role_arn = \"{OTHER_ROLE}\"\n"), &[]);
    let assumed = &wrong.checklist["checks"][3];
    assert_eq!(assumed["step"], "aws-role", "{assumed}");
    assert!(
        assumed["saw"].as_str().unwrap().contains(OTHER_ROLE),
        "{assumed}"
    );
    let (_, fix) = wrong.stopped_at("sts-exchange");
    assert!(
        fix.contains(&format!("rejects sessions of {OTHER_ROLE} (aws_role_arn)")),
        "{fix}"
    );
    assert!(fix.contains("§3.2"), "{fix}");
}

#[test]
fn a_missing_binding_is_given_the_principal_set_to_bind() {
    let run = doctor(with(Misconfig::MissingWorkloadIdentityUser), "", &[]);
    let (saw, fix) = run.stopped_at("impersonation");
    assert!(saw.contains("403"), "{saw}");
    assert!(fix.contains(PRINCIPAL_SET), "{fix}");
    assert!(fix.contains("add-iam-policy-binding"), "{fix}");
}

#[test]
fn a_missing_or_disabled_service_account_is_named() {
    for (misconfig, named) in [
        (Misconfig::ServiceAccountMissing, "does not exist"),
        (Misconfig::ServiceAccountDisabled, "is disabled"),
    ] {
        let run = doctor(with(misconfig), "", &[]);
        let (_, fix) = run.stopped_at("impersonation");
        assert!(fix.contains(named), "{misconfig:?}: {fix}");
    }
}

/// A lifetime above the partner's policy is refused by name; one the policy allows passes and
/// says so.
#[test]
fn the_lifetime_is_checked_against_the_partner_s_policy() {
    let run = doctor(
        EmulatorConfig::demo(),
        "token_lifetime_seconds = 7200\n",
        &[],
    );
    let (_, fix) = run.stopped_at("impersonation");
    assert!(fix.contains("token_lifetime_seconds"), "{fix}");

    let allowed = EmulatorConfig {
        max_lifetime_seconds: 43200,
        ..EmulatorConfig::demo()
    };
    let run = doctor(allowed, "token_lifetime_seconds = 7200\n", &[]);
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    let impersonation = run.checklist["checks"][8]["saw"].as_str().unwrap();
    assert!(
        impersonation.contains("the 7200 s asked for (above 3600 s"),
        "{impersonation}"
    );
}

#[test]
fn a_bucket_that_refuses_or_is_missing_fails_the_handshake() {
    for (misconfig, named) in [
        (
            Misconfig::ObjectCreatorMissing,
            "roles/storage.objectCreator",
        ),
        (Misconfig::BucketMissing, "does not exist"),
    ] {
        let run = doctor(with(misconfig), "", &[]);
        let (_, fix) = run.stopped_at("handshake");
        assert!(fix.contains(named), "{misconfig:?}: {fix}");
    }
}

/// A clock an hour off is caught before anything is signed.
#[test]
fn a_skewed_clock_is_measured_against_google_s_date() {
    let skewed = EmulatorConfig {
        now: Some(time::OffsetDateTime::now_utc() - Duration::from_secs(3600)),
        ..EmulatorConfig::demo()
    };
    let run = doctor(skewed, "", &[]);
    let (saw, fix) = run.stopped_at("clock");
    assert!(saw.contains("ahead of Google's"), "{saw}");
    let seconds: u64 = saw.split_whitespace().find_map(|w| w.parse().ok()).unwrap();
    assert!((3595..=3605).contains(&seconds), "{saw}");
    assert!(fix.contains("NTP"), "{fix}");
}

/// Keys AWS does not know, a secret that does not belong to the key, an expired session: AWS
/// says which when asked who signed the subject token.
#[test]
fn invalid_or_expired_aws_credentials_are_named_by_aws() {
    let demo_key = EmulatorConfig::demo().identities[0].access_key_id.clone();
    let unknown = doctor(
        EmulatorConfig::demo(),
        "",
        &[("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNKEY000000")],
    );
    let (saw, fix) = unknown.stopped_at("aws-identity");
    assert!(saw.contains("InvalidClientTokenId"), "{saw}");
    assert!(fix.contains("AWS does not know this access key"), "{fix}");

    let wrong_secret = doctor(
        EmulatorConfig::demo(),
        "",
        &[("AWS_SECRET_ACCESS_KEY", "not-the-secret-of-this-key")],
    );
    let (saw, fix) = wrong_secret.stopped_at("aws-identity");
    assert!(saw.contains("SignatureDoesNotMatch"), "{saw}");
    assert!(fix.contains("secret access key does not belong"), "{fix}");

    let mut config = EmulatorConfig::demo();
    config.identities = vec![AwsIdentity {
        session_token: Some("FwoGZXIvYXdzEexpired".into()),
        ..config.identities[0].clone()
    }];
    config.expired_access_keys = vec![demo_key];
    let expired = doctor(config, "", &[("AWS_SESSION_TOKEN", "FwoGZXIvYXdzEexpired")]);
    let (saw, fix) = expired.stopped_at("aws-identity");
    assert!(saw.contains("ExpiredToken"), "{saw}");
    assert!(fix.contains("has expired"), "{fix}");
}

/// A DEST.toml that is not a destination is the checklist's only line.
#[test]
fn a_broken_configuration_is_the_first_and_only_line() {
    let run = doctor(EmulatorConfig::demo(), "bucket_typo = \"x\"\n", &[]);
    let (saw, _) = run.stopped_at("config");
    assert!(saw.contains("bucket_typo"), "{saw}");
    assert_eq!(run.checklist["checks"].as_array().unwrap().len(), 1);
}
