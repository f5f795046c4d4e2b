/** Permissions: grammar, wildcard matching, roles with inheritance, compiled permission sets. */

export type { CompiledCondition, ConditionInput } from './conditions.ts';
export { compileConditions } from './conditions.ts';
export type { PermissionSyntaxOptions } from './grammar.ts';
export {
  assertPermission,
  isValidPermission,
  MAX_PERMISSION_LENGTH,
  MAX_PERMISSION_SEGMENTS,
  MAX_SEGMENT_LENGTH,
  parsePermission,
  permissionMatches,
  permissionProblem,
} from './grammar.ts';
export type {
  CheckResult,
  CompilePermissionsInput,
  PermissionEntry,
  PermissionSet,
} from './permission-set.ts';
export { compilePermissions } from './permission-set.ts';
export type { RoleGrant, RoleGraph } from './roles.ts';
export { compileRoles, MAX_ROLE_NAME_LENGTH } from './roles.ts';
