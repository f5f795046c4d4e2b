import { describe, expect, it } from 'vitest';
import { StoreError } from '../../../src/errors.ts';
import { MemoryStore } from '../../../src/stores/index.ts';
import type { RoleRecord, UserRecord } from '../../../src/types.ts';

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
