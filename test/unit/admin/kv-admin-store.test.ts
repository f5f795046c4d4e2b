import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PermissionAdmin } from '../../../src/admin/operations.ts';
import type { AuditRecord } from '../../../src/admin/types.ts';
import { type LocalKv, openLocalKv } from '../../../src/cli/kv-targets.ts';
import { AdminError, StoreError } from '../../../src/errors.ts';
import { parsePermissionData } from '../../../src/stores/permission-data.ts';
import type { Grant, RoleRecord, UserRecord } from '../../../src/types.ts';
import { type KvAdminNamespace, KvAdminStore } from '../../../src/workers/kv-admin-store.ts';
import { KvStore, kvKeys, permissionKvEntries, seedKv } from '../../../src/workers/kv-store.ts';
import { type AdminStoreHarness, describeAdminStore } from '../../support/admin-store-contract.ts';

const configPath = fileURLToPath(new URL('../../../wrangler.toml', import.meta.url));

/** Real local KV (workerd through wrangler's platform proxy), each in its own temporary state. */
function localKvPool() {
  const open: { kv: LocalKv; dir: string }[] = [];
  return {
    async open(): Promise<LocalKv> {
      const dir = await mkdtemp(join(tmpdir(), 'gatehouse-kv-test-'));
      const kv = await openLocalKv({ configPath, persistTo: dir });
      open.push({ kv, dir });
      return kv;
    },
    async close(): Promise<void> {
      for (const { kv, dir } of open.splice(0)) {
        await kv.close();
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
}

const contractPool = localKvPool();
const harness: AdminStoreHarness = {
  create: async () => new KvAdminStore((await contractPool.open()).namespace),
  close: () => contractPool.close(),
};
describeAdminStore('kv (local, getPlatformProxy)', harness);

/** The real namespace, counting the values read through it. */
function counting(kv: KvAdminNamespace) {
  const reads: string[] = [];
  const namespace: KvAdminNamespace = {
    get: (key, type) => {
      reads.push(key);
      return kv.get(key, type);
    },
    put: (key, value, options) => kv.put(key, value, options),
    delete: (key) => kv.delete(key),
    list: (options) => kv.list(options),
  };
  return { namespace, reads };
}

function auditRecord(second: number, target: AuditRecord['target']): AuditRecord {
  const time = new Date(Date.UTC(2026, 10, 20, 12, 0, second)).toISOString();
  return {
    id: `${time}~${String(second).padStart(12, '0')}`,
    time,
    actor: 'cli:test',
    via: 'cli',
    operation: 'grant',
    target,
    before: null,
    after: { roles: [], grants: [{ permission: 'read:x' }], denies: [] },
  };
}

describe('KvAdminStore on local KV', () => {
  const pool = localKvPool();
  let kv: LocalKv;
  let store: KvAdminStore;

  beforeAll(async () => {
    kv = await pool.open();
    store = new KvAdminStore(kv.namespace);
  });
  afterAll(() => pool.close());

  it('writes users the edge store reads back exactly: tenant, conditions, expiry', async () => {
    const record: UserRecord = {
      subject: 'dana',
      tenant: 'acme',
      roles: [{ role: 'reader' }, { role: 'editor', expiresAt: 4_102_444_800 }],
      grants: [
        { permission: 'read:posts' },
        { permission: 'read:drafts', expiresAt: 4_102_444_800 },
        {
          permission: 'read:stats',
          when: { ip: ['10.0.0.0/8'], time: { days: ['mon'], timezone: 'Europe/Berlin' } },
        },
      ],
      denies: [{ permission: 'delete:posts:*', when: { country: ['DE'] } }],
    };

    await store.writeUser({ subject: 'dana', tenant: 'acme' }, null, record);

    const edge = await new KvStore(kv.namespace).getUser({ subject: 'dana', tenant: 'acme' });
    expect(edge).toEqual(record);
    expect(await new KvStore(kv.namespace).getUser({ subject: 'dana' })).toBeNull();
  });

  it('stores the permission-file shape seeding writes: expires in seconds, plain grants as text', async () => {
    const file = {
      users: {
        erin: {
          grants: ['read:posts', { permission: 'read:drafts', expires: 4_102_444_800 }],
          denies: ['write:posts'],
        },
      },
      user_roles: { erin: ['reader', { role: 'editor', expires: 4_102_444_800 }] },
    };
    const seeded = permissionKvEntries(JSON.stringify(file));
    const record: UserRecord = {
      subject: 'erin',
      roles: [{ role: 'reader' }, { role: 'editor', expiresAt: 4_102_444_800 }],
      grants: [
        { permission: 'read:posts' },
        { permission: 'read:drafts', expiresAt: 4_102_444_800 },
      ],
      denies: [{ permission: 'write:posts' }],
    };

    await store.writeUser({ subject: 'erin' }, null, record);

    const stored = await kv.namespace.get(kvKeys.user({ subject: 'erin' }), 'text');
    expect(seeded).toEqual([{ key: 'user/-/s:erin', value: stored }]);
    expect(JSON.parse(stored!)).toEqual({
      roles: ['reader', { role: 'editor', expires: 4_102_444_800 }],
      grants: ['read:posts', { permission: 'read:drafts', expires: 4_102_444_800 }],
      denies: ['write:posts'],
    });
  });

  it('keeps an expired grant visible to management while the edge ignores it', async () => {
    const record: UserRecord = {
      subject: 'fred',
      roles: [],
      grants: [{ permission: 'read:posts', expiresAt: 1_000 }],
      denies: [],
    };

    await store.writeUser({ subject: 'fred' }, null, record);

    expect((await store.readUser({ subject: 'fred' }))?.grants).toEqual(record.grants);
  });

  it('writes an emptied subject as {} so the edge knows it has no permissions', async () => {
    const empty: UserRecord = { subject: 'gail', roles: [], grants: [], denies: [] };

    await store.writeUser({ subject: 'gail' }, null, empty);

    expect(await kv.namespace.get('user/-/s:gail', 'text')).toBe('{}');
    expect(await new KvStore(kv.namespace).getUser({ subject: 'gail' })).toEqual(empty);
  });

  it("writes a tenant's roles the edge store reads, and deletes the key for an empty set", async () => {
    const roles: RoleRecord[] = [
      {
        name: 'lead',
        grants: [{ permission: 'approve:*', when: { ip: ['10.0.0.0/8'] } }],
        denies: [{ permission: 'ops:shutdown' }],
        inherits: ['reader'],
      },
      { name: 'reader', grants: [{ permission: 'read:posts' }], denies: [], inherits: [] },
    ];

    await store.writeRoles('t/1', [], roles);
    const edge = await new KvStore(kv.namespace).getRoles('t/1');
    await store.writeRoles('t/1', roles, []);

    expect(edge).toEqual(roles);
    expect(await kv.namespace.get(kvKeys.roles('t/1'), 'text')).toBeNull();
  });

  it('refuses a store role name the edge cannot read back', async () => {
    const role: RoleRecord = { name: 'constructor', grants: [], inherits: [] };

    const write = store.writeRoles('reserved', [], [role]);

    await expect(write).rejects.toMatchObject({ code: 'invalid_request', field: 'name' });
    expect(await kv.namespace.get(kvKeys.roles('reserved'), 'text')).toBeNull();
  });

  it('exports subjects and tenants that look like keys as themselves', async () => {
    const subjects = ['x/s:alice', '%41', '\ud800', '\ufeffbom', 'a b', '-'];
    const tenant = 't:-/s:';
    for (const subject of subjects) {
      const record: UserRecord = { subject, tenant, roles: [], grants: [], denies: [] };
      await store.writeUser({ subject, tenant }, null, record);
    }

    const snapshot = await store.exportAll();

    const exported = snapshot.users.filter((u) => u.tenant === tenant).map((u) => u.subject);
    expect(exported.sort()).toEqual([...subjects].sort());
  });

  it('skips keys under user/ that no subject encodes to', async () => {
    await kv.namespace.put('user/by-hand', '{}');

    const snapshot = await store.exportAll();

    expect(snapshot.users.map((u) => u.subject)).not.toContain('by-hand');
  });

  it('reports export progress up to the number of records', async () => {
    const calls: [number, number | undefined][] = [];

    const snapshot = await store.exportAll((done, total) => calls.push([done, total]));

    const total = snapshot.users.length + new Set(snapshot.roles.map((r) => r.tenant)).size;
    expect(calls.at(-1)).toEqual([total, total]);
  });

  it('refuses, before writing, a subject whose key would pass 512 bytes', async () => {
    const longest = 'a'.repeat(512 - 'user/-/s:'.length);
    const tooLong = `${longest}a`;
    const wide = 'é'.repeat(100); // 6 bytes each once encoded

    await store.writeUser({ subject: longest }, null, {
      subject: longest,
      roles: [],
      grants: [],
      denies: [],
    });
    const refusals = await Promise.all(
      [tooLong, wide].map((subject) =>
        store
          .writeUser({ subject }, null, { subject, roles: [], grants: [], denies: [] })
          .catch((error: unknown) => error),
      ),
    );

    expect(await store.readUser({ subject: longest })).not.toBeNull();
    for (const error of refusals) {
      expect(error).toBeInstanceOf(AdminError);
      expect(error).toMatchObject({ code: 'invalid_request', field: 'subject' });
    }
    expect(await store.readUser({ subject: tooLong })).toBeNull();
  });

  it('refuses a grant with a key the stored form cannot carry, instead of dropping it', async () => {
    const misspelt = { permission: 'read:posts', expires: 1 } as unknown as Grant;
    const record: UserRecord = { subject: 'typo', roles: [], grants: [misspelt], denies: [] };

    const error = await store.writeUser({ subject: 'typo' }, null, record).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(AdminError);
    expect(error).toMatchObject({ code: 'invalid_request', field: 'grants[0].expires' });
    expect(await store.readUser({ subject: 'typo' })).toBeNull();
  });

  it('reports a value that is not JSON, or not a user, as an invalid record naming the key', async () => {
    await kv.namespace.put('user/-/s:broken', 'not json');
    await kv.namespace.put('user/-/s:odd', '{"grant":["read:posts"]}');

    const errors = await Promise.all(
      ['broken', 'odd'].map((subject) =>
        store.readUser({ subject }).catch((error: unknown) => error),
      ),
    );
    const exported = await store.exportAll().catch((error: unknown) => error);
    await kv.namespace.delete('user/-/s:broken');
    await kv.namespace.delete('user/-/s:odd');

    for (const error of [...errors, exported]) {
      expect(error).toBeInstanceOf(StoreError);
      expect(error).toMatchObject({ code: 'store_invalid_record' });
    }
    expect((errors[0] as Error).message).toContain('user/-/s:broken');
    expect((errors[0] as Error).message).not.toContain('not json');
  });

  it('reports a failing binding as store_unavailable without quoting it', async () => {
    const failing: KvAdminNamespace = {
      ...kv.namespace,
      get: async () => {
        throw new Error('backend said: account 1234 over quota');
      },
      list: (options) => kv.namespace.list(options),
    };

    const error = await new KvAdminStore(failing)
      .readUser({ subject: 'dana' })
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(StoreError);
    expect(error).toMatchObject({ code: 'store_unavailable' });
    expect((error as Error).message).not.toContain('1234');
    expect(((error as Error).cause as Error).message).toContain('1234');
  });
});

describe('KvAdminStore audit on local KV', () => {
  const pool = localKvPool();
  let kv: LocalKv;

  beforeAll(async () => {
    kv = await pool.open();
  });
  afterAll(() => pool.close());

  it('keeps each record for the retention: its key expires (KV minimum 60 s)', async () => {
    const store = new KvAdminStore(kv.namespace);
    const now = Date.now() / 1000;

    await store.appendAudit(auditRecord(1, { subject: 'long' }), 86_400 * 90);
    await store.appendAudit(auditRecord(2, { subject: 'short' }), 5);

    const { keys } = await kv.namespace.list({ prefix: 'audit/' });
    expect(keys.map((k) => k.name)).toEqual([
      `audit/${auditRecord(1, {}).id}`,
      `audit/${auditRecord(2, {}).id}`,
    ]);
    expect(keys[0]!.expiration).toBeGreaterThanOrEqual(Math.floor(now + 86_400 * 90) - 5);
    expect(keys[0]!.expiration).toBeLessThanOrEqual(Math.ceil(now + 86_400 * 90) + 5);
    expect(keys[1]!.expiration).toBeGreaterThanOrEqual(Math.floor(now + 60) - 5);
    expect(keys[0]!.metadata).toEqual({ target: { subject: 'long' } });
  });

  it('reads only records at or after `since` that match the target filter', async () => {
    const { namespace, reads } = counting(kv.namespace);
    const store = new KvAdminStore(namespace);
    for (let second = 10; second < 20; second++) {
      await store.appendAudit(
        auditRecord(second, { tenant: 'acme', subject: `s${second % 2}` }),
        3600,
      );
    }

    const recent = await store.listAudit({ since: Date.UTC(2026, 10, 20, 12, 0, 16) });
    const readsRecent = reads.splice(0).length;
    const s1 = await store.listAudit({ since: Date.UTC(2026, 10, 20, 12, 0, 10), subject: 's1' });
    const readsS1 = reads.splice(0).length;
    const two = await new KvAdminStore(namespace, { concurrency: 2 }).listAudit({
      since: 0,
      limit: 2,
      tenant: 'acme',
    });
    const readsTwo = reads.splice(0).length;

    expect(recent.map((r) => r.time.slice(17, 19))).toEqual(['19', '18', '17', '16']);
    expect(readsRecent).toBe(4);
    expect(s1.map((r) => r.time.slice(17, 19))).toEqual(['19', '17', '15', '13', '11']);
    expect(readsS1).toBe(5);
    expect(two.map((r) => r.time.slice(17, 19))).toEqual(['19', '18']);
    // One batch (the concurrency) from the newest; older keys are never read.
    expect(readsTwo).toBe(2);
  });

  it('reports an audit value that is not a record as an invalid record', async () => {
    const store = new KvAdminStore(kv.namespace);
    await kv.namespace.put('audit/2026-11-21T00:00:00.000Z~bad', '[1]');

    const error = await store.listAudit({ since: 0 }).catch((e: unknown) => e);
    await kv.namespace.delete('audit/2026-11-21T00:00:00.000Z~bad');

    expect(error).toMatchObject({ code: 'store_invalid_record' });
  });
});

describe('PermissionAdmin on local KV seeded like npm start', () => {
  const pool = localKvPool();
  let kv: LocalKv;

  beforeAll(async () => {
    kv = await pool.open();
  });
  afterAll(() => pool.close());

  it('exports the seeded demo and imports it back without writing anything', async () => {
    const demo = await readFile(new URL('../../../demo/permissions.json', import.meta.url), 'utf8');
    await seedKv(kv.namespace, demo);
    const admin = new PermissionAdmin({
      store: new KvAdminStore(kv.namespace),
      policyRoles: [],
      actor: 'cli:test',
      via: 'cli',
    });

    const exported = await admin.exportData();
    const imported = await admin.importData(JSON.stringify(exported));

    expect(exported).toEqual(parsePermissionData(demo));
    expect(imported).toMatchObject({ written: 0, deleted: 0, audit: null });
  });

  it('grants, revokes and audits through KV; the edge store follows each change', async () => {
    const admin = new PermissionAdmin({
      store: new KvAdminStore(kv.namespace),
      policyRoles: [],
      actor: 'cli:test',
      via: 'cli',
    });
    const edge = new KvStore(kv.namespace);

    await admin.grant({ subject: 'bob' }, { permission: 'read:stats' });
    const granted = await edge.getUser({ subject: 'bob' });
    await admin.revoke({ subject: 'bob' }, 'read:stats');
    const revoked = await edge.getUser({ subject: 'bob' });
    const trail = await admin.audit({ since: Date.now() - 60_000, subject: 'bob' });

    expect(granted?.grants).toEqual([{ permission: 'read:stats' }]);
    expect(granted?.denies).toEqual([{ permission: 'delete:posts:*' }]);
    expect(revoked?.grants).toEqual([]);
    expect(trail.map((r) => r.operation)).toEqual(['revoke', 'grant']);
  });
});
