//! An embedded emulator of the Google endpoints that Workload Identity Federation from AWS
//! talks to: STS (`sts.googleapis.com/v1/token`) and IAM Credentials
//! (`iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/EMAIL:generateAccessToken`).
//!
//! Both are served on one loopback port and told apart by path, so the component reaches them
//! through `--connect-to sts.googleapis.com=ADDR --connect-to iamcredentials.googleapis.com=ADDR`.
//! The emulator behaves like Google: it verifies the SigV4 signature of the AWS subject token
//! with an implementation independent of the project's (the `aws-sigv4` crate), checks the
//! audience, the target-resource header and the provider's attribute condition, and answers
//! with Google's status codes, JSON shapes and words. [`Misconfig`] reproduces each partner-side
//! misconfiguration a sender meets in the field.

mod aws_request;
mod iam;
mod sts;

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

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
    Other,
}

impl Endpoint {
    fn of(path: &str) -> Self {
        if path == "/v1/token" {
            Endpoint::Sts
        } else if path.starts_with("/v1/projects/") && path.contains("/serviceAccounts/") {
            Endpoint::Iam
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
    pub outcome: String,
}

struct FederatedToken {
    expires: OffsetDateTime,
    scopes: Vec<String>,
}

/// Everything the endpoints share: the configuration, the clock, the tokens issued, the log.
struct State {
    config: EmulatorConfig,
    now: Mutex<Option<OffsetDateTime>>,
    federated_tokens: Mutex<HashMap<String, FederatedToken>>,
    access_tokens: Mutex<HashMap<String, OffsetDateTime>>,
    log: Mutex<Vec<LogEntry>>,
}

/// A poisoned lock only means another request panicked; the data is still consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl State {
    fn new(config: EmulatorConfig) -> Self {
        State {
            now: Mutex::new(config.now),
            config,
            federated_tokens: Mutex::default(),
            access_tokens: Mutex::default(),
            log: Mutex::default(),
        }
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
}

impl Emulator {
    /// Binds `listen` (port 0 picks a free one) and serves on the current Tokio runtime.
    pub async fn start(config: EmulatorConfig, listen: SocketAddr) -> anyhow::Result<Emulator> {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("the emulator could not listen on {listen}"))?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::new(config));
        let task = tokio::spawn(serve(listener, state.clone()));
        Ok(Emulator { addr, state, task })
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
            .is_some_and(|expires| *expires > now)
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
struct Reply {
    status: StatusCode,
    body: Value,
    headers: Vec<(HeaderName, HeaderValue)>,
    outcome: String,
}

impl Reply {
    fn ok(body: Value, outcome: String) -> Self {
        Reply {
            status: StatusCode::OK,
            body,
            headers: Vec::new(),
            outcome,
        }
    }

    /// Google's JSON error shape for its REST APIs (IAM Credentials, Cloud Storage, ...).
    fn google_error(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Reply {
            status,
            outcome: format!("{code}: {message}"),
            body: json!({"error": {"code": status.as_u16(), "message": message, "status": code}}),
            headers: Vec::new(),
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.body["error"]["details"] = details;
        self
    }

    fn with_header(mut self, name: HeaderName, value: &'static str) -> Self {
        self.headers.push((name, HeaderValue::from_static(value)));
        self
    }

    /// What Google answers for a path or method its APIs do not have.
    fn not_found() -> Self {
        Reply::google_error(StatusCode::NOT_FOUND, "NOT_FOUND", "Method not found.")
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::from(self.body.to_string())));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=UTF-8"),
        );
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
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
        endpoint: Endpoint::of(parts.uri.path()),
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        status: reply.status.as_u16(),
        outcome: reply.outcome.clone(),
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
