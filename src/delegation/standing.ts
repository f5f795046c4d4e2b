/**
 * Standing delegation: alice lets bob act for her, with a scope and an expiry, until revoked.
 * A standing grant is an ordinary direct grant in the delegator's own store record, in a
 * reserved form:
 *
 *   gatehouse.delegate:<actor>:<scope pattern>      e.g. gatehouse.delegate:bob:read:posts:*
 *
 * so it is written, listed, revoked and audited by the admin API and CLI like any grant, it
 * expires like one, and it is read through the same permission cache (revoking it takes effect
 * within the cache bound). Only the record's own direct grants count, written out in full: a
 * role's grant or a wildcard (`*`, `gatehouse.delegate:*`) never lets anyone act for anyone, and
 * a deny on `gatehouse.delegate:<actor>:<permission>` wins as everywhere.
 */
import type { ConditionInput, PermissionEntry, PermissionSet } from '../permissions/index.ts';
import { isValidPermission } from '../permissions/index.ts';
import type { Actor } from '../types.ts';
import { meetPatterns } from './scope.ts';

/** The first segment of every standing grant. */
export const STANDING_PREFIX = 'gatehouse.delegate';

/** RFC 8693 `subject_token_type` naming a standing grant: `subject_token` is the delegator. */
export const TOKEN_TYPE_STANDING = 'urn:gatehouse:params:oauth:token-type:standing-delegation';

/** The `grant` claim of a token exchanged for a standing grant. */
export const STANDING_CLAIM = 'standing';

const SAFE = /^[A-Za-z0-9._~@+-]$/;

/** A lone surrogate: in `u` mode a pair is one code point and does not match. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/**
 * Whether `text` is well-formed Unicode (String.prototype.isWellFormed, ES2024). UTF-8 turns a
 * lone surrogate into U+FFFD, so two different subjects would share one name or key.
 */
export function isWellFormed(text: string): boolean {
  return !LONE_SURROGATE.test(text);
}

/** What {@link encodeActor} answers for an ill-formed subject: never part of a valid permission. */
const NOT_A_SEGMENT = '\u0000';

/**
 * An actor subject as one permission segment: characters outside the grammar (and `%`, `*`, `:`)
 * percent-encoded as UTF-8, so `bob:admin` or `*` cannot become several segments or a wildcard.
 * A subject that is not well-formed Unicode has no encoding (UTF-8 would merge it with U+FFFD):
 * the answer is no valid segment, so no grant is written, found or revoked for it.
 */
export function encodeActor(subject: string): string {
  if (!isWellFormed(subject)) return NOT_A_SEGMENT;
  let out = '';
  for (const char of subject) {
    if (SAFE.test(char)) out += char;
    else {
      for (const byte of new TextEncoder().encode(char)) {
        out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
      }
    }
  }
  return out;
}

/**
 * Between the actor's subject and its issuer in an issuer-bound standing grant
 * (`gatehouse.delegate:bob%%https%3A%2F%2Fidp.example%2F:read:*`). encodeActor never writes it:
 * every `%` it writes starts a two-digit escape, so the segment splits one way only.
 */
export const ISSUER_MARK = '%%';

/** The actor segment of a standing grant: the subject, bound to its issuer when one is given. */
export function actorSegment(subject: string, issuer?: string): string {
  return issuer === undefined
    ? encodeActor(subject)
    : `${encodeActor(subject)}${ISSUER_MARK}${encodeActor(issuer)}`;
}

/**
 * The actor segments of the grants that let `actor` receive. An actor with an issuer (every
 * actor of a Gatehouse token) is served by grants bound to that issuer, and by the short,
 * subject-only form only when that issuer is the policy's only identity provider
 * (`soleIssuer`): with several, the short form cannot say whose `bob` it meant. Denies reach
 * both forms whatever the issuer (deny wins).
 */
export function standingSegments(
  actor: string | Actor,
  soleIssuer: string | undefined,
  forDenies = false,
): string[] {
  if (typeof actor === 'string') return [encodeActor(actor)];
  if (actor.issuer === undefined) return [encodeActor(actor.subject)];
  const segments = [actorSegment(actor.subject, actor.issuer)];
  if (forDenies || actor.issuer === soleIssuer) segments.push(encodeActor(actor.subject));
  return segments;
}

/**
 * The standing grant text for `actor` and one scope pattern (bound to `issuer` when given), or
 * null when it is not valid.
 */
export function standingGrant(actor: string, pattern: string, issuer?: string): string | null {
  const text = `${STANDING_PREFIX}:${actorSegment(actor, issuer)}:${pattern}`;
  return isValidPermission(pattern, { allowWildcards: true }) &&
    isValidPermission(text, { allowWildcards: true })
    ? text
    : null;
}

export interface StandingCeiling {
  /** The scope patterns the live standing grants to this actor allow. */
  readonly patterns: readonly string[];
  /** The latest expiry among them, Unix seconds; undefined when one never expires. */
  readonly expiresAt: number | undefined;
}

/**
 * What the delegator's live standing grants let `actor` receive, from her compiled set: direct,
 * unconditional, unexpired grants of the reserved form only (see {@link standingSegments}).
 */
export function standingCeiling(
  set: PermissionSet,
  actor: string | Actor,
  nowMs: number,
  soleIssuer?: string,
): StandingCeiling {
  const heads = standingSegments(actor, soleIssuer).map((s) => `${STANDING_PREFIX}:${s}:`);
  const patterns: string[] = [];
  let latest: number | undefined = 0;
  for (const entry of set.entries()) {
    if (entry.effect !== 'allow' || entry.via !== 'direct' || entry.when !== undefined) continue;
    const head = heads.find((h) => entry.permission.startsWith(h));
    if (head === undefined) continue;
    if (entry.expiresAt !== undefined && entry.expiresAt * 1000 <= nowMs) continue;
    const pattern = entry.permission.slice(head.length);
    if (!isValidPermission(pattern, { allowWildcards: true }) || !pattern.includes(':')) continue;
    if (!patterns.includes(pattern)) patterns.push(pattern);
    if (latest !== undefined)
      latest = entry.expiresAt === undefined ? undefined : Math.max(latest, entry.expiresAt);
  }
  return { patterns, expiresAt: patterns.length === 0 ? 0 : latest };
}

/** Whether the delegator denies `actor` the concrete `permission` (deny wins, either form). */
export function standingDenied(
  set: PermissionSet,
  actor: string | Actor,
  permission: string,
  input: ConditionInput,
): boolean {
  for (const segment of standingSegments(actor, undefined, true)) {
    const text = `${STANDING_PREFIX}:${segment}:${permission}`;
    if (isValidPermission(text) && set.check(text, input).effect === 'deny') return true;
  }
  return false;
}

/**
 * The delegator's denies that reach `actor`'s standing grants, as denies over plain permissions
 * (`gatehouse.delegate:bob:read:secret` → `read:secret`; `gatehouse.delegate:*` → `*`), for
 * callers that apply a delegation to a whole set rather than to one check.
 */
export function standingDenies(
  entries: readonly PermissionEntry[],
  actor: string | Actor,
): PermissionEntry[] {
  const out: PermissionEntry[] = [];
  for (const segment of standingSegments(actor, undefined, true)) {
    const scopeOfActor = `${STANDING_PREFIX}:${segment}:*`;
    for (const entry of entries) {
      if (entry.effect !== 'deny') continue;
      const met = meetPatterns(entry.permission, scopeOfActor);
      if (met === null) continue;
      const rest = met.split(':').slice(2).join(':');
      if (rest !== '' && !out.some((d) => d.permission === rest && d.when === entry.when)) {
        out.push({ ...entry, permission: rest });
      }
    }
  }
  return out;
}
