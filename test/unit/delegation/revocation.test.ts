/**
 * Revocation reaches delegation (security review of issue 12, F1 and F2): the token endpoint and
 * the self-service /delegations endpoint refuse a signed-out session or a revoked token id as
 * the routes do, and a delegation token minted earlier is refused at use once its delegator or
 * any actor of its chain signs out, or any token it was exchanged from is revoked.
 */
import * as jose from 'jose';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MemoryAdminStore } from '../../../src/admin/memory.ts';
import { PermissionAdmin } from '../../../src/admin/operations.ts';
import {
  TOKEN_EXCHANGE_GRANT,
  TOKEN_TYPE_ACCESS_TOKEN,
  TOKEN_TYPE_JWT,
  TOKEN_TYPE_STANDING,
} from '../../../src/delegation/index.ts';
import { createAdminApi } from '../../../src/http/admin-api.ts';
import { handleTokenRequest } from '../../../src/http/token-exchange.ts';
import { compilePolicy, Gatehouse } from '../../../src/policy/index.ts';
import { MemoryFeed, RevocationFollower } from '../../../src/revocation/index.ts';
import { subjectStorageKey } from '../../../src/stores/keys.ts';
import { delegationPolicy, KEYS_ENV, makeKeys, type TestKeys } from '../../support/delegation.ts';
import { createTestIssuer, type TestIssuer } from '../../support/issuer.ts';

const START = Date.parse('2026-11-23T12:00:00Z');
let clock = START;
const now = () => clock;
let idp: TestIssuer;
let keys: TestKeys;
let backend: MemoryAdminStore;
let feed: MemoryFeed;

beforeAll(async () => {
  idp = await createTestIssuer({ now });
  keys = await makeKeys();
});
beforeEach(() => {
  clock = START;
  backend = new MemoryAdminStore(undefined, now);
  feed = new MemoryFeed({ now, maxChanges: 100 });
});

async function build() {
  const policy = compilePolicy(delegationPolicy(idp, {}, { standingGrants: true }), {
    env: { [KEYS_ENV]: keys.text },
  });
  const admin = new PermissionAdmin({
    store: backend,
    policyRoles: policy.roles,
    actor: 't',
    via: 'cli',
    now,
  });
  await admin.assign({ subject: 'alice' }, 'reader');
  const revocation = new RevocationFollower(feed, { now, awaitReads: true });
  return new Gatehouse({ policy, store: backend.store, now, revocation });
}

async function exchange(g: Gatehouse, params: Record<string, string>) {
  const res = await handleTokenRequest(
    g,
    new Request('https://g.test/.gatehouse/v1/token', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: TOKEN_EXCHANGE_GRANT, ...params }).toString(),
    }),
    { now, audit: () => {} },
  );
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}
const decide = (g: Gatehouse, token: string) =>
  g.decide({ method: 'GET', path: '/posts/1', authorization: `Bearer ${token}` });

describe('revocation at the token endpoint and /delegations', () => {
  it('refuses a signed-out subject token at exchange', async () => {
    const stolen = await idp.mint({ sub: 'alice' }); // iat = START
    clock += 10_000;
    await feed.append({
      notBefore: { key: subjectStorageKey({ subject: 'alice' }), at: START / 1000 + 5 },
    });
    const g = await build();
    expect((await decide(g, stolen)).reason).toBe('session_revoked'); // the edge refuses it ...
    const out = await exchange(g, {
      subject_token: stolen,
      subject_token_type: TOKEN_TYPE_ACCESS_TOKEN,
      actor_token: await idp.mint({ sub: 'reporter' }),
      actor_token_type: TOKEN_TYPE_JWT,
      scope: 'read:posts:*',
    });
    const laundered = out.body.access_token as string | undefined;
    const used = laundered ? (await decide(g, laundered)).allow : false;
    expect({ status: out.status, used }).toEqual({ status: 400, used: false });
  });

  it('refuses a revoked delegation token as the parent of a chain', async () => {
    const g = await build();
    const first = await exchange(g, {
      subject_token: await idp.mint({ sub: 'alice' }),
      subject_token_type: TOKEN_TYPE_ACCESS_TOKEN,
      actor_token: await idp.mint({ sub: 'reporter' }),
      actor_token_type: TOKEN_TYPE_JWT,
      scope: 'read:posts:*',
    });
    const token = first.body.access_token as string;
    const { jti, exp } = jose.decodeJwt(token) as { jti: string; exp: number };
    await feed.append({ token: { jti, expiresAt: exp } });
    clock += 2_000; // let the follower read
    expect((await decide(g, token)).reason).toBe('token_revoked');
    const again = await exchange(g, {
      subject_token: token, // the revoked token, as the parent of a chain
      subject_token_type: TOKEN_TYPE_ACCESS_TOKEN,
      actor_token: await idp.mint({ sub: 'reporter' }),
      actor_token_type: TOKEN_TYPE_JWT,
      scope: 'read:posts:*',
    });
    const fresh = again.body.access_token as string | undefined;
    const used = fresh ? (await decide(g, fresh)).allow : false;
    expect({ status: again.status, used }).toEqual({ status: 400, used: false });
  });

  it('refuses a signed-out actor token for a standing exchange', async () => {
    const g = await build();
    await backend.store.putUser({
      subject: 'alice',
      roles: [{ role: 'reader' }],
      grants: [
        { permission: 'gatehouse.delegate:bob:read:posts:*', expiresAt: START / 1000 + 86_400 },
      ],
      denies: [],
    });
    const bobsOldToken = await idp.mint({ sub: 'bob' });
    clock += 10_000;
    await feed.append({
      notBefore: { key: subjectStorageKey({ subject: 'bob' }), at: START / 1000 + 5 },
    });
    clock += 2_000;
    expect(
      (await g.decide({ method: 'GET', path: '/me', authorization: `Bearer ${bobsOldToken}` }))
        .reason,
    ).toBe('session_revoked');
    const out = await exchange(g, {
      subject_token: 'alice',
      subject_token_type: TOKEN_TYPE_STANDING,
      actor_token: bobsOldToken,
      actor_token_type: TOKEN_TYPE_JWT,
      scope: 'read:posts:*',
    });
    expect(out.status).toBe(400);
  });

  it('refuses a signed-out token at /delegations (401), so no standing grant is written', async () => {
    const g = await build();
    const stolen = await idp.mint({ sub: 'alice' });
    clock += 10_000;
    await feed.append({
      notBefore: { key: subjectStorageKey({ subject: 'alice' }), at: START / 1000 + 5 },
    });
    const api = createAdminApi({ gatehouse: g, store: backend, now });
    const res = await api.fetch(
      new Request('https://g.test/v1/admin/delegations', {
        method: 'POST',
        headers: { authorization: `Bearer ${stolen}`, 'content-type': 'application/json' },
        body: JSON.stringify({ actor: 'mallory', scope: ['read:*'], expires: '90d' }),
      }),
      undefined,
    );
    // The attacker then exchanges mallory's own token + "alice": a token with iat after the sign-out.
    clock += 31_000;
    const out = await exchange(g, {
      subject_token: 'alice',
      subject_token_type: TOKEN_TYPE_STANDING,
      actor_token: await idp.mint({ sub: 'mallory' }),
      actor_token_type: TOKEN_TYPE_JWT,
      scope: 'read:posts:*',
    });
    const token = out.body.access_token as string | undefined;
    const used = token ? (await decide(g, token)).allow : false;
    expect({ create: res.status, used }).toEqual({ create: 401, used: false });
  });
});

/** A delegation token for alice by reporter, and the ids of the tokens it came from. */
async function delegate(g: Gatehouse, subjectToken?: string, actorToken?: string) {
  const subject = subjectToken ?? (await idp.mint({ sub: 'alice', jti: 'alice-idp-1' }));
  const actor = actorToken ?? (await idp.mint({ sub: 'reporter', jti: 'reporter-idp-1' }));
  const out = await exchange(g, {
    subject_token: subject,
    subject_token_type: TOKEN_TYPE_ACCESS_TOKEN,
    actor_token: actor,
    actor_token_type: TOKEN_TYPE_JWT,
    scope: 'read:posts:*',
  });
  expect(out.status).toBe(200);
  return out.body.access_token as string;
}

describe('revocation at use reaches every party of a delegation chain', () => {
  const signOut = (subject: string) =>
    feed.append({ notBefore: { key: subjectStorageKey({ subject }), at: clock / 1000 } });

  it('ends a delegation token when the delegator signs out after the exchange', async () => {
    const g = await build();
    const token = await delegate(g);
    clock += 60_000;
    const child = await delegate(g, token); // a chain minted later: its own iat is after
    clock += 1_000;
    await signOut('alice');
    clock += 2_000;
    expect((await decide(g, token)).reason).toBe('session_revoked');
    expect((await decide(g, child)).reason).toBe('session_revoked');
  });

  it('ends a delegation token when its actor, or an earlier actor of its chain, signs out', async () => {
    const g = await build();
    const token = await delegate(g);
    const chain = await delegate(g, token, await idp.mint({ sub: 'auditor' }));
    expect((await decide(g, chain)).allow).toBe(true);
    clock += 5_000;
    await signOut('reporter'); // the inner actor of `chain`, the only actor of `token`
    clock += 2_000;
    expect((await decide(g, token)).reason).toBe('session_revoked');
    expect((await decide(g, chain)).reason).toBe('session_revoked');
    // A fresh token of reporter's own, after the sign-out, still delegates.
    clock += 2_000;
    expect((await decide(g, await delegate(g))).allow).toBe(true);
  });

  it('ends a derived token when any token it was exchanged from is revoked by jti', async () => {
    for (const revoked of ['parent', 'alice-idp-1', 'reporter-idp-1'] as const) {
      clock = START;
      feed = new MemoryFeed({ now, maxChanges: 100 });
      const g = await build();
      const parent = await delegate(g);
      const child = await delegate(g, parent, await idp.mint({ sub: 'auditor' }));
      expect((await decide(g, child)).allow).toBe(true);
      const jti = revoked === 'parent' ? (jose.decodeJwt(parent).jti as string) : revoked;
      await feed.append({ token: { jti, expiresAt: START / 1000 + 3600 } });
      clock += 2_000;
      expect({ revoked, reason: (await decide(g, child)).reason }).toEqual({
        revoked,
        reason: 'token_revoked',
      });
    }
  });
});

// For code that only authenticates (Hono's `authorize: 'token'`): the same gates an
// `authenticated` route applies, with no route and no permission.
describe('Gatehouse.authenticate', () => {
  const authenticate = (g: Gatehouse, token: string | undefined) =>
    g.authenticate({ authorization: token === undefined ? undefined : `Bearer ${token}` });

  it('admits a valid token and refuses a missing or forged one', async () => {
    const g = await build();
    const token = await idp.mint({ sub: 'alice' });
    const admitted = await authenticate(g, token);
    expect([admitted.allow, admitted.status, admitted.reason]).toEqual([
      true,
      200,
      'authenticated_route',
    ]);
    expect(admitted.principal?.subject).toBe('alice');
    expect((await authenticate(g, undefined)).reason).toBe('token_missing');
    const forged = `${token.slice(0, -4)}AAAA`;
    expect((await authenticate(g, forged)).status).toBe(401);
  });

  it('refuses a signed-out session and a revoked token id', async () => {
    const g = await build();
    const old = await idp.mint({ sub: 'alice' });
    const kept = await idp.mint({ sub: 'bob', jti: 'bob-1' });
    const revoked = await idp.mint({ sub: 'bob', jti: 'bob-2' });
    clock += 10_000;
    await feed.append({
      notBefore: { key: subjectStorageKey({ subject: 'alice' }), at: START / 1000 + 5 },
    });
    await feed.append({ token: { jti: 'bob-2', expiresAt: START / 1000 + 3600 } });
    clock += 2_000;
    const reasons = await Promise.all([old, kept, revoked].map((t) => authenticate(g, t)));
    expect(reasons.map((d) => [d.status, d.reason])).toEqual([
      [401, 'session_revoked'],
      [200, 'authenticated_route'],
      [401, 'token_revoked'],
    ]);
  });

  it('refuses a delegation token once a party of it signs out', async () => {
    const g = await build();
    const token = await delegate(g);
    expect((await authenticate(g, token)).allow).toBe(true);
    clock += 5_000;
    await feed.append({
      notBefore: { key: subjectStorageKey({ subject: 'reporter' }), at: clock / 1000 },
    });
    clock += 2_000;
    expect((await authenticate(g, token)).reason).toBe('session_revoked');
  });

  it('refuses a standing delegation once its standing grant is gone', async () => {
    const g = await build();
    const grant = {
      permission: 'gatehouse.delegate:bob:read:posts:*',
      expiresAt: START / 1000 + 86_400,
    };
    await backend.store.putUser({
      subject: 'alice',
      roles: [{ role: 'reader' }],
      grants: [grant],
      denies: [],
    });
    const out = await exchange(g, {
      subject_token: 'alice',
      subject_token_type: TOKEN_TYPE_STANDING,
      actor_token: await idp.mint({ sub: 'bob' }),
      actor_token_type: TOKEN_TYPE_JWT,
      scope: 'read:posts:*',
    });
    expect(out.status).toBe(200);
    const token = out.body.access_token as string;
    expect((await authenticate(g, token)).allow).toBe(true);
    await backend.store.putUser({
      subject: 'alice',
      roles: [{ role: 'reader' }],
      grants: [],
      denies: [],
    });
    await feed.append({ keys: [`user/${subjectStorageKey({ subject: 'alice' })}`] });
    clock += 2_000;
    const after = await authenticate(g, token);
    expect([after.allow, after.status]).toEqual([false, 403]);
  });
});
