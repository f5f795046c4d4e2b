/**
 * What the core accepts from a PermissionStore (records.ts through CachedStore): only own data
 * properties count, and a record over maxRecordEntries is refused before any entry is read.
 * Custom stores are the point: a user-written store may hand back anything.
 */
import { describe, expect, it } from 'vitest';
import { StoreError } from '../../../src/errors.ts';
import { CachedStore, MemoryStore } from '../../../src/stores/index.ts';
import type { PermissionStore, RoleRecord, SubjectKey, UserRecord } from '../../../src/types.ts';

/** A user-written store that returns whatever it is given, as it is. */
class RawStore implements PermissionStore {
  readonly kind = 'custom';
  user: unknown = null;
  roles: unknown = [];
  async getUser(_key: SubjectKey): Promise<UserRecord | null> {
    return this.user as UserRecord | null;
  }
  async getRoles(_tenant: string | undefined): Promise<readonly RoleRecord[]> {
    return this.roles as readonly RoleRecord[];
  }
}

function cached(inner: PermissionStore, maxRecordEntries?: number) {
  const logs: Record<string, unknown>[] = [];
  const cache = new CachedStore(inner, {
    ttlSeconds: 0,
    log: (entry) => logs.push({ ...entry }),
    ...(maxRecordEntries !== undefined && { maxRecordEntries }),
  });
  return { cache, logs };
}

async function refusal(promise: Promise<unknown>): Promise<StoreError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(StoreError);
  return error as StoreError;
}

const plain = () => ({ subject: 'alice', roles: [], grants: [], denies: [] });

/** A getter that fails the test if anything reads it. */
function trap(): never {
  throw new Error('read an entry of a record that should have been refused unread');
}

describe('records from a store: only own data counts', () => {
  // Each case: a record whose named part comes from a prototype or an accessor. Inherited
  // grants must grant nothing; inherited denies, conditions or expiries must not be dropped
  // (that would widen access): the record is malformed, a 503, either way.
  const cases: [string, () => unknown][] = [
    [
      'grants from the prototype',
      () =>
        Object.assign(Object.create({ grants: [{ permission: '*' }] }), {
          subject: 'alice',
          roles: [],
          denies: [],
        }),
    ],
    [
      'denies from the prototype',
      () =>
        Object.assign(Object.create({ denies: [{ permission: '*' }] }), {
          subject: 'alice',
          roles: [],
          grants: [{ permission: 'read:posts' }],
        }),
    ],
    [
      'roles from the prototype',
      () =>
        Object.assign(Object.create({ roles: [{ role: 'admin' }] }), {
          subject: 'alice',
          grants: [],
          denies: [],
        }),
    ],
    [
      'a grant whose permission is inherited',
      () => ({ ...plain(), grants: [Object.create({ permission: '*' })] }),
    ],
    [
      'a grant whose condition is inherited',
      () => ({
        ...plain(),
        grants: [
          Object.assign(Object.create({ when: { ip: ['10.0.0.0/8'] } }), {
            permission: 'read:posts',
          }),
        ],
      }),
    ],
    [
      'a grant whose expiry is inherited',
      () => ({
        ...plain(),
        grants: [Object.assign(Object.create({ expiresAt: 1 }), { permission: 'read:posts' })],
      }),
    ],
    [
      'a deny whose condition is inherited',
      () => ({
        ...plain(),
        denies: [
          Object.assign(Object.create({ when: { country: ['DE'] } }), { permission: 'read:posts' }),
        ],
      }),
    ],
    [
      'an assignment whose expiry is inherited',
      () => ({
        ...plain(),
        roles: [Object.assign(Object.create({ expiresAt: 1 }), { role: 'reader' })],
      }),
    ],
    [
      'a condition with an inherited key',
      () => ({
        ...plain(),
        grants: [
          {
            permission: 'read:posts',
            when: Object.assign(Object.create({ country: ['DE'] }), { ip: ['10.0.0.0/8'] }),
          },
        ],
      }),
    ],
    [
      'grants behind a getter',
      () =>
        Object.defineProperty({ subject: 'alice', roles: [], denies: [] }, 'grants', {
          get: () => [{ permission: '*' }],
          enumerable: true,
        }),
    ],
    [
      'a grant permission behind a getter',
      () => ({
        ...plain(),
        grants: [Object.defineProperty({}, 'permission', { get: () => '*', enumerable: true })],
      }),
    ],
    [
      'a list element inherited from the array prototype',
      () => {
        const grants: unknown[] = [];
        grants.length = 1;
        Object.setPrototypeOf(
          grants,
          Object.assign(Object.create(Array.prototype), { 0: { permission: '*' } }),
        );
        return { ...plain(), grants };
      },
    ],
  ];

  it.each(cases)('refuses %s as store_invalid_record, naming the key', async (_name, record) => {
    const inner = new RawStore();
    inner.user = record();
    const { cache, logs } = cached(inner);

    const error = await refusal(cache.getUser({ subject: 'alice' }));

    expect(error.code).toBe('store_invalid_record');
    expect(error.key).toBe('-/s:alice');
    expect(logs).toEqual([
      expect.objectContaining({ code: 'store_invalid_record', store: 'custom', key: '-/s:alice' }),
    ]);
  });

  const roleCases: [string, () => unknown][] = [
    [
      'grants from the prototype',
      () =>
        Object.assign(Object.create({ grants: [{ permission: '*' }] }), {
          name: 'r',
          inherits: [],
        }),
    ],
    [
      'denies from the prototype',
      () =>
        Object.assign(Object.create({ denies: [{ permission: '*' }] }), {
          name: 'r',
          grants: [],
          inherits: [],
        }),
    ],
    [
      'parents from the prototype',
      () => Object.assign(Object.create({ inherits: ['admin'] }), { name: 'r', grants: [] }),
    ],
    [
      'a name behind a getter',
      () =>
        Object.defineProperty({ grants: [], inherits: [] }, 'name', {
          get: () => 'r',
          enumerable: true,
        }),
    ],
  ];

  it.each(roleCases)('refuses a store role with %s', async (_name, role) => {
    const inner = new RawStore();
    inner.roles = [role()];
    const { cache } = cached(inner);

    const error = await refusal(cache.getRoles(undefined));

    expect(error.code).toBe('store_invalid_record');
    expect(error.key).toBe('-');
  });

  it('accepts class instances whose fields are their own, and null-prototype objects', async () => {
    class Grant {
      readonly permission: string;
      constructor(permission: string) {
        this.permission = permission;
      }
      describe(): string {
        return this.permission;
      }
    }
    class Record {
      readonly subject = 'alice';
      readonly roles = [];
      readonly grants = [new Grant('read:posts')];
      readonly denies = [Object.assign(Object.create(null), { permission: 'delete:posts:*' })];
    }
    const inner = new RawStore();
    inner.user = new Record();
    const { cache } = cached(inner);

    const record = await cache.getUser({ subject: 'alice' });

    expect(record?.grants).toEqual([{ permission: 'read:posts' }]);
    expect(record?.denies).toEqual([{ permission: 'delete:posts:*' }]);
    expect(Object.isFrozen(record?.grants[0])).toBe(true);
  });

  it('copies what a store returns, so the store changing it later changes nothing', async () => {
    const inner = new RawStore();
    const grants = [{ permission: 'read:posts', when: { ip: ['10.0.0.0/8'] } }];
    inner.user = { ...plain(), grants };
    const { cache } = cached(inner);

    const record = await cache.getUser({ subject: 'alice' });
    grants[0]!.when.ip.push('0.0.0.0/0');
    grants.push({ permission: '*', when: { ip: [] } });

    expect(record?.grants).toEqual([{ permission: 'read:posts', when: { ip: ['10.0.0.0/8'] } }]);
  });

  it('refuses inherited fields for records put into a MemoryStore too', () => {
    const store = new MemoryStore();
    const record = Object.assign(Object.create({ denies: [] }), {
      subject: 'alice',
      roles: [],
      grants: [],
    });

    expect(() => store.putUser(record)).toThrow(
      expect.objectContaining({ code: 'store_invalid_record' }),
    );
  });
});

describe('records from a store: bounded size', () => {
  function withEntries(roles: number, grants: number, denies: number) {
    return {
      subject: 'big',
      roles: Array.from({ length: roles }, (_, i) => ({ role: `r${i}` })),
      grants: Array.from({ length: grants }, (_, i) => ({ permission: `read:g${i}` })),
      denies: Array.from({ length: denies }, (_, i) => ({ permission: `read:d${i}` })),
    };
  }

  it('accepts a record of exactly maxRecordEntries, counting roles, grants and denies', async () => {
    const inner = new RawStore();
    inner.user = withEntries(2, 5, 3);
    const { cache } = cached(inner, 10);

    const record = await cache.getUser({ subject: 'big' });

    expect(record?.grants).toHaveLength(5);
  });

  it.each([
    ['role assignments', 11, 0, 0],
    ['grants', 0, 11, 0],
    ['denies', 0, 0, 11],
    ['all three together', 4, 4, 3],
  ])(
    'refuses one entry more (%s) as store_record_too_large, naming the key',
    async (_n, r, g, d) => {
      const inner = new RawStore();
      inner.user = withEntries(r, g, d);
      const { cache, logs } = cached(inner, 10);

      const error = await refusal(cache.getUser({ subject: 'big', tenant: 'acme' }));

      expect(error.code).toBe('store_record_too_large');
      expect(error.key).toBe('t:acme/s:big');
      expect(logs).toEqual([
        {
          level: 'error',
          msg: 'permission store record refused',
          code: 'store_record_too_large',
          store: 'custom',
          key: 't:acme/s:big',
          maxRecordEntries: 10,
        },
      ]);
    },
  );

  it('refuses an oversized record before reading any of its entries', async () => {
    const grants = new Array(10_001);
    for (let i = 0; i < grants.length; i++) Object.defineProperty(grants, i, { get: trap });
    const inner = new RawStore();
    inner.user = { subject: 'big', roles: [], grants, denies: [] };
    const { cache } = cached(inner);

    const error = await refusal(cache.getUser({ subject: 'big' }));

    expect(error.code).toBe('store_record_too_large');
  });

  it('bounds the default at 10,000 entries', async () => {
    const inner = new RawStore();
    inner.user = withEntries(0, 10_000, 0);
    const { cache } = cached(inner);
    expect((await cache.getUser({ subject: 'big' }))?.grants).toHaveLength(10_000);

    inner.user = withEntries(0, 10_000, 1);
    expect((await refusal(cache.getUser({ subject: 'big' }))).code).toBe('store_record_too_large');
  });

  it("bounds a tenant's role set: each role counts one, plus its grants, denies and parents", async () => {
    const inner = new RawStore();
    const role = (name: string, inherits: string[] = []) => ({
      name,
      grants: [{ permission: 'read:a' }, { permission: 'read:b' }],
      denies: [{ permission: 'read:c' }],
      inherits,
    });
    inner.roles = [role('a'), role('b', ['a'])]; // 4 + 5 entries
    const fits = cached(inner, 9);
    expect(await fits.cache.getRoles('acme')).toHaveLength(2);

    const over = cached(inner, 8);
    const error = await refusal(over.cache.getRoles('acme'));

    expect(error).toMatchObject({ code: 'store_record_too_large', key: 't:acme' });
    expect(over.logs).toHaveLength(1);
  });

  it('holds records of a MemoryStore to the bound when they are read', async () => {
    const memory = new MemoryStore();
    memory.putUser(withEntries(0, 11, 0));
    const { cache } = cached(memory, 10);

    const error = await refusal(cache.getUser({ subject: 'big' }));

    expect(error).toMatchObject({ code: 'store_record_too_large', key: '-/s:big' });
  });

  it('logs one line per load however many callers wait on it, and never the contents', async () => {
    const inner = new RawStore();
    inner.user = withEntries(0, 11, 0);
    const { cache, logs } = cached(inner, 10);

    const results = await Promise.allSettled([
      cache.getUser({ subject: 'big' }),
      cache.getUser({ subject: 'big' }),
      cache.getUser({ subject: 'big' }),
    ]);

    expect(results.every((r) => r.status === 'rejected')).toBe(true);
    expect(logs).toHaveLength(1);
    expect(JSON.stringify(logs)).not.toContain('read:g');
  });

  it('refuses a bound that is not an integer from 1 to 1000000, naming the option', () => {
    for (const bad of [0, 1.5, 1_000_001, '10']) {
      expect(() => new CachedStore(new RawStore(), { maxRecordEntries: bad as number })).toThrow(
        expect.objectContaining({ field: 'cache.maxRecordEntries' }),
      );
    }
  });
});

describe('records from a store: condition lists count toward the bound (issue 9)', () => {
  const cidrs = (n: number) => Array.from({ length: n }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`);
  // Each case: one grant or deny whose conditions hold `items` entries, 1 + items with the grant.
  const lists: [string, (items: number) => Record<string, unknown>][] = [
    ['ip CIDR ranges', (n) => ({ ip: cidrs(n) })],
    ['countries', (n) => ({ country: Array.from({ length: n }, () => 'DE') })],
    ['weekdays', (n) => ({ time: { days: Array.from({ length: n - 1 }, () => 'mon') } })],
    ['values of one claim', (n) => ({ claims: { group: Array.from({ length: n - 1 }, String) } })],
    [
      'claim names',
      (n) => ({ claims: Object.fromEntries(Array.from({ length: n }, (_, i) => [`c${i}`, 1])) }),
    ],
  ];

  it.each(lists)('counts every item of %s in a grant', async (_what, when) => {
    const inner = new RawStore();
    const { cache, logs } = cached(inner, 10);
    inner.user = { ...plain(), grants: [{ permission: 'read:x', when: when(9) }] };
    expect((await cache.getUser({ subject: 'alice' }))?.grants).toHaveLength(1);

    inner.user = { ...plain(), grants: [{ permission: 'read:x', when: when(10) }] };
    const error = await refusal(cache.getUser({ subject: 'alice' }));

    expect(error).toMatchObject({ code: 'store_record_too_large', key: '-/s:alice' });
    expect(JSON.stringify(logs)).not.toMatch(/10\.0|read:x|group/);
  });

  it.each(lists)('counts every item of %s in a deny and in a role', async (_what, when) => {
    const inner = new RawStore();
    const { cache } = cached(inner, 10);
    inner.user = { ...plain(), denies: [{ permission: 'read:x', when: when(10) }] };
    inner.roles = [
      // 1 for the role, 1 for the deny, 9 in its conditions.
      { name: 'r', grants: [], denies: [{ permission: 'read:x', when: when(9) }], inherits: [] },
    ];

    expect((await refusal(cache.getUser({ subject: 'alice' }))).code).toBe(
      'store_record_too_large',
    );
    expect((await refusal(cache.getRoles(undefined))).code).toBe('store_record_too_large');
  });

  it('counts conditions of the first grant against the rest of the record, not just itself', async () => {
    const inner = new RawStore();
    const { cache } = cached(inner, 10);
    // 5 grants + 8 CIDRs in the first = 13: the grants after it must still count.
    const rest = Array.from({ length: 4 }, (_, i) => ({ permission: `read:r${i}` }));
    inner.user = {
      ...plain(),
      grants: [{ permission: 'read:x', when: { ip: cidrs(8) } }, ...rest],
    };
    inner.roles = [
      {
        name: 'r',
        grants: [{ permission: 'read:x', when: { ip: cidrs(6) } }, ...rest],
        inherits: [],
      },
    ];

    expect((await refusal(cache.getUser({ subject: 'alice' }))).code).toBe(
      'store_record_too_large',
    );
    expect((await refusal(cache.getRoles(undefined))).code).toBe('store_record_too_large');
  });

  it('refuses a grant with a million CIDRs before reading one of them', async () => {
    const ip = new Array(1_000_000);
    for (let i = 0; i < 20; i++) Object.defineProperty(ip, i, { get: trap });
    const inner = new RawStore();
    inner.user = { ...plain(), grants: [{ permission: 'read:x', when: { ip } }] };
    const { cache } = cached(inner);

    const error = await refusal(cache.getUser({ subject: 'alice' }));

    expect(error.code).toBe('store_record_too_large');
  });

  it('holds a MemoryStore record with a long condition list to the bound when it is read', async () => {
    const memory = new MemoryStore();
    memory.putUser({ ...plain(), grants: [{ permission: 'read:x', when: { ip: cidrs(10) } }] });
    const { cache } = cached(memory, 10);

    expect((await refusal(cache.getUser({ subject: 'alice' }))).code).toBe(
      'store_record_too_large',
    );
  });
});

describe('records from a store: a polluted Object.prototype trusts nothing (issue 9 F3)', () => {
  // A field every object seems to have: a grant without `when` would get one, a deny without
  // `expiresAt` would expire, a record without `grants` would get them. Fail closed instead.
  const fields: [string, unknown][] = [
    ['grants', [{ permission: '*' }]],
    ['when', { ip: ['0.0.0.0/0'] }],
    ['expiresAt', 1],
    ['expires', 1],
    ['tenant', 'acme'],
  ];

  it.each(fields)('refuses every record while Object.prototype.%s is set', async (field, value) => {
    const memory = new MemoryStore();
    memory.putUser({ ...plain(), denies: [{ permission: 'read:x' }] });
    const { cache } = cached(memory, 10);
    const proto = Object.prototype as Record<string, unknown>;
    proto[field] = value;
    let error: StoreError;
    try {
      error = await refusal(cache.getUser({ subject: 'alice' }));
    } finally {
      delete proto[field];
    }

    // Named by the key asked for (a polluted `tenant` even changes that key).
    expect(error.code).toBe('store_invalid_record');
    expect((await cache.getUser({ subject: 'alice' }))?.denies).toHaveLength(1);
  });
});
