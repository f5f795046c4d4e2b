/**
 * Hardening of delegation from the security review of issue 12 (F5 to F9): claim conditions at
 * use, the actor's issuer, well-formed subjects, bounded scopes and tokens, and IdP `act`.
 */
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  encodeActor,
  MAX_SCOPE_BYTES,
  MAX_SCOPE_ITEMS,
  standingGrant,
  TOKEN_EXCHANGE_GRANT,
  TOKEN_TYPE_ACCESS_TOKEN,
  TOKEN_TYPE_JWT,
  TOKEN_TYPE_STANDING,
} from '../../../src/delegation/index.ts';
import { identityHeaders } from '../../../src/http/responses.ts';
import { type ExchangeAudit, handleTokenRequest } from '../../../src/http/token-exchange.ts';
import { compilePolicy, Gatehouse } from '../../../src/policy/index.ts';
import { MemoryStore } from '../../../src/stores/index.ts';
import { delegationPolicy, KEYS_ENV, makeKeys, type TestKeys } from '../../support/delegation.ts';
import { AUDIENCE, createTestIssuer, type TestIssuer } from '../../support/issuer.ts';

const START = Date.parse('2026-11-23T12:00:00Z');
let clock = START;
const now = () => clock;
let idp: TestIssuer;
let partner: TestIssuer;
let keys: TestKeys;
let store: MemoryStore;
let audits: ExchangeAudit[];

beforeAll(async () => {
  idp = await createTestIssuer({ now });
  partner = await createTestIssuer({ now, issuer: 'https://partner.example/', kid: 'partner' });
  keys = await makeKeys();
});
beforeEach(() => {
  clock = START;
  store = new MemoryStore();
  audits = [];
});

async function exchange(g: Gatehouse, params: Record<string, string>) {
  const res = await handleTokenRequest(
    g,
    new Request('https://g.test/.gatehouse/v1/token', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: TOKEN_EXCHANGE_GRANT, ...params }).toString(),
    }),
    { now, audit: (e) => audits.push(e) },
  );
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('the actor issuer of standing grants and actor rules', () => {
  /** Two identity providers; every actor rule names its issuer, as the policy then requires. */
  function twoIssuers(standing: string[]) {
    const doc = delegationPolicy(idp, {}, { standingGrants: true });
    const issuers = [
      ...doc.issuers,
      {
        issuer: partner.issuer,
        audiences: [AUDIENCE],
        algorithms: ['ES256'],
        keys: { jwks: partner.jwks },
      },
    ];
    const delegation = {
      ...doc.delegation!,
      actors: doc.delegation!.actors!.map((rule) => ({ ...rule, issuer: idp.issuer })),
    };
    store.putUser({
      subject: 'alice',
      roles: [{ role: 'reader' }],
      grants: standing.map((permission) => ({ permission, expiresAt: START / 1000 + 86_400 })),
      denies: [],
    });
    return new Gatehouse({
      policy: compilePolicy({ ...doc, issuers, delegation } as typeof doc, {
        env: { [KEYS_ENV]: keys.text },
      }),
      store,
      now,
    });
  }
  const standingExchange = async (g: Gatehouse, actor: TestIssuer) =>
    exchange(g, {
      subject_token: 'alice',
      subject_token_type: TOKEN_TYPE_STANDING,
      actor_token: await actor.mint({ sub: 'bob' }),
      actor_token_type: TOKEN_TYPE_JWT,
      scope: 'read:posts:*',
    });

  it("with two identity providers, partner IdP's 'bob' cannot use a grant made for 'bob'", async () => {
    // The short form cannot say whose bob it meant: with two providers it is honoured for neither.
    const short = twoIssuers(['gatehouse.delegate:bob:read:posts:*']);
    expect((await standingExchange(short, partner)).status).toBe(400);
    expect((await standingExchange(short, idp)).status).toBe(400);
    // Bound to the corporate provider: its bob only.
    const bound = twoIssuers([standingGrant('bob', 'read:posts:*', idp.issuer)!]);
    expect((await standingExchange(bound, partner)).status).toBe(400);
    const out = await standingExchange(bound, idp);
    expect(out.status).toBe(200);
    const used = await bound.decide({
      method: 'GET',
      path: '/posts/1',
      authorization: `Bearer ${out.body.access_token as string}`,
    });
    expect(used.allow).toBe(true);
  });

  it('with one identity provider, the short form keeps naming its actor', async () => {
    const g = new Gatehouse({
      policy: compilePolicy(delegationPolicy(idp, {}, { standingGrants: true }), {
        env: { [KEYS_ENV]: keys.text },
      }),
      store,
      now,
    });
    store.putUser({
      subject: 'alice',
      roles: [{ role: 'reader' }],
      grants: [
        { permission: 'gatehouse.delegate:bob:read:posts:*', expiresAt: START / 1000 + 86_400 },
      ],
      denies: [],
    });
    expect((await standingExchange(g, idp)).status).toBe(200);
  });

  it('requires issuer on every actor rule when the policy has more than one issuer', () => {
    const doc = delegationPolicy(idp);
    const issuers = [
      ...doc.issuers,
      {
        issuer: partner.issuer,
        audiences: [AUDIENCE],
        algorithms: ['ES256'],
        keys: { jwks: partner.jwks },
      },
    ];
    // delegationPolicy's exporter rule (index 1) names no issuer.
    expect(() =>
      compilePolicy({ ...doc, issuers } as typeof doc, { env: { [KEYS_ENV]: keys.text } }),
    ).toThrow(
      expect.objectContaining({
        name: 'ConfigError',
        field: expect.stringMatching(/delegation\.actors\[1\]\.issuer$/),
      }),
    );
  });
});

describe('subjects that are not well-formed Unicode', () => {
  it('encode to no grant: a lone surrogate never names the grant of U+FFFD', () => {
    for (const lone of ['\uD800', '\uDFFF', 'bob\uD83D', '\uDE00bob']) {
      expect(encodeActor(lone)).not.toBe(encodeActor(lone.replace(/[\uD800-\uDFFF]/g, '\uFFFD')));
      expect(standingGrant(lone, 'read:posts:*')).toBeNull();
    }
    expect(encodeActor('\u{1F600}')).toBe('%F0%9F%98%80'); // a pair is one character
  });

  it('are refused at the token endpoint, as the actor or as the standing reference', async () => {
    const g = new Gatehouse({
      policy: compilePolicy(
        delegationPolicy(
          idp,
          {},
          {
            standingGrants: true,
            actors: [{ subject: '*\uD800', issuer: idp.issuer, for: ['*'], ceiling: ['read:*'] }],
          },
        ),
        { env: { [KEYS_ENV]: keys.text } },
      ),
      store,
      now,
    });
    store.putUser({ subject: 'alice', roles: [{ role: 'reader' }], grants: [], denies: [] });
    const asActor = await exchange(g, {
      subject_token: await idp.mint({ sub: 'alice' }),
      subject_token_type: TOKEN_TYPE_ACCESS_TOKEN,
      actor_token: await idp.mint({ sub: '*\uD800' }),
      actor_token_type: TOKEN_TYPE_JWT,
      scope: 'read:posts:*',
    });
    expect(asActor).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
    const asReference = await exchange(g, {
      subject_token: 'alice\uDC00',
      subject_token_type: TOKEN_TYPE_STANDING,
      actor_token: await idp.mint({ sub: 'reporter' }),
      actor_token_type: TOKEN_TYPE_JWT,
      scope: 'read:posts:*',
    });
    // A form body is UTF-8, so the lone surrogate arrives as U+FFFD: a subject nobody granted.
    expect(asReference.status).toBe(400);
    expect(asReference.body.access_token).toBeUndefined();
  });
});

describe('claim-conditioned denies of the delegator', () => {
  it('a deny on claims.iss that stops alice also stops her delegation token', async () => {
    const g = new Gatehouse({
      policy: compilePolicy(delegationPolicy(idp), { env: { [KEYS_ENV]: keys.text } }),
      store,
      now,
    });
    store.putUser({ subject: 'alice', roles: [{ role: 'reader' }], grants: [], denies: [] });
    const own = await idp.mint({ sub: 'alice' });
    const out = await exchange(g, {
      subject_token: own,
      subject_token_type: TOKEN_TYPE_ACCESS_TOKEN,
      actor_token: await idp.mint({ sub: 'reporter' }),
      actor_token_type: TOKEN_TYPE_JWT,
      scope: 'read:reports',
    });
    expect(out.status).toBe(200);
    // Later, the admin denies read:reports to tokens of this identity provider (e.g. after an IdP incident).
    store.putUser({
      subject: 'alice',
      roles: [{ role: 'reader' }],
      grants: [],
      denies: [{ permission: 'read:reports', when: { claims: { iss: idp.issuer } } }],
    });
    clock += 31_000; // past the permission cache
    const ownNow = await idp.mint({ sub: 'alice' });
    const asAlice = await g.decide({
      method: 'GET',
      path: '/reports',
      authorization: `Bearer ${ownNow}`,
    });
    expect(asAlice.allow).toBe(false);
    const asDelegate = await g.decide({
      method: 'GET',
      path: '/reports',
      authorization: `Bearer ${out.body.access_token as string}`,
    });
    // A delegation never allows what the delegator alone is denied.
    expect(asDelegate.allow).toBe(false);
  });
});

describe('claim conditions at use for a delegated request', () => {
  it('a claim-conditioned allow of the delegator never applies to her delegation token', async () => {
    const g = new Gatehouse({
      policy: compilePolicy(delegationPolicy(idp), { env: { [KEYS_ENV]: keys.text } }),
      store,
      now,
    });
    store.putUser({
      subject: 'alice',
      roles: [],
      grants: [{ permission: 'read:reports', when: { claims: { iss: idp.issuer } } }],
      denies: [],
    });
    const own = await idp.mint({ sub: 'alice' });
    expect(
      (await g.decide({ method: 'GET', path: '/reports', authorization: `Bearer ${own}` })).allow,
    ).toBe(true);
    const out = await exchange(g, {
      subject_token: own,
      subject_token_type: TOKEN_TYPE_ACCESS_TOKEN,
      actor_token: await idp.mint({ sub: 'reporter' }),
      actor_token_type: TOKEN_TYPE_JWT,
      scope: 'read:reports',
    });
    expect(out.status).toBe(200); // alice, present with her own token, holds it now
    const token = out.body.access_token as string;
    const used = await g.decide({
      method: 'GET',
      path: '/reports',
      authorization: `Bearer ${token}`,
    });
    expect(used).toMatchObject({ allow: false, reason: 'missing_permission' });
  });
});

describe('scope and token size at the endpoint', () => {
  const gatehouse = (extra = {}) =>
    new Gatehouse({
      policy: compilePolicy(delegationPolicy(idp, extra), { env: { [KEYS_ENV]: keys.text } }),
      store,
      now,
    });
  const ask = async (g: Gatehouse, scope: string, claims: Record<string, unknown> = {}) =>
    exchange(g, {
      subject_token: await idp.mint({ sub: 'alice', ...claims }),
      subject_token_type: TOKEN_TYPE_ACCESS_TOKEN,
      actor_token: await idp.mint({ sub: 'reporter', ...claims }),
      actor_token_type: TOKEN_TYPE_JWT,
      scope,
    });

  it('refuses (invalid_scope) more than 64 permissions or 2 KiB, before any other work', async () => {
    store.putUser({ subject: 'alice', roles: [{ role: 'reader' }], grants: [], denies: [] });
    const g = gatehouse();
    const items = (n: number, width = 1) =>
      Array.from({ length: n }, (_, i) => `read:${String(i).padStart(width, '0')}`).join(' ');
    expect((await ask(g, items(MAX_SCOPE_ITEMS))).status).toBe(200);
    for (const scope of [
      items(MAX_SCOPE_ITEMS + 1),
      items(5000),
      `read:${'x'.repeat(MAX_SCOPE_BYTES)}`,
      `${'read:a '.repeat(400)}`, // duplicates count as bytes
    ]) {
      const out = await ask(g, scope);
      expect({ length: scope.length, status: out.status, error: out.body.error }).toEqual({
        length: scope.length,
        status: 400,
        error: 'invalid_scope',
      });
    }
    // Every audit line stays small, whatever the request held.
    for (const line of audits)
      expect(JSON.stringify(line).length).toBeLessThan(MAX_SCOPE_BYTES + 512);
  });

  it("refuses to sign a token longer than the verifier's maxTokenBytes, whatever makes it long", async () => {
    store.putUser({ subject: 'alice', roles: [{ role: 'reader' }], grants: [], denies: [] });
    const g = gatehouse({ token: { maxTokenBytes: 1024 } });
    expect((await ask(g, 'read:posts:*')).status).toBe(200);
    const longScope = Array.from({ length: 20 }, (_, i) => `read:posts:${'p'.repeat(30)}${i}`).join(
      ' ',
    );
    const longIds = { jti: 'j'.repeat(400) }; // parent ids are carried into the new token
    for (const [scope, claims] of [
      [longScope, {}],
      ['read:posts:*', longIds],
    ] as const) {
      const out = await ask(g, scope, claims);
      expect(out).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
      expect(out.body.access_token).toBeUndefined();
    }
  });
});

describe("an identity provider's token that carries act", () => {
  it('is decided for its subject, names no actor, and is refused as a subject_token', async () => {
    const g = new Gatehouse({
      policy: compilePolicy(delegationPolicy(idp), { env: { [KEYS_ENV]: keys.text } }),
      store,
      now,
    });
    store.putUser({ subject: 'alice', roles: [{ role: 'reader' }], grants: [], denies: [] });
    const obo = await idp.mint({ sub: 'alice', act: { sub: 'some-service' } });
    // The identity provider vouched for alice; its act is its own delegation, not Gatehouse's:
    // no ceiling Gatehouse knows applies, so it never reaches X-Auth-Actor (README, Delegation).
    const d = await g.decide({ method: 'GET', path: '/posts/1', authorization: `Bearer ${obo}` });
    expect(d.allow).toBe(true);
    expect(identityHeaders(d)).not.toHaveProperty('X-Auth-Actor');
    expect(g.delegated(d.principal!)).toBe(false);
    const out = await exchange(g, {
      subject_token: obo,
      subject_token_type: TOKEN_TYPE_ACCESS_TOKEN,
      actor_token: await idp.mint({ sub: 'reporter' }),
      actor_token_type: TOKEN_TYPE_JWT,
      scope: 'read:posts:*',
    });
    expect(out).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
  });
});
