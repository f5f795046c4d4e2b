/**
 * handlers/worker.ts as deployed: the bundled policy (wrangler.toml alias), the PERMISSIONS
 * binding, the echo origin, and the GatehouseCheck RPC entrypoint, reached through the runtime's
 * own exports. Token tests need GATEHOUSE_DEV_SECRET in the test env (see the README in
 * docs/workers.md: the workers project binds a test secret).
 */
import { env, exports } from 'cloudflare:workers';
import { beforeEach, describe, expect, it } from 'vitest';
import { bearer, demoTokenFor, seedDemo, TEST_SECRET } from './helpers.ts';

beforeEach(async () => {
  await seedDemo();
});

describe('handlers/worker.ts', () => {
  it('serves a public route through the echo origin', async () => {
    const response = await exports.default.fetch('https://guard.example/health');
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ origin: 'echo', method: 'GET', path: '/health' });
  });

  it('answers 401 with a challenge on a protected route without a token', async () => {
    const response = await exports.default.fetch('https://guard.example/posts/1');
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe('Bearer realm="gatehouse"');
  });

  it('has the test secret bound (vitest.config.ts workers project)', () => {
    expect(env.GATEHOUSE_DEV_SECRET).toBe(TEST_SECRET);
  });

  it('allows alice to read and refuses her a write', async () => {
    const token = await demoTokenFor('alice');
    const read = await exports.default.fetch('https://guard.example/posts/1', {
      headers: bearer(token),
    });
    const write = await exports.default.fetch('https://guard.example/posts/1', {
      method: 'PUT',
      headers: bearer(token),
    });
    expect([read.status, write.status]).toEqual([200, 403]);
  });

  it('answers 100 concurrent first requests for one subject, none left hanging', async () => {
    // A subject no earlier test has loaded in this isolate.
    await env.PERMISSIONS.put('user/-/s:zoe', JSON.stringify({ roles: ['reader'] }));
    const token = await demoTokenFor('zoe');
    const responses = await Promise.all(
      Array.from({ length: 100 }, () =>
        exports.default.fetch('https://guard.example/posts/1', { headers: bearer(token) }),
      ),
    );
    expect(responses.every((r) => r.status === 200)).toBe(true);
    await Promise.all(responses.map((r) => r.arrayBuffer()));
  });
});

describe('GatehouseCheck RPC entrypoint', () => {
  it('checks a subject and a permission without a caller token', async () => {
    const answer = await exports.GatehouseCheck.check({
      subject: 'bob',
      permission: 'write:posts:3',
    });
    expect(answer).toMatchObject({ allow: true, reason: 'allowed', subject: 'bob' });
  });

  it('checks a batch in order', async () => {
    const answers = await exports.GatehouseCheck.checkBatch([
      { subject: 'alice', permission: 'read:drafts' },
      { subject: 'alice', method: 'DELETE', path: '/posts/1' },
    ]);
    expect(answers.map((a) => a.reason)).toEqual(['allowed', 'missing_permission']);
  });

  it('answers a malformed item with a 400 deny naming the field', async () => {
    const answer = await exports.GatehouseCheck.check({ subject: 'bob' });
    expect(answer).toMatchObject({ allow: false, status: 400, reason: 'malformed_request' });
    expect(answer.explain).toContain('permission');
  });
});
