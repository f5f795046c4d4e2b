/**
 * Delegation inside workerd, through the guard Worker's own fetch (the code handlers/worker.ts
 * runs): the token endpoint issues a delegation token for real demo-issuer tokens, the JWKS
 * document publishes the keys, the guard decides the delegated request for the delegator and
 * tells the origin who acts, the check API and forward-auth apply the same rule, and a client
 * cannot forge X-Auth-Actor.
 */
import { env } from 'cloudflare:workers';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  generateIssuerKeySet,
  TOKEN_EXCHANGE_GRANT,
  TOKEN_TYPE_JWT,
} from '../../src/delegation/index.ts';
import { DEMO_ISSUER } from '../support/cases.ts';
import {
  bearer,
  DEMO_POLICY,
  demoTokenFor,
  type EchoBody,
  seedDemo,
  testAdmin,
  testGuardWithAdmin,
} from './helpers.ts';

const SELF = 'https://gatehouse.dev.local/delegation';
let keysText: string;

const policy = (() => {
  const doc = structuredClone(DEMO_POLICY) as Record<string, unknown> & { routes: unknown[] };
  doc.routes = [
    ...doc.routes,
    { method: 'GET', path: '/billing', require: ['read:posts'], delegated: false },
  ];
  doc.delegation = {
    issuer: SELF,
    actors: [{ subject: 'reporter', for: ['*'], ceiling: ['read:*'] }],
  };
  return doc;
})();

function guard() {
  return testGuardWithAdmin({ GATEHOUSE_DELEGATION_KEYS: keysText }, { policy });
}

async function exchange(
  g: ReturnType<typeof guard>,
  subject: string,
  actor: string,
  scope: string,
): Promise<Response> {
  return g.fetch('/.gatehouse/v1/token', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: TOKEN_EXCHANGE_GRANT,
      subject_token: await demoTokenFor(subject),
      subject_token_type: TOKEN_TYPE_JWT,
      actor_token: await demoTokenFor(actor),
      actor_token_type: TOKEN_TYPE_JWT,
      scope,
    }).toString(),
  });
}

async function delegationToken(g: ReturnType<typeof guard>, scope = 'read:*'): Promise<string> {
  const response = await exchange(g, 'alice', 'reporter', scope);
  expect(response.status).toBe(200);
  return ((await response.json()) as { access_token: string }).access_token;
}

beforeAll(async () => {
  keysText = await generateIssuerKeySet('EdDSA');
});

beforeEach(async () => {
  await seedDemo();
});

describe('delegation on the guard Worker', () => {
  it('issues a token at <prefix>/v1/token that the guard accepts for the delegator', async () => {
    const g = guard();
    const token = await delegationToken(g, 'read:posts');
    const response = await g.fetch('/posts/1', { headers: bearer(token) });
    expect(response.status).toBe(200);
    const body = (await response.json()) as EchoBody;
    expect(body.identity['x-auth-subject']).toBe('alice');
    expect(body.identity['x-auth-actor']).toBe('reporter');
    // Whose reporter: the actor token's issuer, in the same order.
    expect(body.identity['x-auth-actor-issuer']).toBe(DEMO_ISSUER);
  });

  it('strips a client-sent X-Auth-Actor, in any spelling', async () => {
    const g = guard();
    const own = await demoTokenFor('alice');
    for (const name of ['X-Auth-Actor', 'x-auth_actor']) {
      const response = await g.fetch('/posts/1', {
        headers: { ...bearer(own), [name]: 'reporter' },
      });
      const body = (await response.json()) as EchoBody;
      expect(body.identity['x-auth-actor']).toBeUndefined();
      expect(body.identity['x-auth_actor']).toBeUndefined();
    }
  });

  it('denies what the delegator lacks, what the scope leaves out, and refusing routes', async () => {
    const g = guard();
    const token = await delegationToken(g, 'read:posts');
    // alice holds read:drafts, but the scope does not pass it on.
    const drafts = await g.fetch('/drafts', { headers: bearer(token) });
    expect(drafts.status).toBe(403);
    expect(((await drafts.json()) as { reason: string }).reason).toBe('outside_delegation');
    // alice has no write:posts, and reporter's ceiling is read:* anyway.
    expect((await exchange(g, 'alice', 'reporter', 'write:posts:1')).status).toBe(400);
    const billing = await g.fetch('/billing', { headers: bearer(token) });
    expect(((await billing.json()) as { reason: string }).reason).toBe('delegation_refused');
  });

  it('refuses an actor nobody allowed, with an RFC 6749 error body', async () => {
    const response = await exchange(guard(), 'alice', 'mallory', 'read:posts');
    expect(response.status).toBe(400);
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(await response.json()).toMatchObject({ error: 'unauthorized_client' });
  });

  it('publishes the public keys at <prefix>/jwks.json', async () => {
    const response = await guard().fetch('/.gatehouse/jwks.json');
    expect(response.status).toBe(200);
    const text = await response.text();
    const jwks = JSON.parse(text) as { keys: { kid: string; alg: string }[] };
    expect(jwks.keys.map((k) => k.alg)).toEqual(['EdDSA', 'EdDSA']);
    expect(text).not.toContain('"d"');
  });

  it('forward-auth answers with X-Auth-Actor; the check RPC applies the same rule', async () => {
    const g = guard();
    const token = await delegationToken(g, 'read:posts');
    const auth = await g.fetch('/.gatehouse/v1/authorize', {
      headers: {
        ...bearer(token),
        'x-forwarded-method': 'GET',
        'x-forwarded-uri': '/posts/9',
      },
    });
    expect(auth.status).toBe(200);
    expect(auth.headers.get('x-auth-actor')).toBe('reporter');
    const inScope = await g.worker.check({ token, permission: 'read:posts' }, g.env);
    expect(inScope).toMatchObject({ allow: true, subject: 'alice' });
    const outside = await g.worker.check({ token, permission: 'read:drafts' }, g.env);
    expect(outside).toMatchObject({ allow: false, reason: 'outside_delegation' });
    const byRoute = await g.worker.check({ token, method: 'GET', path: '/billing' }, g.env);
    expect(byRoute).toMatchObject({ allow: false, reason: 'delegation_refused' });
  });

  it('without the key secret, delegation is off and closed; direct callers are served', async () => {
    const token = await delegationToken(guard(), 'read:posts');
    const off = testGuardWithAdmin({ GATEHOUSE_DELEGATION_KEYS: '' }, { policy });
    const own = await off.fetch('/posts/1', { headers: bearer(await demoTokenFor('alice')) });
    expect(own.status).toBe(200);
    const delegated = await off.fetch('/posts/1', { headers: bearer(token) });
    expect(delegated.status).toBe(401);
    expect((await exchange(off, 'alice', 'reporter', 'read:posts')).status).toBe(503);
  });

  it('a malformed key secret is a configuration error (503), naming nothing secret', async () => {
    const g = testGuardWithAdmin(
      { GATEHOUSE_DELEGATION_KEYS: '{"current":{"alg":"EdDSA"}}' },
      { policy },
    );
    const response = await g.fetch('/posts/1', { headers: bearer(await demoTokenFor('alice')) });
    expect(response.status).toBe(503);
    expect(((await response.json()) as { reason: string }).reason).toBe('configuration_error');
  });
});

describe('delegation and the revocation feed on the guard Worker', () => {
  const followingGuard = () =>
    testGuardWithAdmin(
      { GATEHOUSE_DELEGATION_KEYS: keysText, REVOCATION: env.REVOCATION },
      { policy },
    );
  const revokeJti = async (jti: string) => {
    await env.PERMISSIONS.put('user/-/s:root', JSON.stringify({ grants: ['admin:permissions'] }));
    const response = await testAdmin({ REVOCATION: env.REVOCATION }).fetch(
      '/.gatehouse/v1/admin/tokens/revoked',
      {
        method: 'POST',
        headers: { ...bearer(await demoTokenFor('root')), 'content-type': 'application/json' },
        body: JSON.stringify({ jti, expires: '1h' }),
      },
    );
    expect(response.status).toBe(200);
  };
  const exchangeTokens = (g: ReturnType<typeof followingGuard>, subject: string, actor: string) =>
    g.fetch('/.gatehouse/v1/token', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: TOKEN_EXCHANGE_GRANT,
        subject_token: subject,
        subject_token_type: TOKEN_TYPE_JWT,
        actor_token: actor,
        actor_token_type: TOKEN_TYPE_JWT,
        scope: 'read:posts',
      }).toString(),
    });

  it('refuses a revoked subject token at the endpoint, and ends tokens minted from a revoked actor token', async () => {
    const run = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
    const g = followingGuard();
    const revokedSubject = await demoTokenFor('alice', { jti: `alice-${run}` });
    await revokeJti(`alice-${run}`);
    const refused = await exchangeTokens(g, revokedSubject, await demoTokenFor('reporter'));
    expect(refused.status).toBe(400);
    expect(await refused.json()).toMatchObject({ error: 'invalid_request' });

    const minted = await exchangeTokens(
      g,
      await demoTokenFor('alice'),
      await demoTokenFor('reporter', { jti: `reporter-${run}` }),
    );
    expect(minted.status).toBe(200);
    const token = ((await minted.json()) as { access_token: string }).access_token;
    expect((await g.fetch('/posts/1', { headers: bearer(token) })).status).toBe(200);
    await revokeJti(`reporter-${run}`);
    let status = 200;
    for (let i = 0; i < 200 && status === 200; i++) {
      await new Promise((r) => setTimeout(r, 20));
      status = (await g.fetch('/posts/1', { headers: bearer(token) })).status;
    }
    expect(status).toBe(401);
  });
});
