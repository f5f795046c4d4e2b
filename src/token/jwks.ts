/**
 * A remote JWKS per issuer: fetched on demand, fresh for a TTL, refetched on an unknown `kid`
 * at most once per cooldown (so a flood of random kids costs one fetch), served stale up to a
 * bound while the endpoint fails, and optionally seeded from a persistence hook on cold start.
 *
 * Every fetch start, cold start included, counts against the cooldown. Without `shareInFlight`
 * (Workers), no promise crosses requests: a cold request that finds a fetch already started
 * polls this object's plain state (its own timers) until that fetch settles or `timeoutMs`
 * plus a little passes, then uses its keys or fails closed with `keys_unavailable`. Fetches
 * are numbered; one that settles after a later fetch installed keys is ignored, so a slow
 * pre-rotation answer never rolls the set back.
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
  type SkippedKey,
  selectKeySet,
} from './keys.ts';
import type {
  Algorithm,
  JSONWebKeySet,
  JwksPersistence,
  KeySkippedEvent,
  PersistedJwks,
} from './options.ts';
import type { SignatureBackend } from './signature.ts';

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
  /** Told about each key a fetched or loaded set leaves out; null says nothing. */
  readonly onKeySkipped: ((event: KeySkippedEvent) => void) | null;
  /** Imports the keys and verifies with them (signature.ts). */
  readonly backend: SignatureBackend;
}

/** Upper bound on a JWKS document, characters; real key sets are a few KiB. */
const MAX_JWKS_CHARS = 1 << 20;

/** Beyond the fetch timeout, how long a cold request waits for a fetch another one started. */
const WAIT_SLACK_MS = 250;
const WAIT_FIRST_POLL_MS = 5;
const WAIT_MAX_POLL_MS = 100;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** What a fetch or load did: keys to persist, nothing usable, or superseded by a newer fetch. */
type Installed = JSONWebKeySet | 'unusable' | 'outdated';

/** A persisted entry as the verifier reads it: `{ jwks, fetchedAt }`, or a legacy bare set. */
function readPersisted(
  value: unknown,
  now: number,
): { document: unknown; fetchedAt: number } | null {
  if (typeof value !== 'object' || value === null) return null;
  if (Object.hasOwn(value, 'jwks') || Object.hasOwn(value, 'fetchedAt')) {
    const { jwks, fetchedAt } = value as Partial<PersistedJwks>;
    // Without a trustworthy time the entry could outlive the staleness bound: discard it.
    if (typeof fetchedAt !== 'number' || !Number.isFinite(fetchedAt)) return null;
    // A time in the future (another machine's clock) must not extend freshness.
    return { document: jwks, fetchedAt: Math.min(fetchedAt, now) };
  }
  // Legacy: a bare key set of unknown age counts as fetched now (see JwksPersistence).
  return { document: value, fetchedAt: now };
}

export class RemoteJwksSource implements KeySource {
  version = 0;
  readonly #o: RemoteJwksOptions;
  #set: KeySet | null = null;
  #fingerprint = '';
  /** Keys of the installed set that the runtime refused, and the last list of skipped keys told. */
  #importSkipped: readonly SkippedKey[] = [];
  #reported = '[]';
  #stored: JSONWebKeySet | null = null;
  #fetchedAt = Number.NEGATIVE_INFINITY;
  #lastAttemptAt = Number.NEGATIVE_INFINITY;
  /** Number of the last fetch started, of the last one settled, and of the one installed. */
  #startedSeq = 0;
  #settledSeq = 0;
  #installedSeq = 0;
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
      // start at most one per cooldown. Without sharing, a request arriving while another's
      // refetch runs gets token_unknown_key (fails closed) rather than waiting.
      if (this.#inFlight !== null) await this.#inFlight;
      else if (this.#cooledDown(now)) await this.#refresh();
      else throw lookupError(found);
    } else if (this.#set === null) {
      // Cold: the first request fetches; the cooldown bounds fetches exactly as when warm.
      if (this.#inFlight !== null) await this.#inFlight;
      else if (this.#cooledDown(now)) await this.#refresh();
      else if (this.#settledSeq < this.#startedSeq) await this.#awaitFetch(this.#startedSeq);
    } else if (this.#cooledDown(now)) {
      // Stale keys: retry at most once per cooldown, serving them meanwhile.
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

  /**
   * Waits, without touching another request's promise, until fetch `seq` settles or keys are
   * installed, for at most the fetch timeout plus WAIT_SLACK_MS (the fetch is aborted by then;
   * if the request that started it was cancelled, it may never settle).
   */
  async #awaitFetch(seq: number): Promise<void> {
    const limit = this.#o.timeoutMs + WAIT_SLACK_MS;
    let waited = 0;
    let delay = WAIT_FIRST_POLL_MS;
    while (this.#set === null && this.#settledSeq < seq && waited < limit) {
      const step = Math.min(delay, limit - waited);
      await sleep(step);
      waited += step;
      delay = Math.min(delay * 2, WAIT_MAX_POLL_MS);
    }
  }

  #refresh(): Promise<void> {
    if (!this.#o.shareInFlight) return this.#fetchOnce();
    this.#inFlight ??= this.#fetchOnce().finally(() => {
      this.#inFlight = null;
    });
    return this.#inFlight;
  }

  async #fetchOnce(): Promise<void> {
    const seq = ++this.#startedSeq;
    const startedAt = this.#o.now();
    this.#lastAttemptAt = startedAt;
    let result: Installed;
    try {
      result = await this.#install(await this.#download(), startedAt, seq);
    } catch {
      result = 'unusable';
    }
    this.#settledSeq = Math.max(this.#settledSeq, seq);
    if (typeof result === 'string' || this.#o.persistence === undefined) return;
    try {
      await this.#o.persistence.save(this.#o.issuer, result, { fetchedAt: startedAt });
    } catch {
      // Persistence is an optimisation; its failure never affects verification.
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
   * Installs a document's usable keys, fetched at `at` by fetch `seq` (0 for a persisted set).
   * Returns what to persist; 'unusable' when the document is not a key set or has no usable key
   * (the last good keys then stay in use); 'outdated' when a later fetch already installed keys.
   */
  async #install(document: unknown, at: number, seq: number): Promise<Installed> {
    const selection = selectKeySet(document, this.#o.algorithms);
    if (selection === null) return 'unusable';
    if (seq < this.#installedSeq) return 'outdated';
    const { candidates } = selection;
    // Unchanged key set: keep the imported keys and the version (cached tokens stay valid).
    const fingerprint = JSON.stringify(candidates.map((c) => c.stored));
    if (fingerprint !== this.#fingerprint || this.#set === null) {
      const imported = await Promise.all(
        candidates.map((c) => importCandidate(this.#o.backend, c)),
      );
      const keys = imported.filter((k): k is BoundKey => k !== null);
      const refused = candidates
        .filter((_, i) => imported[i] === null)
        .map((c) => ({ kid: c.kid, reason: 'refused at import' }));
      this.#report([...selection.skipped, ...refused]);
      if (keys.length === 0) return 'unusable';
      // Another fetch may have installed keys while these were imported.
      if (seq < this.#installedSeq) return 'outdated';
      this.#importSkipped = refused;
      const version = this.version + 1;
      this.#set = buildKeySet(keys.map((key) => ({ ...key, version })));
      this.#stored = {
        keys: candidates.filter((_, i) => imported[i] !== null).map((c) => c.stored),
      } as unknown as JSONWebKeySet;
      this.#fingerprint = fingerprint;
      this.version = version;
    } else {
      this.#report([...selection.skipped, ...this.#importSkipped]);
    }
    this.#installedSeq = seq;
    this.#fetchedAt = Math.max(this.#fetchedAt, at);
    return this.#stored ?? 'unusable';
  }

  /**
   * Tells about the keys a set leaves out (a weak RSA key in a rotation, say), once per change of
   * that list rather than on every refetch of the same document. Kid and reason only.
   */
  #report(skipped: readonly SkippedKey[]): void {
    const onKeySkipped = this.#o.onKeySkipped;
    const report = JSON.stringify(skipped);
    if (onKeySkipped === null || report === this.#reported) return;
    this.#reported = report;
    for (const { kid, reason } of skipped) {
      try {
        onKeySkipped({ issuer: this.#o.issuer, kid, reason });
      } catch {
        // A failing log sink never affects verification.
      }
    }
  }

  #loadPersisted(): Promise<void> {
    if (!this.#o.shareInFlight) return this.#loadOnce();
    this.#loading ??= this.#loadOnce();
    return this.#loading;
  }

  async #loadOnce(): Promise<void> {
    const persistence = this.#o.persistence;
    try {
      const value = await persistence?.load(this.#o.issuer);
      const now = this.#o.now();
      const entry = readPersisted(value, now);
      // TTL and maximum staleness run from the stored fetch time: a set past the bound is never
      // installed, one past the TTL is installed stale (the first request then refetches).
      if (entry !== null && this.#set === null && now - entry.fetchedAt <= this.#o.maxStaleMs) {
        await this.#install(entry.document, entry.fetchedAt, 0);
      }
    } catch {
      // A failed load is a cold start like any other.
    } finally {
      this.#loadTried = true;
    }
  }
}
