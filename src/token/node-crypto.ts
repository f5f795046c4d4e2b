/**
 * The node:crypto signature backend: KeyObjects imported once per key set, then the synchronous
 * `crypto.verify` (no promise, no WebCrypto job per call). Only the members used here are typed,
 * so this file compiles without Node's types and costs the Worker bundle no import: the module
 * is taken from `process.getBuiltinModule` at run time, never from an import statement.
 */
import { type AlgorithmSpec, expectedSignatureLength } from './algorithms.ts';
import { bigintBytes, rsaImportedProblem } from './rsa.ts';
import type { SignatureBackend, VerifyingKey } from './signature.ts';

/** The parts of a node:crypto KeyObject read here. */
export interface NodeKeyObject {
  readonly asymmetricKeyType?: string | undefined;
  readonly asymmetricKeyDetails?:
    | {
        readonly modulusLength?: number | undefined;
        readonly publicExponent?: bigint | undefined;
        readonly namedCurve?: string | undefined;
      }
    | undefined;
}

interface VerifyKeyInput {
  readonly key: NodeKeyObject;
  readonly padding?: number;
  readonly saltLength?: number;
  readonly dsaEncoding?: 'ieee-p1363';
}

/** The parts of `node:crypto` this backend uses. */
export interface NodeCrypto {
  createPublicKey(key: string | { key: object; format: 'jwk' }): NodeKeyObject;
  createSecretKey(key: Uint8Array): NodeKeyObject;
  verify(
    algorithm: string | null,
    data: Uint8Array,
    key: NodeKeyObject | VerifyKeyInput,
    signature: Uint8Array,
  ): boolean;
  createHmac(
    algorithm: string,
    key: NodeKeyObject,
  ): { update(data: Uint8Array): { digest(): Uint8Array } };
  timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean;
  createHash(algorithm: string): { update(data: string): { digest(): Uint8Array } };
  readonly constants: {
    readonly RSA_PKCS1_PADDING: number;
    readonly RSA_PKCS1_PSS_PADDING: number;
  };
}

/**
 * node:crypto when the runtime offers it (Node ≥ 22.3 has `process.getBuiltinModule`), else
 * null. workerd with `nodejs_compat` offers a node:crypto too; there WebCrypto stays, the path
 * its own tests cover.
 */
export function loadNodeCrypto(): NodeCrypto | null {
  const g = globalThis as {
    navigator?: { userAgent?: unknown };
    process?: { getBuiltinModule?: (id: string) => unknown };
  };
  if (g.navigator?.userAgent === 'Cloudflare-Workers') return null;
  try {
    const getBuiltinModule = g.process?.getBuiltinModule;
    if (typeof getBuiltinModule !== 'function') return null;
    const crypto = getBuiltinModule.call(g.process, 'node:crypto') as
      | Partial<NodeCrypto>
      | undefined;
    return typeof crypto?.verify === 'function' && typeof crypto.createPublicKey === 'function'
      ? (crypto as NodeCrypto)
      : null;
  } catch {
    return null;
  }
}

/** WebCrypto hash names to OpenSSL digest names. */
const DIGEST: Readonly<Record<AlgorithmSpec['hash'], string>> = {
  'SHA-256': 'sha256',
  'SHA-384': 'sha384',
  'SHA-512': 'sha512',
};

/** JWK curve names to the names node:crypto reports in asymmetricKeyDetails.namedCurve. */
const CURVE: Readonly<Record<string, string>> = {
  'P-256': 'prime256v1',
  'P-384': 'secp384r1',
  'P-521': 'secp521r1',
};

/**
 * Why `key` cannot carry `spec`, or null. The same refusals WebCrypto makes at import (key type,
 * curve) plus the RSA rule of rsa.ts on the modulus and exponent node:crypto reports.
 */
function keyProblem(spec: AlgorithmSpec, key: NodeKeyObject): string | null {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails;
  switch (spec.kty) {
    case 'RSA': {
      // Only rsaEncryption keys: WebCrypto refuses an id-RSASSA-PSS SPKI (type rsa-pss) for
      // every algorithm, and the two backends must agree (test/unit/token/backends.test.ts).
      if (type !== 'rsa') return 'not an RSA key';
      const e = details?.publicExponent;
      return rsaImportedProblem(
        details?.modulusLength,
        typeof e === 'bigint' ? bigintBytes(e) : null,
      );
    }
    case 'EC':
      return type === 'ec' && details?.namedCurve === CURVE[spec.crv ?? '']
        ? null
        : 'not a key on the algorithm curve';
    case 'OKP':
      return type === 'ed25519' ? null : 'not an Ed25519 key';
    default:
      return 'not a public key algorithm';
  }
}

function publicVerifying(
  crypto: NodeCrypto,
  spec: AlgorithmSpec,
  key: NodeKeyObject,
): VerifyingKey {
  const problem = keyProblem(spec, key);
  if (problem !== null) throw new Error(problem);
  // Built once per key: the per-call work is the verify itself.
  let digest: string | null = DIGEST[spec.hash];
  let input: NodeKeyObject | VerifyKeyInput;
  if (spec.kty === 'RSA') {
    input = spec.alg.startsWith('PS')
      ? {
          key,
          padding: crypto.constants.RSA_PKCS1_PSS_PADDING,
          // RFC 7518 §3.5: salt as long as the hash; MGF1 uses the same hash (OpenSSL's default).
          saltLength: spec.hashBytes,
        }
      : { key, padding: crypto.constants.RSA_PKCS1_PADDING };
  } else if (spec.kty === 'EC') {
    // JWS carries raw r || s (RFC 7518 §3.4), not DER.
    input = { key, dsaEncoding: 'ieee-p1363' };
  } else {
    // Ed25519 hashes internally: no digest name.
    digest = null;
    input = key;
  }
  return {
    signatureLength: expectedSignatureLength(spec, key.asymmetricKeyDetails?.modulusLength ?? 0),
    verify(signature, data) {
      try {
        return crypto.verify(digest, data, input, signature);
      } catch {
        return false;
      }
    },
  };
}

/** The node:crypto backend over `crypto` (a test may pass Node's module directly). */
export function nodeCryptoBackend(crypto: NodeCrypto): SignatureBackend {
  return {
    name: 'node:crypto',

    async importJwk(jwk, spec) {
      try {
        return publicVerifying(
          crypto,
          spec,
          crypto.createPublicKey({ key: { ...jwk }, format: 'jwk' }),
        );
      } catch {
        return null;
      }
    },

    async importSpki(pem, spec) {
      return publicVerifying(crypto, spec, crypto.createPublicKey(pem));
    },

    async importSecret(secret, spec) {
      if (spec.kty !== 'oct') throw new Error('not an HMAC algorithm');
      const key = crypto.createSecretKey(secret);
      const digest = DIGEST[spec.hash];
      return {
        signatureLength: spec.signatureLength,
        verify(signature, data) {
          try {
            const mac = crypto.createHmac(digest, key).update(data).digest();
            return mac.length === signature.length && crypto.timingSafeEqual(mac, signature);
          } catch {
            return false;
          }
        },
      };
    },
  };
}
