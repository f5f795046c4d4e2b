/**
 * An in-memory, tenant-aware {@link PermissionStore} for tests, local development and tools.
 * The JSON file store is this store loaded from a file.
 */

import { StoreError } from '../errors.ts';
import type { PermissionStore, RoleRecord, SubjectKey, UserRecord } from '../types.ts';
import { subjectStorageKey, tenantStorageKey } from './keys.ts';
import { freezeRole, freezeRoleList, freezeUser } from './records.ts';

/** A role definition together with the tenant it belongs to (absent without tenancy). */
export interface TenantRole {
  readonly tenant: string | undefined;
  readonly role: RoleRecord;
}

const NO_ROLES: readonly RoleRecord[] = freezeRoleList([]);

export class MemoryStore implements PermissionStore {
  readonly kind: string = 'memory';
  readonly cacheable: boolean = true;
  // Keyed by the encoded (tenant, subject) pair, so no subject string can reach another record.
  readonly #users = new Map<string, UserRecord>();
  // Tenant key → role name → role.
  readonly #roles = new Map<string, Map<string, RoleRecord>>();
  readonly #roleTenants = new Map<string, string | undefined>();
  // The same array until the tenant's roles change: callers memoise compiled role graphs by it.
  readonly #roleLists = new Map<string, readonly RoleRecord[]>();
  #failure: StoreError | null = null;

  /**
   * Stores a deep-frozen copy; later changes to `record` do not reach the store. Only own data
   * properties are read (records.ts); anything else throws `store_invalid_record`. Not bounded
   * here: a record over `maxRecordEntries` is refused when the core reads it.
   */
  putUser(record: UserRecord): void {
    const key = subjectStorageKey(record);
    this.#users.set(key, freezeUser(record, { kind: this.kind, key }));
  }

  /** Returns whether a record was removed. */
  deleteUser(key: SubjectKey): boolean {
    return this.#users.delete(subjectStorageKey(key));
  }

  /** Stores a deep-frozen copy of the role under its name, replacing any role of that name. */
  putRole(tenant: string | undefined, role: RoleRecord): void {
    const tenantKey = tenantStorageKey(tenant);
    let roles = this.#roles.get(tenantKey);
    if (roles === undefined) {
      roles = new Map();
      this.#roles.set(tenantKey, roles);
      this.#roleTenants.set(tenantKey, tenant);
    }
    roles.set(role.name, freezeRole(role, { kind: this.kind, key: tenantKey }));
    this.#roleLists.delete(tenantKey);
  }

  /** Returns whether a role was removed. */
  deleteRole(tenant: string | undefined, name: string): boolean {
    const tenantKey = tenantStorageKey(tenant);
    const roles = this.#roles.get(tenantKey);
    if (roles === undefined) return false;
    const deleted = roles.delete(name);
    this.#roleLists.delete(tenantKey);
    if (roles.size === 0) {
      this.#roles.delete(tenantKey);
      this.#roleTenants.delete(tenantKey);
    }
    return deleted;
  }

  /**
   * Simulates an outage: while set, every `getUser` / `getRoles` rejects with a StoreError
   * (`store_unavailable`, the given error as `cause`; a StoreError is thrown as is). `null` heals.
   */
  failWith(error: unknown): void {
    if (error === null || error === undefined) {
      this.#failure = null;
    } else if (error instanceof StoreError) {
      this.#failure = error;
    } else {
      this.#failure = new StoreError('store_unavailable', `${this.kind} store unavailable`, {
        cause: error,
      });
    }
  }

  async getUser(key: SubjectKey): Promise<UserRecord | null> {
    this.#throwIfFailing();
    return this.#users.get(subjectStorageKey(key)) ?? null;
  }

  async getRoles(tenant: string | undefined): Promise<readonly RoleRecord[]> {
    this.#throwIfFailing();
    const tenantKey = tenantStorageKey(tenant);
    const roles = this.#roles.get(tenantKey);
    // Unknown tenants share one empty list, so lookups for arbitrary tenants allocate nothing.
    if (roles === undefined) return NO_ROLES;
    let list = this.#roleLists.get(tenantKey);
    if (list === undefined) {
      list = freezeRoleList([...roles.values()]);
      this.#roleLists.set(tenantKey, list);
    }
    return list;
  }

  /** Every user record, in insertion order. For tools (export); ignores {@link failWith}. */
  listUsers(): readonly UserRecord[] {
    return Object.freeze([...this.#users.values()]);
  }

  /** Every role of every tenant, in insertion order. For tools; ignores {@link failWith}. */
  listRoles(): readonly TenantRole[] {
    const out: TenantRole[] = [];
    for (const [tenantKey, roles] of this.#roles) {
      const tenant = this.#roleTenants.get(tenantKey);
      for (const role of roles.values()) out.push(Object.freeze({ tenant, role }));
    }
    return Object.freeze(out);
  }

  #throwIfFailing(): void {
    if (this.#failure !== null) throw this.#failure;
  }
}
