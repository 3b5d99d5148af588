//! Loading and instantiating the wif-push component: one engine, a compile cache on disk, and an
//! `InstancePre` so every store after the first costs microseconds, not a compilation.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use anyhow::{Context as _, Result, anyhow};
use wasmtime::component::{Component, Linker, ResourceTable};
// wasmtime::Error is its own type: its `context` is this trait's, and `?` turns it into anyhow's.
use wasmtime::error::Context as _;
use wasmtime::{Cache, CacheConfig, Config, Engine, Store};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::file_stream::FileStream;
use crate::outbound::Outbound;

/// Where the sidecar's answer to one request goes.
pub type ResponseSender = tokio::sync::oneshot::Sender<
    Result<
        hyper::Response<wasmtime_wasi_http::p2::body::HyperOutgoingBody>,
        wasmtime_wasi_http::p2::bindings::http::types::ErrorCode,
    >,
>;

// The widest world the component is built for: the library, the sidecar's incoming handler,
// `wasi:config` in the versions of the Spin and wasmCloud builds, and the token store in both
// of its versions (Wasmtime's and wasmCloud's, Spin's), all offered here so that every build
// runs.
wasmtime::component::bindgen!({
    path: "../../wit",
    inline: "
        package wif-push-host:host;
        world wif-push-host {
            include wif:push/sidecar-config@0.1.0;
            import wasi:config/store@0.2.0-draft;
            import wasi:keyvalue/store@0.2.0-draft;
            import wasi:keyvalue/store@0.2.0-draft2;
        }
    ",
    world: "wif-push-host:host/wif-push-host",
    exports: { default: async },
    with: {
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
    },
});

pub use exports::wif::push::{delivery, sigv4, wif};
pub use wif_push::config::Settings;

/// Access tokens one instance hands to others (`wif.cached-tokens`). The WIT record's
/// generated `Debug` prints the token, so the host keeps them only inside this type, whose
/// `Debug` shows keys and expiry times alone.
#[derive(Clone, Default)]
pub struct Tokens(pub(crate) Vec<wif::CachedToken>);

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|t| (&t.key, t.expires_at.seconds)))
            .finish()
    }
}

impl Tokens {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Keeps the longer-lived token per key; true when something changed.
    pub fn merge(&mut self, tokens: Tokens) -> bool {
        let mut changed = false;
        for token in tokens.0 {
            match self.0.iter_mut().find(|t| t.key == token.key) {
                Some(have) if have.expires_at.seconds >= token.expires_at.seconds => {}
                Some(have) => {
                    *have = token;
                    changed = true;
                }
                None => {
                    self.0.push(token);
                    changed = true;
                }
            }
        }
        changed
    }
}

/// The freshest token per cache key among a pool of instances, and a version that grows with
/// each change, so an instance adopts them only when they changed since it last did.
#[derive(Debug, Default)]
pub struct SharedTokens {
    pub tokens: Tokens,
    pub version: u64,
}

impl SharedTokens {
    pub fn merge(&mut self, tokens: Tokens) {
        if self.tokens.merge(tokens) {
            self.version += 1;
        }
    }
}

/// A request for the component's SigV4 signer. It holds AWS credentials, and the WIT record's
/// generated `Debug` would print them, so its `Debug` shows the method and URL only.
pub struct SignRequest(pub(crate) sigv4::Request);

impl fmt::Debug for SignRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SignRequest({} {}, credentials redacted)",
            self.0.method, self.0.url
        )
    }
}

/// [`Settings`] as the WIT record: the one place the host names each field. A
/// `credential_config` travels as the file's text ([`Settings::read_credential_config`]).
pub fn wit_destination(settings: &Settings) -> wif::Destination {
    let s = settings.clone();
    wif::Destination {
        credential_config: s.credential_config,
        project_number: s.project_number,
        pool_id: s.pool_id,
        provider_id: s.provider_id,
        service_account: s.service_account,
        bucket: s.bucket,
        prefix: s.prefix,
        token_lifetime_seconds: s.token_lifetime_seconds,
        aws_region: s.aws_region,
        aws_role_arn: s.aws_role_arn,
        aws_external_id: s.aws_external_id,
        aws_role_session_name: s.aws_role_session_name,
        imds_v1_fallback: s.imds_v1_fallback.unwrap_or(false),
        sign_target_resource: s.sign_target_resource,
        single_request_limit: s.single_request_limit,
        chunk_size: s.chunk_size,
        initial_retry_delay_ms: s.initial_retry_delay_ms,
        upload_timeout_seconds: s.upload_timeout_seconds,
        storage_url: s.endpoints.storage,
        token_url: s.endpoints.sts,
        iam_credentials_url: s.endpoints.iam_credentials,
    }
}
/// The component built by this package's build script.
pub const BUILT_COMPONENT: &str = env!("WIF_PUSH_COMPONENT");
/// The same, built with a token store (`wasi:keyvalue`, the `sidecar-keyvalue` world): fresh
/// instances share their access tokens through the store host-test offers.
pub const BUILT_KEYVALUE_COMPONENT: &str = env!("WIF_PUSH_KEYVALUE_COMPONENT");

/// Everything one store (one instance of the component) owns.
pub struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    outbound: Outbound,
    memory: MemoryWatch,
    config: Vec<(String, String)>,
    /// The token store the instances of one [`Runtime`] share, and the buckets this
    /// instance opened (a handle is an index here).
    store: crate::token_store::Shared,
    buckets: Vec<String>,
}

impl HostState {
    fn bucket_name(&self, handle: u32) -> Option<String> {
        self.buckets.get(handle as usize).cloned()
    }
}

/// `wasi:config/store` in one version: the settings given as configuration
/// ([`GuestEnv::config`]), by their keys.
macro_rules! config_impl {
    ($store:path) => {
        const _: () = {
            use $store::{Error, Host};

            impl Host for HostState {
                fn get(&mut self, key: String) -> Result<Option<String>, Error> {
                    Ok(self
                        .config
                        .iter()
                        .find(|(k, _)| *k == key)
                        .map(|(_, v)| v.clone()))
                }

                fn get_all(&mut self) -> Result<Vec<(String, String)>, Error> {
                    Ok(self.config.clone())
                }
            }
        };
    };
}

// Spin's version, and wasmCloud's.
config_impl!(wasi::config0_2_0_draft_2024_09_27::store);
config_impl!(wasi::config0_2_0_draft::store);
crate::token_store::host_impl!(wasi::keyvalue0_2_0_draft::store, Option<u64>);
crate::token_store::host_impl!(wasi::keyvalue0_2_0_draft2::store, Option<String>);

/// Watches the guest's linear memory: records its peak, and refuses growth past a limit.
#[derive(Clone, Copy, Debug, Default)]
pub struct MemoryWatch {
    pub peak_bytes: usize,
    pub limit_bytes: Option<usize>,
}

impl wasmtime::ResourceLimiter for MemoryWatch {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if self.limit_bytes.is_some_and(|limit| desired > limit) {
            return Ok(false);
        }
        self.peak_bytes = self.peak_bytes.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    pre: WifPushHostPre<HostState>,
    /// The `wasi:keyvalue` store its instances share (a component built with a token store
    /// keeps its access tokens there).
    store: crate::token_store::Shared,
}

impl Runtime {
    /// Compiles (or loads from the cache) the component at `path`, or the built one.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let path = path.unwrap_or(Path::new(BUILT_COMPONENT));
        let mut config = Config::new();
        // `perf` names the component's functions when it finds Wasmtime's map of them.
        if std::env::var_os("WIF_PUSH_PERF_MAP").is_some_and(|v| !v.is_empty()) {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        if let Some(dir) = cache_dir() {
            let mut cache = CacheConfig::new();
            cache.with_directory(dir);
            config.cache(Some(Cache::new(cache).context("set up the compile cache")?));
        }
        let engine = Engine::new(&config)?;
        let component = Component::from_file(&engine, path)
            .with_context(|| format!("load the wif-push component from {}", path.display()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        wasi::config0_2_0_draft_2024_09_27::store::add_to_linker::<
            _,
            wasmtime::component::HasSelf<HostState>,
        >(&mut linker, |state| state)?;
        wasi::config0_2_0_draft::store::add_to_linker::<_, wasmtime::component::HasSelf<HostState>>(
            &mut linker,
            |state| state,
        )?;
        wasi::keyvalue0_2_0_draft::store::add_to_linker::<
            _,
            wasmtime::component::HasSelf<HostState>,
        >(&mut linker, |state| state)?;
        wasi::keyvalue0_2_0_draft2::store::add_to_linker::<
            _,
            wasmtime::component::HasSelf<HostState>,
        >(&mut linker, |state| state)?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| anyhow!("{e:#}"))
            .context("link the component: it imports something this host does not offer")?;
        Ok(Runtime {
            engine,
            store: crate::token_store::Shared::default(),
            pre: WifPushHostPre::new(pre)
                .context("the component does not export the wif:push sidecar world")?,
        })
    }

    /// A fresh store with the given environment and outbound policy.
    pub fn store(&self, env: &GuestEnv, outbound: Outbound) -> Result<Store<HostState>> {
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stderr();
        wasi.envs(&env.vars);
        for dir in &env.read_only_dirs {
            let guest = dir.to_string_lossy();
            wasi.preopened_dir(dir, guest.as_ref(), FsPerms::ReadOnly)
                .with_context(|| format!("open {} for the component", dir.display()))?;
        }
        let mut store = Store::new(
            &self.engine,
            HostState {
                wasi: wasi.build(),
                http: WasiHttpCtx::new(),
                table: ResourceTable::new(),
                outbound,
                memory: MemoryWatch::default(),
                config: env.config.clone(),
                store: self.store.clone(),
                buckets: Vec::new(),
            },
        );
        store.limiter(|state| &mut state.memory);
        Ok(store)
    }

    pub async fn instantiate(&self, store: &mut Store<HostState>) -> Result<WifPushHost> {
        Ok(self.pre.instantiate_async(store).await?)
    }
}

/// What the component sees of the host: environment variables, `wasi:config` variables and
/// read-only directories.
#[derive(Clone, Default)]
pub struct GuestEnv {
    pub vars: Vec<(String, String)>,
    pub config: Vec<(String, String)>,
    pub read_only_dirs: Vec<PathBuf>,
}

// The variables carry AWS secrets: show their names only.
impl fmt::Debug for GuestEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names =
            |list: &[(String, String)]| list.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        f.debug_struct("GuestEnv")
            .field("vars", &names(&self.vars))
            .field("config", &names(&self.config))
            .field("read_only_dirs", &self.read_only_dirs)
            .finish()
    }
}

/// The variables through which AWS credentials and region reach the component.
pub const AWS_VARIABLES: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL_S3",
    // Where `~/.aws/` is.
    "HOME",
];

/// The variables that name a file the component must read; the host grants each one's
/// directory, read-only.
const AWS_FILE_VARIABLES: &[&str] = &[
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
];

impl GuestEnv {
    /// The AWS variables of `lookup` (the process environment, in the CLI), and, read-only, the
    /// directories of the files they name and `~/.aws/`: the component reads the container and
    /// web identity tokens and the shared config files there, nothing else.
    pub fn aws(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let mut env = GuestEnv::default();
        for name in AWS_VARIABLES {
            if let Some(value) = lookup(name) {
                if AWS_FILE_VARIABLES.contains(name)
                    && let Some(dir) = Path::new(&value).parent()
                {
                    env.grant(dir);
                }
                env.vars.push((name.to_string(), value));
            }
        }
        if let Some(home) = lookup("HOME") {
            env.grant(&Path::new(&home).join(".aws"));
        }
        env
    }

    /// Lets the component read `dir`, when it is a directory (a missing one stays missing).
    fn grant(&mut self, dir: &Path) {
        if dir.is_dir() && !self.read_only_dirs.iter().any(|d| d == dir) {
            self.read_only_dirs.push(dir.to_path_buf());
        }
    }
}

/// A step of the flow failed inside the component.
#[derive(Debug)]
pub struct StepError(pub wif::Error);

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl std::error::Error for StepError {}

/// The component trapped (or the host failed it) inside a call: its instance cannot be
/// entered again, and a fresh one ([`Session::new`]) must take its place.
#[derive(Debug)]
pub struct Trapped(pub String);

impl fmt::Display for Trapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Trapped {}

/// One instance of the component, kept for a whole command (or server) so that its token
/// cache serves every request after the first.
pub struct Session {
    store: Store<HostState>,
    library: WifPushHost,
    broken: bool,
}

impl Session {
    pub async fn new(runtime: &Runtime, env: &GuestEnv, outbound: Outbound) -> Result<Self> {
        let mut store = runtime.store(env, outbound)?;
        let library = runtime.instantiate(&mut store).await?;
        Ok(Session {
            store,
            library,
            broken: false,
        })
    }

    /// True once a call failed inside the component (a trap): the instance is unusable.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// A call that failed in the component rather than returning an error: marks the
    /// instance broken and names the trap alone (not Wasmtime's wasm backtrace).
    fn trapped(&mut self, error: wasmtime::Error) -> anyhow::Error {
        self.broken = true;
        let detail = match error.downcast_ref::<wasmtime::Trap>() {
            Some(trap) => trap.to_string(),
            None => error.to_string(),
        };
        anyhow::Error::new(Trapped(detail))
    }

    pub async fn sign(&mut self, request: &SignRequest) -> Result<sigv4::Signed> {
        self.library
            .wif_push_sigv4()
            .call_sign(&mut self.store, &request.0)
            .await
            .map_err(|e| self.trapped(e))?
            .map_err(|message| anyhow!(message))
    }

    pub async fn subject_token(
        &mut self,
        destination: &Settings,
        at: Option<wasmtime_wasi::p2::bindings::clocks::wall_clock::Datetime>,
    ) -> Result<String> {
        Ok(self
            .library
            .wif_push_wif()
            .call_subject_token(&mut self.store, &wit_destination(destination), at)
            .await
            .map_err(|e| self.trapped(e))?
            .map_err(StepError)?)
    }

    pub async fn access_token(&mut self, destination: &Settings) -> Result<wif::TokenInfo> {
        Ok(self
            .library
            .wif_push_wif()
            .call_access_token(&mut self.store, &wit_destination(destination))
            .await
            .map_err(|e| self.trapped(e))?
            .map_err(StepError)?)
    }

    /// Streams `body` into the destination as `object`.
    pub async fn deliver(
        &mut self,
        destination: &Settings,
        object: &delivery::Object,
        body: impl tokio::io::AsyncRead + Send + 'static,
    ) -> Result<delivery::Receipt> {
        let stream = Box::new(wasmtime_wasi::p2::pipe::AsyncReadStream::new(body));
        self.deliver_stream(destination, object, stream).await
    }

    /// Streams the file at `path` into the destination as `object` (see [`FileStream`]),
    /// counting the bytes read in `read`.
    pub async fn deliver_file(
        &mut self,
        destination: &Settings,
        object: &delivery::Object,
        path: &Path,
        read: Option<Arc<AtomicU64>>,
    ) -> Result<delivery::Receipt> {
        let file = FileStream::open(path, read)
            .map_err(|e| anyhow!("cannot open {}: {e}", path.display()))?;
        self.deliver_stream(destination, object, Box::new(file))
            .await
    }

    async fn deliver_stream(
        &mut self,
        destination: &Settings,
        object: &delivery::Object,
        stream: wasmtime_wasi::p2::DynInputStream,
    ) -> Result<delivery::Receipt> {
        let body = self.store.data_mut().table.push(stream)?;
        Ok(self
            .library
            .wif_push_delivery()
            .call_deliver(&mut self.store, &wit_destination(destination), object, body)
            .await
            .map_err(|e| self.trapped(e))?
            .map_err(StepError)?)
    }

    /// Starts a resumable session for `object` and returns its URL (a secret of sorts: it
    /// lets its holder upload that object), to be given back as `object.session`.
    pub async fn start_upload(
        &mut self,
        destination: &Settings,
        object: &delivery::Object,
    ) -> Result<String> {
        Ok(self
            .library
            .wif_push_delivery()
            .call_start_upload(&mut self.store, &wit_destination(destination), object)
            .await
            .map_err(|e| self.trapped(e))?
            .map_err(StepError)?)
    }

    /// The objects an `s3://` URI stands for (one, or every one under a prefix).
    pub async fn plan_s3(
        &mut self,
        destination: &Settings,
        uri: &str,
    ) -> Result<Vec<delivery::Planned>> {
        Ok(self
            .library
            .wif_push_delivery()
            .call_plan_s3(&mut self.store, &wit_destination(destination), uri)
            .await
            .map_err(|e| self.trapped(e))?
            .map_err(StepError)?)
    }

    /// Streams the S3 object `source` into the destination as `object`.
    pub async fn deliver_s3(
        &mut self,
        destination: &Settings,
        source: &str,
        object: &delivery::Object,
    ) -> Result<delivery::Receipt> {
        Ok(self
            .library
            .wif_push_delivery()
            .call_deliver_s3(
                &mut self.store,
                &wit_destination(destination),
                source,
                object,
            )
            .await
            .map_err(|e| self.trapped(e))?
            .map_err(StepError)?)
    }

    /// Uploads the handshake object.
    pub async fn verify(&mut self, destination: &Settings) -> Result<delivery::Receipt> {
        Ok(self
            .library
            .wif_push_delivery()
            .call_verify(&mut self.store, &wit_destination(destination))
            .await
            .map_err(|e| self.trapped(e))?
            .map_err(StepError)?)
    }

    /// Runs the chain step by step and returns the checklist (a refused configuration is its
    /// first line, not an error).
    pub async fn doctor(&mut self, destination: &Settings) -> Result<delivery::Checklist> {
        self.library
            .wif_push_delivery()
            .call_doctor(&mut self.store, &wit_destination(destination))
            .await
            .map_err(|e| self.trapped(e))
    }

    /// Runs the sidecar's `wasi:http/incoming-handler` for `request`; the answer goes to
    /// `response` as soon as the component sets it.
    pub async fn handle<B>(
        &mut self,
        request: hyper::Request<B>,
        response: ResponseSender,
    ) -> Result<()>
    where
        B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let mut http = self.store.data_mut().http();
        let request = http.new_incoming_request(Scheme::Http, request)?;
        let out = http.new_response_outparam(response)?;
        self.library
            .wasi_http_incoming_handler()
            .call_handle(&mut self.store, request, out)
            .await
            .map_err(|e| self.trapped(e))?;
        Ok(())
    }

    /// The access tokens this instance holds.
    pub async fn cached_tokens(&mut self) -> Result<Tokens> {
        Ok(Tokens(
            self.library
                .wif_push_wif()
                .call_cached_tokens(&mut self.store)
                .await
                .map_err(|e| self.trapped(e))?,
        ))
    }

    /// Hands this instance tokens another one obtained.
    pub async fn adopt_tokens(&mut self, tokens: &Tokens) -> Result<()> {
        self.library
            .wif_push_wif()
            .call_adopt_tokens(&mut self.store, &tokens.0)
            .await
            .map_err(|e| self.trapped(e))
    }

    /// The largest the guest's linear memory has been.
    pub fn peak_guest_memory(&self) -> usize {
        self.store.data().memory.peak_bytes
    }

    /// Refuses guest memory growth beyond `bytes` from now on.
    pub fn limit_guest_memory(&mut self, bytes: usize) {
        self.store.data_mut().memory.limit_bytes = Some(bytes);
    }

    /// Requests this instance sent out so far.
    pub fn requests_sent(&self) -> u64 {
        self.store.data().outbound.requests_sent()
    }
}

/// A receipt as the host prints and journals it: GCS's field names, status first.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReceiptLine {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub bucket: String,
    pub name: String,
    pub generation: Option<String>,
    pub size: u64,
    /// Empty when not known (an object an interrupted run created, not read back).
    pub crc32c: String,
    #[serde(rename = "md5Hash")]
    pub md5_hash: String,
    pub upload: String,
    pub requests: u32,
    pub retries: u32,
    pub elapsed_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceLine>,
    /// Delivered by an earlier run of the same batch.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub earlier: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The S3 object a receipt's bytes came from.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SourceLine {
    pub uri: String,
    pub etag: Option<String>,
    pub version_id: Option<String>,
    pub checksum: Option<String>,
    pub checksum_type: Option<String>,
}

impl ReceiptLine {
    pub fn new(r: &delivery::Receipt, file: Option<&Path>) -> Self {
        ReceiptLine {
            status: match r.status {
                delivery::Status::Delivered => "delivered",
                delivery::Status::DeliveredUnconfirmed => "delivered-unconfirmed",
            }
            .to_owned(),
            file: file.map(|f| f.display().to_string()),
            bucket: r.bucket.clone(),
            name: r.name.clone(),
            generation: r.generation.clone(),
            size: r.size,
            crc32c: r.crc32c.clone(),
            md5_hash: r.md5_hash.clone(),
            upload: r.upload.clone(),
            requests: r.requests,
            retries: r.retries,
            elapsed_ms: r.elapsed_ms,
            source: r.source.as_ref().map(|s| SourceLine {
                uri: s.uri.clone(),
                etag: s.etag.clone(),
                version_id: s.version_id.clone(),
                checksum: s.checksum.clone(),
                checksum_type: s.checksum_type.clone(),
            }),
            earlier: false,
            note: None,
        }
    }
}

impl std::fmt::Display for ReceiptLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&serde_json::to_string(self).map_err(|_| std::fmt::Error)?)
    }
}

/// A receipt as one JSON line ([`ReceiptLine`]).
pub fn receipt_json(r: &delivery::Receipt, file: Option<&Path>) -> String {
    ReceiptLine::new(r, file).to_string()
}

/// `$WIF_PUSH_CACHE_DIR`, else the user's cache directory; `None` disables caching.
fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("WIF_PUSH_CACHE_DIR") {
        return (!dir.is_empty()).then(|| PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("wif-push"))
}
