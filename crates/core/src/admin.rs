//! The admin listener: `/metrics`, `/healthz`, `/readyz`, on an address of its own so probes and
//! scrapes never share the public port (and the public port never serves them).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::accept::Listener;
use crate::proxy::Proxy;

/// Whether the process should receive traffic: set to draining on SIGTERM, before the public
/// listener closes, so the endpoints controller stops sending new requests first.
#[derive(Debug, Default)]
pub struct Health {
    draining: AtomicBool,
    /// A per-core worker thread has died: the process serves on with fewer cores and should be
    /// restarted, so liveness fails.
    worker_lost: AtomicBool,
}

impl Health {
    pub fn worker_lost(&self) {
        self.worker_lost.store(true, Ordering::SeqCst);
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

/// Binds the admin address and serves it until the returned task is aborted.
pub async fn start(
    address: SocketAddr,
    proxy: Arc<Proxy>,
    health: Arc<Health>,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on admin address {address}"))?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let mut listener = Listener::new(listener, "admin");
        loop {
            let (stream, _) = listener.next().await;
            let proxy = proxy.clone();
            let health = health.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let response = respond(&request, &proxy, &health);
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    tracing::info!(%addr, "admin listening");
    Ok((addr, task))
}

fn respond(request: &Request<Incoming>, proxy: &Proxy, health: &Health) -> Response<Full<Bytes>> {
    if request.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    match request.uri().path() {
        "/metrics" => {
            let body = proxy.metrics().render(&proxy.authenticator().jwks_status());
            let mut response = text(StatusCode::OK, body);
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        "/healthz" if health.worker_lost.load(Ordering::SeqCst) => {
            text(StatusCode::SERVICE_UNAVAILABLE, "a worker thread stopped\n")
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => match readiness(proxy, health) {
            Ok(()) => text(StatusCode::OK, "ready\n"),
            Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, why),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// Ready once the policy is loaded (it is, before the listener starts) and signing keys are at
/// hand; not while draining.
fn readiness(proxy: &Proxy, health: &Health) -> Result<(), &'static str> {
    if health.is_draining() {
        return Err("draining\n");
    }
    if !proxy.authenticator().has_keys() {
        return Err("no signing keys from the IdP yet\n");
    }
    Ok(())
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}
