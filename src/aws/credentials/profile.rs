//! Credentials from the shared config and credentials files (`AWS_PROFILE`, `AWS_CONFIG_FILE`,
//! `AWS_SHARED_CREDENTIALS_FILE`, `~/.aws/`): the selected profile's chain ([`chain::resolve`])
//! run from its base (static keys, web identity, or a `credential_source`) through each role it
//! assumes.

use super::{AwsCredentials, Lookup, Provider, container, cred_error, environment, imds};
use crate::aws::profile::chain::{self, Base, NamedSource};
use crate::aws::profile::{self, Profiles};
use crate::aws::{env, sts};
use crate::error::{Error, quote};
use crate::io::Io;
use crate::sigv4::Credentials;

/// Where EC2 keeps the instance profile's credentials, when the configuration names no URL.
const IMDS_CREDENTIALS_URL: &str =
    "http://169.254.169.254/latest/meta-data/iam/security-credentials";

/// `None` when no profile is selected and the default one holds no credentials.
pub(super) fn credentials(
    io: &mut dyn Io,
    lookup: &Lookup,
) -> Result<Option<AwsCredentials>, Error> {
    let locations = profile::locations(&|name| io.env(name));
    let explicit = env(io, "AWS_PROFILE").is_some();
    let config = read(io, locations.config.as_deref(), "AWS_CONFIG_FILE")?;
    let shared = read(
        io,
        locations.credentials.as_deref(),
        "AWS_SHARED_CREDENTIALS_FILE",
    )?;
    let profiles = profile::parse(&config, &shared).map_err(|e| {
        cred_error(e.message).with_fix("correct the AWS config or credentials file")
    })?;
    let name = locations.profile.as_str();
    let Some(selected) = profiles.profile(name) else {
        if explicit {
            return Err(cred_error(format!(
                "AWS_PROFILE names the profile {}, which the AWS config and credentials files \
                 ({} and {}) do not define",
                quote(name, 64),
                locations.config.as_deref().unwrap_or("none"),
                locations.credentials.as_deref().unwrap_or("none"),
            ))
            .with_fix(
                "set AWS_PROFILE to a profile of those files (config: [profile NAME], \
                 credentials: [NAME]), or set AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE",
            ));
        }
        return Ok(None);
    };
    // A profile that only sets a region, say, leaves the chain to the next provider, as in
    // the SDKs.
    if !chain::describes_credentials(selected) {
        return Ok(None);
    }
    run(io, lookup, &profiles, name).map(Some)
}

/// A file of the chain: absent (or unreadable where the SDKs would not look) reads as empty.
fn read(io: &dyn Io, path: Option<&str>, variable: &str) -> Result<String, Error> {
    let Some(path) = path else {
        return Ok(String::new());
    };
    match io.read_file(path) {
        Ok(text) => Ok(text),
        // A default location the host did not grant is as good as absent; a file named by a
        // variable must be readable when it exists.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound || env(io, variable).is_none() => {
            Ok(String::new())
        }
        Err(e) => Err(
            cred_error(format!("cannot read {variable} {}: {e}", quote(path, 200)))
                .with_fix("check the file is readable, and that this host lets wif-push read it"),
        ),
    }
}

fn run(
    io: &mut dyn Io,
    lookup: &Lookup,
    profiles: &Profiles,
    name: &str,
) -> Result<AwsCredentials, Error> {
    let resolved =
        chain::resolve(profiles, name).map_err(|e| cred_error(e.message).with_fix(e.fix))?;
    let mut credentials = match resolved.base {
        Base::AccessKey {
            access_key_id,
            secret_access_key,
            session_token,
            ..
        } => AwsCredentials {
            credentials: Credentials {
                access_key_id,
                secret_access_key,
                session_token,
            },
            expires_at: None,
            source: Provider::Profile,
        },
        Base::WebIdentity {
            role_arn,
            token_file,
            session_name,
        } => super::web_identity::assume(
            io,
            lookup,
            &role_arn,
            &token_file,
            session_name.as_deref(),
        )?,
        Base::Named(source) => named(io, lookup, source, name)?,
        Base::Sso { .. } => {
            return Err(cred_error(format!(
                "the profile {} signs in with IAM Identity Center (SSO), which wif-push does \
                 not do",
                quote(name, 64)
            ))
            .with_fix(
                "give wif-push a role profile or keys instead, e.g. the output of `aws \
                 configure export-credentials --profile NAME --format env`",
            ));
        }
        Base::Process { .. } => {
            return Err(cred_error(format!(
                "the profile {} gets its credentials from credential_process, which wif-push \
                 does not run (a component starts no processes)",
                quote(name, 64)
            ))
            .with_fix(
                "give wif-push the keys the process prints (AWS_ACCESS_KEY_ID, ...) or a role \
                 profile",
            ));
        }
    };
    for step in &resolved.roles {
        let mut role =
            sts::RoleRequest::new(&step.role_arn, step.session_name.as_deref(), io.now());
        role.external_id = step.external_id.clone();
        role.duration_seconds = step.duration_seconds;
        credentials = super::assume_role(io, lookup, &credentials, &role)?;
    }
    Ok(credentials)
}

/// `credential_source`: the credentials of another provider, as the base of a role.
fn named(
    io: &mut dyn Io,
    lookup: &Lookup,
    source: NamedSource,
    profile: &str,
) -> Result<AwsCredentials, Error> {
    let missing = |what: &str| {
        cred_error(format!(
            "the profile {} has credential_source = {}, but {what}",
            quote(profile, 64),
            source.name()
        ))
    };
    match source {
        NamedSource::Environment => environment::credentials(io)?.ok_or_else(|| {
            missing("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set")
                .with_fix("set them, or choose another credential_source")
        }),
        NamedSource::EcsContainer => match container::request(io)? {
            Some(request) => container::credentials(io, request),
            None => Err(missing(
                "neither AWS_CONTAINER_CREDENTIALS_RELATIVE_URI nor _FULL_URI is set",
            )
            .with_fix("run it in ECS or EKS, or choose another credential_source")),
        },
        NamedSource::Ec2InstanceMetadata => {
            let url = lookup
                .endpoints
                .credentials_url
                .as_deref()
                .unwrap_or(IMDS_CREDENTIALS_URL);
            imds::credentials(io, lookup.endpoints, lookup.imds_v1_fallback, url)
        }
    }
}
