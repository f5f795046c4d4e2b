import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type {
  JSONWebKeySet,
  JwksPersistence,
  PersistedJwks,
  VerifierOptions,
} from '../../../src/token/index.ts';
import {
  AUDIENCE,
  Clock,
  createVerifier,
  eachBackend,
  expectCode,
  ISSUER,
  JwksServer,
  makeKey,
  mint,
  type TestKey,
} from './helpers.ts';

let server: JwksServer;
let base: string;
let k1: TestKey;
let k2: TestKey;
const paths: string[] = [];

beforeAll(async () => {
  server = new JwksServer();
  base = await server.start();
  [k1, k2] = await Promise.all([makeKey('ES256', 'key-1'), makeKey('ES256', 'key-2')]);
});

afterAll(async () => {
  await server.close();
});

afterEach(() => {
  server.requests = 0;
  paths.length = 0;
});

function serve(...keys: TestKey[]): void {
  server.serve(keys.map((k) => k.jwk));
  const inner = server.handler;
  server.handler = (req, res) => {
    paths.push(req.url ?? '');
    inner(req, res);
  };
}

type RemoteExtra = {
  cacheTtlSeconds?: number;
  cooldownSeconds?: number;
  timeoutMs?: number;
  maxStaleSeconds?: number;
};

function remote(clock: Clock, keys: RemoteExtra = {}, extra: Partial<VerifierOptions> = {}) {
  return createVerifier({
    issuers: [
      {
        issuer: ISSUER,
        keys: { jwksUri: `${base}/jwks`, ...keys },
        audiences: [AUDIENCE],
        algorithms: ['ES256'],
      },
    ],
    now: clock.now,
    tokenCache: false,
    ...extra,
  });
}

/** A token minted for the clock's current time. */
async function fresh(key: TestKey, clock: Clock, extra: Record<string, unknown> = {}) {
  const iat = Math.floor(clock.ms / 1000);
  return mint(key, { iat, exp: iat + 3600, ...extra });
}

/** A fetch that never answers but honours its abort signal (the timeout), counting calls. */
function hangingFetch() {
  let calls = 0;
  const fetch = (_input: unknown, init?: RequestInit) => {
    calls++;
    return new Promise<Response>((_resolve, reject) => {
      init?.signal?.addEventListener('abort', () => reject(init.signal?.reason));
    });
  };
  return { fetch: fetch as typeof globalThis.fetch, calls: () => calls };
}

eachBackend(() => {
  describe('remote JWKS', () => {
    it('fetches once and serves from cache within the TTL', async () => {
      serve(k1);
      const clock = new Clock();
      const verifier = remote(clock);
      for (let i = 0; i < 3; i++) {
        await verifier.verify(await fresh(k1, clock, { jti: `t${i}` }));
        clock.advance(100);
      }
      expect(server.requests).toBe(1);
      expect(paths).toEqual(['/jwks']);
    });

    it('refetches after the TTL', async () => {
      serve(k1);
      const clock = new Clock();
      const verifier = remote(clock, { cacheTtlSeconds: 600 });
      await verifier.verify(await fresh(k1, clock));
      clock.advance(601);
      await verifier.verify(await fresh(k1, clock));
      expect(server.requests).toBe(2);
    });

    it('picks up a rotated key with one refetch on its unknown kid', async () => {
      serve(k1);
      const clock = new Clock();
      const verifier = remote(clock);
      await verifier.verify(await fresh(k1, clock));
      serve(k1, k2);
      clock.advance(31);
      await expect(verifier.verify(await fresh(k2, clock))).resolves.toBeDefined();
      await expect(
        verifier.verify(await fresh(k2, clock, { jti: 'again' })),
      ).resolves.toBeDefined();
      expect(server.requests).toBe(2);
    });

    it('survives a random-kid flood with at most one fetch per cooldown, known keys still working', async () => {
      serve(k1);
      const clock = new Clock();
      const verifier = remote(clock, { cooldownSeconds: 30 });
      await verifier.verify(await fresh(k1, clock));
      clock.advance(31);
      const flood = await Promise.all(
        Array.from({ length: 100 }, async (_, i) => fresh(k1, clock, {}).then((t) => ({ t, i }))),
      );
      const forged = await Promise.all(
        flood.map(({ i }) =>
          mint({ ...k1, kid: `random-${i}-${Math.random().toString(36).slice(2)}` }),
        ),
      );
      const results = await Promise.allSettled(forged.map((t) => verifier.verify(t)));
      expect(results.every((r) => r.status === 'rejected')).toBe(true);
      expect(server.requests).toBe(2);
      // Within the same cooldown, another flood costs nothing.
      await Promise.allSettled(forged.map((t) => verifier.verify(`${t}`)));
      expect(server.requests).toBe(2);
      await expect(verifier.verify(await fresh(k1, clock))).resolves.toBeDefined();
      await expectCode(verifier.verify(forged[0]!), 'token_unknown_key');
    });

    it('never fetches a URL named by jku or x5u', async () => {
      serve(k1);
      const clock = new Clock();
      const header = { jku: `${base}/evil-jwks`, x5u: `${base}/evil-cert`, kid: 'attacker' };
      const inline = createVerifier({
        issuers: [
          {
            issuer: ISSUER,
            keys: { jwks: { keys: [k1.jwk] } },
            audiences: [AUDIENCE],
            algorithms: ['ES256'],
          },
        ],
        now: clock.now,
      });
      await expectCode(inline.verify(await mint(k2, {}, header)), 'token_unknown_key');
      expect(server.requests).toBe(0);
      await expectCode(
        remote(clock, { cooldownSeconds: 1 }).verify(await mint(k2, {}, header)),
        'token_unknown_key',
      );
      expect(paths.every((p) => p === '/jwks')).toBe(true);
    });

    it('never turns a kid into a request path or query', async () => {
      serve(k1);
      const clock = new Clock();
      const verifier = remote(clock, { cooldownSeconds: 1 });
      for (const kid of [
        '../../admin/keys',
        '#frag',
        '?x=1',
        '%2e%2e/keys',
        'http://evil.example/k',
      ]) {
        clock.advance(2);
        await expectCode(verifier.verify(await mint({ ...k1, kid })), 'token_unknown_key');
      }
      expect(server.requests).toBe(5);
      expect(paths.every((p) => p === '/jwks')).toBe(true);
    });

    it('verifies fetched keys whose kids carry @, : and #, by exact match', async () => {
      const kids = [
        'bilbo.baggins@hobbiton.example',
        'urn:example:key:1',
        'did:web:idp.example#k1',
      ];
      const keys = kids.map((kid) => ({ ...k1, kid, jwk: { ...k1.jwk, kid } }));
      server.serve(keys.map((k) => k.jwk));
      const clock = new Clock();
      const verifier = remote(clock);
      for (const key of keys)
        await expect(verifier.verify(await fresh(key, clock))).resolves.toBeDefined();
      expect(server.requests).toBe(1);
    });

    it('skips a fetched key whose kid has control characters, logging no kid, and keeps the rest', async () => {
      const events: unknown[] = [];
      server.handler = (_req, res) => {
        const keys = [
          { ...k2.jwk, kid: 'k2\n{"level":"info"}' },
          { ...k2.jwk, kid: 'k 2' },
          k1.jwk,
        ];
        res.writeHead(200).end(JSON.stringify({ keys }));
      };
      const clock = new Clock();
      const verifier = remote(clock, {}, { onKeySkipped: (event) => events.push(event) });
      await expect(verifier.verify(await fresh(k1, clock))).resolves.toBeDefined();
      expect(events).toEqual([
        { issuer: ISSUER, kid: undefined, reason: 'kid has an unexpected form' },
        { issuer: ISSUER, kid: undefined, reason: 'kid has an unexpected form' },
      ]);
    });

    it('keeps serving the last good keys when the endpoint answers 500', async () => {
      serve(k1);
      const clock = new Clock();
      const verifier = remote(clock);
      await verifier.verify(await fresh(k1, clock));
      server.fail(500);
      clock.advance(700);
      await expect(verifier.verify(await fresh(k1, clock))).resolves.toBeDefined();
      expect(server.requests).toBe(2);
      // A failed refresh is retried at most once per cooldown.
      clock.advance(10);
      await expect(verifier.verify(await fresh(k1, clock))).resolves.toBeDefined();
      expect(server.requests).toBe(2);
    });

    it('keeps serving the last good keys when the connection is refused', async () => {
      const own = new JwksServer();
      const url = await own.start();
      own.serve([k1.jwk]);
      const clock = new Clock();
      const verifier = createVerifier({
        issuers: [
          {
            issuer: ISSUER,
            keys: { jwksUri: `${url}/jwks` },
            audiences: [AUDIENCE],
            algorithms: ['ES256'],
          },
        ],
        now: clock.now,
        tokenCache: false,
      });
      await verifier.verify(await fresh(k1, clock));
      await own.close();
      clock.advance(700);
      await expect(verifier.verify(await fresh(k1, clock))).resolves.toBeDefined();
    });

    it('gives up on a hanging endpoint after the timeout and serves the last good keys', async () => {
      serve(k1);
      const clock = new Clock();
      const verifier = remote(clock, { timeoutMs: 150 });
      await verifier.verify(await fresh(k1, clock));
      server.hang();
      clock.advance(700);
      const started = performance.now();
      await expect(verifier.verify(await fresh(k1, clock))).resolves.toBeDefined();
      const elapsed = performance.now() - started;
      expect(elapsed).toBeGreaterThanOrEqual(100);
      expect(elapsed).toBeLessThan(2000);
    });

    it('fails closed with keys_unavailable beyond the maximum staleness', async () => {
      serve(k1);
      const clock = new Clock();
      const verifier = remote(clock, { cacheTtlSeconds: 600, maxStaleSeconds: 3600 });
      await verifier.verify(await fresh(k1, clock));
      server.fail(503);
      clock.advance(3000);
      await expect(verifier.verify(await fresh(k1, clock))).resolves.toBeDefined();
      clock.advance(601);
      await expectCode(verifier.verify(await fresh(k1, clock)), 'keys_unavailable');
    });

    it('fails closed with keys_unavailable when no keys were ever fetched, retrying once per cooldown', async () => {
      server.fail(500);
      const clock = new Clock();
      const verifier = remote(clock, { cooldownSeconds: 30 });
      await expectCode(verifier.verify(await fresh(k1, clock)), 'keys_unavailable');
      await expectCode(verifier.verify(await fresh(k1, clock)), 'keys_unavailable');
      expect(server.requests).toBe(1);
      clock.advance(31);
      serve(k1);
      await expect(verifier.verify(await fresh(k1, clock))).resolves.toBeDefined();
      expect(server.requests).toBe(2);
    });

    it('treats a document that is not a key set as unavailable keys', async () => {
      server.handler = (_req, res) => res.writeHead(200).end('{"keys": "nope"}');
      const clock = new Clock();
      await expectCode(remote(clock).verify(await fresh(k1, clock)), 'keys_unavailable');
      server.handler = (_req, res) => res.writeHead(200).end('<html>');
      await expectCode(remote(clock).verify(await fresh(k1, clock)), 'keys_unavailable');
    });

    it('skips malformed or unsupported keys without failing the whole set', async () => {
      server.handler = (_req, res) => {
        const keys = [
          'junk',
          { kty: 'oct', k: 'c2VjcmV0', kid: 'hmac' },
          { kty: 'EC', crv: 'P-256', kid: 'no-x' },
          { kty: 'EC', crv: 'P-256', x: 'AAAA', y: 'AAAA', kid: 'bad-point' },
          { ...k2.jwk, use: 'enc' },
          { ...k2.jwk, kid: 'bad kid with spaces' },
          { kty: 'RSA', n: 'AQAB', e: 'AQAB', kid: 'tiny-rsa' },
          k1.jwk,
        ];
        res.writeHead(200).end(JSON.stringify({ keys }));
      };
      const clock = new Clock();
      const verifier = remote(clock);
      await expect(verifier.verify(await fresh(k1, clock))).resolves.toBeDefined();
      await expectCode(verifier.verify(await fresh(k2, clock)), 'token_unknown_key');
    });

    it('skips a key whose kty names an Object.prototype member, keeping the rest of the set', async () => {
      server.handler = (_req, res) => {
        const keys = ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf'].map(
          (kty, i) => ({
            kty,
            kid: `odd-${i}`,
            crv: 'P-256',
            x: 'AAAA',
            y: 'AAAA',
            n: 'AQAB',
            e: 'AQAB',
          }),
        );
        res.writeHead(200).end(JSON.stringify({ keys: [...keys, k1.jwk] }));
      };
      const clock = new Clock();
      const verifier = remote(clock);
      await expect(verifier.verify(await fresh(k1, clock))).resolves.toBeDefined();
      await expectCode(
        verifier.verify(await fresh({ ...k1, kid: 'odd-0' }, clock)),
        'token_unknown_key',
      );
    });

    it('keeps the last good keys when a refetch returns an empty or unusable key set', async () => {
      serve(k1);
      const clock = new Clock();
      const verifier = remote(clock, { cacheTtlSeconds: 600, cooldownSeconds: 30 });
      await verifier.verify(await fresh(k1, clock));
      server.handler = (_req, res) => res.writeHead(200).end('{"keys":[]}');
      clock.advance(601);
      await expect(verifier.verify(await fresh(k1, clock))).resolves.toBeDefined();
      expect(server.requests).toBe(2);
      server.handler = (_req, res) => {
        const keys = [
          { kty: 'oct', k: 'c2VjcmV0', kid: 'hmac' },
          { kty: 'EC', crv: 'P-256', x: 'AAAA', y: 'AAAA', kid: 'bad-point' },
          { ...k2.jwk, use: 'enc' },
        ];
        res.writeHead(200).end(JSON.stringify({ keys }));
      };
      clock.advance(31);
      await expect(verifier.verify(await fresh(k1, clock))).resolves.toBeDefined();
      expect(server.requests).toBe(3);
      // Still only served stale: a token for a key the unusable answer named is refused.
      await expectCode(verifier.verify(await fresh(k2, clock)), 'token_unknown_key');
    });

    describe('persistence', () => {
      const DAY = 86_400;

      function store(initial: JSONWebKeySet | PersistedJwks | null, delayMs = 0) {
        const saved: [string, JSONWebKeySet, { fetchedAt: number } | undefined][] = [];
        const loads: string[] = [];
        const persistence: JwksPersistence = {
          load: async (issuer) => {
            loads.push(issuer);
            if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
            return initial;
          },
          save: async (issuer, jwks, meta) => {
            saved.push([issuer, jwks, meta]);
          },
        };
        return { persistence, saved, loads };
      }

      it('verifies from a stored key set with zero fetches', async () => {
        serve(k1);
        const { persistence, loads } = store({ keys: [k1.jwk] });
        const clock = new Clock();
        const verifier = remote(clock, {}, { persistence });
        await expect(verifier.verify(await fresh(k1, clock))).resolves.toBeDefined();
        await expect(verifier.verify(await fresh(k1, clock, { jti: 'b' }))).resolves.toBeDefined();
        expect(server.requests).toBe(0);
        expect(loads).toEqual([ISSUER]);
      });

      it('saves the key set after a successful fetch, with its fetch time', async () => {
        serve(k1);
        const { persistence, saved } = store(null);
        const clock = new Clock();
        await remote(clock, {}, { persistence }).verify(await fresh(k1, clock));
        expect(server.requests).toBe(1);
        expect(saved).toHaveLength(1);
        expect(saved[0]![0]).toBe(ISSUER);
        expect(saved[0]![1].keys.map((k) => k.kid)).toEqual(['key-1']);
        expect(saved[0]![1].keys[0]).not.toHaveProperty('d');
        expect(saved[0]![2]).toEqual({ fetchedAt: clock.ms });
      });

      it('verifies from a stored { jwks, fetchedAt } within its TTL with zero fetches', async () => {
        serve(k1);
        const clock = new Clock();
        const { persistence } = store({ jwks: { keys: [k1.jwk] }, fetchedAt: clock.ms });
        clock.advance(300);
        const verifier = remote(clock, { cacheTtlSeconds: 600 }, { persistence });
        await expect(verifier.verify(await fresh(k1, clock))).resolves.toBeDefined();
        expect(server.requests).toBe(0);
      });

      /** A store that keeps what the verifier saves, as JwksPersistence recommends. */
      function roundTrip() {
        const entries = new Map<string, JSONWebKeySet | PersistedJwks>();
        const persistence: JwksPersistence = {
          load: async (issuer) => entries.get(issuer) ?? null,
          save: async (issuer, jwks, meta) => {
            entries.set(issuer, meta === undefined ? jwks : { jwks, fetchedAt: meta.fetchedAt });
          },
        };
        return persistence;
      }

      it('refuses a saved set older than maxStaleSeconds in an isolate started 30 days later', async () => {
        serve(k1);
        const persistence = roundTrip();
        const clock = new Clock();
        const limits = { cacheTtlSeconds: 600, maxStaleSeconds: 3600 };
        await remote(clock, limits, { persistence }).verify(await fresh(k1, clock));
        server.fail(503);
        server.requests = 0;
        clock.advance(30 * DAY);
        const later = remote(clock, limits, { persistence });
        await expectCode(later.verify(await fresh(k1, clock)), 'keys_unavailable');
        expect(server.requests).toBe(1);
      });

      it('serves a saved set in a new isolate within the bound while the endpoint fails, counted from its fetch time', async () => {
        serve(k1);
        const persistence = roundTrip();
        const clock = new Clock();
        const limits = { cacheTtlSeconds: 600, maxStaleSeconds: 3600 };
        await remote(clock, limits, { persistence }).verify(await fresh(k1, clock));
        server.fail(503);
        server.requests = 0;
        clock.advance(1800);
        const later = remote(clock, limits, { persistence });
        // Past the TTL: refetched first (failing), then served stale.
        await expect(later.verify(await fresh(k1, clock))).resolves.toBeDefined();
        expect(server.requests).toBe(1);
        // 3601 s after the original fetch (not after the load), the bound is reached.
        clock.advance(1801);
        await expectCode(later.verify(await fresh(k1, clock)), 'keys_unavailable');
        await expectCode(
          remote(clock, limits, { persistence }).verify(await fresh(k1, clock)),
          'keys_unavailable',
        );
      });

      it('counts a stored fetch time in the future as now', async () => {
        server.fail(503);
        const clock = new Clock();
        const { persistence } = store({
          jwks: { keys: [k1.jwk] },
          fetchedAt: clock.ms + 30 * DAY * 1000,
        });
        const verifier = remote(
          clock,
          { cacheTtlSeconds: 600, maxStaleSeconds: 3600 },
          { persistence },
        );
        await expect(verifier.verify(await fresh(k1, clock))).resolves.toBeDefined();
        expect(server.requests).toBe(0);
        clock.advance(3601);
        await expectCode(verifier.verify(await fresh(k1, clock)), 'keys_unavailable');
      });

      it('discards a stored entry without a usable fetch time', async () => {
        server.fail(503);
        for (const fetchedAt of ['yesterday', Number.NaN, Number.POSITIVE_INFINITY, undefined]) {
          const clock = new Clock();
          const { persistence } = store({ jwks: { keys: [k1.jwk] }, fetchedAt } as never);
          const verifier = remote(clock, {}, { persistence });
          await expectCode(verifier.verify(await fresh(k1, clock)), 'keys_unavailable');
        }
      });

      it('treats a legacy bare key set as fetched at load time (the bound then holds per isolate only)', async () => {
        server.fail(503);
        const clock = new Clock();
        const { persistence } = store({ keys: [k1.jwk] });
        clock.advance(30 * DAY);
        const verifier = remote(
          clock,
          { cacheTtlSeconds: 600, maxStaleSeconds: 3600 },
          { persistence },
        );
        await expect(verifier.verify(await fresh(k1, clock))).resolves.toBeDefined();
        expect(server.requests).toBe(0);
        clock.advance(3601);
        await expectCode(verifier.verify(await fresh(k1, clock)), 'keys_unavailable');
      });

      it('loads per request (no shared promise) when shareInFlight is false', async () => {
        serve(k1);
        const clock = new Clock();
        const token = await fresh(k1, clock);
        const unshared = store({ keys: [k1.jwk] }, 20);
        const v1 = remote(clock, {}, { persistence: unshared.persistence, shareInFlight: false });
        await Promise.all(Array.from({ length: 5 }, () => v1.verify(token)));
        expect(unshared.loads).toHaveLength(5);
        const shared = store({ keys: [k1.jwk] }, 20);
        const v2 = remote(clock, {}, { persistence: shared.persistence, shareInFlight: true });
        await Promise.all(Array.from({ length: 5 }, () => v2.verify(token)));
        expect(shared.loads).toHaveLength(1);
        expect(server.requests).toBe(0);
      });

      it('swallows errors from the hook', async () => {
        serve(k1);
        const persistence: JwksPersistence = {
          load: async () => {
            throw new Error('kv down');
          },
          save: async () => {
            throw new Error('kv down');
          },
        };
        const clock = new Clock();
        await expect(
          remote(clock, {}, { persistence }).verify(await fresh(k1, clock)),
        ).resolves.toBeDefined();
        expect(server.requests).toBe(1);
      });
    });

    it('lets concurrent requests with a rotated kid join one refetch', async () => {
      serve(k1);
      const clock = new Clock();
      const verifier = remote(clock, {}, { shareInFlight: true });
      await verifier.verify(await fresh(k1, clock));
      serve(k1, k2);
      clock.advance(31);
      const tokens = await Promise.all(
        Array.from({ length: 5 }, (_, i) => fresh(k2, clock, { jti: `${i}` })),
      );
      const results = await Promise.allSettled(tokens.map((t) => verifier.verify(t)));
      expect(results.map((r) => r.status)).toEqual(Array(5).fill('fulfilled'));
      expect(server.requests).toBe(2);
    });

    describe('concurrent cold requests', () => {
      it('share one in-flight fetch when shareInFlight is true', async () => {
        serve(k1);
        const clock = new Clock();
        const verifier = remote(clock, {}, { shareInFlight: true });
        const token = await fresh(k1, clock);
        await Promise.all(Array.from({ length: 10 }, () => verifier.verify(token)));
        expect(server.requests).toBe(1);
      });

      it('start one fetch per cooldown when shareInFlight is false; the others wait for it', async () => {
        serve(k1);
        const clock = new Clock();
        const verifier = remote(clock, {}, { shareInFlight: false });
        const token = await fresh(k1, clock);
        const results = await Promise.allSettled(
          Array.from({ length: 50 }, () => verifier.verify(token)),
        );
        expect(results.every((r) => r.status === 'fulfilled')).toBe(true);
        expect(server.requests).toBe(1);
      });

      it('bound a cold burst against a hanging endpoint to one fetch (shareInFlight false)', async () => {
        const { fetch, calls } = hangingFetch();
        const clock = new Clock();
        const verifier = remote(
          clock,
          { timeoutMs: 200, cooldownSeconds: 30 },
          { fetch, shareInFlight: false },
        );
        const started = performance.now();
        const results = await Promise.allSettled(
          Array.from({ length: 200 }, (_, i) =>
            mint({ ...k1, kid: `random-${i}` }).then((t) => verifier.verify(t)),
          ),
        );
        const elapsed = performance.now() - started;
        expect(calls()).toBe(1);
        for (const r of results) {
          expect(r.status).toBe('rejected');
          expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'keys_unavailable' });
        }
        // The waiters gave up with the fetch, not after the cooldown.
        expect(elapsed).toBeLessThan(2000);
      });

      it('fail the waiting cold requests as soon as the first fetch fails', async () => {
        let calls = 0;
        const fetch = async () => {
          calls++;
          await new Promise((r) => setTimeout(r, 30));
          return new Response('down', { status: 500 });
        };
        const clock = new Clock();
        const verifier = remote(clock, { timeoutMs: 10_000 }, { fetch, shareInFlight: false });
        const token = await fresh(k1, clock);
        const started = performance.now();
        const results = await Promise.allSettled(
          Array.from({ length: 20 }, () => verifier.verify(token)),
        );
        expect(performance.now() - started).toBeLessThan(2000);
        expect(calls).toBe(1);
        expect(results.every((r) => r.status === 'rejected')).toBe(true);
        await expectCode(verifier.verify(token), 'keys_unavailable');
        expect(calls).toBe(1);
      });

      it('wait at most about timeoutMs for a fetch that never settles, then fetch again after the cooldown', async () => {
        // A fetch whose request was cancelled (workerd) may never settle, even after its timeout.
        let calls = 0;
        let answer = false;
        const fetch = async () => {
          calls++;
          if (!answer) return new Promise<Response>(() => {});
          return new Response(JSON.stringify({ keys: [k1.jwk] }), { status: 200 });
        };
        const clock = new Clock();
        const verifier = remote(
          clock,
          { timeoutMs: 100, cooldownSeconds: 30 },
          { fetch, shareInFlight: false },
        );
        const token = await fresh(k1, clock);
        void verifier.verify(token).catch(() => {});
        const started = performance.now();
        await expectCode(verifier.verify(token), 'keys_unavailable');
        const elapsed = performance.now() - started;
        expect(elapsed).toBeGreaterThanOrEqual(90);
        expect(elapsed).toBeLessThan(1500);
        expect(calls).toBe(1);
        answer = true;
        clock.advance(30);
        await expect(verifier.verify(await fresh(k1, clock))).resolves.toBeDefined();
        expect(calls).toBe(2);
      });
    });

    it('does not share in-flight fetches by default on Cloudflare Workers', async () => {
      serve(k1);
      vi.stubGlobal('navigator', { userAgent: 'Cloudflare-Workers' });
      try {
        const clock = new Clock();
        const verifier = remote(clock);
        await verifier.verify(await fresh(k1, clock));
        serve(k1, k2);
        clock.advance(31);
        const tokens = await Promise.all(
          Array.from({ length: 5 }, (_, i) => fresh(k2, clock, { jti: `${i}` })),
        );
        // Without sharing, only the request that started the refetch sees the rotated key; the
        // others fail closed rather than await its promise (compare the shareInFlight test above).
        const results = await Promise.allSettled(tokens.map((t) => verifier.verify(t)));
        expect(results.map((r) => r.status)).toEqual([
          'fulfilled',
          'rejected',
          'rejected',
          'rejected',
          'rejected',
        ]);
        expect(server.requests).toBe(2);
      } finally {
        vi.unstubAllGlobals();
      }
    });

    it('ignores an older fetch that settles after a newer one installed keys (no rollback)', async () => {
      const answers: ((keys: unknown[]) => void)[] = [];
      const fetch = () =>
        new Promise<Response>((resolve) => {
          answers.push((keys) => resolve(new Response(JSON.stringify({ keys }), { status: 200 })));
        });
      const clock = new Clock();
      const verifier = remote(
        clock,
        { cacheTtlSeconds: 600, cooldownSeconds: 30, timeoutMs: 60_000 },
        { fetch, shareInFlight: false },
      );
      const first = verifier.verify(await fresh(k1, clock));
      await vi.waitFor(() => expect(answers).toHaveLength(1));
      answers[0]!([k1.jwk]);
      await first;
      clock.advance(601);
      // A slow refetch that will carry the pre-rotation document ...
      const slow = verifier.verify(await fresh(k1, clock));
      await vi.waitFor(() => expect(answers).toHaveLength(2));
      clock.advance(31);
      // ... overtaken by a later refetch that sees the rotation (k1 removed).
      const rotated = verifier.verify(await fresh(k2, clock));
      await vi.waitFor(() => expect(answers).toHaveLength(3));
      answers[2]!([k2.jwk]);
      await expect(rotated).resolves.toBeDefined();
      answers[1]!([k1.jwk]);
      await expectCode(slow, 'token_unknown_key');
      await expectCode(
        verifier.verify(await fresh(k1, clock, { jti: 'after' })),
        'token_unknown_key',
      );
      await expect(
        verifier.verify(await fresh(k2, clock, { jti: 'after' })),
      ).resolves.toBeDefined();
      expect(answers).toHaveLength(3);
    });

    it('uses the injected fetch', async () => {
      let calls = 0;
      const clock = new Clock();
      const verifier = remote(
        clock,
        {},
        {
          fetch: async (input) => {
            calls++;
            expect(String(input)).toBe(`${base}/jwks`);
            return new Response(JSON.stringify({ keys: [k1.jwk] }), { status: 200 });
          },
        },
      );
      await expect(verifier.verify(await fresh(k1, clock))).resolves.toBeDefined();
      expect(calls).toBe(1);
      expect(server.requests).toBe(0);
    });
  });
});
