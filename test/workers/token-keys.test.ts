/**
 * Issue 9, items 1 and 4 inside workerd: weak RSA keys are refused by our own rule on every
 * source (workerd happens to refuse e = 1 on import, but the rule must not depend on that), and
 * key ids follow the same visible-ASCII rule as on Node.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { ConfigError, TokenError } from '../../src/errors.ts';
import { createVerifier, type IssuerOptions, type KeySkippedEvent } from '../../src/token/index.ts';
import { detectBackend } from '../../src/token/signature.ts';
import { AUDIENCE, createTestIssuer, type TestIssuer } from '../support/issuer.ts';
import { forgeExponentOne, rsaSpkiPem, type WeakRsaKey, weakRsaKey } from '../support/rsa-forge.ts';

const ISSUER = 'https://id.gatehouse.test/';

let rs256: TestIssuer;
let ps256: TestIssuer;
let weak: WeakRsaKey;

beforeAll(async () => {
  [rs256, ps256, weak] = await Promise.all([
    createTestIssuer({ alg: 'RS256', kid: 'good-rs' }),
    createTestIssuer({ alg: 'PS256', kid: 'good-ps' }),
    weakRsaKey('weak-e1'),
  ]);
});

describe('signature backend', () => {
  // Issue 11: Node verifies with node:crypto; workerd keeps WebCrypto, even though the test pool
  // runs it with nodejs_compat (which offers a node:crypto), so this suite tests that path.
  it('is WebCrypto inside workerd', () => {
    expect(detectBackend().name).toBe('webcrypto');
  });
});

function verifierFor(
  keys: IssuerOptions['keys'],
  algorithms: IssuerOptions['algorithms'],
  onKeySkipped: ((event: KeySkippedEvent) => void) | null = null,
) {
  return createVerifier({
    issuers: [{ issuer: ISSUER, keys, audiences: [AUDIENCE], algorithms }],
    tokenCache: false,
    onKeySkipped,
  });
}

function configField(build: () => unknown): string {
  try {
    build();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).field;
  }
  throw new Error('expected a ConfigError');
}

async function tokenCode(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(TokenError);
  return (error as TokenError).code;
}

/** The first 128 bytes of a base64url modulus: a 1024-bit one. */
function short1024(n: string | undefined): string {
  const binary = atob(n!.replace(/-/g, '+').replace(/_/g, '/')).slice(0, 128);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function forged(alg: 'RS256' | 'PS256'): Promise<string> {
  const iat = Math.floor(Date.now() / 1000);
  const claims = { iss: ISSUER, aud: AUDIENCE, sub: 'mallory', iat, exp: iat + 600 };
  return forgeExponentOne(weak, alg, { typ: 'JWT', kid: weak.jwk.kid }, claims);
}

async function serve(name: string, keys: unknown[]): Promise<string> {
  const base = inject('jwksBaseUrl');
  const response = await fetch(`${base}/admin/${name}`, {
    method: 'PUT',
    body: JSON.stringify({ keys }),
  });
  expect(response.status).toBe(204);
  return `${base}/jwks/${name}`;
}

describe('weak RSA keys in workerd', () => {
  it('refuses to start with an inline key whose exponent is 1, 2, even or under 3 with leading zeros', () => {
    for (const e of ['AQ', 'Ag', 'AQAA', 'AAAAAQ', 'AQAAAAAAAAAA']) {
      const keys = { jwks: { keys: [rs256.jwks.keys[0]!, { ...weak.jwk, e }] } };
      expect(configField(() => verifierFor(keys, ['RS256']))).toBe('issuers[0].keys.jwks.keys[1]');
    }
  });

  it('refuses to start with a PEM whose exponent is 1 or whose modulus is under 2048 bits', () => {
    for (const alg of ['RS256', 'PS256'] as const) {
      for (const key of [
        { n: weak.jwk.n, e: 'AQ' },
        { n: short1024(weak.jwk.n), e: 'AQAB' },
      ]) {
        const pem = rsaSpkiPem(key);
        expect(configField(() => verifierFor({ publicKeyPem: pem, algorithm: alg }, [alg]))).toBe(
          'issuers[0].keys.publicKeyPem',
        );
      }
    }
  });

  it('refuses to start with an inline RSA key under 2048 bits', () => {
    const small = { ...weak.jwk, e: 'AQAB', n: short1024(weak.jwk.n) };
    expect(configField(() => verifierFor({ jwks: { keys: [small] } }, ['RS256']))).toBe(
      'issuers[0].keys.jwks.keys[0]',
    );
  });

  for (const [alg, good] of [
    ['RS256', () => rs256],
    ['PS256', () => ps256],
  ] as const) {
    it(`drops an e = 1 key and a 1024-bit key from a fetched ${alg} set, refuses the forgery, keeps the rest`, async () => {
      const issuer = good();
      const small = { ...weak.jwk, e: 'AQAB', n: short1024(weak.jwk.n), kid: 'small' };
      const uri = await serve(`weak-${alg}`, [weak.jwk, small, issuer.jwks.keys[0]]);
      const events: KeySkippedEvent[] = [];
      const verifier = verifierFor({ jwksUri: uri }, [alg], (event) => events.push(event));
      const minted = await issuer.mint({ iss: ISSUER });
      await expect(verifier.verify(minted)).resolves.toBeDefined();
      expect(await tokenCode(verifier.verify(await forged(alg)))).toBe('token_unknown_key');
      expect(events).toEqual([
        { issuer: ISSUER, kid: 'weak-e1', reason: 'public exponent even, under 3 or over 32 bits' },
        { issuer: ISSUER, kid: 'small', reason: 'modulus under 2048 bits' },
      ]);
    });
  }
});

describe('kid in workerd', () => {
  it("verifies RFC 7520's example kid and kids with : and #, by exact match", async () => {
    for (const kid of [
      'bilbo.baggins@hobbiton.example',
      'did:web:id.gatehouse.test#key-1',
      'urn:x:1',
    ]) {
      const issuer = await createTestIssuer({ issuer: ISSUER, kid });
      const verifier = verifierFor({ jwks: issuer.jwks }, ['ES256']);
      await expect(verifier.verify(await issuer.mint())).resolves.toBeDefined();
      expect(await tokenCode(verifier.verify(await issuer.mint({}, { kid: `${kid}#` })))).toBe(
        'token_unknown_key',
      );
    }
  });

  it('refuses kids with control characters, whitespace, non-ASCII or over 256 characters', async () => {
    const issuer = await createTestIssuer({ issuer: ISSUER, kid: 'k1' });
    const verifier = verifierFor({ jwks: issuer.jwks }, ['ES256']);
    for (const kid of ['k1\n', 'k 1', 'k\u00001', 'clé', 'k'.repeat(257)]) {
      expect(await tokenCode(verifier.verify(await issuer.mint({}, { kid })))).toBe(
        'token_malformed',
      );
    }
  });
});
