#!/usr/bin/env node
// The published build (`npm pack` and `npm publish` run it as `prepack`): src/ → dist/ as
// JavaScript and declarations, with tsc and tsconfig.build.json.
//
// tsc's rewriteRelativeImportExtensions turns `./errors.ts` into `./errors.js` in the JavaScript
// but leaves the declarations' specifiers as written. TypeScript 7 happens to resolve such a
// `.ts` specifier to the .d.ts beside it; a consumer's compiler may be older, and `.js` specifiers
// are the form every TypeScript since 4.7 resolves under bundler, node16 and nodenext alike. So
// the declarations get the same `.js` specifiers as the code (test/e2e/package.test.ts checks).
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');

/** A relative specifier ending in .ts, quoted, as in `from '../x.ts'` and `import("./x.ts")`. */
const RELATIVE_TS = /(['"])(\.{1,2}\/[^'"\n]*?)\.ts\1/g;

export function rewriteDeclaration(text) {
  return text.replace(RELATIVE_TS, '$1$2.js$1');
}

function declarations(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return declarations(path);
    return entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

function build() {
  // A stale file from a moved or deleted source must not be published.
  rmSync(dist, { recursive: true, force: true });
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const result = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], {
    stdio: 'inherit',
  });
  if (result.status !== 0) process.exit(result.status ?? 1);
  for (const file of declarations(dist)) {
    const text = readFileSync(file, 'utf8');
    const rewritten = rewriteDeclaration(text);
    if (rewritten !== text) writeFileSync(file, rewritten);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) build();
