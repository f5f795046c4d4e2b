/**
 * One delivered event, decided (platform-free): the Workers Queues helper
 * (src/workers/queue-consumer.ts) and the SQS helper (src/aws/sqs-consumer.ts) map the outcome to
 * ack / retry and `batchItemFailures`.
 *
 *   verify + re-check ─▶ refused (401/403): never run; ack and log why
 *                    ─▶ unavailable (503): retry later, nothing run
 *                    ─▶ allowed ─▶ idempotency ─▶ duplicate (done): ack, not run
 *                                              ─▶ in_progress (live lease): retry later, not run
 *                                              ─▶ first (lease taken) ─▶ handler ─▶ ok: done, ack
 *                                                                               ─▶ throws: release, retry
 *
 * A consumer killed inside the handler (timeout, OOM, eviction) leaves a lease, not a done
 * record: its redeliveries retry until the lease ends, then one runs the event (review R5).
 */
import type { Actor } from '../types.ts';
import type { EventDecision } from './events.ts';
import { DEFAULT_LEASE_SECONDS, type ProcessedEvents } from './idempotency.ts';

/** What the consumer's handler receives: the verified event and the allowing decision. */
export interface AllowedEvent {
  readonly id: string;
  readonly source: string;
  readonly type: string;
  readonly time: string;
  readonly data: unknown;
  readonly subject: string | undefined;
  readonly tenant: string | undefined;
  /**
   * A delegate acted for `subject`: `actors` is who (current actor first). A handler doing what
   * only the subject may do refuses delegated events; an audit records the actors.
   */
  readonly delegated: boolean;
  readonly actors: readonly Actor[];
  readonly decision: EventDecision;
}

export type EventHandler<Extra = void> = (
  event: AllowedEvent,
  extra: Extra,
) => Promise<void> | void;

export type Outcome =
  | { readonly kind: 'ran'; readonly decision: EventDecision }
  | { readonly kind: 'duplicate'; readonly decision: EventDecision }
  | { readonly kind: 'refused'; readonly decision: EventDecision }
  | {
      readonly kind: 'retry';
      readonly why: 'unavailable' | 'handler_failed' | 'idempotency_unavailable' | 'in_progress';
      readonly decision?: EventDecision;
    };

/** One line per refused, duplicate or retried message: ids and reasons, never data or tokens. */
export interface ConsumerLogEntry {
  readonly type: 'gatehouse.event_refused' | 'gatehouse.event_duplicate' | 'gatehouse.event_retry';
  readonly eventId?: string;
  readonly eventType?: string;
  readonly subject?: string;
  readonly reason?: string;
  readonly status?: number;
  readonly why?: string;
}

export function defaultConsumerLog(entry: ConsumerLogEntry): void {
  const level = entry.type === 'gatehouse.event_refused' ? 'warn' : 'info';
  console.log(JSON.stringify({ level, ...entry }));
}

/**
 * The message body as queued: the compact JWS itself, or `{ "event": "<JWS>" }`. Anything else
 * is handed to verification as is and refused there (`token_malformed`).
 */
export function eventOf(body: unknown): unknown {
  if (typeof body === 'object' && body !== null && !Array.isArray(body) && 'event' in body) {
    return (body as { event: unknown }).event;
  }
  return body;
}

/** Who verifies: a {@link GatehouseEvents}, or the guard's RPC binding (`verifyEvent`). */
export interface EventVerifierLike {
  verify(event: unknown): Promise<EventDecision>;
}

/** Decides one delivery and runs the handler at most once per event id (see the module comment). */
export async function processEvent<Extra>(
  events: EventVerifierLike,
  body: unknown,
  handler: EventHandler<Extra>,
  extra: Extra,
  options: {
    processed?: ProcessedEvents | undefined;
    /**
     * Seconds the handler may run before another delivery may take the event over (default
     * {@link DEFAULT_LEASE_SECONDS}): at least the handler's longest run, or it may run twice.
     */
    leaseSeconds?: number | undefined;
    log?: (entry: ConsumerLogEntry) => void;
  } = {},
): Promise<Outcome> {
  const log = options.log ?? defaultConsumerLog;
  const decision = await events.verify(eventOf(body));
  const ids = {
    ...(decision.event !== undefined && {
      eventId: decision.event.id,
      eventType: decision.event.type,
    }),
    ...(decision.subject !== undefined && { subject: decision.subject }),
  };
  if (!decision.allow) {
    // A 503 is the store or keys, not the event: try again later. Anything else is final.
    if (decision.status === 503) {
      log({ type: 'gatehouse.event_retry', ...ids, reason: decision.reason, why: 'unavailable' });
      return { kind: 'retry', why: 'unavailable', decision };
    }
    log({
      type: 'gatehouse.event_refused',
      ...ids,
      reason: decision.reason,
      status: decision.status,
    });
    return { kind: 'refused', decision };
  }
  const event = decision.event!;
  const processed = options.processed;
  if (processed !== undefined) {
    let taken: 'first' | 'in_progress' | 'duplicate';
    try {
      taken = await processed.recordProcessed(
        event.id,
        event.expiresAt,
        options.leaseSeconds ?? DEFAULT_LEASE_SECONDS,
      );
    } catch {
      log({ type: 'gatehouse.event_retry', ...ids, why: 'idempotency_unavailable' });
      return { kind: 'retry', why: 'idempotency_unavailable', decision };
    }
    if (taken === 'duplicate') {
      log({ type: 'gatehouse.event_duplicate', ...ids });
      return { kind: 'duplicate', decision };
    }
    if (taken === 'in_progress') {
      // Another delivery holds it: acking would lose the event if that holder dies; retried,
      // this message finds it done (ack) or the lease expired (run).
      log({ type: 'gatehouse.event_retry', ...ids, why: 'in_progress' });
      return { kind: 'retry', why: 'in_progress', decision };
    }
  }
  try {
    await handler(
      {
        id: event.id,
        source: event.source,
        type: event.type,
        time: event.time,
        data: event.data,
        subject: decision.subject,
        tenant: decision.tenant,
        // From the RPC binding an older guard may omit them: then nothing says a delegate acted.
        delegated: event.delegated === true,
        actors: Array.isArray(event.actors) ? event.actors : [],
        decision,
      },
      extra,
    );
  } catch {
    // The handler's error may carry anything; it is the caller's to log. Release the id so the
    // retried delivery runs (best effort: if that fails, the retry is a duplicate, not a rerun).
    if (processed !== undefined) await processed.release(event.id).catch(() => undefined);
    log({ type: 'gatehouse.event_retry', ...ids, why: 'handler_failed' });
    return { kind: 'retry', why: 'handler_failed', decision };
  }
  if (processed !== undefined) {
    // The handler ran: ack whatever happens here. Unmarked, the lease ends and one later
    // delivery (if the queue still has one) runs it again: at least once, never lost.
    await processed.complete(event.id, event.expiresAt).catch(() => {
      log({ type: 'gatehouse.event_retry', ...ids, why: 'complete_failed' });
    });
  }
  return { kind: 'ran', decision };
}
