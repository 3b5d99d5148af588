//! The partner kit: the partner's Google Cloud set-up for one sender, as the partner guide
//! describes it (§2, with the §5 condition and audit logs), written once as a gcloud script and
//! once as Terraform, with the §3 checklist filled in and the sender's `DEST.toml`.
//!
//! Every value is checked before anything is written, with the errors `DEST.toml` gives: the
//! field (here, the flag), what it is, and what is expected.

use wif_push::config::{ConfigError, validate_bucket};
use wif_push::wif::mapping;

/// What the partner and the sender agree on (§3.1 and §3.2), before it is checked.
#[derive(Debug, Clone)]
pub struct KitInput {
    pub aws_account_id: String,
    pub aws_role_arn: String,
    pub project_id: String,
    pub project_number: String,
    pub pool_id: String,
    pub provider_id: String,
    /// The service account's account id (the part before `@`).
    pub service_account: String,
    pub bucket: String,
}

/// The guide's example names, as defaults.
pub const DEFAULT_POOL_ID: &str = "klavi-access-pool";
pub const DEFAULT_PROVIDER_ID: &str = "klavi-aws-provider";
pub const DEFAULT_SERVICE_ACCOUNT: &str = "klavi-data-ingestor";
pub const DEFAULT_BUCKET: &str = "partner-data-inbound";

/// A checked kit: everything the files need.
#[derive(Debug, Clone)]
pub struct Kit {
    input: KitInput,
    /// The role's name, which its sessions' ARNs carry (`assumed-role/NAME/…`).
    role_name: String,
}

fn refuse(field: &str, value: &str, fix: &str) -> ConfigError {
    ConfigError {
        field: field.to_owned(),
        problem: format!("is {}", wif_push::error::quote(value, 100)),
        fix: fix.to_owned(),
    }
}

fn id_chars(value: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && value.as_bytes()[0].is_ascii_lowercase()
        && !value.ends_with('-')
}

impl Kit {
    /// Checks every value (ids, the ARN's shape and its account, the project number).
    pub fn new(input: KitInput) -> Result<Kit, ConfigError> {
        let account = &input.aws_account_id;
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(refuse(
                "--aws-account-id",
                account,
                "expected the sender's 12-digit AWS account id, e.g. \"111122223333\"",
            ));
        }
        let arn = input.aws_role_arn.trim();
        let role_path = arn
            .strip_prefix("arn:aws:iam::")
            .and_then(|rest| rest.split_once(":role/"))
            .filter(|(arn_account, path)| {
                arn_account.len() == 12
                    && !path.is_empty()
                    && path.len() <= 512
                    && path
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b))
                    && !path.ends_with('/')
            });
        let Some((arn_account, path)) = role_path else {
            return Err(refuse(
                "--aws-role-arn",
                arn,
                "expected the IAM role the sender delivers as, e.g. \
                 \"arn:aws:iam::111122223333:role/partner-delivery\"",
            ));
        };
        if arn_account != account {
            return Err(refuse(
                "--aws-role-arn",
                arn,
                &format!(
                    "the role is in account {arn_account}, not in --aws-account-id {account}: \
                     the provider would trust the wrong account"
                ),
            ));
        }
        let role_name = path.rsplit('/').next().unwrap_or(path).to_owned();
        if role_name.len() > 64 {
            return Err(refuse(
                "--aws-role-arn",
                arn,
                "a role name has at most 64 characters",
            ));
        }
        if !id_chars(&input.project_id, 6, 30) {
            return Err(refuse(
                "--project-id",
                &input.project_id,
                "expected the partner's project id: 6-30 lowercase letters, digits and hyphens, \
                 starting with a letter, e.g. \"partner-project\"",
            ));
        }
        let number = &input.project_number;
        if number.is_empty() || number.len() > 20 || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(refuse(
                "--project-number",
                number,
                "expected the project's number (digits only, e.g. \"123456789012\"; `gcloud \
                 projects describe PROJECT_ID --format='value(projectNumber)'`)",
            ));
        }
        for (field, value) in [
            ("--pool-id", &input.pool_id),
            ("--provider-id", &input.provider_id),
        ] {
            if !id_chars(value, 4, 32) || value.starts_with("gcp-") {
                return Err(refuse(
                    field,
                    value,
                    "expected 4-32 lowercase letters, digits and hyphens, starting with a letter \
                     and not with \"gcp-\"",
                ));
            }
        }
        if !id_chars(&input.service_account, 6, 30) {
            return Err(refuse(
                "--service-account",
                &input.service_account,
                "expected the service account's id (the part before @): 6-30 lowercase letters, \
                 digits and hyphens, starting with a letter",
            ));
        }
        validate_bucket(&input.bucket).map_err(|mut e| {
            e.field = "--bucket".into();
            e
        })?;
        Ok(Kit {
            input: KitInput {
                aws_role_arn: arn.to_owned(),
                ..input
            },
            role_name,
        })
    }

    pub fn service_account_email(&self) -> String {
        format!(
            "{}@{}.iam.gserviceaccount.com",
            self.input.service_account, self.input.project_id
        )
    }

    /// The attribute condition: only the sender's role's sessions.
    pub fn condition(&self) -> String {
        mapping::condition(&self.input.aws_account_id, &self.role_name)
    }

    /// The principal set bound to `roles/iam.workloadIdentityUser`.
    pub fn principal_set(&self) -> String {
        mapping::principal_set(
            &self.input.project_number,
            &self.input.pool_id,
            &self.role_name,
        )
    }

    /// The files of the kit, by name.
    pub fn files(&self) -> Vec<(&'static str, String)> {
        vec![
            ("setup.sh", self.gcloud_script()),
            ("main.tf", self.terraform()),
            ("CHECKLIST.md", self.checklist()),
            ("DEST.toml", self.dest_toml()),
        ]
    }

    /// §2 as gcloud commands, in order; stops at the first that fails.
    pub fn gcloud_script(&self) -> String {
        let i = &self.input;
        format!(
            r#"#!/usr/bin/env bash
# The partner's Google Cloud set-up for one sender (partner guide §2 and §5), written by
# `host-test partner-kit`. Run it once, as someone who may create workload identity pools and
# service accounts in the project and change the bucket's and the project's IAM policies.
set -euo pipefail

PROJECT_ID={project_id}
PROJECT_NUMBER={project_number}
POOL_ID={pool_id}
PROVIDER_ID={provider_id}
SERVICE_ACCOUNT={sa_email}
BUCKET={bucket}
AWS_ACCOUNT_ID={account}

# §2.1 The pool, and the AWS provider trusting the sender's account, with the guide's mapping
# and (§5) a condition that admits only the sender's role.
gcloud iam workload-identity-pools create "$POOL_ID" \
  --project="$PROJECT_ID" --location=global \
  --display-name="Sender {account}"
gcloud iam workload-identity-pools providers create-aws "$PROVIDER_ID" \
  --project="$PROJECT_ID" --location=global --workload-identity-pool="$POOL_ID" \
  --account-id="$AWS_ACCOUNT_ID" \
  --attribute-mapping="google.subject=assertion.arn,attribute.aws_role={mapping}" \
  --attribute-condition="{condition}"

# §2.2 The service account, which may create objects in the bucket and nothing more.
gcloud iam service-accounts create {sa_id} \
  --project="$PROJECT_ID" --display-name="Deliveries from {role_name}"
gcloud storage buckets add-iam-policy-binding "gs://$BUCKET" \
  --member="serviceAccount:$SERVICE_ACCOUNT" --role=roles/storage.objectCreator

# The sender's role may impersonate it.
gcloud iam service-accounts add-iam-policy-binding "$SERVICE_ACCOUNT" \
  --project="$PROJECT_ID" --role=roles/iam.workloadIdentityUser \
  --member="{principal_set}"

# §5 Data Access audit logs for Cloud Storage: every object written is logged.
POLICY="$(mktemp)"
trap 'rm -f "$POLICY"' EXIT
gcloud projects get-iam-policy "$PROJECT_ID" --format=json > "$POLICY"
python3 - "$POLICY" <<'PY'
import json, sys
path = sys.argv[1]
with open(path) as f:
    policy = json.load(f)
configs = policy.setdefault("auditConfigs", [])
storage = next((c for c in configs if c.get("service") == "storage.googleapis.com"), None)
if storage is None:
    storage = {{"service": "storage.googleapis.com"}}
    configs.append(storage)
logs = storage.setdefault("auditLogConfigs", [])
if not any(c.get("logType") == "DATA_WRITE" for c in logs):
    logs.append({{"logType": "DATA_WRITE"}})
with open(path, "w") as f:
    json.dump(policy, f)
PY
gcloud projects set-iam-policy "$PROJECT_ID" "$POLICY" --format=none

echo "Done. Send the sender the values in CHECKLIST.md (§3.1)."
"#,
            project_id = i.project_id,
            project_number = i.project_number,
            pool_id = i.pool_id,
            provider_id = i.provider_id,
            sa_email = self.service_account_email(),
            sa_id = i.service_account,
            bucket = i.bucket,
            account = i.aws_account_id,
            mapping = mapping::AWS_ROLE_MAPPING,
            condition = self.condition(),
            role_name = self.role_name,
            principal_set = self.principal_set(),
        )
    }

    /// The same set-up for Terraform's google provider.
    pub fn terraform(&self) -> String {
        let i = &self.input;
        format!(
            r#"# The partner's Google Cloud set-up for one sender (partner guide §2 and §5), written by
# `host-test partner-kit`: the same as setup.sh, for Terraform's google provider.

terraform {{
  required_providers {{
    google = {{
      source  = "hashicorp/google"
      version = ">= 5.0"
    }}
  }}
}}

provider "google" {{
  project = "{project_id}"
}}

# §2.1 The pool, and the AWS provider trusting the sender's account.
resource "google_iam_workload_identity_pool" "sender" {{
  workload_identity_pool_id = "{pool_id}"
  display_name              = "Sender {account}"
}}

resource "google_iam_workload_identity_pool_provider" "aws" {{
  workload_identity_pool_id          = google_iam_workload_identity_pool.sender.workload_identity_pool_id
  workload_identity_pool_provider_id = "{provider_id}"
  attribute_mapping = {{
    "google.subject"     = "assertion.arn"
    "attribute.aws_role" = "{mapping}"
  }}
  # §5: only the sender's role.
  attribute_condition = "{condition}"
  aws {{
    account_id = "{account}"
  }}
}}

# §2.2 The service account, which may create objects in the bucket and nothing more.
resource "google_service_account" "uploader" {{
  account_id   = "{sa_id}"
  display_name = "Deliveries from {role_name}"
}}

resource "google_storage_bucket_iam_member" "uploader_creates_objects" {{
  bucket = "{bucket}"
  role   = "roles/storage.objectCreator"
  member = "serviceAccount:${{google_service_account.uploader.email}}"
}}

# The sender's role may impersonate it.
resource "google_service_account_iam_member" "sender_impersonates_uploader" {{
  service_account_id = google_service_account.uploader.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "{principal_set}"
  depends_on         = [google_iam_workload_identity_pool_provider.aws]
}}

# §5 Data Access audit logs for Cloud Storage.
resource "google_project_iam_audit_config" "storage_writes" {{
  project = "{project_id}"
  service = "storage.googleapis.com"
  audit_log_config {{
    log_type = "DATA_WRITE"
  }}
}}
"#,
            project_id = i.project_id,
            pool_id = i.pool_id,
            provider_id = i.provider_id,
            sa_id = i.service_account,
            bucket = i.bucket,
            account = i.aws_account_id,
            mapping = mapping::AWS_ROLE_MAPPING,
            condition = self.condition(),
            role_name = self.role_name,
            principal_set = self.principal_set(),
        )
    }

    /// §3 of the guide, filled in.
    pub fn checklist(&self) -> String {
        let i = &self.input;
        format!(
            "# Information exchange (partner guide §3)\n\n\
             ## §3.1 From the partner to the sender\n\n\
             | Parameter | Value |\n|---|---|\n\
             | GCP project number | `{number}` |\n\
             | Workload pool id | `{pool}` |\n\
             | Provider id | `{provider}` |\n\
             | GCP service account | `{sa}` |\n\
             | GCS bucket name | `{bucket}` |\n\n\
             ## §3.2 From the sender to the partner\n\n\
             | Parameter | Value |\n|---|---|\n\
             | AWS account id | `{account}` |\n\
             | IAM role ARN | `{arn}` |\n\n\
             ## What the partner's set-up admits\n\n\
             - Sessions of the role `{role}` only (attribute condition): `{condition}`\n\
             - They map to `attribute.aws_role = {role}`, and this principal set may impersonate \
             the service account: `{principal_set}`\n\
             - The service account holds `roles/storage.objectCreator` on `gs://{bucket}` and \
             nothing else: it can create objects, never read, list or overwrite them.\n\n\
             The sender checks the whole chain, step by step, with `host-test doctor --config DEST.toml`.\n",
            number = i.project_number,
            pool = i.pool_id,
            provider = i.provider_id,
            sa = self.service_account_email(),
            bucket = i.bucket,
            account = i.aws_account_id,
            arn = i.aws_role_arn,
            role = self.role_name,
            condition = self.condition(),
            principal_set = self.principal_set(),
        )
    }

    /// The sender's destination file.
    pub fn dest_toml(&self) -> String {
        let i = &self.input;
        format!(
            "# The partner's destination, written by host-test partner-kit (partner guide §3.1).\n\
             project_number = \"{}\"\n\
             pool_id = \"{}\"\n\
             provider_id = \"{}\"\n\
             service_account = \"{}\"\n\
             bucket = \"{}\"\n\
             # The region the pipeline signs its subject token in, when its environment has none:\n\
             # aws_region = \"us-east-1\"\n\
             # When the pipeline runs as another role and must assume the one the partner trusts:\n\
             # aws_role_arn = \"{}\"\n",
            i.project_number,
            i.pool_id,
            i.provider_id,
            self.service_account_email(),
            i.bucket,
            i.aws_role_arn,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn input() -> KitInput {
        KitInput {
            aws_account_id: "111122223333".into(),
            aws_role_arn: "arn:aws:iam::111122223333:role/delivery/partner-delivery".into(),
            project_id: "partner-project".into(),
            project_number: "123456789012".into(),
            pool_id: DEFAULT_POOL_ID.into(),
            provider_id: DEFAULT_PROVIDER_ID.into(),
            service_account: DEFAULT_SERVICE_ACCOUNT.into(),
            bucket: DEFAULT_BUCKET.into(),
        }
    }

    /// A flag, and how to spoil its value.
    type Spoil = (&'static str, fn(&mut KitInput));

    #[test]
    fn every_value_is_checked_and_named() {
        let cases: [Spoil; 9] = [
            ("--aws-account-id", |i| {
                i.aws_account_id = "1111-2222-3333".into()
            }),
            ("--aws-role-arn", |i| {
                i.aws_role_arn = "arn:aws:iam::111122223333:user/alice".into()
            }),
            ("--aws-role-arn", |i| {
                i.aws_role_arn = "arn:aws:iam::999999999999:role/x".into()
            }),
            ("--project-id", |i| i.project_id = "Partner_Project".into()),
            ("--project-number", |i| {
                i.project_number = "partner-project".into()
            }),
            ("--pool-id", |i| i.pool_id = "gcp-pool".into()),
            ("--provider-id", |i| i.provider_id = "aws".into()),
            ("--service-account", |i| {
                i.service_account = "x@y.iam.gserviceaccount.com".into()
            }),
            ("--bucket", |i| i.bucket = "gs://bucket".into()),
        ];
        for (field, spoil) in cases {
            let mut bad = input();
            spoil(&mut bad);
            let e = Kit::new(bad).unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(!e.fix.is_empty());
        }
        let e = Kit::new(KitInput {
            aws_role_arn: "arn:aws:iam::999999999999:role/x".into(),
            ..input()
        })
        .unwrap_err();
        assert!(
            e.fix
                .contains("account 999999999999, not in --aws-account-id 111122223333"),
            "{e}"
        );
    }

    #[test]
    fn the_role_s_sessions_are_what_the_condition_and_the_binding_admit() {
        let kit = Kit::new(input()).unwrap();
        // A role with a path: its sessions carry the name alone.
        let session = "arn:aws:sts::111122223333:assumed-role/partner-delivery/pipeline-7";
        let mapped = mapping::map(session);
        assert_eq!(
            kit.principal_set(),
            mapping::principal_set("123456789012", DEFAULT_POOL_ID, &mapped.aws_role)
        );
        assert!(kit.condition().contains(&format!(
            "'{}'",
            mapping::condition_prefix("111122223333", "partner-delivery")
        )));
        assert!(session.starts_with(&mapping::condition_prefix(
            "111122223333",
            "partner-delivery"
        )));
        for (name, text) in kit.files() {
            assert!(
                text.contains(&kit.principal_set()) || name == "DEST.toml",
                "{name}"
            );
        }
    }
}
