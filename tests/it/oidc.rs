//! Tokens from a certified identity provider through the real proxy: `oidc-provider` (npm,
//! OpenID-certified), two instances run by `tests/node/oidc_provider.mjs`, each issuing with the
//! client-credentials grant for one resource (RFC 8707). Its JWT access tokens (keys found through
//! discovery), its opaque ones (RFC 7662 introspection, RFC 7009 revocation), its DPoP-bound ones
//! (RFC 9449) and its certificate-bound ones (RFC 8705). The rmcp sample server is the upstream;
//! every refusal is checked for status, challenge, reason, and that nothing reached the upstream.
//!
//! Needs Node ≥ 22 and the pinned `oidc-provider`: `.ci/interop-node.sh` installs them and runs
//! this with `--ignored`, `SCOPEGATE_NODE_DIR` naming the directory it installed into.

use crate::common;
use crate::interop_node::node;
use crate::issuers::{assert_bearer_refused, refused};

mod certificate_bound;
mod sender_constrained;

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::child::Running;
use common::{Options, TestSystem, header, read};
use scopegate_testkit::issuer::form_encode;
use serde_json::{Value, json};

/// Every client's secret at the IdP (`tests/node/oidc_provider.mjs`).
const SECRET: &str = "oidc-test-secret";
/// The variable the proxy reads its introspection client's secret from.
const SECRET_ENV: &str = "OIDC_INTROSPECTION_SECRET";
/// How long the proxy reuses an introspection answer in these tests: a revoked token is
/// refused this long after its revocation at worst.
const CACHE_TTL_SECS: u64 = 1;

/// The two identity providers, started once for all the tests of this module (each token is
/// asked for by the test that uses it, so the tests share nothing else). The process stops when
/// the test binary's end closes its standard input.
struct Idp {
    _process: Running,
    issuers: [String; 2],
}

/// A client for the IdP's endpoints. One per call: a client's pooled connections belong to the
/// runtime of the test that opened them, and each test has its own.
fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn idp() -> &'static Idp {
    static IDP: OnceLock<Idp> = OnceLock::new();
    IDP.get_or_init(|| {
        let mut command = node();
        command.arg("oidc_provider.mjs");
        let (process, line) = common::child::start_announcing(command);
        let announced: Value = serde_json::from_str(&line).expect("the IdP announces JSON");
        let issuer = |i: usize| announced["issuers"][i].as_str().unwrap().to_string();
        Idp {
            _process: process,
            issuers: [issuer(0), issuer(1)],
        }
    })
}

impl Idp {
    /// An endpoint of `issuer` as its OpenID Connect discovery document names it.
    async fn endpoint(&self, issuer: &str, member: &str) -> String {
        let url = format!("{issuer}/.well-known/openid-configuration");
        let metadata: Value = http().get(url).send().await.unwrap().json().await.unwrap();
        metadata[member].as_str().expect(member).to_string()
    }

    /// The token endpoint's answer to `client`'s client-credentials request for `scope` at
    /// `resource`, with these extra headers (a DPoP proof, a client certificate).
    async fn token_response(
        &self,
        issuer: &str,
        client: &str,
        resource: &str,
        scope: &str,
        headers: &[(&str, String)],
    ) -> Value {
        let mut request = http()
            .post(self.endpoint(issuer, "token_endpoint").await)
            .basic_auth(client, Some(SECRET))
            .header("content-type", FORM)
            .body(form(&[
                ("grant_type", "client_credentials"),
                ("scope", scope),
                ("resource", resource),
            ]));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "token endpoint: {body}");
        body
    }

    /// An access token for `client`, `scope` and `resource`, with no sender constraint.
    async fn token(&self, issuer: &str, client: &str, resource: &str, scope: &str) -> String {
        let body = self
            .token_response(issuer, client, resource, scope, &[])
            .await;
        assert_eq!(body["token_type"], "Bearer", "{body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    /// Revokes `token` at `issuer` (RFC 7009), as `client`, the client it was issued to.
    async fn revoke(&self, issuer: &str, client: &str, token: &str) {
        let response = http()
            .post(self.endpoint(issuer, "revocation_endpoint").await)
            .basic_auth(client, Some(SECRET))
            .header("content-type", FORM)
            .body(form(&[
                ("token", token),
                ("token_type_hint", "access_token"),
            ]))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
}

const FORM: &str = "application/x-www-form-urlencoded";

/// An `application/x-www-form-urlencoded` body.
fn form(fields: &[(&str, &str)]) -> String {
    let pairs: Vec<String> = fields
        .iter()
        .map(|(name, value)| format!("{}={}", form_encode(name), form_encode(value)))
        .collect();
    pairs.join("&")
}

/// The proxy's `[auth]` table for these issuers: each by discovery (no `jwks_uri`), for this
/// resource, ES256 as the IdP signs; the first also introspects opaque tokens as `scopegate`.
fn auth_table(issuers: &[&str]) -> String {
    let mut table = String::new();
    for (i, issuer) in issuers.iter().enumerate() {
        table.push_str(&format!(
            "[[auth.issuers]]\nissuer = \"{issuer}\"\naudiences = [\"{{resource}}\"]\nalgorithms = [\"ES256\"]\n"
        ));
        if i == 0 {
            table.push_str(&format!(
                "[auth.issuers.introspection]\nclient_id = \"scopegate\"\nclient_secret_env = \"{SECRET_ENV}\"\ncache_ttl = \"{CACHE_TTL_SECS}s\"\n"
            ));
        }
    }
    table
}

/// The proxy (customer-service policy, rmcp sample server) trusting these issuers.
async fn proxy_trusting(issuers: &[&str]) -> TestSystem {
    common::start_with(Options {
        auth_table: Some(auth_table(issuers)),
        env: vec![(SECRET_ENV.into(), SECRET.into())],
        ..Options::default()
    })
    .await
}

/// The first issuer, and the proxy trusting it alone.
async fn proxy_trusting_the_first() -> (&'static str, TestSystem) {
    let first = idp().issuers[0].as_str();
    (first, proxy_trusting(&[first]).await)
}

/// The claims of a JWT, unverified: what the IdP put in the token it issued.
fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// An `initialize` request body.
fn initialize() -> String {
    json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": { "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "t", "version": "1" } }
    })
    .to_string()
}

/// `request` in the session, once there is one.
fn in_session(request: reqwest::RequestBuilder, session: Option<&str>) -> reqwest::RequestBuilder {
    match session {
        Some(session) => request.header("mcp-session-id", session),
        None => request,
    }
}

/// Opens a session (`initialize`, `notifications/initialized`) and calls `get_customer_info`
/// in it, each request built by `request` from its body and the session; asserts the sample
/// server's answer came back. `case` names the case in every message.
async fn assert_reaches_the_tool_via(
    t: &TestSystem,
    case: &str,
    request: impl Fn(String, Option<&str>) -> reqwest::RequestBuilder,
) {
    let send = async |body: String, session: Option<&str>| {
        read(request(body, session).send().await.unwrap()).await
    };
    let (status, headers, body) = send(initialize(), None).await;
    assert_eq!(status, 200, "{case}: {body}");
    let session = header(&headers, "mcp-session-id").to_string();
    let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    send(initialized.to_string(), Some(&session)).await;
    let before = t.upstream_requests();
    let call = TestSystem::tool_call("get_customer_info", 2);
    let (status, _, body) = send(call, Some(&session)).await;
    assert_eq!(status, 200, "{case}: {body}");
    assert!(body.to_string().contains("C001"), "{case}: {body}");
    assert!(
        t.upstream_requests() > before,
        "{case}: the call reached the upstream"
    );
}

/// [`assert_reaches_the_tool_via`] with `token` as Bearer.
async fn assert_reaches_the_tool(t: &TestSystem, case: &str, token: &str) {
    assert_reaches_the_tool_via(t, case, |body, session| {
        in_session(t.post(Some(token), body), session)
    })
    .await;
}

#[tokio::test]
#[ignore = "needs Node and oidc-provider: .ci/interop-node.sh"]
async fn jwt_and_opaque_access_tokens_of_the_idp_reach_the_tool() {
    let idp = idp();
    let (first, t) = proxy_trusting_the_first().await;
    // The JWT is verified with keys found by discovery; the opaque token is introspected at
    // the IdP.
    for client in ["jwt-agent", "opaque-agent"] {
        let token = idp
            .token(first, client, &t.system.resource, "customer:read")
            .await;
        if client == "jwt-agent" {
            let claims = jwt_claims(&token);
            assert_eq!(
                (claims["iss"].as_str(), claims["aud"].as_str()),
                (Some(first), Some(t.system.resource.as_str())),
                "{client}: {claims}"
            );
        } else {
            assert_eq!(
                token.split('.').count(),
                1,
                "{client}: an opaque token: {token}"
            );
        }
        assert_reaches_the_tool(&t, client, &token).await;
    }
}

#[tokio::test]
#[ignore = "needs Node and oidc-provider: .ci/interop-node.sh"]
async fn jwt_and_opaque_access_tokens_for_another_resource_are_refused() {
    let idp = idp();
    let (first, t) = proxy_trusting_the_first().await;
    for client in ["jwt-agent", "opaque-agent"] {
        let token = idp
            .token(
                first,
                client,
                "https://other.example.com/mcp",
                "customer:read",
            )
            .await;
        assert_bearer_refused(
            &t,
            client,
            &token,
            "audience not accepted",
            "wrong_audience",
        )
        .await;
    }
}

#[tokio::test]
#[ignore = "needs Node and oidc-provider: .ci/interop-node.sh"]
async fn the_second_issuers_token_is_accepted_when_both_issuers_are_configured() {
    let idp = idp();
    let [first, second] = [idp.issuers[0].as_str(), idp.issuers[1].as_str()];
    let t = proxy_trusting(&[first, second]).await;
    for issuer in [first, second] {
        let token = idp
            .token(issuer, "jwt-agent", &t.system.resource, "customer:read")
            .await;
        assert_reaches_the_tool(&t, issuer, &token).await;
    }
}

#[tokio::test]
#[ignore = "needs Node and oidc-provider: .ci/interop-node.sh"]
async fn the_second_issuers_token_is_refused_when_only_the_first_is_configured() {
    let idp = idp();
    let [first, second] = [idp.issuers[0].as_str(), idp.issuers[1].as_str()];
    let t = proxy_trusting(&[first]).await;
    let token = idp
        .token(second, "jwt-agent", &t.system.resource, "customer:read")
        .await;
    // Both IdPs name their key alike, so the `kid` alone would find the first's key. The proxy
    // reads `iss` first, with one issuer as with several, and refuses an issuer it does not
    // know before any signature work.
    assert_eq!(
        jwt_claims(&token)["iss"].as_str(),
        Some(second),
        "the token names the second issuer"
    );
    assert_bearer_refused(&t, second, &token, "issuer not accepted", "wrong_issuer").await;
}

#[tokio::test]
#[ignore = "needs Node and oidc-provider: .ci/interop-node.sh"]
async fn the_scopes_the_idp_granted_are_the_ones_the_policy_sees() {
    let idp = idp();
    let (first, t) = proxy_trusting_the_first().await;
    // get_customer_info needs customer:read; these tokens hold ticket:create only.
    for client in ["jwt-agent", "opaque-agent"] {
        let token = idp
            .token(first, client, &t.system.resource, "ticket:create")
            .await;
        let (status, challenge, body) = refused(&t, &format!("Bearer {token}")).await;
        assert_eq!(status, 403, "{client}: {body}");
        assert!(
            challenge.starts_with(
                "Bearer error=\"insufficient_scope\", scope=\"customer:read ticket:create\""
            ),
            "{client}: {challenge}"
        );
        assert_eq!(body["error"]["data"]["reason"], "insufficient_scope");
        assert_eq!(
            body["error"]["data"]["missing_scopes"],
            json!(["customer:read"])
        );
    }
}

#[tokio::test]
#[ignore = "needs Node and oidc-provider: .ci/interop-node.sh"]
async fn a_revoked_opaque_token_is_refused_once_its_cached_answer_expires() {
    let idp = idp();
    let (first, t) = proxy_trusting_the_first().await;
    let token = idp
        .token(first, "opaque-agent", &t.system.resource, "customer:read")
        .await;
    assert_reaches_the_tool(&t, "before its revocation", &token).await;

    idp.revoke(first, "opaque-agent", &token).await;
    // The proxy reuses the active answer up to its cache ttl, then asks again and hears
    // `active: false`.
    let within = std::time::Duration::from_secs(CACHE_TTL_SECS + 10);
    let refused_now = common::eventually(within, async || {
        let response = t.post(Some(&token), initialize()).send().await;
        read(response.unwrap()).await.0 == 401
    })
    .await;
    assert!(
        refused_now,
        "the revoked token is refused within {within:?}"
    );
    assert_bearer_refused(&t, "revoked", &token, "token is not active", "inactive").await;
}
