/**
 * Lambda wiring: configuration from environment variables, validated once at cold start, into a
 * Gatehouse with the DynamoDB store behind its cache and the authorizer. A bad configuration is
 * logged once, naming the variable, and every invocation then fails (API Gateway 500): never an
 * allow. docs/aws.md has the reference for every variable.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ConfigError } from '../errors.ts';
import {
  consoleJsonWriter,
  DECISION_LOG_ENV,
  decisionLoggerFromEnv,
} from '../logging/decision-log.ts';
import { Gatehouse } from '../policy/decide.ts';
import { applyIssuerEnv, ISSUER_ENV } from '../policy/issuer-env.ts';
import { type CompiledPolicy, compilePolicy } from '../policy/policy.ts';
import { RevocationFollower } from '../revocation/follower.ts';
import { ALGORITHM_NAMES } from '../token/index.ts';
import {
  type Authorizer,
  type AuthorizerEvent,
  AuthorizerFailure,
  type AuthorizerMode,
  type AuthorizerResponse,
  createAuthorizer,
  type HttpApiResponse,
} from './authorizer.ts';
import { createDynamoDBClient, DynamoDBStore } from './dynamodb-store.ts';
import { coldStartHandler } from './lambda-shell.ts';
import { DynamoDBFeedReader } from './revocation-feed.ts';

// Kept importable from here, where the admin Lambda first found it.
export { buildAtColdStart } from './lambda-shell.ts';

export type Env = Readonly<Record<string, string | undefined>>;

/** The environment variables the handler reads (template.yaml sets them). */
export const ENV = {
  tableName: 'TABLE_NAME',
  mode: 'AUTHORIZER_MODE',
  httpApiResponse: 'HTTP_API_RESPONSE',
  cacheTtl: 'AUTHORIZER_TTL_SECONDS',
  usageClaim: 'USAGE_IDENTIFIER_CLAIM',
  policy: 'GATEHOUSE_POLICY',
  issuer: 'GATEHOUSE_ISSUER',
  audience: 'GATEHOUSE_AUDIENCE',
  jwksUrl: 'GATEHOUSE_JWKS_URL',
  algorithms: 'GATEHOUSE_ALGORITHMS',
  tenantClaim: 'GATEHOUSE_TENANT_CLAIM',
  endpoint: 'DYNAMODB_ENDPOINT',
  revocationFeed: 'REVOCATION_FEED',
  decisionLog: DECISION_LOG_ENV.enabled,
  decisionLogAllowSampleRate: DECISION_LOG_ENV.allowSampleRate,
  /** typ allowlist, requireType and JWKS timings for every issuer (issuer-env.ts). */
  ...ISSUER_ENV,
} as const;

export interface LambdaHandlerOptions {
  /** The bundled policy document (parsed JSON); `GATEHOUSE_POLICY` replaces it. */
  readonly policy: unknown;
  readonly env: Env;
  /** The DynamoDB client; default one built by createDynamoDBClient (per container). */
  readonly client?: DynamoDBClient;
  readonly fetch?: typeof fetch;
  readonly now?: () => number;
  /** Where every log line goes, decision lines included; default one JSON string per line. */
  readonly log?: (entry: Record<string, unknown>) => void;
  /** Picks the sampled allows (default Math.random); injected by tests. */
  readonly random?: () => number;
}

export interface LambdaHandler {
  (event: AuthorizerEvent): Promise<AuthorizerResponse>;
  /** The configuration problem, when the handler refuses every invocation. */
  readonly configError: ConfigError | Error | undefined;
  readonly gatehouse: Gatehouse | undefined;
}

/** Algorithms a deployed issuer may use: asymmetric only, as its keys come from a JWKS URL. */
const ALGORITHMS = new Set<string>(ALGORITHM_NAMES.filter((name) => !name.startsWith('HS')));

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The policy document after environment overrides: `GATEHOUSE_POLICY` (inline JSON) replaces
 * the bundled one; `GATEHOUSE_ISSUER` replaces its issuers with one JWKS issuer (the SAM
 * parameters), `USAGE_IDENTIFIER_CLAIM` is kept on the principal, and the ISSUER_ENV variables
 * (typ allowlist, requireType, JWKS timings) then apply to whichever issuers result.
 */
export function effectivePolicy(bundled: unknown, env: Env): unknown {
  let doc: unknown = bundled;
  const inline = env[ENV.policy];
  if (inline !== undefined && inline !== '') {
    try {
      doc = JSON.parse(inline);
    } catch {
      throw new ConfigError(ENV.policy, 'expected a policy document as JSON');
    }
  }
  if (!isObject(doc)) throw new ConfigError('policy', 'expected a policy document object');
  const issuer = env[ENV.issuer];
  let issuers = doc.issuers;
  if (issuer !== undefined && issuer !== '') {
    const audience = env[ENV.audience];
    const jwksUri = env[ENV.jwksUrl];
    if (!audience)
      throw new ConfigError(ENV.audience, `expected the token audience when ${ENV.issuer} is set`);
    if (!jwksUri)
      throw new ConfigError(ENV.jwksUrl, `expected an https JWKS URL when ${ENV.issuer} is set`);
    const algorithms = (env[ENV.algorithms] ?? 'RS256')
      .split(',')
      .map((a) => a.trim())
      .filter(Boolean);
    if (algorithms.length === 0 || algorithms.some((a) => !ALGORITHMS.has(a))) {
      throw new ConfigError(
        ENV.algorithms,
        `expected a comma-separated list of ${[...ALGORITHMS].join(', ')}`,
      );
    }
    const tenantClaim = env[ENV.tenantClaim];
    issuers = [
      {
        issuer,
        audiences: audience
          .split(',')
          .map((a) => a.trim())
          .filter(Boolean),
        algorithms,
        keys: { jwksUri },
        ...(tenantClaim ? { tenantClaim } : {}),
      },
    ];
  }
  const usageClaim = env[ENV.usageClaim];
  if (usageClaim !== undefined && usageClaim !== '' && Array.isArray(issuers)) {
    issuers = issuers.map((i: unknown) =>
      isObject(i)
        ? {
            ...i,
            keepClaims: [
              ...new Set([...((i.keepClaims as string[] | undefined) ?? []), usageClaim]),
            ],
          }
        : i,
    );
  }
  return applyIssuerEnv({ ...doc, issuers }, (name) => env[name]);
}

/**
 * The container's follower of the revocation feed in the table (`REVOCATION_FEED`, default on).
 * Reads are awaited when due: a container is frozen between invocations, so a read left running
 * after the answer would only finish on the next one.
 */
export function revocationFollower(
  env: Env,
  client: DynamoDBClient,
  tableName: string,
  policy: CompiledPolicy,
  options: Pick<LambdaHandlerOptions, 'now' | 'log'>,
): RevocationFollower | undefined {
  const now = options.now;
  const setting = env[ENV.revocationFeed] ?? 'on';
  if (setting !== 'on' && setting !== 'off') {
    throw new ConfigError(ENV.revocationFeed, 'expected on or off');
  }
  if (setting === 'off') return undefined;
  const feed = new DynamoDBFeedReader({ client, tableName, ...(now && { now }) });
  return new RevocationFollower(feed, {
    ...policy.revocation,
    awaitReads: true,
    ...(now && { now }),
    ...(options.log && { log: options.log }),
  });
}

function intFrom(env: Env, name: string, fallback: number): number {
  const text = env[name];
  if (text === undefined || text === '') return fallback;
  if (!/^\d{1,5}$/.test(text)) throw new ConfigError(name, 'expected a whole number of seconds');
  return Number(text);
}

/** Builds the whole authorizer from the environment. Throws ConfigError naming the variable. */
export function buildAuthorizer(options: LambdaHandlerOptions): {
  authorizer: Authorizer;
  gatehouse: Gatehouse;
} {
  const env = options.env;
  const policy = compilePolicy(effectivePolicy(options.policy, env), { env });
  let store: DynamoDBStore | undefined;
  let follower: RevocationFollower | undefined;
  if (policy.permissions.source === 'store') {
    const tableName = env[ENV.tableName];
    if (!tableName) throw new ConfigError(ENV.tableName, 'expected the DynamoDB table name');
    const endpoint = env[ENV.endpoint];
    const client = options.client ?? createDynamoDBClient(endpoint ? { endpoint } : {});
    follower = revocationFollower(env, client, tableName, policy, options);
    store = new DynamoDBStore({
      client,
      tableName,
      ...(options.now && { now: options.now }),
      // A record the feed says changed lately is read strongly consistent, so the reload that
      // follows its eviction cannot meet a replica from before the change.
      ...(follower !== undefined && { consistentFor: (key: string) => follower!.isRecent(key) }),
    });
  }
  const gatehouse = new Gatehouse({
    policy,
    ...(store && { store }),
    ...(follower && { revocation: follower }),
    ...(options.fetch && { fetch: options.fetch }),
    ...(options.now && { now: options.now }),
  });
  const decisionLog = decisionLoggerFromEnv((name) => env[name], {
    write: options.log ?? consoleJsonWriter,
    ...(options.random && { random: options.random }),
    ...(options.now && { now: options.now }),
  });
  const mode = (env[ENV.mode] ?? 'route') as AuthorizerMode;
  const httpApiResponse = (env[ENV.httpApiResponse] ?? 'simple') as HttpApiResponse;
  const usageClaim = env[ENV.usageClaim];
  const authorizer = createAuthorizer({
    gatehouse,
    mode,
    httpApiResponse,
    cacheTtlSeconds: intFrom(env, ENV.cacheTtl, 300),
    ...(usageClaim ? { usageIdentifierClaim: usageClaim } : {}),
    ...(options.log && { log: options.log }),
    decisionLog,
    ...(options.now && { now: options.now }),
  });
  return { authorizer, gatehouse };
}

/**
 * The Lambda handler. Configuration is read once; if it is wrong, one line names the variable
 * and every invocation fails with an authorizer error (API Gateway 500).
 */
export function createLambdaHandler(options: LambdaHandlerOptions): LambdaHandler {
  const log = options.log ?? consoleJsonWriter;
  return coldStartHandler({
    log,
    label: 'gatehouse configuration error',
    build: () => buildAuthorizer({ ...options, log }),
    serve: (built, event: AuthorizerEvent) => built.authorizer(event),
    refuse: async (): Promise<AuthorizerResponse> => {
      throw new AuthorizerFailure('authorizer configuration error');
    },
    expose: (built) => ({ gatehouse: built?.gatehouse }),
  });
}
