/**
 * `npm start` (scripts/start.mjs) follows the wrangler configuration it is given, in a project
 * directory of its own (config, .dev.vars and local KV state in a temporary directory):
 *
 * - with the demo policy it seeds the demo, and a restart keeps what was changed with the CLI
 *   in between (a revocation and a new grant);
 * - with a policy of the user's own (no /health route, no public route at all) it becomes ready,
 *   seeds nothing, prints no demo lines, and writes the secret that policy's dev issuer names.
 *
 * Real processes on 127.0.0.1: start.mjs with wrangler dev, and the CLI's bin for the changes.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseDotenv } from '../../src/cli/io.ts';
import { devIssuer, mintDevToken } from '../../src/cli/token.ts';
import { freePort, stopProcessGroup } from '../support/processes.ts';

const root = new URL('../../', import.meta.url).pathname;
const env = () => ({ ...process.env, WRANGLER_SEND_METRICS: 'false' });

let dir = '';
let running: ChildProcess | undefined;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-start-'));
});
afterEach(async () => {
  await stopProcessGroup(running);
  running = undefined;
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A project directory: wrangler.toml aliasing `policy`, beside its own state. */
function project(
  name: string,
  policy: string,
  withAdmin = false,
): { config: string; args: string[]; dir: string } {
  const app = join(dir, name);
  mkdirSync(app, { recursive: true });
  const config = join(app, 'wrangler.toml');
  const kv = ['[[kv_namespaces]]', 'binding = "PERMISSIONS"', 'id = "gatehouse-permissions-local"'];
  writeFileSync(
    config,
    [
      `name = "gatehouse-${name}"`,
      `main = ${JSON.stringify(join(root, 'handlers/worker.ts'))}`,
      'compatibility_date = "2026-11-01"',
      '[alias]',
      `"gatehouse:policy" = ${JSON.stringify(policy)}`,
      '[vars]',
      'ORIGIN = "echo"',
      ...kv,
      // The token endpoint is the admin Worker's (issue 10), reached through this binding.
      ...(withAdmin
        ? ['[[services]]', 'binding = "ADMIN"', `service = "gatehouse-${name}-admin"`]
        : []),
    ].join('\n'),
  );
  if (withAdmin) {
    // Beside the guard's configuration, where npm start looks for it by default; it reads the
    // same .dev.vars (the dev secret and the delegation signing keys) from this directory.
    writeFileSync(
      join(app, 'wrangler.admin.toml'),
      [
        `name = "gatehouse-${name}-admin"`,
        `main = ${JSON.stringify(join(root, 'handlers/admin-worker.ts'))}`,
        'compatibility_date = "2026-11-01"',
        '[alias]',
        `"gatehouse:policy" = ${JSON.stringify(policy)}`,
        ...kv,
      ].join('\n'),
    );
  }
  return { config, dir: app, args: ['--config', config, '--persist-to', join(app, 'state')] };
}

/** Runs start.mjs until it says the guard is up; returns its base URL and output so far. */
async function start(args: string[]): Promise<{ base: string; output: string }> {
  const port = await freePort();
  let output = '';
  const child = spawn(process.execPath, ['scripts/start.mjs', ...args], {
    cwd: root,
    env: { ...env(), GATEHOUSE_PORT: String(port) },
    detached: true, // its own process group: wrangler and workerd stop with it
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running = child;
  child.stdout?.on('data', (c: Buffer) => {
    output += c.toString();
  });
  child.stderr?.on('data', (c: Buffer) => {
    output += c.toString();
  });
  const deadline = Date.now() + 100_000;
  while (!output.includes('the guard is up')) {
    if (child.exitCode !== null) throw new Error(`start.mjs exited early:\n${output}`);
    if (Date.now() > deadline) throw new Error(`start.mjs did not become ready:\n${output}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return { base: `http://127.0.0.1:${port}`, output };
}

/** The real CLI in its own process, as a user runs it between two starts. */
function cli(...args: string[]) {
  const result = spawnSync(process.execPath, [join(root, 'bin/gatehouse.mjs'), ...args], {
    cwd: root,
    encoding: 'utf8',
    env: env(),
  });
  expect(result.stderr).toBe('');
  expect(result.status).toBe(0);
  return result.stdout;
}

async function status(url: string, token: string, method = 'GET'): Promise<number> {
  const response = await fetch(url, { method, headers: { authorization: `Bearer ${token}` } });
  await response.arrayBuffer();
  return response.status;
}

describe('npm start with the demo policy', () => {
  const demo = () => project('demo', join(root, 'demo/policy.json'), true);

  it('seeds the demo, and a restart keeps what the CLI changed in between', async () => {
    const { config, args, dir: app } = demo();
    const first = await start(args);
    expect(first.output).toMatch(/seeded local KV .* with alice, bob, carol from demo/);
    expect(first.output).toMatch(
      /curl -i http:\/\/127\.0\.0\.1:\d+\/posts\/1 -H 'Authorization: Bearer ey/,
    );
    const secret = parseDotenv(readFileSync(join(app, '.dev.vars'), 'utf8')).GATEHOUSE_DEV_SECRET!;
    const issuer = devIssuer(JSON.parse(readFileSync(join(root, 'demo/policy.json'), 'utf8')));
    const alice = await mintDevToken({ subject: 'alice', ttlSeconds: 600, secret, issuer });
    expect(await status(`${first.base}/drafts`, alice)).toBe(200);

    // Delegation over real HTTP to workerd: npm start wrote signing keys beside the secret, the
    // token endpoint issues a token for reporter acting for alice, the guard decides with it.
    const keys = parseDotenv(readFileSync(join(app, '.dev.vars'), 'utf8'))
      .GATEHOUSE_DELEGATION_KEYS!;
    expect(Object.keys(JSON.parse(keys)).sort()).toEqual(['current', 'next']);
    expect(first.output).toContain('/.gatehouse/v1/token');
    const reporter = await mintDevToken({ subject: 'reporter', ttlSeconds: 600, secret, issuer });
    const jwt = 'urn:ietf:params:oauth:token-type:jwt';
    const exchanged = await fetch(`${first.base}/.gatehouse/v1/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: alice,
        subject_token_type: jwt,
        actor_token: reporter,
        actor_token_type: jwt,
        scope: 'read:posts',
      }).toString(),
    });
    expect(exchanged.status).toBe(200);
    const { access_token } = (await exchanged.json()) as { access_token: string };
    expect(await status(`${first.base}/posts/1`, access_token)).toBe(200);
    expect(await status(`${first.base}/drafts`, access_token)).toBe(403);
    const jwks = await fetch(`${first.base}/.gatehouse/jwks.json`);
    expect(((await jwks.json()) as { keys: unknown[] }).keys).toHaveLength(2);
    await stopProcessGroup(running);

    // Between two runs, as a user would: no --policy (the config's alias names the demo).
    const target = ['--config', config, '--persist-to', join(app, 'state')];
    cli('revoke', 'alice', 'read:drafts', ...target);
    cli('grant', 'alice', 'write:posts:1', ...target);

    const second = await start(args);
    expect(second.output).not.toMatch(/seeded local KV/);
    expect(second.output).toContain('kept alice, bob, carol');
    expect(parseDotenv(readFileSync(join(app, '.dev.vars'), 'utf8')).GATEHOUSE_DEV_SECRET).toBe(
      secret,
    );
    // The signing keys survive a restart too: live delegation tokens keep verifying.
    expect(
      parseDotenv(readFileSync(join(app, '.dev.vars'), 'utf8')).GATEHOUSE_DELEGATION_KEYS,
    ).toBe(keys);
    expect(await status(`${second.base}/drafts`, alice)).toBe(403);
    expect(await status(`${second.base}/posts/1`, alice, 'PUT')).toBe(200);
  });
});

describe('npm start with a policy of your own', () => {
  it('becomes ready without a /health route, seeds nothing and prints how to go on', async () => {
    const policyFile = join(dir, 'ledger-policy.json');
    writeFileSync(
      policyFile,
      JSON.stringify({
        version: 1,
        issuers: [
          {
            issuer: 'https://ledger.example/',
            audiences: ['https://api.ledger.example'],
            algorithms: ['HS256'],
            keys: { secretEnv: 'LEDGER_DEV_SECRET', kid: 'ledger' },
          },
        ],
        cache: { ttlSeconds: 0, negativeTtlSeconds: 0 },
        roles: { auditor: { grants: ['read:ledger'] } },
        // No public route, no /health: readiness cannot depend on either.
        routes: [{ method: 'GET', path: '/ledger', require: ['read:ledger'] }],
      }),
    );
    const { config, args, dir: app } = project('ledger', policyFile);
    const { base, output } = await start(args);

    expect(output).toContain(`with your policy ${policyFile}`);
    expect(output).toContain(`npx gatehouse token <subject> --ttl 1h --config ${config}`);
    expect(output).not.toMatch(/seeded local KV/);
    expect(output).not.toMatch(/Bearer ey/);
    const vars = parseDotenv(readFileSync(join(app, '.dev.vars'), 'utf8'));
    expect(Object.keys(vars)).toEqual(['LEDGER_DEV_SECRET']);

    const target = ['--config', config, '--persist-to', join(app, 'state')];
    const exported = JSON.parse(cli('export', '--json', ...target)) as Record<string, unknown>;
    expect(exported.users ?? {}).toEqual({});
    expect(exported.user_roles ?? {}).toEqual({});

    // The CLI follows the same config: its token is one this Worker accepts.
    const token = cli('token', 'dave', ...target.slice(0, 2)).trim();
    expect(await status(`${base}/ledger`, token)).toBe(403);
    cli('assign', 'dave', 'auditor', ...target);
    expect(await status(`${base}/ledger`, token)).toBe(200);
  });
});
