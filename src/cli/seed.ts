/**
 * Seeding demo data into a store a person may already have changed (`npm start`, run again
 * after `gatehouse grant` / `revoke` / `import --replace`): a seed must never undo such a change.
 *
 * A subject or store role is written only when the store does not hold it **and** the audit trail
 * has no record of it: a record there means someone (or an earlier seed) already wrote it, and
 * its absence now is a deliberate deletion. What is written goes through the same import as
 * `gatehouse import` (validated, audited under the admin's actor), so the trail shows the seed.
 */
import { type PermissionAdmin, toSnapshot } from '../admin/operations.ts';
import type { AuditFilter } from '../admin/types.ts';
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
      (await everAudited(tenant, { role: role.name }))
    ) {
      kept.push(name);
    } else {
      seed.putRole(tenant, role);
      touchedTenants.add(tenantStorageKey(tenant));
      seeded.push(name);
    }
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
