/**
 * Idempotency for at-least-once queues: record that an event id is being processed, and then
 * that it was, so a second delivery does not run it again. Each platform implementation states
 * its consistency:
 *
 * - DynamoDB (src/aws/processed-events.ts): a conditional put is strongly consistent: of two
 *   concurrent deliveries exactly one is `first`.
 * - A Durable Object (src/workers/revocation.ts hosts it): one object, single-threaded, strongly
 *   consistent for the same reason.
 * - Workers KV (src/workers/processed-events.ts, `KvProcessedEvents`): eventually consistent; two
 *   deliveries close together on different locations may both read "absent" and both run, so it
 *   narrows duplicates rather than excluding them. Use it only for handlers that tolerate that.
 *
 * A record has two states. `first` takes it **in progress** under a lease (the handler's longest
 * run); {@link ProcessedEvents.complete} marks it **done** once the handler returned. A delivery
 * that finds a live lease is `in_progress` (retry later: the holder may still finish, or die); one
 * that finds an expired lease takes it over (`first`: the holder died mid-handler, review R5);
 * one that finds it done is `duplicate` (ack). So an event runs at least once while deliveries
 * last, and twice only when a handler outlives its lease or `complete` fails.
 *
 * Records live until the event's expiry plus the largest verifier leeway
 * ({@link RECORD_MARGIN_SECONDS}): the verifier accepts an event until `exp + leewaySeconds`, and
 * a record gone before that would let a late redelivery or a replay run it again (review R4).
 */
import { MAX_LEEWAY_SECONDS } from '../token/config.ts';

export type ProcessedResult = 'first' | 'in_progress' | 'duplicate';

/**
 * Seconds a record outlives its event's `exp`: the largest `leewaySeconds` the verifier accepts
 * (token/config.ts), so whatever the policy configures, no event verifies once its record is gone.
 */
export const RECORD_MARGIN_SECONDS = MAX_LEEWAY_SECONDS;

/** Default lease, seconds: the longest run of a Lambda or a Workers Queues consumer (15 min). */
export const DEFAULT_LEASE_SECONDS = 900;

/** Unix seconds until which a record of an event expiring at `expiresAt` is kept. */
export function recordUntil(expiresAt: number): number {
  return expiresAt + RECORD_MARGIN_SECONDS;
}

export interface ProcessedEvents {
  /** `strong` or `eventual`: what `first` promises when deliveries race. */
  readonly consistency: 'strong' | 'eventual';
  /**
   * Takes `eventId` in progress for `leaseSeconds` (default {@link DEFAULT_LEASE_SECONDS}),
   * the record kept until {@link recordUntil}(`expiresAt`). `first` exactly once per live lease
   * under strong consistency. Throws (a StoreError) when the store cannot answer: the consumer
   * then retries the message rather than run or drop it.
   */
  recordProcessed(
    eventId: string,
    expiresAt: number,
    leaseSeconds?: number,
  ): Promise<ProcessedResult>;
  /** Marks a `first` done after its handler returned: later deliveries are `duplicate`. */
  complete(eventId: string, expiresAt: number): Promise<void>;
  /**
   * Undoes a `first` whose handler failed, so the retried delivery runs it at once. Best effort:
   * when it fails the lease still expires, and a later delivery runs it then.
   */
  release(eventId: string): Promise<void>;
}

/** A lease, whole seconds from 1; anything else is the default (a caller's slip must not run twice). */
export function leaseOf(leaseSeconds: number | undefined): number {
  return typeof leaseSeconds === 'number' && Number.isInteger(leaseSeconds) && leaseSeconds >= 1
    ? leaseSeconds
    : DEFAULT_LEASE_SECONDS;
}

interface MemoryRecord {
  /** Unix seconds the record is kept until. */
  readonly until: number;
  /** Unix seconds the in-progress lease ends; absent once done. */
  readonly lease?: number;
}

/** In memory, one process: strongly consistent within it (tests, a single Node consumer). */
export class MemoryProcessedEvents implements ProcessedEvents {
  readonly consistency = 'strong' as const;
  readonly #taken = new Map<string, MemoryRecord>();
  readonly #now: () => number;

  constructor(options: { now?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
  }

  async recordProcessed(
    eventId: string,
    expiresAt: number,
    leaseSeconds?: number,
  ): Promise<ProcessedResult> {
    const now = this.#now() / 1000;
    for (const [id, record] of this.#taken) if (record.until <= now) this.#taken.delete(id);
    const record = this.#taken.get(eventId);
    if (record !== undefined) {
      if (record.lease === undefined) return 'duplicate';
      if (record.lease > now) return 'in_progress';
    }
    this.#taken.set(eventId, {
      until: recordUntil(expiresAt),
      lease: Math.floor(now) + leaseOf(leaseSeconds),
    });
    return 'first';
  }

  async complete(eventId: string, expiresAt: number): Promise<void> {
    this.#taken.set(eventId, { until: recordUntil(expiresAt) });
  }

  async release(eventId: string): Promise<void> {
    this.#taken.delete(eventId);
  }
}
