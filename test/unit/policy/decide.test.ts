import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { StoreError } from '../../../src/errors.ts';
import { compilePolicy, Gatehouse, type PolicyDocument } from '../../../src/policy/index.ts';
import { MemoryStore } from '../../../src/stores/index.ts';
import type { Decision, PermissionStore, UserRecord } from '../../../src/types.ts';
import { AUDIENCE, createTestIssuer, type TestIssuer } from '../../support/issuer.ts';

const START = Date.parse('2026-11-23T12:00:00Z');
let clock = START;
const now = () => clock;

let idp: TestIssuer;

function blogPolicy(extra: Partial<PolicyDocument> = {}): PolicyDocument {
  return {
    version: 1,
    issuers: [
      {
        issuer: idp.issuer,
        audiences: [AUDIENCE],
        algorithms: ['ES256'],
        keys: { jwks: idp.jwks },
        tenantClaim: 'tid',
      },
    ],
    cache: { ttlSeconds: 30 },
    roles: {
      reader: { grants: ['read:posts'] },
      editor: { inherits: ['reader'], grants: ['write:posts:*'] },
      admin: { grants: ['*'] },
    },
    routes: [
      { method: 'GET', path: '/health', public: true },
      { method: 'GET', path: '/me', authenticated: true },
      { method: 'GET', path: '/posts/:id', require: ['read:posts'] },
      { method: 'PUT', path: '/posts/:id', require: ['write:posts:{id}'] },
      { method: 'DELETE', path: '/posts/:id', anyOf: ['delete:posts:{id}', 'admin:posts'] },
      { method: 'GET', path: '/t/:tenant/reports', require: ['read:reports'] },
      { method: 'POST', path: '/internal', require: ['ops:internal'] },
    ],
    tenancy: { pathParam: 'tenant' },
    ...extra,
  };
}

function user(subject: string, fields: Partial<UserRecord> = {}): UserRecord {
  return { subject, tenant: 'acme', roles: [], grants: [], denies: [], ...fields };
}

let store: MemoryStore;
let gatehouse: Gatehouse;

async function decide(
  method: string,
  path: string,
  claims: Record<string, unknown> = {},
  extra: { ip?: string; country?: string } = {},
): Promise<Decision> {
  const token = await idp.mint({ tid: 'acme', ...claims });
  return gatehouse.decide({ method, path, authorization: `Bearer ${token}`, ...extra });
}

beforeAll(async () => {
  idp = await createTestIssuer({ now });
});

beforeEach(() => {
  clock = START;
  store = new MemoryStore();
  store.putUser(user('alice', { roles: [{ role: 'reader' }] }));
  store.putUser(user('bob', { roles: [{ role: 'editor' }] }));
  store.putUser(user('carol', { roles: [{ role: 'admin' }], denies: [{ permission: 'ops:*' }] }));
  gatehouse = new Gatehouse({ policy: compilePolicy(blogPolicy()), store, now });
});

describe('decide: routes and tokens', () => {
  it('allows a reader to read a post, naming the role path', async () => {
    const d = await decide('GET', '/posts/42');
    expect(d).toMatchObject({
      allow: true,
      status: 200,
      reason: 'allowed',
      route: 'GET /posts/:id',
    });
    expect(d.matched).toEqual([{ required: 'read:posts', grant: 'read:posts', via: ['reader'] }]);
    expect(d.principal?.subject).toBe('alice');
  });

  it('allows a public route without a token', async () => {
    const d = await gatehouse.decide({ method: 'GET', path: '/health' });
    expect(d).toMatchObject({ allow: true, reason: 'public_route' });
  });

  it('answers 401 token_missing on a protected route without a token', async () => {
    const d = await gatehouse.decide({ method: 'GET', path: '/posts/1' });
    expect(d).toMatchObject({ allow: false, status: 401, reason: 'token_missing' });
  });

  it('answers 401 rather than no_route to a caller without a token', async () => {
    const d = await gatehouse.decide({ method: 'GET', path: '/nowhere' });
    expect(d.status).toBe(401);
  });

  it('denies an unmatched route for a valid token with no_route', async () => {
    const d = await decide('GET', '/nowhere');
    expect(d).toMatchObject({ allow: false, status: 403, reason: 'no_route' });
  });

  it('allows an authenticated route with any valid token, even without a store record', async () => {
    const d = await decide('GET', '/me', { sub: 'stranger' });
    expect(d).toMatchObject({ allow: true, reason: 'authenticated_route' });
  });

  it('answers 401 for an expired token', async () => {
    const token = await idp.mint({ tid: 'acme', exp: Math.floor(clock / 1000) - 120 });
    const d = await gatehouse.decide({
      method: 'GET',
      path: '/posts/1',
      authorization: `Bearer ${token}`,
    });
    expect(d).toMatchObject({ allow: false, status: 401, reason: 'token_expired' });
  });

  it('answers 401 for a token for another audience', async () => {
    const d = await decide('GET', '/posts/1', { aud: 'https://other.example' });
    expect(d).toMatchObject({ status: 401, reason: 'token_invalid_audience' });
  });

  it('answers 400 for a path an origin could resolve differently', async () => {
    const d = await decide('GET', '/posts/%2e%2e/admin');
    expect(d).toMatchObject({ allow: false, status: 400, reason: 'malformed_request' });
  });

  it('never echoes the token in the decision', async () => {
    const token = await idp.mint({ tid: 'acme', exp: 1 });
    const d = await gatehouse.decide({
      method: 'GET',
      path: '/posts/1',
      authorization: `Bearer ${token}`,
    });
    expect(JSON.stringify(d)).not.toContain(token.split('.')[2]!);
  });
});

describe('decide: permissions', () => {
  it('denies a reader a write with missing_permission', async () => {
    const d = await decide('PUT', '/posts/42');
    expect(d).toMatchObject({ allow: false, status: 403, reason: 'missing_permission' });
    expect(d.required).toEqual(['write:posts:42']);
  });

  it('allows an editor to write through inherited wildcard grants', async () => {
    const d = await decide('PUT', '/posts/42', { sub: 'bob' });
    expect(d.matched?.[0]).toMatchObject({ grant: 'write:posts:*', via: ['editor'] });
  });

  it('fills path parameters into required permissions', async () => {
    store.putUser(user('alice', { grants: [{ permission: 'delete:posts:42' }] }));
    expect((await decide('DELETE', '/posts/42')).allow).toBe(true);
    expect((await decide('DELETE', '/posts/43')).allow).toBe(false);
  });

  it('accepts any one permission of anyOf', async () => {
    store.putUser(user('alice', { grants: [{ permission: 'admin:posts' }] }));
    const d = await decide('DELETE', '/posts/9');
    expect(d).toMatchObject({ allow: true, matched: [{ required: 'admin:posts' }] });
  });

  it('lets an explicit deny beat the admin wildcard', async () => {
    const d = await decide('POST', '/internal', { sub: 'carol' });
    expect(d).toMatchObject({ allow: false, status: 403, reason: 'explicit_deny' });
    expect(d.matched?.[0]?.grant).toBe('ops:*');
  });

  it('denies when the grant expired a second ago', async () => {
    const expiresAt = Math.floor(clock / 1000) + 60;
    store.putUser(user('dave', { grants: [{ permission: 'ops:internal', expiresAt }] }));
    clock += 59_000;
    expect((await decide('POST', '/internal', { sub: 'dave' })).allow).toBe(true);
    clock += 2_000; // still inside the permission cache's TTL: expiry is checked per decision

    expect((await decide('POST', '/internal', { sub: 'dave' })).allow).toBe(false);
  });

  it('applies an IP condition from the request context', async () => {
    store.putUser(
      user('erin', { grants: [{ permission: 'ops:internal', when: { ip: ['10.0.0.0/8'] } }] }),
    );
    expect((await decide('POST', '/internal', { sub: 'erin' }, { ip: '10.1.2.3' })).allow).toBe(
      true,
    );
    expect((await decide('POST', '/internal', { sub: 'erin' }, { ip: '11.1.2.3' })).allow).toBe(
      false,
    );
    expect((await decide('POST', '/internal', { sub: 'erin' })).allow).toBe(false);
  });

  it('reads claim conditions from the principal when the policy uses them', async () => {
    const policy = compilePolicy(
      blogPolicy({
        roles: {
          oncall: { grants: [{ permission: 'ops:internal', when: { claims: { mfa: true } } }] },
        },
      }),
    );
    gatehouse = new Gatehouse({ policy, store, now });
    store.putUser(user('frank', { roles: [{ role: 'oncall' }] }));
    expect((await decide('POST', '/internal', { sub: 'frank', mfa: true })).allow).toBe(true);
    expect((await decide('POST', '/internal', { sub: 'frank', mfa: false })).allow).toBe(false);
  });

  it('denies a principal of another tenant on a tenant route', async () => {
    store.putUser(user('alice', { grants: [{ permission: 'read:reports' }] }));
    expect((await decide('GET', '/t/acme/reports')).allow).toBe(true);
    const d = await decide('GET', '/t/globex/reports');
    expect(d).toMatchObject({ allow: false, status: 403, reason: 'tenant_mismatch' });
  });

  it('keeps tenants apart in the store', async () => {
    store.putUser({
      ...user('gina', { grants: [{ permission: 'ops:internal' }] }),
      tenant: 'globex',
    });
    expect((await decide('POST', '/internal', { sub: 'gina', tid: 'acme' })).allow).toBe(false);
    expect((await decide('POST', '/internal', { sub: 'gina', tid: 'globex' })).allow).toBe(true);
  });

  it('merges store roles over the policy roles', async () => {
    store.putRole('acme', {
      name: 'reader',
      grants: [{ permission: 'ops:internal' }],
      inherits: [],
    });
    gatehouse = new Gatehouse({ policy: compilePolicy(blogPolicy()), store, now });
    expect((await decide('POST', '/internal')).allow).toBe(true);
    expect((await decide('GET', '/posts/1')).allow).toBe(false);
  });
});

describe('decide: review regressions', () => {
  it('lets a deny win in anyOf whatever the order of the alternatives', async () => {
    const policy = compilePolicy(
      blogPolicy({
        routes: [
          { method: 'DELETE', path: '/a/:id', anyOf: ['delete:posts:{id}', 'admin:posts'] },
          { method: 'DELETE', path: '/b/:id', anyOf: ['admin:posts', 'delete:posts:{id}'] },
        ],
        tenancy: undefined,
      }),
    );
    gatehouse = new Gatehouse({ policy, store, now });
    store.putUser(
      user('alice', {
        grants: [{ permission: 'admin:posts' }, { permission: 'delete:posts:*' }],
        denies: [{ permission: 'delete:posts:42' }],
      }),
    );
    expect((await decide('DELETE', '/a/42')).reason).toBe('explicit_deny');
    expect((await decide('DELETE', '/b/42')).reason).toBe('explicit_deny');
    expect((await decide('DELETE', '/b/43')).allow).toBe(true);
  });

  it('refuses a path parameter too long to form a permission instead of skipping denies', async () => {
    store.putUser(
      user('alice', {
        grants: [{ permission: 'admin:posts' }],
        denies: [{ permission: 'delete:posts:*' }],
      }),
    );
    const d = await decide('DELETE', `/posts/${'a'.repeat(129)}`);
    expect(d).toMatchObject({ allow: false, status: 400, reason: 'malformed_request' });
  });

  it('refuses a check of no permissions at all', async () => {
    const token = await idp.mint({ tid: 'acme', sub: 'nobody' });
    const { principal } = await gatehouse.verifier.verify(token);
    const d = await gatehouse.check(principal, []);
    expect(d).toMatchObject({ allow: false, status: 400, reason: 'malformed_request' });
    expect((await gatehouse.check(principal, ['read posts'])).allow).toBe(false);
  });

  it('refuses a matrix parameter that an origin would strip', async () => {
    store.putUser(
      user('alice', {
        grants: [{ permission: 'write:posts:*' }],
        denies: [{ permission: 'write:posts:42' }],
      }),
    );
    expect((await decide('PUT', '/posts/42')).reason).toBe('explicit_deny');
    expect((await decide('PUT', '/posts/42;jsessionid=x')).status).toBe(400);
  });
});

describe('decide: store failures and caching', () => {
  it('answers 503 store_unavailable when the store fails, never an allow', async () => {
    store.failWith(new StoreError('store_unavailable', 'down'));
    const d = await decide('GET', '/posts/42');
    expect(d).toMatchObject({ allow: false, status: 503, reason: 'store_unavailable' });
  });

  it('applies a revocation once the cache TTL has passed', async () => {
    expect((await decide('GET', '/posts/42')).allow).toBe(true);
    store.putUser(user('alice'));
    clock += 29_000;
    expect((await decide('GET', '/posts/42')).allow).toBe(true);
    clock += 2_000;
    expect((await decide('GET', '/posts/42')).allow).toBe(false);
  });

  it('reports cache hits for a repeated token and a cached subject', async () => {
    const token = await idp.mint({ tid: 'acme' });
    const request = { method: 'GET', path: '/posts/1', authorization: `Bearer ${token}` };
    const first = await gatehouse.decide(request);
    const second = await gatehouse.decide(request);
    const third = await gatehouse.decide(request);
    expect(first.cache).toMatchObject({ token: 'miss', permissions: 'miss' });
    // A token is cached from its second use (src/token/token-cache.ts, admission).
    expect(second.cache).toMatchObject({ token: 'miss', permissions: 'hit' });
    expect(third.cache).toMatchObject({ token: 'hit', permissions: 'hit' });
  });

  it('bounds maxAgeSeconds by the store TTL and the earliest grant expiry', async () => {
    expect((await decide('GET', '/posts/42')).cache?.maxAgeSeconds).toBe(30);
    const expiresAt = Math.floor(clock / 1000) + 10;
    store.putUser(user('hank', { grants: [{ permission: 'read:posts', expiresAt }] }));
    expect((await decide('GET', '/posts/42', { sub: 'hank' })).cache?.maxAgeSeconds).toBe(10);
  });
});

describe('decide: records the core does not trust', () => {
  /** A user-written store returning one object as it is, for every subject. */
  function rawStore(record: unknown): PermissionStore {
    return {
      kind: 'custom',
      getUser: async () => record as UserRecord,
      getRoles: async () => [],
    };
  }

  function gatehouseOver(inner: PermissionStore, logs: unknown[], maxRecordEntries?: number) {
    return new Gatehouse({
      policy: compilePolicy(blogPolicy()),
      store: inner,
      now,
      storeLog: (entry) => logs.push(entry),
      ...(maxRecordEntries !== undefined && { maxRecordEntries }),
    });
  }

  it('grants nothing from grants a record inherits from its prototype: 503, never an allow', async () => {
    const record = Object.assign(Object.create({ grants: [{ permission: '*' }] }), {
      subject: 'alice',
      tenant: 'acme',
      roles: [],
      denies: [],
    });
    const logs: unknown[] = [];
    gatehouse = gatehouseOver(rawStore(record), logs);

    const d = await decide('GET', '/posts/42');

    expect(d).toMatchObject({ allow: false, status: 503, reason: 'store_unavailable' });
    expect(logs).toEqual([expect.objectContaining({ code: 'store_invalid_record' })]);
  });

  it('does not drop a deny a record inherits from its prototype: 503, never an allow', async () => {
    const record = Object.assign(Object.create({ denies: [{ permission: 'read:posts' }] }), {
      subject: 'alice',
      tenant: 'acme',
      roles: [],
      grants: [{ permission: 'read:posts' }],
    });
    gatehouse = gatehouseOver(rawStore(record), []);

    const d = await decide('GET', '/posts/42');

    expect(d).toMatchObject({ allow: false, status: 503, reason: 'store_unavailable' });
  });

  it('refuses an oversized record with 503 and one log line naming the key, not the contents', async () => {
    const grants = Array.from({ length: 200_000 }, (_, i) => ({ permission: `read:p${i}` }));
    store.putUser(user('big', { grants: [{ permission: 'read:posts' }, ...grants] }));
    const logs: unknown[] = [];
    gatehouse = gatehouseOver(store, logs);

    const d = await decide('GET', '/posts/42', { sub: 'big' });

    expect(d).toMatchObject({ allow: false, status: 503, reason: 'store_unavailable' });
    expect(logs).toEqual([
      {
        level: 'error',
        msg: 'permission store record refused',
        code: 'store_record_too_large',
        store: 'memory',
        key: 't:acme/s:big',
        maxRecordEntries: 10_000,
      },
    ]);
  });

  it('takes the bound from maxRecordEntries', async () => {
    store.putUser(user('five', { grants: [{ permission: 'read:posts' }], roles: [], denies: [] }));
    const logs: unknown[] = [];
    gatehouse = gatehouseOver(store, logs, 1);
    expect((await decide('GET', '/posts/42', { sub: 'five' })).allow).toBe(true);

    store.putUser(user('six', { grants: [{ permission: 'read:posts' }, { permission: 'x:y' }] }));
    const d = await decide('GET', '/posts/42', { sub: 'six' });

    expect(d).toMatchObject({ allow: false, status: 503 });
    expect(logs).toHaveLength(1);
  });
});

describe('decide: role expansion is bounded (issue 9)', () => {
  /** Store roles r0 ← r1 ← … ← r{n-1} in tenant acme; r0 grants read:posts, each r<i> read:r<i>. */
  function putChain(n: number) {
    for (let i = 0; i < n; i++) {
      store.putRole('acme', {
        name: `r${i}`,
        grants: [{ permission: i === 0 ? 'read:posts' : `read:r${i}` }],
        inherits: i === 0 ? [] : [`r${i - 1}`],
      });
    }
  }

  function gatehouseWith(maxRecordEntries: number, logs: unknown[]) {
    return new Gatehouse({
      policy: compilePolicy(blogPolicy()),
      store,
      now,
      maxRecordEntries,
      storeLog: (entry) => logs.push(entry),
    });
  }

  it('allows through a 500-deep chain and names the whole role path', async () => {
    putChain(500);
    store.putUser(user('deep', { roles: [{ role: 'r499' }] }));
    gatehouse = gatehouseWith(10_000, []);

    const d = await decide('GET', '/posts/1', { sub: 'deep' });

    expect(d.allow).toBe(true);
    expect(d.matched?.[0]?.via).toHaveLength(500);
    expect(d.explain).toContain('role r499 → r498');
  });

  it('answers 503 once the roles a subject reaches pass the bound, logging one line naming the key', async () => {
    // Each stored record fits (the role set holds 1,499 entries, the user 1); the expansion
    // (1 + 1,499) does not.
    putChain(500);
    store.putUser(user('deep', { roles: [{ role: 'r499' }] }));
    const logs: unknown[] = [];
    gatehouse = gatehouseWith(1_499, logs);

    const first = await decide('GET', '/posts/1', { sub: 'deep' });
    const second = await decide('GET', '/posts/1', { sub: 'deep' });

    for (const d of [first, second]) {
      expect(d).toMatchObject({ allow: false, status: 503, reason: 'store_unavailable' });
    }
    expect(logs).toEqual([
      {
        level: 'error',
        msg: 'permission store record refused',
        code: 'store_record_too_large',
        store: 'memory',
        key: 't:acme/s:deep',
        maxRecordEntries: 1_499,
      },
    ]);
    expect(JSON.stringify(logs)).not.toMatch(/read:|r499/);
  });

  it('lets a subject reaching fewer roles through with the same bound', async () => {
    putChain(500);
    store.putUser(user('shallow', { roles: [{ role: 'r10' }] }));
    gatehouse = gatehouseWith(1_499, []);

    expect((await decide('GET', '/posts/1', { sub: 'shallow' })).allow).toBe(true);
  });
});

describe('decide: decision max-age follows record freshness', () => {
  it('shrinks maxAgeSeconds as the cached record ages, so caching a decision keeps the bound', async () => {
    expect((await decide('GET', '/posts/42')).cache?.maxAgeSeconds).toBe(30);
    clock += 20_000;
    expect((await decide('GET', '/posts/42')).cache).toMatchObject({
      permissions: 'hit',
      maxAgeSeconds: 10,
    });
  });

  it('reports stale with max-age 0 when a record is served past its TTL during an outage', async () => {
    const policy = compilePolicy(
      blogPolicy({ cache: { ttlSeconds: 30, staleIfErrorSeconds: 600 } }),
    );
    gatehouse = new Gatehouse({ policy, store, now });
    expect((await decide('GET', '/posts/42')).allow).toBe(true);
    store.failWith(new StoreError('store_unavailable', 'down'));
    clock += 31_000;
    const d = await decide('GET', '/posts/42');
    expect(d).toMatchObject({ allow: true, cache: { permissions: 'stale', maxAgeSeconds: 0 } });
  });
});

describe('decide: permissions from token claims', () => {
  it('allows from a permissions claim and a scope string without any store', async () => {
    const policy = compilePolicy(blogPolicy({ permissions: { source: 'claims' } }));
    gatehouse = new Gatehouse({ policy, now });
    expect((await decide('PUT', '/posts/7', { permissions: ['write:posts:7'] })).allow).toBe(true);
    expect((await decide('GET', '/posts/7', { scope: 'read:posts other' })).allow).toBe(true);
    const d = await decide('PUT', '/posts/8', { permissions: ['write:posts:7'] });
    expect(d).toMatchObject({ allow: false, reason: 'missing_permission' });
  });
});

describe('decide: scopes mapped to permissions', () => {
  const scopes = {
    read: ['read:posts', 'read:reports'],
    'Orders.Read': ['read:posts'],
    admin: ['*'],
    'posts.write': ['write:posts:*'],
  };

  function claimsGatehouse(permissions: NonNullable<PolicyDocument['permissions']>): Gatehouse {
    const doc = blogPolicy({
      permissions: { source: 'claims', ...permissions },
      roles: {
        ...blogPolicy().roles,
        suspended: { denies: ['write:posts:*', 'delete:posts:*'] },
      },
    });
    return new Gatehouse({ policy: compilePolicy(doc, { onWarning: () => {} }), now });
  }

  beforeEach(() => {
    gatehouse = claimsGatehouse({ scopes, rolesClaim: 'roles' });
  });

  it('allows an Okta-style scope that is not a permission through its mapping', async () => {
    const d = await decide('GET', '/posts/42', { scope: 'openid read' });
    expect(d).toMatchObject({
      allow: true,
      matched: [{ required: 'read:posts', grant: 'read:posts', via: 'claims' }],
    });
  });

  it('allows an Azure-style scp array entry through its mapping', async () => {
    const d = await decide('GET', '/posts/42', { scp: ['Orders.Read'] });
    expect(d.allow).toBe(true);
  });

  it('grants a mapped scope only what it maps to', async () => {
    const d = await decide('PUT', '/posts/42', { scope: 'Orders.Read' });
    expect(d).toMatchObject({ allow: false, reason: 'missing_permission' });
  });

  it('still grants an unmapped scope that is a permission', async () => {
    const d = await decide('PUT', '/posts/42', { scope: 'write:posts:42' });
    expect(d.allow).toBe(true);
  });

  it('denies an unmapped scope that is not a permission', async () => {
    const d = await decide('GET', '/posts/42', { scope: 'Orders.Write' });
    expect(d).toMatchObject({ allow: false, reason: 'missing_permission' });
  });

  it('lets a scope mapped to a wildcard reach every route it covers', async () => {
    expect((await decide('POST', '/internal', { scope: 'admin' })).allow).toBe(true);
    expect((await decide('DELETE', '/posts/3', { scope: 'posts.write' })).allow).toBe(false);
    expect((await decide('PUT', '/posts/3', { scope: 'posts.write' })).allow).toBe(true);
  });

  it('lets a deny from a role in a space-separated roles claim win over a mapped wildcard', async () => {
    const claims = { scope: 'admin', roles: 'reader suspended' };
    const write = await decide('PUT', '/posts/3', claims);
    const read = await decide('GET', '/posts/3', claims);
    expect(write).toMatchObject({ allow: false, reason: 'explicit_deny' });
    expect(read.allow).toBe(true);
  });

  it('does not treat a scope named like an object member as mapped', async () => {
    const d = await decide('GET', '/posts/42', { scope: 'toString constructor hasOwnProperty' });
    expect(d).toMatchObject({ allow: false, reason: 'missing_permission' });
  });
});

describe('decide: claim names turned off with null', () => {
  it.each<[string, NonNullable<PolicyDocument['permissions']>, Record<string, unknown>]>([
    ['permissionsClaim', { permissionsClaim: null }, { permissions: ['read:posts'] }],
    ['scopeClaim', { scopeClaim: null }, { scope: 'read:posts' }],
  ])('grants nothing from the claim when %s is null', async (_name, permissions, claims) => {
    const policy = compilePolicy(blogPolicy({ permissions: { source: 'claims', ...permissions } }));
    gatehouse = new Gatehouse({ policy, now });

    const d = await decide('GET', '/posts/42', claims);

    expect(d).toMatchObject({ allow: false, reason: 'missing_permission' });
  });
});
