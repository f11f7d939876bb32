//! The per-core runtime shape (`listen.runtime = "per-core"`): one single-threaded tokio runtime
//! per core, each on a thread of its own, and one listener whose connections a balancer hands to
//! the worker with the fewest open. A connection, its requests and the upstream connections they
//! use then stay on one thread, with no work stealing and no wake-ups across threads. Owns the
//! threads, the balancer and their inboxes, not what they serve.
//!
//! The balancer, not `SO_REUSEPORT`: the kernel spreads `SO_REUSEPORT` connections by a hash of
//! their addresses, so a client holding a few connections (an agent's pool of 4, say) landed 3:1
//! or 4:0 on two workers in most runs, one core serving while the other idled. Counting open
//! connections puts them 2:2. It costs one hand-off per connection (the stream moves from the
//! balancer's reactor to the worker's), none per request.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context as _;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::accept::{self, Listen};

/// Pending connections the listener holds before the kernel refuses more (as tokio's default).
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

/// Binds the listener the balancer accepts on. It may bind a port with connections still in
/// TIME_WAIT (as every listener tokio binds).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let cannot = || format!("cannot listen on {addr}");
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr).with_context(cannot)?;
    Ok(socket.listen(BACKLOG).with_context(cannot)?.into_std()?)
}

/// A connection handed to a worker, with its place in the worker's count.
pub struct Assigned {
    stream: TcpStream,
    open: Open,
}

impl Assigned {
    /// The stream, and its place in the count: hold that as long as the connection is open.
    pub fn into_parts(self) -> (TcpStream, Open) {
        (self.stream, self.open)
    }
}

/// One open connection of a worker's: the worker's count goes down when this is dropped,
/// however the connection ends.
pub struct Open {
    counts: Arc<[AtomicUsize]>,
    worker: usize,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.counts[self.worker].fetch_sub(1, Ordering::Relaxed);
    }
}

/// A worker's side of the balancer: the connections handed to it, as a listener would accept
/// them.
pub struct Inbox {
    connections: mpsc::UnboundedReceiver<(std::net::TcpStream, SocketAddr)>,
    counts: Arc<[AtomicUsize]>,
    worker: usize,
}

impl Listen for Inbox {
    type Stream = Assigned;

    async fn accept(&mut self) -> io::Result<(Assigned, SocketAddr)> {
        loop {
            let Some((stream, peer)) = self.connections.recv().await else {
                // The balancer is gone (the process is stopping): nothing more will come.
                return std::future::pending().await;
            };
            let open = Open {
                counts: self.counts.clone(),
                worker: self.worker,
            };
            // Registered with this worker's reactor; a failure is this connection's alone.
            match TcpStream::from_std(stream) {
                Ok(stream) => {
                    return Ok((Assigned { stream, open }, peer));
                }
                Err(error) => tracing::debug!(%peer, %error, "connection lost in hand-off"),
            }
        }
    }
}

/// Runs `serve` on each worker's inbox, each on a thread of its own with a single-threaded
/// runtime, and the balancer on the returned future. That future ends once every worker's `serve`
/// has returned (the balancer stops, closing the listener, once no worker takes connections). A
/// worker whose thread panics calls `lost` with its number as it goes.
pub fn spawn<S, F, L>(
    listener: std::net::TcpListener,
    workers: usize,
    serve: S,
    lost: L,
) -> anyhow::Result<impl Future<Output = ()> + use<S, F, L>>
where
    S: Fn(Inbox) -> F + Clone + Send + 'static,
    F: Future<Output = ()> + 'static,
    L: Fn(usize) + Clone + Send + 'static,
{
    let counts: Arc<[AtomicUsize]> = (0..workers).map(|_| AtomicUsize::new(0)).collect();
    let mut done = Vec::with_capacity(workers);
    let mut inboxes = Vec::with_capacity(workers);
    for index in 0..workers {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start a worker runtime")?;
        let (finished, finishing) = oneshot::channel::<()>();
        let (sender, connections) = mpsc::unbounded_channel();
        let inbox = Inbox {
            connections,
            counts: counts.clone(),
            worker: index,
        };
        let serve = serve.clone();
        let lost = lost.clone();
        std::thread::Builder::new()
            .name(format!("scopegate-worker-{index}"))
            .spawn(move || {
                INDEX.set(index);
                let _reported = OnPanic(|| lost(index));
                runtime.block_on(serve(inbox));
                let _ = finished.send(());
            })
            .context("cannot start a worker thread")?;
        done.push(finishing);
        inboxes.push(sender);
    }
    Ok(async move {
        match TcpListener::from_std(listener) {
            Ok(listener) => balance(listener, inboxes, counts).await,
            Err(error) => tracing::error!(%error, "cannot listen"),
        }
        for worker in done {
            // An error means the worker's thread ended without saying so (a panic): it is over
            // either way.
            let _ = worker.await;
        }
    })
}

/// Accepts connections and hands each to the worker with the fewest open, until no worker takes
/// any more; the listener closes as this returns.
async fn balance(
    listener: TcpListener,
    inboxes: Vec<mpsc::UnboundedSender<(std::net::TcpStream, SocketAddr)>>,
    counts: Arc<[AtomicUsize]>,
) {
    let mut listener = accept::Listener::new(listener, "public");
    let mut next = 0;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.next() => accepted,
            () = all_closed(&inboxes) => return,
        };
        let Ok(stream) = stream.into_std() else {
            continue;
        };
        // The fewest open; among equals, the one after the last chosen.
        let worker = (0..inboxes.len())
            .map(|offset| (next + offset) % inboxes.len())
            .filter(|&worker| !inboxes[worker].is_closed())
            .min_by_key(|&worker| counts[worker].load(Ordering::Relaxed));
        let Some(worker) = worker else {
            return;
        };
        counts[worker].fetch_add(1, Ordering::Relaxed);
        if inboxes[worker].send((stream, peer)).is_err() {
            counts[worker].fetch_sub(1, Ordering::Relaxed);
        }
        next = worker + 1;
    }
}

/// Resolves once every worker's inbox is closed.
async fn all_closed(inboxes: &[mpsc::UnboundedSender<(std::net::TcpStream, SocketAddr)>]) {
    for inbox in inboxes {
        inbox.closed().await;
    }
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
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_taken_address_is_refused_like_any_bind() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let error = bind(addr).await.unwrap_err();
        assert!(
            format!("{error:#}").contains(&format!("cannot listen on {addr}")),
            "{error:#}"
        );
    }

    #[tokio::test]
    async fn a_client_pool_of_four_is_spread_two_and_two_over_two_workers() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (taken_tx, mut taken_rx) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        // Each worker keeps what it is handed open and says which worker took it.
        let serve = move |inbox: Inbox| {
            let taken = taken_tx.clone();
            let mut stop = stop_rx.clone();
            async move {
                let mut inbox = accept::Listener::new(inbox, "test");
                let mut held = Vec::new();
                loop {
                    tokio::select! {
                        (assigned, _) = inbox.next() => {
                            held.push(assigned);
                            taken.send(index()).unwrap();
                        }
                        _ = stop.changed() => return,
                    }
                }
            }
        };
        let running = tokio::spawn(spawn(listener, 2, serve, |_| {}).unwrap());
        let mut clients = Vec::new();
        for _ in 0..4 {
            clients.push(TcpStream::connect(addr).await.unwrap());
        }
        let mut per_worker = [0; 2];
        for _ in 0..4 {
            let worker = tokio::time::timeout(Duration::from_secs(10), taken_rx.recv())
                .await
                .expect("every connection reaches a worker")
                .unwrap();
            per_worker[worker] += 1;
        }
        assert_eq!(per_worker, [2, 2]);
        stop_tx.send(true).unwrap();
        running.await.unwrap();
        // With every worker gone, the listener is closed: new connections are refused.
        assert!(TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn a_worker_that_panics_is_reported_and_the_others_serve_on() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let (lost_tx, lost_rx) = std::sync::mpsc::channel();
        let serve = |_inbox: Inbox| async {
            if index() == 1 {
                panic!("worker 1 fails on purpose");
            }
        };
        let lost = move |worker| lost_tx.send(worker).unwrap();
        spawn(listener, 2, serve, lost).unwrap().await;
        assert_eq!(lost_rx.try_iter().collect::<Vec<_>>(), vec![1]);
    }
}
