/**
 * Verification keys: each key is imported once by the signature backend (signature.ts) and bound
 * to exactly one algorithm. A JWK's own `alg` wins; a JWK without one takes the first configured
 * algorithm that fits its kty/crv, never the token's header (RFC 8725 §3.1, §2.1 algorithm
 * confusion).
 */
import { TokenError } from '../errors.ts';
import {
  ALGORITHMS,
  type AlgorithmSpec,
  canonicalAlgorithm,
  isHmac,
  keyFits,
} from './algorithms.ts';
import { decodeBase64url } from './base64url.ts';
import type { Algorithm } from './options.ts';
import { KID_PATTERN } from './precheck.ts';
import { rsaKeyProblem } from './rsa.ts';
import type { SignatureBackend, VerifyingKey } from './signature.ts';

/** An imported key bound to one algorithm. */
export interface BoundKey {
  readonly kid: string | undefined;
  readonly spec: AlgorithmSpec;
  /** The imported key; its signatureLength is the exact length this key produces, bytes. */
  readonly key: VerifyingKey;
  /** The source's key-set version this key belongs to (see KeySource.version). */
  readonly version: number;
}

export interface KeySet {
  readonly byKid: ReadonlyMap<string, readonly BoundKey[]>;
  readonly all: readonly BoundKey[];
}

export interface KeySource {
  /** Changes whenever the key set changes; cached verifications from another version are void. */
  readonly version: number;
  /** Milliseconds since the epoch until which the current keys are fresh (Infinity when static). */
  readonly freshUntil: number;
  /** The key for this `kid` and (canonical) header `alg`; throws TokenError. */
  resolve(kid: string | undefined, alg: Algorithm): BoundKey | Promise<BoundKey>;
}

/** A JWK reduced to its public members and paired with the algorithm it is bound to. */
export interface JwkCandidate {
  readonly kid: string | undefined;
  readonly spec: AlgorithmSpec;
  /** Public members only, without alg/use/key_ops, ready for import. */
  readonly jwk: Record<string, string>;
  /** The JWK as it may be persisted: public members plus kid and alg when present. */
  readonly stored: Record<string, string>;
}

// A Map, not an object literal: a kty such as `constructor` or `__proto__` must find nothing
// rather than an Object.prototype member.
const PUBLIC_MEMBERS: ReadonlyMap<string, readonly string[]> = new Map([
  ['RSA', ['n', 'e']],
  ['EC', ['crv', 'x', 'y']],
  ['OKP', ['crv', 'x']],
]);

/**
 * Picks the algorithm for one JWK and strips it to public members. Returns a reason string when
 * the key can never be used (malformed, unsupported kty, symmetric, encryption-only, or an
 * algorithm outside the issuer's allowlist).
 */
export function selectJwk(raw: unknown, allowed: readonly Algorithm[]): JwkCandidate | string {
  try {
    return selectJwkUnchecked(raw, allowed);
  } catch {
    // Defence in depth: one odd key (a getter, a proxy) never discards the rest of a set.
    return 'malformed key';
  }
}

function selectJwkUnchecked(raw: unknown, allowed: readonly Algorithm[]): JwkCandidate | string {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return 'not an object';
  const jwk = raw as Record<string, unknown>;
  const kty = jwk.kty;
  if (typeof kty !== 'string') return 'kty missing';
  // Symmetric keys are configured with `secret`, never taken from a key set that may be public.
  const members = PUBLIC_MEMBERS.get(kty);
  if (members === undefined) return 'unsupported kty';
  if (jwk.use !== undefined && jwk.use !== 'sig') return 'use is not sig';
  if (
    jwk.key_ops !== undefined &&
    !(Array.isArray(jwk.key_ops) && (jwk.key_ops as unknown[]).includes('verify'))
  ) {
    return 'key_ops lacks verify';
  }
  let kid: string | undefined;
  if (jwk.kid !== undefined) {
    // A kid no token could carry (see KID_PATTERN) could never be selected.
    if (typeof jwk.kid !== 'string' || !KID_PATTERN.test(jwk.kid))
      return 'kid has an unexpected form';
    kid = jwk.kid;
  }
  const publicJwk: Record<string, string> = { kty };
  for (const name of members) {
    const value = jwk[name];
    if (typeof value !== 'string' || value.length === 0) return `${name} missing`;
    publicJwk[name] = value;
  }
  if (kty === 'RSA') {
    // Checked here, not left to the runtime (see rsa.ts). Strict base64url: the bytes judged are
    // exactly the bytes any decoder imports, so a lenient spelling cannot slip past the check.
    const n = decodeBase64url(publicJwk.n!);
    const e = decodeBase64url(publicJwk.e!);
    if (n === null || e === null) return 'n or e is not base64url';
    const problem = rsaKeyProblem(n, e);
    if (problem !== null) return problem;
  }
  let spec: AlgorithmSpec | undefined;
  if (jwk.alg !== undefined) {
    const alg = canonicalAlgorithm(jwk.alg);
    if (alg === undefined) return 'alg unsupported';
    if (!allowed.includes(alg)) return 'alg not in the issuer algorithms';
    spec = ALGORITHMS.get(alg);
    if (spec === undefined || !keyFits(spec, kty, jwk.crv)) return 'alg does not fit the key';
  } else {
    for (const alg of allowed) {
      const candidate = ALGORITHMS.get(alg);
      if (candidate !== undefined && keyFits(candidate, kty, jwk.crv)) {
        spec = candidate;
        break;
      }
    }
    if (spec === undefined) return 'no configured algorithm fits the key';
  }
  const stored: Record<string, string> = { ...publicJwk };
  if (kid !== undefined) stored.kid = kid;
  if (typeof jwk.alg === 'string') stored.alg = jwk.alg;
  return { kid, spec, jwk: publicJwk, stored };
}

function bind(kid: string | undefined, spec: AlgorithmSpec, key: VerifyingKey): BoundKey {
  return { kid, spec, key, version: 0 };
}

/** Imports one candidate, or null when the runtime refuses it or it is a weak RSA key. */
export async function importCandidate(
  backend: SignatureBackend,
  candidate: JwkCandidate,
): Promise<BoundKey | null> {
  const key = await backend.importJwk(candidate.jwk, candidate.spec);
  return key === null ? null : bind(candidate.kid, candidate.spec, key);
}

export function buildKeySet(keys: readonly BoundKey[]): KeySet {
  const byKid = new Map<string, BoundKey[]>();
  for (const key of keys) {
    if (key.kid === undefined) continue;
    const list = byKid.get(key.kid);
    if (list === undefined) byKid.set(key.kid, [key]);
    else list.push(key);
  }
  return { byKid, all: keys };
}

/** A key left out of a key set: its kid when it has a well-formed one, and why. */
export interface SkippedKey {
  readonly kid: string | undefined;
  readonly reason: string;
}

/**
 * The kid of a raw JWK as it may be logged: only one that passes KID_PATTERN (visible ASCII,
 * bounded), so a key set cannot write control characters or long text into a log line.
 */
export function loggableKid(raw: unknown): string | undefined {
  try {
    const kid = (raw as { kid?: unknown } | null)?.kid;
    return typeof kid === 'string' && KID_PATTERN.test(kid) ? kid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The usable candidates of a JWKS document and the keys left out, or null when it is not
 * `{ keys: [...] }`. One unusable key never discards the others.
 */
export function selectKeySet(
  document: unknown,
  allowed: readonly Algorithm[],
): { candidates: JwkCandidate[]; skipped: SkippedKey[] } | null {
  if (typeof document !== 'object' || document === null) return null;
  const keys = (document as { keys?: unknown }).keys;
  if (!Array.isArray(keys)) return null;
  const candidates: JwkCandidate[] = [];
  const skipped: SkippedKey[] = [];
  for (const raw of keys) {
    const candidate = selectJwk(raw, allowed);
    if (typeof candidate !== 'string') candidates.push(candidate);
    else skipped.push({ kid: loggableKid(raw), reason: candidate });
  }
  return { candidates, skipped };
}

/**
 * Finds the key for a token. With a `kid`, an exact Map lookup and nothing else. Without one,
 * the single key bound to the header's algorithm; several would be ambiguous, so none is chosen.
 * `anyKid` lets a single configured key (PEM, secret) without its own kid accept any token kid.
 */
export function lookupKey(
  set: KeySet,
  kid: string | undefined,
  alg: Algorithm,
  anyKid: boolean,
): BoundKey | 'unknown' | 'mismatch' {
  if (kid !== undefined) {
    const list = set.byKid.get(kid);
    if (list !== undefined) {
      for (const key of list) if (key.spec.alg === alg) return key;
      return 'mismatch';
    }
    if (!anyKid) return 'unknown';
  }
  let found: BoundKey | undefined;
  let candidates = 0;
  for (const key of set.all) {
    // A key with its own kid is only reachable by that kid.
    if (kid !== undefined && key.kid !== undefined) continue;
    candidates++;
    if (key.spec.alg !== alg) continue;
    if (found !== undefined) return 'unknown';
    found = key;
  }
  if (found !== undefined) return found;
  return candidates > 0 ? 'mismatch' : 'unknown';
}

export function lookupError(result: 'unknown' | 'mismatch'): TokenError {
  return result === 'mismatch'
    ? new TokenError('token_algorithm_mismatch', 'token alg differs from the key algorithm')
    : new TokenError('token_unknown_key', 'no key matches the token');
}

/**
 * A fixed key set (inline JWKS, PEM or secret), imported on first use and then held; after the
 * import settles, lookups are synchronous. With `share` off (Workers), concurrent first callers
 * each import rather than await a promise another request started.
 */
export class StaticKeySource implements KeySource {
  readonly version = 0;
  readonly freshUntil = Number.POSITIVE_INFINITY;
  readonly #load: () => Promise<KeySet>;
  readonly #anyKid: boolean;
  readonly #share: boolean;
  #set: KeySet | null = null;
  #failed = false;
  #pending: Promise<KeySet | null> | null = null;

  constructor(load: () => Promise<KeySet>, anyKid: boolean, share: boolean) {
    this.#load = load;
    this.#anyKid = anyKid;
    this.#share = share;
  }

  resolve(kid: string | undefined, alg: Algorithm): BoundKey | Promise<BoundKey> {
    if (this.#set !== null) return this.#find(this.#set, kid, alg);
    return this.#init().then((set) => this.#find(set, kid, alg));
  }

  #find(set: KeySet, kid: string | undefined, alg: Algorithm): BoundKey {
    const found = lookupKey(set, kid, alg, this.#anyKid);
    if (typeof found === 'string') throw lookupError(found);
    return found;
  }

  async #init(): Promise<KeySet> {
    if (!this.#failed) {
      let pending: Promise<KeySet | null>;
      if (this.#share) {
        this.#pending ??= this.#import();
        pending = this.#pending;
      } else {
        pending = this.#import();
      }
      const set = await pending;
      if (set !== null) return set;
    }
    throw new TokenError('keys_unavailable', 'configured keys could not be imported');
  }

  #import(): Promise<KeySet | null> {
    return this.#load().then(
      (set) => {
        if (set.all.length > 0) this.#set = set;
        else this.#failed = true;
        return this.#set;
      },
      () => {
        // Import failures are deterministic (a bad configured key): fail closed every time.
        this.#failed = true;
        return null;
      },
    );
  }
}

/** A static source for an inline JWKS whose candidates were validated at construction. */
export function inlineJwksSource(
  backend: SignatureBackend,
  candidates: readonly JwkCandidate[],
  share: boolean,
): StaticKeySource {
  return new StaticKeySource(
    async () => {
      const imported = await Promise.all(candidates.map((c) => importCandidate(backend, c)));
      return buildKeySet(imported.filter((k): k is BoundKey => k !== null));
    },
    false,
    share,
  );
}

/** A static source for one SPKI public key bound to `alg`. */
export function pemSource(
  backend: SignatureBackend,
  pem: string,
  alg: Algorithm,
  kid: string | undefined,
  share: boolean,
): StaticKeySource {
  return new StaticKeySource(
    async () => {
      const spec = ALGORITHMS.get(alg)!;
      // The backend refuses a weak RSA key after import too (rsa.ts): configuration already
      // refused one it could read, this holds the rule for any encoding that reading missed.
      return buildKeySet([bind(kid, spec, await backend.importSpki(pem, spec))]);
    },
    kid === undefined,
    share,
  );
}

/** A static source for one HMAC secret bound to `alg` (already length-checked). */
export function secretSource(
  backend: SignatureBackend,
  secret: Uint8Array,
  alg: Algorithm,
  kid: string | undefined,
  share: boolean,
): StaticKeySource {
  return new StaticKeySource(
    async () => {
      const spec = ALGORITHMS.get(alg)!;
      if (!isHmac(alg)) throw new Error('not an HMAC algorithm');
      return buildKeySet([bind(kid, spec, await backend.importSecret(secret, spec))]);
    },
    kid === undefined,
    share,
  );
}
