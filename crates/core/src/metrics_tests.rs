//! The metric lists held to the code that produces each label value, and every known series
//! present at 0 before anything happens.

use std::collections::BTreeSet;

use super::*;
use crate::ctx::Outcome;

fn status() -> JwksStatus {
    JwksStatus {
        keys: 0,
        last_success: None,
        fresh: false,
        fetch_successes: 0,
        fetch_failures: 0,
        consecutive_failures: 0,
    }
}

/// The value of the sample `series` (name and labels as rendered), if it is there.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn set<'a>(labels: impl IntoIterator<Item = &'a str>) -> BTreeSet<&'a str> {
    labels.into_iter().collect()
}

#[test]
fn label_lists_match_every_outcome_and_status_class_the_code_produces() {
    let outcomes = [Outcome::Allow, Outcome::WouldDeny, Outcome::Deny];
    for outcome in outcomes {
        match outcome {
            Outcome::Allow | Outcome::WouldDeny | Outcome::Deny => {}
        }
    }
    assert_eq!(set(outcomes.map(Outcome::label)), set(DECISIONS));
    let classes = [100, 200, 300, 400, 500]
        .map(|code| status_class(http::StatusCode::from_u16(code).expect("a status")));
    assert_eq!(set(classes), set(STATUS_CLASSES));
}

#[test]
fn every_known_label_value_is_at_zero_before_anything_happens() {
    let text = Metrics::new().render(&status());
    let zero = |series: String| {
        assert_eq!(sample(&text, &series), Some(0.0), "{series} in:\n{text}");
    };
    for method in known_methods().chain(UNNAMED_METHODS) {
        for decision in DECISIONS {
            zero(format!(
                "scopegate_requests_total{{decision=\"{decision}\",method=\"{method}\"}}"
            ));
        }
    }
    for decision in DECISIONS {
        zero(format!(
            "scopegate_tool_calls_total{{decision=\"{decision}\",tool=\"_other\"}}"
        ));
    }
    for reason in Reason::ALL {
        let auth = format!("scopegate_auth_failures_total{{reason=\"{reason}\"}}");
        if reason.is_token() {
            zero(auth);
        } else {
            assert_eq!(sample(&text, &auth), None, "{reason} is not a token's");
        }
        zero(format!("scopegate_denials_total{{reason=\"{reason}\"}}"));
    }
    for class in STATUS_CLASSES {
        zero(format!(
            "scopegate_upstream_responses_total{{class=\"{class}\"}}"
        ));
    }
    for result in RESULTS {
        for name in [
            "scopegate_jwks_fetch_total",
            "scopegate_policy_reload_total",
            "scopegate_tls_reload_total",
        ] {
            zero(format!("{name}{{result=\"{result}\"}}"));
        }
    }
    for name in [
        "scopegate_request_duration_seconds_count",
        "scopegate_upstream_duration_seconds_count",
        "scopegate_jwks_consecutive_failures",
        "scopegate_open_connections",
    ] {
        zero(name.to_owned());
    }
}

#[test]
fn a_loaded_policy_lists_its_rules_at_zero_and_a_reload_adds_new_ones() {
    let metrics = Metrics::new();
    let first = Policy::parse(
        "version = 1\n[[tools]]\nname = \"lookup\"\nscopes = []\n\
         [[tools]]\nname = \"admin_*\"\nscopes = [\"admin\"]\nrate_limit = \"5/m\"\n\
         [methods]\n\"prompts/get\" = { scopes = [], rate_limit = \"1/s\" }\n",
        "first.toml",
    )
    .expect("policy");
    metrics.policy_loaded(&first);
    let text = metrics.render(&status());
    for tool in ["lookup", "admin_*"] {
        for decision in DECISIONS {
            let series =
                format!("scopegate_tool_calls_total{{decision=\"{decision}\",tool=\"{tool}\"}}");
            assert_eq!(sample(&text, &series), Some(0.0), "{series}:\n{text}");
        }
    }
    for rule in ["admin_*", "prompts/get"] {
        let series = format!("scopegate_rate_limited_total{{tool=\"{rule}\"}}");
        assert_eq!(sample(&text, &series), Some(0.0), "{series}:\n{text}");
    }
    // A method rule is no tool, and a rule without a limit is never rate limited.
    assert!(!text.contains("scopegate_tool_calls_total{decision=\"allow\",tool=\"prompts/get\"}"));
    assert!(!text.contains("scopegate_rate_limited_total{tool=\"lookup\"}"));

    let second = Policy::parse(
        "version = 1\n[[tools]]\nname = \"report\"\nscopes = []\n",
        "second.toml",
    )
    .expect("policy");
    metrics.policy_loaded(&second);
    let text = metrics.render(&status());
    let hash = second.source_hash();
    assert_eq!(
        sample(&text, &format!("scopegate_policy_info{{hash=\"{hash}\"}}")),
        Some(1.0)
    );
    assert_eq!(text.matches("scopegate_policy_info{").count(), 1);
    for tool in ["report", "lookup"] {
        let series = format!("scopegate_tool_calls_total{{decision=\"deny\",tool=\"{tool}\"}}");
        assert_eq!(sample(&text, &series), Some(0.0), "{series}:\n{text}");
    }
}

#[test]
fn a_policys_counters_count_into_its_rules_own_series() {
    let metrics = Metrics::new();
    let policy = Policy::parse(
        "version = 1\n[[tools]]\nname = \"lookup\"\nscopes = []\n\
         [[tools]]\nname = \"admin_*\"\nscopes = []\nrate_limit = \"5/m\"\n\
         [methods]\n\"prompts/get\" = { scopes = [], rate_limit = \"1/s\" }\n",
        "counted.toml",
    )
    .expect("policy");
    let counters = metrics.policy_loaded(&policy);
    let index = |name: &str| (0..).find(|&i| policy.rule_name(i) == Some(name)).unwrap();
    counters.tool_calls(Some(index("admin_*"))).unwrap()[Outcome::Deny as usize].inc();
    counters.tool_calls(None).unwrap()[Outcome::Allow as usize].inc();
    // A method rule labels no tool call: such a call counts as `_other`.
    counters.tool_calls(Some(index("prompts/get"))).unwrap()[Outcome::WouldDeny as usize].inc();
    counters
        .rate_limited(Some(index("prompts/get")))
        .unwrap()
        .inc();
    counters.rate_limited(Some(index("lookup"))).unwrap().inc();
    let text = metrics.render(&status());
    for (series, value) in [
        (
            "scopegate_tool_calls_total{decision=\"deny\",tool=\"admin_*\"}",
            1.0,
        ),
        (
            "scopegate_tool_calls_total{decision=\"allow\",tool=\"admin_*\"}",
            0.0,
        ),
        (
            "scopegate_tool_calls_total{decision=\"allow\",tool=\"_other\"}",
            1.0,
        ),
        (
            "scopegate_tool_calls_total{decision=\"would_deny\",tool=\"_other\"}",
            1.0,
        ),
        (
            "scopegate_tool_calls_total{decision=\"allow\",tool=\"lookup\"}",
            0.0,
        ),
        ("scopegate_rate_limited_total{tool=\"prompts/get\"}", 1.0),
        ("scopegate_rate_limited_total{tool=\"_other\"}", 1.0),
        ("scopegate_rate_limited_total{tool=\"admin_*\"}", 0.0),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series}:\n{text}");
    }
}

#[test]
fn issuer_counters_count_each_issuer_by_outcome() {
    let metrics = Metrics::new();
    let issuers = metrics.issuers_configured(["https://a", "https://b"].into_iter());
    assert_eq!(issuers.label(1), Some("https://b"));
    assert_eq!(issuers.label(2), None);
    issuers.count(1, None);
    issuers.count(0, Some(Reason::BadSignature));
    // A reason that is not the token's is no issuer outcome.
    issuers.count(0, Some(Reason::BodyTooLarge));
    let text = metrics.render(&status());
    let series = |issuer: &str, outcome: &str| {
        format!("scopegate_issuer_auth_total{{issuer=\"{issuer}\",outcome=\"{outcome}\"}}")
    };
    assert_eq!(sample(&text, &series("https://b", ACCEPTED)), Some(1.0));
    assert_eq!(sample(&text, &series("https://a", ACCEPTED)), Some(0.0));
    assert_eq!(
        sample(&text, &series("https://a", Reason::BadSignature.as_str())),
        Some(1.0)
    );
    assert!(!text.contains("outcome=\"body_too_large\""), "{text}");
}

#[test]
fn upstream_answers_count_by_their_status_class() {
    let metrics = Metrics::new();
    for status in [101, 204, 200, 404, 503] {
        metrics.upstream_answered(http::StatusCode::from_u16(status).unwrap());
    }
    let text = metrics.render(&status());
    for (class, count) in [
        ("1xx", 1.0),
        ("2xx", 2.0),
        ("3xx", 0.0),
        ("4xx", 1.0),
        ("5xx", 1.0),
    ] {
        let series = format!("scopegate_upstream_responses_total{{class=\"{class}\"}}");
        assert_eq!(sample(&text, &series), Some(count), "{series}:\n{text}");
    }
}
