/**
 * The revocation feed on DynamoDB (issue 14; the core is src/revocation/), in the permission
 * table itself, so the Lambda needs no other resource:
 *
 * - `FEED` / `HEAD`: `{ epoch }`, the head, advanced after every change;
 * - `FEED` / `C#<epoch, 16 digits>`: one change `{ epoch, at, keys?, nb?, jti? }`, kept
 *   `retentionSeconds` (DynamoDB TTL in `ttl`). Epochs are claimed with a conditional put, so two
 *   writers never share one and followers see them dense and in order;
 * - `REVOKED` / `NB#<subject key>`: a subject's not-before (sign out everywhere), and
 *   `REVOKED` / `JTI#<jti>`: a revoked token id until its expiry (TTL too).
 *
 * A follower's read is one strongly consistent Query of `FEED` after its epoch: the changes and,
 * sorted after them (`HEAD` > `C#…`), the head; so one read unit per second per container when
 * nothing changed. When the changes it needs have expired it starts over (a reset): the whole
 * `REVOKED` partition and the changes still recent.
 *
 * Order: management writes the records first and the feed after them (src/admin/feed-store.ts),
 * so a follower that sees an epoch reads the records as they are after it (strongly consistent
 * reads for recent keys: DynamoDBStore `consistentFor`). dynalite, the local server every test
 * and `--endpoint` run on, has no TransactWriteItems, so the change and its feed entry are two
 * writes: if the process dies between them, that one change waits out the cache TTL.
 *
 * Node-only (the AWS SDK).
 */
import {
  ConditionalCheckFailedException,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  type QueryCommandOutput,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { ConfigError, numberOption } from '../errors.ts';
import {
  type ChangeInput,
  type FeedAnswer,
  type FeedChange,
  type FeedSource,
  type FeedWriter,
  NOT_BEFORE_KEPT_SECONDS,
  notBeforeLive,
} from '../revocation/feed.ts';
import {
  checkTableName,
  type Item,
  PARTITION_KEY,
  SORT_KEY,
  TTL_ATTRIBUTE,
} from './dynamodb-store.ts';

/** Partition of the head and the changes. */
export const FEED_PARTITION = 'FEED';
/** Partition of live not-befores and token revocations. */
export const REVOKED_PARTITION = 'REVOKED';
const HEAD_SK = 'HEAD';
const CHANGE_SK = 'C#';
const NOT_BEFORE_SK = 'NB#';
const TOKEN_SK = 'JTI#';
/** Claims a writer tries before giving up (each lost claim means another writer won one). */
const MAX_CLAIM_ATTEMPTS = 100;
/** Pages one read follows (a page is up to 1 MB); a follower further behind starts over. */
const MAX_PAGES = 10;
/** Latest changes a reset looks at for recent keys. */
const RESET_CHANGES = 1000;

function changeSortKey(epoch: number): string {
  return `${CHANGE_SK}${String(epoch).padStart(16, '0')}`;
}

export interface DynamoDBFeedReaderOptions {
  readonly client: DynamoDBClient;
  readonly tableName: string;
  /** Milliseconds a changed key counts as recent in a reset; default 120000. */
  readonly recentMs?: number;
  /** Clock, ms; default Date.now. */
  readonly now?: () => number;
}

export interface DynamoDBFeedOptions extends DynamoDBFeedReaderOptions {
  /** Seconds a change item is kept for followers that fall behind; default 86400, 60 to 2592000. */
  readonly retentionSeconds?: number;
}

/**
 * The follower's side of the feed: reads only. The Lambda authorizer follows the feed and never
 * writes it, so its bundle carries no writer code (issue 11); {@link DynamoDBFeed} adds `append`.
 */
export class DynamoDBFeedReader implements FeedSource {
  readonly #client: DynamoDBClient;
  readonly #table: string;
  readonly #recentMs: number;
  readonly #now: () => number;

  constructor(options: DynamoDBFeedReaderOptions) {
    checkTableName(options.tableName);
    if (typeof options.client?.send !== 'function') {
      throw new ConfigError('client', 'expected a DynamoDBClient');
    }
    this.#client = options.client;
    this.#table = options.tableName;
    this.#recentMs = numberOption(
      options.recentMs,
      'revocation.recentMs',
      1000,
      10_800_000,
      120_000,
    );
    this.#now = options.now ?? Date.now;
  }

  async read(since: number): Promise<FeedAnswer> {
    if (since < 0) return this.#reset();
    const { items, complete } = await this.#query(FEED_PARTITION, changeSortKey(since));
    if (!complete) return this.#reset();
    let head = since;
    let stored: number | undefined;
    const changes: FeedChange[] = [];
    for (const item of items) {
      const sk = item[SORT_KEY]?.S ?? '';
      if (sk === HEAD_SK) stored = Number(item.epoch?.N ?? 0);
      else if (sk.startsWith(CHANGE_SK)) changes.push(toChange(item));
    }
    // A head behind the follower (or gone): the table was restored or rewound, and the epochs the
    // follower has not seen may be numbered at or below its own. Start over, as FeedLog does. The
    // head item may lag the last claimed change (a writer between its two writes, or one that
    // died there), which is no rewind: only a feed whose changes are behind too resets.
    if (
      since > 0 &&
      (stored ?? 0) < since &&
      (await lastClaimed(this.#client, this.#table)) < since
    ) {
      return this.#reset();
    }
    if (stored !== undefined) head = Math.max(head, stored);
    for (const change of changes) head = Math.max(head, change.epoch);
    // Dense from since + 1, or some expired: then only a reset can say what was missed.
    const dense = changes.every((change, i) => change.epoch === since + 1 + i);
    if (!dense || (changes.length === 0 && head > since)) return this.#reset();
    return { head, reset: false, changes, now: this.#now() };
  }

  async #reset(): Promise<FeedAnswer> {
    const now = this.#now();
    const [{ items: revoked, complete }, feed] = await Promise.all([
      this.#query(REVOKED_PARTITION),
      this.#latest(),
    ]);
    // Missing part of the live revocations would readmit a revoked token: fail the read.
    if (!complete) throw new Error('revocation feed: too many live revocations to read');
    const changes: FeedChange[] = [];
    for (const item of revoked) {
      const sk = item[SORT_KEY]?.S ?? '';
      if (sk.startsWith(NOT_BEFORE_SK)) {
        // TTL deletion lags (up to days): skip what it has not removed yet.
        if (!notBeforeLive(Number(item.at?.N ?? 0), now)) continue;
        changes.push({
          epoch: 0,
          at: now,
          notBefore: { key: sk.slice(NOT_BEFORE_SK.length), at: Number(item.at?.N ?? 0) },
        });
      } else if (sk.startsWith(TOKEN_SK)) {
        const expiresAt = Number(item.exp?.N ?? 0);
        if (expiresAt * 1000 > now) {
          changes.push({ epoch: 0, at: now, token: { jti: sk.slice(TOKEN_SK.length), expiresAt } });
        }
      }
    }
    let head = 0;
    for (const item of feed) {
      const sk = item[SORT_KEY]?.S ?? '';
      if (sk === HEAD_SK) {
        head = Math.max(head, Number(item.epoch?.N ?? 0));
        continue;
      }
      const change = toChange(item);
      head = Math.max(head, change.epoch);
      if (change.keys !== undefined && now - change.at < this.#recentMs) {
        changes.push({ epoch: change.epoch, at: change.at, keys: change.keys });
      }
    }
    return { head, reset: true, changes, now };
  }

  /** The head and the latest changes, newest first (HEAD sorts after every change). */
  async #latest(): Promise<Item[]> {
    const output = await this.#client.send(
      new QueryCommand({
        TableName: this.#table,
        KeyConditionExpression: '#pk = :pk',
        ExpressionAttributeNames: { '#pk': PARTITION_KEY },
        ExpressionAttributeValues: { ':pk': { S: FEED_PARTITION } },
        ConsistentRead: true,
        ScanIndexForward: false,
        Limit: RESET_CHANGES + 1,
      }),
    );
    return output.Items ?? [];
  }

  /** Items of a partition (after `after`, when given), strongly consistent, up to MAX_PAGES. */
  async #query(pk: string, after?: string): Promise<{ items: Item[]; complete: boolean }> {
    const items: Item[] = [];
    let start: Item | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const output: QueryCommandOutput = await this.#client.send(
        new QueryCommand({
          TableName: this.#table,
          KeyConditionExpression: after === undefined ? '#pk = :pk' : '#pk = :pk AND #sk > :after',
          ExpressionAttributeNames: {
            '#pk': PARTITION_KEY,
            ...(after !== undefined && { '#sk': SORT_KEY }),
          },
          ExpressionAttributeValues: {
            ':pk': { S: pk },
            ...(after !== undefined && { ':after': { S: after } }),
          },
          ConsistentRead: true,
          ...(start !== undefined && { ExclusiveStartKey: start }),
        }),
      );
      for (const item of output.Items ?? []) items.push(item);
      start = output.LastEvaluatedKey;
      if (start === undefined) return { items, complete: true };
    }
    return { items, complete: false };
  }
}

/** The highest claimed epoch: the last change item. */
async function lastClaimed(client: DynamoDBClient, table: string): Promise<number> {
  const output = await client.send(
    new QueryCommand({
      TableName: table,
      KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :c)',
      ExpressionAttributeNames: { '#pk': PARTITION_KEY, '#sk': SORT_KEY },
      ExpressionAttributeValues: { ':pk': { S: FEED_PARTITION }, ':c': { S: CHANGE_SK } },
      ConsistentRead: true,
      ScanIndexForward: false,
      Limit: 1,
    }),
  );
  return Number(output.Items?.[0]?.epoch?.N ?? 0);
}

/**
 * The feed for writers (management: the admin Lambda, the CLI) and followers alike: claims each
 * change's epoch with a conditional put after writing the revocation state it announces.
 */
export class DynamoDBFeed extends DynamoDBFeedReader implements FeedWriter {
  readonly #client: DynamoDBClient;
  readonly #table: string;
  readonly #retention: number;
  readonly #now: () => number;

  constructor(options: DynamoDBFeedOptions) {
    super(options);
    this.#client = options.client;
    this.#table = options.tableName;
    this.#retention = numberOption(
      options.retentionSeconds,
      'revocation.retentionSeconds',
      60,
      2_592_000,
      86_400,
      true,
    );
    this.#now = options.now ?? Date.now;
  }

  async append(input: ChangeInput): Promise<number> {
    const now = this.#now();
    const nowSeconds = Math.floor(now / 1000);
    // Revocation state first: a follower that sees the epoch must find it.
    if (input.notBefore !== undefined) {
      // DynamoDB TTL removes it once no token it refuses can be live (review finding 9).
      await this.#raise(
        `${NOT_BEFORE_SK}${input.notBefore.key}`,
        'at',
        input.notBefore.at,
        input.notBefore.at + NOT_BEFORE_KEPT_SECONDS,
      );
    }
    if (input.token !== undefined) {
      await this.#raise(
        `${TOKEN_SK}${input.token.jti}`,
        'exp',
        input.token.expiresAt,
        input.token.expiresAt,
      );
    }
    let epoch = (await this.#head()) + 1;
    for (let attempt = 0; attempt < MAX_CLAIM_ATTEMPTS; attempt++) {
      const item: Item = {
        [PARTITION_KEY]: { S: FEED_PARTITION },
        [SORT_KEY]: { S: changeSortKey(epoch) },
        epoch: { N: String(epoch) },
        at: { N: String(now) },
        [TTL_ATTRIBUTE]: { N: String(nowSeconds + this.#retention) },
        ...(input.keys !== undefined &&
          input.keys.length > 0 && { keys: { L: input.keys.map((k) => ({ S: k })) } }),
        ...(input.notBefore !== undefined && {
          nbKey: { S: input.notBefore.key },
          nbAt: { N: String(input.notBefore.at) },
        }),
        ...(input.token !== undefined && {
          jti: { S: input.token.jti },
          jtiExp: { N: String(input.token.expiresAt) },
        }),
      };
      try {
        await this.#client.send(
          new PutItemCommand({
            TableName: this.#table,
            Item: item,
            ConditionExpression: 'attribute_not_exists(#pk)',
            ExpressionAttributeNames: { '#pk': PARTITION_KEY },
          }),
        );
      } catch (error) {
        if (!(error instanceof ConditionalCheckFailedException)) throw error;
        // Taken: the head item may lag the claims, so ask the changes themselves for the last.
        epoch = Math.max(epoch, await lastClaimed(this.#client, this.#table)) + 1;
        continue;
      }
      await this.#advanceHead(epoch);
      return epoch;
    }
    throw new Error('revocation feed: could not claim an epoch (too many concurrent writers)');
  }

  async #head(): Promise<number> {
    const output = await this.#client.send(
      new GetItemCommand({
        TableName: this.#table,
        Key: { [PARTITION_KEY]: { S: FEED_PARTITION }, [SORT_KEY]: { S: HEAD_SK } },
        ConsistentRead: true,
      }),
    );
    return Number(output.Item?.epoch?.N ?? 0);
  }

  /** The head only moves forward: a slower writer's smaller epoch is a no-op. */
  async #advanceHead(epoch: number): Promise<void> {
    await this.#raise(HEAD_SK, 'epoch', epoch, undefined, FEED_PARTITION);
  }

  /** Sets `attribute` to `value` unless it already holds as much (a conditional update). */
  async #raise(
    sk: string,
    attribute: string,
    value: number,
    ttl?: number,
    pk: string = REVOKED_PARTITION,
  ): Promise<void> {
    try {
      await this.#client.send(
        new UpdateItemCommand({
          TableName: this.#table,
          Key: { [PARTITION_KEY]: { S: pk }, [SORT_KEY]: { S: sk } },
          UpdateExpression: ttl === undefined ? 'SET #a = :v' : 'SET #a = :v, #ttl = :ttl',
          ConditionExpression: 'attribute_not_exists(#a) OR #a < :v',
          ExpressionAttributeNames: {
            '#a': attribute,
            ...(ttl !== undefined && { '#ttl': TTL_ATTRIBUTE }),
          },
          ExpressionAttributeValues: {
            ':v': { N: String(value) },
            ...(ttl !== undefined && { ':ttl': { N: String(ttl) } }),
          },
        }),
      );
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return;
      throw error;
    }
  }
}

function toChange(item: Item): FeedChange {
  const epoch = Number(item.epoch?.N);
  const at = Number(item.at?.N);
  if (!Number.isSafeInteger(epoch) || !Number.isFinite(at)) {
    throw new Error('revocation feed: malformed change item');
  }
  const keys = item.keys?.L?.map((v) => v.S).filter((k): k is string => typeof k === 'string');
  return {
    epoch,
    at,
    ...(keys !== undefined && keys.length > 0 && { keys }),
    ...(item.nbKey?.S !== undefined && {
      notBefore: { key: item.nbKey.S, at: Number(item.nbAt?.N ?? 0) },
    }),
    ...(item.jti?.S !== undefined && {
      token: { jti: item.jti.S, expiresAt: Number(item.jtiExp?.N ?? 0) },
    }),
  };
}
