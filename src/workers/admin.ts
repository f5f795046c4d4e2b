/**
 * The admin Worker's logic (handlers/admin-worker.ts only wires it): the admin API
 * (src/http/admin-api.ts) under `<GATEHOUSE_PREFIX>/v1/admin`, on the same `PERMISSIONS` KV
 * namespace as the guard. A Worker of its own so the guard's bundle carries no management code;
 * the guard hands it `<prefix>/v1/admin` requests over the `ADMIN` service binding, unchanged.
 * The guard forwards the issuing endpoints the same way, so their code stays out of its bundle
 * too: the RFC 8693 token endpoint `<prefix>/v1/token` (src/http/token-exchange.ts) and signed
 * events `<prefix>/v1/events`, `/v1/events/verify` (src/http/events.ts). Issuing needs the
 * delegation signing keys (GATEHOUSE_DELEGATION_KEYS), so this Worker is given them as well.
 *
 * It trusts nothing the guard could add: every call is authenticated here, from the caller's
 * Authorization header, with its own Gatehouse (the policy's issuers, the caller's permissions
 * read from KV).
 */
import { ConfigError } from '../errors.ts';
import { type AdminApi, createAdminApi } from '../http/admin-api.ts';
import { handleEventRequest } from '../http/events.ts';
import { clientContext } from '../http/responses.ts';
import { handleTokenRequest } from '../http/token-exchange.ts';
import {
  type DecisionLogConfig,
  type DecisionLogger,
  readDecisionLogConfig,
} from '../logging/decision-log.ts';
import type { Gatehouse } from '../policy/decide.ts';
import { type KvAdminNamespace, KvAdminStore } from './kv-admin-store.ts';
import type { KvNamespaceLike } from './kv-store.ts';
import { managementFeed } from './revocation.ts';
import {
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

/** The admin Worker's bindings and vars (wrangler.admin.toml `[vars]`, secrets, `.dev.vars`). */
export interface AdminWorkerEnv {
  /** The guard's KV namespace: permissions, roles and the audit trail. Required. */
  readonly PERMISSIONS?: KvNamespaceLike & KvAdminNamespace;
  /** The guard's path prefix; the API is served under `<prefix>/v1/admin`. Default `/.gatehouse`. */
  readonly GATEHOUSE_PREFIX?: string;
  /** KV `cacheTtl` for the caller's permission reads, seconds; default 30, at most 3600. */
  readonly KV_CACHE_TTL?: string;
  /** Days audit records are kept, 1 to 3650; default 90. */
  readonly AUDIT_RETENTION_DAYS?: string;
  /** `on` (default) writes a decision line per call (the caller's admin permission); `off` none. */
  readonly DECISION_LOG?: string;
  /** Share of allows logged, a number from 0 to 1; default 0.01. */
  readonly DECISION_LOG_ALLOW_SAMPLE_RATE?: string;
  /**
   * The guard's revocation feed (Durable Object class RevocationFeed, bound with
   * `script_name = "gatehouse"`): changes are recorded there before KV; sign-outs and token
   * revocations need it.
   */
  readonly REVOCATION?: unknown;
  /** Issuer variables (GATEHOUSE_TYPES, GATEHOUSE_JWKS_*) and secrets named by `secretEnv`. */
  readonly [name: string]: unknown;
}

export interface AdminWorkerConfig {
  /** GATEHOUSE_PREFIX: the token and event endpoints are served under it. */
  readonly prefix: string;
  /** `<GATEHOUSE_PREFIX>/v1/admin`. */
  readonly basePath: string;
  readonly kvCacheTtl: number;
  readonly auditRetentionDays: number;
  /** Decision logs; null when off. */
  readonly decisionLog: DecisionLogConfig | null;
}

/** Reads and validates the vars; a mistake throws {@link ConfigError} naming the variable. */
export function readAdminWorkerConfig(env: AdminWorkerEnv): AdminWorkerConfig {
  const prefix = readPrefix(env);
  if (prefix === null) {
    // `off` turns the guard's endpoints off; a deployed admin Worker still needs its paths.
    throw new ConfigError(
      'GATEHOUSE_PREFIX',
      'the admin Worker expects a path such as /.gatehouse',
    );
  }
  const kvCacheTtl = readKvCacheTtl(env);
  const retentionText = stringVar(env, 'AUDIT_RETENTION_DAYS') ?? '90';
  const auditRetentionDays = Number(retentionText);
  if (!/^\d+$/.test(retentionText) || auditRetentionDays < 1 || auditRetentionDays > 3650) {
    throw new ConfigError('AUDIT_RETENTION_DAYS', 'expected whole days from 1 to 3650');
  }
  const decisionLog = readDecisionLogConfig((name) => stringVar(env, name));
  return { prefix, basePath: `${prefix}/v1/admin`, kvCacheTtl, auditRetentionDays, decisionLog };
}

/** The guard's options shape; the policy is the guard's, and there is no origin to fetch. */
export type AdminWorkerOptions = WorkerBaseOptions<AdminWorkerEnv>;

/** What one isolate builds once. */
export interface AdminWorkerRuntime {
  /** Verifies callers and checks their admin permission. */
  readonly gatehouse: Gatehouse;
  readonly api: AdminApi;
  readonly store: KvAdminStore;
  readonly config: AdminWorkerConfig;
  readonly decisionLog: DecisionLogger | null;
}

export interface AdminWorker {
  fetch(request: Request, env: AdminWorkerEnv, ctx: WaitUntilContext): Promise<Response>;
  /** The isolate's runtime, built on first use from `env`. */
  runtime(env: AdminWorkerEnv): AdminWorkerRuntime;
}

export function createAdminWorker(options: AdminWorkerOptions): AdminWorker {
  const fetchImpl = options.fetch ?? ((input, init) => fetch(input, init));
  const now = options.now ?? Date.now;
  if (options.startupEnv !== undefined) {
    validateAtStartup(options.policy, options.startupEnv, readAdminWorkerConfig);
  }
  let built: AdminWorkerRuntime | null = null;

  function runtimeFor(env: AdminWorkerEnv): AdminWorkerRuntime {
    if (built !== null) return built;
    const config = readAdminWorkerConfig(env);
    const binding = env.PERMISSIONS;
    if (binding === undefined || typeof binding.list !== 'function') {
      // Changes and the audit trail live in KV, whatever the policy reads permissions from.
      throw new ConfigError('PERMISSIONS', 'expected a KV namespace binding named PERMISSIONS');
    }
    const policy = compileWorkerPolicy(options.policy, env);
    const gatehouse = kvGatehouse({
      policy,
      kv: options.wrapKv?.(binding) ?? binding,
      kvCacheTtl: config.kvCacheTtl,
      fetch: fetchImpl,
      now,
      // Callers are checked like any request: a signed-out admin is refused here too.
      feed: feedFor(env.REVOCATION, policy, now, config.kvCacheTtl),
    });
    const decisionLog = workerDecisionLogger(config.decisionLog, now);
    // The raw binding: a wrapped one (tests) may lack list(), which management needs.
    const managed = managementFeed(env.REVOCATION, binding);
    const store = new KvAdminStore(managed?.kv ?? binding);
    const api = createAdminApi({
      gatehouse,
      store,
      ...(managed !== undefined && { feed: managed.feed }),
      basePath: config.basePath,
      auditRetentionDays: config.auditRetentionDays,
      decisionLog,
      now,
    });
    built = { gatehouse, api, store, config, decisionLog };
    return built;
  }

  /** The token and event endpoints the guard forwards here; null for any other path. */
  function issuing(
    request: Request,
    gatehouse: Gatehouse,
    prefix: string,
  ): Promise<Response> | null {
    const path = new URL(request.url).pathname;
    if (!path.startsWith(`${prefix}/`)) return null;
    const rest = path.slice(prefix.length);
    if (rest === '/v1/token') return handleTokenRequest(gatehouse, request, { now });
    if (rest !== '/v1/events' && rest !== '/v1/events/verify') return null;
    return handleEventRequest(gatehouse, request, {
      verify: rest === '/v1/events/verify',
      context: clientContext(request),
      now,
    });
  }

  async function serve(request: Request, env: AdminWorkerEnv): Promise<Response> {
    let runtime: AdminWorkerRuntime;
    try {
      runtime = runtimeFor(env);
    } catch (error) {
      return configurationError(error);
    }
    try {
      return await (issuing(request, runtime.gatehouse, runtime.config.prefix) ??
        runtime.api.fetch(request, clientContext(request)));
    } catch {
      return internalError();
    }
  }

  return {
    fetch(request, env, ctx) {
      return keptAlive(
        serve(request, env).finally(() => keepFeedReading(built?.gatehouse, ctx)),
        ctx,
      );
    },
    runtime: runtimeFor,
  };
}
