/**
 * The role graph: policy roles merged with a tenant's store roles, checked for unknown parents
 * and cycles once, then expanded per role on demand (memoized) with the path that led there.
 */

import { ConfigError, StoreError } from '../errors.ts';
import type { Grant, RoleRecord } from '../types.ts';
import { roleEntries } from './entries.ts';
import { type GrantSource, readGrant } from './grants.ts';

/** One grant or deny reachable from a role, and the role path from that role to its holder. */
export interface RoleGrant {
  readonly grant: Grant;
  readonly effect: 'allow' | 'deny';
  /** From the role asked about to the role that holds the grant, e.g. `['editor', 'reader']`. */
  readonly path: readonly string[];
}

/** One role as compiled, for walks over the graph that visit each role once. */
export interface RoleNode {
  /** The role's own valid grants and denies (path: just the role). */
  readonly own: readonly RoleGrant[];
  readonly inherits: readonly string[];
  /** What the role counts as stored: itself, its grants, denies and parents (records.ts). */
  readonly entries: number;
}

/** Compiled roles; build once per policy load (and per tenant's store roles), query per user. */
export interface RoleGraph {
  has(role: string): boolean;
  /** The compiled role, or undefined for an unknown one. */
  role(name: string): RoleNode | undefined;
  /**
   * Grants and denies reachable from `role`, each with its role path; empty for an unknown role.
   * For tools and tests: it allocates a path per role (quadratic in a chain's depth), so the
   * request path walks {@link role} instead (permission-set.ts).
   */
  expand(role: string): readonly RoleGrant[];
  /** Every role name, policy roles first, in definition order. */
  readonly names: readonly string[];
  /** Store-role grants skipped or degraded while compiling; log once per load. */
  readonly warnings?: readonly string[];
}

/** Longest role name accepted; role names appear in paths, logs and explain output. */
export const MAX_ROLE_NAME_LENGTH = 128;

interface CompiledRole extends RoleNode {
  readonly name: string;
  readonly source: GrantSource;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Throws the error family for where the record came from: config at start-up, store per load. */
function fail(source: GrantSource, field: string, expected: string): never {
  if (source === 'config') throw new ConfigError(field, expected);
  throw new StoreError('store_invalid_record', `${field}: ${expected}`);
}

function roleField(source: GrantSource, name: string): string {
  return source === 'config' ? `roles.${name}` : `store roles.${name}`;
}

function readRoles(
  records: readonly RoleRecord[],
  source: GrantSource,
  warnings: string[],
): CompiledRole[] {
  const base = source === 'config' ? 'roles' : 'store roles';
  if (!Array.isArray(records)) fail(source, base, 'expected a list of roles');
  const seen = new Set<string>();
  return records.map((record, index) => {
    const raw: unknown = record;
    if (!isObject(raw)) fail(source, `${base}[${index}]`, 'expected a role object');
    const name = raw.name;
    if (typeof name !== 'string' || name.length === 0 || name.length > MAX_ROLE_NAME_LENGTH) {
      fail(
        source,
        `${base}[${index}].name`,
        `expected a role name of 1..${MAX_ROLE_NAME_LENGTH} characters`,
      );
    }
    const field = roleField(source, name);
    if (seen.has(name)) fail(source, field, 'expected each role name once');
    seen.add(name);

    const own: RoleGrant[] = [];
    const path = Object.freeze([name]);
    for (const effect of ['allow', 'deny'] as const) {
      const key = effect === 'allow' ? 'grants' : 'denies';
      const list = raw[key];
      if (list === undefined && effect === 'deny') continue;
      if (!Array.isArray(list)) {
        fail(source, `${field}.${key}`, 'expected a list of grants');
      }
      list.forEach((grant: Grant, i: number) => {
        const valid = readGrant(grant, `${field}.${key}[${i}]`, effect, source, warnings);
        if (valid !== undefined) own.push({ grant, effect, path });
      });
    }

    const inherits = raw.inherits;
    if (!Array.isArray(inherits))
      fail(source, `${field}.inherits`, 'expected a list of role names');
    inherits.forEach((parent: unknown, i: number) => {
      if (typeof parent !== 'string')
        fail(source, `${field}.inherits[${i}]`, 'expected a role name');
    });
    // Counted as the stores count a stored role, conditions included (records.ts).
    const entries = roleEntries(raw as unknown as RoleRecord);
    return { name, source, own, inherits: inherits as string[], entries };
  });
}

function checkParents(roles: readonly CompiledRole[], known: ReadonlyMap<string, CompiledRole>) {
  for (const role of roles) {
    role.inherits.forEach((parent, i) => {
      if (!known.has(parent)) {
        fail(
          role.source,
          `${roleField(role.source, role.name)}.inherits[${i}]`,
          `unknown role ${parent}`,
        );
      }
    });
  }
}

/**
 * Throws naming the first cycle found, e.g. `roles: inheritance cycle a -> b -> a`. Depth-first
 * with an explicit stack: a stored chain thousands of roles deep must not overflow the call stack.
 */
function checkCycles(roles: ReadonlyMap<string, CompiledRole>) {
  const done = new Set<string>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const next: number[] = [];
  const enter = (name: string) => {
    stack.push(name);
    next.push(0);
    onStack.add(name);
  };
  for (const start of roles.keys()) {
    if (done.has(start)) continue;
    enter(start);
    while (stack.length > 0) {
      const top = stack.length - 1;
      const name = stack[top] as string;
      const parents = roles.get(name)?.inherits ?? [];
      const i = next[top] as number;
      if (i === parents.length) {
        stack.pop();
        next.pop();
        onStack.delete(name);
        done.add(name);
        continue;
      }
      next[top] = i + 1;
      const parent = parents[i] as string;
      if (done.has(parent)) continue;
      if (onStack.has(parent)) {
        const cycle = [...stack.slice(stack.indexOf(parent)), parent];
        // A cycle among policy roles alone was already refused at start-up, so any cycle that
        // touches a store role is the store's fault: fail the load, not the configuration.
        const store = cycle.some((role) => roles.get(role)?.source === 'store');
        // A cycle through thousands of stored roles would make a message of megabytes.
        const shown =
          cycle.length <= 12
            ? cycle
            : [...cycle.slice(0, 6), `… ${cycle.length - 9} more …`, ...cycle.slice(-3)];
        fail(store ? 'store' : 'config', 'roles', `inheritance cycle ${shown.join(' -> ')}`);
      }
      enter(parent);
    }
  }
}

class CompiledRoleGraph implements RoleGraph {
  readonly names: readonly string[];
  readonly warnings: readonly string[];
  readonly #roles: ReadonlyMap<string, CompiledRole>;
  readonly #expanded = new Map<string, readonly RoleGrant[]>();

  constructor(roles: ReadonlyMap<string, CompiledRole>, warnings: readonly string[]) {
    this.#roles = roles;
    this.names = Object.freeze([...roles.keys()]);
    this.warnings = Object.freeze([...warnings]);
  }

  has(role: string): boolean {
    return this.#roles.has(role);
  }

  role(name: string): RoleNode | undefined {
    return this.#roles.get(name);
  }

  expand(role: string): readonly RoleGrant[] {
    let result = this.#expanded.get(role);
    if (result !== undefined) return result;
    const out: RoleGrant[] = [];
    // Depth-first in `inherits` order; a role reached twice (a diamond) counts once, by the
    // first path, so results and the reported path are deterministic.
    const seen = new Set<string>();
    const walk = (name: string, prefix: readonly string[]) => {
      const compiled = this.#roles.get(name);
      if (compiled === undefined || seen.has(name)) return;
      seen.add(name);
      const path = Object.freeze([...prefix, name]);
      for (const item of compiled.own) out.push({ grant: item.grant, effect: item.effect, path });
      for (const parent of compiled.inherits) walk(parent, path);
    };
    walk(role, []);
    result = Object.freeze(out);
    this.#expanded.set(role, result);
    return result;
  }
}

interface PolicyRoles {
  readonly roles: readonly CompiledRole[];
  readonly graph: CompiledRoleGraph;
}

// Store roles are merged per tenant load; the policy's own roles are validated once.
const policyCache = new WeakMap<readonly RoleRecord[], PolicyRoles>();

function compilePolicyRoles(policyRoles: readonly RoleRecord[]): PolicyRoles {
  const cached = policyCache.get(policyRoles);
  if (cached !== undefined) return cached;
  const roles = readRoles(policyRoles, 'config', []);
  const byName = new Map(roles.map((role) => [role.name, role]));
  checkParents(roles, byName);
  checkCycles(byName);
  const compiled = { roles, graph: new CompiledRoleGraph(byName, []) };
  if (Array.isArray(policyRoles)) policyCache.set(policyRoles, compiled);
  return compiled;
}

/**
 * Compiles the role graph. Policy mistakes throw {@link ConfigError} naming the field (e.g.
 * `roles.editor.inherits[0]`); broken store roles throw `StoreError('store_invalid_record')` so
 * the request fails closed as a 503. A store role replaces the policy role of the same name.
 */
export function compileRoles(
  policyRoles: readonly RoleRecord[],
  storeRoles?: readonly RoleRecord[],
): RoleGraph {
  const policy = compilePolicyRoles(policyRoles);
  if (storeRoles === undefined || (Array.isArray(storeRoles) && storeRoles.length === 0)) {
    return policy.graph;
  }
  const warnings: string[] = [];
  const store = readRoles(storeRoles, 'store', warnings);
  const byName = new Map(policy.roles.map((role) => [role.name, role]));
  for (const role of store) byName.set(role.name, role);
  checkParents(store, byName);
  checkCycles(byName);
  return new CompiledRoleGraph(byName, warnings);
}
