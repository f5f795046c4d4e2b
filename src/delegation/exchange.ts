/**
 * Deciding a token exchange (RFC 8693 §2.1), platform-free: given the verified subject and actor
 * principals, the requested scope and audience, what the new delegation token says, or an
 * {@link ExchangeError}. Widening is refused here (scope beyond the delegator's, the parent's or
 * any actor's ceiling; a lifetime beyond the parent's or the maximum; a chain deeper than the
 * bound), and the use-time rule still intersects everything again on every request.
 */
import { ExchangeError } from '../errors.ts';
import type { Actor, Principal } from '../types.ts';
import { type DelegationConfig, ruleFor } from './config.ts';
import {
  ACTOR_IATS_CLAIM,
  MAX_SCOPE_BYTES,
  MAX_SCOPE_ITEMS,
  PARENTS_CLAIM,
  SUBJECT_IAT_CLAIM,
} from './constants.ts';
import { actClaim, type DelegationClaims, newTokenId } from './mint.ts';
import { listCovers, parseScope } from './scope.ts';
import { isWellFormed, STANDING_CLAIM, type StandingCeiling } from './standing.ts';

export interface ExchangeInput {
  readonly config: DelegationConfig;
  /** The verified subject token: a user's token, or a delegation token to extend a chain. */
  readonly subject: Principal;
  /** The verified actor token (an external issuer's). */
  readonly actor: Principal;
  /** The `scope` parameter. */
  readonly scope: string | undefined;
  /** The `audience` parameters (RFC 8693 §2.1 allows several), if any. */
  readonly audience: string | readonly string[] | undefined;
  /** Milliseconds since the epoch. */
  readonly now: number;
  /**
   * The first requested pattern the delegator does not hold now (deny wins), or null. Decided by
   * the caller against the delegator's store record.
   */
  readonly delegatorLacks: (
    delegator: Principal,
    scope: readonly string[],
  ) => Promise<string | null>;
  /**
   * Set when the subject is a standing grant reference (`subject` is then the delegator, built
   * from the reference, not from a token): what the delegator's live standing grants let this
   * actor receive. It replaces the policy's actor rule for this link.
   */
  readonly standing?: StandingCeiling;
}

export interface ExchangeResult {
  readonly claims: DelegationClaims;
  readonly expiresIn: number;
  readonly scope: readonly string[];
  readonly actors: readonly Actor[];
}

/** Plans one exchange; throws ExchangeError with the RFC 6749 §5.2 code. */
export async function planExchange(input: ExchangeInput): Promise<ExchangeResult> {
  const { config, subject, actor } = input;
  // A delegation token never authenticates an actor: the actor speaks for itself.
  if (actor.issuerKind !== 'external') {
    throw new ExchangeError(
      'invalid_request',
      'the actor token must be an identity provider token',
    );
  }
  const standing = input.standing;
  if (standing !== undefined && !config.standingGrants) {
    throw new ExchangeError('unauthorized_client', 'standing delegation is not enabled');
  }
  const chained = subject.issuerKind === 'self';
  if (chained && (standing !== undefined) !== (subject.claims.grant === STANDING_CLAIM)) {
    throw new ExchangeError('invalid_request', 'the standing grant does not match the parent');
  }
  if (subject.issuerKind === 'external' && subject.actors.length > 0) {
    // An external token that is itself a delegation has no ceilings Gatehouse knows.
    throw new ExchangeError('invalid_request', 'the subject token carries an act claim');
  }
  if (chained && subject.issuer !== config.issuer) {
    throw new ExchangeError('invalid_request', 'the subject token is not a delegation token');
  }
  // Subjects become names and keys (standing grants, audit lines, X-Auth-Actor): a lone
  // surrogate would read as U+FFFD there, so as someone else.
  if (!isWellFormed(actor.subject) || !isWellFormed(subject.subject)) {
    throw new ExchangeError('invalid_request', 'a subject is not well-formed Unicode');
  }
  const newActor: Actor = { subject: actor.subject, issuer: actor.issuer };
  const actors: Actor[] = [newActor, ...(chained ? subject.actors : [])];
  if (actors.length > config.maxDepth) {
    throw new ExchangeError('invalid_request', 'the delegation chain would be too deep');
  }
  // Tenants never mix: an actor of one tenant never acts for a subject of another.
  if (actor.tenant !== undefined && actor.tenant !== subject.tenant) {
    throw new ExchangeError('unauthorized_client', 'the actor may not act for this subject');
  }
  // The link a standing grant vouches for: the innermost actor of the chain.
  const standingActor = standing === undefined ? undefined : actors[actors.length - 1];
  const ceilings: (readonly string[])[] = [];
  // Revoked, expired or never granted: RFC 6749 §5.2 invalid_grant.
  if (standing !== undefined && standing.patterns.length === 0) {
    throw new ExchangeError('invalid_grant', 'no live standing grant lets this actor act');
  }
  for (const link of actors) {
    if (standing !== undefined && link === standingActor) {
      ceilings.push(standing.patterns);
      continue;
    }
    const rule = ruleFor(config, link, subject.subject);
    if (rule === null) {
      throw new ExchangeError('unauthorized_client', 'the actor may not act for this subject');
    }
    ceilings.push(rule.ceiling);
  }

  if (input.scope === undefined) {
    throw new ExchangeError('invalid_request', 'scope is required: the permissions wanted');
  }
  if (input.scope.length > MAX_SCOPE_BYTES) {
    throw new ExchangeError('invalid_scope', `scope is longer than ${MAX_SCOPE_BYTES} bytes`);
  }
  const parsed = parseScope(input.scope);
  if ('scope' in parsed && parsed.scope.length > MAX_SCOPE_ITEMS) {
    throw new ExchangeError(
      'invalid_scope',
      `scope lists more than ${MAX_SCOPE_ITEMS} permissions`,
    );
  }
  if ('bad' in parsed || parsed.scope.length === 0) {
    throw new ExchangeError('invalid_scope', 'scope must list permissions like read:posts');
  }
  const scope = parsed.scope;
  for (const pattern of scope) {
    if (chained && !listCovers(subject.scopes, pattern)) {
      throw new ExchangeError('invalid_scope', "the scope exceeds the parent token's");
    }
    for (const ceiling of ceilings) {
      if (!listCovers(ceiling, pattern)) {
        throw new ExchangeError('invalid_scope', 'the scope exceeds what the actor may receive');
      }
    }
  }
  if ((await input.delegatorLacks(subject, scope)) !== null) {
    throw new ExchangeError('invalid_scope', "the scope exceeds the delegator's permissions");
  }

  // Several audiences only where the policy serves several (each must be one of them).
  const wanted =
    input.audience === undefined
      ? []
      : [...new Set(typeof input.audience === 'string' ? [input.audience] : input.audience)];
  for (const one of wanted) {
    if (!config.audiences.includes(one)) {
      throw new ExchangeError('invalid_target', 'the audience is not one Gatehouse serves');
    }
  }
  const audience: string | string[] =
    wanted.length === 0 ? config.audiences[0]! : wanted.length === 1 ? wanted[0]! : wanted;
  if (chained && !sameAudience(subject.claims.aud, audience)) {
    // A chain stays with the audience it started with.
    throw new ExchangeError('invalid_target', "the audience differs from the parent token's");
  }

  const nowSeconds = Math.floor(input.now / 1000);
  // Never beyond the parent (subject token), the actor's own token, or the configured maximum.
  const exp = Math.min(
    nowSeconds + config.maxLifetimeSeconds,
    Math.floor(subject.expiresAt),
    Math.floor(actor.expiresAt),
    standing?.expiresAt === undefined ? Number.POSITIVE_INFINITY : Math.floor(standing.expiresAt),
  );
  const expiresIn = exp - nowSeconds;
  if (expiresIn < 1) {
    throw new ExchangeError('invalid_request', 'the subject or actor token is about to expire');
  }
  const grant = subject.claims.grant;
  const claims: DelegationClaims = {
    ...lineage(subject, actor, chained, standing !== undefined, nowSeconds),
    iss: config.issuer,
    sub: subject.subject,
    aud: audience,
    iat: nowSeconds,
    nbf: nowSeconds,
    exp,
    jti: newTokenId(),
    scope: scope.join(' '),
    act: actClaim(actors),
    ...(subject.tenant !== undefined && { tenant: subject.tenant }),
    ...(standing !== undefined && !chained && { grant: STANDING_CLAIM }),
    ...(chained && typeof grant === 'string' && { grant }),
  };
  return { claims, expiresIn, scope, actors };
}

/** Whether two `aud` values (a string or an array) name the same audiences. */
function sameAudience(a: unknown, b: string | readonly string[]): boolean {
  const set = (v: unknown) => new Set(typeof v === 'string' ? [v] : Array.isArray(v) ? v : []);
  const x = set(a);
  const y = set(b);
  return x.size === y.size && [...x].every((v) => y.has(v));
}

/**
 * What revocation keys on, carried from the tokens exchanged into the new one (constants.ts):
 * without it a sign-out or a revoked parent would never reach a derived token, whose own `iat`
 * and `jti` are new. An unknown time is 0: any sign-out on record then refuses (fail closed).
 */
function lineage(
  subject: Principal,
  actor: Principal,
  chained: boolean,
  standing: boolean,
  nowSeconds: number,
): Pick<DelegationClaims, 'subject_iat' | 'actor_iats' | 'parents'> {
  const time = (value: unknown) =>
    typeof value === 'number' && Number.isFinite(value) ? value : 0;
  const parentIats = subject.claims[ACTOR_IATS_CLAIM];
  const parentIds = subject.claims[PARENTS_CLAIM];
  const parents: string[] = chained && Array.isArray(parentIds) ? [...parentIds] : [];
  for (const jti of [subject.claims.jti, actor.claims.jti]) {
    if (typeof jti === 'string' && !parents.includes(jti)) parents.push(jti);
  }
  return {
    // A standing grant has no token of the delegator's: the chain starts at this exchange, so
    // her later sign-out ends it (new exchanges stay possible while the grant lives).
    subject_iat: chained
      ? time(subject.claims[SUBJECT_IAT_CLAIM])
      : standing
        ? nowSeconds
        : time(subject.issuedAt),
    actor_iats: [
      time(actor.issuedAt),
      ...(chained
        ? subject.actors.map((_, i) => time(Array.isArray(parentIats) ? parentIats[i] : undefined))
        : []),
    ],
    parents,
  };
}
