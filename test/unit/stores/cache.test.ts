import { describe, expect, it } from 'vitest';
import { ConfigError, StoreError } from '../../../src/errors.ts';
import {
  CachedStore,
  type CacheOptions,
  ClaimsStore,
  MemoryStore,
} from '../../../src/stores/index.ts';
import type {
  PermissionStore,
  Principal,
  RoleRecord,
  SubjectKey,
  UserRecord,
} from '../../../src/types.ts';

/** A store that counts reads, can fail, and can hold reads until released. */
class CountingStore implements PermissionStore {
  readonly kind = 'counting';
  readonly memory = new MemoryStore();
  userReads = 0;
  roleReads = 0;
  failure: unknown = null;
  #gate: Promise<void> | null = null;
  #open: (() => void) | null = null;

  hold(): void {
    this.#gate = new Promise((resolve) => {
      this.#open = resolve;
    });
  }

  release(): void {
    this.#open?.();
    this.#gate = null;
  }

  async getUser(key: SubjectKey): Promise<UserRecord | null> {
    this.userReads++;
    if (this.#gate) await this.#gate;
    if (this.failure !== null) throw this.failure;
    return this.memory.getUser(key);
  }

  async getRoles(tenant: string | undefined): Promise<readonly RoleRecord[]> {
    this.roleReads++;
    if (this.failure !== null) throw this.failure;
    return this.memory.getRoles(tenant);
  }
}

function user(subject: string, permission = 'read:posts'): UserRecord {
  return { subject, roles: [], grants: [{ permission }], denies: [] };
}

/** A cache over a counting store with a fake clock starting at 0 ms. */
function setup(options: CacheOptions = {}) {
  const inner = new CountingStore();
  inner.memory.putUser(user('alice'));
  const clock = { ms: 0 };
  const cache = new CachedStore(inner, { now: () => clock.ms, ...options });
  return { inner, clock, cache };
}

const alice = { subject: 'alice' };

describe('CachedStore', () => {
  it('serves a second lookup within the TTL from the cache', async () => {
    const { inner, clock, cache } = setup({ ttlSeconds: 30 });
    await cache.getUser(alice);
    clock.ms = 29_999;

    const lookup = await cache.lookupUser(alice);

    expect(lookup.cache).toBe('hit');
    expect(inner.userReads).toBe(1);
  });

  it('reads the store again once the TTL has passed', async () => {
    const { inner, clock, cache } = setup({ ttlSeconds: 30 });
    await cache.getUser(alice);
    clock.ms = 30_000;

    const lookup = await cache.lookupUser(alice);

    expect(lookup.cache).toBe('miss');
    expect(inner.userReads).toBe(2);
  });

  it('sees a revocation after the TTL', async () => {
    const { inner, clock, cache } = setup({ ttlSeconds: 30 });
    await cache.getUser(alice);
    inner.memory.deleteUser(alice);
    clock.ms = 30_000;

    const record = await cache.getUser(alice);

    expect(record).toBeNull();
  });

  it('keeps "no such user" for the shorter negative TTL', async () => {
    const { inner, clock, cache } = setup({ ttlSeconds: 30, negativeTtlSeconds: 5 });
    await cache.getUser({ subject: 'nobody' });
    clock.ms = 5_000;

    await cache.getUser({ subject: 'nobody' });

    expect(inner.userReads).toBe(2);
  });

  it('serves "no such user" from the cache within the negative TTL', async () => {
    const { inner, clock, cache } = setup({ negativeTtlSeconds: 5 });
    await cache.getUser({ subject: 'nobody' });
    clock.ms = 4_999;

    const lookup = await cache.lookupUser({ subject: 'nobody' });

    expect(lookup).toEqual({ record: null, cache: 'hit', freshUntil: 5_000 });
    expect(inner.userReads).toBe(1);
  });

  it('makes one store read for 100 concurrent misses of one key', async () => {
    const { inner, cache } = setup();
    inner.hold();
    const lookups = Array.from({ length: 100 }, () => cache.getUser(alice));

    inner.release();
    const records = await Promise.all(lookups);

    expect(inner.userReads).toBe(1);
    expect(new Set(records).size).toBe(1);
  });

  it('shares one failure among concurrent misses and then forgets the load', async () => {
    const { inner, cache } = setup();
    inner.failure = new Error('down');
    inner.hold();
    const lookups = Array.from({ length: 10 }, () => cache.getUser(alice));
    inner.release();
    await Promise.allSettled(lookups);
    inner.failure = null;

    await cache.getUser(alice);

    expect(inner.userReads).toBe(2);
  });

  it('does not cache errors', async () => {
    const { inner, cache } = setup();
    inner.failure = new Error('down');
    await cache.getUser(alice).catch(() => undefined);
    inner.failure = null;

    const lookup = await cache.lookupUser(alice);

    expect(lookup.cache).toBe('miss');
    expect(lookup.record?.subject).toBe('alice');
  });

  it('rejects with StoreError store_unavailable when the store fails, by default', async () => {
    const { inner, clock, cache } = setup({ ttlSeconds: 30 });
    await cache.getUser(alice);
    inner.failure = new Error('down');
    clock.ms = 30_001;

    const lookup = cache.getUser(alice);

    await expect(lookup).rejects.toMatchObject({ name: 'StoreError', code: 'store_unavailable' });
  });

  it('keeps the original error as the cause', async () => {
    const { inner, cache } = setup();
    const outage = new Error('connection reset');
    inner.failure = outage;

    const lookup = cache.getUser(alice);

    await expect(lookup).rejects.toHaveProperty('cause', outage);
  });

  it('passes a StoreError from the store through unchanged', async () => {
    const { inner, cache } = setup();
    const invalid = new StoreError('store_invalid_record', 'bad record');
    inner.failure = invalid;

    const lookup = cache.getUser(alice);

    await expect(lookup).rejects.toBe(invalid);
  });

  it('serves an expired entry while the store fails, within staleIfErrorSeconds', async () => {
    const { inner, clock, cache } = setup({ ttlSeconds: 30, staleIfErrorSeconds: 60 });
    await cache.getUser(alice);
    inner.failure = new Error('down');
    clock.ms = 90_000;

    const lookup = await cache.lookupUser(alice);

    expect(lookup.cache).toBe('stale');
    expect(lookup.record?.subject).toBe('alice');
  });

  it('fails closed once an entry is older than staleIfErrorSeconds past expiry', async () => {
    const { inner, clock, cache } = setup({ ttlSeconds: 30, staleIfErrorSeconds: 60 });
    await cache.getUser(alice);
    inner.failure = new Error('down');
    clock.ms = 90_001;

    const lookup = cache.lookupUser(alice);

    await expect(lookup).rejects.toBeInstanceOf(StoreError);
  });

  it('evicts the least recently used entry at maxEntries', async () => {
    const { inner, cache } = setup({ maxEntries: 2 });
    inner.memory.putUser(user('bob'));
    inner.memory.putUser(user('carol'));
    await cache.getUser(alice);
    await cache.getUser({ subject: 'bob' });
    await cache.getUser(alice);
    await cache.getUser({ subject: 'carol' });

    const [aliceLookup, bobLookup] = [
      await cache.lookupUser(alice),
      await cache.lookupUser({ subject: 'bob' }),
    ];

    expect(aliceLookup.cache).toBe('hit');
    expect(bobLookup.cache).toBe('miss');
  });

  it('counts hits, misses, loads, errors, stale answers and evictions', async () => {
    const { inner, clock, cache } = setup({
      ttlSeconds: 10,
      staleIfErrorSeconds: 10,
      maxEntries: 1,
    });
    inner.memory.putUser(user('bob'));
    await cache.getUser(alice);
    await cache.getUser(alice);
    clock.ms = 10_000;
    inner.failure = new Error('down');
    await cache.getUser(alice);
    await cache.getUser({ subject: 'bob' }).catch(() => undefined);
    inner.failure = null;

    await cache.getUser({ subject: 'bob' });

    expect(cache.stats).toEqual({
      hits: 1,
      misses: 4,
      loads: 4,
      errors: 2,
      stale: 1,
      evictions: 1,
    });
  });

  it('caches roles per tenant separately from users', async () => {
    const { inner, cache } = setup();
    inner.memory.putRole('acme', { name: 'reader', grants: [], inherits: [] });
    await cache.getRoles('acme');
    await cache.getUser(alice);

    const roles = await cache.lookupRoles('acme');

    expect(roles.cache).toBe('hit');
    expect(roles.roles.map((role) => role.name)).toEqual(['reader']);
    expect(inner.roleReads).toBe(1);
  });

  it('keeps the roles of different tenants apart', async () => {
    const { inner, cache } = setup();
    inner.memory.putRole('acme', { name: 'reader', grants: [], inherits: [] });
    await cache.getRoles('acme');

    const roles = await cache.getRoles('globex');

    expect(roles).toEqual([]);
  });

  it('reads the store again after invalidate for that subject', async () => {
    const { inner, cache } = setup();
    await cache.getUser(alice);

    cache.invalidate(alice);
    await cache.getUser(alice);

    expect(inner.userReads).toBe(2);
  });

  it('drops every user on invalidate without arguments but keeps roles', async () => {
    const { inner, cache } = setup();
    await cache.getUser(alice);
    await cache.getRoles(undefined);

    cache.invalidate();
    await cache.getUser(alice);
    await cache.getRoles(undefined);

    expect([inner.userReads, inner.roleReads]).toEqual([2, 1]);
  });

  it('drops one tenant’s roles on invalidateRoles(tenant)', async () => {
    const { inner, cache } = setup();
    await cache.getRoles('acme');
    await cache.getRoles('globex');

    cache.invalidateRoles('acme');
    await cache.getRoles('acme');
    await cache.getRoles('globex');

    expect(inner.roleReads).toBe(3);
  });

  it('drops all roles on invalidateRoles without arguments', async () => {
    const { inner, cache } = setup();
    await cache.getRoles('acme');
    await cache.getRoles(undefined);

    cache.invalidateRoles();
    await cache.getRoles('acme');
    await cache.getRoles(undefined);

    expect(inner.roleReads).toBe(4);
  });

  it('does not cache a load that invalidate overtook', async () => {
    const { inner, cache } = setup();
    inner.hold();
    const early = cache.getUser(alice);
    cache.invalidate(alice);
    inner.memory.deleteUser(alice);
    inner.release();
    await early;

    const record = await cache.getUser(alice);

    expect(record).toBeNull();
  });

  it('bypasses the cache for a claims store', async () => {
    const cache = new CachedStore(new ClaimsStore());
    const token = (permissions: string[]): Principal => ({
      issuer: 'https://issuer.example',
      issuerKind: 'external',
      subject: 'alice',
      scopes: [],
      claims: { permissions },
      actors: [],
      expiresAt: 2_000_000_000,
    });
    await cache.getUser(alice, token(['read:posts']));

    const lookup = await cache.lookupUser(alice, token(['write:posts']));

    expect(lookup.cache).toBe('miss');
    expect(lookup.record?.grants).toEqual([{ permission: 'write:posts' }]);
  });

  it('reports the inner store kind', () => {
    const { cache } = setup();

    const kind = cache.kind;

    expect(kind).toBe('counting');
  });

  it.each([
    [{ ttlSeconds: -1 }, 'cache.ttlSeconds'],
    [{ ttlSeconds: 3601 }, 'cache.ttlSeconds'],
    [{ ttlSeconds: Number.NaN }, 'cache.ttlSeconds'],
    [{ negativeTtlSeconds: '5' }, 'cache.negativeTtlSeconds'],
    [{ maxEntries: 0 }, 'cache.maxEntries'],
    [{ maxEntries: 1.5 }, 'cache.maxEntries'],
    [{ staleIfErrorSeconds: 86_401 }, 'cache.staleIfErrorSeconds'],
    [{ maxEntries: 10_000_001 }, 'cache.maxEntries'],
    [{ loadTimeoutMs: 99 }, 'cache.loadTimeoutMs'],
    [{ loadTimeoutMs: 60_001 }, 'cache.loadTimeoutMs'],
    [{ loadTimeoutMs: Number.POSITIVE_INFINITY }, 'cache.loadTimeoutMs'],
    [{ loadTimeoutMs: '5000' }, 'cache.loadTimeoutMs'],
    [{ now: 0 }, 'cache.now'],
  ])('rejects %o with a ConfigError naming %s', (options, field) => {
    const bad = options as unknown as CacheOptions;

    const build = () => new CachedStore(new MemoryStore(), bad);

    expect(build).toThrow(ConfigError);
    expect(build).toThrow(expect.objectContaining({ field }));
  });

  it('states the expected range in the message', () => {
    const bad = { ttlSeconds: 7200 };

    const build = () => new CachedStore(new MemoryStore(), bad);

    expect(build).toThrow('cache.ttlSeconds: expected a number from 0 to 3600');
  });

  it('accepts maxEntries up to 10,000,000, as the policy schema does', () => {
    const build = () => new CachedStore(new MemoryStore(), { maxEntries: 10_000_000 });

    expect(build).not.toThrow();
  });

  it.each([100, 60_000])('accepts loadTimeoutMs %d', (loadTimeoutMs) => {
    const build = () => new CachedStore(new MemoryStore(), { loadTimeoutMs });

    expect(build).not.toThrow();
  });
});

describe('CachedStore freshUntil', () => {
  it('is the load time plus the TTL on a miss', async () => {
    const { clock, cache } = setup({ ttlSeconds: 30 });
    clock.ms = 1_000;

    const lookup = await cache.lookupUser(alice);

    expect(lookup).toMatchObject({ cache: 'miss', freshUntil: 31_000 });
  });

  it('is the expiry of the entry served on a hit, not a fresh TTL', async () => {
    const { clock, cache } = setup({ ttlSeconds: 30 });
    await cache.getUser(alice);
    clock.ms = 29_000;

    const lookup = await cache.lookupUser(alice);

    expect(lookup).toMatchObject({ cache: 'hit', freshUntil: 30_000 });
  });

  it('uses the negative TTL for "no such user"', async () => {
    const { clock, cache } = setup({ ttlSeconds: 30, negativeTtlSeconds: 5 });
    clock.ms = 2_000;

    const lookup = await cache.lookupUser({ subject: 'nobody' });

    expect(lookup).toMatchObject({ record: null, cache: 'miss', freshUntil: 7_000 });
  });

  it('is now for a stale answer', async () => {
    const { inner, clock, cache } = setup({ ttlSeconds: 30, staleIfErrorSeconds: 60 });
    await cache.getUser(alice);
    inner.failure = new Error('down');
    clock.ms = 45_000;

    const lookup = await cache.lookupUser(alice);

    expect(lookup).toMatchObject({ cache: 'stale', freshUntil: 45_000 });
  });

  it('is now with ttlSeconds 0 (single-flight only)', async () => {
    const { clock, cache } = setup({ ttlSeconds: 0 });
    clock.ms = 8_000;

    const lookup = await cache.lookupUser(alice);

    expect(lookup.freshUntil).toBe(8_000);
  });

  it('is reported for roles: miss, hit and stale', async () => {
    const { inner, clock, cache } = setup({ ttlSeconds: 10, staleIfErrorSeconds: 60 });
    const miss = await cache.lookupRoles('acme');
    clock.ms = 4_000;
    const hit = await cache.lookupRoles('acme');
    clock.ms = 12_000;
    inner.failure = new Error('down');
    const stale = await cache.lookupRoles('acme');

    expect([miss, hit, stale].map(({ cache: c, freshUntil }) => [c, freshUntil])).toEqual([
      ['miss', 10_000],
      ['hit', 10_000],
      ['stale', 12_000],
    ]);
  });

  it('is the same for callers that joined one load', async () => {
    const { inner, clock, cache } = setup({ ttlSeconds: 30 });
    inner.hold();
    const first = cache.lookupUser(alice);
    const second = cache.lookupUser(alice);
    clock.ms = 500;
    inner.release();

    const lookups = await Promise.all([first, second]);

    expect(lookups.map((lookup) => lookup.freshUntil)).toEqual([30_500, 30_500]);
  });

  it('is now for a load that invalidate overtook, since it was not cached', async () => {
    const { inner, clock, cache } = setup({ ttlSeconds: 30 });
    inner.hold();
    const early = cache.lookupUser(alice);
    cache.invalidate(alice);
    clock.ms = 700;
    inner.release();

    const lookup = await early;

    expect(lookup.freshUntil).toBe(700);
  });

  it('is Infinity for a claims store, which the cache bypasses', async () => {
    const cache = new CachedStore(new ClaimsStore());
    const principal: Principal = {
      issuer: 'https://issuer.example',
      issuerKind: 'external',
      subject: 'alice',
      scopes: [],
      claims: { permissions: ['read:posts'] },
      actors: [],
      expiresAt: 2_000_000_000,
    };

    const lookup = await cache.lookupUser(alice, principal);

    expect(lookup.freshUntil).toBe(Number.POSITIVE_INFINITY);
  });
});

/** A store whose reads wait for `settle` to be called; never called, they never settle. */
class StuckStore implements PermissionStore {
  readonly kind = 'stuck';
  reads = 0;
  readonly #waiting: ((outcome: { record: UserRecord | null } | { error: unknown }) => void)[] = [];

  settle(outcome: { record: UserRecord | null } | { error: unknown }): void {
    for (const resolve of this.#waiting.splice(0)) resolve(outcome);
  }

  async getUser(): Promise<UserRecord | null> {
    this.reads++;
    const outcome = await new Promise<{ record: UserRecord | null } | { error: unknown }>(
      (resolve) => {
        this.#waiting.push(resolve);
      },
    );
    if ('error' in outcome) throw outcome.error;
    return outcome.record;
  }

  async getRoles(): Promise<readonly RoleRecord[]> {
    this.reads++;
    return new Promise(() => {});
  }
}

describe('CachedStore load timeout', () => {
  it('fails every joined caller with store_unavailable when a load never settles', async () => {
    const inner = new StuckStore();
    const cache = new CachedStore(inner, { loadTimeoutMs: 100 });
    const started = Date.now();

    const lookups = await Promise.allSettled([
      cache.lookupUser(alice),
      cache.lookupUser(alice),
      cache.lookupUser(alice),
    ]);

    expect(Date.now() - started).toBeLessThan(2_000);
    expect(inner.reads).toBe(1);
    for (const lookup of lookups) {
      expect(lookup).toMatchObject({
        status: 'rejected',
        reason: { name: 'StoreError', code: 'store_unavailable' },
      });
    }
  });

  it('times out role loads too', async () => {
    const cache = new CachedStore(new StuckStore(), { loadTimeoutMs: 100 });

    const lookup = cache.lookupRoles('acme');

    await expect(lookup).rejects.toMatchObject({ code: 'store_unavailable' });
  });

  it('frees the slot, so the next miss starts a new load', async () => {
    const inner = new StuckStore();
    const cache = new CachedStore(inner, { loadTimeoutMs: 100 });
    await cache.lookupUser(alice).catch(() => undefined);

    const next = cache.lookupUser(alice);
    inner.settle({ record: user('alice') });

    await expect(next).resolves.toMatchObject({ cache: 'miss' });
    expect(inner.reads).toBe(2);
  });

  it('discards a result that arrives after the timeout instead of caching it', async () => {
    const inner = new StuckStore();
    const cache = new CachedStore(inner, { loadTimeoutMs: 100 });
    await cache.lookupUser(alice).catch(() => undefined);
    inner.settle({ record: user('alice', 'read:old') });
    await new Promise((resolve) => setTimeout(resolve, 0));

    const next = cache.lookupUser(alice);
    inner.settle({ record: user('alice', 'read:new') });
    const lookup = await next;

    expect(inner.reads).toBe(2);
    expect(lookup.record?.grants).toEqual([{ permission: 'read:new' }]);
  });

  it('swallows a failure that arrives after the timeout', async () => {
    const inner = new StuckStore();
    const cache = new CachedStore(inner, { loadTimeoutMs: 100 });
    await cache.lookupUser(alice).catch(() => undefined);

    inner.settle({ error: new Error('late') });
    await new Promise((resolve) => setTimeout(resolve, 10));

    expect(cache.stats).toMatchObject({ loads: 1, errors: 1 });
  });

  it('serves a stale entry when the load times out, within staleIfErrorSeconds', async () => {
    const inner = new StuckStore();
    const clock = { ms: 0 };
    const cache = new CachedStore(inner, {
      loadTimeoutMs: 100,
      ttlSeconds: 10,
      staleIfErrorSeconds: 60,
      now: () => clock.ms,
    });
    const first = cache.lookupUser(alice);
    inner.settle({ record: user('alice') });
    await first;
    clock.ms = 20_000;

    const lookup = await cache.lookupUser(alice);

    expect(lookup).toMatchObject({ cache: 'stale', freshUntil: 20_000 });
  });

  it('does not time out a load that settles in time', async () => {
    const { inner, cache } = setup({ loadTimeoutMs: 100 });
    inner.hold();
    const lookup = cache.lookupUser(alice);
    await new Promise((resolve) => setTimeout(resolve, 20));
    inner.release();

    await expect(lookup).resolves.toMatchObject({ cache: 'miss' });
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(cache.stats.errors).toBe(0);
  });
});

describe('CachedStore synchronous peeks', () => {
  it('answers peekUser only for a fresh cached record, counting it as a hit', async () => {
    const { inner, clock, cache } = setup({ ttlSeconds: 30 });
    expect(cache.peekUser(alice)).toBeUndefined();
    await cache.getUser(alice);
    const hit = cache.peekUser(alice);
    expect(hit).toMatchObject({ cache: 'hit', freshUntil: 30_000 });
    expect(hit?.record?.subject).toBe('alice');
    expect(cache.stats.hits).toBe(1);
    clock.ms = 30_000;
    expect(cache.peekUser(alice)).toBeUndefined();
    expect(inner.userReads).toBe(1);
  });

  it('answers peekRoles per tenant and never loads', async () => {
    const { inner, cache } = setup();
    expect(cache.peekRoles('acme')).toBeUndefined();
    await cache.getRoles('acme');
    expect(cache.peekRoles('acme')).toMatchObject({ cache: 'hit', roles: [] });
    expect(cache.peekRoles('globex')).toBeUndefined();
    expect(inner.roleReads).toBe(1);
  });

  it('keeps a hot key through evictions although hits reorder only old entries', async () => {
    const { inner, cache } = setup({ maxEntries: 4 });
    for (const name of ['bob', 'carol', 'dave', 'erin', 'frank']) inner.memory.putUser(user(name));
    await cache.getUser(alice);
    for (const name of ['bob', 'carol', 'dave', 'erin', 'frank']) {
      await cache.getUser({ subject: name });
      expect(cache.peekUser(alice)).toBeDefined();
    }
    expect(inner.userReads).toBe(6);
  });
});
