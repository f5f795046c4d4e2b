import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/errors.ts';
import { ClaimsStore, type ClaimsStoreOptions } from '../../../src/stores/index.ts';
import type { Principal } from '../../../src/types.ts';

function principal(
  claims: Record<string, unknown>,
  scopes: string[] = [],
  tenant?: string,
): Principal {
  const base = {
    issuer: 'https://issuer.example',
    issuerKind: 'external' as const,
    subject: 'alice',
    scopes,
    claims,
    actors: [],
    expiresAt: 2_000_000_000,
  };
  return tenant === undefined ? base : { ...base, tenant };
}

const alice = { subject: 'alice' };

describe('ClaimsStore', () => {
  it('grants each entry of the permissions claim', async () => {
    const store = new ClaimsStore();

    const record = await store.getUser(
      alice,
      principal({ permissions: ['read:posts', 'write:posts'] }),
    );

    expect(record?.grants).toEqual([{ permission: 'read:posts' }, { permission: 'write:posts' }]);
  });

  it('grants each scope of a space-separated scope claim', async () => {
    const store = new ClaimsStore({ permissionsClaim: null });

    const record = await store.getUser(alice, principal({ scope: 'read:posts  write:posts' }));

    expect(record?.grants).toEqual([{ permission: 'read:posts' }, { permission: 'write:posts' }]);
  });

  it('grants each scope of an scp array', async () => {
    const store = new ClaimsStore({ permissionsClaim: null });

    const record = await store.getUser(alice, principal({ scp: ['read:posts', 'write:posts'] }));

    expect(record?.grants).toEqual([{ permission: 'read:posts' }, { permission: 'write:posts' }]);
  });

  it("grants the principal's scopes when the scope claim itself was not kept", async () => {
    const store = new ClaimsStore({ permissionsClaim: null });

    const record = await store.getUser(alice, principal({}, ['read:posts']));

    expect(record?.grants).toEqual([{ permission: 'read:posts' }]);
  });

  it('reads a custom scope claim but not scp', async () => {
    const store = new ClaimsStore({ permissionsClaim: null, scopeClaim: 'perms' });

    const record = await store.getUser(
      alice,
      principal({ perms: 'read:posts', scp: ['admin:*'] }, ['admin:*']),
    );

    expect(record?.grants).toEqual([{ permission: 'read:posts' }]);
  });

  it('grants nothing from scopes when scopeClaim is null', async () => {
    const store = new ClaimsStore({ scopeClaim: null });

    const record = await store.getUser(alice, principal({ scope: 'read:posts' }, ['read:posts']));

    expect(record?.grants).toEqual([]);
  });

  it('assigns the roles named in the roles claim', async () => {
    const store = new ClaimsStore({ rolesClaim: 'roles' });

    const record = await store.getUser(alice, principal({ roles: ['editor', 'reader'] }));

    expect(record?.roles).toEqual([{ role: 'editor' }, { role: 'reader' }]);
  });

  it.each([
    ['an ideographic space', 'x\u3000admin'],
    ['a no-break space', 'x\u00a0admin'],
    ['a tab', 'x\tadmin'],
    ['a line feed', 'x\nadmin'],
  ])('splits a string claim on U+0020 only: %s never separates a role', async (_name, value) => {
    const store = new ClaimsStore({ rolesClaim: 'roles', scopeClaim: 'scope' });

    const record = await store.getUser(alice, principal({ roles: value, scope: value }));

    expect(record?.roles).toEqual([]);
    expect(record?.grants).toEqual([]);
  });

  it('assigns no roles by default', async () => {
    const store = new ClaimsStore();

    const record = await store.getUser(alice, principal({ roles: ['admin'] }));

    expect(record?.roles).toEqual([]);
  });

  it('ignores entries that are not usable strings', async () => {
    const store = new ClaimsStore({ rolesClaim: 'roles' });

    const record = await store.getUser(
      alice,
      principal({
        permissions: ['read:posts', 42, null, { p: 'x' }, '', 'a b'],
        roles: [7, 'editor'],
      }),
    );

    expect(record).toMatchObject({
      grants: [{ permission: 'read:posts' }],
      roles: [{ role: 'editor' }],
    });
  });

  it('ignores a permissions claim that is not an array', async () => {
    const store = new ClaimsStore();

    const record = await store.getUser(alice, principal({ permissions: 'admin:*' }));

    expect(record?.grants).toEqual([]);
  });

  it('never produces denies', async () => {
    const store = new ClaimsStore();

    const record = await store.getUser(
      alice,
      principal({ permissions: ['read:posts'], denies: ['x'] }),
    );

    expect(record?.denies).toEqual([]);
  });

  it('returns null without a principal', async () => {
    const store = new ClaimsStore();

    const record = await store.getUser(alice);

    expect(record).toBeNull();
  });

  it('returns null when the principal is a different subject', async () => {
    const store = new ClaimsStore();

    const record = await store.getUser({ subject: 'bob' }, principal({ permissions: ['admin:*'] }));

    expect(record).toBeNull();
  });

  it("carries the principal's tenant", async () => {
    const store = new ClaimsStore();

    const record = await store.getUser(
      { subject: 'alice', tenant: 'acme' },
      principal({}, [], 'acme'),
    );

    expect(record?.tenant).toBe('acme');
  });

  it('returns no store roles', async () => {
    const store = new ClaimsStore();

    const roles = await store.getRoles('acme');

    expect(roles).toEqual([]);
  });

  it('declares itself not cacheable', () => {
    const store = new ClaimsStore();

    const cacheable = store.cacheable;

    expect(cacheable).toBe(false);
  });

  it('returns a frozen record', async () => {
    const store = new ClaimsStore();

    const record = await store.getUser(alice, principal({ permissions: ['read:posts'] }));

    expect(Object.isFrozen(record?.grants)).toBe(true);
  });

  it('assigns the roles of a space-separated roles claim', async () => {
    const store = new ClaimsStore({ rolesClaim: 'roles' });

    const record = await store.getUser(alice, principal({ roles: ' editor  reader ' }));

    expect(record?.roles).toEqual([{ role: 'editor' }, { role: 'reader' }]);
  });

  it.each<[string, ClaimsStoreOptions, Record<string, unknown>, string[]]>([
    ['a scope string', {}, { scope: 'openid read' }, ['openid', 'read:posts', 'read:comments']],
    ['an scp array', {}, { scp: ['read'] }, ['read:posts', 'read:comments']],
    ['an scp string', {}, { scp: 'read' }, ['read:posts', 'read:comments']],
    [
      'a custom scope claim',
      { scopeClaim: 'perms' },
      { perms: ['read'] },
      ['read:posts', 'read:comments'],
    ],
  ])(
    'grants the permissions a scope maps to, from %s',
    async (_name, options, claims, expected) => {
      const store = new ClaimsStore({
        permissionsClaim: null,
        ...options,
        scopes: { read: ['read:posts', 'read:comments'] },
      });

      const record = await store.getUser(alice, principal(claims));

      expect(record?.grants.map((g) => g.permission)).toEqual(expected);
    },
  );

  it("grants the principal's mapped scopes when the scope claim was not kept", async () => {
    const store = new ClaimsStore({ scopes: { 'Orders.Read': ['read:orders'] } });

    const record = await store.getUser(alice, principal({}, ['Orders.Read']));

    expect(record?.grants).toEqual([{ permission: 'read:orders' }]);
  });

  it('grants a mapped permission-shaped scope its mapping instead of itself', async () => {
    const store = new ClaimsStore({ scopes: { 'write:posts': ['write:drafts'] } });

    const record = await store.getUser(alice, principal({ scope: 'write:posts read:posts' }));

    expect(record?.grants).toEqual([{ permission: 'write:drafts' }, { permission: 'read:posts' }]);
  });

  it('maps a scope to a wildcard grant', async () => {
    const store = new ClaimsStore({ scopes: { admin: ['*'], 'Orders.All': ['*:orders'] } });

    const record = await store.getUser(alice, principal({ scope: 'admin Orders.All' }));

    expect(record?.grants).toEqual([{ permission: '*' }, { permission: '*:orders' }]);
  });

  it('never maps a scope named like an inherited object member', async () => {
    const store = new ClaimsStore({ scopes: { read: ['read:posts'] } });

    const record = await store.getUser(
      alice,
      principal({ scope: 'toString hasOwnProperty valueOf' }),
    );

    expect(record?.grants.map((g) => g.permission)).toEqual([
      'toString',
      'hasOwnProperty',
      'valueOf',
    ]);
  });

  it.each<[string, unknown, string]>([
    ['a key with a space', { 'read posts': ['read:posts'] }, 'claimsStore.scopes.read posts'],
    ['a key with a quote', { 'a"b': ['read:posts'] }, 'claimsStore.scopes.a"b'],
    ['a non-ASCII key', { lire·tout: ['read:posts'] }, 'claimsStore.scopes.lire·tout'],
    ['an empty list', { read: [] }, 'claimsStore.scopes.read'],
    ['a list that is a string', { read: 'read:posts' }, 'claimsStore.scopes.read'],
    [
      'a target that is not a permission',
      { read: ['read:posts', 'read'] },
      'claimsStore.scopes.read[1]',
    ],
    ['a partial-segment wildcard', { read: ['read:post*'] }, 'claimsStore.scopes.read[0]'],
    ['a non-string target', { read: [7] }, 'claimsStore.scopes.read[0]'],
    ['a list instead of a map', [['read', 'read:posts']], 'claimsStore.scopes'],
  ])('rejects a scope mapping with %s, naming the field', (_name, scopes, field) => {
    const options = { scopes } as unknown as ClaimsStoreOptions;

    const build = () => new ClaimsStore(options);

    expect(build).toThrow(expect.objectContaining({ code: 'invalid_config', field }));
  });

  it('rejects a scope mapping when no scope claim is read', () => {
    const options = { scopeClaim: null, scopes: { read: ['read:posts'] } };

    const build = () => new ClaimsStore(options);

    expect(build).toThrow(expect.objectContaining({ field: 'claimsStore.scopes' }));
  });

  it('rejects an empty claim name with a ConfigError naming the option', () => {
    const options = { rolesClaim: '' };

    const build = () => new ClaimsStore(options);

    expect(build).toThrow(expect.objectContaining({ field: 'claimsStore.rolesClaim' }));
    expect(build).toThrow(ConfigError);
  });
});
