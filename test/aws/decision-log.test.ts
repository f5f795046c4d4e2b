/**
 * Decision logs through the Lambda handler with its default sink: exactly one JSON string per
 * decision on the console method of its level, with the token's digest and never the token.
 */
import { createHash } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { IamResponse, SimpleResponse } from '../../src/aws/authorizer.ts';
import { createLambdaHandler } from '../../src/aws/lambda.ts';
import { DECISION_LOG_TYPE } from '../../src/logging/decision-log.ts';
import { demoToken } from '../support/cases.ts';
import {
  DEMO_POLICY,
  demoTable,
  httpEvent,
  type LocalDynamo,
  restRequestEvent,
  SECRET,
  startDynalite,
  tokenEvent,
} from './support.ts';

let local: LocalDynamo;
let table: string;
beforeAll(async () => {
  local = await startDynalite();
  table = await demoTable(local.client());
});
afterAll(async () => local.close());

/** What reached the console, per method, as written. */
let written: { method: 'log' | 'warn' | 'error'; text: unknown }[];
beforeEach(() => {
  written = [];
  for (const method of ['log', 'warn', 'error'] as const) {
    vi.spyOn(console, method).mockImplementation((text: unknown) => {
      written.push({ method, text });
    });
  }
});
afterEach(() => {
  vi.restoreAllMocks();
});

const token = async (subject: string): Promise<string> =>
  (await demoToken(
    {
      name: subject,
      subject,
      method: 'GET',
      path: '/',
      expect: { allow: true, status: 200, reason: '' },
    },
    SECRET,
  ))!;

function handler(env: Record<string, string> = {}, random?: () => number) {
  return createLambdaHandler({
    policy: DEMO_POLICY,
    env: { TABLE_NAME: table, GATEHOUSE_DEV_SECRET: SECRET, AUTHORIZER_MODE: 'route', ...env },
    client: local.client(),
    ...(random && { random }),
  });
}

/** Every console line parsed as JSON (each must be one JSON string). */
function lines(): Record<string, unknown>[] {
  return written.map(({ text }) => {
    expect(typeof text).toBe('string');
    expect(text as string).not.toContain('\n');
    return JSON.parse(text as string) as Record<string, unknown>;
  });
}

const digestOf = (t: string) =>
  createHash('sha256').update(t).digest().subarray(0, 16).toString('base64url');

describe('decision lines from the Lambda authorizer', () => {
  it('writes one JSON line for a deny, on console.warn, with the digest and not the token', async () => {
    const alice = await token('alice');
    const answer = (await handler()(restRequestEvent('PUT', '/posts/1', alice))) as IamResponse;
    expect(answer.policyDocument.Statement[0]?.Effect).toBe('Deny');
    expect(written.map((w) => w.method)).toEqual(['warn']);
    const [line] = lines();
    expect(line).toMatchObject({
      type: DECISION_LOG_TYPE,
      level: 'warn',
      edge: 'apigateway',
      allow: false,
      status: 403,
      reason: 'missing_permission',
      method: 'PUT',
      path: '/posts/1',
      route: 'PUT,PATCH /posts/:id',
      required: ['write:posts:1'],
      subject: 'alice',
      sampleRate: 1,
      tokenDigest: digestOf(alice),
    });
    expect(typeof line?.latencyMs).toBe('number');
    for (const part of alice.split('.')) expect(written[0]?.text).not.toContain(part);
  });

  it('writes the line of a bad token before throwing Unauthorized', async () => {
    const expired = (await demoToken(
      {
        name: 'expired',
        subject: 'alice',
        method: 'GET',
        path: '/',
        token: 'expired',
        expect: { allow: false, status: 401, reason: 'token_expired' },
      },
      SECRET,
    ))!;
    await expect(handler()(tokenEvent('GET', '/posts/1', expired))).rejects.toThrow(
      /^Unauthorized$/,
    );
    expect(lines()).toEqual([
      expect.objectContaining({
        reason: 'token_expired',
        status: 401,
        tokenDigest: digestOf(expired),
      }),
    ]);
  });

  it('writes one line per decision in principal mode, with the request reason the answer hides', async () => {
    const bob = await token('bob');
    const answer = (await handler({ AUTHORIZER_MODE: 'principal' })(
      tokenEvent('DELETE', '/posts/7', bob),
    )) as IamResponse;
    expect(answer.context.reason).toBe('principal_policy');
    expect(lines()).toEqual([
      expect.objectContaining({ reason: 'explicit_deny', status: 403, subject: 'bob' }),
    ]);
  });

  it('samples allows: none at the default rate when the draw is high, every one at rate 1', async () => {
    const alice = await token('alice');
    const sometimes = handler({}, () => 0.5);
    const always = handler({ DECISION_LOG_ALLOW_SAMPLE_RATE: '1' }, () => 0.5);
    const allowed = (await sometimes(
      httpEvent('GET', '/posts/1', alice, '203.0.113.9'),
    )) as SimpleResponse;
    expect(allowed.isAuthorized).toBe(true);
    expect(written).toEqual([]);
    await always(httpEvent('GET', '/posts/1', alice, '203.0.113.9'));
    expect(written.map((w) => w.method)).toEqual(['log']);
    expect(lines()[0]).toMatchObject({
      level: 'info',
      allow: true,
      reason: 'allowed',
      sampleRate: 1,
      tokenDigest: digestOf(alice),
      cache: { token: expect.any(String), permissions: expect.any(String) },
    });
  });

  it('writes nothing with DECISION_LOG=off', async () => {
    const alice = await token('alice');
    await handler({ DECISION_LOG: 'off' })(restRequestEvent('PUT', '/posts/1', alice));
    expect(written).toEqual([]);
  });

  it('refuses to start on a bad sample rate, in one error line naming the variable', async () => {
    const h = handler({ DECISION_LOG_ALLOW_SAMPLE_RATE: 'sometimes' });
    expect(h.configError).toMatchObject({ field: 'DECISION_LOG_ALLOW_SAMPLE_RATE' });
    expect(written.map((w) => w.method)).toEqual(['error']);
    expect(String(lines()[0]?.msg)).toContain('DECISION_LOG_ALLOW_SAMPLE_RATE');
    await expect(h(tokenEvent('GET', '/health', undefined))).rejects.toThrow(/configuration/);
  });
});
