/**
 * The revocation change feed (issue 14): a strongly consistent head that every management write
 * advances, and the list of what changed, so isolates and containers drop exactly the cached
 * records that changed instead of waiting out the permission cache's TTL.
 *
 * One feed per permission store (a KV namespace, a DynamoDB table): its epoch counts every change
 * of every tenant. One feed rather than one per tenant because a follower then reads one head per
 * interval however many tenants it serves, which is what keeps the steady-state cost at one read
 * per second per isolate; the changes name the tenant in their keys, so eviction stays exact.
 *
 * A change names, in the store's own key form (the Workers KV keys, used on every platform):
 * - `user/<subject storage key>`: a subject's record changed (grant, revoke, deny, assign, ...);
 * - `roles/<tenant storage key>`: a tenant's store roles changed;
 * - a subject's not-before ("signed out everywhere"): tokens issued before it are refused;
 * - a revoked token id (`jti`) with the time after which the token is dead anyway.
 *
 * {@link FeedLog} is the platform-free state machine behind the Workers Durable Object and the
 * in-memory feed; DynamoDB keeps the same shapes in items (src/aws/revocation-feed.ts).
 */
import { ConfigError, numberOption } from '../errors.ts';
import {
  parseSubjectStorageKey,
  parseTenantStorageKey,
  subjectStorageKey,
  tenantStorageKey,
} from '../stores/keys.ts';
import type { SubjectKey } from '../types.ts';

/** Feed keys: the same strings as the Workers KV keys of the records. */
export const feedKeys = {
  user: (key: SubjectKey): string => `user/${subjectStorageKey(key)}`,
  roles: (tenant: string | undefined): string => `roles/${tenantStorageKey(tenant)}`,
} as const;

/** What a feed key names, or undefined for a key that is not a record's. */
export function parseFeedKey(
  key: string,
): { user: SubjectKey } | { roles: { tenant: string | undefined } } | undefined {
  if (key.startsWith('user/')) {
    const user = parseSubjectStorageKey(key.slice(5));
    return user && { user };
  }
  if (key.startsWith('roles/')) {
    const roles = parseTenantStorageKey(key.slice(6));
    return roles && { roles };
  }
  return undefined;
}

/** What one management write asks the feed to record. */
export interface ChangeInput {
  /** Feed keys of the records that changed. */
  readonly keys?: readonly string[];
  /**
   * The new raw values of those keys (JSON text, null for deleted), for stores whose replicas lag
   * (Workers KV): the feed serves them to followers for a while ({@link FeedLog.value}).
   */
  readonly values?: Readonly<Record<string, string | null>>;
  /** Sign out everywhere: the subject storage key and the not-before, Unix seconds. */
  readonly notBefore?: { readonly key: string; readonly at: number };
  /** A revoked token id and the Unix second after which it need not be remembered (its `exp`). */
  readonly token?: { readonly jti: string; readonly expiresAt: number };
}

/** One recorded change. */
export interface FeedChange {
  readonly epoch: number;
  /** When it was recorded, ms since the epoch (the feed's clock). */
  readonly at: number;
  readonly keys?: readonly string[];
  readonly notBefore?: { readonly key: string; readonly at: number };
  readonly token?: { readonly jti: string; readonly expiresAt: number };
}

/** A follower's answer: what happened after its epoch. */
export interface FeedAnswer {
  /** The head: the epoch of the latest change (0: none yet). */
  readonly head: number;
  /**
   * True when the follower is new or too far behind for the retained changes to say what it
   * missed: it drops every cached record; `changes` then holds every live not-before and token
   * revocation, and the record changes still inside the recent window.
   */
  readonly reset: boolean;
  /** Oldest first. */
  readonly changes: readonly FeedChange[];
  /** The feed's clock when it answered, ms: followers date recent keys with it. */
  readonly now: number;
}

/** Bounds on what a jti may be: it is only ever an exact-match key. */
export const MAX_JTI_LENGTH = 256;
/** Longest a token revocation is remembered, seconds (a year): longer-lived tokens are unusual. */
export const MAX_TOKEN_REVOCATION_SECONDS = 31_536_000;

/**
 * Longest token lifetime (`exp - iat`, seconds) an edge following the feed accepts: a year, the
 * verifier's own `maxAgeSeconds` ceiling. Tokens without `iat` or living longer are refused
 * (`token_lifetime_unbounded`), which is what lets a not-before be forgotten (review finding 9).
 */
export const MAX_TOKEN_LIFETIME_SECONDS = 31_536_000;
/**
 * Seconds a not-before is kept after its time: any token it refuses was issued before it, so
 * expired within {@link MAX_TOKEN_LIFETIME_SECONDS}, plus the verifier's largest `exp` leeway.
 */
export const NOT_BEFORE_KEPT_SECONDS = MAX_TOKEN_LIFETIME_SECONDS + 300;

/** True while a not-before at `at` (Unix seconds) may still refuse a live token; `now` in ms. */
export function notBeforeLive(at: number, now: number): boolean {
  return (at + NOT_BEFORE_KEPT_SECONDS) * 1000 > now;
}

export function isValidJti(jti: unknown): jti is string {
  return (
    typeof jti === 'string' &&
    jti.length > 0 &&
    jti.length <= MAX_JTI_LENGTH &&
    // Exact-match key only: no control characters, so it cannot break a log line or a key.
    !/[\u0000-\u001f\u007f]/.test(jti)
  );
}

export interface FeedLogOptions {
  /** Record changes kept for followers that fall behind; default 1000, 10 to 100000. */
  readonly maxChanges?: number;
  /**
   * Milliseconds a changed key counts as recent (followers read it from the feed's values, not
   * from a store replica that may lag); default 120000 (KV's 60 s propagation, its 30 s edge
   * cache and a 30 s permission cache; Workers derive it: `recentWindowMs`), 1000 to 10800000.
   */
  readonly recentMs?: number;
}

export function feedLogOptions(options: FeedLogOptions = {}): Required<FeedLogOptions> {
  return {
    maxChanges: numberOption(options.maxChanges, 'revocation.maxChanges', 10, 100_000, 1000, true),
    recentMs: numberOption(
      options.recentMs,
      'revocation.recentMs',
      1000,
      10_800_000,
      120_000,
      true,
    ),
  };
}

/** What a {@link FeedLog} mutation asks its storage to persist. */
export interface FeedWrites {
  readonly put: Readonly<Record<string, unknown>>;
  readonly delete: readonly string[];
}

/** Storage keys of a persisted FeedLog (Durable Object storage, or any key-value store). */
const HEAD = 'head';
const CHANGE = 'c:';
const NOT_BEFORE = 'nb:';
const TOKEN = 't:';
const VALUE = 'v:';

function changeKey(epoch: number): string {
  return `${CHANGE}${String(epoch).padStart(16, '0')}`;
}

interface StoredValue {
  readonly value: string | null;
  readonly at: number;
}

/**
 * The feed's state: head, retained changes, live not-befores and token revocations, and recent
 * raw values. Mutations return what to persist; {@link FeedLog.load} rebuilds from it.
 */
export class FeedLog {
  #head = 0;
  readonly #changes: FeedChange[] = [];
  readonly #notBefore = new Map<string, number>();
  readonly #tokens = new Map<string, number>();
  readonly #values = new Map<string, StoredValue>();
  readonly #options: Required<FeedLogOptions>;

  constructor(options: FeedLogOptions = {}) {
    this.#options = feedLogOptions(options);
  }

  /** Rebuilds from persisted entries (as written through {@link FeedWrites}). */
  static load(entries: Iterable<[string, unknown]>, options: FeedLogOptions = {}): FeedLog {
    const log = new FeedLog(options);
    for (const [key, value] of entries) {
      if (key === HEAD && typeof value === 'number') log.#head = value;
      else if (key.startsWith(CHANGE)) log.#changes.push(value as FeedChange);
      else if (key.startsWith(NOT_BEFORE) && typeof value === 'number') {
        log.#notBefore.set(key.slice(NOT_BEFORE.length), value);
      } else if (key.startsWith(TOKEN) && typeof value === 'number') {
        log.#tokens.set(key.slice(TOKEN.length), value);
      } else if (key.startsWith(VALUE))
        log.#values.set(key.slice(VALUE.length), value as StoredValue);
    }
    log.#changes.sort((a, b) => a.epoch - b.epoch);
    return log;
  }

  get head(): number {
    return this.#head;
  }

  /** Records one change, advancing the head; `now` in ms. */
  append(input: ChangeInput, now: number): { change: FeedChange; writes: FeedWrites } {
    const epoch = this.#head + 1;
    const change: FeedChange = {
      epoch,
      at: now,
      ...(input.keys !== undefined && input.keys.length > 0 && { keys: [...input.keys] }),
      ...(input.notBefore !== undefined && { notBefore: { ...input.notBefore } }),
      ...(input.token !== undefined && { token: { ...input.token } }),
    };
    const put: Record<string, unknown> = { [HEAD]: epoch, [changeKey(epoch)]: change };
    const remove: string[] = [];
    this.#head = epoch;
    this.#changes.push(change);
    const values = input.values ?? {};
    for (const key of input.keys ?? []) {
      // A key changed without its value (too large to keep): an older copy must not outlive the
      // change, or followers would be served it instead of reading the store (review finding 3).
      if (!Object.hasOwn(values, key) && this.#values.delete(key)) remove.push(VALUE + key);
    }
    for (const [key, value] of Object.entries(values)) {
      const stored: StoredValue = { value, at: now };
      this.#values.set(key, stored);
      put[VALUE + key] = stored;
    }
    if (input.notBefore !== undefined) {
      // Never moves back: a second sign-out cannot readmit tokens the first one refused.
      const at = Math.max(this.#notBefore.get(input.notBefore.key) ?? 0, input.notBefore.at);
      this.#notBefore.set(input.notBefore.key, at);
      put[NOT_BEFORE + input.notBefore.key] = at;
    }
    if (input.token !== undefined) {
      const until = Math.max(this.#tokens.get(input.token.jti) ?? 0, input.token.expiresAt);
      this.#tokens.set(input.token.jti, until);
      put[TOKEN + input.token.jti] = until;
    }
    this.#prune(now, remove);
    for (const key of remove) delete put[key];
    return { change, writes: { put, delete: remove } };
  }

  /** What a follower at `since` missed; `since` below 0: a new follower, which gets everything. */
  since(since: number, now: number): FeedAnswer {
    const oldest = this.#changes[0]?.epoch ?? this.#head + 1;
    if (since >= 0 && since <= this.#head && since + 1 >= oldest) {
      return { head: this.#head, reset: false, changes: this.#after(since), now };
    }
    // New, behind the retained changes, or ahead of the head (a feed that lost its state): the
    // follower cannot trust what it holds, so it starts over from the full state.
    const changes: FeedChange[] = [];
    for (const [key, at] of this.#notBefore) {
      if (notBeforeLive(at, now)) changes.push({ epoch: 0, at: now, notBefore: { key, at } });
    }
    for (const [jti, expiresAt] of this.#tokens) {
      if (expiresAt * 1000 > now) changes.push({ epoch: 0, at: now, token: { jti, expiresAt } });
    }
    for (const change of this.#changes) {
      if (change.keys !== undefined && now - change.at < this.#options.recentMs) {
        changes.push({ epoch: change.epoch, at: change.at, keys: change.keys });
      }
    }
    return { head: this.#head, reset: true, changes, now };
  }

  /** The raw value last written for a recently changed key; found: false when not held. */
  value(key: string, now: number): { found: boolean; value: string | null } {
    const stored = this.#values.get(key);
    if (stored === undefined || now - stored.at >= this.#options.recentMs) {
      return { found: false, value: null };
    }
    return { found: true, value: stored.value };
  }

  #after(since: number): FeedChange[] {
    // Changes are dense and sorted: the one after `since` sits at a known offset.
    const first = this.#changes[0]?.epoch ?? 0;
    return this.#changes.slice(Math.max(0, since + 1 - first));
  }

  #prune(now: number, remove: string[]): void {
    while (this.#changes.length > this.#options.maxChanges) {
      const dropped = this.#changes.shift();
      if (dropped !== undefined) remove.push(changeKey(dropped.epoch));
    }
    for (const [key, stored] of this.#values) {
      if (now - stored.at >= this.#options.recentMs) {
        this.#values.delete(key);
        remove.push(VALUE + key);
      }
    }
    for (const [jti, expiresAt] of this.#tokens) {
      if (expiresAt * 1000 <= now) {
        this.#tokens.delete(jti);
        remove.push(TOKEN + jti);
      }
    }
    // Not-befores past any token they could refuse: the state a new follower reads stays bounded.
    for (const [key, at] of this.#notBefore) {
      if (!notBeforeLive(at, now)) {
        this.#notBefore.delete(key);
        remove.push(NOT_BEFORE + key);
      }
    }
  }
}

/** Where management records a change: the Durable Object, DynamoDB, or memory. */
export interface FeedWriter {
  /** Records one change and resolves with its epoch (the consistency token). */
  append(input: ChangeInput): Promise<number>;
}

/** Where followers read the feed. Rejects when the head cannot be read. */
export interface FeedSource {
  read(since: number): Promise<FeedAnswer>;
}

/** A feed in this process: tests, and single-process deployments. */
export class MemoryFeed implements FeedWriter, FeedSource {
  readonly log: FeedLog;
  readonly #now: () => number;

  constructor(options: FeedLogOptions & { readonly now?: () => number } = {}) {
    this.log = new FeedLog(options);
    if (options.now !== undefined && typeof options.now !== 'function') {
      throw new ConfigError('revocation.now', 'expected a function returning milliseconds');
    }
    this.#now = options.now ?? Date.now;
  }

  async append(input: ChangeInput): Promise<number> {
    return this.log.append(input, this.#now()).change.epoch;
  }

  async read(since: number): Promise<FeedAnswer> {
    return this.log.since(since, this.#now());
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isEpoch(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/**
 * Checks an answer that crossed a process boundary (the Durable Object's JSON): the follower
 * acts on it, so a malformed one is refused whole rather than applied in part.
 */
export function parseFeedAnswer(value: unknown): FeedAnswer | undefined {
  if (!isObject(value) || !isEpoch(value.head) || typeof value.reset !== 'boolean')
    return undefined;
  if (typeof value.now !== 'number' || !Array.isArray(value.changes)) return undefined;
  for (const change of value.changes as unknown[]) {
    if (!isObject(change) || !isEpoch(change.epoch) || typeof change.at !== 'number')
      return undefined;
    if (change.keys !== undefined) {
      if (!Array.isArray(change.keys) || !change.keys.every((k) => typeof k === 'string')) {
        return undefined;
      }
    }
    const nb = change.notBefore;
    if (
      nb !== undefined &&
      (!isObject(nb) || typeof nb.key !== 'string' || typeof nb.at !== 'number')
    ) {
      return undefined;
    }
    const token = change.token;
    if (
      token !== undefined &&
      (!isObject(token) || !isValidJti(token.jti) || typeof token.expiresAt !== 'number')
    ) {
      return undefined;
    }
  }
  return value as unknown as FeedAnswer;
}

/**
 * A {@link FeedWriter} that remembers the highest epoch it wrote: what a management call returns
 * as its consistency token. Shared by the store adapter that records record changes and by
 * management's own sign-out and token revocations, so either kind of write advances it.
 */
export class TrackedFeed implements FeedWriter {
  readonly #inner: FeedWriter;
  #last: number | undefined;

  constructor(inner: FeedWriter) {
    if (typeof inner !== 'object' || inner === null || typeof inner.append !== 'function') {
      throw new ConfigError('revocation.feed', 'expected a feed writer with append(change)');
    }
    this.#inner = inner;
  }

  async append(input: ChangeInput): Promise<number> {
    const epoch = await this.#inner.append(input);
    this.#last = Math.max(this.#last ?? 0, epoch);
    return epoch;
  }

  /** The highest epoch written through this writer; undefined before the first write. */
  get lastEpoch(): number | undefined {
    return this.#last;
  }
}
