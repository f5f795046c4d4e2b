/**
 * The platform-free core inside workerd: the same policy, verifier, matcher and store code the
 * Node suite tests, run in the Workers runtime (Web Crypto, Intl and all).
 */
import { describe, expect, it } from 'vitest';
import { compilePolicy, Gatehouse } from '../../src/policy/index.ts';
import { MemoryStore } from '../../src/stores/index.ts';
import { AUDIENCE, createTestIssuer } from '../support/issuer.ts';

async function setup(alg: string) {
  const idp = await createTestIssuer({ alg });
  const policy = compilePolicy({
    version: 1,
    issuers: [
      {
        issuer: idp.issuer,
        audiences: [AUDIENCE],
        algorithms: [alg as 'ES256'],
        keys: { jwks: idp.jwks },
      },
    ],
    roles: {
      reader: { grants: ['read:posts'] },
      nightshift: {
        grants: [
          {
            permission: 'write:posts:*',
            when: {
              time: { hours: { from: '22:00', to: '06:00' }, timezone: 'Asia/Tokyo' },
              ip: ['2001:db8::/32'],
            },
          },
        ],
      },
    },
    routes: [
      { method: 'GET', path: '/posts/:id', require: ['read:posts'] },
      { method: 'PUT', path: '/posts/:id', require: ['write:posts:{id}'] },
    ],
  });
  const store = new MemoryStore();
  store.putUser({ subject: 'alice', roles: [{ role: 'reader' }], grants: [], denies: [] });
  store.putUser({ subject: 'owl', roles: [{ role: 'nightshift' }], grants: [], denies: [] });
  return { idp, store, policy };
}

describe('the core in workerd', () => {
  for (const alg of ['RS256', 'ES256', 'EdDSA']) {
    it(`verifies ${alg} tokens and decides allow and deny`, async () => {
      const { idp, store, policy } = await setup(alg);
      const gatehouse = new Gatehouse({ policy, store });
      const token = await idp.mint();
      const allow = await gatehouse.decide({
        method: 'GET',
        path: '/posts/1',
        authorization: `Bearer ${token}`,
      });
      expect(allow).toMatchObject({ allow: true, reason: 'allowed' });
      const deny = await gatehouse.decide({
        method: 'PUT',
        path: '/posts/1',
        authorization: `Bearer ${token}`,
      });
      expect(deny).toMatchObject({ allow: false, status: 403, reason: 'missing_permission' });
    });
  }

  it('refuses a tampered signature with 401', async () => {
    const { idp, store, policy } = await setup('ES256');
    const gatehouse = new Gatehouse({ policy, store });
    const [h, p, s] = (await idp.mint()).split('.');
    const flipped = `${s!.startsWith('A') ? 'B' : 'A'}${s!.slice(1)}`;
    const d = await gatehouse.decide({
      method: 'GET',
      path: '/posts/1',
      authorization: `Bearer ${h}.${p}.${flipped}`,
    });
    expect(d).toMatchObject({ allow: false, status: 401 });
  });

  it('evaluates time-zone and IPv6 conditions with the runtime Intl and clock', async () => {
    const { idp, store, policy } = await setup('ES256');
    // 23:30 in Tokyo is 14:30 UTC.
    const night = Date.parse('2026-11-23T14:30:00Z');
    const day = Date.parse('2026-11-23T03:00:00Z');
    for (const [at, ip, allowed] of [
      [night, '2001:db8::1', true],
      [night, '2001:db9::1', false],
      [day, '2001:db8::1', false],
    ] as const) {
      const gatehouse = new Gatehouse({ policy, store, now: () => at });
      const mint = await idp.mint({
        sub: 'owl',
        iat: Math.floor(at / 1000),
        exp: Math.floor(at / 1000) + 600,
      });
      const d = await gatehouse.decide({
        method: 'PUT',
        path: '/posts/5',
        authorization: `Bearer ${mint}`,
        ip,
      });
      expect(d.allow).toBe(allowed);
    }
  });
});
