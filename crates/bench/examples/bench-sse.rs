//! The load benchmark's SSE client: opens many event streams (`GET`, `Accept: text/event-stream`)
//! to one URL, waits until all are open, holds them, and measures how late each event arrives:
//! the time it is read here minus the wall-clock stamp `bench-upstream` put in it when it sent
//! it. Both run on the same machine, so they read the same clock.
//!
//! `bench-sse URL STREAMS SECONDS [CA_FILE]` sends `Authorization: Bearer $BENCH_TOKEN` when set
//! and trusts CA_FILE for an `https://` URL (HTTP/1.1 either way). It prints `OPEN streams=N`
//! once every stream has been tried (run.sh samples the proxy's memory from then on), then,
//! after SECONDS, one line that run.sh parses and exits:
//!
//! `RESULT streams=N events=E p50=US p99=US p999=US lost=L failures=F`
//!
//! `events` and the latencies (microseconds) count only events sent during the hold. `failures`
//! are streams that did not open or ended early. `lost` adds up, over the streams, how many
//! events each is short of SECONDS - 1 (one a second, less the one that may still be on its way
//! when the hold ends).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

/// Streams being opened at once: a thousand open in a few seconds, and the proxy's accept queue
/// stays short (an overflow costs a SYN retry, a second, which would only slow the start).
const OPENING_AT_ONCE: usize = 64;
/// A stream not open by then counts as failed, so the run ends even if the proxy hangs.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the streams go, and how.
struct Target {
    /// `host:port`, to connect to and for the `Host` header.
    authority: String,
    path: String,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    token: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, streams, seconds, ca_file @ ..] = args.as_slice() else {
        anyhow::bail!("usage: bench-sse URL STREAMS SECONDS [CA_FILE]");
    };
    let streams: usize = streams.parse().context("STREAMS")?;
    let hold = Duration::from_secs(seconds.parse().context("SECONDS")?);
    let target = target(url.parse()?, ca_file.first().map(String::as_str))?;
    // One thread, like the upstream: the client should take as little of the machine as it can
    // from the proxy under test. A thousand events a second is little work.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(Arc::new(target), streams, hold))
}

fn target(url: Uri, ca_file: Option<&str>) -> anyhow::Result<Target> {
    let host = url.host().context("URL has no host")?.to_string();
    let https = url.scheme_str() == Some("https");
    let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tls = if https {
        let ca_file = ca_file.context("an https URL needs CA_FILE")?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca_file).context("CA_FILE")? {
            roots.add(cert.context("CA_FILE")?)?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = ServerName::try_from(host.trim_matches(['[', ']']))?.to_owned();
        Some((TlsConnector::from(Arc::new(config)), name))
    } else {
        None
    };
    Ok(Target {
        authority: format!("{host}:{port}"),
        path: url.path().to_string(),
        tls,
        token: std::env::var("BENCH_TOKEN").ok(),
    })
}

async fn run(target: Arc<Target>, streams: usize, hold: Duration) -> anyhow::Result<()> {
    let opening = Arc::new(Semaphore::new(OPENING_AT_ONCE));
    let mut tries = JoinSet::new();
    for _ in 0..streams {
        let (target, opening) = (target.clone(), opening.clone());
        tries.spawn(async move {
            let _permit = opening.acquire_owned().await?;
            tokio::time::timeout(OPEN_TIMEOUT, open(&target))
                .await
                .context("not open in time")?
        });
    }
    let (mut open_streams, mut failures, mut first_error) = (Vec::new(), 0, None);
    while let Some(tried) = tries.join_next().await {
        match tried? {
            Ok(stream) => open_streams.push(stream),
            Err(error) => {
                failures += 1;
                first_error.get_or_insert(error);
            }
        }
    }
    if let Some(error) = first_error {
        eprintln!("bench-sse: {failures} stream(s) did not open; the first: {error:#}");
    }
    println!("OPEN streams={}", open_streams.len());

    let (from, until) = (now_ns(), Instant::now() + hold);
    let mut readers = JoinSet::new();
    for stream in open_streams {
        readers.spawn(read(stream, from, until));
    }
    let (mut latencies, mut lost) = (Vec::new(), 0);
    let expected = hold.as_secs().saturating_sub(1) as usize;
    let opened = readers.len();
    while let Some(read) = readers.join_next().await {
        let (stream_latencies, ended_early) = read?;
        lost += expected.saturating_sub(stream_latencies.len());
        failures += usize::from(ended_early);
        latencies.extend(stream_latencies);
    }
    latencies.sort_unstable();
    let micros = |p: f64| percentile(&latencies, p) / 1000;
    println!(
        "RESULT streams={opened} events={} p50={} p99={} p999={} lost={lost} failures={failures}",
        latencies.len(),
        micros(50.0),
        micros(99.0),
        micros(99.9),
    );
    Ok(())
}

/// An open stream: the response body, and the request side kept alive with it.
type Stream = (
    hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    Incoming,
);

/// Connects and sends the GET; open once a `200 text/event-stream` head has arrived.
async fn open(target: &Target) -> anyhow::Result<Stream> {
    let tcp = TcpStream::connect(&target.authority).await?;
    // Events are small writes: without it, Nagle's algorithm would add to their latency.
    tcp.set_nodelay(true)?;
    let mut request = Request::get(target.path.as_str())
        .header(header::HOST, target.authority.as_str())
        .header(header::ACCEPT, "text/event-stream")
        .header("mcp-protocol-version", "2025-06-18");
    if let Some(token) = &target.token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request.body(Empty::new())?;
    let (sender, response) = match &target.tls {
        Some((connector, name)) => {
            send(connector.connect(name.clone(), tcp).await?, request).await?
        }
        None => send(tcp, request).await?,
    };
    let content_type = response.headers().get(header::CONTENT_TYPE);
    let is_stream = content_type.is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    anyhow::ensure!(
        response.status() == StatusCode::OK && is_stream,
        "answered {} ({content_type:?})",
        response.status()
    );
    Ok((sender, response.into_body()))
}

async fn send(
    io: impl AsyncRead + AsyncWrite + Send + Unpin + 'static,
    request: Request<Empty<Bytes>>,
) -> anyhow::Result<(
    hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    Response<Incoming>,
)> {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await?;
    Ok((sender, response))
}

/// Reads one stream until `until`: the latency (ns) of each event sent at or after `from_ns`,
/// and whether the stream ended before `until`. Events sent earlier waited while the other
/// streams opened; they would measure the opening, not the proxy.
async fn read(stream: Stream, from_ns: u64, until: Instant) -> (Vec<u64>, bool) {
    let (_sender, mut body) = stream;
    let mut latencies = Vec::new();
    // The project's own event-stream reader: what the proxy and the adapter parse with.
    let mut events = scopegate_core::sse::Decoder::new(1 << 20);
    loop {
        let frame = match tokio::time::timeout_at(until, body.frame()).await {
            Err(_) => return (latencies, false),
            Ok(Some(Ok(frame))) => frame,
            Ok(None | Some(Err(_))) => return (latencies, true),
        };
        let received = now_ns();
        let Ok(data) = frame.into_data() else {
            continue;
        };
        events.push(&data);
        while let Ok(Some(event)) = events.next_event() {
            let data = event.data.unwrap_or_default();
            if let Some(sent) = stamp(data.as_bytes()).filter(|&sent| sent >= from_ns) {
                latencies.push(received.saturating_sub(sent));
            }
        }
    }
}

/// The `sent_ns` an event's data carries.
fn stamp(event: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"sent_ns\":";
    let at = event.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits = event[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&event[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Nearest-rank percentile of sorted values; 0 when there are none.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.saturating_sub(1)).copied().unwrap_or(0)
}
