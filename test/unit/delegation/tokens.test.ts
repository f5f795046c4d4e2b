/**
 * The security bar (SECURITY.md) applied to Gatehouse's own delegation tokens, through the real
 * verifier and decide(): each attack is a class, tested with its variants.
 */
import * as jose from 'jose';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DELEGATION_TYPE, parseIssuerKeys, publicJwks } from '../../../src/delegation/index.ts';
import { ConfigError } from '../../../src/errors.ts';
import { identityHeaders } from '../../../src/http/responses.ts';
import { answerTokenRequest } from '../../../src/http/token-exchange.ts';
import { DecisionLogger, type DecisionLogLine } from '../../../src/logging/index.ts';
import { compilePolicy, Gatehouse, type PolicyDocument } from '../../../src/policy/index.ts';
import { MemoryStore } from '../../../src/stores/index.ts';
import type { Decision, UserRecord } from '../../../src/types.ts';
import {
  delegationClaims,
  delegationPolicy,
  KEYS_ENV,
  makeKeys,
  REPORTER,
  SELF_ISSUER,
  signDelegation,
  signRaw,
  type TestKeys,
} from '../../support/delegation.ts';
import { createTestIssuer, type TestIssuer } from '../../support/issuer.ts';

const START = Date.parse('2026-11-23T12:00:00Z');
let clock = START;
const now = () => clock;

let idp: TestIssuer;
let keys: TestKeys;
let store: MemoryStore;

function user(subject: string, fields: Partial<UserRecord> = {}): UserRecord {
  return { subject, roles: [], grants: [], denies: [], ...fields };
}

function build(doc: PolicyDocument = delegationPolicy(idp), env = { [KEYS_ENV]: keys.text }) {
  return new Gatehouse({ policy: compilePolicy(doc, { env }), store, now });
}

function decideWith(gatehouse: Gatehouse, token: string, path = '/posts/1', method = 'GET') {
  return gatehouse.decide({ method, path, authorization: `Bearer ${token}` });
}

const header = () => ({
  alg: keys.set.current.alg,
  kid: keys.set.current.kid,
  typ: DELEGATION_TYPE,
});

beforeAll(async () => {
  idp = await createTestIssuer({ now });
  keys = await makeKeys('EdDSA');
});

beforeEach(() => {
  clock = START;
  store = new MemoryStore();
  store.putUser(user('alice', { roles: [{ role: 'writer' }] }));
});

describe('a well-formed delegation token', () => {
  it('is decided for the delegator, within scope and ceiling', async () => {
    const token = await signDelegation(
      keys,
      delegationClaims(clock, 'alice', [REPORTER(idp)], 'read:*'),
    );
    const decision = await decideWith(build(), token);
    expect(decision).toMatchObject({ allow: true, reason: 'allowed' });
    expect(decision.principal).toMatchObject({ subject: 'alice', issuerKind: 'self' });
    expect(decision.principal?.actors).toEqual([REPORTER(idp)]);
    expect(decision.explain).toContain('Delegated: reporter for alice');
  });

  it('verifies ES256 keys as well as Ed25519', async () => {
    const es = await makeKeys('ES256');
    const token = await signDelegation(
      es,
      delegationClaims(clock, 'alice', [REPORTER(idp)], 'read:*'),
    );
    const decision = await decideWith(build(delegationPolicy(idp), { [KEYS_ENV]: es.text }), token);
    expect(decision.allow).toBe(true);
  });
});

describe('refused delegation tokens (SECURITY.md rows)', () => {
  async function refused(token: string, gatehouse = build()): Promise<Decision> {
    const decision = await decideWith(gatehouse, token);
    expect(decision.allow).toBe(false);
    expect(decision.status).toBe(401);
    return decision;
  }
  const payload = () => delegationClaims(clock, 'alice', [REPORTER(idp)], 'read:*');

  it.each(['none', 'None', 'NONE', 'nOnE'])('alg %s with an empty signature', async (alg) => {
    const h = jose.base64url.encode(JSON.stringify({ ...header(), alg }));
    const p = jose.base64url.encode(JSON.stringify(payload()));
    const decision = await decideWith(build(), `${h}.${p}.`);
    expect(decision.allow).toBe(false);
    expect(decision.status).toBe(401);
  });

  it('HS256 signed with the public key bytes as the secret (key confusion)', async () => {
    const x = keys.set.current.publicJwk.x!;
    for (const secret of [new TextEncoder().encode(x), jose.base64url.decode(x)]) {
      const token = await new jose.SignJWT(payload())
        .setProtectedHeader({ alg: 'HS256', kid: keys.set.current.kid, typ: DELEGATION_TYPE })
        .sign(secret);
      expect((await refused(token)).reason).toBe('token_algorithm_mismatch');
    }
  });

  it.each([['JWT'], ['at+jwt'], ['application/jwt'], ['gatehouse-event+jwt']])(
    'typ %s signed by the right key',
    async (typ) => {
      const token = await signRaw(keys, { ...header(), typ }, payload());
      expect((await refused(token)).reason).toBe('token_invalid_type');
    },
  );

  it('no typ at all', async () => {
    const { typ: _typ, ...bare } = header();
    expect((await refused(await signRaw(keys, bare, payload()))).reason).toBe('token_invalid_type');
  });

  it('an identity provider token with the delegation typ forged, whatever its own types allow', async () => {
    for (const types of [undefined, null, [DELEGATION_TYPE]]) {
      const doc = delegationPolicy(idp);
      doc.issuers[0] = { ...doc.issuers[0]!, ...(types !== undefined && { types }) };
      const token = await idp.mint(
        { sub: 'alice', act: { sub: 'reporter' }, scope: 'read:*' },
        { typ: DELEGATION_TYPE },
      );
      expect((await refused(token, build(doc))).reason).toBe('token_invalid_type');
    }
  });

  it.each([
    ['an ID token naming Gatehouse as issuer', { nonce: 'n', aud: 'client-app' }],
    ['an access token naming Gatehouse as issuer', { scope: 'read:*' }],
  ])('%s, signed by the identity provider', async (_name, claims) => {
    const token = await idp.mint(
      { ...payload(), ...claims, iss: SELF_ISSUER },
      { typ: DELEGATION_TYPE, kid: keys.set.current.kid },
    );
    const decision = await refused(token);
    expect(['token_algorithm_mismatch', 'token_invalid_signature', 'token_unknown_key']).toContain(
      decision.reason,
    );
  });

  it('expired, and not yet valid (nbf and iat in the future)', async () => {
    const iat = Math.floor(clock / 1000);
    expect(
      (await refused(await signRaw(keys, header(), { ...payload(), exp: iat - 31 }))).reason,
    ).toBe('token_expired');
    expect(
      (await refused(await signRaw(keys, header(), { ...payload(), nbf: iat + 60 }))).reason,
    ).toBe('token_not_yet_valid');
    expect(
      (await refused(await signRaw(keys, header(), { ...payload(), iat: iat + 60 }))).reason,
    ).toBe('token_not_yet_valid');
  });

  it('a lifetime beyond the configured maximum stops at the maximum (and iat is required)', async () => {
    const iat = Math.floor(clock / 1000);
    const long = await signRaw(keys, header(), { ...payload(), exp: iat + 7200 });
    expect((await decideWith(build(), long)).allow).toBe(true);
    clock += (900 + 31) * 1000;
    expect((await refused(long)).reason).toBe('token_too_old');
    const { iat: _iat, ...noIat } = payload();
    expect((await refused(await signRaw(keys, header(), noIat))).reason).toBe(
      'token_invalid_claims',
    );
  });

  it('a chain deeper than the configured maximum, and an empty chain', async () => {
    const chain = ['reporter', 'exporter', 'auditor', 'reporter'].map((subject) => ({ subject }));
    const deep = delegationClaims(clock, 'alice', chain, 'read:posts:*');
    expect((await refused(await signRaw(keys, header(), deep))).reason).toBe(
      'token_invalid_claims',
    );
    const { act: _act, ...none } = payload();
    expect((await refused(await signRaw(keys, header(), none))).reason).toBe(
      'token_invalid_claims',
    );
  });

  it('a wrong issuer, signed by the right key', async () => {
    for (const iss of [idp.issuer, `${SELF_ISSUER}/`, 'https://evil.test/']) {
      const token = await signRaw(keys, header(), { ...payload(), iss });
      const decision = await refused(token);
      // Under the identity provider's name, its algorithm allowlist already stops an EdDSA token.
      expect(['token_unknown_issuer', 'token_algorithm_mismatch']).toContain(decision.reason);
    }
  });

  it('a wrong audience', async () => {
    const token = await signRaw(keys, header(), { ...payload(), aud: 'https://other.test' });
    expect((await refused(token)).reason).toBe('token_invalid_audience');
  });

  it('a key not in the configured set, under a known or an unknown kid', async () => {
    const stranger = await makeKeys('EdDSA');
    const sameKid = await signRaw(stranger, { ...header(), kid: keys.set.current.kid }, payload());
    expect((await refused(sameKid)).reason).toBe('token_invalid_signature');
    const ownKid = await signRaw(
      stranger,
      { ...header(), kid: stranger.set.current.kid },
      payload(),
    );
    expect((await refused(ownKid)).reason).toBe('token_unknown_key');
  });

  it('act chain, scope or subject altered after signing', async () => {
    const token = await signDelegation(keys, payload());
    const [h, , s] = token.split('.');
    for (const change of [
      { act: { sub: 'reporter', act: { sub: 'mallory' } } },
      { act: { sub: 'mallory' } },
      { scope: 'read:* write:*' },
      { sub: 'bob' },
    ]) {
      const p = jose.base64url.encode(JSON.stringify({ ...payload(), ...change }));
      expect((await refused(`${h}.${p}.${s}`)).reason).toBe('token_invalid_signature');
    }
  });

  it('verifies tokens of the next and previous keys, so rotation breaks no live token', async () => {
    const parsed = JSON.parse(keys.text) as Record<string, unknown>;
    const rotated = JSON.stringify({ current: parsed.next, previous: parsed.current });
    const old = await signDelegation(keys, payload());
    const gatehouse = build(delegationPolicy(idp), { [KEYS_ENV]: rotated });
    expect((await decideWith(gatehouse, old)).allow).toBe(true);
  });
});

describe('where delegation is refused', () => {
  it('a route with delegated: false refuses a delegated caller but not the delegator', async () => {
    store.putUser(user('alice', { grants: [{ permission: 'read:admin' }] }));
    const token = await signDelegation(
      keys,
      delegationClaims(clock, 'alice', [REPORTER(idp)], 'read:*'),
    );
    const gatehouse = build();
    expect(await decideWith(gatehouse, token, '/admin')).toMatchObject({
      allow: false,
      status: 403,
      reason: 'delegation_refused',
    });
    const own = await idp.mint({ sub: 'alice' });
    expect((await decideWith(gatehouse, own, '/admin')).allow).toBe(true);
  });

  it('an actor whose rule is gone (or does not cover the delegator) gets nothing', async () => {
    const token = await signDelegation(
      keys,
      delegationClaims(clock, 'alice', [REPORTER(idp)], 'read:*'),
    );
    const without = build(delegationPolicy(idp, {}, { actors: [] }));
    expect(await decideWith(without, token)).toMatchObject({
      status: 403,
      reason: 'delegation_refused',
    });
    const onlyBob = build(
      delegationPolicy(
        idp,
        {},
        { actors: [{ subject: 'reporter', for: ['bob'], ceiling: ['read:*'] }] },
      ),
    );
    expect((await decideWith(onlyBob, token, '/me')).reason).toBe('delegation_refused');
  });

  it('an actor of another issuer than its rule names does not match the rule', async () => {
    const token = await signDelegation(
      keys,
      delegationClaims(
        clock,
        'alice',
        [{ subject: 'reporter', issuer: 'https://other.test/' }],
        'read:*',
      ),
    );
    expect((await decideWith(build(), token)).reason).toBe('delegation_refused');
  });

  it('without a delegation section no Gatehouse token verifies at all', async () => {
    const doc = delegationPolicy(idp);
    delete (doc as { delegation?: unknown }).delegation;
    const token = await signDelegation(
      keys,
      delegationClaims(clock, 'alice', [REPORTER(idp)], 'read:*'),
    );
    expect((await decideWith(build(doc), token)).reason).toBe('token_unknown_issuer');
  });

  it('an identity provider token with an act claim is decided for its subject, not as a delegation', async () => {
    const token = await idp.mint({ sub: 'alice', act: { sub: 'reporter' } });
    const decision = await decideWith(build(), token, '/admin');
    expect(decision.principal?.issuerKind).toBe('external');
  });
});

describe('the rule at use time: delegator now ∩ scope ∩ actor ceiling', () => {
  const token = (scope: string, actors = [REPORTER(idp)]) =>
    signDelegation(keys, delegationClaims(clock, 'alice', actors, scope));

  it('the delegator denied wins over scope and ceiling', async () => {
    store.putUser(
      user('alice', { roles: [{ role: 'writer' }], denies: [{ permission: 'read:posts:1' }] }),
    );
    const decision = await decideWith(build(), await token('read:*'));
    expect(decision).toMatchObject({ allow: false, reason: 'explicit_deny' });
  });

  it('a permission the delegator lacks stays missing', async () => {
    store.putUser(user('alice'));
    expect((await decideWith(build(), await token('read:*'))).reason).toBe('missing_permission');
  });

  it('outside the token scope: named in explain', async () => {
    const decision = await decideWith(build(), await token('read:reports'));
    expect(decision).toMatchObject({ allow: false, status: 403, reason: 'outside_delegation' });
    expect(decision.explain).toContain("outside the token's scope");
  });

  it("outside an actor's ceiling even when the scope says more", async () => {
    const decision = await decideWith(build(), await token('write:posts:*'), '/posts/1', 'PUT');
    expect(decision.reason).toBe('outside_delegation');
    expect(decision.explain).toContain('what actor reporter may receive');
  });

  it('every actor of a chain bounds it: exporter narrows reporter', async () => {
    store.putUser(user('alice', { roles: [{ role: 'reader' }] }));
    const chain = [{ subject: 'exporter' }, REPORTER(idp)];
    const doc = delegationPolicy(idp, {
      routes: [
        { path: '/posts/:id', require: ['read:posts:{id}'] },
        { path: '/reports', require: ['read:reports'] },
        { path: '/mail', require: ['read:mail'] },
      ],
    });
    const gatehouse = build(doc);
    const t = await token('read:*', chain);
    expect((await decideWith(gatehouse, t, '/posts/7')).allow).toBe(true);
    expect((await decideWith(gatehouse, t, '/reports')).allow).toBe(true);
    // reporter alone may receive read:mail; exporter, later in the chain, may not.
    expect((await decideWith(gatehouse, await token('read:*'), '/mail')).allow).toBe(true);
    const mail = await decideWith(gatehouse, t, '/mail');
    expect(mail.reason).toBe('outside_delegation');
    expect(mail.explain).toContain('what actor exporter may receive');
  });

  it('in anyOf mode a refused alternative does not hide an allowed one', async () => {
    store.putUser(
      user('alice', { grants: [{ permission: 'read:reports' }, { permission: 'write:reports' }] }),
    );
    const decision = await decideWith(
      build(),
      await token('read:reports write:reports'),
      '/either',
    );
    expect(decision.allow).toBe(true);
    expect(decision.matched?.map((m) => m.required)).toEqual(['read:reports']);
  });

  it('revoking the delegator takes effect within the permission cache bound', async () => {
    const gatehouse = build();
    const t = await token('read:*');
    expect((await decideWith(gatehouse, t)).allow).toBe(true);
    store.putUser(user('alice'));
    clock += 31_000;
    expect((await decideWith(gatehouse, t)).allow).toBe(false);
  });
});

describe('delegation configuration', () => {
  it('refuses Gatehouse issuer names equal to an external issuer, naming the field', () => {
    const doc = delegationPolicy(idp, {}, { issuer: idp.issuer });
    expect(() => compilePolicy(doc, { env: { [KEYS_ENV]: keys.text } })).toThrow(
      expect.objectContaining({ field: 'policy.delegation.issuer' }),
    );
  });

  it('names the key secret when it is missing or malformed, never echoing a key', () => {
    const d = keys.set.current.privateJwk.d!;
    const cases: [unknown, string][] = [
      ['not json', KEYS_ENV],
      [JSON.stringify({ next: JSON.parse(keys.text).next }), `${KEYS_ENV}.current`],
      [
        JSON.stringify({ current: { ...JSON.parse(keys.text).current, d: undefined } }),
        `${KEYS_ENV}.current.d`,
      ],
      [
        JSON.stringify({ current: { ...JSON.parse(keys.text).current, alg: 'HS256' } }),
        `${KEYS_ENV}.current.alg`,
      ],
      [
        JSON.stringify({ current: { ...JSON.parse(keys.text).current, alg: 'ES256' } }),
        `${KEYS_ENV}.current.kty`,
      ],
      [
        JSON.stringify({
          current: JSON.parse(keys.text).current,
          next: JSON.parse(keys.text).current,
        }),
        `${KEYS_ENV}.next.kid`,
      ],
      [JSON.stringify({ current: JSON.parse(keys.text).current, spare: {} }), `${KEYS_ENV}.spare`],
    ];
    for (const [value, field] of cases) {
      let error: unknown;
      try {
        compilePolicy(delegationPolicy(idp), { env: { [KEYS_ENV]: value } });
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).field).toBe(field);
      expect((error as ConfigError).message).not.toContain(d);
    }
  });

  it('refuses delegation with permissions read from token claims', () => {
    const doc = delegationPolicy(idp, { permissions: { source: 'claims' } });
    expect(() => compilePolicy(doc, { env: { [KEYS_ENV]: keys.text } })).toThrow(
      expect.objectContaining({ field: 'policy.delegation' }),
    );
  });

  it('refuses a ceiling that is not a permission pattern, naming it', () => {
    const doc = delegationPolicy(
      idp,
      {},
      { actors: [{ subject: 'r', for: ['*'], ceiling: ['read'] }] },
    );
    expect(() => compilePolicy(doc, { env: { [KEYS_ENV]: keys.text } })).toThrow(
      expect.objectContaining({ field: 'policy.delegation.actors[0].ceiling[0]' }),
    );
  });

  it('publishes only public members in the JWKS document', () => {
    const jwks = publicJwks(parseIssuerKeys(keys.text, KEYS_ENV));
    expect(jwks.keys).toHaveLength(2);
    for (const key of jwks.keys) {
      expect(Object.keys(key).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x']);
    }
  });
});

describe('who acts, as the origin and the logs see it', () => {
  it('X-Auth-Actor names the chain, current actor first; a plain token sends none', async () => {
    store.putUser(user('alice', { roles: [{ role: 'reader' }] }));
    const chain = [{ subject: 'exporter' }, REPORTER(idp)];
    const token = await signDelegation(
      keys,
      delegationClaims(clock, 'alice', chain, 'read:posts:*'),
    );
    const decision = await decideWith(build(), token);
    expect(identityHeaders(decision)).toMatchObject({
      'X-Auth-Subject': 'alice',
      'X-Auth-Actor': 'exporter reporter',
    });
    const own = await decideWith(build(), await idp.mint({ sub: 'alice', act: { sub: 'x' } }));
    expect(identityHeaders(own)['X-Auth-Actor']).toBeUndefined();
  });

  it('decision lines carry delegator, actor chain, scope and token id, never the token', async () => {
    const lines: DecisionLogLine[] = [];
    const logger = new DecisionLogger({ allowSampleRate: 1, write: (l) => lines.push(l), now });
    const token = await signDelegation(
      keys,
      delegationClaims(clock, 'alice', [REPORTER(idp)], 'read:*', { jti: 'tok-1' }),
    );
    const asked = { method: 'GET', path: '/posts/1', authorization: `Bearer ${token}` };
    await logger.log('worker', await build().decide(asked), asked, logger.start());
    expect(lines[0]).toMatchObject({
      allow: true,
      subject: 'alice',
      delegation: { actors: [REPORTER(idp)], scope: ['read:*'], tokenId: 'tok-1' },
    });
    expect(JSON.stringify(lines)).not.toContain(token.split('.')[2]);
  });
});

describe('without the key secret', () => {
  it('delegation is off and closed; the token endpoint names the missing secret', async () => {
    const warnings: string[] = [];
    const policy = compilePolicy(delegationPolicy(idp), {
      env: {},
      onWarning: (w) => warnings.push(w),
    });
    // The CLI and direct callers need no keys: nothing to warn about at compile.
    expect(warnings).toEqual([]);
    const answer = await answerTokenRequest(
      new Gatehouse({ policy, store, now }),
      { method: 'POST', contentType: 'application/x-www-form-urlencoded', body: '' },
      { now, audit: () => {} },
    );
    expect(answer.status).toBe(503);
    expect(JSON.parse(answer.body).error_description).toBe(`${KEYS_ENV} is not set`);
    const token = await signDelegation(
      keys,
      delegationClaims(clock, 'alice', [REPORTER(idp)], 'read:*'),
    );
    const gatehouse = new Gatehouse({ policy, store, now });
    expect((await decideWith(gatehouse, token)).reason).toBe('token_unknown_issuer');
    expect((await decideWith(gatehouse, await idp.mint({ sub: 'alice' }))).allow).toBe(true);
  });
});
