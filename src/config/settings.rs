//! [`Settings`]: the one declaration of a destination's settings. DEST.toml deserializes into
//! it, the sidecar's environment and `wasi:config` names are derived from it
//! ([`super::environment`]), and the WIT record converts to it in one place on each side.
//! Adding a setting is one field here (with its doc), its validation in [`super::Destination`],
//! and a WIT field if embedders need it.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// What a host hands over; any field may be missing until validation says otherwise. Unknown
/// keys are refused, naming the closest valid one ([`Settings::from_value`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The `external_account` file that `gcloud iam workload-identity-pools create-cred-config
    /// --aws` writes: its path (in DEST.toml relative to that file) or its JSON text.
    #[serde(alias = "credential_config_file")]
    pub credential_config: Option<String>,
    /// The partner project's number (digits), not its id.
    pub project_number: Option<String>,
    /// The workload identity pool: 4-32 of a-z 0-9 -.
    pub pool_id: Option<String>,
    /// The pool's AWS provider: 4-32 of a-z 0-9 -.
    pub provider_id: Option<String>,
    /// The service account to impersonate, `NAME@PROJECT.iam.gserviceaccount.com`.
    pub service_account: Option<String>,
    /// The bucket name alone, no `gs://`.
    pub bucket: Option<String>,
    /// Put in front of every object name.
    pub prefix: Option<String>,
    /// 600 to 43200; 3600 by default. Above 3600 needs the partner's org policy.
    pub token_lifetime_seconds: Option<u32>,
    /// The AWS region; else `AWS_REGION`, `AWS_DEFAULT_REGION`, the instance's zone.
    #[serde(alias = "region")]
    pub aws_region: Option<String>,
    /// The IAM role this partner trusts, assumed (STS `AssumeRole`) with the pipeline's own
    /// credentials before the subject token is signed: `arn:aws:iam::ACCOUNT:role/NAME`.
    pub aws_role_arn: Option<String>,
    /// The external id the role's trust policy requires (`sts:ExternalId`), if any.
    pub aws_external_id: Option<String>,
    /// The assumed role's session name (default `wif-push-UNIXTIME`).
    pub aws_role_session_name: Option<String>,
    /// Allow IMDSv1 when the instance refuses IMDSv2 session tokens (default false).
    pub imds_v1_fallback: Option<bool>,
    /// Sign the subject token's `x-goog-cloud-target-resource` header (default true, as Google
    /// recommends); false leaves it unsigned, byte for byte as google-auth (Python) does.
    pub sign_target_resource: Option<bool>,
    /// Objects up to this many bytes go in one multipart request (default 8 MiB).
    pub single_request_limit: Option<u64>,
    /// Resumable chunk size, a multiple of 256 KiB (default 16 MiB): the most memory an upload
    /// holds.
    pub chunk_size: Option<u64>,
    /// The first retry's pause in milliseconds, doubling after that (default 1000).
    pub initial_retry_delay_ms: Option<u32>,
    /// How long one Cloud Storage request may take, in seconds, before it is abandoned and
    /// retried (1 to 3600, default 120): raise it for chunks over a slow link.
    pub upload_timeout_seconds: Option<u32>,
    /// Endpoint overrides for private or emulated endpoints.
    #[serde(default)]
    pub endpoints: Endpoints,
}

/// Where Google's endpoints are: https only (plain http to a loopback emulator). Each also
/// answers to its older flat name (`token_url`, ...), at the top level of the environment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoints {
    /// Google STS, when no credential configuration says (`https://sts.googleapis.com/v1/token`).
    #[serde(alias = "token_url")]
    pub sts: Option<String>,
    /// IAM Credentials, when no credential configuration says
    /// (`https://iamcredentials.googleapis.com`).
    #[serde(alias = "iam_credentials_url")]
    pub iam_credentials: Option<String>,
    /// Cloud Storage (`https://storage.googleapis.com`).
    #[serde(alias = "storage_url")]
    pub storage: Option<String>,
}

/// A table of settings inside [`Settings`] (`[endpoints]`).
pub(crate) const TABLES: &[&str] = &["endpoints"];

impl Settings {
    /// Settings from a parsed document (DEST.toml as a JSON value). `source` names it in errors.
    pub fn from_value(value: serde_json::Value, source: &str) -> Result<Self, ConfigError> {
        if !value.is_object() {
            return Err(ConfigError {
                field: source.to_owned(),
                problem: "is not a table of settings".into(),
                fix: "write key = value lines, e.g. bucket = \"partner-inbox\"".into(),
            });
        }
        check_keys(&value, "", &names::<Settings>())?;
        for table in TABLES {
            if let Some(inner) = value.get(table) {
                check_keys(inner, &format!("{table}."), &names::<Endpoints>())?;
            }
        }
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            ConfigError {
                field: path,
                problem: format!("is not valid ({})", e.inner()),
                fix: "see the README's DEST.toml section for every setting and its type".into(),
            }
        })
    }

    /// Whether `credential_config` holds the file's JSON text rather than its path.
    pub fn has_inline_credential_config(&self) -> bool {
        self.credential_config
            .as_deref()
            .is_some_and(|c| c.trim_start().starts_with('{'))
    }

    /// Replaces a `credential_config` path by the file's text, read with `read_file` (the host
    /// resolves relative paths first), so the settings travel to where no file system is.
    pub fn read_credential_config(
        &mut self,
        read_file: &dyn Fn(&str) -> std::io::Result<String>,
    ) -> Result<(), ConfigError> {
        if self.has_inline_credential_config() {
            return Ok(());
        }
        if let Some(path) = &self.credential_config {
            let text = read_file(path).map_err(|e| ConfigError {
                field: "credential_config".into(),
                problem: format!(
                    "names {path_q}, which cannot be read ({e})",
                    path_q = crate::error::quote(path, 100)
                ),
                fix: "give the path of the file gcloud wrote (relative to DEST.toml), and let the \
                      host read it (wasmtime: --dir), or give its JSON text"
                    .into(),
            })?;
            self.credential_config = Some(text);
        }
        Ok(())
    }
}

/// The key names `T` accepts, aliases included, as serde declares them.
pub(crate) fn names<T: for<'de> Deserialize<'de>>() -> Vec<&'static str> {
    let mut found = Vec::new();
    let _ = T::deserialize(FieldNames(&mut found));
    found
}

/// The canonical key paths of [`Settings`] (`bucket`, `endpoints.sts`, ...): what
/// serialization writes.
pub fn keys() -> Vec<String> {
    fn walk(prefix: &str, value: &serde_json::Value, out: &mut Vec<String>) {
        if let serde_json::Value::Object(map) = value {
            for (key, inner) in map {
                if inner.is_object() {
                    walk(&format!("{prefix}{key}."), inner, out);
                } else {
                    out.push(format!("{prefix}{key}"));
                }
            }
        }
    }
    let mut out = Vec::new();
    let value = serde_json::to_value(Settings::default()).expect("settings serialize");
    walk("", &value, &mut out);
    out
}

fn check_keys(value: &serde_json::Value, prefix: &str, valid: &[&str]) -> Result<(), ConfigError> {
    let Some(map) = value.as_object() else {
        return Ok(());
    };
    for key in map.keys() {
        if valid.contains(&key.as_str()) {
            continue;
        }
        let closest = valid
            .iter()
            .map(|v| (strsim::levenshtein(key, v), *v))
            .min()
            .filter(|(distance, _)| *distance <= 3.max(key.len() / 3));
        let fix = match closest {
            Some((_, v)) => format!("did you mean {prefix}{v}?"),
            None => format!("valid keys here: {}", valid.join(", ")),
        };
        // A key that is not a bare TOML key (empty, spaces, a line break) is shown quoted.
        let bare = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        return Err(ConfigError {
            field: if bare {
                format!("{prefix}{key}")
            } else {
                format!("{prefix}{key:?}")
            },
            problem: "is not a setting".into(),
            fix,
        });
    }
    Ok(())
}

/// A deserializer that only records the field names a struct asks for.
struct FieldNames<'a>(&'a mut Vec<&'static str>);

impl<'de> serde::Deserializer<'de> for FieldNames<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("only structs are introspected"))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.extend_from_slice(fields);
        Err(serde::de::Error::custom("names recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_the_type() {
        let keys = keys();
        assert!(keys.contains(&"credential_config".to_owned()), "{keys:?}");
        assert!(keys.contains(&"endpoints.sts".to_owned()), "{keys:?}");
        assert!(!keys.contains(&"endpoints".to_owned()));
        let names = names::<Endpoints>();
        assert!(names.contains(&"token_url"), "aliases are names: {names:?}");
    }

    #[test]
    fn unknown_keys_name_the_closest_valid_one() {
        let e = Settings::from_value(serde_json::json!({"bukcet": "x"}), "DEST.toml").unwrap_err();
        assert_eq!(e.field, "bukcet");
        assert_eq!(e.fix, "did you mean bucket?");
        let e = Settings::from_value(serde_json::json!({"endpoints": {"stss": "x"}}), "DEST.toml")
            .unwrap_err();
        assert_eq!(e.field, "endpoints.stss");
        assert_eq!(e.fix, "did you mean endpoints.sts?");
        for (key, field) in [("", "\"\""), ("a\nb", "\"a\\nb\"")] {
            let e = Settings::from_value(serde_json::json!({ key: 1 }), "DEST.toml").unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
        let e =
            Settings::from_value(serde_json::json!({"zzzzzzzzzzzz": 1}), "DEST.toml").unwrap_err();
        assert!(
            e.fix.starts_with("valid keys here: credential_config"),
            "{e}"
        );
    }

    #[test]
    fn old_names_are_aliases() {
        let s = Settings::from_value(
            serde_json::json!({"region": "eu-west-1", "endpoints": {"token_url": "https://x"}}),
            "DEST.toml",
        )
        .unwrap();
        assert_eq!(s.aws_region.as_deref(), Some("eu-west-1"));
        assert_eq!(s.endpoints.sts.as_deref(), Some("https://x"));
    }

    #[test]
    fn wrong_types_name_the_field() {
        let e = Settings::from_value(
            serde_json::json!({"token_lifetime_seconds": "long"}),
            "DEST.toml",
        )
        .unwrap_err();
        assert_eq!(e.field, "token_lifetime_seconds");
        assert!(e.problem.contains("expected u32"), "{e}");
        let e = Settings::from_value(serde_json::json!([1]), "DEST.toml").unwrap_err();
        assert_eq!(e.field, "DEST.toml");
    }
}
