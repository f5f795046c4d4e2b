// `npm start [-- --config <file>] [--admin-config <file>] [--persist-to <dir>]`: the guard Worker
// and the admin API Worker on one `wrangler dev` with local KV, running the policy the wrangler
// configuration bundles.
//
// 0. Runs itself under Node.js 22.12+ first (scripts/node22.mjs: on an older node, a Node 22 from
//    the npm registry, cached in ~/.cache/gatehouse-node), so nothing below runs or writes on a
//    node that cannot finish.
// 1. Finds the policy as wrangler does: the configuration's (default wrangler.toml) [alias]
//    "gatehouse:policy", relative to the configuration's directory. It is validated before
//    anything is written. It is "the demo" when it is this repository's demo/policy.json itself
//    (the same file, by real path): the seed data and the curl lines are written for that file,
//    so a copy, even an identical one, is the user's own policy and gets neither.
// 2. Creates the secret of the policy's development issuer (the first issuer whose key is
//    `secretEnv`; GATEHOUSE_DEV_SECRET for the demo) in .dev.vars beside the configuration, where
//    wrangler dev reads it, when it has none: 32 random bytes, base64url; the file is left 0600.
//    A policy without such an issuer gets no .dev.vars.
// 3. Demo only: seeds local KV (binding PERMISSIONS, in --persist-to, default .wrangler/state)
//    with the demo subjects the store never held (src/cli/seed.ts): anything changed with
//    `npx gatehouse` since, a revocation or a deletion included, is kept, and the seed's writes
//    are audited like the CLI's.
// 4. Starts `wrangler dev` on 127.0.0.1:$GATEHOUSE_PORT (default 8787) with the configuration as
//    it is, plus the admin Worker's (--admin-config, default wrangler.admin.toml beside the
//    configuration, when there is one) in the same session (`wrangler dev -c guard -c admin`):
//    the guard's ADMIN service binding reaches it, both share the local KV state, and the admin
//    API answers under the guard's URL. Waits until the guard answers any HTTP request (no route
//    is assumed), and prints curl lines with 1-hour tokens for the demo, or for another policy
//    how to grant and mint.
//
// Stops wrangler on SIGINT / SIGTERM. Tokens come from the same code as `npx gatehouse token`.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runUnderNode22 } from './node22.mjs';

await runUnderNode22();

const { parseArgs } = await import('node:util');
const { register } = await import('tsx/esm/api');
register();
const { devVarsBeside, POLICY_ALIAS, policyAlias, resolveFromConfig } = await import(
  '../src/cli/wrangler-config.ts'
);
const { devIssuer, mintDevToken } = await import('../src/cli/token.ts');
const { ensureDevSecret } = await import('../src/cli/dev-vars.ts');
const { parsePolicyText } = await import('../src/policy/text.ts');
const { compilePolicy } = await import('../src/policy/policy.ts');

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const host = '127.0.0.1';
const BINDING = 'PERMISSIONS';

function fail(message, code = 1) {
  console.error(`gatehouse: ${message}`);
  process.exit(code);
}

/** A path as the user would type it from here: relative below the working directory. */
function shown(path) {
  const rel = relative(process.cwd(), path);
  return rel === '' ? '.' : rel.startsWith('..') || isAbsolute(rel) ? path : rel;
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      config: { type: 'string' },
      'admin-config': { type: 'string' },
      'persist-to': { type: 'string' },
    },
    strict: true,
  }));
} catch (error) {
  fail(
    `${error.message}\nusage: npm start [-- --config <wrangler config>] ` +
      '[--admin-config <admin Worker config>] [--persist-to <dir>]',
    2,
  );
}
const port = Number(process.env.GATEHOUSE_PORT ?? 8787);
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  fail(`GATEHOUSE_PORT must be a port number, not ${process.env.GATEHOUSE_PORT}`, 2);
}
const configPath = resolve(values.config ?? join(root, 'wrangler.toml'));
const persistTo = resolve(values['persist-to'] ?? join(root, '.wrangler', 'state'));
// The admin API Worker: named, or wrangler.admin.toml beside the guard's configuration if present.
const defaultAdminConfig = join(dirname(configPath), 'wrangler.admin.toml');
const adminConfigPath =
  values['admin-config'] !== undefined
    ? resolve(values['admin-config'])
    : existsSync(defaultAdminConfig)
      ? defaultAdminConfig
      : undefined;
const varsFile = devVarsBeside(configPath);
// The flags a later `npx gatehouse` needs to reach the same configuration and state.
const cliFlags = [
  ...(configPath === resolve(root, 'wrangler.toml') ? [] : ['--config', shown(configPath)]),
  ...(persistTo === resolve(root, '.wrangler', 'state') ? [] : ['--persist-to', shown(persistTo)]),
].join(' ');
const withFlags = (command) => (cliFlags === '' ? command : `${command} ${cliFlags}`);

// 1. The policy the Worker bundles, validated before anything is written.
if (!existsSync(configPath)) fail(`no wrangler configuration at ${shown(configPath)}`);
const readText = async (path) => (existsSync(path) ? readFileSync(path, 'utf8') : null);
let policyPath;
let policyDoc;
let compiled;
try {
  const alias = policyAlias(readFileSync(configPath, 'utf8'), shown(configPath));
  if (alias === undefined) {
    fail(
      `${shown(configPath)} has no [alias] "${POLICY_ALIAS}": the Worker imports its policy ` +
        'from there (docs/workers.md, "Configuration reference")',
    );
  }
  policyPath = resolveFromConfig(configPath, alias);
  const policyText = await readText(policyPath);
  if (policyText === null) {
    fail(`${shown(configPath)} names the policy ${shown(policyPath)}, which does not exist`);
  }
  policyDoc = parsePolicyText(policyText, shown(policyPath));
  // The Worker checks secrets on the first request; here only the shape matters.
  const placeholders = Object.fromEntries(
    secretNames(policyDoc).map((name) => [name, randomBytes(32).toString('base64url')]),
  );
  // secrets: false — the delegation key set is generated below when absent, not required here.
  compiled = compilePolicy(policyDoc, { env: placeholders, secrets: false });
} catch (error) {
  if (error?.name !== 'ConfigError') throw error;
  fail(`${shown(policyPath ?? configPath)}: ${error.message}`);
}
// The admin Worker verifies callers with the policy's issuers and grants its roles: it must bundle
// the very same policy file, or the two Workers would disagree.
if (adminConfigPath !== undefined) {
  if (!existsSync(adminConfigPath))
    fail(`no admin Worker configuration at ${shown(adminConfigPath)}`);
  const adminAlias = policyAlias(readFileSync(adminConfigPath, 'utf8'), shown(adminConfigPath));
  const adminPolicy =
    adminAlias === undefined ? undefined : resolveFromConfig(adminConfigPath, adminAlias);
  if (
    adminPolicy === undefined ||
    !existsSync(adminPolicy) ||
    realpathSync(adminPolicy) !== realpathSync(policyPath)
  ) {
    fail(
      `${shown(adminConfigPath)} must alias "${POLICY_ALIAS}" to the guard's policy ` +
        `${shown(policyPath)}, the same file`,
    );
  }
}
const demoPolicy = join(root, 'demo', 'policy.json');
const isDemo = realpathSync(policyPath) === realpathSync(demoPolicy);

// 2. The development issuer's secret.
let issuer;
try {
  issuer = devIssuer(policyDoc);
} catch {
  issuer = undefined; // no issuer with keys.secretEnv: tokens come from elsewhere
}
let secret;
if (issuer !== undefined) {
  const ensured = ensureDevSecret(
    {
      readFile: (path) => (existsSync(path) ? readFileSync(path, 'utf8') : null),
      writeFile: (path, text, mode) => writeFileSync(path, text, { mode }),
      chmod: (path, mode) => chmodSync(path, mode),
    },
    varsFile,
    issuer.secretEnv,
    () => randomBytes(32).toString('base64url'),
  );
  secret = ensured.secret;
  if (ensured.created) {
    console.log(`gatehouse: wrote a new ${issuer.secretEnv} to ${shown(varsFile)}`);
  }
}

// 2b. Gatehouse's own delegation signing keys (Ed25519, current + next), when the policy has a
//     `delegation` section: generated like the dev secret, single-quoted (the value is JSON).
if (compiled.delegation !== null) {
  const { generateIssuerKeySet } = await import('../src/delegation/keys.ts');
  const keySet = await generateIssuerKeySet('EdDSA');
  const ensured = ensureDevSecret(
    {
      readFile: (path) => (existsSync(path) ? readFileSync(path, 'utf8') : null),
      writeFile: (path, text, mode) => writeFileSync(path, text, { mode }),
      chmod: (path, mode) => chmodSync(path, mode),
    },
    varsFile,
    compiled.delegation.keysEnv,
    () => `'${keySet}'`,
  );
  if (ensured.created) {
    console.log(
      `gatehouse: wrote new delegation signing keys (${compiled.delegation.keysEnv}) to ${shown(varsFile)}`,
    );
  }
}

// 3. The demo's data, where it is missing.
if (isDemo) {
  const seedFile = join(root, 'demo', 'permissions.json');
  const { openLocalKv } = await import('../src/cli/kv-targets.ts');
  const { KvAdminStore } = await import('../src/workers/kv-admin-store.ts');
  const { PermissionAdmin } = await import('../src/admin/operations.ts');
  const { seedMissing } = await import('../src/cli/seed.ts');
  const local = await openLocalKv({ configPath, persistTo, binding: BINDING });
  let result;
  try {
    const admin = new PermissionAdmin({
      store: new KvAdminStore(local.namespace, { description: `kv local ${shown(persistTo)}` }),
      policyRoles: compiled.roles,
      actor: 'npm start',
      via: 'cli',
    });
    result = await seedMissing(
      admin,
      readFileSync(seedFile, 'utf8'),
      'demo/permissions.json',
      compiled.roles.map((r) => r.name),
    );
  } finally {
    await local.close();
  }
  if (result.seeded.length > 0) {
    console.log(
      `gatehouse: seeded local KV (${shown(persistTo)}) with ${result.seeded.join(', ')} ` +
        'from demo/permissions.json',
    );
  }
  if (result.kept.length > 0) {
    console.log(
      `gatehouse: kept ${result.kept.join(', ')} as local KV has them (changes made with ` +
        `npx gatehouse stay; ${withFlags('npx gatehouse import demo/permissions.json')} resets them)`,
    );
  }
}

// 4. wrangler dev, with the configuration as the user wrote it.
const require = createRequire(import.meta.url);
const wranglerPkg = require.resolve('wrangler/package.json');
const wranglerBin = join(
  dirname(wranglerPkg),
  JSON.parse(readFileSync(wranglerPkg, 'utf8')).bin.wrangler,
);
const child = spawn(
  process.execPath,
  [
    wranglerBin,
    'dev',
    '--config',
    configPath,
    ...(adminConfigPath === undefined ? [] : ['--config', adminConfigPath]),
    '--ip',
    host,
    '--port',
    String(port),
    '--persist-to',
    persistTo,
    '--show-interactive-dev-session=false',
  ],
  {
    cwd: dirname(configPath),
    env: { ...process.env, WRANGLER_SEND_METRICS: process.env.WRANGLER_SEND_METRICS ?? 'false' },
    stdio: ['ignore', 'inherit', 'inherit'],
  },
);
const stop = (signal) => {
  if (child.exitCode === null) child.kill(signal);
};
process.on('SIGINT', () => stop('SIGINT'));
process.on('SIGTERM', () => stop('SIGTERM'));
child.on('exit', (code, signal) => {
  process.exit(code ?? (signal ? 1 : 0));
});

// Any HTTP answer means the Worker is serving: a policy need not have a public route, and a 401
// or 404 is as good a sign of life as a 200.
const base = `http://${host}:${port}`;
const deadline = Date.now() + 90_000;
let answer;
while (answer === undefined && Date.now() < deadline && child.exitCode === null) {
  try {
    const response = await fetch(`${base}/`, { signal: AbortSignal.timeout(5000) });
    await response.arrayBuffer();
    answer = response.status;
  } catch {
    await new Promise((r) => setTimeout(r, 250)); // not listening yet
  }
}
if (answer === undefined) {
  if (child.exitCode !== null) process.exit(child.exitCode || 1);
  stop('SIGTERM');
  fail(`wrangler dev did not answer on ${base} within 90 s`);
}
if (answer >= 500) {
  console.error(
    `gatehouse: GET ${base}/ answered ${answer}: the Worker may be misconfigured (see wrangler's ` +
      'output above)',
  );
}

if (isDemo) {
  const token = (subject) => mintDevToken({ subject, ttlSeconds: 3600, secret, issuer });
  const [alice, bob, carol, reporter] = await Promise.all(
    ['alice', 'bob', 'carol', 'reporter'].map(token),
  );
  const exchange = 'urn:ietf:params:oauth:grant-type:token-exchange';
  const jwtType = 'urn:ietf:params:oauth:token-type:jwt';
  console.log(`
gatehouse: the guard is up on ${base} (demo policy, local KV). Tokens last 1 hour;
mint more with: ${withFlags('npx gatehouse token <subject> --ttl 1h')}

  # alice (reader) reads a post: 200; with ORIGIN = "echo" the echo origin shows the identity headers
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
  # delegation: the service reporter acts for alice, read-only (RFC 8693 token exchange)
  curl -s ${base}/.gatehouse/v1/token -d grant_type=${exchange} \\
    -d subject_token=${alice} -d subject_token_type=${jwtType} \\
    -d actor_token=${reporter} -d actor_token_type=${jwtType} -d scope=read:posts
  # use its access_token: allowed for alice, and the origin sees X-Auth-Actor: reporter;
  # /drafts (alice has it, the scope does not) answers 403 outside_delegation
  curl -i ${base}/posts/1 -H "Authorization: Bearer <access_token>"
  # Gatehouse's public keys
  curl -s ${base}/.gatehouse/jwks.json${
    adminConfigPath === undefined
      ? ''
      : `
  # carol reads bob's permissions through the admin API (the admin Worker, same URL)
  curl -s ${base}/.gatehouse/v1/admin/users/bob -H 'Authorization: Bearer ${carol}'`
  }
`);
} else {
  const tokens =
    issuer === undefined
      ? '  # tokens: the policy has no development issuer (keys.secretEnv), so they come from your\n' +
        '  # identity provider (the issuers in the policy)'
      : `  # a 1-hour token from the policy's dev issuer ${issuer.issuer} (${issuer.secretEnv} in ${shown(varsFile)})\n` +
        `  ${withFlags('npx gatehouse token <subject> --ttl 1h')}\n` +
        `  curl -i ${base}/<path> -H "Authorization: Bearer $(${withFlags('npx gatehouse token <subject>')})"`;
  console.log(`
gatehouse: the guard is up on ${base} with your policy ${shown(policyPath)}
(${shown(configPath)}'s [alias] "${POLICY_ALIAS}") and local KV in ${shown(persistTo)}.
Nothing was seeded: the demo data belongs to demo/policy.json.

  # give a subject permissions in that local KV (npx gatehouse --help lists the commands)
  ${withFlags('npx gatehouse grant <subject> <permission>')}
  ${withFlags('npx gatehouse check --subject <subject> GET /<path> --explain')}
${tokens}
`);
}

/** Names of secrets the policy's issuers read from the environment (keys.secretEnv). */
function secretNames(doc) {
  const issuers = doc?.issuers;
  if (!Array.isArray(issuers)) return [];
  return issuers.map((i) => i?.keys?.secretEnv).filter((name) => typeof name === 'string');
}
