#![forbid(unsafe_code)]
//! scopegate: an authorization sidecar for MCP servers. The binary's subcommands live in
//! `main.rs`; everything they use is here, so the integration tests can start the real pieces.

pub mod auth;
pub mod client;
#[cfg(feature = "demo")]
pub mod demo;
pub mod mcp;
pub mod policy;
pub mod tls;
