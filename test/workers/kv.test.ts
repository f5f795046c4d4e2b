/**
 * The KV permission store against real local KV: the key layout, encoded subjects and tenants,
 * validation of stored records, seeding, and the JWKS persistence hook.
 */
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { StoreError } from '../../src/errors.ts';
import {
  KvJwksPersistence,
  KvStore,
  kvKeys,
  permissionKvEntries,
  seedKv,
} from '../../src/stores/kv.ts';
import { instrumentedKv } from './helpers.ts';

describe('KV key layout', () => {
  it('encodes every part so no subject reaches another record', () => {
    expect(kvKeys.user({ subject: 'alice' })).toBe('user/-/s:alice');
    expect(kvKeys.user({ subject: 'alice:admin' })).toBe('user/-/s:alice%3Aadmin');
    expect(kvKeys.user({ subject: '../x' })).toBe('user/-/s:..%2Fx');
    expect(kvKeys.user({ subject: 'bob', tenant: 'acme/x' })).toBe('user/t:acme%2Fx/s:bob');
    expect(kvKeys.roles(undefined)).toBe('roles/-');
    expect(kvKeys.roles('acme')).toBe('roles/t:acme');
    expect(kvKeys.jwks('https://id.example/')).toBe('jwks/https%3A%2F%2Fid.example%2F');
  });

  it('seeds one value per user and one per tenant with roles', () => {
    const entries = permissionKvEntries(
      JSON.stringify({
        roles: { reader: { grants: ['read:posts'] } },
        users: { alice: { grants: [{ permission: 'read:drafts', expires: 1893456000 }] } },
        user_roles: { alice: ['reader'], 'a:b': ['reader'] },
        tenants: { acme: { users: { bob: { denies: ['delete:posts:*'] } } } },
      }),
    );
    expect(Object.fromEntries(entries.map((e) => [e.key, JSON.parse(e.value)]))).toEqual({
      'user/-/s:alice': {
        roles: ['reader'],
        grants: [{ permission: 'read:drafts', expires: 1893456000 }],
      },
      'user/-/s:a%3Ab': { roles: ['reader'] },
      'roles/-': { reader: { grants: ['read:posts'] } },
      'user/t:acme/s:bob': { denies: ['delete:posts:*'] },
    });
  });
});

describe('KvStore', () => {
  it('reads a seeded user and the tenant roles', async () => {
    await seedKv(
      env.PERMISSIONS,
      JSON.stringify({
        roles: { auditor: { grants: ['read:logs'], inherits: [] } },
        users: { 'kv:user': { grants: ['read:posts'] } },
        user_roles: { 'kv:user': [{ role: 'auditor', expires: 1893456000 }] },
        tenants: {},
      }),
    );
    const store = new KvStore(env.PERMISSIONS);
    expect(await store.getUser({ subject: 'kv:user' })).toEqual({
      subject: 'kv:user',
      roles: [{ role: 'auditor', expiresAt: 1893456000 }],
      grants: [{ permission: 'read:posts' }],
      denies: [],
    });
    expect(await store.getUser({ subject: 'kv' })).toBeNull();
    const roles = await store.getRoles(undefined);
    expect(roles.map((r) => r.name)).toContain('auditor');
  });

  it('answers null for a subject whose key KV could never hold', async () => {
    const store = new KvStore(env.PERMISSIONS);
    expect(await store.getUser({ subject: 'x'.repeat(600) })).toBeNull();
  });

  it('refuses a malformed record with store_invalid_record', async () => {
    await env.PERMISSIONS.put('user/-/s:odd', JSON.stringify({ grants: 'read:posts' }));
    await env.PERMISSIONS.put('user/-/s:extra', JSON.stringify({ grants: [], admin: true }));
    await env.PERMISSIONS.put('user/-/s:text', 'not json');
    const store = new KvStore(env.PERMISSIONS);
    for (const subject of ['odd', 'extra', 'text']) {
      const error = await store.getUser({ subject }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StoreError);
      expect((error as StoreError).code).toBe('store_invalid_record');
    }
  });

  it('turns a KV failure into store_unavailable without the backend message', async () => {
    const { kv, state } = instrumentedKv();
    state.failing = true;
    const error = await new KvStore(kv).getUser({ subject: 'a' }).catch((e: unknown) => e);
    expect((error as StoreError).code).toBe('store_unavailable');
    expect((error as StoreError).message).not.toContain('backend');
  });

  it('refuses a cacheTtl below KV minimum of 30 seconds', () => {
    expect(() => new KvStore(env.PERMISSIONS, { cacheTtlSeconds: 10 })).toThrow(/30/);
  });
});

describe('KvJwksPersistence', () => {
  it('round-trips a key set and skips writing an unchanged one', async () => {
    let puts = 0;
    const kv = {
      get: env.PERMISSIONS.get.bind(env.PERMISSIONS) as typeof env.PERMISSIONS.get,
      put: async (key: string, value: string, options?: { expirationTtl?: number }) => {
        puts++;
        await env.PERMISSIONS.put(key, value, options);
      },
      delete: async (key: string) => env.PERMISSIONS.delete(key),
    };
    const jwks = { keys: [{ kty: 'EC', crv: 'P-256', x: 'x', y: 'y', kid: 'k' }] };
    const first = new KvJwksPersistence(kv);
    await first.save('https://id.example/', jwks as never);
    const second = new KvJwksPersistence(kv);
    expect(await second.load('https://id.example/')).toEqual(jwks);
    await second.save('https://id.example/', jwks as never);
    expect(puts).toBe(1);
  });
});
