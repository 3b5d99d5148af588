//! The AWS SDKs' shared cases for the config and credentials files
//! (`tests/vectors/aws-config`, from smithy-rs, see `SOURCE.md`), every case of each file run
//! through [`profile`]:
//! - `profile-parser-tests.json`: the profiles (and sso-sessions) two files' text define, or
//!   that the text is refused;
//! - `file-location-tests.json`: which files and profile the environment selects (the
//!   non-Windows cases: wif-push reads `HOME` only);
//! - `assume-role-tests.json`: the chain a selected profile resolves into, or that it is
//!   refused.
//!
//! The expected error texts are the Rust SDK's; only the kind of outcome is compared, and our
//! own texts are checked to be one line.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use wif_push::aws::profile::chain::{Base, Chain, resolve};
use wif_push::aws::profile::{self, Profiles};

type Sections = BTreeMap<String, BTreeMap<String, String>>;

fn vectors<T: DeserializeOwned>(file: &str) -> T {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/aws-config")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Panics with every failure, so one run shows them all.
fn report(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} failing case(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[derive(Deserialize)]
struct ParserSuite {
    tests: Vec<ParserCase>,
}

#[derive(Deserialize)]
struct ParserCase {
    name: String,
    input: ParserInput,
    output: ParserOutput,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ParserInput {
    config_file: Option<String>,
    credentials_file: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
enum ParserOutput {
    Config {
        profiles: Sections,
        #[serde(default)]
        sso_sessions: Sections,
    },
    ErrorContaining(String),
}

#[test]
fn profile_parser_cases() {
    let suite: ParserSuite = vectors("profile-parser-tests.json");
    let mut failures = Vec::new();
    let mut run = Vec::new();
    for case in &suite.tests {
        run.push(case.name.as_str());
        let parsed = profile::parse(
            case.input.config_file.as_deref().unwrap_or_default(),
            case.input.credentials_file.as_deref().unwrap_or_default(),
        );
        let name = &case.name;
        match (&case.output, parsed) {
            (
                ParserOutput::Config {
                    profiles,
                    sso_sessions,
                },
                Ok(parsed),
            ) => {
                if parsed.profiles() != profiles {
                    failures.push(format!(
                        "{name}: profiles {:?}, expected {profiles:?}",
                        parsed.profiles()
                    ));
                }
                if parsed.sso_sessions() != sso_sessions {
                    failures.push(format!(
                        "{name}: sso_sessions {:?}, expected {sso_sessions:?}",
                        parsed.sso_sessions()
                    ));
                }
            }
            (ParserOutput::ErrorContaining(_), Err(err)) => {
                // Every refused case is in the config file, and says where.
                let text = err.to_string();
                if !text.contains("AWS config file") || !text.contains("line ") {
                    failures.push(format!("{name}: the error does not say where: {text}"));
                }
                if text.contains('\n') {
                    failures.push(format!("{name}: the error is not one line: {text}"));
                }
            }
            (ParserOutput::Config { .. }, Err(err)) => {
                failures.push(format!("{name}: expected profiles, got the error: {err}"));
            }
            (ParserOutput::ErrorContaining(text), Ok(parsed)) => {
                failures.push(format!(
                    "{name}: expected an error like \"{text}\", got {:?}",
                    parsed.profiles()
                ));
            }
        }
    }
    report(failures);
    assert_eq!(run.len(), 65, "every parser case runs");
}

#[derive(Deserialize)]
struct LocationSuite {
    tests: Vec<LocationCase>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LocationCase {
    name: String,
    environment: HashMap<String, String>,
    platform: String,
    profile: Option<String>,
    config_location: String,
    credentials_location: String,
}

#[test]
fn file_location_cases() {
    let suite: LocationSuite = vectors("file-location-tests.json");
    assert_eq!(suite.tests.len(), 9);
    let mut failures = Vec::new();
    let mut run = Vec::new();
    // The Windows cases find the home in USERPROFILE or HOMEDRIVE and HOMEPATH, and use `\`.
    for case in suite.tests.iter().filter(|c| c.platform != "windows") {
        run.push(case.name.as_str());
        let env = &case.environment;
        let found = profile::locations(&|name: &str| env.get(name).cloned());
        let name = &case.name;
        if found.config.as_deref() != Some(case.config_location.as_str()) {
            failures.push(format!(
                "{name}: config file {:?}, expected {}",
                found.config, case.config_location
            ));
        }
        if found.credentials.as_deref() != Some(case.credentials_location.as_str()) {
            failures.push(format!(
                "{name}: credentials file {:?}, expected {}",
                found.credentials, case.credentials_location
            ));
        }
        if let Some(expected) = &case.profile
            && &found.profile != expected
        {
            failures.push(format!(
                "{name}: profile {}, expected {expected}",
                found.profile
            ));
        }
    }
    report(failures);
    assert_eq!(
        run.len(),
        4,
        "every non-Windows location case runs: {run:?}"
    );
}

#[derive(Deserialize)]
struct RoleCase {
    docs: String,
    input: RoleInput,
    output: RoleOutput,
}

#[derive(Deserialize)]
struct RoleInput {
    profiles: Sections,
    selected_profile: String,
    #[serde(default)]
    sso_sessions: Sections,
}

#[derive(Deserialize)]
enum RoleOutput {
    ProfileChain(Vec<Provider>),
    Error(String),
}

/// One link of the chain, as the cases write it.
#[derive(Debug, PartialEq, Eq, Deserialize)]
enum Provider {
    AccessKey {
        access_key_id: String,
        secret_access_key: String,
        session_token: Option<String>,
        account_id: Option<String>,
    },
    AssumeRole {
        role_arn: String,
        external_id: Option<String>,
        role_session_name: Option<String>,
    },
    NamedSource(String),
    WebIdentityToken {
        role_arn: String,
        web_identity_token_file: String,
        role_session_name: Option<String>,
    },
    Sso {
        sso_session: Option<String>,
        sso_region: String,
        sso_start_url: String,
        sso_account_id: Option<String>,
        sso_role_name: Option<String>,
    },
    /// Not in the cases; a chain that ends in it fails the comparison.
    CredentialProcess,
}

fn links(chain: &Chain) -> Vec<Provider> {
    let base = match &chain.base {
        Base::AccessKey {
            access_key_id,
            secret_access_key,
            session_token,
            account_id,
        } => Provider::AccessKey {
            access_key_id: access_key_id.clone(),
            secret_access_key: secret_access_key.expose().to_owned(),
            session_token: session_token.as_ref().map(|t| t.expose().to_owned()),
            account_id: account_id.clone(),
        },
        Base::WebIdentity {
            role_arn,
            token_file,
            session_name,
        } => Provider::WebIdentityToken {
            role_arn: role_arn.clone(),
            web_identity_token_file: token_file.clone(),
            role_session_name: session_name.clone(),
        },
        Base::Named(source) => Provider::NamedSource(source.name().to_owned()),
        Base::Sso {
            session,
            region,
            start_url,
            account_id,
            role_name,
        } => Provider::Sso {
            sso_session: session.clone(),
            sso_region: region.clone(),
            sso_start_url: start_url.clone(),
            sso_account_id: account_id.clone(),
            sso_role_name: role_name.clone(),
        },
        Base::Process { .. } => Provider::CredentialProcess,
    };
    let roles = chain.roles.iter().map(|role| Provider::AssumeRole {
        role_arn: role.role_arn.clone(),
        external_id: role.external_id.clone(),
        role_session_name: role.session_name.clone(),
    });
    std::iter::once(base).chain(roles).collect()
}

#[test]
fn assume_role_cases() {
    let suite: Vec<RoleCase> = vectors("assume-role-tests.json");
    let mut failures = Vec::new();
    let mut run = Vec::new();
    for case in suite {
        run.push(case.docs.clone());
        let profiles = Profiles::from_maps(case.input.profiles, case.input.sso_sessions);
        let resolved = resolve(&profiles, &case.input.selected_profile);
        let docs = &case.docs;
        match (case.output, resolved) {
            (RoleOutput::ProfileChain(expected), Ok(chain)) => {
                let actual = links(&chain);
                if actual != expected {
                    failures.push(format!("{docs}: chain {actual:?}, expected {expected:?}"));
                }
            }
            (RoleOutput::Error(_), Err(err)) => {
                let text = err.to_string();
                if text.contains('\n') || text.contains("Some(") || err.fix.is_empty() {
                    failures.push(format!(
                        "{docs}: the error is not one line with a fix: {text}"
                    ));
                }
            }
            (RoleOutput::ProfileChain(expected), Err(err)) => {
                failures.push(format!(
                    "{docs}: expected {expected:?}, got the error: {err}"
                ));
            }
            (RoleOutput::Error(text), Ok(chain)) => {
                failures.push(format!(
                    "{docs}: expected an error like \"{text}\", got {:?}",
                    links(&chain)
                ));
            }
        }
    }
    report(failures);
    assert_eq!(run.len(), 28, "every assume-role case runs");
}
