/**
 * Idempotency records for signed events in DynamoDB (issue 13; the interface is
 * src/events/idempotency.ts): one item per event id in the permissions table, written with a
 * conditional put. DynamoDB evaluates the condition and the write as one atomic step on the
 * item's partition, so of two deliveries racing from any number of containers exactly one
 * succeeds: `first` is strongly consistent. The item carries the event's expiry as `ttl`; TTL
 * deletion can lag by days, so the condition also treats an expired item as absent.
 *
 * | item             | pk                     | sk          |
 * | ---------------- | ---------------------- | ----------- |
 * | processed event  | `EVENT#<encoded id>`   | `PROCESSED` |
 */
import {
  ConditionalCheckFailedException,
  DeleteItemCommand,
  type DynamoDBClient,
  PutItemCommand,
} from '@aws-sdk/client-dynamodb';
import { StoreError } from '../errors.ts';
import type { ProcessedEvents, ProcessedResult } from '../events/idempotency.ts';
import { encodeKeyPart } from '../stores/keys.ts';
import { PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE } from './dynamodb-store.ts';

export const PROCESSED_PREFIX = 'EVENT#';
export const PROCESSED_SK = 'PROCESSED';

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

  async recordProcessed(eventId: string, expiresAt: number): Promise<ProcessedResult> {
    try {
      await this.#client.send(
        new PutItemCommand({
          TableName: this.#table,
          Item: { ...this.#key(eventId), [TTL_ATTRIBUTE]: { N: String(expiresAt) } },
          ConditionExpression: 'attribute_not_exists(#pk) OR #ttl <= :now',
          ExpressionAttributeNames: { '#pk': PARTITION_KEY, '#ttl': TTL_ATTRIBUTE },
          ExpressionAttributeValues: { ':now': { N: String(Math.floor(this.#now() / 1000)) } },
        }),
      );
      return 'first';
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return 'duplicate';
      if ((error as { name?: unknown })?.name === 'ConditionalCheckFailedException')
        return 'duplicate';
      throw new StoreError('store_unavailable', 'DynamoDB unavailable', { cause: error });
    }
  }

  async release(eventId: string): Promise<void> {
    await this.#client.send(
      new DeleteItemCommand({ TableName: this.#table, Key: this.#key(eventId) }),
    );
  }
}
