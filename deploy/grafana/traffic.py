"""Traffic for the dashboard's picture: demo clients calling the demo proxy for a while.

Reads the endpoints file `scopegate demo --endpoints-file` writes, gets real tokens from the demo
issuer, opens an MCP session per client and then sends a mix that touches every panel it can:
allowed calls, a refused scope, no token and one that is not a JWT (refusals no issuer is named
for), and a token whose signature was altered (counted under the demo's issuer). The rate
swings over the run, so the panels show shapes rather than flat lines.

Usage: traffic.py ENDPOINTS_JSON SECONDS
"""

import http.client
import json
import math
import random
import ssl
import sys
import time
import urllib.parse
import urllib.request

PROTOCOL_VERSION = "2025-06-18"
# Requests per second around which the rate swings (and its swing, a share of it).
BASE_RATE = 12.0
SWING = 0.6


def token(endpoints, context, client_id):
    form = urllib.parse.urlencode(
        {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": endpoints["client_secret"],
            "resource": endpoints["resource"],
        }
    ).encode()
    with urllib.request.urlopen(endpoints["token_url"], form, context=context) as answer:
        return json.load(answer)["access_token"]


def altered(jwt):
    """The same token with its signature changed: still names the demo issuer."""
    head, claims, signature = jwt.split(".")
    flipped = "A" if signature[0] != "A" else "B"
    return f"{head}.{claims}.{flipped}{signature[1:]}"


class Session:
    """One client's keep-alive connection and MCP session to the proxy."""

    def __init__(self, endpoints, context, bearer):
        url = urllib.parse.urlsplit(endpoints["mcp_url"])
        self.path = url.path
        self.connection = http.client.HTTPSConnection(url.hostname, url.port, context=context)
        self.bearer = bearer
        self.session = None
        self.next_id = 1
        answer = self.send(
            "initialize",
            {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "dashboard-traffic", "version": "1"},
            },
        )
        if answer[0] != 200:
            raise SystemExit(f"initialize answered {answer[0]}: {answer[1][:200]}")
        self.send("notifications/initialized", None, notification=True)

    def send(self, method, params, notification=False, bearer=None):
        message = {"jsonrpc": "2.0", "method": method}
        if not notification:
            message["id"] = self.next_id
            self.next_id += 1
        if params is not None:
            message["params"] = params
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": PROTOCOL_VERSION,
        }
        bearer = self.bearer if bearer is None else bearer
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        if self.session:
            headers["Mcp-Session-Id"] = self.session
        self.connection.request("POST", self.path, json.dumps(message), headers)
        answer = self.connection.getresponse()
        body = answer.read()
        if method == "initialize":
            self.session = answer.getheader("Mcp-Session-Id")
        return answer.status, body

    def call(self, tool, arguments, bearer=None):
        return self.send("tools/call", {"name": tool, "arguments": arguments}, bearer=bearer)


def main():
    endpoints_file, seconds = sys.argv[1], float(sys.argv[2])
    with open(endpoints_file) as f:
        endpoints = json.load(f)
    context = ssl.create_default_context(cafile=endpoints["ca_file"])
    support = Session(endpoints, context, token(endpoints, context, "support-agent"))
    readonly = Session(endpoints, context, token(endpoints, context, "readonly-agent"))
    ticket = {"customer_id": "C002", "subject": "Refund", "description": "Charged twice"}
    # (weight, what, want): each an action a demo client takes, and the status it must see.
    mix = [
        (6, lambda: support.call("get_customer_info", {"customer_id": "C001"}), 200),
        (2, lambda: support.call("calculate_account_value", {"customer_id": "C001"}), 200),
        (1, lambda: support.send("tools/list", None), 200),
        (1, lambda: support.call("create_support_ticket", ticket), 200),
        (1.5, lambda: readonly.call("create_support_ticket", ticket), 403),
        (0.6, lambda: readonly.call("get_customer_info", {"customer_id": "C001"}, bearer=""), 401),
        (0.5, lambda: support.call("get_customer_info", {"customer_id": "C001"},
                                   bearer=altered(support.bearer)), 401),
        (0.4, lambda: support.call("get_customer_info", {"customer_id": "C001"},
                                   bearer="not-a-token"), 401),
    ]
    weights = [w for w, _, _ in mix]
    random.seed(17)
    start = time.monotonic()
    sent = unexpected = 0
    while (now := time.monotonic() - start) < seconds:
        rate = BASE_RATE * (1 + SWING * math.sin(now / 9))
        _, action, want = random.choices(mix, weights)[0]
        status, body = action()
        sent += 1
        if status != want:
            unexpected += 1
            print(f"unexpected {status} (want {want}): {body[:200]!r}", file=sys.stderr)
        time.sleep(1 / rate)
    print(f"traffic: {sent} requests in {seconds:.0f} s, {unexpected} unexpected answers")
    if unexpected:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
