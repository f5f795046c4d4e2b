/**
 * The package as a new user gets it: `npm pack`, then install the tarball into a scratch project
 * outside the repository (with hono and the Workers types, as a Workers project has them) and use
 * it there the way the README says: plain Node imports the built core, a Hono Worker type-checks
 * with a new Workers project's tsconfig and answers in workerd (`wrangler dev`), and the CLI runs
 * without tsx or the repository's devDependencies.
 */
import { type ChildProcess, execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalDynamo, startDynalite } from '../aws/support.ts';
import { freePort, olderNode, startWranglerDev, stopProcessGroup } from '../support/processes.ts';

const root = new URL('../../', import.meta.url).pathname;
const repoPackage = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  name: string;
  exports: Record<string, string | Record<string, string>>;
};
const NAME = repoPackage.name;
const ISSUER = 'https://issuer.pack.test/';
const AUDIENCE = 'https://api.pack.test';

let dir = '';
let app = '';
let packed: { filename: string; files: { path: string }[] };
let privateKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
let policy: unknown;
let worker: ChildProcess | undefined;

const installedVersion = (name: string) =>
  (
    JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')) as {
      version: string;
    }
  ).version;

function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env) {
  const result = spawnSync(command, args, { cwd, env, encoding: 'utf8', timeout: 120_000 });
  return { status: result.status, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
}

/** As run, without blocking this process: for a child that talks to a server running here. */
function runAsync(
  command: string,
  args: string[],
  cwd: string,
  env: NodeJS.ProcessEnv,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      { cwd, env, encoding: 'utf8', timeout: 120_000 },
      (error, stdout, stderr) =>
        resolve({
          status: error ? (typeof error.code === 'number' ? error.code : 1) : 0,
          stdout,
          stderr,
        }),
    );
  });
}

function mustRun(command: string, args: string[], cwd: string) {
  const result = run(command, args, cwd);
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited ${result.status}:\n${result.stderr}`);
  }
  return result;
}

const token = (subject: string) =>
  new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid: 'pack', typ: 'JWT' })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setSubject(subject)
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(privateKey);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-package-'));
  app = join(dir, 'app');
  mkdirSync(join(app, 'src'), { recursive: true });

  // What `npm publish` would upload (prepack builds dist/ first).
  const pack = mustRun('npm', ['pack', '--json', '--pack-destination', dir], root);
  const [result] = JSON.parse(pack.stdout.slice(pack.stdout.indexOf('['))) as (typeof packed)[];
  if (result === undefined) throw new Error(`npm pack printed no result:\n${pack.stdout}`);
  packed = result;

  const keys = await generateKeyPair('ES256', { extractable: true });
  privateKey = keys.privateKey;
  policy = {
    version: 1,
    issuers: [
      {
        issuer: ISSUER,
        audiences: [AUDIENCE],
        algorithms: ['ES256'],
        keys: {
          jwks: { keys: [{ ...(await exportJWK(keys.publicKey)), alg: 'ES256', kid: 'pack' }] },
        },
      },
    ],
    routes: [
      { method: 'GET', path: '/me', authenticated: true },
      { method: 'GET', path: '/posts/:id', require: ['read:posts'] },
    ],
  };
  writeFileSync(join(app, 'policy.json'), JSON.stringify(policy));
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'scratch-app', private: true, type: 'module' }),
  );
  // The versions the repository has, so the npm cache serves them; the registry if it does not.
  mustRun(
    'npm',
    [
      'install',
      '--prefer-offline',
      '--no-audit',
      '--no-fund',
      join(dir, packed.filename),
      `hono@${installedVersion('hono')}`,
      `@cloudflare/workers-types@${installedVersion('@cloudflare/workers-types')}`,
    ],
    app,
  );
});

afterAll(async () => {
  await stopProcessGroup(worker);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the packed tarball', () => {
  it('holds the built JavaScript, declarations and the CLI, and no sources, tests or tooling', () => {
    const files = packed.files.map((file) => file.path);
    const allowed =
      /^(dist\/.+\.(js|d\.ts)|bin\/gatehouse\.mjs|schema\/policy\.schema\.json|package\.json|README\.md|LICENSE)$/;
    expect(files.filter((file) => !allowed.test(file))).toEqual([]);
    expect(files).toContain('dist/index.js');
  });

  it('declarations import each other by .js, as every TypeScript resolves them', () => {
    const declarations = packed.files.map((file) => file.path).filter((f) => f.endsWith('.d.ts'));
    expect(declarations).toContain('dist/workers/hono.d.ts');
    const tsSpecifiers = declarations.filter((file) =>
      /(['"])\.{1,2}\/[^'"\n]*\.ts\1/.test(
        readFileSync(join(app, 'node_modules', NAME, file), 'utf8'),
      ),
    );
    expect(tsSpecifiers).toEqual([]);
  });

  it('is publishable, and every export has types and import conditions to files it ships', () => {
    const pkg = JSON.parse(
      readFileSync(join(app, 'node_modules', NAME, 'package.json'), 'utf8'),
    ) as typeof repoPackage & { private?: boolean };
    expect(pkg.private).toBeUndefined();
    const code = Object.entries(pkg.exports).filter(([subpath]) => subpath !== './package.json');
    expect(code.map(([subpath]) => subpath).sort()).toEqual([
      '.',
      './aws',
      './aws/lambda',
      './hono',
    ]);
    for (const [, target] of code) {
      expect(target).toMatchObject({ types: expect.any(String), import: expect.any(String) });
      for (const file of Object.values(target as Record<string, string>)) {
        expect(existsSync(join(app, 'node_modules', NAME, file))).toBe(true);
      }
    }
  });

  it('installs with no install-time script of its own (a consumer has no scripts/ to run)', () => {
    const pkg = JSON.parse(
      readFileSync(join(app, 'node_modules', NAME, 'package.json'), 'utf8'),
    ) as { scripts?: Record<string, string> };
    for (const hook of ['preinstall', 'install', 'postinstall']) {
      expect(pkg.scripts?.[hook]).toBeUndefined();
    }
  });

  it('brings one hono (the project’s), and neither the AWS SDK nor wrangler, into a Workers project', () => {
    const modules = join(app, 'node_modules');
    expect(existsSync(join(modules, NAME, 'node_modules'))).toBe(false);
    expect(existsSync(join(modules, 'hono'))).toBe(true);
    expect(existsSync(join(modules, '@aws-sdk'))).toBe(false);
    expect(existsSync(join(modules, 'wrangler'))).toBe(false);
    expect(existsSync(join(modules, 'tsx'))).toBe(false);
  });
});

describe('installed in a scratch project', () => {
  it('plain Node (no tsx, no flags) imports every entry point and decides with the core', async () => {
    writeFileSync(
      join(app, 'decide.mjs'),
      `import { compilePolicy, Gatehouse, MemoryStore } from '${NAME}';
import { readFileSync } from 'node:fs';
import * as hono from '${NAME}/hono';
import * as aws from '${NAME}/aws';

const store = new MemoryStore();
store.putUser({ subject: 'alice', roles: [], grants: [{ permission: 'read:posts' }], denies: [] });
const gatehouse = new Gatehouse({
  policy: compilePolicy(JSON.parse(readFileSync('policy.json', 'utf8'))),
  store,
});
const decide = (authorization) => gatehouse.decide({ method: 'GET', path: '/posts/1', authorization });
const [withToken, without] = await Promise.all([decide(process.argv[2]), decide(null)]);
console.log(JSON.stringify({
  entries: [typeof hono.gatehouse, typeof aws.createAuthorizer],
  withToken: [withToken.status, withToken.reason],
  without: [without.status, without.reason],
}));
`,
    );
    const result = run(process.execPath, ['decide.mjs', `Bearer ${await token('alice')}`], app);
    expect(result.stderr).toBe('');
    expect(JSON.parse(result.stdout)).toMatchObject({
      entries: ['function', 'function'],
      withToken: [200, 'allowed'],
      without: [401, 'token_missing'],
    });
  });

  const workerSource = `import { Hono } from 'hono';
import { compilePolicy, Gatehouse, gatehouse, type GatehouseEnv, KvStore } from '${NAME}/hono';
import policyDocument from '../policy.json';

interface Env {
  PERMISSIONS: KVNamespace;
}

let instance: Gatehouse | undefined;
const getGatehouse = (env: Env) =>
  (instance ??= new Gatehouse({
    policy: compilePolicy(policyDocument, { env }),
    store: new KvStore(env.PERMISSIONS),
  }));

const app = new Hono<GatehouseEnv>();
app.use('*', gatehouse({ gatehouse: (c) => getGatehouse(c.env) }));
app.get('/me', (c) => c.json({ subject: c.get('gatehouse').principal?.subject }));
app.get('/posts/:id', (c) => c.text('post'));
export default app;
`;

  // What create-cloudflare writes for a TypeScript Worker, with skipLibCheck as it has it (true)
  // and off, so the package's own declarations are checked too.
  const workersTsconfig = (skipLibCheck: boolean) => ({
    compilerOptions: {
      target: 'es2021',
      lib: ['es2021'],
      module: 'es2022',
      moduleResolution: 'Bundler',
      types: ['@cloudflare/workers-types'],
      resolveJsonModule: true,
      allowJs: true,
      checkJs: false,
      noEmit: true,
      isolatedModules: true,
      allowSyntheticDefaultImports: true,
      forceConsistentCasingInFileNames: true,
      strict: true,
      skipLibCheck,
    },
    include: ['src/**/*.ts'],
  });

  it.each([
    ['a new Workers project’s tsconfig', 'tsconfig.json', workersTsconfig(true)],
    ['skipLibCheck off', 'tsconfig.libcheck.json', workersTsconfig(false)],
    [
      'node16 resolution',
      'tsconfig.node16.json',
      {
        ...workersTsconfig(false),
        compilerOptions: {
          ...workersTsconfig(false).compilerOptions,
          module: 'node16',
          moduleResolution: 'node16',
        },
      },
    ],
  ])('a Hono Worker using %s type-checks', (_name, file, tsconfig) => {
    writeFileSync(join(app, 'src', 'index.ts'), workerSource);
    writeFileSync(join(app, file), JSON.stringify(tsconfig));
    const result = run(join(root, 'node_modules/.bin/tsc'), ['-p', file], app);
    expect(`${result.stdout}${result.stderr}`).toBe('');
    expect(result.status).toBe(0);
  });

  it('the Hono Worker answers 401 without a token and 200 with one in workerd', async () => {
    writeFileSync(join(app, 'src', 'index.ts'), workerSource);
    const toml = readFileSync(join(root, 'wrangler.toml'), 'utf8');
    const compatibilityDate = toml.match(/^compatibility_date = "([^"]+)"/m)?.[1];
    writeFileSync(
      join(app, 'wrangler.toml'),
      [
        'name = "scratch-app"',
        'main = "src/index.ts"',
        `compatibility_date = "${compatibilityDate}"`,
        'kv_namespaces = [{ binding = "PERMISSIONS", id = "scratch" }]',
        '',
      ].join('\n'),
    );
    const port = await freePort();
    worker = await startWranglerDev({
      cwd: app,
      port,
      args: ['--persist-to', join(dir, 'state')],
      readyPath: '/me',
      ready: () => true,
    });
    const base = `http://127.0.0.1:${port}`;
    const unauthenticated = await fetch(`${base}/me`);
    expect(unauthenticated.status).toBe(401);
    expect(unauthenticated.headers.get('www-authenticate')).toMatch(/^Bearer/);

    const authorization = `Bearer ${await token('alice')}`;
    const me = await fetch(`${base}/me`, { headers: { authorization } });
    expect(me.status).toBe(200);
    expect(await me.json()).toEqual({ subject: 'alice' });
    // A valid token without the permission (the local KV is empty): the store path runs too.
    expect((await fetch(`${base}/posts/1`, { headers: { authorization } })).status).toBe(403);
  });

  it('npx gatehouse --help runs the built CLI', () => {
    const result = run('npx', ['--no-install', 'gatehouse', '--help'], app);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^Usage: gatehouse <command>/);
  });

  it.each([
    ['--kv local', ['--kv', 'local'], 'wrangler'],
    ['--kv remote', ['--kv', 'remote'], 'wrangler'],
    [
      '--dynamodb',
      ['--dynamodb', '--table', 'T', '--endpoint', 'http://127.0.0.1:9'],
      '@aws-sdk/client-dynamodb',
    ],
  ])(
    'a %s target without its optional peer says in one line what to install',
    (_name, target, missing) => {
      const result = run(
        'npx',
        [
          '--no-install',
          'gatehouse',
          'grant',
          'alice',
          'read:posts',
          '--policy',
          'policy.json',
          ...target,
        ],
        app,
      );
      expect(result.status).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr.trim().split('\n')).toEqual([
        expect.stringContaining(`${missing} is not installed`),
      ]);
      expect(result.stderr).toContain(`npm install`);
    },
  );

  it('the CLI on a node older than 22.12 stops with one line saying what it needs', () => {
    const result = run(
      olderNode(),
      [join(app, 'node_modules', '.bin', 'gatehouse'), '--help'],
      app,
    );
    expect(result.status).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(
      /^gatehouse: needs Node\.js 22\.12 or newer; this is v\d+\.\d+\.\d+\n$/,
    );
  });
});

describe('installed in a Lambda project', () => {
  let lambdaApp = '';
  let local: LocalDynamo | undefined;
  const table = 'scratch-permissions';
  const awsEnv = () => ({
    ...process.env,
    AWS_REGION: 'eu-west-1',
    AWS_ACCESS_KEY_ID: 'local',
    AWS_SECRET_ACCESS_KEY: 'local',
    TABLE_NAME: table,
    DYNAMODB_ENDPOINT: local!.endpoint,
  });

  beforeAll(async () => {
    lambdaApp = join(dir, 'lambda');
    mkdirSync(lambdaApp, { recursive: true });
    writeFileSync(join(lambdaApp, 'policy.json'), JSON.stringify(policy));
    writeFileSync(
      join(lambdaApp, 'package.json'),
      JSON.stringify({ name: 'scratch-lambda', private: true, type: 'module' }),
    );
    // The SDK as the Lambda runtime provides it (an optional peer of the package).
    mustRun(
      'npm',
      [
        'install',
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
        join(dir, packed.filename),
        `@aws-sdk/client-dynamodb@${installedVersion('@aws-sdk/client-dynamodb')}`,
      ],
      lambdaApp,
    );
    local = await startDynalite();
  });

  afterAll(async () => {
    await local?.close();
  });

  it('the table, a grant with the CLI, then the authorizer handler from gatehouse-authz/aws/lambda decides', async () => {
    writeFileSync(
      join(lambdaApp, 'table.mjs'),
      `import { createDynamoDBClient, createPermissionTable } from '${NAME}/aws/lambda';
const client = createDynamoDBClient({ endpoint: process.env.DYNAMODB_ENDPOINT, requestTimeoutMs: 10_000 });
await createPermissionTable(client, process.env.TABLE_NAME);
client.destroy();
`,
    );
    let result = await runAsync(process.execPath, ['table.mjs'], lambdaApp, awsEnv());
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);

    result = await runAsync(
      'npx',
      [
        '--no-install',
        'gatehouse',
        'grant',
        'alice',
        'read:posts',
        '--policy',
        'policy.json',
        '--dynamodb',
        '--table',
        table,
        '--endpoint',
        local!.endpoint,
      ],
      lambdaApp,
      awsEnv(),
    );
    expect(result.status).toBe(0);

    // The handler a user's own Lambda exports, driven with API Gateway's documented event shapes.
    writeFileSync(
      join(lambdaApp, 'index.mjs'),
      `import { readFileSync } from 'node:fs';
import { createLambdaHandler } from '${NAME}/aws/lambda';

const policy = JSON.parse(readFileSync(new URL('./policy.json', import.meta.url), 'utf8'));
export const handler = createLambdaHandler({ policy, env: process.env });
`,
    );
    writeFileSync(
      join(lambdaApp, 'invoke.mjs'),
      `import { handler } from './index.mjs';
const arn = 'arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/GET/posts/1';
const rest = (token) => ({ type: 'TOKEN', authorizationToken: 'Bearer ' + token, methodArn: arn });
const http = (token) => ({
  version: '2.0', type: 'REQUEST', routeArn: arn, routeKey: 'GET /posts/{id}', rawPath: '/posts/1',
  rawQueryString: '', headers: { authorization: 'Bearer ' + token },
  requestContext: { stage: '$default', http: { method: 'GET', path: '/posts/1', sourceIp: '203.0.113.9' } },
});
const [alice, bob] = process.argv.slice(2);
const effect = (answer) => answer.policyDocument.Statement.map((s) => s.Effect).join(',');
const out = {
  restAlice: effect(await handler(rest(alice))),
  restBob: effect(await handler(rest(bob))),
  httpAlice: (await handler(http(alice))).isAuthorized,
  httpBob: (await handler(http(bob))).isAuthorized,
  noToken: await handler(rest('')).then(() => 'answered', (error) => error.message),
  configError: handler.configError?.message ?? null,
};
console.log(JSON.stringify(out));
`,
    );
    result = await runAsync(
      process.execPath,
      ['invoke.mjs', await token('alice'), await token('bob')],
      lambdaApp,
      { ...awsEnv(), DECISION_LOG: 'off' },
    );
    expect(result.stderr).toBe('');
    expect(JSON.parse(result.stdout.trim().split('\n').at(-1)!)).toEqual({
      restAlice: 'Allow',
      restBob: 'Deny',
      httpAlice: true,
      httpBob: false,
      noToken: 'Unauthorized',
      configError: null,
    });
  });
});
