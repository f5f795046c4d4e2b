/**
 * What the guard Worker and the admin Worker build the same way from their env: variable
 * parsing, the policy compiled with the issuer variables, a Gatehouse on KV, the decision logger,
 * and the 503 answers for a configuration mistake or an unexpected failure.
 *
 * Holds no admin code: the guard imports it, and the guard's bundle must stay free of the admin
 * API (bench/worker.ts checks the bundle's inputs).
 */
import { ConfigError } from '../errors.ts';
import { problemResponse } from '../http/responses.ts';
import {
  consoleObjectWriter,
  type DecisionLogConfig,
  DecisionLogger,
} from '../logging/decision-log.ts';
// Not ../policy/index.ts: that re-exports the YAML text parser, which a Worker must not bundle.
import { Gatehouse } from '../policy/decide.ts';
import { applyIssuerEnv } from '../policy/issuer-env.ts';
import { type CompiledPolicy, compilePolicy } from '../policy/policy.ts';
import type { FeedLogOptions } from '../revocation/feed.ts';
import { KvJwksPersistence, type KvNamespaceLike, KvStore } from './kv-store.ts';
import { followedKv, recentWindowMs, type WorkerFeed, workerFeed } from './revocation.ts';

/** A Worker's bindings and vars, read by name. */
export type WorkerVars = { readonly [name: string]: unknown };

/** The part of a Workers `ExecutionContext` the Workers use. */
/** What both Workers (the guard and the admin API) are built from. */
export interface WorkerBaseOptions<Env> {
  /** The policy document (the bundled JSON); compiled once per isolate. */
  readonly policy: unknown;
  /**
   * The env at module load (`import { env } from 'cloudflare:workers'`), when available: the
   * policy and vars are validated then, so a mistake fails start-up naming the field.
   */
  readonly startupEnv?: Env | undefined;
  /** fetch for the origin and JWKS endpoints; default global fetch. */
  readonly fetch?: typeof fetch;
  /** Clock in milliseconds; default Date.now. */
  readonly now?: () => number;
  /** Wraps the KV binding before use (tests and benchmarks count or fail reads with it). */
  readonly wrapKv?: (kv: KvNamespaceLike) => KvNamespaceLike;
  /**
   * A decision that finds a revocation-feed read due waits for it (default false: the read runs
   * beside it). True for queue consumers, where a re-check may wait but must not answer from
   * data older than one feed interval.
   */
  readonly awaitFeedReads?: boolean;
}

export interface WaitUntilContext {
  waitUntil(promise: Promise<unknown>): void;
}

export function stringVar(env: WorkerVars, name: string): string | undefined {
  const value = env[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new ConfigError(name, 'expected a string variable');
  const trimmed = value.trim();
  return trimmed === '' ? undefined : trimmed;
}

export function booleanVar(env: WorkerVars, name: string): boolean {
  const text = stringVar(env, name) ?? 'false';
  if (text !== 'true' && text !== 'false') throw new ConfigError(name, 'expected true or false');
  return text === 'true';
}

/** `GATEHOUSE_PREFIX` (default `/.gatehouse`); null for `off`. */
export function readPrefix(env: WorkerVars): string | null {
  const text = stringVar(env, 'GATEHOUSE_PREFIX') ?? '/.gatehouse';
  if (text === 'off') return null;
  if (!/^(\/[A-Za-z0-9._~-]+)+$/.test(text) || /\/\.{1,2}(\/|$)/.test(text)) {
    throw new ConfigError('GATEHOUSE_PREFIX', 'expected a path such as /.gatehouse, or off');
  }
  return text;
}

/** `KV_CACHE_TTL`, seconds: 30 (KV's minimum, the default) to 3600. */
export function readKvCacheTtl(env: WorkerVars): number {
  const text = stringVar(env, 'KV_CACHE_TTL') ?? '30';
  const seconds = Number(text);
  if (!/^\d+$/.test(text) || seconds < 30 || seconds > 3600) {
    throw new ConfigError('KV_CACHE_TTL', 'expected whole seconds from 30 (KV minimum) to 3600');
  }
  return seconds;
}

/** Resolves `secretEnv` to a placeholder when a secret is absent, to validate structure alone. */
function withPlaceholderSecrets(env: WorkerVars): Record<string, unknown> {
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

/**
 * At module load: the policy's structure and the vars, so a mistake fails `wrangler dev` /
 * `wrangler deploy` naming the field. Secrets may be absent until the first request's env.
 */
export function validateAtStartup(
  policy: unknown,
  startupEnv: WorkerVars,
  readConfig: (env: WorkerVars) => unknown,
): void {
  compilePolicy(
    applyIssuerEnv(policy, (name) => stringVar(startupEnv, name)),
    // Secret-backed key sets are read on the first request, when the secrets surely exist.
    { env: withPlaceholderSecrets(startupEnv), secrets: false },
  );
  readConfig(startupEnv);
}

/** The policy with the issuer variables applied (GATEHOUSE_TYPES, GATEHOUSE_JWKS_*: issuer-env.ts). */
export function compileWorkerPolicy(policy: unknown, env: WorkerVars): CompiledPolicy {
  return compilePolicy(
    applyIssuerEnv(policy, (name) => stringVar(env, name)),
    { env },
  );
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

/** The Gatehouse on the KV binding (permissions and persisted key sets), when there is one. */
export function kvGatehouse(options: {
  readonly policy: CompiledPolicy;
  readonly kv: KvNamespaceLike | undefined;
  readonly kvCacheTtl: number;
  readonly fetch: typeof fetch;
  readonly now: () => number;
  /** The revocation feed (the `REVOCATION` binding), when bound: the Gatehouse follows it. */
  readonly feed?: WorkerFeed | undefined;
}): Gatehouse {
  const { policy, kv, feed } = options;
  if (kv === undefined && policy.permissions.source === 'store') {
    throw new ConfigError('PERMISSIONS', 'expected a KV namespace binding named PERMISSIONS');
  }
  return new Gatehouse({
    policy,
    ...(kv !== undefined && {
      store: new KvStore(feed === undefined ? kv : followedKv(kv, feed.follower, feed.client), {
        cacheTtlSeconds: options.kvCacheTtl,
      }),
      persistence: new KvJwksPersistence(kv, persistedJwksOptions(policy)),
    }),
    fetch: options.fetch,
    now: options.now,
    ...(feed !== undefined && { revocation: feed.follower }),
  });
}

/**
 * The isolate's feed follower settings from the compiled policy, when `REVOCATION` is bound. Its
 * recent window is the Durable Object's ({@link feedObjectOptions}): both derive it from the
 * same policy and `KV_CACHE_TTL`, so the guard asks the feed for a key exactly while it holds it.
 */
export function feedFor(
  binding: unknown,
  policy: CompiledPolicy,
  now: () => number,
  kvCacheTtl: number,
  awaitReads = false,
): WorkerFeed | undefined {
  return workerFeed(binding, {
    ...policy.revocation,
    recentMs: recentWindowMs(kvCacheTtl, policy.cache.ttlSeconds ?? 30),
    now,
    awaitReads,
  });
}

/**
 * The feed Durable Object's options, from the guard's policy and vars (the object runs in the
 * guard's Worker, so it sees the same env): it keeps each value for the guard's recent window.
 */
export function feedObjectOptions(policy: unknown, env: WorkerVars): FeedLogOptions {
  const compiled = compileWorkerPolicy(policy, env);
  return { recentMs: recentWindowMs(readKvCacheTtl(env), compiled.cache.ttlSeconds ?? 30) };
}

/**
 * A feed read a request started runs beside it (the follower does not make requests wait for
 * it); waitUntil keeps it alive after the response, so the next request finds it applied.
 */
export function keepFeedReading(
  gatehouse: Gatehouse | undefined,
  ctx: WaitUntilContext | undefined,
) {
  const pending = gatehouse?.revocation?.pending;
  if (pending !== undefined) ctx?.waitUntil(pending);
}

/** Decision lines to Workers Logs; null when `DECISION_LOG` is off. */
export function workerDecisionLogger(
  config: DecisionLogConfig | null,
  now: () => number,
): DecisionLogger | null {
  if (config === null) return null;
  return new DecisionLogger({
    allowSampleRate: config.allowSampleRate,
    write: consoleObjectWriter,
    now,
  });
}

/** A configuration mistake: 503 for every request, and one log line naming the field. */
export function configurationError(error: unknown): Response {
  // Field and expectation only (ConfigError messages never hold secrets).
  const what = error instanceof ConfigError ? error.message : 'unexpected error';
  console.error(`gatehouse: configuration error: ${what}`);
  return problemResponse({
    status: 503,
    reason: 'configuration_error',
    headers: { 'retry-after': '5' },
  });
}

/** Fails closed when something unexpected throws: nothing internal reaches the client. */
export function internalError(): Response {
  return problemResponse({
    status: 503,
    reason: 'internal_error',
    headers: { 'retry-after': '5' },
  });
}

/**
 * Requests share in-flight store loads (single-flight). Keeping each request or RPC call alive
 * until its work settles means a load another request joined is never cancelled with the one
 * that started it (workerd cancels continuations of a finished request's promises).
 */
export function keptAlive<T>(pending: Promise<T>, ctx: WaitUntilContext | undefined): Promise<T> {
  ctx?.waitUntil(pending.catch(() => undefined));
  return pending;
}
