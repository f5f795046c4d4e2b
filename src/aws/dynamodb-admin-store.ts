/**
 * The management side of the DynamoDB store: an {@link AdminStore} over the same table and the
 * same items {@link DynamoDBStore} reads (docs/aws.md, "Table design"), so what the CLI and the
 * admin API write is exactly what the Lambda authorizer reads.
 *
 * - A subject: one item per role assignment, grant and deny, plus the `USER` marker, in
 *   `USER#<tenant>/s:<subject>`. readUser queries the partition with strongly consistent reads
 *   (its result is the `before` of a write) and keeps expired items, which must stay revocable.
 *   writeUser writes only the difference between `before` and `after`.
 * - A tenant's store roles: one item per role definition in `ROLES#<tenant>`.
 * - Permanent markers: `META#<name>` (`META#seeded`: what seeding wrote), no TTL.
 * - Audit records: `AUDIT#<YYYY-MM-DD>` (the UTC day of the record's time) and the record id as
 *   sort key (it starts with the ISO time, so a day sorts by time), the record as JSON text in
 *   `record`, DynamoDB TTL in `ttl`.
 *
 * Writes use BatchWriteItem, not TransactWriteItems: dynalite (the local server behind the tests,
 * `npm run invoke` and the CLI's `--endpoint`) has no transactions, so a transactional path could
 * only ever run untested against AWS. Instead a change is written in phases, restrictive first
 * (new denies, removed grants and assignments, then new assignments and grants, removed denies
 * last), each phase in its own batches, so a reader in the middle of a change sees fewer grants
 * or more denies than one side of it, not a partial mix that allows more. Role assignments bring
 * a role's grants and denies together, so for them this ordering is best effort.
 *
 * Node-only (the AWS SDK), like dynamodb.ts.
 */
import {
  type DynamoDBClient,
  PutItemCommand,
  QueryCommand,
  type QueryCommandInput,
  type QueryCommandOutput,
  ScanCommand,
  type ScanCommandOutput,
  type WriteRequest,
} from '@aws-sdk/client-dynamodb';
import { matchesAudit } from '../admin/memory.ts';
import {
  type AdminStore,
  type AuditFilter,
  type AuditRecord,
  type AuditState,
  checkMarkerName,
  type Progress,
  type Snapshot,
} from '../admin/types.ts';
import { AdminError, StoreError } from '../errors.ts';
import { parseSubjectStorageKey, parseTenantStorageKey } from '../stores/keys.ts';
import type { TenantRole } from '../stores/memory.ts';
import type { Grant, RoleAssignment, RoleRecord, SubjectKey, UserRecord } from '../types.ts';
import {
  assignmentItem,
  canonical,
  checkTableName,
  DENY_SK,
  GRANT_SK,
  grantItem,
  type Item,
  invalid,
  MARKER_SK,
  PARTITION_KEY,
  ROLE_SK,
  ROLES_PREFIX,
  roleItem,
  rolesPartitionKey,
  SORT_KEY,
  TTL_ATTRIBUTE,
  toRoleRecord,
  toUserRecord,
  USER_PREFIX,
  userMarkerItem,
  userPartitionKey,
  writeRequests,
} from './dynamodb-store.ts';
import { FEED_PARTITION, REVOKED_PARTITION } from './revocation-feed.ts';

/** Partition of a permanent marker: `META#seeded` (sort key `META`, text in `value`, no ttl). */
export const META_PREFIX = 'META#';

/** Prefix of an audit day partition: `AUDIT#2026-11-20`. */
export const AUDIT_PREFIX = 'AUDIT#';
/** Attribute holding an audit record as JSON text. */
export const AUDIT_RECORD_ATTRIBUTE = 'record';
/** How far back listAudit looks, days: the longest audit retention operations.ts accepts. */
export const MAX_AUDIT_DAYS = 3650;
/** Audit day partitions queried at once by listAudit. */
export const AUDIT_DAY_CONCURRENCY = 8;
/**
 * Largest audit record JSON stored as is, bytes. DynamoDB refuses items over 400 KB; a larger
 * record keeps who, when and what, with `before` / `after` replaced by their sizes.
 */
export const MAX_AUDIT_RECORD_BYTES = 380_000;

const DAY_MS = 86_400_000;
const DEFAULT_AUDIT_LIMIT = 100;

export interface DynamoDBAdminStoreOptions {
  /** The SDK client; management calls can be large, so give it generous timeouts. */
  readonly client: DynamoDBClient;
  readonly tableName: string;
  /** Clock in milliseconds (audit `ttl`, the days listAudit reads); default Date.now. */
  readonly now?: () => number;
}

/** One item to write and the grant, assignment or role it was built from (none for the marker). */
interface Wanted {
  readonly item: Item;
  readonly source: Grant | RoleAssignment | RoleRecord | undefined;
}

const GRANT_KEYS: ReadonlySet<string> = new Set(['permission', 'expiresAt', 'when']);
const ASSIGNMENT_KEYS: ReadonlySet<string> = new Set(['role', 'expiresAt']);
const ROLE_KEYS: ReadonlySet<string> = new Set(['name', 'grants', 'denies', 'inherits']);

function hasOtherKeys(value: object, known: ReadonlySet<string>): boolean {
  return Object.keys(value).some((key) => !known.has(key));
}

/**
 * Whether writing `source` as an item would drop a key the item functions do not know. A stored
 * grant with a misspelt `expires` is skipped by the edges; rewriting it without that key would
 * make it permanent, so such a record is refused rather than rewritten.
 */
function loses(source: Wanted['source']): boolean {
  if (source === undefined) return false;
  if ('permission' in source) return hasOtherKeys(source, GRANT_KEYS);
  if ('role' in source) return hasOtherKeys(source, ASSIGNMENT_KEYS);
  return (
    hasOtherKeys(source, ROLE_KEYS) ||
    [...source.grants, ...(source.denies ?? [])].some((g) => hasOtherKeys(g, GRANT_KEYS))
  );
}

function sortKeyOf(item: Item): string {
  return item[SORT_KEY]!.S!;
}

function keyOf(record: SubjectKey): SubjectKey {
  return record.tenant === undefined
    ? { subject: record.subject }
    : { subject: record.subject, tenant: record.tenant };
}

/** The items of a user record by sort key, each with what it was built from. */
function userWanted(record: UserRecord): Map<string, Wanted> {
  const key = keyOf(record);
  const wanted = new Map<string, Wanted>();
  const add = (item: Item, source: Wanted['source']) =>
    wanted.set(sortKeyOf(item), { item, source });
  add(userMarkerItem(key), undefined);
  for (const a of record.roles) add(assignmentItem(key, a), a);
  for (const g of record.grants) add(grantItem(key, 'allow', g), g);
  for (const g of record.denies) add(grantItem(key, 'deny', g), g);
  return wanted;
}

/**
 * The write phase of a change to a user item: restrictive changes first (see the module
 * comment). An item type this version does not know is only ever deleted, and late: it could be
 * a deny.
 */
function phaseOf(sk: string, put: boolean): number {
  if (sk === MARKER_SK) return put ? 0 : 5;
  if (sk.startsWith(DENY_SK)) return put ? 0 : 4;
  if (sk.startsWith(GRANT_SK)) return put ? 3 : 1;
  if (sk.startsWith(ROLE_SK)) return put ? 2 : 1;
  return 4;
}

function deleteRequest(pk: string, sk: string): WriteRequest {
  return { DeleteRequest: { Key: { [PARTITION_KEY]: { S: pk }, [SORT_KEY]: { S: sk } } } };
}

function dayStart(ms: number): number {
  return Math.floor(ms / DAY_MS) * DAY_MS;
}

/** The audit partition of a time: `AUDIT#<UTC day>`. */
export function auditPartitionKey(timeMs: number): string {
  return `${AUDIT_PREFIX}${new Date(timeMs).toISOString().slice(0, 10)}`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function readAuditItem(pk: string, item: Item): AuditRecord {
  const sk = item[SORT_KEY]?.S ?? '';
  const field = `${pk}[${sk}].${AUDIT_RECORD_ATTRIBUTE}`;
  const text = item[AUDIT_RECORD_ATTRIBUTE]?.S;
  if (text === undefined) invalid(field, 'expected an audit record as JSON text');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    invalid(field, 'expected an audit record as JSON text');
  }
  if (
    !isObject(value) ||
    value.id !== sk ||
    typeof value.time !== 'string' ||
    !isObject(value.target)
  ) {
    invalid(field, 'expected an audit record whose id is the sort key');
  }
  return value as unknown as AuditRecord;
}

function omitted(state: AuditState): AuditState {
  if (state === null) return null;
  return { omitted: 'too large for one DynamoDB item', bytes: byteLength(JSON.stringify(state)) };
}

/** DynamoDB's limit on a partition key value, bytes. */
const MAX_PARTITION_KEY_BYTES = 2048;

const encoder = new TextEncoder();
function byteLength(text: string): number {
  return encoder.encode(text).length;
}

export class DynamoDBAdminStore implements AdminStore {
  readonly description: string;
  readonly #client: DynamoDBClient;
  readonly #table: string;
  readonly #now: () => number;
  /** Sort keys stored for a record this store handed out, so writeUser also removes strays. */
  readonly #userKeys = new WeakMap<UserRecord, ReadonlySet<string>>();
  readonly #roleKeys = new WeakMap<RoleRecord, string>();

  constructor(options: DynamoDBAdminStoreOptions) {
    checkTableName(options.tableName);
    this.#client = options.client;
    this.#table = options.tableName;
    this.#now = options.now ?? Date.now;
    this.description = `dynamodb ${options.tableName}`;
  }

  async readUser(key: SubjectKey): Promise<UserRecord | null> {
    const items = await this.#queryAll(userPartitionKey(key));
    return this.#user(key, items);
  }

  checkKey(key: SubjectKey): void {
    const bytes = byteLength(userPartitionKey(key));
    if (bytes > MAX_PARTITION_KEY_BYTES) {
      throw new AdminError(
        'invalid_request',
        `subject: ${key.subject.slice(0, 40)}… is too long for a DynamoDB partition key ` +
          `(${bytes} of at most ${MAX_PARTITION_KEY_BYTES} bytes once encoded, with the tenant)`,
        { field: 'subject' },
      );
    }
  }

  async writeUser(key: SubjectKey, before: UserRecord | null, after: UserRecord | null) {
    this.checkKey(key);
    const pk = userPartitionKey(key);
    if (after === null) {
      // Every item of the partition, including ones another tool wrote.
      const items = await this.#queryAll(pk);
      await this.#writePhased(
        items.map((item) => ({ sk: sortKeyOf(item), request: deleteRequest(pk, sortKeyOf(item)) })),
      );
      return;
    }
    if (userPartitionKey(after) !== pk) invalid(pk, 'the record is for another subject or tenant');
    const wanted = userWanted(after);
    const previous = before === null ? new Map<string, Wanted>() : userWanted(before);
    const stored = (before !== null && this.#userKeys.get(before)) || new Set(previous.keys());
    const changes: { sk: string; request: WriteRequest }[] = [];
    for (const sk of stored) {
      if (!wanted.has(sk)) changes.push({ sk, request: deleteRequest(pk, sk) });
    }
    for (const [sk, { item, source }] of wanted) {
      const old = previous.get(sk);
      // Unchanged items are left alone, which also keeps any attribute this version ignores.
      if (stored.has(sk) && old !== undefined && canonical(old.item) === canonical(item)) continue;
      if (loses(source))
        invalid(`${pk}[${sk}]`, 'carries a key an item cannot hold; fix it by hand');
      changes.push({ sk, request: { PutRequest: { Item: item } } });
    }
    await this.#writePhased(changes);
  }

  async readRoles(tenant: string | undefined): Promise<readonly RoleRecord[]> {
    const pk = rolesPartitionKey(tenant);
    const items = await this.#queryAll(pk);
    return Object.freeze(items.map((item, i) => this.#role(item, `${pk}[${i}]`)));
  }

  async writeRoles(
    tenant: string | undefined,
    before: readonly RoleRecord[],
    after: readonly RoleRecord[],
  ): Promise<void> {
    const pk = rolesPartitionKey(tenant);
    const wanted = new Map<string, Wanted>();
    for (const role of after) {
      const item = roleItem(tenant, role);
      wanted.set(sortKeyOf(item), { item, source: role });
    }
    const previous = new Map<string, Item>();
    const stored = new Set<string>();
    for (const role of before) {
      const item = roleItem(tenant, role);
      previous.set(sortKeyOf(item), item);
      stored.add(this.#roleKeys.get(role) ?? sortKeyOf(item));
    }
    const puts: WriteRequest[] = [];
    for (const [sk, { item, source }] of wanted) {
      const old = previous.get(sk);
      if (stored.has(sk) && old !== undefined && canonical(old) === canonical(item)) continue;
      if (loses(source))
        invalid(`${pk}[${sk}]`, 'carries a key an item cannot hold; fix it by hand');
      puts.push({ PutRequest: { Item: item } });
    }
    const deletes = [...stored].filter((sk) => !wanted.has(sk)).map((sk) => deleteRequest(pk, sk));
    // Definitions first, removals after: operations.ts refuses removing a role still inherited.
    await this.#send('write', () => writeRequests(this.#client, this.#table, puts));
    await this.#send('write', () => writeRequests(this.#client, this.#table, deletes));
  }

  async exportAll(progress?: Progress): Promise<Snapshot> {
    const partitions = new Map<string, Item[]>();
    let found = 0;
    let start: Item | undefined;
    do {
      const output: ScanCommandOutput = await this.#send('scan', () =>
        this.#client.send(
          new ScanCommand({
            TableName: this.#table,
            ConsistentRead: true,
            ...(start !== undefined && { ExclusiveStartKey: start }),
          }),
        ),
      );
      for (const item of output.Items ?? []) {
        const pk = item[PARTITION_KEY]?.S;
        if (pk === undefined) invalid(`${PARTITION_KEY}`, 'expected a string partition key');
        // The audit trail, permanent markers and the revocation feed are not permission data.
        if (
          pk.startsWith(AUDIT_PREFIX) ||
          pk.startsWith(META_PREFIX) ||
          pk === FEED_PARTITION ||
          pk === REVOKED_PARTITION
        ) {
          continue;
        }
        let list = partitions.get(pk);
        if (list === undefined) {
          list = [];
          partitions.set(pk, list);
          if (pk.startsWith(USER_PREFIX)) found++;
        }
        list.push(item);
        if (pk.startsWith(ROLES_PREFIX)) found++;
      }
      progress?.(found, undefined);
      start = output.LastEvaluatedKey;
    } while (start !== undefined);

    const users: UserRecord[] = [];
    const roles: TenantRole[] = [];
    for (const pk of [...partitions.keys()].sort()) {
      const items = partitions.get(pk)!;
      if (pk.startsWith(USER_PREFIX)) {
        users.push(this.#user(this.#subjectOf(pk, items), items)!);
      } else if (pk.startsWith(ROLES_PREFIX)) {
        const tenant = parseTenantStorageKey(pk.slice(ROLES_PREFIX.length));
        if (tenant === undefined) invalid(pk, 'not a tenant key');
        items.forEach((item, i) => {
          roles.push(
            Object.freeze({ tenant: tenant.tenant, role: this.#role(item, `${pk}[${i}]`) }),
          );
        });
      } else {
        // A partition a newer version wrote: an export without it would not be the whole store.
        invalid(pk, 'unknown partition type');
      }
    }
    progress?.(found, found);
    return { users: Object.freeze(users), roles: Object.freeze(roles) };
  }

  async readMarker(name: string): Promise<string | null> {
    checkMarkerName(name);
    const output: QueryCommandOutput = await this.#send('query', () =>
      this.#client.send(
        new QueryCommand({
          TableName: this.#table,
          KeyConditionExpression: '#pk = :pk',
          ExpressionAttributeNames: { '#pk': PARTITION_KEY },
          ExpressionAttributeValues: { ':pk': { S: `${META_PREFIX}${name}` } },
          ConsistentRead: true,
        }),
      ),
    );
    const value = output.Items?.[0]?.value?.S;
    return value ?? null;
  }

  async writeMarker(name: string, value: string): Promise<void> {
    checkMarkerName(name);
    await this.#send('write', () =>
      this.#client.send(
        new PutItemCommand({
          TableName: this.#table,
          Item: {
            [PARTITION_KEY]: { S: `${META_PREFIX}${name}` },
            [SORT_KEY]: { S: 'META' },
            value: { S: value },
          },
        }),
      ),
    );
  }

  async appendAudit(record: AuditRecord, retentionSeconds: number): Promise<void> {
    const time = Date.parse(record.time);
    if (!Number.isFinite(time)) {
      throw new AdminError('invalid_request', 'audit time: expected an ISO 8601 time', {
        field: 'time',
      });
    }
    let text = JSON.stringify(record);
    if (byteLength(text) > MAX_AUDIT_RECORD_BYTES) {
      text = JSON.stringify({
        ...record,
        before: omitted(record.before),
        after: omitted(record.after),
      });
    }
    const ttl = Math.floor(this.#now() / 1000) + Math.ceil(retentionSeconds);
    await this.#send('write', () =>
      this.#client.send(
        new PutItemCommand({
          TableName: this.#table,
          Item: {
            [PARTITION_KEY]: { S: auditPartitionKey(time) },
            [SORT_KEY]: { S: record.id },
            [AUDIT_RECORD_ATTRIBUTE]: { S: text },
            [TTL_ATTRIBUTE]: { N: String(ttl) },
          },
        }),
      ),
    );
  }

  /**
   * Reads day partitions newest first, from tomorrow (a writer's clock may run a little ahead)
   * back to the day of `filter.since`, at most {@link MAX_AUDIT_DAYS} days before today, and stops
   * once `limit` records match. Records past their `ttl` are skipped: TTL deletion lags by days.
   */
  async listAudit(filter: AuditFilter): Promise<readonly AuditRecord[]> {
    const limit = Math.floor(filter.limit ?? DEFAULT_AUDIT_LIMIT);
    if (!(limit > 0)) return [];
    const now = this.#now();
    const today = dayStart(now);
    const oldest = today - MAX_AUDIT_DAYS * DAY_MS;
    const since = Number.isFinite(filter.since) ? Math.max(filter.since, oldest) : oldest;
    const days: string[] = [];
    for (let day = today + DAY_MS; day >= dayStart(since); day -= DAY_MS) {
      days.push(auditPartitionKey(day));
    }
    const sinceText = new Date(since).toISOString();
    const found: AuditRecord[] = [];
    for (let i = 0; i < days.length && found.length < limit; i += AUDIT_DAY_CONCURRENCY) {
      const want = limit - found.length;
      const chunk = days.slice(i, i + AUDIT_DAY_CONCURRENCY);
      const results = await Promise.all(
        chunk.map((pk) => this.#auditDay(pk, sinceText, now, filter, want)),
      );
      for (const records of results) found.push(...records);
    }
    return Object.freeze(found.slice(0, limit));
  }

  // -------------------------------------------------------------------------------------------

  async #auditDay(
    pk: string,
    sinceText: string,
    now: number,
    filter: AuditFilter,
    want: number,
  ): Promise<AuditRecord[]> {
    const found: AuditRecord[] = [];
    for await (const item of this.#query({
      // Newest first, from `since` on: the sort key starts with the record's ISO time.
      KeyConditionExpression: '#pk = :pk AND #sk >= :since',
      ExpressionAttributeNames: { '#pk': PARTITION_KEY, '#sk': SORT_KEY },
      ExpressionAttributeValues: { ':pk': { S: pk }, ':since': { S: sinceText } },
      ScanIndexForward: false,
    })) {
      const ttl = item[TTL_ATTRIBUTE]?.N;
      if (ttl !== undefined && Number(ttl) * 1000 <= now) continue;
      const record = readAuditItem(pk, item);
      if (!matchesAudit(record, filter)) continue;
      found.push(record);
      if (found.length >= want) return found;
    }
    return found;
  }

  /** The subject of a USER# partition: its marker's attributes, else the decoded key. */
  #subjectOf(pk: string, items: readonly Item[]): SubjectKey {
    const marker = items.find((item) => item[SORT_KEY]?.S === MARKER_SK);
    if (marker === undefined) {
      // Written by another tool without a marker: the key says who it is (decoding is exact).
      const key = parseSubjectStorageKey(pk.slice(USER_PREFIX.length));
      if (key === undefined) invalid(pk, 'not a subject key');
      return key;
    }
    const subject = marker.subject?.S;
    const tenant = marker.tenant?.S;
    if (subject === undefined) invalid(`${pk}[${MARKER_SK}].subject`, 'expected a string');
    if (marker.tenant !== undefined && tenant === undefined) {
      invalid(`${pk}[${MARKER_SK}].tenant`, 'expected a string');
    }
    const key = tenant === undefined ? { subject } : { subject, tenant };
    if (userPartitionKey(key) !== pk) {
      invalid(`${pk}[${MARKER_SK}]`, 'subject and tenant do not match the partition key');
    }
    return key;
  }

  #user(key: SubjectKey, items: readonly Item[]): UserRecord | null {
    const record = toUserRecord(key, items, null);
    if (record !== null) this.#userKeys.set(record, new Set(items.map(sortKeyOf)));
    return record;
  }

  #role(item: Item, field: string): RoleRecord {
    const role = toRoleRecord(item, field);
    this.#roleKeys.set(role, sortKeyOf(item));
    return role;
  }

  /** Sends changes phase by phase (see phaseOf), each phase in batches of 25. */
  async #writePhased(changes: readonly { sk: string; request: WriteRequest }[]): Promise<void> {
    const phases: WriteRequest[][] = [];
    for (const { sk, request } of changes) {
      const phase = phaseOf(sk, request.PutRequest !== undefined);
      const list = phases[phase] ?? [];
      list.push(request);
      phases[phase] = list;
    }
    for (const requests of phases) {
      if (requests === undefined) continue;
      await this.#send('write', () => writeRequests(this.#client, this.#table, requests));
    }
  }

  async #queryAll(pk: string): Promise<Item[]> {
    const items: Item[] = [];
    for await (const item of this.#query({
      KeyConditionExpression: '#pk = :pk',
      ExpressionAttributeNames: { '#pk': PARTITION_KEY },
      ExpressionAttributeValues: { ':pk': { S: pk } },
    })) {
      items.push(item);
    }
    return items;
  }

  /** Every item of one partition's Query, page by page, strongly consistent. */
  async *#query(
    input: Pick<
      QueryCommandInput,
      | 'KeyConditionExpression'
      | 'ExpressionAttributeNames'
      | 'ExpressionAttributeValues'
      | 'ScanIndexForward'
    >,
  ): AsyncGenerator<Item> {
    let start: Item | undefined;
    do {
      const output: QueryCommandOutput = await this.#send('query', () =>
        this.#client.send(
          new QueryCommand({
            TableName: this.#table,
            ...input,
            ConsistentRead: true,
            ...(start !== undefined && { ExclusiveStartKey: start }),
          }),
        ),
      );
      yield* output.Items ?? [];
      start = output.LastEvaluatedKey;
    } while (start !== undefined);
  }

  /** Runs one SDK call; its failures become store_unavailable (the SDK's message kept as cause). */
  async #send<T>(what: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      if (error instanceof StoreError) throw error;
      // The SDK's message may name the table, the endpoint or the account: cause only.
      throw new StoreError('store_unavailable', `dynamodb: ${what} failed`, { cause: error });
    }
  }
}
