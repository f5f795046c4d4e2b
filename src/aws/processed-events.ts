/**
 * Idempotency records for signed events in DynamoDB (issue 13; the interface is
 * src/events/idempotency.ts): one item per event id in the permissions table, written with a
 * conditional put. DynamoDB evaluates the condition and the write as one atomic step on the
 * item's partition, so of two deliveries racing from any number of containers exactly one
 * succeeds: `first` is strongly consistent. The item carries `ttl` (the event's expiry plus the
 * largest verifier leeway, idempotency.ts `recordUntil`); TTL deletion can lag by days, so the
 * condition also treats an expired item as absent. `state` is `in_progress` with `lease` (Unix
 * seconds) until the handler returned, then `done`; an expired lease is taken over by the
 * same conditional put. An item without `state` (written before leases) counts as done.
 *
 * | item             | pk                     | sk          |
 * | ---------------- | ---------------------- | ----------- |
 * | processed event  | `EVENT#<encoded id>`   | `PROCESSED` |
 */
import {
  ConditionalCheckFailedException,
  DeleteItemCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { StoreError } from '../errors.ts';
import {
  leaseOf,
  type ProcessedEvents,
  type ProcessedResult,
  recordUntil,
} from '../events/idempotency.ts';
import { encodeKeyPart } from '../stores/keys.ts';
import { PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE } from './dynamodb-store.ts';

export const PROCESSED_PREFIX = 'EVENT#';
export const PROCESSED_SK = 'PROCESSED';
/** Attribute names and values of a record's state (`state` is a DynamoDB reserved word: aliased). */
const STATE = 'state';
const LEASE = 'lease';
const IN_PROGRESS = 'in_progress';
const DONE = 'done';

export interface DynamoDBProcessedEventsOptions {
  readonly client: DynamoDBClient;
  readonly tableName: string;
  /** Clock, ms; default Date.now. */
  readonly now?: () => number;
}

export class DynamoDBProcessedEvents implements ProcessedEvents {
  readonly consistency = 'strong' as const;
  readonly #client: DynamoDBClient;
  readonly #table: string;
  readonly #now: () => number;

  constructor(options: DynamoDBProcessedEventsOptions) {
    this.#client = options.client;
    this.#table = options.tableName;
    this.#now = options.now ?? Date.now;
  }

  #key(eventId: string) {
    return {
      [PARTITION_KEY]: { S: `${PROCESSED_PREFIX}${encodeKeyPart(eventId)}` },
      [SORT_KEY]: { S: PROCESSED_SK },
    };
  }

  async recordProcessed(
    eventId: string,
    expiresAt: number,
    leaseSeconds?: number,
  ): Promise<ProcessedResult> {
    const now = Math.floor(this.#now() / 1000);
    try {
      await this.#client.send(
        new PutItemCommand({
          TableName: this.#table,
          Item: {
            ...this.#key(eventId),
            [TTL_ATTRIBUTE]: { N: String(recordUntil(expiresAt)) },
            [STATE]: { S: IN_PROGRESS },
            [LEASE]: { N: String(now + leaseOf(leaseSeconds)) },
          },
          ConditionExpression:
            'attribute_not_exists(#pk) OR #ttl <= :now OR (#state = :progress AND #lease <= :now)',
          ExpressionAttributeNames: {
            '#pk': PARTITION_KEY,
            '#ttl': TTL_ATTRIBUTE,
            '#state': STATE,
            '#lease': LEASE,
          },
          ExpressionAttributeValues: {
            ':now': { N: String(now) },
            ':progress': { S: IN_PROGRESS },
          },
        }),
      );
      return 'first';
    } catch (error) {
      if (
        !(error instanceof ConditionalCheckFailedException) &&
        (error as { name?: unknown })?.name !== 'ConditionalCheckFailedException'
      ) {
        throw new StoreError('store_unavailable', 'DynamoDB unavailable', { cause: error });
      }
    }
    // Taken: done (ack) or a live lease (retry). A strongly consistent read of the item that
    // refused the write; gone meanwhile (released) is a retry, never a run from here.
    let item: Record<string, { S?: string }> | undefined;
    try {
      item = (
        await this.#client.send(
          new GetItemCommand({
            TableName: this.#table,
            Key: this.#key(eventId),
            ConsistentRead: true,
          }),
        )
      ).Item as Record<string, { S?: string }> | undefined;
    } catch (error) {
      throw new StoreError('store_unavailable', 'DynamoDB unavailable', { cause: error });
    }
    return item === undefined || item[STATE]?.S === IN_PROGRESS ? 'in_progress' : 'duplicate';
  }

  async complete(eventId: string, expiresAt: number): Promise<void> {
    await this.#client.send(
      new UpdateItemCommand({
        TableName: this.#table,
        Key: this.#key(eventId),
        UpdateExpression: 'SET #state = :done, #ttl = :until REMOVE #lease',
        ExpressionAttributeNames: { '#state': STATE, '#ttl': TTL_ATTRIBUTE, '#lease': LEASE },
        ExpressionAttributeValues: {
          ':done': { S: DONE },
          ':until': { N: String(recordUntil(expiresAt)) },
        },
      }),
    );
  }

  async release(eventId: string): Promise<void> {
    await this.#client.send(
      new DeleteItemCommand({ TableName: this.#table, Key: this.#key(eventId) }),
    );
  }
}
