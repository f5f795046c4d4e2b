// `npm start`: the guard Worker on `wrangler dev` with the demo, ready to curl.
//
// 1. Creates .dev.vars (git-ignored) with a random GATEHOUSE_DEV_SECRET (32 bytes, base64url)
//    when it has none, and leaves the file mode 0600.
// 2. Seeds the local KV namespace (binding PERMISSIONS) with demo/permissions.json through
//    `wrangler kv bulk put --local`, into the same persistence directory `wrangler dev` uses.
// 3. Starts `wrangler dev` on 127.0.0.1:$GATEHOUSE_PORT (default 8787) with the echo origin,
//    waits until it answers, and prints curl lines with 1-hour tokens for alice, bob and carol.
//
// Stops wrangler on SIGINT / SIGTERM. Tokens come from the same code as `npx gatehouse token`.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { register } from 'tsx/esm/api';

register();
const { permissionKvEntries } = await import('../src/stores/kv.ts');
const { devIssuer, mintDevToken } = await import('../src/cli/token.ts');
const { ensureDevSecret } = await import('../src/cli/dev-vars.ts');

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const port = Number(process.env.GATEHOUSE_PORT ?? 8787);
const host = '127.0.0.1';
const persistTo = join(root, '.wrangler', 'state');
const varsFile = join(root, '.dev.vars');
const SECRET = 'GATEHOUSE_DEV_SECRET';

if (!Number.isInteger(port) || port < 1 || port > 65535) {
  console.error(
    `gatehouse: GATEHOUSE_PORT must be a port number, not ${process.env.GATEHOUSE_PORT}`,
  );
  process.exit(2);
}

const require = createRequire(import.meta.url);
const wranglerPkg = require.resolve('wrangler/package.json');
const wranglerBin = join(
  dirname(wranglerPkg),
  JSON.parse(readFileSync(wranglerPkg, 'utf8')).bin.wrangler,
);
const wranglerEnv = { ...process.env, WRANGLER_SEND_METRICS: 'false' };

// 1. The dev secret (the file is left 0600, also when it existed with a wider mode).
const { secret, created } = ensureDevSecret(
  {
    readFile: (path) => (existsSync(path) ? readFileSync(path, 'utf8') : null),
    writeFile: (path, text, mode) => writeFileSync(path, text, { mode }),
    chmod: (path, mode) => chmodSync(path, mode),
  },
  varsFile,
  SECRET,
  () => randomBytes(32).toString('base64url'),
);
if (created) console.log('gatehouse: wrote a new dev secret to .dev.vars');

// 2. Seed local KV (same code the tests seed with).
const entries = permissionKvEntries(
  readFileSync(join(root, 'demo', 'permissions.json'), 'utf8'),
  'demo/permissions.json',
);
const scratch = mkdtempSync(join(tmpdir(), 'gatehouse-seed-'));
try {
  const file = join(scratch, 'seed.json');
  writeFileSync(file, JSON.stringify(entries));
  const seeded = spawnSync(
    process.execPath,
    [
      wranglerBin,
      'kv',
      'bulk',
      'put',
      file,
      '--binding',
      'PERMISSIONS',
      '--local',
      '--persist-to',
      persistTo,
    ],
    { cwd: root, env: wranglerEnv, encoding: 'utf8' },
  );
  if (seeded.status !== 0) {
    console.error(`gatehouse: seeding local KV failed\n${seeded.stderr || seeded.stdout}`);
    process.exit(1);
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
console.log(`gatehouse: seeded local KV with ${entries.length} keys from demo/permissions.json`);

// 3. wrangler dev.
const child = spawn(
  process.execPath,
  [
    wranglerBin,
    'dev',
    '--ip',
    host,
    '--port',
    String(port),
    '--persist-to',
    persistTo,
    '--var',
    'ORIGIN:echo',
    '--show-interactive-dev-session=false',
  ],
  { cwd: root, env: wranglerEnv, stdio: ['ignore', 'inherit', 'inherit'] },
);
const stop = (signal) => {
  if (child.exitCode === null) child.kill(signal);
};
process.on('SIGINT', () => stop('SIGINT'));
process.on('SIGTERM', () => stop('SIGTERM'));
child.on('exit', (code, signal) => {
  process.exit(code ?? (signal ? 1 : 0));
});

const base = `http://${host}:${port}`;
const deadline = Date.now() + 90_000;
let ready = false;
while (!ready && Date.now() < deadline && child.exitCode === null) {
  try {
    ready = (await fetch(`${base}/health`)).status === 200;
  } catch {
    // Not listening yet.
  }
  if (!ready) await new Promise((r) => setTimeout(r, 250));
}
if (!ready) {
  console.error(`gatehouse: wrangler dev did not answer on ${base} within 90 s`);
  stop('SIGTERM');
  process.exit(1);
}

const policy = JSON.parse(readFileSync(join(root, 'demo', 'policy.json'), 'utf8'));
const issuer = devIssuer(policy);
const token = (subject) => mintDevToken({ subject, ttlSeconds: 3600, secret, issuer });
const [alice, bob, carol] = await Promise.all(['alice', 'bob', 'carol'].map(token));
console.log(`
gatehouse: the guard is up on ${base} (echo origin, demo policy, local KV). Tokens last 1 hour;
mint more with: npx gatehouse token <subject> --ttl 1h

  # alice (reader) reads a post: 200, the echo origin shows the identity headers
  curl -i ${base}/posts/1 -H 'Authorization: Bearer ${alice}'
  # alice writes: 403
  curl -i -X PUT ${base}/posts/1 -H 'Authorization: Bearer ${alice}'
  # no token: 401 with WWW-Authenticate
  curl -i ${base}/posts/1
  # alice's IP-conditioned grant (loopback only) and her expiring read:drafts grant
  curl -i ${base}/stats -H 'Authorization: Bearer ${alice}'
  curl -i ${base}/drafts -H 'Authorization: Bearer ${alice}'
  # bob (editor) edits, but his deny on delete:posts:* wins
  curl -i -X PATCH ${base}/posts/7 -H 'Authorization: Bearer ${bob}'
  curl -i -X DELETE ${base}/posts/7 -H 'Authorization: Bearer ${bob}'
  # carol (admin) asks the check API (needs authz:check)
  curl -s ${base}/.gatehouse/v1/check -H 'Authorization: Bearer ${carol}' \\
    -H 'content-type: application/json' -d '{"subject":"bob","permission":"publish:posts"}'
  # forward-auth, as nginx auth_request would ask
  curl -i ${base}/.gatehouse/v1/authorize -H 'Authorization: Bearer ${bob}' \\
    -H 'X-Forwarded-Method: DELETE' -H 'X-Forwarded-Uri: /posts/7'
`);
