#!/usr/bin/env node
// Node.js 22.12 or newer for Gatehouse's commands, also on a machine whose own node is older.
//
// Gatehouse needs Node 22.12+ (wrangler, miniflare and vitest require it), but `npm install`
// and `npm start` are often run with whatever node the machine has. Rather than failing half-way
// (after writing .dev.vars or local KV state), every entry point checks the version first and,
// when it is too old, runs itself again under Node 22 from the npm registry's `node` package,
// installed once into ~/.cache/gatehouse-node ($GATEHOUSE_NODE_CACHE overrides the directory).
// A machine with Node 22.12+ never downloads anything.
//
//   node scripts/node22.mjs <command> [args...]   runs the command with a suitable node first on
//                                                 PATH (`node` itself is that binary)
//   node scripts/node22.mjs --print-bin-dir       prints that node's directory (.ci/run puts it
//                                                 on PATH)
//   node scripts/node22.mjs --install             installs it when needed (npm `prepare`, which
//                                                 runs in a checkout, never in a consumer's
//                                                 install); a failure only warns, `npm start`
//                                                 tries again
//
// scripts/start.mjs and bin/gatehouse.mjs call runUnderNode22() before anything else.
//
// This file runs on the old node, so it uses nothing newer than Node 16 and no dependency.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The oldest Node.js Gatehouse runs on (package.json `engines`). */
export const MINIMUM = '22.12.0';
/** What is installed when the machine's node is older: the newest Node 22 on the registry. */
const PACKAGE = 'node@22';
/** Set in the environment of a command this file started, so it can never loop. */
const MARK = 'GATEHOUSE_NODE22';

/** Whether a version string (`v20.20.2`, `22.12.0`) is at least {@link MINIMUM}. */
export function isSupported(version) {
  const have = String(version).replace(/^v/, '').split('.').map(Number);
  const need = MINIMUM.split('.').map(Number);
  for (let i = 0; i < need.length; i++) {
    const a = have[i] || 0;
    if (a !== need[i]) return a > need[i];
  }
  return true;
}

/** Where the registry's Node 22 is kept: one directory per user, shared by every checkout. */
export function cacheDir(env = process.env) {
  return resolve(env.GATEHOUSE_NODE_CACHE || join(homedir(), '.cache', 'gatehouse-node'));
}

function log(line) {
  process.stderr.write(`gatehouse: ${line}\n`);
}

/** The cached node binary and its version, or null when there is none. */
function cached(dir) {
  const pkg = join(dir, 'node_modules', 'node');
  const bin = join(pkg, 'bin', process.platform === 'win32' ? 'node.exe' : 'node');
  if (!existsSync(bin)) return null;
  try {
    const { version } = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8'));
    return { bin, version };
  } catch {
    return null;
  }
}

/** npm as the command that started us knows it (npm_execpath), else the one on PATH. */
function npmCommand(args) {
  const execPath = process.env.npm_execpath;
  if (execPath && /\.[cm]?js$/.test(execPath)) {
    return { command: process.execPath, args: [execPath, ...args], shell: false };
  }
  return { command: process.platform === 'win32' ? 'npm.cmd' : 'npm', args, shell: true };
}

/**
 * Installs Node 22 into a private directory, then moves it into place, so two commands
 * bootstrapping at once never share a half-written tree. Throws when it cannot.
 */
function install(dir) {
  mkdirSync(dir, { recursive: true });
  const scratch = join(dir, `.install-${process.pid}-${Date.now()}`);
  try {
    const npm = npmCommand([
      'install',
      '--no-save',
      '--no-audit',
      '--no-fund',
      '--loglevel=error',
      '--prefix',
      scratch,
      PACKAGE,
    ]);
    // npm's output goes to stderr: stdout may be a command's JSON (`npx gatehouse ... --json`).
    const result = spawnSync(npm.command, npm.args, {
      stdio: ['ignore', 2, 2],
      shell: npm.shell,
      env: process.env,
    });
    if (result.status !== 0) {
      throw new Error(`npm install ${PACKAGE} exited with ${result.status ?? result.signal}`);
    }
    const fresh = cached(scratch);
    if (fresh === null || !isSupported(fresh.version)) {
      throw new Error(`npm install ${PACKAGE} gave no usable node binary`);
    }
    const target = join(dir, 'node_modules');
    const old = join(dir, `.old-${process.pid}-${Date.now()}`);
    if (existsSync(target)) renameSync(target, old);
    try {
      renameSync(join(scratch, 'node_modules'), target);
    } catch (error) {
      // Another command finished first: use its copy. Otherwise put the old tree back.
      if (cached(dir) === null) {
        if (existsSync(old)) renameSync(old, target);
        throw error;
      }
    }
    rmSync(old, { recursive: true, force: true });
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  const now = cached(dir);
  if (now === null) throw new Error(`no node binary in ${dir} after installing`);
  return now.bin;
}

/**
 * The path of a node binary of at least {@link MINIMUM}: this process's own when it is new
 * enough, else the cached one, installed first when missing or too old.
 */
export function node22Binary() {
  if (isSupported(process.versions.node)) return process.execPath;
  const dir = cacheDir();
  const have = cached(dir);
  if (have !== null && isSupported(have.version)) return have.bin;
  log(
    `Node.js ${MINIMUM} or newer is needed and this is ${process.version}: installing ` +
      `Node 22 from the npm registry into ${dir} (once; later runs reuse it)`,
  );
  try {
    return install(dir);
  } catch (error) {
    log(
      `could not install Node 22 (${error.message}). Install Node.js ${MINIMUM} or newer ` +
        '(.nvmrc names 22) and run the command again.',
    );
    process.exit(1);
  }
}

/** The environment for a command under `bin`: its directory first on PATH, so nested tools agree. */
function environment(bin) {
  const pathKey = Object.keys(process.env).find((k) => k.toUpperCase() === 'PATH') || 'PATH';
  const path = process.env[pathKey];
  return {
    ...process.env,
    [pathKey]: path ? `${dirname(bin)}${delimiter}${path}` : dirname(bin),
    [MARK]: bin,
  };
}

/** Runs a command to completion with signals passed on, then exits as it did. */
function runAndExit(command, args, env, shell) {
  const child = spawn(command, args, { stdio: 'inherit', env, shell });
  const forward = (signal) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const signal of signals) process.on(signal, forward);
  child.on('error', (error) => {
    log(`cannot run ${command}: ${error.message}`);
    process.exit(127);
  });
  child.on('exit', (code, signal) => {
    for (const s of signals) process.removeListener(s, forward);
    if (signal) process.kill(process.pid, signal);
    else process.exit(code ?? 1);
  });
}

/**
 * Call first thing in an entry script: returns at once on Node 22.12+; on an older node it runs
 * the same script with the same arguments under Node 22 and exits with its status, never
 * returning, so nothing after the call runs on the old node.
 */
export async function runUnderNode22() {
  if (isSupported(process.versions.node)) return;
  if (process.env[MARK]) {
    log(`${process.env[MARK]} is ${process.version}, older than ${MINIMUM}; giving up`);
    process.exit(1);
  }
  const bin = node22Binary();
  runAndExit(bin, [...process.execArgv, ...process.argv.slice(1)], environment(bin), false);
  await new Promise(() => {}); // exits from runAndExit
}

function main(argv) {
  const [first, ...rest] = argv;
  if (first === '--print-bin-dir') {
    process.stdout.write(`${dirname(node22Binary())}\n`);
    return;
  }
  if (first === '--install') {
    if (isSupported(process.versions.node)) return;
    const have = cached(cacheDir());
    if (have !== null && isSupported(have.version)) return;
    try {
      install(cacheDir());
      log(`installed Node 22 into ${cacheDir()}; npm start, npm test and npx gatehouse use it`);
    } catch (error) {
      log(`could not install Node 22 now (${error.message}); npm start will try again`);
    }
    return;
  }
  if (first === undefined || first.startsWith('-')) {
    log('usage: node scripts/node22.mjs <command> [args...] | --print-bin-dir | --install');
    process.exit(2);
  }
  const bin = node22Binary();
  const env = environment(bin);
  if (first === 'node') runAndExit(bin, rest, env, false);
  // Windows runs npm-installed tools through .cmd shims, which only a shell can start.
  else runAndExit(first, rest, env, process.platform === 'win32');
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2));
}
