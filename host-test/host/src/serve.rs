//! `host-test serve`: the component's sidecar world (`wasi:http/incoming-handler`) on a
//! loopback port, under host-test's outbound policy.
//!
//! Requests run on a pool of instances that are reused, so a token obtained for one request
//! serves the next. Instances also share their tokens through the host: until the pool holds a
//! token, requests run one at a time, and every instance adopts the tokens another obtained —
//! the pool exchanges once, not once per instance. At most `max_concurrent` requests run at
//! once (the others wait their turn). On shutdown the listener closes and requests in flight
//! finish (or, after the grace period, are dropped before their upload is finalized, so no
//! object is left half-written).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, Semaphore, watch};

use crate::framing;
use crate::outbound::Outbound;
use crate::runtime::{GuestEnv, Runtime, Session, SharedTokens, Trapped};

/// Largest request head accepted; larger ones get 431 from the HTTP server.
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;
/// A client has this long to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

pub struct ServeOptions {
    pub listen: SocketAddr,
    /// Requests handled at once (and instances kept): the rest wait.
    pub max_concurrent: usize,
    /// How long requests in flight may run on after shutdown is asked for.
    pub grace: Duration,
    /// How long a request body may go without a byte before the request fails.
    pub body_timeout: Duration,
    /// Linear memory each instance may grow to; a request that needs more fails.
    pub guest_memory_limit: Option<usize>,
}

impl ServeOptions {
    /// The defaults of `host-test serve` on `listen`.
    pub fn new(listen: SocketAddr) -> Self {
        ServeOptions {
            listen,
            max_concurrent: 8,
            grace: Duration::from_secs(120),
            body_timeout: DEFAULT_BODY_TIMEOUT,
            guest_memory_limit: None,
        }
    }
}

/// The default [`ServeOptions::body_timeout`].
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

type Body = wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// A running sidecar. Dropping it stops the listener at once; [`Server::shutdown`] lets the
/// requests in flight finish first.
pub struct Server {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    pool: Arc<Pool>,
}

impl Server {
    pub async fn start(
        runtime: Runtime,
        env: GuestEnv,
        outbound: Outbound,
        options: ServeOptions,
    ) -> Result<Server> {
        anyhow::ensure!(
            options.max_concurrent > 0,
            "--max-concurrent must be at least 1"
        );
        let listener = TcpListener::bind(options.listen)
            .await
            .with_context(|| format!("listen on {}", options.listen))?;
        let addr = listener.local_addr()?;
        let pool = Arc::new(Pool {
            runtime,
            env,
            outbound,
            idle: std::sync::Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(options.max_concurrent)),
            tokens: std::sync::Mutex::new(SharedTokens::default()),
            warm_up: Arc::new(Mutex::new(())),
            instances: AtomicU64::new(0),
            body_timeout: options.body_timeout,
            guest_memory_limit: options.guest_memory_limit,
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept(listener, pool.clone(), stopped, options.grace));
        Ok(Server {
            addr,
            stop,
            task: Some(task),
            pool,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Instances created so far.
    pub fn instances(&self) -> u64 {
        self.pool.instances.load(Ordering::Relaxed)
    }

    /// Stops accepting, lets requests in flight finish (within the grace period), returns.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

async fn accept(
    listener: TcpListener,
    pool: Arc<Pool>,
    mut stopped: watch::Receiver<bool>,
    grace: Duration,
) {
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    eprintln!("host-test serve: accepting a connection failed: {e}");
                    continue;
                }
            },
            _ = stopped.changed() => break,
        };
        let pool = pool.clone();
        let verdicts = framing::Verdicts::default();
        let stream = framing::Watched::new(stream, verdicts.clone());
        let service = hyper::service::service_fn(move |request| {
            let pool = pool.clone();
            let refusal = verdicts.next().refusal();
            async move {
                Ok::<_, std::convert::Infallible>(match refusal {
                    Some(words) => {
                        let mut answer = failure(400, "request", words);
                        answer.headers_mut().insert(
                            hyper::header::CONNECTION,
                            hyper::header::HeaderValue::from_static("close"),
                        );
                        answer
                    }
                    None => pool.handle(request).await,
                })
            }
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that goes away mid-request is its own business; its upload is not
            // finalized.
            let _ = connection.await;
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        eprintln!(
            "host-test serve: requests still running after {} s were stopped before their \
             uploads were finalized",
            grace.as_secs()
        );
    }
}

struct Pool {
    runtime: Runtime,
    env: GuestEnv,
    outbound: Outbound,
    idle: std::sync::Mutex<Vec<Instance>>,
    permits: Arc<Semaphore>,
    tokens: std::sync::Mutex<SharedTokens>,
    /// Held by the requests that run while the pool has no token yet.
    warm_up: Arc<Mutex<()>>,
    instances: AtomicU64,
    body_timeout: Duration,
    guest_memory_limit: Option<usize>,
}

struct Instance {
    session: Session,
    /// The [`SharedTokens::version`] this instance last adopted.
    adopted: u64,
}

impl Pool {
    async fn handle(self: &Arc<Self>, request: hyper::Request<Incoming>) -> hyper::Response<Body> {
        if let Some(refusal) = malformed(&request) {
            return failure(400, "request", refusal);
        }
        let request = request.map(|body| TimedBody::new(body, self.body_timeout));
        match self.run(request).await {
            Ok(response) => response,
            Err(e) => {
                eprintln!("host-test serve: {e:#}");
                match e.downcast_ref::<Trapped>() {
                    Some(trap) => failure(
                        500,
                        "component",
                        &format!(
                            "the component trapped: {trap}; the request was not completed and \
                             its instance was replaced"
                        ),
                    ),
                    None => failure(500, "host", &format!("{e:#}")),
                }
            }
        }
    }

    async fn run(
        self: &Arc<Self>,
        request: hyper::Request<TimedBody>,
    ) -> Result<hyper::Response<Body>> {
        let permit = self.permits.clone().acquire_owned().await?;
        let warm_up = if self.tokens.lock().unwrap().tokens.is_empty() {
            Some(self.warm_up.clone().lock_owned().await)
        } else {
            None
        };
        let idle = self.idle.lock().unwrap().pop();
        let mut instance = match idle {
            Some(instance) => instance,
            None => {
                self.instances.fetch_add(1, Ordering::Relaxed);
                let mut session =
                    Session::new(&self.runtime, &self.env, self.outbound.clone()).await?;
                if let Some(bytes) = self.guest_memory_limit {
                    session.limit_guest_memory(bytes);
                }
                Instance {
                    session,
                    adopted: 0,
                }
            }
        };
        let shared = {
            let tokens = self.tokens.lock().unwrap();
            (tokens.version > instance.adopted).then(|| (tokens.tokens.clone(), tokens.version))
        };
        if let Some((list, version)) = shared {
            instance.session.adopt_tokens(&list).await?;
            instance.adopted = version;
        }

        // The component answers as soon as it knows; the instance goes back to the pool when
        // it has returned, with its tokens shared.
        let (sender, answer) = tokio::sync::oneshot::channel();
        let pool = self.clone();
        let task = tokio::spawn(async move {
            let result = instance.session.handle(request, sender).await;
            if result.is_ok() {
                if let Ok(tokens) = instance.session.cached_tokens().await {
                    pool.tokens.lock().unwrap().merge(tokens);
                }
                // A trapped instance cannot be entered again: it is dropped, not pooled.
                if !instance.session.is_broken() {
                    pool.idle.lock().unwrap().push(instance);
                }
            }
            drop(warm_up);
            drop(permit);
            result
        });
        match answer.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => Ok(failure(
                500,
                "component",
                &format!("the component failed: {code}"),
            )),
            Err(_) => {
                let error = match task.await {
                    Ok(Ok(())) => anyhow::anyhow!("the component did not answer"),
                    Ok(Err(e)) => e.context("the component failed"),
                    Err(e) => anyhow::Error::from(e).context("the component failed"),
                };
                Err(error)
            }
        }
    }
}

/// Why a request is refused before any instance sees it, if it is.
fn malformed<B>(request: &hyper::Request<B>) -> Option<&'static str> {
    if request.uri().authority().is_none() && !request.headers().contains_key(hyper::header::HOST) {
        return Some(
            "the request has no Host header, which HTTP/1.1 requires: send Host: localhost",
        );
    }
    // Content-Length beside Transfer-Encoding is refused before this (framing.rs): hyper
    // drops the length before a service can see it.
    None
}

/// A request body that fails when no byte arrives for `timeout` while it is being read, so
/// a client that stalls mid-body cannot hold an instance: the component's read fails and
/// nothing is finalized.
pub struct TimedBody {
    inner: Incoming,
    timeout: Duration,
    /// Armed while the reader waits for data; cleared when a frame arrives.
    deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl TimedBody {
    fn new(inner: Incoming, timeout: Duration) -> Self {
        TimedBody {
            inner,
            timeout,
            deadline: None,
        }
    }
}

impl hyper::body::Body for TimedBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        use std::task::Poll;
        let this = &mut *self;
        match std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.deadline = None;
                Poll::Ready(frame.map(|f| f.map_err(wasmtime_wasi_http::Error::Hyper)))
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let deadline = this
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        eprintln!(
                            "host-test serve: a request body sent nothing for {} s; the \
                             request was stopped and nothing was stored",
                            timeout.as_secs_f32()
                        );
                        Poll::Ready(Some(Err(wasmtime_wasi_http::Error::ConnectionReadTimeout)))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

fn failure(status: u16, step: &str, message: &str) -> hyper::Response<Body> {
    let body = serde_json::json!({"error": {"step": step, "message": message}});
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(
            http_body_util::Full::new(Bytes::from(format!("{body}\n")))
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .expect("a valid response")
}

/// Resolves on SIGTERM or Ctrl-C. The handlers are installed when this is called, not when the
/// future is first polled, so a signal sent right after the server says it is ready is caught.
pub fn terminated() -> Result<impl std::future::Future<Output = Result<()>>> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = term.recv() => {}
            result = tokio::signal::ctrl_c() => result?,
        }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c().await?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{Tokens, wif};
    use wasmtime_wasi::p2::bindings::clocks::wall_clock::Datetime;

    fn token(key: &str, expires: u64) -> wif::CachedToken {
        wif::CachedToken {
            key: key.into(),
            token: format!("canary-{key}-{expires}"),
            expires_at: Datetime {
                seconds: expires,
                nanoseconds: 0,
            },
        }
    }

    #[test]
    fn shared_tokens_keep_the_freshest_per_key() {
        let mut shared = SharedTokens::default();
        shared.merge(Tokens(vec![token("a", 100)]));
        shared.merge(Tokens(vec![token("a", 50)]));
        assert_eq!(shared.version, 1, "an older token changes nothing");
        shared.merge(Tokens(vec![token("a", 200), token("b", 10)]));
        assert_eq!(shared.version, 2);
        assert_eq!(shared.tokens.0.len(), 2);
        assert_eq!(shared.tokens.0[0].expires_at.seconds, 200);
        let shown = format!("{shared:?}");
        assert!(
            !shown.contains("canary") && shown.contains("\"a\""),
            "{shown}"
        );
    }
}
