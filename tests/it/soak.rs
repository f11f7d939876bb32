//! Soak: a bounded load of mixed allowed, denied, unauthenticated and malformed traffic over many
//! connections against the proxy running as its own process, on loopback, for `SOAK_SECONDS`
//! (default 20). Asserts no unexpected status, one audit line per request, resident memory
//! growth under a stated bound, and no connection left behind on either side.

use crate::common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Options, TestSystem};
use serde_json::Value;

/// Concurrent client connections, each with its own client (and so its own TLS connection).
const CONNECTIONS: usize = 64;
/// Resident memory may grow by at most this much from the warmed-up proxy to the end of the run:
/// caches (JWKS, rate limits) are bounded and per-request state is freed, so growth beyond
/// allocator slack means something is kept per request.
const RSS_GROWTH_BOUND_KIB: u64 = 32 * 1024;

fn soak_duration() -> Duration {
    let seconds = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    Duration::from_secs(seconds)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Established TCP connections whose remote end is `port` on loopback (the proxy's pooled
/// connections to the upstream), from the kernel's table.
fn connections_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() > 3
                && fields[3] == "01"
                && fields[2]
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
                    == Some(port)
        })
        .count()
}

async fn open_connections(t: &TestSystem) -> Option<f64> {
    let text = t
        .http
        .get(format!("{}/metrics", t.system.admin_url))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("scopegate_open_connections "))
        .and_then(|v| v.trim().parse().ok())
}

#[derive(Clone, Copy)]
enum Kind {
    Allowed,
    Denied,
    Unauthenticated,
    BadToken,
    Malformed,
}

const MIX: [Kind; 8] = [
    Kind::Allowed,
    Kind::Allowed,
    Kind::Allowed,
    Kind::Denied,
    Kind::Denied,
    Kind::Unauthenticated,
    Kind::BadToken,
    Kind::Malformed,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_traffic_over_many_connections_holds_steady() {
    let t = Arc::new(
        common::start_with(Options {
            proxy_binary: Some(PathBuf::from(env!("CARGO_BIN_EXE_scopegate"))),
            ..Options::default()
        })
        .await,
    );
    let pid = t.system.process.as_ref().unwrap().pid();
    let upstream_port = t.system.upstream.addr().port();
    let reader = t.token(&["customer:read"]);
    let bad = t.token_with(&["customer:read"], |c| {
        c["aud"] = "https://elsewhere".into()
    });
    // Whatever the upstream answers an allowed call outside a session, it answers every time.
    // (A client of its own, dropped at once: `t.http`'s pooled connection would stay open.)
    let allowed_status = common::https_client(&t.system)
        .post(t.url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .bearer_auth(&reader)
        .body(TestSystem::tool_call("get_customer_info", 0))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    let warm_rss = rss_kib(pid);

    let sent = Arc::new(AtomicU64::new(1));
    let deadline = Instant::now() + soak_duration();
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..CONNECTIONS {
        let (t, sent, reader, bad) = (t.clone(), sent.clone(), reader.clone(), bad.clone());
        workers.spawn(async move {
            let client = common::https_client(&t.system);
            let mut unexpected = Vec::new();
            let mut n = worker;
            while Instant::now() < deadline {
                let kind = MIX[n % MIX.len()];
                n += 1;
                let (token, body, want) = match kind {
                    Kind::Allowed => (Some(&reader), TestSystem::tool_call("get_customer_info", n as i64), allowed_status),
                    Kind::Denied => (Some(&reader), TestSystem::tool_call("create_support_ticket", n as i64), 403),
                    Kind::Unauthenticated => (None, TestSystem::tool_call("get_customer_info", n as i64), 401),
                    Kind::BadToken => (Some(&bad), TestSystem::tool_call("get_customer_info", n as i64), 401),
                    Kind::Malformed => (
                        Some(&reader),
                        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_customer_info","name":"create_support_ticket"}}"#.to_string(),
                        400,
                    ),
                };
                let mut request = client
                    .post(t.url())
                    .header("content-type", "application/json")
                    .header("accept", "application/json, text/event-stream")
                    .body(body);
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                sent.fetch_add(1, Ordering::Relaxed);
                match request.send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let _ = response.bytes().await;
                        if status != want {
                            unexpected.push(format!("wanted {want}, got {status}"));
                        }
                    }
                    Err(e) => unexpected.push(format!("transport: {e}")),
                }
            }
            unexpected
        });
    }
    let mut unexpected = Vec::new();
    while let Some(result) = workers.join_next().await {
        unexpected.extend(result.unwrap());
    }
    let sent = sent.load(Ordering::Relaxed);
    let end_rss = rss_kib(pid);
    let pooled = connections_to(upstream_port);
    eprintln!(
        "soak: {sent} requests over {CONNECTIONS} connections in {:?}; RSS {warm_rss} KiB -> {end_rss} KiB; {pooled} upstream connections",
        soak_duration()
    );
    assert!(
        unexpected.is_empty(),
        "{} unexpected of {sent}: {:?}",
        unexpected.len(),
        &unexpected[..unexpected.len().min(10)]
    );
    assert!(
        end_rss.saturating_sub(warm_rss) <= RSS_GROWTH_BOUND_KIB,
        "RSS grew {} KiB",
        end_rss - warm_rss
    );
    // The upstream pool holds at most one connection per concurrent forwarded request.
    assert!(
        pooled <= CONNECTIONS,
        "{pooled} connections to the upstream"
    );

    // Every request has its audit line.
    let process = t.system.process.as_ref().unwrap();
    let audit_lines = || {
        process
            .logs()
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line["target"] == "audit")
            .count() as u64
    };
    let settle = Instant::now() + Duration::from_secs(10);
    while audit_lines() < sent && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(audit_lines(), sent, "one audit line per request");

    // The workers' clients are gone: every client connection closes on the proxy's side.
    let mut open = open_connections(&t).await;
    let settle = Instant::now() + Duration::from_secs(10);
    while open != Some(0.0) && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(100)).await;
        open = open_connections(&t).await;
    }
    assert_eq!(open, Some(0.0), "client connections left open");
}
