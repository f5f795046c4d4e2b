/**
 * `gatehouse-authz/hono`: Gatehouse in your own Hono app (on Workers or anywhere Hono runs).
 *
 * ```ts
 * import { Hono } from 'hono';
 * import { gatehouse, requirePermission, type GatehouseEnv } from 'gatehouse-authz/hono';
 *
 * const app = new Hono<GatehouseEnv>();
 * app.use('*', gatehouse({ gatehouse: (c) => getGatehouse(c.env) })); // whole decision per request
 * app.get('/posts/:id', (c) => c.json({ by: c.get('gatehouse').principal?.subject }));
 * app.post('/reports', requirePermission('write:reports'), handler);    // an extra check in code
 * ```
 *
 * - `gatehouse()` with `authorize: 'routes'` (default) runs the whole decision against the
 *   policy's routes; with `authorize: 'token'` it only authenticates (the token, the revocation
 *   feed, a delegation token's use-time rule: 401 / 403 / 503 on failure) and leaves permission
 *   checks to `requirePermission`. Either way it answers 401 / 403 / 503 as
 *   problem+json itself and puts `{ principal, decision, gatehouse }` on `c.get('gatehouse')`.
 * - `requirePermission(...)` needs the middleware before it (it reads the verified principal and
 *   the Gatehouse from the context); without it, it fails closed with 500. On a public route
 *   (no principal yet) it verifies the request's token itself: 401 without a valid one.
 * - Decision logs are off unless you pass `decisionLog` (a {@link DecisionLogger} built once per
 *   isolate): a library should not write to an application's logs unasked. With it, every
 *   decision the middleware and `requirePermission` make is one line (edge `hono`).
 */
import type { Context, MiddlewareHandler } from 'hono';
import { clientContext, denyResponse, problemResponse } from '../http/responses.ts';
import type { DecisionLogger } from '../logging/decision-log.ts';
import type { Gatehouse } from '../policy/decide.ts';
import type { Decision, Principal } from '../types.ts';

/** What the middleware puts on the context under `gatehouse`. */
export interface GatehouseContext {
  /** The verified caller; undefined on a public route. */
  readonly principal: Principal | undefined;
  /** The route decision (`authorize: 'routes'`), or undefined when only the token was verified. */
  readonly decision: Decision | undefined;
  /** The instance that decided, for further checks in handlers. */
  readonly gatehouse: Gatehouse;
  /** The middleware's decision logger, which `requirePermission` logs through too. */
  readonly decisionLog?: DecisionLogger | undefined;
}

export interface GatehouseVariables {
  gatehouse: GatehouseContext;
}

/** Hono env type for apps using the middleware: `new Hono<GatehouseEnv>()`. */
export interface GatehouseEnv {
  // biome-ignore lint/suspicious/noExplicitAny: the app's own bindings, whatever they are.
  Bindings: any;
  Variables: GatehouseVariables;
}

export interface GatehouseMiddlewareOptions {
  /**
   * The Gatehouse, or a function of the context returning it (build it once per isolate, e.g.
   * memoised on first use, since bindings arrive with the first request).
   */
  readonly gatehouse: Gatehouse | ((c: Context) => Gatehouse);
  /**
   * `routes` (default): the whole decision against the policy; `token`: authenticate only
   * (Gatehouse.authenticate: a revoked or signed-out token is refused here too).
   */
  readonly authorize?: 'routes' | 'token';
  /** Logs each decision (edge `hono`); default none. Build it once, at module scope. */
  readonly decisionLog?: DecisionLogger | undefined;
}

/** Logs a decision about this request; the pending line goes to waitUntil on Workers. */
function logged(
  c: Context,
  logger: DecisionLogger | undefined,
  decision: Decision,
  authorization: string | null,
  startedAt: number,
  path?: string,
): void {
  if (logger === undefined) return;
  // The raw path, as decided on (Hono's c.req.path is percent-decoded).
  const request = {
    method: c.req.method,
    path: path ?? new URL(c.req.url).pathname,
    authorization,
  };
  const pending = logger.log('hono', decision, request, startedAt);
  if (pending !== undefined) keepAlive(c, pending);
}

function keepAlive(c: Context, promise: Promise<unknown>): void {
  // Same reason as the guard Worker: a store load another request joined must outlive this one.
  try {
    c.executionCtx.waitUntil(promise);
  } catch {
    // Not on Workers (no execution context): nothing to keep alive.
  }
}

/**
 * A feed read the decision started runs beside the request (the follower does not make requests
 * wait for it): hand it to waitUntil as the guard does, or Workers may cancel it with the request
 * and the isolate would stop following the feed (review finding 10).
 */
function keepFeedReading(c: Context, instance: Gatehouse): void {
  const pending = instance.revocation?.pending;
  if (pending !== undefined) keepAlive(c, pending);
}

/**
 * Authenticates the request (Gatehouse.authenticate: the token, then the revocation feed and a
 * delegation token's use-time rule): the principal, or the 401 / 403 / 503 answer. Refusals are
 * logged; an admitted caller is logged by the permission check that follows, if any.
 */
async function authenticated(
  c: Context,
  instance: Gatehouse,
  authorization: string | null,
  logger: DecisionLogger | undefined,
): Promise<Principal | Response> {
  const startedAt = logger === undefined ? 0 : logger.start();
  const authenticating = instance.authenticate({ authorization });
  keepAlive(c, authenticating);
  const decision = await authenticating;
  keepFeedReading(c, instance);
  if (decision.allow && decision.principal !== undefined) return decision.principal;
  logged(c, logger, decision, authorization, startedAt);
  return denyResponse(decision, authorization);
}

export function gatehouse(
  options: GatehouseMiddlewareOptions,
): MiddlewareHandler<{ Variables: GatehouseVariables }> {
  const mode = options.authorize ?? 'routes';
  if (mode !== 'routes' && mode !== 'token') {
    throw new TypeError('gatehouse(): authorize must be routes or token');
  }
  const resolve =
    typeof options.gatehouse === 'function'
      ? options.gatehouse
      : () => options.gatehouse as Gatehouse;
  const logger = options.decisionLog;
  return async (c, next) => {
    const instance = resolve(c);
    const authorization = c.req.header('authorization') ?? null;
    if (mode === 'token') {
      const verified = await authenticated(c, instance, authorization, logger);
      if (verified instanceof Response) return verified;
      c.set('gatehouse', {
        principal: verified,
        decision: undefined,
        gatehouse: instance,
        decisionLog: logger,
      });
      return next();
    }
    const context = clientContext(c.req.raw);
    const path = new URL(c.req.url).pathname;
    const startedAt = logger === undefined ? 0 : logger.start();
    const deciding = instance.decide({
      method: c.req.method,
      path,
      authorization,
      ip: context.ip,
      country: context.country,
    });
    keepAlive(c, deciding);
    const decision = await deciding;
    keepFeedReading(c, instance);
    logged(c, logger, decision, authorization, startedAt, path);
    if (!decision.allow) return denyResponse(decision, authorization);
    c.set('gatehouse', {
      principal: decision.principal,
      decision,
      gatehouse: instance,
      decisionLog: logger,
    });
    return next();
  };
}

export interface RequirePermissionOptions {
  /** `all` (default): every permission; `any`: one of them. */
  readonly mode?: 'all' | 'any';
}

/**
 * A per-handler check of one or more permissions for the principal the middleware verified,
 * with the request's IP and country for conditions. 403 problem+json when missing.
 */
export function requirePermission(
  permissions: string | readonly string[],
  options: RequirePermissionOptions = {},
): MiddlewareHandler<{ Variables: GatehouseVariables }> {
  const list = typeof permissions === 'string' ? [permissions] : [...permissions];
  if (list.length === 0) throw new TypeError('requirePermission(): name at least one permission');
  const mode = options.mode ?? 'all';
  return async (c, next) => {
    const state = c.get('gatehouse') as GatehouseContext | undefined;
    if (state === undefined) {
      return problemResponse({
        status: 500,
        reason: 'configuration_error',
        detail: 'requirePermission needs the gatehouse() middleware before it.',
      });
    }
    const authorization = c.req.header('authorization') ?? null;
    let principal = state.principal;
    if (principal === undefined) {
      // A public route let the request through without verifying a token; a permission needs
      // a verified caller, so verify the token now (401 without one, as on any protected route).
      const verified = await authenticated(c, state.gatehouse, authorization, state.decisionLog);
      if (verified instanceof Response) return verified;
      principal = verified;
      c.set('gatehouse', { ...state, principal });
    }
    const logger = state.decisionLog;
    const startedAt = logger === undefined ? 0 : logger.start();
    // The route decision tenant-checks only routes it decided: on a public route or after
    // `authorize: 'token'`, a path naming another tenant is refused here.
    const path = new URL(c.req.url).pathname;
    const param = state.gatehouse.policy.tenantParam;
    const tenantRefusal = state.gatehouse.routeTenantRefusal(
      principal,
      c.req.method,
      path,
      param === undefined ? undefined : c.req.param(param),
    );
    if (tenantRefusal !== null) {
      logged(c, logger, tenantRefusal, authorization, startedAt, path);
      return denyResponse(tenantRefusal, authorization);
    }
    const checking = state.gatehouse.check(principal, list, clientContext(c.req.raw), mode);
    keepAlive(c, checking);
    const decision = await checking;
    keepFeedReading(c, state.gatehouse);
    logged(c, logger, decision, authorization, startedAt);
    if (!decision.allow) return denyResponse(decision, authorization);
    return next();
  };
}

// Signed events on Workers (docs/events.md): sign and verify in process, a Queues consumer, and
// the idempotency records (Durable Object: strong; KV: eventually consistent).
export {
  type AllowedEvent,
  type EventDecision,
  eventsFor,
  GatehouseEvents,
  type ProcessedEvents,
} from '../events/index.ts';
// What a Hono app on Workers needs to build its Gatehouse, without the root entry's YAML parser.
export {
  consoleJsonWriter,
  consoleObjectWriter,
  DecisionLogger,
  type DecisionLoggerOptions,
  type DecisionLogLine,
} from '../logging/decision-log.ts';
export { Gatehouse } from '../policy/decide.ts';
export { compilePolicy } from '../policy/policy.ts';
export { KvJwksPersistence, KvStore } from './kv-store.ts';
export { DurableProcessedEvents, KvProcessedEvents } from './processed-events.ts';
export {
  createEventQueueConsumer,
  type EventQueueConsumer,
  type MessageBatchLike,
  type QueueConsumerOptions,
  type QueueMessageLike,
} from './queue-consumer.ts';
