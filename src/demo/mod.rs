//! The demo: a dev OAuth issuer and a sample MCP server, for `scopegate demo` and the integration
//! tests. Each piece starts on a loopback port in a few lines and hands back its bound address.
//! Owns nothing the proxy itself runs; none of it is meant for production.

pub mod issuer;
pub mod sample_server;
mod serve;
