//! Loading and instantiating the wif-push component: one engine, a compile cache on disk, and an
//! `InstancePre` so every store after the first costs microseconds, not a compilation.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow};
use wasmtime::component::{Component, Linker, ResourceTable};
// wasmtime::Error is its own type: its `context` is this trait's, and `?` turns it into anyhow's.
use wasmtime::error::Context as _;
use wasmtime::{Cache, CacheConfig, Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::outbound::Outbound;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "library",
    exports: { default: async },
    with: { "wasi:clocks": wasmtime_wasi::p2::bindings::clocks },
});

pub use exports::wif::push::sigv4;

/// The component built by this package's build script.
pub const BUILT_COMPONENT: &str = env!("WIF_PUSH_COMPONENT");

/// Everything one store (one instance of the component) owns.
pub struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    outbound: Outbound,
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

pub struct Runtime {
    engine: Engine,
    pre: LibraryPre<HostState>,
}

impl Runtime {
    /// Compiles (or loads from the cache) the component at `path`, or the built one.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let path = path.unwrap_or(Path::new(BUILT_COMPONENT));
        let mut config = Config::new();
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
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| anyhow!("{e:#}"))
            .context("link the component: it imports something this host does not offer")?;
        Ok(Runtime {
            engine,
            pre: LibraryPre::new(pre)?,
        })
    }

    /// A fresh store with the given environment and outbound policy.
    pub fn store(&self, env: &[(String, String)], outbound: Outbound) -> Store<HostState> {
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stderr();
        for (key, value) in env {
            wasi.env(key, value);
        }
        Store::new(
            &self.engine,
            HostState {
                wasi: wasi.build(),
                http: WasiHttpCtx::new(),
                table: ResourceTable::new(),
                outbound,
            },
        )
    }

    pub async fn instantiate(&self, store: &mut Store<HostState>) -> Result<Library> {
        Ok(self.pre.instantiate_async(store).await?)
    }
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
