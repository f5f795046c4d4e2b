/**
 * The API Gateway Lambda authorizer: REST TOKEN, REST REQUEST (and HTTP API payload 1.0) and
 * HTTP API payload 2.0 events in; an IAM policy or an HTTP API simple response out.
 *
 * - no or bad token: `throw new Error('Unauthorized')` (API Gateway answers 401); on HTTP API
 *   simple responses `{ isAuthorized: false }` (403);
 * - valid token without the permission: an explicit Deny (403);
 * - store, key or configuration failure: any other error (API Gateway answers 500), never an
 *   Allow.
 *
 * Two modes (docs/aws.md, "Modes and caching"): `route` answers for the current route only and
 * needs identity sources that include the method and path; `principal` lists every route the
 * principal may call, so a TOKEN authorizer's cached answer is right for every later route.
 *
 * Every decision is one decision log line (edge `apigateway`, docs/aws.md "Decision logs"),
 * written through `log` before the answer is returned; the authorizer's other lines (principal
 * policy warnings) go through `log` too.
 */
import type {
  APIGatewayAuthorizerResult,
  APIGatewayRequestAuthorizerEvent,
  APIGatewayRequestAuthorizerEventV2,
  APIGatewayTokenAuthorizerEvent,
} from 'aws-lambda';
import { narrowEntries, standingDenies, withStanding } from '../delegation/index.ts';
import { ConfigError } from '../errors.ts';
import { consoleJsonWriter, DecisionLogger } from '../logging/decision-log.ts';
import { compilePermissions } from '../permissions/permission-set.ts';
import { compileRoles } from '../permissions/roles.ts';
import type { Gatehouse } from '../policy/decide.ts';
import { RouteTable } from '../policy/routes.ts';
import { CachedStore } from '../stores/cache.ts';
import { subjectStorageKey } from '../stores/keys.ts';
import type { Decision, Principal, RoleRecord, UserRecord } from '../types.ts';
import {
  MAX_RESOURCE_LENGTH,
  type PrincipalPolicyInput,
  type PrincipalStatements,
  principalStatements,
} from './iam-policy.ts';

export type AuthorizerMode = 'principal' | 'route';
export type HttpApiResponse = 'simple' | 'iam';

/** Largest policy document (serialised JSON, bytes) returned; larger ones deny instead. */
export const MAX_POLICY_BYTES = 8192;
/** `context.reason` of every principal-mode answer (it is reused for later requests). */
export const PRINCIPAL_REASON = 'principal_policy';
/** Budget for the flattened `context` map (serialised JSON, bytes). */
export const CONTEXT_BUDGET_BYTES = 1024;
/**
 * Longest single context value, in bytes of its serialised JSON (escapes and UTF-8 counted);
 * longer values are cut. Subject and actor are never dropped, so each must stay small however
 * it is escaped: 256 control characters would otherwise take 1,536 bytes.
 */
export const CONTEXT_VALUE_MAX = 256;

export interface AuthorizerOptions {
  readonly gatehouse: Gatehouse;
  /** `principal` (TOKEN authorizers with caching) or `route` (default). */
  readonly mode?: AuthorizerMode;
  /** HTTP API payload 2.0 answers: `simple` (default, `EnableSimpleResponses`) or `iam`. */
  readonly httpApiResponse?: HttpApiResponse;
  /** The authorizer's cache TTL, seconds (0 to 3600, default 300: API Gateway's default). */
  readonly cacheTtlSeconds?: number;
  /** A kept claim whose string value becomes `usageIdentifierKey` (REST usage plans). */
  readonly usageIdentifierClaim?: string;
  /**
   * Where every line goes: decision lines and the authorizer's own warnings, each an object
   * with a `level`. Default {@link consoleJsonWriter}: one JSON string per line, for CloudWatch.
   */
  readonly log?: (entry: Record<string, unknown>) => void;
  /**
   * Writes one line per decision (denies always, allows sampled). Default: a logger at the
   * default allow rate (0.01) writing through `log`; null turns decision lines off.
   */
  readonly decisionLog?: DecisionLogger | null;
  /** Clock, ms; default the Gatehouse's. */
  readonly now?: () => number;
}

export type AuthorizerEvent =
  | APIGatewayTokenAuthorizerEvent
  | APIGatewayRequestAuthorizerEvent
  | APIGatewayRequestAuthorizerEventV2;

export type ContextValue = string | number | boolean;

export interface SimpleResponse {
  readonly isAuthorized: boolean;
  readonly context: Record<string, ContextValue>;
}

export type IamResponse = APIGatewayAuthorizerResult & {
  readonly context: Record<string, ContextValue>;
  readonly usageIdentifierKey?: string;
};

export type AuthorizerResponse = SimpleResponse | IamResponse;

/** A method or route ARN split at the stage: `arn:…:api/stage/` + `GET` + `/posts/1`. */
export interface ParsedArn {
  readonly prefix: string;
  readonly verb: string;
  readonly path: string;
}

interface ParsedEvent {
  readonly kind: 'token' | 'request' | 'http';
  readonly method: string;
  readonly path: string;
  readonly authorization: string | undefined;
  readonly ip: string | undefined;
  readonly arn: ParsedArn;
}

/** Thrown for API Gateway's 401; the message is the contract. */
export function unauthorized(): Error {
  return new Error('Unauthorized');
}

/** Any other error becomes API Gateway's 500 (an authorizer failure), never an allow. */
export class AuthorizerFailure extends Error {
  override readonly name = 'AuthorizerFailure';
}

const ARN = /^(arn:[a-z-]+:execute-api:[^:]+:[^:]+:[^/]+\/[^/]+\/)([A-Z*]+)(\/.*)?$/;

export function parseArn(arn: unknown): ParsedArn {
  if (typeof arn !== 'string') throw new AuthorizerFailure('event has no method or route ARN');
  const m = ARN.exec(arn);
  if (!m) throw new AuthorizerFailure('unrecognised method or route ARN');
  return { prefix: m[1]!, verb: m[2]!, path: m[3] ?? '/' };
}

function header(headers: Record<string, string | undefined> | null | undefined, name: string) {
  if (!headers) return undefined;
  const direct = headers[name];
  if (direct !== undefined) return direct;
  const lower = name.toLowerCase();
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === lower) return v;
  return undefined;
}

/** Recognises the three event shapes (documented in docs/aws.md with examples in events/). */
export function parseEvent(event: AuthorizerEvent): ParsedEvent {
  const raw = event as unknown as Record<string, unknown>;
  if (raw === null || typeof raw !== 'object')
    throw new AuthorizerFailure('event is not an object');
  if (raw.type === 'TOKEN') {
    const e = event as APIGatewayTokenAuthorizerEvent;
    const arn = parseArn(e.methodArn);
    // TOKEN events carry neither the path nor the client IP: both come from the ARN or not at all.
    return {
      kind: 'token',
      method: arn.verb,
      path: arn.path,
      authorization: e.authorizationToken,
      ip: undefined,
      arn,
    };
  }
  if (raw.type === 'REQUEST' && raw.version === '2.0') {
    const e = event as APIGatewayRequestAuthorizerEventV2;
    const arn = parseArn(e.routeArn);
    const http = e.requestContext?.http;
    if (!http || typeof http.method !== 'string')
      throw new AuthorizerFailure('HTTP API event without requestContext.http');
    return {
      kind: 'http',
      method: http.method,
      path: stripStage(e.rawPath, e.requestContext.stage),
      authorization: header(e.headers, 'authorization'),
      ip: http.sourceIp,
      arn,
    };
  }
  if (raw.type === 'REQUEST') {
    const e = event as APIGatewayRequestAuthorizerEvent;
    const arn = parseArn(e.methodArn);
    return {
      kind: 'request',
      method: e.httpMethod,
      path: e.path,
      authorization: header(e.headers, 'Authorization'),
      ip: e.requestContext?.identity?.sourceIp,
      arn,
    };
  }
  throw new AuthorizerFailure('unrecognised authorizer event');
}

/** HTTP API `rawPath` starts with the stage name unless the stage is `$default`. */
function stripStage(rawPath: string, stage: string | undefined): string {
  if (typeof rawPath !== 'string') throw new AuthorizerFailure('HTTP API event without rawPath');
  if (!stage || stage === '$default') return rawPath;
  const prefix = `/${stage}`;
  if (rawPath === prefix) return '/';
  return rawPath.startsWith(`${prefix}/`) ? rawPath.slice(prefix.length) : rawPath;
}

const encoder = new TextEncoder();

/** Bytes `value` takes in the context's JSON, quotes left out. */
function serialisedBytes(value: string): number {
  return encoder.encode(JSON.stringify(value)).length - 2;
}

/** Printable ASCII other than `"` and `\`: one byte a character once serialised. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

function clip(value: string): string {
  const cut = value.length > CONTEXT_VALUE_MAX ? value.slice(0, CONTEXT_VALUE_MAX) : value;
  if (PLAIN.test(cut)) return cut;
  // Escapes take up to 6 bytes and UTF-8 up to 4: keep whole characters while they fit. A
  // character's escape does not depend on its neighbours, so the costs add up.
  let bytes = 0;
  let end = 0;
  for (const character of cut) {
    const cost = serialisedBytes(character);
    if (bytes + cost > CONTEXT_VALUE_MAX) break;
    bytes += cost;
    end += character.length;
  }
  return cut.slice(0, end);
}

/** The serialised context's size in bytes, as API Gateway counts it. */
function contextBytes(context: Readonly<Record<string, ContextValue>>): number {
  return encoder.encode(JSON.stringify(context)).length;
}

/**
 * The `context` map: flat string / number / boolean values within {@link CONTEXT_BUDGET_BYTES};
 * optional keys are dropped, least useful first, until it fits.
 */
export function buildContext(
  decision: Decision,
  mode: AuthorizerMode,
  principal?: Principal,
): Record<string, ContextValue> {
  const p = principal ?? decision.principal;
  // A principal-mode answer is reused for the principal's later requests to other routes: it
  // carries only facts about the principal, never the first request's reason or status.
  const context: Record<string, ContextValue> = {
    reason: mode === 'principal' ? PRINCIPAL_REASON : decision.reason,
    mode,
  };
  // The decision's own status (401 for a bad token): HTTP API simple responses answer 403 for
  // every `isAuthorized: false`, so this is where the difference stays visible.
  if (!decision.allow && mode === 'route') context.status = decision.status;
  if (p) {
    context.subject = clip(p.subject);
    if (p.tenant !== undefined) context.tenant = clip(p.tenant);
    context.scopes = clip(p.scopes.join(' '));
    // Who acts for the subject (a Gatehouse delegation token): the origin's X-Auth-Actor.
    if (p.issuerKind === 'self' && p.actors.length > 0) {
      context.actor = clip(p.actors.map((a) => a.subject).join(' '));
      const jti = p.claims.jti;
      if (typeof jti === 'string') context.tokenId = clip(jti);
    }
  }
  // Per-route details only where the answer is per route: a principal-mode answer is reused.
  if (mode === 'route') {
    if (decision.route !== undefined) context.route = clip(decision.route);
    const first = decision.matched?.[0];
    if (first) {
      context.permission = clip(first.required);
      context.grant = clip(first.grant);
    }
  }
  // Serialising the map to measure it costs more than the rest of building it; a bound that
  // never undercounts settles almost every request without it (issue 11).
  if (jsonLengthBound(context) <= CONTEXT_BUDGET_BYTES) return context;
  for (const key of ['grant', 'permission', 'route', 'tokenId', 'scopes', 'tenant']) {
    if (contextBytes(context) <= CONTEXT_BUDGET_BYTES) break;
    delete context[key];
  }
  return context;
}

/**
 * At least the serialised context's length in bytes: a UTF-16 code unit takes at most 6 bytes
 * (`\u001f` or a lone surrogate escaped; 3 bytes in UTF-8 otherwise, 4 for a pair of two), a key
 * is plain ASCII, and numbers and booleans print as String() prints them.
 */
export function jsonLengthBound(context: Readonly<Record<string, ContextValue>>): number {
  let length = 2;
  for (const key in context) {
    const value = context[key];
    length += key.length + 4;
    length += typeof value === 'string' ? 6 * value.length + 2 : String(value).length;
  }
  return length;
}

function statement(effect: 'Allow' | 'Deny', resources: readonly string[]) {
  return { Action: 'execute-api:Invoke', Effect: effect, Resource: [...resources] };
}

interface PrincipalCacheEntry {
  readonly roles: readonly RoleRecord[];
  /** For a delegated principal's entry: the delegator's record it was narrowed from. */
  readonly record?: UserRecord | null;
  readonly key: string;
  readonly statements: PrincipalStatements;
  readonly validUntil: number;
}

/**
 * A path API Gateway hands over never holds the query or a fragment, so a `?` or `#` in it is a
 * decoded `%3F` / `%23` (HTTP APIs deliver `rawPath` decoded). The core would cut the path at
 * `?` (`/health%3F/../ops/shutdown` would be judged as the public `/health`), so such a path is
 * refused as malformed, never stripped.
 */
const QUERY_OR_FRAGMENT = /[?#]/;

/** Characters a raw request-target never holds (so a method ARN holding one was decoded). */
const DECODED_ONLY = /[^\x21-\x7E]|[?#]/;

const MALFORMED: Decision = Object.freeze({
  allow: false,
  status: 400,
  reason: 'malformed_request',
  explain: 'The request path holds a decoded ? or #.',
});

/** Compiled principal policies, per store record (the cache hands back the same object while fresh). */
const NO_RECORD = new Map<string, object>();

export type Authorizer = (event: AuthorizerEvent) => Promise<AuthorizerResponse>;

/** The options, validated and defaulted once, at cold start. */
interface AuthorizerConfig {
  readonly gatehouse: Gatehouse;
  readonly mode: AuthorizerMode;
  readonly httpApiResponse: HttpApiResponse;
  readonly ttl: number;
  readonly usageClaim: string | undefined;
  readonly log: (entry: Record<string, unknown>) => void;
  readonly now: () => number;
  readonly decisionLog: DecisionLogger | null;
  /** Principal-mode statements per store record, so a warm container does not recompile them. */
  readonly compiled: WeakMap<object, PrincipalCacheEntry>;
  /** The policy marks routes strict (principal mode must not list them while the feed lags). */
  readonly hasStrict: boolean;
  /**
   * The routes principal mode lists: without a feed, strict routes always refuse (503), so they
   * are never listed for later requests.
   */
  readonly listedRoutes: RouteTable;
}

/** Validates the options: a mistake fails the cold start, naming the variable, never a request. */
function authorizerConfig(options: AuthorizerOptions): AuthorizerConfig {
  const mode = options.mode ?? 'route';
  if (mode !== 'principal' && mode !== 'route') {
    throw new ConfigError('AUTHORIZER_MODE', 'expected principal or route');
  }
  const httpApiResponse = options.httpApiResponse ?? 'simple';
  if (httpApiResponse !== 'simple' && httpApiResponse !== 'iam') {
    throw new ConfigError('HTTP_API_RESPONSE', 'expected simple or iam');
  }
  const ttl = options.cacheTtlSeconds ?? 300;
  if (!Number.isInteger(ttl) || ttl < 0 || ttl > 3600) {
    throw new ConfigError('AUTHORIZER_TTL_SECONDS', 'expected an integer from 0 to 3600');
  }
  const log = options.log ?? consoleJsonWriter;
  const now = options.now ?? Date.now;
  const routes = options.gatehouse.policy.routes.routes;
  const hasStrict = routes.some((route) => route.strict);
  return {
    gatehouse: options.gatehouse,
    mode,
    httpApiResponse,
    ttl,
    usageClaim: options.usageIdentifierClaim,
    log,
    now,
    decisionLog:
      options.decisionLog === undefined
        ? new DecisionLogger({ write: log, now })
        : options.decisionLog,
    compiled: new WeakMap(),
    hasStrict,
    listedRoutes:
      hasStrict && options.gatehouse.revocation === undefined
        ? new RouteTable(routes.filter((route) => !route.strict))
        : options.gatehouse.policy.routes,
  };
}

/** Builds the authorizer; options are validated here, once, at cold start. */
export function createAuthorizer(options: AuthorizerOptions): Authorizer {
  const config = authorizerConfig(options);
  return function authorize(event: AuthorizerEvent): Promise<AuthorizerResponse> {
    return authorizeEvent(config, event);
  };
}

/** One event: parse it, decide, and answer, with the decision line written before the answer. */
async function authorizeEvent(
  config: AuthorizerConfig,
  event: AuthorizerEvent,
): Promise<AuthorizerResponse> {
  const { decisionLog } = config;
  const parsed = parseEvent(event);
  const startedAt = decisionLog === null ? 0 : decisionLog.start();
  const decision = await decideEvent(config.gatehouse, parsed);
  // The line (with the request's own reason and status, which a principal-mode answer never
  // carries) is written before the answer leaves, however it leaves: a frozen container
  // might never run a pending write. The pending promise never rejects.
  const logged = decisionLog?.log('apigateway', decision, parsed, startedAt);
  if (logged === undefined) {
    // Decision logs off: an authorizer failure (a 500 from API Gateway) still leaves a line.
    if (decisionLog === null && decision.status === 503) {
      config.log({ level: 'error', msg: 'authorizer failure', reason: decision.reason });
    }
    return answer(config, parsed, decision);
  }
  try {
    return await answer(config, parsed, decision);
  } finally {
    await logged;
  }
}

/** The core's decision on the event's request; a decoded `?` or `#` never reaches it. */
async function decideEvent(gatehouse: Gatehouse, parsed: ParsedEvent): Promise<Decision> {
  if (QUERY_OR_FRAGMENT.test(parsed.path)) return MALFORMED;
  return gatehouse.decide({
    method: parsed.method,
    path: parsed.path,
    authorization: parsed.authorization,
    ip: parsed.ip,
  });
}

/** The decision in the shape API Gateway expects for this event and mode (or its 401 / 500). */
function answer(
  config: AuthorizerConfig,
  parsed: ParsedEvent,
  decision: Decision,
): AuthorizerResponse | Promise<IamResponse> {
  if (decision.status === 503) {
    throw new AuthorizerFailure(`authorizer failure (${decision.reason})`);
  }
  const simple = parsed.kind === 'http' && config.httpApiResponse === 'simple';
  if (simple) {
    return { isAuthorized: decision.allow, context: buildContext(decision, 'route') };
  }
  if (decision.status === 401) throw unauthorized();
  if (config.mode === 'principal') return principalPolicy(config, parsed, decision);
  const arn = `${parsed.arn.prefix}${parsed.arn.verb}${parsed.arn.path}`;
  return routePolicy(config, decision, escapeArn(arn));
}

/** `usageIdentifierKey` from the configured claim, for REST usage plans. */
function usageKey(
  config: AuthorizerConfig,
  p: Principal | undefined,
): { usageIdentifierKey?: string } {
  if (config.usageClaim === undefined || !p) return {};
  const value = p.claims[config.usageClaim];
  return typeof value === 'string' && value.length > 0 ? { usageIdentifierKey: value } : {};
}

/** Route mode: Allow or Deny on this request's own ARN only. */
function routePolicy(config: AuthorizerConfig, decision: Decision, arn: string): IamResponse {
  return {
    principalId: decision.principal?.subject ?? 'anonymous',
    policyDocument: {
      Version: '2012-10-17',
      Statement: [statement(decision.allow ? 'Allow' : 'Deny', [arn])],
    },
    context: buildContext(decision, 'route'),
    ...usageKey(config, decision.principal),
  } as IamResponse;
}

/**
 * Principal mode: every route the principal may call, reused by API Gateway for its later
 * requests, with this request's own deny kept explicit.
 */
async function principalPolicy(
  config: AuthorizerConfig,
  parsed: ParsedEvent,
  decision: Decision,
): Promise<IamResponse> {
  // The prefix heads every Resource of an answer reused for later requests: a wildcard in it
  // would widen all of them (API Gateway's own ARNs never hold one).
  if (/[*?]/.test(parsed.arn.prefix)) {
    throw new AuthorizerFailure('method ARN prefix holds * or ?');
  }
  // The answer covers the strict routes for later requests too (API Gateway reuses it for
  // AuthorizerTtl): while the feed lags past their bound, fail this request (an authorizer
  // failure is never cached) rather than hand out an Allow they would refuse (review finding 5).
  if (config.hasStrict && config.gatehouse.revocation?.isLagging() === true) {
    throw new AuthorizerFailure('authorizer failure (revocation_unavailable)');
  }
  const principal = decision.principal ?? (await identify(config.gatehouse, parsed, decision));
  const statements = await statementsFor(config, principal, parsed.arn.prefix);
  const resources = principalResources(config, parsed, decision, statements);
  return principalAnswer(config, parsed, decision, principal, resources);
}

/**
 * Who the token names when the decision did not say: public routes and malformed paths are
 * answered before the token is read, but the cached answer is per token. Authenticated as an
 * `authenticated` route would (Gatehouse.authenticate), not only verified: a revoked or
 * signed-out token, or a delegation the use-time rule refuses, is an anonymous caller here, or
 * its answer would hand it, for AuthorizerTtl, every route its subject held before.
 */
async function identify(
  gatehouse: Gatehouse,
  parsed: ParsedEvent,
  decision: Decision,
): Promise<Principal | undefined> {
  const authenticated = await gatehouse.authenticate({ authorization: parsed.authorization });
  if (authenticated.allow) return authenticated.principal;
  // Keys or the revocation feed unavailable: an authorizer failure, which is never cached.
  if (authenticated.status === 503) {
    throw new AuthorizerFailure(`authorizer failure (${authenticated.reason})`);
  }
  // A bad token on a malformed path: answer 401 now rather than cache a deny for it.
  if (!decision.allow) throw unauthorized();
  return undefined;
}

/** The principal's statements, compiled from its store record and roles (memoised per record). */
async function statementsFor(
  config: AuthorizerConfig,
  principal: Principal | undefined,
  prefix: string,
): Promise<PrincipalStatements> {
  const { gatehouse, ttl, now, compiled } = config;
  const policy = gatehouse.policy;
  const common = {
    routes: config.listedRoutes,
    tenantParam: policy.tenantParam,
    windowSeconds: ttl,
    maxResourceLength: MAX_RESOURCE_LENGTH - prefix.length,
  };
  if (!principal) {
    return principalStatements({
      ...common,
      set: compilePermissions({ user: null, roles: policy.roleGraph }),
      tenant: undefined,
      authenticated: false,
      now: now(),
    });
  }
  const { record, roles } = await loadPermissions(gatehouse, principal);
  const t = now();
  if (gatehouse.delegated(principal)) {
    return delegatedStatements(config, principal, record, roles, common, t);
  }
  const memoKey = record ?? noRecordKey(principal.tenant);
  const cacheKey = `${prefix}|${principal.tenant ?? ''}`;
  const memo = compiled.get(memoKey);
  if (memo && memo.roles === roles && memo.key === cacheKey && t < memo.validUntil)
    return memo.statements;
  const graph = roles.length === 0 ? policy.roleGraph : compileRoles(policy.roles, roles);
  const set = compilePermissions({
    user: record,
    roles: graph,
    now: t,
    // As the decision compiled it: a principal refused there (503) never reaches this point.
    maxEntries: gatehouse.maxRecordEntries,
    source: {
      kind: gatehouse.store.kind,
      key: subjectStorageKey(
        principal.tenant === undefined
          ? { subject: principal.subject }
          : { subject: principal.subject, tenant: principal.tenant },
      ),
    },
  });
  const statements = principalStatements({
    ...common,
    set,
    tenant: principal.tenant,
    authenticated: true,
    now: t,
  });
  // Grants cross the "expires within the window" line as time passes: recompute before that.
  const next =
    set.nextExpiry === undefined ? Number.POSITIVE_INFINITY : (set.nextExpiry - ttl) * 1000;
  compiled.set(memoKey, {
    roles,
    key: cacheKey,
    statements,
    validUntil: Math.min(next, t + 60_000),
  });
  return statements;
}

/** Denies every resource of the API: the answer for a delegation refused as a whole. */
const REFUSED_STATEMENTS: PrincipalStatements = Object.freeze({
  allow: Object.freeze([]) as readonly string[],
  deny: Object.freeze(['*']) as readonly string[],
  omitted: Object.freeze([]) as readonly string[],
});

/**
 * A delegation token's statements: the delegator's set narrowed to the token's scope and every
 * actor's ceiling (denies kept), without routes that refuse delegated callers. Memoised per
 * verified principal, never per record: the delegator's own answer must stay unnarrowed, and
 * two tokens of one delegator differ.
 */
function delegatedStatements(
  config: AuthorizerConfig,
  principal: Principal,
  record: UserRecord | null,
  roles: readonly RoleRecord[],
  common: Omit<PrincipalPolicyInput, 'set' | 'tenant' | 'authenticated' | 'now'>,
  t: number,
): PrincipalStatements {
  const { gatehouse, ttl } = config;
  const policy = gatehouse.policy;
  const memo = config.compiled.get(principal);
  const key = `${common.maxResourceLength}|delegated`;
  if (
    memo &&
    memo.roles === roles &&
    memo.record === record &&
    memo.key === key &&
    t < memo.validUntil
  ) {
    return memo.statements;
  }
  const graph = roles.length === 0 ? policy.roleGraph : compileRoles(policy.roles, roles);
  const set = compilePermissions({ user: record, roles: graph, now: t });
  const found = gatehouse.delegation(principal);
  const view = 'refused' in found ? found : withStanding(found, set, t);
  // A refused delegation (actor rule gone, standing grant revoked) is refused on every route by
  // the decision core, authenticated ones included: the cached policy allows nothing at all.
  if ('refused' in view) return REFUSED_STATEMENTS;
  const narrowed = narrowEntries(set.entries(), view) ?? [];
  // Denies of the standing grant itself (gatehouse.delegate:<actor>:…) narrow it further.
  if (view.standing !== undefined) {
    narrowed.push(...standingDenies(set.entries(), view.standing));
  }
  const statements = principalStatements({
    ...common,
    set: { ...set, check: set.check.bind(set), entries: () => narrowed },
    tenant: principal.tenant,
    authenticated: true,
    delegated: true,
    now: t,
  });
  const next =
    set.nextExpiry === undefined ? Number.POSITIVE_INFINITY : (set.nextExpiry - ttl) * 1000;
  config.compiled.set(principal, {
    roles,
    record,
    key,
    statements,
    validUntil: Math.min(next, t + 60_000),
  });
  return statements;
}

/** The principal's record and its tenant's roles, through the cache when there is one. */
async function loadPermissions(
  gatehouse: Gatehouse,
  principal: Principal,
): Promise<{ record: UserRecord | null; roles: readonly RoleRecord[] }> {
  const store = gatehouse.store;
  const key =
    principal.tenant === undefined
      ? { subject: principal.subject }
      : { subject: principal.subject, tenant: principal.tenant };
  if (store instanceof CachedStore) {
    return {
      record: (await store.lookupUser(key, principal)).record,
      roles: (await store.lookupRoles(principal.tenant)).roles,
    };
  }
  return {
    record: await store.getUser(key, principal),
    roles: await store.getRoles(principal.tenant),
  };
}

/**
 * The Allow and Deny resources as full ARNs, with this request's own Deny added when it was
 * denied; logs when the listing and the uncached decision disagree.
 */
function principalResources(
  config: AuthorizerConfig,
  parsed: ParsedEvent,
  decision: Decision,
  statements: PrincipalStatements,
): { allow: string[]; deny: string[] } {
  const { log } = config;
  const here = `${parsed.arn.verb}${parsed.arn.path}`;
  if (DECODED_ONLY.test(parsed.arn.path)) {
    // Principal mode's malformed-path denies assume method ARNs carry the raw path.
    log({
      level: 'error',
      msg: 'method ARN path holds a character no raw request path has; principal mode assumes raw (percent-encoded) paths (docs/aws.md, "Paths in method ARNs")',
    });
  }
  const allow = statements.allow.map((r) => parsed.arn.prefix + r);
  const deny = statements.deny.map((r) => parsed.arn.prefix + r);
  const listed =
    statements.allow.some((r) => globMatches(r, here)) &&
    !statements.deny.some((r) => globMatches(r, here));
  if (!decision.allow) {
    if (listed)
      log({
        level: 'error',
        msg: 'principal policy would allow a denied route; denying it explicitly',
        route: decision.route ?? here,
      });
    deny.push(ownDeny(parsed.arn.prefix, here));
  } else if (!listed) {
    log({
      level: 'info',
      msg: 'allowed uncached but left out of the principal policy (conditional or item-specific)',
      route: decision.route ?? here,
      reason: decision.reason,
    });
  }
  return { allow, deny };
}

/** The principal-mode IAM answer; a document over {@link MAX_POLICY_BYTES} denies everything. */
function principalAnswer(
  config: AuthorizerConfig,
  parsed: ParsedEvent,
  decision: Decision,
  principal: Principal | undefined,
  { allow, deny }: { allow: string[]; deny: string[] },
): IamResponse {
  const here = `${parsed.arn.verb}${parsed.arn.path}`;
  const Statement = [];
  if (allow.length > 0) Statement.push(statement('Allow', allow));
  if (deny.length > 0) Statement.push(statement('Deny', deny));
  if (Statement.length === 0) Statement.push(statement('Deny', [ownDeny(parsed.arn.prefix, here)]));
  const policyDocument = { Version: '2012-10-17', Statement };
  const body = {
    principalId: principal?.subject ?? 'anonymous',
    policyDocument,
    context: buildContext(decision, 'principal', principal),
    ...usageKey(config, principal),
  };
  if (JSON.stringify(policyDocument).length > MAX_POLICY_BYTES) {
    config.log({
      level: 'error',
      msg: `principal policy exceeds ${MAX_POLICY_BYTES} bytes; denying instead of widening`,
      subject: principal?.subject,
      allows: allow.length,
      denies: deny.length,
    });
    return {
      principalId: body.principalId,
      policyDocument: {
        Version: '2012-10-17',
        Statement: [statement('Deny', [`${parsed.arn.prefix}*`])],
      },
      context: { ...body.context, reason: 'policy_too_large' },
    };
  }
  return body as IamResponse;
}

function noRecordKey(tenant: string | undefined): object {
  const k = tenant ?? '\u0000';
  let key = NO_RECORD.get(k);
  if (!key) {
    if (NO_RECORD.size > 1000) NO_RECORD.clear();
    key = {};
    NO_RECORD.set(k, key);
  }
  return key;
}

/** `*` and `?` in a concrete path would be wildcards in a policy: use `?` for each (narrower than `*`). */
function escapeResource(resource: string): string {
  return resource.replace(/\*/g, '?');
}

function escapeArn(arn: string): string {
  return escapeResource(arn);
}

/**
 * The current request's own Deny, within {@link MAX_RESOURCE_LENGTH}: a longer path is cut and
 * ends in `*`, which still matches it (and only paths sharing its first 511 characters).
 */
function ownDeny(prefix: string, here: string): string {
  const resource = prefix + escapeResource(here);
  return resource.length <= MAX_RESOURCE_LENGTH
    ? resource
    : `${resource.slice(0, MAX_RESOURCE_LENGTH - 1)}*`;
}

/** IAM matching for the handful of patterns in one policy (`*` any run, `?` one char). */
export function globMatches(pattern: string, text: string): boolean {
  let p = 0;
  let t = 0;
  let star = -1;
  let mark = 0;
  while (t < text.length) {
    const c = pattern[p];
    if (c === '?' || (c !== undefined && c !== '*' && c === text[t])) {
      p++;
      t++;
    } else if (c === '*') {
      star = p++;
      mark = t;
    } else if (star !== -1) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
}

// Decision logs for callers wiring their own authorizer (`gatehouse/aws`).
export {
  consoleJsonWriter,
  DecisionLogger,
  type DecisionLoggerOptions,
  type DecisionLogLine,
  readDecisionLogConfig,
} from '../logging/decision-log.ts';
