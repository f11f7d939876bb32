// The MCP server the conformance suite's server scenarios run against, written with the official
// TypeScript SDK (v2, which speaks 2026-07-28 and serves 2025-era clients statelessly) to the
// requirements each scenario states. It is scopegate's upstream in the proxied run.
//
// Usage: node conformance_server.mjs [port]; prints "listening http://127.0.0.1:PORT/mcp" on stderr.
import { createHmac, timingSafeEqual } from 'node:crypto';
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
    ProtocolError,
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

// Multi round-trip ("input required", 2026-07-28) helpers: what a round asks the client for, and
// the requestState a later round gets back, signed so that a tampered one is refused.
const STATE_KEY = 'conformance-server-state-key';
const elicit = (message, properties) => ({
    method: 'elicitation/create',
    params: {
        message,
        requestedSchema: { type: 'object', properties, required: Object.keys(properties) },
    },
});
const sample = (prompt, maxTokens) => ({
    method: 'sampling/createMessage',
    params: { messages: [{ role: 'user', content: { type: 'text', text: prompt } }], maxTokens },
});
const ROOTS = { method: 'roots/list', params: {} };
const inputRequired = (inputRequests, requestState) => ({
    resultType: 'input_required',
    ...(inputRequests ? { inputRequests } : {}),
    ...(requestState ? { requestState } : {}),
});
const mac = (payload) => createHmac('sha256', STATE_KEY).update(payload).digest('base64url');
const sign = (state) => {
    const payload = Buffer.from(JSON.stringify(state)).toString('base64url');
    return `${payload}.${mac(payload)}`;
};
/** The state a client echoed, or undefined when it is missing or was not signed here. */
const verify = (token) => {
    if (typeof token !== 'string') return undefined;
    const [payload, tag] = token.split('.');
    if (!payload || !tag) return undefined;
    const expected = Buffer.from(mac(payload));
    const given = Buffer.from(tag);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) return undefined;
    return JSON.parse(Buffer.from(payload, 'base64url').toString());
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

    const responses = (ctx) => ctx.mcpReq.inputResponses ?? {};
    const state = (ctx) => ctx.mcpReq.requestState();
    tool('test_input_required_result_elicitation', 'Asks for a name first', async (_a, ctx) => {
        const answer = responses(ctx).user_name;
        if (!answer) return inputRequired({ user_name: elicit('What is your name?', { name: { type: 'string' } }) });
        return text(`Hello, ${answer.content?.name ?? 'stranger'}!`);
    });
    tool('test_input_required_result_sampling', 'Asks the client model first', async (_a, ctx) => {
        const answer = responses(ctx).capital_question;
        if (!answer) return inputRequired({ capital_question: sample('What is the capital of France?', 100) });
        return text(`The model said: ${answer.content?.text ?? JSON.stringify(answer)}`);
    });
    tool('test_input_required_result_list_roots', 'Asks for the client roots first', async (_a, ctx) => {
        const answer = responses(ctx).client_roots;
        if (!answer) return inputRequired({ client_roots: ROOTS });
        return text(`Roots: ${(answer.roots ?? []).map((root) => root.uri).join(', ')}`);
    });
    tool('test_input_required_result_request_state', 'Round-trips a request state', async (_a, ctx) => {
        const answer = responses(ctx).confirm;
        if (!answer) {
            return inputRequired(
                { confirm: elicit('Please confirm', { ok: { type: 'boolean' } }) },
                sign({ round: 1 }),
            );
        }
        return verify(state(ctx))?.round === 1 ? text('state-ok') : text('state-missing');
    });
    tool('test_input_required_result_multiple_inputs', 'Asks for three inputs at once', async (_a, ctx) => {
        const got = responses(ctx);
        if (!(got.user_name && got.greeting && got.client_roots)) {
            return inputRequired(
                {
                    user_name: elicit('What is your name?', { name: { type: 'string' } }),
                    greeting: sample('Generate a greeting', 50),
                    client_roots: ROOTS,
                },
                sign({ round: 1 }),
            );
        }
        return text('All inputs received');
    });
    tool('test_input_required_result_multi_round', 'Asks twice', async (_a, ctx) => {
        const got = responses(ctx);
        const round = verify(state(ctx))?.round;
        if (round === 1 && got.step1) {
            return inputRequired(
                { step2: elicit('Step 2: What is your favorite color?', { color: { type: 'string' } }) },
                sign({ round: 2, name: got.step1.content?.name }),
            );
        }
        if (round === 2 && got.step2) return text('Both steps complete');
        return inputRequired(
            { step1: elicit('Step 1: What is your name?', { name: { type: 'string' } }) },
            sign({ round: 1 }),
        );
    });
    tool('test_input_required_result_tampered_state', 'Refuses a state it did not sign', async (_a, ctx) => {
        const echoed = state(ctx);
        if (echoed === undefined) {
            return inputRequired({ confirm: elicit('Please confirm', { ok: { type: 'boolean' } }) }, sign({ round: 1 }));
        }
        if (!verify(echoed)) throw new ProtocolError(-32602, 'requestState failed its integrity check');
        return text('state-ok');
    });
    tool('test_input_required_result_capabilities', 'Asks only for what the client can give', async (_a, ctx) => {
        const caps = ctx.mcpReq.envelope?.clientCapabilities ?? {};
        const got = responses(ctx);
        if (Object.keys(got).length > 0) return text('Inputs received');
        const wanted = {};
        if (caps.elicitation) wanted.user_name = elicit('What is your name?', { name: { type: 'string' } });
        if (caps.sampling) wanted.greeting = sample('Generate a greeting', 50);
        if (caps.roots) wanted.client_roots = ROOTS;
        if (Object.keys(wanted).length === 0) return text('The client declared no input capability');
        return inputRequired(wanted);
    });

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
    server.registerPrompt(
        'test_input_required_result_prompt',
        { description: 'A prompt that asks for context first' },
        async (ctx) => {
            const answer = (ctx?.mcpReq?.inputResponses ?? {}).user_context;
            if (!answer) {
                return inputRequired({
                    user_context: elicit('What context should the prompt use?', { context: { type: 'string' } }),
                });
            }
            return {
                messages: [
                    { role: 'user', content: { type: 'text', text: `Context: ${answer.content?.context ?? ''}` } },
                ],
            };
        },
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
