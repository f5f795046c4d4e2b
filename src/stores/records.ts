/**
 * Frozen copies of store records. Stores hand out the same object to every caller (and the cache
 * keeps it for its TTL), so a caller that mutated a record would change everyone's permissions.
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

export function copyGrant(grant: Grant): Grant {
  const copy: { permission: string; expiresAt?: number; when?: Conditions } = {
    permission: grant.permission,
  };
  if (grant.expiresAt !== undefined) copy.expiresAt = grant.expiresAt;
  if (grant.when !== undefined) copy.when = copyConditions(grant.when);
  return Object.freeze(copy);
}

export function copyAssignment(assignment: RoleAssignment): RoleAssignment {
  return Object.freeze(
    assignment.expiresAt === undefined
      ? { role: assignment.role }
      : { role: assignment.role, expiresAt: assignment.expiresAt },
  );
}

function copyGrants(grants: readonly Grant[]): readonly Grant[] {
  return Object.freeze(grants.map(copyGrant));
}

/** A deep-frozen copy holding only the fields of {@link UserRecord}. */
export function freezeUser(record: UserRecord): UserRecord {
  const base = {
    subject: record.subject,
    roles: Object.freeze(record.roles.map(copyAssignment)),
    grants: copyGrants(record.grants),
    denies: copyGrants(record.denies),
  };
  return Object.freeze(record.tenant === undefined ? base : { ...base, tenant: record.tenant });
}

/** A deep-frozen copy holding only the fields of {@link RoleRecord}. */
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
