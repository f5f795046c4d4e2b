/**
 * Permissions carried by the verified token itself: a permissions claim, OAuth scopes, and
 * optionally a roles claim. Nothing is read from storage, so nothing can be unavailable.
 *
 * The verifier keeps only the claims it is told to keep: every claim name configured here must be
 * in the issuer's `keepClaims`, or the store will see no such claim and grant nothing from it.
 */

import { ConfigError } from '../errors.ts';
import { assertPermission } from '../permissions/grammar.ts';
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
  /**
   * Claim holding assigned role names (array or space-separated string, like `scp`); default
   * `null` (no roles from the token).
   */
  readonly rolesClaim?: string | null;
  /**
   * Scope → permissions it grants, for scopes that are not permissions themselves (Okta `read`,
   * Azure `Orders.Read`). A mapped scope grants exactly its list; an unmapped scope is granted as
   * itself, so only permission-shaped ones count. Default none.
   */
  readonly scopes?: Readonly<Record<string, readonly string[]>>;
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

/**
 * RFC 6749 §3.3 scope-token: printable ASCII except space, `"` and `\\`. A key outside this can
 * never arrive in a token, so mapping it is a mistake to report, not a rule that silently never fires.
 */
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

/**
 * Validates a scope mapping, throwing {@link ConfigError} at `field.<scope>` (or `[i]` for a
 * target): keys must be scope tokens, targets grants in the permission grammar (wildcards allowed).
 */
export function checkScopeMap(
  scopes: unknown,
  field: string,
): ReadonlyMap<string, readonly string[]> {
  if (typeof scopes !== 'object' || scopes === null || Array.isArray(scopes)) {
    throw new ConfigError(field, 'expected an object mapping each scope to a list of permissions');
  }
  const map = new Map<string, readonly string[]>();
  for (const [scope, targets] of Object.entries(scopes)) {
    const at = `${field}.${scope}`;
    if (!SCOPE_TOKEN.test(scope)) {
      throw new ConfigError(
        at,
        'expected a scope as a token carries it: printable ASCII without spaces, quotes or backslashes',
      );
    }
    if (!Array.isArray(targets) || targets.length === 0) {
      throw new ConfigError(at, 'expected a non-empty list of permissions');
    }
    targets.forEach((target, i) => {
      assertPermission(target, `${at}[${i}]`, { allowWildcards: true });
    });
    map.set(scope, Object.freeze([...new Set<string>(targets)]));
  }
  return map;
}

/**
 * Keeps non-empty strings without whitespace; anything else in the claim is ignored. A string is
 * split on U+0020 only, as RFC 6749 §3.3 separates scope tokens: a part that still holds other
 * whitespace (a tab, NBSP, U+3000) is dropped, so `"x\u3000admin"` never yields `admin`.
 */
function addStrings(into: Set<string>, value: unknown, splitSpaces: boolean): void {
  if (typeof value === 'string') {
    if (!splitSpaces) return;
    for (const part of value.split(' ')) if (part !== '' && !/\s/.test(part)) into.add(part);
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
  /** A Map, not the object: a token scope such as `toString` must not find an inherited member. */
  readonly #scopes: ReadonlyMap<string, readonly string[]>;

  /**
   * Throws {@link ConfigError} for a claim name that is neither a non-empty string nor null, and
   * for a scope mapping that {@link checkScopeMap} refuses.
   */
  constructor(options: ClaimsStoreOptions = {}) {
    this.#permissionsClaim = claimName(options, 'permissionsClaim', 'permissions');
    this.#scopeClaim = claimName(options, 'scopeClaim', 'scope');
    this.#rolesClaim = claimName(options, 'rolesClaim', null);
    this.#scopes =
      options.scopes === undefined
        ? new Map()
        : checkScopeMap(options.scopes, 'claimsStore.scopes');
    if (this.#scopes.size > 0 && this.#scopeClaim === null) {
      throw new ConfigError('claimsStore.scopes', 'only applies when scopeClaim is not null');
    }
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
      const scopes = new Set<string>();
      addStrings(scopes, claims[this.#scopeClaim], true);
      if (this.#scopeClaim === 'scope') {
        // The verifier already folds `scope` / `scp` into principal.scopes and may not keep them.
        addStrings(scopes, claims.scp, true);
        addStrings(scopes, principal.scopes, false);
      }
      for (const scope of scopes) {
        const mapped = this.#scopes.get(scope);
        if (mapped === undefined) permissions.add(scope);
        else for (const permission of mapped) permissions.add(permission);
      }
    }
    const roles = new Set<string>();
    // Space-separated like `scope`: Okta and Keycloak mappers can emit a roles claim either way.
    if (this.#rolesClaim !== null) addStrings(roles, claims[this.#rolesClaim], true);

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
