"""A dual-era MCP server on the official Python SDK 2.x: it answers 2026-07-28 requests
(`server/discover`, stateless) and the 2025 `initialize` handshake alike, over Streamable HTTP.

Usage: python mcp_sdk_server.py PORT
"""

import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("customer-service")


@server.tool()
def get_customer_info(customer_id: str) -> str:
    """One customer's record."""
    return f"customer {customer_id}: Ada Lovelace"


@server.tool()
def create_support_ticket(customer_id: str, subject: str) -> str:
    """Opens a ticket for a customer."""
    return f"ticket for {customer_id}: {subject}"


if __name__ == "__main__":
    server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
