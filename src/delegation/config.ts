/**
 * The policy's `delegation` section, compiled once: Gatehouse's issuer name and keys, the
 * lifetime and depth bounds, and who may act for whom with the most each actor may receive.
 * Nobody may act for anyone unless a rule says so. Every mistake is a ConfigError naming the
 * field.
 */
import { ConfigError, integerOption } from '../errors.ts';
import { assertPermission } from '../permissions/index.ts';
import type { IssuerOptions } from '../token/options.ts';
import type { Actor } from '../types.ts';
import {
  ACTOR_IATS_CLAIM,
  DEFAULT_MAX_DEPTH,
  DEFAULT_MAX_LIFETIME_SECONDS,
  DELEGATION_TYPE,
  MAX_MAX_DEPTH,
  MAX_MAX_LIFETIME_SECONDS,
  PARENTS_CLAIM,
  SUBJECT_IAT_CLAIM,
} from './constants.ts';
import { type IssuerKeySet, keyAlgorithms, parseIssuerKeys, publicJwks } from './keys.ts';

/** `delegation.actors[i]` as written in the policy. */
export interface ActorRuleDocument {
  /** The actor's `sub` (from its own token). */
  readonly subject: string;
  /** The actor token's `iss`; absent accepts the subject from any external issuer. */
  readonly issuer?: string | undefined;
  /** Subjects it may act for; `*` for anyone. */
  readonly for: readonly string[];
  /** The most it may receive: permission patterns such as `read:*`. */
  readonly ceiling: readonly string[];
}

/** The policy's `delegation` section as written. */
export interface DelegationDocument {
  /** Gatehouse's own `iss`; must differ from every external issuer. */
  readonly issuer: string;
  /** Name of the secret holding the key set (default GATEHOUSE_DELEGATION_KEYS). */
  readonly keysEnv?: string | undefined;
  /** Accepted `aud` values; the first is the default (default: [issuer]). */
  readonly audiences?: readonly string[] | undefined;
  /** Longest lifetime of a delegation token, seconds (default 900, 1..86400). */
  readonly maxLifetimeSeconds?: number | undefined;
  /** Deepest `act` chain (default 3, 1..8). */
  readonly maxDepth?: number | undefined;
  readonly actors?: readonly ActorRuleDocument[] | undefined;
  /** Accept delegated callers at the admin API (default false). */
  readonly adminApi?: boolean | undefined;
  /** Honour standing grants (`gatehouse.delegate:<actor>:<scope>` in a record); default false. */
  readonly standingGrants?: boolean | undefined;
}

export interface ActorRule {
  readonly subject: string;
  readonly issuer: string | undefined;
  /** null: anyone. */
  readonly for: ReadonlySet<string> | null;
  readonly ceiling: readonly string[];
}

export interface DelegationConfig {
  readonly issuer: string;
  readonly audiences: readonly string[];
  readonly keysEnv: string;
  /**
   * null when the key secret is not set (or the policy was compiled without secrets): then no
   * delegation token verifies and the token endpoint issues none, so delegation is off, closed.
   */
  readonly keys: IssuerKeySet | null;
  readonly maxLifetimeSeconds: number;
  readonly maxDepth: number;
  readonly actors: readonly ActorRule[];
  readonly adminApi: boolean;
  readonly standingGrants: boolean;
  /**
   * The policy's only external issuer, or undefined when it has several: then every actor rule
   * names its issuer, and only issuer-bound standing grants are honoured.
   */
  readonly soleIssuer: string | undefined;
}

export const DEFAULT_KEYS_ENV = 'GATEHOUSE_DELEGATION_KEYS';

/**
 * Compiles the section. `externalIssuers` are the policy's issuer names: Gatehouse's own must be
 * none of them, or an identity provider's token could pass for Gatehouse's. `secrets: false`
 * checks structure only (a Worker validating before its secrets exist). An absent secret turns
 * delegation off, closed (the token endpoint answers 503 naming it); a secret that is set but
 * malformed is a ConfigError, never a silent fallback.
 */
export function compileDelegation(
  doc: DelegationDocument,
  field: string,
  env: Readonly<Record<string, unknown>>,
  externalIssuers: readonly string[],
  secrets = true,
): DelegationConfig {
  if (typeof doc.issuer !== 'string' || doc.issuer.length === 0) {
    throw new ConfigError(`${field}.issuer`, 'expected a non-empty string');
  }
  if (externalIssuers.includes(doc.issuer) || doc.issuer.startsWith('urn:gatehouse:')) {
    throw new ConfigError(
      `${field}.issuer`,
      "must differ from every policy.issuers[].issuer and from Gatehouse's internal urn:gatehouse: names: its tokens are their own kind",
    );
  }
  const audiences = doc.audiences ?? [doc.issuer];
  if (audiences.length === 0) {
    throw new ConfigError(`${field}.audiences`, 'expected at least one audience');
  }
  const keysEnv = doc.keysEnv ?? DEFAULT_KEYS_ENV;
  const text = env[keysEnv];
  const present = typeof text === 'string' && text.trim() !== '';
  const keys = secrets && present ? parseIssuerKeys(text, keysEnv) : null;
  const actors = (doc.actors ?? []).map((rule, i): ActorRule => {
    const at = `${field}.actors[${i}]`;
    rule.ceiling.forEach((p, j) => {
      assertPermission(p, `${at}.ceiling[${j}]`, { allowWildcards: true });
    });
    if (rule.issuer === undefined && externalIssuers.length > 1) {
      // With two identity providers, `bob` of one is not `bob` of the other.
      throw new ConfigError(
        `${at}.issuer`,
        "required when the policy has more than one issuer: the actor token's iss",
      );
    }
    if (rule.issuer !== undefined && rule.issuer === doc.issuer) {
      throw new ConfigError(
        `${at}.issuer`,
        "an actor authenticates with an external issuer's token",
      );
    }
    return {
      subject: rule.subject,
      issuer: rule.issuer,
      for: rule.for.includes('*') ? null : new Set(rule.for),
      ceiling: Object.freeze([...rule.ceiling]),
    };
  });
  return {
    issuer: doc.issuer,
    audiences: Object.freeze([...audiences]),
    keysEnv,
    keys,
    maxLifetimeSeconds: integerOption(
      doc.maxLifetimeSeconds,
      `${field}.maxLifetimeSeconds`,
      1,
      MAX_MAX_LIFETIME_SECONDS,
      DEFAULT_MAX_LIFETIME_SECONDS,
    ),
    maxDepth: integerOption(doc.maxDepth, `${field}.maxDepth`, 1, MAX_MAX_DEPTH, DEFAULT_MAX_DEPTH),
    actors: Object.freeze(actors),
    adminApi: doc.adminApi ?? false,
    standingGrants: doc.standingGrants ?? false,
    soleIssuer: externalIssuers.length === 1 ? externalIssuers[0] : undefined,
  };
}

/**
 * The verifier entry for Gatehouse's own tokens: its keys inline (never fetched), only the
 * delegation `typ`, required, and a maximum age equal to the maximum lifetime, so even a token
 * minted with a wrong `exp` cannot outlive the bound.
 */
export function selfIssuerOptions(config: DelegationConfig): IssuerOptions | null {
  if (config.keys === null) return null;
  return {
    issuer: config.issuer,
    kind: 'self',
    keys: { jwks: publicJwks(config.keys) as unknown as { keys: [] } },
    audiences: [...config.audiences],
    algorithms: keyAlgorithms(config.keys),
    types: [DELEGATION_TYPE],
    requireType: true,
    tenant: { claim: 'tenant', optional: true },
    keepClaims: ['grant', SUBJECT_IAT_CLAIM, ACTOR_IATS_CLAIM, PARENTS_CLAIM],
    maxAgeSeconds: config.maxLifetimeSeconds,
  };
}

/**
 * The rule that lets `actor` act for `delegator` now, or null. The first matching rule decides,
 * so a policy reads top to bottom.
 */
export function ruleFor(
  config: DelegationConfig,
  actor: Actor,
  delegator: string,
): ActorRule | null {
  for (const rule of config.actors) {
    if (rule.subject !== actor.subject) continue;
    if (rule.issuer !== undefined && rule.issuer !== actor.issuer) continue;
    if (rule.for !== null && !rule.for.has(delegator)) continue;
    return rule;
  }
  return null;
}
