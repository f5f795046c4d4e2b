/**
 * The token endpoint Lambda (handlers/token-lambda.ts's logic) with the documented API Gateway
 * event shapes (HTTP API 2.0 and 1.0, REST proxy), the demo policy, and the delegator's record
 * read from dynalite: it issues a delegation token the authorizer then accepts, answers RFC 6749
 * errors, serves the JWKS, and refuses every invocation (503) on a malformed key secret.
 */
import * as jose from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLambdaHandler } from '../../src/aws/lambda.ts';
import { createTokenLambdaHandler, type TokenLambdaEvent } from '../../src/aws/token-lambda.ts';
import { TOKEN_EXCHANGE_GRANT, TOKEN_TYPE_JWT } from '../../src/delegation/index.ts';
import { demoDelegationKeys, demoToken } from '../support/cases.ts';
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
const logs: Record<string, unknown>[] = [];

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

const userToken = (subject: string) =>
  demoToken(
    {
      name: subject,
      subject,
      method: 'GET',
      path: '/',
      expect: { allow: true, status: 200, reason: 'allowed' },
    },
    SECRET,
  ) as Promise<string>;

async function form(subject: string, actor: string, scope: string): Promise<string> {
  return new URLSearchParams({
    grant_type: TOKEN_EXCHANGE_GRANT,
    subject_token: await userToken(subject),
    subject_token_type: TOKEN_TYPE_JWT,
    actor_token: await userToken(actor),
    actor_token_type: TOKEN_TYPE_JWT,
    scope,
  }).toString();
}

function v2(method: string, path: string, body?: string, base64 = false): TokenLambdaEvent {
  return {
    version: '2.0',
    routeKey: `${method} ${path}`,
    rawPath: path,
    rawQueryString: '',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    requestContext: {
      accountId: '123456789012',
      apiId: 'api',
      domainName: 'api.example',
      domainPrefix: 'api',
      http: { method, path, protocol: 'HTTP/1.1', sourceIp: '203.0.113.9', userAgent: 'test' },
      requestId: 'r',
      routeKey: `${method} ${path}`,
      stage: '$default',
      time: '',
      timeEpoch: 0,
    },
    ...(body !== undefined && {
      body: base64 ? Buffer.from(body).toString('base64') : body,
      isBase64Encoded: base64,
    }),
  } as TokenLambdaEvent;
}

function rest(method: string, path: string, body: string): TokenLambdaEvent {
  return {
    resource: path,
    path,
    httpMethod: method,
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    multiValueHeaders: {},
    queryStringParameters: null,
    multiValueQueryStringParameters: null,
    pathParameters: null,
    stageVariables: null,
    requestContext: { stage: 'prod', identity: { sourceIp: '203.0.113.9' } },
    body,
    isBase64Encoded: false,
  } as unknown as TokenLambdaEvent;
}

describe('the token endpoint Lambda', () => {
  it('issues a delegation token (HTTP API 2.0, base64 body) that the authorizer accepts', async () => {
    const handler = createTokenLambdaHandler({
      policy: DEMO_POLICY,
      env: env(),
      client: local.client(),
      log: (e) => logs.push(e),
    });
    const response = await handler(
      v2('POST', '/.gatehouse/v1/token', await form('alice', 'reporter', 'read:posts'), true),
    );
    expect(response).toMatchObject({ statusCode: 200 });
    const body = JSON.parse((response as { body: string }).body);
    expect(body).toMatchObject({ token_type: 'Bearer', scope: 'read:posts' });
    expect(jose.decodeJwt(body.access_token)).toMatchObject({
      sub: 'alice',
      act: { sub: 'reporter' },
    });
    expect(
      logs.some((l) => l.type === 'gatehouse.delegation_issued' && l.delegator === 'alice'),
    ).toBe(true);

    const authorizer = createLambdaHandler({
      policy: DEMO_POLICY,
      env: { ...env(), AUTHORIZER_MODE: 'route' },
      client: local.client(),
      log: () => {},
    });
    const answer = await authorizer(httpEvent('GET', '/posts/1', body.access_token, '203.0.113.9'));
    expect(answer).toMatchObject({
      isAuthorized: true,
      context: { subject: 'alice', actor: 'reporter' },
    });
  });

  it('answers RFC 6749 errors in the REST proxy shape, and reads the delegator from the table', async () => {
    const handler = createTokenLambdaHandler({
      policy: DEMO_POLICY,
      env: env(),
      client: local.client(),
      log: () => {},
    });
    // bob (editor) holds no read:drafts: beyond the delegator.
    const beyond = await handler(
      rest('POST', '/.gatehouse/v1/token', await form('bob', 'reporter', 'read:drafts')),
    );
    expect(beyond).toMatchObject({ statusCode: 400 });
    expect(JSON.parse((beyond as { body: string }).body)).toMatchObject({ error: 'invalid_scope' });
    const stranger = await handler(
      rest('POST', '/.gatehouse/v1/token', await form('bob', 'mallory', 'read:posts')),
    );
    expect(JSON.parse((stranger as { body: string }).body)).toMatchObject({
      error: 'unauthorized_client',
    });
  });

  it('tells a body that is not UTF-8 from one that is too large', async () => {
    const handler = createTokenLambdaHandler({
      policy: DEMO_POLICY,
      env: env(),
      client: local.client(),
      log: () => {},
    });
    for (const bytes of [[0xff], [0x61, 0xc3], [0xed, 0xa0, 0x80]]) {
      const event = v2('POST', '/.gatehouse/v1/token', 'x', true);
      (event as { body: string }).body = Buffer.from(bytes).toString('base64');
      const answer = (await handler(event)) as { statusCode: number; body: string };
      expect(answer.statusCode).toBe(400);
      expect(JSON.parse(answer.body)).toMatchObject({ error: 'invalid_request' });
      expect(JSON.parse(answer.body).error_description).toMatch(/UTF-8/);
    }
    const large = (await handler(v2('POST', '/.gatehouse/v1/token', 'a'.repeat(70_000), true))) as {
      statusCode: number;
      body: string;
    };
    expect(JSON.parse(large.body).error_description).toMatch(/too large/);
  });

  it('serves the public keys and 404 elsewhere', async () => {
    const handler = createTokenLambdaHandler({
      policy: DEMO_POLICY,
      env: env(),
      client: local.client(),
      log: () => {},
    });
    const jwks = await handler(v2('GET', '/.gatehouse/jwks.json'));
    expect(jwks).toMatchObject({ statusCode: 200 });
    expect((jwks as { body: string }).body).not.toContain('"d"');
    expect(await handler(v2('GET', '/.gatehouse/other'))).toMatchObject({ statusCode: 404 });
  });

  it('refuses every invocation when the key secret is malformed, logging only its name', async () => {
    const lines: Record<string, unknown>[] = [];
    const handler = createTokenLambdaHandler({
      policy: DEMO_POLICY,
      env: { ...env(), GATEHOUSE_DELEGATION_KEYS: '{"current":{"alg":"EdDSA","d":"c2VjcmV0"}}' },
      client: local.client(),
      log: (e) => lines.push(e),
    });
    expect(handler.configError).toBeDefined();
    expect(await handler(v2('POST', '/.gatehouse/v1/token', 'x=1'))).toMatchObject({
      statusCode: 503,
    });
    expect(JSON.stringify(lines)).toContain('GATEHOUSE_DELEGATION_KEYS');
    expect(JSON.stringify(lines)).not.toContain('c2VjcmV0');
  });
});
