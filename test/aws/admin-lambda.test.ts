/**
 * The admin API Lambda with API Gateway's documented integration events (HTTP API payload 2.0,
 * REST API proxy 1.0) against dynalite: authentication and admin:permissions, a grant and revoke
 * round trip that the authorizer Lambda then applies, the audit trail, and how paths are read
 * (REST keeps them percent-encoded, HTTP APIs decode them before the function sees them).
 */
import type {
  APIGatewayProxyEvent,
  APIGatewayProxyEventV2,
  APIGatewayProxyResult,
} from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/admin/types.ts';
import { createAdminLambdaHandler } from '../../src/aws/admin-lambda.ts';
import type { SimpleResponse } from '../../src/aws/authorizer.ts';
import { DynamoDBAdminStore } from '../../src/aws/dynamodb-admin-store.ts';
import { writePermissionData } from '../../src/aws/dynamodb-store.ts';
import { createLambdaHandler } from '../../src/aws/lambda.ts';
import { parsePermissionData } from '../../src/stores/permission-data.ts';
import { DEMO_ISSUER, demoToken } from '../support/cases.ts';
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
beforeAll(async () => {
  local = await startDynalite();
  const client = local.client();
  table = await demoTable(client);
  // Admins get their permission from permission data, like anyone else.
  await writePermissionData(
    client,
    table,
    parsePermissionData(
      JSON.stringify({
        users: {
          root: { grants: ['admin:permissions'] },
          'acme-admin': { grants: ['admin:permissions:acme'] },
        },
      }),
    ),
  );
});
afterAll(async () => local.close());

const token = (subject: string) =>
  demoToken(
    {
      name: subject,
      subject,
      method: 'GET',
      path: '/',
      expect: { allow: true, status: 200, reason: '' },
    },
    SECRET,
  ) as Promise<string>;

let clock = Date.now();
const now = () => clock;

function adminHandler(env: Record<string, string> = {}, logs: Record<string, unknown>[] = []) {
  return createAdminLambdaHandler({
    policy: DEMO_POLICY,
    env: { TABLE_NAME: table, GATEHOUSE_DEV_SECRET: SECRET, ...env },
    client: local.client(),
    now,
    log: (e) => logs.push(e),
  });
}

interface RequestSpec {
  token?: string | undefined;
  body?: unknown;
  query?: string;
  headers?: Record<string, string>;
  base64?: boolean;
}

function bodyText(body: unknown): string | undefined {
  if (body === undefined) return undefined;
  return typeof body === 'string' ? body : JSON.stringify(body);
}

/** An HTTP API payload 2.0 integration event; `rawPath` is given decoded, as AWS delivers it. */
function v2Event(method: string, rawPath: string, spec: RequestSpec = {}, stage = '$default') {
  const text = bodyText(spec.body);
  const path = stage === '$default' ? rawPath : `/${stage}${rawPath}`;
  return {
    version: '2.0',
    routeKey: 'ANY /v1/admin/{proxy+}',
    rawPath: path,
    rawQueryString: spec.query ?? '',
    headers: {
      ...(text !== undefined && { 'content-type': 'application/json' }),
      ...(spec.token !== undefined && { authorization: `Bearer ${spec.token}` }),
      ...spec.headers,
    },
    requestContext: {
      accountId: '123456789012',
      apiId: 'abcdef1234',
      domainName: 'abcdef1234.execute-api.eu-west-1.amazonaws.com',
      domainPrefix: 'abcdef1234',
      http: { method, path, protocol: 'HTTP/1.1', sourceIp: '203.0.113.9', userAgent: 'vitest' },
      requestId: 'id',
      routeKey: 'ANY /v1/admin/{proxy+}',
      stage,
      time: '12/Mar/2020:19:03:58 +0000',
      timeEpoch: 1_583_348_638_390,
    },
    pathParameters: { proxy: rawPath.replace(/^\/v1\/admin\//, '') },
    ...(text !== undefined && {
      body: spec.base64 ? btoa(String.fromCharCode(...new TextEncoder().encode(text))) : text,
    }),
    isBase64Encoded: spec.base64 === true,
  } as APIGatewayProxyEventV2;
}

/** A REST API proxy integration event; `path` is percent-encoded, as the client sent it. */
function restEvent(method: string, path: string, spec: RequestSpec = {}) {
  const text = bodyText(spec.body);
  const headers: Record<string, string> = {
    ...(text !== undefined && { 'Content-Type': 'application/json' }),
    ...(spec.token !== undefined && { Authorization: `Bearer ${spec.token}` }),
    ...spec.headers,
  };
  const query = new URLSearchParams(spec.query ?? '');
  const multi: Record<string, string[]> = {};
  for (const [k, v] of query) multi[k] = [...(multi[k] ?? []), v];
  return {
    resource: '/v1/admin/{proxy+}',
    path,
    httpMethod: method,
    headers,
    multiValueHeaders: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [v]])),
    queryStringParameters: query.size === 0 ? null : Object.fromEntries(query),
    multiValueQueryStringParameters: query.size === 0 ? null : multi,
    pathParameters: { proxy: path.replace(/^\/v1\/admin\//, '') },
    stageVariables: null,
    requestContext: {
      accountId: '123456789012',
      apiId: 'abcdef1234',
      httpMethod: method,
      identity: { sourceIp: '203.0.113.9' },
      path: `/prod${path}`,
      protocol: 'HTTP/1.1',
      requestId: 'c6af9ac6-7b61-11e6-9a41-93e8deadbeef',
      requestTimeEpoch: 1_700_000_000_000,
      resourceId: 'abc123',
      resourcePath: '/v1/admin/{proxy+}',
      stage: 'prod',
    },
    body: text ?? null,
    isBase64Encoded: false,
  } as unknown as APIGatewayProxyEvent;
}

async function invoke(
  handler: ReturnType<typeof adminHandler>,
  event: APIGatewayProxyEventV2 | APIGatewayProxyEvent,
) {
  const result = (await handler(event)) as APIGatewayProxyResult;
  return {
    status: result.statusCode,
    headers: result.headers as Record<string, string>,
    json: JSON.parse(result.body) as Record<string, unknown>,
  };
}

describe('admin Lambda configuration', () => {
  it('answers every call 503 configuration_error, naming the variable once in the log', async () => {
    const logs: Record<string, unknown>[] = [];
    const handler = adminHandler({ TABLE_NAME: '' }, logs);
    expect(handler.configError).toBeDefined();
    const r = await invoke(handler, v2Event('GET', '/v1/admin/users/alice', { token: 'x' }));
    expect(r.status).toBe(503);
    expect(r.json.reason).toBe('configuration_error');
    expect(logs).toHaveLength(1);
    expect(String(logs[0]?.msg)).toContain('TABLE_NAME');
  });

  it('refuses an AUDIT_RETENTION_DAYS outside 1 to 3650', () => {
    expect(adminHandler({ AUDIT_RETENTION_DAYS: '0' }).configError?.message).toContain(
      'AUDIT_RETENTION_DAYS',
    );
    expect(adminHandler({ AUDIT_RETENTION_DAYS: '90' }).configError).toBeUndefined();
  });
});

describe('admin Lambda authentication and authorization', () => {
  it('answers 401 with a challenge without a token (HTTP API 2.0 and REST)', async () => {
    const handler = adminHandler();
    for (const event of [
      v2Event('GET', '/v1/admin/users/alice'),
      restEvent('GET', '/v1/admin/users/alice'),
    ]) {
      const r = await invoke(handler, event);
      expect(r.status).toBe(401);
      expect(r.headers['www-authenticate']).toBe('Bearer realm="gatehouse"');
      expect(r.headers['content-type']).toBe('application/problem+json');
    }
  });

  it('answers 403 to a caller without admin:permissions and writes nothing', async () => {
    const handler = adminHandler();
    const r = await invoke(
      handler,
      v2Event('POST', '/v1/admin/users/lambda-nobody/grants', {
        token: await token('alice'),
        body: { permission: 'read:stats' },
      }),
    );
    expect(r.status).toBe(403);
    expect(r.json.reason).toBe('missing_permission');
    const store = new DynamoDBAdminStore({ client: local.client(), tableName: table });
    expect(await store.readUser({ subject: 'lambda-nobody' })).toBeNull();
  });

  it('lets admin:permissions:acme change tenant acme only', async () => {
    const handler = adminHandler();
    const acmeAdmin = await token('acme-admin');
    const body = { permission: 'read:posts' };
    const acme = await invoke(
      handler,
      v2Event('POST', '/v1/admin/users/lambda-ann/grants', {
        token: acmeAdmin,
        body,
        query: 'tenant=acme',
      }),
    );
    const plain = await invoke(
      handler,
      v2Event('POST', '/v1/admin/users/lambda-ann/grants', { token: acmeAdmin, body }),
    );
    expect(acme.status).toBe(201);
    expect(plain.status).toBe(403);
  });
});

describe('admin Lambda changes', () => {
  it('grants and revokes; the authorizer applies both once its cache TTL has passed', async () => {
    const admin = adminHandler();
    const authorizer = createLambdaHandler({
      policy: DEMO_POLICY,
      env: { TABLE_NAME: table, GATEHOUSE_DEV_SECRET: SECRET },
      client: local.client(),
      now,
      log: () => {},
    });
    const root = await token('root');
    const dave = await token('lambda-dave');
    const ask = async () =>
      ((await authorizer(httpEvent('GET', '/drafts', dave))) as SimpleResponse).isAuthorized;
    expect(await ask()).toBe(false);

    const granted = await invoke(
      admin,
      v2Event('POST', '/v1/admin/users/lambda-dave/grants', {
        token: root,
        body: { permission: 'read:drafts', expires: '1d' },
      }),
    );
    expect(granted.status).toBe(201);
    expect(granted.json).toMatchObject({ changed: true, before: null });
    clock += 31_000; // past the policy's cache TTL (30 s), and the negative TTL
    expect(await ask()).toBe(true);

    const revoked = await invoke(
      admin,
      restEvent('DELETE', '/v1/admin/users/lambda-dave/grants/read:drafts', { token: root }),
    );
    expect(revoked.status).toBe(200);
    expect(revoked.json.changed).toBe(true);
    const again = await invoke(
      admin,
      restEvent('DELETE', '/v1/admin/users/lambda-dave/grants/read:drafts', { token: root }),
    );
    expect(again.status).toBe(404);
    expect(again.json).toMatchObject({ reason: 'not_found', field: 'permission' });
    clock += 31_000;
    expect(await ask()).toBe(false);

    const audit = await invoke(
      admin,
      v2Event('GET', '/v1/admin/audit', { token: root, query: 'subject=lambda-dave&since=1h' }),
    );
    expect(audit.status).toBe(200);
    const records = audit.json.records as AuditRecord[];
    expect(records.map((r) => r.operation)).toEqual(['revoke', 'grant']);
    expect(records[1]).toMatchObject({
      actor: `${DEMO_ISSUER}#root`,
      via: 'admin-api',
      target: { subject: 'lambda-dave' },
      before: null,
      after: { grants: [{ permission: 'read:drafts' }] },
    });
  });

  it('refuses a signed-out caller on every call, /delegations included (no admin permission needed there)', async () => {
    const policy = structuredClone(DEMO_POLICY) as { delegation: Record<string, unknown> };
    policy.delegation.standingGrants = true;
    const admin = createAdminLambdaHandler({
      policy,
      env: { TABLE_NAME: table, GATEHOUSE_DEV_SECRET: SECRET },
      client: local.client(),
      now,
      log: () => {},
    });
    const subject = `signed-out-${Date.now().toString(36)}`;
    const stolen = await token(subject);
    const before = await invoke(admin, v2Event('GET', '/v1/admin/delegations', { token: stolen }));
    expect(before.status).toBe(200);
    clock = Math.max(clock, Date.now()) + 5_000; // the sign-out comes after the token's iat
    const signOut = await invoke(
      admin,
      v2Event('POST', `/v1/admin/users/${subject}/sessions/revoke`, { token: await token('root') }),
    );
    expect(signOut.status).toBe(200);
    clock += 2_000;
    for (const [method, body] of [
      ['GET', undefined],
      ['POST', { actor: 'reporter', scope: ['read:posts:*'], expires: '90d' }],
    ] as const) {
      const after = await invoke(
        admin,
        v2Event(method, '/v1/admin/delegations', { token: stolen, body }),
      );
      expect({ method, status: after.status, reason: after.json.reason }).toEqual({
        method,
        status: 401,
        reason: 'session_revoked',
      });
    }
  });

  it('refuses an invalid body with 400 naming the field', async () => {
    const r = await invoke(
      adminHandler(),
      restEvent('POST', '/v1/admin/users/lambda-val/grants', {
        token: await token('root'),
        body: { permission: 'read:x', when: { ip: ['300.0.0.1/8'] } },
      }),
    );
    expect(r.status).toBe(400);
    expect(r.json).toMatchObject({ reason: 'invalid_request', field: 'when.ip[0]' });
  });

  it('decodes REST paths once: a%2Fb is the subject a/b', async () => {
    const handler = adminHandler();
    const r = await invoke(
      handler,
      restEvent('POST', '/v1/admin/users/lambda%3Asvc%2Fone/grants', {
        token: await token('root'),
        body: { permission: 'read:posts' },
      }),
    );
    expect(r.status).toBe(201);
    const shown = await invoke(
      handler,
      restEvent('GET', '/v1/admin/users/lambda%3Asvc%2Fone', { token: await token('root') }),
    );
    expect(shown.json).toMatchObject({
      subject: 'lambda:svc/one',
      record: { subject: 'lambda:svc/one' },
    });
  });

  it('never decodes an HTTP API path a second time: 100%41 stays 100%41', async () => {
    const handler = adminHandler();
    // The client sent /users/lambda-100%2541; API Gateway delivers it decoded once.
    const r = await invoke(
      handler,
      v2Event('POST', '/v1/admin/users/lambda-100%41/grants', {
        token: await token('root'),
        body: { permission: 'read:posts' },
      }),
    );
    expect(r.status).toBe(201);
    const store = new DynamoDBAdminStore({ client: local.client(), tableName: table });
    expect(await store.readUser({ subject: 'lambda-100%41' })).not.toBeNull();
    expect(await store.readUser({ subject: 'lambda-100A' })).toBeNull();
  });

  it('reads base64 bodies and strips a named stage from rawPath', async () => {
    const r = await invoke(
      adminHandler(),
      v2Event(
        'POST',
        '/v1/admin/users/lambda-b64/grants',
        { token: await token('root'), body: { permission: 'read:posts' }, base64: true },
        'beta',
      ),
    );
    expect(r.status).toBe(201);
  });

  it('answers 404 outside its base path', async () => {
    const r = await invoke(
      adminHandler(),
      v2Event('GET', '/posts/1', { token: await token('root') }),
    );
    expect(r.status).toBe(404);
  });
});

describe('admin Lambda decision lines', () => {
  it('writes one line per call on the admin permission, with the digest and not the token', async () => {
    const logs: Record<string, unknown>[] = [];
    const handler = adminHandler({}, logs);
    await invoke(handler, v2Event('GET', '/v1/admin/users/alice'));
    const alice = await token('alice');
    await invoke(handler, v2Event('GET', '/v1/admin/users/alice', { token: alice }));
    const lines = logs.filter((l) => l.edge === 'admin-api');
    expect(lines.map((l) => [l.status, l.reason])).toEqual([
      [401, 'token_missing'],
      [403, 'missing_permission'],
    ]);
    expect(lines[1]).toMatchObject({ subject: 'alice', required: ['admin:permissions'] });
    expect(typeof lines[1]?.tokenDigest).toBe('string');
    expect(JSON.stringify(logs)).not.toContain(alice);
  });
});
