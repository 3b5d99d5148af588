//! The one error type of the flow: which step failed, what the other side said, and the fix.

use std::fmt;

/// The protocol steps, in the order a delivery runs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Config,
    AwsCredentials,
    AwsRegion,
    /// Asking AWS STS who the credentials are (GetCallerIdentity).
    AwsIdentity,
    SubjectToken,
    StsExchange,
    Impersonation,
    /// Reading the bytes to deliver.
    Read,
    Upload,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Config => "config",
            Step::AwsCredentials => "aws-credentials",
            Step::AwsRegion => "aws-region",
            Step::AwsIdentity => "aws-identity",
            Step::SubjectToken => "subject-token",
            Step::StsExchange => "sts-exchange",
            Step::Impersonation => "impersonation",
            Step::Read => "read",
            Step::Upload => "upload",
        }
    }

    fn doing(self) -> &'static str {
        match self {
            Step::Config => "reading the destination configuration",
            Step::AwsCredentials => "getting AWS credentials",
            Step::AwsRegion => "finding the AWS region",
            Step::AwsIdentity => "asking AWS STS who the credentials are (GetCallerIdentity)",
            Step::SubjectToken => "signing the AWS subject token",
            Step::StsExchange => "exchanging the AWS subject token at Google STS",
            Step::Impersonation => {
                "impersonating the partner's service account (IAM Credentials generateAccessToken)"
            }
            Step::Read => "reading the object to deliver",
            Step::Upload => "uploading to Cloud Storage",
        }
    }
}

/// A failed step. `message` says what happened (quoting Google or AWS where they answered),
/// `fix` the likely misconfiguration and what to change. Never holds a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub step: Step,
    pub message: String,
    pub fix: Option<String>,
    /// The HTTP status the other side answered, if it answered.
    pub status: Option<u16>,
    /// Whether trying again later may succeed (5xx, 429, 408, connection trouble).
    pub transient: bool,
}

impl Error {
    pub fn new(step: Step, message: impl Into<String>) -> Self {
        Error {
            step,
            message: message.into(),
            fix: None,
            status: None,
            transient: false,
        }
    }

    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub fn transient(mut self) -> Self {
        self.transient = true;
        self
    }

    /// `step` failed because the other side answered `status`: transient when that status is
    /// worth another attempt (408, 429, 5xx).
    pub fn answered(step: Step, status: u16, message: impl Into<String>) -> Self {
        Error {
            transient: crate::retry::is_transient_status(status),
            ..Error::new(step, message).with_status(status)
        }
    }

    /// `step` failed because a request got no answer: transient unless the host's policy
    /// refused it.
    pub fn no_answer(
        step: Step,
        message: impl Into<String>,
        cause: &crate::io::TransportError,
    ) -> Self {
        Error {
            transient: cause.is_transient(),
            ..Error::new(step, message)
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = self.message.trim_end_matches('.');
        write!(f, "{} failed: {message}", self.step.doing())?;
        if let Some(fix) = &self.fix {
            write!(f, ". Fix: {fix}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl From<crate::config::ConfigError> for Error {
    fn from(e: crate::config::ConfigError) -> Self {
        Error {
            step: Step::Config,
            message: format!("{} {}", e.field, e.problem),
            fix: Some(e.fix),
            status: None,
            transient: false,
        }
    }
}

impl From<crate::sigv4::SigningError> for Error {
    fn from(e: crate::sigv4::SigningError) -> Self {
        Error::new(Step::SubjectToken, e.to_string())
    }
}

/// `text` for a message meant for people: quoted, control characters escaped, at most `max`
/// characters of it (a bad value may be megabytes long).
pub fn quote(text: &str, max: usize) -> String {
    let mut out = String::from("\"");
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    out.push('"');
    out
}

/// At most `max` characters of a server's answer, on one line, for quoting in an error.
pub fn excerpt(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn quotes_are_short_escaped_and_one_line() {
        assert_eq!(super::quote("a\r\nb", 10), "\"a\\r\\nb\"");
        let long = super::quote(&"x".repeat(10_000_000), 20);
        assert_eq!(long.chars().count(), 23);
        assert!(long.ends_with("…\""));
    }
}
