/**
 * Conditions on grants and denies, compiled once into a predicate so a check does no parsing:
 * CIDR ranges are parsed to numbers, claim values to sets, time zones to cached formatters.
 *
 * A compiled condition answers in three values: `true` (holds), `false` (fails) and `undefined`
 * (unknown: the input it needs is missing or unreadable). A grant applies only on `true`; a deny
 * applies on `true` or `undefined`, so a request the guard cannot judge is never let through by
 * the absence of the fact a deny looks at (fail closed).
 */

import { ConfigError } from '../errors.ts';
import type { Conditions, Weekday } from '../types.ts';
import { type CidrRange, cidrContains, type IpAddress, parseCidr, parseIp } from './ip.ts';

/** What a condition may look at when a permission is checked. */
export interface ConditionInput {
  /**
   * Client IP (v4 or v6) as the platform reports it: one address, no list, port or zone id.
   * Absent or unreadable makes an `ip` condition unknown (a grant does not apply, a deny does).
   */
  ip?: string;
  /**
   * ISO 3166-1 alpha-2 country (`DE`; lower case is accepted). Absent, or not a country (`XX`,
   * Cloudflare's "unknown", or `T1`, Tor), makes a `country` condition unknown.
   */
  country?: string;
  /** Check time, milliseconds since the epoch; injected so tests fake the clock. */
  now: number;
  /** The principal's claims that rules need; compared with `===`. An absent claim is unknown. */
  claims: Readonly<Record<string, unknown>>;
}

/**
 * A compiled condition: `true` when every present key of the {@link Conditions} holds, `false`
 * when one fails, otherwise `undefined` (unknown: an input it needs is missing or unreadable).
 * A grant applies only on `true`; a deny applies unless the answer is `false`.
 */
export type CompiledCondition = (input: ConditionInput) => boolean | undefined;

const CONDITION_KEYS = new Set(['ip', 'time', 'claims', 'country']);
const TIME_KEYS = new Set(['days', 'hours', 'timezone']);
const HOURS_KEYS = new Set(['from', 'to']);
const WEEKDAYS: readonly Weekday[] = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
const MINUTE_MS = 60_000;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function rejectUnknownKeys(value: Record<string, unknown>, known: Set<string>, field: string) {
  for (const key of Object.keys(value)) {
    // A misspelt key silently ignored would widen the grant, so it is an error instead.
    if (!known.has(key)) {
      throw new ConfigError(
        `${field}.${key}`,
        `unknown key; expected one of ${[...known].join(', ')}`,
      );
    }
  }
}

/**
 * Most items one condition list (or claims object) may hold. Stored records are bounded before
 * they get here (every list item counts against `maxRecordEntries`, records.ts); this is the
 * backstop for any other path, checked before a single item is parsed (issue 9: one grant with
 * a million CIDRs was compiled on every request).
 */
export const MAX_CONDITION_LIST_ITEMS = 10_000;

function nonEmptyArray(value: unknown, field: string, expected: string): readonly unknown[] {
  if (!Array.isArray(value) || value.length === 0) throw new ConfigError(field, expected);
  if (value.length > MAX_CONDITION_LIST_ITEMS) {
    throw new ConfigError(field, `expected at most ${MAX_CONDITION_LIST_ITEMS} items`);
  }
  return value;
}

// The last client address parsed: one request checks several permissions with the same IP.
let lastIpText: string | undefined;
let lastIp: IpAddress | undefined;

function clientAddress(text: string): IpAddress | undefined {
  if (text !== lastIpText) {
    lastIp = parseIp(text);
    lastIpText = text;
  }
  return lastIp;
}

function compileIp(value: unknown, field: string): CompiledCondition {
  const list = nonEmptyArray(value, field, 'expected a non-empty list of CIDR ranges');
  const ranges: CidrRange[] = [];
  list.forEach((item, i) => {
    const range = typeof item === 'string' ? parseCidr(item) : 'not a string';
    if (typeof range === 'string') {
      throw new ConfigError(`${field}[${i}]`, `expected a CIDR range like 10.0.0.0/8 (${range})`);
    }
    ranges.push(range);
  });
  // IPv6 ranges never match IPv4 clients, including those a dual-stack listener reports in
  // mapped form (`::ffff:1.2.3.4`): parseIp folds a mapped address to v4 and families never
  // cross, so `::/0` covers IPv6 clients only. Write `0.0.0.0/0` as well to cover both.
  return (input) => {
    if (typeof input.ip !== 'string') return undefined;
    // Not one address (a forwarded list, a port, a zone id): unknown, never "elsewhere".
    const address = clientAddress(input.ip);
    if (address === undefined) return undefined;
    for (const range of ranges) if (cidrContains(range, address)) return true;
    return false;
  };
}

/** A formatter per time zone and the UTC offset it gave for the last quarter hour asked about. */
interface ZoneClock {
  readonly format: Intl.DateTimeFormat;
  quarter: number;
  offsetMs: number;
}

// Creating an Intl.DateTimeFormat costs tens of microseconds, so one per zone for the isolate.
// Bounded by the IANA zone list, since invalid zones throw before they are cached.
const zoneClocks = new Map<string, ZoneClock>();

function zoneClock(timezone: string, field: string): ZoneClock {
  let clock = zoneClocks.get(timezone);
  if (clock === undefined) {
    let format: Intl.DateTimeFormat;
    try {
      format = new Intl.DateTimeFormat('en-US', {
        timeZone: timezone,
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        hourCycle: 'h23',
      });
    } catch (cause) {
      throw new ConfigError(field, 'expected an IANA time zone such as Europe/Paris', { cause });
    }
    clock = { format, quarter: Number.NaN, offsetMs: 0 };
    zoneClocks.set(timezone, clock);
  }
  return clock;
}

const QUARTER_MS = 15 * MINUTE_MS;
const DAY_MINUTES = 24 * 60;
// 1970-01-01 was a Thursday; weekdays count from Monday = 0.
const EPOCH_WEEKDAY = 3;

function mod(value: number, divisor: number): number {
  return ((value % divisor) + divisor) % divisor;
}

/**
 * Minutes since the epoch on the zone's local wall clock. formatToParts costs about 2 µs, so the
 * offset is cached per quarter hour: current zone offsets are whole quarter hours, so every DST
 * transition falls on a quarter-hour boundary in UTC and the offset is constant within one.
 */
function localMinutes(clock: ZoneClock, now: number): number {
  const quarter = Math.floor(now / QUARTER_MS);
  if (quarter !== clock.quarter) {
    const start = quarter * QUARTER_MS;
    const fields: Record<string, number> = {};
    for (const part of clock.format.formatToParts(start)) fields[part.type] = Number(part.value);
    const { year = 0, month = 1, day = 1, hour = 0, minute = 0 } = fields;
    clock.offsetMs = Date.UTC(year, month - 1, day, hour % 24, minute) - start;
    clock.quarter = quarter;
  }
  return Math.floor((now + clock.offsetMs) / MINUTE_MS);
}

function parseClock(value: unknown, field: string, allow24: boolean): number {
  const expected = allow24
    ? 'expected HH:MM from 00:00 to 24:00'
    : 'expected HH:MM from 00:00 to 23:59';
  if (typeof value !== 'string' || !/^\d\d:\d\d$/.test(value))
    throw new ConfigError(field, expected);
  const hours = Number(value.slice(0, 2));
  const minutes = Number(value.slice(3));
  const total = hours * 60 + minutes;
  if (minutes > 59 || (allow24 ? total > 24 * 60 : hours > 23))
    throw new ConfigError(field, expected);
  return total;
}

function compileTime(value: unknown, field: string): CompiledCondition {
  if (!isObject(value)) throw new ConfigError(field, 'expected an object with days and/or hours');
  rejectUnknownKeys(value, TIME_KEYS, field);
  if (value.days === undefined && value.hours === undefined) {
    throw new ConfigError(field, 'expected days and/or hours');
  }
  const timezone = value.timezone ?? 'UTC';
  if (typeof timezone !== 'string' || timezone === '') {
    throw new ConfigError(`${field}.timezone`, 'expected an IANA time zone such as Europe/Paris');
  }
  const clock = zoneClock(timezone, `${field}.timezone`);

  let days: boolean[] | undefined;
  if (value.days !== undefined) {
    const list = nonEmptyArray(
      value.days,
      `${field}.days`,
      'expected a non-empty list of mon..sun',
    );
    days = WEEKDAYS.map(() => false);
    list.forEach((day, i) => {
      const index = WEEKDAYS.indexOf(day as Weekday);
      if (index === -1) throw new ConfigError(`${field}.days[${i}]`, 'expected one of mon..sun');
      (days as boolean[])[index] = true;
    });
  }

  let from = 0;
  let to = 0;
  const hasHours = value.hours !== undefined;
  if (hasHours) {
    const hours = value.hours;
    if (!isObject(hours)) throw new ConfigError(`${field}.hours`, 'expected { from, to }');
    rejectUnknownKeys(hours, HOURS_KEYS, `${field}.hours`);
    from = parseClock(hours.from, `${field}.hours.from`, false);
    to = parseClock(hours.to, `${field}.hours.to`, true);
    // Equal ends could mean "never" or "always"; make the author say which.
    if (from === to) throw new ConfigError(`${field}.hours`, 'expected from and to to differ');
  }

  const dayListed = (local: number, daysBack: number): boolean =>
    days === undefined ||
    days[mod(Math.floor(local / DAY_MINUTES) - daysBack + EPOCH_WEEKDAY, 7)] === true;

  return (input) => {
    const local = localMinutes(clock, input.now);
    if (!hasHours) return dayListed(local, 0);
    const m = mod(local, DAY_MINUTES);
    // [from, to) on the listed days.
    if (from < to) return m >= from && m < to && dayListed(local, 0);
    // When to < from the window wraps past midnight, and the part after midnight belongs to the
    // day the window started: `days: [fri]`, 22:00 to 02:00 is Friday 22:00 to Saturday 02:00.
    if (m >= from) return dayListed(local, 0);
    return m < to && dayListed(local, 1);
  };
}

type ClaimValue = string | number | boolean;

function isClaimValue(value: unknown): value is ClaimValue {
  return (
    typeof value === 'string' ||
    typeof value === 'boolean' ||
    (typeof value === 'number' && Number.isFinite(value))
  );
}

function compileClaims(value: unknown, field: string): CompiledCondition {
  if (!isObject(value)) throw new ConfigError(field, 'expected an object of claim names to values');
  const names = Object.keys(value);
  if (names.length === 0) throw new ConfigError(field, 'expected at least one claim');
  if (names.length > MAX_CONDITION_LIST_ITEMS) {
    throw new ConfigError(field, `expected at most ${MAX_CONDITION_LIST_ITEMS} claims`);
  }
  const rules: { name: string; one: ClaimValue | undefined; any: Set<ClaimValue> | undefined }[] =
    [];
  for (const name of names) {
    const expected = value[name];
    const claimField = `${field}.${name}`;
    if (isClaimValue(expected)) {
      rules.push({ name, one: expected, any: undefined });
      continue;
    }
    const list = nonEmptyArray(expected, claimField, 'expected a value or a non-empty list');
    list.forEach((item, i) => {
      if (!isClaimValue(item)) {
        throw new ConfigError(`${claimField}[${i}]`, 'expected a string, number or boolean');
      }
    });
    rules.push({ name, one: undefined, any: new Set(list as ClaimValue[]) });
  }
  return (input) => {
    let unknown = false;
    for (const rule of rules) {
      // Own properties only: a claim named `constructor` must not find Object.prototype's.
      // An absent claim is unknown (the token may not carry it, or keepClaims may have dropped
      // it), so a deny on it still applies; a present claim with another value is false.
      const actual = Object.hasOwn(input.claims, rule.name) ? input.claims[rule.name] : undefined;
      if (actual === undefined) {
        unknown = true;
        continue;
      }
      if (rule.any === undefined ? actual !== rule.one : !rule.any.has(actual as ClaimValue)) {
        return false;
      }
    }
    return unknown ? undefined : true;
  };
}

function compileCountry(value: unknown, field: string): CompiledCondition {
  const list = nonEmptyArray(value, field, 'expected a non-empty list of ISO alpha-2 codes');
  const codes = new Set<string>();
  list.forEach((item, i) => {
    // Upper case only, as the permission file requires: one spelling per code.
    if (typeof item !== 'string' || !/^[A-Z]{2}$/.test(item)) {
      throw new ConfigError(
        `${field}[${i}]`,
        'expected an upper-case ISO 3166-1 alpha-2 code like DE',
      );
    }
    codes.add(item);
  });
  return (input) => {
    const country = input.country;
    // Platforms report codes that name no country: XX (unknown) and T1 (Tor) on Cloudflare.
    if (typeof country !== 'string' || !/^[A-Za-z]{2}$/.test(country)) return undefined;
    const code = country.toUpperCase();
    if (code === 'XX') return undefined;
    return codes.has(code);
  };
}

/**
 * Compiles conditions into one predicate, validating everything up front. Throws
 * {@link ConfigError} naming the offending field under `field`, e.g. `${field}.ip[0]`.
 */
export function compileConditions(conditions: Conditions, field: string): CompiledCondition {
  const raw: unknown = conditions;
  if (!isObject(raw)) throw new ConfigError(field, 'expected an object of conditions');
  rejectUnknownKeys(raw, CONDITION_KEYS, field);
  const parts: CompiledCondition[] = [];
  if (raw.ip !== undefined) parts.push(compileIp(raw.ip, `${field}.ip`));
  if (raw.country !== undefined) parts.push(compileCountry(raw.country, `${field}.country`));
  if (raw.claims !== undefined) parts.push(compileClaims(raw.claims, `${field}.claims`));
  // Time last: it is the costliest to evaluate, and the loop below stops at the first failure.
  // Time is never unknown: the check time is always given.
  if (raw.time !== undefined) parts.push(compileTime(raw.time, `${field}.time`));
  if (parts.length === 0)
    throw new ConfigError(field, 'expected at least one of ip, time, claims, country');
  if (parts.length === 1) return parts[0] as CompiledCondition;
  // All keys must hold: any false is false; otherwise any unknown is unknown; otherwise true.
  return (input) => {
    let unknown = false;
    for (const part of parts) {
      const holds = part(input);
      if (holds === false) return false;
      if (holds === undefined) unknown = true;
    }
    return unknown ? undefined : true;
  };
}

// Role grants are expanded into every user's set; compile their conditions once per object.
const compiledCache = new WeakMap<Conditions, CompiledCondition>();

/** {@link compileConditions}, memoized by object identity for conditions shared across users. */
export function compileConditionsCached(conditions: Conditions, field: string): CompiledCondition {
  let compiled = compiledCache.get(conditions);
  if (compiled === undefined) {
    compiled = compileConditions(conditions, field);
    if (typeof conditions === 'object' && conditions !== null)
      compiledCache.set(conditions, compiled);
  }
  return compiled;
}
