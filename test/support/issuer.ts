/**
 * A real signing key generated per test run, and a minting helper. Works in Node and workerd
 * (Web Crypto only), so the same support serves both suites.
 */
import * as jose from 'jose';

export const ISSUER = 'https://id.gatehouse.test/';
export const AUDIENCE = 'https://api.gatehouse.test';

export interface TestIssuer {
  readonly issuer: string;
  readonly alg: string;
  readonly kid: string;
  readonly jwks: { keys: jose.JWK[] };
  /** Signs a token; `claims` override the defaults (sub alice, iss, aud, iat now, exp now + 1 h). */
  mint(claims?: Record<string, unknown>, header?: Record<string, unknown>): Promise<string>;
}

export async function createTestIssuer(
  options: { alg?: string; issuer?: string; kid?: string; now?: () => number } = {},
): Promise<TestIssuer> {
  const alg = options.alg ?? 'ES256';
  const issuer = options.issuer ?? ISSUER;
  const kid = options.kid ?? `test-${alg.toLowerCase()}`;
  const now = options.now ?? Date.now;
  const { privateKey, publicKey } = await jose.generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await jose.exportJWK(publicKey)), kid, alg, use: 'sig' };
  return {
    issuer,
    alg,
    kid,
    jwks: { keys: [jwk] },
    async mint(claims = {}, header = {}) {
      const iat = Math.floor(now() / 1000);
      const payload = { iss: issuer, aud: AUDIENCE, sub: 'alice', iat, exp: iat + 3600, ...claims };
      for (const [k, v] of Object.entries(payload)) {
        if (v === undefined) delete (payload as Record<string, unknown>)[k];
      }
      return new jose.SignJWT(payload)
        .setProtectedHeader({ alg, kid, typ: 'JWT', ...header })
        .sign(privateKey);
    },
  };
}
