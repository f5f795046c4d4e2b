/**
 * Idempotency records for signed events on Workers (issue 13; the interface is
 * src/events/idempotency.ts). Two implementations with different promises:
 *
 * - {@link DurableProcessedEvents}: strongly consistent. The revocation feed's Durable Object
 *   class hosts the records in an instance of its own (`idFromName('processed-events')`), so the
 *   deployment's existing `REVOCATION` binding serves it with no new migration. Of two deliveries
 *   racing anywhere in the world, exactly one is `first`.
 * - {@link KvProcessedEvents}: eventually consistent. KV has no conditional write; a read may
 *   miss a write made elsewhere for up to about a minute (and its edge cache), so two deliveries
 *   close together can both be `first` and both run. It only narrows duplicates: use it when the
 *   handler tolerates a rare second run, or prefer the Durable Object.
 *
 * Types are structural: nothing here imports Workers modules.
 */
import { StoreError } from '../errors.ts';
import {
  leaseOf,
  type ProcessedEvents,
  type ProcessedResult,
  recordUntil,
} from '../events/idempotency.ts';
import type { KvNamespaceLike } from './kv-store.ts';
import type { DurableObjectNamespaceLike } from './revocation.ts';

/** The Durable Object instance holding processed-event records (not the feed's `feed`). */
export const PROCESSED_OBJECT_NAME = 'processed-events';

export class DurableProcessedEvents implements ProcessedEvents {
  readonly consistency = 'strong' as const;
  readonly #namespace: DurableObjectNamespaceLike;

  constructor(namespace: DurableObjectNamespaceLike) {
    this.#namespace = namespace;
  }

  async #call(path: string, body: unknown): Promise<unknown> {
    const stub = this.#namespace.get(this.#namespace.idFromName(PROCESSED_OBJECT_NAME) as never);
    let response: Response;
    try {
      response = await stub.fetch(`https://processed-events${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    } catch (error) {
      throw new StoreError('store_unavailable', 'processed-events object unavailable', {
        cause: error,
      });
    }
    if (!response.ok) {
      throw new StoreError(
        'store_unavailable',
        `processed-events object answered ${response.status}`,
      );
    }
    return response.json();
  }

  async recordProcessed(
    eventId: string,
    expiresAt: number,
    leaseSeconds?: number,
  ): Promise<ProcessedResult> {
    const body = (await this.#call('/processed', {
      id: eventId,
      expiresAt,
      leaseSeconds: leaseOf(leaseSeconds),
    })) as { result?: unknown };
    if (body.result !== 'first' && body.result !== 'in_progress' && body.result !== 'duplicate') {
      throw new StoreError('store_unavailable', 'processed-events answer malformed');
    }
    return body.result;
  }

  async complete(eventId: string, expiresAt: number): Promise<void> {
    await this.#call('/processed/complete', { id: eventId, expiresAt });
  }

  async release(eventId: string): Promise<void> {
    await this.#call('/processed/release', { id: eventId });
  }
}

/** KV key prefix of processed-event records, beside `user/` and `roles/`. */
const KV_PREFIX = 'processed/';
/** Value prefix of an in-progress record. */
const LEASE = 'lease:';
/** KV's smallest expirationTtl, seconds. */
const KV_MIN_TTL = 60;

export class KvProcessedEvents implements ProcessedEvents {
  readonly consistency = 'eventual' as const;
  readonly #kv: KvNamespaceLike;
  readonly #now: () => number;

  constructor(kv: KvNamespaceLike, options: { now?: () => number } = {}) {
    this.#kv = kv;
    this.#now = options.now ?? Date.now;
  }

  async recordProcessed(
    eventId: string,
    expiresAt: number,
    leaseSeconds?: number,
  ): Promise<ProcessedResult> {
    const key = KV_PREFIX + encodeURIComponent(eventId);
    const now = Math.floor(this.#now() / 1000);
    try {
      const value = await this.#kv.get(key, { type: 'text' });
      if (value !== null) {
        // `lease:<unix seconds>` while in progress; anything else (`done`, or `1` written
        // before leases) is done.
        if (!value.startsWith(LEASE)) return 'duplicate';
        if (Number(value.slice(LEASE.length)) > now) return 'in_progress';
      }
      await this.#kv.put(key, `${LEASE}${now + leaseOf(leaseSeconds)}`, {
        expirationTtl: this.#ttl(expiresAt),
      });
      return 'first';
    } catch (error) {
      throw new StoreError('store_unavailable', 'KV unavailable', { cause: error });
    }
  }

  async complete(eventId: string, expiresAt: number): Promise<void> {
    await this.#kv.put(KV_PREFIX + encodeURIComponent(eventId), 'done', {
      expirationTtl: this.#ttl(expiresAt),
    });
  }

  /** Until the event's expiry plus the largest verifier leeway (review R4), KV's minimum at least. */
  #ttl(expiresAt: number): number {
    return Math.max(KV_MIN_TTL, Math.ceil(recordUntil(expiresAt) - this.#now() / 1000));
  }

  async release(eventId: string): Promise<void> {
    await this.#kv.delete(KV_PREFIX + encodeURIComponent(eventId));
  }
}
