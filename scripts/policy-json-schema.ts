import { toJsonSchema } from '@valibot/to-json-schema';
import { PolicySchema } from '../src/policy/schema.ts';

/**
 * Hover text for editors, by dotted property path (`[]` for array items). Kept here rather than
 * in the valibot schema so descriptions do not ship in the Worker bundle.
 */
const DESCRIPTIONS: Record<string, string> = {
  version: 'Policy format version; always 1.',
  token: 'Token verification limits shared by all issuers.',
  'token.leewaySeconds': 'Clock leeway for exp, nbf and iat, in seconds (default 30, at most 300).',
  'token.maxTokenBytes': 'Largest accepted token in bytes, refused before decoding (default 8192).',
  'token.cacheEntries': 'Verified-token cache size in entries (default 1000; 0 disables).',
  issuers:
    'The exact allowlist of token issuers, each with its own keys, audiences and algorithms.',
  'issuers[].issuer': 'The exact `iss` value accepted; no normalisation.',
  'issuers[].keys':
    'Exactly one key source: jwksUri, jwks, publicKeyPem, or secretEnv (development).',
  'issuers[].keys.jwksUri': 'Remote JWKS endpoint (https; http only on loopback).',
  'issuers[].keys.jwks': 'An inline JWKS document.',
  'issuers[].keys.publicKeyPem': 'An SPKI PEM public key.',
  'issuers[].keys.secretEnv':
    'Name of the environment variable holding an HS secret (at least the hash length).',
  'issuers[].keys.cacheTtlSeconds': 'JWKS cache TTL in seconds (default 600).',
  'issuers[].keys.cooldownSeconds':
    'Minimum seconds between refetches caused by an unknown kid (default 30).',
  'issuers[].keys.timeoutMs': 'JWKS fetch timeout in milliseconds (default 3000).',
  'issuers[].keys.maxStaleSeconds':
    'How long the last good key set is served while the endpoint fails, in seconds (default 86400).',
  'issuers[].audiences': 'Accepted `aud` values; null explicitly skips the audience check.',
  'issuers[].algorithms': 'Algorithm allowlist; every key is bound to one of these.',
  'issuers[].types':
    'Accepted `typ` headers (default JWT and at+jwt); a token without `typ` counts as JWT; null skips the check.',
  'issuers[].requireType':
    'Refuse tokens without a `typ` header (default: true when `types` has no JWT, as RFC 9068 needs for at+jwt).',
  'issuers[].tenantClaim': 'Claim that carries the tenant.',
  'issuers[].tenant': 'Fixed tenant for every token of this issuer.',
  'issuers[].keepClaims': 'Extra claims kept on the principal for conditions.',
  'issuers[].maxAgeSeconds': 'Reject tokens issued longer ago than this many seconds.',
  permissions: 'Where permissions come from.',
  'permissions.source': 'store (default): the permission store; claims: the token itself.',
  'permissions.scopes':
    'Scope → the permissions it grants, for scopes that are not permissions (read, Orders.Read); a mapped scope grants exactly its list.',
  'permissions.rolesClaim': 'Claim naming policy roles: an array or a space-separated string.',
  cache: 'The permission cache: its TTL bounds how stale a grant or revocation can be.',
  'cache.ttlSeconds': 'Seconds a subject record is served from cache (default 30).',
  'cache.negativeTtlSeconds': 'Seconds a "no such subject" answer is cached (default 5).',
  'cache.maxEntries': 'Most subjects cached (default 10000).',
  'cache.staleIfErrorSeconds':
    'Serve a stale record during a store outage for up to this many seconds past expiry (default 0: fail closed).',
  tenancy: 'Multi-tenant settings.',
  'tenancy.pathParam': 'Route parameter naming the tenant; other tenants are denied.',
  roles:
    'Static roles: grants, denies and parent roles. Store roles of the same name replace these.',
  routes:
    'Method + path → what the route requires. The most specific route wins; unmatched routes are denied.',
  'routes[].method': 'HTTP method, a list of methods, or * (default).',
  'routes[].path': 'Path pattern: /posts, /posts/:id, /static/* (trailing * matches the rest).',
  'routes[].public': 'No token needed.',
  'routes[].authenticated': 'Any valid token is enough.',
  'routes[].require': 'Every permission is required; {param} is filled from the path.',
  'routes[].anyOf': 'Any one of these permissions is enough.',
};

type Node = Record<string, unknown> & {
  properties?: Record<string, Node>;
  items?: Node;
};

function describe(node: Node, path: string): void {
  const text = DESCRIPTIONS[path];
  if (text && path) node.description = text;
  for (const [name, child] of Object.entries(node.properties ?? {})) {
    describe(child, path ? `${path}.${name}` : name);
  }
  if (node.items) describe(node.items, `${path}[]`);
  for (const key of ['anyOf', 'oneOf'] as const) {
    for (const option of (node[key] as Node[] | undefined) ?? []) describe(option, path);
  }
}

/** The published JSON Schema for policy files (draft 2020-12). */
export function policyJsonSchema(): Record<string, unknown> {
  const schema = toJsonSchema(PolicySchema, {
    target: 'draft-2020-12',
    errorMode: 'ignore',
  }) as Node;
  describe(schema, '');
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://gatehouse.dev/schema/policy.schema.json',
    title: 'Gatehouse policy',
    ...schema,
  };
}
