/**
 * The one place where whatever a {@link PermissionStore} returns becomes a record the core
 * trusts: {@link trustedUser} and {@link trustedRoles} (the cache calls them on every load) and
 * {@link freezeUser} / {@link freezeRole} (the built-in stores build their records with them).
 *
 * Records are plain data. Only own data properties count: a field of a record, grant, role
 * assignment or role that is inherited (from a prototype, including a polluted
 * `Object.prototype`) or is an accessor (a getter, which runs code and may answer differently
 * each time it is read) makes the whole record malformed, `store_invalid_record`, a 503. Failing
 * closed, rather than ignoring such a field, is the only safe rule for both directions: an
 * ignored `grants` would grant nothing, but an ignored `denies`, `when` or `expiresAt` would
 * widen access. A class instance whose fields are set in its constructor is fine: they are own
 * data properties (its methods are not read). Conditions are copied the same way: an object
 * under `when` with an inherited enumerable key or an accessor is malformed too.
 *
 * Size is bounded per store key: one subject's record (role assignments + grants + denies) or
 * one tenant's role set (roles + each role's grants, denies and parents) holds at most
 * `maxRecordEntries` entries ({@link DEFAULT_MAX_RECORD_ENTRIES}). The bound is checked on the
 * list lengths before any entry is copied or compiled, so a record of 200,000 entries is refused
 * in microseconds instead of blocking an isolate for a second or more while it compiles; the
 * error (`store_record_too_large`) names the encoded store key, never the contents.
 *
 * The copies are deep-frozen. Stores hand out the same object to every caller (and the cache
 * keeps it for its TTL), so a caller that mutated a record would change everyone's permissions.
 *
 * Grants and role assignments keep any unknown key they carry (a misspelt `expires` for
 * `expiresAt`): dropping it here would turn the typo into "never expires". The permissions module
 * then skips such an allow with a warning and refuses a record whose deny or assignment has one.
 */

import { numberOption, StoreError } from '../errors.ts';
import {
  conditionEntries,
  DEFAULT_MAX_RECORD_ENTRIES,
  grantEntries,
  grantListEntries,
  roleEntries,
  userEntries,
} from '../permissions/entries.ts';
import type { Conditions, Grant, RoleAssignment, RoleRecord, UserRecord } from '../types.ts';

export { conditionEntries, DEFAULT_MAX_RECORD_ENTRIES, grantEntries, roleEntries, userEntries };

/**
 * Reads a `maxRecordEntries` option: entries per store key, default
 * {@link DEFAULT_MAX_RECORD_ENTRIES}, an integer from 1 to 1,000,000; a ConfigError names `field`.
 */
export function maxRecordEntriesOption(value: unknown, field: string): number {
  return numberOption(value, field, 1, 1_000_000, DEFAULT_MAX_RECORD_ENTRIES, true);
}

/** Where a record was read: the store's kind and the encoded key, for errors and logs. */
export interface RecordSource {
  readonly kind: string;
  readonly key: string;
}

/** A record built in this process (seed data, management), not read from a store. */
const IN_PROCESS: RecordSource = { kind: 'in-process', key: '(record)' };

/** The refusal of a record over the bound; names the key, never the contents. */
export function recordTooLarge(source: RecordSource, max: number): StoreError {
  return new StoreError(
    'store_record_too_large',
    `${source.kind} record at ${source.key} holds more than ${max} entries`,
    { key: source.key },
  );
}

function malformed(source: RecordSource, field: string, expected: string): never {
  throw new StoreError(
    'store_invalid_record',
    `${source.kind} record at ${source.key} is malformed: ${field}: ${expected}`,
    { key: source.key },
  );
}

/**
 * Every name the code between a store and a decision reads from records, grants, conditions and
 * the permission-file shape, often by plain property access (the permission file's parser, the
 * condition compiler). If `Object.prototype` carries one (prototype pollution by other code in
 * the process), every object seems to have it: a grant without `when` would get one, a deny
 * without `expires` would expire. No record can then be read safely, so none is (issue 9, F3).
 */
const FIELD_NAMES: readonly string[] = [
  'subject',
  'tenant',
  'roles',
  'grants',
  'denies',
  'role',
  'permission',
  'expiresAt',
  'expires',
  'when',
  'name',
  'inherits',
  'ip',
  'country',
  'claims',
  'time',
  'days',
  'hours',
  'timezone',
  'from',
  'to',
  'users',
  'user_roles',
  'tenants',
];

function checkPrototype(source: RecordSource): void {
  for (const name of FIELD_NAMES) {
    if (name in Object.prototype) {
      malformed(source, `Object.prototype.${name}`, 'set on every object (prototype pollution)');
    }
  }
}

/** Records and role lists made here, with their entry counts: trusted as they are. */
const trusted = new WeakMap<object, number>();

function isObject(value: unknown): value is object {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The own data property `key` of `obj`, or undefined when it has none. A property that is
 * inherited, or an accessor, makes the record malformed (see the module comment for why).
 */
function own(obj: object, key: string, source: RecordSource, field: string): unknown {
  const descriptor = Object.getOwnPropertyDescriptor(obj, key);
  if (descriptor === undefined) {
    if (key in obj) malformed(source, field, 'inherited, not an own property');
    return undefined;
  }
  if (!('value' in descriptor)) malformed(source, field, 'an accessor, not a data property');
  return descriptor.value;
}

function ownList(
  obj: object,
  key: string,
  source: RecordSource,
  field: string,
): readonly unknown[] {
  const list = own(obj, key, source, `${field}.${key}`);
  if (!Array.isArray(list)) malformed(source, `${field}.${key}`, 'expected a list');
  return list;
}

/** A deep-frozen copy of JSON-like data (conditions), read the same way as records. */
function copyData(value: unknown, source: RecordSource, field: string, depth = 0): unknown {
  if (typeof value !== 'object' || value === null) {
    if (typeof value === 'function' || typeof value === 'symbol' || typeof value === 'bigint') {
      malformed(source, field, 'expected data');
    }
    return value;
  }
  if (depth > 32) malformed(source, field, 'nested too deeply');
  for (const key in value) {
    if (!Object.hasOwn(value, key)) malformed(source, `${field}.${key}`, 'inherited key');
  }
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    for (let i = 0; i < value.length; i++) {
      const item = `${field}[${i}]`;
      out.push(copyData(own(value, String(i), source, item), source, item, depth + 1));
    }
    return Object.freeze(out);
  }
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    const item = `${field}.${key}`;
    // defineProperty: a key named __proto__ stays an ordinary key.
    Object.defineProperty(out, key, {
      value: copyData(own(value, key, source, item), source, item, depth + 1),
      enumerable: true,
    });
  }
  return Object.freeze(out);
}

const GRANT_KEYS: ReadonlySet<string> = new Set(['permission', 'expiresAt', 'when']);
const ASSIGNMENT_KEYS: ReadonlySet<string> = new Set(['role', 'expiresAt']);

/** Copies the own enumerable keys of `from` outside `known` into `into` (see the module comment). */
function copyUnknownKeys(
  from: object,
  known: ReadonlySet<string>,
  into: object,
  source: RecordSource,
  field: string,
) {
  for (const key of Object.keys(from)) {
    if (known.has(key)) continue;
    let copy: unknown;
    try {
      copy = copyData(own(from, key, source, `${field}.${key}`), source, `${field}.${key}`);
    } catch {
      // Not plain data (a function, a getter): only the key's presence matters, it makes the
      // grant or assignment unusable either way.
      copy = null;
    }
    Object.defineProperty(into, key, { value: copy, enumerable: true });
  }
}

function readGrantCopy(value: unknown, source: RecordSource, field: string): Grant {
  if (!isObject(value)) malformed(source, field, 'expected a grant object');
  const permission = own(value, 'permission', source, `${field}.permission`);
  const expiresAt = own(value, 'expiresAt', source, `${field}.expiresAt`);
  const when = own(value, 'when', source, `${field}.when`);
  const copy: { permission: string; expiresAt?: number; when?: Conditions } = {
    permission: copyData(permission, source, `${field}.permission`) as string,
  };
  if (expiresAt !== undefined) {
    copy.expiresAt = copyData(expiresAt, source, `${field}.expiresAt`) as number;
  }
  if (when !== undefined) copy.when = copyData(when, source, `${field}.when`) as Conditions;
  copyUnknownKeys(value, GRANT_KEYS, copy, source, field);
  return Object.freeze(copy);
}

function readAssignmentCopy(value: unknown, source: RecordSource, field: string): RoleAssignment {
  if (!isObject(value)) malformed(source, field, 'expected a role assignment object');
  const role = own(value, 'role', source, `${field}.role`);
  const expiresAt = own(value, 'expiresAt', source, `${field}.expiresAt`);
  const copy: { role: string; expiresAt?: number } = {
    role: copyData(role, source, `${field}.role`) as string,
  };
  if (expiresAt !== undefined) {
    copy.expiresAt = copyData(expiresAt, source, `${field}.expiresAt`) as number;
  }
  copyUnknownKeys(value, ASSIGNMENT_KEYS, copy, source, field);
  return Object.freeze(copy);
}

function copyList<T>(
  list: readonly unknown[],
  source: RecordSource,
  field: string,
  copy: (value: unknown, source: RecordSource, field: string) => T,
): readonly T[] {
  const out: T[] = [];
  for (let i = 0; i < list.length; i++) {
    const item = `${field}[${i}]`;
    out.push(copy(own(list, String(i), source, item), source, item));
  }
  return Object.freeze(out);
}

/** A frozen copy of a grant: its known fields, plus any unknown key (see the module comment). */
export function copyGrant(grant: Grant, source: RecordSource = IN_PROCESS): Grant {
  return readGrantCopy(grant, source, 'grant');
}

/** A frozen copy of a role assignment, keeping any unknown key (see the module comment). */
export function copyAssignment(
  assignment: RoleAssignment,
  source: RecordSource = IN_PROCESS,
): RoleAssignment {
  return readAssignmentCopy(assignment, source, 'assignment');
}

/** Entries of a tenant's role set (one store key). */
export function roleSetEntries(roles: readonly RoleRecord[]): number {
  let count = 0;
  for (const role of roles) count += roleEntries(role);
  return count;
}

function copyUser(value: unknown, source: RecordSource, max: number): UserRecord {
  checkPrototype(source);
  if (!isObject(value)) malformed(source, 'user', 'expected a user record object');
  const roles = ownList(value, 'roles', source, 'user');
  const grants = ownList(value, 'grants', source, 'user');
  const denies = ownList(value, 'denies', source, 'user');
  // Before anything is copied or compiled: this is what keeps a huge record cheap to refuse.
  if (roles.length + grants.length + denies.length > max) throw recordTooLarge(source, max);
  // Then each grant with its condition list items (a grant with a million CIDRs), counting
  // stopped as soon as the total passes the bound.
  let count = roles.length + grantListEntries(grants, max - roles.length);
  if (count > max) throw recordTooLarge(source, max);
  count += grantListEntries(denies, max - count);
  if (count > max) throw recordTooLarge(source, max);
  const subject = own(value, 'subject', source, 'user.subject');
  const tenant = own(value, 'tenant', source, 'user.tenant');
  const base = {
    subject: subject as string,
    roles: copyList(roles, source, 'user.roles', readAssignmentCopy),
    grants: copyList(grants, source, 'user.grants', readGrantCopy),
    denies: copyList(denies, source, 'user.denies', readGrantCopy),
  };
  const record = Object.freeze(
    tenant === undefined ? base : { ...base, tenant: copyData(tenant, source, 'user.tenant') },
  ) as UserRecord;
  trusted.set(record, count);
  return record;
}

/**
 * Reads one role, refusing it once the running count of its set passes `max` (before its
 * entries are copied). Returns the copy and the new running count.
 */
function copyRole(
  value: unknown,
  source: RecordSource,
  field: string,
  counted: number,
  max: number,
): { role: RoleRecord; counted: number } {
  const known = isObject(value) ? trusted.get(value) : undefined;
  if (known !== undefined) {
    if (counted + known > max) throw recordTooLarge(source, max);
    return { role: value as RoleRecord, counted: counted + known };
  }
  if (!isObject(value)) malformed(source, field, 'expected a role object');
  const grants = ownList(value, 'grants', source, field);
  const deniesValue = own(value, 'denies', source, `${field}.denies`);
  if (deniesValue !== undefined && !Array.isArray(deniesValue)) {
    malformed(source, `${field}.denies`, 'expected a list');
  }
  const denies = deniesValue as readonly unknown[] | undefined;
  const inherits = ownList(value, 'inherits', source, field);
  const lengths = 1 + grants.length + (denies?.length ?? 0) + inherits.length;
  if (counted + lengths > max) throw recordTooLarge(source, max);
  // Condition list items count too (see copyUser).
  let count = 1 + inherits.length;
  count += grantListEntries(grants, max - counted - count);
  if (counted + count > max) throw recordTooLarge(source, max);
  count += grantListEntries(denies, max - counted - count);
  if (counted + count > max) throw recordTooLarge(source, max);
  const base = {
    name: copyData(own(value, 'name', source, `${field}.name`), source, `${field}.name`) as string,
    grants: copyList(grants, source, `${field}.grants`, readGrantCopy),
    inherits: copyList(inherits, source, `${field}.inherits`, copyData) as readonly string[],
  };
  const role = Object.freeze(
    denies === undefined
      ? base
      : { ...base, denies: copyList(denies, source, `${field}.denies`, readGrantCopy) },
  );
  trusted.set(role, count);
  return { role, counted: counted + count };
}

/**
 * A deep-frozen copy holding only the fields of {@link UserRecord}, read as own data (grants keep
 * unknown keys). Not bounded: stores that build records bound them when they read; the core
 * bounds every record again in {@link trustedUser}. Throws `store_invalid_record` for a
 * malformed record, naming `source` (default: a record built in this process).
 */
export function freezeUser(record: UserRecord, source: RecordSource = IN_PROCESS): UserRecord {
  return copyUser(record, source, Number.POSITIVE_INFINITY);
}

/** As {@link freezeUser}, for one role definition. */
export function freezeRole(role: RoleRecord, source: RecordSource = IN_PROCESS): RoleRecord {
  checkPrototype(source);
  return copyRole(role, source, 'role', 0, Number.POSITIVE_INFINITY).role;
}

/** A frozen list of frozen roles that {@link trustedRoles} hands back as it is. */
export function freezeRoleList(
  roles: readonly RoleRecord[],
  source: RecordSource = IN_PROCESS,
): readonly RoleRecord[] {
  return copyRoles(roles, source, Number.POSITIVE_INFINITY);
}

function copyRoles(value: unknown, source: RecordSource, max: number): readonly RoleRecord[] {
  checkPrototype(source);
  if (!Array.isArray(value)) malformed(source, 'roles', 'expected a list of roles');
  // Every role costs at least one entry: a list longer than the bound is refused unread.
  if (value.length > max) throw recordTooLarge(source, max);
  const out: RoleRecord[] = [];
  let counted = 0;
  for (let i = 0; i < value.length; i++) {
    const field = `roles[${i}]`;
    const read = copyRole(own(value, String(i), source, field), source, field, counted, max);
    out.push(read.role);
    counted = read.counted;
  }
  const list = Object.freeze(out);
  trusted.set(list, counted);
  return list;
}

/**
 * What a store's `getUser` returned, as a record the core can trust: null stays null; a record
 * made by {@link freezeUser} is returned as it is; anything else is copied as own data. Throws
 * `store_record_too_large` past `max` entries (checked before any copying) and
 * `store_invalid_record` for a malformed record, both naming `source.key`.
 */
export function trustedUser(value: unknown, source: RecordSource, max: number): UserRecord | null {
  // Also for records made before, and before "no record": the compiler reads absent fields by
  // plain access, and a polluted `tenant` already changed which key was read.
  checkPrototype(source);
  if (value === null) return null;
  const known = isObject(value) ? trusted.get(value) : undefined;
  if (known !== undefined) {
    if (known > max) throw recordTooLarge(source, max);
    return value as UserRecord;
  }
  return copyUser(value, source, max);
}

/**
 * What a store's `getRoles` returned, as {@link trustedUser} does for users. A list made by
 * {@link freezeRoleList} comes back as the same array, so callers can memoise by it.
 */
export function trustedRoles(
  value: unknown,
  source: RecordSource,
  max: number,
): readonly RoleRecord[] {
  checkPrototype(source);
  const known = Array.isArray(value) ? trusted.get(value) : undefined;
  if (known !== undefined) {
    if (known > max) throw recordTooLarge(source, max);
    return value as readonly RoleRecord[];
  }
  return copyRoles(value, source, max);
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
