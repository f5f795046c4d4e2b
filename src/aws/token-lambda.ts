/**
 * Gatehouse's token endpoint (RFC 8693) and JWKS document as a Lambda function behind API
 * Gateway (template.yaml's TokenFunction, deployed when a delegation key secret is given):
 * `POST <prefix>/v1/token` and `GET <prefix>/jwks.json`, the same paths as on the Worker, and the
 * signed-event endpoints `POST <prefix>/v1/events` and `/v1/events/verify` (issue 13,
 * src/http/events.ts), which sign with the same keys.
 * Configuration is the authorizer's (lambda.ts), validated once at cold start; the key set comes
 * from GATEHOUSE_DELEGATION_KEYS, which the template fills from Secrets Manager.
 *
 * Events: API Gateway HTTP API (payload 2.0 and 1.0) and REST API proxy integrations, in the
 * documented shapes.
 */
import type {
  APIGatewayProxyEvent,
  APIGatewayProxyEventV2,
  APIGatewayProxyResult,
  APIGatewayProxyStructuredResultV2,
} from 'aws-lambda';
import { ConfigError } from '../errors.ts';
import { answerEventSign, answerEventVerify, MAX_EVENT_BODY_BYTES } from '../http/events.ts';
import {
  answerJwks,
  answerTokenRequest,
  type EndpointAnswer,
  MAX_TOKEN_BODY_BYTES,
} from '../http/token-exchange.ts';
import { consoleJsonWriter } from '../logging/decision-log.ts';
import type { Gatehouse } from '../policy/decide.ts';
import { buildAuthorizer, type LambdaHandlerOptions } from './lambda.ts';
import { coldStartHandler } from './lambda-shell.ts';

/** The variable naming the path prefix (default `/.gatehouse`), as on the Worker. */
export const TOKEN_ENV = { prefix: 'GATEHOUSE_PREFIX' } as const;

export type TokenLambdaEvent = APIGatewayProxyEventV2 | APIGatewayProxyEvent;
export type TokenLambdaResult = APIGatewayProxyStructuredResultV2 | APIGatewayProxyResult;

export interface TokenLambdaHandler {
  (event: TokenLambdaEvent): Promise<TokenLambdaResult>;
  readonly configError: Error | undefined;
  readonly gatehouse: Gatehouse | undefined;
}

interface Built {
  readonly gatehouse: Gatehouse;
  readonly prefix: string;
}

function readPrefix(value: string | undefined): string {
  const text = value === undefined || value === '' ? '/.gatehouse' : value;
  if (!/^(\/[A-Za-z0-9._~-]+)+$/.test(text) || /\/\.{1,2}(\/|$)/.test(text)) {
    throw new ConfigError(TOKEN_ENV.prefix, 'expected a path such as /.gatehouse');
  }
  return text;
}

function stripStage(path: string, stage: string | undefined): string {
  if (!stage || stage === '$default') return path;
  const prefix = `/${stage}`;
  if (path === prefix) return '/';
  return path.startsWith(`${prefix}/`) ? path.slice(prefix.length) : path;
}

function header(headers: Record<string, string | undefined> | null | undefined, name: string) {
  if (!headers) return null;
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() === name && value !== undefined) return value;
  }
  return null;
}

/** The body as UTF-8 text; null when larger than the cap; NOT_UTF8 when it is not UTF-8. */
function bodyText(
  body: string | null | undefined,
  base64: boolean,
  max = MAX_TOKEN_BODY_BYTES,
): string | null | typeof NOT_UTF8 {
  if (body === null || body === undefined) return '';
  if (base64 && Math.floor((body.length * 3) / 4) > max + 3) return null;
  const bytes = base64
    ? Uint8Array.from(atob(body), (c) => c.charCodeAt(0))
    : new TextEncoder().encode(body);
  if (bytes.byteLength > max) return null;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return NOT_UTF8;
  }
}

/** A body that does not decode: answered as the Worker answers it, not as "too large". */
const NOT_UTF8 = Symbol('not UTF-8');

/**
 * What an event endpoint gets for a body that is not UTF-8: JSON text must be UTF-8 (RFC 8259
 * §8.1), so it is answered as any body that is not JSON (400 invalid_request), not as too large.
 */
const NOT_JSON = '\uFFFD';

function result(answer: EndpointAnswer): TokenLambdaResult {
  return { statusCode: answer.status, headers: { ...answer.headers }, body: answer.body };
}

async function serve(
  built: Built,
  event: TokenLambdaEvent,
  log: (e: Record<string, unknown>) => void,
) {
  let method: string;
  let path: string;
  let ip: string | undefined;
  if ((event as { version?: unknown }).version === '2.0') {
    const v2 = event as APIGatewayProxyEventV2;
    method = v2.requestContext.http.method;
    path = stripStage(v2.rawPath, v2.requestContext.stage);
    ip = v2.requestContext.http.sourceIp;
  } else {
    const v1 = event as APIGatewayProxyEvent;
    method = v1.httpMethod;
    const httpApi = (event as { version?: unknown }).version === '1.0';
    path = httpApi ? stripStage(v1.path, v1.requestContext.stage) : v1.path;
    ip = v1.requestContext.identity?.sourceIp;
  }
  if (path === `${built.prefix}/v1/events` || path === `${built.prefix}/v1/events/verify`) {
    const eventBody = bodyText(event.body, event.isBase64Encoded === true, MAX_EVENT_BODY_BYTES);
    const input = {
      method,
      contentType: header(event.headers, 'content-type'),
      body: eventBody === NOT_UTF8 ? NOT_JSON : eventBody,
      authorization: header(event.headers, 'authorization'),
      // API Gateway's own view of the client, as the authorizer reads it; no country on AWS.
      ip,
    };
    return result(
      path.endsWith('/verify')
        ? await answerEventVerify(built.gatehouse, input)
        : await answerEventSign(built.gatehouse, input, {
            // The signed-event audit line goes where the exchange's does (the decision log).
            audit: (entry) => log({ ...entry }),
          }),
    );
  }
  if (path === `${built.prefix}/jwks.json`)
    return result(answerJwks(built.gatehouse, method.toUpperCase()));
  if (path !== `${built.prefix}/v1/token`) {
    return result({
      status: 404,
      headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
      body: JSON.stringify({ error: 'invalid_request', error_description: 'no such endpoint' }),
    });
  }
  const body = bodyText(event.body, event.isBase64Encoded === true);
  if (body === NOT_UTF8 && method.toUpperCase() === 'POST') {
    return result({
      status: 400,
      headers: { 'content-type': 'application/json;charset=UTF-8', 'cache-control': 'no-store' },
      body: JSON.stringify({
        error: 'invalid_request',
        error_description: 'the body is not UTF-8',
      }),
    });
  }
  const answer = await answerTokenRequest(
    built.gatehouse,
    {
      method,
      contentType: header(event.headers, 'content-type'),
      body: body === NOT_UTF8 ? null : body,
    },
    { audit: (entry) => log({ ...entry }) },
  );
  return result(answer);
}

/**
 * The Lambda handler. Configuration is read once; if it is wrong, one line names the variable
 * and every invocation answers 503 with an RFC 6749-shaped error.
 */
export function createTokenLambdaHandler(options: LambdaHandlerOptions): TokenLambdaHandler {
  const log = options.log ?? consoleJsonWriter;
  return coldStartHandler({
    log,
    label: 'gatehouse token endpoint configuration error',
    build: (): Built => ({
      gatehouse: buildAuthorizer({ ...options, log }).gatehouse,
      prefix: readPrefix(options.env[TOKEN_ENV.prefix]),
    }),
    serve: (built, event: TokenLambdaEvent) => serve(built, event, log),
    refuse: async (): Promise<TokenLambdaResult> =>
      result({
        status: 503,
        headers: {
          'content-type': 'application/json',
          'cache-control': 'no-store',
          'retry-after': '30',
        },
        body: JSON.stringify({
          error: 'temporarily_unavailable',
          error_description: 'not configured',
        }),
      }),
    expose: (built) => ({ gatehouse: built?.gatehouse }),
  });
}
