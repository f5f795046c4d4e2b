/**
 * `gatehouse keys`: generates a set the policy accepts, rotates it so every token of the old
 * current key still verifies, publishes only public members, and reports a bad set by the
 * member's name without echoing key material.
 */
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/index.ts';
import type { CliIo } from '../../src/cli/io.ts';
import { parseIssuerKeys, verificationKeys } from '../../src/delegation/index.ts';

function io(env: Record<string, string> = {}, stdin = '') {
  const out: string[] = [];
  const err: string[] = [];
  const cli: CliIo = {
    readFile: async () => null,
    env,
    out: (line) => out.push(line),
    err: (line) => err.push(line),
    now: () => Date.now(),
    readStdin: async () => stdin,
  };
  return { cli, out, err };
}

describe('gatehouse keys', () => {
  it('generates a current and a next key, Ed25519 by default or ES256', async () => {
    for (const [args, alg] of [
      [[], 'EdDSA'],
      [['--alg', 'ES256'], 'ES256'],
    ] as const) {
      const { cli, out } = io();
      expect(await main(['keys', 'generate', ...args], cli)).toBe(0);
      const set = parseIssuerKeys(out.join(''), 'out');
      expect(set.current.alg).toBe(alg);
      expect(set.next?.alg).toBe(alg);
      expect(set.current.kid).not.toBe(set.next?.kid);
    }
  });

  it('rotates: next signs, the old current stays verifiable, a new next appears', async () => {
    const generated = io();
    await main(['keys', 'generate'], generated.cli);
    const before = parseIssuerKeys(generated.out.join(''), 'before');
    const rotated = io({}, generated.out.join(''));
    expect(await main(['keys', 'rotate', '--from', '-'], rotated.cli)).toBe(0);
    const after = parseIssuerKeys(rotated.out.join(''), 'after');
    expect(after.current.kid).toBe(before.next!.kid);
    expect(after.previous?.kid).toBe(before.current.kid);
    expect(verificationKeys(after).map((k) => k.kid)).toContain(before.current.kid);
    expect([before.current.kid, before.next!.kid]).not.toContain(after.next!.kid);
  });

  it('publishes only public members, from the environment by default', async () => {
    const generated = io();
    await main(['keys', 'generate'], generated.cli);
    const { cli, out } = io({ GATEHOUSE_DELEGATION_KEYS: generated.out.join('') });
    expect(await main(['keys', 'public'], cli)).toBe(0);
    const jwks = JSON.parse(out.join('')) as { keys: Record<string, string>[] };
    expect(jwks.keys.every((k) => k.d === undefined)).toBe(true);
  });

  it('names the member at fault in a bad set and never prints its value', async () => {
    const bad = JSON.stringify({
      current: { kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', kid: 'k', x: 'A', d: '#secret#' },
    });
    const { cli, err, out } = io({}, bad);
    expect(await main(['keys', 'rotate', '--from', '-'], cli)).toBe(1);
    expect(err.join('')).toContain('stdin.current.d');
    expect(err.join('') + out.join('')).not.toContain('#secret#');
  });

  it('refuses an unknown algorithm or action as a usage error', async () => {
    expect(await main(['keys', 'generate', '--alg', 'HS256'], io().cli)).toBe(2);
    expect(await main(['keys', 'destroy'], io().cli)).toBe(2);
  });
});
