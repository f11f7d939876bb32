//! The demo: a dev issuer and a sample MCP server, for `scopegate demo` and the tests.
