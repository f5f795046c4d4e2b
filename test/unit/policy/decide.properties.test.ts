/**
 * Property tests for decide(): random store contents against one route, checked against the
 * plain reference matcher. The token and verifier are shared; only the store varies per run.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { permissionMatches } from '../../../src/permissions/index.ts';
import { compilePolicy, Gatehouse } from '../../../src/policy/index.ts';
import { MemoryStore } from '../../../src/stores/index.ts';
import { createVerifier, type TokenVerifier } from '../../../src/token/index.ts';
import type { Grant, UserRecord } from '../../../src/types.ts';
import { AUDIENCE, createTestIssuer } from '../../support/issuer.ts';

const NOW = Date.parse('2026-11-23T12:00:00Z');
const NOW_S = NOW / 1000;
const now = () => NOW;

let policy: ReturnType<typeof compilePolicy>;
let verifier: TokenVerifier;
let authorization: string;

beforeAll(async () => {
  const idp = await createTestIssuer({ now });
  policy = compilePolicy({
    version: 1,
    issuers: [
      {
        issuer: idp.issuer,
        audiences: [AUDIENCE],
        algorithms: ['ES256'],
        keys: { jwks: idp.jwks },
      },
    ],
    roles: { base: { grants: [] } },
    routes: [{ method: 'GET', path: '/docs/:id', require: ['read:docs:{id}'] }],
  });
  verifier = createVerifier({ ...policy.verifier, now });
  authorization = `Bearer ${await idp.mint()}`;
});

// A small alphabet so that grants and the required permission collide often.
const segment = fc.constantFrom('read', 'write', 'docs', 'x', '1', '2', '*');
const permission = fc
  .array(segment, { minLength: 1, maxLength: 4 })
  .map((parts) => parts.join(':'))
  .filter((p) => p === '*' || p.includes(':'));
const expiry = fc.constantFrom<number | undefined>(undefined, NOW_S - 1, NOW_S + 60);
const grant = fc.record({ permission, expiresAt: expiry }).map(({ permission, expiresAt }) => {
  const g: { permission: string; expiresAt?: number } = { permission };
  if (expiresAt !== undefined) g.expiresAt = expiresAt;
  return g as Grant;
});
const docId = fc.constantFrom('1', '2', 'x');

function live(g: Grant): boolean {
  return g.expiresAt === undefined || NOW_S < g.expiresAt;
}

async function decideWith(grants: readonly Grant[], denies: readonly Grant[], id: string) {
  const store = new MemoryStore();
  const record: UserRecord = { subject: 'alice', roles: [], grants, denies };
  store.putUser(record);
  const gatehouse = new Gatehouse({ policy, store, verifier, now });
  return gatehouse.decide({ method: 'GET', path: `/docs/${id}`, authorization });
}

describe('decide() properties', () => {
  it('agrees with the reference matcher: allow iff a live grant matches and no live deny does', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(grant, { maxLength: 6 }),
        fc.array(grant, { maxLength: 3 }),
        docId,
        async (grants, denies, id) => {
          const required = `read:docs:${id}`;
          const granted = grants.some((g) => live(g) && permissionMatches(g.permission, required));
          const denied = denies.some((g) => live(g) && permissionMatches(g.permission, required));
          const decision = await decideWith(grants, denies, id);
          expect(decision.allow).toBe(granted && !denied);
          if (denied) expect(decision.reason).toBe('explicit_deny');
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a live matching deny always wins, whatever is granted', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(grant, { maxLength: 6 }), docId, async (grants, id) => {
        const decision = await decideWith(
          [...grants, { permission: '*' }],
          [{ permission: `read:docs:${id}` }],
          id,
        );
        expect(decision).toMatchObject({ allow: false, status: 403, reason: 'explicit_deny' });
      }),
      { numRuns: 150 },
    );
  });

  it('an expired grant never allows', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(permission, { minLength: 1, maxLength: 6 }),
        docId,
        async (perms, id) => {
          const expired = perms.map((p) => ({ permission: p, expiresAt: NOW_S - 1 }));
          const decision = await decideWith(
            [...expired, { permission: '*', expiresAt: NOW_S }],
            [],
            id,
          );
          expect(decision.allow).toBe(false);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('adding an allow grant never turns an allow into a deny', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(grant, { maxLength: 6 }),
        fc.array(grant, { maxLength: 3 }),
        grant,
        docId,
        async (grants, denies, extra, id) => {
          const before = await decideWith(grants, denies, id);
          fc.pre(before.allow);
          const after = await decideWith([...grants, extra], denies, id);
          expect(after.allow).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });
});
