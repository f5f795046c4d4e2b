/**
 * Decision logs: one structured line per decision, for every edge. Denies are always logged;
 * allows with probability `allowSampleRate`, and every line says the rate it was sampled at
 * (`sampleRate`, 1 for denies) so a consumer can re-weight: each line stands for 1 / sampleRate
 * decisions.
 *
 * Platform-free (`console`, and Web Crypto or node:crypto for the digest, whichever the runtime
 * offers): the same logger runs in workerd and on Lambda; only the sink differs. Workers Logs indexes the fields of an object handed to `console.log`
 * ({@link consoleObjectWriter}), CloudWatch Logs Insights the first JSON fragment of a Lambda log
 * line ({@link consoleJsonWriter}). docs/workers.md and docs/aws.md, "Decision logs", have the
 * field table and queries.
 *
 * A line never holds the token, the Authorization header, claims or keys: who is the verified
 * subject, tenant and issuer; the token only as a truncated SHA-256 digest, to correlate lines.
 */
import { ConfigError, numberOption } from '../errors.ts';
import { loadNodeCrypto } from '../token/node-crypto.ts';
import type { Decision, PermissionMatch } from '../types.ts';

/** `type` of every decision line, to filter them from other output. */
export const DECISION_LOG_TYPE = 'gatehouse.decision';

/** The environment variables both edges read (docs/workers.md, docs/aws.md). */
export const DECISION_LOG_ENV = {
  enabled: 'DECISION_LOG',
  allowSampleRate: 'DECISION_LOG_ALLOW_SAMPLE_RATE',
} as const;

/** Share of allows logged when nothing is configured. */
export const DEFAULT_ALLOW_SAMPLE_RATE = 0.01;

export type DecisionLogLevel = 'info' | 'warn' | 'error';

/**
 * One decision line. Optional fields are left out when unknown (no principal before the token
 * is verified, no route when none matched, no digest without a bearer token). A type alias, not
 * an interface, so it is assignable to `Record<string, unknown>` sinks.
 */
export type DecisionLogLine = {
  /** When the decision was logged, ISO 8601 UTC. */
  readonly time: string;
  /** `info` for an allow, `warn` for a 400 / 401 / 403 deny, `error` for a 503. */
  readonly level: DecisionLogLevel;
  readonly type: typeof DECISION_LOG_TYPE;
  /** Which edge decided: `worker`, `forward-auth`, `check-api`, `check-rpc`, `hono`, `apigateway`. */
  readonly edge: string;
  readonly allow: boolean;
  readonly status: Decision['status'];
  readonly reason: Decision['reason'];
  /** Upper-case method, when the decision was about a request (not a bare permission check). */
  readonly method?: string;
  /** The request path up to any `?` or `#` (a query string can carry secrets such as access_token). */
  readonly path?: string;
  /** The matched policy route as written, e.g. `PUT,PATCH /posts/:id`. */
  readonly route?: string;
  /** Required permissions with path parameters filled in. */
  readonly required?: readonly string[];
  /** What satisfied each required permission (allows), or the deny that matched (explicit_deny). */
  readonly matched?: readonly PermissionMatch[];
  /** For a delegated request, the delegator (decisions are made for this subject). */
  readonly subject?: string;
  readonly tenant?: string;
  readonly issuer?: string;
  /**
   * A delegated request (a Gatehouse delegation token): the actor chain (current first), the
   * token's scope and its id (`jti`). Absent otherwise.
   */
  readonly delegation?: {
    readonly actors: readonly { readonly subject: string; readonly issuer?: string }[];
    readonly scope: readonly string[];
    readonly tokenId?: string;
  };
  /** Whether the verified token and the permission records came from the isolate's caches. */
  readonly cache?: {
    readonly token?: 'hit' | 'miss';
    readonly permissions?: 'hit' | 'miss' | 'stale';
  };
  /** Time spent deciding, milliseconds (on Workers the clock only advances on I/O). */
  readonly latencyMs: number;
  /** First 16 bytes of SHA-256 over the bearer token, base64url (22 characters). */
  readonly tokenDigest?: string;
  /** The probability this line was written with: 1 for denies, `allowSampleRate` for allows. */
  readonly sampleRate: number;
};

export interface DecisionLoggerOptions {
  /** Share of allows logged, 0 to 1 (default 0.01); denies are always logged. */
  readonly allowSampleRate?: number;
  /** Where each line goes (default {@link consoleObjectWriter}). Exceptions are swallowed. */
  readonly write?: (line: DecisionLogLine) => void;
  /** Uniform random number in [0, 1) that picks the sampled allows (default Math.random). */
  readonly random?: () => number;
  /** Wall clock for `time`, ms since the epoch (default Date.now). */
  readonly now?: () => number;
  /** Monotonic clock for `latencyMs`, ms (default performance.now). */
  readonly clock?: () => number;
}

/** What a line says about the request. A Gatehouse `DecisionRequest` or a check item fits as is. */
export interface LoggedRequest {
  readonly method?: string | undefined;
  readonly path?: string | undefined;
  /** The Authorization header; only a digest of its bearer token is ever logged. */
  readonly authorization?: string | null | undefined;
  /** A token presented without a header (check API items); only its digest is logged. */
  readonly token?: string | undefined;
}

/** Where an adapter sends decisions: the logger, the edge's name, and Workers' waitUntil. */
export interface DecisionLogTarget {
  readonly logger: DecisionLogger;
  readonly edge: string;
  /** Keeps the pending line alive past the response (Workers `ctx.waitUntil`). */
  readonly waitUntil?: ((promise: Promise<unknown>) => void) | undefined;
}

/** Parsed `DECISION_LOG*` variables: null when decision logs are off. */
export interface DecisionLogConfig {
  readonly allowSampleRate: number;
}

const LEVEL_WRITERS = {
  info: (value: unknown) => console.log(value),
  warn: (value: unknown) => console.warn(value),
  error: (value: unknown) => console.error(value),
} as const;

function levelOf(value: unknown): DecisionLogLevel {
  return value === 'error' || value === 'warn' ? value : 'info';
}

/**
 * Workers sink: the line as an object, so Workers Logs extracts and indexes every field
 * ("Logging structured JSON objects", developers.cloudflare.com/workers/observability/logs/
 * workers-logs: `console.log({user_id: 123})` is stored as `{user_id: 123}`, a string only as
 * `message`). The console method follows `level`, so the platform's own level agrees with ours.
 */
export function consoleObjectWriter(line: DecisionLogLine): void {
  LEVEL_WRITERS[levelOf(line.level)](line);
}

/**
 * Lambda sink (and any other `{ level, ... }` entry): one JSON string per line. In Lambda's TEXT
 * log format the line becomes `time \t requestId \t INFO \t {json}`, and Logs Insights discovers
 * the fields of "the first embedded JSON fragment" of a Lambda log event (CloudWatch Logs docs,
 * "Supported logs and discovered fields"). The console method follows `level`: the Node runtime
 * maps console.log to INFO, console.warn to WARN and console.error to ERROR and drops lines below
 * the function's application log level (aws-lambda-nodejs-runtime-interface-client
 * src/LogPatch.js), so with `ApplicationLogLevel: WARN` only the denies remain, not the allows.
 */
export function consoleJsonWriter(entry: Readonly<Record<string, unknown>>): void {
  LEVEL_WRITERS[levelOf(entry.level)](JSON.stringify(entry));
}

/**
 * Reads `DECISION_LOG` (`on`, the default, or `off`) and `DECISION_LOG_ALLOW_SAMPLE_RATE` (a
 * decimal from 0 to 1, default 0.01) through `read`; empty means unset. A bad value throws
 * {@link ConfigError} naming the variable. Null when decision logs are off.
 */
export function readDecisionLogConfig(
  read: (name: string) => string | undefined,
): DecisionLogConfig | null {
  const value = (name: string) => {
    const text = read(name)?.trim();
    return text === undefined || text === '' ? undefined : text;
  };
  const enabled = value(DECISION_LOG_ENV.enabled) ?? 'on';
  if (enabled !== 'on' && enabled !== 'off') {
    throw new ConfigError(DECISION_LOG_ENV.enabled, 'expected on or off');
  }
  const rateText = value(DECISION_LOG_ENV.allowSampleRate);
  let allowSampleRate = DEFAULT_ALLOW_SAMPLE_RATE;
  if (rateText !== undefined) {
    allowSampleRate = Number(rateText);
    if (!/^(\d+(\.\d*)?|\.\d+)$/.test(rateText) || allowSampleRate > 1) {
      throw new ConfigError(
        DECISION_LOG_ENV.allowSampleRate,
        'expected a number from 0 to 1, such as 0.01',
      );
    }
  }
  return enabled === 'off' ? null : { allowSampleRate };
}

// JWS compact form (the verifier's pre-check shape). Anything else presented as a bearer
// credential could be a password typed into the wrong field; an unsalted hash of a short secret
// can be reversed by guessing, so it is never hashed.
const JWS_COMPACT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const MAX_DIGESTED_CHARS = 16_384;
const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

function base64url(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out += BASE64URL[n >> 18]! + BASE64URL[(n >> 12) & 63]! + BASE64URL[(n >> 6) & 63]!;
    out += BASE64URL[n & 63]!;
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i]! << 16;
    out += BASE64URL[n >> 18]! + BASE64URL[(n >> 12) & 63]!;
  } else if (rest === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8);
    out += BASE64URL[n >> 18]! + BASE64URL[(n >> 12) & 63]! + BASE64URL[(n >> 6) & 63]!;
  }
  return out;
}

/**
 * The digest of a token: SHA-256, first 16 bytes, base64url (22 characters). It only has to
 * tell tokens apart and let someone holding a token find its lines: 128 bits keep accidental
 * collisions out of reach (about 2^64 tokens for even odds) at a third of the hex length of a
 * full hash. Nothing about the token can be learnt from it: a JWS carries a signature that no
 * one can guess.
 */
export async function tokenDigest(token: string): Promise<string> {
  const hash =
    nodeCrypto === null
      ? new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(token)))
      : nodeCrypto.createHash('sha256').update(token).digest();
  return base64url(hash.subarray(0, 16));
}

/**
 * On Node, node:crypto's synchronous hash: Node runs a WebCrypto digest on its thread pool, about
 * ten times the cost (some 55 µs), paid on every deny (issue 11). WebCrypto elsewhere (workerd).
 */
const nodeCrypto = loadNodeCrypto();

/** The bearer credential to digest, or undefined (none, not a bearer, or not JWS-shaped). */
function digestSource(request: LoggedRequest): string | undefined {
  let token = request.token;
  if (token === undefined) {
    const header = request.authorization;
    if (typeof header !== 'string' || !/^bearer /i.test(header)) return undefined;
    token = header.slice(7);
  }
  return token.length <= MAX_DIGESTED_CHARS && JWS_COMPACT.test(token) ? token : undefined;
}

function pathOnly(path: string): string {
  const cut = path.search(/[?#]/);
  return cut === -1 ? path : path.slice(0, cut);
}

/**
 * Writes decision lines; build one per isolate / container. {@link log} never throws, and the
 * promise it returns (undefined when nothing is written) never rejects.
 */
export class DecisionLogger {
  readonly allowSampleRate: number;
  private readonly write: (line: DecisionLogLine) => void;
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly clock: () => number;

  constructor(options: DecisionLoggerOptions = {}) {
    this.allowSampleRate = numberOption(
      options.allowSampleRate,
      'allowSampleRate',
      0,
      1,
      DEFAULT_ALLOW_SAMPLE_RATE,
    );
    this.write = options.write ?? consoleObjectWriter;
    this.random = options.random ?? Math.random;
    this.now = options.now ?? Date.now;
    this.clock = options.clock ?? (() => performance.now());
  }

  /** A clock reading to hand to {@link log} as `startedAt`; take it just before deciding. */
  start(): number {
    return this.clock();
  }

  /**
   * Logs one decision: always a deny, an allow with probability `allowSampleRate`. An allow
   * left out costs one `random()` call: no line is built and nothing is hashed. The line is
   * written once the token digest is computed (Web Crypto is asynchronous): on Workers hand the
   * promise to `ctx.waitUntil`, on Lambda await it before answering.
   */
  log(
    edge: string,
    decision: Decision,
    request: LoggedRequest,
    startedAt: number,
  ): Promise<void> | undefined {
    try {
      const rate = decision.allow ? this.allowSampleRate : 1;
      if (rate < 1 && (rate === 0 || !(this.random() < rate))) return undefined;
      const latencyMs = Math.round((this.clock() - startedAt) * 1000) / 1000;
      const time = new Date(this.now()).toISOString();
      return this.emit(edge, decision, request, time, latencyMs, rate);
    } catch {
      return undefined;
    }
  }

  private async emit(
    edge: string,
    decision: Decision,
    request: LoggedRequest,
    time: string,
    latencyMs: number,
    sampleRate: number,
  ): Promise<void> {
    try {
      const source = digestSource(request);
      const digest = source === undefined ? undefined : await tokenDigest(source);
      this.write(lineFor(edge, decision, request, time, latencyMs, sampleRate, digest));
    } catch {
      // A log line is never worth a failed request.
    }
  }
}

function lineFor(
  edge: string,
  decision: Decision,
  request: LoggedRequest,
  time: string,
  latencyMs: number,
  sampleRate: number,
  digest: string | undefined,
): DecisionLogLine {
  // Keys in the documented order (a console shows them as written); absent ones left out.
  const line: Record<string, unknown> = {
    time,
    level: decision.allow ? 'info' : decision.status === 503 ? 'error' : 'warn',
    type: DECISION_LOG_TYPE,
    edge,
    allow: decision.allow,
    status: decision.status,
    reason: decision.reason,
  };
  if (request.method !== undefined) line.method = request.method.toUpperCase();
  if (request.path !== undefined) line.path = pathOnly(request.path);
  if (decision.route !== undefined) line.route = decision.route;
  if (decision.required !== undefined) line.required = decision.required;
  if (decision.matched !== undefined && decision.matched.length > 0) {
    line.matched = decision.matched;
  }
  const principal = decision.principal;
  if (principal !== undefined) {
    line.subject = principal.subject;
    if (principal.tenant !== undefined) line.tenant = principal.tenant;
    line.issuer = principal.issuer;
    // Only Gatehouse's own tokens carry an actor chain the decision relied on.
    if (principal.issuerKind === 'self' && principal.actors.length > 0) {
      const jti = principal.claims.jti;
      line.delegation = {
        actors: principal.actors,
        scope: principal.scopes,
        ...(typeof jti === 'string' && { tokenId: jti }),
      };
    }
  }
  const cache = decision.cache;
  if (cache !== undefined && (cache.token !== undefined || cache.permissions !== undefined)) {
    line.cache = {
      ...(cache.token !== undefined && { token: cache.token }),
      ...(cache.permissions !== undefined && { permissions: cache.permissions }),
    };
  }
  line.latencyMs = latencyMs;
  if (digest !== undefined) line.tokenDigest = digest;
  line.sampleRate = sampleRate;
  return line as DecisionLogLine;
}

/** A clock reading for {@link logDecision}, or 0 without a target. */
export function startDecision(target: DecisionLogTarget | undefined): number {
  return target === undefined ? 0 : target.logger.start();
}

/** Logs through a target and hands the pending line to its waitUntil. Never throws. */
export function logDecision(
  target: DecisionLogTarget | undefined,
  decision: Decision,
  request: LoggedRequest,
  startedAt: number,
): void {
  if (target === undefined) return;
  const pending = target.logger.log(target.edge, decision, request, startedAt);
  if (pending === undefined || target.waitUntil === undefined) return;
  try {
    target.waitUntil(pending);
  } catch {
    // No execution context (outside Workers): the line is written when the digest resolves.
  }
}

/**
 * The decision logger a deployment's variables ask for (`DECISION_LOG`,
 * `DECISION_LOG_ALLOW_SAMPLE_RATE`), or null when they turn it off. A bad value throws
 * ConfigError naming the variable.
 */
export function decisionLoggerFromEnv(
  read: (name: string) => string | undefined,
  options: Omit<DecisionLoggerOptions, 'allowSampleRate'>,
): DecisionLogger | null {
  const config = readDecisionLogConfig(read);
  return config === null
    ? null
    : new DecisionLogger({ ...options, allowSampleRate: config.allowSampleRate });
}
