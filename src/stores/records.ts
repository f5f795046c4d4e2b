/**
 * Frozen copies of store records. Stores hand out the same object to every caller (and the cache
 * keeps it for its TTL), so a caller that mutated a record would change everyone's permissions.
 *
 * Grants and role assignments keep any unknown key they carry (a misspelt `expires` for
 * `expiresAt`): dropping it here would turn the typo into "never expires". The permissions module
 * then skips such an allow with a warning and refuses a record whose deny or assignment has one.
 */

import type { Conditions, Grant, RoleAssignment, RoleRecord, UserRecord } from '../types.ts';

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

function copyConditions(when: Conditions): Conditions {
  return deepFreeze(structuredClone(when));
}

const GRANT_KEYS: ReadonlySet<string> = new Set(['permission', 'expiresAt', 'when']);
const ASSIGNMENT_KEYS: ReadonlySet<string> = new Set(['role', 'expiresAt']);

/** Copies the keys of `from` outside `known` into `into`, values deep-copied and frozen. */
function copyUnknownKeys(from: object, known: ReadonlySet<string>, into: Record<string, unknown>) {
  for (const [key, value] of Object.entries(from)) {
    if (known.has(key)) continue;
    let copy: unknown;
    try {
      copy = deepFreeze(structuredClone(value));
    } catch {
      // Not cloneable (a function, say): only the key's presence matters, it makes the grant
      // or assignment unusable either way.
      copy = null;
    }
    Object.defineProperty(into, key, { value: copy, enumerable: true });
  }
}

/** A frozen copy of a grant: its known fields, plus any unknown key (see the module comment). */
export function copyGrant(grant: Grant): Grant {
  const copy: { permission: string; expiresAt?: number; when?: Conditions } = {
    permission: grant.permission,
  };
  if (grant.expiresAt !== undefined) copy.expiresAt = grant.expiresAt;
  if (grant.when !== undefined) copy.when = copyConditions(grant.when);
  copyUnknownKeys(grant, GRANT_KEYS, copy);
  return Object.freeze(copy);
}

/** A frozen copy of a role assignment, keeping any unknown key (see the module comment). */
export function copyAssignment(assignment: RoleAssignment): RoleAssignment {
  const copy: { role: string; expiresAt?: number } = { role: assignment.role };
  if (assignment.expiresAt !== undefined) copy.expiresAt = assignment.expiresAt;
  copyUnknownKeys(assignment, ASSIGNMENT_KEYS, copy);
  return Object.freeze(copy);
}

function copyGrants(grants: readonly Grant[]): readonly Grant[] {
  return Object.freeze(grants.map(copyGrant));
}

/** A deep-frozen copy holding only the fields of {@link UserRecord} (grants keep unknown keys). */
export function freezeUser(record: UserRecord): UserRecord {
  const base = {
    subject: record.subject,
    roles: Object.freeze(record.roles.map(copyAssignment)),
    grants: copyGrants(record.grants),
    denies: copyGrants(record.denies),
  };
  return Object.freeze(record.tenant === undefined ? base : { ...base, tenant: record.tenant });
}

/** A deep-frozen copy holding only the fields of {@link RoleRecord} (grants keep unknown keys). */
export function freezeRole(role: RoleRecord): RoleRecord {
  const base = {
    name: role.name,
    grants: copyGrants(role.grants),
    inherits: Object.freeze([...role.inherits]),
  };
  return Object.freeze(
    role.denies === undefined ? base : { ...base, denies: copyGrants(role.denies) },
  );
}

/** Stable JSON: equal values give equal text whatever the key order (sort keys, comparisons). */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
