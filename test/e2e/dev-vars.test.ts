/**
 * scripts/start.mjs's handling of .dev.vars, with the real file system in a temporary directory:
 * the dev secret is created when absent and the file is always left 0600, also when it existed
 * before with a wider mode (writeFileSync's mode applies only when it creates the file).
 */
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type DevVarsFs, ensureDevSecret } from '../../src/cli/dev-vars.ts';
import { parseDotenv } from '../../src/cli/io.ts';

const nodeFs: DevVarsFs = {
  readFile: (path) => (existsSync(path) ? readFileSync(path, 'utf8') : null),
  writeFile: (path, text, mode) => writeFileSync(path, text, { mode }),
  chmod: (path, mode) => chmodSync(path, mode),
};

let dir = '';
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-devvars-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const mode = (file: string) => statSync(file).mode & 0o777;

describe('.dev.vars', () => {
  it('creates the file 0600 with a new secret', () => {
    const file = join(dir, '.dev.vars');
    const { secret, created } = ensureDevSecret(nodeFs, file, 'S', () => 'generated');
    expect([secret, created]).toEqual(['generated', true]);
    expect(parseDotenv(readFileSync(file, 'utf8')).S).toBe('generated');
    expect(mode(file)).toBe(0o600);
  });

  it('appends to an existing world-readable file and tightens it to 0600', () => {
    const file = join(dir, '.dev.vars');
    writeFileSync(file, 'OTHER=1', { mode: 0o644 });
    chmodSync(file, 0o644);
    ensureDevSecret(nodeFs, file, 'S', () => 'generated');
    const vars = parseDotenv(readFileSync(file, 'utf8'));
    expect(vars).toEqual({ OTHER: '1', S: 'generated' });
    expect(mode(file)).toBe(0o600);
  });

  it('keeps an existing secret and still tightens the mode', () => {
    const file = join(dir, '.dev.vars');
    writeFileSync(file, 'S=kept\n');
    chmodSync(file, 0o664);
    const { secret, created } = ensureDevSecret(nodeFs, file, 'S', () => 'never');
    expect([secret, created]).toEqual(['kept', false]);
    expect(mode(file)).toBe(0o600);
  });
});
