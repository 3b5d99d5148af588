//! The AWS credential chain against moto (`tests/peers/moto_aws.py`), which verifies every
//! SigV4 signature and IAM policy, including roles' trust policies and external ids: a
//! destination's role, web identity (IRSA) and profile chains each end in credentials that
//! sign the subject token, and moto itself, asked the subject token's GetCallerIdentity
//! request, says whose they are.

mod common;

use std::ffi::OsStr;
use std::io::{BufRead as _, Write as _};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

struct Moto {
    child: Child,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    info: Value,
}

impl Moto {
    fn start() -> Moto {
        Moto::start_with(&[])
    }

    fn start_with(args: &[&str]) -> Moto {
        let mut child = Command::new(common::python())
            .arg(common::repo_root().join("tests/peers/moto_aws.py"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start moto");
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let info = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        Moto {
            child,
            stdout,
            info,
        }
    }

    fn port(&self) -> u64 {
        self.info["port"].as_u64().unwrap()
    }

    fn role(&self, name: &str) -> String {
        self.info["roles"][name].as_str().unwrap().to_owned()
    }

    fn key(&self) -> (String, String) {
        (
            self.info["access_key_id"].as_str().unwrap().to_owned(),
            self.info["secret_access_key"].as_str().unwrap().to_owned(),
        )
    }

    /// `host-test subject-token` with only `env`, its AWS STS calls routed to moto.
    fn subject_token(&self, dest: &Path, env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_host-test"));
        cmd.env_clear()
            .envs(env.iter().copied())
            .args([
                OsStr::new("subject-token"),
                "--config".as_ref(),
                dest.as_os_str(),
            ])
            .arg("--connect-to")
            .arg(format!(
                "sts.us-east-1.amazonaws.com=127.0.0.1:{}",
                self.port()
            ));
        cmd.output().unwrap()
    }

    /// Asks moto whose temporary keys signed the subject token (botocore checks the signature
    /// with the keys moto issued); returns the role session's ARN.
    fn caller_identity(&mut self, subject_token: &str) -> String {
        let json = percent_encoding::percent_decode_str(subject_token.trim())
            .decode_utf8()
            .unwrap()
            .replace('\n', "");
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{json}").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let answer: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(answer["ok"], true, "{answer}");
        answer["arn"].as_str().unwrap().to_owned()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn dest(dir: &Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("dest.toml");
    std::fs::write(
        &path,
        format!(
            "project_number = \"123456789012\"\npool_id = \"aws-partner\"\n\
             provider_id = \"aws-sender\"\n\
             service_account = \"uploader@partner-project.iam.gserviceaccount.com\"\n\
             bucket = \"partner-inbox\"\naws_region = \"us-east-1\"\n{extra}"
        ),
    )
    .unwrap();
    path
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_destination_role_is_assumed_with_its_external_id_and_signs_the_subject_token() {
    let mut moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let (key, secret) = moto.key();
    let role = format!(
        "aws_role_arn = \"{}\"\naws_external_id = \"partner-a\"\naws_role_session_name = \"nightly\"\n",
        moto.role("partner-delivery")
    );
    let env = [
        ("AWS_ACCESS_KEY_ID", key.as_str()),
        ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
    ];
    let output = moto.subject_token(&dest(dir.path(), &role), &env);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(!stdout.contains(&secret) && !stderr.contains(&secret));
    assert_eq!(
        moto.caller_identity(&stdout),
        "arn:aws:sts::123456789012:assumed-role/partner-delivery/nightly"
    );

    // The trust policy asks for external id partner-a: another one is refused, and said so.
    let wrong = role.replace("partner-a", "partner-b");
    let output = moto.subject_token(&dest(dir.path(), &wrong), &env);
    let (stdout, stderr) = text(&output);
    assert!(!output.status.success(), "{stdout}");
    assert!(stderr.contains("AccessDenied"), "{stderr}");
    assert!(stderr.contains("sts:ExternalId"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(!stderr.contains(&secret));
}

#[test]
fn web_identity_reads_its_token_file_and_its_role_signs_the_subject_token() {
    let mut moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "canary-web-identity-token\n").unwrap();
    let token_path = token_file.to_str().unwrap();
    let irsa = moto.role("irsa");
    let env = [
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token_path),
        ("AWS_ROLE_ARN", irsa.as_str()),
        ("AWS_ROLE_SESSION_NAME", "pod-7"),
    ];
    let dest = dest(dir.path(), "");
    let output = moto.subject_token(&dest, &env);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(!stdout.contains("canary") && !stderr.contains("canary"));
    assert_eq!(
        moto.caller_identity(&stdout),
        "arn:aws:sts::123456789012:assumed-role/irsa/pod-7"
    );

    // A token file that is empty, or missing, is named; nothing is asked of AWS.
    std::fs::write(&token_file, "").unwrap();
    let (_, stderr) = text(&moto.subject_token(&dest, &env));
    assert!(
        stderr.contains(&format!(
            "the web identity token file \"{token_path}\" is empty"
        )),
        "{stderr}"
    );
    std::fs::remove_file(&token_file).unwrap();
    let (_, stderr) = text(&moto.subject_token(&dest, &env));
    assert!(
        stderr.contains(&format!(
            "cannot read the web identity token file \"{token_path}\""
        )),
        "{stderr}"
    );
}

#[test]
fn a_profile_chain_assumes_each_role_in_turn() {
    let mut moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let (key, secret) = moto.key();
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[profile delivery]\nrole_arn = {}\nsource_profile = partner\nrole_session_name = hop2\n\n\
             [profile partner]\nrole_arn = {}\nexternal_id = partner-a\nsource_profile = keys\n",
            moto.role("second-hop"),
            moto.role("partner-delivery")
        ),
    )
    .unwrap();
    let credentials = dir.path().join("credentials");
    std::fs::write(
        &credentials,
        format!("[keys]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n"),
    )
    .unwrap();
    let env = [
        ("AWS_PROFILE", "delivery"),
        ("AWS_CONFIG_FILE", config.to_str().unwrap()),
        ("AWS_SHARED_CREDENTIALS_FILE", credentials.to_str().unwrap()),
    ];
    let dest = dest(dir.path(), "");
    let output = moto.subject_token(&dest, &env);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(!stdout.contains(&secret) && !stderr.contains(&secret));
    assert_eq!(
        moto.caller_identity(&stdout),
        "arn:aws:sts::123456789012:assumed-role/second-hop/hop2"
    );

    // A profile that is not there, and a loop, are named; the keys never are.
    let missing = [("AWS_PROFILE", "nope"), env[1], env[2]];
    let (_, stderr) = text(&moto.subject_token(&dest, &missing));
    assert!(
        stderr.contains("AWS_PROFILE names the profile \"nope\""),
        "{stderr}"
    );
    std::fs::write(
        &config,
        "[profile a]\nrole_arn = arn:aws:iam::123456789012:role/a\nsource_profile = b\n\
         [profile b]\nrole_arn = arn:aws:iam::123456789012:role/b\nsource_profile = a\n",
    )
    .unwrap();
    let looping = [("AWS_PROFILE", "a"), env[1], env[2]];
    let (_, stderr) = text(&moto.subject_token(&dest, &looping));
    assert!(stderr.contains("a -> b -> a"), "{stderr}");
    assert!(!stderr.contains(&secret));
}

/// The emulator's AWS STS: a destination's role is assumed once for a whole command (its keys
/// are kept until shortly before they expire), and signs the subject token Google accepts.
#[test]
fn a_role_assumed_at_the_emulator_serves_every_delivery_of_a_command() {
    use wif_push_emulator::{EmulatorConfig, Endpoint};

    let role = "aws_role_arn = \"arn:aws:iam::111122223333:role/wif-push-sender\"\n\
                aws_role_session_name = \"nightly\"\n";
    let common::Started {
        demo,
        dir,
        dest,
        runtime: _runtime,
    } = common::start_demo(EmulatorConfig::demo(), role);
    let files: Vec<_> = ["a.txt", "b.txt"]
        .iter()
        .map(|name| {
            let path = dir.path().join(name);
            std::fs::write(&path, name.repeat(100)).unwrap();
            path
        })
        .collect();
    let mut args = vec![OsStr::new("deliver"), "--config".as_ref(), dest.as_os_str()];
    args.extend(files.iter().map(|f| f.as_os_str()));
    let output = common::host_test_against(&demo, &args).output().unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    let log = demo.emulator.log();
    let assumed: Vec<_> = log
        .iter()
        .filter(|e| e.endpoint == Endpoint::AwsSts)
        .collect();
    assert_eq!(assumed.len(), 1, "{log:?}");
    let session = "arn:aws:sts::111122223333:assumed-role/wif-push-sender/nightly";
    assert_eq!(
        assumed[0].outcome,
        format!("AssumeRole: credentials issued to {session}")
    );
    let exchanged = log.iter().find(|e| e.endpoint == Endpoint::Sts).unwrap();
    assert_eq!(
        exchanged.outcome,
        format!("federated token issued to {session}")
    );
    // The assumed keys are canaries: never shown.
    for assumed in demo.emulator.assumed_identities() {
        let token = assumed.session_token.unwrap();
        for secret in [assumed.secret_access_key.as_str(), token.as_str()] {
            assert!(!stdout.contains(secret) && !stderr.contains(secret));
        }
    }
}

#[test]
fn the_emulator_refuses_a_missing_external_id_and_a_wrong_web_identity_token() {
    use wif_push_emulator::EmulatorConfig;

    let mut config = EmulatorConfig::demo();
    config.aws_roles[0].external_id = Some("partner-a".into());
    config.aws_roles[0].web_identity_token = Some("the-real-token".into());
    let role_arn = "arn:aws:iam::111122223333:role/wif-push-sender";
    let role = format!("aws_role_arn = \"{role_arn}\"\n");
    let common::Started {
        demo,
        dir,
        dest,
        runtime: _runtime,
    } = common::start_demo(config, &role);
    let args = [OsStr::new("token"), "--config".as_ref(), dest.as_os_str()];
    let output = common::host_test_against(&demo, &args).output().unwrap();
    let (_, stderr) = text(&output);
    assert!(!output.status.success());
    assert!(stderr.contains("AccessDenied"), "{stderr}");
    assert!(stderr.contains("set aws_external_id"), "{stderr}");

    std::fs::write(&dest, common::dest_toml(&demo, "")).unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "canary-stale-token").unwrap();
    let mut cmd = common::host_test_against(&demo, &args);
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", &token_file)
        .env("AWS_ROLE_ARN", role_arn);
    let output = cmd.output().unwrap();
    let (stdout, stderr) = text(&output);
    assert!(!output.status.success());
    assert!(stderr.contains("InvalidIdentityToken"), "{stderr}");
    assert!(
        stderr.contains("projected service-account token"),
        "{stderr}"
    );
    assert!(!stdout.contains("canary") && !stderr.contains("canary"));
}

/// `host-test doctor` asks AWS who the assumed role's keys are (GetCallerIdentity, as the AWS
/// CLI asks): moto checks the signature and names the role session, and the mapping is worked
/// out for it. Google is the emulator here, which does not know moto's keys, so the checklist
/// stops at the exchange, after the identity and the mapping passed.
#[test]
fn the_doctor_learns_the_caller_from_aws_itself() {
    let moto = Moto::start();
    let google = common::start_demo(wif_push_emulator::EmulatorConfig::demo(), "");
    let dir = tempfile::tempdir().unwrap();
    let (key, secret) = moto.key();
    let role = format!(
        "aws_role_arn = \"{}\"\naws_external_id = \"partner-a\"\naws_role_session_name = \"nightly\"\n",
        moto.role("partner-delivery")
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_host-test"));
    cmd.env_clear()
        .env("AWS_ACCESS_KEY_ID", &key)
        .env("AWS_SECRET_ACCESS_KEY", &secret)
        .args([OsStr::new("--json"), "doctor".as_ref(), "--config".as_ref()])
        .arg(dest(dir.path(), &role))
        .arg("--connect-to")
        .arg(format!(
            "sts.us-east-1.amazonaws.com=127.0.0.1:{}",
            moto.port()
        ));
    for route in google
        .demo
        .routes
        .iter()
        .filter(|r| r.host.ends_with("googleapis.com"))
    {
        cmd.arg("--connect-to")
            .arg(format!("{}={}", route.host, route.target));
    }
    let output = cmd.output().unwrap();
    let (stdout, stderr) = text(&output);
    assert!(!stdout.contains(&secret) && !stderr.contains(&secret));
    let checklist: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let checks = checklist["checks"].as_array().unwrap();
    let line = |step: &str| checks.iter().find(|c| c["step"] == step).unwrap();
    let identity = line("aws-identity");
    assert_eq!(identity["passed"], true, "{identity}");
    let saw = identity["saw"].as_str().unwrap();
    assert!(
        saw.contains(
            "arn:aws:sts::123456789012:assumed-role/partner-delivery/nightly (account 123456789012)"
        ),
        "{saw}"
    );
    assert!(
        line("mapping")["saw"]
            .as_str()
            .unwrap()
            .contains("attribute.aws_role = partner-delivery")
    );
    let last = checks.last().unwrap();
    assert_eq!(last["step"], "sts-exchange", "{stdout}");
    assert_eq!(last["passed"], false);
    assert_eq!(output.status.code(), Some(1));
}
