/**
 * The verifier: pre-check (parse once) → issuer allowlist → algorithm allowlist → typ → key
 * (bound to one algorithm) → signature shape → backend verify (node:crypto on Node, WebCrypto
 * elsewhere; signature.ts) → claims → Principal.
 * No jose.jwtVerify on top: the header and payload are parsed once, by the pre-check.
 */
import { DELEGATION_TYPE, EVENT_TYPE } from '../delegation/constants.ts';
import { TokenError } from '../errors.ts';
import { canonicalAlgorithm, signatureShapeOk } from './algorithms.ts';
import { asciiBytes } from './base64url.ts';
import { checkClaims } from './claims.ts';
import { type ResolvedIssuer, resolveOptions } from './config.ts';
import type { Algorithm, TokenVerifier, VerifierOptions, VerifyResult } from './options.ts';
import { normalizeMediaType, precheckToken } from './precheck.ts';
import { detectBackend, type SignatureBackend } from './signature.ts';
import { TokenCache } from './token-cache.ts';

/** Gatehouse's own token types: never accepted from an external issuer. */
const OWN_TYPES = new Set([normalizeMediaType(DELEGATION_TYPE), normalizeMediaType(EVENT_TYPE)]);

function checkType(typ: unknown, issuer: ResolvedIssuer): void {
  // Gatehouse's own token types are accepted only from Gatehouse's own issuer entry, whatever an
  // external issuer's `types` says (`null` included): an identity provider's token with the
  // delegation or event typ is never taken for one (SECURITY.md, token type confusion).
  if (
    issuer.kind === 'external' &&
    typeof typ === 'string' &&
    OWN_TYPES.has(normalizeMediaType(typ))
  ) {
    throw new TokenError('token_invalid_type', 'token typ is not accepted');
  }
  if (typ === undefined) {
    if (issuer.requireType) throw new TokenError('token_invalid_type', 'token typ is required');
    return;
  }
  // RFC 7515 §4.1.9: typ is a media type, compared case-insensitively, `application/` implied.
  if (
    typeof typ !== 'string' ||
    (issuer.types !== null && !issuer.types.has(normalizeMediaType(typ)))
  ) {
    throw new TokenError('token_invalid_type', 'token typ is not accepted');
  }
}

/**
 * Builds a verifier. Validates all options now and throws ConfigError naming the first bad
 * field; keys are imported on first use and then held. Signatures are checked with node:crypto
 * where the runtime has it, WebCrypto elsewhere (signature.ts).
 */
export function createVerifier(options: VerifierOptions): TokenVerifier {
  return createVerifierWith(options, detectBackend());
}

/**
 * createVerifier with a given signature backend: the seam the tests use to run every token
 * check against both backends. Not exported from the package.
 */
export function createVerifierWith(
  options: VerifierOptions,
  backend: SignatureBackend,
): TokenVerifier {
  const { issuers, leewaySeconds, maxTokenBytes, cacheEntries, now } = resolveOptions(
    options,
    backend,
  );
  const cache = cacheEntries > 0 ? new TokenCache(cacheEntries) : null;

  // The token `cached` just missed: decide() asks `cached` and then, on a miss, `verify` at once,
  // so verify skips the second lookup. Skipping a lookup can only cost a re-verification.
  let missed: string | undefined;

  async function verify(token: string): Promise<VerifyResult> {
    if (cache !== null && typeof token === 'string' && token !== missed) {
      const hit = cache.get(token, now);
      if (hit !== undefined) return hit;
    }
    missed = undefined;
    const { header, payload, signature, signingInput } = precheckToken(token, maxTokenBytes);

    // The unverified iss only selects which configuration to verify against.
    const iss = payload.iss;
    const issuer = typeof iss === 'string' ? issuers.get(iss) : undefined;
    if (issuer === undefined) throw new TokenError('token_unknown_issuer', 'issuer not accepted');

    // Exact allowlist: `none`, `None`, `HS256` against an RSA issuer all stop here, and so does
    // `Ed25519` unless the issuer lists that name. Keys are then looked up by the canonical name.
    const named = header.alg as Algorithm;
    const alg = issuer.algorithms.has(named) ? canonicalAlgorithm(named) : undefined;
    if (alg === undefined) {
      throw new TokenError('token_algorithm_mismatch', 'token alg is not allowed for this issuer');
    }
    checkType(header.typ, issuer);

    const source = issuer.source;
    const pending = source.resolve(header.kid as string | undefined, alg);
    const key = pending instanceof Promise ? await pending : pending;
    // The key's bound algorithm, never the header, decides how to verify (RFC 8725 §3.1).
    if (key.spec.alg !== alg) {
      throw new TokenError('token_algorithm_mismatch', 'token alg differs from the key algorithm');
    }
    if (!signatureShapeOk(key.spec, signature, key.key.signatureLength)) {
      throw new TokenError('token_invalid_signature', 'signature has the wrong shape');
    }
    // node:crypto answers synchronously: no await (and no extra turn of the event loop) then.
    const checked = key.key.verify(signature, asciiBytes(signingInput));
    const valid = checked instanceof Promise ? await checked : checked;
    if (!valid) throw new TokenError('token_invalid_signature', 'signature does not verify');

    const { principal, validUntil } = checkClaims(payload, issuer, now(), leewaySeconds);
    if (cache?.admit(token)) {
      cache.set(token, {
        result: Object.freeze({ principal, cache: 'hit' }),
        validUntil: Math.min(validUntil, source.freshUntil),
        source,
        version: key.version,
      });
    }
    return { principal, cache: 'miss' };
  }

  function cached(token: string): VerifyResult | undefined {
    if (cache === null || typeof token !== 'string') return undefined;
    const hit = cache.get(token, now);
    if (hit === undefined) missed = token;
    return hit;
  }

  return { verify, cached };
}
