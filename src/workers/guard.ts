/**
 * The guard Worker's logic (handlers/worker.ts only wires it): configuration from env vars, one
 * Gatehouse per isolate on the KV store, the route guard, the HTTP check API and forward-auth
 * under a reserved prefix, the built-in echo origin, and the RPC check methods.
 *
 * No Workers imports: bindings and the execution context are typed structurally, so the same code
 * type-checks under the Node tsconfig and can be driven from tests with any env object.
 */
import { ConfigError } from '../errors.ts';
import { type AdminApi, createAdminApi } from '../http/admin-api.ts';
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
import {
  consoleObjectWriter,
  type DecisionLogConfig,
  DecisionLogger,
  type DecisionLogTarget,
  readDecisionLogConfig,
} from '../logging/decision-log.ts';
// Not ../policy/index.ts: that re-exports the YAML text parser, which a Worker must not bundle.
import { Gatehouse } from '../policy/decide.ts';
import { applyIssuerEnv } from '../policy/issuer-env.ts';
import { type CompiledPolicy, compilePolicy } from '../policy/policy.ts';
import type { Decision } from '../types.ts';
import { type KvAdminNamespace, KvAdminStore } from './kv-admin-store.ts';
import { KvJwksPersistence, type KvNamespaceLike, KvStore } from './kv-store.ts';

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
  /** GATEHOUSE_JWKS_CACHE_TTL_SECONDS, _COOLDOWN_SECONDS, _TIMEOUT_MS, _MAX_STALE_SECONDS: issuer-env.ts. */
  /** Secrets named by the policy's `secretEnv` (GATEHOUSE_DEV_SECRET in the demo), and others. */
  readonly [name: string]: unknown;
}

/** The part of a Workers `ExecutionContext` the guard uses. */
export interface WaitUntilContext {
  waitUntil(promise: Promise<unknown>): void;
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
  /** Days the admin API keeps audit records (AUDIT_RETENTION_DAYS, default 90). */
  readonly auditRetentionDays: number;
  readonly forwardAuthIpHeader: string | null;
  readonly forwardOverrideHeaders: boolean;
  /** Sent to the origin as {@link ORIGIN_SECRET_HEADER}; null when unset. */
  readonly originSecret: string | null;
  /** Decision logs (`DECISION_LOG`, `DECISION_LOG_ALLOW_SAMPLE_RATE`); null when off. */
  readonly decisionLog: DecisionLogConfig | null;
}

function stringVar(env: GatehouseWorkerEnv, name: string): string | undefined {
  const value = env[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new ConfigError(name, 'expected a string variable');
  const trimmed = value.trim();
  return trimmed === '' ? undefined : trimmed;
}

function booleanVar(env: GatehouseWorkerEnv, name: string): boolean {
  const text = stringVar(env, name) ?? 'false';
  if (text !== 'true' && text !== 'false') throw new ConfigError(name, 'expected true or false');
  return text === 'true';
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

  const prefixText = stringVar(env, 'GATEHOUSE_PREFIX') ?? '/.gatehouse';
  let prefix: string | null = null;
  if (prefixText !== 'off') {
    if (!/^(\/[A-Za-z0-9._~-]+)+$/.test(prefixText) || /\/\.{1,2}(\/|$)/.test(prefixText)) {
      throw new ConfigError('GATEHOUSE_PREFIX', 'expected a path such as /.gatehouse, or off');
    }
    prefix = prefixText;
  }

  const ttlText = stringVar(env, 'KV_CACHE_TTL') ?? '30';
  const kvCacheTtl = Number(ttlText);
  if (!/^\d+$/.test(ttlText) || kvCacheTtl < 30 || kvCacheTtl > 3600) {
    throw new ConfigError('KV_CACHE_TTL', 'expected whole seconds from 30 (KV minimum) to 3600');
  }

  const retentionText = stringVar(env, 'AUDIT_RETENTION_DAYS') ?? '90';
  const auditRetentionDays = Number(retentionText);
  if (!/^\d+$/.test(retentionText) || auditRetentionDays < 1 || auditRetentionDays > 3650) {
    throw new ConfigError('AUDIT_RETENTION_DAYS', 'expected whole days from 1 to 3650');
  }

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

  const decisionLog = readDecisionLogConfig((name) => stringVar(env, name));

  return {
    origin,
    forwardAuthorization: forward,
    prefix,
    kvCacheTtl,
    auditRetentionDays,
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

export interface GatehouseWorkerOptions {
  /** The policy document (the bundled JSON); compiled once per isolate. */
  readonly policy: unknown;
  /**
   * The env at module load (`import { env } from 'cloudflare:workers'`), when available: the
   * policy and vars are validated then, so a mistake fails start-up naming the field.
   */
  readonly startupEnv?: GatehouseWorkerEnv | undefined;
  /** fetch for the origin and JWKS endpoints; default global fetch. */
  readonly fetch?: typeof fetch;
  /** Clock in milliseconds; default Date.now. */
  readonly now?: () => number;
  /** Wraps the KV binding before use (tests and benchmarks count or fail reads with it). */
  readonly wrapKv?: (kv: KvNamespaceLike) => KvNamespaceLike;
}

/** What one isolate builds once: the Gatehouse on KV, the parsed configuration, the logger. */
export interface WorkerRuntime {
  readonly gatehouse: Gatehouse;
  readonly config: WorkerConfig;
  /** Writes decision lines to Workers Logs; null when `DECISION_LOG` is off. */
  readonly decisionLog: DecisionLogger | null;
  /** The admin API under `<prefix>/v1/admin`; null without a prefix or a KV binding. */
  readonly admin: AdminApi | null;
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
  /** The isolate's runtime, built on first use from `env`. */
  runtime(env: GatehouseWorkerEnv): WorkerRuntime;
}

/** Resolves `secretEnv` to a placeholder when a secret is absent, to validate structure alone. */
function withPlaceholderSecrets(env: GatehouseWorkerEnv): Record<string, unknown> {
  return new Proxy(
    {},
    {
      get: (_target, name) => {
        if (typeof name !== 'string') return undefined;
        const value = env[name];
        return typeof value === 'string' && value !== ''
          ? value
          : 'placeholder-secret-for-validation-only-0123456789abcdef';
      },
    },
  );
}

function invalidItem(error: CheckInputError): CheckAnswer {
  return {
    allow: false,
    status: 400,
    reason: 'malformed_request',
    explain: `${error.field}: ${error.expected}`,
  };
}

/** Fails closed when something unexpected throws: nothing internal reaches the client. */
function internalError(): Response {
  return problemResponse({
    status: 503,
    reason: 'internal_error',
    headers: { 'retry-after': '5' },
  });
}

/**
 * KV persistence of key sets, sized from the policy's JWKS issuers: entries live as long as the
 * largest `maxStaleSeconds` (default 86400; the verifier ignores an older set anyway), and an
 * unchanged set is dated again after half the smallest `cacheTtlSeconds` (default 600), so cold
 * isolates usually find a set still inside its TTL. Within KV's limits.
 */
export function persistedJwksOptions(policy: CompiledPolicy): {
  expirationTtlSeconds: number;
  rewriteAfterSeconds: number;
} {
  let maxStale = 0;
  let minTtl = Number.POSITIVE_INFINITY;
  for (const issuer of policy.verifier.issuers) {
    if (!('jwksUri' in issuer.keys)) continue;
    maxStale = Math.max(maxStale, issuer.keys.maxStaleSeconds ?? 86_400);
    minTtl = Math.min(minTtl, issuer.keys.cacheTtlSeconds ?? 600);
  }
  const clamp = (value: number, low: number, high: number) =>
    Math.min(high, Math.max(low, Math.floor(value)));
  return {
    expirationTtlSeconds: clamp(maxStale === 0 ? 86_400 : maxStale, 60, 604_800),
    rewriteAfterSeconds: clamp(Number.isFinite(minTtl) ? minTtl / 2 : 300, 30, 86_400),
  };
}

/** Like the guard: a store load other requests joined must outlive a cancelled RPC call. */
function keptAlive<T>(pending: Promise<T>, ctx: WaitUntilContext | undefined): Promise<T> {
  ctx?.waitUntil(pending.catch(() => undefined));
  return pending;
}

export function createGatehouseWorker(options: GatehouseWorkerOptions): GatehouseWorker {
  const fetchImpl = options.fetch ?? ((input, init) => fetch(input, init));
  const now = options.now ?? Date.now;
  let compiled: CompiledPolicy | null = null;
  let runtime: WorkerRuntime | null = null;

  if (options.startupEnv !== undefined) {
    // Structure and vars now (start-up); secrets may be absent until the first request's env.
    const startupEnv = options.startupEnv;
    compilePolicy(
      applyIssuerEnv(options.policy, (name) => stringVar(startupEnv, name)),
      { env: withPlaceholderSecrets(startupEnv) },
    );
    readWorkerConfig(options.startupEnv);
  }

  function build(env: GatehouseWorkerEnv): WorkerRuntime {
    if (runtime !== null) return runtime;
    const config = readWorkerConfig(env);
    // The same issuer variables as the Lambdas (GATEHOUSE_TYPES, GATEHOUSE_JWKS_*): issuer-env.ts.
    compiled ??= compilePolicy(
      applyIssuerEnv(options.policy, (name) => stringVar(env, name)),
      { env },
    );
    const binding = env.PERMISSIONS;
    const kv = binding === undefined ? undefined : (options.wrapKv?.(binding) ?? binding);
    if (kv === undefined && compiled.permissions.source === 'store') {
      throw new ConfigError('PERMISSIONS', 'expected a KV namespace binding named PERMISSIONS');
    }
    const gatehouse = new Gatehouse({
      policy: compiled,
      ...(kv !== undefined && {
        store: new KvStore(kv, { cacheTtlSeconds: config.kvCacheTtl }),
        persistence: new KvJwksPersistence(kv, persistedJwksOptions(compiled)),
      }),
      fetch: fetchImpl,
      now,
    });
    const decisionLog =
      config.decisionLog === null
        ? null
        : new DecisionLogger({
            allowSampleRate: config.decisionLog.allowSampleRate,
            write: consoleObjectWriter,
            now,
          });
    // The raw binding: a wrapped one (tests, benchmarks) may lack list(), which management needs.
    const admin =
      config.prefix === null ||
      binding === undefined ||
      typeof (binding as unknown as Partial<KvAdminNamespace>).list !== 'function'
        ? null
        : createAdminApi({
            gatehouse,
            store: new KvAdminStore(binding as unknown as KvAdminNamespace),
            basePath: `${config.prefix}/v1/admin`,
            auditRetentionDays: config.auditRetentionDays,
            decisionLog,
            now,
          });
    runtime = { gatehouse, config, decisionLog, admin };
    return runtime;
  }

  async function forward(
    request: Request,
    url: URL,
    decision: Decision,
    config: WorkerConfig,
  ): Promise<Response> {
    const headers = new Headers(request.headers);
    stripIdentityHeaders(headers);
    if (!config.forwardOverrideHeaders) stripOverrideHeaders(headers);
    if (!config.forwardAuthorization) headers.delete('authorization');
    for (const [name, value] of Object.entries(identityHeaders(decision))) headers.set(name, value);
    // Always the guard's own value (or none): a client-sent one never reaches the origin.
    headers.delete(ORIGIN_SECRET_HEADER);
    if (config.originSecret !== null) headers.set(ORIGIN_SECRET_HEADER, config.originSecret);
    const origin = config.origin;
    if (origin.kind === 'echo') return echoOrigin(request.method, url, headers);
    let target: URL;
    if (origin.kind === 'incoming') target = url;
    else {
      target = new URL(origin.url.href);
      target.pathname = origin.url.pathname.replace(/\/$/, '') + url.pathname;
      target.search = url.search;
      // The client's Host names the guard; the origin's comes from its URL.
      headers.delete('host');
    }
    const hasBody = request.method !== 'GET' && request.method !== 'HEAD';
    return fetchImpl(target, {
      method: request.method,
      headers,
      body: hasBody ? request.body : null,
      redirect: 'manual',
    });
  }

  /** Where an edge's decisions go in this request; undefined when decision logs are off. */
  function logTarget(
    rt: WorkerRuntime,
    edge: string,
    ctx: WaitUntilContext | undefined,
  ): DecisionLogTarget | undefined {
    if (rt.decisionLog === null) return undefined;
    return {
      logger: rt.decisionLog,
      edge,
      waitUntil: ctx === undefined ? undefined : (promise) => ctx.waitUntil(promise),
    };
  }

  async function api(
    request: Request,
    url: URL,
    rt: WorkerRuntime,
    ctx: WaitUntilContext,
  ): Promise<Response> {
    const { gatehouse, config } = rt;
    const rest = url.pathname.slice(config.prefix!.length);
    const context = clientContext(request);
    if (rest === '/v1/check' || rest === '/v1/check/batch') {
      return handleCheckRequest(gatehouse, request, {
        batch: rest === '/v1/check/batch',
        context,
        now,
        log: logTarget(rt, 'check-api', ctx),
      });
    }
    if (rest === '/v1/authorize') {
      const ipHeader = config.forwardAuthIpHeader;
      const ip = ipHeader === null ? context.ip : forwardedClientIp(request.headers.get(ipHeader));
      return handleForwardAuth(gatehouse, request, {
        context: {
          ...(ip !== undefined && { ip }),
          ...(context.country !== undefined && { country: context.country }),
        },
        log: logTarget(rt, 'forward-auth', ctx),
      });
    }
    if (rest === '/v1/admin' || rest.startsWith('/v1/admin/')) {
      if (rt.admin === null) {
        return problemResponse({ status: 404, reason: 'not_found', detail: 'No such endpoint.' });
      }
      return rt.admin.fetch(request, context);
    }
    return problemResponse({ status: 404, reason: 'not_found', detail: 'No such endpoint.' });
  }

  async function handle(
    request: Request,
    env: GatehouseWorkerEnv,
    ctx: WaitUntilContext,
  ): Promise<Response> {
    let rt: WorkerRuntime;
    try {
      rt = build(env);
    } catch (error) {
      // Field and expectation only (ConfigError messages never hold secrets).
      const what = error instanceof ConfigError ? error.message : 'unexpected error';
      console.error(`gatehouse: configuration error: ${what}`);
      return problemResponse({
        status: 503,
        reason: 'configuration_error',
        headers: { 'retry-after': '5' },
      });
    }
    const url = new URL(request.url);
    const prefix = rt.config.prefix;
    if (prefix !== null && (url.pathname === prefix || url.pathname.startsWith(`${prefix}/`))) {
      return api(request, url, rt, ctx);
    }
    const authorization = request.headers.get('authorization');
    const context = clientContext(request);
    const asked = {
      method: request.method,
      path: url.pathname,
      authorization,
      ip: context.ip,
      country: context.country,
    };
    const logger = rt.decisionLog;
    const startedAt = logger === null ? 0 : logger.start();
    const decision = await rt.gatehouse.decide(asked);
    if (logger !== null) {
      // Written after the response if need be (the digest is async): never delays the answer.
      const logged = logger.log('worker', decision, asked, startedAt);
      if (logged !== undefined) ctx.waitUntil(logged);
    }
    if (!decision.allow) return denyResponse(decision, authorization);
    return forward(request, url, decision, rt.config);
  }

  async function checkOne(
    item: unknown,
    env: GatehouseWorkerEnv,
    ctx: WaitUntilContext | undefined,
  ): Promise<CheckAnswer> {
    const rt = build(env);
    let parsed: CheckItem;
    try {
      parsed = parseCheckItem(item);
    } catch (error) {
      // An answer, not an exception: RPC callers get a deny they can read.
      if (error instanceof CheckInputError) return invalidItem(error);
      throw error;
    }
    return runCheck(rt.gatehouse, parsed, now, logTarget(rt, 'check-rpc', ctx));
  }

  async function checkMany(
    items: unknown,
    env: GatehouseWorkerEnv,
    ctx: WaitUntilContext | undefined,
  ): Promise<CheckAnswer[]> {
    const rt = build(env);
    const log = logTarget(rt, 'check-rpc', ctx);
    if (!Array.isArray(items)) throw new TypeError('checkBatch expects an array of items');
    if (items.length > MAX_BATCH_ITEMS) {
      throw new RangeError(`checkBatch expects at most ${MAX_BATCH_ITEMS} items`);
    }
    return Promise.all(
      items.map((item, i) => {
        try {
          return runCheck(rt.gatehouse, parseCheckItem(item, `items[${i}]`), now, log);
        } catch (error) {
          if (error instanceof CheckInputError) return invalidItem(error);
          throw error;
        }
      }),
    );
  }

  return {
    fetch(request, env, ctx) {
      const pending = handle(request, env, ctx).catch(() => internalError());
      // Requests share in-flight store loads (single-flight). Keeping each request alive until
      // its work settles means a load another request joined is never cancelled with the request
      // that started it (workerd cancels continuations of a finished request's promises).
      ctx.waitUntil(pending);
      return pending;
    },
    check(item, env, ctx) {
      return keptAlive(checkOne(item, env, ctx), ctx);
    },
    checkBatch(items, env, ctx) {
      return keptAlive(checkMany(items, env, ctx), ctx);
    },
    runtime: build,
  };
}
