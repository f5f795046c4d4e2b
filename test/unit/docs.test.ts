import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FIGURE_DOCS, quotedFigures, staleFigures, syncFigures } from '../../bench/doc-figures.ts';

// Docs drift silently: a moved file, a figure from an older run, an example nobody links.
// These checks make the drift a failing test instead.

const root = path.resolve(import.meta.dirname, '../..');
const read = (file: string) => readFileSync(path.join(root, file), 'utf8');

const docs = [
  'README.md',
  'demo/README.md',
  ...readdirSync(path.join(root, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .map((name) => `docs/${name}`),
];

const results = JSON.parse(read('bench/results.json')) as Record<string, number>;

describe('docs', () => {
  it.each(docs)('%s names only repository paths that exist', (doc) => {
    // A path into one of the project's folders, in prose, a table or a code block.
    const mentioned = read(doc).matchAll(
      /(?:^|[^A-Za-z0-9_./-])((?:src|test|handlers|bench|scripts|demo|examples|schema|events|bin|docs)\/[A-Za-z0-9_./-]*[A-Za-z0-9_])/gm,
    );
    const missing = [...mentioned]
      .map((match) => match[1] as string)
      .filter((file) => !existsSync(path.join(root, file)));
    expect(missing).toEqual([]);
  });

  it.each(docs)('%s links only to files that exist', (doc) => {
    const links = read(doc).matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g);
    const broken = [...links]
      .map((match) => match[1] as string)
      .filter((target) => !/^[a-z]+:/.test(target))
      .filter((target) => !existsSync(path.resolve(root, path.dirname(doc), target)));
    expect(broken).toEqual([]);
  });

  it.each(docs)('%s names only Markdown documents the repository has', (doc) => {
    const named = read(doc).matchAll(/(?:^|[\s(`'"/])([A-Z][A-Z_-]+\.md)\b/g);
    const missing = [...named]
      .map((match) => match[1] as string)
      .filter(
        (name) => !existsSync(path.join(root, name)) && !existsSync(path.join(root, 'docs', name)),
      );
    expect(missing).toEqual([]);
  });

  it('every example is referenced from the README or a guide', () => {
    const text = docs.map(read).join('\n');
    const unreferenced = readdirSync(path.join(root, 'examples')).filter(
      (name) => !text.includes(`examples/${name}`),
    );
    expect(unreferenced).toEqual([]);
  });

  it.each(FIGURE_DOCS)('%s quotes figures exactly as bench/results.json has them', (doc) => {
    expect(quotedFigures(read(doc)).length).toBeGreaterThan(0);
    expect(staleFigures(read(doc), results)).toEqual([]);
  });
});

/**
 * The package's import paths (`gatehouse-authz/hono`) mapped to the sources its declarations are
 * built from: each `exports` entry's `types` file, dist/<x>.d.ts, comes from src/<x>.ts.
 */
function sourcePaths(): Record<string, string[]> {
  const pkg = JSON.parse(read('package.json')) as {
    name: string;
    exports: Record<string, string | { types?: string }>;
  };
  return Object.fromEntries(
    Object.entries(pkg.exports).flatMap(([subpath, target]) => {
      const types = typeof target === 'string' ? undefined : target.types;
      const source = types?.match(/^\.\/dist\/(.+)\.d\.ts$/)?.[1];
      if (source === undefined) return [];
      return [[path.posix.join(pkg.name, subpath), [path.join(root, 'src', `${source}.ts`)]]];
    }),
  );
}

describe('doc snippets', () => {
  it('maps every code entry point of the package to an existing source file', () => {
    const paths = sourcePaths();
    expect(Object.keys(paths).sort()).toEqual(
      [
        'gatehouse-authz',
        'gatehouse-authz/aws',
        'gatehouse-authz/aws/lambda',
        'gatehouse-authz/hono',
      ].sort(),
    );
    for (const [file] of Object.values(paths))
      expect(file !== undefined && existsSync(file)).toBe(true);
  });

  // A snippet that is a whole Worker module (it has `export default`) must compile as one, with
  // the Workers types a new project has and the package's subpaths mapped to their sources.
  const modules = docs.flatMap((doc) =>
    [...read(doc).matchAll(/```ts\n([\s\S]*?)```/g)]
      .map((match) => match[1] as string)
      .filter((code) => /^export default /m.test(code))
      .map((code, index) => ({ name: `${doc}#${index + 1}`, code })),
  );

  it('finds the whole-module snippets', () => {
    expect(modules.map((snippet) => snippet.name)).toContain('docs/workers.md#1');
  });

  it.each(modules)('$name type-checks as a Worker module', ({ code }) => {
    // Inside node_modules so that `hono` and the Workers types resolve as in a user's project.
    mkdirSync(path.join(root, 'node_modules/.cache'), { recursive: true });
    const dir = mkdtempSync(path.join(root, 'node_modules/.cache/doc-snippet-'));
    try {
      writeFileSync(path.join(dir, 'worker.ts'), code);
      copyFileSync(path.join(root, 'demo/policy.json'), path.join(dir, 'policy.json'));
      const paths = sourcePaths();
      writeFileSync(
        path.join(dir, 'tsconfig.json'),
        JSON.stringify({
          extends: path.join(root, 'tsconfig.workers.json'),
          compilerOptions: { types: ['@cloudflare/workers-types'], paths },
          include: ['worker.ts'],
        }),
      );
      const tsc = path.join(root, 'node_modules/.bin/tsc');
      const result = spawnSync(tsc, ['-p', dir], { encoding: 'utf8' });
      expect(`${result.stdout}${result.stderr}`.replaceAll(dir, '.')).toBe('');
      expect(result.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('figure rows', () => {
  const table = [
    '| figure | value | goal |',
    '|---|---|---|',
    '| `worker.bundle_gzip_kb` | 53.2 | ≤ 80 |',
    '| `lambda.init_ms_ratio` | 1.09 | ≤ 1.3 |',
    '| `GATEHOUSE_POLICY` | a policy | bundled |',
  ].join('\n');

  it('finds a figure whose value differs from the results', () => {
    const stale = staleFigures(table, {
      'worker.bundle_gzip_kb': 77.3,
      'lambda.init_ms_ratio': 1.092,
    });
    expect(stale.map((figure) => [figure.name, figure.shown, figure.expected])).toEqual([
      ['worker.bundle_gzip_kb', '53.2', '77.3'],
    ]);
  });

  it('finds a figure no benchmark measures, and ignores configuration rows', () => {
    const stale = staleFigures(table, { 'worker.bundle_gzip_kb': 53.2 });
    expect(stale.map((figure) => figure.name)).toEqual(['lambda.init_ms_ratio']);
  });

  it('rewrites only the value cell of figure rows', () => {
    const synced = syncFigures(table, { 'worker.bundle_gzip_kb': 58.04, GATEHOUSE_POLICY: 1 });
    expect(synced.split('\n')[2]).toBe('| `worker.bundle_gzip_kb` | 58.0 | ≤ 80 |');
    expect(synced.split('\n').filter((_line, i) => i !== 2)).toEqual(
      table.split('\n').filter((_line, i) => i !== 2),
    );
  });
});
