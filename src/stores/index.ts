/** Permission stores (memory, JSON file, token claims) and the cache in front of any of them. */

export type { CacheOptions, CacheOutcome, CacheStats, RolesLookup, UserLookup } from './cache.ts';
export { CachedStore } from './cache.ts';
export type { ClaimsStoreOptions } from './claims.ts';
export { ClaimsStore, checkScopeMap } from './claims.ts';
export { encodeKeyPart, subjectStorageKey, tenantStorageKey } from './keys.ts';
export type { TenantRole } from './memory.ts';
export { MemoryStore } from './memory.ts';
export type {
  GrantEntry,
  ParsePermissionOptions,
  PermissionData,
  PermissionSection,
  RoleAssignmentEntry,
  RoleEntry,
  UserEntry,
} from './permission-data.ts';
export {
  createFileStore,
  expiryToUnixSeconds,
  exportPermissionData,
  FileStore,
  parsePermissionData,
} from './permission-data.ts';
