/**
 * The guard Worker's logic (handlers/worker.ts only wires it). A request goes through named steps,
 * top to bottom in this file:
 *
 *   fetch → runtimeFor (built once per isolate) → routeRequest
 *     → under the prefix: serveCheckApi, serveForwardAuth, the JWKS document
 *       (src/http/token-exchange.ts), and forwardToAdmin (the admin Worker) for the admin API,
 *       the token endpoint and the signed-event endpoints
 *     → anything else: guardRequest → decideAndLog (Gatehouse.decide) → denyResponse or
 *       forwardToOrigin (headersForOrigin, then the echo origin or originTarget)
 *
 * plus the RPC check and event methods. The admin API is a Worker of its own (handlers/admin-worker.ts):
 * the guard only hands `<prefix>/v1/admin` requests to the `ADMIN` service binding and bundles no
 * admin code (bench/worker.ts checks the bundle). The issuing endpoints (`<prefix>/v1/token`,
 * `<prefix>/v1/events`, `/v1/events/verify`) are served there too, to keep the guard's bundle
 * small (issue 10); the guard keeps the JWKS document, the event RPC methods and the
 * verification of delegation tokens and signed events.
 *
 * No Workers imports: bindings and the execution context are typed structurally, so the same code
 * type-checks under the Node tsconfig and can be driven from tests with any env object.
 */
import { ConfigError, EventError } from '../errors.ts';
import {
  type EventDecision,
  eventsFor,
  parseEventRequest,
  type SignOutcome,
} from '../events/events.ts';
import {
  type CheckAnswer,
  CheckInputError,
  type CheckItem,
  handleCheckRequest,
  MAX_BATCH_ITEMS,
  parseCheckItem,
  runCheck,
} from '../http/check-api.ts';
import { handleForwardAuth } from '../http/forward-auth.ts';
import {
  clientContext,
  denyResponse,
  IDENTITY_HEADER_PREFIX,
  identityHeaders,
  problemResponse,
  stripIdentityHeaders,
  stripOverrideHeaders,
} from '../http/responses.ts';
import { handleJwksRequest } from '../http/token-exchange.ts';
import {
  type DecisionLogConfig,
  type DecisionLogger,
  type DecisionLogTarget,
  readDecisionLogConfig,
} from '../logging/decision-log.ts';
import type { DecisionRequest, Gatehouse } from '../policy/decide.ts';
import type { CompiledPolicy } from '../policy/policy.ts';
import type { Decision } from '../types.ts';
import type { KvNamespaceLike } from './kv-store.ts';
import {
  booleanVar,
  compileWorkerPolicy,
  configurationError,
  feedFor,
  internalError,
  keepFeedReading,
  keptAlive,
  kvGatehouse,
  readKvCacheTtl,
  readPrefix,
  stringVar,
  validateAtStartup,
  type WaitUntilContext,
  type WorkerBaseOptions,
  workerDecisionLogger,
} from './setup.ts';

export { persistedJwksOptions, type WaitUntilContext } from './setup.ts';

/** The header the guard sends {@link GatehouseWorkerEnv.ORIGIN_SHARED_SECRET} in, always overwritten. */
export const ORIGIN_SECRET_HEADER = 'X-Gatehouse-Origin-Secret';

/** The Worker's bindings and vars (wrangler.toml `[vars]`, secrets, `.dev.vars`). */
export interface GatehouseWorkerEnv {
  /** KV namespace with permissions and persisted JWKS. Required unless the policy reads claims. */
  readonly PERMISSIONS?: KvNamespaceLike;
  /** `""`/unset: built-in echo origin; `incoming`: the request's own URL (route mode); or an http(s) URL. */
  readonly ORIGIN?: string;
  /** `true` forwards the client's Authorization header to the origin; default `false`. */
  readonly FORWARD_AUTHORIZATION?: string;
  /** Path prefix of the check API and forward-auth; default `/.gatehouse`; `off` disables both. */
  readonly GATEHOUSE_PREFIX?: string;
  /** KV `cacheTtl` for permission reads, seconds; default 30 (KV's minimum), at most 3600. */
  readonly KV_CACHE_TTL?: string;
  /**
   * Header holding the client IP on forward-auth calls (such as X-Real-IP); default
   * CF-Connecting-IP. It must hold one address: a list (X-Forwarded-For) counts as no IP.
   */
  readonly FORWARD_AUTH_IP_HEADER?: string;
  /**
   * `true` forwards method and URL override headers (X-HTTP-Method-Override, X-Original-URL, …)
   * to the origin; default `false` strips them.
   */
  readonly FORWARD_OVERRIDE_HEADERS?: string;
  /** A secret (`wrangler secret put`) sent to the origin as X-Gatehouse-Origin-Secret. */
  readonly ORIGIN_SHARED_SECRET?: string;
  /** `on` (default) writes one decision line per decision to Workers Logs; `off` none. */
  readonly DECISION_LOG?: string;
  /** Share of allows logged, a number from 0 to 1; default 0.01 (denies are always logged). */
  readonly DECISION_LOG_ALLOW_SAMPLE_RATE?: string;
  /** Accepted `typ` values for every issuer, comma-separated (`at+jwt`); default the policy's. */
  readonly GATEHOUSE_TYPES?: string;
  /** `true` refuses tokens without `typ`, `false` accepts them; default the policy's. */
  readonly GATEHOUSE_REQUIRE_TYPE?: string;
  /**
   * Service binding to the admin Worker (wrangler.admin.toml): `<prefix>/v1/admin` requests go
   * there unchanged. Unbound, those paths answer 404 like any unknown path under the prefix.
   */
  readonly ADMIN?: ServiceBindingLike;
  /**
   * The revocation feed's Durable Object (class RevocationFeed, docs/workers.md "Revocation"):
   * when bound, the isolate follows it and revocations apply within about a second.
   */
  readonly REVOCATION?: unknown;
  /** GATEHOUSE_JWKS_CACHE_TTL_SECONDS, _COOLDOWN_SECONDS, _TIMEOUT_MS, _MAX_STALE_SECONDS: issuer-env.ts. */
  /** Secrets named by the policy's `secretEnv` (GATEHOUSE_DEV_SECRET in the demo), and others. */
  readonly [name: string]: unknown;
}

/** The part of a Workers service binding (`Fetcher`) the guard uses. */
export interface ServiceBindingLike {
  fetch(request: Request): Promise<Response>;
}

export type OriginConfig =
  | { readonly kind: 'echo' }
  | { readonly kind: 'incoming' }
  | { readonly kind: 'url'; readonly url: URL };

export interface WorkerConfig {
  readonly origin: OriginConfig;
  readonly forwardAuthorization: boolean;
  /** null when the HTTP check API and forward-auth are off. */
  readonly prefix: string | null;
  readonly kvCacheTtl: number;
  readonly forwardAuthIpHeader: string | null;
  readonly forwardOverrideHeaders: boolean;
  /** Sent to the origin as {@link ORIGIN_SECRET_HEADER}; null when unset. */
  readonly originSecret: string | null;
  /** Decision logs (`DECISION_LOG`, `DECISION_LOG_ALLOW_SAMPLE_RATE`); null when off. */
  readonly decisionLog: DecisionLogConfig | null;
}

/**
 * The client IP from the proxy's header on a forward-auth call. Only a single address counts: a
 * list (X-Forwarded-For, or the header sent twice) holds entries the client chose, so it is
 * treated as no IP and IP conditions fail closed (grants off, denies on).
 */
export function forwardedClientIp(value: string | null): string | undefined {
  if (value === null) return undefined;
  const ip = value.trim();
  return ip === '' || ip.includes(',') ? undefined : ip;
}

/** Reads and validates the vars; a mistake throws {@link ConfigError} naming the variable. */
export function readWorkerConfig(env: GatehouseWorkerEnv): WorkerConfig {
  const originText = stringVar(env, 'ORIGIN');
  let origin: OriginConfig;
  if (originText === undefined || originText === 'echo') origin = { kind: 'echo' };
  else if (originText === 'incoming') origin = { kind: 'incoming' };
  else {
    let url: URL;
    try {
      url = new URL(originText);
    } catch {
      throw new ConfigError('ORIGIN', 'expected echo, incoming, or an absolute http(s) URL');
    }
    if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.search || url.hash) {
      throw new ConfigError('ORIGIN', 'expected an http(s) URL without query or fragment');
    }
    origin = { kind: 'url', url };
  }

  const forward = booleanVar(env, 'FORWARD_AUTHORIZATION');
  const forwardOverrideHeaders = booleanVar(env, 'FORWARD_OVERRIDE_HEADERS');
  const prefix = readPrefix(env);
  const kvCacheTtl = readKvCacheTtl(env);

  const ipHeader = stringVar(env, 'FORWARD_AUTH_IP_HEADER') ?? null;
  if (ipHeader !== null && !/^[A-Za-z0-9-]{1,64}$/.test(ipHeader)) {
    throw new ConfigError('FORWARD_AUTH_IP_HEADER', 'expected a header name such as X-Real-IP');
  }

  const originSecret = stringVar(env, 'ORIGIN_SHARED_SECRET') ?? null;
  if (originSecret !== null && !/^[\x21-\x7E]{32,256}$/.test(originSecret)) {
    // Never the value: only what is expected.
    throw new ConfigError(
      'ORIGIN_SHARED_SECRET',
      'expected 32 to 256 visible ASCII characters (e.g. openssl rand -base64 32)',
    );
  }

  if (env.ADMIN !== undefined && typeof env.ADMIN?.fetch !== 'function') {
    throw new ConfigError('ADMIN', 'expected a service binding to the admin Worker');
  }

  const decisionLog = readDecisionLogConfig((name) => stringVar(env, name));

  return {
    origin,
    forwardAuthorization: forward,
    prefix,
    kvCacheTtl,
    forwardAuthIpHeader: ipHeader,
    forwardOverrideHeaders,
    originSecret,
    decisionLog,
  };
}

/**
 * The built-in echo origin: answers with the method, path, query, the identity headers it
 * received and whether an Authorization header reached it (never its value).
 */
export function echoOrigin(method: string, url: URL, headers: Headers): Response {
  const identity: Record<string, string> = {};
  headers.forEach((value, name) => {
    if (name.toLowerCase().startsWith(IDENTITY_HEADER_PREFIX)) identity[name.toLowerCase()] = value;
  });
  const body = {
    origin: 'echo',
    method,
    path: url.pathname,
    query: url.search,
    identity,
    authorization: headers.has('authorization'),
  };
  return new Response(method === 'HEAD' ? null : JSON.stringify(body), {
    status: 200,
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
  });
}

export type GatehouseWorkerOptions = WorkerBaseOptions<GatehouseWorkerEnv>;

/** What one isolate builds once: the Gatehouse on KV, the parsed configuration, the logger. */
export interface WorkerRuntime {
  readonly gatehouse: Gatehouse;
  readonly config: WorkerConfig;
  /** Writes decision lines to Workers Logs; null when `DECISION_LOG` is off. */
  readonly decisionLog: DecisionLogger | null;
}

export interface GatehouseWorker {
  fetch(request: Request, env: GatehouseWorkerEnv, ctx: WaitUntilContext): Promise<Response>;
  /**
   * One check (RPC): the service binding is the credential, so no `authz:check` is needed. A
   * malformed item is answered (400, `malformed_request`, the field in `explain`), not thrown.
   */
  check(item: unknown, env: GatehouseWorkerEnv, ctx?: WaitUntilContext): Promise<CheckAnswer>;
  /** Up to 100 checks (RPC), one store read per distinct subject; more throws a RangeError. */
  checkBatch(
    items: unknown,
    env: GatehouseWorkerEnv,
    ctx?: WaitUntilContext,
  ): Promise<CheckAnswer[]>;
  /**
   * Signs an event for the holder of `token` (RPC): the token is verified and the permission
   * decided now, as over HTTP; the binding alone signs nothing for anyone. A malformed request is
   * a RangeError naming the field; a refused caller is `{ ok: false, decision }`.
   */
  signEvent(
    request: unknown,
    env: GatehouseWorkerEnv,
    ctx?: WaitUntilContext,
  ): Promise<SignOutcome>;
  /** Verifies an event and re-checks it now (RPC); never throws for a bad event. */
  verifyEvent(
    event: unknown,
    env: GatehouseWorkerEnv,
    ctx?: WaitUntilContext,
  ): Promise<EventDecision>;
  /** The isolate's runtime, built on first use from `env`. */
  runtime(env: GatehouseWorkerEnv): WorkerRuntime;
}

/** The runtime plus the seams every step below uses (origin and JWKS fetch, the clock). */
interface Guard extends WorkerRuntime {
  readonly fetch: typeof fetch;
  readonly now: () => number;
}

/** One request's answer; `ctx` keeps the work alive past the response (see keptAlive). */
type Step = (request: Request, url: URL, guard: Guard, ctx: WaitUntilContext) => Promise<Response>;

export function createGatehouseWorker(options: GatehouseWorkerOptions): GatehouseWorker {
  const seams = {
    fetch: options.fetch ?? ((input, init) => fetch(input, init)),
    now: options.now ?? Date.now,
  } satisfies Pick<Guard, 'fetch' | 'now'>;
  if (options.startupEnv !== undefined) {
    validateAtStartup(options.policy, options.startupEnv, readWorkerConfig);
  }
  const runtimeFor = onePerIsolate(options, seams);
  // The isolate's Gatehouse once built, for the feed read a request may leave running.
  const built = (): Gatehouse | undefined => runtimeFor.current?.gatehouse;

  return {
    fetch(request, env, ctx) {
      return keptAlive(followingFeed(serveRequest(request, env, ctx, runtimeFor), built, ctx), ctx);
    },
    check(item, env, ctx) {
      return keptAlive(followingFeed(checkOne(runtimeFor(env), item, ctx), built, ctx), ctx);
    },
    checkBatch(items, env, ctx) {
      return keptAlive(followingFeed(checkMany(runtimeFor(env), items, ctx), built, ctx), ctx);
    },
    signEvent(request, env, ctx) {
      return keptAlive(followingFeed(signOverRpc(runtimeFor(env), request), built, ctx), ctx);
    },
    verifyEvent(event, env, ctx) {
      const guard = runtimeFor(env);
      const verified = eventsFor(guard.gatehouse, { now: guard.now }).verify(event);
      return keptAlive(followingFeed(verified, built, ctx), ctx);
    },
    runtime: runtimeFor,
  };
}

/**
 * Builds the guard on the first request's env and hands the same one to every later request of
 * the isolate: the compiled policy, the Gatehouse with its caches, the logger.
 */
function onePerIsolate(
  options: GatehouseWorkerOptions,
  seams: Pick<Guard, 'fetch' | 'now'>,
): ((env: GatehouseWorkerEnv) => Guard) & { readonly current: Guard | null } {
  let compiled: CompiledPolicy | null = null;
  let built: Guard | null = null;
  const runtimeFor = (env: GatehouseWorkerEnv): Guard => {
    if (built !== null) return built;
    const config = readWorkerConfig(env);
    compiled ??= compileWorkerPolicy(options.policy, env);
    const binding = env.PERMISSIONS;
    const kv = binding === undefined ? undefined : (options.wrapKv?.(binding) ?? binding);
    const feed = feedFor(
      env.REVOCATION,
      compiled,
      seams.now,
      config.kvCacheTtl,
      options.awaitFeedReads === true,
    );
    built = {
      gatehouse: kvGatehouse({
        policy: compiled,
        kv,
        kvCacheTtl: config.kvCacheTtl,
        feed,
        ...seams,
      }),
      config,
      decisionLog: workerDecisionLogger(config.decisionLog, seams.now),
      ...seams,
    };
    return built;
  };
  return Object.defineProperty(runtimeFor, 'current', { get: () => built }) as typeof runtimeFor & {
    readonly current: Guard | null;
  };
}

/** Hands a feed read the request started to waitUntil once the answer is ready (setup.ts). */
function followingFeed<T>(
  pending: Promise<T>,
  built: () => Gatehouse | undefined,
  ctx: WaitUntilContext | undefined,
): Promise<T> {
  return pending.finally(() => keepFeedReading(built(), ctx));
}

/** A configuration mistake answers 503 on every request; unexpected failures 503 too. */
async function serveRequest(
  request: Request,
  env: GatehouseWorkerEnv,
  ctx: WaitUntilContext,
  runtimeFor: (env: GatehouseWorkerEnv) => Guard,
): Promise<Response> {
  let guard: Guard;
  try {
    guard = runtimeFor(env);
  } catch (error) {
    return configurationError(error);
  }
  try {
    return await routeRequest(request, env, guard, ctx);
  } catch {
    return internalError();
  }
}

/** The guard's own endpoints under the prefix never reach the origin; everything else is guarded. */
function routeRequest(
  request: Request,
  env: GatehouseWorkerEnv,
  guard: Guard,
  ctx: WaitUntilContext,
): Promise<Response> {
  const url = new URL(request.url);
  const prefix = guard.config.prefix;
  if (prefix === null || (url.pathname !== prefix && !url.pathname.startsWith(`${prefix}/`))) {
    return guardRequest(request, url, guard, ctx);
  }
  const rest = url.pathname.slice(prefix.length);
  if (rest === '/v1/check' || rest === '/v1/check/batch') {
    return serveCheckApi(request, url, guard, ctx);
  }
  if (rest === '/v1/authorize') return serveForwardAuth(request, url, guard, ctx);
  if (rest === '/jwks.json') return Promise.resolve(handleJwksRequest(guard.gatehouse, request));
  if (ADMIN_WORKER_PATHS.has(rest) || rest.startsWith('/v1/admin/')) {
    return forwardToAdmin(request, env);
  }
  return Promise.resolve(notFound());
}

/**
 * Paths under the prefix the admin Worker serves (src/workers/admin.ts): the admin API, and the
 * endpoints that issue tokens and signed events, kept out of the guard's bundle.
 */
const ADMIN_WORKER_PATHS: ReadonlySet<string> = new Set([
  '/v1/admin',
  '/v1/token',
  '/v1/events',
  '/v1/events/verify',
]);

function notFound(): Response {
  return problemResponse({ status: 404, reason: 'not_found', detail: 'No such endpoint.' });
}

/** POST <prefix>/v1/check and /v1/check/batch (src/http/check-api.ts). */
const serveCheckApi: Step = (request, url, guard, ctx) =>
  handleCheckRequest(guard.gatehouse, request, {
    batch: url.pathname.endsWith('/v1/check/batch'),
    context: clientContext(request),
    now: guard.now,
    log: logTarget(guard, 'check-api', ctx),
  });

/** <prefix>/v1/authorize for reverse proxies (src/http/forward-auth.ts). */
const serveForwardAuth: Step = (request, _url, guard, ctx) => {
  const context = clientContext(request);
  const ipHeader = guard.config.forwardAuthIpHeader;
  const ip = ipHeader === null ? context.ip : forwardedClientIp(request.headers.get(ipHeader));
  return handleForwardAuth(guard.gatehouse, request, {
    context: {
      ...(ip !== undefined && { ip }),
      ...(context.country !== undefined && { country: context.country }),
    },
    log: logTarget(guard, 'forward-auth', ctx),
  });
};

/**
 * <prefix>/v1/admin, /v1/token and /v1/events go to the admin Worker as the client sent them: it
 * verifies the caller's Authorization header (or subject token) itself, so the guard decides
 * nothing here and adds no identity headers. Without the binding they are not served.
 */
function forwardToAdmin(request: Request, env: GatehouseWorkerEnv): Promise<Response> {
  const admin = env.ADMIN;
  if (admin === undefined) return Promise.resolve(notFound());
  return admin.fetch(request);
}

/** Every other path: decide, then answer the deny or forward to the origin. */
const guardRequest: Step = async (request, url, guard, ctx) => {
  const authorization = request.headers.get('authorization');
  const decision = await decideAndLog(
    guard,
    { method: request.method, path: url.pathname, authorization, ...clientContext(request) },
    ctx,
  );
  if (!decision.allow) return denyResponse(decision, authorization);
  return forwardToOrigin(request, url, decision, guard);
};

/** Gatehouse.decide(), and the decision line written after the response if need be. */
async function decideAndLog(
  guard: Guard,
  asked: DecisionRequest,
  ctx: WaitUntilContext,
): Promise<Decision> {
  const logger = guard.decisionLog;
  const startedAt = logger === null ? 0 : logger.start();
  const decision = await guard.gatehouse.decide(asked);
  if (logger !== null) {
    // The digest is async: the line never delays the answer.
    const logged = logger.log('worker', decision, asked, startedAt);
    if (logged !== undefined) ctx.waitUntil(logged);
  }
  return decision;
}

/** An allowed request to the origin, with the guard's identity headers and nothing forged. */
function forwardToOrigin(
  request: Request,
  url: URL,
  decision: Decision,
  guard: Guard,
): Promise<Response> | Response {
  const headers = headersForOrigin(request.headers, decision, guard.config);
  const origin = guard.config.origin;
  if (origin.kind === 'echo') return echoOrigin(request.method, url, headers);
  const target = originTarget(origin, url);
  // The client's Host names the guard; a configured origin's comes from its URL.
  if (origin.kind === 'url') headers.delete('host');
  const hasBody = request.method !== 'GET' && request.method !== 'HEAD';
  return guard.fetch(target, {
    method: request.method,
    headers,
    body: hasBody ? request.body : null,
    redirect: 'manual',
  });
}

/**
 * The client's headers minus every identity header it sent (and, unless configured, override
 * headers and Authorization), plus the guard's identity headers and origin secret.
 */
function headersForOrigin(incoming: Headers, decision: Decision, config: WorkerConfig): Headers {
  const headers = new Headers(incoming);
  stripIdentityHeaders(headers);
  if (!config.forwardOverrideHeaders) stripOverrideHeaders(headers);
  if (!config.forwardAuthorization) headers.delete('authorization');
  for (const [name, value] of Object.entries(identityHeaders(decision))) headers.set(name, value);
  // Always the guard's own value (or none): a client-sent one never reaches the origin.
  headers.delete(ORIGIN_SECRET_HEADER);
  if (config.originSecret !== null) headers.set(ORIGIN_SECRET_HEADER, config.originSecret);
  return headers;
}

/** `incoming`: the request's own URL; a configured URL: the request path appended to its path. */
function originTarget(origin: Exclude<OriginConfig, { kind: 'echo' }>, url: URL): URL {
  if (origin.kind === 'incoming') return url;
  const target = new URL(origin.url.href);
  target.pathname = origin.url.pathname.replace(/\/$/, '') + url.pathname;
  target.search = url.search;
  return target;
}

/** Where an edge's decisions go in this request; undefined when decision logs are off. */
function logTarget(
  guard: WorkerRuntime,
  edge: string,
  ctx: WaitUntilContext | undefined,
): DecisionLogTarget | undefined {
  if (guard.decisionLog === null) return undefined;
  return {
    logger: guard.decisionLog,
    edge,
    waitUntil: ctx === undefined ? undefined : (promise) => ctx.waitUntil(promise),
  };
}

function invalidItem(error: CheckInputError): CheckAnswer {
  return {
    allow: false,
    status: 400,
    reason: 'malformed_request',
    explain: `${error.field}: ${error.expected}`,
  };
}

/** RPC `check`: a malformed item is an answer, not an exception, so callers get a readable deny. */
async function checkOne(
  guard: Guard,
  item: unknown,
  ctx: WaitUntilContext | undefined,
): Promise<CheckAnswer> {
  let parsed: CheckItem;
  try {
    parsed = parseCheckItem(item);
  } catch (error) {
    if (error instanceof CheckInputError) return invalidItem(error);
    throw error;
  }
  return runCheck(guard.gatehouse, parsed, guard.now, logTarget(guard, 'check-rpc', ctx));
}

/** RPC `checkBatch`: up to MAX_BATCH_ITEMS items, concurrently through the isolate cache. */
async function checkMany(
  guard: Guard,
  items: unknown,
  ctx: WaitUntilContext | undefined,
): Promise<CheckAnswer[]> {
  const log = logTarget(guard, 'check-rpc', ctx);
  if (!Array.isArray(items)) throw new TypeError('checkBatch expects an array of items');
  if (items.length > MAX_BATCH_ITEMS) {
    throw new RangeError(`checkBatch expects at most ${MAX_BATCH_ITEMS} items`);
  }
  return Promise.all(
    items.map((item, i) => {
      try {
        return runCheck(guard.gatehouse, parseCheckItem(item, `items[${i}]`), guard.now, log);
      } catch (error) {
        if (error instanceof CheckInputError) return invalidItem(error);
        throw error;
      }
    }),
  );
}

/**
 * RPC `signEvent`: `{ token, type, data?, permission | method + path, audience?, ttlSeconds?,
 * context?: { ip?, country? } }`. The caller's token is what vouches for the subject.
 */
async function signOverRpc(guard: Guard, request: unknown): Promise<SignOutcome> {
  if (typeof request !== 'object' || request === null || Array.isArray(request)) {
    throw new RangeError('signEvent expects an object');
  }
  const { token, context, ...rest } = request as Record<string, unknown>;
  if (typeof token !== 'string' || token === '') {
    throw new RangeError('signEvent: token is required (the caller whose permission is decided)');
  }
  const ctx = (typeof context === 'object' && context !== null ? context : {}) as Record<
    string,
    unknown
  >;
  try {
    return await eventsFor(guard.gatehouse, { now: guard.now }).signRequest(
      {
        authorization: `Bearer ${token}`,
        ip: typeof ctx.ip === 'string' ? ctx.ip : undefined,
        country: typeof ctx.country === 'string' ? ctx.country : undefined,
      },
      parseEventRequest(rest),
    );
  } catch (error) {
    // A message naming the field and the expectation, never the caller's values.
    if (error instanceof EventError) throw new RangeError(`signEvent: ${error.message}`);
    throw error;
  }
}
