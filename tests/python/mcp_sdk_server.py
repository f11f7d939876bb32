"""A dual-era MCP server on the official Python SDK 2.x: it answers 2026-07-28 requests
(`server/discover`, stateless) and the 2025 `initialize` handshake alike, over Streamable HTTP.

Beside `/mcp`, for the tests: `POST /describe` with `{"tool": …, "description": …}` changes a
tool's description while the server runs (an updated server), and `GET /calls` says how often each
tool ran, so a test can tell that a refused call never reached the server.

Usage: python mcp_sdk_server.py PORT
"""

import sys
from collections import Counter

from mcp.server.mcpserver import MCPServer
from starlette.requests import Request
from starlette.responses import JSONResponse

server = MCPServer("customer-service")
calls: Counter[str] = Counter()


@server.tool()
def get_customer_info(customer_id: str) -> str:
    """One customer's record."""
    calls["get_customer_info"] += 1
    return f"customer {customer_id}: Ada Lovelace"


@server.tool()
def create_support_ticket(customer_id: str, subject: str) -> str:
    """Opens a ticket for a customer."""
    calls["create_support_ticket"] += 1
    return f"ticket for {customer_id}: {subject}"


@server.custom_route("/describe", methods=["POST"])
async def describe(request: Request) -> JSONResponse:
    change = await request.json()
    tool = server._tool_manager.get_tool(change["tool"])
    if tool is None:
        return JSONResponse({"error": "no such tool"}, status_code=404)
    tool.description = change["description"]
    return JSONResponse({"ok": True})


@server.custom_route("/calls", methods=["GET"])
async def tool_calls(request: Request) -> JSONResponse:
    return JSONResponse(dict(calls))


if __name__ == "__main__":
    server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
