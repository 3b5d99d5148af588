//! An embedded emulator of the Google endpoints that Workload Identity Federation from AWS
//! talks to: STS (`sts.googleapis.com/v1/token`), IAM Credentials
//! (`iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/EMAIL:generateAccessToken`) and
//! the Cloud Storage JSON API's uploads (`storage.googleapis.com/upload/storage/v1/b/BUCKET/o`)
//! as an identity with only `roles/storage.objectCreator` on one bucket meets them (see the
//! `gcs` module: checksums, `ifGenerationMatch`, resumable sessions, denied reads, [`Fault`]s).
//!
//! All three are served on one loopback port and told apart by path, so the component reaches
//! them through `--connect-to sts.googleapis.com=ADDR --connect-to
//! iamcredentials.googleapis.com=ADDR --connect-to storage.googleapis.com=ADDR`.
//! The emulator behaves like Google: it verifies the SigV4 signature of the AWS subject token
//! with an implementation independent of the project's (the `aws-sigv4` crate), checks the
//! audience, the target-resource header and the provider's attribute condition, and answers
//! with Google's status codes, JSON shapes and words. [`Misconfig`] reproduces each partner-side
//! misconfiguration a sender meets in the field.

mod aws_sts;
mod gcs;
mod iam;
mod reply;
mod s3;
mod server;
mod state;
mod sts;
mod subject_token;
mod wan;

pub use gcs::{Fault, FaultPlan, GcsLog, RandomFaults, StoredObject};
pub use s3::{S3Checksum, S3Object};
pub use wan::Wan;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::state::{AccessToken, State, lock, new_token};

/// AWS credentials that the emulated AWS STS accepts, and the ARN `GetCallerIdentity` returns
/// for them (what the provider's attribute condition sees as `assertion.arn`).
#[derive(Clone)]
pub struct AwsIdentity {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub role_arn: String,
}

impl fmt::Debug for AwsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsIdentity")
            .field("access_key_id", &self.access_key_id)
            .field("role_arn", &self.role_arn)
            .finish_non_exhaustive()
    }
}

/// A role the emulated AWS STS lets assume: with `AssumeRole` by any identity it knows,
/// presenting `external_id` when one is set; with `AssumeRoleWithWebIdentity` by presenting
/// `web_identity_token`.
#[derive(Clone)]
pub struct AwsRole {
    pub role_arn: String,
    pub external_id: Option<String>,
    pub web_identity_token: Option<String>,
}

impl fmt::Debug for AwsRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsRole")
            .field("role_arn", &self.role_arn)
            .field("external_id", &self.external_id)
            .finish_non_exhaustive()
    }
}

/// A partner-side misconfiguration, switched on to reproduce the failure Google answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Misconfig {
    /// The pool or provider is wrong, deleted or disabled: STS answers `invalid_target`.
    UnknownAudience,
    /// The pool is disabled: STS answers `invalid_target`, in the same words as for a pool that
    /// does not exist (Google's answer does not tell them apart).
    PoolDisabled,
    /// The provider is disabled: `invalid_target`, as for a provider that does not exist.
    ProviderDisabled,
    /// The AWS provider trusts another AWS account than the caller's: `invalid_grant`.
    ProviderTrustsOtherAccount,
    /// The provider's attribute condition rejects the sender's role: `unauthorized_client`.
    ConditionRejects,
    /// The pool's principals lack `roles/iam.workloadIdentityUser` on the service account: 403.
    MissingWorkloadIdentityUser,
    /// The service account does not exist: 404.
    ServiceAccountMissing,
    /// The service account is disabled: 400 `FAILED_PRECONDITION`.
    ServiceAccountDisabled,
    /// The service account lacks `roles/storage.objectCreator` on the bucket: uploads get 403.
    ObjectCreatorMissing,
    /// The bucket does not exist: uploads get 404.
    BucketMissing,
}

/// What the partner configured on the Google side, and which AWS credentials AWS accepts.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    pub project_number: String,
    pub pool_id: String,
    pub provider_id: String,
    /// The service account email the partner lets the pool impersonate.
    pub service_account: String,
    pub identities: Vec<AwsIdentity>,
    /// Access key ids of `identities` whose session AWS says has expired (`ExpiredToken`).
    pub expired_access_keys: Vec<String>,
    /// The roles AWS STS lets assume (`aws_role_arn`, web identity).
    pub aws_roles: Vec<AwsRole>,
    /// What the emulated S3 holds (see [`Emulator::put_s3_object`]).
    pub s3_objects: Vec<S3Object>,
    /// The provider's attribute condition: `assertion.arn.startsWith(PREFIX)` for any PREFIX.
    pub allowed_role_arn_prefixes: Vec<String>,
    /// The longest access token IAM issues: 3600 unless the organization policy extends it.
    pub max_lifetime_seconds: u32,
    pub misconfig: Vec<Misconfig>,
    /// How far `x-amz-date` may be from now (AWS allows 15 minutes).
    pub clock_skew_tolerance: Duration,
    /// A fixed "now", for tests; `None` follows the system clock.
    pub now: Option<OffsetDateTime>,
    /// The one bucket the service account may create objects in (`roles/storage.objectCreator`).
    pub bucket: String,
    /// Where uploaded objects go.
    pub storage: Storage,
    /// Faults that Cloud Storage requests meet; see [`Emulator::set_faults`].
    pub faults: FaultPlan,
    /// The link to Google: a round trip per connection and request, a bandwidth per connection.
    pub wan: Wan,
    /// Serve HTTPS with this certificate (see [`Tls::generate`]) instead of plain HTTP.
    pub tls: Option<Tls>,
}

/// A certificate for Google's host names (and 127.0.0.1), signed by a CA made for it.
#[derive(Clone)]
pub struct Tls {
    /// The CA's certificate, PEM: what a client must trust.
    pub ca_pem: String,
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

impl Tls {
    /// A new CA, and a certificate it signs for `sts.googleapis.com`,
    /// `iamcredentials.googleapis.com`, `storage.googleapis.com`, `localhost` and `127.0.0.1`.
    pub fn generate() -> anyhow::Result<Tls> {
        let ca_key = rcgen::KeyPair::generate()?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "wif-push emulator CA");
        let ca = ca_params.self_signed(&ca_key)?;
        let leaf_key = rcgen::KeyPair::generate()?;
        let names = [
            "sts.googleapis.com",
            "iamcredentials.googleapis.com",
            "storage.googleapis.com",
            "localhost",
            "127.0.0.1",
        ];
        let leaf = rcgen::CertificateParams::new(names.map(str::to_owned).to_vec())?
            .signed_by(&leaf_key, &ca, &ca_key)?;
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![rustls::pki_types::CertificateDer::from(leaf.der().to_vec())],
            rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
                leaf_key.serialize_der(),
            )),
        )?;
        Ok(Tls {
            ca_pem: ca.pem(),
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }
}

/// Where the emulated bucket keeps its objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Storage {
    /// A fresh temporary directory, created when the emulator starts, owned by the [`Emulator`]
    /// and removed when it is dropped.
    TempDir,
    /// Objects are files under this directory (created if missing), named by their
    /// percent-encoded object name; uploads in progress are staged in its `.staging/`.
    Disk(PathBuf),
    /// Bytes are hashed and counted but not kept.
    Discard,
    /// Bytes are not kept, and only their CRC32C is computed (their MD5 too when an upload
    /// declares one before its data, in its metadata or a media upload's `X-Goog-Hash`): the
    /// least work per byte a server that checks integrity can do, so that in a throughput
    /// benchmark the emulator is not what is measured. Objects get an empty `sha256_hex` (and
    /// `md5_hash`, unless computed); a final `X-Goog-Hash` MD5 that was not declared up front is
    /// refused rather than left unchecked.
    Benchmark,
}

impl EmulatorConfig {
    /// A consistent partner setup with one AWS identity (the AWS documentation's example keys).
    pub fn demo() -> Self {
        EmulatorConfig {
            project_number: "123456789012".into(),
            pool_id: "aws-partner".into(),
            provider_id: "aws".into(),
            service_account: "uploader@partner-project.iam.gserviceaccount.com".into(),
            identities: vec![AwsIdentity {
                access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
                secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
                session_token: None,
                role_arn: "arn:aws:sts::111122223333:assumed-role/wif-push-sender/session".into(),
            }],
            expired_access_keys: Vec::new(),
            s3_objects: Vec::new(),
            aws_roles: vec![AwsRole {
                role_arn: "arn:aws:iam::111122223333:role/wif-push-sender".into(),
                external_id: None,
                web_identity_token: None,
            }],
            allowed_role_arn_prefixes: vec![
                "arn:aws:sts::111122223333:assumed-role/wif-push-sender/".into(),
            ],
            max_lifetime_seconds: 3600,
            misconfig: Vec::new(),
            clock_skew_tolerance: Duration::from_secs(15 * 60),
            now: None,
            bucket: "partner-inbox".into(),
            storage: Storage::TempDir,
            faults: FaultPlan::default(),
            wan: Wan::default(),
            tls: None,
        }
    }

    /// The provider's full resource name: the STS `audience` and the target-resource header.
    pub fn audience(&self) -> String {
        format!(
            "//iam.googleapis.com/projects/{}/locations/global/workloadIdentityPools/{}/providers/{}",
            self.project_number, self.pool_id, self.provider_id
        )
    }

    pub(crate) fn has(&self, misconfig: Misconfig) -> bool {
        self.misconfig.contains(&misconfig)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Sts,
    /// AWS STS (`AssumeRole`, `AssumeRoleWithWebIdentity`), at `/` on any host.
    AwsSts,
    Iam,
    /// S3: GetObject, HeadObject, ListObjectsV2, told apart by the host (`s3.`, `.s3.`).
    S3,
    /// Cloud Storage's JSON API: uploads, resumable sessions, and object reads (all denied).
    Gcs,
    Other,
}

impl Endpoint {
    fn of(path: &str) -> Self {
        if path == "/" {
            Endpoint::AwsSts
        } else if path == "/v1/token" {
            Endpoint::Sts
        } else if path.starts_with("/v1/projects/") && path.contains("/serviceAccounts/") {
            Endpoint::Iam
        } else if gcs::is_gcs_path(path) {
            Endpoint::Gcs
        } else {
            Endpoint::Other
        }
    }
}

/// One request the emulator answered. Holds no secrets: tokens and signatures are left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    pub endpoint: Endpoint,
    pub method: String,
    pub path: String,
    pub status: u16,
    /// What happened, e.g. `invalid_grant: ...` or `federated token issued to arn:...`.
    /// `status` is 0 when the connection was dropped without an answer (a fault, or the client
    /// hung up).
    pub outcome: String,
    /// Cloud Storage requests only: upload type, `Content-Range`, bytes received and re-sent.
    pub gcs: Option<GcsLog>,
}

/// A running emulator. It stops (and drops its connections) when dropped.
pub struct Emulator {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
    storage_dir: Option<PathBuf>,
    /// Removed after the server task is stopped (fields drop after [`Drop::drop`]).
    _temp_dir: Option<tempfile::TempDir>,
}

impl Emulator {
    /// Binds `listen` (port 0 picks a free one) and serves on the current Tokio runtime.
    pub async fn start(config: EmulatorConfig, listen: SocketAddr) -> anyhow::Result<Emulator> {
        let temp_dir = match config.storage {
            Storage::TempDir => Some(
                tempfile::Builder::new()
                    .prefix("wif-push-gcs-")
                    .tempdir()
                    .context("the emulator could not create a temporary directory for objects")?,
            ),
            Storage::Disk(_) | Storage::Discard | Storage::Benchmark => None,
        };
        let storage_dir = match (&config.storage, &temp_dir) {
            (Storage::Disk(dir), _) => Some(dir.clone()),
            (_, Some(temp)) => Some(temp.path().to_path_buf()),
            _ => None,
        };
        let state = Arc::new(State::new(config, storage_dir.as_deref())?);
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("the emulator could not listen on {listen}"))?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(server::serve(listener, state.clone()));
        Ok(Emulator {
            addr,
            state,
            task,
            storage_dir,
            _temp_dir: temp_dir,
        })
    }

    /// The directory objects are stored in (`None` with [`Storage::Discard`]).
    pub fn storage_dir(&self) -> Option<&Path> {
        self.storage_dir.as_deref()
    }

    /// Every object in the bucket, by name.
    pub fn objects(&self) -> Vec<StoredObject> {
        self.state.gcs.objects()
    }

    pub fn object(&self, name: &str) -> Option<StoredObject> {
        self.state.gcs.object(name)
    }

    /// The temporary keys the emulated AWS STS issued so far (for tests that look for them in
    /// output, where they must never be).
    pub fn assumed_identities(&self) -> Vec<AwsIdentity> {
        state::lock(&self.state.assumed).clone()
    }

    /// Puts `object` in the emulated S3, replacing one of the same bucket and key.
    pub fn put_s3_object(&self, object: S3Object) {
        let mut objects = state::lock(&self.state.s3);
        objects.retain(|o| o.bucket != object.bucket || o.key != object.key);
        objects.push(object);
    }

    /// Replaces the fault plan: later Cloud Storage requests meet the new faults (the random
    /// generator restarts from the new seed).
    pub fn set_faults(&self, faults: FaultPlan) {
        self.state.gcs.set_faults(&faults);
    }

    /// Test support: an access token for the service account, valid for an hour of the
    /// emulator's clock, with the `devstorage.read_write` scope, issued without the STS and IAM
    /// round trips (which `tests/sts.rs` and `tests/iam.rs` cover).
    pub fn issue_access_token_for_tests(&self) -> String {
        let token = new_token("ya29.c.test-");
        lock(&self.state.access_tokens).insert(
            token.clone(),
            AccessToken {
                expires: self.state.now() + Duration::from_secs(3600),
                scopes: vec!["https://www.googleapis.com/auth/devstorage.read_write".into()],
            },
        );
        token
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn config(&self) -> &EmulatorConfig {
        &self.state.config
    }

    /// Moves the emulator's clock (`None`: back to the system clock), e.g. to let tokens expire.
    pub fn set_now(&self, now: Option<OffsetDateTime>) {
        *lock(&self.state.now) = now;
    }

    pub fn log(&self) -> Vec<LogEntry> {
        lock(&self.state.log).clone()
    }

    /// When each request's head arrived (before its body was read), in order of arrival.
    pub fn arrivals(&self) -> Vec<(Endpoint, Instant)> {
        lock(&self.state.arrivals).clone()
    }

    pub fn count(&self, endpoint: Endpoint) -> usize {
        lock(&self.state.log)
            .iter()
            .filter(|entry| entry.endpoint == endpoint)
            .count()
    }

    /// Whether `token` is a service-account access token this emulator issued and that has not
    /// expired.
    pub fn access_token_valid(&self, token: &str) -> bool {
        let now = self.state.now();
        lock(&self.state.access_tokens)
            .get(token)
            .is_some_and(|access| access.expires > now)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}
