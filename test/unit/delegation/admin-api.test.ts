/**
 * The admin API and delegated callers: refused unless the policy's `delegation.adminApi` says
 * otherwise, and then still bounded by the use-time rule (delegator ∩ scope ∩ ceiling).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { explainRequest, formatExplain } from '../../../src/admin/explain.ts';
import { MemoryAdminStore } from '../../../src/admin/memory.ts';
import { createAdminApi } from '../../../src/http/admin-api.ts';
import { compilePolicy, Gatehouse } from '../../../src/policy/index.ts';
import { MemoryStore } from '../../../src/stores/index.ts';
import {
  delegationClaims,
  delegationPolicy,
  KEYS_ENV,
  makeKeys,
  REPORTER,
  signDelegation,
  type TestKeys,
} from '../../support/delegation.ts';
import { createTestIssuer, type TestIssuer } from '../../support/issuer.ts';

const NOW = Date.parse('2026-11-23T12:00:00Z');
const now = () => NOW;
let idp: TestIssuer;
let keys: TestKeys;

beforeAll(async () => {
  idp = await createTestIssuer({ now });
  keys = await makeKeys();
});

async function call(adminApi: boolean | undefined, scope: string): Promise<Response> {
  const store = new MemoryStore();
  store.putUser({ subject: 'alice', roles: [], grants: [{ permission: '*' }], denies: [] });
  const doc = delegationPolicy(
    idp,
    {},
    {
      actors: [{ subject: 'reporter', for: ['*'], ceiling: ['*'] }],
      ...(adminApi !== undefined && { adminApi }),
    },
  );
  const policy = compilePolicy(doc, { env: { [KEYS_ENV]: keys.text } });
  const gatehouse = new Gatehouse({ policy, store, now });
  const api = createAdminApi({ gatehouse, store: new MemoryAdminStore(store, now), now });
  const token = await signDelegation(keys, delegationClaims(NOW, 'alice', [REPORTER(idp)], scope));
  return api.fetch(
    new Request('https://g.test/v1/admin/users/alice', {
      headers: { authorization: `Bearer ${token}` },
    }),
    undefined,
  );
}

describe('admin API and delegated callers', () => {
  it('refuses a delegated caller by default, even one whose delegator holds everything', async () => {
    for (const adminApi of [undefined, false]) {
      const response = await call(adminApi, '*');
      expect(response.status).toBe(403);
      expect(((await response.json()) as { reason: string }).reason).toBe('delegation_refused');
    }
  });

  it('with adminApi: true, admits a delegated caller within its scope only', async () => {
    expect((await call(true, 'admin:permissions')).status).toBe(200);
    expect((await call(true, 'read:*')).status).toBe(403);
  });
});

describe('check --explain with a delegation token', () => {
  it('names the three sets and which one refused', async () => {
    const store = new MemoryStore();
    store.putUser({
      subject: 'alice',
      roles: [],
      grants: [{ permission: 'read:posts:1' }, { permission: 'read:reports' }],
      denies: [],
    });
    const policy = compilePolicy(delegationPolicy(idp), { env: { [KEYS_ENV]: keys.text } });
    const gatehouse = new Gatehouse({ policy, store, now });
    const token = await signDelegation(
      keys,
      delegationClaims(NOW, 'alice', [REPORTER(idp)], 'read:posts:*'),
    );
    const outside = formatExplain(
      await explainRequest(gatehouse, { token, method: 'GET', path: '/reports' }, now),
    );
    expect(outside).toMatch(/^DENY 403 outside_delegation: .*outside the token's scope/);
    expect(outside).toContain('Delegated: reporter for alice');
    const allowed = formatExplain(
      await explainRequest(gatehouse, { token, method: 'GET', path: '/posts/1' }, now),
    );
    expect(allowed).toMatch(/^ALLOW 200 allowed/);
  });
});
