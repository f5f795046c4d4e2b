import { describe, expect, it } from 'vitest';
import { parseExpiry, parseSince } from '../../../src/admin/time.ts';
import { UsageError } from '../../../src/cli/io.ts';
import { parseExpiry as cliExpiry } from '../../../src/cli/manage.ts';
import { AdminError } from '../../../src/errors.ts';
import { parseExpires as apiExpires } from '../../../src/http/admin-api.ts';

// One parser for `--expires` / `"expires"` and `--since` / `?since=`; each caller keeps its own
// words (a UsageError for the CLI, a 400 naming the field for the admin API).

const NOW = Date.parse('2026-11-23T12:00:00Z');
const NOW_S = NOW / 1000;

describe('parseExpiry (shared)', () => {
  it.each([
    ['90s', NOW_S + 90],
    ['15m', NOW_S + 900],
    ['2h', NOW_S + 7200],
    ['7d', NOW_S + 7 * 86_400],
    ['2w', NOW_S + 14 * 86_400],
    [1_900_000_000, 1_900_000_000],
    ['2027-01-01T00:00:00Z', Date.parse('2027-01-01T00:00:00Z') / 1000],
  ])('reads %s', (value, expected) => {
    expect(parseExpiry(value, NOW)).toEqual({ ok: true, unixSeconds: expected });
  });

  it.each(['0h', '0w', '99999999d', '2000000w'])(
    'says %s has a duration shape but no length',
    (value) => {
      expect(parseExpiry(value, NOW)).toEqual({ ok: false, problem: 'duration' });
    },
  );

  it.each(['tomorrow', '2026-02-30T00:00:00Z', '3600', 1.5, -1, null, {}, true])(
    'says %s is none of the accepted forms',
    (value) => {
      expect(parseExpiry(value, NOW)).toEqual({ ok: false, problem: 'form' });
    },
  );
});

describe('each caller words the refusal as before', () => {
  it('the CLI names a bad duration', () => {
    expect(() => cliExpiry('0h', NOW)).toThrow(new UsageError('--expires: 0h is not a duration'));
  });

  it('the CLI lists the forms for anything else, and reads bare digits as Unix seconds', () => {
    expect(() => cliExpiry('tomorrow', NOW)).toThrow(
      new UsageError(
        '--expires: expected a duration (90s, 15m, 2h, 7d, 2w), an ISO time with zone, or Unix seconds',
      ),
    );
    expect(cliExpiry('1900000000', NOW)).toBe(1_900_000_000);
  });

  it.each(['0h', 'tomorrow', '3600', false])('the admin API names the field for %s', (value) => {
    let thrown: unknown;
    try {
      apiExpires(value, 'grants[0].expires', NOW);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(AdminError);
    expect(thrown).toMatchObject({ code: 'invalid_request', field: 'grants[0].expires' });
  });
});

describe('parseSince', () => {
  it.each([
    ['1h', NOW - 3_600_000],
    ['30d', NOW - 30 * 86_400_000],
    ['2026-11-01', Date.parse('2026-11-01')],
    ['2026-11-01T08:00:00Z', Date.parse('2026-11-01T08:00:00Z')],
  ])('reads %s', (text, expected) => {
    expect(parseSince(text, NOW)).toBe(expected);
  });

  it.each(['3600', '0d', '1w', 'yesterday', '2026-13-45'])('refuses %s', (text) => {
    expect(parseSince(text, NOW)).toBeNull();
  });
});
