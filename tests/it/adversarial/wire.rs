//! HTTP/1.1 request smuggling over a raw TLS socket: framing that a front end and a back end
//! could split differently (RFC 9112 §6.3). Ambiguous framing is refused by hyper with `400`
//! before any of our code runs. Content-Length together with Transfer-Encoding is read as RFC
//! 9112 §6.3 says (chunked wins, Content-Length is dropped); the proxy forwards with framing of
//! its own, so bytes after the last chunk are a new request on our side, authenticated alone.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use super::all_pass;
use crate::common::{self, TestSystem};

/// A TLS connection to the proxy that speaks HTTP/1.1, for bytes no client library would send.
pub async fn raw_tls(t: &TestSystem) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let ca = CertificateDer::from_pem_file(&t.system.certs.ca).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let mut config =
        rustls::ClientConfig::builder_with_provider(scopegate_core::tls::crypto_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let addr = t.system.proxy.as_ref().expect("in-process proxy").addr;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap()
}

/// Sends `request` as raw bytes over HTTP/1.1 and returns the status of the first response.
async fn raw_status(t: &TestSystem, request: &[u8]) -> Result<u16, String> {
    let mut tls = raw_tls(t).await;
    tls.write_all(request).await.map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        while !response.windows(4).any(|w| w == b"\r\n\r\n") {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => response.extend_from_slice(&buf[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
    let text = String::from_utf8_lossy(&response);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line in {text:?}"))
}

#[tokio::test]
async fn smuggled_framing_is_refused_by_the_http_layer() {
    let t = common::start().await;
    let token = t.token(&super::ALL_SCOPES);
    let body = TestSystem::tool_call("get_customer_info", 1);
    let smuggled = TestSystem::tool_call("create_support_ticket", 2);
    let head = |framing: &str| {
        format!(
            "POST /mcp HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n{framing}\r\n"
        )
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "two different Content-Length headers",
            format!(
                "{}{body}",
                head(&format!(
                    "Content-Length: {}\r\nContent-Length: {}\r\n",
                    body.len(),
                    body.len() + smuggled.len()
                ))
            ),
        ),
        (
            "comma-joined Content-Length values",
            format!(
                "{}{body}",
                head(&format!(
                    "Content-Length: {}, {}\r\n",
                    body.len(),
                    body.len() + 1
                ))
            ),
        ),
        (
            "Transfer-Encoding without chunked last",
            format!("{}{body}", head("Transfer-Encoding: chunked, identity\r\n")),
        ),
        (
            "Transfer-Encoding gzip",
            format!("{}{body}", head("Transfer-Encoding: gzip\r\n")),
        ),
        (
            "space before the header colon",
            format!(
                "{}{body}",
                head(&format!("Content-Length : {}\r\n", body.len()))
            ),
        ),
        (
            "obsolete line folding",
            format!(
                "{}{body}",
                head(&format!(
                    "Content-Length: {}\r\nX-Folded: a\r\n b\r\n",
                    body.len()
                ))
            ),
        ),
        (
            "negative Content-Length",
            format!("{}{body}", head("Content-Length: -1\r\n")),
        ),
    ];
    let mut results = Vec::new();
    for (name, request) in &cases {
        let before = t.upstream_requests();
        let result = match raw_status(&t, request.as_bytes()).await {
            Ok(400) if t.upstream_requests() == before => Ok(()),
            Ok(status) => Err(format!(
                "{name}: status {status}, upstream +{}",
                t.upstream_requests() - before
            )),
            Err(e) => Err(format!("{name}: {e}")),
        };
        results.push(result);
    }
    all_pass(results);
}

#[tokio::test]
async fn content_length_with_transfer_encoding_cannot_smuggle_a_second_call() {
    let t = common::start().await;
    let token = t.token(&["customer:read"]);
    let body = TestSystem::tool_call("get_customer_info", 1);
    // The tail is a whole request without a token: if any hop framed by Content-Length, the
    // back end would run it under the first request's identity.
    let tail_body = TestSystem::tool_call("create_support_ticket", 2);
    let tail = format!(
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{tail_body}",
        tail_body.len()
    );
    let chunked = format!("{:x}\r\n{body}\r\n0\r\n\r\n{tail}", body.len());
    for framing in [
        format!(
            "Content-Length: {}\r\nTransfer-Encoding: chunked\r\n",
            chunked.len()
        ),
        format!(
            "Transfer-Encoding: chunked\r\nContent-Length: {}\r\n",
            body.len()
        ),
    ] {
        let before = t.upstream_requests();
        let request = format!(
            "POST /mcp HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n{framing}\r\n{chunked}"
        );
        raw_status(&t, request.as_bytes()).await.unwrap();
        // Give a smuggled second request time to arrive, if one were going to.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(t.upstream_requests(), before + 1, "{framing:?}");
        assert_eq!(
            t.system.upstream.last_request_body(),
            body.as_bytes(),
            "{framing:?}"
        );
    }
}
