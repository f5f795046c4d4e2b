/**
 * The guard and the admin Worker side by side under one `wrangler dev` (as `npm start` runs
 * them): their two configurations written into a scratch directory, sharing the policy alias,
 * the local KV namespace and the revocation feed's Durable Object (defined by the guard); and
 * local KV seeded with the demo permissions, as `npm start` seeds it.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { permissionKvEntries } from '../../src/workers/kv-store.ts';

const ROOT = resolve(import.meta.dirname, '../..');

export interface WorkerPairOptions {
  /** The guard Worker's name; the admin Worker is `<name>-admin`. */
  readonly name: string;
  /** The guard's entry (default handlers/worker.ts). */
  readonly guardMain?: string;
  /** The policy file behind the `gatehouse:policy` alias. */
  readonly policy: string;
  /** Variables for both Workers (the guard also gets ORIGIN = "echo"). */
  readonly vars?: Readonly<Record<string, string>>;
}

/** Writes `wrangler.toml` (guard) and `wrangler.admin.toml` into `dir`; pass both with `-c`. */
export function writeWorkerPair(dir: string, options: WorkerPairOptions): void {
  const { name, policy, vars = {} } = options;
  const guardMain = options.guardMain ?? join(ROOT, 'handlers/worker.ts');
  const varLines = Object.entries(vars).map(([key, value]) => `${key} = ${JSON.stringify(value)}`);
  const common = [
    'compatibility_date = "2026-11-01"',
    '[alias]',
    `"gatehouse:policy" = ${JSON.stringify(policy)}`,
    '[[kv_namespaces]]',
    'binding = "PERMISSIONS"',
    'id = "gatehouse-permissions-local"',
  ];
  writeFileSync(
    join(dir, 'wrangler.toml'),
    [
      `name = "${name}"`,
      `main = ${JSON.stringify(guardMain)}`,
      ...common,
      '[vars]',
      'ORIGIN = "echo"',
      ...varLines,
      '[[durable_objects.bindings]]',
      'name = "REVOCATION"',
      'class_name = "RevocationFeed"',
      '[[migrations]]',
      'tag = "revocation-feed-v1"',
      'new_sqlite_classes = ["RevocationFeed"]',
      '[[services]]',
      'binding = "ADMIN"',
      `service = "${name}-admin"`,
    ].join('\n'),
  );
  writeFileSync(
    join(dir, 'wrangler.admin.toml'),
    [
      `name = "${name}-admin"`,
      `main = ${JSON.stringify(join(ROOT, 'handlers/admin-worker.ts'))}`,
      ...common,
      ...(varLines.length > 0 ? ['[vars]', ...varLines] : []),
      '[[durable_objects.bindings]]',
      'name = "REVOCATION"',
      'class_name = "RevocationFeed"',
      `script_name = "${name}"`,
    ].join('\n'),
  );
}

/**
 * Writes demo/permissions.json into the local KV under `persistTo` (`wrangler kv bulk put`),
 * quietly: no feed is running yet. `config` is the wrangler configuration naming the PERMISSIONS
 * binding (default the repository's).
 */
export function seedDemoKv(options: {
  readonly persistTo: string;
  readonly config?: string;
}): void {
  const seed = join(dirname(options.persistTo), 'seed.json');
  writeFileSync(
    seed,
    JSON.stringify(permissionKvEntries(readFileSync(join(ROOT, 'demo/permissions.json'), 'utf8'))),
  );
  const seeded = spawnSync(
    process.execPath,
    [
      join(ROOT, 'node_modules/wrangler/bin/wrangler.js'),
      'kv',
      'bulk',
      'put',
      seed,
      '--binding',
      'PERMISSIONS',
      '--local',
      '--persist-to',
      options.persistTo,
      ...(options.config === undefined ? [] : ['-c', options.config]),
    ],
    { cwd: ROOT, env: { ...process.env, WRANGLER_SEND_METRICS: 'false' }, encoding: 'utf8' },
  );
  if (seeded.status !== 0) throw new Error(`seeding local KV failed: ${seeded.stderr}`);
}
