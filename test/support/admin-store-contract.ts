/**
 * The contract every AdminStore backend (memory, Workers KV, DynamoDB) must keep, as one suite
 * each backend's test file runs against a real instance: `describeAdminStore('kv', setup)`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PermissionAdmin } from '../../src/admin/operations.ts';
import type { AdminStore, AuditRecord } from '../../src/admin/types.ts';
import { seedMissing } from '../../src/cli/seed.ts';
import type { RoleRecord, UserRecord } from '../../src/types.ts';

export interface AdminStoreHarness {
  /** A fresh, empty store (each call may share the backend but must not share data). */
  create(): Promise<AdminStore>;
  /** Stops servers, disposes proxies. */
  close?(): Promise<void>;
}

const alice: UserRecord = {
  subject: 'alice',
  roles: [{ role: 'reader' }, { role: 'editor', expiresAt: 4_102_444_800 }],
  grants: [
    { permission: 'read:drafts', expiresAt: 4_102_444_800 },
    { permission: 'read:stats', when: { ip: ['10.0.0.0/8'], time: { days: ['mon'] } } },
    // The same permission with other conditions is another grant.
    { permission: 'read:stats', when: { ip: ['192.168.0.0/16'] } },
  ],
  denies: [{ permission: 'delete:posts:*' }],
};

const expired: UserRecord = {
  subject: 'old',
  roles: [{ role: 'reader', expiresAt: 1_000 }],
  grants: [{ permission: 'read:posts', expiresAt: 1_000 }],
  denies: [],
};

const tricky = ['a:b/c', '../x', 'ünï', '%41', '__proto__', 'a b'];

function audit(n: number, overrides: Partial<AuditRecord> = {}): AuditRecord {
  const time = new Date(Date.UTC(2026, 10, 20, 12, 0, n)).toISOString();
  return {
    id: `${time}~${String(n).padStart(12, '0')}`,
    time,
    actor: 'cli:test',
    via: 'cli',
    operation: 'grant',
    target: { subject: `s${n % 3}` },
    before: null,
    after: { roles: [], grants: [{ permission: `p:${n}` }], denies: [] },
    ...overrides,
  };
}

function sortUser(u: UserRecord) {
  const by = (a: { permission?: string; role?: string }, b: typeof a) =>
    JSON.stringify(a) < JSON.stringify(b) ? -1 : 1;
  return {
    ...u,
    roles: [...u.roles].sort(by),
    grants: [...u.grants].sort(by),
    denies: [...u.denies].sort(by),
  };
}

export function describeAdminStore(name: string, harness: AdminStoreHarness): void {
  describe(`AdminStore contract: ${name}`, () => {
    let store: AdminStore;
    beforeAll(async () => {
      store = await harness.create();
    });
    afterAll(async () => {
      await harness.close?.();
    });

    it('reads null for a subject it does not hold', async () => {
      expect(await store.readUser({ subject: 'nobody' })).toBeNull();
      expect(await store.readRoles(undefined)).toEqual([]);
    });

    it('writes and reads back a whole user record, conditions and expiry included', async () => {
      await store.writeUser({ subject: 'alice' }, null, alice);
      const read = await store.readUser({ subject: 'alice' });
      expect(read && sortUser(read)).toEqual(sortUser(alice));
    });

    it('keeps expired entries visible to management (they must stay revocable)', async () => {
      await store.writeUser({ subject: 'old' }, null, expired);
      const read = await store.readUser({ subject: 'old' });
      expect(read?.grants).toEqual(expired.grants);
      expect(read?.roles).toEqual(expired.roles);
    });

    it('replaces a record with the difference: removed grants are gone', async () => {
      const before = await store.readUser({ subject: 'alice' });
      const after: UserRecord = {
        ...alice,
        grants: alice.grants.filter((g) => g.permission !== 'read:stats'),
        roles: [{ role: 'reader' }],
      };
      await store.writeUser({ subject: 'alice' }, before, after);
      const read = await store.readUser({ subject: 'alice' });
      expect(read && sortUser(read)).toEqual(sortUser(after));
    });

    it('keeps an empty record ("known, no permissions") and deletes on null', async () => {
      const empty: UserRecord = { subject: 'empty', roles: [], grants: [], denies: [] };
      await store.writeUser({ subject: 'empty' }, null, empty);
      expect(await store.readUser({ subject: 'empty' })).toEqual(empty);
      await store.writeUser({ subject: 'empty' }, empty, null);
      expect(await store.readUser({ subject: 'empty' })).toBeNull();
    });

    it('keeps tenants apart, and subjects that look like keys stay themselves', async () => {
      const acme: UserRecord = {
        subject: 'alice',
        tenant: 'acme',
        roles: [],
        grants: [{ permission: 'read:acme' }],
        denies: [],
      };
      await store.writeUser({ subject: 'alice', tenant: 'acme' }, null, acme);
      expect((await store.readUser({ subject: 'alice', tenant: 'acme' }))?.grants).toEqual([
        { permission: 'read:acme' },
      ]);
      expect((await store.readUser({ subject: 'alice' }))?.grants).not.toContainEqual({
        permission: 'read:acme',
      });
      for (const subject of tricky) {
        const record: UserRecord = {
          subject,
          roles: [],
          grants: [{ permission: `read:${encodeURIComponent(subject).replace(/%/g, 'x')}` }],
          denies: [],
        };
        await store.writeUser({ subject }, null, record);
      }
      for (const subject of tricky) {
        expect((await store.readUser({ subject }))?.subject).toBe(subject);
      }
    });

    it("writes and replaces a tenant's role set", async () => {
      const roles: RoleRecord[] = [
        { name: 'auditor', grants: [{ permission: 'read:audit' }], denies: [], inherits: [] },
        {
          name: 'lead',
          grants: [{ permission: 'approve:*', when: { ip: ['10.0.0.0/8'] } }],
          denies: [{ permission: 'ops:shutdown' }],
          inherits: ['auditor'],
        },
      ];
      await store.writeRoles(undefined, [], roles);
      const read = [...(await store.readRoles(undefined))].sort((a, b) =>
        a.name < b.name ? -1 : 1,
      );
      expect(read.map((r) => ({ ...r, denies: r.denies ?? [] }))).toEqual(roles);
      await store.writeRoles(undefined, read, [roles[0]!]);
      expect((await store.readRoles(undefined)).map((r) => r.name)).toEqual(['auditor']);
      await store.writeRoles('acme', [], [roles[0]!]);
      expect((await store.readRoles('acme')).map((r) => r.name)).toEqual(['auditor']);
    });

    it('exports every user and role it holds', async () => {
      const snapshot = await store.exportAll();
      const keys = snapshot.users.map((u) => `${u.tenant ?? '-'}/${u.subject}`).sort();
      expect(keys).toEqual(
        ['-/alice', '-/old', 'acme/alice', ...tricky.map((s) => `-/${s}`)].sort(),
      );
      const roles = snapshot.roles.map((r) => `${r.tenant ?? '-'}/${r.role.name}`).sort();
      expect(roles).toEqual(['-/auditor', 'acme/auditor']);
    });

    it('appends audit records and lists them newest first, filtered', async () => {
      const audited = await harness.create();
      for (let n = 0; n < 7; n++) await audited.appendAudit(audit(n), 86_400 * 90);
      await audited.appendAudit(
        audit(7, { target: { tenant: 'acme', subject: 's1' } }),
        86_400 * 90,
      );
      await audited.appendAudit(
        audit(8, { operation: 'role.put', target: { role: 'lead' } }),
        86_400 * 90,
      );
      const since = Date.UTC(2026, 10, 20);
      const all = await audited.listAudit({ since });
      expect(all.map((r) => r.id)).toEqual(
        [...all.map((r) => r.id)].sort((a, b) => (a < b ? 1 : -1)),
      );
      expect(all).toHaveLength(9);
      expect(all[0]).toEqual(audit(8, { operation: 'role.put', target: { role: 'lead' } }));
      const s1 = await audited.listAudit({ since, subject: 's1' });
      expect(s1.map((r) => r.time.slice(17, 19))).toEqual(['07', '04', '01']);
      const acme = await audited.listAudit({ since, subject: 's1', tenant: 'acme' });
      expect(acme).toHaveLength(1);
      expect(await audited.listAudit({ since, role: 'lead' })).toHaveLength(1);
      const recent = await audited.listAudit({ since: Date.UTC(2026, 10, 20, 12, 0, 5) });
      expect(recent.map((r) => r.time.slice(17, 19))).toEqual(['08', '07', '06', '05']);
      expect(await audited.listAudit({ since, limit: 2 })).toHaveLength(2);
      expect(await audited.listAudit({ since: Date.UTC(2026, 10, 21) })).toEqual([]);
    });

    it('keeps a marker permanently, out of every export', async () => {
      const marked = await harness.create();
      expect(await marked.readMarker('seeded')).toBeNull();

      await marked.writeMarker('seeded', '{"seeded":["user -/s:a"]}');
      await marked.writeMarker('seeded', '{"seeded":["user -/s:b"]}');

      expect(await marked.readMarker('seeded')).toBe('{"seeded":["user -/s:b"]}');
      expect(await marked.exportAll()).toEqual({ users: [], roles: [] });
    });

    it('seeds demo data once, even after the audit trail is gone (issue 9 F6)', async () => {
      const backend = await harness.create();
      // The trail expired (90 days by default): only what the store itself keeps remains.
      const trailGone: AdminStore = {
        description: backend.description,
        readUser: (key) => backend.readUser(key),
        writeUser: (key, before, after) => backend.writeUser(key, before, after),
        readRoles: (tenant) => backend.readRoles(tenant),
        writeRoles: (tenant, before, after) => backend.writeRoles(tenant, before, after),
        exportAll: (progress) => backend.exportAll(progress),
        appendAudit: async () => {},
        listAudit: async () => [],
        readMarker: (name) => backend.readMarker(name),
        writeMarker: (name, value) => backend.writeMarker(name, value),
      };
      const admin = new PermissionAdmin({
        store: trailGone,
        policyRoles: [{ name: 'reader', grants: [], inherits: [] }],
        actor: 'npm start',
        via: 'cli',
      });
      const demo = JSON.stringify({
        roles: { auditor: { grants: ['read:audit'] } },
        users: { alice: { grants: ['read:drafts'] } },
        user_roles: { alice: ['reader'], carol: ['auditor'] },
        tenants: { acme: { users: { dave: { grants: ['read:acme'] } } } },
      });
      const seed = () => seedMissing(admin, demo, 'demo.json', ['reader']);
      const first = await seed();
      // The store in real use: the demo subjects and role deleted, a real subject added.
      await admin.importData(JSON.stringify({ users: { erin: { grants: ['read:posts'] } } }), {
        replace: true,
      });

      const second = await seed();

      expect(first.seeded).toEqual(['alice', 'carol', 'dave (tenant acme)', 'role auditor']);
      expect(second.seeded).toEqual([]);
      const after = await backend.exportAll();
      expect(after.users.map((u) => u.subject)).toEqual(['erin']);
      expect(after.roles).toEqual([]);
    });
  });
}
