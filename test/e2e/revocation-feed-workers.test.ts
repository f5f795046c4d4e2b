/**
 * Revocation in seconds on the local Workers stack (issue 14): `wrangler dev` runs the guard and
 * the admin Worker in one session with the revocation feed's Durable Object, as `npm start` does,
 * and the default 30-second permission cache. `gatehouse ... --kv local` (the real bin, its own
 * process) reaches the running session's feed through wrangler's dev registry, so the guard
 * drops the change at its next feed read: the figure is from the CLI's exit to the first deny.
 *
 * Worker names carry the process id: the dev registry is shared by every session on the machine.
 */
import { type ChildProcess, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { devIssuer, mintDevToken } from '../../src/cli/token.ts';
import { freePort, startWranglerDev, stopProcessGroup } from '../support/processes.ts';
import { cliAsync, pollUntilDenied } from '../support/revocation.ts';
import { writeWorkerPair } from '../support/worker-pair.ts';

const root = new URL('../../', import.meta.url).pathname;
const SECRET = 'revocation-feed-test-secret-0123456789abcdef';
const GUARD = `gatehouse-feed-test-${process.pid}`;
/** One feed interval (1 s) plus the read, on a loaded 2-core machine. */
const BOUND_MS = 2000;
const SLACK_MS = 1000;
const POLL_MS = 25;

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

function token(subject: string): Promise<string> {
  return mintDevToken({ subject, ttlSeconds: 600, secret: SECRET, issuer: devIssuer(policy) });
}

function statusOf(path: string, jwt: string): Promise<number> {
  return fetch(`${base}${path}`, { headers: { authorization: `Bearer ${jwt}` } }).then(
    async (r) => {
      await r.arrayBuffer();
      return r.status;
    },
  );
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-feed-'));
  policy = JSON.parse(readFileSync(join(root, 'demo/policy.json'), 'utf8'));
  delete policy.$schema;
  writeFileSync(join(dir, 'policy.json'), JSON.stringify(policy));
  writeWorkerPair(dir, { name: GUARD, policy: join(dir, 'policy.json') });
  // Seeded before the session starts: no feed to reach yet, so KV alone (and quietly).
  const seeded = spawnSync(
    process.execPath,
    [bin(), ...cliArgs('import', join(root, 'demo/permissions.json'))],
    { cwd: root, encoding: 'utf8', env: cliEnv() },
  );
  expect(seeded.stderr).toBe('');
  expect(seeded.status).toBe(0);

  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  child = await startWranglerDev({
    cwd: dir,
    port,
    args: [
      '-c',
      join(dir, 'wrangler.toml'),
      '-c',
      join(dir, 'wrangler.admin.toml'),
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

describe('revocation through the feed on wrangler dev', () => {
  it('a grant revoked with the CLI is denied within about a second, not the 30 s TTL', async () => {
    const granted = await cliAsync(bin(), cliArgs('grant', 'dora', 'read:stats'), cliEnv()).done;
    expect(granted.stderr).toBe('');
    const jwt = await token('dora');
    expect(await statusOf('/stats', jwt)).toBe(200);
    expect(await statusOf('/stats', jwt)).toBe(200);

    const figure = await pollUntilDenied(
      cliAsync(bin(), cliArgs('revoke', 'dora', 'read:stats'), cliEnv()),
      async () => (await statusOf('/stats', jwt)) === 200,
      { pollMs: POLL_MS, giveUpMs: 40_000 },
    );
    console.log(
      `revocation (workers, wrangler dev, feed on, cache.ttlSeconds 30): denied ` +
        `${Math.round(figure.afterExitMs)} ms after the CLI exited`,
    );

    expect(figure.stderr).toBe('');
    expect(figure.status).toBe(0);
    expect(figure.denied).toBe(true);
    expect(figure.afterExitMs).toBeLessThanOrEqual(BOUND_MS + SLACK_MS);
  });

  it('revoke-sessions signs a subject out on the running guard', async () => {
    const granted = await cliAsync(bin(), cliArgs('grant', 'eve', 'read:stats'), cliEnv()).done;
    expect(granted.status).toBe(0);
    const jwt = await token('eve');
    // A whole second before the sign-out: the token predates it.
    await new Promise((r) => setTimeout(r, 1100));
    expect(await statusOf('/stats', jwt)).toBe(200);

    const figure = await pollUntilDenied(
      cliAsync(bin(), cliArgs('revoke-sessions', 'eve'), cliEnv()),
      async () => (await statusOf('/stats', jwt)) === 200,
      { pollMs: POLL_MS, giveUpMs: 40_000 },
    );

    expect(figure.stderr).toBe('');
    expect(figure.denied).toBe(true);
    expect(await statusOf('/stats', jwt)).toBe(401);
    expect(figure.afterExitMs).toBeLessThanOrEqual(BOUND_MS + SLACK_MS);
  });
});
