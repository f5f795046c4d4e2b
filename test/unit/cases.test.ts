/**
 * The shared decision table (test/cases/decisions.json) through the core with the file store:
 * the reference the Worker (KV) and Lambda (DynamoDB) runners must match.
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { compilePolicy, Gatehouse } from '../../src/policy/index.ts';
import { createFileStore } from '../../src/stores/index.ts';
import { type DecisionCase, demoDelegationKeys, demoToken } from '../support/cases.ts';

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');
const { cases } = JSON.parse(read('test/cases/decisions.json')) as { cases: DecisionCase[] };
const SECRET = 'demo-secret-for-tests-0123456789abcdef';

describe('shared decision table, core with the file store', () => {
  let keys: string;
  let gatehouse: Gatehouse;
  beforeAll(async () => {
    keys = await demoDelegationKeys();
    const policy = compilePolicy(JSON.parse(read('demo/policy.json')), {
      env: { GATEHOUSE_DEV_SECRET: SECRET, GATEHOUSE_DELEGATION_KEYS: keys },
    });
    gatehouse = new Gatehouse({ policy, store: createFileStore(read('demo/permissions.json')) });
  });

  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const token = await demoToken(c, SECRET, keys);
    const decision = await gatehouse.decide({
      method: c.method,
      path: c.path,
      authorization: token === undefined ? undefined : `Bearer ${token}`,
      ip: c.ip ?? '203.0.113.9',
    });
    expect({ allow: decision.allow, status: decision.status, reason: decision.reason }).toEqual(
      c.expect,
    );
  });
});
