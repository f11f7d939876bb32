// The MCP server the conformance suite's server scenarios run against, written with the official
// TypeScript SDK (v2, which speaks 2026-07-28 and serves 2025-era clients statelessly) to the
// requirements each scenario states. It is scopegate's upstream in the proxied run.
//
// Usage: node conformance_server.mjs [port]; prints "listening http://127.0.0.1:PORT/mcp" on stderr.
import http from 'node:http';
import {
    McpServer,
    ResourceTemplate,
    completable,
    createMcpHandler,
    fromJsonSchema,
    hostHeaderValidationResponse,
    localhostAllowedHostnames,
    localhostAllowedOrigins,
    originValidationResponse,
    MissingRequiredClientCapabilityError,
} from '@modelcontextprotocol/server';
import * as z from 'zod/v4';

// A 1x1 red PNG and a minimal WAV (44-byte header, no samples).
const PNG =
    'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==';
const WAV = 'UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQAAAAA=';

const text = (t) => ({ content: [{ type: 'text', text: t }] });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const noArgs = fromJsonSchema({ type: 'object', properties: {} });

// The input schema of the json-schema-2020-12 scenario, keyword for keyword.
const SCHEMA_2020_12 = {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    type: 'object',
    $defs: {
        address: {
            $anchor: 'addressDef',
            type: 'object',
            properties: { street: { type: 'string' }, city: { type: 'string' } },
        },
    },
    properties: {
        name: { type: 'string' },
        address: { $ref: '#/$defs/address' },
        contactMethod: { type: 'string', enum: ['phone', 'email'] },
        phone: { type: 'string' },
        email: { type: 'string' },
    },
    allOf: [{ anyOf: [{ required: ['phone'] }, { required: ['email'] }] }],
    if: { properties: { contactMethod: { const: 'phone' } }, required: ['contactMethod'] },
    then: { required: ['phone'] },
    else: { required: ['email'] },
    additionalProperties: false,
};

let handler;

function build() {
    const server = new McpServer(
        { name: 'scopegate-conformance-server', version: '1.0.0' },
        {
            capabilities: {
                tools: { listChanged: true },
                resources: { listChanged: true },
                prompts: { listChanged: true },
                completions: {},
                logging: {},
            },
        },
    );
    const tool = (name, description, cb, inputSchema = noArgs) =>
        server.registerTool(name, { description, inputSchema }, cb);

    tool('test_simple_text', 'Returns simple text', async () =>
        text('This is a simple text response for testing.'),
    );
    tool('test_image_content', 'Returns an image', async () => ({
        content: [{ type: 'image', data: PNG, mimeType: 'image/png' }],
    }));
    tool('test_audio_content', 'Returns audio', async () => ({
        content: [{ type: 'audio', data: WAV, mimeType: 'audio/wav' }],
    }));
    tool('test_embedded_resource', 'Returns an embedded resource', async () => ({
        content: [
            {
                type: 'resource',
                resource: {
                    uri: 'test://embedded-resource',
                    mimeType: 'text/plain',
                    text: 'This is an embedded resource content.',
                },
            },
        ],
    }));
    tool('test_multiple_content_types', 'Returns text, image and resource', async () => ({
        content: [
            { type: 'text', text: 'Multiple content types test:' },
            { type: 'image', data: PNG, mimeType: 'image/png' },
            {
                type: 'resource',
                resource: {
                    uri: 'test://mixed-content-resource',
                    mimeType: 'application/json',
                    text: '{"test":"data","value":123}',
                },
            },
        ],
    }));
    tool('test_error_handling', 'Always fails', async () => ({
        isError: true,
        ...text('This tool intentionally returns an error for testing'),
    }));
    tool('test_tool_with_progress', 'Reports progress', async (_args, ctx) => {
        const token = ctx.mcpReq._meta?.progressToken;
        for (const progress of [0, 50, 100]) {
            if (token !== undefined) {
                await ctx.mcpReq.notify({
                    method: 'notifications/progress',
                    params: { progressToken: token, progress, total: 100 },
                });
            }
            if (progress < 100) await sleep(50);
        }
        return text('Progress tool completed');
    });
    const logThree = async (_args, ctx) => {
        for (const message of ['Tool execution started', 'Tool processing data', 'Tool execution completed']) {
            await ctx.mcpReq.log('info', message);
            await sleep(50);
        }
        return text('Logging tool completed');
    };
    // The 2025-era scenario and the 2026-07-28 one name the same behaviour differently.
    tool('test_tool_with_logging', 'Logs three messages', logThree);
    tool('test_logging_tool', 'Logs three messages', logThree);
    tool('test_missing_capability', 'Needs the client sampling capability', async (_args, ctx) => {
        if (!ctx.mcpReq.envelope?.clientCapabilities?.sampling) {
            throw new MissingRequiredClientCapabilityError({ requiredCapabilities: { sampling: {} } });
        }
        return text('sampling declared');
    });
    tool('test_trigger_tool_change', 'Announces a changed tool list', async () => {
        handler.notify.toolsChanged();
        return text('tools changed');
    });
    tool('test_trigger_prompt_change', 'Announces a changed prompt list', async () => {
        handler.notify.promptsChanged();
        return text('prompts changed');
    });
    tool('json_schema_2020_12_tool', 'Tool with JSON Schema 2020-12 features', async (args) =>
        text(JSON.stringify(args)),
        fromJsonSchema(SCHEMA_2020_12),
    );
    tool(
        'test_custom_headers',
        'Mirrors parameters into Mcp-Param headers',
        async (args) => text(JSON.stringify(args)),
        fromJsonSchema({
            type: 'object',
            properties: {
                region: { type: 'string', 'x-mcp-header': 'Region' },
                tenant: { type: 'string', 'x-mcp-header': 'Tenant' },
                query: { type: 'string' },
            },
        }),
    );

    server.registerResource(
        'static-text',
        'test://static-text',
        { description: 'A static text resource', mimeType: 'text/plain' },
        async (uri) => ({
            contents: [
                { uri: uri.href, mimeType: 'text/plain', text: 'This is the content of the static text resource.' },
            ],
        }),
    );
    server.registerResource(
        'static-binary',
        'test://static-binary',
        { description: 'A static binary resource', mimeType: 'image/png' },
        async (uri) => ({ contents: [{ uri: uri.href, mimeType: 'image/png', blob: PNG }] }),
    );
    server.registerResource(
        'watched-resource',
        'test://watched-resource',
        { description: 'A resource that can be watched', mimeType: 'text/plain' },
        async (uri) => ({ contents: [{ uri: uri.href, mimeType: 'text/plain', text: 'watched' }] }),
    );
    server.registerResource(
        'template',
        new ResourceTemplate('test://template/{id}/data', { list: undefined }),
        { description: 'A resource template', mimeType: 'application/json' },
        async (uri, { id }) => ({
            contents: [
                {
                    uri: uri.href,
                    mimeType: 'application/json',
                    text: JSON.stringify({ id, templateTest: true, data: `Data for ID: ${id}` }),
                },
            ],
        }),
    );

    server.registerPrompt('test_simple_prompt', { description: 'A simple prompt' }, async () => ({
        messages: [{ role: 'user', content: { type: 'text', text: 'This is a simple prompt for testing.' } }],
    }));
    server.registerPrompt(
        'test_prompt_with_arguments',
        {
            description: 'A prompt with arguments',
            argsSchema: z.object({
                arg1: completable(z.string().describe('First test argument'), (value) =>
                    ['paris', 'park', 'party'].filter((v) => v.startsWith(value)),
                ),
                arg2: z.string().describe('Second test argument'),
            }),
        },
        async ({ arg1, arg2 }) => ({
            messages: [
                {
                    role: 'user',
                    content: { type: 'text', text: `Prompt with arguments: arg1='${arg1}', arg2='${arg2}'` },
                },
            ],
        }),
    );
    server.registerPrompt(
        'test_prompt_with_embedded_resource',
        {
            description: 'A prompt with an embedded resource',
            argsSchema: z.object({ resourceUri: z.string().describe('URI of the resource to embed') }),
        },
        async ({ resourceUri }) => ({
            messages: [
                {
                    role: 'user',
                    content: {
                        type: 'resource',
                        resource: { uri: resourceUri, mimeType: 'text/plain', text: 'Embedded resource content for testing.' },
                    },
                },
                { role: 'user', content: { type: 'text', text: 'Please process the embedded resource above.' } },
            ],
        }),
    );
    server.registerPrompt('test_prompt_with_image', { description: 'A prompt with an image' }, async () => ({
        messages: [
            { role: 'user', content: { type: 'image', data: PNG, mimeType: 'image/png' } },
            { role: 'user', content: { type: 'text', text: 'Please analyze the image above.' } },
        ],
    }));
    return server;
}

handler = createMcpHandler(build);

// Node's http server in front of the SDK's fetch-shaped handler. Host and Origin are checked as
// the SDK recommends for a localhost server (the dns-rebinding-protection scenario).
const listener = http.createServer(async (req, res) => {
    try {
        const chunks = [];
        for await (const chunk of req) chunks.push(chunk);
        const body = Buffer.concat(chunks);
        const headers = new Headers();
        for (const [name, value] of Object.entries(req.headers)) {
            for (const v of [].concat(value)) headers.append(name, v);
        }
        const request = new Request(`http://${req.headers.host ?? '127.0.0.1'}${req.url}`, {
            method: req.method,
            headers,
            body: body.length > 0 && req.method !== 'GET' && req.method !== 'HEAD' ? body : undefined,
        });
        const response =
            hostHeaderValidationResponse(request, localhostAllowedHostnames()) ??
            originValidationResponse(request, localhostAllowedOrigins()) ??
            (await handler.fetch(request));
        res.writeHead(response.status, Object.fromEntries(response.headers));
        if (response.body) {
            res.on('close', () => response.body.cancel().catch(() => {}));
            for await (const chunk of response.body) res.write(chunk);
        }
        res.end();
    } catch (error) {
        if (!res.headersSent) res.writeHead(500);
        res.end(String(error));
    }
});
listener.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
    console.error(`listening http://127.0.0.1:${listener.address().port}/mcp`);
});
