//! What an operator sees of a proxy no request has reached yet: every known metric series at 0
//! from the first scrape (and a reloaded policy's new rules as soon as it loads), and signing keys
//! refreshed in the background on their lifetime, failures counted, until the proxy stops.

use crate::common;

use std::time::Duration;

use common::{Options, TestSystem, eventually, sample, scrape};

async fn metric(t: &TestSystem, series: &str) -> Option<f64> {
    sample(&scrape(t).await, series)
}

fn assert_zero(metrics: &str, series: &str) {
    assert_eq!(
        sample(metrics, series),
        Some(0.0),
        "{series} in:\n{metrics}"
    );
}

const DECISIONS: [&str; 3] = ["allow", "would_deny", "deny"];

/// Key set lifetimes of a few hundred milliseconds: the demo issuer says `max-age=300`, which
/// `max_ttl` cuts short.
fn short_key_lifetime(max_stale: &str) -> Options {
    Options {
        auth_settings: format!(
            "[auth.jwks]\nmin_ttl = \"100ms\"\nmax_ttl = \"200ms\"\nrefetch_interval = \"100ms\"\nmax_stale = \"{max_stale}\""
        ),
        ..Options::default()
    }
}

#[tokio::test]
async fn every_known_series_is_at_zero_before_any_traffic() {
    let t = common::start().await;
    let metrics = scrape(&t).await;

    // 25 MCP methods (2026-07-28's and the tasks' among them) and `_get`, `_delete`, `_none`,
    // `_other`, by three decisions.
    let requests = metrics
        .lines()
        .filter(|line| line.starts_with("scopegate_requests_total{"));
    assert_eq!(requests.clone().count(), 29 * 3, "{metrics}");
    assert!(
        requests.clone().all(|line| line.ends_with(" 0")),
        "{metrics}"
    );
    for method in [
        "initialize",
        "server/discover",
        "subscriptions/listen",
        "tasks/get",
        "tools/call",
        "tools/list",
        "_none",
        "_other",
    ] {
        for decision in DECISIONS {
            assert_zero(
                &metrics,
                &format!("scopegate_requests_total{{decision=\"{decision}\",method=\"{method}\"}}"),
            );
        }
    }
    // The policy's tools, and calls no rule names.
    for tool in [
        "get_customer_info",
        "get_recent_customers",
        "create_support_ticket",
        "calculate_account_value",
        "_other",
    ] {
        for decision in DECISIONS {
            assert_zero(
                &metrics,
                &format!("scopegate_tool_calls_total{{decision=\"{decision}\",tool=\"{tool}\"}}"),
            );
        }
    }
    for reason in [
        "missing_token",
        "expired",
        "bad_signature",
        "unknown_key",
        "keys_unavailable",
    ] {
        assert_zero(
            &metrics,
            &format!("scopegate_auth_failures_total{{reason=\"{reason}\"}}"),
        );
    }
    for reason in [
        "insufficient_scope",
        "no_rule",
        "expired",
        "duplicate_key",
        "header_mismatch",
        "task_not_found",
        "rate_limited",
        "upstream_unreachable",
    ] {
        assert_zero(
            &metrics,
            &format!("scopegate_denials_total{{reason=\"{reason}\"}}"),
        );
    }
    for class in ["2xx", "4xx", "5xx"] {
        assert_zero(
            &metrics,
            &format!("scopegate_upstream_responses_total{{class=\"{class}\"}}"),
        );
    }
    for series in [
        r#"scopegate_jwks_fetch_total{result="failure"}"#,
        r#"scopegate_policy_reload_total{result="success"}"#,
        r#"scopegate_policy_reload_total{result="failure"}"#,
        r#"scopegate_tls_reload_total{result="success"}"#,
        r#"scopegate_tls_reload_total{result="failure"}"#,
        "scopegate_jwks_consecutive_failures",
        "scopegate_request_duration_seconds_count",
        "scopegate_upstream_duration_seconds_count",
    ] {
        assert_zero(&metrics, series);
    }
    assert_eq!(
        sample(&metrics, r#"scopegate_jwks_fetch_total{result="success"}"#),
        Some(1.0)
    );
    assert_eq!(t.upstream_requests(), 0);
}

#[tokio::test]
async fn a_tool_added_by_a_policy_reload_is_listed_at_zero() {
    let policy =
        "version = 1\n[[tools]]\nname = \"get_customer_info\"\nscopes = [\"customer:read\"]\n";
    let t = common::start_with(Options {
        policy: Some(policy.into()),
        ..Options::default()
    })
    .await;
    let added = r#"scopegate_tool_calls_total{decision="deny",tool="export_report"}"#;
    let limited = r#"scopegate_rate_limited_total{tool="export_report"}"#;
    let metrics = scrape(&t).await;
    assert_eq!(sample(&metrics, added), None);
    assert_eq!(sample(&metrics, limited), None);

    let path = t.system.config_file.with_file_name("policy.toml");
    let staged = path.with_extension("toml.tmp");
    let reloaded = format!(
        "{policy}[[tools]]\nname = \"export_report\"\nscopes = [\"report:export\"]\nrate_limit = \"5/m\"\n"
    );
    std::fs::write(&staged, reloaded).unwrap();
    std::fs::rename(&staged, &path).unwrap();
    assert!(
        eventually(Duration::from_secs(10), async || metric(
            &t,
            r#"scopegate_policy_reload_total{result="success"}"#
        )
        .await
            == Some(1.0))
        .await,
        "the policy was never reloaded"
    );
    let metrics = scrape(&t).await;
    for decision in DECISIONS {
        assert_zero(
            &metrics,
            &format!(
                "scopegate_tool_calls_total{{decision=\"{decision}\",tool=\"export_report\"}}"
            ),
        );
    }
    assert_zero(&metrics, limited);
    assert_eq!(t.upstream_requests(), 0);
}

#[tokio::test]
async fn idle_proxy_refetches_its_keys_when_their_lifetime_ends() {
    let t = common::start_with(short_key_lifetime("1h")).await;
    let issuer = &t.system.issuer;
    let fetched = issuer.jwks_requests();
    assert!(
        eventually(Duration::from_secs(10), async || issuer.jwks_requests()
            >= fetched + 2)
        .await,
        "no refetch without a request"
    );
    let metrics = scrape(&t).await;
    assert!(
        sample(&metrics, r#"scopegate_jwks_fetch_total{result="success"}"#)
            .is_some_and(|n| n >= 3.0),
        "{metrics}"
    );
    assert_zero(&metrics, "scopegate_jwks_consecutive_failures");
    // No request came in: every request count is still 0.
    assert!(
        metrics
            .lines()
            .filter(|line| line.starts_with("scopegate_requests_total{"))
            .all(|line| line.ends_with(" 0")),
        "{metrics}"
    );
}

#[tokio::test]
async fn failed_key_refresh_is_counted_and_the_last_keys_serve_until_max_stale() {
    let t = common::start_with(short_key_lifetime("3s")).await;
    let token = t.token(&["customer:read"]);
    t.system.issuer.set_jwks_down(true);
    assert!(
        eventually(Duration::from_secs(10), async || metric(
            &t,
            "scopegate_jwks_consecutive_failures"
        )
        .await
        .is_some_and(|n| n >= 1.0))
        .await,
        "a failed refresh was not counted"
    );
    let metrics = scrape(&t).await;
    assert!(
        sample(&metrics, r#"scopegate_jwks_fetch_total{result="failure"}"#)
            .is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    // Stale, within max_stale: the last good keys still verify, and the call goes upstream.
    let call = || t.post(Some(&token), TestSystem::tool_call("get_customer_info", 1));
    let before = t.upstream_requests();
    let status = call().send().await.unwrap().status();
    assert!(t.upstream_requests() > before, "refused with {status}");

    // Past max_stale: refused with 503 (the token may be fine), and nothing reaches the upstream.
    assert!(
        eventually(Duration::from_secs(15), async || call()
            .send()
            .await
            .unwrap()
            .status()
            == 503)
        .await,
        "the stale keys kept verifying"
    );
    let refused = t.upstream_requests();
    let response = call().send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(common::header(response.headers(), "retry-after"), "5");
    assert_eq!(
        t.upstream_requests(),
        refused,
        "a refused call reached the upstream"
    );
    assert!(
        metric(&t, "scopegate_jwks_consecutive_failures")
            .await
            .is_some_and(|n| n >= 2.0)
    );

    // The IdP answers again: the refresher picks the keys up without a request's help.
    t.system.issuer.set_jwks_down(false);
    assert!(
        eventually(Duration::from_secs(10), async || metric(
            &t,
            "scopegate_jwks_consecutive_failures"
        )
        .await
            == Some(0.0))
        .await,
        "never recovered"
    );
    let status = call().send().await.unwrap().status();
    assert!(t.upstream_requests() > refused, "refused with {status}");
}

#[tokio::test]
async fn stopped_proxy_refetches_no_more_keys() {
    let mut t = common::start_with(short_key_lifetime("1h")).await;
    let fetched = t.system.issuer.jwks_requests();
    assert!(
        eventually(Duration::from_secs(10), async || t
            .system
            .issuer
            .jwks_requests()
            > fetched)
        .await,
        "the refresher never ran"
    );
    t.system
        .proxy
        .take()
        .expect("in-process proxy")
        .stop()
        .await;
    // A fetch already on its way may still land; none starts after it.
    let stopped = t.system.issuer.jwks_requests();
    assert!(
        !eventually(Duration::from_secs(1), async || t
            .system
            .issuer
            .jwks_requests()
            > stopped + 1)
        .await,
        "keys fetched after the proxy stopped"
    );
}
