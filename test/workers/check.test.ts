/**
 * The check API over HTTP (single and batch, callers need authz:check) and forward-auth, through
 * the guard Worker with real local KV.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import {
  bearer,
  demoTokenFor,
  instrumentedKv,
  seedDemo,
  type TestGuard,
  testGuard,
} from './helpers.ts';

beforeEach(async () => {
  await seedDemo();
});

interface Answer {
  allow: boolean;
  status: number;
  reason: string;
  subject?: string;
  route?: string;
  required?: string[];
}

async function post(guard: TestGuard, path: string, token: string | null, body: unknown) {
  return guard.fetch(`/.gatehouse/v1/${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token && bearer(token)) },
    body: JSON.stringify(body),
  });
}

describe('POST /.gatehouse/v1/check', () => {
  it('answers for a subject and a permission', async () => {
    const caller = await demoTokenFor('carol'); // admin: * covers authz:check
    const guard = testGuard();
    const yes = await post(guard, 'check', caller, { subject: 'bob', permission: 'publish:posts' });
    const no = await post(guard, 'check', caller, {
      subject: 'alice',
      permission: 'write:posts:1',
    });
    expect(yes.status).toBe(200);
    expect(await yes.json()).toMatchObject({ allow: true, reason: 'allowed', subject: 'bob' });
    expect(await no.json()).toMatchObject({
      allow: false,
      status: 403,
      reason: 'missing_permission',
    });
  });

  it('answers for a token and a method + path through the routes', async () => {
    const caller = await demoTokenFor('carol');
    const subjectToken = await demoTokenFor('bob');
    const response = await post(testGuard(), 'check', caller, {
      token: subjectToken,
      method: 'DELETE',
      path: '/posts/9',
    });
    expect(await response.json()).toMatchObject({
      allow: false,
      reason: 'explicit_deny',
      route: 'DELETE /posts/:id',
    });
  });

  it('answers for a subject and a method + path, with context for conditions', async () => {
    const caller = await demoTokenFor('carol');
    const guard = testGuard();
    const inside = await post(guard, 'check', caller, {
      subject: 'alice',
      method: 'GET',
      path: '/stats',
      context: { ip: '127.0.0.1' },
    });
    const outside = await post(guard, 'check', caller, {
      subject: 'alice',
      method: 'GET',
      path: '/stats',
      context: { ip: '198.51.100.1' },
    });
    expect(((await inside.json()) as Answer).allow).toBe(true);
    expect(((await outside.json()) as Answer).allow).toBe(false);
  });

  it('refuses callers without authz:check with 403', async () => {
    const caller = await demoTokenFor('bob');
    const response = await post(testGuard(), 'check', caller, {
      subject: 'alice',
      permission: 'read:posts',
    });
    expect(response.status).toBe(403);
    expect(((await response.json()) as Answer).reason).toBe('missing_permission');
  });

  it('refuses callers without a token with 401 and a challenge', async () => {
    const response = await post(testGuard(), 'check', null, {
      subject: 'alice',
      permission: 'read:posts',
    });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe('Bearer realm="gatehouse"');
  });

  it('names the bad field of a malformed item', async () => {
    const caller = await demoTokenFor('carol');
    const response = await post(testGuard(), 'check', caller, {
      subject: 'alice',
      permission: 'read:*',
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ reason: 'invalid_request' });
  });

  it('is not reachable with GET and never reaches the origin', async () => {
    const response = await testGuard().fetch('/.gatehouse/v1/check');
    expect(response.status).toBe(405);
    const unknown = await testGuard().fetch('/.gatehouse/other');
    expect(unknown.status).toBe(404);
  });
});

describe('POST /.gatehouse/v1/check/batch', () => {
  it('answers every item in order', async () => {
    const caller = await demoTokenFor('carol');
    const response = await post(testGuard(), 'check/batch', caller, {
      items: [
        { subject: 'alice', permission: 'read:posts' },
        { subject: 'bob', permissions: ['delete:comments:1', 'publish:posts'], mode: 'any' },
        { subject: 'carol', permission: 'ops:shutdown' },
      ],
    });
    expect(response.status).toBe(200);
    const { results } = (await response.json()) as { results: Answer[] };
    expect(results.map((r) => [r.allow, r.reason])).toEqual([
      [true, 'allowed'],
      [true, 'allowed'],
      [false, 'explicit_deny'],
    ]);
  });

  it('refuses more than 100 items', async () => {
    const caller = await demoTokenFor('carol');
    const items = Array.from({ length: 101 }, () => ({ subject: 'a', permission: 'read:posts' }));
    const response = await post(testGuard(), 'check/batch', caller, { items });
    expect(response.status).toBe(400);
    expect(((await response.json()) as Answer).reason).toBe('batch_too_large');
  });

  it('reads each distinct subject from KV once', async () => {
    const { kv, state } = instrumentedKv();
    state.delayMs = 20;
    const guard = testGuard({}, { wrapKv: () => kv });
    const caller = await demoTokenFor('carol');
    // Warm the caller's record (and the roles list) so only the batch's subjects are counted.
    await post(guard, 'check', caller, { subject: 'carol', permission: 'read:posts' });
    const before = state.reads;
    const subjects = ['alice', 'bob', 'dave'];
    const items = Array.from({ length: 99 }, (_, i) => ({
      subject: subjects[i % 3],
      permission: 'read:posts',
    }));
    const response = await post(guard, 'check/batch', caller, { items });
    expect(response.status).toBe(200);
    expect(state.reads - before).toBe(3);
  });

  it('refuses a batch without authz:check', async () => {
    const caller = await demoTokenFor('alice');
    const response = await post(testGuard(), 'check/batch', caller, {
      items: [{ subject: 'alice', permission: 'read:posts' }],
    });
    expect(response.status).toBe(403);
  });
});

describe('forward-auth: GET /.gatehouse/v1/authorize', () => {
  function ask(guard: TestGuard, method: string, uri: string, token?: string, ip?: string) {
    return guard.fetch('/.gatehouse/v1/authorize', {
      headers: {
        'x-forwarded-method': method,
        'x-forwarded-uri': uri,
        ...(token && bearer(token)),
        ...(ip && { 'x-real-ip': ip }),
      },
    });
  }

  it('answers 200 with identity headers for an allowed request', async () => {
    const response = await ask(testGuard(), 'GET', '/posts/3?x=1', await demoTokenFor('alice'));
    expect(response.status).toBe(200);
    expect(response.headers.get('x-auth-subject')).toBe('alice');
    expect(response.headers.get('x-auth-permission')).toBe('read:posts');
  });

  it('answers 403 and 401 like the guard', async () => {
    const guard = testGuard();
    const denied = await ask(guard, 'DELETE', '/posts/3', await demoTokenFor('alice'));
    const anonymous = await ask(guard, 'GET', '/posts/3');
    expect(denied.status).toBe(403);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toBe('Bearer realm="gatehouse"');
  });

  it('reads the client IP from the configured header', async () => {
    const guard = testGuard({ FORWARD_AUTH_IP_HEADER: 'X-Real-IP' });
    const token = await demoTokenFor('alice');
    const inside = await ask(guard, 'GET', '/stats', token, '127.0.0.1');
    const outside = await ask(guard, 'GET', '/stats', token, '203.0.113.5');
    expect([inside.status, outside.status]).toEqual([200, 403]);
  });

  it('treats a list in the IP header (X-Forwarded-For) as no IP: IP conditions fail closed', async () => {
    const guard = testGuard({ FORWARD_AUTH_IP_HEADER: 'X-Forwarded-For' });
    const token = await demoTokenFor('alice');
    const send = (xff: string) =>
      guard.fetch('/.gatehouse/v1/authorize', {
        headers: {
          'x-forwarded-method': 'GET',
          'x-forwarded-uri': '/stats',
          'x-forwarded-for': xff,
          ...bearer(token),
        },
      });
    // The client sent 127.0.0.1; its proxy appended the real address.
    expect((await send('127.0.0.1, 203.0.113.9')).status).toBe(403);
    expect((await send('127.0.0.1,127.0.0.1')).status).toBe(403);
    expect((await send(' 127.0.0.1 ')).status).toBe(200);
  });

  it('checks an absolute-form X-Forwarded-Uri as sent, without resolving dot segments', async () => {
    const guard = testGuard();
    const token = await demoTokenFor('alice');
    for (const uri of [
      'https://h/stats/%2e%2e/posts/1',
      'http://h/stats/../posts/1',
      'http://h/health/..\\posts/1',
    ]) {
      const response = await ask(guard, 'GET', uri, token);
      expect([uri, response.status]).toEqual([uri, 400]);
    }
    expect((await ask(guard, 'GET', 'https://h/posts/1?x=1', token)).status).toBe(200);
    expect((await ask(guard, 'GET', 'https://h?x=1', token)).status).toBe(403);
  });

  it('answers 400 without the forwarded method and URI', async () => {
    const response = await testGuard().fetch('/.gatehouse/v1/authorize');
    expect(response.status).toBe(400);
  });
});

describe('check bodies', () => {
  function raw(body: BodyInit, headers: Record<string, string> = {}) {
    return async () =>
      testGuard().fetch('/.gatehouse/v1/check', {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...bearer(await demoTokenFor('carol')),
          ...headers,
        },
        body,
        ...(typeof body !== 'string' && { duplex: 'half' }),
      } as RequestInit);
  }

  it('refuses duplicate member names', async () => {
    const response = await raw('{"subject":"bob","subject":"carol","permission":"read:posts"}')();
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ reason: 'invalid_request' });
  });

  it('counts bytes, not characters: 100 Ki three-byte characters are over 256 KiB', async () => {
    const body = JSON.stringify({ subject: '€'.repeat(100_000), permission: 'read:posts' });
    expect(body.length).toBeLessThan(256 * 1024);
    expect((await raw(body)()).status).toBe(413);
  });

  it('stops reading a streamed body without Content-Length at the cap', async () => {
    let pulled = 0;
    const chunk = new TextEncoder().encode(' '.repeat(64 * 1024));
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled++;
        if (pulled > 64) controller.close();
        else controller.enqueue(chunk);
      },
    });
    expect((await raw(stream)()).status).toBe(413);
    expect(pulled).toBeLessThan(10);
  });
});

describe('the RPC entrypoint', () => {
  // Decision logs are off here: sampled allow lines (wrangler.toml's rate) would add a
  // waitUntil call at random and make the count flaky.
  it('passes each call to ctx.waitUntil, like a guard request', async () => {
    const guard = testGuard({ DECISION_LOG: 'off' });
    const kept: Promise<unknown>[] = [];
    const ctx = { waitUntil: (p: Promise<unknown>) => void kept.push(p) };
    await guard.worker.check({ subject: 'bob', permission: 'read:posts' }, guard.env, ctx);
    await guard.worker.checkBatch([{ subject: 'bob', permission: 'read:posts' }], guard.env, ctx);
    expect(kept).toHaveLength(2);
  });

  it('adds each sampled decision line to ctx.waitUntil as well', async () => {
    const guard = testGuard({ DECISION_LOG: 'on', DECISION_LOG_ALLOW_SAMPLE_RATE: '1' });
    const kept: Promise<unknown>[] = [];
    const ctx = { waitUntil: (p: Promise<unknown>) => void kept.push(p) };
    await guard.worker.check({ subject: 'bob', permission: 'read:posts' }, guard.env, ctx);
    await guard.worker.checkBatch([{ subject: 'bob', permission: 'read:posts' }], guard.env, ctx);
    expect(kept).toHaveLength(4);
    await Promise.all(kept);
  });
});

describe('the RPC batch limit', () => {
  it('throws for more than 100 items', async () => {
    const guard = testGuard();
    const items = Array.from({ length: 101 }, () => ({ subject: 'a', permission: 'read:posts' }));
    await expect(guard.worker.checkBatch(items, guard.env)).rejects.toThrow(RangeError);
  });
});
