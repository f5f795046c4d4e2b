import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

// One home per platform, and imports that point one way. A reader follows a request from its
// handler down to decide() without meeting code of another platform; a Worker bundle never
// reaches the AWS SDK, and the core runs anywhere.

const src = path.resolve(import.meta.dirname, '../../src');

/** Lower layers never import higher ones; workers and aws never import each other. */
const LAYER: Record<string, number> = {
  'errors.ts': 0,
  'types.ts': 0,
  token: 0,
  permissions: 0,
  logging: 0,
  delegation: 0,
  events: 2,
  stores: 1,
  revocation: 1,
  policy: 2,
  admin: 3,
  http: 4,
  workers: 5,
  aws: 5,
  cli: 6,
  'index.ts': 7,
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return entry.name.endsWith('.ts') ? [full] : [];
  });
}

const files = sourceFiles(src).map((file) => {
  const text = readFileSync(file, 'utf8');
  const specifiers = [...text.matchAll(/(?:from|import)\s*\(?\s*'([^']+)'/g)].map(
    (match) => match[1] as string,
  );
  return { home: path.relative(src, file).split(path.sep)[0] as string, file, specifiers };
});

describe('source layout', () => {
  it('knows the layer of every folder in src/', () => {
    const homes = [...new Set(files.map((f) => f.home))];
    expect(homes.filter((home) => LAYER[home] === undefined)).toEqual([]);
  });

  it('imports point one way: core ← stores ← policy ← admin ← http ← workers / aws ← cli', () => {
    const upward = files.flatMap(({ home, file, specifiers }) =>
      specifiers
        .filter((s) => s.startsWith('.'))
        .map((s) => path.relative(src, path.resolve(path.dirname(file), s)).split(path.sep)[0])
        .filter((target): target is string => target !== undefined && target !== home)
        .filter((target) => {
          const across =
            (home === 'workers' && target === 'aws') || (home === 'aws' && target === 'workers');
          return across || (LAYER[target] ?? 99) > (LAYER[home] ?? -1);
        })
        .map((target) => `${path.relative(src, file)} → ${target}/`),
    );
    expect(upward).toEqual([]);
  });

  it('keeps the AWS SDK in src/aws and Workers runtime modules in src/workers', () => {
    const misplaced = files.flatMap(({ home, file, specifiers }) =>
      specifiers
        .filter(
          (s) =>
            (s.startsWith('@aws-sdk/') && home !== 'aws') ||
            (s.startsWith('cloudflare:') && home !== 'workers'),
        )
        .map((s) => `${path.relative(src, file)} imports ${s}`),
    );
    expect(misplaced).toEqual([]);
  });
});
