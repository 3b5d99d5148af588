//! A selected profile resolved into the credentials it stands for, as the SDKs resolve it
//! (smithy-rs `aws-config/src/profile/credentials/repr.rs`): a [`Base`] that needs no other
//! credentials, then the roles to assume from it, in order. Plain data with no I/O, so the
//! SDKs' shared cases (`assume-role-tests.json`) test it directly; the caller runs the chain.
//!
//! The SDKs' rules, in the order they apply to each profile on the way:
//! - after the selected profile, static keys win over anything else the profile says;
//! - `role_arn` (without `web_identity_token_file`) is a role to assume with the credentials
//!   of `source_profile` (followed; a profile may name itself to use its own keys) or of
//!   `credential_source`; both, or neither, is an error;
//! - otherwise the profile is the base: `credential_source`, then `web_identity_token_file`
//!   with `role_arn`, then SSO, then `credential_process`, then static keys.
//!
//! Unlike the SDKs, a blank value counts as absent: `aws_session_token =` is no token.

use std::fmt;

use super::{Profile, Profiles, is_identifier};
use crate::error::quote;
use crate::secret::Secret;

/// The bounds of AssumeRole's `DurationSeconds`: 15 minutes to 12 hours.
const MIN_DURATION_SECONDS: u32 = 900;
const MAX_DURATION_SECONDS: u32 = 43_200;

/// The first link of a chain: credentials that need no other credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Base {
    /// `aws_access_key_id`, `aws_secret_access_key`, maybe `aws_session_token`.
    AccessKey {
        access_key_id: String,
        secret_access_key: Secret,
        session_token: Option<Secret>,
        /// `aws_account_id`, which the SDKs carry for account-based endpoints.
        account_id: Option<String>,
    },
    /// `web_identity_token_file` and `role_arn`: AssumeRoleWithWebIdentity.
    WebIdentity {
        role_arn: String,
        token_file: String,
        session_name: Option<String>,
    },
    /// `credential_source = Environment | Ec2InstanceMetadata | EcsContainer`.
    Named(NamedSource),
    /// IAM Identity Center, kept so that the caller can say it is not supported: `sso_session`
    /// (whose `[sso-session]` gave the region and start URL) or the legacy profile keys.
    Sso {
        session: Option<String>,
        region: String,
        start_url: String,
        account_id: Option<String>,
        role_name: Option<String>,
    },
    /// `credential_process`, kept so that the caller can say it is not supported. Its arguments
    /// may hold secrets.
    Process { command: Secret },
}

/// A `credential_source`: the provider whose credentials assume the profile's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NamedSource {
    Environment,
    Ec2InstanceMetadata,
    EcsContainer,
}

impl NamedSource {
    /// The name as written in the profile.
    pub fn name(self) -> &'static str {
        match self {
            NamedSource::Environment => "Environment",
            NamedSource::Ec2InstanceMetadata => "Ec2InstanceMetadata",
            NamedSource::EcsContainer => "EcsContainer",
        }
    }
}

/// A role to assume (STS AssumeRole) with the credentials before it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleStep {
    pub role_arn: String,
    pub external_id: Option<String>,
    /// `role_session_name`.
    pub session_name: Option<String>,
    /// `duration_seconds`, checked to be from 900 to 43200.
    pub duration_seconds: Option<u32>,
}

/// The base's credentials, then each role assumed with the credentials before it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    pub base: Base,
    pub roles: Vec<RoleStep>,
}

/// A profile that does not describe credentials. Never holds a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainError {
    pub message: String,
    pub fix: String,
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}. Fix: {}", self.message, self.fix)
    }
}

impl std::error::Error for ChainError {}

impl ChainError {
    /// The error of a source profile, said to be reached from `from`.
    fn via(mut self, from: &str) -> Self {
        self.message = format!(
            "{}; profile {} uses it as source_profile",
            self.message,
            shown(from)
        );
        self
    }
}

fn error(message: impl Into<String>, fix: impl Into<String>) -> ChainError {
    ChainError {
        message: message.into(),
        fix: fix.into(),
    }
}

/// The keys that make a profile a source of credentials (what [`resolve`] builds a base or a
/// role from, a half-given key pair included, so that it is named rather than passed over).
const CREDENTIAL_KEYS: &[&str] = &[
    "aws_access_key_id",
    "aws_secret_access_key",
    "role_arn",
    "source_profile",
    "credential_source",
    "web_identity_token_file",
    "credential_process",
    "sso_session",
    "sso_account_id",
    "sso_role_name",
    "sso_start_url",
];

/// Whether `profile` says anything about credentials at all.
pub fn describes_credentials(profile: &Profile) -> bool {
    CREDENTIAL_KEYS.iter().any(|k| profile.contains_key(*k))
}

/// Resolves the profile `selected` of `profiles` into its chain.
///
/// The SDKs treat "no profiles at all" as "this provider is not configured" and move on; so
/// does an SDK whose selected `default` profile is not defined. The caller decides that before
/// calling: here both are errors.
pub fn resolve(profiles: &Profiles, selected: &str) -> Result<Chain, ChainError> {
    if profiles.is_empty() {
        return Err(error(
            "no profiles are defined in the AWS config and credentials files",
            "add [profile NAME] to the config file or [NAME] to the credentials file",
        ));
    }
    let mut name = selected;
    let mut visited: Vec<&str> = Vec::new();
    let mut roles = Vec::new();
    let base = loop {
        let Some(profile) = profiles.profile(name) else {
            return Err(match visited.last() {
                Some(from) => missing_source(from, name),
                None => not_defined(profiles, name),
            });
        };
        if visited.contains(&name) {
            visited.push(name);
            return Err(loop_error(&visited));
        }
        visited.push(name);
        if visited.len() > 1
            && let Ok(Some(keys)) = static_keys(profile, name)
        {
            break keys;
        }
        match role_step(profile, name)? {
            Some(step) => {
                let next = next_profile(profile, name)?;
                roles.push(step);
                match next {
                    Some(next) => name = next,
                    None => break base_of(profiles, profile, name)?,
                }
            }
            None => {
                break base_of(profiles, profile, name).map_err(|e| {
                    match visited.iter().rev().nth(1) {
                        Some(from) => e.via(from),
                        None => e,
                    }
                })?;
            }
        }
    };
    // Found from the selected profile outwards; assumed from the base inwards.
    roles.reverse();
    Ok(Chain { base, roles })
}

/// A value as the chain reads it: absent when blank.
fn get<'p>(profile: &'p Profile, key: &str) -> Option<&'p str> {
    profile
        .get(key)
        .map(String::as_str)
        .filter(|value| !value.trim().is_empty())
}

/// A profile name for a message: as it is when it is a valid name, quoted otherwise (a
/// `source_profile` value or `AWS_PROFILE` can be anything).
fn shown(name: &str) -> String {
    if is_identifier(name) {
        name.to_owned()
    } else {
        quote(name, 64)
    }
}

/// The role `profile` assumes, if any. A web identity profile's `role_arn` is not one: it is
/// assumed with the token, as the base.
fn role_step(profile: &Profile, name: &str) -> Result<Option<RoleStep>, ChainError> {
    if get(profile, "web_identity_token_file").is_some() {
        return Ok(None);
    }
    let Some(role_arn) = get(profile, "role_arn") else {
        return Ok(None);
    };
    Ok(Some(RoleStep {
        role_arn: role_arn.to_owned(),
        external_id: get(profile, "external_id").map(str::to_owned),
        session_name: get(profile, "role_session_name").map(str::to_owned),
        duration_seconds: duration_seconds(profile, name)?,
    }))
}

fn duration_seconds(profile: &Profile, name: &str) -> Result<Option<u32>, ChainError> {
    let Some(text) = get(profile, "duration_seconds") else {
        return Ok(None);
    };
    match text.trim().parse::<u32>() {
        Ok(seconds) if (MIN_DURATION_SECONDS..=MAX_DURATION_SECONDS).contains(&seconds) => {
            Ok(Some(seconds))
        }
        _ => Err(error(
            format!(
                "profile {} has duration_seconds = {}, not a whole number of seconds from \
                 {MIN_DURATION_SECONDS} to {MAX_DURATION_SECONDS}",
                shown(name),
                quote(text, 20)
            ),
            "set duration_seconds from 900 (15 minutes) to 43200 (12 hours, if the role's \
             maximum session duration allows it), or remove it for the default of 3600",
        )),
    }
}

/// Where the credentials for `profile`'s role come from: `Some(name)` of another profile, or
/// `None` for the profile itself (its `credential_source`, or its own keys).
fn next_profile<'p>(profile: &'p Profile, name: &str) -> Result<Option<&'p str>, ChainError> {
    match (
        get(profile, "source_profile"),
        get(profile, "credential_source"),
    ) {
        (Some(_), Some(_)) => Err(error(
            format!(
                "profile {} has both source_profile and credential_source",
                shown(name)
            ),
            "keep one: source_profile to assume the role with another profile's credentials, \
             credential_source (Environment, Ec2InstanceMetadata or EcsContainer) to assume it \
             with those of this host",
        )),
        (None, None) => Err(error(
            format!(
                "profile {} has role_arn but neither source_profile nor credential_source",
                shown(name)
            ),
            "add source_profile = the profile whose credentials assume the role, or \
             credential_source = Environment, Ec2InstanceMetadata or EcsContainer",
        )),
        (Some(source), None) if source == name => Ok(None),
        (Some(source), None) => Ok(Some(source)),
        (None, Some(_)) => Ok(None),
    }
}

/// The credentials `profile` holds itself.
fn base_of(profiles: &Profiles, profile: &Profile, name: &str) -> Result<Base, ChainError> {
    if let Some(source) = get(profile, "credential_source") {
        return named_source(source, name).map(Base::Named);
    }
    if let Some(web_identity) = web_identity(profile, name)? {
        return Ok(web_identity);
    }
    if let Some(sso) = sso(profiles, profile, name)? {
        return Ok(sso);
    }
    if let Some(command) = get(profile, "credential_process") {
        return Ok(Base::Process {
            command: Secret::new(command),
        });
    }
    static_keys(profile, name)?.ok_or_else(|| {
        error(
            format!(
                "profile {} has no credentials: none of aws_access_key_id, role_arn, \
                 credential_source, web_identity_token_file, sso_session, sso_start_url or \
                 credential_process",
                shown(name)
            ),
            "give the profile aws_access_key_id and aws_secret_access_key (the credentials \
             file), or role_arn with source_profile or credential_source, or select another \
             profile with AWS_PROFILE",
        )
    })
}

fn named_source(source: &str, name: &str) -> Result<NamedSource, ChainError> {
    match source {
        "Environment" => Ok(NamedSource::Environment),
        "Ec2InstanceMetadata" => Ok(NamedSource::Ec2InstanceMetadata),
        "EcsContainer" => Ok(NamedSource::EcsContainer),
        other => Err(error(
            format!(
                "profile {} has credential_source = {}, which is not a credential source",
                shown(name),
                quote(other, 40)
            ),
            "use Environment, Ec2InstanceMetadata or EcsContainer, spelled so",
        )),
    }
}

fn web_identity(profile: &Profile, name: &str) -> Result<Option<Base>, ChainError> {
    let Some(token_file) = get(profile, "web_identity_token_file") else {
        return Ok(None);
    };
    let Some(role_arn) = get(profile, "role_arn") else {
        return Err(error(
            format!(
                "profile {} has web_identity_token_file but no role_arn",
                shown(name)
            ),
            "add role_arn = the role to assume with the web identity token",
        ));
    };
    Ok(Some(Base::WebIdentity {
        role_arn: role_arn.to_owned(),
        token_file: token_file.to_owned(),
        session_name: get(profile, "role_session_name").map(str::to_owned),
    }))
}

/// SSO, from the profile's legacy keys or its `[sso-session]`.
fn sso(profiles: &Profiles, profile: &Profile, name: &str) -> Result<Option<Base>, ChainError> {
    let account_id = get(profile, "sso_account_id");
    let role_name = get(profile, "sso_role_name");
    let session = get(profile, "sso_session");
    let mut region = get(profile, "sso_region");
    let mut start_url = get(profile, "sso_start_url");
    if [account_id, role_name, session, region, start_url]
        .iter()
        .all(Option::is_none)
    {
        return Ok(None);
    }
    if let Some(session) = session {
        for (key, value) in [("sso_start_url", start_url), ("sso_region", region)] {
            if value.is_some() {
                return Err(error(
                    format!("profile {} has both sso_session and {key}", shown(name)),
                    format!(
                        "move {key} to the [sso-session {}] section of the config file",
                        shown(session)
                    ),
                ));
            }
        }
        let Some(section) = profiles.sso_session(session) else {
            return Err(error(
                format!(
                    "profile {} names sso_session {}, which is not defined",
                    shown(name),
                    shown(session)
                ),
                format!(
                    "add [sso-session {}] to the config file, or correct sso_session",
                    shown(session)
                ),
            ));
        };
        start_url = get(section, "sso_start_url");
        region = get(section, "sso_region");
    }
    let half = match (account_id, role_name) {
        (Some(_), None) => Some(("sso_account_id", "sso_role_name")),
        (None, Some(_)) => Some(("sso_role_name", "sso_account_id")),
        _ => None,
    };
    if let Some((has, lacks)) = half {
        return Err(error(
            format!("profile {} has {has} but no {lacks}", shown(name)),
            format!("set both {has} and {lacks}, or neither"),
        ));
    }
    let where_ = if session.is_some() {
        "the [sso-session] section"
    } else {
        "the profile"
    };
    let (Some(region), Some(start_url)) = (region, start_url) else {
        let missing = if region.is_none() {
            "sso_region"
        } else {
            "sso_start_url"
        };
        return Err(error(
            format!(
                "profile {} is set up for SSO but has no {missing}",
                shown(name)
            ),
            format!("add {missing} to {where_}"),
        ));
    };
    Ok(Some(Base::Sso {
        session: session.map(str::to_owned),
        region: region.to_owned(),
        start_url: start_url.to_owned(),
        account_id: account_id.map(str::to_owned),
        role_name: role_name.map(str::to_owned),
    }))
}

/// The profile's static keys: `None` when it has none, an error when it has only some.
fn static_keys(profile: &Profile, name: &str) -> Result<Option<Base>, ChainError> {
    let access_key_id = get(profile, "aws_access_key_id");
    let secret_access_key = get(profile, "aws_secret_access_key");
    let session_token = get(profile, "aws_session_token");
    let missing = match (access_key_id, secret_access_key) {
        (Some(access_key_id), Some(secret_access_key)) => {
            return Ok(Some(Base::AccessKey {
                access_key_id: access_key_id.to_owned(),
                secret_access_key: Secret::new(secret_access_key),
                session_token: session_token.map(Secret::new),
                account_id: get(profile, "aws_account_id").map(str::to_owned),
            }));
        }
        (None, None) if session_token.is_none() => return Ok(None),
        (None, _) => "aws_access_key_id",
        (Some(_), None) => "aws_secret_access_key",
    };
    Err(error(
        format!("profile {} has static keys but no {missing}", shown(name)),
        format!(
            "add {missing} to the profile (in the credentials file, [{}])",
            shown(name)
        ),
    ))
}

fn missing_source(from: &str, name: &str) -> ChainError {
    error(
        format!(
            "profile {} names source_profile {}, which is not defined",
            shown(from),
            shown(name)
        ),
        format!(
            "define profile {} or correct source_profile in profile {}",
            shown(name),
            shown(from)
        ),
    )
}

fn not_defined(profiles: &Profiles, name: &str) -> ChainError {
    const LISTED: usize = 10;
    let mut defined: Vec<String> = profiles
        .profiles()
        .keys()
        .take(LISTED)
        .map(String::as_str)
        .map(shown)
        .collect();
    if profiles.profiles().len() > LISTED {
        defined.push("…".to_owned());
    }
    error(
        format!(
            "profile {} is not defined in the AWS config or credentials files (they define {})",
            shown(name),
            defined.join(", ")
        ),
        "set AWS_PROFILE to a defined profile, or add the profile ([profile NAME] in the config \
         file, [NAME] in the credentials file)",
    )
}

/// `visited` ends with the profile seen twice.
fn loop_error(visited: &[&str]) -> ChainError {
    let path: Vec<String> = visited.iter().copied().map(shown).collect();
    error(
        format!(
            "the profiles form an infinite loop through source_profile: {}",
            path.join(" -> ")
        ),
        "end the chain at a profile that holds credentials (static keys, credential_source or \
         web_identity_token_file) rather than a source_profile; a profile may name itself as \
         source_profile to assume its role with its own keys",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::profile::parse;

    fn resolve_a(config: &str) -> Result<Chain, ChainError> {
        resolve(&parse(config, "").unwrap(), "a")
    }

    const ROLE: &str = "arn:aws:iam::123456789012:role/Uploader";

    #[test]
    fn a_loop_names_the_profiles_in_order() {
        let err = resolve_a(&format!(
            "[profile a]\nrole_arn = {ROLE}\nsource_profile = b\n\
             [profile b]\nrole_arn = {ROLE}\nsource_profile = c\n\
             [profile c]\nrole_arn = {ROLE}\nsource_profile = a\n"
        ))
        .unwrap_err();
        assert!(err.message.contains(": a -> b -> c -> a"), "{err}");
        assert!(!err.to_string().contains('\n'), "{err}");
    }

    #[test]
    fn duration_seconds_is_carried_and_checked() {
        let config = |seconds: &str| {
            format!(
                "[profile a]\nrole_arn = {ROLE}\ncredential_source = Environment\n\
                 duration_seconds = {seconds}\n"
            )
        };
        let chain = resolve_a(&config("43200")).unwrap();
        assert_eq!(chain.base, Base::Named(NamedSource::Environment));
        assert_eq!(chain.roles[0].duration_seconds, Some(43_200));
        assert_eq!(
            resolve_a(&config("900")).unwrap().roles[0].duration_seconds,
            Some(900)
        );
        for bad in ["899", "43201", "3600s", "-1", "99999999999"] {
            let err = resolve_a(&config(bad)).unwrap_err();
            assert!(
                err.message.contains("profile a has duration_seconds") && err.message.contains(bad),
                "{err}"
            );
        }
    }

    #[test]
    fn secrets_are_never_printed() {
        let credentials = "[base]\naws_access_key_id = AKIDEXAMPLE\n\
                           aws_secret_access_key = canary-secret-key\n\
                           aws_session_token = canary-secret-key\n";
        let config = format!("[profile a]\nrole_arn = {ROLE}\nsource_profile = base\n");
        let profiles = parse(&config, credentials).unwrap();
        let chain = resolve(&profiles, "a").unwrap();
        let Base::AccessKey {
            secret_access_key,
            session_token,
            ..
        } = &chain.base
        else {
            panic!("expected static keys: {chain:?}");
        };
        assert_eq!(secret_access_key.expose(), "canary-secret-key");
        assert_eq!(
            session_token.as_ref().map(Secret::expose),
            Some("canary-secret-key")
        );
        assert!(!format!("{chain:?}").contains("canary"));
        assert!(!format!("{profiles:?}").contains("canary"));

        let half = parse("", "[a]\naws_secret_access_key = canary-secret-key\n").unwrap();
        let err = resolve(&half, "a").unwrap_err();
        assert!(err.message.contains("no aws_access_key_id"), "{err}");
        assert!(!format!("{err} {err:?}").contains("canary"));

        let process = parse(
            "[profile a]\ncredential_process = /bin/creds canary-secret-key",
            "",
        )
        .unwrap();
        let chain = resolve(&process, "a").unwrap();
        assert!(matches!(chain.base, Base::Process { .. }), "{chain:?}");
        assert!(!format!("{chain:?}").contains("canary"));
    }

    #[test]
    fn unknown_credential_source_is_named() {
        let err = resolve_a(&format!(
            "[profile a]\nrole_arn = {ROLE}\ncredential_source = ec2instancemetadata\n"
        ))
        .unwrap_err();
        assert!(err.message.contains("\"ec2instancemetadata\""), "{err}");
    }

    #[test]
    fn missing_profiles_are_named() {
        let err = resolve_a("[profile b]\naws_access_key_id = x\naws_secret_access_key = y\n")
            .unwrap_err();
        assert!(err.message.contains("profile a is not defined"), "{err}");
        assert!(err.message.contains("(they define b)"), "{err}");
        let err = resolve_a(&format!(
            "[profile a]\nrole_arn = {ROLE}\nsource_profile = bad name\n"
        ))
        .unwrap_err();
        assert!(
            err.message
                .contains("profile a names source_profile \"bad name\""),
            "{err}"
        );
    }

    #[test]
    fn a_broken_source_profile_says_who_uses_it() {
        let err = resolve_a(&format!(
            "[profile a]\nrole_arn = {ROLE}\nsource_profile = b\n[profile b]\nregion = x\n"
        ))
        .unwrap_err();
        assert!(
            err.message.starts_with("profile b has no credentials"),
            "{err}"
        );
        assert!(
            err.message.ends_with("profile a uses it as source_profile"),
            "{err}"
        );
    }

    #[test]
    fn blank_values_are_absent() {
        let chain = resolve(
            &parse(
                "",
                "[a]\naws_access_key_id = x\naws_secret_access_key = y\naws_session_token =\n",
            )
            .unwrap(),
            "a",
        )
        .unwrap();
        assert!(
            matches!(
                chain.base,
                Base::AccessKey {
                    session_token: None,
                    ..
                }
            ),
            "{chain:?}"
        );
    }
}
