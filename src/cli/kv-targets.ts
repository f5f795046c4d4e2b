/**
 * How the CLI reaches Workers KV (Node-only, imported lazily by src/cli/targets.ts):
 *
 * - {@link openLocalKv}: the local state `wrangler dev --persist-to .wrangler/state` (and so
 *   `npm start`) uses, through wrangler's `getPlatformProxy`: a real KV binding in a local
 *   workerd, reading and writing `<persistTo>/v3`, the directory `wrangler dev` and
 *   `wrangler kv ... --local --persist-to <persistTo>` use for the same option.
 * - {@link wranglerKv}: a KV namespace implemented by running the wrangler CLI (`wrangler kv key
 *   put|delete|list`, `wrangler kv bulk get`): how `--kv remote` reaches Cloudflare with the
 *   user's `wrangler login`. With `remote: false` it runs against local state instead, which is
 *   how it is tested. Each call is one wrangler process (about a second).
 *
 * The CLI prints JSON on stdout for scripts, so wrangler's own lines must stay off it: the proxy
 * runs with `WRANGLER_LOG=warn` (wrangler's info and log lines, such as "Using secrets defined in
 * .dev.vars", are dropped; warnings and errors go to stderr) unless the user set WRANGLER_LOG; the
 * subprocesses' output is captured and parsed, never passed through.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ConfigError } from '../errors.ts';
import { TrackedFeed } from '../revocation/feed.ts';
import type { KvAdminNamespace, KvListKey, KvListResult } from '../workers/kv-admin-store.ts';
import type { KvNamespaceLike } from '../workers/kv-store.ts';
import {
  DurableFeedClient,
  type DurableObjectNamespaceLike,
  feedWritingKv,
} from '../workers/revocation.ts';
import { loadOptional, WRANGLER } from './optional.ts';

/** wrangler's log levels (`WRANGLER_LOG`). */
export type WranglerLogLevel = 'none' | 'error' | 'warn' | 'info' | 'log' | 'debug';

export interface LocalKvOptions {
  /** The wrangler configuration naming the binding; default `wrangler.toml`. */
  readonly configPath?: string;
  /** The state directory, as `wrangler dev --persist-to` takes it; default `.wrangler/state`. */
  readonly persistTo?: string;
  /** The KV binding in the configuration; default `PERMISSIONS`. */
  readonly binding?: string;
  /**
   * wrangler's log level while the proxy is open, unless `WRANGLER_LOG` is set; default `warn`
   * (`info`, `log` and `debug` lines go to stdout, `warn` and `error` to stderr).
   */
  readonly logLevel?: WranglerLogLevel;
}

/** A KV binding both management (KvAdminStore) and the edge's reader (KvStore) can use. */
export type LocalKvNamespace = KvAdminNamespace & KvNamespaceLike;

export interface LocalKv {
  readonly namespace: LocalKvNamespace;
  /**
   * The revocation feed of the `wrangler dev` session (`npm start`) serving this state, when the
   * configuration binds one (REVOCATION, class RevocationFeed) and the session runs: `namespace`
   * then records every change there before KV, so the running guard sees it within a second.
   */
  readonly feed?: TrackedFeed;
  /** Stops the local workerd; call it once done (the process does not exit while it runs). */
  close(): Promise<void>;
}

// WRANGLER_LOG is read by wrangler on every log call, so setting it while a proxy is open is
// enough; proxies may overlap (tests), so the last one to close restores it.
let quietHolders = 0;
let quietApplied = false;

function quietWrangler(level: WranglerLogLevel): () => void {
  if (quietHolders++ === 0 && process.env.WRANGLER_LOG === undefined) {
    process.env.WRANGLER_LOG = level;
    quietApplied = true;
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (--quietHolders === 0 && quietApplied) {
      delete process.env.WRANGLER_LOG;
      quietApplied = false;
    }
  };
}

function isKvBinding(value: unknown): value is LocalKvNamespace {
  if (typeof value !== 'object' || value === null) return false;
  const kv = value as Record<string, unknown>;
  return ['get', 'put', 'delete', 'list'].every((name) => typeof kv[name] === 'function');
}

/**
 * A real local KV binding over `<persistTo>/v3`, the state `wrangler dev --persist-to <persistTo>`
 * serves and `wrangler kv ... --local --persist-to <persistTo>` (the `npm start` seeding) writes.
 * The namespace id comes from the binding in `configPath`, as for wrangler dev. Remote bindings
 * are off: this never reaches Cloudflare.
 */
export async function openLocalKv(options: LocalKvOptions = {}): Promise<LocalKv> {
  const configPath = options.configPath ?? 'wrangler.toml';
  const persistTo = options.persistTo ?? '.wrangler/state';
  const binding = options.binding ?? 'PERMISSIONS';
  if (!existsSync(configPath)) {
    throw new ConfigError('config', `expected a wrangler configuration file (${configPath})`);
  }
  const release = quietWrangler(options.logLevel ?? 'warn');
  let proxy: { env: Record<string, unknown>; dispose(): Promise<void> };
  let scratch: string | undefined;
  try {
    // wrangler is an optional peer dependency: a missing one is a one-line error naming it.
    const wrangler = await loadOptional(WRANGLER, () => import('wrangler'));
    const proxyConfig = await feedProxyConfig(wrangler, configPath, binding);
    scratch = proxyConfig?.dir;
    proxy = await wrangler.getPlatformProxy<Record<string, unknown>>({
      configPath: proxyConfig?.path ?? configPath,
      persist: { path: join(persistTo, 'v3') },
      remoteBindings: false,
    });
  } catch (error) {
    release();
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
    throw error;
  }
  const cleanup = async () => {
    await proxy.dispose().finally(release);
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  };
  const namespace = proxy.env[binding];
  if (!isKvBinding(namespace)) {
    await cleanup();
    throw new ConfigError('binding', `expected a KV namespace binding ${binding} in ${configPath}`);
  }
  const feed = await runningFeed(proxy.env[FEED_BINDING]);
  let closing: Promise<void> | undefined;
  return {
    namespace: feed === undefined ? namespace : feedWritingKv(namespace, feed),
    ...(feed !== undefined && { feed }),
    close: () => {
      closing ??= cleanup();
      return closing;
    },
  };
}

/** The Durable Object binding of the revocation feed in wrangler.toml. */
const FEED_BINDING = 'REVOCATION';

/**
 * A configuration for the platform proxy with only what the CLI uses: the KV binding, and the
 * revocation feed bound by `script_name` to the Worker that defines it, so it reaches that
 * Worker's Durable Object in a running `wrangler dev` (wrangler's dev registry). The proxy cannot
 * run a Durable Object defined in the configuration it is given (it warns), hence the copy.
 * Undefined (use the configuration as it is) when it binds no feed or wrangler cannot read it.
 */
async function feedProxyConfig(
  wrangler: typeof import('wrangler'),
  configPath: string,
  binding: string,
): Promise<{ path: string; dir: string } | undefined> {
  let raw: Record<string, unknown>;
  try {
    raw = wrangler.experimental_readRawConfig({ config: configPath }).rawConfig as Record<
      string,
      unknown
    >;
  } catch {
    return undefined;
  }
  const objects = (raw.durable_objects as { bindings?: unknown[] } | undefined)?.bindings ?? [];
  const feed = objects.find(
    (b): b is { name: string; class_name: string; script_name?: string } =>
      typeof b === 'object' && b !== null && (b as { name?: unknown }).name === FEED_BINDING,
  );
  const kv = ((raw.kv_namespaces as unknown[] | undefined) ?? []).find(
    (b) => typeof b === 'object' && b !== null && (b as { binding?: unknown }).binding === binding,
  );
  if (feed === undefined || kv === undefined || typeof raw.name !== 'string') return undefined;
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-kv-'));
  const path = join(dir, 'wrangler.json');
  await writeFile(
    path,
    JSON.stringify({
      name: `${raw.name}-cli`,
      compatibility_date: raw.compatibility_date ?? '2026-11-01',
      kv_namespaces: [kv],
      durable_objects: {
        bindings: [
          {
            name: FEED_BINDING,
            class_name: feed.class_name,
            script_name: feed.script_name ?? raw.name,
          },
        ],
      },
    }),
  );
  return { path, dir };
}

/**
 * The feed when a `wrangler dev` session serves it; undefined when none runs (the proxy answers
 * 503 "not found"): then no isolate holds a cache to evict, and changes go to KV alone.
 */
async function runningFeed(binding: unknown): Promise<TrackedFeed | undefined> {
  if (binding === undefined) return undefined;
  const client = new DurableFeedClient(binding as DurableObjectNamespaceLike);
  try {
    await client.read(0);
  } catch {
    return undefined;
  }
  return new TrackedFeed(client);
}

// ---------------------------------------------------------------------------------------------
// The wrangler CLI as a KV namespace

/** What one wrangler run gave. */
export interface WranglerRunResult {
  /** Exit code; null when killed. */
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs wrangler with these arguments (after `wrangler`). Injectable for tests and other hosts. */
export type WranglerRunner = (args: readonly string[]) => Promise<WranglerRunResult>;

export interface WranglerKvOptions {
  /** `--remote` (Cloudflare, needs `wrangler login`) or `--local --persist-to <persistTo>`. */
  readonly remote: boolean;
  /** The KV binding in the configuration; default `PERMISSIONS`. */
  readonly binding?: string;
  /** The wrangler configuration; default `wrangler.toml`. */
  readonly configPath?: string;
  /** Local state directory (with `remote: false`); default `.wrangler/state`. */
  readonly persistTo?: string;
  /** Default: {@link spawnWrangler} with a 120 s limit per call. */
  readonly runner?: WranglerRunner;
}

/** A wrangler run that failed: `stderr` (its last lines) says why; never shown as a store error. */
export class WranglerCommandError extends Error {
  override readonly name = 'WranglerCommandError';
  readonly status: number | null;
  readonly stderr: string;
  constructor(command: string, result: WranglerRunResult) {
    const tail = result.stderr.trim().split('\n').slice(-5).join('\n');
    super(
      `wrangler ${command} ${result.status === null ? 'was stopped' : `exited with ${result.status}`}` +
        (tail === '' ? '' : `: ${tail}`),
    );
    this.status = result.status;
    this.stderr = result.stderr;
  }
}

let wranglerBin: string | undefined;

/**
 * The wrangler CLI script of the installed package; a MissingPackageError (./optional.ts) when
 * wrangler, an optional peer dependency, is not installed.
 */
export async function wranglerBinary(): Promise<string> {
  return loadOptional(WRANGLER, resolveWranglerBin);
}

/** The wrangler CLI script of the installed package. */
function resolveWranglerBin(): string {
  if (wranglerBin === undefined) {
    const require = createRequire(import.meta.url);
    const pkgPath = require.resolve('wrangler/package.json');
    const pkg = require(pkgPath) as { bin: string | Record<string, string> };
    const bin = typeof pkg.bin === 'string' ? pkg.bin : pkg.bin.wrangler;
    if (bin === undefined) throw new Error('wrangler/package.json names no wrangler bin');
    wranglerBin = join(dirname(pkgPath), bin);
  }
  return wranglerBin;
}

/**
 * Runs the installed wrangler in a child process (this Node, no shell), stdin closed so a prompt
 * fails instead of waiting, output captured. `WRANGLER_LOG=log`: the commands print their
 * results at that level, and a user's `debug` would mix log lines into them.
 */
export function spawnWrangler(options: { timeoutMs?: number; cwd?: string } = {}): WranglerRunner {
  const timeoutMs = options.timeoutMs ?? 120_000;
  return (args) =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [resolveWranglerBin(), ...args], {
        cwd: options.cwd ?? process.cwd(),
        env: {
          ...process.env,
          WRANGLER_LOG: 'log',
          WRANGLER_SEND_METRICS: process.env.WRANGLER_SEND_METRICS ?? 'false',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
        // wrangler's bin runs its CLI in a second process sharing our pipes: on POSIX, its own
        // process group lets a timeout stop both.
        detached: process.platform !== 'win32',
      });
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
      child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
      const timer = setTimeout(() => {
        try {
          if (process.platform !== 'win32' && child.pid !== undefined) {
            process.kill(-child.pid, 'SIGTERM');
          } else child.kill('SIGTERM');
        } catch {
          // Already gone.
        }
      }, timeoutMs);
      child.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      child.on('close', (status) => {
        clearTimeout(timer);
        resolve({
          status,
          stdout: Buffer.concat(stdout).toString('utf8'),
          stderr: Buffer.concat(stderr).toString('utf8'),
        });
      });
    });
}

/** The JSON a list or bulk-get command printed (skipping any line before it). */
function parseOutput(command: string, result: WranglerRunResult): unknown {
  const text = result.stdout.trim();
  try {
    return JSON.parse(text);
  } catch {
    const start = text.search(/^[[{]/m);
    if (start > 0) {
      try {
        return JSON.parse(text.slice(start));
      } catch {
        // Reported below.
      }
    }
  }
  throw new Error(`wrangler ${command} printed no JSON`);
}

/** One entry of `kv bulk get` output: local gives `{ value }`, Cloudflare's API the value. */
function bulkValue(entry: unknown): string | null {
  if (entry === null || entry === undefined) return null;
  if (typeof entry === 'string') return entry;
  if (typeof entry === 'object' && 'value' in entry) {
    const value = (entry as { value: unknown }).value;
    if (value === null || value === undefined) return null;
    if (typeof value === 'string') return value;
  }
  throw new Error('wrangler kv bulk get printed an unexpected value');
}

/** KV keys as wrangler's arguments: a leading `-` would be read as an option. */
function checkKey(key: string): string {
  if (key.startsWith('-') || key === '') {
    throw new Error('wrangler cannot address a KV key that is empty or starts with "-"');
  }
  return key;
}

/** Most keys one `kv bulk get` asks for (Cloudflare's bulk read limit). */
const BULK_GET_LIMIT = 100;

/**
 * A {@link KvAdminNamespace} that runs the wrangler CLI per call. Reads use `kv bulk get` (a
 * missing key is null there, where `kv key get --remote` fails); values go through a temporary
 * file (`kv key put --path`), so any text, newlines and Unicode included, arrives byte for byte.
 * `list` returns every key at once (wrangler follows the cursor itself).
 */
export function wranglerKv(
  options: WranglerKvOptions,
): KvAdminNamespace & Required<Pick<KvAdminNamespace, 'getMany'>> {
  const run = options.runner ?? spawnWrangler();
  const target = [
    '--binding',
    options.binding ?? 'PERMISSIONS',
    '--config',
    options.configPath ?? 'wrangler.toml',
    ...(options.remote
      ? ['--remote']
      : ['--local', '--persist-to', options.persistTo ?? '.wrangler/state']),
  ];

  const exec = async (command: string, args: readonly string[]): Promise<WranglerRunResult> => {
    const result = await run([...args, ...target]);
    if (result.status !== 0) throw new WranglerCommandError(command, result);
    return result;
  };

  /** Runs `use` with a private temporary directory, removed afterwards. */
  const withTemp = async <T>(use: (dir: string) => Promise<T>): Promise<T> => {
    const dir = await mkdtemp(join(tmpdir(), 'gatehouse-kv-'));
    try {
      return await use(dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };

  const getMany = async (keys: readonly string[]): Promise<Map<string, string | null>> => {
    const out = new Map<string, string | null>();
    for (let start = 0; start < keys.length; start += BULK_GET_LIMIT) {
      const chunk = keys.slice(start, start + BULK_GET_LIMIT).map(checkKey);
      const printed = await withTemp(async (dir) => {
        const file = join(dir, 'keys.json');
        await writeFile(file, JSON.stringify(chunk), { mode: 0o600 });
        return parseOutput('kv bulk get', await exec('kv bulk get', ['kv', 'bulk', 'get', file]));
      });
      if (typeof printed !== 'object' || printed === null || Array.isArray(printed)) {
        throw new Error('wrangler kv bulk get printed an unexpected shape');
      }
      for (const key of chunk) {
        out.set(key, bulkValue(Object.hasOwn(printed, key) ? printed[key as never] : null));
      }
    }
    return out;
  };

  return {
    async get(key: string, _type: 'text'): Promise<string | null> {
      return (await getMany([key])).get(key) ?? null;
    },
    getMany,
    async put(key, value, putOptions = {}) {
      checkKey(key);
      await withTemp(async (dir) => {
        const file = join(dir, 'value');
        await writeFile(file, value, { mode: 0o600 });
        await exec('kv key put', [
          'kv',
          'key',
          'put',
          key,
          '--path',
          file,
          ...(putOptions.expirationTtl === undefined
            ? []
            : ['--ttl', String(putOptions.expirationTtl)]),
          ...(putOptions.metadata === undefined
            ? []
            : ['--metadata', JSON.stringify(putOptions.metadata)]),
        ]);
      });
    },
    async delete(key) {
      await exec('kv key delete', ['kv', 'key', 'delete', checkKey(key)]);
    },
    async list(listOptions): Promise<KvListResult> {
      const printed = parseOutput(
        'kv key list',
        await exec('kv key list', [
          'kv',
          'key',
          'list',
          ...(listOptions.prefix === '' ? [] : ['--prefix', listOptions.prefix]),
        ]),
      );
      if (!Array.isArray(printed)) throw new Error('wrangler kv key list printed no list');
      const keys: KvListKey[] = printed.map((entry: unknown) => {
        const item = entry as { name?: unknown; expiration?: unknown; metadata?: unknown };
        if (typeof item?.name !== 'string') {
          throw new Error('wrangler kv key list printed an entry without a name');
        }
        return {
          name: item.name,
          ...(typeof item.expiration === 'number' && { expiration: item.expiration }),
          ...(item.metadata !== undefined && item.metadata !== null && { metadata: item.metadata }),
        };
      });
      return { keys, list_complete: true };
    },
  };
}
