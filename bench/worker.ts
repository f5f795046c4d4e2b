/**
 * Worker figures, measured under workerd (`wrangler dev`, local mode) on loopback:
 *
 * - `worker.guard_throughput_ratio`: requests per second through the guard (valid token, warm
 *   caches, echo origin) over the same echo origin with no guard, with autocannon, rotating
 *   rounds (A B C, B C A, ...) and taking medians. Goal ≥ 0.85.
 * - `worker.throughput_ratio_vs_hono_jwt`: the guard over what a Workers user would put in front
 *   of the same echo origin instead, Hono's own JWT middleware (`hono/jwt`, HS256 with the same
 *   inline secret, issuer and audience checked, no fetch), on the same token, in the same
 *   workerd, in the same rotation. Goal ≥ 0.95. The guard also checks the subject's permissions
 *   (KV, cached); the middleware only verifies the token.
 * - `worker.fresh_throughput_ratio_vs_hono_jwt`: the same two with a new token on every request
 *   (the guard's verified-token cache never hits), alternating. Recorded.
 * - `worker.cold_subject_kv_reads`: KV reads of the user record caused by 100 concurrent first
 *   requests for one subject (a counting KV wrapper in the bench bundle). Goal 1.
 * - `worker.bundle_gzip_kb`: the guard's bundle as `wrangler deploy --dry-run` builds it, gzipped.
 *   Goal ≤ 60. It must hold no admin code (the admin API is its own Worker): the build's esbuild
 *   metafile is checked, and the bench fails if an admin module is among its inputs.
 * - `worker.admin_bundle_gzip_kb`: the admin Worker's bundle (wrangler.admin.toml), the same way.
 *   Recorded, no goal.
 * - `delegation.exchange_ms`: one RFC 8693 token exchange at `<prefix>/v1/token` through the guard
 *   (reporter for alice, scope read:posts: both tokens verified, alice's record read, an Ed25519
 *   signature), sequential requests on loopback, median. Recorded, no goal.
 *
 * Env: BENCH_WORKER_SECONDS (per round, default 5), BENCH_WORKER_ROUNDS (per side, default 3),
 * BENCH_WORKER_CONNECTIONS (default 32).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import * as jose from 'jose';
import { generateIssuerKeySet } from '../src/delegation/keys.ts';
import { seedDemoKv } from '../test/support/worker-pair.ts';
import { startWorkers } from './revocation.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SECONDS = Number(process.env.BENCH_WORKER_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_WORKER_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_WORKER_CONNECTIONS ?? 32);
const SECRET = 'bench-secret-0123456789abcdef-0123456789';
const DELEGATION_KEYS = await generateIssuerKeySet('EdDSA');

const debug = (message: string) => {
  if (process.env.BENCH_DEBUG) process.stderr.write(`bench/worker: ${message}\n`);
};

interface AutocannonResult {
  readonly requests: { readonly average: number };
  readonly non2xx: number;
  readonly errors: number;
}
type Autocannon = (options: {
  url: string;
  connections: number;
  duration: number;
  headers?: Record<string, string>;
  /** Per-request hooks; `setupRequest` may change the request (here: a new token each time). */
  requests?: {
    setupRequest?: (request: { headers?: Record<string, string> }) => unknown;
  }[];
}) => Promise<AutocannonResult>;
// autocannon ships no types; its library API is one function.
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

export interface WorkerBenchRow {
  name: string;
  value: number;
  goal: string;
  ok: boolean | null;
  note: string;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const ADAPTER = join(ROOT, 'src/workers/guard.ts');
// wrangler.toml binds the revocation feed's Durable Object: every entry exports its class, and the
// guard follows the feed as shipped (one read per second), so the throughput figure includes it.
const FEED_CLASS = `export { RevocationFeedObject as RevocationFeed } from '${join(ROOT, 'src/workers/revocation.ts')}';`;
const GUARD_ENTRY = `export { default, RevocationFeed } from '${join(ROOT, 'handlers/worker.ts')}';`;

// The same echo origin, with nothing in front of it: the guard's baseline.
const BASELINE_ENTRY = `
import { echoOrigin } from '${ADAPTER}';
${FEED_CLASS}
export default {
  fetch(request) {
    return echoOrigin(request.method, new URL(request.url), new Headers(request.headers));
  },
};`;

// Hono's JWT middleware in front of the same echo origin: the Workers user's alternative, with
// the guard's demo issuer (HS256, the bench secret inline, issuer and audience checked).
function honoEntry(issuer: string, audience: string): string {
  return `
import { Hono } from '${join(ROOT, 'node_modules/hono/dist/index.js')}';
import { jwt } from '${join(ROOT, 'node_modules/hono/dist/middleware/jwt/index.js')}';
import { echoOrigin } from '${ADAPTER}';
${FEED_CLASS}
const app = new Hono();
// Public, as in the demo policy: the bench's readiness probe.
app.get('/health', (c) => c.text('ok'));
app.use('*', jwt({
  secret: ${JSON.stringify(SECRET)},
  alg: 'HS256',
  verification: { iss: ${JSON.stringify(issuer)}, aud: ${JSON.stringify(audience)} },
}));
app.all('*', (c) => echoOrigin(c.req.method, new URL(c.req.url), new Headers(c.req.raw.headers)));
export default app;`;
}

// The guard with a KV binding that counts reads per key kind (user/, roles/, jwks/).
const COUNTING_ENTRY = `
import policy from 'gatehouse:policy';
${FEED_CLASS}
import { createGatehouseWorker } from '${ADAPTER}';
const reads = {};
const worker = createGatehouseWorker({
  policy,
  wrapKv: (kv) => ({
    get(key, options) {
      const kind = key.slice(0, key.indexOf('/'));
      reads[kind] = (reads[kind] ?? 0) + 1;
      return kv.get(key, options);
    },
    put: (key, value, options) => kv.put(key, value, options),
    delete: (key) => kv.delete(key),
  }),
});
export default {
  fetch(request, env, ctx) {
    if (new URL(request.url).pathname === '/__bench/reads') return Response.json(reads);
    return worker.fetch(request, env, ctx);
  },
};`;

const require = createRequire(import.meta.url);
const wranglerPkg = require.resolve('wrangler/package.json');
const WRANGLER = join(
  wranglerPkg,
  '..',
  JSON.parse(readFileSync(wranglerPkg, 'utf8')).bin.wrangler,
);
const WRANGLER_ENV = { ...process.env, WRANGLER_SEND_METRICS: 'false' };

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

interface Running {
  readonly url: URL;
  stop(): Promise<void>;
}

/**
 * `wrangler dev` on an entry (source text) with wrangler.toml's bindings and policy alias, its
 * own local KV seeded with the demo, and a bench-only secret.
 */
async function start(source: string): Promise<Running> {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-'));
  const entry = join(dir, 'entry.ts');
  writeFileSync(entry, source);
  const persist = join(dir, 'state');
  seedDemoKv({ persistTo: persist });
  debug(`seeded ${persist}`);
  const port = await freePort();
  const child: ChildProcess = spawn(
    process.execPath,
    [
      WRANGLER,
      'dev',
      entry,
      '--config',
      join(ROOT, 'wrangler.toml'),
      '--ip',
      '127.0.0.1',
      '--port',
      String(port),
      '--persist-to',
      persist,
      '--var',
      `GATEHOUSE_DEV_SECRET:${SECRET}`,
      '--var',
      'ORIGIN:echo',
      // The demo delegates: Gatehouse's own signing keys, generated per run (wrangler keeps
      // everything after the first colon as the value).
      '--var',
      `GATEHOUSE_DELEGATION_KEYS:${DELEGATION_KEYS}`,
      '--show-interactive-dev-session=false',
      '--log-level',
      'error',
    ],
    { cwd: ROOT, env: WRANGLER_ENV, stdio: 'ignore', detached: true },
  );
  const url = new URL(`http://127.0.0.1:${port}/`);
  const stop = async () => {
    if (child.pid !== undefined && child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      process.kill(-child.pid, 'SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  debug(`waiting for ${url.href}`);
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error('bench: wrangler dev exited');
    }
    try {
      const probe = await fetch(new URL('/health', url), { signal: AbortSignal.timeout(5000) });
      if (probe.status === 200) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      // Its process group would otherwise outlive the bench.
      await stop();
      throw new Error('bench: wrangler dev did not start');
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { url, stop };
}

function demoIssuer(): { issuer: string; audience: string; kid: string } {
  const policy = JSON.parse(readFileSync(join(ROOT, 'demo/policy.json'), 'utf8'));
  const issuer = policy.issuers[0];
  return { issuer: issuer.issuer, audience: issuer.audiences[0], kid: issuer.keys.kid };
}

async function token(subject: string, jti?: string): Promise<string> {
  const { issuer, audience, kid } = demoIssuer();
  const now = Math.floor(Date.now() / 1000);
  return new jose.SignJWT(jti === undefined ? {} : { jti })
    .setProtectedHeader({ alg: 'HS256', kid, typ: 'JWT' })
    .setIssuer(issuer)
    .setAudience(audience)
    .setSubject(subject)
    .setIssuedAt(now)
    .setExpirationTime(now + 3600)
    .sign(new TextEncoder().encode(SECRET));
}

/** Distinct valid tokens for one subject. */
async function freshTokens(subject: string, count: number): Promise<string[]> {
  const tokens: string[] = [];
  for (let i = 0; i < count; i++) tokens.push(await token(subject, `fresh-${i}`));
  return tokens;
}

interface Throughput {
  /** Guard over the echo origin alone, repeated token. */
  ratio: number;
  guard: number;
  baseline: number;
  /** Guard over Hono's JWT middleware, repeated token. */
  honoRatio: number;
  hono: number;
  /** Guard over Hono's JWT middleware, a new token on every request. */
  freshRatio: number;
  freshGuard: number;
  freshHono: number;
}

/** Enough distinct tokens that the guard's verified-token cache (1000 entries) never hits. */
const FRESH_POOL = 20_000;

async function throughput(): Promise<Throughput> {
  const { issuer, audience } = demoIssuer();
  const started: Running[] = [];
  const launch = async (source: string) => {
    const running = await start(source);
    started.push(running);
    return running;
  };
  try {
    const guard = await launch(GUARD_ENTRY);
    const baseline = await launch(BASELINE_ENTRY);
    const hono = await launch(honoEntry(issuer, audience));
    const repeated = `Bearer ${await token('alice')}`;
    // Cycled through: a token comes back only after FRESH_POOL others, long after the guard's
    // cache (1000 entries) dropped it.
    const pool = (await freshTokens('alice', FRESH_POOL)).map((t) => `Bearer ${t}`);
    let next = 0;
    const run = async (url: URL, duration: number, fresh = false) => {
      const result = await autocannon({
        url: new URL('/posts/1', url).href,
        connections: CONNECTIONS,
        duration,
        headers: { authorization: repeated },
        ...(fresh && {
          requests: [
            {
              setupRequest: (request: { headers?: Record<string, string> }) => {
                request.headers = {
                  ...request.headers,
                  authorization: pool[next++ % pool.length]!,
                };
                return request;
              },
            },
          ],
        }),
      });
      if (result.non2xx > 0 || result.errors > 0) {
        throw new Error(`bench: ${result.non2xx} non-2xx answers, ${result.errors} errors`);
      }
      return result.requests.average;
    };
    // Warm all (JIT, token and permission caches) before measuring.
    const sides = [guard, baseline, hono];
    for (const side of sides) await run(side.url, 1);
    const repeatedRps = sides.map((): number[] => []);
    for (let round = 0; round < ROUNDS; round++) {
      for (let k = 0; k < sides.length; k++) {
        const i = (round + k) % sides.length;
        repeatedRps[i]!.push(await run(sides[i]!.url, SECONDS));
      }
    }
    const freshSides = [guard, hono];
    const freshRps = freshSides.map((): number[] => []);
    for (let round = 0; round < ROUNDS; round++) {
      for (const i of round % 2 === 0 ? [0, 1] : [1, 0]) {
        freshRps[i]!.push(await run(freshSides[i]!.url, SECONDS, true));
      }
    }
    const [g, b, h] = repeatedRps.map(median) as [number, number, number];
    const [fg, fh] = freshRps.map(median) as [number, number];
    return {
      ratio: g / b,
      guard: g,
      baseline: b,
      honoRatio: g / h,
      hono: h,
      freshRatio: fg / fh,
      freshGuard: fg,
      freshHono: fh,
    };
  } finally {
    // Whatever started, even when a later start failed.
    for (const running of started) await running.stop();
  }
}

async function coldSubjectReads(): Promise<{ user: number; roles: number }> {
  const { url, stop } = await start(COUNTING_ENTRY);
  try {
    const headers = { authorization: `Bearer ${await token('bob')}` };
    const responses = await Promise.all(
      Array.from({ length: 100 }, () => fetch(new URL('/posts/1', url), { headers })),
    );
    for (const response of responses) {
      if (response.status !== 200) throw new Error(`bench: cold request got ${response.status}`);
      await response.arrayBuffer();
    }
    const reads = (await (await fetch(new URL('/__bench/reads', url))).json()) as Record<
      string,
      number
    >;
    return { user: reads.user ?? 0, roles: reads.roles ?? 0 };
  } finally {
    await stop();
  }
}

/**
 * Milliseconds per token exchange through the guard's URL (which forwards it to the admin Worker
 * over its ADMIN binding, as deployed): sequential, after a warm-up, median.
 */
export async function exchangeMs(): Promise<number> {
  const { base, stop } = await startWorkers({
    GATEHOUSE_DEV_SECRET: SECRET,
    GATEHOUSE_DELEGATION_KEYS: DELEGATION_KEYS,
  });
  const url = new URL(base);
  try {
    const body = new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: await token('alice'),
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      actor_token: await token('reporter'),
      actor_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      scope: 'read:posts',
    }).toString();
    const once = async () => {
      const started = performance.now();
      const response = await fetch(new URL('/.gatehouse/v1/token', url), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body,
      });
      const answer = (await response.json()) as { access_token?: string; error?: string };
      if (response.status !== 200 || answer.access_token === undefined) {
        throw new Error(`bench: token exchange answered ${response.status} ${answer.error}`);
      }
      return performance.now() - started;
    };
    for (let i = 0; i < 10; i++) await once();
    const times: number[] = [];
    for (let i = 0; i < 100; i++) times.push(await once());
    return median(times);
  } finally {
    await stop();
  }
}

/** Modules of the admin API: the guard's bundle must not hold any (issue 10, "the guard stays small"). */
export const ADMIN_MODULES = [
  'src/admin/',
  'src/http/admin-api.ts',
  'src/workers/admin.ts',
  'src/workers/kv-admin-store.ts',
  'handlers/admin-worker.ts',
];

/**
 * Builds a wrangler configuration as `wrangler deploy --dry-run` does: the gzip -9 size of its
 * output (KB) and the source files esbuild put into it (repository-relative paths).
 */
export function workerBundle(config: string): { kb: number; inputs: string[] } {
  const outdir = mkdtempSync(join(tmpdir(), 'gatehouse-bundle-'));
  try {
    const metafile = join(outdir, 'meta.json');
    const result = spawnSync(
      process.execPath,
      [WRANGLER, 'deploy', '--dry-run', '-c', config, '--outdir', outdir, '--metafile', metafile],
      {
        cwd: ROOT,
        env: WRANGLER_ENV,
        encoding: 'utf8',
      },
    );
    if (result.status !== 0) throw new Error(`wrangler deploy --dry-run failed: ${result.stderr}`);
    let bytes = 0;
    for (const name of readdirSync(outdir)) {
      if (!/\.(m?js|wasm)$/.test(name) || !statSync(join(outdir, name)).isFile()) continue;
      const text = readFileSync(join(outdir, name));
      if (text.includes('yaml.org')) {
        throw new Error(`bench: the ${config} bundle contains a YAML parser`);
      }
      bytes += gzipSync(text, { level: 9 }).length;
    }
    const meta = JSON.parse(readFileSync(metafile, 'utf8')) as { inputs: Record<string, unknown> };
    return { kb: bytes / 1024, inputs: Object.keys(meta.inputs) };
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

/** The guard's bundle size; throws if admin code crept back into it. */
function guardBundleGzipKb(): number {
  const { kb, inputs } = workerBundle('wrangler.toml');
  const admin = inputs.filter((input) => ADMIN_MODULES.some((m) => input.startsWith(m)));
  if (admin.length > 0) {
    throw new Error(`bench: the guard's bundle holds admin code: ${admin.join(', ')}`);
  }
  return kb;
}

export async function benchWorker(): Promise<{
  results: Record<string, number>;
  rows: WorkerBenchRow[];
}> {
  const kb = guardBundleGzipKb();
  const adminKb = workerBundle('wrangler.admin.toml').kb;
  debug(`bundle ${kb.toFixed(1)} KB, admin ${adminKb.toFixed(1)} KB`);
  const reads = await coldSubjectReads();
  debug(`cold reads ${JSON.stringify(reads)}`);
  const tp = await throughput();
  debug(`throughput ${JSON.stringify(tp)}`);
  const exchange = await exchangeMs();
  debug(`exchange ${exchange.toFixed(2)} ms`);
  const round = (n: number, places: number) => Number(n.toFixed(places));
  const results = {
    'worker.guard_throughput_ratio': round(tp.ratio, 3),
    'worker.guard_rps': round(tp.guard, 0),
    'worker.baseline_rps': round(tp.baseline, 0),
    'worker.throughput_ratio_vs_hono_jwt': round(tp.honoRatio, 3),
    'worker.hono_jwt_rps': round(tp.hono, 0),
    'worker.fresh_throughput_ratio_vs_hono_jwt': round(tp.freshRatio, 3),
    'worker.fresh_guard_rps': round(tp.freshGuard, 0),
    'worker.fresh_hono_jwt_rps': round(tp.freshHono, 0),
    'worker.cold_subject_kv_reads': reads.user,
    'worker.bundle_gzip_kb': round(kb, 1),
    'worker.admin_bundle_gzip_kb': round(adminKb, 1),
    'delegation.exchange_ms': round(exchange, 2),
  };
  const rows: WorkerBenchRow[] = [
    {
      name: 'worker.guard_throughput_ratio',
      value: results['worker.guard_throughput_ratio'],
      goal: '≥ 0.85',
      ok: tp.ratio >= 0.85,
      note: `guard ${results['worker.guard_rps']} req/s vs echo alone ${results['worker.baseline_rps']} req/s; workerd (wrangler dev) on loopback, autocannon ${CONNECTIONS} connections, ${ROUNDS}×${SECONDS} s per side alternating, medians`,
    },
    {
      name: 'worker.throughput_ratio_vs_hono_jwt',
      value: results['worker.throughput_ratio_vs_hono_jwt'],
      goal: '≥ 0.95',
      ok: tp.honoRatio >= 0.95,
      note: `guard ${results['worker.guard_rps']} req/s vs hono/jwt alone ${results['worker.hono_jwt_rps']} req/s; same HS256 token and inline secret, same workerd and echo origin, rotating with the row above`,
    },
    {
      name: 'worker.fresh_throughput_ratio_vs_hono_jwt',
      value: results['worker.fresh_throughput_ratio_vs_hono_jwt'],
      goal: 'record',
      ok: null,
      note: `a new token per request: guard ${results['worker.fresh_guard_rps']} req/s vs hono/jwt ${results['worker.fresh_hono_jwt_rps']} req/s, ${ROUNDS}×${SECONDS} s per side alternating`,
    },
    {
      name: 'worker.cold_subject_kv_reads',
      value: reads.user,
      goal: '1',
      ok: reads.user === 1,
      note: `user-record reads for 100 concurrent first requests of one subject (plus ${reads.roles} read of the tenant's role list)`,
    },
    {
      name: 'worker.bundle_gzip_kb',
      value: results['worker.bundle_gzip_kb'],
      goal: '≤ 60',
      ok: kb <= 60,
      note: 'the guard: wrangler deploy --dry-run output, gzip -9; JSON policy only, no YAML parser, no admin code',
    },
    {
      name: 'worker.admin_bundle_gzip_kb',
      value: results['worker.admin_bundle_gzip_kb'],
      goal: 'record',
      ok: true,
      note: 'the admin Worker (wrangler.admin.toml): wrangler deploy --dry-run output, gzip -9',
    },
    {
      name: 'delegation.exchange_ms',
      value: results['delegation.exchange_ms'],
      goal: 'record',
      ok: true,
      note: 'one RFC 8693 token exchange at <prefix>/v1/token through the guard to the admin Worker (two tokens verified, the delegator read, Ed25519 signed); workerd on loopback, 100 sequential requests after 10 warm-up, median',
    },
  ];
  return { results, rows };
}

// `node --import tsx bench/worker.ts` prints the figures alone.
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { rows } = await benchWorker();
  for (const row of rows) console.log(`${row.name} = ${row.value} (goal ${row.goal}) ${row.note}`);
}
