import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type ConditionInput,
  compileConditions,
  compilePermissions,
  compileRoles,
  permissionMatches,
} from '../../../src/permissions/index.ts';
import type { Conditions, Grant, RoleAssignment } from '../../../src/types.ts';

const NOW_S = 1_700_000_000;
const NOW_MS = NOW_S * 1000;

// A tiny alphabet so that grants and required permissions collide often.
const literal = fc.constantFrom('a', 'b', 'c');
const required = fc.array(literal, { minLength: 2, maxLength: 4 }).map((s) => s.join(':'));
const pattern = fc.oneof(
  { weight: 1, arbitrary: fc.constant('*') },
  {
    weight: 9,
    arbitrary: fc
      .array(fc.oneof(literal, fc.constant('*')), { minLength: 2, maxLength: 4 })
      .map((s) => s.join(':')),
  },
);
const expiry = fc.option(fc.integer({ min: NOW_S - 5, max: NOW_S + 5 }), { nil: undefined });
const grant: fc.Arbitrary<Grant> = fc
  .record({
    permission: pattern,
    expiresAt: expiry,
    country: fc.option(fc.constantFrom('DE', 'FR'), { nil: undefined }),
  })
  .map(({ permission, expiresAt, country }) => ({
    permission,
    ...(expiresAt !== undefined && { expiresAt }),
    ...(country !== undefined && { when: { country: [country] } }),
  }));
const country = fc.option(fc.constantFrom('DE', 'FR', 'US'), { nil: undefined });

interface Principal {
  direct: Grant[];
  denies: Grant[];
  roleGrants: Grant[];
  roleDenies: Grant[];
  assignment: RoleAssignment;
}

const principal: fc.Arbitrary<Principal> = fc.record({
  direct: fc.array(grant, { maxLength: 8 }),
  denies: fc.array(grant, { maxLength: 3 }),
  roleGrants: fc.array(grant, { maxLength: 8 }),
  roleDenies: fc.array(grant, { maxLength: 2 }),
  assignment: fc
    .option(fc.integer({ min: NOW_S - 5, max: NOW_S + 5 }), { nil: undefined })
    .map((expiresAt) => ({ role: 'r', ...(expiresAt !== undefined && { expiresAt }) })),
});

function compile(p: Principal) {
  const roles = compileRoles([
    { name: 'r', grants: p.roleGrants, denies: p.roleDenies, inherits: [] },
  ]);
  return compilePermissions({
    user: { subject: 's', grants: p.direct, denies: p.denies, roles: [p.assignment] },
    roles,
    now: NOW_MS,
  });
}

const inputFor = (c: string | undefined) => ({
  now: NOW_MS,
  claims: {},
  ...(c !== undefined && { country: c }),
});

describe('permission set properties', () => {
  it('never allows when a matching live unconditional deny exists', () => {
    fc.assert(
      fc.property(
        principal,
        required,
        pattern,
        country,
        fc.boolean(),
        (p, req, deny, c, viaRole) => {
          fc.pre(permissionMatches(deny, req));
          const withDeny = viaRole
            ? {
                ...p,
                roleDenies: [...p.roleDenies, { permission: deny }],
                assignment: { role: 'r' },
              }
            : { ...p, denies: [...p.denies, { permission: deny }] };

          expect(compile(withDeny).check(req, inputFor(c)).effect).toBe('deny');
        },
      ),
    );
  });

  it('never allows through an expired grant or an expired assignment', () => {
    fc.assert(
      fc.property(principal, required, country, fc.boolean(), (p, req, c, expireAssignment) => {
        // Live while now < expiresAt, so an expiry of exactly now has already passed.
        const expire = (g: Grant): Grant => ({
          ...g,
          expiresAt: Math.min(g.expiresAt ?? NOW_S, NOW_S),
        });
        const expired = expireAssignment
          ? { ...p, direct: p.direct.map(expire), assignment: { role: 'r', expiresAt: NOW_S } }
          : { ...p, direct: p.direct.map(expire), roleGrants: p.roleGrants.map(expire) };

        expect(compile(expired).check(req, inputFor(c)).effect).not.toBe('allow');
      }),
    );
  });

  it('never turns an allow into anything else when an allow grant is added', () => {
    fc.assert(
      fc.property(principal, grant, required, country, (p, extra, req, c) => {
        const before = compile(p).check(req, inputFor(c));
        fc.pre(before.effect === 'allow');
        const after = compile({ ...p, direct: [...p.direct, extra] }).check(req, inputFor(c));

        expect(after.effect).toBe('allow');
      }),
    );
  });

  it('agrees with the reference matcher on every grant', () => {
    fc.assert(
      fc.property(fc.array(pattern, { maxLength: 10 }), required, (patterns, req) => {
        const set = compilePermissions({
          user: {
            subject: 's',
            grants: patterns.map((permission) => ({ permission })),
            denies: [],
            roles: [],
          },
          roles: compileRoles([]),
          now: NOW_MS,
        });

        const result = set.check(req, inputFor(undefined));

        expect(result.effect === 'allow').toBe(patterns.some((g) => permissionMatches(g, req)));
        if (result.effect === 'allow') expect(permissionMatches(result.grant, req)).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });

  it('agrees with the reference matcher for denies', () => {
    fc.assert(
      fc.property(pattern, required, (deny, req) => {
        const set = compilePermissions({
          user: { subject: 's', grants: [], denies: [{ permission: deny }], roles: [] },
          roles: compileRoles([]),
        });

        expect(set.check(req, inputFor(undefined)).effect === 'deny').toBe(
          permissionMatches(deny, req),
        );
      }),
      { numRuns: 500 },
    );
  });

  describe('missing or unreadable input never allows more than a real value would', () => {
    // Conditions over ip, country and one claim; each input fact may be known, missing or
    // unreadable. Completions replace every unknown fact by each readable value.
    const readableIps = ['203.0.113.9', '198.51.100.1'];
    const readableCountries = ['DE', 'KP'];
    const claimValues = [true, false];
    const ipInput = fc.constantFrom(
      ...readableIps,
      undefined,
      '203.0.113.9, 198.51.100.1',
      '203.0.113.9:443',
      'fe80::1%eth0',
      '',
    );
    const countryInput = fc.constantFrom(...readableCountries, undefined, 'XX', 'T1');
    const claimInput = fc.constantFrom(...claimValues, undefined);
    const when: fc.Arbitrary<Conditions> = fc
      .record(
        {
          ip: fc.constantFrom(['203.0.113.0/24'], ['198.51.100.0/24']),
          country: fc.constantFrom(['DE'], ['KP']),
          claims: fc.constantFrom({ contractor: true }, { contractor: false }),
        },
        { requiredKeys: [] },
      )
      .filter((c) => Object.keys(c).length > 0);
    const conditional: fc.Arbitrary<Grant> = fc.record({ permission: pattern, when });
    const rule = fc.oneof(
      conditional,
      pattern.map((permission) => ({ permission })),
    );

    const inputOf = (ip: unknown, country: unknown, contractor: unknown): ConditionInput => ({
      now: NOW_MS,
      claims: contractor === undefined ? {} : { contractor },
      ...(typeof ip === 'string' && { ip }),
      ...(typeof country === 'string' && { country }),
    });

    it('a set that allows with unknown input allows for every completion of it', () => {
      fc.assert(
        fc.property(
          fc.array(rule, { maxLength: 6 }),
          fc.array(conditional, { minLength: 1, maxLength: 3 }),
          required,
          ipInput,
          countryInput,
          claimInput,
          (grants, denies, req, ip, country, contractor) => {
            const set = compilePermissions({
              user: { subject: 's', grants, denies, roles: [] },
              roles: compileRoles([]),
              now: NOW_MS,
            });
            fc.pre(set.check(req, inputOf(ip, country, contractor)).effect === 'allow');
            const ips = ip !== undefined && readableIps.includes(ip) ? [ip] : readableIps;
            const countries =
              country !== undefined && readableCountries.includes(country)
                ? [country]
                : readableCountries;
            const claims = contractor === undefined ? claimValues : [contractor];

            for (const i of ips) {
              for (const c of countries) {
                for (const k of claims) {
                  expect(set.check(req, inputOf(i, c, k)).effect).toBe('allow');
                }
              }
            }
          },
        ),
        { numRuns: 1000 },
      );
    });

    it('a matching deny whose condition is not known to fail always denies', () => {
      fc.assert(
        fc.property(
          fc.array(rule, { maxLength: 6 }),
          conditional,
          required,
          ipInput,
          countryInput,
          claimInput,
          (grants, deny, req, ip, country, contractor) => {
            fc.pre(permissionMatches(deny.permission, req));
            const input = inputOf(ip, country, contractor);
            const holds = compileConditions(deny.when as Conditions, 'when')(input);
            fc.pre(holds !== false);
            const set = compilePermissions({
              user: { subject: 's', grants, denies: [deny], roles: [] },
              roles: compileRoles([]),
              now: NOW_MS,
            });

            expect(set.check(req, input).effect).toBe('deny');
          },
        ),
        { numRuns: 1000 },
      );
    });
  });
});
