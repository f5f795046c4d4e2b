/**
 * Revocation in seconds (issue 14) inside workerd: the guard and the admin Worker on the real
 * local KV and the real revocation-feed Durable Object (wrangler.toml's REVOCATION binding, run by
 * miniflare). The guard keeps its default 30-second permission cache throughout, so every deny
 * seen well before 30 s came from the feed.
 */
import { env } from 'cloudflare:workers';
import * as jose from 'jose';
import { beforeEach, describe, expect, it } from 'vitest';
import { DEMO_AUDIENCE, DEMO_ISSUER } from '../support/cases.ts';
import {
  bearer,
  DEMO_POLICY,
  demoTokenFor,
  seedDemo,
  TEST_SECRET,
  type TestGuard,
  testAdmin,
  testGuard,
} from './helpers.ts';

const BASE = '/.gatehouse/v1/admin';

let counter = 0;
/** A subject no other test touches (KV and the feed persist between the tests of a file). */
function fresh(name: string): string {
  return `${name}-${Date.now().toString(36)}-${++counter}`;
}

beforeEach(async () => {
  await seedDemo();
  await env.PERMISSIONS.put('user/-/s:root', JSON.stringify({ grants: ['admin:permissions'] }));
});

function admin() {
  return testAdmin({ REVOCATION: env.REVOCATION });
}

async function adminCall(method: string, path: string, body?: unknown): Promise<Response> {
  const token = await demoTokenFor('root');
  return admin().fetch(`${BASE}${path}`, {
    method,
    headers: {
      ...bearer(token),
      ...(body !== undefined && { 'content-type': 'application/json' }),
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
}

async function grant(subject: string, permission: string): Promise<Response> {
  const response = await adminCall('POST', `/users/${subject}/grants`, { permission });
  expect(response.status).toBe(201);
  return response;
}

/** A demo token with explicit iat / jti. */
async function tokenWith(subject: string, claims: { iat: number; jti?: string }): Promise<string> {
  return new jose.SignJWT(claims.jti === undefined ? {} : { jti: claims.jti })
    .setProtectedHeader({ alg: 'HS256', kid: 'dev', typ: 'JWT' })
    .setIssuer(DEMO_ISSUER)
    .setAudience(DEMO_AUDIENCE)
    .setSubject(subject)
    .setIssuedAt(claims.iat)
    .setExpirationTime(claims.iat + 600)
    .sign(new TextEncoder().encode(TEST_SECRET));
}

/** Asks until the answer's status differs from `while`, or `giveUpMs` passes; ms it took. */
async function untilNot(
  ask: () => Promise<Response>,
  whileStatus: number,
  giveUpMs: number,
): Promise<{ ms: number; response: Response }> {
  const started = Date.now();
  for (;;) {
    const response = await ask();
    if (response.status !== whileStatus || Date.now() - started > giveUpMs) {
      return { ms: Date.now() - started, response };
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

function followingGuard(
  vars: Record<string, unknown> = {},
  policy: unknown = DEMO_POLICY,
): TestGuard {
  return testGuard({ REVOCATION: env.REVOCATION, ...vars }, { policy });
}

describe('the revocation feed on Workers', () => {
  it('denies a revoked grant within the feed interval although the cache TTL is 30 s', async () => {
    const subject = fresh('rev');
    await grant(subject, 'read:stats');
    const guard = followingGuard();
    const token = await demoTokenFor(subject);
    const ask = () => guard.fetch('/stats', { headers: bearer(token) });
    expect((await ask()).status).toBe(200);
    expect((await ask()).status).toBe(200);

    const revoked = await adminCall('DELETE', `/users/${subject}/grants/read:stats`);
    expect(revoked.status).toBe(200);
    const { ms, response } = await untilNot(ask, 200, 10_000);

    expect(response.status).toBe(403);
    // One interval (1 s) plus the read and a loaded machine; never the 30 s TTL.
    expect(ms).toBeLessThan(2500);
  });

  it('denies the very first request after an idle isolate missed a revocation', async () => {
    const subject = fresh('idle');
    await grant(subject, 'read:stats');
    const guard = followingGuard();
    const token = await demoTokenFor(subject);
    const ask = () => guard.fetch('/stats', { headers: bearer(token) });
    expect((await ask()).status).toBe(200);
    expect((await ask()).status).toBe(200);

    expect((await adminCall('DELETE', `/users/${subject}/grants/read:stats`)).status).toBe(200);
    // No requests for longer than two feed intervals: the isolate's next read waits.
    await new Promise((resolve) => setTimeout(resolve, 2500));

    expect((await ask()).status).toBe(403);
  });

  it('keeps serving other subjects from the cache: only the changed record is evicted', async () => {
    const changed = fresh('changed');
    const other = fresh('other');
    await grant(changed, 'read:stats');
    await grant(other, 'read:stats');
    const reads: string[] = [];
    const guard = testGuard(
      { REVOCATION: env.REVOCATION },
      {
        wrapKv: (kv) => ({
          get: (key, options) => {
            reads.push(key);
            return kv.get(key, options);
          },
          put: (key, value, options) => kv.put(key, value, options),
          delete: (key) => kv.delete(key),
        }),
      },
    );
    const [changedToken, otherToken] = await Promise.all([
      demoTokenFor(changed),
      demoTokenFor(other),
    ]);
    await guard.fetch('/stats', { headers: bearer(changedToken) });
    await guard.fetch('/stats', { headers: bearer(otherToken) });

    await adminCall('DELETE', `/users/${changed}/grants/read:stats`);
    const ask = () => guard.fetch('/stats', { headers: bearer(changedToken) });
    expect((await untilNot(ask, 200, 10_000)).response.status).toBe(403);
    reads.length = 0;
    expect((await guard.fetch('/stats', { headers: bearer(otherToken) })).status).toBe(200);

    expect(reads.filter((key) => key.includes(other))).toEqual([]);
  });

  it('reads a recently changed subject from the feed while KV still serves the old value', async () => {
    const subject = fresh('lag');
    await grant(subject, 'read:stats');
    const before = await env.PERMISSIONS.get(`user/-/s:${subject}`, 'text');
    // This location's KV still answers with the value from before the revocation.
    const laggingKv = {
      get: async (key: string, options: { type: 'text'; cacheTtl?: number }) =>
        key === `user/-/s:${subject}` ? before : env.PERMISSIONS.get(key, options),
      put: (key: string, value: string) => env.PERMISSIONS.put(key, value),
      delete: (key: string) => env.PERMISSIONS.delete(key),
    };
    const guard = testGuard({ REVOCATION: env.REVOCATION }, { wrapKv: () => laggingKv });
    const token = await demoTokenFor(subject);
    const ask = () => guard.fetch('/stats', { headers: bearer(token) });
    expect((await ask()).status).toBe(200);

    await adminCall('DELETE', `/users/${subject}/grants/read:stats`);

    expect((await untilNot(ask, 200, 10_000)).response.status).toBe(403);
  });

  it('signs a subject out everywhere: tokens issued before refused, later ones accepted', async () => {
    const subject = fresh('signout');
    await grant(subject, 'read:stats');
    const guard = followingGuard();
    const now = Math.floor(Date.now() / 1000);
    const old = await tokenWith(subject, { iat: now - 5 });
    expect((await guard.fetch('/stats', { headers: bearer(old) })).status).toBe(200);

    const response = await adminCall('POST', `/users/${subject}/sessions/revoke`);
    expect(response.status).toBe(200);
    const { notBefore, epoch } = (await response.json()) as { notBefore: number; epoch: number };
    expect(response.headers.get('gatehouse-consistency')).toBe(String(epoch));

    const refused = await untilNot(
      () => guard.fetch('/stats', { headers: bearer(old) }),
      200,
      10_000,
    );
    expect(refused.response.status).toBe(401);
    expect(((await refused.response.json()) as { reason: string }).reason).toBe('session_revoked');
    expect(refused.response.headers.get('www-authenticate')).toContain('invalid_token');
    // Issued in the second before the not-before: still refused; at it: accepted.
    const justBefore = await tokenWith(subject, { iat: notBefore - 1 });
    expect((await guard.fetch('/stats', { headers: bearer(justBefore) })).status).toBe(401);
    const after = await tokenWith(subject, { iat: notBefore });
    expect((await guard.fetch('/stats', { headers: bearer(after) })).status).toBe(200);
  });

  it('refuses a signed-out token on the admin Worker, /delegations included', async () => {
    const subject = fresh('selfservice');
    const policy = structuredClone(DEMO_POLICY) as { delegation: Record<string, unknown> };
    policy.delegation.standingGrants = true;
    const selfService = testAdmin({ REVOCATION: env.REVOCATION }, { policy });
    const old = await tokenWith(subject, { iat: Math.floor(Date.now() / 1000) - 5 });
    const list = () => selfService.fetch(`${BASE}/delegations`, { headers: bearer(old) });
    expect((await list()).status).toBe(200);

    expect((await adminCall('POST', `/users/${subject}/sessions/revoke`)).status).toBe(200);

    const refused = await untilNot(list, 200, 10_000);
    expect(refused.response.status).toBe(401);
    expect(((await refused.response.json()) as { reason: string }).reason).toBe('session_revoked');
    const create = await selfService.fetch(`${BASE}/delegations`, {
      method: 'POST',
      headers: { ...bearer(old), 'content-type': 'application/json' },
      body: JSON.stringify({ actor: 'reporter', scope: ['read:posts:*'], expires: '90d' }),
    });
    expect(create.status).toBe(401);
  });

  it('revokes one token by jti and leaves the subject’s other tokens working', async () => {
    const subject = fresh('jti');
    await grant(subject, 'read:stats');
    const guard = followingGuard();
    const iat = Math.floor(Date.now() / 1000);
    const leaked = await tokenWith(subject, { iat, jti: `${subject}-leaked` });
    const kept = await tokenWith(subject, { iat, jti: `${subject}-kept` });
    expect((await guard.fetch('/stats', { headers: bearer(leaked) })).status).toBe(200);

    const response = await adminCall('POST', '/tokens/revoked', {
      jti: `${subject}-leaked`,
      expires: '1h',
    });
    expect(response.status).toBe(200);

    const refused = await untilNot(
      () => guard.fetch('/stats', { headers: bearer(leaked) }),
      200,
      10_000,
    );
    expect(refused.response.status).toBe(401);
    expect(((await refused.response.json()) as { reason: string }).reason).toBe('token_revoked');
    expect((await guard.fetch('/stats', { headers: bearer(kept) })).status).toBe(200);
  });

  it('answers a fresh isolate from the feed: a revoked token is refused on its first request', async () => {
    const subject = fresh('cold');
    await grant(subject, 'read:stats');
    const iat = Math.floor(Date.now() / 1000);
    const token = await tokenWith(subject, { iat, jti: `${subject}-t` });
    await adminCall('POST', '/tokens/revoked', { jti: `${subject}-t`, expires: '1h' });

    const response = await followingGuard().fetch('/stats', { headers: bearer(token) });

    expect(response.status).toBe(401);
  });

  it('reads its writes: a check carrying the consistency token sees the change at once', async () => {
    const subject = fresh('ryw');
    await grant(subject, 'read:stats');
    // No regular feed read for a minute: only the consistency token can make the guard look.
    const policy = { ...(DEMO_POLICY as object), revocation: { pollIntervalMs: 60_000 } };
    await env.PERMISSIONS.put('user/-/s:checker', JSON.stringify({ grants: ['authz:check'] }));
    const guard = followingGuard({}, policy);
    const checker = await demoTokenFor('checker');
    const check = (headers: Record<string, string> = {}) =>
      guard.fetch('/.gatehouse/v1/check', {
        method: 'POST',
        headers: { ...bearer(checker), 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ subject, permission: 'read:stats' }),
      });
    expect(((await (await check()).json()) as { allow: boolean }).allow).toBe(true);

    const revoked = await adminCall('DELETE', `/users/${subject}/grants/read:stats`);
    const epoch = revoked.headers.get('gatehouse-consistency');
    expect(epoch).toMatch(/^\d+$/);

    expect(((await (await check()).json()) as { allow: boolean }).allow).toBe(true);
    const fresh_ = (await (await check({ 'gatehouse-consistency': epoch! })).json()) as {
      allow: boolean;
      reason: string;
    };
    expect(fresh_).toMatchObject({ allow: false, reason: 'missing_permission' });
  });

  it('refuses a consistency token the feed has not reached (503), and a malformed one (400)', async () => {
    await env.PERMISSIONS.put('user/-/s:checker', JSON.stringify({ grants: ['authz:check'] }));
    const guard = followingGuard();
    const checker = await demoTokenFor('checker');
    const check = (value: string) =>
      guard.fetch('/.gatehouse/v1/check', {
        method: 'POST',
        headers: {
          ...bearer(checker),
          'content-type': 'application/json',
          'gatehouse-consistency': value,
        },
        body: JSON.stringify({ subject: 'alice', permission: 'read:drafts' }),
      });

    const ahead = (await (await check('9007199254740991')).json()) as { reason: string };
    expect(ahead.reason).toBe('consistency_unavailable');
    expect((await check('soon')).status).toBe(400);
  });
});

describe('strict routes on Workers', () => {
  const STRICT_POLICY = (() => {
    const doc = structuredClone(DEMO_POLICY) as { routes: Record<string, unknown>[] };
    doc.routes.unshift({ method: 'GET', path: '/payouts', require: ['read:stats'], strict: true });
    return doc;
  })();
  /** A feed binding whose object never answers: the epoch cannot be read. */
  const DOWN = {
    idFromName: () => 'x',
    get: () => ({
      fetch: async () => {
        throw new Error('feed down');
      },
    }),
  };

  it('answers 503 on every token route of an isolate that never read the feed, and logs it', async () => {
    const lines: unknown[] = [];
    const original = console.error;
    console.error = (line: unknown) => lines.push(line);
    try {
      const guard = followingGuard({ REVOCATION: DOWN }, STRICT_POLICY);
      const token = await demoTokenFor('alice');

      const strict = await guard.fetch('/payouts', {
        headers: { ...bearer(token), 'cf-connecting-ip': '127.0.0.1' },
      });
      const other = await guard.fetch('/drafts', { headers: bearer(token) });

      expect(strict.status).toBe(503);
      expect(((await strict.json()) as { reason: string }).reason).toBe('revocation_unavailable');
      // Sign-outs and revoked token ids live only in the feed: an isolate that never read it
      // cannot bound them, so non-strict routes refuse too (warm isolates keep the TTL bound).
      expect(other.status).toBe(503);
      expect(((await other.json()) as { reason: string }).reason).toBe('revocation_unavailable');
      expect(lines.join('\n')).toContain('gatehouse.revocation_feed_unavailable');
    } finally {
      console.error = original;
    }
  });

  it('answers a strict route while the feed is read', async () => {
    const guard = followingGuard({}, STRICT_POLICY);
    const token = await demoTokenFor('alice');

    const response = await guard.fetch('/payouts', {
      headers: { ...bearer(token), 'cf-connecting-ip': '127.0.0.1' },
    });

    expect(response.status).toBe(200);
  });
});
