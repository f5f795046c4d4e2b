/**
 * The DynamoDB store against dynalite over real HTTP with the real AWS SDK, and against loopback
 * servers that hang, throttle or fail, to show that every failure is a StoreError (so the
 * authorizer fails) and never a record.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type AttributeValue, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createDynamoDBClient,
  createPermissionTable,
  DynamoDBStore,
  grantItem,
  grantSortKey,
  MAX_ATTEMPTS,
  putItem,
  roleItem,
  userPartitionKey,
  writePermissionData,
} from '../../src/aws/dynamodb-store.ts';
import { StoreError } from '../../src/errors.ts';
import { compilePermissions } from '../../src/permissions/permission-set.ts';
import { compileRoles } from '../../src/permissions/roles.ts';
import { compilePolicy, Gatehouse } from '../../src/policy/index.ts';
import { CachedStore } from '../../src/stores/cache.ts';
import { parsePermissionData } from '../../src/stores/permission-data.ts';
import type { UserRecord } from '../../src/types.ts';
import { demoToken } from '../support/cases.ts';
import {
  DEMO_PERMISSIONS,
  DEMO_POLICY,
  demoTable,
  type LocalDynamo,
  SECRET,
  startDynalite,
} from './support.ts';

let local: LocalDynamo;
beforeAll(async () => {
  local = await startDynalite();
});
afterAll(async () => local.close());

async function storeFor(data = DEMO_PERMISSIONS, now?: () => number) {
  const client = local.client();
  const tableName = await demoTable(client);
  if (data !== DEMO_PERMISSIONS) await writePermissionData(client, tableName, data);
  return {
    client,
    tableName,
    store: new DynamoDBStore({ client, tableName, ...(now && { now }) }),
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

describe('DynamoDBStore against dynalite', () => {
  it('reads a user record written from the demo seed data in one query', async () => {
    const { store } = await storeFor();
    const alice = await store.getUser({ subject: 'alice' });
    expect(alice?.roles).toEqual([{ role: 'reader' }]);
    expect(alice?.grants.map((g) => g.permission).sort()).toEqual(['read:drafts', 'read:stats']);
    expect(alice?.grants.find((g) => g.permission === 'read:stats')?.when).toEqual({
      ip: ['127.0.0.0/8', '::1/128'],
    });
    const bob = await store.getUser({ subject: 'bob' });
    expect(bob?.denies).toEqual([{ permission: 'delete:posts:*' }]);
  });

  it('answers null for an unknown subject', async () => {
    const { store } = await storeFor();
    expect(await store.getUser({ subject: 'mallory' })).toBeNull();
  });

  it('keeps tenants apart and encodes subjects so they cannot reach another record', async () => {
    const data = parsePermissionData(
      JSON.stringify({
        users: { 'alice:admin': { grants: ['read:secrets'] } },
        tenants: {
          acme: {
            users: { alice: { grants: ['read:acme'] } },
            roles: { ops: { grants: ['ops:*'] } },
          },
        },
      }),
    );
    const { store } = await storeFor(data);
    expect((await store.getUser({ subject: 'alice', tenant: 'acme' }))?.grants).toEqual([
      { permission: 'read:acme' },
    ]);
    expect(
      (await store.getUser({ subject: 'alice' }))?.grants.map((g) => g.permission),
    ).not.toContain('read:acme');
    expect(await store.getUser({ subject: 'alice', tenant: 'other' })).toBeNull();
    expect(await store.getUser({ subject: 'alice:admin', tenant: 'acme' })).toBeNull();
    expect(userPartitionKey({ subject: 'a/s:b' })).toBe('USER#-/s:a%2Fs%3Ab');
    expect((await store.getRoles('acme')).map((r) => r.name)).toEqual(['ops']);
    expect(await store.getRoles(undefined)).toEqual([]);
  });

  it('drops grants and assignments whose expiry passed, even before TTL deletion', async () => {
    const data = parsePermissionData(
      JSON.stringify({
        users: {
          dora: {
            grants: [
              { permission: 'read:old', expires: 1_000 },
              { permission: 'read:new', expires: 4_000_000_000 },
            ],
          },
        },
        user_roles: { dora: [{ role: 'reader', expires: 1_000 }] },
      }),
    );
    const { store } = await storeFor(data);
    const dora = await store.getUser({ subject: 'dora' });
    expect(dora?.grants).toEqual([{ permission: 'read:new', expiresAt: 4_000_000_000 }]);
    expect(dora?.roles).toEqual([]);
  });

  it('writes the TTL attribute on expiring grants only', () => {
    expect(
      grantItem({ subject: 'a' }, 'allow', { permission: 'read:x', expiresAt: 42 }).ttl,
    ).toEqual({
      N: '42',
    });
    expect(grantItem({ subject: 'a' }, 'allow', { permission: 'read:x' }).ttl).toBeUndefined();
  });

  it('keeps two denies of one permission with different conditions as two items', () => {
    const a = grantSortKey('deny', { permission: 'x:y', when: { ip: ['10.0.0.0/8'] } });
    const b = grantSortKey('deny', { permission: 'x:y', when: { ip: ['192.168.0.0/16'] } });
    expect(a).not.toBe(b);
    expect(grantSortKey('allow', { permission: 'x:y' })).toBe('GRANT#x%3Ay');
  });

  it('reads role definitions with grants, denies and parents', async () => {
    const { client, tableName, store } = await storeFor();
    await putItem(
      client,
      tableName,
      roleItem(undefined, {
        name: 'auditor',
        grants: [{ permission: 'read:*', when: { time: { days: ['mon'] } } }],
        denies: [{ permission: 'read:secrets' }],
        inherits: ['reader'],
      }),
    );
    expect(await store.getRoles(undefined)).toEqual([
      {
        name: 'auditor',
        grants: [{ permission: 'read:*', when: { time: { days: ['mon'] } } }],
        denies: [{ permission: 'read:secrets' }],
        inherits: ['reader'],
      },
    ]);
  });

  it('refuses a malformed item as store_invalid_record', async () => {
    const { client, tableName, store } = await storeFor();
    await client.send(
      new PutItemCommand({
        TableName: tableName,
        Item: {
          pk: { S: userPartitionKey({ subject: 'eve' }) },
          sk: { S: 'GRANT#x' },
          permission: { N: '7' },
        },
      }),
    );
    expect((await rejection(store.getUser({ subject: 'eve' }))).code).toBe('store_invalid_record');
  });

  it('refuses an item type it does not know rather than ignoring a possible deny', async () => {
    const { client, tableName, store } = await storeFor();
    await client.send(
      new PutItemCommand({
        TableName: tableName,
        Item: { pk: { S: userPartitionKey({ subject: 'eve' }) }, sk: { S: 'BLOCK#x' } },
      }),
    );
    expect((await rejection(store.getUser({ subject: 'eve' }))).code).toBe('store_invalid_record');
  });

  describe('unknown attributes are never dropped', () => {
    const eve = userPartitionKey({ subject: 'eve' });
    async function withItems(...items: Record<string, AttributeValue>[]) {
      const { client, tableName, store } = await storeFor();
      for (const Item of items)
        await client.send(new PutItemCommand({ TableName: tableName, Item }));
      return store;
    }
    const check = (record: UserRecord | null, permission: string) =>
      compilePermissions({ user: record, roles: compileRoles([]) }).check(permission, {
        now: Date.now(),
        claims: {},
        ip: '203.0.113.9',
      });

    it.each<[string, AttributeValue]>([
      ['condition', { M: { ip: { L: [{ S: '10.0.0.0/8' }] } } }],
      ['expires', { N: '1' }],
    ])('skips (with a warning) an allow item carrying %s', async (name, value) => {
      const store = await withItems({
        pk: { S: eve },
        sk: { S: 'GRANT#read%3Astats' },
        permission: { S: 'read:stats' },
        [name]: value,
      });
      const record = await store.getUser({ subject: 'eve' });
      expect(record?.grants[0]).toHaveProperty(name);
      expect(check(record, 'read:stats').effect).not.toBe('allow');
      const set = compilePermissions({ user: record, roles: compileRoles([]) });
      expect(set.warnings.join(' ')).toContain(name);
    });

    it('refuses a record whose deny item carries an unknown attribute', async () => {
      const store = await withItems({
        pk: { S: eve },
        sk: { S: 'DENY#ops%3Ashutdown' },
        permission: { S: 'ops:shutdown' },
        condition: { M: { ip: { L: [{ S: '10.0.0.0/8' }] } } },
      });
      expect((await rejection(store.getUser({ subject: 'eve' }))).code).toBe(
        'store_invalid_record',
      );
    });

    it('refuses a record whose role assignment item carries an unknown attribute', async () => {
      const store = await withItems({
        pk: { S: eve },
        sk: { S: 'ROLE#admin' },
        role: { S: 'admin' },
        expires: { N: '1' },
      });
      expect((await rejection(store.getUser({ subject: 'eve' }))).code).toBe(
        'store_invalid_record',
      );
    });

    it('treats ttl as the expiry when expiresAt is missing (or later)', async () => {
      const now = Math.floor(Date.now() / 1000);
      const store = await withItems(
        {
          pk: { S: eve },
          sk: { S: 'ROLE#admin' },
          role: { S: 'admin' },
          ttl: { N: String(now - 10) },
        },
        {
          pk: { S: eve },
          sk: { S: 'ROLE#editor' },
          role: { S: 'editor' },
          ttl: { N: String(now + 60) },
        },
        {
          pk: { S: eve },
          sk: { S: 'GRANT#read%3Astats' },
          permission: { S: 'read:stats' },
          expiresAt: { N: String(now + 3600) },
          ttl: { N: String(now + 30) },
        },
      );
      const record = await store.getUser({ subject: 'eve' });
      expect(record?.roles).toEqual([{ role: 'editor', expiresAt: now + 60 }]);
      expect(record?.grants).toEqual([{ permission: 'read:stats', expiresAt: now + 30 }]);
    });

    it('refuses a role definition with an unknown attribute or a deny with an unknown key', async () => {
      for (const extra of [
        { denys: { L: [{ S: 'ops:*' }] } },
        { denies: { L: [{ M: { permission: { S: 'ops:*' }, condition: { M: {} } } }] } },
      ]) {
        const { client, tableName, store } = await storeFor();
        await client.send(
          new PutItemCommand({
            TableName: tableName,
            Item: { ...roleItem(undefined, { name: 'ops', grants: [], inherits: [] }), ...extra },
          }),
        );
        expect((await rejection(store.getRoles(undefined))).code).toBe('store_invalid_record');
      }
    });

    it('keeps an unknown key on a role grant so the core skips it', async () => {
      const { client, tableName, store } = await storeFor();
      await client.send(
        new PutItemCommand({
          TableName: tableName,
          Item: {
            ...roleItem(undefined, { name: 'ops', grants: [], inherits: [] }),
            grants: { L: [{ M: { permission: { S: 'ops:*' }, expires: { N: '1' } } }] },
          },
        }),
      );
      const [ops] = await store.getRoles(undefined);
      expect(ops?.grants[0]).toHaveProperty('expires', 1);
    });
  });

  it('reports a missing table as store_unavailable', async () => {
    const store = new DynamoDBStore({ client: local.client(), tableName: 'no-such-table' });
    expect((await rejection(store.getUser({ subject: 'alice' }))).code).toBe('store_unavailable');
  });

  it('refuses a bad table name at construction', () => {
    expect(() => new DynamoDBStore({ client: local.client(), tableName: 'a b' })).toThrow(
      /TABLE_NAME/,
    );
  });
});

describe('DynamoDBStore record size bound', () => {
  /** The store over a client that counts the items DynamoDB handed back. */
  async function bounded(data: string, maxRecordEntries: number) {
    const client = local.client();
    const tableName = await demoTable(client);
    await writePermissionData(client, tableName, parsePermissionData(data));
    const read = { items: 0 };
    const counting = {
      send: async (...args: Parameters<typeof client.send>) => {
        const output = (await client.send(...args)) as unknown as { Items?: unknown[] };
        read.items += output.Items?.length ?? 0;
        return output;
      },
    } as unknown as typeof client;
    const store = new DynamoDBStore({ client: counting, tableName, maxRecordEntries });
    return { store, read };
  }

  const grants = (n: number) => Array.from({ length: n }, (_, i) => `read:g${i}`);

  it('stops reading a partition one item past the bound and refuses it, naming the key', async () => {
    const { store, read } = await bounded(
      JSON.stringify({ users: { big: { grants: grants(60) } } }),
      10,
    );
    const logs: Record<string, unknown>[] = [];
    const cached = new CachedStore(store, { log: (e) => logs.push({ ...e }) });

    const error = await rejection(cached.getUser({ subject: 'big' }));

    expect(error).toMatchObject({ code: 'store_record_too_large', key: 'USER#-/s:big' });
    // The marker, ten entries and the one that proves the partition too large.
    expect(read.items).toBeLessThanOrEqual(12);
    expect(logs).toEqual([expect.objectContaining({ store: 'dynamodb', key: 'USER#-/s:big' })]);
  });

  it('reads a record of exactly the bound (the marker item does not count)', async () => {
    const { store } = await bounded(
      JSON.stringify({
        users: { full: { grants: grants(8) } },
        user_roles: { full: ['reader'] },
        roles: { reader: {} },
      }),
      9,
    );

    const record = await store.getUser({ subject: 'full' });

    expect(record?.grants).toHaveLength(8);
    expect(record?.roles).toHaveLength(1);
  });

  it("refuses a tenant's role set whose roles, grants, denies and parents pass the bound", async () => {
    const roles = { a: { grants: grants(4) }, b: { grants: grants(4), inherits: ['a'] } };
    const fits = await bounded(JSON.stringify({ roles }), 11);
    expect(await fits.store.getRoles(undefined)).toHaveLength(2);

    const over = await bounded(JSON.stringify({ roles }), 10);
    const error = await rejection(over.store.getRoles(undefined));

    expect(error).toMatchObject({ code: 'store_record_too_large', key: 'ROLES#-' });
  });
});

describe('DynamoDBStore: role expansion and condition lists are bounded (issue 9)', () => {
  const grants = (n: number) => Array.from({ length: n }, (_, i) => `read:g${i}`);
  /** r0 ← … ← r{n-1}; r0 grants read:posts: 3n - 1 entries. */
  const chain = (n: number) =>
    Object.fromEntries(
      Array.from({ length: n }, (_, i) => [
        `r${i}`,
        { grants: [i === 0 ? 'read:posts' : `read:r${i}`], inherits: i === 0 ? [] : [`r${i - 1}`] },
      ]),
    );
  const cidrs = (n: number) => Array.from({ length: n }, (_, i) => `10.0.${i}.0/24`);

  let tables = 0;
  async function gatehouseOver(data: unknown, maxRecordEntries: number) {
    const client = local.client();
    // Not demoTable: the demo roles would count in the role set.
    const tableName = `gatehouse-issue9-${process.pid}-${++tables}`;
    await createPermissionTable(client, tableName);
    await writePermissionData(client, tableName, parsePermissionData(JSON.stringify(data)));
    const logs: Record<string, unknown>[] = [];
    const gatehouse = new Gatehouse({
      policy: compilePolicy(DEMO_POLICY, { env: { GATEHOUSE_DEV_SECRET: SECRET } }),
      store: new DynamoDBStore({ client, tableName, maxRecordEntries }),
      maxRecordEntries,
      storeLog: (entry) => logs.push({ ...entry }),
    });
    const decide = async (subject: string) =>
      gatehouse.decide({
        method: 'GET',
        path: '/posts/1',
        authorization: `Bearer ${await demoToken(
          { name: subject, subject, method: 'GET', path: '/', expect: {} } as never,
          SECRET,
        )}`,
      });
    return { decide, logs };
  }

  it('answers 503 for a subject whose roles expand past the bound, with one line naming the key', async () => {
    // The role set holds 899 entries, deep's partition 102: each fits, the expansion does not.
    const { decide, logs } = await gatehouseOver(
      {
        roles: chain(300),
        users: { deep: { grants: grants(101) } },
        user_roles: { deep: ['r299'], shallow: ['r299'] },
      },
      1000,
    );

    const shallow = await decide('shallow');
    const deep = await decide('deep');

    expect(shallow).toMatchObject({ allow: true, status: 200 });
    expect(shallow.matched?.[0]?.via).toHaveLength(300);
    expect(deep).toMatchObject({ allow: false, status: 503, reason: 'store_unavailable' });
    expect(logs).toEqual([
      {
        level: 'error',
        msg: 'permission store record refused',
        code: 'store_record_too_large',
        store: 'dynamodb',
        key: '-/s:deep',
        maxRecordEntries: 1000,
      },
    ]);
  });

  it('counts the condition list items of grant items and role items against the bound', async () => {
    const { decide, logs } = await gatehouseOver(
      {
        roles: { office: { grants: [{ permission: 'read:posts', when: { ip: cidrs(9) } }] } },
        users: {
          near: { grants: [{ permission: 'read:posts', when: { ip: cidrs(9) } }] },
          far: { grants: [{ permission: 'read:posts', when: { ip: cidrs(10) } }] },
        },
      },
      10,
    );

    // near: 1 + 9; the role set: 1 + 1 + 9 = 11.
    expect(await decide('near')).toMatchObject({ status: 503 });
    expect(logs.map((l) => [l.code, l.key])).toEqual([['store_record_too_large', 'ROLES#-']]);
    const roomy = await gatehouseOver(
      { users: { near: { grants: [{ permission: 'read:posts', when: { ip: cidrs(9) } }] } } },
      10,
    );
    expect(await roomy.decide('near')).toMatchObject({ status: 403 });
    const far = await gatehouseOver(
      { users: { far: { grants: [{ permission: 'read:posts', when: { ip: cidrs(10) } }] } } },
      10,
    );
    expect(await far.decide('far')).toMatchObject({ status: 503 });
    expect(far.logs).toEqual([
      expect.objectContaining({ code: 'store_record_too_large', key: 'USER#-/s:far' }),
    ]);
    expect(JSON.stringify(far.logs)).not.toContain('10.0');
  });
});

describe('DynamoDBStore when DynamoDB misbehaves', () => {
  const servers: Server[] = [];
  afterAll(async () => {
    for (const s of servers) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
  });

  async function loopback(
    handler: (respond: (status: number, body: unknown) => void) => void,
  ): Promise<{ endpoint: string; requests: () => number }> {
    let count = 0;
    const server = createServer((req, res) => {
      count++;
      req.resume();
      handler((status, body) => {
        res.writeHead(status, { 'content-type': 'application/x-amz-json-1.0' });
        res.end(JSON.stringify(body));
      });
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const { port } = server.address() as AddressInfo;
    return { endpoint: `http://127.0.0.1:${port}`, requests: () => count };
  }

  function clientFor(endpoint: string) {
    // The production timeouts and retry budget, pointed at the loopback server.
    return createDynamoDBClient({
      endpoint,
      region: 'eu-west-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
  }

  it('fails within the deadline when the server accepts and never answers', async () => {
    const { endpoint } = await loopback(() => {});
    const store = new DynamoDBStore({ client: clientFor(endpoint), tableName: 'permissions' });
    const started = Date.now();
    const error = await rejection(store.getUser({ subject: 'alice' }));
    expect(error.code).toBe('store_unavailable');
    expect(Date.now() - started).toBeLessThan(1500);
  });

  it('fails after the retry budget when every answer is throttling', async () => {
    const { endpoint, requests } = await loopback((respond) =>
      respond(400, {
        __type: 'com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException',
        message: 'slow down',
      }),
    );
    const store = new DynamoDBStore({
      client: clientFor(endpoint),
      tableName: 'permissions',
      deadlineMs: 5000,
    });
    expect((await rejection(store.getUser({ subject: 'alice' }))).code).toBe('store_unavailable');
    expect(requests()).toBeLessThanOrEqual(MAX_ATTEMPTS);
  });

  it('fails when every answer is a 500', async () => {
    const { endpoint, requests } = await loopback((respond) =>
      respond(500, {
        __type: 'com.amazonaws.dynamodb.v20120810#InternalServerError',
        message: 'x',
      }),
    );
    const store = new DynamoDBStore({
      client: clientFor(endpoint),
      tableName: 'permissions',
      deadlineMs: 5000,
    });
    expect((await rejection(store.getRoles(undefined))).code).toBe('store_unavailable');
    expect(requests()).toBe(MAX_ATTEMPTS);
  });

  it('creates a table that the store can read (the helper the invoke script uses)', async () => {
    const client = local.client();
    await createPermissionTable(client, 'helper-table');
    const store = new DynamoDBStore({ client, tableName: 'helper-table' });
    expect(await store.getUser({ subject: 'x' })).toBeNull();
  });
});
