#!/usr/bin/env node
// The development CLI. Loads the TypeScript sources through tsx (a devDependency) and hands them
// Node's file system and console; the commands themselves live in src/cli/.
import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { runUnderNode22 } from '../scripts/node22.mjs';

// `npx gatehouse` starts under the machine's node: on one older than 22.12, run again under
// Node 22 (cached in ~/.cache/gatehouse-node) before loading anything.
await runUnderNode22();
const { register } = await import('tsx/esm/api');
register();
const { main } = await import('../src/cli/index.ts');

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
