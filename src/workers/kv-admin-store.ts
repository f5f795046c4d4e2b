/**
 * The management side of the Workers KV store: an {@link AdminStore} over one KV namespace, in
 * exactly the key layout and value shapes {@link KvStore} reads (src/workers/kv-store.ts,
 * docs/workers.md), so what management writes is what the edges read.
 *
 * - `user/<tenant key>/s:<subject>`: one value per subject, the permission-file entries
 *   `{ roles?, grants?, denies? }` (expiry as `expires`, Unix seconds). A subject left with
 *   nothing keeps the value `{}`: "known, no permissions".
 * - `roles/<tenant key>`: a tenant's store roles in one value `{ "<role>": { grants?, ... } }`;
 *   an empty set deletes the key.
 * - `meta/<name>`: a permanent marker (`meta/seeded`: what seeding wrote), no expiry.
 * - `audit/<record id>`: one audit record, JSON, with `expirationTtl` = the retention. Ids start
 *   with the ISO time, so keys sort by time and `listAudit` skips old ones without reading them.
 *   Each key carries the record's target as metadata (when it fits KV's 1024 bytes), so filtering
 *   by subject, role or tenant reads only the matching records.
 *
 * Values are read through KvStore's own validation, so a value the edges would refuse is refused
 * here too (`store_invalid_record` naming the key) rather than silently rewritten. Nothing is
 * dropped on the way in or out: expired grants stay visible and revocable.
 *
 * Consistency: KV has none across locations. A write is visible at once where it was made and
 * elsewhere within about 60 s; reads through Cloudflare's API (wrangler `--remote`) can be that
 * stale too. Writes are last-writer-wins per key (KV has no compare-and-swap), so two admins
 * changing one subject within that window can lose a change (operations.ts says the same).
 *
 * Platform-free: the namespace is structural ({@link KvAdminNamespace}), the shape of a Workers
 * `KVNamespace` binding, so this file runs in the Worker (the admin API, on `env.PERMISSIONS`) and
 * in Node (the CLI, through wrangler's platform proxy or the wrangler subprocess adapter).
 */

import { matchesAudit } from '../admin/memory.ts';
import {
  type AdminStore,
  type AuditFilter,
  type AuditRecord,
  checkMarkerName,
  type Progress,
  type Snapshot,
} from '../admin/types.ts';
import { AdminError, ConfigError, GatehouseError, StoreError } from '../errors.ts';
import { parseSubjectStorageKey, parseTenantStorageKey } from '../stores/keys.ts';
import { MemoryStore, type TenantRole } from '../stores/memory.ts';
import { exportPermissionData, type PermissionData } from '../stores/permission-data.ts';
import type { RoleRecord, SubjectKey, UserRecord } from '../types.ts';
import { KV_MAX_KEY_BYTES, type KvNamespaceLike, KvStore, kvKeys } from './kv-store.ts';

/** One key of a KV list page. */
export interface KvListKey {
  readonly name: string;
  /** Unix seconds at which KV deletes the key, when it has an expiry. */
  readonly expiration?: number;
  readonly metadata?: unknown;
}

/** One page of a KV list. */
export interface KvListResult {
  readonly keys: readonly KvListKey[];
  readonly list_complete: boolean;
  readonly cursor?: string;
}

/**
 * The part of a Workers `KVNamespace` binding management uses. A binding (`env.PERMISSIONS`),
 * wrangler's platform proxy and the wrangler subprocess adapter (src/cli/kv-targets.ts) all fit.
 */
export interface KvAdminNamespace {
  get(key: string, type: 'text'): Promise<string | null>;
  put(
    key: string,
    value: string,
    options?: { expirationTtl?: number; metadata?: Record<string, unknown> },
  ): Promise<void>;
  delete(key: string): Promise<void>;
  list(options: { prefix: string; cursor?: string; limit?: number }): Promise<KvListResult>;
  /**
   * Optional: many values in one call (null for a missing key), for adapters where each call is
   * expensive (one wrangler process). Without it, values are read one by one, a few at a time.
   */
  getMany?(keys: readonly string[]): Promise<ReadonlyMap<string, string | null>>;
}

export interface KvAdminStoreOptions {
  /** For output (`kv local .wrangler/state`); default `kv`. */
  readonly description?: string;
  /** Reads in flight at once during export and audit listing; default 16, 1 to 100. */
  readonly concurrency?: number;
}

/** Key prefixes, each ending in `/`. */
const USER_PREFIX = 'user/';
const ROLES_PREFIX = 'roles/';
const AUDIT_PREFIX = 'audit/';
/** `meta/<name>`: permanent markers (no expirationTtl); the edges never read them. */
const META_PREFIX = 'meta/';
/** KV's smallest `expirationTtl`, seconds. */
const KV_MIN_EXPIRATION_TTL = 60;
/** KV refuses metadata larger than this, serialised. */
const KV_MAX_METADATA_BYTES = 1024;
/** Keys per list page (KV's maximum). */
const LIST_LIMIT = 1000;
/** Keys per getMany call (Cloudflare's bulk read takes at most 100). */
const MANY_LIMIT = 100;
/** Names the permission file (and so KvStore) refuses as record keys. */
const RESERVED_NAMES = new Set(['__proto__', 'prototype', 'constructor']);
/** The placeholder subject a single value is converted under; the real one may be any string. */
const PLACEHOLDER = 's';

const utf8 = new TextEncoder();

function byteLength(text: string): number {
  return utf8.encode(text).length;
}

function unavailable(error: unknown): never {
  // A store or admin error is already what the caller should see.
  if (error instanceof GatehouseError) throw error;
  // The binding's message may carry backend details; keep it only as the cause.
  throw new StoreError('store_unavailable', 'permission store (kv) unavailable', { cause: error });
}

function invalid(what: string, key: string, cause?: unknown): StoreError {
  // The key names the record for operators; the value is never quoted.
  return new StoreError(
    'store_invalid_record',
    `kv ${what} record at ${key} is malformed`,
    cause === undefined ? undefined : { cause },
  );
}

function parseJson(what: string, key: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw invalid(what, key, error);
  }
}

/** A namespace holding one already-read value, so KvStore validates it as the edges do. */
function oneValue(text: string): KvNamespaceLike {
  return {
    get: async () => text,
    put: async () => {},
    delete: async () => {},
  };
}

/** The file form of `store`; a record the file cannot express is refused, never written. */
function fileForm(store: MemoryStore, rename: (field: string) => string): PermissionData {
  try {
    return exportPermissionData(store);
  } catch (error) {
    // A grant or assignment with a key the file has no way to say (a misspelt `expires`):
    // dropping it would make the grant permanent.
    if (!(error instanceof ConfigError)) throw error;
    const field = rename(error.field);
    throw new AdminError('invalid_request', `${field}: ${error.expected}`, {
      field,
      cause: error,
    });
  }
}

/** The KV value of a user: the permission-file entries, exactly as seeding writes them. */
function userValue(record: UserRecord): string {
  const store = new MemoryStore();
  store.putUser({
    subject: PLACEHOLDER,
    roles: record.roles,
    grants: record.grants,
    denies: record.denies,
  });
  // `users.s.grants[0].expires` → `grants[0].expires`, `user_roles.s[0]` → `roles[0]`.
  const data = fileForm(store, (field) =>
    field.replace(`users.${PLACEHOLDER}.`, '').replace(`user_roles.${PLACEHOLDER}`, 'roles'),
  );
  const entry = data.users[PLACEHOLDER];
  const roles = data.user_roles[PLACEHOLDER];
  return JSON.stringify({
    ...(roles !== undefined && { roles }),
    ...(entry?.grants !== undefined && { grants: entry.grants }),
    ...(entry?.denies !== undefined && { denies: entry.denies }),
  });
}

/** The KV value of a tenant's role set: `{ "<role>": { grants?, denies?, inherits? } }`. */
function rolesValue(roles: readonly RoleRecord[]): string {
  const store = new MemoryStore();
  for (const role of roles) store.putRole(undefined, role);
  return JSON.stringify(fileForm(store, (field) => field.replace(/^roles\./, '')).roles);
}

/** The time an audit key's id starts with, ms; undefined when the id does not start with one. */
function auditKeyTime(name: string): number | undefined {
  const id = name.slice(AUDIT_PREFIX.length);
  const end = id.indexOf('~');
  const ms = Date.parse(end < 0 ? id : id.slice(0, end));
  return Number.isNaN(ms) ? undefined : ms;
}

type Target = AuditRecord['target'];

/** The target stored as a key's metadata, when it is one. */
function metadataTarget(metadata: unknown): Target | undefined {
  if (typeof metadata !== 'object' || metadata === null) return undefined;
  const target = (metadata as { target?: unknown }).target;
  if (typeof target !== 'object' || target === null) return undefined;
  for (const field of ['tenant', 'subject', 'role'] as const) {
    const value = (target as Record<string, unknown>)[field];
    if (value !== undefined && typeof value !== 'string') return undefined;
  }
  return target as Target;
}

/** The target part of {@link matchesAudit}: without it the record cannot match. */
function targetMatches(target: Target, filter: AuditFilter): boolean {
  if (filter.tenant !== undefined && target.tenant !== filter.tenant) return false;
  if (filter.subject !== undefined && target.subject !== filter.subject) return false;
  if (filter.role !== undefined && target.role !== filter.role) return false;
  return true;
}

function readAuditRecord(key: string, text: string): AuditRecord {
  const value = parseJson('audit', key, text);
  if (
    typeof value !== 'object' ||
    value === null ||
    Array.isArray(value) ||
    typeof (value as AuditRecord).id !== 'string' ||
    typeof (value as AuditRecord).time !== 'string' ||
    typeof (value as AuditRecord).target !== 'object' ||
    (value as AuditRecord).target === null
  ) {
    throw invalid('audit', key);
  }
  return value as AuditRecord;
}

/** Management storage on Workers KV; see the module comment for layout and consistency. */
export class KvAdminStore implements AdminStore {
  readonly description: string;
  readonly #kv: KvAdminNamespace;
  readonly #concurrency: number;

  constructor(kv: KvAdminNamespace, options: KvAdminStoreOptions = {}) {
    this.#kv = kv;
    this.description = options.description ?? 'kv';
    const concurrency = options.concurrency ?? 16;
    this.#concurrency = Math.min(100, Math.max(1, Math.floor(concurrency)));
  }

  async readUser(key: SubjectKey): Promise<UserRecord | null> {
    const kvKey = kvKeys.user(key);
    // KV refuses such a key, so it can never have been written.
    if (kvKey.length > KV_MAX_KEY_BYTES) return null;
    const text = await this.#get(kvKey);
    return text === null ? null : this.#toUser(key, kvKey, text);
  }

  checkKey(key: SubjectKey): void {
    const kvKey = kvKeys.user(key);
    if (kvKey.length > KV_MAX_KEY_BYTES) {
      throw new AdminError(
        'invalid_request',
        `subject: ${key.subject.slice(0, 40)}… is too long for a KV key (${kvKey.length} of at ` +
          `most ${KV_MAX_KEY_BYTES} bytes once encoded, with the tenant)`,
        { field: 'subject' },
      );
    }
  }

  async writeUser(
    key: SubjectKey,
    _before: UserRecord | null,
    after: UserRecord | null,
  ): Promise<void> {
    this.checkKey(key);
    const kvKey = kvKeys.user(key);
    if (after === null) {
      await this.#call(() => this.#kv.delete(kvKey));
      return;
    }
    const value = userValue(after);
    await this.#call(() => this.#kv.put(kvKey, value));
  }

  async readRoles(tenant: string | undefined): Promise<readonly RoleRecord[]> {
    const kvKey = kvKeys.roles(tenant);
    if (kvKey.length > KV_MAX_KEY_BYTES) return [];
    const text = await this.#get(kvKey);
    return text === null ? [] : this.#toRoles(tenant, kvKey, text);
  }

  async writeRoles(
    tenant: string | undefined,
    _before: readonly RoleRecord[],
    after: readonly RoleRecord[],
  ): Promise<void> {
    const kvKey = kvKeys.roles(tenant);
    if (kvKey.length > KV_MAX_KEY_BYTES) {
      throw new AdminError(
        'invalid_request',
        `tenant: too long for a KV key (at most ${KV_MAX_KEY_BYTES} bytes once encoded)`,
        { field: 'tenant' },
      );
    }
    const reserved = after.find((role) => RESERVED_NAMES.has(role.name));
    if (reserved !== undefined) {
      // The edges read the role set as a permission-file object, which refuses these names:
      // storing one would make the whole tenant's roles unreadable (503 for every request).
      throw new AdminError('invalid_request', `name: ${reserved.name} is reserved`, {
        field: 'name',
      });
    }
    if (after.length === 0) {
      await this.#call(() => this.#kv.delete(kvKey));
      return;
    }
    const value = rolesValue(after);
    await this.#call(() => this.#kv.put(kvKey, value));
  }

  async readMarker(name: string): Promise<string | null> {
    checkMarkerName(name);
    return this.#call(() => this.#kv.get(`${META_PREFIX}${name}`, 'text'));
  }

  async writeMarker(name: string, value: string): Promise<void> {
    checkMarkerName(name);
    await this.#call(() => this.#kv.put(`${META_PREFIX}${name}`, value));
  }

  async exportAll(progress?: Progress): Promise<Snapshot> {
    const [userKeys, roleKeys] = await Promise.all([
      this.#listAll(USER_PREFIX),
      this.#listAll(ROLES_PREFIX),
    ]);
    // Keys no subject or tenant encodes to (written by hand) are never read by the edges either.
    const users = userKeys.flatMap((k) => {
      const key = parseSubjectStorageKey(k.name.slice(USER_PREFIX.length));
      return key === undefined ? [] : [{ name: k.name, key }];
    });
    const tenants = roleKeys.flatMap((k) => {
      const parsed = parseTenantStorageKey(k.name.slice(ROLES_PREFIX.length));
      return parsed === undefined ? [] : [{ name: k.name, tenant: parsed.tenant }];
    });
    const total = users.length + tenants.length;
    let done = 0;
    const tick = (count: number) => {
      done += count;
      progress?.(done, total);
    };
    const userTexts = await this.#readMany(
      users.map((u) => u.name),
      tick,
    );
    const roleTexts = await this.#readMany(
      tenants.map((t) => t.name),
      tick,
    );
    const records = await Promise.all(
      users.flatMap(({ name, key }, i) => {
        const text = userTexts[i];
        // Deleted between the list and the read.
        return text === null || text === undefined ? [] : [this.#toUser(key, name, text)];
      }),
    );
    const roleSets = await Promise.all(
      tenants.flatMap(({ name, tenant }, i) => {
        const text = roleTexts[i];
        if (text === null || text === undefined) return [];
        return [
          this.#toRoles(tenant, name, text).then((list) => list.map((role) => ({ tenant, role }))),
        ];
      }),
    );
    const roles: TenantRole[] = roleSets.flat();
    return { users: records, roles };
  }

  async appendAudit(record: AuditRecord, retentionSeconds: number): Promise<void> {
    const key = `${AUDIT_PREFIX}${record.id}`;
    if (byteLength(key) > KV_MAX_KEY_BYTES) {
      throw new AdminError('invalid_request', 'audit id: too long for a KV key', { field: 'id' });
    }
    const metadata = { target: record.target };
    const fits = byteLength(JSON.stringify(metadata)) <= KV_MAX_METADATA_BYTES;
    const expirationTtl = Math.max(KV_MIN_EXPIRATION_TTL, Math.ceil(retentionSeconds));
    const value = JSON.stringify(record);
    await this.#call(() =>
      this.#kv.put(key, value, fits ? { expirationTtl, metadata } : { expirationTtl }),
    );
  }

  async listAudit(filter: AuditFilter): Promise<readonly AuditRecord[]> {
    const limit = filter.limit ?? 100;
    if (limit <= 0) return [];
    const keys = await this.#listAll(AUDIT_PREFIX);
    // Newest first; keys skipped here are never read.
    const candidates = keys
      .filter((k) => {
        const time = auditKeyTime(k.name);
        if (time !== undefined && time < filter.since) return false;
        const target = metadataTarget(k.metadata);
        return target === undefined || targetMatches(target, filter);
      })
      .map((k) => k.name)
      .sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
    const found: AuditRecord[] = [];
    // Read a batch at a time and stop once `limit` records matched: the rest are older.
    const batch = this.#kv.getMany === undefined ? this.#concurrency : MANY_LIMIT;
    for (let start = 0; start < candidates.length && found.length < limit; start += batch) {
      const names = candidates.slice(start, start + batch);
      const texts = await this.#readMany(names);
      names.forEach((name, i) => {
        const text = texts[i];
        // Expired between the list and the read.
        if (text === null || text === undefined) return;
        const record = readAuditRecord(name, text);
        if (matchesAudit(record, filter)) found.push(record);
      });
    }
    return found.sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0)).slice(0, limit);
  }

  // -------------------------------------------------------------------------------------------

  /** A stored user value as a record, validated as KvStore (the edges) validates it. */
  async #toUser(key: SubjectKey, kvKey: string, text: string): Promise<UserRecord> {
    // Parsed here too for this module's own error on text that is not JSON.
    parseJson('user', kvKey, text);
    const record = await new KvStore(oneValue(text)).getUser(key);
    if (record === null) throw invalid('user', kvKey);
    return record;
  }

  /** A stored role set as records, validated as KvStore validates it. */
  async #toRoles(
    tenant: string | undefined,
    kvKey: string,
    text: string,
  ): Promise<readonly RoleRecord[]> {
    parseJson('roles', kvKey, text);
    return new KvStore(oneValue(text)).getRoles(tenant);
  }

  async #call<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      unavailable(error);
    }
  }

  #get(key: string): Promise<string | null> {
    return this.#call(() => this.#kv.get(key, 'text'));
  }

  /** Every key under `prefix`, following the cursor. */
  async #listAll(prefix: string): Promise<KvListKey[]> {
    const keys: KvListKey[] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = await this.#call(() =>
        this.#kv.list(
          cursor === undefined
            ? { prefix, limit: LIST_LIMIT }
            : { prefix, cursor, limit: LIST_LIMIT },
        ),
      );
      keys.push(...page.keys);
      if (page.list_complete || page.cursor === undefined || page.cursor === '') return keys;
      cursor = page.cursor;
    }
  }

  /** The values of `keys`, in order (null where missing), a bounded number in flight. */
  async #readMany(
    keys: readonly string[],
    tick?: (count: number) => void,
  ): Promise<(string | null)[]> {
    const out: (string | null)[] = new Array(keys.length).fill(null);
    const getMany = this.#kv.getMany?.bind(this.#kv);
    if (getMany !== undefined) {
      for (let start = 0; start < keys.length; start += MANY_LIMIT) {
        const chunk = keys.slice(start, start + MANY_LIMIT);
        const values = await this.#call(() => getMany(chunk));
        chunk.forEach((key, i) => {
          out[start + i] = values.get(key) ?? null;
        });
        tick?.(chunk.length);
      }
      return out;
    }
    let next = 0;
    const worker = async () => {
      while (next < keys.length) {
        const i = next++;
        out[i] = await this.#get(keys[i]!);
        tick?.(1);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#concurrency, keys.length) }, worker));
    return out;
  }
}
