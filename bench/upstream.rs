//! The load benchmark's upstream: an MCP-shaped server that answers every POST with the same
//! small `tools/call` result, as fast as hyper can, so the benchmark measures the proxies and not
//! the server behind them. Also serves the run's key set at `/jwks.json`.
//!
//! `bench-upstream ADDR JWKS_FILE` serves HTTP/1.1 and h2c on ADDR until killed.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// What a `get_customer_info` call returns from the sample server, in one JSON-RPC response.
const RESULT: &[u8] = br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"{\"id\":\"C-1001\",\"name\":\"Ada Example\",\"email\":\"ada@example.com\",\"plan\":\"pro\"}"}],"isError":false}}"#;

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

async fn answer(req: Request<Incoming>, jwks: Bytes) -> Result<Response<Full<Bytes>>, Infallible> {
    let get = req.method() == http::Method::GET;
    let jwks_path = req.uri().path() == "/jwks.json";
    // The whole request body is read, as a real server would before answering.
    let _ = req.into_body().collect().await;
    let (status, body) = match (get, jwks_path) {
        (true, true) => (StatusCode::OK, jwks),
        (false, false) => (StatusCode::OK, Bytes::from_static(RESULT)),
        _ => (StatusCode::NOT_FOUND, Bytes::new()),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}
