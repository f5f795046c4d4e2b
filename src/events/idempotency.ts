/**
 * Idempotency for at-least-once queues: record that an event id was processed, so a second
 * delivery does not run it again. Each platform implementation states its consistency:
 *
 * - DynamoDB (src/aws/processed-events.ts): a conditional put (`attribute_not_exists`) is
 *   strongly consistent: of two concurrent deliveries exactly one is `first`.
 * - A Durable Object (src/workers/revocation.ts hosts it): one object, single-threaded, strongly
 *   consistent for the same reason.
 * - Workers KV (src/workers/processed-events.ts, `KvProcessedEvents`): eventually consistent; two
 *   deliveries close together on different locations may both read "absent" and both run, so it
 *   narrows duplicates rather than excluding them. Use it only for handlers that tolerate that.
 *
 * Entries live until the event's expiry: after it the event no longer verifies, so no delivery
 * can run it again and the record may go.
 */
export type ProcessedResult = 'first' | 'duplicate';

export interface ProcessedEvents {
  /** `strong` or `eventual`: what `first` promises when deliveries race. */
  readonly consistency: 'strong' | 'eventual';
  /**
   * Records `eventId` as taken until `expiresAt` (Unix seconds). `first` exactly once per id
   * under strong consistency. Throws (a StoreError) when the store cannot answer: the consumer
   * then retries the message rather than run or drop it.
   */
  recordProcessed(eventId: string, expiresAt: number): Promise<ProcessedResult>;
  /**
   * Undoes a `first` whose handler failed, so the retried delivery runs it. Best effort: when it
   * fails the retry is reported as a duplicate and not run (at most once, never twice).
   */
  release(eventId: string): Promise<void>;
}

/** In memory, one process: strongly consistent within it (tests, a single Node consumer). */
export class MemoryProcessedEvents implements ProcessedEvents {
  readonly consistency = 'strong' as const;
  readonly #taken = new Map<string, number>();
  readonly #now: () => number;

  constructor(options: { now?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
  }

  async recordProcessed(eventId: string, expiresAt: number): Promise<ProcessedResult> {
    const now = this.#now() / 1000;
    for (const [id, until] of this.#taken) if (until <= now) this.#taken.delete(id);
    if (this.#taken.has(eventId)) return 'duplicate';
    this.#taken.set(eventId, expiresAt);
    return 'first';
  }

  async release(eventId: string): Promise<void> {
    this.#taken.delete(eventId);
  }
}
