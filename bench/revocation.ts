/**
 * Revocation figures (issue 14), on the local stacks with the default configuration (permission
 * cache 30 s, feed interval 1 s):
 *
 * - `revocation.workers_p99_ms`: `wrangler dev` running the guard and the admin Worker with the
 *   revocation feed's Durable Object, as `npm start` does. 20 times: a subject is granted
 *   read:stats and its grant cached by the guard; while a client asks every 10 ms, the admin API
 *   (through the guard) revokes it; the figure is from the admin call's answer to the first 403.
 *   Goal ≤ 2000.
 * - `revocation.lambda_p99_ms`: the Lambda handler in-process on dynalite over HTTP; management
 *   through the CLI's code (PermissionAdmin over DynamoDBAdminStore, recording in the table's
 *   feed); the same 20 revocations and the same figure. Goal ≤ 2000.
 * - `revocation.epoch_reads_per_1000`: feed reads per 1,000 requests on one isolate under steady
 *   load (the guard on workerd, autocannon, one subject, 5 s); the isolate counts its own reads.
 *   Goal ≤ 20.
 *
 * The guard's throughput figure (bench/worker.ts) is measured with the feed bound, as shipped.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import dynalite from 'dynalite';
import * as jose from 'jose';
import { FeedRecordingStore } from '../src/admin/feed-store.ts';
import { PermissionAdmin } from '../src/admin/operations.ts';
import type { AuthorizerEvent, SimpleResponse } from '../src/aws/authorizer.ts';
import { DynamoDBAdminStore } from '../src/aws/dynamodb-admin-store.ts';
import {
  createDynamoDBClient,
  createPermissionTable,
  writePermissionData,
} from '../src/aws/dynamodb-store.ts';
import { createLambdaHandler } from '../src/aws/lambda.ts';
import { DynamoDBFeed } from '../src/aws/revocation-feed.ts';
import { TrackedFeed } from '../src/revocation/feed.ts';
import { parsePermissionData } from '../src/stores/permission-data.ts';
import { seedDemoKv, writeWorkerPair } from '../test/support/worker-pair.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const REVOCATIONS = Number(process.env.BENCH_REVOCATIONS ?? 20);
const POLL_MS = 10;
const GIVE_UP_MS = 60_000;
const SECRET = 'bench-revocation-secret-0123456789abcdef';
const LOAD_SECONDS = Number(process.env.BENCH_REVOCATION_LOAD_SECONDS ?? 5);

const require = createRequire(import.meta.url);
const wranglerPkg = require.resolve('wrangler/package.json');
const WRANGLER = join(
  wranglerPkg,
  '..',
  JSON.parse(readFileSync(wranglerPkg, 'utf8')).bin.wrangler,
);
type Autocannon = (options: {
  url: string;
  connections: number;
  duration: number;
  headers?: Record<string, string>;
}) => Promise<{ requests: { total: number }; non2xx: number; errors: number }>;
const autocannon = require('autocannon') as Autocannon;

interface Row {
  name: string;
  value: number;
  goal: string;
  ok: boolean | null;
  note: string;
}

const debug = (message: string) => {
  if (process.env.BENCH_DEBUG) process.stderr.write(`bench/revocation: ${message}\n`);
};

function p99(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)]!;
}

const round = (n: number, d = 1) => Math.round(n * 10 ** d) / 10 ** d;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

const policy = JSON.parse(readFileSync(join(ROOT, 'demo/policy.json'), 'utf8'));
const demoIssuer = policy.issuers[0];

function demoToken(subject: string): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new jose.SignJWT({})
    .setProtectedHeader({ alg: 'HS256', kid: demoIssuer.keys.kid, typ: 'JWT' })
    .setIssuer(demoIssuer.issuer)
    .setAudience(demoIssuer.audiences[0])
    .setSubject(subject)
    .setIssuedAt(now)
    .setExpirationTime(now + 3600)
    .sign(new TextEncoder().encode(SECRET));
}

/** Asks `allowed` every POLL_MS from now until it says no; ms from `since` to that answer. */
async function firstDeny(allowed: () => Promise<boolean>, since: number): Promise<number> {
  for (;;) {
    if (!(await allowed())) return performance.now() - since;
    if (performance.now() - since > GIVE_UP_MS) throw new Error('bench: revocation never seen');
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/**
 * Revokes while a client keeps asking (so the edge keeps answering from its cache up to the
 * change): the figure starts when the management call returns.
 */
async function measure(
  allowed: () => Promise<boolean>,
  revoke: () => Promise<void>,
): Promise<number> {
  let stop = false;
  const traffic = (async () => {
    while (!stop) {
      await allowed();
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  })();
  // A random phase against the edge's once-a-second feed read, so the 20 samples spread over the
  // interval instead of locking onto one point of it.
  await new Promise((r) => setTimeout(r, Math.random() * 1000));
  await revoke();
  const since = performance.now();
  const ms = await firstDeny(allowed, since);
  stop = true;
  await traffic;
  return ms;
}

// The guard with the shipped entry (and the feed's class), plus a bench-only endpoint that
// reports the isolate's feed reads: what `revocation.epoch_reads_per_1000` counts.
const GUARD_ENTRY = `
import policy from 'gatehouse:policy';
import { createGatehouseWorker } from '${join(ROOT, 'src/workers/guard.ts')}';
export { RevocationFeed } from '${join(ROOT, 'handlers/worker.ts')}';
let served = 0;
const worker = createGatehouseWorker({ policy });
export default {
  fetch(request, env, ctx) {
    if (new URL(request.url).pathname === '/__bench/feed') {
      const follower = worker.runtime(env).gatehouse.revocation;
      return Response.json({ served, reads: follower?.stats.reads ?? -1 });
    }
    served++;
    return worker.fetch(request, env, ctx);
  },
};`;

/**
 * The guard (with a bench-only feed endpoint) and the admin Worker under one `wrangler dev`, as
 * `npm start` runs them; `devVars` replace or add lines of their shared .dev.vars (a JSON value
 * single-quoted, as npm start writes the delegation keys).
 */
export async function startWorkers(
  devVars: Readonly<Record<string, string>> = {},
): Promise<{ base: string; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-revoke-'));
  const name = `gatehouse-bench-${process.pid}`;
  writeFileSync(join(dir, 'entry.ts'), GUARD_ENTRY);
  writeWorkerPair(dir, {
    name,
    guardMain: join(dir, 'entry.ts'),
    policy: join(ROOT, 'demo/policy.json'),
    vars: { DECISION_LOG: 'off' },
  });
  // Beside both configurations, so both Workers get the secret (--var reaches the first only).
  const vars = { GATEHOUSE_DEV_SECRET: SECRET, ...devVars };
  writeFileSync(
    join(dir, '.dev.vars'),
    Object.entries(vars)
      .map(([name, value]) => `${name}=${value.startsWith('{') ? `'${value}'` : value}\n`)
      .join(''),
  );
  // The demo data (carol the admin among it), as `npm start` seeds it.
  seedDemoKv({ persistTo: join(dir, 'state'), config: join(dir, 'wrangler.toml') });
  const port = await freePort();
  const child: ChildProcess = spawn(
    process.execPath,
    [
      WRANGLER,
      'dev',
      '-c',
      join(dir, 'wrangler.toml'),
      '-c',
      join(dir, 'wrangler.admin.toml'),
      '--ip',
      '127.0.0.1',
      '--port',
      String(port),
      '--persist-to',
      join(dir, 'state'),
      '--show-interactive-dev-session=false',
      '--log-level',
      'error',
    ],
    {
      cwd: dir,
      env: { ...process.env, WRANGLER_SEND_METRICS: 'false' },
      stdio: 'ignore',
      detached: true,
    },
  );
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error('bench: wrangler dev exited');
    try {
      if ((await fetch(`${base}/health`, { signal: AbortSignal.timeout(5000) })).status === 200) {
        break;
      }
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error('bench: wrangler dev did not start');
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    base,
    async stop() {
      if (child.pid !== undefined && child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        process.kill(-child.pid, 'SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function workersFigures(): Promise<{
  p99: number;
  max: number;
  readsPer1000: number;
  rps: number;
}> {
  const stack = await startWorkers();
  try {
    const admin = `${stack.base}/.gatehouse/v1/admin`;
    // The demo's carol holds the admin role (grants *): she makes the changes.
    const carol = `Bearer ${await demoToken('carol')}`;
    const call = async (method: string, path: string, body?: unknown) => {
      const response = await fetch(`${admin}${path}`, {
        method,
        headers: {
          authorization: carol,
          ...(body !== undefined && { 'content-type': 'application/json' }),
        },
        ...(body !== undefined && { body: JSON.stringify(body) }),
      });
      await response.arrayBuffer();
      if (response.status >= 300)
        throw new Error(`bench: admin ${method} ${path}: ${response.status}`);
    };
    const samples: number[] = [];
    for (let i = 0; i < REVOCATIONS; i++) {
      const subject = `bench-${i}`;
      await call('POST', `/users/${subject}/grants`, { permission: 'read:stats' });
      const jwt = `Bearer ${await demoToken(subject)}`;
      const allowed = async () => {
        const r = await fetch(`${stack.base}/stats`, { headers: { authorization: jwt } });
        await r.arrayBuffer();
        return r.status === 200;
      };
      // Cached by the guard before the revocation.
      for (let tries = 0; !(await allowed()); tries++) {
        if (tries > 500) throw new Error('bench: grant never seen');
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
      samples.push(
        await measure(allowed, () => call('DELETE', `/users/${subject}/grants/read:stats`)),
      );
      debug(`workers revocation ${i}: ${samples.at(-1)!.toFixed(0)} ms`);
    }

    // Steady load on one isolate: one subject, autocannon, the isolate's own read counter.
    await call('POST', '/users/steady/grants', { permission: 'read:stats' });
    const steady = await demoToken('steady');
    const before = (await (await fetch(`${stack.base}/__bench/feed`)).json()) as {
      served: number;
      reads: number;
    };
    const load = await autocannon({
      url: `${stack.base}/stats`,
      connections: 8,
      duration: LOAD_SECONDS,
      headers: { authorization: `Bearer ${steady}` },
    });
    const after = (await (await fetch(`${stack.base}/__bench/feed`)).json()) as {
      served: number;
      reads: number;
    };
    const served = after.served - before.served;
    const reads = after.reads - before.reads;
    if (served === 0 || load.errors > 0) throw new Error('bench: steady load failed');
    return {
      p99: p99(samples),
      max: Math.max(...samples),
      readsPer1000: (reads * 1000) / served,
      rps: served / LOAD_SECONDS,
    };
  } finally {
    await stack.stop();
  }
}

async function lambdaFigures(): Promise<{ p99: number; max: number }> {
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const client = createDynamoDBClient({
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    region: 'eu-west-1',
    credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' },
  });
  try {
    const table = 'bench-revocation';
    await createPermissionTable(client, table);
    await writePermissionData(
      client,
      table,
      parsePermissionData(readFileSync(join(ROOT, 'demo/permissions.json'), 'utf8')),
    );
    const feed = new TrackedFeed(new DynamoDBFeed({ client, tableName: table }));
    const admin = new PermissionAdmin({
      store: new FeedRecordingStore(new DynamoDBAdminStore({ client, tableName: table }), feed),
      policyRoles: [],
      actor: 'bench',
      via: 'cli',
      feed,
    });
    const handler = createLambdaHandler({
      policy,
      env: { TABLE_NAME: table, GATEHOUSE_DEV_SECRET: SECRET },
      client,
      log: () => {},
    });
    const samples: number[] = [];
    for (let i = 0; i < REVOCATIONS; i++) {
      const subject = `bench-${i}`;
      await admin.grant({ subject }, { permission: 'read:stats' });
      const jwt = await demoToken(subject);
      const event = {
        version: '2.0',
        type: 'REQUEST',
        routeArn: 'arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/$default/GET/stats',
        identitySource: [`Bearer ${jwt}`],
        routeKey: '$default',
        rawPath: '/stats',
        rawQueryString: '',
        headers: { authorization: `Bearer ${jwt}` },
        requestContext: {
          http: { method: 'GET', path: '/stats', sourceIp: '203.0.113.9' },
          stage: '$default',
        },
      } as unknown as AuthorizerEvent;
      const allowed = async () => ((await handler(event)) as SimpleResponse).isAuthorized;
      for (let tries = 0; !(await allowed()); tries++) {
        if (tries > 500) throw new Error('bench: grant never seen');
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
      samples.push(
        await measure(allowed, async () => {
          await admin.revoke({ subject }, 'read:stats');
        }),
      );
      debug(`lambda revocation ${i}: ${samples.at(-1)!.toFixed(0)} ms`);
    }
    return { p99: p99(samples), max: Math.max(...samples) };
  } finally {
    client.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  }
}

export async function benchRevocation(): Promise<{ results: Record<string, number>; rows: Row[] }> {
  const lambda = await lambdaFigures();
  debug(`lambda ${JSON.stringify(lambda)}`);
  const workers = await workersFigures();
  debug(`workers ${JSON.stringify(workers)}`);
  const results = {
    'revocation.workers_p99_ms': round(workers.p99, 0),
    'revocation.lambda_p99_ms': round(lambda.p99, 0),
    'revocation.epoch_reads_per_1000': round(workers.readsPer1000, 2),
  };
  const rows: Row[] = [
    {
      name: 'revocation.workers_p99_ms',
      value: results['revocation.workers_p99_ms'],
      goal: '≤ 2000',
      ok: workers.p99 <= 2000,
      note: `${REVOCATIONS} revocations through the admin API on wrangler dev (guard + admin Worker + the feed's Durable Object), permission cache 30 s, feed interval 1 s: admin answer → first 403 while a client asks every ${POLL_MS} ms`,
    },
    {
      name: 'revocation.lambda_p99_ms',
      value: results['revocation.lambda_p99_ms'],
      goal: '≤ 2000',
      ok: lambda.p99 <= 2000,
      note: `${REVOCATIONS} revocations with the CLI's code on dynalite, the Lambda handler in-process (cache 30 s, feed 1 s): revoke returned → first deny; API Gateway's own authorizer cache not included (docs/aws.md)`,
    },
    {
      name: 'revocation.epoch_reads_per_1000',
      value: results['revocation.epoch_reads_per_1000'],
      goal: '≤ 20',
      ok: workers.readsPer1000 <= 20,
      note: `feed reads per 1,000 requests on one guard isolate at ${Math.round(workers.rps)} req/s (autocannon, 8 connections, ${LOAD_SECONDS} s); one read per second whatever the load, none while idle`,
    },
  ];
  return { results, rows };
}

// `node --import tsx bench/revocation.ts` prints the figures alone.
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { rows } = await benchRevocation();
  for (const row of rows) console.log(`${row.name} = ${row.value} (goal ${row.goal}) ${row.note}`);
}
