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

mod aws_request;
mod gcs;
mod iam;
mod sts;

pub use gcs::{Fault, FaultPlan, GcsLog, RandomFaults, StoredObject};

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rand::distr::{Alphanumeric, SampleString};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// Google's front end refuses larger requests; none of these endpoints needs more.
const MAX_BODY_BYTES: usize = 1 << 20;

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

/// A partner-side misconfiguration, switched on to reproduce the failure Google answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Misconfig {
    /// The pool or provider is wrong, deleted or disabled: STS answers `invalid_target`.
    UnknownAudience,
    /// The provider's attribute condition rejects the sender's role: `unauthorized_client`.
    ConditionRejects,
    /// The pool's principals lack `roles/iam.workloadIdentityUser` on the service account: 403.
    MissingWorkloadIdentityUser,
    /// The service account does not exist: 404.
    ServiceAccountMissing,
    /// The service account is disabled: 400 `FAILED_PRECONDITION`.
    ServiceAccountDisabled,
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
        }
    }

    /// The provider's full resource name: the STS `audience` and the target-resource header.
    pub fn audience(&self) -> String {
        format!(
            "//iam.googleapis.com/projects/{}/locations/global/workloadIdentityPools/{}/providers/{}",
            self.project_number, self.pool_id, self.provider_id
        )
    }

    fn has(&self, misconfig: Misconfig) -> bool {
        self.misconfig.contains(&misconfig)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Sts,
    Iam,
    /// Cloud Storage's JSON API: uploads, resumable sessions, and object reads (all denied).
    Gcs,
    Other,
}

impl Endpoint {
    fn of(path: &str) -> Self {
        if path == "/v1/token" {
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

struct FederatedToken {
    expires: OffsetDateTime,
    scopes: Vec<String>,
}

/// A service-account access token that IAM Credentials issued.
struct AccessToken {
    expires: OffsetDateTime,
    scopes: Vec<String>,
}

/// Everything the endpoints share: the configuration, the clock, the tokens issued, the log.
struct State {
    config: EmulatorConfig,
    now: Mutex<Option<OffsetDateTime>>,
    federated_tokens: Mutex<HashMap<String, FederatedToken>>,
    access_tokens: Mutex<HashMap<String, AccessToken>>,
    log: Mutex<Vec<LogEntry>>,
    /// When each request's head arrived, in order.
    arrivals: Mutex<Vec<(Endpoint, Instant)>>,
    gcs: gcs::GcsState,
}

/// A poisoned lock only means another request panicked; the data is still consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl State {
    fn new(config: EmulatorConfig, storage_dir: Option<&Path>) -> anyhow::Result<Self> {
        Ok(State {
            now: Mutex::new(config.now),
            gcs: gcs::GcsState::new(
                storage_dir,
                config.storage == Storage::Benchmark,
                &config.faults,
            )?,
            arrivals: Mutex::default(),
            config,
            federated_tokens: Mutex::default(),
            access_tokens: Mutex::default(),
            log: Mutex::default(),
        })
    }

    fn now(&self) -> OffsetDateTime {
        lock(&self.now).unwrap_or_else(OffsetDateTime::now_utc)
    }
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
        let task = tokio::spawn(serve(listener, state.clone()));
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

    /// Replaces the fault plan: later Cloud Storage requests meet the new faults (the random
    /// generator restarts from the new seed).
    pub fn set_faults(&self, faults: FaultPlan) {
        self.state.gcs.set_faults(&faults);
    }

    /// Test support: an access token for the service account, valid for an hour of the
    /// emulator's clock, with the `devstorage.read_write` scope, issued without the STS and IAM
    /// round trips (which `tests/emulator.rs` covers).
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

async fn serve(listener: TcpListener, state: Arc<State>) {
    // Connections live in this set, so aborting the server task drops them too.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let state = state.clone();
                    connections.spawn(async move {
                        let service = service_fn(move |req| handle(state.clone(), req));
                        // A client that hangs up mid-request is its own problem, not the server's.
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                // E.g. out of file descriptors: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// An answer, with a one-line outcome for the log.
#[derive(Clone, Debug)]
struct Reply {
    status: StatusCode,
    /// `Value::Null` is sent as an empty body without a content type.
    body: Value,
    headers: Vec<(HeaderName, HeaderValue)>,
    outcome: String,
    /// An HTTP/1 reason phrase other than the status code's canonical one.
    reason: Option<&'static str>,
}

impl Reply {
    fn new(status: StatusCode, body: Value, outcome: String) -> Self {
        Reply {
            status,
            body,
            headers: Vec::new(),
            outcome,
            reason: None,
        }
    }

    fn ok(body: Value, outcome: String) -> Self {
        Reply::new(StatusCode::OK, body, outcome)
    }

    /// Google's JSON error shape for its REST APIs (IAM Credentials, Cloud Storage, ...).
    fn google_error(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Reply::new(
            status,
            json!({"error": {"code": status.as_u16(), "message": message, "status": code}}),
            format!("{code}: {message}"),
        )
    }

    fn with_details(mut self, details: Value) -> Self {
        self.body["error"]["details"] = details;
        self
    }

    fn with_header(mut self, name: HeaderName, value: &'static str) -> Self {
        self.headers.push((name, HeaderValue::from_static(value)));
        self
    }

    fn with_header_value(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    /// What Google answers for a path or method its APIs do not have.
    fn not_found() -> Self {
        Reply::google_error(StatusCode::NOT_FOUND, "NOT_FOUND", "Method not found.")
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let body = if self.body.is_null() {
            Bytes::new()
        } else {
            Bytes::from(self.body.to_string())
        };
        let json = !body.is_empty();
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = self.status;
        if let Some(reason) = self.reason {
            response
                .extensions_mut()
                .insert(hyper::ext::ReasonPhrase::from_static(reason.as_bytes()));
        }
        let headers = response.headers_mut();
        if json {
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=UTF-8"),
            );
        }
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}

/// Returned to hyper instead of a response: it closes the connection without answering.
#[derive(Debug)]
struct ConnectionDropped;

impl fmt::Display for ConnectionDropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the emulator dropped the connection without answering")
    }
}

impl std::error::Error for ConnectionDropped {}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ConnectionDropped> {
    let (parts, body) = req.into_parts();
    let endpoint = Endpoint::of(parts.uri.path());
    lock(&state.arrivals).push((endpoint, Instant::now()));
    if endpoint == Endpoint::Gcs {
        let handled = gcs::handle(&state, &parts, body).await;
        lock(&state.log).push(LogEntry {
            endpoint,
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            status: handled.reply.as_ref().map_or(0, |r| r.status.as_u16()),
            outcome: handled.outcome,
            gcs: Some(handled.log),
        });
        if let Some(delay) = handled.delay {
            tokio::time::sleep(delay).await;
        }
        return handled
            .reply
            .map(Reply::into_response)
            .ok_or(ConnectionDropped);
    }
    let reply = match read_body(&parts.headers, body).await {
        Ok(body) => route(
            &state,
            &parts.method,
            parts.uri.path(),
            &parts.headers,
            &body,
        ),
        Err(reply) => reply,
    };
    lock(&state.log).push(LogEntry {
        endpoint,
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        status: reply.status.as_u16(),
        outcome: reply.outcome.clone(),
        gcs: None,
    });
    Ok(reply.into_response())
}

async fn read_body(headers: &HeaderMap, body: Incoming) -> Result<Bytes, Reply> {
    let too_large = || {
        Reply::google_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "INVALID_ARGUMENT",
            format!("Request payload size exceeds the limit: {MAX_BODY_BYTES} bytes."),
        )
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(e) => Err(Reply::google_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            format!("The request body could not be read: {e}"),
        )),
    }
}

fn route(state: &State, method: &Method, path: &str, headers: &HeaderMap, body: &[u8]) -> Reply {
    if method != Method::POST {
        return Reply::not_found();
    }
    if path == "/v1/token" {
        return sts::exchange(state, headers, body);
    }
    match iam::parse_path(path) {
        Some(email) => iam::generate_access_token(state, &email, headers, body),
        None => Reply::not_found(),
    }
}

/// An opaque token in the style of Google's (`ya29.` and URL-safe characters).
fn new_token(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        Alphanumeric.sample_string(&mut rand::rng(), 120)
    )
}
