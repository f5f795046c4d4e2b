/**
 * A bounded TTL cache in front of any {@link PermissionStore}, so a hot subject costs one store
 * read per TTL and concurrent misses for one key cost one read between them.
 *
 * Staleness is bounded: a revocation is seen at most `ttlSeconds` later (plus
 * `staleIfErrorSeconds` while the store is failing, when that is turned on). Errors are never
 * cached and, by default, never answered from an expired entry: a store outage fails closed.
 *
 * Single-flight shares one pending load among concurrent callers. A CachedStore kept per Worker
 * isolate therefore lets one request await a load started by another (jose avoids exactly that
 * for JWKS fetches, issues 355 and 509); the Worker wiring decides whether that is acceptable.
 * A load that has not settled within `loadTimeoutMs` (a promise whose request was cancelled may
 * never settle) fails every caller that joined it with `store_unavailable` and frees the slot;
 * its late result, if any, is discarded.
 *
 * Every loaded record goes through records.ts ({@link trustedUser}, {@link trustedRoles}): own
 * data only, and at most `maxRecordEntries` entries per store key, checked before the core
 * compiles anything. A record refused for its content (too large, malformed) writes one log
 * line per load naming its encoded key, never its contents; concurrent callers share the load,
 * so they share the line.
 */

import { ConfigError, numberOption, StoreError } from '../errors.ts';
import type { PermissionStore, Principal, RoleRecord, SubjectKey, UserRecord } from '../types.ts';
import { subjectStorageKey, tenantStorageKey } from './keys.ts';
import { maxRecordEntriesOption, trustedRoles, trustedUser } from './records.ts';

export interface CacheOptions {
  /** Seconds a record or role list stays fresh; default 30, 0 to 3600 (0: single-flight only). */
  readonly ttlSeconds?: number;
  /** Seconds a "no such user" answer stays fresh; default 5, 0 to 3600. */
  readonly negativeTtlSeconds?: number;
  /** Entries per cache (users, role lists) before LRU eviction; default 10000, 1 to 10000000. */
  readonly maxEntries?: number;
  /** Seconds past expiry an entry serves while the store fails; default 0 (off), 0 to 86400. */
  readonly staleIfErrorSeconds?: number;
  /**
   * Milliseconds a store load may take before every caller waiting on it gets `store_unavailable`;
   * default 5000, 100 to 60000. Measured with real timers, not the `now` clock.
   */
  readonly loadTimeoutMs?: number;
  /** Clock in milliseconds since the epoch; default `Date.now`. Injected so tests fake time. */
  readonly now?: () => number;
  /**
   * Entries one store key may hold (a subject's assignments + grants + denies, or a tenant's
   * roles with theirs); default 10000, 1 to 1000000. A larger record is a 503 (records.ts).
   */
  readonly maxRecordEntries?: number;
  /**
   * Receives one entry per record refused for its content (`store_record_too_large`,
   * `store_invalid_record` with a key): level, msg, code, store kind and encoded key, never the
   * record. Default: a JSON line on console.error. Exceptions are swallowed.
   */
  readonly log?: (entry: Readonly<Record<string, unknown>>) => void;
}

/** Where a refused record is reported when no `log` is given (a JSON line, as on Lambda). */
function consoleLog(entry: Readonly<Record<string, unknown>>): void {
  console.error(JSON.stringify(entry));
}

/** Counters since construction, for tests and logs. */
export interface CacheStats {
  /** Lookups answered from a fresh entry. */
  readonly hits: number;
  /** Lookups that needed the inner store (including bypassed ones). */
  readonly misses: number;
  /** Calls made to the inner store. */
  readonly loads: number;
  /** Inner store calls that failed. */
  readonly errors: number;
  /** Failed lookups answered from an expired entry (stale-if-error). */
  readonly stale: number;
  /** Entries dropped to stay within `maxEntries`. */
  readonly evictions: number;
}

/** Which path answered a lookup; the decision reports it as a cache hint. */
export type CacheOutcome = 'hit' | 'miss' | 'stale';

export interface UserLookup {
  readonly record: UserRecord | null;
  readonly cache: CacheOutcome;
  /**
   * Milliseconds since the epoch (the cache's clock) until which this answer is fresh: when the
   * entry served expires. A `stale` answer is fresh until now (already past it); a record the
   * cache never holds (a claims store, which depends on the token) is `Infinity`.
   */
  readonly freshUntil: number;
}

export interface RolesLookup {
  readonly roles: readonly RoleRecord[];
  readonly cache: CacheOutcome;
  /** As {@link UserLookup.freshUntil}. */
  readonly freshUntil: number;
}

/** A cached value and the time (ms) after which it is no longer fresh. */
class ExpirableValue<T> {
  readonly value: T;
  readonly expiresAt: number;
  /** Insertion sequence in its LruMap (the Map's iteration order follows it). */
  seq = 0;

  constructor(value: T, ttlMs: number, now: number) {
    this.value = value;
    this.expiresAt = now + ttlMs;
  }

  isExpired(now: number): boolean {
    return now >= this.expiresAt;
  }
}

/** LRU by Map insertion order: a hit re-inserts its key, so the first key is the coldest. */
class LruMap<T> {
  readonly #entries = new Map<string, ExpirableValue<T>>();
  readonly #max: number;
  #seq = 0;
  readonly #onEvict: () => void;

  constructor(max: number, onEvict: () => void) {
    this.#max = max;
    this.#onEvict = onEvict;
  }

  peek(key: string): ExpirableValue<T> | undefined {
    return this.#entries.get(key);
  }

  /**
   * Approximate LRU: moving every hit to the back costs a delete and an insert per request;
   * moving only entries that have drifted into the older half keeps hot keys safe from eviction
   * at a fraction of the cost.
   */
  touch(key: string, entry: ExpirableValue<T>): void {
    if (this.#seq - entry.seq < this.#max >> 1) return;
    this.#entries.delete(key);
    entry.seq = ++this.#seq;
    this.#entries.set(key, entry);
  }

  set(key: string, entry: ExpirableValue<T>): void {
    this.#entries.delete(key);
    entry.seq = ++this.#seq;
    this.#entries.set(key, entry);
    while (this.#entries.size > this.#max) {
      const coldest = this.#entries.keys().next();
      if (coldest.done) break;
      this.#entries.delete(coldest.value);
      this.#onEvict();
    }
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }

  clear(): void {
    this.#entries.clear();
  }
}

function checkNumber(
  options: CacheOptions,
  key: 'ttlSeconds' | 'negativeTtlSeconds' | 'maxEntries' | 'staleIfErrorSeconds' | 'loadTimeoutMs',
  fallback: number,
  min: number,
  max: number,
  integer: boolean,
): number {
  return numberOption(options[key], `cache.${key}`, min, max, fallback, integer);
}

function toStoreError(error: unknown, kind: string): StoreError {
  if (error instanceof StoreError) return error;
  // The inner message may quote backend details; keep it only as the cause.
  return new StoreError('store_unavailable', `permission store (${kind}) unavailable`, {
    cause: error,
  });
}

/** A loaded value and when (ms) the entry holding it stops being fresh. */
interface Loaded<T> {
  readonly value: T;
  readonly expiresAt: number;
}

/** Stores whose user records depend on the token (ClaimsStore) say `cacheable: false`. */
type MaybeCacheable = PermissionStore & { readonly cacheable?: boolean };

export class CachedStore implements PermissionStore {
  readonly kind: string;
  readonly #inner: PermissionStore;
  readonly #bypassUsers: boolean;
  readonly #ttlMs: number;
  readonly #negativeTtlMs: number;
  readonly #staleMs: number;
  readonly #loadTimeoutMs: number;
  readonly #maxRecordEntries: number;
  readonly #log: (entry: Readonly<Record<string, unknown>>) => void;
  readonly #now: () => number;
  readonly #users: LruMap<UserRecord | null>;
  readonly #roles: LruMap<readonly RoleRecord[]>;
  readonly #userLoads = new Map<string, Promise<Loaded<UserRecord | null>>>();
  readonly #roleLoads = new Map<string, Promise<Loaded<readonly RoleRecord[]>>>();
  #hits = 0;
  #misses = 0;
  #loads = 0;
  #errors = 0;
  #stale = 0;
  #evictions = 0;

  /** Validates the options now; a bad one throws {@link ConfigError} naming it (`cache.now`). */
  constructor(inner: PermissionStore, options: CacheOptions = {}) {
    this.kind = inner.kind;
    this.#inner = inner;
    this.#bypassUsers = (inner as MaybeCacheable).cacheable === false;
    this.#ttlMs = checkNumber(options, 'ttlSeconds', 30, 0, 3600, false) * 1000;
    this.#negativeTtlMs = checkNumber(options, 'negativeTtlSeconds', 5, 0, 3600, false) * 1000;
    // The policy schema allows up to 10 million; the maps grow on demand, so the bound costs
    // nothing until it is used.
    const maxEntries = checkNumber(options, 'maxEntries', 10_000, 1, 10_000_000, true);
    this.#staleMs = checkNumber(options, 'staleIfErrorSeconds', 0, 0, 86_400, false) * 1000;
    this.#loadTimeoutMs = checkNumber(options, 'loadTimeoutMs', 5000, 100, 60_000, false);
    if (options.now !== undefined && typeof options.now !== 'function') {
      throw new ConfigError(
        'cache.now',
        'expected a function returning milliseconds since the epoch',
      );
    }
    this.#now = options.now ?? Date.now;
    this.#maxRecordEntries = maxRecordEntriesOption(
      options.maxRecordEntries,
      'cache.maxRecordEntries',
    );
    if (options.log !== undefined && typeof options.log !== 'function') {
      throw new ConfigError('cache.log', 'expected a function receiving one log entry');
    }
    this.#log = options.log ?? consoleLog;
    const onEvict = () => {
      this.#evictions++;
    };
    this.#users = new LruMap(maxEntries, onEvict);
    this.#roles = new LruMap(maxEntries, onEvict);
  }

  /** Entries one store key may hold; the core bounds role expansion by the same number. */
  get maxRecordEntries(): number {
    return this.#maxRecordEntries;
  }

  /**
   * Writes the one log line for a record refused for its content found after loading (a
   * principal whose roles expand past the bound); anything else is ignored.
   */
  reportRefusal(error: unknown): void {
    this.#logRefusal(error);
  }

  get stats(): CacheStats {
    return Object.freeze({
      hits: this.#hits,
      misses: this.#misses,
      loads: this.#loads,
      errors: this.#errors,
      stale: this.#stale,
      evictions: this.#evictions,
    });
  }

  async getUser(key: SubjectKey, principal?: Principal): Promise<UserRecord | null> {
    return (await this.lookupUser(key, principal)).record;
  }

  async getRoles(tenant: string | undefined): Promise<readonly RoleRecord[]> {
    return (await this.lookupRoles(tenant)).roles;
  }

  /** The user record and which path answered it. Rejects only with {@link StoreError}. */
  async lookupUser(key: SubjectKey, principal?: Principal): Promise<UserLookup> {
    if (this.#bypassUsers) {
      // The record comes from the token, so caching it by subject would serve one token's
      // permissions for another token of the same subject.
      this.#misses++;
      const record = await this.#bypass(key, principal);
      return { record, cache: 'miss', freshUntil: Number.POSITIVE_INFINITY };
    }
    const cacheKey = subjectStorageKey(key);
    const { value, cache, freshUntil } = await this.#lookup(
      this.#users,
      this.#userLoads,
      cacheKey,
      () => this.#loadUser(key, cacheKey, principal),
    );
    return { record: value, cache, freshUntil };
  }

  /**
   * A fresh cached record without waiting, or undefined (then use {@link lookupUser}). Lets a hot
   * path skip the promise machinery on the common case; counts as a hit.
   */
  peekUser(key: SubjectKey): UserLookup | undefined {
    if (this.#bypassUsers) return undefined;
    const hit = this.#peekFresh(this.#users, subjectStorageKey(key));
    return hit && { record: hit.value, cache: 'hit', freshUntil: hit.expiresAt };
  }

  /** As {@link peekUser}, for a tenant's roles. */
  peekRoles(tenant: string | undefined): RolesLookup | undefined {
    const hit = this.#peekFresh(this.#roles, tenantStorageKey(tenant));
    return hit && { roles: hit.value, cache: 'hit', freshUntil: hit.expiresAt };
  }

  #peekFresh<T>(entries: LruMap<T>, key: string): ExpirableValue<T> | undefined {
    const cached = entries.peek(key);
    if (cached === undefined || cached.isExpired(this.#now())) return undefined;
    this.#hits++;
    entries.touch(key, cached);
    return cached;
  }

  /** The tenant's store roles and which path answered. Rejects only with {@link StoreError}. */
  async lookupRoles(tenant: string | undefined): Promise<RolesLookup> {
    const { value, cache, freshUntil } = await this.#lookup(
      this.#roles,
      this.#roleLoads,
      tenantStorageKey(tenant),
      async () =>
        trustedRoles(
          await this.#inner.getRoles(tenant),
          { kind: this.kind, key: tenantStorageKey(tenant) },
          this.#maxRecordEntries,
        ),
    );
    return { roles: value, cache, freshUntil };
  }

  /** Drops the cached record of one subject, or of every subject. Roles are kept. */
  invalidate(key?: SubjectKey): void {
    if (key === undefined) {
      this.#users.clear();
      this.#userLoads.clear();
      return;
    }
    const cacheKey = subjectStorageKey(key);
    this.#users.delete(cacheKey);
    // A load already under way may have read the old data; it must not refill the cache.
    this.#userLoads.delete(cacheKey);
  }

  /** Drops one tenant's roles (`undefined`: the untenanted ones), or all without an argument. */
  invalidateRoles(): void;
  invalidateRoles(tenant: string | undefined): void;
  invalidateRoles(...args: [] | [string | undefined]): void {
    if (args.length === 0) {
      this.#roles.clear();
      this.#roleLoads.clear();
      return;
    }
    const cacheKey = tenantStorageKey(args[0]);
    this.#roles.delete(cacheKey);
    this.#roleLoads.delete(cacheKey);
  }

  async #loadUser(
    key: SubjectKey,
    cacheKey: string,
    principal: Principal | undefined,
  ): Promise<UserRecord | null> {
    const record = await this.#inner.getUser(key, principal);
    return trustedUser(record, { kind: this.kind, key: cacheKey }, this.#maxRecordEntries);
  }

  async #bypass(key: SubjectKey, principal: Principal | undefined): Promise<UserRecord | null> {
    this.#loads++;
    try {
      return await this.#loadUser(key, subjectStorageKey(key), principal);
    } catch (error) {
      this.#errors++;
      this.#logRefusal(error);
      throw toStoreError(error, this.kind);
    }
  }

  /** One line for a record refused for its content; a store that is down is not logged here. */
  #logRefusal(error: unknown): void {
    if (!(error instanceof StoreError) || error.key === undefined) return;
    try {
      this.#log({
        level: 'error',
        msg: 'permission store record refused',
        code: error.code,
        store: this.kind,
        key: error.key,
        ...(error.code === 'store_record_too_large' && {
          maxRecordEntries: this.#maxRecordEntries,
        }),
      });
    } catch {
      // A broken sink must not turn a 503 into something else.
    }
  }

  async #lookup<T>(
    entries: LruMap<T>,
    loads: Map<string, Promise<Loaded<T>>>,
    key: string,
    load: () => Promise<T>,
  ): Promise<{ value: T; cache: CacheOutcome; freshUntil: number }> {
    const cached = this.#peekFresh(entries, key);
    if (cached !== undefined) {
      return { value: cached.value, cache: 'hit', freshUntil: cached.expiresAt };
    }
    this.#misses++;
    try {
      const loaded = await this.#singleFlight(entries, loads, key, load);
      return { value: loaded.value, cache: 'miss', freshUntil: loaded.expiresAt };
    } catch (error) {
      const stale = entries.peek(key);
      const now = this.#now();
      if (stale !== undefined && this.#staleMs > 0 && now - stale.expiresAt <= this.#staleMs) {
        this.#stale++;
        return { value: stale.value, cache: 'stale', freshUntil: now };
      }
      throw toStoreError(error, this.kind);
    }
  }

  /**
   * Concurrent misses for one key share the first caller's load; the slot empties on settling,
   * or on timing out after `loadTimeoutMs`, whichever comes first.
   */
  #singleFlight<T>(
    entries: LruMap<T>,
    loads: Map<string, Promise<Loaded<T>>>,
    key: string,
    load: () => Promise<T>,
  ): Promise<Loaded<T>> {
    const pending = loads.get(key);
    if (pending !== undefined) return pending;
    this.#loads++;
    // Wrapped so a loader that throws synchronously still settles through the cleanup below.
    const started = (async () => load())();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let timedOut = false;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        timedOut = true;
        // Free the slot so the next miss starts a fresh load; a late result is not cached.
        if (loads.get(key) === promise) loads.delete(key);
        this.#errors++;
        reject(
          new StoreError(
            'store_unavailable',
            `permission store (${this.kind}) did not answer within ${this.#loadTimeoutMs} ms`,
          ),
        );
      }, this.#loadTimeoutMs);
    });
    const settled: Promise<Loaded<T>> = started.then(
      (value) => {
        // Only the current load may fill the cache: invalidate() drops a load it overtook, and
        // a timed-out load has already left the slot, so its late result is discarded.
        if (loads.get(key) === promise) {
          loads.delete(key);
          const entry = this.#entry(value);
          entries.set(key, entry);
          return { value, expiresAt: entry.expiresAt };
        }
        return { value, expiresAt: this.#now() };
      },
      (error: unknown) => {
        if (!timedOut) this.#errors++;
        // Once per load, however many callers share it.
        this.#logRefusal(error);
        if (loads.get(key) === promise) loads.delete(key);
        throw error;
      },
    );
    const promise: Promise<Loaded<T>> = Promise.race([settled, timeout]).then(
      (loaded) => {
        if (timer !== undefined) clearTimeout(timer);
        return loaded;
      },
      (error: unknown) => {
        if (timer !== undefined) clearTimeout(timer);
        throw error;
      },
    );
    // A load that fails after its timeout must not surface as an unhandled rejection.
    settled.catch(() => {});
    loads.set(key, promise);
    return promise;
  }

  #entry<T>(value: T): ExpirableValue<T> {
    const ttl = value === null ? this.#negativeTtlMs : this.#ttlMs;
    return new ExpirableValue(value, ttl, this.#now());
  }
}
