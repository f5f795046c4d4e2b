/**
 * Public option and result types of the token verifier. Validation lives in config.ts; this
 * file only describes shapes so the policy layer can import types without pulling in code.
 */
import type { JSONWebKeySet } from 'jose';
import type { Principal } from '../types.ts';

export type { JSONWebKeySet } from 'jose';

/**
 * JWS algorithms the verifier supports (RFC 7518 §3.1, RFC 8037 for EdDSA over Ed25519).
 * `Ed25519` is the fully specified name (RFC 9864) of the same algorithm as `EdDSA` here (the
 * only EdDSA curve accepted); a token header naming it is accepted only when the issuer's
 * allowlist names `Ed25519` itself.
 */
export type Algorithm =
  | 'RS256'
  | 'RS384'
  | 'RS512'
  | 'PS256'
  | 'PS384'
  | 'PS512'
  | 'ES256'
  | 'ES384'
  | 'ES512'
  | 'EdDSA'
  | 'Ed25519'
  | 'HS256'
  | 'HS384'
  | 'HS512';

/** A stored key set together with the time it was fetched (see {@link JwksPersistence}). */
export interface PersistedJwks {
  /** The key set as it was passed to `save`. */
  readonly jwks: JSONWebKeySet;
  /** When the key set was fetched, milliseconds since the epoch (the verifier's clock). */
  readonly fetchedAt: number;
}

/**
 * Stores the last good key set per issuer so a cold isolate can start without a fetch.
 *
 * Store `meta.fetchedAt` with the keys and return it from `load` as `{ jwks, fetchedAt }`: the
 * verifier then runs the TTL and `maxStaleSeconds` from the original fetch, so a persisted set
 * is never served past its maximum staleness by a new isolate (a set older than the bound is
 * ignored, one older than the TTL is refetched first). A bare JSONWebKeySet (the legacy form)
 * counts as fetched at load time, so with it the staleness bound holds only within one isolate.
 * `fetchedAt` changes on every successful fetch even when the keys do not; a store that skips
 * writing an unchanged key set keeps an older time, which only makes cold isolates refetch
 * sooner.
 */
export interface JwksPersistence {
  /**
   * The stored key set for `issuer`, or null. Either `{ jwks, fetchedAt }` or (legacy) a bare
   * key set. A `fetchedAt` that is not a finite number discards the entry; one in the future
   * counts as now. Errors are swallowed (treated as null).
   */
  load(issuer: string): Promise<JSONWebKeySet | PersistedJwks | null>;
  /**
   * Called after each successful fetch with the usable keys and the time the fetch started
   * (`meta` is always passed by this verifier). Errors are swallowed, never fatal.
   */
  save(issuer: string, jwks: JSONWebKeySet, meta?: { fetchedAt: number }): Promise<void>;
}

/** Where an issuer's verification keys come from. */
export type KeySourceOptions =
  | {
      /** JWKS URL; https, or http on a loopback host (127.0.0.1, ::1, localhost) for development. */
      jwksUri: string;
      /** Seconds a fetched key set is fresh before a refetch; default 600, 1..86400. */
      cacheTtlSeconds?: number;
      /**
       * Minimum seconds between fetches (cold start, unknown `kid`, failures); default 30,
       * 1..3600. On a cold start without `shareInFlight`, requests that arrive while the first
       * fetch runs wait for it (polling, at most `timeoutMs` plus a little) instead of fetching.
       */
      cooldownSeconds?: number;
      /** Fetch timeout, milliseconds; default 3000, 1..60000. */
      timeoutMs?: number;
      /** Seconds (from its fetch) a key set is served while the endpoint fails; default 86400, 0..604800, at least the TTL. */
      maxStaleSeconds?: number;
    }
  | {
      /** An inline JSON Web Key Set (public keys only). */
      jwks: JSONWebKeySet;
    }
  | {
      /** A SPKI public key (`-----BEGIN PUBLIC KEY-----`), bound to `algorithm`. */
      publicKeyPem: string;
      /** The one algorithm this key verifies; never HS*. */
      algorithm: Algorithm;
      /** Optional key id; when set, a token `kid` must equal it. */
      kid?: string;
    }
  | {
      /** HMAC secret (development); at least the hash output: 32/48/64 bytes for HS256/384/512. */
      secret: string | Uint8Array;
      /** The one HMAC algorithm this secret verifies. */
      algorithm: 'HS256' | 'HS384' | 'HS512';
      /** Optional key id; when set, a token `kid` must equal it. */
      kid?: string;
    };

export interface IssuerOptions {
  /** The exact `iss` value (compared as a string, no normalisation). */
  issuer: string;
  /** Which kind of issuer this is; default 'external'. 'self' is for Gatehouse's own tokens. */
  kind?: 'external' | 'self';
  /** The issuer's key source. */
  keys: KeySourceOptions;
  /** Accepted `aud` values (one must match); `null` explicitly skips the audience check. Required. */
  audiences: string[] | null;
  /**
   * Server-side algorithm allowlist, compared exactly with the header `alg`; non-empty. List
   * `Ed25519` to accept that header name; `EdDSA` alone does not.
   */
  algorithms: Algorithm[];
  /** Accepted `typ` values, case-insensitive, `application/` optional; default ['JWT', 'at+jwt']; null skips. */
  types?: string[] | null;
  /**
   * Reject tokens with no `typ` header. Default: true when `types` is a list without `JWT` (a
   * missing typ counts as `JWT`, RFC 7519 §5.1), so `types: ['at+jwt']` alone refuses it as RFC
   * 9068 §4 requires; false when the list has `JWT` or `types` is null. An explicit `false`
   * accepts a missing typ whatever `types` says.
   */
  requireType?: boolean;
  /** Where the tenant comes from: a string claim (required in every token) or a fixed value. */
  tenant?: { claim: string; optional?: boolean } | { fixed: string };
  /** Claim names kept in `Principal.claims` besides iss, sub, aud, exp, nbf, iat, jti; default []. */
  keepClaims?: string[];
  /** Maximum token age from `iat`, seconds (`iat` then required); default null (no limit), > 0. */
  maxAgeSeconds?: number | null;
}

export interface VerifierOptions {
  /** The issuer allowlist; non-empty, each `issuer` at most once. */
  issuers: IssuerOptions[];
  /** Clock skew tolerance for exp/nbf/iat/max age, seconds; default 30, 0..300. */
  leewaySeconds?: number;
  /** Largest accepted token, bytes, checked before decoding; default 8192, 256..65536. */
  maxTokenBytes?: number;
  /** Verified-token cache size, entries (1..1000000), a token cached from its second use; default { maxEntries: 1000 }; false disables. */
  tokenCache?: { maxEntries: number } | false;
  /** Fetch used for JWKS; default globalThis.fetch. */
  fetch?: typeof fetch;
  /** Clock, milliseconds since the epoch; default Date.now. */
  now?: () => number;
  /** Optional store for the last good key set per issuer; default none. */
  persistence?: JwksPersistence;
  /** Concurrent JWKS misses join one in-flight fetch; default true, false on Cloudflare Workers. */
  shareInFlight?: boolean;
  /**
   * Told about each key a fetched or persisted JWKS leaves out (kid and reason, never key
   * material), once per change of that list; default a `gatehouse.jwks_key_skipped` JSON line on
   * console.warn; null says nothing.
   */
  onKeySkipped?: ((event: KeySkippedEvent) => void) | null;
}

/** A key of a remote JWKS that is not used, for logs. */
export interface KeySkippedEvent {
  readonly issuer: string;
  /** The key's kid when it has a well-formed one (see the kid rule), otherwise undefined. */
  readonly kid: string | undefined;
  /** Why, e.g. `public exponent even, under 3 or over 32 bits`; never key material. */
  readonly reason: string;
}

export interface VerifyResult {
  readonly principal: Principal;
  /** 'hit' when the verified-token cache answered (no parsing, no signature work). */
  readonly cache: 'hit' | 'miss';
}

export interface TokenVerifier {
  /** Verifies a compact JWS; throws TokenError on any failure. */
  verify(token: string): Promise<VerifyResult>;
  /**
   * The verified-token cache's answer for `token`, synchronously, or undefined (then call
   * verify). Lets a hot path skip a promise per request; optional for custom verifiers.
   */
  cached?(token: string): VerifyResult | undefined;
}

/** Shape returned by {@link precheckToken}. */
export interface PrecheckedToken {
  /** The parsed header; may be frozen and shared by tokens with the same header segment. */
  readonly header: Readonly<Record<string, unknown>>;
  readonly payload: Record<string, unknown>;
  readonly signature: Uint8Array;
  /** `base64url(header) + '.' + base64url(payload)`, the bytes the signature covers (RFC 7515 §5.2). */
  readonly signingInput: string;
}
