/**
 * A remote JWKS per issuer: fetched on demand, fresh for a TTL, refetched on an unknown `kid`
 * at most once per cooldown (so a flood of random kids costs one fetch), served stale up to a
 * bound while the endpoint fails, and optionally seeded from a persistence hook on cold start.
 */
import { TokenError } from '../errors.ts';
import {
  type BoundKey,
  buildKeySet,
  importCandidate,
  type KeySet,
  type KeySource,
  lookupError,
  lookupKey,
  selectKeySet,
} from './keys.ts';
import type { Algorithm, JSONWebKeySet, JwksPersistence } from './options.ts';

export interface RemoteJwksOptions {
  readonly issuer: string;
  readonly uri: string;
  /** The issuer's algorithm allowlist; keys outside it are skipped. */
  readonly algorithms: readonly Algorithm[];
  readonly ttlMs: number;
  readonly cooldownMs: number;
  readonly timeoutMs: number;
  readonly maxStaleMs: number;
  readonly fetch: typeof fetch;
  readonly now: () => number;
  readonly persistence: JwksPersistence | undefined;
  /**
   * Whether concurrent callers join one pending fetch. Off on Workers: a promise started by one
   * request must not be awaited by another (jose src/jwks/remote.ts, issues 355 and 509).
   */
  readonly shareInFlight: boolean;
}

/** Upper bound on a JWKS document, characters; real key sets are a few KiB. */
const MAX_JWKS_CHARS = 1 << 20;

export class RemoteJwksSource implements KeySource {
  version = 0;
  readonly #o: RemoteJwksOptions;
  #set: KeySet | null = null;
  #fingerprint = '';
  #stored: JSONWebKeySet | null = null;
  #fetchedAt = Number.NEGATIVE_INFINITY;
  #lastAttemptAt = Number.NEGATIVE_INFINITY;
  #lastFailed = false;
  #loadTried = false;
  #loading: Promise<void> | null = null;
  #inFlight: Promise<void> | null = null;

  constructor(options: RemoteJwksOptions) {
    this.#o = options;
    if (options.persistence === undefined) this.#loadTried = true;
  }

  get freshUntil(): number {
    return this.#fetchedAt + this.#o.ttlMs;
  }

  resolve(kid: string | undefined, alg: Algorithm): BoundKey | Promise<BoundKey> {
    const set = this.#set;
    if (set !== null && this.#o.now() < this.#fetchedAt + this.#o.ttlMs) {
      const found = lookupKey(set, kid, alg, false);
      if (typeof found !== 'string') return found;
    }
    return this.#resolveSlow(kid, alg);
  }

  async #resolveSlow(kid: string | undefined, alg: Algorithm): Promise<BoundKey> {
    if (this.#set === null && !this.#loadTried) await this.#loadPersisted();
    const now = this.#o.now();
    if (this.#set !== null && now < this.#fetchedAt + this.#o.ttlMs) {
      const found = lookupKey(this.#set, kid, alg, false);
      if (typeof found !== 'string') return found;
      if (found === 'mismatch') throw lookupError(found);
      // An unknown kid may be a rotation: join a fetch already under way, or start one, but
      // start at most one per cooldown.
      if (this.#inFlight !== null) await this.#inFlight;
      else if (this.#cooledDown(now)) await this.#refresh();
      else throw lookupError(found);
    } else if (this.#set === null && !this.#lastFailed) {
      // Cold: nothing to serve, nothing has failed yet.
      await this.#refresh();
    } else if (this.#cooledDown(now)) {
      // Stale keys, or a cold start whose last attempt failed: retry at most once per cooldown.
      await this.#refresh();
    }
    const set = this.#set;
    if (set === null || this.#o.now() - this.#fetchedAt > this.#o.maxStaleMs) {
      throw new TokenError('keys_unavailable', 'issuer keys are unavailable');
    }
    const found = lookupKey(set, kid, alg, false);
    if (typeof found === 'string') throw lookupError(found);
    return found;
  }

  #cooledDown(now: number): boolean {
    return now - this.#lastAttemptAt >= this.#o.cooldownMs;
  }

  #refresh(): Promise<void> {
    if (!this.#o.shareInFlight) return this.#fetchOnce();
    this.#inFlight ??= this.#fetchOnce().finally(() => {
      this.#inFlight = null;
    });
    return this.#inFlight;
  }

  async #fetchOnce(): Promise<void> {
    const startedAt = this.#o.now();
    this.#lastAttemptAt = startedAt;
    let stored: JSONWebKeySet | null;
    try {
      stored = await this.#install(await this.#download(), startedAt);
    } catch {
      stored = null;
    }
    this.#lastFailed = stored === null;
    if (stored !== null && this.#o.persistence !== undefined) {
      try {
        await this.#o.persistence.save(this.#o.issuer, stored);
      } catch {
        // Persistence is an optimisation; its failure never affects verification.
      }
    }
  }

  async #download(): Promise<unknown> {
    const fetchImpl = this.#o.fetch;
    const response = await fetchImpl(this.#o.uri, {
      headers: { accept: 'application/json' },
      signal: AbortSignal.timeout(this.#o.timeoutMs),
    });
    if (!response.ok) throw new Error(`JWKS endpoint answered ${response.status}`);
    const text = await response.text();
    if (text.length > MAX_JWKS_CHARS) throw new Error('JWKS document too large');
    return JSON.parse(text);
  }

  /**
   * Installs a document's usable keys, fresh from `at`. Returns what to persist, or null when
   * the document is not a key set or has no usable key (the last good keys then stay in use).
   */
  async #install(document: unknown, at: number): Promise<JSONWebKeySet | null> {
    const candidates = selectKeySet(document, this.#o.algorithms);
    if (candidates === null) return null;
    // Unchanged key set: keep the imported keys and the version (cached tokens stay valid).
    const fingerprint = JSON.stringify(candidates.map((c) => c.stored));
    if (fingerprint !== this.#fingerprint || this.#set === null) {
      const imported = await Promise.all(candidates.map(importCandidate));
      const keys = imported.filter((k): k is BoundKey => k !== null);
      if (keys.length === 0) return null;
      const version = this.version + 1;
      this.#set = buildKeySet(keys.map((key) => ({ ...key, version })));
      this.#stored = {
        keys: candidates.filter((_, i) => imported[i] !== null).map((c) => c.stored),
      } as unknown as JSONWebKeySet;
      this.#fingerprint = fingerprint;
      this.version = version;
    }
    this.#fetchedAt = Math.max(this.#fetchedAt, at);
    return this.#stored;
  }

  #loadPersisted(): Promise<void> {
    if (!this.#o.shareInFlight) return this.#loadOnce();
    this.#loading ??= this.#loadOnce();
    return this.#loading;
  }

  async #loadOnce(): Promise<void> {
    const persistence = this.#o.persistence;
    try {
      const at = this.#o.now();
      const document = await persistence?.load(this.#o.issuer);
      // The stored set's age is unknown; it counts as fetched now, so TTL and maximum
      // staleness run from the load.
      if (document != null && this.#set === null) await this.#install(document, at);
    } catch {
      // A failed load is a cold start like any other.
    } finally {
      this.#loadTried = true;
    }
  }
}
