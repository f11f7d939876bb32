//! Several issuers through the real proxy: each IdP's tokens verified with its own keys only,
//! every issuer advertised, counted per issuer. Later sections: opaque tokens (RFC 7662) and
//! sender-constrained tokens (DPoP, certificate-bound).

use crate::common;

mod dpop;
mod introspection;
pub(crate) mod mtls;

use common::{Options, TestSystem, header, read, sample, scrape, session_call};
use reqwest::header::HeaderMap;
use scopegate_core::auth::DPOP_ALGS;
use scopegate_testkit::issuer::{Issuer, IssuerConfig};
use serde_json::Value;

fn two_issuers() -> Options {
    Options {
        second_issuer: true,
        ..Options::default()
    }
}

/// Sends `request`, expected to be refused: status, headers, body; and asserts that nothing
/// reached the upstream.
pub(crate) async fn send_refused(
    t: &TestSystem,
    request: reqwest::RequestBuilder,
) -> (u16, HeaderMap, Value) {
    let before = t.upstream_requests();
    let answer = read(request.send().await.unwrap()).await;
    assert_eq!(
        t.upstream_requests(),
        before,
        "nothing reaches the upstream: {}",
        answer.2
    );
    answer
}

/// A refused tool call: status, challenge, body; and asserts that nothing reached the upstream.
pub(crate) async fn refused(t: &TestSystem, authorization: &str) -> (u16, String, Value) {
    let request = t
        .post(None, TestSystem::tool_call("get_customer_info", 7))
        .header("authorization", authorization);
    let (status, headers, body) = send_refused(t, request).await;
    (
        status,
        header(&headers, "www-authenticate").to_string(),
        body,
    )
}

/// What a refused request must show.
pub(crate) struct Refusal<'a> {
    pub status: u16,
    /// The challenge's scheme: `Bearer`, or `DPoP` (whose challenge also lists the proof
    /// algorithms).
    pub scheme: &'a str,
    /// The challenge's `error`.
    pub error: &'a str,
    /// The challenge's `error_description`.
    pub description: &'a str,
    /// The body's `reason`.
    pub reason: &'a str,
}

impl<'a> Refusal<'a> {
    /// A 401 with the `Bearer` `invalid_token` challenge.
    pub(crate) fn bearer(description: &'a str, reason: &'a str) -> Self {
        Self {
            status: 401,
            scheme: "Bearer",
            error: "invalid_token",
            description,
            reason,
        }
    }

    /// A 401 with a `DPoP` challenge.
    pub(crate) fn dpop(error: &'a str, description: &'a str, reason: &'a str) -> Self {
        Self {
            status: 401,
            scheme: "DPoP",
            error,
            description,
            reason,
        }
    }
}

/// Sends `request` and asserts the refusal `expected` describes: status, the whole challenge,
/// the body's reason, `token` in neither, and nothing upstream. `case` names the case in every
/// message. Returns the headers and body.
pub(crate) async fn assert_refused(
    t: &TestSystem,
    case: &str,
    request: reqwest::RequestBuilder,
    token: &str,
    expected: Refusal<'_>,
) -> (HeaderMap, Value) {
    let Refusal {
        status: want_status,
        scheme,
        error,
        description,
        reason,
    } = expected;
    let (status, headers, body) = send_refused(t, request).await;
    assert_eq!(status, want_status, "{case}: {body}");
    let metadata = scopegate_core::metadata::url_for(&t.system.resource);
    let algs = match scheme {
        "DPoP" => format!(", algs=\"{DPOP_ALGS}\""),
        _ => String::new(),
    };
    let challenge = header(&headers, "www-authenticate");
    assert_eq!(
        challenge,
        format!(
            "{scheme} resource_metadata=\"{metadata}\"{algs}, error=\"{error}\", error_description=\"{description}\""
        ),
        "{case}"
    );
    assert_eq!(body["error"]["data"]["reason"], reason, "{case}: {body}");
    assert!(
        !challenge.contains(token) && !body.to_string().contains(token),
        "{case}: the token is not echoed"
    );
    (headers, body)
}

/// [`assert_refused`] for a tool call with `token` as Bearer.
pub(crate) async fn assert_bearer_refused(
    t: &TestSystem,
    case: &str,
    token: &str,
    description: &str,
    reason: &str,
) -> (HeaderMap, Value) {
    let request = t.post(Some(token), TestSystem::tool_call("get_customer_info", 7));
    assert_refused(
        t,
        case,
        request,
        token,
        Refusal::bearer(description, reason),
    )
    .await
}

#[tokio::test]
async fn each_issuers_tokens_are_accepted_and_counted_under_that_issuer() {
    let t = common::start_with(two_issuers()).await;
    let first = &t.system.issuer;
    let second = t.system.second_issuer.as_ref().unwrap();
    for issuer in [first, second] {
        let token = issuer.mint(issuer.claims_for("tester", &["customer:read"]));
        let (status, body) = session_call(&t, &token, "get_customer_info", 3).await;
        assert_eq!(status, 200, "{}: {body}", issuer.issuer());
        assert!(body.to_string().contains("C001"), "{body}");
    }
    let metrics = scrape(&t).await;
    for issuer in [first, second] {
        // initialize, notifications/initialized and the call: three accepted tokens each.
        let series = format!(
            "scopegate_issuer_auth_total{{issuer=\"{}\",outcome=\"accepted\"}}",
            issuer.issuer()
        );
        assert_eq!(sample(&metrics, &series), Some(3.0), "{series}");
    }
}

#[tokio::test]
async fn a_token_naming_one_issuer_signed_with_the_others_key_is_refused() {
    let t = common::start_with(two_issuers()).await;
    let first = &t.system.issuer;
    let second = t.system.second_issuer.as_ref().unwrap();
    // The two dev issuers give their keys the same `kid`s.
    assert_eq!(first.default_kid(), second.default_kid());
    let forged = first.mint(second.claims_for("tester", &["customer:read"]));

    assert_bearer_refused(
        &t,
        "forged",
        &forged,
        "signature does not verify",
        "bad_signature",
    )
    .await;
    let metrics = scrape(&t).await;
    let series = format!(
        "scopegate_issuer_auth_total{{issuer=\"{}\",outcome=\"bad_signature\"}}",
        second.issuer()
    );
    assert_eq!(sample(&metrics, &series), Some(1.0), "{series}");
}

#[tokio::test]
async fn a_token_of_an_issuer_not_configured_is_refused_as_wrong_issuer_with_one_issuer_or_several()
{
    // `[auth]` with one issuer, and `[[auth.issuers]]` with two: either way the token names a
    // third IdP, running beside them unconfigured.
    for (case, options) in [
        ("one issuer", Options::default()),
        ("two issuers", two_issuers()),
    ] {
        let t = common::start_with(options).await;
        let first = &t.system.issuer;
        let stranger = Issuer::start(IssuerConfig::demo(&t.system.resource))
            .await
            .unwrap();
        // All name their key alike, so the `kid` alone would find the first issuer's key (and
        // with one issuer a token of another was once refused as `bad_signature`).
        assert_eq!(first.default_kid(), stranger.default_kid(), "{case}");
        let token = stranger.mint(stranger.claims_for("tester", &["customer:read"]));
        let fetches = first.jwks_requests();

        assert_bearer_refused(&t, case, &token, "issuer not accepted", "wrong_issuer").await;
        assert_eq!(
            first.jwks_requests(),
            fetches,
            "{case}: refused before any key lookup"
        );
        assert_eq!(
            stranger.jwks_requests(),
            0,
            "{case}: the stranger's keys are never fetched"
        );
    }
}

#[tokio::test]
async fn the_metadata_names_every_issuer() {
    let t = common::start_with(two_issuers()).await;
    let url = scopegate_core::metadata::url_for(&t.system.resource);
    let document: Value = t.http.get(url).send().await.unwrap().json().await.unwrap();
    let second = t.system.second_issuer.as_ref().unwrap();
    assert_eq!(
        document["authorization_servers"],
        serde_json::json!([t.system.issuer.issuer(), second.issuer()])
    );
}
