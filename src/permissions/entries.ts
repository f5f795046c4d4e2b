/**
 * How much a record counts against `maxRecordEntries`, the one bound on stored data (issue 9):
 * the stores count with these before copying a record (stores/records.ts), the role expansion
 * counts with them per principal (permission-set.ts), and management refuses a change past it.
 */

import type { RoleRecord, UserRecord } from '../types.ts';

/** Entries one store key (and one principal's expansion) may hold unless configured otherwise. */
export const DEFAULT_MAX_RECORD_ENTRIES = 10_000;

function isObject(value: unknown): value is object {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Entries a grant's conditions count against the bound: one per list item (`ip`, `country`,
 * `time.days`, a claim's list of values) and one per key of an object nested in `when` (a
 * claim name, a time field), at any depth. Counting stops once past `limit`, before the items
 * of a list are looked at, so a list of a million CIDRs costs one comparison to refuse. Reads
 * own data properties only (an accessor counts nothing and is refused when the grant is read).
 */
export function conditionEntries(when: unknown, limit = Number.POSITIVE_INFINITY): number {
  let count = 0;
  const visit = (value: unknown, depth: number): void => {
    if (count > limit || depth > 32 || typeof value !== 'object' || value === null) return;
    if (Array.isArray(value)) {
      count += value.length;
      for (let i = 0; i < value.length && count <= limit; i++) visit(ownValue(value, i), depth + 1);
      return;
    }
    const keys = Object.keys(value);
    if (depth > 0) count += keys.length;
    for (let i = 0; i < keys.length && count <= limit; i++) {
      visit(ownValue(value, keys[i] as string), depth + 1);
    }
  };
  visit(when, 0);
  return count;
}

function ownValue(obj: object, key: string | number): unknown {
  const descriptor = Object.getOwnPropertyDescriptor(obj, key);
  return descriptor !== undefined && 'value' in descriptor ? descriptor.value : undefined;
}

/** Entries one grant or deny counts: itself and its conditions ({@link conditionEntries}). */
export function grantEntries(grant: unknown, limit = Number.POSITIVE_INFINITY): number {
  return 1 + (isObject(grant) ? conditionEntries(ownValue(grant, 'when'), limit) : 0);
}

/** Entries of a list of grants (anything else counts nothing); stops counting past `limit`. */
export function grantListEntries(list: unknown, limit = Number.POSITIVE_INFINITY): number {
  if (!Array.isArray(list)) return 0;
  let count = 0;
  for (let i = 0; i < list.length && count <= limit; i++) {
    count += grantEntries(ownValue(list, i), limit - count);
  }
  return count;
}

/**
 * Entries of a user record that count against the bound: its role assignments, and its grants
 * and denies with their conditions ({@link grantEntries}). Counting stops once past `limit`.
 */
export function userEntries(record: UserRecord, limit = Number.POSITIVE_INFINITY): number {
  const count = record.roles.length;
  const grants = grantListEntries(record.grants, limit - count);
  return count + grants + grantListEntries(record.denies, limit - count - grants);
}

/** Entries of one role: itself, its grants and denies (with their conditions), its parents. */
export function roleEntries(role: RoleRecord, limit = Number.POSITIVE_INFINITY): number {
  const count = 1 + role.inherits.length;
  const grants = grantListEntries(role.grants, limit - count);
  return count + grants + grantListEntries(role.denies, limit - count - grants);
}
