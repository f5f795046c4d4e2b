/**
 * decide(): one request in, one Decision out. Follows the data flow in the README:
 * route match → token → principal → permissions (store → cache) → check → Decision.
 * Fails closed: any error on the way is a deny with a status that says why (401, 403, 503).
 */
import {
  type DelegationRefusal,
  type DelegationView,
  delegationView,
  type Refusal,
  refusalFor,
  standingDenied,
  withStanding,
} from '../delegation/index.ts';
import { ConfigError, StoreError, TokenError, type TokenErrorCode } from '../errors.ts';
import {
  type CheckResult,
  type ConditionInput,
  compilePermissions,
  compileRoles,
  isValidPermission,
  type PermissionSet,
  type RoleGraph,
} from '../permissions/index.ts';
import type { RevocationFollower, Refusal as RevocationRefusal } from '../revocation/follower.ts';
import { CachedStore, ClaimsStore, type RolesLookup, type UserLookup } from '../stores/index.ts';
import { subjectStorageKey } from '../stores/keys.ts';
import { maxRecordEntriesOption } from '../stores/records.ts';
import {
  createVerifier,
  extractBearer,
  type JwksPersistence,
  type TokenVerifier,
} from '../token/index.ts';
import type {
  Decision,
  PermissionMatch,
  PermissionStore,
  Principal,
  ReasonCode,
  RoleRecord,
  SubjectKey,
} from '../types.ts';
import { CHECK_ISSUER } from './check.ts';
import type { CompiledPolicy } from './policy.ts';
import { type CompiledRoute, fillTemplate, type RouteMatch } from './routes.ts';

export interface GatehouseOptions {
  readonly policy: CompiledPolicy;
  /** Where permissions live; required unless the policy's permissions source is `claims`. Wrapped in the policy's cache. */
  readonly store?: PermissionStore;
  /** Replaces the verifier built from the policy (tests, or a platform with its own). */
  readonly verifier?: TokenVerifier;
  /** fetch for JWKS endpoints (default: global fetch). */
  readonly fetch?: typeof fetch;
  /** Clock in milliseconds (default Date.now); injected so tests fake time, not logic. */
  readonly now?: () => number;
  /** Stores fetched JWKS so a cold isolate verifies without calling the identity provider. */
  readonly persistence?: JwksPersistence;
  /** Let concurrent JWKS misses share one fetch (default: true except on workerd). */
  readonly shareInFlight?: boolean;
  /**
   * Entries one store record may hold (a subject's assignments + grants + denies, a tenant's
   * role set); default 10000, 1 to 1000000. A larger record is refused (503) before compiling.
   */
  readonly maxRecordEntries?: number;
  /** Receives one entry per store record refused (too large, malformed); default console.error. */
  readonly storeLog?: (entry: Readonly<Record<string, unknown>>) => void;
  /**
   * Follows the revocation feed (issue 14): evicts changed records from this Gatehouse's cache,
   * refuses signed-out sessions and revoked token ids, fails strict routes closed on lag.
   */
  readonly revocation?: RevocationFollower;
}

/** Options of {@link Gatehouse.check} beyond the permissions. */
export interface CheckOptions {
  /** Fail closed when the revocation feed lags (a strict route's check). */
  readonly strict?: boolean;
  /** A consistency token (a management call's epoch): answer from data at least that fresh. */
  readonly consistency?: number | undefined;
}

export interface DecisionRequest {
  /** HTTP method (any case). */
  readonly method: string;
  /** Raw URL path, undecoded; a query string is ignored. */
  readonly path: string;
  /** The Authorization header value, if any. */
  readonly authorization?: string | null | undefined;
  readonly ip?: string | undefined;
  readonly country?: string | undefined;
  /** A consistency token (a management call's epoch): answer from data at least that fresh. */
  readonly consistency?: number | undefined;
}

type PermissionsHint = 'hit' | 'miss' | 'stale' | undefined;

/** A principal's compiled permissions and where they came from (see permissionsFor). */
interface LoadedPermissions {
  readonly set: PermissionSet;
  readonly permissionsHint: PermissionsHint;
  /** Milliseconds since the epoch. */
  readonly freshUntil: number;
}

const STATUS_FOR_TOKEN: Partial<Record<TokenErrorCode, 503>> = { keys_unavailable: 503 };

export class Gatehouse {
  readonly policy: CompiledPolicy;
  readonly verifier: TokenVerifier;
  /** The permission store behind its cache, or the claims store when permissions come from tokens. */
  readonly store: CachedStore | ClaimsStore;
  /**
   * Entries a record may hold and a principal's roles may expand to (the cache's
   * `maxRecordEntries`); the edges and explain compile with it.
   */
  readonly maxRecordEntries: number;
  /** The revocation feed's follower, when the platform has a feed. */
  readonly revocation: RevocationFollower | undefined;
  private readonly now: () => number;
  /**
   * Compiled permission sets, keyed by the cached record (or principal, for claims) they came
   * from; a record refused for its expansion keeps its error, so it is not expanded (or
   * logged) again while the cache serves it.
   */
  private readonly compiled = new WeakMap<
    object,
    { graph: RoleGraph; set: PermissionSet | StoreError }
  >();
  /** Role graphs per store role list (the cache hands back the same array while it is fresh). */
  private readonly graphs = new WeakMap<readonly RoleRecord[], RoleGraph>();
  /** Delegation views per verified principal (the token cache hands back the same object). */
  private readonly views = new WeakMap<Principal, DelegationView | DelegationRefusal>();

  constructor(options: GatehouseOptions) {
    const { policy } = options;
    this.policy = policy;
    this.now = options.now ?? Date.now;
    this.verifier = options.verifier ?? this.verifierFromPolicy(options);
    if (policy.permissions.source === 'claims') {
      this.store = new ClaimsStore(policy.permissions.claims);
    } else {
      if (!options.store) {
        throw new ConfigError(
          'store',
          'expected a PermissionStore when policy permissions.source is store',
        );
      }
      this.store = new CachedStore(options.store, {
        ...policy.cache,
        now: this.now,
        ...(options.maxRecordEntries !== undefined && {
          maxRecordEntries: options.maxRecordEntries,
        }),
        ...(options.storeLog !== undefined && { log: options.storeLog }),
      });
    }
    this.maxRecordEntries =
      this.store instanceof CachedStore
        ? this.store.maxRecordEntries
        : maxRecordEntriesOption(options.maxRecordEntries, 'maxRecordEntries');
    this.revocation = options.revocation;
    if (this.store instanceof CachedStore) this.revocation?.attach(this.store);
  }

  private verifierFromPolicy(options: GatehouseOptions): TokenVerifier {
    try {
      return createVerifier({
        ...options.policy.verifier,
        now: this.now,
        ...(options.fetch && { fetch: options.fetch }),
        ...(options.persistence && { persistence: options.persistence }),
        ...(options.shareInFlight !== undefined && { shareInFlight: options.shareInFlight }),
      });
    } catch (error) {
      // The verifier's issuers are the policy's, index for index: name the field as the policy does.
      if (error instanceof ConfigError) {
        throw new ConfigError(`policy.${error.field}`, error.expected, { cause: error });
      }
      throw error;
    }
  }

  /** Decides one HTTP request. Never throws: every failure is a deny Decision. */
  async decide(request: DecisionRequest): Promise<Decision> {
    try {
      return await this.decideUnsafe(request);
    } catch (error) {
      return failure(error);
    }
  }

  /**
   * Checks permissions for an already-verified principal (check API, async consumers).
   * `mode` all requires every permission; any requires one.
   */
  async check(
    principal: Principal,
    permissions: readonly string[],
    context: { ip?: string | undefined; country?: string | undefined } = {},
    mode: 'all' | 'any' = 'all',
    options: CheckOptions = {},
  ): Promise<Decision> {
    try {
      // An empty list would be vacuously "all granted": a caller's filtering bug must not allow.
      if (permissions.length === 0 || !permissions.every((p) => isValidPermission(p))) {
        return deny(400, 'malformed_request', 'Expected one or more permissions like read:posts.', {
          principal,
        });
      }
      const refused = await this.admit(principal, {
        // A bare-subject check has no token, so no session to have been revoked.
        session: principal.issuer !== CHECK_ISSUER,
        strict: options.strict,
        consistency: options.consistency,
      });
      if (refused !== null) return refusalDecision(refused, principal);
      return await this.authorize(principal, permissions, mode, context, undefined, undefined);
    } catch (error) {
      return failure(error, principal);
    }
  }

  private async decideUnsafe(request: DecisionRequest): Promise<Decision> {
    const method = request.method.toUpperCase();
    const match = this.policy.routes.match(method, request.path);
    if (match === 'malformed') {
      return deny(400, 'malformed_request', 'The request path is malformed or ambiguous.');
    }
    if (match?.route.requirement.kind === 'public') {
      return {
        allow: true,
        status: 200,
        reason: 'public_route',
        route: match.route.label,
        explain: `Route ${match.route.label} is public.`,
      };
    }

    const token = extractBearer(request.authorization);
    // A cached token answers synchronously: no promise on the repeated-token path.
    const verified = this.verifier.cached?.(token) ?? (await this.verifier.verify(token));
    const principal = verified.principal;
    const tokenHint = verified.cache;
    // Gated before any answer that carries the principal, denials included: AWS principal mode
    // builds a cached policy for the principal of a no_route or tenant_mismatch deny, so a revoked
    // or signed-out token must be refused here first (review of issue 11, finding 1).
    let gated = this.gate(principal, match?.route, request.consistency);
    // Awaited only when the follower has to wait: the steady state stays synchronous.
    if (gated instanceof Promise) gated = await gated;
    if (gated !== null) return gated;

    if (!match) {
      return deny(403, 'no_route', `No route matches ${method} ${pathOnly(request.path)}.`, {
        principal,
      });
    }
    const route = match.route;
    const tenantProblem = this.checkTenant(principal, match);
    if (tenantProblem) return tenantProblem;

    if (route.requirement.kind === 'authenticated') {
      return {
        allow: true,
        status: 200,
        reason: 'authenticated_route',
        route: route.label,
        principal,
        explain: `Route ${route.label} needs only a valid token.`,
        cache: {
          token: tokenHint,
          maxAgeSeconds: secondsLeft(principal.expiresAt, this.now() / 1000),
        },
      };
    }
    const requirement = route.requirement;
    if (requirement.kind === 'public') throw new Error('unreachable: public routes return early');
    const required = requirement.permissions.map((t) => fillTemplate(t, match.params));
    // A filled value can break the grammar's limits (a 200-character id); such a permission
    // could match no deny, so the request is refused rather than checked.
    if (requirement.filled && !required.every((p) => isValidPermission(p))) {
      return deny(400, 'malformed_request', 'A path parameter is too long for a permission.', {
        principal,
        route: route.label,
      });
    }
    const mode = requirement.kind === 'all' ? 'all' : 'any';
    const decision = this.authorize(principal, required, mode, request, route.label, tokenHint);
    return decision instanceof Promise ? await decision : decision;
  }

  /**
   * Verifies the bearer token and admits its caller as an `authenticated` route would, for code
   * that only authenticates (Hono's `authorize: 'token'`): the revocation feed (sign-outs, revoked
   * token ids, a consistency token) and, for a delegation token, the use-time rule's refusals
   * (a revoked standing grant included). Never throws: every failure is a deny Decision.
   */
  async authenticate(request: {
    readonly authorization?: string | null | undefined;
    readonly consistency?: number | undefined;
  }): Promise<Decision> {
    let principal: Principal | undefined;
    try {
      const token = extractBearer(request.authorization);
      const verified = this.verifier.cached?.(token) ?? (await this.verifier.verify(token));
      principal = verified.principal;
      let gated = this.gate(principal, undefined, request.consistency);
      if (gated instanceof Promise) gated = await gated;
      if (gated !== null) return gated;
      return {
        allow: true,
        status: 200,
        reason: 'authenticated_route',
        principal,
        explain: 'The token is valid and its caller is admitted; no permission was checked.',
        cache: {
          token: verified.cache,
          maxAgeSeconds: secondsLeft(principal.expiresAt, this.now() / 1000),
        },
      };
    } catch (error) {
      return failure(error, principal);
    }
  }

  /**
   * What every verified caller passes before its route is decided, or null: the revocation feed,
   * then for a delegation token the route's `delegated` flag and the use-time rule. `route`
   * undefined is `authenticate`: any caller, only a token asked for. Synchronous unless the
   * follower or a permission read has to be waited for.
   */
  private gate(
    principal: Principal,
    route: CompiledRoute | undefined,
    consistency: number | undefined,
  ): Decision | null | Promise<Decision | null> {
    const refused = this.admit(principal, {
      session: true,
      strict: route?.strict,
      consistency,
    });
    if (refused === null) return this.gateDelegation(principal, route);
    if ('then' in refused) {
      return refused.then((verdict) =>
        verdict === null
          ? this.gateDelegation(principal, route)
          : refusalDecision(verdict, principal, route?.label),
      );
    }
    return refusalDecision(refused, principal, route?.label);
  }

  private gateDelegation(
    principal: Principal,
    route: CompiledRoute | undefined,
  ): Decision | null | Promise<Decision | null> {
    if (!this.delegated(principal)) return null;
    const label = route?.label;
    if (route !== undefined && !route.delegated) {
      return deny(403, 'delegation_refused', `Route ${route.label} refuses delegated callers.`, {
        principal,
        route: route.label,
      });
    }
    const view = this.delegation(principal);
    if ('refused' in view) return refusedDelegation(view, principal, label);
    if (view.standing === undefined || (route && route.requirement.kind !== 'authenticated')) {
      // A permission check follows (authorize), which resolves the standing actor's ceiling.
      return null;
    }
    // No permission is checked, but a revoked standing grant must still end the token.
    const standing = (loaded: LoadedPermissions): Decision | null => {
      const resolved = withStanding(view, loaded.set, this.now());
      return 'refused' in resolved ? refusedDelegation(resolved, principal, label) : null;
    };
    const loaded = this.permissionsFor(principal);
    return loaded instanceof Promise ? loaded.then(standing) : standing(loaded);
  }

  /**
   * The revocation follower's verdict (sign-out not-before, revoked token ids, and for a
   * delegation token every party of its chain); null without a feed, or when admitted. Shared
   * by decide, check, the token endpoint and the admin API, so every door refuses alike.
   */
  admit(
    principal: Principal,
    options: { session: boolean; strict?: boolean | undefined; consistency?: number | undefined },
  ): RevocationRefusal | null | Promise<RevocationRefusal | null> {
    const follower = this.revocation;
    if (follower === undefined) {
      // Without a feed nothing can vouch for freshness: a strict route or a consistency token
      // cannot be honoured, so they are refused rather than answered on possibly stale grants.
      if (options.strict === true || options.consistency !== undefined) {
        return {
          status: 503,
          reason: options.strict === true ? 'revocation_unavailable' : 'consistency_unavailable',
          explain: 'This deployment has no revocation feed to confirm freshness.',
        };
      }
      return null;
    }
    return follower.admit(principal, options);
  }

  /**
   * The tenant refusal for a verified caller on the route `method path` matches, or null: for a
   * check in code (Hono's requirePermission) on a request the route decision did not tenant-check
   * (a public route, or `authorize: 'token'`).
   */
  routeTenantRefusal(
    principal: Principal,
    method: string,
    path: string,
    named?: string | undefined,
  ): Decision | null {
    if (this.policy.tenantParam === undefined) return null;
    // `named`: the tenant the application's own route read from the path (it may match no
    // policy route at all), compared as the application will use it.
    if (named !== undefined && named !== principal.tenant) {
      return deny(403, 'tenant_mismatch', `The route names a tenant other than the caller's.`, {
        principal,
      });
    }
    const match = this.policy.routes.match(method.toUpperCase(), path);
    if (match === 'malformed') {
      // A path the guard cannot read unambiguously could hide the tenant it names.
      return deny(400, 'malformed_request', 'The request path is malformed or ambiguous.', {
        principal,
      });
    }
    return match === null ? null : this.checkTenant(principal, match);
  }

  private checkTenant(principal: Principal, match: RouteMatch): Decision | null {
    const param = this.policy.tenantParam;
    if (param === undefined) return null;
    const wanted = match.params[param];
    if (wanted === undefined || wanted === principal.tenant) return null;
    return deny(403, 'tenant_mismatch', `The route names a tenant other than the caller's.`, {
      principal,
      route: match.route.label,
    });
  }

  /** Synchronous when the permissions are (see permissionsFor): no promise per decision then. */
  private authorize(
    principal: Principal,
    required: readonly string[],
    mode: 'all' | 'any',
    context: { ip?: string | undefined; country?: string | undefined },
    routeLabel: string | undefined,
    tokenHint: 'hit' | 'miss' | undefined,
  ): Decision | Promise<Decision> {
    let view: DelegationView | null = null;
    if (this.delegated(principal)) {
      const found = this.delegation(principal);
      if ('refused' in found) return refusedDelegation(found, principal, routeLabel);
      view = found;
    }
    const loaded = this.permissionsFor(principal);
    if (loaded instanceof Promise) {
      return loaded.then((ready) =>
        this.authorizeWith(ready, view, principal, required, mode, context, routeLabel, tokenHint),
      );
    }
    return this.authorizeWith(
      loaded,
      view,
      principal,
      required,
      mode,
      context,
      routeLabel,
      tokenHint,
    );
  }

  private authorizeWith(
    loaded: LoadedPermissions,
    delegationView: DelegationView | null,
    principal: Principal,
    required: readonly string[],
    mode: 'all' | 'any',
    context: { ip?: string | undefined; country?: string | undefined },
    routeLabel: string | undefined,
    tokenHint: 'hit' | 'miss' | undefined,
  ): Decision {
    let view = delegationView;
    const { set, permissionsHint, freshUntil } = loaded;
    const now = this.now();
    if (view?.standing !== undefined) {
      // The standing actor's ceiling is what the delegator's record grants it now.
      const resolved = withStanding(view, set, now);
      if ('refused' in resolved) return refusedDelegation(resolved, principal, routeLabel);
      view = resolved;
    }
    const input: Mutable<ConditionInput> = { now, claims: conditionClaims(view, principal) };
    if (context.ip !== undefined) input.ip = context.ip;
    if (context.country !== undefined) input.country = context.country;

    const matched: PermissionMatch[] = [];
    const missing: string[] = [];
    // Permissions the delegator holds but the delegation does not pass on, and which set said no.
    let outside: { permission: string; refusal: Refusal }[] | undefined;
    // Every alternative is checked, also in `any` mode: a deny wins over any allow, whatever
    // the order of the list.
    for (const permission of required) {
      const result: CheckResult = set.check(permission, input);
      if (result.effect === 'deny') {
        return deny(
          403,
          'explicit_deny',
          `${permission} is explicitly denied by ${result.grant} (${describeVia(result.via)}).`,
          {
            principal,
            ...(routeLabel && { route: routeLabel }),
            required,
            matched: [{ required: permission, grant: result.grant, via: result.via }],
          },
        );
      }
      if (result.effect === 'allow') {
        let refusal = view === null ? null : refusalFor(view, permission);
        if (
          refusal === null &&
          view?.standing !== undefined &&
          standingDenied(set, view.standing, permission, input)
        ) {
          refusal = { set: 'ceiling', actor: view.standing };
        }
        if (refusal === null) {
          matched.push({ required: permission, grant: result.grant, via: result.via });
        } else {
          missing.push(permission);
          outside ??= [];
          outside.push({ permission, refusal });
        }
      } else {
        missing.push(permission);
      }
    }

    const allowed = mode === 'all' ? missing.length === 0 : matched.length > 0;
    if (!allowed) {
      const what = mode === 'all' ? missing.join(', ') : `any of ${required.join(', ')}`;
      // `outside_delegation` only when the delegator alone would have been allowed.
      const delegatorLacks = missing.length > (outside?.length ?? 0);
      const reason =
        outside === undefined || delegatorLacks ? 'missing_permission' : 'outside_delegation';
      return deny(403, reason, `Missing ${what}.${explainOutside(outside)}`, {
        principal,
        ...(routeLabel && { route: routeLabel }),
        required,
        matched,
      });
    }
    const nowSeconds = now / 1000;
    const maxAge = Math.min(
      secondsLeft(principal.expiresAt, nowSeconds),
      set.nextExpiry === undefined
        ? Number.POSITIVE_INFINITY
        : secondsLeft(set.nextExpiry, nowSeconds),
      // Never outlast the records the answer came from (so caching a decision for maxAge keeps
      // the revocation bound); a stale record is an emergency answer nobody should keep.
      permissionsHint === 'stale' ? 0 : secondsLeft(freshUntil / 1000, nowSeconds),
    );
    // One plain object with a fixed shape: this is the hot path, and spreads, optional keys
    // and accessors each cost an allocation or a slow object layout.
    return {
      allow: true,
      status: 200,
      reason: 'allowed',
      route: routeLabel,
      required,
      matched,
      principal,
      explain:
        view === null
          ? explainMatches(matched)
          : `${explainMatches(matched)}${explainDelegated(view, principal)}`,
      cache: { token: tokenHint, permissions: permissionsHint, maxAgeSeconds: maxAge },
    };
  }

  /**
   * Loads (through the cache) and compiles the principal's permissions; compiled once per record.
   * `freshUntil` (ms) is when the older of the user and role records it came from goes stale.
   * Answers synchronously when both records are fresh in the cache (the steady state: no promise
   * and no turn of the microtask queue per decision); only what is missing is awaited.
   */
  private permissionsFor(principal: Principal): LoadedPermissions | Promise<LoadedPermissions> {
    const store = this.store;
    if (store instanceof ClaimsStore) return this.claimsPermissions(principal, store);
    const key = principalKey(principal);
    const user = store.peekUser(key);
    const roles = store.peekRoles(principal.tenant);
    if (user === undefined || roles === undefined) {
      return this.loadPermissions(store, principal, key, user, roles);
    }
    return this.permissionsFrom(principal, key, user, roles);
  }

  private async loadPermissions(
    store: CachedStore,
    principal: Principal,
    key: SubjectKey,
    peekedUser: UserLookup | undefined,
    peekedRoles: RolesLookup | undefined,
  ): Promise<LoadedPermissions> {
    // In parallel: the user record and the tenant's roles are independent reads.
    const [user, roles] = await Promise.all([
      peekedUser ?? store.lookupUser(key, principal),
      peekedRoles ?? store.lookupRoles(principal.tenant),
    ]);
    return this.permissionsFrom(principal, key, user, roles);
  }

  private permissionsFrom(
    principal: Principal,
    key: SubjectKey,
    user: UserLookup,
    roles: RolesLookup,
  ): LoadedPermissions {
    const store = this.store;
    const graph = this.roleGraph(roles.roles);
    const permissionsHint: PermissionsHint =
      user.cache === 'stale' || roles.cache === 'stale' ? 'stale' : user.cache;
    const freshUntil = Math.min(user.freshUntil, roles.freshUntil);
    const memoKey: object = user.record ?? principal;
    const memo = this.compiled.get(memoKey);
    const record = user.record;
    const set =
      memo && memo.graph === graph
        ? memo.set
        : this.compile(memoKey, graph, () =>
            compilePermissions({
              user: record,
              roles: graph,
              now: this.now(),
              maxEntries: this.maxRecordEntries,
              source: { kind: store.kind, key: subjectStorageKey(key) },
            }),
          );
    if (set instanceof StoreError) throw set;
    return { set, permissionsHint, freshUntil };
  }

  private async claimsPermissions(
    principal: Principal,
    store: ClaimsStore,
  ): Promise<LoadedPermissions> {
    // Claims records are rebuilt per request; the principal is what the token cache keeps stable.
    const record = await store.getUser(principalKey(principal), principal);
    const graph = this.policy.roleGraph;
    const memo = this.compiled.get(principal);
    const set =
      memo && memo.graph === graph
        ? memo.set
        : this.compile(principal, graph, () =>
            // Grants read from the token are labelled `claims` in explain output, not `direct`.
            compilePermissions({
              user: record && { ...record, grants: [] },
              roles: graph,
              now: this.now(),
              extraGrants: record?.grants ?? [],
              extraVia: 'claims',
              maxEntries: this.maxRecordEntries,
              source: { kind: store.kind, key: subjectStorageKey(principalKey(principal)) },
            }),
          );
    if (set instanceof StoreError) throw set;
    return { set, permissionsHint: undefined, freshUntil: Number.POSITIVE_INFINITY };
  }

  /**
   * Runs `build` and memoises its set, or its refusal for expanding past the bound (logged
   * once, as the cache logs a record refused on load); other errors propagate unmemoised.
   */
  private compile(
    memoKey: object,
    graph: RoleGraph,
    build: () => PermissionSet,
  ): PermissionSet | StoreError {
    let set: PermissionSet | StoreError;
    try {
      set = build();
    } catch (error) {
      if (!(error instanceof StoreError) || error.code !== 'store_record_too_large') throw error;
      if (this.store instanceof CachedStore) this.store.reportRefusal(error);
      set = error;
    }
    this.compiled.set(memoKey, { graph, set });
    return set;
  }

  /**
   * The principal's permissions as a request would see them, and the time they were read at (ms):
   * what a token exchange checks the delegator against (src/policy/delegator.ts).
   */
  async permissionsNow(principal: Principal): Promise<{ set: PermissionSet; now: number }> {
    const { set } = await this.permissionsFor(principal);
    return { set, now: this.now() };
  }

  /**
   * Whether a principal comes from a Gatehouse delegation token. Other `self` principals exist
   * (the subject checks of the check API and the CLI, issuer `urn:gatehouse:check`): they have
   * no token and are decided for their subject alone.
   */
  delegated(principal: Principal): boolean {
    return principal.issuerKind === 'self' && principal.issuer === this.policy.delegation?.issuer;
  }

  /** The delegation view of a Gatehouse token under the configuration, once per principal. */
  delegation(principal: Principal): DelegationView | DelegationRefusal {
    let view = this.views.get(principal);
    if (view === undefined) {
      const config = this.policy.delegation;
      // A self principal exists only with a delegation section; without one, refuse outright.
      view = config === null ? { refused: 'depth' } : delegationView(config, principal);
      this.views.set(principal, view);
    }
    return view;
  }

  /** The policy's roles merged with the store's, compiled once per store role list. */
  private roleGraph(storeRoles: readonly RoleRecord[]): RoleGraph {
    if (storeRoles.length === 0) return this.policy.roleGraph;
    let graph = this.graphs.get(storeRoles);
    if (!graph) {
      graph = compileRoles(this.policy.roles, storeRoles);
      this.graphs.set(storeRoles, graph);
    }
    return graph;
  }
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** No claims: every claim condition is unknown. */
const NO_CLAIMS: Readonly<Record<string, unknown>> = Object.freeze({});

/**
 * The claims a delegator's conditions see. A delegation token's own claims (Gatehouse's `iss`
 * and `aud`) are not the delegator's, so they are withheld: every claim-conditioned deny then
 * applies (unknown fails closed) and no claim-conditioned allow does, and a delegation never
 * allows what the delegator's own token would be denied.
 */
function conditionClaims(
  view: DelegationView | null,
  principal: Principal,
): Readonly<Record<string, unknown>> {
  return view === null ? principal.claims : NO_CLAIMS;
}

function principalKey(principal: Principal): SubjectKey {
  return principal.tenant === undefined
    ? { subject: principal.subject }
    : { subject: principal.subject, tenant: principal.tenant };
}

function secondsLeft(unixSeconds: number, nowSeconds: number): number {
  return Math.max(0, Math.floor(unixSeconds - nowSeconds));
}

function explainMatches(matched: readonly PermissionMatch[]): string {
  let text = '';
  for (const m of matched) {
    text += `${text ? ' ' : ''}${m.required} granted by ${m.grant} (${describeVia(m.via)}).`;
  }
  return text;
}

/** Role paths are kept per compiled grant (permission-set.ts), so their text can be too. */
const roleSentences = new WeakMap<readonly string[], string>();

function describeVia(via: PermissionMatch['via']): string {
  if (via === 'direct') return 'direct grant';
  if (via === 'claims') return 'token claims';
  let text = roleSentences.get(via);
  if (text === undefined) {
    text = `role ${via.join(' → ')}`;
    roleSentences.set(via, text);
  }
  return text;
}

/** The three sets, as `check --explain` shows them: which one refused each permission. */
function explainOutside(outside: readonly { permission: string; refusal: Refusal }[] | undefined) {
  if (outside === undefined) return '';
  let text = '';
  for (const { permission, refusal } of outside) {
    const set =
      refusal.set === 'scope'
        ? "the token's scope"
        : `what actor ${refusal.actor.subject} may receive`;
    text += ` ${permission} is held by the delegator but outside ${set}.`;
  }
  return text;
}

/** The sentence an allowed delegated decision ends with, built once per view. */
const delegatedSentences = new WeakMap<DelegationView, string>();

function explainDelegated(view: DelegationView, principal: Principal): string {
  let text = delegatedSentences.get(view);
  if (text === undefined) {
    const chain = view.actors.map((a) => a.subject).join(' for ');
    text = ` Delegated: ${chain} for ${principal.subject}; within the token's scope and every actor's ceiling.`;
    delegatedSentences.set(view, text);
  }
  return text;
}

function refusedDelegation(
  view: DelegationRefusal,
  principal: Principal,
  route: string | undefined,
): Decision {
  if (view.refused === 'depth') {
    return deny(401, 'token_invalid_claims', 'The delegation chain is empty or too deep.', {
      principal,
      ...(route && { route }),
    });
  }
  return deny(
    403,
    'delegation_refused',
    `Actor ${view.actor.subject} may not act for ${principal.subject} now.`,
    { principal, ...(route && { route }) },
  );
}

function pathOnly(path: string): string {
  const q = path.indexOf('?');
  return q === -1 ? path : path.slice(0, q);
}

function deny(
  status: Decision['status'],
  reason: ReasonCode,
  explain: string,
  extra: Partial<Pick<Decision, 'principal' | 'route' | 'required' | 'matched'>> = {},
): Decision {
  return { allow: false, status, reason, explain, ...extra } as Decision;
}

function refusalDecision(
  refused: RevocationRefusal,
  principal: Principal,
  route?: string,
): Decision {
  return deny(refused.status, refused.reason, refused.explain, {
    principal,
    ...(route !== undefined && { route }),
  });
}

/** Maps any error to a fail-closed Decision without leaking its details. */
function failure(error: unknown, principal?: Principal): Decision {
  const extra = principal ? { principal } : {};
  if (error instanceof TokenError) {
    return deny(STATUS_FOR_TOKEN[error.code] ?? 401, error.code, error.message, extra);
  }
  if (error instanceof StoreError) {
    return deny(503, 'store_unavailable', 'The permission store could not be read.', extra);
  }
  return deny(503, 'internal_error', 'The authorizer failed; the request is denied.', extra);
}
