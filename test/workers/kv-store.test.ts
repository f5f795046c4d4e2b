/**
 * The KV permission store against real local KV: the key layout, encoded subjects and tenants,
 * validation of stored records, seeding, and the JWKS persistence hook.
 */
import { env } from 'cloudflare:workers';
import { describe, expect, it, vi } from 'vitest';
import { StoreError } from '../../src/errors.ts';
import {
  KvJwksPersistence,
  KvStore,
  kvKeys,
  permissionKvEntries,
  seedKv,
} from '../../src/workers/kv-store.ts';
import { bearer, demoTokenFor, instrumentedKv, testGuard } from './helpers.ts';

describe('KV key layout', () => {
  it('encodes every part so no subject reaches another record', () => {
    expect(kvKeys.user({ subject: 'alice' })).toBe('user/-/s:alice');
    expect(kvKeys.user({ subject: 'alice:admin' })).toBe('user/-/s:alice%3Aadmin');
    expect(kvKeys.user({ subject: '../x' })).toBe('user/-/s:..%2Fx');
    expect(kvKeys.user({ subject: 'bob', tenant: 'acme/x' })).toBe('user/t:acme%2Fx/s:bob');
    expect(kvKeys.roles(undefined)).toBe('roles/-');
    expect(kvKeys.roles('acme')).toBe('roles/t:acme');
    expect(kvKeys.jwks('https://id.example/')).toBe('jwks/https%3A%2F%2Fid.example%2F');
  });

  it('seeds one value per user and one per tenant with roles', () => {
    const entries = permissionKvEntries(
      JSON.stringify({
        roles: { reader: { grants: ['read:posts'] } },
        users: { alice: { grants: [{ permission: 'read:drafts', expires: 1893456000 }] } },
        user_roles: { alice: ['reader'], 'a:b': ['reader'] },
        tenants: { acme: { users: { bob: { denies: ['delete:posts:*'] } } } },
      }),
    );
    expect(Object.fromEntries(entries.map((e) => [e.key, JSON.parse(e.value)]))).toEqual({
      'user/-/s:alice': {
        roles: ['reader'],
        grants: [{ permission: 'read:drafts', expires: 1893456000 }],
      },
      'user/-/s:a%3Ab': { roles: ['reader'] },
      'roles/-': { reader: { grants: ['read:posts'] } },
      'user/t:acme/s:bob': { denies: ['delete:posts:*'] },
    });
  });
});

describe('KvStore', () => {
  it('reads a seeded user and the tenant roles', async () => {
    await seedKv(
      env.PERMISSIONS,
      JSON.stringify({
        roles: { auditor: { grants: ['read:logs'], inherits: [] } },
        users: { 'kv:user': { grants: ['read:posts'] } },
        user_roles: { 'kv:user': [{ role: 'auditor', expires: 1893456000 }] },
        tenants: {},
      }),
    );
    const store = new KvStore(env.PERMISSIONS);
    expect(await store.getUser({ subject: 'kv:user' })).toEqual({
      subject: 'kv:user',
      roles: [{ role: 'auditor', expiresAt: 1893456000 }],
      grants: [{ permission: 'read:posts' }],
      denies: [],
    });
    expect(await store.getUser({ subject: 'kv' })).toBeNull();
    const roles = await store.getRoles(undefined);
    expect(roles.map((r) => r.name)).toContain('auditor');
  });

  it('answers null for a subject whose key KV could never hold', async () => {
    const store = new KvStore(env.PERMISSIONS);
    expect(await store.getUser({ subject: 'x'.repeat(600) })).toBeNull();
  });

  it('refuses a malformed record with store_invalid_record', async () => {
    await env.PERMISSIONS.put('user/-/s:odd', JSON.stringify({ grants: 'read:posts' }));
    await env.PERMISSIONS.put('user/-/s:extra', JSON.stringify({ grants: [], admin: true }));
    await env.PERMISSIONS.put('user/-/s:text', 'not json');
    const store = new KvStore(env.PERMISSIONS);
    for (const subject of ['odd', 'extra', 'text']) {
      const error = await store.getUser({ subject }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StoreError);
      expect((error as StoreError).code).toBe('store_invalid_record');
    }
  });

  it('turns a KV failure into store_unavailable without the backend message', async () => {
    const { kv, state } = instrumentedKv();
    state.failing = true;
    const error = await new KvStore(kv).getUser({ subject: 'a' }).catch((e: unknown) => e);
    expect((error as StoreError).code).toBe('store_unavailable');
    expect((error as StoreError).message).not.toContain('backend');
  });

  it('refuses a cacheTtl below KV minimum of 30 seconds', () => {
    expect(() => new KvStore(env.PERMISSIONS, { cacheTtlSeconds: 10 })).toThrow(/30/);
  });
});

describe('KvStore record size bound', () => {
  const grants = (n: number) => Array.from({ length: n }, (_, i) => `read:g${i}`);

  it('refuses a value over maxRecordEntries right after parsing, before validating it', async () => {
    // Entries that would fail validation: the bound must answer first (it is the cheap check).
    await env.PERMISSIONS.put('user/-/s:huge', JSON.stringify({ grants: Array(11).fill(42) }));
    const store = new KvStore(env.PERMISSIONS, { maxRecordEntries: 10 });

    const error = await store.getUser({ subject: 'huge' }).catch((e: unknown) => e);

    expect(error).toMatchObject({ code: 'store_record_too_large', key: 'user/-/s:huge' });
  });

  it("counts a user's roles, grants and denies together, and a tenant's roles with theirs", async () => {
    await env.PERMISSIONS.put(
      'user/t:acme/s:mixed',
      JSON.stringify({ roles: ['a'], grants: grants(3), denies: ['read:x'] }),
    );
    await env.PERMISSIONS.put(
      'roles/t:acme',
      JSON.stringify({ a: { grants: grants(2) }, b: { inherits: ['a'] } }),
    );
    const fits = new KvStore(env.PERMISSIONS, { maxRecordEntries: 5 });
    const over = new KvStore(env.PERMISSIONS, { maxRecordEntries: 4 });

    expect((await fits.getUser({ subject: 'mixed', tenant: 'acme' }))?.grants).toHaveLength(3);
    expect(await fits.getRoles('acme')).toHaveLength(2);
    const user = await over.getUser({ subject: 'mixed', tenant: 'acme' }).catch((e) => e);
    const roles = await over.getRoles('acme').catch((e: unknown) => e);
    expect(user).toMatchObject({ code: 'store_record_too_large', key: 'user/t:acme/s:mixed' });
    expect(roles).toMatchObject({ code: 'store_record_too_large', key: 'roles/t:acme' });
  });

  it('the guard answers 503 for a 200,000-entry record and logs one line naming the key', async () => {
    await env.PERMISSIONS.put(
      'user/-/s:hoarder',
      JSON.stringify({ grants: ['read:posts', ...grants(200_000)] }),
    );
    const lines: string[] = [];
    const spy = vi.spyOn(console, 'error').mockImplementation((value: unknown) => {
      if (typeof value === 'string' && value.includes('record refused')) lines.push(value);
    });
    try {
      const token = await demoTokenFor('hoarder');

      const response = await testGuard().fetch('/posts/1', { headers: bearer(token) });

      expect(response.status).toBe(503);
      expect(lines).toHaveLength(1);
      expect(JSON.parse(lines[0]!)).toEqual({
        level: 'error',
        msg: 'permission store record refused',
        code: 'store_record_too_large',
        store: 'kv',
        key: 'user/-/s:hoarder',
        maxRecordEntries: 10_000,
      });
      expect(lines[0]).not.toContain('read:g');
    } finally {
      spy.mockRestore();
    }
  });
});

describe('KvStore: role expansion, condition lists and value length are bounded (issue 9)', () => {
  /** Runs `body` with `roles/-` holding `roles`, then puts back what was there. */
  async function withRoles(roles: unknown, body: () => Promise<void>): Promise<void> {
    const before = await env.PERMISSIONS.get('roles/-', 'text');
    await env.PERMISSIONS.put('roles/-', JSON.stringify(roles));
    try {
      await body();
    } finally {
      if (before === null) await env.PERMISSIONS.delete('roles/-');
      else await env.PERMISSIONS.put('roles/-', before);
    }
  }

  /** The `record refused` lines written while `body` runs. */
  async function refusedLines(body: () => Promise<void>): Promise<Record<string, unknown>[]> {
    const lines: string[] = [];
    const spy = vi.spyOn(console, 'error').mockImplementation((value: unknown) => {
      if (typeof value === 'string' && value.includes('record refused')) lines.push(value);
    });
    try {
      await body();
    } finally {
      spy.mockRestore();
    }
    return lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  /** r0 ← … ← r{n-1} in the KV roles shape; r0 grants read:posts: 3n - 1 entries. */
  function chain(n: number): Record<string, unknown> {
    return Object.fromEntries(
      Array.from({ length: n }, (_, i) => [
        `r${i}`,
        { grants: [i === 0 ? 'read:posts' : `read:r${i}`], inherits: i === 0 ? [] : [`r${i - 1}`] },
      ]),
    );
  }

  const grants = (n: number) => Array.from({ length: n }, (_, i) => `read:g${i}`);

  it('the guard allows through a 3,000-deep chain, and answers 503 once the expansion passes 10,000', async () => {
    // The role set holds 8,999 entries and each user value at most 1,002: every value fits.
    await withRoles(chain(3000), async () => {
      await env.PERMISSIONS.put('user/-/s:deep', JSON.stringify({ roles: ['r2999'] }));
      await env.PERMISSIONS.put(
        'user/-/s:deeper',
        JSON.stringify({ roles: ['r2999'], grants: grants(1001) }),
      );
      const guard = testGuard();

      const lines = await refusedLines(async () => {
        const ok = await guard.fetch('/posts/1', { headers: bearer(await demoTokenFor('deep')) });
        expect(ok.status).toBe(200);
        const over = await guard.fetch('/posts/1', {
          headers: bearer(await demoTokenFor('deeper')),
        });
        expect(over.status).toBe(503);
      });

      expect(lines).toEqual([
        {
          level: 'error',
          msg: 'permission store record refused',
          code: 'store_record_too_large',
          store: 'kv',
          key: '-/s:deeper',
          maxRecordEntries: 10_000,
        },
      ]);
    });
  });

  const cidrs = (n: number) => Array.from({ length: n }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`);

  it('counts condition list items in user and role values before validating them', async () => {
    await env.PERMISSIONS.put(
      'user/t:acme/s:office',
      JSON.stringify({ grants: [{ permission: 'read:posts', when: { ip: cidrs(10) } }] }),
    );
    await env.PERMISSIONS.put(
      'roles/t:acme',
      JSON.stringify({ office: { denies: [{ permission: 'x:y', when: { country: cidrs(9) } }] } }),
    );
    const store = new KvStore(env.PERMISSIONS, { maxRecordEntries: 10 });

    const user = await store.getUser({ subject: 'office', tenant: 'acme' }).catch((e) => e);
    const roles = await store.getRoles('acme').catch((e: unknown) => e);

    expect(user).toMatchObject({ code: 'store_record_too_large', key: 'user/t:acme/s:office' });
    expect(roles).toMatchObject({ code: 'store_record_too_large', key: 'roles/t:acme' });
  });

  it('the guard answers 503 for one grant with 20,000 CIDRs, logging the key and not the list', async () => {
    await env.PERMISSIONS.put(
      'user/-/s:cidrs',
      JSON.stringify({ grants: [{ permission: 'read:posts', when: { ip: cidrs(20_000) } }] }),
    );
    const guard = testGuard();

    const lines = await refusedLines(async () => {
      const response = await guard.fetch('/posts/1', {
        headers: bearer(await demoTokenFor('cidrs')),
      });
      expect(response.status).toBe(503);
    });

    expect(lines).toEqual([
      expect.objectContaining({ code: 'store_record_too_large', key: 'user/-/s:cidrs' }),
    ]);
    expect(JSON.stringify(lines)).not.toContain('10.0');
  });

  it('refuses a value longer than 512 characters per entry before parsing it', async () => {
    const value = JSON.stringify({ grants: ['read:posts'] });
    await env.PERMISSIONS.put('user/-/s:padded', `${value}${' '.repeat(1024 - value.length + 1)}`);
    await env.PERMISSIONS.put('user/-/s:snug', `${value}${' '.repeat(1024 - value.length)}`);
    // Not JSON at all: had it been parsed, the error would be store_invalid_record.
    await env.PERMISSIONS.put('user/-/s:noise', 'x'.repeat(1025));
    const store = new KvStore(env.PERMISSIONS, { maxRecordEntries: 2 });

    expect((await store.getUser({ subject: 'snug' }))?.grants).toHaveLength(1);
    for (const subject of ['padded', 'noise']) {
      const error = await store.getUser({ subject }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'store_record_too_large', key: `user/-/s:${subject}` });
    }
  });
});

describe('KvStore: __proto__, constructor and inherited fields never grant (issue 9 F3)', () => {
  // Each case: a user value and a roles value smuggling a grant through a name with meaning to
  // JavaScript. None may allow GET /posts/1 (read:posts); a 403 or a 503 are both safe.
  const cases: [string, string, string | null][] = [
    ['__proto__ in the user value', '{"__proto__":{"grants":["read:posts"]}}', null],
    ['constructor in the user value', '{"constructor":{"grants":["read:posts"]}}', null],
    ['__proto__ in a grant', '{"grants":[{"__proto__":{"permission":"read:posts"}}]}', null],
    [
      'a deny with __proto__ conditions',
      '{"grants":["read:posts"],"denies":[{"permission":"read:posts","__proto__":{"when":{"country":["DE"]}}}]}',
      null,
    ],
    [
      'a role named __proto__',
      '{"roles":["__proto__"]}',
      '{"__proto__":{"grants":["read:posts"]}}',
    ],
    [
      'a role named constructor',
      '{"roles":["constructor"]}',
      '{"constructor":{"grants":["read:posts"]}}',
    ],
    ['__proto__ in a role', '{"roles":["r"]}', '{"r":{"__proto__":{"grants":["read:posts"]}}}'],
    [
      'an assignment of toString',
      '{"roles":["toString","hasOwnProperty"]}',
      '{"r":{"grants":["write:x"]}}',
    ],
  ];

  it.each(cases)('does not allow through %s', async (_what, userValue, rolesValue) => {
    const before = await env.PERMISSIONS.get('roles/-', 'text');
    await env.PERMISSIONS.put('user/-/s:proto', userValue);
    if (rolesValue !== null) await env.PERMISSIONS.put('roles/-', rolesValue);
    try {
      const response = await testGuard().fetch('/posts/1', {
        headers: bearer(await demoTokenFor('proto')),
      });
      expect([403, 503]).toContain(response.status);
    } finally {
      if (before === null) await env.PERMISSIONS.delete('roles/-');
      else await env.PERMISSIONS.put('roles/-', before);
    }
  });

  it.each([
    ['grants', false, ['read:posts']],
    ['grants', true, ['read:posts']],
    ['roles', false, ['editor']],
  ])(
    'grants nothing from Object.prototype.%s (enumerable: %s) when the value has none',
    async (field, enumerable, value) => {
      await env.PERMISSIONS.put('user/-/s:bare', '{}');
      const store = new KvStore(env.PERMISSIONS);
      // Non-enumerable pollution is the quiet kind: no for..in ever sees it, plain reads do.
      Object.defineProperty(Object.prototype, field, {
        value,
        enumerable,
        writable: true,
        configurable: true,
      });
      let outcome: unknown;
      try {
        outcome = await store.getUser({ subject: 'bare' }).catch((e: unknown) => e);
      } finally {
        delete (Object.prototype as Record<string, unknown>)[field];
      }

      expect(outcome).toBeInstanceOf(StoreError);
      expect(outcome).toMatchObject({ code: 'store_invalid_record', key: 'user/-/s:bare' });
    },
  );
});

describe('KvJwksPersistence', () => {
  function countingKv() {
    const state = { puts: 0 };
    const kv = {
      get: env.PERMISSIONS.get.bind(env.PERMISSIONS) as typeof env.PERMISSIONS.get,
      put: async (key: string, value: string, options?: { expirationTtl?: number }) => {
        state.puts++;
        await env.PERMISSIONS.put(key, value, options);
      },
      delete: async (key: string) => env.PERMISSIONS.delete(key),
    };
    return { kv, state };
  }
  const jwks = { keys: [{ kty: 'EC', crv: 'P-256', x: 'x', y: 'y', kid: 'k' }] };

  it('stores the fetch time with the keys and returns both', async () => {
    const issuer = 'https://id.example/dated/';
    const fetchedAt = Date.now() - 23 * 3600_000;
    await new KvJwksPersistence(env.PERMISSIONS).save(issuer, jwks as never, { fetchedAt });
    expect(await env.PERMISSIONS.get(kvKeys.jwks(issuer), 'json')).toEqual({ jwks, fetchedAt });
    expect(await new KvJwksPersistence(env.PERMISSIONS).load(issuer)).toEqual({ jwks, fetchedAt });
  });

  it('still reads the legacy bare key set, and dates it on the next save', async () => {
    const issuer = 'https://id.example/legacy/';
    await env.PERMISSIONS.put(kvKeys.jwks(issuer), JSON.stringify(jwks));
    const { kv, state } = countingKv();
    const persistence = new KvJwksPersistence(kv);
    expect(await persistence.load(issuer)).toEqual(jwks);
    const fetchedAt = Date.now();
    await persistence.save(issuer, jwks as never, { fetchedAt });
    expect(state.puts).toBe(1);
    expect(await env.PERMISSIONS.get(kvKeys.jwks(issuer), 'json')).toEqual({ jwks, fetchedAt });
  });

  it('ignores a stored value of neither shape', async () => {
    const issuer = 'https://id.example/junk/';
    for (const value of [{ jwks, fetchedAt: 'yesterday' }, { jwks: {}, fetchedAt: 1 }, [1]]) {
      await env.PERMISSIONS.put(kvKeys.jwks(issuer), JSON.stringify(value));
      expect(await new KvJwksPersistence(env.PERMISSIONS).load(issuer)).toBeNull();
    }
  });

  it('skips writing an unchanged, recently dated set, also across isolates', async () => {
    const issuer = 'https://id.example/unchanged/';
    const { kv, state } = countingKv();
    const now = Date.now();
    await new KvJwksPersistence(kv).save(issuer, jwks as never, { fetchedAt: now });
    // Another isolate that never loaded: it reads what is stored before writing.
    await new KvJwksPersistence(kv).save(issuer, jwks as never, { fetchedAt: now + 60_000 });
    expect(state.puts).toBe(1);
    // Once the stored time is rewriteAfterSeconds (300) old, the same keys are dated again.
    await new KvJwksPersistence(kv).save(issuer, jwks as never, { fetchedAt: now + 301_000 });
    expect(state.puts).toBe(2);
    // Changed keys are written at once; an older fetch never replaces a newer one.
    const rotated = { keys: [{ ...jwks.keys[0], kid: 'k2' }] };
    const persistence = new KvJwksPersistence(kv);
    await persistence.save(issuer, rotated as never, { fetchedAt: now + 302_000 });
    expect(state.puts).toBe(3);
    await new KvJwksPersistence(kv).save(issuer, jwks as never, { fetchedAt: now + 1000 });
    expect(state.puts).toBe(3);
  });
});
