//! Credentials from the environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and, for
//! temporary ones, `AWS_SESSION_TOKEN`.

use super::{AwsCredentials, Provider, cred_error};
use crate::aws::env;
use crate::error::Error;
use crate::io::Io;
use crate::secret::Secret;
use crate::sigv4::Credentials;

/// `None` when neither key is set; half a pair is an error.
pub(super) fn credentials(io: &dyn Io) -> Result<Option<AwsCredentials>, Error> {
    let key = env(io, "AWS_ACCESS_KEY_ID");
    let secret = env(io, "AWS_SECRET_ACCESS_KEY");
    match (key, secret) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(cred_error(
            "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not",
        )
        .with_fix("set both, or neither to use container or instance credentials")),
        (None, Some(_)) => Err(cred_error(
            "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not",
        )
        .with_fix("set both, or neither to use container or instance credentials")),
        (Some(key), Some(secret)) => Ok(Some(AwsCredentials {
            credentials: Credentials {
                access_key_id: key.trim().to_owned(),
                secret_access_key: Secret::new(secret.trim()),
                session_token: env(io, "AWS_SESSION_TOKEN").map(|t| Secret::new(t.trim())),
            },
            expires_at: None,
            source: Provider::Environment,
        })),
    }
}

#[cfg(test)]
mod tests {
    use crate::aws::credentials;
    use crate::aws::fixtures::source;
    use crate::testing::FakeIo;

    #[test]
    fn half_set_environment_names_the_missing_variable() {
        let mut io = FakeIo::new();
        io.set_env("AWS_ACCESS_KEY_ID", "AKIAENV");
        let err = credentials(&mut io, &source(), false).unwrap_err();
        assert!(
            err.message.contains("AWS_SECRET_ACCESS_KEY is not"),
            "{err}"
        );
    }
}
