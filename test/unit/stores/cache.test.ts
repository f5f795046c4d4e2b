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

    expect(lookup).toEqual({ record: null, cache: 'hit' });
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
});
