/**
 * `npm run bench`: Gatehouse against its baselines, side by side in one run on the same tokens and
 * keys. Writes BENCHMARKS.md (machine, date, Node version, ratios against goals) and
 * bench/results.json (flat keys to numbers).
 *
 * Method: every comparison alternates the two contenders round by round (A B, B A, ...) over the
 * same slice of tokens, so drift (JIT warm-up, frequency scaling, the other core) hits both alike;
 * the figure is the ratio of the medians of per-operation times across rounds.
 */
import { execFileSync } from 'node:child_process';
import { createPublicKey, verify as cryptoVerify } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { JwtRsaVerifier, JwtVerifier } from 'aws-jwt-verify';
import * as jose from 'jose';
import {
  actClaim,
  createSigner,
  generateIssuerKeySet,
  parseIssuerKeys,
} from '../src/delegation/index.ts';
import { GatehouseEvents } from '../src/events/index.ts';
import { compilePermissions, compileRoles } from '../src/permissions/index.ts';
import { compilePolicy, Gatehouse } from '../src/policy/index.ts';
import { MemoryStore } from '../src/stores/index.ts';
import type { Grant, RoleRecord } from '../src/types.ts';
import { FIGURE_DOCS, formatFigure, syncFigures } from './doc-figures.ts';
import { benchLambda } from './lambda.ts';
import { benchRevocation } from './revocation.ts';
import { benchWorker } from './worker.ts';

const ISSUER = 'https://id.bench.example/';
const AUDIENCE = 'https://api.bench.example';
const ALGS = ['RS256', 'ES256', 'EdDSA'] as const;
type Alg = (typeof ALGS)[number];

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 30);
const BATCH = Number(process.env.BENCH_BATCH ?? 200);
/**
 * BENCH_ONLY=core,worker,lambda,revocation runs those sections only (default all). A partial run prints its
 * figures and writes nothing: BENCHMARKS.md and the docs always come from a full run.
 */
const SECTIONS = ['core', 'worker', 'lambda', 'revocation'];
const ONLY = new Set((process.env.BENCH_ONLY ?? SECTIONS.join(',')).split(','));
const FULL = SECTIONS.every((section) => ONLY.has(section));

const results: Record<string, number> = {};
const lines: string[] = [];

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Per-operation microseconds of `fn` over `items`, awaited one by one (as requests are). */
async function timeEach<T>(
  items: readonly T[],
  fn: (item: T) => Promise<unknown>,
): Promise<number> {
  const start = performance.now();
  for (const item of items) await fn(item);
  return ((performance.now() - start) * 1000) / items.length;
}

/**
 * Runs every contender over the same slices, rotating who goes first each round (A B C, B C A,
 * ...), so drift hits all alike; returns the median µs/op of each, in order.
 */
async function rotate<T>(
  slices: readonly (readonly T[])[],
  contenders: readonly ((item: T) => Promise<unknown>)[],
): Promise<number[]> {
  const times = contenders.map((): number[] => []);
  for (let r = 0; r < slices.length; r++) {
    for (let k = 0; k < contenders.length; k++) {
      const i = (r + k) % contenders.length;
      times[i]!.push(await timeEach(slices[r]!, contenders[i]!));
    }
  }
  return times.map(median);
}

/** Alternates two contenders over the same slices; returns median µs/op for each. */
async function sideBySide<T>(
  slices: readonly (readonly T[])[],
  a: (item: T) => Promise<unknown>,
  b: (item: T) => Promise<unknown>,
): Promise<{ a: number; b: number }> {
  const ta: number[] = [];
  const tb: number[] = [];
  for (let r = 0; r < slices.length; r++) {
    const slice = slices[r]!;
    if (r % 2 === 0) {
      ta.push(await timeEach(slice, a));
      tb.push(await timeEach(slice, b));
    } else {
      tb.push(await timeEach(slice, b));
      ta.push(await timeEach(slice, a));
    }
  }
  return { a: median(ta), b: median(tb) };
}

type CryptoKey = Awaited<ReturnType<typeof jose.generateKeyPair>>['privateKey'];

interface KeyMaterial {
  alg: Alg;
  kid: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  jwk: jose.JWK;
}

async function makeKey(alg: Alg): Promise<KeyMaterial> {
  const { privateKey, publicKey } = await jose.generateKeyPair(alg, { extractable: true });
  const kid = `bench-${alg.toLowerCase()}`;
  const jwk = { ...(await jose.exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { alg, kid, privateKey, publicKey, jwk };
}

async function mint(key: KeyMaterial, n: number, offset: number): Promise<string[]> {
  const now = Math.floor(Date.now() / 1000);
  const tokens: string[] = [];
  for (let i = 0; i < n; i++) {
    tokens.push(
      await new jose.SignJWT({ scope: 'openid profile', jti: `t${offset + i}` })
        .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setSubject('alice')
        .setIssuedAt(now)
        .setExpirationTime(now + 3600)
        .sign(key.privateKey),
    );
  }
  return tokens;
}

function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

async function main(): Promise<void> {
  const keys = await Promise.all(ALGS.map(makeKey));
  const policy = compilePolicy({
    version: 1,
    issuers: [
      {
        issuer: ISSUER,
        audiences: [AUDIENCE],
        algorithms: [...ALGS],
        keys: { jwks: { keys: keys.map((k) => k.jwk) } },
      },
    ],
    roles: { reader: { grants: ['read:posts'] } },
    routes: [{ method: 'GET', path: '/posts/:id', require: ['read:posts'] }],
  });
  const store = new MemoryStore();
  store.putUser({ subject: 'alice', roles: [{ role: 'reader' }], grants: [], denies: [] });
  const gatehouse = new Gatehouse({ policy, store });
  const decide = (token: string) =>
    gatehouse.decide({ method: 'GET', path: '/posts/42', authorization: `Bearer ${token}` });
  const joseVerify = (key: KeyMaterial) => (token: string) =>
    jose.jwtVerify(token, key.publicKey, {
      issuer: ISSUER,
      audience: AUDIENCE,
      algorithms: [key.alg],
    });

  const awsVerifier = JwtVerifier.create({
    issuer: ISSUER,
    audience: AUDIENCE,
    jwksUri: `${ISSUER}jwks.json`,
  });
  awsVerifier.cacheJwks({ keys: keys.map((k) => k.jwk) as never });
  const awsVerify = (token: string) => awsVerifier.verify(token);
  const bareVerify = (key: KeyMaterial) => {
    const publicKey = createPublicKey({ key: key.jwk as never, format: 'jwk' });
    return async (token: string) => {
      const dot = token.lastIndexOf('.');
      const ok = cryptoVerify(
        'sha256',
        Buffer.from(token.slice(0, dot)),
        publicKey,
        Buffer.from(token.slice(dot + 1), 'base64url'),
      );
      if (!ok) throw new Error('bench: bare verify refused a valid token');
    };
  };
  // Warm up every path (JIT, permission cache) on tokens outside the measured ones: long enough
  // for V8 to finish tiering up, which with 400 calls it had not (the first rotation then ran
  // ~60% slower than the same contenders measured later in the run).
  for (const key of ONLY.has('core') ? keys : []) {
    const warm = await mint(key, 3000, 1_000_000);
    const first = await decide(warm[0]!);
    if (!first.allow) throw new Error(`bench setup: expected allow, got ${first.reason}`);
    await timeEach(warm.slice(1, 1500), decide);
    await timeEach(warm.slice(1500), joseVerify(key));
    if (key.alg !== 'EdDSA') await timeEach(warm.slice(1500), awsVerify);
    if (key.alg === 'RS256') await timeEach(warm.slice(1500), bareVerify(key));
  }

  // Fresh tokens: a full decision for a never-seen token against what a team would otherwise run
  // for the same token: aws-jwt-verify (RS256, ES256; it verifies with node:crypto) and, for
  // RS256, a bare node:crypto verify of the signature alone (the floor), rotating on the same
  // tokens. jose (a record) runs against the decision on tokens of its own: its WebCrypto jobs
  // on Node's thread pool slow whatever runs next in the same rotation, which would tilt the
  // other figures.
  const table: string[] = [];
  for (const key of ONLY.has('core') ? keys : []) {
    const contenders: ((token: string) => Promise<unknown>)[] = [decide];
    if (key.alg === 'RS256' || key.alg === 'ES256') contenders.push(awsVerify);
    if (key.alg === 'RS256') contenders.push(bareVerify(key));
    let aws: number | undefined;
    let bare: number | undefined;
    let ours: number;
    if (contenders.length > 1) {
      const tokens = await mint(key, ROUNDS * BATCH, 0);
      [ours, aws, bare] = (await rotate(chunk(tokens, BATCH), contenders)) as [
        number,
        number | undefined,
        number | undefined,
      ];
    }
    const joseTokens = await mint(key, ROUNDS * BATCH, 4_000_000);
    const versus = await sideBySide(chunk(joseTokens, BATCH), decide, joseVerify(key));
    ours ??= versus.a;
    const jose = versus.b;
    const figure = `fresh.${key.alg}`;
    results[`${figure}.gatehouse_us`] = round(ours);
    results[`${figure}.jose_us`] = round(jose);
    results[`${figure}.ratio_vs_jose`] = round(versus.a / jose, 3);
    table.push(
      row(
        `${figure}.ratio_vs_jose`,
        versus.a / jose,
        'record',
        null,
        `${formatFigure(versus.a)} µs vs jose ${formatFigure(jose)} µs`,
      ),
    );
    if (aws !== undefined) {
      const ratio = ours / aws;
      results[`${figure}.aws_jwt_verify_us`] = round(aws);
      results[`${figure}.ratio_vs_aws_jwt_verify`] = round(ratio, 3);
      table.push(
        row(
          `${figure}.ratio_vs_aws_jwt_verify`,
          ratio,
          '≤ 1.0',
          ratio <= 1.0,
          `full decision ${formatFigure(ours)} µs vs aws-jwt-verify ${formatFigure(aws)} µs (JwtVerifier, cached JWKS, same token)`,
        ),
      );
    }
    if (bare !== undefined) {
      const ratio = ours / bare;
      results[`${figure}.node_crypto_us`] = round(bare);
      results[`${figure}.ratio_vs_node_crypto`] = round(ratio, 3);
      table.push(
        row(
          `${figure}.ratio_vs_node_crypto`,
          ratio,
          '≤ 1.3',
          ratio <= 1.3,
          `full decision ${formatFigure(ours)} µs vs a bare crypto.verify of the signature ${formatFigure(bare)} µs (KeyObject imported once)`,
        ),
      );
    }
  }

  // Repeated token: bare jose every time vs a decision whose token is cached.
  if (ONLY.has('core')) {
    const key = keys[0]!;
    const [token] = await mint(key, 1, 2_000_000);
    // Twice: the verified-token cache admits a token on its second use.
    await decide(token!);
    await decide(token!);
    const repeated = Array.from({ length: ROUNDS }, () =>
      Array.from({ length: BATCH * 4 }, () => token!),
    );
    const { a, b } = await sideBySide(repeated, joseVerify(key), decide);
    const speedup = a / b;
    results['repeat.gatehouse_us'] = round(b);
    results['repeat.jose_us'] = round(a);
    results['repeat.speedup_vs_jose'] = round(speedup, 1);
    table.push(
      row(
        'repeat.speedup_vs_jose',
        speedup,
        '≥ 20',
        speedup >= 20,
        `jose ${formatFigure(a)} µs vs ${formatFigure(b)} µs (RS256)`,
      ),
    );
  }

  // Delegation: the same repeated decision with a delegation token (reporter for alice) over the
  // delegator's own token, side by side on one Gatehouse. Both tokens are cached after the
  // warm-up decisions, so the figure is what the use-time rule (scope and ceiling) adds.
  if (ONLY.has('core')) {
    const ratio = await benchDelegationRatio(keys[0]!);
    results['delegation.decision_ratio_vs_direct'] = round(ratio.ratio, 3);
    results['delegation.decision_us'] = round(ratio.delegated, 3);
    results['delegation.direct_us'] = round(ratio.direct, 3);
    table.push(
      row(
        'delegation.decision_ratio_vs_direct',
        ratio.ratio,
        '≤ 1.2',
        ratio.ratio <= 1.2,
        `${formatFigure(ratio.delegated)} µs vs own token ${formatFigure(ratio.direct)} µs`,
      ),
    );
  }

  // Signed events: verify + re-check of one event (its verification cached after the first, as a
  // redelivered or repeatedly checked event is) over a decision for a repeated bearer token, side
  // by side on one Gatehouse; and signing in process (the permission decided now, then the JWS).
  {
    const events = await benchEvents(keys[0]!);
    results['events.verify_ratio_vs_decision'] = round(events.ratio, 3);
    results['events.verify_us'] = round(events.verify, 3);
    results['events.decision_us'] = round(events.decision, 3);
    results['events.sign_us'] = round(events.sign, 2);
    table.push(
      row(
        'events.verify_ratio_vs_decision',
        events.ratio,
        '≤ 2',
        events.ratio <= 2,
        `${formatFigure(events.verify)} µs vs a repeated-token decision ${formatFigure(events.decision)} µs`,
      ),
    );
    table.push(
      row('events.sign_us', events.sign, 'record', true, 'in process: check now, then EdDSA sign'),
    );
    table.push(
      row('events.verify_us', events.verify, 'record', true, 'verify (cached) + re-check, warm'),
    );
  }

  // One permission check: 200 grants, 10 roles, wildcards included.
  if (ONLY.has('core')) {
    const checkUs = benchCheck();
    results['check.median_us'] = round(checkUs, 3);
    table.push(
      row('check.median_us', checkUs, '≤ 2', checkUs <= 2, '200 grants, 10 roles, wildcards'),
    );
  }

  // Baselines for the record: RS256 verification in jose and aws-jwt-verify, fresh tokens.
  if (ONLY.has('core')) {
    const key = keys[0]!;
    const tokens = await mint(key, ROUNDS * BATCH, 3_000_000);
    const aws = JwtRsaVerifier.create({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwksUri: `${ISSUER}jwks.json`,
    });
    aws.cacheJwks({ keys: [key.jwk as never] });
    await aws.verify(tokens[0]!);
    const { a, b } = await sideBySide(chunk(tokens, BATCH), (t) => aws.verify(t), joseVerify(key));
    results['baseline.aws_jwt_verify.rs256_us'] = round(a);
    results['baseline.jose.rs256_us'] = round(b);
    table.push(
      row(
        'baseline.aws_jwt_verify.rs256_us',
        a,
        'record',
        true,
        'aws-jwt-verify, fresh RS256 token',
      ),
    );
    table.push(
      row('baseline.jose.rs256_us', b, 'record', true, 'jose.jwtVerify, fresh RS256 token'),
    );
  }

  if (ONLY.has('core')) lines.push('## Core (Node)', '', ...TABLE_HEAD, ...table, '');

  // The edges, each measured side by side against its own baseline (see bench/worker.ts and
  // bench/lambda.ts for the method).
  for (const [section, title, run] of [
    ['worker', 'Cloudflare Workers edge (workerd on loopback)', benchWorker],
    ['lambda', 'AWS edge (Lambda handler, dynalite over HTTP)', benchLambda],
    ['revocation', 'Revocation (local stacks, default configuration)', benchRevocation],
  ] as const) {
    if (!ONLY.has(section)) continue;
    const edge = await run();
    Object.assign(results, edge.results);
    lines.push(`## ${title}`, '', ...TABLE_HEAD);
    for (const r of edge.rows) lines.push(row(r.name, r.value, r.goal, r.ok, r.note));
    lines.push('');
  }
  writeReport();
}

const TABLE_HEAD = ['| figure | value | goal | met | notes |', '|---|---|---|---|---|'];

/** The bench issuer with one key, as every policy here names it. */
function benchIssuer(key: KeyMaterial) {
  return {
    issuer: ISSUER,
    audiences: [AUDIENCE],
    algorithms: [key.alg],
    keys: { jwks: { keys: [key.jwk] } },
  };
}

/**
 * A repeated delegated decision over the same decision with the delegator's own token: one
 * Gatehouse with a delegation section, alice's token and a delegation token for her (actor
 * reporter, scope read:*), both warm in the token and permission caches.
 */
async function benchDelegationRatio(
  key: KeyMaterial,
): Promise<{ ratio: number; delegated: number; direct: number }> {
  const keySet = await generateIssuerKeySet('EdDSA');
  const policy = compilePolicy(
    {
      version: 1,
      issuers: [benchIssuer(key)],
      roles: { reader: { grants: ['read:posts'] } },
      routes: [{ method: 'GET', path: '/posts/:id', require: ['read:posts'] }],
      delegation: {
        issuer: 'https://gatehouse.bench.example/delegation',
        actors: [{ subject: 'reporter', for: ['*'], ceiling: ['read:*'] }],
      },
    },
    { env: { GATEHOUSE_DELEGATION_KEYS: keySet } },
  );
  const store = new MemoryStore();
  store.putUser({ subject: 'alice', roles: [{ role: 'reader' }], grants: [], denies: [] });
  const gatehouse = new Gatehouse({ policy, store });
  const now = Math.floor(Date.now() / 1000);
  const delegated = await createSigner(parseIssuerKeys(keySet, 'bench')).sign({
    iss: 'https://gatehouse.bench.example/delegation',
    sub: 'alice',
    aud: 'https://gatehouse.bench.example/delegation',
    iat: now,
    nbf: now,
    exp: now + 900,
    jti: 'bench-delegation',
    scope: 'read:*',
    act: actClaim([{ subject: 'reporter', issuer: ISSUER }]),
    subject_iat: now,
    actor_iats: [now],
    parents: [],
  });
  const [own] = await mint(key, 1, 4_000_000);
  const decide = (token: string) =>
    gatehouse.decide({ method: 'GET', path: '/posts/42', authorization: `Bearer ${token}` });
  for (const token of [delegated, own!]) {
    const first = await decide(token);
    if (!first.allow) throw new Error(`bench setup: expected allow, got ${first.reason}`);
  }
  const pairs = Array.from({ length: ROUNDS }, () => Array.from({ length: BATCH * 4 }, () => 0));
  const { a, b } = await sideBySide(
    pairs,
    () => decide(delegated),
    () => decide(own!),
  );
  return { ratio: a / b, delegated: a, direct: b };
}

/**
 * Signed events on one Gatehouse (alice may write:reports): `events.verify` of one event against
 * `decide` with alice's repeated bearer token, alternated round by round, both warm; and the
 * in-process sign (a cached check, then an EdDSA signature) timed over fresh events.
 */
async function benchEvents(
  key: KeyMaterial,
): Promise<{ ratio: number; verify: number; decision: number; sign: number }> {
  const keySet = await generateIssuerKeySet('EdDSA');
  const policy = compilePolicy(
    {
      version: 1,
      issuers: [benchIssuer(key)],
      roles: { writer: { grants: ['write:reports'] } },
      routes: [{ method: 'POST', path: '/reports', require: ['write:reports'] }],
      delegation: { issuer: 'https://gatehouse.bench.example/delegation' },
      events: {},
    },
    { env: { GATEHOUSE_DELEGATION_KEYS: keySet } },
  );
  const store = new MemoryStore();
  store.putUser({ subject: 'alice', roles: [{ role: 'writer' }], grants: [], denies: [] });
  const gatehouse = new Gatehouse({ policy, store });
  // The audit line per signed event goes nowhere here: a console line per iteration would
  // measure the terminal, not signing.
  const events = new GatehouseEvents(gatehouse, { audit: () => {} });
  const [own] = await mint(key, 1, 5_000_000);
  const decide = () =>
    gatehouse.decide({ method: 'POST', path: '/reports', authorization: `Bearer ${own!}` });
  const first = await decide();
  if (!first.allow) throw new Error(`bench setup: expected allow, got ${first.reason}`);
  const request = {
    type: 'com.example.report.requested',
    data: { report: 42 },
    permission: 'write:reports',
  };
  const signed = await events.sign(first.principal!, request);
  if (!signed.ok) throw new Error('bench setup: the event was not signed');
  const checked = await events.verify(signed.event);
  if (!checked.allow) throw new Error(`bench setup: expected allow, got ${checked.reason}`);
  const pairs = Array.from({ length: ROUNDS }, () => Array.from({ length: BATCH * 4 }, () => 0));
  const { a, b } = await sideBySide(
    pairs,
    () => events.verify(signed.event),
    () => decide(),
  );
  const principal = first.principal!;
  const signs = chunk(
    Array.from({ length: ROUNDS * BATCH }, () => 0),
    BATCH,
  );
  const times: number[] = [];
  for (const slice of signs)
    times.push(await timeEach(slice, () => events.sign(principal, request)));
  return { ratio: a / b, verify: a, decision: b, sign: median(times) };
}

function benchCheck(): number {
  const grant = (permission: string): Grant => ({ permission });
  const roles: RoleRecord[] = [];
  for (let r = 0; r < 10; r++) {
    roles.push({
      name: `role${r}`,
      inherits: r > 0 ? [`role${r - 1}`] : [],
      grants: Array.from({ length: 10 }, (_, i) => grant(`act${i}:res${r}:*`)),
    });
  }
  const direct: Grant[] = [];
  for (let i = 0; i < 100; i++)
    direct.push(grant(i % 10 === 0 ? `read:*:item${i}` : `act${i % 7}:thing${i}:${i}`));
  const set = compilePermissions({
    user: {
      subject: 'bench',
      roles: [{ role: 'role9' }],
      grants: direct,
      denies: [grant('delete:secrets:*')],
    },
    roles: compileRoles(roles),
  });
  const required = [
    'act3:res4:doc:7',
    'read:posts:item50',
    'act2:thing44:44',
    'write:nothing:here',
  ];
  const input = { now: Date.now(), claims: {} };
  const expectAllow = required.map((p) => set.check(p, input).effect);
  if (expectAllow.slice(0, 3).some((e) => e !== 'allow') || expectAllow[3] !== 'none') {
    throw new Error(`bench setup: unexpected check results ${expectAllow.join(',')}`);
  }
  const perBatch = 1000;
  const samples: number[] = [];
  let sink = 0;
  for (let s = 0; s < 400; s++) {
    const start = performance.now();
    for (let i = 0; i < perBatch; i++) {
      if (set.check(required[i & 3]!, input).effect === 'allow') sink++;
    }
    samples.push(((performance.now() - start) * 1000) / perBatch);
  }
  if (sink === 0) throw new Error('unreachable');
  return median(samples.slice(50));
}

function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

function row(name: string, value: number, goal: string, ok: boolean | null, note: string): string {
  const status = goal === 'record' || ok === null ? '' : ok ? '✅' : '❌';
  return `| \`${name}\` | ${formatFigure(value)} | ${goal} | ${status} | ${note} |`;
}

function writeReport(): void {
  if (!FULL) {
    // A partial run (BENCH_ONLY) only prints: the report and the docs need every figure.
    console.log(lines.join('\n'));
    return;
  }
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const header = [
    '# Benchmarks',
    '',
    'Written by `npm run bench` (bench/run.ts). Each comparison runs both contenders side by side in',
    'one process on the same tokens and keys, alternating round by round; figures are medians of',
    'per-operation times across rounds.',
    '',
    `- Date: ${new Date().toISOString()}`,
    `- Machine: ${cpu}, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.platform()} ${os.release()}`,
    `- Node: ${process.version}; jose ${joseVersion()}`,
    `- Core rounds: ${ROUNDS} × ${BATCH} operations per contender`,
    '',
  ];
  writeFileSync(
    new URL('../BENCHMARKS.md', import.meta.url),
    `${[...header, ...lines].join('\n')}\n`,
  );
  writeFileSync(
    new URL('./results.json', import.meta.url),
    `${JSON.stringify(results, null, 2)}\n`,
  );
  for (const doc of FIGURE_DOCS) {
    const url = new URL(`../${doc}`, import.meta.url);
    writeFileSync(url, syncFigures(readFileSync(url, 'utf8'), results));
  }
  // Re-align the tables whose values changed, as `npm run format` would.
  execFileSync('npx', ['biome', 'format', '--write', ...FIGURE_DOCS], {
    cwd: new URL('..', import.meta.url),
    stdio: 'ignore',
  });
  console.log([...header, ...lines].join('\n'));
}

function joseVersion(): string {
  const pkg = new URL('../node_modules/jose/package.json', import.meta.url);
  return (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
}

await main();
