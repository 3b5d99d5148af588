//! `doctor`: the keyless chain run one step at a time, each step's finding a line of a
//! checklist, stopping at the first failure with its diagnosis and fix. Where Google's answer
//! alone is ambiguous, the doctor adds what it learnt on the way (who AWS says the credentials
//! are, the attributes the partner guide's mapping gives them, the principal set the partner
//! must bind) so that the fix names the exact value to change.

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

use crate::aws::{self, AwsCredentials, Provider};
use crate::config::Destination;
use crate::delivery::{self, Receipt};
use crate::error::{Error, Step};
use crate::io::{Io, head_of};
use crate::retry::retry;
use crate::wif::mapping;
use crate::wif::token::{REFRESH_SLACK, TokenSource};

/// The most this machine's clock may be off: tokens are renewed this long before they expire,
/// so a clock further behind would use expired ones (AWS itself allows 15 minutes).
pub const CLOCK_TOLERANCE: Duration = REFRESH_SLACK;
const TIMEOUT: Duration = Duration::from_secs(30);

/// One line of the checklist.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Check {
    /// `config`, `aws-region`, `aws-credentials`, `aws-role` (when the destination assumes
    /// one), `clock`, `aws-identity`, `mapping`, `subject-token`, `sts-exchange`,
    /// `impersonation` or `handshake`.
    pub step: &'static str,
    pub passed: bool,
    /// What the step saw; for a failed step, what went wrong. Never a secret.
    pub saw: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// The checklist, and the handshake object's receipt when the whole chain worked.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// True only when the handshake object landed.
    pub passed: bool,
    pub checks: Vec<Check>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
}

/// Runs the chain for `destination` (or reports why its configuration is refused).
pub fn run(
    io: &mut dyn Io,
    tokens: &mut TokenSource,
    destination: Result<&Destination, &Error>,
) -> Report {
    let mut checklist = Checklist(Vec::new());
    let receipt = checklist.steps(io, tokens, destination);
    Report {
        passed: receipt.is_some(),
        checks: checklist.0,
        receipt,
    }
}

struct Checklist(Vec<Check>);

impl Checklist {
    /// Records `result` as `step`'s line: what it saw, or its error and fix.
    fn check<T>(
        &mut self,
        step: &'static str,
        result: Result<T, Error>,
        saw: impl FnOnce(&T) -> String,
    ) -> Option<T> {
        match result {
            Ok(value) => {
                self.0.push(Check {
                    step,
                    passed: true,
                    saw: saw(&value),
                    fix: None,
                });
                Some(value)
            }
            Err(error) => {
                self.0.push(Check {
                    step,
                    passed: false,
                    saw: error.message,
                    fix: error.fix,
                });
                None
            }
        }
    }

    fn steps(
        &mut self,
        io: &mut dyn Io,
        tokens: &mut TokenSource,
        destination: Result<&Destination, &Error>,
    ) -> Option<Receipt> {
        let d = self.check("config", destination.map_err(Clone::clone), |d| {
            describe_destination(d)
        })?;
        let region = self.check("aws-region", tokens.region(io, d), |region| {
            format!("{region} (from {})", region_source(io, d))
        })?;
        self.check(
            "aws-credentials",
            tokens.pipeline_credentials(io, d),
            |(base, _)| describe_credentials(io, base),
        )?;
        let signing = tokens.aws_credentials(io, d, &region);
        let signing = match &d.aws_role {
            Some(role) => self.check("aws-role", signing, |assumed| {
                format!(
                    "assumed {} with them{}: {}",
                    role.role_arn,
                    if role.external_id.is_some() {
                        " (external id given)"
                    } else {
                        ""
                    },
                    describe_keys(assumed)
                )
            })?,
            // The chain's own, checked above.
            None => signing.ok()?,
        };
        self.check("clock", clock(io, d), |offset| offset.clone())?;
        let identity = self.check("aws-identity", identity(io, d, &signing, &region), |who| {
            format!(
                "AWS STS GetCallerIdentity says these are {} (account {}); {}",
                who.arn,
                who.account,
                match &d.aws_role {
                    Some(role) => format!("a session of aws_role_arn {}", role.role_arn),
                    None => "aws_role_arn is not set: the pipeline's own identity".to_owned(),
                }
            )
        })?;
        let expected = Expected::of(d, &identity);
        self.check("mapping", Ok(()), |()| expected.describe(d))?;
        let token = tokens.subject_token(io, d, None);
        let token = self.check("subject-token", token, |token| {
            format!(
                "GetCallerIdentity at {} signed for {region}, x-goog-cloud-target-resource {}; \
                 {} bytes (a credential: never shown)",
                d.federation.cred_verification_url(&region),
                if d.sign_target_resource {
                    "signed"
                } else {
                    "unsigned, as google-auth leaves it"
                },
                token.expose().len()
            )
        })?;
        let exchanged = tokens
            .exchange(io, d, &token)
            .map_err(|e| expected.explain_exchange(d, e));
        let federated = self.check("sts-exchange", exchanged, |f| {
            format!(
                "Google STS issued a federated token for google.subject {} (expires in {} s)",
                identity.arn, f.expires_in
            )
        })?;
        let impersonated = tokens
            .impersonate(io, d, federated)
            .map_err(|e| expected.explain_impersonation(d, e));
        let token = self.check("impersonation", impersonated, |t| {
            describe_impersonation(d, t.expires_at)
        })?;
        tokens.remember(d, token);
        self.check(
            "handshake",
            delivery::verify(io, tokens, d),
            describe_receipt,
        )
    }
}

fn describe_destination(d: &Destination) -> String {
    let who = match &d.federation.service_account {
        Some(email) => format!("service account {email}"),
        None => "no service account (the federated principal itself)".to_owned(),
    };
    format!(
        "provider {}; {who}; bucket gs://{}/{}; tokens for {} s",
        d.federation.audience, d.bucket, d.prefix, d.federation.token_lifetime_seconds
    )
}

/// Where `aws::region` found the region (its order).
fn region_source(io: &dyn Io, d: &Destination) -> &'static str {
    if d.aws_region.is_some() {
        "aws_region"
    } else if io.env("AWS_REGION").is_some() {
        "AWS_REGION"
    } else if io.env("AWS_DEFAULT_REGION").is_some() {
        "AWS_DEFAULT_REGION"
    } else {
        "the instance's availability zone"
    }
}

fn describe_credentials(io: &dyn Io, credentials: &AwsCredentials) -> String {
    let source = match credentials.source {
        Provider::Environment => "the environment (AWS_ACCESS_KEY_ID)".to_owned(),
        Provider::WebIdentity => {
            "web identity (AWS_WEB_IDENTITY_TOKEN_FILE, AssumeRoleWithWebIdentity)".to_owned()
        }
        Provider::Profile | Provider::AssumedRole => format!(
            "profile {} of the shared AWS config files",
            io.env("AWS_PROFILE")
                .unwrap_or_else(|| "default".to_owned())
        ),
        Provider::Container => "the container credentials endpoint (ECS, EKS Pod Identity)".into(),
        Provider::InstanceMetadata => "EC2 instance metadata (the instance profile)".to_owned(),
    };
    format!("from {source}: {}", describe_keys(credentials))
}

/// The key id's last four characters (as `aws configure list` shows it) and the expiry.
fn describe_keys(credentials: &AwsCredentials) -> String {
    let id = &credentials.credentials.access_key_id;
    let tail: String = id
        .chars()
        .skip(id.chars().count().saturating_sub(4))
        .collect();
    match credentials.expires_at {
        Some(at) => format!("key id ending {tail}, temporary until {}", stamp(at)),
        None => format!("key id ending {tail}, long-lived"),
    }
}

fn stamp(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// This machine's clock against the `Date` of an answer from Google STS.
fn clock(io: &mut dyn Io, d: &Destination) -> Result<String, Error> {
    let fail = |message: String| Error::new(Step::StsExchange, message);
    let url = &d.federation.token_url;
    let request = http::Request::get(url.as_str())
        .body(Vec::new())
        .map_err(|_| fail(format!("{url} is not a URL")))?;
    let before = io.now();
    let answer = io
        .send_borrowed(&head_of(&request), &[], TIMEOUT)
        .map_err(|e| {
            fail(format!("Google STS ({url}) could not be reached: {e}")).with_fix(
                "let this host reach sts.googleapis.com, iamcredentials.googleapis.com and \
                 storage.googleapis.com on port 443 (firewall, proxy: HTTPS_PROXY)",
            )
        })?;
    let after = io.now();
    let Some(date) = answer
        .headers()
        .get(http::header::DATE)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(
            "Google STS answered without a Date header, so the clock was not compared".into(),
        );
    };
    let google = OffsetDateTime::parse(date, &Rfc2822).map_err(|_| {
        fail(format!(
            "Google STS answered Date {date:?}, not an HTTP date"
        ))
    })?;
    // The Date was stamped between the two readings; it is whole seconds, and so is the offset.
    let local = before + (after - before) / 2;
    let offset: time::Duration = local - google;
    let offset = offset.whole_seconds();
    let seen = match offset {
        0 => format!("this machine's clock agrees with Google's to the second (Date: {date})"),
        _ => format!(
            "this machine's clock is {} s {} Google's (Date: {date})",
            offset.abs(),
            if offset > 0 { "ahead of" } else { "behind" }
        ),
    };
    if offset.unsigned_abs() > CLOCK_TOLERANCE.as_secs() {
        return Err(Error::new(Step::SubjectToken, seen).with_fix(format!(
            "synchronise this machine's clock (NTP: chronyd, systemd-timesyncd): AWS refuses \
             signatures more than 15 minutes off, and past {} s tokens are taken for valid \
             after they expire",
            CLOCK_TOLERANCE.as_secs()
        )));
    }
    Ok(seen)
}

/// Who AWS says the signing credentials are (`aws sts get-caller-identity`).
fn identity(
    io: &mut dyn Io,
    d: &Destination,
    credentials: &AwsCredentials,
    region: &str,
) -> Result<aws::sts::CallerIdentity, Error> {
    let endpoint = aws::sts::endpoint(io, Some(region))?;
    let request =
        aws::sts::caller_identity_request(&endpoint, region, &credentials.credentials, io.now())?;
    let (result, _) = retry(io, &d.backoff, |io| {
        let answer = io
            .send_borrowed(&head_of(&request), request.body(), TIMEOUT)
            .map_err(|e| {
                Error::no_answer(
                    Step::AwsIdentity,
                    format!("AWS STS ({endpoint}) could not be reached: {e}"),
                    &e,
                )
            })?;
        aws::sts::parse_caller_identity(&answer)
    });
    let who = result?;
    match &d.aws_role {
        Some(role) => {
            let session_of = assumed_role_prefix(&role.role_arn);
            if session_of
                .as_deref()
                .is_some_and(|p| who.arn.starts_with(p))
            {
                Ok(who)
            } else {
                Err(Error::new(
                    Step::AwsIdentity,
                    format!(
                        "AWS says these are {}, not a session of aws_role_arn {}",
                        who.arn, role.role_arn
                    ),
                )
                .with_fix(
                    "check aws_role_arn: AWS STS AssumeRole answered with another role's keys",
                ))
            }
        }
        None if !who.arn.contains(":assumed-role/") => Err(Error::new(
            Step::AwsIdentity,
            format!(
                "AWS says the credentials are {} (account {}): not a role session, and \
                 aws_role_arn is not set",
                who.arn, who.account
            ),
        )
        .with_fix(
            "the partner's attribute condition admits only sessions of the IAM role it trusts \
             (partner guide §5): set aws_role_arn to that role (the role ARN given to the \
             partner, §3.2), which these credentials must be allowed to assume",
        )),
        None => Ok(who),
    }
}

/// `arn:aws:sts::ACCOUNT:assumed-role/NAME/` for `arn:aws:iam::ACCOUNT:role/PATH/NAME`.
fn assumed_role_prefix(role_arn: &str) -> Option<String> {
    let mut parts = role_arn.splitn(6, ':');
    let (_, partition, _, _, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let name = resource.strip_prefix("role/")?.rsplit('/').next()?;
    Some(format!(
        "arn:{partition}:sts::{account}:assumed-role/{name}/"
    ))
}

/// What the partner's set-up must admit for the identity AWS named.
struct Expected {
    arn: String,
    account: String,
    aws_role: String,
    condition: String,
    principal_set: Option<String>,
}

impl Expected {
    fn of(d: &Destination, who: &aws::sts::CallerIdentity) -> Self {
        let mapped = mapping::map(&who.arn);
        let parts: Vec<&str> = d
            .federation
            .audience
            .trim_start_matches("//iam.googleapis.com/projects/")
            .split('/')
            .collect();
        let principal_set = match parts.as_slice() {
            [
                number,
                "locations",
                "global",
                "workloadIdentityPools",
                pool,
                ..,
            ] => Some(mapping::principal_set(number, pool, &mapped.aws_role)),
            _ => None,
        };
        Expected {
            condition: mapping::condition(&who.account, &mapped.aws_role),
            arn: who.arn.clone(),
            account: who.account.clone(),
            aws_role: mapped.aws_role,
            principal_set,
        }
    }

    fn describe(&self, d: &Destination) -> String {
        let mut seen = format!(
            "the guide's mapping gives google.subject = {} and attribute.aws_role = {}; the \
             partner's condition must admit it ({})",
            self.arn, self.aws_role, self.condition
        );
        if let (Some(set), Some(email)) = (&self.principal_set, &d.federation.service_account) {
            seen.push_str(&format!(
                " and {set} must hold roles/iam.workloadIdentityUser on {email}"
            ));
        }
        seen
    }

    /// A refused exchange, with what the doctor knows added to the fix.
    fn explain_exchange(&self, d: &Destination, mut e: Error) -> Error {
        let message = e.message.clone();
        let fix = if message.contains("attribute condition") {
            match &d.aws_role {
                None => format!(
                    "the caller is not the role the partner trusts: the partner's attribute \
                     condition rejects {arn}, and this destination assumes no role \
                     (aws_role_arn is not set). If the partner trusts another role, set \
                     aws_role_arn to it; if it trusts {role}, its condition must read {cond}",
                    arn = self.arn,
                    role = self.aws_role,
                    cond = self.condition
                ),
                Some(role) => format!(
                    "the partner's attribute condition rejects sessions of {} (aws_role_arn). \
                     If aws_role_arn is not the role ARN given to the partner (§3.2), set it to \
                     that one; if it is, the partner's condition must read {} (as \
                     host-test partner-kit writes it)",
                    role.role_arn, self.condition
                ),
            }
        } else if message.contains("invalid_target") {
            let parts: Vec<&str> = d.federation.audience.split('/').collect();
            let (number, pool, provider) = match parts.as_slice() {
                [
                    ..,
                    "projects",
                    n,
                    "locations",
                    "global",
                    "workloadIdentityPools",
                    p,
                    "providers",
                    x,
                ] => (*n, *p, *x),
                _ => ("NUMBER", "POOL", "PROVIDER"),
            };
            format!(
                "Google has no active provider {}: either project_number ({number}: the \
                 partner's project number, not its id), pool_id ({pool}) or provider_id \
                 ({provider}) differs from the partner's §3.1, or the partner's pool or provider \
                 is disabled or deleted. The partner checks with `gcloud iam \
                 workload-identity-pools describe {pool} --project={number} --location=global \
                 --format='value(state,disabled)'` and `gcloud iam workload-identity-pools \
                 providers describe {provider} --workload-identity-pool={pool} \
                 --project={number} --location=global --format='value(state,disabled)'`: each \
                 must be ACTIVE and not disabled (`update --no-disabled`, or `undelete`)",
                d.federation.audience
            )
        } else if message.contains("AWS account") {
            format!(
                "the partner's AWS provider trusts another AWS account: these credentials are \
                 account {account}. The partner sets it with `gcloud iam workload-identity-pools \
                 providers update-aws PROVIDER --workload-identity-pool=POOL --location=global \
                 --account-id={account}` (and the condition's account likewise: {cond})",
                account = self.account,
                cond = self.condition
            )
        } else {
            return e;
        };
        e.fix = Some(fix);
        e
    }

    /// A refused impersonation: a missing or misdirected binding gets the exact member.
    fn explain_impersonation(&self, d: &Destination, mut e: Error) -> Error {
        if let (Some(403), Some(set), Some(email)) =
            (e.status, &self.principal_set, &d.federation.service_account)
        {
            e.fix = Some(format!(
                "the binding is missing or to another principal: the partner grants \
                 roles/iam.workloadIdentityUser on {email} to {set} (`gcloud iam \
                 service-accounts add-iam-policy-binding {email} \
                 --role=roles/iam.workloadIdentityUser --member={set}`)"
            ));
        }
        e
    }
}

fn describe_impersonation(d: &Destination, expires_at: OffsetDateTime) -> String {
    let lifetime = d.federation.token_lifetime_seconds;
    let who = d
        .federation
        .service_account
        .as_deref()
        .unwrap_or("the federated principal");
    let allowed = if lifetime > 3600 {
        " (above 3600 s: the partner's organization policy allows it)"
    } else {
        ""
    };
    format!(
        "an access token for {who}, expiring {}: the {lifetime} s asked for{allowed}",
        stamp(expires_at)
    )
}

fn describe_receipt(r: &Receipt) -> String {
    format!(
        "gs://{}/{} created (generation {}, {} bytes, crc32c {}) in {} ms: the service account \
         may create objects in the bucket",
        r.bucket,
        r.name,
        r.generation.as_deref().unwrap_or("unknown"),
        r.size,
        r.crc32c,
        r.elapsed_ms
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_arn_gives_the_prefix_of_its_sessions() {
        assert_eq!(
            assumed_role_prefix("arn:aws:iam::111122223333:role/delivery/partner-delivery")
                .as_deref(),
            Some("arn:aws:sts::111122223333:assumed-role/partner-delivery/")
        );
        assert_eq!(
            assumed_role_prefix("arn:aws-cn:iam::111122223333:role/x").as_deref(),
            Some("arn:aws-cn:sts::111122223333:assumed-role/x/")
        );
        assert_eq!(assumed_role_prefix("arn:aws:iam::1:user/alice"), None);
    }

    #[test]
    fn google_s_date_header_parses() {
        let t = OffsetDateTime::parse("Mon, 07 Dec 2026 10:56:25 GMT", &Rfc2822).unwrap();
        assert_eq!(t, time::macros::datetime!(2026-12-07 10:56:25 UTC));
    }

    use crate::testing::{FakeIo, destination, respond};

    const ROLE_SESSION: &str = "arn:aws:sts::111122223333:assumed-role/partner-delivery/s";
    const PRINCIPAL_SET: &str = "principalSet://iam.googleapis.com/projects/123456789012/\
        locations/global/workloadIdentityPools/aws-pool/attribute.aws_role/partner-delivery";

    fn http_date(t: OffsetDateTime) -> String {
        t.format(time::macros::format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        ))
        .unwrap()
    }

    /// Google STS answers the clock's request with `Date: at`.
    fn google_date(io: &mut FakeIo, at: OffsetDateTime) {
        let date = http_date(at);
        io.on("GET https://sts.googleapis.com/v1/token", move |_| {
            Ok(http::Response::builder()
                .status(404)
                .header("date", date.as_str())
                .body(Vec::new())
                .unwrap())
        });
    }

    /// A healthy chain up to the upload, which the bucket refuses (403).
    fn google(io: &mut FakeIo, caller: &'static str) {
        io.set_env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            .set_env("AWS_SECRET_ACCESS_KEY", "canary-secret-key")
            .set_env("AWS_SESSION_TOKEN", "canary-session-token");
        let now = io.now;
        google_date(io, now);
        io.on("POST https://sts.us-east-1.amazonaws.com", move |req| {
            assert_eq!(req.body(), b"Action=GetCallerIdentity&Version=2011-06-15");
            respond(
                200,
                &format!(
                    "<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>{caller}</Arn>\
                     <UserId>AROA:s</UserId><Account>111122223333</Account>\
                     </GetCallerIdentityResult></GetCallerIdentityResponse>"
                ),
            )
        });
        io.on("POST https://sts.googleapis.com/v1/token", |_| {
            respond(
                200,
                r#"{"access_token":"canary-federated","expires_in":3599}"#,
            )
        });
        io.on("POST https://iamcredentials.googleapis.com/", |_| {
            respond(
                200,
                r#"{"accessToken":"canary-access","expireTime":"2026-11-26T13:00:00Z"}"#,
            )
        });
        io.on("POST https://storage.googleapis.com/upload/", |_| {
            respond(
                403,
                r#"{"error":{"code":403,"message":"uploader@partner.iam.gserviceaccount.com does not have storage.objects.create access","errors":[{"reason":"forbidden"}]}}"#,
            )
        });
    }

    fn run_with(io: &mut FakeIo) -> Report {
        run(io, &mut TokenSource::default(), Ok(&destination()))
    }

    fn steps(report: &Report) -> Vec<(&'static str, bool)> {
        report.checks.iter().map(|c| (c.step, c.passed)).collect()
    }

    fn last(report: &Report) -> &Check {
        report.checks.last().unwrap()
    }

    #[test]
    fn each_step_is_a_line_up_to_the_first_failure() {
        let mut io = FakeIo::new();
        google(&mut io, ROLE_SESSION);
        let report = run_with(&mut io);
        assert_eq!(
            steps(&report),
            [
                ("config", true),
                ("aws-region", true),
                ("aws-credentials", true),
                ("clock", true),
                ("aws-identity", true),
                ("mapping", true),
                ("subject-token", true),
                ("sts-exchange", true),
                ("impersonation", true),
                ("handshake", false),
            ]
        );
        assert!(!report.passed);
        assert!(report.receipt.is_none());
        let saw = |step: &str| {
            report
                .checks
                .iter()
                .find(|c| c.step == step)
                .unwrap()
                .saw
                .clone()
        };
        assert!(saw("aws-region").contains("us-east-1 (from aws_region)"));
        assert!(saw("aws-credentials").contains("key id ending MPLE"));
        assert!(saw("clock").contains("agrees"), "{}", saw("clock"));
        assert!(saw("aws-identity").contains(ROLE_SESSION));
        assert!(saw("mapping").contains("attribute.aws_role = partner-delivery"));
        assert!(saw("mapping").contains(PRINCIPAL_SET));
        assert!(
            last(&report)
                .fix
                .as_deref()
                .unwrap()
                .contains("roles/storage.objectCreator")
        );
        let json = serde_json::to_string(&report).unwrap();
        assert!(!json.contains("canary"), "{json}");
        assert_eq!(io.count("POST https://sts.googleapis.com"), 1);
    }

    #[test]
    fn an_iam_user_without_aws_role_arn_is_stopped_before_google() {
        let mut io = FakeIo::new();
        google(&mut io, "arn:aws:iam::111122223333:user/ci");
        let report = run_with(&mut io);
        let check = last(&report);
        assert_eq!((check.step, check.passed), ("aws-identity", false));
        assert!(check.saw.contains("user/ci"), "{}", check.saw);
        assert!(check.fix.as_deref().unwrap().contains("set aws_role_arn"));
        assert_eq!(io.count("POST https://sts.googleapis.com"), 0);
    }

    #[test]
    fn a_rejecting_condition_names_the_caller_and_the_condition_it_needs() {
        let mut io = FakeIo::new();
        google(&mut io, ROLE_SESSION);
        io.on("POST https://sts.googleapis.com/v1/token", |_| {
            respond(400, r#"{"error":"unauthorized_client","error_description":"The given credential is rejected by the attribute condition."}"#)
        });
        let report = run_with(&mut io);
        let check = last(&report);
        assert_eq!((check.step, check.passed), ("sts-exchange", false));
        let fix = check.fix.as_deref().unwrap();
        assert!(fix.contains("not the role the partner trusts"), "{fix}");
        assert!(fix.contains("aws_role_arn is not set"), "{fix}");
        assert!(
            fix.contains("assertion.arn.startsWith('arn:aws:sts::111122223333:assumed-role/partner-delivery/')"),
            "{fix}"
        );
    }

    #[test]
    fn a_missing_binding_names_the_principal_set_to_bind() {
        let mut io = FakeIo::new();
        google(&mut io, ROLE_SESSION);
        io.on("POST https://iamcredentials.googleapis.com/", |_| {
            respond(403, r#"{"error":{"code":403,"message":"Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).","status":"PERMISSION_DENIED"}}"#)
        });
        let report = run_with(&mut io);
        let check = last(&report);
        assert_eq!((check.step, check.passed), ("impersonation", false));
        assert!(
            check.fix.as_deref().unwrap().contains(PRINCIPAL_SET),
            "{check:?}"
        );
    }

    #[test]
    fn a_clock_an_hour_off_stops_before_anything_is_signed() {
        let mut io = FakeIo::new();
        google(&mut io, ROLE_SESSION);
        let hour_behind = io.now - time::Duration::hours(1);
        google_date(&mut io, hour_behind);
        let report = run_with(&mut io);
        let check = last(&report);
        assert_eq!((check.step, check.passed), ("clock", false));
        assert!(
            check.saw.contains("3600 s ahead of Google's"),
            "{}",
            check.saw
        );
        assert!(check.fix.as_deref().unwrap().contains("NTP"));
        assert_eq!(io.count("POST"), 0);
    }

    #[test]
    fn a_refused_configuration_is_the_only_line() {
        let error = Error::new(Step::Config, "bucket is missing").with_fix("set bucket");
        let report = run(&mut FakeIo::new(), &mut TokenSource::default(), Err(&error));
        assert_eq!(steps(&report), [("config", false)]);
        assert_eq!(report.checks[0].fix.as_deref(), Some("set bucket"));
    }
}
