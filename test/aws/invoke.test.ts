/**
 * `npm run invoke` (scripts/invoke.ts) run as package.json runs it, in a child process: it follows
 * `--policy` and the deployed function's environment variables, and every usage mistake or
 * unreadable file is one line on stderr with exit status 2.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SECRET = 'invoke-test-secret-0123456789abcdef-0123';

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the script with only the variables given (plus PATH and HOME), from the project root. */
function invoke(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'scripts/invoke.ts', ...args],
      {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
        timeout: 60_000,
      },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** One line on stderr starting `invoke:`, nothing on stdout, exit 2. */
function expectOneLineRefusal(run: Run): string {
  expect(run.code).toBe(2);
  expect(run.stdout).toBe('');
  const lines = run.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^invoke: /);
  return lines[0]!;
}

let dir = '';
const path = (name: string) => join(dir, name);
const tokenEvent = (method: string, path: string, token: string) =>
  JSON.stringify({
    type: 'TOKEN',
    authorizationToken: `Bearer ${token}`,
    methodArn: `arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/${method}${path}`,
  });

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-invoke-'));
  mkdirSync(path('a-directory'));
  writeFileSync(path('reports.json'), tokenEvent('GET', '/reports', '{{token:alice}}'));
  writeFileSync(path('me.json'), tokenEvent('GET', '/me', '{{token:alice}}'));
  // A policy of the user's own: another development issuer and secret variable, at+jwt only,
  // and a route the demo policy does not have.
  writeFileSync(
    path('policy.yaml'),
    [
      'version: 1',
      'issuers:',
      '  - issuer: https://other.test/',
      '    audiences: [https://reports.test]',
      '    algorithms: [HS256]',
      '    types: [at+jwt]',
      '    keys: { secretEnv: OTHER_SECRET }',
      'permissions: { source: claims }',
      'routes:',
      '  - { method: GET, path: /reports, authenticated: true }',
    ].join('\n'),
  );
  writeFileSync(path('broken.yaml'), 'version: 1\nissuers: [\n');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('npm run invoke: usage', () => {
  it.each([
    [['events/rest-token-alice.json', '--frobnicate']],
    [['events/rest-token-alice.json', '--polciy', 'policy.yaml']],
    [['events/rest-token-alice.json', '-x']],
    [['events/rest-token-alice.json', '--iam=yes']],
    [['events/rest-token-alice.json', '--mode']],
    [['events/rest-token-alice.json', '--mode', 'sideways']],
    [['events/rest-token-alice.json', 'events/rest-token-bob.json']],
    [[]],
  ])('refuses %j in one line, exit 2', async (args) => {
    const line = expectOneLineRefusal(await invoke(args));
    expect(line.length).toBeLessThan(200);
  });
});

describe('npm run invoke: files', () => {
  it('names a missing or unreadable event file and the problem', async () => {
    const missing = expectOneLineRefusal(await invoke(['events/no-such-event.json']));
    expect(missing).toBe('invoke: event events/no-such-event.json: no such file');
    const directory = expectOneLineRefusal(await invoke([path('a-directory')]));
    expect(directory).toContain(`${path('a-directory')}: is a directory`);
  });

  it('names a malformed event file without echoing its contents', async () => {
    const token = 'eyJhbGciOiJIUzI1NiJ9.SECRET-PAYLOAD-MARKER.sig';
    for (const [name, text, problem] of [
      [
        'truncated.json',
        `{"type":"TOKEN","authorizationToken":"Bearer ${token}"`,
        'not valid JSON',
      ],
      ['garbage.json', `Bearer ${token}`, 'not valid JSON'],
      ['array.json', '[1, 2]', 'expected an API Gateway authorizer event object'],
      ['null.json', 'null', 'expected an API Gateway authorizer event object'],
    ] as const) {
      writeFileSync(path(name), text);
      const line = expectOneLineRefusal(await invoke([path(name)]));
      expect(line).toContain(`event ${path(name)}: ${problem}`);
      expect(line).not.toContain('SECRET-PAYLOAD-MARKER');
    }
  });

  it('names a missing or malformed policy file', async () => {
    const missing = expectOneLineRefusal(
      await invoke(['events/rest-token-alice.json', '--policy', path('nope.yaml')]),
    );
    expect(missing).toBe(`invoke: policy ${path('nope.yaml')}: no such file`);
    const broken = expectOneLineRefusal(
      await invoke(['events/rest-token-alice.json', '--policy', path('broken.yaml')]),
    );
    expect(broken).toContain(`policy ${path('broken.yaml')}: expected valid YAML`);
  });
});

describe('npm run invoke: follows the user configuration', () => {
  it('decides with the --policy file, minting tokens of its development issuer', async () => {
    const own = await invoke(
      [path('reports.json'), '--mode', 'route', '--policy', path('policy.yaml')],
      {
        OTHER_SECRET: SECRET,
      },
    );
    expect(own.code, own.stderr).toBe(0);
    const answer = JSON.parse(own.stdout);
    expect(answer.principalId).toBe('alice');
    expect(answer.policyDocument.Statement[0].Effect).toBe('Allow');
    // The bundled demo policy has no such route: the same event is denied without --policy.
    const demo = await invoke([path('reports.json'), '--mode', 'route'], {
      GATEHOUSE_DEV_SECRET: SECRET,
    });
    expect(demo.code, demo.stderr).toBe(0);
    expect(JSON.parse(demo.stdout).policyDocument.Statement[0].Effect).toBe('Deny');
  });

  it('reads the deployed function variables: GATEHOUSE_TYPES, AUTHORIZER_MODE', async () => {
    // at+jwt only: the minted token carries it and passes.
    const typed = await invoke([path('me.json')], {
      GATEHOUSE_DEV_SECRET: SECRET,
      GATEHOUSE_TYPES: 'at+jwt',
      AUTHORIZER_MODE: 'route',
    });
    expect(typed.code, typed.stderr).toBe(0);
    expect(typed.stderr).toContain('(route mode)');
    expect(JSON.parse(typed.stdout).policyDocument.Statement[0].Effect).toBe('Allow');
  });

  it('refuses in one line, naming the variable, a configuration the deployed function would refuse', async () => {
    for (const [name, value] of [
      ['GATEHOUSE_REQUIRE_TYPE', 'yes'],
      ['AUTHORIZER_MODE', 'sometimes'],
      ['GATEHOUSE_JWKS_TIMEOUT_MS', '500'],
    ]) {
      const run = await invoke(['events/rest-token-alice.json'], {
        GATEHOUSE_DEV_SECRET: SECRET,
        [name!]: value!,
      });
      const line = expectOneLineRefusal(run);
      expect(line).toContain(`configuration error`);
      expect(line).toContain(name!);
    }
  });
});
