import { describe, expect, it } from 'vitest';
import { res, world } from './harness.ts';

describe('long tenant', () => {
  it('tenant of 200 safe chars filled into a permission', async () => {
    const tenant = 't'.repeat(200);
    const w = await world({
      tenancy: true,
      tenant,
      routes: [
        { method: 'GET', path: '/me', authenticated: true },
        { method: 'GET', path: '/t/:tenant/reports', require: ['read:reports:{tenant}'] },
      ],
      record: { grants: [{ permission: 'read:reports:*' }], denies: [] },
    });
    const policy = await w.first('GET', '/me');
    console.log(JSON.stringify(res(policy)));
    const path = `/t/${tenant}/reports`;
    console.log(JSON.stringify(await w.decide('GET', path)));
    const cached = w.cachedAllows(policy, 'GET', path);
    const truth = await w.truth('GET', path);
    expect({ cached, truth }).toEqual({ cached: truth, truth });
  });
});
