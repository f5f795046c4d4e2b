/**
 * An {@link AdminStore} over a {@link MemoryStore}: the edges' read side and management's write
 * side share the same records, so tests (and the admin API's tests) can change permissions and
 * watch a Gatehouse on the same store pick the change up. Audit records live in memory too.
 */
import { subjectStorageKey } from '../stores/keys.ts';
import { MemoryStore } from '../stores/memory.ts';
import type { RoleRecord, SubjectKey, UserRecord } from '../types.ts';
import {
  type AdminStore,
  type AuditFilter,
  type AuditRecord,
  checkMarkerName,
  type Snapshot,
} from './types.ts';

export class MemoryAdminStore implements AdminStore {
  readonly description = 'memory';
  readonly store: MemoryStore;
  readonly #audit: { record: AuditRecord; expiresAt: number }[] = [];
  readonly #markers = new Map<string, string>();
  readonly #now: () => number;

  constructor(store: MemoryStore = new MemoryStore(), now: () => number = Date.now) {
    this.store = store;
    this.#now = now;
  }

  async readUser(key: SubjectKey): Promise<UserRecord | null> {
    return this.store.listUsers().find((u) => sameKey(u, key)) ?? null;
  }

  async writeUser(key: SubjectKey, _before: UserRecord | null, after: UserRecord | null) {
    if (after === null) this.store.deleteUser(key);
    else this.store.putUser(after);
  }

  async readRoles(tenant: string | undefined): Promise<readonly RoleRecord[]> {
    return this.store
      .listRoles()
      .filter((r) => r.tenant === tenant)
      .map((r) => r.role);
  }

  async writeRoles(
    tenant: string | undefined,
    before: readonly RoleRecord[],
    after: readonly RoleRecord[],
  ): Promise<void> {
    for (const role of before) this.store.deleteRole(tenant, role.name);
    for (const role of after) this.store.putRole(tenant, role);
  }

  async exportAll(): Promise<Snapshot> {
    return { users: this.store.listUsers(), roles: this.store.listRoles() };
  }

  async appendAudit(record: AuditRecord, retentionSeconds: number): Promise<void> {
    this.#audit.push({ record, expiresAt: this.#now() + retentionSeconds * 1000 });
  }

  async listAudit(filter: AuditFilter): Promise<readonly AuditRecord[]> {
    const now = this.#now();
    return this.#audit
      .filter(({ expiresAt }) => expiresAt > now)
      .map(({ record }) => record)
      .filter((r) => matchesAudit(r, filter))
      .sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
      .slice(0, filter.limit ?? 100);
  }

  async readMarker(name: string): Promise<string | null> {
    checkMarkerName(name);
    return this.#markers.get(name) ?? null;
  }

  async writeMarker(name: string, value: string): Promise<void> {
    checkMarkerName(name);
    this.#markers.set(name, value);
  }
}

function sameKey(a: SubjectKey, b: SubjectKey): boolean {
  return subjectStorageKey(a) === subjectStorageKey(b);
}

/** Whether an audit record passes a filter; every backend filters with this. */
export function matchesAudit(record: AuditRecord, filter: AuditFilter): boolean {
  if (Date.parse(record.time) < filter.since) return false;
  if (filter.tenant !== undefined && record.target.tenant !== filter.tenant) return false;
  if (filter.subject !== undefined && record.target.subject !== filter.subject) return false;
  if (filter.role !== undefined && record.target.role !== filter.role) return false;
  return true;
}
