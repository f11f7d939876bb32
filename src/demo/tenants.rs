//! The demo's tenant-isolation scenarios: a second proxy enforcing the shipped
//! `policies/tenant-isolation.toml` (a version 2 condition on the token's `tenant` claim), in
//! front of its own sample server and issuer, and a client of tenant `acme` reading its own
//! customer and then another tenant's. Owns that system's lifetime; the client and the table are
//! the other scenarios' (`scenarios.rs`).

use anyhow::Context as _;
use http::StatusCode;
use serde_json::json;

use super::scenarios::{DemoClient, Outcome, outcome};
use scopegate_core::client;
use scopegate_testkit::private_dir::PrivateDir;
use scopegate_testkit::system::{DemoSystem, SystemOptions, TENANT_ISOLATION_POLICY};

/// The tenant client of the demo issuer (its tokens carry `tenant = "acme"`).
const TENANT_CLIENT: &str = "acme-agent";

/// Starts the tenant-isolated system, plays its two calls and stops it; its files are removed
/// on return, so the main demo's folder holds only its own.
pub(super) async fn play() -> anyhow::Result<Vec<Outcome>> {
    let dir = PrivateDir::create().context("cannot create the tenant demo's folder")?;
    let options = SystemOptions {
        policy: Some(TENANT_ISOLATION_POLICY.to_owned()),
        ..SystemOptions::default()
    };
    let system = DemoSystem::start_with(dir.path(), options)
        .await
        .context("cannot start the tenant-isolation proxy")?;
    let outcomes = calls(&system).await;
    system.stop().await;
    outcomes
}

async fn calls(system: &DemoSystem) -> anyhow::Result<Vec<Outcome>> {
    let http = client::build(Some(&system.certs.ca), std::time::Duration::from_secs(5))?;
    let client = DemoClient { http, system };
    let token = client.token(TENANT_CLIENT).await?;
    let session = client.open_session(&token).await?;
    let mut outcomes = Vec::new();
    for (scenario, customer, expected) in [
        ("tenant reads its own customer", "acme-7", StatusCode::OK),
        (
            "tenant reads another tenant's",
            "globex-1",
            StatusCode::FORBIDDEN,
        ),
    ] {
        let upstream_before = system.upstream.requests();
        let answer = client
            .call_tool(
                Some(&token),
                Some(&session),
                "get_customer_info",
                json!({ "customer_id": customer }),
            )
            .await?;
        let mut row = outcome(
            scenario,
            TENANT_CLIENT,
            &format!("get_customer_info {customer}"),
            expected,
            &answer,
        );
        // The refusal's reason is what this scenario shows (no scope would lift it), and the
        // sample server never saw the call.
        if let Some(reason) = answer.body["error"]["data"]["reason"].as_str() {
            row.as_told =
                reason == "condition_failed" && system.upstream.requests() == upstream_before;
            row.detail = format!("{reason}: {}", row.detail);
        }
        outcomes.push(row);
    }
    Ok(outcomes)
}
