/**
 * The shared decision table (test/cases/decisions.json) through the guard Worker in workerd, with
 * KV seeded from demo/permissions.json and the demo policy: allow means the echo origin answered
 * 200; for denies the status and the problem body's `reason` must match.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import decisions from '../cases/decisions.json';
import { type DecisionCase, demoDelegationKeys, demoToken } from '../support/cases.ts';
import { seedDemo, TEST_SECRET, type TestGuard, testGuard } from './helpers.ts';

const { cases } = decisions as { cases: DecisionCase[] };

describe('shared decision table, Worker with KV', () => {
  let keys: string;
  let guard: TestGuard;
  beforeAll(async () => {
    keys = await demoDelegationKeys();
    guard = testGuard({ GATEHOUSE_DELEGATION_KEYS: keys });
  });

  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    await seedDemo();
    const token = await demoToken(c, TEST_SECRET, keys);
    const response = await guard.fetch(c.path, {
      method: c.method,
      headers: {
        'cf-connecting-ip': c.ip ?? '203.0.113.9',
        ...(token !== undefined && { authorization: `Bearer ${token}` }),
      },
    });
    const body = (await response.json()) as { origin?: string; reason?: string };
    const allow = response.status === 200 && body.origin === 'echo';
    const reason = allow ? c.expect.reason : body.reason;
    if (allow) {
      // The echo origin answered; the guard's reason for an allow is not on the wire.
      expect(c.expect.allow).toBe(true);
    }
    expect({ allow, status: response.status, reason }).toEqual(c.expect);
  });
});
