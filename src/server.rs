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
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::config::Config;
use crate::policy::Policy;
use crate::proxy::Proxy;
use crate::tls::{self, CertStore};
use crate::upstream::Peer;

/// A TLS handshake that has not finished by then is dropped: a client that opens connections and
/// never speaks must not hold them.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for a request's head to arrive (HTTP/1.1); the slowloris bound.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again, so the loop
/// does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// A started proxy: its bound address and a way to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub proxy: Arc<Proxy>,
    pub certs: Option<Arc<CertStore>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    /// Stops accepting connections and waits for the accept loop to end.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Runs until the accept loop ends (it does not on its own).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Loads the policy and TLS material, fetches the IdP's keys once, binds the listener and starts
/// serving. Every file problem fails here, before a connection is accepted.
pub async fn start(config: &Config) -> anyhow::Result<Running> {
    let policy = Policy::load(&config.policy_file).map_err(|e| anyhow::anyhow!("{e}"))?;
    let client = crate::client::build(
        config.upstream.ca_file.as_deref(),
        config.upstream.connect_timeout,
    )?;
    let auth_client = crate::client::build(
        config.auth_ca_file.as_deref(),
        config.auth.jwks.fetch_timeout,
    )?;
    let proxy = Arc::new(Proxy::new(config, policy, client, auth_client)?);

    // Keys now, so the first requests do not wait on the IdP; an IdP that is down is not fatal:
    // the cache retries on demand.
    match proxy.authenticator().refresh_keys().await {
        Ok(keys) => tracing::info!(keys, "signing keys loaded"),
        Err(error) => tracing::warn!(%error, "signing keys not loaded yet; will retry on demand"),
    }

    let (acceptor, certs) = match &config.listen.tls {
        Some(files) => {
            let certs = CertStore::new(tls::load_certified_key(&files.cert, &files.key)?);
            let server_config = tls::server_config(certs.clone(), files.client_ca.as_deref())?;
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

    let listener = TcpListener::bind(config.listen.address)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen.address))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, acceptor, proxy.clone(), stopped));
    tracing::info!(%addr, tls = certs.is_some(), "proxy listening");
    Ok(Running {
        addr,
        proxy,
        certs,
        stop,
        task,
    })
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    proxy: Arc<Proxy>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    http.http2().timer(TokioTimer::new());
    let http = Arc::new(http);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.changed() => return,
        };
        let (stream, addr) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        tokio::spawn(serve_connection(
            stream,
            addr,
            acceptor.clone(),
            proxy.clone(),
            http.clone(),
        ));
    }
}

async fn serve_connection(
    stream: TcpStream,
    addr: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    proxy: Arc<Proxy>,
    http: Arc<auto::Builder<TokioExecutor>>,
) {
    // Small JSON-RPC messages and SSE events must not wait for Nagle's algorithm.
    let _ = stream.set_nodelay(true);
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    let peer = Peer { addr, scheme };
    let service = service_fn(move |request| {
        let proxy = proxy.clone();
        async move { Ok::<_, Infallible>(proxy.handle(request, peer).await) }
    });
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
            http.serve_connection(TokioIo::new(tls), service).await
        }
        None => http.serve_connection(TokioIo::new(stream), service).await,
    };
    if let Err(error) = result {
        tracing::debug!(%addr, %error, "connection ended with an error");
    }
}
