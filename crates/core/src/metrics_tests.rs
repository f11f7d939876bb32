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
