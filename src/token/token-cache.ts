/**
 * The verified-token cache: a bounded, approximately-LRU map whose identity is the exact token
 * string. Not a short or non-cryptographic hash: two tokens sharing an identity would let one
 * stand in for the other. A hit costs one short Map lookup and one string comparison, with no
 * parsing and no signature work.
 *
 * Why not `Map<token, entry>`: hashing a 500–1000 character token string on every request cost
 * ~0.8 µs in Node 22, more than the rest of a cached decision. The Map is instead indexed by a
 * 30-bit number (a small integer, so the key allocates nothing) hashed from the token's last 12
 * characters (signature bytes, effectively random for tokens an issuer signed), and a hit is
 * confirmed by comparing the whole token. A bucket collision can only cause a miss (and a
 * re-verification) or evict the other token, never a hit for a different token. Only verified
 * tokens are ever inserted, so an attacker cannot plant entries by choosing suffixes.
 *
 * Admission: a token enters the cache on its second verification, not its first. On a busy
 * authorizer many tokens are seen once, and caching one costs more than it saves: its entry and
 * principal outlive the young generation, about 1.7 µs on every fresh decision in Node 22
 * (issue 11), and it pushes out entries that repeat. A token used twice is likely to be used
 * again. First sightings go into a fixed table of 32-bit fingerprints (no allocation); a
 * collision can only admit a token one verification early or late, never answer for another
 * token.
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

interface Slot {
  readonly token: string;
  readonly entry: CacheEntry;
  /** Insertion sequence number; the Map's iteration order follows it. */
  seq: number;
}

/** Characters of the token's end (signature) hashed into its fingerprint. */
const FINGERPRINT_CHARS = 12;

function fingerprint(token: string): number {
  let hash = 0;
  for (let i = Math.max(0, token.length - FINGERPRINT_CHARS); i < token.length; i++) {
    hash = (Math.imul(hash, 31) + token.charCodeAt(i)) | 0;
  }
  return hash;
}

/** The Map key: the fingerprint cut to 30 bits, which V8 keeps as a small integer. */
function bucketOf(token: string): number {
  return fingerprint(token) & 0x3fffffff;
}

export class TokenCache {
  readonly #maxEntries: number;
  // A Map iterates in insertion order, so the first key is the least recently (re)inserted.
  readonly #slots = new Map<number, Slot>();
  #seq = 0;

  /** Fingerprints of tokens verified once (see admission); a power-of-two table. */
  readonly #seen: Int32Array;

  constructor(maxEntries: number) {
    this.#maxEntries = maxEntries;
    // Twice the entries, within 64..65536 slots (256 KiB at most).
    const slots = 2 ** Math.min(16, Math.max(6, Math.ceil(Math.log2(maxEntries * 2))));
    this.#seen = new Int32Array(slots);
  }

  /**
   * Whether a token that just verified should be cached: true from its second verification on
   * (see admission). The first call for a token only notes its fingerprint.
   */
  admit(token: string): boolean {
    const print = fingerprint(token);
    const slot = print & (this.#seen.length - 1);
    if (this.#seen[slot] === print) return true;
    this.#seen[slot] = print;
    return false;
  }

  get size(): number {
    return this.#slots.size;
  }

  /** `now` (a clock, ms) is read only when the token is there: a miss costs no clock read. */
  get(token: string, now: () => number): VerifyResult | undefined {
    const bucket = bucketOf(token);
    const slot = this.#slots.get(bucket);
    if (slot === undefined || slot.token !== token) return undefined;
    const entry = slot.entry;
    if (now() >= entry.validUntil || entry.source.version !== entry.version) {
      this.#slots.delete(bucket);
      return undefined;
    }
    // Approximate LRU: moving every hit to the back costs a delete and an insert per request;
    // moving only entries that have drifted into the older half keeps hot tokens safe from
    // eviction at a fraction of the cost.
    if (this.#seq - slot.seq >= this.#maxEntries >> 1) {
      this.#slots.delete(bucket);
      slot.seq = ++this.#seq;
      this.#slots.set(bucket, slot);
    }
    return entry.result;
  }

  set(token: string, entry: CacheEntry): void {
    const bucket = bucketOf(token);
    this.#slots.delete(bucket);
    this.#slots.set(bucket, { token, entry, seq: ++this.#seq });
    if (this.#slots.size > this.#maxEntries) {
      const oldest = this.#slots.keys().next();
      if (!oldest.done) this.#slots.delete(oldest.value);
    }
  }
}
