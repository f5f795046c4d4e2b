/**
 * The policy file's structure, validated once at load. valibot keeps Workers bundles small
 * and converts to the JSON Schema published for editors (schema/policy.schema.json).
 *
 * Structure only lives here (types, required fields, ranges, unknown keys). Meaning that needs
 * other modules (permission grammar, route syntax, CIDR ranges, role cycles) is checked when the
 * policy is compiled, with errors that name the same dotted field paths.
 */
import * as v from 'valibot';
import { ALGORITHM_NAMES } from '../token/index.ts';
import { KID_PATTERN, MAX_KID_LENGTH } from '../token/precheck.ts';

const ALGORITHMS = ALGORITHM_NAMES;

const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;

const nonEmpty = v.pipe(v.string(), v.minLength(1));
const seconds = (min: number, max: number) =>
  v.pipe(v.number(), v.integer(), v.minValue(min), v.maxValue(max));
const scalar = v.union([v.string(), v.number(), v.boolean()]);

const ConditionsSchema = v.strictObject({
  ip: v.optional(v.array(nonEmpty)),
  time: v.optional(
    v.strictObject({
      days: v.optional(v.array(v.picklist(WEEKDAYS))),
      hours: v.optional(
        v.strictObject({
          from: v.pipe(v.string(), v.regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'HH:MM')),
          to: v.pipe(v.string(), v.regex(/^([01]\d|2[0-4]):[0-5]\d$/, 'HH:MM')),
        }),
      ),
      timezone: v.optional(nonEmpty),
    }),
  ),
  claims: v.optional(v.record(nonEmpty, v.union([scalar, v.array(scalar)]))),
  country: v.optional(
    v.array(v.pipe(v.string(), v.regex(/^[A-Z]{2}$/, 'an upper-case ISO 3166-1 alpha-2 code'))),
  ),
});

const GrantSchema = v.union([
  nonEmpty,
  v.strictObject({
    permission: nonEmpty,
    /** ISO 8601 time with zone, or Unix seconds. */
    expires: v.optional(v.union([nonEmpty, v.number()])),
    when: v.optional(ConditionsSchema),
  }),
]);

const KeysSchema = v.strictObject({
  /** Remote JWKS endpoint (https; http only for loopback during development). */
  jwksUri: v.optional(nonEmpty),
  /** Inline JWKS document. */
  jwks: v.optional(v.strictObject({ keys: v.array(v.record(v.string(), v.unknown())) })),
  /** SPKI PEM public key; its algorithm is the issuer's first algorithm unless `algorithm` is set. */
  publicKeyPem: v.optional(nonEmpty),
  /** Name of the environment variable holding an HS secret (development only; at least the hash length). */
  secretEnv: v.optional(nonEmpty),
  /** Algorithm for `publicKeyPem` / `secretEnv` keys. */
  algorithm: v.optional(v.picklist(ALGORITHMS)),
  /** Key id to bind to a `publicKeyPem` / `secretEnv` key (the verifier's kid rule). */
  kid: v.optional(
    v.pipe(
      v.string(),
      v.regex(
        KID_PATTERN,
        `a kid of 1-${MAX_KID_LENGTH} visible ASCII characters (no spaces or control characters)`,
      ),
    ),
  ),
  /** JWKS cache TTL, seconds (default 600). */
  cacheTtlSeconds: v.optional(seconds(1, 86_400)),
  /** Minimum seconds between refetches caused by an unknown kid (default 30). */
  cooldownSeconds: v.optional(seconds(1, 3_600)),
  /** JWKS fetch timeout, milliseconds (default 3000). */
  timeoutMs: v.optional(seconds(100, 30_000)),
  /** How long the last good key set is served while the endpoint fails, seconds (default 86400). */
  maxStaleSeconds: v.optional(seconds(0, 604_800)),
});

const IssuerSchema = v.strictObject({
  /** The exact `iss` value accepted. */
  issuer: nonEmpty,
  keys: KeysSchema,
  /** Accepted `aud` values; `null` explicitly skips the audience check. */
  audiences: v.nullable(v.pipe(v.array(nonEmpty), v.minLength(1))),
  /** Algorithm allowlist; keys are bound to one of these. */
  algorithms: v.pipe(v.array(v.picklist(ALGORITHMS)), v.minLength(1)),
  /** Accepted `typ` header values (default JWT and at+jwt); `null` skips the check. */
  types: v.optional(v.nullable(v.array(nonEmpty))),
  /** Reject tokens that have no `typ` header. */
  requireType: v.optional(v.boolean()),
  /** Claim that carries the tenant (mutually exclusive with `tenant`). */
  tenantClaim: v.optional(nonEmpty),
  /** Fixed tenant for every token of this issuer. */
  tenant: v.optional(nonEmpty),
  /** Extra claims to keep on the principal (claims used by conditions are kept automatically). */
  keepClaims: v.optional(v.array(nonEmpty)),
  /** Maximum token age from `iat`, seconds; `null` or absent for none. */
  maxAgeSeconds: v.optional(v.nullable(seconds(1, 31_536_000))),
});

const METHOD = v.pipe(v.string(), v.regex(/^([A-Z]+|\*)$/, 'an upper-case HTTP method or *'));

const RouteSchema = v.strictObject({
  /** HTTP method, list of methods, or `*` (default `*`). */
  method: v.optional(v.union([METHOD, v.pipe(v.array(METHOD), v.minLength(1))])),
  /** Path pattern: `/posts`, `/posts/:id`, `/static/*`. */
  path: nonEmpty,
  /** No token needed. */
  public: v.optional(v.literal(true)),
  /** Any valid token is enough. */
  authenticated: v.optional(v.literal(true)),
  /** All of these permissions are required; `{param}` fills from the path. */
  require: v.optional(v.pipe(v.array(nonEmpty), v.minLength(1))),
  /** Any one of these permissions is enough. */
  anyOf: v.optional(v.pipe(v.array(nonEmpty), v.minLength(1))),
  /**
   * Fail closed on revocation lag: answer 503 when the revocation feed could not be read for
   * `revocation.strictMaxLagSeconds`, instead of trusting grants up to the cache TTL.
   */
  strict: v.optional(v.boolean()),
  /** `false` refuses delegated callers (Gatehouse delegation tokens) on this route; default true. */
  delegated: v.optional(v.boolean()),
});

const ActorRuleSchema = v.strictObject({
  /** The actor's `sub`, from its own token. */
  subject: nonEmpty,
  /** The actor token's `iss`; absent accepts the subject from any configured issuer. */
  issuer: v.optional(nonEmpty),
  /** Subjects it may act for; `*` for anyone. */
  for: v.pipe(v.array(nonEmpty), v.minLength(1)),
  /** The most it may receive: permission patterns such as `read:*`. */
  ceiling: v.pipe(v.array(nonEmpty), v.minLength(1)),
});

const DelegationSchema = v.strictObject({
  /** Gatehouse's own `iss`; must differ from every `issuers[].issuer`. */
  issuer: nonEmpty,
  /** Secret holding the signing key set (default GATEHOUSE_DELEGATION_KEYS). */
  keysEnv: v.optional(v.pipe(v.string(), v.regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'a variable name'))),
  /** Accepted `aud` values; the first is the default (default: [issuer]). */
  audiences: v.optional(v.pipe(v.array(nonEmpty), v.minLength(1))),
  /** Longest delegation token lifetime, seconds (default 900). */
  maxLifetimeSeconds: v.optional(seconds(1, 86_400)),
  /** Deepest `act` chain (default 3). */
  maxDepth: v.optional(seconds(1, 8)),
  /** Who may act for whom, and the most each may receive; nobody by default. */
  actors: v.optional(v.array(ActorRuleSchema)),
  /** Accept delegated callers at the admin API (default false). */
  adminApi: v.optional(v.boolean()),
  /** Honour standing grants (`gatehouse.delegate:<actor>:<scope>` in a delegator's record); default false. */
  standingGrants: v.optional(v.boolean()),
});

const EventsSchema = v.strictObject({
  /** Accepted `aud` values of signed events; the first is the default (default: [`<delegation.issuer>/events`]). */
  audiences: v.optional(v.pipe(v.array(nonEmpty), v.minLength(1))),
  /** CloudEvents `source` written into every event (default: delegation.issuer). */
  source: v.optional(nonEmpty),
  /** Lifetime of an event when the request names none, seconds (default 3600). */
  defaultTtlSeconds: v.optional(seconds(1, 1_209_600)),
  /** Longest event lifetime, seconds: at most the queue's retention (default 86400, at most 14 days). */
  maxTtlSeconds: v.optional(seconds(1, 1_209_600)),
  /** Largest signed event, bytes of compact JWS (default 65536, 1024..262144). */
  maxBytes: v.optional(seconds(1024, 262_144)),
});

const RoleSchema = v.strictObject({
  grants: v.optional(v.array(GrantSchema)),
  denies: v.optional(v.array(GrantSchema)),
  inherits: v.optional(v.array(nonEmpty)),
});

export const PolicySchema = v.strictObject({
  /** JSON Schema reference for editors; ignored. */
  $schema: v.optional(v.string()),
  version: v.literal(1),
  token: v.optional(
    v.strictObject({
      /** Clock leeway for exp / nbf / iat, seconds (default 30, at most 300). */
      leewaySeconds: v.optional(seconds(0, 300)),
      /** Largest accepted token, bytes (default 8192). */
      maxTokenBytes: v.optional(seconds(256, 65_536)),
      /** Verified-token cache size, entries (default 1000; 0 disables). */
      cacheEntries: v.optional(seconds(0, 1_000_000)),
    }),
  ),
  issuers: v.pipe(v.array(IssuerSchema), v.minLength(1)),
  permissions: v.optional(
    v.strictObject({
      /** Where permissions come from: the configured store (default) or the token's claims. */
      source: v.optional(v.picklist(['store', 'claims'])),
      /** Claim names for the `claims` source. `null` turns one off. */
      permissionsClaim: v.optional(v.nullable(nonEmpty)),
      scopeClaim: v.optional(v.nullable(nonEmpty)),
      rolesClaim: v.optional(v.nullable(nonEmpty)),
      /** Scope → the permissions it grants, for scopes that are not permissions (`read`, `Orders.Read`). */
      scopes: v.optional(v.record(nonEmpty, v.pipe(v.array(nonEmpty), v.minLength(1)))),
    }),
  ),
  cache: v.optional(
    v.strictObject({
      /** Permission cache TTL, seconds (default 30): the bound on how stale a grant or revocation can be. */
      ttlSeconds: v.optional(seconds(0, 3_600)),
      /** TTL for "no such user", seconds (default 5). */
      negativeTtlSeconds: v.optional(seconds(0, 3_600)),
      /** Most cached subjects (default 10000). */
      maxEntries: v.optional(seconds(1, 10_000_000)),
      /** Serve a stale record while the store fails, up to this many seconds past expiry (default 0: fail closed). */
      staleIfErrorSeconds: v.optional(seconds(0, 86_400)),
    }),
  ),
  revocation: v.optional(
    v.strictObject({
      /** Milliseconds between an isolate's reads of the revocation feed while it serves traffic (default 1000). */
      pollIntervalMs: v.optional(seconds(100, 60_000)),
      /** Seconds without a feed read after which `strict` routes answer 503 (default 10). */
      strictMaxLagSeconds: v.optional(seconds(1, 3_600)),
    }),
  ),
  tenancy: v.optional(
    v.strictObject({
      /** Route parameter that names the tenant; a principal of another tenant is denied. */
      pathParam: v.optional(nonEmpty),
    }),
  ),
  roles: v.optional(v.record(nonEmpty, RoleSchema)),
  routes: v.pipe(v.array(RouteSchema), v.minLength(1)),
  /** Gatehouse as a token issuer for delegation (RFC 8693); absent: no delegation anywhere. */
  delegation: v.optional(DelegationSchema),
  /** Signed events (issue 13), signed with the delegation section's issuer and keys; absent: off. */
  events: v.optional(EventsSchema),
});

export type PolicyDocument = v.InferInput<typeof PolicySchema>;
export type RouteDocument = v.InferInput<typeof RouteSchema>;
export type IssuerDocument = v.InferInput<typeof IssuerSchema>;
export type GrantDocument = v.InferInput<typeof GrantSchema>;
export type ConditionsDocument = v.InferInput<typeof ConditionsSchema>;

type PathItem = NonNullable<v.BaseIssue<unknown>['path']>[number];

/** The parts of a valibot schema object the error reporter walks (structure only). */
interface SchemaNode {
  readonly type: string;
  readonly wrapped?: SchemaNode;
  readonly item?: SchemaNode;
  readonly entries?: Readonly<Record<string, SchemaNode>>;
  readonly value?: SchemaNode;
  readonly options?: readonly SchemaNode[];
}

/** `routes[3].require[0]` from the keys of valibot path items. */
function fieldOf(keys: readonly unknown[], root: string): string {
  let field = root;
  for (const key of keys) {
    field += typeof key === 'number' ? `[${key}]` : `.${String(key)}`;
  }
  return field;
}

/** The schemas that can describe the value at `path` (several where a union allows several). */
function schemasAt(schema: SchemaNode, path: readonly PathItem[]): SchemaNode[] {
  const expand = (node: SchemaNode): SchemaNode[] => {
    if (node.wrapped) return expand(node.wrapped);
    if (node.options) return node.options.flatMap(expand);
    return [node];
  };
  let current = expand(schema);
  for (const { key } of path) {
    const next: SchemaNode[] = [];
    for (const node of current) {
      if (typeof key === 'number' && node.item) next.push(...expand(node.item));
      else if (typeof key === 'string' && node.entries && Object.hasOwn(node.entries, key))
        next.push(...expand(node.entries[key]!));
      else if (typeof key === 'string' && node.type === 'record' && node.value)
        next.push(...expand(node.value));
    }
    current = next;
  }
  return current;
}

/** The field names an object at `path` may have, in schema order. */
function knownKeys(schema: SchemaNode, path: readonly PathItem[]): string[] {
  const keys = new Set<string>();
  for (const node of schemasAt(schema, path)) {
    for (const key of Object.keys(node.entries ?? {})) keys.add(key);
  }
  return [...keys];
}

/** Optimal string alignment distance: a swap of two neighbours counts as one edit. */
function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, rows[i - 2]![j - 2]! + 1);
      }
      rows[i]![j] = best;
    }
  }
  return rows[a.length]![b.length]!;
}

/**
 * The known name `written` most likely misspells, or undefined. Case and `_` are ignored
 * (`jwks_uri`, `JwksUri`), a prefix of three or more letters counts (`leeway` for
 * `leewaySeconds`), otherwise up to one edit per three letters (`audiance`, `requires`).
 */
function closest(written: string, known: readonly string[]): string | undefined {
  const norm = (text: string) => text.toLowerCase().replaceAll('_', '');
  const w = norm(written);
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const name of known) {
    const k = norm(name);
    const prefix = Math.min(w.length, k.length) >= 3 && (k.startsWith(w) || w.startsWith(k));
    const distance = prefix ? 0.5 : editDistance(w, k);
    const limit = Math.max(1, Math.floor(Math.max(w.length, k.length) / 3));
    if (distance <= limit && distance < bestDistance) {
      best = name;
      bestDistance = distance;
    }
  }
  return best;
}

/** A missing or unknown object key, as valibot reports it: the key's path item is the last. */
function keyIssue(issue: v.BaseIssue<unknown>): 'missing' | 'unknown' | undefined {
  const last = issue.path?.at(-1);
  if (last?.type !== 'object' || last.origin !== 'key') return undefined;
  if (issue.type !== 'strict_object' && issue.type !== 'object') return undefined;
  return issue.expected === 'never' ? 'unknown' : 'missing';
}

/**
 * Turns the first valibot issue into [field, "expected …"] without echoing secrets or large
 * values. `field` is where the problem is: the missing key, or the misspelt one as written (with
 * the name it probably meant), so a misspelt required field is not reported as missing.
 */
export function describeIssue(
  issue: v.BaseIssue<unknown>,
  root = 'policy',
  schema: SchemaNode = PolicySchema as unknown as SchemaNode,
  prefix: readonly PathItem[] = [],
): [string, string] {
  // Issues nested in a union carry paths relative to the union's own value.
  const path = [...prefix, ...(issue.path ?? [])];
  const kind = keyIssue(issue);
  if (kind !== undefined) {
    const parentPath = path.slice(0, -1);
    const key = String(path.at(-1)!.key);
    const known = knownKeys(schema, parentPath);
    if (kind === 'unknown') {
      const meant = closest(key, known);
      return [
        fieldOf(
          path.map((item) => item.key),
          root,
        ),
        meant === undefined
          ? `unknown field; expected one of ${known.join(', ')}`
          : `unknown field (did you mean ${meant}?)`,
      ];
    }
    const parent = path.at(-1)!.input;
    const written =
      typeof parent === 'object' && parent !== null
        ? Object.keys(parent).filter((name) => !known.includes(name))
        : [];
    const misspelt = written.find((name) => closest(name, known) === key);
    if (misspelt !== undefined) {
      return [
        fieldOf([...parentPath.map((item) => item.key), misspelt], root),
        `unknown field (did you mean ${key}?)`,
      ];
    }
    return [
      fieldOf(
        path.map((item) => item.key),
        root,
      ),
      'missing required field',
    ];
  }
  if (issue.type === 'union' && issue.issues?.length) {
    // The most useful nested issue is the deepest one: for `{permision: …}` in a grant, the
    // object option's, not "expected string".
    const deepest = [...issue.issues].sort(
      (a, b) => (b.path?.length ?? 0) - (a.path?.length ?? 0),
    )[0];
    if (deepest && (deepest.path?.length ?? 0) > 0) {
      return describeIssue(deepest, root, schema, path);
    }
  }
  const expected = issue.expected ?? issue.type;
  return [
    fieldOf(
      path.map((item) => item.key),
      root,
    ),
    `expected ${expected}${issue.received ? `, received ${issue.received}` : ''}`,
  ];
}
