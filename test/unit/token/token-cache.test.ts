import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { VerifierOptions } from '../../../src/token/index.ts';
import { createVerifierWith } from '../../../src/token/verifier.ts';
import {
  AUDIENCE,
  Clock,
  countingBackend,
  createVerifier,
  eachBackend,
  expectCode,
  ISSUER,
  issuerWith,
  JwksServer,
  makeKey,
  mint,
  NOW_S,
  options,
  type TestKey,
} from './helpers.ts';

let key: TestKey;

beforeAll(async () => {
  key = await makeKey('ES256');
});

afterEach(() => {
  vi.restoreAllMocks();
});

function verifier(clock: Clock, extra: Partial<VerifierOptions> = {}) {
  return createVerifier(options([issuerWith(key)], clock, extra));
}

/** Verifies `token` twice: a token is cached from its second verification (admission). */
async function admit(v: { verify(token: string): Promise<unknown> }, token: string): Promise<void> {
  await v.verify(token);
  await v.verify(token);
}

eachBackend((backend) => {
  describe('verified-token cache', () => {
    it('answers a repeated token from the cache without crypto or JSON parsing', async () => {
      const counted = countingBackend(backend);
      const v = createVerifierWith(options([issuerWith(key)], new Clock()), counted);
      const token = await mint(key);
      const first = await v.verify(token);
      const second = await v.verify(token);
      const parseSpy = vi.spyOn(JSON, 'parse');
      const third = await v.verify(token);
      expect([first.cache, second.cache, third.cache]).toEqual(['miss', 'miss', 'hit']);
      expect(third.principal).toBe(second.principal);
      expect(counted.verifies).toBe(2);
      expect(parseSpy).not.toHaveBeenCalled();
    });

    it('caches a token from its second use, not its first (a one-off token is never kept)', async () => {
      const counted = countingBackend(backend);
      const v = createVerifierWith(options([issuerWith(key)], new Clock()), counted);
      const tokens = await Promise.all(['x', 'y', 'z'].map((jti) => mint(key, { jti })));
      for (const token of tokens) expect((await v.verify(token)).cache).toBe('miss');
      expect(counted.verifies).toBe(3);
      for (const token of tokens) expect((await v.verify(token)).cache).toBe('miss');
      for (const token of tokens) expect((await v.verify(token)).cache).toBe('hit');
      expect(counted.verifies).toBe(6);
    });

    it('answers cached() synchronously exactly when verify would answer from the cache', async () => {
      const clock = new Clock();
      const v = verifier(clock);
      const token = await mint(key, { exp: NOW_S + 120 });
      expect(v.cached?.(token)).toBeUndefined();
      await v.verify(token);
      expect(v.cached?.(token)).toBeUndefined();
      await v.verify(token);
      const hit = v.cached?.(token);
      expect(hit?.cache).toBe('hit');
      expect(hit?.principal).toBe((await v.verify(token)).principal);
      // A different string (one more character) is never a hit, whatever its hash.
      expect(v.cached?.(`${token}A`)).toBeUndefined();
      // Past exp (+ leeway) the cache no longer answers, and verify refuses.
      clock.advance(10_000);
      expect(v.cached?.(token)).toBeUndefined();
      await expectCode(v.verify(token), 'token_expired');
    });

    it('a miss in cached() skips only that token’s second lookup, for that one verify', async () => {
      const counted = countingBackend(backend);
      const v = createVerifierWith(options([issuerWith(key)], new Clock()), counted);
      const [hot, cold] = await Promise.all(['hot', 'cold'].map((jti) => mint(key, { jti })));
      await admit(v, hot!);
      expect(counted.verifies).toBe(2);
      // decide() asks cached() and, on a miss, verify(): a cached token verified by another
      // caller in between still answers from the cache, and the miss marker is spent once.
      expect(v.cached?.(cold!)).toBeUndefined();
      expect((await v.verify(hot!)).cache).toBe('hit');
      expect((await v.verify(cold!)).cache).toBe('miss');
      expect(v.cached?.(hot!)?.cache).toBe('hit');
      expect((await v.verify(hot!)).cache).toBe('hit');
      expect(counted.verifies).toBe(3);
    });

    it('keeps a repeated token cached through a stream of one-off tokens', async () => {
      const clock = new Clock();
      const v = verifier(clock, { tokenCache: { maxEntries: 2 } });
      const hot = await mint(key, { jti: 'hot' });
      await admit(v, hot);
      for (let i = 0; i < 20; i++) await v.verify(await mint(key, { jti: `once-${i}` }));
      expect((await v.verify(hot)).cache).toBe('hit');
    });

    it('does not cache failures', async () => {
      const clock = new Clock();
      const v = verifier(clock);
      const token = await mint(key, { aud: 'other' });
      await expectCode(v.verify(token), 'token_invalid_audience');
      await expectCode(v.verify(token), 'token_invalid_audience');
    });

    it('expires an entry at exp + leeway', async () => {
      const clock = new Clock();
      const v = verifier(clock);
      const token = await mint(key, { exp: NOW_S + 60 });
      await admit(v, token);
      clock.advance(89.999);
      expect((await v.verify(token)).cache).toBe('hit');
      clock.advance(0.001);
      await expectCode(v.verify(token), 'token_expired');
    });

    it('expires an entry at its maximum-age deadline', async () => {
      const clock = new Clock();
      const v = createVerifier(
        options([issuerWith(key, { maxAgeSeconds: 120 })], clock, { leewaySeconds: 0 }),
      );
      const token = await mint(key);
      await admit(v, token);
      clock.advance(119);
      expect((await v.verify(token)).cache).toBe('hit');
      clock.advance(1);
      await expectCode(v.verify(token), 'token_too_old');
    });

    it('evicts the least recently used entry beyond maxEntries', async () => {
      const clock = new Clock();
      const v = verifier(clock, { tokenCache: { maxEntries: 2 } });
      const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((jti) => mint(key, { jti })));
      await admit(v, a!);
      await admit(v, b!);
      expect((await v.verify(a!)).cache).toBe('hit');
      await admit(v, c!);
      expect((await v.verify(a!)).cache).toBe('hit');
      expect((await v.verify(c!)).cache).toBe('hit');
      expect((await v.verify(b!)).cache).toBe('miss');
    });

    it('never answers a different token from the cache, even one sharing its signature', async () => {
      const clock = new Clock();
      const v = verifier(clock);
      const genuine = await mint(key, { sub: 'alice' });
      await admit(v, genuine);
      const [header, , signature] = genuine.split('.');
      const other = await mint(key, { sub: 'mallory' });
      const forged = `${header}.${other.split('.')[1]}.${signature}`;
      await expectCode(v.verify(forged), 'token_invalid_signature');
      expect((await v.verify(genuine)).principal.subject).toBe('alice');
    });

    it('is off with tokenCache: false', async () => {
      const clock = new Clock();
      const v = verifier(clock, { tokenCache: false });
      const token = await mint(key);
      await admit(v, token);
      expect((await v.verify(token)).cache).toBe('miss');
    });

    describe('with a remote key set', () => {
      let server: JwksServer;
      let url: string;
      let k2: TestKey;

      beforeAll(async () => {
        server = new JwksServer();
        url = await server.start();
        k2 = await makeKey('ES256', 'key-2');
      });

      afterAll(async () => {
        await server.close();
      });

      function remote(clock: Clock) {
        return createVerifier({
          issuers: [
            {
              issuer: ISSUER,
              keys: { jwksUri: `${url}/jwks`, cooldownSeconds: 1, cacheTtlSeconds: 600 },
              audiences: [AUDIENCE],
              algorithms: ['ES256'],
            },
          ],
          now: clock.now,
        });
      }

      it('voids cached tokens when the key set changes (key removed in a rotation)', async () => {
        server.serve([key.jwk]);
        const clock = new Clock();
        const v = remote(clock);
        const old = await mint(key);
        await admit(v, old);
        expect((await v.verify(old)).cache).toBe('hit');
        server.serve([k2.jwk]);
        clock.advance(1);
        // A token with the new kid triggers the refetch that changes the key-set version.
        await v.verify(await mint(k2));
        await expectCode(v.verify(old), 'token_unknown_key');
      });

      it('keeps cached tokens when a refetch returns the same keys', async () => {
        server.serve([key.jwk]);
        const clock = new Clock();
        const v = remote(clock);
        const token = await mint(key);
        await admit(v, token);
        clock.advance(1);
        await expectCode(v.verify(await mint(k2)), 'token_unknown_key');
        expect(server.requests).toBeGreaterThanOrEqual(2);
        expect((await v.verify(token)).cache).toBe('hit');
      });

      it('re-verifies cached tokens once the key set is due for refresh', async () => {
        server.serve([key.jwk]);
        const clock = new Clock();
        const v = remote(clock);
        const token = await mint(key);
        await admit(v, token);
        clock.advance(599);
        expect((await v.verify(token)).cache).toBe('hit');
        server.serve([k2.jwk]);
        clock.advance(1);
        await expectCode(v.verify(token), 'token_unknown_key');
      });
    });
  });
});
