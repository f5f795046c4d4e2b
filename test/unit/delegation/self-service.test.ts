/**
 * Self-service standing grants and delegated callers (security review of issue 12, F3): even
 * with delegation.adminApi, a delegated caller cannot turn its minutes-long token into a
 * months-long standing grant at /delegations.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { MemoryAdminStore } from '../../../src/admin/memory.ts';
import {
  TOKEN_EXCHANGE_GRANT,
  TOKEN_TYPE_JWT,
  TOKEN_TYPE_STANDING,
} from '../../../src/delegation/index.ts';
import { createAdminApi } from '../../../src/http/admin-api.ts';
import { handleTokenRequest } from '../../../src/http/token-exchange.ts';
import { compilePolicy, Gatehouse } from '../../../src/policy/index.ts';
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

const START = Date.parse('2026-11-23T12:00:00Z');
let clock = START;
const now = () => clock;
let idp: TestIssuer;
let keys: TestKeys;
beforeAll(async () => {
  idp = await createTestIssuer({ now });
  keys = await makeKeys();
});

describe('a delegated caller at /delegations', () => {
  it('cannot write a 90-day standing grant with a 5-minute delegation token', async () => {
    const backend = new MemoryAdminStore(undefined, now);
    backend.store.putUser({
      subject: 'alice',
      roles: [{ role: 'reader' }],
      grants: [],
      denies: [],
    });
    const policy = compilePolicy(
      delegationPolicy(idp, {}, { standingGrants: true, adminApi: true }),
      {
        env: { [KEYS_ENV]: keys.text },
      },
    );
    const g = new Gatehouse({ policy, store: backend.store, now });
    const api = createAdminApi({ gatehouse: g, store: backend, now });
    const delegated = await signDelegation(
      keys,
      delegationClaims(clock, 'alice', [REPORTER(idp)], 'read:posts:*'),
    );
    const res = await api.fetch(
      new Request('https://g.test/v1/admin/delegations', {
        method: 'POST',
        headers: { authorization: `Bearer ${delegated}`, 'content-type': 'application/json' },
        body: JSON.stringify({ actor: 'reporter', scope: ['read:posts:*'], expires: '90d' }),
      }),
      undefined,
    );
    clock += 60 * 86_400_000; // two months later; the delegation token died long ago
    const out = await handleTokenRequest(
      g,
      new Request('https://g.test/.gatehouse/v1/token', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: TOKEN_EXCHANGE_GRANT,
          subject_token: 'alice',
          subject_token_type: TOKEN_TYPE_STANDING,
          actor_token: await idp.mint({ sub: 'reporter' }),
          actor_token_type: TOKEN_TYPE_JWT,
          scope: 'read:posts:*',
        }).toString(),
      }),
      { now, audit: () => {} },
    );
    expect({ create: res.status, later: out.status }).toEqual({ create: 403, later: 400 });
  });
});
