/**
 * The verified-token cache: a bounded LRU keyed by the exact token string. Not by a short or
 * non-cryptographic hash: two tokens sharing a key would let one stand in for the other. A hit
 * costs a Map lookup and two comparisons, with no parsing and no signature work.
 */
import type { KeySource } from './keys.ts';
import type { VerifyResult } from './options.ts';

export interface CacheEntry {
  /** The frozen result returned on a hit. */
  readonly result: VerifyResult;
  /** Milliseconds since the epoch: min(exp + leeway, max-age deadline, key freshness). */
  readonly validUntil: number;
  readonly source: KeySource;
  /** The key-set version that verified the token; any change voids the entry. */
  readonly version: number;
}

export class TokenCache {
  readonly #maxEntries: number;
  // A Map iterates in insertion order; re-inserting on a hit makes the first key the LRU one.
  readonly #entries = new Map<string, CacheEntry>();

  constructor(maxEntries: number) {
    this.#maxEntries = maxEntries;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(token: string, now: number): VerifyResult | undefined {
    const entry = this.#entries.get(token);
    if (entry === undefined) return undefined;
    this.#entries.delete(token);
    if (now >= entry.validUntil || entry.source.version !== entry.version) return undefined;
    this.#entries.set(token, entry);
    return entry.result;
  }

  set(token: string, entry: CacheEntry): void {
    this.#entries.delete(token);
    this.#entries.set(token, entry);
    if (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
  }
}
