import { describe, expect, it } from 'vitest';
import { StoreError } from '../../../src/errors.ts';
import { compilePermissions, compileRoles } from '../../../src/permissions/index.ts';
import type { RoleAssignment, RoleRecord, UserRecord } from '../../../src/types.ts';

// Role expansion is linear in the roles a principal reaches and their entries, however many
// assignments or inheritance paths lead to them (issue 9: a chain of 500 roles assigned 500
// times cost ~2 s and 327 MB per decision). Asserted on the work counter, never on wall time.

const NOW_MS = 1_700_000_000_000;
const input = { now: NOW_MS, claims: {} };

/** r0 ← r1 ← … ← r{n-1}: each inherits the one before and grants `read:r<i>:0..2`. */
function chain(n: number): RoleRecord[] {
  return Array.from({ length: n }, (_, i) => ({
    name: `r${i}`,
    grants: [0, 1, 2].map((k) => ({ permission: `read:r${i}:${k}` })),
    inherits: i === 0 ? [] : [`r${i - 1}`],
  }));
}

/**
 * `layers` layers of `width` roles; every role inherits every role of the layer below, so the
 * number of paths from the top to the bottom is width^(layers-1) while the roles are few.
 */
function lattice(layers: number, width: number): RoleRecord[] {
  const roles: RoleRecord[] = [];
  for (let l = 0; l < layers; l++) {
    for (let w = 0; w < width; w++) {
      roles.push({
        name: `l${l}w${w}`,
        grants: [{ permission: `read:l${l}:w${w}` }, { permission: `list:l${l}:w${w}` }],
        inherits: l === 0 ? [] : Array.from({ length: width }, (_, v) => `l${l - 1}w${v}`),
      });
    }
  }
  return roles;
}

function holder(roles: (string | RoleAssignment)[], fields: Partial<UserRecord> = {}): UserRecord {
  return {
    subject: 'alice',
    roles: roles.map((r) => (typeof r === 'string' ? { role: r } : r)),
    grants: [],
    denies: [],
    ...fields,
  };
}

/** What the bound counts for a set of roles reached once each: role + grants + denies + parents. */
function roleEntries(roles: readonly RoleRecord[]): number {
  return roles.reduce(
    (n, r) => n + 1 + r.grants.length + (r.denies?.length ?? 0) + r.inherits.length,
    0,
  );
}

describe('role expansion: each reachable role once per principal', () => {
  it('expands a 500-deep chain assigned at every level once: 1,500 entries, not 375,750', async () => {
    const roles = chain(500);
    const graph = compileRoles([], roles);
    const user = holder(roles.map((r) => r.name));

    const set = compilePermissions({ user, roles: graph, now: NOW_MS });

    expect(set.entries()).toHaveLength(1500);
    expect(set.expandedEntries).toBe(500 + roleEntries(roles));
    expect(set.check('read:r0:2', input)).toMatchObject({ effect: 'allow' });
  });

  it('expands a diamond lattice (10^9 paths) visiting each of its 100 roles once', () => {
    const roles = lattice(10, 10);
    const graph = compileRoles([], roles);
    const user = holder(roles.map((r) => r.name));

    const set = compilePermissions({ user, roles: graph, now: NOW_MS });

    expect(set.entries()).toHaveLength(200);
    expect(set.expandedEntries).toBe(100 + roleEntries(roles));
    expect(set.check('list:l0:w9', input)).toMatchObject({ effect: 'allow' });
  });

  it('costs the same for one assignment at the top as for every role assigned', () => {
    const roles = lattice(10, 10);
    const graph = compileRoles([], roles);

    const top = compilePermissions({ user: holder(['l9w0']), roles: graph, now: NOW_MS });

    // l9w0 reaches itself and the 90 roles of the layers below, not its 9 siblings.
    const reached = roles.filter((r) => r.name === 'l9w0' || !r.name.startsWith('l9'));
    expect(top.expandedEntries).toBe(1 + roleEntries(reached));
    expect(top.entries()).toHaveLength(2 * reached.length);
  });

  it('still names the role path that granted, from the assigned role to the holder', () => {
    const graph = compileRoles([], chain(500));

    const set = compilePermissions({ user: holder(['r499']), roles: graph, now: NOW_MS });

    const path = Array.from({ length: 500 }, (_, i) => `r${499 - i}`);
    expect(set.check('read:r0:1', input)).toEqual({
      effect: 'allow',
      grant: 'read:r0:1',
      via: path,
    });
    expect(set.entries().find((e) => e.permission === 'read:r0:1')?.via).toEqual(path);
    expect(set.entries().find((e) => e.permission === 'read:r499:0')?.via).toEqual(['r499']);
  });

  it('names the first path depth-first in inherits order through a diamond', () => {
    const graph = compileRoles(
      [],
      [
        { name: 'base', grants: [{ permission: 'read:x' }], inherits: [] },
        { name: 'left', grants: [], inherits: ['base'] },
        { name: 'right', grants: [], inherits: ['base'] },
        { name: 'top', grants: [], inherits: ['left', 'right'] },
      ],
    );

    const set = compilePermissions({ user: holder(['top']), roles: graph, now: NOW_MS });

    expect(set.check('read:x', input)).toMatchObject({ via: ['top', 'left', 'base'] });
  });

  it('lets a deny deep in a chain win over an allow at its top', () => {
    const roles = chain(300);
    roles[0] = { ...(roles[0] as RoleRecord), denies: [{ permission: 'delete:*' }] };
    roles[299] = { ...(roles[299] as RoleRecord), grants: [{ permission: 'delete:posts' }] };
    const graph = compileRoles([], roles);

    const set = compilePermissions({
      user: holder(['r299'], { grants: [{ permission: 'delete:posts' }] }),
      roles: graph,
      now: NOW_MS,
    });

    const result = set.check('delete:posts', input);
    expect(result).toMatchObject({ effect: 'deny', grant: 'delete:*' });
    expect((result as { via: readonly string[] }).via).toHaveLength(300);
  });

  it('lets a deny win whichever of several assignments reaches it', () => {
    const graph = compileRoles(
      [],
      [
        { name: 'base', grants: [], denies: [{ permission: 'write:*' }], inherits: [] },
        { name: 'a', grants: [{ permission: 'write:a' }], inherits: ['base'] },
        { name: 'b', grants: [{ permission: 'write:b' }], inherits: ['base'] },
      ],
    );

    const set = compilePermissions({ user: holder(['a', 'b']), roles: graph, now: NOW_MS });

    expect(set.check('write:a', input).effect).toBe('deny');
    expect(set.check('write:b', input).effect).toBe('deny');
    expect(set.entries().filter((e) => e.effect === 'deny')).toHaveLength(1);
  });
});

describe('role expansion: a role reached by several assignments holds while any of them does', () => {
  const graph = compileRoles(
    [],
    [
      { name: 'base', grants: [{ permission: 'read:x' }], inherits: [] },
      { name: 'a', grants: [], inherits: ['base'] },
      { name: 'b', grants: [], inherits: ['base'] },
    ],
  );
  const soon = NOW_MS / 1000 + 60;
  const later = NOW_MS / 1000 + 3600;
  const at = (seconds: number) => ({ now: seconds * 1000, claims: {} });

  it.each([
    ['expiring first, permanent second', [{ role: 'a', expiresAt: soon }, { role: 'b' }]],
    ['permanent first, expiring second', [{ role: 'a' }, { role: 'b', expiresAt: soon }]],
  ])('keeps a grant past one assignment’s expiry when another is permanent (%s)', (_, roles) => {
    const set = compilePermissions({ user: holder(roles), roles: graph, now: NOW_MS });

    expect(set.check('read:x', at(soon + 1)).effect).toBe('allow');
    expect(set.nextExpiry).toBeUndefined();
  });

  it('ends a grant with the later of two expiring assignments', () => {
    const roles = [
      { role: 'a', expiresAt: soon },
      { role: 'b', expiresAt: later },
    ];

    const set = compilePermissions({ user: holder(roles), roles: graph, now: NOW_MS });

    expect(set.check('read:x', at(soon + 1))).toMatchObject({
      effect: 'allow',
      via: ['b', 'base'],
      expiresAt: later,
    });
    expect(set.check('read:x', at(later)).effect).toBe('none');
  });
});

describe('role expansion: bounded by maxEntries', () => {
  const source = { kind: 'memory', key: 't:acme/s:alice' };

  it('refuses a chain whose expansion passes the bound: store_record_too_large naming the key', () => {
    const roles = chain(500);
    const graph = compileRoles([], roles);
    let error: unknown;

    try {
      compilePermissions({
        user: holder(['r499']),
        roles: graph,
        now: NOW_MS,
        maxEntries: 1000,
        source,
      });
    } catch (e) {
      error = e;
    }

    expect(error).toBeInstanceOf(StoreError);
    expect(error).toMatchObject({ code: 'store_record_too_large', key: 't:acme/s:alice' });
    expect((error as Error).message).not.toContain('read:');
  });

  it('bounds by default at 10000 (the stores’ maxRecordEntries)', () => {
    // 2,001 roles hold 10,004 entries; with the one assignment the expansion is 10,005.
    const roles = chain(2001);
    const graph = compileRoles([], roles);

    expect(() => compilePermissions({ user: holder(['r2000']), roles: graph })).toThrow(
      expect.objectContaining({ code: 'store_record_too_large' }),
    );
  });

  it('counts the record’s own entries with the roles it reaches', () => {
    const roles = chain(10); // 10 roles, 49 entries
    const graph = compileRoles([], roles);
    const grants = Array.from({ length: 50 }, (_, i) => ({ permission: `read:own:${i}` }));
    const user = holder(['r9'], { grants });

    expect(compilePermissions({ user, roles: graph, maxEntries: 100 }).expandedEntries).toBe(100);
    expect(() => compilePermissions({ user, roles: graph, maxEntries: 99 })).toThrow(
      expect.objectContaining({ code: 'store_record_too_large' }),
    );
  });

  it('expands a lattice within the bound and refuses it one entry under', () => {
    const roles = lattice(10, 10);
    const graph = compileRoles([], roles);
    const needed = 1 + roleEntries(roles.filter((r) => r.name === 'l9w0' || !/^l9/.test(r.name)));

    const user = holder(['l9w0']);
    expect(compilePermissions({ user, roles: graph, maxEntries: needed }).expandedEntries).toBe(
      needed,
    );
    expect(() => compilePermissions({ user, roles: graph, maxEntries: needed - 1 })).toThrow(
      expect.objectContaining({ code: 'store_record_too_large' }),
    );
  });
});

describe('role graphs thousands of roles deep', () => {
  it('compiles and expands a 50,000-deep chain without overflowing the stack', () => {
    const roles = chain(50_000);

    const graph = compileRoles([], roles);
    const set = compilePermissions({
      user: holder(['r49999']),
      roles: graph,
      maxEntries: Number.POSITIVE_INFINITY,
    });

    expect(set.entries()).toHaveLength(150_000);
    expect(set.check('read:r0:0', input)).toMatchObject({ effect: 'allow' });
  });

  it('still names a cycle closing a 50,000-deep chain', () => {
    const roles = chain(50_000);
    roles[0] = { ...(roles[0] as RoleRecord), inherits: ['r49999'] };

    expect(() => compileRoles([], roles)).toThrow(
      expect.objectContaining({ code: 'store_invalid_record' }),
    );
    expect(() => compileRoles([], roles)).toThrow(
      /^roles: inheritance cycle r0 -> r49999 -> r49998 -> .* -> … 49992 more … -> r2 -> r1 -> r0$/,
    );
  });
});
