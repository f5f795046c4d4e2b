#!/usr/bin/env node
// The CLI. Installed from the package it runs the built JavaScript in dist/; in a checkout of the
// repository (src/ beside bin/) it runs the TypeScript sources through tsx, a devDependency, so
// development needs no build. Either way it hands the commands (src/cli/) Node's file system and
// console.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';

const sources = new URL('../src/cli/index.ts', import.meta.url);
let main;
if (existsSync(sources)) {
  // `npx gatehouse` starts under the machine's node: on one older than 22.12, run again under
  // Node 22 (cached in ~/.cache/gatehouse-node) before loading anything.
  const { runUnderNode22 } = await import('../scripts/node22.mjs');
  await runUnderNode22();
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import(sources.href));
} else {
  // An installed package fetches no Node for its user: it says what it needs (engines) and stops.
  const [major, minor] = process.versions.node.split('.').map(Number);
  if (major < 22 || (major === 22 && minor < 12)) {
    process.stderr.write(`gatehouse: needs Node.js 22.12 or newer; this is ${process.version}\n`);
    process.exit(1);
  }
  ({ main } = await import('../dist/cli/index.js'));
}

let progressed = false;
process.exitCode = await main(process.argv.slice(2), {
  async readFile(path) {
    try {
      return await readFile(path, 'utf8');
    } catch (error) {
      if (error?.code === 'ENOENT') return null;
      throw error;
    }
  },
  // USER names the actor of audit records (cli:<user>); some shells and containers leave it unset.
  env: { ...process.env, USER: process.env.USER || safeUserName() },
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  now: () => Date.now(),
  progress: (line) => {
    // On a terminal the line is rewritten in place; in a log each report is its own line.
    if (process.stderr.isTTY) {
      process.stderr.write(`\r${line}\x1b[K`);
      progressed = true;
    } else process.stderr.write(`${line}\n`);
  },
  async readStdin() {
    const chunks = [];
    for await (const chunk of process.stdin) chunks.push(chunk);
    return Buffer.concat(chunks).toString('utf8');
  },
});
// Ends a progress line that was rewritten in place.
if (progressed) process.stderr.write('\n');

function safeUserName() {
  try {
    return userInfo().username;
  } catch {
    return undefined;
  }
}
