/** Durations and times as people type them in the CLI and the admin API (`--expires 2h`, `?since=7d`). */
import { ConfigError } from '../errors.ts';
import { expiryToUnixSeconds } from '../stores/permission-data.ts';

/** Seconds from `90`, `90s`, `15m`, `1h`, `2d`. */
export function parseDuration(text: string): number | null {
  const match = /^(\d{1,7})([smhd]?)$/.exec(text);
  if (match === null) return null;
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86_400 }[match[2] as '' | 's' | 'm' | 'h' | 'd'];
  const seconds = Number(match[1]) * unit;
  return seconds > 0 ? seconds : null;
}

/**
 * Why an expiry was refused: `duration` when it has a duration's shape (`0h`, `99999999d`) but
 * no valid length, `form` when it is none of the accepted forms. Each caller words its own error.
 */
export type ExpiryProblem = 'duration' | 'form';

export type ParsedExpiry =
  | { readonly ok: true; readonly unixSeconds: number }
  | { readonly ok: false; readonly problem: ExpiryProblem };

/**
 * An expiry as Unix seconds: a duration from now (`90s`, `15m`, `2h`, `7d`, `2w`), Unix seconds
 * (a number), or an ISO 8601 time with zone. Whether it is in the future is PermissionAdmin's
 * check. A string of digits is not a number here: the caller decides what it means.
 */
export function parseExpiry(value: unknown, nowMs: number): ParsedExpiry {
  if (typeof value === 'string' && /^\d+[smhdw]$/.test(value)) {
    const weeks = value.endsWith('w');
    const seconds = parseDuration(weeks ? `${Number(value.slice(0, -1)) * 7}d` : value);
    if (seconds === null) return { ok: false, problem: 'duration' };
    return { ok: true, unixSeconds: Math.floor(nowMs / 1000) + seconds };
  }
  if (typeof value !== 'number' && typeof value !== 'string') return { ok: false, problem: 'form' };
  try {
    return { ok: true, unixSeconds: expiryToUnixSeconds(value, 'expires') };
  } catch (error) {
    if (error instanceof ConfigError) return { ok: false, problem: 'form' };
    throw error;
  }
}

/** A start time in ms from a duration back from now (`1h`, `7d`) or an ISO 8601 date or time. */
export function parseSince(text: string, nowMs: number): number | null {
  const duration = parseDuration(text);
  if (duration !== null && /[smhd]$/.test(text)) return nowMs - duration * 1000;
  const ms = Date.parse(text);
  if (/^\d{4}-\d{2}-\d{2}/.test(text) && !Number.isNaN(ms)) return ms;
  return null;
}
