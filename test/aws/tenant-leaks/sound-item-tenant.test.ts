import { describe, expect, it } from 'vitest';
import { res, world } from './harness.ts';

describe('item listing overrides the fixed tenant with a grant-bound value', () => {
  it('grant read:reports:globex lists GET/t/globex/reports for an acme caller', async () => {
    const w = await world({
      tenancy: true,
      tenant: 'acme',
      routes: [
        { method: 'GET', path: '/me', authenticated: true },
        { method: 'GET', path: '/t/:tenant/reports', require: ['read:reports:{tenant}'] },
      ],
      record: { grants: [{ permission: 'read:reports:globex' }], denies: [] },
    });
    const policy = await w.first('GET', '/me');
    console.log(JSON.stringify(res(policy)));
    const path = '/t/globex/reports';
    console.log(JSON.stringify((await w.decide('GET', path)).reason));
    expect({
      cached: w.cachedAllows(policy, 'GET', path),
      truth: await w.truth('GET', path),
    }).toEqual({
      cached: false,
      truth: false,
    });
  });
});
