/**
 * What the guard hands the admin Worker over a real service binding. In this project wrangler.toml's
 * `ADMIN` binding answers with the request it received (vitest.config.ts), so these tests see
 * exactly what crossed it: the request as the client sent it, with no identity headers or origin
 * secret added, since the admin Worker authenticates the caller itself from Authorization.
 */
import { env, exports } from 'cloudflare:workers';
import { beforeEach, describe, expect, it } from 'vitest';
import { bearer, demoTokenFor, seedDemo, testGuard } from './helpers.ts';

interface Delivered {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string | null;
}

const SECRET = 'origin-secret-0123456789abcdef-0123456789';

beforeEach(async () => {
  await seedDemo();
});

describe('the guard forwarding <prefix>/v1/admin to the ADMIN service binding', () => {
  it.each([
    ['GET', '/.gatehouse/v1/admin'],
    ['GET', '/.gatehouse/v1/admin/'],
    ['GET', '/.gatehouse/v1/admin/users/alice'],
    ['GET', '/.gatehouse/v1/admin/audit?since=1h&subject=bob'],
    // Encoded segments stay encoded: the admin API decodes each segment exactly once.
    ['DELETE', '/.gatehouse/v1/admin/users/alice%3Aadmin/grants/read%3Aposts'],
    ['DELETE', '/.gatehouse/v1/admin/users/a%2Fb%20c/roles/editor'],
    ['POST', '/.gatehouse/v1/admin/users/bob/grants?tenant=acme'],
  ])('hands %s %s over unchanged', async (method, path) => {
    const guard = testGuard({ ADMIN: env.ADMIN, ORIGIN_SHARED_SECRET: SECRET });
    const carol = await demoTokenFor('carol');
    const body = method === 'POST' ? JSON.stringify({ permission: 'read:stats' }) : undefined;
    const response = await guard.fetch(`https://guard.example${path}`, {
      method,
      headers: {
        ...bearer(carol),
        'content-type': 'application/json',
        'x-request-id': 'r-1',
        'cf-connecting-ip': '203.0.113.9',
      },
      ...(body !== undefined && { body }),
    });
    expect(response.status).toBe(200);
    const delivered = (await response.json()) as Delivered;
    expect(delivered.method).toBe(method);
    expect(delivered.url).toBe(`https://guard.example${path}`);
    expect(delivered.body ?? '').toBe(body ?? '');
    expect(delivered.headers).toMatchObject({
      authorization: `Bearer ${carol}`,
      'content-type': 'application/json',
      'x-request-id': 'r-1',
      'cf-connecting-ip': '203.0.113.9',
    });
    // Nothing of the guard's own: no identity headers, no origin secret.
    const added = Object.keys(delivered.headers).filter(
      (name) => name.startsWith('x-auth-') || name === 'x-gatehouse-origin-secret',
    );
    expect(added).toEqual([]);
  });

  it('forwards without deciding: no token, or a token without admin:permissions, still goes through', async () => {
    const guard = testGuard({ ADMIN: env.ADMIN });
    const alice = await demoTokenFor('alice');
    for (const headers of [{}, bearer(alice)]) {
      const response = await guard.fetch('/.gatehouse/v1/admin/users/bob', { headers });
      expect(response.status).toBe(200);
      expect(((await response.json()) as Delivered).url).toContain('/v1/admin/users/bob');
    }
  });

  it('forwards nothing else under the prefix: look-alike paths answer 404 not_found', async () => {
    const guard = testGuard({ ADMIN: env.ADMIN });
    const carol = await demoTokenFor('carol');
    for (const path of [
      '/v1/administrator',
      '/v1/admin-x',
      '/v1/adminx/users',
      '/v2/admin/users',
      '/admin',
    ]) {
      const response = await guard.fetch(`/.gatehouse${path}`, { headers: bearer(carol) });
      expect(response.status, path).toBe(404);
      expect(((await response.json()) as { reason: string }).reason, path).toBe('not_found');
    }
  });

  it('decides /v1/admin outside the prefix like any path: the origin gets it, not ADMIN', async () => {
    const guard = testGuard({ ADMIN: env.ADMIN });
    const anonymous = await guard.fetch('/v1/admin/users/alice');
    expect(anonymous.status).toBe(401);
    // carol's `*` allows it, so it reaches the echo origin with the guard's identity headers.
    const allowed = await guard.fetch('/v1/admin/users/alice', {
      headers: bearer(await demoTokenFor('carol')),
    });
    expect(await allowed.json()).toMatchObject({
      origin: 'echo',
      path: '/v1/admin/users/alice',
      identity: { 'x-auth-subject': 'carol' },
    });
  });

  it("forwards from the deployed entry point with wrangler.toml's binding", async () => {
    const carol = await demoTokenFor('carol');
    const response = await exports.default.fetch(
      'https://guard.example/.gatehouse/v1/admin/roles',
      {
        headers: bearer(carol),
      },
    );
    expect(response.status).toBe(200);
    const delivered = (await response.json()) as Delivered;
    expect(delivered.url).toBe('https://guard.example/.gatehouse/v1/admin/roles');
    expect(delivered.headers.authorization).toBe(`Bearer ${carol}`);
  });
});

describe('the guard forwarding the issuing endpoints to the ADMIN service binding (issue 10)', () => {
  // The token and event endpoints are served by the admin Worker so their code stays out of the
  // guard's bundle; clients keep calling them on the guard, at the same URLs.
  it.each([
    [
      '/.gatehouse/v1/token',
      'grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange',
    ],
    ['/.gatehouse/v1/events', '{"type":"com.example.x","permission":"read:posts"}'],
    ['/.gatehouse/v1/events/verify', '{"event":"a.b.c"}'],
  ])('hands POST %s over unchanged, without deciding', async (path, body) => {
    const guard = testGuard({ ADMIN: env.ADMIN, ORIGIN_SHARED_SECRET: SECRET });
    const alice = await demoTokenFor('alice');
    for (const headers of [{}, bearer(alice)]) {
      const response = await guard.fetch(`https://guard.example${path}`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'text/plain', 'cf-connecting-ip': '203.0.113.9' },
        body,
      });
      expect(response.status).toBe(200);
      const delivered = (await response.json()) as Delivered;
      expect(delivered).toMatchObject({
        method: 'POST',
        url: `https://guard.example${path}`,
        body,
      });
      expect(delivered.headers['cf-connecting-ip']).toBe('203.0.113.9');
      expect(delivered.headers.authorization).toBe(
        (headers as { authorization?: string }).authorization,
      );
      const added = Object.keys(delivered.headers).filter(
        (name) => name.startsWith('x-auth-') || name === 'x-gatehouse-origin-secret',
      );
      expect(added).toEqual([]);
    }
  });

  it('without the binding they are not served (404), and the guard keeps <prefix>/jwks.json', async () => {
    const guard = testGuard({ GATEHOUSE_DELEGATION_KEYS: env.GATEHOUSE_DELEGATION_KEYS });
    for (const path of ['/v1/token', '/v1/events', '/v1/events/verify']) {
      const response = await guard.fetch(`/.gatehouse${path}`, { method: 'POST', body: '{}' });
      expect(response.status, path).toBe(404);
      expect(((await response.json()) as { reason: string }).reason, path).toBe('not_found');
    }
    for (const path of ['/v1/token/x', '/v1/events/verify/x', '/v1/eventsx']) {
      const response = await guard.fetch(`/.gatehouse${path}`, {
        method: 'POST',
        headers: { authorization: 'Bearer x' },
      });
      expect(response.status, path).toBe(404);
    }
    const jwks = await guard.fetch('/.gatehouse/jwks.json');
    expect(jwks.status).toBe(200);
    expect(((await jwks.json()) as { keys: unknown[] }).keys.length).toBeGreaterThan(0);
  });

  it('forwards look-alike paths to nothing: they answer 404 with the binding too', async () => {
    const guard = testGuard({ ADMIN: env.ADMIN });
    for (const path of ['/v1/token/x', '/v1/tokens', '/v1/events/verify/x', '/v1/eventsx']) {
      const response = await guard.fetch(`/.gatehouse${path}`, { method: 'POST', body: '{}' });
      expect(response.status, path).toBe(404);
    }
  });
});
