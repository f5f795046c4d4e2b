/**
 * Seeding demo data (src/cli/seed.ts, what `npm start` does on every run) never undoes a change
 * made with the CLI: each kind of change (a grant added, a grant revoked to an empty record, a
 * subject deleted by `import --replace`, a store role removed) survives a second seed, and only
 * what the store never held is written, audited.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { MemoryAdminStore } from '../../../src/admin/memory.ts';
import { PermissionAdmin } from '../../../src/admin/operations.ts';
import { seedMissing } from '../../../src/cli/seed.ts';

const POLICY_ROLES = ['reader', 'editor'];
const seedFile = JSON.stringify({
  roles: { auditor: { grants: ['read:audit'] } },
  users: {
    alice: { grants: ['read:drafts'] },
    bob: { denies: ['delete:posts:*'] },
  },
  user_roles: { alice: ['reader'], bob: ['editor'], carol: ['auditor'] },
  tenants: { acme: { users: { dave: { grants: ['read:acme'] } } } },
});

let clock = Date.parse('2026-11-23T12:00:00Z');
let backend: MemoryAdminStore;
const admin = (actor: string) =>
  new PermissionAdmin({
    store: backend,
    policyRoles: POLICY_ROLES.map((name) => ({ name, grants: [], denies: [], inherits: [] })),
    actor,
    via: 'cli',
    now: () => clock,
  });
const seed = () => seedMissing(admin('npm start'), seedFile, 'seed.json', POLICY_ROLES);
const user = (subject: string, tenant?: string) =>
  backend.readUser(tenant === undefined ? { subject } : { subject, tenant });

beforeEach(() => {
  clock = Date.parse('2026-11-23T12:00:00Z');
  backend = new MemoryAdminStore(undefined, () => clock);
});

describe('seedMissing', () => {
  it('writes everything into an empty store, audited as the seed', async () => {
    const result = await seed();
    expect(result.seeded).toEqual(['alice', 'bob', 'carol', 'dave (tenant acme)', 'role auditor']);
    expect((await user('alice'))?.grants.map((g) => g.permission)).toEqual(['read:drafts']);
    expect((await user('dave', 'acme'))?.grants.map((g) => g.permission)).toEqual(['read:acme']);
    const trail = await admin('x').audit({ since: 0, subject: 'alice' });
    expect(trail.map((r) => [r.actor, r.operation])).toEqual([['npm start', 'import']]);
  });

  it('writes nothing the second time', async () => {
    await seed();
    const before = await backend.listAudit({ since: 0, limit: 1000 });
    const again = await seed();
    expect(again.seeded).toEqual([]);
    expect(await backend.listAudit({ since: 0, limit: 1000 })).toEqual(before);
  });

  it('keeps a grant added with the CLI', async () => {
    await seed();
    await admin('cli:me').grant({ subject: 'alice' }, { permission: 'write:posts:1' });
    await seed();
    expect((await user('alice'))?.grants.map((g) => g.permission).sort()).toEqual([
      'read:drafts',
      'write:posts:1',
    ]);
  });

  it('keeps a revocation that left the subject with nothing', async () => {
    await seed();
    await admin('cli:me').undeny({ subject: 'bob' }, 'delete:posts:*');
    await admin('cli:me').unassign({ subject: 'bob' }, 'editor');
    await seed();
    expect(await user('bob')).toMatchObject({ roles: [], grants: [], denies: [] });
  });

  it('keeps a subject deleted by import --replace deleted', async () => {
    await seed();
    await admin('cli:me').importData(JSON.stringify({ user_roles: { bob: ['editor'] } }), {
      replace: true,
    });
    expect(await user('alice')).toBeNull();
    const again = await seed();
    expect(again.seeded).toEqual([]);
    expect(await user('alice')).toBeNull();
    expect(await user('dave', 'acme')).toBeNull();
  });

  it('keeps a deleted subject and role deleted after their audit records expired', async () => {
    await seed();
    await admin('cli:me').importData(JSON.stringify({ users: { erin: {} } }), { replace: true });
    clock += 91 * 86_400_000; // past the default retention of 90 days
    expect(await backend.listAudit({ since: 0, limit: 1000 })).toEqual([]);

    const again = await seed();

    expect(again.seeded).toEqual([]);
    expect(await user('alice')).toBeNull();
    expect(await backend.readRoles(undefined)).toEqual([]);
  });

  it('still adds a subject the demo data gained since the last seed', async () => {
    await seed();
    clock += 91 * 86_400_000;
    const grown = JSON.stringify({
      ...JSON.parse(seedFile),
      users: { frank: { grants: ['x:y'] } },
    });

    const again = await seedMissing(admin('npm start'), grown, 'seed.json', POLICY_ROLES);

    expect(again.seeded).toEqual(['frank']);
  });

  it('seeds nothing, and says so, when the marker is not one it wrote', async () => {
    await backend.writeMarker('seeded', 'not json');

    const error = await seed().catch((e: unknown) => e);

    expect(error).toMatchObject({ code: 'store_invalid_record' });
    expect(await user('alice')).toBeNull();
  });

  it('keeps a removed store role removed', async () => {
    await seed();
    await admin('cli:me').unassign({ subject: 'carol' }, 'auditor');
    await admin('cli:me').removeRole(undefined, 'auditor');
    await seed();
    expect(await backend.readRoles(undefined)).toEqual([]);
  });

  it('adds only what is missing to a store seeded before, leaving held records as they are', async () => {
    // A store filled without an audit trail (an earlier `wrangler kv bulk put` seed).
    await backend.writeUser({ subject: 'alice' }, null, {
      subject: 'alice',
      roles: [],
      grants: [{ permission: 'read:mine' }],
      denies: [],
    });
    const result = await seed();
    expect(result.kept).toEqual(['alice']);
    expect(result.seeded).toContain('bob');
    expect((await user('alice'))?.grants.map((g) => g.permission)).toEqual(['read:mine']);
  });

  it('keeps other store roles of a tenant it adds a role to', async () => {
    await admin('cli:me').putRole(undefined, {
      name: 'mine',
      grants: [{ permission: 'x:y' }],
      denies: [],
      inherits: [],
    });
    await seed();
    expect((await backend.readRoles(undefined)).map((r) => r.name).sort()).toEqual([
      'auditor',
      'mine',
    ]);
  });
});
