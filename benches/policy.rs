//! A policy decision with 10 and 1,000 rules, exact names and globs. The tool decided is the
//! last rule's, the worst case for globs (tried in file order).

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use scopegate::policy::{Action, Policy, ScopeSet};

fn policy(rules: usize, glob: bool) -> Policy {
    let mut text = String::from("version = 1\ndefault = \"deny\"\n");
    for i in 0..rules {
        let name = if glob {
            format!("team{i}_*")
        } else {
            format!("team{i}_tool")
        };
        writeln!(
            text,
            "[[tools]]\nname = \"{name}\"\nscopes = [\"team{i}:use\", \"customer:read\"]"
        )
        .unwrap();
    }
    Policy::parse(&text, "bench.toml").unwrap()
}

fn decide(c: &mut Criterion) {
    let mut group = c.benchmark_group("policy/decide");
    for rules in [10, 1000] {
        for (kind, glob) in [("exact", false), ("glob", true)] {
            let policy = policy(rules, glob);
            let last = rules - 1;
            let tool = format!("team{last}_tool");
            let own = format!("team{last}:use");
            let scopes = ScopeSet::new(["customer:read", "ticket:create", own.as_str()]);
            let action = Action {
                method: "tools/call",
                target: Some(&tool),
            };
            assert!(policy.decide(&scopes, &action).is_allow());
            group.bench_function(format!("{kind}_{rules}_rules"), |b| {
                b.iter(|| {
                    black_box(policy.decide(black_box(&scopes), black_box(&action))).is_allow()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, decide);
criterion_main!(benches);
