/**
 * `npm start` end to end: the same command (scripts/start.mjs) on a free port, driven with real
 * HTTP on 127.0.0.1, then stopped with its whole process group (wrangler and workerd with it).
 * It runs the guard and the admin Worker together; the admin API answers under the guard's URL.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDotenv } from '../../src/cli/io.ts';
import { devIssuer, mintDevToken } from '../../src/cli/token.ts';
import { freePort, stopProcessGroup } from '../support/processes.ts';

const root = new URL('../../', import.meta.url);

let child: ChildProcess | undefined;
let base = '';
let output = '';

beforeAll(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  child = spawn(process.execPath, ['scripts/start.mjs'], {
    cwd: root,
    env: { ...process.env, GATEHOUSE_PORT: String(port), WRANGLER_SEND_METRICS: 'false' },
    detached: true, // its own process group, so the whole tree stops together
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const deadline = Date.now() + 100_000;
  while (!output.includes('the guard is up')) {
    if (child.exitCode !== null) throw new Error(`npm start exited early:\n${output}`);
    if (Date.now() > deadline) throw new Error(`npm start did not become ready:\n${output}`);
    await new Promise((r) => setTimeout(r, 200));
  }
});

afterAll(() => stopProcessGroup(child));

async function token(subject: string): Promise<string> {
  const secret = parseDotenv(readFileSync(new URL('.dev.vars', root), 'utf8')).GATEHOUSE_DEV_SECRET;
  const policy = JSON.parse(readFileSync(new URL('demo/policy.json', root), 'utf8'));
  return mintDevToken({ subject, ttlSeconds: 600, secret: secret!, issuer: devIssuer(policy) });
}

describe('npm start', () => {
  it('prints ready-to-paste curl lines with tokens', () => {
    expect(output).toMatch(
      /curl -i http:\/\/127\.0\.0\.1:\d+\/posts\/1 -H 'Authorization: Bearer ey/,
    );
  });

  it('lets alice read a post through the echo origin', async () => {
    const response = await fetch(`${base}/posts/1`, {
      headers: { authorization: `Bearer ${await token('alice')}` },
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { identity: Record<string, string> };
    expect(body.identity['x-auth-subject']).toBe('alice');
  });

  it('refuses alice a write with 403', async () => {
    const response = await fetch(`${base}/posts/1`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${await token('alice')}` },
    });
    expect(response.status).toBe(403);
    expect(response.headers.get('content-type')).toBe('application/problem+json');
  });

  it('answers 401 with a challenge without a token', async () => {
    const response = await fetch(`${base}/posts/1`);
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe('Bearer realm="gatehouse"');
  });

  it('serves the admin API at the same URL, through the admin Worker', async () => {
    const url = `${base}/.gatehouse/v1/admin/users/bob`;
    expect((await fetch(url)).status).toBe(401);
    const refused = await fetch(url, {
      headers: { authorization: `Bearer ${await token('alice')}` },
    });
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { reason: string }).reason).toBe('missing_permission');
    // carol's admin role (`*`) covers admin:permissions.
    const shown = await fetch(url, {
      headers: { authorization: `Bearer ${await token('carol')}` },
    });
    expect(shown.status).toBe(200);
    expect(JSON.stringify(await shown.json())).toContain('editor');
  });

  it('applies a grant made through the admin API at the guard (one local KV)', async () => {
    // A subject this state never held, asked only after the grant (nothing cached).
    const subject = `e2e-${Date.now().toString(36)}`;
    const granted = await fetch(`${base}/.gatehouse/v1/admin/users/${subject}/grants`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${await token('carol')}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ permission: 'read:posts', expires: '1h' }),
    });
    expect(granted.status).toBe(201);
    const read = await fetch(`${base}/posts/1`, {
      headers: { authorization: `Bearer ${await token(subject)}` },
    });
    expect(read.status).toBe(200);
  });

  it('prints a curl line for the admin API', () => {
    expect(output).toMatch(/curl -s http:\/\/127\.0\.0\.1:\d+\/\.gatehouse\/v1\/admin\/users\/bob/);
  });
});
