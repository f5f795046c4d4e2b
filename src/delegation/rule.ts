/**
 * The rule at use time. A delegated request is decided for the delegator (the store record of
 * `sub`), and a permission is allowed only if every one holds:
 *
 *   1. the delegator has it now (deny wins) — checked by the caller against the delegator's set;
 *   2. it is within the token's scope;
 *   3. it is within the ceiling of every actor of the chain, as configured now.
 *
 * So a delegation never allows what the delegator alone would be denied, and each link of a
 * chain can only narrow. This file holds (2) and (3); decide() applies (1) first.
 */
import type { PermissionEntry, PermissionSet } from '../permissions/index.ts';
import type { Actor, Principal } from '../types.ts';
import { type DelegationConfig, ruleFor } from './config.ts';
import { listMatches, meetPatterns } from './scope.ts';
import { STANDING_CLAIM, standingCeiling } from './standing.ts';

/** What a delegated principal may receive beyond the delegator's own set. */
export interface DelegationView {
  readonly scope: readonly string[];
  /** Per actor of the chain (current first), the ceiling its rule allows now. */
  readonly ceilings: readonly (readonly string[])[];
  readonly actors: readonly Actor[];
  /** The token id (`jti`), for logs and audit. */
  readonly tokenId: string | undefined;
  /**
   * Set for a token exchanged for a standing grant: its first actor (the innermost), whose
   * ceiling is read from the delegator's record at use time (the ceiling in `ceilings` is empty
   * until resolved with {@link withStanding}).
   */
  readonly standing?: Actor;
  /** The policy's only external issuer (which standing grants the standing actor may use). */
  readonly soleIssuer?: string;
}

/** Why a delegated principal gets nothing at all. */
export type DelegationRefusal =
  | { readonly refused: 'depth' }
  | { readonly refused: 'actor'; readonly actor: Actor };

/** Which of the three sets refused a permission. */
export type Refusal =
  | { readonly set: 'scope' }
  | { readonly set: 'ceiling'; readonly actor: Actor };

/**
 * The view of a verified delegation token under the configuration as it is now: an actor whose
 * rule was removed (or no longer covers this delegator) refuses the whole token.
 */
export function delegationView(
  config: DelegationConfig,
  principal: Principal,
): DelegationView | DelegationRefusal {
  const actors = principal.actors;
  if (actors.length === 0 || actors.length > config.maxDepth) return { refused: 'depth' };
  const standing =
    principal.claims.grant === STANDING_CLAIM ? actors[actors.length - 1] : undefined;
  if (standing !== undefined && !config.standingGrants)
    return { refused: 'actor', actor: standing };
  const ceilings: (readonly string[])[] = [];
  for (const actor of actors) {
    if (actor === standing) {
      ceilings.push([]);
      continue;
    }
    const rule = ruleFor(config, actor, principal.subject);
    if (rule === null) return { refused: 'actor', actor };
    ceilings.push(rule.ceiling);
  }
  const jti = principal.claims.jti;
  return {
    scope: principal.scopes,
    ceilings,
    actors,
    tokenId: typeof jti === 'string' ? jti : undefined,
    ...(standing !== undefined && { standing }),
    ...(standing !== undefined &&
      config.soleIssuer !== undefined && {
        soleIssuer: config.soleIssuer,
      }),
  };
}

/**
 * The view with the standing actor's ceiling read from the delegator's set now, or the refusal
 * when no live standing grant to that actor is left (revoked, expired, or never there).
 */
export function withStanding(
  view: DelegationView,
  set: PermissionSet,
  nowMs: number,
): DelegationView | DelegationRefusal {
  const actor = view.standing;
  if (actor === undefined) return view;
  const { patterns } = standingCeiling(set, actor, nowMs, view.soleIssuer);
  if (patterns.length === 0) return { refused: 'actor', actor };
  const ceilings = view.ceilings.map((c, i) => (view.actors[i] === actor ? patterns : c));
  return { ...view, ceilings };
}

/** Answers remembered per view (a view lives as long as its verified token is cached). */
const answers = new WeakMap<DelegationView, Map<string, Refusal | null>>();
const MAX_REMEMBERED = 256;

/** null when `permission` is within the scope and every ceiling; otherwise the set that refused. */
export function refusalFor(view: DelegationView, permission: string): Refusal | null {
  // A repeated delegated request asks the same question: answer it from memory (a view never
  // changes, so neither does the answer while it lives).
  let memo = answers.get(view);
  const known = memo?.get(permission);
  if (known !== undefined) return known;
  let refusal: Refusal | null = null;
  if (!listMatches(view.scope, permission)) refusal = { set: 'scope' };
  else {
    for (let i = 0; i < view.ceilings.length; i++) {
      if (!listMatches(view.ceilings[i]!, permission)) {
        refusal = { set: 'ceiling', actor: view.actors[i]! };
        break;
      }
    }
  }
  if (memo === undefined) {
    memo = new Map();
    answers.set(view, memo);
  }
  if (memo.size < MAX_REMEMBERED) memo.set(permission, refusal);
  return refusal;
}

/** The chain for audit lines: actor subjects, current first, joined by ` > `. */
export function describeChain(actors: readonly Actor[]): string {
  return actors.map((actor) => actor.subject).join(' > ');
}

/** Most allow entries a narrowed set may hold; beyond it, the delegation grants nothing. */
export const MAX_NARROWED_ENTRIES = 4096;

/**
 * A delegator's permission entries narrowed by a delegation: every deny kept as is (deny wins),
 * every allow met with the scope and with each actor's ceiling. What the result allows is what
 * {@link refusalFor} lets through after the delegator's own check. Null when the product grows
 * past {@link MAX_NARROWED_ENTRIES}: the caller then allows nothing.
 */
export function narrowEntries(
  entries: readonly PermissionEntry[],
  view: DelegationView,
): PermissionEntry[] | null {
  const out: PermissionEntry[] = [];
  let allows = 0;
  for (const entry of entries) {
    if (entry.effect === 'deny') {
      out.push(entry);
      continue;
    }
    let patterns: string[] = [];
    for (const s of view.scope) {
      const met = meetPatterns(entry.permission, s);
      if (met !== null && !patterns.includes(met)) patterns.push(met);
    }
    for (const ceiling of view.ceilings) {
      const next: string[] = [];
      for (const p of patterns) {
        for (const c of ceiling) {
          const met = meetPatterns(p, c);
          if (met !== null && !next.includes(met)) next.push(met);
        }
      }
      patterns = next;
      if (patterns.length > MAX_NARROWED_ENTRIES) return null;
    }
    allows += patterns.length;
    if (allows > MAX_NARROWED_ENTRIES) return null;
    for (const permission of patterns) out.push({ ...entry, permission });
  }
  return out;
}
