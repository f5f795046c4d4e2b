/**
 * Signed events inside workerd (issue 13): the guard Worker's endpoints and RPC methods, the
 * Workers Queues consumer driven with real `MessageBatch` objects (cloudflare:test
 * `createMessageBatch` / `getQueueResult`; the guard's wrangler.toml declares no queue, so no
 * miniflare producer feeds it), and the idempotency records on the real revocation-feed Durable
 * Object and local KV.
 */
import { createExecutionContext, createMessageBatch, getQueueResult } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { beforeEach, describe, expect, it } from 'vitest';
import type { AllowedEvent, ConsumerLogEntry } from '../../src/events/index.ts';
import { DurableProcessedEvents, KvProcessedEvents } from '../../src/workers/processed-events.ts';
import { createEventQueueConsumer } from '../../src/workers/queue-consumer.ts';
import { alterEvent } from '../support/events.ts';
import {
  bearer,
  DEMO_POLICY,
  demoTokenFor,
  seedDemo,
  testAdmin,
  testGuardWithAdmin,
} from './helpers.ts';

let counter = 0;
/** A name no other test touches (KV and the Durable Object persist between the tests of a file). */
function fresh(name: string): string {
  return `${name}-${Date.now().toString(36)}-${++counter}`;
}

const KEYS = { GATEHOUSE_DELEGATION_KEYS: env.GATEHOUSE_DELEGATION_KEYS as string };

beforeEach(async () => {
  await seedDemo();
  await env.PERMISSIONS.put('user/-/s:root', JSON.stringify({ grants: ['admin:permissions'] }));
});

function guard(vars: Record<string, unknown> = {}) {
  return testGuardWithAdmin({ ...KEYS, REVOCATION: env.REVOCATION, ...vars });
}

async function sign(g: ReturnType<typeof guard>, token: string, body: Record<string, unknown>) {
  return g.fetch('/.gatehouse/v1/events', {
    method: 'POST',
    headers: { ...bearer(token), 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

async function signedEvent(g: ReturnType<typeof guard>, subject: string): Promise<string> {
  const response = await sign(g, await demoTokenFor(subject), {
    type: 'com.example.post.publish',
    data: { post: 7 },
    permission: 'publish:posts',
  });
  expect(response.status).toBe(200);
  return ((await response.json()) as { event: string }).event;
}

async function verify(g: ReturnType<typeof guard>, event: unknown) {
  const response = await g.fetch('/.gatehouse/v1/events/verify', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ event }),
  });
  expect(response.status).toBe(200);
  return (await response.json()) as Record<string, unknown>;
}

async function adminCall(method: string, path: string, body?: unknown) {
  const token = await demoTokenFor('root');
  return testAdmin({ REVOCATION: env.REVOCATION }).fetch(`/.gatehouse/v1/admin${path}`, {
    method,
    headers: {
      ...bearer(token),
      ...(body !== undefined && { 'content-type': 'application/json' }),
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
}

describe('the event endpoints on the guard Worker', () => {
  it('signs for a caller holding the permission now, and verifies with the re-check', async () => {
    const g = guard();
    const response = await sign(g, await demoTokenFor('bob'), {
      type: 'com.example.post.publish',
      data: { post: 7 },
      method: 'POST',
      path: '/posts/7/publish',
      ttlSeconds: 600,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const body = (await response.json()) as { event: string; id: string; expiresAt: number };
    expect(body.expiresAt - Math.floor(Date.now() / 1000)).toBeGreaterThan(590);
    const verified = await verify(g, body.event);
    expect(verified).toMatchObject({
      allow: true,
      status: 200,
      subject: 'bob',
      event: { id: body.id, type: 'com.example.post.publish', data: { post: 7 } },
    });
    // Whoever holds an event learns whether it runs, not bob's grant chain.
    expect(verified).not.toHaveProperty('explain');
    expect(verified).not.toHaveProperty('matched');
  });

  it('signs nothing for a caller without the permission (403) or without a token (401)', async () => {
    const g = guard();
    const denied = await sign(g, await demoTokenFor('alice'), {
      type: 't.x',
      permission: 'publish:posts',
    });
    expect(denied.status).toBe(403);
    expect(await denied.json()).toMatchObject({ reason: 'missing_permission' });
    const anonymous = await g.fetch('/.gatehouse/v1/events', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 't.x', permission: 'publish:posts' }),
    });
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toContain('Bearer');
  });

  it('refuses malformed bodies naming the field, never echoing values', async () => {
    const g = guard();
    const token = await demoTokenFor('bob');
    for (const [body, field] of [
      [{ type: 't.x', permission: 'publish:posts', ttlSeconds: 10 ** 9 }, 'ttlSeconds'],
      [{ type: 't.x', permission: 'publish:posts', extra: 'SECRETVALUE' }, 'extra'],
      [{ type: 't.x', permission: 'publish:posts', audience: 'SECRETVALUE' }, 'audience'],
    ] as const) {
      const response = await sign(g, token, body);
      expect(response.status).toBe(400);
      const text = await response.text();
      expect(text).toContain(field);
      expect(text).not.toContain('SECRETVALUE');
    }
    const big = await sign(g, token, {
      type: 't.x',
      permission: 'publish:posts',
      data: 'x'.repeat(70_000),
    });
    expect(big.status).toBe(413);
    expect(await big.json()).toMatchObject({ reason: 'event_too_large' });
  });

  it('an event is never a bearer token at the guard, the check API or the signing endpoint', async () => {
    const g = guard();
    const event = await signedEvent(g, 'bob');
    const guarded = await g.fetch('/posts/1', { headers: bearer(event) });
    expect(guarded.status).toBe(401);
    expect(await guarded.json()).toMatchObject({ reason: 'token_invalid_type' });
    const check = await g.fetch('/.gatehouse/v1/check', {
      method: 'POST',
      headers: { ...bearer(event), 'content-type': 'application/json' },
      body: JSON.stringify({ subject: 'bob', permission: 'read:posts' }),
    });
    expect(check.status).toBe(401);
    const again = await sign(g, event, { type: 't.x', permission: 'publish:posts' });
    expect(again.status).toBe(401);
  });

  it('nothing else is an event: identity provider and delegation tokens, altered events', async () => {
    const g = guard();
    expect(await verify(g, await demoTokenFor('bob'))).toMatchObject({
      allow: false,
      status: 401,
      reason: 'token_unknown_issuer',
    });
    const event = await signedEvent(g, 'bob');
    const altered = alterEvent(event, (c) => {
      c.sub = 'carol';
    });
    expect(await verify(g, altered)).toMatchObject({
      allow: false,
      status: 401,
      reason: 'token_invalid_signature',
    });
  });

  it('RPC signEvent and verifyEvent answer as HTTP does; the binding alone signs nothing', async () => {
    const g = guard();
    const out = await g.worker.signEvent(
      { token: await demoTokenFor('bob'), type: 'a.b', permission: 'publish:posts', data: [1] },
      g.env,
    );
    expect(out.ok).toBe(true);
    if (out.ok) {
      expect(await g.worker.verifyEvent(out.event, g.env)).toMatchObject({
        allow: true,
        event: { data: [1] },
      });
    }
    await expect(
      g.worker.signEvent({ type: 'a.b', permission: 'publish:posts' }, g.env),
    ).rejects.toThrowError(RangeError);
    expect(await g.worker.verifyEvent(42, g.env)).toMatchObject({
      allow: false,
      reason: 'token_malformed',
    });
  });
});

describe('idempotency records on Workers', () => {
  it('the Durable Object makes exactly one of concurrent deliveries first, until released', async () => {
    const processed = new DurableProcessedEvents(env.REVOCATION);
    const id = fresh('evt');
    const expiresAt = Math.floor(Date.now() / 1000) + 600;
    const results = await Promise.all(
      Array.from({ length: 10 }, () => processed.recordProcessed(id, expiresAt)),
    );
    expect(results.filter((r) => r === 'first')).toHaveLength(1);
    await processed.release(id);
    expect(await processed.recordProcessed(id, expiresAt)).toBe('first');
    expect(processed.consistency).toBe('strong');
  });

  it('KV records first, in progress, then done, and says it is eventually consistent', async () => {
    const processed = new KvProcessedEvents(env.PERMISSIONS);
    const id = fresh('evt');
    const expiresAt = Math.floor(Date.now() / 1000) + 600;
    expect(await processed.recordProcessed(id, expiresAt)).toBe('first');
    expect(await processed.recordProcessed(id, expiresAt)).toBe('in_progress');
    await processed.complete(id, expiresAt);
    expect(await processed.recordProcessed(id, expiresAt)).toBe('duplicate');
    expect(processed.consistency).toBe('eventual');
  });

  it('both keep a record past exp while the event still verifies (leeway), and let an ended lease be taken over', async () => {
    for (const processed of [
      new DurableProcessedEvents(env.REVOCATION),
      new KvProcessedEvents(env.PERMISSIONS),
    ]) {
      // Expired 5 s ago: the verifier still accepts it for the rest of its leeway.
      const late = fresh('evt');
      const expired = Math.floor(Date.now() / 1000) - 5;
      expect(await processed.recordProcessed(late, expired)).toBe('first');
      await processed.complete(late, expired);
      expect(await processed.recordProcessed(late, expired)).toBe('duplicate');
      // A run killed mid-handler: retry while its lease lives, taken over once it ended.
      const killed = fresh('evt');
      const expiresAt = Math.floor(Date.now() / 1000) + 600;
      expect(await processed.recordProcessed(killed, expiresAt, 2)).toBe('first');
      expect(await processed.recordProcessed(killed, expiresAt, 2)).toBe('in_progress');
      await new Promise((resolve) => setTimeout(resolve, 3_100));
      expect(await processed.recordProcessed(killed, expiresAt, 2)).toBe('first');
    }
  });
});

describe('the scenario on Workers, through a Queues consumer', () => {
  let ran: AllowedEvent[];
  let logs: ConsumerLogEntry[];

  beforeEach(() => {
    ran = [];
    logs = [];
  });

  function consumer(vars: Record<string, unknown> = {}) {
    const consumerEnv = { ...guard().env, ...vars };
    const c = createEventQueueConsumer<typeof consumerEnv>({
      policy: DEMO_POLICY,
      handler: (event) => {
        ran.push(event);
      },
      processed: (e) => new DurableProcessedEvents(e.REVOCATION as never),
      retryDelaySeconds: 5,
      log: (entry) => logs.push(entry),
    });
    return {
      async deliver(...bodies: unknown[]) {
        const batch = createMessageBatch(
          'events',
          bodies.map((body, i) => ({ id: `m${i}`, timestamp: Date.now(), attempts: 1, body })),
        );
        const ctx = createExecutionContext();
        await c.queue(batch, consumerEnv, ctx);
        return getQueueResult(batch, ctx);
      },
    };
  }

  it('intact: runs once even when delivered twice, in one batch and in another', async () => {
    const event = await signedEvent(guard(), 'bob');
    const c = consumer();
    const first = await c.deliver(event, { event });
    expect(ran).toHaveLength(1);
    // A copy in the same batch finds the other's run done (acked) or still in progress: then it
    // is retried, never acked unrun (the holder might die), and the retry finds it done.
    const retried = first.retryMessages.map((m) => m.msgId);
    expect([...first.explicitAcks, ...retried].sort()).toEqual(['m0', 'm1']);
    expect(logs.filter((l) => l.why === 'in_progress')).toHaveLength(retried.length);
    const again = await c.deliver(event);
    expect(again.explicitAcks).toEqual(['m0']);
    expect(ran).toHaveLength(1);
    expect(ran[0]).toMatchObject({
      subject: 'bob',
      type: 'com.example.post.publish',
      data: { post: 7 },
    });
    expect(logs.filter((l) => l.type === 'gatehouse.event_duplicate')).toHaveLength(
      2 - retried.length,
    );
  });

  it('denied before the consumer runs: acked, never run, and the log says why', async () => {
    const subject = fresh('alice');
    const granted = await adminCall('POST', `/users/${subject}/grants`, {
      permission: 'publish:posts',
    });
    expect(granted.status).toBe(201);
    const g = guard();
    const earlier = await signedEvent(g, subject);
    const event = await signedEvent(g, subject);
    const c = consumer();
    // The consumer's isolate has her record cached (30 s TTL) from an earlier operation.
    expect((await c.deliver(earlier)).explicitAcks).toEqual(['m0']);
    expect(ran).toHaveLength(1);
    const revoked = await adminCall('DELETE', `/users/${subject}/grants/publish:posts`);
    expect(revoked.status).toBe(200);
    ran = [];
    logs = [];
    // One feed interval later the consumer's next delivery waits for the feed read, which
    // evicts her record: the re-check reads the store as it is now.
    await new Promise((r) => setTimeout(r, 1100));
    const result = await c.deliver(event);
    expect(result.explicitAcks).toEqual(['m0']);
    expect(result.retryMessages).toEqual([]);
    expect(ran).toEqual([]);
    expect(logs).toEqual([
      expect.objectContaining({
        type: 'gatehouse.event_refused',
        reason: 'missing_permission',
        subject,
        status: 403,
      }),
    ]);
  });

  it('altered: acked and never run', async () => {
    const event = await signedEvent(guard(), 'bob');
    const altered = alterEvent(event, (c) => {
      c.data = { post: 'all' };
    });
    const result = await consumer().deliver(altered, 'not a jws', { event: 7 });
    expect(result.explicitAcks.sort()).toEqual(['m0', 'm1', 'm2']);
    expect(ran).toEqual([]);
    expect(logs.map((l) => l.reason).sort()).toEqual([
      'token_invalid_signature',
      'token_malformed',
      'token_malformed',
    ]);
  });

  it('store unavailable: retried with the delay, nothing run', async () => {
    const event = await signedEvent(guard(), 'bob');
    const down = createEventQueueConsumer({
      policy: DEMO_POLICY,
      worker: {
        wrapKv: () => ({
          get: () => Promise.reject(new Error('KV down')),
          put: () => Promise.reject(new Error('KV down')),
          delete: () => Promise.reject(new Error('KV down')),
        }),
      },
      handler: (e) => {
        ran.push(e);
      },
      retryDelaySeconds: 5,
      log: (entry) => logs.push(entry),
    });
    const batch = createMessageBatch('events', [
      { id: 'm0', timestamp: Date.now(), attempts: 1, body: event },
    ]);
    // The real batch, seen through its structural shape so the retry's options are visible too
    // (getQueueResult reports which message was retried, not the delay it asked for).
    const asked: unknown[] = [];
    const seen = {
      queue: batch.queue,
      messages: batch.messages.map((m) => ({
        id: m.id,
        body: m.body,
        attempts: m.attempts,
        ack: () => m.ack(),
        retry: (options?: { delaySeconds?: number }) => {
          asked.push(options);
          m.retry(options);
        },
      })),
    };
    const ctx = createExecutionContext();
    await down.queue(seen, { ...guard().env }, ctx);
    const result = await getQueueResult(batch, ctx);
    expect(result.retryMessages.map((m) => m.msgId)).toEqual(['m0']);
    expect(asked).toEqual([{ delaySeconds: 5 }]);
    expect(result.explicitAcks).toEqual([]);
    expect(ran).toEqual([]);
  });
});
