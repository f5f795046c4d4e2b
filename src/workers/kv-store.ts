/**
 * A {@link PermissionStore} on Workers KV, the JWKS persistence hook on the same namespace, and
 * the seeding function `npm start` and the tests share.
 *
 * Key layout (docs/workers.md): every part is encoded with {@link encodeKeyPart} (through
 * `subjectStorageKey` / `tenantStorageKey`), so no subject, tenant or issuer can reach another's
 * key:
 *
 * - `user/<tenant key>/s:<subject>`: one user (`user/-/s:alice`, `user/t:acme/s:bob`), JSON
 *   `{ roles?, grants?, denies? }` in the permission-file shape, expiry as Unix seconds;
 * - `roles/<tenant key>`: every store role of a tenant in one value (`roles/-`), JSON
 *   `{ "<role>": { grants?, denies?, inherits? } }`, so `getRoles` is one read;
 * - `jwks/<encoded issuer>`: the last good key set of an issuer with the time it was fetched,
 *   `{ jwks, fetchedAt }` (a bare `{ keys }` written by older versions is still read).
 *
 * Types are structural (KvNamespaceLike): nothing here imports Workers code, so the same file runs
 * in Node (tests, tools) against any object with KV's `get` / `put` / `delete`.
 */

import { ConfigError, StoreError } from '../errors.ts';
import { encodeKeyPart, subjectStorageKey, tenantStorageKey } from '../stores/keys.ts';
import {
  FileStore,
  type GrantEntry,
  type PermissionData,
  type PermissionSection,
  parsePermissionData,
  type RoleAssignmentEntry,
  type RoleEntry,
} from '../stores/permission-data.ts';
import {
  freezeRoleList,
  freezeUser,
  grantEntries,
  maxRecordEntriesOption,
  recordTooLarge,
} from '../stores/records.ts';
import type { JSONWebKeySet, JwksPersistence, PersistedJwks } from '../token/index.ts';
import type { PermissionStore, RoleRecord, SubjectKey, UserRecord } from '../types.ts';

/** The part of a Workers `KVNamespace` binding this module uses. */
export interface KvNamespaceLike {
  /** Read as text: the stores bound its length before parsing it (KV allows 25 MiB values). */
  get(key: string, options: { type: 'text'; cacheTtl?: number }): Promise<string | null>;
  put(key: string, value: string, options?: { expirationTtl?: number }): Promise<void>;
  delete(key: string): Promise<void>;
}

/** One user's value under `user/...`: the permission-file entries of that subject. */
export interface KvUserValue {
  readonly roles?: readonly RoleAssignmentEntry[];
  readonly grants?: readonly GrantEntry[];
  readonly denies?: readonly GrantEntry[];
}

/** One tenant's value under `roles/...`: role name → role, as in the permission file. */
export type KvRolesValue = Readonly<Record<string, RoleEntry>>;

/**
 * Characters of stored JSON allowed per entry of `maxRecordEntries` (so 5,120,000 at the
 * default bound): a grant with a condition takes under 200, so only a value padded far past
 * what its entries need is refused for its length.
 */
export const RECORD_CHARS_PER_ENTRY = 512;

/** KV refuses keys longer than this many bytes. */
export const KV_MAX_KEY_BYTES = 512;
/** KV's minimum `cacheTtl`, seconds (lowered from 60 on 2026-01-30). */
export const KV_MIN_CACHE_TTL = 30;
/** KV's minimum `expirationTtl`, seconds. */
const KV_MIN_EXPIRATION_TTL = 60;

/** The KV keys Gatehouse reads and writes. All keys are ASCII, so length is bytes. */
export const kvKeys = {
  user: (key: SubjectKey): string => `user/${subjectStorageKey(key)}`,
  roles: (tenant: string | undefined): string => `roles/${tenantStorageKey(tenant)}`,
  jwks: (issuer: string): string => `jwks/${encodeKeyPart(issuer)}`,
} as const;

export interface KvStoreOptions {
  /**
   * Seconds KV keeps a read in the reading location's cache (KV `cacheTtl`); default 30,
   * 30 (KV's minimum) to 3600. Adds to the revocation delay: see docs/workers.md.
   */
  readonly cacheTtlSeconds?: number;
  /**
   * Entries one value may hold (a user's roles + grants + denies; a tenant's roles with their
   * grants, denies and parents; each condition list item and claim name counts too); default
   * 10000, 1 to 1000000. A larger value is refused (`store_record_too_large`) right after
   * parsing, before it is validated or compiled; a value longer than
   * {@link RECORD_CHARS_PER_ENTRY} characters per entry is refused before it is parsed.
   */
  readonly maxRecordEntries?: number;
}

function checkCacheTtl(value: unknown, field: string): number {
  if (value === undefined) return KV_MIN_CACHE_TTL;
  if (
    typeof value !== 'number' ||
    !Number.isInteger(value) ||
    value < KV_MIN_CACHE_TTL ||
    value > 3600
  ) {
    throw new ConfigError(field, `expected an integer from ${KV_MIN_CACHE_TTL} to 3600 (seconds)`);
  }
  return value;
}

const NO_ROLES: readonly RoleRecord[] = freezeRoleList([]);
/** Placeholder name under which a value is validated: the real subject may be any string. */
const PLACEHOLDER = 's';
const USER_KEYS = new Set(['roles', 'grants', 'denies']);

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function invalid(what: string, key: string, cause?: unknown): StoreError {
  // The key names the record for operators; the value (which may be anything) is never quoted.
  return new StoreError('store_invalid_record', `kv ${what} record at ${key} is malformed`, {
    key,
    ...(cause !== undefined && { cause }),
  });
}

/** Length of `value` when it is a list, else 0 (the shape is checked after the bound). */
function listLength(value: unknown): number {
  return Array.isArray(value) ? value.length : 0;
}

/**
 * `value[key]` when it is an own property, else undefined. A parsed value has Object.prototype
 * as its prototype: a plain `value.grants` would find a polluted `Object.prototype.grants`
 * where the stored value has none (issue 9, F3). Only what KV stored counts.
 */
function ownField(value: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(value, key) ? value[key] : undefined;
}

/**
 * Entries of a parsed user value, counted before anything is validated: the list lengths, then
 * the condition items of its grants and denies (grantEntries counts each grant itself once more).
 */
function userValueEntries(value: Record<string, unknown>, max: number): number {
  const grants = ownField(value, 'grants');
  const denies = ownField(value, 'denies');
  const count = listLength(ownField(value, 'roles')) + listLength(grants) + listLength(denies);
  if (count > max) return count;
  return count + conditionItems(grants, max - count) + conditionItems(denies, max - count);
}

/** Condition items of a list of grant entries (strings have none); stops past `limit`. */
function conditionItems(list: unknown, limit: number): number {
  if (!Array.isArray(list)) return 0;
  let count = 0;
  for (let i = 0; i < list.length && count <= limit; i++) count += grantEntries(list[i], limit) - 1;
  return count;
}

/** Entries of a parsed roles value: each role, its grants, denies (with conditions), parents. */
function rolesValueEntries(value: Record<string, unknown>, max: number): number {
  let count = 0;
  for (const role of Object.values(value)) {
    count += 1;
    if (isPlainObject(role)) {
      const grants = ownField(role, 'grants');
      const denies = ownField(role, 'denies');
      count += listLength(grants) + listLength(denies) + listLength(ownField(role, 'inherits'));
      if (count > max) return count;
      count += conditionItems(grants, max - count);
      count += conditionItems(denies, max - count);
    }
    if (count > max) return count;
  }
  return count;
}

/**
 * Permissions in Workers KV. Reads go through KV's own location cache (`cacheTtl`); put a
 * {@link CachedStore} in front (the Gatehouse does) for the per-isolate cache and single-flight.
 */
export class KvStore implements PermissionStore {
  readonly kind: string = 'kv';
  readonly cacheable: boolean = true;
  readonly #kv: KvNamespaceLike;
  readonly #cacheTtl: number;
  readonly #maxEntries: number;

  /** Validates the options now; a bad one throws {@link ConfigError} naming it. */
  constructor(kv: KvNamespaceLike, options: KvStoreOptions = {}) {
    if (typeof kv !== 'object' || kv === null || typeof kv.get !== 'function') {
      throw new ConfigError('kv', 'expected a KV namespace binding (an object with get)');
    }
    this.#kv = kv;
    this.#cacheTtl = checkCacheTtl(options.cacheTtlSeconds, 'kv.cacheTtlSeconds');
    this.#maxEntries = maxRecordEntriesOption(options.maxRecordEntries, 'kv.maxRecordEntries');
  }

  async getUser(key: SubjectKey): Promise<UserRecord | null> {
    const kvKey = kvKeys.user(key);
    // Such a key can never have been written (KV refuses it): the subject has no record.
    if (kvKey.length > KV_MAX_KEY_BYTES) return null;
    const value = await this.#read(kvKey);
    if (value === null) return null;
    if (!isPlainObject(value) || Object.keys(value).some((k) => !USER_KEYS.has(k))) {
      throw invalid('user', kvKey);
    }
    // A value of a few MiB parses in milliseconds but would take seconds to validate and
    // compile: count first.
    if (userValueEntries(value, this.#maxEntries) > this.#maxEntries) {
      throw recordTooLarge({ kind: this.kind, key: kvKey }, this.#maxEntries);
    }
    const grants = ownField(value, 'grants');
    const denies = ownField(value, 'denies');
    const roles = ownField(value, 'roles');
    const section: PermissionSection = {
      users: {
        [PLACEHOLDER]: {
          ...(grants !== undefined && { grants: grants as GrantEntry[] }),
          ...(denies !== undefined && { denies: denies as GrantEntry[] }),
        },
      },
      roles: {},
      user_roles: roles === undefined ? {} : { [PLACEHOLDER]: roles as RoleAssignmentEntry[] },
    };
    const found = await validated('user', kvKey, section).getUser({ subject: PLACEHOLDER });
    if (found === null) throw invalid('user', kvKey);
    return freezeUser(
      {
        subject: key.subject,
        ...(key.tenant !== undefined && { tenant: key.tenant }),
        roles: found.roles,
        grants: found.grants,
        denies: found.denies,
      },
      { kind: this.kind, key: kvKey },
    );
  }

  async getRoles(tenant: string | undefined): Promise<readonly RoleRecord[]> {
    const kvKey = kvKeys.roles(tenant);
    if (kvKey.length > KV_MAX_KEY_BYTES) return NO_ROLES;
    const value = await this.#read(kvKey);
    if (value === null) return NO_ROLES;
    if (!isPlainObject(value)) throw invalid('roles', kvKey);
    if (rolesValueEntries(value, this.#maxEntries) > this.#maxEntries) {
      throw recordTooLarge({ kind: this.kind, key: kvKey }, this.#maxEntries);
    }
    const store = validated('roles', kvKey, {
      users: {},
      roles: value as KvRolesValue,
      user_roles: {},
    });
    return freezeRoleList(store.listRoles().map((r) => r.role));
  }

  async #read(kvKey: string): Promise<unknown> {
    let text: string | null;
    try {
      text = await this.#kv.get(kvKey, { type: 'text', cacheTtl: this.#cacheTtl });
    } catch (error) {
      // The binding's message may quote backend details; keep it only as the cause.
      throw new StoreError('store_unavailable', 'permission store (kv) unavailable', {
        cause: error,
      });
    }
    if (text === null) return null;
    // KV holds values up to 25 MiB; parsing that costs more than a request may. A record of
    // maxRecordEntries entries fits in far fewer characters, so a longer one is refused unread.
    if (typeof text === 'string' && text.length > this.#maxEntries * RECORD_CHARS_PER_ENTRY) {
      throw recordTooLarge({ kind: this.kind, key: kvKey }, this.#maxEntries);
    }
    try {
      return JSON.parse(text);
    } catch (error) {
      // Not JSON: malformed, not an outage.
      throw invalid('stored', kvKey, error);
    }
  }
}

/** Validates one section with the permission file's rules; a mistake is store_invalid_record. */
function validated(what: string, kvKey: string, section: PermissionSection): FileStore {
  try {
    return new FileStore(section as PermissionData);
  } catch (error) {
    throw invalid(what, kvKey, error);
  }
}

export interface KvJwksPersistenceOptions {
  /**
   * Seconds a stored key set lives in KV (`expirationTtl`); default 86400 (the default
   * maxStaleSeconds), 60 to 604800. Set it to the largest `maxStaleSeconds` of your issuers
   * (the guard Worker does): the verifier ignores a persisted set older than that anyway.
   */
  readonly expirationTtlSeconds?: number;
  /** Seconds KV caches a read in the reading location; default 30, 30 to 3600. */
  readonly cacheTtlSeconds?: number;
  /**
   * An unchanged key set is written again once the stored `fetchedAt` is this many seconds old,
   * so cold isolates see a recent fetch time; default 300 (half the default JWKS TTL of 600),
   * 30 to 86400.
   */
  readonly rewriteAfterSeconds?: number;
}

/** What one isolate knows is stored for an issuer: the keys as JSON and their fetch time. */
interface KnownEntry {
  readonly keys: string;
  readonly fetchedAt: number;
}

/** Parsed JSON text; null when absent or not JSON (then the keys are fetched again). */
function parseOrNull(text: string | null): unknown {
  if (text === null) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** A stored value in either shape; null when it is neither. */
function readPersisted(value: unknown): PersistedJwks | { legacy: JSONWebKeySet } | null {
  if (!isPlainObject(value)) return null;
  if (Object.hasOwn(value, 'jwks') || Object.hasOwn(value, 'fetchedAt')) {
    const { jwks, fetchedAt } = value;
    if (!isPlainObject(jwks) || !Array.isArray(jwks.keys)) return null;
    if (typeof fetchedAt !== 'number' || !Number.isFinite(fetchedAt)) return null;
    return { jwks: jwks as unknown as JSONWebKeySet, fetchedAt };
  }
  // Legacy: a bare key set, written before fetch times were kept.
  if (!Array.isArray(value.keys)) return null;
  return { legacy: value as unknown as JSONWebKeySet };
}

/**
 * The core's {@link JwksPersistence} on KV: a cold isolate loads the last good key set, with the
 * time it was fetched, instead of fetching the identity provider. The verifier runs its TTL and
 * `maxStaleSeconds` from that time, so a persisted set is never used past its staleness bound by
 * a new isolate (and one older than the TTL is refetched first).
 *
 * Writes are bounded (KV allows 1 a second per key, 1000 a day on the free plan): a key set is
 * written when its keys change, or when the stored fetch time is `rewriteAfterSeconds` old; before
 * writing, the stored value is read again (reads are cheap), so isolates that refetch the same
 * keys do not each write.
 */
export class KvJwksPersistence implements JwksPersistence {
  readonly #kv: KvNamespaceLike;
  readonly #expirationTtl: number;
  readonly #cacheTtl: number;
  readonly #rewriteAfterMs: number;
  /** What this isolate last read or wrote per issuer, to skip needless writes. */
  readonly #known = new Map<string, KnownEntry>();

  constructor(kv: KvNamespaceLike, options: KvJwksPersistenceOptions = {}) {
    if (typeof kv !== 'object' || kv === null || typeof kv.put !== 'function') {
      throw new ConfigError('kv', 'expected a KV namespace binding (an object with get and put)');
    }
    this.#kv = kv;
    const ttl = options.expirationTtlSeconds ?? 86_400;
    if (!Number.isInteger(ttl) || ttl < KV_MIN_EXPIRATION_TTL || ttl > 604_800) {
      throw new ConfigError('jwks.expirationTtlSeconds', 'expected an integer from 60 to 604800');
    }
    this.#expirationTtl = ttl;
    this.#cacheTtl = checkCacheTtl(options.cacheTtlSeconds, 'jwks.cacheTtlSeconds');
    const rewrite = options.rewriteAfterSeconds ?? 300;
    if (!Number.isInteger(rewrite) || rewrite < 30 || rewrite > 86_400) {
      throw new ConfigError('jwks.rewriteAfterSeconds', 'expected an integer from 30 to 86400');
    }
    this.#rewriteAfterMs = rewrite * 1000;
  }

  /** The stored value in either shape (null when absent or neither); remembered per issuer. */
  async #read(issuer: string, key: string): Promise<ReturnType<typeof readPersisted>> {
    const value = readPersisted(
      parseOrNull(await this.#kv.get(key, { type: 'text', cacheTtl: this.#cacheTtl })),
    );
    if (value !== null) {
      this.#known.set(
        issuer,
        'legacy' in value
          ? // No time: the next save replaces it with the dated shape.
            { keys: JSON.stringify(value.legacy), fetchedAt: Number.NEGATIVE_INFINITY }
          : { keys: JSON.stringify(value.jwks), fetchedAt: value.fetchedAt },
      );
    }
    return value;
  }

  async load(issuer: string): Promise<PersistedJwks | JSONWebKeySet | null> {
    const key = kvKeys.jwks(issuer);
    if (key.length > KV_MAX_KEY_BYTES) return null;
    // The verifier validates every key again before use; here only the outline is checked. A
    // legacy bare set counts as fetched now (the core's rule) until the next save dates it.
    const value = await this.#read(issuer, key);
    if (value === null) return null;
    return 'legacy' in value ? value.legacy : value;
  }

  async save(issuer: string, jwks: JSONWebKeySet, meta?: { fetchedAt: number }): Promise<void> {
    const key = kvKeys.jwks(issuer);
    if (key.length > KV_MAX_KEY_BYTES) return;
    const fetchedAt = meta?.fetchedAt ?? Date.now();
    if (!Number.isFinite(fetchedAt)) return;
    const keys = JSON.stringify(jwks);
    const current = (known: KnownEntry | null | undefined): boolean =>
      known !== null &&
      known !== undefined &&
      // Never replace a newer fetch with an older one; skip an unchanged, recently dated set.
      (known.fetchedAt > fetchedAt ||
        (known.keys === keys && fetchedAt - known.fetchedAt < this.#rewriteAfterMs));
    if (current(this.#known.get(issuer))) return;
    // Another isolate may have written since this one last looked.
    const stored = await this.#read(issuer, key).catch(() => null);
    if (stored !== null && current(this.#known.get(issuer))) return;
    const value: PersistedJwks = { jwks, fetchedAt };
    await this.#kv.put(key, JSON.stringify(value), { expirationTtl: this.#expirationTtl });
    this.#known.set(issuer, { keys, fetchedAt });
  }
}

/** One KV write: key and JSON text. */
export interface KvEntry {
  readonly key: string;
  readonly value: string;
}

function userValue(
  section: PermissionSection,
  subject: string,
): KvUserValue & Record<string, unknown> {
  const entry = Object.hasOwn(section.users, subject) ? section.users[subject] : undefined;
  const roles = Object.hasOwn(section.user_roles, subject)
    ? section.user_roles[subject]
    : undefined;
  return {
    ...(roles !== undefined && roles.length > 0 && { roles }),
    ...(entry?.grants !== undefined && { grants: entry.grants }),
    ...(entry?.denies !== undefined && { denies: entry.denies }),
  };
}

function sectionEntries(section: PermissionSection, tenant: string | undefined): KvEntry[] {
  const out: KvEntry[] = [];
  const subjects = new Set([...Object.keys(section.users), ...Object.keys(section.user_roles)]);
  for (const subject of subjects) {
    const key = kvKeys.user(tenant === undefined ? { subject } : { subject, tenant });
    out.push({ key, value: JSON.stringify(userValue(section, subject)) });
  }
  if (Object.keys(section.roles).length > 0) {
    out.push({ key: kvKeys.roles(tenant), value: JSON.stringify(section.roles) });
  }
  return out;
}

/**
 * The KV entries for permission data (the permission-file shape, such as demo/permissions.json):
 * one per user, one per tenant with roles. Text is parsed and validated with
 * {@link parsePermissionData}; a mistake throws {@link ConfigError} naming the path. A key KV
 * would refuse (over 512 bytes) throws too, naming the subject's path.
 */
export function permissionKvEntries(data: string | PermissionData, source?: string): KvEntry[] {
  const parsed =
    typeof data === 'string'
      ? parsePermissionData(data, source)
      : parsePermissionData(JSON.stringify(data), source);
  const entries = sectionEntries(parsed, undefined);
  for (const [tenant, section] of Object.entries(parsed.tenants ?? {})) {
    entries.push(...sectionEntries(section, tenant));
  }
  for (const entry of entries) {
    if (entry.key.length > KV_MAX_KEY_BYTES) {
      throw new ConfigError(entry.key.slice(0, 60), `expected a KV key of at most 512 bytes`);
    }
  }
  return entries;
}

/**
 * Writes permission data into a KV namespace (what `npm start` and the tests seed). Writes only:
 * keys of subjects no longer in the data are left alone. Returns the number of keys written.
 */
export async function seedKv(
  kv: KvNamespaceLike,
  data: string | PermissionData,
  source?: string,
): Promise<number> {
  const entries = permissionKvEntries(data, source);
  // KV allows one write a second per key; these keys are distinct, so writing in parallel is fine.
  await Promise.all(entries.map((e) => kv.put(e.key, e.value)));
  return entries.length;
}
