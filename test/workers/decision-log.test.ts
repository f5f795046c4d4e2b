/**
 * Decision logs inside workerd: the guard, forward-auth, the check API and RPC, and the Hono
 * middleware write one object per decision to the console (what Workers Logs indexes), with the
 * token's digest and never the token; the pending line is handed to ctx.waitUntil.
 */
import { env } from 'cloudflare:workers';
import { Hono } from 'hono';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DECISION_LOG_TYPE } from '../../src/logging/decision-log.ts';
import { compilePolicy, Gatehouse } from '../../src/policy/index.ts';
import { DecisionLogger, type GatehouseEnv, gatehouse } from '../../src/workers/hono.ts';
import { KvStore } from '../../src/workers/kv-store.ts';
import {
  bearer,
  DEMO_POLICY,
  demoTokenFor,
  seedDemo,
  TEST_SECRET,
  testAdmin,
  testContext,
  testGuard,
} from './helpers.ts';

/** What reached the console, per method. */
let written: { method: 'log' | 'warn' | 'error'; value: unknown }[];
beforeEach(async () => {
  await seedDemo();
  written = [];
  for (const method of ['log', 'warn', 'error'] as const) {
    vi.spyOn(console, method).mockImplementation((value: unknown) => {
      written.push({ method, value });
    });
  }
});
afterEach(() => {
  vi.restoreAllMocks();
});

/** Decision lines only (objects of our type). */
function lines(): Record<string, unknown>[] {
  return written
    .map((w) => w.value)
    .filter(
      (v): v is Record<string, unknown> =>
        typeof v === 'object' && v !== null && (v as { type?: unknown }).type === DECISION_LOG_TYPE,
    );
}

/** SHA-256 of the token, first 16 bytes, base64url: computed here independently. */
async function digestOf(token: string): Promise<string> {
  const hash = new Uint8Array(
    await crypto.subtle.digest('SHA-256', new TextEncoder().encode(token)),
  );
  return btoa(String.fromCharCode(...hash.subarray(0, 16)))
    .replace(/\+/g, '-')
    .replace(/\//g, '_')
    .replace(/=+$/, '');
}

/** Calls the guard with a context whose waitUntil promises the test awaits. */
async function call(vars: Record<string, unknown>, path: string, init: RequestInit = {}) {
  const guard = testGuard(vars);
  const pending: Promise<unknown>[] = [];
  const ctx = { waitUntil: (p: Promise<unknown>) => void pending.push(p) };
  const response = await guard.worker.fetch(
    new Request(`https://guard.example${path}`, init),
    guard.env,
    ctx,
  );
  await Promise.allSettled(pending);
  return { response, waited: pending.length, guard };
}

describe('the guard', () => {
  it('writes a deny line as an object on console.warn, with the digest and not the token', async () => {
    const alice = await demoTokenFor('alice');
    const { response } = await call({}, '/posts/1?secret=1', {
      method: 'PUT',
      headers: bearer(alice),
    });
    expect(response.status).toBe(403);
    expect(written.map((w) => w.method)).toEqual(['warn']);
    expect(lines()).toEqual([
      expect.objectContaining({
        level: 'warn',
        edge: 'worker',
        allow: false,
        status: 403,
        reason: 'missing_permission',
        method: 'PUT',
        path: '/posts/1',
        route: 'PUT,PATCH /posts/:id',
        subject: 'alice',
        sampleRate: 1,
        tokenDigest: await digestOf(alice),
      }),
    ]);
    const text = JSON.stringify(lines());
    for (const part of alice.split('.')) expect(text).not.toContain(part);
    expect(text).not.toContain('secret');
  });

  it('writes an allow line at DECISION_LOG_ALLOW_SAMPLE_RATE=1, handed to waitUntil', async () => {
    const bob = await demoTokenFor('bob');
    const { response, waited } = await call({ DECISION_LOG_ALLOW_SAMPLE_RATE: '1' }, '/posts/7', {
      method: 'PATCH',
      headers: bearer(bob),
    });
    expect(response.status).toBe(200);
    // The request's own promise and the pending line.
    expect(waited).toBe(2);
    expect(written.map((w) => w.method)).toEqual(['log']);
    expect(lines()[0]).toMatchObject({
      level: 'info',
      edge: 'worker',
      allow: true,
      reason: 'allowed',
      required: ['write:posts:7'],
      matched: [{ required: 'write:posts:7', grant: 'write:posts:*', via: ['editor'] }],
      cache: { token: 'miss', permissions: 'miss' },
      sampleRate: 1,
      tokenDigest: await digestOf(bob),
    });
    expect(typeof lines()[0]?.latencyMs).toBe('number');
  });

  it('writes no allow line at rate 0 and nothing at all with DECISION_LOG=off', async () => {
    const alice = await demoTokenFor('alice');
    await call({ DECISION_LOG_ALLOW_SAMPLE_RATE: '0' }, '/posts/1', { headers: bearer(alice) });
    await call({ DECISION_LOG: 'off' }, '/posts/1', { method: 'PUT', headers: bearer(alice) });
    expect(written).toEqual([]);
  });

  it('answers 503 when DECISION_LOG is misspelt, naming the variable in the log', async () => {
    const { response } = await call({ DECISION_LOG: 'true' }, '/posts/1');
    expect(response.status).toBe(503);
    expect(String(written[0]?.value)).toContain('DECISION_LOG: expected on or off');
  });
});

describe('the other Worker edges', () => {
  it('logs forward-auth decisions as edge forward-auth', async () => {
    await call({}, '/.gatehouse/v1/authorize', {
      headers: { 'x-forwarded-method': 'DELETE', 'x-forwarded-uri': '/posts/1?x=y' },
    });
    expect(lines()).toEqual([
      expect.objectContaining({
        edge: 'forward-auth',
        status: 401,
        reason: 'token_missing',
        method: 'DELETE',
        path: '/posts/1',
      }),
    ]);
  });

  it('logs the HTTP check API caller and each item as edge check-api', async () => {
    const carol = await demoTokenFor('carol');
    const alice = await demoTokenFor('alice');
    const { response } = await call(
      { DECISION_LOG_ALLOW_SAMPLE_RATE: '1' },
      '/.gatehouse/v1/check',
      {
        method: 'POST',
        headers: { ...bearer(carol), 'content-type': 'application/json' },
        body: JSON.stringify({ token: alice, method: 'PUT', path: '/posts/3' }),
      },
    );
    expect(response.status).toBe(200);
    expect(lines()).toEqual([
      expect.objectContaining({
        edge: 'check-api',
        allow: true,
        subject: 'carol',
        required: ['authz:check'],
        path: '/.gatehouse/v1/check',
        tokenDigest: await digestOf(carol),
      }),
      expect.objectContaining({
        edge: 'check-api',
        allow: false,
        subject: 'alice',
        method: 'PUT',
        path: '/posts/3',
        tokenDigest: await digestOf(alice),
      }),
    ]);
  });

  it('logs RPC checks as edge check-rpc', async () => {
    const guard = testGuard();
    const pending: Promise<unknown>[] = [];
    const ctx = { waitUntil: (p: Promise<unknown>) => void pending.push(p) };
    const answers = await guard.worker.checkBatch(
      [
        { subject: 'alice', permission: 'read:posts' },
        { subject: 'alice', permission: 'delete:posts:1' },
      ],
      guard.env,
      ctx,
    );
    await Promise.allSettled(pending);
    expect(answers.map((a) => a.allow)).toEqual([true, false]);
    // Denies always; the allow only if the 1 % draw picked it.
    expect(lines().filter((l) => l.allow === false)).toEqual([
      expect.objectContaining({
        edge: 'check-rpc',
        subject: 'alice',
        required: ['delete:posts:1'],
        reason: 'missing_permission',
      }),
    ]);
  });
});

describe('the Hono middleware', () => {
  function app(decisionLog?: DecisionLogger) {
    const policy = compilePolicy(DEMO_POLICY, { env: { GATEHOUSE_DEV_SECRET: TEST_SECRET } });
    const instance = new Gatehouse({ policy, store: new KvStore(env.PERMISSIONS) });
    const hono = new Hono<GatehouseEnv>();
    hono.use('*', gatehouse({ gatehouse: instance, decisionLog }));
    hono.get('/posts/:id', (c) => c.text('ok'));
    return hono;
  }

  it('logs nothing unless given a logger', async () => {
    const response = await app().request('/posts/1');
    expect(response.status).toBe(401);
    expect(written).toEqual([]);
  });

  it('logs each decision through the logger it is given', async () => {
    const alice = await demoTokenFor('alice');
    const hono = app(new DecisionLogger({ allowSampleRate: 1 }));
    expect((await hono.request('/posts/1', { headers: bearer(alice) })).status).toBe(200);
    expect((await hono.request('/posts/2')).status).toBe(401);
    // Hono's request() runs without an execution context: let the pending lines settle.
    await vi.waitFor(() => expect(lines()).toHaveLength(2));
    expect(lines()).toEqual([
      expect.objectContaining({ edge: 'hono', allow: true, tokenDigest: await digestOf(alice) }),
      expect.objectContaining({ edge: 'hono', reason: 'token_missing', path: '/posts/2' }),
    ]);
  });
});

describe('admin API', () => {
  it('writes a decision line for each call: 401, 403 and the allowed admin', async () => {
    const base = '/.gatehouse/v1/admin/users/bob';
    // The admin Worker (handlers/admin-worker.ts), which writes these lines itself.
    const callAdmin = async (vars: Record<string, unknown>, init: RequestInit = {}) => {
      const admin = testAdmin(vars);
      const ctx = testContext();
      await admin.worker.fetch(new Request(`https://admin.example${base}`, init), admin.env, ctx);
      await ctx.settle();
    };
    await callAdmin({});
    const alice = await demoTokenFor('alice');
    await callAdmin({}, { headers: bearer(alice) });
    const carol = await demoTokenFor('carol');
    await callAdmin({ DECISION_LOG_ALLOW_SAMPLE_RATE: '1' }, { headers: bearer(carol) });
    const admin = lines().filter((l) => l.edge === 'admin-api');
    expect(admin.map((l) => [l.status, l.reason])).toEqual([
      [401, 'token_missing'],
      [403, 'missing_permission'],
      [200, 'allowed'],
    ]);
    expect(admin[1]).toMatchObject({
      path: base,
      subject: 'alice',
      required: ['admin:permissions'],
      tokenDigest: await digestOf(alice),
    });
    expect(JSON.stringify(admin)).not.toContain(alice);
  });
});
