/**
 * Permissions carried by the verified token itself: a permissions claim, OAuth scopes, and
 * optionally a roles claim. Nothing is read from storage, so nothing can be unavailable.
 *
 * The verifier keeps only the claims it is told to keep: every claim name configured here must be
 * in the issuer's `keepClaims`, or the store will see no such claim and grant nothing from it.
 */

import { ConfigError } from '../errors.ts';
import type {
  Grant,
  PermissionStore,
  Principal,
  RoleAssignment,
  RoleRecord,
  SubjectKey,
  UserRecord,
} from '../types.ts';

export interface ClaimsStoreOptions {
  /** Claim holding an array of permission strings; default `permissions`; `null` reads none. */
  readonly permissionsClaim?: string | null;
  /**
   * Claim holding scopes (space-separated string or array), each granted as a permission; default
   * `scope`, which also reads `scp` and the principal's parsed scopes; `null` reads none.
   */
  readonly scopeClaim?: string | null;
  /** Claim holding an array of assigned role names; default `null` (no roles from the token). */
  readonly rolesClaim?: string | null;
}

const NO_ROLES: readonly RoleRecord[] = Object.freeze([]);
const NO_DENIES: readonly Grant[] = Object.freeze([]);

function claimName(
  options: ClaimsStoreOptions,
  key: keyof ClaimsStoreOptions,
  fallback: string | null,
) {
  const value = options[key];
  if (value === undefined) return fallback;
  if (value === null || (typeof value === 'string' && value.length > 0)) return value;
  throw new ConfigError(`claimsStore.${key}`, 'expected a non-empty claim name or null');
}

/** Keeps non-empty strings without whitespace; anything else in the claim is ignored. */
function addStrings(into: Set<string>, value: unknown, splitSpaces: boolean): void {
  if (typeof value === 'string') {
    if (splitSpaces) for (const part of value.split(/\s+/)) if (part !== '') into.add(part);
    return;
  }
  if (!Array.isArray(value)) return;
  for (const item of value) {
    if (typeof item === 'string' && item !== '' && !/\s/.test(item)) into.add(item);
  }
}

export class ClaimsStore implements PermissionStore {
  readonly kind = 'claims';
  /** The record depends on the token, not on the subject, so a cache must not share it. */
  readonly cacheable = false;
  readonly #permissionsClaim: string | null;
  readonly #scopeClaim: string | null;
  readonly #rolesClaim: string | null;

  /** Throws {@link ConfigError} for a claim name that is neither a non-empty string nor null. */
  constructor(options: ClaimsStoreOptions = {}) {
    this.#permissionsClaim = claimName(options, 'permissionsClaim', 'permissions');
    this.#scopeClaim = claimName(options, 'scopeClaim', 'scope');
    this.#rolesClaim = claimName(options, 'rolesClaim', null);
  }

  /**
   * The record built from `principal`; null without a principal, or when the principal is not the
   * subject asked for (its claims say nothing about anyone else).
   */
  async getUser(key: SubjectKey, principal?: Principal): Promise<UserRecord | null> {
    if (principal === undefined) return null;
    if (principal.subject !== key.subject || principal.tenant !== key.tenant) return null;
    const { claims } = principal;
    const permissions = new Set<string>();
    if (this.#permissionsClaim !== null) {
      // Arrays only: a lone string here is more likely a misconfiguration than a list.
      if (Array.isArray(claims[this.#permissionsClaim])) {
        addStrings(permissions, claims[this.#permissionsClaim], false);
      }
    }
    if (this.#scopeClaim !== null) {
      addStrings(permissions, claims[this.#scopeClaim], true);
      if (this.#scopeClaim === 'scope') {
        // The verifier already folds `scope` / `scp` into principal.scopes and may not keep them.
        addStrings(permissions, claims.scp, true);
        addStrings(permissions, principal.scopes, false);
      }
    }
    const roles = new Set<string>();
    if (this.#rolesClaim !== null) addStrings(roles, claims[this.#rolesClaim], false);

    const record: UserRecord = {
      subject: principal.subject,
      roles: Object.freeze([...roles].map((role): RoleAssignment => Object.freeze({ role }))),
      grants: Object.freeze(
        [...permissions].map((permission): Grant => Object.freeze({ permission })),
      ),
      denies: NO_DENIES,
    };
    return Object.freeze(
      principal.tenant === undefined ? record : { ...record, tenant: principal.tenant },
    );
  }

  async getRoles(_tenant: string | undefined): Promise<readonly RoleRecord[]> {
    return NO_ROLES;
  }
}
