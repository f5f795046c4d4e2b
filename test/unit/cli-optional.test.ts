/**
 * The CLI's optional peer dependencies (wrangler for --kv, the DynamoDB client for --dynamodb):
 * an installed package does not bring them, so a missing one must be one line naming it, and
 * nothing else may be mistaken for one.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  DYNAMODB_CLIENT,
  loadOptional,
  MissingPackageError,
  type OptionalPackage,
  WRANGLER,
} from '../../src/cli/optional.ts';

const absent: OptionalPackage = {
  name: 'gatehouse-test-absent-package',
  usedBy: 'the test target uses it',
  install: 'npm install --save-dev gatehouse-test-absent-package',
};

const dir = mkdtempSync(join(tmpdir(), 'gatehouse-optional-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('loadOptional', () => {
  it.each([
    ['an ESM import', () => import(absent.name)],
    ['an ESM import of a subpath', () => import(`${absent.name}/sub`)],
    [
      'a require.resolve',
      () => createRequire(import.meta.url).resolve(`${absent.name}/package.json`),
    ],
  ])('reports the package missing from %s as one line naming it', async (_form, load) => {
    const error = await loadOptional(absent, load).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MissingPackageError);
    expect((error as MissingPackageError).code).toBe('missing_package');
    expect((error as MissingPackageError).packageName).toBe(absent.name);
    const message = (error as Error).message;
    expect(message.split('\n')).toHaveLength(1);
    expect(message).toContain(absent.install);
  });

  it('passes through a dependency missing inside an installed copy of the package', async () => {
    // A real installed package whose own import fails: the package is there, so the fault is not
    // "install it".
    const pkg = join(dir, 'node_modules', absent.name);
    mkdirSync(pkg, { recursive: true });
    writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: absent.name, type: 'module' }));
    writeFileSync(join(pkg, 'index.js'), "export * from 'gatehouse-test-missing-dependency';\n");
    const entry = pathToFileURL(join(pkg, 'index.js')).href;
    const error = await loadOptional(absent, () => import(entry)).catch((e: unknown) => e);
    expect(error).not.toBeInstanceOf(MissingPackageError);
    expect((error as { code?: string }).code).toBe('ERR_MODULE_NOT_FOUND');
  });

  it('passes through every other failure unchanged', async () => {
    const failure = new TypeError('not a resolution failure');
    await expect(loadOptional(absent, () => Promise.reject(failure))).rejects.toBe(failure);
  });

  it('returns what the load gave when the package is there', async () => {
    const yaml = await loadOptional({ ...absent, name: 'yaml' }, () => import('yaml'));
    expect(typeof yaml.parse).toBe('function');
  });

  it('names the packages the CLI treats as optional, with the command that installs each', () => {
    for (const need of [WRANGLER, DYNAMODB_CLIENT]) {
      expect(need.install).toMatch(new RegExp(`^npm install (--save-dev )?${need.name}$`));
    }
  });
});
