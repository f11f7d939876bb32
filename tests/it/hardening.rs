//! Holding under faults and abuse: least-privilege listings, session binding, resource limits,
//! IdP and upstream failures.

use crate::common;

use std::time::{Duration, Instant};

use common::{Options, TestSystem, eventually, header, read};
use scopegate_testkit::sample_server::{SampleServer, SampleServerOptions};
use serde_json::{Value, json};

const ALL_SCOPES: [&str; 3] = ["customer:read", "ticket:create", "account:calculate"];

async fn tool_names(t: &TestSystem, scopes: &[&str]) -> Vec<String> {
    let client = t.mcp_client(&t.token(scopes)).await;
    let tools = client.list_all_tools().await.expect("tools/list");
    client.cancel().await.ok();
    let mut names: Vec<String> = tools.iter().map(|tool| tool.name.to_string()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn tools_list_over_sse_shows_only_what_the_caller_may_call() {
    let t = common::start().await;
    assert_eq!(
        tool_names(&t, &["customer:read"]).await,
        ["get_customer_info", "get_recent_customers"]
    );
    assert_eq!(
        tool_names(&t, &["account:calculate"]).await,
        ["calculate_account_value"]
    );
    assert_eq!(tool_names(&t, &ALL_SCOPES).await.len(), 4);
    assert!(tool_names(&t, &[]).await.is_empty());
}

#[tokio::test]
async fn tools_list_as_json_is_filtered_and_keeps_its_cursor_field() {
    let t = common::start_with(Options {
        upstream: SampleServerOptions {
            json_response: true,
            ..Default::default()
        },
        ..Options::default()
    })
    .await;
    let list = json!({ "jsonrpc": "2.0", "id": "list-1", "method": "tools/list", "params": {} });
    let response = t
        .post(Some(&t.token(&["ticket:create"])), list.to_string())
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .unwrap();
    let (status, headers, body) = read(response).await;
    assert_eq!(status, 200, "{body}");
    assert!(header(&headers, "content-type").starts_with("application/json"));
    assert_eq!(body["id"], "list-1");
    let names: Vec<&str> = body["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tool| tool["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["create_support_ticket"]);
}

#[tokio::test]
async fn listing_filter_can_be_switched_off() {
    let t = common::start_with(Options {
        mcp_settings: "filter_lists = false".into(),
        ..Options::default()
    })
    .await;
    assert_eq!(tool_names(&t, &["customer:read"]).await.len(), 4);
}

#[tokio::test]
async fn another_principal_cannot_use_a_session_and_delete_frees_it() {
    let t = common::start().await;
    let alice = t
        .system
        .issuer
        .mint(t.system.issuer.claims_for("alice", &["customer:read"]));
    let bob = t
        .system
        .issuer
        .mint(t.system.issuer.claims_for("bob", &["customer:read"]));
    let session = common::open_session(&t, &alice).await;

    let before = t.upstream_requests();
    let response = t
        .post(Some(&bob), TestSystem::tool_call("get_customer_info", 4))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    let (status, _, body) = read(response).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["data"]["reason"], "session_not_found");
    assert_eq!(
        t.upstream_requests(),
        before,
        "bob's request never reached the upstream"
    );

    let response = t
        .post(Some(&alice), TestSystem::tool_call("get_customer_info", 5))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let _ = response.text().await;

    let response = t
        .http
        .delete(t.url())
        .bearer_auth(&alice)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let response = t
        .post(Some(&alice), TestSystem::tool_call("get_customer_info", 6))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn an_invented_session_id_is_not_found() {
    let t = common::start().await;
    let before = t.upstream_requests();
    let response = t
        .post(
            Some(&t.token(&ALL_SCOPES)),
            TestSystem::tool_call("get_customer_info", 1),
        )
        .header("mcp-session-id", "00000000-0000-0000-0000-000000000000")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(t.upstream_requests(), before);
}

/// A body that sends `first` and then waits until the sender is dropped.
fn stalled_body(
    first: &str,
) -> (
    reqwest::Body,
    tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let first = first.as_bytes().to_vec();
    tx.try_send(Ok(first)).unwrap();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (reqwest::Body::wrap_stream(stream), tx)
}

#[tokio::test]
async fn a_body_that_stalls_is_cut_at_the_body_timeout() {
    // [limits] is a table of its own: the auth settings are the last lines before [policy].
    let t = common::start_with(Options {
        auth_settings: "[limits]\nbody_read_timeout = \"300ms\"".into(),
        ..Options::default()
    })
    .await;
    let (body, _sender) = stalled_body("{\"jsonrpc\":\"2.0\",");
    let started = Instant::now();
    let response = t
        .post(Some(&t.token(&ALL_SCOPES)), body)
        .send()
        .await
        .unwrap();
    let (status, _, body) = read(response).await;
    assert_eq!(status, 408, "{body}");
    assert_eq!(body["error"], "body_timeout");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn an_http2_client_refused_mid_body_finishes_sending_and_reads_the_refusal() {
    let t = common::start().await;
    let before = t.upstream_requests();
    let tls = tls_with_alpn(&t, vec![b"h2".to_vec()]).await;
    let (mut client, connection) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(connection);
    let request = http::Request::post(t.url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(())
        .unwrap();
    let (response, mut body) = client.send_request(request, false).unwrap();
    let call = TestSystem::tool_call("get_customer_info", 1);
    let (head, tail) = call.split_at(call.len() / 2);
    body.send_data(head.as_bytes().to_vec().into(), false)
        .unwrap();
    // The refusal is decided from the headers alone; the rest of the body is still on its way.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Had the proxy reset the stream (even with NO_ERROR), this send would fail, and clients
    // such as curl 7.x would throw the answer away.
    body.send_data(tail.as_bytes().to_vec().into(), true)
        .expect("the stream is still open for the rest of the body");
    let response = response.await.expect("an answer, not a reset stream");
    assert_eq!(response.status(), 401);
    assert!(
        header(response.headers(), "www-authenticate").starts_with("Bearer resource_metadata=")
    );
    let mut answer = response.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = answer.data().await {
        bytes.extend_from_slice(&chunk.expect("the answer arrives whole"));
    }
    let error: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(error["error"]["data"]["reason"], "missing_token", "{error}");
    assert_eq!(t.upstream_requests(), before);
}

#[tokio::test]
async fn a_refused_client_waiting_for_100_continue_is_not_asked_to_upload() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t = common::start().await;
    let mut tls = raw_tls(&t).await;
    let head = "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: 900000\r\n\r\n";
    tls.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0; 256];
    let read = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut answer))
        .await
        .expect("answered without the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 401 "), "{answer}");
}

#[tokio::test]
async fn a_refused_client_that_never_finishes_its_body_still_gets_the_answer() {
    let t = common::start().await;
    let (body, _sender) = stalled_body("{\"jsonrpc\":\"2.0\",");
    let started = Instant::now();
    let response = tokio::time::timeout(Duration::from_secs(10), t.post(None, body).send())
        .await
        .expect("answered while the body is still open")
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let (status, _, body) = read(response).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["data"]["reason"], "missing_token");
    // The proxy waits a short while for the rest of a refused body, never for ever.
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn requests_past_the_in_flight_limit_get_503_not_a_hang() {
    let t = common::start_with(Options {
        auth_settings: "[limits]\nmax_requests = 1\nbody_read_timeout = \"10s\"".into(),
        ..Options::default()
    })
    .await;
    let token = t.token(&ALL_SCOPES);
    // The one slot is held by a request whose body is announced but never sent.
    let mut holder = raw_tls(&t).await;
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    tokio::io::AsyncWriteExt::write_all(&mut holder, head.as_bytes())
        .await
        .unwrap();
    let other = common::https_client(&t.system);
    assert!(
        eventually(Duration::from_secs(5), async || {
            let response = other
                .post(t.url())
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(TestSystem::tool_call("get_customer_info", 1))
                .send()
                .await
                .unwrap();
            response.status() == 503 && header(response.headers(), "retry-after") == "1"
        })
        .await
    );
    drop(holder);
}

#[tokio::test]
async fn connections_past_the_limit_get_503_not_a_hang() {
    let t = common::start_with(Options {
        auth_settings: "[limits]\nmax_connections = 1".into(),
        ..Options::default()
    })
    .await;
    // The first client keeps its connection open (keep-alive).
    let first = t.post(None, "{}").send().await.unwrap();
    assert_eq!(first.status(), 401);
    let second = common::https_client(&t.system);
    let response = tokio::time::timeout(
        Duration::from_secs(5),
        second.post(t.url()).body("{}").send(),
    )
    .await
    .expect("answered at once")
    .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(header(response.headers(), "retry-after"), "1");
    drop(first);
}

#[tokio::test]
async fn a_silent_connection_is_dropped_at_the_header_timeout() {
    let t = common::start_with(Options {
        auth_settings: "[limits]\nheader_read_timeout = \"300ms\"".into(),
        ..Options::default()
    })
    .await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = raw_tls(&t).await;
    // Half a request head, then nothing: slowloris.
    stream
        .write_all(b"POST /mcp HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection was held open");
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// A TLS connection to the proxy speaking HTTP/1.1 by hand, for requests no client library
/// would send.
async fn raw_tls(t: &TestSystem) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    tls_with_alpn(t, Vec::new()).await
}

/// A TLS connection to the proxy offering the ALPN protocols `alpn`.
async fn tls_with_alpn(
    t: &TestSystem,
    alpn: Vec<Vec<u8>>,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let addr = t.system.proxy.as_ref().unwrap().addr;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    tls_connector(t, alpn).connect(name, tcp).await.unwrap()
}

fn tls_connector(t: &TestSystem, alpn: Vec<Vec<u8>>) -> tokio_rustls::TlsConnector {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(&t.system.certs.ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config =
        rustls::ClientConfig::builder_with_provider(scopegate_core::tls::crypto_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let mut config = config;
    config.alpn_protocols = alpn;
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
}

#[tokio::test]
async fn an_upstream_that_never_answers_is_a_gateway_timeout() {
    // Accepts connections and never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", silent.local_addr().unwrap());
    let _accepting = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let t = common::start_with(Options {
        upstream_url: Some(url),
        upstream_settings: "response_timeout = \"300ms\"".into(),
        ..Options::default()
    })
    .await;
    let response = t
        .post(
            Some(&t.token(&ALL_SCOPES)),
            TestSystem::tool_call("get_customer_info", 8),
        )
        .send()
        .await
        .unwrap();
    let (status, _, body) = read(response).await;
    assert_eq!(status, 504);
    assert_eq!(body["id"], 8);
    assert_eq!(body["error"]["data"]["reason"], "upstream_timeout");
}

#[tokio::test]
async fn a_recovered_upstream_serves_the_next_request_without_a_restart() {
    let t = common::start().await;
    let token = t.token(&ALL_SCOPES);
    let addr = t.system.upstream.addr();
    t.system.upstream.shutdown();
    let response = t
        .post(Some(&token), TestSystem::tool_call("get_customer_info", 1))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);

    let _again = SampleServer::start(SampleServerOptions {
        bind: addr,
        ..Default::default()
    })
    .await
    .expect("the upstream comes back on its address");
    let client = t.mcp_client(&token).await;
    assert_eq!(client.list_all_tools().await.unwrap().len(), 4);
    client.cancel().await.ok();
}

#[tokio::test]
async fn an_upstream_that_breaks_off_mid_stream_ends_the_clients_stream_cleanly() {
    let t = common::start_with(common::slow_tool_options()).await;
    let mut response = common::start_slow_call(&t, 3, 50, 100).await;
    let first = response.chunk().await.unwrap();
    assert!(first.is_some());
    t.system.upstream.shutdown();
    // The stream ends without a transport error, well before the tool would have finished.
    let started = Instant::now();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), response.chunk()).await {
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None)) => break,
            Ok(Err(error)) => panic!("the client's stream broke: {error}"),
            Err(_) => panic!("the client's stream hung"),
        }
    }
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn idp_down_at_start_means_not_ready_until_it_answers() {
    let t = common::start_with(Options {
        jwks_down_at_start: true,
        // The start-up retries go through the same per-interval gate as every fetch.
        auth_settings: "[auth.jwks]\nrefetch_interval = \"100ms\"".into(),
        ..Options::default()
    })
    .await;
    let readyz = format!("{}/readyz", t.system.admin_url);
    let response = t.http.get(&readyz).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.text().await.unwrap().contains("signing keys"));
    t.system.issuer.set_jwks_down(false);
    assert!(
        eventually(Duration::from_secs(10), async || {
            t.http
                .get(&readyz)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await,
        "never became ready"
    );
    let client = t.mcp_client(&t.token(&["customer:read"])).await;
    assert!(!client.list_all_tools().await.unwrap().is_empty());
    client.cancel().await.ok();
}

#[tokio::test]
async fn garbage_from_the_idp_keeps_the_last_good_keys() {
    let t = common::start_with(Options {
        auth_settings: "[auth.jwks]\nrefetch_interval = \"1ms\"".into(),
        ..Options::default()
    })
    .await;
    let token = t.token(&["customer:read"]);
    t.system
        .issuer
        .set_jwks_body(Some(b"{\"keys\": 42}".to_vec()));
    // An unknown kid makes the proxy fetch the garbage; the known key still verifies after.
    let unknown = t.system.issuer.mint_with(
        json!({ "alg": "ES256", "kid": "not-there" }),
        t.system.issuer.claims_for("tester", &[]),
        scopegate_testkit::issuer::KeyChoice::Default,
    );
    let response = t.post(Some(&unknown), "{}").send().await.unwrap();
    assert_eq!(response.status(), 401);
    let (status, body) = common::session_call(&t, &token, "get_customer_info", 1).await;
    assert_eq!(status, 200, "{body}");
    let metrics = t
        .http
        .get(format!("{}/metrics", t.system.admin_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let failures: Value = metrics
        .lines()
        .find(|l| l.starts_with("scopegate_jwks_fetch_total{result=\"failure\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(Value::Null);
    assert!(failures.as_f64().is_some_and(|f| f >= 1.0), "{metrics}");
}
