//! What the end of one request costs the proxy: the context filled from an allowed `tools/call`
//! and finished (request, tool call, issuer and upstream counters, durations; the audit line
//! with no subscriber, i.e. off). Beside it, the same counters found by label each time, as
//! they were before the handles were resolved when the policy and the issuers load. And the
//! audit line itself, as the JSON log formats it.

use std::hint::black_box;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, Method, StatusCode};
use scopegate_core::audit::{self, Line};
use scopegate_core::ctx::{Ctx, Sinks};
use scopegate_core::metrics::Metrics;
use scopegate_core::policy::{Policy, PolicyState};

const BODY: &[u8] = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_customer_info","arguments":{"customer_id":"C001"}}}"#;
const POLICY: &str = include_str!("../../../policies/customer-service.toml");
const ISSUER: &str = "https://idp.example.com";

fn finish_one_request(c: &mut Criterion) {
    let metrics = Metrics::new();
    let policy = Policy::parse(POLICY, "customer-service.toml").unwrap();
    let rule = (0..)
        .take_while(|&i| policy.rule_name(i).is_some())
        .find(|&i| policy.rule_name(i) == Some("get_customer_info"));
    let counters = metrics.policy_loaded(&policy);
    let issuers = metrics.issuers_configured([ISSUER].into_iter());
    let state = Arc::new(PolicyState {
        policy,
        metadata_document: Bytes::new(),
        counters,
    });
    let swap = ArcSwap::new(state.clone());
    let sinks = Sinks {
        metrics: &metrics,
        issuers: &issuers,
        policy: &swap,
    };
    let body = Bytes::from_static(BODY);
    let text = std::str::from_utf8(BODY).unwrap();
    let method = &text[text.find("tools/call").unwrap()..][..10];
    let tool = &text[text.find("get_customer_info").unwrap()..][.."get_customer_info".len()];
    let headers = HeaderMap::new();

    let mut group = c.benchmark_group("request/finish");
    group.bench_function("resolved_handles", |b| {
        b.iter(|| {
            let mut ctx = Ctx::start(&headers, &Method::POST);
            ctx.token_issuer(Some(0));
            ctx.decided(state.clone(), &body, Some((method, Some(tool), rule)), 1);
            ctx.allowed();
            ctx.upstream_answered(StatusCode::OK, std::time::Duration::from_micros(300));
            ctx.finish(StatusCode::OK, &sinks);
            black_box(ctx)
        })
    });
    group.bench_function("label_lookups_only", |b| {
        b.iter(|| {
            metrics
                .tool_calls
                .with_label_values(&[black_box("get_customer_info"), "allow"])
                .inc();
            metrics
                .issuer_auth
                .with_label_values(&[black_box(ISSUER), "accepted"])
                .inc();
            metrics
                .upstream_responses
                .with_label_values(&[black_box("2xx")])
                .inc();
        })
    });
    group.finish();
}

/// The audit line of an allowed `tools/call`, formatted as the JSON log queues it (the writer
/// thread's share, the write and the hash chain, is not on the request's path).
fn audit_line(c: &mut Criterion) {
    let line = Line {
        request_id: Some("18ecca1576023b46-0-00000000"),
        session_id: Some("3f2c9a7e-1b4d-4c8e-9a51-7d0e2b6c4f13"),
        http_method: "POST",
        subject: Some("bench-agent"),
        client_id: Some("bench-agent"),
        issuer: Some(ISSUER),
        method: Some("tools/call"),
        tool: Some("get_customer_info"),
        rule: Some("get_customer_info"),
        messages: 1,
        decision: "allow",
        reason: "allowed",
        missing: &[],
        condition: None,
        status: 200,
        upstream_status: Some(200),
        upstream_ms: Some(0.315589),
        duration_ms: 0.468403,
        trace_id: None,
        policy_hash: "6ec6a8c8670a233b",
    };
    c.bench_function("request/audit_line_json", |b| {
        b.iter(|| black_box(audit::json(black_box(&line))))
    });
}

criterion_group!(benches, finish_one_request, audit_line);
criterion_main!(benches);
