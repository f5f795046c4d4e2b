/**
 * The write side of a permission store, for management (the CLI and the admin API). The read
 * side the edges use is {@link PermissionStore}; this interface is separate so an edge never
 * holds write code it does not need, and so each backend (memory, Workers KV, DynamoDB) only
 * implements storage: every rule about what may change lives once, in operations.ts.
 *
 * Backends store records as they are given. They never validate them (operations.ts did) and
 * never drop expired entries on the way in or out: management must see, and be able to revoke,
 * everything the store holds.
 */
import type { TenantRole } from '../stores/memory.ts';
import type { RoleRecord, SubjectKey, UserRecord } from '../types.ts';

/** Every user and role in a store. */
export interface Snapshot {
  readonly users: readonly UserRecord[];
  readonly roles: readonly TenantRole[];
}

/** Called with a running count while a large data set is read or written. */
export type Progress = (done: number, total: number | undefined) => void;

/** A record's state in an audit record: the stored shape without subject or name. */
export type AuditState =
  | Pick<UserRecord, 'roles' | 'grants' | 'denies'>
  | Pick<RoleRecord, 'grants' | 'denies' | 'inherits'>
  | Readonly<Record<string, unknown>>
  | null;

export type AuditOperation =
  | 'grant'
  | 'revoke'
  | 'deny'
  | 'undeny'
  | 'assign'
  | 'unassign'
  | 'role.put'
  | 'role.rm'
  | 'import'
  | 'sessions.revoke'
  | 'token.revoke';

/** Who changed what, when, and what it looked like before and after. */
export interface AuditRecord {
  /** Sortable by time: `<ISO time>~<random>`. */
  readonly id: string;
  /** ISO 8601, UTC, milliseconds. */
  readonly time: string;
  /** Who: `cli:<user>` for the CLI, `<issuer>#<subject>` of the admin token for the API. */
  readonly actor: string;
  readonly via: 'cli' | 'admin-api';
  readonly operation: AuditOperation;
  /** What: a subject or a role (in a tenant), or the data set for `import`. */
  readonly target: {
    readonly tenant?: string;
    readonly subject?: string;
    readonly role?: string;
  };
  readonly before: AuditState;
  readonly after: AuditState;
}

export interface AuditFilter {
  /** Milliseconds since the epoch; records at or after it. */
  readonly since: number;
  readonly subject?: string;
  readonly role?: string;
  readonly tenant?: string;
  /** Most recent first, at most this many (default 100). */
  readonly limit?: number;
}

/** Storage for management. Implementations: memory (tests), KV, DynamoDB. */
export interface AdminStore {
  /** Short description for output: `kv local`, `dynamodb gatehouse-permissions`. */
  readonly description: string;
  /**
   * Throws AdminError (`invalid_request`, field `subject` or `tenant`) for a key the backend
   * cannot store (KV keys are at most 512 bytes, DynamoDB partition keys 2048), so an import
   * can refuse it before writing anything.
   */
  checkKey?(key: SubjectKey): void;
  /**
   * The subject's record as stored, expired entries included; null when the store has none.
   * Strongly consistent where the backend allows, because the result is the `before` of a write.
   */
  readUser(key: SubjectKey): Promise<UserRecord | null>;
  /**
   * Stores `after` as the subject's whole record (null deletes it). `before` is what
   * {@link readUser} returned, so a backend holding one item per grant writes only the difference.
   */
  writeUser(key: SubjectKey, before: UserRecord | null, after: UserRecord | null): Promise<void>;
  /** The tenant's store roles (not the policy's), as stored. */
  readRoles(tenant: string | undefined): Promise<readonly RoleRecord[]>;
  /** Stores `after` as the tenant's whole set of store roles; `before` is what readRoles gave. */
  writeRoles(
    tenant: string | undefined,
    before: readonly RoleRecord[],
    after: readonly RoleRecord[],
  ): Promise<void>;
  /** Every user and role the store holds. */
  exportAll(progress?: Progress): Promise<Snapshot>;
  /** Appends an audit record, kept for `retentionSeconds` (then the backend may delete it). */
  appendAudit(record: AuditRecord, retentionSeconds: number): Promise<void>;
  /** Audit records matching the filter, most recent first. */
  listAudit(filter: AuditFilter): Promise<readonly AuditRecord[]>;
  /**
   * A permanent marker `name` ({@link MARKER_NAME}): text that never expires, is never part of an
   * export and is never read by the edges; null when absent. Seeding records what it wrote in
   * one, since the audit trail that used to say so expires (src/cli/seed.ts).
   */
  readMarker(name: string): Promise<string | null>;
  /** Stores marker `name` as `value`, replacing any earlier value. */
  writeMarker(name: string, value: string): Promise<void>;
}

/** Names a marker may have: a short lower-case word (`seeded`); each backend builds a key of it. */
export const MARKER_NAME = /^[a-z][a-z0-9-]{0,31}$/;

/** Refuses a marker name outside {@link MARKER_NAME} (a programming error, not user input). */
export function checkMarkerName(name: string): void {
  if (!MARKER_NAME.test(name))
    throw new TypeError(`marker name ${JSON.stringify(name)}: expected ${MARKER_NAME}`);
}
