//! The token source: AWS credentials → subject token → Google STS → service-account access
//! token, with the result cached per destination until shortly before it expires, so a
//! delivery never pays for an exchange while a valid token is at hand.

use std::collections::HashMap;
use std::time::Duration;

use time::OffsetDateTime;

use crate::aws::{self, AwsCredentials, Provider};
use crate::config::Destination;
use crate::error::{Error, Step};
use crate::io::{Io, Request, Response, head_of};
use crate::retry::retry;
use crate::secret::Secret;
use crate::sigv4::SigningKeyCache;
use crate::wif::subject_token::{TargetResource, subject_token};
use crate::wif::{iam, sts};

/// A token is refreshed this long before it expires, so none expires mid-request.
pub const REFRESH_SLACK: Duration = Duration::from_secs(300);
/// After the exchange gave up on a dead endpoint, later deliveries fail at once with the same
/// diagnosis for this long instead of each running the whole backoff again; then one tries.
pub const GIVE_UP_MEMORY: Duration = Duration::from_secs(300);
const GOOGLE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
pub struct AccessToken {
    pub token: Secret,
    pub expires_at: OffsetDateTime,
    /// True when no exchange was needed.
    pub from_cache: bool,
}

#[derive(Clone, Debug, Default)]
pub struct TokenSource {
    tokens: HashMap<String, AccessToken>,
    aws: Option<AwsCredentials>,
    /// Each destination role's assumed credentials, by role, external id, session name and
    /// the key that assumed it.
    roles: HashMap<String, AwsCredentials>,
    /// The regions found, by what they were found from: the instance's zone is asked once, not
    /// for every S3 object and exchange.
    regions: HashMap<String, String>,
    /// The subject token's signing keys, so each is derived once per secret and day.
    signing_keys: SigningKeyCache,
    /// The last exchange that gave up, per cache key, and when.
    gave_up: HashMap<String, (Error, OffsetDateTime)>,
}

/// One cache entry per audience, service account and lifetime.
fn cache_key(destination: &Destination) -> String {
    format!(
        "{}|{}|{}",
        destination.federation.audience,
        destination
            .federation
            .service_account
            .as_deref()
            .unwrap_or(""),
        destination.federation.token_lifetime_seconds
    )
}

/// The store's key for a cache key: its SHA-256, so that nothing of the destination shows.
fn store_key(key: &str) -> String {
    use sha2::Digest as _;
    format!(
        "wif-push/access-token/{}",
        hex::encode(sha2::Sha256::digest(key.as_bytes()))
    )
}

/// A token another instance left in the shared store (`EXPIRY TOKEN`: Unix seconds, a space,
/// the token) that is still good for a while.
fn from_store(io: &mut dyn Io, key: &str, now: OffsetDateTime) -> Option<AccessToken> {
    let bytes = io.shared_get(&store_key(key))?;
    let text = std::str::from_utf8(&bytes).ok()?;
    let (expiry, token) = text.split_once(' ')?;
    let expires_at = OffsetDateTime::from_unix_timestamp(expiry.parse().ok()?).ok()?;
    let token = Secret::new(token);
    (token.is_header_safe() && expires_at - REFRESH_SLACK > now).then_some(AccessToken {
        token,
        expires_at,
        from_cache: false,
    })
}

/// Leaves a fresh token in the shared store for the instances after this one.
fn to_store(io: &mut dyn Io, key: &str, token: &AccessToken) {
    let entry = format!(
        "{} {}",
        token.expires_at.unix_timestamp(),
        token.token.expose()
    );
    io.shared_set(&store_key(key), entry.as_bytes());
}

impl TokenSource {
    /// An access token for `destination`, from the cache when one is still good.
    pub fn access_token(
        &mut self,
        io: &mut dyn Io,
        destination: &Destination,
    ) -> Result<AccessToken, Error> {
        let key = cache_key(destination);
        let now = io.now();
        if let Some(cached) = self.tokens.get(&key)
            && cached.expires_at - REFRESH_SLACK > now
        {
            return Ok(AccessToken {
                from_cache: true,
                ..cached.clone()
            });
        }
        if let Some(shared) = from_store(io, &key, now) {
            self.tokens.insert(key, shared.clone());
            return Ok(AccessToken {
                from_cache: true,
                ..shared
            });
        }
        if let Some((error, at)) = self.gave_up.get(&key)
            && now - *at < GIVE_UP_MEMORY
        {
            let mut error = error.clone();
            error.message = format!(
                "{} (not tried again: the exchange gave up {} s ago)",
                error.message,
                (now - *at).whole_seconds()
            );
            return Err(error);
        }
        // Only a give-up is transient here: the retry loop returns every other error at once.
        let token = self.exchange_for(io, destination).inspect_err(|e| {
            if e.transient {
                self.gave_up.insert(key.clone(), (e.clone(), now));
            }
        })?;
        self.gave_up.remove(&key);
        to_store(io, &key, &token);
        self.tokens.insert(key, token.clone());
        Ok(token)
    }

    /// Runs the whole exchange for `destination`.
    fn exchange_for(
        &mut self,
        io: &mut dyn Io,
        destination: &Destination,
    ) -> Result<AccessToken, Error> {
        let subject = self.subject_token(io, destination, None)?;
        let federated = self.exchange(io, destination, &subject)?;
        self.impersonate(io, destination, federated)
    }

    /// The service account's access token bought with the federated token, or the federated
    /// token itself when the destination impersonates no service account.
    pub fn impersonate(
        &self,
        io: &mut dyn Io,
        destination: &Destination,
        federated: sts::FederatedToken,
    ) -> Result<AccessToken, Error> {
        let (Some(url), Some(email)) = (
            &destination.federation.impersonation_url,
            &destination.federation.service_account,
        ) else {
            // The partner granted the federated principal directly: use the STS token.
            return Ok(AccessToken {
                token: federated.access_token,
                expires_at: io.now() + Duration::from_secs(federated.expires_in),
                from_cache: false,
            });
        };
        let request = iam::request(
            url,
            &federated.access_token,
            destination.federation.token_lifetime_seconds,
        );
        let (token, expires_at) = self.call(
            io,
            destination,
            Step::Impersonation,
            "IAM Credentials",
            &request,
            |r| iam::parse(r, email),
        )?;
        Ok(AccessToken {
            token,
            expires_at,
            from_cache: false,
        })
    }

    /// Caches a token obtained step by step (the doctor's), as `access_token` would have.
    pub fn remember(&mut self, destination: &Destination, token: AccessToken) {
        self.tokens.insert(cache_key(destination), token);
    }

    /// The cached tokens by cache key, for a host that shares them across a pool of instances.
    pub fn cached(&self) -> impl Iterator<Item = (&str, &AccessToken)> {
        self.tokens.iter().map(|(key, token)| (key.as_str(), token))
    }

    /// Takes a token another instance obtained, unless the one cached here lives as long.
    pub fn adopt(&mut self, key: String, token: Secret, expires_at: OffsetDateTime) {
        if self
            .tokens
            .get(&key)
            .is_some_and(|own| own.expires_at >= expires_at)
        {
            return;
        }
        let token = AccessToken {
            token,
            expires_at,
            from_cache: false,
        };
        self.tokens.insert(key, token);
    }

    /// Forgets the cached token, e.g. after Cloud Storage answered 401 with it.
    pub fn invalidate(&mut self, destination: &Destination) {
        self.tokens.remove(&cache_key(destination));
    }

    /// The URL-encoded subject token, signed at `at` (now when `None`).
    pub fn subject_token(
        &mut self,
        io: &mut dyn Io,
        destination: &Destination,
        at: Option<OffsetDateTime>,
    ) -> Result<Secret, Error> {
        let region = self.region(io, destination)?;
        let credentials = self.aws_credentials(io, destination, &region)?;
        let time = at.unwrap_or_else(|| io.now());
        let target = if destination.sign_target_resource {
            TargetResource::Signed
        } else {
            TargetResource::Unsigned
        };
        let token = subject_token(
            &credentials.credentials,
            &region,
            destination,
            time,
            target,
            &self.signing_keys,
        );
        token.map_err(|e| {
            let fix = match credentials.source {
                Provider::Environment => {
                    "check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION"
                }
                Provider::Profile => "check the profile's keys in the AWS credentials file",
                Provider::WebIdentity | Provider::AssumedRole => {
                    "check the credentials AWS STS answered with"
                }
                Provider::Container => "check the container credentials endpoint's answer",
                Provider::InstanceMetadata => "check the instance profile's credentials",
            };
            Error::new(Step::SubjectToken, e.to_string()).with_fix(fix)
        })
    }

    /// The pipeline's own AWS credentials (the chain's, cached) and the destination's region:
    /// what reads the provider's data (S3), whatever role the partner trusts.
    pub fn pipeline_credentials(
        &mut self,
        io: &mut dyn Io,
        destination: &Destination,
    ) -> Result<(AwsCredentials, String), Error> {
        let region = self.region(io, destination)?;
        let base = self.base_credentials(io, destination, &region)?;
        Ok((base, region))
    }

    /// The destination's AWS region: its setting, the environment, or the instance's zone.
    pub fn region(&mut self, io: &mut dyn Io, destination: &Destination) -> Result<String, Error> {
        let key = format!(
            "{:?}|{:?}|{:?}|{:?}",
            destination.aws_region,
            io.env("AWS_REGION"),
            io.env("AWS_DEFAULT_REGION"),
            destination.federation.aws.region_url
        );
        if let Some(region) = self.regions.get(&key) {
            return Ok(region.clone());
        }
        let region = aws::region(
            io,
            destination.aws_region.as_deref(),
            &destination.federation.aws,
            destination.imds_v1_fallback,
        )?;
        self.regions.insert(key, region.clone());
        Ok(region)
    }

    fn lookup<'a>(destination: &'a Destination, region: &'a str) -> aws::Lookup<'a> {
        aws::Lookup {
            region: Some(region),
            backoff: destination.backoff,
            ..aws::Lookup::new(&destination.federation.aws, destination.imds_v1_fallback)
        }
    }

    /// The chain's credentials: from the environment read afresh; temporary ones kept until
    /// shortly before they expire.
    fn base_credentials(
        &mut self,
        io: &mut dyn Io,
        destination: &Destination,
        region: &str,
    ) -> Result<AwsCredentials, Error> {
        let now = io.now();
        match &self.aws {
            Some(cached)
                if cached.source != Provider::Environment
                    && cached.expires_at.is_none_or(|t| t - REFRESH_SLACK > now) =>
            {
                Ok(cached.clone())
            }
            _ => {
                let found = aws::chain(io, &Self::lookup(destination, region))?;
                self.aws = Some(found.clone());
                Ok(found)
            }
        }
    }

    /// The credentials that sign the subject token: the pipeline's own (the chain), or, when
    /// the destination names a role, that role's, assumed with them and kept per role until
    /// shortly before they expire.
    pub fn aws_credentials(
        &mut self,
        io: &mut dyn Io,
        destination: &Destination,
        region: &str,
    ) -> Result<AwsCredentials, Error> {
        let base = self.base_credentials(io, destination, region)?;
        let Some(role) = &destination.aws_role else {
            return Ok(base);
        };
        let now = io.now();
        let key = format!(
            "{}|{}|{}|{}",
            role.role_arn,
            role.external_id.as_deref().unwrap_or(""),
            role.session_name.as_deref().unwrap_or(""),
            base.credentials.access_key_id
        );
        if let Some(assumed) = self
            .roles
            .get(&key)
            .filter(|c| c.expires_at.is_none_or(|t| t - REFRESH_SLACK > now))
        {
            return Ok(assumed.clone());
        }
        let mut request =
            aws::sts::RoleRequest::new(&role.role_arn, role.session_name.as_deref(), now);
        request.external_id = role.external_id.clone();
        let assumed = aws::assume_role(io, &Self::lookup(destination, region), &base, &request)?;
        self.roles.insert(key, assumed.clone());
        Ok(assumed)
    }

    /// Google STS's federated token for the subject token.
    pub fn exchange(
        &self,
        io: &mut dyn Io,
        destination: &Destination,
        subject: &Secret,
    ) -> Result<sts::FederatedToken, Error> {
        let request = sts::request(
            &destination.federation.token_url,
            &destination.federation.audience,
            subject,
        );
        self.call(
            io,
            destination,
            Step::StsExchange,
            "Google STS",
            &request,
            sts::parse,
        )
    }

    /// Sends `request` with retries on transient failures, parsing the answer with `parse`.
    fn call<T>(
        &self,
        io: &mut dyn Io,
        destination: &Destination,
        step: Step,
        what: &str,
        request: &Request,
        parse: impl Fn(&Response) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let backoff = destination.backoff;
        let (result, _retries) = retry(io, &backoff, |io| {
            let response = io
                .send_borrowed(&head_of(request), request.body(), GOOGLE_TIMEOUT)
                .map_err(|e| {
                    Error::no_answer(
                        step,
                        format!("{what} ({}) could not be reached: {e}", request.uri()),
                        &e,
                    )
                })?;
            parse(&response)
        });
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakeIo, destination, respond};

    fn google(io: &mut FakeIo) {
        io.set_env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            .set_env("AWS_SECRET_ACCESS_KEY", "canary-secret-key")
            .set_env("AWS_SESSION_TOKEN", "canary-session-token");
        io.on("POST https://sts.googleapis.com/v1/token", |_| {
            respond(
                200,
                r#"{"access_token":"canary-federated","token_type":"Bearer","expires_in":3599}"#,
            )
        });
        io.on("POST https://iamcredentials.googleapis.com/", |req| {
            assert_eq!(req.headers()["authorization"], "Bearer canary-federated");
            respond(
                200,
                r#"{"accessToken":"canary-access","expireTime":"2026-11-26T13:00:00Z"}"#,
            )
        });
    }

    #[test]
    fn one_exchange_serves_a_hundred_requests() {
        let mut io = FakeIo::new();
        google(&mut io);
        let mut source = TokenSource::default();
        for i in 0..100 {
            let token = source.access_token(&mut io, &destination()).unwrap();
            assert_eq!(token.token.expose(), "canary-access");
            assert_eq!(token.from_cache, i > 0);
        }
        assert_eq!(io.count("POST https://sts.googleapis.com"), 1);
        assert_eq!(io.count("POST https://iamcredentials.googleapis.com"), 1);
    }

    #[test]
    fn after_a_give_up_the_next_deliveries_fail_at_once_for_a_while() {
        let mut io = FakeIo::new();
        google(&mut io);
        io.on("POST https://sts.googleapis.com/v1/token", |_| {
            respond(503, "down")
        });
        let mut source = TokenSource::default();
        let first = source.access_token(&mut io, &destination()).unwrap_err();
        assert!(
            first.message.contains("gave up after 6 attempts"),
            "{first}"
        );
        let sent = io.count("POST https://sts.googleapis.com");
        assert_eq!(sent, 6);
        for _ in 0..10 {
            let again = source.access_token(&mut io, &destination()).unwrap_err();
            assert!(again.message.starts_with(&first.message), "{again}");
            assert!(again.message.contains("not tried again"), "{again}");
            assert_eq!(again.fix, first.fix);
        }
        assert_eq!(
            io.count("POST https://sts.googleapis.com"),
            sent,
            "no request sent"
        );
        io.now += GIVE_UP_MEMORY;
        google(&mut io);
        assert!(
            source.access_token(&mut io, &destination()).is_ok(),
            "a later try"
        );
    }

    #[test]
    fn an_adopted_token_spares_the_exchange_until_it_nears_expiry() {
        let mut io = FakeIo::new();
        google(&mut io);
        let mut first = TokenSource::default();
        first.access_token(&mut io, &destination()).unwrap();
        let mut second = TokenSource::default();
        for (key, token) in first.cached() {
            second.adopt(key.to_owned(), token.token.clone(), token.expires_at);
        }
        let adopted = second.access_token(&mut io, &destination()).unwrap();
        assert!(adopted.from_cache);
        assert_eq!(adopted.token.expose(), "canary-access");
        assert_eq!(io.count("POST https://sts.googleapis.com"), 1);

        // An older token never replaces a fresher one.
        let key = first.cached().next().unwrap().0.to_owned();
        let stale = io.now + Duration::from_secs(60);
        second.adopt(key, Secret::new("canary-stale"), stale);
        let kept = second.access_token(&mut io, &destination()).unwrap();
        assert_eq!(kept.token.expose(), "canary-access");
    }

    #[test]
    fn a_token_near_expiry_is_refreshed() {
        let mut io = FakeIo::new();
        google(&mut io);
        let mut source = TokenSource::default();
        source.access_token(&mut io, &destination()).unwrap();
        io.now += Duration::from_secs(3600 - 299); // token expires at 13:00, slack is 5 minutes
        source.access_token(&mut io, &destination()).unwrap();
        assert_eq!(io.count("POST https://sts.googleapis.com"), 2);
    }

    #[test]
    fn sts_outage_is_retried_then_succeeds() {
        let mut io = FakeIo::new();
        google(&mut io);
        let mut failures = 2;
        io.on("POST https://sts.googleapis.com/v1/token", move |_| {
            if failures > 0 {
                failures -= 1;
                respond(503, "unavailable")
            } else {
                respond(
                    200,
                    r#"{"access_token":"canary-federated","expires_in":3599}"#,
                )
            }
        });
        let mut source = TokenSource::default();
        source.access_token(&mut io, &destination()).unwrap();
        assert_eq!(io.count("POST https://sts.googleapis.com"), 3);
        assert_eq!(io.slept.len(), 2);
    }

    #[test]
    fn instance_credentials_are_fetched_again_before_they_expire() {
        let mut io = FakeIo::new();
        google(&mut io);
        io.env.clear();
        io.on("PUT http://169.254.169.254/latest/api/token", |_| {
            respond(200, "session")
        });
        io.on("GET http://169.254.169.254/latest/meta-data/iam/security-credentials", |req| {
            if req.uri().path().ends_with("/role") {
                // Valid for ten minutes from the fake clock's start.
                respond(200, r#"{"Code":"Success","AccessKeyId":"ASIA1","SecretAccessKey":"s","Token":"t","Expiration":"2026-11-26T12:10:00Z"}"#)
            } else {
                respond(200, "role")
            }
        });
        let mut source = TokenSource::default();
        let dest = destination();
        source.subject_token(&mut io, &dest, None).unwrap();
        source.subject_token(&mut io, &dest, None).unwrap();
        assert_eq!(
            io.count("GET http://169.254.169.254/latest/meta-data/iam/security-credentials/role"),
            1,
            "reused while fresh"
        );
        io.now += Duration::from_secs(6 * 60); // within five minutes of Expiration
        source.subject_token(&mut io, &dest, None).unwrap();
        assert_eq!(
            io.count("GET http://169.254.169.254/latest/meta-data/iam/security-credentials/role"),
            2,
            "refreshed before expiry"
        );
    }

    #[test]
    fn errors_never_carry_secrets() {
        let mut io = FakeIo::new();
        google(&mut io);
        io.on("POST https://iamcredentials.googleapis.com/", |_| {
            respond(403, r#"{"error":{"code":403,"message":"Permission denied","status":"PERMISSION_DENIED"}}"#)
        });
        let err = TokenSource::default()
            .access_token(&mut io, &destination())
            .unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(!text.contains("canary"), "{text}");
        assert!(text.contains("roles/iam.workloadIdentityUser"));
    }

    /// The instance's zone is asked once for the region, not for every read and exchange.
    #[test]
    fn the_region_from_the_instance_is_asked_once() {
        use crate::config::{DEFAULT_IMDS_REGION_URL, DEFAULT_IMDSV2_SESSION_TOKEN_URL};
        let mut destination = crate::testing::destination();
        destination.aws_region = None;
        destination.federation.aws.region_url = Some(DEFAULT_IMDS_REGION_URL.into());
        destination.federation.aws.imdsv2_session_token_url =
            Some(DEFAULT_IMDSV2_SESSION_TOKEN_URL.into());
        let mut io = FakeIo::new();
        io.set_env("AWS_ACCESS_KEY_ID", "AKIAENV")
            .set_env("AWS_SECRET_ACCESS_KEY", "canary-secret");
        io.on("PUT http://169.254.169.254/latest/api/token", |_| {
            crate::testing::respond(200, "imds-token")
        });
        io.on(
            "GET http://169.254.169.254/latest/meta-data/placement",
            |_| crate::testing::respond(200, "eu-west-1b"),
        );
        let mut source = TokenSource::default();
        for _ in 0..3 {
            let (_, region) = source.pipeline_credentials(&mut io, &destination).unwrap();
            assert_eq!(region, "eu-west-1");
        }
        assert_eq!(io.count("GET http://169.254.169.254/"), 1, "{:?}", io.sent);
    }

    /// Instances that share a store (a host making one per request) exchange once per token:
    /// the first leaves its token there, the next ones take it while it is good, and none is
    /// taken once it nears expiry. What is stored is the token and its expiry, under a key
    /// that shows nothing of the destination.
    #[test]
    fn instances_sharing_a_store_exchange_once() {
        let mut io = FakeIo::new();
        google(&mut io);
        io.shared = Some(HashMap::new());
        for i in 0..5 {
            let mut fresh = TokenSource::default();
            let token = fresh.access_token(&mut io, &destination()).unwrap();
            assert_eq!(token.token.expose(), "canary-access");
            assert_eq!(token.from_cache, i > 0, "instance {i}");
        }
        assert_eq!(io.count("POST https://sts.googleapis.com"), 1);
        let shared = io.shared.clone().unwrap();
        let (key, value) = shared.iter().next().unwrap();
        assert!(key.starts_with("wif-push/access-token/"), "{key}");
        assert!(!key.contains("iam.googleapis.com"), "{key}");
        let expiry = time::macros::datetime!(2026-11-26 13:00 UTC).unix_timestamp();
        assert_eq!(value, format!("{expiry} canary-access").as_bytes());

        // Within five minutes of expiry, an instance exchanges again and stores the new token.
        io.now += Duration::from_secs(3600 - 299);
        TokenSource::default()
            .access_token(&mut io, &destination())
            .unwrap();
        assert_eq!(io.count("POST https://sts.googleapis.com"), 2);

        // Without a store, every instance exchanges.
        io.shared = None;
        TokenSource::default()
            .access_token(&mut io, &destination())
            .unwrap();
        assert_eq!(io.count("POST https://sts.googleapis.com"), 3);
    }

    /// A store that holds something else under the key (a damaged or foreign entry) is ignored.
    #[test]
    fn a_damaged_stored_token_is_ignored() {
        let mut io = FakeIo::new();
        google(&mut io);
        let key = store_key(&cache_key(&destination()));
        for junk in [&b"no expiry"[..], b"4102444800 a\nb", b"4102444800 "] {
            io.shared = Some(HashMap::from([(key.clone(), junk.to_vec())]));
            let token = TokenSource::default()
                .access_token(&mut io, &destination())
                .unwrap();
            assert!(!token.from_cache);
        }
    }
}
