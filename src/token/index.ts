/** The token layer: format pre-check, verification against per-issuer keys, bearer extraction. */
export { ALGORITHM_NAMES } from './algorithms.ts';
export { extractBearer } from './bearer.ts';
export type {
  Algorithm,
  IssuerOptions,
  JSONWebKeySet,
  JwksPersistence,
  KeySkippedEvent,
  KeySourceOptions,
  PersistedJwks,
  PrecheckedToken,
  TokenVerifier,
  VerifierOptions,
  VerifyResult,
} from './options.ts';
export { precheckToken } from './precheck.ts';
export { createVerifier } from './verifier.ts';
