import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/errors.ts';
import { type ConditionInput, compileConditions } from '../../../src/permissions/index.ts';
import type { Conditions } from '../../../src/types.ts';

const at = (iso: string, extra: Partial<ConditionInput> = {}): ConditionInput => ({
  now: Date.parse(iso),
  claims: {},
  ...extra,
});
const fromIp = (ip: string): ConditionInput => at('2024-03-08T12:00:00Z', { ip });

function fieldOf(conditions: unknown): string | undefined {
  try {
    compileConditions(conditions as Conditions, 'when');
  } catch (error) {
    if (error instanceof ConfigError) return error.field;
    throw error;
  }
  return undefined;
}

describe('ip condition', () => {
  it.each([
    ['0.0.0.0/0', '203.0.113.9', true],
    ['0.0.0.0/0', '2001:db8::1', false],
    ['10.0.0.0/8', '10.0.0.0', true],
    ['10.0.0.0/8', '10.255.255.255', true],
    ['10.0.0.0/8', '11.0.0.0', false],
    ['10.0.0.0/8', '9.255.255.255', false],
    ['192.168.1.7/32', '192.168.1.7', true],
    ['192.168.1.7/32', '192.168.1.8', false],
    ['192.168.1.7', '192.168.1.7', true],
    ['192.168.1.7', '192.168.1.6', false],
    ['128.0.0.0/1', '255.255.255.255', true],
    ['128.0.0.0/1', '127.255.255.255', false],
    ['::/0', '2001:db8::1', true],
    ['::/0', '::', true],
    ['2001:db8::1/128', '2001:db8::1', true],
    ['2001:db8::1/128', '2001:db8::2', false],
    ['2001:db8::1', '2001:0DB8:0000:0000:0000:0000:0000:0001', true],
    ['2001:db8:0:1::/64', '2001:db8:0:1::', true],
    ['2001:db8:0:1::/64', '2001:db8:0:1:ffff:ffff:ffff:ffff', true],
    ['2001:db8:0:1::/64', '2001:db8:0:2::', false],
    ['2001:db8:0:1::/64', '2001:db8:0:0:ffff:ffff:ffff:ffff', false],
    ['::1', '::1', true],
    ['::1', '::', false],
    ['10.0.0.0/8', '::ffff:10.1.2.3', true],
    ['10.0.0.0/8', '::ffff:a01:203', true],
    ['10.0.0.0/8', '::ffff:11.1.2.3', false],
    ['::ffff:10.0.0.0/104', '10.9.9.9', true],
    ['::ffff:10.0.0.0/104', '11.9.9.9', false],
    ['::ffff:0:0/96', '198.51.100.1', true],
    ['1:2:3:4:5:6:1.2.3.4/128', '1:2:3:4:5:6:102:304', true],
  ])('range %s contains %s: %s', (range, ip, expected) => {
    const condition = compileConditions({ ip: [range] }, 'when');

    expect(condition(fromIp(ip))).toBe(expected);
  });

  it('matches when any listed range contains the address', () => {
    const condition = compileConditions({ ip: ['10.0.0.0/8', '2001:db8::/32'] }, 'when');

    expect(condition(fromIp('2001:db8:1::5'))).toBe(true);
  });

  it('keeps an IPv6 range from matching IPv4 clients, so ::/0 does not mean everything', () => {
    const condition = compileConditions({ ip: ['::/0'] }, 'when');

    expect(condition(fromIp('10.0.0.1'))).toBe(false);
  });

  it('is unknown, not false, when the context has no IP', () => {
    const condition = compileConditions({ ip: ['0.0.0.0/0', '::/0'] }, 'when');

    expect(condition(at('2024-03-08T12:00:00Z'))).toBeUndefined();
  });

  it.each([
    'not-an-ip',
    '010.0.0.1',
    '10.0.0',
    '10.0.0.256',
    'fe80::1%eth0',
    '1::2::3',
    '',
    '203.0.113.9, 10.0.0.1',
    '203.0.113.9,10.0.0.1',
    '203.0.113.9:5555',
    '[2001:db8::1]:443',
    ' 203.0.113.9',
  ])('is unknown for the client address %j, which is not one address', (ip) => {
    const inside = compileConditions({ ip: ['203.0.113.0/24'] }, 'when');
    const outside = compileConditions({ ip: ['198.51.100.0/24'] }, 'when');

    expect(inside(fromIp(ip))).toBeUndefined();
    expect(outside(fromIp(ip))).toBeUndefined();
  });

  it('is false, not unknown, for a readable address outside every range', () => {
    const condition = compileConditions({ ip: ['203.0.113.0/24'] }, 'when');

    expect(condition(fromIp('198.51.100.1'))).toBe(false);
  });

  it.each([
    '10.0.0.0/33',
    '10.0.0.1/8',
    '10.0.0.0/',
    '10.0.0.0/08',
    '1.2.3',
    '::1::',
    '2001:db8::/129',
    '2001:db8::1/64',
    '1:2:3:4:5:6:7:8:9',
    '1.2.3.4::',
    'example.com',
  ])('rejects the range %j naming its index', (range) => {
    expect(fieldOf({ ip: ['10.0.0.0/8', range] })).toBe('when.ip[1]');
  });

  it('rejects an empty list', () => {
    expect(fieldOf({ ip: [] })).toBe('when.ip');
  });
});

describe('time condition', () => {
  const officeHours = compileConditions({ time: { hours: { from: '09:00', to: '17:00' } } }, 'w');

  it.each([
    ['2024-03-08T08:59:59Z', false],
    ['2024-03-08T09:00:00Z', true],
    ['2024-03-08T16:59:59Z', true],
    ['2024-03-08T17:00:00Z', false],
  ])('treats hours as [from, to) in UTC by default: %s is %s', (iso, expected) => {
    expect(officeHours(at(iso))).toBe(expected);
  });

  it.each([
    ['2024-03-08T21:59:00Z', false],
    ['2024-03-08T22:00:00Z', true],
    ['2024-03-08T23:59:00Z', true],
    ['2024-03-09T00:00:00Z', true],
    ['2024-03-09T05:59:00Z', true],
    ['2024-03-09T06:00:00Z', false],
    ['2024-03-09T12:00:00Z', false],
  ])('wraps past midnight when to < from: %s is %s', (iso, expected) => {
    const nights = compileConditions({ time: { hours: { from: '22:00', to: '06:00' } } }, 'w');

    expect(nights(at(iso))).toBe(expected);
  });

  it('accepts 24:00 as the end of the day', () => {
    const evening = compileConditions({ time: { hours: { from: '18:00', to: '24:00' } } }, 'w');

    expect(evening(at('2024-03-08T23:59:00Z'))).toBe(true);
    expect(evening(at('2024-03-09T00:00:00Z'))).toBe(false);
  });

  it.each([
    ['2024-03-08T13:30:00Z', false], // Friday 08:30 EST (UTC-5)
    ['2024-03-08T14:30:00Z', true], // Friday 09:30 EST
    ['2024-03-11T12:30:00Z', false], // Monday 08:30 EDT (UTC-4), after the DST change
    ['2024-03-11T13:30:00Z', true], // Monday 09:30 EDT
    ['2024-03-11T21:00:00Z', false], // Monday 17:00 EDT
  ])('follows New York local time across the DST change: %s is %s', (iso, expected) => {
    const ny = compileConditions(
      { time: { hours: { from: '09:00', to: '17:00' }, timezone: 'America/New_York' } },
      'w',
    );

    expect(ny(at(iso))).toBe(expected);
  });

  it.each([
    ['2024-03-10T06:59:59Z', false], // 01:59:59 EST
    ['2024-03-10T07:00:00Z', true], // 03:00 EDT: the clock skipped 02:00..03:00
    ['2024-03-10T07:14:00Z', true], // 03:14 EDT
    ['2024-03-10T08:00:00Z', false], // 04:00 EDT
  ])('is exact at the spring-forward instant in New York: %s is %s', (iso, expected) => {
    const early = compileConditions(
      { time: { hours: { from: '03:00', to: '04:00' }, timezone: 'America/New_York' } },
      'w',
    );

    expect(early(at(iso))).toBe(expected);
  });

  it.each([
    ['2024-11-03T04:59:00Z', false], // 00:59 EDT
    ['2024-11-03T05:00:00Z', true], // 01:00 EDT
    ['2024-11-03T06:00:00Z', true], // 01:00 EST: the hour repeats
    ['2024-11-03T06:59:00Z', true], // 01:59 EST
    ['2024-11-03T07:00:00Z', false], // 02:00 EST
  ])('holds through the repeated hour at fall-back in New York: %s is %s', (iso, expected) => {
    const oneAm = compileConditions(
      { time: { hours: { from: '01:00', to: '02:00' }, timezone: 'America/New_York' } },
      'w',
    );

    expect(oneAm(at(iso))).toBe(expected);
  });

  it.each([
    ['2024-03-08T03:14:00Z', false], // 08:59 in Kathmandu (UTC+5:45)
    ['2024-03-08T03:15:00Z', true], // 09:00
  ])('handles a zone with a quarter-hour offset: %s is %s', (iso, expected) => {
    const nepal = compileConditions(
      { time: { hours: { from: '09:00', to: '10:00' }, timezone: 'Asia/Kathmandu' } },
      'w',
    );

    expect(nepal(at(iso))).toBe(expected);
  });

  it('agrees with Intl on the local weekday and minute at any instant', () => {
    const zones = [
      'UTC',
      'America/New_York',
      'Europe/Paris',
      'Asia/Kathmandu',
      'Australia/Lord_Howe',
    ];
    const days = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
    const pad = (n: number) => String(n).padStart(2, '0');
    fc.assert(
      fc.property(
        fc.constantFrom(...zones),
        fc.integer({ min: Date.UTC(2000, 0, 1), max: Date.UTC(2040, 0, 1) }),
        (timezone, now) => {
          const parts = new Intl.DateTimeFormat('en-US', {
            timeZone: timezone,
            weekday: 'short',
            hour: 'numeric',
            minute: 'numeric',
            hourCycle: 'h23',
          }).formatToParts(now);
          const part = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
          const hour = Number(part('hour'));
          const minute = Number(part('minute'));
          const day = days.find((d) => d === part('weekday').toLowerCase().slice(0, 3));
          const next = hour * 60 + minute + 1;
          const exactMinute = compileConditions(
            {
              time: {
                days: [day ?? 'mon'],
                hours: {
                  from: `${pad(hour)}:${pad(minute)}`,
                  to: `${pad((next / 60) | 0)}:${pad(next % 60)}`,
                },
                timezone,
              },
            },
            'w',
          );

          expect(exactMinute(at(new Date(now).toISOString()))).toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('uses the local weekday of the zone', () => {
    const fridays = { time: { days: ['fri'] } } satisfies Conditions;
    const utc = compileConditions(fridays, 'w');
    const ny = compileConditions({ time: { ...fridays.time, timezone: 'America/New_York' } }, 'w');
    // Saturday 03:00 UTC is still Friday 22:00 in New York.
    const input = at('2024-03-09T03:00:00Z');

    expect(utc(input)).toBe(false);
    expect(ny(input)).toBe(true);
  });

  describe('a window that wraps midnight with days', () => {
    // Friday night: Friday 22:00 to Saturday 02:00.
    const fridayNight = compileConditions(
      { time: { days: ['fri'], hours: { from: '22:00', to: '02:00' } } },
      'w',
    );

    it.each([
      ['2024-03-08T21:59:00Z', false], // Friday, before the window
      ['2024-03-08T22:00:00Z', true], // Friday 22:00
      ['2024-03-08T23:59:00Z', true],
      ['2024-03-09T00:00:00Z', true], // Saturday 00:00: still Friday's night
      ['2024-03-09T01:59:00Z', true],
      ['2024-03-09T02:00:00Z', false], // Saturday 02:00: the window has ended
      ['2024-03-08T00:30:00Z', false], // Friday 00:30 belongs to Thursday's night
      ['2024-03-08T01:59:00Z', false],
      ['2024-03-09T22:30:00Z', false], // Saturday evening
      ['2024-03-10T00:30:00Z', false], // Sunday 00:30 belongs to Saturday's night
    ])('at %s: %s', (iso, expected) => {
      expect(fridayNight(at(iso))).toBe(expected);
    });

    it('counts the after-midnight part across a week boundary (sun 23:00 to mon 01:00)', () => {
      const sundayNight = compileConditions(
        { time: { days: ['sun'], hours: { from: '23:00', to: '01:00' } } },
        'w',
      );

      expect(sundayNight(at('2024-03-10T23:30:00Z'))).toBe(true); // Sunday
      expect(sundayNight(at('2024-03-11T00:30:00Z'))).toBe(true); // Monday
      expect(sundayNight(at('2024-03-10T00:30:00Z'))).toBe(false); // Sunday morning
    });

    it('follows local days across the spring DST change (Berlin, 2024-03-31)', () => {
      // Saturday 30 March 22:00 CET to Sunday 02:00; at 02:00 CET the clock jumps to 03:00 CEST.
      const saturdayNight = compileConditions(
        {
          time: {
            days: ['sat'],
            hours: { from: '22:00', to: '02:00' },
            timezone: 'Europe/Berlin',
          },
        },
        'w',
      );

      expect(saturdayNight(at('2024-03-30T20:59:00Z'))).toBe(false); // Sat 21:59 CET
      expect(saturdayNight(at('2024-03-30T21:00:00Z'))).toBe(true); // Sat 22:00 CET
      expect(saturdayNight(at('2024-03-31T00:59:00Z'))).toBe(true); // Sun 01:59 CET
      expect(saturdayNight(at('2024-03-31T01:00:00Z'))).toBe(false); // Sun 03:00 CEST
      expect(saturdayNight(at('2024-03-31T21:30:00Z'))).toBe(false); // Sun 23:30 CEST
    });

    it('covers both occurrences of the repeated hour at the autumn DST change', () => {
      // Berlin, 2024-10-27: 03:00 CEST goes back to 02:00 CET, so 02:30 happens twice.
      const saturdayNight = compileConditions(
        {
          time: {
            days: ['sat'],
            hours: { from: '23:00', to: '03:00' },
            timezone: 'Europe/Berlin',
          },
        },
        'w',
      );

      expect(saturdayNight(at('2024-10-26T20:59:00Z'))).toBe(false); // Sat 22:59 CEST
      expect(saturdayNight(at('2024-10-26T21:00:00Z'))).toBe(true); // Sat 23:00 CEST
      expect(saturdayNight(at('2024-10-27T00:30:00Z'))).toBe(true); // Sun 02:30 CEST
      expect(saturdayNight(at('2024-10-27T01:30:00Z'))).toBe(true); // Sun 02:30 CET
      expect(saturdayNight(at('2024-10-27T02:00:00Z'))).toBe(false); // Sun 03:00 CET
      // A week later, Saturday's night does not spill into Sunday morning of the next week.
      expect(saturdayNight(at('2024-10-27T22:30:00Z'))).toBe(false); // Sun 23:30 CET
    });

    it('treats 24:00 as the end of the day, not a wrap', () => {
      const fridayEvening = compileConditions(
        { time: { days: ['fri'], hours: { from: '22:00', to: '24:00' } } },
        'w',
      );

      expect(fridayEvening(at('2024-03-08T23:59:00Z'))).toBe(true);
      expect(fridayEvening(at('2024-03-09T00:00:00Z'))).toBe(false);
    });
  });

  it('requires both days and hours when both are given', () => {
    const weekdayMornings = compileConditions(
      {
        time: { days: ['mon', 'tue', 'wed', 'thu', 'fri'], hours: { from: '06:00', to: '12:00' } },
      },
      'w',
    );

    expect(weekdayMornings(at('2024-03-08T07:00:00Z'))).toBe(true);
    expect(weekdayMornings(at('2024-03-09T07:00:00Z'))).toBe(false);
    expect(weekdayMornings(at('2024-03-08T13:00:00Z'))).toBe(false);
  });

  it.each([
    [{ time: { timezone: 'UTC' } }, 'when.time'],
    [{ time: { days: ['monday'] } }, 'when.time.days[0]'],
    [{ time: { days: [] } }, 'when.time.days'],
    [{ time: { hours: { from: '9:00', to: '17:00' } } }, 'when.time.hours.from'],
    [{ time: { hours: { from: '24:00', to: '17:00' } } }, 'when.time.hours.from'],
    [{ time: { hours: { from: '09:00', to: '24:01' } } }, 'when.time.hours.to'],
    [{ time: { hours: { from: '09:00', to: '17:60' } } }, 'when.time.hours.to'],
    [{ time: { hours: { from: '09:00', to: '09:00' } } }, 'when.time.hours'],
    [{ time: { hours: { from: '09:00' } } }, 'when.time.hours.to'],
    [{ time: { days: ['mon'], timezone: 'Mars/Olympus' } }, 'when.time.timezone'],
    [{ time: { days: ['mon'], zone: 'UTC' } }, 'when.time.zone'],
  ])('rejects %j naming %s', (conditions, field) => {
    expect(fieldOf(conditions)).toBe(field);
  });
});

describe('claims condition', () => {
  it('holds when the claim equals the value', () => {
    const condition = compileConditions({ claims: { department: 'sales' } }, 'w');

    expect(condition(at('2024-01-01T00:00:00Z', { claims: { department: 'sales' } }))).toBe(true);
  });

  it('fails when the claim differs, even by type', () => {
    const condition = compileConditions({ claims: { level: 3 } }, 'w');

    expect(condition(at('2024-01-01T00:00:00Z', { claims: { level: '3' } }))).toBe(false);
  });

  it('holds when the claim is one of the listed values', () => {
    const condition = compileConditions({ claims: { role: ['admin', 'owner'] } }, 'w');

    expect(condition(at('2024-01-01T00:00:00Z', { claims: { role: 'owner' } }))).toBe(true);
    expect(condition(at('2024-01-01T00:00:00Z', { claims: { role: 'guest' } }))).toBe(false);
  });

  it('is unknown, not false, when the claim is absent', () => {
    const condition = compileConditions({ claims: { mfa: true } }, 'w');

    expect(condition(at('2024-01-01T00:00:00Z'))).toBeUndefined();
  });

  it('is false when the claim is present with another value, including null', () => {
    const condition = compileConditions({ claims: { contractor: true } }, 'w');

    expect(condition(at('2024-01-01T00:00:00Z', { claims: { contractor: false } }))).toBe(false);
    expect(condition(at('2024-01-01T00:00:00Z', { claims: { contractor: null } }))).toBe(false);
  });

  it('does not find inherited properties as claims: they are absent', () => {
    const condition = compileConditions({ claims: { constructor: 'Object' } }, 'w');

    expect(condition(at('2024-01-01T00:00:00Z'))).toBeUndefined();
  });

  it('requires every named claim: one absent is unknown, one different is false', () => {
    const condition = compileConditions({ claims: { mfa: true, tier: 'gold' } }, 'w');

    expect(condition(at('2024-01-01T00:00:00Z', { claims: { mfa: true } }))).toBeUndefined();
    expect(condition(at('2024-01-01T00:00:00Z', { claims: { mfa: false } }))).toBe(false);
    expect(condition(at('2024-01-01T00:00:00Z', { claims: { mfa: true, tier: 'gold' } }))).toBe(
      true,
    );
  });

  it.each([
    [{ claims: {} }, 'when.claims'],
    [{ claims: { tier: [] } }, 'when.claims.tier'],
    [{ claims: { tier: null } }, 'when.claims.tier'],
    [{ claims: { tier: ['gold', { nested: 1 }] } }, 'when.claims.tier[1]'],
  ])('rejects %j naming %s', (conditions, field) => {
    expect(fieldOf(conditions)).toBe(field);
  });
});

describe('country condition', () => {
  const europe = compileConditions({ country: ['DE', 'FR'] }, 'w');

  it('holds when the country is listed, whatever case the platform reports it in', () => {
    expect(europe(at('2024-01-01T00:00:00Z', { country: 'de' }))).toBe(true);
    expect(europe(at('2024-01-01T00:00:00Z', { country: 'FR' }))).toBe(true);
  });

  it('fails when the country is not listed', () => {
    expect(europe(at('2024-01-01T00:00:00Z', { country: 'US' }))).toBe(false);
  });

  it('is unknown when the platform supplies no country', () => {
    expect(europe(at('2024-01-01T00:00:00Z'))).toBeUndefined();
  });

  it.each(['XX', 'xx', 'T1', '', 'DEU', 'D'])(
    'is unknown for %j, which names no country',
    (country) => {
      expect(europe(at('2024-01-01T00:00:00Z', { country }))).toBeUndefined();
    },
  );

  it.each([
    [{ country: ['DEU'] }, 'when.country[0]'],
    [{ country: [] }, 'when.country'],
    [{ country: ['DE', 'fr'] }, 'when.country[1]'],
    [{ country: ['D1'] }, 'when.country[0]'],
  ])('rejects %j naming %s', (conditions, field) => {
    expect(fieldOf(conditions)).toBe(field);
  });
});

describe('combined conditions', () => {
  it('holds only when every present key holds', () => {
    const condition = compileConditions({ ip: ['10.0.0.0/8'], country: ['DE'] }, 'w');

    expect(condition(at('2024-01-01T00:00:00Z', { ip: '10.0.0.1', country: 'DE' }))).toBe(true);
    expect(condition(at('2024-01-01T00:00:00Z', { ip: '10.0.0.1', country: 'US' }))).toBe(false);
    expect(condition(at('2024-01-01T00:00:00Z', { ip: '11.0.0.1', country: 'DE' }))).toBe(false);
  });

  it('is false when any key fails, even if another is unknown', () => {
    const condition = compileConditions(
      { ip: ['10.0.0.0/8'], country: ['DE'], claims: { mfa: true } },
      'w',
    );

    expect(condition(at('2024-01-01T00:00:00Z', { country: 'US' }))).toBe(false);
    expect(condition(at('2024-01-01T00:00:00Z', { ip: '11.0.0.1' }))).toBe(false);
  });

  it('is unknown when no key fails and one is unknown', () => {
    const condition = compileConditions(
      { ip: ['10.0.0.0/8'], country: ['DE'], time: { days: ['mon'] } },
      'w',
    );
    const monday = '2024-01-01T00:00:00Z';

    expect(condition(at(monday, { ip: '10.0.0.1' }))).toBeUndefined();
    expect(condition(at(monday, { country: 'DE' }))).toBeUndefined();
    expect(condition(at(monday, { ip: '10.0.0.1', country: 'DE' }))).toBe(true);
    // Time is always known: a Tuesday makes the whole condition false.
    expect(condition(at('2024-01-02T00:00:00Z', { ip: '10.0.0.1' }))).toBe(false);
  });

  it.each([
    [{ ips: ['10.0.0.0/8'] }, 'when.ips'],
    [{}, 'when'],
    [null, 'when'],
    ['ip', 'when'],
  ])('rejects %j naming %s, since an ignored key would widen the grant', (conditions, field) => {
    expect(fieldOf(conditions)).toBe(field);
  });
});

describe('condition lists are capped before they are parsed (issue 9)', () => {
  /** A list of `n` items whose items past the first 20 were never set: reading one would fail. */
  function unread(n: number, item: unknown): unknown[] {
    const list = new Array(n);
    for (let i = 0; i < 20; i++) list[i] = item;
    return list;
  }

  it.each([
    ['ip', (n: number) => ({ ip: unread(n, '10.0.0.0/8') }), 'when.ip'],
    ['country', (n: number) => ({ country: unread(n, 'DE') }), 'when.country'],
    ['time.days', (n: number) => ({ time: { days: unread(n, 'mon') } }), 'when.time.days'],
    ['a claim’s values', (n: number) => ({ claims: { g: unread(n, 'x') } }), 'when.claims.g'],
    [
      'claim names',
      (n: number) => ({
        claims: Object.fromEntries(Array.from({ length: n }, (_, i) => [`c${i}`, 1])),
      }),
      'when.claims',
    ],
  ])('refuses %s past 10,000 items, naming the list', (_what, conditions, field) => {
    expect(() => compileConditions(conditions(10_000) as Conditions, 'when')).not.toThrow(
      /at most/,
    );
    let error: unknown;
    try {
      compileConditions(conditions(1_000_000) as Conditions, 'when');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect(error).toMatchObject({ field });
    expect((error as Error).message).toMatch(/at most 10000/);
  });
});
