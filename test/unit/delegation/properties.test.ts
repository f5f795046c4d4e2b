/**
 * Property tests for the rule at use time, through the real verifier and decide():
 *
 * 1. a delegation never allows what the delegator alone would be denied;
 * 2. a chain only narrows: whatever the child of an exchange allows, its parent allows;
 * and the scope algebra the exchange relies on agrees with the reference matcher.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  meetPatterns,
  narrowEntries,
  patternCovers,
  patternsOverlap,
  planExchange,
  refusalFor,
} from '../../../src/delegation/index.ts';
import { ExchangeError } from '../../../src/errors.ts';
import { permissionMatches } from '../../../src/permissions/index.ts';
import { compilePolicy, delegatorLacks, Gatehouse } from '../../../src/policy/index.ts';
import { MemoryStore } from '../../../src/stores/index.ts';
import type { Grant } from '../../../src/types.ts';
import {
  delegationClaims,
  delegationPolicy,
  KEYS_ENV,
  makeKeys,
  signDelegation,
  type TestKeys,
} from '../../support/delegation.ts';
import { createTestIssuer, type TestIssuer } from '../../support/issuer.ts';

const NOW = Date.parse('2026-11-23T12:00:00Z');
const now = () => NOW;
let idp: TestIssuer;
let keys: TestKeys;
let ownToken: string;

beforeAll(async () => {
  idp = await createTestIssuer({ now });
  keys = await makeKeys();
  ownToken = await idp.mint({ sub: 'alice' });
});

// A small alphabet so that grants, denies, scopes, ceilings and requests collide often.
const segment = fc.constantFrom('read', 'write', 'docs', 'x', '1', '*');
const pattern = fc
  .array(segment, { minLength: 2, maxLength: 4 })
  .map((parts) => parts.join(':'))
  .filter((p) => !p.startsWith('*') || p.length > 1);
const concrete = fc
  .array(fc.constantFrom('read', 'write', 'docs', 'x', '1'), { minLength: 2, maxLength: 4 })
  .map((parts) => parts.join(':'));
const grants = fc
  .array(pattern, { maxLength: 4 })
  .map((list) => list.map((permission): Grant => ({ permission })));
const actorNames = ['reporter', 'exporter', 'auditor'] as const;
const ceilings = fc.tuple(
  fc.array(pattern, { minLength: 1, maxLength: 3 }),
  fc.array(pattern, { minLength: 1, maxLength: 3 }),
  fc.array(pattern, { minLength: 1, maxLength: 3 }),
);

function world(allows: Grant[], denies: Grant[], ceiling: readonly string[][]) {
  const store = new MemoryStore();
  store.putUser({ subject: 'alice', roles: [], grants: allows, denies });
  const doc = delegationPolicy(
    idp,
    { routes: [{ path: '/r/*', authenticated: true }] },
    { actors: actorNames.map((subject, i) => ({ subject, for: ['*'], ceiling: ceiling[i]! })) },
  );
  const policy = compilePolicy(doc, { env: { [KEYS_ENV]: keys.text } });
  return new Gatehouse({ policy, store, now });
}

const decideFor = (gatehouse: Gatehouse, authorization: string, permission: string) =>
  gatehouse.decide({ method: 'GET', path: '/r/x', authorization }).then(async (first) => {
    if (first.principal === undefined) return first;
    return gatehouse.check(first.principal, [permission]);
  });

describe('delegation properties', () => {
  it('never allows what the delegator alone would be denied', async () => {
    await fc.assert(
      fc.asyncProperty(
        grants,
        grants,
        fc.array(pattern, { minLength: 1, maxLength: 3 }),
        ceilings,
        fc.integer({ min: 1, max: 3 }),
        concrete,
        async (allows, denies, scope, ceiling, depth, permission) => {
          const gatehouse = world(allows, denies, ceiling);
          const chain = actorNames.slice(0, depth).map((subject) => ({ subject }));
          const token = await signDelegation(
            keys,
            delegationClaims(NOW, 'alice', chain, scope.join(' ')),
          );
          const delegated = await decideFor(gatehouse, `Bearer ${token}`, permission);
          const direct = await decideFor(gatehouse, `Bearer ${ownToken}`, permission);
          if (delegated.allow) {
            expect(direct.allow).toBe(true);
            // And it is within the scope and every actor's ceiling, by the reference matcher.
            expect(scope.some((s) => permissionMatches(s, permission))).toBe(true);
            for (let i = 0; i < depth; i++) {
              expect(ceiling[i]!.some((c) => permissionMatches(c, permission))).toBe(true);
            }
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it('a chain only narrows: a child from an exchange allows nothing its parent does not', async () => {
    await fc.assert(
      fc.asyncProperty(
        grants,
        grants,
        fc.array(pattern, { minLength: 1, maxLength: 3 }),
        fc.array(pattern, { minLength: 1, maxLength: 3 }),
        ceilings,
        concrete,
        async (allows, denies, parentScope, childScope, ceiling, permission) => {
          const gatehouse = world(allows, denies, ceiling);
          const parentToken = await signDelegation(
            keys,
            delegationClaims(NOW, 'alice', [{ subject: 'reporter' }], parentScope.join(' ')),
          );
          const parent = (await gatehouse.verifier.verify(parentToken)).principal;
          const actor = (await gatehouse.verifier.verify(await idp.mint({ sub: 'exporter' })))
            .principal;
          let childToken: string;
          try {
            const plan = await planExchange({
              config: gatehouse.policy.delegation!,
              subject: parent,
              actor,
              scope: childScope.join(' '),
              audience: undefined,
              now: NOW,
              delegatorLacks: (p, s) => delegatorLacks(gatehouse, p, s),
            });
            expect(plan.claims.exp).toBeLessThanOrEqual(parent.expiresAt);
            childToken = await signDelegation(
              keys,
              plan.claims as unknown as Record<string, unknown>,
            );
          } catch (error) {
            if (error instanceof ExchangeError) return; // refused at exchange: nothing to widen
            throw error;
          }
          const child = await decideFor(gatehouse, `Bearer ${childToken}`, permission);
          const parentDecision = await decideFor(gatehouse, `Bearer ${parentToken}`, permission);
          if (child.allow) expect(parentDecision.allow).toBe(true);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('patternCovers agrees with the reference matcher', () => {
    fc.assert(
      fc.property(pattern, pattern, concrete, (outer, inner, permission) => {
        if (patternCovers(outer, inner) && permissionMatches(inner, permission)) {
          expect(permissionMatches(outer, permission)).toBe(true);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('patternsOverlap finds every permission two patterns share', () => {
    fc.assert(
      fc.property(pattern, pattern, concrete, (a, b, permission) => {
        if (permissionMatches(a, permission) && permissionMatches(b, permission)) {
          expect(patternsOverlap(a, b)).toBe(true);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('narrowing a whole permission set (AWS principal mode)', () => {
  it('meetPatterns matches exactly what both patterns match', () => {
    fc.assert(
      fc.property(pattern, pattern, concrete, (a, b, permission) => {
        const met = meetPatterns(a, b);
        const both = permissionMatches(a, permission) && permissionMatches(b, permission);
        expect(met !== null && permissionMatches(met, permission)).toBe(both);
      }),
      { numRuns: 3000 },
    );
  });

  it('narrowEntries allows exactly delegator ∩ scope ∩ every ceiling', () => {
    fc.assert(
      fc.property(
        grants,
        fc.array(pattern, { minLength: 1, maxLength: 3 }),
        ceilings,
        fc.integer({ min: 1, max: 3 }),
        concrete,
        (allows, scope, ceiling, depth, permission) => {
          const view = {
            scope,
            ceilings: ceiling.slice(0, depth),
            actors: actorNames.slice(0, depth).map((subject) => ({ subject })),
            tokenId: undefined,
          };
          const entries = allows.map((g) => ({
            permission: g.permission,
            effect: 'allow' as const,
            via: 'direct' as const,
          }));
          const narrowed = narrowEntries(entries, view);
          if (narrowed === null) return;
          const allowed = narrowed.some((e) => permissionMatches(e.permission, permission));
          const expected =
            allows.some((g) => permissionMatches(g.permission, permission)) &&
            refusalFor(view, permission) === null;
          expect(allowed).toBe(expected);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
