/**
 * The check API over HTTP: `POST <prefix>/v1/check` and `/v1/check/batch` on the guard Worker
 * (callers need `authz:check`). What a check means lives in the core (src/policy/check.ts); this
 * file adds the caller's authorization, tenant scoping and the HTTP framing. The RPC entrypoint
 * answers through the same core without this layer (the binding is the credential).
 *
 * Over HTTP a caller checks subjects of its own tenant only ({@link scopeItemsToCaller}).
 */
import { TokenError } from '../errors.ts';
import { type DecisionLogTarget, logDecision, startDecision } from '../logging/decision-log.ts';
import {
  type CheckContext,
  CheckInputError,
  type CheckItem,
  consistencyToken,
  fixedDecision,
  parseCheckBatch,
  parseCheckItem,
  runBatch,
  runCheck,
} from '../policy/check.ts';
// Not ../policy/index.ts: it re-exports the YAML parser, which a Worker must not bundle.
import type { Gatehouse } from '../policy/decide.ts';
import { extractBearer } from '../token/index.ts';
import type { Decision, Principal } from '../types.ts';
import { type JsonBodyRefusal, readCappedText, readJsonBody } from './body.ts';
import {
  CONSISTENCY_HEADER,
  denyResponse,
  jsonResponse,
  type ProblemInit,
  problemResponse,
} from './responses.ts';

// The check's own names stay importable from here, where they lived before the core had them.
export type { CheckAnswer, CheckContext, CheckItem } from '../policy/check.ts';
export {
  CHECK_ISSUER,
  CheckInputError,
  MAX_BATCH_ITEMS,
  parseCheckBatch,
  parseCheckItem,
  runBatch,
  runCheck,
  subjectPrincipal,
} from '../policy/check.ts';

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
    const refused = fixedDecision(false, status, code, '');
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

/** The media type the check API has always accepted: `application/json` and anything after it. */
const CHECK_MEDIA_TYPE = /^application\/json\b/i;

/** Each refusal of the shared body reader as the check API has always answered it. */
const BODY_PROBLEMS: Record<JsonBodyRefusal, ProblemInit> = {
  unsupported_media_type: {
    status: 415,
    reason: 'unsupported_media_type',
    detail: 'Send the body as application/json.',
  },
  too_large: { status: 413, reason: 'body_too_large', detail: 'The body is too large.' },
  not_json: { status: 400, reason: 'invalid_request', detail: 'The body is not valid JSON.' },
  duplicate_member_name: {
    status: 400,
    reason: 'invalid_request',
    detail: 'The body repeats a member name.',
  },
};

/** The request's JSON body, or the problem response that refuses it. */
async function readJson(request: Request): Promise<unknown | Response> {
  const read = await readJsonBody(
    { headers: request.headers, body: (max) => readCappedText(request.body, max) },
    { maxBytes: MAX_CHECK_BODY_BYTES, mediaType: CHECK_MEDIA_TYPE },
  );
  return read.ok ? read.value : problemResponse(BODY_PROBLEMS[read.refusal]);
}

function inputProblem(error: CheckInputError): Response {
  const reason =
    error.field === 'items' && error.expected.startsWith('expected at most')
      ? 'batch_too_large'
      : 'invalid_request';
  // The field and the expectation are ours, never the caller's values.
  return problemResponse({ status: 400, reason, detail: `${error.field}: ${error.expected}` });
}

/** Read your writes: the epoch a management call returned, for every item without its own. */

function withConsistencyHeader(items: CheckItem[], header: string | null): CheckItem[] {
  if (header === null) return items;
  const consistency = consistencyToken(header.trim(), CONSISTENCY_HEADER);
  return items.map((item) => (item.consistency === undefined ? { ...item, consistency } : item));
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
    items = withConsistencyHeader(items, request.headers.get(CONSISTENCY_HEADER));
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
