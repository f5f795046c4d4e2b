/**
 * The JSON permission file: parse and validate it once (at start-up), load it into a store, and
 * export a store back to the same shape (the CLI's import / export format).
 *
 * ```json
 * {
 *   "roles": { "reader": { "grants": ["read:posts"] } },
 *   "users": { "alice": { "grants": [{ "permission": "read:drafts", "expires": 1798675200 }] } },
 *   "user_roles": { "alice": ["reader"] },
 *   "tenants": { "acme": { "users": {}, "roles": {}, "user_roles": {} } }
 * }
 * ```
 *
 * Validation is strict: an unknown key anywhere is an error, because a misspelt `expires` or
 * condition would otherwise be ignored and silently widen a grant. {@link parsePermissionData}
 * also checks what would otherwise only fail at request time: the permission grammar, conditions
 * (CIDR ranges, empty `when`, `from` equal to `to`), and each section's role inheritance.
 */

import * as v from 'valibot';
import { ConfigError } from '../errors.ts';
import { assertPermission } from '../permissions/grammar.ts';
import { readGrant } from '../permissions/grants.ts';
import { compileRoles } from '../permissions/roles.ts';
import type { Conditions, Grant, RoleAssignment, RoleRecord, UserRecord } from '../types.ts';
import { MemoryStore, type TenantRole } from './memory.ts';
import { canonicalJson } from './records.ts';

/** A grant or deny as written in the file: a bare permission, or one with expiry or conditions. */
export type GrantEntry =
  | string
  | {
      readonly permission: string;
      /** Unix seconds (the file also accepts an ISO 8601 time with zone). */
      readonly expires?: number;
      readonly when?: Conditions;
    };

/** A role assignment as written in the file: a role name, or one with an expiry. */
export type RoleAssignmentEntry =
  | string
  | {
      readonly role: string;
      /** Unix seconds (the file also accepts an ISO 8601 time with zone). */
      readonly expires?: number;
    };

export interface UserEntry {
  readonly grants?: readonly GrantEntry[];
  readonly denies?: readonly GrantEntry[];
}

export interface RoleEntry {
  readonly grants?: readonly GrantEntry[];
  readonly denies?: readonly GrantEntry[];
  readonly inherits?: readonly string[];
}

/** One tenant's permissions (or the untenanted ones at the top level). */
export interface PermissionSection {
  readonly users: Readonly<Record<string, UserEntry>>;
  readonly roles: Readonly<Record<string, RoleEntry>>;
  readonly user_roles: Readonly<Record<string, readonly RoleAssignmentEntry[]>>;
}

/**
 * A permission file in canonical form: every section present, `expires` as Unix seconds, plain
 * grants as strings, empty lists and empty tenants left out. Parsing it gives it back unchanged.
 */
export interface PermissionData extends PermissionSection {
  readonly tenants?: Readonly<Record<string, PermissionSection>>;
}

// ---------------------------------------------------------------------------------------------
// Schema

const EXPIRES_EXPECTED =
  'expected an ISO 8601 time with a zone (such as 2026-12-31T00:00:00Z) ' +
  'or Unix seconds (an integer from 0 to 253402300799)';
/** 9999-12-31T23:59:59Z: a larger number is almost certainly milliseconds. */
const MAX_UNIX_SECONDS = 253_402_300_799;
const ISO_TIME =
  /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(?:Z|([+-])(\d{2}):(\d{2}))$/;
const HH_MM = /^(?:[01]\d|2[0-3]):[0-5]\d$/;
/** `hours.to` may also be 24:00, the end of the day (`hours.from` may not). */
const HH_MM_TO = /^(?:(?:[01]\d|2[0-3]):[0-5]\d|24:00)$/;
const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
/** valibot's `record` silently skips these keys; a skipped deny or condition would widen access. */
const RESERVED_KEYS = ['__proto__', 'prototype', 'constructor'];

function isoToUnixSeconds(text: string): number | undefined {
  const match = ISO_TIME.exec(text);
  if (match === null) return undefined;
  const [, year, month, day, hour, minute, second, , offsetHours, offsetMinutes] = match;
  const y = Number(year);
  const mo = Number(month);
  const d = Number(day);
  // Date.parse rolls 2026-02-30 over to March; reject impossible calendar dates instead.
  const check = new Date(Date.UTC(y, mo - 1, d));
  if (check.getUTCFullYear() !== y || check.getUTCMonth() !== mo - 1 || check.getUTCDate() !== d) {
    return undefined;
  }
  if (Number(hour) > 23 || Number(minute) > 59 || Number(second ?? 0) > 59) return undefined;
  if (Number(offsetHours ?? 0) > 23 || Number(offsetMinutes ?? 0) > 59) return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : Math.floor(ms / 1000);
}

function toUnixSeconds(value: unknown): number | undefined {
  const seconds =
    typeof value === 'number' ? value : typeof value === 'string' ? isoToUnixSeconds(value) : NaN;
  if (seconds === undefined || !Number.isSafeInteger(seconds)) return undefined;
  return seconds >= 0 && seconds <= MAX_UNIX_SECONDS ? seconds : undefined;
}

/**
 * An expiry as the permission file and the policy write it: Unix seconds (an integer from 0 to
 * 253402300799, so milliseconds are refused) or an ISO 8601 time with a zone, checked against the
 * calendar (2026-02-30 is refused, not rolled over). Throws {@link ConfigError} naming `field`.
 */
export function expiryToUnixSeconds(value: string | number, field: string): number {
  const seconds = toUnixSeconds(value);
  if (seconds === undefined) throw new ConfigError(field, EXPIRES_EXPECTED);
  return seconds;
}

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

type IssueMessage = (issue: v.BaseIssue<unknown>) => string;

/** Messages for a strict object: wrong type, unknown key, or missing key. */
function objectMessage(what: string, keys: readonly string[]): IssueMessage {
  return (issue) => {
    if (issue.expected === 'never') return `unknown key; expected one of: ${keys.join(', ')}`;
    if (issue.expected === 'Object') return `expected ${what}`;
    return `missing; required in ${what}`;
  };
}

// valibot's object schemas accept arrays; `"when": []` must not pass as "no conditions".
const notArray = (what: string) =>
  v.check<unknown, string>((value) => !Array.isArray(value), `expected ${what}`);

function strict<const E extends v.ObjectEntries>(what: string, entries: E) {
  return v.pipe(
    v.unknown(),
    notArray(what),
    v.strictObject(entries, objectMessage(what, Object.keys(entries))),
  );
}

const noReservedKeys = v.rawCheck<unknown>(({ dataset, addIssue }) => {
  const value = dataset.value;
  if (typeof value !== 'object' || value === null) return;
  for (const key of RESERVED_KEYS) {
    if (Object.hasOwn(value, key)) {
      addIssue({
        message: `"${key}" is reserved and cannot be used as a name`,
        path: [
          {
            type: 'object',
            origin: 'key',
            input: value as Record<string, unknown>,
            key,
            value: (value as Record<string, unknown>)[key],
          },
        ],
      });
      return;
    }
  }
});

/** A record keyed by non-empty names (subjects, roles, tenants, claim names). */
function namedRecord<S extends v.GenericSchema>(what: string, value: S) {
  return v.pipe(
    v.unknown(),
    notArray(`an object of ${what}`),
    noReservedKeys,
    v.record(
      v.pipe(v.string(), v.minLength(1, 'expected a non-empty name')),
      value,
      `expected an object of ${what}`,
    ),
  );
}

const nonEmptyString = (what: string) =>
  v.pipe(v.string(`expected ${what}`), v.minLength(1, `expected ${what}`));

const noWhitespace = (what: string) =>
  v.pipe(v.string(`expected ${what}`), v.regex(/^\S+$/, `expected ${what}`));

/**
 * The file's schemas, built on first use: only parsing a file needs them, and built at module
 * load they kept valibot's object, union and record machinery in every bundle that imports this
 * module for expiryToUnixSeconds (the Lambda authorizer, through the DynamoDB store; issue 11).
 */
function buildSchemas() {
  // The permission grammar belongs to the permissions module; here only its outline is checked.
  const PERMISSION = noWhitespace('a permission: a non-empty string without whitespace');

  const EXPIRES = v.pipe(
    v.unknown(),
    v.rawTransform<unknown, number>(({ dataset, addIssue, NEVER }) => {
      const seconds = toUnixSeconds(dataset.value);
      if (seconds === undefined) {
        addIssue({ message: EXPIRES_EXPECTED });
        return NEVER;
      }
      return seconds;
    }),
  );

  const CLAIM_SCALAR = v.union(
    [v.string(), v.number(), v.boolean()],
    'expected a string, number or boolean',
  );

  const CONDITIONS = strict('an object of conditions', {
    ip: v.optional(
      v.array(noWhitespace('a CIDR range'), 'expected an array of CIDR ranges such as 10.0.0.0/8'),
    ),
    time: v.optional(
      strict('an object of time conditions', {
        days: v.optional(
          v.array(
            v.picklist(WEEKDAYS, `expected a weekday: ${WEEKDAYS.join(', ')}`),
            'expected an array of weekdays',
          ),
        ),
        hours: v.optional(
          strict('an object {from, to}', {
            from: v.pipe(
              v.string('expected "HH:MM"'),
              v.regex(HH_MM, 'expected "HH:MM" (00:00-23:59)'),
            ),
            to: v.pipe(
              v.string('expected "HH:MM"'),
              v.regex(HH_MM_TO, 'expected "HH:MM" (00:00-24:00)'),
            ),
          }),
        ),
        timezone: v.optional(
          v.pipe(
            v.string('expected an IANA time zone such as Europe/Berlin'),
            v.check(isTimeZone, 'expected an IANA time zone such as Europe/Berlin'),
          ),
        ),
      }),
    ),
    claims: v.optional(
      namedRecord(
        'claim values',
        v.union(
          [
            CLAIM_SCALAR,
            v.array(CLAIM_SCALAR, 'expected an array of strings, numbers or booleans'),
          ],
          'expected a string, number, boolean, or an array of them',
        ),
      ),
    ),
    country: v.optional(
      v.array(
        v.pipe(
          v.string('expected an ISO 3166-1 alpha-2 code'),
          v.regex(/^[A-Z]{2}$/, 'expected an upper-case ISO 3166-1 alpha-2 code such as DE'),
        ),
        'expected an array of country codes',
      ),
    ),
  });

  const GRANT_OBJECT = strict('a grant object {permission, expires?, when?}', {
    permission: PERMISSION,
    expires: v.optional(EXPIRES),
    when: v.optional(CONDITIONS),
  });

  const GRANT = v.union(
    [PERMISSION, GRANT_OBJECT],
    'expected a permission string or an object {permission, expires?, when?}',
  );

  const GRANTS = v.array(GRANT, 'expected an array of grants');

  const ROLE_NAME = nonEmptyString('a role name');

  const ASSIGNMENT = v.union(
    [
      ROLE_NAME,
      strict('a role assignment {role, expires?}', {
        role: ROLE_NAME,
        expires: v.optional(EXPIRES),
      }),
    ],
    'expected a role name or an object {role, expires?}',
  );

  const SECTION_ENTRIES = {
    users: v.optional(
      namedRecord(
        'users',
        strict('a user {grants?, denies?}', {
          grants: v.optional(GRANTS),
          denies: v.optional(GRANTS),
        }),
      ),
    ),
    roles: v.optional(
      namedRecord(
        'roles',
        strict('a role {grants?, denies?, inherits?}', {
          grants: v.optional(GRANTS),
          denies: v.optional(GRANTS),
          inherits: v.optional(v.array(ROLE_NAME, 'expected an array of role names')),
        }),
      ),
    ),
    user_roles: v.optional(
      namedRecord('role assignments', v.array(ASSIGNMENT, 'expected an array of role assignments')),
    ),
  };

  const SECTION = strict('a tenant {users?, roles?, user_roles?}', SECTION_ENTRIES);

  const FILE = strict('a permission file object {users?, roles?, user_roles?, tenants?}', {
    ...SECTION_ENTRIES,
    tenants: v.optional(namedRecord('tenants', SECTION)),
  });

  return { FILE, SECTION, GRANT, ASSIGNMENT };
}

type Schemas = ReturnType<typeof buildSchemas>;
let schemas: Schemas | undefined;

type ParsedFile = v.InferOutput<Schemas['FILE']>;
type ParsedSection = v.InferOutput<Schemas['SECTION']>;
type ParsedGrant = v.InferOutput<Schemas['GRANT']>;
type ParsedAssignment = v.InferOutput<Schemas['ASSIGNMENT']>;

// ---------------------------------------------------------------------------------------------
// Errors

type PathItem = { readonly key: unknown };

/** `users.alice.grants[2].expires`; keys that are not plain names are quoted: `users["a.b"]`. */
function formatPath(path: readonly PathItem[]): string {
  let out = '';
  for (const { key } of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else if (typeof key === 'string' && /^[A-Za-z_][A-Za-z0-9_-]*$/.test(key)) {
      out += out === '' ? key : `.${key}`;
    } else out += `[${JSON.stringify(String(key))}]`;
  }
  return out === '' ? '(root)' : out;
}

/**
 * A union reports "matched no option"; the option that got furthest into the value (the longest
 * path) says what is actually wrong, e.g. the bad `expires` inside a grant object.
 */
function mostSpecific(issue: v.BaseIssue<unknown>): { path: PathItem[]; message: string } {
  const own: PathItem[] = issue.path ? [...issue.path] : [];
  if (issue.type === 'union' && issue.issues) {
    let best: { path: PathItem[]; message: string } | undefined;
    for (const sub of issue.issues) {
      const candidate = mostSpecific(sub);
      if (best === undefined || candidate.path.length > best.path.length) best = candidate;
    }
    if (best !== undefined && best.path.length > 0) {
      return { path: [...own, ...best.path], message: best.message };
    }
  }
  return { path: own, message: issue.message };
}

function fail(field: string, expected: string, source: string | undefined, cause?: unknown): never {
  const where = source === undefined ? expected : `${expected} (in ${source})`;
  throw new ConfigError(field, where, cause === undefined ? undefined : { cause });
}

function validate(value: unknown, source: string | undefined): ParsedFile {
  schemas ??= buildSchemas();
  const result = v.safeParse(schemas.FILE, value, { abortEarly: true });
  if (result.success) return result.output;
  const first = result.issues[0];
  const { path, message } = mostSpecific(first);
  return fail(formatPath(path), message, source);
}

/** Options for {@link parsePermissionData}. */
export interface ParsePermissionOptions {
  /**
   * Role names defined outside the file (the policy's roles) that roles in the file may inherit.
   * Without them, every `inherits` entry must name a role of the same section.
   */
  readonly knownRoles?: readonly string[];
}

type SectionPath = readonly PathItem[];

/** A grant as the store will hold it, validated as the permissions module reads it at runtime. */
function checkGrant(entry: ParsedGrant, path: SectionPath, effect: 'allow' | 'deny'): void {
  const field = formatPath(path);
  if (typeof entry === 'string') {
    assertPermission(entry, field, { allowWildcards: true });
    return;
  }
  // 'config' rules: every problem throws ConfigError naming `field` and the key under it.
  readGrant(toGrant(entry), field, effect, 'config', []);
}

/** Stable JSON, so conditions written in another key order still count as the same. */
function sameness(entry: ParsedGrant): string {
  if (typeof entry === 'string') return JSON.stringify([entry, null]);
  return JSON.stringify([
    entry.permission,
    entry.when === undefined ? null : canonicalJson(entry.when),
  ]);
}

/**
 * Refuses a second entry with the same permission and conditions (or the same role): stores
 * keep one item per grant, so a duplicate would collapse to whichever expiry came last, and a
 * permanent deny could quietly become an expiring one.
 */
function checkUnique<T>(
  entries: readonly T[] | undefined,
  key: (entry: T) => string,
  path: SectionPath,
  what: string,
): void {
  const seen = new Map<string, number>();
  entries?.forEach((entry, i) => {
    const k = key(entry);
    const first = seen.get(k);
    if (first !== undefined) {
      throw new ConfigError(formatPath([...path, { key: i }]), `the same ${what} as [${first}]`);
    }
    seen.set(k, i);
  });
}

function checkGrantLists(
  value: {
    readonly grants?: readonly ParsedGrant[] | undefined;
    readonly denies?: readonly ParsedGrant[] | undefined;
  },
  path: SectionPath,
): void {
  value.grants?.forEach((entry, i) => {
    checkGrant(entry, [...path, { key: 'grants' }, { key: i }], 'allow');
  });
  value.denies?.forEach((entry, i) => {
    checkGrant(entry, [...path, { key: 'denies' }, { key: i }], 'deny');
  });
  checkUnique(value.grants, sameness, [...path, { key: 'grants' }], 'permission and conditions');
  checkUnique(value.denies, sameness, [...path, { key: 'denies' }], 'permission and conditions');
}

/**
 * What the permissions module would refuse at request time, refused at load time instead: the
 * grammar and conditions of every grant and deny, unknown parents and inheritance cycles.
 */
function checkSection(section: ParsedSection, base: SectionPath, knownRoles: readonly string[]) {
  for (const [subject, user] of Object.entries(section.users ?? {})) {
    checkGrantLists(user, [...base, { key: 'users' }, { key: subject }]);
  }
  for (const [subject, assigned] of Object.entries(section.user_roles ?? {})) {
    checkUnique(
      assigned,
      (a) => (typeof a === 'string' ? a : a.role),
      [...base, { key: 'user_roles' }, { key: subject }],
      'role',
    );
  }
  const roles = section.roles ?? {};
  const defined = new Set(Object.keys(roles));
  for (const [name, role] of Object.entries(roles)) {
    const rolePath = [...base, { key: 'roles' }, { key: name }];
    checkGrantLists(role, rolePath);
    role.inherits?.forEach((parent, i) => {
      if (!defined.has(parent) && !knownRoles.includes(parent)) {
        throw new ConfigError(
          formatPath([...rolePath, { key: 'inherits' }, { key: i }]),
          `unknown role ${parent}`,
        );
      }
    });
  }
  // Cycles, found by the role graph itself; grants were checked above, so only names matter.
  const records: RoleRecord[] = Object.entries(roles).map(([name, role]) => ({
    name,
    grants: [],
    inherits: role.inherits ?? [],
  }));
  for (const name of new Set(knownRoles)) {
    if (!defined.has(name)) records.push({ name, grants: [], inherits: [] });
  }
  try {
    compileRoles(records);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    const rolesField = formatPath([...base, { key: 'roles' }]);
    throw new ConfigError(rolesField, error.expected, { cause: error });
  }
}

function checkFile(file: ParsedFile, options: ParsePermissionOptions): void {
  const knownRoles = options.knownRoles ?? [];
  if (!Array.isArray(knownRoles) || knownRoles.some((name) => typeof name !== 'string')) {
    throw new ConfigError('knownRoles', 'expected a list of role names');
  }
  checkSection(file, [], knownRoles);
  for (const [tenant, section] of Object.entries(file.tenants ?? {})) {
    checkSection(section, [{ key: 'tenants' }, { key: tenant }], knownRoles);
  }
}

function checked(file: ParsedFile, options: ParsePermissionOptions, source: string | undefined) {
  try {
    checkFile(file, options);
  } catch (error) {
    if (!(error instanceof ConfigError) || source === undefined) throw error;
    fail(error.field, error.expected, source, error.cause);
  }
  return file;
}

// ---------------------------------------------------------------------------------------------
// File ⇄ records

interface Snapshot {
  readonly users: readonly UserRecord[];
  readonly roles: readonly TenantRole[];
}

function toGrant(entry: ParsedGrant | GrantEntry): Grant {
  if (typeof entry === 'string') return { permission: entry };
  const grant: { permission: string; expiresAt?: number; when?: Conditions } = {
    permission: entry.permission,
  };
  if (entry.expires !== undefined) grant.expiresAt = entry.expires;
  if (entry.when !== undefined) grant.when = entry.when as Conditions;
  return grant;
}

function toAssignment(entry: ParsedAssignment): RoleAssignment {
  if (typeof entry === 'string') return { role: entry };
  return entry.expires === undefined
    ? { role: entry.role }
    : { role: entry.role, expiresAt: entry.expires };
}

function sectionRecords(section: ParsedSection, tenant: string | undefined, into: Snapshot): void {
  const users = into.users as UserRecord[];
  const roles = into.roles as TenantRole[];
  const userEntries = section.users ?? {};
  const assignments = section.user_roles ?? {};
  const subjects = new Set([...Object.keys(userEntries), ...Object.keys(assignments)]);
  for (const subject of subjects) {
    const entry = Object.hasOwn(userEntries, subject) ? userEntries[subject] : undefined;
    const assigned = Object.hasOwn(assignments, subject) ? assignments[subject] : undefined;
    const record = {
      subject,
      roles: (assigned ?? []).map(toAssignment),
      grants: (entry?.grants ?? []).map(toGrant),
      denies: (entry?.denies ?? []).map(toGrant),
    };
    users.push(tenant === undefined ? record : { ...record, tenant });
  }
  for (const [name, role] of Object.entries(section.roles ?? {})) {
    roles.push({
      tenant,
      role: {
        name,
        grants: (role.grants ?? []).map(toGrant),
        denies: (role.denies ?? []).map(toGrant),
        inherits: role.inherits ?? [],
      },
    });
  }
}

function toSnapshot(file: ParsedFile): Snapshot {
  const snapshot: Snapshot = { users: [], roles: [] };
  sectionRecords(file, undefined, snapshot);
  for (const [tenant, section] of Object.entries(file.tenants ?? {})) {
    sectionRecords(section, tenant, snapshot);
  }
  return snapshot;
}

const GRANT_RECORD_KEYS: ReadonlySet<string> = new Set(['permission', 'expiresAt', 'when']);
const ASSIGNMENT_RECORD_KEYS: ReadonlySet<string> = new Set(['role', 'expiresAt']);

/**
 * Refuses to export a store record whose grant or assignment has an unknown key (a misspelt
 * `expires`): the file has no way to say it, and dropping it would make the grant permanent.
 */
function refuseUnknownKeys(value: object, known: ReadonlySet<string>, path: SectionPath): void {
  for (const key of Object.keys(value)) {
    if (!known.has(key)) {
      throw new ConfigError(
        formatPath([...path, { key }]),
        `unknown key in a store record; expected one of ${[...known].join(', ')}`,
      );
    }
  }
}

function toEntries(grants: readonly Grant[], path: SectionPath): GrantEntry[] {
  return grants.map((grant, i) => {
    refuseUnknownKeys(grant, GRANT_RECORD_KEYS, [...path, { key: i }]);
    return toEntry(grant);
  });
}

function toAssignmentEntries(
  assignments: readonly RoleAssignment[],
  path: SectionPath,
): RoleAssignmentEntry[] {
  return assignments.map((assignment, i) => {
    refuseUnknownKeys(assignment, ASSIGNMENT_RECORD_KEYS, [...path, { key: i }]);
    return toAssignmentEntry(assignment);
  });
}

function sectionPath(tenant: string | undefined): SectionPath {
  return tenant === undefined ? [] : [{ key: 'tenants' }, { key: tenant }];
}

function toEntry(grant: Grant): GrantEntry {
  if (grant.expiresAt === undefined && grant.when === undefined) return grant.permission;
  const entry: { permission: string; expires?: number; when?: Conditions } = {
    permission: grant.permission,
  };
  if (grant.expiresAt !== undefined) entry.expires = grant.expiresAt;
  if (grant.when !== undefined) entry.when = structuredClone(grant.when);
  return entry;
}

function toAssignmentEntry(assignment: RoleAssignment): RoleAssignmentEntry {
  return assignment.expiresAt === undefined
    ? assignment.role
    : { role: assignment.role, expires: assignment.expiresAt };
}

interface MutableSection {
  users: Record<string, UserEntry>;
  roles: Record<string, RoleEntry>;
  user_roles: Record<string, readonly RoleAssignmentEntry[]>;
}

// Null-prototype objects: a subject named `__proto__` must stay an ordinary key.
function emptySection(): MutableSection {
  return {
    users: Object.create(null),
    roles: Object.create(null),
    user_roles: Object.create(null),
  };
}

function isEmpty(section: MutableSection): boolean {
  return (
    Object.keys(section.users).length === 0 &&
    Object.keys(section.roles).length === 0 &&
    Object.keys(section.user_roles).length === 0
  );
}

/** The canonical file for a set of records; the same function serves parse and export. */
function fromSnapshot(snapshot: Snapshot): PermissionData {
  const root = emptySection();
  const tenants = new Map<string, MutableSection>();
  const sectionFor = (tenant: string | undefined): MutableSection => {
    if (tenant === undefined) return root;
    let section = tenants.get(tenant);
    if (section === undefined) {
      section = emptySection();
      tenants.set(tenant, section);
    }
    return section;
  };
  for (const user of snapshot.users) {
    const section = sectionFor(user.tenant);
    const entry: { grants?: GrantEntry[]; denies?: GrantEntry[] } = {};
    const userPath = [...sectionPath(user.tenant), { key: 'users' }, { key: user.subject }];
    if (user.grants.length > 0)
      entry.grants = toEntries(user.grants, [...userPath, { key: 'grants' }]);
    if (user.denies.length > 0)
      entry.denies = toEntries(user.denies, [...userPath, { key: 'denies' }]);
    // A subject with nothing at all still has a record ("known, no permissions"), so keep it.
    if (entry.grants || entry.denies || user.roles.length === 0)
      section.users[user.subject] = entry;
    if (user.roles.length > 0) {
      section.user_roles[user.subject] = toAssignmentEntries(user.roles, [
        ...sectionPath(user.tenant),
        { key: 'user_roles' },
        { key: user.subject },
      ]);
    }
  }
  for (const { tenant, role } of snapshot.roles) {
    const entry: { grants?: GrantEntry[]; denies?: GrantEntry[]; inherits?: string[] } = {};
    const rolePath = [...sectionPath(tenant), { key: 'roles' }, { key: role.name }];
    if (role.grants.length > 0)
      entry.grants = toEntries(role.grants, [...rolePath, { key: 'grants' }]);
    if (role.denies !== undefined && role.denies.length > 0)
      entry.denies = toEntries(role.denies, [...rolePath, { key: 'denies' }]);
    if (role.inherits.length > 0) entry.inherits = [...role.inherits];
    sectionFor(tenant).roles[role.name] = entry;
  }
  const nonEmpty = [...tenants].filter(([, section]) => !isEmpty(section));
  if (nonEmpty.length === 0) return root;
  const tenantSections: Record<string, PermissionSection> = Object.create(null);
  for (const [tenant, section] of nonEmpty) tenantSections[tenant] = section;
  return { ...root, tenants: tenantSections };
}

// ---------------------------------------------------------------------------------------------
// Public API

/**
 * Parses and validates a permission file. Throws {@link ConfigError} whose `field` is the path of
 * the first problem (`users.alice.grants[2].expires`); `source` (a file name) goes in the message.
 * Beyond the shape, it refuses what would otherwise fail at request time: a permission outside
 * the grammar (`users.alice.denies[0]`), a bad condition (`...when.ip[0]`, an empty `when`,
 * `from` equal to `to`), a parent role the section does not define (`roles.editor.inherits[0]`;
 * pass the policy's role names as `options.knownRoles` to allow those) and inheritance cycles.
 */
export function parsePermissionData(
  text: string,
  source?: string,
  options: ParsePermissionOptions = {},
): PermissionData {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    fail('(root)', 'expected valid JSON', source, error);
  }
  return fromSnapshot(toSnapshot(checked(validate(value, source), options, source)));
}

/** A {@link MemoryStore} loaded from a permission file; mutators stay available for tools. */
export class FileStore extends MemoryStore {
  override readonly kind: string = 'file';

  /**
   * Validates the shape of `data` (it may be hand-built) and loads it; throws {@link ConfigError}.
   * The deeper checks of {@link parsePermissionData} are left to it: stores that validate single
   * records with this class keep the permissions module's runtime rules (a broken allow skipped).
   */
  constructor(data: PermissionData, source?: string) {
    super();
    const snapshot = toSnapshot(validate(data, source));
    for (const user of snapshot.users) this.putUser(user);
    for (const { tenant, role } of snapshot.roles) this.putRole(tenant, role);
  }
}

/** Parses `text` (the file's contents; reading the file is the caller's job) into a store. */
export function createFileStore(
  text: string,
  source?: string,
  options?: ParsePermissionOptions,
): FileStore {
  return new FileStore(parsePermissionData(text, source, options), source);
}

/**
 * The store's contents in canonical file form; `JSON.stringify` it to write a permission file.
 * Throws {@link ConfigError} naming the path of a grant or assignment with an unknown key.
 */
export function exportPermissionData(store: MemoryStore): PermissionData {
  return fromSnapshot({ users: store.listUsers(), roles: store.listRoles() });
}
