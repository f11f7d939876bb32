//! The per-core runtime shape (`listen.runtime = "per-core"`): one single-threaded tokio runtime
//! per core, each on a thread of its own with its own `SO_REUSEPORT` listener on the proxy's
//! address. The kernel spreads new connections over the listeners; a connection, its requests and
//! the upstream connections they use then stay on one thread, with no work stealing and no
//! wake-ups across threads. Owns the threads and their listeners, not what they serve.

use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context as _;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;

/// Pending connections a listener holds before the kernel refuses more (as tokio's default).
const BACKLOG: u32 = 1024;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// The number of this thread among the per-core workers; 0 on any other thread.
pub fn index() -> usize {
    INDEX.get()
}

/// One worker per core the process may use (cgroup quotas included).
pub fn count() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Binds `count` listeners to `addr`, sharing it through `SO_REUSEPORT`.
///
/// `SO_REUSEPORT` would also let a second process of the same user join the port and take part
/// of the traffic, so the address is first claimed without it: if anything listens there already,
/// this fails like any bind would. With port 0, that claim picks the port.
pub async fn bind(addr: SocketAddr, count: usize) -> anyhow::Result<Vec<std::net::TcpListener>> {
    let cannot = || format!("cannot listen on {addr}");
    let claim = socket_for(addr)?;
    claim.bind(addr).with_context(cannot)?;
    let addr = claim.local_addr()?;
    // Released just before the shared sockets take the address (one without SO_REUSEPORT would
    // keep them out).
    drop(claim);
    let mut listeners = Vec::with_capacity(count);
    for _ in 0..count {
        let socket = socket_for(addr)?;
        socket.set_reuseport(true)?;
        socket.bind(addr).with_context(cannot)?;
        // Registered again with the worker's own runtime, on its thread.
        listeners.push(socket.listen(BACKLOG).with_context(cannot)?.into_std()?);
    }
    Ok(listeners)
}

/// A TCP socket for `addr`'s family that may bind a port with connections still in TIME_WAIT
/// (as every listener tokio binds).
fn socket_for(addr: SocketAddr) -> std::io::Result<TcpSocket> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    Ok(socket)
}

/// Runs `serve` on each listener, each on a thread of its own with a single-threaded runtime.
/// The returned future ends once every worker's `serve` has returned. A worker whose thread
/// panics calls `lost` with its number as it goes.
pub fn spawn<S, F, L>(
    listeners: Vec<std::net::TcpListener>,
    serve: S,
    lost: L,
) -> anyhow::Result<impl Future<Output = ()> + use<S, F, L>>
where
    S: Fn(TcpListener) -> F + Clone + Send + 'static,
    F: Future<Output = ()> + 'static,
    L: Fn(usize) + Clone + Send + 'static,
{
    let mut done = Vec::with_capacity(listeners.len());
    for (index, listener) in listeners.into_iter().enumerate() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start a worker runtime")?;
        let (finished, finishing) = oneshot::channel::<()>();
        let serve = serve.clone();
        let lost = lost.clone();
        std::thread::Builder::new()
            .name(format!("scopegate-worker-{index}"))
            .spawn(move || {
                INDEX.set(index);
                let _reported = OnPanic(|| lost(index));
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(listener) => serve(listener).await,
                        Err(error) => tracing::error!(%error, index, "worker cannot listen"),
                    }
                });
                let _ = finished.send(());
            })
            .context("cannot start a worker thread")?;
        done.push(finishing);
    }
    Ok(async move {
        for worker in done {
            // An error means the worker's thread ended without saying so (a panic): it is over
            // either way.
            let _ = worker.await;
        }
    })
}

/// Runs its function if dropped while the thread unwinds.
struct OnPanic<F: Fn()>(F);

impl<F: Fn()> Drop for OnPanic<F> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            (self.0)();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn workers_share_a_port_that_nobody_else_can_join() {
        let listeners = bind("127.0.0.1:0".parse().unwrap(), 3).await.unwrap();
        let addr = listeners[0].local_addr().unwrap();
        assert!(listeners.iter().all(|l| l.local_addr().unwrap() == addr));
        // A second instance on the same address is refused, as with a plain listener.
        let error = bind(addr, 2).await.unwrap_err();
        assert!(
            format!("{error:#}").contains(&format!("cannot listen on {addr}")),
            "{error:#}"
        );
        assert!(TcpListener::bind(addr).await.is_err());
    }

    #[tokio::test]
    async fn a_worker_that_panics_is_reported_and_the_others_serve_on() {
        let listeners = bind("127.0.0.1:0".parse().unwrap(), 2).await.unwrap();
        let (lost_tx, lost_rx) = std::sync::mpsc::channel();
        let serve = |_listener: TcpListener| async {
            if index() == 1 {
                panic!("worker 1 fails on purpose");
            }
        };
        let lost = move |worker| lost_tx.send(worker).unwrap();
        spawn(listeners, serve, lost).unwrap().await;
        assert_eq!(lost_rx.try_iter().collect::<Vec<_>>(), vec![1]);
    }
}
