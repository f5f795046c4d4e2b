/**
 * Weak RSA public keys (issue 9, item 1): an exponent that is even or under 3, or a modulus under
 * 2048 bits, is refused from every key source. Node's WebCrypto imports e = 1, with which anyone
 * can forge: these tests forge such tokens and show they are refused.
 */

import type { CryptoKey } from 'jose';
import * as jose from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ConfigError } from '../../../src/errors.ts';
import type { IssuerOptions, KeySkippedEvent } from '../../../src/token/index.ts';
import { rsaKeyProblem } from '../../../src/token/rsa.ts';
import {
  forgeExponentOne,
  rsaSpkiPem,
  type WeakRsaKey,
  weakRsaKey,
} from '../../support/rsa-forge.ts';
import {
  AUDIENCE,
  Clock,
  claims,
  createVerifier,
  eachBackend,
  expectCode,
  ISSUER,
  JwksServer,
  makeKey,
  mint,
  type TestKey,
} from './helpers.ts';

// base64url exponents refused: 0, 1, 2, 4, 65536, 2^64, and 1 and 2 with leading zero bytes.
const WEAK_EXPONENTS: Record<string, string> = {
  '0': 'AA',
  '1': 'AQ',
  '2': 'Ag',
  '4': 'BA',
  '65536': 'AQAA',
  '2^64 (even, larger than any machine integer)': 'AQAAAAAAAAAA',
  '1 with leading zero bytes': 'AAAAAQ',
  '2 with leading zero bytes': 'AAAC',
};

let rs256: TestKey;
let ps256: TestKey;
let weak: WeakRsaKey;

beforeAll(async () => {
  [rs256, ps256, weak] = await Promise.all([
    makeKey('RS256', 'good-rs'),
    makeKey('PS256', 'good-ps'),
    weakRsaKey('weak-e1'),
  ]);
});

function verifierFor(
  keys: IssuerOptions['keys'],
  algorithms: IssuerOptions['algorithms'],
  extra = {},
) {
  return createVerifier({
    issuers: [{ issuer: ISSUER, keys, audiences: [AUDIENCE], algorithms }],
    now: new Clock().now,
    tokenCache: false,
    ...extra,
  });
}

function configError(build: () => unknown): ConfigError {
  try {
    build();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

/** The first 128 bytes of a modulus: a 1024-bit one. */
const short1024 = (n: string | undefined) =>
  Buffer.from(n!, 'base64url').subarray(0, 128).toString('base64url');

const forged = (alg: 'RS256' | 'PS256', kid = weak.jwk.kid) =>
  forgeExponentOne(weak, alg, { typ: 'JWT', kid }, claims());

eachBackend(() => {
  describe('the forgery itself', () => {
    for (const alg of ['RS256', 'PS256'] as const) {
      it(`verifies under Node's own WebCrypto for ${alg} with e = 1 (so refusing it is our job)`, async () => {
        const params =
          alg === 'RS256'
            ? { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }
            : { name: 'RSA-PSS', hash: 'SHA-256' };
        const key = await crypto.subtle.importKey('jwk', weak.jwk, params, false, ['verify']);
        const [h, p, s] = (await forged(alg)).split('.');
        const valid = await crypto.subtle.verify(
          alg === 'RS256' ? params : { name: 'RSA-PSS', saltLength: 32 },
          key,
          Buffer.from(s!, 'base64url'),
          new TextEncoder().encode(`${h}.${p}`),
        );
        expect(valid).toBe(true);
      });
    }
  });

  describe('rsaKeyProblem', () => {
    const n2048 = new Uint8Array(256).fill(0xc5);

    for (const [name, e] of Object.entries(WEAK_EXPONENTS)) {
      it(`refuses public exponent ${name}`, () => {
        expect(rsaKeyProblem(n2048, Buffer.from(e, 'base64url'))).toBe(
          'public exponent even, under 3 or over 32 bits',
        );
      });
    }

    it('accepts 3, 65537 (also with leading zero bytes) and the largest 32-bit odd exponent', () => {
      for (const e of ['Aw', 'AQAB', 'AAAAAQAB', '_____w']) {
        expect(rsaKeyProblem(n2048, Buffer.from(e, 'base64url'))).toBeNull();
      }
    });

    it('measures the modulus in bits, ignoring leading zero bytes', () => {
      const e = Uint8Array.of(1, 0, 1);
      const padded = new Uint8Array(300);
      padded.set(new Uint8Array(255).fill(0xff), 45);
      expect(rsaKeyProblem(padded, e)).toBe('modulus under 2048 bits');
      const topBit = new Uint8Array(256);
      topBit[0] = 0x80;
      expect(rsaKeyProblem(topBit, e)).toBeNull();
      topBit[0] = 0x7f;
      expect(rsaKeyProblem(topBit, e)).toBe('modulus under 2048 bits');
    });
  });

  describe('inline JWKS', () => {
    for (const [name, e] of Object.entries(WEAK_EXPONENTS)) {
      it(`refuses to start with an RSA key whose exponent is ${name}, naming the key`, () => {
        const error = configError(() =>
          verifierFor({ jwks: { keys: [rs256.jwk, { ...weak.jwk, e }] } }, ['RS256']),
        );
        expect(error.field).toBe('issuers[0].keys.jwks.keys[1]');
        expect(error.message).not.toContain(weak.jwk.n!.slice(0, 16));
      });
    }

    for (const alg of ['RS256', 'PS256'] as const) {
      it(`never verifies a ${alg} token forged for e = 1 (it refuses the configuration)`, async () => {
        const jwk = { ...weak.jwk, alg };
        configError(() => verifierFor({ jwks: { keys: [jwk] } }, [alg]));
      });
    }

    it('refuses an RSA key with a modulus under 2048 bits', async () => {
      const jwk = { ...weak.jwk, e: 'AQAB', n: short1024(weak.jwk.n), kid: 'small' };
      const error = configError(() => verifierFor({ jwks: { keys: [rs256.jwk, jwk] } }, ['RS256']));
      expect(error.field).toBe('issuers[0].keys.jwks.keys[1]');
    });

    it('refuses n or e spelt in non-canonical base64url (what is checked is what is imported)', () => {
      for (const e of ['AQ==', 'AR', 'A Q']) {
        configError(() => verifierFor({ jwks: { keys: [{ ...rs256.jwk, e }] } }, ['RS256']));
      }
    });
  });

  describe('PEM', () => {
    for (const alg of ['RS256', 'PS256'] as const) {
      for (const [name, e] of Object.entries(WEAK_EXPONENTS)) {
        it(`refuses to start with a ${alg} PEM whose exponent is ${name}`, () => {
          const pem = rsaSpkiPem({ n: weak.jwk.n, e });
          const error = configError(() =>
            verifierFor({ publicKeyPem: pem, algorithm: alg }, [alg]),
          );
          expect(error.field).toBe('issuers[0].keys.publicKeyPem');
        });
      }
    }

    it('refuses to start with a PEM whose modulus is under 2048 bits', async () => {
      const pem = rsaSpkiPem({ n: short1024(weak.jwk.n), e: 'AQAB' });
      const error = configError(() =>
        verifierFor({ publicKeyPem: pem, algorithm: 'RS256' }, ['RS256']),
      );
      expect(error.field).toBe('issuers[0].keys.publicKeyPem');
    });

    it('refuses a non-RSA or unreadable PEM for an RSA algorithm, and PKCS#1 or certificate PEMs', async () => {
      const ec = await makeKey('ES256');
      const body = rs256.pem.split('\n').slice(1, -2).join('\n');
      for (const pem of [
        ec.pem,
        `-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----`,
        `-----BEGIN RSA PUBLIC KEY-----\n${body}\n-----END RSA PUBLIC KEY-----`,
        `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----`,
      ]) {
        const error = configError(() =>
          verifierFor({ publicKeyPem: pem, algorithm: 'RS256' }, ['RS256']),
        );
        expect(error.field).toBe('issuers[0].keys.publicKeyPem');
      }
    });

    it('still verifies with a sound RSA PEM (RS256 and PS256), e = 65537 and e = 3', async () => {
      for (const key of [rs256, ps256]) {
        const verifier = verifierFor({ publicKeyPem: key.pem, algorithm: key.alg }, [key.alg]);
        await expect(verifier.verify(await mint(key))).resolves.toBeDefined();
      }
      const pair = (await crypto.subtle.generateKey(
        {
          name: 'RSASSA-PKCS1-v1_5',
          modulusLength: 2048,
          publicExponent: Uint8Array.of(3),
          hash: 'SHA-256',
        },
        true,
        ['sign', 'verify'],
      )) as { privateKey: CryptoKey; publicKey: CryptoKey };
      const spki = Buffer.from(await crypto.subtle.exportKey('spki', pair.publicKey)).toString(
        'base64',
      );
      const pem = `-----BEGIN PUBLIC KEY-----\n${spki}\n-----END PUBLIC KEY-----`;
      const e3: TestKey = { ...rs256, privateKey: pair.privateKey, publicKey: pair.publicKey, pem };
      const verifier = verifierFor({ publicKeyPem: pem, algorithm: 'RS256' }, ['RS256']);
      await expect(verifier.verify(await mint(e3))).resolves.toBeDefined();
    });
  });

  describe('JWKS URL', () => {
    let server: JwksServer;
    let uri: string;

    beforeAll(async () => {
      server = new JwksServer();
      uri = `${await server.start()}/jwks`;
    });

    afterEach(() => {
      server.requests = 0;
      vi.restoreAllMocks();
    });

    afterAll(async () => {
      await server.close();
    });

    function remote(algorithms: IssuerOptions['algorithms'], events: KeySkippedEvent[]) {
      return verifierFor({ jwksUri: uri, cooldownSeconds: 1 }, algorithms, {
        onKeySkipped: (event: KeySkippedEvent) => events.push(event),
      });
    }

    for (const alg of ['RS256', 'PS256'] as const) {
      it(`refuses a ${alg} token forged for an e = 1 key in the set, and keeps the other keys`, async () => {
        const good = alg === 'RS256' ? rs256 : ps256;
        server.serve([good.jwk, weak.jwk]);
        const events: KeySkippedEvent[] = [];
        const verifier = remote([alg], events);
        await expectCode(verifier.verify(await forged(alg)), 'token_unknown_key');
        await expect(verifier.verify(await mint(good))).resolves.toBeDefined();
        expect(events).toEqual([
          {
            issuer: ISSUER,
            kid: 'weak-e1',
            reason: 'public exponent even, under 3 or over 32 bits',
          },
        ]);
      });
    }

    it('drops every weak exponent and modulus from a fetched set, keeping the sound keys', async () => {
      const weakKeys = Object.values(WEAK_EXPONENTS).map((e, i) => ({
        ...weak.jwk,
        e,
        kid: `w${i}`,
      }));
      const short = { ...weak.jwk, e: 'AQAB', n: short1024(weak.jwk.n), kid: 'short' };
      server.serve([...weakKeys, short, rs256.jwk]);
      const events: KeySkippedEvent[] = [];
      const verifier = remote(['RS256'], events);
      await expect(verifier.verify(await mint(rs256))).resolves.toBeDefined();
      expect(events.map((e) => e.kid)).toEqual([...weakKeys.map((k) => k.kid), 'short']);
      expect(events.at(-1)?.reason).toBe('modulus under 2048 bits');
    });

    it('drops a weak key that arrives with a rotation, logs its kid once, and keeps the others', async () => {
      server.serve([rs256.jwk]);
      const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
      const clock = new Clock();
      const verifier = verifierFor({ jwksUri: uri, cooldownSeconds: 1 }, ['RS256'], {
        now: clock.now,
      });
      await expect(verifier.verify(await mint(rs256))).resolves.toBeDefined();
      expect(warn).not.toHaveBeenCalled();

      server.serve([rs256.jwk, weak.jwk]);
      clock.advance(2);
      // The forged token's unknown kid causes the refetch that brings the weak key in.
      await expectCode(verifier.verify(await forged('RS256')), 'token_unknown_key');
      expect(server.requests).toBe(2);
      await expect(verifier.verify(await mint(rs256))).resolves.toBeDefined();
      expect(warn).toHaveBeenCalledTimes(1);
      const line = String(warn.mock.calls[0]![0]);
      expect(JSON.parse(line)).toEqual({
        level: 'warn',
        type: 'gatehouse.jwks_key_skipped',
        issuer: ISSUER,
        kid: 'weak-e1',
        reason: 'public exponent even, under 3 or over 32 bits',
      });
      expect(line).not.toContain(weak.jwk.n!.slice(0, 16));
    });

    it('does not persist a weak key, and drops one found in a persisted set', async () => {
      const saved: unknown[] = [];
      const persistence = {
        load: async () => ({ jwks: { keys: [weak.jwk, rs256.jwk] }, fetchedAt: Date.now() }),
        save: async (_issuer: string, jwks: unknown) => {
          saved.push(jwks);
        },
      };
      const events: KeySkippedEvent[] = [];
      const fromStore = verifierFor({ jwksUri: uri }, ['RS256'], {
        persistence,
        onKeySkipped: (event: KeySkippedEvent) => events.push(event),
      });
      await expectCode(fromStore.verify(await forged('RS256')), 'token_unknown_key');
      await expect(fromStore.verify(await mint(rs256))).resolves.toBeDefined();
      expect(events.map((e) => e.kid)).toContain('weak-e1');

      server.serve([weak.jwk, rs256.jwk]);
      const fetched = verifierFor({ jwksUri: uri }, ['RS256'], {
        persistence: { load: async () => undefined, save: persistence.save },
        onKeySkipped: null,
      });
      await expect(fetched.verify(await mint(rs256))).resolves.toBeDefined();
      expect(JSON.stringify(saved)).not.toContain('weak-e1');
      expect(JSON.stringify(saved)).toContain(rs256.kid);
    });
  });

  describe('an exponent that acts as e = 1 without being 1', () => {
    const toBigInt = (b64: string) => BigInt(`0x${Buffer.from(b64, 'base64url').toString('hex')}`);
    const toBytes = (x: bigint) => {
      const hex = x.toString(16);
      return new Uint8Array(Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex'));
    };
    const gcd = (a: bigint, b: bigint): bigint => (b === 0n ? a : gcd(b, a % b));

    it('refuses e = lcm(p-1, q-1) + 1, under which every signature is its own message', async () => {
      const { privateKey } = await jose.generateKeyPair('RS256', {
        extractable: true,
        modulusLength: 2048,
      });
      const jwk = await jose.exportJWK(privateKey);
      const p = toBigInt(jwk.p as string);
      const q = toBigInt(jwk.q as string);
      const lambda = ((p - 1n) * (q - 1n)) / gcd(p - 1n, q - 1n);
      const n = new Uint8Array(Buffer.from(jwk.n as string, 'base64url'));
      expect(rsaKeyProblem(n, toBytes(lambda + 1n))).toBe(
        'public exponent even, under 3 or over 32 bits',
      );
      expect(rsaKeyProblem(n, toBytes(65537n))).toBeNull();
      expect(rsaKeyProblem(n, toBytes(2n ** 32n - 1n))).toBeNull();
      expect(rsaKeyProblem(n, toBytes(2n ** 32n + 1n))).not.toBeNull();
    });
  });
});
