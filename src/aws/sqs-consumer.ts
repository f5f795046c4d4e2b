/**
 * An SQS-triggered Lambda for signed events (issue 13). Each record's body is the event (the
 * compact JWS, or JSON `{ "event": "<JWS>" }`); per record:
 *
 * - verified and allowed by the re-check → the DynamoDB idempotency record → your handler;
 *   a second delivery of the same id is dropped without running;
 * - refused (forged, altered, expired, foreign, permission revoked) → dropped, one log line with
 *   the reason; the handler never runs, and retrying could not change the answer;
 * - store, keys or idempotency record unavailable, or the handler threw → reported in
 *   `batchItemFailures`, so SQS delivers that record again after its visibility timeout (the
 *   event source mapping needs `FunctionResponseTypes: [ReportBatchItemFailures]`).
 *
 * The Gatehouse is the authorizer's (lambda.ts: same policy, same table, the revocation feed
 * followed with reads awaited), built once per container.
 */
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { ConfigError } from '../errors.ts';
import { type ConsumerLogEntry, type EventHandler, processEvent } from '../events/consumer.ts';
import { eventsFor } from '../events/events.ts';
import type { ProcessedEvents } from '../events/idempotency.ts';
import { consoleJsonWriter } from '../logging/decision-log.ts';
import { createDynamoDBClient } from './dynamodb-store.ts';
import { buildAuthorizer, ENV, type LambdaHandlerOptions } from './lambda.ts';
import { DynamoDBProcessedEvents } from './processed-events.ts';

export interface SqsEventHandlerOptions extends LambdaHandlerOptions {
  /** Runs an allowed event once; throwing reports the record for another delivery. */
  readonly handler: EventHandler<{ readonly record: SQSRecord }>;
  /**
   * The idempotency record: default the conditional-write table records in `TABLE_NAME`
   * (strongly consistent); `null` turns it off explicitly (a redelivered event then runs again).
   */
  readonly processed?: ProcessedEvents | null;
  /**
   * Seconds a delivery holds an event in progress (docs/events.md, Idempotency): at least the
   * function's timeout, so a slow run is not taken over; default 900 (the Lambda maximum).
   */
  readonly leaseSeconds?: number;
}

export type SqsEventHandler = (event: SQSEvent) => Promise<SQSBatchResponse>;

/** The record's body as the consumer step takes it: a JWS string, or the parsed `{ event }`. */
function bodyOf(record: SQSRecord): unknown {
  const text = record.body;
  if (typeof text === 'string' && text.startsWith('{')) {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return text;
    }
  }
  return text;
}

export function createSqsEventHandler(options: SqsEventHandlerOptions): SqsEventHandler {
  const log = options.log ?? consoleJsonWriter;
  // Configuration errors throw here, at cold start, naming the variable: an SQS consumer has no
  // answer to give, and a thrown init leaves the messages on the queue for a fixed deployment.
  const endpoint = options.env[ENV.endpoint];
  // One client for the store, the feed and the idempotency records.
  const client = options.client ?? createDynamoDBClient(endpoint ? { endpoint } : {});
  const { gatehouse } = buildAuthorizer({ ...options, client, log });
  let processed: ProcessedEvents | undefined;
  if (options.processed === undefined) {
    const tableName = options.env[ENV.tableName];
    if (!tableName) throw new ConfigError(ENV.tableName, 'expected the DynamoDB table name');
    processed = new DynamoDBProcessedEvents({
      client,
      tableName,
      ...(options.now && { now: options.now }),
    });
  } else if (options.processed !== null) {
    processed = options.processed;
  }
  if (
    options.leaseSeconds !== undefined &&
    (!Number.isInteger(options.leaseSeconds) || options.leaseSeconds < 1)
  ) {
    throw new ConfigError('leaseSeconds', 'expected a whole number of seconds from 1');
  }
  const events = eventsFor(gatehouse, options.now ? { now: options.now } : {});
  const consumerLog = (entry: ConsumerLogEntry) => log({ ...entry });

  return async (event) => {
    const failures: { itemIdentifier: string }[] = [];
    await Promise.all(
      event.Records.map(async (record) => {
        try {
          const outcome = await processEvent(
            events,
            bodyOf(record),
            options.handler,
            { record },
            {
              processed,
              leaseSeconds: options.leaseSeconds,
              log: consumerLog,
            },
          );
          if (outcome.kind === 'retry') failures.push({ itemIdentifier: record.messageId });
        } catch {
          failures.push({ itemIdentifier: record.messageId });
        }
      }),
    );
    return { batchItemFailures: failures };
  };
}
