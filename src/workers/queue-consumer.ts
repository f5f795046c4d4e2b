/**
 * A Workers Queues consumer for signed events (issue 13). Each message's body is the event (the
 * compact JWS, or `{ event }`); per message:
 *
 * - verified and allowed by the re-check → the idempotency record → your handler → `ack()`;
 *   a second delivery of a finished id is acked without running; one that finds it still in
 *   progress (a live lease, `leaseSeconds`) is retried, so a run killed mid-handler is taken
 *   over once its lease ends;
 * - refused (forged, altered, expired, foreign, permission revoked) → `ack()` and one log line
 *   with the reason; the handler never runs, and retrying could not change the answer;
 * - store, keys or idempotency record unavailable, or the handler threw → `retry({ delaySeconds })`.
 *
 * The verifier is the Gatehouse's own (`policy` given: built once per isolate on the consumer's
 * KV, as the guard builds it) or any `{ verify(event) }` such as the guard's RPC binding
 * (`env.GATEHOUSE.verifyEvent`). Types are structural (workers-types `MessageBatch` /
 * `Message`), so nothing here imports Workers modules.
 */
import { ConfigError } from '../errors.ts';
import {
  type ConsumerLogEntry,
  type EventHandler,
  type EventVerifierLike,
  processEvent,
} from '../events/consumer.ts';
import type { ProcessedEvents } from '../events/idempotency.ts';
import {
  createGatehouseWorker,
  type GatehouseWorkerEnv,
  type GatehouseWorkerOptions,
} from './guard.ts';

/** The part of workers-types `Message` the consumer uses. */
export interface QueueMessageLike {
  readonly id: string;
  readonly body: unknown;
  readonly attempts: number;
  ack(): void;
  retry(options?: { delaySeconds?: number }): void;
}

/** The part of workers-types `MessageBatch` the consumer uses. */
export interface MessageBatchLike {
  readonly queue: string;
  readonly messages: readonly QueueMessageLike[];
}

export interface QueueConsumerOptions<Env> {
  /** The guard's policy: the consumer builds its own Gatehouse on `env` (KV, feed). */
  readonly policy?: unknown;
  /** Guard options beyond the policy (fetch, clock) when `policy` is given. */
  readonly worker?: Omit<GatehouseWorkerOptions, 'policy'>;
  /** Instead of `policy`: who verifies, e.g. `(env) => ({ verify: (e) => env.GATEHOUSE.verifyEvent(e) })`. */
  readonly verifier?: (env: Env) => EventVerifierLike;
  /** Runs an allowed event once; throwing retries the message. */
  readonly handler: EventHandler<{ readonly env: Env; readonly message: QueueMessageLike }>;
  /** The idempotency record (docs/events.md); without it a redelivered event runs again. */
  readonly processed?: (env: Env) => ProcessedEvents;
  /**
   * Seconds a delivery holds an event in progress (docs/events.md, Idempotency): at least the
   * handler's longest run; default 900 (a Queues consumer's wall-time limit).
   */
  readonly leaseSeconds?: number;
  /** Seconds before a retried message comes back; default 30, 0..43200 (the Queues limit). */
  readonly retryDelaySeconds?: number;
  /** One line per refused, duplicate or retried message; default a JSON line on console.log. */
  readonly log?: (entry: ConsumerLogEntry) => void;
}

export interface EventQueueConsumer<Env> {
  queue(
    batch: MessageBatchLike,
    env: Env,
    ctx?: { waitUntil(promise: Promise<unknown>): void },
  ): Promise<void>;
}

export function createEventQueueConsumer<Env>(
  options: QueueConsumerOptions<Env>,
): EventQueueConsumer<Env> {
  const delay = options.retryDelaySeconds ?? 30;
  if (!Number.isInteger(delay) || delay < 0 || delay > 43_200) {
    throw new ConfigError('retryDelaySeconds', 'expected an integer from 0 to 43200');
  }
  if (
    options.leaseSeconds !== undefined &&
    (!Number.isInteger(options.leaseSeconds) || options.leaseSeconds < 1)
  ) {
    throw new ConfigError('leaseSeconds', 'expected a whole number of seconds from 1');
  }
  if ((options.policy === undefined) === (options.verifier === undefined)) {
    throw new ConfigError('policy', 'give exactly one of policy, verifier');
  }
  // awaitFeedReads: a delivery that finds a revocation-feed read due waits for it, so a re-check
  // never answers from data older than one feed interval (a guard request would not wait).
  const guard =
    options.policy === undefined
      ? null
      : createGatehouseWorker({ awaitFeedReads: true, ...options.worker, policy: options.policy });
  const verifierFor = (env: Env): EventVerifierLike =>
    guard === null
      ? options.verifier!(env)
      : { verify: (event) => guard.verifyEvent(event, env as unknown as GatehouseWorkerEnv) };

  return {
    async queue(batch, env) {
      const verifier = verifierFor(env);
      const processed = options.processed?.(env);
      // Messages of a batch are independent: one slow store read does not hold the others.
      await Promise.all(
        batch.messages.map(async (message) => {
          let outcome: Awaited<ReturnType<typeof processEvent>>;
          try {
            outcome = await processEvent(
              verifier,
              message.body,
              options.handler,
              { env, message },
              {
                processed,
                leaseSeconds: options.leaseSeconds,
                ...(options.log && { log: options.log }),
              },
            );
          } catch {
            message.retry({ delaySeconds: delay });
            return;
          }
          if (outcome.kind === 'retry') message.retry({ delaySeconds: delay });
          else message.ack();
        }),
      );
    },
  };
}
