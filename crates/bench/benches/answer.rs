//! Reading an upstream's answer for listings, as every JSON answer is read before it is relayed:
//! a `tools/call` result (no listing: only checked to be JSON) and a `tools/list` of 50 tools of
//! which the caller may call one (filtered, the kept entry spliced from the upstream's bytes).

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use scopegate_core::auth::Principal;
use scopegate_core::listfilter::ListFilter;
use scopegate_core::policy::{Policy, PolicyState};

const POLICY: &str = include_str!("../../../policies/customer-service.toml");
/// The load benchmark upstream's answer (crates/bench/examples/bench-upstream.rs).
const CALL_RESULT: &[u8] = br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"{\"id\":\"C-1001\",\"name\":\"Ada Example\",\"email\":\"ada@example.com\",\"plan\":\"pro\"}"}],"isError":false}}"#;

fn listing(tools: usize) -> Vec<u8> {
    let entries: Vec<String> = (0..tools)
        .map(|i| {
            let name = if i == 0 { "get_customer_info".to_string() } else { format!("tool_{i}") };
            format!(r#"{{"name":"{name}","description":"Tool number {i}.","inputSchema":{{"type":"object","properties":{{"id":{{"type":"string"}}}}}}}}"#)
        })
        .collect();
    format!(
        r#"{{"jsonrpc":"2.0","id":2,"result":{{"tools":[{}]}}}}"#,
        entries.join(",")
    )
    .into_bytes()
}

fn filter() -> ListFilter {
    let policy = Policy::parse(POLICY, "customer-service.toml").unwrap();
    let state = Arc::new(PolicyState {
        policy,
        metadata_document: Bytes::new(),
        counters: Default::default(),
    });
    let principal = Principal::with_scopes(&["customer:read"]);
    ListFilter::new(Arc::new(principal), state).by_policy(true)
}

fn filter_answers(c: &mut Criterion) {
    let filter = filter();
    let mut group = c.benchmark_group("answer/filter_json");
    assert_eq!(filter.filter_json(CALL_RESULT), Ok(None));
    group.throughput(Throughput::Bytes(CALL_RESULT.len() as u64));
    group.bench_function("tools_call_result", |b| {
        b.iter(|| black_box(filter.filter_json(black_box(CALL_RESULT)).unwrap()))
    });
    let listing = listing(50);
    assert!(filter.filter_json(&listing).unwrap().is_some());
    group.throughput(Throughput::Bytes(listing.len() as u64));
    group.bench_function("tools_list_50", |b| {
        b.iter(|| black_box(filter.filter_json(black_box(&listing)).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, filter_answers);
criterion_main!(benches);
