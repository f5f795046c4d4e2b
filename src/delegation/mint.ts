/**
 * Signing Gatehouse delegation tokens. The header is fixed (`alg` of the current key, its `kid`,
 * `typ: gatehouse-delegation+jwt`); nothing from a request reaches it. ES256 signatures come from
 * WebCrypto in the raw `r || s` form JWS requires (RFC 7518 §3.4).
 */
import type { CryptoKey } from 'jose';
import type { Actor } from '../types.ts';
import { DELEGATION_TYPE } from './constants.ts';
import type { IssuerKey, IssuerKeySet } from './keys.ts';

/** RFC 8693 §4.1 `act`: the current actor outermost, earlier actors nested inside. */
export interface ActClaim {
  readonly sub: string;
  readonly iss?: string;
  readonly act?: ActClaim;
}

/** The claims of a delegation token. */
export interface DelegationClaims {
  readonly iss: string;
  /** The delegator: decisions are made for this subject's store record. */
  readonly sub: string;
  /** One audience, or several when the client asked for several (RFC 8693 §2.1). */
  readonly aud: string | readonly string[];
  readonly iat: number;
  readonly nbf: number;
  readonly exp: number;
  /** Token id, for audit and decision logs. */
  readonly jti: string;
  /** Space-separated permission patterns (RFC 8693 §4.2). */
  readonly scope: string;
  readonly act: ActClaim;
  /** The delegator's tenant, when there is one. */
  readonly tenant?: string;
  /** The standing grant this token was exchanged for, when there is one. */
  readonly grant?: string;
  /** When the delegator's original token was issued (see SUBJECT_IAT_CLAIM). */
  readonly subject_iat: number;
  /** Per actor (current first), when its token was issued (see ACTOR_IATS_CLAIM). */
  readonly actor_iats: readonly number[];
  /** Ids of the tokens the chain was exchanged from (see PARENTS_CLAIM). */
  readonly parents: readonly string[];
}

/** `act` from a chain, current actor first. */
export function actClaim(actors: readonly Actor[]): ActClaim {
  let claim: ActClaim | undefined;
  for (let i = actors.length - 1; i >= 0; i--) {
    const actor = actors[i]!;
    claim = {
      sub: actor.subject,
      ...(actor.issuer !== undefined && { iss: actor.issuer }),
      ...(claim !== undefined && { act: claim }),
    };
  }
  if (claim === undefined) throw new RangeError('a delegation needs at least one actor');
  return claim;
}

/** Unpadded base64url (RFC 4648 §5), as JWS compact serialization writes it. */
export function encodeBase64url(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** A random token id (128 bits, base64url). */
export function newTokenId(): string {
  return encodeBase64url(crypto.getRandomValues(new Uint8Array(16)));
}

const IMPORT_PARAMS = {
  EdDSA: { name: 'Ed25519' },
  ES256: { name: 'ECDSA', namedCurve: 'P-256' },
} as const;

const SIGN_PARAMS = {
  EdDSA: { name: 'Ed25519' },
  ES256: { name: 'ECDSA', hash: 'SHA-256' },
} as const;
export interface DelegationSigner<C extends object = DelegationClaims> {
  /** The kid that signs. */
  readonly kid: string;
  sign(claims: C): Promise<string>;
}

/**
 * Signs with the set's current key; imported once, on first use. `typ` names the kind of token
 * (delegation by default, or a signed event), so each kind is accepted only where it belongs.
 */
export function createSigner<C extends object = DelegationClaims>(
  set: IssuerKeySet,
  typ: string = DELEGATION_TYPE,
): DelegationSigner<C> {
  const key: IssuerKey = set.current;
  let imported: Promise<CryptoKey> | null = null;
  const encoder = new TextEncoder();
  return {
    kid: key.kid,
    async sign(claims) {
      // Not extractable: the private key never leaves the CryptoKey once imported.
      // Imported directly (not jose's importJWK, which bundles its ASN.1 and JWE helpers into the
      // guard Worker): the curve is bound into the key, so a JWK of another curve fails here.
      imported ??= crypto.subtle.importKey(
        'jwk',
        { ...key.privateJwk, kty: key.privateJwk.kty!, ext: false },
        IMPORT_PARAMS[key.alg],
        false,
        ['sign'],
      );
      const cryptoKey = await imported;
      const header = { alg: key.alg, kid: key.kid, typ };
      const input = `${encodeBase64url(encoder.encode(JSON.stringify(header)))}.${encodeBase64url(
        encoder.encode(JSON.stringify(claims)),
      )}`;
      const signature = await crypto.subtle.sign(
        SIGN_PARAMS[key.alg],
        cryptoKey,
        encoder.encode(input),
      );
      return `${input}.${encodeBase64url(new Uint8Array(signature))}`;
    },
  };
}
