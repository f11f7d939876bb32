//! The accept loop shared by the demo's servers: plain HTTP on a bound listener, one task per
//! connection, everything stopped at once on shutdown. Owns no routing; each server brings its own
//! hyper service.

use std::convert::Infallible;

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use scopegate_core::accept::Listener;

/// The boxed response body both servers answer with.
pub(crate) type BoxBody = http_body_util::combinators::BoxBody<bytes::Bytes, Infallible>;

/// A complete response body from bytes.
pub(crate) fn full(bytes: impl Into<bytes::Bytes>) -> BoxBody {
    http_body_util::Full::new(bytes.into()).boxed()
}

/// Serves `service` on `listener` until `shutdown` fires or its sender is dropped, then aborts every
/// open connection (an SSE stream would otherwise hold its connection open indefinitely) and calls
/// `on_shutdown`.
pub(crate) fn spawn<S, B>(
    listener: TcpListener,
    service: S,
    mut shutdown: oneshot::Receiver<()>,
    on_shutdown: impl FnOnce() + Send + 'static,
) where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::spawn(async move {
        let mut connections = JoinSet::new();
        let mut listener = Listener::new(listener, "demo");
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                (stream, peer) = listener.next() => {
                    let service = service.clone();
                    connections.spawn(async move {
                        let builder = auto::Builder::new(TokioExecutor::new());
                        if let Err(error) =
                            builder.serve_connection(TokioIo::new(stream), service).await
                        {
                            tracing::debug!(%peer, %error, "demo connection ended with an error");
                        }
                    });
                }
                // Reap finished connections so the set does not grow without bound.
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        connections.abort_all();
        on_shutdown();
    });
}
