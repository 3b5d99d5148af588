//! Outbound policy: every request the component sends passes through [`Outbound`], the
//! `wasi:http` `send_request` hook. It decides who may be reached (an allow-list of hosts),
//! where a host really goes (`--connect-to`, like curl's), and sends over one pooled client
//! (TLS with the system's roots, connect and first-byte timeouts).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::Uri;
use http::uri::Scheme;
use http_body_util::BodyExt;
use hyper_rustls::HttpsConnector;

use crate::egress::Egress;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// Hosts the component may reach unless told otherwise: Google's APIs, AWS's STS and S3
/// (regional, virtual-hosted `BUCKET.s3.REGION.amazonaws.com` and path-style), and the AWS
/// credential endpoints the component knows (IMDS, ECS and EKS Pod Identity).
pub fn default_allowed_hosts() -> Vec<String> {
    [
        "*.googleapis.com",
        "sts.amazonaws.com",
        "sts.*.amazonaws.com",
        "sts.*.amazonaws.com.cn",
        "s3.amazonaws.com",
        "*.s3.amazonaws.com",
        "s3.*.amazonaws.com",
        "*.s3.*.amazonaws.com",
        "s3.*.amazonaws.com.cn",
        "*.s3.*.amazonaws.com.cn",
    ]
    .into_iter()
    .chain(plain_http_metadata_hosts())
    .map(str::to_owned)
    .collect()
}

/// AWS's credential endpoints speak plain HTTP on link-local addresses by design.
fn plain_http_metadata_hosts() -> impl Iterator<Item = &'static str> {
    wif_push::aws::IMDS_HOSTS
        .iter()
        .chain(wif_push::aws::CONTAINER_HOSTS)
        .copied()
}

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(120);

/// `HOST[:PORT]=ADDR:PORT`: requests for HOST (on PORT, or any port) go to ADDR:PORT, which
/// must be a loopback address, over plain HTTP, keeping their `Host` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub host: String,
    pub port: Option<u16>,
    pub target: SocketAddr,
}

impl FromStr for Route {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (host, port, target) =
            host_mapping(s, "--connect-to", "sts.googleapis.com=127.0.0.1:8080")?;
        if !target.ip().is_loopback() {
            return Err(format!(
                "--connect-to {s:?}: {} is not a loopback address; plain HTTP is only sent to 127.0.0.0/8 or [::1]",
                target.ip()
            ));
        }
        Ok(Route { host, port, target })
    }
}

/// `HOST[:PORT]=ADDR:PORT`, the form `--connect-to` and `--resolve` share: the host (brackets
/// around an IPv6 address taken off, lower case), its port if given, and the address.
fn host_mapping(
    s: &str,
    flag: &str,
    example: &str,
) -> Result<(String, Option<u16>, SocketAddr), String> {
    let usage = || format!("{flag} {s:?}: expected HOST[:PORT]=ADDR:PORT, e.g. {example}");
    let (from, to) = s.split_once('=').ok_or_else(usage)?;
    let (host, port) = match from.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') || host.ends_with(']') => {
            (host, Some(port.parse::<u16>().map_err(|_| usage())?))
        }
        _ => (from, None),
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    if host.is_empty() {
        return Err(usage());
    }
    let target: SocketAddr = to.parse().map_err(|_| usage())?;
    Ok((host, port, target))
}

/// `HOST[:PORT]=ADDR:PORT`, as curl's `--resolve`: connections to HOST (on PORT, or any port)
/// go to ADDR:PORT instead of where DNS says, with the same scheme, and TLS still checks the
/// certificate for HOST (e.g. a Private Service Connect address for storage.googleapis.com).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolve {
    pub host: String,
    pub port: Option<u16>,
    pub target: SocketAddr,
}

impl Resolve {
    /// Where a connection to `host`:`port` goes instead, if anywhere.
    pub fn target_for<'a>(list: &'a [Resolve], host: &str, port: u16) -> Option<&'a SocketAddr> {
        list.iter()
            .find(|r| r.host.eq_ignore_ascii_case(host) && r.port.is_none_or(|p| p == port))
            .map(|r| &r.target)
    }
}

impl FromStr for Resolve {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        const EXAMPLE: &str = "storage.googleapis.com:443=10.0.0.5:443";
        // A host name: no IPv6 address in brackets, no path.
        let named = s
            .split_once('=')
            .is_some_and(|(from, _)| !from.contains(['/', '[', ']']));
        let (host, port, target) = host_mapping(s, "--resolve", EXAMPLE)?;
        if !named || host.contains(':') {
            return Err(format!(
                "--resolve {s:?}: expected HOST[:PORT]=ADDR:PORT, e.g. {EXAMPLE}"
            ));
        }
        Ok(Resolve { host, port, target })
    }
}

/// Why a request was refused. The message names the host and the flag that would allow it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denied {
    /// `plain`: the request was plain HTTP, so reaching it also takes a `--connect-to` route.
    NotAllowed {
        host: String,
        plain: bool,
    },
    PlainHttp {
        host: String,
    },
    InvalidUri(String),
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denied::NotAllowed { host, plain: false } => write!(
                f,
                "outbound request to {host} refused by host policy: it is not on the allow-list \
                 (Google APIs and AWS STS/credential endpoints); to allow it, pass --allow-host {host}"
            ),
            Denied::NotAllowed { host, plain: true } => write!(
                f,
                "outbound request to http://{host} refused by host policy: it is not on the \
                 allow-list and only HTTPS leaves this host; to reach a local server there, pass \
                 --allow-host {host} --connect-to {host}=127.0.0.1:PORT"
            ),
            Denied::PlainHttp { host } => write!(
                f,
                "outbound request to http://{host} refused by host policy: only HTTPS leaves this host; \
                 to reach a local server over plain HTTP, route it with --connect-to {host}=127.0.0.1:PORT"
            ),
            Denied::InvalidUri(uri) => {
                write!(
                    f,
                    "outbound request to {uri:?} refused: the URL has no host"
                )
            }
        }
    }
}

/// An `--allow-host` value: a host name (`*` for one label) or an IP address, as requests name
/// hosts; anything else (a URL, a port, a path) could never match and is refused.
pub fn allow_host(value: &str) -> Result<String, String> {
    let host = value.trim().trim_start_matches('[').trim_end_matches(']');
    let is_name = !host.is_empty()
        && host.split('.').all(|label| {
            label == "*"
                || (!label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        });
    if is_name || host.parse::<IpAddr>().is_ok() {
        Ok(host.to_ascii_lowercase())
    } else {
        Err(format!(
            "--allow-host {value:?} can never match a request: give a host name or address \
             alone, e.g. --allow-host storage.example.com or --allow-host '*.example.com'"
        ))
    }
}

/// Which hosts may be reached and where they go. Pure: [`Policy::decide`] does no I/O.
#[derive(Clone, Debug)]
pub struct Policy {
    allowed: Vec<String>,
    routes: Vec<Route>,
    pub connect_timeout: Duration,
    pub first_byte_timeout: Duration,
    /// PEM certificates TLS trusts instead of the system's (`--ca-bundle`; else
    /// `SSL_CERT_FILE`), for TLS-inspecting proxies.
    pub ca_bundle: Option<std::path::PathBuf>,
    /// Addresses to connect to instead of DNS's (`--resolve`), the scheme and TLS unchanged.
    pub resolve: Vec<Resolve>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            allowed: default_allowed_hosts(),
            routes: Vec::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            first_byte_timeout: DEFAULT_FIRST_BYTE_TIMEOUT,
            ca_bundle: None,
            resolve: Vec::new(),
        }
    }
}

impl Policy {
    pub fn new(extra_allowed: &[String], routes: Vec<Route>) -> Self {
        let mut policy = Policy::default();
        policy
            .allowed
            .extend(extra_allowed.iter().map(|h| h.to_ascii_lowercase()));
        policy.routes = routes;
        policy
    }

    /// The URI to actually send `uri` to, or why it may not be sent.
    pub fn decide(&self, uri: &Uri) -> Result<Uri, Denied> {
        let host = uri
            .host()
            .ok_or_else(|| Denied::InvalidUri(uri.to_string()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let https = uri.scheme() == Some(&Scheme::HTTPS);
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        if !self
            .allowed
            .iter()
            .any(|pattern| host_matches(pattern, &host))
        {
            return Err(Denied::NotAllowed {
                host,
                plain: uri.scheme() != Some(&Scheme::HTTPS),
            });
        }
        if let Some(route) = self
            .routes
            .iter()
            .find(|r| r.host == host && r.port.is_none_or(|p| p == port))
        {
            let path = uri.path_and_query().map_or("/", |pq| pq.as_str());
            return Ok(Uri::builder()
                .scheme(Scheme::HTTP)
                .authority(route.target.to_string())
                .path_and_query(path)
                .build()
                .expect("a socket address and a valid path make a valid URI"));
        }
        if !https && !plain_http_metadata_hosts().any(|h| h == host) {
            return Err(Denied::PlainHttp { host });
        }
        Ok(uri.clone())
    }
}

/// `*` stands for exactly one DNS label: `*.googleapis.com` matches `sts.googleapis.com`.
fn host_matches(pattern: &str, host: &str) -> bool {
    if !pattern.contains('*') || host.parse::<IpAddr>().is_ok() {
        return pattern == host;
    }
    let pattern: Vec<&str> = pattern.split('.').collect();
    let host: Vec<&str> = host.split('.').collect();
    pattern.len() == host.len()
        && pattern
            .iter()
            .zip(&host)
            .all(|(p, h)| (*p == "*" && !h.is_empty()) || p == h)
}

type PooledClient = Client<HttpsConnector<Egress>, WasiBody>;

/// The `send_request` hook. Cheap to clone: clones share the policy, the connection pool and
/// the request counter.
#[derive(Clone)]
pub struct Outbound {
    policy: Arc<Policy>,
    client: PooledClient,
    sent: Arc<AtomicU64>,
}

impl Outbound {
    pub fn new(policy: Policy) -> anyhow::Result<Self> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(policy.connect_timeout));
        // The system's roots, as curl and gcloud use (or the CA bundle named); Mozilla's
        // bundled roots where the system has none (minimal containers).
        let roots = crate::egress::tls_roots(policy.ca_bundle.as_deref())?;
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let egress =
            Egress::new(http, &|name| std::env::var(name).ok()).resolving(policy.resolve.clone());
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(egress);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(https);
        Ok(Outbound {
            policy: Arc::new(policy),
            client,
            sent: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Requests that left this host so far (denied ones excluded).
    pub fn requests_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_done: IoFuture,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpError>> + Send>
    {
        let decision = self.policy.decide(request.uri());
        let client = self.client.clone();
        let sent = self.sent.clone();
        let first_byte_timeout = options
            .and_then(|o| o.first_byte_timeout)
            .unwrap_or(self.policy.first_byte_timeout);
        Box::new(async move {
            // The guest sees the reason as the error code's message, so it can say it plainly.
            let uri =
                decision.map_err(|denied| HttpError::InternalError(Some(denied.to_string())))?;
            *request.uri_mut() = uri;
            sent.fetch_add(1, Ordering::Relaxed);
            let response = tokio::time::timeout(first_byte_timeout, client.request(request))
                .await
                .map_err(|_| HttpError::ConnectionReadTimeout)?
                .map_err(|e| {
                    if e.is_connect() {
                        crate::egress::connect_error(&e)
                    } else {
                        HttpError::ConnectionTerminated
                    }
                })?;
            let response = response.map(|body| body.map_err(HttpError::from).boxed_unsync());
            // The pool drives the connection; there is no per-request I/O task to hand back.
            Ok((response, Box::new(async { Ok(()) }) as IoFuture))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--resolve` takes host names with or without a port, any address; not IPv6 literals,
    /// paths or a malformed address.
    #[test]
    fn resolve_entries_name_a_host_and_an_address() {
        let r: Resolve = "Storage.googleapis.com:443=10.0.0.5:443".parse().unwrap();
        assert_eq!(
            (r.host.as_str(), r.port, r.target.to_string().as_str()),
            ("storage.googleapis.com", Some(443), "10.0.0.5:443")
        );
        let any_port: Resolve = "sts.googleapis.com=127.0.0.1:8443".parse().unwrap();
        assert_eq!(any_port.port, None);
        for bad in [
            "[::1]:443=10.0.0.5:443",
            "[x]=10.0.0.5:443",
            "a/b=10.0.0.5:443",
            "a:b:443=10.0.0.5:443",
            "host:https=10.0.0.5:443",
            "=10.0.0.5:443",
            "host=10.0.0.5",
            "host",
        ] {
            let e = bad.parse::<Resolve>().unwrap_err();
            assert!(e.starts_with("--resolve "), "{bad}: {e}");
        }
    }

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    #[test]
    fn wildcards_match_one_label() {
        assert!(host_matches("*.googleapis.com", "sts.googleapis.com"));
        assert!(!host_matches("*.googleapis.com", "googleapis.com"));
        assert!(!host_matches("*.googleapis.com", "a.b.googleapis.com"));
        assert!(!host_matches(
            "*.googleapis.com",
            "sts.googleapis.com.evil.example"
        ));
        assert!(host_matches(
            "sts.*.amazonaws.com",
            "sts.eu-west-1.amazonaws.com"
        ));
        assert!(!host_matches(
            "sts.*.amazonaws.com",
            "s3.eu-west-1.amazonaws.com"
        ));
    }

    #[test]
    fn google_and_aws_are_allowed_by_default_others_not() {
        let policy = Policy::default();
        let ok = uri("https://sts.googleapis.com/v1/token");
        assert_eq!(policy.decide(&ok).unwrap(), ok);
        assert_eq!(
            policy.decide(&uri("https://evil.example/")),
            Err(Denied::NotAllowed {
                host: "evil.example".into(),
                plain: false,
            })
        );
        let imds = uri("http://169.254.169.254/latest/api/token");
        assert_eq!(policy.decide(&imds).unwrap(), imds);
    }

    #[test]
    fn every_aws_endpoint_the_component_knows_is_allowed_by_default() {
        let policy = Policy::default();
        for host in wif_push::aws::IMDS_HOSTS
            .iter()
            .chain(wif_push::aws::CONTAINER_HOSTS)
        {
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.to_string()
            };
            let url = uri(&format!("http://{host}/v1/credentials"));
            assert_eq!(policy.decide(&url).as_ref(), Ok(&url), "{host}");
        }
    }

    #[test]
    fn plain_http_needs_a_loopback_route() {
        let denied = Policy::default().decide(&uri("http://storage.googleapis.com/x"));
        assert_eq!(
            denied,
            Err(Denied::PlainHttp {
                host: "storage.googleapis.com".into()
            })
        );
        let route: Route = "storage.googleapis.com=127.0.0.1:9000".parse().unwrap();
        let policy = Policy::new(&[], vec![route]);
        assert_eq!(
            policy
                .decide(&uri("https://storage.googleapis.com/upload?a=1"))
                .unwrap(),
            uri("http://127.0.0.1:9000/upload?a=1")
        );
    }

    #[test]
    fn routes_respect_the_port_when_given() {
        let route: Route = "sts.googleapis.com:8443=[::1]:9000".parse().unwrap();
        assert_eq!(route.port, Some(8443));
        let policy = Policy::new(&[], vec![route]);
        assert_eq!(
            policy
                .decide(&uri("https://sts.googleapis.com:8443/"))
                .unwrap(),
            uri("http://[::1]:9000/")
        );
        assert_eq!(
            policy.decide(&uri("https://sts.googleapis.com/")).unwrap(),
            uri("https://sts.googleapis.com/")
        );
    }

    #[test]
    fn routes_only_go_to_loopback() {
        let err = "sts.googleapis.com=10.0.0.1:80"
            .parse::<Route>()
            .unwrap_err();
        assert!(err.contains("not a loopback address"), "{err}");
        assert!(
            "nonsense"
                .parse::<Route>()
                .unwrap_err()
                .contains("HOST[:PORT]=ADDR:PORT")
        );
    }

    #[test]
    fn allow_host_values_that_can_never_match_are_refused() {
        for ok in [
            "storage.example.com",
            "*.example.com",
            "127.0.0.1",
            "fd00::1",
            "[fd00::1]",
        ] {
            assert!(allow_host(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "https://example.com",
            "example.com:443",
            "example.com/x",
            "a b",
            "exa_mple.com",
        ] {
            let e = allow_host(bad).unwrap_err();
            assert!(e.contains("--allow-host"), "{bad}: {e}");
        }
    }

    #[test]
    fn denial_names_the_host_and_the_flag() {
        let msg = Denied::NotAllowed {
            host: "evil.example".into(),
            plain: false,
        }
        .to_string();
        assert!(msg.contains("evil.example") && msg.contains("--allow-host evil.example"));
        let msg = Denied::NotAllowed {
            host: "emulator.local".into(),
            plain: true,
        }
        .to_string();
        assert!(
            msg.contains("--allow-host emulator.local --connect-to emulator.local=127.0.0.1:PORT"),
            "every flag needed: {msg}"
        );
        let msg = Denied::PlainHttp {
            host: "h.googleapis.com".into(),
        }
        .to_string();
        assert!(msg.contains("--connect-to h.googleapis.com=127.0.0.1:PORT"));
    }
}
