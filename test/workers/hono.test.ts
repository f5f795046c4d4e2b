/**
 * gatehouse/hono inside workerd: the whole-decision middleware, token-only mode, and
 * requirePermission, over real local KV.
 */
import { env } from 'cloudflare:workers';
import { Hono } from 'hono';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  actClaim,
  createSigner,
  generateIssuerKeySet,
  parseIssuerKeys,
} from '../../src/delegation/index.ts';
import { compilePolicy, Gatehouse } from '../../src/policy/index.ts';
import { MemoryFeed, RevocationFollower } from '../../src/revocation/index.ts';
import { MemoryStore } from '../../src/stores/index.ts';
import { subjectStorageKey } from '../../src/stores/keys.ts';
import { type GatehouseEnv, gatehouse, requirePermission } from '../../src/workers/hono.ts';
import { KvStore } from '../../src/workers/kv-store.ts';
import { DEMO_DELEGATION_ISSUER, DEMO_ISSUER } from '../support/cases.ts';
import { AUDIENCE, createTestIssuer } from '../support/issuer.ts';
import { bearer, DEMO_POLICY, demoTokenFor, seedDemo, TEST_SECRET } from './helpers.ts';

beforeEach(async () => {
  await seedDemo();
});

function instance(): Gatehouse {
  const policy = compilePolicy(DEMO_POLICY, { env: { GATEHOUSE_DEV_SECRET: TEST_SECRET } });
  return new Gatehouse({ policy, store: new KvStore(env.PERMISSIONS) });
}

function app(authorize: 'routes' | 'token') {
  const gh = instance();
  const hono = new Hono<GatehouseEnv>();
  hono.use('*', gatehouse({ gatehouse: () => gh, authorize }));
  hono.get('/posts/:id', (c) => c.json({ subject: c.get('gatehouse').principal?.subject }));
  hono.get('/health', (c) => c.text('ok'));
  hono.post('/reports', requirePermission('publish:posts'), (c) => c.text('filed'));
  return hono;
}

describe('gatehouse() middleware', () => {
  it('puts the principal on the context for an allowed request', async () => {
    const response = await app('routes').request('/posts/1', {
      headers: bearer(await demoTokenFor('alice')),
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ subject: 'alice' });
  });

  it('answers 401 and 403 as problem+json itself', async () => {
    const hono = app('routes');
    const anonymous = await hono.request('/posts/1');
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toBe('Bearer realm="gatehouse"');
    const denied = await hono.request('/posts/1', {
      method: 'PUT',
      headers: bearer(await demoTokenFor('alice')),
    });
    expect(denied.status).toBe(403);
    expect(denied.headers.get('content-type')).toBe('application/problem+json');
  });

  it('answers 503 when the store fails', async () => {
    const policy = compilePolicy(DEMO_POLICY, { env: { GATEHOUSE_DEV_SECRET: TEST_SECRET } });
    const failing = new KvStore({
      get: async () => {
        throw new Error('down');
      },
      put: async () => {},
      delete: async () => {},
    });
    const hono = new Hono<GatehouseEnv>();
    hono.use('*', gatehouse({ gatehouse: new Gatehouse({ policy, store: failing }) }));
    hono.get('/posts/:id', (c) => c.text('never'));
    const response = await hono.request('/posts/1', {
      headers: bearer(await demoTokenFor('alice')),
    });
    expect(response.status).toBe(503);
  });
});

describe('the revocation feed behind the middleware', () => {
  for (const authorize of ['routes', 'token'] as const) {
    it(`hands the feed read a request started to waitUntil (${authorize} mode)`, async () => {
      let clock = Date.now();
      const now = () => clock;
      const feed = new MemoryFeed({ now });
      const follower = new RevocationFollower(feed, { now, log: () => {} });
      const policy = compilePolicy(DEMO_POLICY, { env: { GATEHOUSE_DEV_SECRET: TEST_SECRET } });
      const gh = new Gatehouse({
        policy,
        store: new KvStore(env.PERMISSIONS),
        revocation: follower,
      });
      const hono = new Hono<GatehouseEnv>();
      hono.use('*', gatehouse({ gatehouse: gh, authorize }));
      hono.get('/posts/:id', requirePermission('read:posts'), (c) => c.text('ok'));
      const kept: Promise<unknown>[] = [];
      const ctx = {
        waitUntil: (promise: Promise<unknown>) => void kept.push(promise),
        passThroughOnException: () => {},
        props: {},
      };
      const token = await demoTokenFor('alice');
      // The first request of a new follower waits for its read; the next one after an interval
      // starts a read beside the request, which only waitUntil keeps alive on Workers.
      expect((await hono.request('/posts/1', { headers: bearer(token) }, env, ctx)).status).toBe(
        200,
      );
      clock += 1500;
      const read = feed.read.bind(feed);
      feed.read = (since) => {
        // Slow enough to still be running when the response is out.
        return new Promise<void>((resolve) => setTimeout(resolve, 20)).then(() => read(since));
      };
      const response = await hono.request('/posts/1', { headers: bearer(token) }, env, ctx);
      const pending = follower.pending;

      expect(response.status).toBe(200);
      expect(pending).toBeDefined();
      expect(kept).toContain(pending);
      await pending;
    });
  }
});

describe('token-only mode honours the revocation feed', () => {
  // A route behind `authorize: 'token'` and no requirePermission: the middleware alone decides
  // whether the caller gets in, so a revoked token or a sign-out must stop it there.
  async function tokenOnly() {
    let clock = Date.now();
    const now = () => clock;
    const feed = new MemoryFeed({ now });
    const follower = new RevocationFollower(feed, { now, log: () => {} });
    const policy = compilePolicy(DEMO_POLICY, { env: { GATEHOUSE_DEV_SECRET: TEST_SECRET } });
    const gh = new Gatehouse({ policy, store: new KvStore(env.PERMISSIONS), revocation: follower });
    const hono = new Hono<GatehouseEnv>();
    hono.use('*', gatehouse({ gatehouse: gh, authorize: 'token' }));
    hono.get('/me', (c) => c.json({ subject: c.get('gatehouse').principal?.subject }));
    const get = async (token: string) =>
      (await hono.request('/me', { headers: bearer(token) })).status;
    const later = () => {
      clock += 1500; // past the follower's poll interval: the next request reads the feed
    };
    return { feed, get, later };
  }

  it('refuses a revoked token id', async () => {
    const { feed, get, later } = await tokenOnly();
    const token = await demoTokenFor('alice', { jti: 'revoked-1' });
    const other = await demoTokenFor('alice', { jti: 'kept-1' });
    expect(await get(token)).toBe(200);
    await feed.append({
      token: { jti: 'revoked-1', expiresAt: Math.floor(Date.now() / 1000) + 600 },
    });
    later();
    await get(other); // the read the interval started
    expect([await get(token), await get(other)]).toEqual([401, 200]);
  });

  it('refuses every token issued before a sign-out everywhere', async () => {
    const { feed, get, later } = await tokenOnly();
    const token = await demoTokenFor('alice');
    expect(await get(token)).toBe(200);
    await feed.append({
      notBefore: {
        key: subjectStorageKey({ subject: 'alice' }),
        at: Math.floor(Date.now() / 1000) + 1,
      },
    });
    later();
    await get(await demoTokenFor('bob'));
    expect(await get(token)).toBe(401);
    expect(await get(await demoTokenFor('bob'))).toBe(200);
  });
});

describe('requirePermission()', () => {
  it('checks in code after a token-only middleware', async () => {
    const hono = app('token');
    const bob = await hono.request('/reports', {
      method: 'POST',
      headers: bearer(await demoTokenFor('bob')),
    });
    const alice = await hono.request('/reports', {
      method: 'POST',
      headers: bearer(await demoTokenFor('alice')),
    });
    expect([bob.status, alice.status]).toEqual([200, 403]);
  });

  it('verifies the token itself on a public route (routes mode)', async () => {
    const gh = instance();
    const hono = new Hono<GatehouseEnv>();
    hono.use('*', gatehouse({ gatehouse: () => gh }));
    // GET /health is public in the demo policy: the middleware verifies no token there.
    hono.get('/health', requirePermission('publish:posts'), (c) =>
      c.text(c.get('gatehouse').principal?.subject ?? 'none'),
    );
    const bob = await hono.request('/health', { headers: bearer(await demoTokenFor('bob')) });
    expect(bob.status).toBe(200);
    expect(await bob.text()).toBe('bob');
    const alice = await hono.request('/health', { headers: bearer(await demoTokenFor('alice')) });
    expect(alice.status).toBe(403);
    const anonymous = await hono.request('/health');
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toBe('Bearer realm="gatehouse"');
    const expired = await hono.request('/health', {
      headers: bearer(await demoTokenFor('bob', {}, -120)),
    });
    expect(expired.status).toBe(401);
    expect(((await expired.json()) as { reason: string }).reason).toBe('token_expired');
  });

  it('fails closed without the middleware', async () => {
    const hono = new Hono();
    hono.get('/x', requirePermission('read:posts'), (c) => c.text('never'));
    expect((await hono.request('/x')).status).toBe(500);
  });
});

describe('delegation through the Hono middleware', () => {
  /** The key set of the last token minted; the app below is built with it. */
  let delegationKeys = '';

  async function delegated(scope: string): Promise<string> {
    const keys = await generateIssuerKeySet('EdDSA');
    delegationKeys = keys;
    const set = parseIssuerKeys(keys, 'test');
    const now = Math.floor(Date.now() / 1000);
    return createSigner(set).sign({
      iss: DEMO_DELEGATION_ISSUER,
      sub: 'bob',
      aud: DEMO_DELEGATION_ISSUER,
      iat: now,
      nbf: now,
      exp: now + 300,
      jti: 'hono-1',
      scope,
      act: actClaim([{ subject: 'reporter', issuer: DEMO_ISSUER }]),
      subject_iat: now,
      actor_iats: [now],
      parents: [],
    });
  }

  function delegatingApp(authorize: 'routes' | 'token') {
    const policy = compilePolicy(DEMO_POLICY, {
      env: { GATEHOUSE_DEV_SECRET: TEST_SECRET, GATEHOUSE_DELEGATION_KEYS: delegationKeys },
    });
    const gh = new Gatehouse({ policy, store: new KvStore(env.PERMISSIONS) });
    const hono = new Hono<GatehouseEnv>();
    hono.use('*', gatehouse({ gatehouse: () => gh, authorize }));
    hono.get('/posts/:id', (c) => c.json({ actors: c.get('gatehouse').principal?.actors }));
    hono.post('/reports', requirePermission('publish:posts'), (c) => c.text('filed'));
    return hono;
  }

  it('decides for the delegator within scope and ceiling, in both modes', async () => {
    // bob (editor) holds publish:posts, but reporter may receive read:* only.
    const token = await delegated('read:posts publish:posts');
    const routes = delegatingApp('routes');
    const read = await routes.request('/posts/1', { headers: bearer(token) });
    expect(read.status).toBe(200);
    expect(await read.json()).toEqual({ actors: [{ subject: 'reporter', issuer: DEMO_ISSUER }] });
    const tokenMode = delegatingApp('token');
    const publish = await tokenMode.request('/reports', { method: 'POST', headers: bearer(token) });
    expect(publish.status).toBe(403);
    expect(((await publish.json()) as { reason: string }).reason).toBe('outside_delegation');
  });
});

describe('requirePermission() and path tenants', () => {
  // The route decision tenant-checks the routes it decides; a public route (or token-only mode)
  // leaves the check in code to requirePermission, which must not let one tenant read another's.
  it.each(['routes', 'token'] as const)(
    'refuses another tenant’s path (%s mode)',
    async (authorize) => {
      const idp = await createTestIssuer();
      const policy = compilePolicy({
        version: 1,
        issuers: [
          {
            issuer: idp.issuer,
            audiences: [AUDIENCE],
            algorithms: ['ES256'],
            keys: { jwks: idp.jwks },
            tenantClaim: 'tid',
          },
        ],
        tenancy: { pathParam: 'tenant' },
        routes: [
          { method: 'GET', path: '/t/:tenant/docs', public: true },
          { method: 'GET', path: '/static/*', public: true },
        ],
      });
      const store = new MemoryStore();
      store.putUser({
        subject: 'alice',
        tenant: 'acme',
        roles: [],
        grants: [{ permission: 'read:docs' }],
        denies: [],
      });
      const hono = new Hono<GatehouseEnv>();
      hono.use('*', gatehouse({ gatehouse: new Gatehouse({ policy, store }), authorize }));
      hono.get('/t/:tenant/docs', requirePermission('read:docs'), (c) => c.text('docs'));
      // Application routes the policy does not list, or lists under a public wildcard.
      hono.get('/other/:tenant/docs', requirePermission('read:docs'), (c) => c.text('docs'));
      hono.get('/static/t/:tenant/docs', requirePermission('read:docs'), (c) => c.text('docs'));
      const headers = bearer(await idp.mint({ sub: 'alice', tid: 'acme' }));
      const status = async (path: string) => (await hono.request(path, { headers })).status;
      expect(await status('/t/acme/docs')).toBe(200);
      const other = await hono.request('/t/globex/docs', { headers });
      expect(other.status).toBe(403);
      expect(((await other.json()) as { reason: string }).reason).toBe('tenant_mismatch');
      // The tenant as the application reads it (decoded), whatever the policy's table makes of it.
      for (const path of [
        '/t/globex%00/docs',
        '/t/globex;x/docs',
        '/t/acme%2F..%2Fglobex/docs',
        '/t/%EF%BD%87lobex/docs',
        '/other/globex/docs',
        '/static/t/globex/docs',
      ]) {
        const refused = await status(path);
        expect({ path, refused: refused === 400 || refused === 403 }).toEqual({
          path,
          refused: true,
        });
      }
      // In routes mode the middleware refuses a path no policy route names (no_route).
      expect(await status('/other/acme/docs')).toBe(authorize === 'token' ? 200 : 403);
      expect(await status('/static/t/acme/docs')).toBe(200);
    },
  );
});
