/**
 * The WebCrypto backend imports keys with crypto.subtle directly (issue 10: jose's importJWK and
 * importSPKI pulled its ASN.1 and JWE helpers into the guard's bundle). These hold the checks jose
 * made on the way, each as a class: a JWK whose `ext` / `key_ops` jose refused, a key of another
 * type or curve than the algorithm, a private or secret key, and a PEM that is not an SPKI.
 */
import { exportJWK, exportSPKI, generateKeyPair } from 'jose';
import { describe, expect, it } from 'vitest';
import { ALGORITHMS } from '../../../src/token/algorithms.ts';
import type { Algorithm } from '../../../src/token/options.ts';
import { webCryptoBackend } from '../../../src/token/webcrypto.ts';

const spec = (alg: Algorithm) => ALGORITHMS.get(alg)!;

async function publicJwk(alg: Algorithm): Promise<Record<string, string>> {
  const { publicKey } = await generateKeyPair(alg, { extractable: true });
  return (await exportJWK(publicKey)) as Record<string, string>;
}

/** The public members of an EC JWK. */
function publicOf(jwk: Record<string, string>): Record<string, string> {
  return { kty: jwk.kty!, crv: jwk.crv!, x: jwk.x!, y: jwk.y! };
}

describe('webCryptoBackend.importJwk', () => {
  it.each(['RS256', 'PS384', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const)(
    'imports a %s public JWK (alg and use present) and binds it to the algorithm',
    async (alg) => {
      const jwk = { ...(await publicJwk(alg)), alg, use: 'sig' };
      expect(await webCryptoBackend.importJwk(jwk, spec(alg))).not.toBeNull();
    },
  );

  it('refuses a JWK jose refused: ext not a boolean, key_ops not an array of unique strings', async () => {
    const jwk = await publicJwk('ES256');
    for (const extra of [
      { ext: 'true' },
      { ext: 1 },
      { key_ops: 'verify' },
      { key_ops: ['verify', 'verify'] },
      { key_ops: ['verify', 7] },
      // key_ops without verify: the key is imported for verifying only, which they forbid.
      { key_ops: ['sign'] },
    ]) {
      const key = { ...jwk, ...extra } as unknown as Record<string, string>;
      expect(
        await webCryptoBackend.importJwk(key, spec('ES256')),
        JSON.stringify(extra),
      ).toBeNull();
    }
    // Well-formed ext and key_ops are no reason to refuse.
    const fine = { ...jwk, ext: true, key_ops: ['verify'] } as unknown as Record<string, string>;
    expect(await webCryptoBackend.importJwk(fine, spec('ES256'))).not.toBeNull();
  });

  it('refuses a key of another type or curve than the algorithm', async () => {
    const cases: [Algorithm, Algorithm][] = [
      ['ES256', 'ES384'],
      ['ES384', 'ES256'],
      ['ES512', 'ES256'],
      ['RS256', 'ES256'],
      ['ES256', 'RS256'],
      ['EdDSA', 'ES256'],
      ['ES256', 'EdDSA'],
    ];
    for (const [keyAlg, alg] of cases) {
      const jwk = await publicJwk(keyAlg);
      expect(
        await webCryptoBackend.importJwk(jwk, spec(alg)),
        `${keyAlg} key for ${alg}`,
      ).toBeNull();
    }
  });

  it('never verifies with a private JWK, and refuses any secret', async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const priv = (await exportJWK(privateKey)) as Record<string, string>;
    // keys.ts hands the backend public members only in the first place; the backend holds the
    // rule on its own too.
    const data = new TextEncoder().encode('a.b');
    const signature = new Uint8Array(
      await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, privateKey, data),
    );
    // A verification key is public: a JWK with private members is refused outright.
    expect(await webCryptoBackend.importJwk(priv, spec('ES256'))).toBeNull();
    const rsa = (await exportJWK(
      (
        await generateKeyPair('RS256', { extractable: true })
      ).privateKey,
    )) as Record<string, string>;
    expect(await webCryptoBackend.importJwk(rsa, spec('RS256'))).toBeNull();

    const pub = await webCryptoBackend.importJwk(publicOf(priv), spec('ES256'));
    expect(await pub?.verify(signature, data)).toBe(true);
    const oct = { kty: 'oct', k: 'c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA' };
    expect(await webCryptoBackend.importJwk(oct, spec('HS256'))).toBeNull();
    expect(await webCryptoBackend.importJwk(oct, spec('ES256'))).toBeNull();
  });
});

describe('webCryptoBackend.importSpki', () => {
  it('imports a PUBLIC KEY PEM for its algorithm, and refuses what is not one', async () => {
    const { publicKey } = await generateKeyPair('ES256', { extractable: true });
    const pem = await exportSPKI(publicKey);
    await expect(webCryptoBackend.importSpki(pem, spec('ES256'))).resolves.toBeDefined();
    const body = pem.replace(/-----(?:BEGIN|END) PUBLIC KEY-----|\s/g, '');
    for (const text of [
      body,
      `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----`,
      `-----BEGIN PUBLIC KEY-----\n${body}!!\n-----END PUBLIC KEY-----`,
      `  ${pem}`,
    ]) {
      await expect(webCryptoBackend.importSpki(text, spec('ES256'))).rejects.toThrow();
    }
    await expect(webCryptoBackend.importSpki(pem, spec('HS256'))).rejects.toThrow();
    await expect(webCryptoBackend.importSpki(pem, spec('ES384'))).rejects.toThrow();
  });
});
