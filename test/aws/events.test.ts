/**
 * Signed events on the local AWS stack (issue 13): the token Lambda's event endpoints with the
 * documented API Gateway event shape, the authorizer refusing an event as a bearer token, the
 * DynamoDB idempotency records against dynalite, and the SQS consumer with aws-lambda `SQSEvent`
 * shapes proving the issue's scenario.
 */
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import * as jose from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FeedRecordingStore } from '../../src/admin/feed-store.ts';
import { DynamoDBAdminStore } from '../../src/aws/dynamodb-admin-store.ts';
import { createLambdaHandler } from '../../src/aws/lambda.ts';
import { DynamoDBProcessedEvents } from '../../src/aws/processed-events.ts';
import { DynamoDBFeed } from '../../src/aws/revocation-feed.ts';
import { createSqsEventHandler } from '../../src/aws/sqs-consumer.ts';
import { createTokenLambdaHandler, type TokenLambdaEvent } from '../../src/aws/token-lambda.ts';
import { StoreError } from '../../src/errors.ts';
import type { AllowedEvent, ConsumerLogEntry } from '../../src/events/index.ts';
import type { UserRecord } from '../../src/types.ts';
import { DEMO_AUDIENCE, DEMO_ISSUER, demoDelegationKeys } from '../support/cases.ts';
import { alterEvent } from '../support/events.ts';
import {
  DEMO_POLICY,
  demoTable,
  httpEvent,
  type LocalDynamo,
  SECRET,
  startDynalite,
} from './support.ts';

let local: LocalDynamo;
let table: string;
let keys: string;

beforeAll(async () => {
  local = await startDynalite();
  table = await demoTable(local.client());
  keys = await demoDelegationKeys();
});
afterAll(async () => local.close());

const env = () => ({
  TABLE_NAME: table,
  GATEHOUSE_DEV_SECRET: SECRET,
  GATEHOUSE_DELEGATION_KEYS: keys,
});

async function token(subject: string): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new jose.SignJWT({})
    .setProtectedHeader({ alg: 'HS256', kid: 'dev', typ: 'JWT' })
    .setIssuer(DEMO_ISSUER)
    .setAudience(DEMO_AUDIENCE)
    .setSubject(subject)
    .setIssuedAt(now)
    .setExpirationTime(now + 600)
    .sign(new TextEncoder().encode(SECRET));
}

function v2(path: string, body: unknown, authorization?: string): TokenLambdaEvent {
  return {
    version: '2.0',
    routeKey: `POST ${path}`,
    rawPath: path,
    rawQueryString: '',
    headers: {
      'content-type': 'application/json',
      ...(authorization !== undefined && { authorization }),
    },
    requestContext: {
      accountId: '123456789012',
      apiId: 'api',
      domainName: 'api.example',
      domainPrefix: 'api',
      http: {
        method: 'POST',
        path,
        protocol: 'HTTP/1.1',
        sourceIp: '203.0.113.9',
        userAgent: 'test',
      },
      requestId: 'r',
      routeKey: `POST ${path}`,
      stage: '$default',
      time: '',
      timeEpoch: 0,
    },
    body: JSON.stringify(body),
    isBase64Encoded: false,
  } as TokenLambdaEvent;
}

const tokenLambda = () =>
  createTokenLambdaHandler({
    policy: DEMO_POLICY,
    env: env(),
    client: local.client(),
    log: () => {},
  });

async function signAt(
  lambda: ReturnType<typeof tokenLambda>,
  subject: string,
  body: Record<string, unknown> = {
    type: 'com.example.post.publish',
    data: { post: 7 },
    permission: 'publish:posts',
  },
) {
  const answer = (await lambda(
    v2('/.gatehouse/v1/events', body, `Bearer ${await token(subject)}`),
  )) as {
    statusCode: number;
    body: string;
  };
  return { status: answer.statusCode, body: JSON.parse(answer.body) as Record<string, unknown> };
}

async function verifyAt(lambda: ReturnType<typeof tokenLambda>, event: unknown) {
  const answer = (await lambda(v2('/.gatehouse/v1/events/verify', { event }))) as {
    statusCode: number;
    body: string;
  };
  expect(answer.statusCode).toBe(200);
  return JSON.parse(answer.body) as Record<string, unknown>;
}

describe('the event endpoints on the token Lambda', () => {
  it('signs for a caller holding the permission now and verifies with the re-check from the table', async () => {
    const lambda = tokenLambda();
    const signed = await signAt(lambda, 'bob');
    expect(signed.status).toBe(200);
    expect(await verifyAt(lambda, signed.body.event)).toMatchObject({
      allow: true,
      subject: 'bob',
      event: { id: signed.body.id, data: { post: 7 } },
    });
    const denied = await signAt(lambda, 'alice');
    expect(denied).toMatchObject({ status: 403, body: { reason: 'missing_permission' } });
  });

  it('the authorizer never takes an event for a bearer token', async () => {
    const signed = await signAt(tokenLambda(), 'bob');
    const authorizer = createLambdaHandler({
      policy: DEMO_POLICY,
      env: { ...env(), HTTP_API_RESPONSE: 'simple' },
      client: local.client(),
      log: () => {},
    });
    const answer = (await authorizer(httpEvent('GET', '/posts', signed.body.event as string))) as {
      isAuthorized: boolean;
    };
    expect(answer.isAuthorized).toBe(false);
  });
});

describe('DynamoDB idempotency records (conditional writes, dynalite)', () => {
  const soon = () => Math.floor(Date.now() / 1000) + 600;

  it('makes exactly one of concurrent deliveries first, until released', async () => {
    const processed = new DynamoDBProcessedEvents({ client: local.client(), tableName: table });
    const results = await Promise.all(
      Array.from({ length: 10 }, () => processed.recordProcessed('evt-concurrent', soon())),
    );
    expect(results.filter((r) => r === 'first')).toHaveLength(1);
    await processed.release('evt-concurrent');
    expect(await processed.recordProcessed('evt-concurrent', soon())).toBe('first');
    expect(processed.consistency).toBe('strong');
  });

  it('treats a record past its expiry and the leeway as absent (TTL deletion lags), and keys ids apart', async () => {
    const processed = new DynamoDBProcessedEvents({ client: local.client(), tableName: table });
    const past = Math.floor(Date.now() / 1000) - 301;
    expect(await processed.recordProcessed('evt-old', past)).toBe('first');
    expect(await processed.recordProcessed('evt-old', soon())).toBe('first');
    expect(await processed.recordProcessed('evt-old', soon())).toBe('in_progress');
    await processed.complete('evt-old', soon());
    expect(await processed.recordProcessed('evt-old', soon())).toBe('duplicate');
    // Ids that differ only where an unencoded key would merge them stay apart.
    expect(await processed.recordProcessed('a#b', soon())).toBe('first');
    expect(await processed.recordProcessed('a%23b', soon())).toBe('first');
  });

  it('keeps a record past exp for as long as the event verifies (the leeway), in progress or done', async () => {
    let clock = Date.parse('2026-11-23T12:00:00Z');
    const processed = new DynamoDBProcessedEvents({
      client: local.client(),
      tableName: table,
      now: () => clock,
    });
    const exp = Math.floor(clock / 1000) + 60;
    clock += 59_000;
    expect(await processed.recordProcessed('evt-leeway', exp, 5)).toBe('first');
    await processed.complete('evt-leeway', exp);
    for (const late of [1_000, 30_000, 300_000]) {
      clock = Date.parse('2026-11-23T12:00:00Z') + 60_000 + late - 1_000;
      expect(await processed.recordProcessed('evt-leeway', exp), `exp + ${late}`).toBe('duplicate');
    }
  });

  it('a lease left by a killed run makes deliveries retry until it ends, then one takes it over', async () => {
    let clock = Date.parse('2026-11-23T12:00:00Z');
    const processed = new DynamoDBProcessedEvents({
      client: local.client(),
      tableName: table,
      now: () => clock,
    });
    const exp = Math.floor(clock / 1000) + 3600;
    expect(await processed.recordProcessed('evt-killed', exp, 120)).toBe('first');
    clock += 60_000;
    expect(await processed.recordProcessed('evt-killed', exp, 120)).toBe('in_progress');
    clock += 61_000;
    const takeover = await Promise.all(
      Array.from({ length: 5 }, () => processed.recordProcessed('evt-killed', exp, 120)),
    );
    expect(takeover.filter((r) => r === 'first')).toHaveLength(1);
    expect(takeover.filter((r) => r === 'in_progress')).toHaveLength(4);
    await processed.complete('evt-killed', exp);
    clock += 600_000;
    expect(await processed.recordProcessed('evt-killed', exp, 120)).toBe('duplicate');
  });

  it('an unreachable table is a StoreError, never first', async () => {
    const down = await startDynalite();
    const client = down.client({ maxAttempts: 1 });
    await down.close();
    const processed = new DynamoDBProcessedEvents({ client, tableName: table });
    await expect(processed.recordProcessed('evt-x', soon())).rejects.toBeInstanceOf(StoreError);
  });
});

describe('the scenario on AWS, through the SQS consumer', () => {
  function record(id: string, body: string): SQSRecord {
    return {
      messageId: id,
      receiptHandle: `rh-${id}`,
      body,
      attributes: {
        ApproximateReceiveCount: '1',
        SentTimestamp: String(Date.now()),
        SenderId: 'AIDAEXAMPLE',
        ApproximateFirstReceiveTimestamp: String(Date.now()),
      },
      messageAttributes: {},
      md5OfBody: 'x',
      eventSource: 'aws:sqs',
      eventSourceARN: 'arn:aws:sqs:eu-west-1:123456789012:gatehouse-events',
      awsRegion: 'eu-west-1',
    };
  }
  const batch = (...bodies: string[]): SQSEvent => ({
    Records: bodies.map((body, i) => record(`m${i}`, body)),
  });

  function consumer(extra: Record<string, string> = {}) {
    const ran: AllowedEvent[] = [];
    const logs: ConsumerLogEntry[] = [];
    const handler = createSqsEventHandler({
      policy: DEMO_POLICY,
      env: { ...env(), ...extra },
      client: local.client({ maxAttempts: 1 }),
      log: (entry) => {
        if (String(entry.type).startsWith('gatehouse.event_'))
          logs.push(entry as unknown as ConsumerLogEntry);
      },
      handler: (event) => {
        ran.push(event);
      },
    });
    return { handler, ran, logs };
  }

  it('intact: runs once even when delivered twice, in one batch and in another', async () => {
    const signed = await signAt(tokenLambda(), 'bob');
    const event = signed.body.event as string;
    const c = consumer();
    expect(await c.handler(batch(event, JSON.stringify({ event })))).toEqual({
      batchItemFailures: [],
    });
    expect(await c.handler(batch(event))).toEqual({ batchItemFailures: [] });
    expect(c.ran).toHaveLength(1);
    expect(c.ran[0]).toMatchObject({ subject: 'bob', data: { post: 7 } });
    expect(c.logs.filter((l) => l.type === 'gatehouse.event_duplicate')).toHaveLength(2);
  });

  it('denied before the consumer runs: dropped, never run, and the log says why', async () => {
    const client = local.client();
    const store = new FeedRecordingStore(
      new DynamoDBAdminStore({ client, tableName: table }),
      new DynamoDBFeed({ client, tableName: table }),
    );
    const subject = `alice-${Date.now().toString(36)}`;
    const granted: UserRecord = {
      subject,
      roles: [],
      grants: [{ permission: 'publish:posts' }],
      denies: [],
    };
    await store.writeUser({ subject }, null, granted);
    const lambda = tokenLambda();
    const earlier = (await signAt(lambda, subject)).body.event as string;
    const event = (await signAt(lambda, subject)).body.event as string;
    const c = consumer();
    // The consumer's container has her record cached (30 s TTL) from an earlier operation.
    await c.handler(batch(earlier));
    expect(c.ran).toHaveLength(1);
    await store.writeUser({ subject }, granted, { ...granted, grants: [] });
    // One feed interval later the next invocation waits for the feed read, which evicts her.
    await new Promise((r) => setTimeout(r, 1100));
    c.ran.length = 0;
    c.logs.length = 0;
    expect(await c.handler(batch(event))).toEqual({ batchItemFailures: [] });
    expect(c.ran).toEqual([]);
    expect(c.logs).toEqual([
      expect.objectContaining({
        type: 'gatehouse.event_refused',
        reason: 'missing_permission',
        subject,
        status: 403,
      }),
    ]);
  });

  it('altered or not an event: dropped and never run', async () => {
    const event = (await signAt(tokenLambda(), 'bob')).body.event as string;
    const altered = alterEvent(event, (claims) => {
      claims.data = { post: 'all' };
    });
    const c = consumer();
    expect(await c.handler(batch(altered, 'hello', '{"event": 7}', '{broken'))).toEqual({
      batchItemFailures: [],
    });
    expect(c.ran).toEqual([]);
    expect(c.logs.map((l) => l.reason).sort()).toEqual([
      'token_invalid_signature',
      'token_malformed',
      'token_malformed',
      'token_malformed',
    ]);
  });

  it('store unavailable: reported in batchItemFailures, nothing run', async () => {
    const event = (await signAt(tokenLambda(), 'bob')).body.event as string;
    const down = await startDynalite();
    const client = down.client({ maxAttempts: 1 });
    await down.close();
    let ran = 0;
    const unreachable = createSqsEventHandler({
      policy: DEMO_POLICY,
      env: env(),
      client,
      log: () => {},
      handler: () => {
        ran++;
      },
    });
    expect(await unreachable(batch(event))).toEqual({
      batchItemFailures: [{ itemIdentifier: 'm0' }],
    });
    expect(ran).toBe(0);
  });

  it('a failing handler: reported for redelivery, the id released, then run exactly once', async () => {
    const event = (await signAt(tokenLambda(), 'bob')).body.event as string;
    let fail = true;
    const ran: string[] = [];
    const flaky = createSqsEventHandler({
      policy: DEMO_POLICY,
      env: env(),
      client: local.client(),
      log: () => {},
      handler: (e) => {
        if (fail) throw new Error('boom');
        ran.push(e.id);
      },
    });
    expect(await flaky(batch(event))).toEqual({ batchItemFailures: [{ itemIdentifier: 'm0' }] });
    fail = false;
    expect(await flaky(batch(event))).toEqual({ batchItemFailures: [] });
    expect(await flaky(batch(event))).toEqual({ batchItemFailures: [] });
    expect(ran).toHaveLength(1);
  });
});
