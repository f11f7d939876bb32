//! Inspecting `tools/call` bodies of 200 B, 4 KiB and 256 KiB, and one of 4 KiB of decimals: the
//! one pass that finds every message's method, tool and id and refuses malformed or ambiguous JSON.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use scopegate_core::mcp::{InspectLimits, inspect};

/// A `tools/call` body of about `size` bytes: the bulk in one string argument, as a note or a
/// document passed to a tool would be.
fn body(size: usize) -> Vec<u8> {
    let head = r#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"create_support_ticket","arguments":{"customer_id":"C-1001","priority":"high","description":""#;
    let tail = r#""},"_meta":{"progressToken":"p-42"}}}"#;
    let fill = size.saturating_sub(head.len() + tail.len());
    let text: String = "Customer reports the export stalls at 80 %. "
        .chars()
        .cycle()
        .take(fill)
        .collect();
    format!("{head}{text}{tail}").into_bytes()
}

/// A `tools/call` body of about `size` bytes whose arguments are a series of decimals as a
/// program writes them (shortest round-trip form, often 16 or 17 digits): the case in which
/// serde_json's exact float parsing (`float_roundtrip`) costs most.
fn numbers_body(size: usize) -> Vec<u8> {
    let head = r#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"record_readings","arguments":{"series":["#;
    let tail = "]}}}";
    let mut numbers = String::new();
    let mut i = 0u32;
    while head.len() + numbers.len() + tail.len() < size {
        if i > 0 {
            numbers.push(',');
        }
        numbers.push_str(&(f64::from(i) * 0.1 + 0.01).to_string());
        i += 1;
    }
    format!("{head}{numbers}{tail}").into_bytes()
}

fn inspect_bodies(c: &mut Criterion) {
    let limits = InspectLimits::default();
    let mut group = c.benchmark_group("inspect/tools_call");
    for (label, size) in [("200B", 200), ("4KiB", 4096), ("256KiB", 256 * 1024)] {
        let body = body(size);
        assert!(inspect(&body, &limits).is_ok());
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(label, |b| {
            b.iter(|| black_box(inspect(black_box(&body), &limits).unwrap().messages.len()))
        });
    }
    let body = numbers_body(4096);
    assert!(inspect(&body, &limits).is_ok());
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("4KiB_decimals", |b| {
        b.iter(|| black_box(inspect(black_box(&body), &limits).unwrap().messages.len()))
    });
    group.finish();
}

criterion_group!(benches, inspect_bodies);
criterion_main!(benches);
