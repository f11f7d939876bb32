//! JSON-RPC inspection of MCP request bodies.
