/**
 * The platform-free consumer step (processEvent) with the in-memory idempotency record: the
 * issue's scenario on the core, before each platform's helper maps it to ack / retry.
 */
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  type AllowedEvent,
  type ConsumerLogEntry,
  GatehouseEvents,
  MemoryProcessedEvents,
  type ProcessedEvents,
  processEvent,
} from '../../../src/events/index.ts';
import { compilePolicy, Gatehouse } from '../../../src/policy/index.ts';
import { MemoryStore } from '../../../src/stores/index.ts';
import { KEYS_ENV, makeKeys, type TestKeys } from '../../support/delegation.ts';
import { alterEvent, eventsPolicy } from '../../support/events.ts';
import { createTestIssuer, type TestIssuer } from '../../support/issuer.ts';

const START = Date.parse('2026-11-23T12:00:00Z');
let clock = START;
const now = () => clock;
let idp: TestIssuer;
let keys: TestKeys;
let store: MemoryStore;
let events: GatehouseEvents;
let ran: AllowedEvent[];
let logs: ConsumerLogEntry[];
const handler = (event: AllowedEvent) => {
  ran.push(event);
};

beforeAll(async () => {
  idp = await createTestIssuer({ now });
  keys = await makeKeys();
});

beforeEach(() => {
  clock = START;
  ran = [];
  logs = [];
  store = new MemoryStore();
  store.putUser({ subject: 'alice', roles: [{ role: 'writer' }], grants: [], denies: [] });
  const gatehouse = new Gatehouse({
    policy: compilePolicy(eventsPolicy(idp), { env: { [KEYS_ENV]: keys.text } }),
    store,
    now,
  });
  events = new GatehouseEvents(gatehouse, { now });
});

async function aliceAsks(): Promise<string> {
  const out = await events.signRequest(
    { authorization: `Bearer ${await idp.mint({ sub: 'alice' })}` },
    { type: 'com.example.report.requested', data: { report: 42 }, permission: 'write:reports' },
  );
  if (!out.ok) throw new Error('not signed');
  return out.event;
}

const consume = (body: unknown, processed: ProcessedEvents = new MemoryProcessedEvents({ now })) =>
  processEvent(events, body, handler, undefined, { processed, log: (e) => logs.push(e) });

describe('the scenario on the core', () => {
  it('alice’s permission denied before the consumer runs: refused, never run, and the log says why', async () => {
    const event = await aliceAsks();
    store.putUser({ subject: 'alice', roles: [], grants: [], denies: [] });
    clock += 31_000;
    const outcome = await consume(event);
    expect(outcome).toMatchObject({ kind: 'refused', decision: { reason: 'missing_permission' } });
    expect(ran).toEqual([]);
    expect(logs).toEqual([
      expect.objectContaining({
        type: 'gatehouse.event_refused',
        reason: 'missing_permission',
        subject: 'alice',
      }),
    ]);
    expect(JSON.stringify(logs)).not.toContain(event);
  });

  it('intact: runs once even when delivered twice (as a bare JWS or as {event})', async () => {
    const event = await aliceAsks();
    const processed = new MemoryProcessedEvents({ now });
    expect((await consume(event, processed)).kind).toBe('ran');
    expect((await consume({ event }, processed)).kind).toBe('duplicate');
    expect(ran).toHaveLength(1);
    expect(ran[0]).toMatchObject({
      type: 'com.example.report.requested',
      data: { report: 42 },
      subject: 'alice',
    });
  });

  it('altered: never runs', async () => {
    const event = await aliceAsks();
    const altered = alterEvent(event, (c) => {
      c.data = { report: 'everything' };
    });
    expect(await consume(altered)).toMatchObject({
      kind: 'refused',
      decision: { reason: 'token_invalid_signature' },
    });
    expect(ran).toEqual([]);
  });

  it('store unavailable: retry, nothing run and the id not taken', async () => {
    const event = await aliceAsks();
    const processed = new MemoryProcessedEvents({ now });
    clock += 31_000;
    store.failWith(new Error('down'));
    expect(await consume(event, processed)).toMatchObject({ kind: 'retry', why: 'unavailable' });
    store.failWith(null);
    expect((await consume(event, processed)).kind).toBe('ran');
    expect(ran).toHaveLength(1);
  });

  it('a failing handler releases the id so the retried delivery runs', async () => {
    const event = await aliceAsks();
    const processed = new MemoryProcessedEvents({ now });
    let fail = true;
    const flaky = (e: AllowedEvent) => {
      if (fail) throw new Error('boom');
      ran.push(e);
    };
    const first = await processEvent(events, event, flaky, undefined, { processed, log: () => {} });
    expect(first).toMatchObject({ kind: 'retry', why: 'handler_failed' });
    fail = false;
    expect(
      (await processEvent(events, event, flaky, undefined, { processed, log: () => {} })).kind,
    ).toBe('ran');
    expect(ran).toHaveLength(1);
  });

  it('an idempotency store that cannot answer means retry, not run', async () => {
    const event = await aliceAsks();
    const broken: ProcessedEvents = {
      consistency: 'strong',
      recordProcessed: () => Promise.reject(new Error('down')),
      complete: () => Promise.resolve(),
      release: () => Promise.resolve(),
    };
    expect(await consume(event, broken)).toMatchObject({
      kind: 'retry',
      why: 'idempotency_unavailable',
    });
    expect(ran).toEqual([]);
  });
});

describe('idempotency records and the verifier’s leeway', () => {
  it('a redelivery or replay after exp, while the event still verifies (leeway), does not run it again', async () => {
    for (const late of [1_000, 9_000, 29_000]) {
      const out = await events.signRequest(
        { authorization: `Bearer ${await idp.mint({ sub: 'alice' })}` },
        { type: 't', permission: 'write:reports', ttlSeconds: 60 },
      );
      if (!out.ok) throw new Error('not signed');
      const processed = new MemoryProcessedEvents({ now });
      const start = clock;
      clock += 59_000;
      expect((await consume(out.event, processed)).kind).toBe('ran');
      clock += late; // exp + (late - 1 s): inside the 30 s leeway, the event still verifies
      expect((await events.verify(out.event)).allow).toBe(true);
      expect((await consume(out.event, processed)).kind, `exp + ${late}`).toBe('duplicate');
      clock = start;
    }
    expect(ran).toHaveLength(3);
  });
});

describe('a consumer killed inside the handler', () => {
  it('its lease makes redeliveries retry (not ack) until it ends, then one delivery runs the event', async () => {
    const event = await aliceAsks();
    const processed = new MemoryProcessedEvents({ now });
    // The first delivery took the record and was killed (timeout, OOM, eviction) mid-handler:
    // nothing completed it, nothing released it.
    const id = (await events.verify(event)).event!.id;
    expect(await processed.recordProcessed(id, clock / 1000 + 3600, 120)).toBe('first');
    const redelivery = () =>
      processEvent(events, event, handler, undefined, {
        processed,
        leaseSeconds: 120,
        log: (e) => logs.push(e),
      });
    clock += 60_000;
    expect(await redelivery()).toMatchObject({ kind: 'retry', why: 'in_progress' });
    expect(ran).toEqual([]);
    clock += 61_000; // the lease ended: the holder is gone
    expect((await redelivery()).kind).toBe('ran');
    expect(ran).toHaveLength(1);
    // Done: later deliveries are duplicates (acked), however long after.
    clock += 600_000;
    expect((await redelivery()).kind).toBe('duplicate');
    expect(ran).toHaveLength(1);
  });

  it('a live lease of another delivery is never acked as a duplicate', async () => {
    const event = await aliceAsks();
    const processed = new MemoryProcessedEvents({ now });
    let release!: () => void;
    const slow = () => new Promise<void>((resolve) => (release = resolve));
    const first = processEvent(events, event, slow, undefined, { processed, log: () => {} });
    await new Promise((r) => setTimeout(r, 10));
    expect(await consume(event, processed)).toMatchObject({ kind: 'retry', why: 'in_progress' });
    release();
    expect((await first).kind).toBe('ran');
    expect((await consume(event, processed)).kind).toBe('duplicate');
  });
});
