/**
 * The Workers feed pieces on Node (review findings 3 and 4): the Durable Object class over an
 * in-memory storage, the management and guard KV wrappers, and a KV that behaves as one location
 * does (old value for propagation plus `cacheTtl` after a read made just before the write).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { compilePolicy, Gatehouse } from '../../../src/policy/index.ts';
import { RevocationFollower } from '../../../src/revocation/index.ts';
import { KvStore } from '../../../src/workers/kv-store.ts';
import {
  DurableFeedClient,
  feedWritingKv,
  followedKv,
  RevocationFeedObject,
  recentWindowMs,
} from '../../../src/workers/revocation.ts';
import { feedFor, feedObjectOptions } from '../../../src/workers/setup.ts';
import { AUDIENCE, createTestIssuer } from '../../support/issuer.ts';

/** Durable Object storage in memory (what the feed object uses of it). */
function memoryState(stored = new Map<string, unknown>()) {
  return {
    storage: {
      list: async () => new Map(stored),
      get: async (key: string) => stored.get(key),
      put: async (entries: Record<string, unknown>) => {
        for (const [k, v] of Object.entries(entries)) stored.set(k, v);
      },
      delete: async (keys: string[]) => {
        for (const k of keys) stored.delete(k);
        return keys.length;
      },
    },
    blockConcurrencyWhile: <T>(cb: () => Promise<T>) => cb(),
  };
}

async function durableFeed(options: { recentMs?: number } = {}) {
  const stored = new Map<string, unknown>();
  const state = memoryState(stored);
  const object = new RevocationFeedObject(state, undefined, options);
  await Promise.resolve();
  await Promise.resolve();
  const client = new DurableFeedClient({
    idFromName: () => 'feed',
    get: () => ({
      fetch: (input: string, init?: RequestInit) => object.fetch(new Request(input, init)),
    }),
  });
  return { client, stored };
}

function memoryKv() {
  const map = new Map<string, string>();
  return {
    map,
    get: async (key: string) => map.get(key) ?? null,
    put: async (key: string, value: string) => void map.set(key, value),
    delete: async (key: string) => void map.delete(key),
    list: async () => ({ keys: [], list_complete: true }) as never,
  };
}

describe('a change whose value the feed cannot keep (> 128 KiB)', () => {
  const key = 'user/-/s:alice';
  const small = JSON.stringify({ grants: ['admin:*'] });
  const filler = Array.from({ length: 4500 }, (_, i) => `read:docs:document-number-${i}`);
  const large = JSON.stringify({ grants: ['admin:*', ...filler], denies: ['admin:*'] });

  it('drops the older kept value, so the guard reads KV (the new value), never the old one', async () => {
    const { client, stored } = await durableFeed();
    const kv = memoryKv();
    const admin = feedWritingKv(kv, client);
    await admin.put(key, small);
    expect(large.length).toBeGreaterThan(128 * 1024);
    await admin.put(key, large);

    const follower = new RevocationFollower(client);
    await follower.sync();
    expect(follower.isRecent(key)).toBe(true);
    expect(await client.value(key)).toEqual({ found: false, value: null });
    // Persisted too: a restarted object must not bring the old copy back.
    expect(stored.has(`v:${key}`)).toBe(false);
    const guardKv = followedKv(kv, follower, client);
    expect(await guardKv.get(key, { type: 'text' })).toBe(large);
    const record = await new KvStore(guardKv).getUser({ subject: 'alice' });
    expect(record?.denies.map((d) => d.permission)).toEqual(['admin:*']);
  });

  it('drops it for a delete-then-large write and keeps other keys’ values', async () => {
    const { client } = await durableFeed();
    const admin = feedWritingKv(memoryKv(), client);
    const other = 'user/-/s:bob';
    await admin.put(other, small);
    await admin.delete(key);
    expect(await client.value(key)).toEqual({ found: true, value: null });
    await admin.put(key, large);
    expect(await client.value(key)).toEqual({ found: false, value: null });
    expect(await client.value(other)).toEqual({ found: true, value: small });
  });
});

describe('the value bound is in bytes', () => {
  it('does not keep a value under 128 Ki characters but over 128 KiB', async () => {
    const { client } = await durableFeed();
    const admin = feedWritingKv(memoryKv(), client);
    const key = 'user/-/s:alice';
    await admin.put(key, JSON.stringify({ grants: ['admin:*'] }));
    // 50,000 three-byte characters: 150 KB, 50 Ki UTF-16 units.
    const wide = JSON.stringify({ grants: [], note: '\u20ac'.repeat(50_000) });
    expect(wide.length).toBeLessThan(128 * 1024);
    await admin.put(key, wide);
    expect(await client.value(key)).toEqual({ found: false, value: null });
  });
});

describe('the recent window covers KV_CACHE_TTL and the permission cache', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.parse('2026-12-03T12:00:00Z'));
  });
  afterEach(() => vi.useRealTimers());

  it('is 60 s + KV_CACHE_TTL + cache TTL (never below 120 s), the same for the object and guard', async () => {
    const idp = await createTestIssuer();
    expect(recentWindowMs(30, 30)).toBe(120_000);
    expect(recentWindowMs(300, 30)).toBe(390_000);
    expect(recentWindowMs(3600, 3600)).toBe(7_260_000);
    const policy = {
      version: 1,
      issuers: [
        {
          issuer: idp.issuer,
          audiences: [AUDIENCE],
          algorithms: ['ES256'],
          keys: { jwks: idp.jwks },
        },
      ],
      cache: { ttlSeconds: 45 },
      routes: [{ method: 'GET', path: '/stats', require: ['read:stats'] }],
    };
    expect(feedObjectOptions(policy, { KV_CACHE_TTL: '600' })).toEqual({ recentMs: 705_000 });
    expect(() => feedObjectOptions(policy, { KV_CACHE_TTL: '7' })).toThrow(/KV_CACHE_TTL/);
  });

  it('is what the guard’s follower uses: a key stays recent for the whole window', async () => {
    const idp = await createTestIssuer();
    const state = memoryState();
    const object = new RevocationFeedObject(state, undefined, {
      recentMs: recentWindowMs(300, 30),
    });
    await Promise.resolve();
    await Promise.resolve();
    const binding = {
      idFromName: () => 'feed',
      get: () => ({
        fetch: (input: string, init?: RequestInit) => object.fetch(new Request(input, init)),
      }),
    };
    const policy = compilePolicy({
      version: 1,
      issuers: [
        {
          issuer: idp.issuer,
          audiences: [AUDIENCE],
          algorithms: ['ES256'],
          keys: { jwks: idp.jwks },
        },
      ],
      cache: { ttlSeconds: 30 },
      routes: [{ method: 'GET', path: '/stats', require: ['read:stats'] }],
    });
    const feed = feedFor(binding, policy, () => Date.now(), 300);
    const key = 'user/-/s:alice';
    await feed?.client.append({ keys: [key], values: { [key]: '{"grants":[]}' } });
    await feed?.follower.sync();
    vi.setSystemTime(Date.now() + 389_000);
    expect(feed?.follower.isRecent(key)).toBe(true);
    expect(await feed?.client.value(key)).toEqual({ found: true, value: '{"grants":[]}' });
    vi.setSystemTime(Date.now() + 1_000);
    expect(feed?.follower.isRecent(key)).toBe(false);
  });

  for (const kvCacheTtl of [30, 300, 3600]) {
    it(`keeps a revocation for good with KV_CACHE_TTL = ${kvCacheTtl}`, async () => {
      const idp = await createTestIssuer({ now: () => Date.now() });
      const cacheTtl = 30;
      const recentMs = recentWindowMs(kvCacheTtl, cacheTtl);
      const { client } = await durableFeed({ recentMs });
      const key = 'user/-/s:alice';
      const before = JSON.stringify({ grants: ['read:stats'] });
      const after = JSON.stringify({ grants: [] });
      // One location's view: the old value until propagation + cacheTtl of a read just before.
      let latest = before;
      let oldUntil = 0;
      const locationKv = {
        get: async (k: string) => (k !== key ? null : Date.now() < oldUntil ? before : latest),
        put: async () => {},
        delete: async () => {},
      };
      const adminKv = feedWritingKv(
        {
          get: async () => null,
          put: async (_k: string, v: string) => {
            latest = v;
            oldUntil = Date.now() + 60_000 + kvCacheTtl * 1000;
          },
          delete: async () => {},
          list: async () => ({ keys: [], list_complete: true }) as never,
        },
        client,
      );
      const follower = new RevocationFollower(client, { recentMs });
      const gatehouse = new Gatehouse({
        policy: compilePolicy({
          version: 1,
          issuers: [
            {
              issuer: idp.issuer,
              audiences: [AUDIENCE],
              algorithms: ['ES256'],
              keys: { jwks: idp.jwks },
            },
          ],
          cache: { ttlSeconds: cacheTtl },
          routes: [{ method: 'GET', path: '/stats', require: ['read:stats'] }],
        }),
        store: new KvStore(followedKv(locationKv, follower, client), {
          cacheTtlSeconds: kvCacheTtl,
        }),
        revocation: follower,
      });
      const ask = async () => {
        const token = await idp.mint({ sub: 'alice' });
        return gatehouse.decide({
          method: 'GET',
          path: '/stats',
          authorization: `Bearer ${token}`,
        });
      };
      expect((await ask()).allow).toBe(true);
      const written = Date.now();
      await adminKv.put(key, after);
      // Every 10 s until the location has the new value and any isolate copy of the old expired.
      for (let t = 1_000; t <= 60_000 + kvCacheTtl * 1000 + cacheTtl * 1000 + 30_000; t += 10_000) {
        vi.setSystemTime(written + t);
        await follower.sync();
        expect({ t, reason: (await ask()).reason }).toEqual({ t, reason: 'missing_permission' });
      }
    });
  }
});
