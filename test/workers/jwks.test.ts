/**
 * Remote JWKS through the guard: keys served by a real HTTP server on loopback (global setup),
 * key rotation, the endpoint going down, and a cold isolate verifying from the key set persisted
 * in KV without calling the identity provider.
 */
import * as jose from 'jose';
import { beforeEach, describe, expect, inject, it } from 'vitest';
import { compilePolicy } from '../../src/policy/policy.ts';
import { createGatehouseWorker, persistedJwksOptions } from '../../src/workers/guard.ts';
import { KvJwksPersistence, kvKeys } from '../../src/workers/kv-store.ts';
import { bearer, seedDemo, testContext } from './helpers.ts';

const AUDIENCE = 'https://api.gatehouse.test';

beforeEach(async () => {
  await seedDemo();
});

interface Key {
  readonly kid: string;
  readonly jwk: jose.JWK;
  sign(subject: string): Promise<string>;
}

async function newKey(kid: string, issuer: string): Promise<Key> {
  const { privateKey, publicKey } = await jose.generateKeyPair('ES256', { extractable: true });
  const jwk = { ...(await jose.exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  return {
    kid,
    jwk,
    sign(subject) {
      const now = Math.floor(Date.now() / 1000);
      return new jose.SignJWT({})
        .setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' })
        .setIssuer(issuer)
        .setAudience(AUDIENCE)
        .setSubject(subject)
        .setIssuedAt(now)
        .setExpirationTime(now + 600)
        .sign(privateKey);
    },
  };
}

/** One JWKS endpoint on the loopback server, named per test so tests never share one. */
function endpoint(name: string) {
  const base = inject('jwksBaseUrl');
  return {
    uri: `${base}/jwks/${name}`,
    // One issuer per endpoint: key sets persisted in KV are per issuer.
    issuer: `https://idp.gatehouse.test/${name}/`,
    async serve(keys: readonly Key[]) {
      const response = await fetch(`${base}/admin/${name}`, {
        method: 'PUT',
        body: JSON.stringify({ keys: keys.map((k) => k.jwk) }),
      });
      expect(response.status).toBe(204);
    },
    async down() {
      expect((await fetch(`${base}/admin/${name}/down`, { method: 'POST' })).status).toBe(204);
    },
    async hits(): Promise<number> {
      return Number(await (await fetch(`${base}/admin/${name}/hits`)).text());
    },
  };
}

function guardFor(idp: { uri: string; issuer: string }, keys: Record<string, number> = {}) {
  const policy = {
    version: 1,
    issuers: [
      {
        issuer: idp.issuer,
        audiences: [AUDIENCE],
        algorithms: ['ES256'],
        keys: {
          jwksUri: idp.uri,
          cacheTtlSeconds: 600,
          cooldownSeconds: 1,
          timeoutMs: 2000,
          ...keys,
        },
      },
    ],
    roles: { reader: { grants: ['read:posts'] } },
    routes: [{ method: 'GET', path: '/posts/:id', require: ['read:posts'] }],
  };
  const worker = createGatehouseWorker({ policy });
  return async (token: string) => {
    const { env } = await import('cloudflare:workers');
    const request = new Request('https://guard.example/posts/1', { headers: bearer(token) });
    const ctx = testContext();
    const response = await worker.fetch(request, { PERMISSIONS: env.PERMISSIONS }, ctx);
    await ctx.settle();
    return response;
  };
}

describe('remote JWKS on loopback', () => {
  it('verifies a token with a key from the endpoint', async () => {
    const idp = endpoint('basic');
    const key = await newKey('k1', idp.issuer);
    await idp.serve([key]);
    const guard = guardFor(idp);
    expect((await guard(await key.sign('alice'))).status).toBe(200);
    expect((await guard(await key.sign('alice'))).status).toBe(200);
    expect(await idp.hits()).toBe(1);
  });

  it('picks up a rotated key on its first unknown kid, and drops the retired one', async () => {
    const idp = endpoint('rotation');
    const oldKey = await newKey('old', idp.issuer);
    const newer = await newKey('new', idp.issuer);
    await idp.serve([oldKey]);
    const guard = guardFor(idp);
    expect((await guard(await oldKey.sign('alice'))).status).toBe(200);
    await idp.serve([newer]);
    // At most one refetch per cooldown (1 s here): a rotation shows up after it.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect((await guard(await newer.sign('alice'))).status).toBe(200);
    const retired = await guard(await oldKey.sign('alice'));
    expect(retired.status).toBe(401);
    expect(((await retired.json()) as { reason: string }).reason).toBe('token_unknown_key');
  });

  it('keeps serving known keys while the endpoint is down, and refuses unknown ones', async () => {
    const idp = endpoint('outage');
    const key = await newKey('steady', idp.issuer);
    const stranger = await newKey('stranger', idp.issuer);
    await idp.serve([key]);
    const guard = guardFor(idp);
    expect((await guard(await key.sign('alice'))).status).toBe(200);
    await idp.down();
    expect((await guard(await key.sign('alice'))).status).toBe(200);
    const unknown = await guard(await stranger.sign('alice'));
    expect(unknown.status).toBe(401);
  });

  it('answers 503 keys_unavailable on a cold start while the endpoint is down', async () => {
    const idp = endpoint('cold-down');
    const key = await newKey('cold', idp.issuer);
    await idp.down();
    const response = await guardFor(idp)(await key.sign('alice'));
    expect(response.status).toBe(503);
    expect(((await response.json()) as { reason: string }).reason).toBe('keys_unavailable');
  });

  it('verifies on a cold isolate from the key set persisted in KV, without the endpoint', async () => {
    const idp = endpoint('persisted');
    const key = await newKey('kept', idp.issuer);
    await idp.serve([key]);
    // The first isolate fetches and persists the key set.
    expect((await guardFor(idp)(await key.sign('alice'))).status).toBe(200);
    await idp.down();
    const hitsBefore = await idp.hits();
    // A second isolate (a fresh Worker instance) starts with the endpoint down.
    const response = await guardFor(idp)(await key.sign('alice'));
    expect(response.status).toBe(200);
    expect(await idp.hits()).toBe(hitsBefore);
  });

  it('does not use a persisted key set older than maxStaleSeconds on a cold isolate', async () => {
    const idp = endpoint('persisted-too-old');
    const key = await newKey('aged', idp.issuer);
    await idp.down();
    // What an isolate persisted after a fetch 2 hours ago (maxStaleSeconds is 3600).
    const { env } = await import('cloudflare:workers');
    await new KvJwksPersistence(env.PERMISSIONS).save(
      idp.issuer,
      { keys: [key.jwk] },
      { fetchedAt: Date.now() - 7200_000 },
    );
    const response = await guardFor(idp, { maxStaleSeconds: 3600 })(await key.sign('alice'));
    expect(response.status).toBe(503);
    expect(((await response.json()) as { reason: string }).reason).toBe('keys_unavailable');
  });

  it('refetches first when the persisted set is older than the TTL, and dates the stored set again', async () => {
    const idp = endpoint('persisted-stale');
    const key = await newKey('stale', idp.issuer);
    const { env } = await import('cloudflare:workers');
    await new KvJwksPersistence(env.PERMISSIONS).save(
      idp.issuer,
      { keys: [key.jwk] },
      { fetchedAt: Date.now() - 1200_000 },
    );
    await idp.serve([key]);
    expect((await guardFor(idp)(await key.sign('alice'))).status).toBe(200);
    expect(await idp.hits()).toBe(1);
    const stored = (await env.PERMISSIONS.get(kvKeys.jwks(idp.issuer), 'json')) as {
      fetchedAt: number;
    };
    expect(Date.now() - stored.fetchedAt).toBeLessThan(60_000);
  });

  it('sizes KV persistence from the issuers: expiry from maxStaleSeconds, rewrites from the TTL', () => {
    const issuer = (name: string, keys: Record<string, number>) => ({
      issuer: `https://${name}.example/`,
      audiences: [AUDIENCE],
      algorithms: ['ES256'],
      keys: { jwksUri: `https://${name}.example/jwks`, ...keys },
    });
    const policy = (issuers: unknown[]) =>
      compilePolicy({ version: 1, issuers, routes: [{ method: 'GET', path: '/', public: true }] });
    expect(persistedJwksOptions(policy([issuer('a', {})]))).toEqual({
      expirationTtlSeconds: 86_400,
      rewriteAfterSeconds: 300,
    });
    expect(
      persistedJwksOptions(
        policy([
          issuer('a', { cacheTtlSeconds: 120, maxStaleSeconds: 3600 }),
          issuer('b', { cacheTtlSeconds: 600, maxStaleSeconds: 7200 }),
        ]),
      ),
    ).toEqual({ expirationTtlSeconds: 7200, rewriteAfterSeconds: 60 });
  });
});
