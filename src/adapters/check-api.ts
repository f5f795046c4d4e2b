/**
 * The check API: "may this subject (or this token) do this?" without a request to guard. Served
 * over HTTP by the guard Worker (`POST <prefix>/v1/check` and `/v1/check/batch`, callers need
 * `authz:check`) and as RPC methods on a service-binding entrypoint (the binding is the
 * credential). One item names who (`subject` [+ `tenant`] or `token`) and what (`permission`,
 * `permissions` + `mode`, or `method` + `path` through the policy's routes), plus `context`.
 *
 * Over HTTP a caller checks subjects of its own tenant only ({@link scopeItemsToCaller}); the RPC
 * entrypoint is not scoped (the binding is the credential).
 *
 * A batch runs its items concurrently through the Gatehouse's cached store, whose single-flight
 * makes every distinct subject cost one store read however many items name it.
 */
import { TokenError } from '../errors.ts';
import { type DecisionLogTarget, logDecision, startDecision } from '../logging/decision-log.ts';
import { isValidPermission } from '../permissions/index.ts';
// Not ../policy/index.ts: it re-exports the YAML parser, which a Worker must not bundle.
import type { Gatehouse } from '../policy/decide.ts';
import { fillTemplate } from '../policy/routes.ts';
import { extractBearer } from '../token/index.ts';
import { hasDuplicateMemberName } from '../token/json.ts';
import type { Decision, PermissionMatch, Principal } from '../types.ts';
import { denyResponse, jsonResponse, problemResponse, readCappedText } from './http.ts';

/** Items per batch. */
export const MAX_BATCH_ITEMS = 100;
/** Request bodies larger than this are refused (413) before parsing. */
export const MAX_CHECK_BODY_BYTES = 256 * 1024;
/** The permission a caller's token must hold to use the HTTP check API. */
export const CHECK_PERMISSION = 'authz:check';
/**
 * The extra permission an untenanted (platform-level) caller needs to check subjects of a tenant.
 * A caller that has a tenant can never check another tenant's subjects, whatever it holds (a
 * tenant admin's `*` does not reach other tenants). See docs/workers.md, "Check API".
 */
export const CHECK_ANY_TENANT_PERMISSION = 'authz:check:any-tenant';
/** The issuer recorded on principals the check API builds from a bare subject. */
export const CHECK_ISSUER = 'urn:gatehouse:check';

export interface CheckContext {
  readonly ip?: string | undefined;
  readonly country?: string | undefined;
}

/** One question. Exactly one of subject / token, and one of permission / permissions / method+path. */
export interface CheckItem {
  readonly subject?: string;
  readonly tenant?: string;
  readonly token?: string;
  readonly permission?: string;
  readonly permissions?: readonly string[];
  /** For `permissions`: `all` (default) needs every one, `any` needs one. */
  readonly mode?: 'all' | 'any';
  readonly method?: string;
  readonly path?: string;
  readonly context?: CheckContext;
}

/** One answer: the decision without the principal (never claims, never the token). */
export interface CheckAnswer {
  readonly allow: boolean;
  readonly status: Decision['status'];
  readonly reason: Decision['reason'];
  readonly subject?: string;
  readonly tenant?: string;
  readonly route?: string;
  readonly required?: readonly string[];
  readonly matched?: readonly PermissionMatch[];
  readonly explain: string;
}

/** A malformed item or body; `field` is a path such as `items[3].permission`. */
export class CheckInputError extends Error {
  override readonly name = 'CheckInputError';
  readonly field: string;
  readonly expected: string;
  constructor(field: string, expected: string) {
    super(`${field}: ${expected}`);
    this.field = field;
    this.expected = expected;
  }
}

const ITEM_KEYS = new Set([
  'subject',
  'tenant',
  'token',
  'permission',
  'permissions',
  'mode',
  'method',
  'path',
  'context',
]);
const METHOD = /^[A-Za-z]{1,16}$/;
const MAX_TEXT = 1024;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function text(value: unknown, field: string, what: string, max = MAX_TEXT): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > max) {
    throw new CheckInputError(field, `expected ${what}`);
  }
  return value;
}

function permission(value: unknown, field: string): string {
  const p = text(value, field, 'a permission like read:posts');
  if (!isValidPermission(p)) {
    throw new CheckInputError(field, 'expected a permission like read:posts (no wildcards)');
  }
  return p;
}

/** Validates one item; throws {@link CheckInputError} naming the field. */
export function parseCheckItem(value: unknown, field = '(body)'): CheckItem {
  if (!isObject(value)) throw new CheckInputError(field, 'expected an object');
  for (const key of Object.keys(value)) {
    if (!ITEM_KEYS.has(key)) {
      throw new CheckInputError(
        `${field}.${key}`,
        `unknown key; expected one of: ${[...ITEM_KEYS].join(', ')}`,
      );
    }
  }
  const item: {
    -readonly [K in keyof CheckItem]: CheckItem[K];
  } = {};
  const who = (['subject', 'token'] as const).filter((k) => value[k] !== undefined);
  if (who.length !== 1) throw new CheckInputError(field, 'expected exactly one of subject, token');
  if (value.subject !== undefined)
    item.subject = text(value.subject, `${field}.subject`, 'a subject');
  if (value.tenant !== undefined) {
    if (value.token !== undefined) {
      throw new CheckInputError(
        `${field}.tenant`,
        'only applies with subject (a token names its tenant)',
      );
    }
    item.tenant = text(value.tenant, `${field}.tenant`, 'a tenant');
  }
  if (value.token !== undefined) item.token = text(value.token, `${field}.token`, 'a JWT', 16_384);

  const what = (['permission', 'permissions', 'path'] as const).filter(
    (k) => value[k] !== undefined,
  );
  if (what.length !== 1) {
    throw new CheckInputError(
      field,
      'expected exactly one of permission, permissions, method+path',
    );
  }
  if (value.permission !== undefined)
    item.permission = permission(value.permission, `${field}.permission`);
  if (value.permissions !== undefined) {
    const list = value.permissions;
    if (!Array.isArray(list) || list.length === 0 || list.length > 32) {
      throw new CheckInputError(`${field}.permissions`, 'expected 1 to 32 permissions');
    }
    item.permissions = list.map((p, i) => permission(p, `${field}.permissions[${i}]`));
  }
  if (value.mode !== undefined) {
    if (value.permissions === undefined) {
      throw new CheckInputError(`${field}.mode`, 'only applies with permissions');
    }
    if (value.mode !== 'all' && value.mode !== 'any') {
      throw new CheckInputError(`${field}.mode`, 'expected all or any');
    }
    item.mode = value.mode;
  }
  if (value.path !== undefined) {
    const path = text(value.path, `${field}.path`, 'a path starting with /', 4096);
    if (!path.startsWith('/'))
      throw new CheckInputError(`${field}.path`, 'expected a path starting with /');
    item.path = path;
    item.method = text(value.method, `${field}.method`, 'an HTTP method such as GET', 16);
    if (!METHOD.test(item.method))
      throw new CheckInputError(`${field}.method`, 'expected an HTTP method such as GET');
  } else if (value.method !== undefined) {
    throw new CheckInputError(`${field}.method`, 'only applies with path');
  }
  if (value.context !== undefined) {
    const ctx = value.context;
    if (!isObject(ctx))
      throw new CheckInputError(`${field}.context`, 'expected an object {ip?, country?}');
    const context: { ip?: string; country?: string } = {};
    for (const key of Object.keys(ctx)) {
      if (key !== 'ip' && key !== 'country') {
        throw new CheckInputError(`${field}.context.${key}`, 'unknown key; expected ip or country');
      }
    }
    if (ctx.ip !== undefined) context.ip = text(ctx.ip, `${field}.context.ip`, 'an IP address', 64);
    if (ctx.country !== undefined) {
      const country = text(ctx.country, `${field}.context.country`, 'a country code', 2);
      if (!/^[A-Z]{2}$/.test(country)) {
        throw new CheckInputError(
          `${field}.context.country`,
          'expected an ISO 3166-1 alpha-2 code such as DE',
        );
      }
      context.country = country;
    }
    item.context = context;
  }
  return item;
}

/** Validates a batch body `{ items: [...] }`; throws {@link CheckInputError}. */
export function parseCheckBatch(value: unknown): CheckItem[] {
  if (!isObject(value) || !Array.isArray(value.items)) {
    throw new CheckInputError('items', 'expected an object {items: [...]}');
  }
  if (Object.keys(value).some((k) => k !== 'items')) {
    throw new CheckInputError('(body)', 'unknown key; expected only items');
  }
  if (value.items.length === 0) throw new CheckInputError('items', 'expected at least one item');
  if (value.items.length > MAX_BATCH_ITEMS) {
    throw new CheckInputError('items', `expected at most ${MAX_BATCH_ITEMS} items`);
  }
  return value.items.map((item, i) => parseCheckItem(item, `items[${i}]`));
}

function answer(decision: Decision, extra: { route?: string } = {}): CheckAnswer {
  const p = decision.principal;
  return {
    allow: decision.allow,
    status: decision.status,
    reason: decision.reason,
    ...(p !== undefined && { subject: p.subject }),
    ...(p?.tenant !== undefined && { tenant: p.tenant }),
    ...((decision.route ?? extra.route) !== undefined && { route: decision.route ?? extra.route }),
    ...(decision.required !== undefined && { required: decision.required }),
    ...(decision.matched !== undefined && { matched: decision.matched }),
    explain: decision.explain,
  };
}

/** The principal of a subject check: no token, so no claims (claim conditions fail closed). */
export function subjectPrincipal(item: CheckItem, nowMs: number): Principal {
  return {
    issuer: CHECK_ISSUER,
    issuerKind: 'self',
    subject: item.subject!,
    ...(item.tenant !== undefined && { tenant: item.tenant }),
    scopes: [],
    // No token, so no claims: claim conditions fail closed (grants off, denies on).
    claims: {},
    actors: [],
    expiresAt: Math.floor(nowMs / 1000) + 60,
  };
}

function fixed(
  allow: boolean,
  status: Decision['status'],
  reason: Decision['reason'],
  explain: string,
  principal?: Principal,
  route?: string,
): Decision {
  return {
    allow,
    status,
    reason,
    explain,
    ...(principal && { principal }),
    ...(route && { route }),
  } as Decision;
}

/** The route decision for a principal we already have (a bare subject). Mirrors decide(). */
async function routeCheck(
  gatehouse: Gatehouse,
  principal: Principal,
  method: string,
  path: string,
  context: CheckContext,
): Promise<Decision> {
  const upper = method.toUpperCase();
  const match = gatehouse.policy.routes.match(upper, path);
  if (match === 'malformed') {
    return fixed(false, 400, 'malformed_request', 'The request path is malformed or ambiguous.');
  }
  if (match === null) return fixed(false, 403, 'no_route', `No route matches ${upper}.`, principal);
  const route = match.route;
  const requirement = route.requirement;
  if (requirement.kind === 'public') {
    return fixed(
      true,
      200,
      'public_route',
      `Route ${route.label} is public.`,
      principal,
      route.label,
    );
  }
  const param = gatehouse.policy.tenantParam;
  if (param !== undefined) {
    const wanted = match.params[param];
    if (wanted !== undefined && wanted !== principal.tenant) {
      return fixed(
        false,
        403,
        'tenant_mismatch',
        `The route names a tenant other than the caller's.`,
        principal,
        route.label,
      );
    }
  }
  if (requirement.kind === 'authenticated') {
    return fixed(
      true,
      200,
      'authenticated_route',
      `Route ${route.label} needs only a valid token.`,
      principal,
      route.label,
    );
  }
  const required = requirement.permissions.map((t) => fillTemplate(t, match.params));
  const decision = await gatehouse.check(principal, required, context, requirement.kind);
  return decision.route === undefined ? { ...decision, route: route.label } : decision;
}

/**
 * Answers one (validated) item. Never throws: failures are deny answers, as in decide(). With
 * `log`, the decision is logged (the item's method, path and a digest of its token, if any).
 */
export async function runCheck(
  gatehouse: Gatehouse,
  item: CheckItem,
  now: () => number = Date.now,
  log?: DecisionLogTarget,
): Promise<CheckAnswer> {
  const startedAt = startDecision(log);
  const decision = await checkItem(gatehouse, item, now);
  logDecision(log, decision, item, startedAt);
  return answer(decision);
}

async function checkItem(gatehouse: Gatehouse, item: CheckItem, now: () => number) {
  const context = item.context ?? {};
  try {
    if (item.token !== undefined) {
      if (item.path !== undefined) {
        return await gatehouse.decide({
          method: item.method!,
          path: item.path,
          authorization: `Bearer ${item.token}`,
          ip: context.ip,
          country: context.country,
        });
      }
      let principal: Principal;
      try {
        principal = (await gatehouse.verifier.verify(item.token)).principal;
      } catch (error) {
        if (error instanceof TokenError) {
          const status = error.code === 'keys_unavailable' ? 503 : 401;
          return fixed(false, status, error.code, error.message);
        }
        throw error;
      }
      return await permissionCheck(gatehouse, principal, item, context);
    }
    const principal = subjectPrincipal(item, now());
    if (item.path !== undefined) {
      return await routeCheck(gatehouse, principal, item.method!, item.path, context);
    }
    return await permissionCheck(gatehouse, principal, item, context);
  } catch {
    return fixed(false, 503, 'internal_error', 'The check failed; the answer is deny.');
  }
}

function permissionCheck(
  gatehouse: Gatehouse,
  principal: Principal,
  item: CheckItem,
  context: CheckContext,
): Promise<Decision> {
  const permissions = item.permission !== undefined ? [item.permission] : item.permissions!;
  return gatehouse.check(principal, permissions, context, item.mode ?? 'all');
}

/** Answers every item concurrently, in order. One store read per distinct subject (single-flight). */
export function runBatch(
  gatehouse: Gatehouse,
  items: readonly CheckItem[],
  now: () => number = Date.now,
  log?: DecisionLogTarget,
): Promise<CheckAnswer[]> {
  return Promise.all(items.map((item) => runCheck(gatehouse, item, now, log)));
}

/**
 * Whether the caller (the request's bearer token) may use the HTTP check API: it must verify and
 * hold {@link CHECK_PERMISSION}. Returns the caller's principal when allowed, or the deny response.
 */
export async function authorizeCaller(
  gatehouse: Gatehouse,
  request: Request,
  context: CheckContext,
  log?: DecisionLogTarget,
): Promise<Principal | Response> {
  const authorization = request.headers.get('authorization');
  const startedAt = startDecision(log);
  // Logged as a decision of its own: the endpoint's path, `authz:check` as the requirement.
  const logged = (decision: Decision) => {
    if (log === undefined) return;
    const path = new URL(request.url).pathname;
    logDecision(log, decision, { method: request.method, path, authorization }, startedAt);
  };
  let principal: Principal;
  try {
    principal = (await gatehouse.verifier.verify(extractBearer(authorization))).principal;
  } catch (error) {
    const code = error instanceof TokenError ? error.code : 'internal_error';
    const status = code === 'keys_unavailable' || code === 'internal_error' ? 503 : 401;
    const refused = fixed(false, status, code, '');
    logged(refused);
    return denyResponse(refused, authorization);
  }
  const decision = await gatehouse.check(principal, [CHECK_PERMISSION], context);
  logged(decision);
  return decision.allow ? principal : denyResponse(decision, authorization);
}

/**
 * Scopes subject items to the caller's tenant: an item without `tenant` means the caller's own
 * tenant, and an item naming another tenant is refused (403 `tenant_mismatch`, naming the field)
 * unless the caller has no tenant (a platform-level caller) and holds
 * {@link CHECK_ANY_TENANT_PERMISSION}. Token items are the token's own principal and pass as
 * they are. Returns the scoped items, or the refusal.
 */
export async function scopeItemsToCaller(
  gatehouse: Gatehouse,
  caller: Principal,
  items: readonly CheckItem[],
  context: CheckContext,
  field: (index: number) => string,
): Promise<CheckItem[] | Response> {
  const scoped: CheckItem[] = [];
  let crossTenant: number | undefined;
  for (const [i, item] of items.entries()) {
    if (item.subject === undefined) {
      scoped.push(item);
      continue;
    }
    if (item.tenant === undefined) {
      scoped.push(caller.tenant === undefined ? item : { ...item, tenant: caller.tenant });
      continue;
    }
    if (item.tenant !== caller.tenant) crossTenant ??= i;
    scoped.push(item);
  }
  if (crossTenant !== undefined) {
    const allowed =
      caller.tenant === undefined &&
      (await gatehouse.check(caller, [CHECK_ANY_TENANT_PERMISSION], context)).allow;
    if (!allowed) {
      return problemResponse({
        status: 403,
        reason: 'tenant_mismatch',
        // The field is ours, never the caller's value.
        detail: `${field(crossTenant)}.tenant: the caller may only check subjects of its own tenant.`,
      });
    }
  }
  return scoped;
}

function tooLarge(): Response {
  return problemResponse({
    status: 413,
    reason: 'body_too_large',
    detail: 'The body is too large.',
  });
}

async function readJson(request: Request): Promise<unknown | Response> {
  const type = request.headers.get('content-type') ?? '';
  if (!/^application\/json\b/i.test(type)) {
    return problemResponse({
      status: 415,
      reason: 'unsupported_media_type',
      detail: 'Send the body as application/json.',
    });
  }
  const declared = Number(request.headers.get('content-length') ?? '0');
  if (declared > MAX_CHECK_BODY_BYTES) return tooLarge();
  const invalidJson = problemResponse({
    status: 400,
    reason: 'invalid_request',
    detail: 'The body is not valid JSON.',
  });
  let body: string | null;
  try {
    body = await readCappedText(request.body, MAX_CHECK_BODY_BYTES);
  } catch {
    return invalidJson; // not UTF-8
  }
  if (body === null) return tooLarge();
  let value: unknown;
  try {
    value = JSON.parse(body) as unknown;
  } catch {
    return invalidJson;
  }
  // JSON.parse keeps the last of two equal keys; a WAF or audit log in front may read the first.
  if (hasDuplicateMemberName(body)) {
    return problemResponse({
      status: 400,
      reason: 'invalid_request',
      detail: 'The body repeats a member name.',
    });
  }
  return value;
}

function inputProblem(error: CheckInputError): Response {
  const reason =
    error.field === 'items' && error.expected.startsWith('expected at most')
      ? 'batch_too_large'
      : 'invalid_request';
  // The field and the expectation are ours, never the caller's values.
  return problemResponse({ status: 400, reason, detail: `${error.field}: ${error.expected}` });
}

/**
 * Serves `POST /v1/check` (`batch: false`) or `POST /v1/check/batch` for an authorized caller.
 * The caller check comes first, so an unauthorized caller learns nothing about the body.
 */
export async function handleCheckRequest(
  gatehouse: Gatehouse,
  request: Request,
  options: {
    batch: boolean;
    context: CheckContext;
    now?: () => number;
    /** Where the caller's and every item's decision is logged (edge `check-api`). */
    log?: DecisionLogTarget | undefined;
  },
): Promise<Response> {
  if (request.method !== 'POST') {
    return problemResponse({
      status: 405,
      reason: 'method_not_allowed',
      detail: 'Use POST.',
      headers: { allow: 'POST' },
    });
  }
  const log = options.log;
  const caller = await authorizeCaller(gatehouse, request, options.context, log);
  if (caller instanceof Response) return caller;
  const body = await readJson(request);
  if (body instanceof Response) return body;
  let items: CheckItem[];
  try {
    items = options.batch ? parseCheckBatch(body) : [parseCheckItem(body)];
  } catch (error) {
    if (error instanceof CheckInputError) return inputProblem(error);
    throw error;
  }
  const scoped = await scopeItemsToCaller(
    gatehouse,
    caller,
    items,
    options.context,
    options.batch ? (i) => `items[${i}]` : () => '(body)',
  );
  if (scoped instanceof Response) return scoped;
  if (options.batch) {
    return jsonResponse({ results: await runBatch(gatehouse, scoped, options.now, log) });
  }
  return jsonResponse(await runCheck(gatehouse, scoped[0]!, options.now, log));
}
