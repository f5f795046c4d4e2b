/**
 * Signed events (issue 13) on the platform-free core: signing needs the permission now, verify
 * runs the strict token path with the event typ alone, and the re-check decides against the
 * store as it is now. Real keys, a real MemoryStore and feed; only the clock is fake.
 */
import * as jose from 'jose';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  DELEGATION_TYPE,
  EVENT_TYPE,
  encodeBase64url,
  publicJwks,
} from '../../../src/delegation/index.ts';
import { ConfigError, EventError } from '../../../src/errors.ts';
import { type EventAudit, GatehouseEvents, processEvent } from '../../../src/events/index.ts';
import { answerEventSign, answerEventVerify } from '../../../src/http/events.ts';
import { runCheck } from '../../../src/policy/check.ts';
import { compilePolicy, Gatehouse, type PolicyDocument } from '../../../src/policy/index.ts';
import { MemoryFeed } from '../../../src/revocation/feed.ts';
import { RevocationFollower } from '../../../src/revocation/follower.ts';
import { MemoryStore } from '../../../src/stores/index.ts';
import { subjectStorageKey } from '../../../src/stores/keys.ts';
import type { UserRecord } from '../../../src/types.ts';
import {
  delegationClaims,
  KEYS_ENV,
  makeKeys,
  REPORTER,
  SELF_ISSUER,
  signDelegation,
  signRaw,
  type TestKeys,
} from '../../support/delegation.ts';
import {
  alterEvent,
  EVENT_AUDIENCE,
  eventClaims,
  eventHeader,
  eventsPolicy,
  signEventRaw,
} from '../../support/events.ts';
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

function build(
  doc: PolicyDocument = eventsPolicy(idp),
  options: { env?: Record<string, string>; revocation?: RevocationFollower } = {},
) {
  const gatehouse = new Gatehouse({
    policy: compilePolicy(doc, { env: options.env ?? { [KEYS_ENV]: keys.text } }),
    store,
    now,
    ...(options.revocation && { revocation: options.revocation }),
  });
  return { gatehouse, events: new GatehouseEvents(gatehouse, { now }) };
}

async function signAs(
  events: GatehouseEvents,
  token: string,
  body: Record<string, unknown> = {},
  ip?: string,
) {
  return events.signRequest(
    { authorization: `Bearer ${token}`, ...(ip !== undefined && { ip }) },
    {
      type: 'com.example.report.requested',
      data: { report: 42 },
      permission: 'write:reports',
      ...body,
    },
  );
}

async function signed(events: GatehouseEvents, token: string, body: Record<string, unknown> = {}) {
  const outcome = await signAs(events, token, body);
  if (!outcome.ok) throw new Error(`not signed: ${outcome.decision.reason}`);
  return outcome;
}

beforeAll(async () => {
  idp = await createTestIssuer({ now });
  keys = await makeKeys('EdDSA');
});

beforeEach(() => {
  clock = START;
  store = new MemoryStore();
  store.putUser(user('alice', { roles: [{ role: 'writer' }] }));
  store.putUser(user('bob', { roles: [{ role: 'reader' }] }));
});

describe('signing', () => {
  it('signs for a caller holding the permission, verifiable by an ordinary JOSE library', async () => {
    const { events } = build();
    const out = await signed(events, await idp.mint({ sub: 'alice' }), {});
    const { payload, protectedHeader } = await jose.jwtVerify(
      out.event,
      jose.createLocalJWKSet(publicJwks(keys.set) as unknown as jose.JSONWebKeySet),
      {
        issuer: SELF_ISSUER,
        audience: EVENT_AUDIENCE,
        typ: EVENT_TYPE,
        currentDate: new Date(clock),
      },
    );
    expect(protectedHeader).toMatchObject({ typ: EVENT_TYPE, kid: keys.set.current.kid });
    expect(payload).toMatchObject({
      specversion: '1.0',
      id: out.id,
      jti: out.id,
      source: SELF_ISSUER,
      type: 'com.example.report.requested',
      time: new Date(clock).toISOString(),
      data: { report: 42 },
      sub: 'alice',
      permissions: ['write:reports'],
      mode: 'all',
      exp: out.expiresAt,
    });
    expect(out.expiresAt).toBe(Math.floor(clock / 1000) + 3600);
  });

  it('signs nothing for a caller who lacks the permission now (403), or has no valid token (401)', async () => {
    const { events } = build();
    const lacking = await signAs(events, await idp.mint({ sub: 'bob' }));
    expect(lacking).toMatchObject({
      ok: false,
      decision: { status: 403, reason: 'missing_permission' },
    });
    const denied = await signAs(events, await idp.mint({ sub: 'alice' }), {
      permission: 'write:secrets',
    });
    expect(denied.ok).toBe(true);
    store.putUser(
      user('alice', { roles: [{ role: 'writer' }], denies: [{ permission: 'write:reports' }] }),
    );
    clock += 31_000;
    const explicit = await signAs(events, await idp.mint({ sub: 'alice' }));
    expect(explicit).toMatchObject({
      ok: false,
      decision: { status: 403, reason: 'explicit_deny' },
    });
    const noToken = await events.signRequest(
      { authorization: null },
      { type: 't', permission: 'write:reports' },
    );
    expect(noToken).toMatchObject({
      ok: false,
      decision: { status: 401, reason: 'token_missing' },
    });
  });

  it('through the policy routes: filled permissions, the route mode, and a route with nothing to re-check refused', async () => {
    const { events } = build();
    const token = await idp.mint({ sub: 'alice' });
    const out = await signed(events, token, {
      permission: undefined,
      method: 'post',
      path: '/reports/7',
    });
    const decision = await events.verify(out.event);
    expect(decision).toMatchObject({
      allow: true,
      required: ['write:reports:7'],
      route: 'POST /reports/:id',
    });
    const any = await signed(events, token, {
      permission: undefined,
      method: 'POST',
      path: '/exports',
    });
    expect(await events.verify(any.event)).toMatchObject({
      allow: true,
      required: ['write:exports', 'admin:exports'],
    });
    await expect(
      signAs(events, token, { permission: undefined, method: 'GET', path: '/me' }),
    ).rejects.toMatchObject({ code: 'event_invalid_request', field: 'path' });
    const bob = await signAs(events, await idp.mint({ sub: 'bob' }), {
      permission: undefined,
      method: 'POST',
      path: '/reports/7',
    });
    expect(bob).toMatchObject({ ok: false, decision: { status: 403 } });
  });

  it.each([
    [{ type: '' }, 'type'],
    [{ type: 'has space' }, 'type'],
    [{ type: 'x'.repeat(257) }, 'type'],
    [{ audience: 'https://elsewhere.test' }, 'audience'],
    [{ audience: SELF_ISSUER }, 'audience'],
    [{ ttlSeconds: 0 }, 'ttlSeconds'],
    [{ ttlSeconds: 86_401 }, 'ttlSeconds'],
    [{ ttlSeconds: 1.5 }, 'ttlSeconds'],
    [{ permission: 'write:*' }, 'permission'],
    [{ permission: 'nonsense' }, 'permission'],
  ])('refuses a malformed request %j, naming %s', async (body, field) => {
    const { events } = build();
    await expect(signAs(events, await idp.mint({ sub: 'alice' }), body)).rejects.toMatchObject({
      code: 'event_invalid_request',
      field,
    });
  });

  it('bounds the size: data that would not fit a queue message is refused before signing', async () => {
    const { events } = build(eventsPolicy(idp, { maxBytes: 2048 }));
    const token = await idp.mint({ sub: 'alice' });
    const fits = await signed(events, token, { data: 'x'.repeat(500) });
    expect(fits.event.length).toBeLessThanOrEqual(2048);
    for (const data of ['x'.repeat(1500), 'x'.repeat(100_000), { deep: ['y'.repeat(1600)] }]) {
      const error = await signAs(events, token, { data }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(EventError);
      expect(error).toMatchObject({ code: 'event_too_large' });
    }
  });

  it('bounds the lifetime by configuration', async () => {
    const { events } = build(eventsPolicy(idp, { maxTtlSeconds: 600, defaultTtlSeconds: 60 }));
    const token = await idp.mint({ sub: 'alice' });
    expect((await signed(events, token)).expiresAt).toBe(Math.floor(clock / 1000) + 60);
    expect((await signed(events, token, { ttlSeconds: 600 })).expiresAt).toBe(
      Math.floor(clock / 1000) + 600,
    );
    await expect(signAs(events, token, { ttlSeconds: 601 })).rejects.toMatchObject({
      field: 'ttlSeconds',
    });
  });

  it('in process: signs for a principal it already decided, and still checks the permission now', async () => {
    const { gatehouse, events } = build();
    const decision = await gatehouse.decide({
      method: 'POST',
      path: '/reports/9',
      authorization: `Bearer ${await idp.mint({ sub: 'alice' })}`,
    });
    const principal = decision.principal!;
    const out = await events.sign(
      principal,
      { type: 'a.b', permission: 'write:reports:9' },
      { ip: '10.0.0.1' },
    );
    expect(out.ok).toBe(true);
    const refused = await events.sign(principal, { type: 'a.b', permission: 'delete:reports:9' });
    expect(refused).toMatchObject({
      ok: false,
      decision: { status: 403, reason: 'missing_permission' },
    });
  });
});

describe('verify and re-check against the store as it is now', () => {
  it('allows an intact event and hands back its data', async () => {
    const { events } = build();
    const out = await signed(events, await idp.mint({ sub: 'alice' }));
    expect(await events.verify(out.event)).toMatchObject({
      allow: true,
      status: 200,
      reason: 'allowed',
      subject: 'alice',
      event: { id: out.id, type: 'com.example.report.requested', data: { report: 42 } },
    });
  });

  it('a permission revoked after signing gives the deny with its reason, and no data', async () => {
    const { events } = build();
    const out = await signed(events, await idp.mint({ sub: 'alice' }));
    store.putUser(user('alice', { roles: [{ role: 'reader' }] }));
    clock += 31_000;
    const missing = await events.verify(out.event);
    expect(missing).toMatchObject({ allow: false, status: 403, reason: 'missing_permission' });
    expect(missing.event).toMatchObject({ id: out.id });
    expect(missing.event).not.toHaveProperty('data');
    store.putUser(
      user('alice', { roles: [{ role: 'writer' }], denies: [{ permission: 'write:*' }] }),
    );
    clock += 31_000;
    expect(await events.verify(out.event)).toMatchObject({ allow: false, reason: 'explicit_deny' });
    store.deleteUser({ subject: 'alice' });
    clock += 31_000;
    expect(await events.verify(out.event)).toMatchObject({
      allow: false,
      reason: 'missing_permission',
    });
  });

  it('decides conditions with the signed context, not the consumer’s', async () => {
    store.putUser(
      user('carol', { grants: [{ permission: 'write:reports', when: { ip: ['10.0.0.0/8'] } }] }),
    );
    const { events } = build();
    const token = await idp.mint({ sub: 'carol' });
    const inside = await signAs(events, token, {}, '10.1.2.3');
    expect(inside.ok).toBe(true);
    if (inside.ok) expect(await events.verify(inside.event)).toMatchObject({ allow: true });
    expect(await signAs(events, token, {}, '192.0.2.1')).toMatchObject({ ok: false });
    // Signed from inside, replayed with the context altered: the signature no longer holds.
    if (inside.ok) {
      const moved = alterEvent(inside.event, (c) => {
        c.ctx = { ip: '192.0.2.1' };
      });
      expect(await events.verify(moved)).toMatchObject({
        status: 401,
        reason: 'token_invalid_signature',
      });
    }
  });

  it('the store unavailable is a 503 (retry), never an allow', async () => {
    const { events } = build();
    const out = await signed(events, await idp.mint({ sub: 'alice' }));
    clock += 31_000;
    store.failWith(new Error('down'));
    expect(await events.verify(out.event)).toMatchObject({
      allow: false,
      status: 503,
      reason: 'store_unavailable',
    });
  });

  it('honours the revocation feed: a sign-out after the signing token’s iat refuses it, one before does not; a revoked event id refuses it', async () => {
    const feed = new MemoryFeed({ now });
    const follower = new RevocationFollower(feed, { now, awaitReads: true, log: () => {} });
    const { events } = build(eventsPolicy(idp), { revocation: follower });
    const token = await idp.mint({ sub: 'alice' });
    const early = await signed(events, token);
    clock += 5_000;
    await feed.append({
      notBefore: { key: subjectStorageKey({ subject: 'alice' }), at: Math.floor(clock / 1000) },
    });
    clock += 1_500;
    // The bearer token predates the sign-out too: a fresh one signs the later event.
    const later = await signed(events, await idp.mint({ sub: 'alice' }));
    expect(await events.verify(early.event)).toMatchObject({
      allow: false,
      status: 401,
      reason: 'session_revoked',
    });
    expect(await events.verify(later.event)).toMatchObject({ allow: true });
    await feed.append({ token: { jti: later.id, expiresAt: later.expiresAt } });
    clock += 1_500;
    expect(await events.verify(later.event)).toMatchObject({
      allow: false,
      reason: 'token_revoked',
    });
  });

  it('a delegated caller’s event is re-checked under the delegation rule as it is now', async () => {
    const { events } = build();
    const delegation = await signDelegation(
      keys,
      delegationClaims(clock, 'alice', [REPORTER(idp)], 'read:* write:reports'),
    );
    // The reporter's ceiling is read:*: writing is outside it, so nothing is signed.
    const write = await signAs(events, delegation);
    expect(write).toMatchObject({ ok: false, decision: { reason: 'outside_delegation' } });
    const read = await signed(events, delegation, { permission: 'read:reports' });
    expect(await events.verify(read.event)).toMatchObject({ allow: true, subject: 'alice' });
    // The actor's rule removed: the event, signed while it held, no longer runs.
    const doc = eventsPolicy(idp);
    doc.delegation = { ...doc.delegation!, actors: [] };
    const { events: after } = build(doc);
    expect(await after.verify(read.event)).toMatchObject({
      allow: false,
      reason: 'delegation_refused',
    });
    // A delegated event with its marker stripped does not verify, so it cannot escape the rule.
    const stripped = alterEvent(read.event, (c) => {
      delete c.delegated;
    });
    expect(await events.verify(stripped)).toMatchObject({ reason: 'token_invalid_signature' });
  });
});

describe('type separation: an event is never a bearer credential, nothing else is an event', () => {
  it('an event as a bearer token is refused by decide, the check API and the signing endpoint', async () => {
    const { gatehouse, events } = build();
    const out = await signed(events, await idp.mint({ sub: 'alice' }));
    const decision = await gatehouse.decide({
      method: 'POST',
      path: '/reports/1',
      authorization: `Bearer ${out.event}`,
    });
    expect(decision).toMatchObject({ allow: false, status: 401, reason: 'token_invalid_type' });
    expect(
      await runCheck(gatehouse, { token: out.event, permission: 'write:reports' }, now),
    ).toMatchObject({
      allow: false,
      reason: 'token_invalid_type',
    });
    expect(await signAs(events, out.event)).toMatchObject({
      ok: false,
      decision: { status: 401, reason: 'token_invalid_type' },
    });
  });

  it('an event under the delegation audience, typ or none is still never a bearer token', async () => {
    const { gatehouse } = build();
    for (const typ of [EVENT_TYPE, `application/${EVENT_TYPE}`, EVENT_TYPE.toUpperCase()]) {
      const token = await signEventRaw(
        keys,
        eventClaims(clock, { aud: SELF_ISSUER, act: { sub: 'reporter' }, scope: 'read:*' }),
        { typ },
      );
      const decision = await gatehouse.decide({
        method: 'GET',
        path: '/reports',
        authorization: `Bearer ${token}`,
      });
      expect(decision).toMatchObject({ allow: false, status: 401, reason: 'token_invalid_type' });
    }
  });

  it('an identity provider token with the event typ is refused as a bearer token, whatever its types allow', async () => {
    for (const types of [undefined, null, [EVENT_TYPE]]) {
      const doc = eventsPolicy(idp);
      doc.issuers[0] = { ...doc.issuers[0]!, ...(types !== undefined && { types }) };
      const { gatehouse } = build(doc);
      const token = await idp.mint({ sub: 'alice' }, { typ: EVENT_TYPE });
      const decision = await gatehouse.decide({
        method: 'GET',
        path: '/reports',
        authorization: `Bearer ${token}`,
      });
      expect(decision).toMatchObject({ status: 401, reason: 'token_invalid_type' });
    }
  });

  it('an identity provider token, a delegation token or an IdP token posing as an event is not an event', async () => {
    const { events } = build();
    const idpToken = await idp.mint({ sub: 'alice' });
    expect(await events.verify(idpToken)).toMatchObject({
      allow: false,
      status: 401,
      reason: 'token_unknown_issuer',
    });
    const delegation = await signDelegation(
      keys,
      delegationClaims(clock, 'alice', [REPORTER(idp)], 'read:*'),
    );
    expect(await events.verify(delegation)).toMatchObject({
      status: 401,
      reason: 'token_invalid_type',
    });
    const posing = await idp.mint(eventClaims(clock), {
      typ: EVENT_TYPE,
      kid: keys.set.current.kid,
    });
    const decision = await events.verify(posing);
    expect(decision.status).toBe(401);
    expect(['token_algorithm_mismatch', 'token_invalid_signature', 'token_unknown_key']).toContain(
      decision.reason,
    );
    // Delegation claims under the event typ and audience are still not an event.
    const dressed = await signEventRaw(keys, {
      ...delegationClaims(clock, 'alice', [REPORTER(idp)], 'read:*'),
      aud: EVENT_AUDIENCE,
    });
    expect(await events.verify(dressed)).toMatchObject({
      status: 401,
      reason: 'token_invalid_claims',
    });
  });
});

describe('refused events (SECURITY.md rows applied to event tokens)', () => {
  async function refused(event: unknown, reasons: string | string[], events = build().events) {
    const decision = await events.verify(event);
    expect(decision.allow).toBe(false);
    expect(decision.status).toBe(401);
    expect(decision).not.toHaveProperty('event');
    expect([reasons].flat()).toContain(decision.reason);
  }
  const claims = () => eventClaims(clock);

  it.each(['none', 'None', 'NONE', 'nOnE'])(
    'alg %s with an empty or stripped signature',
    async (alg) => {
      const h = jose.base64url.encode(JSON.stringify({ ...eventHeader(keys), alg }));
      const p = jose.base64url.encode(JSON.stringify(claims()));
      await refused(`${h}.${p}.`, ['token_malformed', 'token_algorithm_mismatch']);
      await refused(`${h}.${p}`, 'token_malformed');
    },
  );

  it('HS256 signed with the public key bytes as the secret (key confusion)', async () => {
    const x = keys.set.current.publicJwk.x!;
    for (const secret of [new TextEncoder().encode(x), jose.base64url.decode(x)]) {
      const token = await new jose.SignJWT(claims())
        .setProtectedHeader({ alg: 'HS256', kid: keys.set.current.kid, typ: EVENT_TYPE })
        .sign(secret);
      await refused(token, 'token_algorithm_mismatch');
    }
  });

  it('empty, truncated or stripped signature', async () => {
    const event = await signEventRaw(keys, claims());
    const [h, p, s] = event.split('.') as [string, string, string];
    await refused(`${h}.${p}.`, ['token_malformed', 'token_invalid_signature']);
    await refused(`${h}.${p}.${s.slice(0, 40)}`, ['token_malformed', 'token_invalid_signature']);
    await refused(`${h}.${p}.${'A'.repeat(s.length)}`, 'token_invalid_signature');
  });

  it.each([['JWT'], ['at+jwt'], [DELEGATION_TYPE], ['application/jwt']])(
    'typ %s signed by the right key',
    async (typ) => {
      await refused(await signEventRaw(keys, claims(), { typ }), 'token_invalid_type');
    },
  );

  it('no typ at all', async () => {
    const { typ: _typ, ...bare } = eventHeader(keys);
    await refused(await signRaw(keys, bare, claims()), 'token_invalid_type');
  });

  it('jku, x5u, jwk, x5c are ignored; crit, b64: false, cty: JWT refused', async () => {
    const ignored = await signEventRaw(keys, claims(), {
      jku: 'https://evil.test/jwks',
      x5u: 'https://evil.test/x5u',
      jwk: { kty: 'OKP', crv: 'Ed25519', x: 'AA' },
      x5c: ['AA'],
    });
    expect((await build().events.verify(ignored)).allow).toBe(true);
    await refused(
      await signEventRaw(keys, claims(), { crit: ['exp'], exp: 1 }),
      'token_unsupported',
    );
    await refused(
      await signEventRaw(keys, claims(), { b64: false, crit: ['b64'] }),
      'token_unsupported',
    );
    await refused(await signEventRaw(keys, claims(), { cty: 'JWT' }), 'token_unsupported');
  });

  it('JWE (5 parts) and non-canonical compact forms are refused before parsing', async () => {
    const event = await signEventRaw(keys, claims());
    const [h, p, s] = event.split('.') as [string, string, string];
    for (const bad of [
      `${h}.${p}.${s}.x.y`,
      ` ${event}`,
      `${event}\n`,
      `${h}.${p}.${s}=`,
      `${h}.${p}..${s}`,
      `${h}+.${p}.${s}`,
      `${event}.`,
    ]) {
      await refused(bad, ['token_malformed', 'token_unsupported']);
    }
  });

  it('duplicate JSON member names, invalid UTF-8 and non-object JSON', async () => {
    const enc = (text: string) => encodeBase64url(new TextEncoder().encode(text));
    const h = enc(JSON.stringify(eventHeader(keys)));
    const dup = `${JSON.stringify(claims()).slice(0, -1)},"sub":"bob"}`;
    for (const payload of [
      enc(dup),
      encodeBase64url(new Uint8Array([0xff, 0xfe])),
      enc('[1,2]'),
      enc('"x"'),
    ]) {
      await refused(`${h}.${payload}.${'A'.repeat(86)}`, 'token_malformed');
    }
  });

  it('expired, not yet valid, issued in the future, or older than the longest lifetime', async () => {
    const iat = Math.floor(clock / 1000);
    await refused(await signEventRaw(keys, { ...claims(), exp: iat - 31 }), 'token_expired');
    await refused(await signEventRaw(keys, { ...claims(), nbf: iat + 60 }), 'token_not_yet_valid');
    await refused(await signEventRaw(keys, { ...claims(), iat: iat + 60 }), 'token_not_yet_valid');
    const { exp: _exp, ...noExp } = claims();
    await refused(await signEventRaw(keys, noExp), 'token_invalid_claims');
    const { events } = build(eventsPolicy(idp, { maxTtlSeconds: 600 }));
    const long = await signEventRaw(keys, { ...claims(), exp: iat + 7200 });
    expect((await events.verify(long)).allow).toBe(true);
    clock += (600 + 31) * 1000;
    await refused(long, 'token_too_old', events);
  });

  it('a wrong issuer, a wrong or missing audience (a delegation audience included)', async () => {
    for (const iss of [idp.issuer, `${SELF_ISSUER}/`, 'https://evil.test/']) {
      await refused(await signEventRaw(keys, { ...claims(), iss }), 'token_unknown_issuer');
    }
    for (const aud of [SELF_ISSUER, 'https://other.test', [SELF_ISSUER]]) {
      await refused(await signEventRaw(keys, { ...claims(), aud }), 'token_invalid_audience');
    }
    const { aud: _aud, ...noAud } = claims();
    await refused(await signEventRaw(keys, noAud), 'token_invalid_audience');
  });

  it('a key not in the configured set, under a known or an unknown kid', async () => {
    const stranger = await makeKeys('EdDSA');
    await refused(
      await signEventRaw(stranger, claims(), { kid: keys.set.current.kid }),
      'token_invalid_signature',
    );
    await refused(
      await signEventRaw(stranger, claims(), { kid: stranger.set.current.kid }),
      'token_unknown_key',
    );
    await refused(await signEventRaw(keys, claims(), { kid: '../../etc/passwd' }), [
      'token_malformed',
      'token_unknown_key',
    ]);
  });

  it('altered after signing: data, type, subject, tenant, permissions, mode, expiry, id', async () => {
    const { events } = build();
    const out = await signed(events, await idp.mint({ sub: 'alice' }));
    for (const change of [
      (c: Record<string, unknown>) => {
        c.data = { report: 43 };
      },
      (c: Record<string, unknown>) => {
        c.type = 'com.example.report.deleted';
      },
      (c: Record<string, unknown>) => {
        c.sub = 'bob';
      },
      (c: Record<string, unknown>) => {
        c.tenant = 'acme';
      },
      (c: Record<string, unknown>) => {
        c.permissions = ['read:reports'];
      },
      (c: Record<string, unknown>) => {
        c.mode = 'any';
      },
      (c: Record<string, unknown>) => {
        c.exp = (c.exp as number) + 3600;
      },
      (c: Record<string, unknown>) => {
        c.id = 'other';
        c.jti = 'other';
      },
    ]) {
      await refused(alterEvent(out.event, change), 'token_invalid_signature', events);
    }
  });

  it('malformed event members under the right key are refused: Gatehouse never signs them', async () => {
    for (const extra of [
      { jti: 'evt-2' },
      { specversion: '0.3' },
      { permissions: [] },
      { permissions: ['write:*'] },
      { permissions: 'write:reports' },
      { mode: 'some' },
      { type: '' },
      { ctx: 'x' },
      { ctx: { ip: 7 } },
      { delegated: 'yes' },
      { subject_iat: '1' },
      { subject_iat: -1 },
      { actor_iats: [1.5] },
      { actor_iats: 1 },
      { parents: 'p' },
      { parents: [''] },
      { parents: [1] },
    ]) {
      await refused(await signEventRaw(keys, { ...claims(), ...extra }), 'token_invalid_claims');
    }
    const { id: _id, ...noId } = claims();
    await refused(await signEventRaw(keys, noId), 'token_invalid_claims');
  });

  it('oversized events are refused before decoding', async () => {
    const { events } = build(eventsPolicy(idp, { maxBytes: 1024 }));
    await refused(
      await signEventRaw(keys, { ...claims(), data: 'x'.repeat(2000) }),
      'token_too_large',
      events,
    );
  });

  it('not a string at all', async () => {
    for (const value of [undefined, null, 42, { event: 1 }, ['a.b.c']])
      await refused(value, 'token_malformed');
  });

  it('verifies events of the next and previous keys, so rotation breaks no queued event', async () => {
    const out = await signed(build().events, await idp.mint({ sub: 'alice' }));
    const parsed = JSON.parse(keys.text) as Record<string, unknown>;
    const rotated = JSON.stringify({ current: parsed.next, previous: parsed.current });
    const { events } = build(eventsPolicy(idp), { env: { [KEYS_ENV]: rotated } });
    expect((await events.verify(out.event)).allow).toBe(true);
  });
});

describe('configuration', () => {
  it('events need the delegation section (its issuer and keys), naming the field', () => {
    const doc = eventsPolicy(idp);
    delete (doc as { delegation?: unknown }).delegation;
    expect(() => compilePolicy(doc, { env: {} })).toThrowError(
      expect.objectContaining({ field: 'policy.events' }) as Error,
    );
  });

  it.each([
    [{ audiences: [SELF_ISSUER] }, 'policy.events.audiences[0]'],
    [{ maxTtlSeconds: 600, defaultTtlSeconds: 601 }, 'policy.events.defaultTtlSeconds'],
  ])('refuses %j naming %s', (events, field) => {
    const error = (() => {
      try {
        compilePolicy(eventsPolicy(idp, events), { env: { [KEYS_ENV]: keys.text } });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect(error).toMatchObject({ field });
  });

  it.each([
    [{ maxTtlSeconds: 1_209_601 }, 'events.maxTtlSeconds'],
    [{ maxBytes: 100 }, 'events.maxBytes'],
    [{ nope: 1 }, 'events'],
  ])('the schema refuses %j', (events, field) => {
    expect(() =>
      compilePolicy(eventsPolicy(idp, events as never), { env: { [KEYS_ENV]: keys.text } }),
    ).toThrowError(expect.objectContaining({ field: expect.stringContaining(field) }) as Error);
  });

  it('without the key secret nothing is signed and nothing verifies, naming the secret', async () => {
    const { events } = build(eventsPolicy(idp), { env: {} });
    const error = await signAs(events, await idp.mint({ sub: 'alice' })).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'events_unavailable' });
    expect(String((error as Error).message)).toContain(KEYS_ENV);
    const crafted = await signEventRaw(keys, eventClaims(clock));
    expect(await events.verify(crafted)).toMatchObject({
      allow: false,
      status: 503,
      reason: 'configuration_error',
    });
  });

  it('without an events section nothing is signed', async () => {
    const doc = eventsPolicy(idp);
    delete (doc as { events?: unknown }).events;
    const { events } = build(doc);
    await expect(signAs(events, await idp.mint({ sub: 'alice' }))).rejects.toMatchObject({
      code: 'events_unavailable',
    });
    expect(await events.verify(await signEventRaw(keys, eventClaims(clock)))).toMatchObject({
      status: 503,
    });
  });
});

describe('the signing credential stays revocable through its events', () => {
  function followed() {
    const feed = new MemoryFeed({ now });
    const follower = new RevocationFollower(feed, { now, awaitReads: true, log: () => {} });
    return { feed, ...build(eventsPolicy(idp), { revocation: follower }) };
  }

  it('revoking the delegation token (or any token it was exchanged from) refuses its events', async () => {
    for (const revoked of ['own', 'parent'] as const) {
      const { feed, gatehouse, events } = followed();
      const claims = delegationClaims(clock, 'alice', [REPORTER(idp)], 'read:*', {
        jti: `d-${revoked}`,
        parents: ['idp-parent'],
      });
      const delegation = await signDelegation(keys, claims);
      const ev = await signed(events, delegation, { permission: 'read:reports' });
      expect(await events.verify(ev.event)).toMatchObject({ allow: true });
      const jti = revoked === 'own' ? (claims.jti as string) : 'idp-parent';
      await feed.append({ token: { jti, expiresAt: claims.exp as number } });
      clock += 1_500;
      const direct = await gatehouse.decide({
        method: 'GET',
        path: '/reports',
        authorization: `Bearer ${delegation}`,
      });
      expect(direct.reason).toBe('token_revoked');
      expect(await events.verify(ev.event)).toMatchObject({
        allow: false,
        status: 401,
        reason: 'token_revoked',
      });
    }
  });

  it('revoking the identity provider token that signed it refuses its events', async () => {
    const { feed, events } = followed();
    const token = await idp.mint({ sub: 'alice', jti: 'stolen-1' });
    const ev = await signed(events, token, { ttlSeconds: 86_400 });
    await feed.append({ token: { jti: 'stolen-1', expiresAt: Math.floor(clock / 1000) + 3600 } });
    clock += 1_500;
    expect(await events.verify(ev.event)).toMatchObject({ allow: false, reason: 'token_revoked' });
  });

  it('a sign-out the signing edge had not read yet still refuses the event (judged by the token’s iat)', async () => {
    const feed = new MemoryFeed({ now });
    // The guard: reads run beside requests, one per second, so it lags the feed briefly.
    const edge = new RevocationFollower(feed, {
      now,
      awaitReads: false,
      intervalMs: 1000,
      log: () => {},
    });
    const { events } = build(eventsPolicy(idp), { revocation: edge });
    const stolen = await idp.mint({ sub: 'alice' });
    clock += 5_000;
    await signed(events, stolen); // the edge's first read done
    clock += 200;
    await feed.append({
      notBefore: { key: subjectStorageKey({ subject: 'alice' }), at: Math.floor(clock / 1000) },
    });
    clock += 300; // inside the edge's read interval: the sign-out is not seen yet
    const ev = await signed(events, stolen, { ttlSeconds: 86_400 });
    const consumer = new RevocationFollower(feed, { now, awaitReads: true, log: () => {} });
    const { events: later } = build(eventsPolicy(idp), { revocation: consumer });
    clock += 60_000;
    expect(await later.verify(ev.event)).toMatchObject({
      allow: false,
      reason: 'session_revoked',
    });
  });

  it('a delegated event is judged by the delegator’s and each actor’s token: an old sign-out does not refuse it, a later one does', async () => {
    for (const who of ['alice', 'reporter'] as const) {
      const { feed, gatehouse, events } = followed();
      const reporter = REPORTER(idp);
      const key = subjectStorageKey({ subject: who === 'alice' ? 'alice' : reporter.subject });
      await feed.append({ notBefore: { key, at: Math.floor(clock / 1000) - 86_400 * 30 } });
      const delegation = await signDelegation(
        keys,
        delegationClaims(clock, 'alice', [reporter], 'read:*'),
      );
      const direct = await gatehouse.decide({
        method: 'GET',
        path: '/reports',
        authorization: `Bearer ${delegation}`,
      });
      expect(direct.allow).toBe(true);
      const ev = await signed(events, delegation, { permission: 'read:reports' });
      expect(await events.verify(ev.event), who).toMatchObject({ allow: true });
      clock += 5_000;
      await feed.append({ notBefore: { key, at: Math.floor(clock / 1000) } });
      clock += 1_500;
      expect(await events.verify(ev.event), who).toMatchObject({
        allow: false,
        reason: 'session_revoked',
      });
    }
  });
});

describe('delegated events are bounded by their delegation', () => {
  it('never outlive the delegation token that signed them, whatever ttlSeconds asks', async () => {
    const { gatehouse, events } = build();
    const claims = delegationClaims(clock, 'alice', [REPORTER(idp)], 'read:*'); // exp iat + 300
    const delegation = await signDelegation(keys, claims);
    for (const ttlSeconds of [86_400, 301, 300]) {
      const out = await signed(events, delegation, { permission: 'read:reports', ttlSeconds });
      expect(out.expiresAt).toBe(claims.exp);
      const payload = jose.decodeJwt(out.event);
      expect(payload.exp).toBe(claims.exp);
    }
    const short = await signed(events, delegation, { permission: 'read:reports', ttlSeconds: 60 });
    expect(short.expiresAt).toBe(Math.floor(clock / 1000) + 60);
    const long = await signed(events, delegation, {
      permission: 'read:reports',
      ttlSeconds: 86_400,
    });
    clock += 6 * 3600_000;
    const direct = await gatehouse.decide({
      method: 'GET',
      path: '/reports',
      authorization: `Bearer ${delegation}`,
    });
    expect(direct.reason).toBe('token_expired');
    expect(await events.verify(long.event)).toMatchObject({
      allow: false,
      reason: 'token_expired',
    });
  });

  it('an identity provider token keeps the configured bound (the event outlives the request)', async () => {
    const { events } = build();
    const token = await idp.mint({ sub: 'alice', exp: Math.floor(clock / 1000) + 60 });
    const out = await signed(events, token, { ttlSeconds: 7200 });
    expect(out.expiresAt).toBe(Math.floor(clock / 1000) + 7200);
  });
});

describe('route flags and who acted', () => {
  it('method + path naming a route with nothing to re-check is a 400 naming path, never a 200 without an event', async () => {
    const doc = eventsPolicy(idp);
    doc.routes = [...doc.routes, { method: 'GET', path: '/health', public: true }];
    const { gatehouse } = build(doc);
    const token = await idp.mint({ sub: 'alice' });
    for (const [path, authorization] of [
      ['/health', `Bearer ${token}`],
      ['/health', undefined],
      ['/me', `Bearer ${token}`],
      ['/nowhere', `Bearer ${token}`],
    ] as const) {
      const answer = await answerEventSign(
        gatehouse,
        {
          method: 'POST',
          contentType: 'application/json',
          body: JSON.stringify({ type: 't', method: 'GET', path }),
          authorization,
        },
        { now },
      );
      expect(answer.status, path).toBe(400);
      expect(JSON.parse(answer.body), path).toMatchObject({ reason: 'invalid_request' });
      expect(answer.body).toContain('path');
    }
  });

  it('a delegate cannot sign by permission what a delegated: false route protects, by either form', async () => {
    const { events, gatehouse } = build();
    const delegation = await signDelegation(
      keys,
      delegationClaims(clock, 'alice', [REPORTER(idp)], 'read:*'),
    );
    const bearer = { authorization: `Bearer ${delegation}` };
    expect(
      await events.signRequest(bearer, { type: 't', method: 'GET', path: '/admin' }),
    ).toMatchObject({ ok: false, decision: { status: 403, reason: 'delegation_refused' } });
    expect(await events.signRequest(bearer, { type: 't', permission: 'read:admin' })).toMatchObject(
      { ok: false, decision: { status: 403, reason: 'delegation_refused' } },
    );
    // In process too, and a template route (`{id}`) protects every permission it can fill.
    const principal = (await gatehouse.verifier.verify(delegation)).principal;
    expect(await events.sign(principal, { type: 't', permission: 'read:admin' })).toMatchObject({
      ok: false,
      decision: { reason: 'delegation_refused' },
    });
    const doc = eventsPolicy(idp);
    doc.routes = [
      ...doc.routes,
      { method: 'GET', path: '/vault/:id', require: ['read:vault:{id}'], delegated: false },
    ];
    const { events: vault } = build(doc);
    expect(
      await vault.signRequest(bearer, { type: 't', permission: 'read:vault:7' }),
    ).toMatchObject({ ok: false, decision: { reason: 'delegation_refused' } });
    // Permissions no such route protects still sign; the owner's own token signs read:admin.
    expect(
      await events.signRequest(bearer, { type: 't', permission: 'read:reports' }),
    ).toMatchObject({ ok: true });
    expect(
      await events.signRequest(
        { authorization: `Bearer ${await idp.mint({ sub: 'alice' })}` },
        { type: 't', permission: 'read:admin' },
      ),
    ).toMatchObject({ ok: true });
  });

  it('the consumer’s handler sees that a delegate acted, and who', async () => {
    const { events } = build();
    const reporter = REPORTER(idp);
    const delegation = await signDelegation(
      keys,
      delegationClaims(clock, 'alice', [reporter], 'read:*'),
    );
    const ev = await signed(events, delegation, { permission: 'read:reports' });
    const seen: unknown[] = [];
    await processEvent(events, ev.event, (e) => void seen.push(e), undefined, { log: () => {} });
    expect(seen).toEqual([
      expect.objectContaining({
        subject: 'alice',
        delegated: true,
        actors: [{ subject: reporter.subject, issuer: reporter.issuer }],
      }),
    ]);
    const own = await signed(events, await idp.mint({ sub: 'alice' }));
    seen.length = 0;
    await processEvent(events, own.event, (e) => void seen.push(e), undefined, { log: () => {} });
    expect(seen).toEqual([expect.objectContaining({ delegated: false, actors: [] })]);
  });
});

describe('audit and disclosure', () => {
  it('writes one audit line per signed event (every form), never its data or a token; none when refused', async () => {
    const gatehouse = new Gatehouse({
      policy: compilePolicy(eventsPolicy(idp), { env: { [KEYS_ENV]: keys.text } }),
      store,
      now,
    });
    const lines: EventAudit[] = [];
    const events = new GatehouseEvents(gatehouse, { now, audit: (e) => lines.push(e) });
    const token = await idp.mint({ sub: 'alice', jti: 'idp-1' });
    const reporter = REPORTER(idp);
    const delegation = await signDelegation(
      keys,
      delegationClaims(clock, 'alice', [reporter], 'read:*', { jti: 'd-1' }),
    );
    const secret = { card: '4111-1111-1111-1111' };
    const outs = [
      await signed(events, token, { data: secret }),
      await signed(events, token, {
        data: secret,
        permission: undefined,
        method: 'POST',
        path: '/reports/7',
      }),
      await signed(events, delegation, { data: secret, permission: 'read:reports' }),
      await events.sign((await gatehouse.verifier.verify(token)).principal, {
        type: 'in.process',
        data: secret,
        permission: 'write:reports',
      }),
    ];
    await signAs(events, await idp.mint({ sub: 'bob' }));
    expect(lines).toHaveLength(4);
    const ids = outs.map((o) => (o.ok ? o.id : ''));
    expect(lines.map((l) => l.eventId)).toEqual(ids);
    expect(lines[0]).toMatchObject({
      type: 'gatehouse.event_signed',
      eventType: 'com.example.report.requested',
      subject: 'alice',
      permissions: ['write:reports'],
      parents: ['idp-1'],
      expiresAt: outs[0]!.ok ? outs[0]!.expiresAt : 0,
    });
    expect(lines[1]).toMatchObject({
      route: 'POST /reports/:id',
      permissions: ['write:reports:7'],
    });
    expect(lines[2]).toMatchObject({ subject: 'alice', actors: 'reporter', parents: ['d-1'] });
    expect(lines[0]).not.toHaveProperty('actors');
    const text = JSON.stringify(lines);
    expect(text).not.toContain('4111');
    expect(text).not.toContain(token);
    expect(text).not.toContain(delegation);
    for (const o of outs) if (o.ok) expect(text).not.toContain(o.event);
  });

  it('the verify endpoint answers whether the event runs, not the subject’s grant chain', async () => {
    const { gatehouse, events } = build();
    const delegation = await signDelegation(
      keys,
      delegationClaims(clock, 'alice', [REPORTER(idp)], 'read:*'),
    );
    const ev = await signed(events, delegation, { permission: 'read:reports' });
    const ask = async () =>
      JSON.parse(
        (
          await answerEventVerify(
            gatehouse,
            {
              method: 'POST',
              contentType: 'application/json',
              body: JSON.stringify({ event: ev.event }),
            },
            { now },
          )
        ).body,
      ) as Record<string, unknown>;
    const allowed = await ask();
    expect(allowed).toMatchObject({
      allow: true,
      status: 200,
      reason: 'allowed',
      subject: 'alice',
    });
    store.putUser(
      user('alice', { roles: [{ role: 'writer' }], denies: [{ permission: 'read:reports' }] }),
    );
    clock += 31_000;
    const denied = await ask();
    expect(denied).toMatchObject({ allow: false, status: 403, subject: 'alice' });
    for (const answer of [allowed, denied]) {
      expect(Object.keys(answer).sort()).toEqual(['allow', 'event', 'reason', 'status', 'subject']);
      expect(JSON.stringify(answer)).not.toMatch(/writer|reader|granted by|read:\*/);
    }
    // The library keeps the full decision for the deployment's own code.
    expect((await events.verify(ev.event)).explain).not.toBe('');
  });
});

describe('deeply nested data', () => {
  it('is refused with a 400 naming data (bounded depth), not a 503 to retry forever', async () => {
    const { gatehouse } = build();
    const token = await idp.mint({ sub: 'alice' });
    const answer = (data: string) =>
      answerEventSign(
        gatehouse,
        {
          method: 'POST',
          contentType: 'application/json',
          body: `{"type":"t","permission":"write:reports","data":${data}}`,
          authorization: `Bearer ${token}`,
        },
        { now },
      );
    for (const depth of [65, 1000, 6000, 12000]) {
      for (const [open, close] of [
        ['[', ']'],
        ['{"a":', '}'],
      ] as const) {
        const out = await answer(`${open.repeat(depth - 1)}[1]${close.repeat(depth - 1)}`);
        expect(out.status, `${open} ${depth}`).toBe(400);
        expect(JSON.parse(out.body)).toMatchObject({ reason: 'invalid_request' });
        expect(out.body).toContain('data');
      }
    }
    const deepest = await answer(`${'['.repeat(63)}[1]${']'.repeat(63)}`);
    expect(deepest.status).toBe(200);
    const { events } = build();
    expect(await events.verify(JSON.parse(deepest.body).event)).toMatchObject({ allow: true });
  });

  it('in process, a cyclic value is refused naming data rather than hanging or overflowing', async () => {
    const { gatehouse, events } = build();
    const principal = (await gatehouse.verifier.verify(await idp.mint({ sub: 'alice' }))).principal;
    const cyclic: Record<string, unknown> = {};
    cyclic.a = cyclic;
    cyclic.b = cyclic;
    await expect(
      events.sign(principal, { type: 't', data: cyclic, permission: 'write:reports' }),
    ).rejects.toMatchObject({ code: 'event_invalid_request', field: 'data' });
  });
});
