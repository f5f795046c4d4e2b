/**
 * The revocation follower on the platform-free core: a real Gatehouse with its CachedStore over a
 * MemoryStore, a real MemoryFeed, real ES256 tokens; only the clock is fake.
 */
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/errors.ts';
import { compilePolicy, Gatehouse, type PolicyDocument } from '../../../src/policy/index.ts';
import {
  type FeedAnswer,
  type FeedSource,
  feedKeys,
  MemoryFeed,
  RevocationFollower,
} from '../../../src/revocation/index.ts';
import { MemoryStore } from '../../../src/stores/index.ts';
import { subjectStorageKey } from '../../../src/stores/keys.ts';
import type { PermissionStore, SubjectKey, UserRecord } from '../../../src/types.ts';
import { AUDIENCE, createTestIssuer, type TestIssuer } from '../../support/issuer.ts';

const START = Date.parse('2026-12-03T12:00:00Z');
let clock = START;
const now = () => clock;
let idp: TestIssuer;

beforeAll(async () => {
  idp = await createTestIssuer({ now });
});

function policy(extra: Partial<PolicyDocument> = {}): PolicyDocument {
  return {
    version: 1,
    issuers: [
      {
        issuer: idp.issuer,
        audiences: [AUDIENCE],
        algorithms: ['ES256'],
        keys: { jwks: idp.jwks },
        tenantClaim: 'tid',
      },
    ],
    cache: { ttlSeconds: 30 },
    routes: [
      { method: 'GET', path: '/public', public: true },
      { method: 'GET', path: '/stats', require: ['read:stats'] },
      { method: 'GET', path: '/payouts', require: ['read:stats'], strict: true },
    ],
    ...extra,
  };
}

/** Every subject lives in tenant acme unless named otherwise (the issuer requires `tid`). */
function user(subject: string, grants: string[], tenant = 'acme'): UserRecord {
  return {
    subject,
    tenant,
    roles: [],
    grants: grants.map((permission) => ({ permission })),
    denies: [],
  };
}

/** A MemoryStore that counts reads per subject. */
function countingStore(inner: MemoryStore) {
  const reads = new Map<string, number>();
  const store: PermissionStore = {
    kind: 'memory',
    async getUser(key: SubjectKey) {
      reads.set(key.subject, (reads.get(key.subject) ?? 0) + 1);
      return inner.getUser(key);
    },
    getRoles: (tenant) => inner.getRoles(tenant),
  };
  return { store, reads };
}

/** A feed source that fails while `down` is set and counts reads. */
function switchableSource(feed: FeedSource) {
  const state = { down: false, reads: 0 };
  const source: FeedSource = {
    async read(since: number): Promise<FeedAnswer> {
      state.reads++;
      if (state.down) throw new Error('feed unreachable');
      return feed.read(since);
    },
  };
  return { source, state };
}

let data: MemoryStore;
let feed: MemoryFeed;
let logs: Record<string, unknown>[];

beforeEach(() => {
  clock = START;
  data = new MemoryStore();
  data.putUser(user('alice', ['read:stats']));
  data.putUser(user('bob', ['read:stats']));
  feed = new MemoryFeed({ now, maxChanges: 10 });
  logs = [];
});

function build(source: FeedSource = feed, doc: PolicyDocument = policy()) {
  const counted = countingStore(data);
  const follower = new RevocationFollower(source, { now, log: (e) => logs.push({ ...e }) });
  const gatehouse = new Gatehouse({
    policy: compilePolicy(doc),
    store: counted.store,
    now,
    revocation: follower,
  });
  return { gatehouse, follower, reads: counted.reads };
}

async function ask(
  gatehouse: Gatehouse,
  claims: Record<string, unknown> = {},
  path = '/stats',
  consistency?: number,
) {
  const token = await idp.mint({ tid: 'acme', ...claims });
  return gatehouse.decide({
    method: 'GET',
    path,
    authorization: `Bearer ${token}`,
    ...(consistency !== undefined && { consistency }),
  });
}

/** Lets a read the follower started beside a request settle. */
async function settle(follower: RevocationFollower) {
  await follower.pending;
}

describe('following the feed', () => {
  it('evicts exactly the changed subject at the next read, within one interval', async () => {
    const { gatehouse, follower, reads } = build();
    expect((await ask(gatehouse, { sub: 'alice' })).allow).toBe(true);
    expect((await ask(gatehouse, { sub: 'bob' })).allow).toBe(true);
    data.putUser(user('alice', []));
    data.putUser(user('bob', []));
    await feed.append({ keys: [feedKeys.user({ subject: 'alice', tenant: 'acme' })] });

    clock += 1000;
    await ask(gatehouse, { sub: 'alice' });
    await settle(follower);

    expect((await ask(gatehouse, { sub: 'alice' })).reason).toBe('missing_permission');
    // bob's change was never announced: still the cached record, not read again.
    expect((await ask(gatehouse, { sub: 'bob' })).allow).toBe(true);
    expect(reads.get('bob')).toBe(1);
  });

  it('evicts a tenant’s roles when they change', async () => {
    const { gatehouse, follower } = build();
    data.putUser({
      subject: 'carol',
      tenant: 'acme',
      roles: [{ role: 'viewer' }],
      grants: [],
      denies: [],
    });
    data.putRole('acme', { name: 'viewer', grants: [{ permission: 'read:stats' }], inherits: [] });
    expect((await ask(gatehouse, { sub: 'carol', tid: 'acme' })).allow).toBe(true);
    data.putRole('acme', { name: 'viewer', grants: [], inherits: [] });
    await feed.append({ keys: [feedKeys.roles('acme')] });

    clock += 1000;
    await ask(gatehouse, { sub: 'carol', tid: 'acme' });
    await settle(follower);

    expect((await ask(gatehouse, { sub: 'carol', tid: 'acme' })).reason).toBe('missing_permission');
  });

  it('makes the first request after an idle gap wait for the feed, so it sees the change', async () => {
    const { gatehouse } = build();
    expect((await ask(gatehouse, { sub: 'alice' })).allow).toBe(true);
    data.putUser(user('alice', []));
    await feed.append({ keys: [feedKeys.user({ subject: 'alice', tenant: 'acme' })] });

    // Idle for 20 s (found by following the README: the first request was allowed once).
    clock += 20_000;

    expect((await ask(gatehouse, { sub: 'alice' })).reason).toBe('missing_permission');
  });

  it('waits only after idle gaps: never under steady traffic, never on each retry of a failing feed', async () => {
    const { source, state } = switchableSource(feed);
    const { gatehouse, follower } = build(source);
    await ask(gatehouse, { sub: 'alice' });
    // Steady traffic: a read falls due every interval and runs beside the request.
    for (let i = 0; i < 5; i++) {
      clock += 1000;
      expect(follower.tick()).toBeUndefined();
      await settle(follower);
    }
    // Idle for three intervals: the read that falls due is handed back to be waited for, and
    // every request arriving while it runs waits for the same read.
    clock += 3000;
    const first = follower.tick();
    expect(first).toBeInstanceOf(Promise);
    expect(follower.tick()).toBe(first);
    await first;
    expect(follower.tick()).toBeUndefined();
    // A failing feed under traffic: one wait after idle, then retries run beside requests.
    state.down = true;
    clock += 5000;
    const failing = follower.tick();
    expect(failing).toBeInstanceOf(Promise);
    await failing;
    for (let i = 0; i < 3; i++) {
      clock += 1000;
      expect(follower.tick()).toBeUndefined();
      await settle(follower);
    }
  });

  it('reads the feed at most once per interval under load, and never while idle', async () => {
    const { source, state } = switchableSource(feed);
    const { gatehouse, follower } = build(source);
    const token = await idp.mint({ sub: 'alice', tid: 'acme' });
    // 1000 requests spread over 10 s: 100 per second.
    for (let i = 0; i < 1000; i++) {
      await gatehouse.decide({ method: 'GET', path: '/stats', authorization: `Bearer ${token}` });
      await settle(follower);
      clock += 10;
    }
    const busy = state.reads;
    clock += 60_000;

    expect(busy).toBeLessThanOrEqual(11);
    expect(state.reads).toBe(busy);
  });

  it('drops every cached record when it fell behind the retained changes (gap)', async () => {
    const { gatehouse, follower, reads } = build();
    await ask(gatehouse, { sub: 'alice' });
    await ask(gatehouse, { sub: 'bob' });
    // More changes than the feed keeps (10), none naming bob: only a flush can catch up.
    for (let i = 0; i < 20; i++) await feed.append({ keys: [feedKeys.user({ subject: `x${i}` })] });
    data.putUser(user('bob', []));

    clock += 1000;
    await ask(gatehouse, { sub: 'alice' });
    await settle(follower);

    expect(follower.stats.resets).toBe(2);
    expect((await ask(gatehouse, { sub: 'bob' })).reason).toBe('missing_permission');
    expect(reads.get('bob')).toBe(2);
  });
});

describe('a feed that does not answer', () => {
  it('holds a new isolate’s first request for one bounded read, and no request after it', async () => {
    const hanging: FeedSource = { read: () => new Promise<FeedAnswer>(() => {}) };
    const follower = new RevocationFollower(hanging, {
      now,
      readTimeoutMs: 100,
      log: (e) => logs.push({ ...e }),
    });
    const gatehouse = new Gatehouse({
      policy: compilePolicy(policy()),
      store: data,
      now,
      revocation: follower,
    });

    const first = performance.now();
    expect((await ask(gatehouse, { sub: 'alice' })).reason).toBe('revocation_unavailable');
    const firstMs = performance.now() - first;
    clock += 1000;
    const later = performance.now();
    expect((await ask(gatehouse, { sub: 'alice' })).reason).toBe('revocation_unavailable');
    const laterMs = performance.now() - later;

    expect(firstMs).toBeGreaterThanOrEqual(90);
    expect(laterMs).toBeLessThan(90);
    expect(follower.stats.reads).toBe(2);
  });
});

describe('sign out everywhere (not-before)', () => {
  const nb = Math.ceil(START / 1000) - 100;
  async function signedOut(key: SubjectKey = { subject: 'alice', tenant: 'acme' }) {
    await feed.append({ notBefore: { key: subjectStorageKey(key), at: nb } });
    return build();
  }

  it('refuses a token issued before the not-before, with a stable reason', async () => {
    const { gatehouse } = await signedOut();
    const decision = await ask(gatehouse, { sub: 'alice', iat: nb - 1 });
    expect(decision).toMatchObject({ allow: false, status: 401, reason: 'session_revoked' });
  });

  it('accepts tokens issued at or after the not-before', async () => {
    const { gatehouse } = await signedOut();
    expect((await ask(gatehouse, { sub: 'alice', iat: nb })).allow).toBe(true);
    expect((await ask(gatehouse, { sub: 'alice', iat: nb + 1 })).allow).toBe(true);
  });

  it('refuses a token without iat: it cannot show it came after the sign-out', async () => {
    const { gatehouse } = await signedOut();
    expect((await ask(gatehouse, { sub: 'alice', iat: undefined })).reason).toBe('session_revoked');
  });

  it('touches no one else: other subjects, and the same subject in another tenant', async () => {
    data.putUser(user('alice', ['read:stats'], 'globex'));
    const { gatehouse } = await signedOut({ subject: 'alice', tenant: 'globex' });
    expect((await ask(gatehouse, { sub: 'alice', iat: nb - 50 })).allow).toBe(true);
    expect((await ask(gatehouse, { sub: 'alice', tid: 'globex', iat: nb - 50 })).reason).toBe(
      'session_revoked',
    );
    expect((await ask(gatehouse, { sub: 'bob', iat: nb - 50 })).allow).toBe(true);
  });

  it('does not apply to a bare-subject check (no token, no session)', async () => {
    const { gatehouse } = await signedOut();
    const { subjectPrincipal } = await import('../../../src/policy/check.ts');
    const principal = subjectPrincipal({ subject: 'alice', tenant: 'acme' }, clock);
    expect((await gatehouse.check(principal, ['read:stats'])).allow).toBe(true);
  });

  it('never moves back: an earlier second sign-out keeps the later not-before', async () => {
    await feed.append({
      notBefore: { key: subjectStorageKey({ subject: 'alice', tenant: 'acme' }), at: nb },
    });
    await feed.append({
      notBefore: { key: subjectStorageKey({ subject: 'alice', tenant: 'acme' }), at: nb - 60 },
    });
    const { gatehouse } = build();
    expect((await ask(gatehouse, { sub: 'alice', iat: nb - 30 })).reason).toBe('session_revoked');
  });
});

describe('an instance that has never read the feed (review finding 6)', () => {
  it('refuses every token, signed out or not, until a read succeeds; then the sign-out holds', async () => {
    await feed.append({
      notBefore: { key: subjectStorageKey({ subject: 'bob', tenant: 'acme' }), at: START / 1000 },
    });
    const bobOld = await idp.mint({ tid: 'acme', sub: 'bob', iat: START / 1000 - 60 });
    const { source, state } = switchableSource(feed);
    state.down = true;
    const { gatehouse, follower } = build(source);

    for (const minutes of [0, 1, 10, 60]) {
      clock = START + minutes * 60_000;
      const decision = await gatehouse.decide({
        method: 'GET',
        path: '/stats',
        authorization: `Bearer ${bobOld}`,
      });
      expect({ minutes, reason: decision.reason }).toEqual({
        minutes,
        reason: 'revocation_unavailable',
      });
      expect(decision.status).toBe(503);
      expect((await ask(gatehouse, { sub: 'alice' })).reason).toBe('revocation_unavailable');
    }
    state.down = false;
    clock += 1000;
    await ask(gatehouse, { sub: 'alice' });
    await settle(follower);
    const bob = await gatehouse.decide({
      method: 'GET',
      path: '/stats',
      authorization: `Bearer ${bobOld}`,
    });
    expect(bob.reason).toBe('session_revoked');
    expect((await ask(gatehouse, { sub: 'alice' })).allow).toBe(true);
  });

  it('still answers bare-subject checks (no session to revoke)', async () => {
    const { source, state } = switchableSource(feed);
    state.down = true;
    const { follower } = build(source);
    await follower.sync();
    const verdict = await follower.admit(
      {
        issuer: idp.issuer,
        issuerKind: 'external',
        subject: 'alice',
        tenant: 'acme',
        scopes: [],
        claims: {},
        actors: [],
        expiresAt: clock / 1000 + 60,
      },
      { session: false },
    );
    expect(verdict).toBeNull();
  });
});

describe('not-befores are forgotten once no token they refuse can be live (review finding 9)', () => {
  const year = 31_536_000;

  it('refuses tokens without iat or living longer than a year, signed out or not', async () => {
    const { gatehouse } = build();
    const now = Math.floor(clock / 1000);
    expect((await ask(gatehouse, { sub: 'alice', iat: undefined })).reason).toBe(
      'token_lifetime_unbounded',
    );
    expect(
      (await ask(gatehouse, { sub: 'alice', iat: now - 10, exp: now - 10 + year + 1 })).reason,
    ).toBe('token_lifetime_unbounded');
    expect(
      (await ask(gatehouse, { sub: 'alice', iat: now - 10, exp: now - 10 + year })).allow,
    ).toBe(true);
  });

  it('drops a not-before from the feed and the follower a year (plus leeway) after its time', async () => {
    const at = Math.floor(START / 1000);
    await feed.append({ notBefore: { key: 'k1', at } });
    const follower = new RevocationFollower(feed, { now, log: () => {} });
    await follower.sync();
    expect(follower.notBefore({ subject: 'x' })).toBeUndefined();
    expect((await feed.read(-1)).changes.some((c) => c.notBefore?.key === 'k1')).toBe(true);

    clock = (at + year + 300) * 1000 - 1;
    expect((await feed.read(-1)).changes.some((c) => c.notBefore?.key === 'k1')).toBe(true);
    clock = (at + year + 300) * 1000;
    expect((await feed.read(-1)).changes.some((c) => c.notBefore?.key === 'k1')).toBe(false);
    // The next append prunes it from the persisted state too.
    const { writes } = feed.log.append({ keys: ['user/-/s:x'] }, clock);
    expect(writes.delete).toContain('nb:k1');
  });

  it('keeps refusing every token the forgotten not-before refused', async () => {
    const at = Math.floor(START / 1000);
    await feed.append({
      notBefore: { key: subjectStorageKey({ subject: 'alice', tenant: 'acme' }), at },
    });
    const { gatehouse } = build();
    // The longest-lived token it refuses: issued just before, living a year.
    const token = await idp.mint({ tid: 'acme', sub: 'alice', iat: at - 1, exp: at - 1 + year });
    const ask2 = () =>
      gatehouse.decide({ method: 'GET', path: '/stats', authorization: `Bearer ${token}` });
    expect((await ask2()).reason).toBe('session_revoked');
    clock = (at + year + 300) * 1000;
    expect((await ask2()).allow).toBe(false);
    expect((await ask2()).reason).not.toBe('session_revoked');
  });
});

describe('token revocation by jti', () => {
  it('refuses the revoked jti until its expiry, and only that one', async () => {
    const until = Math.floor(START / 1000) + 600;
    await feed.append({ token: { jti: 'leaked-1', expiresAt: until } });
    const { gatehouse, follower } = build();

    expect((await ask(gatehouse, { sub: 'alice', jti: 'leaked-1' })).reason).toBe('token_revoked');
    expect((await ask(gatehouse, { sub: 'alice', jti: 'leaked-2' })).allow).toBe(true);
    expect(follower.isTokenRevoked('leaked-1')).toBe(true);
    clock = until * 1000 + 1;
    expect(follower.isTokenRevoked('leaked-1')).toBe(false);
  });
});

describe('a read that never settles (its timer cancelled with the request that started it)', () => {
  it('is abandoned after twice the read timeout, so the follower keeps following the feed', async () => {
    let hang = true;
    const source: FeedSource = {
      read: (since) => (hang ? new Promise<FeedAnswer>(() => {}) : feed.read(since)),
    };
    // No timers here: the read's timeout never fires, as when Workers cancel it.
    const follower = new RevocationFollower(source, {
      now,
      readTimeoutMs: 1000,
      log: (e) => logs.push({ ...e }),
    });
    const realSetTimeout = globalThis.setTimeout;
    globalThis.setTimeout = (() => 0) as unknown as typeof setTimeout;
    try {
      follower.tick();
    } finally {
      globalThis.setTimeout = realSetTimeout;
    }
    expect(follower.pending).toBeDefined();
    hang = false;
    await feed.append({ keys: [feedKeys.user({ subject: 'alice', tenant: 'acme' })] });
    clock += 1500;
    follower.tick();
    expect(follower.epoch).toBe(-1);
    clock += 1000;
    follower.tick();
    await follower.pending;

    expect(follower.epoch).toBe(1);
    expect(logs.map((l) => l.msg)).toEqual([
      'gatehouse.revocation_feed_unavailable',
      'gatehouse.revocation_feed_recovered',
    ]);
  });
});

describe('strict routes', () => {
  it('answer 503 while the feed cannot be read; other routes keep the TTL bound and log once', async () => {
    const { source, state } = switchableSource(feed);
    const { gatehouse, follower } = build(source);
    await follower.sync();
    state.down = true;
    clock += 11_000;

    const strict = await ask(gatehouse, { sub: 'alice' }, '/payouts');
    const other = await ask(gatehouse, { sub: 'alice' }, '/stats');
    clock += 5000;
    await ask(gatehouse, { sub: 'alice' }, '/stats');

    expect(strict).toMatchObject({ allow: false, status: 503, reason: 'revocation_unavailable' });
    expect(other.allow).toBe(true);
    expect(logs.filter((l) => l.msg === 'gatehouse.revocation_feed_unavailable')).toHaveLength(1);
  });

  it('answer from cache while the last read is within strictMaxLagSeconds, 503 after it', async () => {
    const { source, state } = switchableSource(feed);
    const { gatehouse, follower } = build(source);
    expect((await ask(gatehouse, { sub: 'alice' }, '/payouts')).allow).toBe(true);
    state.down = true;

    clock += 9000;
    await ask(gatehouse, { sub: 'alice' }, '/stats');
    await settle(follower);
    const within = await ask(gatehouse, { sub: 'alice' }, '/payouts');
    clock += 2000;
    const beyond = await ask(gatehouse, { sub: 'alice' }, '/payouts');
    state.down = false;
    clock += 1000;
    await ask(gatehouse, { sub: 'alice' }, '/stats');
    await settle(follower);
    const recovered = await ask(gatehouse, { sub: 'alice' }, '/payouts');

    expect(within.allow).toBe(true);
    expect(beyond.reason).toBe('revocation_unavailable');
    expect(recovered.allow).toBe(true);
  });

  it('wait for the read the first request after idle starts, rather than refuse (healthy feed)', async () => {
    const { gatehouse, follower } = build();
    expect((await ask(gatehouse, { sub: 'alice' }, '/payouts')).allow).toBe(true);
    for (const idle of [11_000, 60_000, 3_600_000]) {
      clock += idle;
      const first = await ask(gatehouse, { sub: 'alice' }, '/payouts');
      expect({ idle, allow: first.allow }).toEqual({ idle, allow: true });
    }
    expect(follower.stats.failures).toBe(0);
  });

  it('answer 503 at once after idle when the feed is known to be down', async () => {
    const { source, state } = switchableSource(feed);
    const { gatehouse, follower } = build(source);
    expect((await ask(gatehouse, { sub: 'alice' }, '/payouts')).allow).toBe(true);
    state.down = true;
    clock += 11_000;
    // The first request after idle waits for its read, which fails: 503.
    expect((await ask(gatehouse, { sub: 'alice' }, '/payouts')).reason).toBe(
      'revocation_unavailable',
    );
    const readsBefore = state.reads;
    clock += 1_500;
    // Later ones do not wait on the retries of a known outage.
    const started = follower.admit(
      {
        issuer: idp.issuer,
        issuerKind: 'external',
        subject: 'alice',
        tenant: 'acme',
        scopes: [],
        claims: {},
        actors: [],
        expiresAt: clock / 1000 + 60,
        issuedAt: clock / 1000,
      },
      { strict: true },
    );
    expect(started).toMatchObject({ status: 503, reason: 'revocation_unavailable' });
    expect(state.reads).toBe(readsBefore + 1);
  });

  it('answer 503 without any feed: nothing can vouch for freshness', async () => {
    const gatehouse = new Gatehouse({ policy: compilePolicy(policy()), store: data, now });
    expect((await ask(gatehouse, { sub: 'alice' }, '/payouts')).reason).toBe(
      'revocation_unavailable',
    );
    expect((await ask(gatehouse, { sub: 'alice' }, '/stats')).allow).toBe(true);
  });

  it('are refused on a public route, naming the field', () => {
    const doc = policy({ routes: [{ method: 'GET', path: '/x', public: true, strict: true }] });
    expect(() => compilePolicy(doc)).toThrowError(
      expect.objectContaining({ field: 'policy.routes[0].strict' }),
    );
  });

  it('take their lag bound and interval from the policy, validated', () => {
    expect(compilePolicy(policy()).revocation).toEqual({
      intervalMs: 1000,
      strictMaxLagMs: 10_000,
    });
    expect(() => compilePolicy(policy({ revocation: { pollIntervalMs: 5 } }))).toThrowError(
      expect.objectContaining({ field: 'policy.revocation.pollIntervalMs' }),
    );
    expect(() => new RevocationFollower(feed, { intervalMs: 0 })).toThrowError(ConfigError);
  });
});

describe('read your writes', () => {
  it('answers a consistency token from a read at least that fresh, before the interval', async () => {
    const { gatehouse } = build();
    expect((await ask(gatehouse, { sub: 'alice' })).allow).toBe(true);
    data.putUser(user('alice', []));
    const epoch = await feed.append({
      keys: [feedKeys.user({ subject: 'alice', tenant: 'acme' })],
    });

    const stale = await ask(gatehouse, { sub: 'alice' });
    const fresh = await ask(gatehouse, { sub: 'alice' }, '/stats', epoch);

    expect(stale.allow).toBe(true);
    expect(fresh.reason).toBe('missing_permission');
  });

  it('answers 503 for a token the feed has not reached, without a read per request', async () => {
    const { source, state } = switchableSource(feed);
    const { gatehouse } = build(source);
    await ask(gatehouse, { sub: 'alice' });
    const before = state.reads;

    const answers = await Promise.all(
      Array.from({ length: 20 }, () => ask(gatehouse, { sub: 'alice' }, '/stats', 1_000_000)),
    );

    expect(answers.every((a) => a.reason === 'consistency_unavailable')).toBe(true);
    expect(state.reads - before).toBeLessThanOrEqual(1);
  });
});
