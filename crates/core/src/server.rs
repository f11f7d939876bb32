//! The public listener: accepts connections, terminates TLS, and hands each request to the
//! [`Proxy`]. Owns sockets and connection settings; not what is done with a request.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use hyper_util::server::graceful::{GracefulShutdown, Watcher};

use crate::accept;
use crate::admin::{self, Health};
use crate::auth::CertThumbprint;
use crate::config::{Config, Limits, RuntimeShape};
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::proxy::Proxy;
use crate::reload;
use crate::telemetry::Telemetry;
use crate::tls::{self, CertStore};
use crate::upstream::Peer;
use crate::workers;

/// A TLS handshake that has not finished by then is dropped: a client that opens connections and
/// never speaks must not hold them.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A started proxy: its bound addresses and a way to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub proxy: Arc<Proxy>,
    pub certs: Option<Arc<CertStore>>,
    pub health: Arc<Health>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    /// Admin listener, reload watchers, key refresher: aborted when the proxy stops.
    background: Vec<JoinHandle<()>>,
}

impl Running {
    /// Drains and stops: `/readyz` fails at once, the listener closes, requests in flight and
    /// open streams get the drain period to finish, then whatever is left is cut.
    pub async fn stop(self) {
        self.health.start_draining();
        let _ = self.stop.send(true);
        let _ = self.task.await;
        for task in self.background {
            task.abort();
        }
    }
}

/// A client for the upstream; a CA bundle that does not load is named by its key.
pub(crate) fn upstream_client(config: &Config) -> anyhow::Result<crate::client::HttpClient> {
    crate::client::build(
        config.upstream.ca_file.as_deref(),
        config.upstream.connect_timeout,
    )
    .context("upstream.ca_file")
}

/// A client for the IdP; a CA bundle that does not load is named by its key.
pub(crate) fn auth_client(config: &Config) -> anyhow::Result<crate::client::HttpClient> {
    crate::client::build(
        config.auth_ca_file.as_deref(),
        config
            .issuers
            .first()
            .map_or(crate::auth::DEFAULT_JWKS_FETCH_TIMEOUT, |i| {
                i.jwks.fetch_timeout
            }),
    )
    .context("auth.ca_file")
}

/// Loads the policy and TLS material, fetches the IdP's keys once, binds the listener and starts
/// serving. Every file problem fails here, before a connection is accepted.
pub async fn start(config: &Config) -> anyhow::Result<Running> {
    let policy = Policy::load(&config.policy_file).map_err(|e| anyhow::anyhow!("{e}"))?;
    // Per-core: one accept loop per core; work-stealing: one for all.
    let (workers, per_core) = match config.listen.runtime {
        RuntimeShape::WorkStealing => (1, false),
        RuntimeShape::PerCore => (workers::count(), true),
    };
    // One upstream connection pool per worker, so that a request and the connection it is sent
    // on belong to the same thread.
    let clients = (0..workers)
        .map(|_| upstream_client(config))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let auth_client = auth_client(config)?;
    let metrics = Arc::new(Metrics::new());
    let mut proxy = Proxy::new(config, policy, clients, auth_client, metrics.clone())?;
    if let Some(telemetry) = &config.telemetry {
        // Spans go out through a client of their own: the collector is neither the IdP nor the
        // upstream, and must not share their pools.
        let client = crate::client::build(None, config.upstream.connect_timeout)
            .context("telemetry client")?;
        proxy = proxy.with_telemetry(Telemetry::start(telemetry, client, metrics.clone())?);
    }
    let proxy = Arc::new(proxy);
    let health = Arc::new(Health::default());
    let mut background = Vec::new();

    // Keys now, so the first requests do not wait on the IdP. An IdP that is down is not fatal:
    // the proxy is not ready until a retry succeeds, and requests fetch on demand. From here on
    // the keys are refreshed in the background (retried every refetch interval while failing).
    if let Err(error) = proxy.authenticator().refresh_keys().await {
        tracing::warn!(%error, "signing keys not loaded yet; retrying in the background");
    }
    background.push(tokio::spawn(proxy.authenticator().keep_keys_fresh()));

    let (acceptor, certs) = match &config.listen.tls {
        Some(files) => {
            let pair = tls::load_certified_key(&files.cert, &files.key)?;
            metrics.certificate_loaded(tls::not_after(&pair));
            let certs = CertStore::new(pair);
            let server_config = tls::server_config(
                certs.clone(),
                files.client_ca.as_deref(),
                files.require_client_cert,
            )?;
            background.push(
                reload::watch_certificate(
                    certs.clone(),
                    metrics.clone(),
                    files.cert.clone(),
                    files.key.clone(),
                    files.watch_interval,
                )
                .await,
            );
            (Some(TlsAcceptor::from(server_config)), Some(certs))
        }
        None => {
            tracing::warn!(
                address = %config.listen.address,
                "listening WITHOUT TLS (insecure_plaintext = true): tokens cross the network in clear; for development only"
            );
            (None, None)
        }
    };

    let listeners = if per_core {
        Listeners::PerCore(workers::bind(config.listen.address).await?)
    } else {
        Listeners::Shared(
            TcpListener::bind(config.listen.address)
                .await
                .with_context(|| format!("cannot listen on {}", config.listen.address))?,
        )
    };
    let addr = listeners.local_addr()?;
    let (admin_addr, admin) =
        admin::start(config.admin_address, proxy.clone(), health.clone()).await?;
    background.push(admin);
    background.push(
        reload::watch_policy(
            proxy.clone(),
            config.policy_file.clone(),
            config.policy_watch_interval,
        )
        .await?,
    );
    if let (Some(integrity), Some(pins)) = (
        proxy.integrity(),
        config.integrity.as_ref().and_then(|i| i.pins.clone()),
    ) {
        background.push(
            reload::watch_pins(
                integrity.clone(),
                metrics.clone(),
                pins,
                config.policy_watch_interval,
            )
            .await?,
        );
    }
    let (stop, stopped) = watch::channel(false);
    let serving = Serving {
        acceptor,
        proxy: proxy.clone(),
        stopped,
        drain_period: config.listen.drain_period,
        connections: Arc::new(Semaphore::new(config.limits.max_connections)),
        limits: config.limits.clone(),
    };
    let task = match listeners {
        Listeners::Shared(listener) => tokio::spawn(accept_loop(listener, serving)),
        Listeners::PerCore(listener) => {
            let health = health.clone();
            let lost = move |worker| {
                tracing::error!(
                    worker,
                    "a worker thread panicked; the others serve on, and /healthz fails so the process is restarted"
                );
                health.worker_lost();
            };
            let serve = move |inbox| accept_loop(inbox, serving.clone());
            tokio::spawn(workers::spawn(listener, workers, serve, lost)?)
        }
    };
    tracing::info!(%addr, tls = certs.is_some(), workers, "proxy listening");
    Ok(Running {
        addr,
        admin_addr,
        proxy,
        certs,
        health,
        stop,
        task,
        background,
    })
}

/// The public listener's socket: accepted on by the one accept loop, or by the per-core
/// workers' balancer.
enum Listeners {
    Shared(TcpListener),
    PerCore(std::net::TcpListener),
}

impl Listeners {
    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            Listeners::Shared(listener) => listener.local_addr(),
            Listeners::PerCore(listener) => listener.local_addr(),
        }
    }
}

/// What every accept loop shares: with per-core workers there is one loop per core, under one
/// connection limit.
#[derive(Clone)]
struct Serving {
    acceptor: Option<TlsAcceptor>,
    proxy: Arc<Proxy>,
    stopped: watch::Receiver<bool>,
    drain_period: Duration,
    connections: Arc<Semaphore>,
    limits: Limits,
}

/// A connection as an accept loop receives it: its stream, and with per-core workers its place
/// in the balancer's count.
trait Accepted: Send + 'static {
    fn into_parts(self) -> (TcpStream, Option<workers::Open>);
}

impl Accepted for TcpStream {
    fn into_parts(self) -> (TcpStream, Option<workers::Open>) {
        (self, None)
    }
}

impl Accepted for workers::Assigned {
    fn into_parts(self) -> (TcpStream, Option<workers::Open>) {
        let (stream, open) = workers::Assigned::into_parts(self);
        (stream, Some(open))
    }
}

/// What a connection holds while it is open: its place under the connection limit (none: it is
/// answered 503 and closed) and in its worker's count.
struct Held {
    permit: Option<OwnedSemaphorePermit>,
    _open: Option<workers::Open>,
}

async fn accept_loop<L>(listener: L, serving: Serving)
where
    L: accept::Listen,
    L::Stream: Accepted,
{
    let Serving {
        acceptor,
        proxy,
        mut stopped,
        drain_period,
        connections,
        limits,
    } = serving;
    let graceful = GracefulShutdown::new();
    let http = Arc::new(http_builder(&limits, true));
    // Connections past the limit are answered 503 once and closed, never left hanging.
    let refuse = Arc::new(http_builder(&limits, false));
    let mut listener = accept::Listener::new(listener, "public");
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.next() => accepted,
            _ = stopped.changed() => break,
        };
        let (stream, open) = stream.into_parts();
        let (http, permit) = match connections.clone().try_acquire_owned() {
            Ok(permit) => (http.clone(), Some(permit)),
            Err(_) => (refuse.clone(), None),
        };
        tokio::spawn(serve_connection(
            stream,
            addr,
            acceptor.clone(),
            proxy.clone(),
            http,
            graceful.watcher(),
            Held {
                permit,
                _open: open,
            },
        ));
    }
    drop(listener);
    let open = graceful.count();
    // Once per accept loop: per core, each worker drains its own connections.
    let worker = workers::index();
    tracing::info!(worker, open, ?drain_period, "draining connections");
    if tokio::time::timeout(drain_period, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            worker,
            "drain period over; closing the remaining connections"
        );
    }
}

async fn serve_connection(
    stream: TcpStream,
    addr: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    proxy: Arc<Proxy>,
    http: Arc<auto::Builder<TokioExecutor>>,
    watcher: Watcher,
    held: Held,
) {
    let metrics = proxy.clone();
    metrics.metrics().connections.inc();
    let _open = scopeguard(move || metrics.metrics().connections.dec());
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    let admitted = held.permit.is_some();
    // A handle of this connection's own, cloned per request: its count lives in a per-connection
    // allocation, so requests on different cores never write the proxy's shared count.
    let proxy = Arc::new(proxy);
    let service = move |peer: Peer| {
        service_fn(move |request| {
            let proxy = proxy.clone();
            async move {
                if !admitted {
                    return Ok::<_, Infallible>(proxy.overloaded());
                }
                Ok(proxy.handle(request, peer).await)
            }
        })
    };
    let result = match acceptor {
        Some(acceptor) => {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    tracing::debug!(%addr, %error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%addr, "TLS handshake timed out");
                    return;
                }
            };
            // Once per connection, not per request: every request on it presents the same
            // certificate (rustls refuses renegotiation).
            let client_cert = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|cert| CertThumbprint::of_der(cert));
            let peer = Peer {
                addr,
                scheme,
                client_cert,
            };
            let connection = http
                .serve_connection(TokioIo::new(tls), service(peer))
                .into_owned();
            watcher.watch(connection).await
        }
        None => {
            let peer = Peer {
                addr,
                scheme,
                client_cert: None,
            };
            let connection = http
                .serve_connection(TokioIo::new(stream), service(peer))
                .into_owned();
            watcher.watch(connection).await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%addr, %error, "connection ended with an error");
    }
    drop(held);
}

/// The HTTP settings for client connections. `keep_alive = false` serves one response and
/// closes, for connections past the limit.
fn http_builder(limits: &Limits, keep_alive: bool) -> auto::Builder<TokioExecutor> {
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .keep_alive(keep_alive)
        // Also bounds how long an idle keep-alive connection waits for its next request.
        .header_read_timeout(limits.header_read_timeout)
        // hyper's floor for the read buffer is 8 KiB.
        .max_buf_size(limits.max_header_bytes.max(8192));
    http.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(if keep_alive { limits.max_h2_streams } else { 1 })
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    http
}

/// Runs `f` when dropped: the open-connections gauge goes down however the connection ends.
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}
