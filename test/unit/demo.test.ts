/** The demo both edges seed (demo/): it must load, and decide as demo/README.md says. */
import { readFileSync } from 'node:fs';
import * as jose from 'jose';
import { describe, expect, it } from 'vitest';
import { compilePolicy, Gatehouse } from '../../src/policy/index.ts';
import { createFileStore } from '../../src/stores/index.ts';

const read = (name: string) => readFileSync(new URL(`../../demo/${name}`, import.meta.url), 'utf8');
const SECRET = 'x'.repeat(32);

async function demo() {
  const policy = compilePolicy(JSON.parse(read('policy.json')), {
    env: { GATEHOUSE_DEV_SECRET: SECRET },
  });
  const gatehouse = new Gatehouse({ policy, store: createFileStore(read('permissions.json')) });
  const key = new TextEncoder().encode(SECRET);
  return async (sub: string, method: string, path: string, ip = '203.0.113.9') => {
    const token = await new jose.SignJWT({})
      .setProtectedHeader({ alg: 'HS256', kid: 'dev', typ: 'JWT' })
      .setIssuer('https://dev.gatehouse.local/')
      .setAudience('https://blog.gatehouse.local')
      .setSubject(sub)
      .setIssuedAt()
      .setExpirationTime('10m')
      .sign(key);
    const d = await gatehouse.decide({ method, path, authorization: `Bearer ${token}`, ip });
    return d.allow;
  };
}

describe('the demo data', () => {
  it.each([
    ['alice', 'GET', '/posts/1', true],
    ['alice', 'PUT', '/posts/1', false],
    ['alice', 'GET', '/drafts', true],
    ['bob', 'PUT', '/posts/1', true],
    ['bob', 'DELETE', '/posts/1', false],
    ['carol', 'DELETE', '/posts/1', true],
    ['carol', 'POST', '/ops/shutdown', false],
    ['mallory', 'GET', '/posts/1', false],
  ])('%s %s %s → %s', async (sub, method, path, allowed) => {
    const allows = await demo();
    expect(await allows(sub, method, path)).toBe(allowed);
  });

  it('lets alice read stats from loopback only', async () => {
    const allows = await demo();
    expect(await allows('alice', 'GET', '/stats', '127.0.0.1')).toBe(true);
    expect(await allows('alice', 'GET', '/stats', '203.0.113.9')).toBe(false);
  });
});
