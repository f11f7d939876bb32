"""The official Python SDK 2.x client through scopegate: connects in the mode given, lists the
tools, calls one it may call and one it may not, and prints what it saw as one JSON line.

Usage: python mcp_sdk_client.py URL CA_FILE MODE, with the bearer token in SCOPEGATE_TOKEN (so it
appears in no process list).
"""

import asyncio
import json
import os
import sys

import httpx2
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client


async def main(url: str, ca_file: str, mode: str) -> None:
    headers = {"Authorization": f"Bearer {os.environ['SCOPEGATE_TOKEN']}"}
    async with httpx2.AsyncClient(headers=headers, verify=ca_file) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            tools = await client.list_tools()
            allowed = await client.call_tool("get_customer_info", {"customer_id": "C001"})
            try:
                await client.call_tool(
                    "create_support_ticket", {"customer_id": "C001", "subject": "help"}
                )
                denied = "not refused"
            except Exception as error:  # the SDK's error for the proxy's 403
                denied = f"{type(error).__name__}: {error}"
            print(
                json.dumps(
                    {
                        "protocol_version": client.protocol_version,
                        "tools": sorted(tool.name for tool in tools.tools),
                        "allowed": [c.text for c in allowed.content if hasattr(c, "text")],
                        "allowed_is_error": bool(allowed.is_error),
                        "denied": denied,
                    }
                )
            )


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
