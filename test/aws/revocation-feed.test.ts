/**
 * The revocation feed on DynamoDB (issue 14), on dynalite over HTTP: the feed items themselves,
 * and the Lambda authorizer following them with its default 30-second permission cache, so a
 * deny well before 30 s came from the feed.
 */
import {
  DeleteItemCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
} from '@aws-sdk/client-dynamodb';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import * as jose from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FeedRecordingStore } from '../../src/admin/feed-store.ts';
import { PermissionAdmin } from '../../src/admin/operations.ts';
import { createAdminLambdaHandler } from '../../src/aws/admin-lambda.ts';
import type { IamResponse, SimpleResponse } from '../../src/aws/authorizer.ts';
import { DynamoDBAdminStore } from '../../src/aws/dynamodb-admin-store.ts';
import { PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE } from '../../src/aws/dynamodb-store.ts';
import { createLambdaHandler } from '../../src/aws/lambda.ts';
import { DynamoDBFeed, FEED_PARTITION } from '../../src/aws/revocation-feed.ts';
import { feedKeys, RevocationFollower, TrackedFeed } from '../../src/revocation/index.ts';
import { subjectStorageKey } from '../../src/stores/keys.ts';
import { DEMO_AUDIENCE, DEMO_ISSUER } from '../support/cases.ts';
import { cliHarness } from '../support/cli.ts';
import {
  DEMO_POLICY,
  demoTable,
  httpEvent,
  type LocalDynamo,
  restRequestEvent,
  SECRET,
  startDynalite,
  tokenEvent,
} from './support.ts';

let local: LocalDynamo;
let client: DynamoDBClient;
beforeAll(async () => {
  local = await startDynalite();
  client = local.client();
});
afterAll(async () => local.close());

const STRICT_POLICY = (() => {
  const doc = structuredClone(DEMO_POLICY) as { routes: Record<string, unknown>[] };
  doc.routes.unshift({ method: 'GET', path: '/payouts', require: ['read:drafts'], strict: true });
  return doc;
})();

function token(subject: string, claims: { iat?: number; jti?: string } = {}): Promise<string> {
  const iat = claims.iat ?? Math.floor(Date.now() / 1000);
  return new jose.SignJWT(claims.jti === undefined ? {} : { jti: claims.jti })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer(DEMO_ISSUER)
    .setAudience(DEMO_AUDIENCE)
    .setSubject(subject)
    .setIssuedAt(iat)
    .setExpirationTime(iat + 600)
    .sign(new TextEncoder().encode(SECRET));
}

async function setup(
  policy: unknown = DEMO_POLICY,
  lambdaClient: DynamoDBClient = client,
  env: Record<string, string> = {},
) {
  const table = await demoTable(client);
  const feed = new TrackedFeed(new DynamoDBFeed({ client, tableName: table }));
  const admin = new PermissionAdmin({
    store: new FeedRecordingStore(new DynamoDBAdminStore({ client, tableName: table }), feed),
    policyRoles: [],
    actor: 'test',
    via: 'cli',
    feed,
  });
  const handler = createLambdaHandler({
    policy,
    env: { TABLE_NAME: table, GATEHOUSE_DEV_SECRET: SECRET, ...env },
    client: lambdaClient,
    log: () => {},
  });
  const allowed = async (jwt: string, path = '/drafts') =>
    ((await handler(httpEvent('GET', path, jwt))) as SimpleResponse).isAuthorized;
  return { table, feed, admin, handler, allowed };
}

/** A client that fails every read of the feed partition, and only those, while `down`. */
function feedFailingClient(state = { down: true }): DynamoDBClient {
  const failing = local.client({ maxAttempts: 1 });
  failing.middlewareStack.add(
    (next) => async (args) => {
      const input = (
        args as { input?: { ExpressionAttributeValues?: Record<string, { S?: string }> } }
      ).input;
      if (state.down && input?.ExpressionAttributeValues?.[':pk']?.S === FEED_PARTITION) {
        throw new Error('feed partition unreachable');
      }
      return next(args);
    },
    { step: 'initialize' },
  );
  return failing;
}

async function untilDenied(allowed: () => Promise<boolean>, giveUpMs = 10_000): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < giveUpMs) {
    if (!(await allowed())) return Date.now() - started;
    await new Promise((r) => setTimeout(r, 20));
  }
  return Number.POSITIVE_INFINITY;
}

describe('the feed items', () => {
  it('hands concurrent writers distinct, dense epochs', async () => {
    const table = await demoTable(client);
    const feed = new DynamoDBFeed({ client, tableName: table });

    const epochs = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        feed.append({ keys: [feedKeys.user({ subject: `u${i}` })] }),
      ),
    );

    expect([...epochs].sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    const answer = await feed.read(3);
    expect(answer).toMatchObject({ head: 8, reset: false });
    expect(answer.changes.map((c) => c.epoch)).toEqual([4, 5, 6, 7, 8]);
  });

  it('gives a new follower every live not-before and token revocation', async () => {
    const table = await demoTable(client);
    const feed = new DynamoDBFeed({ client, tableName: table });
    const key = subjectStorageKey({ subject: 'alice' });
    const now = Math.floor(Date.now() / 1000);
    const exp = now + 600;
    await feed.append({ notBefore: { key, at: now - 100 } });
    await feed.append({ notBefore: { key, at: now - 200 } });
    await feed.append({ token: { jti: 'j-1', expiresAt: exp } });

    const answer = await feed.read(-1);

    expect(answer).toMatchObject({ head: 3, reset: true });
    expect(answer.changes).toContainEqual(
      expect.objectContaining({ notBefore: { key, at: now - 100 } }),
    );
    expect(answer.changes).toContainEqual(
      expect.objectContaining({ token: { jti: 'j-1', expiresAt: exp } }),
    );
  });

  it('answers a reset when the changes a follower needs are gone', async () => {
    const table = await demoTable(client);
    const feed = new DynamoDBFeed({ client, tableName: table });
    for (let i = 0; i < 4; i++) await feed.append({ keys: [feedKeys.user({ subject: 'x' })] });
    // Expired by DynamoDB TTL.
    await client.send(
      new DeleteItemCommand({
        TableName: table,
        Key: {
          [PARTITION_KEY]: { S: FEED_PARTITION },
          [SORT_KEY]: { S: `C#${String(2).padStart(16, '0')}` },
        },
      }),
    );

    expect((await feed.read(1)).reset).toBe(true);
    expect((await feed.read(2)).reset).toBe(false);
  });

  it('resets a follower whose epoch is ahead of the head (a restored or rewound table)', async () => {
    const table = await demoTable(client);
    const feed = new DynamoDBFeed({ client, tableName: table });
    for (let i = 0; i < 5; i++) await feed.append({ keys: [feedKeys.user({ subject: 'x' })] });
    const follower = new RevocationFollower(feed);
    await follower.sync();
    expect(follower.epoch).toBe(5);
    // The table goes back to when the head was 2 (point-in-time restore).
    for (const epoch of [3, 4, 5]) {
      await client.send(
        new DeleteItemCommand({
          TableName: table,
          Key: {
            [PARTITION_KEY]: { S: FEED_PARTITION },
            [SORT_KEY]: { S: `C#${String(epoch).padStart(16, '0')}` },
          },
        }),
      );
    }
    await client.send(
      new PutItemCommand({
        TableName: table,
        Item: {
          [PARTITION_KEY]: { S: FEED_PARTITION },
          [SORT_KEY]: { S: 'HEAD' },
          epoch: { N: '2' },
        },
      }),
    );
    const iat = Math.floor(Date.now() / 1000) - 60;
    const epoch = await feed.append({
      notBefore: { key: subjectStorageKey({ subject: 'alice' }), at: iat + 30 },
    });
    expect(epoch).toBe(3);

    await follower.sync();
    expect(follower.stats.resets).toBe(2);
    expect(follower.epoch).toBe(3);
    const alice = {
      issuer: DEMO_ISSUER,
      issuerKind: 'external' as const,
      subject: 'alice',
      scopes: [],
      claims: {},
      actors: [],
      expiresAt: iat + 600,
      issuedAt: iat,
    };
    expect(follower.admit(alice)).toMatchObject({ status: 401, reason: 'session_revoked' });
    // The feed gone altogether (a table emptied under a warm container): a reset too.
    for (const sk of ['HEAD', ...[1, 2, 3].map((e) => `C#${String(e).padStart(16, '0')}`)]) {
      await client.send(
        new DeleteItemCommand({
          TableName: table,
          Key: { [PARTITION_KEY]: { S: FEED_PARTITION }, [SORT_KEY]: { S: sk } },
        }),
      );
    }
    expect((await feed.read(3)).reset).toBe(true);
  });

  it('does not reset a follower that saw a change whose head update is still missing', async () => {
    const table = await demoTable(client);
    const feed = new DynamoDBFeed({ client, tableName: table });
    for (let i = 0; i < 3; i++) await feed.append({ keys: [feedKeys.user({ subject: 'x' })] });
    // A writer that claimed epoch 3 and died before advancing the head.
    await client.send(
      new PutItemCommand({
        TableName: table,
        Item: {
          [PARTITION_KEY]: { S: FEED_PARTITION },
          [SORT_KEY]: { S: 'HEAD' },
          epoch: { N: '2' },
        },
      }),
    );
    const answer = await feed.read(3);
    expect(answer).toMatchObject({ reset: false, head: 3, changes: [] });
  });

  it('expires not-befores a year after their time (DynamoDB TTL), skipping any TTL left behind', async () => {
    const table = await demoTable(client);
    const feed = new DynamoDBFeed({ client, tableName: table });
    const now = Math.floor(Date.now() / 1000);
    const live = subjectStorageKey({ subject: 'alice' });
    const gone = subjectStorageKey({ subject: 'bob' });
    await feed.append({ notBefore: { key: live, at: now - 100 } });
    // Signed out a year (and the leeway) ago: no token it refuses can still be live.
    await feed.append({ notBefore: { key: gone, at: now - 31_536_000 - 300 } });

    const item = await client.send(
      new GetItemCommand({
        TableName: table,
        Key: { [PARTITION_KEY]: { S: 'REVOKED' }, [SORT_KEY]: { S: `NB#${live}` } },
      }),
    );
    const answer = await feed.read(-1);

    expect(Number(item.Item?.[TTL_ATTRIBUTE]?.N)).toBe(now - 100 + 31_536_000 + 300);
    expect(answer.changes.map((c) => c.notBefore?.key)).toContain(live);
    expect(answer.changes.map((c) => c.notBefore?.key)).not.toContain(gone);
  });

  it('stays out of export: the feed is not permission data', async () => {
    const { admin } = await setup();
    await admin.revokeSessions({ subject: 'alice' });
    await expect(admin.exportData()).resolves.toBeDefined();
  });
});

describe('the Lambda authorizer following the feed', () => {
  it('denies a revoked grant within about a second although the cache TTL is 30 s', async () => {
    const { admin, allowed } = await setup();
    const alice = await token('alice');
    expect(await allowed(alice)).toBe(true);

    await admin.revoke({ subject: 'alice' }, 'read:drafts');

    expect(await untilDenied(() => allowed(alice))).toBeLessThan(2500);
  });

  it('refuses tokens issued before a sign-out and accepts later ones', async () => {
    const { admin, allowed } = await setup();
    const old = await token('alice', { iat: Math.floor(Date.now() / 1000) - 10 });
    expect(await allowed(old)).toBe(true);

    const { notBefore } = await admin.revokeSessions({ subject: 'alice' });

    expect(await untilDenied(() => allowed(old))).toBeLessThan(2500);
    expect(await allowed(await token('alice', { iat: notBefore! }))).toBe(true);
  });

  it('refuses a revoked jti on a cold container at once', async () => {
    const { admin, allowed } = await setup();
    const leaked = await token('alice', { jti: 'leaked' });
    await admin.revokeToken('leaked', Math.floor(Date.now() / 1000) + 600);

    expect(await allowed(leaked)).toBe(false);
    expect(await allowed(await token('alice', { jti: 'other' }))).toBe(true);
  });

  // Principal mode: API Gateway reuses one answer per token for every route. A revoked token sent
  // to a public route must not come back with a policy for what its subject could do before.
  it('gives a revoked or signed-out token no more than an anonymous caller, whatever route it names (principal mode)', async () => {
    const { admin, handler } = await setup(DEMO_POLICY, client, { AUTHORIZER_MODE: 'principal' });
    const allowedRoutes = async (jwt: string, path: string) => {
      const answer = (await handler(tokenEvent('GET', path, jwt))) as IamResponse;
      return answer.policyDocument.Statement.flatMap((statement) =>
        statement.Effect === 'Allow' && 'Resource' in statement ? [statement.Resource].flat() : [],
      ).map(String);
    };
    const leaked = await token('alice', { jti: 'leaked-public' });
    const old = await token('alice', { iat: Math.floor(Date.now() / 1000) - 10 });
    // An unverifiable token on a public route is answered for an anonymous caller.
    const forged = `${(await token('alice')).slice(0, -6)}AAAAAA`;
    const anonymous = await allowedRoutes(forged, '/health');
    expect(anonymous.some((r) => r.endsWith('/drafts'))).toBe(false);
    expect((await allowedRoutes(leaked, '/health')).some((r) => r.endsWith('/drafts'))).toBe(true);

    await admin.revokeToken('leaked-public', Math.floor(Date.now() / 1000) + 600);
    await admin.revokeSessions({ subject: 'alice' });
    await new Promise((resolve) => setTimeout(resolve, 1200)); // the follower's next read

    expect(await allowedRoutes(leaked, '/health')).toEqual(anonymous);
    expect(await allowedRoutes(old, '/health')).toEqual(anonymous);
    await expect(handler(tokenEvent('GET', '/drafts', leaked))).rejects.toThrow('Unauthorized');
    // Denials carry the principal too (no route, a method the route does not take): its cached
    // answer would list every route its subject held, so the feed refuses the token first.
    for (const [method, path] of [
      ['GET', '/nope'],
      ['DELETE', '/drafts'],
    ] as const) {
      for (const refused of [leaked, old]) {
        await expect(handler(tokenEvent(method, path, refused))).rejects.toThrow('Unauthorized');
      }
    }
  });

  it('answers a strict route only while the feed can be read', async () => {
    const state = { down: false };
    let offset = 0;
    const table = await demoTable(client);
    const handler = createLambdaHandler({
      policy: STRICT_POLICY,
      env: { TABLE_NAME: table, GATEHOUSE_DEV_SECRET: SECRET },
      client: feedFailingClient(state),
      log: () => {},
      now: () => Date.now() + offset,
    });
    const allowed = async (jwt: string, path: string) =>
      ((await handler(httpEvent('GET', path, jwt))) as SimpleResponse).isAuthorized;
    const alice = await token('alice');
    expect(await allowed(alice, '/payouts')).toBe(true);
    state.down = true;
    offset = 11_000;

    // A 503 decision is an authorizer failure: API Gateway answers 500, never the route.
    await expect(allowed(alice, '/payouts')).rejects.toThrow(/revocation_unavailable/);
    expect(await allowed(alice, '/drafts')).toBe(true);
    state.down = false;
    offset = 12_000;
    expect(await allowed(alice, '/payouts')).toBe(true);
  });

  it('refuses every token on a container that never read the feed (sign-outs live there)', async () => {
    const { admin } = await setup();
    const old = await token('alice', { iat: Math.floor(Date.now() / 1000) - 10 });
    await admin.revokeSessions({ subject: 'alice' });
    const cold = await setup(DEMO_POLICY, feedFailingClient());

    await expect(cold.allowed(old)).rejects.toThrow(/revocation_unavailable/);
    await expect(cold.allowed(await token('bob'))).rejects.toThrow(/revocation_unavailable/);
  });
});

describe('principal mode and strict routes', () => {
  const events = {
    'REST TOKEN': tokenEvent,
    'REST REQUEST': restRequestEvent,
    'HTTP API (IAM answer)': httpEvent,
  } as const;
  const allowed = (answer: unknown) =>
    ((answer as IamResponse).policyDocument.Statement as { Effect: string; Resource: string[] }[])
      .filter((s) => s.Effect === 'Allow')
      .flatMap((s) => s.Resource);
  const lists = (resources: string[], route: string) => resources.some((r) => r.endsWith(route));
  const handlerFor = async (dynamo: DynamoDBClient, extra: Record<string, string> = {}) => {
    const table = await demoTable(client);
    return createLambdaHandler({
      policy: STRICT_POLICY,
      env: {
        TABLE_NAME: table,
        GATEHOUSE_DEV_SECRET: SECRET,
        AUTHORIZER_MODE: 'principal',
        HTTP_API_RESPONSE: 'iam',
        ...extra,
      },
      client: dynamo,
      log: () => {},
    });
  };

  for (const [kind, event] of Object.entries(events)) {
    it(`hands out no cacheable answer while the feed lags (${kind})`, async () => {
      const handler = await handlerFor(feedFailingClient());
      const alice = await token('alice');
      await expect(handler(event('GET', '/payouts', alice))).rejects.toThrow(
        /revocation_unavailable/,
      );
      // A non-strict route too: its answer would cover /payouts for AuthorizerTtl.
      await expect(handler(event('GET', '/drafts', alice))).rejects.toThrow(
        /revocation_unavailable/,
      );
    });

    it(`lists strict routes while the feed is read, never without a feed (${kind})`, async () => {
      const alice = await token('alice');
      const up = await handlerFor(client);
      const off = await handlerFor(client, { REVOCATION_FEED: 'off' });

      const healthy = allowed(await up(event('GET', '/drafts', alice)));
      const unfed = allowed(await off(event('GET', '/drafts', alice)));

      expect(lists(healthy, '/GET/payouts')).toBe(true);
      expect(lists(healthy, '/GET/drafts')).toBe(true);
      expect(lists(unfed, '/GET/payouts')).toBe(false);
      expect(lists(unfed, '/GET/drafts')).toBe(true);
    });
  }
});

describe('the CLI on DynamoDB', () => {
  const policyFile = new URL('../../demo/policy.json', import.meta.url).pathname;
  const cli = (table: string) =>
    cliHarness({
      common: [
        '--dynamodb',
        '--table',
        table,
        '--endpoint',
        local.endpoint,
        '--region',
        'eu-west-1',
        '--policy',
        policyFile,
        '--vars',
        '/nonexistent/.dev.vars',
      ],
      env: { GATEHOUSE_DEV_SECRET: SECRET },
    });

  it('revoke-sessions signs a subject out; revoke-token refuses one jti; both return the epoch', async () => {
    const { table, allowed } = await setup();
    const old = await token('alice', { iat: Math.floor(Date.now() / 1000) - 10 });
    const bobs = await token('bob', { jti: 'bob-leaked' });
    expect(await allowed(old)).toBe(true);

    const signedOut = await cli(table).json<{ epoch: number; notBefore: number }>(
      'revoke-sessions',
      'alice',
    );
    const revoked = await cli(table).json<{ epoch: number }>(
      'revoke-token',
      'bob-leaked',
      '--expires',
      '1h',
    );
    const granted = await cli(table).json<{ epoch: number }>('grant', 'dave', 'read:stats');

    expect(revoked.epoch).toBeGreaterThan(signedOut.epoch);
    expect(granted.epoch).toBeGreaterThan(revoked.epoch);
    expect(await untilDenied(() => allowed(old))).toBeLessThan(2500);
    await expect(allowed(bobs, '/posts')).resolves.toBe(false);
  });

  it('refuses revoke-token without --expires, and a jti with control characters', async () => {
    const { table } = await setup();
    expect((await cli(table).run('revoke-token', 'x')).code).toBe(2);
    const bad = await cli(table).run('revoke-token', 'a\u0001b', '--expires', '1h');
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('[jti]');
  });
});

describe('the admin Lambda on the feed', () => {
  function call(
    handler: ReturnType<typeof createAdminLambdaHandler>,
    jwt: string,
    method: string,
    path: string,
  ) {
    return handler({
      version: '2.0',
      routeKey: 'ANY /v1/admin/{proxy+}',
      rawPath: path,
      rawQueryString: '',
      headers: { authorization: `Bearer ${jwt}` },
      requestContext: {
        http: { method, path, protocol: 'HTTP/1.1', sourceIp: '203.0.113.9', userAgent: 'vitest' },
        stage: '$default',
      },
      pathParameters: { proxy: path.replace(/^\/v1\/admin\//, '') },
      isBase64Encoded: false,
    } as unknown as APIGatewayProxyEventV2) as Promise<APIGatewayProxyStructuredResultV2>;
  }

  it('records its changes (consistency token in the answer) and refuses a signed-out admin', async () => {
    const { table, admin, allowed } = await setup();
    await admin.grant({ subject: 'root' }, { permission: 'admin:permissions' });
    const handler = createAdminLambdaHandler({
      policy: DEMO_POLICY,
      env: { TABLE_NAME: table, GATEHOUSE_DEV_SECRET: SECRET },
      client,
      log: () => {},
    });
    const root = await token('root', { iat: Math.floor(Date.now() / 1000) - 10 });
    const alice = await token('alice');
    expect(await allowed(alice)).toBe(true);

    const revoked = await call(handler, root, 'DELETE', '/v1/admin/users/alice/grants/read:drafts');
    expect(revoked.statusCode).toBe(200);
    expect(
      revoked.headers?.['gatehouse-consistency'] ?? revoked.headers?.['Gatehouse-Consistency'],
    ).toMatch(/^\d+$/);
    expect(await untilDenied(() => allowed(alice))).toBeLessThan(2500);

    await admin.revokeSessions({ subject: 'root' });
    const refused = await untilDenied(
      async () => (await call(handler, root, 'GET', '/v1/admin/users/alice')).statusCode === 200,
    );
    expect(refused).toBeLessThan(2500);
  });
});
