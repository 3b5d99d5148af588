//! Egress as companies run it: HTTPS through a proxy's `CONNECT` tunnel (`HTTPS_PROXY`,
//! `https_proxy`, `ALL_PROXY`, minus `NO_PROXY`, read as curl reads them, by hyper-util's
//! matcher), and TLS trusting a custom CA bundle (`SSL_CERT_FILE`, or `--ca-bundle`) for
//! TLS-inspecting proxies. Plain HTTP (AWS's link-local credential endpoints, a loopback
//! emulator) never goes through the proxy. The outbound policy judges the final host before a
//! request gets here, proxy or not.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::Context as _;
use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower_service::Service;
use wasmtime_wasi_http::Error as HttpError;

/// Where HTTPS goes: straight out, or through the proxy the environment names.
#[derive(Clone)]
pub struct Egress {
    direct: HttpConnector,
    proxy: Option<Arc<Matcher>>,
    /// `--resolve`: where to connect instead of where DNS says.
    resolve: Arc<Vec<crate::outbound::Resolve>>,
}

impl Egress {
    /// `lookup` reads the environment (the process's, in the CLI).
    pub fn new(direct: HttpConnector, lookup: &dyn Fn(&str) -> Option<String>) -> Self {
        let first = |names: &[&str]| {
            names
                .iter()
                .find_map(|name| lookup(name).filter(|v| !v.trim().is_empty()))
        };
        let proxy = first(&["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]).map(|url| {
            let mut builder = Matcher::builder().https(url);
            if let Some(no) = first(&["NO_PROXY", "no_proxy"]) {
                builder = builder.no(no);
            }
            Arc::new(builder.build())
        });
        Egress {
            direct,
            proxy,
            resolve: Arc::default(),
        }
    }

    /// Connections to these hosts go to their addresses instead (TLS above is unchanged).
    pub fn resolving(mut self, resolve: Vec<crate::outbound::Resolve>) -> Self {
        self.resolve = Arc::new(resolve);
        self
    }

    /// The URI to connect to for `uri`: its `--resolve` address, or itself.
    fn resolved(&self, uri: Uri) -> Uri {
        let https = uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let target = uri
            .host()
            .and_then(|host| crate::outbound::Resolve::target_for(&self.resolve, host, port));
        match target {
            Some(target) => Uri::builder()
                .scheme(uri.scheme_str().unwrap_or("http"))
                .authority(target.to_string())
                .path_and_query("/")
                .build()
                .unwrap_or(uri),
            None => uri,
        }
    }

    /// The proxy an HTTPS request to `uri` goes through, if any.
    fn tunnel_for(&self, uri: &Uri) -> Option<Tunnel<HttpConnector>> {
        if uri.scheme_str() != Some("https") {
            return None;
        }
        let intercept = self.proxy.as_ref()?.intercept(uri)?;
        let tunnel = Tunnel::new(intercept.uri().clone(), self.direct.clone());
        Some(match intercept.basic_auth() {
            Some(auth) => tunnel.with_auth(auth.clone()),
            None => tunnel,
        })
    }
}

type Connecting = Pin<
    Box<
        dyn Future<Output = Result<TokioIo<TcpStream>, Box<dyn std::error::Error + Send + Sync>>>
            + Send,
    >,
>;

impl Service<Uri> for Egress {
    type Response = TokioIo<TcpStream>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.direct.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        match self.tunnel_for(&uri) {
            Some(mut tunnel) => Box::pin(async move { tunnel.call(uri).await.map_err(Into::into) }),
            None => {
                let connecting = self.direct.call(self.resolved(uri));
                Box::pin(async move { connecting.await.map_err(Into::into) })
            }
        }
    }
}

/// Why a connection could not be made, as the wasi:http error code that says so: a TLS
/// failure (a certificate not trusted: no retry helps), a proxy that refused the tunnel, or a
/// refused or timed-out connection (worth another attempt).
pub fn connect_error(error: &(dyn std::error::Error + 'static)) -> HttpError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(err) = cause {
        match err.downcast_ref::<rustls::Error>() {
            Some(rustls::Error::InvalidCertificate(_)) => return HttpError::TlsCertificateError,
            Some(_) => return HttpError::TlsProtocolError,
            None => {}
        }
        // hyper-util's tunnel error is not public: it is known by its words. Failing to reach
        // the proxy at all is left to the I/O error below it.
        let text = err.to_string();
        if let Some(why) = text.strip_prefix("tunnel error: ")
            && why != "failed to create underlying connection"
        {
            return HttpError::InternalError(Some(format!(
                "the HTTPS proxy (HTTPS_PROXY) did not open a tunnel ({why}): check that it \
                 allows CONNECT to this host and port, and its credentials"
            )));
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return HttpError::ConnectionRefused,
                std::io::ErrorKind::TimedOut => return HttpError::ConnectionTimeout,
                _ => {}
            }
            // An I/O error's `source` skips the error it wraps (rustls's, say): look inside.
            if let Some(inner) = io.get_ref() {
                cause = Some(inner);
                continue;
            }
        }
        cause = err.source();
    }
    HttpError::ConnectionRefused
}

/// The roots TLS trusts: the CA bundle named by `ca_bundle` (or `SSL_CERT_FILE`), replacing
/// the system's as curl and OpenSSL do; else the system's; else Mozilla's bundled ones.
pub fn tls_roots(ca_bundle: Option<&std::path::Path>) -> anyhow::Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    let named = ca_bundle
        .map(std::path::Path::to_path_buf)
        .or_else(|| std::env::var_os("SSL_CERT_FILE").map(Into::into))
        .filter(|p| !p.as_os_str().is_empty());
    if let Some(path) = named {
        let text = crate::dest::read_bounded(&path, "the CA bundle")
            .with_context(|| format!("read the CA bundle {}", path.display()))?;
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject as _;
        let certs = CertificateDer::pem_slice_iter(text.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("the CA bundle {} is not PEM certificates", path.display()))?;
        // As with the system's roots, a certificate rustls cannot use is passed over.
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        anyhow::ensure!(
            added > 0,
            "the CA bundle {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        );
        return Ok(roots);
    }
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    Ok(roots)
}
