import { describe, expect, it } from 'vitest';
import { StoreError } from '../../../src/errors.ts';
import {
  type ConditionInput,
  compilePermissions,
  compileRoles,
  type PermissionSet,
} from '../../../src/permissions/index.ts';
import type { Grant, RoleAssignment, RoleRecord, UserRecord } from '../../../src/types.ts';

const NOW_S = 1_700_000_000;
const NOW_MS = NOW_S * 1000;

const policyRoles: RoleRecord[] = [
  { name: 'reader', grants: [{ permission: 'read:*' }], inherits: [] },
  {
    name: 'editor',
    grants: [{ permission: 'write:posts' }, { permission: 'delete:posts:*' }],
    denies: [{ permission: 'delete:posts:pinned' }],
    inherits: ['reader'],
  },
  {
    name: 'office',
    grants: [{ permission: 'admin:billing', when: { ip: ['10.0.0.0/8'] } }],
    inherits: [],
  },
];
const graph = compileRoles(policyRoles);

function user(parts: {
  grants?: (Grant | string)[];
  denies?: (Grant | string)[];
  roles?: (RoleAssignment | string)[];
}): UserRecord {
  const grant = (g: Grant | string): Grant => (typeof g === 'string' ? { permission: g } : g);
  const role = (r: RoleAssignment | string): RoleAssignment =>
    typeof r === 'string' ? { role: r } : r;
  return {
    subject: 'user-1',
    grants: (parts.grants ?? []).map(grant),
    denies: (parts.denies ?? []).map(grant),
    roles: (parts.roles ?? []).map(role),
  };
}

function setFor(
  record: UserRecord | null,
  extra: Partial<Parameters<typeof compilePermissions>[0]> = {},
) {
  return compilePermissions({ user: record, roles: graph, now: NOW_MS, ...extra });
}

const input = (extra: Partial<ConditionInput> = {}): ConditionInput => ({
  now: NOW_MS,
  claims: {},
  ...extra,
});

const effectOf = (set: PermissionSet, required: string, extra: Partial<ConditionInput> = {}) =>
  set.check(required, input(extra)).effect;

describe('direct grants', () => {
  it('allows a permission granted directly and reports the grant', () => {
    const set = setFor(user({ grants: ['read:posts'] }));

    expect(set.check('read:posts', input())).toEqual({
      effect: 'allow',
      grant: 'read:posts',
      via: 'direct',
    });
  });

  it('answers none when nothing grants the permission', () => {
    const set = setFor(user({ grants: ['read:posts'] }));

    expect(set.check('read:posts:42', input())).toEqual({ effect: 'none' });
  });

  it('answers none for a user the store does not know', () => {
    expect(setFor(null).check('read:posts', input())).toEqual({ effect: 'none' });
  });

  it('reports the most specific matching grant, exact over wildcard', () => {
    const set = setFor(
      user({ grants: ['*', 'read:*', 'read:*:42', 'read:posts:*', 'read:posts:42'] }),
    );

    expect(set.check('read:posts:42', input())).toMatchObject({ grant: 'read:posts:42' });
    expect(set.check('read:posts:43', input())).toMatchObject({ grant: 'read:posts:*' });
    expect(set.check('read:blogs:42', input())).toMatchObject({ grant: 'read:*:42' });
    expect(set.check('read:blogs:43', input())).toMatchObject({ grant: 'read:*' });
    expect(set.check('write:blogs', input())).toMatchObject({ grant: '*' });
  });

  it('prefers a direct grant over a role grant for the same permission', () => {
    const set = setFor(user({ grants: ['read:posts'], roles: ['reader'] }));

    expect(set.check('read:posts', input())).toMatchObject({ via: 'direct' });
  });

  it('reports claims as the origin of extra grants from the token', () => {
    const set = setFor(null, { extraGrants: [{ permission: 'read:posts' }], extraVia: 'claims' });

    expect(set.check('read:posts', input())).toMatchObject({ effect: 'allow', via: 'claims' });
  });

  it.each(['read:*', 'read:posts:*', 'read::posts', 'read'])(
    'matches nothing for the malformed required permission %j',
    (required) => {
      const set = setFor(user({ grants: ['*'] }));

      expect(set.check(required, input())).toEqual({ effect: 'none' });
    },
  );

  it('never allows when the check time is not a number', () => {
    const set = setFor(user({ grants: ['read:posts'] }));

    expect(effectOf(set, 'read:posts', { now: Number.NaN })).toBe('none');
  });
});

describe('roles', () => {
  it('allows through an inherited role and reports the role path', () => {
    const set = setFor(user({ roles: ['editor'] }));

    expect(set.check('read:posts', input())).toEqual({
      effect: 'allow',
      grant: 'read:*',
      via: ['editor', 'reader'],
    });
  });

  it('ignores an assigned role that does not exist, with a warning', () => {
    const set = setFor(user({ roles: ['ghost', 'reader'] }));

    expect(effectOf(set, 'read:posts')).toBe('allow');
    expect(set.warnings).toEqual([expect.stringContaining('ghost')]);
  });

  it('uses a store role that replaced the policy role', () => {
    const tenantGraph = compileRoles(policyRoles, [
      { name: 'reader', grants: [{ permission: 'read:posts' }], inherits: [] },
    ]);
    const set = setFor(user({ roles: ['reader'] }), { roles: tenantGraph });

    expect(effectOf(set, 'read:posts')).toBe('allow');
    expect(effectOf(set, 'read:comments')).toBe('none');
  });
});

describe('expiry', () => {
  it('denies when the grant expired a second ago', () => {
    const set = setFor(user({ grants: [{ permission: 'read:posts', expiresAt: NOW_S - 1 }] }));

    expect(effectOf(set, 'read:posts')).toBe('none');
  });

  it('denies at the very second the grant expires', () => {
    const set = setFor(user({ grants: [{ permission: 'read:posts', expiresAt: NOW_S }] }));

    expect(effectOf(set, 'read:posts')).toBe('none');
  });

  it('allows a second before the grant expires and reports the expiry', () => {
    const set = setFor(user({ grants: [{ permission: 'read:posts', expiresAt: NOW_S + 1 }] }));

    expect(set.check('read:posts', input())).toEqual({
      effect: 'allow',
      grant: 'read:posts',
      via: 'direct',
      expiresAt: NOW_S + 1,
    });
  });

  it('evaluates expiry at check time, not compile time', () => {
    const set = setFor(user({ grants: [{ permission: 'read:posts', expiresAt: NOW_S + 60 }] }));

    expect(effectOf(set, 'read:posts', { now: NOW_MS + 61_000 })).toBe('none');
  });

  it('falls back to a live grant when the more specific one expired', () => {
    const set = setFor(
      user({ grants: [{ permission: 'read:posts', expiresAt: NOW_S - 1 }, 'read:*'] }),
    );

    expect(set.check('read:posts', input())).toMatchObject({ effect: 'allow', grant: 'read:*' });
  });

  it('takes nothing from an expired role assignment', () => {
    const set = setFor(user({ roles: [{ role: 'editor', expiresAt: NOW_S - 1 }] }));

    expect(effectOf(set, 'write:posts')).toBe('none');
    expect(effectOf(set, 'read:posts')).toBe('none');
  });

  it('caps a role grant at the assignment expiry', () => {
    const set = setFor(user({ roles: [{ role: 'reader', expiresAt: NOW_S + 30 }] }));

    expect(set.check('read:posts', input())).toMatchObject({ expiresAt: NOW_S + 30 });
  });

  it('stops an expired deny from denying', () => {
    const set = setFor(
      user({
        grants: ['read:posts'],
        denies: [{ permission: 'read:posts', expiresAt: NOW_S - 1 }],
      }),
    );

    expect(effectOf(set, 'read:posts')).toBe('allow');
  });

  it('reports the earliest future expiry as a cache hint', () => {
    const set = setFor(
      user({
        grants: [
          { permission: 'read:a', expiresAt: NOW_S - 5 },
          { permission: 'read:b', expiresAt: NOW_S + 500 },
        ],
        denies: [{ permission: 'read:c', expiresAt: NOW_S + 300 }],
        roles: [{ role: 'reader', expiresAt: NOW_S + 100 }],
      }),
    );

    expect(set.nextExpiry).toBe(NOW_S + 100);
  });

  it('has no next expiry when nothing expires', () => {
    expect(setFor(user({ grants: ['read:a'], roles: ['reader'] })).nextExpiry).toBeUndefined();
  });
});

describe('explicit denies', () => {
  it('beats a direct allow', () => {
    const set = setFor(user({ grants: ['read:*'], denies: ['read:secrets'] }));

    expect(set.check('read:secrets', input())).toEqual({
      effect: 'deny',
      grant: 'read:secrets',
      via: 'direct',
    });
    expect(effectOf(set, 'read:posts')).toBe('allow');
  });

  it('beats an exact allow with a wildcard deny', () => {
    const set = setFor(user({ grants: ['delete:posts:42'], denies: ['delete:*'] }));

    expect(effectOf(set, 'delete:posts:42')).toBe('deny');
  });

  it('via a role beats a direct allow', () => {
    const set = setFor(user({ grants: ['delete:posts:pinned'], roles: ['editor'] }));

    expect(set.check('delete:posts:pinned', input())).toEqual({
      effect: 'deny',
      grant: 'delete:posts:pinned',
      via: ['editor'],
    });
  });

  it('applies a conditional deny only when its condition holds', () => {
    const set = setFor(
      user({
        grants: ['read:reports'],
        denies: [{ permission: 'read:reports', when: { country: ['KP'] } }],
      }),
    );

    expect(effectOf(set, 'read:reports', { country: 'KP' })).toBe('deny');
    expect(effectOf(set, 'read:reports', { country: 'DE' })).toBe('allow');
  });
});

describe('a conditional deny whose condition cannot be evaluated applies (fail closed)', () => {
  // The review's repro: an `ops` role with `*` and three conditional denies.
  const ops = compileRoles([
    {
      name: 'ops',
      grants: [{ permission: '*' }],
      denies: [
        { permission: 'delete:*', when: { ip: ['203.0.113.0/24'] } },
        { permission: 'admin:*', when: { country: ['KP'] } },
        { permission: 'write:*', when: { claims: { contractor: true } } },
      ],
      inherits: [],
    },
  ]);
  const set = setFor(user({ roles: ['ops'] }), { roles: ops });

  it.each([
    ['in the range', { ip: '203.0.113.9' }, 'deny'],
    ['outside the range', { ip: '198.51.100.1' }, 'allow'],
    ['no ip', {}, 'deny'],
    ['a forwarded list', { ip: '203.0.113.9, 10.0.0.1' }, 'deny'],
    ['a list starting outside the range', { ip: '10.0.0.1, 203.0.113.9' }, 'deny'],
    ['an address with a port', { ip: '203.0.113.9:5555' }, 'deny'],
    ['a zone id', { ip: 'fe80::1%eth0' }, 'deny'],
    ['garbage', { ip: 'unknown' }, 'deny'],
  ] as const)('an ip deny with %s: %s', (_case, extra, expected) => {
    expect(effectOf(set, 'delete:posts:1', extra)).toBe(expected);
  });

  it.each([
    ['the listed country', { country: 'KP' }, 'deny'],
    ['another country', { country: 'DE' }, 'allow'],
    ['no country', {}, 'deny'],
    ['an unknown country (XX)', { country: 'XX' }, 'deny'],
    ['Tor (T1)', { country: 'T1' }, 'deny'],
  ] as const)('a country deny with %s: %s', (_case, extra, expected) => {
    expect(effectOf(set, 'admin:users', extra)).toBe(expected);
  });

  it.each([
    ['the claim equal', { claims: { contractor: true } }, 'deny'],
    ['the claim different', { claims: { contractor: false } }, 'allow'],
    ['the claim absent', {}, 'deny'],
  ] as const)('a claims deny with %s: %s', (_case, extra, expected) => {
    expect(effectOf(set, 'write:posts:1', extra)).toBe(expected);
  });

  it('reports the deny that applied', () => {
    expect(set.check('delete:posts:1', input())).toEqual({
      effect: 'deny',
      grant: 'delete:*',
      via: ['ops'],
    });
  });

  it('still lets a deny whose condition is known to fail stand aside', () => {
    const both = setFor(
      user({
        grants: ['delete:posts:1'],
        denies: [{ permission: 'delete:*', when: { ip: ['203.0.113.0/24'], country: ['KP'] } }],
      }),
    );

    // The ip is outside the range, so the deny cannot hold whatever the country.
    expect(effectOf(both, 'delete:posts:1', { ip: '198.51.100.1' })).toBe('allow');
    expect(effectOf(both, 'delete:posts:1', { ip: '203.0.113.9' })).toBe('deny');
  });
});

describe('a conditional grant whose condition cannot be evaluated does not apply', () => {
  const set = setFor(
    user({
      grants: [
        { permission: 'delete:posts:*', when: { ip: ['203.0.113.0/24'] } },
        { permission: 'admin:users', when: { country: ['DE'] } },
        { permission: 'write:posts:*', when: { claims: { staff: true } } },
      ],
    }),
  );

  it.each([
    ['no ip', {}],
    ['a forwarded list', { ip: '203.0.113.9, 10.0.0.1' }],
    ['an address with a port', { ip: '203.0.113.9:5555' }],
    ['a zone id', { ip: 'fe80::1%eth0' }],
  ] as const)('an ip grant with %s', (_case, extra) => {
    expect(effectOf(set, 'delete:posts:1', extra)).toBe('none');
  });

  it('an ip grant with its address allows', () => {
    expect(effectOf(set, 'delete:posts:1', { ip: '203.0.113.9' })).toBe('allow');
  });

  it.each([
    ['no country', {}, 'none'],
    ['XX', { country: 'XX' }, 'none'],
    ['DE', { country: 'DE' }, 'allow'],
  ] as const)('a country grant with %s: %s', (_case, extra, expected) => {
    expect(effectOf(set, 'admin:users', extra)).toBe(expected);
  });

  it.each([
    ['absent', {}, 'none'],
    ['different', { claims: { staff: false } }, 'none'],
    ['equal', { claims: { staff: true } }, 'allow'],
  ] as const)('a claims grant with the claim %s: %s', (_case, extra, expected) => {
    expect(effectOf(set, 'write:posts:1', extra)).toBe(expected);
  });
});

describe('conditional grants', () => {
  it('allows only when the condition holds', () => {
    const set = setFor(user({ roles: ['office'] }));

    expect(effectOf(set, 'admin:billing', { ip: '10.1.1.1' })).toBe('allow');
    expect(effectOf(set, 'admin:billing', { ip: '192.0.2.1' })).toBe('none');
    expect(effectOf(set, 'admin:billing')).toBe('none');
  });

  it('falls back to another grant when the condition fails', () => {
    const set = setFor(
      user({
        grants: [{ permission: 'read:posts', when: { claims: { mfa: true } } }, 'read:*'],
      }),
    );

    expect(set.check('read:posts', input())).toMatchObject({ grant: 'read:*' });
    expect(set.check('read:posts', input({ claims: { mfa: true } }))).toMatchObject({
      grant: 'read:posts',
    });
  });
});

describe('broken store records fail closed', () => {
  it('skip a grant with an invalid permission, with a warning', () => {
    const set = setFor(user({ grants: ['read', 'read:posts'] }));

    expect(set.entries().map((e) => e.permission)).toEqual(['read:posts']);
    expect(set.warnings).toEqual([expect.stringContaining('user.grants[0].permission')]);
  });

  it('skip a grant with an invalid condition, with a warning', () => {
    const set = setFor(
      user({ grants: [{ permission: 'read:posts', when: { ip: ['10.0.0.0/99'] } }] }),
    );

    expect(effectOf(set, 'read:posts', { ip: '10.0.0.1' })).toBe('none');
    expect(set.warnings).toEqual([expect.stringContaining('user.grants[0].when.ip[0]')]);
  });

  it('skip a grant with a malformed expiry', () => {
    const set = setFor(
      user({ grants: [{ permission: 'read:posts', expiresAt: 'soon' as unknown as number }] }),
    );

    expect(effectOf(set, 'read:posts')).toBe('none');
  });

  it('apply a deny with an invalid condition unconditionally, with a warning', () => {
    const set = setFor(
      user({
        grants: ['read:posts'],
        denies: [{ permission: 'read:posts', when: { tz: 'nope' } as never }],
      }),
    );

    expect(effectOf(set, 'read:posts')).toBe('deny');
    expect(set.warnings).toEqual([expect.stringContaining('unconditionally')]);
  });

  it('throw StoreError for a deny whose permission is unreadable', () => {
    const act = () => setFor(user({ denies: ['delete posts'] }));

    expect(act).toThrow(StoreError);
    expect(act).toThrow(expect.objectContaining({ code: 'store_invalid_record' }));
  });

  it('throw StoreError for a record without lists', () => {
    const record = { subject: 'u', grants: [], roles: [] } as unknown as UserRecord;

    expect(() => setFor(record)).toThrow(expect.objectContaining({ code: 'store_invalid_record' }));
  });

  it('skip an allow with an unknown key (a misspelt expires), with a warning', () => {
    const set = setFor(
      user({
        grants: [{ permission: 'read:posts', expires: 1 } as unknown as Grant, 'read:comments'],
      }),
      { now: 9e12 },
    );

    expect(set.check('read:posts', input({ now: 9e12 })).effect).toBe('none');
    expect(set.check('read:comments', input({ now: 9e12 })).effect).toBe('allow');
    expect(set.warnings).toEqual([expect.stringContaining('user.grants[0].expires')]);
  });

  it('skip a role allow with an unknown key, with a warning', () => {
    const roles = compileRoles(policyRoles, [
      {
        name: 'temp',
        grants: [{ permission: 'read:posts', expire: 1 } as unknown as Grant],
        inherits: [],
      },
    ]);

    const set = setFor(user({ roles: ['temp'] }), { roles });

    expect(effectOf(set, 'read:posts')).toBe('none');
    expect(roles.warnings).toEqual([expect.stringContaining('store roles.temp.grants[0].expire')]);
  });

  it('throw StoreError for a deny with an unknown key', () => {
    const act = () =>
      setFor(user({ denies: [{ permission: 'read:posts', expires: 1 } as unknown as Grant] }));

    expect(act).toThrow(expect.objectContaining({ code: 'store_invalid_record' }));
  });

  it('throw StoreError for a role assignment with an unknown key', () => {
    const record = user({ roles: [{ role: 'editor', expires: 1 } as unknown as RoleAssignment] });

    expect(() => setFor(record, { now: 9e12 })).toThrow(
      expect.objectContaining({ code: 'store_invalid_record' }),
    );
  });

  it('throw StoreError for a store role deny with an unknown key', () => {
    const act = () =>
      compileRoles(policyRoles, [
        {
          name: 'temp',
          grants: [],
          denies: [{ permission: 'read:posts', when: undefined, until: 1 } as unknown as Grant],
          inherits: [],
        },
      ]);

    expect(act).toThrow(expect.objectContaining({ code: 'store_invalid_record' }));
  });

  it('throw StoreError for a role assignment with a malformed expiry', () => {
    const record = user({ roles: [{ role: 'editor', expiresAt: '2030' as unknown as number }] });

    expect(() => setFor(record)).toThrow(StoreError);
  });
});

describe('entries', () => {
  it('lists every allow and deny with origin, expiry and condition', () => {
    const set = setFor(
      user({
        grants: [{ permission: 'read:posts', expiresAt: NOW_S + 10 }],
        denies: [{ permission: 'read:secrets', when: { country: ['KP'] } }],
        roles: ['editor'],
      }),
    );

    expect(set.entries()).toEqual([
      { permission: 'read:posts', effect: 'allow', via: 'direct', expiresAt: NOW_S + 10 },
      { permission: 'read:secrets', effect: 'deny', via: 'direct', when: { country: ['KP'] } },
      { permission: 'write:posts', effect: 'allow', via: ['editor'] },
      { permission: 'delete:posts:*', effect: 'allow', via: ['editor'] },
      { permission: 'delete:posts:pinned', effect: 'deny', via: ['editor'] },
      { permission: 'read:*', effect: 'allow', via: ['editor', 'reader'] },
    ]);
  });
});
