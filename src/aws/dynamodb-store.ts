/**
 * The DynamoDB permission store: one table, one Query per subject, one Query per tenant's roles.
 *
 * Table design (docs/aws.md has the full picture):
 *
 * | item                  | pk                                  | sk                          |
 * | --------------------- | ----------------------------------- | --------------------------- |
 * | user marker           | `USER#<tenant key>/s:<subject>`     | `USER`                      |
 * | role assignment       | `USER#<tenant key>/s:<subject>`     | `ROLE#<role>`               |
 * | direct grant / deny   | `USER#<tenant key>/s:<subject>`     | `GRANT#<perm>[#<cond>]` / `DENY#…` |
 * | role definition       | `ROLES#<tenant key>`                | `ROLE#<role>`               |
 *
 * Every part is encoded with encodeKeyPart (keys.ts), so no subject, tenant or role name can
 * reach another partition. Expiring items carry `ttl` (Unix seconds) for DynamoDB's TTL clean-up;
 * because that deletion can lag by days, expired items are also dropped when read.
 *
 * Node-only (the AWS SDK); the core in src/ stays platform-free apart from this file.
 */
import { createHash } from 'node:crypto';
import {
  type AttributeValue,
  BatchWriteItemCommand,
  type BatchWriteItemCommandOutput,
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  type DynamoDBClientConfig,
  PutItemCommand,
  QueryCommand,
  type QueryCommandOutput,
  type WriteRequest,
} from '@aws-sdk/client-dynamodb';
import { ConfigError, StoreError } from '../errors.ts';
import { feedKeys } from '../revocation/feed.ts';
import { encodeKeyPart, subjectStorageKey, tenantStorageKey } from '../stores/keys.ts';
import { FileStore, type PermissionData } from '../stores/permission-data.ts';
import {
  canonicalJson,
  freezeRole,
  freezeRoleList,
  freezeUser,
  maxRecordEntriesOption,
  recordTooLarge,
  trustedRoles,
  trustedUser,
} from '../stores/records.ts';
import type {
  Conditions,
  Grant,
  PermissionStore,
  RoleAssignment,
  RoleRecord,
  SubjectKey,
  UserRecord,
} from '../types.ts';

/** Partition key attribute (String). */
export const PARTITION_KEY = 'pk';
/** Sort key attribute (String). */
export const SORT_KEY = 'sk';
/** DynamoDB TTL attribute (Number, Unix seconds) on expiring grants and role assignments. */
export const TTL_ATTRIBUTE = 'ttl';

/** TCP connect timeout per attempt, ms. */
export const CONNECTION_TIMEOUT_MS = 200;
/** Socket inactivity timeout per attempt, ms (the SDK's `requestTimeout`). */
export const REQUEST_TIMEOUT_MS = 400;
/** SDK attempts per store call (first try plus retries), standard retry mode. */
export const MAX_ATTEMPTS = 3;
/** Hard bound on one store call including every retry and backoff, ms. */
export const STORE_DEADLINE_MS = 1000;

/** Prefix of a subject's partition key. */
export const USER_PREFIX = 'USER#';
/** Prefix of a tenant's role-definitions partition key. */
export const ROLES_PREFIX = 'ROLES#';
/** Sort key of the user marker item. */
export const MARKER_SK = 'USER';
/** Sort key prefix of a role assignment (user partition) or a role definition (roles partition). */
export const ROLE_SK = 'ROLE#';
/** Sort key prefix of a direct grant. */
export const GRANT_SK = 'GRANT#';
/** Sort key prefix of a direct deny. */
export const DENY_SK = 'DENY#';

/** The partition of one subject's items. */
export function userPartitionKey(key: SubjectKey): string {
  return `${USER_PREFIX}${subjectStorageKey(key)}`;
}

/** The partition of one tenant's role definitions. */
export function rolesPartitionKey(tenant: string | undefined): string {
  return `${ROLES_PREFIX}${tenantStorageKey(tenant)}`;
}

export interface DynamoDBClientOptions {
  /** AWS region; default `AWS_REGION` from the environment, else us-east-1. */
  readonly region?: string;
  /** Endpoint override, e.g. a local DynamoDB-compatible server (`http://127.0.0.1:8000`). */
  readonly endpoint?: string;
  /** Static credentials (local servers); default: the SDK's provider chain (the Lambda role). */
  readonly credentials?: DynamoDBClientConfig['credentials'];
  /** TCP connect timeout, ms (default {@link CONNECTION_TIMEOUT_MS}). */
  readonly connectionTimeoutMs?: number;
  /** Socket inactivity timeout, ms (default {@link REQUEST_TIMEOUT_MS}). */
  readonly requestTimeoutMs?: number;
  /** Attempts per call including the first (default {@link MAX_ATTEMPTS}, 1 to 5). */
  readonly maxAttempts?: number;
}

/**
 * A DynamoDB client with bounded timeouts and retries. Create it once per container (module
 * scope in the handler) so connections are reused across invocations.
 */
export function createDynamoDBClient(options: DynamoDBClientOptions = {}): DynamoDBClient {
  const maxAttempts = options.maxAttempts ?? MAX_ATTEMPTS;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1 || maxAttempts > 5) {
    throw new ConfigError('dynamodb.maxAttempts', 'expected an integer from 1 to 5');
  }
  const config: DynamoDBClientConfig = {
    region: options.region ?? process.env.AWS_REGION ?? 'us-east-1',
    maxAttempts,
    retryMode: 'standard',
    requestHandler: {
      connectionTimeout: options.connectionTimeoutMs ?? CONNECTION_TIMEOUT_MS,
      requestTimeout: options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS,
      // Without this the SDK only warns when requestTimeout passes and keeps waiting.
      throwOnRequestTimeout: true,
    },
  };
  if (options.endpoint !== undefined) config.endpoint = options.endpoint;
  if (options.credentials !== undefined) config.credentials = options.credentials;
  return new DynamoDBClient(config);
}

/** The table's key schema, as CreateTable (and template.yaml) declare it. */
export const TABLE_DEFINITION = {
  AttributeDefinitions: [
    { AttributeName: PARTITION_KEY, AttributeType: 'S' },
    { AttributeName: SORT_KEY, AttributeType: 'S' },
  ],
  KeySchema: [
    { AttributeName: PARTITION_KEY, KeyType: 'HASH' },
    { AttributeName: SORT_KEY, KeyType: 'RANGE' },
  ],
  BillingMode: 'PAY_PER_REQUEST',
} as const;

/**
 * Creates the table (tests, `npm run invoke`, benchmarks; production uses template.yaml) and waits
 * until it is ACTIVE: until then DynamoDB and dynalite answer "not found" to reads and writes.
 */
export async function createPermissionTable(client: DynamoDBClient, tableName: string) {
  await client.send(
    new CreateTableCommand({
      TableName: tableName,
      AttributeDefinitions: [...TABLE_DEFINITION.AttributeDefinitions],
      KeySchema: [...TABLE_DEFINITION.KeySchema],
      BillingMode: TABLE_DEFINITION.BillingMode,
    }),
  );
  const deadline = Date.now() + 60_000;
  for (let delay = 5; ; delay = Math.min(delay * 2, 1000)) {
    const { Table } = await client.send(new DescribeTableCommand({ TableName: tableName }));
    if (Table?.TableStatus === 'ACTIVE') return;
    if (Date.now() > deadline) {
      throw new StoreError('store_unavailable', `dynamodb: table ${tableName} is not ACTIVE`);
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

// ---------------------------------------------------------------------------------------------
// Attribute values (a small marshaller: @aws-sdk/util-dynamodb is not a dependency)

type Json = string | number | boolean | null | readonly Json[] | { readonly [k: string]: Json };

function toAttribute(value: unknown): AttributeValue {
  if (typeof value === 'string') return { S: value };
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError('cannot store a non-finite number');
    return { N: String(value) };
  }
  if (typeof value === 'boolean') return { BOOL: value };
  if (value === null) return { NULL: true };
  if (Array.isArray(value)) return { L: value.map(toAttribute) };
  if (typeof value === 'object') {
    const map: Record<string, AttributeValue> = {};
    for (const [k, v] of Object.entries(value)) {
      if (v !== undefined) map[k] = toAttribute(v);
    }
    return { M: map };
  }
  throw new TypeError(`cannot store a ${typeof value}`);
}

function fromAttribute(attr: AttributeValue, field: string, depth = 0): Json {
  if (depth > 8) invalid(field, 'nested too deeply');
  if (attr.S !== undefined) return attr.S;
  if (attr.N !== undefined) {
    const n = Number(attr.N);
    if (!Number.isFinite(n)) invalid(field, 'expected a finite number');
    return n;
  }
  if (attr.BOOL !== undefined) return attr.BOOL;
  if (attr.NULL !== undefined) return null;
  if (attr.L !== undefined)
    return attr.L.map((a, i) => fromAttribute(a, `${field}[${i}]`, depth + 1));
  if (attr.M !== undefined) {
    // Null prototype: a stored key named __proto__ stays an ordinary key.
    const out: Record<string, Json> = Object.create(null);
    for (const [k, v] of Object.entries(attr.M))
      out[k] = fromAttribute(v, `${field}.${k}`, depth + 1);
    return out;
  }
  return invalid(field, 'unsupported attribute type');
}

/** Throws `store_invalid_record` naming the item field (`<pk>[<i>].<attribute>`). */
export function invalid(field: string, expected: string): never {
  throw new StoreError('store_invalid_record', `dynamodb item ${field}: ${expected}`);
}

/** One DynamoDB item, as the low-level client reads and writes it. */
export type Item = Record<string, AttributeValue>;

function str(item: Item, name: string, field: string): string {
  const value = item[name]?.S;
  if (typeof value !== 'string' || value.length === 0)
    invalid(`${field}.${name}`, 'expected a string');
  return value;
}

function optionalSeconds(item: Item, name: string, field: string): number | undefined {
  const attr = item[name];
  if (attr === undefined) return undefined;
  const n = attr.N === undefined ? Number.NaN : Number(attr.N);
  if (!Number.isSafeInteger(n) || n < 0) invalid(`${field}.${name}`, 'expected Unix seconds');
  return n;
}

function optionalConditions(item: Item, name: string, field: string): Conditions | undefined {
  const attr = item[name];
  if (attr === undefined) return undefined;
  if (attr.M === undefined) invalid(`${field}.${name}`, 'expected a map of conditions');
  return fromAttribute(attr, `${field}.${name}`) as unknown as Conditions;
}

const GRANT_VALUE_KEYS: ReadonlySet<string> = new Set(['permission', 'expiresAt', 'when']);

/**
 * A grant or deny of a role definition. An unknown key (a misspelt `expires`, `condition`
 * instead of `when`) must never be dropped, which would make the grant permanent or
 * unconditional: on an allow it is kept on the grant, so the core skips that allow with a
 * warning; on a deny it makes the record invalid (a deny that might not apply as written).
 */
function grantFromValue(value: Json, field: string, effect: 'allow' | 'deny'): Grant {
  if (typeof value === 'string') return { permission: value };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    invalid(field, 'expected a permission or { permission, expiresAt?, when? }');
  }
  const record = value as { readonly [k: string]: Json };
  if (typeof record.permission !== 'string') invalid(`${field}.permission`, 'expected a string');
  const grant: { permission: string; expiresAt?: number; when?: Conditions } = {
    permission: record.permission,
  };
  if (record.expiresAt !== undefined) {
    if (typeof record.expiresAt !== 'number' || !Number.isSafeInteger(record.expiresAt)) {
      invalid(`${field}.expiresAt`, 'expected Unix seconds');
    }
    grant.expiresAt = record.expiresAt;
  }
  if (record.when !== undefined) {
    if (typeof record.when !== 'object' || record.when === null || Array.isArray(record.when)) {
      invalid(`${field}.when`, 'expected a map of conditions');
    }
    grant.when = record.when as unknown as Conditions;
  }
  for (const key of Object.keys(record)) {
    if (GRANT_VALUE_KEYS.has(key)) continue;
    if (effect === 'deny') invalid(`${field}.${key}`, 'unknown key on a deny');
    keepUnknown(grant, key, record[key] ?? null);
  }
  return grant;
}

/** Keeps an unknown key on a grant so the core sees it (and skips the grant with a warning). */
function keepUnknown(grant: object, key: string, value: Json): void {
  Object.defineProperty(grant, key, { value, enumerable: true });
}

function grantToValue(grant: Grant): Json {
  if (grant.expiresAt === undefined && grant.when === undefined) return grant.permission;
  const out: Record<string, Json> = { permission: grant.permission };
  if (grant.expiresAt !== undefined) out.expiresAt = grant.expiresAt;
  if (grant.when !== undefined) out.when = grant.when as unknown as Json;
  return out;
}

function grantList(item: Item, name: 'grants' | 'denies', field: string): Grant[] {
  const attr = item[name];
  if (attr === undefined) return [];
  if (attr.L === undefined) invalid(`${field}.${name}`, 'expected a list');
  const effect = name === 'grants' ? 'allow' : 'deny';
  return attr.L.map((a, i) =>
    grantFromValue(fromAttribute(a, `${field}.${name}[${i}]`), `${field}.${name}[${i}]`, effect),
  );
}

// ---------------------------------------------------------------------------------------------
// Items ⇄ records

/** Stable JSON (sorted keys) so equal conditions give equal sort keys. */
export const canonical = canonicalJson;

/**
 * The sort key of a grant or deny. The same permission with other conditions is another item
 * (a deny with one condition must never overwrite a deny with another); the same permission and
 * conditions with a new expiry replaces the item, which is what re-granting means.
 */
export function grantSortKey(effect: 'allow' | 'deny', grant: Grant): string {
  const base = `${effect === 'allow' ? GRANT_SK : DENY_SK}${encodeKeyPart(grant.permission)}`;
  if (grant.when === undefined) return base;
  const digest = createHash('sha256').update(canonical(grant.when)).digest('hex').slice(0, 32);
  return `${base}#${digest}`;
}

/** The item for one direct grant or deny of a subject. */
export function grantItem(key: SubjectKey, effect: 'allow' | 'deny', grant: Grant): Item {
  const item: Item = {
    [PARTITION_KEY]: { S: userPartitionKey(key) },
    [SORT_KEY]: { S: grantSortKey(effect, grant) },
    permission: { S: grant.permission },
  };
  if (grant.expiresAt !== undefined) {
    item.expiresAt = { N: String(grant.expiresAt) };
    item[TTL_ATTRIBUTE] = { N: String(grant.expiresAt) };
  }
  if (grant.when !== undefined) item.when = toAttribute(grant.when);
  return item;
}

/** The item for one role assignment of a subject. */
export function assignmentItem(key: SubjectKey, assignment: RoleAssignment): Item {
  const item: Item = {
    [PARTITION_KEY]: { S: userPartitionKey(key) },
    [SORT_KEY]: { S: `${ROLE_SK}${encodeKeyPart(assignment.role)}` },
    role: { S: assignment.role },
  };
  if (assignment.expiresAt !== undefined) {
    item.expiresAt = { N: String(assignment.expiresAt) };
    item[TTL_ATTRIBUTE] = { N: String(assignment.expiresAt) };
  }
  return item;
}

/** The marker that makes a subject known even with no grants ("known, no permissions"). */
export function userMarkerItem(key: SubjectKey): Item {
  const item: Item = {
    [PARTITION_KEY]: { S: userPartitionKey(key) },
    [SORT_KEY]: { S: MARKER_SK },
    subject: { S: key.subject },
  };
  if (key.tenant !== undefined) item.tenant = { S: key.tenant };
  return item;
}

/** Every item of one user record: the marker, its assignments, grants and denies. */
export function userItems(record: UserRecord): Item[] {
  const key: SubjectKey =
    record.tenant === undefined
      ? { subject: record.subject }
      : { subject: record.subject, tenant: record.tenant };
  return [
    userMarkerItem(key),
    ...record.roles.map((a) => assignmentItem(key, a)),
    ...record.grants.map((g) => grantItem(key, 'allow', g)),
    ...record.denies.map((g) => grantItem(key, 'deny', g)),
  ];
}

/** The item for one tenant's role definition. */
export function roleItem(tenant: string | undefined, role: RoleRecord): Item {
  return {
    [PARTITION_KEY]: { S: rolesPartitionKey(tenant) },
    [SORT_KEY]: { S: `${ROLE_SK}${encodeKeyPart(role.name)}` },
    name: { S: role.name },
    grants: { L: role.grants.map((g) => toAttribute(grantToValue(g))) },
    denies: { L: (role.denies ?? []).map((g) => toAttribute(grantToValue(g))) },
    inherits: { L: role.inherits.map((r) => ({ S: r })) },
  };
}

/** Attributes a user item may carry besides its keys; anything else is an unknown attribute. */
const ASSIGNMENT_ATTRIBUTES: ReadonlySet<string> = new Set([
  PARTITION_KEY,
  SORT_KEY,
  'role',
  'expiresAt',
  TTL_ATTRIBUTE,
]);
const GRANT_ATTRIBUTES: ReadonlySet<string> = new Set([
  PARTITION_KEY,
  SORT_KEY,
  'permission',
  'expiresAt',
  TTL_ATTRIBUTE,
  'when',
]);

/**
 * When an item stops applying: `expiresAt`, or the `ttl` DynamoDB deletes it by, whichever is
 * earlier. An item with only `ttl` (written by another tool) expires at its `ttl`, not never:
 * TTL deletion lags by up to days.
 */
function itemExpiry(item: Item, field: string): number | undefined {
  const expiresAt = optionalSeconds(item, 'expiresAt', field);
  const ttl = optionalSeconds(item, TTL_ATTRIBUTE, field);
  if (ttl === undefined) return expiresAt;
  return expiresAt === undefined ? ttl : Math.min(expiresAt, ttl);
}

function unknownAttribute(item: Item, known: ReadonlySet<string>): string | undefined {
  for (const key of Object.keys(item)) if (!known.has(key)) return key;
  return undefined;
}

/**
 * The record of one subject's partition items (null without items). Items expired at
 * `nowSeconds` are dropped, as the edges need; `nowSeconds: null` keeps them, as management needs
 * (an expired grant must stay visible and revocable until TTL deletion removes it).
 */
export function toUserRecord(
  key: SubjectKey,
  items: readonly Item[],
  nowSeconds: number | null,
): UserRecord | null {
  if (items.length === 0) return null;
  const roles: RoleAssignment[] = [];
  const grants: Grant[] = [];
  const denies: Grant[] = [];
  const live = (expiresAt: number | undefined) =>
    nowSeconds === null || expiresAt === undefined || expiresAt > nowSeconds;
  items.forEach((item, i) => {
    const field = `${userPartitionKey(key)}[${i}]`;
    const sk = str(item, SORT_KEY, field);
    if (sk === MARKER_SK) return;
    if (sk.startsWith(ROLE_SK)) {
      // A misspelt `expires` dropped here would make the assignment permanent: refuse.
      const extra = unknownAttribute(item, ASSIGNMENT_ATTRIBUTES);
      if (extra !== undefined)
        invalid(`${field}.${extra}`, 'unknown attribute on a role assignment');
      const expiresAt = itemExpiry(item, field);
      if (!live(expiresAt)) return;
      const role = str(item, 'role', field);
      roles.push(expiresAt === undefined ? { role } : { role, expiresAt });
      return;
    }
    const effect = sk.startsWith(GRANT_SK) ? 'allow' : sk.startsWith(DENY_SK) ? 'deny' : undefined;
    // An item type this version does not know could be a deny: refuse rather than ignore it.
    if (effect === undefined) invalid(`${field}.${SORT_KEY}`, 'unknown item type');
    const extra = unknownAttribute(item, GRANT_ATTRIBUTES);
    // A deny that might not apply as written (a `condition` meant as `when`) refuses the record.
    if (extra !== undefined && effect === 'deny') {
      invalid(`${field}.${extra}`, 'unknown attribute on a deny');
    }
    const expiresAt = itemExpiry(item, field);
    // TTL deletion lags (up to days); an expired grant or deny no longer applies either way.
    if (!live(expiresAt)) return;
    const grant: { permission: string; expiresAt?: number; when?: Conditions } = {
      permission: str(item, 'permission', field),
    };
    if (expiresAt !== undefined) grant.expiresAt = expiresAt;
    const when = optionalConditions(item, 'when', field);
    if (when !== undefined) grant.when = when;
    // An allow with an unknown attribute keeps it, so the core skips it with a warning rather
    // than apply it without the limit it was probably meant to have.
    for (const name of Object.keys(item)) {
      if (GRANT_ATTRIBUTES.has(name)) continue;
      keepUnknown(grant, name, fromAttribute(item[name]!, `${field}.${name}`));
    }
    (effect === 'allow' ? grants : denies).push(grant);
  });
  const base = { subject: key.subject, roles, grants, denies };
  return freezeUser(key.tenant === undefined ? base : { ...base, tenant: key.tenant }, {
    kind: 'dynamodb',
    key: userPartitionKey(key),
  });
}

const ROLE_ATTRIBUTES: ReadonlySet<string> = new Set([
  PARTITION_KEY,
  SORT_KEY,
  'name',
  'grants',
  'denies',
  'inherits',
]);

/** The role definition of one `ROLES#` item; `field` names the item in errors. */
export function toRoleRecord(item: Item, field: string): RoleRecord {
  // A misspelt `denies` dropped here would lose the role's denies: refuse the record.
  const extra = unknownAttribute(item, ROLE_ATTRIBUTES);
  if (extra !== undefined) invalid(`${field}.${extra}`, 'unknown attribute on a role definition');
  const name = str(item, 'name', field);
  const inheritsAttr = item.inherits;
  let inherits: string[] = [];
  if (inheritsAttr !== undefined) {
    if (inheritsAttr.L === undefined) invalid(`${field}.inherits`, 'expected a list');
    inherits = inheritsAttr.L.map((a, i) => {
      if (typeof a.S !== 'string') invalid(`${field}.inherits[${i}]`, 'expected a role name');
      return a.S;
    });
  }
  return freezeRole({
    name,
    grants: grantList(item, 'grants', field),
    denies: grantList(item, 'denies', field),
    inherits,
  });
}

// ---------------------------------------------------------------------------------------------
// The store

export interface DynamoDBStoreOptions {
  /** The SDK client; create it once per container with {@link createDynamoDBClient}. */
  readonly client: DynamoDBClient;
  readonly tableName: string;
  /** Strongly consistent reads (twice the read cost); default false: eventually consistent. */
  readonly consistentRead?: boolean;
  /**
   * Strongly consistent reads for these records only, by feed key (`user/…`, `roles/…`): the
   * revocation follower's recently changed ones, so a reload after an eviction sees the change.
   */
  readonly consistentFor?: (feedKey: string) => boolean;
  /** Hard bound on one store call including retries, ms (default {@link STORE_DEADLINE_MS}). */
  readonly deadlineMs?: number;
  /** Pages of one Query before the record counts as invalid (default 4; a page is up to 1 MB). */
  readonly maxPages?: number;
  /**
   * Entries one partition may hold (a subject's role assignments + grants + denies; a tenant's
   * roles with their grants, denies and parents; each condition list item and claim name
   * counts too); default 10000, 1 to 1000000. The Query stops reading once a partition has more
   * items than that (`store_record_too_large`); condition items are counted once converted.
   * Bytes read are bounded by `maxPages` (a page is at most 1 MB).
   */
  readonly maxRecordEntries?: number;
  /** Clock in milliseconds; default Date.now. */
  readonly now?: () => number;
}

const NO_ROLES: readonly RoleRecord[] = freezeRoleList([]);

/** Items of a role definition that count against the bound: the role, grants, denies, parents. */
function roleItemEntries(item: Item): number {
  return (
    1 +
    (item.grants?.L?.length ?? 0) +
    (item.denies?.L?.length ?? 0) +
    (item.inherits?.L?.length ?? 0)
  );
}

/** Refuses a name DynamoDB would refuse, naming TABLE_NAME (the variable that carries it). */
export function checkTableName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !/^[A-Za-z0-9_.-]{3,255}$/.test(name)) {
    throw new ConfigError(
      'TABLE_NAME',
      'expected a DynamoDB table name (3-255 of A-Z a-z 0-9 _ . -)',
    );
  }
}

export class DynamoDBStore implements PermissionStore {
  readonly kind = 'dynamodb';
  readonly cacheable = true;
  readonly #client: DynamoDBClient;
  readonly #table: string;
  readonly #consistent: boolean;
  readonly #consistentFor: ((feedKey: string) => boolean) | undefined;
  readonly #deadlineMs: number;
  readonly #maxPages: number;
  readonly #maxEntries: number;
  readonly #now: () => number;

  constructor(options: DynamoDBStoreOptions) {
    checkTableName(options.tableName);
    const deadline = options.deadlineMs ?? STORE_DEADLINE_MS;
    if (!Number.isFinite(deadline) || deadline < 10 || deadline > 30_000) {
      throw new ConfigError('dynamodb.deadlineMs', 'expected milliseconds from 10 to 30000');
    }
    this.#client = options.client;
    this.#table = options.tableName;
    this.#consistent = options.consistentRead ?? false;
    this.#consistentFor = options.consistentFor;
    this.#deadlineMs = deadline;
    this.#maxPages = options.maxPages ?? 4;
    this.#maxEntries = maxRecordEntriesOption(
      options.maxRecordEntries,
      'dynamodb.maxRecordEntries',
    );
    this.#now = options.now ?? Date.now;
  }

  async getUser(key: SubjectKey): Promise<UserRecord | null> {
    // One item per entry, plus the user marker.
    const pk = userPartitionKey(key);
    const items = await this.#queryAll(
      pk,
      this.#maxEntries + 1,
      this.#consistentFor?.(feedKeys.user(key)) === true,
    );
    // Items are counted while reading; their condition list items only once converted (a page
    // holds at most 1 MB, so the conversion is bounded): refused here, naming the partition.
    return trustedUser(
      toUserRecord(key, items, this.#now() / 1000),
      { kind: this.kind, key: pk },
      this.#maxEntries,
    );
  }

  async getRoles(tenant: string | undefined): Promise<readonly RoleRecord[]> {
    const pk = rolesPartitionKey(tenant);
    const items = await this.#queryAll(
      pk,
      this.#maxEntries,
      this.#consistentFor?.(feedKeys.roles(tenant)) === true,
    );
    if (items.length === 0) return NO_ROLES;
    // Counted on the list lengths before any item is converted.
    let entries = 0;
    for (const item of items) entries += roleItemEntries(item);
    if (entries > this.#maxEntries) {
      throw recordTooLarge({ kind: this.kind, key: pk }, this.#maxEntries);
    }
    // As getUser: condition list items are counted once the items are converted.
    return trustedRoles(
      freezeRoleList(
        items.map((item, i) => toRoleRecord(item, `${pk}[${i}]`)),
        { kind: this.kind, key: pk },
      ),
      { kind: this.kind, key: pk },
      this.#maxEntries,
    );
  }

  /** Every item of partition `pk`; refused as too large past `maxItems` items. */
  async #queryAll(pk: string, maxItems: number, consistent: boolean): Promise<Item[]> {
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    // The SDK's own timeouts bound each attempt; this bounds the whole call, backoff included.
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        controller.abort();
        reject(
          new StoreError('store_unavailable', `dynamodb: no answer within ${this.#deadlineMs} ms`),
        );
      }, this.#deadlineMs);
    });
    try {
      return await Promise.race([
        this.#pages(pk, maxItems, consistent || this.#consistent, controller.signal),
        deadline,
      ]);
    } catch (error) {
      if (error instanceof StoreError) throw error;
      // The SDK's message may name the table or the endpoint; keep it as the cause only.
      throw new StoreError('store_unavailable', 'dynamodb: query failed', { cause: error });
    } finally {
      clearTimeout(timer);
    }
  }

  async #pages(
    pk: string,
    maxItems: number,
    consistent: boolean,
    signal: AbortSignal,
  ): Promise<Item[]> {
    const items: Item[] = [];
    let start: Item | undefined;
    for (let page = 0; page < this.#maxPages; page++) {
      const output: QueryCommandOutput = await this.#client.send(
        new QueryCommand({
          TableName: this.#table,
          KeyConditionExpression: '#pk = :pk',
          ExpressionAttributeNames: { '#pk': PARTITION_KEY },
          ExpressionAttributeValues: { ':pk': { S: pk } },
          ConsistentRead: consistent,
          // One item past the bound is enough to know: DynamoDB reads (and bills) no more.
          Limit: maxItems + 1 - items.length,
          ...(start !== undefined && { ExclusiveStartKey: start }),
        }),
        { abortSignal: signal },
      );
      for (const item of output.Items ?? []) items.push(item);
      if (items.length > maxItems) {
        throw recordTooLarge({ kind: this.kind, key: pk }, this.#maxEntries);
      }
      start = output.LastEvaluatedKey;
      if (start === undefined) return items;
    }
    // Reading part of a record could drop a deny: refuse it instead.
    return invalid(pk, `more than ${this.#maxPages} pages of items`);
  }
}

// ---------------------------------------------------------------------------------------------
// Writing (seed data, tests, the CLI)

/** Writes one item (a grant, an assignment, a role). */
export async function putItem(
  client: DynamoDBClient,
  tableName: string,
  item: Item,
): Promise<void> {
  await client.send(new PutItemCommand({ TableName: tableName, Item: item }));
}

/** Writes items in batches of 25, retrying unprocessed items a bounded number of times. */
export async function writeItems(
  client: DynamoDBClient,
  tableName: string,
  items: readonly Item[],
): Promise<void> {
  await writeRequests(
    client,
    tableName,
    items.map((Item) => ({ PutRequest: { Item } })),
  );
}

/**
 * Sends puts and deletes with BatchWriteItem, 25 per batch in the given order, retrying
 * unprocessed items with exponential backoff (at most 8 attempts per batch). A batch may apply
 * in any order, and the items of one batch must have distinct keys.
 */
export async function writeRequests(
  client: DynamoDBClient,
  tableName: string,
  all: readonly WriteRequest[],
): Promise<void> {
  for (let i = 0; i < all.length; i += 25) {
    let requests: WriteRequest[] = all.slice(i, i + 25);
    for (let attempt = 0; requests.length > 0; attempt++) {
      if (attempt >= 8)
        throw new StoreError('store_unavailable', 'dynamodb: batch write throttled');
      if (attempt > 0) await new Promise((r) => setTimeout(r, 50 * 2 ** attempt));
      const output: BatchWriteItemCommandOutput = await client.send(
        new BatchWriteItemCommand({ RequestItems: { [tableName]: requests } }),
      );
      requests = output.UnprocessedItems?.[tableName] ?? [];
    }
  }
}

/** Every item for a permission file's contents (the demo/permissions.json shape). */
export function permissionDataItems(data: PermissionData): Item[] {
  // FileStore validates the data (hand-built or parsed) and resolves it into records.
  const store = new FileStore(data);
  return [
    ...store.listUsers().flatMap(userItems),
    ...store.listRoles().map(({ tenant, role }) => roleItem(tenant, role)),
  ];
}

/**
 * Seeds the table with permission data, parsed with parsePermissionData. Used by
 * `npm run invoke`, the tests and the benchmark; items are written with PutItem semantics, so
 * seeding twice is harmless.
 */
export async function writePermissionData(
  client: DynamoDBClient,
  tableName: string,
  data: PermissionData,
): Promise<number> {
  const items = permissionDataItems(data);
  await writeItems(client, tableName, items);
  return items.length;
}
