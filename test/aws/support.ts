/**
 * Test support for the AWS edge: dynalite (an in-memory DynamoDB-compatible server) on loopback,
 * reached over real HTTP by the real AWS SDK, plus event builders in API Gateway's documented
 * shapes (REST TOKEN, REST REQUEST, HTTP API payload 2.0).
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import dynalite from 'dynalite';
import type { AuthorizerEvent } from '../../src/aws/authorizer.ts';
import {
  createDynamoDBClient,
  createPermissionTable,
  writePermissionData,
} from '../../src/aws/dynamodb-store.ts';
import { parsePermissionData } from '../../src/stores/permission-data.ts';

export const read = (path: string) =>
  readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');

export const DEMO_POLICY: unknown = JSON.parse(read('demo/policy.json'));
export const DEMO_PERMISSIONS = parsePermissionData(read('demo/permissions.json'));
export const SECRET = 'demo-secret-for-tests-0123456789abcdef';
export const PREFIX = 'arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/';

export interface LocalDynamo {
  readonly endpoint: string;
  client(options?: { maxAttempts?: number }): DynamoDBClient;
  close(): Promise<void>;
}

export async function startDynalite(): Promise<LocalDynamo> {
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  const endpoint = `http://127.0.0.1:${port}`;
  const clients: DynamoDBClient[] = [];
  return {
    endpoint,
    client(options = {}) {
      const client = createDynamoDBClient({
        endpoint,
        region: 'eu-west-1',
        credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
        // Local server: generous per-attempt timeouts, the production retry budget.
        connectionTimeoutMs: 1000,
        requestTimeoutMs: 2000,
        ...options,
      });
      clients.push(client);
      return client;
    },
    async close() {
      for (const c of clients) c.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

let tables = 0;

/** A fresh table seeded with the demo permissions. */
export async function demoTable(client: DynamoDBClient): Promise<string> {
  const name = `gatehouse-test-${process.pid}-${++tables}`;
  await createPermissionTable(client, name);
  await writePermissionData(client, name, DEMO_PERMISSIONS);
  return name;
}

export function tokenEvent(
  method: string,
  path: string,
  token: string | undefined,
): AuthorizerEvent {
  return {
    type: 'TOKEN',
    authorizationToken: token === undefined ? '' : `Bearer ${token}`,
    methodArn: `${PREFIX}${method}${path}`,
  };
}

export function restRequestEvent(
  method: string,
  path: string,
  token: string | undefined,
  ip = '203.0.113.9',
): AuthorizerEvent {
  return {
    type: 'REQUEST',
    methodArn: `${PREFIX}${method}${path}`,
    resource: path,
    path,
    httpMethod: method,
    headers: token === undefined ? {} : { Authorization: `Bearer ${token}` },
    multiValueHeaders: {},
    pathParameters: {},
    queryStringParameters: {},
    multiValueQueryStringParameters: {},
    stageVariables: {},
    requestContext: {
      accountId: '123456789012',
      apiId: 'abcdef1234',
      httpMethod: method,
      identity: { sourceIp: ip },
      path: `/prod${path}`,
      protocol: 'HTTP/1.1',
      requestId: 'c6af9ac6-7b61-11e6-9a41-93e8deadbeef',
      requestTimeEpoch: 1_700_000_000_000,
      resourceId: 'abc123',
      resourcePath: path,
      stage: 'prod',
    },
  } as unknown as AuthorizerEvent;
}

export function httpEvent(
  method: string,
  path: string,
  token: string | undefined,
  ip = '203.0.113.9',
  stage = '$default',
): AuthorizerEvent {
  const rawPath = stage === '$default' ? path : `/${stage}${path}`;
  return {
    version: '2.0',
    type: 'REQUEST',
    routeArn: `arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/${stage}/${method}${path}`,
    identitySource: token === undefined ? [] : [`Bearer ${token}`],
    routeKey: '$default',
    rawPath,
    rawQueryString: '',
    cookies: [],
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    requestContext: {
      accountId: '123456789012',
      apiId: 'abcdef1234',
      domainName: 'abcdef1234.execute-api.eu-west-1.amazonaws.com',
      domainPrefix: 'abcdef1234',
      http: { method, path: rawPath, protocol: 'HTTP/1.1', sourceIp: ip, userAgent: 'vitest' },
      requestId: 'id',
      routeKey: '$default',
      stage,
      time: '12/Mar/2020:19:03:58 +0000',
      timeEpoch: 1_583_348_638_390,
    },
  } as unknown as AuthorizerEvent;
}
