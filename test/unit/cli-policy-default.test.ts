/**
 * The CLI's policy follows the user's wrangler configuration: without --policy (or
 * $GATEHOUSE_POLICY) every command reads the file the config's [alias] "gatehouse:policy" names,
 * the one the Worker bundles, and the dev secret from .dev.vars beside that config; only without
 * such an entry does it fall back to the demo. Real files in a temporary directory, real local
 * KV for the management commands.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as jose from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliHarness, cliHarness } from '../support/cli.ts';

const MINE_SECRET = 'mine-dev-secret-0123456789abcdef-0123456789';
const DEMO_SECRET = 'demo-dev-secret-0123456789abcdef-0123456789';

/** A user's own policy: its own dev issuer, secret name, role and route. */
const minePolicy = {
  version: 1,
  issuers: [
    {
      issuer: 'https://mine.example/',
      audiences: ['https://api.mine.example'],
      algorithms: ['HS256'],
      keys: { secretEnv: 'MINE_DEV_SECRET', kid: 'mine' },
    },
  ],
  roles: { auditor: { grants: ['read:ledger'] } },
  routes: [{ method: 'GET', path: '/ledger', require: ['read:ledger'] }],
};

let dir = '';
let app = '';
const config = () => join(app, 'wrangler.toml');

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-cli-policy-'));
  app = join(dir, 'app');
  mkdirSync(join(app, 'policies'), { recursive: true });
  writeFileSync(join(app, 'policies', 'mine.json'), JSON.stringify(minePolicy));
  writeFileSync(
    config(),
    [
      'name = "mine"',
      'main = "worker.ts"',
      'compatibility_date = "2026-11-01"',
      '[alias]',
      '"gatehouse:policy" = "./policies/mine.json"',
      '[[kv_namespaces]]',
      'binding = "PERMISSIONS"',
      'id = "mine-local"',
    ].join('\n'),
  );
  // Where wrangler dev reads it: beside the config, not in the working directory.
  writeFileSync(join(app, '.dev.vars'), `MINE_DEV_SECRET=${MINE_SECRET}\n`);
  writeFileSync(join(dir, 'no-alias.toml'), 'name = "x"\nmain = "w.ts"\n');
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The issuer a minted token names, after checking its signature with `secret`. */
async function issuerOf(token: string, secret: string): Promise<string | undefined> {
  const { payload } = await jose.jwtVerify(token, new TextEncoder().encode(secret));
  return payload.iss;
}

describe('gatehouse token without --policy', () => {
  const cli = cliHarness({ common: [] });

  it("mints for the dev issuer of the policy the config's alias names, with the secret beside it", async () => {
    const result = await cli.run('token', 'alice', '--config', config());
    expect(result.err).toBe('');
    expect(await issuerOf(result.out, MINE_SECRET)).toBe('https://mine.example/');
  });

  it('falls back to the demo policy when the config names none', async () => {
    const demo = cliHarness({ common: [], env: { GATEHOUSE_DEV_SECRET: DEMO_SECRET } });
    const result = await demo.run('token', 'alice', '--config', join(dir, 'no-alias.toml'));
    expect(await issuerOf(result.out, DEMO_SECRET)).toBe('https://dev.gatehouse.local/');
  });

  it('reads the committed wrangler.toml by default (the demo)', async () => {
    const demo = cliHarness({ common: [], env: { GATEHOUSE_DEV_SECRET: DEMO_SECRET } });
    const result = await demo.run('token', 'alice');
    expect(await issuerOf(result.out, DEMO_SECRET)).toBe('https://dev.gatehouse.local/');
  });

  it('--policy still wins over the config', async () => {
    const demo = cliHarness({ common: [], env: { GATEHOUSE_DEV_SECRET: DEMO_SECRET } });
    const result = await demo.run(
      'token',
      'alice',
      '--config',
      config(),
      '--policy',
      new URL('../../demo/policy.json', import.meta.url).pathname,
    );
    expect(await issuerOf(result.out, DEMO_SECRET)).toBe('https://dev.gatehouse.local/');
  });

  it('names the field when the alias is not a path', async () => {
    const bad = join(dir, 'bad.toml');
    writeFileSync(bad, '[alias]\n"gatehouse:policy" = 7\n');
    const result = await cli.run('token', 'alice', '--config', bad);
    expect(result.code).toBe(1);
    expect(result.err).toContain('alias["gatehouse:policy"]');
  });
});

describe('management commands without --policy', () => {
  let cli: CliHarness;
  beforeAll(() => {
    cli = cliHarness({
      common: ['--kv', 'local', '--config', config(), '--persist-to', join(dir, 'state')],
    });
  });

  it('know the roles of the configured policy', async () => {
    const listed = await cli.json<{ policy: { name: string }[] }>('role', 'list');
    expect(listed.policy.map((r) => r.name)).toEqual(['auditor']);
    const assigned = await cli.run('assign', 'dave', 'auditor');
    expect(assigned.err).toBe('');
    expect(assigned.code).toBe(0);
  });

  it('decide with the routes of the configured policy', async () => {
    const check = await cli.run('check', '--subject', 'dave', 'GET', '/ledger');
    expect(check.out).toMatch(/^ALLOW/);
    expect(check.code).toBe(0);
  });
});
