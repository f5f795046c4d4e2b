/**
 * Standing delegation: alice lets bob act for her with a scope and an expiry, as a direct grant
 * `gatehouse.delegate:bob:<scope>` in her record (written, revoked and audited by the admin
 * operations like any grant); bob exchanges his own token plus the reference for a delegation
 * token; revoking the grant ends it within the permission cache bound.
 */
import * as jose from 'jose';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MemoryAdminStore } from '../../../src/admin/memory.ts';
import { PermissionAdmin } from '../../../src/admin/operations.ts';
import {
  encodeActor,
  STANDING_CLAIM,
  standingDenies,
  standingGrant,
  TOKEN_EXCHANGE_GRANT,
  TOKEN_TYPE_JWT,
  TOKEN_TYPE_STANDING,
} from '../../../src/delegation/index.ts';
import { createAdminApi } from '../../../src/http/admin-api.ts';
import { handleTokenRequest } from '../../../src/http/token-exchange.ts';
import { compilePolicy, Gatehouse, type PolicyDocument } from '../../../src/policy/index.ts';
import type { Grant, SubjectKey } from '../../../src/types.ts';
import {
  delegationClaims,
  delegationPolicy,
  KEYS_ENV,
  makeKeys,
  signDelegation,
  type TestKeys,
} from '../../support/delegation.ts';
import { createTestIssuer, type TestIssuer } from '../../support/issuer.ts';

const START = Date.parse('2026-11-23T12:00:00Z');
let clock = START;
const now = () => clock;
let idp: TestIssuer;
let keys: TestKeys;
let backend: MemoryAdminStore;
let admin: PermissionAdmin;
const alice: SubjectKey = { subject: 'alice' };

/** The Gatehouse, and the admin operations (audited) over the same store, for this policy. */
async function build(
  doc: PolicyDocument = delegationPolicy(idp, {}, { standingGrants: true }),
): Promise<Gatehouse> {
  const policy = compilePolicy(doc, { env: { [KEYS_ENV]: keys.text } });
  admin = new PermissionAdmin({
    store: backend,
    policyRoles: policy.roles,
    actor: 'cli:test',
    via: 'cli',
    now,
  });
  await admin.assign(alice, 'reader');
  return new Gatehouse({ policy, store: backend.store, now });
}

async function exchange(gatehouse: Gatehouse, actor: string, scope: string, delegator = 'alice') {
  const body = new URLSearchParams({
    grant_type: TOKEN_EXCHANGE_GRANT,
    subject_token: delegator,
    subject_token_type: TOKEN_TYPE_STANDING,
    actor_token: await idp.mint({ sub: actor }),
    actor_token_type: TOKEN_TYPE_JWT,
    scope,
  });
  const response = await handleTokenRequest(
    gatehouse,
    new Request('https://g.test/.gatehouse/v1/token', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: body.toString(),
    }),
    { now, audit: () => {} },
  );
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

const decide = (gatehouse: Gatehouse, token: string, path = '/posts/1', method = 'GET') =>
  gatehouse.decide({ method, path, authorization: `Bearer ${token}` });

const delegate = (actor: string, scope: string, expiresAt?: number): Grant => ({
  permission: standingGrant(actor, scope)!,
  ...(expiresAt !== undefined && { expiresAt }),
});

beforeAll(async () => {
  idp = await createTestIssuer({ now });
  keys = await makeKeys();
});

beforeEach(() => {
  clock = START;
  backend = new MemoryAdminStore(undefined, now);
});

describe('standing delegation', () => {
  it('bob exchanges his token and the reference for a token that acts for alice, audited', async () => {
    const gatehouse = await build();
    await admin.grant(alice, delegate('bob', 'read:posts:*', START / 1000 + 3600));
    const { status, body } = await exchange(gatehouse, 'bob', 'read:posts:*');
    expect(status).toBe(200);
    const token = body.access_token as string;
    expect(jose.decodeJwt(token)).toMatchObject({
      sub: 'alice',
      act: { sub: 'bob' },
      grant: STANDING_CLAIM,
    });
    expect((await decide(gatehouse, token)).allow).toBe(true);
    // Reads of alice's other permissions stay outside what bob was given.
    const audit = await backend.listAudit({ since: 0 });
    expect(audit.map((r) => r.operation)).toContain('grant');
  });

  it('never outlives the standing grant', async () => {
    const gatehouse = await build();
    await admin.grant(alice, delegate('bob', 'read:posts:*', START / 1000 + 120));
    const { body } = await exchange(gatehouse, 'bob', 'read:posts:*');
    expect(body.expires_in).toBe(120);
  });

  it('revoking the grant ends live tokens within the cache bound, and stops new exchanges', async () => {
    const gatehouse = await build();
    await admin.grant(alice, delegate('bob', 'read:posts:*'));
    const token = (await exchange(gatehouse, 'bob', 'read:posts:*')).body.access_token as string;
    expect((await decide(gatehouse, token)).allow).toBe(true);
    await admin.revoke(alice, standingGrant('bob', 'read:posts:*')!);
    clock += 31_000;
    expect(await decide(gatehouse, token)).toMatchObject({
      allow: false,
      reason: 'delegation_refused',
    });
    expect(await decide(gatehouse, token, '/me')).toMatchObject({
      allow: false,
      reason: 'delegation_refused',
    });
    expect((await exchange(gatehouse, 'bob', 'read:posts:*')).body.error).toBe('invalid_grant');
  });

  it('an expired grant, a grant to someone else, or none at all is invalid_grant', async () => {
    const gatehouse = await build();
    await admin.grant(alice, delegate('bob', 'read:posts:*', START / 1000 + 60));
    await admin.grant(alice, delegate('carol', 'read:posts:*'));
    clock += 61_000;
    expect((await exchange(gatehouse, 'bob', 'read:posts:*')).body.error).toBe('invalid_grant');
    expect((await exchange(gatehouse, 'dave', 'read:posts:*')).body.error).toBe('invalid_grant');
  });

  it('refuses a scope beyond the grant, or beyond what alice holds', async () => {
    const gatehouse = await build();
    await admin.grant(alice, delegate('bob', 'read:posts:*'));
    await admin.grant(alice, delegate('bob', 'write:posts:*'));
    expect((await exchange(gatehouse, 'bob', 'read:*')).body.error).toBe('invalid_scope');
    // alice (a reader) has no write, whatever her grant to bob says.
    expect((await exchange(gatehouse, 'bob', 'write:posts:*')).body.error).toBe('invalid_scope');
  });

  it('only direct grants written out in full count: not a role, not a wildcard', async () => {
    const gatehouse = await build(
      delegationPolicy(
        idp,
        {
          roles: {
            reader: { grants: ['read:*', 'gatehouse.delegate:bob:read:*'] },
            boss: { grants: ['*'] },
          },
        },
        { standingGrants: true },
      ),
    );
    await admin.assign(alice, 'boss');
    await admin.grant(alice, { permission: 'gatehouse.delegate:*' });
    expect((await exchange(gatehouse, 'bob', 'read:posts:*')).body.error).toBe('invalid_grant');
  });

  it("an actor's name cannot reach another actor's grant (encoded as one segment)", async () => {
    const gatehouse = await build();
    await admin.grant(alice, delegate('bob', 'read:posts:*'));
    expect(encodeActor('bob:read')).toBe('bob%3Aread');
    expect(encodeActor('*')).toBe('%2A');
    for (const actor of ['bob:read', '*', 'bob%3Aread', 'BOB']) {
      expect((await exchange(gatehouse, actor, 'posts:*')).body.error).toMatch(
        /invalid_grant|invalid_scope/,
      );
      expect((await exchange(gatehouse, actor, 'read:posts:*')).body.error).toBe('invalid_grant');
    }
  });

  it("alice's deny on a standing grant wins at use time", async () => {
    const gatehouse = await build();
    await admin.grant(alice, delegate('bob', 'read:posts:*'));
    const token = (await exchange(gatehouse, 'bob', 'read:posts:*')).body.access_token as string;
    await admin.deny(alice, { permission: 'gatehouse.delegate:bob:read:posts:secret' });
    clock += 31_000;
    expect((await decide(gatehouse, token, '/posts/secret')).reason).toBe('outside_delegation');
    expect((await decide(gatehouse, token, '/posts/1')).allow).toBe(true);
  });

  it('is off unless the policy enables it, at exchange and at use', async () => {
    const gatehouse = await build(delegationPolicy(idp));
    await admin.grant(alice, delegate('bob', 'read:posts:*'));
    expect((await exchange(gatehouse, 'bob', 'read:posts:*')).body.error).toBe(
      'unauthorized_client',
    );
    const forged = await signDelegation(
      keys,
      delegationClaims(clock, 'alice', [{ subject: 'bob' }], 'read:posts:*', {
        grant: STANDING_CLAIM,
      }),
    );
    expect((await decide(gatehouse, forged)).reason).toBe('delegation_refused');
  });

  it('a chain on a standing token stays bound to the grant', async () => {
    const gatehouse = await build();
    await admin.grant(alice, delegate('bob', 'read:posts:*'));
    const parent = (await exchange(gatehouse, 'bob', 'read:posts:*')).body.access_token as string;
    const body = new URLSearchParams({
      grant_type: TOKEN_EXCHANGE_GRANT,
      subject_token: parent,
      subject_token_type: TOKEN_TYPE_JWT,
      actor_token: await idp.mint({ sub: 'exporter' }),
      actor_token_type: TOKEN_TYPE_JWT,
      scope: 'read:posts:*',
    });
    const response = await handleTokenRequest(
      gatehouse,
      new Request('https://g.test/.gatehouse/v1/token', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: body.toString(),
      }),
      { now, audit: () => {} },
    );
    const child = ((await response.json()) as { access_token: string }).access_token;
    expect(jose.decodeJwt(child)).toMatchObject({ act: { sub: 'exporter', act: { sub: 'bob' } } });
    expect((await decide(gatehouse, child)).allow).toBe(true);
    await admin.revoke(alice, standingGrant('bob', 'read:posts:*')!);
    clock += 31_000;
    expect((await decide(gatehouse, child)).reason).toBe('delegation_refused');
  });
});

describe('standing denies for whole-set callers (AWS principal mode)', () => {
  it("turns the delegator's denies that reach an actor's standing grants into plain denies", () => {
    const entry = (permission: string, effect: 'allow' | 'deny') => ({
      permission,
      effect,
      via: 'direct' as const,
    });
    const denies = standingDenies(
      [
        entry('gatehouse.delegate:bob:read:secret', 'deny'),
        entry('gatehouse.delegate:*', 'deny'),
        entry('gatehouse.delegate:carol:read:x', 'deny'),
        entry('gatehouse.delegate:bob:read:open', 'allow'),
        entry('read:posts', 'deny'),
      ],
      'bob',
    );
    expect(denies.map((d) => d.permission)).toEqual(['read:secret', '*']);
  });
});

describe('self-service standing grants at the admin API (<base>/delegations)', () => {
  async function api(doc?: PolicyDocument) {
    const gatehouse = await build(doc);
    const adminApi = createAdminApi({ gatehouse, store: backend, now });
    const call = async (method: string, path: string, token: string, body?: unknown) => {
      const response = await adminApi.fetch(
        new Request(`https://g.test/v1/admin/delegations${path}`, {
          method,
          headers: {
            authorization: `Bearer ${token}`,
            ...(body !== undefined && { 'content-type': 'application/json' }),
          },
          ...(body !== undefined && { body: JSON.stringify(body) }),
        }),
        undefined,
      );
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    return { gatehouse, call };
  }

  it('alice, with her own token, lets exporter act for her; exporter exchanges; alice revokes', async () => {
    const { gatehouse, call } = await api();
    const own = await idp.mint({ sub: 'alice' });
    const created = await call('POST', '', own, {
      actor: 'exporter',
      scope: ['read:posts:*'],
      expires: '1d',
    });
    expect(created.status).toBe(201);
    expect(created.body.delegations).toEqual([
      { permission: 'gatehouse.delegate:exporter:read:posts:*', expiresAt: START / 1000 + 86_400 },
    ]);
    const audit = await backend.listAudit({ since: 0 });
    expect(audit[0]).toMatchObject({ actor: `${idp.issuer}#alice`, operation: 'grant' });
    expect((await call('GET', '', own)).body.delegations).toHaveLength(1);

    // A new grant applies within the permission cache bound, like any grant.
    clock += 31_000;
    const token = (await exchange(gatehouse, 'exporter', 'read:posts:*')).body
      .access_token as string;
    expect((await decide(gatehouse, token)).allow).toBe(true);

    expect((await call('DELETE', '/exporter', own)).status).toBe(200);
    clock += 31_000;
    expect((await decide(gatehouse, token)).reason).toBe('delegation_refused');
    expect((await call('DELETE', '/exporter', own)).status).toBe(404);
  });

  it('refuses to give away what alice does not hold, or without a bounded expiry', async () => {
    const { call } = await api();
    const own = await idp.mint({ sub: 'alice' });
    const write = await call('POST', '', own, {
      actor: 'exporter',
      scope: ['write:posts:*'],
      expires: '1d',
    });
    expect(write).toMatchObject({ status: 403, body: { field: 'scope' } });
    const forever = await call('POST', '', own, { actor: 'exporter', scope: ['read:posts:*'] });
    expect(forever).toMatchObject({ status: 400, body: { field: 'expires' } });
    const long = await call('POST', '', own, {
      actor: 'exporter',
      scope: ['read:posts:*'],
      expires: '100d',
    });
    expect(long).toMatchObject({ status: 400, body: { field: 'expires' } });
    const everything = await call('POST', '', own, {
      actor: 'exporter',
      scope: ['*'],
      expires: '1d',
    });
    expect(everything).toMatchObject({ status: 400, body: { field: 'scope[0]' } });
    expect(await backend.listAudit({ since: 0 })).toHaveLength(1); // the reader assignment only
  });

  it('names only an actor a delegation.actors rule lets act for the caller, within its ceiling', async () => {
    const { call } = await api();
    const own = await idp.mint({ sub: 'alice' });
    // alice holds read:* (reader); mallory has no rule, exporter's ceiling stops at read:posts:*.
    const stranger = await call('POST', '', own, {
      actor: 'mallory',
      scope: ['read:posts:*'],
      expires: '1d',
    });
    expect(stranger).toMatchObject({ status: 403, body: { field: 'actor' } });
    const wide = await call('POST', '', own, {
      actor: 'exporter',
      scope: ['read:drafts:*'],
      expires: '1d',
    });
    expect(wide).toMatchObject({ status: 403, body: { field: 'scope' } });
    // JSON can carry a lone surrogate; as UTF-8 it would name the grant of U+FFFD.
    for (const actor of ['\uD800', 'exporter\uDFFF']) {
      const lone = await call('POST', '', own, { actor, scope: ['read:posts:*'], expires: '1d' });
      expect(lone).toMatchObject({ status: 400, body: { field: 'actor' } });
    }
    expect(await backend.listAudit({ since: 0 })).toHaveLength(1); // the reader assignment only
  });

  it('refuses delegated callers and is off unless the policy enables standing grants', async () => {
    const { call } = await api();
    const delegatedToken = await signDelegation(
      keys,
      delegationClaims(clock, 'alice', [{ subject: 'reporter', issuer: idp.issuer }], 'read:*'),
    );
    const asDelegate = await call('POST', '', delegatedToken, {
      actor: 'mallory',
      scope: ['read:posts:*'],
      expires: '1d',
    });
    expect(asDelegate).toMatchObject({ status: 403, body: { reason: 'delegation_refused' } });
    const off = await api(delegationPolicy(idp));
    expect((await off.call('GET', '', await idp.mint({ sub: 'alice' }))).status).toBe(404);
  });
});

describe('self-service with delegation.adminApi', () => {
  it('still refuses delegated callers: a grant would outlive the token and leave its chain', async () => {
    const doc = delegationPolicy(idp, {}, { standingGrants: true, adminApi: true });
    const gatehouse = await build(doc);
    const adminApi = createAdminApi({ gatehouse, store: backend, now });
    for (const actor of ['reporter', 'exporter', 'mallory']) {
      const token = await signDelegation(
        keys,
        delegationClaims(
          clock,
          'alice',
          [{ subject: 'reporter', issuer: idp.issuer }],
          'read:posts:*',
        ),
      );
      const response = await adminApi.fetch(
        new Request('https://g.test/v1/admin/delegations', {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ actor, scope: ['read:posts:1'], expires: '1d' }),
        }),
        undefined,
      );
      expect({
        actor,
        status: response.status,
        reason: ((await response.json()) as { reason?: string }).reason,
      }).toEqual({
        actor,
        status: 403,
        reason: 'delegation_refused',
      });
    }
    expect(await backend.listAudit({ since: 0 })).toHaveLength(1); // the reader assignment only
  });
});
