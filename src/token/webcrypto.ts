/** The WebCrypto signature backend (workerd, and any runtime without node:crypto). */
import type { CryptoKey } from 'jose';
import { type AlgorithmSpec, expectedSignatureLength } from './algorithms.ts';
import { rsaCryptoKeyProblem } from './rsa.ts';
import type { SignatureBackend, VerifyingKey } from './signature.ts';

function verifying(spec: AlgorithmSpec, key: CryptoKey): VerifyingKey {
  const bits = (key.algorithm as { modulusLength?: number }).modulusLength ?? 0;
  const params = spec.verifyParams;
  return {
    signatureLength: expectedSignatureLength(spec, bits),
    async verify(signature, data) {
      try {
        return await crypto.subtle.verify(
          params,
          key,
          signature as Uint8Array<ArrayBuffer>,
          data as Uint8Array<ArrayBuffer>,
        );
      } catch {
        return false;
      }
    },
  };
}

type Import = typeof crypto.subtle.importKey;
type JwkData = { readonly key_ops?: unknown } & Record<string, unknown>;
type ImportParams = Parameters<Import>[2];

/**
 * The WebCrypto import parameters for `spec`'s key: the hash is bound into an RSA key and the
 * curve into an EC key, so a key of another curve (or an SPKI of another type) fails the import.
 * Imported directly rather than through jose's importJWK/importSPKI, which would bundle its
 * ASN.1 and JWE helpers into the guard Worker for the same single `importKey` call.
 */
function importParams(spec: AlgorithmSpec): ImportParams {
  if (spec.kty === 'RSA')
    return { name: (spec.verifyParams as { name: string }).name, hash: spec.hash };
  if (spec.kty === 'EC') return { name: 'ECDSA', namedCurve: spec.crv! };
  return { name: 'Ed25519' };
}

/**
 * A JWK as WebCrypto should see it, or null when jose's importJWK (which this replaces) refused
 * it: `ext` must be a boolean and `key_ops` an array of unique strings when present. `alg` and
 * `use` are dropped as jose did: their consistency with the algorithm is checked by keys.ts, and
 * WebCrypto's own stricter reading of them would refuse keys the node:crypto backend accepts.
 */
function jwkKeyData(jwk: Record<string, unknown>): JwkData | null {
  if (jwk.ext !== undefined && typeof jwk.ext !== 'boolean') return null;
  const ops = jwk.key_ops;
  if (
    ops !== undefined &&
    (!Array.isArray(ops) ||
      ops.some((op) => typeof op !== 'string') ||
      new Set(ops).size !== ops.length)
  ) {
    return null;
  }
  const { alg: _alg, use: _use, ...data } = jwk;
  return { ...data, ext: false } as JwkData;
}

/** The DER bytes of a `PUBLIC KEY` PEM, read as jose's importSPKI read it, or null. */
function spkiDer(pem: string): Uint8Array<ArrayBuffer> | null {
  if (!pem.startsWith('-----BEGIN PUBLIC KEY-----')) return null;
  const body = pem.replace(/-----(?:BEGIN|END) PUBLIC KEY-----|\s/g, '');
  let binary: string;
  try {
    binary = atob(body);
  } catch {
    return null;
  }
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/** After import, the RSA rule again on what the runtime holds (defence in depth, see rsa.ts). */
function rsaWeak(spec: AlgorithmSpec, key: CryptoKey): boolean {
  return spec.kty === 'RSA' && rsaCryptoKeyProblem(key) !== null;
}

export const webCryptoBackend: SignatureBackend = {
  name: 'webcrypto',

  async importJwk(jwk, spec) {
    try {
      // An HMAC secret or a key of another type never verifies here (jose returned the secret's
      // bytes for kty "oct", and refused a kty the algorithm does not take).
      if (spec.kty === 'oct' || jwk.kty !== spec.kty) return null;
      const data = jwkKeyData(jwk as Record<string, unknown>);
      // A verification key is public: private members (`d`, RSA's `p`) or a secret (`k`) mean
      // a key that was never meant to be published, refused here whatever the caller checked.
      if (data === null || 'd' in data || 'p' in data || 'k' in data) return null;
      const key = await crypto.subtle.importKey(
        'jwk',
        // Checked above; the JsonWebKey type differs between the Node and Workers typings.
        data as never,
        importParams(spec),
        false,
        ['verify'],
      );
      if (rsaWeak(spec, key)) return null;
      return verifying(spec, key);
    } catch {
      return null;
    }
  },

  async importSpki(pem, spec) {
    if (spec.kty === 'oct') throw new Error('not a public-key algorithm');
    const der = spkiDer(pem);
    if (der === null) throw new TypeError('expected an SPKI public key in PEM form');
    const key = await crypto.subtle.importKey('spki', der, importParams(spec), false, ['verify']);
    // Configuration already refused a weak key it could read (config.ts); this holds the rule
    // for any encoding that reading missed, on every runtime.
    if (rsaWeak(spec, key)) throw new Error('weak RSA key');
    return verifying(spec, key);
  },

  async importSecret(secret, spec) {
    const key = await crypto.subtle.importKey(
      'raw',
      secret as Uint8Array<ArrayBuffer>,
      { name: 'HMAC', hash: spec.hash },
      false,
      ['verify'],
    );
    return verifying(spec, key);
  },
};
