// The official TypeScript SDK client (v2) through scopegate, pinned to the newest revision it
// speaks (2026-07-28): lists the tools, calls one the token may call and one it may not.
// Usage: SCOPEGATE_TOKEN=... node sdk_client.mjs URL ALLOWED_TOOL DENIED_TOOL (the test CA comes
// from NODE_EXTRA_CA_CERTS). Prints one JSON line of what it saw.
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';

const [url, allowed, denied] = process.argv.slice(2);
const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${process.env.SCOPEGATE_TOKEN}` } },
});
const client = new Client(
    { name: 'scopegate-interop', version: '1.0.0' },
    { versionNegotiation: { mode: { pin: '2026-07-28' } } },
);
await client.connect(transport);
const seen = { protocol_version: client.getNegotiatedProtocolVersion() };
seen.tools = (await client.listTools()).tools.map((tool) => tool.name);
const args = {};
const result = await client.callTool({ name: allowed, arguments: args });
seen.allowed = result.content.map((c) => c.text);
seen.allowed_is_error = result.isError ?? false;
try {
    const refused = await client.callTool({ name: denied, arguments: args });
    seen.denied = { result: refused };
} catch (error) {
    seen.denied = { error: String(error?.message ?? error), code: error?.code };
}
await client.close();
console.log(JSON.stringify(seen));
