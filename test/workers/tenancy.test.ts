/**
 * The check API across tenants: a caller checks only subjects of its own tenant (an item without
 * a tenant is the caller's), a tenant admin's `*` never reaches another tenant, and a platform
 * caller (no tenant) needs authz:check:any-tenant to check a tenant's subjects.
 */
import { env } from 'cloudflare:workers';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  bearer,
  demoTokenFor,
  seedDemo,
  TENANT_POLICY,
  type TestGuard,
  tenantToken,
  testGuard,
} from './helpers.ts';

beforeEach(async () => {
  await seedDemo();
  const kv = env.PERMISSIONS;
  await kv.put('roles/t:acme', JSON.stringify({ tadmin: { grants: ['*'] } }));
  await kv.put('user/t:acme/s:mallory', JSON.stringify({ roles: ['tadmin'] }));
  await kv.put('user/t:acme/s:ann', JSON.stringify({ grants: ['read:posts'] }));
  await kv.put('user/t:globex/s:victim', JSON.stringify({ grants: ['read:secret'] }));
  // A platform service that may check, but holds nothing that covers any-tenant.
  await kv.put('user/-/s:svc', JSON.stringify({ grants: ['authz:check'] }));
  await kv.put(
    'user/-/s:platform',
    JSON.stringify({ grants: ['authz:check', 'authz:check:any-tenant'] }),
  );
});

function guard(): TestGuard {
  return testGuard({}, { policy: TENANT_POLICY });
}

function post(g: TestGuard, path: string, token: string, body: unknown) {
  return g.fetch(`/.gatehouse/v1/${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...bearer(token) },
    body: JSON.stringify(body),
  });
}

describe('check API tenancy', () => {
  it("refuses a tenant admin (grants: ['*']) another tenant's subject, single and batch", async () => {
    const mallory = await tenantToken('mallory', 'acme');
    const g = guard();
    const single = await post(g, 'check', mallory, {
      subject: 'victim',
      tenant: 'globex',
      permission: 'read:secret',
    });
    expect(single.status).toBe(403);
    expect(await single.json()).toMatchObject({ reason: 'tenant_mismatch' });
    const batch = await post(g, 'check/batch', mallory, {
      items: [
        { subject: 'ann', permission: 'read:posts' },
        { subject: 'victim', tenant: 'globex', permission: 'read:secret' },
      ],
    });
    expect(batch.status).toBe(403);
    const text = await batch.text();
    expect(text).toContain('items[1].tenant');
    expect(text).not.toContain('read:secret');
  });

  it("reads an item without a tenant as the caller's tenant", async () => {
    const mallory = await tenantToken('mallory', 'acme');
    const g = guard();
    const implicit = await post(g, 'check', mallory, { subject: 'ann', permission: 'read:posts' });
    expect(await implicit.json()).toMatchObject({ allow: true, subject: 'ann', tenant: 'acme' });
    const explicit = await post(g, 'check', mallory, {
      subject: 'ann',
      tenant: 'acme',
      permission: 'read:posts',
    });
    expect(await explicit.json()).toMatchObject({ allow: true, tenant: 'acme' });
    // The untenanted alice is not reachable from acme: this is acme's (unknown) alice.
    const other = await post(g, 'check', mallory, { subject: 'alice', permission: 'read:drafts' });
    expect(await other.json()).toMatchObject({ allow: false, tenant: 'acme' });
  });

  it('lets a platform caller with authz:check:any-tenant check any tenant', async () => {
    const g = guard();
    for (const subject of ['platform', 'carol']) {
      // carol is an untenanted admin: her * covers authz:check:any-tenant.
      const response = await post(g, 'check', await demoTokenFor(subject), {
        subject: 'victim',
        tenant: 'globex',
        permission: 'read:secret',
      });
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({ allow: true, tenant: 'globex' });
    }
  });

  it('refuses a platform caller with only authz:check a tenant, but not its own partition', async () => {
    const svc = await demoTokenFor('svc');
    const g = guard();
    const tenant = await post(g, 'check', svc, {
      subject: 'victim',
      tenant: 'globex',
      permission: 'read:secret',
    });
    expect(tenant.status).toBe(403);
    const own = await post(g, 'check', svc, { subject: 'alice', permission: 'read:drafts' });
    expect(await own.json()).toMatchObject({ allow: true, subject: 'alice' });
  });

  it("answers a token item for the token's own principal", async () => {
    const mallory = await tenantToken('mallory', 'acme');
    const victimToken = await tenantToken('victim', 'globex');
    const response = await post(guard(), 'check', mallory, {
      token: victimToken,
      permission: 'read:secret',
    });
    expect(await response.json()).toMatchObject({ allow: true, subject: 'victim' });
  });
});
