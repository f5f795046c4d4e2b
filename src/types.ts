/**
 * The shapes that flow between the core's parts (see DESIGN in the README):
 * token → Principal; store → UserRecord / RoleRecord; policy + context → Decision.
 * Platform-free: nothing here imports Workers or AWS code.
 */

/** A link in an RFC 8693 delegation chain (`act` claim): who acts on behalf of the subject. */
export interface Actor {
  readonly subject: string;
  readonly issuer?: string;
}

/** Who is calling, as established by a verified token. */
export interface Principal {
  /** The `iss` of the verified token, exactly as allow-listed. */
  readonly issuer: string;
  /**
   * Which kind of issuer vouched for this principal. `external` is an identity provider from
   * the allowlist; `self` is reserved for Gatehouse's own tokens (delegation, signed events).
   */
  readonly issuerKind: 'external' | 'self';
  readonly subject: string;
  /** From the issuer's configured tenant claim, or the fixed tenant; absent without tenancy. */
  readonly tenant?: string;
  /** From `scope` (space-separated) or `scp` (array or string). */
  readonly scopes: readonly string[];
  /** Only the claims that rules need (registered claims plus configured names); never logged. */
  readonly claims: Readonly<Record<string, unknown>>;
  /** Delegation chain from `act`, outermost (current) actor first. Empty when absent. */
  readonly actors: readonly Actor[];
  /** Token expiry, Unix seconds. */
  readonly expiresAt: number;
  /** Token issued-at, Unix seconds, when present. */
  readonly issuedAt?: number;
}

/** What the edge knows about the request being decided. */
export interface RequestContext {
  /** Upper-case HTTP method. */
  readonly method: string;
  /** URL path, not decoded, without query string. */
  readonly path: string;
  /** Client IP address (v4 or v6) as the platform reports it. */
  readonly ip?: string;
  /** ISO 3166-1 alpha-2 country code, when the platform supplies it (Cloudflare `request.cf`). */
  readonly country?: string;
  /** Decision time, milliseconds since the epoch. Injected so tests fake the clock, not the logic. */
  readonly now: number;
}

export type Weekday = 'mon' | 'tue' | 'wed' | 'thu' | 'fri' | 'sat' | 'sun';

/** Conditions on a grant or deny; every present key must hold for it to apply. */
export interface Conditions {
  /** Client IP must fall in one of these CIDR ranges (v4 or v6). */
  readonly ip?: readonly string[];
  /** Local time window in an IANA zone (default UTC). `hours` is [from, to) as "HH:MM"; to < from wraps midnight. */
  readonly time?: {
    readonly days?: readonly Weekday[];
    readonly hours?: { readonly from: string; readonly to: string };
    readonly timezone?: string;
  };
  /** Each named claim must equal the value, or be one of the values when an array is given. */
  readonly claims?: Readonly<
    Record<string, string | number | boolean | readonly (string | number | boolean)[]>
  >;
  /** Country (ISO alpha-2) must be one of these; fails closed when the platform supplies none. */
  readonly country?: readonly string[];
}

/** One permission grant or deny, such as `read:posts` or `delete:posts:*`. */
export interface Grant {
  readonly permission: string;
  /** Unix seconds after which the grant never matches, whatever the store still holds. */
  readonly expiresAt?: number;
  readonly when?: Conditions;
}

/** A role assignment; may expire like a grant. */
export interface RoleAssignment {
  readonly role: string;
  readonly expiresAt?: number;
}

/** Everything the store holds about one subject (in one tenant). */
export interface UserRecord {
  readonly subject: string;
  readonly tenant?: string;
  readonly roles: readonly RoleAssignment[];
  readonly grants: readonly Grant[];
  readonly denies: readonly Grant[];
}

/** A role definition: grants and denies, plus parent roles whose permissions it inherits. */
export interface RoleRecord {
  readonly name: string;
  readonly grants: readonly Grant[];
  readonly denies?: readonly Grant[];
  readonly inherits: readonly string[];
}

/** How a store addresses a subject. Stores encode every part before building a key. */
export interface SubjectKey {
  readonly subject: string;
  readonly tenant?: string;
}

/**
 * Where a principal's permissions come from. Implementations: memory, JSON file, token claims
 * (here), Workers KV and DynamoDB (on their edges). A failure to read throws {@link StoreError}.
 */
export interface PermissionStore {
  /** Short name for logs and explain output (`memory`, `file`, `claims`, `kv`, `dynamodb`). */
  readonly kind: string;
  /** False when a record depends on the token rather than the subject (claims), so caches skip it. */
  readonly cacheable?: boolean;
  /** The subject's record, or null when the store has none. `principal` lets a claims store read the token. */
  getUser(key: SubjectKey, principal?: Principal): Promise<UserRecord | null>;
  /** Role definitions held by the store for a tenant (in addition to the policy's static roles). */
  getRoles(tenant: string | undefined): Promise<readonly RoleRecord[]>;
}

/** Stable decision reasons. Callers switch on these; they appear in logs and problem responses. */
export type ReasonCode =
  | 'allowed'
  | 'public_route'
  | 'authenticated_route'
  | 'no_route'
  | 'malformed_request'
  | 'missing_permission'
  | 'explicit_deny'
  | 'tenant_mismatch'
  /** A delegated caller where delegation is refused, or whose actor may no longer act. */
  | 'delegation_refused'
  /** The delegator holds the permission, but it is outside the token's scope or an actor's ceiling. */
  | 'outside_delegation'
  | 'store_unavailable'
  | 'configuration_error'
  | 'internal_error'
  // Revocation (src/revocation/follower.ts): signed out everywhere, a revoked token id, a strict
  // route while the feed lags, a consistency token the data has not reached.
  | 'session_revoked'
  | 'token_revoked'
  | 'token_lifetime_unbounded'
  | 'revocation_unavailable'
  | 'consistency_unavailable'
  | import('./errors.ts').TokenErrorCode;

/** One required permission and what satisfied it. */
export interface PermissionMatch {
  /** The required permission, with path parameters filled in. */
  readonly required: string;
  /** The grant (as written) that satisfied it. */
  readonly grant: string;
  /** `direct` for the user's own grant, otherwise the role path from the assigned role to the granting role. */
  readonly via: 'direct' | 'claims' | readonly string[];
}

export interface Decision {
  readonly allow: boolean;
  /** HTTP-style status: 200 allow, 400 malformed request, 401 bad credential, 403 forbidden, 503 unavailable. */
  readonly status: 200 | 400 | 401 | 403 | 503;
  readonly reason: ReasonCode;
  /** The matched route as written in the policy, e.g. `DELETE /posts/:id`. */
  readonly route?: string | undefined;
  /** Required permissions after filling path parameters. */
  readonly required?: readonly string[];
  /** For allows: what satisfied each required permission. For explicit denies: the deny that matched. */
  readonly matched?: readonly PermissionMatch[];
  readonly principal?: Principal;
  /** Human-readable explanation; never contains the token or claim values. */
  readonly explain: string;
  /** Cache hints: whether the token and permissions came from caches, and how long this answer stays valid. */
  readonly cache?: {
    readonly token?: 'hit' | 'miss' | undefined;
    /** `stale`: served past its TTL because the store failed (only with staleIfErrorSeconds). */
    readonly permissions?: 'hit' | 'miss' | 'stale' | undefined;
    /** Seconds this decision may be reused for the same token and route (token expiry, grant expiry, store TTL). */
    readonly maxAgeSeconds?: number;
  };
}
