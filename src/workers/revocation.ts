/**
 * The revocation feed on Workers (issue 14; the core is src/revocation/):
 *
 * - {@link RevocationFeedObject}: the feed's head in a Durable Object, strongly consistent. One
 *   instance (`idFromName('feed')`) per deployment; the guard's entry exports the class, the admin
 *   Worker binds it with `script_name = "gatehouse"`. It also keeps the raw KV values written in
 *   the last `recentMs`, because KV may serve an old value for up to a minute (propagation) plus
 *   its edge cache after a write.
 * - {@link DurableFeedClient}: the binding as a {@link FeedSource} and {@link FeedWriter}.
 * - {@link feedWritingKv}: management's KV namespace, recording each `user/` and `roles/` write in
 *   the feed before KV (so a follower that sees the change can already read the new value).
 * - {@link followedKv}: the guard's KV namespace, reading a recently changed key from the feed
 *   rather than from KV.
 *
 * The Durable Object speaks a small JSON protocol over fetch (GET /read?since=, POST /append,
 * GET /value?key=). It has no route: only Workers holding the binding reach it.
 *
 * The same class also hosts the processed-event records of signed events (issue 13,
 * src/workers/processed-events.ts) in another instance (`idFromName('processed-events')`), under
 * `processed/` keys the feed's loader ignores: POST /processed, /processed/complete and
 * /processed/release. One
 * object, single-threaded, its storage calls holding the input gate: a read and a write of one
 * id cannot interleave with another request's, so exactly one delivery is `first`.
 *
 * Types are structural, as in kv-store.ts: nothing here imports Workers modules.
 */
import { ConfigError } from '../errors.ts';
import { leaseOf, recordUntil } from '../events/idempotency.ts';
import {
  type ChangeInput,
  type FeedAnswer,
  FeedLog,
  type FeedLogOptions,
  type FeedSource,
  type FeedWriter,
  type FeedWrites,
  isValidJti,
  parseFeedAnswer,
  parseFeedKey,
  TrackedFeed,
} from '../revocation/feed.ts';
import { type FollowerOptions, RevocationFollower } from '../revocation/follower.ts';
import type { KvAdminNamespace } from './kv-admin-store.ts';
import type { KvNamespaceLike } from './kv-store.ts';

/** The Durable Object instance name: one feed per deployment (per KV namespace). */
export const FEED_OBJECT_NAME = 'feed';
/** Keys one append may name (an import writes one append per record). */
const MAX_KEYS_PER_CHANGE = 100;
/** Largest raw value the feed keeps per key, bytes (KV values can be larger; those fall back to KV). */
const MAX_VALUE_BYTES = 128 * 1024;
/** Largest append body, bytes. */
const MAX_APPEND_BYTES = MAX_KEYS_PER_CHANGE * 1024 + MAX_VALUE_BYTES * 2;
/** KV's documented propagation delay, seconds ("60 seconds or more"). */
const KV_PROPAGATION_SECONDS = 60;

/**
 * How long a changed key is read from the feed rather than KV, ms. A location may have read the
 * old value just before the write (or during propagation) and keeps it for `KV_CACHE_TTL`, and an
 * isolate that reloads from that location keeps it for the permission cache's TTL: the feed must
 * cover all three, or a revocation comes back once the window ends (review finding 4). Never
 * below the former fixed 120 s.
 */
export function recentWindowMs(kvCacheTtlSeconds: number, cacheTtlSeconds: number): number {
  return Math.max(120_000, (KV_PROPAGATION_SECONDS + kvCacheTtlSeconds + cacheTtlSeconds) * 1000);
}

/** The part of `DurableObjectState` the feed uses. */
export interface DurableObjectStateLike {
  readonly storage: {
    list(options?: { prefix?: string; limit?: number }): Promise<Map<string, unknown>>;
    get(key: string): Promise<unknown>;
    put(entries: Record<string, unknown>): Promise<void>;
    delete(keys: string[]): Promise<number>;
  };
  blockConcurrencyWhile<T>(callback: () => Promise<T>): Promise<T>;
}

/** The part of a `DurableObjectNamespace` binding the client uses. */
export interface DurableObjectNamespaceLike {
  idFromName(name: string): unknown;
  get(id: never): { fetch(input: string, init?: RequestInit): Promise<Response> };
}

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
  });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Validates an append body; undefined when malformed (the object answers 400). */
function parseChangeInput(value: unknown): ChangeInput | undefined {
  if (!isObject(value)) return undefined;
  const { keys, values, notBefore, token } = value;
  if (keys !== undefined) {
    if (!Array.isArray(keys) || keys.length > MAX_KEYS_PER_CHANGE) return undefined;
    if (!keys.every((k) => typeof k === 'string' && parseFeedKey(k) !== undefined))
      return undefined;
  }
  if (values !== undefined) {
    if (!isObject(values)) return undefined;
    for (const [key, v] of Object.entries(values)) {
      if (!(keys as string[] | undefined)?.includes(key)) return undefined;
      if (v !== null && typeof v !== 'string') return undefined;
    }
  }
  if (notBefore !== undefined) {
    if (!isObject(notBefore) || typeof notBefore.key !== 'string') return undefined;
    if (!Number.isSafeInteger(notBefore.at)) return undefined;
  }
  if (token !== undefined) {
    if (!isObject(token) || !isValidJti(token.jti)) return undefined;
    if (!Number.isSafeInteger(token.expiresAt)) return undefined;
  }
  return value as ChangeInput;
}

/** Splits puts and deletes into Durable Object storage calls of at most 128 keys each. */
async function persist(storage: DurableObjectStateLike['storage'], writes: FeedWrites) {
  const puts = Object.entries(writes.put);
  for (let i = 0; i < puts.length; i += 128) {
    await storage.put(Object.fromEntries(puts.slice(i, i + 128)));
  }
  for (let i = 0; i < writes.delete.length; i += 128) {
    await storage.delete(writes.delete.slice(i, i + 128));
  }
}

/**
 * The feed's Durable Object. State lives in memory, loaded once from storage; every append is
 * persisted before it is answered (the output gate holds the answer until the write is durable),
 * so an epoch a writer was told exists survives a restart.
 */
export class RevocationFeedObject {
  readonly #state: DurableObjectStateLike;
  readonly #options: FeedLogOptions;
  #log: FeedLog | undefined;

  constructor(state: DurableObjectStateLike, _env?: unknown, options: FeedLogOptions = {}) {
    this.#state = state;
    this.#options = options;
    void state.blockConcurrencyWhile(async () => {
      this.#log = FeedLog.load(await state.storage.list(), this.#options);
    });
  }

  async fetch(request: Request): Promise<Response> {
    const log = this.#log;
    if (log === undefined) return json({ error: 'loading' }, 503);
    const url = new URL(request.url);
    const now = Date.now();
    if (request.method === 'GET' && url.pathname === '/read') {
      const text = url.searchParams.get('since') ?? '';
      if (!/^-?\d{1,16}$/.test(text)) return json({ error: 'since' }, 400);
      return json(log.since(Number(text), now));
    }
    if (request.method === 'GET' && url.pathname === '/value') {
      const key = url.searchParams.get('key');
      if (key === null || parseFeedKey(key) === undefined) return json({ error: 'key' }, 400);
      return json(log.value(key, now));
    }
    if (request.method === 'POST' && url.pathname.startsWith('/processed')) {
      return this.#processed(request, url.pathname, now);
    }
    if (request.method === 'POST' && url.pathname === '/append') {
      const text = await request.text();
      if (text.length > MAX_APPEND_BYTES) return json({ error: 'too large' }, 413);
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        return json({ error: 'json' }, 400);
      }
      const input = parseChangeInput(body);
      if (input === undefined) return json({ error: 'change' }, 400);
      const { change, writes } = log.append(input, now);
      await persist(this.#state.storage, writes);
      return json({ epoch: change.epoch });
    }
    return json({ error: 'not found' }, 404);
  }

  /** Records taken since the last sweep of expired ones. */
  #sinceSweep = 0;

  async #processed(request: Request, path: string, now: number): Promise<Response> {
    let body: unknown;
    try {
      body = JSON.parse(await request.text());
    } catch {
      return json({ error: 'json' }, 400);
    }
    const id = isObject(body) ? body.id : undefined;
    if (typeof id !== 'string' || !isValidJti(id)) return json({ error: 'id' }, 400);
    const key = PROCESSED + id;
    const storage = this.#state.storage;
    if (path === '/processed/release') {
      await storage.delete([key]);
      return json({ released: true });
    }
    const expiresAt = isObject(body) ? body.expiresAt : undefined;
    if (typeof expiresAt !== 'number' || !Number.isSafeInteger(expiresAt)) {
      return json({ error: 'expiresAt' }, 400);
    }
    const until = recordUntil(expiresAt);
    if (path === '/processed/complete') {
      await storage.put({ [key]: { until } });
      return json({ completed: true });
    }
    if (path !== '/processed') return json({ error: 'not found' }, 404);
    const leaseSeconds = isObject(body) ? body.leaseSeconds : undefined;
    const seconds = Math.floor(now / 1000);
    const record = processedRecord(await storage.get(key));
    // Kept until exp + the largest leeway (review R4); done is final, a live lease is someone
    // else's run, an expired one a run that died (review R5): taken over.
    if (record !== null && record.until * 1000 > now) {
      if (record.lease === undefined) return json({ result: 'duplicate' });
      if (record.lease > seconds) return json({ result: 'in_progress' });
    }
    await storage.put({
      [key]: {
        until,
        lease: seconds + leaseOf(typeof leaseSeconds === 'number' ? leaseSeconds : undefined),
      },
    });
    if (++this.#sinceSweep >= SWEEP_EVERY) {
      this.#sinceSweep = 0;
      // Bounded work per sweep: an expired event no longer verifies, so its record may go.
      const entries = await storage.list({ prefix: PROCESSED, limit: 1000 });
      const expired = [...entries].filter(([, v]) => {
        const r = processedRecord(v);
        return r === null || r.until * 1000 <= now;
      });
      if (expired.length > 0) await storage.delete(expired.map(([k]) => k).slice(0, 128));
    }
    return json({ result: 'first' });
  }
}

/**
 * A stored processed-event record: `{ until, lease? }` (lease present while in progress), or a
 * bare number (`until`, written before leases: done).
 */
function processedRecord(value: unknown): { until: number; lease?: number } | null {
  if (typeof value === 'number') return { until: value };
  if (!isObject(value) || typeof value.until !== 'number') return null;
  return typeof value.lease === 'number'
    ? { until: value.until, lease: value.lease }
    : { until: value.until };
}

/** Key prefix of processed-event records; FeedLog.load skips keys it does not know. */
const PROCESSED = 'processed/';
/** Records between two sweeps of expired ones. */
const SWEEP_EVERY = 100;

/** Reads and writes the feed through the Durable Object binding. */
export class DurableFeedClient implements FeedSource, FeedWriter {
  readonly #namespace: DurableObjectNamespaceLike;

  constructor(namespace: DurableObjectNamespaceLike) {
    if (
      typeof namespace !== 'object' ||
      namespace === null ||
      typeof namespace.idFromName !== 'function'
    ) {
      throw new ConfigError('REVOCATION', 'expected a Durable Object namespace binding');
    }
    this.#namespace = namespace;
  }

  async #call(path: string, init?: RequestInit): Promise<unknown> {
    // A stub per call: stubs are cheap, and one made in another request's context is not ours.
    const stub = this.#namespace.get(this.#namespace.idFromName(FEED_OBJECT_NAME) as never);
    const response = await stub.fetch(`https://revocation-feed${path}`, init);
    if (!response.ok) throw new Error(`revocation feed answered ${response.status}`);
    return response.json();
  }

  async read(since: number): Promise<FeedAnswer> {
    const answer = parseFeedAnswer(await this.#call(`/read?since=${since}`));
    if (answer === undefined) throw new Error('revocation feed answer malformed');
    return answer;
  }

  async append(input: ChangeInput): Promise<number> {
    const body = await this.#call('/append', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(input),
    });
    const epoch = isObject(body) ? body.epoch : undefined;
    if (typeof epoch !== 'number' || !Number.isSafeInteger(epoch)) {
      throw new Error('revocation feed append answer malformed');
    }
    return epoch;
  }

  /** The raw value the feed holds for a recently changed key. */
  async value(key: string): Promise<{ found: boolean; value: string | null }> {
    const body = await this.#call(`/value?key=${encodeURIComponent(key)}`);
    if (!isObject(body) || typeof body.found !== 'boolean') {
      throw new Error('revocation feed value answer malformed');
    }
    const value = body.value;
    if (value !== null && typeof value !== 'string')
      throw new Error('revocation feed value malformed');
    return { found: body.found, value };
  }
}

/**
 * Management's KV namespace: a `user/` or `roles/` write is recorded in the feed (with its new
 * value) before it reaches KV. If the feed write fails, KV is not written and the change fails:
 * a change the feed never heard of would wait out every cache's TTL.
 */
export function feedWritingKv<T extends KvAdminNamespace>(kv: T, feed: FeedWriter): T {
  const record = async (key: string, value: string | null) => {
    if (parseFeedKey(key) === undefined) return;
    // Bytes, not UTF-16 units: the bound is on what the object stores and serves.
    const kept = value === null || new TextEncoder().encode(value).length <= MAX_VALUE_BYTES;
    await feed.append({ keys: [key], ...(kept && { values: { [key]: value } }) });
  };
  return new Proxy(kv, {
    get(target, name, receiver) {
      if (name === 'put') {
        return async (key: string, value: string, options?: Parameters<T['put']>[2]) => {
          await record(key, value);
          return target.put(key, value, options);
        };
      }
      if (name === 'delete') {
        return async (key: string) => {
          await record(key, null);
          return target.delete(key);
        };
      }
      const member = Reflect.get(target, name, receiver);
      return typeof member === 'function' ? member.bind(target) : member;
    },
  });
}

/**
 * The guard's KV namespace: a key the feed says changed recently is read from the feed's copy
 * (KV may still serve the old value at this location). When the feed does not hold it, or cannot
 * answer, KV is read as before: freshness then falls back to the TTL bound, never to a deny.
 */
export function followedKv(
  kv: KvNamespaceLike,
  follower: RevocationFollower,
  feed: DurableFeedClient,
): KvNamespaceLike {
  return {
    async get(key, options) {
      if (follower.isRecent(key)) {
        try {
          const held = await feed.value(key);
          // The stored text: KvStore bounds and parses it as it does KV's own answer.
          if (held.found) return held.value;
        } catch {
          // The feed is down: KV, within the TTL bound.
        }
      }
      return kv.get(key, options);
    },
    put: (key, value, options) => kv.put(key, value, options),
    delete: (key) => kv.delete(key),
  };
}

/** The feed's pieces for one isolate, from the `REVOCATION` binding. */
export interface WorkerFeed {
  readonly client: DurableFeedClient;
  readonly follower: RevocationFollower;
}

export function workerFeed(
  binding: unknown,
  options: Pick<
    FollowerOptions,
    'intervalMs' | 'strictMaxLagMs' | 'recentMs' | 'now' | 'awaitReads'
  >,
): WorkerFeed | undefined {
  if (binding === undefined) return undefined;
  const client = new DurableFeedClient(binding as DurableObjectNamespaceLike);
  return { client, follower: new RevocationFollower(client, options) };
}

/** Management's feed handle (tracks the consistency token) and the KV namespace that feeds it. */
export function managementFeed<T extends KvAdminNamespace>(
  binding: unknown,
  kv: T,
): { feed: TrackedFeed; kv: T } | undefined {
  if (binding === undefined) return undefined;
  const feed = new TrackedFeed(new DurableFeedClient(binding as DurableObjectNamespaceLike));
  return { feed, kv: feedWritingKv(kv, feed) };
}
