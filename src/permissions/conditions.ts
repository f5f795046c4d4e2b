/**
 * Conditions on grants and denies, compiled once into a predicate so a check does no parsing:
 * CIDR ranges are parsed to numbers, claim values to sets, time zones to cached formatters.
 */

import { ConfigError } from '../errors.ts';
import type { Conditions, Weekday } from '../types.ts';
import { type CidrRange, cidrContains, type IpAddress, parseCidr, parseIp } from './ip.ts';

/** What a condition may look at when a permission is checked. */
export interface ConditionInput {
  /** Client IP (v4 or v6) as the platform reports it; absent makes an `ip` condition fail. */
  ip?: string;
  /** ISO 3166-1 alpha-2 country; absent makes a `country` condition fail (fail closed). */
  country?: string;
  /** Check time, milliseconds since the epoch; injected so tests fake the clock. */
  now: number;
  /** The principal's claims that rules need; compared with `===`. */
  claims: Readonly<Record<string, unknown>>;
}

/** A compiled condition: true when every present key of the {@link Conditions} holds. */
export type CompiledCondition = (input: ConditionInput) => boolean;

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

function nonEmptyArray(value: unknown, field: string, expected: string): readonly unknown[] {
  if (!Array.isArray(value) || value.length === 0) throw new ConfigError(field, expected);
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
  return (input) => {
    if (input.ip === undefined) return false;
    const address = clientAddress(input.ip);
    if (address === undefined) return false;
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

  return (input) => {
    const local = localMinutes(clock, input.now);
    if (days !== undefined) {
      const weekday = mod(Math.floor(local / DAY_MINUTES) + EPOCH_WEEKDAY, 7);
      if (days[weekday] !== true) return false;
    }
    if (!hasHours) return true;
    const m = mod(local, DAY_MINUTES);
    // [from, to); when to < from the window wraps past midnight.
    return from < to ? m >= from && m < to : m >= from || m < to;
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
    for (const rule of rules) {
      // Own properties only: a claim named `constructor` must not find Object.prototype's.
      if (!Object.hasOwn(input.claims, rule.name)) return false;
      const actual = input.claims[rule.name];
      if (rule.any === undefined ? actual !== rule.one : !rule.any.has(actual as ClaimValue)) {
        return false;
      }
    }
    return true;
  };
}

function compileCountry(value: unknown, field: string): CompiledCondition {
  const list = nonEmptyArray(value, field, 'expected a non-empty list of ISO alpha-2 codes');
  const codes = new Set<string>();
  list.forEach((item, i) => {
    if (typeof item !== 'string' || !/^[A-Za-z]{2}$/.test(item)) {
      throw new ConfigError(`${field}[${i}]`, 'expected an ISO 3166-1 alpha-2 code like DE');
    }
    codes.add(item.toUpperCase());
  });
  return (input) => input.country !== undefined && codes.has(input.country.toUpperCase());
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
  if (raw.time !== undefined) parts.push(compileTime(raw.time, `${field}.time`));
  if (parts.length === 0)
    throw new ConfigError(field, 'expected at least one of ip, time, claims, country');
  if (parts.length === 1) return parts[0] as CompiledCondition;
  return (input) => {
    for (const part of parts) if (!part(input)) return false;
    return true;
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
