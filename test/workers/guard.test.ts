/**
 * The route guard inside workerd with real local KV: allow with identity headers, 401 with an
 * RFC 6750 challenge, 403, 503 on a KV failure, 400 on malformed paths, header stripping,
 * Authorization forwarding, and conditions on the client IP and country.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import {
  bearer,
  demoTokenFor,
  type EchoBody,
  instrumentedKv,
  seedDemo,
  testGuard,
} from './helpers.ts';

beforeEach(async () => {
  await seedDemo();
});

async function problem(response: Response) {
  expect(response.headers.get('content-type')).toBe('application/problem+json');
  return (await response.json()) as { status: number; reason: string; detail: string };
}

describe('the route guard', () => {
  it('forwards an allowed request to the origin with identity headers', async () => {
    const guard = testGuard();
    const token = await demoTokenFor('alice');
    const response = await guard.fetch('/posts/1?x=1', { headers: bearer(token) });
    expect(response.status).toBe(200);
    const body = (await response.json()) as EchoBody;
    expect(body).toMatchObject({ method: 'GET', path: '/posts/1', query: '?x=1' });
    expect(body.identity).toEqual({
      'x-auth-subject': 'alice',
      'x-auth-issuer': 'https://dev.gatehouse.local/',
      'x-auth-permission': 'read:posts',
    });
  });

  it('answers 401 with a bare Bearer challenge when no token is sent', async () => {
    const response = await testGuard().fetch('/posts/1');
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe('Bearer realm="gatehouse"');
    expect(await problem(response)).toMatchObject({ status: 401, reason: 'token_missing' });
  });

  it('answers 401 with error="invalid_token" for a bad token, without echoing it', async () => {
    const token = await demoTokenFor('alice', {}, -120);
    const response = await testGuard().fetch('/posts/1', { headers: bearer(token) });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe(
      'Bearer realm="gatehouse", error="invalid_token"',
    );
    const text = await response.text();
    expect(text).toContain('"reason":"token_expired"');
    expect(text).not.toContain(token.split('.')[1]!);
  });

  it('answers 403 problem+json for a missing permission', async () => {
    const token = await demoTokenFor('alice');
    const response = await testGuard().fetch('/posts/1', {
      method: 'PUT',
      headers: bearer(token),
    });
    expect(response.status).toBe(403);
    expect(response.headers.get('www-authenticate')).toBeNull();
    expect(await problem(response)).toMatchObject({ status: 403, reason: 'missing_permission' });
  });

  it('answers 503 when KV cannot be read, never an allow, and leaks nothing internal', async () => {
    const { kv, state } = instrumentedKv();
    state.failing = true;
    const guard = testGuard({}, { wrapKv: () => kv });
    const response = await guard.fetch('/posts/1', { headers: bearer(await demoTokenFor('bob')) });
    expect(response.status).toBe(503);
    const text = await response.text();
    expect(text).toContain('"reason":"store_unavailable"');
    expect(text).not.toContain('backend');
  });

  it('answers 503 store_unavailable for a malformed KV record', async () => {
    const { env } = await import('cloudflare:workers');
    await env.PERMISSIONS.put('user/-/s:broken', JSON.stringify({ grants: [{ nope: 1 }] }));
    const response = await testGuard().fetch('/posts/1', {
      headers: bearer(await demoTokenFor('broken')),
    });
    expect(response.status).toBe(503);
    expect(((await response.json()) as { reason: string }).reason).toBe('store_unavailable');
  });

  it('answers 400 for a path with an encoded slash', async () => {
    const token = await demoTokenFor('carol');
    const response = await testGuard().fetch('/posts/a%2Fb', { headers: bearer(token) });
    expect(response.status).toBe(400);
    expect(await problem(response)).toMatchObject({ reason: 'malformed_request' });
  });

  it('strips every X-Auth-* header the client sent', async () => {
    const token = await demoTokenFor('alice');
    const response = await testGuard().fetch('/posts/1', {
      headers: {
        ...bearer(token),
        'X-Auth-Subject': 'carol',
        'X-Auth-Tenant': 'acme',
        'x-auth-anything': 'forged',
      },
    });
    const body = (await response.json()) as EchoBody;
    expect(body.identity['x-auth-subject']).toBe('alice');
    expect(body.identity).not.toHaveProperty('x-auth-tenant');
    expect(body.identity).not.toHaveProperty('x-auth-anything');
  });

  it('strips forged identity headers on public routes too', async () => {
    const response = await testGuard().fetch('/health', {
      headers: { 'X-Auth-Subject': 'carol' },
    });
    expect(response.status).toBe(200);
    expect(((await response.json()) as EchoBody).identity).toEqual({});
  });

  it('does not forward Authorization by default', async () => {
    const token = await demoTokenFor('alice');
    const response = await testGuard().fetch('/posts/1', { headers: bearer(token) });
    expect(((await response.json()) as EchoBody).authorization).toBe(false);
  });

  it('forwards Authorization when FORWARD_AUTHORIZATION is true', async () => {
    const token = await demoTokenFor('alice');
    const guard = testGuard({ FORWARD_AUTHORIZATION: 'true' });
    const response = await guard.fetch('/posts/1', { headers: bearer(token) });
    expect(((await response.json()) as EchoBody).authorization).toBe(true);
  });

  it('sends allowed requests to a configured origin, path appended, Authorization stripped', async () => {
    const seen: Request[] = [];
    const guard = testGuard(
      { ORIGIN: 'https://origin.internal.example/api' },
      {
        fetch: async (input, init) => {
          seen.push(new Request(input, init));
          return new Response('from origin', { status: 201 });
        },
      },
    );
    const response = await guard.fetch('/posts/7?draft=1', {
      method: 'PATCH',
      body: 'hello',
      headers: { ...bearer(await demoTokenFor('bob')), 'x-auth-subject': 'carol' },
    });
    expect(response.status).toBe(201);
    expect(await response.text()).toBe('from origin');
    const sent = seen[0]!;
    expect(sent.url).toBe('https://origin.internal.example/api/posts/7?draft=1');
    expect(sent.method).toBe('PATCH');
    expect(await sent.text()).toBe('hello');
    expect(sent.headers.get('x-auth-subject')).toBe('bob');
    expect(sent.headers.get('x-auth-permission')).toBe('write:posts:7');
    expect(sent.headers.has('authorization')).toBe(false);
  });

  it('applies an IP-conditioned grant from CF-Connecting-IP', async () => {
    const token = await demoTokenFor('alice');
    const guard = testGuard();
    const inside = await guard.fetch('/stats', {
      headers: { ...bearer(token), 'CF-Connecting-IP': '127.0.0.1' },
    });
    const outside = await guard.fetch('/stats', {
      headers: { ...bearer(token), 'CF-Connecting-IP': '203.0.113.9' },
    });
    expect(inside.status).toBe(200);
    expect(outside.status).toBe(403);
  });

  it('applies a country condition from request.cf.country', async () => {
    const { env } = await import('cloudflare:workers');
    await env.PERMISSIONS.put(
      'user/-/s:dana',
      JSON.stringify({ grants: [{ permission: 'read:stats', when: { country: ['DE'] } }] }),
    );
    const token = await demoTokenFor('dana');
    const guard = testGuard();
    const fromDe = await guard.fetch('/stats', { headers: bearer(token), cf: { country: 'DE' } });
    const fromUs = await guard.fetch('/stats', { headers: bearer(token), cf: { country: 'US' } });
    const unknown = await guard.fetch('/stats', { headers: bearer(token) });
    expect([fromDe.status, fromUs.status, unknown.status]).toEqual([200, 403, 403]);
  });

  it('percent-encodes identity header values a token could abuse', async () => {
    const token = await demoTokenFor('eve\r\nX-Injected: 1 ü%');
    const response = await testGuard().fetch('/me', { headers: bearer(token) });
    const body = (await response.json()) as EchoBody;
    expect(body.identity['x-auth-subject']).toBe('eve%0D%0AX-Injected:%201%20%C3%BC%25');
    expect(decodeURIComponent(body.identity['x-auth-subject']!)).toBe('eve\r\nX-Injected: 1 ü%');
  });

  it('reads a subject from KV once for 100 concurrent first requests', async () => {
    const { kv, state } = instrumentedKv();
    state.delayMs = 20;
    const guard = testGuard({}, { wrapKv: () => kv });
    const token = await demoTokenFor('bob');
    const responses = await Promise.all(
      Array.from({ length: 100 }, () => guard.fetch('/posts/1', { headers: bearer(token) })),
    );
    expect(responses.every((r) => r.status === 200)).toBe(true);
    // One read of bob's record and one of the role list.
    expect(state.reads).toBe(2);
  });

  it('answers 503 configuration_error when the policy secret is missing', async () => {
    const guard = testGuard({ GATEHOUSE_DEV_SECRET: undefined });
    const response = await guard.fetch('/health');
    expect(response.status).toBe(503);
    expect(((await response.json()) as { reason: string }).reason).toBe('configuration_error');
  });
});

/** A guard in front of a capturing origin: every request the origin would see. */
function capturing(vars: Record<string, unknown> = {}) {
  const seen: Request[] = [];
  const guard = testGuard(
    { ORIGIN: 'https://origin.internal.example', ...vars },
    {
      fetch: async (input, init) => {
        seen.push(new Request(input, init));
        return new Response('ok');
      },
    },
  );
  return { guard, seen };
}

function headerNames(request: Request): string[] {
  const names: string[] = [];
  request.headers.forEach((_value, name) => {
    names.push(name);
  });
  return names;
}

describe('headers the origin never gets from a client', () => {
  it('strips identity headers spelled with underscores, on protected and public routes', async () => {
    const { guard, seen } = capturing();
    const forged = {
      X_Auth_Subject: 'carol-underscore',
      'X-Auth_Tenant': 'acme',
      'x_auth-issuer': 'https://evil.example/',
    };
    await guard.fetch('/posts/1', {
      headers: { ...bearer(await demoTokenFor('alice')), ...forged },
    });
    await guard.fetch('/health', { headers: forged });
    const [protectedReq, publicReq] = seen;
    expect(protectedReq!.headers.get('x-auth-subject')).toBe('alice');
    expect(headerNames(protectedReq!).filter((n) => n.includes('_'))).toEqual([]);
    expect(headerNames(publicReq!).filter((n) => /auth/i.test(n))).toEqual([]);
  });

  it('strips method and URL override headers by default', async () => {
    const { guard, seen } = capturing();
    await guard.fetch('/posts/1', {
      headers: {
        ...bearer(await demoTokenFor('alice')),
        'X-HTTP-Method-Override': 'DELETE',
        'X-HTTP-Method': 'DELETE',
        'X-Method-Override': 'DELETE',
        X_HTTP_Method_Override: 'DELETE',
        'X-Original-URL': '/ops/shutdown',
        'X-Rewrite-URL': '/ops/shutdown',
        'X-Other': 'kept',
      },
    });
    const names = headerNames(seen[0]!);
    expect(names.filter((n) => /override|method|original|rewrite/i.test(n))).toEqual([]);
    expect(seen[0]!.headers.get('x-other')).toBe('kept');
  });

  it('forwards override headers with FORWARD_OVERRIDE_HEADERS=true', async () => {
    const { guard, seen } = capturing({ FORWARD_OVERRIDE_HEADERS: 'true' });
    await guard.fetch('/posts/1', {
      headers: { ...bearer(await demoTokenFor('alice')), 'X-HTTP-Method-Override': 'PUT' },
    });
    expect(seen[0]!.headers.get('x-http-method-override')).toBe('PUT');
  });

  it('sends ORIGIN_SHARED_SECRET, never a client-sent value', async () => {
    const secret = 'origin-secret-0123456789abcdef-0123456789';
    const { guard, seen } = capturing({ ORIGIN_SHARED_SECRET: secret });
    await guard.fetch('/health', { headers: { 'X-Gatehouse-Origin-Secret': 'forged' } });
    expect(seen[0]!.headers.get('x-gatehouse-origin-secret')).toBe(secret);
    const plain = capturing();
    await plain.guard.fetch('/health', { headers: { 'X-Gatehouse-Origin-Secret': 'forged' } });
    expect(plain.seen[0]!.headers.has('x-gatehouse-origin-secret')).toBe(false);
  });

  it('refuses a short ORIGIN_SHARED_SECRET without echoing it', async () => {
    const response = await testGuard({ ORIGIN_SHARED_SECRET: 'short' }).fetch('/health');
    expect(response.status).toBe(503);
    expect(await response.text()).not.toContain('short');
  });
});
