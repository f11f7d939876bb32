//! The Grafana dashboard (deploy/grafana/scopegate.json) queries only what the proxy exports:
//! every metric name in every PromQL expression is checked against a live `/metrics` page.
//! (Its shape is checked against Grafana's dashboard model by `.ci/grafana.sh`.)

use crate::common;

use std::collections::BTreeSet;

use serde_json::Value;

const DASHBOARD: &str = include_str!("../../deploy/grafana/scopegate.json");

/// PromQL words that are not metric names: aggregation modifiers, set operators, modifiers.
const KEYWORDS: [&str; 10] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
];

/// The metric names an expression reads: identifiers that are not functions, keywords or
/// labels (label matchers, ranges, strings and `by (…)` lists are skipped).
fn metric_names(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    let skip_to = |i: &mut usize, open: char, close: char| {
        let mut depth = 0;
        while *i < chars.len() {
            if chars[*i] == open {
                depth += 1;
            } else if chars[*i] == close {
                depth -= 1;
                if depth == 0 {
                    *i += 1;
                    return;
                }
            }
            *i += 1;
        }
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '{' {
            skip_to(&mut i, '{', '}');
        } else if c == '[' {
            skip_to(&mut i, '[', ']');
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += 1;
            }
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next] == ' ' {
                next += 1;
            }
            let rest: String = chars[next..].iter().collect();
            // `sum by (le) (…)`: an aggregation whose grouping comes before its argument.
            let grouped = rest.starts_with("by ")
                || rest.starts_with("by(")
                || rest.starts_with("without ")
                || rest.starts_with("without(");
            let called = grouped || (next < chars.len() && chars[next] == '(');
            if KEYWORDS.contains(&word.as_str()) {
                if called {
                    i = next;
                    skip_to(&mut i, '(', ')');
                }
            } else if !called {
                names.push(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// Every series name a scrape can be queried by: each family's name, and a histogram's
/// `_bucket`, `_sum` and `_count`.
fn exported(metrics: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        names.insert(name.to_string());
        if kind == "histogram" || kind == "summary" {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
    }
    names
}

/// Every PromQL expression in the dashboard: panel targets and query variables.
fn expressions(dashboard: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        let title = panel["title"].as_str().unwrap_or("").to_string();
        for target in panel["targets"].as_array().into_iter().flatten() {
            found.push((title.clone(), target["expr"].as_str().unwrap().to_string()));
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(query) = variable["query"]["query"].as_str() {
            found.push((format!("${}", variable["name"]), query.to_string()));
        }
    }
    found
}

#[test]
fn metric_names_are_read_from_promql() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.99, sum by (le) (rate(a_bucket{job=~"$job"}[$__rate_interval]))) > 0"#
        ),
        ["a_bucket"]
    );
    assert_eq!(
        metric_names("min(b{x=\"y\"}) - time() + count by (hash) (c)"),
        ["b", "c"]
    );
    assert_eq!(metric_names("label_values(d, job)"), ["d", "job"]);
}

/// With several issuers trusted, the auth-failures panel has to say whose tokens are refused:
/// one query splits by issuer and outcome, and the refusals no issuer is named for stay visible.
#[test]
fn auth_failures_panel_splits_refusals_by_issuer() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let panel = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|panel| {
            panel["title"]
                .as_str()
                .unwrap_or("")
                .starts_with("Auth failures")
        })
        .expect("an auth-failures panel");
    let queries: Vec<(&str, &str)> = panel["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["expr"].as_str().unwrap(),
                t["legendFormat"].as_str().unwrap(),
            )
        })
        .collect();
    let by_issuer = queries.iter().find(|(expr, _)| {
        metric_names(expr) == ["scopegate_issuer_auth_total"]
            && expr.contains("by (issuer, outcome)")
    });
    let (_, legend) = by_issuer.expect("a query by issuer and outcome");
    assert!(
        legend.contains("{{issuer}}"),
        "legend {legend} hides the issuer"
    );
    assert!(
        queries
            .iter()
            .any(|(expr, _)| metric_names(expr)
                .contains(&"scopegate_auth_failures_total".to_string())),
        "refusals without an issuer (no token, unknown issuer) are not shown"
    );
}

#[tokio::test]
async fn every_dashboard_query_names_a_metric_the_proxy_exports() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    // A rate-limited rule, as a deployment that limits has: its series exist from the start.
    let t = common::start_with(common::Options {
        policy: Some(
            "version = 1\n[[tools]]\nname = \"get_customer_info\"\nscopes = [\"customer:read\"]\nrate_limit = \"100/m\"\n"
                .into(),
        ),
        ..common::Options::default()
    })
    .await;
    // One decided call, so that every family has been touched at least once.
    let (status, _) =
        common::session_call(&t, &t.token(&["customer:read"]), "get_customer_info", 1).await;
    assert_eq!(status, 200);
    let live = exported(&common::scrape(&t).await);

    let mut read = BTreeSet::new();
    for (title, expr) in expressions(&dashboard) {
        let names = metric_names(&expr);
        // label_values(metric, label): only its first argument is a metric.
        let names = if expr.starts_with("label_values(") {
            names[..1].to_vec()
        } else {
            names
        };
        assert!(!names.is_empty(), "{title}: {expr} reads no metric");
        for name in names {
            assert!(
                live.contains(&name),
                "{title}: {expr} reads {name}, which /metrics does not export"
            );
            read.insert(name.trim_end_matches("_bucket").to_string());
        }
    }
    // Each part of the issue's list has a panel: the dashboard is not allowed to lose one.
    for family in [
        "scopegate_tool_calls_total",
        "scopegate_denials_total",
        "scopegate_auth_failures_total",
        "scopegate_issuer_auth_total",
        "scopegate_request_duration_seconds",
        "scopegate_upstream_duration_seconds",
        "scopegate_jwks_age_seconds",
        "scopegate_jwks_fetch_total",
        "scopegate_policy_reload_total",
        "scopegate_tls_cert_expiry_timestamp_seconds",
        "scopegate_rate_limited_total",
        "scopegate_open_connections",
    ] {
        assert!(read.contains(family), "no panel reads {family}");
    }
}
