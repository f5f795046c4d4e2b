/**
 * The admin API: REST resources for a subject's grants, denies and role assignments, the
 * tenant's store roles, the explain check and the audit trail. A thin shell over
 * {@link PermissionAdmin} (the CLI's code), so both validate and audit the same way. Served by the
 * guard Worker under `<prefix>/v1/admin` (KV) and by the optional admin Lambda under `/v1/admin`
 * (DynamoDB); docs/admin-api.md is the reference.
 *
 * Every call, in this order (so a caller without the permission learns nothing about bodies):
 * 1. the bearer token verifies (401 with an RFC 6750 challenge; 503 when keys are unavailable)
 *    and is not revoked (401 `session_revoked` / `token_revoked`, as at the routes);
 * 2. the caller holds `admin:permissions`, or `admin:permissions:<tenant>` for a tenant's data
 *    (403 `missing_permission` / `explicit_deny`; 503 when the store cannot say). A caller whose
 *    token names a tenant manages that tenant only (403 `tenant_mismatch` for another);
 * 3. the route, the query and then the JSON body are validated strictly (404, 405, 415, 413, 400
 *    naming the field); nothing is written on a mistake;
 * 4. the change runs through PermissionAdmin, which writes an audit record (actor
 *    `<issuer>#<subject>`, via `admin-api`) for every change.
 *
 * No Workers or Node imports, and not the YAML parser: this module is bundled into the Worker.
 */
import { explainRequest } from '../admin/explain.ts';
import { type ChangeResult, PermissionAdmin } from '../admin/operations.ts';
import { parseExpiry, parseSince } from '../admin/time.ts';
import type { AdminStore, AuditRecord } from '../admin/types.ts';
import {
  encodeActor,
  ISSUER_MARK,
  isWellFormed,
  listCovers,
  STANDING_PREFIX,
  standingGrant,
} from '../delegation/index.ts';
import { AdminError, ConfigError, StoreError, TokenError } from '../errors.ts';
import type { DecisionLogger } from '../logging/decision-log.ts';
import { isValidPermission } from '../permissions/grammar.ts';
// Not ../policy/index.ts: it re-exports the YAML parser, which a Worker must not bundle.
import type { Gatehouse } from '../policy/decide.ts';
import { delegatorLacks } from '../policy/delegator.ts';
import { fillTemplate, type PermissionTemplate } from '../policy/routes.ts';
import type { TrackedFeed } from '../revocation/feed.ts';
import { CachedStore } from '../stores/cache.ts';
import { extractBearer } from '../token/index.ts';
import type { Decision, Grant, Principal, RoleRecord, SubjectKey } from '../types.ts';
import { type JsonBodyRefusal, readCappedText, readJsonBody } from './body.ts';
import {
  type ClientContext,
  CONSISTENCY_HEADER,
  clientContext,
  denyResponse,
} from './responses.ts';

/** The permission that allows every admin call, for every tenant and for untenanted data. */
export const ADMIN_PERMISSION = 'admin:permissions';
/** Where the resources live when no base path is given (the admin Lambda's default). */
export const DEFAULT_ADMIN_BASE_PATH = '/v1/admin';
/** Request bodies larger than this are refused (413) before parsing. */
export const MAX_ADMIN_BODY_BYTES = 64 * 1024;
/** Longest subject, role name, tenant or other text parameter accepted, in characters. */
export const MAX_ADMIN_TEXT = 1024;
/** Most audit records one call lists. */
export const MAX_AUDIT_LIMIT = 1000;

/** `admin:permissions:{tenant}`, filled the way route templates are (one percent-encoded segment). */
const TENANT_PERMISSION: PermissionTemplate = {
  text: `${ADMIN_PERMISSION}:{tenant}`,
  parts: [`${ADMIN_PERMISSION}:`, 'tenant', ''],
};

/**
 * The permissions a caller may hold to manage `tenant` (any one suffices): `admin:permissions`,
 * and for a tenant also `admin:permissions:<tenant>` (the tenant percent-encoded as route
 * templates fill values, so `Acme Corp` is `admin:permissions:Acme%20Corp`). A tenant too long
 * for one permission segment can only be managed with `admin:permissions`.
 */
export function adminPermissionsFor(tenant: string | undefined): string[] {
  if (tenant === undefined) return [ADMIN_PERMISSION];
  const scoped = fillTemplate(TENANT_PERMISSION, { tenant });
  return isValidPermission(scoped) ? [ADMIN_PERMISSION, scoped] : [ADMIN_PERMISSION];
}

export interface AdminApiOptions {
  /** Verifies callers' tokens and checks their admin permission (through its cached store). */
  readonly gatehouse: Gatehouse;
  /** Where changes are written and the audit trail kept: the store the Gatehouse reads. */
  readonly store: AdminStore;
  /** Roles assignments may name and store roles may inherit; default the Gatehouse policy's. */
  readonly policyRoles?: readonly RoleRecord[];
  /** Days audit records are kept, 1 to 3650 (default 90). */
  readonly auditRetentionDays?: number;
  /**
   * Entries a change may grow one record to (a subject's assignments + grants + denies, a
   * tenant's role set); default 10000, 1 to 1000000; more is a 409 `record_too_large`. Keep it at
   * or below the edges' bound.
   */
  readonly maxRecordEntries?: number;
  /** Path the resources live under, such as `/.gatehouse/v1/admin` (default `/v1/admin`). */
  readonly basePath?: string;
  /** Clock, ms (default Date.now). */
  readonly now?: () => number;
  /** Receives one entry per unexpected failure (never a token or a body); default console.error. */
  readonly log?: (entry: Record<string, unknown>) => void;
  /**
   * Writes the decision on each call's admin permission (401 / 403 / allow) as a decision line,
   * edge `admin-api`; null or absent: none.
   */
  readonly decisionLog?: DecisionLogger | null;
  /**
   * The revocation feed: sign-outs and token revocations go there, and every change answers with
   * its epoch in the `Gatehouse-Consistency` header. Absent: those two routes answer 400.
   */
  readonly feed?: TrackedFeed;
}

/**
 * One request, already taken apart: what the Worker builds from a Fetch API Request and the
 * Lambda from an API Gateway event (whose path API Gateway may already have decoded).
 */
export interface AdminRequest {
  readonly method: string;
  /** The path below the base path as segments, each decoded exactly once; null: a bad escape. */
  readonly segments: readonly string[] | null;
  readonly query: URLSearchParams;
  readonly headers: Headers;
  /** The body as UTF-8 text, at most `maxBytes` (null when larger); throws on invalid UTF-8. */
  readonly body: (maxBytes: number) => Promise<string | null>;
  /** Client IP and country, for the caller's own conditional grants. */
  readonly context: ClientContext;
}

export interface AdminApi {
  readonly basePath: string;
  /** Serves a Fetch API request (the Worker): path segments are percent-decoded once here. */
  fetch(request: Request, context?: ClientContext): Promise<Response>;
  /** Serves a request taken apart by the caller (the Lambda adapter). Never throws. */
  handle(request: AdminRequest): Promise<Response>;
}

// ---------------------------------------------------------------------------------------------
// Responses

export type AdminReason =
  | 'invalid_request'
  | 'not_found'
  | 'conflict'
  | 'record_too_large'
  | 'method_not_allowed'
  | 'body_too_large'
  | 'unsupported_media_type'
  | 'tenant_mismatch'
  | 'store_unavailable'
  | 'store_invalid_record'
  | 'store_record_too_large'
  | 'configuration_error'
  | 'internal_error';

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/**
 * An `application/problem+json` response (RFC 9457) shaped like the other endpoints' (`reason`),
 * plus `field` naming the input at fault. `detail` never holds a token or error internals.
 */
export function adminProblem(
  status: number,
  reason: AdminReason,
  detail: string,
  extra: { field?: string | undefined; headers?: Record<string, string> } = {},
): Response {
  const body = {
    type: 'about:blank',
    title: TITLES[status] ?? 'Error',
    status,
    reason,
    detail,
    ...(extra.field !== undefined && { field: extra.field }),
  };
  return new Response(JSON.stringify(body), {
    status,
    headers: {
      'content-type': 'application/problem+json',
      'cache-control': 'no-store',
      ...extra.headers,
    },
  });
}

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
  });
}

const STATUS_FOR: Record<AdminError['code'], number> = {
  invalid_request: 400,
  not_found: 404,
  conflict: 409,
  // The request is well-formed; the record it would change is full: shrink it first.
  record_too_large: 409,
};

/** An input mistake, as the problem callers fix by reading `field`. */
function invalid(field: string, expected: string): AdminError {
  return new AdminError('invalid_request', `${field}: ${expected}`, { field });
}

// ---------------------------------------------------------------------------------------------
// Routes

type Operation =
  | 'user.show'
  | 'grant'
  | 'revoke'
  | 'deny'
  | 'undeny'
  | 'assign'
  | 'unassign'
  | 'roles.list'
  | 'role.show'
  | 'role.put'
  | 'role.rm'
  | 'check'
  | 'audit'
  | 'sessions.revoke'
  | 'token.revoke';

interface Route {
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Literal segments, and `:name` for a parameter. */
  readonly path: readonly string[];
  readonly operation: Operation;
  /** Query parameters besides `tenant`. */
  readonly query?: readonly string[];
  readonly body?: boolean;
}

const ROUTES: readonly Route[] = [
  { method: 'GET', path: ['users', ':subject'], operation: 'user.show' },
  { method: 'POST', path: ['users', ':subject', 'grants'], operation: 'grant', body: true },
  { method: 'DELETE', path: ['users', ':subject', 'grants', ':permission'], operation: 'revoke' },
  { method: 'POST', path: ['users', ':subject', 'denies'], operation: 'deny', body: true },
  { method: 'DELETE', path: ['users', ':subject', 'denies', ':permission'], operation: 'undeny' },
  { method: 'POST', path: ['users', ':subject', 'roles'], operation: 'assign', body: true },
  { method: 'DELETE', path: ['users', ':subject', 'roles', ':role'], operation: 'unassign' },
  { method: 'GET', path: ['roles'], operation: 'roles.list' },
  { method: 'GET', path: ['roles', ':role'], operation: 'role.show' },
  { method: 'PUT', path: ['roles', ':role'], operation: 'role.put', body: true },
  { method: 'DELETE', path: ['roles', ':role'], operation: 'role.rm' },
  { method: 'POST', path: ['check'], operation: 'check', body: true },
  {
    method: 'POST',
    path: ['users', ':subject', 'sessions', 'revoke'],
    operation: 'sessions.revoke',
  },
  { method: 'POST', path: ['tokens', 'revoked'], operation: 'token.revoke', body: true },
  {
    method: 'GET',
    path: ['audit'],
    operation: 'audit',
    query: ['subject', 'role', 'since', 'limit'],
  },
];

type RouteMatch =
  | { readonly route: Route; readonly params: Readonly<Record<string, string>> }
  | { readonly allow: readonly string[] }
  | null;

function matchRoute(method: string, segments: readonly string[]): RouteMatch {
  const allow: string[] = [];
  for (const route of ROUTES) {
    if (route.path.length !== segments.length) continue;
    const params: Record<string, string> = {};
    let ok = true;
    for (let i = 0; i < route.path.length && ok; i++) {
      const part = route.path[i]!;
      const segment = segments[i]!;
      if (part.startsWith(':')) params[part.slice(1)] = segment;
      else ok = part === segment;
    }
    if (!ok) continue;
    if (route.method === method) return { route, params };
    allow.push(route.method);
  }
  return allow.length > 0 ? { allow } : null;
}

// ---------------------------------------------------------------------------------------------
// Input

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `value` as an object with only `keys`; `where` names it in errors (`(body)`, `grants[2]`). */
function strictObject(value: unknown, keys: readonly string[], where: string) {
  if (!isObject(value)) throw invalid(where, `expected an object with ${keys.join(', ')}`);
  for (const key of Object.keys(value)) {
    if (!keys.includes(key)) {
      const field = where === '(body)' ? key : `${where}.${key}`;
      throw invalid(field, `unknown key; expected one of ${keys.join(', ')}`);
    }
  }
  return value;
}

function textParam(value: unknown, field: string, what: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_ADMIN_TEXT) {
    throw invalid(field, `expected ${what} (1 to ${MAX_ADMIN_TEXT} characters)`);
  }
  // A lone surrogate reads as U+FFFD once encoded as UTF-8 (keys, grants): someone else's name.
  if (!isWellFormed(value)) throw invalid(field, `expected ${what} in well-formed Unicode`);
  return value;
}

/**
 * An expiry: Unix seconds (a number), an ISO 8601 time with zone, or a duration from now
 * (`90s`, `15m`, `2h`, `7d`, `2w`), as the CLI's `--expires`. Whether it is in the future is
 * PermissionAdmin's check.
 */
export function parseExpires(value: unknown, field: string, nowMs: number): number {
  const parsed = parseExpiry(value, nowMs);
  if (parsed.ok) return parsed.unixSeconds;
  throw invalid(
    field,
    'expected Unix seconds, an ISO 8601 time with zone, or a duration such as 2h, 7d, 2w',
  );
}

/** A grant or deny from a body: `{permission, expires?, when?}` (or, inside a role, a string). */
function readGrantInput(value: unknown, where: string, nowMs: number, allowString: boolean): Grant {
  if (allowString && typeof value === 'string') return { permission: value };
  const at = (key: string) => (where === '(body)' ? key : `${where}.${key}`);
  const obj = strictObject(value, ['permission', 'expires', 'when'], where);
  if (typeof obj.permission !== 'string') {
    throw invalid(at('permission'), 'expected a permission like read:posts');
  }
  if (obj.when !== undefined && !isObject(obj.when)) {
    throw invalid(at('when'), 'expected an object of conditions (ip, time, claims, country)');
  }
  return {
    permission: obj.permission,
    ...(obj.expires !== undefined && {
      expiresAt: parseExpires(obj.expires, at('expires'), nowMs),
    }),
    ...(obj.when !== undefined && { when: obj.when }),
  };
}

function readRoleBody(value: unknown, name: string, nowMs: number): RoleRecord {
  const obj = strictObject(value, ['grants', 'denies', 'inherits'], '(body)');
  const list = (key: 'grants' | 'denies' | 'inherits'): unknown[] => {
    const entries = obj[key] ?? [];
    if (!Array.isArray(entries) || entries.length > 1000) {
      throw invalid(key, 'expected a list of at most 1000 entries');
    }
    return entries;
  };
  const grants = list('grants').map((g, i) => readGrantInput(g, `grants[${i}]`, nowMs, true));
  const denies = list('denies').map((g, i) => readGrantInput(g, `denies[${i}]`, nowMs, true));
  const inherits = list('inherits').map((r, i) => textParam(r, `inherits[${i}]`, 'a role name'));
  return { name, grants, denies, inherits };
}

/** `?since=`: a duration back from now (`1h`, `7d`) or an ISO 8601 date or time. */
function sinceParam(text: string, nowMs: number): number {
  const since = parseSince(text, nowMs);
  if (since === null) {
    throw invalid('since', 'expected a duration back from now (1h, 1d, 30d) or an ISO date/time');
  }
  return since;
}

/** The only value of a query parameter; repeating one is a mistake (which one would count?). */
function single(query: URLSearchParams, name: string): string | undefined {
  const values = query.getAll(name);
  if (values.length > 1) throw invalid(name, 'expected at most one value');
  return values[0];
}

function checkQuery(query: URLSearchParams, allowed: readonly string[]): void {
  for (const name of new Set(query.keys())) {
    // A misspelt ?tenant= would otherwise address untenanted data.
    if (name !== 'tenant' && !allowed.includes(name)) {
      throw invalid(name, `unknown query parameter; expected ${['tenant', ...allowed].join(', ')}`);
    }
    single(query, name);
  }
}

/**
 * Fields as the caller wrote them: PermissionAdmin names a grant `grant.when.ip[0]`, the body has
 * `when.ip[0]`; a role's name is the `role` in the path.
 */
function bodyField(operation: Operation, field: string | undefined): string | undefined {
  if (field === undefined) return undefined;
  if (operation === 'grant' || operation === 'deny') {
    const stripped = field.replace(/^(grant|deny)\./, '');
    return stripped === 'grant' || stripped === 'deny' ? '(body)' : stripped;
  }
  if (operation === 'role.put' && field === 'name') return 'role';
  return field;
}

// ---------------------------------------------------------------------------------------------
// Body

/** The media type the admin API has always accepted: exactly `application/json` (+ parameters). */
const ADMIN_MEDIA_TYPE = /^application\/json\s*(;|$)/i;

/** A refused body, thrown past the parsing steps to the answer it already is. */
class BodyProblem extends Error {
  readonly response: Response;
  constructor(response: Response) {
    super('body refused');
    this.response = response;
  }
}

/** Each refusal of the shared body reader as the admin API has always answered it. */
function bodyProblem(refusal: JsonBodyRefusal): Response {
  switch (refusal) {
    case 'unsupported_media_type':
      return adminProblem(415, 'unsupported_media_type', 'Send the body as application/json.');
    case 'too_large':
      return adminProblem(
        413,
        'body_too_large',
        `The body is larger than ${MAX_ADMIN_BODY_BYTES} bytes.`,
      );
    case 'not_json':
      return adminProblem(400, 'invalid_request', 'The body is not valid JSON.', {
        field: '(body)',
      });
    case 'duplicate_member_name':
      return adminProblem(400, 'invalid_request', 'The body repeats a member name.', {
        field: '(body)',
      });
  }
}

/** The call's JSON body; throws {@link BodyProblem} with the answer when it is refused. */
async function readBody(request: AdminRequest): Promise<unknown> {
  const read = await readJsonBody(request, {
    maxBytes: MAX_ADMIN_BODY_BYTES,
    mediaType: ADMIN_MEDIA_TYPE,
  });
  if (!read.ok) throw new BodyProblem(bodyProblem(read.refusal));
  return read.value;
}

/** Whether `pathname` is `basePath` or below it. */
export function underBasePath(pathname: string, basePath: string): boolean {
  return pathname === basePath || pathname.startsWith(`${basePath}/`);
}

/**
 * Splits a path below `basePath` and percent-decodes each segment exactly once (so a subject
 * `a/b` travels as `a%2Fb`, and `%2541` is the subject `%41`). Null for a bad escape.
 */
export function pathSegments(pathname: string, basePath: string): string[] | null {
  const rest = pathname.slice(basePath.length);
  if (rest === '' || rest === '/') return [];
  try {
    return rest.slice(1).split('/').map(decodeURIComponent);
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// The API: built once (validated options), then each call runs
// authenticate → scope the tenant → authorize → route → read the input → run the operation.

const BASE_PATH = /^(\/[A-Za-z0-9._~-]+)+$/;

/** The options, validated and defaulted once when the API is built. */
interface AdminContext {
  readonly gatehouse: Gatehouse;
  readonly store: AdminStore;
  readonly now: () => number;
  readonly policyRoles: readonly RoleRecord[];
  readonly basePath: string;
  readonly log: (entry: Record<string, unknown>) => void;
  readonly decisionLog: DecisionLogger | null | undefined;
  readonly auditRetentionDays: number | undefined;
  readonly maxRecordEntries: number | undefined;
  readonly feed: TrackedFeed | undefined;
}

/** Validates the options at start-up, so a mistake fails the deploy rather than the first call. */
function adminContext(options: AdminApiOptions): AdminContext {
  const basePath = options.basePath ?? DEFAULT_ADMIN_BASE_PATH;
  if (!BASE_PATH.test(basePath) || /\/\.{1,2}(\/|$)/.test(basePath)) {
    throw new ConfigError('basePath', 'expected a path such as /v1/admin (no trailing slash)');
  }
  const api: AdminContext = {
    gatehouse: options.gatehouse,
    store: options.store,
    now: options.now ?? Date.now,
    policyRoles: options.policyRoles ?? options.gatehouse.policy.roles,
    basePath,
    log: options.log ?? ((entry: Record<string, unknown>) => console.error(JSON.stringify(entry))),
    decisionLog: options.decisionLog,
    auditRetentionDays: options.auditRetentionDays,
    maxRecordEntries: options.maxRecordEntries,
    feed: options.feed,
  };
  // Built once now only to validate the retention at start-up rather than on the first call.
  adminFor(api, 'gatehouse#start-up');
  return api;
}

/**
 * Who a change is audited as: `<iss>#<sub>`, and for a delegation token (admitted only with
 * `delegation.adminApi`) the actor chain and token id too, so the record says who really acted.
 */
function auditActor(caller: Principal): string {
  const base = `${caller.issuer}#${caller.subject}`;
  if (caller.issuerKind !== 'self' || caller.actors.length === 0) return base;
  const jti = caller.claims.jti;
  const chain = caller.actors.map((a) => a.subject).join(' > ');
  return `${base} by ${chain}${typeof jti === 'string' ? ` (token ${jti})` : ''}`;
}

/** The management operations, acting (and audited) as `actor`. */
function adminFor(api: AdminContext, actor: string): PermissionAdmin {
  return new PermissionAdmin({
    store: api.store,
    policyRoles: api.policyRoles,
    actor,
    via: 'admin-api',
    ...(api.auditRetentionDays !== undefined && { auditRetentionDays: api.auditRetentionDays }),
    ...(api.maxRecordEntries !== undefined && { maxRecordEntries: api.maxRecordEntries }),
    ...(api.feed !== undefined && { feed: api.feed }),
    now: api.now,
  });
}

export function createAdminApi(options: AdminApiOptions): AdminApi {
  const api = adminContext(options);
  const handle = (request: AdminRequest) => handleSafely(api, request);
  return {
    basePath: api.basePath,
    handle,
    fetch: (request, context) => fetchAdmin(api, handle, request, context),
  };
}

/** The Worker's entry: a Fetch API request taken apart as the Lambda adapter does it. */
function fetchAdmin(
  api: AdminContext,
  handle: (request: AdminRequest) => Promise<Response>,
  request: Request,
  context: ClientContext | undefined,
): Promise<Response> {
  const url = new URL(request.url);
  if (!underBasePath(url.pathname, api.basePath)) {
    return Promise.resolve(adminProblem(404, 'not_found', 'No such admin resource.'));
  }
  return handle({
    method: request.method,
    segments: pathSegments(url.pathname, api.basePath),
    query: url.searchParams,
    headers: request.headers,
    body: (max) => readCappedText(request.body, max),
    context: context ?? clientContext(request),
  });
}

/** {@link AdminApi.handle} never throws: nothing internal may reach the caller. */
async function handleSafely(api: AdminContext, request: AdminRequest): Promise<Response> {
  try {
    return await handleCall(api, request);
  } catch (error) {
    // Unreachable in practice (every step answers), but nothing internal may reach the caller.
    api.log({
      level: 'error',
      msg: 'admin api: unexpected error',
      error: error instanceof Error ? error.name : typeof error,
    });
    return adminProblem(500, 'internal_error', 'The admin call failed.');
  }
}

/**
 * One call, in the order the module comment promises: a caller without the permission learns
 * nothing about routes or bodies.
 */
async function handleCall(api: AdminContext, request: AdminRequest): Promise<Response> {
  const startedAt = api.decisionLog?.start() ?? 0;
  const caller = await authenticate(api, request, startedAt);
  if (caller instanceof Response) return caller;
  // The caller's own standing delegations: no admin permission, only her own record.
  if (request.segments?.[0] === 'delegations') return handleDelegations(api, request, caller);
  const scope = scopeTenant(caller, request.query);
  if (scope instanceof Response) return scope;
  const denied = await authorize(api, request, caller, scope, startedAt);
  if (denied !== null) return denied;
  // Authorized: from here on, input mistakes are reported in full.
  const match = resolveRoute(request);
  if (match instanceof Response) return match;
  try {
    const call = await readCall(api, request, caller, match, scope.tenant);
    const response = await OPERATIONS[match.route.operation](call);
    // Read your writes: the feed's epoch after this call's change, for the check API.
    const epoch = call.admin.epoch;
    if (epoch !== undefined) response.headers.set(CONSISTENCY_HEADER, String(epoch));
    return response;
  } catch (error) {
    if (error instanceof BodyProblem) return error.response;
    return errorResponse(api, error, match.route.operation);
  }
}

/** Verifies the caller's token: the principal, or the logged 401 / 503 refusal. */
async function authenticate(
  api: AdminContext,
  request: AdminRequest,
  startedAt: number,
): Promise<Principal | Response> {
  const authorization = request.headers.get('authorization');
  try {
    const principal = (await api.gatehouse.verifier.verify(extractBearer(authorization))).principal;
    // Managing permissions on someone's behalf is refused unless the policy says otherwise
    // (delegation.adminApi); when allowed, the use-time rule still bounds what the caller may do.
    // Standing grants are refused to delegated callers whatever the option: a grant written with
    // a token of minutes would outlive it by months, and name actors outside its chain.
    const selfService = request.segments?.[0] === 'delegations';
    if (
      api.gatehouse.delegated(principal) &&
      (selfService || api.gatehouse.policy.delegation?.adminApi !== true)
    ) {
      const refused: Decision = {
        allow: false,
        status: 403,
        reason: 'delegation_refused',
        explain: selfService
          ? 'Standing delegations are made with your own token, never a delegated one.'
          : 'The admin API refuses delegated callers.',
        principal,
      };
      await logAuthorization(api, request, refused, startedAt);
      return denyResponse(refused, authorization);
    }
    // Every call, /delegations included (it needs no admin permission, so the permission check
    // below would never see it): a signed-out session or a revoked token id manages nothing.
    const revoked = await api.gatehouse.admit(principal, { session: true });
    if (revoked !== null) {
      const refused: Decision = {
        allow: false,
        status: revoked.status,
        reason: revoked.reason,
        explain: revoked.explain,
        principal,
      };
      await logAuthorization(api, request, refused, startedAt);
      return denyResponse(refused, authorization);
    }
    return principal;
  } catch (error) {
    const reason = error instanceof TokenError ? error.code : 'internal_error';
    const status = reason === 'keys_unavailable' || reason === 'internal_error' ? 503 : 401;
    const refused: Decision = { allow: false, status, reason, explain: '' };
    await logAuthorization(api, request, refused, startedAt);
    return denyResponse(refused, authorization);
  }
}

/** The tenant a call acts on, and the permissions (any one) that allow it. */
interface TenantScope {
  readonly tenant: string | undefined;
  readonly required: string[];
}

/**
 * The tenant whose data the call reads or changes. A caller with a tenant manages only its own
 * (the default when the query names none); a tenant admin's `*` never reaches another.
 */
function scopeTenant(caller: Principal, query: URLSearchParams): TenantScope | Response {
  const named = query.getAll('tenant');
  let tenant: string | undefined = named.length === 1 ? named[0] : undefined;
  if (caller.tenant !== undefined) {
    if (named.length > 1 || (tenant !== undefined && tenant !== caller.tenant)) {
      return adminProblem(403, 'tenant_mismatch', 'The caller may only manage its own tenant.', {
        field: 'tenant',
      });
    }
    tenant = caller.tenant;
  }
  // Two ?tenant= values are refused later; until then only the unscoped permission counts.
  const required = named.length > 1 ? [ADMIN_PERMISSION] : adminPermissionsFor(tenant);
  return { tenant, required };
}

/** Checks the caller's admin permission for the tenant; null when allowed, else the deny. */
async function authorize(
  api: AdminContext,
  request: AdminRequest,
  caller: Principal,
  scope: TenantScope,
  startedAt: number,
): Promise<Response | null> {
  const decision = await api.gatehouse.check(caller, scope.required, request.context, 'any');
  await logAuthorization(api, request, decision, startedAt);
  return decision.allow ? null : denyResponse(decision, request.headers.get('authorization'));
}

/**
 * The decision line for the caller's admin permission. Awaited before answering: admin calls
 * are rare, and the line must not be lost with a frozen Lambda container.
 */
async function logAuthorization(
  api: AdminContext,
  request: AdminRequest,
  decision: Decision,
  startedAt: number,
): Promise<void> {
  const logger = api.decisionLog;
  if (logger === undefined || logger === null) return;
  await logger.log(
    'admin-api',
    decision,
    {
      method: request.method,
      path: `${api.basePath}/${(request.segments ?? []).map(encodeURIComponent).join('/')}`,
      authorization: request.headers.get('authorization'),
    },
    startedAt,
  );
}

type MatchedRoute = { readonly route: Route; readonly params: Readonly<Record<string, string>> };

/** The route for the path and method, or the 400 / 404 / 405 answer. */
function resolveRoute(request: AdminRequest): MatchedRoute | Response {
  if (request.segments === null) {
    return adminProblem(400, 'invalid_request', 'The path holds a malformed percent-escape.');
  }
  const match = matchRoute(request.method.toUpperCase(), request.segments);
  if (match === null) return adminProblem(404, 'not_found', 'No such admin resource.');
  if ('allow' in match) {
    return adminProblem(405, 'method_not_allowed', `Use ${match.allow.join(', ')}.`, {
      headers: { allow: match.allow.join(', ') },
    });
  }
  return match;
}

/** What an operation runs on: the validated query, path parameters and body. */
interface Call {
  readonly api: AdminContext;
  readonly admin: PermissionAdmin;
  readonly params: Readonly<Record<string, string>>;
  readonly tenant: string | undefined;
  /** The subject the path names, in the call's tenant. */
  readonly key: SubjectKey;
  readonly body: unknown;
  readonly request: AdminRequest;
}

/** Validates the query, then the path parameters, then the body; throws on the first mistake. */
async function readCall(
  api: AdminContext,
  request: AdminRequest,
  caller: Principal,
  { route, params }: MatchedRoute,
  tenant: string | undefined,
): Promise<Call> {
  checkQuery(request.query, route.query ?? []);
  if (tenant !== undefined) textParam(tenant, 'tenant', 'a tenant');
  for (const [name, value] of Object.entries(params)) {
    textParam(value, name, name === 'permission' ? 'a permission' : `a ${name}`);
  }
  const body = route.body === true ? await readBody(request) : undefined;
  const subject = params.subject ?? '';
  return {
    api,
    admin: adminFor(api, auditActor(caller)),
    params,
    tenant,
    key: tenant === undefined ? { subject } : { subject, tenant },
    body,
    request,
  };
}

// ---------------------------------------------------------------------------------------------
// Operations: one function per route, each reading its own input and answering.

/** Every operation by name; a new route without its function does not compile. */
const OPERATIONS: Record<Operation, (call: Call) => Promise<Response>> = {
  'user.show': async (call) => json(await call.admin.show(call.key)),
  grant: (call) => addEntry(call, 'grant'),
  deny: (call) => addEntry(call, 'deny'),
  revoke: (call) => removeEntry(call, 'revoke'),
  undeny: (call) => removeEntry(call, 'undeny'),
  assign: assignRole,
  unassign: unassignRole,
  'roles.list': listRoles,
  'role.show': showRole,
  'role.put': putRole,
  'role.rm': removeRole,
  check: explain,
  audit: listAudit,
  'sessions.revoke': revokeSessions,
  'token.revoke': revokeToken,
};

/** POST users/:subject/sessions/revoke: sign out everywhere. */
async function revokeSessions(call: Call): Promise<Response> {
  const result = await call.admin.revokeSessions(call.key);
  forget(call.api, { key: call.key });
  return json({
    subject: call.key.subject,
    ...(call.key.tenant !== undefined && { tenant: call.key.tenant }),
    notBefore: result.notBefore,
    epoch: result.epoch,
    audit: { id: result.audit.id, time: result.audit.time },
  });
}

/** POST tokens/revoked: `{jti, expires}` (the token's exp; a time or a duration from now). */
async function revokeToken(call: Call): Promise<Response> {
  // Token ids are not per tenant: a tenant's admin revoking one could reach another tenant's.
  if (call.tenant !== undefined) {
    throw new AdminError('invalid_request', 'tenant: token revocation needs an untenanted admin', {
      field: 'tenant',
    });
  }
  const obj = strictObject(call.body, ['jti', 'expires'], '(body)');
  if (typeof obj.jti !== 'string') throw invalid('jti', 'expected the token id (jti)');
  const expiresAt = parseExpires(obj.expires, 'expires', call.api.now());
  const result = await call.admin.revokeToken(obj.jti, expiresAt);
  return json({
    jti: obj.jti,
    expiresAt,
    epoch: result.epoch,
    audit: { id: result.audit.id, time: result.audit.time },
  });
}

/** A change's answer: 201 when it created something, else 200. */
function changed(result: ChangeResult, created: boolean): Response {
  return json(changeBody(result), created ? 201 : 200);
}

function changeBody(result: ChangeResult): Record<string, unknown> {
  const audit: AuditRecord | null = result.audit;
  return {
    changed: result.changed,
    before: result.before,
    after: result.after,
    audit: audit === null ? null : { id: audit.id, time: audit.time },
  };
}

/** Drops what this isolate's cache holds about a changed record, so its next decision reads it. */
function forget(
  api: AdminContext,
  what: { key?: SubjectKey; rolesOf?: string | undefined; roles?: boolean },
) {
  const cache = api.gatehouse.store;
  if (!(cache instanceof CachedStore)) return;
  if (what.key !== undefined) cache.invalidate(what.key);
  if (what.roles === true) cache.invalidateRoles(what.rolesOf);
}

/** POST users/:subject/grants or /denies. */
async function addEntry(call: Call, operation: 'grant' | 'deny'): Promise<Response> {
  const { admin, key } = call;
  const grant = readGrantInput(call.body, '(body)', call.api.now(), false);
  const result =
    operation === 'grant' ? await admin.grant(key, grant) : await admin.deny(key, grant);
  forget(call.api, { key });
  return changed(result, result.changed);
}

/** DELETE users/:subject/grants/:permission or /denies/:permission. */
async function removeEntry(call: Call, operation: 'revoke' | 'undeny'): Promise<Response> {
  const { admin, key } = call;
  const permission = call.params.permission!;
  const result =
    operation === 'revoke'
      ? await admin.revoke(key, permission)
      : await admin.undeny(key, permission);
  forget(call.api, { key });
  return changed(result, false);
}

/** POST users/:subject/roles: `{role, expires?}`. */
async function assignRole(call: Call): Promise<Response> {
  const obj = strictObject(call.body, ['role', 'expires'], '(body)');
  const role = textParam(obj.role, 'role', 'a role name');
  const expiresAt =
    obj.expires === undefined ? undefined : parseExpires(obj.expires, 'expires', call.api.now());
  const result = await call.admin.assign(call.key, role, expiresAt);
  forget(call.api, { key: call.key });
  return changed(result, result.changed);
}

/** DELETE users/:subject/roles/:role. */
async function unassignRole(call: Call): Promise<Response> {
  const result = await call.admin.unassign(call.key, call.params.role!);
  forget(call.api, { key: call.key });
  return changed(result, false);
}

/** GET roles: the tenant's store roles, and the names of the policy's. */
async function listRoles(call: Call): Promise<Response> {
  const { tenant } = call;
  const roles = await call.admin.listRoles(tenant);
  return json({
    ...(tenant !== undefined && { tenant }),
    roles: roles.map((r) => roleView(r, 'store')),
    policyRoles: call.api.policyRoles.map((r) => r.name),
  });
}

/** GET roles/:role, from the store or else the policy. */
async function showRole(call: Call): Promise<Response> {
  const { tenant } = call;
  const name = call.params.role!;
  const stored = (await call.admin.listRoles(tenant)).find((r) => r.name === name);
  // A store role named like a policy role replaces it in that tenant, as on the edges.
  const role = stored ?? call.api.policyRoles.find((r) => r.name === name);
  if (role === undefined) {
    throw new AdminError('not_found', `no role ${name} in the policy or the store`, {
      field: 'role',
    });
  }
  return json({
    ...(tenant !== undefined && { tenant }),
    ...roleView(role, stored ? 'store' : 'policy'),
  });
}

/** PUT roles/:role: `{grants?, denies?, inherits?}`. */
async function putRole(call: Call): Promise<Response> {
  const role = readRoleBody(call.body, call.params.role!, call.api.now());
  const result = await call.admin.putRole(call.tenant, role);
  forget(call.api, { roles: true, rolesOf: call.tenant });
  return changed(result, result.changed && result.before === null);
}

/** DELETE roles/:role. */
async function removeRole(call: Call): Promise<Response> {
  const result = await call.admin.removeRole(call.tenant, call.params.role!);
  forget(call.api, { roles: true, rolesOf: call.tenant });
  return changed(result, false);
}

/** GET audit?subject=&role=&since=&limit=. */
async function listAudit(call: Call): Promise<Response> {
  const { tenant } = call;
  const query = call.request.query;
  const limitText = single(query, 'limit') ?? '100';
  if (!/^\d{1,4}$/.test(limitText) || +limitText < 1 || +limitText > MAX_AUDIT_LIMIT) {
    throw invalid('limit', `expected a number from 1 to ${MAX_AUDIT_LIMIT}`);
  }
  const subject = single(query, 'subject');
  const role = single(query, 'role');
  if (subject !== undefined) textParam(subject, 'subject', 'a subject');
  if (role !== undefined) textParam(role, 'role', 'a role name');
  const records = await call.admin.audit({
    since: sinceParam(single(query, 'since') ?? '7d', call.api.now()),
    limit: Number(limitText),
    // Without a tenant (an unscoped caller holding admin:permissions): every record.
    ...(tenant !== undefined && { tenant }),
    ...(subject !== undefined && { subject }),
    ...(role !== undefined && { role }),
  });
  return json({ records });
}

/** POST check: explains what the guard would decide for a subject or a token. */
async function explain(call: Call): Promise<Response> {
  const { tenant } = call;
  const { gatehouse, now } = call.api;
  const obj = strictObject(
    call.body,
    ['subject', 'token', 'method', 'path', 'ip', 'country'],
    '(body)',
  );
  for (const key of Object.keys(obj)) {
    if (typeof obj[key] !== 'string') throw invalid(key, 'expected a string');
  }
  const input = obj as Record<string, string>;
  if (input.token !== undefined && (await tokenOfOtherTenant(gatehouse, input.token, tenant))) {
    return adminProblem(
      403,
      'tenant_mismatch',
      "The token's tenant is not the tenant this call is for (?tenant=).",
      { field: 'token' },
    );
  }
  const result = await explainRequest(
    gatehouse,
    {
      method: input.method as string,
      path: input.path as string,
      ...(input.token !== undefined && { token: input.token }),
      ...(input.subject !== undefined && { subject: input.subject }),
      ...(input.subject !== undefined && tenant !== undefined && { tenant }),
      ...(input.ip !== undefined && { ip: input.ip }),
      ...(input.country !== undefined && { country: input.country }),
    },
    now,
  );
  return json(result);
}

/**
 * Whether a token to explain names a tenant other than the one the call was authorized for. A
 * token that does not verify is explained as refused, with no permissions looked up.
 */
async function tokenOfOtherTenant(
  gatehouse: Gatehouse,
  token: string,
  tenant: string | undefined,
): Promise<boolean> {
  try {
    return (await gatehouse.verifier.verify(token)).principal.tenant !== tenant;
  } catch (error) {
    if (!(error instanceof TokenError)) throw error;
    return false;
  }
}

/** A failed operation as its answer: the caller's mistake in full, a store or bug as a code. */
function errorResponse(api: AdminContext, error: unknown, operation: Operation): Response {
  if (error instanceof AdminError || error instanceof ConfigError) {
    const status = error instanceof AdminError ? STATUS_FOR[error.code] : 400;
    const reason = error instanceof AdminError ? error.code : 'invalid_request';
    const field = bodyField(operation, error.field);
    // The message names the field as operations.ts does (`grant.when.ip[0]: …`); say it as
    // the caller wrote it.
    const detail =
      error.field !== undefined &&
      field !== error.field &&
      error.message.startsWith(`${error.field}:`)
        ? `${field}${error.message.slice(error.field.length)}`
        : error.message;
    return adminProblem(status, reason, detail, { field });
  }
  if (error instanceof StoreError) {
    api.log({ level: 'error', msg: 'admin api: store error', code: error.code, operation });
    return adminProblem(503, error.code, 'The permission store could not be read or written.', {
      headers: { 'retry-after': '5' },
    });
  }
  api.log({
    level: 'error',
    msg: 'admin api: unexpected error',
    error: error instanceof Error ? error.name : typeof error,
    operation,
  });
  return adminProblem(500, 'internal_error', 'The admin call failed.');
}

function roleView(role: RoleRecord, source: 'store' | 'policy') {
  return {
    name: role.name,
    grants: role.grants,
    denies: role.denies ?? [],
    inherits: role.inherits,
    source,
  };
}

// ---------------------------------------------------------------------------------------------
// Standing delegation, self-service: `<base>/delegations`

/** Longest a self-service standing grant may last: a delegation is narrow and short-lived. */
export const MAX_STANDING_DAYS = 90;
/** Most scope patterns in one standing grant. */
const MAX_STANDING_SCOPE = 16;

/**
 * The caller's own standing grants (src/delegation/standing.ts): `GET` lists them, `POST
 * { actor, scope, expires }` lets `actor` act for the caller within `scope` until `expires`
 * (at most {@link MAX_STANDING_DAYS} days), `DELETE /delegations/<actor>` revokes all of them
 * for that actor. No admin permission is needed: the caller changes only her own record, and
 * only gives away what she holds now (deny wins), to an actor a `delegation.actors` rule lets
 * act for her, within that rule's ceiling (admins, through the grant resources or the CLI, may
 * name any actor). Audited like every change, as the caller. Off unless the policy's
 * `delegation.standingGrants`; delegated callers are always refused before this (also with
 * `delegation.adminApi`), revoked callers too.
 */
async function handleDelegations(
  api: AdminContext,
  request: AdminRequest,
  caller: Principal,
): Promise<Response> {
  const config = api.gatehouse.policy.delegation;
  if (config === null || !config.standingGrants) {
    return adminProblem(404, 'not_found', 'Standing delegation is not enabled.');
  }
  const segments = (request.segments ?? []).slice(1);
  if ([...request.query.keys()].length > 0) {
    return adminProblem(
      400,
      'invalid_request',
      'No query parameters: the caller manages only their own record.',
    );
  }
  const key: SubjectKey =
    caller.tenant === undefined
      ? { subject: caller.subject }
      : { subject: caller.subject, tenant: caller.tenant };
  const admin = adminFor(api, auditActor(caller));
  const mine = async () => {
    const shown = await admin.show(key);
    return (shown.record?.grants ?? [])
      .filter((g) => g.permission.startsWith(`${STANDING_PREFIX}:`))
      .map((g) => ({
        permission: g.permission,
        ...(g.expiresAt !== undefined && { expiresAt: g.expiresAt }),
      }));
  };
  try {
    if (segments.length === 0 && request.method === 'GET')
      return json({ delegations: await mine() });
    if (segments.length === 0 && request.method === 'POST') {
      const body = strictObject(
        await readBody(request),
        ['actor', 'issuer', 'scope', 'expires'],
        '(body)',
      );
      const actor = textParam(body.actor, 'actor', "the actor's subject");
      const issuer =
        body.issuer === undefined ? undefined : textParam(body.issuer, 'issuer', "the actor's iss");
      // Only an actor the policy already lets act for this caller, and within its ceiling: a
      // stolen token must not hand a months-long grant to an actor of the thief's choosing.
      const rule = config.actors.find(
        (r) =>
          r.subject === actor &&
          (r.for === null || r.for.has(caller.subject)) &&
          (issuer === undefined || r.issuer === undefined || r.issuer === issuer),
      );
      if (rule === undefined) {
        return adminProblem(
          403,
          'invalid_request',
          'No delegation.actors rule lets this actor act for you.',
          { field: 'actor' },
        );
      }
      // With one identity provider the short form names its actor (and stays what it was); with
      // several, the grant is bound to the rule's issuer (the exchange honours nothing else).
      const bound = config.soleIssuer === undefined ? (issuer ?? rule.issuer) : undefined;
      if (
        !Array.isArray(body.scope) ||
        body.scope.length === 0 ||
        body.scope.length > MAX_STANDING_SCOPE
      ) {
        throw invalid('scope', `expected 1 to ${MAX_STANDING_SCOPE} permissions like read:posts:*`);
      }
      const scope = body.scope.map((p: unknown, i: number) => {
        const grant =
          typeof p === 'string' && p.includes(':') ? standingGrant(actor, p, bound) : null;
        if (grant === null) throw invalid(`scope[${i}]`, 'expected a permission like read:posts:*');
        return p as string;
      });
      if (body.expires === undefined)
        throw invalid('expires', 'required: a standing grant expires');
      const now = api.now();
      const expiresAt = parseExpires(body.expires, 'expires', now);
      if (expiresAt * 1000 > now + MAX_STANDING_DAYS * 86_400_000) {
        throw invalid('expires', `at most ${MAX_STANDING_DAYS} days from now`);
      }
      const beyond = scope.find((p) => !listCovers(rule.ceiling, p));
      if (beyond !== undefined) {
        return adminProblem(403, 'invalid_request', `The actor may not receive ${beyond}.`, {
          field: 'scope',
        });
      }
      const lacks = await delegatorLacks(api.gatehouse, caller, scope);
      if (lacks !== null) {
        return adminProblem(
          403,
          'invalid_request',
          `You do not hold ${lacks}, so you cannot give it.`,
          {
            field: 'scope',
          },
        );
      }
      for (const pattern of scope) {
        await admin.grant(key, { permission: standingGrant(actor, pattern, bound)!, expiresAt });
      }
      return json({ delegations: await mine() }, 201);
    }
    if (segments.length === 1 && request.method === 'DELETE') {
      const actor = textParam(segments[0], 'actor', "the actor's subject");
      // Every grant to that subject: the short form and those bound to any issuer.
      const head = `${STANDING_PREFIX}:${encodeActor(actor)}`;
      const doomed = (await mine()).filter(
        (g) =>
          g.permission.startsWith(`${head}:`) || g.permission.startsWith(`${head}${ISSUER_MARK}`),
      );
      if (doomed.length === 0) {
        return adminProblem(404, 'not_found', 'No standing grant to that actor.');
      }
      for (const g of doomed) await admin.revoke(key, g.permission);
      return json({ delegations: await mine() });
    }
    return adminProblem(
      405,
      'method_not_allowed',
      'Use GET or POST on delegations, DELETE on delegations/<actor>.',
    );
  } catch (error) {
    if (error instanceof BodyProblem) return error.response;
    if (error instanceof AdminError) {
      return adminProblem(STATUS_FOR[error.code], error.code, error.message, {
        field: error.field,
      });
    }
    if (error instanceof StoreError) {
      api.log({
        level: 'error',
        msg: 'admin api: store error',
        code: error.code,
        operation: 'delegations',
      });
      return adminProblem(503, error.code, 'The permission store could not be read or written.', {
        headers: { 'retry-after': '5' },
      });
    }
    api.log({ level: 'error', msg: 'admin api: unexpected error', operation: 'delegations' });
    return adminProblem(500, 'internal_error', 'The admin call failed.');
  }
}
