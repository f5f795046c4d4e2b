import { describe, expect, it } from 'vitest';
import { StoreError } from '../../../src/errors.ts';
import { compilePermissions, compileRoles } from '../../../src/permissions/index.ts';
import { MemoryStore } from '../../../src/stores/index.ts';
import type { Grant, RoleAssignment, RoleRecord, UserRecord } from '../../../src/types.ts';

function user(subject: string, tenant?: string, permission = 'read:posts'): UserRecord {
  const record = { subject, roles: [], grants: [{ permission }], denies: [] };
  return tenant === undefined ? record : { ...record, tenant };
}

const reader: RoleRecord = { name: 'reader', grants: [{ permission: 'read:posts' }], inherits: [] };

describe('MemoryStore', () => {
  it('returns the record stored for a subject', async () => {
    const store = new MemoryStore();
    store.putUser(user('alice'));

    const record = await store.getUser({ subject: 'alice' });

    expect(record).toEqual(user('alice'));
  });

  it('returns null for an unknown subject', async () => {
    const store = new MemoryStore();

    const record = await store.getUser({ subject: 'nobody' });

    expect(record).toBeNull();
  });

  it('keeps the same subject in different tenants apart', async () => {
    const store = new MemoryStore();
    store.putUser(user('alice', 'acme', 'read:acme'));
    store.putUser(user('alice', 'globex', 'read:globex'));

    const record = await store.getUser({ subject: 'alice', tenant: 'acme' });

    expect(record?.grants).toEqual([{ permission: 'read:acme' }]);
  });

  it('does not answer a tenanted lookup with the untenanted record', async () => {
    const store = new MemoryStore();
    store.putUser(user('alice'));

    const record = await store.getUser({ subject: 'alice', tenant: 'acme' });

    expect(record).toBeNull();
  });

  it('does not let a subject containing a colon reach another record', async () => {
    const store = new MemoryStore();
    store.putUser(user('alice'));

    const record = await store.getUser({ subject: 'alice:admin' });

    expect(record).toBeNull();
  });

  it('does not let a path-like subject reach another tenant', async () => {
    const store = new MemoryStore();
    store.putUser(user('x', 'acme'));

    const record = await store.getUser({ subject: '../x' });

    expect(record).toBeNull();
  });

  it('keeps a percent-encoded-looking subject apart from the raw one', async () => {
    const store = new MemoryStore();
    store.putUser(user('a:b', undefined, 'read:raw'));
    store.putUser(user('a%3Ab', undefined, 'read:encoded'));

    const record = await store.getUser({ subject: 'a:b' });

    expect(record?.grants).toEqual([{ permission: 'read:raw' }]);
  });

  it('forgets a deleted user', async () => {
    const store = new MemoryStore();
    store.putUser(user('alice'));

    store.deleteUser({ subject: 'alice' });

    await expect(store.getUser({ subject: 'alice' })).resolves.toBeNull();
  });

  it('returns the roles of the tenant asked for only', async () => {
    const store = new MemoryStore();
    store.putRole('acme', reader);
    store.putRole('globex', { name: 'writer', grants: [], inherits: [] });

    const roles = await store.getRoles('acme');

    expect(roles.map((role) => role.name)).toEqual(['reader']);
  });

  it('forgets a deleted role', async () => {
    const store = new MemoryStore();
    store.putRole(undefined, reader);

    store.deleteRole(undefined, 'reader');

    await expect(store.getRoles(undefined)).resolves.toEqual([]);
  });

  it('returns the same role list until the roles change', async () => {
    const store = new MemoryStore();
    store.putRole(undefined, reader);

    const first = await store.getRoles(undefined);
    const second = await store.getRoles(undefined);

    expect(second).toBe(first);
  });

  it('rejects every read with store_unavailable while failing', async () => {
    const store = new MemoryStore();
    store.putUser(user('alice'));

    store.failWith(new Error('connection reset'));

    await expect(store.getUser({ subject: 'alice' })).rejects.toMatchObject({
      name: 'StoreError',
      code: 'store_unavailable',
    });
    await expect(store.getRoles(undefined)).rejects.toBeInstanceOf(StoreError);
  });

  it('keeps the simulated error as the cause', async () => {
    const store = new MemoryStore();
    const outage = new Error('connection reset');

    store.failWith(outage);

    await expect(store.getUser({ subject: 'alice' })).rejects.toHaveProperty('cause', outage);
  });

  it('answers again after failWith(null)', async () => {
    const store = new MemoryStore();
    store.putUser(user('alice'));
    store.failWith(new Error('down'));

    store.failWith(null);

    await expect(store.getUser({ subject: 'alice' })).resolves.not.toBeNull();
  });

  it('returns records that cannot be mutated', async () => {
    const store = new MemoryStore();
    store.putUser(user('alice'));
    const record = (await store.getUser({ subject: 'alice' })) as unknown as {
      grants: { permission: string }[];
    };

    const mutate = () => {
      record.grants.push({ permission: 'admin:*' });
    };

    expect(mutate).toThrow(TypeError);
  });

  it('returns grants whose fields cannot be changed', async () => {
    const store = new MemoryStore();
    store.putUser(user('alice'));
    const record = (await store.getUser({ subject: 'alice' })) as unknown as {
      grants: { permission: string }[];
    };
    const grant = record.grants[0] as { permission: string };

    const mutate = () => {
      grant.permission = 'admin:*';
    };

    expect(mutate).toThrow(TypeError);
  });

  it('freezes conditions nested in a grant', async () => {
    const store = new MemoryStore();
    store.putUser({
      subject: 'alice',
      roles: [],
      grants: [{ permission: 'read:posts', when: { ip: ['10.0.0.0/8'] } }],
      denies: [],
    });

    const record = await store.getUser({ subject: 'alice' });

    expect(Object.isFrozen(record?.grants[0]?.when?.ip)).toBe(true);
  });

  it('is not changed by later edits to the object that was put', async () => {
    const store = new MemoryStore();
    const grants = [{ permission: 'read:posts' }];
    store.putUser({ subject: 'alice', roles: [], grants, denies: [] });

    grants.push({ permission: 'admin:*' });

    const record = await store.getUser({ subject: 'alice' });
    expect(record?.grants).toHaveLength(1);
  });

  it('returns role lists that cannot be mutated', async () => {
    const store = new MemoryStore();
    store.putRole(undefined, reader);
    const roles = (await store.getRoles(undefined)) as RoleRecord[];

    const mutate = () => {
      roles.push(reader);
    };

    expect(mutate).toThrow(TypeError);
  });
});

describe('MemoryStore records with unknown keys (a misspelt expires)', () => {
  const misspelt = { permission: 'read:posts', expires: 1 } as unknown as Grant;
  const roles = compileRoles([{ name: 'editor', grants: [{ permission: '*' }], inherits: [] }]);
  const NOW_MS = 9e12;
  const compile = (record: UserRecord | null) =>
    compilePermissions({ user: record, roles, now: NOW_MS });

  it('keeps the unknown key on a copied grant, frozen, instead of dropping it', async () => {
    const store = new MemoryStore();
    store.putUser({ subject: 'alice', roles: [], grants: [misspelt], denies: [] });

    const record = await store.getUser({ subject: 'alice' });

    expect(record?.grants).toEqual([{ permission: 'read:posts', expires: 1 }]);
    expect(Object.isFrozen(record?.grants[0])).toBe(true);
  });

  it('skips such an allow when permissions are compiled, with a warning', async () => {
    const store = new MemoryStore();
    store.putUser({ subject: 'alice', roles: [], grants: [misspelt], denies: [] });

    const set = compile(await store.getUser({ subject: 'alice' }));

    expect(set.check('read:posts', { now: NOW_MS, claims: {} }).effect).toBe('none');
    expect(set.warnings).toEqual([expect.stringContaining('user.grants[0].expires')]);
  });

  it('makes a record with such a deny invalid', async () => {
    const store = new MemoryStore();
    store.putUser({ subject: 'alice', roles: [], grants: [], denies: [misspelt] });
    const record = await store.getUser({ subject: 'alice' });

    const act = () => compile(record);

    expect(act).toThrow(StoreError);
    expect(act).toThrow(expect.objectContaining({ code: 'store_invalid_record' }));
  });

  it('makes a record with such a role assignment invalid', async () => {
    const store = new MemoryStore();
    const assignment = { role: 'editor', expires: 1 } as unknown as RoleAssignment;
    store.putUser({ subject: 'alice', roles: [assignment], grants: [], denies: [] });
    const record = await store.getUser({ subject: 'alice' });

    const act = () => compile(record);

    expect(record?.roles).toEqual([{ role: 'editor', expires: 1 }]);
    expect(act).toThrow(expect.objectContaining({ code: 'store_invalid_record' }));
  });

  it('keeps unknown keys on store role grants too', async () => {
    const store = new MemoryStore();
    store.putRole(undefined, { name: 'temp', grants: [misspelt], denies: [], inherits: [] });

    const [role] = await store.getRoles(undefined);
    const graph = compileRoles([], [role as RoleRecord]);

    expect(role?.grants).toEqual([{ permission: 'read:posts', expires: 1 }]);
    expect(graph.expand('temp')).toEqual([]);
    expect(graph.warnings).toEqual([expect.stringContaining('store roles.temp.grants[0].expires')]);
  });

  it('copies an unknown key named __proto__ as an own key, not a prototype', async () => {
    const store = new MemoryStore();
    const grant = JSON.parse('{"permission": "read:posts", "__proto__": {"expiresAt": 1}}');
    store.putUser({ subject: 'alice', roles: [], grants: [grant], denies: [] });

    const record = await store.getUser({ subject: 'alice' });
    const copy = record?.grants[0] as Grant;

    expect(Object.hasOwn(copy, '__proto__')).toBe(true);
    expect(copy.expiresAt).toBeUndefined();
    expect(compile(record).check('read:posts', { now: NOW_MS, claims: {} }).effect).toBe('none');
  });
});
