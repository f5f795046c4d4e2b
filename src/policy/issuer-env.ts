/**
 * Issuer settings from environment variables, applied to the policy document before it is
 * compiled: the `typ` allowlist, `requireType` and the JWKS timings, so a deployment (SAM
 * parameters, wrangler vars) can tighten them without shipping a whole policy in one variable.
 * They fill in what the policy leaves open and never loosen what it states (narrowTypeSettings).
 * Both edges call this with their own env reader; each mistake is a ConfigError naming the
 * variable. Platform-free (the Worker bundles it too).
 */
import { ConfigError } from '../errors.ts';

/** Variable names: `GATEHOUSE_` + the issuer option, `GATEHOUSE_JWKS_` + the `keys` option. */
export const ISSUER_ENV = {
  types: 'GATEHOUSE_TYPES',
  requireType: 'GATEHOUSE_REQUIRE_TYPE',
  cacheTtlSeconds: 'GATEHOUSE_JWKS_CACHE_TTL_SECONDS',
  cooldownSeconds: 'GATEHOUSE_JWKS_COOLDOWN_SECONDS',
  timeoutMs: 'GATEHOUSE_JWKS_TIMEOUT_MS',
  maxStaleSeconds: 'GATEHOUSE_JWKS_MAX_STALE_SECONDS',
} as const;

/** The same bounds the policy schema puts on `keys.*` (src/policy/schema.ts). */
const JWKS_TIMINGS = [
  ['cacheTtlSeconds', 1, 86_400, 'seconds'],
  ['cooldownSeconds', 1, 3_600, 'seconds'],
  ['timeoutMs', 100, 30_000, 'milliseconds'],
  ['maxStaleSeconds', 0, 604_800, 'seconds'],
] as const;

// A media type or its subtype alone (RFC 6838 §4.2 restricted names): `at+jwt`, `application/jwt`.
const MEDIA_TYPE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*(\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*)?$/;

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * The policy document with the issuer variables applied to every issuer (the JWKS timings to
 * every issuer whose keys come from `jwksUri`). Unset or empty variables change nothing; the
 * document is returned as given when none is set. Throws ConfigError naming the variable.
 */
export function applyIssuerEnv(doc: unknown, read: (name: string) => string | undefined): unknown {
  const get = (name: string): string | undefined => {
    const value = read(name);
    return value === undefined || value === '' ? undefined : value;
  };
  const overrides: Record<string, unknown> = {};
  const typesText = get(ISSUER_ENV.types);
  if (typesText !== undefined) {
    const types = typesText.split(',').map((t) => t.trim());
    if (types.some((t) => !MEDIA_TYPE.test(t))) {
      throw new ConfigError(
        ISSUER_ENV.types,
        'expected comma-separated typ values such as at+jwt or JWT,at+jwt',
      );
    }
    overrides.types = types;
  }
  const requireText = get(ISSUER_ENV.requireType);
  if (requireText !== undefined) {
    if (requireText !== 'true' && requireText !== 'false') {
      throw new ConfigError(ISSUER_ENV.requireType, 'expected true or false');
    }
    overrides.requireType = requireText === 'true';
  }
  const keyOverrides: Record<string, number> = {};
  for (const [option, min, max, unit] of JWKS_TIMINGS) {
    const name = ISSUER_ENV[option];
    const text = get(name);
    if (text === undefined) continue;
    const value = /^\d{1,7}$/.test(text) ? Number(text) : Number.NaN;
    if (!(value >= min && value <= max)) {
      throw new ConfigError(name, `expected whole ${unit} from ${min} to ${max}`);
    }
    keyOverrides[option] = value;
  }
  const timings = Object.keys(keyOverrides);
  if (Object.keys(overrides).length === 0 && timings.length === 0) return doc;

  if (!isObject(doc) || !Array.isArray(doc.issuers)) return doc; // compilePolicy reports it
  const remote = (issuer: unknown) =>
    isObject(issuer) && isObject(issuer.keys) && issuer.keys.jwksUri !== undefined;
  if (timings.length > 0 && !doc.issuers.some(remote)) {
    const option = timings[0] as keyof typeof ISSUER_ENV;
    // Silently ignoring it would leave the operator believing the timing is in force.
    throw new ConfigError(
      ISSUER_ENV[option],
      'applies only to issuers whose keys come from jwksUri, and the policy has none',
    );
  }
  const issuers = doc.issuers.map((issuer: unknown) => {
    if (!isObject(issuer)) return issuer;
    const keys =
      remote(issuer) && timings.length > 0
        ? { ...(issuer.keys as Record<string, unknown>), ...keyOverrides }
        : issuer.keys;
    return { ...issuer, ...narrowTypeSettings(issuer, overrides), keys };
  });
  return { ...doc, issuers };
}

/**
 * The variables fill in what an issuer leaves open and never loosen what it states: an explicit
 * `types` list keeps only the types the variable also names (none left is a ConfigError), and an
 * explicit `requireType: true` survives `GATEHOUSE_REQUIRE_TYPE=false`.
 */
function narrowTypeSettings(
  issuer: Record<string, unknown>,
  overrides: Record<string, unknown>,
): Record<string, unknown> {
  const narrowed: Record<string, unknown> = {};
  const wanted = overrides.types as string[] | undefined;
  if (wanted !== undefined) {
    if (Array.isArray(issuer.types)) {
      const fold = (t: unknown) =>
        String(t)
          .toLowerCase()
          .replace(/^application\//, '');
      const allowed = new Set(wanted.map(fold));
      const kept = issuer.types.filter((t) => allowed.has(fold(t)));
      if (kept.length === 0) {
        throw new ConfigError(
          ISSUER_ENV.types,
          `names no type that issuer ${String(issuer.issuer)} allows in the policy`,
        );
      }
      narrowed.types = kept;
    } else narrowed.types = wanted;
  }
  if (overrides.requireType !== undefined) {
    narrowed.requireType = issuer.requireType === true || overrides.requireType === true;
  }
  return narrowed;
}
