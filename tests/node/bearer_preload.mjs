// Loaded with `node --import` in front of a client that knows nothing of tokens or TLS (the
// conformance suite), when it tests a server through scopegate:
// - every request made by `fetch` or by undici's `request` carries
//   `Authorization: Bearer $SCOPEGATE_TOKEN`: both go through undici's global dispatcher, so one
//   interceptor there covers them; a request that already names an authorization is left alone;
// - TLS names the URL's host, not the request's `Host` header: the suite sends
//   `Host: evil.example.com` to see the proxy refuse it, which a client that checked the
//   certificate against that name would never let reach the proxy;
// - the few cases the suite sends with `node:http` (header spellings `fetch` would normalise) go
//   out with `node:https`, same API, since the proxy listens on TLS only.
// The test CA comes from NODE_EXTRA_CA_CERTS.
import http from 'node:http';
import https from 'node:https';
import { Agent, setGlobalDispatcher } from 'undici';

const token = process.env.SCOPEGATE_TOKEN;
if (!token) throw new Error('bearer_preload: SCOPEGATE_TOKEN is not set');
const bearer = `Bearer ${token}`;

function withBearer(headers) {
    if (headers == null) return { authorization: bearer };
    if (Array.isArray(headers)) {
        for (let i = 0; i < headers.length; i += 2) {
            if (String(headers[i]).toLowerCase() === 'authorization') return headers;
        }
        return [...headers, 'authorization', bearer];
    }
    if (typeof headers[Symbol.iterator] === 'function') {
        const flat = [];
        for (const [name, value] of headers) flat.push(name, value);
        return withBearer(flat);
    }
    if (Object.keys(headers).some((name) => name.toLowerCase() === 'authorization')) return headers;
    return { ...headers, authorization: bearer };
}

setGlobalDispatcher(
    new Agent().compose((dispatch) => (options, handler) => {
        const origin = new URL(options.origin);
        return dispatch(
            {
                ...options,
                headers: withBearer(options.headers),
                servername: origin.protocol === 'https:' ? origin.hostname : options.servername,
            },
            handler,
        );
    }),
);

http.request = (options, callback) =>
    https.request(
        { ...options, headers: withBearer(options.headers), servername: options.hostname },
        callback,
    );
