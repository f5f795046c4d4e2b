/**
 * Scope mappings and string roles claims reach the Lambda authorizer through the same compiled
 * policy as the core (issue 9, item 5): the demo policy with `permissions.source: claims`.
 */
import { describe, expect, it, vi } from 'vitest';
import type { SimpleResponse } from '../../src/aws/authorizer.ts';
import { createLambdaHandler } from '../../src/aws/lambda.ts';
import { demoToken } from '../support/cases.ts';
import { DEMO_POLICY, httpEvent, SECRET } from './support.ts';

const CLAIMS_POLICY = {
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

const token = (claims: Record<string, unknown>) =>
  demoToken(
    {
      name: 'scopes',
      subject: 'okta-user',
      claims,
      method: 'GET',
      path: '/',
      expect: { allow: true, status: 200, reason: '' },
    },
    SECRET,
  ) as Promise<string>;

function handler() {
  return createLambdaHandler({
    policy: CLAIMS_POLICY,
    env: { GATEHOUSE_DEV_SECRET: SECRET },
    log: () => {},
  });
}

async function answer(method: string, path: string, claims: Record<string, unknown>) {
  const h = handler();
  return (await h(httpEvent(method, path, await token(claims)))) as SimpleResponse;
}

describe('Lambda: scopes mapped to permissions', () => {
  it('allows an Okta-style scope through its mapping', async () => {
    const r = await answer('GET', '/posts/1', { scope: 'openid read' });
    expect(r.isAuthorized).toBe(true);
  });

  it('denies what the mapped scope does not grant', async () => {
    const r = await answer('PUT', '/posts/1', { scope: 'read' });
    expect(r).toMatchObject({ isAuthorized: false, context: { reason: 'missing_permission' } });
  });

  it('lets a deny of a role from a space-separated roles claim win over a scope mapped to *', async () => {
    const claims = { scp: ['Blog.All'], roles: 'reader admin' };
    const denied = await answer('POST', '/ops/shutdown', claims);
    const allowed = await answer('GET', '/stats', claims);
    expect(denied).toMatchObject({ isAuthorized: false, context: { reason: 'explicit_deny' } });
    expect(allowed.isAuthorized).toBe(true);
  });

  it('warns once at cold start about a mapped permission no route requires', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    try {
      handler();
      const lines = warn.mock.calls.map((call) => String(call[0]));
      expect(lines.filter((l) => l.includes('configuration warning'))).toEqual([
        expect.stringContaining('Stats.Read → read:stat'),
      ]);
    } finally {
      warn.mockRestore();
    }
  });
});
