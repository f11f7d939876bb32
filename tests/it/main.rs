//! scopegate's integration tests, in one binary (one link of the real peers instead of one per
//! file): each module drives the real proxy process or its real pieces against real peers (the
//! test kit's issuer and sample MCP server, the official SDKs, redis-server), and asserts what a
//! user sees. Run one group with `cargo test --test it GROUP::`, e.g. `adversarial::`.

mod common;

mod adapter;
mod adversarial;
mod audit_verify;
mod auth;
mod dashboard;
mod demo;
mod deploy_rehearsal;
mod hardening;
mod idle;
mod inspection;
mod inspector_properties;
mod integrity;
mod interop_node;
mod issuers;
mod logging;
mod mcp2026;
mod oidc;
mod operations;
mod policy_cli;
mod policy_v2;
mod proxy;
mod python_sdk;
mod readme;
mod schemas;
mod soak;
mod state;
mod telemetry;
