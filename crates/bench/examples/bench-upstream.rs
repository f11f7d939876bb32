//! The load benchmark's upstream: an MCP-shaped server that answers every POST with the same
//! small `tools/call` result, as fast as hyper can, so the benchmark measures the proxies and not
//! the server behind them. A GET opens the server's event stream: one small notification a
//! second, stamped with the wall-clock time it leaves, for the SSE phase's latency. Also serves
//! the run's key set at `/jwks.json`.
//!
//! `bench-upstream ADDR JWKS_FILE` serves HTTP/1.1 and h2c on ADDR until killed.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::Stream;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Either, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::time::Instant;

/// What a `get_customer_info` call returns from the sample server, in one JSON-RPC response.
const RESULT: &[u8] = br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"{\"id\":\"C-1001\",\"name\":\"Ada Example\",\"email\":\"ada@example.com\",\"plan\":\"pro\"}"}],"isError":false}}"#;

/// One event per stream per second: a thousand streams make a thousand events a second, enough
/// to measure, little enough to leave the machine to the proxy.
const EVENT_INTERVAL: Duration = Duration::from_secs(1);

/// Event streams opened so far; each one's first event is offset by it (see [`events`]).
static STREAMS: AtomicU64 = AtomicU64::new(0);

/// An event stream's frames, made as they are sent; boxed, as the stream's own type has no name.
type Events = Pin<Box<dyn Stream<Item = Result<Frame<Bytes>, Infallible>> + Send>>;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(jwks)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: bench-upstream ADDR JWKS_FILE");
    };
    let addr: SocketAddr = addr.parse()?;
    let jwks = Bytes::from(std::fs::read(&jwks)?);
    // One thread: the upstream should cost the machine as little as possible, leaving the
    // cores to the proxy under test and the load generator.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(addr, jwks))
}

async fn serve(addr: SocketAddr, jwks: Bytes) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let jwks = jwks.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| answer(req, jwks.clone()));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    req: Request<Incoming>,
    jwks: Bytes,
) -> Result<Response<Either<Full<Bytes>, StreamBody<Events>>>, Infallible> {
    let get = req.method() == http::Method::GET;
    let jwks_path = req.uri().path() == "/jwks.json";
    // The whole request body is read, as a real server would before answering.
    let _ = req.into_body().collect().await;
    let (status, body) = match (get, jwks_path) {
        (true, true) => (StatusCode::OK, jwks),
        (false, false) => (StatusCode::OK, Bytes::from_static(RESULT)),
        // On any path, like POST: scopegate forwards to the upstream URL's path, "/".
        (true, false) => return Ok(events()),
        _ => (StatusCode::NOT_FOUND, Bytes::new()),
    };
    let mut response = Response::new(Either::Left(Full::new(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// A new event stream: never ends; one `notifications/message` per tick, carrying the wall-clock
/// time it was written in `sent_ns` (nanoseconds since the Unix epoch). Streams open in bursts,
/// so each one's first event is offset by a fraction of the interval (the golden ratio's
/// sequence, even for any number of streams): events arrive spread over the second rather than
/// all at once.
fn events() -> Response<Either<Full<Bytes>, StreamBody<Events>>> {
    let n = STREAMS.fetch_add(1, Ordering::Relaxed);
    let offset = EVENT_INTERVAL.mul_f64((n as f64 * 0.618_033_988_749_895).fract());
    let ticks = tokio::time::interval_at(Instant::now() + offset, EVENT_INTERVAL);
    let events: Events = Box::pin(futures_util::stream::unfold(
        ticks,
        |mut ticks| async move {
            ticks.tick().await;
            let sent = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            let event = format!(
                "event: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{{\"level\":\"info\",\"data\":{{\"sent_ns\":{sent}}}}}}}\n\n"
            );
            Some((Ok(Frame::data(Bytes::from(event))), ticks))
        },
    ));
    let mut response = Response::new(Either::Right(StreamBody::new(events)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/event-stream"),
    );
    response
}
