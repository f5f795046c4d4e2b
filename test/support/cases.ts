/**
 * The shared decision table's token minting, used by every runner (core, Worker, Lambda) so
 * that all edges see the same tokens for the same case. Web Crypto only: runs in workerd too.
 */
import * as jose from 'jose';
import {
  actClaim,
  createSigner,
  DELEGATION_TYPE,
  type DelegationClaims,
  encodeBase64url,
  generateIssuerKeySet,
  parseIssuerKeys,
} from '../../src/delegation/index.ts';

export const DEMO_ISSUER = 'https://dev.gatehouse.local/';
export const DEMO_AUDIENCE = 'https://blog.gatehouse.local';
/** demo/policy.json's `delegation.issuer`. */
export const DEMO_DELEGATION_ISSUER = 'https://dev.gatehouse.local/delegation';

/**
 * A delegation token for the case's subject: `actors` current first (each of the demo issuer),
 * `scope` space-separated; `attack` makes it one of the delegation rows of SECURITY.md.
 */
export interface DelegationSpec {
  readonly actors: readonly string[];
  readonly scope: string;
  readonly attack?: 'forged-typ' | 'tampered-act' | 'foreign-key' | 'expired';
}

export interface DecisionCase {
  readonly name: string;
  readonly subject?: string;
  /**
   * How the token deviates: no token at all, expired, for another audience, tampered, or one of
   * the attacks of SECURITY.md (each must be refused end to end on every edge).
   */
  readonly token?: 'missing' | 'expired' | 'wrong-audience' | 'tampered' | Attack;
  readonly method: string;
  readonly path: string;
  readonly ip?: string;
  readonly claims?: Record<string, unknown>;
  /** The bearer is a Gatehouse delegation token (signed with the runner's generated keys). */
  readonly delegation?: DelegationSpec;
  readonly expect: { readonly allow: boolean; readonly status: number; readonly reason: string };
}

/** A fresh demo delegation key set, as the runners put it in GATEHOUSE_DELEGATION_KEYS. */
export function demoDelegationKeys(): Promise<string> {
  return generateIssuerKeySet('EdDSA');
}

async function delegationToken(
  c: DecisionCase,
  spec: DelegationSpec,
  secret: string,
  keysText: string,
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const claims: DelegationClaims = {
    iss: DEMO_DELEGATION_ISSUER,
    sub: c.subject ?? 'anonymous',
    aud: DEMO_DELEGATION_ISSUER,
    iat: spec.attack === 'expired' ? now - 400 : now,
    nbf: spec.attack === 'expired' ? now - 400 : now,
    exp: spec.attack === 'expired' ? now - 100 : now + 300,
    jti: `case-${now}`,
    scope: spec.scope,
    act: actClaim(spec.actors.map((subject) => ({ subject, issuer: DEMO_ISSUER }))),
    subject_iat: now,
    actor_iats: spec.actors.map(() => now),
    parents: [],
  };
  if (spec.attack === 'forged-typ') {
    // The identity provider's own key and issuer, with Gatehouse's token type claimed.
    return new jose.SignJWT({ ...claims, iss: DEMO_ISSUER, aud: DEMO_AUDIENCE })
      .setProtectedHeader({ alg: 'HS256', kid: 'dev', typ: DELEGATION_TYPE })
      .sign(new TextEncoder().encode(secret));
  }
  const keys =
    spec.attack === 'foreign-key'
      ? parseIssuerKeys(await generateIssuerKeySet('EdDSA'), 'foreign')
      : parseIssuerKeys(keysText, 'GATEHOUSE_DELEGATION_KEYS');
  const token = await createSigner(keys).sign(claims);
  if (spec.attack !== 'tampered-act') return token;
  const [header, , signature] = token.split('.');
  const widened = { ...claims, act: { sub: 'reporter', iss: DEMO_ISSUER, act: { sub: 'carol' } } };
  const payload = encodeBase64url(new TextEncoder().encode(JSON.stringify(widened)));
  return `${header}.${payload}.${signature}`;
}

/** Hostile tokens, signed with the real demo secret where a signature is needed. */
export type Attack =
  | 'alg-none'
  | 'alg-mismatch'
  | 'jwe'
  | 'padded'
  | 'duplicate-claim'
  | 'crit'
  | 'nested-jwt'
  | 'wrong-issuer'
  | 'not-yet-valid'
  | 'no-exp'
  | 'oversized'
  | 'kid-injection'
  | 'embedded-jwk';

const ATTACKS: ReadonlySet<string> = new Set<Attack>([
  'alg-none',
  'alg-mismatch',
  'jwe',
  'padded',
  'duplicate-claim',
  'crit',
  'nested-jwt',
  'wrong-issuer',
  'not-yet-valid',
  'no-exp',
  'oversized',
  'kid-injection',
  'embedded-jwk',
]);

const b64url = (text: string): string =>
  btoa(String.fromCharCode(...new TextEncoder().encode(text)))
    .replace(/\+/g, '-')
    .replace(/\//g, '_')
    .replace(/=+$/, '');

/** Signs raw header and payload JSON text (so duplicates and odd headers survive) with HMAC. */
async function signRaw(
  header: string,
  payload: string,
  secret: string,
  hash: string,
): Promise<string> {
  const input = `${b64url(header)}.${b64url(payload)}`;
  const key = await crypto.subtle.importKey(
    'raw',
    new TextEncoder().encode(secret),
    { name: 'HMAC', hash },
    false,
    ['sign'],
  );
  const mac = new Uint8Array(
    await crypto.subtle.sign('HMAC', key, new TextEncoder().encode(input)),
  );
  const signature = btoa(String.fromCharCode(...mac))
    .replace(/\+/g, '-')
    .replace(/\//g, '_')
    .replace(/=+$/, '');
  return `${input}.${signature}`;
}

async function attackToken(attack: Attack, subject: string, secret: string): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const claims = { iss: DEMO_ISSUER, aud: DEMO_AUDIENCE, sub: subject, iat: now, exp: now + 600 };
  const header = { alg: 'HS256', kid: 'dev', typ: 'JWT' };
  const sign = (h: object, p: object, hash = 'SHA-256') =>
    signRaw(JSON.stringify(h), JSON.stringify(p), secret, hash);
  switch (attack) {
    case 'alg-none':
      return `${b64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}.e30`;
    case 'alg-mismatch':
      return sign({ ...header, alg: 'HS512' }, claims, 'SHA-512');
    case 'jwe':
      return `${b64url(JSON.stringify({ alg: 'dir', enc: 'A256GCM' }))}.e30.AAAA.AAAA.AAAA`;
    case 'padded':
      return `${await sign(header, claims)}=`;
    case 'duplicate-claim':
      return signRaw(
        JSON.stringify(header),
        JSON.stringify(claims).replace('{', `{"sub":"carol",`),
        secret,
        'SHA-256',
      );
    case 'crit':
      return sign({ ...header, crit: ['exp'] }, claims);
    case 'nested-jwt':
      return sign({ ...header, cty: 'JWT' }, claims);
    case 'wrong-issuer':
      return sign(header, { ...claims, iss: 'https://evil.example/' });
    case 'not-yet-valid':
      return sign(header, { ...claims, nbf: now + 3600 });
    case 'no-exp': {
      const { exp: _exp, ...rest } = claims;
      return sign(header, rest);
    }
    case 'oversized':
      return sign(header, { ...claims, pad: 'x'.repeat(9000) });
    case 'kid-injection':
      return sign({ ...header, kid: "dev'; DROP TABLE keys;--" }, claims);
    case 'embedded-jwk':
      // An attacker's own key in the header: ignored, so the token must still verify against the
      // configured key, which it does not (it is signed with another secret).
      return signRaw(
        JSON.stringify({
          ...header,
          jwk: { kty: 'oct', k: b64url('attacker-secret-0123456789abcdef') },
        }),
        JSON.stringify(claims),
        'attacker-secret-0123456789abcdef',
        'SHA-256',
      );
  }
}

/**
 * The case's bearer token (HS256 with the demo secret, or a delegation token signed with
 * `delegationKeys`), or undefined for `token: missing`.
 */
export async function demoToken(
  c: DecisionCase,
  secret: string,
  delegationKeys?: string,
): Promise<string | undefined> {
  if (c.delegation !== undefined) {
    if (delegationKeys === undefined)
      throw new Error(`${c.name}: the runner passed no delegation keys`);
    return delegationToken(c, c.delegation, secret, delegationKeys);
  }
  if (c.token === 'missing') return undefined;
  if (c.token !== undefined && ATTACKS.has(c.token)) {
    return attackToken(c.token as Attack, c.subject ?? 'anonymous', secret);
  }
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
