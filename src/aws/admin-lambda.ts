/**
 * The admin API as a Lambda function behind API Gateway (optional; template.yaml's
 * `EnableAdminApi`). Configuration comes from the same environment variables as the authorizer
 * (apigateway-lambda.ts), validated once at cold start: a mistake is logged once naming the
 * variable, and every invocation then answers 503 `configuration_error`.
 *
 * The function verifies the caller's token and checks `admin:permissions` itself, even behind
 * the API Gateway authorizer: defence in depth, and the authorizer cannot see the `?tenant=` a
 * tenant-scoped permission depends on.
 *
 * Events: API Gateway HTTP API (payload 2.0 and 1.0) and REST API proxy integrations, in the
 * documented shapes. HTTP APIs hand the function the path already percent-decoded (REST APIs do
 * not), so on an HTTP API path segments are taken as delivered, never decoded a second time.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type {
  APIGatewayProxyEvent,
  APIGatewayProxyEventV2,
  APIGatewayProxyResult,
  APIGatewayProxyStructuredResultV2,
} from 'aws-lambda';
import { FeedRecordingStore } from '../admin/feed-store.ts';
import { ConfigError } from '../errors.ts';
import {
  type AdminApi,
  type AdminRequest,
  adminProblem,
  createAdminApi,
  DEFAULT_ADMIN_BASE_PATH,
  pathSegments,
  underBasePath,
} from '../http/admin-api.ts';
import { consoleJsonWriter, decisionLoggerFromEnv } from '../logging/decision-log.ts';
import { Gatehouse } from '../policy/decide.ts';
import { compilePolicy } from '../policy/policy.ts';
import { TrackedFeed } from '../revocation/feed.ts';
import { DynamoDBAdminStore } from './dynamodb-admin-store.ts';
import { createDynamoDBClient, DynamoDBStore } from './dynamodb-store.ts';
import { ENV, type Env, effectivePolicy, revocationFollower } from './lambda.ts';
import { coldStartHandler } from './lambda-shell.ts';
import { DynamoDBFeed } from './revocation-feed.ts';

/** The variables the admin function reads besides the authorizer's (ENV in apigateway-lambda.ts). */
export const ADMIN_ENV = {
  /** Days audit records are kept, 1 to 3650 (default 90). */
  auditRetentionDays: 'AUDIT_RETENTION_DAYS',
  /** Path the resources live under (default /v1/admin). */
  basePath: 'ADMIN_BASE_PATH',
} as const;

export type AdminLambdaEvent = APIGatewayProxyEventV2 | APIGatewayProxyEvent;
export type AdminLambdaResult = APIGatewayProxyStructuredResultV2 | APIGatewayProxyResult;

export interface AdminLambdaOptions {
  /** The bundled policy document (parsed JSON); `GATEHOUSE_POLICY` replaces it. */
  readonly policy: unknown;
  readonly env: Env;
  /** The DynamoDB client; default one built by createDynamoDBClient (per container). */
  readonly client?: DynamoDBClient;
  readonly fetch?: typeof fetch;
  readonly now?: () => number;
  readonly log?: (entry: Record<string, unknown>) => void;
}

export interface AdminLambdaHandler {
  (event: AdminLambdaEvent): Promise<AdminLambdaResult>;
  /** The configuration problem, when the handler refuses every invocation. */
  readonly configError: Error | undefined;
  readonly api: AdminApi | undefined;
  readonly gatehouse: Gatehouse | undefined;
}

/** Builds the admin API from the environment. Throws ConfigError naming the variable. */
export function buildAdminApi(options: AdminLambdaOptions): {
  api: AdminApi;
  gatehouse: Gatehouse;
} {
  const env = options.env;
  const policy = compilePolicy(effectivePolicy(options.policy, env), { env });
  const tableName = env[ENV.tableName];
  // Always needed: changes and the audit trail live in the table, whatever the policy reads.
  if (!tableName) throw new ConfigError(ENV.tableName, 'expected the DynamoDB table name');
  const endpoint = env[ENV.endpoint];
  const client = options.client ?? createDynamoDBClient(endpoint ? { endpoint } : {});
  // The feed in the table (issue 14): changes are recorded after the store has them, and
  // sign-outs and token revocations go there. REVOCATION_FEED=off leaves it out.
  const feedSetting = env[ENV.revocationFeed] ?? 'on';
  if (feedSetting !== 'on' && feedSetting !== 'off') {
    throw new ConfigError(ENV.revocationFeed, 'expected on or off');
  }
  const feed =
    feedSetting === 'on'
      ? new TrackedFeed(
          new DynamoDBFeed({ client, tableName, ...(options.now && { now: options.now }) }),
        )
      : undefined;
  // Callers are checked like any request: a signed-out or revoked admin is refused within a second.
  const follower =
    policy.permissions.source === 'store'
      ? revocationFollower(env, client, tableName, policy, options)
      : undefined;
  const gatehouse = new Gatehouse({
    policy,
    ...(policy.permissions.source === 'store' && {
      store: new DynamoDBStore({
        client,
        tableName,
        ...(options.now && { now: options.now }),
        ...(follower !== undefined && { consistentFor: (key: string) => follower.isRecent(key) }),
      }),
    }),
    ...(follower !== undefined && { revocation: follower }),
    ...(options.fetch && { fetch: options.fetch }),
    ...(options.now && { now: options.now }),
  });

  const days = env[ADMIN_ENV.auditRetentionDays];
  if (days !== undefined && days !== '' && !/^\d{1,4}$/.test(days)) {
    throw new ConfigError(ADMIN_ENV.auditRetentionDays, 'expected whole days from 1 to 3650');
  }
  const basePath = env[ADMIN_ENV.basePath] || DEFAULT_ADMIN_BASE_PATH;
  const decisionLog = decisionLoggerFromEnv((name) => env[name], {
    write: options.log ?? consoleJsonWriter,
    ...(options.now && { now: options.now }),
  });
  let api: AdminApi;
  try {
    api = createAdminApi({
      gatehouse,
      store:
        feed === undefined
          ? new DynamoDBAdminStore({ client, tableName })
          : new FeedRecordingStore(new DynamoDBAdminStore({ client, tableName }), feed),
      ...(feed !== undefined && { feed }),
      basePath,
      ...(days !== undefined && days !== '' && { auditRetentionDays: Number(days) }),
      ...(options.now && { now: options.now }),
      ...(options.log && { log: options.log }),
      decisionLog,
    });
  } catch (error) {
    if (error instanceof ConfigError && error.field === 'basePath') {
      throw new ConfigError(ADMIN_ENV.basePath, error.expected, { cause: error });
    }
    throw error;
  }
  return { api, gatehouse };
}

/** HTTP API `rawPath` starts with the stage name unless the stage is `$default`. */
function stripStage(path: string, stage: string | undefined): string {
  if (!stage || stage === '$default') return path;
  const prefix = `/${stage}`;
  if (path === prefix) return '/';
  return path.startsWith(`${prefix}/`) ? path.slice(prefix.length) : path;
}

function isV2(event: AdminLambdaEvent): event is APIGatewayProxyEventV2 {
  return (event as { version?: unknown }).version === '2.0';
}

function headersOf(
  single: Record<string, string | undefined> | null | undefined,
  multi: Record<string, string[] | undefined> | null | undefined,
): Headers {
  const headers = new Headers();
  if (multi) {
    for (const [name, values] of Object.entries(multi)) {
      for (const value of values ?? []) headers.append(name, value);
    }
  }
  if (single) {
    for (const [name, value] of Object.entries(single)) {
      if (value !== undefined && !headers.has(name)) headers.set(name, value);
    }
  }
  return headers;
}

/** The event's body as a reader with a byte cap, like a Fetch API body. */
function bodyReader(body: string | null | undefined, base64: boolean) {
  return async (max: number): Promise<string | null> => {
    if (body === null || body === undefined) return '';
    let bytes: Uint8Array;
    if (base64) {
      // Four characters carry three bytes: refuse before decoding anything large.
      if (Math.floor((body.length * 3) / 4) > max + 3) return null;
      const binary = atob(body);
      bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    } else {
      bytes = new TextEncoder().encode(body);
    }
    if (bytes.byteLength > max) return null;
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  };
}

/**
 * The request inside an API Gateway event, or null when the path is not under `basePath`.
 * REST proxy events carry the path percent-encoded, as the client sent it; HTTP API events
 * (payload 2.0 `rawPath`, 1.0 `path`) carry it decoded, so its segments are used as they are.
 */
export function adminRequestFromEvent(
  event: AdminLambdaEvent,
  basePath: string,
): AdminRequest | null {
  let method: string;
  let path: string;
  let decoded: boolean;
  let query: URLSearchParams;
  let headers: Headers;
  let ip: string | undefined;
  if (isV2(event)) {
    method = event.requestContext.http.method;
    path = stripStage(event.rawPath, event.requestContext.stage);
    decoded = true;
    // rawQueryString stays percent-encoded (the parsed queryStringParameters are joined by ',').
    query = new URLSearchParams(event.rawQueryString ?? '');
    headers = headersOf(event.headers, undefined);
    ip = event.requestContext.http.sourceIp;
  } else {
    const httpApi = (event as { version?: unknown }).version === '1.0';
    method = event.httpMethod;
    path = httpApi ? stripStage(event.path, event.requestContext.stage) : event.path;
    decoded = httpApi;
    query = new URLSearchParams();
    const multi = event.multiValueQueryStringParameters;
    if (multi) {
      for (const [name, values] of Object.entries(multi)) {
        for (const value of values ?? []) query.append(name, value);
      }
    } else if (event.queryStringParameters) {
      for (const [name, value] of Object.entries(event.queryStringParameters)) {
        if (value !== undefined) query.append(name, value);
      }
    }
    headers = headersOf(event.headers, event.multiValueHeaders);
    ip = event.requestContext.identity?.sourceIp;
  }
  if (typeof method !== 'string' || typeof path !== 'string') return null;
  if (!underBasePath(path, basePath)) return null;
  let segments: string[] | null;
  if (decoded) {
    const rest = path.slice(basePath.length);
    segments = rest === '' || rest === '/' ? [] : rest.slice(1).split('/');
  } else {
    segments = pathSegments(path, basePath);
  }
  return {
    method,
    segments,
    query,
    headers,
    body: bodyReader(event.body, event.isBase64Encoded === true),
    context: { ip: ip || undefined, country: undefined },
  };
}

async function toResult(response: Response): Promise<AdminLambdaResult> {
  const headers: Record<string, string> = {};
  response.headers.forEach((value, name) => {
    headers[name] = value;
  });
  return {
    statusCode: response.status,
    headers,
    body: await response.text(),
    isBase64Encoded: false,
  };
}

/**
 * The Lambda handler. Configuration is read once; if it is wrong, one line names the variable
 * and every invocation answers 503 (problem+json, `configuration_error`).
 */
export function createAdminLambdaHandler(options: AdminLambdaOptions): AdminLambdaHandler {
  const log = options.log ?? consoleJsonWriter;
  return coldStartHandler({
    log,
    label: 'gatehouse admin configuration error',
    build: () => buildAdminApi({ ...options, log }),
    serve: (built, event: AdminLambdaEvent) => serveEvent(built.api, event),
    refuse: (): Promise<AdminLambdaResult> =>
      toResult(
        adminProblem(503, 'configuration_error', 'The admin API is not configured correctly.', {
          headers: { 'retry-after': '30' },
        }),
      ),
    expose: (built) => ({ api: built?.api, gatehouse: built?.gatehouse }),
  });
}

/** One event: taken apart into an admin request (404 when it is not one), served, put back. */
async function serveEvent(api: AdminApi, event: AdminLambdaEvent): Promise<AdminLambdaResult> {
  let request: AdminRequest | null;
  try {
    request = adminRequestFromEvent(event, api.basePath);
  } catch {
    request = null;
  }
  if (request === null) {
    return toResult(adminProblem(404, 'not_found', 'No such admin resource.'));
  }
  return toResult(await api.handle(request));
}
