/**
 * What a signed event says (issue 13): the CloudEvents 1.0 attributes (`specversion`, `id`,
 * `source`, `type`, `time`, `datacontenttype`, `data`) and who asked (`sub`, `tenant`, `act`),
 * what to re-check (`permissions`, `mode`, `strict`), and the request context conditions need
 * (`ctx`: client IP, country), in one JWS payload beside the registered claims. `jti` equals `id`,
 * so the revocation feed can revoke one event by its id as it revokes a token.
 */
import { ACTOR_IATS_CLAIM, PARENTS_CLAIM, SUBJECT_IAT_CLAIM } from '../delegation/constants.ts';
import type { ActClaim } from '../delegation/mint.ts';
import { TokenError } from '../errors.ts';
import { isValidPermission } from '../permissions/index.ts';
import type { Principal } from '../types.ts';

export interface EventContext {
  readonly ip?: string;
  readonly country?: string;
}

export interface EventClaims {
  readonly iss: string;
  readonly aud: string;
  readonly iat: number;
  readonly nbf: number;
  readonly exp: number;
  readonly jti: string;
  readonly sub: string;
  readonly tenant?: string;
  readonly act?: ActClaim;
  readonly specversion: '1.0';
  readonly id: string;
  readonly source: string;
  readonly type: string;
  /** RFC 3339 time of signing. */
  readonly time: string;
  readonly datacontenttype: 'application/json';
  readonly data: unknown;
  /** The permissions re-checked when the event runs (filled from the route when one was named). */
  readonly permissions: readonly string[];
  readonly mode: 'all' | 'any';
  /** The route the permissions came from, as written in the policy. */
  readonly route?: string;
  /** The route was strict: the re-check refuses while the revocation feed lags. */
  readonly strict?: true;
  readonly ctx?: EventContext;
  /** Signed for a delegated caller: the re-check applies the delegation rule with `scope`. */
  readonly delegated?: true;
  readonly scope?: string;
  readonly grant?: string;
  /**
   * The signing token, for revocation (the follower's checks, as on a delegation token): the
   * `iat` of the caller's own token (a delegation token's `subject_iat`), each actor's token
   * `iat`, and the `jti`s of the signing token and every token it was exchanged from. A sign-out
   * or a revoked id among them refuses the event, as it refuses the token.
   */
  readonly subject_iat?: number;
  readonly actor_iats?: readonly number[];
  readonly parents?: readonly string[];
}

/** What a verified event carries, for a consumer. */
export interface VerifiedEvent {
  readonly id: string;
  readonly source: string;
  readonly type: string;
  readonly time: string;
  readonly data: unknown;
  readonly permissions: readonly string[];
  readonly mode: 'all' | 'any';
  readonly route: string | undefined;
  readonly strict: boolean;
  readonly context: EventContext;
  readonly delegated: boolean;
  /** Unix seconds. */
  readonly expiresAt: number;
  readonly issuedAt: number;
}

/** The issuer on principals rebuilt from a non-delegated event (never a configurable name). */
export const EVENT_PRINCIPAL_ISSUER = 'urn:gatehouse:event';

const bad = (what: string) => new TokenError('token_invalid_claims', `event ${what}`);

function text(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0) throw bad(`${what} is missing`);
  return value;
}

/**
 * Reads the event members of a verified principal (signature, typ, iss, aud, exp already
 * checked). Anything malformed is `token_invalid_claims`: Gatehouse never signs such an event, so
 * it was signed by something else holding the key, and nothing of it is run.
 */
export function readEvent(principal: Principal): VerifiedEvent {
  const c = principal.claims;
  if (c.specversion !== '1.0') throw bad('specversion is not 1.0');
  const id = text(c.id, 'id');
  if (c.jti !== id) throw bad('jti differs from id');
  const permissions = c.permissions;
  if (
    !Array.isArray(permissions) ||
    permissions.length === 0 ||
    permissions.length > 32 ||
    !permissions.every((p) => typeof p === 'string' && isValidPermission(p))
  ) {
    throw bad('permissions are malformed');
  }
  if (c.mode !== 'all' && c.mode !== 'any') throw bad('mode is malformed');
  if (principal.issuedAt === undefined) throw bad('iat is missing');
  const ctx = c.ctx;
  let context: EventContext = {};
  if (ctx !== undefined) {
    if (typeof ctx !== 'object' || ctx === null || Array.isArray(ctx))
      throw bad('ctx is malformed');
    const { ip, country } = ctx as Record<string, unknown>;
    if (
      (ip !== undefined && typeof ip !== 'string') ||
      (country !== undefined && typeof country !== 'string')
    ) {
      throw bad('ctx is malformed');
    }
    context = { ...(ip !== undefined && { ip }), ...(country !== undefined && { country }) };
  }
  if (c.delegated !== undefined && c.delegated !== true) throw bad('delegated is malformed');
  if (c.scope !== undefined && typeof c.scope !== 'string') throw bad('scope is malformed');
  const seconds = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0;
  if (c.subject_iat !== undefined && !seconds(c.subject_iat)) throw bad('subject_iat is malformed');
  if (
    c.actor_iats !== undefined &&
    !(Array.isArray(c.actor_iats) && c.actor_iats.length <= 16 && c.actor_iats.every(seconds))
  ) {
    throw bad('actor_iats is malformed');
  }
  if (
    c.parents !== undefined &&
    !(
      Array.isArray(c.parents) &&
      c.parents.length <= 64 &&
      c.parents.every((p) => typeof p === 'string' && p !== '')
    )
  ) {
    throw bad('parents is malformed');
  }
  return {
    id,
    source: text(c.source, 'source'),
    type: text(c.type, 'type'),
    time: text(c.time, 'time'),
    data: c.data,
    permissions: permissions as string[],
    mode: c.mode,
    route: typeof c.route === 'string' ? c.route : undefined,
    strict: c.strict === true,
    context,
    delegated: c.delegated === true,
    expiresAt: principal.expiresAt,
    issuedAt: principal.issuedAt,
  };
}

/**
 * The principal the re-check decides for. A delegated event keeps its actor chain, scope and
 * standing-grant marker under the delegation issuer, so the delegation rule applies as it is
 * now (delegator now ∩ scope ∩ each actor's ceiling now). Any other event is decided for its
 * subject alone under {@link EVENT_PRINCIPAL_ISSUER}. Either way `jti` is the event's id (revoking
 * the id refuses it) and the signing token's `subject_iat` / `actor_iats` / `parents` ride along,
 * so a sign-out after that token was issued, or revoking it or a token it came from, refuses the
 * event through the follower's own checks. Claim
 * conditions see no identity-provider claims: the event does not carry them, so they fail
 * closed (grants off, denies on), as for a subject check.
 */
export function eventPrincipal(
  verified: Principal,
  event: VerifiedEvent,
  delegationIssuer: string | undefined,
): Principal {
  const scope = verified.claims.scope;
  const grant = verified.claims.grant;
  // Decided for the subject alone, a delegated event would get more than its scope: refuse.
  if (event.delegated && delegationIssuer === undefined)
    throw bad('is delegated; delegation is off');
  const delegated = event.delegated;
  return {
    issuer: delegated ? (delegationIssuer as string) : EVENT_PRINCIPAL_ISSUER,
    issuerKind: 'self',
    subject: verified.subject,
    ...(verified.tenant !== undefined && { tenant: verified.tenant }),
    scopes: delegated && typeof scope === 'string' ? scope.split(' ').filter((s) => s !== '') : [],
    claims: {
      jti: event.id,
      ...(delegated && typeof grant === 'string' && { grant }),
      // Read by the revocation follower exactly as on a delegation token (an event signed before
      // these claims existed is judged by its own iat and id, as it was then).
      ...(verified.claims[SUBJECT_IAT_CLAIM] !== undefined && {
        [SUBJECT_IAT_CLAIM]: verified.claims[SUBJECT_IAT_CLAIM],
      }),
      ...(verified.claims[ACTOR_IATS_CLAIM] !== undefined && {
        [ACTOR_IATS_CLAIM]: verified.claims[ACTOR_IATS_CLAIM],
      }),
      ...(verified.claims[PARENTS_CLAIM] !== undefined && {
        [PARENTS_CLAIM]: verified.claims[PARENTS_CLAIM],
      }),
    },
    actors: delegated ? verified.actors : [],
    expiresAt: event.expiresAt,
    issuedAt: event.issuedAt,
  };
}
