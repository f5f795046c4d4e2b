/**
 * The meaning of a check: "may this subject (or this token) do this?" without a request to guard.
 * One item names who (`subject` [+ `tenant`] or `token`) and what (`permission`, `permissions` +
 * `mode`, or `method` + `path` through the policy's routes), plus `context`. The HTTP check API
 * (src/http/check-api.ts), the RPC entrypoint and `explain` (src/admin) all answer through
 * {@link runCheck}, so they cannot disagree.
 *
 * A batch runs its items concurrently through the Gatehouse's cached store, whose single-flight
 * makes every distinct subject cost one store read however many items name it.
 */
import { TokenError } from '../errors.ts';
import { type DecisionLogTarget, logDecision, startDecision } from '../logging/decision-log.ts';
import { isValidPermission } from '../permissions/index.ts';
import type { Decision, PermissionMatch, Principal } from '../types.ts';
import type { Gatehouse } from './decide.ts';
import { fillTemplate } from './routes.ts';

/** Items per batch. */
export const MAX_BATCH_ITEMS = 100;
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
  /**
   * A consistency token (the `epoch` a management call returned): the answer comes from data at
   * least that fresh, or is a 503 `consistency_unavailable`.
   */
  readonly consistency?: number;
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
  'consistency',
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

/** The largest epoch a consistency token may name (a safe integer). */
const MAX_EPOCH = Number.MAX_SAFE_INTEGER;

/** A consistency token as a field or header value: a non-negative integer (or its digits). */
export function consistencyToken(value: unknown, field: string): number {
  const n = typeof value === 'string' && /^\d{1,16}$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0 || n > MAX_EPOCH) {
    throw new CheckInputError(
      field,
      'expected a consistency token (the epoch a management call returned)',
    );
  }
  return n;
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
  if (value.consistency !== undefined)
    item.consistency = consistencyToken(value.consistency, `${field}.consistency`);
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

/** The check-API shape of a decision (never the principal, claims or token). */
export function checkAnswer(decision: Decision, extra: { route?: string } = {}): CheckAnswer {
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

export function fixedDecision(
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
  item: CheckItem,
  context: CheckContext,
): Promise<Decision> {
  const path = item.path!;
  const upper = item.method!.toUpperCase();
  const match = gatehouse.policy.routes.match(upper, path);
  if (match === 'malformed') {
    return fixedDecision(
      false,
      400,
      'malformed_request',
      'The request path is malformed or ambiguous.',
    );
  }
  if (match === null)
    return fixedDecision(false, 403, 'no_route', `No route matches ${upper}.`, principal);
  const route = match.route;
  const requirement = route.requirement;
  if (requirement.kind === 'public') {
    return fixedDecision(
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
      return fixedDecision(
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
    return fixedDecision(
      true,
      200,
      'authenticated_route',
      `Route ${route.label} needs only a valid token.`,
      principal,
      route.label,
    );
  }
  const required = requirement.permissions.map((t) => fillTemplate(t, match.params));
  const decision = await gatehouse.check(principal, required, context, requirement.kind, {
    strict: route.strict,
    consistency: item.consistency,
  });
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
  return checkAnswer(decision);
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
          consistency: item.consistency,
        });
      }
      let principal: Principal;
      try {
        principal = (await gatehouse.verifier.verify(item.token)).principal;
      } catch (error) {
        if (error instanceof TokenError) {
          const status = error.code === 'keys_unavailable' ? 503 : 401;
          return fixedDecision(false, status, error.code, error.message);
        }
        throw error;
      }
      return await permissionCheck(gatehouse, principal, item, context);
    }
    const principal = subjectPrincipal(item, now());
    if (item.path !== undefined) {
      return await routeCheck(gatehouse, principal, item, context);
    }
    return await permissionCheck(gatehouse, principal, item, context);
  } catch {
    return fixedDecision(false, 503, 'internal_error', 'The check failed; the answer is deny.');
  }
}

function permissionCheck(
  gatehouse: Gatehouse,
  principal: Principal,
  item: CheckItem,
  context: CheckContext,
): Promise<Decision> {
  const permissions = item.permission !== undefined ? [item.permission] : item.permissions!;
  return gatehouse.check(principal, permissions, context, item.mode ?? 'all', {
    consistency: item.consistency,
  });
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
