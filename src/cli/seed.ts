/**
 * Seeding demo data into a store a person may already have changed (`npm start`, run again
 * after `gatehouse grant` / `revoke` / `import --replace`): a seed must never undo such a change.
 *
 * A subject or store role is written only when the store does not hold it, the store's permanent
 * `seeded` marker does not name it, **and** the audit trail has no record of it: any of those
 * means someone (or an earlier seed) already wrote it, and its absence now is a deliberate
 * deletion. The marker is what makes this last: audit records expire (90 days by default), after
 * which a seed that looked only at them would write the demo data over a store in real use. It
 * is written before the records it names (a seed that fails half-way never writes them again,
 * rather than risk writing over a later change); stores seeded before the marker existed are
 * still recognised by their audit trail while it lasts. What is written goes through the same
 * import as `gatehouse import` (validated, audited under the admin's actor).
 */
import { type PermissionAdmin, toSnapshot } from '../admin/operations.ts';
import type { AuditFilter } from '../admin/types.ts';
import { StoreError } from '../errors.ts';
import { subjectStorageKey, tenantStorageKey } from '../stores/keys.ts';
import { MemoryStore } from '../stores/memory.ts';
import { exportPermissionData, parsePermissionData } from '../stores/permission-data.ts';

export interface SeedResult {
  /** Subjects and roles written, as `alice`, `alice (tenant acme)`, `role editor`. */
  readonly seeded: readonly string[];
  /** Those left alone because the store holds them or the audit trail names them. */
  readonly kept: readonly string[];
}

/** Audit records looked at per target: one is enough to keep it, more only to match tenants. */
const AUDIT_LOOKUP_LIMIT = 1000;

/** The marker naming every subject and role a seed ever wrote (`meta/seeded`, `META#seeded`). */
export const SEEDED_MARKER = 'seeded';

/** The keys a `seeded` marker holds; a marker that is not ours stops the seed (fail closed). */
function markerKeys(text: string | null): Set<string> {
  if (text === null) return new Set();
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  const keys = (value as { seeded?: unknown } | undefined)?.seeded;
  if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string')) {
    // Seeding anyway could write over real data; an operator must look at it.
    throw new StoreError(
      'store_invalid_record',
      `marker ${SEEDED_MARKER} is malformed: expected {"seeded": [keys]}`,
    );
  }
  return new Set(keys);
}

/** Writes the subjects and roles of permission file `text` that the store never held. */
export async function seedMissing(
  admin: PermissionAdmin,
  text: string,
  source: string,
  policyRoles: readonly string[],
): Promise<SeedResult> {
  const incoming = toSnapshot(parsePermissionData(text, source, { knownRoles: policyRoles }));
  const before = await admin.store.exportAll();
  const heldUsers = new Set(before.users.map((u) => subjectStorageKey(u)));
  const roleKey = (tenant: string | undefined, name: string) =>
    `${tenantStorageKey(tenant)}\n${name}`;
  const heldRoles = new Set(before.roles.map((r) => roleKey(r.tenant, r.role.name)));
  const marked = markerKeys(await admin.store.readMarker(SEEDED_MARKER));
  const userMark = (user: { subject: string; tenant?: string }) =>
    `user ${subjectStorageKey(user)}`;
  const roleMark = (tenant: string | undefined, name: string) => `role ${roleKey(tenant, name)}`;

  const everAudited = async (
    tenant: string | undefined,
    target: Pick<AuditFilter, 'subject' | 'role'>,
  ): Promise<boolean> => {
    const records = await admin.audit({
      since: 0,
      ...target,
      ...(tenant !== undefined && { tenant }),
      limit: AUDIT_LOOKUP_LIMIT,
    });
    // Without a tenant the filter matches every tenant's records: keep only this one's.
    return records.some((r) => r.target.tenant === tenant);
  };
  const label = (name: string, tenant: string | undefined) =>
    tenant === undefined ? name : `${name} (tenant ${tenant})`;

  const seed = new MemoryStore();
  const seeded: string[] = [];
  const kept: string[] = [];
  for (const user of incoming.users) {
    const name = label(user.subject, user.tenant);
    if (
      heldUsers.has(subjectStorageKey(user)) ||
      marked.has(userMark(user)) ||
      (await everAudited(user.tenant, { subject: user.subject }))
    ) {
      kept.push(name);
    } else {
      seed.putUser(user);
      seeded.push(name);
    }
  }
  const touchedTenants = new Set<string>();
  for (const { tenant, role } of incoming.roles) {
    const name = label(`role ${role.name}`, tenant);
    if (
      heldRoles.has(roleKey(tenant, role.name)) ||
      marked.has(roleMark(tenant, role.name)) ||
      (await everAudited(tenant, { role: role.name }))
    ) {
      kept.push(name);
    } else {
      seed.putRole(tenant, role);
      touchedTenants.add(tenantStorageKey(tenant));
      seeded.push(name);
    }
  }
  // Records held or audited count as seeded too: once the trail expires, the marker remembers.
  const marks = new Set(marked);
  for (const user of incoming.users) marks.add(userMark(user));
  for (const { tenant, role } of incoming.roles) marks.add(roleMark(tenant, role.name));
  if (marks.size !== marked.size) {
    await admin.store.writeMarker(SEEDED_MARKER, JSON.stringify({ seeded: [...marks].sort() }));
  }
  if (seeded.length === 0) return { seeded, kept };
  // An import replaces each tenant's whole role set: carry the stored roles of the tenants it
  // touches along, unchanged (an unchanged record is not written again).
  for (const { tenant, role } of before.roles) {
    if (touchedTenants.has(tenantStorageKey(tenant))) seed.putRole(tenant, role);
  }
  await admin.importData(JSON.stringify(exportPermissionData(seed)), { source });
  return { seeded, kept };
}
