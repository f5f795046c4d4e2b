/**
 * Child processes in tests: a free loopback port, `wrangler dev` started and waited for,
 * stopping a detached process group, and an old node to run entry points with.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { isSupported } from '../../scripts/node22.mjs';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

const WRANGLER = resolve(import.meta.dirname, '../../node_modules/wrangler/bin/wrangler.js');

/**
 * `wrangler dev` on 127.0.0.1:`port` with `args` (configurations, persistence, vars) in its own
 * process group (stop it with stopProcessGroup), resolved once `ready` says a response from
 * `readyPath` is the Worker answering; rejects with wrangler's output if it exits or does not
 * answer within 90 s.
 */
export async function startWranglerDev(options: {
  readonly cwd: string;
  readonly port: number;
  readonly args: readonly string[];
  readonly readyPath?: string;
  readonly ready?: (response: Response) => boolean;
}): Promise<ChildProcess> {
  const { cwd, port, args, readyPath = '/health', ready = (r) => r.status === 200 } = options;
  const child = spawn(
    process.execPath,
    [
      WRANGLER,
      'dev',
      ...args,
      '--ip',
      '127.0.0.1',
      '--port',
      String(port),
      '--show-interactive-dev-session=false',
    ],
    {
      cwd,
      env: { ...process.env, WRANGLER_SEND_METRICS: 'false' },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  const collect = (chunk: Buffer) => {
    output += chunk.toString();
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited:\n${output}`);
    if (Date.now() > deadline) {
      await stopProcessGroup(child);
      throw new Error(`wrangler dev did not start:\n${output}`);
    }
    try {
      if (ready(await fetch(`http://127.0.0.1:${port}${readyPath}`))) return child;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** SIGTERM to the whole group (wrangler and its workerd), SIGKILL after 10 s; waits for exit. */
export async function stopProcessGroup(child: ChildProcess | undefined): Promise<void> {
  if (child?.pid === undefined || child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  process.kill(-child.pid, 'SIGTERM');
  const timer = setTimeout(() => {
    if (child.pid !== undefined && child.exitCode === null) process.kill(-child.pid, 'SIGKILL');
  }, 10_000);
  await exited;
  clearTimeout(timer);
}

/**
 * A node older than 22.12, for tests of what happens on such a machine: the machine's own
 * (/usr/bin/node on the project's machines is 20), else Node 20 from the npm registry, installed
 * once into the temporary directory.
 */
export function olderNode(): string {
  const dirs = [
    '/usr/bin',
    '/usr/local/bin',
    '/bin',
    ...(process.env.PATH ?? '').split(delimiter).filter(Boolean),
  ];
  for (const dir of dirs) {
    const bin = join(dir, 'node');
    if (!existsSync(bin)) continue;
    const version = spawnSync(bin, ['-p', 'process.versions.node'], { encoding: 'utf8' });
    if (version.status === 0 && !isSupported(version.stdout.trim())) return bin;
  }
  const prefix = join(tmpdir(), 'gatehouse-test-node20');
  const bin = join(prefix, 'node_modules', 'node', 'bin', 'node');
  if (!existsSync(bin)) {
    const installed = spawnSync('npm', ['install', '--no-save', '--prefix', prefix, 'node@20'], {
      stdio: 'inherit',
    });
    if (installed.status !== 0) throw new Error('could not install node@20 for the test');
  }
  return bin;
}

/**
 * The environment of a plain shell on a machine whose node is `node`: PATH without the Node 22
 * this test runs under (nor the cache it may come from), `node` first.
 */
export function shellWithNode(node: string): NodeJS.ProcessEnv {
  const drop = new Set([dirname(process.execPath)]);
  const path = (process.env.PATH ?? '')
    .split(delimiter)
    .filter((dir) => dir !== '' && !drop.has(dir) && !dir.includes('gatehouse-node'));
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: [dirname(node), ...path].join(delimiter) };
  delete env.GATEHOUSE_NODE22;
  return env;
}
