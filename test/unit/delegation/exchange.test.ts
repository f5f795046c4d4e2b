/**
 * The token endpoint (RFC 8693) through its Fetch handler with a real Gatehouse: what it issues,
 * and every widening it refuses at exchange (scope beyond the delegator, the parent or a ceiling;
 * lifetime beyond the parent or the maximum; depth; who may act for whom).
 */
import * as jose from 'jose';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  DELEGATION_TYPE,
  TOKEN_EXCHANGE_GRANT,
  TOKEN_TYPE_ACCESS_TOKEN,
  TOKEN_TYPE_JWT,
} from '../../../src/delegation/index.ts';
import {
  type ExchangeAudit,
  handleJwksRequest,
  handleTokenRequest,
} from '../../../src/http/token-exchange.ts';
import { compilePolicy, Gatehouse, type PolicyDocument } from '../../../src/policy/index.ts';
import { MemoryStore } from '../../../src/stores/index.ts';
import type { UserRecord } from '../../../src/types.ts';
import {
  delegationPolicy,
  KEYS_ENV,
  makeKeys,
  SELF_ISSUER,
  type TestKeys,
} from '../../support/delegation.ts';
import { createTestIssuer, type TestIssuer } from '../../support/issuer.ts';

const START = Date.parse('2026-11-23T12:00:00Z');
let clock = START;
const now = () => clock;
let idp: TestIssuer;
let keys: TestKeys;
let store: MemoryStore;
let audits: ExchangeAudit[];

function user(subject: string, fields: Partial<UserRecord> = {}): UserRecord {
  return { subject, roles: [], grants: [], denies: [], ...fields };
}

function build(doc: PolicyDocument = delegationPolicy(idp)): Gatehouse {
  return new Gatehouse({
    policy: compilePolicy(doc, { env: { [KEYS_ENV]: keys.text } }),
    store,
    now,
  });
}

async function exchange(
  gatehouse: Gatehouse,
  params: Record<string, string>,
  init: { contentType?: string; method?: string } = {},
): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const request = new Request('https://gatehouse.test/.gatehouse/v1/token', {
    method: init.method ?? 'POST',
    headers: { 'content-type': init.contentType ?? 'application/x-www-form-urlencoded' },
    ...((init.method ?? 'POST') === 'POST' && { body: new URLSearchParams(params).toString() }),
  });
  const response = await handleTokenRequest(gatehouse, request, {
    now,
    audit: (e) => audits.push(e),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : {}, headers: response.headers };
}

async function onBehalf(scope: string, extra: Record<string, string> = {}) {
  return {
    grant_type: TOKEN_EXCHANGE_GRANT,
    subject_token: await idp.mint({ sub: 'alice' }),
    subject_token_type: TOKEN_TYPE_ACCESS_TOKEN,
    actor_token: await idp.mint({ sub: 'reporter' }),
    actor_token_type: TOKEN_TYPE_JWT,
    scope,
    ...extra,
  };
}

beforeAll(async () => {
  idp = await createTestIssuer({ now });
  keys = await makeKeys();
});

beforeEach(() => {
  clock = START;
  audits = [];
  store = new MemoryStore();
  store.putUser(user('alice', { roles: [{ role: 'writer' }] }));
});

describe('on behalf of', () => {
  it('issues a delegation token the edges then accept for the delegator', async () => {
    const gatehouse = build();
    const { status, body, headers } = await exchange(gatehouse, await onBehalf('read:posts:*'));
    expect(status).toBe(200);
    expect(headers.get('cache-control')).toBe('no-store');
    expect(body).toMatchObject({
      issued_token_type: TOKEN_TYPE_ACCESS_TOKEN,
      token_type: 'Bearer',
      expires_in: 900,
      scope: 'read:posts:*',
    });
    const token = body.access_token as string;
    expect(jose.decodeProtectedHeader(token)).toMatchObject({ typ: DELEGATION_TYPE });
    expect(jose.decodeJwt(token)).toMatchObject({
      iss: SELF_ISSUER,
      sub: 'alice',
      act: { sub: 'reporter', iss: idp.issuer },
    });
    const decision = await gatehouse.decide({
      method: 'GET',
      path: '/posts/3',
      authorization: `Bearer ${token}`,
    });
    expect(decision.allow).toBe(true);
    expect(audits).toEqual([
      expect.objectContaining({
        type: 'gatehouse.delegation_issued',
        delegator: 'alice',
        actors: 'reporter',
        scope: 'read:posts:*',
        tokenId: jose.decodeJwt(token).jti,
      }),
    ]);
    expect(JSON.stringify(audits)).not.toContain(token.split('.')[2]);
  });

  it('never outlives the subject token, nor the actor token, nor the maximum', async () => {
    const gatehouse = build();
    const iat = Math.floor(clock / 1000);
    for (const [subjectExp, actorExp, expected] of [
      [iat + 120, iat + 3600, 120],
      [iat + 3600, iat + 60, 60],
      [iat + 86_400, iat + 86_400, 900],
    ] as const) {
      const params = {
        ...(await onBehalf('read:posts:*')),
        subject_token: await idp.mint({ sub: 'alice', exp: subjectExp }),
        actor_token: await idp.mint({ sub: 'reporter', exp: actorExp }),
      };
      const { body } = await exchange(gatehouse, params);
      expect(body.expires_in).toBe(expected);
      const claims = jose.decodeJwt(body.access_token as string);
      expect(claims.exp! - claims.iat!).toBe(expected);
    }
  });

  it.each([
    ['beyond the actor ceiling', 'write:posts:*'],
    ['beyond the actor ceiling, wildcard', '*'],
    ['beyond the delegator (a permission she lacks)', 'read:mail:x'],
    ['not a permission', 'read'],
    ['blank', ' '],
  ])('refuses a scope %s', async (_name, scope) => {
    store.putUser(user('alice', { grants: [{ permission: 'read:posts:*' }] }));
    const { status, body } = await exchange(build(), await onBehalf(scope));
    expect(status).toBe(400);
    expect(body.error).toBe('invalid_scope');
  });

  it('refuses a wildcard scope with a delegator deny inside it', async () => {
    store.putUser(
      user('alice', { roles: [{ role: 'reader' }], denies: [{ permission: 'read:posts:secret' }] }),
    );
    expect((await exchange(build(), await onBehalf('read:posts:*'))).body.error).toBe(
      'invalid_scope',
    );
    expect((await exchange(build(), await onBehalf('read:posts:1'))).status).toBe(200);
  });

  it('refuses an actor nobody allowed, and by default nobody may act', async () => {
    const params = {
      ...(await onBehalf('read:posts:*')),
      actor_token: await idp.mint({ sub: 'mallory' }),
    };
    expect((await exchange(build(), params)).body.error).toBe('unauthorized_client');
    const closed = build(delegationPolicy(idp, {}, { actors: undefined as never }));
    expect((await exchange(closed, await onBehalf('read:posts:*'))).body.error).toBe(
      'unauthorized_client',
    );
  });

  it('refuses an actor of another tenant', async () => {
    const params = {
      ...(await onBehalf('read:posts:*')),
      actor_token: await idp.mint({ sub: 'reporter', tid: 'other' }),
    };
    const doc = delegationPolicy(idp);
    doc.issuers[0] = { ...doc.issuers[0]!, tenantClaim: 'tid' };
    params.subject_token = await idp.mint({ sub: 'alice', tid: 'acme' });
    store.putUser({ ...user('alice', { roles: [{ role: 'reader' }] }), tenant: 'acme' });
    expect((await exchange(build(doc), params)).body.error).toBe('unauthorized_client');
  });

  it('refuses a delegation token as the actor token', async () => {
    const gatehouse = build();
    const first = (await exchange(gatehouse, await onBehalf('read:posts:*'))).body
      .access_token as string;
    const params = { ...(await onBehalf('read:posts:*')), actor_token: first };
    expect((await exchange(gatehouse, params)).body.error).toBe('invalid_request');
  });

  it('an audience outside the configured ones is invalid_target', async () => {
    const { body } = await exchange(
      build(),
      await onBehalf('read:posts:*', { audience: 'https://x.test' }),
    );
    expect(body.error).toBe('invalid_target');
  });
});

describe('chains', () => {
  async function first(gatehouse: Gatehouse, scope = 'read:*'): Promise<string> {
    const { body } = await exchange(gatehouse, await onBehalf(scope));
    return body.access_token as string;
  }
  const further = async (parent: string, actor: string, scope: string) => ({
    grant_type: TOKEN_EXCHANGE_GRANT,
    subject_token: parent,
    subject_token_type: TOKEN_TYPE_JWT,
    actor_token: await idp.mint({ sub: actor }),
    actor_token_type: TOKEN_TYPE_ACCESS_TOKEN,
    scope,
  });

  it('nests act, current actor outermost, and keeps the parent expiry', async () => {
    const gatehouse = build();
    const parent = await first(gatehouse);
    clock += 100_000;
    const { status, body } = await exchange(
      gatehouse,
      await further(parent, 'exporter', 'read:reports'),
    );
    expect(status).toBe(200);
    const claims = jose.decodeJwt(body.access_token as string);
    expect(claims.act).toEqual({
      sub: 'exporter',
      iss: idp.issuer,
      act: { sub: 'reporter', iss: idp.issuer },
    });
    expect(claims.exp).toBe(jose.decodeJwt(parent).exp);
    expect(claims.sub).toBe('alice');
  });

  it("refuses a scope beyond the parent's or the new actor's ceiling", async () => {
    const gatehouse = build();
    const parent = await first(gatehouse, 'read:posts:*');
    expect(
      (await exchange(gatehouse, await further(parent, 'exporter', 'read:reports'))).body.error,
    ).toBe('invalid_scope');
    const wide = await first(gatehouse, 'read:*');
    expect(
      (await exchange(gatehouse, await further(wide, 'exporter', 'read:mail'))).body.error,
    ).toBe('invalid_scope');
  });

  it('refuses a chain deeper than the maximum', async () => {
    const gatehouse = build(delegationPolicy(idp, {}, { maxDepth: 2 }));
    const parent = await first(gatehouse);
    const second = (await exchange(gatehouse, await further(parent, 'auditor', 'read:*'))).body
      .access_token as string;
    const third = await exchange(gatehouse, await further(second, 'exporter', 'read:reports'));
    expect(third.body.error).toBe('invalid_request');
  });
});

describe('the request itself', () => {
  it.each([
    ['a wrong grant type', { grant_type: 'client_credentials' }, 'unsupported_grant_type'],
    ['no actor token', { actor_token: '' }, 'invalid_request'],
    ['an unknown subject token type', { subject_token_type: 'urn:x' }, 'invalid_request'],
    ['a forged subject token', { subject_token: 'a.b.c' }, 'invalid_request'],
    ['no scope', { scope: '' }, 'invalid_request'],
    ['a resource parameter', { resource: 'https://x.test' }, 'invalid_target'],
  ])('answers %s with an RFC 6749 error', async (_name, change, code) => {
    const { status, body, headers } = await exchange(build(), {
      ...(await onBehalf('read:posts:*')),
      ...change,
    });
    expect(status).toBe(400);
    expect(body.error).toBe(code);
    expect(headers.get('content-type')).toMatch(/^application\/json/);
    expect(audits.at(-1)).toMatchObject({ type: 'gatehouse.delegation_refused', error: code });
  });

  it('refuses a repeated parameter and a JSON body', async () => {
    const params = await onBehalf('read:posts:*');
    const body = `${new URLSearchParams(params).toString()}&scope=write:posts:*`;
    const request = new Request('https://g.test/.gatehouse/v1/token', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body,
    });
    const response = await handleTokenRequest(build(), request, { now, audit: () => {} });
    expect(((await response.json()) as { error: string }).error).toBe('invalid_request');
    expect((await exchange(build(), params, { contentType: 'application/json' })).body.error).toBe(
      'invalid_request',
    );
  });

  it('accepts several audience parameters (RFC 8693 §2.1) only where the policy serves them', async () => {
    const send = async (g: Gatehouse, audiences: string[]) => {
      const form = new URLSearchParams(await onBehalf('read:posts:*'));
      for (const audience of audiences) form.append('audience', audience);
      const response = await handleTokenRequest(
        g,
        new Request('https://g.test/.gatehouse/v1/token', {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: form.toString(),
        }),
        { now, audit: () => {} },
      );
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    const other = 'https://api2.gatehouse.test';
    const single = build();
    expect((await send(single, [SELF_ISSUER, SELF_ISSUER])).status).toBe(200);
    for (const audiences of [
      [SELF_ISSUER, other],
      [other, other],
    ]) {
      expect((await send(single, audiences)).body.error).toBe('invalid_target');
    }
    const both = build(delegationPolicy(idp, {}, { audiences: [SELF_ISSUER, other] }));
    const out = await send(both, [other, SELF_ISSUER]);
    expect(out.status).toBe(200);
    const token = out.body.access_token as string;
    expect(jose.decodeJwt(token).aud).toEqual([other, SELF_ISSUER]);
    const used = await both.decide({
      method: 'GET',
      path: '/posts/1',
      authorization: `Bearer ${token}`,
    });
    expect(used.allow).toBe(true);
  });

  it('answers 405 to GET', async () => {
    expect((await exchange(build(), {}, { method: 'GET' })).status).toBe(405);
  });
});

describe('JWKS', () => {
  it('serves the public keys and nothing private', async () => {
    const response = handleJwksRequest(build(), new Request('https://g.test/.gatehouse/jwks.json'));
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(JSON.parse(text).keys).toHaveLength(2);
    expect(text).not.toContain('"d"');
    expect(text).not.toContain(keys.set.current.privateJwk.d);
  });
});
