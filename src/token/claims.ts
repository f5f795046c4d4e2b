/**
 * Claim validation (RFC 7519 §4.1) on the payload parsed by the pre-check, and the Principal
 * built from it. Runs only after the signature verified, so every code returned here describes
 * an authentic token.
 */
import { TokenError } from '../errors.ts';
import type { Actor, Principal } from '../types.ts';

export interface ClaimRules {
  readonly issuer: string;
  readonly kind: 'external' | 'self';
  readonly audiences: ReadonlySet<string> | null;
  /** `optional`: a token without the claim has no tenant (Gatehouse's own, for untenanted delegators). */
  readonly tenant:
    | { readonly claim: string; readonly optional?: boolean }
    | { readonly fixed: string }
    | undefined;
  /** Names copied into Principal.claims: the registered ones plus `keepClaims`. */
  readonly keptClaims: readonly string[];
  readonly maxAgeSeconds: number | null;
}

export const REGISTERED_CLAIMS = ['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti'] as const;

/** Bound on the `act` chain; a deeper chain is refused rather than walked. */
const MAX_ACTORS = 16;

function invalid(message: string): TokenError {
  return new TokenError('token_invalid_claims', message);
}

function numericDate(payload: Record<string, unknown>, name: string): number | undefined {
  const value = payload[name];
  if (value === undefined) return undefined;
  // RFC 7519 §2 NumericDate: a JSON number of seconds; Infinity (from 1e999) is not one.
  if (typeof value !== 'number' || !Number.isFinite(value))
    throw invalid(`${name} is not a number`);
  return value;
}

function checkAudience(aud: unknown, audiences: ReadonlySet<string>): void {
  // RFC 7519 §4.1.3: a single string or an array of strings; one must be ours. An array with
  // any other element is malformed and refused even when it also names us.
  if (typeof aud === 'string') {
    if (audiences.has(aud)) return;
  } else if (Array.isArray(aud) && aud.every((value) => typeof value === 'string')) {
    for (const value of aud) if (audiences.has(value)) return;
  }
  throw new TokenError('token_invalid_audience', 'token audience is not accepted');
}

export function splitScopes(value: string): string[] {
  // RFC 6749 §3.3: scope tokens are separated by single spaces; empty pieces (leading, trailing
  // or doubled spaces) are dropped. A loop, not split + filter: two arrays less per fresh token.
  const scopes: string[] = [];
  let start = 0;
  for (let space = value.indexOf(' '); space !== -1; space = value.indexOf(' ', start)) {
    if (space > start) scopes.push(value.slice(start, space));
    start = space + 1;
  }
  if (start < value.length) scopes.push(value.slice(start));
  return scopes;
}

function scopesOf(payload: Record<string, unknown>): string[] {
  const scope = payload.scope;
  if (scope !== undefined) {
    if (typeof scope !== 'string') throw invalid('scope is not a string');
    return splitScopes(scope);
  }
  const scp = payload.scp;
  if (scp === undefined) return [];
  if (typeof scp === 'string') return splitScopes(scp);
  if (Array.isArray(scp) && scp.every((s) => typeof s === 'string' && s.length > 0)) {
    return scp as string[];
  }
  throw invalid('scp is not a string or an array of strings');
}

/** RFC 8693 §4.1: nested `act` objects, the current actor outermost. */
function actorsOf(act: unknown): Actor[] {
  const actors: Actor[] = [];
  let current = act;
  while (current !== undefined) {
    if (actors.length === MAX_ACTORS) throw invalid('act chain too deep');
    if (typeof current !== 'object' || current === null || Array.isArray(current)) {
      throw invalid('act is not an object');
    }
    const link = current as Record<string, unknown>;
    if (typeof link.sub !== 'string' || link.sub.length === 0) throw invalid('act.sub missing');
    if (link.iss !== undefined && typeof link.iss !== 'string') throw invalid('act.iss invalid');
    actors.push(
      Object.freeze(
        link.iss === undefined ? { subject: link.sub } : { subject: link.sub, issuer: link.iss },
      ),
    );
    current = link.act;
  }
  return actors;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const member of Object.values(value)) deepFreeze(member);
  }
  return value;
}

export interface CheckedClaims {
  readonly principal: Principal;
  /** Milliseconds since the epoch after which this verification no longer holds. */
  readonly validUntil: number;
}

/** Validates the claims of a verified token at `nowMs` and builds its (frozen) Principal. */
export function checkClaims(
  payload: Record<string, unknown>,
  rules: ClaimRules,
  nowMs: number,
  leewaySeconds: number,
): CheckedClaims {
  const now = nowMs / 1000;
  const exp = numericDate(payload, 'exp');
  if (exp === undefined) throw invalid('exp is required');
  const nbf = numericDate(payload, 'nbf');
  const iat = numericDate(payload, 'iat');
  // RFC 7519 §4.1.4: the current time MUST be before exp.
  let validUntil = (exp + leewaySeconds) * 1000;
  if (nowMs >= validUntil) throw new TokenError('token_expired', 'token expired');
  if (nbf !== undefined && nbf > now + leewaySeconds) {
    throw new TokenError('token_not_yet_valid', 'token not valid yet');
  }
  if (iat !== undefined && iat > now + leewaySeconds) {
    throw new TokenError('token_not_yet_valid', 'token issued in the future');
  }
  if (rules.maxAgeSeconds !== null) {
    if (iat === undefined) throw invalid('iat is required for a maximum age');
    const deadline = (iat + rules.maxAgeSeconds + leewaySeconds) * 1000;
    if (nowMs >= deadline) throw new TokenError('token_too_old', 'token older than allowed');
    validUntil = Math.min(validUntil, deadline);
  }
  if (rules.audiences !== null) checkAudience(payload.aud, rules.audiences);
  const sub = payload.sub;
  if (typeof sub !== 'string' || sub.length === 0) throw invalid('sub is required');

  let tenant: string | undefined;
  if (rules.tenant !== undefined) {
    if ('fixed' in rules.tenant) {
      tenant = rules.tenant.fixed;
    } else {
      const value = payload[rules.tenant.claim];
      if (value === undefined && rules.tenant.optional === true) tenant = undefined;
      else if (typeof value !== 'string' || value.length === 0) {
        throw invalid('tenant claim missing');
      } else tenant = value;
    }
  }
  const scopes = Object.freeze(scopesOf(payload));
  const actors = Object.freeze(actorsOf(payload.act));
  const claims: Record<string, unknown> = {};
  for (const name of rules.keptClaims) {
    // Read first: hasOwn (which keeps an inherited name like `constructor` out) only for a value.
    const value = payload[name];
    if (value !== undefined && Object.hasOwn(payload, name)) claims[name] = deepFreeze(value);
  }
  // Built member by member rather than with conditional spreads: the same object (members in the
  // same order), without a temporary object per spread on every fresh token (issue 11).
  const principal: { -readonly [K in keyof Principal]: Principal[K] } = {
    issuer: rules.issuer,
    issuerKind: rules.kind,
    subject: sub,
  } as Principal;
  if (tenant !== undefined) principal.tenant = tenant;
  principal.scopes = scopes;
  principal.claims = Object.freeze(claims);
  principal.actors = actors;
  principal.expiresAt = exp;
  if (iat !== undefined) principal.issuedAt = iat;
  return { principal: Object.freeze(principal), validUntil };
}
