//! `host-test partner-kit`: every value checked; the gcloud script run by the real gcloud CLI
//! against a recording stand-in of Google's APIs (through gcloud's endpoint overrides), which
//! sees exactly the guide's set-up; the Terraform formatted as `terraform fmt` wants; the
//! sender's DEST.toml read back as a destination.

mod common;

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

const ARN: &str = "arn:aws:iam::111122223333:role/pipelines/partner-delivery";
const PRINCIPAL_SET: &str = "principalSet://iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/klavi-access-pool/attribute.aws_role/partner-delivery";
const CONDITION: &str =
    "assertion.arn.startsWith('arn:aws:sts::111122223333:assumed-role/partner-delivery/')";

fn kit(out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_host-test"))
        .args([
            "partner-kit",
            "--aws-account-id",
            "111122223333",
            "--aws-role-arn",
            ARN,
            "--project-id",
            "partner-project",
            "--project-number",
            "123456789012",
            "--out",
        ])
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

fn on_path(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn bad_values_are_named_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("kit");
    let output = kit(&out, &["--bucket", "gs://partner-data-inbound"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--bucket: is \"gs://partner-data-inbound\""),
        "{stderr}"
    );
    assert!(!out.exists());
    let output = Command::new(env!("CARGO_BIN_EXE_host-test"))
        .args([
            "partner-kit",
            "--aws-account-id",
            "999999999999",
            "--aws-role-arn",
            ARN,
        ])
        .args([
            "--project-id",
            "partner-project",
            "--project-number",
            "123456789012",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .contains("the role is in account 111122223333, not in --aws-account-id 999999999999"),
        "{stderr}"
    );
    assert!(!out.exists());
    // A kit already there is kept.
    assert!(kit(&out, &[]).status.success());
    let again = kit(&out, &[]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("setup.sh exists"));
}

#[test]
fn the_dest_toml_is_the_sender_s_destination() {
    let dir = tempfile::tempdir().unwrap();
    assert!(kit(dir.path(), &[]).status.success());
    let settings = wif_push_host::dest::load(&dir.path().join("DEST.toml")).unwrap();
    let destination = wif_push::config::Destination::from_settings(&settings).unwrap();
    assert_eq!(destination.bucket, "partner-data-inbound");
    assert_eq!(
        settings.service_account.as_deref(),
        Some("klavi-data-ingestor@partner-project.iam.gserviceaccount.com")
    );
    assert_eq!(
        destination.federation.audience,
        "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/klavi-access-pool/providers/klavi-aws-provider"
    );
}

#[test]
fn terraform_fmt_accepts_the_terraform() {
    let dir = tempfile::tempdir().unwrap();
    assert!(kit(dir.path(), &[]).status.success());
    let tf = std::fs::read_to_string(dir.path().join("main.tf")).unwrap();
    for resource in [
        "google_iam_workload_identity_pool\" \"sender\"",
        "google_iam_workload_identity_pool_provider\" \"aws\"",
        "google_service_account\" \"uploader\"",
        "google_storage_bucket_iam_member\" \"uploader_creates_objects\"",
        "google_service_account_iam_member\" \"sender_impersonates_uploader\"",
        "google_project_iam_audit_config\" \"storage_writes\"",
    ] {
        assert!(tf.contains(resource), "{resource}");
    }
    assert!(tf.contains(&format!("attribute_condition = \"{CONDITION}\"")));
    assert!(tf.contains(&format!("member             = \"{PRINCIPAL_SET}\"")));
    assert_eq!(tf.matches("\"roles/").count(), 2, "two roles and no more");
    if !on_path("terraform") {
        eprintln!("terraform is not installed: `terraform fmt -check` not run");
        return;
    }
    let status = Command::new("terraform")
        .args(["fmt", "-check", "-diff", "main.tf"])
        .current_dir(dir.path())
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .status()
        .unwrap();
    assert!(status.success(), "terraform fmt would change main.tf");
}

/// The script, run by gcloud against the recorder: every command accepted, and the requests
/// carry the mapping, the condition, the two roles and their members, and the audit logs.
#[test]
fn gcloud_runs_the_script_and_google_sees_the_guide_s_set_up() {
    if !on_path("gcloud") {
        eprintln!("gcloud is not installed: the partner kit's script was not run");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("kit");
    assert!(kit(&out, &[]).status.success());
    let log = dir.path().join("requests.jsonl");
    let mut recorder = Command::new("python3")
        .arg(common::repo_root().join("tests/peers/google_api_recorder.py"))
        .arg(&log)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut port = String::new();
    std::io::BufReader::new(recorder.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    let endpoint = format!("http://127.0.0.1:{}/", port.trim());
    let output = Command::new("bash")
        .arg(out.join("setup.sh"))
        .env("CLOUDSDK_CONFIG", dir.path().join("gcloud"))
        .env("CLOUDSDK_AUTH_ACCESS_TOKEN", "ya29.recorder-token")
        .env("CLOUDSDK_CORE_DISABLE_PROMPTS", "1")
        .env("CLOUDSDK_API_ENDPOINT_OVERRIDES_IAM", &endpoint)
        .env("CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE", &endpoint)
        .env(
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDRESOURCEMANAGER",
            &endpoint,
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
    drop(recorder.stdin.take());
    recorder.wait().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let requests: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let find = |method: &str, path_end: &str| -> &Value {
        requests
            .iter()
            .find(|r| r["method"] == method && r["path"].as_str().unwrap().ends_with(path_end))
            .unwrap_or_else(|| panic!("no {method} …{path_end} in {requests:#?}"))
    };
    assert!(
        requests
            .iter()
            .all(|r| r["authorization"] == "Bearer ya29.recorder-token")
    );

    let pool = find(
        "POST",
        "/projects/partner-project/locations/global/workloadIdentityPools",
    );
    assert_eq!(pool["query"]["workloadIdentityPoolId"], "klavi-access-pool");
    let provider = find("POST", "/workloadIdentityPools/klavi-access-pool/providers");
    assert_eq!(
        provider["query"]["workloadIdentityPoolProviderId"],
        "klavi-aws-provider"
    );
    assert_eq!(provider["body"]["aws"]["accountId"], "111122223333");
    assert_eq!(
        provider["body"]["attributeMapping"],
        json!({
            "google.subject": "assertion.arn",
            "attribute.aws_role": "assertion.arn.contains('role/') ? assertion.arn.extract('role/{role_name}/') : assertion.arn",
        })
    );
    assert_eq!(provider["body"]["attributeCondition"], CONDITION);

    let account = find("POST", "/projects/partner-project/serviceAccounts");
    assert_eq!(account["body"]["accountId"], "klavi-data-ingestor");
    let impersonation = find(
        "POST",
        "/serviceAccounts/klavi-data-ingestor@partner-project.iam.gserviceaccount.com:setIamPolicy",
    );
    assert_eq!(
        impersonation["body"]["policy"]["bindings"],
        json!([{"role": "roles/iam.workloadIdentityUser", "members": [PRINCIPAL_SET]}])
    );
    let bucket = find("PUT", "/storage/v1/b/partner-data-inbound/iam");
    assert_eq!(
        bucket["body"]["bindings"],
        json!([{
            "role": "roles/storage.objectCreator",
            "members": ["serviceAccount:klavi-data-ingestor@partner-project.iam.gserviceaccount.com"],
        }])
    );
    let project = find("POST", "/projects/partner-project:setIamPolicy");
    let policy = &project["body"]["policy"];
    assert_eq!(
        policy["auditConfigs"],
        json!([{"service": "storage.googleapis.com", "auditLogConfigs": [{"logType": "DATA_WRITE"}]}])
    );
    // The project's own bindings are kept as they were, and no role is added to them.
    assert_eq!(
        policy["bindings"],
        json!([{"role": "roles/owner", "members": ["user:admin@partner.example"]}])
    );
    let set_calls = requests
        .iter()
        .filter(|r| r["method"] != "GET" && !r["path"].as_str().unwrap().ends_with(":getIamPolicy"))
        .count();
    assert_eq!(
        set_calls, 6,
        "pool, provider, account, bucket, impersonation, audit logs: {requests:#?}"
    );
}
