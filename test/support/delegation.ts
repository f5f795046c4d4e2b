/**
 * Delegation test support: a real Gatehouse key set generated per run, a policy with a
 * `delegation` section, and raw signing with the issuer's private key so tests can craft tokens
 * the endpoint would never mint (wrong typ, deep chains, tampered claims). Web Crypto only, so
 * Node and workerd suites share it.
 */
import {
  actClaim,
  createSigner,
  type DelegationClaims,
  encodeBase64url,
  generateIssuerKeySet,
  type IssuerAlgorithm,
  type IssuerKeySet,
  parseIssuerKeys,
} from '../../src/delegation/index.ts';
import type { PolicyDocument } from '../../src/policy/schema.ts';
import type { Actor } from '../../src/types.ts';
import { AUDIENCE, type TestIssuer } from './issuer.ts';

export const SELF_ISSUER = 'https://gatehouse.test/delegation';
export const KEYS_ENV = 'GATEHOUSE_DELEGATION_KEYS';

export interface TestKeys {
  readonly text: string;
  readonly set: IssuerKeySet;
}

export async function makeKeys(alg: IssuerAlgorithm = 'EdDSA'): Promise<TestKeys> {
  const text = await generateIssuerKeySet(alg);
  return { text, set: parseIssuerKeys(text, KEYS_ENV) };
}

/**
 * A blog-like policy: `reporter` may act for anyone with at most `read:*`; `exporter` for anyone
 * with at most `read:posts:*`, `read:reports`; `/admin` refuses delegated callers.
 */
export function delegationPolicy(
  idp: TestIssuer,
  extra: Partial<PolicyDocument> = {},
  delegation: Partial<NonNullable<PolicyDocument['delegation']>> = {},
): PolicyDocument {
  return {
    version: 1,
    issuers: [
      {
        issuer: idp.issuer,
        audiences: [AUDIENCE],
        algorithms: ['ES256'],
        keys: { jwks: idp.jwks },
      },
    ],
    cache: { ttlSeconds: 30 },
    roles: {
      reader: { grants: ['read:*'] },
      writer: { inherits: ['reader'], grants: ['write:*'] },
    },
    routes: [
      { method: 'GET', path: '/me', authenticated: true },
      { method: 'GET', path: '/posts/:id', require: ['read:posts:{id}'] },
      { method: 'PUT', path: '/posts/:id', require: ['write:posts:{id}'] },
      { method: 'GET', path: '/reports', require: ['read:reports'] },
      { method: 'GET', path: '/either', anyOf: ['read:reports', 'write:reports'] },
      { method: 'GET', path: '/admin', require: ['read:admin'], delegated: false },
    ],
    delegation: {
      issuer: SELF_ISSUER,
      actors: [
        { subject: 'reporter', issuer: idp.issuer, for: ['*'], ceiling: ['read:*'] },
        { subject: 'exporter', for: ['*'], ceiling: ['read:posts:*', 'read:reports'] },
        { subject: 'auditor', for: ['*'], ceiling: ['read:*'] },
      ],
      ...delegation,
    },
    ...extra,
  };
}

/** Claims of a delegation token for `sub` acted on by `actors` (current first). */
export function delegationClaims(
  nowMs: number,
  sub: string,
  actors: readonly Actor[],
  scope: string,
  extra: Partial<Record<keyof DelegationClaims | string, unknown>> = {},
): Record<string, unknown> {
  const iat = Math.floor(nowMs / 1000);
  return {
    iss: SELF_ISSUER,
    sub,
    aud: SELF_ISSUER,
    iat,
    nbf: iat,
    exp: iat + 300,
    jti: `t-${iat}-${sub}`,
    scope,
    act: actClaim(actors),
    subject_iat: iat,
    actor_iats: actors.map(() => iat),
    parents: [],
    ...extra,
  };
}

/** Signs with the set's current key through the production signer. */
export function signDelegation(keys: TestKeys, claims: Record<string, unknown>): Promise<string> {
  return createSigner(keys.set).sign(claims as unknown as DelegationClaims);
}

const encoder = new TextEncoder();

/** Signs any header and payload with the current private key (for crafted tokens). */
export async function signRaw(
  keys: TestKeys,
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
): Promise<string> {
  const key = keys.set.current;
  const params =
    key.alg === 'EdDSA'
      ? { name: 'Ed25519' }
      : { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const cryptoKey = await crypto.subtle.importKey(
    'jwk',
    // A private JWK; `never` because the Workers and Node type libraries name JsonWebKey apart.
    { ...key.privateJwk } as never,
    params,
    false,
    ['sign'],
  );
  const input = `${encodeBase64url(encoder.encode(JSON.stringify(header)))}.${encodeBase64url(
    encoder.encode(JSON.stringify(payload)),
  )}`;
  const signature = await crypto.subtle.sign(params, cryptoKey, encoder.encode(input));
  return `${input}.${encodeBase64url(new Uint8Array(signature))}`;
}

export const REPORTER = (idp: TestIssuer): Actor => ({ subject: 'reporter', issuer: idp.issuer });
