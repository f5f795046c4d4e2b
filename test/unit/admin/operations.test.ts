import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { explainRequest, formatExplain } from '../../../src/admin/explain.ts';
import { MemoryAdminStore } from '../../../src/admin/memory.ts';
import { PermissionAdmin } from '../../../src/admin/operations.ts';
import { parseConditions } from '../../../src/cli/manage.ts';
import { AdminError, ConfigError, StoreError } from '../../../src/errors.ts';
import { compilePolicy, Gatehouse, type PolicyDocument } from '../../../src/policy/index.ts';
import type { SubjectKey, UserRecord } from '../../../src/types.ts';
import { AUDIENCE, createTestIssuer, type TestIssuer } from '../../support/issuer.ts';

const START = Date.parse('2026-11-23T12:00:00Z');
let clock = START;
const now = () => clock;

let idp: TestIssuer;
let backend: MemoryAdminStore;
let admin: PermissionAdmin;
let gatehouse: Gatehouse;

function policyDoc(): PolicyDocument {
  return {
    version: 1,
    issuers: [
      {
        issuer: idp.issuer,
        audiences: [AUDIENCE],
        algorithms: ['ES256'],
        keys: { jwks: idp.jwks },
      },
    ],
    // No caching: every decision in these tests sees the store as it is now.
    cache: { ttlSeconds: 0, negativeTtlSeconds: 0 },
    roles: {
      reader: { grants: ['read:posts'] },
      editor: { inherits: ['reader'], grants: ['write:posts:*'] },
    },
    routes: [
      { method: 'GET', path: '/posts/:id', require: ['read:posts'] },
      { method: 'GET', path: '/stats', require: ['read:stats'] },
      { method: 'PUT', path: '/posts/:id', require: ['write:posts:{id}'] },
      { method: 'GET', path: '/public', public: true },
    ],
  };
}

const alice: SubjectKey = { subject: 'alice' };

async function allowed(method: string, path: string, subject = 'alice', ip?: string) {
  const token = await idp.mint({ sub: subject });
  const decision = await gatehouse.decide({
    method,
    path,
    authorization: `Bearer ${token}`,
    ...(ip !== undefined && { ip }),
  });
  return decision.allow;
}

beforeAll(async () => {
  idp = await createTestIssuer({ now });
});

beforeEach(() => {
  clock = START;
  backend = new MemoryAdminStore(undefined, now);
  const policy = compilePolicy(policyDoc());
  admin = new PermissionAdmin({
    store: backend,
    policyRoles: policy.roles,
    actor: 'cli:test',
    via: 'cli',
    now,
  });
  gatehouse = new Gatehouse({ policy, store: backend.store, now });
});

describe('grant and revoke', () => {
  it('a grant applies at the next decision and a revoke removes it', async () => {
    expect(await allowed('GET', '/stats')).toBe(false);
    const granted = await admin.grant(alice, { permission: 'read:stats' });
    expect(granted.changed).toBe(true);
    expect(await allowed('GET', '/stats')).toBe(true);
    await admin.revoke(alice, 'read:stats');
    expect(await allowed('GET', '/stats')).toBe(false);
  });

  it('audits each change with actor, time, operation, target, before and after', async () => {
    await admin.grant(alice, { permission: 'read:stats' });
    clock += 1000;
    await admin.revoke(alice, 'read:stats');
    const trail = await admin.audit({ since: START });
    expect(trail.map((r) => r.operation)).toEqual(['revoke', 'grant']);
    const [revoke, grant] = trail;
    expect(grant).toMatchObject({
      actor: 'cli:test',
      via: 'cli',
      time: new Date(START).toISOString(),
      target: { subject: 'alice' },
      before: null,
      after: { grants: [{ permission: 'read:stats' }], roles: [], denies: [] },
    });
    expect(revoke?.before).toEqual(grant?.after);
    expect(revoke?.after).toEqual({ roles: [], grants: [], denies: [] });
  });

  it('granting what is granted changes nothing and is not audited', async () => {
    await admin.grant(alice, { permission: 'read:stats' });
    const again = await admin.grant(alice, { permission: 'read:stats' });
    expect(again).toMatchObject({ changed: false, audit: null });
    expect(await admin.audit({ since: START })).toHaveLength(1);
  });

  it('re-granting with a new expiry replaces the grant; other conditions add one', async () => {
    const until = Math.floor(START / 1000) + 3600;
    await admin.grant(alice, { permission: 'read:stats', expiresAt: until });
    await admin.grant(alice, { permission: 'read:stats', expiresAt: until + 60 });
    await admin.grant(alice, { permission: 'read:stats', when: { ip: ['10.0.0.0/8'] } });
    const record = await backend.readUser(alice);
    expect(record?.grants).toEqual([
      { permission: 'read:stats', expiresAt: until + 60 },
      { permission: 'read:stats', when: { ip: ['10.0.0.0/8'] } },
    ]);
  });

  it('an expiring grant stops applying when it expires', async () => {
    await admin.grant(alice, { permission: 'read:stats', expiresAt: START / 1000 + 60 });
    expect(await allowed('GET', '/stats')).toBe(true);
    clock += 61_000;
    expect(await allowed('GET', '/stats')).toBe(false);
  });

  it('revoking what is not granted is not_found, names what there is, and writes nothing', async () => {
    await admin.grant(alice, { permission: 'read:drafts' });
    const error = await admin.revoke(alice, 'read:draft').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AdminError);
    expect(error).toMatchObject({ code: 'not_found' });
    expect((error as Error).message).toContain('read:drafts');
    expect(await admin.audit({ since: START })).toHaveLength(1);
  });

  it.each([
    [{ permission: 'read stats' }, 'grant'],
    [{ permission: 'read:stats', when: { ip: ['10.0.0.0/33'] } }, 'grant.when.ip[0]'],
    [{ permission: 'read:stats', when: {} }, 'grant.when'],
    [{ permission: 'read:stats', when: { ipRange: ['10.0.0.0/8'] } }, 'grant.when'],
    [{ permission: 'read:stats', expiresAt: START / 1000 - 1 }, 'grant.expires'],
  ])('refuses an invalid grant %j naming %s, and writes nothing', async (grant, field) => {
    const error = await admin
      .grant(alice, grant as Parameters<PermissionAdmin['grant']>[1])
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AdminError);
    expect(error).toMatchObject({ code: 'invalid_request' });
    expect((error as AdminError).field?.startsWith(field)).toBe(true);
    expect(await backend.readUser(alice)).toBeNull();
    expect(await admin.audit({ since: START })).toEqual([]);
  });
});

describe('deny and undeny', () => {
  it('a deny beats a role grant; undeny lifts it', async () => {
    await admin.assign(alice, 'reader');
    expect(await allowed('GET', '/posts/1')).toBe(true);
    await admin.deny(alice, { permission: 'read:posts' });
    expect(await allowed('GET', '/posts/1')).toBe(false);
    await admin.undeny(alice, 'read:posts');
    expect(await allowed('GET', '/posts/1')).toBe(true);
    await expect(admin.undeny(alice, 'read:posts')).rejects.toMatchObject({ code: 'not_found' });
  });
});

describe('roles', () => {
  it('assigns a policy role, refuses an unknown one, and unassigns', async () => {
    await admin.assign(alice, 'editor');
    expect(await allowed('PUT', '/posts/7')).toBe(true);
    await expect(admin.assign(alice, 'editr')).rejects.toMatchObject({
      code: 'invalid_request',
      field: 'role',
    });
    await admin.unassign(alice, 'editor');
    expect(await allowed('PUT', '/posts/7')).toBe(false);
    await expect(admin.unassign(alice, 'editor')).rejects.toMatchObject({ code: 'not_found' });
  });

  it('an expiring assignment ends on time', async () => {
    await admin.assign(alice, 'reader', START / 1000 + 30);
    expect(await allowed('GET', '/posts/1')).toBe(true);
    clock += 31_000;
    expect(await allowed('GET', '/posts/1')).toBe(false);
  });

  it('puts a store role that inherits a policy role, and assignments to it apply', async () => {
    await admin.putRole(undefined, {
      name: 'analyst',
      grants: [{ permission: 'read:stats' }],
      denies: [],
      inherits: ['reader'],
    });
    await admin.assign(alice, 'analyst');
    expect(await allowed('GET', '/stats')).toBe(true);
    expect(await allowed('GET', '/posts/1')).toBe(true);
    const shown = await admin.show(alice);
    expect(shown.effective.map((e) => [e.permission, e.via])).toEqual([
      ['read:stats', ['analyst']],
      ['read:posts', ['analyst', 'reader']],
    ]);
  });

  it('refuses unknown parents and cycles, naming the field, and writes nothing', async () => {
    await expect(
      admin.putRole(undefined, { name: 'a', grants: [], denies: [], inherits: ['nope'] }),
    ).rejects.toMatchObject({ code: 'invalid_request', field: 'inherits[0]' });
    await admin.putRole(undefined, { name: 'a', grants: [], denies: [], inherits: [] });
    await admin.putRole(undefined, { name: 'b', grants: [], denies: [], inherits: ['a'] });
    await expect(
      admin.putRole(undefined, { name: 'a', grants: [], denies: [], inherits: ['b'] }),
    ).rejects.toMatchObject({ code: 'invalid_request' });
    expect((await admin.listRoles(undefined)).find((r) => r.name === 'a')?.inherits).toEqual([]);
  });

  it('refuses to remove a role another inherits, and a policy role', async () => {
    await admin.putRole(undefined, { name: 'a', grants: [], denies: [], inherits: [] });
    await admin.putRole(undefined, { name: 'b', grants: [], denies: [], inherits: ['a'] });
    await expect(admin.removeRole(undefined, 'a')).rejects.toMatchObject({ code: 'conflict' });
    await expect(admin.removeRole(undefined, 'reader')).rejects.toMatchObject({
      code: 'not_found',
    });
    await admin.removeRole(undefined, 'b');
    await admin.removeRole(undefined, 'a');
    expect(await admin.listRoles(undefined)).toEqual([]);
    const ops = (await admin.audit({ since: START })).map((r) => r.operation);
    expect(ops).toEqual(['role.rm', 'role.rm', 'role.put', 'role.put']);
  });

  it('keeps tenants apart', async () => {
    const acme = { subject: 'alice', tenant: 'acme' };
    await admin.putRole('acme', {
      name: 'analyst',
      grants: [{ permission: 'read:stats' }],
      denies: [],
      inherits: [],
    });
    await expect(admin.assign(alice, 'analyst')).rejects.toMatchObject({ code: 'invalid_request' });
    await admin.assign(acme, 'analyst');
    expect((await admin.show(acme)).effective.map((e) => e.permission)).toEqual(['read:stats']);
    expect((await admin.show(alice)).record).toBeNull();
  });
});

describe('show', () => {
  it('lists every permission with its origin, expiry, condition and expired flag', async () => {
    const soon = START / 1000 + 10;
    await admin.grant(alice, { permission: 'read:stats', when: { ip: ['10.0.0.0/8'] } });
    await admin.grant(alice, { permission: 'read:drafts', expiresAt: soon });
    await admin.assign(alice, 'editor');
    clock += 20_000;
    const shown = await admin.show(alice);
    expect(shown.effective).toEqual([
      {
        permission: 'read:stats',
        effect: 'allow',
        via: 'direct',
        when: { ip: ['10.0.0.0/8'] },
        expired: false,
      },
      { permission: 'read:drafts', effect: 'allow', via: 'direct', expiresAt: soon, expired: true },
      { permission: 'write:posts:*', effect: 'allow', via: ['editor'], expired: false },
      { permission: 'read:posts', effect: 'allow', via: ['editor', 'reader'], expired: false },
    ]);
  });
});

describe('import and export', () => {
  const file = {
    roles: { analyst: { grants: ['read:stats'], inherits: ['reader'] } },
    users: { alice: { grants: [{ permission: 'read:drafts', expires: 4102444800 }] } },
    user_roles: { alice: ['analyst'], bob: [{ role: 'editor', expires: 4102444800 }] },
    tenants: { acme: { users: { carol: { denies: ['read:posts'] } }, roles: {}, user_roles: {} } },
  };

  it('round-trips: export then import writes nothing; each change and the import are audited', async () => {
    const first = await admin.importData(JSON.stringify(file), { source: 'seed.json' });
    expect(first).toMatchObject({ users: 3, roles: 1, written: 4, deleted: 0 });
    const exported = await admin.exportData();
    const again = await admin.importData(JSON.stringify(exported));
    expect(again).toMatchObject({ written: 0, deleted: 0, audit: null });
    expect(await admin.exportData()).toEqual(exported);
    const trail = await admin.audit({ since: START });
    // One record per subject and role written, then the summary (newest first).
    expect(trail).toHaveLength(5);
    expect(trail[0]).toMatchObject({ operation: 'import', target: {}, after: { written: 4 } });
    const targets = trail.slice(1).map((r) => r.target);
    expect(targets).toEqual(
      expect.arrayContaining([
        { subject: 'alice' },
        { subject: 'bob' },
        { tenant: 'acme', subject: 'carol' },
        { role: 'analyst' },
      ]),
    );
    const carol = trail.find((r) => r.target.subject === 'carol');
    expect(carol).toMatchObject({
      before: null,
      after: { roles: [], grants: [], denies: [{ permission: 'read:posts' }] },
    });
    expect(await allowed('GET', '/stats')).toBe(true);
  });

  it('validates the whole file before writing anything', async () => {
    await admin.grant(alice, { permission: 'keep:me' });
    const broken = structuredClone(file) as Record<string, unknown>;
    (
      broken.tenants as { acme: { users: { carol: { denies: string[] } } } }
    ).acme.users.carol.denies = ['read posts'];
    const error = await admin.importData(JSON.stringify(broken)).catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: 'invalid_request',
      field: 'tenants.acme.users.carol.denies[0]',
    });
    expect((await admin.exportData()).users).toEqual({ alice: { grants: ['keep:me'] } });
  });

  it('merges by default and replaces with replace: true', async () => {
    await admin.grant({ subject: 'dave' }, { permission: 'read:stats' });
    await admin.importData(JSON.stringify(file));
    expect(Object.keys((await admin.exportData()).users).sort()).toEqual(['alice', 'dave']);
    const result = await admin.importData(JSON.stringify(file), { replace: true });
    expect(result.deleted).toBe(1);
    expect((await admin.exportData()).users.dave).toBeUndefined();
  });

  it('reports progress while writing', async () => {
    const seen: number[] = [];
    const many = { users: {} as Record<string, object>, roles: {}, user_roles: {} };
    for (let i = 0; i < 50; i++) many.users[`u${i}`] = { grants: ['read:posts'] };
    await admin.importData(JSON.stringify(many), { progress: (done) => seen.push(done) });
    expect(seen).toHaveLength(50);
    expect(seen.at(-1)).toBe(50);
  });
});

describe('options', () => {
  it('refuses a bad retention naming AUDIT_RETENTION_DAYS', () => {
    expect(
      () =>
        new PermissionAdmin({
          store: backend,
          policyRoles: [],
          actor: 'x',
          via: 'cli',
          auditRetentionDays: 0,
        }),
    ).toThrow(ConfigError);
  });

  it('keeps audit records for the retention period only', async () => {
    const short = new PermissionAdmin({
      store: backend,
      policyRoles: [],
      actor: 'x',
      via: 'cli',
      auditRetentionDays: 1,
      now,
    });
    await short.grant(alice, { permission: 'read:stats' });
    expect(await short.audit({ since: 0 })).toHaveLength(1);
    clock += 86_400_000 + 1;
    expect(await short.audit({ since: 0 })).toHaveLength(0);
  });
});

describe('explain', () => {
  it('traces the route, the required permission and why each grant did or did not apply', async () => {
    await admin.grant(alice, { permission: 'read:stats', when: { ip: ['10.0.0.0/8'] } });
    await admin.grant(alice, { permission: 'read:*', expiresAt: START / 1000 + 5 });
    await admin.assign(alice, 'reader');
    clock += 10_000;
    const token = await idp.mint({ sub: 'alice' });
    const result = await explainRequest(
      gatehouse,
      { token, method: 'GET', path: '/stats', ip: '203.0.113.7' },
      now,
    );
    expect(result.answer).toMatchObject({ allow: false, reason: 'missing_permission' });
    expect(result.trace.route).toBe('GET /stats');
    expect(result.trace.required).toEqual(['read:stats']);
    expect(result.trace.permissions[0]?.considered.map((c) => [c.permission, c.outcome])).toEqual([
      ['read:stats', 'condition_false'],
      ['read:*', 'expired'],
    ]);
    expect(result.trace.notCovering).toEqual(['read:posts (role reader)']);
    const text = formatExplain(result);
    expect(text).toContain('DENY 403 missing_permission');
    expect(text).toContain('203.0.113.7');
    expect(text).not.toContain(token);

    const inside = await explainRequest(
      gatehouse,
      { token, method: 'GET', path: '/stats', ip: '10.1.2.3' },
      now,
    );
    expect(inside.answer.allow).toBe(true);
    expect(inside.trace.permissions[0]?.considered[0]?.outcome).toBe('applies');
  });

  it('agrees with the edge for a subject, and marks a shadowed allow', async () => {
    await admin.assign(alice, 'reader');
    await admin.deny(alice, { permission: 'read:posts' });
    const result = await explainRequest(
      gatehouse,
      { subject: 'alice', method: 'GET', path: '/posts/1' },
      now,
    );
    expect(result.answer).toMatchObject({ allow: false, reason: 'explicit_deny' });
    expect(result.trace.permissions[0]).toMatchObject({ result: 'deny' });
    expect(result.trace.permissions[0]?.considered.map((c) => c.outcome).sort()).toEqual([
      'applies',
      'shadowed',
    ]);
  });

  it('refuses input that is neither token nor subject', async () => {
    await expect(
      explainRequest(gatehouse, { method: 'GET', path: '/stats' }, now),
    ).rejects.toBeInstanceOf(AdminError);
    await expect(
      explainRequest(gatehouse, { subject: 'a', method: 'GET', path: 'stats' }, now),
    ).rejects.toMatchObject({ field: 'path' });
  });
});

describe('review fixes', () => {
  it('refuses the names the permission file reserves, for subjects and tenants', async () => {
    for (const key of [
      { subject: '__proto__' },
      { subject: 'constructor' },
      { subject: 'alice', tenant: 'prototype' },
    ]) {
      await expect(admin.grant(key, { permission: 'read:stats' })).rejects.toMatchObject({
        code: 'invalid_request',
      });
    }
    await expect(
      admin.putRole('__proto__', { name: 'x', grants: [], denies: [], inherits: [] }),
    ).rejects.toMatchObject({ code: 'invalid_request', field: 'tenant' });
    expect(await backend.exportAll()).toEqual({ users: [], roles: [] });
  });

  it('a re-deny never shortens a deny; undeny first to do that', async () => {
    await admin.deny(alice, { permission: 'delete:posts:*' });
    const again = await admin.deny(alice, {
      permission: 'delete:posts:*',
      expiresAt: START / 1000 + 60,
    });
    expect(again.changed).toBe(false);
    expect((await backend.readUser(alice))?.denies).toEqual([{ permission: 'delete:posts:*' }]);
  });

  it('refuses duplicate grants in a role and role grants that have already expired', async () => {
    await expect(
      admin.putRole(undefined, {
        name: 'dup',
        grants: [{ permission: 'read:x' }, { permission: 'read:x' }],
        denies: [],
        inherits: [],
      }),
    ).rejects.toMatchObject({ field: 'grants[1]' });
    await expect(
      admin.putRole(undefined, {
        name: 'old',
        grants: [{ permission: 'read:x', expiresAt: START / 1000 - 1 }],
        denies: [],
        inherits: [],
      }),
    ).rejects.toMatchObject({ field: 'grants[0].expires' });
  });

  it('an import refuses duplicate entries and unknown assigned roles, writing nothing', async () => {
    const duplicate = {
      users: {
        bob: { denies: ['delete:posts:*', { permission: 'delete:posts:*', expires: 4102444800 }] },
      },
    };
    await expect(admin.importData(JSON.stringify(duplicate))).rejects.toMatchObject({
      field: 'users.bob.denies[1]',
    });
    const unknownRole = { users: {}, roles: {}, user_roles: { bob: ['nosuchrole'] } };
    await expect(admin.importData(JSON.stringify(unknownRole))).rejects.toMatchObject({
      field: 'user_roles.bob[0]',
    });
    expect(await backend.exportAll()).toEqual({ users: [], roles: [] });
  });

  it('an import the store fails part-way stops writing, audits what it wrote, and reports the failure', async () => {
    class FailingStore extends MemoryAdminStore {
      writes = 0;
      override async writeUser(
        key: SubjectKey,
        before: UserRecord | null,
        after: UserRecord | null,
      ) {
        this.writes++;
        if (key.subject === 'u20') throw new StoreError('store_unavailable', 'down');
        await new Promise((r) => setTimeout(r, 1));
        return super.writeUser(key, before, after);
      }
    }
    const failing = new FailingStore(undefined, now);
    const failingAdmin = new PermissionAdmin({
      store: failing,
      policyRoles: [],
      actor: 'cli:test',
      via: 'cli',
      now,
    });
    const users: Record<string, { grants: string[] }> = {};
    for (let i = 0; i < 60; i++) users[`u${i}`] = { grants: ['read:posts'] };
    const error = await failingAdmin.importData(JSON.stringify({ users })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreError);
    const writesAtFailure = failing.writes;
    await new Promise((r) => setTimeout(r, 20));
    // Nothing was still writing after the error was reported, and not every record was tried.
    expect(failing.writes).toBe(writesAtFailure);
    expect(failing.writes).toBeLessThan(60);
    const stored = (await failing.exportAll()).users.length;
    const [record] = await failingAdmin.audit({ since: 0 });
    expect(record).toMatchObject({
      operation: 'import',
      after: { incomplete: true, written: stored },
    });
  });

  it('--if values that are not plain numbers stay strings (an ID such as 007)', () => {
    expect(parseConditions(['claim.id=007', 'claim.n=42', 'claim.ok=true'], undefined)).toEqual({
      claims: { id: '007', n: 42, ok: true },
    });
  });
});

describe('record size bound (maxRecordEntries)', () => {
  function bounded(maxRecordEntries: number): PermissionAdmin {
    return new PermissionAdmin({
      store: backend,
      policyRoles: compilePolicy(policyDoc()).roles,
      actor: 'cli:test',
      via: 'cli',
      now,
      maxRecordEntries,
    });
  }

  async function refusal(promise: Promise<unknown>): Promise<AdminError> {
    const error = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(AdminError);
    return error as AdminError;
  }

  it.each([
    ['grant', (a: PermissionAdmin) => a.grant(alice, { permission: 'read:more' })],
    ['deny', (a: PermissionAdmin) => a.deny(alice, { permission: 'read:more' })],
    ['assign', (a: PermissionAdmin) => a.assign(alice, 'editor')],
  ])('refuses a %s that grows a full record, writing and auditing nothing', async (_op, change) => {
    const admin3 = bounded(3);
    await admin3.grant(alice, { permission: 'read:a' });
    await admin3.deny(alice, { permission: 'read:b' });
    // Not a role: roles reached count against the same bound (the expansion tests below).
    await admin3.grant(alice, { permission: 'read:c' });
    const stored = await backend.readUser(alice);

    const error = await refusal(change(admin3));

    expect(error).toMatchObject({ code: 'record_too_large', field: 'subject' });
    expect(error.message).toContain('at most 3');
    expect(await backend.readUser(alice)).toEqual(stored);
    expect(await admin3.audit({ since: 0 })).toHaveLength(3);
  });

  it('lets a full record be changed in place and shrunk', async () => {
    const admin2 = bounded(2);
    await admin2.grant(alice, { permission: 'read:a' });
    await admin2.grant(alice, { permission: 'read:b' });
    const until = Math.floor(START / 1000) + 3600;

    await admin2.grant(alice, { permission: 'read:a', expiresAt: until });
    await admin2.revoke(alice, 'read:b');

    expect((await backend.readUser(alice))?.grants).toEqual([
      { permission: 'read:a', expiresAt: until },
    ]);
  });

  it('lets a record already over the bound shrink, but not grow', async () => {
    backend.store.putUser({
      subject: 'alice',
      roles: [],
      grants: ['a', 'b', 'c', 'd'].map((x) => ({ permission: `read:${x}` })),
      denies: [],
    });
    const admin2 = bounded(2);

    await admin2.revoke(alice, 'read:d');
    const error = await refusal(admin2.grant(alice, { permission: 'read:e' }));

    expect(error.code).toBe('record_too_large');
    expect((await backend.readUser(alice))?.grants).toHaveLength(3);
  });

  it("refuses a role that grows a tenant's role set past the bound", async () => {
    const admin4 = bounded(4);
    // One entry for the role, two for its grants.
    await admin4.putRole('acme', {
      name: 'a',
      grants: [{ permission: 'read:a' }, { permission: 'read:b' }],
      inherits: [],
    });

    const error = await refusal(
      admin4.putRole('acme', { name: 'b', grants: [{ permission: 'read:c' }], inherits: [] }),
    );

    expect(error).toMatchObject({ code: 'record_too_large', field: 'role' });
    expect((await backend.readRoles('acme')).map((r) => r.name)).toEqual(['a']);
  });

  /** Store roles c0 ← c1 ← … ← c{n-1}, one grant each: 3n - 1 entries (c0 has no parent). */
  async function putChain(a: PermissionAdmin, n: number) {
    for (let i = 0; i < n; i++) {
      await a.putRole(undefined, {
        name: `c${i}`,
        grants: [{ permission: `read:c${i}` }],
        inherits: i === 0 ? [] : [`c${i - 1}`],
      });
    }
  }

  const letters = (n: number) => Array.from({ length: n }, (_, i) => `read:g${i}`);

  it('refuses an assignment whose roles expand past the bound, though the record fits', async () => {
    const admin30 = bounded(30);
    await putChain(admin30, 6); // 17 entries
    for (const permission of letters(12)) await admin30.grant(alice, { permission });
    await admin30.assign(alice, 'c4'); // 13 + 14 = 27
    const stored = await backend.readUser(alice);

    const error = await refusal(admin30.assign(alice, 'c5')); // 14 + 17 = 31

    expect(error).toMatchObject({ code: 'record_too_large', field: 'subject' });
    expect(error.message).toMatch(/expand to 31 entries.*at most 30/);
    expect(await backend.readUser(alice)).toEqual(stored);
  });

  it('refuses a direct grant that takes an expansion past the bound', async () => {
    const admin30 = bounded(30);
    await putChain(admin30, 6);
    await admin30.assign(alice, 'c5'); // 1 + 17
    for (const permission of letters(12)) await admin30.grant(alice, { permission });

    const error = await refusal(admin30.grant(alice, { permission: 'read:z' }));

    expect(error).toMatchObject({ code: 'record_too_large', field: 'subject' });
    expect((await backend.readUser(alice))?.grants).toHaveLength(12);
  });

  it('refuses a role change after which a role that reaches it expands past the bound', async () => {
    const admin22 = bounded(22);
    await putChain(admin22, 6); // 17 entries; c5 reaches all of them
    await admin22.putRole(undefined, { name: 'c0', grants: [], inherits: ['reader'] });

    // The role set would hold 20 entries, within the bound; c5 would reach c0..c5 and the
    // policy's editor and reader: 20 + 3 + 2 = 25.
    const error = await refusal(
      admin22.putRole(undefined, {
        name: 'c0',
        grants: [{ permission: 'read:x' }, { permission: 'read:y' }, { permission: 'read:z' }],
        inherits: ['editor'],
      }),
    );

    expect(error).toMatchObject({ code: 'record_too_large', field: 'role' });
    expect(error.message).toMatch(/role c5 would expand to 25 entries/);
    expect((await backend.readRoles(undefined)).find((r) => r.name === 'c0')?.inherits).toEqual([
      'reader',
    ]);
  });

  it('refuses an import whose subject expands past the bound with the imported roles', async () => {
    const admin20 = bounded(20);
    const roles = Object.fromEntries(
      Array.from({ length: 6 }, (_, i) => [
        `c${i}`,
        { grants: [`read:c${i}`], inherits: i === 0 ? [] : [`c${i - 1}`] },
      ]),
    ); // 17 entries
    const file = (top: string) =>
      JSON.stringify({
        roles,
        users: { alice: { grants: letters(4) } },
        user_roles: { alice: [top] },
      });

    const error = await refusal(admin20.importData(file('c5'))); // 5 + 17

    expect(error).toMatchObject({ code: 'record_too_large', field: 'users.alice' });
    expect(await backend.readUser(alice)).toBeNull();
    await admin20.importData(file('c4')); // 5 + 14
    expect((await backend.readUser(alice))?.roles).toEqual([{ role: 'c4' }]);
  });

  it('shows a subject the edges refuse for its expansion, with a warning saying so', async () => {
    const admin20 = bounded(20);
    await putChain(admin20, 6);
    backend.store.putUser({
      subject: 'alice',
      roles: [{ role: 'c5' }],
      grants: letters(9).map((permission) => ({ permission })),
      denies: [],
    });

    const shown = await admin20.show(alice);

    expect(shown.effective).toHaveLength(15);
    expect(shown.warnings).toEqual([expect.stringMatching(/expands to 27 entries.*refuse/)]);
  });

  it('counts condition list items: refuses a grant or a role whose CIDR list passes the bound', async () => {
    const admin10 = bounded(10);
    const ip = (n: number) => Array.from({ length: n }, (_, i) => `10.0.${i}.0/24`);
    await admin10.grant(alice, { permission: 'read:a', when: { ip: ip(9) } }); // 1 + 9

    const grant = await refusal(
      admin10.grant(alice, { permission: 'read:b', when: { ip: ip(9) } }),
    );
    const role = await refusal(
      admin10.putRole(undefined, {
        name: 'office',
        grants: [{ permission: 'read:c', when: { ip: ip(9) } }], // 1 + 1 + 9
        inherits: [],
      }),
    );

    expect(grant).toMatchObject({ code: 'record_too_large', field: 'subject' });
    expect(role).toMatchObject({ code: 'record_too_large', field: 'role' });
    expect((await backend.readUser(alice))?.grants).toHaveLength(1);
    expect(await backend.readRoles(undefined)).toEqual([]);
  });

  it('refuses a bound that is not an integer from 1 to 1000000, naming maxRecordEntries', () => {
    expect(() => bounded(0)).toThrow(expect.objectContaining({ field: 'maxRecordEntries' }));
  });
});

describe('import --dry-run makes every check the import makes', () => {
  /** A backend with a key limit, as KV (512 bytes) and DynamoDB (2048) have. */
  class KeyedStore extends MemoryAdminStore {
    checkKey(key: SubjectKey): void {
      if (key.subject.length > 100) {
        throw new AdminError('invalid_request', 'subject: too long for the store', {
          field: 'subject',
        });
      }
    }
  }

  function dryRunAdmin(store: MemoryAdminStore) {
    return new PermissionAdmin({
      store,
      policyRoles: compilePolicy(policyDoc()).roles,
      actor: 'cli:test',
      via: 'cli',
      now,
      maxRecordEntries: 3,
    });
  }

  const grants = (n: number) => Array.from({ length: n }, (_, i) => `read:g${i}`);

  // Every kind of refusal an import makes: the file's shape, the edges' rules, the store's
  // limits, and the checks that need the store's contents (roles it holds, replace).
  const cases: [string, string, { replace?: boolean }][] = [
    ['text that is not JSON', '{"users":', {}],
    ['an unknown key', JSON.stringify({ users: { bob: { grant: ['read:x'] } } }), {}],
    ['a reserved name', '{"users":{"__proto__":{"grants":["read:x"]}}}', {}],
    [
      'a permission outside the grammar',
      JSON.stringify({ users: { bob: { grants: ['read posts'] } } }),
      {},
    ],
    [
      'a bad condition',
      JSON.stringify({
        users: { bob: { grants: [{ permission: 'read:x', when: { ip: ['10.0.0.0/33'] } }] } },
      }),
      {},
    ],
    [
      'an expiry in milliseconds',
      JSON.stringify({
        users: { bob: { grants: [{ permission: 'read:x', expires: 4102444800000 }] } },
      }),
      {},
    ],
    ['a duplicate grant', JSON.stringify({ users: { bob: { denies: ['read:x', 'read:x'] } } }), {}],
    ['an undefined parent role', JSON.stringify({ roles: { r: { inherits: ['nosuch'] } } }), {}],
    [
      'an inheritance cycle',
      JSON.stringify({ roles: { a: { inherits: ['b'] }, b: { inherits: ['a'] } } }),
      {},
    ],
    ['an undefined assigned role', JSON.stringify({ user_roles: { bob: ['nosuchrole'] } }), {}],
    [
      'an undefined assigned role in a tenant',
      JSON.stringify({ tenants: { acme: { user_roles: { bob: ['reader', 'nosuch'] } } } }),
      {},
    ],
    [
      'a store role that replace would remove',
      JSON.stringify({ user_roles: { bob: ['stored'] } }),
      { replace: true },
    ],
    [
      'a subject the store cannot key',
      JSON.stringify({ users: { ['x'.repeat(101)]: { grants: ['read:x'] } } }),
      {},
    ],
    ['a record over the bound', JSON.stringify({ users: { bob: { grants: grants(4) } } }), {}],
    [
      'a role set over the bound',
      JSON.stringify({ tenants: { acme: { roles: { r: { grants: grants(3) } } } } }),
      {},
    ],
  ];

  it.each(cases)(
    'refuses %s in the dry run exactly as in the import',
    async (_name, text, opts) => {
      const store = new KeyedStore(undefined, now);
      const admin3 = dryRunAdmin(store);
      await admin3.putRole(undefined, { name: 'stored', grants: [], inherits: [] });
      const before = await store.exportAll();

      const dry = await admin3.importData(text, { ...opts, dryRun: true }).catch((e: unknown) => e);
      const real = await admin3.importData(text, opts).catch((e: unknown) => e);

      expect(real).toBeInstanceOf(AdminError);
      expect(dry).toBeInstanceOf(AdminError);
      const { code, field, message } = real as AdminError;
      expect(dry).toMatchObject({ code, field, message });
      expect(await store.exportAll()).toEqual(before);
    },
  );

  it('refuses an undefined assigned role in the dry run (it used to pass)', async () => {
    const text = JSON.stringify({ user_roles: { bob: ['nosuchrole'] } });

    const error = await admin.importData(text, { dryRun: true }).catch((e: unknown) => e);

    expect(error).toMatchObject({ code: 'invalid_request', field: 'user_roles.bob[0]' });
  });

  it('writes and audits nothing, and counts what the import then writes', async () => {
    await admin.grant({ subject: 'old' }, { permission: 'read:stats' });
    const file = {
      roles: { analyst: { grants: ['read:stats'] } },
      users: { alice: { grants: ['read:drafts'] } },
      user_roles: { bob: ['analyst'] },
    };
    const before = await backend.exportAll();

    const dry = await admin.importData(JSON.stringify(file), { replace: true, dryRun: true });

    expect(await backend.exportAll()).toEqual(before);
    expect(await admin.audit({ since: 0 })).toHaveLength(1);
    const real = await admin.importData(JSON.stringify(file), { replace: true });
    expect(dry).toEqual({ ...real, audit: null, dryRun: true });
    expect(dry).toMatchObject({ users: 2, roles: 1, written: 3, deleted: 1 });
  });
});
