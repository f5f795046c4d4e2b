/**
 * What a token exchange asks of the delegator's permissions (the token endpoint and the admin
 * API's standing grants). Functions over a Gatehouse rather than its methods, so the authorizers,
 * which only decide requests, do not bundle them (issue 11).
 */
import {
  patternCovers,
  patternsOverlap,
  type StandingCeiling,
  standingCeiling,
} from '../delegation/index.ts';
import {
  type ConditionInput,
  isValidPermission,
  type PermissionEntry,
} from '../permissions/index.ts';
import type { Actor, Principal } from '../types.ts';
import type { Gatehouse } from './decide.ts';

/** No claims: every claim condition is unknown. */
const NO_CLAIMS: Readonly<Record<string, unknown>> = Object.freeze({});

/**
 * The first scope pattern the delegator does not hold now, or null. A concrete permission is
 * checked as a request would be (deny wins); a wildcard pattern needs an unconditional live grant
 * covering it and no live deny inside it, so a scope never claims more than the delegator has.
 * The use-time rule intersects again on every request.
 */
export async function delegatorLacks(
  gatehouse: Gatehouse,
  principal: Principal,
  scope: readonly string[],
): Promise<string | null> {
  const { set, now } = await gatehouse.permissionsNow(principal);
  const input: ConditionInput = {
    now,
    // A delegation token's own claims are not the delegator's (decide.ts, conditionClaims).
    claims: gatehouse.delegated(principal) ? NO_CLAIMS : principal.claims,
  };
  const live = (entry: PermissionEntry) =>
    entry.expiresAt === undefined || entry.expiresAt * 1000 > now;
  for (const pattern of scope) {
    if (isValidPermission(pattern)) {
      if (set.check(pattern, input).effect !== 'allow') return pattern;
      continue;
    }
    let covered = false;
    for (const entry of set.entries()) {
      if (!live(entry)) continue;
      if (entry.effect === 'deny' && patternsOverlap(entry.permission, pattern)) return pattern;
      if (
        entry.effect === 'allow' &&
        entry.when === undefined &&
        patternCovers(entry.permission, pattern)
      ) {
        covered = true;
      }
    }
    if (!covered) return pattern;
  }
  return null;
}

/** What the delegator's live standing grants let `actor` receive now. */
export async function standingFor(
  gatehouse: Gatehouse,
  delegator: Principal,
  actor: Actor,
): Promise<StandingCeiling> {
  const { set, now } = await gatehouse.permissionsNow(delegator);
  return standingCeiling(set, actor, now, gatehouse.policy.delegation?.soleIssuer);
}
