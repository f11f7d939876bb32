//! What tracing adds to one request: the span begun from the caller's `traceparent`, the body's
//! id taken, the context put on the upstream request, the span ended and queued. Without
//! `[telemetry]` none of this runs (the proxy holds no tracer); with it, sampled and sampled out.
//! The collector here is a closed port, so the queue fills and spans are dropped and counted,
//! as when a collector is down: the request path does the same work either way.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};
use scopegate_core::config::TelemetryConfig;
use scopegate_core::mcp::{InspectLimits, inspect};
use scopegate_core::metrics::Metrics;
use scopegate_core::telemetry::{Ended, Telemetry};

const BODY: &[u8] = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_customer_info","arguments":{"customer_id":"C001"}}}"#;

fn headers(flags: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let traceparent = format!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-{flags}");
    headers.insert("traceparent", HeaderValue::from_str(&traceparent).unwrap());
    headers
}

fn trace_one_request(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _entered = runtime.enter();
    let config = TelemetryConfig {
        otlp_endpoint: "http://127.0.0.1:9".parse().unwrap(),
        service_name: "bench".into(),
        sample_ratio: 1.0,
    };
    let client = scopegate_core::client::build(None, Duration::from_millis(100)).unwrap();
    let telemetry = Telemetry::start(&config, client, Arc::new(Metrics::new())).unwrap();
    let inspection = inspect(BODY, &InspectLimits::default()).unwrap();
    let ended = Ended {
        method: Some("tools/call"),
        tool: Some("get_customer_info"),
        session_id: Some("3f0c1b7e-5a1d-4c1e-9a57-0d3c0e6f1a22"),
        subject: Some("tester"),
        rule: Some("get_customer_info"),
        decision: "allow",
        reason: "allowed",
        status: 200,
    };
    let mut group = c.benchmark_group("trace/request");
    for (label, flags) in [("sampled", "01"), ("sampled_out", "00")] {
        let incoming = headers(flags);
        group.bench_function(label, |b| {
            b.iter_batched(
                || incoming.clone(),
                |mut upstream| {
                    let mut trace = telemetry.begin(&incoming);
                    trace.observe(&inspection);
                    trace.inject(&mut upstream);
                    trace.end(&ended);
                    black_box(upstream)
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, trace_one_request);
criterion_main!(benches);
