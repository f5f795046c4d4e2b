/**
 * Revocation, measured on the local Workers stack: `wrangler dev` runs the guard with a 2-second
 * permission cache; `gatehouse revoke --kv local` (the real bin, a separate process) writes to
 * the same local KV state; the time from the CLI's exit to the guard's first 403 must stay
 * within the documented bound (docs/management.md): cache.ttlSeconds, plus polling slack.
 * Local KV has no edge cache, so KV's cacheTtl (part of the bound in production) is not in play.
 */
import { type ChildProcess, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { devIssuer, mintDevToken } from '../../src/cli/token.ts';
import { freePort, startWranglerDev, stopProcessGroup } from '../support/processes.ts';
import { cliAsync, pollUntilDenied } from '../support/revocation.ts';

const root = new URL('../../', import.meta.url).pathname;
const SECRET = 'revocation-test-secret-0123456789abcdef-01';
const TTL_SECONDS = 2;
/** Polling interval and the slack the bound allows on top of the TTL (a loaded 2-core machine). */
const POLL_MS = 25;
const SLACK_MS = 1500;

let dir = '';
let child: ChildProcess | undefined;
let base = '';
let policy: Record<string, unknown> = {};

const bin = () => join(root, 'bin/gatehouse.mjs');

function cliArgs(...args: string[]): string[] {
  return [
    ...args,
    '--kv',
    'local',
    '--config',
    join(dir, 'wrangler.toml'),
    '--persist-to',
    join(dir, 'state'),
    '--policy',
    join(dir, 'policy.json'),
    '--vars',
    join(dir, 'none'),
  ];
}

const cliEnv = () => ({ ...process.env, WRANGLER_SEND_METRICS: 'false' });

function cli(...args: string[]) {
  return spawnSync(process.execPath, [bin(), ...cliArgs(...args)], {
    cwd: root,
    encoding: 'utf8',
    env: cliEnv(),
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-revoke-'));
  policy = JSON.parse(readFileSync(join(root, 'demo/policy.json'), 'utf8'));
  policy.cache = { ttlSeconds: TTL_SECONDS, negativeTtlSeconds: 1 };
  delete policy.$schema;
  writeFileSync(join(dir, 'policy.json'), JSON.stringify(policy));
  // Its own config beside its own state: no .dev.vars from the checkout, the short-TTL policy.
  writeFileSync(
    join(dir, 'wrangler.toml'),
    [
      'name = "gatehouse-revocation-test"',
      `main = ${JSON.stringify(join(root, 'handlers/worker.ts'))}`,
      'compatibility_date = "2026-11-01"',
      '[alias]',
      `"gatehouse:policy" = ${JSON.stringify(join(dir, 'policy.json'))}`,
      '[vars]',
      'ORIGIN = "echo"',
      '[[kv_namespaces]]',
      'binding = "PERMISSIONS"',
      'id = "gatehouse-permissions-local"',
    ].join('\n'),
  );
  const seeded = cli('import', join(root, 'demo/permissions.json'));
  expect(seeded.stderr).toBe('');
  expect(seeded.status).toBe(0);
  expect(cli('grant', 'alice', 'read:stats').status).toBe(0);

  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  child = await startWranglerDev({
    cwd: dir,
    port,
    args: [
      '--config',
      join(dir, 'wrangler.toml'),
      '--persist-to',
      join(dir, 'state'),
      '--var',
      `GATEHOUSE_DEV_SECRET:${SECRET}`,
    ],
  });
});

afterAll(async () => {
  await stopProcessGroup(child);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('revocation on wrangler dev', () => {
  it('a grant revoked with the CLI stops working within the cache TTL', async () => {
    const token = await mintDevToken({
      subject: 'alice',
      ttlSeconds: 600,
      secret: SECRET,
      issuer: devIssuer(policy),
    });
    const stats = () =>
      fetch(`${base}/stats`, { headers: { authorization: `Bearer ${token}` } }).then(async (r) => {
        await r.arrayBuffer();
        return r.status;
      });
    // Warm: the grant is in the guard's cache before it is revoked.
    expect(await stats()).toBe(200);
    expect(await stats()).toBe(200);

    const figure = await pollUntilDenied(
      cliAsync(bin(), cliArgs('revoke', 'alice', 'read:stats'), cliEnv()),
      async () => (await stats()) === 200,
      { pollMs: POLL_MS, giveUpMs: (TTL_SECONDS + 20) * 1000 },
    );
    // The figure the docs quote; printed for the record of each run.
    console.log(
      `revocation (workers, wrangler dev, cache.ttlSeconds ${TTL_SECONDS}): denied ` +
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
