/**
 * The Lambda handler with API Gateway's documented event shapes: REST TOKEN, REST REQUEST and
 * HTTP API payload 2.0; answers, context, configuration errors and store failures.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import * as jose from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildContext,
  CONTEXT_BUDGET_BYTES,
  CONTEXT_VALUE_MAX,
  type ContextValue,
  type IamResponse,
  jsonLengthBound,
  parseEvent,
  type SimpleResponse,
} from '../../src/aws/authorizer.ts';
import { createDynamoDBClient } from '../../src/aws/dynamodb-store.ts';
import { createLambdaHandler } from '../../src/aws/lambda.ts';
import type { Decision } from '../../src/types.ts';
import { DEMO_AUDIENCE, DEMO_ISSUER, demoToken } from '../support/cases.ts';
import {
  DEMO_POLICY,
  demoTable,
  httpEvent,
  type LocalDynamo,
  PREFIX,
  restRequestEvent,
  SECRET,
  startDynalite,
  tokenEvent,
} from './support.ts';

let local: LocalDynamo;
let table: string;
beforeAll(async () => {
  local = await startDynalite();
  table = await demoTable(local.client());
});
afterAll(async () => local.close());

const token = (subject: string, claims: Record<string, unknown> = {}) =>
  demoToken(
    {
      name: subject,
      subject,
      claims,
      method: 'GET',
      path: '/',
      expect: { allow: true, status: 200, reason: '' },
    },
    SECRET,
  );

function handler(env: Record<string, string> = {}, logs: Record<string, unknown>[] = []) {
  return createLambdaHandler({
    policy: DEMO_POLICY,
    env: { TABLE_NAME: table, GATEHOUSE_DEV_SECRET: SECRET, ...env },
    client: local.client(),
    log: (e) => logs.push(e),
  });
}

describe('event recognition', () => {
  it('reads method and path from a TOKEN event method ARN, with no client IP', () => {
    const parsed = parseEvent(tokenEvent('DELETE', '/posts/7', 'x'));
    expect(parsed).toMatchObject({
      kind: 'token',
      method: 'DELETE',
      path: '/posts/7',
      ip: undefined,
    });
    expect(parsed.arn.prefix).toBe(PREFIX);
  });

  it('reads the client IP from requestContext.identity on REST REQUEST events', () => {
    expect(parseEvent(restRequestEvent('GET', '/stats', 'x', '10.1.2.3'))).toMatchObject({
      kind: 'request',
      ip: '10.1.2.3',
      authorization: 'Bearer x',
    });
  });

  it('reads requestContext.http on HTTP API events and strips a named stage from rawPath', () => {
    expect(parseEvent(httpEvent('GET', '/posts/1', 'x', '10.0.0.1', 'beta'))).toMatchObject({
      kind: 'http',
      method: 'GET',
      path: '/posts/1',
      ip: '10.0.0.1',
    });
  });

  it('fails (500) on an event it does not recognise', async () => {
    await expect(handler()({ type: 'WEIRD' } as never)).rejects.toThrow(/unrecognised/);
  });
});

describe('REST answers', () => {
  it('throws Unauthorized (401) for a missing token on a protected route', async () => {
    await expect(handler()(tokenEvent('GET', '/posts/1', undefined))).rejects.toThrow(
      /^Unauthorized$/,
    );
  });

  it('answers an explicit Deny (403) for a valid token without the permission (route mode)', async () => {
    const r = (await handler({ AUTHORIZER_MODE: 'route' })(
      restRequestEvent('PUT', '/posts/1', await token('alice')),
    )) as IamResponse;
    expect(r.principalId).toBe('alice');
    expect(r.policyDocument.Statement).toEqual([
      { Action: 'execute-api:Invoke', Effect: 'Deny', Resource: [`${PREFIX}PUT/posts/1`] },
    ]);
    expect(r.context).toMatchObject({
      reason: 'missing_permission',
      status: 403,
      subject: 'alice',
    });
  });

  it('allows only the current method ARN in route mode, with the matched permission in context', async () => {
    const r = (await handler({ AUTHORIZER_MODE: 'route' })(
      restRequestEvent('PATCH', '/posts/7', await token('bob')),
    )) as IamResponse;
    expect(r.policyDocument.Statement).toEqual([
      { Action: 'execute-api:Invoke', Effect: 'Allow', Resource: [`${PREFIX}PATCH/posts/7`] },
    ]);
    expect(r.context).toMatchObject({
      route: 'PUT,PATCH /posts/:id',
      permission: 'write:posts:7',
      grant: 'write:posts:*',
    });
  });

  it('lists every route of the principal in principal mode and denies the current one explicitly when denied', async () => {
    const r = (await handler({ AUTHORIZER_MODE: 'principal' })(
      tokenEvent('DELETE', '/posts/7', await token('bob')),
    )) as IamResponse;
    const [allow, deny] = r.policyDocument.Statement as { Effect: string; Resource: string[] }[];
    expect(allow?.Effect).toBe('Allow');
    expect(allow?.Resource).toContain(`${PREFIX}PUT/posts/?*`);
    expect(allow?.Resource).not.toContain(`${PREFIX}DELETE/posts/?*`);
    expect(deny?.Resource).toContain(`${PREFIX}DELETE/posts/7`);
    // The answer is reused for bob's later requests: only principal-level facts, never the
    // first request's reason (explicit_deny) or status (403).
    expect(r.context).toMatchObject({
      mode: 'principal',
      reason: 'principal_policy',
      subject: 'bob',
    });
    expect(r.context.status).toBeUndefined();
    expect(r.context.route).toBeUndefined();
  });

  it('passes a configured claim as usageIdentifierKey', async () => {
    const r = (await handler({ AUTHORIZER_MODE: 'route', USAGE_IDENTIFIER_CLAIM: 'plan_key' })(
      restRequestEvent('GET', '/posts/1', await token('alice', { plan_key: 'key-123' })),
    )) as IamResponse;
    expect(r.usageIdentifierKey).toBe('key-123');
  });

  it('fails IP conditions closed on TOKEN events', async () => {
    const r = (await handler({ AUTHORIZER_MODE: 'route' })(
      tokenEvent('GET', '/stats', await token('alice')),
    )) as IamResponse;
    expect(r.policyDocument.Statement[0]?.Effect).toBe('Deny');
  });
});

describe('HTTP API simple responses', () => {
  it('answers isAuthorized with the decision and a flat context', async () => {
    const r = (await handler()(
      httpEvent('GET', '/stats', await token('alice'), '127.0.0.1'),
    )) as SimpleResponse;
    expect(r.isAuthorized).toBe(true);
    for (const v of Object.values(r.context))
      expect(['string', 'number', 'boolean']).toContain(typeof v);
  });

  it('answers isAuthorized false (API Gateway 403) for a bad token', async () => {
    const r = (await handler()(httpEvent('GET', '/posts/1', 'not-a-jwt'))) as SimpleResponse;
    expect(r).toMatchObject({
      isAuthorized: false,
      context: { reason: 'token_malformed', status: 401 },
    });
  });
});

describe('a decoded ? or # in the path is malformed, never cut off', () => {
  // HTTP APIs deliver rawPath decoded: `/health%3F/../ops/shutdown` arrives as below, and the
  // core would judge it as the public /health.
  it('denies an HTTP API rawPath holding ?', async () => {
    const event = httpEvent('GET', '/health?/../ops/shutdown', undefined);
    const r = (await handler()(event)) as SimpleResponse;
    expect(r).toMatchObject({
      isAuthorized: false,
      context: { reason: 'malformed_request', status: 400 },
    });
  });

  it('denies an HTTP API rawPath holding #, also with IAM answers', async () => {
    const event = httpEvent('GET', '/posts/1#x', await token('alice'));
    const r = (await handler({ HTTP_API_RESPONSE: 'iam' })(event)) as IamResponse;
    expect(r.policyDocument.Statement[0]?.Effect).toBe('Deny');
    expect(r.context).toMatchObject({ reason: 'malformed_request', status: 400 });
  });

  it('denies a REST REQUEST path or a TOKEN method ARN holding ? or #', async () => {
    const alice = await token('alice');
    const request = (await handler({ AUTHORIZER_MODE: 'route' })(
      restRequestEvent('GET', '/health?/../ops/shutdown', alice),
    )) as IamResponse;
    expect(request.policyDocument.Statement[0]?.Effect).toBe('Deny');
    const arn = `${PREFIX}GET/posts/1#x`;
    const principal = (await handler({ AUTHORIZER_MODE: 'principal' })({
      type: 'TOKEN',
      authorizationToken: `Bearer ${alice}`,
      methodArn: arn,
    })) as IamResponse;
    const deny = principal.policyDocument.Statement.find((s) => s.Effect === 'Deny') as {
      Resource: string[];
    };
    expect(deny.Resource).toContain(arn);
  });
});

describe('failures never allow', () => {
  it('throws an authorizer failure (500) when the store does not answer', async () => {
    const server = createServer(() => {});
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const { port } = server.address() as AddressInfo;
    const client = createDynamoDBClient({
      endpoint: `http://127.0.0.1:${port}`,
      region: 'eu-west-1',
      credentials: { accessKeyId: 'l', secretAccessKey: 'l' },
    });
    const logs: Record<string, unknown>[] = [];
    const h = createLambdaHandler({
      policy: DEMO_POLICY,
      env: {
        TABLE_NAME: 'permissions',
        GATEHOUSE_DEV_SECRET: SECRET,
        AUTHORIZER_MODE: 'principal',
        // The store alone: with the feed on, the (same) table's feed read fails first and the
        // container, never having read it, refuses with revocation_unavailable.
        REVOCATION_FEED: 'off',
      },
      client,
      log: (e) => logs.push(e),
    });
    const error = await h(tokenEvent('GET', '/posts/1', await token('alice'))).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(error?.message).not.toBe('Unauthorized');
    expect(error?.name).toBe('AuthorizerFailure');
    expect(logs.at(-1)).toMatchObject({ level: 'error', reason: 'store_unavailable' });
    server.closeAllConnections();
    server.close();
    client.destroy();
  });

  it.each([
    [{ AUTHORIZER_MODE: 'sometimes' }, 'AUTHORIZER_MODE'],
    [{ TABLE_NAME: '' }, 'TABLE_NAME'],
    [{ GATEHOUSE_DEV_SECRET: '' }, 'secretEnv'],
    [{ AUTHORIZER_TTL_SECONDS: 'soon' }, 'AUTHORIZER_TTL_SECONDS'],
    [{ HTTP_API_RESPONSE: 'xml' }, 'HTTP_API_RESPONSE'],
    [{ GATEHOUSE_ISSUER: 'https://id.example/' }, 'GATEHOUSE_AUDIENCE'],
    [{ GATEHOUSE_POLICY: '{nope' }, 'GATEHOUSE_POLICY'],
  ])('refuses every invocation after one log line naming the variable (%o)', async (env, name) => {
    const logs: Record<string, unknown>[] = [];
    const h = handler(env as Record<string, string>, logs);
    expect(logs).toHaveLength(1);
    expect(String(logs[0]?.msg)).toContain(name);
    await expect(h(tokenEvent('GET', '/health', undefined))).rejects.toThrow(/configuration/);
  });

  it('uses a real identity provider from GATEHOUSE_ISSUER, GATEHOUSE_AUDIENCE, GATEHOUSE_JWKS_URL', () => {
    const h = handler({
      GATEHOUSE_ISSUER: 'https://id.example/',
      GATEHOUSE_AUDIENCE: 'https://api.example',
      GATEHOUSE_JWKS_URL: 'https://id.example/.well-known/jwks.json',
      GATEHOUSE_DEV_SECRET: '',
    });
    expect(h.configError).toBeUndefined();
  });
});

/** A demo-issuer token with the given `typ` header (undefined: none). */
async function typedToken(typ: string | undefined): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new jose.SignJWT({})
    .setProtectedHeader({ alg: 'HS256', kid: 'dev', ...(typ !== undefined && { typ }) })
    .setIssuer(DEMO_ISSUER)
    .setAudience(DEMO_AUDIENCE)
    .setSubject('alice')
    .setIssuedAt(now)
    .setExpirationTime(now + 600)
    .sign(new TextEncoder().encode(SECRET));
}

/** Whether the authorizer lets the token through to GET /me (authenticated only). */
async function accepted(h: ReturnType<typeof handler>, typ: string | undefined): Promise<boolean> {
  expect(h.configError).toBeUndefined();
  return h(tokenEvent('GET', '/me', await typedToken(typ))).then(
    () => true,
    (e: Error) => {
      expect(e.message).toBe('Unauthorized');
      return false;
    },
  );
}

describe('issuer settings from the environment (typ, JWKS timings)', () => {
  it('GATEHOUSE_TYPES=at+jwt is the RFC 9068 recipe: at+jwt only, a missing typ refused', async () => {
    const h = handler({ GATEHOUSE_TYPES: 'at+jwt' });
    expect(await accepted(h, 'at+jwt')).toBe(true);
    expect(await accepted(h, 'application/at+jwt')).toBe(true);
    expect(await accepted(h, 'JWT')).toBe(false);
    expect(await accepted(h, undefined)).toBe(false);
  });

  it('GATEHOUSE_REQUIRE_TYPE decides a missing typ either way, whatever the list', async () => {
    expect(await accepted(handler({}), undefined)).toBe(true);
    expect(await accepted(handler({ GATEHOUSE_REQUIRE_TYPE: 'true' }), undefined)).toBe(false);
    expect(await accepted(handler({ GATEHOUSE_REQUIRE_TYPE: 'true' }), 'JWT')).toBe(true);
    const optional = handler({ GATEHOUSE_TYPES: 'at+jwt', GATEHOUSE_REQUIRE_TYPE: 'false' });
    expect(await accepted(optional, undefined)).toBe(true);
    expect(await accepted(optional, 'JWT')).toBe(false);
  });

  it('keeps a list of several types, spaces around commas allowed', async () => {
    const h = handler({ GATEHOUSE_TYPES: 'at+jwt , JWT' });
    expect(await accepted(h, 'JWT')).toBe(true);
    expect(await accepted(h, 'at+jwt')).toBe(true);
    expect(await accepted(h, 'dpop+jwt')).toBe(false);
    // JWT listed: a missing typ counts as JWT.
    expect(await accepted(h, undefined)).toBe(true);
  });

  it.each([
    [{ GATEHOUSE_TYPES: 'at jwt' }, 'GATEHOUSE_TYPES'],
    [{ GATEHOUSE_TYPES: 'at+jwt,' }, 'GATEHOUSE_TYPES'],
    [{ GATEHOUSE_TYPES: 'application/x/at+jwt' }, 'GATEHOUSE_TYPES'],
    [{ GATEHOUSE_REQUIRE_TYPE: 'yes' }, 'GATEHOUSE_REQUIRE_TYPE'],
    [{ GATEHOUSE_REQUIRE_TYPE: 'TRUE' }, 'GATEHOUSE_REQUIRE_TYPE'],
    [{ GATEHOUSE_JWKS_CACHE_TTL_SECONDS: '0' }, 'GATEHOUSE_JWKS_CACHE_TTL_SECONDS'],
    [{ GATEHOUSE_JWKS_CACHE_TTL_SECONDS: '86401' }, 'GATEHOUSE_JWKS_CACHE_TTL_SECONDS'],
    [{ GATEHOUSE_JWKS_CACHE_TTL_SECONDS: '1.5' }, 'GATEHOUSE_JWKS_CACHE_TTL_SECONDS'],
    [{ GATEHOUSE_JWKS_COOLDOWN_SECONDS: '3601' }, 'GATEHOUSE_JWKS_COOLDOWN_SECONDS'],
    [{ GATEHOUSE_JWKS_TIMEOUT_MS: '99' }, 'GATEHOUSE_JWKS_TIMEOUT_MS'],
    [{ GATEHOUSE_JWKS_TIMEOUT_MS: '3s' }, 'GATEHOUSE_JWKS_TIMEOUT_MS'],
    [{ GATEHOUSE_JWKS_MAX_STALE_SECONDS: '-1' }, 'GATEHOUSE_JWKS_MAX_STALE_SECONDS'],
    // The demo issuer's key is a secret: a JWKS timing would silently do nothing.
    [{ GATEHOUSE_JWKS_TIMEOUT_MS: '500' }, 'GATEHOUSE_JWKS_TIMEOUT_MS'],
  ])('refuses to start on a bad issuer variable, naming it (%o)', async (env, name) => {
    const logs: Record<string, unknown>[] = [];
    const h = handler(env as Record<string, string>, logs);
    expect(logs).toHaveLength(1);
    expect(String(logs[0]?.msg)).toContain(name);
    await expect(h(tokenEvent('GET', '/me', await typedToken('JWT')))).rejects.toThrow(
      /configuration/,
    );
  });

  describe('JWKS timings on a GATEHOUSE_ISSUER identity provider', () => {
    let server: Server;
    let jwksUrl: string;
    let fetches = 0;
    let hang = false;
    let privateKey: jose.CryptoKey;
    beforeAll(async () => {
      const pair = await jose.generateKeyPair('ES256');
      privateKey = pair.privateKey;
      const jwk = { ...(await jose.exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256' };
      server = createServer((_req, res) => {
        fetches++;
        if (hang) return; // never answers: only the fetch timeout ends the wait
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ keys: [jwk] }));
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
      jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
    });
    afterAll(() => {
      server.closeAllConnections();
      server.close();
    });

    function idpHandler(env: Record<string, string>, clock: { now: number }) {
      return createLambdaHandler({
        policy: DEMO_POLICY,
        env: {
          TABLE_NAME: table,
          GATEHOUSE_ISSUER: 'https://id.example/',
          GATEHOUSE_AUDIENCE: 'https://api.example',
          GATEHOUSE_JWKS_URL: jwksUrl,
          GATEHOUSE_ALGORITHMS: 'ES256',
          ...env,
        },
        client: local.client(),
        now: () => clock.now,
        log: () => {},
      });
    }
    const idpToken = (clock: { now: number }) =>
      new jose.SignJWT({ jti: randomUUID() })
        .setProtectedHeader({ alg: 'ES256', kid: 'k1', typ: 'at+jwt' })
        .setIssuer('https://id.example/')
        .setAudience('https://api.example')
        .setSubject('alice')
        .setIssuedAt(Math.floor(clock.now / 1000))
        .setExpirationTime(Math.floor(clock.now / 1000) + 3600)
        .sign(privateKey);
    /** JWKS fetches made by one request at `clock`, and whether it was allowed. */
    async function fetchesFor(h: ReturnType<typeof idpHandler>, clock: { now: number }) {
      const before = fetches;
      const ok = await h(tokenEvent('GET', '/me', await idpToken(clock))).then(
        () => true,
        () => false,
      );
      return { fetched: fetches - before, ok };
    }

    it('GATEHOUSE_JWKS_CACHE_TTL_SECONDS sets when the keys are fetched again', async () => {
      hang = false;
      const clock = { now: Date.now() };
      const short = idpHandler({ GATEHOUSE_JWKS_CACHE_TTL_SECONDS: '60' }, clock);
      const usual = idpHandler({}, clock);
      expect(await fetchesFor(short, clock)).toEqual({ fetched: 1, ok: true });
      expect(await fetchesFor(usual, clock)).toEqual({ fetched: 1, ok: true });
      clock.now += 61_000;
      expect(await fetchesFor(short, clock)).toEqual({ fetched: 1, ok: true });
      expect(await fetchesFor(usual, clock)).toEqual({ fetched: 0, ok: true });
    });

    it('GATEHOUSE_JWKS_COOLDOWN_SECONDS holds a stale refetch back', async () => {
      hang = false;
      const clock = { now: Date.now() };
      const h = idpHandler(
        { GATEHOUSE_JWKS_CACHE_TTL_SECONDS: '60', GATEHOUSE_JWKS_COOLDOWN_SECONDS: '120' },
        clock,
      );
      expect(await fetchesFor(h, clock)).toEqual({ fetched: 1, ok: true });
      clock.now += 61_000;
      expect(await fetchesFor(h, clock)).toEqual({ fetched: 0, ok: true });
      clock.now += 60_000;
      expect(await fetchesFor(h, clock)).toEqual({ fetched: 1, ok: true });
    });

    it('GATEHOUSE_JWKS_TIMEOUT_MS bounds a JWKS fetch that never answers', async () => {
      hang = true;
      const clock = { now: Date.now() };
      const h = idpHandler({ GATEHOUSE_JWKS_TIMEOUT_MS: '100' }, clock);
      const started = performance.now();
      const { ok } = await fetchesFor(h, clock);
      const took = performance.now() - started;
      hang = false;
      expect(ok).toBe(false);
      // The default timeout is 3000 ms; a wide margin for a loaded machine.
      expect(took).toBeLessThan(2000);
    });

    it('GATEHOUSE_JWKS_MAX_STALE_SECONDS ends serving old keys while the endpoint fails', async () => {
      hang = false;
      const clock = { now: Date.now() };
      const env = {
        GATEHOUSE_JWKS_CACHE_TTL_SECONDS: '60',
        GATEHOUSE_JWKS_MAX_STALE_SECONDS: '120',
        GATEHOUSE_JWKS_TIMEOUT_MS: '100',
      };
      const bounded = idpHandler(env, clock);
      const usual = idpHandler({ ...env, GATEHOUSE_JWKS_MAX_STALE_SECONDS: '' }, clock);
      expect((await fetchesFor(bounded, clock)).ok).toBe(true);
      expect((await fetchesFor(usual, clock)).ok).toBe(true);
      hang = true;
      clock.now += 121_000;
      const [b, u] = [await fetchesFor(bounded, clock), await fetchesFor(usual, clock)];
      hang = false;
      expect(b.ok).toBe(false);
      expect(u.ok).toBe(true);
    });
  });
});

/** Serialised size in bytes, as API Gateway counts the context. */
const jsonBytes = (value: unknown) => new TextEncoder().encode(JSON.stringify(value)).length;

describe('context budget', () => {
  it('keeps the context flat and within its budget even for huge scopes', () => {
    const decision = {
      allow: true,
      status: 200,
      reason: 'allowed',
      route: 'GET /x',
      explain: '',
      matched: [{ required: 'a:b', grant: 'a:*', via: 'direct' }],
      principal: {
        issuer: 'i',
        issuerKind: 'external',
        subject: 's'.repeat(5000),
        tenant: 't'.repeat(5000),
        scopes: Array.from({ length: 2000 }, (_, i) => `scope${i}`),
        claims: {},
        actors: [],
        expiresAt: 0,
      },
    } as unknown as Decision;
    const context = buildContext(decision, 'route');
    expect(JSON.stringify(context).length).toBeLessThanOrEqual(CONTEXT_BUDGET_BYTES);
    expect(context.subject).toHaveLength(256);
  });

  it('measures with a bound that never undercounts the serialised context', () => {
    // Control characters, quotes, backslashes and lone surrogates expand most when escaped.
    const text = fc.string({
      unit: fc.constantFrom('a', '"', '\\', '\u0001', '\n', 'é', '\ud800', '\udc00', '😀'),
      maxLength: 300,
    });
    const value: fc.Arbitrary<ContextValue> = fc.oneof(
      text,
      fc.double(),
      fc.integer(),
      fc.boolean(),
    );
    fc.assert(
      fc.property(
        fc.dictionary(fc.constantFrom('reason', 'mode', 'subject', 'scopes', 'grant'), value),
        (context) => {
          expect(jsonLengthBound(context)).toBeGreaterThanOrEqual(jsonBytes(context));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('keeps subject and actor within their share however they escape or encode', () => {
    // Never dropped, so cut by serialised bytes: control characters escape to 6 bytes each,
    // CJK takes 3 in UTF-8, an emoji 4, a lone surrogate escapes to 6.
    const unit = fc.constantFrom('a', '"', '\\', '\u0001', '\n', 'é', '中', '\ud800', '😀');
    fc.assert(
      fc.property(
        fc.string({ unit, minLength: 1, maxLength: 600 }),
        fc.string({ unit, minLength: 1, maxLength: 600 }),
        fc.string({ unit, maxLength: 600 }),
        (subject, actor, grant) => {
          const decision = {
            allow: true,
            status: 200,
            reason: 'allowed',
            route: 'GET /x',
            explain: '',
            matched: [{ required: 'a:b', grant, via: 'direct' }],
            principal: {
              issuer: 'i',
              issuerKind: 'self',
              subject,
              tenant: subject,
              scopes: [actor, grant],
              claims: { jti: actor },
              actors: [{ subject: actor }],
              expiresAt: 0,
            },
          } as unknown as Decision;
          for (const mode of ['route', 'principal'] as const) {
            const context = buildContext(decision, mode);
            expect(jsonBytes(context)).toBeLessThanOrEqual(CONTEXT_BUDGET_BYTES);
            expect(jsonBytes(context.subject)).toBeLessThanOrEqual(CONTEXT_VALUE_MAX + 2);
            expect(subject.startsWith(String(context.subject))).toBe(true);
            expect(String(context.subject).length).toBeGreaterThan(0);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('still drops keys when escaping pushes a context over its budget', () => {
    // Each escaped value is cut to its 256-byte share; four of them pass the 1,024-byte budget.
    const decision = {
      allow: true,
      status: 200,
      reason: 'allowed',
      route: '\u0001'.repeat(256),
      explain: '',
      matched: [{ required: 'a:b', grant: '\u0001'.repeat(256), via: 'direct' }],
      principal: {
        issuer: 'i',
        issuerKind: 'external',
        subject: 'alice',
        tenant: '\u0001'.repeat(256),
        scopes: ['\u0001'.repeat(256)],
        claims: {},
        actors: [],
        expiresAt: 0,
      },
    } as unknown as Decision;
    const context = buildContext(decision, 'route');
    expect(jsonBytes(context)).toBeLessThanOrEqual(CONTEXT_BUDGET_BYTES);
    expect(context.subject).toBe('alice');
    expect(context.grant).toBeUndefined();
    expect(context.permission).toBe('a:b');
  });
});
