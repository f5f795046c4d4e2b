/**
 * The guard stays small (issue 10): its bundle, built as `wrangler deploy --dry-run` builds it,
 * holds no admin module and none of the issuing endpoints' code; the admin API, the token endpoint
 * and the signed-event endpoints ship in the admin Worker's bundle instead. The Lambda authorizer's
 * bundle stays within issue 11's 150 KB, built as the benchmark builds it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lambdaBundle } from '../../bench/lambda-bundle.ts';
import { ADMIN_MODULES, workerBundle } from '../../bench/worker.ts';

const isAdmin = (input: string) => ADMIN_MODULES.some((module) => input.startsWith(module));

describe('Worker bundles', () => {
  it("keeps every admin module out of the guard's bundle (wrangler.toml)", () => {
    const { inputs } = workerBundle('wrangler.toml');
    expect(inputs).toContain('src/workers/guard.ts');
    expect(inputs.filter(isAdmin)).toEqual([]);
  });

  it("keeps the token and event endpoints out of the guard's bundle, within issue 10's 60 KiB", () => {
    const { kb, inputs } = workerBundle('wrangler.toml');
    // (The delegation barrel still names src/delegation/exchange.ts as an input; esbuild keeps
    // none of its code, which the size bound below would notice.)
    expect(inputs).not.toContain('src/http/events.ts');
    // importJWK / importSPKI pulled jose's ASN.1 and JWE helpers in: keys are imported with
    // crypto.subtle directly (src/token/webcrypto.ts, src/delegation/mint.ts).
    expect(inputs.filter((input) => input.includes('node_modules/jose/'))).toEqual([]);
    expect(kb).toBeLessThanOrEqual(60);
  });

  it("puts the admin API in the admin Worker's bundle (wrangler.admin.toml)", () => {
    const { inputs } = workerBundle('wrangler.admin.toml');
    expect(inputs).toEqual(
      expect.arrayContaining([
        'handlers/admin-worker.ts',
        'src/http/admin-api.ts',
        'src/admin/operations.ts',
        'src/http/token-exchange.ts',
        'src/delegation/exchange.ts',
        'src/http/events.ts',
      ]),
    );
  });
});

describe('Lambda bundle', () => {
  const build = async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-lambda-'));
    try {
      return await lambdaBundle(join(dir, 'lambda.mjs'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it("builds handlers/lambda.ts within issue 11's 150 KB (minified ESM, AWS SDK external)", async () => {
    const { kb, inputs } = await build();
    expect(Object.keys(inputs)).toContain('src/aws/lambda.ts');
    expect(kb).toBeLessThanOrEqual(150);
  });

  it('leaves out the admin, issuing and Worker code and the libraries the authorizer never calls', async () => {
    const { inputs } = await build();
    const foreign = Object.keys(inputs).filter(
      (input) =>
        isAdmin(input) ||
        input.startsWith('src/http/') ||
        input.startsWith('src/workers/') ||
        input === 'src/delegation/exchange.ts' ||
        input === 'src/delegation/mint.ts' ||
        input.includes('node_modules/jose/') ||
        input.includes('node_modules/hono/') ||
        input.includes('node_modules/yaml/'),
    );
    expect(foreign).toEqual([]);
  });

  it('carries neither the permission file schemas nor the revocation feed writer', async () => {
    const { code } = await build();
    // Each sits in a module the authorizer needs for something else (expiryToUnixSeconds, the
    // feed reader), so only its own text shows it came back.
    expect(code).not.toContain('a permission file object');
    expect(code).not.toContain('could not claim an epoch');
  });
});
