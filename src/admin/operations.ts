/**
 * Management operations: grant, revoke, deny, undeny, assign, unassign, role put / rm, show,
 * import / export and the audit trail. The CLI and the admin API are thin shells over this
 * module, so both validate the same way and audit the same way.
 *
 * Every change is read → validate → write → audit:
 * - input is validated with the rules the edges apply (permission grammar, conditions, expiry,
 *   role inheritance and cycles); a mistake throws {@link AdminError} and nothing is written;
 * - a change that changes nothing (granting what is already granted) writes nothing and is not
 *   audited; removing what is not there is `not_found`, so a typo never passes silently;
 * - the audit record (actor, time, operation, target, before, after) is written after the change.
 *   If the audit write fails the change stands and the error is reported, never swallowed.
 *
 * Writes are last-writer-wins per record: Workers KV has no compare-and-swap, so two admins
 * changing the same subject at the same moment can lose one change (docs/management.md).
 */
import { AdminError, ConfigError } from '../errors.ts';
import { readGrant } from '../permissions/grants.ts';
import { compilePermissions, type PermissionEntry } from '../permissions/permission-set.ts';
import { compileRoles, MAX_ROLE_NAME_LENGTH, type RoleGraph } from '../permissions/roles.ts';
import {
  feedKeys,
  isValidJti,
  MAX_TOKEN_REVOCATION_SECONDS,
  type TrackedFeed,
} from '../revocation/feed.ts';
import { subjectStorageKey, tenantStorageKey } from '../stores/keys.ts';
import { MemoryStore, type TenantRole } from '../stores/memory.ts';
import {
  exportPermissionData,
  FileStore,
  type PermissionData,
  parsePermissionData,
} from '../stores/permission-data.ts';
import {
  canonicalJson,
  maxRecordEntriesOption,
  roleSetEntries,
  userEntries,
} from '../stores/records.ts';
import type { Grant, RoleAssignment, RoleRecord, SubjectKey, UserRecord } from '../types.ts';
import type {
  AdminStore,
  AuditFilter,
  AuditOperation,
  AuditRecord,
  AuditState,
  Progress,
  Snapshot,
} from './types.ts';

/** Default audit retention, days. */
export const DEFAULT_AUDIT_RETENTION_DAYS = 90;

export interface PermissionAdminOptions {
  readonly store: AdminStore;
  /** The policy's roles: assignments may name them, store roles may inherit them. */
  readonly policyRoles: readonly RoleRecord[];
  /** Who is making the changes, for the audit trail (`cli:alice`, `<iss>#<sub>`). */
  readonly actor: string;
  readonly via: AuditRecord['via'];
  /** Days audit records are kept (1 to 3650, default 90). */
  readonly auditRetentionDays?: number;
  /** Clock, ms (default Date.now). */
  readonly now?: () => number;
  /**
   * Entries one record may hold after a change (a subject's role assignments + grants + denies;
   * a tenant's store roles with their grants, denies and parents); default 10000, 1 to 1000000.
   * Keep it at or below the edges' bound, which refuses a larger record with a 503.
   */
  readonly maxRecordEntries?: number;
  /**
   * The revocation feed (issue 14): sign-outs and token revocations are written to it, and its
   * latest epoch is the consistency token a change returns. The store adapter records record
   * changes in the same feed. Absent: no feed, and those two operations are refused.
   */
  readonly feed?: TrackedFeed;
}

/** The outcome of "sign out everywhere" or of a token revocation. */
export interface RevocationResult {
  /** The feed's epoch after the write: the consistency token. */
  readonly epoch: number;
  /** Sign-out: tokens of the subject issued before this Unix second are refused. */
  readonly notBefore?: number;
  readonly audit: AuditRecord;
}

/** The outcome of one change. `audit` is null when nothing changed. */
export interface ChangeResult {
  readonly changed: boolean;
  readonly before: AuditState;
  readonly after: AuditState;
  readonly audit: AuditRecord | null;
}

/** One effective permission for `show`: what it is, where it comes from, when it ends. */
export interface EffectivePermission extends PermissionEntry {
  /** True when it has expired (the store still holds it until clean-up). */
  readonly expired: boolean;
}

export interface ShowResult {
  readonly subject: string;
  readonly tenant?: string;
  /** The stored record, or null when the store has none (then only policy roles could apply). */
  readonly record: UserRecord | null;
  readonly effective: readonly EffectivePermission[];
  /** Grants the edges would skip, assignments of unknown roles. */
  readonly warnings: readonly string[];
}

export interface ImportResult {
  readonly users: number;
  readonly roles: number;
  /** Records written (for a dry run: that would be written). */
  readonly written: number;
  /** Records deleted (for a dry run: that would be deleted). */
  readonly deleted: number;
  readonly audit: AuditRecord | null;
  /** True when nothing was written because the import was a dry run. */
  readonly dryRun: boolean;
}

export interface ImportOptions {
  /** The file name, for messages and the audit record. */
  readonly source?: string;
  /** Also delete subjects and tenant role sets the file does not have. */
  readonly replace?: boolean;
  /** Run every check the import runs, count what it would write, and write nothing. */
  readonly dryRun?: boolean;
  readonly progress?: Progress;
}

function keyOf(record: SubjectKey): SubjectKey {
  return record.tenant === undefined
    ? { subject: record.subject }
    : { subject: record.subject, tenant: record.tenant };
}

function emptyUser(key: SubjectKey): UserRecord {
  return { ...keyOf(key), roles: [], grants: [], denies: [] };
}

/** Same permission and same conditions: the same grant (a new expiry replaces the old). */
function sameGrant(a: Grant, b: Grant): boolean {
  return a.permission === b.permission && canonicalJson(a.when) === canonicalJson(b.when);
}

function userState(record: UserRecord | null): AuditState {
  if (record === null) return null;
  return { roles: record.roles, grants: record.grants, denies: record.denies };
}

function roleState(role: RoleRecord | undefined): AuditState {
  if (role === undefined) return null;
  return { grants: role.grants, denies: role.denies ?? [], inherits: role.inherits };
}

function checkRoleName(name: unknown, field: string): string {
  if (
    typeof name !== 'string' ||
    name.length === 0 ||
    name.length > MAX_ROLE_NAME_LENGTH ||
    /[\s\u0000-\u001f]/.test(name) ||
    // The edges' role readers refuse these (prototype keys); one would break the tenant's roles.
    RESERVED_KEYS.has(name)
  ) {
    throw new AdminError(
      'invalid_request',
      `${field}: expected a role name (1 to ${MAX_ROLE_NAME_LENGTH} characters, no spaces, not __proto__, prototype or constructor)`,
      { field },
    );
  }
  return name;
}

/**
 * Names the permission file reserves (prototype keys): a subject or tenant so named could be
 * written but never exported and imported again, which would break backup and restore.
 */
const RESERVED_KEYS: ReadonlySet<string> = new Set(['__proto__', 'prototype', 'constructor']);

function checkTenant(tenant: string | undefined): void {
  if (tenant === undefined) return;
  if (typeof tenant !== 'string' || tenant.length === 0 || RESERVED_KEYS.has(tenant)) {
    throw new AdminError(
      'invalid_request',
      'tenant: expected a non-empty string other than __proto__, prototype, constructor',
      { field: 'tenant' },
    );
  }
}

function checkSubject(key: SubjectKey, store?: AdminStore): void {
  if (
    typeof key.subject !== 'string' ||
    key.subject.length === 0 ||
    RESERVED_KEYS.has(key.subject)
  ) {
    throw new AdminError(
      'invalid_request',
      'subject: expected a non-empty string other than __proto__, prototype, constructor',
      { field: 'subject' },
    );
  }
  checkTenant(key.tenant);
  store?.checkKey?.(keyOf(key));
}

/** A ConfigError from the shared validators, as the AdminError management reports. */
function invalid(error: unknown): never {
  if (error instanceof ConfigError) {
    throw new AdminError('invalid_request', error.message, { field: error.field, cause: error });
  }
  throw error;
}

export class PermissionAdmin {
  readonly store: AdminStore;
  readonly #policyRoles: readonly RoleRecord[];
  readonly #actor: string;
  readonly #via: AuditRecord['via'];
  readonly #retentionSeconds: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  readonly #feed: TrackedFeed | undefined;

  constructor(options: PermissionAdminOptions) {
    const days = options.auditRetentionDays ?? DEFAULT_AUDIT_RETENTION_DAYS;
    if (!Number.isInteger(days) || days < 1 || days > 3650) {
      throw new ConfigError('AUDIT_RETENTION_DAYS', 'expected an integer from 1 to 3650 (days)');
    }
    if (typeof options.actor !== 'string' || options.actor.length === 0) {
      throw new ConfigError('actor', 'expected a non-empty string naming who makes changes');
    }
    this.store = options.store;
    this.#policyRoles = options.policyRoles;
    this.#actor = options.actor;
    this.#via = options.via;
    this.#retentionSeconds = days * 86_400;
    this.#maxEntries = maxRecordEntriesOption(options.maxRecordEntries, 'maxRecordEntries');
    this.#now = options.now ?? Date.now;
    this.#feed = options.feed;
  }

  /**
   * The consistency token: the revocation feed's epoch after the latest change made through this
   * feed (at least as fresh as this object's own changes); undefined without a feed.
   */
  get epoch(): number | undefined {
    return this.#feed?.lastEpoch;
  }

  #requireFeed(): TrackedFeed {
    if (this.#feed === undefined) {
      throw new AdminError(
        'invalid_request',
        'revocation: this store has no revocation feed (docs/management.md, "Revocation")',
        { field: 'revocation' },
      );
    }
    return this.#feed;
  }

  /**
   * Sign out everywhere: every token of the subject issued before now is refused
   * (`session_revoked`) on every edge following the feed. The not-before is the next whole
   * second, so a token issued in the same second as the sign-out is refused too.
   */
  async revokeSessions(key: SubjectKey): Promise<RevocationResult> {
    checkSubject(key, this.store);
    const feed = this.#requireFeed();
    const notBefore = Math.ceil(this.#now() / 1000);
    const epoch = await feed.append({
      notBefore: { key: subjectStorageKey(keyOf(key)), at: notBefore },
      // Caches drop the subject too, so the refusal does not wait for the next read.
      keys: [feedKeys.user(keyOf(key))],
    });
    const audit = await this.#audit('sessions.revoke', keyOf(key), null, { notBefore });
    return { epoch, notBefore, audit };
  }

  /**
   * Revokes one token by its `jti` until `expiresAt` (Unix seconds, its `exp`; after it the token
   * is refused anyway). Refused on every edge following the feed (`token_revoked`).
   */
  async revokeToken(jti: string, expiresAt: number): Promise<RevocationResult> {
    if (!isValidJti(jti)) {
      throw new AdminError(
        'invalid_request',
        'jti: expected a token id of 1 to 256 characters without control characters',
        { field: 'jti' },
      );
    }
    const now = this.#now() / 1000;
    if (
      typeof expiresAt !== 'number' ||
      !Number.isInteger(expiresAt) ||
      expiresAt <= now ||
      expiresAt > now + MAX_TOKEN_REVOCATION_SECONDS
    ) {
      throw new AdminError(
        'invalid_request',
        "expires: expected a future time within a year (the token's exp)",
        { field: 'expires' },
      );
    }
    const feed = this.#requireFeed();
    const epoch = await feed.append({ token: { jti, expiresAt } });
    const audit = await this.#audit('token.revoke', {}, null, { jti, expiresAt });
    return { epoch, audit };
  }

  /** Days audit records are kept. */
  get auditRetentionDays(): number {
    return this.#retentionSeconds / 86_400;
  }

  // -------------------------------------------------------------------------------------------
  // Validation shared by the changes

  /** Refuses a grant the edges would skip or misread; an expiry must be in the future. */
  #checkGrant(grant: Grant, effect: 'allow' | 'deny'): Grant {
    this.#checkGrantAt(grant, effect, effect === 'allow' ? 'grant' : 'deny');
    return grant;
  }

  /** Role names an assignment or `inherits` may use in a tenant: policy and store roles. */
  async #knownRoles(tenant: string | undefined): Promise<Set<string>> {
    const stored = await this.store.readRoles(tenant);
    return new Set([...this.#policyRoles.map((r) => r.name), ...stored.map((r) => r.name)]);
  }

  // -------------------------------------------------------------------------------------------
  // Users

  async #changeUser(
    key: SubjectKey,
    operation: AuditOperation,
    change: (current: UserRecord) => UserRecord,
  ): Promise<ChangeResult> {
    checkSubject(key, this.store);
    const stored = await this.store.readUser(keyOf(key));
    const next = change(stored ?? emptyUser(key));
    const before = userState(stored);
    if (stored !== null && canonicalJson(userState(next)) === canonicalJson(before)) {
      return { changed: false, before, after: before, audit: null };
    }
    const what = () => ({ what: `${key.subject}${tenantText(key.tenant)}`, field: 'subject' });
    this.#checkSize(userEntries(next), stored === null ? 0 : userEntries(stored), what);
    const graph = this.#graphOrNull(await this.store.readRoles(key.tenant));
    if (graph !== null) {
      this.#checkExpansion(this.#expansion(next, graph), this.#expansion(stored, graph), what);
    }
    // A subject left with nothing keeps an empty record: "known, no permissions" (a negative
    // answer the edges can cache), and the trail shows what was removed.
    await this.store.writeUser(keyOf(key), stored, next);
    const after = userState(next);
    const audit = await this.#audit(operation, keyOf(key), before, after);
    return { changed: true, before, after, audit };
  }

  /** Grants `grant` directly; the same permission with the same conditions is replaced. */
  async grant(key: SubjectKey, grant: Grant): Promise<ChangeResult> {
    this.#checkGrant(grant, 'allow');
    return this.#changeUser(key, 'grant', (user) => ({
      ...user,
      grants: [...user.grants.filter((g) => !sameGrant(g, grant)), grant],
    }));
  }

  /** Removes every direct grant of `permission` (whatever its conditions); not_found if none. */
  async revoke(key: SubjectKey, permission: string): Promise<ChangeResult> {
    return this.#changeUser(key, 'revoke', (user) => {
      const grants = user.grants.filter((g) => g.permission !== permission);
      if (grants.length === user.grants.length) throw missing(key, 'grant', permission, user);
      return { ...user, grants };
    });
  }

  /** Denies `grant` directly; a deny wins over every allow, from any role. */
  async deny(key: SubjectKey, grant: Grant): Promise<ChangeResult> {
    this.#checkGrant(grant, 'deny');
    return this.#changeUser(key, 'deny', (user) => {
      // A re-deny never shortens a deny (an expiring one must not end a permanent one by
      // accident); to shorten it, undeny first.
      const existing = user.denies.find((g) => sameGrant(g, grant));
      if (existing !== undefined && outlasts(existing.expiresAt, grant.expiresAt)) return user;
      return { ...user, denies: [...user.denies.filter((g) => !sameGrant(g, grant)), grant] };
    });
  }

  /** Removes every direct deny of `permission`; not_found if none. */
  async undeny(key: SubjectKey, permission: string): Promise<ChangeResult> {
    return this.#changeUser(key, 'undeny', (user) => {
      const denies = user.denies.filter((g) => g.permission !== permission);
      if (denies.length === user.denies.length) throw missing(key, 'deny', permission, user);
      return { ...user, denies };
    });
  }

  /** Assigns a policy or store role (optionally until `expiresAt`, Unix seconds). */
  async assign(key: SubjectKey, role: string, expiresAt?: number): Promise<ChangeResult> {
    checkRoleName(role, 'role');
    checkSubject(key);
    if (expiresAt !== undefined && expiresAt * 1000 <= this.#now()) {
      throw new AdminError('invalid_request', 'expires: expected a time in the future', {
        field: 'expires',
      });
    }
    const known = await this.#knownRoles(key.tenant);
    if (!known.has(role)) {
      throw new AdminError(
        'invalid_request',
        `role: no role ${role} in the policy or the store${tenantText(key.tenant)}`,
        { field: 'role' },
      );
    }
    const assignment: RoleAssignment = expiresAt === undefined ? { role } : { role, expiresAt };
    return this.#changeUser(key, 'assign', (user) => ({
      ...user,
      roles: [...user.roles.filter((a) => a.role !== role), assignment],
    }));
  }

  /** Removes the role assignment; not_found if the subject does not have it. */
  async unassign(key: SubjectKey, role: string): Promise<ChangeResult> {
    return this.#changeUser(key, 'unassign', (user) => {
      const roles = user.roles.filter((a) => a.role !== role);
      if (roles.length === user.roles.length) throw missing(key, 'role', role, user);
      return { ...user, roles };
    });
  }

  /** The subject's stored record and effective permissions, each with where it came from. */
  async show(key: SubjectKey): Promise<ShowResult> {
    checkSubject(key);
    const [record, storeRoles] = await Promise.all([
      this.store.readUser(keyOf(key)),
      this.store.readRoles(key.tenant),
    ]);
    const graph = compileRoles(this.#policyRoles, storeRoles);
    const now = this.#now();
    // Infinity: show must display a record the edges refuse, with a warning saying so.
    const set = compilePermissions({ user: record, roles: graph, now, maxEntries: Infinity });
    const expansion =
      set.expandedEntries > this.#maxEntries
        ? [
            `expands to ${set.expandedEntries} entries with the roles it reaches; the edges refuse more than ${this.#maxEntries} (503 store_record_too_large)`,
          ]
        : [];
    const effective = set.entries().map((entry) => ({
      ...entry,
      expired: entry.expiresAt !== undefined && entry.expiresAt * 1000 <= now,
    }));
    return {
      ...keyOf(key),
      record,
      effective,
      warnings: [...(graph.warnings ?? []), ...set.warnings, ...expansion],
    };
  }

  // -------------------------------------------------------------------------------------------
  // Roles

  /**
   * Creates or replaces a store role in a tenant. Its grants are validated as the edges read
   * them; `inherits` must name policy or store roles of the tenant, without a cycle. A store
   * role named like a policy role replaces it for that tenant (the edges do the same).
   */
  async putRole(tenant: string | undefined, role: RoleRecord): Promise<ChangeResult> {
    checkTenant(tenant);
    checkRoleName(role.name, 'name');
    checkDuplicates(role.grants, 'grants');
    checkDuplicates(role.denies ?? [], 'denies');
    role.grants.forEach((g, i) => {
      this.#checkGrantAt(g, 'allow', `grants[${i}]`);
    });
    (role.denies ?? []).forEach((g, i) => {
      this.#checkGrantAt(g, 'deny', `denies[${i}]`);
    });
    const before = await this.store.readRoles(tenant);
    const known = new Set([
      ...this.#policyRoles.map((r) => r.name),
      ...before.map((r) => r.name),
      role.name,
    ]);
    role.inherits.forEach((parent, i) => {
      if (!known.has(parent)) {
        throw new AdminError(
          'invalid_request',
          `inherits[${i}]: no role ${parent} in the policy or the store${tenantText(tenant)}`,
          { field: `inherits[${i}]` },
        );
      }
    });
    const after = [...before.filter((r) => r.name !== role.name), role];
    const graph = this.#checkRoleGraph(after);
    this.#checkSize(roleSetEntries(after), roleSetEntries(before), () => ({
      what: `the store roles${tenantText(tenant)}`,
      field: 'role',
    }));
    this.#checkRoleExpansions(graph, this.#graphOrNull(before), role.name, tenant);
    const old = before.find((r) => r.name === role.name);
    if (old !== undefined && canonicalJson(roleState(old)) === canonicalJson(roleState(role))) {
      const state = roleState(old);
      return { changed: false, before: state, after: state, audit: null };
    }
    await this.store.writeRoles(tenant, before, after);
    const audit = await this.#audit(
      'role.put',
      tenantTarget(tenant, { role: role.name }),
      roleState(old),
      roleState(role),
    );
    return { changed: true, before: roleState(old), after: roleState(role), audit };
  }

  /**
   * Removes a store role. Refused while another store role of the tenant inherits it. Subjects
   * still assigned to it keep the assignment, which the edges ignore with a warning (and which a
   * new role of that name would revive); `show` lists such assignments.
   */
  async removeRole(tenant: string | undefined, name: string): Promise<ChangeResult> {
    checkTenant(tenant);
    checkRoleName(name, 'role');
    const before = await this.store.readRoles(tenant);
    const old = before.find((r) => r.name === name);
    if (old === undefined) {
      const inPolicy = this.#policyRoles.some((r) => r.name === name);
      throw new AdminError(
        'not_found',
        inPolicy
          ? `role ${name} is defined in the policy file, not the store: change the policy`
          : `no store role ${name}${tenantText(tenant)}`,
        { field: 'role' },
      );
    }
    const heirs = before.filter((r) => r.name !== name && r.inherits.includes(name));
    // A policy role of the same name takes over again once the store role is gone.
    if (heirs.length > 0 && !this.#policyRoles.some((r) => r.name === name)) {
      throw new AdminError(
        'conflict',
        `role ${name} is inherited by ${heirs.map((r) => r.name).join(', ')}; change those first`,
        { field: 'role' },
      );
    }
    const after = before.filter((r) => r.name !== name);
    await this.store.writeRoles(tenant, before, after);
    const audit = await this.#audit(
      'role.rm',
      tenantTarget(tenant, { role: name }),
      roleState(old),
      null,
    );
    return { changed: true, before: roleState(old), after: null, audit };
  }

  /** The store roles of a tenant (the policy's are in the policy file). */
  listRoles(tenant: string | undefined): Promise<readonly RoleRecord[]> {
    return this.store.readRoles(tenant);
  }

  /**
   * Refuses a change that grows a record past `maxRecordEntries`: the edges would refuse the
   * whole record (503) and with it every permission it holds. A change that shrinks a record
   * already over the bound (one written before the bound existed) is let through.
   */
  #checkSize(after: number, before: number, target: () => { what: string; field: string }) {
    if (after <= this.#maxEntries || after <= before) return;
    const { what, field } = target();
    throw new AdminError(
      'record_too_large',
      `${field}: ${what} would hold ${after} entries (role assignments, grants and denies; for roles: roles, grants, denies and parents); at most ${this.#maxEntries}`,
      { field },
    );
  }

  /**
   * Refuses a change that makes a subject's expansion (its own entries plus every role it
   * reaches, as the edges count it: permission-set.ts) pass `maxRecordEntries`, unless it
   * shrinks one already over.
   */
  #checkExpansion(
    after: number,
    before: number,
    target: () => { what: string; field: string },
  ): void {
    if (after <= this.#maxEntries || after <= before) return;
    const { what, field } = target();
    throw new AdminError(
      'record_too_large',
      `${field}: ${what} would expand to ${after} entries with the roles it reaches (its role assignments, grants and denies, plus each role reached once: the role, its grants, denies and parents); at most ${this.#maxEntries}`,
      { field },
    );
  }

  /** The entries `user` expands to with `graph` (0 for none, or for a record that fails). */
  #expansion(user: UserRecord | null, graph: RoleGraph): number {
    if (user === null) return 0;
    try {
      return compilePermissions({ user, roles: graph, now: this.#now(), maxEntries: Infinity })
        .expandedEntries;
    } catch {
      return 0;
    }
  }

  /**
   * The tenant's role graph, or null when the stored roles do not compile (the edges refuse
   * the tenant then anyway; a subject's change is not the place to report it).
   */
  #graphOrNull(storeRoles: readonly RoleRecord[]): RoleGraph | null {
    try {
      return compileRoles(this.#policyRoles, storeRoles);
    } catch {
      return null;
    }
  }

  /**
   * Refuses a role change after which a subject holding one role would expand past the bound:
   * the changed role and every role that reaches it. A subject's own entries add to that; its
   * next change is checked with them (#changeUser). Skipped when the whole graph fits.
   * Not the actual holders (review finding 11): no store indexes a role's holders, and reading
   * every subject of the tenant per role change does not fit one admin request. A subject that
   * holds several roles can still pass the bound through their union; the edges then refuse it
   * (503, fail closed). docs/management.md says so.
   */
  #checkRoleExpansions(
    graph: RoleGraph,
    before: RoleGraph | null,
    changed: string,
    tenant: string | undefined,
  ): void {
    let total = 0;
    for (const name of graph.names) total += graph.role(name)?.entries ?? 0;
    if (total <= this.#maxEntries) return;
    const heirs = new Map<string, string[]>();
    for (const name of graph.names) {
      for (const parent of graph.role(name)?.inherits ?? []) {
        const list = heirs.get(parent) ?? [];
        list.push(name);
        heirs.set(parent, list);
      }
    }
    const affected = new Set([changed]);
    const queue = [changed];
    for (let name = queue.pop(); name !== undefined; name = queue.pop()) {
      for (const heir of heirs.get(name) ?? []) {
        if (!affected.has(heir)) {
          affected.add(heir);
          queue.push(heir);
        }
      }
    }
    for (const name of affected) {
      const holder = { subject: '(role)', roles: [{ role: name }], grants: [], denies: [] };
      // The single assignment is the holder's, not the role's.
      const after = this.#expansion(holder, graph) - 1;
      const was = before?.has(name) === true ? this.#expansion(holder, before) - 1 : 0;
      this.#checkExpansion(after, was, () => ({
        what: `role ${name}${tenantText(tenant)}`,
        field: 'role',
      }));
    }
  }

  /** Refuses a grant the edges would skip or misread, named `field`; an expiry must be ahead. */
  #checkGrantAt(grant: Grant, effect: 'allow' | 'deny', field: string): void {
    try {
      readGrant(grant, field, effect, 'config', []);
    } catch (error) {
      invalid(error);
    }
    if (grant.expiresAt !== undefined && grant.expiresAt * 1000 <= this.#now()) {
      throw new AdminError('invalid_request', `${field}.expires: expected a time in the future`, {
        field: `${field}.expires`,
      });
    }
  }

  #checkRoleGraph(storeRoles: readonly RoleRecord[]): RoleGraph {
    try {
      return compileRoles(this.#policyRoles, storeRoles);
    } catch (error) {
      // compileRoles reports store problems as StoreError (a request-time failure); here the
      // input is at fault, so it is a bad request naming the role graph.
      const message = error instanceof Error ? error.message : String(error);
      throw new AdminError('invalid_request', `roles: ${message}`, {
        field: 'inherits',
        cause: error,
      });
    }
  }

  // -------------------------------------------------------------------------------------------
  // Import / export

  /** The whole data set in the permission-file shape (what `import` reads). */
  async exportData(progress?: Progress): Promise<PermissionData> {
    const snapshot = await this.store.exportAll(progress);
    return exportPermissionData(toMemory(snapshot));
  }

  #parse(text: string, source: string | undefined): PermissionData {
    try {
      return parsePermissionData(text, source, {
        knownRoles: this.#policyRoles.map((r) => r.name),
      });
    } catch (error) {
      invalid(error);
    }
  }

  /**
   * Every role the file assigns exists in the policy or, after the import, in the store. An
   * assignment the subject already has is let through as it is (a role removed after it was
   * assigned), so an export always imports back.
   */
  #checkAssignments(incoming: Snapshot, before: Snapshot, after: Snapshot): void {
    const held = new Map(before.users.map((u) => [subjectStorageKey(u), u.roles]));
    const policy = new Set(this.#policyRoles.map((r) => r.name));
    const stored = new Map<string, Set<string>>();
    for (const { tenant, role } of after.roles) {
      const key = tenantStorageKey(tenant);
      const names = stored.get(key) ?? new Set<string>();
      names.add(role.name);
      stored.set(key, names);
    }
    for (const user of incoming.users) {
      const existing = held.get(subjectStorageKey(user)) ?? [];
      user.roles.forEach((assignment, i) => {
        if (policy.has(assignment.role)) return;
        if (existing.some((a) => a.role === assignment.role)) return;
        if (stored.get(tenantStorageKey(user.tenant))?.has(assignment.role)) return;
        const section = user.tenant === undefined ? '' : `tenants.${user.tenant}.`;
        const field = `${section}user_roles.${user.subject}[${i}]`;
        throw new AdminError(
          'invalid_request',
          `${field}: no role ${assignment.role} in the policy or the store${tenantText(user.tenant)}`,
          { field },
        );
      });
    }
  }

  /**
   * Every check an import makes, and nothing else: `importData` and its dry run both call this,
   * so a dry run refuses exactly what an import refuses. Returns the records the file holds and
   * the store's contents before and after the import.
   */
  async #prepareImport(
    text: string,
    options: ImportOptions,
  ): Promise<{ incoming: Snapshot; before: Snapshot; after: Snapshot }> {
    const incoming = toSnapshot(this.#parse(text, options.source));
    // What the store itself would refuse (key sizes) is refused before anything is written.
    for (const user of incoming.users) this.store.checkKey?.(keyOf(user));
    this.#checkImportSizes(incoming);
    const before = await this.store.exportAll();
    const after = mergeSnapshots(before, incoming, options.replace ?? false);
    this.#checkAssignments(incoming, before, after);
    this.#checkImportExpansions(incoming, after);
    return { incoming, before, after };
  }

  /** Each subject in the file expands within `maxRecordEntries` with its tenant's roles after. */
  #checkImportExpansions(incoming: Snapshot, after: Snapshot): void {
    const roles = groupRoles(after.roles);
    const graphs = new Map<string, RoleGraph | null>();
    for (const user of incoming.users) {
      const tenantKey = tenantStorageKey(user.tenant);
      let graph = graphs.get(tenantKey);
      if (graph === undefined) {
        graph = this.#graphOrNull((roles.get(tenantKey) ?? []).map((r) => r.role));
        graphs.set(tenantKey, graph);
      }
      if (graph === null) continue;
      const section = user.tenant === undefined ? '' : `tenants.${user.tenant}.`;
      this.#checkExpansion(this.#expansion(user, graph), 0, () => ({
        what: `${user.subject}${tenantText(user.tenant)}`,
        field: `${section}users.${user.subject}`,
      }));
    }
  }

  /** Each subject and each tenant's role set in the file within `maxRecordEntries`. */
  #checkImportSizes(incoming: Snapshot): void {
    for (const user of incoming.users) {
      const section = user.tenant === undefined ? '' : `tenants.${user.tenant}.`;
      this.#checkSize(userEntries(user), 0, () => ({
        what: `${user.subject}${tenantText(user.tenant)}`,
        field: `${section}users.${user.subject}`,
      }));
    }
    for (const roles of groupRoles(incoming.roles).values()) {
      const tenant = roles[0]?.tenant;
      this.#checkSize(roleSetEntries(roles.map((r) => r.role)), 0, () => ({
        what: `the store roles${tenantText(tenant)}`,
        field: tenant === undefined ? 'roles' : `tenants.${tenant}.roles`,
      }));
    }
  }

  /**
   * Validates `text` as a permission file (every problem names its path; nothing is written
   * on a mistake), then writes it: each subject and each tenant's role set in the file replaces
   * the stored one. With `replace`, subjects and role sets absent from the file are deleted, so
   * the store then holds exactly the file. Each changed subject and role gets an audit record
   * (operation `import`, before and after), and one more summarises the import. With `dryRun`,
   * every check runs and the counts say what would be written; nothing is written or audited.
   */
  async importData(text: string, options: ImportOptions = {}): Promise<ImportResult> {
    const { incoming, before, after } = await this.#prepareImport(text, options);
    const plan = planSync(this.store, before, after, (target, was, now) =>
      this.#audit('import', target, was, now),
    );
    if (options.dryRun === true) {
      const deleted = plan.filter((task) => task.kind === 'deleted').length;
      return {
        users: incoming.users.length,
        roles: incoming.roles.length,
        written: plan.length - deleted,
        deleted,
        audit: null,
        dryRun: true,
      };
    }
    let counts: { written: number; deleted: number };
    let failed: unknown;
    try {
      counts = await runPlan(plan, options.progress);
    } catch (error) {
      if (!(error instanceof SyncError)) throw error;
      counts = { written: error.written, deleted: error.deleted };
      failed = error.cause;
    }
    // Audited whenever something was written, also when the import stopped part-way.
    const audit =
      counts.written + counts.deleted === 0
        ? null
        : await this.#audit(
            'import',
            {},
            { users: before.users.length, roles: before.roles.length },
            {
              ...(failed === undefined
                ? { users: after.users.length, roles: after.roles.length }
                : { incomplete: true }),
              written: counts.written,
              deleted: counts.deleted,
              replace: options.replace ?? false,
              ...(options.source !== undefined && { source: options.source }),
            },
          );
    if (failed !== undefined) throw failed;
    return {
      users: incoming.users.length,
      roles: incoming.roles.length,
      ...counts,
      audit,
      dryRun: false,
    };
  }

  // -------------------------------------------------------------------------------------------
  // Audit

  /** Audit records, most recent first. */
  audit(filter: AuditFilter): Promise<readonly AuditRecord[]> {
    // Nothing older than the retention is kept, so nothing older is looked for (DynamoDB reads
    // one partition per day).
    const oldest = this.#now() - this.#retentionSeconds * 1000 - 86_400_000;
    return this.store.listAudit({ ...filter, since: Math.max(filter.since, oldest) });
  }

  async #audit(
    operation: AuditOperation,
    target: AuditRecord['target'],
    before: AuditState,
    after: AuditState,
  ): Promise<AuditRecord> {
    const now = this.#now();
    const time = new Date(now).toISOString();
    const record: AuditRecord = {
      id: `${time}~${nextSequence()}${randomSuffix()}`,
      time,
      actor: this.#actor,
      via: this.#via,
      operation,
      target,
      before,
      after,
    };
    await this.store.appendAudit(record, this.#retentionSeconds);
    return record;
  }
}

/** Whether an expiry (undefined: never) lasts at least as long as another. */
function outlasts(a: number | undefined, b: number | undefined): boolean {
  return a === undefined || (b !== undefined && a >= b);
}

/** Two entries with the same permission and conditions would be one item in DynamoDB. */
function checkDuplicates(grants: readonly Grant[], field: string): void {
  grants.forEach((grant, i) => {
    const j = grants.findIndex((other) => sameGrant(other, grant));
    if (j < i) {
      throw new AdminError(
        'invalid_request',
        `${field}[${i}]: the same permission and conditions as ${field}[${j}]`,
        { field: `${field}[${i}]` },
      );
    }
  });
}

function tenantText(tenant: string | undefined): string {
  return tenant === undefined ? '' : ` of tenant ${tenant}`;
}

function userTarget(user: SubjectKey): AuditRecord['target'] {
  return tenantTarget(user.tenant, { subject: user.subject });
}

function tenantTarget(
  tenant: string | undefined,
  rest: { subject?: string; role?: string },
): AuditRecord['target'] {
  return tenant === undefined ? rest : { tenant, ...rest };
}

function missing(
  key: SubjectKey,
  what: 'grant' | 'deny' | 'role',
  name: string,
  user: UserRecord,
): AdminError {
  const list =
    what === 'role'
      ? user.roles.map((a) => a.role)
      : (what === 'grant' ? user.grants : user.denies).map((g) => g.permission);
  const has = list.length === 0 ? 'none' : list.join(', ');
  const noun = what === 'role' ? 'role' : `direct ${what}`;
  return new AdminError(
    'not_found',
    `${key.subject}${tenantText(key.tenant)} has no ${noun} ${name} (has: ${has})`,
    { field: what === 'role' ? 'role' : 'permission' },
  );
}

// Records written in the same millisecond by one process keep their order in the id.
let sequence = 0;
function nextSequence(): string {
  sequence = (sequence + 1) % 0x10000;
  return sequence.toString(16).padStart(4, '0');
}

function randomSuffix(): string {
  const bytes = new Uint8Array(6);
  crypto.getRandomValues(bytes);
  let out = '';
  for (const b of bytes) out += b.toString(16).padStart(2, '0');
  return out;
}

function toMemory(snapshot: Snapshot): MemoryStore {
  const store = new MemoryStore();
  for (const user of snapshot.users) store.putUser(user);
  for (const { tenant, role } of snapshot.roles) store.putRole(tenant, role);
  return store;
}

/** The records of a parsed permission file. */
export function toSnapshot(data: PermissionData): Snapshot {
  const store = new FileStore(data);
  return { users: store.listUsers(), roles: store.listRoles() };
}

function roleSetKey(tenant: string | undefined): string {
  return tenantStorageKey(tenant);
}

/**
 * What the store should hold after an import: the file's subjects replace stored ones, the
 * file's tenants' role sets replace stored ones; with `replace`, nothing else survives.
 */
function mergeSnapshots(before: Snapshot, incoming: Snapshot, replace: boolean): Snapshot {
  if (replace) return incoming;
  const users = new Map(before.users.map((u) => [subjectStorageKey(u), u]));
  for (const user of incoming.users) users.set(subjectStorageKey(user), user);
  const importedTenants = new Set(incoming.roles.map((r) => roleSetKey(r.tenant)));
  const roles = [
    ...before.roles.filter((r) => !importedTenants.has(roleSetKey(r.tenant))),
    ...incoming.roles,
  ];
  return { users: [...users.values()], roles };
}

function groupRoles(roles: readonly TenantRole[]): Map<string, TenantRole[]> {
  const out = new Map<string, TenantRole[]>();
  for (const entry of roles) {
    const key = roleSetKey(entry.tenant);
    const list = out.get(key);
    if (list === undefined) out.set(key, [entry]);
    else list.push(entry);
  }
  return out;
}

/** A sync that stopped part-way: what it had written when the store failed. */
export class SyncError extends Error {
  override readonly name = 'SyncError';
  readonly written: number;
  readonly deleted: number;
  constructor(cause: unknown, written: number, deleted: number) {
    super('the store failed part-way through', { cause });
    this.written = written;
    this.deleted = deleted;
  }
}

/** Writes parallel to this many records at once (KV and DynamoDB both take it easily). */
const SYNC_CONCURRENCY = 16;

/** One write of a sync: what it does to a record, and doing it. */
interface SyncTask {
  readonly kind: 'written' | 'deleted';
  readonly run: () => Promise<void>;
}

/**
 * What makes `store` hold `after`, given it holds `before`: a write for each changed subject and
 * tenant role set, a delete for each one `after` lacks. Unchanged records get no task, so
 * importing an export writes nothing. Planning writes nothing; {@link runPlan} does.
 */
function planSync(
  store: AdminStore,
  before: Snapshot,
  after: Snapshot,
  /** Called after each record is written, with what it held before and after (the audit). */
  onChange?: (
    target: AuditRecord['target'],
    before: AuditState,
    after: AuditState,
  ) => Promise<unknown>,
): SyncTask[] {
  const changed = (target: AuditRecord['target'], was: AuditState, now: AuditState) =>
    onChange?.(target, was, now);
  const tasks: SyncTask[] = [];
  const old = new Map(before.users.map((u) => [subjectStorageKey(u), u]));
  const next = new Map(after.users.map((u) => [subjectStorageKey(u), u]));
  for (const [k, user] of next) {
    const prior = old.get(k) ?? null;
    if (prior !== null && canonicalJson(userState(prior)) === canonicalJson(userState(user))) {
      continue;
    }
    tasks.push({
      kind: 'written',
      run: async () => {
        await store.writeUser(keyOf(user), prior, user);
        await changed(userTarget(user), userState(prior), userState(user));
      },
    });
  }
  for (const [k, user] of old) {
    if (next.has(k)) continue;
    tasks.push({
      kind: 'deleted',
      run: async () => {
        await store.writeUser(keyOf(user), user, null);
        await changed(userTarget(user), userState(user), null);
      },
    });
  }
  const oldRoles = groupRoles(before.roles);
  const newRoles = groupRoles(after.roles);
  for (const key of new Set([...oldRoles.keys(), ...newRoles.keys()])) {
    const prior = oldRoles.get(key) ?? [];
    const wanted = newRoles.get(key) ?? [];
    const tenant = (prior[0] ?? wanted[0])?.tenant;
    const text = (list: TenantRole[]) =>
      canonicalJson(
        list.map((r) => [r.role.name, roleState(r.role)]).sort((a, b) => (a[0]! < b[0]! ? -1 : 1)),
      );
    if (text(prior) === text(wanted)) continue;
    tasks.push({
      kind: wanted.length === 0 ? 'deleted' : 'written',
      run: async () => {
        await store.writeRoles(
          tenant,
          prior.map((r) => r.role),
          wanted.map((r) => r.role),
        );
        // One audit record per role that changed in the set.
        for (const name of new Set([...prior, ...wanted].map((r) => r.role.name))) {
          const was = roleState(prior.find((r) => r.role.name === name)?.role);
          const now = roleState(wanted.find((r) => r.role.name === name)?.role);
          if (canonicalJson(was) !== canonicalJson(now)) {
            await changed(tenantTarget(tenant, { role: name }), was, now);
          }
        }
      },
    });
  }
  return tasks;
}

/** Runs a plan, {@link SYNC_CONCURRENCY} tasks at a time; a failure throws {@link SyncError}. */
async function runPlan(
  tasks: readonly SyncTask[],
  progress?: Progress,
): Promise<{ written: number; deleted: number }> {
  let written = 0;
  let deleted = 0;
  let nextTask = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    // After a failure no new write starts; those in flight finish before the error is raised,
    // so nothing is still writing once the caller reports it.
    while (nextTask < tasks.length && failure === undefined) {
      const task = tasks[nextTask++]!;
      try {
        await task.run();
        if (task.kind === 'written') written++;
        else deleted++;
      } catch (error) {
        failure ??= { error };
        return;
      }
      progress?.(written + deleted, tasks.length);
    }
  };
  await Promise.all(Array.from({ length: Math.min(SYNC_CONCURRENCY, tasks.length) }, worker));
  if (failure !== undefined) throw new SyncError(failure.error, written, deleted);
  return { written, deleted };
}

/**
 * Makes `store` hold `after`, given it holds `before` ({@link planSync}, then {@link runPlan}).
 */
export async function syncSnapshot(
  store: AdminStore,
  before: Snapshot,
  after: Snapshot,
  progress?: Progress,
  onChange?: (
    target: AuditRecord['target'],
    before: AuditState,
    after: AuditState,
  ) => Promise<unknown>,
): Promise<{ written: number; deleted: number }> {
  return runPlan(planSync(store, before, after, onChange), progress);
}
