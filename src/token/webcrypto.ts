/** The WebCrypto signature backend (workerd, and any runtime without node:crypto). */
import { type CryptoKey, importJWK, importSPKI } from 'jose';
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

/** After import, the RSA rule again on what the runtime holds (defence in depth, see rsa.ts). */
function rsaWeak(spec: AlgorithmSpec, key: CryptoKey): boolean {
  return spec.kty === 'RSA' && rsaCryptoKeyProblem(key) !== null;
}

export const webCryptoBackend: SignatureBackend = {
  name: 'webcrypto',

  async importJwk(jwk, spec) {
    try {
      const key = await importJWK({ ...jwk }, spec.alg, { extractable: false });
      if (key instanceof Uint8Array || rsaWeak(spec, key)) return null;
      return verifying(spec, key);
    } catch {
      return null;
    }
  },

  async importSpki(pem, spec) {
    const key = await importSPKI(pem, spec.alg, { extractable: false });
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
