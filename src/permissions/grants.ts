/**
 * Validation of one grant or deny, shared by roles and user records. Policy grants must be
 * perfect (ConfigError at start-up). Store grants fail closed without taking the tenant down:
 * a broken allow is skipped, a deny with a broken condition or expiry applies unconditionally,
 * and a deny whose permission is unreadable fails the whole load (we cannot know what it denied).
 * A store grant with a key other than permission, expiresAt and when (a misspelt `expires` would
 * otherwise mean "never expires") is broken: an allow is skipped, a deny fails the load.
 */

import { ConfigError, StoreError } from '../errors.ts';
import type { Conditions, Grant } from '../types.ts';
import { type CompiledCondition, compileConditionsCached } from './conditions.ts';
import { assertPermission } from './grammar.ts';

/** A grant that passed validation, with its condition compiled. */
export interface ValidGrant {
  readonly permission: string;
  readonly segments: readonly string[];
  /** Unix seconds; undefined when the grant never expires. */
  readonly expiresAt: number | undefined;
  readonly when: Conditions | undefined;
  readonly condition: CompiledCondition | undefined;
}

/** `config` throws ConfigError; `store` applies the fail-closed rules above, noting warnings. */
export type GrantSource = 'config' | 'store';

/** The keys a grant may have; anything else in a store grant makes it unusable. */
export const GRANT_KEYS: ReadonlySet<string> = new Set(['permission', 'expiresAt', 'when']);

/** The first key of `value` outside `known`, or undefined. */
export function unknownKey(value: object, known: ReadonlySet<string>): string | undefined {
  for (const key of Object.keys(value)) if (!known.has(key)) return key;
  return undefined;
}

// Role grants are read once by the role graph and again for every user that holds the role.
const validated = new WeakMap<Grant, ValidGrant>();

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Validates `grant` found at `field`. Returns undefined when a store allow must be skipped;
 * appends to `warnings` whenever a store grant is skipped or degraded. `field` may be a
 * function, called only when the grant is not already known valid (role grants are read once
 * per role and then for every principal that reaches them).
 */
export function readGrant(
  grant: Grant,
  lazyField: string | (() => string),
  effect: 'allow' | 'deny',
  source: GrantSource,
  warnings: string[],
): ValidGrant | undefined {
  const cached = validated.get(grant);
  if (cached !== undefined) return cached;
  const field = typeof lazyField === 'string' ? lazyField : lazyField();
  const raw: unknown = grant;
  const store = source === 'store';

  const unusable = (error: ConfigError): undefined => {
    if (!store) throw error;
    if (effect === 'deny') {
      throw new StoreError('store_invalid_record', `${error.message}; a deny must be readable`, {
        cause: error,
      });
    }
    warnings.push(`${error.message}; grant skipped`);
    return undefined;
  };

  if (!isObject(raw)) return unusable(new ConfigError(field, 'expected { permission, ... }'));
  if (store) {
    const extra = unknownKey(raw, GRANT_KEYS);
    if (extra !== undefined) {
      return unusable(
        new ConfigError(
          `${field}.${extra}`,
          'unknown key; expected one of permission, expiresAt, when',
        ),
      );
    }
  }
  let segments: readonly string[];
  try {
    segments = assertPermission(raw.permission as string, `${field}.permission`, {
      allowWildcards: true,
    });
  } catch (error) {
    if (error instanceof ConfigError) return unusable(error);
    throw error;
  }

  // A degraded deny is re-read each time so every set that holds it carries the warning.
  let degraded = false;
  let expiresAt: number | undefined;
  if (raw.expiresAt !== undefined) {
    if (typeof raw.expiresAt === 'number' && Number.isFinite(raw.expiresAt)) {
      expiresAt = raw.expiresAt;
    } else {
      const error = new ConfigError(`${field}.expiresAt`, 'expected Unix seconds');
      if (!store || effect === 'allow') return unusable(error);
      warnings.push(`${error.message}; deny kept without expiry`);
      degraded = true;
    }
  }

  let when: Conditions | undefined;
  let condition: CompiledCondition | undefined;
  if (raw.when !== undefined) {
    when = raw.when as Conditions;
    try {
      condition = compileConditionsCached(when, `${field}.when`);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      if (!store || effect === 'allow') return unusable(error);
      warnings.push(`${error.message}; deny applies unconditionally`);
      degraded = true;
    }
  }

  const result: ValidGrant = {
    permission: raw.permission as string,
    segments,
    expiresAt,
    when,
    condition,
  };
  if (!degraded) validated.set(grant, result);
  return result;
}
