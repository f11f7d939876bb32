// Two OpenID-certified identity providers (oidc-provider), each on a loopback port of its own,
// for the tests in tests/it/oidc.rs: the client-credentials grant, RFC 8707 resource indicators
// (an access token is for one resource, as a JWT or an opaque token), RFC 7662 introspection and
// RFC 7009 revocation, DPoP-bound (RFC 9449) and certificate-bound (RFC 8705) access tokens.
//
// Usage: node oidc_provider.mjs
// Prints one JSON line on stdout once both listen: {"issuers": ["http://127.0.0.1:A", "http://127.0.0.1:B"]}.
// Stops when its standard input closes, so it never outlives the test that started it.

import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { createServer } from 'node:http';
import { once } from 'node:events';

import Provider, { errors } from 'oidc-provider';

// Every client's secret, and the scopes the customer-service policy asks for.
const SECRET = 'oidc-test-secret';
const SCOPES = 'customer:read ticket:create account:calculate';

// Client-credentials clients, one per kind of access token; `scopegate` is the resource server
// that introspects opaque tokens.
const client = (client_id, extra = {}) => ({
  client_id,
  client_secret: SECRET,
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  token_endpoint_auth_method: 'client_secret_basic',
  scope: SCOPES,
  // The IdP holds one P-256 key; the default (RS256) would need an RSA key nobody uses here.
  id_token_signed_response_alg: 'ES256',
  ...extra,
});
const CLIENTS = [
  client('jwt-agent'),
  client('opaque-agent'),
  client('dpop-agent', { dpop_bound_access_tokens: true }),
  client('mtls-agent', { tls_client_certificate_bound_access_tokens: true }),
  client('scopegate', { grant_types: [], scope: undefined }),
];

// The client certificate, as a TLS-terminating proxy in front of the IdP passes it on
// (nginx's $ssl_client_escaped_cert): the PEM, URL-encoded, in this header.
const CLIENT_CERT_HEADER = 'x-ssl-client-cert';

function configuration() {
  const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  return {
    clients: CLIENTS,
    // Both issuers name their key alike: a token is matched to its issuer by `iss`, not `kid`.
    jwks: { keys: [{ ...key, kid: 'oidc-key-1', alg: 'ES256', use: 'sig' }] },
    scopes: SCOPES.split(' '),
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        // Only the resource server (and a token's own client) learns what a token is worth.
        allowedPolicy: (ctx, caller, token) =>
          caller.clientId === 'scopegate' || caller.clientId === token.clientId,
      },
      revocation: {
        enabled: true,
        // A token is revoked by the client it was issued to.
        allowedPolicy: (ctx, caller, token) => caller.clientId === token.clientId,
      },
      dPoP: { enabled: true },
      mTLS: {
        enabled: true,
        certificateBoundAccessTokens: true,
        getCertificate(ctx) {
          const escaped = ctx.get(CLIENT_CERT_HEADER);
          if (!escaped) return undefined;
          try {
            return new X509Certificate(decodeURIComponent(escaped));
          } catch {
            throw new errors.InvalidRequest('client certificate is not a PEM certificate');
          }
        },
      },
      resourceIndicators: {
        enabled: true,
        // The token request names its resource; none named is refused rather than guessed.
        defaultResource: () => undefined,
        // Any https URL is a resource server here (an MCP server's URL is its resource, and
        // the proxy's port is picked when it starts); opaque-agent's tokens are opaque, every
        // other client's are JWTs.
        getResourceServerInfo(ctx, resource, requester) {
          if (!resource.startsWith('https://')) throw new errors.InvalidTarget();
          return {
            audience: resource,
            scope: SCOPES,
            accessTokenTTL: 600,
            ...(requester.clientId === 'opaque-agent'
              ? { accessTokenFormat: 'opaque' }
              : { accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } }),
          };
        },
      },
    },
  };
}

async function start() {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, configuration());
  server.on('request', provider.callback());
  return { issuer, server };
}

const started = [await start(), await start()];
process.stdout.write(`${JSON.stringify({ issuers: started.map((s) => s.issuer) })}\n`);

process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
