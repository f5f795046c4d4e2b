/**
 * The DynamoDB AdminStore against dynalite over real HTTP with the real AWS SDK: the AdminStore
 * contract, then what is specific to the table design (the edge's reader sees what management
 * wrote, only the difference is written, audit day partitions and TTL, failures).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type AttributeValue,
  BatchWriteItemCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
} from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { AuditRecord } from '../../src/admin/types.ts';
import {
  AUDIT_RECORD_ATTRIBUTE,
  auditPartitionKey,
  DynamoDBAdminStore,
  MAX_AUDIT_DAYS,
} from '../../src/aws/dynamodb-admin-store.ts';
import {
  createDynamoDBClient,
  createPermissionTable,
  DynamoDBStore,
  rolesPartitionKey,
  userPartitionKey,
} from '../../src/aws/dynamodb-store.ts';
import { ConfigError, StoreError } from '../../src/errors.ts';
import type { RoleRecord, UserRecord } from '../../src/types.ts';
import { type AdminStoreHarness, describeAdminStore } from '../support/admin-store-contract.ts';
import { type LocalDynamo, startDynalite } from './support.ts';

let tables = 0;
async function freshTable(client: DynamoDBClient): Promise<string> {
  const name = `gatehouse-admin-${process.pid}-${++tables}`;
  await createPermissionTable(client, name);
  return name;
}

let contractDynamo: Promise<LocalDynamo> | undefined;
const harness: AdminStoreHarness = {
  async create() {
    contractDynamo ??= startDynalite();
    const client = (await contractDynamo).client();
    return new DynamoDBAdminStore({ client, tableName: await freshTable(client) });
  },
  async close() {
    await (await contractDynamo)?.close();
  },
};
describeAdminStore('dynamodb (dynalite)', harness);

let local: LocalDynamo;
beforeAll(async () => {
  local = await startDynalite();
});
afterAll(async () => local.close());

async function setup(now?: () => number) {
  const client = local.client();
  const tableName = await freshTable(client);
  return {
    client,
    tableName,
    admin: new DynamoDBAdminStore({ client, tableName, ...(now && { now }) }),
    reader: new DynamoDBStore({ client, tableName, consistentRead: true }),
  };
}

async function rejection(promise: Promise<unknown>): Promise<StoreError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(StoreError);
  return error as StoreError;
}

/** Counts the puts and deletes the store sends, through the real client. */
function countWrites(client: DynamoDBClient) {
  const counts = { puts: 0, deletes: 0, batches: 0 };
  const send = client.send.bind(client);
  vi.spyOn(client, 'send').mockImplementation(((command: unknown, ...rest: unknown[]) => {
    if (command instanceof BatchWriteItemCommand) {
      counts.batches++;
      for (const requests of Object.values(command.input.RequestItems ?? {})) {
        for (const r of requests) {
          if (r.PutRequest) counts.puts++;
          if (r.DeleteRequest) counts.deletes++;
        }
      }
    }
    return (send as (...args: unknown[]) => Promise<unknown>)(command, ...rest);
  }) as typeof client.send);
  return counts;
}

async function partition(client: DynamoDBClient, tableName: string, pk: string) {
  const output = await client.send(
    new QueryCommand({
      TableName: tableName,
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': { S: pk } },
      ConsistentRead: true,
    }),
  );
  return output.Items ?? [];
}

const sorted = (u: UserRecord | null) =>
  u && {
    ...u,
    roles: [...u.roles].sort((a, b) => (a.role < b.role ? -1 : 1)),
    grants: [...u.grants].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1)),
    denies: [...u.denies].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1)),
  };

const future = 4_102_444_800;

const dora: UserRecord = {
  subject: 'dora',
  tenant: 'acme',
  roles: [{ role: 'reader' }, { role: 'editor', expiresAt: future }],
  grants: [
    { permission: 'read:drafts', expiresAt: future },
    { permission: 'read:stats', when: { ip: ['10.0.0.0/8'], time: { days: ['mon', 'tue'] } } },
  ],
  denies: [{ permission: 'delete:posts:*' }, { permission: 'ops:*', when: { ip: ['0.0.0.0/0'] } }],
};

describe('DynamoDBAdminStore and the edge reader', () => {
  it('writes what the authorizer (DynamoDBStore) reads: tenant, conditions, expiry, denies', async () => {
    const { admin, reader } = await setup();
    await admin.writeUser({ subject: 'dora', tenant: 'acme' }, null, dora);
    expect(sorted(await reader.getUser({ subject: 'dora', tenant: 'acme' }))).toEqual(sorted(dora));
    expect(await reader.getUser({ subject: 'dora' })).toBeNull();
    const roles: RoleRecord[] = [
      {
        name: 'lead',
        grants: [{ permission: 'approve:*', when: { ip: ['10.0.0.0/8'] } }],
        denies: [{ permission: 'ops:shutdown' }],
        inherits: ['reader'],
      },
    ];
    await admin.writeRoles('acme', [], roles);
    expect(await reader.getRoles('acme')).toEqual(roles);
    expect(await reader.getRoles(undefined)).toEqual([]);
  });

  it('shows expired entries to management but not to the authorizer', async () => {
    const { admin, reader } = await setup();
    const record: UserRecord = {
      subject: 'old',
      roles: [{ role: 'reader', expiresAt: 1_000 }],
      grants: [{ permission: 'read:posts', expiresAt: 1_000 }, { permission: 'read:live' }],
      denies: [],
    };
    await admin.writeUser({ subject: 'old' }, null, record);
    expect(sorted(await admin.readUser({ subject: 'old' }))).toEqual(sorted(record));
    expect(await reader.getUser({ subject: 'old' })).toEqual({
      subject: 'old',
      roles: [],
      grants: [{ permission: 'read:live' }],
      denies: [],
    });
  });

  it('revokes an expired grant by deleting its item', async () => {
    const { admin, client, tableName } = await setup();
    const record: UserRecord = {
      subject: 'old',
      roles: [],
      grants: [{ permission: 'read:posts', expiresAt: 1_000 }],
      denies: [],
    };
    await admin.writeUser({ subject: 'old' }, null, record);
    const before = await admin.readUser({ subject: 'old' });
    await admin.writeUser({ subject: 'old' }, before, { ...record, grants: [] });
    const items = await partition(client, tableName, userPartitionKey({ subject: 'old' }));
    expect(items.map((i) => i.sk?.S)).toEqual(['USER']);
  });
});

describe('DynamoDBAdminStore writes only the difference', () => {
  it('puts one item per entry plus the marker for a new record', async () => {
    const { admin, client } = await setup();
    const counts = countWrites(client);
    await admin.writeUser({ subject: 'dora', tenant: 'acme' }, null, dora);
    expect(counts).toMatchObject({ puts: 7, deletes: 0 });
  });

  it('puts added and changed entries, deletes removed ones, leaves the rest alone', async () => {
    const { admin, client, tableName } = await setup();
    await admin.writeUser({ subject: 'dora', tenant: 'acme' }, null, dora);
    const before = await admin.readUser({ subject: 'dora', tenant: 'acme' });
    const counts = countWrites(client);
    const after: UserRecord = {
      ...dora,
      roles: [{ role: 'reader' }, { role: 'editor', expiresAt: future - 1 }], // changed expiry
      grants: [dora.grants[1]!, { permission: 'read:new' }], // read:drafts removed, read:new added
    };
    await admin.writeUser({ subject: 'dora', tenant: 'acme' }, before, after);
    expect(counts).toMatchObject({ puts: 2, deletes: 1 });
    const items = await partition(client, tableName, userPartitionKey(dora));
    expect(items).toHaveLength(7);
    expect(sorted(await admin.readUser(dora))).toEqual(sorted(after));
  });

  it('sends nothing when nothing changed', async () => {
    const { admin, client } = await setup();
    await admin.writeUser(dora, null, dora);
    const before = await admin.readUser(dora);
    const counts = countWrites(client);
    await admin.writeUser(dora, before, before);
    expect(counts).toEqual({ puts: 0, deletes: 0, batches: 0 });
  });

  it('writes new denies before it removes grants, and removed denies last', async () => {
    const { admin, client } = await setup();
    const start: UserRecord = {
      subject: 'eve',
      roles: [],
      grants: [{ permission: 'read:a' }],
      denies: [{ permission: 'write:a' }],
    };
    await admin.writeUser(start, null, start);
    const before = await admin.readUser(start);
    const order: string[] = [];
    const send = client.send.bind(client);
    vi.spyOn(client, 'send').mockImplementation(((command: unknown, ...rest: unknown[]) => {
      if (command instanceof BatchWriteItemCommand) {
        for (const requests of Object.values(command.input.RequestItems ?? {})) {
          for (const r of requests) {
            const sk = (r.PutRequest?.Item ?? r.DeleteRequest?.Key)?.sk?.S;
            order.push(`${r.PutRequest ? 'put' : 'delete'} ${sk}`);
          }
        }
      }
      return (send as (...args: unknown[]) => Promise<unknown>)(command, ...rest);
    }) as typeof client.send);
    await admin.writeUser(start, before, {
      ...start,
      grants: [{ permission: 'read:b' }],
      denies: [{ permission: 'read:c' }],
    });
    expect(order).toEqual([
      'put DENY#read%3Ac',
      'delete GRANT#read%3Aa',
      'put GRANT#read%3Ab',
      'delete DENY#write%3Aa',
    ]);
  });

  it('deletes every item of the partition on null, even items another tool wrote', async () => {
    const { admin, client, tableName } = await setup();
    await admin.writeUser(dora, null, dora);
    const pk = userPartitionKey(dora);
    await client.send(
      new PutItemCommand({
        TableName: tableName,
        Item: { pk: { S: pk }, sk: { S: 'GRANT#read:raw' }, permission: { S: 'read:raw' } },
      }),
    );
    await admin.writeUser(dora, dora, null);
    expect(await partition(client, tableName, pk)).toEqual([]);
    expect(await admin.readUser(dora)).toBeNull();
  });

  it('removes a stray item whose sort key another tool spelt differently', async () => {
    const { admin, client, tableName, reader } = await setup();
    const pk = userPartitionKey({ subject: 'fred' });
    await client.send(
      new PutItemCommand({
        TableName: tableName,
        Item: { pk: { S: pk }, sk: { S: 'GRANT#read:raw' }, permission: { S: 'read:raw' } },
      }),
    );
    const before = await admin.readUser({ subject: 'fred' });
    expect(before?.grants).toEqual([{ permission: 'read:raw' }]);
    await admin.writeUser({ subject: 'fred' }, before, { ...before!, grants: [] });
    expect(await reader.getUser({ subject: 'fred' })).toEqual({
      subject: 'fred',
      roles: [],
      grants: [],
      denies: [],
    });
  });

  it('keeps an attribute it does not know on an unchanged item', async () => {
    const { admin, client, tableName } = await setup();
    const pk = userPartitionKey({ subject: 'gus' });
    const item: Record<string, AttributeValue> = {
      pk: { S: pk },
      sk: { S: 'GRANT#read%3Ax' },
      permission: { S: 'read:x' },
      expires: { N: '1' },
    };
    await client.send(new PutItemCommand({ TableName: tableName, Item: item }));
    const before = await admin.readUser({ subject: 'gus' });
    await admin.writeUser({ subject: 'gus' }, before, {
      ...before!,
      grants: [...before!.grants, { permission: 'read:y' }],
    });
    const stored = await client.send(
      new GetItemCommand({ TableName: tableName, Key: { pk: item.pk!, sk: item.sk! } }),
    );
    expect(stored.Item?.expires).toEqual({ N: '1' });
  });

  it('refuses to rewrite a grant whose unknown key the item would lose', async () => {
    const { admin, client, tableName } = await setup();
    const pk = userPartitionKey({ subject: 'gus' });
    await client.send(
      new PutItemCommand({
        TableName: tableName,
        // A non-canonical sort key forces a rewrite; `expires` would be dropped by it.
        Item: {
          pk: { S: pk },
          sk: { S: 'GRANT#read:x' },
          permission: { S: 'read:x' },
          expires: { N: '1' },
        },
      }),
    );
    const before = await admin.readUser({ subject: 'gus' });
    const error = await rejection(
      admin.writeUser({ subject: 'gus' }, before, {
        ...before!,
        grants: [...before!.grants, { permission: 'read:y' }],
      }),
    );
    expect(error.code).toBe('store_invalid_record');
    expect(error.message).toContain(pk);
    expect((await partition(client, tableName, pk)).map((i) => i.sk?.S)).toEqual(['GRANT#read:x']);
  });

  it('puts changed roles and deletes removed ones', async () => {
    const { admin, client, tableName } = await setup();
    const a: RoleRecord = { name: 'a', grants: [{ permission: 'x:a' }], denies: [], inherits: [] };
    const b: RoleRecord = { name: 'b', grants: [{ permission: 'x:b' }], denies: [], inherits: [] };
    const c: RoleRecord = { name: 'c', grants: [{ permission: 'x:c' }], denies: [], inherits: [] };
    await admin.writeRoles('acme', [], [a, b, c]);
    const before = await admin.readRoles('acme');
    const counts = countWrites(client);
    const b2: RoleRecord = { ...b, inherits: ['a'] };
    await admin.writeRoles('acme', before, [a, b2]);
    expect(counts).toMatchObject({ puts: 1, deletes: 1 });
    const items = await partition(client, tableName, rolesPartitionKey('acme'));
    expect(items.map((i) => i.name?.S).sort()).toEqual(['a', 'b']);
  });
});

describe('DynamoDBAdminStore export', () => {
  it('skips audit items, decodes a partition without a marker, reports progress', async () => {
    const { admin, client, tableName } = await setup();
    await admin.writeUser(dora, null, dora);
    await admin.appendAudit(auditAt(Date.UTC(2026, 10, 20, 12)), 86_400);
    await client.send(
      new PutItemCommand({
        TableName: tableName,
        Item: {
          pk: { S: userPartitionKey({ subject: 'a/s:b', tenant: 'ü' }) },
          sk: { S: 'GRANT#read%3Ax' },
          permission: { S: 'read:x' },
        },
      }),
    );
    await admin.writeRoles(undefined, [], [{ name: 'r', grants: [], denies: [], inherits: [] }]);
    const progress: [number, number | undefined][] = [];
    const snapshot = await admin.exportAll((done, total) => progress.push([done, total]));
    expect(snapshot.users.map((u) => [u.tenant, u.subject]).sort()).toEqual([
      ['acme', 'dora'],
      ['ü', 'a/s:b'],
    ]);
    expect(snapshot.roles).toEqual([
      { tenant: undefined, role: { name: 'r', grants: [], denies: [], inherits: [] } },
    ]);
    expect(progress.at(-1)).toEqual([3, 3]);
  });

  it('refuses a marker whose subject does not match its partition', async () => {
    const { client, tableName, admin } = await setup();
    await client.send(
      new PutItemCommand({
        TableName: tableName,
        Item: {
          pk: { S: userPartitionKey({ subject: 'a' }) },
          sk: { S: 'USER' },
          subject: { S: 'b' },
        },
      }),
    );
    const error = await rejection(admin.exportAll());
    expect(error.code).toBe('store_invalid_record');
    expect(error.message).toContain('USER#-/s:a');
  });

  it('refuses a partition type it does not know rather than export part of the store', async () => {
    const { client, tableName, admin } = await setup();
    await client.send(
      new PutItemCommand({ TableName: tableName, Item: { pk: { S: 'GROUP#x' }, sk: { S: 'x' } } }),
    );
    expect((await rejection(admin.exportAll())).message).toContain('GROUP#x');
  });
});

function auditAt(time: number, overrides: Partial<AuditRecord> = {}): AuditRecord {
  const iso = new Date(time).toISOString();
  return {
    id: `${iso}~${String(time % 1_000_000).padStart(8, '0')}`,
    time: iso,
    actor: 'cli:test',
    via: 'cli',
    operation: 'grant',
    target: { subject: 'alice' },
    before: null,
    after: { roles: [], grants: [{ permission: 'read:x' }], denies: [] },
    ...overrides,
  };
}

describe('DynamoDBAdminStore audit records', () => {
  const now = Date.UTC(2026, 10, 21, 12);

  it('stores a record as JSON text in its UTC day partition, with a TTL attribute', async () => {
    const { admin, client, tableName } = await setup(() => now);
    const record = auditAt(Date.UTC(2026, 10, 20, 23, 59, 59));
    await admin.appendAudit(record, 90 * 86_400);
    const output = await client.send(
      new GetItemCommand({
        TableName: tableName,
        Key: { pk: { S: 'AUDIT#2026-11-20' }, sk: { S: record.id } },
      }),
    );
    expect(output.Item?.ttl).toEqual({ N: String(now / 1000 + 90 * 86_400) });
    expect(JSON.parse(output.Item?.[AUDIT_RECORD_ATTRIBUTE]?.S ?? '')).toEqual(record);
    expect(auditPartitionKey(Date.UTC(2026, 10, 21))).toBe('AUDIT#2026-11-21');
  });

  it('lists across a day boundary, newest first, and honours since and limit', async () => {
    const { admin } = await setup(() => now);
    const late = auditAt(Date.UTC(2026, 10, 20, 23, 59, 59));
    const early = auditAt(Date.UTC(2026, 10, 21, 0, 0, 1));
    const older = auditAt(Date.UTC(2026, 10, 19, 8));
    for (const r of [late, older, early]) await admin.appendAudit(r, 90 * 86_400);
    const since = Date.UTC(2026, 10, 19);
    expect((await admin.listAudit({ since })).map((r) => r.id)).toEqual([
      early.id,
      late.id,
      older.id,
    ]);
    expect(await admin.listAudit({ since, limit: 2 })).toEqual([early, late]);
    expect(await admin.listAudit({ since: Date.UTC(2026, 10, 20, 23, 59, 59) })).toEqual([
      early,
      late,
    ]);
    expect(await admin.listAudit({ since: Date.UTC(2026, 10, 21) })).toEqual([early]);
    expect(await admin.listAudit({ since, subject: 'bob' })).toEqual([]);
  });

  it('does not return records past their ttl before TTL deletion removes them', async () => {
    let clock = now;
    const { admin } = await setup(() => clock);
    await admin.appendAudit(auditAt(now - 1000), 60);
    expect(await admin.listAudit({ since: now - 86_400_000 })).toHaveLength(1);
    clock = now + 61_000;
    expect(await admin.listAudit({ since: now - 86_400_000 })).toEqual([]);
  });

  it(`reads at most ${MAX_AUDIT_DAYS} days back (plus today and tomorrow)`, async () => {
    const { admin, client } = await setup(() => now);
    let queries = 0;
    vi.spyOn(client, 'send').mockImplementation((async (command: unknown) => {
      if (command instanceof QueryCommand) queries++;
      return { Items: [] };
    }) as typeof client.send);
    expect(await admin.listAudit({ since: 0 })).toEqual([]);
    expect(queries).toBe(MAX_AUDIT_DAYS + 2);
  });

  it('keeps who, when and what of a record too large for one item', async () => {
    const { admin } = await setup(() => now);
    const big = {
      roles: [],
      grants: Array.from({ length: 12_000 }, (_, i) => ({ permission: `read:item-${i}-xxxxxxxx` })),
      denies: [],
    };
    const record = auditAt(now - 1000, { before: big, after: null });
    await admin.appendAudit(record, 86_400);
    const [listed] = await admin.listAudit({ since: now - 86_400_000 });
    expect(listed).toMatchObject({ id: record.id, actor: 'cli:test', target: record.target });
    expect(listed?.before).toMatchObject({ omitted: expect.any(String) });
    expect(listed?.after).toBeNull();
  });

  it('refuses an audit item that is not a record, naming its partition', async () => {
    const { admin, client, tableName } = await setup(() => now);
    await client.send(
      new PutItemCommand({
        TableName: tableName,
        Item: { pk: { S: 'AUDIT#2026-11-21' }, sk: { S: '2026-11-21T01:00:00.000Z~x' } },
      }),
    );
    const error = await rejection(admin.listAudit({ since: Date.UTC(2026, 10, 21) }));
    expect(error.code).toBe('store_invalid_record');
    expect(error.message).toContain('AUDIT#2026-11-21');
  });
});

describe('DynamoDBAdminStore failures', () => {
  it('reports a stopped server as store_unavailable without SDK details', async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const { port } = server.address() as AddressInfo;
    await new Promise((r) => server.close(r));
    const client = createDynamoDBClient({
      endpoint: `http://127.0.0.1:${port}`,
      region: 'eu-west-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
      maxAttempts: 1,
    });
    const admin = new DynamoDBAdminStore({ client, tableName: 'permissions' });
    try {
      for (const call of [
        () => admin.readUser({ subject: 'a' }),
        () =>
          admin.writeUser({ subject: 'a' }, null, {
            subject: 'a',
            roles: [],
            grants: [],
            denies: [],
          }),
        () => admin.writeUser({ subject: 'a' }, null, null),
        () => admin.readRoles(undefined),
        () => admin.writeRoles(undefined, [], [{ name: 'r', grants: [], inherits: [] }]),
        () => admin.exportAll(),
        () => admin.appendAudit(auditAt(Date.now()), 60),
        () => admin.listAudit({ since: Date.now() - 1000 }),
      ]) {
        const error = await rejection(call());
        expect(error.code).toBe('store_unavailable');
        expect(error.message).not.toContain(String(port));
        expect(error.cause).toBeDefined();
      }
    } finally {
      client.destroy();
    }
  });

  it('reports a missing table as store_unavailable', async () => {
    const admin = new DynamoDBAdminStore({ client: local.client(), tableName: 'no-such-table' });
    expect((await rejection(admin.readUser({ subject: 'a' }))).code).toBe('store_unavailable');
  });

  it('refuses a bad table name at construction', () => {
    expect(() => new DynamoDBAdminStore({ client: local.client(), tableName: 'a b' })).toThrow(
      ConfigError,
    );
  });
});
