/**
 * Signature backends: where an imported key lives and how a signature is checked. Everything
 * before and after (pre-check, allowlist, key binding, signature shape and ECDSA range, the RSA
 * rules, claims) is shared; a backend only imports keys and runs the one verify call.
 *
 * node:crypto's synchronous `verify` over a KeyObject is several times faster than Node's
 * WebCrypto (issue 11), so wherever the runtime offers it the verifier uses it; workerd keeps
 * WebCrypto. Chosen once, by capability, when a verifier is built: never a user flag, never per
 * request.
 */
import type { AlgorithmSpec } from './algorithms.ts';
import { loadNodeCrypto, nodeCryptoBackend } from './node-crypto.ts';
import { webCryptoBackend } from './webcrypto.ts';

/** An imported public key or secret, ready to verify signatures for its one algorithm. */
export interface VerifyingKey {
  /** Exact signature length this key produces, bytes. */
  readonly signatureLength: number;
  /** Whether `signature` is valid over `data`; false (never a throw) on any failure. */
  verify(signature: Uint8Array, data: Uint8Array): boolean | Promise<boolean>;
}

export interface SignatureBackend {
  readonly name: 'node:crypto' | 'webcrypto';
  /**
   * Imports a public JWK (public members only, see JwkCandidate) bound to `spec`; null when the
   * runtime refuses it or it is a weak RSA key (rsa.ts).
   */
  importJwk(
    jwk: Readonly<Record<string, string>>,
    spec: AlgorithmSpec,
  ): Promise<VerifyingKey | null>;
  /** Imports a PEM SPKI public key bound to `spec`; throws when refused or weak. */
  importSpki(pem: string, spec: AlgorithmSpec): Promise<VerifyingKey>;
  /** Imports an HMAC secret (already length-checked) bound to `spec`. */
  importSecret(secret: Uint8Array, spec: AlgorithmSpec): Promise<VerifyingKey>;
}

/**
 * node:crypto where the runtime provides it (Node: Lambda, the CLI, Node servers), otherwise
 * WebCrypto (workerd, browsers).
 */
export function detectBackend(): SignatureBackend {
  const crypto = loadNodeCrypto();
  return crypto === null ? webCryptoBackend : nodeCryptoBackend(crypto);
}
