/**
 * A principal's effective permissions, compiled once into two segment tries (allows, denies)
 * so a check walks at most a few nodes per segment instead of rescanning every grant string.
 */

import { StoreError } from '../errors.ts';
import type { Conditions, Grant, PermissionMatch, UserRecord } from '../types.ts';
import type { CompiledCondition, ConditionInput } from './conditions.ts';
import { DEFAULT_MAX_RECORD_ENTRIES, userEntries } from './entries.ts';
import { isValidPermission } from './grammar.ts';
import { readGrant, unknownKey } from './grants.ts';
import type { RoleGraph } from './roles.ts';

/** The outcome of checking one required permission. `none` means nothing granted it. */
export type CheckResult =
  | { effect: 'allow'; grant: string; via: PermissionMatch['via']; expiresAt?: number }
  | { effect: 'deny'; grant: string; via: PermissionMatch['via'] }
  | { effect: 'none' };

/** One allow or deny as the set holds it, for `show` and explain output. */
export interface PermissionEntry {
  readonly permission: string;
  readonly effect: 'allow' | 'deny';
  readonly via: PermissionMatch['via'];
  /** Unix seconds: the earlier of the grant's and its role assignment's expiry. */
  readonly expiresAt?: number;
  readonly when?: Conditions;
}

/** A principal's compiled permissions. */
export interface PermissionSet {
  /**
   * Decides one required permission: a live deny whose condition holds, or cannot be evaluated
   * (input missing or unreadable), beats every allow; an allow applies only when its holds.
   */
  check(required: string, input: ConditionInput): CheckResult;
  /** Every allow/deny with its origin, expiry and condition text, for `show` and explain output. */
  entries(): readonly PermissionEntry[];
  /** Earliest future expiry among grants/assignments (Unix seconds) or undefined; a cache hint. */
  readonly nextExpiry: number | undefined;
  /** Store grants skipped or degraded, and assigned roles that do not exist. */
  readonly warnings: readonly string[];
  /**
   * The work the compile did, in entries: the record's own (assignments, grants, denies and
   * their condition items) plus, once each, every role its assignments reach (counted as
   * stored: the role, its grants, denies, their condition items and its parents; records.ts).
   * Bounded by `maxEntries`; exposed so tests and `show` can see the cost.
   */
  readonly expandedEntries: number;
}

/** Inputs to {@link compilePermissions}. */
export interface CompilePermissionsInput {
  /** The store's record for the subject; null when it has none. */
  readonly user: UserRecord | null;
  readonly roles: RoleGraph;
  /** Grants from elsewhere, e.g. mapped from token scopes; read with store (fail-closed) rules. */
  readonly extraGrants?: readonly Grant[];
  /** Origin reported for `extraGrants`; default `direct`. */
  readonly extraVia?: 'claims';
  /** Compile time, milliseconds since the epoch (default Date.now()); only for `nextExpiry`. */
  readonly now?: number;
  /**
   * Most entries the expansion may reach ({@link PermissionSet.expandedEntries}); default
   * 10000 (the stores' `maxRecordEntries`), Infinity for tools that only display. Past it the
   * compile stops and throws `StoreError('store_record_too_large')` naming `source.key`.
   */
  readonly maxEntries?: number;
  /** Where `user` was read (store kind and encoded key), for that error; default in-process. */
  readonly source?: { readonly kind: string; readonly key: string };
}

/**
 * The refusal of a principal whose roles expand past the bound: the same code as a stored
 * record over it (stores/records.ts), since either is the store's data being too large to
 * evaluate. Names the key, never the contents.
 */
function expansionTooLarge(source: CompilePermissionsInput['source'], max: number): StoreError {
  const { kind, key } = source ?? { kind: 'in-process', key: '(record)' };
  return new StoreError(
    'store_record_too_large',
    `${kind} record at ${key} expands to more than ${max} entries with the roles it reaches`,
    { key },
  );
}

/** A role reached while expanding assignments, linked to the role it was reached from. */
interface RoleStep {
  readonly name: string;
  readonly parent: RoleStep | undefined;
  path: readonly string[] | undefined;
}

/**
 * The role path from the assigned role to `step`, built on first use (a match, explain) and
 * kept: building every path up front costs the square of a chain's depth.
 */
function pathOf(step: RoleStep): readonly string[] {
  if (step.path === undefined) {
    const names: string[] = [];
    for (let s: RoleStep | undefined = step; s !== undefined; s = s.parent) names.push(s.name);
    step.path = Object.freeze(names.reverse());
  }
  return step.path;
}

interface TrieEntry {
  /** Milliseconds; Infinity when the entry never expires. */
  readonly expiresAtMs: number;
  readonly condition: CompiledCondition | undefined;
  /**
   * Precomputed for direct grants so a check allocates nothing; for role grants built on the
   * first match (see {@link pathOf}) and kept.
   */
  result: CheckResult | undefined;
  readonly permission: string;
  readonly effect: 'allow' | 'deny';
  readonly step: RoleStep | undefined;
  /** Unix seconds. */
  readonly expiresAt: number | undefined;
}

function resultOf(entry: TrieEntry): CheckResult {
  if (entry.result !== undefined) return entry.result;
  const via = pathOf(entry.step as RoleStep);
  const { permission: grant, expiresAt } = entry;
  entry.result = Object.freeze(
    entry.effect === 'deny'
      ? { effect: 'deny', grant, via }
      : { effect: 'allow', grant, via, ...(expiresAt === undefined ? {} : { expiresAt }) },
  );
  return entry.result;
}

interface TrieNode {
  children: Map<string, TrieNode> | undefined;
  star: TrieNode | undefined;
  /** Grants that end at this node. */
  exact: TrieEntry[] | undefined;
  /** Grants whose next and last segment is `*`: they match one or more remaining segments. */
  tail: TrieEntry[] | undefined;
}

function newNode(): TrieNode {
  return { children: undefined, star: undefined, exact: undefined, tail: undefined };
}

function childOf(node: TrieNode, segment: string): TrieNode {
  if (segment === '*') {
    node.star ??= newNode();
    return node.star;
  }
  node.children ??= new Map();
  let child = node.children.get(segment);
  if (child === undefined) {
    child = newNode();
    node.children.set(segment, child);
  }
  return child;
}

function insert(root: TrieNode, segments: readonly string[], entry: TrieEntry) {
  let node = root;
  const last = segments.length - 1;
  for (let i = 0; i < last; i++) node = childOf(node, segments[i] as string);
  if (segments[last] === '*') {
    node.tail ??= [];
    node.tail.push(entry);
  } else {
    const leaf = childOf(node, segments[last] as string);
    leaf.exact ??= [];
    leaf.exact.push(entry);
  }
}

function firstAllow(
  entries: TrieEntry[] | undefined,
  input: ConditionInput,
): TrieEntry | undefined {
  if (entries === undefined) return undefined;
  for (const entry of entries) {
    if (!(input.now < entry.expiresAtMs)) continue;
    // A grant applies only when its condition holds: unknown counts as not holding.
    if (entry.condition !== undefined && entry.condition(input) !== true) continue;
    return entry;
  }
  return undefined;
}

function firstDeny(entries: TrieEntry[] | undefined, input: ConditionInput): TrieEntry | undefined {
  if (entries === undefined) return undefined;
  for (const entry of entries) {
    if (input.now >= entry.expiresAtMs) continue;
    // A deny applies unless its condition is known to fail: unknown input fails closed.
    if (entry.condition !== undefined && entry.condition(input) === false) continue;
    return entry;
  }
  return undefined;
}

/**
 * The first live entry whose condition holds, depth-first with a literal segment before `*` and
 * `*` before a trailing `*`: so the most specific grant wins, deterministically.
 */
function find(
  node: TrieNode,
  segments: readonly string[],
  depth: number,
  input: ConditionInput,
  first: typeof firstAllow,
): TrieEntry | undefined {
  if (depth === segments.length) return first(node.exact, input);
  const child = node.children?.get(segments[depth] as string);
  if (child !== undefined) {
    const found = find(child, segments, depth + 1, input, first);
    if (found !== undefined) return found;
  }
  if (node.star !== undefined) {
    const found = find(node.star, segments, depth + 1, input, first);
    if (found !== undefined) return found;
  }
  return first(node.tail, input);
}

const NONE: CheckResult = Object.freeze({ effect: 'none' });
// Dates beyond this throw in Intl; a clock that far off is a bug, and the answer is "not allowed".
const MAX_TIME_MS = 8.64e15;
const SPLIT_CACHE_LIMIT = 512;
// Routes check the same few permission strings over and over; validate and split each once.
// Once full it stops admitting rather than clearing: with path parameters (`read:posts:42`)
// churn costs more than the split it saves (measured ~270 ns vs ~580 ns per miss).
const splitCache = new Map<string, readonly string[] | null>();

function requiredSegments(required: string): readonly string[] | null {
  const cached = splitCache.get(required);
  if (cached !== undefined) return cached;
  const segments = isValidPermission(required) ? required.split(':') : null;
  if (splitCache.size < SPLIT_CACHE_LIMIT) splitCache.set(required, segments);
  return segments;
}

class CompiledPermissionSet implements PermissionSet {
  readonly nextExpiry: number | undefined;
  readonly warnings: readonly string[];
  readonly expandedEntries: number;
  readonly #allows: TrieNode;
  readonly #denies: TrieNode;
  readonly #entries: readonly PermissionEntry[];

  constructor(
    allows: TrieNode,
    denies: TrieNode,
    entries: readonly PermissionEntry[],
    nextExpiry: number | undefined,
    warnings: readonly string[],
    expandedEntries: number,
  ) {
    this.#allows = allows;
    this.#denies = denies;
    this.#entries = entries;
    this.nextExpiry = nextExpiry;
    this.warnings = warnings;
    this.expandedEntries = expandedEntries;
  }

  check(required: string, input: ConditionInput): CheckResult {
    const now = input.now;
    // NaN would compare false against every expiry; refuse rather than guess.
    if (!(now >= -MAX_TIME_MS && now <= MAX_TIME_MS)) return NONE;
    const segments = requiredSegments(required);
    // A malformed required permission (e.g. a path parameter holding `*`) matches nothing.
    if (segments === null) return NONE;
    const deny = find(this.#denies, segments, 0, input, firstDeny);
    if (deny !== undefined) return resultOf(deny);
    const allow = find(this.#allows, segments, 0, input, firstAllow);
    return allow === undefined ? NONE : resultOf(allow);
  }

  entries(): readonly PermissionEntry[] {
    return this.#entries;
  }
}

function minExpiry(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Math.min(a, b);
}

/** Never-expiring (undefined) first, then later expiries first. */
function byExpiryDescending(a: number | undefined, b: number | undefined): number {
  if (a === b) return 0;
  if (a === undefined) return -1;
  if (b === undefined) return 1;
  return b - a;
}

/**
 * Compiles a principal's direct grants and denies, extra grants (e.g. from token claims) and
 * role assignments into a {@link PermissionSet}. Store content follows fail-closed rules: broken
 * allows are skipped with a warning, denies with a broken condition apply unconditionally, and
 * an unreadable deny or a malformed record throws `StoreError('store_invalid_record')`.
 *
 * Roles are expanded as one union per principal: each reachable role is visited once, and its
 * grants added once, however many assignments or paths reach it, so the work is linear in the
 * roles reached and their entries (issue 9: a chain of 500 roles assigned 500 times cost 2 s),
 * and bounded by `maxEntries` (`store_record_too_large`).
 */
export function compilePermissions(input: CompilePermissionsInput): PermissionSet {
  const nowSeconds = (input.now ?? Date.now()) / 1000;
  const maxEntries = input.maxEntries ?? DEFAULT_MAX_RECORD_ENTRIES;
  const warnings: string[] = [];
  const allows = newNode();
  const denies = newNode();
  const entries: PermissionEntry[] = [];
  let nextExpiry: number | undefined;

  const add = (
    grant: Grant,
    field: string | (() => string),
    effect: 'allow' | 'deny',
    via: 'direct' | 'claims' | RoleStep,
    assignmentExpiry: number | undefined,
  ) => {
    const valid = readGrant(grant, field, effect, 'store', warnings);
    if (valid === undefined) return;
    const expiresAt = minExpiry(valid.expiresAt, assignmentExpiry);
    if (expiresAt !== undefined && expiresAt > nowSeconds) {
      nextExpiry = minExpiry(nextExpiry, expiresAt);
    }
    const step = typeof via === 'string' ? undefined : via;
    const entry: Record<string, unknown> = { permission: valid.permission, effect };
    if (step === undefined) entry.via = via;
    else Object.defineProperty(entry, 'via', { get: () => pathOf(step), enumerable: true });
    if (expiresAt !== undefined) entry.expiresAt = expiresAt;
    if (valid.when !== undefined) entry.when = valid.when;
    entries.push(Object.freeze(entry) as unknown as PermissionEntry);
    let result: CheckResult | undefined;
    if (step === undefined) {
      const direct = via as 'direct' | 'claims';
      result = Object.freeze(
        effect === 'deny'
          ? { effect, grant: valid.permission, via: direct }
          : {
              effect,
              grant: valid.permission,
              via: direct,
              ...(expiresAt === undefined ? {} : { expiresAt }),
            },
      );
    }
    insert(effect === 'deny' ? denies : allows, valid.segments, {
      expiresAtMs: expiresAt === undefined ? Number.POSITIVE_INFINITY : expiresAt * 1000,
      condition: valid.condition,
      result,
      permission: valid.permission,
      effect,
      step,
      expiresAt,
    });
  };

  const user = input.user;
  let expanded = 0;
  if (user !== null) {
    const raw: unknown = user;
    if (typeof raw !== 'object' || raw === null) invalid('user', 'expected an object');
    for (const key of ['grants', 'denies', 'roles'] as const) {
      if (!Array.isArray(user[key])) invalid(`user.${key}`, 'expected a list');
    }
    expanded = userEntries(user, maxEntries);
    if (expanded > maxEntries) throw expansionTooLarge(input.source, maxEntries);
    user.grants.forEach((grant, i) => {
      add(grant, `user.grants[${i}]`, 'allow', 'direct', undefined);
    });
    user.denies.forEach((grant, i) => {
      add(grant, `user.denies[${i}]`, 'deny', 'direct', undefined);
    });
  }

  const extraVia = input.extraVia ?? 'direct';
  input.extraGrants?.forEach((grant, i) => {
    add(grant, `${extraVia}.grants[${i}]`, 'allow', extraVia, undefined);
  });

  const assigned: { field: string; role: string; expiresAt: number | undefined }[] = [];
  user?.roles.forEach((assignment, i) => {
    const field = `user.roles[${i}]`;
    const raw: unknown = assignment;
    if (typeof raw !== 'object' || raw === null || typeof assignment.role !== 'string') {
      invalid(`${field}.role`, 'expected a role name');
    }
    const extra = unknownKey(assignment, ASSIGNMENT_KEYS);
    if (extra !== undefined) {
      // A misspelt `expires` would make the assignment permanent; skipping it would drop its
      // denies. Either widens access, so the record is refused.
      invalid(`${field}.${extra}`, 'unknown key; expected one of role, expiresAt');
    }
    const expiry: unknown = assignment.expiresAt;
    if (expiry !== undefined && (typeof expiry !== 'number' || !Number.isFinite(expiry))) {
      // Skipping the assignment would also drop its denies; refuse the record instead.
      invalid(`${field}.expiresAt`, 'expected Unix seconds');
    }
    if (!input.roles.has(assignment.role)) {
      warnings.push(`${field}: unknown role ${assignment.role}; assignment ignored`);
      return;
    }
    assigned.push({ field, role: assignment.role, expiresAt: assignment.expiresAt });
  });

  // A role reached by several assignments holds as long as the longest of them, so assignments
  // are walked longest-lived first (stable: list order among equals) and each role is expanded
  // once, under the first assignment that reaches it. Depth-first in `inherits` order, as
  // RoleGraph.expand, with an explicit stack: a chain thousands of roles deep must not overflow.
  assigned.sort((a, b) => byExpiryDescending(a.expiresAt, b.expiresAt));
  const reached = new Set<string>();
  const stack: RoleStep[] = [];
  for (const assignment of assigned) {
    stack.push({ name: assignment.role, parent: undefined, path: undefined });
    while (stack.length > 0) {
      const step = stack.pop() as RoleStep;
      if (reached.has(step.name)) continue;
      const role = input.roles.role(step.name);
      if (role === undefined) continue;
      reached.add(step.name);
      expanded += role.entries;
      // Checked before the role's grants are read: past the bound no more work is done.
      if (expanded > maxEntries) throw expansionTooLarge(input.source, maxEntries);
      role.own.forEach((item, j) => {
        // The field names only the holder: joining the whole path per grant is what made a
        // deep chain quadratic. Built only when a warning or error needs it.
        const field = () => `${assignment.field}(via ${step.name})[${j}]`;
        add(item.grant, field, item.effect, step, assignment.expiresAt);
      });
      for (let k = role.inherits.length - 1; k >= 0; k--) {
        const parent = role.inherits[k] as string;
        if (!reached.has(parent)) stack.push({ name: parent, parent: step, path: undefined });
      }
    }
  }

  return new CompiledPermissionSet(
    allows,
    denies,
    Object.freeze(entries),
    nextExpiry,
    Object.freeze(warnings),
    expanded,
  );
}

const ASSIGNMENT_KEYS: ReadonlySet<string> = new Set(['role', 'expiresAt']);

function invalid(field: string, expected: string): never {
  throw new StoreError('store_invalid_record', `${field}: ${expected}`);
}
