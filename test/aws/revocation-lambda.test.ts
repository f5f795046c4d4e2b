/**
 * Revocation, measured on the local AWS stack: the Lambda authorizer (HTTP API, simple
 * responses) on dynalite with a 2-second permission cache; `gatehouse revoke --dynamodb` (the
 * real bin, a separate process) removes the grant; the time from the CLI's exit to the
 * authorizer's first deny must stay within the documented bound (docs/management.md):
 * cache.ttlSeconds plus polling slack. API Gateway's own authorizer cache (AUTHORIZER_TTL_SECONDS)
 * adds to the bound in AWS and cannot run here; docs/aws.md covers it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimpleResponse } from '../../src/aws/authorizer.ts';
import { createLambdaHandler } from '../../src/aws/lambda.ts';
import { devIssuer, mintDevToken } from '../../src/cli/token.ts';
import { cliAsync, pollUntilDenied } from '../support/revocation.ts';
import {
  DEMO_POLICY,
  demoTable,
  httpEvent,
  type LocalDynamo,
  SECRET,
  startDynalite,
} from './support.ts';

const root = new URL('../../', import.meta.url).pathname;
const TTL_SECONDS = 2;
const POLL_MS = 25;
const SLACK_MS = 1500;

let local: LocalDynamo;
let table: string;
let dir: string;
const policy = { ...(DEMO_POLICY as Record<string, unknown>), cache: { ttlSeconds: TTL_SECONDS } };

beforeAll(async () => {
  local = await startDynalite();
  table = await demoTable(local.client());
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-revoke-aws-'));
  writeFileSync(join(dir, 'policy.json'), JSON.stringify(policy));
});
afterAll(async () => {
  await local.close();
  rmSync(dir, { recursive: true, force: true });
});

const bin = () => join(root, 'bin/gatehouse.mjs');

function cliArgs(...args: string[]): string[] {
  return [
    ...args,
    '--dynamodb',
    '--table',
    table,
    '--endpoint',
    local.endpoint,
    '--region',
    'eu-west-1',
    '--policy',
    join(dir, 'policy.json'),
    '--vars',
    join(dir, 'none'),
  ];
}

describe('revocation on the Lambda authorizer', () => {
  it('a grant revoked with the CLI stops working within the cache TTL', async () => {
    // Async: dynalite runs in this process, so a blocking spawn would starve it.
    const granted = await cliAsync(bin(), cliArgs('grant', 'alice', 'read:stats')).done;
    expect(granted.stderr).toBe('');
    expect(granted.status).toBe(0);
    const handler = createLambdaHandler({
      policy,
      env: { TABLE_NAME: table, GATEHOUSE_DEV_SECRET: SECRET },
      client: local.client(),
      log: () => {},
    });
    const token = await mintDevToken({
      subject: 'alice',
      ttlSeconds: 600,
      secret: SECRET,
      issuer: devIssuer(policy),
    });
    const allowed = async () =>
      ((await handler(httpEvent('GET', '/stats', token))) as SimpleResponse).isAuthorized;
    expect(await allowed()).toBe(true);
    expect(await allowed()).toBe(true);

    const figure = await pollUntilDenied(
      cliAsync(bin(), cliArgs('revoke', 'alice', 'read:stats')),
      allowed,
      { pollMs: POLL_MS, giveUpMs: (TTL_SECONDS + 20) * 1000 },
    );
    console.log(
      `revocation (lambda, dynalite, cache.ttlSeconds ${TTL_SECONDS}): denied ` +
        `${Math.round(figure.afterExitMs)} ms after the CLI exited ` +
        `(${Math.round(figure.afterStartMs)} ms after it started; the CLI took ` +
        `${Math.round(figure.cliMs)} ms, ${figure.allowsDuringCli} allows served meanwhile)`,
    );
    expect(figure.stderr).toBe('');
    expect(figure.status).toBe(0);
    expect(figure.denied).toBe(true);
    expect(figure.allowsDuringCli).toBeGreaterThan(0);
    expect(figure.afterExitMs).toBeLessThanOrEqual(TTL_SECONDS * 1000 + SLACK_MS);
  });
});
