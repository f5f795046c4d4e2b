/**
 * Validates verifier options once, at construction, into the resolved form the hot path reads.
 * Every mistake is a ConfigError naming the field (`issuers[1].audiences`); a bad option never
 * surfaces later as a token failure. Skipping a check takes an explicit null, never a missing
 * field.
 */
import { ConfigError, numberOption } from '../errors.ts';
import { ALGORITHMS, canonicalAlgorithm, isHmac } from './algorithms.ts';
import { type ClaimRules, REGISTERED_CLAIMS } from './claims.ts';
import { RemoteJwksSource } from './jwks.ts';
import { inlineJwksSource, type KeySource, pemSource, secretSource, selectJwk } from './keys.ts';
import type { Algorithm, IssuerOptions, KeySkippedEvent, VerifierOptions } from './options.ts';
import {
  DEFAULT_MAX_TOKEN_BYTES,
  KID_PATTERN,
  MAX_KID_LENGTH,
  normalizeMediaType,
} from './precheck.ts';
import { pemBody, readRsaSpki, rsaKeyProblem } from './rsa.ts';
import type { SignatureBackend } from './signature.ts';

export interface ResolvedIssuer extends ClaimRules {
  readonly source: KeySource;
  readonly algorithms: ReadonlySet<Algorithm>;
  /** Normalised media types (see normalizeMediaType); null skips the check. */
  readonly types: ReadonlySet<string> | null;
  readonly requireType: boolean;
}

export interface ResolvedOptions {
  readonly issuers: ReadonlyMap<string, ResolvedIssuer>;
  readonly leewaySeconds: number;
  readonly maxTokenBytes: number;
  /** 0 disables the verified-token cache. */
  readonly cacheEntries: number;
  readonly now: () => number;
}

export const DEFAULT_LEEWAY_SECONDS = 30;
export const MAX_LEEWAY_SECONDS = 300;
export const DEFAULT_CACHE_ENTRIES = 1000;
const DEFAULT_TYPES = ['JWT', 'at+jwt'];

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function nonEmptyString(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new ConfigError(field, 'expected a non-empty string');
  }
  return value;
}

function stringList(value: unknown, field: string): string[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw new ConfigError(field, 'expected a non-empty array of strings');
  }
  return value.map((item, i) => nonEmptyString(item, `${field}[${i}]`));
}

function optionalKid(value: unknown, field: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !KID_PATTERN.test(value)) {
    throw new ConfigError(
      field,
      `expected 1..${MAX_KID_LENGTH} visible ASCII characters (no spaces or control characters)`,
    );
  }
  return value;
}

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

function jwksUrl(value: unknown, field: string): string {
  const text = nonEmptyString(value, field);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(field, 'expected an absolute URL');
  }
  const ok =
    url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname));
  if (!ok) throw new ConfigError(field, 'expected an https URL (http only on a loopback host)');
  return url.href;
}

function defaultShareInFlight(): boolean {
  const nav = (globalThis as { navigator?: { userAgent?: unknown } }).navigator;
  return nav?.userAgent !== 'Cloudflare-Workers';
}

interface Runtime {
  readonly fetch: typeof fetch;
  readonly now: () => number;
  readonly persistence: VerifierOptions['persistence'];
  readonly shareInFlight: boolean;
  readonly onKeySkipped: ((event: KeySkippedEvent) => void) | null;
  readonly backend: SignatureBackend;
}

/** One JSON line per skipped key, like the decision lines (level, type), readable on both edges. */
function warnKeySkipped(event: KeySkippedEvent): void {
  console.warn(JSON.stringify({ level: 'warn', type: 'gatehouse.jwks_key_skipped', ...event }));
}

function resolveKeySource(
  keys: unknown,
  field: string,
  issuer: string,
  algorithms: readonly Algorithm[],
  runtime: Runtime,
): KeySource {
  if (!isObject(keys)) throw new ConfigError(field, 'expected a key source object');
  const kinds = (['jwksUri', 'jwks', 'publicKeyPem', 'secret'] as const).filter(
    (k) => keys[k] !== undefined,
  );
  if (kinds.length !== 1) {
    throw new ConfigError(field, 'expected exactly one of jwksUri, jwks, publicKeyPem, secret');
  }
  const kind = kinds[0]!;
  // Keys are bound to canonical algorithms (`Ed25519` is EdDSA); the header is compared with the
  // configured names elsewhere.
  const keyAlgorithms = [...new Set(algorithms.map((alg) => canonicalAlgorithm(alg)!))];
  if (kind === 'jwksUri' || kind === 'jwks') {
    // Symmetric keys never come from a key set, so an HS algorithm could never verify here;
    // allowing it would only widen what a token may claim.
    algorithms.forEach((alg, i) => {
      if (isHmac(alg)) {
        throw new ConfigError(
          `${field.replace(/\.keys$/, '')}.algorithms[${i}]`,
          'HS algorithms need a secret key source',
        );
      }
    });
  }
  if (kind === 'jwksUri') {
    const uri = jwksUrl(keys.jwksUri, `${field}.jwksUri`);
    const ttl = numberOption(keys.cacheTtlSeconds, `${field}.cacheTtlSeconds`, 1, 86_400, 600);
    // At least 1 s: a zero cooldown would let every unknown kid cost a fetch.
    const cooldown = numberOption(keys.cooldownSeconds, `${field}.cooldownSeconds`, 1, 3600, 30);
    const timeout = numberOption(keys.timeoutMs, `${field}.timeoutMs`, 1, 60_000, 3000, true);
    const maxStale = numberOption(
      keys.maxStaleSeconds,
      `${field}.maxStaleSeconds`,
      0,
      604_800,
      86_400,
    );
    return new RemoteJwksSource({
      issuer,
      uri,
      algorithms: keyAlgorithms,
      ttlMs: ttl * 1000,
      cooldownMs: cooldown * 1000,
      timeoutMs: timeout,
      // Fresh keys are never stale: a bound below the TTL acts as the TTL.
      maxStaleMs: Math.max(maxStale, ttl) * 1000,
      fetch: runtime.fetch,
      now: runtime.now,
      persistence: runtime.persistence,
      shareInFlight: runtime.shareInFlight,
      onKeySkipped: runtime.onKeySkipped,
      backend: runtime.backend,
    });
  }
  if (kind === 'jwks') {
    const jwks = keys.jwks;
    if (!isObject(jwks) || !Array.isArray(jwks.keys) || jwks.keys.length === 0) {
      throw new ConfigError(`${field}.jwks`, 'expected { keys: [...] } with at least one key');
    }
    const candidates = jwks.keys.map((raw: unknown, i: number) => {
      const candidate = selectJwk(raw, keyAlgorithms);
      if (typeof candidate === 'string') {
        throw new ConfigError(`${field}.jwks.keys[${i}]`, `unusable public key (${candidate})`);
      }
      return candidate;
    });
    return inlineJwksSource(runtime.backend, candidates, runtime.shareInFlight);
  }
  const algorithm = keys.algorithm;
  if (typeof algorithm !== 'string' || !ALGORITHMS.has(algorithm as Algorithm)) {
    throw new ConfigError(
      `${field}.algorithm`,
      `expected one of ${[...ALGORITHMS.keys()].join(', ')}`,
    );
  }
  const alg = algorithm as Algorithm;
  if (!algorithms.includes(alg)) {
    throw new ConfigError(`${field}.algorithm`, 'must be listed in the issuer algorithms');
  }
  const kid = optionalKid(keys.kid, `${field}.kid`);
  if (kind === 'publicKeyPem') {
    const pem = keys.publicKeyPem;
    if (
      typeof pem !== 'string' ||
      !/^-----BEGIN PUBLIC KEY-----\r?\n[\s\S]+-----END PUBLIC KEY-----\s*$/.test(pem.trim())
    ) {
      throw new ConfigError(
        `${field}.publicKeyPem`,
        'expected a PEM SPKI public key (BEGIN PUBLIC KEY)',
      );
    }
    if (isHmac(alg)) {
      throw new ConfigError(`${field}.algorithm`, 'a public key cannot verify an HS algorithm');
    }
    if (ALGORITHMS.get(alg)!.kty === 'RSA') rsaPem(pem, `${field}.publicKeyPem`);
    return pemSource(
      runtime.backend,
      pem.trim(),
      canonicalAlgorithm(alg)!,
      kid,
      runtime.shareInFlight,
    );
  }
  if (!isHmac(alg)) throw new ConfigError(`${field}.algorithm`, 'expected HS256, HS384 or HS512');
  const secret = keys.secret;
  let bytes: Uint8Array;
  if (typeof secret === 'string') bytes = new TextEncoder().encode(secret);
  else if (secret instanceof Uint8Array) bytes = new Uint8Array(secret);
  else throw new ConfigError(`${field}.secret`, 'expected a string or Uint8Array');
  const minimum = ALGORITHMS.get(alg)!.hashBytes;
  // RFC 7518 §3.2: a key of the same size as the hash output or larger MUST be used.
  if (bytes.length < minimum) {
    throw new ConfigError(`${field}.secret`, `expected at least ${minimum} bytes for ${alg}`);
  }
  return secretSource(runtime.backend, bytes, alg, kid, runtime.shareInFlight);
}

/**
 * Refuses an RSA PEM at start-up when it is not an RSA SPKI or is weak (rsa.ts): the runtime
 * alone would accept e = 1 on Node. A key this reading cannot see is still checked after import.
 */
function rsaPem(pem: string, field: string): void {
  const der = pemBody(pem);
  const key = der === null ? null : readRsaSpki(der);
  if (key === null || key === 'not-rsa') {
    throw new ConfigError(field, 'expected an RSA public key (SPKI) for an RS or PS algorithm');
  }
  const problem = rsaKeyProblem(key.n, key.e);
  if (problem !== null) throw new ConfigError(field, `weak RSA key (${problem})`);
}

function resolveIssuer(input: unknown, field: string, runtime: Runtime): ResolvedIssuer {
  if (!isObject(input)) throw new ConfigError(field, 'expected an issuer object');
  const options = input as Partial<IssuerOptions> & Record<string, unknown>;
  const issuer = nonEmptyString(options.issuer, `${field}.issuer`);
  const kind = options.kind ?? 'external';
  if (kind !== 'external' && kind !== 'self') {
    throw new ConfigError(`${field}.kind`, "expected 'external' or 'self'");
  }
  if (!Object.hasOwn(options, 'audiences') || options.audiences === undefined) {
    throw new ConfigError(`${field}.audiences`, 'required: a non-empty array, or null to skip');
  }
  const audiences =
    options.audiences === null
      ? null
      : new Set(stringList(options.audiences, `${field}.audiences`));

  const algorithms = stringList(options.algorithms, `${field}.algorithms`).map((alg, i) => {
    if (!ALGORITHMS.has(alg as Algorithm)) {
      throw new ConfigError(
        `${field}.algorithms[${i}]`,
        `expected one of ${[...ALGORITHMS.keys()].join(', ')}`,
      );
    }
    return alg as Algorithm;
  });
  const unique = [...new Set(algorithms)];

  let types: Set<string> | null;
  if (options.types === null) types = null;
  else {
    const list =
      options.types === undefined ? DEFAULT_TYPES : stringList(options.types, `${field}.types`);
    types = new Set(list.map(normalizeMediaType));
  }
  // A token without typ is a plain JWT (RFC 7519 §5.1), so it passes only where `JWT` does: an
  // allowlist of explicit types alone (`[at+jwt]`, RFC 9068 §4) refuses it unless
  // `requireType: false` says otherwise. `types: null` skips the check and keeps it optional.
  const requireType = options.requireType ?? (types !== null && !types.has('jwt'));
  if (typeof requireType !== 'boolean') {
    throw new ConfigError(`${field}.requireType`, 'expected a boolean');
  }

  let tenant: ClaimRules['tenant'];
  if (options.tenant !== undefined) {
    const t: unknown = options.tenant;
    const hasClaim = isObject(t) && t.claim !== undefined;
    const hasFixed = isObject(t) && t.fixed !== undefined;
    if (!isObject(t) || hasClaim === hasFixed) {
      throw new ConfigError(`${field}.tenant`, 'expected { claim: string } or { fixed: string }');
    }
    tenant = hasClaim
      ? {
          claim: nonEmptyString(t.claim, `${field}.tenant.claim`),
          ...(t.optional === true && { optional: true }),
        }
      : { fixed: nonEmptyString(t.fixed, `${field}.tenant.fixed`) };
  }

  const kept: string[] = [...REGISTERED_CLAIMS];
  if (options.keepClaims !== undefined) {
    if (!Array.isArray(options.keepClaims)) {
      throw new ConfigError(`${field}.keepClaims`, 'expected an array of claim names');
    }
    options.keepClaims.forEach((name: unknown, i: number) => {
      const claim = nonEmptyString(name, `${field}.keepClaims[${i}]`);
      // Assigning `__proto__` would set a prototype, not copy a claim.
      if (claim === '__proto__')
        throw new ConfigError(`${field}.keepClaims[${i}]`, 'reserved name');
      if (!kept.includes(claim)) kept.push(claim);
    });
  }

  const maxAgeSeconds =
    options.maxAgeSeconds === null || options.maxAgeSeconds === undefined
      ? null
      : numberOption(options.maxAgeSeconds, `${field}.maxAgeSeconds`, 1, 31_536_000, 0);

  const source = resolveKeySource(options.keys, `${field}.keys`, issuer, unique, runtime);
  return {
    issuer,
    kind,
    audiences,
    tenant,
    keptClaims: kept,
    maxAgeSeconds,
    source,
    algorithms: new Set(unique),
    types,
    requireType,
  };
}

/**
 * Validates every option eagerly; throws ConfigError naming the first bad field. `backend`
 * imports and verifies every key of every issuer (signature.ts picks it by runtime capability).
 */
export function resolveOptions(
  options: VerifierOptions,
  backend: SignatureBackend,
): ResolvedOptions {
  if (!isObject(options)) throw new ConfigError('options', 'expected an options object');
  const o = options as VerifierOptions & Record<string, unknown>;
  const leewaySeconds = numberOption(
    o.leewaySeconds,
    'leewaySeconds',
    0,
    MAX_LEEWAY_SECONDS,
    DEFAULT_LEEWAY_SECONDS,
  );
  const maxTokenBytes = numberOption(
    o.maxTokenBytes,
    'maxTokenBytes',
    256,
    65_536,
    DEFAULT_MAX_TOKEN_BYTES,
    true,
  );
  let cacheEntries = DEFAULT_CACHE_ENTRIES;
  if (o.tokenCache === false) cacheEntries = 0;
  else if (o.tokenCache !== undefined) {
    if (!isObject(o.tokenCache)) {
      throw new ConfigError('tokenCache', 'expected { maxEntries } or false');
    }
    cacheEntries = numberOption(
      o.tokenCache.maxEntries,
      'tokenCache.maxEntries',
      1,
      1_000_000,
      DEFAULT_CACHE_ENTRIES,
      true,
    );
  }
  if (o.fetch !== undefined && typeof o.fetch !== 'function') {
    throw new ConfigError('fetch', 'expected a function');
  }
  if (o.now !== undefined && typeof o.now !== 'function') {
    throw new ConfigError('now', 'expected a function returning milliseconds');
  }
  const persistence = o.persistence;
  if (
    persistence !== undefined &&
    (!isObject(persistence) ||
      typeof persistence.load !== 'function' ||
      typeof persistence.save !== 'function')
  ) {
    throw new ConfigError('persistence', 'expected { load(issuer), save(issuer, jwks) }');
  }
  if (o.shareInFlight !== undefined && typeof o.shareInFlight !== 'boolean') {
    throw new ConfigError('shareInFlight', 'expected a boolean');
  }
  if (
    o.onKeySkipped !== undefined &&
    o.onKeySkipped !== null &&
    typeof o.onKeySkipped !== 'function'
  ) {
    throw new ConfigError('onKeySkipped', 'expected a function or null');
  }
  const runtime: Runtime = {
    fetch: o.fetch ?? ((input, init) => fetch(input, init)),
    now: o.now ?? Date.now,
    persistence,
    shareInFlight: o.shareInFlight ?? defaultShareInFlight(),
    onKeySkipped: o.onKeySkipped === undefined ? warnKeySkipped : o.onKeySkipped,
    backend,
  };
  if (!Array.isArray(o.issuers) || o.issuers.length === 0) {
    throw new ConfigError('issuers', 'expected a non-empty array of issuers');
  }
  const issuers = new Map<string, ResolvedIssuer>();
  o.issuers.forEach((input: unknown, i: number) => {
    const issuer = resolveIssuer(input, `issuers[${i}]`, runtime);
    if (issuers.has(issuer.issuer)) {
      throw new ConfigError(`issuers[${i}].issuer`, 'each issuer may appear once');
    }
    issuers.set(issuer.issuer, issuer);
  });
  return { issuers, leewaySeconds, maxTokenBytes, cacheEntries, now: runtime.now };
}
