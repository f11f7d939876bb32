//! The official MCP Python SDK 2.x server (`tests/python/mcp_sdk_server.py`) as an upstream, for
//! the tests that need it (run by `.ci/python-sdk.sh` with `--ignored`, `SCOPEGATE_PYTHON`
//! naming a Python that has the SDK).

use std::process::Command;

pub fn python() -> String {
    std::env::var("SCOPEGATE_PYTHON")
        .expect("SCOPEGATE_PYTHON names a Python with the MCP SDK 2.x: run .ci/python-sdk.sh")
}

/// Starts the SDK server on a port of its choosing and returns it with its base URL
/// (`http://127.0.0.1:PORT`, the MCP endpoint at `/mcp`), read from the line uvicorn logs once
/// it listens.
pub fn start_server() -> (super::child::Running, String) {
    let mut command = Command::new(python());
    command.args(["tests/python/mcp_sdk_server.py", "0"]);
    super::child::start_listening(command)
}
