/**
 * The shared decision table's token minting, used by every runner (core, Worker, Lambda) so
 * that all edges see the same tokens for the same case. Web Crypto only: runs in workerd too.
 */
import * as jose from 'jose';

export const DEMO_ISSUER = 'https://dev.gatehouse.local/';
export const DEMO_AUDIENCE = 'https://blog.gatehouse.local';

export interface DecisionCase {
  readonly name: string;
  readonly subject?: string;
  /** How the token deviates: no token at all, expired, for another audience, tampered. */
  readonly token?: 'missing' | 'expired' | 'wrong-audience' | 'tampered';
  readonly method: string;
  readonly path: string;
  readonly ip?: string;
  readonly claims?: Record<string, unknown>;
  readonly expect: { readonly allow: boolean; readonly status: number; readonly reason: string };
}

/** The case's bearer token (HS256 with the demo secret), or undefined for `token: missing`. */
export async function demoToken(c: DecisionCase, secret: string): Promise<string | undefined> {
  if (c.token === 'missing') return undefined;
  const now = Math.floor(Date.now() / 1000);
  const token = await new jose.SignJWT({ ...c.claims })
    .setProtectedHeader({ alg: 'HS256', kid: 'dev', typ: 'JWT' })
    .setIssuer(DEMO_ISSUER)
    .setAudience(c.token === 'wrong-audience' ? 'https://elsewhere.example' : DEMO_AUDIENCE)
    .setSubject(c.subject ?? 'anonymous')
    .setIssuedAt(c.token === 'expired' ? now - 7200 : now)
    .setExpirationTime(c.token === 'expired' ? now - 3600 : now + 600)
    .sign(new TextEncoder().encode(secret));
  if (c.token !== 'tampered') return token;
  const [header, payload, signature] = token.split('.');
  const flipped = `${signature!.startsWith('A') ? 'B' : 'A'}${signature!.slice(1)}`;
  return `${header}.${payload}.${flipped}`;
}
