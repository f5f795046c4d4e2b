/**
 * The Lambda authorizer's bundle, built one way for the figure (`lambda.bundle_kb`, bench/lambda.ts)
 * and for the test that holds its goal (test/e2e/bundle.test.ts): handlers/lambda.ts, minified
 * ESM for Node 22, the AWS SDK external because the Lambda runtime provides it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BuildOptions, build } from 'esbuild';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The options of every bundle the Lambda figures compare (the handler and its baseline). */
export const LAMBDA_BUILD = {
  bundle: true,
  minify: true,
  platform: 'node',
  format: 'esm',
  target: 'es2023',
  external: ['@aws-sdk/*'],
  logLevel: 'silent',
} as const satisfies BuildOptions;

/**
 * Builds handlers/lambda.ts to `outfile`: its size (KB of 1024 bytes), its code, and the bytes each
 * source file (repository-relative path) contributes to it, largest first.
 */
export async function lambdaBundle(
  outfile: string,
): Promise<{ kb: number; code: string; inputs: Record<string, number> }> {
  const { metafile } = await build({
    ...LAMBDA_BUILD,
    absWorkingDir: ROOT,
    entryPoints: [join(ROOT, 'handlers/lambda.ts')],
    outfile,
    metafile: true,
  });
  const output = Object.values(metafile.outputs).find((o) => o.entryPoint !== undefined);
  if (output === undefined) throw new Error('esbuild wrote no Lambda bundle');
  const inputs = Object.entries(output.inputs)
    .filter(([, input]) => input.bytesInOutput > 0)
    .sort(([, a], [, b]) => b.bytesInOutput - a.bytesInOutput)
    .map(([path, input]) => [path, input.bytesInOutput] as const);
  return {
    kb: output.bytes / 1024,
    code: readFileSync(outfile, 'utf8'),
    inputs: Object.fromEntries(inputs),
  };
}
