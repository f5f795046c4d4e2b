/**
 * Loads a policy document once (per isolate / cold start) into a compiled form: a route table,
 * a role graph, and options for the token verifier and the permission cache. Every mistake is a
 * ConfigError naming the field, thrown here and never per request.
 */
import * as v from 'valibot';
import {
  compileDelegation,
  type DelegationConfig,
  selfIssuerOptions,
} from '../delegation/index.ts';
import { ConfigError } from '../errors.ts';
import { compileEvents, type EventsConfig } from '../events/config.ts';
import {
  assertPermission,
  compileConditions,
  compileRoles,
  type RoleGraph,
} from '../permissions/index.ts';
import {
  type CacheOptions,
  type ClaimsStoreOptions,
  checkScopeMap,
  expiryToUnixSeconds,
} from '../stores/index.ts';
import type { IssuerOptions, KeySourceOptions, VerifierOptions } from '../token/index.ts';
import type { Conditions, Grant, RoleRecord } from '../types.ts';
import {
  compileRoute,
  type PermissionTemplate,
  parseTemplate,
  type RouteRequirement,
  RouteTable,
} from './routes.ts';
import {
  describeIssue,
  type GrantDocument,
  type IssuerDocument,
  type PolicyDocument,
  PolicySchema,
  type RouteDocument,
} from './schema.ts';

export interface CompiledPolicy {
  readonly routes: RouteTable;
  /** The policy's static roles, validated; store roles are merged over these per tenant. */
  readonly roles: readonly RoleRecord[];
  /** The static role graph, compiled once (cycles already rejected). */
  readonly roleGraph: RoleGraph;
  /** Verifier options without the runtime seams (fetch, clock, persistence). */
  readonly verifier: Pick<
    VerifierOptions,
    'issuers' | 'leewaySeconds' | 'maxTokenBytes' | 'tokenCache'
  >;
  /** Permission cache options (without the clock). */
  readonly cache: Omit<CacheOptions, 'now'>;
  readonly permissions:
    | { readonly source: 'store' }
    | { readonly source: 'claims'; readonly claims: ClaimsStoreOptions };
  /** Route parameter that must equal the principal's tenant, when tenancy is path-based. */
  readonly tenantParam: string | undefined;
  /** How isolates follow the revocation feed (src/revocation/follower.ts). */
  readonly revocation: { readonly intervalMs: number; readonly strictMaxLagMs: number };
  /** Mistakes that do not stop the policy from working as written; also sent to `onWarning`. */
  readonly warnings: readonly string[];
  /** Gatehouse as an issuer of delegation tokens; null when the policy has no `delegation`. */
  readonly delegation: DelegationConfig | null;
  /** Signed events (issue 13); null when the policy has no `events` section. */
  readonly events: EventsConfig | null;
}

export interface LoadPolicyOptions {
  /**
   * Environment used to resolve `secretEnv` references (process.env on Node, the Worker's env).
   * Any object: a Worker's `interface Env` (as `wrangler types` writes it) has no index signature.
   */
  readonly env?: object;
  /**
   * Receives each warning of this compile (never token contents: there is no token yet). Default:
   * console.warn, each message once per policy document object, since the Worker compiles the
   * same document at start-up and again on its first request.
   */
  readonly onWarning?: (message: string) => void;
  /**
   * false checks the structure of secret-backed parts (the delegation key set) without reading
   * the secret, for a Worker validating at start-up before its secrets exist. Default true.
   */
  readonly secrets?: boolean;
}

/** The messages the default sink already printed, per policy document. */
const warnedDocuments = new WeakMap<object, Set<string>>();

function defaultWarningSink(input: unknown): (message: string) => void {
  return (message) => {
    if (typeof input === 'object' && input !== null) {
      const printed = warnedDocuments.get(input) ?? new Set<string>();
      if (printed.has(message)) return;
      warnedDocuments.set(input, printed.add(message));
    }
    console.warn(`gatehouse: configuration warning: ${message}`);
  };
}

/** Validates and compiles a parsed policy document (JSON or YAML already parsed to a value). */
export function compilePolicy(input: unknown, options: LoadPolicyOptions = {}): CompiledPolicy {
  rejectReservedKeys(input, 'policy');
  const parsed = v.safeParse(PolicySchema, input, { abortPipeEarly: true });
  if (!parsed.success) {
    const [field, expected] = describeIssue(parsed.issues[0]);
    throw new ConfigError(field, expected);
  }
  const doc = parsed.output;

  const roles = Object.entries(doc.roles ?? {}).map(
    ([name, role]): RoleRecord => ({
      name,
      grants: (role.grants ?? []).map((g, i) => toGrant(g, `policy.roles.${name}.grants[${i}]`)),
      denies: (role.denies ?? []).map((g, i) => toGrant(g, `policy.roles.${name}.denies[${i}]`)),
      inherits: role.inherits ?? [],
    }),
  );
  const roleGraph = compileRoles(roles);

  const routes = new RouteTable(doc.routes.map((r, i) => compileRouteDoc(r, i)));
  const tenantParam = doc.tenancy?.pathParam;
  if (tenantParam !== undefined) checkTenantParam(tenantParam, routes);

  const source = doc.permissions?.source ?? 'store';
  // `null` turns a claim off, so only an absent name takes the default (`??` would not).
  const claimName = (key: 'permissionsClaim' | 'scopeClaim', fallback: string) => {
    const value = doc.permissions?.[key];
    return value === undefined ? fallback : value;
  };
  const scopeClaim = claimName('scopeClaim', 'scope');
  const claims: ClaimsStoreOptions = {
    permissionsClaim: claimName('permissionsClaim', 'permissions'),
    scopeClaim,
    rolesClaim: doc.permissions?.rolesClaim ?? null,
    ...(doc.permissions?.scopes !== undefined && { scopes: doc.permissions.scopes }),
  };
  if (source === 'store') {
    for (const key of ['permissionsClaim', 'scopeClaim', 'rolesClaim', 'scopes'] as const) {
      if (doc.permissions?.[key] !== undefined) {
        throw new ConfigError(`policy.permissions.${key}`, 'only applies when source is claims');
      }
    }
  }
  const warnings: string[] = [];
  if (doc.permissions?.scopes !== undefined) {
    const scopes = checkScopeMap(doc.permissions.scopes, 'policy.permissions.scopes');
    if (scopeClaim === null) {
      // No scope is ever read, so no key could match: a contradiction, not a warning.
      throw new ConfigError(
        'policy.permissions.scopes',
        'only applies when scopeClaim is not null',
      );
    }
    const unused = scopesNoRouteNeeds(scopes, routes);
    if (unused.length > 0) {
      warnings.push(
        `policy.permissions.scopes: no route requires what these scopes grant, so they can never match a route (only the check and admin APIs could ask for them): ${unused.join(', ')}`,
      );
    }
  }
  // Claims that rules read must survive the verifier's claim filter.
  const neededClaims = new Set<string>(conditionClaimNames(roles));
  if (source === 'claims') {
    for (const name of [claims.permissionsClaim, claims.rolesClaim, claims.scopeClaim]) {
      if (name) neededClaims.add(name);
    }
  }

  const issuers = doc.issuers.map((issuer, i) =>
    toIssuerOptions(
      issuer,
      `policy.issuers[${i}]`,
      neededClaims,
      (options.env ?? {}) as Readonly<Record<string, unknown>>,
    ),
  );
  const seen = new Set<string>();
  doc.issuers.forEach((issuer, i) => {
    if (seen.has(issuer.issuer)) {
      throw new ConfigError(`policy.issuers[${i}].issuer`, 'each issuer may appear once');
    }
    seen.add(issuer.issuer);
  });

  let delegation: DelegationConfig | null = null;
  if (doc.delegation !== undefined) {
    if (source === 'claims') {
      // The rule decides for the delegator's store record; a token-claims policy has none.
      throw new ConfigError('policy.delegation', 'needs permissions.source store');
    }
    delegation = compileDelegation(
      doc.delegation,
      'policy.delegation',
      (options.env ?? {}) as Readonly<Record<string, unknown>>,
      doc.issuers.map((issuer) => issuer.issuer),
      options.secrets ?? true,
    );
    // Without the key secret no Gatehouse token verifies: delegation is off, closed. The token
    // endpoint says so, naming the variable (the CLI and direct callers need no keys).
    const self = selfIssuerOptions(delegation);
    if (self !== null) issuers.push(self);
  }

  const events =
    doc.events === undefined ? null : compileEvents(doc.events, 'policy.events', delegation);

  const warn = options.onWarning ?? defaultWarningSink(input);
  for (const warning of warnings) warn(warning);

  const tokenCacheEntries = doc.token?.cacheEntries ?? 1000;
  return {
    routes,
    roles,
    roleGraph,
    verifier: {
      issuers,
      leewaySeconds: doc.token?.leewaySeconds ?? 30,
      maxTokenBytes: doc.token?.maxTokenBytes ?? 8192,
      tokenCache: tokenCacheEntries === 0 ? false : { maxEntries: tokenCacheEntries },
    },
    cache: {
      ttlSeconds: doc.cache?.ttlSeconds ?? 30,
      negativeTtlSeconds: doc.cache?.negativeTtlSeconds ?? 5,
      maxEntries: doc.cache?.maxEntries ?? 10_000,
      staleIfErrorSeconds: doc.cache?.staleIfErrorSeconds ?? 0,
    },
    permissions: source === 'claims' ? { source, claims } : { source },
    tenantParam,
    revocation: {
      intervalMs: doc.revocation?.pollIntervalMs ?? 1000,
      strictMaxLagMs: (doc.revocation?.strictMaxLagSeconds ?? 10) * 1000,
    },
    warnings: Object.freeze(warnings),
    delegation,
    events,
  };
}

/**
 * `scope → permission` pairs whose permission no route requirement can match, so the mapping
 * never lets a request through (typically a typo: `read:post` for `read:posts`). A hole in a
 * template (`{id}`) is one segment that a grant's literal or `*` may match.
 */
function scopesNoRouteNeeds(
  scopes: ReadonlyMap<string, readonly string[]>,
  routes: RouteTable,
): string[] {
  const required: (string | null)[][] = [];
  for (const route of routes.routes) {
    const { requirement } = route;
    if (requirement.kind === 'all' || requirement.kind === 'any') {
      for (const template of requirement.permissions) required.push(templateSegments(template));
    }
  }
  const unused: string[] = [];
  for (const [scope, permissions] of scopes) {
    for (const permission of permissions) {
      const grant = permission.split(':');
      if (!required.some((segments) => grantCovers(grant, segments))) {
        unused.push(`${scope} → ${permission}`);
      }
    }
  }
  return unused;
}

/** A template's segments, `null` for a `{param}` hole (holes are whole segments). */
function templateSegments(template: PermissionTemplate): (string | null)[] {
  // NUL cannot occur in a permission, so it marks the holes unambiguously.
  const text = template.parts.map((part, i) => (i % 2 === 1 ? '\u0000' : part)).join('');
  return text.split(':').map((segment) => (segment === '\u0000' ? null : segment));
}

/** {@link permissionMatches} with `null` segments standing for any one filled value. */
function grantCovers(grant: readonly string[], required: readonly (string | null)[]): boolean {
  for (let i = 0; i < grant.length; i++) {
    const segment = grant[i];
    if (segment === '*' && i === grant.length - 1) return required.length > i;
    if (i >= required.length) return false;
    const want = required[i];
    if (segment !== '*' && want !== null && segment !== want) return false;
  }
  return grant.length === required.length;
}

function compileRouteDoc(route: RouteDocument, index: number) {
  const field = `policy.routes[${index}]`;
  const kinds = (['public', 'authenticated', 'require', 'anyOf'] as const).filter(
    (k) => route[k] !== undefined,
  );
  if (kinds.length !== 1) {
    throw new ConfigError(
      field,
      `expected exactly one of public, authenticated, require, anyOf (found ${kinds.join(', ') || 'none'})`,
    );
  }
  const templates = (list: readonly string[], key: string) =>
    list.map((text, i) => {
      const template = parseTemplate(text, `${field}.${key}[${i}]`);
      // Check the grammar with each hole replaced by a plain segment value.
      const sample = template.parts.map((p, j) => (j % 2 === 1 ? 'x' : p)).join('');
      assertPermission(sample, `${field}.${key}[${i}]`, { allowWildcards: false });
      return template;
    });
  let requirement: RouteRequirement;
  if (route.public) requirement = { kind: 'public' };
  else if (route.authenticated) requirement = { kind: 'authenticated' };
  else {
    const kind = route.require ? 'all' : 'any';
    const permissions = route.require
      ? templates(route.require, 'require')
      : templates(route.anyOf!, 'anyOf');
    requirement = { kind, permissions, filled: permissions.some((t) => t.parts.length > 1) };
  }
  const strict = route.strict === true ? { strict: true } : {};
  const delegated = route.delegated ?? true;
  return compileRoute(
    route.method === undefined
      ? { path: route.path, requirement, delegated, ...strict }
      : { method: route.method, path: route.path, requirement, delegated, ...strict },
    index,
    field,
  );
}

/**
 * A misspelt tenant parameter would switch tenant isolation off without a word: it must be a
 * parameter name that some route declares.
 */
function checkTenantParam(name: string, routes: RouteTable): void {
  const declared = routes.routes.some((route) =>
    route.segments.some((segment) => 'param' in segment && segment.param === name),
  );
  if (!declared) {
    throw new ConfigError(
      'policy.tenancy.pathParam',
      `no route declares :${name}; expected the name of a path parameter such as tenant in /t/:tenant/...`,
    );
  }
}

const RESERVED_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * valibot's record() silently drops these keys, which could remove a role or a claim condition
 * (and so widen a grant): refuse them anywhere in the document.
 */
function rejectReservedKeys(value: unknown, field: string): void {
  if (Array.isArray(value)) {
    value.forEach((item, i) => {
      rejectReservedKeys(item, `${field}[${i}]`);
    });
  } else if (value !== null && typeof value === 'object') {
    for (const key of Object.keys(value)) {
      if (RESERVED_KEYS.has(key))
        throw new ConfigError(`${field}.${key}`, 'reserved name; choose another');
      rejectReservedKeys((value as Record<string, unknown>)[key], `${field}.${key}`);
    }
  }
}

/** A grant as written in the policy or a seed file: a string, or `{ permission, expires, when }`. */
export function toGrant(input: GrantDocument, field: string): Grant {
  if (typeof input === 'string') {
    assertPermission(input, field, { allowWildcards: true });
    return { permission: input };
  }
  assertPermission(input.permission, `${field}.permission`, { allowWildcards: true });
  const grant: { permission: string; expiresAt?: number; when?: Conditions } = {
    permission: input.permission,
  };
  if (input.expires !== undefined)
    grant.expiresAt = expiryToUnixSeconds(input.expires, `${field}.expires`);
  if (input.when !== undefined) {
    compileConditions(input.when as Conditions, `${field}.when`); // validates; compiled again per set
    grant.when = input.when as Conditions;
  }
  return grant;
}

function conditionClaimNames(roles: readonly RoleRecord[]): string[] {
  const names: string[] = [];
  for (const role of roles) {
    for (const grant of [...role.grants, ...(role.denies ?? [])]) {
      names.push(...Object.keys(grant.when?.claims ?? {}));
    }
  }
  return names;
}

function toIssuerOptions(
  doc: IssuerDocument,
  field: string,
  neededClaims: ReadonlySet<string>,
  env: Readonly<Record<string, unknown>>,
): IssuerOptions {
  if (doc.tenant !== undefined && doc.tenantClaim !== undefined) {
    throw new ConfigError(`${field}.tenant`, 'use either tenant (fixed) or tenantClaim, not both');
  }
  const keepClaims = [...new Set([...(doc.keepClaims ?? []), ...neededClaims])];
  const options: IssuerOptions = {
    issuer: doc.issuer,
    keys: toKeySource(doc, `${field}.keys`, env),
    audiences: doc.audiences,
    algorithms: doc.algorithms,
    ...(doc.types !== undefined && { types: doc.types }),
    ...(doc.requireType !== undefined && { requireType: doc.requireType }),
    ...(doc.tenantClaim !== undefined && { tenant: { claim: doc.tenantClaim } }),
    ...(doc.tenant !== undefined && { tenant: { fixed: doc.tenant } }),
    ...(keepClaims.length > 0 && { keepClaims }),
    ...(doc.maxAgeSeconds !== undefined && { maxAgeSeconds: doc.maxAgeSeconds }),
  };
  return options;
}

function toKeySource(
  doc: IssuerDocument,
  field: string,
  env: Readonly<Record<string, unknown>>,
): KeySourceOptions {
  const keys = doc.keys;
  const given = (['jwksUri', 'jwks', 'publicKeyPem', 'secretEnv'] as const).filter(
    (k) => keys[k] !== undefined,
  );
  if (given.length !== 1) {
    throw new ConfigError(
      field,
      `expected exactly one of jwksUri, jwks, publicKeyPem, secretEnv (found ${given.join(', ') || 'none'})`,
    );
  }
  const remoteOnly = [
    'cacheTtlSeconds',
    'cooldownSeconds',
    'timeoutMs',
    'maxStaleSeconds',
  ] as const;
  if (keys.jwksUri === undefined) {
    for (const k of remoteOnly) {
      if (keys[k] !== undefined) throw new ConfigError(`${field}.${k}`, 'only applies to jwksUri');
    }
  }
  if (keys.jwksUri !== undefined) {
    let url: URL;
    try {
      url = new URL(keys.jwksUri);
    } catch {
      throw new ConfigError(`${field}.jwksUri`, 'expected an absolute https URL');
    }
    const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
      throw new ConfigError(
        `${field}.jwksUri`,
        'expected https (http is allowed only on loopback)',
      );
    }
    return {
      jwksUri: keys.jwksUri,
      ...(keys.cacheTtlSeconds !== undefined && { cacheTtlSeconds: keys.cacheTtlSeconds }),
      ...(keys.cooldownSeconds !== undefined && { cooldownSeconds: keys.cooldownSeconds }),
      ...(keys.timeoutMs !== undefined && { timeoutMs: keys.timeoutMs }),
      ...(keys.maxStaleSeconds !== undefined && { maxStaleSeconds: keys.maxStaleSeconds }),
    };
  }
  if (keys.jwks !== undefined) {
    return { jwks: keys.jwks as unknown as Extract<KeySourceOptions, { jwks: unknown }>['jwks'] };
  }
  const algorithm = keys.algorithm ?? doc.algorithms[0]!;
  if (!doc.algorithms.includes(algorithm)) {
    throw new ConfigError(`${field}.algorithm`, `expected one of the issuer's algorithms`);
  }
  const kid = keys.kid !== undefined ? { kid: keys.kid } : {};
  if (keys.publicKeyPem !== undefined) {
    if (algorithm.startsWith('HS')) {
      throw new ConfigError(`${field}.algorithm`, 'a public key needs an asymmetric algorithm');
    }
    return { publicKeyPem: keys.publicKeyPem, algorithm, ...kid };
  }
  const name = keys.secretEnv!;
  const secret = env[name];
  if (typeof secret !== 'string' || secret.length === 0) {
    throw new ConfigError(`${field}.secretEnv`, `environment variable ${name} is not set`);
  }
  if (algorithm !== 'HS256' && algorithm !== 'HS384' && algorithm !== 'HS512') {
    throw new ConfigError(`${field}.algorithm`, 'a shared secret needs HS256, HS384 or HS512');
  }
  return { secret, algorithm, ...kid };
}

export type { PolicyDocument };
