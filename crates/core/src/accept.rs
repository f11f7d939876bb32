//! Accepting connections, for every listener in the process (public, admin, adapter, demo): the
//! next connection with `TCP_NODELAY` set, and a pause after a failed `accept` so a loop never
//! spins. Owns the accept step alone; what a listener does with a connection is its own.
//!
//! `accept` fails while the process is out of file descriptors (`EMFILE`) or the kernel out of
//! memory for sockets, and it keeps failing until something closes: a loop that retries at once
//! burns a core and floods the log while the connections that would free descriptors starve.
//! The pause doubles on each failure in a row, from [`FIRST_BACKOFF`] to [`MAX_BACKOFF`] (as Go's
//! `net/http` does), and starts over after a success.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// The first pause after a failed `accept`: short, since one failure is often a connection
/// reset before it was accepted (`ECONNABORTED`), which says nothing about the next.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(5);
/// The longest pause: a listener out of descriptors still looks again every second.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// A socket that hands out connections: a [`TcpListener`], a per-core worker's inbox
/// (`workers`), a failing stand-in in tests.
pub trait Listen {
    type Stream;

    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;

    /// Called on each accepted connection before it is handed out.
    fn prepare(_stream: &Self::Stream) {}
}

impl Listen for TcpListener {
    type Stream = TcpStream;

    fn accept(&mut self) -> impl Future<Output = io::Result<(TcpStream, SocketAddr)>> + Send {
        TcpListener::accept(self)
    }

    fn prepare(stream: &TcpStream) {
        // Small JSON-RPC messages and single SSE events must not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
    }
}

/// A listener and its backoff state: the one accept step every listener in the process uses.
pub struct Listener<L> {
    listener: L,
    /// Names the listener in the log line of a failure ("public", "admin", …).
    name: &'static str,
    /// The pause after the next failure.
    backoff: Duration,
}

impl<L: Listen> Listener<L> {
    pub fn new(listener: L, name: &'static str) -> Self {
        Listener {
            listener,
            name,
            backoff: FIRST_BACKOFF,
        }
    }

    /// The next connection. A failed `accept` is logged and followed by a pause before the next
    /// try, so this only returns with a connection.
    ///
    /// Cancel-safe (as `TcpListener::accept` is): used in a `select!` beside a stop signal, a
    /// stop during a pause ends the pause at once.
    pub async fn next(&mut self) -> (L::Stream, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    self.backoff = FIRST_BACKOFF;
                    L::prepare(&stream);
                    return (stream, peer);
                }
                Err(error) => {
                    let pause = self.backoff;
                    tracing::warn!(listener = self.name, %error, ?pause, "accept failed; pausing");
                    self.backoff = (pause * 2).min(MAX_BACKOFF);
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::time::Instant;

    use super::*;

    /// A listener whose `accept` fails `failures` times (as one out of descriptors does), then
    /// hands out connections; counts the calls.
    struct Failing {
        calls: Arc<AtomicUsize>,
        failures: usize,
    }

    impl Listen for Failing {
        type Stream = ();

        async fn accept(&mut self) -> io::Result<((), SocketAddr)> {
            let call = self.calls.fetch_add(1, Ordering::SeqCst);
            if call < self.failures {
                Err(io::Error::from_raw_os_error(24)) // EMFILE
            } else {
                Ok(((), SocketAddr::from(([127, 0, 0, 1], 40000))))
            }
        }
    }

    fn failing(failures: usize) -> (Listener<Failing>, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let listener = Failing {
            calls: calls.clone(),
            failures,
        };
        (Listener::new(listener, "test"), calls)
    }

    #[tokio::test]
    async fn failing_accept_pauses_between_tries_instead_of_spinning() {
        let (mut acceptor, calls) = failing(usize::MAX);
        let window = Duration::from_millis(300);
        let outcome = tokio::time::timeout(window, acceptor.next()).await;
        assert!(
            outcome.is_err(),
            "a connection out of an accept that always fails"
        );
        // Pauses of 5, 10, 20, 40, 80, 160 ms: tries at 0, 5, 15, 35, 75 and 155 ms, the next at
        // 315. A timer never fires early, so a slow machine makes fewer tries, never more; a loop
        // without the pause makes thousands.
        let calls = calls.load(Ordering::SeqCst);
        assert!((2..=6).contains(&calls), "{calls} tries in {window:?}");
    }

    #[tokio::test]
    async fn accept_after_failures_returns_the_connection_and_resets_the_pause() {
        let (mut acceptor, calls) = failing(3);
        let started = Instant::now();
        acceptor.next().await;
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        assert!(started.elapsed() >= Duration::from_millis(5 + 10 + 20));
        assert_eq!(acceptor.backoff, FIRST_BACKOFF);

        // A later failure starts over from the first pause.
        acceptor.listener.failures = 5;
        acceptor.next().await;
        assert_eq!(calls.load(Ordering::SeqCst), 6);
        assert_eq!(acceptor.backoff, FIRST_BACKOFF);
    }

    #[tokio::test]
    async fn tcp_connections_come_out_with_nodelay_set() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut acceptor = Listener::new(listener, "test");
        let client = TcpStream::connect(addr).await.unwrap();
        let (stream, peer) = acceptor.next().await;
        assert_eq!(peer, client.local_addr().unwrap());
        assert!(stream.nodelay().unwrap());
    }
}
