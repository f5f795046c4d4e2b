/**
 * Signing and verifying events, platform-free (issue 13). Signing: the caller must hold the
 * permission now (through the Gatehouse's own decide/check), then Gatehouse signs a JWS with its
 * issuer keys and `typ: gatehouse-event+jwt`. Verifying: the strict token path with an issuer
 * entry that accepts only that `typ` and the event audiences, then a re-check of the permission
 * for the subject against the store as it is now, with the signed context, through
 * `Gatehouse.check` (revocation feed included: the event carries its signing token's `iat` and
 * `jti` lineage, so a later sign-out or revoking that token refuses it, as it refuses the token).
 */

import {
  ACTOR_IATS_CLAIM,
  EVENT_TYPE,
  PARENTS_CLAIM,
  SUBJECT_IAT_CLAIM,
} from '../delegation/constants.ts';
import { actClaim, createSigner, type DelegationSigner, newTokenId } from '../delegation/mint.ts';
import { describeChain } from '../delegation/rule.ts';
import { EventError, TokenError } from '../errors.ts';
import { isValidPermission } from '../permissions/index.ts';
import { type CheckAnswer, checkAnswer, fixedDecision } from '../policy/check.ts';
// Not ../policy/index.ts: it re-exports the YAML parser, which a Worker must not bundle.
import type { Gatehouse } from '../policy/decide.ts';
import type { PermissionTemplate } from '../policy/routes.ts';
import { createVerifier, extractBearer, type TokenVerifier } from '../token/index.ts';
import type { Actor, Decision, Principal } from '../types.ts';
import {
  type EventClaims,
  type EventContext,
  eventPrincipal,
  readEvent,
  type VerifiedEvent,
} from './claims.ts';
import { type EventsConfig, eventIssuerOptions } from './config.ts';

/** What to sign: the operation and the permission it needs, one of `permission(s)` or `method` + `path`. */
export interface EventRequest {
  /** CloudEvents `type`, e.g. `com.example.report.requested` (1..256 visible characters). */
  readonly type: string;
  /** Any JSON value; it is signed as given. */
  readonly data?: unknown;
  readonly permission?: string;
  /** In-process only: several permissions with `mode` (default all). */
  readonly permissions?: readonly string[];
  readonly mode?: 'all' | 'any';
  /** Through the policy's routes instead of a permission. */
  readonly method?: string;
  readonly path?: string;
  /** One of `events.audiences` (default the first). */
  readonly audience?: string;
  /** Lifetime, seconds, 1..events.maxTtlSeconds (default events.defaultTtlSeconds). */
  readonly ttlSeconds?: number;
}

export interface SignedEvent {
  readonly event: string;
  readonly id: string;
  /** Unix seconds. */
  readonly expiresAt: number;
}

/** Signed, or the decision that refused (401 bad credential, 403 missing permission, 503). */
export type SignOutcome =
  | ({ readonly ok: true } & SignedEvent)
  | { readonly ok: false; readonly decision: CheckAnswer };

/**
 * A check-API answer about an event (the fields of {@link CheckAnswer}); `event` is present when
 * the signature verified, with the data only on an allow.
 */
export interface EventDecision {
  readonly allow: boolean;
  readonly status: CheckAnswer['status'];
  readonly reason: CheckAnswer['reason'];
  readonly subject?: string | undefined;
  readonly tenant?: string | undefined;
  readonly route?: string | undefined;
  readonly required?: readonly string[] | undefined;
  readonly matched?: CheckAnswer['matched'] | undefined;
  readonly explain: string;
  readonly event?: {
    readonly id: string;
    readonly source: string;
    readonly type: string;
    readonly time: string;
    readonly expiresAt: number;
    /** Signed for a delegated caller: `actors` acted for `subject` (review R6). */
    readonly delegated: boolean;
    /** The actor chain, current actor first (RFC 8693 `act`); empty when the subject asked. */
    readonly actors: readonly Actor[];
    /** Only on an allow: a consumer runs nothing of a refused event. */
    readonly data?: unknown;
  };
}

export interface EventsOptions {
  /** Clock, milliseconds; default Date.now. */
  readonly now?: () => number;
  /** Receives one audit line per signed event; default one JSON line on console.log. */
  readonly audit?: (entry: EventAudit) => void;
}

/**
 * One line per signed event (review R11): what a responder needs to find and revoke the events
 * a compromised token minted (by id, or by its `jti` through `parents`). Never data or tokens.
 */
export interface EventAudit {
  readonly type: 'gatehouse.event_signed';
  readonly time: string;
  readonly eventId: string;
  readonly eventType: string;
  readonly subject: string;
  readonly tenant?: string;
  /** Current actor first, `a > b`; absent when the subject asked. */
  readonly actors?: string;
  readonly permissions: readonly string[];
  readonly route?: string;
  readonly audience: string;
  /** The signing token's `jti` and the tokens it came from: what revoking them reaches. */
  readonly parents?: readonly string[];
  readonly expiresAt: number;
}

function defaultAudit(entry: EventAudit): void {
  console.log(JSON.stringify({ level: 'info', ...entry }));
}

const REQUEST_KEYS = new Set([
  'type',
  'data',
  'permission',
  'method',
  'path',
  'audience',
  'ttlSeconds',
]);
const TYPE = /^[\x21-\x7e]{1,256}$/;
/** Deepest nesting of objects and arrays in `data`. */
export const MAX_DATA_DEPTH = 64;
const METHOD = /^[A-Za-z]{1,16}$/;

function invalid(field: string, expected: string): EventError {
  return new EventError('event_invalid_request', `${field}: ${expected}`, { field });
}

/** Validates an HTTP body `{type, data, permission}` or `{type, data, method, path}` (+ audience, ttlSeconds). */
export function parseEventRequest(value: unknown): EventRequest {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid('(body)', 'expected an object');
  }
  const body = value as Record<string, unknown>;
  for (const key of Object.keys(body)) {
    if (!REQUEST_KEYS.has(key)) {
      throw invalid(key, `unknown key; expected one of: ${[...REQUEST_KEYS].join(', ')}`);
    }
  }
  return body as unknown as EventRequest;
}

/** What a verified event yields, kept per verified principal (the token cache keeps it stable). */
interface EventMemo {
  readonly read: VerifiedEvent;
  readonly principal: Principal;
  readonly refused: NonNullable<EventDecision['event']>;
  readonly allowed: NonNullable<EventDecision['event']>;
}

/** The signing and verifying half of a Gatehouse; one per Gatehouse (see {@link eventsFor}). */
export class GatehouseEvents {
  readonly gatehouse: Gatehouse;
  readonly config: EventsConfig | null;
  private readonly now: () => number;
  private readonly audit: (entry: EventAudit) => void;
  private readonly signer: DelegationSigner<EventClaims> | null;
  private readonly verifier: TokenVerifier | null;
  private readonly read = new WeakMap<Principal, EventMemo>();

  constructor(gatehouse: Gatehouse, options: EventsOptions = {}) {
    this.gatehouse = gatehouse;
    this.config = gatehouse.policy.events;
    this.now = options.now ?? Date.now;
    this.audit = options.audit ?? defaultAudit;
    const issuer = this.config === null ? null : eventIssuerOptions(this.config);
    this.signer =
      this.config?.keys == null ? null : createSigner<EventClaims>(this.config.keys, EVENT_TYPE);
    // Its own verifier: the bearer verifier never sees the event typ as acceptable, and this one
    // never sees anything else (one issuer entry, one typ, the event audiences).
    this.verifier =
      issuer === null
        ? null
        : createVerifier({
            issuers: [issuer],
            leewaySeconds: gatehouse.policy.verifier.leewaySeconds ?? 30,
            maxTokenBytes: this.config!.maxBytes,
            tokenCache: { maxEntries: 1000 },
            now: this.now,
          });
  }

  private ready(): { config: EventsConfig; signer: DelegationSigner<EventClaims> } {
    if (this.config === null) {
      throw new EventError('events_unavailable', 'events are not configured (policy.events)');
    }
    if (this.signer === null) {
      throw new EventError('events_unavailable', `${this.config.keysEnv} is not set`);
    }
    return { config: this.config, signer: this.signer };
  }

  /**
   * The HTTP form: authenticates `authorization` (an identity provider's or a delegation token;
   * never an event), decides the permission now, then signs. Throws EventError for a malformed
   * request or a missing configuration; a refused caller is `{ ok: false, decision }`.
   */
  async signRequest(
    input: {
      readonly authorization: string | null | undefined;
      readonly ip?: string | undefined;
      readonly country?: string | undefined;
    },
    request: EventRequest,
  ): Promise<SignOutcome> {
    this.ready();
    const context = contextOf(input);
    if (request.path !== undefined || request.method !== undefined) {
      if (request.permission !== undefined) {
        throw invalid('permission', 'give either permission or method + path');
      }
      const { method, path } = routeOf(request);
      // Before deciding: a public route's decide allows with no principal, which would answer
      // a refusal framed as 200 with no event (review R8). A route with nothing to re-check, or
      // none at all, is the request's mistake whoever asks: 400 naming path.
      const match = this.gatehouse.policy.routes.match(method.toUpperCase(), path);
      const requirement = match !== null && match !== 'malformed' ? match.route.requirement : null;
      if (
        match === null ||
        match === 'malformed' ||
        requirement === null ||
        requirement.kind === 'public' ||
        requirement.kind === 'authenticated'
      ) {
        throw invalid(
          'path',
          'expected a route that requires a permission (there is nothing to re-check)',
        );
      }
      const decision = await this.gatehouse.decide({
        method,
        path,
        authorization: input.authorization,
        ip: context.ip,
        country: context.country,
      });
      if (!decision.allow || decision.principal === undefined) return refused(decision);
      return this.signFor(decision.principal, request, context, {
        permissions: decision.required ?? [],
        mode: requirement.kind === 'all' ? 'all' : 'any',
        route: match.route.label,
        strict: match.route.strict === true,
      });
    }
    let principal: Principal;
    try {
      principal = (await this.gatehouse.verifier.verify(extractBearer(input.authorization)))
        .principal;
    } catch (error) {
      if (error instanceof TokenError) {
        return refused(
          fixedDecision(
            false,
            error.code === 'keys_unavailable' ? 503 : 401,
            error.code,
            error.message,
          ),
        );
      }
      throw error;
    }
    return this.sign(principal, request, context);
  }

  /**
   * In process: a Worker or Lambda holding a verified principal signs without HTTP. The
   * permission is still decided now (a cached check), so nothing is signed that the caller may
   * not do. `context` is the request's client IP and country, kept for conditions.
   */
  async sign(
    principal: Principal,
    request: EventRequest,
    context: EventContext = {},
  ): Promise<SignOutcome> {
    this.ready();
    if (request.path !== undefined || request.method !== undefined) {
      throw invalid('path', 'in process, name the permission; method + path is the HTTP form');
    }
    let permissions: readonly string[];
    if (request.permission !== undefined) {
      if (request.permissions !== undefined)
        throw invalid('permissions', 'give either permission or permissions');
      permissions = [request.permission];
    } else if (request.permissions !== undefined) {
      permissions = request.permissions;
    } else {
      throw invalid('permission', 'expected a permission like read:posts, or method + path');
    }
    if (
      !Array.isArray(permissions) ||
      permissions.length === 0 ||
      permissions.length > 32 ||
      !permissions.every((p) => typeof p === 'string' && isValidPermission(p))
    ) {
      throw invalid('permission', 'expected a permission like read:posts (no wildcards)');
    }
    const mode = request.mode ?? 'all';
    if (mode !== 'all' && mode !== 'any') throw invalid('mode', 'expected all or any');
    // The permission form knows no route, so a route's `delegated: false` would not apply: a
    // delegate could sign by permission what that route refuses it (review R6). A delegated
    // caller may name a permission only when no such route can require it; the route form
    // applies the flag through decide.
    if (this.gatehouse.delegated(principal)) {
      const route = this.undelegable(permissions);
      if (route !== undefined) {
        return refused(
          fixedDecision(
            false,
            403,
            'delegation_refused',
            `Route ${route} refuses delegated callers, and it requires this permission.`,
            principal,
            route,
          ),
        );
      }
    }
    const decision = await this.gatehouse.check(principal, permissions, context, mode);
    if (!decision.allow) return refused(decision);
    return this.signFor(principal, request, context, { permissions, mode });
  }

  /** Per `delegated: false` route with permissions: its label and a matcher per permission. */
  private refusing: readonly { label: string; patterns: readonly RegExp[] }[] | undefined;

  /** The label of a `delegated: false` route that may require one of `permissions`, if any. */
  private undelegable(permissions: readonly string[]): string | undefined {
    this.refusing ??= this.gatehouse.policy.routes.routes
      .filter((r) => !r.delegated && (r.requirement.kind === 'all' || r.requirement.kind === 'any'))
      .map((r) => ({
        label: r.label,
        patterns:
          r.requirement.kind === 'all' || r.requirement.kind === 'any'
            ? r.requirement.permissions.map(templatePattern)
            : [],
      }));
    for (const route of this.refusing) {
      if (permissions.some((p) => route.patterns.some((re) => re.test(p)))) return route.label;
    }
    return undefined;
  }

  private async signFor(
    principal: Principal,
    request: EventRequest,
    context: EventContext,
    what: {
      permissions: readonly string[];
      mode: 'all' | 'any';
      route?: string | undefined;
      strict?: boolean;
    },
  ): Promise<SignOutcome> {
    const { config, signer } = this.ready();
    if (typeof request.type !== 'string' || !TYPE.test(request.type)) {
      throw invalid('type', 'expected a CloudEvents type of 1 to 256 visible characters');
    }
    const audience = request.audience ?? config.audiences[0]!;
    if (typeof audience !== 'string' || !config.audiences.includes(audience)) {
      throw invalid('audience', 'expected one of the configured events.audiences');
    }
    const ttl = request.ttlSeconds ?? config.defaultTtlSeconds;
    if (
      typeof ttl !== 'number' ||
      !Number.isInteger(ttl) ||
      ttl < 1 ||
      ttl > config.maxTtlSeconds
    ) {
      throw invalid('ttlSeconds', `expected an integer from 1 to ${config.maxTtlSeconds}`);
    }
    if (request.data !== undefined) {
      // Before anything recursive sees it (stringify, the signer): thousands of levels overflow
      // the stack, a 503 a client would retry forever (review R7). A cyclic value exceeds the
      // depth too; the node count bounds the walk (every node costs JSON at least a byte).
      if (!withinDepth(request.data, MAX_DATA_DEPTH, config.maxBytes)) {
        throw invalid(
          'data',
          `expected JSON nested at most ${MAX_DATA_DEPTH} levels deep, within maxBytes`,
        );
      }
      if (JSON.stringify(request.data) === undefined)
        throw invalid('data', 'expected a JSON value');
    }
    const nowMs = this.now();
    const iat = Math.floor(nowMs / 1000);
    const delegated = this.gatehouse.delegated(principal);
    // An identity provider's token does not bound the event: it outlives the request by design
    // (a queue consumes it later), up to maxTtlSeconds, and the re-check decides whether it still
    // runs. A delegation token does: its short life is the bound on delegated authority
    // (delegation.maxLifetimeSeconds), which an event must not stretch (review R10).
    const exp = delegated ? Math.min(iat + ttl, principal.expiresAt) : iat + ttl;
    const id = newTokenId();
    const claims: EventClaims = {
      iss: config.issuer,
      aud: audience,
      iat,
      nbf: iat,
      exp,
      jti: id,
      sub: principal.subject,
      ...(principal.tenant !== undefined && { tenant: principal.tenant }),
      ...(principal.actors.length > 0 && { act: actClaim(principal.actors) }),
      specversion: '1.0',
      id,
      source: config.source,
      type: request.type,
      time: new Date(nowMs).toISOString(),
      datacontenttype: 'application/json',
      data: request.data ?? null,
      permissions: [...what.permissions],
      mode: what.mode,
      ...(what.route !== undefined && { route: what.route }),
      ...(what.strict === true && { strict: true as const }),
      ...((context.ip !== undefined || context.country !== undefined) && { ctx: context }),
      ...(delegated && { delegated: true as const, scope: principal.scopes.join(' ') }),
      ...(delegated &&
        typeof principal.claims.grant === 'string' && { grant: principal.claims.grant }),
      ...lineage(principal, delegated),
    };
    // A payload larger than the bound cannot encode smaller: refuse before signing.
    const payloadBytes = new TextEncoder().encode(JSON.stringify(claims)).length;
    if (payloadBytes > config.maxBytes) {
      throw new EventError('event_too_large', `the event exceeds ${config.maxBytes} bytes`, {
        field: 'data',
      });
    }
    const event = await signer.sign(claims);
    if (event.length > config.maxBytes) {
      throw new EventError('event_too_large', `the event exceeds ${config.maxBytes} bytes`, {
        field: 'data',
      });
    }
    this.audit({
      type: 'gatehouse.event_signed',
      time: claims.time,
      eventId: id,
      eventType: claims.type,
      subject: claims.sub,
      ...(claims.tenant !== undefined && { tenant: claims.tenant }),
      ...(principal.actors.length > 0 && { actors: describeChain(principal.actors) }),
      permissions: claims.permissions,
      ...(claims.route !== undefined && { route: claims.route }),
      audience,
      ...(claims.parents !== undefined && { parents: claims.parents }),
      expiresAt: exp,
    });
    return { ok: true, event, id, expiresAt: exp };
  }

  /**
   * Verifies an event (signature, typ, iss, aud, exp, its CloudEvents members) and re-checks its
   * permission for its subject against the store as it is now, with the signed context. Never
   * throws: a forged, altered, expired or foreign event is a 401 with the token's stable reason;
   * a revoked permission a 403 with the deny's reason; an unavailable store a 503.
   */
  async verify(event: unknown): Promise<EventDecision> {
    if (this.verifier === null || this.config === null) {
      return checkAnswer(
        fixedDecision(
          false,
          503,
          'configuration_error',
          this.config === null
            ? 'Events are not configured.'
            : `${this.config.keysEnv} is not set.`,
        ),
      );
    }
    let read: VerifiedEvent;
    let principal: Principal;
    let memo: EventMemo | undefined;
    try {
      if (typeof event !== 'string')
        throw new TokenError('token_malformed', 'event is not a string');
      const verified = (await this.verifier.verify(event)).principal;
      // The verified-token cache hands back the same principal for a repeated event: read it and
      // build its re-check principal once (the delegation view is then memoised on it too).
      memo = this.read.get(verified);
      if (memo === undefined) {
        const r = readEvent(verified);
        const refused = Object.freeze({
          id: r.id,
          source: r.source,
          type: r.type,
          time: r.time,
          expiresAt: r.expiresAt,
          delegated: r.delegated,
          actors: verified.actors,
        });
        memo = {
          read: r,
          principal: eventPrincipal(verified, r, this.gatehouse.policy.delegation?.issuer),
          refused,
          // Only an allow carries the data: a consumer runs nothing of a refused event.
          allowed: Object.freeze({ ...refused, data: r.data }),
        };
        this.read.set(verified, memo);
      }
      read = memo.read;
      principal = memo.principal;
    } catch (error) {
      if (error instanceof TokenError) {
        return checkAnswer(
          fixedDecision(
            false,
            error.code === 'keys_unavailable' ? 503 : 401,
            error.code,
            error.message,
          ),
        );
      }
      return checkAnswer(
        fixedDecision(false, 503, 'internal_error', 'The event could not be verified.'),
      );
    }
    let decision: Decision;
    try {
      decision = await this.gatehouse.check(principal, read.permissions, read.context, read.mode, {
        strict: read.strict,
      });
    } catch (error) {
      decision =
        error instanceof TokenError
          ? fixedDecision(false, 401, error.code, error.message)
          : fixedDecision(false, 503, 'internal_error', 'The re-check failed; the answer is deny.');
    }
    // One object literal of a fixed shape, its `event` member built once per event: this is the
    // consumer's hot path (the bench compares it with a repeated-token decision).
    const p = decision.principal;
    return {
      allow: decision.allow,
      status: decision.status,
      reason: decision.reason,
      subject: p?.subject,
      tenant: p?.tenant,
      route: decision.route ?? read.route,
      required: decision.required,
      matched: decision.matched,
      explain: decision.explain,
      event: decision.allow ? memo.allowed : memo.refused,
    };
  }
}

/**
 * What revocation keys on, from the token that signed (review R1–R3): the event is one more
 * credential derived from it, so it carries the same claims a delegation token carries from the
 * tokens it was exchanged from (src/delegation/exchange.ts `lineage`). An unknown time is 0: any
 * sign-out on record then refuses (fail closed).
 */
function lineage(
  principal: Principal,
  delegated: boolean,
): Pick<EventClaims, 'subject_iat' | 'actor_iats' | 'parents'> {
  const time = (value: unknown) =>
    typeof value === 'number' && Number.isInteger(value) && value >= 0 ? value : 0;
  const c = principal.claims;
  const parents: string[] = [];
  if (delegated && Array.isArray(c[PARENTS_CLAIM])) {
    for (const p of c[PARENTS_CLAIM]) if (typeof p === 'string' && p !== '') parents.push(p);
  }
  if (typeof c.jti === 'string' && c.jti !== '' && !parents.includes(c.jti)) parents.push(c.jti);
  const iats = c[ACTOR_IATS_CLAIM];
  return {
    subject_iat: delegated ? time(c[SUBJECT_IAT_CLAIM]) : time(principal.issuedAt),
    ...(delegated && {
      actor_iats: principal.actors.map((_, i) => time(Array.isArray(iats) ? iats[i] : undefined)),
    }),
    ...(parents.length > 0 && { parents }),
  };
}

/**
 * A permission template as a matcher: literal parts exactly, each `{param}` any non-empty text
 * (a path segment can fill it with anything), so `read:vault:{id}` covers `read:vault:7`.
 */
function templatePattern(template: PermissionTemplate): RegExp {
  const source = template.parts
    .map((part, i) => (i % 2 === 0 ? part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') : '.+'))
    .join('');
  return new RegExp(`^${source}$`);
}

/**
 * Whether `value` nests objects and arrays at most `maxDepth` deep in at most `maxNodes` nodes:
 * iterative, so no depth overflows the stack, and bounded, so a cycle ends the walk.
 */
function withinDepth(value: unknown, maxDepth: number, maxNodes: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  let nodes = 0;
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (++nodes > maxNodes) return false;
    if (typeof node !== 'object' || node === null) continue;
    if (depth > maxDepth) return false;
    for (const child of Array.isArray(node) ? node : Object.values(node)) {
      stack.push([child, depth + 1]);
    }
  }
  return true;
}

function refused(decision: Decision): SignOutcome {
  return { ok: false, decision: checkAnswer(decision) };
}

function contextOf(input: { ip?: string | undefined; country?: string | undefined }): EventContext {
  return {
    ...(input.ip !== undefined && input.ip !== '' && { ip: input.ip }),
    ...(input.country !== undefined && input.country !== '' && { country: input.country }),
  };
}

function routeOf(request: EventRequest): { method: string; path: string } {
  const { method, path } = request;
  if (typeof path !== 'string' || !path.startsWith('/') || path.length > 4096) {
    throw invalid('path', 'expected a path starting with /');
  }
  if (typeof method !== 'string' || !METHOD.test(method)) {
    throw invalid('method', 'expected an HTTP method such as POST');
  }
  return { method, path };
}

const perGatehouse = new WeakMap<Gatehouse, GatehouseEvents>();

/** The events half of a Gatehouse, built once (keys imported once, verified events cached). */
export function eventsFor(gatehouse: Gatehouse, options: EventsOptions = {}): GatehouseEvents {
  let events = perGatehouse.get(gatehouse);
  if (events === undefined) {
    events = new GatehouseEvents(gatehouse, options);
    perGatehouse.set(gatehouse, events);
  }
  return events;
}
