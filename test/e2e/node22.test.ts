/**
 * The entry points on a machine whose node is older than 22.12 (scripts/node22.mjs): they run
 * under Node 22 without the user installing it, and when Node 22 cannot be had they stop before
 * writing anything. Runs the real scripts with a real older node (olderNode) and a shell PATH
 * without the Node 22 this suite runs under.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSupported } from '../../scripts/node22.mjs';
import { freePort, olderNode, shellWithNode } from '../support/processes.ts';

const root = new URL('../../', import.meta.url).pathname;
let old = '';
let dir = '';

beforeAll(() => {
  old = olderNode();
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-node22-'));
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const run = (args: string[], env: NodeJS.ProcessEnv = shellWithNode(old)) =>
  spawnSync(old, args, { cwd: root, env, encoding: 'utf8', timeout: 180_000 });

describe('on a node older than 22.12', () => {
  it('the machine node is really older (the premise of these tests)', () => {
    const version = run(['-p', 'process.versions.node']).stdout.trim();
    expect(isSupported(version)).toBe(false);
  });

  it('scripts/node22.mjs runs node, and the tools a command starts, under Node 22.12+', () => {
    const direct = run(['scripts/node22.mjs', 'node', '-p', 'process.versions.node']);
    expect(direct.status).toBe(0);
    expect(isSupported(direct.stdout.trim())).toBe(true);
    // A nested `node` (as npm scripts and tools start one) finds the same Node 22 on PATH.
    const nested = run(['scripts/node22.mjs', 'sh', '-c', 'node -p process.versions.node']);
    expect(isSupported(nested.stdout.trim())).toBe(true);
  });

  it('passes the exit status through', () => {
    expect(run(['scripts/node22.mjs', 'node', '-e', 'process.exit(7)']).status).toBe(7);
  });

  it('npx gatehouse (bin/gatehouse.mjs) answers with nothing but its own output on stdout', () => {
    const result = run(['bin/gatehouse.mjs', 'token', 'alice', '--ttl', '5m'], {
      ...shellWithNode(old),
      GATEHOUSE_DEV_SECRET: 'node22-test-secret-0123456789abcdef-0123',
    });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^ey[\w-]+\.[\w-]+\.[\w-]+\n$/);
  });

  it('npm start writes nothing (.dev.vars, local KV) when Node 22 cannot be installed', async () => {
    const app = join(dir, 'app');
    rmSync(app, { recursive: true, force: true });
    mkdirSync(app);
    writeFileSync(
      join(app, 'wrangler.toml'),
      [
        'name = "node22-test"',
        `main = ${JSON.stringify(join(root, 'handlers/worker.ts'))}`,
        'compatibility_date = "2026-11-01"',
        '[alias]',
        `"gatehouse:policy" = ${JSON.stringify(join(root, 'demo/policy.json'))}`,
        '[[kv_namespaces]]',
        'binding = "PERMISSIONS"',
        'id = "node22-test"',
      ].join('\n'),
    );
    // An empty cache and a registry that refuses connections: the install must fail.
    const refused = await freePort();
    const result = run(
      [
        'scripts/start.mjs',
        '--config',
        join(app, 'wrangler.toml'),
        '--persist-to',
        join(app, 'state'),
      ],
      {
        ...shellWithNode(old),
        GATEHOUSE_NODE_CACHE: join(dir, 'empty-cache'),
        GATEHOUSE_PORT: String(await freePort()),
        npm_config_registry: `http://127.0.0.1:${refused}/`,
        npm_config_cache: join(dir, 'npm-cache'),
        npm_config_fetch_retries: '0',
        npm_config_offline: 'false',
      },
    );
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('Node.js 22.12.0 or newer is needed');
    expect(result.stderr).toContain('could not install Node 22');
    expect(readdirSync(app)).toEqual(['wrangler.toml']);
    expect(existsSync(join(dir, 'empty-cache', 'node_modules'))).toBe(false);
  });
});
