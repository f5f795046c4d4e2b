/**
 * Shared set-up for the Worker tests: the demo policy and seed data, a guard Worker built with
 * the same adapter code as handlers/worker.ts but with per-test vars, and token minting.
 */
import { env } from 'cloudflare:workers';
import * as jose from 'jose';
import demoPermissions from '../../demo/permissions.json';
import demoPolicy from '../../demo/policy.json';
import {
  type AdminWorker,
  type AdminWorkerEnv,
  type AdminWorkerOptions,
  createAdminWorker,
} from '../../src/workers/admin.ts';
import {
  createGatehouseWorker,
  type GatehouseWorker,
  type GatehouseWorkerEnv,
  type GatehouseWorkerOptions,
} from '../../src/workers/guard.ts';
import { type KvNamespaceLike, seedKv } from '../../src/workers/kv-store.ts';
import { DEMO_AUDIENCE, DEMO_ISSUER } from '../support/cases.ts';

/** The dev secret these tests sign with (never a real one). */
export const TEST_SECRET = 'workers-test-secret-0123456789abcdef-0123';

export const DEMO_POLICY: unknown = demoPolicy;

export async function seedDemo(kv: KvNamespaceLike = env.PERMISSIONS): Promise<void> {
  await seedKv(kv, JSON.stringify(demoPermissions), 'demo/permissions.json');
}

/** A context whose waitUntil promises tests can await. */
export function testContext(): { waitUntil(p: Promise<unknown>): void; settle(): Promise<void> } {
  const pending: Promise<unknown>[] = [];
  return {
    waitUntil(p) {
      pending.push(p);
    },
    async settle() {
      await Promise.allSettled(pending);
    },
  };
}

export interface TestGuard {
  readonly worker: GatehouseWorker;
  readonly env: GatehouseWorkerEnv;
  fetch(input: string, init?: RequestInit & { cf?: { country?: string } }): Promise<Response>;
}

/** A guard Worker over the test KV with the demo policy (or another) and the given vars. */
export function testGuard(
  vars: Record<string, unknown> = {},
  options: Partial<GatehouseWorkerOptions> = {},
): TestGuard {
  const testEnv: GatehouseWorkerEnv = {
    PERMISSIONS: env.PERMISSIONS,
    ORIGIN: 'echo',
    GATEHOUSE_DEV_SECRET: TEST_SECRET,
    ...vars,
  };
  const worker = createGatehouseWorker({ policy: DEMO_POLICY, ...options });
  return {
    worker,
    env: testEnv,
    async fetch(input, init) {
      const url = input.startsWith('http') ? input : `https://guard.example${input}`;
      const request = new Request(url, init as RequestInit);
      return worker.fetch(request, testEnv, testContext());
    },
  };
}

/**
 * A guard whose ADMIN binding reaches an admin Worker with the same vars and options, as
 * `npm start` runs the two: the admin API, `<prefix>/v1/token` and `<prefix>/v1/events` are
 * served by the admin Worker and reached through the guard, at the URLs clients use.
 */
export function testGuardWithAdmin(
  vars: Record<string, unknown> = {},
  options: Partial<GatehouseWorkerOptions> = {},
): TestGuard {
  // The options both Workers share; startupEnv is each Worker's own.
  const { startupEnv: _startupEnv, ...shared } = options;
  const admin = testAdmin(vars, shared);
  return testGuard(
    {
      ...vars,
      ADMIN: { fetch: (request: Request) => admin.worker.fetch(request, admin.env, testContext()) },
    },
    options,
  );
}

export interface TestAdmin {
  readonly worker: AdminWorker;
  readonly env: AdminWorkerEnv;
  fetch(input: string, init?: RequestInit): Promise<Response>;
}

/** The admin Worker (handlers/admin-worker.ts's logic) over the test KV with the given vars. */
export function testAdmin(
  vars: Record<string, unknown> = {},
  options: Partial<AdminWorkerOptions> = {},
): TestAdmin {
  const testEnv: AdminWorkerEnv = {
    PERMISSIONS: env.PERMISSIONS,
    GATEHOUSE_DEV_SECRET: TEST_SECRET,
    ...vars,
  };
  const worker = createAdminWorker({ policy: DEMO_POLICY, ...options });
  return {
    worker,
    env: testEnv,
    async fetch(input, init) {
      const url = input.startsWith('http') ? input : `https://admin.example${input}`;
      return worker.fetch(new Request(url, init), testEnv, testContext());
    },
  };
}

/** A demo-issuer token for `subject` (HS256 with the test secret), valid for `ttl` seconds. */
export async function demoTokenFor(
  subject: string,
  claims: Record<string, unknown> = {},
  ttl = 600,
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new jose.SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', kid: 'dev', typ: 'JWT' })
    .setIssuer(DEMO_ISSUER)
    .setAudience(DEMO_AUDIENCE)
    .setSubject(subject)
    .setIssuedAt(now)
    .setExpirationTime(now + ttl)
    .sign(new TextEncoder().encode(TEST_SECRET));
}

export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

/** The echo origin's answer. */
export interface EchoBody {
  readonly origin: 'echo';
  readonly method: string;
  readonly path: string;
  readonly query: string;
  readonly identity: Record<string, string>;
  readonly authorization: boolean;
}

/** A KV binding that counts reads, or fails every call while `failing` is set. */
export function instrumentedKv(inner: KvNamespaceLike = env.PERMISSIONS) {
  const state = { reads: 0, failing: false, delayMs: 0 };
  const kv: KvNamespaceLike = {
    async get(key, options) {
      state.reads++;
      if (state.failing) throw new Error('KV GET failed: 503 internal backend detail');
      if (state.delayMs > 0) await new Promise((r) => setTimeout(r, state.delayMs));
      return inner.get(key, options);
    },
    async put(key, value, options) {
      if (state.failing) throw new Error('KV PUT failed');
      return inner.put(key, value, options);
    },
    async delete(key) {
      return inner.delete(key);
    },
  };
  return { kv, state };
}

export const TENANT_ISSUER = 'https://tenants.gatehouse.test/';

/** The demo policy plus a second HS256 issuer whose tokens carry the tenant in `tid`. */
export const TENANT_POLICY = (() => {
  const doc = structuredClone(DEMO_POLICY) as { issuers: unknown[] };
  doc.issuers.push({
    issuer: TENANT_ISSUER,
    audiences: [DEMO_AUDIENCE],
    algorithms: ['HS256'],
    keys: { secretEnv: 'GATEHOUSE_DEV_SECRET', kid: 'dev' },
    tenantClaim: 'tid',
  });
  return doc;
})();

/** A token of the tenant issuer for `subject` in tenant `tid`, valid for 10 minutes. */
export function tenantToken(subject: string, tid: string): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new jose.SignJWT({ tid })
    .setProtectedHeader({ alg: 'HS256', kid: 'dev', typ: 'JWT' })
    .setIssuer(TENANT_ISSUER)
    .setAudience(DEMO_AUDIENCE)
    .setSubject(subject)
    .setIssuedAt(now)
    .setExpirationTime(now + 600)
    .sign(new TextEncoder().encode(TEST_SECRET));
}
