#![forbid(unsafe_code)]
//! scopegate's peers on loopback, for `scopegate demo` and the integration tests: a dev OAuth
//! issuer and its signing keys, a switchable JWKS server, a sample MCP server, a scripted model
//! speaking the OpenAI wire format, and the whole system (issuer, server, proxy, adapter) started
//! together. None of it is meant for production, and the sidecar build never links it.

pub mod certs;
pub mod dpop_key;
pub mod issuer;
mod issuer_opaque;
pub mod jwks_server;
pub mod keys;
pub mod private_dir;
pub mod process;
pub mod sample_server;
pub mod scripted_model;
mod serve;
pub mod system;
