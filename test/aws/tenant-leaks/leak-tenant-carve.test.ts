import { describe, expect, it } from 'vitest';
import { res, world } from './harness.ts';

describe('carve-out of a tenant route skipped when only its generic shape meets the wildcard', () => {
  it('GET /t/settings/files under GET /:a/settings/* (tenant route /t/:tenant/files/*)', async () => {
    const w = await world({
      tenancy: true,
      tenant: 'acme',
      routes: [
        { method: 'GET', path: '/t/:tenant/files/*', authenticated: true },
        { method: 'GET', path: '/:a/settings/*', require: ['read:pages'] },
      ],
      record: { grants: [{ permission: 'read:pages' }], denies: [] },
    });
    const policy = await w.first('GET', '/x/settings');
    console.log(JSON.stringify(res(policy)));
    const path = '/t/settings/files';
    console.log(JSON.stringify((await w.decide('GET', path)).reason));
    const cached = w.cachedAllows(policy, 'GET', path);
    const truth = await w.truth('GET', path);
    expect({ cached, truth }).toEqual({ cached: truth, truth });
  });
  it('non-rest: GET /t/globex/reports under GET /:x/globex/reports', async () => {
    const w = await world({
      tenancy: true,
      tenant: 'acme',
      routes: [
        { method: 'GET', path: '/t/:tenant/reports', authenticated: true },
        { method: 'GET', path: '/:x/globex/reports', authenticated: true },
      ],
      record: { grants: [], denies: [] },
    });
    const policy = await w.first('GET', '/t/acme/reports');
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
