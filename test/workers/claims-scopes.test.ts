/**
 * Scope mappings and string roles claims inside workerd, through the same compiled policy as the
 * core and the Lambda (issue 9, item 5): the demo policy with `permissions.source: claims`.
 */
import { describe, expect, it, vi } from 'vitest';
import { createGatehouseWorker } from '../../src/workers/guard.ts';
import { bearer, DEMO_POLICY, demoTokenFor, TEST_SECRET, testGuard } from './helpers.ts';

function claimsPolicy(): Record<string, unknown> {
  return {
    ...(DEMO_POLICY as Record<string, unknown>),
    // Delegation decides for the delegator's store record, which a claims policy has not; events
    // need delegation.
    delegation: undefined,
    events: undefined,
    permissions: {
      source: 'claims',
      rolesClaim: 'roles',
      scopes: { read: ['read:posts'], 'Blog.All': ['*'], 'Stats.Read': ['read:stat'] },
    },
  };
}

describe('Worker: scopes mapped to permissions', () => {
  it('allows an Okta-style scope through its mapping and denies what it does not grant', async () => {
    const guard = testGuard({}, { policy: claimsPolicy() });
    const headers = bearer(await demoTokenFor('okta-user', { scope: 'openid read' }));

    const read = await guard.fetch('/posts/1', { headers });
    const write = await guard.fetch('/posts/1', { method: 'PUT', headers });

    expect(read.status).toBe(200);
    expect(write.status).toBe(403);
  });

  it('lets a deny of a role from a space-separated roles claim win over a scope mapped to *', async () => {
    const guard = testGuard({}, { policy: claimsPolicy() });
    const headers = bearer(
      await demoTokenFor('azure-user', { scp: ['Blog.All'], roles: 'reader admin' }),
    );

    const shutdown = await guard.fetch('/ops/shutdown', { method: 'POST', headers });
    const stats = await guard.fetch('/stats', { headers });

    expect(shutdown.status).toBe(403);
    expect(((await shutdown.json()) as { reason: string }).reason).toBe('explicit_deny');
    expect(stats.status).toBe(200);
  });

  it('warns once per isolate, though the policy compiles at start-up and on the first request', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    try {
      const worker = createGatehouseWorker({
        policy: claimsPolicy(),
        startupEnv: { GATEHOUSE_DEV_SECRET: TEST_SECRET, ORIGIN: 'echo' },
      });
      const headers = bearer(await demoTokenFor('okta-user', { scope: 'read' }));
      const env = { GATEHOUSE_DEV_SECRET: TEST_SECRET, ORIGIN: 'echo' };
      const ctx = { waitUntil: () => {} };
      await worker.fetch(new Request('https://guard.example/posts/1', { headers }), env, ctx);

      const lines = warn.mock.calls.map((call) => String(call[0]));
      expect(lines.filter((l) => l.includes('configuration warning'))).toEqual([
        expect.stringContaining('Stats.Read → read:stat'),
      ]);
    } finally {
      warn.mockRestore();
    }
  });
});
