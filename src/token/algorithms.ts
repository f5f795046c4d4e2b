/**
 * The algorithm table: what each supported JWS algorithm needs from a key, the exact
 * signature shape to demand before any crypto, and the WebCrypto parameters to verify with
 * (signature.ts maps the same table onto node:crypto).
 */
import type { Algorithm } from './options.ts';

export type VerifyParams = Parameters<typeof crypto.subtle.verify>[0];

export interface AlgorithmSpec {
  readonly alg: Algorithm;
  readonly kty: 'RSA' | 'EC' | 'OKP' | 'oct';
  /** The only curve this algorithm accepts (EC, OKP). */
  readonly crv?: string;
  /** Exact signature length, bytes; 0 means "the RSA modulus length" (RFC 7518 §3.3, §3.5). */
  readonly signatureLength: number;
  /** Hash output, bytes: the minimum HMAC secret (RFC 7518 §3.2) and the PSS salt length. */
  readonly hashBytes: number;
  readonly hash: 'SHA-256' | 'SHA-384' | 'SHA-512';
  readonly verifyParams: VerifyParams;
  /** ECDSA group order n, big-endian, same width as r and s. */
  readonly order?: Uint8Array;
}

function hex(text: string): Uint8Array {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

// Group orders from SEC 2 / FIPS 186-4 §D.1.2. A valid ECDSA signature has 0 < r, s < n.
const P256_ORDER = hex('ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');
const P384_ORDER = hex(
  'ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973',
);
const P521_ORDER = hex(
  '01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409',
);

type Hash = AlgorithmSpec['hash'];
const bytesOf = (hash: Hash): number => Number(hash.slice(4)) / 8;

function hmac(alg: Algorithm, hash: Hash): AlgorithmSpec {
  const n = bytesOf(hash);
  return {
    alg,
    kty: 'oct',
    signatureLength: n,
    hashBytes: n,
    hash,
    verifyParams: { name: 'HMAC' },
  };
}

function rsa(alg: Algorithm, hash: Hash, pss: boolean): AlgorithmSpec {
  const n = bytesOf(hash);
  // RFC 7518 §3.5: PSS salt length equals the hash output length.
  const verifyParams = pss ? { name: 'RSA-PSS', saltLength: n } : { name: 'RSASSA-PKCS1-v1_5' };
  return { alg, kty: 'RSA', signatureLength: 0, hashBytes: n, hash, verifyParams };
}

function ecdsa(alg: Algorithm, hash: Hash, crv: string, order: Uint8Array): AlgorithmSpec {
  // RFC 7518 §3.4: the JWS signature is raw r || s, each the width of the group order; a DER
  // signature has a different length and is refused before crypto.
  return {
    alg,
    kty: 'EC',
    crv,
    signatureLength: order.length * 2,
    hashBytes: bytesOf(hash),
    hash,
    verifyParams: { name: 'ECDSA', hash },
    order,
  };
}

const EDDSA: AlgorithmSpec = {
  alg: 'EdDSA',
  kty: 'OKP',
  crv: 'Ed25519',
  signatureLength: 64,
  hashBytes: 64,
  hash: 'SHA-512',
  verifyParams: { name: 'Ed25519' },
};

/** Every accepted algorithm name; `Ed25519` maps to the EdDSA spec (see canonicalAlgorithm). */
export const ALGORITHMS: ReadonlyMap<Algorithm, AlgorithmSpec> = new Map<Algorithm, AlgorithmSpec>([
  ['RS256', rsa('RS256', 'SHA-256', false)],
  ['RS384', rsa('RS384', 'SHA-384', false)],
  ['RS512', rsa('RS512', 'SHA-512', false)],
  ['PS256', rsa('PS256', 'SHA-256', true)],
  ['PS384', rsa('PS384', 'SHA-384', true)],
  ['PS512', rsa('PS512', 'SHA-512', true)],
  ['ES256', ecdsa('ES256', 'SHA-256', 'P-256', P256_ORDER)],
  ['ES384', ecdsa('ES384', 'SHA-384', 'P-384', P384_ORDER)],
  ['ES512', ecdsa('ES512', 'SHA-512', 'P-521', P521_ORDER)],
  ['EdDSA', EDDSA],
  // Same algorithm, fully specified name (RFC 9864); the key binding stays EdDSA.
  ['Ed25519', EDDSA],
  ['HS256', hmac('HS256', 'SHA-256')],
  ['HS384', hmac('HS384', 'SHA-384')],
  ['HS512', hmac('HS512', 'SHA-512')],
]);

/**
 * Maps an algorithm name to the one a key is bound to, or undefined. `Ed25519` (the fully
 * specified name from RFC 9864) is the same algorithm as `EdDSA` over an Ed25519 key, the only
 * EdDSA curve we accept. Used for key binding only: a header `alg` is first compared exactly
 * with the issuer's configured names, so `Ed25519` in a header needs `Ed25519` in the allowlist.
 */
export function canonicalAlgorithm(alg: unknown): Algorithm | undefined {
  if (typeof alg !== 'string') return undefined;
  if (alg === 'Ed25519') return 'EdDSA';
  return ALGORITHMS.has(alg as Algorithm) ? (alg as Algorithm) : undefined;
}

export function isHmac(alg: Algorithm): boolean {
  return alg === 'HS256' || alg === 'HS384' || alg === 'HS512';
}

/** Minimum RSA modulus, bits (RFC 7518 §3.3, §3.5). */
export const MIN_RSA_BITS = 2048;

/** Whether a JWK of this kty/crv can carry `spec`'s algorithm. */
export function keyFits(spec: AlgorithmSpec, kty: string, crv: unknown): boolean {
  return spec.kty === kty && (spec.crv === undefined || spec.crv === crv);
}

/** 0 < value < order, both big-endian of equal width, value read from `bytes` at `offset`. */
function inRange(bytes: Uint8Array, offset: number, order: Uint8Array): boolean {
  let nonZero = false;
  let decided = false;
  let less = false;
  for (let i = 0; i < order.length; i++) {
    const v = bytes[offset + i]!;
    const n = order[i]!;
    if (v !== 0) nonZero = true;
    if (!decided && v !== n) {
      decided = true;
      less = v < n;
    }
  }
  return nonZero && less;
}

/** The expected signature length in bytes for `spec` with a key of this RSA modulus size. */
export function expectedSignatureLength(spec: AlgorithmSpec, modulusBits: number): number {
  if (spec.signatureLength !== 0) return spec.signatureLength;
  return Math.ceil(modulusBits / 8);
}

/**
 * The shape check done before any crypto: exact length for the algorithm (and key), and for
 * ECDSA, r and s each in [1, n-1] (FIPS 186-4 §6.4) so out-of-range values never reach a
 * library.
 */
export function signatureShapeOk(
  spec: AlgorithmSpec,
  signature: Uint8Array,
  length: number,
): boolean {
  if (signature.length !== length || length === 0) return false;
  const order = spec.order;
  if (order === undefined) return true;
  const width = order.length;
  // By offset, not subarray: no view allocated per token.
  return inRange(signature, 0, order) && inRange(signature, width, order);
}

/** Every supported algorithm name, for configuration schemas and messages. */
export const ALGORITHM_NAMES: readonly [Algorithm, ...Algorithm[]] = [...ALGORITHMS.keys()] as [
  Algorithm,
  ...Algorithm[],
];
