//! A policy decision with 10 and 1,000 rules, exact names and globs (the tool decided is the last
//! rule's, the worst case for globs, tried in file order); and a decision under version 2
//! conditions: one tool with and without a `when`, and 1, 10 and 100 conditional rules, both as
//! tool rules (only the matching one is evaluated) and as `[[deny]]` rules (all are).

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use scopegate_core::policy::{Action, Arguments, ClaimsCache, Facts, Policy, ScopeSet};
use serde_json::value::RawValue;

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

/// The tenant-isolation condition on `rules` tools, or (`deny`) as many deny rules that never
/// match in front of one plain tool rule.
fn conditional_policy(rules: usize, deny: bool) -> Policy {
    let mut text = String::from("version = 2\n");
    for i in 0..rules {
        if deny {
            writeln!(
                text,
                "[[deny]]\nwhen = 'has(jwt.client_id) && jwt.client_id == \"blocked-{i}\"'\nreason = \"blocked\""
            )
            .unwrap();
        } else {
            writeln!(
                text,
                "[[tools]]\nname = \"team{i}_tool\"\nscopes = [\"customer:read\"]\nwhen = 'args.customer_id.startsWith(jwt.tenant)'"
            )
            .unwrap();
        }
    }
    if deny || rules == 0 {
        let last = rules.saturating_sub(1);
        writeln!(
            text,
            "[[tools]]\nname = \"team{last}_tool\"\nscopes = [\"customer:read\"]"
        )
        .unwrap();
    }
    Policy::parse(&text, "bench.toml").unwrap()
}

fn decide_with_conditions(c: &mut Criterion) {
    let mut group = c.benchmark_group("policy/conditions");
    let claims = serde_json::json!({ "tenant": "acme", "client_id": "web", "sub": "u1" });
    let claims = claims.as_object().unwrap().clone();
    // Kept with the verified token, so built once, as in the proxy.
    let cache = ClaimsCache::default();
    let arguments = RawValue::from_string(r#"{"customer_id":"acme-7","limit":10}"#.into()).unwrap();
    let scopes = ScopeSet::new(["customer:read"]);
    let mut shapes = vec![("plain_1_rule".to_string(), conditional_policy(0, false), 0)];
    for rules in [1, 10, 100] {
        shapes.push((
            format!("when_{rules}_rules"),
            conditional_policy(rules, false),
            rules,
        ));
        shapes.push((
            format!("deny_{rules}_rules"),
            conditional_policy(rules, true),
            rules,
        ));
    }
    for (name, policy, rules) in &shapes {
        let tool = format!("team{}_tool", rules.saturating_sub(1));
        let action = Action {
            method: "tools/call",
            target: Some(&tool),
        };
        let facts = Facts {
            claims: &claims,
            claims_cache: &cache,
            arguments: Arguments::Raw(Some(&arguments)),
        };
        assert!(
            policy.decide_with(&scopes, &action, &facts).is_allow(),
            "{name}"
        );
        group.bench_function(name.as_str(), |b| {
            b.iter(|| {
                black_box(policy.decide_with(
                    black_box(&scopes),
                    black_box(&action),
                    black_box(&facts),
                ))
                .is_allow()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decide, decide_with_conditions);
criterion_main!(benches);
