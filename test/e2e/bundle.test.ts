/**
 * The guard stays small (issue 10): its bundle, built as `wrangler deploy --dry-run` builds it,
 * holds no admin module; the admin API ships in the admin Worker's bundle instead.
 */
import { describe, expect, it } from 'vitest';
import { ADMIN_MODULES, workerBundle } from '../../bench/worker.ts';

const isAdmin = (input: string) => ADMIN_MODULES.some((module) => input.startsWith(module));

describe('Worker bundles', () => {
  it("keeps every admin module out of the guard's bundle (wrangler.toml)", () => {
    const { inputs } = workerBundle('wrangler.toml');
    expect(inputs).toContain('src/workers/guard.ts');
    expect(inputs.filter(isAdmin)).toEqual([]);
  });

  it("puts the admin API in the admin Worker's bundle (wrangler.admin.toml)", () => {
    const { inputs } = workerBundle('wrangler.admin.toml');
    expect(inputs).toEqual(
      expect.arrayContaining([
        'handlers/admin-worker.ts',
        'src/http/admin-api.ts',
        'src/admin/operations.ts',
      ]),
    );
  });
});
